package io.github.rlhf4j.gpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * bench/gpu/run.sh on this (CPU) machine: `pack` makes a folder under the 64 MiB a device call carries, and from that
 * folder alone the packed JDK starts and the JUnit console launcher runs test classes (the CPU backend's natives,
 * Jackson and safetensors through the packed jars), as `run` does on the GPU machine. Packs with gzip -1, so the size
 * asserted is an upper bound of the default (-6) pack's.
 */
class GpuSuitePackTest {
    static final long LIMIT = 64L * 1024 * 1024;

    @TempDir
    Path tmp;

    record Run(int exit, String output) {}

    /** Runs bash with args in folder dir; its output goes to a log in logs (never into the repository). */
    static Run bash(Path dir, Path logs, Map<String, String> env, long timeoutSeconds, String... args)
            throws Exception {
        List<String> cmd = new java.util.ArrayList<>(List.of("bash"));
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true);
        pb.environment().putAll(env);
        Path log = Files.createTempFile(logs, "bash", ".log");
        pb.redirectOutput(log.toFile());
        Process p = pb.start();
        if (!p.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            fail(String.join(" ", args) + " did not finish in " + timeoutSeconds + " s:\n" + Files.readString(log));
        }
        return new Run(p.exitValue(), Files.readString(log, StandardCharsets.UTF_8));
    }

    static long size(Path dir) throws IOException {
        try (Stream<Path> s = Files.walk(dir)) {
            return s.filter(Files::isRegularFile).mapToLong(f -> f.toFile().length()).sum();
        }
    }

    @Test
    void packFitsTheDeviceCallAndItsJdkAndConsoleLauncherRun() throws Exception {
        Path root = Path.of("").toAbsolutePath();
        Path script = root.resolve("bench/gpu/run.sh");
        assertTrue(Files.isRegularFile(script), "run from the repository root (surefire does): " + script);
        Path testClasses = Path.of(GpuSuitePackTest.class.getProtectionDomain().getCodeSource().getLocation().toURI());
        Path build = testClasses.getParent();
        Map<String, String> env = new java.util.HashMap<>(Map.of(
                "RLHF4J_BUILD", build.toString(),
                "JAVA_HOME", System.getProperty("java.home"), // the JDK 25 running the tests has jlink
                "PACK_GZIP", "1",
                "TMPDIR", tmp.toString()));
        String cp = System.getProperty("java.class.path", "");
        if (cp.contains("jackson-databind")) env.put("RLHF4J_PACK_CLASSPATH", cp); // surefire's test class path

        Path pack = tmp.resolve("pack");
        Run packed = bash(root, tmp, env, 300, script.toString(), "pack", pack.toString());
        assertEquals(0, packed.exit(), "pack failed:\n" + packed.output());
        for (String f : new String[] {"run.sh", "rlhf4j-gpu.tar.gz", "PACKED.txt"})
            assertTrue(Files.isRegularFile(pack.resolve(f)), f + " missing from the pack:\n" + packed.output());
        long bytes = size(pack);
        assertTrue(bytes < LIMIT, "the pack is " + bytes + " bytes, over 64 MiB:\n" + packed.output());
        String manifest = Files.readString(pack.resolve("PACKED.txt"));
        assertTrue(manifest.contains("librlhf4j_cpu.so") && manifest.contains("jackson-databind"), manifest);

        // From here on only the packed folder is used, as on the GPU machine.
        Map<String, String> device = Map.of("RLHF4J_GPU_WORK", tmp.resolve("work").toString(),
                "OUT", tmp.resolve("out").toString(), "TMPDIR", tmp.toString());
        Run version = bash(tmp, tmp, device, 120, pack.resolve("run.sh").toString(), "java", "-version");
        assertEquals(0, version.exit(), version.output());
        assertTrue(version.output().contains("version \"25"), version.output());

        Run smoke = bash(tmp, tmp, device, 300, pack.resolve("run.sh").toString(), "run", "--no-bench",
                "--select-class", "io.github.rlhf4j.runtime.BackendTest",
                "--select-class", "io.github.rlhf4j.model.HfModelTest");
        String log = Files.readString(tmp.resolve("out/tests.log"));
        assertEquals(0, smoke.exit(), smoke.output() + "\n" + log);
        String summary = Files.readString(tmp.resolve("out/summary.txt"));
        assertTrue(summary.contains(" 0 tests failed") && !summary.contains(" 0 tests successful"), summary);
        assertTrue(Files.isRegularFile(tmp.resolve("out/junit/TEST-junit-jupiter.xml")), "no XML report:\n" + log);
        System.out.println("GpuSuitePackTest: pack of " + bytes + " bytes (gzip -1); " + summary.strip() + "\n"
                + manifest);
    }
}
