package io.github.rlhf4j.nn;

import io.github.rlhf4j.tensor.Functional;
import io.github.rlhf4j.tensor.Tensor;

/** torch.nn.Linear: weight [out, in], optional bias [out]; y = x W^T + b. */
public final class Linear extends Module {
    public final Parameter weight;
    public final Parameter bias;

    public Linear(int in, int out, boolean bias, double initStd) {
        this.weight = parameter("weight", Init.normal(initStd), out, in);
        this.bias = bias ? parameter("bias", Init.zeros(), out) : null;
    }

    public Tensor forward(Tensor x) {
        return Functional.linear(x, weight.value(), bias == null ? null : bias.value());
    }
}
