package io.github.rlhf4j.cli;

import io.github.rlhf4j.Rlhf4j;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** {@code bin/rlhf4j}: the command line. */
@Command(name = "rlhf4j", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
        description = {"RLHF for the JVM: supervised fine-tuning, reward modelling and PPO on a native backend.", ""},
        subcommands = {SelfTest.class, CommandLine.HelpCommand.class},
        footer = {"", "Examples:", "  bin/rlhf4j selftest            check the native backend and run a small training step",
                "  bin/rlhf4j selftest --threads 1",
                "  bin/rlhf4j help selftest"})
public final class Main implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    public static void main(String[] args) {
        System.exit(run(args));
    }

    /** Runs the command line and returns the exit code (tests call this). */
    public static int run(String... args) {
        return new CommandLine(new Main()).execute(args);
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
