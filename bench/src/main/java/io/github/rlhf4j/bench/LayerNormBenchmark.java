package io.github.rlhf4j.bench;

import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.tensor.Autograd;
import io.github.rlhf4j.tensor.Functional;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import java.util.Locale;
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
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * LayerNorm over the last dimension of x [rows, hidden] with weight and bias (eps 1e-5), forward ({@code pass=fwd})
 * or forward then backward ({@code pass=fwdbwd}: dx, dweight, dbias from dy), two ways ({@code api}):
 * <ul>
 *   <li>{@code abi}: the kernels alone, {@code rlhf4j_layernorm_forward} and {@code _backward}, on preallocated
 *       buffers (dx overwritten, dweight and dbias accumulated, as a model's flat gradients are);
 *   <li>{@code functional}: {@link Functional#layerNorm} and the tape's backward, what the model layer runs: output
 *       and statistics allocated per op from the device's pool (the forward alone runs as inference does, under
 *       {@code noGrad}: nothing recorded, no statistics kept), x a fresh leaf each op (so dx is a new buffer,
 *       written, like an activation's gradient), weight and bias leaves whose gradients accumulate into preallocated
 *       buffers. The tape also copies the output gradient dy once per backward (its seed), an extra pass over
 *       rows x hidden that the abi figure does not have.
 * </ul>
 * {@value #LAUNCHES} ops per device synchronize, so on a GPU the figure is device time, not launch latency. There is
 * no LayerNorm of the JVM to compare with (the only JVM peer in this suite is OpenBLAS's GEMM).
 *
 * <p>Floor: bytes moved over memory bandwidth. Forward reads x and writes y (8 x rows x hidden bytes in fp32); backward
 * reads x and dy and writes dx (12 x rows x hidden). At 8192 x 768 fp32 that is 50 + 75 MB: ~4.2 ms for fwd+bwd at
 * the ~30 GB/s the 2-core development VM reads; in bf16 on an H100, 8.4 / 13.6 us (bench/RESULTS.md).
 */
@State(org.openjdk.jmh.annotations.Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 3, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED"})
public class LayerNormBenchmark {
    /** Ops per invocation, before the one device synchronize. */
    static final int LAUNCHES = 10;
    static final double EPS = 1e-5;

    /** "abi" (the kernels on preallocated buffers) or "functional" (Functional.layerNorm and the tape). */
    @Param({"abi", "functional"})
    public String api;

    /** "fwd" or "fwdbwd". */
    @Param({"fwd", "fwdbwd"})
    public String pass;

    /** "rows x hidden": 512 x 768 is GPT-2 small at 4 x 128 tokens; 8192 x 768 the GPU table's shape at 8 x 1024. */
    @Param({"512x768", "8192x768"})
    public String shape;

    /** "cpu" or "cuda:N". */
    @Param({"cpu"})
    public String device;

    /** F32, or BF16 on a GPU. */
    @Param({"F32"})
    public String dtype;

    /** CPU threads (ignored on a GPU). */
    @Param({"2"})
    public int threads;

    private Device dev;
    private DType type;
    private boolean backward;
    private int rows, hidden;
    // api=abi
    private BenchSupport.Buffers buffers;
    private long x, w, b, y, mean, rstd, dy, dx, dw, db;
    // api=functional
    private Scope held;
    private Tensor tx, tw, tb, tdy;

    @Setup(Level.Trial)
    public void setup() {
        dev = Device.parse(device);
        if (dev.isCpu()) dev.setNumThreads(threads);
        type = DType.valueOf(dtype.toUpperCase(Locale.ROOT));
        backward = BenchSupport.backward(pass);
        int[] s = BenchSupport.shape(shape, 2, "shape (rows x hidden)");
        rows = s[0];
        hidden = s[1];
        long n = (long) rows * hidden;
        switch (api) {
            case "abi" -> {
                buffers = new BenchSupport.Buffers(dev);
                x = buffers.normal(type, n, 0, 1, 1);
                w = buffers.normal(type, hidden, 1, 0.1, 2);
                b = buffers.normal(type, hidden, 0, 0.1, 3);
                y = buffers.alloc(n * type.size);
                mean = buffers.alloc(4L * rows); // statistics are F32 for F32 and BF16
                rstd = buffers.alloc(4L * rows);
                if (backward) {
                    dy = buffers.normal(type, n, 0, 1, 4);
                    dx = buffers.alloc(n * type.size);
                    dw = buffers.alloc((long) hidden * type.size);
                    db = buffers.alloc((long) hidden * type.size);
                    buffers.abi.fill(buffers.stream, type.code, hidden, dw, 0);
                    buffers.abi.fill(buffers.stream, type.code, hidden, db, 0);
                    buffers.poison(type, n, dx);
                }
                buffers.poison(type, n, y);
                runAbi();
                buffers.requireFinite("layernorm y", type, n, y);
                if (backward) buffers.requireFinite("layernorm dx", type, n, dx);
            }
            case "functional" -> {
                held = Scope.detached(dev);
                tx = held.empty(type, rows, hidden).fillRandom(true, 0, 1, 1, 0);
                tw = held.empty(type, hidden).fillRandom(true, 1, 0.1, 2, 0).requiresGrad(true);
                tb = held.empty(type, hidden).fillRandom(true, 0, 0.1, 3, 0).requiresGrad(true);
                tdy = held.empty(type, rows, hidden).fillRandom(true, 0, 1, 4, 0);
                tw.setGrad(held.zeros(type, hidden));
                tb.setGrad(held.zeros(type, hidden));
                try (Scope op = Scope.open(dev)) {
                    Tensor leaf = tx.detach().requiresGrad(true);
                    Tensor out = Functional.layerNorm(leaf, tw, tb, EPS);
                    BenchSupport.requireFinite("layerNorm y", out);
                    out.backward(tdy, false);
                    BenchSupport.requireFinite("layerNorm dx", op.adopt(leaf.grad()));
                }
                tw.grad().fill(0);
                tb.grad().fill(0);
            }
            default -> throw new IllegalArgumentException("api '" + api + "': expected abi or functional");
        }
    }

    private void runAbi() {
        var abi = buffers.abi;
        long st = buffers.stream;
        abi.layernormForward(st, type.code, rows, hidden, x, w, b, EPS, y, mean, rstd);
        if (backward) abi.layernormBackward(st, type.code, rows, hidden, x, w, mean, rstd, dy, dx, dw, db, 0);
    }

    private void runFunctional() {
        if (!backward) { // inference: nothing recorded, no statistics kept
            try (Scope op = Scope.open(dev); Autograd.NoGrad ignored = Autograd.noGrad()) {
                Functional.layerNorm(tx, tw, tb, EPS);
            }
            return;
        }
        try (Scope op = Scope.open(dev)) {
            // a fresh leaf on x's memory: its gradient is a new buffer (adopted below, freed with the op's scope)
            Tensor leaf = tx.detach().requiresGrad(true);
            Functional.layerNorm(leaf, tw, tb, EPS).backward(tdy, false);
            op.adopt(leaf.grad());
        }
    }

    @Benchmark
    @OperationsPerInvocation(LAUNCHES)
    public void layerNorm() {
        if (buffers != null) {
            for (int i = 0; i < LAUNCHES; i++) runAbi();
        } else {
            for (int i = 0; i < LAUNCHES; i++) runFunctional();
        }
        dev.synchronize();
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        if (buffers != null) buffers.close();
        if (held != null) held.close();
    }
}
