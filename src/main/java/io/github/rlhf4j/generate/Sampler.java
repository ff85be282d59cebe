package io.github.rlhf4j.generate;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Picks the next token of one sequence from its logits, as transformers' logits processors do, in their order:
 * repetition penalty (a seen token's logit divided by the penalty when positive, multiplied when negative), then
 * temperature, top-k, top-p (the smallest set of most likely tokens whose probability reaches top_p, at least one),
 * then argmax (greedy) or a draw from the softmax.
 */
final class Sampler {
    private final GenerationConfig config;
    private final SplittableRandom random;

    Sampler(GenerationConfig config) {
        this.config = config;
        this.random = new SplittableRandom(config.seed());
    }

    /** The next token given {@code logits} (modified in place) and the tokens seen so far (prompt and answer). */
    int next(float[] logits, int[] seen, int seenCount) {
        double rp = config.repetitionPenalty();
        if (rp != 1.0) {
            boolean[] done = new boolean[logits.length];
            for (int i = 0; i < seenCount; i++) {
                int t = seen[i];
                if (t < 0 || t >= logits.length || done[t]) continue;
                done[t] = true;
                logits[t] = (float) (logits[t] < 0 ? logits[t] * rp : logits[t] / rp);
            }
        }
        if (!config.doSample()) return argmax(logits);
        int v = logits.length;
        if (config.temperature() != 1.0)
            for (int i = 0; i < v; i++) logits[i] = (float) (logits[i] / config.temperature());
        if (config.topK() > 0 && config.topK() < v) {
            float[] sorted = logits.clone();
            Arrays.sort(sorted);
            float kth = sorted[v - config.topK()];
            for (int i = 0; i < v; i++) if (logits[i] < kth) logits[i] = Float.NEGATIVE_INFINITY;
        }
        double max = Double.NEGATIVE_INFINITY;
        for (float x : logits) max = Math.max(max, x);
        double[] p = new double[v];
        double sum = 0;
        for (int i = 0; i < v; i++) {
            p[i] = Math.exp(logits[i] - max);
            sum += p[i];
        }
        for (int i = 0; i < v; i++) p[i] /= sum;
        if (config.topP() < 1.0) {
            // keep the most likely tokens until their mass reaches top_p (ties at the cut: lower ids first); a
            // primitive sort of the probabilities finds the cut without boxing a vocabulary of indices per token
            double[] sorted = p.clone();
            Arrays.sort(sorted);
            double mass = 0;
            int keep = 0;
            while (keep < v && (keep == 0 || mass < config.topP())) mass += sorted[v - 1 - keep++];
            double cut = sorted[v - keep];
            int ties = keep;
            for (double x : p) if (x > cut) ties--;
            double kept = 0;
            for (int i = 0; i < v; i++) {
                if (p[i] > cut || (p[i] == cut && ties-- > 0)) kept += p[i];
                else p[i] = 0;
            }
            for (int i = 0; i < v; i++) p[i] /= kept;
        }
        double u = random.nextDouble(), c = 0;
        int last = -1;
        for (int i = 0; i < v; i++) {
            if (p[i] == 0) continue;
            c += p[i];
            last = i;
            if (u < c) return i;
        }
        return last;
    }

    /** The first index of the largest logit, as torch.argmax. */
    static int argmax(float[] logits) {
        int best = 0;
        for (int i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
        return best;
    }
}
