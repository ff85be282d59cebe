package io.github.rlhf4j.rlhf;

import io.github.rlhf4j.model.CausalLM;
import io.github.rlhf4j.model.RewardModel;
import io.github.rlhf4j.nn.ParameterStore;
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
    private final io.github.rlhf4j.dist.ShardedStore referenceShards, rewardShards; // null: whole on every rank
    private final Ema actorEma;

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
        if (!actor.config().equals(reference.config()))
            throw new IllegalArgumentException("actor and reference must share a config");
        if (!critic.config().equals(reward.config()))
            throw new IllegalArgumentException("critic and reward model must share a config");
        this.actor = actor;
        this.actorOptimizer = actorOptimizer;
        this.reference = reference;
        this.referenceStore = referenceStore;
        this.critic = critic;
        this.criticOptimizer = criticOptimizer;
        this.reward = reward;
        this.rewardStore = rewardStore;
        this.actorEma = enableEma ? new Ema(actorOptimizer.emaSource()) : null;
        this.referenceShards = partitionFrozen(referenceStore, actorOptimizer);
        this.rewardShards = partitionFrozen(rewardStore, criticOptimizer);
    }

    private static io.github.rlhf4j.dist.ShardedStore partitionFrozen(ParameterStore frozen, Optimized trained) {
        io.github.rlhf4j.dist.Communicator comm = trained.communicator();
        if (trained.zeroStage() != 3 || comm == null || !comm.reaches(frozen.device())) return null;
        ParameterStore.Layout layout = frozen.layout();
        if (!layout.groupByLayer() || layout.flatMultiple() % io.github.rlhf4j.dist.Zero.flatMultiple(comm.worldSize()) != 0)
            return null;
        return new io.github.rlhf4j.dist.ShardedStore(frozen, comm, 3);
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
