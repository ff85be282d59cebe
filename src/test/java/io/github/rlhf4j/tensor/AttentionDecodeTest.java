package io.github.rlhf4j.tensor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.NativeException;
import org.junit.jupiter.api.Test;

/**
 * rlhf4j_attention_decode (attention of new rows over a KV cache of Tmax rows of which Tk are in use) against the
 * training attention on the same Tk rows: GQA, windows, left padding, prefill (Tq = Tk) and single steps (Tq = 1),
 * both dtypes. Rows of the cache past Tk hold garbage (NaN) that must never be read.
 */
class AttentionDecodeTest {
    private static void check(DType dt, int b, int tq, int tk, int tmax, int hq, int hkv, int d, int window, boolean pad) {
        try (Scope s = Scope.open()) {
            Tensor q = Tensor.randn(dt, 11, 0, 1, b, tq, hq, d);
            Tensor kCache = Tensor.full(dt, Double.NaN, b, tmax, hkv, d), vCache = Tensor.full(dt, Double.NaN, b, tmax, hkv, d);
            Tensor k = Tensor.randn(dt, 12, 0, 1, b, tk, hkv, d), v = Tensor.randn(dt, 13, 0, 1, b, tk, hkv, d);
            kCache.slice(1, 0, tk).copyFromTensor(k, false);
            vCache.slice(1, 0, tk).copyFromTensor(v, false);
            int[] mask = new int[b * tmax], maskTk = new int[b * tk];
            for (int i = 0; i < b; i++)
                for (int j = 0; j < tmax; j++) {
                    int m = pad && j < i % 3 ? 0 : 1; // row i starts with i % 3 pads
                    mask[i * tmax + j] = j < tk ? m : 7; // past Tk: anything, never read
                    if (j < tk) maskTk[i * tk + j] = m;
                }
            double scale = 1 / Math.sqrt(d);
            double[] want = Functional.attention(q, k, v, Tensor.ofInts(maskTk, b, tk), scale, true, window).toDoubleArray();
            double[] got = Functional.attentionDecode(q, kCache, vCache, tk, Tensor.ofInts(mask, b, tmax), scale, window)
                    .toDoubleArray();
            double tol = dt == DType.F64 ? 1e-13 : 1e-5;
            for (int i = 0; i < want.length; i++)
                assertTrue(Math.abs(want[i] - got[i]) <= tol, dt + " b" + b + " tq" + tq + " tk" + tk + " window "
                        + window + ": element " + i + " " + got[i] + " vs " + want[i]);
        }
    }

    @Test
    void decodeOverACacheEqualsAttentionOverTheRowsInUse() {
        for (DType dt : new DType[] {DType.F32, DType.F64}) {
            check(dt, 3, 1, 9, 16, 4, 2, 8, 0, false);       // one step, GQA
            check(dt, 3, 1, 9, 16, 4, 2, 8, 0, true);        // left padding
            check(dt, 2, 9, 9, 12, 4, 4, 16, 0, true);       // prefill
            check(dt, 2, 3, 70, 100, 6, 2, 8, 0, true);      // several new rows, more keys than a tile
            check(dt, 2, 1, 70, 100, 4, 1, 8, 5, false);     // local window (GPT-Neo, qwen2 sliding)
            check(dt, 5, 2, 33, 33, 8, 8, 32, 16, true);     // cache exactly full
        }
    }

    @Test
    void badLengthsAreRefusedByTheBackend() {
        try (Scope s = Scope.open()) {
            Tensor q = Tensor.zeros(DType.F32, 1, 3, 2, 4), c = Tensor.zeros(DType.F32, 1, 8, 2, 4);
            var e = assertThrows(NativeException.class, () -> Functional.attentionDecode(q, c, c, 2, null, 1, 0));
            assertTrue(e.getMessage().contains("rlhf4j_attention_decode") && e.getMessage().contains("Tq"), e.getMessage());
            assertThrows(NativeException.class, () -> Functional.attentionDecode(q, c, c, 9, null, 1, 0));
        }
    }
}
