package io.github.rlhf4j.rlhf;

import static io.github.rlhf4j.testing.Assertions.assertClose;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
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
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/**
 * DeepSpeed-Chat's PPO math: each formula on tiny inputs against values worked out by hand (the arithmetic is in the
 * comments), against DS-Chat's own functions run in PyTorch (fixtures/rlhf_math.json, float64, forward to 1e-12 and
 * gradients through the autograd), and the losses' gradients against central differences.
 */
class PpoMathTest {
    static final JsonNode FIXTURE = Fixtures.load("rlhf_math.json");
    static final double TOL = 1e-12;
    static final double LN_1_5 = Math.log(1.5), LN_0_5 = Math.log(0.5), LN_1_1 = Math.log(1.1), LN_3 = Math.log(3);

    static Tensor f64(double[] v, int... shape) {
        return Tensor.of(v, shape);
    }

    // ---- by hand -------------------------------------------------------------------------------------------------

    /**
     * B = 3, T = 6, prompt length 3, so start = 2 and there are 5 actions per row.
     *
     * <pre>
     * row 0: attention [1 1 1 1 1 1] -> actionMask [1 1 1 1 1]; answer actions 2..4 sum to 3 -> ends = 2 + 3 + 1 = 6,
     *        past the 5 actions: the score goes to the last action, 4. Nothing to zero.
     *        logprobs [-1, -2, -0.5, -1.5, -0.25], ref [-1.5, -1, -0.5, -1, -1.25]
     *        diff [0.5, -1, 0, -0.5, 1] -> -0.1 * diff = [-0.05, 0.1, 0, 0.05, -0.1]
     *        score 7.5 clamps to 5: [4] = -0.1 + 5 = 4.9          -> [-0.05, 0.1, 0, 0.05, 4.9]
     * row 1: attention [0 1 1 1 0 0] (left pad, a 1-token answer) -> actionMask [1 1 1 0 0]; actions 2..4 sum to 1
     *        -> ends = 4: score at action 3, action 4 zeroed.
     *        logprobs [-0.5, -0.75, -2, -3, -1], ref [-0.25, -0.75, -1, -1, -3]
     *        diff [-0.25, 0, -1, -2, 2] -> [0.025, 0, 0.1, 0.2, -0.2]
     *        score -6.25 clamps to -5: [3] = 0.2 - 5 = -4.8; [4] = 0  -> [0.025, 0, 0.1, -4.8, 0]
     * row 2: attention [1 1 1 1 1 0] (a 2-token answer) -> actionMask [1 1 1 1 0]; sum 2 -> ends = 5: the score lands on
     *        action 4, whose mask is 0 (it emits the pad after the answer). Equal logprobs: no KL term. Score 3 inside.
     *                                                              -> [0, 0, 0, 0, 3]
     * </pre>
     */
    @Test
    void rewardsAreTheKlPenaltyPlusTheClampedScoreAtEndsMinusOneZeroedFromEnds() {
        try (Scope s = Scope.open()) {
            Tensor logprobs = f64(new double[] {-1, -2, -0.5, -1.5, -0.25, -0.5, -0.75, -2, -3, -1, -1, -1, -1, -1, -1}, 3, 5);
            Tensor ref = f64(new double[] {-1.5, -1, -0.5, -1, -1.25, -0.25, -0.75, -1, -1, -3, -1, -1, -1, -1, -1}, 3, 5);
            Tensor attention = Tensor.ofInts(new int[] {1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0}, 3, 6);
            Tensor actionMask = attention.slice(1, 1, 6);
            assertArrayEquals(new int[] {6, 4, 5}, PpoMath.ends(actionMask, 2));
            Tensor rewards = PpoMath.computeRewards(logprobs, ref, f64(new double[] {7.5, -6.25, 3}, 3), actionMask, 2,
                    PpoMath.KL_CTL, PpoMath.CLIP_REWARD_VALUE);
            assertArrayEquals(new int[] {3, 5}, rewards.shape());
            assertClose(new double[] {-0.05, 0.1, 0, 0.05, 4.9, 0.025, 0, 0.1, -4.8, 0, 0, 0, 0, 0, 3},
                    rewards.toDoubleArray(), TOL, 0, "rewards");
            assertNull(rewards.gradFnName());
        }
    }

    /** DS-Chat zeroes the old values from ends[j] on: ends [6, 4, 5] over 5 actions keep 5, 4 and 5 values. */
    @Test
    void valuesAreZeroedFromEnds() {
        try (Scope s = Scope.open()) {
            Tensor values = f64(new double[] {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, 3, 5);
            assertArrayEquals(new double[] {1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 11, 12, 13, 14, 15},
                    PpoMath.zeroAfterEnds(values, new int[] {6, 4, 5}).toDoubleArray());
            assertArrayEquals(new double[] {1, 2, 0, 0, 0, 6, 7, 0, 0, 0, 11, 0, 0, 0, 0},
                    PpoMath.zeroAfterEnds(values, new int[] {2, 2, 1}).toDoubleArray());
        }
    }

    /**
     * gamma 1, lambda 0.95, start 1, 4 actions; rewards [9, 0.5, -0.25, 1], values [7, 0.2, 0.4, 0.1] (index 0 is the
     * prompt and is never read):
     *
     * <pre>
     * t = 3: delta = 1 + 1 * 0 - 0.1 = 0.9                  A3 = 0.9
     * t = 2: delta = -0.25 + 0.1 - 0.4 = -0.55              A2 = -0.55 + 0.95 * 0.9 = 0.305
     * t = 1: delta = 0.5 + 0.4 - 0.2 = 0.7                  A1 = 0.7 + 0.95 * 0.305 = 0.98975
     * returns = A + V[1:] = [0.98975 + 0.2, 0.305 + 0.4, 0.9 + 0.1] = [1.18975, 0.705, 1.0]
     * </pre>
     *
     * Row 2, a 2-action answer whose values and rewards were zeroed after it: rewards [0, 2, 1, 0], values
     * [0, 0.5, 1, 0]: t = 3: A = 0; t = 2: delta = 1 + 0 - 1 = 0, A = 0; t = 1: delta = 2 + 1 - 0.5 = 2.5, A = 2.5;
     * returns [3, 1, 0].
     */
    @Test
    void gaeWithGammaOneAndLambdaPointNineFive() {
        try (Scope s = Scope.open()) {
            Tensor rewards = f64(new double[] {9, 0.5, -0.25, 1, 0, 2, 1, 0}, 2, 4);
            Tensor values = f64(new double[] {7, 0.2, 0.4, 0.1, 0, 0.5, 1, 0}, 2, 4);
            PpoMath.AdvantagesAndReturns g = PpoMath.advantagesAndReturns(values, rewards, 1, PpoMath.GAMMA, PpoMath.LAM);
            assertArrayEquals(new int[] {2, 3}, g.advantages().shape());
            assertClose(new double[] {0.98975, 0.305, 0.9, 2.5, 0, 0}, g.advantages().toDoubleArray(), TOL, 0, "A");
            assertClose(new double[] {1.18975, 0.705, 1.0, 3, 1, 0}, g.returns().toDoubleArray(), TOL, 0, "returns");
            assertFalse(g.advantages().requiresGrad());
        }
    }

    /**
     * gamma 0.5, lambda 0.8 (gamma 1 cannot tell gamma's place from lambda's), start 0, rewards [1, 2], values
     * [0.5, 1]: t = 1: delta = 2 + 0.5 * 0 - 1 = 1, A1 = 1; t = 0: delta = 1 + 0.5 * 1 - 0.5 = 1,
     * A0 = 1 + 0.5 * 0.8 * 1 = 1.4; returns [1.9, 2].
     */
    @Test
    void gaeDiscountsBothTheNextValueAndTheNextAdvantage() {
        try (Scope s = Scope.open()) {
            PpoMath.AdvantagesAndReturns g = PpoMath.advantagesAndReturns(f64(new double[] {0.5, 1}, 1, 2),
                    f64(new double[] {1, 2}, 1, 2), 0, 0.5, 0.8);
            assertClose(new double[] {1.4, 1}, g.advantages().toDoubleArray(), TOL, 0, "A");
            assertClose(new double[] {1.9, 2}, g.returns().toDoubleArray(), TOL, 0, "returns");
        }
    }

    /**
     * cliprange 0.2; old logprobs 0, so ratio = exp(logprobs) where the mask is 1:
     *
     * <pre>
     *      ratio  A   -A*ratio  -A*clamp   max    d max / d logprob (= -A * ratio where the unclipped branch wins)
     * p0   1.5    2   -3        -2.4       -2.4   0      (clipped above)
     * p1   0.5   -1    0.5       0.8        0.8   0      (clipped below)
     * p2   0.5    2   -1        -1.6       -1    -1      (below the range, but the unclipped branch is larger)
     * p3   1.5   -1    1.5       1.2        1.5   1.5    (above the range, unclipped larger)
     * p4   1.1    3   -3.3      -3.3       -3.3  -3.3    (inside: a tie, gradient split, sum -3.3)
     * p5   mask 0 (logprob ln 3, A 4): ratio exp(0) = 1, contributes nothing
     * loss = (-2.4 + 0.8 - 1 + 1.5 - 3.3) / 5 = -4.4 / 5 = -0.88; gradient [0, 0, -1, 1.5, -3.3, 0] / 5
     * </pre>
     */
    @Test
    void actorLossTakesTheLargerOfTheClippedAndUnclippedObjectiveBothWays() {
        try (Scope s = Scope.open()) {
            Tensor logprobs = f64(new double[] {LN_1_5, LN_0_5, LN_0_5, LN_1_5, LN_1_1, LN_3}, 1, 6).requiresGrad(true);
            Tensor old = Tensor.zeros(DType.F64, 1, 6);
            Tensor adv = f64(new double[] {2, -1, 2, -1, 3, 4}, 1, 6);
            Tensor mask = Tensor.ofInts(new int[] {1, 1, 1, 1, 1, 0}, 1, 6);
            Tensor loss = PpoMath.actorLoss(logprobs, old, adv, mask, PpoMath.CLIPRANGE);
            assertEquals(-0.88, loss.item(), TOL);
            loss.backward();
            assertClose(new double[] {0, 0, -0.2, 0.3, -0.66, 0}, logprobs.grad().toDoubleArray(), TOL, 0, "gradient");
        }
    }

    /**
     * cliprange_value 0.2:
     *
     * <pre>
     *      v    old  vClip  R     (v-R)^2  (vClip-R)^2  max   d/dv of 0.5 * max (where (v-R)^2 wins: v - R)
     * p0   1    0.5  0.7    2     1        1.69         1.69  0     (clipped above)
     * p1   0    0.5  0.3    1     1        0.49         1     -1    (below the range, unclipped larger)
     * p2   0    0.5  0.3   -1     1        1.69         1.69  0     (clipped below)
     * p3   1    0.5  0.7    0     1        0.49         1      1    (above the range, unclipped larger)
     * p4   0.6  0.5  0.6    0.1   0.25     0.25         0.25   0.5  (inside: a tie)
     * p5   mask 0 (v 5, old 0, R 0)
     * loss = 0.5 * (1.69 + 1 + 1.69 + 1 + 0.25) / 5 = 0.5 * 5.63 / 5 = 0.563; gradient [0, -1, 0, 1, 0.5, 0] / 5
     * </pre>
     */
    @Test
    void criticLossTakesTheLargerOfTheClippedAndUnclippedErrorBothWays() {
        try (Scope s = Scope.open()) {
            Tensor v = f64(new double[] {1, 0, 0, 1, 0.6, 5}, 1, 6).requiresGrad(true);
            Tensor old = f64(new double[] {0.5, 0.5, 0.5, 0.5, 0.5, 0}, 1, 6);
            Tensor ret = f64(new double[] {2, 1, -1, 0, 0.1, 0}, 1, 6);
            Tensor mask = f64(new double[] {1, 1, 1, 1, 1, 0}, 1, 6);
            Tensor loss = PpoMath.criticLoss(v, old, ret, mask, PpoMath.CLIPRANGE_VALUE);
            assertEquals(0.563, loss.item(), TOL);
            loss.backward();
            assertClose(new double[] {0, -0.2, 0, 0.2, 0.1, 0}, v.grad().toDoubleArray(), TOL, 0, "gradient");
        }
    }

    /**
     * Actions 1..3 of two rows (start 1): row 0 logprobs [x, -1, -2, -3] vs ref [x, -1.5, -1, -3], mask [1 1 1 1]:
     * diffs 0.5, -1, 0; row 1 [x, -0.5, -0.5, -9] vs [x, -1, -1, 0], mask [1 1 1 0]: diffs 0.5, 0.5 (the third
     * masked). Per token (0.5 - 1 + 0 + 0.5 + 0.5) / 5 = 0.1; per sequence (-0.5 + 1) / 2 = 0.25.
     */
    @Test
    void klIsTheMeanLogRatioOverAnswerActions() {
        try (Scope s = Scope.open()) {
            Tensor lp = f64(new double[] {7, -1, -2, -3, 7, -0.5, -0.5, -9}, 2, 4);
            Tensor ref = f64(new double[] {0, -1.5, -1, -3, 0, -1, -1, 0}, 2, 4);
            Tensor mask = Tensor.ofInts(new int[] {1, 1, 1, 1, 1, 1, 1, 0}, 2, 4);
            PpoMath.Kl kl = PpoMath.klEstimate(lp, ref, mask, 1);
            assertEquals(0.1, kl.perToken(), TOL);
            assertEquals(0.25, kl.perSequence(), TOL);
        }
    }

    /** logits [1, 3, 2] = [[0, ln 3], [ln 2, 0], [5, 5]], ids [1, 1, 0]: t0 scores id 1, log(3/4); t1 id 0, log(2/3). */
    @Test
    void gatherLogProbsScoresEachNextToken() {
        try (Scope s = Scope.open()) {
            Tensor logits = f64(new double[] {0, LN_3, Math.log(2), 0, 5, 5}, 1, 3, 2);
            Tensor lp = PpoMath.gatherLogProbs(logits, Tensor.ofInts(new int[] {1, 1, 0}, 1, 3));
            assertArrayEquals(new int[] {1, 2}, lp.shape());
            assertClose(new double[] {Math.log(0.75), Math.log(2.0 / 3)}, lp.toDoubleArray(), TOL, 0, "logprobs");
        }
    }

    @Test
    void badShapesAndStartsAreNamed() {
        try (Scope s = Scope.open()) {
            Tensor a = Tensor.zeros(DType.F64, 2, 4), m = Tensor.ones(DType.F64, 2, 4);
            var e = assertThrows(IllegalArgumentException.class, () -> PpoMath.ends(m, 4));
            assertTrue(e.getMessage().contains("start 4"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> PpoMath.computeRewards(a, a,
                    Tensor.zeros(DType.F64, 3), m, 1, 0.1, 5));
            assertTrue(e.getMessage().contains("rewardScore"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> PpoMath.actorLoss(a, a.slice(1, 0, 3), a, m, 0.2));
            assertTrue(e.getMessage().contains("oldLogprobs"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> PpoMath.criticLoss(a, a, a, m.slice(0, 0, 1), 0.2));
            assertTrue(e.getMessage().contains("mask"), e.getMessage());
        }
    }

    // ---- against DeepSpeed-Chat in PyTorch -------------------------------------------------------------------------

    @TestFactory
    Stream<DynamicTest> matchesDsChatRunInPyTorch() {
        List<DynamicTest> tests = new ArrayList<>();
        for (JsonNode c : FIXTURE.get("ppo")) tests.add(DynamicTest.dynamicTest(c.get("name").asText(), () -> check(c)));
        return tests.stream();
    }

    private static Tensor t(JsonNode c, String field) {
        return Fixtures.tensor(c.get(field), DType.F64);
    }

    private static double[] d(JsonNode c, String field) {
        return Fixtures.doubles(c.get(field));
    }

    private static void check(JsonNode c) {
        String name = c.get("name").asText();
        int start = c.get("start").asInt();
        try (Scope s = Scope.open()) {
            Tensor seq = t(c, "seq");
            int len = seq.size(1) - 1;
            Tensor actionMask = t(c, "attentionMask").slice(1, 1, len + 1);
            Tensor logprobs = PpoMath.gatherLogProbs(t(c, "logits"), seq);
            Tensor refLogprobs = PpoMath.gatherLogProbs(t(c, "refLogits"), seq);
            assertClose(d(c, "logprobs"), logprobs.toDoubleArray(), TOL, TOL, name + " logprobs");
            assertClose(d(c, "refLogprobs"), refLogprobs.toDoubleArray(), TOL, TOL, name + " ref logprobs");

            int[] ends = PpoMath.ends(actionMask, start);
            assertArrayEquals(Fixtures.ints(c.get("ends")), ends, name + " ends");
            Tensor rewards = PpoMath.computeRewards(logprobs, refLogprobs, t(c, "rewardScore"), actionMask, start,
                    c.get("klCtl").asDouble(), c.get("clipRewardValue").asDouble());
            assertClose(d(c, "rewards"), rewards.toDoubleArray(), TOL, TOL, name + " rewards");
            Tensor oldValues = PpoMath.zeroAfterEnds(t(c, "values"), ends);
            assertClose(d(c, "oldValues"), oldValues.toDoubleArray(), TOL, TOL, name + " old values");
            PpoMath.AdvantagesAndReturns g = PpoMath.advantagesAndReturns(oldValues, rewards, start,
                    c.get("gamma").asDouble(), c.get("lam").asDouble());
            assertClose(d(c, "advantages"), g.advantages().toDoubleArray(), TOL, TOL, name + " advantages");
            assertClose(d(c, "returns"), g.returns().toDoubleArray(), TOL, TOL, name + " returns");

            Tensor mask = actionMask.slice(1, start, len);
            // actor loss through the new actor's logits, as train_rlhf computes it
            Tensor actorLogits = t(c, "actorLogits").requiresGrad(true);
            Tensor actorLogprobs = PpoMath.gatherLogProbs(actorLogits, seq);
            assertClose(d(c, "actorLogprobs"), actorLogprobs.toDoubleArray(), TOL, TOL, name + " actor logprobs");
            Tensor actorLoss = PpoMath.actorLoss(actorLogprobs.slice(1, start, len), logprobs.slice(1, start, len),
                    g.advantages(), mask, c.get("cliprange").asDouble());
            assertEquals(c.get("actorLoss").asDouble(), actorLoss.item(), TOL, name + " actor loss");
            actorLoss.backward();
            assertClose(d(c, "actorLossGradLogits"), actorLogits.grad().toDoubleArray(), TOL, 1e-10,
                    name + " d actor loss / d logits");
            // and with respect to the logprobs alone
            Tensor lpLeaf = t(c, "actorLogprobs").requiresGrad(true);
            PpoMath.actorLoss(lpLeaf.slice(1, start, len), logprobs.slice(1, start, len), g.advantages(), mask,
                    c.get("cliprange").asDouble()).backward();
            assertClose(d(c, "actorLossGradLogprobs"), lpLeaf.grad().toDoubleArray(), TOL, 1e-10,
                    name + " d actor loss / d logprobs");

            Tensor valuesFull = t(c, "newValuesFull").requiresGrad(true);
            Tensor criticLoss = PpoMath.criticLoss(valuesFull.slice(1, 0, len).slice(1, start, len),
                    oldValues.slice(1, start, len), g.returns(), mask, c.get("cliprangeValue").asDouble());
            assertEquals(c.get("criticLoss").asDouble(), criticLoss.item(), TOL, name + " critic loss");
            criticLoss.backward();
            assertClose(d(c, "criticLossGradValuesFull"), valuesFull.grad().toDoubleArray(), TOL, 1e-10,
                    name + " d critic loss / d values");

            PpoMath.Kl kl = PpoMath.klEstimate(logprobs, refLogprobs, actionMask, start);
            assertEquals(c.get("kl").get("perToken").asDouble(), kl.perToken(), TOL, name + " kl per token");
            assertEquals(c.get("kl").get("perSequence").asDouble(), kl.perSequence(), TOL, name + " kl per sequence");
        }
    }

    /** The fixture exercises what it claims: rewards clipped both ways, ratios and values beyond both clip bounds. */
    @Test
    void fixtureCoversEveryBranch() {
        JsonNode c = FIXTURE.get("ppo").get(0);
        double[] score = d(c, "rewardScore");
        assertTrue(score[0] > 5 && score[1] < -5, "reward scores above +5 and below -5");
        assertTrue(Fixtures.ints(c.get("ends"))[0] == c.get("seq").get("shape").get(1).asInt(), "a full-length answer");
        for (JsonNode p : FIXTURE.get("ppo"))
            for (String k : List.of("ratioAbove", "ratioBelow", "valueAbove", "valueBelow"))
                assertTrue(p.get("clippedCounts").get(k).asInt() > 0, p.get("name").asText() + " " + k);
    }

    /** F32 inputs (how training runs) give F32 results within float rounding of DS-Chat's float64 ones. */
    @Test
    void float32InputsGiveFloat32ResultsCloseToFloat64() {
        JsonNode c = FIXTURE.get("ppo").get(0);
        int start = c.get("start").asInt();
        try (Scope s = Scope.open()) {
            Tensor seq = t(c, "seq");
            int len = seq.size(1) - 1;
            Tensor actionMask = t(c, "attentionMask").slice(1, 1, len + 1);
            Tensor logprobs = PpoMath.gatherLogProbs(Fixtures.tensor(c.get("logits"), DType.F32), seq);
            Tensor ref = PpoMath.gatherLogProbs(Fixtures.tensor(c.get("refLogits"), DType.F32), seq);
            Tensor rewards = PpoMath.computeRewards(logprobs, ref, Fixtures.tensor(c.get("rewardScore"), DType.F32),
                    actionMask, start, PpoMath.KL_CTL, PpoMath.CLIP_REWARD_VALUE);
            assertEquals(DType.F32, rewards.dtype());
            assertClose(d(c, "rewards"), rewards.toDoubleArray(), 1e-6, 1e-5, "f32 rewards");
            Tensor oldValues = PpoMath.zeroAfterEnds(Fixtures.tensor(c.get("values"), DType.F32),
                    PpoMath.ends(actionMask, start));
            PpoMath.AdvantagesAndReturns g = PpoMath.advantagesAndReturns(oldValues, rewards, start, PpoMath.GAMMA,
                    PpoMath.LAM);
            assertEquals(DType.F32, g.returns().dtype());
            assertClose(d(c, "returns"), g.returns().toDoubleArray(), 1e-5, 1e-5, "f32 returns");
            Tensor mask = actionMask.slice(1, start, len);
            Tensor actorLp = PpoMath.gatherLogProbs(Fixtures.tensor(c.get("actorLogits"), DType.F32), seq);
            Tensor actorLoss = PpoMath.actorLoss(actorLp.slice(1, start, len), logprobs.slice(1, start, len),
                    g.advantages(), mask, PpoMath.CLIPRANGE);
            assertEquals(c.get("actorLoss").asDouble(), actorLoss.item(), 1e-5);
            Tensor criticLoss = PpoMath.criticLoss(Fixtures.tensor(c.get("newValuesFull"), DType.F32).slice(1, start, len),
                    oldValues.slice(1, start, len), g.returns(), mask, PpoMath.CLIPRANGE_VALUE);
            assertEquals(c.get("criticLoss").asDouble(), criticLoss.item(), 1e-5);
        }
    }

    // ---- central differences -----------------------------------------------------------------------------------------

    /** Log-ratios drawn away from ln 0.8 and ln 1.2, advantages away from 0, so no branch changes within h. */
    @Test
    void actorLossGradientMatchesCentralDifferences() {
        Random rnd = new Random(11);
        int b = 3, n = 7;
        double[] lp = new double[b * n], old = new double[b * n], adv = new double[b * n], mask = new double[b * n];
        for (int i = 0; i < b * n; i++) {
            old[i] = -1 - rnd.nextDouble() * 3;
            double r;
            do r = 0.5 + rnd.nextDouble(); while (Math.abs(r - 0.8) < 1e-3 || Math.abs(r - 1.2) < 1e-3);
            lp[i] = old[i] + Math.log(r);
            do adv[i] = rnd.nextGaussian(); while (Math.abs(adv[i]) < 1e-3);
            mask[i] = i % n < n - i / n ? 1 : 0; // rows of 7, 6 and 5 answer actions
        }
        try (Scope s = Scope.open()) {
            Tensor x = f64(lp, b, n).requiresGrad(true);
            Tensor o = f64(old, b, n), a = f64(adv, b, n), m = f64(mask, b, n);
            GradCheck.Result r = GradCheck.check(in -> PpoMath.actorLoss(in.getFirst(), o, a, m, 0.2), List.of(x),
                    1e-6, 1e-8, 1e-6, 100, 3);
            assertTrue(r.passed(), r.worst());
            assertEquals(b * n, r.checked());
        }
    }

    /** New values drawn away from old +- 0.2 and from the point where both squared errors tie. */
    @Test
    void criticLossGradientMatchesCentralDifferences() {
        Random rnd = new Random(12);
        int b = 3, n = 7;
        double[] v = new double[b * n], old = new double[b * n], ret = new double[b * n], mask = new double[b * n];
        for (int i = 0; i < b * n; i++) {
            old[i] = rnd.nextGaussian();
            ret[i] = rnd.nextGaussian();
            double dv, clip;
            do {
                dv = (rnd.nextDouble() - 0.5) * 0.8;
                clip = old[i] + Math.clamp(dv, -0.2, 0.2);
            } while (Math.abs(Math.abs(dv) - 0.2) < 1e-3
                    || (Math.abs(dv) > 0.2 && Math.abs(Math.abs(old[i] + dv - ret[i]) - Math.abs(clip - ret[i])) < 1e-3));
            v[i] = old[i] + dv;
            mask[i] = i % n < n - i / n ? 1 : 0;
        }
        try (Scope s = Scope.open()) {
            Tensor x = f64(v, b, n).requiresGrad(true);
            Tensor o = f64(old, b, n), rt = f64(ret, b, n), m = f64(mask, b, n);
            GradCheck.Result r = GradCheck.check(in -> PpoMath.criticLoss(in.getFirst(), o, rt, m, 0.2), List.of(x),
                    1e-6, 1e-8, 1e-6, 100, 4);
            assertTrue(r.passed(), r.worst());
        }
    }

    @Test
    void gatherLogProbsGradientMatchesCentralDifferences() {
        try (Scope s = Scope.open()) {
            Tensor logits = Tensor.randn(DType.F64, 5, 0, 2, 2, 4, 5).requiresGrad(true);
            Tensor ids = Tensor.ofInts(new int[] {1, 4, 0, 2, 3, 3, 1, 0}, 2, 4);
            GradCheck.Result r = GradCheck.check(in -> PpoMath.gatherLogProbs(in.getFirst(), ids), List.of(logits),
                    1e-6, 1e-8, 1e-6, 100, 6);
            assertTrue(r.passed(), r.worst());
        }
    }
}
