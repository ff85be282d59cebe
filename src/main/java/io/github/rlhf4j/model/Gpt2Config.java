package io.github.rlhf4j.model;

/**
 * GPT-2's hyper-parameters, named as in transformers' GPT2Config (config.json): vocab_size, n_positions, n_embd,
 * n_layer, n_head, layer_norm_epsilon, initializer_range, and the three dropout rates.
 */
public record Gpt2Config(int vocabSize, int nPositions, int nEmbd, int nLayer, int nHead, double layerNormEpsilon,
                         double initializerRange, double embdPdrop, double residPdrop) implements ModelConfig {
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

    /**
     * GPT-2's config.json. Fields transformers defaults are optional here with its defaults; variants rlhf4j does
     * not compute (another activation, n_inner other than 4 n_embd, attention re-scaling options) are refused by
     * name rather than run wrong.
     */
    public static Gpt2Config fromJson(ConfigJson j) {
        String act = j.string("activation_function", "gelu_new");
        if (!act.equals("gelu_new"))
            throw j.error("activation_function", "= \"" + act + "\" is not supported (GPT-2 uses gelu_new)");
        if (j.has("n_inner") && j.integer("n_inner") != 4 * j.positive("n_embd"))
            throw j.error("n_inner", "= " + j.integer("n_inner") + " is not supported: rlhf4j's GPT-2 uses 4 n_embd");
        for (String f : new String[] {"scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"})
            if (j.bool(f, false)) throw j.error(f, "= true is not supported");
        if (!j.bool("scale_attn_weights", true)) throw j.error("scale_attn_weights", "= false is not supported");
        if (!j.bool("tie_word_embeddings", true)) throw j.error("tie_word_embeddings", "= false is not supported for gpt2");
        try {
            return new Gpt2Config(j.positive("vocab_size"), j.positive("n_positions"), j.positive("n_embd"),
                    j.positive("n_layer"), j.positive("n_head"), j.number("layer_norm_epsilon", 1e-5),
                    j.number("initializer_range", 0.02), j.number("embd_pdrop", 0.1), j.number("resid_pdrop", 0.1));
        } catch (IllegalArgumentException e) {
            throw new ModelFormatException(j.source() + ": " + e.getMessage(), e);
        }
    }

    public int headDim() {
        return nEmbd / nHead;
    }

    @Override
    public String modelType() {
        return "gpt2";
    }

    @Override
    public int hiddenSize() {
        return nEmbd;
    }

    @Override
    public int numLayers() {
        return nLayer;
    }

    @Override
    public int numHeads() {
        return nHead;
    }

    @Override
    public int maxPositions() {
        return nPositions;
    }

    @Override
    public boolean tieWordEmbeddings() {
        return true;
    }

    @Override
    public String basePrefix() {
        return "transformer";
    }
}
