package io.github.rlhf4j.cli;

import io.github.rlhf4j.rlhf.Stages;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code rlhf4j reward}: DeepSpeed-Chat's step 2. */
@Command(name = "reward", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Step 2, the reward model: the base model of --model-name-or-path plus a fresh v_head (or a "
                + "reward model's own v_head), trained with the pairwise loss on the step-2 pairs; reports eval "
                + "accuracy and the chosen and rejected scores; writes OUTPUT_DIR/reward-models/NAME and "
                + "OUTPUT_DIR/logs/step2.jsonl."},
        footer = {"", "Examples:",
                "  bin/rlhf4j reward --data-path data/hh-rlhf --model-name-or-path models/opt-350m --output-dir output",
                "  bin/rlhf4j reward --data-path a.jsonl --model-name-or-path output/actor-models/demo \\",
                "      --learning-rate 5e-4 --max-seq-len 24 --max-steps 1000"})
final class Reward implements Callable<Integer> {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Mixin
    StageOptions.DataOptions data;

    @Mixin
    StageOptions.TrainingOptions training;

    @Mixin
    StageOptions.RunOptions run;

    @Mixin
    StageOptions.ModelFlags modelFlags;

    @Option(names = "--model-name-or-path", paramLabel = "DIR", required = true,
            description = "A causal-LM or reward-model directory in Hugging Face layout, tokenizer included.")
    Path model;

    @Option(names = "--model-name", paramLabel = "NAME", description = "Output name (default: DIR's name).")
    String name;

    @Option(names = "--max-seq-len", defaultValue = "512", paramLabel = "N", description = "(default: ${DEFAULT-VALUE})")
    int maxSeqLen;

    @Option(names = "--learning-rate", defaultValue = "5e-5", paramLabel = "LR", description = "(default: ${DEFAULT-VALUE})")
    double lr;

    @Option(names = "--weight-decay", defaultValue = "0", paramLabel = "W", description = "(default: ${DEFAULT-VALUE})")
    double weightDecay;

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
        StageOptions.modelDir(cmd, "--model-name-or-path", model);
        Path out = data.outputDir.resolve("reward-models").resolve(name != null ? name : StageOptions.name(model));
        Stages.reward(new Stages.RewardSettings(d, model, maxSeqLen, training.training(0), lr, weightDecay, out,
                data.outputDir.resolve("logs/step2.jsonl"), modelFlags.options(cmd)), run.options(cmd, data.outputDir),
                cmd.getOut());
        return 0;
    }
}
