package io.github.rlhf4j.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.rlhf4j.runtime.Abi;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.runtime.NativeException;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * kernels/elementwise.cu on the emulated CUDA backend against the CPU backend: fill, fill_random, convert,
 * copy_strided, unary and binary with their backward, reduce, masked reduce, axpby and dropout, every op in F32 and
 * BF16, with awkward sizes (1, odd, not a multiple of the 16-byte vector, more than one block), unaligned starts
 * (the scalar path), accumulate 0 and 1. Each case also runs under every KernelCheck schedule (lanes in order and
 * reversed, warps one at a time).
 *
 * <p>Tolerances: F32 results within 1e-6 + 1e-5 |expected| of the CPU's (the two libms differ by an ulp or two);
 * BF16 results (computed in fp32 from the same bf16 inputs, rounded once) within 1e-5 + 1e-2 |expected|. Copies,
 * conversions, fills, dropout and uniform random fills must be bit-identical.
 */
class ElementwiseKernelTest {
    static final List<DType> DTYPES = List.of(DType.F32, DType.BF16);
    /** 1, odd, not a multiple of 4 or 8, several blocks of 256 threads x 16 bytes. */
    static final int[] SIZES = {1, 13, 3001};
    static final String[] UNARY = {"EXP", "LOG", "AFFINE", "CLAMP", "RELU", "GELU_TANH", "GELU_ERF", "SILU",
        "SIGMOID", "LOG_SIGMOID", "TANH", "SQUARE", "SQRT", "ABS"};
    static final String[] BINARY = {"ADD", "SUB", "MUL", "DIV", "MAX", "MIN"};

    @AfterAll
    static void report() {
        System.out.println("ElementwiseKernelTest worst errors:\n" + KernelCheck.summary());
    }

    /** A check of one case; ElementwiseKernelOnGpuTest runs the same cases on a real GPU. */
    KernelCheck check(DType t) {
        return KernelCheck.of(t);
    }

    /** The device under test, for direct calls. */
    Device target() {
        return Emulated.get().device();
    }

    // ---- unary ------------------------------------------------------------------------------------------------------

    static float[] unaryInput(int op, long seed, int n) {
        boolean positive = op == 1 || op == 12; // LOG, SQRT
        float[] x = KernelCheck.random(seed, n, positive ? 0.05 : -4, 4);
        if (!positive && n > 8) { // the kinks and edges: 0, the clamp bounds
            x[1] = 0;
            x[2] = -0.5f;
            x[3] = 0.75f;
        }
        return x;
    }

    static double unaryRef(int op, double x) {
        return switch (op) {
            case 0 -> Math.exp(x);
            case 1 -> Math.log(x);
            case 2 -> 1.5 * x - 0.25;
            case 3 -> Math.min(Math.max(x, -0.5), 0.75);
            case 4 -> Math.max(x, 0);
            case 8 -> 1 / (1 + Math.exp(-x));
            case 10 -> Math.tanh(x);
            case 12 -> Math.sqrt(x);
            default -> x; // not read (derivatives of these ops read x only)
        };
    }

    @Test
    void unaryMatchesCpuForEveryOpAndDtype() {
        for (DType t : DTYPES)
            for (int op = 0; op < UNARY.length; op++)
                for (int n : SIZES)
                    try (KernelCheck k = check(t)) {
                        final int o = op;
                        var x = k.input("x", unaryInput(op, 100 + op, n + 1));
                        var y = k.output("y", n);
                        k.run("rlhf4j_unary", UNARY[op] + " n=" + n, c -> c.abi.unary(c.s, o, c.dtype, n, c.p(x),
                                c.p(y), 1.5, o == 3 ? 0.75 : -0.25)).close(y);
                        // unaligned start: x + 1 (the element-by-element path)
                        k.run("rlhf4j_unary", UNARY[op] + " unaligned n=" + n, c -> c.abi.unary(c.s, o, c.dtype, n,
                                c.p(x, 1), c.p(y), 1.5, o == 3 ? 0.75 : -0.25)).close(y);
                    }
    }

    @Test
    void unaryInPlace() {
        for (DType t : DTYPES)
            try (KernelCheck k = check(t)) {
                var xy = k.inout("xy", KernelCheck.random(7, 3001, -3, 3));
                k.run("rlhf4j_unary", "GELU_TANH in place", c -> c.abi.unary(c.s, 5, c.dtype, 3001, c.p(xy), c.p(xy),
                        0, 0)).close(xy);
            }
    }

    @Test
    void unaryBackwardMatchesCpuForEveryOpDtypeAndAccumulate() {
        for (DType t : DTYPES)
            for (int op = 0; op < UNARY.length; op++)
                for (int n : SIZES)
                    try (KernelCheck k = check(t)) {
                        final int o = op;
                        float[] xv = unaryInput(op, 200 + op, n);
                        float[] yv = new float[n];
                        for (int i = 0; i < n; i++) yv[i] = (float) unaryRef(op, KernelCheck.round(t, xv[i]));
                        var x = k.input("x", xv);
                        var y = k.input("y", yv);
                        var dy = k.input("dy", KernelCheck.random(300 + op, n, -2, 2));
                        var dx = k.output("dx", n);
                        var acc = k.inout("dx_acc", KernelCheck.random(400 + op, n, -1, 1));
                        boolean readsY = o == 0 || o == 8 || o == 10 || o == 12;
                        // the argument the derivative does not read is passed as NULL
                        k.run("rlhf4j_unary_backward", UNARY[op] + " n=" + n, c -> c.abi.unaryBackward(c.s, o,
                                c.dtype, n, readsY ? 0 : c.p(x), readsY ? c.p(y) : 0, c.p(dy), c.p(dx), 1.5,
                                o == 3 ? 0.75 : -0.25, 0)).close(dx);
                        k.run("rlhf4j_unary_backward", UNARY[op] + " accumulate n=" + n, c -> c.abi.unaryBackward(
                                c.s, o, c.dtype, n, c.p(x), c.p(y), c.p(dy), c.p(acc), 1.5, o == 3 ? 0.75 : -0.25, 1))
                                .close(acc);
                    }
    }

    // ---- binary -----------------------------------------------------------------------------------------------------

    /** A broadcast layout: the output shape and each operand's strides, with the operand's element count. */
    record Layout(String name, long[] shape, long[] aStrides, int aSize, long[] bStrides, int bSize) {}

    static List<Layout> layouts() {
        return List.of(
                new Layout("contiguous [3001]", new long[] {3001}, new long[] {1}, 3001, new long[] {1}, 3001),
                new Layout("row broadcast [37,29]+[29]", new long[] {37, 29}, new long[] {29, 1}, 37 * 29,
                        new long[] {0, 1}, 29),
                new Layout("column broadcast [37,29]+[37,1]", new long[] {37, 29}, new long[] {29, 1}, 37 * 29,
                        new long[] {1, 0}, 37),
                new Layout("transposed a [37,29]", new long[] {37, 29}, new long[] {1, 37}, 37 * 29,
                        new long[] {29, 1}, 37 * 29),
                new Layout("scalar b [3,5,7]", new long[] {3, 5, 7}, new long[] {35, 7, 1}, 105,
                        new long[] {0, 0, 0}, 1),
                new Layout("0-d", new long[] {}, new long[] {}, 1, new long[] {}, 1));
    }

    /** Values from a small grid, so MAX and MIN see ties; b kept away from 0 for DIV. */
    static float[] operand(long seed, int n, boolean divisor) {
        int[] q = KernelCheck.randomInts(seed, n, -8, 9);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = divisor ? (q[i] >= 0 ? 0.5f + q[i] / 4f : -0.5f + q[i] / 4f) : q[i] / 4f;
        return v;
    }

    @Test
    void binaryMatchesCpuWithBroadcasting() {
        for (DType t : DTYPES)
            for (int op = 0; op < BINARY.length; op++)
                for (Layout l : layouts())
                    try (KernelCheck k = check(t)) {
                        final int o = op;
                        var a = k.input("a", operand(10 + op, l.aSize, false));
                        var b = k.input("b", operand(20 + op, l.bSize, true));
                        long total = Arrays.stream(l.shape).reduce(1, (p, q) -> p * q);
                        var out = k.output("out", total);
                        k.run("rlhf4j_binary", BINARY[op] + " " + l.name, c -> c.abi.binary(c.s, o, c.dtype,
                                l.shape.length, c.longs(l.shape), c.p(a), c.longs(l.aStrides), c.p(b),
                                c.longs(l.bStrides), c.p(out))).close(out);
                    }
    }

    @Test
    void binaryBackwardMatchesCpuWithBroadcastingAndAccumulate() {
        for (DType t : DTYPES)
            for (int op = 0; op < BINARY.length; op++)
                for (Layout l : layouts())
                    try (KernelCheck k = check(t)) {
                        final int o = op;
                        long total = Arrays.stream(l.shape).reduce(1, (p, q) -> p * q);
                        var a = k.input("a", operand(30 + op, l.aSize, false));
                        var b = k.input("b", operand(40 + op, l.bSize, true));
                        var g = k.input("dout", KernelCheck.random(50 + op, (int) total, -2, 2));
                        var da = k.output("da", total);
                        var db = k.output("db", total);
                        k.run("rlhf4j_binary_backward", BINARY[op] + " " + l.name, c -> c.abi.binaryBackward(c.s, o,
                                c.dtype, l.shape.length, c.longs(l.shape), c.p(a), c.longs(l.aStrides), c.p(b),
                                c.longs(l.bStrides), c.p(g), c.p(da), c.p(db), 0)).close(da).close(db);
                        var dacc = k.inout("da_acc", KernelCheck.random(60 + op, (int) total, -1, 1));
                        // accumulate, and db not wanted (NULL)
                        k.run("rlhf4j_binary_backward", BINARY[op] + " accumulate, db NULL " + l.name,
                                c -> c.abi.binaryBackward(c.s, o, c.dtype, l.shape.length, c.longs(l.shape), c.p(a),
                                        c.longs(l.aStrides), c.p(b), c.longs(l.bStrides), c.p(g), c.p(dacc), 0, 1))
                                .close(dacc);
                    }
    }

    // ---- reductions -------------------------------------------------------------------------------------------------

    @Test
    void reduceMatchesCpuOverRowsColumnsLongRowsAndEmpty() {
        long[][] shapes = { // outer, n, inner
            {1, 1, 1}, {3, 37, 1}, {300, 65, 1}, {2, 40000, 1}, {4, 5, 7}, {2, 1100, 3}, {3, 0, 1}, {2, 0, 5},
            {1, 3001, 1}};
        String[] ops = {"SUM", "MEAN", "SUMSQ"};
        for (DType t : DTYPES)
            for (long[] sh : shapes)
                for (int op = 0; op < 3; op++)
                    try (KernelCheck k = check(t)) {
                        final int o = op;
                        long outputs = sh[0] * sh[2];
                        var x = k.input("x", KernelCheck.random(70 + op, (int) Math.max(1, sh[0] * sh[1] * sh[2]),
                                -2, 3));
                        var y = k.output("y", outputs);
                        var yacc = k.inout("y_acc", KernelCheck.random(80 + op, (int) outputs, -1, 1));
                        String name = ops[op] + " [" + sh[0] + "," + sh[1] + "," + sh[2] + "]";
                        k.run("rlhf4j_reduce", name, c -> c.abi.reduce(c.s, o, c.dtype, sh[0], sh[1], sh[2], c.p(x),
                                c.p(y), 0)).close(y);
                        k.run("rlhf4j_reduce", name + " accumulate", c -> c.abi.reduce(c.s, o, c.dtype, sh[0], sh[1],
                                sh[2], c.p(x), c.p(yacc), 1)).close(yacc);
                    }
    }

    @Test
    void reduceIsDeterministicAcrossCalls() {
        try (KernelCheck k = check(DType.F32)) {
            var x = k.input("x", KernelCheck.random(90, 50000, -1, 1));
            var y = k.output("y", 1);
            double first = k.run("rlhf4j_reduce", "SUMSQ n=50000", c -> c.abi.reduce(c.s, 2, c.dtype, 1, 50000, 1,
                    c.p(x), c.p(y), 0)).close(y).device(y)[0];
            for (int i = 0; i < 2; i++)
                assertEquals(first, k.run("rlhf4j_reduce", "SUMSQ again", c -> c.abi.reduce(c.s, 2, c.dtype, 1, 50000,
                        1, c.p(x), c.p(y), 0)).device(y)[0], 0.0);
        }
    }

    static float[] mask(long seed, int rows, int cols, boolean fractional) {
        float[] m = new float[rows * cols];
        int[] bits = KernelCheck.randomInts(seed, m.length, 0, 4);
        for (int i = 0; i < m.length; i++) m[i] = bits[i] == 0 ? 0 : fractional ? bits[i] / 4f : 1;
        if (rows > 1) Arrays.fill(m, cols, 2 * cols, 0f); // an all-masked row: MEAN gives 0, gradient 0
        return m;
    }

    @Test
    void maskedReduceAndBackwardMatchCpu() {
        int[][] shapes = {{1, 1}, {5, 37}, {3, 700}, {2, 0}};
        for (DType t : DTYPES)
            for (int[] sh : shapes)
                for (int op = 0; op < 2; op++)
                    for (boolean frac : new boolean[] {false, true})
                        try (KernelCheck k = check(t)) {
                            final int o = op;
                            int rows = sh[0], cols = sh[1];
                            var x = k.input("x", KernelCheck.random(91 + op, Math.max(1, rows * cols), -3, 3));
                            var m = k.input("mask", cols == 0 ? new float[1] : mask(92 + op, rows, cols, frac));
                            var y = k.output("y", rows);
                            String name = (o == 0 ? "SUM" : "MEAN") + (frac ? " fractional" : "") + " [" + rows + ","
                                    + cols + "]";
                            k.run("rlhf4j_masked_reduce", name, c -> c.abi.maskedReduce(c.s, o, c.dtype, rows, cols,
                                    c.p(x), c.p(m), c.p(y))).close(y);
                            if (cols == 0) continue;
                            var dy = k.input("dy", KernelCheck.random(93 + op, rows, -2, 2));
                            var dx = k.output("dx", (long) rows * cols);
                            var dxa = k.inout("dx_acc", KernelCheck.random(94 + op, rows * cols, -1, 1));
                            k.run("rlhf4j_masked_reduce_backward", name, c -> c.abi.maskedReduceBackward(c.s, o,
                                    c.dtype, rows, cols, c.p(m), c.p(dy), c.p(dx), 0)).close(dx);
                            k.run("rlhf4j_masked_reduce_backward", name + " accumulate", c -> c.abi
                                    .maskedReduceBackward(c.s, o, c.dtype, rows, cols, c.p(m), c.p(dy), c.p(dxa), 1))
                                    .close(dxa);
                        }
    }

    // ---- axpby, dropout ---------------------------------------------------------------------------------------------

    @Test
    void axpbyMatchesCpuAndIgnoresOldValuesWhenBetaIsZero() {
        for (DType t : DTYPES)
            for (int n : SIZES)
                try (KernelCheck k = check(t)) {
                    var x = k.input("x", KernelCheck.random(95, n + 1, -2, 2));
                    var y = k.inout("y", KernelCheck.random(96, n, -2, 2));
                    float[] nan = new float[n];
                    Arrays.fill(nan, Float.NaN);
                    var ynan = k.inout("y_nan", nan);
                    k.run("rlhf4j_axpby", "ema n=" + n, c -> c.abi.axpby(c.s, c.dtype, n, 0.001, c.p(x), 0.999,
                            c.p(y))).close(y);
                    k.run("rlhf4j_axpby", "unaligned n=" + n, c -> c.abi.axpby(c.s, c.dtype, n, -0.5, c.p(x, 1), 2,
                            c.p(y))).close(y);
                    k.run("rlhf4j_axpby", "beta 0 over NaN n=" + n, c -> c.abi.axpby(c.s, c.dtype, n, 3, c.p(x), 0,
                            c.p(ynan))).close(ynan);
                }
    }

    @Test
    void dropoutIsBitIdenticalToCpu() {
        double[] ps = {0, 0.1, 0.5, 0.999};
        for (DType t : DTYPES)
            for (int n : new int[] {1, 3001})
                for (double p : ps)
                    try (KernelCheck k = check(t)) {
                        long seed = 0x9E3779B97F4A7C15L, offset = (1L << 33) + 5;
                        var x = k.input("x", KernelCheck.random(97, n + 1, -2, 2));
                        var y = k.output("y", n);
                        var xy = k.inout("xy", KernelCheck.random(98, n, -2, 2));
                        var dx = k.inout("dx", KernelCheck.random(99, n, -1, 1));
                        String name = "p=" + p + " n=" + n;
                        k.run("rlhf4j_dropout_forward", name, c -> c.abi.dropoutForward(c.s, c.dtype, n, c.p(x),
                                c.p(y), p, seed, offset)).exact(y);
                        k.run("rlhf4j_dropout_forward", name + " unaligned", c -> c.abi.dropoutForward(c.s, c.dtype,
                                n, c.p(x, 1), c.p(y), p, seed, offset)).exact(y);
                        k.run("rlhf4j_dropout_forward", name + " in place", c -> c.abi.dropoutForward(c.s, c.dtype,
                                n, c.p(xy), c.p(xy), p, seed, offset)).exact(xy);
                        k.run("rlhf4j_dropout_backward", name, c -> c.abi.dropoutBackward(c.s, c.dtype, n, c.p(x),
                                c.p(y), p, seed, offset, 0)).exact(y);
                        // accumulate: one fp32 add rounded once, the same on both sides
                        k.run("rlhf4j_dropout_backward", name + " accumulate", c -> c.abi.dropoutBackward(c.s,
                                c.dtype, n, c.p(x), c.p(dx), p, seed, offset, 1)).exact(dx);
                    }
    }

    // ---- fill, fill_random, convert -------------------------------------------------------------------------------

    @Test
    void fillIsBitIdenticalForEveryDtype() {
        double[] values = {0, -0.0, 1.5, -3.25e-3, 65504.5, 1e30, Double.NaN, Double.POSITIVE_INFINITY, 7};
        for (DType t : DType.values())
            for (int n : SIZES)
                try (KernelCheck k = check(DType.F32)) {
                    var x = k.output("x", t, n + 1);
                    for (double v : values) {
                        if (t == DType.I32 && !Double.isFinite(v) || t == DType.I32 && Math.abs(v) > 1e9) continue;
                        k.run("rlhf4j_fill", t + " " + v + " n=" + n, c -> c.abi.fill(c.s, t.code, n, c.p(x, 1), v))
                                .exact(x);
                    }
                }
    }

    @Test
    void fillRandomUniformIsBitIdenticalAndNormalWithinAnUlp() {
        long seed = 0x0123456789ABCDEFL;
        for (DType t : List.of(DType.F32, DType.BF16, DType.F16, DType.F64))
            for (int n : new int[] {1, 13, 3001})
                try (KernelCheck k = check(DType.F32)) {
                    var x = k.output("x", t, n);
                    long offset = (3L << 32) - 7; // the counter's high word changes inside the range
                    for (double[] ab : new double[][] {{0, 1}, {-0.1, 0.3}, {2, 2}, {-3, 1e-3}})
                        k.run("rlhf4j_fill_random", "uniform " + t + " [" + ab[0] + "," + ab[1] + ") n=" + n,
                                c -> c.abi.fillRandom(c.s, t.code, n, c.p(x), 0, ab[0], ab[1], seed, offset)).exact(x);
                    // normal: the CPU's glibc logf/cosf miss correct rounding on ~1% of arguments
                    double tol = t == DType.F64 ? 1e-14 : t == DType.F32 ? 4e-7 : 0x1p-7;
                    var r = k.run("rlhf4j_fill_random", "normal " + t + " n=" + n, c -> c.abi.fillRandom(c.s, t.code,
                            n, c.p(x), 1, 0.5, 2, seed, offset)).close(x, tol, tol);
                    double[] dev = r.device(x), cpu = r.reference(x);
                    int same = 0;
                    for (int i = 0; i < n; i++) if (dev[i] == cpu[i]) same++;
                    if (t != DType.F64)
                        assertTrue(same >= n * 0.95, "normal " + t + ": only " + same + " of " + n
                                + " values bit-identical to the CPU backend's");
                }
    }

    static float[] specials(DType src) {
        float[] v = {0f, -0f, 1f, -1.5f, 3.99f, -3.99f, 1e-3f, 65504f, 65520f, 1e5f, -1e5f, 3.0e38f, 1e-40f, 6e-8f,
            Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, 2.1474836E9f, -2.1474836E9f, 5e9f, -5e9f,
            1.00390625f, 1.01171875f, 0.333333f};
        if (src == DType.I32) {
            float[] w = {0, 1, -1, 7, -123456, 16777217, 2147483520f, -2147483648f, 99999};
            return w;
        }
        return v;
    }

    @Test
    void convertIsBitIdenticalForEveryDtypePair() {
        for (DType s : DType.values())
            for (DType d : DType.values()) {
                float[] v = specials(s);
                float[] big = KernelCheck.random(5, 3001, -70000, 70000);
                for (float[] vals : List.of(v, big))
                    try (KernelCheck k = check(DType.F32)) {
                        if (s == DType.I32) for (int i = 0; i < vals.length; i++) vals[i] = (int) vals[i];
                        var src = k.input("src", s, vals);
                        var dst = k.output("dst", d, vals.length);
                        k.run("rlhf4j_convert", s + "->" + d + " n=" + vals.length, c -> c.abi.convert(c.s, s.code,
                                c.p(src), d.code, c.p(dst), vals.length)).exact(dst);
                    }
            }
    }

    // ---- copy_strided ----------------------------------------------------------------------------------------------

    record Copy(String name, long[] shape, long[] srcStrides, long srcOffset, int srcSize, long[] dstStrides,
                long dstOffset, int dstSize) {}

    static List<Copy> copies() {
        return List.of(
                new Copy("contiguous [3001]", new long[] {3001}, new long[] {1}, 0, 3001, new long[] {1}, 0, 3001),
                new Copy("transpose [37,29]", new long[] {37, 29}, new long[] {1, 37}, 0, 37 * 29,
                        new long[] {29, 1}, 0, 37 * 29),
                new Copy("reversed rows, negative strides", new long[] {9, 11}, new long[] {-11, 1}, 88, 99,
                        new long[] {11, 1}, 0, 99),
                new Copy("negative destination stride", new long[] {13}, new long[] {1}, 0, 13, new long[] {-1}, 12,
                        13),
                new Copy("broadcast [5,7] from [7]", new long[] {5, 7}, new long[] {0, 1}, 0, 7, new long[] {7, 1}, 0,
                        35),
                new Copy("slice into concat [4,3] of [4,10] at column 5", new long[] {4, 3}, new long[] {3, 1}, 0, 12,
                        new long[] {10, 1}, 5, 40),
                new Copy("8-d permute", new long[] {2, 1, 3, 2, 1, 2, 3, 2},
                        new long[] {1, 1, 2, 6, 1, 12, 24, 72}, 0, 144,
                        new long[] {72, 72, 24, 12, 12, 6, 2, 1}, 0, 144),
                new Copy("batched transpose [3,70,45] of [3,45,70] (several 32x32 tiles)", new long[] {3, 70, 45},
                        new long[] {3150, 1, 70}, 0, 9450, new long[] {3150, 45, 1}, 0, 9450),
                new Copy("[B,T,H,D] -> [B,H,T,D]", new long[] {2, 3, 40, 16}, new long[] {1920, 16, 48, 1}, 0, 3840,
                        new long[] {1920, 640, 16, 1}, 0, 3840),
                new Copy("0-d", new long[] {}, new long[] {}, 0, 1, new long[] {}, 0, 1));
    }

    @Test
    void copyStridedIsExactForEveryDtypeAndLayout() {
        for (DType t : DType.values())
            for (Copy cp : copies())
                try (KernelCheck k = check(DType.F32)) {
                    float[] v = KernelCheck.random(11, cp.srcSize, -100, 100);
                    if (t == DType.I32) for (int i = 0; i < v.length; i++) v[i] = (int) v[i];
                    var src = k.input("src", t, v);
                    var dst = k.output("dst", t, cp.dstSize);
                    k.run("rlhf4j_copy_strided", t + " " + cp.name, c -> c.abi.copyStrided(c.s, t.code,
                            cp.shape.length, c.longs(cp.shape), c.p(src, cp.srcOffset), c.longs(cp.srcStrides),
                            c.p(dst, cp.dstOffset), c.longs(cp.dstStrides), 0))
                            .exact(dst); // unwritten elements keep the NaN poison on both sides
                }
    }

    @Test
    void copyStridedAccumulatesInF32Bf16AndF64() {
        for (DType t : DTYPES)
            for (Copy cp : copies())
                try (KernelCheck k = check(t)) {
                    var src = k.input("src", KernelCheck.random(12, cp.srcSize, -10, 10));
                    var dst = k.inout("dst", KernelCheck.random(13, cp.dstSize, -10, 10));
                    k.run("rlhf4j_copy_strided", "accumulate " + cp.name, c -> c.abi.copyStrided(c.s, c.dtype,
                            cp.shape.length, c.longs(cp.shape), c.p(src, cp.srcOffset), c.longs(cp.srcStrides),
                            c.p(dst, cp.dstOffset), c.longs(cp.dstStrides), 1)).exact(dst);
                }
        try (KernelCheck k = check(DType.F32)) {
            Copy cp = copies().get(1);
            var src = k.input("src", DType.F64, KernelCheck.random(14, cp.srcSize, -10, 10));
            var dst = k.inout("dst", DType.F64, KernelCheck.random(15, cp.dstSize, -10, 10));
            k.run("rlhf4j_copy_strided", "accumulate f64 " + cp.name, c -> c.abi.copyStrided(c.s, DType.F64.code,
                    cp.shape.length, c.longs(cp.shape), c.p(src), c.longs(cp.srcStrides), c.p(dst),
                    c.longs(cp.dstStrides), 1)).exact(dst);
        }
    }

    // ---- argument checks ---------------------------------------------------------------------------------------------

    static NativeException fails(Runnable r) {
        return assertThrows(NativeException.class, r::run);
    }

    @Test
    void rejectsBadArgumentsLikeTheCpuBackendAndRefusesF16AndF64Compute() {
        Device dev = target();
        Abi abi = dev.abi();
        long s = dev.stream();
        long x = abi.malloc(dev.handle(), 64), y = abi.malloc(dev.handle(), 64);
        try {
            var e = fails(() -> abi.unary(s, 99, DType.F32.code, 4, x, y, 0, 0));
            assertEquals(NativeException.Status.INVALID_ARGUMENT, e.status());
            assertTrue(e.getMessage().contains("rlhf4j_unary: unknown op 99"), e.getMessage());
            e = fails(() -> abi.unary(s, 0, DType.F64.code, 4, x, y, 0, 0));
            assertEquals(NativeException.Status.UNSUPPORTED, e.status());
            assertTrue(e.getMessage().contains("rlhf4j_unary: dtype f64"), e.getMessage());
            e = fails(() -> abi.unary(s, 0, 17, 4, x, y, 0, 0));
            assertEquals(NativeException.Status.INVALID_ARGUMENT, e.status());
            e = fails(() -> abi.unary(s, 3, DType.F32.code, 4, x, y, Double.NaN, 1));
            assertTrue(e.getMessage().contains("clamp bounds"), e.getMessage());
            e = fails(() -> abi.unaryBackward(s, 0, DType.F32.code, 4, x, 0, y, y, 0, 0, 0));
            assertTrue(e.getMessage().contains("rlhf4j_unary_backward: y is NULL"), e.getMessage());
            e = fails(() -> abi.reduce(s, 1, DType.F16.code, 1, 4, 1, x, y, 0));
            assertEquals(NativeException.Status.UNSUPPORTED, e.status());
            e = fails(() -> abi.reduce(s, 5, DType.F32.code, 1, 4, 1, x, y, 0));
            assertTrue(e.getMessage().contains("rlhf4j_reduce: unknown op 5"), e.getMessage());
            e = fails(() -> abi.maskedReduce(s, 2, DType.F32.code, 1, 4, x, x, y));
            assertTrue(e.getMessage().contains("must be SUM (0) or MEAN (1)"), e.getMessage());
            e = fails(() -> abi.dropoutForward(s, DType.F32.code, 4, x, y, 1.0, 1, 0));
            assertTrue(e.getMessage().contains("rlhf4j_dropout_forward: p = 1"), e.getMessage());
            e = fails(() -> abi.fillRandom(s, DType.I32.code, 4, x, 0, 0, 1, 1, 0));
            assertEquals(NativeException.Status.UNSUPPORTED, e.status());
            e = fails(() -> abi.fillRandom(s, DType.F32.code, 4, x, 0, 1, 0, 1, 0));
            assertTrue(e.getMessage().contains("uniform bounds"), e.getMessage());
            e = fails(() -> abi.fill(s, DType.I32.code, 4, x, 3e9));
            assertTrue(e.getMessage().contains("does not fit in i32"), e.getMessage());
            try (var arena = java.lang.foreign.Arena.ofConfined()) {
                var shape = arena.allocateFrom(java.lang.foreign.ValueLayout.JAVA_LONG, 4);
                var one = arena.allocateFrom(java.lang.foreign.ValueLayout.JAVA_LONG, 1);
                var zero = arena.allocateFrom(java.lang.foreign.ValueLayout.JAVA_LONG, 0);
                e = fails(() -> abi.copyStrided(s, DType.F32.code, 1, shape, x, one, y, zero, 0));
                assertTrue(e.getMessage().contains("destination elements would alias"), e.getMessage());
                e = fails(() -> abi.copyStrided(s, DType.I32.code, 1, shape, x, one, y, one, 1));
                assertEquals(NativeException.Status.UNSUPPORTED, e.status());
                e = fails(() -> abi.binary(s, 7, DType.F32.code, 1, shape, x, one, y, one, y));
                assertTrue(e.getMessage().contains("rlhf4j_binary: unknown op 7"), e.getMessage());
                e = fails(() -> abi.binary(s, 0, DType.F32.code, 9, shape, x, one, y, one, y));
                assertTrue(e.getMessage().contains("ndim = 9"), e.getMessage());
            }
            // zero sizes are fine and touch nothing, even with NULL data pointers
            abi.unary(s, 0, DType.BF16.code, 0, 0, 0, 0, 0);
            abi.reduce(s, 0, DType.F32.code, 0, 5, 1, 0, 0, 0);
            abi.dropoutBackward(s, DType.F32.code, 4, x, 0, 0.5, 1, 0, 0); // dx NULL: no gradient wanted
        } finally {
            abi.free(dev.handle(), x);
            abi.free(dev.handle(), y);
        }
    }
}
