package io.github.rlhf4j.dist;

import io.github.rlhf4j.runtime.DistAbi;
import io.github.rlhf4j.tensor.Tensor;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.Supplier;

/**
 * The collectives of data-parallel and ZeRO training over the processes of one job, on flat tensors.
 *
 * <p>The implementations: {@link SingleProcess} (a world of 1: no-ops and copies), {@link MpiCommunicator} (CPU
 * tensors, over MPI), {@link NcclCommunicator} (CUDA tensors, over NCCL) and {@link DeviceCommunicator} (a GPU run's:
 * host tensors over MPI, device tensors over NCCL or staged through the host). {@link #fromEnvironment()} picks the
 * first two by how the process was started; {@link #forDevice} then picks the one a model on a device needs.
 *
 * <p>Every call is collective: each rank makes the same calls in the same order, with tensors of the same size and
 * dtype. Tensors are contiguous; results are written in place, outside autograd (gradient and parameter buffers,
 * under {@code Autograd.noGrad()}). Calls from several threads are serialised. A call that waits on a lost or stuck
 * peer longer than the timeout ({@code -Drlhf4j.dist.timeout} or {@code RLHF4J_DIST_TIMEOUT} seconds, default 60)
 * ends the whole job with a report naming the call and the peers not in it. {@link #bytesMoved()} counts the bytes
 * each call sends by the ring convention documented in {@link Traffic}.
 */
public interface Communicator extends AutoCloseable {

    /** This process's rank, 0 to {@code worldSize() - 1}. */
    int rank();

    int worldSize();

    /** This process's rank among those on its node: the GPU it should use. */
    int localRank();

    /** {@code flat[i] = op over ranks of flat[i]}, in place. */
    void allReduce(Tensor flat, ReduceOp op);

    /** Sums {@code flat} over ranks in place. */
    default void allReduce(Tensor flat) {
        allReduce(flat, ReduceOp.SUM);
    }

    /**
     * {@code outShard[i] = op over ranks of in[rank * n + i]}, {@code n = outShard.numel()}: {@code in} holds
     * {@code worldSize} equal blocks and this rank gets the reduction of its own. {@code outShard} may be this rank's
     * block of {@code in} itself (a slice of the same storage).
     */
    void reduceScatter(Tensor in, Tensor outShard, ReduceOp op);

    /** Sums, as ZeRO reduces gradients: {@link #reduceScatter(Tensor, Tensor, ReduceOp)} with SUM. */
    default void reduceScatter(Tensor in, Tensor outShard) {
        reduceScatter(in, outShard, ReduceOp.SUM);
    }

    /**
     * {@code out[r * n + i] = shard of rank r [i]}, {@code n = shard.numel()}. {@code shard} may be this rank's
     * block of {@code out} itself.
     */
    void allGather(Tensor shard, Tensor out);

    /**
     * {@link #allGather(Tensor, Tensor)} without waiting for it: the gather starts now and {@link Pending#await}
     * completes it; until then neither tensor may be read or written. ZeRO stage 3 starts the next layer's gather
     * this way, so the transport moves it while the current layer computes (DeepSpeed's prefetch). It is collective
     * and takes its place in the order of calls where it starts; each rank awaits it later. Counted in
     * {@link #bytesMoved()} as an all-gather, and in {@link Traffic#startedAhead()}. A transport that cannot overlap
     * (a world of one, host staging) gathers at once and returns {@link Pending#DONE}.
     */
    default Pending allGatherStart(Tensor shard, Tensor out) {
        allGather(shard, out);
        return Pending.DONE;
    }

    /** A collective started and not yet waited for ({@link #allGatherStart}). */
    @FunctionalInterface
    interface Pending {
        /** Waits until the collective is complete on this rank; a second call returns at once. */
        void await();

        Pending DONE = () -> {};
    }

    /** {@code t = t of rank root}, on every rank. */
    void broadcast(Tensor t, int root);

    void barrier();

    /** Every rank's {@code value}, by rank. Host values, not counted in {@link #bytesMoved()}. */
    long[] allGather(long value);

    /** Calls and bytes sent so far, per kind of collective (the convention: {@link Traffic}). */
    Traffic bytesMoved();

    /** Sets the counters of {@link #bytesMoved()} back to zero (this rank only). */
    void resetTraffic();

    /**
     * Ends every process of the job: prints {@code message} (prefixed with this rank) and exits with {@code code}.
     * For an error on one rank that the others cannot learn of, which would otherwise leave them waiting in a
     * collective. Does not return.
     */
    void abort(int code, String message);

    /** Leaves the world (collective). The communicator cannot be used afterwards. */
    @Override
    void close();

    /**
     * Runs {@code work}, in which some ranks wait in collectives while others read or write large files (rank 0
     * saving a model, hashing a checkpoint), with the watchdog's limit raised from the collectives' 60 s to the file
     * limit ({@code -Drlhf4j.dist.io_timeout} or {@code RLHF4J_DIST_IO_TIMEOUT} seconds, default 3600): a 13B
     * model's fp32 save outlasts a minute, and the waiting ranks must not take the busy one for dead. Every rank calls
     * it around the same work. Calls nest.
     */
    default void waitingOnFiles(Runnable work) {
        work.run();
    }

    /**
     * Runs this rank's part of a step that may fail on some ranks only (writing a file), then the ranks tell each
     * other how it went (one all-gather): a failure anywhere throws on every rank, its own error where it happened
     * and elsewhere a {@link PeerFailed} that names the first rank at fault and says that {@code what} failed there.
     * So no rank is left waiting in a collective that a failed rank never reaches.
     */
    default void agree(String what, Runnable work) {
        RuntimeException failed = null;
        try {
            work.run();
        } catch (RuntimeException e) {
            failed = e;
        }
        long[] all = allGather(failed == null ? 0 : 1);
        for (int r = 0; r < all.length && failed == null; r++)
            if (all[r] != 0)
                failed = new PeerFailed("rank " + r + " could not " + what + " (rank " + r + " reports why)");
        if (failed != null) throw failed;
    }

    /** What {@link #agree} throws on the ranks where the work went well, when it failed on another. */
    final class PeerFailed extends IllegalStateException {
        public PeerFailed(String message) {
            super(message);
        }
    }

    /** Whether this communicator moves tensors that live on {@code device} (a world of one moves any). */
    default boolean reaches(io.github.rlhf4j.runtime.Device device) {
        return true;
    }

    /**
     * Checks at start-up that every rank has the same {@code value} of a setting (a model name, a seed, a
     * configuration's canonical text): each rank hashes its value and the ranks compare the hashes. On a mismatch
     * every rank throws, naming the setting, the ranks that differ from the majority (ties: from rank 0's group) and
     * this rank's value.
     *
     * @throws IllegalStateException on every rank, when the values differ
     */
    default void checkSame(String what, String value) {
        long[] all = allGather(hash(what, value));
        Map<Long, List<Integer>> groups = new LinkedHashMap<>();
        for (int r = 0; r < all.length; r++) groups.computeIfAbsent(all[r], k -> new ArrayList<>()).add(r);
        if (groups.size() == 1) return;
        List<Integer> reference = groups.get(all[0]);
        for (List<Integer> g : groups.values()) if (g.size() > reference.size()) reference = g;
        List<Integer> differ = new ArrayList<>();
        for (int r = 0; r < all.length; r++) if (!reference.contains(r)) differ.add(r);
        String shown = value.length() > 200 ? value.substring(0, 200) + "..." : value;
        throw new IllegalStateException("'" + what + "' is not the same on every rank: " + ranks(differ) + " differ"
                + (differ.size() == 1 ? "s" : "") + " from " + ranks(reference) + " (" + groups.size()
                + " different values; here, on rank " + rank() + ": \"" + shown + "\"). Start every rank with the same "
                + what + ".");
    }

    private static String ranks(List<Integer> rs) {
        StringBuilder sb = new StringBuilder(rs.size() == 1 ? "rank " : "ranks ");
        for (int i = 0; i < rs.size(); i++) sb.append(i == 0 ? "" : ", ").append(rs.get(i));
        return sb.toString();
    }

    private static long hash(String what, String value) {
        try {
            byte[] d = MessageDigest.getInstance("SHA-256")
                    .digest((what + '\0' + value).getBytes(StandardCharsets.UTF_8));
            long h = 0;
            for (int i = 0; i < 8; i++) h = h << 8 | (d[i] & 0xff);
            return h;
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /**
     * The communicator of this process: {@link MpiCommunicator} when a launcher started it as one of several ranks ({@link Launch.Rank}: mpirun,
     * srun, a PMI/PMIx launcher), else {@link SingleProcess}. For CPU tensors; GPU training opens a
     * {@link NcclCommunicator} over the MPI one.
     *
     * @throws IllegalStateException when a launcher started the process but this build has no librlhf4j_dist.so:
     *     going on alone would train N unsynchronised copies
     */
    static Communicator fromEnvironment() {
        return choose(System.getenv(), DistAbi::load);
    }

    /**
     * The communicator a run whose models live on {@code device} trains over: {@code comm} itself for the CPU or a
     * world of one, else a {@link DeviceCommunicator} over the MPI one (NCCL, or host staging). Collective.
     */
    static Communicator forDevice(Communicator comm, io.github.rlhf4j.runtime.Device device) {
        if (device.isCpu() || comm.worldSize() == 1 || comm.reaches(device)) return comm;
        if (comm instanceof MpiCommunicator mpi) return DeviceCommunicator.open(mpi, device);
        throw new IllegalArgumentException(comm + " cannot move tensors of " + device);
    }

    /** {@link #fromEnvironment()} for a given environment and shim (tests). */
    static Communicator choose(Map<String, String> env, Supplier<Optional<DistAbi>> shim) {
        Launch.Rank place = Launch.Rank.fromEnvironment(env);
        // a world of one (mpirun -np 1, a one-task srun) needs no MPI: training alone is the same
        if (!place.launched() || place.size() == 1) return new SingleProcess();
        DistAbi abi = shim.get().orElseThrow(() -> new IllegalStateException("this process was started as rank "
                + place.rank() + " of " + place.size() + " by " + place.source() + ", but this build of rlhf4j has no librlhf4j_dist.so, the MPI shim (it is built "
                + "when mpicc is present: install Open MPI's libopenmpi-dev and rebuild with `mvn -B package`), so "
                + "the ranks cannot talk to each other; run it without the launcher to train in one process"));
        return MpiCommunicator.open(abi);
    }
}
