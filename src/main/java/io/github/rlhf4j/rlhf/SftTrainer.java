package io.github.rlhf4j.rlhf;

import io.github.rlhf4j.data.LmBatch;
import io.github.rlhf4j.model.CausalLM;
import io.github.rlhf4j.tensor.Autograd;
import io.github.rlhf4j.tensor.Functional;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;

/**
 * Step 1, supervised fine-tuning: transformers' causal-LM loss (logits at t predict the label at t + 1; labels of
 * padding are -100 and ignored; the mean is over the predicted tokens) on prompt + chosen + end-of-conversation
 * rows, and perplexity = exp(mean loss) on the eval rows, as DeepSpeed-Chat's step 1 reports it.
 */
public class SftTrainer {
    private final CausalLM model;
    private final Optimized optimizer;

    public SftTrainer(CausalLM model, Optimized optimizer) {
        this.model = model;
        this.optimizer = optimizer;
    }

    /** The loss of {@code batch} (a scalar tensor on the tape). */
    public static Tensor loss(CausalLM model, LmBatch batch) {
        int b = batch.rows(), t = batch.columns();
        int[] targets = new int[b * t];
        for (int i = 0; i < b; i++)
            for (int j = 0; j < t; j++)
                targets[i * t + j] = j + 1 < t ? batch.labels()[i * t + j + 1] : LmBatch.IGNORE;
        Tensor logits = model.forward(Tensor.ofInts(batch.inputIds(), b, t), Tensor.ofInts(batch.attentionMask(), b, t),
                null, null);
        return Functional.crossEntropy(logits, Tensor.ofInts(targets, b, t), LmBatch.IGNORE);
    }

    /**
     * One optimizer step on {@code batch}; returns its loss. A NaN or Inf loss or gradient stops the step (or skips
     * it, see {@link Optimized#skipNonFiniteSteps}).
     */
    public double step(LmBatch batch) {
        model.train(true);
        try (Scope s = Scope.open(optimizer.store().device())) {
            Tensor loss = loss(model, batch);
            double value = loss.item();
            if (!optimizer.acceptLoss("sft", value)) return value;
            loss.backward();
            optimizer.step("sft");
            return value;
        }
    }

    /** Perplexity over {@code batches}: exp of the mean of the batch losses, as DS-Chat's evaluation_step1. */
    public double perplexity(Iterable<LmBatch> batches) {
        model.train(false);
        double sum = 0;
        int n = 0;
        try (Autograd.NoGrad ignored = Autograd.noGrad()) {
            for (LmBatch batch : batches)
                try (Scope s = Scope.open(optimizer.store().device())) {
                    sum += loss(model, batch).item();
                    n++;
                }
        }
        return n == 0 ? Double.NaN : Math.exp(sum / n);
    }

    public Optimized optimizer() {
        return optimizer;
    }
}
