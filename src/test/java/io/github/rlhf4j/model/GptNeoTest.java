package io.github.rlhf4j.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.github.rlhf4j.model.GptNeoConfig.AttentionType;
import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.tensor.Scope;
import java.util.List;
import java.util.Set;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;

/**
 * {@link GptNeoModel} against transformers' GPTNeoForCausalLM on fixtures/models/gpt_neo_tiny (made by
 * src/test/python/make_opt_gpt_neo_fixtures.py): a global and a local layer with window_size 4 below the sequence
 * length. Loaded through {@link HfModel}: names, shapes and order as transformers; logits at every non-padding
 * position of a left-padded batch; the KV-cache path; the local window reaches the logits;
 * config.json errors.
 */
class GptNeoTest {
    static final String CASE = "gpt_neo_tiny";

    @Test
    void parameterNamesShapesAndOrderMatchTransformersAndTheSafetensors() {
        new FixtureModelChecks(CASE).checkParameterNames();
    }

    @Test
    void rewardModelNamesItsBaseRwtranrsformerAndAddsAValueHead() {
        new FixtureModelChecks(CASE).checkRewardModelNames();
    }

    @Test
    void f64LogitsMatchTransformers() {
        double err = new FixtureModelChecks(CASE).checkLogits(DType.F64, 1e-9);
        System.out.printf("GptNeoTest F64: max |logit error| / max |logit| %.2e%n", err);
    }

    @Test
    void f32LogitsMatchTransformers() {
        double err = new FixtureModelChecks(CASE).checkLogits(DType.F32, 1e-4);
        System.out.printf("GptNeoTest F32: max |logit error| / max |logit| %.2e%n", err);
    }

    @Test
    void kvCachePrefillAndDecodeStepsMatchTheFullForward() {
        double err = new FixtureModelChecks(CASE).checkKvCache(1e-9);
        System.out.printf("GptNeoTest KV cache F64: max |logit error| / max |logit| %.2e%n", err);
    }

    @Test
    void everyParameterGetsAGradient() {
        new FixtureModelChecks(CASE).checkEveryParameterGetsAGradient();
    }

    @Test
    void attentionTypesExpandToOneTypePerLayer() {
        GptNeoConfig c = (GptNeoConfig) Models.config(FixtureModelChecks.fixtureDir(CASE));
        assertEquals(List.of(AttentionType.GLOBAL, AttentionType.LOCAL), c.attentionLayers());
        assertEquals(0, c.window(0));
        assertEquals(4, c.window(1));
        assertEquals(4 * c.hiddenSize(), c.intermediateSize(), "intermediate_size null means 4 hidden_size");
        FixtureModelChecks f = new FixtureModelChecks(CASE);
        GptNeoConfig three = GptNeoConfig.fromJson(f.editedConfig(j -> {
            j.put("num_layers", 5);
            ArrayNode types = j.putArray("attention_types");
            types.addArray().add(j.arrayNode().add("local").add("global")).add(2);
            types.addArray().add(j.arrayNode().add("global")).add(1);
        }));
        assertEquals(List.of(AttentionType.LOCAL, AttentionType.GLOBAL, AttentionType.LOCAL, AttentionType.GLOBAL,
                AttentionType.GLOBAL), three.attentionLayers());
    }

    /**
     * The fixture is sensitive to the local window: with the local layer made global the logits move far beyond the
     * tolerance, and a window as long as the sequence hides nothing.
     */
    @Test
    void localWindowReachesTheLogits() {
        FixtureModelChecks f = new FixtureModelChecks(CASE);
        GptNeoConfig c = (GptNeoConfig) Models.config(f.dir);
        GptNeoConfig allGlobal = new GptNeoConfig(c.vocabSize(), c.maxPositionEmbeddings(), c.hiddenSize(),
                c.numLayers(), c.numHeads(), c.intermediateSize(), c.windowSize(),
                List.of(AttentionType.GLOBAL, AttentionType.GLOBAL), c.layerNormEpsilon(), c.initializerRange(),
                c.embedDropout(), c.residDropout(), c.tieWordEmbeddings());
        assertTrue(maxDifferenceFromTransformers(f, allGlobal) > 1e-3, "the local window matters");
        // a window of at least the sequence length hides nothing: the same logits as global attention
        GptNeoConfig wide = new GptNeoConfig(c.vocabSize(), c.maxPositionEmbeddings(), c.hiddenSize(),
                c.numLayers(), c.numHeads(), c.intermediateSize(), f.time, c.attentionLayers(), c.layerNormEpsilon(),
                c.initializerRange(), c.embedDropout(), c.residDropout(), c.tieWordEmbeddings());
        assertEquals(maxDifferenceFromTransformers(f, allGlobal), maxDifferenceFromTransformers(f, wide), 1e-12);
    }

    private static double maxDifferenceFromTransformers(FixtureModelChecks f, GptNeoConfig c) {
        CausalLM model = CausalLM.of(c);
        try (ParameterStore store = ParameterStore.allocate(model, Device.cpu(), DType.F64, 1);
             Scope s = Scope.open()) {
            HfModel.loadWeights(model, c.basePrefix(), f.dir, Set.of());
            model.train(false);
            double[] got = f.realTokens(
                    model.forward(f.idsTensor(), f.maskTensor(), f.positionsTensor(), null).toDoubleArray());
            double[] want = f.expectedAtRealTokens();
            double diff = 0;
            for (int i = 0; i < got.length; i++) diff = Math.max(diff, Math.abs(got[i] - want[i]));
            return diff;
        }
    }

    @Test
    void dropoutActsOnlyInTrainingMode() {
        FixtureModelChecks f = new FixtureModelChecks(CASE);
        GptNeoConfig c = GptNeoConfig.fromJson(f.editedConfig(j -> {
            j.put("embed_dropout", 0.2);
            j.put("resid_dropout", 0.2);
        }));
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
        FixtureModelChecks f = new FixtureModelChecks(CASE);
        assertRefused(f, j -> j.remove("num_heads"), "'num_heads' is missing");
        assertRefused(f, j -> j.remove("vocab_size"), "'vocab_size' is missing");
        assertRefused(f, j -> j.put("activation_function", "relu"), "'activation_function'");
        assertRefused(f, j -> j.put("attention_dropout", 0.1), "'attention_dropout'");
        assertRefused(f, j -> j.put("num_layers", 3), "'attention_types' expands to 2 layers");
        assertRefused(f, j -> j.remove("attention_types"), "'attention_types' expands to 24 layers");
        assertRefused(f, j -> {
            ArrayNode types = j.putArray("attention_types");
            types.addArray().add(j.arrayNode().add("global").add("sparse")).add(1);
        }, "attention type \"sparse\"");
        assertRefused(f, j -> j.put("attention_types", "global"), "'attention_types' must be a list");
        assertRefused(f, j -> j.put("num_heads", 5), "num_heads");
        assertRefused(f, j -> j.put("window_size", 0), "'window_size' = 0 must be > 0");
    }

    @Test
    void numAttentionHeadsIsAcceptedForNumHeads() {
        FixtureModelChecks f = new FixtureModelChecks(CASE);
        GptNeoConfig c = GptNeoConfig.fromJson(f.editedConfig(j -> {
            j.set("num_attention_heads", j.remove("num_heads"));
            j.set("num_hidden_layers", j.remove("num_layers"));
        }));
        assertEquals(4, c.numHeads());
        assertEquals(2, c.numLayers());
    }

    private static void assertRefused(FixtureModelChecks f, Consumer<ObjectNode> edit, String fragment) {
        ConfigJson json = f.editedConfig(edit);
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> Models.config(json));
        assertTrue(e.getMessage().contains("config.json"), e.getMessage());
        assertTrue(e.getMessage().contains(fragment), e.getMessage() + " should contain " + fragment);
    }
}
