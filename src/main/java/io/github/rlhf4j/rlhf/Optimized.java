package io.github.rlhf4j.rlhf;

import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.optim.AdamW;
import io.github.rlhf4j.optim.GradClip;
import io.github.rlhf4j.optim.LrSchedule;
import io.github.rlhf4j.tensor.InPlace;

/**
 * A trained model's optimizer side, as a DeepSpeed engine holds it: the flat parameters and gradients, AdamW over
 * DeepSpeed-Chat's two weight-decay groups, a learning-rate schedule, and gradient clipping by global norm (DS-Chat's
 * DeepSpeed config clips at 1.0). {@link #step()} clips, steps at the scheduled rate and zeroes the gradients.
 */
public final class Optimized implements AutoCloseable {
    /** The settings of one model's optimizer. */
    public record Settings(double lr, double weightDecay, LrSchedule schedule, double maxGradNorm) {
        public Settings {
            if (!(lr > 0)) throw new IllegalArgumentException("learning rate " + lr + " must be > 0");
            if (!(weightDecay >= 0)) throw new IllegalArgumentException("weight decay " + weightDecay + " must be >= 0");
            if (!(maxGradNorm > 0)) throw new IllegalArgumentException("max grad norm " + maxGradNorm + " must be > 0");
        }
    }

    private final ParameterStore store;
    private final AdamW adamw;
    private final Settings settings;
    private double lastGradNorm = Double.NaN;

    public Optimized(ParameterStore store, Settings settings) {
        this.store = store;
        this.settings = settings;
        this.adamw = AdamW.forStore(store, AdamW.Config.dsChat(settings.lr(), settings.weightDecay()));
    }

    public ParameterStore store() {
        return store;
    }

    public AdamW adamw() {
        return adamw;
    }

    /** Steps taken. */
    public long steps() {
        return adamw.stepCount();
    }

    /** The learning rate the next step uses. */
    public double lr() {
        return settings.schedule().lr(settings.lr(), adamw.stepCount());
    }

    /** The global gradient norm before clipping of the last step. */
    public double lastGradNorm() {
        return lastGradNorm;
    }

    /**
     * Clips, steps and zeroes the gradients. A NaN or Inf gradient stops with the step number and the first parameter
     * whose gradient holds it, instead of corrupting the weights.
     */
    public void step(String what) {
        // not GradClip.globalNorm: it throws on a non-finite norm without the step and the parameter
        double norm = Math.sqrt(InPlace.sumOfSquares(store.grad()));
        if (!Double.isFinite(norm))
            throw new ArithmeticException(what + ": gradient norm is " + norm + " at step " + (adamw.stepCount() + 1)
                    + " (first non-finite gradient: " + firstNonFinite() + "); the step was not taken");
        lastGradNorm = norm;
        adamw.step(lr(), GradClip.coefficient(norm, settings.maxGradNorm()));
        store.zeroGrad();
    }

    /** The name of the first parameter whose gradient has a NaN or Inf (a host copy: only on the failure path). */
    private String firstNonFinite() {
        for (ParameterStore.Entry e : store.entries()) {
            if (e.parameter().isFrozen()) continue;
            for (double g : e.parameter().value().grad().toDoubleArray())
                if (!Double.isFinite(g)) return e.name();
        }
        return "none found";
    }

    @Override
    public void close() {
        adamw.close();
    }
}
