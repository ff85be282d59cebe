package io.github.rlhf4j.runtime;

import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Map;

/**
 * A caching allocator over {@code rlhf4j_malloc} for one device, so a training step that repeats the same shapes
 * allocates nothing new after its first iteration (and a CUDA step never calls cudaMalloc in steady state).
 *
 * <p>Requests round up to a size class: multiples of 512 bytes below 1 MiB, then 8 classes per power of two (at most
 * 12.5% waste). Freed blocks wait in a free list per class; {@link #trim()} returns them to the device, and an
 * allocation that fails for lack of memory trims and tries once more.
 */
public final class MemoryPool {
    private final Abi abi;
    private final long device;
    private final Map<Long, ArrayDeque<Long>> free = new HashMap<>();
    private long cachedBytes;
    private long liveBytes;
    private long peakLiveBytes;

    MemoryPool(Abi abi, long device) {
        this.abi = abi;
        this.device = device;
    }

    /** The size class a request of {@code bytes} is served from. */
    public static long sizeClass(long bytes) {
        if (bytes <= 0) return 512;
        if (bytes < (1L << 20)) return (bytes + 511) & ~511L;
        int log = 63 - Long.numberOfLeadingZeros(bytes - 1); // 2^log < bytes <= 2^(log+1)
        long step = 1L << (log - 3); // 8 classes per power of two: step = 2^log / 8
        return (bytes + step - 1) / step * step;
    }

    /** A block of at least {@code bytes}; give it back with {@link #release(long, long)} and its size class. */
    public synchronized long allocate(long bytes) {
        long cls = sizeClass(bytes);
        ArrayDeque<Long> list = free.get(cls);
        if (list != null && !list.isEmpty()) {
            cachedBytes -= cls;
            liveBytes += cls;
            peakLiveBytes = Math.max(peakLiveBytes, liveBytes);
            return list.pop();
        }
        long ptr;
        try {
            ptr = abi.malloc(device, cls);
        } catch (NativeException e) {
            if (e.status() != NativeException.Status.OUT_OF_MEMORY || cachedBytes == 0) throw e;
            trim();
            ptr = abi.malloc(device, cls);
        }
        liveBytes += cls;
        peakLiveBytes = Math.max(peakLiveBytes, liveBytes);
        return ptr;
    }

    public synchronized void release(long ptr, long sizeClass) {
        free.computeIfAbsent(sizeClass, k -> new ArrayDeque<>()).push(ptr);
        cachedBytes += sizeClass;
        liveBytes -= sizeClass;
    }

    /** Frees every cached block back to the device. */
    public synchronized void trim() {
        for (var e : free.entrySet())
            for (long ptr : e.getValue()) abi.free(device, ptr);
        free.clear();
        cachedBytes = 0;
    }

    /** Bytes held by live tensors (in size classes). */
    public synchronized long liveBytes() {
        return liveBytes;
    }

    /** The most {@link #liveBytes} has been since the pool was made or {@link #resetPeakLiveBytes} last ran. */
    public synchronized long peakLiveBytes() {
        return peakLiveBytes;
    }

    /** Starts a new peak from what is live now (to measure the peak of one piece of work). */
    public synchronized void resetPeakLiveBytes() {
        peakLiveBytes = liveBytes;
    }

    /** Bytes cached for reuse. */
    public synchronized long cachedBytes() {
        return cachedBytes;
    }
}
