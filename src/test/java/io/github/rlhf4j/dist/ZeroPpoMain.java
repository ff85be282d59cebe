package io.github.rlhf4j.dist;

import io.github.rlhf4j.data.PromptBatch;
import io.github.rlhf4j.generate.GenerationConfig;
import io.github.rlhf4j.model.CausalLM;
import io.github.rlhf4j.model.Gpt2Config;
import io.github.rlhf4j.model.RewardModel;
import io.github.rlhf4j.nn.Module;
import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.optim.LrSchedule;
import io.github.rlhf4j.rlhf.Experience;
import io.github.rlhf4j.rlhf.Optimized;
import io.github.rlhf4j.rlhf.PpoConfig;
import io.github.rlhf4j.rlhf.PpoTrainer;
import io.github.rlhf4j.rlhf.RlhfEngine;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;

/**
 * One rank of {@link ZeroTrainingTest}'s PPO run: step 3's four tiny GPT-2 models, the actor and critic trained at
 * ZeRO {@code stage} over the communicator of the environment (one process without a launcher), with EMA. Each PPO
 * iteration scores a fixed global batch of unpadded sequences (so every rank's token means weigh alike), this rank
 * taking its share of the rows, and takes one actor and one critic step; then the actor generates greedily for this
 * rank's prompts, gathered whole once for the phase at stage 3. Writes the actor, critic and EMA weights (rank 0,
 * parameters by name order, gaps left out) and each rank's generated rows.
 *
 * <p>Usage: {@code ZeroPpoMain STAGE ITERATIONS OUT_DIR}
 */
public final class ZeroPpoMain {
    static final int VOCAB = 37, PAD = VOCAB - 1, PROMPT = 4, ANSWER = 6, ROWS = 4, EMBD = 32, LAYERS = 2, HEADS = 4;

    public static void main(String[] args) throws Exception {
        int stage = Integer.parseInt(args[0]), iterations = Integer.parseInt(args[1]);
        Path out = Path.of(args[2]);
        Device.cpu().setNumThreads(1);
        try (Communicator comm = Communicator.fromEnvironment()) {
            int world = comm.worldSize(), rank = comm.rank(), rows = ROWS / world, columns = PROMPT + ANSWER;
            Gpt2Config config = Gpt2Config.tiny(VOCAB, columns + 2, EMBD, LAYERS, HEADS);
            ParameterStore.Layout layout = Zero.layout(world, stage);
            CausalLM actor = CausalLM.of(config), reference = CausalLM.of(config);
            RewardModel critic = RewardModel.of(config), reward = RewardModel.of(config);
            ParameterStore actorStore = ParameterStore.allocate(actor, Device.cpu(), DType.F32, 0, true, layout);
            ParameterStore criticStore = ParameterStore.allocate(critic, Device.cpu(), DType.F32, 0, true, layout);
            // the frozen models laid out as the trained ones, so that at stage 3 they are partitioned too (DS-Chat's
            // ZeRO-3 inference); their weights from the default layout, whose offsets seed the init
            ParameterStore referenceStore = ParameterStore.allocate(reference, Device.cpu(), DType.F32, 0, false, layout);
            ParameterStore rewardStore = ParameterStore.allocate(reward, Device.cpu(), DType.F32, 0, false, layout);
            CausalLM referenceInit = CausalLM.of(config);
            RewardModel rewardInit = RewardModel.of(config);
            try (ParameterStore a = ParameterStore.allocate(referenceInit, Device.cpu(), DType.F32, 11, false);
                 ParameterStore b = ParameterStore.allocate(rewardInit, Device.cpu(), DType.F32, 12, false)) {
                copy(referenceInit, reference);
                copy(rewardInit, reward);
            }
            copy(reference, actor); // the actor starts as the reference, the critic as the reward model (step 3)
            copy(reward, critic);
            Optimized.Settings settings = new Optimized.Settings(1e-3, 0.0, LrSchedule.constant(0), 1.0);
            PpoConfig ppo = PpoConfig.dsChat(GenerationConfig.greedy(ANSWER, PAD, PAD)).withEma(0.9);
            try (RlhfEngine engine = new RlhfEngine(actor, new Optimized(actorStore, settings, comm, stage), reference,
                    referenceStore, critic, new Optimized(criticStore, settings, comm, stage), reward, rewardStore, true)) {
                PpoTrainer trainer = new PpoTrainer(engine, ppo);
                for (int it = 0; it < iterations; it++) {
                    Random rng = new Random(500 + it); // the same global batch on every rank
                    int[] seq = new int[ROWS * columns];
                    for (int i = 0; i < seq.length; i++) seq[i] = rng.nextInt(VOCAB - 1); // never the pad id
                    int[] mine = Arrays.copyOfRange(seq, rank * rows * columns, (rank + 1) * rows * columns);
                    try (Experience exp = trainer.score(mine, rows, columns, PROMPT, 0)) {
                        trainer.trainRlhf(exp);
                    }
                    trainer.updateEma();
                }
                Random rng = new Random(7);
                int[] prompts = new int[ROWS * PROMPT], mask = new int[ROWS * PROMPT];
                for (int i = 0; i < prompts.length; i++) {
                    prompts[i] = rng.nextInt(VOCAB - 1);
                    mask[i] = 1;
                }
                int from = rank * rows * PROMPT, to = (rank + 1) * rows * PROMPT;
                StringBuilder generated = new StringBuilder();
                try (Experience exp = trainer.generateExperience(new PromptBatch(rows, PROMPT,
                        Arrays.copyOfRange(prompts, from, to), Arrays.copyOfRange(mask, from, to)))) {
                    int[] g = exp.seq().toIntArray();
                    int c = exp.seq().size(1);
                    for (int r = 0; r < exp.seq().size(0); r++)
                        generated.append(Arrays.toString(Arrays.copyOfRange(g, r * c, (r + 1) * c))).append('\n');
                }
                Files.writeString(out.resolve("generated-rank" + rank + ".txt"), generated);
                byte[] a = weights(actorStore, engine.actorOptimizer()), c = weights(criticStore, engine.criticOptimizer());
                // the EMA: this rank's partition at stage 3, gathered into the store's layout
                byte[] ema;
                try (Scope s = Scope.open()) {
                    Tensor whole = s.zeros(DType.F32, (int) actorStore.flatSize());
                    engine.actorOptimizer().gatherWhole(engine.actorEma().shadow(), whole);
                    ema = byEntry(actorStore, e -> whole.slice(0, (int) e.offset(), (int) (e.offset() + e.numel())));
                }
                if (rank == 0) {
                    Files.write(out.resolve("actor.f32"), a);
                    Files.write(out.resolve("critic.f32"), c);
                    Files.write(out.resolve("ema.f32"), ema);
                    Files.writeString(out.resolve("mode.txt"), engine.actorOptimizer().generationMode() + "\n"
                            + engine.frozenMode() + "\n");
                }
            }
        }
    }

    static void copy(Module from, Module to) {
        for (var e : from.namedParameters().entrySet())
            to.namedParameters().get(e.getKey()).value().copyFromTensor(e.getValue().value(), false);
    }

    static byte[] weights(ParameterStore store, Optimized opt) {
        try (var whole = opt.gathered()) { // a collective at stage 3: every rank
            return byEntry(store, e -> e.parameter().value());
        }
    }

    static byte[] byEntry(ParameterStore store, java.util.function.Function<ParameterStore.Entry, Tensor> valueOf) {
        long n = 0;
        for (ParameterStore.Entry e : store.entries()) n += e.numel();
        ByteBuffer b = ByteBuffer.allocate(4 * (int) n).order(ByteOrder.LITTLE_ENDIAN);
        for (ParameterStore.Entry e : store.entries()) for (float f : valueOf.apply(e).toFloatArray()) b.putFloat(f);
        return b.array();
    }
}
