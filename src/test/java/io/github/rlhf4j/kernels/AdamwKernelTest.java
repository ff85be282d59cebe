package io.github.rlhf4j.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.rlhf4j.runtime.Abi;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.runtime.NativeException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * kernels/adamw.cu on the emulated CUDA backend: one AdamW step must give the CPU backend's bits exactly (both follow
 * torch's op order with the same two fused multiply-adds and IEEE division and square root), for every grad dtype
 * (F32, BF16, F16), every param_copy dtype (none, F32, BF16, F16), both of torch's lerp formulas (beta1 above and
 * below 0.5), grad scaling, weight decay, late steps, awkward sizes and unaligned starts.
 */
class AdamwKernelTest {
    static final int[] SIZES = {1, 13, 3001};

    @AfterAll
    static void report() {
        System.out.println("AdamwKernelTest worst errors:\n" + KernelCheck.summary());
    }

    /** A check of one case; AdamwKernelOnGpuTest runs the same cases on a real GPU. */
    KernelCheck check(DType t) {
        return KernelCheck.of(t);
    }

    /** The device under test, for direct calls. */
    Device target() {
        return Emulated.get().device();
    }

    record Hyper(String name, double lr, double beta1, double beta2, double eps, double wd, long step, double scale) {}

    static final Hyper[] HYPERS = {
        new Hyper("torch defaults, step 1", 1e-3, 0.9, 0.999, 1e-8, 0.01, 1, 1),
        new Hyper("beta1 0.3 (the other lerp), grad_scale 0.25, step 7", 3e-4, 0.3, 0.95, 1e-6, 0.1, 7, 0.25),
        new Hyper("no decay, step 100000, eps 0", 1e-2, 0.5, 0.9999, 0, 0, 100000, 1),
    };

    static void step(KernelCheck k, String name, int n, int offset, Hyper h, DType gradType, DType copyType) {
        float[] g = KernelCheck.random(1, n + offset, -1, 1);
        g[offset] = 0; // a zero gradient
        var param = k.inoutF32("param", KernelCheck.random(2, n + offset, -0.5, 0.5));
        var m = k.inoutF32("m", KernelCheck.random(3, n + offset, -0.01, 0.01));
        float[] vv = KernelCheck.random(4, n + offset, 0, 1e-4);
        vv[offset] = 0; // v == 0 with g == 0: denom = eps (0 with eps 0: the CPU's 0/0 too)
        var v = k.inoutF32("v", vv);
        var grad = k.input("grad", gradType, g);
        var copy = copyType == null ? null : k.output("copy", copyType, n + offset);
        var r = k.run("rlhf4j_adamw_step", name + " " + h.name + " grad " + gradType + " copy " + copyType + " n=" + n
                + (offset > 0 ? " unaligned" : ""), c -> c.abi.adamwStep(c.s, n, c.p(param, offset),
                c.p(grad, offset), gradType.code, c.p(m, offset), c.p(v, offset), h.lr, h.beta1, h.beta2, h.eps, h.wd,
                h.step, h.scale, copy == null ? 0 : c.p(copy, offset), copyType == null ? 0 : copyType.code));
        r.exact(param).exact(m).exact(v);
        if (copy != null) r.exact(copy);
    }

    @Test
    void oneStepIsBitIdenticalToTheCpuBackend() {
        DType[] copies = {null, DType.F32, DType.BF16, DType.F16};
        for (Hyper h : HYPERS)
            for (DType gt : new DType[] {DType.F32, DType.BF16, DType.F16})
                for (DType ct : copies)
                    for (int n : SIZES)
                        try (KernelCheck k = check(DType.F32)) {
                            step(k, "", n, 0, h, gt, ct);
                        }
    }

    @Test
    void unalignedBuffersTakeTheElementPathAndAgree() {
        for (int offset : new int[] {1, 2, 3})
            try (KernelCheck k = check(DType.F32)) {
                step(k, "offset " + offset, 3001, offset, HYPERS[0], DType.BF16, DType.BF16);
            }
    }

    @Test
    void updateFollowsTheFormula() {
        // Independent of the CPU backend: one parameter, torch's formula in double, to f32 tolerance.
        try (KernelCheck k = check(DType.F32)) {
            var param = k.inoutF32("param", new float[] {0.5f});
            var m = k.inoutF32("m", new float[] {0.02f});
            var v = k.inoutF32("v", new float[] {0.0004f});
            var grad = k.inputF32("grad", new float[] {-0.3f});
            double lr = 0.01, b1 = 0.9, b2 = 0.99, eps = 1e-8, wd = 0.1;
            long step = 3;
            var r = k.run("rlhf4j_adamw_step", "formula", c -> c.abi.adamwStep(c.s, 1, c.p(param), c.p(grad),
                    DType.F32.code, c.p(m), c.p(v), lr, b1, b2, eps, wd, step, 1, 0, 0));
            double g = -0.3f, p = 0.5f * (1 - lr * wd);
            double mm = b1 * 0.02f + (1 - b1) * g, vv = b2 * 0.0004f + (1 - b2) * g * g;
            double denom = Math.sqrt(vv) / Math.sqrt(1 - Math.pow(b2, step)) + eps;
            p -= lr / (1 - Math.pow(b1, step)) * mm / denom;
            r.close(param, new double[] {p}, 0, 1e-6).close(m, new double[] {mm}, 0, 1e-6)
                    .close(v, new double[] {vv}, 0, 1e-6);
        }
    }

    @Test
    void rejectsWhatTheCpuBackendRejects() {
        Device dev = target();
        Abi abi = dev.abi();
        long s = dev.stream();
        long p = abi.malloc(dev.handle(), 64);
        try {
            var e = assertThrows(NativeException.class, () -> abi.adamwStep(s, 4, p, p, DType.F64.code, p, p, 1e-3,
                    0.9, 0.999, 1e-8, 0, 1, 1, 0, 0));
            assertEquals(NativeException.Status.UNSUPPORTED, e.status());
            assertTrue(e.getMessage().contains("rlhf4j_adamw_step: grad_dtype f64"), e.getMessage());
            e = assertThrows(NativeException.class, () -> abi.adamwStep(s, 4, p, p, DType.F32.code, p, p, 1e-3, 0.9,
                    0.999, 1e-8, 0, 0, 1, 0, 0));
            assertTrue(e.getMessage().contains("step = 0 must be >= 1"), e.getMessage());
            e = assertThrows(NativeException.class, () -> abi.adamwStep(s, 4, p, p, DType.F32.code, p, p, 1e-3, 1.0,
                    0.999, 1e-8, 0, 1, 1, 0, 0));
            assertTrue(e.getMessage().contains("beta1 = 1 must be in [0, 1)"), e.getMessage());
            e = assertThrows(NativeException.class, () -> abi.adamwStep(s, 4, p, p, DType.F32.code, p, p, 1e-3, 0.9,
                    0.999, 1e-8, 0, 1, Double.NaN, 0, 0));
            assertTrue(e.getMessage().contains("grad_scale"), e.getMessage());
            e = assertThrows(NativeException.class, () -> abi.adamwStep(s, 4, p, p, DType.F32.code, p, p, 1e-3, 0.9,
                    0.999, 1e-8, 0, 1, 1, p, DType.I32.code));
            assertEquals(NativeException.Status.UNSUPPORTED, e.status());
            abi.adamwStep(s, 0, 0, 0, DType.F32.code, 0, 0, 1e-3, 0.9, 0.999, 1e-8, 0, 1, 1, 0, 0); // n == 0
        } finally {
            abi.free(dev.handle(), p);
        }
    }

    @Test
    void repeatedStepsStayIdenticalToTheCpuBackend() {
        // Ten steps on each side, state carried over: errors would compound if a single step were off by an ulp.
        int n = 1001;
        try (KernelCheck k = check(DType.F32)) {
            float[] p0 = KernelCheck.random(5, n, -1, 1);
            var param = k.inoutF32("param", p0);
            var m = k.inoutF32("m", new float[n]);
            var v = k.inoutF32("v", new float[n]);
            var grad = k.input("grad", DType.BF16, KernelCheck.random(6, n, -1, 1));
            var r = k.run("rlhf4j_adamw_step", "ten steps", c -> {
                for (int step = 1; step <= 10; step++)
                    c.abi.adamwStep(c.s, n, c.p(param), c.p(grad), DType.BF16.code, c.p(m), c.p(v), 1e-2, 0.9, 0.999,
                            1e-8, 0.01, step, 1, 0, 0);
            });
            r.exact(param).exact(m).exact(v);
            double[] after = r.device(param);
            int moved = 0;
            for (int i = 0; i < n; i++) if (after[i] != p0[i]) moved++;
            assertTrue(moved > n / 2, "only " + moved + " of " + n + " parameters moved in ten steps");
        }
    }
}
