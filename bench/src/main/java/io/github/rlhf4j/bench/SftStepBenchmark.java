package io.github.rlhf4j.bench;

import io.github.rlhf4j.data.LmBatch;
import io.github.rlhf4j.model.CausalLM;
import io.github.rlhf4j.model.ModelConfig;
import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.optim.LrSchedule;
import io.github.rlhf4j.rlhf.Optimized;
import io.github.rlhf4j.rlhf.SftTrainer;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * One step-1 (SFT) training step, {@link SftTrainer#step}: the causal-LM loss of a batch (forward, shifted
 * cross-entropy over the unmasked labels), backward, gradient clipping at 1.0 and AdamW (DS-Chat's two weight-decay
 * groups), gradients zeroed; the loss read back ends the step. Random weights, fp32, dropout off; each row is
 * right-padded after a different length (8 to 0 pads), as step 1's batches are.
 *
 * <p>{@link TrainStepBenchmark} times the bare model step (no mask, no clipping) against transformers; this is the
 * trainer's step, with nothing to compare it with on the JVM. Floor: about 6 x parameters x tokens FLOPs at the
 * ~232 GFLOP/s fp32 ceiling of the 2-core development VM: tiny at 8 x 128 tokens, 20 GFLOP = 87 ms.
 */
@State(org.openjdk.jmh.annotations.Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 3, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED"})
public class SftStepBenchmark {
    /** A preset of {@link BenchSupport#config}: "tiny" (GPT-2), "tiny-opt", "gpt2", "opt-1.3b". */
    @Param({"tiny"})
    public String model;

    /** "rows x columns" of the batch. */
    @Param({"4x64", "8x128"})
    public String shape;

    /** "cpu" or "cuda:N". */
    @Param({"cpu"})
    public String device;

    @Param({"2"})
    public int threads;

    private ParameterStore store;
    private Optimized optimizer;
    private SftTrainer trainer;
    private LmBatch batch;

    @Setup(Level.Trial)
    public void setup() {
        Device dev = Device.parse(device);
        if (dev.isCpu()) dev.setNumThreads(threads);
        ModelConfig cfg = BenchSupport.config(model);
        int[] s = BenchSupport.shape(shape, 2, "shape (rows x columns)");
        int rows = s[0], cols = s[1];
        CausalLM lm = CausalLM.of(cfg);
        store = ParameterStore.allocate(lm, dev, DType.F32, 1, true);
        optimizer = new Optimized(store, new Optimized.Settings(1e-5, 0.0, LrSchedule.constant(0), 1.0));
        trainer = new SftTrainer(lm, optimizer);
        int pad = cfg.vocabSize() - 1;
        int[] ids = BenchSupport.tokens(rows * cols, pad, 0), mask = new int[ids.length], labels = new int[ids.length];
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < cols; j++) {
                int i = r * cols + j;
                boolean real = j < cols - r % 9;
                if (!real) ids[i] = pad;
                mask[i] = real ? 1 : 0;
                labels[i] = real ? ids[i] : LmBatch.IGNORE;
            }
        batch = new LmBatch(rows, cols, ids, mask, labels);
        BenchSupport.requireFinite("SFT loss", trainer.step(batch));
    }

    @Benchmark
    public double step() {
        return trainer.step(batch);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        optimizer.close();
        store.close();
    }
}
