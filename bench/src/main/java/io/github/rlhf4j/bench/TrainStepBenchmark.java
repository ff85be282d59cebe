package io.github.rlhf4j.bench;

import io.github.rlhf4j.model.CausalLM;
import io.github.rlhf4j.model.Gpt2Config;
import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.optim.AdamW;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.tensor.Functional;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
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
 * One GPT-2 training step on a device ({@code device}: the CPU backend by default, or {@code cuda:N}): forward,
 * cross-entropy, backward, AdamW (fp32 weights and compute, dropout off; the loss read back ends the step). The peer
 * is bench/peers/torch_train_step.py: transformers' GPT2LMHeadModel and torch.optim.AdamW with the same config,
 * batch, inputs and thread count; bench/cpu/train_step.sh runs both and prints the ratio, bench/gpu/train_step.sh the
 * same on a GPU against torch with fused AdamW and torch.compile.
 *
 * <p>Floor: about 6 x parameters x tokens FLOPs (plus attention); for {@code gpt2} (124M) at 1 x 256 tokens that is
 * ~0.2 TFLOP, ~0.8 s at the 232 GFLOP/s fp32 ceiling of a 2-core AVX-512 machine.
 */
@State(org.openjdk.jmh.annotations.Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 5)
@Measurement(iterations = 5, time = 5)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED"})
public class TrainStepBenchmark {
    /** "tiny": 4 layers x 256, vocab 512 (3.3M parameters); "gpt2": GPT-2 small (124M). */
    @Param({"tiny", "gpt2"})
    public String model;

    /** "cpu" or "cuda:N". */
    @Param({"cpu"})
    public String device;

    @Param({"4"})
    public int batch;

    @Param({"128"})
    public int seq;

    @Param({"2"})
    public int threads;

    private Device dev;
    private CausalLM gpt;
    private ParameterStore store;
    private AdamW opt;
    private int[] ids, targets;

    static Gpt2Config config(String model) {
        return switch (model) {
            case "tiny" -> Gpt2Config.tiny(512, 128, 256, 4, 4);
            case "gpt2" -> new Gpt2Config(50257, 1024, 768, 12, 12, 1e-5, 0.02, 0.0, 0.0);
            default -> throw new IllegalArgumentException(model);
        };
    }

    /** The same deterministic tokens as the peer script: (i * 7919) mod vocab, targets shifted by one. */
    static int[] tokens(int n, int vocab, int shift) {
        int[] v = new int[n];
        for (int i = 0; i < n; i++) v[i] = (int) (((long) (i + shift) * 7919) % vocab);
        return v;
    }

    @Setup(Level.Trial)
    public void setup() {
        dev = Device.parse(device);
        if (dev.isCpu()) dev.setNumThreads(threads);
        Gpt2Config cfg = config(model);
        gpt = CausalLM.of(cfg);
        store = ParameterStore.allocate(gpt, dev, 1);
        opt = AdamW.forStore(store, AdamW.Config.dsChat(1e-4, 0.0));
        ids = tokens(batch * seq, cfg.vocabSize(), 0);
        targets = tokens(batch * seq, cfg.vocabSize(), 1);
    }

    @Benchmark
    public double step() {
        try (Scope s = Scope.open(dev)) {
            store.zeroGrad();
            Tensor logits = gpt.forward(Tensor.ofInts(ids, batch, seq), null, null, null);
            Tensor loss = Functional.crossEntropy(logits, Tensor.ofInts(targets, batch, seq), -100);
            loss.backward();
            opt.step();
            return loss.item();
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        opt.close();
        store.close();
    }
}
