package io.github.rlhf4j.cli;

import io.github.rlhf4j.generate.GenerationConfig;
import io.github.rlhf4j.serve.TextGenerator;
import io.github.rlhf4j.serve.TextGenerator.Completion;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code rlhf4j generate}: continues prompts, streaming the text of one prompt as it is generated. */
@Command(name = "generate", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Continue a prompt with a model in Hugging Face layout (config.json, safetensors, "
                + "tokenizer.json), printing the new text to stdout as it is generated and a summary (tokens, "
                + "tokens/s, prefill time) to stderr.",
                "Several --prompt values run as one batch (left-padded) and are printed when all are done. "
                + "Greedy unless a sampling option (--temperature, --top-p, --top-k) is given."},
        footer = {"", "Examples:",
                "  bin/rlhf4j generate --model models/opt-125m --prompt 'The capital of France'",
                "  bin/rlhf4j generate --model models/gpt2 --prompt 'Once upon a time' \\",
                "      --temperature 0.8 --top-p 0.95",
                "  bin/rlhf4j generate --model models/gpt2 --prompt 'a' --prompt 'b' \\",
                "      --max-new-tokens 32 --ignore-eos"})
final class Generate implements Callable<Integer> {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--model", required = true, paramLabel = "DIR", description = "Model directory.")
    Path model;

    @Option(names = "--prompt", required = true, paramLabel = "TEXT",
            description = "Text to continue; repeat for a batch.")
    List<String> prompts;

    @Mixin
    GenerationOptions options;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut(), err = spec.commandLine().getErr();
        try (TextGenerator g = options.load(model)) {
            GenerationConfig config = options.config(spec, g);
            int[][] ids = new int[prompts.size()][];
            for (int i = 0; i < ids.length; i++) {
                ids[i] = g.encode(prompts.get(i));
                if (ids[i].length == 0)
                    throw new CommandLine.ParameterException(spec.commandLine(),
                            "--prompt " + (i + 1) + " encodes to no tokens; give some text");
            }
            if (ids.length == 1) {
                Completion c = g.complete(ids[0], config, List.of(), piece -> {
                    out.print(piece);
                    out.flush();
                });
                out.println();
                out.flush();
                summary(err, List.of(c), 1);
            } else {
                List<Completion> all = g.completeBatch(ids, config);
                for (int i = 0; i < all.size(); i++) {
                    out.printf("### %d/%d%n%s%n", i + 1, all.size(), all.get(i).text());
                }
                out.flush();
                summary(err, all, all.size());
            }
        }
        return 0;
    }

    private static void summary(PrintWriter err, List<Completion> all, int batch) {
        int tokens = 0, promptTokens = 0;
        for (Completion c : all) {
            tokens += c.tokens().length;
            promptTokens += c.promptTokens();
        }
        Completion c = all.get(0); // timings are the batch's
        long decodeNanos = c.totalNanos() - c.firstTokenNanos();
        int longest = all.stream().mapToInt(x -> x.tokens().length).max().orElse(0);
        double rate = longest > 1 && decodeNanos > 0 ? (tokens - batch) * 1e9 / decodeNanos : 0;
        String finish = batch == 1 ? ", finished: " + c.finish().openAi() : "";
        err.printf(Locale.ROOT, "%d tokens in %.2f s: %.1f tokens/s after the first (batch %d); prefill %.0f ms for "
                        + "%d prompt tokens%s%n", tokens, c.totalNanos() / 1e9, rate, batch, c.firstTokenNanos() / 1e6,
                promptTokens, finish);
        err.flush();
    }
}
