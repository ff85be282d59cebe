package io.github.rlhf4j.cli;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

/** Runs {@code rlhf4j ...} in this JVM with stdin from a string and stdout/stderr captured. */
record Cli(int exit, String out, String err) {
    static Cli piped(String stdin, String... args) {
        PrintStream oldOut = System.out, oldErr = System.err;
        InputStream oldIn = System.in;
        ByteArrayOutputStream out = new ByteArrayOutputStream(), err = new ByteArrayOutputStream();
        System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
        System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
        System.setIn(new ByteArrayInputStream(stdin.getBytes(StandardCharsets.UTF_8)));
        int exit;
        try {
            exit = Main.run(args);
        } finally {
            System.setOut(oldOut);
            System.setErr(oldErr);
            System.setIn(oldIn);
        }
        return new Cli(exit, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    /**
     * Runs {@code defaults} with {@code extra} on top: an option of {@code extra} already in {@code defaults} with a
     * value replaces that value; anything else is appended.
     */
    static Cli runOver(java.util.List<String> defaults, String... extra) {
        java.util.List<String> args = new java.util.ArrayList<>(defaults);
        for (int i = 0; i < extra.length; i++) {
            int at = args.indexOf(extra[i]);
            if (at >= 0 && extra[i].startsWith("--") && i + 1 < extra.length && !extra[i + 1].startsWith("--")) {
                args.set(at + 1, extra[++i]);
                continue;
            }
            args.add(extra[i]);
        }
        return run(args.toArray(String[]::new));
    }

    /**
     * {@code bin/rlhf4j ARGS --deployment-type single_node --num-gpus ranks} in a child JVM (which starts
     * {@code mpirun} itself), run in {@code dir}, its output into {@code log}, with the Open MPI settings a root
     * container and the shared 2-core machine need.
     */
    static ProcessBuilder singleNode(java.util.List<String> args, int ranks, java.nio.file.Path log,
                                     java.nio.file.Path dir) {
        java.util.List<String> cmd = new java.util.ArrayList<>(java.util.List.of(
                java.nio.file.Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"),
                Main.class.getName()));
        cmd.addAll(args);
        cmd.addAll(java.util.List.of("--deployment-type", "single_node", "--num-gpus", Integer.toString(ranks)));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile())
                .directory(dir.toFile());
        java.util.Map<String, String> env = pb.environment();
        env.put("OMPI_ALLOW_RUN_AS_ROOT", "1");
        env.put("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
        env.put("OMPI_MCA_btl_vader_single_copy_mechanism", "none");
        env.put("RLHF4J_MPIRUN_OPTS", "--oversubscribe");
        return pb;
    }

    static Cli run(String... args) {
        return piped("", args);
    }

    @Override
    public String toString() {
        return "exit " + exit + "\n--- stdout:\n" + out + "\n--- stderr:\n" + err;
    }
}
