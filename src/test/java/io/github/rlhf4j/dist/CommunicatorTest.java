package io.github.rlhf4j.dist;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/** How a process finds its communicator, and the byte-count convention (the multi-process runs: MpiCommunicatorTest). */
class CommunicatorTest {

    @Test
    void aProcessStartedByHandRunsAlone() {
        assertInstanceOf(SingleProcess.class, Communicator.choose(Map.of("PATH", "/usr/bin"), () -> {
            throw new AssertionError("the shim is not needed alone");
        }));
    }

    @Test
    void aWorldOfOneRunsAloneWhateverStartedIt() {
        assertInstanceOf(SingleProcess.class, Communicator.choose(Map.of("OMPI_COMM_WORLD_SIZE", "1",
                "OMPI_COMM_WORLD_RANK", "0", "OMPI_COMM_WORLD_LOCAL_RANK", "0", "OMPI_COMM_WORLD_LOCAL_SIZE", "1"),
                () -> {
                    throw new AssertionError("the shim is not needed alone");
                }));
    }

    @Test
    void aLaunchedProcessWithoutTheShimRefusesToRunAlone() {
        var e = assertThrows(IllegalStateException.class,
                () -> Communicator.choose(Map.of("OMPI_COMM_WORLD_SIZE", "2", "OMPI_COMM_WORLD_RANK", "1",
                        "OMPI_COMM_WORLD_LOCAL_RANK", "1", "OMPI_COMM_WORLD_LOCAL_SIZE", "2"), Optional::empty));
        assertTrue(e.getMessage().contains("started as rank 1 of 2 by OPEN_MPI"), e.getMessage());
        assertTrue(e.getMessage().contains("librlhf4j_dist.so") && e.getMessage().contains("libopenmpi-dev"),
                e.getMessage());
    }

    /** The ring volumes per rank, as the ZeRO paper counts them, written out. */
    @Test
    void trafficFollowsTheRingConvention() {
        long gib = 1L << 30;
        // data parallelism: an all-reduce of Psi bytes sends 2 (N-1)/N Psi per rank
        assertEquals(gib, Traffic.volume(Collective.ALL_REDUCE, gib, 2));
        assertEquals(1_879_048_192L, Traffic.volume(Collective.ALL_REDUCE, gib, 8)); // 1.75 GiB
        assertEquals(5333, Traffic.volume(Collective.ALL_REDUCE, 4000, 3));          // 5333.3, rounded down
        // ZeRO-2: reduce-scatter plus all-gather is the same 2 (N-1)/N Psi
        assertEquals(939_524_096L, Traffic.volume(Collective.REDUCE_SCATTER, gib, 8));
        assertEquals(939_524_096L, Traffic.volume(Collective.ALL_GATHER, gib, 8));
        assertEquals(1_879_048_192L, Traffic.volume(Collective.REDUCE_SCATTER, gib, 8)
                + Traffic.volume(Collective.ALL_GATHER, gib, 8));
        assertEquals(gib, Traffic.volume(Collective.BROADCAST, gib, 8));
        assertEquals(0, Traffic.volume(Collective.BARRIER, gib, 8));
        // alone, nothing moves
        for (Collective c : Collective.values()) assertEquals(0, Traffic.volume(c, gib, 1), c.name());
        // exact where size x 2 (N-1) would overflow a long: 2^62 x 6/4
        assertEquals(6_917_529_027_641_081_856L, Traffic.volume(Collective.ALL_REDUCE, 1L << 62, 4));
    }

    /**
     * A world of one keeps its communicator on any device (nothing to move), and {@link Communicator#agree} hands back
     * this rank's own failure as it was, not a {@link Communicator.PeerFailed}, which is for the ranks where the work
     * went well (the multi-rank case: DataParallelTrainTest.aSaveThatFailsOnRankZeroStopsEveryRank).
     */
    @Test
    void aWorldOfOneNeedsNoDeviceCommunicatorAndAgreesWithItself() {
        SingleProcess one = new SingleProcess();
        io.github.rlhf4j.runtime.Device emu = io.github.rlhf4j.kernels.Emulated.get().device();
        assertTrue(Communicator.forDevice(one, emu) == one, "a world of one moves nothing");
        assertTrue(Communicator.forDevice(one, io.github.rlhf4j.runtime.Device.cpu()) == one);
        int[] ran = {0};
        one.agree("count", () -> ran[0]++);
        assertEquals(1, ran[0]);
        var own = new java.io.UncheckedIOException(new java.io.IOException("disk full"));
        var e = assertThrows(java.io.UncheckedIOException.class, () -> one.agree("save", () -> {
            throw own;
        }));
        assertTrue(e == own, "this rank's own error, as it was");
    }
}
