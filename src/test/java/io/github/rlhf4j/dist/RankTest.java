package io.github.rlhf4j.dist;

import static io.github.rlhf4j.dist.LaunchTest.assertMessage;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.rlhf4j.dist.Launch.Rank;
import io.github.rlhf4j.dist.Launch.Rank.Source;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * {@link Rank#fromEnvironment(Map)} on the variables each launcher sets: Open MPI's mpirun, MPICH's Hydra (PMI),
 * Slurm's srun with and without a PMI plugin, a Slurm batch script (one process), and nothing; and its errors when the
 * variables are incomplete or disagree.
 */
class RankTest {
    private static Map<String, String> env(String... kv) {
        Map<String, String> m = new HashMap<>();
        for (int i = 0; i < kv.length; i += 2) m.put(kv[i], kv[i + 1]);
        return m;
    }

    /** What a Slurm batch script of a 2 x 8 job has, and so every process started inside it. */
    private static final String[] BATCH = {"SLURM_JOB_ID", "4242", "SLURM_PROCID", "0", "SLURM_NTASKS", "16",
            "SLURM_LOCALID", "0", "SLURM_NODEID", "0", "SLURM_TASKS_PER_NODE", "8(x2)"};

    private static Map<String, String> batchPlus(String... kv) {
        Map<String, String> m = env(BATCH);
        m.putAll(env(kv));
        return m;
    }

    @Test
    void noLauncherIsOneProcess() {
        assertSame(Rank.SINGLE, Rank.fromEnvironment(env("HOME", "/root")));
        assertFalse(Rank.SINGLE.launched());
        assertTrue(Rank.SINGLE.isRoot());
    }

    @Test
    void aSlurmBatchScriptWithoutSrunIsOneProcess() {
        assertSame(Rank.SINGLE, Rank.fromEnvironment(env(BATCH)));
    }

    @Test
    void openMpiRanksReadOmpiCommWorldEvenInsideASlurmJob() {
        // mpirun inside an allocation starts its daemons with srun, so the ranks also carry the daemons' SLURM_*.
        Rank r = Rank.fromEnvironment(batchPlus("OMPI_COMM_WORLD_RANK", "13", "OMPI_COMM_WORLD_SIZE", "16",
                "OMPI_COMM_WORLD_LOCAL_RANK", "5", "OMPI_COMM_WORLD_LOCAL_SIZE", "8", "PMIX_RANK", "13",
                "SLURM_STEP_ID", "0", "SLURM_STEP_NUM_TASKS", "2", "SLURM_PROCID", "1"));
        assertEquals(new Rank(13, 16, 5, 8, Source.OPEN_MPI), r);
        assertTrue(r.launched());
        assertFalse(r.isRoot());
    }

    @Test
    void hydraRanksReadPmiAndMpiLocalRankId() {
        assertEquals(new Rank(3, 4, 1, 2, Source.PMI), Rank.fromEnvironment(env("PMI_RANK", "3", "PMI_SIZE", "4",
                "MPI_LOCALRANKID", "1", "MPI_LOCALNRANKS", "2")));
    }

    @Test
    void srunWithPmi2TakesTheLocalFiguresFromSlurm() {
        assertEquals(new Rank(9, 16, 1, 8, Source.PMI), Rank.fromEnvironment(batchPlus("PMI_RANK", "9", "PMI_SIZE",
                "16", "SLURM_STEP_ID", "0", "SLURM_PROCID", "9", "SLURM_LOCALID", "1", "SLURM_NODEID", "1",
                "SLURM_STEP_NUM_TASKS", "16", "SLURM_STEP_TASKS_PER_NODE", "8(x2)")));
    }

    @Test
    void srunTasksReadTheirJobStep() {
        // the step's own figures win over the job's (srun may run fewer tasks than the job has)
        Rank r = Rank.fromEnvironment(batchPlus("SLURM_STEP_ID", "0", "SLURM_PROCID", "11", "SLURM_STEP_NUM_TASKS",
                "16", "SLURM_LOCALID", "3", "SLURM_NODEID", "1", "SLURM_STEP_TASKS_PER_NODE", "8(x2)", "PMIX_RANK",
                "11"));
        assertEquals(new Rank(11, 16, 3, 8, Source.SLURM), r);
        // uneven nodes, and the pre-step spellings (SLURM_STEPID, the job's SLURM_NTASKS and SLURM_TASKS_PER_NODE)
        assertEquals(new Rank(2, 3, 0, 1, Source.SLURM), Rank.fromEnvironment(env("SLURM_STEPID", "1",
                "SLURM_PROCID", "2", "SLURM_NTASKS", "3", "SLURM_LOCALID", "0", "SLURM_NODEID", "1",
                "SLURM_TASKS_PER_NODE", "2,1")));
        assertEquals(new Rank(0, 1, 0, 1, Source.SLURM), Rank.fromEnvironment(env("SLURM_STEP_ID", "0",
                "SLURM_PROCID", "0", "SLURM_STEP_NUM_TASKS", "1", "SLURM_LOCALID", "0", "SLURM_NODEID", "0",
                "SLURM_STEP_TASKS_PER_NODE", "1")));
    }

    @Test
    void incompleteOrInconsistentVariablesAreErrorsNamingThem() {
        assertMessage(() -> Rank.fromEnvironment(env("OMPI_COMM_WORLD_RANK", "1", "OMPI_COMM_WORLD_LOCAL_RANK", "1",
                "OMPI_COMM_WORLD_LOCAL_SIZE", "2")), "launcher environment: OMPI_COMM_WORLD_SIZE is not set");
        assertMessage(() -> Rank.fromEnvironment(env("OMPI_COMM_WORLD_RANK", "4", "OMPI_COMM_WORLD_SIZE", "4",
                "OMPI_COMM_WORLD_LOCAL_RANK", "0", "OMPI_COMM_WORLD_LOCAL_SIZE", "2")),
                "launcher environment (OPEN_MPI): OMPI_COMM_WORLD_RANK=4 is outside 0..3 (OMPI_COMM_WORLD_SIZE=4)");
        assertMessage(() -> Rank.fromEnvironment(env("OMPI_COMM_WORLD_RANK", "1", "OMPI_COMM_WORLD_SIZE", "4",
                "OMPI_COMM_WORLD_LOCAL_RANK", "2", "OMPI_COMM_WORLD_LOCAL_SIZE", "2")),
                "launcher environment (OPEN_MPI): OMPI_COMM_WORLD_LOCAL_RANK=2 is outside 0..1 "
                        + "(OMPI_COMM_WORLD_LOCAL_SIZE gives 2 on this node)");
        assertMessage(() -> Rank.fromEnvironment(env("OMPI_COMM_WORLD_RANK", "1", "OMPI_COMM_WORLD_SIZE", "4",
                "OMPI_COMM_WORLD_LOCAL_RANK", "1", "OMPI_COMM_WORLD_LOCAL_SIZE", "8")),
                "launcher environment (OPEN_MPI): OMPI_COMM_WORLD_LOCAL_SIZE gives 8 ranks on this node, outside "
                        + "1..4 (OMPI_COMM_WORLD_SIZE=4)");
        assertMessage(() -> Rank.fromEnvironment(env("OMPI_COMM_WORLD_RANK", "one", "OMPI_COMM_WORLD_SIZE", "4",
                "OMPI_COMM_WORLD_LOCAL_RANK", "1", "OMPI_COMM_WORLD_LOCAL_SIZE", "2")),
                "launcher environment: OMPI_COMM_WORLD_RANK=one is not a whole number");
        assertMessage(() -> Rank.fromEnvironment(env("OMPI_COMM_WORLD_RANK", "1", "OMPI_COMM_WORLD_SIZE", "4",
                "OMPI_COMM_WORLD_LOCAL_RANK", "1", "OMPI_COMM_WORLD_LOCAL_SIZE", "2", "PMIX_RANK", "3")),
                "launcher environment: PMIX_RANK=3 disagrees with rank 1 from OPEN_MPI");
        assertMessage(() -> Rank.fromEnvironment(env("PMI_RANK", "1", "PMI_SIZE", "2")),
                "launcher environment: PMI_RANK/PMI_SIZE are set but neither MPI_LOCALRANKID/MPI_LOCALNRANKS nor a "
                        + "Slurm job step says which of this node's GPUs the rank uses");
        assertMessage(() -> Rank.fromEnvironment(env("PMIX_RANK", "0")), "launcher environment: PMIX_RANK=0 is set "
                + "but nothing gives the world size (OMPI_COMM_WORLD_SIZE, PMI_SIZE or a Slurm job step's "
                + "SLURM_STEP_NUM_TASKS)");
        assertMessage(() -> Rank.fromEnvironment(env(Launch.LAUNCHED, "1")), "launcher environment: RLHF4J_LAUNCHED=1 "
                + "says mpirun started this process, but no OMPI_COMM_WORLD_*, PMI_* or SLURM_* variables give its "
                + "rank");
        assertMessage(() -> Rank.fromEnvironment(env("SLURM_STEP_ID", "0", "SLURM_PROCID", "3",
                "SLURM_STEP_NUM_TASKS", "12", "SLURM_LOCALID", "3", "SLURM_NODEID", "0",
                "SLURM_STEP_TASKS_PER_NODE", "8(x2)")), "launcher environment (SLURM): SLURM_STEP_TASKS_PER_NODE=8(x2) "
                + "adds up to 16 tasks but SLURM_STEP_NUM_TASKS=12");
        assertMessage(() -> Rank.fromEnvironment(env("SLURM_STEP_ID", "0", "SLURM_PROCID", "3",
                "SLURM_STEP_NUM_TASKS", "16", "SLURM_LOCALID", "3", "SLURM_NODEID", "2",
                "SLURM_STEP_TASKS_PER_NODE", "8(x2)")), "launcher environment: SLURM_NODEID=2 but "
                + "SLURM_STEP_TASKS_PER_NODE=8(x2) lists 2 node(s)");
        assertMessage(() -> Rank.fromEnvironment(env("SLURM_STEP_ID", "0", "SLURM_PROCID", "3",
                "SLURM_STEP_NUM_TASKS", "16", "SLURM_LOCALID", "3", "SLURM_STEP_TASKS_PER_NODE", "8x2")),
                "launcher environment: SLURM_STEP_TASKS_PER_NODE=8x2: expected entries like 8 or 8(x2)");
        assertMessage(() -> new Rank(2, 2, 0, 1, Source.SLURM), "rank 2 of 2, local rank 0 of 1: not a place in a run");
    }

    @Test
    void theGpuIsTheLocalRankUnlessTheLauncherGaveTheRankItsOwn() {
        Rank r = new Rank(6, 8, 2, 4, Source.OPEN_MPI);
        assertEquals(2, r.gpu(env()));
        assertEquals(2, r.gpu(env("CUDA_VISIBLE_DEVICES", "4,5,6,7")));  // index among the visible, not the id
        assertEquals(0, r.gpu(env("CUDA_VISIBLE_DEVICES", "GPU-8d1c2f0e-aaaa-bbbb-cccc-0123456789ab")));
        assertMessage(() -> r.gpu(env("CUDA_VISIBLE_DEVICES", "0,1")),
                "local rank 2 of 4 on this node, but CUDA_VISIBLE_DEVICES=0,1 shows 2 GPU(s)");
        assertMessage(() -> r.gpu(env("CUDA_VISIBLE_DEVICES", "")),
                "local rank 2 of 4 on this node, but CUDA_VISIBLE_DEVICES= shows 0 GPU(s)");
    }
}
