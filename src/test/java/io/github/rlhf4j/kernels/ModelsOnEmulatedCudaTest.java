package io.github.rlhf4j.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.github.rlhf4j.generate.GenerationConfig;
import io.github.rlhf4j.generate.Generator;
import io.github.rlhf4j.gpu.ModelsOnGpuTest;
import io.github.rlhf4j.model.CausalLM;
import io.github.rlhf4j.model.Gpt2Config;
import io.github.rlhf4j.model.HfModel;
import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.optim.AdamW;
import io.github.rlhf4j.optim.GradClip;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.tensor.Functional;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/**
 * The whole CUDA backend at once, in emulation: every model family's fixture (transformers' weights and outputs) runs
 * its forward pass and greedy generation (prefill and KV-cache decode) on the emulated CUDA device, and a tiny GPT-2
 * takes training steps there (embedding, layernorm, gemm, attention, logprobs forward and backward, clipping, AdamW).
 * The kernel tests check each entry point alone; this checks that the ops compose as the Java layers call them, with
 * the strides, views and accumulate flags real models use. F32, the dtype the model code runs today.
 */
class ModelsOnEmulatedCudaTest {
    static Device emu() {
        return Emulated.get().device();
    }

    @TestFactory
    List<DynamicTest> everyFamilyRunsAndGeneratesOnTheEmulatedGpuAsOnTheCpu() throws Exception {
        List<DynamicTest> tests = new ArrayList<>();
        for (Path dir : ModelsOnGpuTest.cases())
            tests.add(DynamicTest.dynamicTest(dir.getFileName().toString(), () -> {
                Device gpu = emu();
                JsonNode e = new ObjectMapper().readTree(dir.resolve("expected.json").toFile());
                int[][] ids = ModelsOnGpuTest.rows(e.get("input_ids"));
                int[][] mask = ModelsOnGpuTest.rows(e.get("attention_mask"));
                int b = ids.length, t = ids[0].length;
                int[] flatIds = Stream.of(ids).flatMapToInt(Arrays::stream).toArray();
                int[] flatMask = Stream.of(mask).flatMapToInt(Arrays::stream).toArray();
                double[] cpu, cuda;
                try (HfModel m = HfModel.load(dir, Device.cpu(), DType.F32, false);
                     Scope s = Scope.open(Device.cpu())) {
                    cpu = m.model().forward(Tensor.ofInts(flatIds, b, t), Tensor.ofInts(flatMask, b, t), null, null)
                            .toDoubleArray();
                }
                try (HfModel m = HfModel.load(dir, gpu, DType.F32, false); Scope s = Scope.open(gpu)) {
                    cuda = m.model().forward(Tensor.ofInts(flatIds, b, t), Tensor.ofInts(flatMask, b, t), null, null)
                            .toDoubleArray();
                    assertEquals(cpu.length, cuda.length);
                    int perToken = cpu.length / (b * t);
                    double worst = 0, scale = 0;
                    for (int i = 0; i < cpu.length; i++) {
                        if (flatMask[i / perToken] == 0) continue; // padded rows: no contract on their logits
                        worst = Math.max(worst, Math.abs(cpu[i] - cuda[i]));
                        scale = Math.max(scale, Math.abs(cpu[i]));
                    }
                    System.out.printf(
                            "ModelsOnEmulatedCudaTest %s: logits max |emulated CUDA - CPU| %.2e (max |logit| %.2f)%n",
                            dir.getFileName(), worst, scale);
                    assertTrue(worst <= 1e-4 * Math.max(1, scale), dir.getFileName() + ": logits differ by " + worst);

                    JsonNode g = e.get("greedy");
                    int[][] prompts = new int[b][];
                    for (int i = 0; i < b; i++) {
                        int off = 0;
                        while (mask[i][off] == 0) off++;
                        prompts[i] = Arrays.copyOfRange(ids[i], off, t);
                    }
                    var cfg = GenerationConfig.greedy(g.get("max_new_tokens").asInt(), g.path("eos_token_id").asInt(-1),
                            g.get("pad_token_id").asInt());
                    var r = new Generator(m.model()).generate(prompts, cfg, null);
                    int[][] want = ModelsOnGpuTest.rows(g.get("sequences"));
                    for (int i = 0; i < b; i++)
                        assertArrayEquals(want[i], r.sequences()[i], dir.getFileName() + ": greedy tokens of row " + i
                                + " on the emulated GPU differ from transformers'");
                }
            }));
        return tests;
    }

    /** Three AdamW steps of a tiny GPT-2 (with clipping) from the same Philox init on both backends. */
    @Test
    void trainingStepsMatchTheCpuBackend() {
        int vocab = 37, T = 11, B = 3;
        long seed = 7;
        int[] ids = new int[B * T], targets = new int[B * T];
        var rng = new java.util.Random(3);
        for (int i = 0; i < ids.length; i++) {
            ids[i] = rng.nextInt(vocab);
            targets[i] = i % T == T - 1 || i % 5 == 0 ? -100 : rng.nextInt(vocab);
        }
        double[][] losses = new double[2][3];
        double[][] params = new double[2][];
        Device[] devices = {Device.cpu(), emu()};
        for (int d = 0; d < 2; d++) {
            Device dev = devices[d];
            CausalLM model = CausalLM.of(Gpt2Config.tiny(vocab, 16, 32, 2, 4));
            try (ParameterStore store = ParameterStore.allocate(model, dev, seed);
                 AdamW opt = AdamW.forStore(store, new AdamW.Config(1e-2, 0.9, 0.95, 1e-8, 0.01))) {
                for (int step = 0; step < 3; step++) {
                    try (Scope s = Scope.open(dev)) {
                        store.zeroGrad();
                        Tensor loss = Functional.crossEntropy(model.forward(Tensor.ofInts(ids, B, T), null, null, null),
                                Tensor.ofInts(targets, B, T), -100);
                        loss.backward();
                        double clip = GradClip.coefficient(GradClip.globalNorm(store.grad()), 0.5);
                        opt.step(1e-2, clip);
                        losses[d][step] = loss.item();
                    }
                }
                try (Scope s = Scope.open(dev)) {
                    params[d] = store.data().toDoubleArray();
                }
            }
        }
        System.out.printf("ModelsOnEmulatedCudaTest training: losses CPU %s, emulated CUDA %s%n",
                Arrays.toString(losses[0]), Arrays.toString(losses[1]));
        for (int step = 0; step < 3; step++)
            assertEquals(losses[0][step], losses[1][step], 1e-4 * Math.abs(losses[0][step]), "loss at step " + step);
        assertTrue(losses[0][2] < losses[0][0], "the steps train: loss falls");
        double worst = 0;
        for (int i = 0; i < params[0].length; i++) worst = Math.max(worst, Math.abs(params[0][i] - params[1][i]));
        System.out.printf("ModelsOnEmulatedCudaTest training: parameters after 3 steps max |diff| %.2e%n", worst);
        // lr 1e-2 Adam steps move each weight by ~1e-2; sign flips of near-zero gradients can move a weight by 2 lr.
        assertTrue(worst < 2e-3, "parameters after 3 AdamW steps differ by " + worst);
    }
}
