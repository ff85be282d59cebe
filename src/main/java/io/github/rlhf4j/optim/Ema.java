package io.github.rlhf4j.optim;

import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.tensor.InPlace;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;

/**
 * An exponential moving average of parameters, DeepSpeed-Chat's moving_average: ema = beta * ema + (1 - beta) *
 * params after each step (beta 0.992 in step 3). It tracks a model's flat parameter buffer, so an update is one
 * native call.
 */
public final class Ema implements AutoCloseable {
    private final Tensor source;
    private final Scope scope;
    private final Tensor shadow;

    /** Starts the average at the current values of {@code source} (a flat F32 buffer). */
    public Ema(Tensor source) {
        this.source = source;
        this.scope = Scope.detached(source.device());
        this.shadow = scope.empty(DType.F32, source.shape());
        shadow.copyFromTensor(source, false);
    }

    /**
     * Keeps the average in {@code shadow}, the caller's buffer of {@code source}'s shape (the flat store of a model
     * that the average is saved as, or its ZeRO-3 partition), starting it at the current values of {@code source}.
     */
    public Ema(Tensor source, Tensor shadow) {
        if (!java.util.Arrays.equals(source.shape(), shadow.shape()) || shadow.dtype() != DType.F32
                || !source.device().equals(shadow.device()))
            throw new IllegalArgumentException("EMA shadow " + shadow.describe() + " does not match its source "
                    + source.describe());
        this.source = source;
        this.scope = null;
        this.shadow = shadow;
        shadow.copyFromTensor(source, false);
    }

    /** ema = beta * ema + (1 - beta) * source. */
    public void update(double beta) {
        if (!(beta >= 0 && beta <= 1)) throw new IllegalArgumentException("EMA beta = " + beta + " must be in [0, 1]");
        InPlace.axpby(1.0 - beta, source, beta, shadow);
    }

    /** The averaged values, in the source's layout. */
    public Tensor shadow() {
        return shadow;
    }

    @Override
    public void close() {
        if (scope != null) scope.close(); // a shadow of the caller's is the caller's to free
    }
}
