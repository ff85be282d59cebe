package io.github.rlhf4j.gpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.github.rlhf4j.generate.GenerationConfig;
import io.github.rlhf4j.generate.Generator;
import io.github.rlhf4j.model.HfModel;
import io.github.rlhf4j.runtime.Backend;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.TestFactory;

/**
 * The model fixtures on the GPU: every family's logits on the CUDA backend against the CPU backend's (F32), and
 * greedy generation token-identical to transformers' (the fixture's). Skipped, saying why, where there is no CUDA
 * backend or no GPU; bench/gpu/run.sh runs it on a GPU machine.
 */
@Tag("gpu")
public class ModelsOnGpuTest {
    static Device gpu() {
        var cuda = Backend.cuda();
        assumeTrue(cuda.isPresent(), "no CUDA backend in this build (librlhf4j_cuda.so comes with the CUDA issue): "
                + "GPU model checks skipped");
        assumeTrue(cuda.get().deviceCount() > 0, "CUDA backend loaded but no GPU visible: GPU model checks skipped");
        return Device.cuda(0);
    }

    /** The model fixture folders (transformers' weights, inputs, logits and greedy tokens). */
    public static List<Path> cases() throws Exception {
        Path root = Path.of(ModelsOnGpuTest.class.getResource("/fixtures/models").toURI());
        try (Stream<Path> s = Files.list(root)) {
            return s.filter(p -> Files.exists(p.resolve("expected.json"))).sorted().toList();
        }
    }

    /** A JSON list of int lists as int[][]. */
    public static int[][] rows(JsonNode n) {
        int[][] r = new int[n.size()][];
        for (int i = 0; i < r.length; i++) {
            r[i] = new int[n.get(i).size()];
            for (int j = 0; j < r[i].length; j++) r[i][j] = n.get(i).get(j).asInt();
        }
        return r;
    }

    @TestFactory
    List<DynamicTest> logitsAndGreedyGenerationOnTheGpu() throws Exception {
        var backend = Backend.cuda();
        if (backend.isEmpty() || backend.get().deviceCount() == 0) // one visible skip, with its reason, in the report
            return List.of(DynamicTest.dynamicTest("all model fixtures", ModelsOnGpuTest::gpu));
        Device gpu = gpu();
        List<DynamicTest> tests = new ArrayList<>();
        for (Path dir : cases())
            tests.add(DynamicTest.dynamicTest(dir.getFileName().toString(), () -> {
                JsonNode e = new com.fasterxml.jackson.databind.ObjectMapper().readTree(dir.resolve("expected.json").toFile());
                int[][] ids = rows(e.get("input_ids")), mask = rows(e.get("attention_mask"));
                int b = ids.length, t = ids[0].length;
                int[] flatIds = Stream.of(ids).flatMapToInt(java.util.Arrays::stream).toArray();
                int[] flatMask = Stream.of(mask).flatMapToInt(java.util.Arrays::stream).toArray();
                double[] cpu, cuda;
                try (HfModel m = HfModel.load(dir, Device.cpu(), DType.F32, false); Scope s = Scope.open()) {
                    cpu = m.model().forward(Tensor.ofInts(flatIds, b, t), Tensor.ofInts(flatMask, b, t), null, null)
                            .toDoubleArray();
                }
                try (HfModel m = HfModel.load(dir, gpu, DType.F32, false); Scope s = Scope.open(gpu)) {
                    Tensor idsT = Scope.current().empty(DType.I32, b, t).copyFrom(flatIds);
                    Tensor maskT = Scope.current().empty(DType.I32, b, t).copyFrom(flatMask);
                    cuda = m.model().forward(idsT, maskT, null, null).toDoubleArray();
                    double worst = 0, scale = 0;
                    for (int i = 0; i < cpu.length; i++) {
                        if (flatMask[i / (cpu.length / (b * t))] == 0) continue;
                        worst = Math.max(worst, Math.abs(cpu[i] - cuda[i]));
                        scale = Math.max(scale, Math.abs(cpu[i]));
                    }
                    System.out.printf("ModelsOnGpuTest %s: F32 GPU vs CPU logits max |diff| %.2e%n", dir.getFileName(), worst);
                    assertTrue(worst <= 1e-4 * scale, dir.getFileName() + ": " + worst);
                    JsonNode g = e.get("greedy");
                    int[][] prompts = new int[b][];
                    for (int i = 0; i < b; i++) {
                        int off = 0;
                        while (mask[i][off] == 0) off++;
                        prompts[i] = java.util.Arrays.copyOfRange(ids[i], off, t);
                    }
                    var cfg = GenerationConfig.greedy(g.get("max_new_tokens").asInt(), g.path("eos_token_id").asInt(-1),
                            g.get("pad_token_id").asInt());
                    var r = new Generator(m.model()).generate(prompts, cfg, null);
                    int[][] want = rows(g.get("sequences"));
                    for (int i = 0; i < b; i++) assertArrayEquals(want[i], r.sequences()[i], dir.getFileName() + " row " + i);
                }
            }));
        return tests;
    }
}
