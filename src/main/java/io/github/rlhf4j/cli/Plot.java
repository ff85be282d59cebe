package io.github.rlhf4j.cli;

import io.github.rlhf4j.rlhf.Plots;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code rlhf4j plot}: redraws the training curves from the metrics files. */
@Command(name = "plot", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Draw the training curves of each stage from its metrics (LOGS/step1.jsonl, step2.jsonl, "
                + "step3.jsonl) as PNGs: OUT/step1.png (train loss, eval perplexity), step2.png (loss, accuracy, "
                + "chosen and rejected scores), step3.png (actor and critic loss, reward, KL, answer length). "
                + "Training draws them itself at every checkpoint and at the end of each stage; this redraws them, "
                + "e.g. while a run is going or after copying its logs."},
        footer = {"", "Examples:",
                "  bin/rlhf4j plot                                  output/logs -> output/plots",
                "  bin/rlhf4j plot --logs run2/logs --out run2/plots"})
final class Plot implements Callable<Integer> {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--logs", defaultValue = "output/logs", paramLabel = "DIR",
            description = "Folder of the stages' metrics files (default: ${DEFAULT-VALUE}).")
    Path logs;

    @Option(names = "--out", defaultValue = "output/plots", paramLabel = "DIR",
            description = "Where the PNGs go (default: ${DEFAULT-VALUE}).")
    Path out;

    @Override
    public Integer call() {
        CommandLine cmd = spec.commandLine();
        if (!Files.isDirectory(logs))
            throw new CommandLine.ParameterException(cmd, "--logs " + logs + ": no such directory");
        List<Path> written = Plots.drawAll(logs, out);
        if (written.isEmpty())
            throw new CommandLine.ParameterException(cmd, "--logs " + logs + ": no step1.jsonl, step2.jsonl or "
                    + "step3.jsonl with points to draw");
        for (Path p : written) cmd.getOut().println("wrote " + p);
        cmd.getOut().flush();
        return 0;
    }
}
