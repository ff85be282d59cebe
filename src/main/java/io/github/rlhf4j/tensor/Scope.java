package io.github.rlhf4j.tensor;

import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import java.util.ArrayList;

/**
 * An arena for tensors: every tensor's memory belongs to exactly one scope, and closing the scope frees it all (back
 * to the device's pool, so the next step reuses it). Ops put their outputs in the thread's current scope, the
 * innermost one opened with {@link #open()} and not yet closed:
 *
 * <pre>{@code
 * try (Scope step = Scope.open()) {
 *     Tensor loss = model.forward(batch).loss();
 *     loss.backward();
 * }   // activations and temporaries freed here; parameters live in the model's own scope
 * }</pre>
 *
 * <p>Scopes opened with {@link #open()} are confined to their thread and must close innermost first.
 * {@link #detached(Device)} makes a scope that is never current and may be used from any thread: the owner of
 * long-lived tensors such as a model's parameters.
 */
public final class Scope implements AutoCloseable {
    private static final ThreadLocal<Scope> CURRENT = new ThreadLocal<>();

    private final Device device;
    private final Scope parent;
    private final Thread thread;
    private final ArrayList<Storage> storages = new ArrayList<>();
    private boolean closed;

    private Scope(Device device, Scope parent, Thread thread) {
        this.device = device;
        this.parent = parent;
        this.thread = thread;
    }

    /** Opens a scope on the current scope's device (the CPU when none is open) and makes it current. */
    public static Scope open() {
        Scope cur = CURRENT.get();
        return open(cur != null ? cur.device : Device.cpu());
    }

    /** Opens a scope on {@code device} and makes it current on this thread. */
    public static Scope open(Device device) {
        Scope s = new Scope(device, CURRENT.get(), Thread.currentThread());
        CURRENT.set(s);
        return s;
    }

    /** A scope that is never current and may be used from any thread, for tensors that outlive a step. */
    public static Scope detached(Device device) {
        return new Scope(device, null, null);
    }

    /** The thread's current scope. */
    public static Scope current() {
        Scope s = CURRENT.get();
        if (s == null)
            throw new IllegalStateException("no open Scope on this thread: ops put their results in the current "
                    + "Scope, so wrap the work in `try (Scope s = Scope.open()) { ... }`");
        return s;
    }

    static Scope currentOrNull() {
        return CURRENT.get();
    }

    public Device device() {
        return device;
    }

    public boolean isOpen() {
        return !closed;
    }

    synchronized Storage allocate(long bytes) {
        checkUsable();
        Storage st = new Storage(device, bytes, this);
        storages.add(st);
        return st;
    }

    private void checkUsable() {
        if (closed) throw new IllegalStateException("this Scope is closed: it can hold no new tensors");
        if (thread != null && thread != Thread.currentThread())
            throw new IllegalStateException("a Scope opened on thread '" + thread.getName() + "' was used from '"
                    + Thread.currentThread().getName() + "': use Scope.detached(device) for tensors shared across threads");
    }

    /** A new tensor in this scope, uninitialised. */
    public Tensor empty(DType dtype, int... shape) {
        int[] sh = Shape.check(shape);
        Storage st = allocate(Shape.numel(sh) * dtype.size);
        return new Tensor(st, 0, sh, Shape.contiguousStrides(sh), dtype);
    }

    /**
     * A 1-d tensor whose memory can be given back while the tensor, and every view of it, stays valid
     * ({@link Tensor#evict}): the first use after an eviction takes a new block and runs {@code refill} on the whole
     * tensor to fill it. ZeRO stage 3 keeps a layer's gathered parameters this way (the refill all-gathers them
     * from the ranks' partitions) and stage 2 a layer's gradient (the refill zeroes it). Its contents are those the
     * refill writes: it starts evicted, so the first use fills it.
     */
    public Tensor evictable(DType dtype, int numel, java.util.function.Consumer<Tensor> refill) {
        return evictable(dtype, numel, refill, null);
    }

    /**
     * {@link #evictable(DType, int, java.util.function.Consumer)} that can also be filled ahead of its use
     * ({@link Tensor#fillAhead}): {@code start} begins filling the whole tensor (ZeRO stage 3 starts the next layer's
     * all-gather, without waiting) and returns what waits for that fill to end, which runs before the memory is
     * next used, evicted or freed.
     */
    public Tensor evictable(DType dtype, int numel, java.util.function.Consumer<Tensor> refill,
                            java.util.function.Function<Tensor, Runnable> start) {
        Tensor t = empty(dtype, numel);
        t.storage.makeEvictable(refill, start, t);
        t.storage.evict();
        return t;
    }

    /** A flat buffer of {@code n} elements ({@link Tensor#flatShape}: 1-d, or rows past 2^31), uninitialised. */
    public Tensor flat(DType dtype, long n) {
        return empty(dtype, Tensor.flatShape(n));
    }

    /** As {@link #flat}, zeroed. */
    public Tensor flatZeros(DType dtype, long n) {
        return zeros(dtype, Tensor.flatShape(n));
    }

    public Tensor zeros(DType dtype, int... shape) {
        Tensor t = empty(dtype, shape);
        t.fill(0);
        return t;
    }

    public Tensor full(DType dtype, double value, int... shape) {
        Tensor t = empty(dtype, shape);
        t.fill(value);
        return t;
    }

    /** A 1-d F32 tensor holding {@code data}. */
    public Tensor of(float[] data) {
        return of(data, data.length);
    }

    /** An F32 tensor of {@code shape} (an empty shape is a scalar) holding {@code data}. */
    public Tensor of(float[] data, int... shape) {
        Tensor t = empty(DType.F32, checkLength(data.length, shape));
        t.copyFrom(data);
        return t;
    }

    public Tensor of(double[] data) {
        return of(data, data.length);
    }

    public Tensor of(double[] data, int... shape) {
        Tensor t = empty(DType.F64, checkLength(data.length, shape));
        t.copyFrom(data);
        return t;
    }

    public Tensor ofInts(int[] data) {
        return ofInts(data, data.length);
    }

    public Tensor ofInts(int[] data, int... shape) {
        Tensor t = empty(DType.I32, checkLength(data.length, shape));
        t.copyFrom(data);
        return t;
    }

    private static int[] checkLength(int length, int[] shape) {
        if (Shape.numel(Shape.check(shape)) != length)
            throw new IllegalArgumentException(length + " values do not fill shape " + Shape.str(shape));
        return shape;
    }

    /** Moves a tensor's memory (and so every view of it) from its scope into this one, e.g. a result out of a step. */
    public Tensor adopt(Tensor t) {
        Storage st = t.storage;
        st.address(t); // fails on a freed tensor
        if (st.device != device)
            throw new IllegalArgumentException("cannot adopt a tensor on " + st.device + " into a Scope on " + device);
        Scope owner = st.owner;
        if (owner == this) return t;
        synchronized (this) {
            checkUsable();
            owner.forget(st);
            storages.add(st);
            st.owner = this;
        }
        return t;
    }

    private synchronized void forget(Storage st) {
        storages.remove(st);
    }

    /** Frees every tensor of this scope and, if it is current, makes its parent current again. */
    @Override
    public void close() {
        if (closed) return;
        if (thread != null) {
            if (thread != Thread.currentThread())
                throw new IllegalStateException("a Scope must be closed on the thread that opened it ('" + thread.getName() + "')");
            if (CURRENT.get() != this)
                throw new IllegalStateException("Scopes must close innermost first: an inner Scope is still open");
            CURRENT.set(parent);
        }
        synchronized (this) {
            closed = true;
            for (Storage st : storages) st.release();
            storages.clear();
        }
    }

    @Override
    public String toString() {
        return "Scope(" + device + (closed ? ", closed" : "") + ", " + storages.size() + " buffers)";
    }
}
