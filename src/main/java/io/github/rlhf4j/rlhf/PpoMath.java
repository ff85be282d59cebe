package io.github.rlhf4j.rlhf;

import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.tensor.Autograd;
import io.github.rlhf4j.tensor.Functional;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import java.util.Arrays;

/**
 * The math of DeepSpeed-Chat's PPO step ({@code dschat/rlhf/ppo_trainer.py}, DeepSpeedPPOTrainer), one static function
 * per method of theirs and under their names: {@link #gatherLogProbs}, {@link #computeRewards},
 * {@link #advantagesAndReturns}, {@link #actorLoss}, {@link #criticLoss}. Checked against those methods run verbatim
 * in PyTorch ({@code src/test/python/make_rlhf_math_fixtures.py}).
 *
 * <p><b>Shapes.</b> A batch is B sequences of T tokens, {@code seq = [prompt | answer]}: the prompts left-padded to a
 * common length P, the answers right-padded to T - P. Per-action tensors are [B, T-1]: action t emits token t+1
 * from the logits at t, so the answer's actions are t >= {@code start = P - 1}, and
 * {@code actionMask = attentionMask[:, 1:]} ({@code seq != pad}). The losses take the answer part
 * {@code [:, start:]}, [B, T-1-start], as DS-Chat slices it before calling them.
 *
 * <p><b>Where it runs.</b> The two losses and {@link #gatherLogProbs} are tensor ops, differentiable through the tape.
 * Rewards, GAE and the KL figure are experience-side and need no gradient; their work is O(B T) scalars with a
 * sequential scan over t (GAE) and per-row index arithmetic (the ends), so they copy their inputs to the host, compute
 * in double, and return tensors of the input's dtype on the input's device in the current scope: one round trip of
 * B x T values instead of 2T tiny kernel launches.
 *
 * <p><b>Masks</b> may be I32 (as {@code seq != pad} comes) or floating, with values 0 and 1.
 */
public final class PpoMath {
    private PpoMath() {}

    /** DeepSpeedPPOTrainer's constants: the KL coefficient of the per-token reward. */
    public static final double KL_CTL = 0.1;
    /** The reward score is clamped to [-5, 5] before it is added at the answer's end. */
    public static final double CLIP_REWARD_VALUE = 5;
    /** The policy ratio is clipped to [1 - 0.2, 1 + 0.2]. */
    public static final double CLIPRANGE = 0.2;
    /** New values are clipped to old +- 0.2. */
    public static final double CLIPRANGE_VALUE = 0.2;
    /** GAE discount. */
    public static final double GAMMA = 1.0;
    /** GAE lambda. */
    public static final double LAM = 0.95;

    /** Target id of the last position in {@link #gatherLogProbs}: no token follows it. */
    private static final int NO_TARGET = -100;

    // ---- experience: log-probabilities ---------------------------------------------------------------------------

    /**
     * DS-Chat's {@code gather_log_probs(logits[:, :-1], seq[:, 1:])}: out[b, t] = log softmax(logits[b, t])[seq[b, t+1]].
     *
     * <p>logits [B, T, V] (floating), ids I32 [B, T] → [B, T-1], differentiable with respect to logits. The logits
     * are not sliced (a [:, :-1] slice of [B, T, V] is not contiguous and would be copied whole): each row's targets
     * are shifted by one and the last position gets an ignored target, so it costs one extra log-softmax row per
     * sequence instead of a copy of B x T x V.
     */
    public static Tensor gatherLogProbs(Tensor logits, Tensor ids) {
        if (logits.dim() != 3 || ids.dim() != 2 || logits.size(0) != ids.size(0) || logits.size(1) != ids.size(1))
            throw new IllegalArgumentException("gatherLogProbs: logits " + logits.describe() + " and ids "
                    + ids.describe() + " must be [B, T, V] and [B, T]");
        if (ids.dtype() != DType.I32)
            throw new IllegalArgumentException("gatherLogProbs: ids " + ids.describe() + " must be i32");
        int b = ids.size(0), t = ids.size(1);
        if (t < 2) throw new IllegalArgumentException("gatherLogProbs: " + t + " tokens have no next token to score");
        Tensor targets;
        try (Autograd.NoGrad ignored = Autograd.noGrad()) {
            targets = Functional.concat(1, ids.slice(1, 1, t), Tensor.full(DType.I32, NO_TARGET, b, 1));
        }
        return Functional.logprobs(logits, targets, NO_TARGET).slice(1, 0, t - 1);
    }

    // ---- experience: rewards, values, GAE ------------------------------------------------------------------------

    /**
     * The index one past the last action each row is rewarded through:
     * {@code ends[j] = start + sum(actionMask[j, start:]) + 1}, DS-Chat's arithmetic. Note the count, not the
     * position of the first pad: with n non-pad answer tokens, the answer's actions are start .. start+n-1, so
     * {@code ends[j] - 1 = start + n} is the action <em>after</em> the last answer token (the one that emits the pad or
     * end-of-text token), and {@code ends[j] = T} (one past the last action, T-1) when the answer fills the row.
     *
     * @param actionMask [B, T-1], {@code attentionMask[:, 1:]}
     * @param start the prompt length minus 1
     */
    public static int[] ends(Tensor actionMask, int start) {
        double[][] m = rows("ends", actionMask, "actionMask");
        checkStart("ends", start, m[0].length);
        int[] ends = new int[m.length];
        for (int j = 0; j < m.length; j++) {
            double n = 0;
            for (int t = start; t < m[j].length; t++) n += m[j][t];
            ends[j] = start + (int) n + 1;
        }
        return ends;
    }

    /**
     * The per-action rewards DS-Chat trains on: {@code compute_rewards} followed by train_rlhf's zeroing.
     *
     * <pre>
     * rewards = -klCtl * (logprobs - refLogprobs)
     * rewards[j, start:ends[j]][-1] += clamp(rewardScore[j], -clip, clip)   i.e. at min(ends[j], T-1) - 1
     * rewards[j, ends[j]:] = 0
     * </pre>
     *
     * Positions before {@code start} (the prompt) keep their KL term; GAE never reads them. No gradient.
     *
     * @param logprobs the actor's token logprobs [B, T-1] at experience time
     * @param refLogprobs the reference model's [B, T-1]
     * @param rewardScore the reward model's score per sequence [B] ({@link RewardModelMath#endScores})
     * @param actionMask [B, T-1]
     * @param start the prompt length minus 1
     * @param klCtl {@link #KL_CTL}
     * @param clipRewardValue {@link #CLIP_REWARD_VALUE}
     * @return [B, T-1], logprobs' dtype and device
     */
    public static Tensor computeRewards(Tensor logprobs, Tensor refLogprobs, Tensor rewardScore, Tensor actionMask,
                                        int start, double klCtl, double clipRewardValue) {
        String op = "computeRewards";
        double[][] lp = rows(op, logprobs, "logprobs"), ref = rows(op, refLogprobs, "refLogprobs");
        sameShape(op, logprobs, refLogprobs, "refLogprobs");
        sameShape(op, logprobs, actionMask, "actionMask");
        int b = lp.length, len = lp[0].length;
        if (rewardScore.dim() != 1 || rewardScore.size(0) != b)
            throw new IllegalArgumentException(op + ": rewardScore " + rewardScore.describe() + " must be [" + b + "]");
        if (!(clipRewardValue >= 0)) throw new IllegalArgumentException(op + ": clipRewardValue " + clipRewardValue + " < 0");
        double[] score = rewardScore.toDoubleArray();
        int[] ends = ends(actionMask, start);
        double[] out = new double[b * len];
        for (int j = 0; j < b; j++) {
            for (int t = 0; t < len; t++) out[j * len + t] = -klCtl * (lp[j][t] - ref[j][t]);
            // Python's rewards[j, start:ends[j]][-1]: the slice stops at the row's end when ends[j] > T-1.
            int last = Math.min(ends[j], len) - 1;
            out[j * len + last] += Math.clamp(score[j], -clipRewardValue, clipRewardValue);
            for (int t = ends[j]; t < len; t++) out[j * len + t] = 0;
        }
        return like(logprobs, out);
    }

    /**
     * train_rlhf's {@code old_values[i, ends[i]:] = 0}: a zeroed copy of values [B, T-1] (DS-Chat zeroes the
     * experience's tensor in place, so the critic loss sees the zeroed old values too). No gradient.
     */
    public static Tensor zeroAfterEnds(Tensor values, int[] ends) {
        double[][] v = rows("zeroAfterEnds", values, "values");
        if (ends.length != v.length)
            throw new IllegalArgumentException("zeroAfterEnds: " + ends.length + " ends for " + values.describe());
        int len = v[0].length;
        double[] out = new double[v.length * len];
        for (int j = 0; j < v.length; j++)
            for (int t = 0; t < Math.min(ends[j], len); t++) out[j * len + t] = v[j][t];
        return like(values, out);
    }

    /** GAE's outputs: advantages and returns, each [B, T-1-start]; neither carries a gradient. */
    public record AdvantagesAndReturns(Tensor advantages, Tensor returns) {}

    /**
     * DS-Chat's {@code get_advantages_and_returns} (trlx's GAE), for t = T-2 down to start:
     *
     * <pre>
     * delta_t = r_t + gamma * V_{t+1} - V_t          (V_{T-1} = 0: no value past the last action)
     * A_t     = delta_t + gamma * lam * A_{t+1}      (A_{T-1} = 0)
     * returns = A + V[:, start:]
     * </pre>
     *
     * Advantages are not whitened. Pass the values and rewards after {@link #zeroAfterEnds} / {@link #computeRewards},
     * as DS-Chat does, so nothing past an answer's end leaks into its advantages.
     *
     * @param values old values [B, T-1]
     * @param rewards [B, T-1]
     */
    public static AdvantagesAndReturns advantagesAndReturns(Tensor values, Tensor rewards, int start, double gamma,
                                                            double lam) {
        String op = "advantagesAndReturns";
        double[][] v = rows(op, values, "values"), r = rows(op, rewards, "rewards");
        sameShape(op, values, rewards, "rewards");
        int b = v.length, len = v[0].length;
        checkStart(op, start, len);
        int n = len - start;
        double[] adv = new double[b * n], ret = new double[b * n];
        double gl = gamma * lam; // DS-Chat's `self.gamma * self.lam * lastgaelam` multiplies the two floats first
        for (int j = 0; j < b; j++) {
            double last = 0;
            for (int t = len - 1; t >= start; t--) {
                double next = t < len - 1 ? v[j][t + 1] : 0.0;
                double delta = r[j][t] + gamma * next - v[j][t];
                last = delta + gl * last;
                adv[j * n + t - start] = last;
                ret[j * n + t - start] = last + v[j][t];
            }
        }
        return new AdvantagesAndReturns(like(values, adv, b, n), like(values, ret, b, n));
    }

    // ---- the losses --------------------------------------------------------------------------------------------------

    /**
     * DS-Chat's {@code actor_loss_fn}, the clipped policy-gradient loss:
     *
     * <pre>
     * ratio = exp((logprobs - oldLogprobs) * mask)
     * loss  = sum(max(-A * ratio, -A * clamp(ratio, 1 - cliprange, 1 + cliprange)) * mask) / sum(mask)
     * </pre>
     *
     * All inputs [B, N] (the answer part, {@code [:, start:]}); only logprobs needs a gradient. Where the two branches
     * tie (ratio inside the clip range) the gradient is split between them, as torch.max does, which adds up to the
     * unclipped gradient. An empty mask gives 0 (DS-Chat would divide 0 by 0).
     *
     * @return a scalar of logprobs' dtype
     */
    public static Tensor actorLoss(Tensor logprobs, Tensor oldLogprobs, Tensor advantages, Tensor mask,
                                   double cliprange) {
        String op = "actorLoss";
        sameShape(op, logprobs, oldLogprobs, "oldLogprobs");
        sameShape(op, logprobs, advantages, "advantages");
        sameShape(op, logprobs, mask, "mask");
        Tensor m = asMask(mask, logprobs);
        Tensor ratio = logprobs.sub(oldLogprobs).mul(m).exp();
        Tensor negA = advantages.neg();
        Tensor pg1 = negA.mul(ratio);
        Tensor pg2 = negA.mul(ratio.clamp(1.0 - cliprange, 1.0 + cliprange));
        return Functional.maskedMean(pg1.maximum(pg2), m);
    }

    /**
     * DS-Chat's {@code critic_loss_fn}, the clipped value loss:
     *
     * <pre>
     * vClip = clamp(values, oldValues - cliprangeValue, oldValues + cliprangeValue)
     * loss  = 0.5 * sum(max((values - returns)^2, (vClip - returns)^2) * mask) / sum(mask)
     * </pre>
     *
     * All inputs [B, N] (the answer part); only values needs a gradient. The clamp is max-then-min, so it returns
     * values exactly inside the range, as torch.clamp does (they differ only at values exactly on a bound). An empty
     * mask gives 0.
     *
     * @return a scalar of values' dtype
     */
    public static Tensor criticLoss(Tensor values, Tensor oldValues, Tensor returns, Tensor mask,
                                    double cliprangeValue) {
        String op = "criticLoss";
        sameShape(op, values, oldValues, "oldValues");
        sameShape(op, values, returns, "returns");
        sameShape(op, values, mask, "mask");
        Tensor m = asMask(mask, values);
        Tensor vClip = values.maximum(oldValues.sub(cliprangeValue)).minimum(oldValues.add(cliprangeValue));
        Tensor vf1 = values.sub(returns).square();
        Tensor vf2 = vClip.sub(returns).square();
        return Functional.maskedMean(vf1.maximum(vf2), m).mul(0.5);
    }

    // ---- what to log -------------------------------------------------------------------------------------------------

    /**
     * KL between actor and reference on the sampled answers, from the k1 estimate log pi(a) - log ref(a) per action
     * (the term whose -klCtl multiple {@link #computeRewards} adds to the rewards). DS-Chat computes it but logs no KL.
     *
     * @param perToken the mean over the answer's actions (actionMask[:, start:] = 1)
     * @param perSequence the mean over sequences of the sum over each answer: the sequence-level KL estimate
     */
    public record Kl(double perToken, double perSequence) {}

    /** The {@link Kl} figures of logprobs and refLogprobs [B, T-1] over the actions t >= start where the mask is 1. */
    public static Kl klEstimate(Tensor logprobs, Tensor refLogprobs, Tensor actionMask, int start) {
        String op = "klEstimate";
        double[][] lp = rows(op, logprobs, "logprobs"), ref = rows(op, refLogprobs, "refLogprobs"),
                m = rows(op, actionMask, "actionMask");
        sameShape(op, logprobs, refLogprobs, "refLogprobs");
        sameShape(op, logprobs, actionMask, "actionMask");
        checkStart(op, start, lp[0].length);
        double total = 0, count = 0;
        for (int j = 0; j < lp.length; j++)
            for (int t = start; t < lp[j].length; t++) {
                total += (lp[j][t] - ref[j][t]) * m[j][t];
                count += m[j][t];
            }
        return new Kl(count == 0 ? 0 : total / count, total / lp.length);
    }

    // ---- helpers -------------------------------------------------------------------------------------------------------

    /** A [B, L] tensor's values by row (I32 masks included). */
    private static double[][] rows(String op, Tensor t, String what) {
        if (t.dim() != 2 || t.size(0) == 0)
            throw new IllegalArgumentException(op + ": " + what + " " + t.describe() + " must be [B, T-1] with B > 0");
        int b = t.size(0), len = t.size(1);
        double[] flat = t.dtype() == DType.I32 ? toDoubles(t.toIntArray()) : t.toDoubleArray();
        double[][] out = new double[b][];
        for (int j = 0; j < b; j++) out[j] = Arrays.copyOfRange(flat, j * len, (j + 1) * len);
        return out;
    }

    private static double[] toDoubles(int[] v) {
        double[] d = new double[v.length];
        for (int i = 0; i < v.length; i++) d[i] = v[i];
        return d;
    }

    private static void checkStart(String op, int start, int length) {
        if (start < 0 || start >= length)
            throw new IllegalArgumentException(op + ": start " + start + " (prompt length - 1) leaves no answer action "
                    + "in " + length + " actions");
    }

    private static void sameShape(String op, Tensor a, Tensor b, String what) {
        if (!Arrays.equals(a.shape(), b.shape()))
            throw new IllegalArgumentException(op + ": " + what + " " + b.describe() + " must have the shape of "
                    + a.describe());
    }

    /** The mask in x's floating dtype, for maskedMean and the log-ratio product. */
    private static Tensor asMask(Tensor mask, Tensor x) {
        if (mask.requiresGrad())
            throw new IllegalArgumentException("mask " + mask.describe() + " must not require a gradient");
        return mask.dtype() == x.dtype() ? mask : mask.to(x.dtype());
    }

    private static Tensor like(Tensor t, double[] data) {
        return like(t, data, t.shape());
    }

    /** Host values as a tensor of t's dtype, in the current scope (which must be on t's device). */
    private static Tensor like(Tensor t, double[] data, int... shape) {
        if (Scope.current().device() != t.device())
            throw new IllegalStateException("the current Scope is on " + Scope.current().device() + " but "
                    + t.describe() + " is on " + t.device() + ": open a Scope on " + t.device());
        Tensor out = Tensor.of(data, shape);
        return t.dtype() == DType.F64 ? out : out.to(t.dtype());
    }
}
