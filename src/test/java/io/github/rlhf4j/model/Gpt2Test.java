package io.github.rlhf4j.model;

import static io.github.rlhf4j.testing.Assertions.assertClose;
import static io.github.rlhf4j.testing.Assertions.maxAbs;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.github.rlhf4j.nn.Parameter;
import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.tensor.Autograd;
import io.github.rlhf4j.tensor.Functional;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import io.github.rlhf4j.testing.Fixtures;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * {@link CausalLM} (GPT-2) against transformers' GPT2LMHeadModel (fixtures/gpt2_tiny.json, made by
 * src/test/python/make_gpt2_fixture.py): the same parameter names, shapes and order (so checkpoints map one to one);
 * with transformers' weights loaded by name, the same logits on a left-padded batch and the same gradients of a
 * cross-entropy loss for every parameter, in F32 to float32 accuracy and in F64 to rounding; and transformers'
 * initial weight distributions.
 */
class Gpt2Test {
    static final JsonNode FIXTURE = Fixtures.load("gpt2_tiny.json");

    static Gpt2Config fixtureConfig(JsonNode c) {
        return Gpt2Config.tiny(c.get("vocab_size").asInt(), c.get("n_positions").asInt(), c.get("n_embd").asInt(),
                c.get("n_layer").asInt(), c.get("n_head").asInt());
    }

    @Test
    void parameterNamesShapesAndOrderMatchTransformers() {
        CausalLM model = CausalLM.of(fixtureConfig(FIXTURE.get("config")));
        List<String> expected = new ArrayList<>(), actual = new ArrayList<>();
        for (JsonNode p : FIXTURE.get("parameters")) expected.add(p.get("name").asText() + shapeOf(p.get("shape")));
        for (Map.Entry<String, Parameter> e : model.namedParameters().entrySet())
            actual.add(e.getKey() + Arrays.toString(e.getValue().shape()));
        assertEquals(expected, actual);
        assertTrue(layerNormEpsilon() == ((Gpt2Config) model.config()).layerNormEpsilon(), "tiny() uses transformers' default eps");
    }

    @Test
    void gpt2SmallHasTransformersParameterCount() {
        assertEquals(FIXTURE.get("gpt2_small_parameter_count").asLong(), CausalLM.of(Gpt2Config.gpt2Small()).parameterCount());
    }

    @Test
    void f32LogitsAndGradientsMatchTransformers() {
        checkAgainstTransformers(DType.F32, 2e-5, 1e-5);
    }

    @Test
    void f64LogitsAndGradientsMatchTransformers() {
        checkAgainstTransformers(DType.F64, 1e-10, 1e-10);
    }

    /**
     * Loads transformers' weights, runs the left-padded batch, and compares the logits at non-padding positions
     * (left-padded query rows see no key in rlhf4j and garbage in transformers) and every parameter's gradient, each
     * to {@code tol} times the largest magnitude of the expected tensor.
     */
    private static void checkAgainstTransformers(DType dtype, double logitTol, double gradTol) {
        CausalLM model = CausalLM.of(fixtureConfig(FIXTURE.get("config")));
        model.train(false);
        try (ParameterStore store = ParameterStore.allocate(model, Device.cpu(), dtype, 99);
             Scope s = Scope.open()) {
            loadWeights(model);
            Tensor ids = Fixtures.tensor(FIXTURE.get("input_ids"), dtype);
            Tensor mask = Fixtures.tensor(FIXTURE.get("attention_mask"), dtype);
            Tensor positions = Fixtures.tensor(FIXTURE.get("position_ids"), dtype);
            Tensor targets = Fixtures.tensor(FIXTURE.get("targets"), dtype);
            Tensor logits = model.forward(ids, mask, positions, null);
            assertEquals(dtype, logits.dtype());
            assertArrayEquals(Fixtures.shape(FIXTURE.get("logits")), logits.shape());

            int[] m = mask.toIntArray();
            int vocab = logits.size(2);
            double[] expected = Fixtures.doubles(FIXTURE.get("logits")), actual = logits.toDoubleArray();
            List<Double> e = new ArrayList<>(), a = new ArrayList<>();
            for (int row = 0; row < m.length; row++) {
                if (m[row] == 0) continue;
                for (int v = 0; v < vocab; v++) {
                    e.add(expected[row * vocab + v]);
                    a.add(actual[row * vocab + v]);
                }
            }
            double[] ev = e.stream().mapToDouble(Double::doubleValue).toArray();
            double[] av = a.stream().mapToDouble(Double::doubleValue).toArray();
            assertTrue(ev.length < expected.length, "the fixture has padding positions");
            assertClose(ev, av, logitTol * maxAbs(ev), 0, dtype + " logits at non-padding positions");
            double worstLogit = maxRelError(ev, av);

            store.zeroGrad();
            Tensor loss = Functional.crossEntropy(logits, targets, -100);
            assertClose(new double[] {FIXTURE.get("loss").asDouble()}, new double[] {loss.item()}, logitTol, logitTol,
                    dtype + " loss");
            loss.backward();
            double worstGrad = 0;
            Map<String, Parameter> params = model.namedParameters();
            for (JsonNode p : FIXTURE.get("parameters")) {
                String name = p.get("name").asText();
                Tensor g = params.get(name).value().grad();
                assertNotNull(g, name + " has no gradient");
                double[] eg = Fixtures.doubles(p.get("grad")), ag = g.toDoubleArray();
                assertTrue(maxAbs(eg) > 0, name + ": the fixture's gradient is not all zero");
                assertClose(eg, ag, gradTol * maxAbs(eg), 0, dtype + " gradient of " + name);
                worstGrad = Math.max(worstGrad, maxRelError(eg, ag));
            }
            System.out.printf("Gpt2Test %s: max |logit error| / max|logit| %.2e, max |grad error| / max|grad| "
                    + "(worst tensor) %.2e%n", dtype, worstLogit, worstGrad);
        }
    }

    /** Copies transformers' values into the model's parameters, by name. */
    static void loadWeights(CausalLM model) {
        Map<String, Parameter> params = model.namedParameters();
        try (Autograd.NoGrad ignored = Autograd.noGrad()) {
            for (JsonNode p : FIXTURE.get("parameters")) {
                Parameter param = params.get(p.get("name").asText());
                assertNotNull(param, "no parameter " + p.get("name"));
                param.value().copyFrom(Fixtures.doubles(p.get("value")));
            }
        }
    }

    private static double maxRelError(double[] expected, double[] actual) {
        double worst = 0;
        for (int i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
        return worst / maxAbs(expected);
    }

    @Test
    void initialWeightsFollowTransformersInitialisation() {
        JsonNode init = FIXTURE.get("init");
        CausalLM model = CausalLM.of(fixtureConfig(init.get("config")));
        try (ParameterStore store = ParameterStore.allocate(model, Device.cpu(), 5)) {
            Map<String, Parameter> params = model.namedParameters();
            assertEquals(init.get("stats").size(), params.size());
            for (JsonNode st : init.get("stats")) {
                String name = st.get("name").asText();
                double[] v = params.get(name).value().toDoubleArray();
                assertEquals(st.get("numel").asInt(), v.length, name);
                double mean = Arrays.stream(v).average().orElseThrow(), var = 0;
                for (double x : v) var += (x - mean) * (x - mean);
                double std = Math.sqrt(var / (v.length - 1));
                double hfMean = st.get("mean").asDouble(), hfStd = st.get("std").asDouble();
                if (hfStd == 0) { // constants: LayerNorm weights 1, biases 0
                    assertEquals(0.0, std, name + " is constant");
                    assertEquals(hfMean, mean, name + " value");
                } else { // normal(0, std): sample statistics of a few thousand draws agree to a few percent
                    assertEquals(hfStd, std, 0.1 * hfStd, name + " std");
                    assertEquals(0.0, mean, 0.15 * hfStd, name + " mean");
                }
            }
        }
    }

    @Test
    void defaultPositionsAreZeroToTMinusOne() {
        CausalLM model = CausalLM.of(fixtureConfig(FIXTURE.get("config")));
        try (ParameterStore store = ParameterStore.allocate(model, Device.cpu(), 3); Scope s = Scope.open()) {
            loadWeights(model);
            Tensor ids = Fixtures.tensor(FIXTURE.get("input_ids"), DType.F32);
            Tensor positions = Fixtures.tensor(FIXTURE.get("position_ids"), DType.F32);
            double[] explicit = model.forward(ids, null, positions, null).toDoubleArray();
            assertArrayEquals(explicit, model.forward(ids, null, null, null).toDoubleArray());
            // and positions matter: shifted positions change the logits
            int[] plusOne = positions.toIntArray();
            for (int i = 0; i < plusOne.length; i++) plusOne[i]++;
            double[] shifted = model.forward(ids, null, Tensor.ofInts(plusOne, positions.shape()), null).toDoubleArray();
            assertTrue(maxRelError(explicit, shifted) > 1e-3, "positions reach the logits");
        }
    }

    @Test
    void sequencesLongerThanNPositionsAreRejected() {
        Gpt2Config c = fixtureConfig(FIXTURE.get("config"));
        CausalLM model = CausalLM.of(c);
        try (ParameterStore store = ParameterStore.allocate(model, Device.cpu(), 3); Scope s = Scope.open()) {
            Tensor ids = Tensor.ofInts(new int[c.nPositions() + 1], 1, c.nPositions() + 1);
            assertThrows(IllegalArgumentException.class, () -> model.forward(ids, null, null, null));
        }
    }

    @Test
    void dropoutActsOnlyInTrainingMode() {
        Gpt2Config t = fixtureConfig(FIXTURE.get("config"));
        Gpt2Config c = new Gpt2Config(t.vocabSize(), t.nPositions(), t.nEmbd(), t.nLayer(), t.nHead(),
                t.layerNormEpsilon(), t.initializerRange(), 0.3, 0.3);
        CausalLM plain = CausalLM.of(t), dropping = CausalLM.of(c);
        try (ParameterStore a = ParameterStore.allocate(plain, Device.cpu(), 3);
             ParameterStore b = ParameterStore.allocate(dropping, Device.cpu(), 3);
             Scope s = Scope.open()) {
            loadWeights(plain);
            loadWeights(dropping);
            Tensor ids = Fixtures.tensor(FIXTURE.get("input_ids"), DType.F32);
            double[] reference = plain.forward(ids, null, null, null).toDoubleArray();
            dropping.train(false);
            assertArrayEquals(reference, dropping.forward(ids, null, null, null).toDoubleArray(), "eval mode: no dropout");
            dropping.train(true);
            dropping.base().setDropoutSeed(11);
            double[] first = dropping.forward(ids, null, null, null).toDoubleArray();
            assertTrue(maxRelError(reference, first) > 1e-2, "training mode drops");
            dropping.base().setDropoutSeed(11);
            assertArrayEquals(first, dropping.forward(ids, null, null, null).toDoubleArray(), "same seed, same masks");
            assertTrue(maxRelError(first, dropping.forward(ids, null, null, null).toDoubleArray()) > 1e-2,
                    "each forward advances the seed");
        }
    }

    private static double layerNormEpsilon() {
        return FIXTURE.get("config").get("layer_norm_epsilon").asDouble();
    }

    private static String shapeOf(JsonNode shape) {
        int[] s = new int[shape.size()];
        for (int i = 0; i < s.length; i++) s[i] = shape.get(i).asInt();
        return Arrays.toString(s);
    }
}
