package io.github.rlhf4j.dist;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.github.rlhf4j.dist.Launch.Deployment;
import io.github.rlhf4j.dist.Launch.Local;
import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * One real launch: {@code mpirun -np 2} of a small Java main ({@link RankProbe}) through the command line that
 * {@link Launch} builds, with {@link Launch#thisJvm} as the program. Each rank must find its place from Open MPI's
 * variables, get {@code RLHF4J_LAUNCHED=1}, the exported variables and the working directory, and see the arguments
 * without {@code --num-gpus}; a rank's failure must fail the launch. Skipped, saying why, where mpirun is absent.
 */
class LaunchMpirunTest {
    private static String mpirun;

    @TempDir
    Path tmp;

    @BeforeAll
    static void findMpirun() {
        for (String dir : System.getenv().getOrDefault("PATH", "").split(File.pathSeparator)) {
            Path p = Path.of(dir, "mpirun");
            if (Files.isExecutable(p)) {
                mpirun = p.toString();
                break;
            }
        }
        if (mpirun == null) System.out.println("LaunchMpirunTest skipped: no mpirun on the PATH (install openmpi-bin)");
    }

    private int launch(Path out, String... extraArgs) throws Exception {
        assumeTrue(mpirun != null, "no mpirun on the PATH (install openmpi-bin)");
        Map<String, String> env = new HashMap<>(System.getenv());
        env.remove("OMP_NUM_THREADS");
        env.put("RLHF4J_PROBE", "42");
        // Two ranks on however many cores this machine has; as root (containers, CI) mpirun wants both variables.
        env.put("RLHF4J_MPIRUN_OPTS", "--oversubscribe");
        List<String> args = new java.util.ArrayList<>(List.of("probe", "--num-gpus", "2", out.toString(), "--seed=7"));
        args.addAll(List.of(extraArgs));
        Launch l = Launch.plan(Deployment.SINGLE_NODE, 2, null, args, Launch.thisJvm(RankProbe.class.getName()),
                new Local(env, 2, tmp));
        return l.run(Map.of("RLHF4J_PROBE", "42", "RLHF4J_MPIRUN_OPTS", "--oversubscribe",
                "OMPI_ALLOW_RUN_AS_ROOT", "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1"));
    }

    @Test
    void twoRanksStartThroughMpirunAndKnowTheirPlace() throws Exception {
        Path out = Files.createDirectory(tmp.resolve("out"));
        assertEquals(0, launch(out));
        for (int r = 0; r < 2; r++)
            assertEquals("rank=" + r + " size=2 local=" + r + "/2 source=OPEN_MPI launched=1 omp=1 probe=42 cwd="
                    + tmp.toRealPath() + " args=probe " + out + " --seed=7\n",
                    Files.readString(out.resolve("rank-" + r + ".txt")));
    }

    @Test
    void aFailingRankFailsTheLaunch() throws Exception {
        Path out = Files.createDirectory(tmp.resolve("out"));
        assertEquals(3, launch(out, "fail-on-rank-1"));
    }
}
