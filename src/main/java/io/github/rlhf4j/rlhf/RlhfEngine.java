package io.github.rlhf4j.rlhf;

import io.github.rlhf4j.model.CausalLM;
import io.github.rlhf4j.model.RewardModel;
import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.dist.ShardedStore;
import io.github.rlhf4j.optim.Ema;

/**
 * The four models of step 3 and their optimizers, as DeepSpeed-Chat's DeepSpeedRLHFEngine holds them: the actor
 * (trained; from step 1), a frozen reference (the step-1 weights), the critic (trained; from the step-2 reward
 * model; its per-token scores are the values), the frozen reward model, and optionally an EMA of the actor. The
 * engine owns and closes the stores and optimizers it is given.
 */
public final class RlhfEngine implements AutoCloseable {
    private final CausalLM actor, reference;
    private final RewardModel critic, reward;
    private final Optimized actorOptimizer, criticOptimizer;
    private final ParameterStore referenceStore, rewardStore;
    private final ShardedStore referenceShards, rewardShards; // null: whole on every rank
    private final Ema actorEma;
    private HybridEngine hybridEngine = HybridEngine.AUTO;
    private String generationMode;

    /**
     * A frozen (inference-only) model's parameters as built: its store, and when it is partitioned over the ranks
     * (ZeRO-3 inference) the {@link ShardedStore} that holds them, else null. The engine closes both.
     */
    public record Frozen(ParameterStore store, ShardedStore shards) {
        public Frozen {
            if (store == null) throw new IllegalArgumentException("a frozen model needs its store");
            if (shards != null && shards.store() != store)
                throw new IllegalArgumentException("the partitioned store is not the frozen model's");
        }
    }

    /**
     * @param referenceStore the reference's (inference-only) store, closed with the engine
     * @param rewardStore the reward model's (inference-only) store, closed with the engine
     * @param enableEma whether to keep an EMA of the actor's weights
     *     <p>As DeepSpeed-Chat does, the reference is partitioned over the ranks (ZeRO-3 inference: a layer gathered
     *     for its forward, released after) when the actor trains at ZeRO stage 3, and the reward model when the
     *     critic does, provided their stores are laid out for it ({@code Zero.layout(world, 3)}); else they stay whole
     *     on every rank. {@link #frozenMode} says which.
     */
    public RlhfEngine(CausalLM actor, Optimized actorOptimizer, CausalLM reference, ParameterStore referenceStore,
                      RewardModel critic, Optimized criticOptimizer, RewardModel reward, ParameterStore rewardStore,
                      boolean enableEma) {
        this(actor, actorOptimizer, reference, new Frozen(referenceStore, partitionFrozen(referenceStore, actorOptimizer)),
                critic, criticOptimizer, reward, new Frozen(rewardStore, partitionFrozen(rewardStore, criticOptimizer)),
                enableEma ? new Ema(actorOptimizer.emaSource()) : null);
    }

    /**
     * The four models as built, the frozen ones possibly built partitioned already (ZeRO-3's {@code zero.Init}:
     * {@link ShardedStore} over a laid-out store), and the actor's EMA (null: none), which must average
     * {@code actorOptimizer.emaSource()}: its shadow can be the flat store, or at ZeRO stage 3 the partition, of a
     * model of the actor's layout, which then saves and loads like any model. The engine closes what it is given,
     * the EMA's shadow excepted when it is the caller's.
     */
    public RlhfEngine(CausalLM actor, Optimized actorOptimizer, CausalLM reference, Frozen referenceModel,
                      RewardModel critic, Optimized criticOptimizer, RewardModel reward, Frozen rewardModel, Ema actorEma) {
        if (!actor.config().equals(reference.config()))
            throw new IllegalArgumentException("actor and reference must share a config");
        if (!critic.config().equals(reward.config()))
            throw new IllegalArgumentException("critic and reward model must share a config");
        this.actor = actor;
        this.actorOptimizer = actorOptimizer;
        this.reference = reference;
        this.referenceStore = referenceModel.store();
        this.critic = critic;
        this.criticOptimizer = criticOptimizer;
        this.reward = reward;
        this.rewardStore = rewardModel.store();
        this.actorEma = actorEma;
        this.referenceShards = referenceModel.shards();
        this.rewardShards = rewardModel.shards();
    }

    /**
     * A frozen model's store partitioned over {@code trained}'s ranks when that model trains at ZeRO stage 3 and the
     * store is on a device its communicator reaches, laid out for it; else null (kept whole on every rank).
     */
    public static ShardedStore partitionFrozen(ParameterStore frozen, Optimized trained) {
        return partitionsFrozen(trained.zeroStage(), trained.communicator(), frozen.device(), frozen.layout())
                ? new ShardedStore(frozen, trained.communicator(), 3) : null;
    }

    /**
     * Whether a frozen model on {@code device}, laid out as {@code layout}, is partitioned beside a model trained at
     * ZeRO {@code zeroStage} over {@code comm} (DeepSpeed-Chat's ZeRO-3 inference for the reference and reward
     * models): the stage is 3, the communicator reaches {@code device}, and the layout puts every layer group on the
     * partitions' multiple.
     */
    public static boolean partitionsFrozen(int zeroStage, io.github.rlhf4j.dist.Communicator comm,
                                           io.github.rlhf4j.runtime.Device device, ParameterStore.Layout layout) {
        return zeroStage == 3 && comm != null && comm.reaches(device) && layout.groupByLayer()
                && layout.flatMultiple() % io.github.rlhf4j.dist.Zero.flatMultiple(comm.worldSize()) == 0;
    }

    /**
     * How the actor generates when it trains at ZeRO stage 3: DeepSpeed's Hybrid Engine (DS-Chat's
     * {@code --enable_hybrid_engine}) or not. {@code ON} gathers its parameters whole once per generation phase and
     * gives them back after; {@code OFF} leaves them partitioned, so that every forward (one per generated token)
     * gathers each layer in turn: one layer whole at a time, for a layer's all-gather per layer per token;
     * {@code AUTO} gathers whole when every rank has room for the whole actor beside what it holds, with an eighth of
     * the device spare for the generation itself (the ranks agree, as their collectives must match); else keeps as
     * many layer groups gathered for the phase as there is room for and gathers the others for each forward; with
     * room for none, runs layer by layer.
     */
    public enum HybridEngine { AUTO, ON, OFF }

    /** Sets how the actor generates at ZeRO stage 3 ({@link HybridEngine}; {@code AUTO} unless set). */
    public void hybridEngine(HybridEngine mode) {
        this.hybridEngine = java.util.Objects.requireNonNull(mode, "hybrid engine mode");
    }

    /**
     * For a generation phase: the actor's parameters as {@link HybridEngine} says, until the guard closes (at ZeRO
     * stage 3 a collective: every rank calls it at the same point). {@link #generationMode} says which ran.
     */
    public ShardedStore.Whole forGeneration() {
        ShardedStore shards = actorOptimizer.partitionedParameters();
        if (shards == null) {
            generationMode = "parameters whole on every rank";
            return () -> {};
        }
        if (hybridEngine == HybridEngine.ON) return whole(shards, "--hybrid-engine on");
        if (hybridEngine == HybridEngine.OFF) return layered("--hybrid-engine off");
        // auto: what every rank can spare, an eighth of the device kept for the generation itself; the least of
        // them, so that every rank keeps the same groups, as their collectives must match
        io.github.rlhf4j.runtime.Device.MemoryStats m = shards.store().device().memory();
        long spare = m.total() - m.inUse() + m.cached() - m.total() / 8;
        String cap = System.getProperty(BUDGET_PROPERTY);
        if (cap != null && !cap.isBlank()) spare = Math.min(spare, Long.parseLong(cap.trim()));
        long[] all = actorOptimizer.communicator().allGather(spare);
        int least = 0;
        for (int r = 1; r < all.length; r++) if (all[r] < all[least]) least = r;
        long need = shards.bytesToGather(), budget = Math.max(0, all[least]);
        if (budget >= need) return whole(shards, "the whole actor, " + size(need) + " more, fits every rank");
        long[] kept = new long[2];
        ShardedStore.Whole guard = shards.gatheredWithin(budget, kept);
        // no figure that moves from phase to phase (the budget does): the log notes the mode when it changes
        String room = "rank " + least + " has no room for the whole actor's " + size(need);
        if (kept[0] == 0) {
            guard.close();
            return layered(room + ", nor for one group");
        }
        generationMode = "ZeRO-3 hybrid, in part: " + kept[0] + " of " + shards.groups() + " layer groups (" + size(kept[1])
                + ") kept gathered for the phase, the others gathered for each forward (" + room + ")";
        return guard;
    }

    /**
     * A system property capping, in bytes, what {@code --hybrid-engine auto} may gather on each rank (to leave
     * memory to something else, or to test the partial mode on a machine with room to spare).
     */
    public static final String BUDGET_PROPERTY = "rlhf4j.hybrid_engine.budget";

    private static String size(long bytes) {
        if (bytes >= 1L << 30) return String.format(java.util.Locale.ROOT, "%.2f GiB", bytes / (double) (1L << 30));
        if (bytes >= 1L << 20) return String.format(java.util.Locale.ROOT, "%.1f MiB", bytes / (double) (1L << 20));
        return String.format(java.util.Locale.ROOT, "%,d bytes", bytes);
    }

    private ShardedStore.Whole whole(ShardedStore shards, String why) {
        generationMode = "ZeRO-3 hybrid: parameters gathered whole once per generation phase, released after (" + why + ")";
        return shards.gathered();
    }

    private ShardedStore.Whole layered(String why) {
        generationMode = "ZeRO-3, layer by layer: each layer gathered for each forward, the next one's gather started ahead (" + why + ")";
        return () -> {};
    }

    /** How the last generation phase held the actor ({@link #forGeneration}); null before the first. */
    public String generationMode() {
        return generationMode;
    }

    /** How the frozen models are held: partitioned (ZeRO-3 inference) or whole on every rank. */
    public String frozenMode() {
        return "reference " + (referenceShards != null ? "partitioned over the ranks (ZeRO-3 inference)" : "whole")
                + ", reward model " + (rewardShards != null ? "partitioned" : "whole");
    }

    /**
     * After the frozen models' forwards (the experience's scoring): gives back the parameters a partitioned frozen
     * model kept gathered (its embeddings and heads), so that between phases a rank holds 1/N of it.
     */
    public void releaseFrozen() {
        if (referenceShards != null) referenceShards.release();
        if (rewardShards != null) rewardShards.release();
    }

    public CausalLM actor() {
        return actor;
    }

    public CausalLM reference() {
        return reference;
    }

    public RewardModel critic() {
        return critic;
    }

    public RewardModel reward() {
        return reward;
    }

    /** Where the reference runs: the actor's device, or the CPU with the reference offloaded. */
    public io.github.rlhf4j.runtime.Device referenceDevice() {
        return referenceStore.device();
    }

    /** Where the reward model runs. */
    public io.github.rlhf4j.runtime.Device rewardDevice() {
        return rewardStore.device();
    }

    public Optimized actorOptimizer() {
        return actorOptimizer;
    }

    public Optimized criticOptimizer() {
        return criticOptimizer;
    }

    /**
     * The EMA of the actor's flat weights (null without EMA); at ZeRO stage 3 of this rank's partition of them
     * ({@link Optimized#emaSource}, {@link Optimized#gatherWhole}).
     */
    public Ema actorEma() {
        return actorEma;
    }

    @Override
    public void close() {
        if (actorEma != null) actorEma.close();
        actorOptimizer.close();
        criticOptimizer.close();
        actorOptimizer.store().close();
        criticOptimizer.store().close();
        if (referenceShards != null) referenceShards.close();
        if (rewardShards != null) rewardShards.close();
        referenceStore.close();
        rewardStore.close();
    }
}
