package io.github.rlhf4j.kernels;

import static io.github.rlhf4j.kernels.KernelCheck.random;

import io.github.rlhf4j.runtime.DType;
import org.junit.jupiter.api.Test;

/**
 * kernels/attention.cu's rlhf4j_attention_decode (new query rows against a KV cache [B, Tmax, Hkv, D]) through the
 * ABI on the emulated CUDA backend against the CPU backend. Cache rows past Tk hold NaN and key_mask columns past Tk
 * hold garbage: the contract says they are never read, and a kernel that read them would turn the output NaN.
 *
 * <p>Paths: Tq = 1 and small Tq > 1 run the SIMT decode kernel (one CTA per group of up to 16 (head, position) rows
 * of a kv head); when a step's CTAs do not fill the (emulated 132-SM) GPU and the cache holds more than 64 keys, the
 * cache is split (split-K) and a combine kernel merges the chunks; a BF16 prefill (Tq &gt;= 16) at a tensor-core head
 * dim runs the forward MMA kernel over the cache. Tolerances as in {@link AttentionKernelTest}.
 */
class AttentionDecodeKernelTest {
    record Case(DType dt, int B, int Tq, int Tk, int Tmax, int Hq, int Hkv, int D, int window, boolean mask,
                int qPad) {
        @Override
        public String toString() {
            return "B=" + B + " Tq=" + Tq + " Tk=" + Tk + " Tmax=" + Tmax + " Hq=" + Hq + " Hkv=" + Hkv + " D=" + D
                    + (window > 0 ? " window=" + window : "") + (mask ? " left-padding" : "")
                    + (qPad > 0 ? " q rows +" + qPad : "");
        }
    }

    /** A cache [B, Tmax, Hkv, D] with random rows below Tk and NaN rows from Tk on. */
    static float[] cache(long seed, Case c) {
        float[] v = random(seed, c.B * c.Tmax * c.Hkv * c.D, -2, 2);
        int row = c.Hkv * c.D;
        for (int b = 0; b < c.B; b++)
            for (int t = c.Tk; t < c.Tmax; t++)
                for (int i = 0; i < row; i++) v[(b * c.Tmax + t) * row + i] = Float.NaN;
        return v;
    }

    /** The device under test: the emulated CUDA backend (a GPU subclass overrides this). */
    KernelCheck check(DType dt) {
        return KernelCheck.of(dt);
    }

    void check(Case c, long seed) {
        try (KernelCheck k = check(c.dt)) {
            long qs = (long) c.Hq * c.D + c.qPad;
            var q = k.input("q", random(seed, (int) (c.B * c.Tq * qs), -2, 2));
            var kc = k.input("k_cache", cache(seed + 1, c));
            var vc = k.input("v_cache", cache(seed + 2, c));
            var mask = c.mask ? k.ints("key_mask", AttentionKernelTest.keyMask(c.B, c.Tk, c.Tmax, 1)) : null;
            var out = k.output("out", (long) c.B * c.Tq * c.Hq * c.D);
            double scale = 1.0 / Math.sqrt(c.D);
            var r = k.run("rlhf4j_attention_decode", c.toString(),
                    x -> x.abi.attentionDecode(x.s, x.dtype, c.B, c.Tq, c.Tk, c.Tmax, c.Hq, c.Hkv, c.D, x.p(q), qs,
                            x.p(kc), x.p(vc), mask == null ? 0 : x.p(mask), scale, c.window, x.p(out)));
            AttentionKernelTest.close(r, out, c.dt == DType.BF16 ? AttentionKernelTest.BF16_TOL
                    : AttentionKernelTest.F32_TOL);
        }
    }

    @Test
    void oneNewRowPerSequence() {
        check(new Case(DType.F32, 3, 1, 40, 48, 4, 2, 64, 0, true, 0), 1);
        check(new Case(DType.BF16, 3, 1, 45, 64, 2, 1, 96, 0, true, 8), 2);
        check(new Case(DType.F32, 2, 1, 20, 24, 4, 4, 8, 0, false, 0), 3);
    }

    @Test
    void severalNewRowsAndWindow() {
        check(new Case(DType.BF16, 2, 3, 50, 60, 4, 2, 128, 0, true, 0), 11);
        check(new Case(DType.F32, 2, 5, 60, 70, 4, 1, 40, 20, false, 3), 12);
    }

    /** B Hkv = 1 with a 300-key cache: five chunks of 64 keys, merged by the combine kernel. */
    @Test
    void longCacheSplitsTheKeys() {
        check(new Case(DType.F32, 1, 1, 300, 320, 2, 1, 64, 0, false, 0), 21);
        check(new Case(DType.BF16, 1, 2, 300, 310, 2, 1, 128, 0, true, 0), 22);
        check(new Case(DType.BF16, 1, 1, 260, 270, 1, 1, 80, 100, false, 0), 23);
    }

    /** A prefill of 20 rows: the forward tensor-core kernel over the cache (BF16), the SIMT rows (F32). */
    @Test
    void prefillOverTheCache() {
        check(new Case(DType.BF16, 2, 20, 70, 80, 2, 2, 80, 0, true, 0), 31);
        check(new Case(DType.F32, 1, 20, 30, 40, 2, 1, 32, 0, true, 0), 32);
    }
}
