package io.github.rlhf4j.rlhf;

import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.tensor.Functional;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import java.util.Arrays;

/**
 * What DeepSpeed-Chat's RewardModel does with its per-token scores ({@code dschat/utils/model/reward_model.py}):
 * the pairwise loss of step 2 ({@link #pairwiseLoss}, RewardModel.forward) and the one score per sequence that step 3
 * rewards ({@link #endScores}, forward_value). The scores come from {@code RewardModel.scores(ids, mask)}, [rows, T].
 *
 * <p>Which positions count is integer work on the ids, done on the host; the scores are then picked and averaged by
 * masked reductions with host-built masks, so the loss is differentiable with respect to the scores in one graph (no
 * per-pair slicing). Matches DS-Chat run verbatim in PyTorch ({@code src/test/python/make_rlhf_math_fixtures.py}),
 * including its index rules, which are spelled out on {@link Span}.
 */
public final class RewardModelMath {
    private RewardModelMath() {}

    /**
     * The positions DS-Chat's pairwise loss uses for one pair (chosen row i, rejected row B + i), with DS-Chat's names.
     *
     * <ul>
     *   <li>{@code cInd}: the index of the chosen row's pad token number {@code numPaddingAtBeginning} (0-based)
     *       counting every pad in the row, or T if it has no more pads. With 0 this is the first pad; OPT rows start
     *       with a pad-id token, which 1 skips. It is the first position past the text.</li>
     *   <li>{@code rInd}: the same for the rejected row.</li>
     *   <li>{@code divergence}: the first position where the two rows' ids differ.</li>
     *   <li>{@code end}: max(cInd, rInd).</li>
     * </ul>
     *
     * The loss averages over [divergence, end). Identical rows instead use [T-1, T), the last column whatever it holds,
     * with rInd = cInd. The end scores are at cInd - 1 and rInd - 1, Python-style: index -1 is T-1.
     */
    public record Span(int cInd, int rInd, int divergence, int end) {
        /** Where the chosen row's end score is read: cInd - 1, or T - 1 when cInd is 0. */
        public int chosenEndIndex(int seqLen) {
            return Math.floorMod(cInd - 1, seqLen);
        }

        public int rejectedEndIndex(int seqLen) {
            return Math.floorMod(rInd - 1, seqLen);
        }
    }

    /**
     * The {@link Span} of each pair of ids I32 [2B, T] (chosen rows first).
     *
     * @throws IllegalArgumentException where DS-Chat would fail or give NaN: a pair whose rows differ at position 0
     *         (its {@code assert divergence_ind > 0}; a pair should share its prompt), or whose span is empty (the rows
     *         differ only after both ends, or, with numPaddingAtBeginning 0, both start with the pad id)
     */
    public static Span[] spans(Tensor ids, int padId, int numPaddingAtBeginning) {
        int[][] rows = pairRows("spans", ids);
        if (numPaddingAtBeginning < 0)
            throw new IllegalArgumentException("spans: numPaddingAtBeginning " + numPaddingAtBeginning + " < 0");
        int b = rows.length / 2, seqLen = rows[0].length;
        Span[] out = new Span[b];
        for (int i = 0; i < b; i++) {
            int[] chosen = rows[i], rejected = rows[b + i];
            int cInd = nthPad(chosen, padId, numPaddingAtBeginning);
            int divergence = 0;
            while (divergence < seqLen && chosen[divergence] == rejected[divergence]) divergence++;
            Span s;
            if (divergence == seqLen) {
                s = new Span(cInd, cInd, seqLen - 1, seqLen);
            } else {
                int rInd = nthPad(rejected, padId, numPaddingAtBeginning);
                s = new Span(cInd, rInd, divergence, Math.max(cInd, rInd));
            }
            if (s.divergence() == 0)
                throw new IllegalArgumentException("reward pair " + i + ": the chosen and rejected ids differ at "
                        + "position 0; DS-Chat requires divergence_ind > 0 (the two texts share their prompt)");
            if (s.divergence() >= s.end())
                throw new IllegalArgumentException("reward pair " + i + ": the rows first differ at position "
                        + s.divergence() + ", not before their end " + s.end() + " (chosen end " + s.cInd()
                        + ", rejected end " + s.rInd() + ", pad id " + padId + ", numPaddingAtBeginning "
                        + numPaddingAtBeginning + "), so the loss span is empty (DS-Chat gives NaN)");
            out[i] = s;
        }
        return out;
    }

    /** The index of the pad number n (0-based) in the row, or its length if there are no more. */
    private static int nthPad(int[] row, int padId, int n) {
        int seen = 0;
        for (int t = 0; t < row.length; t++)
            if (row[t] == padId && seen++ == n) return t;
        return row.length;
    }

    /**
     * RewardModel.forward's outputs.
     *
     * @param loss the pairwise loss, a scalar differentiable with respect to the scores
     * @param chosenEndScores [B]: each chosen row's score at its end index (DS-Chat's chosen_mean_scores)
     * @param rejectedEndScores [B] (rejected_mean_scores)
     */
    public record Pairwise(Tensor loss, Tensor chosenEndScores, Tensor rejectedEndScores) {
        /** Pairs whose chosen end score is strictly above the rejected one (a tie counts as wrong, as in DS-Chat). */
        public int correct() {
            double[] c = chosenEndScores.toDoubleArray(), r = rejectedEndScores.toDoubleArray();
            int n = 0;
            for (int i = 0; i < c.length; i++)
                if (c[i] > r[i]) n++;
            return n;
        }

        /** {@link #correct()} over the number of pairs. */
        public double accuracy() {
            return (double) correct() / chosenEndScores.size(0);
        }
    }

    /**
     * DS-Chat's reward-model loss, RewardModel.forward: for each pair, the mean of
     * {@code -log sigmoid(chosen[t] - rejected[t])} over its {@link Span} [divergence, end), then the mean over pairs.
     *
     * @param scores [2B, T] per-token scores, chosen rows first (differentiable)
     * @param ids I32 [2B, T], the rows the scores are of
     * @param padId the tokenizer's pad id
     * @param numPaddingAtBeginning DS-Chat's flag: 0, or 1 for OPT
     */
    public static Pairwise pairwiseLoss(Tensor scores, Tensor ids, int padId, int numPaddingAtBeginning) {
        checkScores("pairwiseLoss", scores, ids);
        Span[] spans = spans(ids, padId, numPaddingAtBeginning);
        int b = spans.length, seqLen = ids.size(1);
        double[] span = new double[b * seqLen], chosenAt = new double[b * seqLen], rejectedAt = new double[b * seqLen];
        for (int i = 0; i < b; i++) {
            Span s = spans[i];
            for (int t = s.divergence(); t < s.end(); t++) span[i * seqLen + t] = 1;
            chosenAt[i * seqLen + s.chosenEndIndex(seqLen)] = 1;
            rejectedAt[i * seqLen + s.rejectedEndIndex(seqLen)] = 1;
        }
        Tensor chosen = scores.slice(0, 0, b), rejected = scores.slice(0, b, 2 * b);
        Tensor perPair = Functional.maskedMeanLastDim(Functional.logSigmoid(chosen.sub(rejected)).neg(),
                mask(scores, span, b, seqLen));
        return new Pairwise(perPair.mean(),
                Functional.maskedSumLastDim(chosen, mask(scores, chosenAt, b, seqLen)),
                Functional.maskedSumLastDim(rejected, mask(scores, rejectedAt, b, seqLen)));
    }

    /**
     * DS-Chat's forward_value(prompt_length), step 3's reward: per row, the score at c_ind - 1, where c_ind is the first
     * pad at or after promptLength (so left padding in the prompt is ignored), or T if the answer has none. That is
     * the answer's last token, or the prompt's last token when the answer is empty. When the pad id is also the
     * end-of-text id (GPT-2), the end-of-text token counts as the first pad and the score is the token before it.
     *
     * @param scores [B, T] per-token scores
     * @param ids I32 [B, T] prompt + answer
     * @param promptLength the common (left-padded) prompt length; DS-Chat requires it > 1
     * @return [B], differentiable with respect to the scores
     */
    public static Tensor endScores(Tensor scores, Tensor ids, int padId, int promptLength) {
        checkScores("endScores", scores, ids);
        int b = ids.size(0), seqLen = ids.size(1);
        int[] idx = endIndices(ids, padId, promptLength);
        double[] at = new double[b * seqLen];
        for (int i = 0; i < b; i++) at[i * seqLen + idx[i]] = 1;
        return Functional.maskedSumLastDim(scores, mask(scores, at, b, seqLen));
    }

    /**
     * The index each row's end score is read at by {@link #endScores}: c_ind - 1, where c_ind is the first pad at or
     * after promptLength, or T when there is none. For trainers that need the position itself.
     */
    public static int[] endIndices(Tensor ids, int padId, int promptLength) {
        if (ids.dim() != 2 || ids.dtype() != DType.I32)
            throw new IllegalArgumentException("endIndices: ids " + ids.describe() + " must be i32 [B, T]");
        int b = ids.size(0), seqLen = ids.size(1);
        if (promptLength <= 1 || promptLength > seqLen)
            throw new IllegalArgumentException("endScores: promptLength " + promptLength + " must be in (1, " + seqLen
                    + "] (DS-Chat: prompt_length must be greater than 1 to help select the end score)");
        int[] flat = ids.toIntArray(), out = new int[b];
        for (int i = 0; i < b; i++) {
            int cInd = seqLen;
            for (int t = promptLength; t < seqLen; t++)
                if (flat[i * seqLen + t] == padId) {
                    cInd = t;
                    break;
                }
            out[i] = cInd - 1;
        }
        return out;
    }

    // ---- helpers -------------------------------------------------------------------------------------------------------

    private static int[][] pairRows(String op, Tensor ids) {
        if (ids.dim() != 2 || ids.dtype() != DType.I32 || ids.size(0) == 0 || ids.size(0) % 2 != 0)
            throw new IllegalArgumentException(op + ": ids " + ids.describe() + " must be i32 [2B, T] (B chosen rows, "
                    + "then the B rejected rows), B > 0");
        int rows = ids.size(0), seqLen = ids.size(1);
        int[] flat = ids.toIntArray();
        int[][] out = new int[rows][];
        for (int i = 0; i < rows; i++) out[i] = Arrays.copyOfRange(flat, i * seqLen, (i + 1) * seqLen);
        return out;
    }

    private static void checkScores(String op, Tensor scores, Tensor ids) {
        if (ids.dtype() != DType.I32)
            throw new IllegalArgumentException(op + ": ids " + ids.describe() + " must be i32");
        if (scores.dim() != 2 || !Arrays.equals(scores.shape(), ids.shape()) || ids.size(1) == 0)
            throw new IllegalArgumentException(op + ": scores " + scores.describe() + " and ids " + ids.describe()
                    + " must both be [rows, T] with T > 0");
    }

    /** A host-built [b, seqLen] mask in the scores' dtype, in the current scope. */
    private static Tensor mask(Tensor scores, double[] values, int b, int seqLen) {
        if (Scope.current().device() != scores.device())
            throw new IllegalStateException("the current Scope is on " + Scope.current().device() + " but "
                    + scores.describe() + " is on " + scores.device() + ": open a Scope on " + scores.device());
        Tensor m = Tensor.of(values, b, seqLen);
        return scores.dtype() == DType.F64 ? m : m.to(scores.dtype());
    }
}
