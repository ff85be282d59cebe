package io.github.rlhf4j.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.tensor.Autograd;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import java.util.Set;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@link OptModel} against transformers' OPTForCausalLM on the fixtures of src/test/python/make_opt_gpt_neo_fixtures.py:
 * pre-LN (opt_tiny), opt-350m's post-LN with project_in/project_out (opt_350m_style), and bias-free Linears with
 * parameter-free LayerNorms (opt_nobias_plain). Loaded through {@link HfModel}: names, shapes and order as
 * transformers; logits at every non-padding position of a left-padded batch, with explicit positions and with OPT's
 * mask-derived default positions; the KV-cache path; config.json errors.
 */
class OptTest {
    @ParameterizedTest
    @ValueSource(strings = {"opt_tiny", "opt_350m_style", "opt_nobias_plain"})
    void parameterNamesShapesAndOrderMatchTransformersAndTheSafetensors(String name) {
        new FixtureModelChecks(name).checkParameterNames();
    }

    @ParameterizedTest
    @ValueSource(strings = {"opt_tiny", "opt_350m_style", "opt_nobias_plain"})
    void rewardModelNamesItsBaseRwtranrsformerAndAddsAValueHead(String name) {
        new FixtureModelChecks(name).checkRewardModelNames();
    }

    @ParameterizedTest
    @ValueSource(strings = {"opt_tiny", "opt_350m_style", "opt_nobias_plain"})
    void f64LogitsMatchTransformers(String name) {
        double err = new FixtureModelChecks(name).checkLogits(DType.F64, 1e-9);
        System.out.printf("OptTest %s F64: max |logit error| / max |logit| %.2e%n", name, err);
    }

    @ParameterizedTest
    @ValueSource(strings = {"opt_tiny", "opt_350m_style", "opt_nobias_plain"})
    void f32LogitsMatchTransformers(String name) {
        double err = new FixtureModelChecks(name).checkLogits(DType.F32, 1e-4);
        System.out.printf("OptTest %s F32: max |logit error| / max |logit| %.2e%n", name, err);
    }

    @ParameterizedTest
    @ValueSource(strings = {"opt_tiny", "opt_350m_style", "opt_nobias_plain"})
    void kvCachePrefillAndDecodeStepsMatchTheFullForward(String name) {
        double err = new FixtureModelChecks(name).checkKvCache(1e-9);
        System.out.printf("OptTest %s KV cache F64: max |logit error| / max |logit| %.2e%n", name, err);
    }

    @ParameterizedTest
    @ValueSource(strings = {"opt_tiny", "opt_350m_style", "opt_nobias_plain"})
    void everyParameterGetsAGradient(String name) {
        new FixtureModelChecks(name).checkEveryParameterGetsAGradient();
    }

    /**
     * Without positions OPT numbers the real tokens from the attention mask (a left-padded row starts at 0 at its
     * first real token), as transformers' OPTDecoder does; numbering the columns instead changes the padded rows.
     */
    @Test
    void defaultPositionsComeFromTheAttentionMask() {
        FixtureModelChecks f = new FixtureModelChecks("opt_tiny");
        try (HfModel m = f.load(DType.F64); Scope s = Scope.open()) {
            double[] fromMask = m.model().forward(f.idsTensor(), f.maskTensor(), null, null).toDoubleArray();
            FixtureModelChecks.assertLogits(f.expectedAtRealTokens(), f.realTokens(fromMask), 1e-9,
                    "opt_tiny logits with positions derived from the mask");
            // the same through a cache's first forward (prefill)
            try (Autograd.NoGrad ignored = Autograd.noGrad();
                 KvCache cache = KvCache.of(m.config(), Device.cpu(), DType.F64, f.batch, f.time)) {
                double[] prefill = m.model().forward(f.idsTensor(), f.maskTensor(), null, cache).toDoubleArray();
                FixtureModelChecks.assertLogits(f.expectedAtRealTokens(), f.realTokens(prefill), 1e-9,
                        "opt_tiny prefill with positions derived from the mask");
                // after cached positions the mask of the new tokens alone cannot number them: refused, not guessed
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> m.model().forward(
                        Tensor.ofInts(new int[f.batch], f.batch, 1), null, null, cache));
                assertTrue(e.getMessage().contains("explicit positions"), e.getMessage());
            }
            int[] columns = new int[f.batch * f.time];
            for (int i = 0; i < columns.length; i++) columns[i] = i % f.time;
            double[] byColumn = m.model().forward(f.idsTensor(), f.maskTensor(),
                    Tensor.ofInts(columns, f.batch, f.time), null).toDoubleArray();
            double diff = 0;
            for (int i = 0; i < fromMask.length; i++) diff = Math.max(diff, Math.abs(fromMask[i] - byColumn[i]));
            assertTrue(diff > 1e-3, "positions reach the logits of the padded rows");
        }
    }

    /** opt-350m's layout: post-LN, no decoder final_layer_norm, and a head that reads word_embed_proj_dim states. */
    @Test
    void opt350mStyleConfigHasProjectionsAndNoFinalLayerNorm() {
        OptConfig c = (OptConfig) Models.config(FixtureModelChecks.fixtureDir("opt_350m_style"));
        assertFalse(c.doLayerNormBefore());
        assertTrue(c.projects());
        assertFalse(c.hasFinalLayerNorm());
        assertEquals(16, c.outputSize());
        assertEquals(32, c.hiddenSize());
        OptModel base = new OptModel(c);
        assertNull(base.decoder.finalLayerNorm);
        assertEquals(c.wordEmbedProjDim(), base.decoder.embedTokens.weight.shape()[1]);
    }

    @Test
    void removeFinalLayerNormDropsTheDecodersNorm() {
        FixtureModelChecks f = new FixtureModelChecks("opt_tiny");
        OptConfig c = OptConfig.fromJson(f.editedConfig(j -> j.put("_remove_final_layer_norm", true)));
        Set<String> names = CausalLM.of(c).namedParameters().keySet();
        assertFalse(names.contains("model.decoder.final_layer_norm.weight"));
        assertTrue(names.contains("model.decoder.layers.0.final_layer_norm.weight"));
    }

    @Test
    void missingWordEmbedProjDimMeansHiddenSize() {
        FixtureModelChecks f = new FixtureModelChecks("opt_tiny");
        OptConfig c = OptConfig.fromJson(f.editedConfig(j -> j.remove("word_embed_proj_dim")));
        assertEquals(c.hiddenSize(), c.wordEmbedProjDim());
        assertFalse(c.projects());
    }

    @Test
    void dropoutActsOnlyInTrainingMode() {
        FixtureModelChecks f = new FixtureModelChecks("opt_tiny");
        OptConfig c = OptConfig.fromJson(f.editedConfig(j -> j.put("dropout", 0.3)));
        CausalLM model = CausalLM.of(c);
        try (ParameterStore store = ParameterStore.allocate(model, Device.cpu(), DType.F64, 1);
             Scope s = Scope.open()) {
            HfModel.loadWeights(model, c.basePrefix(), f.dir, Set.of());
            model.train(false);
            double[] eval = model.forward(f.idsTensor(), f.maskTensor(), f.positionsTensor(), null).toDoubleArray();
            FixtureModelChecks.assertLogits(f.expectedAtRealTokens(), f.realTokens(eval), 1e-9, "eval mode: no dropout");
            model.train(true);
            model.base().setDropoutSeed(7);
            double[] train = model.forward(f.idsTensor(), f.maskTensor(), f.positionsTensor(), null).toDoubleArray();
            double diff = 0;
            for (int i = 0; i < eval.length; i++) diff = Math.max(diff, Math.abs(eval[i] - train[i]));
            assertTrue(diff > 1e-2, "training mode drops");
        }
    }

    @Test
    void configErrorsNameTheFileAndTheField() {
        FixtureModelChecks f = new FixtureModelChecks("opt_tiny");
        assertRefused(f, j -> j.remove("hidden_size"), "'hidden_size' is missing");
        assertRefused(f, j -> j.put("num_attention_heads", 5), "num_attention_heads");
        assertRefused(f, j -> j.put("ffn_dim", "big"), "'ffn_dim' must be an integer");
        assertRefused(f, j -> j.put("activation_function", "gelu"), "'activation_function'");
        assertRefused(f, j -> j.put("attention_dropout", 0.1), "'attention_dropout'");
        assertRefused(f, j -> j.put("layerdrop", 0.1), "'layerdrop'");
        assertRefused(f, j -> j.put("enable_bias", "yes"), "'enable_bias' must be true or false");
        assertRefused(f, j -> j.put("model_type", "opt2"), "'model_type'");
    }

    private static void assertRefused(FixtureModelChecks f, Consumer<com.fasterxml.jackson.databind.node.ObjectNode> edit,
                                      String fragment) {
        ConfigJson json = f.editedConfig(edit);
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> Models.config(json));
        assertTrue(e.getMessage().contains("config.json"), e.getMessage());
        assertTrue(e.getMessage().contains(fragment), e.getMessage() + " should contain " + fragment);
    }
}
