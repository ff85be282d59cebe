package io.github.rlhf4j.bench;

import io.github.rlhf4j.rlhf.PpoMath;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
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
 * The fused classifier: log softmax of each row of logits [B, T, V] gathered at its label (the next token), one
 * pass over the logits forward and one backward, never materialising the softmax. Forward ({@code pass=fwd}) or
 * forward then backward ({@code pass=fwdbwd}: dlogits from the gradient of the logprobs), two ways ({@code api}):
 * <ul>
 *   <li>{@code abi}: the kernels alone, {@code rlhf4j_logprobs_forward} and {@code _backward}, on preallocated
 *       buffers, all B x T rows with a label, dlogits overwritten;
 *   <li>{@code functional}: {@link PpoMath#gatherLogProbs}, DS-Chat's {@code gather_log_probs(logits[:, :-1],
 *       seq[:, 1:])} that step 3 scores and trains the actor with (over {@link Functional#logprobs}, which step 1's
 *       cross-entropy also uses), and the tape's backward: outputs allocated per op, the logits a fresh leaf each op
 *       so that dlogits is a new buffer, written, as the LM head's output gradient is.
 * </ul>
 * {@value #LAUNCHES} ops per device synchronize. No JVM library computes this (the suite's only JVM peer is
 * OpenBLAS's GEMM).
 *
 * <p>Floor: forward reads the logits once (4 B V bytes per row in fp32), backward reads them again and writes dlogits
 * (8 B V). At 4 x 128 x 50257 fp32 that is 103 + 206 MB: ~10 ms at the ~30 GB/s the 2-core development VM reads; at
 * 8192 x 50257 in bf16 on an H100, 274 / 549 us (bench/RESULTS.md).
 */
@State(org.openjdk.jmh.annotations.Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 3, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED"})
public class ClassifierBenchmark {
    /** Ops per invocation, before the one device synchronize. */
    static final int LAUNCHES = 4;

    /** "abi" (the kernels on preallocated buffers) or "functional" (PpoMath.gatherLogProbs and the tape). */
    @Param({"abi", "functional"})
    public String api;

    /** "fwd" or "fwdbwd". */
    @Param({"fwd", "fwdbwd"})
    public String pass;

    /** "B x T x V": 4 x 128 tokens over the tiny model's 512-token vocabulary and over GPT-2's 50257. */
    @Param({"4x128x512", "4x128x50257"})
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
    private int b, t, vocab;
    // api=abi
    private BenchSupport.Buffers buffers;
    private long logits, targets, logprobs, lse, dlogprobs, dlogits;
    // api=functional
    private Scope held;
    private Tensor tlogits, tids, tdout;

    @Setup(Level.Trial)
    public void setup() {
        dev = Device.parse(device);
        if (dev.isCpu()) dev.setNumThreads(threads);
        type = DType.valueOf(dtype.toUpperCase(Locale.ROOT));
        backward = BenchSupport.backward(pass);
        int[] s = BenchSupport.shape(shape, 3, "shape (B x T x V)");
        b = s[0];
        t = s[1];
        vocab = s[2];
        long rows = (long) b * t, n = rows * vocab;
        int[] ids = BenchSupport.tokens(b * t, vocab, 0);
        switch (api) {
            case "abi" -> {
                buffers = new BenchSupport.Buffers(dev);
                logits = buffers.normal(type, n, 0, 2, 1);
                targets = buffers.ints(ids);
                logprobs = buffers.alloc(rows * type.size);
                lse = buffers.alloc(4L * rows); // F32 for F32 and BF16
                buffers.poison(type, rows, logprobs);
                if (backward) {
                    dlogprobs = buffers.normal(type, rows, 0, 1, 2);
                    dlogits = buffers.alloc(n * type.size);
                    buffers.poison(type, n, dlogits);
                }
                runAbi();
                buffers.requireFinite("logprobs", type, rows, logprobs);
                if (backward) buffers.requireFinite("dlogits", type, n, dlogits);
            }
            case "functional" -> {
                held = Scope.detached(dev);
                tlogits = held.empty(type, b, t, vocab).fillRandom(true, 0, 2, 1, 0);
                tids = held.ofInts(ids, b, t);
                tdout = held.empty(type, b, t - 1).fillRandom(true, 0, 1, 2, 0);
                try (Scope op = Scope.open(dev)) {
                    Tensor leaf = tlogits.detach().requiresGrad(backward);
                    Tensor out = PpoMath.gatherLogProbs(leaf, tids);
                    BenchSupport.requireFinite("gatherLogProbs", out);
                    if (backward) {
                        out.backward(tdout, false);
                        BenchSupport.requireFinite("gatherLogProbs dlogits", op.adopt(leaf.grad()));
                    }
                }
            }
            default -> throw new IllegalArgumentException("api '" + api + "': expected abi or functional");
        }
    }

    private void runAbi() {
        var abi = buffers.abi;
        long st = buffers.stream, rows = (long) b * t;
        abi.logprobsForward(st, type.code, rows, vocab, logits, vocab, targets, Integer.MIN_VALUE, logprobs, lse);
        if (backward)
            abi.logprobsBackward(st, type.code, rows, vocab, logits, vocab, targets, Integer.MIN_VALUE, lse, dlogprobs,
                    dlogits, vocab, 0);
    }

    private void runFunctional() {
        try (Scope op = Scope.open(dev)) {
            Tensor leaf = tlogits.detach().requiresGrad(backward);
            Tensor out = PpoMath.gatherLogProbs(leaf, tids);
            if (backward) {
                out.backward(tdout, false);
                op.adopt(leaf.grad());
            }
        }
    }

    @Benchmark
    @OperationsPerInvocation(LAUNCHES)
    public void classifier() {
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
