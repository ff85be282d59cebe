package io.github.rlhf4j.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.runtime.Event;
import io.github.rlhf4j.runtime.NativeException;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

/**
 * rlhf4j_event_*: on the CPU backend (ops finish before they return: every mark is passed, no native handle) and on
 * the CUDA backend's own source, emulated (cudaEvent_t underneath, a handle the dist shim's NCCL stream can wait on).
 */
class EventTest {

    @Test
    void onTheCpuEveryMarkIsPassedAndThereIsNoHandleToHandOver() {
        try (Event e = new Event(Device.cpu())) {
            e.record().synchronize();
            assertEquals(0, e.nativeHandle());
            var abi = Device.cpu().abi();
            long raw = abi.eventCreate(Device.cpu().handle());
            abi.eventRecord(raw, Device.cpu().stream());
            abi.streamWaitEvent(Device.cpu().stream(), raw); // nothing to wait for
            abi.eventDestroy(raw);
            assertThrows(NativeException.class, () -> abi.eventSynchronize(0), "a NULL event is refused");
        }
    }

    @Test
    void onTheCudaBackendAnEventOrdersTheWorkQueuedBeforeItsRecord() {
        Device gpu = Emulated.get().device();
        Event e = new Event(gpu);
        try (Scope s = Scope.open(gpu)) {
            Tensor x = s.zeros(io.github.rlhf4j.runtime.DType.F32, 3);
            x.fill(3);
            Tensor y = x.mul(x);
            e.record();
            assertNotEquals(0, e.nativeHandle(), "a cudaEvent_t to hand to another library");
            e.synchronize();
            assertArrayEquals(new float[] {9, 9, 9}, y.toFloatArray());
            e.record().record(); // recorded again: the newer mark
            e.synchronize();
        } finally {
            e.close();
        }
        assertThrows(IllegalStateException.class, e::record, "a closed event");
        // the raw entry points: a stream waits for a mark of its own device; NULLs are named
        var abi = gpu.abi();
        long raw = abi.eventCreate(gpu.handle());
        try {
            abi.eventRecord(raw, gpu.stream());
            abi.streamWaitEvent(gpu.stream(), raw);
            abi.eventSynchronize(raw);
        } finally {
            abi.eventDestroy(raw);
        }
        NativeException bad = assertThrows(NativeException.class, () -> abi.eventRecord(0, gpu.stream()));
        assertTrue(bad.getMessage().contains("rlhf4j_event_record") && bad.getMessage().contains("is NULL"),
                bad.getMessage());
    }

    /**
     * rlhf4j_memcpy_async between pinned host memory and the device, ordered by an event, as ZeRO-Offload streams
     * gradients down and weights up; and the CPU backend's large blocks own their pages, so a GPU backend can pin
     * them.
     */
    @Test
    void copiesWithoutWaitingArriveOnceTheirEventHasPassed() {
        Device gpu = Emulated.get().device();
        var abi = gpu.abi();
        try (Scope host = Scope.open(Device.cpu()); Scope dev = Scope.open(gpu)) {
            Tensor big = host.zeros(io.github.rlhf4j.runtime.DType.F32, 1 << 18); // 1 MiB
            assertEquals(0, big.address() % 4096, "a 1 MiB block of the CPU backend starts on a page");
            assertTrue(abi.hostRegister(gpu.handle(), big.address(), 4L << 18), "pinned");
            Tensor x = dev.zeros(io.github.rlhf4j.runtime.DType.F32, 1 << 18);
            x.fill(2);
            long copies = abi.streamCreate(gpu.handle()), e = abi.eventCreate(gpu.handle());
            try {
                abi.eventRecord(e, gpu.stream());
                abi.streamWaitEvent(copies, e); // after the fill
                abi.memcpyAsync(copies, big.address(), x.address(), 4L << 18, 1);
                abi.eventRecord(e, copies);
                abi.eventSynchronize(e);
                float[] back = big.toFloatArray();
                assertEquals(2f, back[0]);
                assertEquals(2f, back[back.length - 1]);
                big.fill(5);
                abi.memcpyAsync(copies, x.address(), big.address(), 4L << 18, 0);
                abi.eventRecord(e, copies);
                abi.streamWaitEvent(gpu.stream(), e); // the device's own stream reads x after the copy
                assertEquals(5f, x.toFloatArray()[12345]);
            } finally {
                abi.eventDestroy(e);
                abi.streamDestroy(copies);
                abi.hostUnregister(gpu.handle(), big.address());
            }
            var cpu = Device.cpu().abi();
            assertTrue(cpu.hostRegister(Device.cpu().handle(), big.address(), 16), "nothing to pin on the CPU");
            cpu.hostUnregister(Device.cpu().handle(), big.address());
        }
    }
}
