package io.github.rlhf4j.runtime;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * Results with one worker thread against two, on sizes past each kernel's threshold for going parallel. Bitwise
 * equal where the kernels' authors promise independence of the thread count (gemm.c, embedding.c, layernorm.c's y
 * and dx, softmax.c's logprobs, attention.c's out / lse and, with at least 4 (batch, kv head) groups per thread,
 * every gradient; elementwise.c's reductions; rlhf4j.h's random numbers). Where a sum is split by thread the
 * results are close instead: layernorm's parameter gradients within the rounding bound of their row sums, and
 * attention's dq with key chunks and softmax (which makes no promise) within 1e-6 of the largest magnitude.
 *
 * <p>Device.cpu() is shared by every test of the JVM: each comparison restores the default thread count in a
 * finally block.
 */
class ThreadCountTest {
    /** Runs the op (inputs made from a fixed seed inside it) and returns its named outputs. */
    interface Op {
        List<Out> run(NativeMemory mem, SplittableRandom r);
    }

    /**
     * One output: bitwise when tol is BITWISE (null), else |1 thread - 2 threads| <= tol[j] for element j, or, for a
     * tolerance given as a number, within that fraction of the largest magnitude of the output.
     */
    record Out(String name, double[] values, double[] tol) {
        Out(String name, double[] values, double relative) {
            this(name, values, relativeTo(values, relative));
        }
    }

    private static final double[] BITWISE = null;

    private static double[] relativeTo(double[] v, double relative) {
        double max = 0;
        for (double x : v) max = Math.max(max, Math.abs(x));
        double[] t = new double[v.length];
        java.util.Arrays.fill(t, relative * max);
        return t;
    }

    private static List<Out> runWith(int threads, long seed, Op op) {
        Device.cpu().setNumThreads(threads);
        try (NativeMemory mem = new NativeMemory()) {
            return op.run(mem, new SplittableRandom(seed));
        }
    }

    /** Compares the op's outputs with 1 and 2 threads. */
    private static void compare(String what, Op op) {
        List<Out> one, two;
        try {
            one = runWith(1, 17, op);
            two = runWith(2, 17, op);
        } finally {
            Device.cpu().setNumThreads(0);
        }
        for (int i = 0; i < one.size(); i++) {
            Out a = one.get(i), b = two.get(i);
            double[] x = a.values(), y = b.values();
            double max = 0;
            for (double v : x) max = Math.max(max, Math.abs(v));
            assertTrue(max > 0, what + " " + a.name() + ": all zero, nothing compared");
            double[] tol = a.tol();
            double worst = 0, worstTol = 0;
            for (int j = 0; j < x.length; j++) {
                if (tol != BITWISE && Math.abs(x[j] - y[j]) / tol[j] >= worst) {
                    worst = Math.abs(x[j] - y[j]) / tol[j];
                    worstTol = tol[j];
                }
                boolean ok = tol == BITWISE ? Double.doubleToRawLongBits(x[j]) == Double.doubleToRawLongBits(y[j])
                        : Math.abs(x[j] - y[j]) <= tol[j];
                if (!ok)
                    fail(String.format("%s %s element %d: %.17g with 1 thread, %.17g with 2%s", what, a.name(), j,
                            x[j], y[j], tol == BITWISE ? " (must be bitwise equal)" : " (beyond " + tol[j] + ")"));
            }
            if (tol != BITWISE)
                System.out.printf("ThreadCountTest %s %s: largest |1 thread - 2 threads| is %.3g of its tolerance %.3g%n",
                        what, a.name(), worst, worstTol);
        }
    }

    private static double[] randoms(SplittableRandom r, int n, double lo, double hi) {
        double[] v = new double[n];
        for (int i = 0; i < n; i++) v[i] = r.nextDouble(lo, hi);
        return v;
    }

    private static MemorySegment buf(NativeMemory mem, DType t, double[] v) {
        return GemmTest.upload(mem, t, v);
    }

    private static double[] get(MemorySegment m, DType t) {
        return GemmTest.download(m, t);
    }

    private static final DType[] FLOATS = {DType.F32, DType.F64};

    // ---- ops ------------------------------------------------------------------------------------------------------

    @Test
    void gemmIsBitwiseIndependentOfTheThreadCount() {
        // {M, N, K, batch}: packed panels (several K blocks), direct B (small M), dot products (M <= 8, B^T), and a
        // batch run one entry per thread.
        int[][] shapes = {{300, 200, 600, 1}, {20, 3000, 64, 1}, {4, 2000, 300, 1}, {64, 64, 64, 8}};
        for (int[] s : shapes)
            for (DType ab : new DType[] {DType.F32, DType.F64, DType.BF16})
                for (int ta = 0; ta < 2; ta++)
                    for (int tb = 0; tb < 2; tb++) {
                        final int fta = ta, ftb = tb;
                        DType c = ab == DType.F64 ? DType.F64 : DType.F32;
                        compare("gemm " + ab + " " + java.util.Arrays.toString(s) + " ta " + ta + " tb " + tb, (mem, r) -> {
                            int m = s[0], n = s[1], k = s[2], batch = s[3];
                            MemorySegment a = buf(mem, ab, randoms(r, m * k * batch, -1, 1));
                            MemorySegment b = buf(mem, ab, randoms(r, k * n * batch, -1, 1));
                            MemorySegment cc = buf(mem, c, randoms(r, m * n * batch, -1, 1));
                            MemorySegment bias = buf(mem, c, randoms(r, n, -1, 1));
                            mem.abi.gemm(mem.s, fta, ftb, m, n, k, 0.75, a.address(), fta != 0 ? m : k, (long) m * k,
                                    b.address(), ftb != 0 ? k : n, (long) k * n, ab.code, 0.5, cc.address(), n,
                                    (long) m * n, c.code, batch, bias.address());
                            return List.of(new Out("C", get(cc, c), BITWISE));
                        });
                    }
    }

    /**
     * Two summation orders of the same rows differ by at most twice the recursive-summation bound,
     * 2 (rows - 1) u Σ|terms| (Higham, Accuracy and Stability of Numerical Algorithms, 4.2): the tolerance of a
     * parameter gradient, per column, from terms dy xhat (dweight) or dy (dbias) recomputed here in double.
     */
    private static double[][] normGradientBounds(DType t, boolean rms, int rows, int dim, double[] x, double[] dy) {
        double u = t == DType.F64 ? 0x1p-53 : 0x1p-24;
        double[] bw = new double[dim], bb = new double[dim];
        for (int r = 0; r < rows; r++) {
            double mean = 0, sq = 0;
            for (int c = 0; c < dim; c++) mean += x[r * dim + c];
            mean = rms ? 0 : mean / dim;
            for (int c = 0; c < dim; c++) sq += (x[r * dim + c] - mean) * (x[r * dim + c] - mean);
            double rstd = 1 / Math.sqrt(sq / dim + 1e-5);
            for (int c = 0; c < dim; c++) {
                bw[c] += Math.abs(dy[r * dim + c] * (x[r * dim + c] - mean) * rstd);
                bb[c] += Math.abs(dy[r * dim + c]);
            }
        }
        for (int c = 0; c < dim; c++) {
            bw[c] *= 2 * (rows - 1) * u;
            bb[c] *= 2 * (rows - 1) * u;
        }
        return new double[][] {bw, bb};
    }

    @Test
    void layerNormAndRmsNormOutputsAndInputGradientsAreBitwiseParameterGradientsClose() {
        int rows = 512, dim = 384;
        for (DType t : FLOATS)
            for (boolean rms : new boolean[] {false, true})
                compare((rms ? "rmsnorm " : "layernorm ") + t, (mem, r) -> {
                    double[] xv = randoms(r, rows * dim, -2, 3), dyv = randoms(r, rows * dim, -1, 1);
                    MemorySegment x = buf(mem, t, xv), w = buf(mem, t, randoms(r, dim, 0.5, 1.5));
                    MemorySegment b = buf(mem, t, randoms(r, dim, -1, 1)), dy = buf(mem, t, dyv);
                    double[][] bound = normGradientBounds(t, rms, rows, dim, GemmTest.download(x, t), GemmTest.download(dy, t));
                    MemorySegment y = mem.alloc((long) rows * dim * t.size), mean = mem.alloc((long) rows * t.size);
                    MemorySegment rstd = mem.alloc((long) rows * t.size), dx = mem.alloc((long) rows * dim * t.size);
                    MemorySegment dw = buf(mem, t, new double[dim]), db = buf(mem, t, new double[dim]);
                    List<Out> out = new ArrayList<>();
                    if (rms) {
                        mem.abi.rmsnormForward(mem.s, t.code, rows, dim, x.address(), w.address(), 1e-5, y.address(),
                                rstd.address());
                        mem.abi.rmsnormBackward(mem.s, t.code, rows, dim, x.address(), w.address(), rstd.address(),
                                dy.address(), dx.address(), dw.address(), 0);
                    } else {
                        mem.abi.layernormForward(mem.s, t.code, rows, dim, x.address(), w.address(), b.address(), 1e-5,
                                y.address(), mean.address(), rstd.address());
                        mem.abi.layernormBackward(mem.s, t.code, rows, dim, x.address(), w.address(), mean.address(),
                                rstd.address(), dy.address(), dx.address(), dw.address(), db.address(), 0);
                        out.add(new Out("mean", get(mean, t), BITWISE));
                        out.add(new Out("dbias", get(db, t), bound[1]));
                    }
                    out.add(new Out("y", get(y, t), BITWISE));
                    out.add(new Out("rstd", get(rstd, t), BITWISE));
                    out.add(new Out("dx", get(dx, t), BITWISE));
                    out.add(new Out("dweight", get(dw, t), bound[0]));
                    return out;
                });
    }

    private static Op attention(DType t, int batch, int tq, int tk, int hq, int hkv, int d, boolean masked,
                                boolean dqBitwise) {
        return (mem, r) -> {
            MemorySegment q = buf(mem, t, randoms(r, batch * tq * hq * d, -1, 1));
            MemorySegment k = buf(mem, t, randoms(r, batch * tk * hkv * d, -1, 1));
            MemorySegment v = buf(mem, t, randoms(r, batch * tk * hkv * d, -1, 1));
            MemorySegment dout = buf(mem, t, randoms(r, batch * tq * hq * d, -1, 1));
            int[] maskv = new int[batch * tk];
            for (int i = 0; i < maskv.length; i++) maskv[i] = i % tk < 3 && i / tk == 0 ? 0 : 1; // left padding
            MemorySegment mask = mem.i32(maskv);
            MemorySegment out = mem.alloc((long) batch * tq * hq * d * t.size), lse = mem.alloc((long) batch * hq * tq * t.size);
            MemorySegment dq = mem.alloc((long) batch * tq * hq * d * t.size);
            MemorySegment dk = mem.alloc((long) batch * tk * hkv * d * t.size), dv = mem.alloc((long) batch * tk * hkv * d * t.size);
            double scale = 1 / Math.sqrt(d);
            long maskp = masked ? mask.address() : 0;
            mem.abi.attentionForward(mem.s, t.code, batch, tq, tk, hq, hkv, d, q.address(), (long) hq * d, k.address(),
                    (long) hkv * d, v.address(), (long) hkv * d, maskp, scale, 1, 0, out.address(), lse.address());
            mem.abi.attentionBackward(mem.s, t.code, batch, tq, tk, hq, hkv, d, q.address(), (long) hq * d, k.address(),
                    (long) hkv * d, v.address(), (long) hkv * d, maskp, scale, 1, 0, out.address(), dout.address(),
                    lse.address(), dq.address(), (long) hq * d, dk.address(), (long) hkv * d, dv.address(),
                    (long) hkv * d, 0);
            return List.of(new Out("out", get(out, t), BITWISE), new Out("lse", get(lse, t), BITWISE),
                    new Out("dk", get(dk, t), BITWISE), new Out("dv", get(dv, t), BITWISE),
                    dqBitwise ? new Out("dq", get(dq, t), BITWISE) : new Out("dq", get(dq, t), 1e-6));
        };
    }

    @Test
    void attentionIsBitwiseWithFourGroupsPerThreadAndDqCloseWithKeyChunks() {
        for (DType t : FLOATS) {
            // B * Hkv = 8 groups >= 4 x 2 threads: one task per group, every output bitwise
            compare("attention MHA " + t, attention(t, 2, 96, 96, 4, 4, 32, true, true));
            // GQA with 2 groups: keys are cut into chunks when threaded, so dq is summed from partials
            compare("attention GQA " + t, attention(t, 1, 64, 256, 8, 2, 16, false, false));
        }
    }

    @Test
    void logprobsAreBitwiseIndependentOfTheThreadCount() {
        int rows = 64, vocab = 5000;
        for (DType t : FLOATS)
            compare("logprobs " + t, (mem, r) -> {
                MemorySegment logits = buf(mem, t, randoms(r, rows * vocab, -8, 8));
                int[] tg = new int[rows];
                for (int i = 0; i < rows; i++) tg[i] = i % 7 == 3 ? -100 : r.nextInt(vocab);
                MemorySegment targets = mem.i32(tg), g = buf(mem, t, randoms(r, rows, -1, 1));
                MemorySegment lp = mem.alloc((long) rows * t.size), lse = mem.alloc((long) rows * t.size);
                MemorySegment dl = mem.alloc((long) rows * vocab * t.size);
                mem.abi.logprobsForward(mem.s, t.code, rows, vocab, logits.address(), vocab, targets.address(), -100,
                        lp.address(), lse.address());
                mem.abi.logprobsBackward(mem.s, t.code, rows, vocab, logits.address(), vocab, targets.address(), -100,
                        lse.address(), g.address(), dl.address(), vocab, 0);
                return List.of(new Out("logprobs", get(lp, t), BITWISE), new Out("lse", get(lse, t), BITWISE),
                        new Out("dlogits", get(dl, t), BITWISE));
            });
    }

    @Test
    void embeddingBackwardIsBitwiseIndependentOfTheThreadCount() {
        // dim 256: threads own column blocks; dim 16 (one column block): threads own ranges of the vocabulary.
        for (int dim : new int[] {256, 16})
            for (DType t : FLOATS)
                compare("embedding backward dim " + dim + " " + t, (mem, r) -> {
                    int n = 4096, vocab = 300;
                    int[] idv = new int[n];
                    for (int i = 0; i < n; i++) idv[i] = r.nextInt(vocab); // many repeats
                    MemorySegment ids = mem.i32(idv), dout = buf(mem, t, randoms(r, n * dim, -1, 1));
                    MemorySegment dw = buf(mem, t, randoms(r, vocab * dim, -1, 1));
                    mem.abi.embeddingBackward(mem.s, t.code, n, dim, vocab, ids.address(), dout.address(), dw.address());
                    return List.of(new Out("dweight", get(dw, t), BITWISE));
                });
    }

    @Test
    void softmaxIsCloseAcrossThreadCounts() {
        int rows = 256, cols = 1000;
        for (DType t : FLOATS)
            for (int log = 0; log < 2; log++) {
                final int lg = log;
                compare((log != 0 ? "log_softmax " : "softmax ") + t, (mem, r) -> {
                    MemorySegment x = buf(mem, t, randoms(r, rows * cols, -6, 6)), dy = buf(mem, t, randoms(r, rows * cols, -1, 1));
                    MemorySegment y = mem.alloc((long) rows * cols * t.size), dx = mem.alloc((long) rows * cols * t.size);
                    mem.abi.softmaxForward(mem.s, t.code, lg, rows, cols, x.address(), y.address());
                    mem.abi.softmaxBackward(mem.s, t.code, lg, rows, cols, y.address(), dy.address(), dx.address(), 0);
                    return List.of(new Out("y", get(y, t), 1e-6), new Out("dx", get(dx, t), 1e-6));
                });
            }
    }

    @Test
    void reductionsAreBitwiseIndependentOfTheThreadCount() {
        // {outer, n, inner}: few long rows (chunks summed in parallel), many rows, and a strided (inner > 1) reduce.
        int[][] shapes = {{3, 70_000, 1}, {1, 200_000, 1}, {4000, 50, 1}, {30, 100, 400}};
        for (int[] s : shapes)
            for (DType t : FLOATS)
                for (int op = 0; op < 3; op++) {
                    final int fop = op;
                    compare("reduce op " + op + " " + java.util.Arrays.toString(s) + " " + t, (mem, r) -> {
                        MemorySegment x = buf(mem, t, randoms(r, s[0] * s[1] * s[2], -1, 1.5));
                        MemorySegment y = mem.alloc((long) s[0] * s[2] * t.size);
                        mem.abi.reduce(mem.s, fop, t.code, s[0], s[1], s[2], x.address(), y.address(), 0);
                        return List.of(new Out("y", get(y, t), BITWISE));
                    });
                }
    }

    @Test
    void randomFillsAndDropoutAreBitwiseIndependentOfTheThreadCount() {
        int n = 200_000;
        for (DType t : new DType[] {DType.F32, DType.F64, DType.BF16})
            compare("fill_random " + t, (mem, r) -> {
                MemorySegment u = mem.alloc((long) n * t.size), g = mem.alloc((long) n * t.size);
                mem.abi.fillRandom(mem.s, t.code, n, u.address(), 0, -1, 1, 99, 12345);
                mem.abi.fillRandom(mem.s, t.code, n, g.address(), 1, 0, 1, 99, 12345);
                return List.of(new Out("uniform", get(u, t), BITWISE), new Out("normal", get(g, t), BITWISE));
            });
        for (DType t : FLOATS)
            compare("dropout " + t, (mem, r) -> {
                MemorySegment x = buf(mem, t, randoms(r, n, 0.5, 1)), y = mem.alloc((long) n * t.size);
                mem.abi.dropoutForward(mem.s, t.code, n, x.address(), y.address(), 0.25, 7, 3);
                return List.of(new Out("y", get(y, t), BITWISE));
            });
    }
}
