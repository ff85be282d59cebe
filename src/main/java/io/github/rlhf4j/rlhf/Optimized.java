package io.github.rlhf4j.rlhf;

import io.github.rlhf4j.nn.Lora;
import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.optim.AdamW;
import io.github.rlhf4j.optim.GradClip;
import io.github.rlhf4j.optim.LrSchedule;
import io.github.rlhf4j.tensor.InPlace;

/**
 * A trained model's optimizer side, as a DeepSpeed engine holds it: the flat parameters and gradients, AdamW over
 * DeepSpeed-Chat's weight-decay groups (and its LoRA group, at its own learning rate, when the model has
 * {@link Lora} adapters), a learning-rate schedule whose factor scales every group's base rate, and gradient clipping
 * by global norm (DS-Chat's DeepSpeed config clips at 1.0). {@link #step} clips, steps at the scheduled rates and
 * zeroes the gradients. Frozen parameters (LoRA base weights) are in no group and keep a zero gradient.
 *
 * <p>A NaN or Inf in a loss ({@link #acceptLoss}) or a gradient stops the step with an {@link ArithmeticException}
 * naming the step and the tensor, before any weight changes; with {@link #skipNonFiniteSteps} on, the step is skipped
 * instead (gradients zeroed, weights, moments, step count and schedule untouched, as DeepSpeed skips an overflowing
 * fp16 step) and counted in {@link #skippedSteps}.
 */
public final class Optimized implements AutoCloseable {
    /**
     * The settings of one model's optimizer; {@code loraLr} is the base learning rate of the LoRA adapters
     * (DS-Chat's {@code --lora_learning_rate} / {@code --actor_lora_learning_rate}), unused without adapters.
     */
    public record Settings(double lr, double weightDecay, LrSchedule schedule, double maxGradNorm, double loraLr) {
        public Settings {
            if (!(lr > 0)) throw new IllegalArgumentException("learning rate " + lr + " must be > 0");
            if (!(weightDecay >= 0)) throw new IllegalArgumentException("weight decay " + weightDecay + " must be >= 0");
            if (!(maxGradNorm > 0)) throw new IllegalArgumentException("max grad norm " + maxGradNorm + " must be > 0");
            if (!(loraLr > 0)) throw new IllegalArgumentException("LoRA learning rate " + loraLr + " must be > 0");
        }

        /** With DS-Chat's default LoRA learning rate ({@link Lora#DEFAULT_LR}). */
        public Settings(double lr, double weightDecay, LrSchedule schedule, double maxGradNorm) {
            this(lr, weightDecay, schedule, maxGradNorm, Lora.DEFAULT_LR);
        }
    }

    private final ParameterStore store;
    private final AdamW adamw;
    private final Settings settings;
    private double lastGradNorm = Double.NaN;
    private boolean skipNonFinite;
    private long skipped;
    private String lastSkip;

    public Optimized(ParameterStore store, Settings settings) {
        this.store = store;
        this.settings = settings;
        this.adamw = AdamW.forStore(store, AdamW.Config.dsChat(settings.lr(), settings.weightDecay()),
                settings.loraLr());
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

    /** The LoRA adapters' learning rate the next step uses (their base rate times the schedule's factor). */
    public double loraLr() {
        return settings.schedule().lr(settings.loraLr(), adamw.stepCount());
    }

    /** The global gradient norm before clipping of the last step. */
    public double lastGradNorm() {
        return lastGradNorm;
    }

    /** With {@code on}, a non-finite loss or gradient skips the step (counted) instead of stopping the run. */
    public void skipNonFiniteSteps(boolean on) {
        this.skipNonFinite = on;
    }

    public boolean skipsNonFiniteSteps() {
        return skipNonFinite;
    }

    /** Steps skipped for a NaN or Inf so far. */
    public long skippedSteps() {
        return skipped;
    }

    /** Why the last step was skipped (null if none was). */
    public String lastSkipReason() {
        return lastSkip;
    }

    /**
     * Sets the counters a checkpoint saved: AdamW's steps taken (which also places the schedule) and the steps
     * skipped. The moments are restored through {@link AdamW#moments}.
     */
    public void restoreCounters(long steps, long skippedSteps) {
        if (skippedSteps < 0) throw new IllegalArgumentException("skipped steps " + skippedSteps + " must be >= 0");
        adamw.setStepCount(steps);
        this.skipped = skippedSteps;
    }

    /**
     * Checks a loss before its backward pass: true when it is finite. A NaN or Inf throws, naming {@code what} and
     * the step; when skipping, it counts the step as skipped and returns false (the caller then takes no step).
     */
    public boolean acceptLoss(String what, double loss) {
        if (Double.isFinite(loss)) return true;
        return skip(what + ": loss is " + loss + " at step " + (adamw.stepCount() + 1));
    }

    /**
     * Clips, steps and zeroes the gradients; returns whether the step was taken. A NaN or Inf gradient stops with the
     * step number and the first parameter whose gradient holds it, instead of corrupting the weights (or, when
     * skipping, zeroes the gradients, counts the step as skipped and returns false).
     */
    public boolean step(String what) {
        // not GradClip.globalNorm: it throws on a non-finite norm without the step and the parameter
        double norm = Math.sqrt(InPlace.sumOfSquares(store.grad()));
        if (!Double.isFinite(norm)) {
            String why = what + ": gradient norm is " + norm + " at step " + (adamw.stepCount() + 1)
                    + " (first non-finite gradient: " + firstNonFinite() + ")";
            store.zeroGrad();
            return skip(why);
        }
        lastGradNorm = norm;
        // each group at its base rate times the schedule's factor; the default groups exactly at lr()
        adamw.stepScheduled(settings.schedule().factor(adamw.stepCount()),
                GradClip.coefficient(norm, settings.maxGradNorm()));
        store.zeroGrad();
        return true;
    }

    private boolean skip(String why) {
        if (!skipNonFinite) throw new ArithmeticException(why + "; the step was not taken");
        skipped++;
        lastSkip = why + "; skipped";
        return false;
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
