package io.github.rlhf4j.model;

import static io.github.rlhf4j.testing.Assertions.assertClose;
import static io.github.rlhf4j.testing.Assertions.maxAbs;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.github.rlhf4j.nn.Parameter;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.tensor.Autograd;
import io.github.rlhf4j.tensor.Functional;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * The checks every family runs on its Hugging Face fixture directories (fixtures/models/&lt;case&gt;/, made by a
 * src/test/python/make_*_fixtures.py from transformers): config.json + model.safetensors loaded through
 * {@link HfModel}, and expected.json's transformers logits on a left-padded batch, compared at non-padding positions
 * (left-padded query rows see no key in rlhf4j and arbitrary values in transformers).
 */
final class FixtureModelChecks {
    private static final ObjectMapper JSON = new ObjectMapper();

    final String name;
    final Path dir;
    final JsonNode expected;
    final int batch, time, vocab;
    final int[] ids, mask, positions;

    FixtureModelChecks(String name) {
        this.name = name;
        this.dir = fixtureDir(name);
        try {
            this.expected = JSON.readTree(Files.readAllBytes(dir.resolve("expected.json")));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        JsonNode rows = expected.get("input_ids");
        batch = rows.size();
        time = rows.get(0).size();
        ids = ints(rows);
        mask = ints(expected.get("attention_mask"));
        positions = ints(expected.get("position_ids"));
        vocab = expected.get("logits").size() / (batch * time);
        assertEquals((long) batch * time * vocab, expected.get("logits").size(), name + ": logits size");
        assertTrue(Arrays.stream(mask).anyMatch(m -> m == 0), name + ": the fixture has left padding");
    }

    static Path fixtureDir(String name) {
        URL url = FixtureModelChecks.class.getResource("/fixtures/models/" + name + "/config.json");
        if (url == null) throw new IllegalStateException("missing test fixture /fixtures/models/" + name);
        try {
            return Path.of(url.toURI()).getParent();
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    static int[] ints(JsonNode rows) {
        List<Integer> out = new ArrayList<>();
        for (JsonNode row : rows)
            for (JsonNode v : row) out.add(v.asInt());
        return out.stream().mapToInt(Integer::intValue).toArray();
    }

    static double[] doubles(JsonNode flat) {
        double[] out = new double[flat.size()];
        for (int i = 0; i < out.length; i++) out[i] = flat.get(i).asDouble();
        return out;
    }

    HfModel load(DType dtype) {
        return HfModel.load(dir, Device.cpu(), dtype);
    }

    Tensor idsTensor() {
        return Tensor.ofInts(ids, batch, time);
    }

    Tensor maskTensor() {
        return Tensor.ofInts(mask, batch, time);
    }

    Tensor positionsTensor() {
        return Tensor.ofInts(positions, batch, time);
    }

    /** Rows [b * T + t] of the fixture's logits at non-padding positions, flattened. */
    double[] expectedAtRealTokens() {
        return realTokens(doubles(expected.get("logits")));
    }

    double[] realTokens(double[] logits) {
        double[] out = new double[(int) Arrays.stream(mask).filter(m -> m != 0).count() * vocab];
        int n = 0;
        for (int r = 0; r < mask.length; r++)
            if (mask[r] != 0) {
                System.arraycopy(logits, r * vocab, out, n, vocab);
                n += vocab;
            }
        return out;
    }

    /** Asserts {@code actual} within {@code tol} times max |expected| of {@code expected}; returns that error ratio. */
    static double assertLogits(double[] expected, double[] actual, double tol, String what) {
        double scale = maxAbs(expected);
        assertClose(expected, actual, tol * scale, 0, what);
        double worst = 0;
        for (int i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
        return worst / scale;
    }

    /**
     * The left-padded batch with the fixture's explicit positions, and the single unpadded row without mask or
     * positions, against transformers' logits; returns the worst error ratio.
     */
    double checkLogits(DType dtype, double tol) {
        try (HfModel m = load(dtype); Scope s = Scope.open()) {
            Tensor logits = m.model().forward(idsTensor(), maskTensor(), positionsTensor(), null);
            assertEquals(dtype, logits.dtype());
            assertArrayEquals(new int[] {batch, time, vocab}, logits.shape());
            double worst = assertLogits(expectedAtRealTokens(), realTokens(logits.toDoubleArray()), tol,
                    name + " " + dtype + " logits at non-padding positions");

            int[] row = ints(expected.get("unpadded_input_ids"));
            Tensor one = m.model().forward(Tensor.ofInts(row, 1, row.length));
            worst = Math.max(worst, assertLogits(doubles(expected.get("logits_unpadded")), one.toDoubleArray(), tol,
                    name + " " + dtype + " logits of the unpadded row without mask or positions"));
            return worst;
        }
    }

    /**
     * Prefill of the first T - 3 tokens through a KvCache, then three single-token steps: every step's logits equal
     * transformers' at those positions, and the cached steps equal rlhf4j's own full forward (F64).
     */
    double checkKvCache(double tol) {
        try (HfModel m = load(DType.F64); Scope s = Scope.open(); Autograd.NoGrad ignored = Autograd.noGrad();
             KvCache cache = KvCache.of(m.config(), Device.cpu(), DType.F64, batch, time)) {
            double[] full = m.model().forward(idsTensor(), maskTensor(), positionsTensor(), null).toDoubleArray();
            double[] transformers = doubles(expected.get("logits"));
            int prefill = time - 3;
            double worst = 0;
            for (int start = 0; start < time; ) {
                int len = start == 0 ? prefill : 1;
                Tensor logits = m.model().forward(columns(ids, start, len), columns(mask, start, len),
                        columns(positions, start, len), cache);
                assertEquals(start + len, cache.length());
                double[] got = logits.toDoubleArray();
                for (int b = 0; b < batch; b++)
                    for (int t = 0; t < len; t++) {
                        int row = b * time + start + t;
                        if (mask[row] == 0) continue;
                        double[] g = Arrays.copyOfRange(got, (b * len + t) * vocab, (b * len + t + 1) * vocab);
                        double[] e = Arrays.copyOfRange(transformers, row * vocab, (row + 1) * vocab);
                        double[] f = Arrays.copyOfRange(full, row * vocab, (row + 1) * vocab);
                        String at = name + " cached forward, row " + b + " position " + (start + t);
                        worst = Math.max(worst, assertLogits(e, g, tol, at + " vs transformers"));
                        assertLogits(f, g, tol, at + " vs the full forward");
                    }
                start += len;
            }
            return worst;
        }
    }

    /**
     * A cross-entropy loss on the left-padded batch (next-token targets, pads ignored) back-propagates into every
     * parameter: none is left out of the forward.
     */
    void checkEveryParameterGetsAGradient() {
        try (HfModel m = load(DType.F64); Scope s = Scope.open()) {
            int[] targets = new int[batch * time];
            for (int i = 0; i < targets.length; i++)
                targets[i] = i % time == time - 1 || mask[i] == 0 ? -100 : ids[i + 1];
            Tensor logits = m.model().forward(idsTensor(), maskTensor(), positionsTensor(), null);
            m.parameters().zeroGrad();
            Functional.crossEntropy(logits, Tensor.ofInts(targets, batch, time), -100).backward();
            for (Map.Entry<String, Parameter> e : m.model().namedParameters().entrySet()) {
                Tensor g = e.getValue().value().grad();
                assertTrue(g != null && maxAbs(g.toDoubleArray()) > 0, name + ": no gradient reaches " + e.getKey());
            }
        }
    }

    /** Columns [start, start + len) of a [batch, time] int matrix. */
    Tensor columns(int[] m, int start, int len) {
        int[] out = new int[batch * len];
        for (int b = 0; b < batch; b++) System.arraycopy(m, b * time + start, out, b * len, len);
        return Tensor.ofInts(out, batch, len);
    }

    /**
     * The CausalLM's parameters have transformers' names, shapes and declaration order (expected.json's
     * named_parameters list), and are exactly the tensors of model.safetensors (the tied lm_head is not saved).
     */
    void checkParameterNames() {
        CausalLM model = CausalLM.of(Models.config(dir));
        List<String> want = new ArrayList<>(), got = new ArrayList<>();
        for (JsonNode p : expected.get("parameters")) want.add(p.get("name").asText() + p.get("shape"));
        for (Map.Entry<String, Parameter> e : model.namedParameters().entrySet())
            got.add(e.getKey() + Arrays.toString(e.getValue().shape()).replace(" ", ""));
        assertEquals(want, got, name + ": parameter names, shapes and order");
        try (Safetensors st = Safetensors.open(dir.resolve("model.safetensors"))) {
            TreeSet<String> saved = new TreeSet<>();
            for (Safetensors.Entry e : st.entries().values()) saved.add(e.name() + Arrays.toString(e.shape()));
            TreeSet<String> params = new TreeSet<>();
            for (Map.Entry<String, Parameter> e : model.namedParameters().entrySet())
                params.add(e.getKey() + Arrays.toString(e.getValue().shape()));
            assertEquals(saved, params, name + ": model.safetensors holds exactly the parameters");
        }
    }

    /** RewardModel.of(config): rwtranrsformer.&lt;base names&gt; in the same order, then v_head [1, outputSize]. */
    void checkRewardModelNames() {
        ModelConfig c = Models.config(dir);
        List<String> want = new ArrayList<>();
        String prefix = c.basePrefix() + ".";
        for (JsonNode p : expected.get("parameters")) {
            String n = p.get("name").asText();
            assertTrue(n.startsWith(prefix), n);
            want.add(RewardModel.BASE_NAME + "." + n.substring(prefix.length()) + p.get("shape"));
        }
        want.add("v_head.weight[1," + c.outputSize() + "]");
        List<String> got = new ArrayList<>();
        for (Map.Entry<String, Parameter> e : RewardModel.of(c).namedParameters().entrySet())
            got.add(e.getKey() + Arrays.toString(e.getValue().shape()).replace(" ", ""));
        assertEquals(want, got, name + ": reward model parameter names");
    }

    /** The fixture's config.json text with {@code edit} applied to its JSON object. */
    ConfigJson editedConfig(java.util.function.Consumer<com.fasterxml.jackson.databind.node.ObjectNode> edit) {
        ConfigJson original = ConfigJson.read(dir.resolve("config.json"));
        var json = original.json();
        edit.accept(json);
        return ConfigJson.parse(dir.resolve("config.json").toString(), json.toString());
    }
}
