package io.github.rlhf4j.cli;

import io.github.rlhf4j.model.HfModel;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code rlhf4j convert}: reads a model directory and writes it again in Hugging Face layout, in another storage
 * dtype or shard size: what a saved actor goes through, so it also checks that a model survives rlhf4j's load and
 * save.
 */
@Command(name = "convert", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Load a model in Hugging Face layout and write it again (safetensors with the original "
                + "tensor names, config.json, tokenizer and generation files), in another dtype or shard size."},
        footer = {"", "Examples:",
                "  bin/rlhf4j convert --model output/actor --out output/actor-bf16 --dtype bf16",
                "  bin/rlhf4j convert --model models/llama --out /tmp/llama --max-shard-size 2GB"})
final class Convert implements Callable<Integer> {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--model", required = true, paramLabel = "DIR", description = "The model directory to read.")
    Path model;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "Directory to write.")
    Path out;

    @Option(names = "--dtype", defaultValue = "f32", paramLabel = "f32|bf16|f16",
            description = "Storage type of the written weights (default: ${DEFAULT-VALUE}).")
    String dtype;

    @Option(names = "--max-shard-size", defaultValue = "5GB", paramLabel = "SIZE",
            description = "Largest safetensors file before sharding, e.g. 500MB, 5GB (default: ${DEFAULT-VALUE}).")
    String maxShardSize;

    @Option(names = "--force", description = "Replace --out if it exists.")
    boolean force;

    @Override
    public Integer call() {
        PrintWriter stdout = spec.commandLine().getOut();
        DType type = InitModel.parseDtype(spec, dtype);
        long shard = parseSize(maxShardSize);
        if (out.toAbsolutePath().normalize().equals(model.toAbsolutePath().normalize()))
            throw new CommandLine.ParameterException(spec.commandLine(), "--out must differ from --model");
        if (!force && Files.exists(out))
            throw new CommandLine.ParameterException(spec.commandLine(), "--out " + out + " exists; pass --force to replace it");
        long start = System.nanoTime();
        try (HfModel m = HfModel.load(model, Device.cpu(), DType.F32, false)) {
            HfModel.save(m.model(), m.configJson(), out, model, type, shard);
            stdout.printf(Locale.ROOT, "%s: %,d parameters written to %s as %s (%.1f s)%n", m.config().modelType(),
                    m.parameters().parameterCount(), out.toAbsolutePath().normalize(), type,
                    (System.nanoTime() - start) / 1e9);
            stdout.flush();
        }
        return 0;
    }

    private long parseSize(String s) {
        var m = java.util.regex.Pattern.compile("(?i)\\s*(\\d+(?:\\.\\d+)?)\\s*(B|KB|MB|GB|KIB|MIB|GIB)?\\s*").matcher(s);
        if (!m.matches())
            throw new CommandLine.ParameterException(spec.commandLine(), "--max-shard-size " + s + ": expected e.g. 500MB or 5GB");
        double v = Double.parseDouble(m.group(1));
        String u = m.group(2) == null ? "B" : m.group(2).toUpperCase(Locale.ROOT);
        double mult = switch (u) {
            case "KB" -> 1e3;
            case "MB" -> 1e6;
            case "GB" -> 1e9;
            case "KIB" -> 1024;
            case "MIB" -> 1024 * 1024;
            case "GIB" -> 1024.0 * 1024 * 1024;
            default -> 1;
        };
        long bytes = (long) (v * mult);
        if (bytes <= 0) throw new CommandLine.ParameterException(spec.commandLine(), "--max-shard-size must be > 0");
        return bytes;
    }
}
