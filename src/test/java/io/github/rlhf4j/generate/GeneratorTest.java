package io.github.rlhf4j.generate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.github.rlhf4j.model.HfModel;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Generation's own properties on the tiny GPT-2 fixture: transformers' repetition penalty, a batch giving each
 * prompt exactly what it gives alone (left padding, finished rows dropped mid-way), fixed-length answers with
 * ignoreEos, seeds, and the sampler's distributions (temperature, top-k, top-p) against their exact probabilities.
 */
class GeneratorTest {
    static HfModel model;
    static Path dir;

    @BeforeAll
    static void load() throws Exception {
        dir = Path.of(GeneratorTest.class.getResource("/fixtures/models/gpt2-tiny").toURI());
        model = HfModel.load(dir, Device.cpu(), DType.F32);
    }

    @AfterAll
    static void close() {
        model.close();
    }

    static final int[][] PROMPTS = {{5, 17, 33, 2, 90, 41, 8, 13, 77, 21}, {60, 3, 44, 12, 9, 30, 71}, {7}, {40, 41, 42, 43}};

    @Test
    void repetitionPenaltyMatchesTransformers() throws Exception {
        JsonNode e = ModelFixturesTest.expected(dir), g = e.get("greedy_repetition_penalty");
        int[][] ids = ModelFixturesTest.rows(e.get("input_ids")), mask = ModelFixturesTest.rows(e.get("attention_mask"));
        int[][] prompts = new int[ids.length][];
        for (int i = 0; i < ids.length; i++) {
            int off = 0;
            while (mask[i][off] == 0) off++;
            prompts[i] = java.util.Arrays.copyOfRange(ids[i], off, ids[i].length);
        }
        var cfg = GenerationConfig.greedy(12, 96, 96).withRepetitionPenalty(g.get("repetition_penalty").asDouble());
        var r = new Generator(model.model()).generate(prompts, cfg, null);
        int[][] want = ModelFixturesTest.rows(g.get("sequences"));
        for (int i = 0; i < want.length; i++) assertArrayEquals(want[i], r.sequences()[i], "row " + i);
    }

    @Test
    void aBatchGivesEachPromptWhatItGivesAloneEvenAsRowsFinish() {
        // eos = 1, a token this model emits often: rows end at different steps and leave the batch
        var cfg = GenerationConfig.greedy(16, 1, 96);
        Generator gen = new Generator(model.model());
        List<int[]> streamed = new ArrayList<>();
        var batch = gen.generate(PROMPTS, cfg, (row, token) -> streamed.add(new int[] {row, token}));
        int finishedEarly = 0;
        for (int i = 0; i < PROMPTS.length; i++) {
            var alone = gen.generate(PROMPTS[i], cfg, null);
            assertArrayEquals(alone.tokens()[0], batch.tokens()[i], "prompt " + i);
            assertEquals(alone.finish()[0], batch.finish()[i]);
            if (batch.finish()[i] == Generator.Finish.EOS) {
                assertEquals(1, batch.tokens()[i][batch.tokens()[i].length - 1], "EOS is the last token");
                if (batch.tokens()[i].length < 16) finishedEarly++;
            }
            final int row = i;
            assertArrayEquals(batch.tokens()[i], streamed.stream().filter(s -> s[0] == row).mapToInt(s -> s[1]).toArray(),
                    "the listener saw every token of row " + i + " in order");
        }
        assertTrue(finishedEarly >= 2, "the test needs rows that stop early; got " + finishedEarly);
    }

    @Test
    void aListenerCanEndItsSequenceAndOnlyThatOne() {
        var cfg = GenerationConfig.greedy(10, 96, 96).withIgnoreEos(true);
        Generator gen = new Generator(model.model());
        int[] seen = new int[PROMPTS.length];
        var r = gen.generate(PROMPTS, cfg, (row, token) -> row != 2 || ++seen[row] < 3);
        assertEquals(Generator.Finish.STOPPED, r.finish()[2]);
        assertEquals(3, r.tokens()[2].length);
        var all = gen.generate(PROMPTS, cfg, null);
        assertArrayEquals(java.util.Arrays.copyOf(all.tokens()[2], 3), r.tokens()[2]);
        for (int i : new int[] {0, 1, 3}) assertArrayEquals(all.tokens()[i], r.tokens()[i], "row " + i + " unaffected");
    }

    @Test
    void anInferenceOnlyModelHasNoGradientsAndGeneratesTheSame() {
        try (HfModel frozen = HfModel.load(dir, Device.cpu(), DType.F32, false)) {
            assertFalse(frozen.parameters().isTrainable());
            assertThrows(IllegalStateException.class, () -> frozen.parameters().grad());
            var cfg = GenerationConfig.greedy(8, 96, 96);
            var a = new Generator(frozen.model()).generate(PROMPTS, cfg, null);
            var b = new Generator(model.model()).generate(PROMPTS, cfg, null);
            for (int i = 0; i < PROMPTS.length; i++) assertArrayEquals(b.tokens()[i], a.tokens()[i]);
        }
    }

    @Test
    void ignoreEosGivesFixedLengthAnswers() {
        var r = new Generator(model.model()).generate(PROMPTS, GenerationConfig.greedy(9, 1, 96).withIgnoreEos(true), null);
        for (int i = 0; i < PROMPTS.length; i++) {
            assertEquals(9, r.tokens()[i].length);
            assertEquals(Generator.Finish.LENGTH, r.finish()[i]);
            assertEquals(10 + 9, r.sequences()[i].length, "sequences = padded prompt + answer");
        }
    }

    @Test
    void seedsMakeSamplingReproducible() {
        Generator gen = new Generator(model.model());
        var cfg = GenerationConfig.sampling(12, 1.3, 0, 0.95, 96, 96, 7).withIgnoreEos(true);
        var a = gen.generate(PROMPTS, cfg, null);
        var b = gen.generate(PROMPTS, cfg, null);
        var c = gen.generate(PROMPTS, cfg.withSeed(8), null);
        for (int i = 0; i < PROMPTS.length; i++) assertArrayEquals(a.tokens()[i], b.tokens()[i]);
        boolean differs = false;
        for (int i = 0; i < PROMPTS.length; i++) differs |= !java.util.Arrays.equals(a.tokens()[i], c.tokens()[i]);
        assertTrue(differs, "another seed, other samples");
        // top_k = 1 and a tiny top_p both leave only the argmax: sampling becomes greedy
        var greedy = gen.generate(PROMPTS, GenerationConfig.greedy(12, 96, 96).withIgnoreEos(true), null);
        for (var cut : List.of(GenerationConfig.sampling(12, 2.0, 1, 1.0, 96, 96, 3), GenerationConfig.sampling(12, 2.0, 0, 1e-6, 96, 96, 3))) {
            var s = gen.generate(PROMPTS, cut.withIgnoreEos(true), null);
            for (int i = 0; i < PROMPTS.length; i++) assertArrayEquals(greedy.tokens()[i], s.tokens()[i]);
        }
    }

    @Test
    void promptsBeyondTheContextAreRefusedByLength() {
        var e = assertThrows(IllegalArgumentException.class,
                () -> new Generator(model.model()).generate(new int[35], GenerationConfig.greedy(6, 96, 96), null));
        assertTrue(e.getMessage().contains("35") && e.getMessage().contains("40"), e.getMessage());
        assertThrows(IllegalArgumentException.class,
                () -> new Generator(model.model()).generate(new int[] {3, 97}, GenerationConfig.greedy(2, 96, 96), null));
    }

    /** Draws from the sampler many times and compares frequencies with the exact probabilities (5 sigma). */
    private static void assertDistribution(GenerationConfig cfg, float[] logits, double[] p) {
        Sampler s = new Sampler(cfg);
        int n = 40000;
        int[] count = new int[logits.length];
        for (int i = 0; i < n; i++) count[s.next(logits.clone(), new int[0], 0)]++;
        for (int k = 0; k < p.length; k++) {
            double sd = Math.sqrt(n * p[k] * (1 - p[k])) + 1e-9;
            assertTrue(Math.abs(count[k] - n * p[k]) <= 5 * sd + (p[k] == 0 ? 0 : 1),
                    "token " + k + ": " + count[k] + " draws, expected " + n * p[k] + " (" + cfg + ")");
        }
    }

    private static double[] softmax(double... x) {
        double m = java.util.Arrays.stream(x).max().orElseThrow(), sum = 0;
        double[] p = new double[x.length];
        for (int i = 0; i < x.length; i++) sum += p[i] = Math.exp(x[i] - m);
        for (int i = 0; i < x.length; i++) p[i] /= sum;
        return p;
    }

    @Test
    void samplerFollowsTemperatureTopKAndTopP() {
        float[] logits = {0, 1, 2, 3, -1};
        assertDistribution(GenerationConfig.sampling(1, 1.0, 0, 1.0, 0, 0, 1), logits, softmax(0, 1, 2, 3, -1));
        assertDistribution(GenerationConfig.sampling(1, 2.0, 0, 1.0, 0, 0, 2), logits, softmax(0, .5, 1, 1.5, -.5));
        double[] top2 = softmax(2, 3);
        assertDistribution(GenerationConfig.sampling(1, 1.0, 2, 1.0, 0, 0, 3), logits, new double[] {0, 0, top2[0], top2[1], 0});
        // softmax(0..3, -1) = .031 .085 .231 .628 .012: top_p 0.7 keeps {3, 2}, renormalised
        assertDistribution(GenerationConfig.sampling(1, 1.0, 0, 0.7, 0, 0, 4), logits, new double[] {0, 0, top2[0], top2[1], 0});
        double[] top3 = softmax(1, 2, 3);
        assertDistribution(GenerationConfig.sampling(1, 1.0, 0, 0.9, 0, 0, 5), logits, new double[] {0, top3[0], top3[1], top3[2], 0});
        assertFalse(new Sampler(GenerationConfig.greedy(1, 0, 0)).next(new float[] {1, 5, 5, 2}, new int[0], 0) != 1,
                "greedy takes the first of equal maxima, as torch.argmax");
    }
}
