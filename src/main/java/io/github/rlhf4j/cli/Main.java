package io.github.rlhf4j.cli;

import io.github.rlhf4j.Rlhf4j;
import io.github.rlhf4j.model.ModelFormatException;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** {@code bin/rlhf4j}: the command line. */
@Command(name = "rlhf4j", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
        description = {"RLHF for the JVM: supervised fine-tuning, reward modelling and PPO on a native backend.", ""},
        subcommands = {SelfTest.class, InitModel.class, Convert.class, Generate.class, Chat.class, Serve.class,
                Train.class, Sft.class, Reward.class, Ppo.class, Consolidate.class, Plot.class, Bench.class,
                CommandLine.HelpCommand.class},
        footer = {"", "Examples:", "  bin/rlhf4j selftest            check the native backend, time a training step",
                "  bin/rlhf4j selftest --threads 1",
                "  bin/rlhf4j init-model --config config.json --out DIR --tokenizer TOKENIZER_DIR",
                "  bin/rlhf4j generate --model DIR --prompt 'Hello'",
                "  bin/rlhf4j chat --path DIR",
                "  bin/rlhf4j serve --model DIR --port 8000",
                "  bin/rlhf4j train                 the three RLHF steps on the embedded demo task",
                "  bin/rlhf4j train --resume        go on where a killed run stopped",
                "  bin/rlhf4j consolidate output/checkpoints/step1/checkpoint-500   resumable on any world size",
                "  bin/rlhf4j plot                  redraw output/plots/*.png from output/logs",
                "  bin/rlhf4j bench step3 --run cpu-tiny   DeepSpeed-Chat's step-3 benchmark, sized for a CPU",
                "  bin/rlhf4j help selftest"})
public final class Main implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    public static void main(String[] args) {
        System.exit(run(args));
    }

    /** Runs the command line and returns the exit code (tests call this). */
    public static int run(String... args) {
        // DJL logs through SLF4J; without a provider on the class path SLF4J warns about that on every run.
        if (System.getProperty("slf4j.internal.verbosity") == null)
            System.setProperty("slf4j.internal.verbosity", "ERROR");
        return new CommandLine(new Main()).setExecutionExceptionHandler(Main::failed).execute(args);
    }

    /**
     * Errors about the user's input or files (a bad model directory, a prompt too long for the context) are one
     * line naming the command and what is wrong; anything else is a bug and keeps its stack trace.
     */
    private static int failed(Exception e, CommandLine cmd, CommandLine.ParseResult parsed) throws Exception {
        if (e instanceof ModelFormatException || e instanceof IllegalArgumentException
                || e instanceof io.github.rlhf4j.data.DataFormatException || e instanceof ArithmeticException
                || e instanceof java.io.UncheckedIOException || e instanceof java.io.IOException) {
            cmd.getErr().println("rlhf4j " + cmd.getCommandName() + ": " + e.getMessage());
            cmd.getErr().flush();
            return 1;
        }
        throw e;
    }

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }

    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            return new String[] {"rlhf4j " + Rlhf4j.version(),
                    "Java " + System.getProperty("java.version") + " (" + System.getProperty("java.vendor") + ") on "
                            + System.getProperty("os.name") + " " + System.getProperty("os.arch")};
        }
    }
}
