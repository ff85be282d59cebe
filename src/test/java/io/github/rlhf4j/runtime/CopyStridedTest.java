package io.github.rlhf4j.runtime;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * rlhf4j_copy_strided against a Java reference that walks every index: dst[Σ i d_strides] (+)= src[Σ i s_strides]
 * over random views up to 6-d (permutations, slices with offsets and steps, negative strides, zero source strides),
 * for element sizes 2, 4 and 8. The whole destination buffer is compared bit for bit, so elements outside the view
 * must keep their (random) contents, and copies must move bits exactly (NaN payloads included).
 */
class CopyStridedTest {
    /** A view into a buffer of `size` elements: element (i...) is at base + Σ i_d strides_d. */
    record View(long[] strides, long base, int size) {}

    /**
     * A random view of `shape`: a permutation of a larger row-major storage, sliced (start, step) per dimension,
     * some dimensions reversed (negative stride) and, if allowed, some broadcast (stride 0).
     */
    static View randomView(SplittableRandom r, long[] shape, boolean contiguous, boolean broadcast) {
        int nd = shape.length;
        long[] step = new long[nd], start = new long[nd], ext = new long[nd], st = new long[nd];
        for (int d = 0; d < nd; d++) {
            step[d] = contiguous || r.nextInt(4) != 0 ? 1 : 2;
            long slack = contiguous ? 0 : r.nextInt(3);
            start[d] = slack == 0 ? 0 : r.nextInt((int) slack + 1);
            ext[d] = Math.max(shape[d] - 1, 0) * step[d] + 1 + slack;
        }
        int[] perm = new int[nd];
        for (int d = 0; d < nd; d++) perm[d] = d;
        if (!contiguous)
            for (int d = nd - 1; d > 0; d--) {
                int j = r.nextInt(d + 1), t = perm[d];
                perm[d] = perm[j];
                perm[j] = t;
            }
        long stride = 1;
        for (int j = nd - 1; j >= 0; j--) {
            st[perm[j]] = stride;
            stride *= ext[perm[j]];
        }
        long lead = contiguous ? 0 : r.nextInt(4);
        long base = lead;
        long[] strides = new long[nd];
        for (int d = 0; d < nd; d++) {
            base += start[d] * st[d];
            strides[d] = st[d] * step[d];
            if (!contiguous && shape[d] > 1 && r.nextInt(4) == 0) { // reversed
                base += (shape[d] - 1) * strides[d];
                strides[d] = -strides[d];
            }
            if (broadcast && shape[d] > 1 && r.nextInt(5) == 0) strides[d] = 0;
        }
        return new View(strides, base, (int) (lead + stride));
    }

    static long[] randomShape(SplittableRandom r, int nd, int maxTotal) {
        for (;;) {
            long[] s = new long[nd];
            long total = 1;
            for (int d = 0; d < nd; d++) {
                s[d] = 1 + r.nextInt(r.nextInt(4) == 0 ? 12 : 5);
                total *= s[d];
            }
            if (total <= maxTotal) return s;
        }
    }

    // ---- buffers as raw bits --------------------------------------------------------------------------------------

    static long[] read(MemorySegment m, DType t) {
        switch (t.size) {
            case 2: {
                short[] h = m.toArray(JAVA_SHORT);
                long[] out = new long[h.length];
                for (int i = 0; i < h.length; i++) out[i] = h[i] & 0xffffL;
                return out;
            }
            case 4: {
                int[] w = m.toArray(JAVA_INT);
                long[] out = new long[w.length];
                for (int i = 0; i < w.length; i++) out[i] = w[i] & 0xffffffffL;
                return out;
            }
            default:
                return m.toArray(JAVA_LONG);
        }
    }

    static MemorySegment write(NativeMemory mem, DType t, long[] bits) {
        switch (t.size) {
            case 2: {
                short[] h = new short[bits.length];
                for (int i = 0; i < h.length; i++) h[i] = (short) bits[i];
                return mem.u16(h);
            }
            case 4: {
                int[] w = new int[bits.length];
                for (int i = 0; i < w.length; i++) w[i] = (int) bits[i];
                return mem.i32(w);
            }
            default:
                return mem.i64(bits);
        }
    }

    /** Random contents: any bit pattern for plain copies, finite values for accumulation. */
    static long[] randomBits(SplittableRandom r, DType t, int n, boolean finite) {
        long[] b = new long[n];
        for (int i = 0; i < n; i++) {
            if (!finite) b[i] = r.nextLong() & (t.size == 8 ? -1L : (1L << (8 * t.size)) - 1);
            else if (t == DType.F32) b[i] = Float.floatToRawIntBits((float) r.nextDouble(-4, 4)) & 0xffffffffL;
            else b[i] = Double.doubleToRawLongBits(r.nextDouble(-4, 4));
        }
        return b;
    }

    /** The reference: walks every index of shape in row-major order. */
    static void reference(DType t, long[] shape, long[] src, View sv, long[] dst, View dv, boolean accumulate) {
        int nd = shape.length;
        for (long e : shape) if (e == 0) return;
        long[] idx = new long[nd];
        for (;;) {
            long so = sv.base(), d0 = dv.base();
            for (int d = 0; d < nd; d++) {
                so += idx[d] * sv.strides()[d];
                d0 += idx[d] * dv.strides()[d];
            }
            long v = src[(int) so];
            if (accumulate) {
                if (t == DType.F32)
                    v = Float.floatToRawIntBits(Float.intBitsToFloat((int) dst[(int) d0]) + Float.intBitsToFloat((int) v)) & 0xffffffffL;
                else
                    v = Double.doubleToRawLongBits(Double.longBitsToDouble(dst[(int) d0]) + Double.longBitsToDouble(v));
            }
            dst[(int) d0] = v;
            int d = nd - 1;
            while (d >= 0 && ++idx[d] == shape[d]) idx[d--] = 0;
            if (d < 0) return;
        }
    }

    /** Runs one copy on the device and compares the whole destination buffer with the reference. */
    static void check(SplittableRandom r, DType t, long[] shape, View sv, View dv, boolean accumulate, String what) {
        long[] src = randomBits(r, t, sv.size(), accumulate), dst = randomBits(r, t, dv.size(), accumulate);
        try (NativeMemory mem = new NativeMemory()) {
            MemorySegment s = write(mem, t, src), d = write(mem, t, dst);
            // the pointers name element (0, ..., 0) of each view
            mem.abi.copyStrided(mem.s, t.code, shape.length, mem.hostLongs(shape), s.address() + sv.base() * t.size,
                    mem.hostLongs(sv.strides()), d.address() + dv.base() * t.size, mem.hostLongs(dv.strides()),
                    accumulate ? 1 : 0);
            reference(t, shape, src, sv, dst, dv, accumulate);
            long[] got = read(d, t);
            for (int i = 0; i < dst.length; i++)
                if (got[i] != dst[i])
                    fail(String.format("%s %s shape %s src strides %s (base %d) dst strides %s (base %d)%s: dst element "
                            + "%d is 0x%x, want 0x%x", what, t, Arrays.toString(shape), Arrays.toString(sv.strides()),
                            sv.base(), Arrays.toString(dv.strides()), dv.base(), accumulate ? " accumulate" : "", i,
                            got[i], dst[i]));
        }
    }

    @Test
    void randomViewsUpToSixDimensionsMatchTheReference() {
        SplittableRandom r = new SplittableRandom(2026);
        for (DType t : new DType[] {DType.BF16, DType.F32, DType.F64, DType.I32})
            for (int c = 0; c < 250; c++) {
                int nd = 1 + r.nextInt(6);
                long[] shape = randomShape(r, nd, 6000);
                boolean dstContiguous = r.nextInt(3) != 0;
                View sv = randomView(r, shape, false, true), dv = randomView(r, shape, dstContiguous, false);
                check(r, t, shape, sv, dv, false, "case " + c);
            }
    }

    @Test
    void accumulateAddsIntoTheDestinationForF32AndF64() {
        SplittableRandom r = new SplittableRandom(7);
        for (DType t : new DType[] {DType.F32, DType.F64})
            for (int c = 0; c < 200; c++) {
                int nd = 1 + r.nextInt(6);
                long[] shape = randomShape(r, nd, 6000);
                View sv = randomView(r, shape, false, true), dv = randomView(r, shape, r.nextBoolean(), false);
                check(r, t, shape, sv, dv, true, "case " + c);
            }
    }

    @Test
    void largeTransposesAndPermutationsMatchTheReference() {
        // Big enough for the tiled transpose path (64 x 64 tiles, 256 x 256 super-blocks, ragged edges) and for
        // more than one thread; source contiguous along a dimension other than the destination's innermost.
        SplittableRandom r = new SplittableRandom(3);
        long[][] shapes = {{300, 200}, {70, 9}, {9, 70}, {4, 130, 67}, {2, 3, 40, 33}};
        for (DType t : new DType[] {DType.BF16, DType.F32, DType.F64})
            for (long[] shape : shapes)
                for (boolean acc : new boolean[] {false, true}) {
                    if (acc && t == DType.BF16) continue;
                    int nd = shape.length;
                    // source: the transpose of a row-major array (dimensions reversed), so its last dimension is strided
                    long[] st = new long[nd];
                    long s = 1;
                    for (int d = 0; d < nd; d++) {
                        st[d] = s;
                        s *= shape[d];
                    }
                    View sv = new View(st, 0, (int) s);
                    check(r, t, shape, sv, randomView(r, shape, true, false), acc, "transpose");
                    // and a sliced, reversed variant of the same
                    View sv2 = randomView(r, shape, false, false);
                    check(r, t, shape, sv2, randomView(r, shape, true, false), acc, "permuted view");
                }
    }

    @Test
    void zeroDimensionalCopyMovesOneElementAndEmptyShapesMoveNone() {
        try (NativeMemory mem = new NativeMemory()) {
            MemorySegment s = mem.f32(2.5f, 9f), d = mem.f32(1f, 7f);
            mem.abi.copyStrided(mem.s, DType.F32.code, 0, MemorySegment.NULL, s.address(), MemorySegment.NULL,
                    d.address(), MemorySegment.NULL, 0);
            assertArrayEquals(new float[] {2.5f, 7f}, NativeMemory.floats(d));
            mem.abi.copyStrided(mem.s, DType.F32.code, 0, MemorySegment.NULL, s.address(), MemorySegment.NULL,
                    d.address(), MemorySegment.NULL, 1);
            assertArrayEquals(new float[] {5f, 7f}, NativeMemory.floats(d));
            MemorySegment d2 = mem.f32(1f, 7f);
            mem.abi.copyStrided(mem.s, DType.F32.code, 2, mem.hostLongs(2, 0), s.address(), mem.hostLongs(1, 1),
                    d2.address(), mem.hostLongs(1, 1), 0);
            assertArrayEquals(new float[] {1f, 7f}, NativeMemory.floats(d2), "a zero extent copies nothing");
        }
    }

    @Test
    void aZeroDestinationStrideOverMoreThanOneElementIsRefused() {
        try (NativeMemory mem = new NativeMemory()) {
            MemorySegment s = mem.f32(1, 2, 3, 4, 5, 6), d = mem.f32(0, 0, 0, 0, 0, 0);
            NativeException e = assertThrows(NativeException.class, () -> mem.abi.copyStrided(mem.s, DType.F32.code,
                    2, mem.hostLongs(2, 3), s.address(), mem.hostLongs(3, 1), d.address(), mem.hostLongs(1, 0), 1));
            assertEquals("rlhf4j_copy_strided", e.function());
            assertEquals(NativeException.Status.INVALID_ARGUMENT, e.status());
            assertTrue(e.getMessage().contains("dst_strides[1] = 0"), e.getMessage());
            assertArrayEquals(new float[6], NativeMemory.floats(d), "a refused call wrote dst");
            // over an extent of 1 a zero destination stride aliases nothing
            mem.abi.copyStrided(mem.s, DType.F32.code, 2, mem.hostLongs(3, 1), s.address(), mem.hostLongs(2, 1),
                    d.address(), mem.hostLongs(1, 0), 0);
            assertArrayEquals(new float[] {1, 3, 5, 0, 0, 0}, NativeMemory.floats(d));
        }
    }

    @Test
    void accumulateOnSixteenBitStorageIsUnsupported() {
        try (NativeMemory mem = new NativeMemory()) {
            MemorySegment s = mem.u16((short) 0x3f80, (short) 0x4000), d = mem.u16((short) 0x3f80, (short) 0x3f80);
            for (DType t : new DType[] {DType.BF16, DType.F16}) {
                NativeException e = assertThrows(NativeException.class, () -> mem.abi.copyStrided(mem.s, t.code, 1,
                        mem.hostLongs(2), s.address(), mem.hostLongs(1), d.address(), mem.hostLongs(1), 1));
                assertEquals(NativeException.Status.UNSUPPORTED, e.status(), e.getMessage());
                assertTrue(e.getMessage().contains("accumulate") && e.getMessage().contains(t.toString()), e.getMessage());
            }
            assertArrayEquals(new short[] {0x3f80, 0x3f80}, NativeMemory.shorts(d));
        }
    }

    @Test
    void badShapesAreRefused() {
        try (NativeMemory mem = new NativeMemory()) {
            MemorySegment s = mem.f32(1, 2), d = mem.f32(0, 0);
            long[] nine = new long[9];
            Arrays.fill(nine, 1);
            NativeException e = assertThrows(NativeException.class, () -> mem.abi.copyStrided(mem.s, DType.F32.code,
                    9, mem.hostLongs(nine), s.address(), mem.hostLongs(nine), d.address(), mem.hostLongs(nine), 0));
            assertTrue(e.getMessage().contains("ndim = 9"), e.getMessage());
            e = assertThrows(NativeException.class, () -> mem.abi.copyStrided(mem.s, DType.F32.code, 1,
                    mem.hostLongs(-2), s.address(), mem.hostLongs(1), d.address(), mem.hostLongs(1), 0));
            assertTrue(e.getMessage().contains("shape[0] = -2"), e.getMessage());
        }
    }
}
