package io.github.rlhf4j.dist;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.github.rlhf4j.runtime.DistAbi;
import io.github.rlhf4j.runtime.NativeLoader;
import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * MpiCommunicator across real processes: {@link MpiRankMain} started by Open MPI's mpirun with this test's java, class
 * path and JVM flags, 2, 3 and 4 ranks (oversubscribed on a small machine), each rank checking every collective
 * against values it computes itself. Also the faults: a rank killed with SIGKILL in the middle of a collective, and
 * the watchdog under a launcher that does not end the job. Skipped, saying so, only where mpirun is not installed.
 */
class MpiCommunicatorTest {
    private static String mpirun;

    @BeforeAll
    static void needsMpirun() {
        mpirun = onPath("mpirun").orElse(null);
        if (mpirun == null) {
            String why = "MpiCommunicatorTest skipped: mpirun not found on PATH (install openmpi-bin and libopenmpi-dev)";
            System.out.println(why);
            Assumptions.assumeTrue(false, why);
        }
        assertTrue(NativeLoader.find(DistAbi.LIBRARY).isPresent(), "mpirun is installed but this build has no "
                + "librlhf4j_dist.so: the build found no mpicc (install libopenmpi-dev and rebuild)");
    }

    @Test
    void twoRanksAgreeOnEveryCollectiveAndAKilledRankStopsTheOtherWithItsName() throws Exception {
        // NCCL's glue is checked in the same run, over the test-only stand-ins for libnccl.so.2 and libcuda.so.1
        // that the native build leaves beside its objects (native/dist/tests).
        Path stubs = Path.of(MpiCommunicatorTest.class.getProtectionDomain().getCodeSource().getLocation().toURI())
                .getParent().resolve("native-obj/dist/stubs");
        boolean glue = Files.isRegularFile(stubs.resolve("libnccl.so.2"));
        if (!glue) System.out.println("MpiCommunicatorTest: no NCCL stand-ins at " + stubs + ": NCCL glue not checked");
        Job job = Job.start(2, List.of(), List.of(), "kill", glue ? Map.of("RLHF4J_NCCL", stubs.toString(),
                "LD_LIBRARY_PATH", stubs + File.pathSeparator + System.getenv().getOrDefault("LD_LIBRARY_PATH", ""))
                : Map.of());
        String pid = job.await(Pattern.compile("rank 1: pid=(\\d+) waiting to be killed"), 60).group(1);
        job.await(Pattern.compile("rank 0: entering allReduce"), 10);
        Thread.sleep(300); // rank 0 is now blocked inside MPI_Allreduce, waiting for rank 1
        long t0 = System.nanoTime();
        assertTrue(ProcessHandle.of(Long.parseLong(pid)).map(ProcessHandle::destroyForcibly).orElse(false),
                "could not SIGKILL rank 1 (pid " + pid + ")");
        int code = job.finish(90);
        double stopped = (System.nanoTime() - t0) / 1e9;
        String out = job.output();
        System.out.printf("MpiCommunicatorTest: 2 ranks: checks passed; after kill -9 of rank 1 the job ended in %.1f s "
                + "(exit %d)%n", stopped, code);
        for (int r = 0; r < 2; r++) assertTrue(out.contains("rank " + r + ": OK ("), "rank " + r + " checks\n" + out);
        for (int r = 0; glue && r < 2; r++) assertTrue(out.contains("rank " + r + ": NCCL glue OK"), out);
        assertTrue(!out.contains("FAIL"), out);
        assertTrue(stopped < 60, "the surviving rank took " + stopped + " s to stop\n" + out);
        assertNotEquals(0, code, out);
        // mpirun names the lost rank: "mpirun noticed that process rank 1 with PID ... exited on signal 9 (Killed).",
        // and the survivor, ended by mpirun, says which call it was in.
        assertTrue(Pattern.compile("process rank 1 .*signal 9").matcher(out).find(), out);
        assertTrue(out.contains("rlhf4j: rank 0/2: stopped during allReduce of "), out);
    }

    @Test
    void fourRanksAgreeOnEveryCollective() throws Exception {
        // with the emulated CUDA device: DeviceCommunicator's staged collectives too
        Job job = Job.start(4, List.of(), List.of("-Drlhf4j.emu.dir="
                + io.github.rlhf4j.kernels.Emulated.folder().toAbsolutePath()), "collectives", Map.of());
        int code = job.finish(120);
        String out = job.output();
        System.out.printf("MpiCommunicatorTest: 4 ranks: %.1f s%n", job.seconds());
        assertEquals(0, code, out);
        for (int r = 0; r < 4; r++) {
            assertTrue(out.contains("rank " + r + ": OK ("), "rank " + r + " checks\n" + out);
            assertTrue(out.contains("rank " + r + ": device collectives OK"), "rank " + r + " device checks\n" + out);
            assertTrue(out.contains("rank " + r + ": closed"), "rank " + r + " after close\n" + out);
        }
        assertTrue(!out.contains("FAIL"), out);
    }

    /**
     * Under {@code mpirun --enable-recovery} a dead rank does not end the job, so only the watchdog stops rank 0's
     * all-reduce: its report names the call, rank 1 as lost (no answer) and rank 2 as alive but elsewhere.
     */
    /**
     * A rank busy with files (rank 0 saving a model) past the collectives' limit does not end the job while the
     * others wait inside {@link Communicator#waitingOnFiles}; outside it the limit is the collectives' again.
     */
    @Test
    void ranksWaitingOnAnotherRanksFilesGetTheFileLimit() throws Exception {
        Job job = Job.start(2, List.of(), List.of("-Drlhf4j.dist.timeout=3", "-Drlhf4j.dist.io_timeout=60"), "files",
                Map.of());
        int code = job.finish(90);
        String out = job.output();
        for (int r = 0; r < 2; r++)
            assertTrue(out.contains("rank " + r + ": waited on files past the collectives' limit"), out);
        assertTrue(out.contains("rank 1/2: barrier #") && out.contains("has not completed after"), out);
        assertTrue(!out.contains("FAIL"), out);
        assertEquals(124, code, out);
    }

    @Test
    void watchdogNamesTheLostAndTheStuckRankWhenTheLauncherDoesNot() throws Exception {
        Job job = Job.start(3, List.of("--enable-recovery"), List.of("-Drlhf4j.dist.timeout=5"), "watchdog", Map.of());
        String pid = job.await(Pattern.compile("rank 1: pid=(\\d+) waiting to be killed"), 60).group(1);
        job.await(Pattern.compile("rank 0: entering allReduce"), 10);
        job.await(Pattern.compile("rank 2: alive, outside any collective"), 10);
        String out = killRankOne(job, pid, "");
        Matcher report = Pattern.compile("rlhf4j_dist: rank 0/3: all_reduce #\\d+ \\(4000 bytes, f32\\) has not "
                + "completed after [\\d.]+ s.*").matcher(out);
        assertTrue(report.find(), out);
        String line = report.group();
        assertTrue(line.contains("rank 1 (no answer within 3 s: lost"), line);
        assertTrue(line.contains("rank 2 (alive, in no collective"), line);
        assertTrue(line.contains("Aborting the job (exit code 124)"), line);
    }

    /** The same for a rank lost while the others wait on a gather started ahead (stage 3's prefetch). */
    @Test
    void aRankKilledWhileTheOtherWaitsOnAGatherStartedAheadIsNamed() throws Exception {
        Job job = Job.start(2, List.of("--enable-recovery"), List.of("-Drlhf4j.dist.timeout=5"), "watchdog-ahead",
                Map.of());
        String pid = job.await(Pattern.compile("rank 1: pid=(\\d+) waiting to be killed"), 60).group(1);
        job.await(Pattern.compile("rank 0: starting gathers ahead"), 10);
        String out = killRankOne(job, pid, ", a gather started ahead pending");
        Matcher report = Pattern.compile("rlhf4j_dist: rank 0/2: (wait|all_gather_start) #\\d+ .*has not completed "
                + "after [\\d.]+ s.*").matcher(out);
        assertTrue(report.find(), out);
        assertTrue(report.group().contains("rank 1 (no answer within 3 s: lost"), report.group());
    }

    /** kill -9 of rank 1 (pid {@code pid}); the job must end within 60 s. Returns its output. */
    private static String killRankOne(Job job, String pid, String what) throws Exception {
        long t0 = System.nanoTime();
        assertTrue(ProcessHandle.of(Long.parseLong(pid)).map(ProcessHandle::destroyForcibly).orElse(false),
                "could not SIGKILL rank 1 (pid " + pid + ")");
        job.finish(90);
        double stopped = (System.nanoTime() - t0) / 1e9;
        String out = job.output();
        System.out.printf("MpiCommunicatorTest: watchdog (5 s limit) ended the job %.1f s after kill -9%s%n", stopped,
                what);
        assertTrue(stopped < 60, out);
        return out;
    }

    @Test
    void aProcessStartedByHandIsAWorldOfOneAndSaysWhyNcclIsMissing() throws Exception {
        Job job = Job.startAlone("singleton");
        int code = job.finish(60);
        String out = job.output();
        assertEquals(0, code, out);
        assertTrue(out.contains("singleton: OK Open MPI"), out);
        // No GPU machine with NCCL here: the message says what is missing and on which rank.
        assertTrue(out.contains("singleton: nccl: rlhf4j_dist_nccl_init failed") && out.contains("rank(s) 0")
                && out.contains("libnccl.so.2"), out);
    }

    // ---- launching -----------------------------------------------------------------------------------------------------

    private static Optional<String> onPath(String exe) {
        for (String dir : System.getenv().getOrDefault("PATH", "").split(File.pathSeparator)) {
            Path p = Path.of(dir, exe);
            if (Files.isExecutable(p)) return Optional.of(p.toString());
        }
        return Optional.empty();
    }

    /** This test JVM's java and class path, and the flags the project's forked JVMs get (the pom's argLine). */
    private static List<String> javaCommand(List<String> jvmFlags, String scenario) {
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        for (String a : ManagementFactory.getRuntimeMXBean().getInputArguments())
            if (a.startsWith("--enable-native-access") || a.startsWith("--add-modules") || a.startsWith("-Xss"))
                cmd.add(a);
        // Several JVMs share two cores: start-up matters more than peak speed.
        cmd.addAll(List.of("-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"));
        cmd.addAll(jvmFlags);
        cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), MpiRankMain.class.getName(), scenario));
        return cmd;
    }

    /** A child process whose merged output is collected line by line. */
    private static final class Job {
        private final Process process;
        private final List<String> lines = new ArrayList<>();
        private final long start = System.nanoTime();
        private long end;

        private Job(ProcessBuilder pb) throws IOException {
            pb.redirectErrorStream(true);
            // Open MPI refuses root without these (CI runs as root). Its shared-memory transport copies large
            // messages with process_vm_readv, which containers often forbid (Open MPI's FAQ: Docker needs
            // SYS_PTRACE); copying through the shared segment works everywhere. One OpenMP thread per rank: the ranks
            // already share the cores.
            pb.environment().put("OMPI_ALLOW_RUN_AS_ROOT", "1");
            pb.environment().put("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
            pb.environment().put("OMPI_MCA_btl_vader_single_copy_mechanism", "none");
            pb.environment().put("OMP_NUM_THREADS", "1");
            process = pb.start();
            Thread reader = new Thread(() -> {
                try (BufferedReader r = new BufferedReader(
                        new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
                    for (String line; (line = r.readLine()) != null; ) {
                        synchronized (lines) {
                            lines.add(line);
                            lines.notifyAll();
                        }
                    }
                } catch (IOException e) {
                    // the process is gone; what was read stays
                }
            }, "mpirun-output");
            reader.setDaemon(true);
            reader.start();
        }

        static Job start(int ranks, List<String> mpirunFlags, List<String> jvmFlags, String scenario,
                Map<String, String> env) throws IOException {
            List<String> cmd = new ArrayList<>(List.of(mpirun, "-np", Integer.toString(ranks), "--oversubscribe",
                    "--bind-to", "none"));
            cmd.addAll(mpirunFlags);
            cmd.addAll(javaCommand(jvmFlags, scenario));
            ProcessBuilder pb = new ProcessBuilder(cmd);
            pb.environment().putAll(env);
            return new Job(pb);
        }

        static Job startAlone(String scenario) throws IOException {
            ProcessBuilder pb = new ProcessBuilder(javaCommand(List.of(), scenario));
            for (String v : List.of("OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "SLURM_NTASKS"))
                pb.environment().remove(v);
            return new Job(pb);
        }

        /** The first output line matching {@code p}, waiting up to {@code seconds}. */
        Matcher await(Pattern p, int seconds) throws InterruptedException {
            long deadline = System.nanoTime() + seconds * 1_000_000_000L;
            boolean exited = false;
            synchronized (lines) {
                for (;;) {
                    for (String l : lines) {
                        Matcher m = p.matcher(l);
                        if (m.find()) return m;
                    }
                    long left = deadline - System.nanoTime();
                    if (left <= 0 || exited) break;
                    exited = !process.isAlive(); // one more look after the last lines are read
                    lines.wait(Math.max(1, Math.min(200, left / 1_000_000)));
                }
            }
            kill();
            return fail("no line matching '" + p + "' within " + seconds + " s\n" + output());
        }

        /** The exit code, waiting up to {@code seconds} (then the job is killed and the test fails). */
        int finish(int seconds) throws InterruptedException {
            if (!process.waitFor(seconds, TimeUnit.SECONDS)) {
                kill();
                fail("the job did not end within " + seconds + " s\n" + output());
            }
            end = System.nanoTime();
            Thread.sleep(100); // the reader drains the last lines
            return process.exitValue();
        }

        double seconds() {
            return (end - start) / 1e9;
        }

        String output() {
            synchronized (lines) {
                return String.join("\n", lines);
            }
        }

        private void kill() {
            process.descendants().forEach(ProcessHandle::destroyForcibly);
            process.destroyForcibly();
        }
    }
}
