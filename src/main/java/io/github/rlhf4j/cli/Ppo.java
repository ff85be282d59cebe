package io.github.rlhf4j.cli;

import io.github.rlhf4j.rlhf.PpoMath;
import io.github.rlhf4j.rlhf.RlhfEngine;
import io.github.rlhf4j.rlhf.Stages;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code rlhf4j ppo}: DeepSpeed-Chat's step 3. */
@Command(name = "ppo", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Step 3, PPO: the actor (from step 1) answers the step-3 prompts; a frozen reference (the same "
                + "weights), the critic and the frozen reward model (both from step 2) score the answers; clipped "
                + "actor and value losses, KL-penalised rewards, GAE. Writes OUTPUT_DIR/step3-models/NAME/{actor,"
                + "critic[,actor_ema]} and OUTPUT_DIR/logs/step3.jsonl."},
        footer = {"", "Examples:",
                "  bin/rlhf4j ppo --data-path data/hh-rlhf --actor-model-name-or-path output/actor-models/opt-1.3b \\",
                "      --critic-model-name-or-path output/reward-models/opt-350m --enable-ema --output-dir output",
                "  bin/rlhf4j ppo --data-path a.jsonl --actor-model-name-or-path A --critic-model-name-or-path C \\",
                "      --unsupervised-dataset-name wiki.jsonl --unsup-coef 27.8 --max-steps 200"})
final class Ppo implements Callable<Integer> {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Mixin
    StageOptions.DataOptions data;

    @Mixin
    StageOptions.TrainingOptions training;

    @Mixin
    StageOptions.RunOptions run;

    @Mixin
    PpoOptions ppo;

    @Option(names = "--actor-model-name-or-path", paramLabel = "DIR", required = true,
            description = "The step-1 actor (also the frozen reference).")
    Path actor;

    @Option(names = "--critic-model-name-or-path", paramLabel = "DIR", required = true,
            description = "The step-2 reward model (the critic starts from it; a frozen copy scores the answers).")
    Path critic;

    @Option(names = "--model-name", paramLabel = "NAME", description = "Output name (default: the actor DIR's name).")
    String name;

    @Override
    public Integer call() {
        try {
            return execute();
        } finally {
            run.close();
        }
    }

    private Integer execute() {
        CommandLine cmd = spec.commandLine();
        Stages.Data d = data.data(cmd);
        StageOptions.modelDir(cmd, "--actor-model-name-or-path", actor);
        StageOptions.modelDir(cmd, "--critic-model-name-or-path", critic);
        Path out = data.outputDir.resolve("step3-models").resolve(name != null ? name : StageOptions.name(actor));
        Stages.ppo(ppo.settings(cmd, d, actor, critic, training, out, data.outputDir.resolve("logs/step3.jsonl")),
                run.options(cmd, data.outputDir), cmd.getOut());
        return 0;
    }

    /** Step 3's own flags (shared with {@code train}). */
    static final class PpoOptions {
        @Option(names = "--max-prompt-seq-len", defaultValue = "256", paramLabel = "N",
                description = "Longer prompts are dropped and counted (default: ${DEFAULT-VALUE}).")
        int maxPromptSeqLen;

        @Option(names = "--max-answer-seq-len", defaultValue = "256", paramLabel = "N", description = "(default: ${DEFAULT-VALUE})")
        int maxAnswerSeqLen;

        @Option(names = "--actor-learning-rate", defaultValue = "9.65e-6", paramLabel = "LR", description = "(default: ${DEFAULT-VALUE})")
        double actorLr;

        @Option(names = "--critic-learning-rate", defaultValue = "5e-6", paramLabel = "LR", description = "(default: ${DEFAULT-VALUE})")
        double criticLr;

        @Option(names = "--actor-weight-decay", defaultValue = "0", paramLabel = "W", description = "(default: ${DEFAULT-VALUE})")
        double actorWeightDecay;

        @Option(names = "--critic-weight-decay", defaultValue = "0", paramLabel = "W", description = "(default: ${DEFAULT-VALUE})")
        double criticWeightDecay;

        @Option(names = "--ppo-epochs", defaultValue = "1", paramLabel = "N", description = "(default: ${DEFAULT-VALUE})")
        int ppoEpochs;

        @Option(names = "--enable-ema", description = "Keep an EMA of the actor (beta 0.992), saved as actor_ema.")
        boolean enableEma;

        @Option(names = "--unsupervised-dataset-name", paramLabel = "PATH",
                description = "Plain-text dataset (a `text` field) for the pretraining mixture.")
        Path unsupervised;

        @Option(names = "--unsup-coef", defaultValue = "27.8", paramLabel = "C", description = "(default: ${DEFAULT-VALUE})")
        double unsupCoef;

        @Option(names = "--generation-batches", defaultValue = "1", paramLabel = "N",
                description = "Experience batches generated before the PPO epochs train on them (default: ${DEFAULT-VALUE}).")
        int generationBatches;

        @Option(names = "--offload-reference-model", description = "Keep the frozen reference and reward models on "
                + "the CPU (their forwards run there) while the actor and critic train on the GPU.")
        boolean offloadReferenceModel;

        @Option(names = "--hybrid-engine", defaultValue = "auto", paramLabel = "auto|on|off",
                description = "At --actor-zero-stage 3, how the actor generates (DS-Chat's --enable_hybrid_engine): "
                        + "on gathers it whole once per generation phase; off gathers each layer for each token, one "
                        + "layer whole at a time; auto gathers whole when every rank has room for it, else keeps as "
                        + "many layers gathered for the phase as fit and gathers the others for each token (default: "
                        + "${DEFAULT-VALUE}).")
        String hybridEngine;

        @Option(names = "--actor-lora-dim", defaultValue = "0", paramLabel = "R",
                description = "Rank of the actor's LoRA adapters (0: no LoRA; default: ${DEFAULT-VALUE}).")
        int actorLoraDim;

        @Option(names = "--actor-lora-module-name", paramLabel = "TEXT", description = "The actor's linear layers "
                + "whose name contains TEXT get LoRA (default: the family's layer stack, decoder.layers. for OPT).")
        String actorLoraModuleName;

        @Option(names = "--actor-lora-learning-rate", defaultValue = "5e-4", paramLabel = "LR",
                description = "(default: ${DEFAULT-VALUE})")
        double actorLoraLr;

        @Option(names = "--critic-lora-dim", defaultValue = "0", paramLabel = "R",
                description = "Rank of the critic's LoRA adapters (0: no LoRA; default: ${DEFAULT-VALUE}).")
        int criticLoraDim;

        @Option(names = "--critic-lora-module-name", paramLabel = "TEXT", description = "As --actor-lora-module-name.")
        String criticLoraModuleName;

        @Option(names = "--critic-lora-learning-rate", defaultValue = "5e-4", paramLabel = "LR",
                description = "(default: ${DEFAULT-VALUE})")
        double criticLoraLr;

        @Option(names = "--only-optimize-lora", description = "Train only the LoRA adapters of the models that have "
                + "them (DS-Chat's flag; the other weights stay frozen).")
        boolean onlyOptimizeLora;

        @Option(names = "--actor-gradient-checkpointing", description = "Recompute the actor's layer activations in "
                + "the backward pass instead of keeping them.")
        boolean actorGradientCheckpointing;

        @Option(names = "--critic-gradient-checkpointing", description = "The same for the critic.")
        boolean criticGradientCheckpointing;

        @Option(names = "--actor-zero-stage", paramLabel = "N", description = "ZeRO stage of the actor when several "
                + "ranks train (DeepSpeed-Chat's --actor_zero_stage). " + StageOptions.ZERO_STAGES + " (default: 0; "
                + "train: --zero-stage, for step 1 as well).")
        Integer actorZeroStage;

        @Option(names = "--critic-zero-stage", paramLabel = "N", description = "ZeRO stage of the critic, as "
                + "--actor-zero-stage (DeepSpeed-Chat's --critic_zero_stage; default: 0; train: --zero-stage, for "
                + "step 2 as well).")
        Integer criticZeroStage;

        @Option(names = "--offload", description = StageOptions.OFFLOAD + " Step 3: the actor's and the critic's.")
        boolean offload;

        /** The stage of a model whose own flag is not given: {@code train}'s --zero-stage (0 for {@code ppo}). */
        int zeroStageDefault;

        Stages.ModelOptions actorOptions(CommandLine cmd) {
            return StageOptions.modelOptions(cmd, "actor-", actorLoraDim, actorLoraModuleName, actorLoraLr,
                    onlyOptimizeLora, actorGradientCheckpointing,
                    actorZeroStage != null ? actorZeroStage : zeroStageDefault, offload);
        }

        Stages.ModelOptions criticOptions(CommandLine cmd) {
            return StageOptions.modelOptions(cmd, "critic-", criticLoraDim, criticLoraModuleName, criticLoraLr,
                    onlyOptimizeLora, criticGradientCheckpointing,
                    criticZeroStage != null ? criticZeroStage : zeroStageDefault, offload);
        }

        @Option(names = "--temperature", defaultValue = "1.0", paramLabel = "T", description = "Sampling temperature of "
                + "the answers (default: ${DEFAULT-VALUE}).")
        double temperature;

        @Option(names = "--top-p", defaultValue = "1.0", paramLabel = "P", description = "(default: ${DEFAULT-VALUE})")
        double topP;

        Stages.PpoSettings settings(CommandLine cmd, Stages.Data d, Path actor, Path critic,
                                    StageOptions.TrainingOptions training, Path out, Path metrics) {
            if (unsupervised != null && !Files.exists(unsupervised))
                throw new CommandLine.ParameterException(cmd, "--unsupervised-dataset-name " + unsupervised
                        + ": no such file or directory");
            if (onlyOptimizeLora && actorLoraDim == 0 && criticLoraDim == 0)
                throw new CommandLine.ParameterException(cmd, "--only-optimize-lora needs --actor-lora-dim or "
                        + "--critic-lora-dim > 0");
            if (generationBatches < 1)
                throw new CommandLine.ParameterException(cmd, "--generation-batches " + generationBatches
                        + " must be >= 1");
            RlhfEngine.HybridEngine hybrid = switch (hybridEngine.toLowerCase(java.util.Locale.ROOT)) {
                case "auto" -> RlhfEngine.HybridEngine.AUTO;
                case "on" -> RlhfEngine.HybridEngine.ON;
                case "off" -> RlhfEngine.HybridEngine.OFF;
                default -> throw new CommandLine.ParameterException(cmd, "--hybrid-engine " + hybridEngine
                        + ": expected auto, on or off");
            };
            return new Stages.PpoSettings(d, actor, critic, maxPromptSeqLen, maxAnswerSeqLen, training.training(100),
                    actorLr, criticLr, actorWeightDecay, criticWeightDecay, ppoEpochs, enableEma, unsupervised,
                    unsupCoef, temperature, topP, PpoMath.KL_CTL, out, metrics, actorOptions(cmd), criticOptions(cmd),
                    generationBatches, offloadReferenceModel, hybrid);
        }
    }
}
