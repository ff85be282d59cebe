package io.github.rlhf4j.bench;

import io.github.rlhf4j.data.PairBatch;
import io.github.rlhf4j.model.ModelConfig;
import io.github.rlhf4j.model.RewardModel;
import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.optim.LrSchedule;
import io.github.rlhf4j.rlhf.Optimized;
import io.github.rlhf4j.rlhf.RewardTrainer;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import java.util.Arrays;
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
 * One step-2 (reward model) training step, {@link RewardTrainer#train}: per-token scores of the 2 x pairs rows
 * (chosen rows, then rejected), DS-Chat's pairwise loss over the span where each pair differs, the batch's accuracy
 * and end scores read back, backward, gradient clipping at 1.0 and AdamW. Random weights, fp32, dropout off; each pair
 * shares a prompt of half the columns, then differs, each row right-padded after its own length.
 *
 * <p>No JVM library trains these models, so there is no peer. Floor: about 6 x parameters x tokens FLOPs (2 x pairs x
 * columns tokens) at the ~232 GFLOP/s fp32 ceiling of the 2-core development VM: tiny at 4 pairs x 128, 20 GFLOP =
 * 87 ms.
 */
@State(org.openjdk.jmh.annotations.Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 3, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED"})
public class RewardStepBenchmark {
    /** A preset of {@link BenchSupport#config}: "tiny" (GPT-2), "tiny-opt", "gpt2", "opt-1.3b". */
    @Param({"tiny"})
    public String model;

    /** "pairs x columns": the batch holds 2 x pairs rows. */
    @Param({"2x64", "4x128"})
    public String shape;

    /** "cpu" or "cuda:N". */
    @Param({"cpu"})
    public String device;

    @Param({"2"})
    public int threads;

    private ParameterStore store;
    private Optimized optimizer;
    private RewardTrainer trainer;
    private PairBatch batch;

    @Setup(Level.Trial)
    public void setup() {
        Device dev = Device.parse(device);
        if (dev.isCpu()) dev.setNumThreads(threads);
        ModelConfig cfg = BenchSupport.config(model);
        int[] s = BenchSupport.shape(shape, 2, "shape (pairs x columns)");
        int pairs = s[0], cols = s[1], prompt = cols / 2;
        if (prompt < 1 || cols - prompt < 8)
            throw new IllegalArgumentException("shape '" + shape + "': needs at least 10 columns");
        RewardModel rm = RewardModel.of(cfg);
        store = ParameterStore.allocate(rm, dev, DType.F32, 1, true);
        optimizer = new Optimized(store, new Optimized.Settings(1e-5, 0.0, LrSchedule.constant(0), 1.0));
        int pad = cfg.vocabSize() - 1; // never a token of the rows below: the pairwise loss finds each end by it
        trainer = new RewardTrainer(rm, optimizer, pad, 0);
        int[] ids = new int[2 * pairs * cols], mask = new int[ids.length];
        Arrays.fill(ids, pad);
        for (int i = 0; i < pairs; i++) {
            int[] p = BenchSupport.tokens(prompt, pad, i * cols);
            int chosenLength = cols - i % 5, rejectedLength = cols - 2 - i % 7;
            int[] chosen = BenchSupport.tokens(chosenLength - prompt, pad, 100_000 + i * cols);
            int[] rejected = BenchSupport.tokens(rejectedLength - prompt, pad, 200_000 + i * cols);
            row(ids, mask, i * cols, p, chosen);
            row(ids, mask, (pairs + i) * cols, p, rejected);
        }
        batch = new PairBatch(pairs, cols, ids, mask);
        BenchSupport.requireFinite("reward loss", trainer.train(batch).loss());
    }

    private static void row(int[] ids, int[] mask, int at, int[] prompt, int[] answer) {
        System.arraycopy(prompt, 0, ids, at, prompt.length);
        System.arraycopy(answer, 0, ids, at + prompt.length, answer.length);
        Arrays.fill(mask, at, at + prompt.length + answer.length, 1);
    }

    @Benchmark
    public double step() {
        return trainer.train(batch).loss();
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        optimizer.close();
        store.close();
    }
}
