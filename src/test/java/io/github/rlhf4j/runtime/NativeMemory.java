package io.github.rlhf4j.runtime;

import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * Test helper: buffers from {@code rlhf4j_malloc} on the CPU device, seen from Java as segments (on the CPU backend
 * device pointers are host pointers), all freed on close. Tests that call {@link Abi} directly use it to reach the
 * options the Tensor API does not expose.
 */
final class NativeMemory implements AutoCloseable {
    final Device dev = Device.cpu();
    final Abi abi = dev.abi();
    /** The default stream of the CPU device. */
    final long s = dev.stream();
    private final List<Long> live = new ArrayList<>();
    private final Arena host = Arena.ofConfined();

    /** Uninitialised device memory of {@code bytes} bytes. */
    MemorySegment alloc(long bytes) {
        long p = abi.malloc(dev.handle(), bytes);
        live.add(p);
        return MemorySegment.ofAddress(p).reinterpret(bytes);
    }

    MemorySegment f32(float... v) {
        MemorySegment m = alloc(4L * v.length);
        MemorySegment.copy(v, 0, m, JAVA_FLOAT, 0, v.length);
        return m;
    }

    MemorySegment f64(double... v) {
        MemorySegment m = alloc(8L * v.length);
        MemorySegment.copy(v, 0, m, JAVA_DOUBLE, 0, v.length);
        return m;
    }

    MemorySegment i32(int... v) {
        MemorySegment m = alloc(4L * v.length);
        MemorySegment.copy(v, 0, m, JAVA_INT, 0, v.length);
        return m;
    }

    /** 16-bit patterns (bf16 or f16). */
    MemorySegment u16(short... v) {
        MemorySegment m = alloc(2L * v.length);
        MemorySegment.copy(v, 0, m, JAVA_SHORT, 0, v.length);
        return m;
    }

    MemorySegment i64(long... v) {
        MemorySegment m = alloc(8L * v.length);
        MemorySegment.copy(v, 0, m, JAVA_LONG, 0, v.length);
        return m;
    }

    /** A host array of longs (shapes, strides) for the bindings that take segments. */
    MemorySegment hostLongs(long... v) {
        return host.allocateFrom(JAVA_LONG, v);
    }

    /** A copy of {@code m}, also in device memory. */
    MemorySegment copyOf(MemorySegment m) {
        MemorySegment c = alloc(m.byteSize());
        c.copyFrom(m);
        return c;
    }

    static float[] floats(MemorySegment m) {
        return m.toArray(JAVA_FLOAT);
    }

    static double[] doubles(MemorySegment m) {
        return m.toArray(JAVA_DOUBLE);
    }

    static int[] ints(MemorySegment m) {
        return m.toArray(JAVA_INT);
    }

    static short[] shorts(MemorySegment m) {
        return m.toArray(JAVA_SHORT);
    }

    @Override
    public void close() {
        for (long p : live) abi.free(dev.handle(), p);
        live.clear();
        host.close();
    }
}
