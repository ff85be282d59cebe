package io.github.rlhf4j.runtime;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * The bindings of native/include/rlhf4j_dist.h (librlhf4j_dist.so, the MPI/NCCL communication shim): one method per
 * C function, in the header's order, named as the function without its {@code rlhf4j_dist_} prefix
 * ({@code rlhf4j_dist_finalize} is {@link #finalizeWorld}, since {@code finalize} means something else in Java).
 *
 * <p>As in {@link Abi}, buffers cross as {@code long} addresses, out-parameters come back as return values, and a
 * non-zero status becomes a {@link NativeException} (backend "dist") carrying {@code rlhf4j_dist_last_error()}.
 * The library exists only in builds where mpicc was present: {@link #load()} is empty otherwise.
 */
public final class DistAbi {
    /** The library's name for {@link NativeLoader}. */
    public static final String LIBRARY = "rlhf4j_dist";
    /** {@code RLHF4J_DIST_ABI_VERSION} of the header these bindings mirror. */
    public static final int ABI_VERSION = 3;
    /** {@code RLHF4J_DIST_I64}: a 64-bit integer element, which {@link DType} lacks. */
    public static final int I64 = 64;
    /** {@code rlhf4j_dist_op}. */
    public static final int SUM = 0, MAX = 1, MIN = 2;

    private static final Linker LINKER = Linker.nativeLinker();
    private static final MemoryLayout I = JAVA_INT, J = JAVA_LONG, D = JAVA_DOUBLE, A = ADDRESS;
    private static volatile Optional<DistAbi> loaded;

    private final SymbolLookup lookup;
    private final List<String> missing = new ArrayList<>();
    private final MethodHandle abiVersion, describe, lastError, init, setTimeout, rank, worldSize, localRank,
            localSize, abort, finalizeWorld, allReduce, reduceScatter, allGather, broadcast, barrier, allGatherStart,
            requestWait, ncclInit,
            ncclDescribe, ncclAllReduce, ncclReduceScatter, ncclAllGather, ncclBroadcast, ncclStreamWaitEvent,
            ncclSynchronize;

    /**
     * Binds every function of the header in {@code lookup}.
     *
     * @throws UnsatisfiedLinkError if the library lacks a function or was built for another ABI version
     */
    public DistAbi(SymbolLookup lookup) {
        this.lookup = lookup;
        // Library and process group
        abiVersion = bind("rlhf4j_dist_abi_version", I);
        describe = bind("rlhf4j_dist_describe", A);
        lastError = bind("rlhf4j_dist_last_error", A);
        init = bind("rlhf4j_dist_init", I, D);
        setTimeout = bind("rlhf4j_dist_set_timeout", I, D);
        rank = bind("rlhf4j_dist_rank", I, A);
        worldSize = bind("rlhf4j_dist_world_size", I, A);
        localRank = bind("rlhf4j_dist_local_rank", I, A);
        localSize = bind("rlhf4j_dist_local_size", I, A);
        abort = bind("rlhf4j_dist_abort", I, I, A);
        finalizeWorld = bind("rlhf4j_dist_finalize", I);
        // Collectives on host buffers
        allReduce = bind("rlhf4j_dist_all_reduce", I, J, J, J, I, I);
        reduceScatter = bind("rlhf4j_dist_reduce_scatter", I, J, J, J, I, I);
        allGather = bind("rlhf4j_dist_all_gather", I, J, J, J, I);
        broadcast = bind("rlhf4j_dist_broadcast", I, J, J, I, I);
        barrier = bind("rlhf4j_dist_barrier", I);
        allGatherStart = bind("rlhf4j_dist_all_gather_start", I, J, J, J, I, A);
        requestWait = bind("rlhf4j_dist_request_wait", I, J);
        // NCCL
        ncclInit = bind("rlhf4j_dist_nccl_init", I, A, I);
        ncclDescribe = bind("rlhf4j_dist_nccl_describe", A);
        ncclAllReduce = bind("rlhf4j_dist_nccl_all_reduce", I, J, J, J, I, I, J);
        ncclReduceScatter = bind("rlhf4j_dist_nccl_reduce_scatter", I, J, J, J, I, I, J);
        ncclAllGather = bind("rlhf4j_dist_nccl_all_gather", I, J, J, J, I, J);
        ncclBroadcast = bind("rlhf4j_dist_nccl_broadcast", I, J, J, I, I, J);
        ncclStreamWaitEvent = bind("rlhf4j_dist_nccl_stream_wait_event", I, J, J);
        ncclSynchronize = bind("rlhf4j_dist_nccl_synchronize", I, J);

        if (!missing.isEmpty())
            throw new UnsatisfiedLinkError("rlhf4j: librlhf4j_dist.so lacks " + missing
                    + ": it was built from another version of rlhf4j_dist.h");
        int version = abiVersion();
        if (version != ABI_VERSION)
            throw new UnsatisfiedLinkError("rlhf4j: librlhf4j_dist.so implements ABI version " + version
                    + ", this jar expects " + ABI_VERSION);
    }

    /**
     * The shim of this build, opened once per JVM, or empty when the build has none (no mpicc where it was built).
     *
     * @throws UnsatisfiedLinkError if the library exists but cannot be opened (Open MPI's libmpi.so.40 missing at run
     *     time, say), with the loader's reason
     */
    public static Optional<DistAbi> load() {
        Optional<DistAbi> d = loaded;
        if (d == null) {
            synchronized (DistAbi.class) {
                if ((d = loaded) == null) {
                    d = NativeLoader.find(LIBRARY).isPresent()
                            ? Optional.of(new DistAbi(NativeLoader.open(LIBRARY)))
                            : Optional.empty();
                    loaded = d;
                }
            }
        }
        return d;
    }

    private MethodHandle bind(String name, MemoryLayout ret, MemoryLayout... args) {
        var symbol = lookup.find(name);
        if (symbol.isEmpty()) {
            missing.add(name);
            return null;
        }
        return LINKER.downcallHandle(symbol.get(), FunctionDescriptor.of(ret, args));
    }

    private void check(int status, String function) {
        if (status != 0) throw new NativeException("dist", function, status, lastError());
    }

    private static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException r) return r;
        if (t instanceof Error e) throw e;
        return new IllegalStateException(t);
    }

    private static String string(MemorySegment p) {
        return p.equals(MemorySegment.NULL) ? "" : p.reinterpret(Long.MAX_VALUE).getString(0);
    }

    private int intOut(MethodHandle h, String function) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(JAVA_INT);
            check((int) h.invokeExact(out), function);
            return out.get(JAVA_INT, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    // ---- Library and process group --------------------------------------------------------------------------------

    public int abiVersion() {
        try {
            return (int) abiVersion.invokeExact();
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public String describe() {
        try {
            return string((MemorySegment) describe.invokeExact());
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public String lastError() {
        try {
            return string((MemorySegment) lastError.invokeExact());
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** @param timeoutSeconds the watchdog's limit per call; 0 disables it; negative: RLHF4J_DIST_TIMEOUT, else 60 */
    public void init(double timeoutSeconds) {
        try {
            check((int) init.invokeExact(timeoutSeconds), "rlhf4j_dist_init");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void setTimeout(double timeoutSeconds) {
        try {
            check((int) setTimeout.invokeExact(timeoutSeconds), "rlhf4j_dist_set_timeout");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public int rank() {
        return intOut(rank, "rlhf4j_dist_rank");
    }

    public int worldSize() {
        return intOut(worldSize, "rlhf4j_dist_world_size");
    }

    public int localRank() {
        return intOut(localRank, "rlhf4j_dist_local_rank");
    }

    public int localSize() {
        return intOut(localSize, "rlhf4j_dist_local_size");
    }

    /** Ends every process of the job with {@code code} after printing {@code message}; does not return. */
    public void abort(int code, String message) {
        try (Arena a = Arena.ofConfined()) {
            check((int) abort.invokeExact(code, a.allocateFrom(message)), "rlhf4j_dist_abort");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** {@code rlhf4j_dist_finalize}. */
    public void finalizeWorld() {
        try {
            check((int) finalizeWorld.invokeExact(), "rlhf4j_dist_finalize");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    // ---- Collectives on host buffers -------------------------------------------------------------------------------

    public void allReduce(long send, long recv, long count, int dtype, int op) {
        try {
            check((int) allReduce.invokeExact(send, recv, count, dtype, op), "rlhf4j_dist_all_reduce");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void reduceScatter(long send, long recv, long count, int dtype, int op) {
        try {
            check((int) reduceScatter.invokeExact(send, recv, count, dtype, op), "rlhf4j_dist_reduce_scatter");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void allGather(long send, long recv, long count, int dtype) {
        try {
            check((int) allGather.invokeExact(send, recv, count, dtype), "rlhf4j_dist_all_gather");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void broadcast(long buf, long count, int dtype, int root) {
        try {
            check((int) broadcast.invokeExact(buf, count, dtype, root), "rlhf4j_dist_broadcast");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void barrier() {
        try {
            check((int) barrier.invokeExact(), "rlhf4j_dist_barrier");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** {@code rlhf4j_dist_all_gather_start}: the request to pass to {@link #requestWait}. */
    public long allGatherStart(long send, long recv, long count, int dtype) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(JAVA_LONG);
            check((int) allGatherStart.invokeExact(send, recv, count, dtype, out), "rlhf4j_dist_all_gather_start");
            return out.get(JAVA_LONG, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** {@code rlhf4j_dist_request_wait}. */
    public void requestWait(long request) {
        try {
            check((int) requestWait.invokeExact(request), "rlhf4j_dist_request_wait");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    // ---- NCCL ------------------------------------------------------------------------------------------------------

    /** @param library libnccl.so.2 or its folder; null: RLHF4J_NCCL, else the loader path; device < 0: local rank */
    public void ncclInit(String library, int device) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment lib = library == null ? MemorySegment.NULL : a.allocateFrom(library);
            check((int) ncclInit.invokeExact(lib, device), "rlhf4j_dist_nccl_init");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public String ncclDescribe() {
        try {
            return string((MemorySegment) ncclDescribe.invokeExact());
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** {@code stream} is a cudaStream_t, 0 for the shim's own stream. */
    public void ncclAllReduce(long send, long recv, long count, int dtype, int op, long stream) {
        try {
            check((int) ncclAllReduce.invokeExact(send, recv, count, dtype, op, stream), "rlhf4j_dist_nccl_all_reduce");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void ncclReduceScatter(long send, long recv, long count, int dtype, int op, long stream) {
        try {
            check((int) ncclReduceScatter.invokeExact(send, recv, count, dtype, op, stream),
                    "rlhf4j_dist_nccl_reduce_scatter");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void ncclAllGather(long send, long recv, long count, int dtype, long stream) {
        try {
            check((int) ncclAllGather.invokeExact(send, recv, count, dtype, stream), "rlhf4j_dist_nccl_all_gather");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void ncclBroadcast(long buf, long count, int dtype, int root, long stream) {
        try {
            check((int) ncclBroadcast.invokeExact(buf, count, dtype, root, stream), "rlhf4j_dist_nccl_broadcast");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** {@code stream}: a cudaStream_t, 0 for the shim's; {@code event}: a cudaEvent_t ({@link Abi#eventNative}). */
    public void ncclStreamWaitEvent(long stream, long event) {
        try {
            check((int) ncclStreamWaitEvent.invokeExact(stream, event), "rlhf4j_dist_nccl_stream_wait_event");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void ncclSynchronize(long stream) {
        try {
            check((int) ncclSynchronize.invokeExact(stream), "rlhf4j_dist_nccl_synchronize");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }
}
