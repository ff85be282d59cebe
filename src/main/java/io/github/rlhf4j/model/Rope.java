package io.github.rlhf4j.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import java.util.List;

/**
 * Rotary position embedding of the Llama and Qwen2 families as transformers 5 computes it: the RoPE parameters read
 * from config.json, and the inverse frequencies {@code inv_freq} [dim / 2] that
 * {@link io.github.rlhf4j.tensor.Functional#rope} turns into angles {@code position * inv_freq}.
 *
 * <p>Types: {@code default} (inv_freq = 1 / theta^(2i / dim)), {@code linear} (divided by factor), {@code dynamic}
 * (NTK-aware: theta grown by factor) and {@code llama3} (Llama 3.1's three bands: high frequencies kept, low ones
 * divided by factor, the middle band smoothed between them). transformers' dynamic NTK recomputes inv_freq only once
 * a forward's positions reach beyond max_position_embeddings, which rlhf4j refuses (the model's context), so within
 * it inv_freq is the one computed at init. yarn, longrope and the others are refused by name.
 *
 * <p>{@link #invFreq32()} repeats transformers' float32 arithmetic operation by operation (each rounded to float as
 * torch does, {@code a / t} for a Python number a being torch's {@code t.reciprocal() * a}); torch's vectorised
 * float32 pow is not always correctly rounded, so an element can differ from transformers' by one ulp.
 * {@link #invFreq64()} is the same formula in double, for F64 models.
 *
 * @param type rope_type: default, linear, dynamic or llama3
 * @param dim the rotated dimensions of each head (the head dim: transformers' Llama and Qwen2 rotate all of it)
 * @param theta rope_theta, the base
 * @param factor the scaling factor (1 for default)
 * @param lowFreqFactor llama3's low_freq_factor (0 otherwise)
 * @param highFreqFactor llama3's high_freq_factor (0 otherwise)
 * @param originalMaxPositionEmbeddings llama3's original_max_position_embeddings (0 otherwise)
 * @param maxPositionEmbeddings the config's max_position_embeddings (dynamic's reference length)
 */
public record Rope(String type, int dim, double theta, double factor, double lowFreqFactor, double highFreqFactor,
                   int originalMaxPositionEmbeddings, int maxPositionEmbeddings) {
    /** The rope types rlhf4j computes. */
    public static final List<String> TYPES = List.of("default", "linear", "dynamic", "llama3");

    public Rope {
        if (!TYPES.contains(type)) throw new IllegalArgumentException("rope_type " + type + " is not one of " + TYPES);
        if (dim <= 0 || dim % 2 != 0) throw new IllegalArgumentException("rotary dim " + dim + " must be even and > 0");
        if (!(theta > 0)) throw new IllegalArgumentException("rope_theta = " + theta + " must be > 0");
        if (!(factor > 0)) throw new IllegalArgumentException("rope factor = " + factor + " must be > 0");
        if (type.equals("dynamic") && dim <= 2)
            throw new IllegalArgumentException("dynamic rope needs a head dim > 2, got " + dim);
        if (type.equals("llama3") && !(lowFreqFactor > 0 && highFreqFactor > lowFreqFactor
                && originalMaxPositionEmbeddings > 0))
            throw new IllegalArgumentException("llama3 rope needs 0 < low_freq_factor < high_freq_factor and "
                    + "original_max_position_embeddings > 0");
    }

    /** Plain RoPE over {@code dim} dimensions. */
    public static Rope standard(int dim, double theta, int maxPositionEmbeddings) {
        return new Rope("default", dim, theta, 1, 0, 0, 0, maxPositionEmbeddings);
    }

    /**
     * The RoPE of a Llama / Qwen2 config.json, read as transformers 5 reads it: the dict {@code rope_scaling} (older
     * checkpoints) when it is a non-empty object, else {@code rope_parameters}; its {@code rope_type} (or the legacy
     * {@code type}, else "default"); its {@code rope_theta}, else the top-level one, else 10000; llama3's
     * {@code original_max_position_embeddings} from the top level when present there (transformers lets it win),
     * else from the dict, else max_position_embeddings. A {@code partial_rotary_factor} is ignored by the default
     * type, as transformers' Llama ignores it; the scaled types would compute frequencies for a part of the head
     * that transformers' Llama then fails to apply, so they refuse it.
     */
    public static Rope fromJson(ConfigJson j, int headDim, int maxPositionEmbeddings) {
        JsonNode scaling = j.node("rope_scaling");
        boolean useScaling = scaling != null && !(scaling.isObject() && scaling.isEmpty());
        String field = useScaling ? "rope_scaling" : "rope_parameters";
        JsonNode p = j.node(field);
        if (p == null) p = JsonNodeFactory.instance.objectNode();
        if (!p.isObject()) throw j.error(field, "must be an object, got " + p);
        for (String layerType : List.of("full_attention", "sliding_attention"))
            if (p.has(layerType))
                throw j.error(field, "holds RoPE parameters per layer type ('" + layerType + "'), which transformers' "
                        + "Llama and Qwen2 do not read; give one set of parameters");

        String type = text(j, p, field, "rope_type", text(j, p, field, "type", "default"));
        double theta = number(j, p, field, "rope_theta", j.number("rope_theta", 10000.0));
        if (!TYPES.contains(type))
            throw j.error(field + ".rope_type", "= \"" + type + "\" is not supported; rlhf4j computes "
                    + String.join(", ", TYPES));
        try {
            if (type.equals("default")) return standard(headDim, theta, maxPositionEmbeddings);
            double partial = number(j, p, field, "partial_rotary_factor", j.number("partial_rotary_factor", 1.0));
            if ((int) (headDim * partial) != headDim)
                throw j.error(field + ".partial_rotary_factor", "= " + partial + " with rope_type \"" + type + "\" is "
                        + "not supported: transformers' Llama and Qwen2 rotate whole heads and fail on it");
            double factor = number(j, p, field, "factor", Double.NaN);
            if (Double.isNaN(factor)) throw j.error(field + ".factor", "is missing (rope_type \"" + type + "\")");
            if (!type.equals("llama3")) return new Rope(type, headDim, theta, factor, 0, 0, 0, maxPositionEmbeddings);
            double low = number(j, p, field, "low_freq_factor", Double.NaN);
            double high = number(j, p, field, "high_freq_factor", Double.NaN);
            if (Double.isNaN(low)) throw j.error(field + ".low_freq_factor", "is missing (rope_type \"llama3\")");
            if (Double.isNaN(high)) throw j.error(field + ".high_freq_factor", "is missing (rope_type \"llama3\")");
            int original = j.has("original_max_position_embeddings") ? j.positive("original_max_position_embeddings")
                    : (int) number(j, p, field, "original_max_position_embeddings", maxPositionEmbeddings);
            return new Rope(type, headDim, theta, factor, low, high, original, maxPositionEmbeddings);
        } catch (IllegalArgumentException e) {
            throw new ModelFormatException(j.source() + ": " + field + ": " + e.getMessage(), e);
        }
    }

    private static String text(ConfigJson j, JsonNode p, String field, String key, String otherwise) {
        JsonNode n = p.get(key);
        if (n == null || n.isNull()) return otherwise;
        if (!n.isTextual()) throw j.error(field + "." + key, "must be a string, got " + n);
        return n.asText();
    }

    private static double number(ConfigJson j, JsonNode p, String field, String key, double otherwise) {
        JsonNode n = p.get(key);
        if (n == null || n.isNull()) return otherwise;
        if (!n.isNumber()) throw j.error(field + "." + key, "must be a number, got " + n);
        return n.asDouble();
    }

    /** inv_freq [dim / 2] in transformers' float32 arithmetic: what its float32 (and bf16, f16) models use. */
    public float[] invFreq32() {
        double[] d = invFreq(true);
        float[] out = new float[d.length];
        for (int i = 0; i < d.length; i++) out[i] = (float) d[i];
        return out;
    }

    /** inv_freq [dim / 2] by the same formula in double, for F64 models. */
    public double[] invFreq64() {
        return invFreq(false);
    }

    /**
     * transformers' inv_freq with every operation rounded to float when {@code f32} (a double operation on floats
     * rounded once to float is the correctly rounded float operation), in double otherwise.
     */
    private double[] invFreq(boolean f32) {
        double base = theta;
        if (type.equals("dynamic")) // Python floats: seq_len = max_position_embeddings inside the model's context
            base = theta * Math.pow(factor * maxPositionEmbeddings / maxPositionEmbeddings - (factor - 1),
                    (double) dim / (dim - 2));
        double[] inv = new double[dim / 2];
        for (int k = 0; k < inv.length; k++) {
            double exponent = r(r(2.0 * k, f32) / r(dim, f32), f32);          // arange(0, dim, 2).float() / dim
            inv[k] = r(1.0 / r(Math.pow(r(base, f32), exponent), f32), f32); // 1.0 / (base ** exponent)
        }
        switch (type) {
            case "linear" -> {
                for (int k = 0; k < inv.length; k++) inv[k] = r(inv[k] / r(factor, f32), f32);
            }
            case "llama3" -> {
                double lowWavelen = originalMaxPositionEmbeddings / lowFreqFactor; // Python floats
                double highWavelen = originalMaxPositionEmbeddings / highFreqFactor;
                double lowW = r(lowWavelen, f32), highW = r(highWavelen, f32), fac = r(factor, f32);
                for (int k = 0; k < inv.length; k++) {
                    double x = inv[k];
                    double wavelen = r(r(1.0 / x, f32) * r(2 * Math.PI, f32), f32);
                    double scaled = wavelen > lowW ? r(x / fac, f32) : x;
                    double smooth = r(r(r(r(1.0 / wavelen, f32) * r(originalMaxPositionEmbeddings, f32), f32)
                            - r(lowFreqFactor, f32), f32) / r(highFreqFactor - lowFreqFactor, f32), f32);
                    double smoothed = r(r(r(r(1 - smooth, f32) * scaled, f32) / fac, f32) + r(smooth * scaled, f32), f32);
                    boolean medium = !(wavelen < highW) && !(wavelen > lowW);
                    inv[k] = medium ? smoothed : scaled;
                }
            }
            default -> { // default and dynamic: the base alone
            }
        }
        return inv;
    }

    private static double r(double x, boolean f32) {
        return f32 ? (float) x : x;
    }
}
