package io.github.rlhf4j.nn;

import static io.github.rlhf4j.testing.Assertions.assertClose;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import io.github.rlhf4j.data.LmBatch;
import io.github.rlhf4j.model.CausalLM;
import io.github.rlhf4j.model.ConfigJson;
import io.github.rlhf4j.model.HfModel;
import io.github.rlhf4j.model.Safetensors;
import io.github.rlhf4j.optim.AdamW;
import io.github.rlhf4j.optim.GradClip;
import io.github.rlhf4j.optim.LrSchedule;
import io.github.rlhf4j.rlhf.Optimized;
import io.github.rlhf4j.rlhf.SftTrainer;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.tensor.Autograd;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link Lora} against DeepSpeed-Chat's LinearLayer_LoRA, run in PyTorch float64 on tiny random OPT and GPT-2 models
 * (fixtures/lora/, made by src/test/python/make_lora_fixture.py; GPT-2's Conv1D adapter is the same math, an rlhf4j
 * extension): the logits, the loss and every trainable parameter's gradient (float64, to rounding), the optimizer's
 * three groups (get_optimizer_grouped_parameters with lora_lr) and two AdamW steps under a cosine schedule, a step
 * with only_optimize_lora_parameters, and the Hugging Face save (convert_lora_to_linear_layer, then save_hf_format
 * without the lora keys). The adapters start from the fixture's values, with lora_left_weight not zero.
 *
 * <p>The steps run in float32 (AdamW's master weights) against the float64 reference and are compared as in
 * PpoStepTest: weight updates in units of each group's learning rate (AdamW's first steps move a weight by about lr,
 * so a wrong group rate or schedule is off by order 1), to 1e-3 (seen: 3e-5); the key biases, whose gradient is zero
 * in exact arithmetic and whose first Adam update is therefore rounding noise times lr, are left out. Seen in float64:
 * logits, losses and gradients within 5e-15 of PyTorch's.
 */
class LoraTorchParityTest {
    static final JsonNode FIXTURE = LoraTest.FIXTURE;
    static final double F64_TOL = 1e-12, F32_LOSS_RTOL = 1e-5, F32_NORM_RTOL = 2e-5, F32_UPDATE_TOL = 1e-3;

    @TempDir
    Path tmp;

    /** The fixture's base model with LoRA on its layers and the fixture's starting adapters. */
    static HfModel load(String kind, DType dtype, boolean onlyLora) {
        JsonNode f = FIXTURE.get(kind);
        Lora.Config lora = new Lora.Config(f.get("loraDim").asInt(), f.get("moduleName").asText(), onlyLora);
        HfModel hf = HfModel.load(LoraTest.fixtureDir(kind), Device.cpu(), dtype, true, lora::applyTo);
        try (Safetensors st = Safetensors.open(expectedFile()); Autograd.NoGrad ignored = Autograd.noGrad()) {
            for (var e : hf.model().namedParameters().entrySet())
                if (Lora.isLoraParameter(e.getKey())) st.read(kind + ".init." + e.getKey(), e.getValue().value());
        }
        hf.model().train(true);
        return hf;
    }

    static Path expectedFile() {
        return LoraTest.fixtureDir("opt").getParent().resolve("expected.safetensors");
    }

    static Safetensors expectedTensors;

    @BeforeAll
    static void open() {
        expectedTensors = Safetensors.open(expectedFile());
    }

    @AfterAll
    static void close() {
        expectedTensors.close();
    }

    static double[] expected(String name, int[] shape) {
        if (!expectedTensors.entries().containsKey(name)) fail(expectedFile() + " has no tensor " + name);
        try (Scope s = Scope.open()) {
            Tensor t = s.zeros(DType.F64, shape);
            expectedTensors.read(name, t);
            return t.toDoubleArray();
        }
    }

    static LmBatch batch(String kind) {
        JsonNode f = FIXTURE.get(kind);
        int b = f.get("shape").get(0).asInt(), t = f.get("shape").get(1).asInt();
        int[] input = new int[b * t], labels = new int[b * t], mask = new int[b * t];
        for (int i = 0; i < b * t; i++) {
            input[i] = f.get("inputIds").get(i).asInt();
            labels[i] = f.get("labels").get(i).asInt();
            mask[i] = 1;
        }
        return new LmBatch(b, t, input, mask, labels);
    }

    // ---- forward and backward, float64 ------------------------------------------------------------------------------

    @Test
    void logitsLossAndGradientsMatchDsChatOnOpt() {
        checkForwardBackward("opt");
    }

    @Test
    void logitsLossAndGradientsMatchOnGpt2sConv1DLayers() {
        checkForwardBackward("gpt2");
    }

    static void checkForwardBackward(String kind) {
        JsonNode f = FIXTURE.get(kind);
        LmBatch batch = batch(kind);
        try (HfModel hf = load(kind, DType.F64, false); Scope s = Scope.open()) {
            CausalLM model = hf.model();
            Tensor logits = model.forward(Tensor.ofInts(batch.inputIds(), batch.rows(), batch.columns()));
            assertClose(expected(kind + ".logits", logits.shape()), logits.toDoubleArray(), F64_TOL, 0,
                    kind + ": logits");
            Tensor loss = SftTrainer.loss(model, batch);
            assertEquals(f.get("loss").asDouble(), loss.item(), F64_TOL, kind + ": loss");
            loss.backward();
            assertEquals(f.get("gradNorm").asDouble(), GradClip.globalNorm(hf.parameters().grad()), F64_TOL,
                    kind + ": global gradient norm (frozen weights add nothing)");
            Set<String> trainable = new HashSet<>(), frozen = new HashSet<>();
            for (JsonNode n : f.get("trainable")) trainable.add(n.asText());
            for (JsonNode n : f.get("frozen")) frozen.add(n.asText());
            for (var e : model.namedParameters().entrySet()) {
                Parameter p = e.getValue();
                double[] grad = p.value().grad().toDoubleArray();
                if (frozen.contains(e.getKey())) {
                    assertTrue(p.isFrozen() && !p.value().requiresGrad(), e.getKey() + " is frozen as in DS-Chat");
                    for (double g : grad) assertEquals(0.0, g, e.getKey() + ": a frozen weight gets no gradient");
                } else {
                    assertTrue(trainable.contains(e.getKey()) && !p.isFrozen(), e.getKey() + " is trainable");
                    assertClose(expected(kind + ".grad." + e.getKey(), p.shape()), grad, F64_TOL, 1e-9,
                            kind + ": gradient of " + e.getKey());
                }
            }
            assertEquals(trainable.size() + frozen.size(), model.namedParameters().size());
        }
    }

    // ---- the optimizer, float32 -------------------------------------------------------------------------------------

    static Optimized.Settings settings(LrSchedule schedule) {
        return new Optimized.Settings(FIXTURE.get("lr").asDouble(), FIXTURE.get("weightDecay").asDouble(), schedule,
                FIXTURE.get("maxGradNorm").asDouble(), FIXTURE.get("loraLr").asDouble());
    }

    /** Every parameter sits in the AdamW group DS-Chat's get_optimizer_grouped_parameters puts it in. */
    @Test
    void adamwGroupsAreDsChatsThreeGroups() {
        JsonNode groups = FIXTURE.get("opt").get("groups");
        double lr = FIXTURE.get("lr").asDouble(), loraLr = FIXTURE.get("loraLr").asDouble();
        double wd = FIXTURE.get("weightDecay").asDouble();
        double[][] dsChat = {{wd, lr}, {wd, loraLr}, {0, lr}}; // weight decay and lr of DS-Chat's groups 0, 1, 2
        try (HfModel hf = load("opt", DType.F32, false);
             Optimized opt = new Optimized(hf.parameters(), settings(LrSchedule.constant(0)))) {
            // mark each AdamW group's memory with its index, then read which group each parameter belongs to
            List<AdamW.Group> ours = opt.adamw().groups();
            try (Autograd.NoGrad ignored = Autograd.noGrad()) {
                hf.parameters().data().fill(-1);
                for (int i = 0; i < ours.size(); i++) ours.get(i).params().fill(i);
            }
            Map<String, Parameter> params = hf.model().namedParameters();
            int seen = 0;
            for (int g = 0; g < groups.size(); g++)
                for (JsonNode n : groups.get(g)) {
                    double[] v = params.get(n.asText()).value().toDoubleArray();
                    int i = (int) v[0];
                    assertTrue(i >= 0, n.asText() + " is in an AdamW group");
                    for (double x : v) assertEquals(i, (int) x, n.asText() + " lies in one group");
                    assertEquals(dsChat[g][0], ours.get(i).weightDecay(), n.asText() + ": weight decay of group " + g);
                    assertEquals(dsChat[g][1], opt.adamw().baseLr(i), n.asText() + ": learning rate of group " + g);
                    seen++;
                }
            for (JsonNode n : FIXTURE.get("opt").get("frozen"))
                for (double x : params.get(n.asText()).value().toDoubleArray())
                    assertEquals(-1.0, x, n.asText() + ": a frozen weight is in no group");
            assertEquals(FIXTURE.get("opt").get("trainable").size(), seen);
        }
    }

    @Test
    void twoStepsMatchDsChatsOptimizerAndSchedule() {
        JsonNode f = FIXTURE.get("opt"), sched = FIXTURE.get("schedule");
        LrSchedule cosine = LrSchedule.cosine(sched.get("warmup").asInt(), sched.get("total").asInt());
        try (HfModel hf = load("opt", DType.F32, false); Optimized opt = new Optimized(hf.parameters(),
                settings(cosine))) {
            SftTrainer trainer = new SftTrainer(hf.model(), opt);
            Map<String, double[]> start = snapshot(hf.model());
            Map<String, double[]> before = start;
            for (int k = 1; k <= 2; k++) {
                JsonNode step = f.get("steps").get(k - 1);
                double lr = opt.lr(), loraLr = opt.loraLr();
                assertEquals(step.get("groupLrs").get(0).asDouble(), lr, 1e-15, "step " + k + ": scheduled lr");
                assertEquals(step.get("groupLrs").get(1).asDouble(), loraLr, 1e-15,
                        "step " + k + ": scheduled LoRA lr (the same factor on lora_lr)");
                double loss = trainer.step(batch("opt"));
                assertEquals(step.get("loss").asDouble(), loss, F32_LOSS_RTOL * Math.abs(loss), "step " + k + " loss");
                assertEquals(step.get("gradNorm").asDouble(), opt.lastGradNorm(),
                        F32_NORM_RTOL * opt.lastGradNorm(), "step " + k + ": gradient norm before clipping");
                Map<String, double[]> after = snapshot(hf.model());
                String previous = k == 1 ? null : "opt.step" + (k - 1) + ".";
                checkUpdates(hf.model(), before, after, "opt.step" + k + ".", previous, lr, loraLr, f, "step " + k);
                before = after;
            }
            for (JsonNode n : f.get("frozen"))
                assertArrayEquals(start.get(n.asText()), before.get(n.asText()), n.asText() + " never moves");
            for (double g : hf.parameters().grad().toDoubleArray()) assertEquals(0.0, g, "gradients zeroed");
        }
    }

    @Test
    void onlyOptimizeLoraStepMovesTheAdaptersAsDsChatDoes() {
        JsonNode f = FIXTURE.get("opt"), only = f.get("onlyLora");
        try (HfModel hf = load("opt", DType.F32, true);
             Optimized opt = new Optimized(hf.parameters(), settings(LrSchedule.constant(0)))) {
            List<String> trainable = new ArrayList<>();
            for (var e : hf.model().namedParameters().entrySet())
                if (!e.getValue().isFrozen()) trainable.add(e.getKey());
            List<String> dsChat = new ArrayList<>();
            for (JsonNode n : only.get("trainable")) dsChat.add(n.asText());
            assertEquals(dsChat, trainable, "only_optimize_lora_parameters' requires_grad");
            Map<String, double[]> before = snapshot(hf.model());
            double loss = new SftTrainer(hf.model(), opt).step(batch("opt"));
            assertEquals(only.get("loss").asDouble(), loss, F32_LOSS_RTOL * Math.abs(loss), "loss");
            assertEquals(only.get("gradNorm").asDouble(), opt.lastGradNorm(), F32_NORM_RTOL * opt.lastGradNorm(),
                    "gradient norm over the adapters");
            Map<String, double[]> after = snapshot(hf.model());
            double lr = FIXTURE.get("loraLr").asDouble();
            for (String n : before.keySet()) {
                if (!Lora.isLoraParameter(n)) {
                    assertArrayEquals(before.get(n), after.get(n), n + " is frozen and does not move");
                    continue;
                }
                double[] want = expected("opt.onlyLora." + n, hf.model().namedParameters().get(n).shape());
                assertClose(scaledDiff(want, before.get(n), lr), scaledDiff(after.get(n), before.get(n), lr),
                        F32_UPDATE_TOL, 0, "only-LoRA step: update of " + n + " in units of lora_lr");
            }
        }
    }

    // ---- saving ---------------------------------------------------------------------------------------------------

    @Test
    void savingFusesTheAdaptersAsDsChatAndTransformersLoadTheResultPlain() {
        checkSave("opt");
    }

    @Test
    void savingFusesGpt2sConv1DAdapters() {
        checkSave("gpt2");
    }

    void checkSave(String kind) {
        JsonNode f = FIXTURE.get(kind);
        Path out = tmp.resolve(kind);
        LmBatch batch = batch(kind);
        try (HfModel hf = load(kind, DType.F32, false); Scope s = Scope.open()) {
            Map<String, double[]> live = snapshot(hf.model());
            hf.save(out, DType.F32);
            assertEquals(live.keySet(), snapshot(hf.model()).keySet());
            for (var e : snapshot(hf.model()).entrySet())
                assertArrayEquals(live.get(e.getKey()), e.getValue(), e.getKey() + ": saving leaves the model alone");

            Set<String> adapted = new HashSet<>();
            for (JsonNode n : f.get("adaptedWeights")) adapted.add(n.asText());
            try (Safetensors st = Safetensors.open(out.resolve("model.safetensors"))) {
                Set<String> names = new HashSet<>(live.keySet());
                names.removeIf(Lora::isLoraParameter);
                assertEquals(names, st.entries().keySet(), "transformers' tensors, no lora keys (save_hf_format)");
                for (String n : names) {
                    Tensor t = s.zeros(DType.F64, hf.model().namedParameters().get(n).shape());
                    st.read(n, t);
                    if (adapted.contains(n))
                        assertClose(expected(kind + ".fused." + n, t.shape()), t.toDoubleArray(), 1e-6, 1e-6,
                                kind + ": fused " + n + " (convert_lora_to_linear_layer)");
                    else
                        assertArrayEquals(live.get(n), t.toDoubleArray(), n + " is written as it is");
                }
            }
            // the saved folder is a plain model: no adapters, the LoRA model's logits
            try (HfModel plain = HfModel.load(out, Device.cpu(), DType.F64, false)) {
                assertTrue(Lora.adapters(plain.model()).isEmpty());
                Tensor ids = Tensor.ofInts(batch.inputIds(), batch.rows(), batch.columns());
                Tensor y = plain.model().forward(ids);
                double[] logits = y.toDoubleArray();
                assertClose(expected(kind + ".fusedLogits", y.shape()), logits, 5e-6, 0,
                        kind + ": the saved model's logits against transformers' on DS-Chat's fused weights");
                assertClose(hf.model().forward(ids).toDoubleArray(), logits, 5e-6, 0,
                        kind + ": the saved model computes what the LoRA model computes");
            }
            assertFalse(ConfigJson.read(out.resolve("config.json")).json().toString().contains("lora"));
        }
    }

    /** A plain Hugging Face folder loads into a LoRA model: the adapters keep their (output-neutral) start. */
    @Test
    void loadingAPlainFolderLeavesTheAdaptersAtTheirStart() {
        JsonNode f = FIXTURE.get("opt");
        Lora.Config lora = new Lora.Config(f.get("loraDim").asInt(), f.get("moduleName").asText(), false);
        try (HfModel hf = HfModel.load(LoraTest.fixtureDir("opt"), Device.cpu(), DType.F32, true, lora::applyTo)) {
            assertEquals(12, Lora.adapters(hf.model()).size());
            for (Lora.Adapter a : Lora.adapters(hf.model()).values())
                for (double v : a.left().value().toDoubleArray()) assertEquals(0.0, v);
        }
    }

    static Map<String, double[]> snapshot(Module model) {
        Map<String, double[]> out = new LinkedHashMap<>();
        for (var e : model.namedParameters().entrySet()) out.put(e.getKey(), e.getValue().value().toDoubleArray());
        return out;
    }

    static double[] scaledDiff(double[] after, double[] before, double lr) {
        double[] d = new double[after.length];
        for (int i = 0; i < d.length; i++) d[i] = (after[i] - before[i]) / lr;
        return d;
    }

    /** Each trainable parameter's update against the fixture's, in units of its group's learning rate. */
    static void checkUpdates(Module model, Map<String, double[]> before, Map<String, double[]> after, String now,
                             String previous, double lr, double loraLr, JsonNode f, String where) {
        Set<String> skip = new HashSet<>();
        for (JsonNode n : f.get("zeroGradient")) skip.add(n.asText());
        Map<String, Parameter> params = model.namedParameters();
        int checked = 0;
        for (JsonNode node : f.get("trainable")) {
            String n = node.asText();
            if (skip.contains(n)) continue;
            int[] shape = params.get(n).shape();
            double[] want = expected(now + n, shape);
            // before the first step both sides hold the same float32 values (the fixture's files)
            double[] was = previous == null ? before.get(n) : expected(previous + n, shape);
            double rate = Lora.isLoraParameter(n) ? loraLr : lr;
            assertClose(scaledDiff(want, was, rate), scaledDiff(after.get(n), before.get(n), rate), F32_UPDATE_TOL, 0,
                    where + ": update of " + n + " in units of its group's lr");
            checked++;
        }
        assertTrue(checked > 20, checked + " parameters checked");
    }
}
