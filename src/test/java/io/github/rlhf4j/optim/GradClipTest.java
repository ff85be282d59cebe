package io.github.rlhf4j.optim;

import static io.github.rlhf4j.optim.AdamWTest.atol;
import static io.github.rlhf4j.optim.AdamWTest.gradView;
import static io.github.rlhf4j.optim.AdamWTest.wrap;
import static io.github.rlhf4j.testing.Assertions.assertClose;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.github.rlhf4j.model.CausalLM;
import io.github.rlhf4j.model.Gpt2Config;
import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import io.github.rlhf4j.testing.Fixtures;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/**
 * Clipping by global norm against torch.nn.utils.clip_grad_norm_ (fixtures/optim.json): the total norm it returns,
 * the gradients it leaves, and the AdamW step that follows.
 */
class GradClipTest {
    static final JsonNode FIXTURE = AdamWTest.FIXTURE;
    static final double RTOL = AdamWTest.RTOL;

    static Stream<JsonNode> cases() {
        List<JsonNode> list = new ArrayList<>();
        FIXTURE.get("gradclip").forEach(list::add);
        return list.stream();
    }

    /** globalNorm over several gradient tensors is clip_grad_norm_'s total norm: in f32 and, tighter, in f64. */
    @TestFactory
    Stream<DynamicTest> globalNormMatchesClipGradNormTotalNorm() {
        return cases().map(c -> DynamicTest.dynamicTest(c.get("name").asText(), () -> {
            int k = 0;
            for (JsonNode step : c.get("steps")) {
                k++;
                try (Scope s = Scope.open()) {
                    Tensor[] f32 = grads(c, step, DType.F32), f64 = grads(c, step, DType.F64);
                    double norm = step.get("norm").asDouble(), norm64 = step.get("norm_f64").asDouble();
                    assertClose(new double[] {norm}, new double[] {GradClip.globalNorm(f32)}, 0, RTOL,
                            c.get("name").asText() + " step " + k + " f32 norm");
                    assertClose(new double[] {norm64}, new double[] {GradClip.globalNorm(f64)}, 0, 1e-13,
                            c.get("name").asText() + " step " + k + " f64 norm");
                }
            }
        }));
    }

    /**
     * coefficient(globalNorm, max) handed to AdamW.step(lr, coef) equals clip_grad_norm_ followed by
     * torch.optim.AdamW.step, step after step (a case that clips every step, one that clips some steps, one that
     * never clips, one whose small norms make the + 1e-6 of the coefficient matter); the coefficient times the raw
     * gradients is also torch's clipped gradient.
     */
    @TestFactory
    Stream<DynamicTest> clipCoefficientAsAdamWGradScaleMatchesClipGradNormThenStep() {
        return cases().map(c -> DynamicTest.dynamicTest(c.get("name").asText(), () -> {
            String name = c.get("name").asText();
            double maxNorm = c.get("max_norm").asDouble();
            JsonNode betas = c.get("betas");
            AdamW.Config config = new AdamW.Config(c.get("lr").asDouble(), betas.get(0).asDouble(),
                    betas.get(1).asDouble(), c.get("eps").asDouble(), c.get("weight_decay").asDouble());
            int n = c.get("shapes").size();
            try (Scope s = Scope.open()) {
                List<AdamW.Group> groups = new ArrayList<>();
                for (int i = 0; i < n; i++) {
                    double[] init = Fixtures.doubles(wrap(c.get("init").get(i)));
                    groups.add(new AdamW.Group(Tensor.of(init).to(DType.F32), Tensor.zeros(DType.F32, init.length),
                            config.weightDecay()));
                }
                try (AdamW opt = new AdamW(groups, config)) {
                    int k = 0;
                    boolean clipped = false, passed = false;
                    for (JsonNode step : c.get("steps")) {
                        k++;
                        Tensor[] grads = new Tensor[n];
                        for (int i = 0; i < n; i++) {
                            groups.get(i).grads().copyFrom(Fixtures.doubles(wrap(step.get("grads").get(i))));
                            grads[i] = groups.get(i).grads();
                        }
                        double coef = GradClip.coefficient(GradClip.globalNorm(grads), maxNorm);
                        if (coef < 1) clipped = true;
                        else passed = true;
                        for (int i = 0; i < n; i++) {
                            double[] g = grads[i].toDoubleArray();
                            for (int j = 0; j < g.length; j++) g[j] *= coef;
                            double[] expected = Fixtures.doubles(wrap(step.get("clipped").get(i)));
                            assertClose(expected, g, atol(expected), RTOL, name + " step " + k + " clipped grad " + i);
                        }
                        opt.step(config.lr(), coef);
                        for (int i = 0; i < n; i++) {
                            double[] expected = Fixtures.doubles(wrap(step.get("params").get(i)));
                            assertClose(expected, groups.get(i).params().toDoubleArray(), atol(expected), RTOL,
                                    name + " step " + k + " param " + i);
                        }
                    }
                    if (name.startsWith("clips_")) assertTrue(clipped && !passed, name + " should clip every step");
                    if (name.equals("never_clips")) assertTrue(passed && !clipped, name + " should never clip");
                    if (name.equals("mixed_clip_and_pass")) assertTrue(passed && clipped, name + " should do both");
                }
            }
        }));
    }

    /**
     * Over a model's one flat gradient buffer (alignment gaps included, frozen slots zero), globalNorm is
     * clip_grad_norm_'s total over model.parameters() of transformers' GPT-2 with the same gradients.
     */
    @Test
    void globalNormOfAStoreFlatGradientMatchesClipGradNormOverTheModel() {
        JsonNode f = FIXTURE.get("adamw_gpt2");
        JsonNode cfg = f.get("config");
        CausalLM model = CausalLM.of(Gpt2Config.tiny(cfg.get("vocab_size").asInt(), cfg.get("n_positions").asInt(),
                cfg.get("n_embd").asInt(), cfg.get("n_layer").asInt(), cfg.get("n_head").asInt()));
        Set<String> frozen = new HashSet<>();
        f.get("frozen").forEach(n -> frozen.add(n.asText()));
        try (Scope s = Scope.open(); ParameterStore store = ParameterStore.allocate(model, Device.cpu(), 1)) {
            assertTrue(store.flatSize() > store.parameterCount(), "the tiny model's layout should have gaps");
            for (JsonNode step : f.get("steps")) {
                store.zeroGrad();
                for (ParameterStore.Entry e : store.entries())
                    if (!frozen.contains(e.name()))
                        gradView(store, e).copyFrom(Fixtures.doubles(wrap(step.get("grads").get(e.name()))));
                assertClose(new double[] {step.get("grad_norm").asDouble()},
                        new double[] {GradClip.globalNorm(store.grad())}, 0, RTOL, "store gradient norm");
            }
        }
    }

    /** A NaN or an infinity in any gradient is an error that says so, not a silently poisoned step. */
    @Test
    void nonFiniteGradientIsAnError() {
        try (Scope s = Scope.open()) {
            for (double bad : new double[] {Double.NaN, Double.POSITIVE_INFINITY, Double.NEGATIVE_INFINITY}) {
                Tensor ok = Tensor.of(new float[] {0.5f, -1.5f, 2f});
                Tensor poisoned = Tensor.of(new float[] {1f, (float) bad, 3f, 4f});
                ArithmeticException e = assertThrows(ArithmeticException.class, () -> GradClip.globalNorm(ok, poisoned),
                        "gradient holding " + bad);
                assertTrue(e.getMessage().contains("NaN or Inf"), e.getMessage());
            }
        }
    }

    /** max_norm <= 0 turns clipping off (DeepSpeed's gradient_clipping 0): the coefficient is 1 whatever the norm. */
    @Test
    void nonPositiveMaxNormTurnsClippingOff() {
        for (double norm : new double[] {0.0, 0.5, 1e6})
            for (double maxNorm : new double[] {0.0, -1.0})
                assertEquals(1.0, GradClip.coefficient(norm, maxNorm), "norm " + norm + ", max_norm " + maxNorm);
    }

    private static Tensor[] grads(JsonNode c, JsonNode step, DType dtype) {
        Tensor[] out = new Tensor[c.get("shapes").size()];
        for (int i = 0; i < out.length; i++) {
            JsonNode shape = c.get("shapes").get(i);
            int[] dims = new int[shape.size()];
            for (int d = 0; d < dims.length; d++) dims[d] = shape.get(d).asInt();
            out[i] = Tensor.of(Fixtures.doubles(wrap(step.get("grads").get(i))), dims).to(dtype);
        }
        return out;
    }
}
