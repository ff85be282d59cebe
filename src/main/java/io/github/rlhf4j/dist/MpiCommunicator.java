package io.github.rlhf4j.dist;

import static java.lang.foreign.ValueLayout.JAVA_LONG;

import io.github.rlhf4j.runtime.DistAbi;
import io.github.rlhf4j.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.time.Duration;

/**
 * The collectives over MPI, on CPU tensors (their host memory goes to MPI as it is, no copies), through
 * librlhf4j_dist.so. One per process: MPI is initialised once, on the first {@link #open()}, and cannot be again
 * after {@link #close()}.
 *
 * <p>Works under mpirun, under srun, and in a process started by hand (an MPI singleton, a world of 1). The shim's
 * watchdog bounds every call ({@code -Drlhf4j.dist.timeout=SECONDS}, else {@code RLHF4J_DIST_TIMEOUT}, else 60 s;
 * 0 disables it) and ends the job with a report naming the call and the peers not in it. When the launcher ends the
 * job instead (mpirun does when a rank dies), a shutdown hook prints which call this rank was in.
 *
 * <p>Close it when done (try-with-resources): mpirun counts a rank that exits without MPI_Finalize as failed. After
 * an error on one rank only, {@link #abort} instead, so the others do not wait in a collective or in the close.
 */
public final class MpiCommunicator extends BaseCommunicator {
    /** The system property of the watchdog's limit, in seconds. */
    public static final String TIMEOUT_PROPERTY = "rlhf4j.dist.timeout";

    private static MpiCommunicator instance;

    private final DistAbi abi;
    private final int rank, worldSize, localRank, localSize;

    private MpiCommunicator(DistAbi abi) {
        this.abi = abi;
        this.rank = abi.rank();
        this.worldSize = abi.worldSize();
        this.localRank = abi.localRank();
        this.localSize = abi.localSize();
    }

    /**
     * This process's MPI communicator, initialising MPI the first time.
     *
     * @throws IllegalStateException when this build has no librlhf4j_dist.so, or MPI was finalized already
     */
    public static MpiCommunicator open() {
        return open(DistAbi.load().orElseThrow(() -> new IllegalStateException("this build of rlhf4j has no "
                + "librlhf4j_dist.so, the MPI shim (it is built when mpicc is present: install Open MPI's "
                + "libopenmpi-dev and rebuild with `mvn -B package`)")));
    }

    static synchronized MpiCommunicator open(DistAbi abi) {
        if (instance != null) {
            if (instance.isClosed())
                throw new IllegalStateException("MPI was finalized in this process (MpiCommunicator.close) and cannot "
                        + "be initialised again");
            return instance;
        }
        abi.init(configuredTimeoutSeconds());
        MpiCommunicator c = new MpiCommunicator(abi);
        Thread hook = new Thread(c::reportIfStopped, "rlhf4j-dist-shutdown");
        Runtime.getRuntime().addShutdownHook(hook);
        instance = c;
        return c;
    }

    /** -1 (the shim then reads RLHF4J_DIST_TIMEOUT, else 60 s) unless the system property names a limit. */
    private static double configuredTimeoutSeconds() {
        String v = System.getProperty(TIMEOUT_PROPERTY);
        return v == null || v.isBlank() ? -1 : seconds("-D" + TIMEOUT_PROPERTY, v);
    }

    /** {@code v}, set by {@code from}, as a limit in seconds, or an error naming {@code from}. */
    private static double seconds(String from, String v) {
        try {
            double s = Double.parseDouble(v.trim());
            if (s >= 0 && Double.isFinite(s)) return s;
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new IllegalArgumentException(from + "=" + v + ": expected seconds >= 0 (0 disables the watchdog)");
    }

    /** Changes the watchdog's limit for every call from now on ({@link Duration#ZERO} disables it). */
    public synchronized void setTimeout(Duration limit) {
        timeoutSeconds = limit.toNanos() / 1e9;
        if (filesDepth == 0) abi.setTimeout(timeoutSeconds);
    }

    /** The system property of the watchdog's limit while ranks wait on files ({@link #waitingOnFiles}), seconds. */
    public static final String IO_TIMEOUT_PROPERTY = "rlhf4j.dist.io_timeout";

    // the collectives' limit as last set (-1: the shim's default, RLHF4J_DIST_TIMEOUT else 60 s), and the file limit
    private double timeoutSeconds = configuredTimeoutSeconds();
    private final double ioTimeoutSeconds = ioTimeoutSeconds();
    private int filesDepth;

    @Override
    public void waitingOnFiles(Runnable work) {
        synchronized (this) {
            if (filesDepth++ == 0) abi.setTimeout(ioTimeoutSeconds);
        }
        try {
            work.run();
        } finally {
            synchronized (this) {
                if (--filesDepth == 0) abi.setTimeout(timeoutSeconds);
            }
        }
    }

    /** The file limit: the property, else RLHF4J_DIST_IO_TIMEOUT, else an hour; 0 disables the watchdog. */
    private static double ioTimeoutSeconds() {
        String v = System.getProperty(IO_TIMEOUT_PROPERTY);
        if (v != null && !v.isBlank()) return seconds("-D" + IO_TIMEOUT_PROPERTY, v);
        v = System.getenv("RLHF4J_DIST_IO_TIMEOUT");
        return v != null && !v.isBlank() ? seconds("RLHF4J_DIST_IO_TIMEOUT", v) : 3600;
    }

    /** The number of ranks on this node. */
    public int localSize() {
        return localSize;
    }

    /** The MPI library, its thread level, and this rank's place. */
    public String describe() {
        return abi.describe();
    }

    /** The shim's bindings, for {@link NcclCommunicator}. */
    DistAbi abi() {
        return abi;
    }

    @Override
    public int rank() {
        return rank;
    }

    @Override
    public int worldSize() {
        return worldSize;
    }

    @Override
    public int localRank() {
        return localRank;
    }

    @Override
    public boolean reaches(io.github.rlhf4j.runtime.Device device) {
        return device.isCpu();
    }

    @Override
    void checkDevice(String op, Tensor t) {
        if (!t.device().isCpu())
            throw new IllegalArgumentException(op + ": " + t.describe() + " is on " + t.device() + "; MpiCommunicator "
                    + "moves CPU tensors (NcclCommunicator moves CUDA ones)");
    }

    @Override
    void doAllReduce(Tensor flat, ReduceOp op) {
        abi.allReduce(flat.address(), flat.address(), flat.numel(), code(flat.dtype()), op.code);
    }

    @Override
    void doReduceScatter(Tensor in, Tensor out, ReduceOp op) {
        abi.reduceScatter(in.address(), out.address(), out.numel(), code(in.dtype()), op.code);
    }

    @Override
    void doAllGather(Tensor shard, Tensor out) {
        abi.allGather(shard.address(), out.address(), shard.numel(), code(shard.dtype()));
    }

    @Override
    Pending doAllGatherStart(Tensor shard, Tensor out) {
        long request = abi.allGatherStart(shard.address(), out.address(), shard.numel(), code(shard.dtype()));
        return () -> abi.requestWait(request);
    }

    @Override
    void doBroadcast(Tensor t, int root) {
        abi.broadcast(t.address(), t.numel(), code(t.dtype()), root);
    }

    @Override
    void doBarrier() {
        abi.barrier();
    }

    @Override
    long[] doAllGather(long value) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocate(JAVA_LONG, worldSize + 1L);
            buf.set(JAVA_LONG, 0, value);
            abi.allGather(buf.address(), buf.address() + 8, 1, DistAbi.I64);
            return buf.asSlice(8).toArray(JAVA_LONG);
        }
    }

    @Override
    void doClose() {
        abi.finalizeWorld();
    }

    @Override
    public void abort(int code, String message) {
        abi.abort(code, message);
    }

    /** Runs at JVM exit: says which call this rank was in when something outside stopped it (mpirun, a signal). */
    private void reportIfStopped() {
        String what = inFlight();
        if (what != null && !isClosed())
            System.err.println("rlhf4j: rank " + rank + "/" + worldSize + ": stopped during " + what + " (the job was "
                    + "ended from outside: when a peer rank died, the launcher's message above names it)");
    }

    @Override
    public String toString() {
        return "MpiCommunicator[" + abi.describe() + "]";
    }
}
