package io.github.rlhf4j.nn;

import io.github.rlhf4j.tensor.Functional;
import io.github.rlhf4j.tensor.Tensor;

/** GPT-2's Conv1D (transformers.pytorch_utils.Conv1D): a linear layer whose weight is stored [in, out]. */
public final class Conv1D extends Module {
    public final Parameter weight;
    public final Parameter bias;

    public Conv1D(int in, int out, double initStd) {
        this.weight = parameter("weight", Init.normal(initStd), in, out);
        this.bias = parameter("bias", Init.zeros(), out);
    }

    public Tensor forward(Tensor x) {
        return Functional.linearInOut(x, weight.value(), bias.value());
    }
}
