package io.github.rlhf4j.dist;

import io.github.rlhf4j.runtime.DistAbi;
import io.github.rlhf4j.tensor.Tensor;

/**
 * The collectives over NCCL, on CUDA tensors, for a job started by an MPI launcher with one rank per GPU: the MPI
 * communicator carries NCCL's unique id at start-up, the host values of {@link #allGather(long)} and
 * {@link #checkSame}, and the barrier.
 *
 * <p>libnccl.so.2 is opened at run time: {@code -Drlhf4j.nccl=FILE_OR_FOLDER}, else {@code RLHF4J_NCCL}, else the
 * loader path (on the GPU machines, pip's NCCL wheel puts it under site-packages/nvidia/nccl/lib).
 *
 * <p>Each call is synchronous, as the MPI one is: it waits for the tensor's device stream (so the kernels that wrote
 * the tensor are done), queues the NCCL collective on the shim's own stream and waits for it, polling NCCL's error
 * state so that a lost peer gives an error, and the watchdog a report, instead of a hang. {@link #allGatherStart}
 * (ZeRO stage 3's prefetch) waits for nothing: the shim's stream waits for an event recorded on the device's stream
 * ({@code rlhf4j_event_native}), the gather is queued behind it, and the host waits for the gather only at its use,
 * so it runs beside the kernels queued meanwhile.
 */
public final class NcclCommunicator extends BaseCommunicator {
    /** The system property naming libnccl.so.2 or its folder. */
    public static final String LIBRARY_PROPERTY = "rlhf4j.nccl";

    private static NcclCommunicator instance;

    private final MpiCommunicator mpi;
    private final DistAbi abi;

    private NcclCommunicator(MpiCommunicator mpi) {
        this.mpi = mpi;
        this.abi = mpi.abi();
    }

    /** Joins NCCL on the GPU numbered as this rank's local rank. Collective. */
    public static NcclCommunicator open(MpiCommunicator mpi) {
        return open(mpi, -1);
    }

    /**
     * Joins NCCL on CUDA device {@code device} ({@code < 0}: the local rank). Collective: when NCCL or the device is
     * missing on any rank, every rank throws, naming the ranks at fault.
     *
     * @throws io.github.rlhf4j.runtime.NativeException from {@code rlhf4j_dist_nccl_init}, with the reason
     */
    public static synchronized NcclCommunicator open(MpiCommunicator mpi, int device) {
        if (instance != null && !instance.isClosed()) return instance;
        mpi.abi().ncclInit(System.getProperty(LIBRARY_PROPERTY), device);
        instance = new NcclCommunicator(mpi);
        return instance;
    }

    /** NCCL's version, its file and the device. */
    public String describe() {
        return abi.ncclDescribe();
    }

    @Override
    public int rank() {
        return mpi.rank();
    }

    @Override
    public int worldSize() {
        return mpi.worldSize();
    }

    @Override
    public int localRank() {
        return mpi.localRank();
    }

    @Override
    public boolean reaches(io.github.rlhf4j.runtime.Device device) {
        return !device.isCpu();
    }

    @Override
    void checkDevice(String op, Tensor t) {
        if (t.device().isCpu())
            throw new IllegalArgumentException(op + ": " + t.describe() + " is on the CPU; NcclCommunicator moves CUDA "
                    + "tensors (MpiCommunicator moves CPU ones)");
    }

    @Override
    void doAllReduce(Tensor flat, ReduceOp op) {
        flat.device().synchronize();
        abi.ncclAllReduce(flat.address(), flat.address(), flat.numel(), code(flat.dtype()), op.code, 0);
        abi.ncclSynchronize(0);
    }

    @Override
    void doReduceScatter(Tensor in, Tensor out, ReduceOp op) {
        in.device().synchronize();
        abi.ncclReduceScatter(in.address(), out.address(), out.numel(), code(in.dtype()), op.code, 0);
        abi.ncclSynchronize(0);
    }

    @Override
    void doAllGather(Tensor shard, Tensor out) {
        shard.device().synchronize();
        abi.ncclAllGather(shard.address(), out.address(), shard.numel(), code(shard.dtype()), 0);
        abi.ncclSynchronize(0);
    }

    /**
     * Queued on the shim's stream behind an event recorded on the device's stream, so that it runs after the
     * kernels queued so far (which wrote the shard, or last used the block it writes into) with no wait on the host;
     * waited for with the shim's stream (polling NCCL's errors), while the kernels queued meanwhile run beside it.
     */
    @Override
    Pending doAllGatherStart(Tensor shard, Tensor out) {
        io.github.rlhf4j.runtime.Device device = shard.device();
        long event = event(device).record().nativeHandle();
        if (event != 0) abi.ncclStreamWaitEvent(0, event);
        else device.synchronize(); // a backend without events to hand over: the host waits instead
        abi.ncclAllGather(shard.address(), out.address(), shard.numel(), code(shard.dtype()), 0);
        return () -> abi.ncclSynchronize(0);
    }

    private io.github.rlhf4j.runtime.Event event;

    /** One event, recorded again for each start: the shim's stream has queued its wait on the last mark by then. */
    private io.github.rlhf4j.runtime.Event event(io.github.rlhf4j.runtime.Device device) {
        if (event == null || event.device() != device) {
            if (event != null) event.close();
            event = new io.github.rlhf4j.runtime.Event(device);
        }
        return event;
    }

    @Override
    void doBroadcast(Tensor t, int root) {
        t.device().synchronize();
        abi.ncclBroadcast(t.address(), t.numel(), code(t.dtype()), root, 0);
        abi.ncclSynchronize(0);
    }

    @Override
    void doBarrier() {
        mpi.barrier();
    }

    @Override
    long[] doAllGather(long value) {
        return mpi.allGather(value);
    }

    /** NCCL's communicator is destroyed with MPI's, when the {@link MpiCommunicator} is closed. */
    @Override
    void doClose() {
        if (event != null) event.close();
        event = null;
    }

    @Override
    public void abort(int code, String message) {
        mpi.abort(code, message);
    }

    @Override
    public String toString() {
        return "NcclCommunicator[" + describe() + "]";
    }
}
