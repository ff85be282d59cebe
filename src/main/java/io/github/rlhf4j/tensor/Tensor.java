package io.github.rlhf4j.tensor;

import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;

import io.github.rlhf4j.runtime.Abi;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.runtime.HostScratch;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * An n-d tensor: a view (offset, shape, strides in elements) of a {@link Storage} on one device, with a dtype, and
 * the autograd state. Views (reshape, transpose, slice, expand) share storage; ops that need contiguous input make a
 * contiguous copy themselves. Results of ops live in the thread's current {@link Scope}.
 *
 * <p>Elementwise and reduction math is here as methods; the transformer ops (attention, norms, logprobs...) are in
 * {@link Functional}.
 */
public final class Tensor {
    final Storage storage;
    final long offset;
    private final int[] shape;
    private final long[] strides;
    private final DType dtype;

    private boolean requiresGrad;
    private Autograd.Node gradFn;
    private Tensor grad;
    private String name;

    Tensor(Storage storage, long offset, int[] shape, long[] strides, DType dtype) {
        this.storage = storage;
        this.offset = offset;
        this.shape = shape;
        this.strides = strides;
        this.dtype = dtype;
    }

    // ---- creation (in the current scope) --------------------------------------------------------------------------

    public static Tensor empty(DType dtype, int... shape) {
        return Scope.current().empty(dtype, shape);
    }

    public static Tensor zeros(DType dtype, int... shape) {
        return Scope.current().zeros(dtype, shape);
    }

    public static Tensor ones(DType dtype, int... shape) {
        return Scope.current().full(dtype, 1.0, shape);
    }

    public static Tensor full(DType dtype, double value, int... shape) {
        return Scope.current().full(dtype, value, shape);
    }

    /** A 1-d F32 tensor holding {@code data}. */
    public static Tensor of(float[] data) {
        return Scope.current().of(data);
    }

    /** An F32 tensor of {@code shape} holding {@code data} (an empty shape is a scalar). */
    public static Tensor of(float[] data, int... shape) {
        return Scope.current().of(data, shape);
    }

    public static Tensor of(double[] data) {
        return Scope.current().of(data);
    }

    /** An F64 tensor of {@code shape} holding {@code data}. */
    public static Tensor of(double[] data, int... shape) {
        return Scope.current().of(data, shape);
    }

    public static Tensor ofInts(int[] data) {
        return Scope.current().ofInts(data);
    }

    /** An I32 tensor of {@code shape} holding {@code data} (token ids, targets, masks, positions). */
    public static Tensor ofInts(int[] data, int... shape) {
        return Scope.current().ofInts(data, shape);
    }

    /** A scalar (shape []) of {@code dtype}. */
    public static Tensor scalar(DType dtype, double value) {
        return Scope.current().full(dtype, value);
    }

    /** Uniform in [low, high), from Philox(seed): the same numbers on every backend and thread count. */
    public static Tensor rand(DType dtype, long seed, double low, double high, int... shape) {
        return empty(dtype, shape).fillRandom(false, low, high, seed, 0);
    }

    /** Normal with the given mean and standard deviation, from Philox(seed). */
    public static Tensor randn(DType dtype, long seed, double mean, double std, int... shape) {
        return empty(dtype, shape).fillRandom(true, mean, std, seed, 0);
    }

    /** 0, 1, ..., n-1 as I32. */
    public static Tensor arange(int n) {
        int[] v = new int[n];
        for (int i = 0; i < n; i++) v[i] = i;
        return ofInts(v, n);
    }

    // ---- metadata -------------------------------------------------------------------------------------------------

    public int[] shape() {
        return shape.clone();
    }

    public int size(int dim) {
        return shape[Shape.dim("size", dim, shape.length)];
    }

    public int dim() {
        return shape.length;
    }

    public long numel() {
        return Shape.numel(shape);
    }

    public long[] strides() {
        return strides.clone();
    }

    public DType dtype() {
        return dtype;
    }

    public Device device() {
        return storage.device;
    }

    /** Row-major with no gaps. */
    public boolean isContiguous() {
        long s = 1;
        for (int i = shape.length - 1; i >= 0; i--) {
            if (shape[i] != 1 && strides[i] != s) return false;
            s *= shape[i];
        }
        return true;
    }

    /** Whether this tensor's memory is still allocated. */
    public boolean isAlive() {
        return !storage.isReleased();
    }

    /** A label used in error messages (parameters carry their Hugging Face name). */
    public Tensor name(String name) {
        this.name = name;
        return this;
    }

    public String name() {
        return name;
    }

    /** "[4, 8] f32" or "transformer.wte.weight [50257, 768] f32": for error messages. */
    public String describe() {
        return (name != null ? name + " " : "") + Shape.str(shape) + " " + dtype;
    }

    @Override
    public String toString() {
        return "Tensor" + Shape.str(shape) + " " + dtype + " " + device()
                + (gradFn != null ? " grad_fn=" + gradFn.op : requiresGrad ? " requires_grad" : "");
    }

    // ---- native access (for ops) ---------------------------------------------------------------------------------

    /**
     * Device address of element 0 of this view (a host address on the CPU); fails if the memory was freed. Public for
     * the layers that hand whole buffers to other native libraries (io.github.rlhf4j.dist's collectives).
     */
    public long address() {
        return storage.address(this) + offset * dtype.size;
    }

    Abi abi() {
        return storage.device.abi();
    }

    long stream() {
        return storage.device.stream();
    }

    /** Marks an in-place write, so a node that saved this tensor refuses to run backward on stale values. */
    void bumpVersion() {
        storage.version++;
    }

    // ---- autograd -------------------------------------------------------------------------------------------------

    public boolean requiresGrad() {
        return requiresGrad;
    }

    /** Makes this leaf track gradients (or not). Only floating-point leaves can. */
    public Tensor requiresGrad(boolean on) {
        if (gradFn != null)
            throw new IllegalStateException("requiresGrad: " + describe() + " is the output of " + gradFn.op
                    + ", not a leaf; use detach() first");
        if (on && !dtype.isFloatingPoint())
            throw new IllegalArgumentException("requiresGrad: " + describe() + " has an integer dtype");
        requiresGrad = on;
        return this;
    }

    /** The accumulated gradient of a leaf, or null if none has been computed. */
    public Tensor grad() {
        return grad;
    }

    Tensor gradOrNull() {
        return grad;
    }

    /** Gives a leaf a preallocated gradient buffer (a view of a model's flat gradient): backward adds into it. */
    public void setGrad(Tensor g) {
        if (g != null && (!Arrays.equals(g.shape, shape) || g.dtype != dtype || !g.isContiguous()))
            throw new IllegalArgumentException("setGrad: gradient " + g.describe() + " must be contiguous and match "
                    + describe());
        this.grad = g;
    }

    Autograd.Node gradFn() {
        return gradFn;
    }

    /** The name of the op that produced this tensor, or null for a leaf. */
    public String gradFnName() {
        return gradFn == null ? null : gradFn.op;
    }

    void setGradFn(Autograd.Node node) {
        this.gradFn = node;
        this.requiresGrad = true;
    }

    /** Back-propagates from this scalar into the gradients of the leaves it depends on, then frees the graph. */
    public void backward() {
        Autograd.backward(this, null, false);
    }

    /** Back-propagates with an explicit output gradient; {@code retainGraph} keeps the graph for another pass. */
    public void backward(Tensor gradient, boolean retainGraph) {
        Autograd.backward(this, gradient, retainGraph);
    }

    /** The same data, cut from the graph: a leaf that does not require grad. */
    public Tensor detach() {
        return new Tensor(storage, offset, shape, strides, dtype);
    }

    // ---- data in and out ------------------------------------------------------------------------------------------

    /** This tensor's values converted to float, in row-major order. */
    public float[] toFloatArray() {
        return (float[]) hostCopy(DType.F32);
    }

    public double[] toDoubleArray() {
        return (double[]) hostCopy(DType.F64);
    }

    public int[] toIntArray() {
        if (dtype != DType.I32) throw new IllegalArgumentException("toIntArray: " + describe() + " is not i32");
        return (int[]) hostCopy(DType.I32);
    }

    /** The value of a one-element tensor. */
    public double item() {
        if (numel() != 1) throw new IllegalArgumentException("item: " + describe() + " has " + numel() + " elements");
        if (dtype == DType.I32) return toIntArray()[0];
        return toDoubleArray()[0];
    }

    private Object hostCopy(DType as) {
        Tensor src = this;
        try (Autograd.NoGrad ignored = Autograd.noGrad(); Scope tmp = Scope.open(device())) {
            if (!src.isContiguous()) src = src.contiguous();
            if (src.dtype != as) src = src.to(as);
            long n = src.numel();
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment host = arena.allocate(n * as.size, 64);
                abi().memcpy(stream(), host.address(), src.address(), n * as.size, 1);
                return switch (as) {
                    case F32 -> host.toArray(JAVA_FLOAT);
                    case F64 -> host.toArray(JAVA_DOUBLE);
                    case I32 -> host.toArray(JAVA_INT);
                    default -> throw new IllegalStateException();
                };
            }
        }
    }

    /**
     * Overwrites this contiguous tensor with the {@code numel()} values of {@code srcDtype} in host memory
     * {@code src} (a mapped checkpoint file, say), converting to this tensor's dtype on the device: no copy through
     * the Java heap. Not recorded by autograd.
     */
    public Tensor copyFromHost(MemorySegment src, DType srcDtype) {
        long n = numel(), bytes = n * srcDtype.size;
        if (src.byteSize() != bytes)
            throw new IllegalArgumentException("copyFromHost: " + src.byteSize() + " bytes for " + describe()
                    + " from " + srcDtype + " (" + bytes + " expected)");
        if (!isContiguous()) throw new IllegalArgumentException("copyFromHost: " + describe() + " is not contiguous");
        if ((srcDtype == DType.I32) != (dtype == DType.I32))
            throw new IllegalArgumentException("copyFromHost: cannot convert " + srcDtype + " into " + describe());
        if (!src.isNative()) throw new IllegalArgumentException("copyFromHost: src must be native (off-heap) memory");
        checkInPlace("copyFromHost");
        if (srcDtype == dtype) {
            abi().memcpy(stream(), address(), src.address(), bytes, 0);
        } else if (device().isCpu()) {
            abi().convert(stream(), srcDtype.code, src.address(), dtype.code, address(), n);
        } else {
            try (Scope tmp = Scope.open(device())) {
                Tensor staged = tmp.empty(srcDtype, shape);
                abi().memcpy(stream(), staged.address(), src.address(), bytes, 0);
                abi().convert(stream(), srcDtype.code, staged.address(), dtype.code, address(), n);
            }
        }
        bumpVersion();
        return this;
    }

    /**
     * Writes this tensor's values, converted to {@code dstDtype}, into host memory {@code dst} of exactly
     * {@code numel() * dstDtype.size} bytes (a mapped file being written, say).
     */
    public void copyToHost(MemorySegment dst, DType dstDtype) {
        long n = numel(), bytes = n * dstDtype.size;
        if (dst.byteSize() != bytes)
            throw new IllegalArgumentException("copyToHost: " + dst.byteSize() + " bytes for " + describe() + " as "
                    + dstDtype + " (" + bytes + " expected)");
        if (!dst.isNative()) throw new IllegalArgumentException("copyToHost: dst must be native (off-heap) memory");
        try (Autograd.NoGrad ignored = Autograd.noGrad(); Scope tmp = Scope.open(device())) {
            Tensor src = isContiguous() ? this : contiguous();
            if (src.dtype == dstDtype) {
                abi().memcpy(stream(), dst.address(), src.address(), bytes, 1);
            } else if (device().isCpu()) {
                abi().convert(stream(), src.dtype.code, src.address(), dstDtype.code, dst.address(), n);
            } else {
                Tensor conv = src.to(dstDtype);
                abi().memcpy(stream(), dst.address(), conv.address(), bytes, 1);
            }
        }
    }

    /** Overwrites this contiguous tensor with {@code data} (converted to its dtype). Not recorded by autograd. */
    public Tensor copyFrom(float[] data) {
        return copyFromHost(MemorySegment.ofArray(data), DType.F32, data.length, JAVA_FLOAT);
    }

    public Tensor copyFrom(double[] data) {
        return copyFromHost(MemorySegment.ofArray(data), DType.F64, data.length, JAVA_DOUBLE);
    }

    public Tensor copyFrom(int[] data) {
        return copyFromHost(MemorySegment.ofArray(data), DType.I32, data.length, JAVA_INT);
    }

    private Tensor copyFromHost(MemorySegment heap, DType from, long n, ValueLayout layout) {
        if (n != numel())
            throw new IllegalArgumentException("copyFrom: " + n + " values for " + describe());
        if (!isContiguous()) throw new IllegalArgumentException("copyFrom: " + describe() + " is not contiguous");
        if ((from == DType.I32) != (dtype == DType.I32))
            throw new IllegalArgumentException("copyFrom: cannot copy " + from + " values into " + describe());
        checkInPlace("copyFrom");
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate(n * from.size, 64);
            MemorySegment.copy(heap, 0, host, 0, n * from.size);
            if (from == dtype) {
                abi().memcpy(stream(), address(), host.address(), n * from.size, 0);
            } else {
                try (Scope tmp = Scope.open(device())) {
                    Tensor staged = tmp.empty(from, shape);
                    abi().memcpy(stream(), staged.address(), host.address(), n * from.size, 0);
                    abi().convert(stream(), from.code, staged.address(), dtype.code, address(), n);
                }
            }
        }
        bumpVersion();
        return this;
    }

    private void checkInPlace(String op) {
        if (requiresGrad && Autograd.isEnabled() && gradFn == null)
            throw new IllegalStateException(op + ": in-place write to " + describe() + ", a leaf that requires grad; "
                    + "do it under Autograd.noGrad()");
    }

    /**
     * Fills this contiguous tensor in place with normal(a = mean, b = std) or uniform [a, b) numbers: element i from
     * Philox counter {@code offset + i} under key {@code seed}. Not recorded by autograd.
     */
    public Tensor fillRandom(boolean normal, double a, double b, long seed, long offset) {
        if (!isContiguous()) throw new IllegalArgumentException("fillRandom: " + describe() + " is not contiguous");
        checkInPlace("fillRandom");
        abi().fillRandom(stream(), dtype.code, numel(), address(), normal ? 1 : 0, a, b, seed, offset);
        bumpVersion();
        return this;
    }

    /** Sets every element to {@code value} in place. Not recorded by autograd. */
    public Tensor fill(double value) {
        checkInPlace("fill");
        if (isContiguous()) {
            abi().fill(stream(), dtype.code, numel(), address(), value);
        } else {
            try (Scope tmp = Scope.open(device())) {
                Tensor v = tmp.full(dtype, value);
                copyFromTensor(v.expand(shape), false);
            }
        }
        bumpVersion();
        return this;
    }

    /**
     * In place: this = src, or this += src when {@code accumulate}; {@code src} has this shape or broadcasts to it
     * (any strides). Not recorded by autograd.
     */
    public Tensor copyFromTensor(Tensor src, boolean accumulate) {
        if (src.device() != device())
            throw new IllegalArgumentException("copy: " + src.describe() + " is on " + src.device() + ", "
                    + describe() + " on " + device());
        Tensor s = src.dtype == dtype ? src : src.to(dtype);
        int[] out = Shape.broadcast("copy", s.shape, shape);
        if (!Arrays.equals(out, shape))
            throw new IllegalArgumentException("copy: " + src.describe() + " does not broadcast to " + describe());
        long[] srcStrides = Shape.broadcastStrides(s.shape, s.strides, shape);
        abi().copyStrided(stream(), dtype.code, shape.length, HostScratch.longs(0, shape), s.address(),
                HostScratch.longs(1, srcStrides), address(), HostScratch.longs(2, strides), accumulate ? 1 : 0);
        bumpVersion();
        return this;
    }

    /** A contiguous copy in {@code scope}, not recorded by autograd. */
    public Tensor copy(Scope scope) {
        Tensor t = scope.empty(dtype, shape);
        t.copyFromTensor(this, false);
        return t;
    }

    /**
     * Gives an evictable tensor's memory back to the pool ({@link Scope#evictable}); it and its views refill on
     * first use. Idempotent.
     */
    public void evict() {
        storage.evict();
    }

    /**
     * An evicted tensor made with a fill-ahead ({@link Scope#evictable(DType, int, java.util.function.Consumer,
     * java.util.function.Function)}): takes its memory now and starts filling it, so that its first use finds the
     * fill under way or done instead of starting it. Returns whether it started a fill: false when the tensor is
     * resident already, or has no fill-ahead.
     */
    public boolean fillAhead() {
        return storage.fillAhead();
    }

    /** Whether it is an evictable tensor ({@link Scope#evictable}). */
    public boolean isEvictable() {
        return storage.isEvictable();
    }

    /** False while an evictable tensor is evicted (or once any tensor is released): its memory is not held. */
    public boolean isResident() {
        return storage.isResident();
    }

    /** Frees this tensor's memory now, instead of when its scope closes. Every view of it becomes unusable. */
    public void release() {
        storage.release();
    }

    // ---- dtype ----------------------------------------------------------------------------------------------------

    /** A copy converted to {@code target} (differentiable between floating-point types). */
    public Tensor to(DType target) {
        if (target == dtype) return this;
        return Views.convert(this, target);
    }

    // ---- views ----------------------------------------------------------------------------------------------------

    /** The same elements with a new shape (one size may be -1); copies first if the layout requires it. */
    public Tensor reshape(int... newShape) {
        return Views.reshape(this, newShape);
    }

    /** Swaps two dimensions (a view). */
    public Tensor transpose(int dim0, int dim1) {
        return Views.transpose(this, dim0, dim1);
    }

    /** Reorders dimensions (a view). */
    public Tensor permute(int... dims) {
        return Views.permute(this, dims);
    }

    // ---- flat buffers -----------------------------------------------------------------------------------------

    /**
     * Width of the rows a long flat buffer is kept in. A shape holds int sizes, so a flat buffer of more than
     * 2^31 - 1 elements (a parameter store of OPT-2.7B and up, its gradients and moments) cannot be 1-d; it is a
     * [n / 64, 64] tensor instead, which every elementwise native call (fill, copy, AdamW, axpby, the collectives)
     * treats the same way, since they take the element count, not the shape.
     */
    public static final int FLAT_ROW = 64;

    /**
     * The shape of a flat buffer of {@code n} elements: [n] up to {@link #flatLimit}, else [n / 64, 64] (n must then
     * be a multiple of 64, as the parameter stores' lengths are).
     */
    public static int[] flatShape(long n) {
        if (n < 0) throw new IllegalArgumentException("negative length " + n);
        if (n <= flatLimit()) return new int[] {(int) n};
        if (n % FLAT_ROW != 0)
            throw new IllegalArgumentException("a flat buffer of " + n + " elements (over " + flatLimit()
                    + ") must be a multiple of " + FLAT_ROW + " long, to be kept in rows of " + FLAT_ROW);
        if (n / FLAT_ROW > Integer.MAX_VALUE) throw new IllegalArgumentException("a flat buffer of " + n + " elements is too long");
        return new int[] {(int) (n / FLAT_ROW), FLAT_ROW};
    }

    /**
     * The longest flat buffer kept 1-d: 2^31 - 1 (the largest int size). The system property
     * {@code rlhf4j.tensor.flat_limit} lowers it, for tests only: they run whole training steps with every flat
     * buffer in rows, the layout a model of more than 2^31 parameters has, without allocating one.
     */
    public static long flatLimit() {
        String p = System.getProperty("rlhf4j.tensor.flat_limit");
        if (p == null) return Integer.MAX_VALUE;
        long v = Long.parseLong(p.trim());
        if (v < 1 || v > Integer.MAX_VALUE)
            throw new IllegalArgumentException("rlhf4j.tensor.flat_limit=" + p + ": must be in [1, 2^31 - 1]");
        return v;
    }

    /**
     * Elements [start, end) of this contiguous tensor, in row-major order, as a flat buffer of that length
     * ({@link #flatShape}): a view, not recorded by autograd. What a parameter store's flat buffers are cut into:
     * their groups, partitions and optimizer ranges, whose offsets may pass 2^31.
     */
    public Tensor flatRange(long start, long end) {
        return flatViewOf(start, end, flatShape(end - start));
    }

    /**
     * {@code length} elements from {@code start} of this contiguous tensor as a 1-d view, not recorded by autograd:
     * one parameter of a flat store (fewer than 2^31 elements) at an offset that may pass 2^31.
     */
    public Tensor flatView(long start, int length) {
        return flatViewOf(start, start + length, new int[] {length});
    }

    private Tensor flatViewOf(long start, long end, int[] shape) {
        if (!isContiguous()) throw new IllegalArgumentException("flat range of " + describe() + ": not contiguous");
        if (start < 0 || end > numel() || start > end)
            throw new IllegalArgumentException("flat range [" + start + ", " + end + ") is out of range for "
                    + describe() + " (" + numel() + " elements)");
        if (Autograd.needsGrad(this))
            throw new IllegalStateException("flat range of " + describe() + ": a view autograd would not see; take it "
                    + "under Autograd.noGrad() or of a tensor that needs no gradient");
        return new Tensor(storage, offset + start, shape, Shape.contiguousStrides(shape), dtype);
    }

    /** Elements [start, end) along {@code dim} (a view); negative indices count from the end. */
    public Tensor slice(int dim, int start, int end) {
        return Views.slice(this, dim, start, end);
    }

    /** Index {@code index} of {@code dim}, which is removed (a view). */
    public Tensor select(int dim, int index) {
        return Views.select(this, dim, index);
    }

    /** Inserts a dimension of size 1 (a view). */
    public Tensor unsqueeze(int dim) {
        return Views.unsqueeze(this, dim);
    }

    /** Removes a dimension of size 1 (a view). */
    public Tensor squeeze(int dim) {
        return Views.squeeze(this, dim);
    }

    /** Broadcasts size-1 dimensions to {@code shape} without copying (stride 0). */
    public Tensor expand(int... newShape) {
        return Views.expand(this, newShape);
    }

    /** This tensor if contiguous, else a contiguous copy (differentiable). */
    public Tensor contiguous() {
        return isContiguous() ? this : Views.contiguous(this);
    }

    /** Collapses all dimensions into one. */
    public Tensor flatten() {
        return reshape(-1);
    }

    // ---- elementwise math -----------------------------------------------------------------------------------------

    public Tensor add(Tensor other) {
        return Elementwise.binary(Elementwise.ADD, this, other);
    }

    public Tensor sub(Tensor other) {
        return Elementwise.binary(Elementwise.SUB, this, other);
    }

    public Tensor mul(Tensor other) {
        return Elementwise.binary(Elementwise.MUL, this, other);
    }

    public Tensor div(Tensor other) {
        return Elementwise.binary(Elementwise.DIV, this, other);
    }

    /** Elementwise maximum; on ties the gradient is split in half, as PyTorch does. */
    public Tensor maximum(Tensor other) {
        return Elementwise.binary(Elementwise.MAX, this, other);
    }

    public Tensor minimum(Tensor other) {
        return Elementwise.binary(Elementwise.MIN, this, other);
    }

    public Tensor add(double c) {
        return Elementwise.unary(Elementwise.AFFINE, this, 1.0, c);
    }

    public Tensor sub(double c) {
        return add(-c);
    }

    /** Multiplies by a constant. */
    public Tensor mul(double c) {
        return Elementwise.unary(Elementwise.AFFINE, this, c, 0.0);
    }

    public Tensor div(double c) {
        return mul(1.0 / c);
    }

    public Tensor neg() {
        return mul(-1.0);
    }

    public Tensor exp() {
        return Elementwise.unary(Elementwise.EXP, this, 0, 0);
    }

    public Tensor log() {
        return Elementwise.unary(Elementwise.LOG, this, 0, 0);
    }

    public Tensor sqrt() {
        return Elementwise.unary(Elementwise.SQRT, this, 0, 0);
    }

    public Tensor square() {
        return Elementwise.unary(Elementwise.SQUARE, this, 0, 0);
    }

    public Tensor abs() {
        return Elementwise.unary(Elementwise.ABS, this, 0, 0);
    }

    public Tensor sigmoid() {
        return Elementwise.unary(Elementwise.SIGMOID, this, 0, 0);
    }

    public Tensor tanh() {
        return Elementwise.unary(Elementwise.TANH, this, 0, 0);
    }

    public Tensor relu() {
        return Elementwise.unary(Elementwise.RELU, this, 0, 0);
    }

    /** Limits to [min, max]; pass ±infinity for a one-sided clamp. Gradient passes where min <= x <= max. */
    public Tensor clamp(double min, double max) {
        return Elementwise.unary(Elementwise.CLAMP, this, min, max);
    }

    // ---- reductions -----------------------------------------------------------------------------------------------

    /** Sum of all elements, as a scalar. */
    public Tensor sum() {
        return Reductions.sumAll(this, false);
    }

    public Tensor mean() {
        return Reductions.sumAll(this, true);
    }

    /** Sum over {@code dim}, kept as size 1 when {@code keepDim}. */
    public Tensor sum(int dim, boolean keepDim) {
        return Reductions.reduceDim(this, dim, keepDim, false);
    }

    public Tensor mean(int dim, boolean keepDim) {
        return Reductions.reduceDim(this, dim, keepDim, true);
    }

    // ---- matrix multiply ------------------------------------------------------------------------------------------

    /** Matrix product over the last two dimensions, batched over the leading ones. */
    public Tensor matmul(Tensor other) {
        return Linalg.matmul(this, other);
    }
}
