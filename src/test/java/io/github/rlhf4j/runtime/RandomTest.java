package io.github.rlhf4j.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.lang.foreign.MemorySegment;
import org.junit.jupiter.api.Test;

/**
 * rlhf4j_fill_random and rlhf4j_dropout_forward / _backward as rlhf4j.h specifies them: Philox-4x32-10 on counter
 * (offset + i, 0) under key seed, the uniform and Box-Muller formulas on the stated words, half-open uniform ranges,
 * the dropout keep test (word0 >> 8) >= ceil(p 2^24) with scale 1 / (1 - p); plus the statistics any such generator
 * must show over 10^6 draws (means, variances and fractions within 5 standard errors).
 *
 * <p>The Java Philox below is written from the published algorithm (Salmon et al., SC'11) and checked against the
 * known-answer vectors of the Random123 distribution (tests/kat_vectors, the three "philox4x32 10" lines).
 */
class RandomTest {
    private static final int UNIFORM = 0, NORMAL = 1;
    private static final int N = 1_000_000;

    // ---- reference Philox-4x32-10 ------------------------------------------------------------------------------

    /** Philox-4x32-10 of the 128-bit counter ctr[0..3] (ctr[0] least significant) under the 64-bit key k[0..1]. */
    static int[] philox(int[] ctr, int[] k) {
        int c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3], k0 = k[0], k1 = k[1];
        for (int round = 0; round < 10; round++) {
            long p0 = 0xD2511F53L * (c0 & 0xffffffffL), p1 = 0xCD9E8D57L * (c2 & 0xffffffffL);
            int n0 = (int) (p1 >>> 32) ^ c1 ^ k0, n2 = (int) (p0 >>> 32) ^ c3 ^ k1;
            c1 = (int) p1;
            c3 = (int) p0;
            c0 = n0;
            c2 = n2;
            k0 += 0x9E3779B9;
            k1 += 0xBB67AE85;
        }
        return new int[] {c0, c1, c2, c3};
    }

    /** The words element i of a stream draws from: counter (offset + i, 0), key seed. */
    static int[] words(long seed, long offset, long i) {
        long c = offset + i;
        return philox(new int[] {(int) c, (int) (c >>> 32), 0, 0}, new int[] {(int) seed, (int) (seed >>> 32)});
    }

    static double u24(int w) {
        return (w >>> 8) * 0x1p-24;
    }

    static double u53(int hi, int lo) {
        long bits = (((hi & 0xffffffffL) << 21) ^ ((lo & 0xffffffffL) >>> 11)) & ((1L << 53) - 1);
        return bits * 0x1p-53;
    }

    @Test
    void javaReferencePhiloxMatchesTheRandom123KnownAnswers() {
        int[][][] kat = { // counter, key, expected
            {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
            {{-1, -1, -1, -1}, {-1, -1}, {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
            {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0},
                {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
        };
        for (int[][] v : kat) assertArrayEquals(v[2], philox(v[0], v[1]));
    }

    // ---- helpers ---------------------------------------------------------------------------------------------------

    private static double[] fill(DType t, int n, int kind, double a, double b, long seed, long offset) {
        try (NativeMemory mem = new NativeMemory()) {
            MemorySegment x = mem.alloc((long) n * t.size);
            mem.abi.fillRandom(mem.s, t.code, n, x.address(), kind, a, b, seed, offset);
            return GemmTest.download(x, t);
        }
    }

    /** Largest value of dtype t below b. */
    private static double below(DType t, double b) {
        return switch (t) {
            case F64 -> Math.nextDown(b);
            case F32 -> (float) b < b ? (float) b : Math.nextDown((float) b);
            default -> {
                short h = LowPrecision.fromFloat(t, (float) b);
                float v = LowPrecision.toFloat(t, h);
                if (v < b) yield v;
                short dn = v > 0 ? (short) (h - 1) : v == 0 ? (short) 0x8001 : (short) (h + 1);
                yield LowPrecision.toFloat(t, dn);
            }
        };
    }

    /** The uniform value of element i in dtype t, for a + (b - a) u evaluated with or without a fused multiply-add. */
    private static double[] uniformRef(DType t, double a, double b, long seed, long offset, long i) {
        int[] w = words(seed, offset, i);
        double u = t == DType.F64 ? u53(w[0], w[1]) : u24(w[0]);
        double[] both = {a + (b - a) * u, Math.fma(b - a, u, a)};
        for (int j = 0; j < 2; j++) {
            double v = t == DType.F64 ? both[j] : t == DType.F32 ? (float) both[j]
                    : LowPrecision.toFloat(t, LowPrecision.fromFloat(t, (float) both[j]));
            both[j] = v >= b ? below(t, b) : v;
        }
        return both;
    }

    /** Sample mean and variance within 5 standard errors of those of a distribution (mu4: its 4th central moment). */
    private static void assertMeanAndVariance(double[] x, double mean, double var, double mu4, String what) {
        double s = 0, s2 = 0;
        for (double v : x) s += v;
        double m = s / x.length;
        for (double v : x) s2 += (v - m) * (v - m);
        double sv = s2 / (x.length - 1);
        double seMean = Math.sqrt(var / x.length), seVar = Math.sqrt((mu4 - var * var) / x.length);
        assertTrue(Math.abs(m - mean) <= 5 * seMean, String.format("%s: mean %.6f, expected %.6f +- 5 x %.2g", what, m, mean, seMean));
        assertTrue(Math.abs(sv - var) <= 5 * seVar, String.format("%s: variance %.6f, expected %.6f +- 5 x %.2g", what, sv, var, seVar));
    }

    // ---- uniform -----------------------------------------------------------------------------------------------

    @Test
    void nativeStreamStartsWithTheKnownAnswerWord() {
        // seed 0, counter 0: word 0 is 0x6627e8d5 (Random123), so the first F32 uniform of [0, 1) is its top 24 bits.
        double[] x = fill(DType.F32, 4, UNIFORM, 0, 1, 0, 0);
        assertEquals((0x6627e8d5 >>> 8) * 0x1p-24, x[0]);
    }

    @Test
    void uniformDrawsAreTheHeaderFormulaOnPhiloxWords() {
        // Seeds and offsets above 2^32 reach the high words of key and counter; 40000 elements span several
        // parallel chunks; the ranges include ones where rounding reaches b (then the largest value below b).
        long[][] seedsOffsets = {{0, 0}, {42, 7}, {0x123456789abcdefL, 0x1_0000_0003L}, {-1L, (1L << 62) + 5}};
        double[][] ranges = {{0, 1}, {-2, 3}, {1e8, 1e8 + 104}, {0x1p53, 0x1p53 + 64}, {-0.25, -0.125}};
        int n = 40_000;
        for (DType t : new DType[] {DType.F32, DType.F64, DType.BF16, DType.F16})
            for (long[] so : seedsOffsets)
                for (double[] r : ranges) {
                    if (t == DType.F16 && Math.abs(r[1]) > 60000) continue;
                    double[] x = fill(t, n, UNIFORM, r[0], r[1], so[0], so[1]);
                    for (int i = 0; i < n; i += (i < 1000 ? 1 : 7)) {
                        double[] want = uniformRef(t, r[0], r[1], so[0], so[1], i);
                        if (x[i] != want[0] && x[i] != want[1])
                            fail(String.format("%s U[%s, %s) seed %d offset %d element %d: got %.17g, want %.17g",
                                    t, r[0], r[1], so[0], so[1], i, x[i], want[0]));
                    }
                }
    }

    @Test
    void uniformStaysInItsHalfOpenRangeWithTheMeanAndVarianceOfU() {
        double a = -2, b = 3;
        for (DType t : new DType[] {DType.F32, DType.F64, DType.BF16}) {
            double[] x = fill(t, N, UNIFORM, a, b, 1234, 0);
            double lo = Double.MAX_VALUE, hi = -Double.MAX_VALUE;
            for (double v : x) {
                lo = Math.min(lo, v);
                hi = Math.max(hi, v);
            }
            assertTrue(lo >= a && hi < b, t + ": draws span [" + lo + ", " + hi + "], outside [" + a + ", " + b + ")");
            assertMeanAndVariance(x, (a + b) / 2, (b - a) * (b - a) / 12, Math.pow(b - a, 4) / 80, t + " U[-2, 3)");
        }
    }

    @Test
    void uniformValuesThatRoundUpToBBecomeTheLargestValueBelowB() {
        // {dtype, a, b, share of the largest value below b by its own rounding, share that rounds up to b}:
        // BF16 U[0, 1) (values 2^-8 apart below 1); F32 U[1e8, 1e8 + 104) (8 apart); F64 U[2^53, 2^53 + 64) (2 apart).
        Object[][] cases = {{DType.BF16, 0.0, 1.0, 0x1p-8, 0x1p-9}, {DType.F32, 1e8, 1e8 + 104, 8.0 / 104, 4.0 / 104},
            {DType.F64, 0x1p53, 0x1p53 + 64, 2.0 / 64, 1.0 / 64}};
        for (Object[] c : cases) {
            DType t = (DType) c[0];
            double a = (double) c[1], b = (double) c[2], own = (double) c[3], up = (double) c[4], top = below(t, b);
            double[] x = fill(t, N, UNIFORM, a, b, 99, 0);
            int atTop = 0;
            for (double v : x) {
                if (!(v >= a && v < b)) fail(t + ": " + v + " outside [" + a + ", " + b + ")");
                if (v == top) atTop++;
            }
            // the top value collects its own share plus the draws that rounded up to b
            double share = own + up;
            double se = Math.sqrt(share * (1 - share) / N);
            assertTrue(Math.abs(atTop / (double) N - share) <= 5 * se,
                    t + ": " + atTop + " draws at the largest value below b, expected about " + share * N);
        }
    }

    @Test
    void equalBoundsGiveA() {
        for (DType t : new DType[] {DType.F32, DType.F64, DType.BF16, DType.F16}) {
            double[] x = fill(t, 1000, UNIFORM, 0.5, 0.5, 3, 0);
            for (double v : x) assertEquals(0.5, v, t.toString());
        }
    }

    // ---- normal ------------------------------------------------------------------------------------------------

    @Test
    void normalDrawsAreBoxMullerOnTheStatedWords() {
        double a = 1.5, b = 2;
        for (DType t : new DType[] {DType.F32, DType.F64}) {
            long seed = 77, offset = 1L << 33;
            double[] x = fill(t, 20_000, NORMAL, a, b, seed, offset);
            for (int i = 0; i < x.length; i++) {
                int[] w = words(seed, offset, i);
                double u1, u2;
                if (t == DType.F64) {
                    u1 = u53(w[0], w[1]) + 0x1p-53;
                    u2 = u53(w[2], w[3]);
                } else {
                    u1 = ((w[0] >>> 8) + 1) * 0x1p-24;
                    u2 = u24(w[1]);
                }
                double radius = Math.sqrt(-2 * Math.log(u1)), z = radius * Math.cos(2 * Math.PI * u2);
                double want = a + b * z;
                // F32 computes in float (logf, cosf of a float angle 2 pi u2): errors of about 1e-6 of the radius
                double tol = t == DType.F64 ? 1e-13 * (1 + Math.abs(want)) : 2e-6 * b * (1 + radius) + Math.ulp((float) want);
                if (!(Math.abs(x[i] - want) <= tol))
                    fail(String.format("%s normal element %d: got %.17g, Box-Muller gives %.17g", t, i, x[i], want));
            }
        }
    }

    @Test
    void normalHasItsMeanStandardDeviationAndOneSigmaFraction() {
        double a = 1.5, b = 2;
        for (DType t : new DType[] {DType.F32, DType.F64, DType.BF16}) {
            double[] x = fill(t, N, NORMAL, a, b, 2024, 5);
            double m = 0;
            for (double v : x) m += v;
            m /= N;
            double s2 = 0;
            int inside = 0;
            for (double v : x) {
                s2 += (v - m) * (v - m);
                if (Math.abs(v - a) < b) inside++;
            }
            double sd = Math.sqrt(s2 / (N - 1));
            assertTrue(Math.abs(m - a) <= 5 * b / Math.sqrt(N), t + ": mean " + m + ", expected " + a);
            assertTrue(Math.abs(sd - b) <= 5 * b / Math.sqrt(2.0 * N), t + ": standard deviation " + sd + ", expected " + b);
            if (t != DType.BF16) { // bf16 rounding moves draws onto the boundaries a +- b
                double p = 0.6826894921370859, frac = inside / (double) N;
                assertTrue(Math.abs(frac - p) <= 5 * Math.sqrt(p * (1 - p) / N), t + ": one-sigma fraction " + frac);
            }
        }
    }

    @Test
    void f32NormalsAreFiniteBecauseTheLogArgumentIsPositive() {
        // u1 = ((w0 >> 8) + 1) 2^-24 is in (0, 1], so |z| <= sqrt(-2 ln 2^-24) = 5.77: never inf or NaN.
        double[] x = fill(DType.F32, N, NORMAL, 0, 1, 5, 0);
        double bound = Math.sqrt(-2 * Math.log(0x1p-24)) * (1 + 1e-6);
        for (int i = 0; i < x.length; i++)
            if (!(Math.abs(x[i]) <= bound)) fail("element " + i + " = " + x[i] + " exceeds " + bound);
    }

    // ---- determinism and offsets -------------------------------------------------------------------------------

    @Test
    void sameSeedAndOffsetRepeatAndAnOffsetShiftsTheStreamExactly() {
        int n = 50_000, k = 12_345; // k is not a multiple of the 64-counter Philox block; n spans several chunks
        for (DType t : new DType[] {DType.F32, DType.F64, DType.BF16})
            for (int kind : new int[] {UNIFORM, NORMAL}) {
                double[] whole = fill(t, n + k, kind, -1, 1, 31, 0);
                assertArrayEquals(whole, fill(t, n + k, kind, -1, 1, 31, 0), t + " kind " + kind + " repeats");
                double[] shifted = fill(t, n, kind, -1, 1, 31, k);
                assertArrayEquals(java.util.Arrays.copyOfRange(whole, k, k + n), shifted,
                        t + " kind " + kind + ": offset k gives elements k.. of offset 0");
                double[] other = fill(t, n, kind, -1, 1, 32, 0);
                int same = 0;
                for (int i = 0; i < n; i++) if (other[i] == whole[i]) same++;
                assertTrue(same < n / 50, t + " kind " + kind + ": seeds 31 and 32 agree on " + same + " of " + n);
            }
    }

    @Test
    void badRandomArgumentsAreRefused() {
        try (NativeMemory mem = new NativeMemory()) {
            MemorySegment x = mem.alloc(64);
            NativeException e = assertThrows(NativeException.class,
                    () -> mem.abi.fillRandom(mem.s, DType.I32.code, 4, x.address(), UNIFORM, 0, 1, 1, 0));
            assertEquals(NativeException.Status.UNSUPPORTED, e.status());
            e = assertThrows(NativeException.class,
                    () -> mem.abi.fillRandom(mem.s, DType.F32.code, 4, x.address(), UNIFORM, 2, 1, 1, 0));
            assertTrue(e.getMessage().contains("rlhf4j_fill_random") && e.getMessage().contains("a = 2"), e.getMessage());
            e = assertThrows(NativeException.class,
                    () -> mem.abi.fillRandom(mem.s, DType.F32.code, 4, x.address(), NORMAL, 0, -1, 1, 0));
            assertTrue(e.getMessage().contains("b = -1"), e.getMessage());
            e = assertThrows(NativeException.class,
                    () -> mem.abi.fillRandom(mem.s, DType.F32.code, 4, x.address(), UNIFORM, Double.NaN, 1, 1, 0));
            assertTrue(e.getMessage().contains("finite"), e.getMessage());
            e = assertThrows(NativeException.class,
                    () -> mem.abi.fillRandom(mem.s, DType.F32.code, 4, x.address(), 2, 0, 1, 1, 0));
            assertTrue(e.getMessage().contains("kind"), e.getMessage());
        }
    }

    // ---- dropout -----------------------------------------------------------------------------------------------

    @Test
    void dropoutKeepsAboutOneMinusPAndScalesKeptElementsExactly() {
        java.util.SplittableRandom r = new java.util.SplittableRandom(8);
        float[] xf = new float[N];
        double[] xd = new double[N];
        for (int i = 0; i < N; i++) {
            xd[i] = r.nextDouble(0.5, 2) * (r.nextBoolean() ? 1 : -1); // never 0, so dropped and kept are told apart
            xf[i] = (float) xd[i];
        }
        long seed = 0xfeedL, offset = 1000;
        try (NativeMemory mem = new NativeMemory()) {
            MemorySegment xs = mem.f32(xf), xs64 = mem.f64(xd), y = mem.alloc(4L * N), y64 = mem.alloc(8L * N);
            for (double p : new double[] {0.1, 0.5, 0.9}) {
                mem.abi.dropoutForward(mem.s, DType.F32.code, N, xs.address(), y.address(), p, seed, offset);
                mem.abi.dropoutForward(mem.s, DType.F64.code, N, xs64.address(), y64.address(), p, seed, offset);
                float[] yf = NativeMemory.floats(y);
                double[] yd = NativeMemory.doubles(y64);
                float scaleF = (float) (1 / (1 - p));
                double scaleD = 1 / (1 - p);
                long threshold = (long) Math.ceil(p * 0x1p24);
                int kept = 0;
                for (int i = 0; i < N; i++) {
                    boolean keep = yf[i] != 0;
                    if (keep) kept++;
                    if (keep ? yf[i] != xf[i] * scaleF : Float.floatToRawIntBits(yf[i]) != Float.floatToRawIntBits(xf[i] * 0f))
                        fail("p " + p + " f32 element " + i + ": " + yf[i] + " from " + xf[i]);
                    if (keep != (yd[i] != 0) || (keep ? yd[i] != xd[i] * scaleD : yd[i] != 0))
                        fail("p " + p + " f64 element " + i + ": " + yd[i] + " from " + xd[i] + " (f32 mask " + keep + ")");
                    if (i < 50_000 && keep != ((words(seed, offset, i)[0] >>> 8) >= threshold))
                        fail("p " + p + " element " + i + ": the mask is not (w0 >> 8) >= ceil(p 2^24)");
                }
                double q = 1 - p, se = Math.sqrt(p * q / N), frac = kept / (double) N;
                assertTrue(Math.abs(frac - q) <= 5 * se, "p " + p + ": kept " + frac + ", expected " + q + " +- 5 x " + se);
            }
        }
    }

    @Test
    void dropoutBackwardUsesExactlyTheForwardMask() {
        int n = 100_000;
        java.util.SplittableRandom r = new java.util.SplittableRandom(12);
        double[] x = new double[n], dy = new double[n], acc = new double[n];
        for (int i = 0; i < n; i++) {
            x[i] = 1 + r.nextDouble();
            dy[i] = r.nextDouble(-1, 1);
            acc[i] = r.nextDouble(-1, 1);
        }
        float[] xf = new float[n], dyf = new float[n], accf = new float[n];
        for (int i = 0; i < n; i++) {
            xf[i] = (float) x[i];
            dyf[i] = (float) dy[i];
            accf[i] = (float) acc[i];
        }
        double p = 0.3;
        long seed = 5, offset = 77;
        try (NativeMemory mem = new NativeMemory()) {
            // F64
            MemorySegment xs = mem.f64(x), y = mem.alloc(8L * n), g = mem.f64(dy), dx = mem.alloc(8L * n), dxa = mem.f64(acc);
            mem.abi.dropoutForward(mem.s, DType.F64.code, n, xs.address(), y.address(), p, seed, offset);
            mem.abi.dropoutBackward(mem.s, DType.F64.code, n, g.address(), dx.address(), p, seed, offset, 0);
            mem.abi.dropoutBackward(mem.s, DType.F64.code, n, g.address(), dxa.address(), p, seed, offset, 1);
            double[] yv = NativeMemory.doubles(y), dxv = NativeMemory.doubles(dx), dxav = NativeMemory.doubles(dxa);
            double scale = 1 / (1 - p);
            for (int i = 0; i < n; i++) {
                double f = yv[i] != 0 ? scale : 0;
                if (dxv[i] != dy[i] * f) fail("f64 dx element " + i + ": " + dxv[i] + ", want " + dy[i] * f);
                // dx += dy f, with or without a fused multiply-add
                if (dxav[i] != acc[i] + dy[i] * f && dxav[i] != Math.fma(dy[i], f, acc[i]))
                    fail("f64 accumulated dx element " + i + ": " + dxav[i] + ", want " + (acc[i] + dy[i] * f));
            }
            // F32
            MemorySegment xs32 = mem.f32(xf), y32 = mem.alloc(4L * n), g32 = mem.f32(dyf), dx32 = mem.alloc(4L * n),
                    dxa32 = mem.f32(accf);
            mem.abi.dropoutForward(mem.s, DType.F32.code, n, xs32.address(), y32.address(), p, seed, offset);
            mem.abi.dropoutBackward(mem.s, DType.F32.code, n, g32.address(), dx32.address(), p, seed, offset, 0);
            mem.abi.dropoutBackward(mem.s, DType.F32.code, n, g32.address(), dxa32.address(), p, seed, offset, 1);
            float[] y32v = NativeMemory.floats(y32), dx32v = NativeMemory.floats(dx32), dxa32v = NativeMemory.floats(dxa32);
            float scaleF = (float) scale;
            for (int i = 0; i < n; i++) {
                float f = y32v[i] != 0 ? scaleF : 0;
                if (dx32v[i] != dyf[i] * f) fail("f32 dx element " + i + ": " + dx32v[i] + ", want " + dyf[i] * f);
                if (dxa32v[i] != accf[i] + dyf[i] * f && dxa32v[i] != Math.fma(dyf[i], f, accf[i]))
                    fail("f32 accumulated dx element " + i + ": " + dxa32v[i] + ", want " + (accf[i] + dyf[i] * f));
            }
        }
    }

    @Test
    void dropoutWithPZeroIsTheIdentity() {
        int n = 70_000;
        java.util.SplittableRandom r = new java.util.SplittableRandom(2);
        float[] x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float) r.nextGaussian();
        x[3] = Float.NaN;
        x[4] = Float.NEGATIVE_INFINITY;
        try (NativeMemory mem = new NativeMemory()) {
            MemorySegment xs = mem.f32(x), y = mem.alloc(4L * n), dx = mem.alloc(4L * n);
            mem.abi.dropoutForward(mem.s, DType.F32.code, n, xs.address(), y.address(), 0.0, 9, 0);
            assertArrayEquals(NativeMemory.ints(xs), NativeMemory.ints(y), "forward with p = 0");
            mem.abi.dropoutBackward(mem.s, DType.F32.code, n, xs.address(), dx.address(), 0.0, 9, 0, 0);
            assertArrayEquals(NativeMemory.ints(xs), NativeMemory.ints(dx), "backward with p = 0");
        }
    }

    @Test
    void dropoutWithPOneOrOutsideTheRangeIsRefusedWithAMessage() {
        try (NativeMemory mem = new NativeMemory()) {
            MemorySegment x = mem.f32(1, 2, 3, 4), y = mem.f32(7, 7, 7, 7);
            for (double p : new double[] {1.0, 1.5, -0.1, Double.NaN}) {
                NativeException e = assertThrows(NativeException.class,
                        () -> mem.abi.dropoutForward(mem.s, DType.F32.code, 4, x.address(), y.address(), p, 1, 0));
                assertEquals(NativeException.Status.INVALID_ARGUMENT, e.status());
                assertTrue(e.getMessage().contains("rlhf4j_dropout_forward") && e.getMessage().contains("p = ")
                        && e.getMessage().contains("[0, 1)"), e.getMessage());
                NativeException f = assertThrows(NativeException.class,
                        () -> mem.abi.dropoutBackward(mem.s, DType.F32.code, 4, x.address(), y.address(), p, 1, 0, 0));
                assertTrue(f.getMessage().contains("rlhf4j_dropout_backward"), f.getMessage());
            }
            assertArrayEquals(new float[] {7, 7, 7, 7}, NativeMemory.floats(y), "a refused call wrote y");
            NativeException u = assertThrows(NativeException.class,
                    () -> mem.abi.dropoutForward(mem.s, DType.BF16.code, 4, x.address(), y.address(), 0.5, 1, 0));
            assertEquals(NativeException.Status.UNSUPPORTED, u.status(), u.getMessage());
        }
    }
}
