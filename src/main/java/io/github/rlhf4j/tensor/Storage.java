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
    private final long address;
    private final long sizeClass;
    private boolean released;
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

    /** The device address; {@code what} describes the tensor for the error when the storage is gone. */
    long address(Object what) {
        if (released)
            throw new IllegalStateException("use of a freed tensor: " + what
                    + " was released (its Scope was closed or it was released explicitly)");
        return address;
    }

    /** Returns the block to the pool; idempotent. */
    void release() {
        if (!released) {
            released = true;
            device.pool().release(address, sizeClass);
        }
    }
}
