package io.github.rlhf4j.optim;

import static io.github.rlhf4j.testing.Assertions.assertClose;
import static io.github.rlhf4j.testing.Assertions.maxAbs;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.github.rlhf4j.model.CausalLM;
import io.github.rlhf4j.model.Gpt2Config;
import io.github.rlhf4j.nn.Init;
import io.github.rlhf4j.nn.Module;
import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.tensor.Autograd;
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
 * AdamW against torch.optim.AdamW (fixtures/optim.json, made by src/test/python/make_optim_fixtures.py): the same
 * parameters, gradients and per-step learning rates give the same weights and moments to within float32 rounding
 * (1e-6 relative), with weight decay only on DeepSpeed-Chat's decay group, and frozen parameters left alone.
 */
class AdamWTest {
    static final JsonNode FIXTURE = Fixtures.load("optim.json");
    /** Relative tolerance of an f32 step: a few ulps of the weight (see {@link #atol}). */
    static final double RTOL = 1e-6;

    @TestFactory
    Stream<DynamicTest> adamwMatchesTorchOverDsChatGroupsAtEveryStep() {
        List<DynamicTest> tests = new ArrayList<>();
        FIXTURE.get("adamw").forEach(c -> tests.add(DynamicTest.dynamicTest(c.get("name").asText(), () -> checkCase(c))));
        return tests.stream();
    }

    /**
     * One case: the parameters are laid out flat per torch param group (DeepSpeed-Chat's decay group, then its
     * no-decay group), each step gets the fixture's gradient and the lr torch read from its param groups, and
     * AdamW.step(lr, grad_scale) must land where torch's step with the gradients multiplied by grad_scale did.
     */
    private static void checkCase(JsonNode c) {
        String caseName = c.get("name").asText();
        JsonNode betas = c.get("betas");
        AdamW.Config config = new AdamW.Config(c.get("base_lr").asDouble(), betas.get(0).asDouble(),
                betas.get(1).asDouble(), c.get("eps").asDouble(), c.get("weight_decay").asDouble());
        DType gradDtype = "bf16".equals(c.get("grad_dtype").asText()) ? DType.BF16 : DType.F32;
        double gradScale = c.get("grad_scale").asDouble();

        List<String> names = new ArrayList<>();
        List<double[]> init = new ArrayList<>();
        for (JsonNode p : c.get("params")) {
            String name = p.get("name").asText();
            names.add(name);
            init.add(Fixtures.doubles(wrap(p.get("init"))));
            // The fixture's grouping is DeepSpeed-Chat's rule evaluated in Python; ours must agree.
            assertEquals(p.get("no_decay").asBoolean(), ParameterStore.dsChatNoDecay(name), "no-decay rule for " + name);
        }
        try (Scope s = Scope.open()) {
            // Flat buffers per torch param group; where[i] = {group, offset} of parameter i.
            List<List<Integer>> members = new ArrayList<>();
            List<AdamW.Group> groups = new ArrayList<>();
            int[][] where = new int[names.size()][];
            int gi = 0;
            for (JsonNode g : c.get("groups")) {
                List<Integer> idx = new ArrayList<>();
                int len = 0;
                for (JsonNode n : g.get("names")) {
                    int i = names.indexOf(n.asText());
                    where[i] = new int[] {gi, len};
                    idx.add(i);
                    len += init.get(i).length;
                }
                double[] flat = new double[len];
                for (int i : idx) System.arraycopy(init.get(i), 0, flat, where[i][1], init.get(i).length);
                groups.add(new AdamW.Group(Tensor.of(flat).to(DType.F32), Tensor.zeros(gradDtype, len),
                        g.get("weight_decay").asDouble()));
                members.add(idx);
                gi++;
            }
            assertEquals(config.weightDecay(), groups.get(0).weightDecay(), "the first torch group is the decay group");
            try (AdamW opt = new AdamW(groups, config)) {
                int k = 0;
                for (JsonNode step : c.get("steps")) {
                    for (int g = 0; g < groups.size(); g++) {
                        double[] flat = new double[(int) groups.get(g).grads().numel()];
                        for (int i : members.get(g)) {
                            double[] grad = Fixtures.doubles(wrap(step.get("grads").get(i)));
                            System.arraycopy(grad, 0, flat, where[i][1], grad.length);
                        }
                        groups.get(g).grads().copyFrom(flat);
                    }
                    opt.step(step.get("lr").asDouble(), gradScale);
                    assertEquals(k + 1, opt.stepCount());
                    for (int i = 0; i < names.size(); i++) {
                        double[] expected = Fixtures.doubles(wrap(step.get("params").get(i)));
                        Tensor p = groups.get(where[i][0]).params();
                        double[] actual = p.slice(0, where[i][1], where[i][1] + expected.length).toDoubleArray();
                        assertClose(expected, actual, atol(expected), RTOL,
                                caseName + " step " + (k + 1) + " " + names.get(i));
                    }
                    k++;
                }
                for (int g = 0; g < groups.size(); g++) {
                    JsonNode eg = c.get("groups").get(g);
                    Tensor[] mv = opt.moments(g);
                    double[] m = Fixtures.doubles(wrap(eg.get("exp_avg")));
                    double[] v = Fixtures.doubles(wrap(eg.get("exp_avg_sq")));
                    assertClose(m, mv[0].toDoubleArray(), atol(m), RTOL, caseName + " exp_avg of group " + g);
                    assertClose(v, mv[1].toDoubleArray(), atol(v), RTOL, caseName + " exp_avg_sq of group " + g);
                }
            }
        }
    }

    /**
     * AdamW.forStore over transformers' GPT-2 layout (CausalLM with Gpt2Config.tiny): with torch's initial weights and
     * gradients copied in and two parameters frozen, each step matches torch.optim.AdamW over DeepSpeed-Chat's
     * get_optimizer_grouped_parameters groups, and the frozen parameters keep their values although their gradient
     * slots hold nonzero numbers; the alignment gaps of the flat buffer stay zero.
     */
    @Test
    void steppedInPiecesInAnyOrderItIsTheWholeStep() {
        int n = 1000;
        float[] w0 = new float[n], g0 = new float[n];
        java.util.Random r = new java.util.Random(4);
        for (int i = 0; i < n; i++) {
            w0[i] = (float) r.nextGaussian();
            g0[i] = (float) r.nextGaussian();
        }
        try (Scope s = Scope.open(); Autograd.NoGrad ignored = Autograd.noGrad()) {
            Tensor wa = Tensor.of(w0), ga = Tensor.of(g0), wb = Tensor.of(w0), gb = Tensor.of(g0);
            AdamW.Config config = AdamW.Config.dsChat(1e-3, 0.1);
            // two groups, one with its own learning rate, as DS-Chat's LoRA group has
            try (AdamW whole = new AdamW(List.of(new AdamW.Group(wa.flatRange(0, 600), ga.flatRange(0, 600), 0.1),
                    new AdamW.Group(wa.flatRange(600, n), ga.flatRange(600, n), 0.0, 5e-4)), config);
                 AdamW pieces = new AdamW(List.of(new AdamW.Group(wb.flatRange(0, 600), gb.flatRange(0, 600), 0.1),
                         new AdamW.Group(wb.flatRange(600, n), gb.flatRange(600, n), 0.0, 5e-4)), config)) {
                List<long[]> order = List.of(new long[] {1, 200, 400}, new long[] {0, 0, 77}, new long[] {1, 0, 200},
                        new long[] {0, 77, 600});
                List<String> hooks = new ArrayList<>();
                for (int step = 0; step < 3; step++) {
                    whole.stepScheduled(0.5, 0.9);
                    pieces.stepScheduledInPieces(0.5, 0.9, order, p -> hooks.add("before " + p),
                            p -> hooks.add("after " + p));
                }
                assertEquals(List.of("before 0", "after 0", "before 1", "after 1", "before 2", "after 2", "before 3",
                        "after 3"), hooks.subList(0, 8), "each piece between its two hooks, in the order given");
                assertEquals(whole.stepCount(), pieces.stepCount(), "one step each time, not one a piece");
                assertArrayEquals(wa.toFloatArray(), wb.toFloatArray(), "bit for bit");
                assertArrayEquals(whole.moments(1)[1].toFloatArray(), pieces.moments(1)[1].toFloatArray());
            }
        }
    }

    @Test
    void forStoreOverTinyGpt2MatchesTorchWithDsChatGroupsAndSkipsFrozenParameters() {
        JsonNode f = FIXTURE.get("adamw_gpt2");
        JsonNode cfg = f.get("config");
        CausalLM model = CausalLM.of(Gpt2Config.tiny(cfg.get("vocab_size").asInt(), cfg.get("n_positions").asInt(),
                cfg.get("n_embd").asInt(), cfg.get("n_layer").asInt(), cfg.get("n_head").asInt()));
        Set<String> frozen = new HashSet<>();
        f.get("frozen").forEach(n -> frozen.add(n.asText()));
        double wd = f.get("weight_decay").asDouble();
        try (Scope s = Scope.open(); ParameterStore store = ParameterStore.allocate(model, Device.cpu(), 1)) {
            List<String> names = new ArrayList<>();
            store.entries().forEach(e -> names.add(e.name()));
            List<String> torchNames = new ArrayList<>();
            f.get("names").forEach(n -> torchNames.add(n.asText()));
            assertEquals(torchNames, names, "parameter names and order as transformers' GPT2LMHeadModel");
            try (Autograd.NoGrad ignored = Autograd.noGrad()) {
                for (ParameterStore.Entry e : store.entries())
                    e.parameter().value().copyFrom(Fixtures.doubles(wrap(f.get("init").get(e.name()))));
            }
            for (ParameterStore.Entry e : store.entries())
                if (frozen.contains(e.name())) e.parameter().setFrozen(true);

            JsonNode betas = f.get("betas");
            AdamW.Config config = new AdamW.Config(1.0, betas.get(0).asDouble(), betas.get(1).asDouble(),
                    f.get("eps").asDouble(), wd);
            try (AdamW opt = AdamW.forStore(store, config)) {
                checkGroupsFollowNoDecayTable(store, opt, f.get("no_decay"), frozen, wd);
                int k = 0;
                for (JsonNode step : f.get("steps")) {
                    for (ParameterStore.Entry e : store.entries())
                        gradView(store, e).copyFrom(Fixtures.doubles(wrap(step.get("grads").get(e.name()))));
                    opt.step(step.get("lr").asDouble(), 1.0);
                    k++;
                    for (ParameterStore.Entry e : store.entries()) {
                        double[] expected = Fixtures.doubles(wrap(step.get("params").get(e.name())));
                        double[] actual = e.parameter().value().toDoubleArray();
                        if (frozen.contains(e.name()))
                            assertArrayEquals(Fixtures.doubles(wrap(f.get("init").get(e.name()))), actual,
                                    "frozen " + e.name() + " changed at step " + k);
                        assertClose(expected, actual, atol(expected), RTOL, "gpt2 step " + k + " " + e.name());
                    }
                }
                // The alignment gaps between parameters are stepped too, and must stay zero.
                double[] all = store.data().toDoubleArray();
                long next = 0;
                for (ParameterStore.Entry e : store.entries()) {
                    for (long i = next; i < e.offset(); i++) assertEquals(0.0, all[(int) i], "gap element " + i);
                    next = e.offset() + e.numel();
                }
                for (long i = next; i < all.length; i++) assertEquals(0.0, all[(int) i], "gap element " + i);
            }
        }
    }

    /** Structure of forStore's groups: one per store range, decay only where DeepSpeed-Chat decays, no frozen ones. */
    private static void checkGroupsFollowNoDecayTable(ParameterStore store, AdamW opt, JsonNode noDecay,
                                                      Set<String> frozen, double wd) {
        List<ParameterStore.Range> ranges = store.ranges(ParameterStore::dsChatNoDecay);
        assertEquals(ranges.size(), opt.groups().size(), "one AdamW group per store range");
        for (int i = 0; i < ranges.size(); i++) {
            ParameterStore.Range r = ranges.get(i);
            assertEquals(r.end() - r.start(), opt.groups().get(i).params().numel(), "size of group " + i);
            assertEquals(r.decay() ? wd : 0.0, opt.groups().get(i).weightDecay(), "weight decay of group " + i);
        }
        for (ParameterStore.Entry e : store.entries()) {
            List<ParameterStore.Range> in = ranges.stream()
                    .filter(r -> r.start() <= e.offset() && e.offset() + e.numel() <= r.end()).toList();
            if (frozen.contains(e.name())) {
                assertTrue(in.isEmpty(), "frozen " + e.name() + " is in an optimizer group");
            } else {
                assertEquals(1, in.size(), e.name() + " should be in exactly one group");
                assertEquals(!noDecay.get(e.name()).asBoolean(), in.get(0).decay(), "decay of " + e.name());
            }
        }
    }

    /**
     * DeepSpeed-Chat's grouping over the real parameter names of GPT-2, OPT, LLaMA, BLOOM, GPT-NeoX and BERT (some
     * frozen): one AdamW step from 1 with gradient 1 ends each parameter where torch's step over
     * get_optimizer_grouped_parameters did, so decay, no decay and frozen are told apart for every name.
     */
    @TestFactory
    Stream<DynamicTest> forStoreGroupsEveryModelFamilyAsDeepSpeedChat() {
        JsonNode t = FIXTURE.get("dschat_groups");
        List<DynamicTest> tests = new ArrayList<>();
        for (JsonNode m : t.get("models")) {
            tests.add(DynamicTest.dynamicTest(m.get("family").asText(), () -> {
                List<String> names = new ArrayList<>();
                m.get("names").forEach(n -> names.add(n.asText()));
                Set<String> frozen = new HashSet<>();
                m.get("frozen").forEach(n -> frozen.add(n.asText()));
                Named model = new Named(names, 3);
                try (Scope s = Scope.open(); ParameterStore store = ParameterStore.allocate(model, Device.cpu(), 1)) {
                    for (ParameterStore.Entry e : store.entries()) {
                        if (frozen.contains(e.name())) e.parameter().setFrozen(true);
                        gradView(store, e).fill(1);
                    }
                    JsonNode betas = t.get("betas");
                    AdamW.Config config = new AdamW.Config(t.get("lr").asDouble(), betas.get(0).asDouble(),
                            betas.get(1).asDouble(), t.get("eps").asDouble(), t.get("weight_decay").asDouble());
                    try (AdamW opt = AdamW.forStore(store, config)) {
                        opt.step();
                    }
                    for (int i = 0; i < names.size(); i++) {
                        double expected = m.get("after").get(i).asDouble();
                        double[] actual = store.entries().get(i).parameter().value().toDoubleArray();
                        assertClose(new double[] {expected, expected, expected}, actual, 1e-7, RTOL,
                                m.get("family").asText() + " " + names.get(i));
                    }
                }
            }));
        }
        return tests.stream();
    }

    @Test
    void configRejectsHyperparametersTorchRejects() {
        assertThrows(IllegalArgumentException.class, () -> new AdamW.Config(-1e-3, 0.9, 0.999, 1e-8, 0));
        assertThrows(IllegalArgumentException.class, () -> new AdamW.Config(1e-3, 1.0, 0.999, 1e-8, 0));
        assertThrows(IllegalArgumentException.class, () -> new AdamW.Config(1e-3, 0.9, -0.1, 1e-8, 0));
        assertThrows(IllegalArgumentException.class, () -> new AdamW.Config(1e-3, 0.9, 0.999, 1e-8, -0.01));
        assertThrows(IllegalArgumentException.class, () -> new AdamW.Config(Double.NaN, 0.9, 0.999, 1e-8, 0));
    }

    /** Absolute slack: RTOL of the largest |expected| (f32 rounding of the whole tensor), and a floor for zeros. */
    static double atol(double[] expected) {
        return RTOL * maxAbs(expected) + 1e-12;
    }

    /** A module whose parameters carry given (dotted) names, for grouping checks over real models' names. */
    static final class Named extends Module {
        Named(List<String> names, int size) {
            for (String n : names) parameter(n, Init.ones(), size);
        }
    }

    static Tensor gradView(ParameterStore store, ParameterStore.Entry e) {
        return store.grad().slice(0, (int) e.offset(), (int) (e.offset() + e.numel()));
    }

    /** A bare JSON array of numbers as Fixtures reads a tensor's {"data": [...]}. */
    static JsonNode wrap(JsonNode array) {
        var node = com.fasterxml.jackson.databind.node.JsonNodeFactory.instance.objectNode();
        node.set("data", array);
        return node;
    }
}
