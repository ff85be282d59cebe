package io.github.rlhf4j.kernels;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.github.rlhf4j.runtime.Abi;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.runtime.NativeException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * kernels/backend.cu on the emulated CUDA backend: the library's identity, devices, streams, the caching allocator
 * (reuse, stream order, no driver allocations in a repeated step, the registry that refuses foreign and double
 * frees, 0xFF refill in emulation, in-use and peak counts), copies, memset, and errors that name their entry point.
 */
class BackendKernelTest {
    /** The device under test; BackendKernelOnGpuTest runs these checks on a real GPU. */
    Device dev() {
        return Emulated.get().device();
    }

    /** The library file of the device under test. */
    Path library() {
        return Emulated.get().file();
    }

    /** The emulated build: its features line, 0xFF refill and overrun checks. */
    boolean emulated() {
        return true;
    }

    Abi abi() {
        return dev().abi();
    }

    /** {driver allocations, bytes held from the driver} from rlhf4j_cuda_allocator_stats (not in rlhf4j.h). */
    long[] stats() {
        MethodHandle h = Linker.nativeLinker().downcallHandle(
                SymbolLookup.libraryLookup(library(), Arena.global()).find("rlhf4j_cuda_allocator_stats").orElseThrow(),
                FunctionDescriptor.of(JAVA_INT, JAVA_LONG, ADDRESS, ADDRESS));
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(JAVA_LONG, 2);
            int st = (int) h.invokeExact(dev().handle(), out, out.asSlice(8));
            assertEquals(0, st);
            return out.toArray(JAVA_LONG);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    byte[] download(long ptr, long bytes) {
        return KernelCheck.download(dev(), ptr, bytes);
    }

    void upload(long ptr, byte[] data) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment h = a.allocate(data.length);
            h.copyFrom(MemorySegment.ofArray(data));
            abi().memcpy(dev().stream(), ptr, h.address(), data.length, 0);
        }
    }

    @Test
    void namesItselfCudaAndSaysItIsEmulated() {
        Abi abi = abi();
        assertEquals("cuda", abi.backendName());
        if (emulated()) {
            assertTrue(abi.backendFeatures().startsWith("emulated on the CPU ("), abi.backendFeatures());
            assertEquals(1, abi.deviceCount());
        } else {
            assertTrue(abi.backendFeatures().contains("CUDA runtime"), abi.backendFeatures());
            assertTrue(abi.deviceCount() >= 1);
        }
        assertEquals(Abi.ABI_VERSION, abi.abiVersion());
    }

    @Test
    void deviceOpenRefusesAMissingOrdinal() {
        int n = abi().deviceCount();
        var e = assertThrows(NativeException.class, () -> abi().deviceOpen(n));
        assertEquals(NativeException.Status.INVALID_ARGUMENT, e.status());
        assertTrue(e.getMessage().contains("rlhf4j_device_open: ordinal " + n + " does not exist"), e.getMessage());
    }

    @Test
    void freedBlocksAreReusedAndARepeatedStepAllocatesNothingNew() {
        Abi abi = abi();
        long d = dev().handle();
        long p = abi.malloc(d, 1000);
        abi.free(d, p);
        assertEquals(p, abi.malloc(d, 1000), "a freed block of the same size class comes back");
        abi.free(d, p);
        long[] sizes = {12, 4096, 1000, 77777, 3, 1 << 20};
        for (int step = 0; step < 4; step++) {
            long[] before = stats();
            List<Long> live = new ArrayList<>();
            for (long n : sizes) live.add(abi.malloc(d, n));
            // a reduction with a workspace (several chunks) inside the step
            long x = abi.malloc(d, 4L * 40000), y = abi.malloc(d, 8);
            abi.fill(dev().stream(), DType.F32.code, 40000, x, 1);
            abi.reduce(dev().stream(), 0, DType.F32.code, 2, 20000, 1, x, y, 0);
            live.add(x);
            live.add(y);
            for (long q : live) abi.free(d, q);
            long[] after = stats();
            if (step > 0)
                assertEquals(before[0], after[0], "step " + step + " called cudaMalloc " + (after[0] - before[0])
                        + " times; the cache should have served it");
        }
    }

    @Test
    void mallocZeroGivesUniqueAlignedPointersAndEveryBlockIsAligned() {
        Abi abi = abi();
        long d = dev().handle();
        Set<Long> seen = new HashSet<>();
        List<Long> live = new ArrayList<>();
        for (long n : new long[] {0, 0, 0, 1, 255, 257, 4097, 100000}) {
            long p = abi.malloc(d, n);
            assertNotEquals(0L, p);
            assertEquals(0, p % 256, "rlhf4j_malloc(" + n + ") = " + Long.toHexString(p) + " is not 256-byte aligned");
            assertTrue(seen.add(p), "pointer handed out twice");
            live.add(p);
        }
        for (long p : live) abi.free(d, p);
    }

    @Test
    void freeRefusesForeignInteriorAndDoubleFrees() {
        Abi abi = abi();
        long d = dev().handle();
        long p = abi.malloc(d, 512);
        var e = assertThrows(NativeException.class, () -> abi.free(d, p + 64));
        assertEquals(NativeException.Status.INVALID_ARGUMENT, e.status());
        assertTrue(e.getMessage().contains("rlhf4j_free:") && e.getMessage().contains("not a live allocation"),
                e.getMessage());
        abi.free(d, p);
        e = assertThrows(NativeException.class, () -> abi.free(d, p));
        assertTrue(e.getMessage().contains("already freed"), e.getMessage());
        try (Arena a = Arena.ofConfined()) {
            long host = a.allocate(64).address();
            e = assertThrows(NativeException.class, () -> abi.free(d, host));
            assertTrue(e.getMessage().contains("not a live allocation"), e.getMessage());
        }
        abi.free(d, 0); // NULL is a no-op, as free(3)
    }

    @Test
    void deviceMemoryCountsBytesInUseAndPeak() {
        Abi abi = abi();
        long d = dev().handle();
        long[] m0 = abi.deviceMemory(d);
        long p = abi.malloc(d, 1_000_003), q = abi.malloc(d, 17);
        long[] m1 = abi.deviceMemory(d);
        assertEquals(m0[0] + 1_000_020, m1[0], "in_use counts the bytes asked for");
        assertTrue(m1[1] >= m1[0], "peak >= in_use");
        abi.free(d, p);
        long[] m2 = abi.deviceMemory(d);
        assertEquals(m0[0] + 17, m2[0]);
        assertEquals(m1[1], m2[1], "peak stays");
        assertTrue(m2[2] > 0, "total");
        abi.free(d, q);
    }

    @Test
    void outOfMemoryIsAnErrorThatNamesTheSize() {
        var e = assertThrows(NativeException.class, () -> abi().malloc(dev().handle(), 1L << 52));
        assertEquals(NativeException.Status.OUT_OF_MEMORY, e.status());
        assertTrue(e.getMessage().contains("rlhf4j_malloc") && e.getMessage().contains(Long.toString(1L << 52)),
                e.getMessage());
        var e2 = assertThrows(NativeException.class, () -> abi().malloc(dev().handle(), -1));
        assertEquals(NativeException.Status.INVALID_ARGUMENT, e2.status());
    }

    @Test
    void reusedBlocksAreRefilledWithNaNBytes() {
        assumeTrue(emulated(), "emulation only: on a GPU a reused block keeps its old bytes");
        Abi abi = abi();
        long d = dev().handle();
        long p = abi.malloc(d, 4096);
        abi.memset(dev().stream(), p, 0, 4096);
        abi.free(d, p);
        long q = abi.malloc(d, 4096);
        assertEquals(p, q);
        byte[] b = download(q, 4096);
        for (int i = 0; i < b.length; i++) assertEquals((byte) 0xFF, b[i], "byte " + i + " of a reused block");
        abi.free(d, q);
    }

    @Test
    void aWritePastTheEndIsCaughtWhenTheBlockIsFreed() {
        // Emulation: the bytes between the requested end and the guard page must still be 0xFF at free.
        assumeTrue(emulated(), "emulation only: the GPU build does not check the slack at free");
        Abi abi = abi();
        long d = dev().handle();
        long p = abi.malloc(d, 1000);
        abi.memset(dev().stream(), p, 0, 1004); // 4 bytes too many, short of the guard page
        var e = assertThrows(NativeException.class, () -> abi.free(d, p));
        assertEquals(NativeException.Status.DEVICE, e.status());
        assertTrue(e.getMessage().contains("rlhf4j_free") && e.getMessage().contains("byte 1000 of this 1000-byte"),
                e.getMessage());
        e = assertThrows(NativeException.class, () -> abi.free(d, p)); // it was freed all the same
        assertTrue(e.getMessage().contains("not a live allocation"), e.getMessage());
    }

    @Test
    void memcpyAndMemsetRoundTrip() {
        Abi abi = abi();
        long d = dev().handle(), s = dev().stream();
        byte[] data = new byte[1001];
        for (int i = 0; i < data.length; i++) data[i] = (byte) (i * 7 + 3);
        long p = abi.malloc(d, 1001), q = abi.malloc(d, 1001);
        upload(p, data);
        abi.memcpy(s, q, p, 1001, 2);
        assertArrayEquals(data, download(q, 1001));
        abi.memset(s, q + 10, 0x5A, 100);
        byte[] back = download(q, 1001);
        for (int i = 0; i < 1001; i++) assertEquals(i >= 10 && i < 110 ? (byte) 0x5A : data[i], back[i], "byte " + i);
        abi.memcpy(s, q, p, 0, 2); // zero bytes: fine
        var e = assertThrows(NativeException.class, () -> abi.memcpy(s, q, p, 8, 7));
        assertTrue(e.getMessage().contains("rlhf4j_memcpy: unknown kind 7"), e.getMessage());
        abi.free(d, p);
        abi.free(d, q);
    }

    @Test
    void secondStreamWorksAndBlocksMoveBetweenStreams() {
        Abi abi = abi();
        long d = dev().handle();
        long s2 = abi.streamCreate(d);
        try {
            long p = abi.malloc(d, 4000);
            abi.fill(s2, DType.F32.code, 1000, p, 2.5);
            abi.streamSynchronize(s2);
            abi.free(d, p); // two streams: the free waits on events of both before reuse
            long q = abi.malloc(d, 4000);
            abi.fill(dev().stream(), DType.F32.code, 1000, q, -1);
            double[] v = KernelCheck.decode(download(q, 4000), DType.F32);
            for (double x : v) assertEquals(-1.0, x);
            abi.free(d, q);
        } finally {
            abi.streamDestroy(s2);
        }
    }

    @Test
    void errorsNameTheEntryPointAndTheArgument() {
        Abi abi = abi();
        long s = dev().stream();
        var e = assertThrows(NativeException.class, () -> abi.fill(s, 42, 4, 1, 0));
        assertEquals("rlhf4j_fill", e.function());
        assertTrue(e.getMessage().contains("rlhf4j_fill: unknown dtype 42"), e.getMessage());
        e = assertThrows(NativeException.class, () -> abi.convert(s, DType.F32.code, 0, DType.BF16.code, 64, 4));
        assertTrue(e.getMessage().contains("rlhf4j_convert: src is NULL"), e.getMessage());
        e = assertThrows(NativeException.class, () -> abi.reduce(s, 0, DType.F32.code, -1, 4, 1, 64, 64, 0));
        assertTrue(e.getMessage().contains("rlhf4j_reduce: outer = -1 must be >= 0"), e.getMessage());
        e = assertThrows(NativeException.class, () -> abi.streamSynchronize(0));
        assertTrue(e.getMessage().contains("rlhf4j_stream_synchronize: stream is NULL"), e.getMessage());
    }
}
