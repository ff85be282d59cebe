package io.github.rlhf4j.nn;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A building block with named parameters and named child modules, so the full names come out exactly as Hugging Face
 * names them ({@code transformer.h.0.attn.c_attn.weight}) and checkpoints map one to one. Subclasses declare their
 * parts in the constructor, in the order transformers declares them:
 *
 * <pre>{@code
 * final class Mlp extends Module {
 *     final Linear fc = module("c_fc", new Linear(768, 3072, true));
 *     final Linear proj = module("c_proj", new Linear(3072, 768, true));
 * }
 * }</pre>
 */
public abstract class Module {
    private final LinkedHashMap<String, Parameter> parameters = new LinkedHashMap<>();
    private final LinkedHashMap<String, Module> children = new LinkedHashMap<>();
    private boolean training = true;

    protected final Parameter parameter(String name, Init init, int... shape) {
        checkName(name);
        Parameter p = new Parameter(name, shape, init);
        parameters.put(name, p);
        return p;
    }

    protected final <M extends Module> M module(String name, M module) {
        checkName(name);
        children.put(name, module);
        return module;
    }

    /** A list of children named {@code name.0}, {@code name.1}, ... (torch.nn.ModuleList). */
    protected final <M extends Module> List<M> modules(String name, List<M> list) {
        for (int i = 0; i < list.size(); i++) module(name + "." + i, list.get(i));
        return Collections.unmodifiableList(new ArrayList<>(list));
    }

    private void checkName(String name) {
        if (parameters.containsKey(name) || children.containsKey(name))
            throw new IllegalArgumentException(getClass().getSimpleName() + ": '" + name + "' declared twice");
    }

    /**
     * Every parameter below this module, by dotted name relative to this module, in torch's named_parameters order
     * (a module's own parameters, then its children's). A parameter's own {@link Parameter#name()} becomes the full
     * name when a {@link ParameterStore} lays out the model it belongs to.
     */
    public final Map<String, Parameter> namedParameters() {
        LinkedHashMap<String, Parameter> out = new LinkedHashMap<>();
        collect("", out);
        return out;
    }

    private void collect(String prefix, Map<String, Parameter> out) {
        for (var e : parameters.entrySet()) out.put(prefix + e.getKey(), e.getValue());
        for (var e : children.entrySet()) e.getValue().collect(prefix + e.getKey() + ".", out);
    }

    /**
     * This module and every module below it by dotted name relative to this one ({@code ""} for itself), in torch's
     * named_modules order (a module before its children).
     */
    public final Map<String, Module> namedModules() {
        LinkedHashMap<String, Module> out = new LinkedHashMap<>();
        collectModules("", out);
        return out;
    }

    private void collectModules(String name, Map<String, Module> out) {
        out.put(name, this);
        for (var e : children.entrySet())
            e.getValue().collectModules(name.isEmpty() ? e.getKey() : name + "." + e.getKey(), out);
    }

    public final long parameterCount() {
        long n = 0;
        for (Parameter p : namedParameters().values()) n += p.numel();
        return n;
    }

    /** Training mode (dropout on) or evaluation mode, for this module and all below it. */
    public final void train(boolean on) {
        training = on;
        for (Module m : children.values()) m.train(on);
    }

    public final boolean isTraining() {
        return training;
    }
}
