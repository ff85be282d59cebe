package io.github.rlhf4j.rlhf;

import io.github.rlhf4j.data.PairBatch;
import io.github.rlhf4j.model.RewardModel;
import io.github.rlhf4j.tensor.Autograd;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;

/**
 * Step 2, the reward model: DeepSpeed-Chat's pairwise loss over the span where chosen and rejected differ
 * ({@link RewardModelMath#pairwiseLoss}) on batches stacked [all chosen; all rejected], and on the eval split the
 * chosen and rejected end scores and the accuracy (chosen end score above rejected).
 */
public class RewardTrainer {
    /** What the eval split gives. */
    public record Evaluation(double accuracy, double chosenScore, double rejectedScore, int pairs) {}

    private final RewardModel model;
    private final Optimized optimizer;
    private final int padId, numPaddingAtBeginning;

    public RewardTrainer(RewardModel model, Optimized optimizer, int padId, int numPaddingAtBeginning) {
        this.model = model;
        this.optimizer = optimizer;
        this.padId = padId;
        this.numPaddingAtBeginning = numPaddingAtBeginning;
    }

    private RewardModelMath.Pairwise forward(PairBatch batch) {
        int rows = batch.rows(), t = batch.columns();
        Tensor ids = Tensor.ofInts(batch.inputIds(), rows, t);
        Tensor scores = model.scores(ids, Tensor.ofInts(batch.attentionMask(), rows, t));
        return RewardModelMath.pairwiseLoss(scores, ids, padId, numPaddingAtBeginning);
    }

    /**
     * What one training step saw on its batch: the loss, and (before the step) the share of pairs whose chosen end
     * score beats the rejected one and the mean end scores, the training-side twins of {@link Evaluation}.
     */
    public record Step(double loss, double accuracy, double chosenScore, double rejectedScore) {}

    /** One optimizer step; returns the loss. */
    public double step(PairBatch batch) {
        return train(batch).loss();
    }

    /**
     * One optimizer step, with the batch's accuracy and end scores. A NaN or Inf loss or gradient stops the step (or
     * skips it, see {@link Optimized#skipNonFiniteSteps}).
     */
    public Step train(PairBatch batch) {
        model.train(true);
        try (Scope s = Scope.open(optimizer.store().device())) {
            RewardModelMath.Pairwise p = forward(batch);
            Tensor loss = p.loss();
            double value = loss.item();
            double[] c = p.chosenEndScores().toDoubleArray(), r = p.rejectedEndScores().toDoubleArray();
            int correct = 0;
            double chosen = 0, rejected = 0;
            for (int i = 0; i < c.length; i++) {
                if (c[i] > r[i]) correct++;
                chosen += c[i];
                rejected += r[i];
            }
            Step step = new Step(value, (double) correct / c.length, chosen / c.length, rejected / c.length);
            if (!optimizer.acceptLoss("reward", value)) return step;
            loss.backward();
            optimizer.step("reward");
            return step;
        }
    }

    public Evaluation evaluate(Iterable<PairBatch> batches) {
        model.train(false);
        int correct = 0, n = 0;
        double chosen = 0, rejected = 0;
        try (Autograd.NoGrad ignored = Autograd.noGrad()) {
            for (PairBatch batch : batches)
                try (Scope s = Scope.open(optimizer.store().device())) {
                    var p = forward(batch);
                    double[] c = p.chosenEndScores().toDoubleArray(), r = p.rejectedEndScores().toDoubleArray();
                    for (int i = 0; i < c.length; i++) {
                        if (c[i] > r[i]) correct++;
                        chosen += c[i];
                        rejected += r[i];
                        n++;
                    }
                }
        }
        return n == 0 ? new Evaluation(Double.NaN, Double.NaN, Double.NaN, 0)
                : new Evaluation((double) correct / n, chosen / n, rejected / n, n);
    }

    public Optimized optimizer() {
        return optimizer;
    }
}
