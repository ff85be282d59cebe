package io.github.rlhf4j.runtime;

/**
 * An {@code rlhf4j_event} of a device: a mark in the work queued on its stream, which another stream (the dist shim's
 * NCCL stream) can wait for without the host waiting. On the CPU backend, whose ops finish before they return, every
 * mark is passed already and {@link #nativeHandle} is 0.
 */
public final class Event implements AutoCloseable {
    private final Device device;
    private long handle;

    public Event(Device device) {
        this.device = device;
        this.handle = device.abi().eventCreate(device.handle());
    }

    public Device device() {
        return device;
    }

    /** Marks how far the work queued on the device's stream has got. */
    public Event record() {
        device.abi().eventRecord(handle(), device.stream());
        return this;
    }

    /** Waits on the host until the mark is passed. */
    public void synchronize() {
        device.abi().eventSynchronize(handle());
    }

    /** The backend's own handle (a cudaEvent_t) for a library that queues work beside it; 0 on the CPU. */
    public long nativeHandle() {
        return device.abi().eventNative(handle());
    }

    private long handle() {
        if (handle == 0) throw new IllegalStateException("the event was closed");
        return handle;
    }

    @Override
    public void close() {
        if (handle != 0) device.abi().eventDestroy(handle);
        handle = 0;
    }
}
