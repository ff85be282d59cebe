package io.github.rlhf4j.bench;

import io.github.rlhf4j.runtime.Abi;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * Causal multi-head attention through the ABI ({@code rlhf4j_attention_forward}, {@code _backward}) on preallocated
 * device buffers, issue 9's attention benchmark: q, k, v, dout normal(0, 1) from {@code fill_random}, layout
 * [B, T, H, d] (rows H d apart), scale 1/sqrt(d), no key mask, no window. One op is one forward ({@code pass=fwd}),
 * or one forward plus one backward ({@code pass=fwdbwd}, what a training step runs); each invocation enqueues
 * {@link #LAUNCHES} ops and synchronizes the stream once, so on a GPU the figure is device time plus a sync amortised
 * over {@value #LAUNCHES} ops, not host launch latency. The forward also writes lse (as in training; 0.4 MB next to
 * ~50 MB of q, k, v, out at the first GPU shape).
 *
 * <p>The peer is bench/peers/torch_attention.py (torch's scaled_dot_product_attention, is_causal, on the same layout);
 * bench/gpu/attention.sh runs both on a GPU and prints the ratio and the fraction of the floor. Floors on an H100 (from
 * kernels/attention.cu): B=8 H=12 T=1024 d=64: fwd 16.9 us, fwd+bwd 57 us; B=4 H=16 T=2048 d=128: fwd 86.1 us,
 * fwd+bwd 301 us.
 *
 * <p>Setup runs each pass once on NaN-poisoned outputs and refuses to time a kernel that leaves an output element
 * unwritten or non-finite (a fast wrong kernel is not a result).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED"})
public class AttentionBenchmark {
    /** Ops enqueued per invocation, before the one stream synchronize. */
    static final int LAUNCHES = 20;

    /** "cpu" or "cuda:N". */
    @Param({"cpu"})
    public String device;

    /** BF16 (the GPU path) or F32 (the only float type of the CPU backend besides F64). */
    @Param({"F32"})
    public String dtype;

    /** "BxHxTxD": 8x12x1024x64 and 4x16x2048x128 are issue 9's GPU shapes; 1x4x256x64 is small enough for the CPU. */
    @Param({"1x4x256x64"})
    public String shape;

    /** "fwd" or "fwdbwd". */
    @Param({"fwd", "fwdbwd"})
    public String pass;

    /** CPU threads (ignored on a GPU). */
    @Param({"2"})
    public int threads;

    private Device dev;
    private Abi abi;
    private long stream;
    private int code, b, h, t, d;
    private long rowStride;
    private double scale;
    private boolean backward;
    private long q, k, v, out, lse, dout, dq, dk, dv;

    @Setup(Level.Trial)
    public void setup() {
        dev = Device.parse(device);
        abi = dev.abi();
        stream = dev.stream();
        if (dev.isCpu()) dev.setNumThreads(threads);
        DType type = DType.valueOf(dtype.toUpperCase(java.util.Locale.ROOT));
        code = type.code;
        String[] s = shape.split("x");
        if (s.length != 4) throw new IllegalArgumentException("shape '" + shape + "': expected BxHxTxD");
        b = Integer.parseInt(s[0]);
        h = Integer.parseInt(s[1]);
        t = Integer.parseInt(s[2]);
        d = Integer.parseInt(s[3]);
        backward = switch (pass) {
            case "fwd" -> false;
            case "fwdbwd" -> true;
            default -> throw new IllegalArgumentException("pass '" + pass + "': expected fwd or fwdbwd");
        };
        rowStride = (long) h * d;
        scale = 1.0 / Math.sqrt(d);
        long n = (long) b * t * h * d, bytes = n * type.size;
        q = alloc(bytes);
        k = alloc(bytes);
        v = alloc(bytes);
        out = alloc(bytes);
        lse = alloc((long) b * h * t * 4); // stat dtype: F32 for BF16 and F32
        abi.fillRandom(stream, code, n, q, 1, 0, 1, 1, 0);
        abi.fillRandom(stream, code, n, k, 1, 0, 1, 2, 0);
        abi.fillRandom(stream, code, n, v, 1, 0, 1, 3, 0);
        if (backward) {
            dout = alloc(bytes);
            dq = alloc(bytes);
            dk = alloc(bytes);
            dv = alloc(bytes);
            abi.fillRandom(stream, code, n, dout, 1, 0, 1, 4, 0);
        }
        checkOnce(type, n);
    }

    private long alloc(long bytes) {
        return abi.malloc(dev.handle(), bytes);
    }

    /** One pass on NaN-poisoned outputs; every output element must come back finite. */
    private void checkOnce(DType type, long n) {
        long[] outputs = backward ? new long[] {out, dq, dk, dv} : new long[] {out};
        String[] names = backward ? new String[] {"out", "dq", "dk", "dv"} : new String[] {"out"};
        for (long o : outputs) abi.fill(stream, code, n, o, Double.NaN);
        run();
        abi.streamSynchronize(stream);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate(n * type.size, 8);
            for (int i = 0; i < outputs.length; i++) {
                abi.memcpy(stream, host.address(), outputs[i], n * type.size, 1);
                abi.streamSynchronize(stream);
                for (long j = 0; j < n; j++) {
                    float x = type == DType.BF16
                            ? Float.intBitsToFloat((host.getAtIndex(ValueLayout.JAVA_SHORT, j) & 0xFFFF) << 16)
                            : host.getAtIndex(ValueLayout.JAVA_FLOAT, j);
                    if (!Float.isFinite(x))
                        throw new IllegalStateException("attention " + pass + " " + shape + " " + dtype + " on "
                                + device + ": " + names[i] + "[" + j + "] = " + x + " (unwritten or not finite)");
                }
            }
        }
    }

    private void run() {
        abi.attentionForward(stream, code, b, t, t, h, h, d, q, rowStride, k, rowStride, v, rowStride, 0L, scale, 1,
                0, out, lse);
        if (backward) {
            abi.attentionBackward(stream, code, b, t, t, h, h, d, q, rowStride, k, rowStride, v, rowStride, 0L, scale,
                    1, 0, out, dout, lse, dq, rowStride, dk, rowStride, dv, rowStride, 0);
        }
    }

    @Benchmark
    @OperationsPerInvocation(LAUNCHES)
    public void attention() {
        for (int i = 0; i < LAUNCHES; i++) run();
        abi.streamSynchronize(stream);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        for (long p : new long[] {q, k, v, out, lse, dout, dq, dk, dv}) if (p != 0) abi.free(dev.handle(), p);
    }
}
