package io.github.rlhf4j.cli;

import io.github.rlhf4j.dist.Communicator;
import io.github.rlhf4j.rlhf.Stages;
import io.github.rlhf4j.runtime.Backend;
import io.github.rlhf4j.runtime.Device;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import picocli.CommandLine;
import picocli.CommandLine.Option;

/** The flags that {@code sft}, {@code reward}, {@code ppo} and {@code train} share, DeepSpeed-Chat's in kebab case. */
final class StageOptions {
    private StageOptions() {}

    /** Which data, split how, cached where; the seed; where the outputs go. */
    static final class DataOptions {
        @Option(names = "--data-path", arity = "1..*", paramLabel = "PATH",
                description = "Datasets: JSON Lines (.jsonl, .jsonl.gz) or Parquet files or directories, rm-static "
                        + "(prompt, response, chosen, rejected) or hh-rlhf (chosen, rejected) rows. Several are blended.")
        List<Path> dataPath;

        @Option(names = "--data-split", defaultValue = "2,4,4", paramLabel = "A,B,C",
                description = "Shares of each dataset for steps 1, 2 and 3 (default: ${DEFAULT-VALUE}).")
        String dataSplit;

        @Option(names = "--data-output-path", paramLabel = "DIR",
                description = "Where the split indices are cached (default: OUTPUT_DIR/data-cache).")
        Path dataOutputPath;

        @Option(names = "--seed", defaultValue = "1234", paramLabel = "N",
                description = "Seed of the data split, the shuffles, initialisation and sampling (default: ${DEFAULT-VALUE}).")
        long seed;

        @Option(names = "--output-dir", defaultValue = "output", paramLabel = "DIR",
                description = "Root of the outputs: actor-models/, reward-models/, step3-models/, logs/ "
                        + "(default: ${DEFAULT-VALUE}).")
        Path outputDir;

        Stages.Data data(CommandLine cmd) {
            if (dataPath == null || dataPath.isEmpty())
                throw new CommandLine.ParameterException(cmd, "Missing required option: --data-path (one or more "
                        + "datasets; `bin/rlhf4j train` without model flags runs the embedded demo instead)");
            for (Path p : dataPath)
                if (!Files.exists(p))
                    throw new CommandLine.ParameterException(cmd, "--data-path " + p + ": no such file or directory");
            return new Stages.Data(dataPath, dataSplit, dataOutputPath != null ? dataOutputPath
                    : outputDir.resolve("data-cache"), seed);
        }
    }

    /** Batch, epochs, step cap, schedule. Defaults are DS-Chat's main.py defaults, which differ by step. */
    static final class TrainingOptions {
        @Option(names = "--per-device-train-batch-size", paramLabel = "N",
                description = "Batch size (default: 16).")
        Integer batch;

        @Option(names = "--num-train-epochs", paramLabel = "N", description = "Epochs over the step's rows (default: 1).")
        Integer epochs;

        @Option(names = "--max-steps", defaultValue = "0", paramLabel = "N",
                description = "Stop each stage after N optimizer steps (default: no cap).")
        long maxSteps;

        @Option(names = "--lr-scheduler-type", paramLabel = "NAME",
                description = "linear, cosine, constant or constant_with_warmup (default: cosine).")
        String scheduler;

        @Option(names = "--num-warmup-steps", paramLabel = "N", description = "Warm-up steps of the schedule "
                + "(default: 0 in steps 1 and 2, 100 in step 3).")
        Integer warmup;

        Stages.Training training(int defaultWarmup) {
            return new Stages.Training(batch != null ? batch : 16, epochs != null ? epochs : 1, maxSteps,
                    scheduler != null ? scheduler : "cosine", warmup != null ? warmup : defaultWarmup);
        }
    }

    /** Checkpoints, resume and NaN handling; HF Trainer's save_steps / save_total_limit / resume_from_checkpoint. */
    static final class RunOptions {
        @Option(names = "--checkpoint-every", defaultValue = "500", paramLabel = "N",
                description = "Write a checkpoint every N optimizer steps of a stage, and always at its end, to "
                        + "OUTPUT_DIR/checkpoints/stepK/checkpoint-STEP: weights, optimizer state, schedule, RNG "
                        + "counters, data position, metrics (0: only at the end; default: ${DEFAULT-VALUE}).")
        long checkpointEvery;

        @Option(names = "--save-total-limit", defaultValue = "2", paramLabel = "N",
                description = "Keep the newest N checkpoints of each stage (0: all; default: ${DEFAULT-VALUE}).")
        int saveTotalLimit;

        @Option(names = "--resume", description = "Continue from the newest complete checkpoint of the stage in "
                + "progress; stages that finished are skipped. Same flags as the interrupted run, same result.")
        boolean resume;

        @Option(names = "--skip-nonfinite-steps", description = "Skip an optimizer step whose loss or gradient is NaN "
                + "or Inf (counted, logged in the metrics and the summary) instead of stopping the run.")
        boolean skipNonFinite;

        @Option(names = "--device", defaultValue = "auto", paramLabel = "DEV",
                description = "cpu, cuda or cuda:N; auto: the first GPU when this build has the CUDA backend and "
                        + "a GPU is visible, else the CPU (default: ${DEFAULT-VALUE}).")
        String device;

        private Communicator opened;

        /** Leaves the ranks' world (MPI_Finalize: mpirun counts a rank that exits without it as failed). */
        void close() {
            if (opened != null) opened.close();
            opened = null;
        }

        Stages.RunOptions options(CommandLine cmd, Path outputDir) {
            if (checkpointEvery < 0)
                throw new CommandLine.ParameterException(cmd, "--checkpoint-every " + checkpointEvery + " must be >= 0");
            if (saveTotalLimit < 0)
                throw new CommandLine.ParameterException(cmd, "--save-total-limit " + saveTotalLimit + " must be >= 0");
            // a rank started by mpirun/srun trains data parallel with the others; alone, a single process
            Communicator comm = Communicator.fromEnvironment();
            opened = comm;
            Device d;
            try {
                d = device.equalsIgnoreCase("auto") ? autoDevice(comm.localRank()) : Device.parse(device);
            } catch (RuntimeException e) {
                throw new CommandLine.ParameterException(cmd, "--device " + device + ": " + e.getMessage());
            }
            // a GPU run's ranks move device tensors over NCCL (or staged through the host) and host values over MPI
            comm = Communicator.forDevice(comm, d);
            opened = comm;
            return Stages.RunOptions.under(outputDir, checkpointEvery, saveTotalLimit, resume, skipNonFinite).on(d)
                    .over(comm);
        }

        /**
         * The GPU of this rank ({@code localRank} among the node's ranks) if the CUDA backend is in this build and
         * sees it, else the CPU.
         */
        static Device autoDevice(int localRank) {
            try {
                if (Backend.cuda().map(b -> b.deviceCount() > localRank).orElse(false)) return Device.cuda(localRank);
            } catch (RuntimeException | LinkageError e) {
                // a CUDA library that cannot load (no driver) means no GPU here
            }
            return Device.cpu();
        }
    }

    /** What ZeRO's stages partition, for the help of the ZeRO flags. */
    static final String ZERO_STAGES = "0: every rank holds and updates everything (plain data parallel); 1: the AdamW "
            + "state is partitioned across the ranks; 2: the gradients too; 3: the parameters too. Checkpoints then "
            + "hold one optimizer partition per rank (resume with as many ranks, or run `rlhf4j consolidate` first). "
            + "One process has nothing to partition";

    /** The help of {@code --offload}. */
    static final String OFFLOAD = "ZeRO-Offload (DeepSpeed-Chat's --offload): keep the AdamW state (fp32 moments "
            + "and master weights) in host memory and run its step on the CPU backend's threads, while the model "
            + "computes on the GPU, which then holds no optimizer state. Combines with --zero-stage (each rank "
            + "offloads its partition). On the CPU the state is in host memory already and it changes nothing.";

    /** {@code n} if it is a ZeRO stage, else a usage error naming {@code flag}. */
    static int zeroStage(CommandLine cmd, String flag, int n) {
        if (n < 0 || n > 3)
            throw new CommandLine.ParameterException(cmd, flag + " " + n + ": the ZeRO stages are 0 (nothing "
                    + "partitioned), 1 (optimizer state), 2 (optimizer state and gradients) and 3 (optimizer state, "
                    + "gradients and parameters)");
        return n;
    }

    /**
     * How one model trains beyond its optimizer, DS-Chat's flags: LoRA, gradient checkpointing and the ZeRO stage.
     * Steps 1 and 2 take them bare ({@code --lora-dim}, {@code --zero-stage}); step 3 per model
     * ({@code --actor-lora-dim}, {@code --critic-zero-stage}).
     */
    static Stages.ModelOptions modelOptions(CommandLine cmd, String prefix, int loraDim, String loraModuleName,
                                            double loraLr, boolean onlyOptimizeLora, boolean gradientCheckpointing,
                                            int zeroStage, boolean offload) {
        zeroStage(cmd, "--" + prefix + "zero-stage", zeroStage);
        try {
            return new Stages.ModelOptions(loraDim, loraModuleName, loraLr, onlyOptimizeLora && loraDim > 0,
                    gradientCheckpointing, zeroStage, offload);
        } catch (IllegalArgumentException e) {
            throw new CommandLine.ParameterException(cmd, "--" + prefix + "lora-dim " + loraDim + ": " + e.getMessage());
        }
    }

    /** Steps 1 and 2's own LoRA and checkpointing flags. */
    static final class ModelFlags {
        @Option(names = "--lora-dim", defaultValue = "0", paramLabel = "R",
                description = "Rank of LoRA adapters on the linear layers that match --lora-module-name "
                        + "(0: no LoRA; default: ${DEFAULT-VALUE}).")
        int loraDim;

        @Option(names = "--lora-module-name", paramLabel = "TEXT",
                description = "LoRA goes on linear layers whose name contains TEXT (default: the layer stack of the "
                        + "model's family: decoder.layers. for OPT, h. for GPT-2 and GPT-Neo, layers. for Llama/Qwen2).")
        String loraModuleName;

        @Option(names = "--lora-learning-rate", defaultValue = "5e-4", paramLabel = "LR",
                description = "Learning rate of the LoRA adapters (default: ${DEFAULT-VALUE}).")
        double loraLr;

        @Option(names = "--only-optimize-lora", description = "Train the LoRA adapters alone; everything else frozen.")
        boolean onlyOptimizeLora;

        @Option(names = "--gradient-checkpointing", description = "Recompute each layer's activations in the backward "
                + "pass instead of keeping them: much less memory for about one more forward pass.")
        boolean gradientCheckpointing;

        @Option(names = "--zero-stage", defaultValue = "0", paramLabel = "N",
                description = "ZeRO stage when several ranks train (DeepSpeed-Chat's --zero_stage). " + ZERO_STAGES
                        + " (default: ${DEFAULT-VALUE}).")
        int zeroStage;

        @Option(names = "--offload", description = OFFLOAD)
        boolean offload;

        Stages.ModelOptions options(CommandLine cmd) {
            if (onlyOptimizeLora && loraDim == 0)
                throw new CommandLine.ParameterException(cmd, "--only-optimize-lora needs --lora-dim > 0");
            return modelOptions(cmd, "", loraDim, loraModuleName, loraLr, onlyOptimizeLora, gradientCheckpointing,
                    zeroStage, offload);
        }
    }

    /** A model directory that must exist (config.json inside). */
    static Path modelDir(CommandLine cmd, String flag, Path dir) {
        if (dir == null) throw new CommandLine.ParameterException(cmd, "Missing required option: " + flag);
        if (!Files.isRegularFile(dir.resolve("config.json")))
            throw new CommandLine.ParameterException(cmd, flag + " " + dir + ": not a model directory (no config.json)");
        return dir;
    }

    /** The output name of a model directory: its last path element. */
    static String name(Path dir) {
        Path f = dir.toAbsolutePath().normalize().getFileName();
        return f == null ? "model" : f.toString();
    }
}
