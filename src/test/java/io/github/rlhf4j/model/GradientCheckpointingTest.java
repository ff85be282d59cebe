package io.github.rlhf4j.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.tensor.Functional;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import java.nio.file.Path;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Gradient checkpointing ({@link Transformer#setGradientCheckpointing}) recomputes each layer in the backward pass;
 * it must not change anything but memory. For every family (the fixture configs, random weights): the loss and every
 * parameter's gradient are bitwise those of the plain backward on the CPU backend (the same kernels run on the same
 * inputs in the same order), with dropout on (the recomputation must replay the same masks), with left padding, and
 * with frozen embeddings (no layer input requires a gradient, yet the layers' weights need theirs); and the memory
 * kept between forward and backward shrinks to the layer boundaries.
 */
class GradientCheckpointingTest {
    static final Path MODELS = Path.of("src/test/resources/fixtures/models");
    static final int B = 3, T = 12;

    static ModelConfig config(String name) {
        ModelConfig c = Models.config(ConfigJson.read(MODELS.resolve(name).resolve("config.json")));
        // GPT-2's fixture has dropout off; turn it on so the replay of the masks is exercised
        if (c instanceof Gpt2Config g)
            return new Gpt2Config(g.vocabSize(), g.nPositions(), g.nEmbd(), g.nLayer(), g.nHead(),
                    g.layerNormEpsilon(), g.initializerRange(), 0.1, 0.1);
        return c;
    }

    /** Loss and flat gradient of one forward+backward in training mode, with or without checkpointing. */
    static double[][] lossAndGrad(ModelConfig c, boolean checkpointing, boolean freezeEmbeddings, long[] liveAfterForward) {
        CausalLM model = CausalLM.of(c);
        model.base().setGradientCheckpointing(checkpointing);
        Device dev = Device.cpu();
        try (ParameterStore store = ParameterStore.allocate(model, dev, DType.F32, 7, true)) {
            if (freezeEmbeddings)
                for (ParameterStore.Entry e : store.entries())
                    if (e.name().contains("embed") || e.name().contains("wte") || e.name().contains("wpe"))
                        e.parameter().setFrozen(true);
            model.train(true);
            model.base().setDropoutSeed(11);
            Random rng = new Random(3);
            int[] ids = new int[B * T], mask = new int[B * T], targets = new int[B * T];
            for (int i = 0; i < B; i++)
                for (int j = 0; j < T; j++) {
                    int k = i * T + j;
                    mask[k] = j >= i ? 1 : 0; // row i has i left pads
                    ids[k] = mask[k] == 1 ? rng.nextInt(c.vocabSize()) : 0;
                    targets[k] = mask[k] == 1 && j + 1 < T ? rng.nextInt(c.vocabSize()) : -100;
                }
            try (Scope s = Scope.open(dev)) {
                Tensor idsT = Tensor.ofInts(ids, B, T), maskT = Tensor.ofInts(mask, B, T);
                Tensor pos = Tensor.ofInts(Transformer.positionsFromMask(mask, B, T), B, T);
                long before = dev.memory().live();
                Tensor logits = model.forward(idsT, maskT, pos, null);
                Tensor loss = Functional.crossEntropy(logits, Tensor.ofInts(targets, B, T), -100);
                liveAfterForward[0] = dev.memory().live() - before;
                double value = loss.item();
                loss.backward();
                return new double[][] {{value}, store.grad().toDoubleArray()};
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"gpt2-tiny", "opt_tiny", "opt_350m_style", "gpt_neo_tiny", "llama_gqa_untied",
            "qwen2_tied"})
    void gradientsAreBitwiseThoseOfThePlainBackward(String name) {
        ModelConfig c = config(name);
        long[] plainLive = new long[1], ckptLive = new long[1];
        double[][] plain = lossAndGrad(c, false, false, plainLive);
        double[][] ckpt = lossAndGrad(c, true, false, ckptLive);
        assertEquals(plain[0][0], ckpt[0][0], 0.0, name + ": loss");
        assertArrayEquals(plain[1], ckpt[1], 0.0, name + ": gradients");
        double norm = 0;
        for (double g : plain[1]) norm += g * g;
        assertTrue(norm > 0, name + ": the gradient is not all zero");
        System.out.printf("GradientCheckpointingTest %s: memory kept after the forward %,d -> %,d bytes%n", name,
                plainLive[0], ckptLive[0]);
        assertTrue(ckptLive[0] < plainLive[0], name + ": checkpointing keeps less: " + ckptLive[0] + " vs "
                + plainLive[0]);
    }

    @ParameterizedTest
    @ValueSource(strings = {"gpt2-tiny", "llama_gqa_untied"})
    void layersStillGetGradientsWhenNoLayerInputRequiresOne(String name) {
        ModelConfig c = config(name);
        double[][] plain = lossAndGrad(c, false, true, new long[1]);
        double[][] ckpt = lossAndGrad(c, true, true, new long[1]);
        assertArrayEquals(plain[1], ckpt[1], 0.0, name + ": gradients with frozen embeddings");
        double norm = 0;
        for (double g : ckpt[1]) norm += g * g;
        assertNotEquals(0.0, norm, name + ": the layers got gradients");
    }

    @ParameterizedTest
    @ValueSource(strings = {"gpt2-tiny"})
    void dropoutIsReallyOnSoTheReplayIsTested(String name) {
        // two dropout seeds give two losses: the masks matter, so equal gradients above mean they were replayed
        ModelConfig c = config(name);
        CausalLM model = CausalLM.of(c);
        try (ParameterStore store = ParameterStore.allocate(model, Device.cpu(), DType.F32, 7, true);
             Scope s = Scope.open()) {
            model.train(true);
            Tensor ids = Tensor.ofInts(new int[] {1, 2, 3, 4, 5, 6}, 1, 6);
            model.base().setDropoutSeed(1);
            double a = model.forward(ids).sum().item();
            model.base().setDropoutSeed(2);
            double b = model.forward(ids).sum().item();
            assertNotEquals(a, b);
        }
    }
}
