package io.github.rlhf4j.kernels;

import static io.github.rlhf4j.kernels.KernelCheck.random;
import static io.github.rlhf4j.kernels.KernelCheck.randomInts;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.runtime.NativeException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * kernels/rope.cu (rotate-half rotary embedding, forward and backward) through the ABI on the emulated CUDA backend
 * against the CPU backend: full and partial rotary_dim, strided rows (q / k sliced out of a fused projection), more
 * than 256 frequencies (the kernel's cos / sin chunk), widths that take the 16-byte path and widths that do not,
 * positions up to 10^5 (large angles), accumulate 0 and 1.
 */
class RopeKernelTest {

    /** A check of one case; RopeKernelOnGpuTest runs the same cases on a real GPU. */
    KernelCheck check(DType t) {
        return KernelCheck.of(t);
    }

    /** The device under test, for direct calls. */
    Device target() {
        return Emulated.get().device();
    }
    /** B, T, H, D, rotary_dim, extra elements per strided row. */
    private static final int[][] CASES = {
        {1, 1, 1, 2, 2, 0}, {2, 3, 3, 8, 8, 0}, {2, 5, 4, 64, 64, 16}, {1, 7, 3, 80, 32, 3}, {3, 4, 2, 128, 96, 0},
        {1, 2, 1, 600, 600, 0},
    };

    private static float[] invFreq(int rotaryDim) {
        float[] f = new float[rotaryDim / 2];
        for (int i = 0; i < f.length; i++) f[i] = (float) (1.0 / Math.pow(10000.0, 2.0 * i / rotaryDim));
        return f;
    }

    private static int[] positions(long seed, int rows) {
        int[] p = randomInts(seed, rows, 0, 4096);
        p[rows - 1] = 100_000;
        return p;
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16"})
    void ropeForwardMatchesCpu(DType dt) {
        for (int[] cs : CASES) {
            int B = cs[0], T = cs[1], H = cs[2], D = cs[3], rot = cs[4], rows = B * T;
            long stride = (long) H * D + cs[5];
            try (KernelCheck k = check(dt)) {
                var x = k.input("x", random(rows * 7L + D, (int) (rows * stride), -2, 2));
                var pos = k.ints("positions", positions(rows + D, rows));
                var inv = k.inputF32("inv_freq", invFreq(rot));
                var y = k.output("y", (long) rows * H * D);
                k.run("rlhf4j_rope_forward", B + "x" + T + "x" + H + "x" + D + " rotary " + rot + " stride " + stride,
                        c -> c.abi.ropeForward(c.s, c.dtype, B, T, H, D, rot, c.p(x), stride, c.p(pos), c.p(inv),
                                c.p(y)))
                        .close(y);
            }
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16"})
    void ropeBackwardMatchesCpu(DType dt) {
        for (int[] cs : CASES) {
            int B = cs[0], T = cs[1], H = cs[2], D = cs[3], rot = cs[4], rows = B * T;
            long stride = (long) H * D + cs[5];
            for (int acc = 0; acc <= 1; acc++) {
                int ac = acc;
                try (KernelCheck k = check(dt)) {
                    var dy = k.input("dy", random(rows * 3L + D, rows * H * D, -2, 2));
                    var pos = k.ints("positions", positions(rows * 5L + D, rows));
                    var inv = k.inputF32("inv_freq", invFreq(rot));
                    long n = rows * stride;
                    var dx = ac == 1 ? k.inout("dx", random(23, (int) n, -1, 1)) : k.output("dx", n);
                    k.run("rlhf4j_rope_backward", B + "x" + T + "x" + H + "x" + D + " rotary " + rot + " stride "
                                    + stride + (ac == 1 ? " accumulate" : ""),
                            c -> c.abi.ropeBackward(c.s, c.dtype, B, T, H, D, rot, c.p(dy), c.p(pos), c.p(inv),
                                    c.p(dx), stride, ac))
                            .close(dx);
                }
            }
        }
    }

    /** F16 and F64 are refused as unsupported (this backend computes rope in f32 and bf16), not miscomputed. */
    @Test
    void otherDtypesAreUnsupported() {
        Device d = target();
        var abi = d.abi();
        long p = abi.malloc(d.handle(), 64);
        try {
            for (DType t : new DType[] {DType.F16, DType.F64}) {
                var e = assertThrows(NativeException.class,
                        () -> abi.ropeForward(d.stream(), t.code, 1, 1, 1, 2, 2, p, 2, p, p, p));
                assertEquals(NativeException.Status.UNSUPPORTED, e.status());
            }
        } finally {
            abi.free(d.handle(), p);
        }
    }
}
