package io.github.rlhf4j.dist;

import io.github.rlhf4j.data.PromptBatch;
import io.github.rlhf4j.generate.GenerationConfig;
import io.github.rlhf4j.model.CausalLM;
import io.github.rlhf4j.model.Gpt2Config;
import io.github.rlhf4j.model.RewardModel;
import io.github.rlhf4j.nn.Module;
import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.optim.Ema;
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
 * <p>With {@code zero-init} (stage 3 on 2+ ranks) the run is step 3's as {@code train} builds it: each rank writes
 * the initial actor and critic as Hugging Face folders, and every model (the actor, critic, reference, reward model
 * and EMA) is built partitioned from them ({@code zero.Init}: laid out, this rank's slices allocated, the folders read
 * a group at a time), the EMA averaging into the EMA model's own partition; the actor and EMA are saved as Hugging
 * Face folders a group at a time ({@link ShardedStore#walk}) and their figures come from those files; the actor
 * generates without the hybrid engine, gathering each layer for each token. Figures: the
 * most bytes held above the start while building ({@code build_max}), while saving ({@code save_max}), the store's
 * flat size and largest group.
 *
 * <p>Usage: {@code ZeroPpoMain STAGE ITERATIONS OUT_DIR [cpu] [zero-init]}
 */
public final class ZeroPpoMain {
    static final int VOCAB = 37, PAD = VOCAB - 1, PROMPT = 4, ANSWER = 6, ROWS = 4, EMBD = 32, LAYERS = 2, HEADS = 4;

    public static void main(String[] args) throws Exception {
        int stage = Integer.parseInt(args[0]), iterations = Integer.parseInt(args[1]);
        Path out = Path.of(args[2]);
        boolean zeroInit = args.length > 4 && args[4].equals("zero-init");
        Device.cpu().setNumThreads(1);
        try (Communicator comm = Communicator.fromEnvironment()) {
            int world = comm.worldSize(), rank = comm.rank(), rows = ROWS / world, columns = PROMPT + ANSWER;
            if (zeroInit && (stage != 3 || world < 2)) throw new IllegalArgumentException("zero-init is stage 3 on 2+ ranks");
            Gpt2Config config = Gpt2Config.tiny(VOCAB, columns + 2, EMBD, LAYERS, HEADS);
            ParameterStore.Layout layout = Zero.layout(world, stage);
            CausalLM actor = CausalLM.of(config), reference = CausalLM.of(config);
            RewardModel critic = RewardModel.of(config), reward = RewardModel.of(config);
            CausalLM emaModel = CausalLM.of(config);
            Optimized.Settings settings = new Optimized.Settings(1e-3, 0.0, LrSchedule.constant(0), 1.0);
            PpoConfig ppo = PpoConfig.dsChat(GenerationConfig.greedy(ANSWER, PAD, PAD)).withEma(0.9);
            long baseline = Device.cpu().memory().live();
            long[] buildMax = {0};
            java.util.function.Consumer<String> held = n -> buildMax[0] = Math.max(buildMax[0],
                    Device.cpu().memory().live() - baseline);
            ParameterStore actorStore, criticStore;
            ShardedStore emaShards = null;
            RlhfEngine engine;
            if (zeroInit) {
                // the initial actor (the reference's weights) and critic (the reward model's), in this rank's folders
                Path actorDir = out.resolve("init-rank" + rank + "/actor"), criticDir = out.resolve("init-rank" + rank
                        + "/critic");
                writeInit(CausalLM.of(config), 11, actorDir);
                writeInit(RewardModel.of(config), 12, criticDir);
                actorStore = ParameterStore.layOut(actor, Device.cpu(), DType.F32, 0, true, layout);
                ShardedStore actorShards = built(actor, config.basePrefix(), actorStore, actorDir, comm, held);
                ParameterStore referenceStore = ParameterStore.layOut(reference, Device.cpu(), DType.F32, 0, false, layout);
                ShardedStore referenceShards = built(reference, config.basePrefix(), referenceStore, actorDir, comm, held);
                criticStore = ParameterStore.layOut(critic, Device.cpu(), DType.F32, 0, true, layout);
                ShardedStore criticShards = built(critic, config.basePrefix(), criticStore, criticDir, comm, held);
                ParameterStore rewardStore = ParameterStore.layOut(reward, Device.cpu(), DType.F32, 0, false, layout);
                ShardedStore rewardShards = built(reward, config.basePrefix(), rewardStore, criticDir, comm, held);
                Optimized actorOpt = new Optimized(actorShards, settings, comm, false);
                emaShards = new ShardedStore(ParameterStore.layOut(emaModel, Device.cpu(), DType.F32, 0, false, layout),
                        comm, 3);
                engine = new RlhfEngine(actor, actorOpt, reference, new RlhfEngine.Frozen(referenceStore,
                        referenceShards), critic, new Optimized(criticShards, settings, comm, false), reward,
                        new RlhfEngine.Frozen(rewardStore, rewardShards),
                        new Ema(actorOpt.emaSource(), emaShards.partitionData()));
            } else {
                actorStore = ParameterStore.allocate(actor, Device.cpu(), DType.F32, 0, true, layout);
                criticStore = ParameterStore.allocate(critic, Device.cpu(), DType.F32, 0, true, layout);
                // the frozen models laid out as the trained ones, so that at stage 3 they are partitioned too (DS-Chat's
                // ZeRO-3 inference); their weights from the default layout, whose offsets seed the init
                ParameterStore referenceStore = ParameterStore.allocate(reference, Device.cpu(), DType.F32, 0, false,
                        layout);
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
                held.accept("");
                engine = new RlhfEngine(actor, new Optimized(actorStore, settings, comm, stage), reference,
                        referenceStore, critic, new Optimized(criticStore, settings, comm, stage), reward, rewardStore,
                        true);
            }
            // built partitioned, the actor generates without the hybrid engine: layer by layer, the next layer gathered ahead
            if (zeroInit) engine.hybridEngine(RlhfEngine.HybridEngine.OFF);
            try (engine; ShardedStore ignored = emaShards) {
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
                byte[] a, c = weights(criticStore, engine.criticOptimizer()), ema;
                long saveMax = 0;
                if (zeroInit) {
                    // saved as Hugging Face folders a group at a time, as train saves them; the figures from the files
                    long[] most = {0};
                    save(actor, engine.actorOptimizer().partitionedParameters(), out.resolve("actor-hf"), rank, most);
                    save(emaModel, emaShards, out.resolve("ema-hf"), rank, most);
                    saveMax = most[0];
                    a = rank == 0 ? fromFile(actorStore, out.resolve("actor-hf")) : null;
                    ema = rank == 0 ? fromFile(actorStore, out.resolve("ema-hf")) : null;
                } else {
                    a = weights(actorStore, engine.actorOptimizer());
                    // the EMA: this rank's partition at stage 3, gathered into the store's layout
                    try (Scope s = Scope.open()) {
                        Tensor whole = s.zeros(DType.F32, (int) actorStore.flatSize());
                        engine.actorOptimizer().gatherWhole(engine.actorEma().shadow(), whole);
                        ema = byEntry(actorStore, e -> whole.slice(0, (int) e.offset(), (int) (e.offset() + e.numel())));
                    }
                }
                if (rank == 0) {
                    Files.write(out.resolve("actor.f32"), a);
                    Files.write(out.resolve("critic.f32"), c);
                    Files.write(out.resolve("ema.f32"), ema);
                    Files.writeString(out.resolve("mode.txt"), engine.generationMode() + "\n"
                            + engine.frozenMode() + "\n");
                    long[] cuts = actorStore.groupBoundaries();
                    long largest = 0;
                    for (int g = 0; g + 1 < cuts.length; g++) largest = Math.max(largest, cuts[g + 1] - cuts[g]);
                    Files.writeString(out.resolve("figures.txt"), "flat=" + actorStore.flatSize() + " largest_group="
                            + largest + " build_max=" + buildMax[0] + " save_max=" + saveMax + "\n");
                }
            }
        }
    }

    /** A model of seeded weights, written as this rank's Hugging Face-style folder. */
    static void writeInit(Module model, long seed, Path dir) throws Exception {
        try (ParameterStore ignored = ParameterStore.allocate(model, Device.cpu(), DType.F32, seed, false)) {
            Files.createDirectories(dir);
            java.util.Map<String, Tensor> weights = new java.util.LinkedHashMap<>();
            model.namedParameters().forEach((name, p) -> weights.put(name, p.value()));
            io.github.rlhf4j.model.Safetensors.write(dir.resolve("model.safetensors"), weights, DType.F32,
                    java.util.Map.of());
        }
    }

    /** Stage 3's partitioned build of a laid-out store, its weights read from {@code dir} a group at a time. */
    static ShardedStore built(Module model, String prefix, ParameterStore store, Path dir, Communicator comm,
                              java.util.function.Consumer<String> held) {
        ShardedStore shards = new ShardedStore(store, comm, 3);
        io.github.rlhf4j.model.HfModel.loadWeights(model, prefix, dir, java.util.Set.of(), name -> {
            held.accept(name);
            shards.loaded(name);
        });
        return shards;
    }

    /** Rank 0 saves {@code model} as a Hugging Face folder while every rank walks its groups; the most held, noted. */
    static void save(Module model, ShardedStore shards, Path dir, int rank, long[] most) {
        long base = Device.cpu().memory().live();
        try (ShardedStore.Walk walk = shards.walk(io.github.rlhf4j.model.HfModel.saveOrder(model), false, "save")) {
            if (rank == 0)
                io.github.rlhf4j.model.HfModel.save(model, io.github.rlhf4j.model.ConfigJson.parse("config",
                        "{\"model_type\": \"gpt2\"}"), dir, null, DType.F32, Long.MAX_VALUE, name -> {
                            walk.at(name);
                            most[0] = Math.max(most[0], Device.cpu().memory().live() - base);
                        });
        }
    }

    /** The weights of a saved folder, by the store's entries. */
    static byte[] fromFile(ParameterStore store, Path dir) {
        try (io.github.rlhf4j.model.Safetensors st = io.github.rlhf4j.model.Safetensors.open(dir.resolve(
                "model.safetensors")); Scope s = Scope.open()) {
            return byEntry(store, e -> {
                Tensor t = s.zeros(DType.F32, e.parameter().shape());
                st.read(e.name(), t);
                return t;
            });
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
