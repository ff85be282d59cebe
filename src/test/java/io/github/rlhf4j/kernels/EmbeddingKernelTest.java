package io.github.rlhf4j.kernels;

import static io.github.rlhf4j.kernels.KernelCheck.random;
import static io.github.rlhf4j.kernels.KernelCheck.randomInts;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.runtime.NativeException;
import java.lang.foreign.Arena;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * kernels/embedding.cu through the ABI on the emulated CUDA backend against the CPU backend. Forward is a byte gather
 * (exact, in every storage dtype). Backward groups positions by id with a sort and walks runs of equal ids in tiles
 * of 64 sorted positions: the cases repeat ids so that runs cross tile boundaries and one id spans several whole
 * tiles (the fix-up pass), use more than 2048 positions (the sort's global merge steps), widths that take the
 * 16-byte path and widths that do not, and rows of dweight that no position touches (which must stay as they were).
 */
class EmbeddingKernelTest {

    /** A check of one case; EmbeddingKernelOnGpuTest runs the same cases on a real GPU. */
    KernelCheck check(DType t) {
        return KernelCheck.of(t);
    }

    /** The device under test, for direct calls. */
    Device target() {
        return Emulated.get().device();
    }
    /** n, dim, vocab, how ids are drawn: 0 uniform, 1 few distinct ids (runs cross tiles), 2 one id dominates. */
    private static final int[][] CASES = {
        {1, 768, 1000, 0}, {3, 7, 11, 0}, {37, 1000, 50, 0}, {300, 8, 5, 1}, {200, 3, 9, 2}, {3000, 8, 40, 1},
        {130, 16, 3, 2},
    };

    private static int[] ids(int[] cs) {
        int n = cs[0], vocab = cs[2];
        int[] ids = randomInts(n * 31L + vocab, n, 0, vocab);
        if (cs[3] == 2) // id 1 everywhere but a few positions: one run over several whole tiles
            for (int t = 0; t < n; t++) if (t % 37 != 5) ids[t] = 1;
        return ids;
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16"})
    void embeddingForwardIsAnExactGather(DType dt) {
        for (int[] cs : CASES) {
            int n = cs[0], dim = cs[1], vocab = cs[2];
            try (KernelCheck k = check(dt)) {
                var ids = k.ints("ids", ids(cs));
                // the CPU backend gathers bf16 storage too, so both sides run the dtype under test
                var w = k.input("weight", dt, random(vocab + dim, vocab * dim, -1, 1));
                var out = k.output("out", dt, (long) n * dim);
                k.run("rlhf4j_embedding_forward", n + "x" + dim + " vocab " + vocab,
                        c -> c.abi.embeddingForward(c.s, dt.code, n, dim, vocab, c.p(ids), c.p(w), c.p(out)))
                        .exact(out);
            }
        }
    }

    /** F64 and F16 are plain byte copies on both backends, and rows of 3 f16 take the 2-byte unit. */
    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F64", "F16"})
    void embeddingForwardGathersEveryStorageDtype(DType storage) {
        int n = 9, vocab = 6;
        for (int dim : new int[] {3, 8}) {
            try (KernelCheck k = check(DType.F32)) {
                var ids = k.ints("ids", randomInts(3, n, 0, vocab));
                var w = k.input("weight", storage, random(4, vocab * dim, -1, 1));
                var out = k.output("out", storage, (long) n * dim);
                k.run("rlhf4j_embedding_forward", storage + " " + n + "x" + dim,
                        c -> c.abi.embeddingForward(c.s, storage.code, n, dim, vocab, c.p(ids), c.p(w), c.p(out)))
                        .exact(out);
            }
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16"})
    void embeddingBackwardMatchesCpu(DType dt) {
        for (int[] cs : CASES) {
            int n = cs[0], dim = cs[1], vocab = cs[2];
            try (KernelCheck k = check(dt)) {
                var ids = k.ints("ids", ids(cs));
                var dout = k.input("dout", random(n + dim, n * dim, -1, 1));
                var dw = k.inout("dweight", random(vocab * 3L + dim, vocab * dim, -1, 1));
                k.run("rlhf4j_embedding_backward", n + "x" + dim + " vocab " + vocab + " ids " + cs[3],
                        c -> c.abi.embeddingBackward(c.s, c.dtype, n, dim, vocab, c.p(ids), c.p(dout), c.p(dw)))
                        .close(dw);
            }
        }
    }

    /** An id outside [0, vocab) fails naming the position, with the CPU backend's message, and writes nothing. */
    @Test
    void badIdFailsNamingThePositionBeforeWriting() {
        int n = 6, dim = 4, vocab = 5;
        int[] ids = {0, 4, 2, 1, 5, -3};
        String cpu = failures(Device.cpu(), n, dim, vocab, ids);
        String emu = failures(target(), n, dim, vocab, ids);
        assertTrue(emu.contains("rlhf4j_embedding_forward: ids[4] = 5 is outside [0, vocab = 5)"), emu);
        assertTrue(emu.contains("rlhf4j_embedding_backward: ids[4] = 5 is outside [0, vocab = 5)"), emu);
        assertEquals(cpu, emu);
    }

    /** The backend's own message (rlhf4j_last_error), without the Java binding's prefix. */
    static String nativePart(NativeException e) {
        return e.getMessage().substring(e.getMessage().indexOf("): ") + 3);
    }

    /** Both calls' native messages (they must fail), after checking that out and dweight were left untouched. */
    private static String failures(Device d, int n, int dim, int vocab, int[] ids) {
        var abi = d.abi();
        long pid = abi.malloc(d.handle(), 4L * n), w = abi.malloc(d.handle(), 4L * vocab * dim);
        long out = abi.malloc(d.handle(), 4L * n * dim), dout = abi.malloc(d.handle(), 4L * n * dim);
        try (Arena a = Arena.ofConfined()) {
            abi.memcpy(d.stream(), pid, a.allocateFrom(ValueLayout.JAVA_INT, ids).address(), 4L * n, 0);
            float[] wv = random(1, vocab * dim, -1, 1);
            abi.memcpy(d.stream(), w, a.allocateFrom(ValueLayout.JAVA_FLOAT, wv).address(), 4L * vocab * dim, 0);
            abi.memcpy(d.stream(), dout, a.allocateFrom(ValueLayout.JAVA_FLOAT, random(2, n * dim, -1, 1)).address(),
                    4L * n * dim, 0);
            abi.memcpy(d.stream(), out, a.allocate(4L * n * dim).fill((byte) 0xFF).address(), 4L * n * dim, 0);
            d.synchronize();
            var ef = assertThrows(NativeException.class,
                    () -> abi.embeddingForward(d.stream(), DType.F32.code, n, dim, vocab, pid, w, out));
            var eb = assertThrows(NativeException.class,
                    () -> abi.embeddingBackward(d.stream(), DType.F32.code, n, dim, vocab, pid, dout, w));
            assertEquals(NativeException.Status.INVALID_ARGUMENT, ef.status());
            assertEquals(NativeException.Status.INVALID_ARGUMENT, eb.status());
            for (byte b : KernelCheck.download(d, out, 4L * n * dim)) assertEquals((byte) 0xFF, b, "out was written");
            double[] after = KernelCheck.decode(KernelCheck.download(d, w, 4L * vocab * dim), DType.F32);
            double[] before = new double[wv.length];
            for (int i = 0; i < wv.length; i++) before[i] = wv[i];
            assertTrue(Arrays.equals(before, after), "dweight was written");
            return nativePart(ef) + "\n" + nativePart(eb);
        } finally {
            for (long p : new long[] {pid, w, out, dout}) abi.free(d.handle(), p);
        }
    }

    /** The scatter-add computes in f32 and bf16 on this backend: F16 / F64 gradients are refused, not miscomputed. */
    @Test
    void backwardInOtherDtypesIsUnsupported() {
        Device d = target();
        var abi = d.abi();
        long p = abi.malloc(d.handle(), 64), ids = abi.malloc(d.handle(), 4);
        try {
            abi.memset(d.stream(), ids, 0, 4);
            for (DType t : new DType[] {DType.F16, DType.F64}) {
                var e = assertThrows(NativeException.class,
                        () -> abi.embeddingBackward(d.stream(), t.code, 1, 2, 1, ids, p, p));
                assertEquals(NativeException.Status.UNSUPPORTED, e.status());
            }
        } finally {
            abi.free(d.handle(), p);
            abi.free(d.handle(), ids);
        }
    }
}
