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
        return address;
    }

    /** Makes this storage evictable: {@code refill} gets a 1-d view of the whole block to fill after an eviction. */
    void makeEvictable(java.util.function.Consumer<Tensor> refill, Tensor whole) {
        this.refill = refill;
        this.whole = whole;
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
            if (!evicted) device.pool().release(address, sizeClass);
        }
    }
}
