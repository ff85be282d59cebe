package io.github.rlhf4j.nn;

import io.github.rlhf4j.tensor.Autograd;
import io.github.rlhf4j.tensor.Functional;
import io.github.rlhf4j.tensor.Tensor;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * LoRA as DeepSpeed-Chat adds it ({@code dschat/utils/module/lora.py}): every {@link Linear} whose full module name
 * contains {@code --lora_module_name} gets two trainable matrices, and its weight is frozen:
 *
 * <pre>
 *   lora_right_weight  [in, r]   kaiming_uniform_(a = sqrt 5), which is U(-1/sqrt r, 1/sqrt r) since fan_in = r
 *   lora_left_weight   [r, out]  zeros, so a fresh adapter leaves the model's output as it was
 *   y = x W^T + b + (x R L) * scaling,   scaling = lora_scaling / r  (lora_scaling 1 in DS-Chat)
 * </pre>
 *
 * The bias and every layer outside the filter stay trainable unless {@link #onlyOptimizeLora} freezes them. The
 * parameters are named {@code <layer>.lora_right_weight} and {@code <layer>.lora_left_weight} as in DS-Chat, so its
 * optimizer groups and name rules apply unchanged ({@link ParameterStore#ranges(java.util.function.Predicate,
 * java.util.function.Predicate)}). Saving in Hugging Face layout fuses each adapter into its weight,
 * {@code W += scaling (R L)^T} (convert_lora_to_linear_layer), and drops the {@code lora} tensors (save_hf_format).
 *
 * <p>Beyond DS-Chat: GPT-2's {@link Conv1D} layers (weight stored [in, out]) take the same adapter, fused as
 * {@code W += scaling R L}; DS-Chat converts only {@code nn.Linear}, which leaves a GPT-2 model without adapters.
 * LoRA dropout (DS-Chat's {@code lora_droppout}, 0 in every script) is not offered.
 *
 * <p>Adapters are parameters like any other, so {@link #apply} must run after the model is built and before
 * {@link ParameterStore#allocate} lays it out.
 */
public final class Lora {
    /** The adapter's parameter names, DS-Chat's. */
    public static final String RIGHT = "lora_right_weight", LEFT = "lora_left_weight";
    /** DS-Chat's default LoRA learning rate ({@code --lora_learning_rate}, {@code --actor_lora_learning_rate}). */
    public static final double DEFAULT_LR = 5e-4;

    private Lora() {}

    /**
     * DeepSpeed-Chat's LoRA flags for one model: {@code --lora_dim} (0: no LoRA), {@code --lora_module_name},
     * {@code --only_optimize_lora}, and the scaling numerator (DS-Chat's {@code lora_scaling}, always 1 there).
     */
    public record Config(int dim, String moduleName, boolean onlyOptimizeLora, double scaling) {
        public Config {
            if (dim < 0) throw new IllegalArgumentException("LoRA dim " + dim + " must be >= 0 (0: no LoRA)");
            if (dim > 0 && (moduleName == null || moduleName.isEmpty()))
                throw new IllegalArgumentException("LoRA module name must not be empty (DS-Chat's --lora_module_name, "
                        + "e.g. 'decoder.layers.' for OPT, 'layers.' for Llama, 'h.' for GPT-2)");
            if (!(scaling > 0 && Double.isFinite(scaling)))
                throw new IllegalArgumentException("LoRA scaling " + scaling + " must be > 0");
        }

        /** DS-Chat's flags with its scaling numerator of 1. */
        public Config(int dim, String moduleName, boolean onlyOptimizeLora) {
            this(dim, moduleName, onlyOptimizeLora, 1.0);
        }

        /** No LoRA. */
        public static Config none() {
            return new Config(0, null, false);
        }

        public boolean enabled() {
            return dim > 0;
        }

        /**
         * What DS-Chat does with these flags after building a model: {@link Lora#apply} and, with
         * {@code onlyOptimizeLora}, {@link Lora#onlyOptimizeLora}; returns the layers converted (0 when off).
         */
        public int applyTo(Module model) {
            return applyTo(model, Set.of());
        }

        /**
         * As {@link #applyTo(Module)}, keeping the parameters named in {@code alsoTrain} trainable under
         * {@code onlyOptimizeLora}: DS-Chat's step 2 passes {@code v_head.weight} (its step 3 critic does not).
         */
        public int applyTo(Module model, Collection<String> alsoTrain) {
            if (!enabled()) return 0;
            int n = apply(model, moduleName, dim, scaling);
            if (onlyOptimizeLora) Lora.onlyOptimizeLora(model, alsoTrain);
            return n;
        }
    }

    /**
     * One layer's adapter. {@code inOut} tells the weight's layout: false for {@link Linear} ([out, in]), true for
     * {@link Conv1D} ([in, out]).
     */
    public record Adapter(Parameter weight, Parameter right, Parameter left, double scaling, boolean inOut) {
        /** The low-rank term (x R) L * scaling, [..., out], through the autograd (scaled at rank r, the cheap end). */
        public Tensor delta(Tensor x) {
            return Functional.linearInOut(Functional.linearInOut(x, right.value(), null).mul(scaling), left.value(),
                    null);
        }

        /**
         * The base weight with the adapter fused in, {@code W + scaling (R L)^T} ({@code W + scaling R L} for
         * Conv1D), as a new tensor in the current scope; the parameters are not touched.
         */
        public Tensor fusedWeight() {
            try (Autograd.NoGrad ignored = Autograd.noGrad()) {
                Tensor product = right.value().matmul(left.value()).mul(scaling); // [in, out]
                if (!inOut) product = product.transpose(0, 1).contiguous();
                return weight.value().add(product);
            }
        }
    }

    /** {@link #apply(Module, String, int, double)} with DS-Chat's scaling numerator of 1 (scaling 1 / dim). */
    public static int apply(Module model, String moduleNameContains, int dim) {
        return apply(model, moduleNameContains, dim, 1.0);
    }

    /**
     * Adds an adapter of rank {@code dim}, scaling {@code scaling / dim}, to every {@link Linear} and {@link Conv1D}
     * below {@code model} whose dotted module name (relative to {@code model}, as transformers names it:
     * {@code model.decoder.layers.0.self_attn.q_proj}) contains {@code moduleNameContains}, and freezes their
     * weights (convert_linear_layer_to_lora). Returns the number of layers converted.
     *
     * @throws IllegalArgumentException when no layer matches, naming the filter and some layer names there are
     * @throws IllegalStateException when the model is already laid out in a ParameterStore, or a layer has an adapter
     */
    public static int apply(Module model, String moduleNameContains, int dim, double scaling) {
        if (dim <= 0) throw new IllegalArgumentException("LoRA dim " + dim + " must be > 0");
        if (moduleNameContains == null || moduleNameContains.isEmpty())
            throw new IllegalArgumentException("LoRA module name filter must not be empty");
        if (!(scaling > 0 && Double.isFinite(scaling)))
            throw new IllegalArgumentException("LoRA scaling " + scaling + " must be > 0");
        for (var e : model.namedParameters().entrySet())
            if (e.getValue().isAllocated())
                throw new IllegalStateException("LoRA: parameter " + e.getKey() + " is already laid out in a "
                        + "ParameterStore; apply LoRA after building the model and before ParameterStore.allocate");
        List<String> layers = new ArrayList<>();
        Map<String, Module> matched = new LinkedHashMap<>();
        for (var e : model.namedModules().entrySet()) {
            if (!(e.getValue() instanceof Linear) && !(e.getValue() instanceof Conv1D)) continue;
            layers.add(e.getKey());
            if (!e.getKey().contains(moduleNameContains)) continue;
            if (adapterOf(e.getValue()) != null)
                throw new IllegalStateException("LoRA: layer " + e.getKey() + " already has an adapter");
            matched.put(e.getKey(), e.getValue());
        }
        if (matched.isEmpty())
            throw new IllegalArgumentException("LoRA: no Linear or Conv1D layer of this "
                    + model.getClass().getSimpleName() + " has a name containing '" + moduleNameContains + "' ("
                    + (layers.isEmpty() ? "it has none" : layers.size() + " layers, e.g. " + sample(layers)) + ")");
        double s = scaling / dim;
        for (var e : matched.entrySet()) {
            switch (e.getValue()) {
                case Linear l -> l.addLora(dim, s, e.getKey());
                case Conv1D c -> c.addLora(dim, s, e.getKey());
                default -> throw new AssertionError(e.getKey());
            }
        }
        return matched.size();
    }

    private static String sample(List<String> names) {
        List<String> some = new ArrayList<>(names.subList(0, Math.min(4, names.size())));
        if (names.size() > some.size()) some.add("..., " + names.getLast());
        return String.join(", ", some);
    }

    /** kaiming_uniform_(a = sqrt 5) on [in, r]: fan_in = r, gain sqrt(2 / (1 + 5)), bound gain sqrt(3 / r). */
    static Init rightInit(int dim) {
        double bound = Math.sqrt(2.0 / 6.0) * Math.sqrt(3.0 / dim);
        return Init.uniform(-bound, bound);
    }

    /** only_optimize_lora_parameters: freezes every parameter but the adapters'. */
    public static long onlyOptimizeLora(Module model) {
        return onlyOptimizeLora(model, Set.of());
    }

    /**
     * only_optimize_lora_parameters with {@code force_optimize_params}: every parameter of {@code model} is frozen
     * except the adapters and those named (relative to {@code model}) in {@code alsoTrain}: step 2 of DS-Chat keeps
     * {@code v_head.weight} trainable this way. Run it before building the optimizer, whose groups leave frozen
     * parameters out. Returns the number of trainable parameter elements left.
     *
     * @throws IllegalStateException when the model has no adapters (everything would be frozen)
     * @throws IllegalArgumentException when a name in {@code alsoTrain} is not a parameter of the model
     */
    public static long onlyOptimizeLora(Module model, Collection<String> alsoTrain) {
        Map<String, Parameter> params = model.namedParameters();
        for (String n : alsoTrain)
            if (!params.containsKey(n))
                throw new IllegalArgumentException("only-optimize-LoRA: '" + n + "' is not a parameter of this "
                        + model.getClass().getSimpleName());
        if (params.keySet().stream().noneMatch(Lora::isLoraParameter))
            throw new IllegalStateException("only-optimize-LoRA: the " + model.getClass().getSimpleName()
                    + " has no LoRA adapters (apply LoRA first), so every parameter would be frozen");
        long trainable = 0;
        for (var e : params.entrySet()) {
            boolean train = isLoraParameter(e.getKey()) || alsoTrain.contains(e.getKey());
            e.getValue().setFrozen(!train);
            if (train) trainable += e.getValue().numel();
        }
        return trainable;
    }

    /** DS-Chat's test for an adapter parameter (lora_name_list): the name contains either adapter name. */
    public static boolean isLoraParameter(String name) {
        String lower = name.toLowerCase(java.util.Locale.ROOT);
        return lower.contains(RIGHT) || lower.contains(LEFT);
    }

    /** Every adapter below {@code model}, by layer name relative to it (empty when LoRA was not applied). */
    public static Map<String, Adapter> adapters(Module model) {
        Map<String, Adapter> out = new LinkedHashMap<>();
        for (var e : model.namedModules().entrySet()) {
            Adapter a = adapterOf(e.getValue());
            if (a != null) out.put(e.getKey(), a);
        }
        return out;
    }

    /**
     * The full parameter names ({@code <layer>.weight}, relative to {@code model}) of the weights that have an
     * adapter, each with its adapter: what a Hugging Face save replaces by {@link Adapter#fusedWeight}.
     */
    public static Map<String, Adapter> adaptedWeights(Module model) {
        Map<String, Adapter> out = new LinkedHashMap<>();
        for (var e : adapters(model).entrySet()) out.put(prefixed(e.getKey(), "weight"), e.getValue());
        return out;
    }

    private static Adapter adapterOf(Module m) {
        return switch (m) {
            case Linear l -> l.lora();
            case Conv1D c -> c.lora();
            default -> null;
        };
    }

    static String prefixed(String layer, String name) {
        return layer.isEmpty() ? name : layer + "." + name;
    }
}
