package io.github.rlhf4j.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.github.rlhf4j.nn.Parameter;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import io.github.rlhf4j.testing.Fixtures;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@link LlamaModel} (model_type llama and qwen2) against transformers' LlamaForCausalLM and Qwen2ForCausalLM on the
 * fixtures of src/test/python/make_llama_qwen2_fixtures.py: grouped-query attention with an untied head
 * (llama_gqa_untied), llama3 RoPE scaling in the old rope_scaling form with all biases and a head_dim of its own
 * (llama_rope_llama3), Qwen2's q/k/v biases with tied embeddings and one kv head (qwen2_tied), and a bfloat16
 * checkpoint with Qwen2's sliding window (qwen2_bf16_sliding). Loaded through {@link HfModel}: names, shapes and
 * order as transformers; logits at every non-padding position of a left-padded batch; the KV-cache path; RoPE's
 * inverse frequencies for every rope type and config form (fixtures/llama_rope.json); config.json errors.
 *
 * <p>The float64 references run RMSNorm and RoPE in float64, which transformers rounds to float32 even in a float64
 * model (the fixture generator says how, and how far the unpatched transformers is: about 1e-7).
 */
class LlamaTest {
    static final String[] CASES = {"llama_gqa_untied", "llama_rope_llama3", "qwen2_tied", "qwen2_bf16_sliding"};

    @ParameterizedTest
    @ValueSource(strings = {"llama_gqa_untied", "llama_rope_llama3", "qwen2_tied", "qwen2_bf16_sliding"})
    void parameterNamesShapesAndOrderMatchTransformersAndTheSafetensors(String name) {
        new FixtureModelChecks(name).checkParameterNames();
    }

    @Test
    void rewardModelNamesItsBaseRwtranrsformerAndAddsAValueHead() {
        new FixtureModelChecks("qwen2_tied").checkRewardModelNames();
        // an untied model: transformers' names without lm_head, under rwtranrsformer, then v_head
        FixtureModelChecks f = new FixtureModelChecks("llama_rope_llama3");
        List<String> want = new ArrayList<>(), got = new ArrayList<>();
        for (JsonNode p : f.expected.get("parameters")) {
            String n = p.get("name").asText();
            if (n.equals("lm_head.weight")) continue;
            assertTrue(n.startsWith("model."), n);
            want.add(RewardModel.BASE_NAME + n.substring("model".length()) + p.get("shape"));
        }
        want.add("v_head.weight[1,32]");
        for (Map.Entry<String, Parameter> e : RewardModel.of(config("llama_rope_llama3")).namedParameters().entrySet())
            got.add(e.getKey() + Arrays.toString(e.getValue().shape()).replace(" ", ""));
        assertEquals(want, got);
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama_gqa_untied", "llama_rope_llama3", "qwen2_tied", "qwen2_bf16_sliding"})
    void f64LogitsMatchTransformers(String name) {
        double err = new FixtureModelChecks(name).checkLogits(DType.F64, 1e-9);
        System.out.printf("LlamaTest %s F64: max |logit error| / max |logit| %.2e%n", name, err);
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama_gqa_untied", "llama_rope_llama3", "qwen2_tied", "qwen2_bf16_sliding"})
    void f32LogitsMatchTransformers(String name) {
        double err = new FixtureModelChecks(name).checkLogits(DType.F32, 1e-4);
        System.out.printf("LlamaTest %s F32: max |logit error| / max |logit| %.2e%n", name, err);
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama_gqa_untied", "llama_rope_llama3", "qwen2_tied", "qwen2_bf16_sliding"})
    void kvCachePrefillAndDecodeStepsMatchTheFullForward(String name) {
        double err = new FixtureModelChecks(name).checkKvCache(1e-9);
        System.out.printf("LlamaTest %s KV cache F64: max |logit error| / max |logit| %.2e%n", name, err);
    }

    /** The fixtures' configs read as intended: the features each case exists to prove are on. */
    @Test
    void fixtureConfigsHaveTheirFeatures() {
        LlamaConfig gqa = config("llama_gqa_untied");
        assertEquals(List.of(4, 2, false), List.of(gqa.numAttentionHeads(), gqa.numKeyValueHeads(),
                gqa.tieWordEmbeddings()));
        assertEquals(500.0, gqa.rope().theta());
        LlamaConfig l3 = config("llama_rope_llama3");
        assertEquals(new Rope("llama3", 16, 5000, 8, 1, 4, 32, 64), l3.rope());
        assertEquals(List.of(16, true, true, true), List.of(l3.headDim(), l3.qkvBias(), l3.oProjBias(), l3.mlpBias()));
        LlamaConfig qt = config("qwen2_tied");
        assertEquals(List.of(true, false, false, true, 1), List.of(qt.qkvBias(), qt.oProjBias(), qt.mlpBias(),
                qt.tieWordEmbeddings(), qt.numKeyValueHeads()));
        LlamaConfig qs = config("qwen2_bf16_sliding");
        assertEquals(List.of(0, 4), List.of(qs.window(0), qs.window(1)));
        assertEquals("bfloat16", new FixtureModelChecks("qwen2_bf16_sliding").expected.get("saved_dtype").asText());
    }

    private static LlamaConfig config(String name) {
        return (LlamaConfig) Models.config(FixtureModelChecks.fixtureDir(name));
    }

    // ---- RoPE ------------------------------------------------------------------------------------------------------

    /**
     * inv_freq of every fixture case and every variant of fixtures/llama_rope.json (rope types default, linear,
     * dynamic, llama3; rope_scaling vs rope_parameters; top-level rope_theta and original_max_position_embeddings;
     * Llama 3.1's and Qwen2.5's real settings) against transformers: the float32 one to within one ulp (torch's
     * vectorised float32 pow is not always correctly rounded; the rest of the arithmetic is repeated exactly), the
     * float64 one (transformers' init function run in float64) to 1e-14.
     */
    @Test
    void inverseFrequenciesMatchTransformers() {
        int exact = 0, total = 0;
        for (String name : CASES) {
            JsonNode inv = new FixtureModelChecks(name).expected.get("inv_freq");
            Rope rope = config(name).rope();
            exact += checkInvFreq(name, rope, inv.get("float32"), inv.get("float64"), 1e-12);
            total += rope.dim() / 2;
        }
        for (JsonNode v : Fixtures.load("llama_rope.json").get("variants")) {
            String name = v.get("name").asText();
            Rope rope = ((LlamaConfig) Models.config(ConfigJson.parse(name, v.get("config").toString()))).rope();
            exact += checkInvFreq(name, rope, v.get("inv_freq_float32"), v.get("inv_freq_float64"), 1e-14);
            total += rope.dim() / 2;
        }
        System.out.printf("LlamaTest inv_freq: %d of %d float32 frequencies bit-equal to transformers'%n", exact, total);
    }

    private static int checkInvFreq(String name, Rope rope, JsonNode want32, JsonNode want64, double tol64) {
        float[] got32 = rope.invFreq32();
        double[] got64 = rope.invFreq64();
        assertEquals(want32.size(), got32.length, name + ": number of frequencies");
        int exact = 0;
        for (int i = 0; i < got32.length; i++) {
            float w = (float) want32.get(i).asDouble();
            assertTrue(Math.abs(got32[i] - w) <= Math.ulp(w), name + ": float32 inv_freq[" + i + "] = " + got32[i]
                    + ", transformers " + w);
            if (got32[i] == w) exact++;
            double w64 = want64.get(i).asDouble();
            assertEquals(w64, got64[i], tol64 * w64, name + ": float64 inv_freq[" + i + "]");
        }
        return exact;
    }

    /**
     * The positions reach the logits through RoPE, which sees only their differences: shifting them all by one
     * changes nothing, spreading them out changes every row past its first token.
     */
    @Test
    void logitsDependOnRelativePositions() {
        FixtureModelChecks f = new FixtureModelChecks("llama_gqa_untied");
        try (HfModel m = f.load(DType.F64); Scope s = Scope.open()) {
            int[] shifted = f.positions.clone(), spread = f.positions.clone();
            for (int i = 0; i < shifted.length; i++) {
                shifted[i] += 1;
                spread[i] *= 2;
            }
            double[] a = f.realTokens(m.model().forward(f.idsTensor(), f.maskTensor(), f.positionsTensor(), null)
                    .toDoubleArray());
            double[] b = f.realTokens(m.model().forward(f.idsTensor(), f.maskTensor(),
                    Tensor.ofInts(shifted, f.batch, f.time), null).toDoubleArray());
            double[] c = f.realTokens(m.model().forward(f.idsTensor(), f.maskTensor(),
                    Tensor.ofInts(spread, f.batch, f.time), null).toDoubleArray());
            FixtureModelChecks.assertLogits(a, b, 1e-12, "logits with every position shifted by one");
            double diff = 0;
            for (int i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i] - c[i]));
            assertTrue(diff > 1e-3, "spread positions change the logits, by " + diff);
        }
    }

    // ---- config.json ---------------------------------------------------------------------------------------------

    private static String refused(FixtureModelChecks f, Consumer<ObjectNode> edit) {
        ConfigJson j = f.editedConfig(edit);
        return assertThrows(ModelFormatException.class, () -> Models.config(j)).getMessage();
    }

    private static void assertMentions(String msg, String... parts) {
        for (String p : parts) assertTrue(msg.contains(p), "message '" + msg + "' should mention '" + p + "'");
    }

    @Test
    void missingRequiredFieldsAreNamedWithTheFile() {
        FixtureModelChecks f = new FixtureModelChecks("llama_gqa_untied");
        String file = f.dir.resolve("config.json").toString();
        for (String field : List.of("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                "num_attention_heads"))
            assertMentions(refused(f, j -> j.remove(field)), file, "'" + field + "'", "missing");
    }

    @Test
    void unsupportedVariantsAreRefusedByFieldName() {
        FixtureModelChecks llama = new FixtureModelChecks("llama_gqa_untied");
        FixtureModelChecks old = new FixtureModelChecks("llama_rope_llama3");
        FixtureModelChecks qwen = new FixtureModelChecks("qwen2_tied");
        assertMentions(refused(llama, j -> j.put("hidden_act", "gelu")), "'hidden_act'", "gelu");
        assertMentions(refused(llama, j -> j.put("attention_dropout", 0.1)), "'attention_dropout'");
        assertMentions(refused(llama, j -> ((ObjectNode) j.get("rope_parameters")).put("rope_type", "yarn")),
                "'rope_parameters.rope_type'", "yarn");
        assertMentions(refused(old, j -> ((ObjectNode) j.get("rope_scaling")).put("rope_type", "longrope")),
                "'rope_scaling.rope_type'", "longrope");
        assertMentions(refused(old, j -> ((ObjectNode) j.get("rope_scaling")).remove("low_freq_factor")),
                "'rope_scaling.low_freq_factor'", "missing");
        assertMentions(refused(old, j -> ((ObjectNode) j.get("rope_scaling")).put("partial_rotary_factor", 0.5)),
                "'rope_scaling.partial_rotary_factor'");
        assertMentions(refused(llama, j -> ((ObjectNode) j.get("rope_parameters")).put("rope_type", "linear")),
                "'rope_parameters.factor'", "missing");
        assertMentions(refused(llama, j -> j.put("num_key_value_heads", 3)), "'num_key_value_heads'");
        assertMentions(refused(llama, j -> j.put("hidden_size", 34)), "'hidden_size'", "multiple");
        assertMentions(refused(qwen, j -> j.remove("num_key_value_heads")), "'num_key_value_heads'", "32");
        assertMentions(refused(qwen, j -> j.putObject("rope_parameters").putObject("full_attention")
                .put("rope_type", "default")), "'rope_parameters'", "per layer type");
        assertMentions(refused(qwen, j -> j.putArray("layer_types").add("full_attention").add("sliding_attention")),
                "'layer_types'", "sliding_window");
        assertMentions(refused(qwen, j -> j.putArray("layer_types").add("full_attention").add("chunked_attention")),
                "'layer_types'", "chunked_attention");
    }

    /**
     * transformers' defaults and quirks: Qwen2 ignores attention_bias and mlp_bias; its sliding window counts only
     * with use_sliding_window, from max_window_layers on; absent rope fields give default RoPE with theta 10000;
     * pretraining_tp, which transformers 5 no longer reads, is ignored.
     */
    @Test
    void transformersDefaultsApply() {
        FixtureModelChecks qwen = new FixtureModelChecks("qwen2_tied");
        LlamaConfig q = (LlamaConfig) Models.config(qwen.editedConfig(j -> {
            j.put("attention_bias", false);
            j.put("mlp_bias", true);
            j.put("sliding_window", 2);
            j.remove("layer_types");
        }));
        assertEquals(List.of(true, false, false), List.of(q.qkvBias(), q.oProjBias(), q.mlpBias()));
        assertEquals(List.of(0, 0), List.of(q.window(0), q.window(1)), "no sliding without use_sliding_window");
        LlamaConfig w = (LlamaConfig) Models.config(qwen.editedConfig(j -> {
            j.put("use_sliding_window", true);
            j.remove("sliding_window");
            j.put("max_window_layers", 1);
            j.remove("layer_types");
        }));
        assertEquals(List.of(0, 4096), List.of(w.window(0), w.window(1)), "transformers' default sliding_window");

        FixtureModelChecks llama = new FixtureModelChecks("llama_gqa_untied");
        LlamaConfig l = (LlamaConfig) Models.config(llama.editedConfig(j -> {
            j.remove("rope_parameters");
            j.remove("num_key_value_heads");
            j.remove("head_dim");
            j.remove("max_position_embeddings");
            j.put("pretraining_tp", 2);
        }));
        assertEquals(Rope.standard(8, 10000, 2048), l.rope());
        assertEquals(List.of(4, 8, 2048), List.of(l.numKeyValueHeads(), l.headDim(), l.maxPositionEmbeddings()));
        assertFalse(l.qkvBias());
    }

    @Test
    void tinyConfigBuildsARandomModel() {
        LlamaConfig c = LlamaConfig.tiny(50, 16, 32, 40, 2, 4, 2);
        CausalLM lm = CausalLM.of(c);
        assertTrue(lm.namedParameters().containsKey("lm_head.weight"));
        assertTrue(lm.namedParameters().containsKey("model.layers.1.mlp.down_proj.weight"));
        assertEquals(8, c.headDim());
    }
}
