package io.github.rlhf4j.cli;

import io.github.rlhf4j.dist.Launch;
import io.github.rlhf4j.rlhf.Demo;
import io.github.rlhf4j.rlhf.DemoSettings;
import io.github.rlhf4j.rlhf.Stages;
import io.github.rlhf4j.runtime.Backend;
import java.nio.file.Path;
import java.util.List;
import java.util.TreeSet;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code rlhf4j train}: DeepSpeed-Chat's train.py, the three steps in order; without model flags, the demo. */
@Command(name = "train", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Run steps 1, 2 and 3 in order as DeepSpeed-Chat's train.py does: SFT of --actor-model to "
                + "OUTPUT_DIR/actor-models/NAME, the reward model from --reward-model to OUTPUT_DIR/reward-models/NAME, "
                + "PPO to OUTPUT_DIR/step3-models/NAME/{actor,critic[,actor_ema]}; metrics in OUTPUT_DIR/logs/.",
                "Without model flags: the embedded demo on the CPU (a tiny GPT-2 trained from scratch on a "
                        + "reverse-a-word dialogue task whose answers a program checks), ending with a table of "
                        + "held-out figures and OUTPUT_DIR/summary.json."},
        footer = {"", "Examples:",
                "  bin/rlhf4j train                               the embedded demo, a few minutes on 2 cores",
                "  bin/rlhf4j train --step 1 2 3 --actor-model models/opt-1.3b --reward-model models/opt-350m \\",
                "      --deployment-type single_gpu --data-path data/hh-rlhf --output-dir output",
                "  bin/rlhf4j train --step 3 --actor-model models/opt-1.3b --reward-model models/opt-350m \\",
                "      --data-path data/hh-rlhf --enable-ema      step 3 again from the saved steps 1 and 2",
                "  bin/rlhf4j train --checkpoint-every 100 --resume   go on where a killed run stopped",
                "  bin/rlhf4j train --deployment-type single_node --num-gpus 8 --zero-stage 1 \\",
                "      --actor-model A --reward-model R --data-path D   AdamW state split 8 ways"})
final class Train implements Callable<Integer> {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--step", arity = "1..3", paramLabel = "N", description = "Steps to run (default: 1 2 3).")
    List<Integer> steps;

    @Option(names = "--actor-model", paramLabel = "DIR", description = "Step 1's starting model (Hugging Face layout).")
    Path actorModel;

    @Option(names = "--reward-model", paramLabel = "DIR", description = "Step 2's starting model.")
    Path rewardModel;

    @Option(names = "--deployment-type", defaultValue = "single_gpu", paramLabel = "TYPE",
            description = "single_gpu (this process: the GPU if there is one, else the CPU), single_node (mpirun "
                    + "starts --num-gpus ranks here) or multi_node (mpirun starts ranks on the --hostfile's hosts); "
                    + "the ranks train data parallel (default: ${DEFAULT-VALUE}).")
    String deploymentType;

    @Mixin
    StageOptions.DataOptions data;

    @Mixin
    StageOptions.TrainingOptions training;

    @Mixin
    StageOptions.RunOptions run;

    @Mixin
    Ppo.PpoOptions ppo;

    @Option(names = "--max-seq-len", defaultValue = "512", paramLabel = "N",
            description = "Sequence length of steps 1 and 2 (default: ${DEFAULT-VALUE}).")
    int maxSeqLen;

    @Option(names = "--sft-learning-rate", defaultValue = "9.65e-6", paramLabel = "LR", description = "(default: ${DEFAULT-VALUE})")
    double sftLr;

    @Option(names = "--reward-learning-rate", defaultValue = "5e-5", paramLabel = "LR", description = "(default: ${DEFAULT-VALUE})")
    double rewardLr;

    @Option(names = "--num-gpus", paramLabel = "N", description = "single_node: ranks, one a GPU, on this machine "
            + "(default: every GPU it has); multi_node: ranks on each host (default: its slots in the hostfile). "
            + "On a machine without GPUs the ranks share the CPU cores.")
    Integer numGpus;

    @Option(names = "--zero-stage", defaultValue = "0", paramLabel = "N",
            description = "ZeRO stage of every trained model when several ranks train; --actor-zero-stage (steps 1 "
                    + "and 3's actor) and --critic-zero-stage (steps 2 and 3's critic) override it, as DeepSpeed-Chat's "
                    + "train.py --actor-zero-stage and --reward-zero-stage do. " + StageOptions.ZERO_STAGES
                    + " (default: ${DEFAULT-VALUE}).")
    int zeroStage;

    @Option(names = "--hostfile", paramLabel = "FILE", description = "multi_node: the hosts, one 'HOST slots=N' "
            + "line each, as DeepSpeed's launcher reads them.")
    Path hostfile;

    @Option(names = "--demo-rows", hidden = true, paramLabel = "N", description = "Rows of the demo data (tests).")
    Integer demoRows;

    @Override
    public Integer call() {
        try {
            return execute();
        } finally {
            run.close();
        }
    }

    /** GPUs the CUDA backend sees (0 without one: then single_node needs --num-gpus). */
    private static int visibleGpus() {
        try {
            return Backend.cuda().map(Backend::deviceCount).orElse(0);
        } catch (RuntimeException | LinkageError e) {
            return 0;
        }
    }

    private Integer execute() {
        CommandLine cmd = spec.commandLine();
        Launch.Deployment deployment;
        try {
            deployment = Launch.Deployment.parse(deploymentType);
        } catch (IllegalArgumentException e) {
            throw new CommandLine.ParameterException(cmd, e.getMessage());
        }
        // bad ZeRO flags fail here, before any rank is started
        ppo.zeroStageDefault = StageOptions.zeroStage(cmd, "--zero-stage", zeroStage);
        if (ppo.actorZeroStage != null) StageOptions.zeroStage(cmd, "--actor-zero-stage", ppo.actorZeroStage);
        if (ppo.criticZeroStage != null) StageOptions.zeroStage(cmd, "--critic-zero-stage", ppo.criticZeroStage);
        Launch.Rank rank = Launch.Rank.fromEnvironment();
        if (deployment != Launch.Deployment.SINGLE_GPU && !rank.launched()) {
            // as DS-Chat's train.py hands over to the deepspeed launcher: start the ranks under mpirun, each running
            // this same command; they find their place in the environment and train data parallel
            int n = numGpus != null ? numGpus : deployment == Launch.Deployment.SINGLE_NODE ? visibleGpus() : 0;
            try {
                return Launch.plan(deployment, n, hostfile, cmd.getParseResult().originalArgs(),
                        Launch.thisJvm(Main.class.getName()), Launch.Local.current()).run();
            } catch (IllegalArgumentException e) {
                throw new CommandLine.ParameterException(cmd, e.getMessage());
            } catch (java.io.IOException e) {
                throw new java.io.UncheckedIOException(e);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return 130;
            }
        }
        TreeSet<Integer> todo = new TreeSet<>(steps != null ? steps : List.of(1, 2, 3));
        for (int s : todo)
            if (s < 1 || s > 3) throw new CommandLine.ParameterException(cmd, "--step " + s + ": the steps are 1, 2 and 3");

        Stages.RunOptions guard = run.options(cmd, data.outputDir);
        if (actorModel == null && rewardModel == null) {
            if (data.dataPath != null)
                throw new CommandLine.ParameterException(cmd, "--data-path needs --actor-model and --reward-model "
                        + "(without any of the three, train runs the embedded demo)");
            if (!todo.equals(new TreeSet<>(List.of(1, 2, 3))))
                throw new CommandLine.ParameterException(cmd, "the embedded demo runs all three steps; --step "
                        + todo + " needs --actor-model and --reward-model");
            if (guard.world() > 1)
                throw new CommandLine.ParameterException(cmd, "the embedded demo runs in one process; pass "
                        + "--actor-model, --reward-model and --data-path to train on several ranks");
            DemoSettings s = DemoSettings.defaults().withSeed(data.seed).withMaxSteps(training.maxSteps);
            if (demoRows != null) s = s.withRows(demoRows);
            if (ppo.enableEma) s = s.withEma(true);
            if (zeroStage > 0)
                cmd.getOut().printf("train: one process: --zero-stage %d has nothing to partition across ranks; the "
                        + "demo trains as ZeRO stage 0%n", zeroStage);
            if (ppo.offload)
                cmd.getOut().printf("train: --offload: the demo trains on the CPU, where its optimizer state is "
                        + "already; nothing to move%n");
            Demo.run(data.outputDir, s, guard, cmd.getOut());
            return 0;
        }
        if (actorModel == null || rewardModel == null)
            throw new CommandLine.ParameterException(cmd, "train needs both --actor-model and --reward-model "
                    + "(or neither, for the embedded demo)");
        Stages.Data d = data.data(cmd);
        Path out = data.outputDir, logs = out.resolve("logs");
        Path actorDir = out.resolve("actor-models").resolve(StageOptions.name(actorModel));
        Path rmDir = out.resolve("reward-models").resolve(StageOptions.name(rewardModel));
        if (todo.contains(1)) {
            StageOptions.modelDir(cmd, "--actor-model", actorModel);
            Stages.sft(new Stages.SftSettings(d, actorModel, false, maxSeqLen, training.training(0), sftLr, 0.0,
                    actorDir, logs.resolve("step1.jsonl"), ppo.actorOptions(cmd)), guard, cmd.getOut());
        }
        if (todo.contains(2)) {
            StageOptions.modelDir(cmd, "--reward-model", rewardModel);
            Stages.reward(new Stages.RewardSettings(d, rewardModel, maxSeqLen, training.training(0), rewardLr, 0.0,
                    rmDir, logs.resolve("step2.jsonl"), ppo.criticOptions(cmd)), guard, cmd.getOut());
        }
        if (todo.contains(3)) {
            StageOptions.modelDir(cmd, "step 1's output (run --step 1 first)", actorDir);
            StageOptions.modelDir(cmd, "step 2's output (run --step 2 first)", rmDir);
            Stages.ppo(ppo.settings(cmd, d, actorDir, rmDir, training,
                    out.resolve("step3-models").resolve(StageOptions.name(actorModel)), logs.resolve("step3.jsonl")),
                    guard, cmd.getOut());
        }
        return 0;
    }
}
