package io.github.rlhf4j.generate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.github.rlhf4j.model.HfModel;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * Every model fixture (fixtures/models/<case>/: a tiny random model saved by transformers, with transformers'
 * float64 logits for a left-padded batch and its float32 greedy generation; see src/test/python/make_*_fixture*.py)
 * loaded through {@link HfModel}: logits at every real position within 1e-9 of the largest in F64, and greedy
 * generation through the KV cache token-identical to transformers' generate.
 */
class ModelFixturesTest {
    /**
     * The committed fixture directories, or those under the folder named by the system property
     * {@code rlhf4j.modelFixtures} (real-shape models made by bench/cpu/real_shapes.py).
     */
    static List<Path> cases() throws IOException, URISyntaxException {
        String other = System.getProperty("rlhf4j.modelFixtures");
        Path root = other != null ? Path.of(other) : Path.of(ModelFixturesTest.class.getResource("/fixtures/models").toURI());
        try (Stream<Path> s = Files.list(root)) {
            return s.filter(p -> Files.exists(p.resolve("expected.json"))).sorted().toList();
        }
    }

    static JsonNode expected(Path dir) throws IOException {
        return new ObjectMapper().readTree(dir.resolve("expected.json").toFile());
    }

    static int[][] rows(JsonNode n) {
        int[][] r = new int[n.size()][];
        for (int i = 0; i < r.length; i++) {
            r[i] = new int[n.get(i).size()];
            for (int j = 0; j < r[i].length; j++) r[i][j] = n.get(i).get(j).asInt();
        }
        return r;
    }

    static int[] flat(int[][] r) {
        return Stream.of(r).flatMapToInt(java.util.Arrays::stream).toArray();
    }

    /** transformers' logits: inline (float64 fixtures) or in a float32 file beside expected.json (real shapes). */
    static double[] expectedLogits(Path dir, JsonNode e) throws IOException {
        if (!e.has("logits_file")) return doubles(e.get("logits"));
        var buf = java.nio.ByteBuffer.wrap(Files.readAllBytes(dir.resolve(e.get("logits_file").asText())))
                .order(java.nio.ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
        double[] d = new double[buf.remaining()];
        for (int i = 0; i < d.length; i++) d[i] = buf.get(i);
        return d;
    }

    @TestFactory
    List<DynamicTest> logitsMatchTransformers() throws Exception {
        List<DynamicTest> tests = new ArrayList<>();
        for (Path dir : cases())
            tests.add(DynamicTest.dynamicTest(dir.getFileName().toString(), () -> {
                JsonNode e = expected(dir);
                int[][] ids = rows(e.get("input_ids")), mask = rows(e.get("attention_mask"));
                int b = ids.length, t = ids[0].length;
                boolean explicit = "explicit".equals(e.path("positions").asText("explicit"));
                boolean f32 = "float32".equals(e.path("dtype").asText("float64"));
                try (HfModel m = HfModel.load(dir, Device.cpu(), f32 ? DType.F32 : DType.F64, false); Scope s = Scope.open()) {
                    Tensor pos = explicit ? Tensor.ofInts(flat(rows(e.get("position_ids"))), b, t) : null;
                    double[] got = m.model().forward(Tensor.ofInts(flat(ids), b, t), Tensor.ofInts(flat(mask), b, t),
                            pos, null).toDoubleArray();
                    double[] want = expectedLogits(dir, e);
                    assertEquals(want.length, got.length, "logits size");
                    int v = want.length / (b * t);
                    double scale = maxAbs(want), worst = 0;
                    for (int i = 0; i < b; i++)
                        for (int j = 0; j < t; j++) {
                            if (mask[i][j] == 0) continue;
                            for (int k = 0; k < v; k++) {
                                int x = (i * t + j) * v + k;
                                worst = Math.max(worst, Math.abs(got[x] - want[x]));
                            }
                        }
                    System.out.printf("ModelFixturesTest %s: %s logits max |diff| %.2e (max |logit| %.2f)%n",
                            dir.getFileName(), f32 ? "F32" : "F64", worst, scale);
                    // float64 both sides: rounding only; float32 (real shapes): float32 rounding through deep stacks
                    assertTrue(worst <= (f32 ? 2e-4 : 1e-9) * scale, dir.getFileName() + ": max |diff| " + worst);
                }
            }));
        return tests;
    }

    @TestFactory
    List<DynamicTest> greedyGenerationIsTokenIdenticalToTransformers() throws Exception {
        List<DynamicTest> tests = new ArrayList<>();
        for (Path dir : cases())
            tests.add(DynamicTest.dynamicTest(dir.getFileName().toString(), () -> {
                JsonNode e = expected(dir), g = e.get("greedy");
                int[][] ids = rows(e.get("input_ids")), mask = rows(e.get("attention_mask"));
                int[][] prompts = new int[ids.length][];
                for (int i = 0; i < ids.length; i++) {
                    int off = 0;
                    while (mask[i][off] == 0) off++;
                    prompts[i] = java.util.Arrays.copyOfRange(ids[i], off, ids[i].length);
                }
                int pad = g.get("pad_token_id").asInt();
                int[] eos = g.has("eos_token_id") && !g.get("eos_token_id").isNull()
                        ? (g.get("eos_token_id").isArray() ? flat(rows(new ObjectMapper().createArrayNode().add(g.get("eos_token_id"))))
                        : new int[] {g.get("eos_token_id").asInt()}) : new int[0];
                var config = new GenerationConfig(g.get("max_new_tokens").asInt(), false, 1, 0, 1, 1, eos, pad, false, 0);
                try (HfModel m = HfModel.load(dir, Device.cpu(), DType.F32, false)) {
                    var r = new Generator(m.model()).generate(prompts, config, null);
                    int[][] want = rows(g.get("sequences"));
                    for (int i = 0; i < want.length; i++)
                        assertArrayEquals(want[i], r.sequences()[i], dir.getFileName() + " row " + i);
                }
            }));
        return tests;
    }

    static double[] doubles(JsonNode n) {
        double[] d = new double[n.size()];
        for (int i = 0; i < d.length; i++) d[i] = n.get(i).asDouble();
        return d;
    }

    static double maxAbs(double[] a) {
        double m = 0;
        for (double x : a) m = Math.max(m, Math.abs(x));
        return m;
    }
}
