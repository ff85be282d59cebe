package io.github.rlhf4j.kernels;

import static io.github.rlhf4j.kernels.KernelCheck.random;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.rlhf4j.runtime.Abi;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.runtime.NativeException;
import org.junit.jupiter.api.Test;

/**
 * kernels/attention.cu's rlhf4j_attention_forward and rlhf4j_attention_backward through the ABI on the emulated CUDA
 * backend against the CPU backend (every KernelCheck schedule bitwise identical, outputs NaN-poisoned, so an element no
 * thread writes fails; the gaps of strided dq/dk/dv stay NaN on both sides, so a write outside the head columns fails).
 *
 * <p>BF16 runs the tensor-core kernels at D = 64, 80, 96, 128 and the SIMT kernels at other head dims; F32 runs the
 * SIMT kernels. Shapes: T not a multiple of the 64-row tiles (1, 17, 70, 130), odd batch, Tq &lt; Tk (causal offset)
 * and Tq &gt; Tk (rows that see no key), GQA (Hq=4 over Hkv=2 and Hkv=1), a sliding window, key masks with left
 * padding (rows that see no key: zeros and lse = FLT_MAX) and holes, q/k/v as column slices of one fused qkv buffer
 * (row strides that are and are not multiples of 16 bytes), dq/dk/dv as slices of one fused dqkv buffer,
 * accumulate 0 and 1, NULL gradient outputs, no keys at all, and a key range long enough that one CTA of the
 * tensor-core backward walks several key blocks.
 *
 * <p>Tolerances are normwise per output: |device - cpu| &lt;= atol + rtol |cpu| with atol = rtol * max(1, max |cpu|)
 * of that output (inputs are O(1); where the CPU's gradient is exactly 0, e.g. dq of a row that sees one key, the
 * device's D_t - dP cancellation leaves ~1e-7 of rounding noise, as in every FlashAttention-2). rtol = 1e-2 for BF16
 * (bf16 outputs, and P rounded to bf16 before P V as every flash attention does; the CPU computes in F32 from the
 * same bf16-rounded inputs; gradients at 2e-2), 1e-5 for F32 (gradients at 2e-5). lse is F32 on both sides at 2e-5.
 */
class AttentionKernelTest {
    static final double BF16_TOL = 1e-2, F32_TOL = 1e-5, LSE_TOL = 2e-5;

    /** One attention problem. mask: 0 none, 1 left padding (one batch padded entirely), 2 left padding + holes. */
    record Case(DType dt, int B, int Tq, int Tk, int Hq, int Hkv, int D, boolean causal, int window, int mask,
                int fusedPad) {
        Case {
            if (fusedPad >= 0 && Tq != Tk) throw new IllegalArgumentException("a fused qkv needs Tq == Tk");
        }

        static Case of(DType dt, int B, int Tq, int Tk, int Hq, int Hkv, int D) {
            return new Case(dt, B, Tq, Tk, Hq, Hkv, D, true, 0, 0, -1);
        }

        Case nonCausal() {
            return new Case(dt, B, Tq, Tk, Hq, Hkv, D, false, window, mask, fusedPad);
        }

        Case window(int w) {
            return new Case(dt, B, Tq, Tk, Hq, Hkv, D, causal, w, mask, fusedPad);
        }

        Case mask(int m) {
            return new Case(dt, B, Tq, Tk, Hq, Hkv, D, causal, window, m, fusedPad);
        }

        /** q, k, v (and dq, dk, dv) as column slices of one buffer with rows (Hq + 2 Hkv) D + pad apart. */
        Case fused(int pad) {
            return new Case(dt, B, Tq, Tk, Hq, Hkv, D, causal, window, mask, pad);
        }

        boolean isFused() {
            return fusedPad >= 0;
        }

        long qs() {
            return isFused() ? (long) (Hq + 2 * Hkv) * D + fusedPad : (long) Hq * D;
        }

        long ks() {
            return isFused() ? qs() : (long) Hkv * D;
        }

        /** Element offsets of q, k, v inside the fused buffer. */
        long kOff() {
            return isFused() ? (long) Hq * D : 0;
        }

        long vOff() {
            return isFused() ? (long) (Hq + Hkv) * D : 0;
        }

        double scale() {
            return 1.0 / Math.sqrt(D);
        }

        double tol() {
            return dt == DType.BF16 ? BF16_TOL : F32_TOL;
        }

        @Override
        public String toString() {
            return "B=" + B + " Tq=" + Tq + " Tk=" + Tk + " Hq=" + Hq + " Hkv=" + Hkv + " D=" + D
                    + (causal ? " causal" : "") + (window > 0 ? " window=" + window : "")
                    + (mask == 1 ? " left-padding" : mask == 2 ? " padding+holes" : "")
                    + (isFused() ? " fused(pad " + fusedPad + ")" : "");
        }
    }

    /** key_mask [B, cols] (cols >= Tk): batch b has pad[b] left-padding keys; the last batch (B > 1) is all padding. */
    static int[] keyMask(int B, int Tk, int cols, int kind) {
        int[] m = new int[B * cols];
        for (int b = 0; b < B; b++) {
            int pad = b == B - 1 && B > 1 ? Tk : Math.min(Tk, (b * 7 + 3) % (Tk / 2 + 1));
            for (int j = 0; j < cols; j++) {
                boolean on = j >= pad && (kind != 2 || (j * 13 + b * 5) % 7 != 0);
                m[b * cols + j] = j >= Tk ? (j & 1) : on ? 1 : 0; // past Tk: garbage that must not be read
            }
        }
        return m;
    }

    static double maxAbs(double[] v) {
        double m = 0;
        for (double x : v)
            if (!Double.isNaN(x) && Math.abs(x) < 1e30) m = Math.max(m, Math.abs(x));
        return m;
    }

    /** Compares an output at the case's normwise tolerance. */
    static void close(KernelCheck.Result r, KernelCheck.Buf b, double tol) {
        r.close(b, tol * Math.max(maxAbs(r.reference(b)), 1.0), tol);
    }

    /** The inputs of one case on both sides: q, k, v (or one fused qkv), the key mask. */
    static final class Inputs {
        final KernelCheck.Buf q, k, v, mask;

        Inputs(KernelCheck k, Case c, long seed) {
            if (c.isFused()) {
                var qkv = k.input("qkv", random(seed, (int) (c.B * c.Tq * c.qs()), -2, 2));
                this.q = this.k = this.v = qkv;
            } else {
                this.q = k.input("q", random(seed, c.B * c.Tq * c.Hq * c.D, -2, 2));
                this.k = k.input("k", random(seed + 1, c.B * c.Tk * c.Hkv * c.D, -2, 2));
                this.v = k.input("v", random(seed + 2, c.B * c.Tk * c.Hkv * c.D, -2, 2));
            }
            this.mask = c.mask > 0 ? k.ints("key_mask", keyMask(c.B, c.Tk, c.Tk, c.mask)) : null;
        }

        long q(KernelCheck.Ctx x) {
            return x.p(q);
        }

        long k(KernelCheck.Ctx x, Case c) {
            return x.p(k, c.kOff());
        }

        long v(KernelCheck.Ctx x, Case c) {
            return x.p(v, c.vOff());
        }

        long mask(KernelCheck.Ctx x) {
            return mask == null ? 0 : x.p(mask);
        }
    }

    /** The device under test: the emulated CUDA backend (a GPU subclass overrides this). */
    KernelCheck check(DType dt) {
        return KernelCheck.of(dt);
    }

    /** The device under test for the argument checks. */
    Device device() {
        return Emulated.get().device();
    }

    /** Forward (out + lse) against the CPU; returns the CPU's {out, lse} for a backward check. */
    double[][] forward(Case c, long seed) {
        try (KernelCheck k = check(c.dt)) {
            Inputs in = new Inputs(k, c, seed);
            var out = k.output("out", (long) c.B * c.Tq * c.Hq * c.D);
            var lse = k.outputF32("lse", (long) c.B * c.Hq * c.Tq);
            var r = k.run("rlhf4j_attention_forward", c.toString(),
                    x -> x.abi.attentionForward(x.s, x.dtype, c.B, c.Tq, c.Tk, c.Hq, c.Hkv, c.D, in.q(x), c.qs(),
                            in.k(x, c), c.ks(), in.v(x, c), c.ks(), in.mask(x), c.scale(), c.causal ? 1 : 0,
                            c.window, x.p(out), x.p(lse)));
            close(r, out, c.tol());
            r.close(lse, LSE_TOL, LSE_TOL);
            return new double[][] {r.reference(out), r.reference(lse)};
        }
    }

    static float[] floats(double[] d) {
        float[] f = new float[d.length];
        for (int i = 0; i < d.length; i++) f[i] = (float) d[i];
        return f;
    }

    /**
     * Backward against the CPU from the CPU's forward outputs. nulls: bit 0 dq, bit 1 dk, bit 2 dv passed as NULL.
     * With a fused case, dq/dk/dv are column slices of one dqkv buffer laid out as qkv.
     */
    void backward(Case c, long seed, int accumulate, int nulls) {
        double[][] fwd = forward(c, seed);
        try (KernelCheck k = check(c.dt)) {
            Inputs in = new Inputs(k, c, seed);
            long nOut = (long) c.B * c.Tq * c.Hq * c.D;
            var o = k.input("out", floats(fwd[0]));
            var lse = k.inputF32("lse", floats(fwd[1]));
            var dout = k.input("dout", random(seed + 3, (int) nOut, -1, 1));
            long dqs = c.qs(), dks = c.ks();
            long nq = c.B * c.Tq * dqs, nk = c.B * c.Tk * dks;
            KernelCheck.Buf dq, dk, dv;
            if (c.isFused()) {
                var g = accumulate == 1 ? k.inout("dqkv", random(seed + 4, (int) nq, -1, 1)) : k.output("dqkv", nq);
                dq = dk = dv = g;
            } else {
                dq = accumulate == 1 ? k.inout("dq", random(seed + 4, (int) nq, -1, 1)) : k.output("dq", nq);
                dk = accumulate == 1 ? k.inout("dk", random(seed + 5, (int) nk, -1, 1)) : k.output("dk", nk);
                dv = accumulate == 1 ? k.inout("dv", random(seed + 6, (int) nk, -1, 1)) : k.output("dv", nk);
            }
            var r = k.run("rlhf4j_attention_backward", c + " accumulate=" + accumulate + " nulls=" + nulls,
                    x -> x.abi.attentionBackward(x.s, x.dtype, c.B, c.Tq, c.Tk, c.Hq, c.Hkv, c.D, in.q(x), c.qs(),
                            in.k(x, c), c.ks(), in.v(x, c), c.ks(), in.mask(x), c.scale(), c.causal ? 1 : 0,
                            c.window, x.p(o), x.p(dout), x.p(lse), (nulls & 1) != 0 ? 0 : x.p(dq), dqs,
                            (nulls & 2) != 0 ? 0 : x.p(dk, c.kOff()), dks, (nulls & 4) != 0 ? 0 : x.p(dv, c.vOff()),
                            dks, accumulate));
            if (c.isFused()) {
                close(r, dq, c.tol() * 2);
            } else {
                if ((nulls & 1) == 0) close(r, dq, c.tol() * 2);
                if ((nulls & 2) == 0) close(r, dk, c.tol() * 2);
                if ((nulls & 4) == 0) close(r, dv, c.tol() * 2);
            }
        }
    }

    // ---- tensor cores (BF16 at D = 64, 80, 96, 128) ---------------------------------------------------------------

    @Test
    void bf16EveryTensorCoreHeadDimForwardAndBackward() {
        backward(Case.of(DType.BF16, 1, 70, 70, 2, 2, 64), 11, 0, 0);
        backward(Case.of(DType.BF16, 3, 17, 17, 2, 1, 80), 12, 0, 0);
        backward(Case.of(DType.BF16, 1, 130, 130, 1, 1, 96).nonCausal(), 13, 0, 0);
        backward(Case.of(DType.BF16, 3, 130, 130, 2, 2, 128).mask(1), 14, 0, 0);
        backward(Case.of(DType.BF16, 2, 1, 1, 2, 2, 64), 15, 0, 0);
    }

    @Test
    void bf16CausalOffsetGqaWindowAndPadding() {
        backward(Case.of(DType.BF16, 2, 17, 90, 4, 1, 64).mask(1), 21, 0, 0); // Tq < Tk, MQA, padded rows
        backward(Case.of(DType.BF16, 2, 20, 10, 4, 2, 96), 22, 0, 0);         // Tq > Tk: first rows see no key
        backward(Case.of(DType.BF16, 1, 100, 100, 2, 2, 64).nonCausal().window(6).mask(2), 23, 0, 0);
    }

    @Test
    void bf16FusedQkvStridesAccumulateAndNullGradients() {
        // rows of (Hq + 2 Hkv) D + 3 elements: not 16-byte aligned (element-copy staging), and + 8: cp.async staging
        backward(Case.of(DType.BF16, 2, 70, 70, 4, 2, 64).window(9).mask(1).fused(3), 31, 1, 0);
        backward(Case.of(DType.BF16, 1, 33, 33, 2, 1, 128).fused(8), 32, 0, 0);
        backward(Case.of(DType.BF16, 2, 40, 40, 2, 1, 128).mask(1), 33, 1, 1); // dq NULL: no dq partials at all
        backward(Case.of(DType.BF16, 2, 40, 40, 2, 2, 80).nonCausal().mask(2), 34, 1, 6); // dq only
        backward(Case.of(DType.BF16, 1, 24, 24, 2, 2, 96), 35, 0, 5); // dk only
    }

    /** Hq = Hkv = 8, B = 2: 16 (batch, kv head) groups over the emulated 132 SMs give C = 9 key chunks for 10 key
     * blocks, so a CTA of the tensor-core backward walks two key blocks (reusing its K/V tiles and dq partial). */
    @Test
    void bf16BackwardCtaWalksSeveralKeyBlocks() {
        backward(Case.of(DType.BF16, 2, 8, 640, 8, 8, 64), 41, 0, 0);
    }

    @Test
    void noKeysOrNoQueriesGiveZerosMaxLseAndZeroGradients() {
        backward(Case.of(DType.BF16, 2, 5, 0, 2, 2, 64), 51, 0, 0);
        backward(Case.of(DType.F32, 2, 5, 0, 2, 1, 16).nonCausal(), 52, 1, 0);
        backward(Case.of(DType.BF16, 2, 0, 5, 2, 2, 64).nonCausal(), 53, 0, 0); // no queries: dk = dv = 0
        backward(Case.of(DType.F32, 2, 0, 5, 2, 2, 16), 54, 0, 0);
    }

    // ---- SIMT (F32 at any D <= 256, BF16 at other head dims) ------------------------------------------------------

    @Test
    void f32EveryHeadDimForwardAndBackward() {
        backward(Case.of(DType.F32, 1, 70, 70, 4, 2, 64), 61, 0, 0);
        backward(Case.of(DType.F32, 3, 17, 17, 2, 2, 80).mask(1), 62, 0, 0);
        backward(Case.of(DType.F32, 1, 37, 37, 2, 2, 96).nonCausal().window(6).fused(1), 63, 0, 0);
        backward(Case.of(DType.F32, 2, 33, 33, 2, 1, 128), 64, 1, 0);
        backward(Case.of(DType.F32, 1, 1, 1, 2, 2, 64), 65, 0, 0);
    }

    @Test
    void f32SmallAndLargeHeadDimsGqaAndOffsets() {
        backward(Case.of(DType.F32, 3, 17, 17, 2, 2, 16), 71, 0, 0);
        backward(Case.of(DType.F32, 2, 17, 90, 4, 1, 24).window(20).mask(2), 72, 1, 2);
        backward(Case.of(DType.F32, 2, 20, 10, 2, 2, 32), 73, 0, 0);
        backward(Case.of(DType.F32, 1, 9, 9, 32, 1, 8).mask(1), 74, 0, 0);     // 32 heads per kv head: 2 head blocks
        backward(Case.of(DType.F32, 2, 33, 33, 3, 1, 5).window(4).mask(2), 75, 0, 0);
        backward(Case.of(DType.F32, 1, 20, 20, 2, 1, 200), 76, 0, 0);
    }

    @Test
    void bf16HeadDimsWithoutTensorCoreInstancesUseSimt() {
        backward(Case.of(DType.BF16, 2, 33, 33, 2, 1, 48).mask(1), 81, 0, 1);
        backward(Case.of(DType.BF16, 1, 17, 17, 2, 2, 16), 82, 1, 0);
    }

    // ---- argument checks ----------------------------------------------------------------------------------------

    @Test
    void refusesUnsupportedDtypesAndHeadDimsAndBadShapes() {
        Device dev = device();
        Abi abi = dev.abi();
        long s = dev.stream();
        long x = abi.malloc(dev.handle(), 1 << 20);
        try {
            var e = assertThrows(NativeException.class, () -> abi.attentionForward(s, DType.F16.code, 1, 4, 4, 1, 1,
                    64, x, 64, x, 64, x, 64, 0, 0.1, 1, 0, x, x));
            assertEquals(NativeException.Status.UNSUPPORTED, e.status());
            e = assertThrows(NativeException.class, () -> abi.attentionForward(s, DType.F32.code, 1, 4, 4, 1, 1, 300,
                    x, 300, x, 300, x, 300, 0, 0.1, 1, 0, x, x));
            assertEquals(NativeException.Status.UNSUPPORTED, e.status());
            assertTrue(e.getMessage().contains("rlhf4j_attention_forward: head dim D = 300"), e.getMessage());
            e = assertThrows(NativeException.class, () -> abi.attentionForward(s, DType.BF16.code, 1, 4, 4, 3, 2, 64,
                    x, 192, x, 128, x, 128, 0, 0.1, 1, 0, x, x));
            assertEquals(NativeException.Status.INVALID_ARGUMENT, e.status());
            assertTrue(e.getMessage().contains("Hq = 3 must be a multiple of Hkv = 2"), e.getMessage());
            e = assertThrows(NativeException.class, () -> abi.attentionBackward(s, DType.BF16.code, 1, 4, 4, 1, 1, 64,
                    x, 64, x, 64, x, 64, 0, 0.1, 1, 0, x, x, x, x, 32, x, 64, x, 64, 0));
            assertTrue(e.getMessage().contains("dq_row_stride = 32 must be >= Hq * D = 64"), e.getMessage());
            e = assertThrows(NativeException.class, () -> abi.attentionBackward(s, DType.F32.code, 1, 4, 4, 1, 1, 64,
                    x, 64, x, 64, x, 64, 0, Double.NaN, 1, 0, x, x, x, x, 64, x, 64, x, 64, 0));
            assertTrue(e.getMessage().contains("scale = nan must be finite"), e.getMessage());
            e = assertThrows(NativeException.class, () -> abi.attentionDecode(s, DType.F32.code, 1, 5, 4, 8, 1, 1, 64,
                    x, 64, x, x, 0, 0.1, 0, x));
            assertTrue(e.getMessage().contains("need 0 <= Tq <= Tk <= Tmax"), e.getMessage());
        } finally {
            abi.free(dev.handle(), x);
        }
    }
}
