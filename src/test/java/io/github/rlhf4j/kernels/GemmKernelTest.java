package io.github.rlhf4j.kernels;

import static io.github.rlhf4j.kernels.KernelCheck.random;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.NativeException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * kernels/gemm.cu (rlhf4j_gemm) through the ABI on the emulated CUDA backend, against the CPU backend: BF16 operands
 * run the tensor-core kernel (mma.sync, ldmatrix, cp.async), F32 operands the fp32 FMA kernel. Every transpose;
 * M, N, K of 1, 17, 33, 70 and across 128-wide tiles; leading dimensions that allow 16-byte copies, that do not, and
 * that allow them except at the K edge; batches with an operand shared (stride 0); bias or none; beta 0 over a C full
 * of NaN (C must not be read), beta != 0; alpha 0 and K = 0 with A and B NULL (C = beta C + bias); C in BF16 or F32.
 * Each case runs under KernelCheck's schedules (lanes in order and reversed, warps one at a time), which must agree
 * bit for bit. GemmKernelOnGpuTest runs the same cases on a real GPU (there through cuBLASLt when it is present).
 */
class GemmKernelTest {
    /** Tolerance of an F32 C: fp32 sums of at most ~130 products of magnitude <= 1, in another order. */
    static final double F32_ATOL = 2e-5, F32_RTOL = 1e-5;

    /** The largest errors seen, per dtype and output (in the test report). */
    @AfterAll
    static void worstErrors() {
        System.out.print(KernelCheck.summary());
    }

    /** The device under test for dtype dt, checked against the CPU backend. */
    KernelCheck check(DType dt) {
        return KernelCheck.of(dt);
    }

    /** One problem; the operands' buffers are sized from the shapes, leading dimensions and strides. */
    record Gemm(boolean ta, boolean tb, int m, int n, int k, int lda, int ldb, int ldc, int batch, long sa, long sb,
                long sc, double alpha, double beta, boolean bias, boolean cF32, boolean abNull) {
        static Gemm of(boolean ta, boolean tb, int m, int n, int k) {
            int lda = ta ? m : k, ldb = tb ? k : n;
            return new Gemm(ta, tb, m, n, k, lda, ldb, n, 1, 0, 0, 0, 1, 0, false, false, false);
        }

        Gemm ld(int lda, int ldb, int ldc) {
            return new Gemm(ta, tb, m, n, k, lda, ldb, ldc, batch, sa, sb, sc, alpha, beta, bias, cF32, abNull);
        }

        Gemm batch(int batch, long sa, long sb, long sc) {
            return new Gemm(ta, tb, m, n, k, lda, ldb, ldc, batch, sa, sb, sc, alpha, beta, bias, cF32, abNull);
        }

        Gemm scale(double alpha, double beta, boolean bias) {
            return new Gemm(ta, tb, m, n, k, lda, ldb, ldc, batch, sa, sb, sc, alpha, beta, bias, cF32, abNull);
        }

        Gemm cF32(boolean f32) {
            return new Gemm(ta, tb, m, n, k, lda, ldb, ldc, batch, sa, sb, sc, alpha, beta, bias, f32, abNull);
        }

        Gemm nullAB() {
            return new Gemm(ta, tb, m, n, k, lda, ldb, ldc, batch, sa, sb, sc, alpha, beta, bias, cF32, true);
        }

        long sizeA() {
            long one = (long) (ta ? k : m) * lda;
            return sa == 0 ? one : (batch - 1) * sa + one;
        }

        long sizeB() {
            long one = (long) (tb ? n : k) * ldb;
            return sb == 0 ? one : (batch - 1) * sb + one;
        }

        long sizeC() {
            return (batch - 1) * sc + (long) m * ldc;
        }

        @Override
        public String toString() {
            return (ta ? "A^T" : "A") + (tb ? "B^T" : "B") + " " + m + "x" + n + "x" + k + " ld " + lda + "/" + ldb
                    + "/" + ldc + (batch > 1 ? " batch " + batch + " strides " + sa + "/" + sb + "/" + sc : "")
                    + " alpha " + alpha + " beta " + beta + (bias ? " bias" : "") + (cF32 ? " C f32" : "")
                    + (abNull ? " A=B=NULL" : "");
        }
    }

    /** Runs g on the CPU and the device and compares C. */
    void run(DType dt, Gemm g) {
        run(dt, g, null);
    }

    /** As {@link #run(DType, Gemm)}; cDtype, when given, is C's (and bias's) dtype on both sides. */
    void run(DType dt, Gemm g, DType cDtype) {
        try (KernelCheck k = check(dt)) {
            long seed = g.hashCode();
            var a = g.abNull ? null : k.input("A", random(seed, (int) g.sizeA(), -1, 1));
            var b = g.abNull ? null : k.input("B", random(seed + 1, (int) g.sizeB(), -1, 1));
            float[] c0 = random(seed + 2, (int) g.sizeC(), -2, 2);
            float[] bias0 = random(seed + 3, g.n, -1, 1);
            KernelCheck.Buf c, bias = null;
            if (cDtype != null) {
                c = g.beta == 0 ? k.output("C", cDtype, g.sizeC()) : k.inout("C", cDtype, c0);
                if (g.bias) bias = k.input("bias", cDtype, bias0);
            } else if (g.cF32) {
                c = g.beta == 0 ? k.outputF32("C", g.sizeC()) : k.inoutF32("C", c0);
                if (g.bias) bias = k.inputF32("bias", bias0);
            } else {
                c = g.beta == 0 ? k.output("C", g.sizeC()) : k.inout("C", c0);
                if (g.bias) bias = k.input("bias", bias0);
            }
            var biasBuf = bias;
            var res = k.run("rlhf4j_gemm", g.toString(), x -> x.abi.gemm(x.s, g.ta ? 1 : 0, g.tb ? 1 : 0, g.m, g.n,
                    g.k, g.alpha, a == null ? 0 : x.p(a), g.lda, g.sa, b == null ? 0 : x.p(b), g.ldb, g.sb, x.dtype,
                    g.beta, x.p(c), g.ldc, g.sc, x.dtypeOf(c), g.batch, biasBuf == null ? 0 : x.p(biasBuf)));
            boolean bf16C = cDtype == DType.BF16 || (cDtype == null && !g.cF32 && dt == DType.BF16);
            if (bf16C) res.close(c, KernelCheck.BF16_ATOL, KernelCheck.BF16_RTOL);
            else res.close(c, F32_ATOL, F32_RTOL);
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16"})
    void everyTransposeAndAwkwardShapeMatchesCpu(DType dt) {
        int[][] shapes = {{1, 1, 1}, {17, 33, 70}, {70, 17, 33}, {33, 70, 17}, {130, 129, 40}};
        for (int[] s : shapes)
            for (int t = 0; t < 4; t++) run(dt, Gemm.of((t & 1) != 0, (t & 2) != 0, s[0], s[1], s[2]));
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16"})
    void leadingDimensionsForEveryCopyPathMatchCpu(DType dt) {
        for (int t = 0; t < 4; t++) {
            boolean ta = (t & 1) != 0, tb = (t & 2) != 0;
            // multiples of 8 everywhere: whole 16-byte cp.async chunks, two K steps (the double buffer turns over)
            run(dt, Gemm.of(ta, tb, 40, 72, 64));
            // padded multiples of 8 with K = 20: 16-byte copies, but the chunk at k = 16..23 straddles K
            run(dt, Gemm.of(ta, tb, 33, 24, 20).ld(ta ? 40 : 24, tb ? 24 : 32, 24));
            // padded by odd amounts: element-by-element loads throughout, C rows with a gap
            run(dt, Gemm.of(ta, tb, 19, 21, 23).ld(ta ? 22 : 26, tb ? 27 : 25, 29));
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16"})
    void alphaBetaAndBiasMatchCpu(DType dt) {
        for (boolean bias : new boolean[] {false, true}) {
            // beta == 0: C starts as NaN (the poison) and must not be read
            run(dt, Gemm.of(false, true, 17, 33, 70).scale(0.5, 0, bias));
            run(dt, Gemm.of(true, false, 33, 17, 40).scale(-1.25, 1.5, bias));
            run(dt, Gemm.of(false, false, 70, 130, 9).scale(1, -0.5, bias).cF32(true));
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16"})
    void alphaZeroAndEmptyKGiveBetaCPlusBias(DType dt) {
        for (boolean bias : new boolean[] {false, true}) {
            run(dt, Gemm.of(false, false, 17, 33, 70).scale(0, 0.75, bias).nullAB());
            run(dt, Gemm.of(true, true, 33, 17, 0).ld(33, 1, 17).scale(1, 0, bias).nullAB());
            run(dt, Gemm.of(false, true, 5, 7, 0).ld(1, 1, 9).scale(2, -1, bias).cF32(true));
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16"})
    void batchesWithSharedOperandsMatchCpu(DType dt) {
        // stride_a = 0: one A for the batch (a weight); B and C per entry
        run(dt, Gemm.of(false, true, 17, 33, 24).batch(3, 0, 33 * 24, 17 * 33).scale(1, 0, true));
        // stride_b = 0 and padded strides between entries
        run(dt, Gemm.of(true, false, 33, 17, 40).batch(3, 40 * 33 + 5, 0, 33 * 17 + 3).scale(0.5, 1, false));
        // attention-like: both per entry, C in F32
        run(dt, Gemm.of(false, true, 19, 19, 16).batch(4, 19 * 16, 19 * 16, 19 * 19).cF32(true));
    }

    @Test
    void f32OperandsWithBf16OutputMatchCpu() {
        run(DType.F32, Gemm.of(false, true, 33, 17, 40).scale(1, 0, true), DType.BF16);
        run(DType.F32, Gemm.of(true, false, 17, 70, 33).scale(0.5, 2, false), DType.BF16);
    }

    /** The device's status for a call with buffers of a few elements (the check fails before anything is read). */
    NativeException.Status status(DType dt, int abDtype, int cDtype, long lda, long strideC, long batch) {
        try (KernelCheck k = check(dt)) {
            var a = k.input("A", random(1, 64, -1, 1));
            var c = k.output("C", 64);
            AssertionError e = assertThrows(AssertionError.class, () -> k.runTarget(x -> x.abi.gemm(x.s, 0, 0, 4, 4,
                    4, 1, x.p(a), lda, 0, x.p(a), 4, 0, abDtype, 0, x.p(c), 4, strideC, cDtype, batch, 0)));
            NativeException n = assertInstanceOf(NativeException.class, e.getCause());
            assertTrue(n.getMessage().contains("rlhf4j_gemm"), n.getMessage());
            return n.status();
        }
    }

    @Test
    void f16AndF64AreUnsupportedAndBadArgumentsAreInvalid() {
        int f32 = DType.F32.code, bf16 = DType.BF16.code, f16 = DType.F16.code, f64 = DType.F64.code;
        assertEquals(NativeException.Status.UNSUPPORTED, status(DType.F32, f16, f32, 4, 0, 1));
        assertEquals(NativeException.Status.UNSUPPORTED, status(DType.F32, bf16, f16, 4, 0, 1));
        assertEquals(NativeException.Status.UNSUPPORTED, status(DType.F32, f64, f64, 4, 0, 1));
        assertEquals(NativeException.Status.INVALID_ARGUMENT, status(DType.F32, f32, f32, 3, 0, 1)); // lda < K
        assertEquals(NativeException.Status.INVALID_ARGUMENT, status(DType.F32, f32, f32, 4, 0, 2)); // stride_c 0
    }
}
