package io.github.rlhf4j.model;

/**
 * OPT's hyper-parameters, named as in transformers' OPTConfig (config.json): vocab_size, hidden_size,
 * num_hidden_layers, ffn_dim, max_position_embeddings, num_attention_heads, word_embed_proj_dim (the token
 * embedding's width; opt-350m's 512 against hidden 1024), do_layer_norm_before (false: opt-350m's post-LN blocks),
 * _remove_final_layer_norm, enable_bias, layer_norm_elementwise_affine, dropout, init_std and tie_word_embeddings.
 */
public record OptConfig(int vocabSize, int hiddenSize, int numHiddenLayers, int ffnDim, int maxPositionEmbeddings,
                        int numAttentionHeads, int wordEmbedProjDim, boolean doLayerNormBefore,
                        boolean removeFinalLayerNorm, boolean enableBias, boolean layerNormElementwiseAffine,
                        double dropout, double initStd, boolean tieWordEmbeddings) implements ModelConfig {
    /** torch.nn.LayerNorm's default, which OPT never changes. */
    public static final double LAYER_NORM_EPS = 1e-5;

    public OptConfig {
        positive("vocab_size", vocabSize);
        positive("hidden_size", hiddenSize);
        positive("num_hidden_layers", numHiddenLayers);
        positive("ffn_dim", ffnDim);
        positive("max_position_embeddings", maxPositionEmbeddings);
        positive("num_attention_heads", numAttentionHeads);
        positive("word_embed_proj_dim", wordEmbedProjDim);
        if (hiddenSize % numAttentionHeads != 0)
            throw new IllegalArgumentException("hidden_size = " + hiddenSize + " is not a multiple of num_attention_heads = "
                    + numAttentionHeads);
        if (!(dropout >= 0 && dropout < 1)) throw new IllegalArgumentException("dropout = " + dropout + " must be in [0, 1)");
        if (!(initStd > 0)) throw new IllegalArgumentException("init_std = " + initStd + " must be > 0");
    }

    private static void positive(String field, int v) {
        if (v <= 0) throw new IllegalArgumentException(field + " = " + v + " must be > 0");
    }

    /**
     * OPT's config.json. The shape fields are required; the others default as in transformers. Variants rlhf4j does
     * not compute are refused by name rather than run wrong: an activation other than relu (every OPT checkpoint
     * uses relu), dropout on attention probabilities (the fused attention has none; every OPT checkpoint has 0) and
     * layerdrop.
     */
    public static OptConfig fromJson(ConfigJson j) {
        String act = j.string("activation_function", "relu");
        if (!act.equals("relu"))
            throw j.error("activation_function", "= \"" + act + "\" is not supported (OPT uses relu)");
        if (j.number("attention_dropout", 0.0) != 0)
            throw j.error("attention_dropout", "= " + j.number("attention_dropout")
                    + " is not supported: rlhf4j's fused attention has no dropout on attention probabilities");
        if (j.number("layerdrop", 0.0) != 0)
            throw j.error("layerdrop", "= " + j.number("layerdrop") + " is not supported (layers are never skipped)");
        try {
            int hidden = j.positive("hidden_size");
            return new OptConfig(j.positive("vocab_size"), hidden, j.positive("num_hidden_layers"),
                    j.positive("ffn_dim"), j.positive("max_position_embeddings"), j.positive("num_attention_heads"),
                    j.has("word_embed_proj_dim") ? j.positive("word_embed_proj_dim") : hidden,
                    j.bool("do_layer_norm_before", true), j.bool("_remove_final_layer_norm", false),
                    j.bool("enable_bias", true), j.bool("layer_norm_elementwise_affine", true),
                    j.number("dropout", 0.1), j.number("init_std", 0.02), j.bool("tie_word_embeddings", true));
        } catch (IllegalArgumentException e) {
            throw new ModelFormatException(j.source() + ": " + e.getMessage(), e);
        }
    }

    /** Whether token embeddings are projected to and from hidden_size (project_in, project_out: opt-350m). */
    public boolean projects() {
        return wordEmbedProjDim != hiddenSize;
    }

    /** Whether the decoder ends with a LayerNorm: only pre-LN models, as transformers' OPTDecoder decides. */
    public boolean hasFinalLayerNorm() {
        return doLayerNormBefore && !removeFinalLayerNorm;
    }

    @Override
    public String modelType() {
        return "opt";
    }

    @Override
    public int outputSize() {
        return wordEmbedProjDim;
    }

    @Override
    public int numLayers() {
        return numHiddenLayers;
    }

    @Override
    public int numHeads() {
        return numAttentionHeads;
    }

    @Override
    public int headDim() {
        return hiddenSize / numAttentionHeads;
    }

    @Override
    public int maxPositions() {
        return maxPositionEmbeddings;
    }

    @Override
    public String basePrefix() {
        return "model";
    }

    @Override
    public double initializerRange() {
        return initStd;
    }
}
