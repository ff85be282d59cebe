package io.github.rlhf4j.runtime;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * One device of a backend ({@code cpu:0}, {@code cuda:1}): its handle, its default stream and its memory pool.
 * Devices are opened once and live for the JVM (they are cheap on the CPU, and a CUDA context is meant to).
 */
public final class Device {
    private static final Map<String, Device> OPEN = new ConcurrentHashMap<>();

    private final Backend backend;
    private final String kind;
    private final int ordinal;
    private final long handle;
    private final long stream;
    private final MemoryPool pool;

    private Device(Backend backend, String kind, int ordinal) {
        this.backend = backend;
        this.kind = kind;
        this.ordinal = ordinal;
        Abi abi = backend.abi();
        this.handle = abi.deviceOpen(ordinal);
        this.stream = abi.streamCreate(handle);
        this.pool = new MemoryPool(abi, handle);
    }

    /** The CPU device. */
    public static Device cpu() {
        return OPEN.computeIfAbsent("cpu:0", k -> new Device(Backend.cpu(), "cpu", 0));
    }

    /** CUDA device {@code ordinal}, or an error that says why there is none. */
    public static Device cuda(int ordinal) {
        return OPEN.computeIfAbsent("cuda:" + ordinal, k -> {
            Backend b = Backend.cuda().orElseThrow(() -> new IllegalStateException(
                    "no CUDA backend in this build (librlhf4j_cuda.so is built when nvcc is present)"));
            int n = b.deviceCount();
            if (ordinal < 0 || ordinal >= n)
                throw new IllegalArgumentException("cuda:" + ordinal + " does not exist: " + n + " CUDA device(s) visible");
            return new Device(b, "cuda", ordinal);
        });
    }

    /**
     * Device {@code ordinal} of a backend opened with {@link Backend#load}, named {@code kind:ordinal} (the emulated
     * CUDA backend of the kernel tests, say); opened once per backend and ordinal.
     */
    public static Device open(Backend backend, String kind, int ordinal) {
        return OPEN.computeIfAbsent(backend + "|" + kind + ":" + ordinal, k -> new Device(backend, kind, ordinal));
    }

    /** "cpu", "cpu:0", "cuda", "cuda:1". */
    public static Device parse(String spec) {
        String s = spec.trim().toLowerCase(java.util.Locale.ROOT);
        int colon = s.indexOf(':');
        String kind = colon < 0 ? s : s.substring(0, colon);
        int ordinal;
        try {
            ordinal = colon < 0 ? 0 : Integer.parseInt(s.substring(colon + 1));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("bad device '" + spec + "': expected cpu, cuda or cuda:N");
        }
        return switch (kind) {
            case "cpu" -> {
                if (ordinal != 0) throw new IllegalArgumentException("bad device '" + spec + "': the CPU is cpu:0");
                yield cpu();
            }
            case "cuda", "gpu" -> cuda(ordinal);
            default -> throw new IllegalArgumentException("bad device '" + spec + "': expected cpu, cuda or cuda:N");
        };
    }

    public Backend backend() {
        return backend;
    }

    /** The bindings of this device's backend library. */
    public Abi abi() {
        return backend.abi();
    }

    /** The {@code rlhf4j_device} handle. */
    public long handle() {
        return handle;
    }

    /** The default {@code rlhf4j_stream} every op on this device runs on. */
    public long stream() {
        return stream;
    }

    public MemoryPool pool() {
        return pool;
    }

    public boolean isCpu() {
        return kind.equals("cpu");
    }

    /** Worker threads for ops on this device (CPU: OpenMP threads); n <= 0 restores the default. */
    public void setNumThreads(int n) {
        abi().deviceSetNumThreads(handle, n);
    }

    /** Waits until all work queued on the default stream is done. */
    public void synchronize() {
        abi().streamSynchronize(stream);
    }

    /** Memory as the device counts it, plus the pool's view. */
    public MemoryStats memory() {
        long[] m = abi().deviceMemory(handle);
        return new MemoryStats(m[0], m[1], m[2], pool.liveBytes(), pool.cachedBytes());
    }

    /**
     * @param inUse bytes allocated on the device (live tensors plus the pool's cache)
     * @param peak the most {@code inUse} has been
     * @param total the device's capacity
     * @param live bytes held by live tensors
     * @param cached bytes the pool keeps for reuse
     */
    public record MemoryStats(long inUse, long peak, long total, long live, long cached) {}

    @Override
    public String toString() {
        return kind + ":" + ordinal;
    }
}
