package io.github.rlhf4j.model;

/**
 * What every model family's config (a record named after transformers' config class) tells the rest of rlhf4j: the
 * shapes the KV cache, the heads and generation need, and how transformers names the base model's parameters.
 * Each family record parses its own config.json fields (see {@link Models#config(ConfigJson)}).
 */
public interface ModelConfig {
    /** config.json's {@code model_type}: gpt2, opt, gpt_neo, llama, qwen2. */
    String modelType();

    int vocabSize();

    /** Width of the residual stream. */
    int hiddenSize();

    /**
     * Width of the final hidden states that the LM head and a value head read: the hidden size, except OPT's
     * {@code word_embed_proj_dim} when it has a {@code project_out}.
     */
    default int outputSize() {
        return hiddenSize();
    }

    int numLayers();

    int numHeads();

    /** Key/value heads (grouped-query attention); numHeads() where the family has no GQA. */
    default int numKvHeads() {
        return numHeads();
    }

    int headDim();

    /** The longest sequence the model can take (learned positions, or the RoPE models' max_position_embeddings). */
    int maxPositions();

    /** Whether the LM head shares the token embedding's weights (no {@code lm_head.weight} of its own). */
    boolean tieWordEmbeddings();

    /**
     * transformers' {@code base_model_prefix}: the name of the base model inside the causal LM ("transformer" for
     * gpt2 and gpt_neo, "model" for opt, llama and qwen2), so parameters are named as transformers names them.
     */
    String basePrefix();

    /** Standard deviation of the normal initialisation of weight matrices. */
    double initializerRange();
}
