package io.github.rlhf4j.nn;

import io.github.rlhf4j.tensor.Functional;
import io.github.rlhf4j.tensor.Tensor;

/** torch.nn.Embedding: weight [num, dim]. */
public final class Embedding extends Module {
    public final Parameter weight;

    public Embedding(int num, int dim, double initStd) {
        this.weight = parameter("weight", Init.normal(initStd), num, dim);
    }

    public Tensor forward(Tensor ids) {
        return Functional.embedding(ids, weight.value());
    }
}
