package io.github.rlhf4j.optim;

import io.github.rlhf4j.nn.Lora;
import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.tensor.InPlace;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Predicate;

/**
 * AdamW (decoupled weight decay, bias-corrected) as torch.optim.AdamW computes it, over flat F32 master weights:
 * one native call per group, whatever the number of tensors. The moments m and v are flat F32 buffers laid out like
 * the weights, so ZeRO-1 can later partition all three the same way.
 */
public final class AdamW implements AutoCloseable {
    /** Hyperparameters; DeepSpeed-Chat's are betas (0.9, 0.95), eps 1e-8. */
    public record Config(double lr, double beta1, double beta2, double eps, double weightDecay) {
        public Config {
            if (!(lr >= 0)) throw new IllegalArgumentException("lr = " + lr + " must be >= 0");
            if (!(beta1 >= 0 && beta1 < 1)) throw new IllegalArgumentException("beta1 = " + beta1 + " must be in [0, 1)");
            if (!(beta2 >= 0 && beta2 < 1)) throw new IllegalArgumentException("beta2 = " + beta2 + " must be in [0, 1)");
            if (!(eps > 0)) throw new IllegalArgumentException("eps = " + eps + " must be > 0");
            if (!(weightDecay >= 0)) throw new IllegalArgumentException("weight_decay = " + weightDecay + " must be >= 0");
        }

        /** torch.optim.AdamW's defaults with the given learning rate and weight decay. */
        public static Config torchDefaults(double lr, double weightDecay) {
            return new Config(lr, 0.9, 0.999, 1e-8, weightDecay);
        }

        /** DeepSpeed-Chat's: betas (0.9, 0.95). */
        public static Config dsChat(double lr, double weightDecay) {
            return new Config(lr, 0.9, 0.95, 1e-8, weightDecay);
        }
    }

    /**
     * A flat run of parameters and their gradients (1-d F32 views) with its weight decay and its own base learning
     * rate {@code lr}, or NaN to take the optimizer's (torch's param_groups: a group's "lr" overrides the default).
     */
    public record Group(Tensor params, Tensor grads, double weightDecay, double lr) {
        public Group {
            if (!(Double.isNaN(lr) || lr >= 0))
                throw new IllegalArgumentException("group lr = " + lr + " must be >= 0 (or NaN: the optimizer's)");
        }

        /** A group at the optimizer's learning rate. */
        public Group(Tensor params, Tensor grads, double weightDecay) {
            this(params, grads, weightDecay, Double.NaN);
        }

        public boolean hasOwnLr() {
            return !Double.isNaN(lr);
        }
    }

    private final Config config;
    private final List<Group> groups;
    private final List<Tensor[]> moments = new ArrayList<>();
    private final Scope scope;
    private long step;

    public AdamW(List<Group> groups, Config config) {
        this.config = config;
        this.groups = List.copyOf(groups);
        Scope sc = null;
        for (Group g : groups) {
            if (sc == null) sc = Scope.detached(g.params().device());
            moments.add(new Tensor[] {sc.flatZeros(DType.F32, g.params().numel()),
                    sc.flatZeros(DType.F32, g.params().numel())});
        }
        this.scope = sc;
    }

    /**
     * AdamW over a model's store in DeepSpeed-Chat's groups (get_optimizer_grouped_parameters): weight decay for all
     * but the parameters its name rule exempts, biases and most norm weights ({@link ParameterStore#dsChatNoDecay});
     * LoRA adapters, if any, at DS-Chat's default LoRA learning rate ({@link Lora#DEFAULT_LR}); frozen parameters
     * are left out.
     */
    public static AdamW forStore(ParameterStore store, Config config) {
        return forStore(store, config, Lora.DEFAULT_LR);
    }

    /**
     * DeepSpeed-Chat's three groups: decayed parameters at the optimizer's learning rate, decayed LoRA adapters
     * ({@link Lora#isLoraParameter}) at {@code loraLr}, and the no-decay parameters (adapters among them, should a
     * name rule catch one) at the optimizer's rate without decay. Without adapters, the two groups of
     * {@link #forStore(ParameterStore, Config, Predicate)}.
     */
    public static AdamW forStore(ParameterStore store, Config config, double loraLr) {
        Predicate<String> noDecay = ParameterStore::dsChatNoDecay;
        return forStore(store, config, store.ranges(noDecay, n -> Lora.isLoraParameter(n) && !noDecay.test(n)),
                loraLr);
    }

    /**
     * ZeRO stage 1 and up: {@link #forStore(ParameterStore, Config, double)} over the flat elements [start, end) only
     * (this rank's slice): groups are clipped to it and the moments hold only its elements.
     */
    public static AdamW forSlice(ParameterStore store, Config config, double loraLr, long start, long end) {
        if (start < 0 || end > store.flatSize() || start > end)
            throw new IllegalArgumentException("slice [" + start + ", " + end + ") is not within the store's "
                    + store.flatSize() + " elements");
        return forStore(store, config, clip(dsChatRanges(store), new long[] {start}, new long[] {end}), loraLr);
    }

    /** DeepSpeed-Chat's groups of a store as flat ranges: decay, LoRA (own learning rate), no decay. */
    public static List<ParameterStore.Range> dsChatRanges(ParameterStore store) {
        Predicate<String> noDecay = ParameterStore::dsChatNoDecay;
        return store.ranges(noDecay, n -> Lora.isLoraParameter(n) && !noDecay.test(n));
    }

    /** {@code ranges} cut to the slices [starts[k], ends[k]) (increasing, disjoint), in order. */
    public static List<ParameterStore.Range> clip(List<ParameterStore.Range> ranges, long[] starts, long[] ends) {
        List<ParameterStore.Range> clipped = new ArrayList<>();
        for (int k = 0; k < starts.length; k++)
            for (ParameterStore.Range r : ranges) {
                long s = Math.max(r.start(), starts[k]), e = Math.min(r.end(), ends[k]);
                if (s < e) clipped.add(new ParameterStore.Range(s, e, r.decay(), r.ownLr()));
            }
        return clipped;
    }

    /** Two groups by {@code noDecay}, every one at the optimizer's learning rate. */
    public static AdamW forStore(ParameterStore store, Config config, Predicate<String> noDecay) {
        return forStore(store, config, store.ranges(noDecay), Double.NaN);
    }

    private static AdamW forStore(ParameterStore store, Config config, List<ParameterStore.Range> ranges,
                                  double ownLr) {
        List<Group> groups = new ArrayList<>();
        for (ParameterStore.Range r : ranges) {
            groups.add(new Group(store.data().flatRange(r.start(), r.end()), store.grad().flatRange(r.start(), r.end()),
                    r.decay() ? config.weightDecay() : 0.0, r.ownLr() ? ownLr : Double.NaN));
        }
        return new AdamW(groups, config);
    }

    public Config config() {
        return config;
    }

    /** Steps taken so far. */
    public long stepCount() {
        return step;
    }

    /**
     * Sets the steps taken so far, for resuming from a checkpoint together with the moments ({@link #moments}): the
     * bias corrections of the next step depend on it.
     */
    public void setStepCount(long steps) {
        if (steps < 0) throw new IllegalArgumentException("step count " + steps + " must be >= 0");
        this.step = steps;
    }

    /** One step at the configured learning rate. */
    public void step() {
        step(config.lr(), 1.0);
    }

    /**
     * One step at learning rate {@code lr} (a schedule's value), with the gradients multiplied by {@code gradScale}
     * first (a clipping coefficient, or 1 / loss scale). A group with its own learning rate steps at that rate
     * times {@code lr / config().lr()}, the same schedule factor.
     */
    public void step(double lr, double gradScale) {
        double factor = config.lr() > 0 ? lr / config.lr() : 0.0;
        step(g -> g.hasOwnLr() ? g.lr() * factor : lr, gradScale);
    }

    /**
     * One step with every group at its base learning rate (its own, or the optimizer's) times {@code factor}: a
     * schedule's factor applied as LambdaLR applies it to each param group (DeepSpeed-Chat's get_scheduler).
     */
    public void stepScheduled(double factor, double gradScale) {
        step(g -> (g.hasOwnLr() ? g.lr() : config.lr()) * factor, gradScale);
    }

    /** The base learning rate of group {@code i}: its own, or the optimizer's. */
    public double baseLr(int i) {
        Group g = groups.get(i);
        return g.hasOwnLr() ? g.lr() : config.lr();
    }

    /**
     * {@link #stepScheduled} a piece at a time: {@code pieces} are {group, start, end} ranges of the groups, in the
     * order to step them (together, each group once). {@code before} runs with a piece's index before it is stepped
     * (its gradients must be in place when it returns) and {@code after} once it is: ZeRO-Offload copies a piece's
     * gradients down and its weights up while the CPU steps another. AdamW is elementwise, so the result is the
     * whole step's.
     */
    public void stepScheduledInPieces(double factor, double gradScale, List<long[]> pieces,
                                      java.util.function.IntConsumer before, java.util.function.IntConsumer after) {
        step++;
        for (int p = 0; p < pieces.size(); p++) {
            long[] piece = pieces.get(p);
            Group g = groups.get((int) piece[0]);
            Tensor[] mv = moments.get((int) piece[0]);
            long a = piece[1], b = piece[2];
            before.accept(p);
            InPlace.adamw(g.params().flatRange(a, b), g.grads().flatRange(a, b), mv[0].flatRange(a, b),
                    mv[1].flatRange(a, b), (g.hasOwnLr() ? g.lr() : config.lr()) * factor, config.beta1(),
                    config.beta2(), config.eps(), g.weightDecay(), step, gradScale, null);
            after.accept(p);
        }
    }

    private void step(java.util.function.ToDoubleFunction<Group> lrOf, double gradScale) {
        step++;
        for (int i = 0; i < groups.size(); i++) {
            Group g = groups.get(i);
            Tensor[] mv = moments.get(i);
            InPlace.adamw(g.params(), g.grads(), mv[0], mv[1], lrOf.applyAsDouble(g), config.beta1(), config.beta2(),
                    config.eps(), g.weightDecay(), step, gradScale, null);
        }
    }

    /** The first and second moments of group {@code i} (for checkpoints). */
    public Tensor[] moments(int i) {
        return moments.get(i).clone();
    }

    public List<Group> groups() {
        return groups;
    }

    @Override
    public void close() {
        if (scope != null) scope.close();
    }
}
