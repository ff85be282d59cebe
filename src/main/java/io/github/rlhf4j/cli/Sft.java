package io.github.rlhf4j.cli;

import io.github.rlhf4j.rlhf.Stages;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code rlhf4j sft}: DeepSpeed-Chat's step 1. */
@Command(name = "sft", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Step 1, supervised fine-tuning: causal-LM loss on prompt + chosen answer + <|endoftext|> of "
                + "the step-1 rows; reports eval perplexity; writes OUTPUT_DIR/actor-models/NAME (Hugging Face "
                + "layout, tokenizer included) and OUTPUT_DIR/logs/step1.jsonl."},
        footer = {"", "Examples:",
                "  bin/rlhf4j sft --data-path data/hh-rlhf --model-name-or-path models/opt-125m --output-dir output",
                "  bin/rlhf4j sft --data-path a.jsonl b.parquet --data-split 2,4,4 --model-name-or-path DIR \\",
                "      --from-scratch --learning-rate 2e-3 --max-seq-len 256 --max-steps 500"})
final class Sft implements Callable<Integer> {
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
            description = "The model to fine-tune: a Hugging Face directory with tokenizer files.")
    Path model;

    @Option(names = "--from-scratch", description = "Initialise the model randomly (seeded) from DIR's config.json "
            + "instead of loading its weights.")
    boolean fromScratch;

    @Option(names = "--model-name", paramLabel = "NAME", description = "Output name (default: DIR's name).")
    String name;

    @Option(names = "--max-seq-len", defaultValue = "512", paramLabel = "N", description = "(default: ${DEFAULT-VALUE})")
    int maxSeqLen;

    @Option(names = "--learning-rate", defaultValue = "1e-3", paramLabel = "LR", description = "(default: ${DEFAULT-VALUE})")
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
        Path out = data.outputDir.resolve("actor-models").resolve(name != null ? name : StageOptions.name(model));
        Stages.sft(new Stages.SftSettings(d, model, fromScratch, maxSeqLen, training.training(0), lr, weightDecay, out,
                data.outputDir.resolve("logs/step1.jsonl"), modelFlags.options(cmd)), run.options(cmd, data.outputDir),
                cmd.getOut());
        return 0;
    }
}
