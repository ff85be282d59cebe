package io.github.rlhf4j.nn;

import io.github.rlhf4j.tensor.Functional;
import io.github.rlhf4j.tensor.Tensor;

/**
 * torch.nn.Linear: weight [out, in], optional bias [out]; y = x W^T + b. With a LoRA adapter ({@link Lora#apply}),
 * y = x W^T + b + (x R L) * scaling and W is frozen.
 */
public final class Linear extends Module {
    public final Parameter weight;
    public final Parameter bias;
    private Lora.Adapter lora;

    public Linear(int in, int out, boolean bias, double initStd) {
        this.weight = parameter("weight", Init.normal(initStd), out, in);
        this.bias = bias ? parameter("bias", Init.zeros(), out) : null;
    }

    public Tensor forward(Tensor x) {
        Tensor y = Functional.linear(x, weight.value(), bias == null ? null : bias.value());
        return lora == null ? y : y.add(lora.delta(x));
    }

    /** The LoRA adapter, or null. */
    public Lora.Adapter lora() {
        return lora;
    }

    void addLora(int dim, double scaling, String layer) {
        if (lora != null) throw new IllegalStateException("LoRA: layer " + layer + " already has an adapter");
        int out = weight.shape()[0], in = weight.shape()[1];
        lora = new Lora.Adapter(weight, parameter(Lora.RIGHT, Lora.rightInit(dim), in, dim),
                parameter(Lora.LEFT, Init.zeros(), dim, out), scaling, false);
        weight.setFrozen(true);
    }
}
