package io.github.rlhf4j.nn;

import io.github.rlhf4j.tensor.Functional;
import io.github.rlhf4j.tensor.Tensor;

/** torch.nn.LayerNorm over the last dimension, with weight and bias. */
public final class LayerNorm extends Module {
    public final Parameter weight;
    public final Parameter bias;
    private final double eps;

    public LayerNorm(int dim, double eps) {
        this.weight = parameter("weight", Init.ones(), dim);
        this.bias = parameter("bias", Init.zeros(), dim);
        this.eps = eps;
    }

    public Tensor forward(Tensor x) {
        return Functional.layerNorm(x, weight.value(), bias.value(), eps);
    }
}
