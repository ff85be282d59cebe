package io.github.rlhf4j.tensor;

import io.github.rlhf4j.runtime.Device;

/**
 * A block of device memory from the device's pool, owned by one {@link Scope}. Tensors are views of a storage. Its
 * version counts in-place writes, so the autograd engine can refuse a backward through a tensor changed after the
 * forward saved it.
 */
final class Storage {
    final Device device;
    final long bytes;
    private long address;
    private final long sizeClass;
    private boolean released;
    /** Non-null for an evictable storage: fills the whole buffer again after {@link #evict} (a ZeRO gather). */
    private java.util.function.Consumer<Tensor> refill;
    /** Optional: starts a refill without waiting for it, returning the wait ({@link #fillAhead}). */
    private java.util.function.Function<Tensor, Runnable> start;
    /** The wait of a fill started ahead and not yet waited for: it runs before the memory is used or given back. */
    private Runnable pending;
    private Tensor whole;
    private boolean evicted;
    int version;
    Scope owner;

    Storage(Device device, long bytes, Scope owner) {
        this.device = device;
        this.owner = owner;
        this.bytes = bytes;
        this.sizeClass = io.github.rlhf4j.runtime.MemoryPool.sizeClass(bytes);
        this.address = device.pool().allocate(bytes);
    }

    boolean isReleased() {
        return released;
    }

    /**
     * The device address; {@code what} describes the tensor for the error when the storage is gone. An evicted
     * storage comes back here, on its first use: a new block, filled by its refill.
     */
    long address(Object what) {
        if (released)
            throw new IllegalStateException("use of a freed tensor: " + what
                    + " was released (its Scope was closed or it was released explicitly)");
        if (evicted) restore();
        else if (pending != null) finishFill();
        return address;
    }

    /**
     * Makes this storage evictable: {@code refill} gets a 1-d view of the whole block to fill after an eviction;
     * {@code start}, if not null, starts such a fill and returns its wait.
     */
    void makeEvictable(java.util.function.Consumer<Tensor> refill, java.util.function.Function<Tensor, Runnable> start,
                       Tensor whole) {
        this.refill = refill;
        this.start = start;
        this.whole = whole;
    }

    /** Evicted, with a fill-ahead: a new block whose fill starts now and is waited for at its first use. */
    boolean fillAhead() {
        if (released || !evicted || start == null) return false;
        address = device.pool().allocate(bytes);
        evicted = false;
        int saved = version;
        try (Autograd.NoGrad ignored = Autograd.noGrad()) {
            pending = start.apply(whole); // whole.address() is this block now: no refill, no wait
        } catch (RuntimeException | Error e) {
            device.pool().release(address, sizeClass);
            evicted = true;
            throw e;
        } finally {
            version = saved;
        }
        return true;
    }

    /** Waits for the fill started ahead (a transport's wait writes no op scratch). */
    private void finishFill() {
        Runnable wait = pending;
        pending = null;
        wait.run();
    }

    boolean isEvictable() {
        return refill != null;
    }

    boolean isResident() {
        return !released && !evicted;
    }

    /** Returns the block to the pool but keeps the storage: every view of it stays valid and refills on first use. */
    void evict() {
        if (refill == null) throw new IllegalStateException("only an evictable tensor (Scope.evictable) can be evicted");
        if (released || evicted) return;
        if (pending != null) finishFill(); // the transport may still write into the block
        device.pool().release(address, sizeClass);
        evicted = true;
    }

    private void restore() {
        address = device.pool().allocate(bytes);
        evicted = false;
        // the contents come back as they were: a saved tensor restored is not a changed one
        int saved = version;
        // the refill runs ops, which write the thread's scratch, while the op that asked for this address may have
        // written its own shapes and strides there already: they are put back after
        long[] scratch = io.github.rlhf4j.runtime.HostScratch.save();
        try (Autograd.NoGrad ignored = Autograd.noGrad()) {
            refill.accept(whole);
        } finally {
            version = saved;
            io.github.rlhf4j.runtime.HostScratch.restore(scratch);
        }
    }

    /** Returns the block to the pool; idempotent. */
    void release() {
        if (!released) {
            released = true;
            if (pending != null) finishFill();
            if (!evicted) device.pool().release(address, sizeClass);
        }
    }
}
