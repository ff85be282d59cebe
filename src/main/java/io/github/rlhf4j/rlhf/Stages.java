package io.github.rlhf4j.rlhf;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.github.rlhf4j.data.Batches;
import io.github.rlhf4j.dist.Communicator;
import io.github.rlhf4j.dist.ShardedStore;
import io.github.rlhf4j.dist.Zero;
import io.github.rlhf4j.data.DataSplit;
import io.github.rlhf4j.data.Dataset;
import io.github.rlhf4j.data.LmBatch;
import io.github.rlhf4j.data.PairBatch;
import io.github.rlhf4j.data.PairSamples;
import io.github.rlhf4j.data.Phase;
import io.github.rlhf4j.data.PromptBatch;
import io.github.rlhf4j.data.PromptSamples;
import io.github.rlhf4j.data.SftSamples;
import io.github.rlhf4j.data.SplitSpec;
import io.github.rlhf4j.data.TextBlocks;
import io.github.rlhf4j.data.TextEncoder;
import io.github.rlhf4j.data.Tokenizer;
import io.github.rlhf4j.generate.GenerationConfig;
import io.github.rlhf4j.generate.Generator;
import io.github.rlhf4j.model.CausalLM;
import io.github.rlhf4j.model.ConfigJson;
import io.github.rlhf4j.model.HfModel;
import io.github.rlhf4j.model.ModelConfig;
import io.github.rlhf4j.model.Models;
import io.github.rlhf4j.model.RewardModel;
import io.github.rlhf4j.model.Transformer;
import io.github.rlhf4j.nn.Lora;
import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.optim.LrSchedule;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.tensor.Autograd;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.function.BiPredicate;

/**
 * The three stages as DeepSpeed-Chat's {@code step1/2/3 main.py} run them, on the CPU or a GPU: each reads its split of the
 * data, trains, reports its eval figures, writes its model(s) in Hugging Face layout (with the tokenizer files) and
 * its metrics as JSON Lines. The command line ({@code bin/rlhf4j sft|reward|ppo|train}) is a thin layer over these.
 * With {@link RunOptions} a stage also writes checkpoints ({@link Checkpoint}) and resumes from them, reaching the
 * same weights as an uninterrupted run; skips NaN/Inf steps when asked; and draws its curves ({@link Plots}).
 */
public final class Stages {
    private static final long SHARD = 5L << 30;
    private static final ObjectMapper JSON = new ObjectMapper();

    private Stages() {}

    /** {@code --data-path ... --data-split 2,4,4 --data-output-path CACHE --seed N}. */
    public record Data(List<Path> paths, String split, Path cacheDir, long seed) {
        public Data {
            if (paths == null || paths.isEmpty()) throw new IllegalArgumentException("no --data-path given");
            paths = List.copyOf(paths);
            SplitSpec.parse(split); // fails early, naming the part at fault
        }

        DataSplit load() {
            return DataSplit.load(paths, SplitSpec.parse(split), seed, cacheDir);
        }
    }

    /**
     * How long and at what rate a stage trains: batch size, epochs over its rows, an optional cap on optimizer steps
     * (0: none), the learning-rate schedule by transformers' name and its warm-up steps.
     */
    public record Training(int batchSize, int epochs, long maxSteps, String scheduler, int warmupSteps) {
        public Training {
            if (batchSize < 1) throw new IllegalArgumentException("batch size " + batchSize + " must be at least 1");
            if (epochs < 1) throw new IllegalArgumentException("epochs " + epochs + " must be at least 1");
            if (maxSteps < 0) throw new IllegalArgumentException("max steps " + maxSteps + " must be >= 0 (0: no cap)");
            LrSchedule.named(scheduler, 0, 0); // an unknown name fails here
        }

        long steps(int batchesPerEpoch) {
            long all = (long) epochs * batchesPerEpoch;
            return maxSteps > 0 ? Math.min(all, maxSteps) : all;
        }

        LrSchedule schedule(long total) {
            return LrSchedule.named(scheduler, Math.min(warmupSteps, total), total);
        }
    }

    /**
     * How a stage guards its work. Checkpoints go to {@code checkpointDir/step{1,2,3}/checkpoint-<step>} every
     * {@code checkpointEvery} steps (0: only at the stage's end) and at the end, keeping the newest
     * {@code saveTotalLimit} (0: all); null {@code checkpointDir}: none. {@code resume} continues from the newest
     * usable checkpoint of the stage (a finished stage is skipped). {@code skipNonFinite} skips a step whose loss or
     * gradient is NaN or Inf instead of stopping, counting it. {@code plotsDir} (null: none) receives each stage's PNG
     * at every checkpoint and at the end.
     */
    public record RunOptions(Path checkpointDir, long checkpointEvery, int saveTotalLimit, boolean resume,
                             boolean skipNonFinite, Path plotsDir, Device device, Communicator comm) {
        /** No checkpoints, no plots, stop on NaN, on the CPU: what a library caller gets by default. */
        public static final RunOptions NONE = new RunOptions(null, 0, 0, false, false, null, null, null);

        /**
         * {@code device} null: the CPU. {@code comm} null or of one rank: one process; else data parallel over its
         * ranks (each rank its share of every batch, gradients all-reduced: ZeRO stage 0), rank 0 alone writing
         * logs, metrics, plots, checkpoints and models, and every rank resuming from rank 0's checkpoints (a shared
         * file system).
         */
        public RunOptions {
            if (checkpointEvery < 0)
                throw new IllegalArgumentException("--checkpoint-every " + checkpointEvery + " must be >= 0");
            if (saveTotalLimit < 0)
                throw new IllegalArgumentException("--save-total-limit " + saveTotalLimit + " must be >= 0");
            if (resume && checkpointDir == null)
                throw new IllegalArgumentException("resuming needs a checkpoint directory");
        }

        public RunOptions(Path checkpointDir, long checkpointEvery, int saveTotalLimit, boolean resume,
                          boolean skipNonFinite, Path plotsDir) {
            this(checkpointDir, checkpointEvery, saveTotalLimit, resume, skipNonFinite, plotsDir, null, null);
        }

        /** The command line's: checkpoints in {@code output/checkpoints}, plots in {@code output/plots}. */
        public static RunOptions under(Path outputDir, long checkpointEvery, int saveTotalLimit, boolean resume,
                                       boolean skipNonFinite) {
            return new RunOptions(outputDir.resolve("checkpoints"), checkpointEvery, saveTotalLimit, resume,
                    skipNonFinite, outputDir.resolve("plots"), null, null);
        }

        public RunOptions on(Device d) {
            return new RunOptions(checkpointDir, checkpointEvery, saveTotalLimit, resume, skipNonFinite, plotsDir, d,
                    comm);
        }

        /** Data parallel over {@code c}'s ranks. */
        public RunOptions over(Communicator c) {
            return new RunOptions(checkpointDir, checkpointEvery, saveTotalLimit, resume, skipNonFinite, plotsDir,
                    device, c);
        }

        /** The ranks this run trains over (one: a single process). */
        public int world() {
            return comm == null ? 1 : comm.worldSize();
        }

        public int rank() {
            return comm == null ? 0 : comm.rank();
        }

        /** Whether this process writes the run's files (rank 0). */
        public boolean writes() {
            return rank() == 0;
        }

        /**
         * The mean over ranks of each of {@code values} (one all-reduce), what a logged figure of a data-parallel
         * step is; the values themselves alone.
         */
        double[] mean(double... values) {
            if (world() == 1) return values;
            try (Autograd.NoGrad ignored = Autograd.noGrad(); Scope s = Scope.open(Device.cpu())) {
                Tensor t = Tensor.of(values.clone());
                comm.allReduce(t);
                double[] out = t.toDoubleArray();
                for (int i = 0; i < out.length; i++) out[i] /= world();
                return out;
            }
        }

        /** Waits for every rank (after rank 0 wrote a stage's outputs, before anyone reads them). */
        void barrier() {
            if (world() > 1) comm.barrier();
        }

        /**
         * Runs {@code work}, where ranks may wait on another's file I/O, under the communicator's file limit
         * ({@link Communicator#waitingOnFiles}) rather than the collectives' 60 s.
         */
        void waitingOnFiles(Runnable work) {
            if (world() > 1) comm.waitingOnFiles(work);
            else work.run();
        }

        /**
         * Rank 0's file work that every rank waits for (a model save, and at ZeRO stage 3 the gathers around it):
         * every rank runs {@code work} under the file limit, then the ranks tell each other whether it went well, so
         * a failure on one stops all of them with its error, instead of leaving the others waiting in a collective.
         */
        void together(String what, Runnable work) {
            if (world() > 1) comm.waitingOnFiles(() -> comm.agree(what, work));
            else work.run();
        }

        /** The device the stages train on. */
        public Device deviceOrCpu() {
            return device != null ? device : Device.cpu();
        }
    }

    /**
     * Step 1. {@code model}: a Hugging Face model directory (weights and tokenizer), or with {@code fromScratch} one
     * whose config.json is initialised randomly with the seed. The actor goes to {@code out}.
     */
    public record SftSettings(Data data, Path model, boolean fromScratch, int maxSeqLen, Training training, double lr,
                              double weightDecay, Path out, Path metrics, ModelOptions options) {
        public SftSettings {
            if (options == null) options = ModelOptions.NONE;
        }

        public SftSettings(Data data, Path model, boolean fromScratch, int maxSeqLen, Training training, double lr,
                           double weightDecay, Path out, Path metrics) {
            this(data, model, fromScratch, maxSeqLen, training, lr, weightDecay, out, metrics, ModelOptions.NONE);
        }
    }

    /**
     * How one trained model is trained beyond its optimizer: DS-Chat's {@code --lora_dim} (0: no LoRA; the rank of the
     * adapters put on the linear layers whose name contains {@code loraModuleName}), {@code --lora_learning_rate},
     * {@code --only_optimize_lora} (train the adapters alone), {@code --gradient_checkpointing}, and
     * {@code --zero_stage} (0 to 3: what the ranks of a data-parallel run partition among themselves; one process
     * has nothing to partition and trains as stage 0) and {@code --offload} (ZeRO-Offload: the optimizer state and
     * its AdamW step in host memory while the model trains on the GPU; a model on the CPU has it there already).
     */
    public record ModelOptions(int loraDim, String loraModuleName, double loraLr, boolean onlyOptimizeLora,
                               boolean gradientCheckpointing, int zeroStage, boolean offload) {
        /** No LoRA, no checkpointing, ZeRO stage 0, no offload; DS-Chat's LoRA rate. */
        public static final ModelOptions NONE = new ModelOptions(0, null, 5e-4, false, false, 0, false);

        /** {@code loraModuleName} null: the family's layer stack (see {@link #loraFilter}). */
        public ModelOptions {
            if (zeroStage < 0 || zeroStage > 3)
                throw new IllegalArgumentException("ZeRO stage " + zeroStage + " must be 0, 1, 2 or 3");
            if (loraDim < 0) throw new IllegalArgumentException("lora dim " + loraDim + " must be >= 0 (0: no LoRA)");
            if (loraModuleName != null && loraModuleName.isEmpty())
                throw new IllegalArgumentException("the LoRA module name filter is empty (e.g. decoder.layers.)");
            if (loraDim > 0 && !(loraLr > 0))
                throw new IllegalArgumentException("lora learning rate " + loraLr + " must be > 0");
            if (onlyOptimizeLora && loraDim == 0)
                throw new IllegalArgumentException("--only-optimize-lora needs a LoRA dim > 0");
        }

        /**
         * The module-name filter LoRA uses on a model of {@code c}: the given one, else the family's decoder layers
         * (DS-Chat's default "decoder.layers." is OPT's; GPT-2 and GPT-Neo call theirs "h.", Llama and Qwen2
         * "layers.").
         */
        public String loraFilter(ModelConfig c) {
            if (loraModuleName != null) return loraModuleName;
            return switch (c.modelType()) {
                case "opt" -> "decoder.layers.";
                case "gpt2", "gpt_neo" -> "h.";
                default -> "layers.";
            };
        }

        /** The LoRA layer's settings for a model of {@code c} (dim 0: off). */
        public Lora.Config lora(ModelConfig c) {
            return loraDim == 0 ? Lora.Config.none() : new Lora.Config(loraDim, loraFilter(c), onlyOptimizeLora);
        }

        /** At ZeRO stage 0, no offload. */
        public ModelOptions(int loraDim, String loraModuleName, double loraLr, boolean onlyOptimizeLora,
                            boolean gradientCheckpointing) {
            this(loraDim, loraModuleName, loraLr, onlyOptimizeLora, gradientCheckpointing, 0, false);
        }

        public ModelOptions withGradientCheckpointing(boolean on) {
            return new ModelOptions(loraDim, loraModuleName, loraLr, onlyOptimizeLora, on, zeroStage, offload);
        }

        public ModelOptions withZeroStage(int stage) {
            return new ModelOptions(loraDim, loraModuleName, loraLr, onlyOptimizeLora, gradientCheckpointing, stage,
                    offload);
        }

        public ModelOptions withOffload(boolean on) {
            return new ModelOptions(loraDim, loraModuleName, loraLr, onlyOptimizeLora, gradientCheckpointing,
                    zeroStage, on);
        }

        /** Whether the optimizer steps on the host in {@code run}: asked for, and the model is on a GPU. */
        boolean offload(RunOptions run) {
            return offload && !run.deviceOrCpu().isCpu();
        }

        /** The ZeRO stage {@code run} trains this model at: 0 in one process, which has nothing to partition. */
        int zeroStage(RunOptions run) {
            return run.world() > 1 ? zeroStage : 0;
        }

        /** The flat layout this model's store needs in {@code run} ({@link Zero#layout}). */
        ParameterStore.Layout layout(RunOptions run) {
            return Zero.layout(run.world(), zeroStage(run));
        }
    }

    /** What step 1 reports: eval perplexity, steps, the last training loss, steps skipped for a NaN or Inf. */
    public record SftResult(double perplexity, long steps, double lastLoss, Path actor, long skippedSteps) {}

    /**
     * Step 2. {@code model}: a causal-LM directory (its base model, a fresh v_head) or a reward-model directory
     * (v_head included).
     */
    public record RewardSettings(Data data, Path model, int maxSeqLen, Training training, double lr,
                                 double weightDecay, Path out, Path metrics, ModelOptions options) {
        public RewardSettings {
            if (options == null) options = ModelOptions.NONE;
        }

        public RewardSettings(Data data, Path model, int maxSeqLen, Training training, double lr, double weightDecay,
                              Path out, Path metrics) {
            this(data, model, maxSeqLen, training, lr, weightDecay, out, metrics, ModelOptions.NONE);
        }
    }

    /** What step 2 reports on its eval split. */
    public record RewardResult(RewardTrainer.Evaluation eval, long steps, double lastLoss, Path rewardModel,
                               long skippedSteps) {}

    /**
     * Step 3: actor from step 1, critic and reward model from step 2; models to {@code out/{actor,critic,actor_ema}}.
     * {@code generationBatches} experience batches are generated before the PPO epochs train on them (DS-Chat's
     * {@code --generation_batches}); {@code offloadReferenceModel} keeps the frozen reference and reward models on
     * the CPU while the actor and critic use the GPU.
     */
    public record PpoSettings(Data data, Path actor, Path critic, int maxPromptSeqLen, int maxAnswerSeqLen,
                              Training training, double actorLr, double criticLr, double actorWeightDecay,
                              double criticWeightDecay, int ppoEpochs, boolean enableEma, Path unsupervisedDataset,
                              double unsupCoef, double temperature, double topP, double klCtl, Path out,
                              Path metrics, ModelOptions actorOptions, ModelOptions criticOptions,
                              int generationBatches, boolean offloadReferenceModel,
                              RlhfEngine.HybridEngine hybridEngine) {
        public PpoSettings {
            if (hybridEngine == null) hybridEngine = RlhfEngine.HybridEngine.AUTO;
            if (actorOptions == null) actorOptions = ModelOptions.NONE;
            if (criticOptions == null) criticOptions = ModelOptions.NONE;
            if (generationBatches < 1)
                throw new IllegalArgumentException("--generation-batches " + generationBatches + " must be >= 1");
            if (ppoEpochs < 1) throw new IllegalArgumentException("--ppo-epochs " + ppoEpochs + " must be >= 1");
        }

        public PpoSettings(Data data, Path actor, Path critic, int maxPromptSeqLen, int maxAnswerSeqLen,
                           Training training, double actorLr, double criticLr, double actorWeightDecay,
                           double criticWeightDecay, int ppoEpochs, boolean enableEma, Path unsupervisedDataset,
                           double unsupCoef, double temperature, double topP, double klCtl, Path out, Path metrics) {
            this(data, actor, critic, maxPromptSeqLen, maxAnswerSeqLen, training, actorLr, criticLr, actorWeightDecay,
                    criticWeightDecay, ppoEpochs, enableEma, unsupervisedDataset, unsupCoef, temperature, topP, klCtl,
                    out, metrics, ModelOptions.NONE, ModelOptions.NONE, 1, false, RlhfEngine.HybridEngine.AUTO);
        }

        /** The settings with the hybrid engine left to {@code AUTO}. */
        public PpoSettings(Data data, Path actor, Path critic, int maxPromptSeqLen, int maxAnswerSeqLen,
                           Training training, double actorLr, double criticLr, double actorWeightDecay,
                           double criticWeightDecay, int ppoEpochs, boolean enableEma, Path unsupervisedDataset,
                           double unsupCoef, double temperature, double topP, double klCtl, Path out, Path metrics,
                           ModelOptions actorOptions, ModelOptions criticOptions, int generationBatches,
                           boolean offloadReferenceModel) {
            this(data, actor, critic, maxPromptSeqLen, maxAnswerSeqLen, training, actorLr, criticLr, actorWeightDecay,
                    criticWeightDecay, ppoEpochs, enableEma, unsupervisedDataset, unsupCoef, temperature, topP, klCtl,
                    out, metrics, actorOptions, criticOptions, generationBatches, offloadReferenceModel,
                    RlhfEngine.HybridEngine.AUTO);
        }

        /** DS-Chat's step-3 defaults around the given paths: lr 9.65e-6 / 5e-6, cosine with 100 warm-up steps, 256 + 256. */
        public static PpoSettings dsChat(Data data, Path actor, Path critic, Path out, Path metrics) {
            return new PpoSettings(data, actor, critic, 256, 256, new Training(16, 1, 0, "cosine", 100), 9.65e-6, 5e-6,
                    0.0, 0.0, 1, false, null, 27.8, 1.0, 1.0, PpoMath.KL_CTL, out, metrics);
        }
    }

    /**
     * What step 3 reports: the last step's losses, where the models went, and the optimizer steps (actor and critic
     * together) skipped for a NaN or Inf.
     */
    public record PpoResult(PpoTrainer.Losses last, long steps, Path actor, Path critic, Path actorEma,
                            long skippedSteps) {}

    // ---- settings a resumed stage must share (by the flag that sets them) -----------------------------------------

    private static Map<String, String> common(Data d, Training t) {
        Map<String, String> m = new LinkedHashMap<>();
        m.put("--data-path", String.join(" ", d.paths().stream().map(Stages::canonical).toList()));
        m.put("--data-split", d.split());
        m.put("--seed", Long.toString(d.seed()));
        m.put("--per-device-train-batch-size", Integer.toString(t.batchSize()));
        m.put("--num-train-epochs", Integer.toString(t.epochs()));
        m.put("--max-steps", Long.toString(t.maxSteps()));
        m.put("--lr-scheduler-type", t.scheduler());
        m.put("--num-warmup-steps", Integer.toString(t.warmupSteps()));
        return m;
    }

    static Map<String, String> settingsOf(SftSettings s) {
        Map<String, String> m = common(s.data(), s.training());
        m.put("--model-name-or-path", canonical(s.model()));
        m.put("--from-scratch", Boolean.toString(s.fromScratch()));
        m.put("--max-seq-len", Integer.toString(s.maxSeqLen()));
        m.put("--learning-rate", Double.toString(s.lr()));
        m.put("--weight-decay", Double.toString(s.weightDecay()));
        lora(m, "", s.options());
        return m;
    }

    /** The LoRA settings a resumed run must share (gradient checkpointing changes nothing but memory: not here). */
    private static void lora(Map<String, String> m, String prefix, ModelOptions o) {
        if (o.loraDim() == 0) return; // absent keys keep checkpoints of runs without LoRA resumable
        m.put("--" + prefix + "lora-dim", Integer.toString(o.loraDim()));
        m.put("--" + prefix + "lora-module-name", String.valueOf(o.loraModuleName()));
        m.put("--" + prefix + "lora-learning-rate", Double.toString(o.loraLr()));
        m.put("--only-optimize-lora (" + (prefix.isEmpty() ? "model" : prefix.substring(0, prefix.length() - 1)) + ")",
                Boolean.toString(o.onlyOptimizeLora()));
    }

    static Map<String, String> settingsOf(RewardSettings s) {
        Map<String, String> m = common(s.data(), s.training());
        m.put("--model-name-or-path", canonical(s.model()));
        m.put("--max-seq-len", Integer.toString(s.maxSeqLen()));
        m.put("--learning-rate", Double.toString(s.lr()));
        m.put("--weight-decay", Double.toString(s.weightDecay()));
        lora(m, "", s.options());
        return m;
    }

    static Map<String, String> settingsOf(PpoSettings s) {
        Map<String, String> m = common(s.data(), s.training());
        m.put("--actor-model-name-or-path", canonical(s.actor()));
        m.put("--critic-model-name-or-path", canonical(s.critic()));
        m.put("--max-prompt-seq-len", Integer.toString(s.maxPromptSeqLen()));
        m.put("--max-answer-seq-len", Integer.toString(s.maxAnswerSeqLen()));
        m.put("--actor-learning-rate", Double.toString(s.actorLr()));
        m.put("--critic-learning-rate", Double.toString(s.criticLr()));
        m.put("--actor-weight-decay", Double.toString(s.actorWeightDecay()));
        m.put("--critic-weight-decay", Double.toString(s.criticWeightDecay()));
        m.put("--ppo-epochs", Integer.toString(s.ppoEpochs()));
        m.put("--enable-ema", Boolean.toString(s.enableEma()));
        m.put("--unsupervised-dataset-name", s.unsupervisedDataset() == null ? "" : canonical(s.unsupervisedDataset()));
        m.put("--unsup-coef", Double.toString(s.unsupCoef()));
        m.put("--temperature", Double.toString(s.temperature()));
        m.put("--top-p", Double.toString(s.topP()));
        m.put("kl_ctl", Double.toString(s.klCtl()));
        if (s.generationBatches() != 1) m.put("--generation-batches", Integer.toString(s.generationBatches()));
        lora(m, "actor-", s.actorOptions());
        lora(m, "critic-", s.criticOptions());
        return m;
    }

    private static String canonical(Path p) {
        return p.toAbsolutePath().normalize().toString();
    }

    /**
     * ZeRO stage 3's partitioned build of a laid-out store ({@code zero.Init}): this rank's slices allocated and
     * initialised, the store's parameters bound to evictable groups; returns what the weights' loader tells after
     * each parameter. The store goes into {@code built[0]}, for {@link #optimized} to hand on.
     */
    private static java.util.function.Consumer<String> partitionedBuild(ParameterStore store, RunOptions run,
                                                                       ShardedStore[] built) {
        built[0] = new ShardedStore(store, run.comm(), 3);
        return built[0]::loaded;
    }

    /**
     * A stage's Hugging Face output (sharded at {@link #SHARD}): rank 0 writes it; at ZeRO stage 3
     * ({@code partitioned} not null) every rank walks the layer groups with the write, so that no rank holds the
     * whole model ({@link ShardedStore#walk}). Every rank agrees on the outcome before the stage goes on.
     */
    private static void saveModel(RunOptions run, ShardedStore partitioned, io.github.rlhf4j.nn.Module model,
                                  ConfigJson json, Path out, Path sideFiles) {
        run.together("save " + out, () -> Checkpoint.walked(partitioned, HfModel.saveOrder(model), run.writes(),
                "the save of " + out, at -> HfModel.save(model, json, out, sideFiles, DType.F32, SHARD, at)));
    }

    /**
     * A frozen model of step 3 with its weights from {@code dir}: built partitioned over the ranks when the model
     * trained beside it is at ZeRO stage 3 {@code zero} and can partition it ({@link RlhfEngine#partitionsFrozen}:
     * DS-Chat's ZeRO-3 inference), each rank holding its slices and at most one layer group while loading; else
     * allocated whole.
     */
    private static RlhfEngine.Frozen frozen(io.github.rlhf4j.nn.Module model, String basePrefix, Path dir, Device device,
                                            ParameterStore.Layout layout, int zero, RunOptions run) {
        if (!RlhfEngine.partitionsFrozen(zero, run.comm(), device, layout)) {
            ParameterStore store = ParameterStore.allocate(model, device, DType.F32, 0, false, layout);
            HfModel.loadWeights(model, basePrefix, dir, Set.of());
            return new RlhfEngine.Frozen(store, null);
        }
        ParameterStore store = ParameterStore.layOut(model, device, DType.F32, 0, false, layout);
        ShardedStore shards = new ShardedStore(store, run.comm(), 3);
        readingFiles(run, () -> HfModel.loadWeights(model, basePrefix, dir, Set.of(), shards::loaded));
        return new RlhfEngine.Frozen(store, shards);
    }

    /**
     * {@code work}'s result, read from files with the ranks' collectives in between (a model built partitioned
     * gathers each group as it is read): under the communicator's file limit, as a rank may read slower than another.
     */
    private static <T> T readingFiles(RunOptions run, java.util.function.Supplier<T> work) {
        List<T> out = new ArrayList<>(1);
        run.waitingOnFiles(() -> out.add(work.get()));
        return out.getFirst();
    }

    /** What the stage's first line says of a model built partitioned (ZeRO stage 3), else nothing. */
    private static String builtNote(int zero, RunOptions run) {
        return zero == 3 ? " (built partitioned over " + run.world() + " ranks, as zero.Init: never whole on a device)"
                : "";
    }

    /**
     * The optimizer of a stage's trained model: over the store built partitioned when there is one (it then owns
     * and closes it, and {@code built[0]} is cleared), else at ZeRO {@code zero} on the run's ranks.
     */
    private static Optimized optimized(ShardedStore[] built, ParameterStore store, Optimized.Settings settings,
                                       RunOptions run, int zero, boolean offload) {
        if (built[0] == null) return new Optimized(store, settings, run.comm(), zero, offload);
        Optimized opt = new Optimized(built[0], settings, run.comm(), offload);
        built[0] = null;
        return opt;
    }

    // ---- step 1 ----------------------------------------------------------------------------------------------------

    public static SftResult sft(SftSettings s, PrintWriter log) {
        return sft(s, RunOptions.NONE, log);
    }

    /** Step 1 with checkpoints, resume, NaN skipping and plots as {@code run} says. */
    public static SftResult sft(SftSettings s, RunOptions run, PrintWriter log) {
        log = run.writes() ? log : new PrintWriter(java.io.Writer.nullWriter()); // rank 0 speaks
        int zero = s.options().zeroStage(run);
        dataParallel(log, "step 1", run, s.training(), "ZeRO stage " + s.options().zeroStage(), "--zero-stage",
                s.options().zeroStage() > 0, zero == 3);
        sameOnEveryRank(run, "step 1", settingsOf(s), Integer.toString(s.options().zeroStage()), s.model());
        offloadNote(log, "step 1", run, s.options().offload());
        StageCheckpoints ck = new StageCheckpoints("step1", "step 1", run, settingsOf(s), s.metrics(), log, zero > 0);
        JsonNode done = ck.finished(s.out());
        if (done != null)
            return new SftResult(StageCheckpoints.getDouble(done, "perplexity"), done.path("steps").asLong(),
                    StageCheckpoints.getDouble(done, "last_loss"), s.out(), done.path("skipped_steps").asLong());
        Device dev = run.deviceOrCpu();
        DataSplit split = s.data().load();
        ConfigJson modelJson = ConfigJson.read(s.model().resolve("config.json"));
        Lora.Config lora = s.options().lora(Models.config(modelJson));
        ShardedStore[] built = {null}; // ZeRO-3: the actor built partitioned, never whole on the device
        try (Tokenizer tok = Tokenizer.load(s.model());
             ShardedStore.Closer ignoredBuilt = ShardedStore.closer(built); // a build no optimizer took, on failure
             HfModel hf = zero == 3
                     ? readingFiles(run, () -> HfModel.partitioned(s.fromScratch() ? null : s.model(), modelJson, dev,
                             s.fromScratch() ? s.data().seed() : 0, true, lora::applyTo, s.options().layout(run),
                             store -> partitionedBuild(store, run, built)))
                     : s.fromScratch()
                     ? HfModel.random(modelJson, dev, DType.F32, s.data().seed(), true, lora::applyTo,
                             s.options().layout(run))
                     : HfModel.load(s.model(), dev, DType.F32, true, lora::applyTo, s.options().layout(run))) {
            TextEncoder enc = TextEncoder.dsChat(tok);
            SftSamples train = SftSamples.build(split.pairs(Phase.SFT, DataSplit.Part.TRAIN), enc, s.maxSeqLen());
            SftSamples eval = SftSamples.build(split.pairs(Phase.SFT, DataSplit.Part.EVAL), enc, s.maxSeqLen());
            log.printf("step 1 data: train %s; eval %s%n", train.skips().summary(), eval.skips().summary());
            requireRows("step 1", train.size(), s.data());
            Batches<LmBatch> batches = new Batches<>(train, s.training().batchSize(), true, s.data().seed(),
                    run.rank(), run.world());
            long steps = s.training().steps(batches.batchesPerEpoch());
            log.printf(Locale.ROOT, "step 1 (sft): %s, %,d parameters%s, %d samples, %d steps%n", s.model(),
                    hf.parameters().parameterCount(), builtNote(zero, run), train.size(), steps);
            double ppl;
            try (Optimized opt = optimized(built, hf.parameters(), new Optimized.Settings(s.lr(), s.weightDecay(),
                    s.training().schedule(steps), 1.0, s.options().loraLr()), run, zero, s.options().offload(run))) {
                opt.skipNonFiniteSteps(run.skipNonFinite());
                SftTrainer trainer = new SftTrainer(hf.model(), opt);
                Transformer base = hf.model().base();
                base.setGradientCheckpointing(s.options().gradientCheckpointing());
                StageCheckpoints.Saved saved = new StageCheckpoints.Saved() {
                    @Override
                    public void write(Checkpoint.Writer w, ObjectNode state) {
                        w.model("actor", hf.model(), hf.configJson(), s.model(), opt);
                        w.optimizer("actor", opt);
                        saveOptimizer(state, "actor", opt);
                        StageCheckpoints.putPosition(state, "data_position", batches.position());
                        state.putObject("dropout_seeds").put("actor", base.dropoutSeed());
                    }

                    @Override
                    public void verify(Checkpoint c) {
                        c.verifyModel("actor", hf.model());
                        c.verifyOptimizer("actor", opt);
                        StageCheckpoints.getPosition(c, "data_position");
                    }

                    @Override
                    public void restore(Checkpoint c) {
                        c.loadModel("actor", hf.model(), opt);
                        c.loadOptimizer("actor", opt);
                        batches.seek(StageCheckpoints.getPosition(c, "data_position"));
                        base.setDropoutSeed(c.state().path("dropout_seeds").path("actor").asLong());
                    }
                };
                Checkpoint from = ck.resume(saved);
                long first = from == null ? 1 : from.step() + 1;
                double elapsed0 = from == null ? 0 : StageCheckpoints.getDouble(from.state(), "elapsed_s");
                double loss = from == null ? Double.NaN : StageCheckpoints.getDouble(from.state(), "last_loss");
                try (MetricsLog metrics = ck.metrics(from);
                     Progress bar = Progress.start("step1", steps, first - 1, log)) {
                    for (long i = first; i <= steps; i++) {
                        LmBatch b = batches.next();
                        double lr = opt.lr();
                        long skipped = opt.skippedSteps(), t0 = System.nanoTime();
                        loss = run.mean(trainer.step(b))[0];
                        double tps = tokens(b.attentionMask()) / ((System.nanoTime() - t0) / 1e9);
                        metrics.log(line(skips(log, "step 1", i, skipped, opt), "step", i, "loss", loss, "lr", lr,
                                "tokens_per_s", tps, "elapsed_s", elapsed0 + bar.elapsed()));
                        bar.step(i, String.format(Locale.ROOT, "loss %.4f lr %.3g %.0f tok/s", loss, lr, tps));
                        if (ck.due(i, steps)) {
                            ObjectNode state = JSON.createObjectNode();
                            StageCheckpoints.putDouble(state, "last_loss", loss);
                            state.put("elapsed_s", elapsed0 + bar.elapsed());
                            ck.save(i, steps, saved, state, metrics);
                        }
                    }
                    ppl = eval.size() == 0 ? Double.NaN : trainer.perplexity(eval.inOrder(s.training().batchSize()));
                    metrics.log("step", steps, "eval_perplexity", ppl, "eval_samples", eval.size(), "elapsed_s",
                            elapsed0 + bar.elapsed());
                }
                log.printf(Locale.ROOT, "step 1 eval: perplexity %.4f on %d samples%n", ppl, eval.size());
                reportSkips(log, "step 1", steps, opt.skippedSteps(), opt.lastSkipReason());
                saveModel(run, opt.partitionedParameters(), hf.model(), hf.configJson(), s.out(), s.model());
                log.printf("step 1 saved %s%n", s.out());
                ObjectNode result = JSON.createObjectNode();
                StageCheckpoints.putDouble(result, "perplexity", ppl);
                result.put("steps", steps);
                StageCheckpoints.putDouble(result, "last_loss", loss);
                result.put("skipped_steps", opt.skippedSteps());
                ck.complete(result);
                log.flush();
                return new SftResult(ppl, steps, loss, s.out(), opt.skippedSteps());
            }
        }
    }

    // ---- step 2 ----------------------------------------------------------------------------------------------------

    public static RewardResult reward(RewardSettings s, PrintWriter log) {
        return reward(s, RunOptions.NONE, log);
    }

    /** Step 2 with checkpoints, resume, NaN skipping and plots as {@code run} says. */
    public static RewardResult reward(RewardSettings s, RunOptions run, PrintWriter log) {
        log = run.writes() ? log : new PrintWriter(java.io.Writer.nullWriter()); // rank 0 speaks
        int zero = s.options().zeroStage(run);
        dataParallel(log, "step 2", run, s.training(), "ZeRO stage " + s.options().zeroStage(), "--zero-stage",
                s.options().zeroStage() > 0, zero == 3);
        sameOnEveryRank(run, "step 2", settingsOf(s), Integer.toString(s.options().zeroStage()), s.model());
        offloadNote(log, "step 2", run, s.options().offload());
        StageCheckpoints ck = new StageCheckpoints("step2", "step 2", run, settingsOf(s), s.metrics(), log, zero > 0);
        JsonNode done = ck.finished(s.out());
        if (done != null)
            return new RewardResult(new RewardTrainer.Evaluation(StageCheckpoints.getDouble(done, "accuracy"),
                    StageCheckpoints.getDouble(done, "chosen_score"), StageCheckpoints.getDouble(done, "rejected_score"),
                    done.path("pairs").asInt()), done.path("steps").asLong(),
                    StageCheckpoints.getDouble(done, "last_loss"), s.out(), done.path("skipped_steps").asLong());
        Device dev = run.deviceOrCpu();
        DataSplit split = s.data().load();
        ConfigJson json = ConfigJson.read(s.model().resolve("config.json"));
        ModelConfig config = Models.config(json);
        RewardModel rm = RewardModel.of(config);
        // DS-Chat keeps the value head trainable under --only-optimize-lora: a fresh v_head must learn
        s.options().lora(config).applyTo(rm, List.of("v_head.weight"));
        ShardedStore[] built = {null}; // ZeRO-3: built partitioned, never whole on the device
        try (Tokenizer tok = Tokenizer.load(s.model());
             ShardedStore.Closer ignoredBuilt = ShardedStore.closer(built); // a build no optimizer took, on failure
             ParameterStore store = zero == 3
                     ? ParameterStore.layOut(rm, dev, DType.F32, s.data().seed(), true, s.options().layout(run))
                     : ParameterStore.allocate(rm, dev, DType.F32, s.data().seed(), true, s.options().layout(run))) {
            java.util.function.Consumer<String> afterEach = zero == 3 ? partitionedBuild(store, run, built) : n -> {};
            // a causal-LM directory gives the base model and leaves the v_head as initialised; a reward-model one all
            HfModel.LoadReport loaded = readingFiles(run, () -> HfModel.loadWeights(rm, config.basePrefix(), s.model(),
                    Set.of("v_head.weight"), afterEach));
            TextEncoder enc = TextEncoder.dsChat(tok);
            PairSamples train = PairSamples.build(split.pairs(Phase.REWARD, DataSplit.Part.TRAIN), enc, s.maxSeqLen());
            PairSamples eval = PairSamples.build(split.pairs(Phase.REWARD, DataSplit.Part.EVAL), enc, s.maxSeqLen());
            log.printf("step 2 data: train %s; eval %s%n", train.skips().summary(), eval.skips().summary());
            requireRows("step 2", train.size(), s.data());
            Batches<PairBatch> batches = new Batches<>(train, s.training().batchSize(), true, s.data().seed(),
                    run.rank(), run.world());
            long steps = s.training().steps(batches.batchesPerEpoch());
            log.printf(Locale.ROOT, "step 2 (reward model): %s%s, %,d parameters%s, %d pairs, %d steps%n", s.model(),
                    loaded.notInCheckpoint().isEmpty() ? "" : " (fresh " + String.join(", ", loaded.notInCheckpoint()) + ")",
                    store.parameterCount(), builtNote(zero, run), train.size(), steps);
            RewardTrainer.Evaluation ev;
            try (Optimized opt = optimized(built, store, new Optimized.Settings(s.lr(), s.weightDecay(),
                    s.training().schedule(steps), 1.0, s.options().loraLr()), run, zero, s.options().offload(run))) {
                opt.skipNonFiniteSteps(run.skipNonFinite());
                RewardTrainer trainer = new RewardTrainer(rm, opt, enc.padId(), enc.paddingAtBeginning());
                rm.base().setGradientCheckpointing(s.options().gradientCheckpointing());
                Transformer base = rm.base();
                StageCheckpoints.Saved saved = new StageCheckpoints.Saved() {
                    @Override
                    public void write(Checkpoint.Writer w, ObjectNode state) {
                        w.model("reward", rm, json, s.model(), opt);
                        w.optimizer("reward", opt);
                        saveOptimizer(state, "reward", opt);
                        StageCheckpoints.putPosition(state, "data_position", batches.position());
                        state.putObject("dropout_seeds").put("reward", base.dropoutSeed());
                    }

                    @Override
                    public void verify(Checkpoint c) {
                        c.verifyModel("reward", rm);
                        c.verifyOptimizer("reward", opt);
                        StageCheckpoints.getPosition(c, "data_position");
                    }

                    @Override
                    public void restore(Checkpoint c) {
                        c.loadModel("reward", rm, opt);
                        c.loadOptimizer("reward", opt);
                        batches.seek(StageCheckpoints.getPosition(c, "data_position"));
                        base.setDropoutSeed(c.state().path("dropout_seeds").path("reward").asLong());
                    }
                };
                Checkpoint from = ck.resume(saved);
                long first = from == null ? 1 : from.step() + 1;
                double elapsed0 = from == null ? 0 : StageCheckpoints.getDouble(from.state(), "elapsed_s");
                double loss = from == null ? Double.NaN : StageCheckpoints.getDouble(from.state(), "last_loss");
                try (MetricsLog metrics = ck.metrics(from);
                     Progress bar = Progress.start("step2", steps, first - 1, log)) {
                    for (long i = first; i <= steps; i++) {
                        PairBatch b = batches.next();
                        double lr = opt.lr();
                        long skipped = opt.skippedSteps(), t0 = System.nanoTime();
                        RewardTrainer.Step one = trainer.train(b);
                        double[] m = run.mean(one.loss(), one.accuracy(), one.chosenScore(), one.rejectedScore());
                        RewardTrainer.Step st = new RewardTrainer.Step(m[0], m[1], m[2], m[3]);
                        loss = st.loss();
                        double tps = tokens(b.attentionMask()) / ((System.nanoTime() - t0) / 1e9);
                        metrics.log(line(skips(log, "step 2", i, skipped, opt), "step", i, "loss", loss, "accuracy",
                                st.accuracy(), "chosen_score", st.chosenScore(), "rejected_score", st.rejectedScore(),
                                "lr", lr, "tokens_per_s", tps, "elapsed_s", elapsed0 + bar.elapsed()));
                        bar.step(i, String.format(Locale.ROOT, "loss %.4f acc %.2f lr %.3g %.0f tok/s", loss,
                                st.accuracy(), lr, tps));
                        if (ck.due(i, steps)) {
                            ObjectNode state = JSON.createObjectNode();
                            StageCheckpoints.putDouble(state, "last_loss", loss);
                            state.put("elapsed_s", elapsed0 + bar.elapsed());
                            ck.save(i, steps, saved, state, metrics);
                        }
                    }
                    ev = trainer.evaluate(eval.inOrder(s.training().batchSize()));
                    metrics.log("step", steps, "eval_accuracy", ev.accuracy(), "eval_chosen_score", ev.chosenScore(),
                            "eval_rejected_score", ev.rejectedScore(), "eval_pairs", ev.pairs(), "elapsed_s",
                            elapsed0 + bar.elapsed());
                }
                log.printf(Locale.ROOT, "step 2 eval: accuracy %.4f, chosen score %.4f, rejected score %.4f (%d pairs)%n",
                        ev.accuracy(), ev.chosenScore(), ev.rejectedScore(), ev.pairs());
                reportSkips(log, "step 2", steps, opt.skippedSteps(), opt.lastSkipReason());
                saveModel(run, opt.partitionedParameters(), rm, json, s.out(), s.model());
                log.printf("step 2 saved %s%n", s.out());
                ObjectNode result = JSON.createObjectNode();
                StageCheckpoints.putDouble(result, "accuracy", ev.accuracy());
                StageCheckpoints.putDouble(result, "chosen_score", ev.chosenScore());
                StageCheckpoints.putDouble(result, "rejected_score", ev.rejectedScore());
                result.put("pairs", ev.pairs());
                result.put("steps", steps);
                StageCheckpoints.putDouble(result, "last_loss", loss);
                result.put("skipped_steps", opt.skippedSteps());
                ck.complete(result);
                log.flush();
                return new RewardResult(ev, steps, loss, s.out(), opt.skippedSteps());
            }
        }
    }

    // ---- step 3 ----------------------------------------------------------------------------------------------------

    public static PpoResult ppo(PpoSettings s, PrintWriter log) {
        return ppo(s, RunOptions.NONE, log);
    }

    /** Step 3 with checkpoints, resume, NaN skipping and plots as {@code run} says. */
    public static PpoResult ppo(PpoSettings s, RunOptions run, PrintWriter log) {
        log = run.writes() ? log : new PrintWriter(java.io.Writer.nullWriter()); // rank 0 speaks
        int actorZero = s.actorOptions().zeroStage(run), criticZero = s.criticOptions().zeroStage(run);
        int askedActor = s.actorOptions().zeroStage(), askedCritic = s.criticOptions().zeroStage();
        dataParallel(log, "step 3", run, s.training(), askedActor == askedCritic ? "ZeRO stage " + askedActor
                        : "ZeRO stage " + askedActor + " for the actor, " + askedCritic + " for the critic",
                "--actor-zero-stage/--critic-zero-stage", askedActor + askedCritic > 0, actorZero == 3 || criticZero == 3);
        sameOnEveryRank(run, "step 3", settingsOf(s), "actor " + askedActor + ", critic " + askedCritic, s.actor(), s.critic());
        offloadNote(log, "step 3", run, s.actorOptions().offload() || s.criticOptions().offload());
        StageCheckpoints ck = new StageCheckpoints("step3", "step 3", run, settingsOf(s), s.metrics(), log,
                actorZero + criticZero > 0);
        Path actorOut = s.out().resolve("actor"), criticOut = s.out().resolve("critic");
        Path emaOut = s.enableEma() ? s.out().resolve("actor_ema") : null;
        JsonNode done = emaOut == null ? ck.finished(actorOut, criticOut) : ck.finished(actorOut, criticOut, emaOut);
        if (done != null)
            return new PpoResult(losses(done.path("last")), done.path("steps").asLong(), actorOut, criticOut, emaOut,
                    done.path("skipped_steps").asLong());
        Device dev = run.deviceOrCpu();
        DataSplit split = s.data().load();
        ConfigJson actorJson = ConfigJson.read(s.actor().resolve("config.json"));
        ConfigJson criticJson = ConfigJson.read(s.critic().resolve("config.json"));
        ModelConfig actorConfig = Models.config(actorJson), criticConfig = Models.config(criticJson);
        try (Tokenizer tok = Tokenizer.load(s.actor())) {
            TextEncoder enc = TextEncoder.dsChat(tok);
            int pad = enc.padId();
            PromptSamples prompts = PromptSamples.build(split.prompts(Phase.PPO, DataSplit.Part.TRAIN), enc,
                    s.maxPromptSeqLen());
            log.printf("step 3 data: prompts %s%n", prompts.skips().summary());
            requireRows("step 3", prompts.size(), s.data());
            Batches<LmBatch> unsup = null;
            if (s.unsupervisedDataset() != null) {
                TextBlocks blocks = TextBlocks.build(Dataset.load(s.unsupervisedDataset()).texts(), enc,
                        s.maxPromptSeqLen() + s.maxAnswerSeqLen());
                log.printf("step 3 unsupervised data: %d blocks; %s%n", blocks.size(), blocks.skips().summary());
                if (blocks.size() == 0)
                    throw new IllegalArgumentException("unsupervised dataset " + s.unsupervisedDataset()
                            + " gives no block of " + (s.maxPromptSeqLen() + s.maxAnswerSeqLen()) + " tokens");
                unsup = new Batches<>(blocks, s.training().batchSize(), true, s.data().seed(), run.rank(), run.world());
            }
            Batches<PromptBatch> batches = new Batches<>(prompts, s.training().batchSize(), true, s.data().seed(),
                    run.rank(), run.world());
            long steps = s.training().steps(batches.batchesPerEpoch());
            if (s.generationBatches() > steps)
                throw new IllegalArgumentException("--generation-batches " + s.generationBatches() + " exceeds the "
                        + steps + " prompt batches of step 3: no PPO step would run");
            if (steps % s.generationBatches() != 0)
                log.printf("step 3: the last %d prompt batches do not fill --generation-batches %d and are not "
                        + "trained on (as DS-Chat drops them)%n", steps % s.generationBatches(), s.generationBatches());

            CausalLM actor = CausalLM.of(actorConfig), ref = CausalLM.of(actorConfig);
            RewardModel critic = RewardModel.of(criticConfig), reward = RewardModel.of(criticConfig);
            // LoRA on the trained models only; the frozen reference and reward model stay plain
            int actorAdapters = s.actorOptions().lora(actorConfig).applyTo(actor);
            int criticAdapters = s.criticOptions().lora(criticConfig).applyTo(critic);
            if (actorAdapters + criticAdapters > 0)
                log.printf(Locale.ROOT, "step 3: LoRA on %d actor and %d critic layers%s%n", actorAdapters,
                        criticAdapters, s.actorOptions().onlyOptimizeLora() ? "; only the adapters train" : "");
            ParameterStore.Layout actorLayout = s.actorOptions().layout(run), criticLayout = s.criticOptions().layout(run);
            // --offload-reference-model: the two frozen models live and run on the CPU; only ids go there and only
            // [B, T] logprobs and [B] rewards come back (DS-Chat offloads the reference through ZeRO-Offload)
            Device frozenDev = s.offloadReferenceModel() ? Device.cpu() : dev;
            if (s.offloadReferenceModel() && dev.isCpu())
                log.println("step 3: --offload-reference-model has nothing to do: every model already runs on the CPU");
            // at ZeRO stage 3 each model is built partitioned (zero.Init): laid out, this rank's slices allocated,
            // its folder read a layer group at a time, so that none is ever whole on a device. The frozen ones are
            // laid out as the model trained beside them and partitioned with it, as DS-Chat does (ZeRO-3 inference)
            ShardedStore[] actorBuilt = {null}, criticBuilt = {null};
            ParameterStore actorStore = actorZero == 3
                    ? ParameterStore.layOut(actor, dev, DType.F32, 0, true, actorLayout)
                    : ParameterStore.allocate(actor, dev, DType.F32, 0, true, actorLayout);
            java.util.function.Consumer<String> actorLoaded = actorZero == 3 ? partitionedBuild(actorStore, run,
                    actorBuilt) : n -> {};
            readingFiles(run, () -> HfModel.loadWeights(actor, actorConfig.basePrefix(), s.actor(), Set.of(), actorLoaded));
            RlhfEngine.Frozen refModel = frozen(ref, actorConfig.basePrefix(), s.actor(), frozenDev, actorLayout,
                    actorZero, run);
            ParameterStore criticStore = criticZero == 3
                    ? ParameterStore.layOut(critic, dev, DType.F32, 0, true, criticLayout)
                    : ParameterStore.allocate(critic, dev, DType.F32, 0, true, criticLayout);
            java.util.function.Consumer<String> criticLoaded = criticZero == 3 ? partitionedBuild(criticStore, run,
                    criticBuilt) : n -> {};
            readingFiles(run, () -> HfModel.loadWeights(critic, criticConfig.basePrefix(), s.critic(), Set.of(),
                    criticLoaded));
            RlhfEngine.Frozen rewardModel = frozen(reward, criticConfig.basePrefix(), s.critic(), frozenDev,
                    criticLayout, criticZero, run);
            actor.base().setGradientCheckpointing(s.actorOptions().gradientCheckpointing());
            critic.base().setGradientCheckpointing(s.criticOptions().gradientCheckpointing());
            log.printf(Locale.ROOT, "step 3 (ppo): actor %s (%,d parameters%s), critic %s (%,d%s), %d prompts, %d steps, "
                    + "on %s (reference and reward model on %s)%n", s.actor(), actorStore.parameterCount(),
                    builtNote(actorZero, run), s.critic(), criticStore.parameterCount(), builtNote(criticZero, run),
                    prompts.size(), steps, dev, frozenDev);
            GenerationConfig gen = new GenerationConfig(s.maxAnswerSeqLen(), true, s.temperature(), 0, s.topP(), 1.0,
                    new int[] {tok.eosId()}, pad, false, s.data().seed());
            PpoConfig ppo = PpoConfig.dsChat(gen).withKlCtl(s.klCtl()).withPpoEpochs(s.ppoEpochs())
                    .withEma(s.enableEma() ? 0.992 : 0.0);
            ppo = new PpoConfig(ppo.klCtl(), ppo.clipRewardValue(), ppo.cliprange(), ppo.cliprangeValue(), ppo.gamma(),
                    ppo.lam(), ppo.ppoEpochs(), gen, s.unsupCoef(), ppo.emaBeta(), ppo.positionsFromMask());
            LrSchedule schedule = s.training().schedule(steps);
            PpoTrainer.Losses last;
            long skippedSteps;
            Optimized actorOptimizer = optimized(actorBuilt, actorStore, new Optimized.Settings(s.actorLr(),
                    s.actorWeightDecay(), schedule, 1.0, s.actorOptions().loraLr()), run, actorZero,
                    s.actorOptions().offload(run));
            Optimized criticOptimizer = optimized(criticBuilt, criticStore, new Optimized.Settings(s.criticLr(),
                    s.criticWeightDecay(), schedule, 1.0, s.criticOptions().loraLr()), run, criticZero,
                    s.criticOptions().offload(run));
            // the EMA is a model of the actor's config and layout whose weights are the average itself: its flat
            // store, or at ZeRO stage 3 its partition (then it is 1/N per rank, and saves a group at a time)
            CausalLM ema = s.enableEma() ? CausalLM.of(actorConfig) : null;
            if (ema != null) // the shadow mirrors the actor's flat layout, adapters included
                new Lora.Config(s.actorOptions().loraDim(), s.actorOptions().loraFilter(actorConfig), false).applyTo(ema);
            ParameterStore emaStore = ema == null ? null : actorZero == 3
                    ? ParameterStore.layOut(ema, dev, DType.F32, 0, false, actorLayout)
                    : ParameterStore.allocate(ema, dev, DType.F32, 0, false, actorLayout);
            ShardedStore emaShards = ema != null && actorZero == 3 ? new ShardedStore(emaStore, run.comm(), 3) : null;
            try (RlhfEngine engine = new RlhfEngine(actor, actorOptimizer, ref, refModel, critic, criticOptimizer,
                    reward, rewardModel, ema == null ? null : new io.github.rlhf4j.optim.Ema(
                            actorOptimizer.emaSource(), emaShards != null ? emaShards.partitionData() : emaStore.data()));
                 ParameterStore ignoredEmaStore = emaStore;
                 ShardedStore ignoredEmaShards = emaShards) {
                Optimized actorOpt = engine.actorOptimizer(), criticOpt = engine.criticOptimizer();
                engine.hybridEngine(s.hybridEngine());
                if (run.world() > 1)
                    log.printf("step 3: generation: %s; %s%n", actorZero == 3 ? "ZeRO-3, hybrid engine "
                            + s.hybridEngine().name().toLowerCase(Locale.ROOT) + " (each phase's mode is logged when it "
                            + "changes)" : "parameters whole on every rank", engine.frozenMode());
                actorOpt.skipNonFiniteSteps(run.skipNonFinite());
                criticOpt.skipNonFiniteSteps(run.skipNonFinite());
                PpoTrainer trainer = new PpoTrainer(engine, ppo);
                Batches<LmBatch> unsupBatches = unsup;
                StageCheckpoints.Saved saved = new StageCheckpoints.Saved() {
                    @Override
                    public void write(Checkpoint.Writer w, ObjectNode state) {
                        w.model("actor", actor, actorJson, s.actor(), actorOpt);
                        w.model("critic", critic, criticJson, s.critic(), criticOpt);
                        if (ema != null) w.model("actor_ema", ema, actorJson, s.actor(), emaShards);
                        w.optimizer("actor", actorOpt);
                        w.optimizer("critic", criticOpt);
                        saveOptimizer(state, "actor", actorOpt);
                        saveOptimizer(state, "critic", criticOpt);
                        StageCheckpoints.putPosition(state, "data_position", batches.position());
                        if (unsupBatches != null)
                            StageCheckpoints.putPosition(state, "unsupervised_position", unsupBatches.position());
                        ObjectNode dropout = state.putObject("dropout_seeds");
                        dropout.put("actor", actor.base().dropoutSeed());
                        dropout.put("critic", critic.base().dropoutSeed());
                        PpoTrainer.GenerationState g = trainer.generationState();
                        ObjectNode gs = state.putObject("generation");
                        gs.put("sampling_seed", gen.seed());
                        gs.put("experiences", g.experiences());
                        gs.put("last_rows", g.lastRows());
                        gs.put("last_columns", g.lastColumns());
                        gs.put("last_prompt_length", g.lastPromptLength());
                        if (g.lastSequences() != null)
                            w.ints("last_sequences", g.lastSequences(), g.lastRows(), g.lastColumns());
                    }

                    @Override
                    public void verify(Checkpoint c) {
                        c.verifyModel("actor", actor);
                        c.verifyModel("critic", critic);
                        if (ema != null) c.verifyModel("actor_ema", ema);
                        c.verifyOptimizer("actor", actorOpt);
                        c.verifyOptimizer("critic", criticOpt);
                        StageCheckpoints.getPosition(c, "data_position");
                        if (unsupBatches != null) StageCheckpoints.getPosition(c, "unsupervised_position");
                        if (!c.state().path("generation").path("experiences").isIntegralNumber())
                            throw new Checkpoint.DamagedException(c.dir().resolve(Checkpoint.MANIFEST)
                                    + ": no generation state");
                        if (c.state().path("generation").path("experiences").asLong() > 0
                                && c.ints("last_sequences") == null)
                            throw new Checkpoint.DamagedException(c.dir() + ": no last_sequences in state.safetensors");
                    }

                    @Override
                    public void restore(Checkpoint c) {
                        c.loadModel("actor", actor, actorOpt);
                        c.loadModel("critic", critic, criticOpt);
                        if (ema != null) c.loadModel("actor_ema", ema, emaShards); // the average itself
                        c.loadOptimizer("actor", actorOpt);
                        c.loadOptimizer("critic", criticOpt);
                        batches.seek(StageCheckpoints.getPosition(c, "data_position"));
                        if (unsupBatches != null)
                            unsupBatches.seek(StageCheckpoints.getPosition(c, "unsupervised_position"));
                        actor.base().setDropoutSeed(c.state().path("dropout_seeds").path("actor").asLong());
                        critic.base().setDropoutSeed(c.state().path("dropout_seeds").path("critic").asLong());
                        JsonNode g = c.state().get("generation");
                        int[] seq = c.ints("last_sequences");
                        trainer.restoreGenerationState(new PpoTrainer.GenerationState(g.get("experiences").asLong(),
                                seq, g.path("last_rows").asInt(), g.path("last_columns").asInt(),
                                g.path("last_prompt_length").asInt()));
                    }
                };
                Checkpoint from = ck.resume(saved);
                long first = from == null ? 1 : from.step() + 1;
                double elapsed0 = from == null ? 0 : StageCheckpoints.getDouble(from.state(), "elapsed_s");
                last = from == null ? null : losses(from.state().path("last"));
                try (MetricsLog metrics = ck.metrics(from);
                     Progress bar = Progress.start("step3", steps, first - 1, log)) {
                    // DS-Chat's MiniDataset: generation_batches experiences are gathered, then each PPO epoch
                    // trains on every one of them (with its mixture batch) and reshuffles them. A checkpoint is only
                    // taken with none pending, so it never has to carry experiences.
                    int g = s.generationBatches();
                    List<Experience> pending = new ArrayList<>();
                    List<LmBatch> pendingUnsup = new ArrayList<>();
                    boolean saveDue = false;
                    String generationMode = null;
                    long t0 = System.nanoTime(), tokens = 0;
                    try {
                        for (long i = first; i <= steps; i++) {
                            if (pending.isEmpty()) {
                                t0 = System.nanoTime();
                                tokens = 0;
                            }
                            double actorLr = actorOpt.lr(), criticLr = criticOpt.lr();
                            long skipped = actorOpt.skippedSteps() + criticOpt.skippedSteps();
                            pendingUnsup.add(unsup != null ? unsup.next() : null);
                            Experience exp = trainer.generateExperience(batches.next());
                            if (actorZero == 3 && !engine.generationMode().equals(generationMode))
                                log.printf("step 3: generation: %s%n", generationMode = engine.generationMode());
                            pending.add(exp);
                            tokens += tokens(exp.attentionMask().toIntArray());
                            if (pending.size() < g) {
                                bar.step(i, String.format(Locale.ROOT, "generated %d of %d experience batches",
                                        pending.size(), g));
                                saveDue |= ck.due(i, steps);
                                if (i == steps) { // the leftover batches are dropped; the stage still ends saved
                                    for (Experience x : pending) x.close();
                                    pending.clear();
                                    pendingUnsup.clear();
                                    if (saveDue) {
                                        ObjectNode state = JSON.createObjectNode();
                                        state.set("last", losses(last));
                                        state.put("elapsed_s", elapsed0 + bar.elapsed());
                                        ck.save(i, steps, saved, state, metrics);
                                    }
                                }
                                continue;
                            }
                            double unsupLoss = Double.NaN;
                            java.util.Random shuffle = new java.util.Random(s.data().seed() * 31 + i);
                            for (int e = 0; e < s.ppoEpochs(); e++) {
                                for (int j = 0; j < pending.size(); j++) {
                                    last = trainer.trainRlhf(pending.get(j));
                                    if (pendingUnsup.get(j) != null)
                                        unsupLoss = trainer.trainUnsupervised(pendingUnsup.get(j));
                                    trainer.updateEma();
                                }
                                java.util.Collections.shuffle(pending, shuffle);
                                java.util.Collections.shuffle(pendingUnsup, shuffle);
                            }
                            for (Experience x : pending) x.close();
                            pending.clear();
                            pendingUnsup.clear();
                            double[] m = run.mean(last.actorLoss(), last.criticLoss(), last.averageReward(), last.kl(),
                                    last.answerLength(), unsupLoss);
                            last = new PpoTrainer.Losses(m[0], m[1], m[2], m[3], m[4], last.actorGradNorm(),
                                    last.criticGradNorm());
                            unsupLoss = m[5];
                            double tps = tokens / ((System.nanoTime() - t0) / 1e9);
                            metrics.log(line(skips(log, "step 3", i, skipped, actorOpt, criticOpt), "step", i,
                                    "actor_loss", last.actorLoss(), "critic_loss", last.criticLoss(), "reward",
                                    last.averageReward(), "kl", last.kl(), "answer_length", last.answerLength(),
                                    "unsup_loss", unsupLoss, "actor_lr", actorLr, "critic_lr", criticLr,
                                    "tokens_per_s", tps, "elapsed_s", elapsed0 + bar.elapsed()));
                            bar.step(i, String.format(Locale.ROOT,
                                    "reward %.3f kl %.4f actor %.4f critic %.4f len %.1f %.0f tok/s",
                                    last.averageReward(), last.kl(), last.actorLoss(), last.criticLoss(),
                                    last.answerLength(), tps));
                            if (saveDue || ck.due(i, steps)) {
                                saveDue = false;
                                ObjectNode state = JSON.createObjectNode();
                                state.set("last", losses(last));
                                state.put("elapsed_s", elapsed0 + bar.elapsed());
                                ck.save(i, steps, saved, state, metrics);
                            }
                        }
                    } finally {
                        for (Experience x : pending) x.close();
                    }
                }
                skippedSteps = actorOpt.skippedSteps() + criticOpt.skippedSteps();
                reportSkips(log, "step 3", steps, skippedSteps, criticOpt.lastSkipReason() != null
                        ? criticOpt.lastSkipReason() : actorOpt.lastSkipReason());
                // at ZeRO stage 3 every rank walks each model's groups with rank 0's save (collectives); each save
                // agreed on by itself: a failed one stops every rank before the next one's gathers
                saveModel(run, actorOpt.partitionedParameters(), actor, actorJson, actorOut, s.actor());
                saveModel(run, criticOpt.partitionedParameters(), critic, criticJson, criticOut, s.critic());
                if (emaOut != null) saveModel(run, emaShards, ema, actorJson, emaOut, s.actor());
            }
            log.printf("step 3 saved %s%n", s.out());
            ObjectNode result = JSON.createObjectNode();
            result.set("last", losses(last));
            result.put("steps", steps);
            result.put("skipped_steps", skippedSteps);
            ck.complete(result);
            log.flush();
            return new PpoResult(last, steps, actorOut, criticOut, emaOut, skippedSteps);
        }
    }

    /**
     * The stage's first log line: the world size and ZeRO stage ({@code zero}, as the flags {@code flags} set it);
     * in one process, a ZeRO stage above 0 ({@code asked}) is accepted and said to have nothing to partition.
     */
    private static void dataParallel(PrintWriter log, String stage, RunOptions run, Training t, String zero,
                                     String flags, boolean asked, boolean stageThree) {
        Device dev = run.deviceOrCpu();
        if (run.world() > 1 && !(run.comm().reaches(dev) && run.comm().reaches(Device.cpu())))
            throw new IllegalArgumentException(stage + ": data-parallel training on " + dev + " needs a communicator "
                    + "that moves its tensors and host values; " + run.comm() + " does not: pass "
                    + "Communicator.forDevice(comm, device) (the command line does)");
        if (run.world() > 1)
            log.printf(Locale.ROOT, "%s: data parallel over %d ranks (%s): each takes %d rows of a global batch of "
                    + "%d; rank 0 writes the logs, %s%s%n", stage, run.world(), zero, t.batchSize(),
                    t.batchSize() * run.world(), asked ? "models and checkpoints, each rank its optimizer partition "
                            + "into every checkpoint" : "checkpoints and models",
                    (run.comm() instanceof io.github.rlhf4j.dist.DeviceCommunicator dc ? "; " + dc.transport() : "")
                            + (!stageThree ? "" : io.github.rlhf4j.dist.ShardedStore.prefetches(run.deviceOrCpu())
                                    ? "; stage 3 starts the next layer's gather while a layer computes"
                                    : "; stage 3 gathers each layer as it runs (no prefetch on the CPU, where the "
                                            + "copies would take the compute's cores; -D"
                                            + io.github.rlhf4j.dist.ShardedStore.PREFETCH_PROPERTY + "=true)"));
        else if (asked)
            log.printf("%s: one process: %s has nothing to partition across ranks; it trains as ZeRO stage 0%n",
                    stage, flags);
        log.flush();
    }

    /** Says where the optimizer steps when {@code --offload} was given. */
    private static void offloadNote(PrintWriter log, String stage, RunOptions run, boolean asked) {
        if (!asked) return;
        if (run.deviceOrCpu().isCpu())
            log.printf("%s: --offload: the model trains on the CPU, where its optimizer state is already; nothing to "
                    + "move%n", stage);
        else
            log.printf("%s: --offload: the AdamW state (fp32 moments and master weights) and its step live in host "
                    + "memory, on the CPU backend's threads; %s keeps only weights, gradients and activations%n",
                    stage, run.deviceOrCpu());
        log.flush();
    }

    /**
     * Data parallel: stops every rank, naming the ranks that differ, when a rank was started with other settings
     * (another model, seed, data or rate), another ZeRO stage, or a model directory whose config.json differs (another
     * model at the same path on another node); they would otherwise train apart, or wait on each other forever.
     */
    private static void sameOnEveryRank(RunOptions run, String stage, Map<String, String> settings, String zero,
                                        Path... models) {
        if (run.world() == 1) return;
        Map<String, String> all = new LinkedHashMap<>(settings);
        all.put("ZeRO stage", zero);
        for (Path m : models) {
            String key = "config.json of " + canonical(m);
            try {
                all.put(key, Files.readString(m.resolve("config.json")));
            } catch (java.io.IOException e) {
                all.put(key, "unreadable: " + e.getMessage());
            }
        }
        try {
            // the names first: every rank then makes the same number of comparisons
            run.comm().checkSame("list of settings (" + stage + ")", String.join("\n", all.keySet()));
            for (var e : all.entrySet()) run.comm().checkSame(e.getKey() + " (" + stage + ")", e.getValue());
        } catch (IllegalStateException e) {
            throw new IllegalArgumentException(e.getMessage(), e);
        }
    }

    // ---- checkpoint and metrics helpers ----------------------------------------------------------------------------

    private static void saveOptimizer(ObjectNode state, String name, Optimized opt) {
        ObjectNode o = state.withObjectProperty("optimizers").putObject(name);
        o.put("steps", opt.steps());
        o.put("skipped_steps", opt.skippedSteps());
        o.put("lr_schedule_step", opt.steps()); // the schedule is a function of the steps taken
    }

    private static ObjectNode losses(PpoTrainer.Losses l) {
        ObjectNode o = JSON.createObjectNode();
        if (l == null) return o;
        StageCheckpoints.putDouble(o, "actor_loss", l.actorLoss());
        StageCheckpoints.putDouble(o, "critic_loss", l.criticLoss());
        StageCheckpoints.putDouble(o, "reward", l.averageReward());
        StageCheckpoints.putDouble(o, "kl", l.kl());
        StageCheckpoints.putDouble(o, "answer_length", l.answerLength());
        StageCheckpoints.putDouble(o, "actor_grad_norm", l.actorGradNorm());
        StageCheckpoints.putDouble(o, "critic_grad_norm", l.criticGradNorm());
        return o;
    }

    private static PpoTrainer.Losses losses(JsonNode o) {
        if (o == null || !o.has("actor_loss")) return null;
        return new PpoTrainer.Losses(StageCheckpoints.getDouble(o, "actor_loss"),
                StageCheckpoints.getDouble(o, "critic_loss"), StageCheckpoints.getDouble(o, "reward"),
                StageCheckpoints.getDouble(o, "kl"), StageCheckpoints.getDouble(o, "answer_length"),
                StageCheckpoints.getDouble(o, "actor_grad_norm"), StageCheckpoints.getDouble(o, "critic_grad_norm"));
    }

    /**
     * The metrics fields of a step that skipped an optimizer step (the running count and why), logged as a warning
     * too; none when it skipped nothing.
     */
    private static Object[] skips(PrintWriter log, String stage, long step, long before, Optimized... opts) {
        long now = 0;
        String why = null;
        for (Optimized o : opts) now += o.skippedSteps();
        if (now == before) return new Object[0];
        for (Optimized o : opts) if (o.lastSkipReason() != null) why = o.lastSkipReason();
        log.printf("warning: %s step %d: %s%n", stage, step, why);
        return new Object[] {"skipped", why, "skipped_steps", now};
    }

    private static Object[] line(Object[] extra, Object... keysAndValues) {
        Object[] all = Arrays.copyOf(keysAndValues, keysAndValues.length + extra.length);
        System.arraycopy(extra, 0, all, keysAndValues.length, extra.length);
        return all;
    }

    private static void reportSkips(PrintWriter log, String stage, long steps, long skipped, String lastReason) {
        if (skipped == 0) return;
        log.printf("%s: %d optimizer step(s) of %d skipped for a NaN or Inf (--skip-nonfinite-steps); the last: %s%n",
                stage, skipped, steps, lastReason);
    }

    // ---- evaluation on held-out prompts --------------------------------------------------------------------------

    /** Greedy answers to held-out prompts, scored by a reward model and by a checker. */
    public record PromptEvaluation(double reward, double checkerAccuracy, int prompts) {}

    /**
     * Answers {@code prompts} greedily (up to {@code maxAnswer} tokens) with {@code actor} and reports the mean end
     * score of {@code reward} (scored at the positions the answers were generated at) and the fraction of answers
     * {@code checker(promptText, answerText)} accepts (null: NaN).
     */
    public static PromptEvaluation evaluatePrompts(CausalLM actor, RewardModel reward, Tokenizer tok,
                                                   PromptSamples prompts, int maxAnswer, int pad,
                                                   BiPredicate<String, String> checker) {
        return evaluatePrompts(actor, reward, tok, prompts, GenerationConfig.greedy(maxAnswer, tok.eosId(), pad),
                checker);
    }

    /** {@link #evaluatePrompts} with the answers generated as {@code gen} says (sampled, for instance). */
    public static PromptEvaluation evaluatePrompts(CausalLM actor, RewardModel reward, Tokenizer tok,
                                                   PromptSamples prompts, GenerationConfig gen,
                                                   BiPredicate<String, String> checker) {
        actor.train(false);
        reward.train(false);
        int n = 0, right = 0, pad = gen.padTokenId();
        double sum = 0;
        for (PromptBatch b : prompts.inOrder(64)) {
            int p = b.columns();
            int[][] ragged = new int[b.rows()][];
            for (int i = 0; i < b.rows(); i++) {
                int off = 0;
                while (b.attentionMask()[i * p + off] == 0) off++;
                ragged[i] = Arrays.copyOfRange(b.inputIds(), i * p + off, (i + 1) * p);
            }
            Generator.Result r = new Generator(actor).generate(ragged, gen, null);
            int cols = r.sequences()[0].length;
            int[] seq = new int[b.rows() * cols];
            for (int i = 0; i < b.rows(); i++) System.arraycopy(r.sequences()[i], 0, seq, i * cols, cols);
            int[] mask = new int[seq.length];
            for (int i = 0; i < seq.length; i++) mask[i] = seq[i] != pad ? 1 : 0;
            try (Autograd.NoGrad ignored = Autograd.noGrad(); Scope s = Scope.open()) {
                Tensor ids = Tensor.ofInts(seq, b.rows(), cols);
                Tensor pos = Tensor.ofInts(Transformer.positionsFromMask(mask, b.rows(), cols), b.rows(), cols);
                for (double x : RewardModelMath.endScores(reward.scores(ids, Tensor.ofInts(mask, b.rows(), cols), pos),
                        ids, pad, r.promptLength()).toDoubleArray()) sum += x;
            }
            for (int i = 0; i < b.rows(); i++) {
                if (checker != null && checker.test(tok.decode(ragged[i], true), tok.decode(r.tokens()[i], true)))
                    right++;
                n++;
            }
        }
        return n == 0 ? new PromptEvaluation(Double.NaN, Double.NaN, 0)
                : new PromptEvaluation(sum / n, checker == null ? Double.NaN : (double) right / n, n);
    }

    /**
     * {@link #evaluatePrompts} on saved models: an actor directory and a reward-model directory; with
     * {@code samples > 0}, the mean over that many temperature-{@code temperature} samples per prompt (seeds
     * {@code seed}, {@code seed + 1}, ...) instead of the greedy answer.
     */
    public static PromptEvaluation evaluatePrompts(Path actorDir, Path rewardDir, PromptSamples prompts, int maxAnswer,
                                                   int samples, double temperature, long seed,
                                                   BiPredicate<String, String> checker) {
        Device dev = Device.cpu();
        ModelConfig rc = Models.config(rewardDir);
        RewardModel reward = RewardModel.of(rc);
        try (Tokenizer tok = Tokenizer.load(actorDir);
             HfModel actor = HfModel.load(actorDir, dev, DType.F32, false);
             ParameterStore rs = ParameterStore.allocate(reward, dev, DType.F32, 0, false)) {
            HfModel.loadWeights(reward, rc.basePrefix(), rewardDir, Set.of());
            int pad = TextEncoder.dsChat(tok).padId();
            if (samples <= 0) return evaluatePrompts(actor.model(), reward, tok, prompts, maxAnswer, pad, checker);
            double score = 0, accuracy = 0;
            int n = 0;
            for (int k = 0; k < samples; k++) {
                PromptEvaluation e = evaluatePrompts(actor.model(), reward, tok, prompts, GenerationConfig.sampling(
                        maxAnswer, temperature, 0, 1.0, tok.eosId(), pad, seed + k), checker);
                score += e.reward() / samples;
                accuracy += e.checkerAccuracy() / samples;
                n = e.prompts();
            }
            return new PromptEvaluation(score, accuracy, n);
        }
    }

    private static int tokens(int[] mask) {
        int n = 0;
        for (int m : mask) n += m;
        return n;
    }

    private static void requireRows(String step, int n, Data data) {
        if (n == 0)
            throw new IllegalArgumentException(step + " has no usable rows in " + data.paths() + " with --data-split "
                    + data.split() + " (see the data line above)");
    }

    static boolean exists(Path dir) {
        return Files.isRegularFile(dir.resolve("config.json"));
    }
}
