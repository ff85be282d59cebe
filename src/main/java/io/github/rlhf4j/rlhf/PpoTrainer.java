package io.github.rlhf4j.rlhf;

import io.github.rlhf4j.data.LmBatch;
import io.github.rlhf4j.data.PromptBatch;
import io.github.rlhf4j.generate.Generator;
import io.github.rlhf4j.model.RewardModel;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.tensor.Autograd;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Step 3, DeepSpeed-Chat's DeepSpeedPPOTrainer: {@link #generateExperience} samples answers with the actor and
 * scores them (actor and reference logprobs, reward, values); {@link #trainRlhf} turns an experience into KL-penalised
 * rewards, GAE advantages and returns, and takes one actor step (clipped policy loss) and one critic step (clipped
 * value loss); {@link #trainUnsupervised} is the pretraining mixture; {@link #updateEma} the actor's EMA. Subclass it to change a piece, e.g. override
 * {@link #rewardScores} to score answers with a Java function instead of the reward model.
 */
public class PpoTrainer {
    /** The losses and figures of one {@link #trainRlhf} call, DS-Chat's logged values. */
    public record Losses(double actorLoss, double criticLoss, double averageReward, double kl, double answerLength,
                         double actorGradNorm, double criticGradNorm) {}

    /**
     * Wall-clock seconds spent in each phase of step 3 since the trainer was made (or {@link #resetPhaseTimes}), the
     * split DeepSpeed-Chat's timing table reports: sampling the answers, the experience forwards (actor, reference,
     * reward, critic), the actor's and the critic's training steps, and the pretraining mixture. Each phase ends with
     * a device synchronisation, so GPU work is charged to the phase that queued it.
     */
    public record PhaseTimes(double generation, double experience, double actorTraining, double criticTraining,
                             double unsupervised) {
        public double total() {
            return generation + experience + actorTraining + criticTraining + unsupervised;
        }
    }

    protected final RlhfEngine engine;
    protected final PpoConfig config;
    private final int padId;
    private final long[] phaseNanos = new long[5];
    private int[] lastSeq; // DS-Chat reuses the last sequences when every answer of a batch is too short
    private int lastRows, lastColumns, lastPromptLength;
    private long experiences; // batches generated so far

    public PpoTrainer(RlhfEngine engine, PpoConfig config) {
        this.engine = engine;
        this.config = config;
        this.padId = config.generation().padTokenId();
    }

    public RlhfEngine engine() {
        return engine;
    }

    public PpoConfig config() {
        return config;
    }

    /** Experience batches generated so far (the sampling seed of the next is the config's seed plus this). */
    public long experiencesGenerated() {
        return experiences;
    }

    /**
     * What generation carries from one batch to the next, for checkpoints: the experience counter (the next batch's
     * sampling seed is the config's seed plus it) and the last kept sequences (reused when every answer of a batch
     * is too short), {@code lastSequences} [lastRows, lastColumns] row-major, or null before the first batch.
     */
    public record GenerationState(long experiences, int[] lastSequences, int lastRows, int lastColumns,
                                  int lastPromptLength) {
        public GenerationState {
            if (experiences < 0) throw new IllegalArgumentException("experiences " + experiences + " must be >= 0");
            if (lastSequences != null && lastSequences.length != (long) lastRows * lastColumns)
                throw new IllegalArgumentException("last sequences: " + lastSequences.length + " ids for " + lastRows
                        + " x " + lastColumns);
        }
    }

    public GenerationState generationState() {
        return new GenerationState(experiences, lastSeq == null ? null : lastSeq.clone(), lastRows, lastColumns,
                lastPromptLength);
    }

    /** Continues generation from a checkpoint's {@link #generationState()}. */
    public void restoreGenerationState(GenerationState state) {
        experiences = state.experiences();
        lastSeq = state.lastSequences() == null ? null : state.lastSequences().clone();
        lastRows = state.lastRows();
        lastColumns = state.lastColumns();
        lastPromptLength = state.lastPromptLength();
    }

    private Device device() {
        return engine.actorOptimizer().store().device();
    }

    /** The seconds spent per phase so far. */
    public PhaseTimes phaseTimes() {
        long[] n = phaseNanos;
        return new PhaseTimes(n[0] / 1e9, n[1] / 1e9, n[2] / 1e9, n[3] / 1e9, n[4] / 1e9);
    }

    public void resetPhaseTimes() {
        java.util.Arrays.fill(phaseNanos, 0);
    }

    /** Charges the time since {@code t0} to {@code phase} after the device finished; returns the new start. */
    private long charge(int phase, long t0) {
        device().synchronize();
        long t = System.nanoTime();
        phaseNanos[phase] += t - t0;
        return t;
    }

    /**
     * Generates answers to {@code prompts} (left-padded) and scores them. Rows whose answer has at most one non-pad
     * token are dropped, as DS-Chat drops them; when every row is dropped, the previous batch's sequences are used
     * again.
     */
    public Experience generateExperience(PromptBatch prompts) {
        int b = prompts.rows(), p = prompts.columns();
        long t0 = System.nanoTime();
        engine.actor().train(false);
        int[][] ragged = new int[b][];
        for (int i = 0; i < b; i++) {
            int off = 0;
            while (off < p && prompts.attentionMask()[i * p + off] == 0) off++;
            if (off == p) throw new IllegalArgumentException("generateExperience: prompt " + i + " is all padding");
            ragged[i] = Arrays.copyOfRange(prompts.inputIds(), i * p + off, (i + 1) * p);
        }
        // each batch its own sampling stream (seed + batch number): reproducible, resumable, and not the same random
        // draws for every batch
        var gen = config.generation().withSeed(config.generation().seed() + experiences++);
        Generator.Result r;
        // ZeRO-3: gather the actor once for the whole generation phase, not every layer at every token (DeepSpeed's
        // Hybrid Engine), when it fits; a no-op at other stages
        try (var whole = engine.forGeneration()) {
            r = new Generator(engine.actor()).generate(ragged, gen, null);
        }
        charge(0, t0);
        List<int[]> kept = new ArrayList<>();
        int longest = 0;
        for (int i = 0; i < b; i++) {
            int[] answer = r.tokens()[i];
            int n = 0;
            for (int tok : answer) if (tok != padId) n++;
            if (n <= 1) continue;
            int[] row = new int[p + answer.length];
            System.arraycopy(prompts.inputIds(), i * p, row, 0, p);
            System.arraycopy(answer, 0, row, p, answer.length);
            kept.add(row);
            longest = Math.max(longest, answer.length);
        }
        int dropped = b - kept.size();
        int rows, columns;
        int[] seq;
        if (kept.isEmpty()) {
            if (lastSeq == null)
                throw new IllegalStateException("generateExperience: every answer of the first batch has at most one "
                        + "token; there is no earlier batch to reuse");
            seq = lastSeq;
            rows = lastRows;
            columns = lastColumns;
            p = lastPromptLength;
        } else {
            rows = kept.size();
            columns = p + longest;
            seq = new int[rows * columns];
            Arrays.fill(seq, padId);
            for (int i = 0; i < rows; i++) System.arraycopy(kept.get(i), 0, seq, i * columns, kept.get(i).length);
            lastSeq = seq;
            lastRows = rows;
            lastColumns = columns;
            lastPromptLength = p;
        }
        return score(seq, rows, columns, p, dropped);
    }

    /** Scores given sequences (prompt columns then answers) as generateExperience does after generating. */
    public Experience score(int[] seq, int rows, int columns, int promptLength, int dropped) {
        long t0 = System.nanoTime();
        int[] mask = new int[seq.length];
        double answerTokens = 0;
        for (int i = 0; i < seq.length; i++) {
            mask[i] = seq[i] != padId ? 1 : 0;
            if (i % columns >= promptLength) answerTokens += mask[i];
        }
        Scope keep = Scope.detached(device());
        try (Autograd.NoGrad ignored = Autograd.noGrad(); Scope s = Scope.open(device())) {
            engine.actor().train(false);
            engine.reference().train(false);
            engine.critic().train(false);
            engine.reward().train(false);
            Tensor ids = Tensor.ofInts(seq, rows, columns), m = Tensor.ofInts(mask, rows, columns);
            Tensor pos = positions(m);
            Tensor logprobs = PpoMath.gatherLogProbs(engine.actor().forward(ids, m, pos, null), ids);
            Tensor refLogprobs = elsewhere(engine.referenceDevice(), ids, m, pos,
                    (i, mm, p) -> PpoMath.gatherLogProbs(engine.reference().forward(i, mm, p, null), i));
            Tensor reward = elsewhere(engine.rewardDevice(), ids, m, pos, (i, mm, p) -> rewardScores(i, mm, promptLength));
            engine.releaseFrozen(); // partitioned frozen models keep 1/N between phases
            Tensor values = engine.critic().scores(ids, m, pos).slice(1, 0, columns - 1);
            double avgReward = 0;
            for (double x : reward.toDoubleArray()) avgReward += x / rows;
            Experience exp = new Experience(ids.copy(keep), m.copy(keep), logprobs.copy(keep),
                    refLogprobs.copy(keep), reward.copy(keep), values.copy(keep), promptLength,
                    new Experience.Stats(rows, dropped, answerTokens / rows, avgReward), keep);
            charge(1, t0);
            return exp;
        } catch (RuntimeException e) {
            keep.close();
            throw e;
        }
    }

    /** A forward of a frozen model over (ids, mask, positions). */
    @FunctionalInterface
    protected interface FrozenForward {
        Tensor apply(Tensor ids, Tensor attentionMask, Tensor positions);
    }

    /**
     * Runs {@code f} on the device {@code where} holds the frozen model (the CPU under --offload-reference-model, while
     * the actor is on the GPU): the ids, mask and positions go there through the host, and only the small result
     * ([B, T] logprobs, [B] rewards) comes back; the [B, T, V] logits never cross.
     */
    private Tensor elsewhere(Device where, Tensor ids, Tensor mask, Tensor pos, FrozenForward f) {
        if (where == device()) return f.apply(ids, mask, pos);
        int rows = ids.size(0), cols = ids.size(1);
        float[] out;
        int[] shape;
        try (Scope there = Scope.open(where)) {
            Tensor r = f.apply(Tensor.ofInts(ids.toIntArray(), rows, cols), Tensor.ofInts(mask.toIntArray(), rows, cols),
                    pos == null ? null : Tensor.ofInts(pos.toIntArray(), rows, cols));
            out = r.toFloatArray();
            shape = r.shape();
        }
        return Tensor.of(out, shape);
    }

    /**
     * The reward of each sequence [B]: by default the reward model's score at the last token of the answer
     * (DS-Chat's forward_value). Override to reward with anything else (a checker, a Java function).
     */
    protected Tensor rewardScores(Tensor seq, Tensor attentionMask, int promptLength) {
        RewardModel reward = engine.reward();
        return RewardModelMath.endScores(reward.scores(seq, attentionMask, positions(attentionMask)), seq, padId,
                promptLength);
    }

    /**
     * The position ids every model scores the sequences with: null (each family's default, what transformers'
     * forward computes without position_ids, as DS-Chat calls it) when {@link PpoConfig#positionsFromMask()} is
     * off; else {@code cumsum(mask) - 1}, the positions the answers were generated with, so that the logprobs being
     * trained are those of the policy that sampled (left-padded prompts otherwise shift GPT-2's and Llama's learned
     * or rotary positions between sampling and training; OPT derives them from the mask either way).
     */
    protected Tensor positions(Tensor attentionMask) {
        if (!config.positionsFromMask()) return null;
        int rows = attentionMask.size(0), cols = attentionMask.size(1);
        return Tensor.ofInts(io.github.rlhf4j.model.Transformer.positionsFromMask(attentionMask.toIntArray(), rows, cols),
                rows, cols);
    }

    /**
     * One PPO step on {@code exp}: an actor step, then a critic step; DS-Chat's train_rlhf. A NaN or Inf loss or
     * gradient stops the run, or with {@link Optimized#skipNonFiniteSteps} skips that model's step (the loss is
     * reported as it was).
     */
    public Losses trainRlhf(Experience exp) {
        int rows = exp.seq().size(0), columns = exp.seq().size(1), start = exp.promptLength() - 1;
        long t0 = System.nanoTime();
        try (Scope s = Scope.open(device())) {
            Tensor actionMask = exp.attentionMask().slice(1, 1, columns);
            Tensor oldRewards, oldValues, advantages, returns;
            int[] ends;
            double kl;
            try (Autograd.NoGrad ignored = Autograd.noGrad()) {
                oldRewards = PpoMath.computeRewards(exp.logprobs(), exp.refLogprobs(), exp.rewardScore(), actionMask,
                        start, config.klCtl(), config.clipRewardValue());
                ends = PpoMath.ends(actionMask, start);
                oldValues = PpoMath.zeroAfterEnds(exp.values(), ends);
                var ar = PpoMath.advantagesAndReturns(oldValues, oldRewards, start, config.gamma(), config.lam());
                advantages = ar.advantages();
                returns = ar.returns();
                kl = PpoMath.klEstimate(exp.logprobs(), exp.refLogprobs(), actionMask, start).perSequence();
            }
            Tensor answerMask = actionMask.slice(1, start, columns - 1);

            Tensor pos = positions(exp.attentionMask());
            engine.actor().train(true);
            Tensor logits = engine.actor().forward(exp.seq(), exp.attentionMask(), pos, null);
            Tensor logprobs = PpoMath.gatherLogProbs(logits, exp.seq()).slice(1, start, columns - 1);
            Tensor actorLoss = PpoMath.actorLoss(logprobs, exp.logprobs().slice(1, start, columns - 1), advantages,
                    answerMask, config.cliprange());
            double actorValue = actorLoss.item();
            if (engine.actorOptimizer().acceptLoss("ppo actor", actorValue)) {
                actorLoss.backward();
                engine.actorOptimizer().step("ppo actor");
            }
            t0 = charge(2, t0);

            engine.critic().train(true);
            Tensor values = engine.critic().scores(exp.seq(), exp.attentionMask(), pos).slice(1, start, columns - 1);
            Tensor criticLoss = PpoMath.criticLoss(values, oldValues.slice(1, start, columns - 1), returns, answerMask,
                    config.cliprangeValue());
            double criticValue = criticLoss.item();
            if (engine.criticOptimizer().acceptLoss("ppo critic", criticValue)) {
                criticLoss.backward();
                engine.criticOptimizer().step("ppo critic");
            }
            charge(3, t0);
            return new Losses(actorValue, criticValue, exp.stats().averageReward(), kl, exp.stats().answerLength(),
                    engine.actorOptimizer().lastGradNorm(), engine.criticOptimizer().lastGradNorm());
        }
    }

    /** The pretraining mixture: the actor's causal-LM loss on {@code batch} scaled by unsup_coef, and a step. */
    public double trainUnsupervised(LmBatch batch) {
        long t0 = System.nanoTime();
        engine.actor().train(true);
        try (Scope s = Scope.open(device())) {
            Tensor loss = SftTrainer.loss(engine.actor(), batch);
            double value = loss.item();
            if (engine.actorOptimizer().acceptLoss("ppo unsupervised", value)) {
                loss.mul(config.unsupCoef()).backward();
                engine.actorOptimizer().step("ppo unsupervised");
            }
            charge(4, t0);
            return value;
        }
    }

    /**
     * Moves the actor's EMA toward the actor (no-op without EMA): DS-Chat calls it once per step, after the PPO step
     * and the pretraining-mixture step.
     */
    public void updateEma() {
        if (engine.actorEma() != null) engine.actorEma().update(config.emaBeta());
    }
}
