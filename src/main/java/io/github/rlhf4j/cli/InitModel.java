package io.github.rlhf4j.cli;

import io.github.rlhf4j.model.ConfigJson;
import io.github.rlhf4j.model.HfModel;
import io.github.rlhf4j.model.Models;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.stream.Stream;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code rlhf4j init-model}: a random-weight model of any supported config.json, written in Hugging Face layout
 * (for tests, benchmarks and training from scratch).
 */
@Command(name = "init-model", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Write a randomly initialised model (transformers' initialisation, seeded) of any "
                + "supported config.json in Hugging Face layout: config.json and model.safetensors, plus the "
                + "tokenizer files of --tokenizer. Any model_type rlhf4j implements: gpt2, opt, gpt_neo, llama, "
                + "qwen2."},
        footer = {"", "Examples:",
                "  bin/rlhf4j init-model --config gpt2.json --out models/gpt2-random --seed 1",
                "  bin/rlhf4j init-model --config /path/to/opt-125m/config.json --out /tmp/opt \\",
                "      --dtype bf16 --tokenizer /path/to/opt-125m"})
final class InitModel implements Callable<Integer> {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--config", required = true, paramLabel = "FILE",
            description = "A Hugging Face config.json (or a directory holding one).")
    Path config;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "Directory to write the model to.")
    Path out;

    @Option(names = "--seed", defaultValue = "42", paramLabel = "N",
            description = "Seed of the initialisation (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--dtype", defaultValue = "f32", paramLabel = "f32|bf16|f16",
            description = "Storage type of the weights (default: ${DEFAULT-VALUE}).")
    String dtype;

    @Option(names = "--tokenizer", paramLabel = "DIR",
            description = "Copy the tokenizer and generation files (tokenizer.json, tokenizer_config.json, "
                    + "special_tokens_map.json, generation_config.json, ...) of this directory.")
    Path tokenizer;

    @Option(names = "--force", description = "Replace --out if it exists and is not empty.")
    boolean force;

    @Override
    public Integer call() {
        PrintWriter stdout = spec.commandLine().getOut();
        DType type = parseDtype(spec, dtype);
        Path file = Files.isDirectory(config) ? config.resolve("config.json") : config;
        ConfigJson json = ConfigJson.read(file);
        Models.config(json); // fails here, naming the file and field, before anything is written
        if (tokenizer != null && !Files.isDirectory(tokenizer))
            throw new CommandLine.ParameterException(spec.commandLine(), "--tokenizer " + tokenizer + " is not a directory");
        if (tokenizer != null && copied(tokenizer).isEmpty())
            throw new CommandLine.ParameterException(spec.commandLine(), "--tokenizer " + tokenizer
                    + " has none of " + String.join(", ", HfModel.SIDE_FILES));
        if (!force && notEmpty(out))
            throw new CommandLine.ParameterException(spec.commandLine(), "--out " + out
                    + " exists and is not empty; pass --force to replace it");
        long start = System.nanoTime();
        try (HfModel model = HfModel.random(json, Device.cpu(), DType.F32, seed, false)) {
            HfModel.save(model.model(), json, out, tokenizer, type, 5L << 30);
            long params = model.parameters().parameterCount();
            stdout.printf(Locale.ROOT, "%s: %,d parameters (%s in %s), seed %d%n", json.modelType(), params,
                    bytes(params * type.size), type, seed);
            stdout.printf(Locale.ROOT, "wrote %s%s (%.1f s)%n", out.toAbsolutePath().normalize(),
                    tokenizer == null ? " (no tokenizer: pass --tokenizer DIR to add one)"
                            : " with " + String.join(", ", copied(tokenizer)) + " from " + tokenizer,
                    (System.nanoTime() - start) / 1e9);
            stdout.flush();
        }
        return 0;
    }

    static DType parseDtype(CommandLine.Model.CommandSpec spec, String s) {
        return switch (s.toLowerCase(Locale.ROOT)) {
            case "f32", "fp32", "float32" -> DType.F32;
            case "bf16", "bfloat16" -> DType.BF16;
            case "f16", "fp16", "float16" -> DType.F16;
            default -> throw new CommandLine.ParameterException(spec.commandLine(),
                    "--dtype " + s + ": expected f32, bf16 or f16");
        };
    }

    private static List<String> copied(Path dir) {
        List<String> names = new ArrayList<>();
        for (String f : HfModel.SIDE_FILES) if (Files.isRegularFile(dir.resolve(f))) names.add(f);
        return names;
    }

    private static boolean notEmpty(Path dir) {
        if (!Files.exists(dir)) return false;
        if (!Files.isDirectory(dir)) return true;
        try (Stream<Path> s = Files.list(dir)) {
            return s.findAny().isPresent();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list " + dir + ": " + e.getMessage(), e);
        }
    }

    static String bytes(long b) {
        if (b >= 1L << 30) return String.format(Locale.ROOT, "%.2f GiB", b / (double) (1L << 30));
        if (b >= 1L << 20) return String.format(Locale.ROOT, "%.1f MiB", b / (double) (1L << 20));
        return String.format(Locale.ROOT, "%.1f KiB", b / 1024.0);
    }
}
