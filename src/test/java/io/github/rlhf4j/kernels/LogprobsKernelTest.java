package io.github.rlhf4j.kernels;

import static io.github.rlhf4j.kernels.KernelCheck.random;
import static io.github.rlhf4j.kernels.KernelCheck.randomInts;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.runtime.NativeException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * kernels/softmax.cu's fused classifier (token log-probabilities, forward and backward) through the ABI on the
 * emulated CUDA backend against the CPU backend: vocabularies of 1, 7, 1000 and 5003 (odd, so every row starts on
 * another 2-byte phase and the 16-byte body is peeled; several vectors per thread), logits and dlogits row strides
 * wider than V (logits[:, :-1] views), ignored rows, rows whose gradient is 0, lse absent, accumulate 0 and 1, and a
 * bad target, which must fail naming the row before anything is written.
 */
class LogprobsKernelTest {

    /** A check of one case; LogprobsKernelOnGpuTest runs the same cases on a real GPU. */
    KernelCheck check(DType t) {
        return KernelCheck.of(t);
    }

    /** The device under test, for direct calls. */
    Device target() {
        return Emulated.get().device();
    }
    private static final int IGNORE = -100;
    /** rows, V, logits row stride, dlogits row stride */
    private static final int[][] SHAPES = {{1, 1, 1, 1}, {3, 7, 10, 7}, {37, 1000, 1000, 1003}, {5, 5003, 5005, 5003}};

    /** Targets in [0, V), with every 4th row ignored. */
    private static int[] targets(long seed, int rows, int V) {
        int[] t = randomInts(seed, rows, 0, V);
        for (int r = 1; r < rows; r += 4) t[r] = IGNORE;
        return t;
    }

    /** rows x stride logits; the gap past V holds huge values, which a kernel that reads it would notice. */
    private static float[] logits(long seed, int rows, int V, int stride) {
        float[] v = random(seed, rows * stride, -8, 8);
        for (int r = 0; r < rows; r++)
            for (int c = V; c < stride; c++) v[r * stride + c] = 1e30f;
        return v;
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16"})
    void logprobsForwardMatchesCpu(DType dt) {
        for (int[] sh : SHAPES) {
            int rows = sh[0], V = sh[1], ls = sh[2];
            for (boolean withLse : new boolean[] {true, false}) {
                try (KernelCheck k = check(dt)) {
                    var lg = k.input("logits", logits(rows * 13L + V, rows, V, ls));
                    var tg = k.ints("targets", targets(rows + V, rows, V));
                    var lp = k.output("logprobs", rows);
                    var lse = withLse ? k.outputF32("lse", rows) : null;
                    String what = rows + "x" + V + " stride " + ls + (withLse ? " lse" : "");
                    var res = k.run("rlhf4j_logprobs_forward", what,
                            c -> c.abi.logprobsForward(c.s, c.dtype, rows, V, c.p(lg), ls, c.p(tg), IGNORE, c.p(lp),
                                    lse == null ? 0 : c.p(lse)));
                    res.close(lp);
                    if (withLse) res.close(lse, KernelCheck.F32_ATOL, KernelCheck.F32_RTOL);
                }
            }
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16"})
    void logprobsBackwardMatchesCpu(DType dt) {
        for (int[] sh : SHAPES) {
            int rows = sh[0], V = sh[1], ls = sh[2], ds = sh[3];
            for (int acc = 0; acc <= 1; acc++) {
                int ac = acc;
                try (KernelCheck k = check(dt)) {
                    var lg = k.input("logits", logits(rows * 3L + V, rows, V, ls));
                    double[] lv = lg.values();
                    int[] t = targets(rows * 5L + V, rows, V);
                    float[] lseValues = new float[rows];
                    for (int r = 0; r < rows; r++) {
                        double m = Double.NEGATIVE_INFINITY, s = 0;
                        for (int c = 0; c < V; c++) m = Math.max(m, lv[r * ls + c]);
                        for (int c = 0; c < V; c++) s += Math.exp(lv[r * ls + c] - m);
                        lseValues[r] = t[r] == IGNORE ? 0 : (float) (m + Math.log(s));
                    }
                    var tg = k.ints("targets", t);
                    var lse = k.inputF32("lse", lseValues);
                    float[] g = random(rows * 7L, rows, -2, 2);
                    if (rows > 2) g[2] = 0; // a masked row: only zeroed (or left alone when accumulating)
                    var dlp = k.input("dlogprobs", g);
                    long n = (long) rows * ds;
                    var dl = ac == 1 ? k.inout("dlogits", random(19, (int) n, -1, 1)) : k.output("dlogits", n);
                    k.run("rlhf4j_logprobs_backward", rows + "x" + V + " strides " + ls + "/" + ds
                                    + (ac == 1 ? " accumulate" : ""),
                            c -> c.abi.logprobsBackward(c.s, c.dtype, rows, V, c.p(lg), ls, c.p(tg), IGNORE,
                                    c.p(lse), c.p(dlp), c.p(dl), ds, ac))
                            .close(dl);
                }
            }
        }
    }

    /** The ignore_index may be a valid token id: those rows are ignored, not gathered. */
    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16"})
    void ignoreIndexInsideTheVocabularyIgnoresRows(DType dt) {
        int rows = 9, V = 6;
        try (KernelCheck k = check(dt)) {
            var lg = k.input("logits", random(41, rows * V, -3, 3));
            var tg = k.ints("targets", new int[] {0, 1, 2, 3, 4, 5, 0, 2, 2});
            var lp = k.output("logprobs", rows);
            var lse = k.outputF32("lse", rows);
            var res = k.run("rlhf4j_logprobs_forward", "ignore_index 2",
                    c -> c.abi.logprobsForward(c.s, c.dtype, rows, V, c.p(lg), V, c.p(tg), 2, c.p(lp), c.p(lse)));
            res.close(lp).close(lse, KernelCheck.F32_ATOL, KernelCheck.F32_RTOL);
            double[] d = res.device(lp);
            assertEquals(0.0, d[2]);
            assertEquals(0.0, d[8]);
            assertTrue(d[0] < 0, "a gathered row has a negative log-probability");
        }
    }

    /** A target outside [0, V) fails with the CPU backend's message, and neither output is written. */
    @Test
    void badTargetFailsNamingTheRowBeforeWriting() {
        int rows = 5, V = 4;
        int[] t = {0, IGNORE, 3, 4, -1};
        Device cpu = Device.cpu(), emu = target();
        String cpuMessage = forwardFailure(cpu, rows, V, t).getMessage();
        NativeException e = forwardFailure(emu, rows, V, t);
        assertEquals(NativeException.Status.INVALID_ARGUMENT, e.status());
        assertTrue(e.getMessage().contains("rlhf4j_logprobs_forward: targets[3] = 4 is outside [0, V = 4) and is not "
                + "ignore_index (-100)"), e.getMessage());
        assertEquals(cpuMessage.substring(cpuMessage.indexOf("): ")),
                e.getMessage().substring(e.getMessage().indexOf("): ")));
    }

    private static NativeException forwardFailure(Device d, int rows, int V, int[] t) {
        var abi = d.abi();
        long logits = abi.malloc(d.handle(), 4L * rows * V), tg = abi.malloc(d.handle(), 4L * rows);
        long lp = abi.malloc(d.handle(), 4L * rows), lse = abi.malloc(d.handle(), 4L * rows);
        long dl = abi.malloc(d.handle(), 4L * rows * V), dlp = abi.malloc(d.handle(), 4L * rows);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment h = a.allocate(4L * rows * V, 16);
            abi.memcpy(d.stream(), logits, h.fill((byte) 0).address(), 4L * rows * V, 0);
            abi.memcpy(d.stream(), dlp, h.address(), 4L * rows, 0);
            abi.memcpy(d.stream(), tg, a.allocateFrom(ValueLayout.JAVA_INT, t).address(), 4L * rows, 0);
            MemorySegment poison = a.allocate(4L * rows * V, 16).fill((byte) 0xFF);
            for (long p : new long[] {lp, lse}) abi.memcpy(d.stream(), p, poison.address(), 4L * rows, 0);
            abi.memcpy(d.stream(), dl, poison.address(), 4L * rows * V, 0);
            d.synchronize();
            NativeException e = assertThrows(NativeException.class,
                    () -> abi.logprobsForward(d.stream(), DType.F32.code, rows, V, logits, V, tg, IGNORE, lp, lse));
            NativeException eb = assertThrows(NativeException.class, () -> abi.logprobsBackward(d.stream(),
                    DType.F32.code, rows, V, logits, V, tg, IGNORE, lse, dlp, dl, V, 0));
            assertTrue(eb.getMessage().contains("rlhf4j_logprobs_backward: targets[3] = 4"), eb.getMessage());
            d.synchronize();
            for (long p : new long[] {lp, lse, dl}) {
                byte[] out = KernelCheck.download(d, p, p == dl ? 4L * rows * V : 4L * rows);
                for (byte b : out) assertEquals((byte) 0xFF, b, "an output was written before the target check");
            }
            return e;
        } finally {
            for (long p : new long[] {logits, tg, lp, lse, dl, dlp}) abi.free(d.handle(), p);
        }
    }
}
