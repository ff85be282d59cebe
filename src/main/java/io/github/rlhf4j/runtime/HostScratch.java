package io.github.rlhf4j.runtime;

import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * Per-thread host memory for the small arrays an op passes by pointer (shapes and strides), reused call after call
 * so that an op costs no arena allocation (a confined Arena costs ~30 ns, an automatic one ~1 us).
 */
public final class HostScratch {
    private static final int SLOTS = 4;
    private static final ThreadLocal<MemorySegment> SCRATCH = ThreadLocal.withInitial(
            () -> Arena.ofAuto().allocate(JAVA_LONG.byteSize() * Abi.MAX_DIMS * SLOTS, 64));

    private HostScratch() {}

    /** {@code values} copied into slot {@code slot} (0..3) of this thread's scratch; valid until the next call. */
    public static MemorySegment longs(int slot, long[] values) {
        if (values.length > Abi.MAX_DIMS)
            throw new IllegalArgumentException(values.length + " dimensions: rlhf4j supports at most " + Abi.MAX_DIMS);
        MemorySegment seg = SCRATCH.get().asSlice((long) slot * Abi.MAX_DIMS * 8, Abi.MAX_DIMS * 8L);
        MemorySegment.copy(values, 0, seg, JAVA_LONG, 0, values.length);
        return seg;
    }

    /**
     * This thread's scratch as it is now, for {@link #restore} after work that runs ops of its own in the middle of
     * another op's call: an evicted tensor's refill (a ZeRO gather, a copy) runs when the op asks for its address,
     * after the op may have written its shapes and strides here.
     */
    public static long[] save() {
        return SCRATCH.get().toArray(JAVA_LONG);
    }

    /** Puts back what {@link #save} took. */
    public static void restore(long[] saved) {
        MemorySegment.copy(saved, 0, SCRATCH.get(), JAVA_LONG, 0, saved.length);
    }

    public static MemorySegment longs(int slot, int[] values) {
        long[] v = new long[values.length];
        for (int i = 0; i < v.length; i++) v[i] = values[i];
        return longs(slot, v);
    }
}
