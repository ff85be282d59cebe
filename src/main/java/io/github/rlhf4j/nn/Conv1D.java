package io.github.rlhf4j.nn;

import io.github.rlhf4j.tensor.Functional;
import io.github.rlhf4j.tensor.Tensor;

/**
 * GPT-2's Conv1D (transformers.pytorch_utils.Conv1D): a linear layer whose weight is stored [in, out]. It takes a LoRA
 * adapter as {@link Linear} does ({@link Lora#apply}; an rlhf4j extension, DS-Chat converts nn.Linear only).
 */
public final class Conv1D extends Module {
    public final Parameter weight;
    public final Parameter bias;
    private Lora.Adapter lora;

    public Conv1D(int in, int out, double initStd) {
        this.weight = parameter("weight", Init.normal(initStd), in, out);
        this.bias = parameter("bias", Init.zeros(), out);
    }

    public Tensor forward(Tensor x) {
        Tensor y = Functional.linearInOut(x, weight.value(), bias.value());
        return lora == null ? y : y.add(lora.delta(x));
    }

    /** The LoRA adapter, or null. */
    public Lora.Adapter lora() {
        return lora;
    }

    void addLora(int dim, double scaling, String layer) {
        if (lora != null) throw new IllegalStateException("LoRA: layer " + layer + " already has an adapter");
        int in = weight.shape()[0], out = weight.shape()[1];
        lora = new Lora.Adapter(weight, parameter(Lora.RIGHT, Lora.rightInit(dim), in, dim),
                parameter(Lora.LEFT, Init.zeros(), dim, out), scaling, true);
        weight.setFrozen(true);
    }
}
