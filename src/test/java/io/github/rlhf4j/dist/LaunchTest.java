package io.github.rlhf4j.dist;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.rlhf4j.dist.Launch.Deployment;
import io.github.rlhf4j.dist.Launch.Host;
import io.github.rlhf4j.dist.Launch.Local;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.api.io.TempDir;

/**
 * The {@code mpirun} command lines that {@link Launch} builds for each deployment type, written out in full, and the
 * DeepSpeed-style hostfile's errors. Nothing is launched here ({@link LaunchMpirunTest} runs one for real).
 */
class LaunchTest {
    private static final List<String> PROGRAM = List.of("/opt/rlhf4j/bin/rlhf4j");

    @TempDir
    Path tmp;

    private static Local local(int cpus, String... env) {
        Map<String, String> m = new HashMap<>();
        for (int i = 0; i < env.length; i += 2) m.put(env[i], env[i + 1]);
        return new Local(m, cpus, Path.of("/work/run"));
    }

    private Path hostfile(String text) throws IOException {
        Path f = tmp.resolve("hostfile");
        Files.writeString(f, text);
        return f;
    }

    private static List<String> expected(String... parts) {
        return new ArrayList<>(List.of(parts));
    }

    @Test
    void singleNodeRunsNumGpusLocalRanksWithTheSameArgumentsLessTheLauncherFlags() throws IOException {
        Local here = local(16, "PATH", "/usr/bin", "JAVA_HOME", "/jdk", "NCCL_DEBUG", "INFO", "HOME", "/root",
                "RLHF4J_JAVA_OPTS", "-Xmx8g", "LD_LIBRARY_PATH", "/usr/local/cuda/lib64", "SHELL", "/bin/bash",
                "RLHF4J_MPIRUN_OPTS", "  --oversubscribe   --mca btl ^openib ");
        List<String> args = List.of("train", "--deployment-type", "single_node", "--num-gpus", "4", "--step", "1",
                "2", "3", "--actor-model", "models/opt-1.3b");
        Launch l = Launch.plan(Deployment.SINGLE_NODE, 4, null, args, PROGRAM, here);
        assertEquals(4, l.ranks());
        assertEquals(expected("mpirun", "-np", "4", "--host", "localhost:4", "--map-by", "slot", "--bind-to", "none",
                "--wdir", "/work/run", "-x", "RLHF4J_LAUNCHED=1", "-x", "OMP_NUM_THREADS=4",
                "-x", "JAVA_HOME", "-x", "LD_LIBRARY_PATH", "-x", "NCCL_DEBUG", "-x", "PATH", "-x", "RLHF4J_JAVA_OPTS",
                "--oversubscribe", "--mca", "btl", "^openib",
                "/opt/rlhf4j/bin/rlhf4j", "train", "--deployment-type", "single_node", "--step", "1", "2", "3",
                "--actor-model", "models/opt-1.3b"), l.command());
    }

    @Test
    void multiNodeTakesEverySlotOfTheHostfile() throws IOException {
        Path hf = hostfile("""
                # two DGX A100 nodes
                worker-0 slots=8

                worker-1   slots=8   # the second
                """);
        Local here = local(128, "CUDA_VISIBLE_DEVICES", "0,1,2,3,4,5,6,7", "RLHF4J_MPIRUN", "/opt/ompi/bin/mpirun");
        List<String> args = List.of("train", "--hostfile=" + hf, "--deployment-type", "multi_node", "--seed", "7");
        Launch l = Launch.plan(Deployment.MULTI_NODE, 0, hf, args, PROGRAM, here);
        assertEquals(16, l.ranks());
        assertEquals(expected("/opt/ompi/bin/mpirun", "-np", "16", "--host", "worker-0:8,worker-1:8", "--map-by",
                "slot", "--bind-to", "none", "--wdir", "/work/run", "-x", "RLHF4J_LAUNCHED=1",
                "-x", "OMP_NUM_THREADS=16", "-x", "CUDA_VISIBLE_DEVICES",
                "/opt/rlhf4j/bin/rlhf4j", "train", "--deployment-type", "multi_node", "--seed", "7"), l.command());
    }

    @Test
    void multiNodeNumGpusTakesThatManySlotsOfEachHostAndASetOmpNumThreadsIsPassedOn() throws IOException {
        Path hf = hostfile("a slots=8\nb slots=4\n");
        Launch l = Launch.plan(Deployment.MULTI_NODE, 2, hf, List.of("train", "--num-gpus=2", "--hostfile", hf.toString()),
                PROGRAM, local(8, "OMP_NUM_THREADS", "3"));
        assertEquals(4, l.ranks());
        assertEquals(expected("mpirun", "-np", "4", "--host", "a:2,b:2", "--map-by", "slot", "--bind-to", "none",
                "--wdir", "/work/run", "-x", "RLHF4J_LAUNCHED=1", "-x", "OMP_NUM_THREADS",
                "/opt/rlhf4j/bin/rlhf4j", "train"), l.command());
    }

    @Test
    void launcherFlagsAreDroppedInBothSpellingsAndNothingAfterTheEndOfOptions() {
        assertEquals(List.of("train", "--seed", "1", "--", "--num-gpus", "2"), Launch.withoutLauncherFlags(List.of(
                "train", "--num-gpus", "4", "--seed", "1", "--hostfile=h", "--", "--num-gpus", "2")));
        assertEquals(List.of("train", "--num-gpus-extra", "1"),
                Launch.withoutLauncherFlags(List.of("train", "--num-gpus-extra", "1")));
        assertMessage(() -> Launch.withoutLauncherFlags(List.of("train", "--hostfile")), "--hostfile needs a value");
    }

    @Test
    void deploymentTypesParseByTheirFlagSpelling() {
        assertEquals(Deployment.SINGLE_NODE, Deployment.parse("single_node"));
        assertEquals("multi_node", Deployment.MULTI_NODE.flag());
        assertMessage(() -> Deployment.parse("multi-node"),
                "--deployment-type multi-node: expected single_gpu, single_node or multi_node");
    }

    @Test
    void plansThatCannotWorkAreRefusedNamingTheFlag() throws IOException {
        Path hf = hostfile("a slots=4\n");
        assertMessage(() -> Launch.plan(Deployment.SINGLE_GPU, 1, null, List.of("train"), PROGRAM, local(4)),
                "--deployment-type single_gpu runs in this process; there is nothing to launch");
        assertMessage(() -> Launch.plan(Deployment.SINGLE_NODE, 0, null, List.of("train"), PROGRAM, local(4)),
                "--deployment-type single_node needs --num-gpus N (N >= 1)");
        assertMessage(() -> Launch.plan(Deployment.SINGLE_NODE, 2, hf, List.of("train"), PROGRAM, local(4)),
                "--hostfile " + hf + " is for --deployment-type multi_node; single_node runs --num-gpus ranks on "
                        + "this machine");
        assertMessage(() -> Launch.plan(Deployment.SINGLE_NODE, 4, null, List.of("train"), PROGRAM,
                local(4, "CUDA_VISIBLE_DEVICES", "2,5")), "--num-gpus 4 but CUDA_VISIBLE_DEVICES=2,5 shows 2 GPU(s)");
        assertMessage(() -> Launch.plan(Deployment.MULTI_NODE, 0, null, List.of("train"), PROGRAM, local(4)),
                "--deployment-type multi_node needs --hostfile FILE (lines 'HOST slots=N'), or ranks started by "
                        + "srun or an MPIJob");
        assertMessage(() -> Launch.plan(Deployment.MULTI_NODE, 8, hf, List.of("train"), PROGRAM, local(4)),
                "--num-gpus 8 per node, but hostfile " + hf + " gives a slots=4");
        Path missing = tmp.resolve("nope");
        assertMessage(() -> Launch.plan(Deployment.MULTI_NODE, 0, missing, List.of("train"), PROGRAM, local(4)),
                "--hostfile " + missing + ": no such file");
    }

    @Test
    void hostfileErrorsNameTheFileAndTheLine() {
        assertEquals(List.of(new Host("n1", 8), new Host("n2.cluster", 2)),
                Launch.parseHostfile("hf", List.of("#", "  n1 slots=8", "n2.cluster slots = 2 # rest")));
        assertMessage(() -> Launch.parseHostfile("hf", List.of("n1 slots=8", "n2")),
                "hostfile hf line 2: expected 'HOST slots=N', got 'n2'");
        assertMessage(() -> Launch.parseHostfile("hf", List.of("n1 slots=8 max_slots=8")),
                "hostfile hf line 1: expected 'HOST slots=N', got 'n1 slots=8 max_slots=8'");
        assertMessage(() -> Launch.parseHostfile("hf", List.of("", "n1 slots=eight")),
                "hostfile hf line 2: slots=eight is not a whole number");
        assertMessage(() -> Launch.parseHostfile("hf", List.of("n1 slots=0")),
                "hostfile hf line 1: host n1: slots=0 must be >= 1");
        assertMessage(() -> Launch.parseHostfile("hf", List.of("n1 slots=8", "n1 slots=4")),
                "hostfile hf line 2: host n1 is listed twice");
        assertMessage(() -> Launch.parseHostfile("hf", List.of("a,b slots=1")),
                "hostfile hf line 1: host name 'a,b' is empty or holds a space or a comma");
        assertMessage(() -> Launch.parseHostfile("hf", List.of("# nothing", "")), "hostfile hf: no 'HOST slots=N' lines");
    }

    @Test
    void thisJvmRestartsTheSameJavaWithItsClassPath() {
        List<String> cmd = Launch.thisJvm("x.Main");
        assertEquals(Path.of(System.getProperty("java.home"), "bin", "java").toString(), cmd.getFirst());
        assertEquals(List.of("-cp", System.getProperty("java.class.path"), "x.Main"),
                cmd.subList(cmd.size() - 3, cmd.size()));
        assertTrue(cmd.contains("--enable-native-access=ALL-UNNAMED"), cmd.toString()); // surefire's argLine
    }

    static void assertMessage(Executable e, String message) {
        IllegalArgumentException x = assertThrows(IllegalArgumentException.class, e);
        assertEquals(message, x.getMessage());
    }
}
