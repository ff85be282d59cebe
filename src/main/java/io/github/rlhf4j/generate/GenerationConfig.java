package io.github.rlhf4j.generate;

import java.util.Arrays;

/**
 * How to pick new tokens, with transformers' names and semantics: greedy (do_sample = false) or sampling with
 * temperature, top-k and top-p (applied in that order, after the repetition penalty), max_new_tokens, the EOS ids
 * that end a sequence (ignored with {@code ignoreEos}: DeepSpeed-Chat's fixed-length answers), the pad id that fills
 * finished rows, and the seed of the sampling stream.
 */
public record GenerationConfig(int maxNewTokens, boolean doSample, double temperature, int topK, double topP,
                               double repetitionPenalty, int[] eosTokenIds, int padTokenId, boolean ignoreEos,
                               long seed) {
    public GenerationConfig {
        if (maxNewTokens <= 0) throw new IllegalArgumentException("max_new_tokens = " + maxNewTokens + " must be > 0");
        if (!(temperature > 0)) throw new IllegalArgumentException("temperature = " + temperature + " must be > 0");
        if (topK < 0) throw new IllegalArgumentException("top_k = " + topK + " must be >= 0 (0: off)");
        if (!(topP > 0 && topP <= 1)) throw new IllegalArgumentException("top_p = " + topP + " must be in (0, 1]");
        if (!(repetitionPenalty > 0))
            throw new IllegalArgumentException("repetition_penalty = " + repetitionPenalty + " must be > 0");
        eosTokenIds = eosTokenIds == null ? new int[0] : eosTokenIds.clone();
    }

    /** Greedy decoding of up to {@code maxNewTokens}, stopping at {@code eos}. */
    public static GenerationConfig greedy(int maxNewTokens, int eos, int pad) {
        return new GenerationConfig(maxNewTokens, false, 1.0, 0, 1.0, 1.0, new int[] {eos}, pad, false, 0);
    }

    /** Sampling with temperature and nucleus (top-p) filtering. */
    public static GenerationConfig sampling(int maxNewTokens, double temperature, int topK, double topP, int eos,
                                            int pad, long seed) {
        return new GenerationConfig(maxNewTokens, true, temperature, topK, topP, 1.0, new int[] {eos}, pad, false,
                seed);
    }

    public GenerationConfig withMaxNewTokens(int n) {
        return new GenerationConfig(n, doSample, temperature, topK, topP, repetitionPenalty, eosTokenIds, padTokenId,
                ignoreEos, seed);
    }

    public GenerationConfig withIgnoreEos(boolean on) {
        return new GenerationConfig(maxNewTokens, doSample, temperature, topK, topP, repetitionPenalty, eosTokenIds,
                padTokenId, on, seed);
    }

    public GenerationConfig withRepetitionPenalty(double p) {
        return new GenerationConfig(maxNewTokens, doSample, temperature, topK, topP, p, eosTokenIds, padTokenId,
                ignoreEos, seed);
    }

    public GenerationConfig withSeed(long s) {
        return new GenerationConfig(maxNewTokens, doSample, temperature, topK, topP, repetitionPenalty, eosTokenIds,
                padTokenId, ignoreEos, s);
    }

    public boolean isEos(int token) {
        if (ignoreEos) return false;
        for (int e : eosTokenIds) if (e == token) return true;
        return false;
    }

    @Override
    public int[] eosTokenIds() {
        return eosTokenIds.clone();
    }

    @Override
    public String toString() {
        return "GenerationConfig[max_new_tokens=" + maxNewTokens + ", do_sample=" + doSample + ", temperature="
                + temperature + ", top_k=" + topK + ", top_p=" + topP + ", repetition_penalty=" + repetitionPenalty
                + ", eos=" + Arrays.toString(eosTokenIds) + ", pad=" + padTokenId + ", ignore_eos=" + ignoreEos
                + ", seed=" + seed + "]";
    }
}
