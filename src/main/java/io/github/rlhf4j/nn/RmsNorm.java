package io.github.rlhf4j.nn;

import io.github.rlhf4j.tensor.Functional;
import io.github.rlhf4j.tensor.Tensor;

/** Llama's RMSNorm (LlamaRMSNorm): weight only. */
public final class RmsNorm extends Module {
    public final Parameter weight;
    private final double eps;

    public RmsNorm(int dim, double eps) {
        this.weight = parameter("weight", Init.ones(), dim);
        this.eps = eps;
    }

    public Tensor forward(Tensor x) {
        return Functional.rmsNorm(x, weight.value(), eps);
    }
}
