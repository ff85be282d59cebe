package io.github.rlhf4j.nn;

import io.github.rlhf4j.tensor.Tensor;

/**
 * A named trainable tensor of a {@link Module}. It is declared with a shape and an {@link Init} when the module is
 * built, and gets its memory when a {@link ParameterStore} lays the whole model out in one flat buffer: its value is
 * then a view of that buffer, and its gradient a view of the parallel flat gradient buffer.
 */
public final class Parameter {
    private final int[] shape;
    private final Init init;
    private String name;
    private Tensor value;
    private boolean frozen;

    Parameter(String localName, int[] shape, Init init) {
        this.name = localName;
        this.shape = shape.clone();
        this.init = init;
    }

    /** The full Hugging Face style name, e.g. {@code transformer.h.0.attn.c_attn.weight}, once the model is built. */
    public String name() {
        return name;
    }

    void setName(String name) {
        this.name = name;
    }

    public int[] shape() {
        return shape.clone();
    }

    public long numel() {
        long n = 1;
        for (int d : shape) n *= d;
        return n;
    }

    public Init init() {
        return init;
    }

    /** The tensor, a leaf that requires grad unless frozen. */
    public Tensor value() {
        if (value == null)
            throw new IllegalStateException("parameter " + name + " has no memory yet: lay the model out with "
                    + "ParameterStore.allocate(model, device, seed) before running it");
        return value;
    }

    public boolean isAllocated() {
        return value != null;
    }

    void bind(Tensor value) {
        this.value = value;
    }

    /** A frozen parameter gets no gradient (a LoRA base weight, a frozen embedding). */
    public boolean isFrozen() {
        return frozen;
    }

    public void setFrozen(boolean frozen) {
        this.frozen = frozen;
        if (value != null) value.requiresGrad(!frozen);
    }

    @Override
    public String toString() {
        return name + java.util.Arrays.toString(shape);
    }
}
