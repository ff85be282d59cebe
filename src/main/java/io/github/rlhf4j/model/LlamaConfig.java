package io.github.rlhf4j.model;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * The hyper-parameters of the Llama family, transformers' LlamaConfig and Qwen2Config (config.json's
 * {@code model_type} "llama" or "qwen2"): the two compute the same decoder (RMSNorm, RoPE, grouped-query attention,
 * SwiGLU MLP) and differ in their biases, their defaults and Qwen2's sliding window.
 *
 * <p>Biases: Llama puts {@code attention_bias} on all four attention projections and {@code mlp_bias} on the three
 * MLP ones; Qwen2 always has q/k/v biases and never o_proj or MLP biases (it ignores those two fields).
 *
 * @param modelType "llama" or "qwen2"
 * @param headDim head_dim, or hidden_size / num_attention_heads when config.json has none
 * @param qkvBias biases on q_proj, k_proj, v_proj
 * @param oProjBias a bias on o_proj
 * @param mlpBias biases on gate_proj, up_proj, down_proj
 * @param layerTypes per layer "full_attention" or "sliding_attention" (Qwen2's layer_types; all full for Llama)
 * @param slidingWindow how many positions back a sliding layer sees (its key included); 0 when no layer slides
 */
public record LlamaConfig(String modelType, int vocabSize, int hiddenSize, int intermediateSize, int numHiddenLayers,
                          int numAttentionHeads, int numKeyValueHeads, int headDim, int maxPositionEmbeddings,
                          double rmsNormEps, double initializerRange, boolean tieWordEmbeddings, boolean qkvBias,
                          boolean oProjBias, boolean mlpBias, Rope rope, List<String> layerTypes, int slidingWindow)
        implements ModelConfig {
    static final String FULL = "full_attention", SLIDING = "sliding_attention";

    public LlamaConfig {
        if (!modelType.equals("llama") && !modelType.equals("qwen2"))
            throw new IllegalArgumentException("model_type " + modelType + " is not llama or qwen2");
        positive("vocab_size", vocabSize);
        positive("hidden_size", hiddenSize);
        positive("intermediate_size", intermediateSize);
        positive("num_hidden_layers", numHiddenLayers);
        positive("num_attention_heads", numAttentionHeads);
        positive("num_key_value_heads", numKeyValueHeads);
        positive("head_dim", headDim);
        positive("max_position_embeddings", maxPositionEmbeddings);
        if (numAttentionHeads % numKeyValueHeads != 0)
            throw new IllegalArgumentException("num_attention_heads = " + numAttentionHeads
                    + " is not a multiple of num_key_value_heads = " + numKeyValueHeads);
        if (headDim % 2 != 0) throw new IllegalArgumentException("head_dim = " + headDim + " must be even for RoPE");
        if (!(rmsNormEps > 0)) throw new IllegalArgumentException("rms_norm_eps must be > 0");
        if (!(initializerRange > 0)) throw new IllegalArgumentException("initializer_range must be > 0");
        if (rope.dim() != headDim)
            throw new IllegalArgumentException("rotary dim " + rope.dim() + " must equal head_dim " + headDim);
        layerTypes = List.copyOf(layerTypes);
        if (layerTypes.size() != numHiddenLayers)
            throw new IllegalArgumentException("layer_types has " + layerTypes.size() + " entries for "
                    + numHiddenLayers + " layers");
        for (String t : layerTypes)
            if (!t.equals(FULL) && !t.equals(SLIDING))
                throw new IllegalArgumentException("layer_types entry \"" + t + "\" is not " + FULL + " or " + SLIDING);
        if (slidingWindow < 0) throw new IllegalArgumentException("sliding_window = " + slidingWindow + " must be > 0");
        if (layerTypes.contains(SLIDING) && slidingWindow == 0)
            throw new IllegalArgumentException("layer_types has sliding_attention layers but sliding_window is not set "
                    + "(use_sliding_window is false)");
    }

    private static void positive(String field, int v) {
        if (v <= 0) throw new IllegalArgumentException(field + " = " + v + " must be > 0");
    }

    /**
     * A small Llama (model_type "llama": no biases, untied head, plain RoPE with theta 10000) for tests and demos;
     * {@code numKeyValueHeads} below {@code numAttentionHeads} makes it grouped-query.
     */
    public static LlamaConfig tiny(int vocabSize, int maxPositions, int hiddenSize, int intermediateSize, int layers,
                                   int heads, int kvHeads) {
        int headDim = hiddenSize / heads;
        return new LlamaConfig("llama", vocabSize, hiddenSize, intermediateSize, layers, heads, kvHeads, headDim,
                maxPositions, 1e-6, 0.02, false, false, false, false, Rope.standard(headDim, 10000, maxPositions),
                Collections.nCopies(layers, FULL), 0);
    }

    /**
     * A Llama or Qwen2 config.json, with transformers' defaults for absent optional fields (they differ: Qwen2's
     * num_key_value_heads defaults to 32, max_position_embeddings to 32768). vocab_size, hidden_size,
     * intermediate_size, num_hidden_layers and num_attention_heads are required. Variants rlhf4j does not compute
     * are refused by field name: another hidden_act than silu, attention_dropout above 0 (the fused attention has
     * no dropout on its probabilities), RoPE types other than default, linear, dynamic and llama3.
     */
    public static LlamaConfig fromJson(ConfigJson j) {
        String type = j.modelType();
        boolean qwen2 = type.equals("qwen2");
        if (!qwen2 && !type.equals("llama"))
            throw j.error("model_type", "= \"" + type + "\" is not llama or qwen2");
        String act = j.string("hidden_act", "silu");
        if (!act.equals("silu") && !act.equals("swish"))
            throw j.error("hidden_act", "= \"" + act + "\" is not supported (" + type + " uses silu)");
        if (j.number("attention_dropout", 0.0) != 0)
            throw j.error("attention_dropout", "= " + j.number("attention_dropout") + " is not supported: rlhf4j's "
                    + "fused attention has no dropout on its probabilities; set it to 0");
        int vocab = j.positive("vocab_size"), hidden = j.positive("hidden_size");
        int intermediate = j.positive("intermediate_size"), layers = j.positive("num_hidden_layers");
        int heads = j.positive("num_attention_heads");
        // Qwen2Config's default is 32; an explicit null means num_attention_heads, as for Llama
        boolean kvDefault = qwen2 && !j.json().has("num_key_value_heads");
        int kvHeads = j.has("num_key_value_heads") ? j.positive("num_key_value_heads") : kvDefault ? 32 : heads;
        if (!qwen2 && hidden % heads != 0) // LlamaConfig.validate_architecture, even with head_dim given
            throw j.error("hidden_size", "= " + hidden + " is not a multiple of num_attention_heads = " + heads);
        if (heads % kvHeads != 0)
            throw j.error("num_key_value_heads", "= " + kvHeads + (kvDefault ? " (transformers' Qwen2 default)" : "")
                    + " does not divide num_attention_heads = " + heads);
        int headDim = j.has("head_dim") ? j.positive("head_dim") : hidden / heads;
        if (headDim % 2 != 0) throw j.error("head_dim", "= " + headDim + " must be even for rotary embeddings");
        int maxPositions = j.has("max_position_embeddings") ? j.positive("max_position_embeddings")
                : qwen2 ? 32768 : 2048;
        Rope rope = Rope.fromJson(j, headDim, maxPositions);

        List<String> layerTypes = new ArrayList<>(Collections.nCopies(layers, FULL));
        int window = 0;
        if (qwen2) { // Qwen2Config.__post_init__: sliding_window counts only with use_sliding_window
            if (j.bool("use_sliding_window", false))
                window = j.has("sliding_window") ? j.positive("sliding_window")
                        : j.json().has("sliding_window") ? 0 : 4096; // explicit null: none; absent: the default
            JsonNode types = j.node("layer_types");
            if (types != null) {
                if (!types.isArray() || types.size() != layers)
                    throw j.error("layer_types", "must be a list of " + layers + " layer types, got " + types);
                for (int i = 0; i < layers; i++) {
                    String t = types.get(i).asText();
                    if (!types.get(i).isTextual() || !t.equals(FULL) && !t.equals(SLIDING))
                        throw j.error("layer_types", "entry " + i + " = " + types.get(i) + " is not \"" + FULL
                                + "\" or \"" + SLIDING + "\"");
                    layerTypes.set(i, t);
                }
                if (layerTypes.contains(SLIDING) && window == 0)
                    throw j.error("layer_types", "has sliding_attention layers but no sliding_window applies "
                            + "(use_sliding_window is false or sliding_window is null); transformers cannot build it");
            } else if (window > 0) {
                for (int i = Math.max(j.integer("max_window_layers", 28), 0); i < layers; i++)
                    layerTypes.set(i, SLIDING);
            }
        }
        try {
            return new LlamaConfig(type, vocab, hidden, intermediate, layers, heads, kvHeads, headDim, maxPositions,
                    j.number("rms_norm_eps", 1e-6), j.number("initializer_range", 0.02),
                    j.bool("tie_word_embeddings", false),
                    qwen2 || j.bool("attention_bias", false), !qwen2 && j.bool("attention_bias", false),
                    !qwen2 && j.bool("mlp_bias", false), rope, layerTypes, window);
        } catch (IllegalArgumentException e) {
            throw new ModelFormatException(j.source() + ": " + e.getMessage(), e);
        }
    }

    /** How far back layer {@code layer} attends (0: every earlier position). */
    public int window(int layer) {
        return layerTypes.get(layer).equals(SLIDING) ? slidingWindow : 0;
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
    public int numKvHeads() {
        return numKeyValueHeads;
    }

    @Override
    public int maxPositions() {
        return maxPositionEmbeddings;
    }

    @Override
    public String basePrefix() {
        return "model";
    }
}
