package io.github.rlhf4j.optim;

import io.github.rlhf4j.tensor.InPlace;
import io.github.rlhf4j.tensor.Tensor;

/**
 * Clipping by global norm, as torch.nn.utils.clip_grad_norm_: norm = sqrt(sum of squares over every gradient),
 * coefficient = min(1, max_norm / (norm + 1e-6)). The coefficient is handed to {@link AdamW#step(double, double)}
 * as the gradient scale, so clipping costs no pass over the gradients of its own.
 */
public final class GradClip {
    private GradClip() {}

    /** The L2 norm over all the given gradients (for a model, its one flat gradient buffer). */
    public static double globalNorm(Tensor... grads) {
        double sum = 0;
        for (Tensor g : grads) sum += InPlace.sumOfSquares(g);
        double norm = Math.sqrt(sum);
        if (!Double.isFinite(norm))
            throw new ArithmeticException("gradient norm is " + norm + ": a NaN or Inf reached the gradients");
        return norm;
    }

    /** min(1, maxNorm / (norm + 1e-6)); 1 when maxNorm <= 0 (clipping off). */
    public static double coefficient(double norm, double maxNorm) {
        if (maxNorm <= 0) return 1.0;
        return Math.min(1.0, maxNorm / (norm + 1e-6));
    }
}
