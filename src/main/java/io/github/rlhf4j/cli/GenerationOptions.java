package io.github.rlhf4j.cli;

import io.github.rlhf4j.generate.GenerationConfig;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.serve.TextGenerator;
import java.nio.file.Path;
import picocli.CommandLine;
import picocli.CommandLine.Option;

/** The options {@code generate} and {@code chat} share: how to pick tokens, and where to run. */
final class GenerationOptions {
    @Option(names = "--max-new-tokens", defaultValue = "128", paramLabel = "N",
            description = "Most tokens to generate per reply (default: ${DEFAULT-VALUE}).")
    int maxNewTokens;

    @Option(names = "--greedy", description = "Pick the most likely token each step (the default, unless a sampling "
            + "option is given).")
    boolean greedy;

    @Option(names = "--temperature", paramLabel = "T",
            description = "Sample with this temperature (default when sampling: 1.0).")
    Double temperature;

    @Option(names = "--top-p", paramLabel = "P",
            description = "Sample from the most likely tokens whose probability reaches P (default when sampling: 1.0, off).")
    Double topP;

    @Option(names = "--top-k", paramLabel = "K",
            description = "Sample from the K most likely tokens; 0 = off (default when sampling: 50, as transformers).")
    Integer topK;

    @Option(names = "--repetition-penalty", defaultValue = "1.0", paramLabel = "R",
            description = "Divide the logits of tokens already seen by R (default: ${DEFAULT-VALUE}, off).")
    double repetitionPenalty;

    @Option(names = "--seed", defaultValue = "42", paramLabel = "S",
            description = "Seed of the sampling (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--ignore-eos", description = "Do not stop at the end-of-sequence token: always generate "
            + "--max-new-tokens (DeepSpeed-Chat's fixed-length answers).")
    boolean ignoreEos;

    @Option(names = "--num-threads", defaultValue = "0", paramLabel = "N",
            description = "CPU threads; 0 = one per core (default: ${DEFAULT-VALUE}).")
    int numThreads;

    @Option(names = "--device", defaultValue = "cpu", paramLabel = "DEV",
            description = "cpu or cuda:N (default: ${DEFAULT-VALUE}).")
    String device;

    /** The device to run on, with --num-threads applied. */
    Device device() {
        Device d = Device.parse(device);
        if (numThreads > 0) d.setNumThreads(numThreads);
        return d;
    }

    /** Loads the model directory's model and tokenizer. */
    TextGenerator load(Path dir) {
        return TextGenerator.load(dir, device());
    }

    GenerationConfig config(CommandLine.Model.CommandSpec spec, TextGenerator g) {
        boolean sample = temperature != null || topP != null || topK != null;
        if (greedy && sample)
            throw new CommandLine.ParameterException(spec.commandLine(),
                    "--greedy cannot be combined with --temperature, --top-p or --top-k");
        if (maxNewTokens <= 0)
            throw new CommandLine.ParameterException(spec.commandLine(), "--max-new-tokens must be > 0, got " + maxNewTokens);
        try {
            GenerationConfig c = sample
                    ? g.sampling(maxNewTokens, temperature == null ? 1.0 : temperature, topK == null ? 50 : topK,
                            topP == null ? 1.0 : topP, seed)
                    : g.greedy(maxNewTokens);
            return c.withRepetitionPenalty(repetitionPenalty).withIgnoreEos(ignoreEos).withSeed(seed);
        } catch (IllegalArgumentException e) {
            // "top_p = 2.0 must be in (0, 1]" -> "--top-p = 2.0 must be in (0, 1]"
            String m = e.getMessage();
            int sp = Math.max(0, m.indexOf(' '));
            throw new CommandLine.ParameterException(spec.commandLine(),
                    "--" + m.substring(0, sp).replace('_', '-') + m.substring(sp));
        }
    }
}
