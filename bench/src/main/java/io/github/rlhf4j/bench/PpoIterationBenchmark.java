package io.github.rlhf4j.bench;

import io.github.rlhf4j.data.PromptBatch;
import io.github.rlhf4j.generate.GenerationConfig;
import io.github.rlhf4j.model.CausalLM;
import io.github.rlhf4j.model.ModelConfig;
import io.github.rlhf4j.model.RewardModel;
import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.optim.LrSchedule;
import io.github.rlhf4j.rlhf.Experience;
import io.github.rlhf4j.rlhf.Optimized;
import io.github.rlhf4j.rlhf.PpoConfig;
import io.github.rlhf4j.rlhf.PpoTrainer;
import io.github.rlhf4j.rlhf.RlhfEngine;
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
 * One step-3 (PPO) iteration as {@code Stages.ppo} runs it with one PPO epoch and no pretraining mixture:
 * {@link PpoTrainer#generateExperience} (the actor samples an answer to each prompt through the KV cache, then the
 * actor, the frozen reference, the frozen reward model and the critic score the sequences) and
 * {@link PpoTrainer#trainRlhf} (KL-penalised rewards, GAE, one actor step on the clipped policy loss and one critic
 * step on the clipped value loss, each with clipping at 1.0 and AdamW). The four models are wired as
 * {@code Stages.ppo} wires them: actor and reference of one config with the same (random) weights, critic and reward
 * model of one config with the same weights, fp32, dropout off, DS-Chat's PPO constants. Answers are sampled
 * (temperature 1, seeded per iteration) to exactly {@code answer} tokens (EOS ignored, as DS-Chat's fixed-length
 * generation), so every iteration does the same work; prompts are left-padded by 0 to 2 tokens.
 *
 * <p>No JVM library runs PPO on these models, so there is no peer. {@link PpoTrainer#phaseTimes} splits the time into
 * generation, experience, actor and critic training (printed at the end of the trial).
 */
@State(org.openjdk.jmh.annotations.Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 3, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED"})
public class PpoIterationBenchmark {
    /** A preset of {@link BenchSupport#config} for all four models: "tiny" (GPT-2), "tiny-opt", "gpt2", "opt-1.3b". */
    @Param({"tiny"})
    public String model;

    /** "rows x prompt x answer": prompts per batch, prompt columns, answer tokens generated. */
    @Param({"4x32x32", "8x64x64"})
    public String shape;

    /** "cpu" or "cuda:N". */
    @Param({"cpu"})
    public String device;

    @Param({"2"})
    public int threads;

    private RlhfEngine engine;
    private PpoTrainer trainer;
    private PromptBatch prompts;
    private long iterations;

    @Setup(Level.Trial)
    public void setup() {
        Device dev = Device.parse(device);
        if (dev.isCpu()) dev.setNumThreads(threads);
        ModelConfig cfg = BenchSupport.config(model);
        int[] s = BenchSupport.shape(shape, 3, "shape (rows x prompt x answer)");
        int rows = s[0], promptLength = s[1], answer = s[2];
        if (promptLength + answer > cfg.maxPositions())
            throw new IllegalArgumentException("shape '" + shape + "': prompt + answer exceed " + model + "'s "
                    + cfg.maxPositions() + " positions");
        CausalLM actor = CausalLM.of(cfg), reference = CausalLM.of(cfg);
        RewardModel critic = RewardModel.of(cfg), reward = RewardModel.of(cfg);
        // same seed, same weights: the reference is the actor's starting point, the reward model the critic's
        ParameterStore actorStore = ParameterStore.allocate(actor, dev, DType.F32, 1, true);
        ParameterStore referenceStore = ParameterStore.allocate(reference, dev, DType.F32, 1, false);
        ParameterStore criticStore = ParameterStore.allocate(critic, dev, DType.F32, 2, true);
        ParameterStore rewardStore = ParameterStore.allocate(reward, dev, DType.F32, 2, false);
        Optimized.Settings settings = new Optimized.Settings(1e-6, 0.0, LrSchedule.constant(0), 1.0);
        engine = new RlhfEngine(actor, new Optimized(actorStore, settings), reference, referenceStore, critic,
                new Optimized(criticStore, settings), reward, rewardStore, false);
        int eos = cfg.vocabSize() - 1; // pad = eos, as DS-Chat sets GPT-2's tokenizer
        GenerationConfig gen = new GenerationConfig(answer, true, 1.0, 0, 1.0, 1.0, new int[] {eos}, eos, true, 1234);
        trainer = new PpoTrainer(engine, PpoConfig.dsChat(gen));
        int[] ids = BenchSupport.tokens(rows * promptLength, eos, 0), mask = new int[ids.length];
        Arrays.fill(mask, 1);
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < r % 3; j++) {
                ids[r * promptLength + j] = eos;
                mask[r * promptLength + j] = 0;
            }
        prompts = new PromptBatch(rows, promptLength, ids, mask);
        iteration();
        trainer.resetPhaseTimes();
        iterations = 0;
    }

    private double iteration() {
        iterations++;
        try (Experience exp = trainer.generateExperience(prompts)) {
            PpoTrainer.Losses l = trainer.trainRlhf(exp);
            BenchSupport.requireFinite("PPO critic loss", l.criticLoss());
            return BenchSupport.requireFinite("PPO actor loss", l.actorLoss());
        }
    }

    @Benchmark
    public double iterate() {
        return iteration();
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        PpoTrainer.PhaseTimes t = trainer.phaseTimes();
        if (iterations > 0)
            System.out.printf(java.util.Locale.ROOT, "%nPPO phases, ms per iteration over %d (warm-up included): "
                    + "generation %.1f, experience %.1f, actor %.1f, critic %.1f%n", iterations,
                    1e3 * t.generation() / iterations, 1e3 * t.experience() / iterations,
                    1e3 * t.actorTraining() / iterations, 1e3 * t.criticTraining() / iterations);
        engine.close();
    }
}
