package io.github.rlhf4j.cli;

import io.github.rlhf4j.serve.ChatSession;
import io.github.rlhf4j.serve.TextGenerator;
import java.io.BufferedReader;
import java.io.Console;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code rlhf4j chat}: DeepSpeed-Chat's {@code inference/chatbot.py} for the terminal, streaming. One line is one
 * message; {@code clear} forgets the history and {@code quit} (or end of input) leaves. On a terminal it shows a
 * prompt; from a pipe it prints only the replies, one per message, for scripts.
 */
@Command(name = "chat", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Chat with a model in the terminal, streaming each reply as it is generated. The history "
                + "is kept in the model's chat template, or in DeepSpeed-Chat's form (\" Human: ...\\n Assistant: "
                + "...\") for models without one; the oldest turns are dropped when it outgrows the context (a note "
                + "on stderr says so).",
                "Type 'clear' to start over and 'quit' (or end the input) to leave. Reads a pipe too: one message "
                + "per line, replies on stdout, one per line, no prompts."},
        footer = {"", "Examples:",
                "  bin/rlhf4j chat --path output/step3/actor",
                "  bin/rlhf4j chat --path models/qwen2-0.5b-instruct --system 'Be terse.' \\",
                "      --temperature 0.7",
                "  printf 'Hi\\nWhat is 2+2?\\nquit\\n' | bin/rlhf4j chat --path output/actor"})
final class Chat implements Callable<Integer> {
    private static final String BOLD = "\u001b[1m", DIM = "\u001b[2m", RESET = "\u001b[0m";

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = {"--path", "--model"}, required = true, paramLabel = "DIR",
            description = "Model directory (DeepSpeed-Chat's --path).")
    Path path;

    @Option(names = "--system", paramLabel = "TEXT",
            description = "A system message (models with a chat template that has a system role).")
    String system;

    @Mixin
    GenerationOptions options;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut(), err = spec.commandLine().getErr();
        Console console = System.console();
        boolean tty = console != null && console.isTerminal();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        try (TextGenerator g = options.load(path)) {
            ChatSession session = new ChatSession(g, options.config(spec, g), system)
                    .onNotice(n -> {
                        err.println(tty ? DIM + "(" + n + ")" + RESET : "rlhf4j chat: " + n);
                        err.flush();
                    });
            if (tty) {
                out.printf(Locale.ROOT, "%s (%,d parameters, context %d tokens), %s%n", g.name(),
                        g.model().parameters().parameterCount(), g.contextLength(),
                        session.template().isDsChat() ? "DeepSpeed-Chat's Human/Assistant form"
                                : "chat template of " + session.template().source());
                out.println("Type 'clear' to start over, 'quit' to leave.");
            }
            int round = 0;
            while (true) {
                if (tty) {
                    out.print(BOLD + "Human: " + RESET);
                    out.flush();
                }
                String line = in.readLine();
                if (line == null) {
                    if (tty) out.println(); // end of input (Ctrl-D) leaves the cursor after the prompt
                    break;
                }
                if (line.strip().equals("quit")) break;
                if (line.strip().equals("clear")) {
                    session.clear();
                    round = 0;
                    err.println(tty ? DIM + "(history cleared)" + RESET : "rlhf4j chat: history cleared");
                    err.flush();
                    continue;
                }
                if (line.isBlank()) continue;
                if (tty) out.print(BOLD + "Assistant: " + RESET);
                try {
                    TextGenerator.Completion c = session.reply(line, piece -> {
                        out.print(piece);
                        out.flush();
                    });
                    round++;
                    out.println();
                    if (tty) {
                        out.printf(Locale.ROOT, DIM + "(round %d: %d tokens, %.1f tokens/s)" + RESET + "%n%n", round,
                                c.tokens().length, c.decodeTokensPerSecond());
                    }
                    out.flush();
                } catch (IllegalArgumentException e) {
                    out.println();
                    out.flush();
                    err.println("rlhf4j chat: " + e.getMessage());
                    err.flush();
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read the input: " + e.getMessage(), e);
        }
        return 0;
    }
}
