package io.github.rlhf4j.kernels;

import static io.github.rlhf4j.kernels.KernelCheck.random;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.runtime.NativeException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * kernels/softmax.cu's softmax / log_softmax, forward and backward, through the ABI on the emulated CUDA backend
 * against the CPU backend. Column counts cover one element, rows shorter than a 16-byte vector, rows whose starts
 * fall on every 2-byte phase (odd cols: the row walker's head / body / tail split), and rows long enough that each
 * thread of a 1024-thread block takes several vectors. -inf entries (masking) and a row that is all -inf (NaN, as
 * on the CPU) are included.
 */
class SoftmaxKernelTest {

    /** A check of one case; SoftmaxKernelOnGpuTest runs the same cases on a real GPU. */
    KernelCheck check(DType t) {
        return KernelCheck.of(t);
    }

    /** The device under test, for direct calls. */
    Device target() {
        return Emulated.get().device();
    }
    private static final int[][] SHAPES = {{1, 1}, {3, 7}, {37, 1000}, {5, 5003}, {2, 40_007}};

    private static float[] logitsWithMasks(long seed, int rows, int cols) {
        float[] x = random(seed, rows * cols, -6, 6);
        if (cols > 3)
            for (int r = 0; r < rows; r++) x[r * cols + (r * 7) % cols] = Float.NEGATIVE_INFINITY;
        if (rows >= 3)
            for (int c = 0; c < cols; c++) x[2 * cols + c] = Float.NEGATIVE_INFINITY; // a fully masked row
        return x;
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16"})
    void softmaxForwardMatchesCpu(DType dt) {
        for (int[] sh : SHAPES) {
            int rows = sh[0], cols = sh[1];
            for (int log = 0; log <= 1; log++) {
                int lg = log;
                try (KernelCheck k = check(dt)) {
                    var x = k.input("x", logitsWithMasks(rows * 7L + cols, rows, cols));
                    var y = k.output("y", (long) rows * cols);
                    k.run(lg == 1 ? "rlhf4j_softmax_forward(log)" : "rlhf4j_softmax_forward", rows + "x" + cols,
                            c -> c.abi.softmaxForward(c.s, c.dtype, lg, rows, cols, c.p(x), c.p(y)))
                            .close(y);
                }
            }
        }
    }

    /** softmax (or log_softmax) of random logits, row by row, in double: the y a forward would have saved. */
    private static float[] forward(float[] x, int rows, int cols, boolean log) {
        float[] y = new float[x.length];
        for (int r = 0; r < rows; r++) {
            double m = Double.NEGATIVE_INFINITY, s = 0;
            for (int c = 0; c < cols; c++) m = Math.max(m, x[r * cols + c]);
            for (int c = 0; c < cols; c++) s += Math.exp(x[r * cols + c] - m);
            for (int c = 0; c < cols; c++)
                y[r * cols + c] = (float) (log ? x[r * cols + c] - m - Math.log(s) : Math.exp(x[r * cols + c] - m) / s);
        }
        return y;
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16"})
    void softmaxBackwardMatchesCpu(DType dt) {
        for (int[] sh : SHAPES) {
            int rows = sh[0], cols = sh[1];
            for (int log = 0; log <= 1; log++)
                for (int acc = 0; acc <= 1; acc++) {
                    int lg = log, ac = acc;
                    try (KernelCheck k = check(dt)) {
                        var y = k.input("y", forward(random(rows + cols, rows * cols, -4, 4), rows, cols, lg == 1));
                        var dy = k.input("dy", random(rows * 3L + cols, rows * cols, -1, 1));
                        long n = (long) rows * cols;
                        var dx = ac == 1 ? k.inout("dx", random(9, (int) n, -1, 1)) : k.output("dx", n);
                        k.run(lg == 1 ? "rlhf4j_softmax_backward(log)" : "rlhf4j_softmax_backward",
                                rows + "x" + cols + (ac == 1 ? " accumulate" : ""),
                                c -> c.abi.softmaxBackward(c.s, c.dtype, lg, rows, cols, c.p(y), c.p(dy), c.p(dx), ac))
                                .close(dx);
                    }
                }
        }
    }

    /** F16 and F64 are refused as unsupported (this backend computes these ops in f32 and bf16), not miscomputed. */
    @Test
    void otherDtypesAreUnsupported() {
        Device d = target();
        var abi = d.abi();
        long p = abi.malloc(d.handle(), 64);
        try {
            for (DType t : new DType[] {DType.F16, DType.F64}) {
                var e = assertThrows(NativeException.class,
                        () -> abi.softmaxForward(d.stream(), t.code, 0, 1, 2, p, p));
                assertEquals(NativeException.Status.UNSUPPORTED, e.status());
                e = assertThrows(NativeException.class,
                        () -> abi.logprobsForward(d.stream(), t.code, 1, 2, p, 2, p, -100, p, 0));
                assertEquals(NativeException.Status.UNSUPPORTED, e.status());
            }
        } finally {
            abi.free(d.handle(), p);
        }
    }
}
