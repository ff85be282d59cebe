package io.github.rlhf4j.bench;

import io.github.rlhf4j.model.CausalLM;
import io.github.rlhf4j.model.KvCache;
import io.github.rlhf4j.model.ModelConfig;
import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.tensor.Autograd;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import java.util.Arrays;
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
 * One decode step with a KV cache, the unit of generation that {@link DecodeBenchmark} (whole generate calls,
 * prefill included) sums: a forward of one new token per row through the cache, the LM head on it, the logits read
 * back to the host and the greedy pick, exactly the body of {@code Generator}'s loop. The cache is prefilled with a
 * {@code context}-token prompt per row outside the timing (a per-invocation setup); each invocation then times
 * {@value #STEPS} steps, so one op is the mean step over context lengths {@code context} .. {@code context + }
 * {@value #STEPS}{@code  - 1}. Tokens/s = batch / time.
 *
 * <p>Floor: a step reads every weight once (4 bytes x parameters in fp32: 13 MB for {@code tiny}, 498 MB for
 * {@code gpt2}) plus the cache, so at batch 1 it is bound by memory bandwidth: 16.5 ms for GPT-2 small at the ~30 GB/s
 * the 2-core development VM reads (bench/RESULTS.md). The transformers peer runs only whole generations
 * (bench/cpu/decode.sh, against {@link DecodeBenchmark}); no JVM library runs these models.
 */
@State(org.openjdk.jmh.annotations.Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 3, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED"})
public class DecodeStepBenchmark {
    /** Decode steps per invocation (each invocation starts from a freshly prefilled cache). */
    static final int STEPS = 16;

    /** A preset of {@link BenchSupport#config}: "tiny" (3.3M parameters), "gpt2" (124M), "tiny-opt", "opt-1.3b". */
    @Param({"tiny", "gpt2"})
    public String model;

    /** Sequences decoded together. */
    @Param({"1"})
    public int batch;

    /** Tokens already in the cache when the timed steps begin. */
    @Param({"64"})
    public int context;

    /** "cpu" or "cuda:N". */
    @Param({"cpu"})
    public String device;

    @Param({"2"})
    public int threads;

    private Device dev;
    private ModelConfig cfg;
    private CausalLM lm;
    private ParameterStore store;
    private KvCache cache;
    private int[] next;
    private int position;

    @Setup(Level.Trial)
    public void setup() {
        dev = Device.parse(device);
        if (dev.isCpu()) dev.setNumThreads(threads);
        cfg = BenchSupport.config(model);
        if (context + STEPS > cfg.maxPositions())
            throw new IllegalArgumentException("context " + context + " + " + STEPS + " steps exceed " + model
                    + "'s " + cfg.maxPositions() + " positions");
        lm = CausalLM.of(cfg);
        store = ParameterStore.allocate(lm, dev, DType.F32, 1, false);
        lm.train(false);
    }

    /** A fresh cache holding the prompt, and the first token picked after it. */
    @Setup(Level.Invocation)
    public void prefill() {
        cache = KvCache.of(cfg, dev, DType.F32, batch, context + STEPS);
        int[] ids = new int[batch * context], mask = new int[ids.length], pos = new int[ids.length];
        for (int r = 0; r < batch; r++) {
            System.arraycopy(BenchSupport.tokens(context, cfg.vocabSize(), r * context), 0, ids, r * context, context);
            for (int j = 0; j < context; j++) pos[r * context + j] = j;
        }
        Arrays.fill(mask, 1);
        next = forward(ids, mask, pos, context);
        position = context;
    }

    /** One forward of {@code t} new positions per row through the cache; the greedy token after the last. */
    private int[] forward(int[] ids, int[] mask, int[] pos, int t) {
        float[] logits;
        try (Autograd.NoGrad ignored = Autograd.noGrad(); Scope s = Scope.open(dev)) {
            Tensor h = lm.base().forward(Tensor.ofInts(ids, batch, t), Tensor.ofInts(mask, batch, t),
                    Tensor.ofInts(pos, batch, t), cache);
            logits = lm.logits(h.slice(1, t - 1, t)).to(DType.F32).toFloatArray();
        }
        int v = logits.length / batch;
        int[] out = new int[batch];
        for (int r = 0; r < batch; r++) {
            int best = 0;
            for (int j = 1; j < v; j++) if (logits[r * v + j] > logits[r * v + best]) best = j;
            if (!Float.isFinite(logits[r * v + best]))
                throw new IllegalStateException("decode step: row " + r + "'s logits are not finite");
            out[r] = best;
        }
        return out;
    }

    @Benchmark
    @OperationsPerInvocation(STEPS)
    public int step() {
        int[] ones = new int[batch], pos = new int[batch];
        Arrays.fill(ones, 1);
        for (int i = 0; i < STEPS; i++) {
            Arrays.fill(pos, position++);
            next = forward(next, ones, pos, 1);
        }
        return next[0];
    }

    @TearDown(Level.Invocation)
    public void closeCache() {
        cache.close();
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        store.close();
    }
}
