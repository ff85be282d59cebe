package io.github.rlhf4j.model;

/**
 * GPT-2's hyper-parameters, named as in transformers' GPT2Config (config.json): vocab_size, n_positions, n_embd,
 * n_layer, n_head, layer_norm_epsilon, initializer_range, and the three dropout rates.
 */
public record Gpt2Config(int vocabSize, int nPositions, int nEmbd, int nLayer, int nHead, double layerNormEpsilon,
                         double initializerRange, double embdPdrop, double residPdrop) {
    public Gpt2Config {
        positive("vocab_size", vocabSize);
        positive("n_positions", nPositions);
        positive("n_embd", nEmbd);
        positive("n_layer", nLayer);
        positive("n_head", nHead);
        if (nEmbd % nHead != 0)
            throw new IllegalArgumentException("n_embd = " + nEmbd + " is not a multiple of n_head = " + nHead);
        if (!(layerNormEpsilon > 0)) throw new IllegalArgumentException("layer_norm_epsilon must be > 0");
        if (!(initializerRange > 0)) throw new IllegalArgumentException("initializer_range must be > 0");
        for (double p : new double[] {embdPdrop, residPdrop})
            if (!(p >= 0 && p < 1)) throw new IllegalArgumentException("dropout rate " + p + " must be in [0, 1)");
    }

    private static void positive(String field, int v) {
        if (v <= 0) throw new IllegalArgumentException(field + " = " + v + " must be > 0");
    }

    /** GPT-2 small (124M), the config in shared/data/tokenizers/gpt2/config.json. */
    public static Gpt2Config gpt2Small() {
        return new Gpt2Config(50257, 1024, 768, 12, 12, 1e-5, 0.02, 0.1, 0.1);
    }

    /** A small model for tests and demos, dropout off. */
    public static Gpt2Config tiny(int vocabSize, int nPositions, int nEmbd, int nLayer, int nHead) {
        return new Gpt2Config(vocabSize, nPositions, nEmbd, nLayer, nHead, 1e-5, 0.02, 0.0, 0.0);
    }

    public int headDim() {
        return nEmbd / nHead;
    }
}
