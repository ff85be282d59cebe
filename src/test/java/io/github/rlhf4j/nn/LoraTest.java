package io.github.rlhf4j.nn;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.github.rlhf4j.model.CausalLM;
import io.github.rlhf4j.model.Models;
import io.github.rlhf4j.model.RewardModel;
import io.github.rlhf4j.optim.AdamW;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.tensor.Autograd;
import io.github.rlhf4j.tensor.GradCheck;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import io.github.rlhf4j.testing.Fixtures;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * {@link Lora}'s structure: which layers get adapters and under which names, their initialisation, what is frozen,
 * the errors, and the adapters' gradients against central finite differences. (Its numbers against DeepSpeed-Chat's
 * LinearLayer_LoRA in PyTorch: {@link LoraTorchParityTest}.)
 */
class LoraTest {
    static final JsonNode FIXTURE = Fixtures.load("lora/expected.json");

    static Path fixtureDir(String name) {
        try {
            return Path.of(LoraTest.class.getResource("/fixtures/lora/" + name + "/config.json").toURI()).getParent();
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    static CausalLM opt() {
        return CausalLM.of(Models.config(fixtureDir("opt")));
    }

    @Test
    void adaptersGoOnTheMatchingLinearLayersUnderDsChatsNames() {
        CausalLM model = opt();
        Set<String> before = model.namedParameters().keySet();
        assertEquals(12, Lora.apply(model, "decoder.layers.", 2), "q, k, v, out_proj, fc1, fc2 of two layers");
        List<String> added = new ArrayList<>(model.namedParameters().keySet());
        added.removeAll(before);
        List<String> expected = new ArrayList<>();
        for (JsonNode n : FIXTURE.get("opt").get("loraParameters")) expected.add(n.asText());
        assertEquals(expected, added, "DS-Chat's parameter names, in its named_parameters order");

        Linear q = (Linear) model.namedModules().get("model.decoder.layers.0.self_attn.q_proj");
        Linear fc1 = (Linear) model.namedModules().get("model.decoder.layers.1.fc1");
        assertArrayEquals(new int[] {8, 2}, fc1.lora().right().shape(), "lora_right_weight [in, r]");
        assertArrayEquals(new int[] {2, 16}, fc1.lora().left().shape(), "lora_left_weight [r, out]");
        assertEquals(0.5, q.lora().scaling(), "lora_scaling / lora_dim with DS-Chat's lora_scaling 1");
        assertTrue(q.weight.isFrozen() && !q.bias.isFrozen(), "the weight is frozen, the bias is not");
        for (var e : model.namedParameters().entrySet()) {
            boolean adapted = FIXTURE.get("opt").get("frozen").toString().contains("\"" + e.getKey() + "\"");
            assertEquals(adapted, e.getValue().isFrozen(), e.getKey() + ": frozen exactly as DS-Chat freezes");
        }
    }

    @Test
    void adaptersStartAsTorchsKaimingUniformAndZeros() {
        CausalLM model = opt();
        Lora.apply(model, "decoder.layers.", 2);
        try (ParameterStore store = ParameterStore.allocate(model, Device.cpu(), DType.F64, 7)) {
            double bound = FIXTURE.get("kaimingBound").asDouble(); // torch's gain * sqrt(3 / fan_in), fan_in = r
            double max = 0;
            for (Lora.Adapter a : Lora.adapters(model).values()) {
                for (double v : a.right().value().toDoubleArray()) {
                    assertTrue(Math.abs(v) <= bound, "lora_right_weight within +-" + bound + ": " + v);
                    max = Math.max(max, Math.abs(v));
                }
                for (double v : a.left().value().toDoubleArray()) assertEquals(0.0, v, "lora_left_weight = 0");
            }
            assertTrue(max > 0.9 * bound, "the draws fill the interval (largest |value| " + max + ")");
        }
    }

    @Test
    void gpt2sConv1DLayersTakeAdaptersStoredLikeLinearOnes() {
        CausalLM model = CausalLM.of(Models.config(fixtureDir("gpt2")));
        assertEquals(8, Lora.apply(model, "h.", 2), "c_attn, attn.c_proj, c_fc, mlp.c_proj of two layers");
        Conv1D cAttn = (Conv1D) model.namedModules().get("transformer.h.0.attn.c_attn");
        assertArrayEquals(new int[] {8, 2}, cAttn.lora().right().shape());
        assertArrayEquals(new int[] {2, 24}, cAttn.lora().left().shape());
        assertTrue(cAttn.lora().inOut() && cAttn.weight.isFrozen());
        List<String> expected = new ArrayList<>();
        for (JsonNode n : FIXTURE.get("gpt2").get("loraParameters")) expected.add(n.asText());
        assertEquals(expected, model.namedParameters().keySet().stream().filter(Lora::isLoraParameter).toList());
    }

    @Test
    void aFilterThatMatchesNothingFailsNamingItAndSomeLayers() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Lora.apply(opt(), "transformer.h.", 8));
        assertTrue(e.getMessage().contains("'transformer.h.'"), e.getMessage());
        assertTrue(e.getMessage().contains("model.decoder.layers.0.self_attn.k_proj"), e.getMessage());
        assertTrue(e.getMessage().contains("12 layers"), e.getMessage());
    }

    @Test
    void loraGoesInBeforeTheLayoutAndOnlyOnce() {
        CausalLM model = opt();
        try (ParameterStore ignored = ParameterStore.allocate(model, Device.cpu(), DType.F32, 0)) {
            IllegalStateException e = assertThrows(IllegalStateException.class,
                    () -> Lora.apply(model, "decoder.layers.", 2));
            assertTrue(e.getMessage().contains("before ParameterStore.allocate"), e.getMessage());
        }
        CausalLM twice = opt();
        Lora.apply(twice, "fc1", 2);
        int count = twice.namedParameters().size();
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> Lora.apply(twice, "layers.1", 2));
        assertTrue(e.getMessage().contains("model.decoder.layers.1.fc1 already has an adapter"), e.getMessage());
        assertEquals(count, twice.namedParameters().size(), "nothing was converted before the failure");
        assertThrows(IllegalArgumentException.class, () -> Lora.apply(opt(), "fc1", 0));
    }

    @Test
    void onlyOptimizeLoraFreezesExactlyTheOtherParameters() {
        CausalLM model = opt();
        Lora.Config config = new Lora.Config(2, "decoder.layers.", true);
        assertEquals(12, config.applyTo(model));
        long trainable = 0;
        for (var e : model.namedParameters().entrySet()) {
            assertEquals(!Lora.isLoraParameter(e.getKey()), e.getValue().isFrozen(), e.getKey());
            if (!e.getValue().isFrozen()) trainable += e.getValue().numel();
        }
        assertEquals(2 * (4 * (8 * 2 + 2 * 8) + (8 * 2 + 2 * 16) + (16 * 2 + 2 * 8)), trainable);
        try (ParameterStore store = ParameterStore.allocate(model, Device.cpu(), DType.F32, 0);
             AdamW opt = AdamW.forStore(store, AdamW.Config.dsChat(1e-3, 0.1), 5e-4)) {
            long inGroups = 0;
            for (AdamW.Group g : opt.groups()) {
                assertEquals(5e-4, g.lr(), "every trainable parameter is an adapter, at the LoRA rate");
                inGroups += g.params().numel();
            }
            assertTrue(inGroups >= trainable && inGroups < trainable + 24 * ParameterStore.ALIGN,
                    "the groups hold the adapters (and their alignment gaps) only: " + inGroups);
        }
    }

    @Test
    void onlyOptimizeLoraKeepsTheNamedParametersTrainableAsDsChatStep2DoesWithVHead() {
        RewardModel rm = RewardModel.of(Models.config(fixtureDir("opt")));
        Lora.apply(rm, "decoder.layers.", 2);
        Lora.onlyOptimizeLora(rm, List.of("v_head.weight"));
        for (var e : rm.namedParameters().entrySet())
            assertEquals(!Lora.isLoraParameter(e.getKey()) && !e.getKey().equals("v_head.weight"),
                    e.getValue().isFrozen(), e.getKey());
        IllegalArgumentException unknown = assertThrows(IllegalArgumentException.class,
                () -> Lora.onlyOptimizeLora(rm, List.of("v_head.bias")));
        assertTrue(unknown.getMessage().contains("'v_head.bias'"), unknown.getMessage());
        IllegalStateException none = assertThrows(IllegalStateException.class, () -> Lora.onlyOptimizeLora(opt()));
        assertTrue(none.getMessage().contains("no LoRA adapters"), none.getMessage());
        assertEquals(0, Lora.Config.none().applyTo(opt()), "dim 0: no LoRA, as DS-Chat's --lora_dim 0");
    }

    @Test
    void aFreshAdapterLeavesTheOutputExactlyAsItWas() {
        CausalLM plain = opt(), lora = opt();
        Lora.apply(lora, "decoder.layers.", 2);
        try (ParameterStore a = ParameterStore.allocate(plain, Device.cpu(), DType.F64, 0);
             ParameterStore b = ParameterStore.allocate(lora, Device.cpu(), DType.F64, 0);
             Scope s = Scope.open()) {
            io.github.rlhf4j.model.HfModel.loadWeights(plain, "model", fixtureDir("opt"), Set.of());
            io.github.rlhf4j.model.HfModel.loadWeights(lora, "model", fixtureDir("opt"), Set.of());
            Tensor ids = Tensor.ofInts(new int[] {3, 9, 4, 17, 5, 11}, 1, 6);
            assertArrayEquals(plain.forward(ids).toDoubleArray(), lora.forward(ids).toDoubleArray(),
                    "lora_left_weight = 0: the low-rank term adds exact zeros");
        }
    }

    /** The adapters' and the bias's gradients through a whole model, by central differences in float64. */
    @Test
    void adapterGradientsMatchCentralDifferences() {
        for (String kind : new String[] {"opt", "gpt2"}) {
            CausalLM model = CausalLM.of(Models.config(fixtureDir(kind)));
            Lora.apply(model, kind.equals("opt") ? "layers.1." : "h.1.", 2);
            try (ParameterStore store = ParameterStore.allocate(model, Device.cpu(), DType.F64, 3);
                 Scope s = Scope.open()) {
                List<Tensor> inputs = new ArrayList<>();
                try (Autograd.NoGrad ignored = Autograd.noGrad()) {
                    long offset = 0;
                    for (var e : model.namedParameters().entrySet()) {
                        Tensor v = e.getValue().value();
                        if (e.getKey().endsWith(Lora.LEFT)) v.fillRandom(true, 0, 0.5, 11, offset += v.numel());
                        if (Lora.isLoraParameter(e.getKey()) || (!e.getValue().isFrozen() && e.getKey().contains(
                                kind.equals("opt") ? "layers.1.fc2.bias" : "h.1.mlp.c_proj.bias")))
                            inputs.add(v);
                    }
                }
                assertEquals(kind.equals("opt") ? 13 : 9, inputs.size());
                Tensor ids = Tensor.ofInts(new int[] {3, 9, 4, 17, 5, 11, 2, 7}, 2, 4);
                GradCheck.Result r = GradCheck.check(in -> model.forward(ids), inputs, 1e-6, 1e-8, 1e-6, 40, 5);
                assertTrue(r.passed(), kind + ": " + r.worst());
                assertTrue(r.checked() > 200, kind + ": " + r.checked() + " elements checked");
                for (var e : model.namedParameters().entrySet())
                    if (e.getValue().isFrozen())
                        for (double g : e.getValue().value().grad().toDoubleArray())
                            assertEquals(0.0, g, e.getKey() + ": a frozen weight gets no gradient");
            }
        }
    }

    @Test
    void dsChatsLoraNameRule() {
        assertTrue(Lora.isLoraParameter("model.decoder.layers.0.fc1.lora_right_weight"));
        assertTrue(Lora.isLoraParameter("rwtranrsformer.h.0.attn.c_attn.lora_left_weight"));
        assertFalse(Lora.isLoraParameter("model.decoder.layers.0.fc1.weight"));
        assertEquals(Map.of(), Lora.adapters(opt()));
    }
}
