package io.github.rlhf4j.runtime;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * rlhf4j_gemm against a Java reference on the stored values, as rlhf4j.h specifies it: C_p = alpha op(A_p) op(B_p)
 * + beta C_p + bias over every transpose combination, sizes on both sides of the CPU kernel's block edges (micro-tile
 * 14 x 32 and 6 x 8, KC = 256, MC = 168 / 120, NC = 3072 / 2048, the M <= 8 dot-product and M <= 28 direct-B
 * shortcuts), leading dimensions wider than the rows, batches with strides (0 included), and every dtype pairing.
 *
 * <p>The reference is an error-free-transformation dot product (twice the working precision of double), so the
 * bound |c - ref| <= 8 eps(compute dtype) (|alpha| sum|a||b| + |beta c| + |bias|) tests the kernel alone. Padding
 * (past each row's width and between batch entries) is NaN in A and B, so reading it poisons the result, and a
 * sentinel in C, which must survive. BF16/F16 outputs must be the round-to-nearest-even of a value within the F32
 * bound: rounded once, whatever the number of K blocks.
 */
class GemmTest {
    private static final long SENTINEL_F64 = 0x7ff4a5a5a5a5a5a5L;
    private static final int SENTINEL_F32 = 0x7fa5a5a5;
    private static final short SENTINEL_16 = (short) 0x7fa5;

    /** One call of rlhf4j_gemm, with its layout. */
    static final class Problem {
        int ta, tb;
        int m, n, k;
        double alpha = 1, beta = 0;
        boolean bias;
        int batch = 1;
        boolean shareA, shareB; // stride 0
        int padA, padB, padC;   // extra columns of the leading dimensions
        int gapA, gapB, gapC;   // extra elements between batch entries
        DType ab = DType.F32, c = DType.F32;
        boolean nanAB;          // every A and B element NaN (for alpha == 0)
        long seed = 1;

        Problem(int ta, int tb, int m, int n, int k) {
            this.ta = ta;
            this.tb = tb;
            this.m = m;
            this.n = n;
            this.k = k;
        }

        Problem alpha(double v) { alpha = v; return this; }
        Problem beta(double v) { beta = v; return this; }
        Problem bias(boolean v) { bias = v; return this; }
        Problem types(DType abType, DType cType) { ab = abType; c = cType; return this; }
        Problem pads(int a, int b, int cc) { padA = a; padB = b; padC = cc; return this; }
        Problem batch(int b, boolean sa, boolean sb, int ga, int gb, int gc) {
            batch = b; shareA = sa; shareB = sb; gapA = ga; gapB = gb; gapC = gc;
            return this;
        }
        Problem nanAB() { nanAB = true; return this; }
        Problem seed(long s) { seed = s; return this; }

        int rowsA() { return ta != 0 ? k : m; }
        int colsA() { return ta != 0 ? m : k; }
        int rowsB() { return tb != 0 ? n : k; }
        int colsB() { return tb != 0 ? k : n; }
        long lda() { return colsA() + padA; }
        long ldb() { return colsB() + padB; }
        long ldc() { return n + padC; }
        long strideA() { return shareA ? 0 : rowsA() * lda() + gapA; }
        long strideB() { return shareB ? 0 : rowsB() * ldb() + gapB; }
        long strideC() { return (long) m * ldc() + gapC; }
        long sizeA() { return batch == 0 ? 0 : (batch - 1) * strideA() + rowsA() * lda(); }
        long sizeB() { return batch == 0 ? 0 : (batch - 1) * strideB() + rowsB() * ldb(); }
        long sizeC() { return batch == 0 ? 0 : (batch - 1) * strideC() + m * ldc(); }

        @Override
        public String toString() {
            return String.format("gemm(ta=%d, tb=%d, M=%d, N=%d, K=%d, alpha=%s, beta=%s, bias=%s, batch=%d%s%s, "
                    + "lda=%d, ldb=%d, ldc=%d, %s x %s -> %s)", ta, tb, m, n, k, alpha, beta, bias, batch,
                    shareA ? ", stride_a=0" : "", shareB ? ", stride_b=0" : "", lda(), ldb(), ldc(), ab, ab, c);
        }
    }

    /**
     * Worst |c - ref| / bound over F32/F64 outputs, the elements checked, and how many 16-bit outputs are not the
     * nearest value to the exact reference (allowed only where the F32 bound straddles a rounding boundary).
     */
    record Outcome(double worstRatio, long checked, long offNearest) {}

    // ---- storage helpers ---------------------------------------------------------------------------------------

    private static double roundTo(DType t, double v) {
        return switch (t) {
            case F64 -> v;
            case F32 -> (float) v;
            default -> LowPrecision.toFloat(t, LowPrecision.fromFloat(t, (float) v));
        };
    }

    /** The values v (already representable in t, NaN allowed) as a device buffer of dtype t. */
    static MemorySegment upload(NativeMemory mem, DType t, double[] v) {
        switch (t) {
            case F64:
                return mem.f64(v);
            case F32: {
                float[] f = new float[v.length];
                for (int i = 0; i < v.length; i++) f[i] = (float) v[i];
                return mem.f32(f);
            }
            default: {
                short[] h = new short[v.length];
                for (int i = 0; i < v.length; i++) h[i] = LowPrecision.fromFloat(t, (float) v[i]);
                return mem.u16(h);
            }
        }
    }

    /** The elements of a buffer of dtype t as doubles. */
    static double[] download(MemorySegment m, DType t) {
        switch (t) {
            case F64:
                return NativeMemory.doubles(m);
            case F32: {
                float[] f = NativeMemory.floats(m);
                double[] d = new double[f.length];
                for (int i = 0; i < f.length; i++) d[i] = f[i];
                return d;
            }
            default: {
                short[] h = NativeMemory.shorts(m);
                double[] d = new double[h.length];
                for (int i = 0; i < h.length; i++) d[i] = LowPrecision.toFloat(t, h[i]);
                return d;
            }
        }
    }

    /** The raw bit patterns of a buffer of dtype t. */
    static long[] bits(MemorySegment m, DType t) {
        long[] out = new long[(int) (m.byteSize() / t.size)];
        for (int i = 0; i < out.length; i++)
            out[i] = switch (t) {
                case F64 -> m.getAtIndex(JAVA_LONG, i);
                case F32 -> m.getAtIndex(JAVA_INT, i);
                default -> m.getAtIndex(JAVA_SHORT, i);
            };
        return out;
    }

    /** A buffer of dtype t holding the sentinel everywhere except at the given elements (NaN in `values` = skip). */
    static MemorySegment sentinelWith(NativeMemory mem, DType t, double[] values, boolean[] real) {
        MemorySegment m = mem.alloc((long) values.length * t.size);
        for (int i = 0; i < values.length; i++) {
            switch (t) {
                case F64 -> m.setAtIndex(JAVA_LONG, i, real[i] ? Double.doubleToRawLongBits(values[i]) : SENTINEL_F64);
                case F32 -> m.setAtIndex(JAVA_INT, i, real[i] ? Float.floatToRawIntBits((float) values[i]) : SENTINEL_F32);
                default -> m.setAtIndex(JAVA_SHORT, i, real[i] ? LowPrecision.fromFloat(t, (float) values[i]) : SENTINEL_16);
            }
        }
        return m;
    }

    private static long sentinelBits(DType t) {
        return switch (t) {
            case F64 -> SENTINEL_F64;
            case F32 -> SENTINEL_F32;
            default -> SENTINEL_16;
        };
    }

    /** Σ a_i b_i to about twice double precision (Ogita, Rump, Oishi: Dot2), and Σ |a_i b_i|. */
    private static double[] dot2(double[] a, int ao, double[] b, int bo, int n) {
        double s = 0, c = 0, abs = 0;
        for (int i = 0; i < n; i++) {
            double x = a[ao + i], y = b[bo + i];
            double p = x * y, pe = Math.fma(x, y, -p);
            double t = s + p, z = t - s, e = (s - (t - z)) + (p - z);
            s = t;
            c += e + pe;
            abs += Math.abs(p);
        }
        return new double[] {s + c, abs};
    }

    // ---- the harness ----------------------------------------------------------------------------------------------

    /** Runs the problem on the CPU device and checks every element of C (and that padding is untouched). */
    static Outcome run(Problem pr) {
        SplittableRandom rnd = new SplittableRandom(pr.seed * 0x9E3779B97F4A7C15L + pr.m * 31L + pr.n * 7L + pr.k);
        try (NativeMemory mem = new NativeMemory()) {
            // A and B: NaN everywhere (padding and gaps), stored values where the matrices are.
            double[] av = new double[(int) pr.sizeA()], bv = new double[(int) pr.sizeB()];
            java.util.Arrays.fill(av, Double.NaN);
            java.util.Arrays.fill(bv, Double.NaN);
            int entriesA = pr.shareA ? Math.min(pr.batch, 1) : pr.batch, entriesB = pr.shareB ? Math.min(pr.batch, 1) : pr.batch;
            for (int p = 0; p < entriesA; p++)
                for (int r = 0; r < pr.rowsA(); r++)
                    for (int q = 0; q < pr.colsA(); q++)
                        av[(int) (p * pr.strideA() + r * pr.lda() + q)] =
                                pr.nanAB ? Double.NaN : roundTo(pr.ab, rnd.nextDouble(-1, 1));
            for (int p = 0; p < entriesB; p++)
                for (int r = 0; r < pr.rowsB(); r++)
                    for (int q = 0; q < pr.colsB(); q++)
                        bv[(int) (p * pr.strideB() + r * pr.ldb() + q)] =
                                pr.nanAB ? Double.NaN : roundTo(pr.ab, rnd.nextDouble(-1, 1));
            MemorySegment a = upload(mem, pr.ab, av), b = upload(mem, pr.ab, bv);
            // C: sentinel in padding and gaps; old values (NaN when beta == 0, which must ignore them).
            double[] c0 = new double[(int) pr.sizeC()];
            boolean[] real = new boolean[c0.length];
            for (int p = 0; p < pr.batch; p++)
                for (int i = 0; i < pr.m; i++)
                    for (int j = 0; j < pr.n; j++) {
                        int at = (int) (p * pr.strideC() + i * pr.ldc() + j);
                        c0[at] = pr.beta == 0 ? Double.NaN : roundTo(pr.c, rnd.nextDouble(-1, 1));
                        real[at] = true;
                    }
            MemorySegment c = sentinelWith(mem, pr.c, c0, real);
            double[] biasv = new double[pr.n];
            MemorySegment bias = null;
            if (pr.bias) {
                for (int j = 0; j < pr.n; j++) biasv[j] = roundTo(pr.c, rnd.nextDouble(-1, 1));
                bias = upload(mem, pr.c, biasv);
            }

            mem.abi.gemm(mem.s, pr.ta, pr.tb, pr.m, pr.n, pr.k, pr.alpha, a.address(), pr.lda(), pr.strideA(),
                    b.address(), pr.ldb(), pr.strideB(), pr.ab.code, pr.beta, c.address(), pr.ldc(), pr.strideC(),
                    pr.c.code, pr.batch, bias == null ? 0 : bias.address());

            // Reference, entry by entry: op(A) rows and op(B) columns gathered contiguous, then Dot2.
            DType compute = pr.c == DType.F64 ? DType.F64 : DType.F32;
            double eps = LowPrecision.eps(compute), tiny = compute == DType.F64 ? 1e-300 : 1e-37;
            double[] out = download(c, pr.c);
            double worst = 0;
            long checked = 0, offNearest = 0;
            double[] opA = new double[pr.m * pr.k], opBt = new double[pr.n * pr.k];
            for (int p = 0; p < pr.batch; p++) {
                long oa = p * pr.strideA(), ob = p * pr.strideB();
                for (int i = 0; i < pr.m; i++)
                    for (int l = 0; l < pr.k; l++)
                        opA[i * pr.k + l] = av[(int) (oa + (pr.ta != 0 ? l * pr.lda() + i : i * pr.lda() + l))];
                for (int j = 0; j < pr.n; j++)
                    for (int l = 0; l < pr.k; l++)
                        opBt[j * pr.k + l] = bv[(int) (ob + (pr.tb != 0 ? j * pr.ldb() + l : l * pr.ldb() + j))];
                for (int i = 0; i < pr.m; i++) {
                    for (int j = 0; j < pr.n; j++) {
                        int at = (int) (p * pr.strideC() + i * pr.ldc() + j);
                        double[] d = pr.alpha == 0 ? new double[] {0, 0} : dot2(opA, i * pr.k, opBt, j * pr.k, pr.k);
                        double ref = pr.alpha * d[0], mag = Math.abs(pr.alpha) * d[1];
                        if (pr.beta != 0) {
                            ref += pr.beta * c0[at];
                            mag += Math.abs(pr.beta * c0[at]);
                        }
                        ref += biasv[j];
                        mag += Math.abs(biasv[j]);
                        double tol = 8 * eps * mag + tiny;
                        double got = out[at];
                        checked++;
                        if (pr.c == DType.F32 || pr.c == DType.F64) {
                            double err = Math.abs(got - ref);
                            if (!(err <= tol))
                                fail(String.format("%s: C[%d][%d][%d] = %.17g, reference %.17g, |diff| %.3g > bound %.3g",
                                        pr, p, i, j, got, ref, err, tol));
                            worst = Math.max(worst, err / tol);
                        } else {
                            // The kernel's F32 value lies in [lo, hi]; rounding is monotone, so the stored value
                            // must lie between the roundings of the two ends.
                            float lo = (float) (ref - tol), hi = (float) (ref + tol);
                            if (lo > ref - tol) lo = Math.nextDown(lo);
                            if (hi < ref + tol) hi = Math.nextUp(hi);
                            double rlo = roundTo(pr.c, lo), rhi = roundTo(pr.c, hi);
                            if (!(got >= rlo && got <= rhi))
                                fail(String.format("%s: C[%d][%d][%d] = %.9g, expected the %s rounding of %.12g "
                                        + "(+- %.3g): %.9g .. %.9g", pr, p, i, j, got, pr.c, ref, tol, rlo, rhi));
                            if (got != roundTo(pr.c, ref)) offNearest++;
                        }
                    }
                }
            }
            long sentinel = sentinelBits(pr.c);
            long[] raw = bits(c, pr.c);
            for (int at = 0; at < raw.length; at++)
                if (!real[at] && raw[at] != sentinel)
                    fail(pr + ": C padding / gap element " + at + " was written (" + out[at] + ")");
            return new Outcome(worst, checked, offNearest);
        }
    }

    // ---- cases ----------------------------------------------------------------------------------------------------

    /** (M, N, K) on both sides of the AVX-512 f32 blocks: MR 14, NR 32, KC 256, MC 168, NC 3072; M <= 8 and M <= 28. */
    private static final int[][] F32_SHAPES = {
        {1, 1, 1}, {1, 37, 13}, {2, 5, 3}, {7, 33, 64}, {8, 64, 255}, {9, 31, 256}, {13, 96, 257}, {14, 32, 100},
        {15, 33, 300}, {28, 65, 129}, {29, 100, 40}, {31, 17, 513}, {97, 1, 61}, {167, 63, 70}, {168, 64, 256},
        {169, 97, 300}, {257, 100, 33}, {3, 3300, 20}, {29, 3100, 17}, {1, 200, 600},
    };

    /** The same around the F64 blocks: MR 6, NR 8, KC 256, MC 120, NC 2048 (and 125 x 41 x 300 runs threaded). */
    private static final int[][] F64_SHAPES = {
        {1, 1, 1}, {1, 37, 13}, {5, 7, 9}, {6, 8, 256}, {7, 9, 255}, {8, 16, 257}, {13, 31, 100}, {29, 17, 300},
        {119, 41, 8}, {120, 40, 64}, {121, 9, 257}, {125, 41, 300}, {12, 2100, 10}, {1, 200, 600},
    };

    private static List<Problem> sweep(int[][] shapes, DType ab, DType c, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        double[] alphas = {1, -0.5, 2.5, 1, 0.75};
        double[] betas = {0, 1, -0.75};
        List<Problem> out = new ArrayList<>();
        for (int[] s : shapes)
            for (int ta = 0; ta < 2; ta++)
                for (int tb = 0; tb < 2; tb++)
                    out.add(new Problem(ta, tb, s[0], s[1], s[2]).types(ab, c).alpha(alphas[r.nextInt(alphas.length)])
                            .beta(betas[r.nextInt(betas.length)]).bias(r.nextBoolean())
                            .pads(r.nextInt(4), r.nextInt(4), r.nextInt(4)).seed(r.nextLong()));
        return out;
    }

    private static Outcome runAll(String what, List<Problem> problems) {
        double worst = 0;
        long checked = 0, off = 0;
        for (Problem p : problems) {
            Outcome o = run(p);
            worst = Math.max(worst, o.worstRatio());
            checked += o.checked();
            off += o.offNearest();
        }
        System.out.printf("GemmTest %s: %d calls, %d elements, worst error / bound %.3f, 16-bit outputs off the "
                + "nearest %d%n", what, problems.size(), checked, worst, off);
        return new Outcome(worst, checked, off);
    }

    // ---- tests ----------------------------------------------------------------------------------------------------

    @Test
    void f32MatchesReferenceForEveryTransposeAcrossBlockEdges() {
        Outcome o = runAll("f32", sweep(F32_SHAPES, DType.F32, DType.F32, 11));
        assertTrue(o.checked() > 100_000, "checked " + o.checked());
    }

    @Test
    void f64MatchesReferenceTightlyForEveryTransposeAcrossBlockEdges() {
        runAll("f64", sweep(F64_SHAPES, DType.F64, DType.F64, 12));
    }

    @Test
    void bf16AndF16InputsWithF32OutputMatchReference() {
        int[][] shapes = {{1, 33, 7}, {7, 40, 64}, {14, 32, 256}, {29, 70, 257}, {45, 100, 300}, {170, 65, 31}};
        runAll("bf16 -> f32", sweep(shapes, DType.BF16, DType.F32, 13));
        runAll("f16 -> f32", sweep(shapes, DType.F16, DType.F32, 14));
    }

    @Test
    void bf16AndF16OutputsAreRoundedOnceToNearestEvenEvenAcrossKBlocks() {
        // K > KC = 256 (300, 600) would be two or three K blocks for an F32 C; a 16-bit C must still round once.
        int[][] shapes = {{1, 40, 600}, {8, 33, 300}, {15, 64, 257}, {29, 31, 600}, {60, 100, 300}, {200, 70, 40}};
        runAll("bf16 -> bf16", sweep(shapes, DType.BF16, DType.BF16, 15));
        runAll("f16 -> f16", sweep(shapes, DType.F16, DType.F16, 16));
        runAll("f32 -> bf16", sweep(shapes, DType.F32, DType.BF16, 17));
        runAll("f32 -> f16", sweep(shapes, DType.F32, DType.F16, 18));
    }

    @Test
    void everyBf16AndF16BitPatternIsWidenedExactlyWhenPacked() {
        // C[i] = A[i] * 1 with K = 1 is exact in F32 (zeros lose their sign: the accumulator starts at +0).
        for (DType t : new DType[] {DType.BF16, DType.F16}) {
            short[] all = new short[65536];
            for (int i = 0; i < all.length; i++) all[i] = (short) i;
            short one = LowPrecision.fromFloat(t, 1f);
            try (NativeMemory mem = new NativeMemory()) {
                MemorySegment x = mem.u16(all), o = mem.u16(one), c = mem.alloc(4L * all.length);
                for (int side = 0; side < 4; side++) {
                    int ta = side & 1;
                    boolean aSide = side < 2;
                    // aSide: op(A) = the patterns as a column (M = 65536, K = 1); else op(B) as a row (N = 65536).
                    long m = aSide ? all.length : 1, n = aSide ? 1 : all.length;
                    MemorySegment a = aSide ? x : o, b = aSide ? o : x;
                    long lda = ta != 0 ? m : 1, ldb = ta != 0 ? 1 : n; // the B side uses tb = ta
                    mem.abi.gemm(mem.s, aSide ? ta : 0, aSide ? 0 : ta, m, n, 1, 1.0, a.address(), lda, 0,
                            b.address(), ldb, 0, t.code, 0.0, c.address(), n, 0, DType.F32.code, 1, 0);
                    float[] got = NativeMemory.floats(c);
                    for (int i = 0; i < all.length; i++) {
                        float want = LowPrecision.toFloat(t, all[i]);
                        if (!(got[i] == want || Float.isNaN(want) && Float.isNaN(got[i])))
                            fail(String.format("%s pattern 0x%04x via %s (trans %d): got %s, want %s", t, i,
                                    aSide ? "A" : "B", ta, got[i], want));
                    }
                }
            }
        }
    }

    @Test
    void leadingDimensionsWiderThanTheRowsSkipTheirPadding() {
        // Wide pads (NaN in A and B, a sentinel in C) on the packed, direct-B and dot-product paths.
        List<Problem> ps = new ArrayList<>();
        int[][] shapes = {{5, 70, 33}, {20, 45, 40}, {100, 90, 300}};
        for (int[] s : shapes)
            for (int ta = 0; ta < 2; ta++)
                for (int tb = 0; tb < 2; tb++)
                    for (DType t : new DType[] {DType.F32, DType.F64, DType.BF16})
                        ps.add(new Problem(ta, tb, s[0], s[1], s[2]).types(t, t == DType.F64 ? t : DType.F32)
                                .pads(s[0] + 17, s[1] + 3, 2 * s[1] + 1).beta(1).bias(true));
        runAll("wide leading dimensions", ps);
    }

    @Test
    void betaZeroIgnoresNanInC() {
        // run() fills C with NaN whenever beta == 0; cover every path and C dtype with it.
        List<Problem> ps = new ArrayList<>();
        int[][] shapes = {{4, 50, 20}, {20, 50, 300}, {180, 70, 100}};
        for (int[] s : shapes)
            for (int tb = 0; tb < 2; tb++)
                for (DType[] t : new DType[][] {{DType.F32, DType.F32}, {DType.F64, DType.F64},
                        {DType.BF16, DType.BF16}, {DType.F16, DType.F16}, {DType.BF16, DType.F32}})
                    for (boolean bias : new boolean[] {false, true})
                        ps.add(new Problem(0, tb, s[0], s[1], s[2]).types(t[0], t[1]).beta(0).bias(bias));
        for (DType t : new DType[] {DType.F32, DType.F64, DType.BF16})
            ps.add(new Problem(0, 0, 9, 9, 0).types(t, t).beta(0).bias(true)); // K == 0
        runAll("beta 0 over NaN C", ps);
    }

    @Test
    void alphaZeroReadsNeitherANorB() {
        // A and B are all NaN: any read of them would show in C.
        List<Problem> ps = new ArrayList<>();
        for (DType t : new DType[] {DType.F32, DType.F64, DType.BF16, DType.F16})
            for (double beta : new double[] {0, 1, -0.5})
                for (int tb = 0; tb < 2; tb++)
                    ps.add(new Problem(1, tb, 40, 70, 300).types(t, t == DType.F64 ? t : DType.F32).alpha(0)
                            .beta(beta).bias(beta != 1).nanAB());
        ps.add(new Problem(0, 0, 6, 5, 4).types(DType.BF16, DType.BF16).alpha(0).beta(2).bias(true).nanAB()
                .batch(3, false, true, 1, 1, 1));
        runAll("alpha 0 over NaN A, B", ps);
    }

    @Test
    void biasIsAddedOnceWithBetaZeroOrOne() {
        // K = 600 is three K blocks for F32 and F64: the bias belongs to the first only. 200 x 40 x 600 runs threaded.
        List<Problem> ps = new ArrayList<>();
        for (DType t : new DType[] {DType.F32, DType.F64, DType.BF16})
            for (double beta : new double[] {0, 1})
                for (int[] s : new int[][] {{3, 40, 600}, {20, 33, 600}, {200, 40, 600}})
                    ps.add(new Problem(0, 1, s[0], s[1], s[2]).types(t, t == DType.F64 ? t : DType.F32).beta(beta)
                            .bias(true));
        runAll("bias", ps);
    }

    @Test
    void batchedEntriesFollowTheirStridesIncludingASharedOperand() {
        // {M, N, K, batch}: small entries one after the other; 48^3 x 8 and x 16 one entry per thread; 100 x 90 x 64
        // x 3 each entry threaded.
        List<Problem> ps = new ArrayList<>();
        int[][] shapes = {{5, 9, 7, 2}, {5, 9, 7, 3}, {20, 70, 33, 5}, {48, 48, 48, 8}, {48, 48, 48, 16}, {100, 90, 64, 3}};
        for (int[] s : shapes)
            for (int batch : new int[] {s[3]})
                for (int share = 0; share < 3; share++)
                    for (DType t : new DType[] {DType.F32, DType.F64, DType.BF16})
                        ps.add(new Problem(share & 1, batch & 1, s[0], s[1], s[2])
                                .types(t, t == DType.F64 ? t : DType.F32).beta(share == 1 ? 1 : 0).bias(share == 2)
                                .pads(1, 2, 3).batch(batch, share == 1, share == 2, 5, 3, 7).seed(batch));
        runAll("batched", ps);
    }

    @Test
    void kZeroGivesBetaCPlusBias() {
        List<Problem> ps = new ArrayList<>();
        for (DType t : new DType[] {DType.F32, DType.F64, DType.BF16, DType.F16})
            for (double beta : new double[] {0, 1, 0.5})
                for (boolean bias : new boolean[] {false, true})
                    ps.add(new Problem(beta == 1 ? 1 : 0, 1, 7, 13, 0).types(t, t).beta(beta).bias(bias)
                            .pads(1, 0, 2).batch(2, false, false, 0, 0, 3));
        runAll("K = 0", ps);
    }

    @Test
    void emptyProblemsWriteNothing() {
        // batch == 0 with a real C buffer (a products-sized one): it stays as it was.
        try (NativeMemory mem = new NativeMemory()) {
            MemorySegment a = mem.f32(new float[6]), b = mem.f32(new float[6]), c = mem.f32(1, 2, 3, 4);
            mem.abi.gemm(mem.s, 0, 0, 2, 2, 3, 1, a.address(), 3, 6, b.address(), 2, 6, DType.F32.code, 0,
                    c.address(), 2, 4, DType.F32.code, 0, 0);
            assertArrayEquals(new float[] {1, 2, 3, 4}, NativeMemory.floats(c));
        }
        // run() checks that C's sentinel survives outside the M x N entries; with nothing to compute, everywhere.
        List<Problem> ps = new ArrayList<>();
        for (DType t : new DType[] {DType.F32, DType.F64, DType.BF16})
            for (int[] s : new int[][] {{0, 5, 3}, {4, 0, 3}, {0, 0, 0}})
                ps.add(new Problem(0, 0, s[0], s[1], s[2]).types(t, t).pads(1, 1, 2).bias(true).beta(1)
                        .batch(2, false, false, 2, 2, 4));
        for (DType t : new DType[] {DType.F32, DType.F64})
            ps.add(new Problem(0, 0, 3, 4, 5).types(t, t).pads(1, 1, 2).bias(true).beta(1)
                    .batch(0, false, false, 0, 0, 0));
        runAll("empty", ps);
    }

    @Test
    void badArgumentsFailNamingTheFunctionAndTheArgument() {
        try (NativeMemory mem = new NativeMemory()) {
            MemorySegment a = mem.f32(new float[64]), b = mem.f32(new float[64]), c = mem.f32(new float[64]);
            MemorySegment d = mem.f64(new double[64]);
            float[] before = NativeMemory.floats(c);
            record Bad(String what, Runnable call, NativeException.Status status, String... words) {}
            long s = mem.s;
            Abi abi = mem.abi;
            int f32 = DType.F32.code, f64 = DType.F64.code;
            List<Bad> bad = List.of(
                    new Bad("lda < K", () -> abi.gemm(s, 0, 0, 4, 4, 4, 1, a.address(), 3, 0, b.address(), 4, 0, f32,
                            0, c.address(), 4, 0, f32, 1, 0), NativeException.Status.INVALID_ARGUMENT, "lda = 3"),
                    new Bad("lda < M with trans_a", () -> abi.gemm(s, 1, 0, 5, 4, 4, 1, a.address(), 4, 0,
                            b.address(), 4, 0, f32, 0, c.address(), 4, 0, f32, 1, 0),
                            NativeException.Status.INVALID_ARGUMENT, "lda", "trans_a"),
                    new Bad("ldb < N", () -> abi.gemm(s, 0, 0, 4, 4, 4, 1, a.address(), 4, 0, b.address(), 2, 0, f32,
                            0, c.address(), 4, 0, f32, 1, 0), NativeException.Status.INVALID_ARGUMENT, "ldb"),
                    new Bad("ldb < K with trans_b", () -> abi.gemm(s, 0, 1, 4, 4, 6, 1, a.address(), 6, 0,
                            b.address(), 5, 0, f32, 0, c.address(), 4, 0, f32, 1, 0),
                            NativeException.Status.INVALID_ARGUMENT, "ldb", "trans_b"),
                    new Bad("ldc < N", () -> abi.gemm(s, 0, 0, 4, 4, 4, 1, a.address(), 4, 0, b.address(), 4, 0, f32,
                            0, c.address(), 3, 0, f32, 1, 0), NativeException.Status.INVALID_ARGUMENT, "ldc"),
                    new Bad("stride_c = 0, batch 2", () -> abi.gemm(s, 0, 0, 2, 2, 2, 1, a.address(), 2, 4,
                            b.address(), 2, 4, f32, 0, c.address(), 2, 0, f32, 2, 0),
                            NativeException.Status.INVALID_ARGUMENT, "stride_c"),
                    new Bad("f64 A/B with f32 C", () -> abi.gemm(s, 0, 0, 2, 2, 2, 1, d.address(), 2, 0, d.address(),
                            2, 0, f64, 0, c.address(), 2, 0, f32, 1, 0), NativeException.Status.UNSUPPORTED,
                            "ab_dtype", "f64", "c_dtype", "f32"),
                    new Bad("f32 A/B with f64 C", () -> abi.gemm(s, 0, 0, 2, 2, 2, 1, a.address(), 2, 0, b.address(),
                            2, 0, f32, 0, d.address(), 2, 0, f64, 1, 0), NativeException.Status.UNSUPPORTED,
                            "ab_dtype", "c_dtype"),
                    new Bad("i32", () -> abi.gemm(s, 0, 0, 2, 2, 2, 1, a.address(), 2, 0, b.address(), 2, 0,
                            DType.I32.code, 0, c.address(), 2, 0, f32, 1, 0), NativeException.Status.UNSUPPORTED,
                            "i32"),
                    new Bad("negative M", () -> abi.gemm(s, 0, 0, -1, 2, 2, 1, a.address(), 2, 0, b.address(), 2, 0,
                            f32, 0, c.address(), 2, 0, f32, 1, 0), NativeException.Status.INVALID_ARGUMENT, "M = -1"),
                    new Bad("negative stride_a", () -> abi.gemm(s, 0, 0, 2, 2, 2, 1, a.address(), 2, -4, b.address(),
                            2, 4, f32, 0, c.address(), 2, 4, f32, 2, 0), NativeException.Status.INVALID_ARGUMENT,
                            "stride_a"));
            for (Bad x : bad) {
                NativeException e = assertThrows(NativeException.class, x.call()::run, x.what());
                assertEquals("rlhf4j_gemm", e.function(), x.what());
                assertEquals(x.status(), e.status(), x.what() + ": " + e.getMessage());
                for (String w : x.words())
                    assertTrue(e.getMessage().contains(w), x.what() + ": message lacks '" + w + "': " + e.getMessage());
                assertArrayEquals(before, NativeMemory.floats(c), x.what() + ": a refused call wrote C");
            }
        }
    }
}
