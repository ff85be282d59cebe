package io.github.rlhf4j.rlhf;

import static io.github.rlhf4j.testing.Assertions.assertClose;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.tensor.GradCheck;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import io.github.rlhf4j.testing.Fixtures;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/**
 * DeepSpeed-Chat's reward-model math: the pairwise loss over the diverging span, the end scores and accuracy, and
 * forward_value's one score per sequence, by hand (arithmetic in the comments), against RewardModel.forward /
 * forward_value run verbatim in PyTorch (fixtures/rlhf_math.json), and the loss's gradient against central differences.
 */
class RewardModelMathTest {
    static final JsonNode FIXTURE = PpoMathTest.FIXTURE;
    static final double TOL = 1e-12;
    static final double LN_2 = Math.log(2), LN_3 = Math.log(3);

    static Tensor ids(int[][] rows) {
        int t = rows[0].length;
        int[] flat = new int[rows.length * t];
        for (int i = 0; i < rows.length; i++) System.arraycopy(rows[i], 0, flat, i * t, t);
        return Tensor.ofInts(flat, rows.length, t);
    }

    // ---- by hand -------------------------------------------------------------------------------------------------

    /**
     * Pad 0, numPaddingAtBeginning 0, T = 8, two pairs (rows: chosen 0, chosen 1, rejected 0, rejected 1).
     *
     * <pre>
     * pair 0: chosen   [5 6 7 8 9 0 0 0] c_ind 5      rejected [5 6 7 4 0 0 0 0] r_ind 4
     *         first difference at 3, end max(5, 4) = 5: span [3, 5)
     *         t = 3: c - r = ln 3 - 0 = ln 3,   -log sigmoid(ln 3) = -log(3/4) = ln(4/3)
     *         t = 4: c - r = 0.5 - (0.5 + ln 3) = -ln 3,   -log sigmoid(-ln 3) = -log(1/4) = ln 4
     *         pair loss (ln(4/3) + ln 4) / 2 = ln(16/3) / 2
     *         end scores: chosen at c_ind - 1 = 4: 0.5; rejected at r_ind - 1 = 3: 0         (correct)
     * pair 1: identical rows [5 6 7 0 0 0 0 0], c_ind 3: only the last column counts, span [7, 8)
     *         t = 7: c - r = 2 - 2 = 0, -log sigmoid(0) = ln 2
     *         end scores at c_ind - 1 = 2: 1 and 1                                           (a tie: not correct)
     * loss = (ln(16/3) / 2 + ln 2) / 2; accuracy 1/2
     * gradient: pair 0 weighs 1/2 (mean over pairs) x 1/2 (mean over 2 positions); d(-log sigmoid(x))/dx = -(1 - sigmoid x)
     *   d/dc0[3] = 1/4 x -(1 - 3/4) = -1/16,  d/dc0[4] = 1/4 x -(1 - 1/4) = -3/16   (rejected: the negatives)
     *   d/dc1[7] = 1/2 x 1 x -(1 - 1/2) = -1/4,  d/dr1[7] = 1/4
     * Other columns hold decoys (10, 7, 4, -4) that would change the loss if read.
     * </pre>
     */
    @Test
    void lossAveragesOverTheDivergingSpanAndIdenticalRowsUseTheLastColumn() {
        int[][] rows = {{5, 6, 7, 8, 9, 0, 0, 0}, {5, 6, 7, 0, 0, 0, 0, 0}, {5, 6, 7, 4, 0, 0, 0, 0}, {5, 6, 7, 0, 0, 0, 0, 0}};
        double[] scores = {
            0, 0, 10, LN_3, 0.5, 0, 0, 0,        // chosen 0
            0, 0, 1, 0, 0, 4, 0, 2,              // chosen 1
            0, 0, 0, 0, 0.5 + LN_3, 7, 0, 0,     // rejected 0
            0, 0, 1, 0, 0, -4, 0, 2};            // rejected 1
        try (Scope s = Scope.open()) {
            Tensor ids = ids(rows);
            RewardModelMath.Span[] spans = RewardModelMath.spans(ids, 0, 0);
            assertEquals(new RewardModelMath.Span(5, 4, 3, 5), spans[0]);
            assertEquals(new RewardModelMath.Span(3, 3, 7, 8), spans[1]);
            Tensor x = Tensor.of(scores, 4, 8).requiresGrad(true);
            RewardModelMath.Pairwise p = RewardModelMath.pairwiseLoss(x, ids, 0, 0);
            assertEquals((Math.log(16.0 / 3) / 2 + LN_2) / 2, p.loss().item(), TOL);
            assertClose(new double[] {0.5, 1}, p.chosenEndScores().toDoubleArray(), TOL, 0, "chosen end scores");
            assertClose(new double[] {0, 1}, p.rejectedEndScores().toDoubleArray(), TOL, 0, "rejected end scores");
            assertEquals(1, p.correct());
            assertEquals(0.5, p.accuracy());
            p.loss().backward();
            double[] g = new double[32];
            g[3] = -1.0 / 16;
            g[4] = -3.0 / 16;
            g[15] = -0.25;
            g[16 + 3] = 1.0 / 16;
            g[16 + 4] = 3.0 / 16;
            g[24 + 7] = 0.25;
            assertClose(g, x.grad().toDoubleArray(), TOL, 0, "gradient");
        }
    }

    /**
     * OPT style: pad 1, every row starts with the pad id, numPaddingAtBeginning 1 skips that first pad.
     *
     * <pre>
     * chosen   [1 5 6 7 1 1 1 1]: pads at 0, 4, ... -> c_ind = the second, 4
     * rejected [1 5 6 8 9 1 1 1]: pads at 0, 5, ... -> r_ind 5
     * first difference at 3 (7 vs 8), end 5: span [3, 5)
     * t = 3: c - r = 0, ln 2; t = 4: c - r = ln 3, ln(4/3)   -> loss (ln 2 + ln(4/3)) / 2 = ln(8/3) / 2
     * end scores: chosen at 3, rejected at 4
     * </pre>
     *
     * With numPaddingAtBeginning 0 the same rows end at their leading pad (c_ind = r_ind = 0): the span [3, 0) is
     * empty, where DS-Chat's mean would be NaN; it must fail and say so.
     */
    @Test
    void optRowsSkipTheirLeadingPadToken() {
        int[][] rows = {{1, 5, 6, 7, 1, 1, 1, 1}, {1, 5, 6, 8, 9, 1, 1, 1}};
        double[] scores = {0, 0, 0, 1.5, LN_3 - 2, 9, 9, 9, 0, 0, 0, 1.5, -2, -9, -9, -9};
        try (Scope s = Scope.open()) {
            Tensor ids = ids(rows);
            assertEquals(new RewardModelMath.Span(4, 5, 3, 5), RewardModelMath.spans(ids, 1, 1)[0]);
            RewardModelMath.Pairwise p = RewardModelMath.pairwiseLoss(Tensor.of(scores, 2, 8), ids, 1, 1);
            assertEquals(Math.log(8.0 / 3) / 2, p.loss().item(), TOL);
            assertEquals(1.5, p.chosenEndScores().item(), TOL);
            assertEquals(-2, p.rejectedEndScores().item(), TOL);
            var e = assertThrows(IllegalArgumentException.class,
                    () -> RewardModelMath.pairwiseLoss(Tensor.of(scores, 2, 8), ids, 1, 0));
            assertTrue(e.getMessage().contains("reward pair 0") && e.getMessage().contains("empty"), e.getMessage());
        }
    }

    /**
     * Index rules on their own: a chosen row with no pad ends at T (end score at T-1) and the span runs to T; identical
     * left-padded rows have c_ind 0, whose end score is Python's index -1, T-1; rows that differ at 0 are refused.
     */
    @Test
    void spanIndicesFollowDsChat() {
        try (Scope s = Scope.open()) {
            RewardModelMath.Span a = RewardModelMath.spans(ids(new int[][] {{5, 6, 7, 8, 9, 3, 4, 2},
                    {5, 6, 7, 2, 0, 0, 0, 0}}), 0, 0)[0];
            assertEquals(new RewardModelMath.Span(8, 4, 3, 8), a);
            assertEquals(7, a.chosenEndIndex(8));
            assertEquals(3, a.rejectedEndIndex(8));
            RewardModelMath.Span b = RewardModelMath.spans(ids(new int[][] {{0, 0, 5, 6, 0, 0, 0, 0},
                    {0, 0, 5, 6, 0, 0, 0, 0}}), 0, 0)[0];
            assertEquals(new RewardModelMath.Span(0, 0, 7, 8), b);
            assertEquals(7, b.chosenEndIndex(8));
            var e = assertThrows(IllegalArgumentException.class,
                    () -> RewardModelMath.spans(ids(new int[][] {{5, 6, 0}, {4, 6, 0}}), 0, 0));
            assertTrue(e.getMessage().contains("position 0"), e.getMessage());
            assertThrows(IllegalArgumentException.class,
                    () -> RewardModelMath.spans(ids(new int[][] {{5, 6, 0}, {5, 6, 0}, {5, 7, 0}}), 0, 0));
        }
    }

    /**
     * forward_value with prompt length 3, pad 0, scores[r][t] = 10 r + t (so a score names its index):
     *
     * <pre>
     * row 0 [0 5 6 | 7 8 0 0 0]: first pad from 3 on at 5 -> score at 4: 4   (the left pad at 0 is not looked at)
     * row 1 [5 6 7 | 8 9 1 2 3]: no pad after the prompt -> c_ind = T = 8, score at 7: 17
     * row 2 [0 0 5 | 0 0 0 0 0]: empty answer, c_ind = 3 -> score at 2, the prompt's last token: 22
     * </pre>
     */
    @Test
    void endScoreIsAtTheLastTokenBeforeTheAnswersFirstPad() {
        double[] scores = new double[24];
        for (int i = 0; i < 24; i++) scores[i] = 10 * (i / 8) + i % 8;
        try (Scope s = Scope.open()) {
            Tensor ids = ids(new int[][] {{0, 5, 6, 7, 8, 0, 0, 0}, {5, 6, 7, 8, 9, 1, 2, 3}, {0, 0, 5, 0, 0, 0, 0, 0}});
            assertArrayEquals(new int[] {4, 7, 2}, RewardModelMath.endIndices(ids, 0, 3));
            assertArrayEquals(new double[] {4, 17, 22},
                    RewardModelMath.endScores(Tensor.of(scores, 3, 8), ids, 0, 3).toDoubleArray());
            var e = assertThrows(IllegalArgumentException.class,
                    () -> RewardModelMath.endScores(Tensor.of(scores, 3, 8), ids, 0, 1));
            assertTrue(e.getMessage().contains("promptLength 1"), e.getMessage());
        }
    }

    // ---- against DeepSpeed-Chat in PyTorch -------------------------------------------------------------------------

    @TestFactory
    Stream<DynamicTest> pairwiseLossMatchesDsChatRunInPyTorch() {
        List<DynamicTest> tests = new ArrayList<>();
        for (JsonNode c : FIXTURE.get("reward"))
            tests.add(DynamicTest.dynamicTest(c.get("name").asText(), () -> {
                String name = c.get("name").asText();
                try (Scope s = Scope.open()) {
                    Tensor scores = Fixtures.tensor(c.get("scores"), DType.F64).requiresGrad(true);
                    Tensor ids = Fixtures.tensor(c.get("ids"), DType.F64);
                    RewardModelMath.Pairwise p = RewardModelMath.pairwiseLoss(scores, ids, c.get("padId").asInt(),
                            c.get("numPaddingAtBeginning").asInt());
                    assertEquals(c.get("loss").asDouble(), p.loss().item(), TOL, name + " loss");
                    // picked, not computed: exactly DS-Chat's values
                    assertArrayEquals(Fixtures.doubles(c.get("chosenEndScores")), p.chosenEndScores().toDoubleArray(),
                            name + " chosen end scores");
                    assertArrayEquals(Fixtures.doubles(c.get("rejectedEndScores")),
                            p.rejectedEndScores().toDoubleArray(), name + " rejected end scores");
                    p.loss().backward();
                    assertClose(Fixtures.doubles(c.get("lossGradScores")), scores.grad().toDoubleArray(), TOL, 1e-10,
                            name + " d loss / d scores");
                }
            }));
        return tests.stream();
    }

    @TestFactory
    Stream<DynamicTest> endScoresMatchDsChatForwardValue() {
        List<DynamicTest> tests = new ArrayList<>();
        for (JsonNode c : FIXTURE.get("value"))
            tests.add(DynamicTest.dynamicTest(c.get("name").asText(), () -> {
                try (Scope s = Scope.open()) {
                    Tensor end = RewardModelMath.endScores(Fixtures.tensor(c.get("scores"), DType.F64),
                            Fixtures.tensor(c.get("ids"), DType.F64), c.get("padId").asInt(),
                            c.get("promptLength").asInt());
                    assertArrayEquals(Fixtures.doubles(c.get("chosenEndScores")), end.toDoubleArray(),
                            c.get("name").asText());
                }
            }));
        return tests.stream();
    }

    /** F32 scores (how training runs) give an F32 loss within float rounding of the F64 one. */
    @Test
    void float32ScoresGiveTheSameLoss() {
        JsonNode c = FIXTURE.get("reward").get(0);
        try (Scope s = Scope.open()) {
            Tensor ids = Fixtures.tensor(c.get("ids"), DType.F32);
            RewardModelMath.Pairwise p = RewardModelMath.pairwiseLoss(Fixtures.tensor(c.get("scores"), DType.F32), ids,
                    c.get("padId").asInt(), c.get("numPaddingAtBeginning").asInt());
            assertEquals(DType.F32, p.loss().dtype());
            assertEquals(c.get("loss").asDouble(), p.loss().item(), 1e-6);
        }
    }

    // ---- central differences -----------------------------------------------------------------------------------------

    @Test
    void lossGradientMatchesCentralDifferences() {
        for (JsonNode c : FIXTURE.get("reward"))
            try (Scope s = Scope.open()) {
                Tensor ids = Fixtures.tensor(c.get("ids"), DType.F64);
                Tensor x = Tensor.randn(DType.F64, 9, 0, 2, ids.shape()).requiresGrad(true);
                int pad = c.get("padId").asInt(), numPad = c.get("numPaddingAtBeginning").asInt();
                GradCheck.Result r = GradCheck.check(in -> RewardModelMath.pairwiseLoss(in.getFirst(), ids, pad, numPad)
                        .loss(), List.of(x), 1e-6, 1e-8, 1e-6, 200, 7);
                assertTrue(r.passed(), c.get("name").asText() + ": " + r.worst());
            }
    }
}
