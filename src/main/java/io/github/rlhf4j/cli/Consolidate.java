package io.github.rlhf4j.cli;

import io.github.rlhf4j.rlhf.Checkpoint;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code rlhf4j consolidate}: a ZeRO-partitioned checkpoint made into one that resumes on any number of ranks. */
@Command(name = "consolidate", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Turn a checkpoint written by several ranks under ZeRO (--zero-stage 1 to 3: each rank's AdamW "
                + "state in its own file, optimizer/MODEL.rank-R-of-N.safetensors) into a single-process checkpoint: "
                + "the whole AdamW moments in optimizer/MODEL.safetensors, world size 1. The model folders in a "
                + "checkpoint are whole Hugging Face models already and are kept as they are.",
                "--resume then works from it on any number of ranks and at any ZeRO stage (each rank takes its "
                        + "slices of the whole moments). Written into a hidden folder and renamed into place."},
        footer = {"", "Examples:",
                "  bin/rlhf4j consolidate output/checkpoints/step1/checkpoint-500   in place",
                "  bin/rlhf4j consolidate output/checkpoints/step3/checkpoint-200 \\",
                "      --out run2/checkpoints/step3/checkpoint-200   a copy, for run2's --resume"})
final class Consolidate implements Callable<Integer> {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Parameters(index = "0", paramLabel = "CHECKPOINT",
            description = "A checkpoint folder, OUTPUT_DIR/checkpoints/stepK/checkpoint-STEP.")
    Path checkpoint;

    @Option(names = "--out", paramLabel = "DIR", description = "Where the consolidated checkpoint goes, a folder named "
            + "checkpoint-STEP (default: CHECKPOINT itself, replaced).")
    Path out;

    @Override
    public Integer call() {
        CommandLine cmd = spec.commandLine();
        if (!Files.isDirectory(checkpoint))
            throw new CommandLine.ParameterException(cmd, "CHECKPOINT " + checkpoint + ": no such folder");
        try {
            Checkpoint.stepOf(checkpoint.toAbsolutePath().normalize());
        } catch (IllegalArgumentException e) {
            throw new CommandLine.ParameterException(cmd, "CHECKPOINT " + checkpoint + ": not a checkpoint folder "
                    + "(checkpoint-STEP, in OUTPUT_DIR/checkpoints/stepK/)");
        }
        Path target = out != null ? out : checkpoint;
        Checkpoint done;
        try {
            done = Checkpoint.consolidate(checkpoint, target);
        } catch (Checkpoint.DamagedException e) {
            throw new IllegalArgumentException("cannot consolidate " + checkpoint + ": " + e.getMessage(), e);
        }
        cmd.getOut().printf("consolidated %s (%s, step %d of %d, written by %d ranks) into %s: a single-process "
                        + "checkpoint that resumes on any number of ranks%n", checkpoint, done.stage(), done.step(),
                done.totalSteps(), done.consolidatedFrom().path("world_size").asInt(), done.dir());
        cmd.getOut().flush();
        return 0;
    }
}
