package io.github.rlhf4j.model;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.optim.AdamW;
import io.github.rlhf4j.optim.GradClip;
import io.github.rlhf4j.optim.LrSchedule;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.tensor.Autograd;
import io.github.rlhf4j.tensor.Functional;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import java.util.Arrays;
import java.util.HashSet;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * End to end: a GPT-2 of a few hundred thousand parameters, trained from scratch on the CPU with AdamW, learns to
 * reverse a sequence of 6 to 8 random digits, a task that needs attention: each answer digit must be read from the
 * prompt position mirrored around the separator, which moves with the length. Rows are
 * {@code x1 .. xL SEP xL .. x1 PAD..}; the loss is the cross-entropy of the answer tokens only (prompt and padding
 * targets are ignore_index -100), so its uniform baseline is ln 10. Held-out prompts, checked to be absent from the
 * training data, are then answered by greedy autoregressive decoding.
 */
class TinyGptLearnsTest {
    static final int DIGITS = 10, SEP = 10, PAD = 11, VOCAB = 12, MIN_LEN = 6, MAX_LEN = 8, T = 2 * MAX_LEN;
    /** 3 layers, width 96, 4 heads: 338k parameters. */
    static final int N_EMBD = 96, N_LAYER = 3, N_HEAD = 4;
    /**
     * 600 steps of 16 fresh random sequences, AdamW lr 3e-3 (betas 0.9, 0.95, weight decay 0.01), 30 warm-up steps
     * then cosine decay, gradients clipped at norm 1. With these, seeds 1 to 14 all reached a final loss below 0.007
     * and at least 594 of 600 held-out sequences exact (13 of them 600); 400 steps, 2 layers, or betas (0.9, 0.999)
     * each left some seeds short of 95%.
     */
    static final int STEPS = 600, BATCH = 16, WARMUP = 30, HELD_OUT = 600;
    static final double LR = 3e-3, BETA2 = 0.95, WEIGHT_DECAY = 0.01, MAX_GRAD_NORM = 1.0;
    static final long SEED = 1;

    @Test
    void tinyGptLearnsToReverseDigitsAndGeneralisesToUnseenSequences() {
        long t0 = System.nanoTime(), cpu0 = processCpuNanos();
        Random rng = new Random(SEED);
        CausalLM model = CausalLM.of(Gpt2Config.tiny(VOCAB, T, N_EMBD, N_LAYER, N_HEAD));
        Set<Long> seen = new HashSet<>();
        double[] losses = new double[STEPS];
        LrSchedule schedule = LrSchedule.cosine(WARMUP, STEPS);
        try (ParameterStore store = ParameterStore.allocate(model, Device.cpu(), SEED);
             AdamW opt = AdamW.forStore(store, new AdamW.Config(LR, 0.9, BETA2, 1e-8, WEIGHT_DECAY))) {
            for (int step = 0; step < STEPS; step++) {
                int[] ids = new int[BATCH * T], targets = new int[BATCH * T];
                for (int b = 0; b < BATCH; b++) {
                    int[] x = randomDigits(rng);
                    seen.add(key(x));
                    fill(x, ids, targets, b);
                }
                try (Scope s = Scope.open()) {
                    store.zeroGrad();
                    Tensor loss = Functional.crossEntropy(model.forward(Tensor.ofInts(ids, BATCH, T), null, null, null),
                            Tensor.ofInts(targets, BATCH, T), -100);
                    loss.backward();
                    double clip = GradClip.coefficient(GradClip.globalNorm(store.grad()), MAX_GRAD_NORM);
                    opt.step(schedule.lr(LR, step), clip);
                    losses[step] = loss.item();
                }
                if (step % 50 == 0 || step == STEPS - 1)
                    System.out.printf("TinyGptLearnsTest step %d loss %.4f%n", step, losses[step]);
            }
            long trained = System.nanoTime();

            Random testRng = new Random(SEED + 1_000_003);
            int correct = 0, digitsCorrect = 0, digits = 0;
            for (int len = MIN_LEN; len <= MAX_LEN; len++) {
                int[][] heldOut = new int[HELD_OUT / (MAX_LEN - MIN_LEN + 1)][];
                for (int i = 0; i < heldOut.length; i++) {
                    int[] x;
                    do x = randomDigits(testRng, len); while (seen.contains(key(x)));
                    heldOut[i] = x;
                }
                int[][] decoded = greedyDecode(model, heldOut, len);
                for (int i = 0; i < heldOut.length; i++) {
                    boolean all = true;
                    for (int j = 0; j < len; j++) {
                        boolean ok = decoded[i][j] == heldOut[i][len - 1 - j];
                        all &= ok;
                        if (ok) digitsCorrect++;
                    }
                    digits += len;
                    if (all) correct++;
                }
            }
            double finalLoss = 0;
            int tail = Math.min(10, STEPS);
            for (int i = STEPS - tail; i < STEPS; i++) finalLoss += losses[i] / tail;
            long done = System.nanoTime();
            System.out.printf("TinyGptLearnsTest: %d parameters, %d steps x %d sequences (%d distinct), loss %.4f -> "
                            + "%.2e (mean of the last %d steps; uniform ln 10 = %.4f), held-out %d/%d sequences exact "
                            + "(%.2f%% of digits); train %.1f s, eval %.2f s, total %.1f s wall, %.1f s CPU (%d cores)%n",
                    model.parameterCount(), STEPS, BATCH, seen.size(), losses[0], finalLoss, tail, Math.log(DIGITS),
                    correct, HELD_OUT, 100.0 * digitsCorrect / digits, (trained - t0) / 1e9, (done - trained) / 1e9,
                    (done - t0) / 1e9, (processCpuNanos() - cpu0) / 1e9, Runtime.getRuntime().availableProcessors());
            assertTrue(losses[0] > 0.8 * Math.log(DIGITS), "training starts near the uniform baseline");
            assertTrue(finalLoss < 0.1 * Math.log(DIGITS),
                    String.format("final training loss %.4f should be < 10%% of ln 10", finalLoss));
            assertTrue(correct >= 0.95 * HELD_OUT,
                    correct + " of " + HELD_OUT + " held-out sequences reversed exactly; expected >= 95%");
        }
    }

    /** Greedy autoregressive decoding of the answer after each prompt {@code x SEP} of length {@code len}. */
    private static int[][] greedyDecode(CausalLM model, int[][] prompts, int len) {
        int n = prompts.length;
        int[][] out = new int[n][len];
        model.train(false);
        try (Autograd.NoGrad ng = Autograd.noGrad(); Scope s = Scope.open()) {
            for (int j = 0; j < len; j++) {
                int t = len + 1 + j; // x, SEP, the j answer tokens decoded so far
                int[] ids = new int[n * t];
                for (int i = 0; i < n; i++) {
                    System.arraycopy(prompts[i], 0, ids, i * t, len);
                    ids[i * t + len] = SEP;
                    System.arraycopy(out[i], 0, ids, i * t + len + 1, j);
                }
                float[] logits = model.forward(Tensor.ofInts(ids, n, t), null, null, null).toFloatArray();
                for (int i = 0; i < n; i++) {
                    int base = (i * t + t - 1) * VOCAB, best = 0;
                    assertFalse(Float.isNaN(logits[base]), "NaN logits");
                    for (int v = 1; v < VOCAB; v++)
                        if (logits[base + v] > logits[base + best]) best = v;
                    out[i][j] = best;
                }
            }
        }
        model.train(true);
        return out;
    }

    private static int[] randomDigits(Random rng) {
        return randomDigits(rng, MIN_LEN + rng.nextInt(MAX_LEN - MIN_LEN + 1));
    }

    private static int[] randomDigits(Random rng, int len) {
        int[] x = new int[len];
        for (int i = 0; i < len; i++) x[i] = rng.nextInt(DIGITS);
        return x;
    }

    /** A key unique to the digits and their count. */
    private static long key(int[] x) {
        long k = x.length;
        for (int d : x) k = k * DIGITS + d;
        return k;
    }

    /**
     * Row b of the batch: ids = x SEP reverse(x) without its last digit, then PAD; targets = -100 over the prompt and
     * the padding, reverse(x) at the positions that predict it (SEP onwards).
     */
    private static void fill(int[] x, int[] ids, int[] targets, int b) {
        int o = b * T, len = x.length;
        Arrays.fill(ids, o, o + T, PAD);
        Arrays.fill(targets, o, o + T, -100);
        System.arraycopy(x, 0, ids, o, len);
        ids[o + len] = SEP;
        for (int j = 0; j < len - 1; j++) ids[o + len + 1 + j] = x[len - 1 - j];
        for (int j = 0; j < len; j++) targets[o + len + j] = x[len - 1 - j];
    }

    private static long processCpuNanos() {
        return ((com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory
                .getOperatingSystemMXBean()).getProcessCpuTime();
    }
}
