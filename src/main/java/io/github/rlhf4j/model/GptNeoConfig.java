package io.github.rlhf4j.model;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.List;

/**
 * GPT-Neo's hyper-parameters, named as in transformers' GPTNeoConfig (config.json): vocab_size,
 * max_position_embeddings, hidden_size, num_layers, num_heads, intermediate_size (null: 4 hidden_size), window_size,
 * layer_norm_epsilon, initializer_range, embed_dropout, resid_dropout, tie_word_embeddings, and attention_types
 * expanded to one {@link AttentionType} per layer (transformers' {@code attention_layers}).
 */
public record GptNeoConfig(int vocabSize, int maxPositionEmbeddings, int hiddenSize, int numLayers, int numHeads,
                           int intermediateSize, int windowSize, List<AttentionType> attentionLayers,
                           double layerNormEpsilon, double initializerRange, double embedDropout,
                           double residDropout, boolean tieWordEmbeddings) implements ModelConfig {
    /** A layer's attention: over every earlier position, or over the last window_size positions only. */
    public enum AttentionType {
        GLOBAL, LOCAL;

        /** config.json's spelling: "global" or "local". */
        public String jsonName() {
            return name().toLowerCase(java.util.Locale.ROOT);
        }
    }

    public GptNeoConfig {
        positive("vocab_size", vocabSize);
        positive("max_position_embeddings", maxPositionEmbeddings);
        positive("hidden_size", hiddenSize);
        positive("num_layers", numLayers);
        positive("num_heads", numHeads);
        positive("intermediate_size", intermediateSize);
        positive("window_size", windowSize);
        if (hiddenSize % numHeads != 0)
            throw new IllegalArgumentException("hidden_size = " + hiddenSize + " is not a multiple of num_heads = "
                    + numHeads);
        attentionLayers = List.copyOf(attentionLayers);
        if (attentionLayers.size() != numLayers)
            throw new IllegalArgumentException("attention_types gives " + attentionLayers.size()
                    + " layers but num_layers = " + numLayers);
        if (!(layerNormEpsilon > 0)) throw new IllegalArgumentException("layer_norm_epsilon must be > 0");
        if (!(initializerRange > 0)) throw new IllegalArgumentException("initializer_range must be > 0");
        for (double p : new double[] {embedDropout, residDropout})
            if (!(p >= 0 && p < 1)) throw new IllegalArgumentException("dropout rate " + p + " must be in [0, 1)");
    }

    private static void positive(String field, int v) {
        if (v <= 0) throw new IllegalArgumentException(field + " = " + v + " must be > 0");
    }

    /**
     * GPT-Neo's config.json. The shape fields are required (num_heads may be spelled num_attention_heads, as
     * transformers' attribute_map allows); the others default as in transformers, attention_types to
     * [[["global", "local"], 12]]. Variants rlhf4j does not compute are refused by name: an activation other than
     * gelu_new, and dropout on attention probabilities (every GPT-Neo checkpoint has 0).
     */
    public static GptNeoConfig fromJson(ConfigJson j) {
        String act = j.string("activation_function", "gelu_new");
        if (!act.equals("gelu_new"))
            throw j.error("activation_function", "= \"" + act + "\" is not supported (GPT-Neo uses gelu_new)");
        if (j.number("attention_dropout", 0.0) != 0)
            throw j.error("attention_dropout", "= " + j.number("attention_dropout")
                    + " is not supported: rlhf4j's fused attention has no dropout on attention probabilities");
        String headsField = !j.has("num_heads") && j.has("num_attention_heads") ? "num_attention_heads" : "num_heads";
        String layersField = !j.has("num_layers") && j.has("num_hidden_layers") ? "num_hidden_layers" : "num_layers";
        int hidden = j.positive("hidden_size"), layers = j.positive(layersField);
        List<AttentionType> types = attentionLayers(j);
        if (types.size() != layers)
            throw j.error("attention_types", "expands to " + types.size() + " layers but " + layersField + " = "
                    + layers + " (a missing attention_types means [[[\"global\", \"local\"], 12]])");
        try {
            return new GptNeoConfig(j.positive("vocab_size"), j.positive("max_position_embeddings"), hidden, layers,
                    j.positive(headsField), j.has("intermediate_size") ? j.positive("intermediate_size") : 4 * hidden,
                    j.has("window_size") ? j.positive("window_size") : 256, types,
                    j.number("layer_norm_epsilon", 1e-5), j.number("initializer_range", 0.02),
                    j.number("embed_dropout", 0.0), j.number("resid_dropout", 0.0),
                    j.bool("tie_word_embeddings", true));
        } catch (IllegalArgumentException e) {
            throw new ModelFormatException(j.source() + ": " + e.getMessage(), e);
        }
    }

    /**
     * transformers' expand_attention_types_params: [[["global", "local"], 12]] is the pair repeated 12 times. The
     * {@code attention_layers} that save_pretrained also writes is derived, and ignored as transformers ignores it.
     */
    private static List<AttentionType> attentionLayers(ConfigJson j) {
        JsonNode spec = j.node("attention_types");
        if (spec == null) {
            List<AttentionType> out = new ArrayList<>();
            for (int i = 0; i < 12; i++) out.addAll(List.of(AttentionType.GLOBAL, AttentionType.LOCAL));
            return out;
        }
        String shape = "must be a list of [[types...], count] pairs such as [[[\"global\", \"local\"], 12]]";
        if (!spec.isArray()) throw j.error("attention_types", shape + ", got " + spec);
        List<AttentionType> out = new ArrayList<>();
        for (JsonNode item : spec) {
            if (!item.isArray() || item.size() != 2 || !item.get(0).isArray() || !item.get(1).isIntegralNumber()
                    || item.get(1).asInt() < 0)
                throw j.error("attention_types", shape + ", got " + item);
            List<AttentionType> group = new ArrayList<>();
            for (JsonNode t : item.get(0)) {
                String name = t.asText();
                if (!t.isTextual() || !(name.equals("global") || name.equals("local")))
                    throw j.error("attention_types", "has attention type " + t + ": only \"global\" and \"local\" exist");
                group.add(name.equals("global") ? AttentionType.GLOBAL : AttentionType.LOCAL);
            }
            long total = out.size() + (long) group.size() * item.get(1).asInt();
            if (total > 1 << 20) throw j.error("attention_types", "expands to " + total + " layers");
            for (int i = 0; i < item.get(1).asInt(); i++) out.addAll(group);
        }
        return out;
    }

    /** The attention window of layer {@code layer}: window_size for local layers, 0 (unlimited) for global ones. */
    public int window(int layer) {
        return attentionLayers.get(layer) == AttentionType.LOCAL ? windowSize : 0;
    }

    @Override
    public String modelType() {
        return "gpt_neo";
    }

    @Override
    public int headDim() {
        return hiddenSize / numHeads;
    }

    @Override
    public int maxPositions() {
        return maxPositionEmbeddings;
    }

    @Override
    public String basePrefix() {
        return "transformer";
    }
}
