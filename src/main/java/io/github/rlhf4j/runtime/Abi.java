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

/**
 * The bindings of native/include/rlhf4j.h for one backend library: one method per C function, in the header's order,
 * named as the function without its {@code rlhf4j_} prefix.
 *
 * <p>Device pointers and handles cross as {@code long} addresses: they are not host memory Java may read, so they are
 * not dressed as {@link MemorySegment}s. Host arrays (shapes, strides) and out-parameters are segments. Every non-zero
 * status becomes a {@link NativeException} that names the C function and carries {@code rlhf4j_last_error()}, read on
 * the same thread right after the failing call. Out-parameters come back as return values.
 */
public final class Abi {
    private static final Linker LINKER = Linker.nativeLinker();
    private static final MemoryLayout I = JAVA_INT, J = JAVA_LONG, D = JAVA_DOUBLE, A = ADDRESS;

    private final String backend;
    private final SymbolLookup lookup;
    private final List<String> missing = new ArrayList<>();

    private final MethodHandle abiVersion, backendName, backendFeatures, lastError;
    private final MethodHandle deviceCount, deviceOpen, deviceClose, deviceSetNumThreads, deviceMemory;
    private final MethodHandle streamCreate, streamDestroy, streamSynchronize;
    private final MethodHandle eventCreate, eventDestroy, eventRecord, streamWaitEvent, eventSynchronize, eventNative;
    private final MethodHandle malloc, free, memcpy, memset, memcpyAsync, hostRegister, hostUnregister;
    private final MethodHandle fill, fillRandom, convert, copyStrided;
    private final MethodHandle unary, unaryBackward, binary, binaryBackward, reduce, maskedReduce,
            maskedReduceBackward, axpby;
    private final MethodHandle gemm;
    private final MethodHandle embeddingForward, embeddingBackward, layernormForward, layernormBackward,
            rmsnormForward, rmsnormBackward, softmaxForward, softmaxBackward, logprobsForward, logprobsBackward,
            attentionForward, attentionBackward, attentionDecode, ropeForward, ropeBackward, dropoutForward, dropoutBackward;
    private final MethodHandle adamwStep;

    /**
     * Binds every function of the header in {@code lookup}.
     *
     * @throws UnsatisfiedLinkError if the library lacks a function or was built for another ABI version
     */
    public Abi(String backend, SymbolLookup lookup) {
        this.backend = backend;
        this.lookup = lookup;
        // Library
        abiVersion = bind("rlhf4j_abi_version", I);
        backendName = bind("rlhf4j_backend_name", A);
        backendFeatures = bind("rlhf4j_backend_features", A);
        lastError = bind("rlhf4j_last_error", A);
        // Devices, streams, memory
        deviceCount = bind("rlhf4j_device_count", I, A);
        deviceOpen = bind("rlhf4j_device_open", I, I, A);
        deviceClose = bind("rlhf4j_device_close", I, J);
        deviceSetNumThreads = bind("rlhf4j_device_set_num_threads", I, J, I);
        deviceMemory = bind("rlhf4j_device_memory", I, J, A, A, A);
        streamCreate = bind("rlhf4j_stream_create", I, J, A);
        streamDestroy = bind("rlhf4j_stream_destroy", I, J);
        streamSynchronize = bind("rlhf4j_stream_synchronize", I, J);
        eventCreate = bind("rlhf4j_event_create", I, J, A);
        eventDestroy = bind("rlhf4j_event_destroy", I, J);
        eventRecord = bind("rlhf4j_event_record", I, J, J);
        streamWaitEvent = bind("rlhf4j_stream_wait_event", I, J, J);
        eventSynchronize = bind("rlhf4j_event_synchronize", I, J);
        eventNative = bind("rlhf4j_event_native", I, J, A);
        malloc = bind("rlhf4j_malloc", I, J, J, A);
        free = bind("rlhf4j_free", I, J, J);
        memcpy = bind("rlhf4j_memcpy", I, J, J, J, J, I);
        memset = bind("rlhf4j_memset", I, J, J, I, J);
        memcpyAsync = bind("rlhf4j_memcpy_async", I, J, J, J, J, I);
        hostRegister = bind("rlhf4j_host_register", I, J, J, J);
        hostUnregister = bind("rlhf4j_host_unregister", I, J, J);
        // Fill, random, convert, strided copy
        fill = bind("rlhf4j_fill", I, J, I, J, J, D);
        fillRandom = bind("rlhf4j_fill_random", I, J, I, J, J, I, D, D, J, J);
        convert = bind("rlhf4j_convert", I, J, I, J, I, J, J);
        copyStrided = bind("rlhf4j_copy_strided", I, J, I, I, A, J, A, J, A, I);
        // Elementwise and reductions
        unary = bind("rlhf4j_unary", I, J, I, I, J, J, J, D, D);
        unaryBackward = bind("rlhf4j_unary_backward", I, J, I, I, J, J, J, J, J, D, D, I);
        binary = bind("rlhf4j_binary", I, J, I, I, I, A, J, A, J, A, J);
        binaryBackward = bind("rlhf4j_binary_backward", I, J, I, I, I, A, J, A, J, A, J, J, J, I);
        reduce = bind("rlhf4j_reduce", I, J, I, I, J, J, J, J, J, I);
        maskedReduce = bind("rlhf4j_masked_reduce", I, J, I, I, J, J, J, J, J);
        maskedReduceBackward = bind("rlhf4j_masked_reduce_backward", I, J, I, I, J, J, J, J, J, I);
        axpby = bind("rlhf4j_axpby", I, J, I, J, D, J, D, J);
        // Matrix multiply
        gemm = bind("rlhf4j_gemm", I, J, I, I, J, J, J, D, J, J, J, J, J, J, I, D, J, J, J, I, J, J);
        // Transformer ops
        embeddingForward = bind("rlhf4j_embedding_forward", I, J, I, J, J, J, J, J, J);
        embeddingBackward = bind("rlhf4j_embedding_backward", I, J, I, J, J, J, J, J, J);
        layernormForward = bind("rlhf4j_layernorm_forward", I, J, I, J, J, J, J, J, D, J, J, J);
        layernormBackward = bind("rlhf4j_layernorm_backward", I, J, I, J, J, J, J, J, J, J, J, J, J, I);
        rmsnormForward = bind("rlhf4j_rmsnorm_forward", I, J, I, J, J, J, J, D, J, J);
        rmsnormBackward = bind("rlhf4j_rmsnorm_backward", I, J, I, J, J, J, J, J, J, J, J, I);
        softmaxForward = bind("rlhf4j_softmax_forward", I, J, I, I, J, J, J, J);
        softmaxBackward = bind("rlhf4j_softmax_backward", I, J, I, I, J, J, J, J, J, I);
        logprobsForward = bind("rlhf4j_logprobs_forward", I, J, I, J, J, J, J, J, I, J, J);
        logprobsBackward = bind("rlhf4j_logprobs_backward", I, J, I, J, J, J, J, J, I, J, J, J, J, I);
        attentionForward = bind("rlhf4j_attention_forward", I,
                J, I, I, I, I, I, I, I, J, J, J, J, J, J, J, D, I, I, J, J);
        attentionBackward = bind("rlhf4j_attention_backward", I,
                J, I, I, I, I, I, I, I, J, J, J, J, J, J, J, D, I, I, J, J, J, J, J, J, J, J, J, I);
        attentionDecode = bind("rlhf4j_attention_decode", I,
                J, I, I, I, I, I, I, I, I, J, J, J, J, J, D, I, J);
        ropeForward = bind("rlhf4j_rope_forward", I, J, I, I, I, I, I, I, J, J, J, J, J);
        ropeBackward = bind("rlhf4j_rope_backward", I, J, I, I, I, I, I, I, J, J, J, J, J, I);
        dropoutForward = bind("rlhf4j_dropout_forward", I, J, I, J, J, J, D, J, J);
        dropoutBackward = bind("rlhf4j_dropout_backward", I, J, I, J, J, J, D, J, J, I);
        // Optimizer
        adamwStep = bind("rlhf4j_adamw_step", I, J, J, J, J, I, J, J, D, D, D, D, D, J, D, J, I);

        if (!missing.isEmpty())
            throw new UnsatisfiedLinkError("rlhf4j: the " + backend + " library lacks " + missing
                    + ": it was built from another version of rlhf4j.h");
        int version = abiVersion();
        if (version != ABI_VERSION)
            throw new UnsatisfiedLinkError("rlhf4j: the " + backend + " library implements ABI version " + version
                    + ", this jar expects " + ABI_VERSION);
    }

    /** {@code RLHF4J_ABI_VERSION} of the header these bindings mirror. */
    public static final int ABI_VERSION = 2;
    /** {@code RLHF4J_MAX_DIMS}. */
    public static final int MAX_DIMS = 8;

    /** The backend this library implements, as the loader named it ("cpu", "cuda"). */
    public String backend() {
        return backend;
    }

    /**
     * A function of this library outside rlhf4j.h (the ZeRO partitioner of rlhf4j_zero.h lives in the CPU library),
     * bound with {@code descriptor}; its failures read {@link #lastError()} like the ABI's own.
     */
    public MethodHandle companion(String name, FunctionDescriptor descriptor) {
        var symbol = lookup.find(name);
        if (symbol.isEmpty())
            throw new UnsatisfiedLinkError("lib" + "rlhf4j_" + backend + ".so has no " + name
                    + " (a library older than this jar?)");
        return LINKER.downcallHandle(symbol.get(), descriptor);
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
        if (status != 0) throw new NativeException(backend, function, status, lastError());
    }

    private static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException r) return r;
        if (t instanceof Error e) throw e;
        return new IllegalStateException(t);
    }

    private static String string(MemorySegment p) {
        return p.equals(MemorySegment.NULL) ? "" : p.reinterpret(Long.MAX_VALUE).getString(0);
    }

    // ---- Library -------------------------------------------------------------------------------------------------

    public int abiVersion() {
        try {
            return (int) abiVersion.invokeExact();
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public String backendName() {
        try {
            return string((MemorySegment) backendName.invokeExact());
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public String backendFeatures() {
        try {
            return string((MemorySegment) backendFeatures.invokeExact());
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

    // ---- Devices, streams, memory --------------------------------------------------------------------------------

    public int deviceCount() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(JAVA_INT);
            check((int) deviceCount.invokeExact(out), "rlhf4j_device_count");
            return out.get(JAVA_INT, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Returns the device handle. */
    public long deviceOpen(int ordinal) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(ADDRESS);
            check((int) deviceOpen.invokeExact(ordinal, out), "rlhf4j_device_open");
            return out.get(ADDRESS, 0).address();
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void deviceClose(long dev) {
        try {
            check((int) deviceClose.invokeExact(dev), "rlhf4j_device_close");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void deviceSetNumThreads(long dev, int n) {
        try {
            check((int) deviceSetNumThreads.invokeExact(dev, n), "rlhf4j_device_set_num_threads");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Returns {in_use, peak, total} bytes. */
    public long[] deviceMemory(long dev) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(JAVA_LONG, 3);
            check((int) deviceMemory.invokeExact(dev, out, out.asSlice(8), out.asSlice(16)), "rlhf4j_device_memory");
            return out.toArray(JAVA_LONG);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Returns the stream handle. */
    public long streamCreate(long dev) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(ADDRESS);
            check((int) streamCreate.invokeExact(dev, out), "rlhf4j_stream_create");
            return out.get(ADDRESS, 0).address();
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void streamDestroy(long s) {
        try {
            check((int) streamDestroy.invokeExact(s), "rlhf4j_stream_destroy");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void streamSynchronize(long s) {
        try {
            check((int) streamSynchronize.invokeExact(s), "rlhf4j_stream_synchronize");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Returns the event. */
    public long eventCreate(long dev) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(ADDRESS);
            check((int) eventCreate.invokeExact(dev, out), "rlhf4j_event_create");
            return out.get(ADDRESS, 0).address();
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void eventDestroy(long e) {
        try {
            check((int) eventDestroy.invokeExact(e), "rlhf4j_event_destroy");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void eventRecord(long e, long s) {
        try {
            check((int) eventRecord.invokeExact(e, s), "rlhf4j_event_record");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void streamWaitEvent(long s, long e) {
        try {
            check((int) streamWaitEvent.invokeExact(s, e), "rlhf4j_stream_wait_event");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void eventSynchronize(long e) {
        try {
            check((int) eventSynchronize.invokeExact(e), "rlhf4j_event_synchronize");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** The backend's own handle (a cudaEvent_t), 0 on the CPU backend. */
    public long eventNative(long e) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(ADDRESS);
            check((int) eventNative.invokeExact(e, out), "rlhf4j_event_native");
            return out.get(ADDRESS, 0).address();
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Returns the device pointer. */
    public long malloc(long dev, long bytes) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(ADDRESS);
            check((int) malloc.invokeExact(dev, bytes, out), "rlhf4j_malloc");
            return out.get(ADDRESS, 0).address();
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void free(long dev, long ptr) {
        try {
            check((int) free.invokeExact(dev, ptr), "rlhf4j_free");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** {@code kind}: 0 host to device, 1 device to host, 2 device to device. Host addresses must stay alive. */
    public void memcpy(long s, long dst, long src, long bytes, int kind) {
        try {
            check((int) memcpy.invokeExact(s, dst, src, bytes, kind), "rlhf4j_memcpy");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void memset(long s, long dst, int byteValue, long bytes) {
        try {
            check((int) memset.invokeExact(s, dst, byteValue, bytes), "rlhf4j_memset");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void memcpyAsync(long s, long dst, long src, long bytes, int kind) {
        try {
            check((int) memcpyAsync.invokeExact(s, dst, src, bytes, kind), "rlhf4j_memcpy_async");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Pins host memory; false when the backend cannot (RLHF4J_ERR_UNSUPPORTED: a page pinned already). */
    public boolean hostRegister(long dev, long ptr, long bytes) {
        int status;
        try {
            status = (int) hostRegister.invokeExact(dev, ptr, bytes);
        } catch (Throwable t) {
            throw rethrow(t);
        }
        if (status == 2) return false;
        check(status, "rlhf4j_host_register");
        return true;
    }

    public void hostUnregister(long dev, long ptr) {
        try {
            check((int) hostUnregister.invokeExact(dev, ptr), "rlhf4j_host_unregister");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    // ---- Fill, random, convert, strided copy ---------------------------------------------------------------------

    public void fill(long s, int dtype, long n, long x, double value) {
        try {
            check((int) fill.invokeExact(s, dtype, n, x, value), "rlhf4j_fill");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void fillRandom(long s, int dtype, long n, long x, int kind, double a, double b, long seed, long offset) {
        try {
            check((int) fillRandom.invokeExact(s, dtype, n, x, kind, a, b, seed, offset), "rlhf4j_fill_random");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void convert(long s, int srcDtype, long src, int dstDtype, long dst, long n) {
        try {
            check((int) convert.invokeExact(s, srcDtype, src, dstDtype, dst, n), "rlhf4j_convert");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void copyStrided(long s, int dtype, int ndim, MemorySegment shape, long src, MemorySegment srcStrides,
                            long dst, MemorySegment dstStrides, int accumulate) {
        try {
            check((int) copyStrided.invokeExact(s, dtype, ndim, shape, src, srcStrides, dst, dstStrides, accumulate),
                    "rlhf4j_copy_strided");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    // ---- Elementwise and reductions ------------------------------------------------------------------------------

    public void unary(long s, int op, int dtype, long n, long x, long y, double alpha, double beta) {
        try {
            check((int) unary.invokeExact(s, op, dtype, n, x, y, alpha, beta), "rlhf4j_unary");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void unaryBackward(long s, int op, int dtype, long n, long x, long y, long dy, long dx, double alpha,
                              double beta, int accumulate) {
        try {
            check((int) unaryBackward.invokeExact(s, op, dtype, n, x, y, dy, dx, alpha, beta, accumulate),
                    "rlhf4j_unary_backward");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void binary(long s, int op, int dtype, int ndim, MemorySegment shape, long a, MemorySegment aStrides,
                       long b, MemorySegment bStrides, long out) {
        try {
            check((int) binary.invokeExact(s, op, dtype, ndim, shape, a, aStrides, b, bStrides, out), "rlhf4j_binary");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void binaryBackward(long s, int op, int dtype, int ndim, MemorySegment shape, long a,
                               MemorySegment aStrides, long b, MemorySegment bStrides, long dout, long da, long db,
                               int accumulate) {
        try {
            check((int) binaryBackward.invokeExact(s, op, dtype, ndim, shape, a, aStrides, b, bStrides, dout, da, db,
                    accumulate), "rlhf4j_binary_backward");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void reduce(long s, int op, int dtype, long outer, long n, long inner, long x, long y, int accumulate) {
        try {
            check((int) reduce.invokeExact(s, op, dtype, outer, n, inner, x, y, accumulate), "rlhf4j_reduce");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void maskedReduce(long s, int op, int dtype, long rows, long cols, long x, long mask, long y) {
        try {
            check((int) maskedReduce.invokeExact(s, op, dtype, rows, cols, x, mask, y), "rlhf4j_masked_reduce");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void maskedReduceBackward(long s, int op, int dtype, long rows, long cols, long mask, long dy, long dx,
                                     int accumulate) {
        try {
            check((int) maskedReduceBackward.invokeExact(s, op, dtype, rows, cols, mask, dy, dx, accumulate),
                    "rlhf4j_masked_reduce_backward");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void axpby(long s, int dtype, long n, double alpha, long x, double beta, long y) {
        try {
            check((int) axpby.invokeExact(s, dtype, n, alpha, x, beta, y), "rlhf4j_axpby");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    // ---- Matrix multiply -----------------------------------------------------------------------------------------

    public void gemm(long s, int transA, int transB, long m, long n, long k, double alpha, long a, long lda,
                     long strideA, long b, long ldb, long strideB, int abDtype, double beta, long c, long ldc,
                     long strideC, int cDtype, long batch, long bias) {
        try {
            check((int) gemm.invokeExact(s, transA, transB, m, n, k, alpha, a, lda, strideA, b, ldb, strideB, abDtype,
                    beta, c, ldc, strideC, cDtype, batch, bias), "rlhf4j_gemm");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    // ---- Transformer ops -----------------------------------------------------------------------------------------

    public void embeddingForward(long s, int dtype, long n, long dim, long vocab, long ids, long weight, long out) {
        try {
            check((int) embeddingForward.invokeExact(s, dtype, n, dim, vocab, ids, weight, out),
                    "rlhf4j_embedding_forward");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void embeddingBackward(long s, int dtype, long n, long dim, long vocab, long ids, long dout,
                                  long dweight) {
        try {
            check((int) embeddingBackward.invokeExact(s, dtype, n, dim, vocab, ids, dout, dweight),
                    "rlhf4j_embedding_backward");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void layernormForward(long s, int dtype, long rows, long dim, long x, long weight, long bias, double eps,
                                 long y, long mean, long rstd) {
        try {
            check((int) layernormForward.invokeExact(s, dtype, rows, dim, x, weight, bias, eps, y, mean, rstd),
                    "rlhf4j_layernorm_forward");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void layernormBackward(long s, int dtype, long rows, long dim, long x, long weight, long mean, long rstd,
                                  long dy, long dx, long dweight, long dbias, int accumulate) {
        try {
            check((int) layernormBackward.invokeExact(s, dtype, rows, dim, x, weight, mean, rstd, dy, dx, dweight,
                    dbias, accumulate), "rlhf4j_layernorm_backward");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void rmsnormForward(long s, int dtype, long rows, long dim, long x, long weight, double eps, long y,
                               long rstd) {
        try {
            check((int) rmsnormForward.invokeExact(s, dtype, rows, dim, x, weight, eps, y, rstd),
                    "rlhf4j_rmsnorm_forward");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void rmsnormBackward(long s, int dtype, long rows, long dim, long x, long weight, long rstd, long dy,
                                long dx, long dweight, int accumulate) {
        try {
            check((int) rmsnormBackward.invokeExact(s, dtype, rows, dim, x, weight, rstd, dy, dx, dweight, accumulate),
                    "rlhf4j_rmsnorm_backward");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void softmaxForward(long s, int dtype, int log, long rows, long cols, long x, long y) {
        try {
            check((int) softmaxForward.invokeExact(s, dtype, log, rows, cols, x, y), "rlhf4j_softmax_forward");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void softmaxBackward(long s, int dtype, int log, long rows, long cols, long y, long dy, long dx,
                                int accumulate) {
        try {
            check((int) softmaxBackward.invokeExact(s, dtype, log, rows, cols, y, dy, dx, accumulate),
                    "rlhf4j_softmax_backward");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void logprobsForward(long s, int dtype, long rows, long vocab, long logits, long logitsRowStride,
                                long targets, int ignoreIndex, long logprobs, long lse) {
        try {
            check((int) logprobsForward.invokeExact(s, dtype, rows, vocab, logits, logitsRowStride, targets,
                    ignoreIndex, logprobs, lse), "rlhf4j_logprobs_forward");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void logprobsBackward(long s, int dtype, long rows, long vocab, long logits, long logitsRowStride,
                                 long targets, int ignoreIndex, long lse, long dlogprobs, long dlogits,
                                 long dlogitsRowStride, int accumulate) {
        try {
            check((int) logprobsBackward.invokeExact(s, dtype, rows, vocab, logits, logitsRowStride, targets,
                    ignoreIndex, lse, dlogprobs, dlogits, dlogitsRowStride, accumulate), "rlhf4j_logprobs_backward");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void attentionForward(long s, int dtype, int b, int tq, int tk, int hq, int hkv, int d, long q,
                                 long qRowStride, long k, long kRowStride, long v, long vRowStride, long keyMask,
                                 double scale, int causal, int window, long out, long lse) {
        try {
            check((int) attentionForward.invokeExact(s, dtype, b, tq, tk, hq, hkv, d, q, qRowStride, k, kRowStride, v,
                    vRowStride, keyMask, scale, causal, window, out, lse), "rlhf4j_attention_forward");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void attentionBackward(long s, int dtype, int b, int tq, int tk, int hq, int hkv, int d, long q,
                                  long qRowStride, long k, long kRowStride, long v, long vRowStride, long keyMask,
                                  double scale, int causal, int window, long out, long dout, long lse, long dq,
                                  long dqRowStride, long dk, long dkRowStride, long dv, long dvRowStride,
                                  int accumulate) {
        try {
            check((int) attentionBackward.invokeExact(s, dtype, b, tq, tk, hq, hkv, d, q, qRowStride, k, kRowStride,
                    v, vRowStride, keyMask, scale, causal, window, out, dout, lse, dq, dqRowStride, dk, dkRowStride,
                    dv, dvRowStride, accumulate), "rlhf4j_attention_backward");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void attentionDecode(long s, int dtype, int b, int tq, int tk, int tmax, int hq, int hkv, int d, long q,
                                long qRowStride, long kCache, long vCache, long keyMask, double scale, int window,
                                long out) {
        try {
            check((int) attentionDecode.invokeExact(s, dtype, b, tq, tk, tmax, hq, hkv, d, q, qRowStride, kCache,
                    vCache, keyMask, scale, window, out), "rlhf4j_attention_decode");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void ropeForward(long s, int dtype, int b, int t, int h, int d, int rotaryDim, long x, long xRowStride,
                            long positions, long invFreq, long y) {
        try {
            check((int) ropeForward.invokeExact(s, dtype, b, t, h, d, rotaryDim, x, xRowStride, positions, invFreq, y),
                    "rlhf4j_rope_forward");
        } catch (Throwable e) {
            throw rethrow(e);
        }
    }

    public void ropeBackward(long s, int dtype, int b, int t, int h, int d, int rotaryDim, long dy, long positions,
                             long invFreq, long dx, long dxRowStride, int accumulate) {
        try {
            check((int) ropeBackward.invokeExact(s, dtype, b, t, h, d, rotaryDim, dy, positions, invFreq, dx,
                    dxRowStride, accumulate), "rlhf4j_rope_backward");
        } catch (Throwable e) {
            throw rethrow(e);
        }
    }

    public void dropoutForward(long s, int dtype, long n, long x, long y, double p, long seed, long offset) {
        try {
            check((int) dropoutForward.invokeExact(s, dtype, n, x, y, p, seed, offset), "rlhf4j_dropout_forward");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void dropoutBackward(long s, int dtype, long n, long dy, long dx, double p, long seed, long offset,
                                int accumulate) {
        try {
            check((int) dropoutBackward.invokeExact(s, dtype, n, dy, dx, p, seed, offset, accumulate),
                    "rlhf4j_dropout_backward");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    // ---- Optimizer -----------------------------------------------------------------------------------------------

    public void adamwStep(long s, long n, long param, long grad, int gradDtype, long m, long v, double lr,
                          double beta1, double beta2, double eps, double weightDecay, long step, double gradScale,
                          long paramCopy, int copyDtype) {
        try {
            check((int) adamwStep.invokeExact(s, n, param, grad, gradDtype, m, v, lr, beta1, beta2, eps, weightDecay,
                    step, gradScale, paramCopy, copyDtype), "rlhf4j_adamw_step");
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }
}
