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
 * kernels/layernorm.cu (LayerNorm and RMSNorm, forward and backward) through the ABI on the emulated CUDA backend,
 * against the CPU backend: awkward row counts and widths (dim 7 and 1 take the scalar path, 768 / 1000 the 16-byte
 * one, 8200 is too wide for the shared-memory accumulators of dweight / dbias and accumulates in global partials),
 * optional weight / bias / statistics / gradients absent, accumulate 0 and 1. Every case runs under KernelCheck's
 * schedules, which must agree bit for bit: that checks the parameter gradients are reduced
 * deterministically.
 */
class NormKernelTest {

    /** A check of one case; NormKernelOnGpuTest runs the same cases on a real GPU. */
    KernelCheck check(DType t) {
        return KernelCheck.of(t);
    }

    /** The device under test, for direct calls. */
    Device target() {
        return Emulated.get().device();
    }
    private static final double EPS = 1e-5;
    /** rows x dim; 37 rows make several warps and, in backward, two partial blocks. */
    private static final int[][] SHAPES = {{1, 768}, {3, 7}, {37, 1000}, {37, 1}, {2, 8200}};

    /** x with a large common offset: the mean must be centred, not E[x^2] - E[x]^2. */
    private static float[] rowsWithOffset(long seed, int rows, int dim) {
        float[] x = random(seed, rows * dim, -2, 2);
        for (int i = 0; i < x.length; i++) x[i] += 4 + (i / dim) % 3;
        return x;
    }

    /** Per-row mean and rstd as the forward saves them, computed in double and rounded to f32. */
    private static float[][] stats(double[] x, int rows, int dim, boolean rms) {
        float[] mean = new float[rows], rstd = new float[rows];
        for (int r = 0; r < rows; r++) {
            double mu = 0, sq = 0;
            if (!rms) {
                for (int c = 0; c < dim; c++) mu += x[r * dim + c];
                mu /= dim;
            }
            for (int c = 0; c < dim; c++) sq += (x[r * dim + c] - mu) * (x[r * dim + c] - mu);
            mean[r] = (float) mu;
            rstd[r] = (float) (1 / Math.sqrt(sq / dim + EPS));
        }
        return new float[][] {mean, rstd};
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16"})
    void layernormForwardMatchesCpu(DType dt) {
        for (int[] sh : SHAPES) {
            int rows = sh[0], dim = sh[1];
            // weight+bias+stats, weight only, bias only, neither (and no stats)
            boolean[][] variants = {
                {true, true, true}, {true, false, true}, {false, true, false}, {false, false, false}};
            for (boolean[] v : variants) {
                boolean hasW = v[0], hasB = v[1], hasStats = v[2];
                try (KernelCheck k = check(dt)) {
                    var x = k.input("x", rowsWithOffset(rows * 31L + dim, rows, dim));
                    var w = hasW ? k.input("weight", random(2, dim, 0.5, 1.5)) : null;
                    var b = hasB ? k.input("bias", random(3, dim, -1, 1)) : null;
                    var y = k.output("y", (long) rows * dim);
                    var mean = hasStats ? k.outputF32("mean", rows) : null;
                    var rstd = hasStats ? k.outputF32("rstd", rows) : null;
                    String what = rows + "x" + dim + (hasW ? " weight" : "") + (hasB ? " bias" : "")
                            + (hasStats ? " stats" : "");
                    var res = k.run("rlhf4j_layernorm_forward", what, c -> c.abi.layernormForward(c.s, c.dtype,
                            rows, dim, c.p(x), w == null ? 0 : c.p(w), b == null ? 0 : c.p(b), EPS, c.p(y),
                            mean == null ? 0 : c.p(mean), rstd == null ? 0 : c.p(rstd)));
                    res.close(y);
                    if (hasStats) // statistics are f32 on both sides, from the same (rounded) inputs
                        res.close(mean, KernelCheck.F32_ATOL, KernelCheck.F32_RTOL)
                                .close(rstd, KernelCheck.F32_ATOL, KernelCheck.F32_RTOL);
                }
            }
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16"})
    void rmsnormForwardMatchesCpu(DType dt) {
        for (int[] sh : SHAPES) {
            int rows = sh[0], dim = sh[1];
            for (boolean hasW : new boolean[] {true, false}) {
                try (KernelCheck k = check(dt)) {
                    var x = k.input("x", random(rows * 17L + dim, rows * dim, -3, 3));
                    var w = hasW ? k.input("weight", random(5, dim, 0.5, 1.5)) : null;
                    var y = k.output("y", (long) rows * dim);
                    var rstd = hasW ? k.outputF32("rstd", rows) : null;
                    var res = k.run("rlhf4j_rmsnorm_forward", rows + "x" + dim + (hasW ? " weight" : ""),
                            c -> c.abi.rmsnormForward(c.s, c.dtype, rows, dim, c.p(x), w == null ? 0 : c.p(w), EPS,
                                    c.p(y), rstd == null ? 0 : c.p(rstd)));
                    res.close(y);
                    if (hasW) res.close(rstd, KernelCheck.F32_ATOL, KernelCheck.F32_RTOL);
                }
            }
        }
    }

    /**
     * Backward variants: {weight, dx, accumulate, dweight, dbias}. dweight / dbias always accumulate (inouts); dx is
     * an output (accumulate 0) or an inout (accumulate 1), or absent.
     */
    private static final boolean[][] BACKWARD = {
        {true, true, false, true, true},
        {true, true, true, true, true},
        {false, true, false, true, false},
        {true, false, false, true, true},
        {true, true, true, false, false},
        {false, true, false, false, true},
    };

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16"})
    void layernormBackwardMatchesCpu(DType dt) {
        backward(dt, false);
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16"})
    void rmsnormBackwardMatchesCpu(DType dt) {
        backward(dt, true);
    }

    private void backward(DType dt, boolean rms) {
        String op = rms ? "rlhf4j_rmsnorm_backward" : "rlhf4j_layernorm_backward";
        for (int[] sh : SHAPES) {
            int rows = sh[0], dim = sh[1];
            for (boolean[] v : BACKWARD) {
                boolean hasW = v[0], hasDx = v[1], acc = v[2], hasDw = v[3], hasDb = v[4] && !rms;
                try (KernelCheck k = check(dt)) {
                    float[] xv = rms ? random(rows + dim, rows * dim, -3, 3) : rowsWithOffset(rows + dim, rows, dim);
                    var x = k.input("x", xv);
                    float[][] st = stats(x.values(), rows, dim, rms);
                    var mean = k.inputF32("mean", st[0]);
                    var rstd = k.inputF32("rstd", st[1]);
                    var w = hasW ? k.input("weight", random(7, dim, 0.5, 1.5)) : null;
                    var dy = k.input("dy", random(rows * 5L + dim, rows * dim, -1, 1));
                    long n = (long) rows * dim;
                    var dx = !hasDx ? null : acc ? k.inout("dx", random(11, (int) n, -1, 1)) : k.output("dx", n);
                    var dw = hasDw ? k.inout("dweight", random(13, dim, -1, 1)) : null;
                    var db = hasDb ? k.inout("dbias", random(17, dim, -1, 1)) : null;
                    String what = rows + "x" + dim + (hasW ? " weight" : "") + (hasDx ? " dx" : "")
                            + (acc ? " accumulate" : "") + (hasDw ? " dweight" : "") + (hasDb ? " dbias" : "");
                    var res = k.run(op, what, c -> {
                        long pw = w == null ? 0 : c.p(w), pdx = dx == null ? 0 : c.p(dx);
                        long pdw = dw == null ? 0 : c.p(dw), pdb = db == null ? 0 : c.p(db);
                        if (rms)
                            c.abi.rmsnormBackward(c.s, c.dtype, rows, dim, c.p(x), pw, c.p(rstd), c.p(dy), pdx, pdw,
                                    acc ? 1 : 0);
                        else
                            c.abi.layernormBackward(c.s, c.dtype, rows, dim, c.p(x), pw, c.p(mean), c.p(rstd),
                                    c.p(dy), pdx, pdw, pdb, acc ? 1 : 0);
                    });
                    // dx = rstd (g - mean(g) - xhat mean(g xhat)) cancels to ~0 when dim is 1 (rstd = 1/sqrt(eps)):
                    // rounding in g (the CPU fuses dy*w - mean(g) into one FMA) is amplified by rstd
                    double maxRstd = 1;
                    for (float r : st[1]) maxRstd = Math.max(maxRstd, r);
                    if (dx != null) res.close(dx, k.atol() * maxRstd, k.rtol());
                    if (dw != null) res.close(dw);
                    if (db != null) res.close(db);
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
                        () -> abi.layernormForward(d.stream(), t.code, 1, 2, p, 0, 0, EPS, p, 0, 0));
                assertEquals(NativeException.Status.UNSUPPORTED, e.status());
                e = assertThrows(NativeException.class,
                        () -> abi.rmsnormBackward(d.stream(), t.code, 1, 2, p, 0, p, p, p, 0, 0));
                assertEquals(NativeException.Status.UNSUPPORTED, e.status());
            }
        } finally {
            abi.free(d.handle(), p);
        }
    }
}
