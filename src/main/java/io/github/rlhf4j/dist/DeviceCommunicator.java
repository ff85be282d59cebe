package io.github.rlhf4j.dist;

import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;

/**
 * The communicator of a data-parallel run whose models live on a GPU: one world over MPI, where each collective goes
 * by where its tensor lives. Host tensors (a logged mean, a checkpoint's agreement) go over MPI. Device tensors
 * (gradients, ZeRO's partitions) go over NCCL, GPU to GPU. Where NCCL cannot be opened, or the device is not one
 * NCCL can reach (the emulated CUDA backend of the tests), they are staged through host memory and moved by MPI, as
 * PyTorch's gloo backend moves CUDA tensors: correct, and as slow as two PCIe copies and a CPU reduction make it.
 * {@link #transport()} says which one runs, and why.
 *
 * <p>Calls are synchronous: each waits for the device's stream first, so the kernels that wrote the tensor are done.
 */
public final class DeviceCommunicator extends BaseCommunicator {
    private final MpiCommunicator mpi;
    private final Device device;
    private final NcclCommunicator nccl; // null: device tensors are staged through the host
    private final String transport;

    private DeviceCommunicator(MpiCommunicator mpi, Device device, NcclCommunicator nccl, String transport) {
        this.mpi = mpi;
        this.device = device;
        this.nccl = nccl;
        this.transport = transport;
    }

    /**
     * The communicator for a model on {@code device} over {@code mpi}'s ranks: NCCL when every rank can open it on
     * its CUDA device, else host staging (every rank takes the same choice: NCCL's start-up is collective). It owns
     * {@code mpi}: closing it leaves the MPI world.
     */
    public static DeviceCommunicator open(MpiCommunicator mpi, Device device) {
        if (device.isCpu())
            throw new IllegalArgumentException("DeviceCommunicator is for models on a GPU; on the CPU use the "
                    + "MpiCommunicator itself");
        String choice = System.getProperty(TRANSPORT_PROPERTY, "auto").trim().toLowerCase(java.util.Locale.ROOT);
        boolean cuda = device.toString().startsWith("cuda:");
        switch (choice) {
            case "host":
                return staged(mpi, device, "-D" + TRANSPORT_PROPERTY + "=host");
            case "nccl": // no fall-back: the run asked for NCCL
                return overNccl(mpi, device, cuda ? cudaOrdinal(device) : mpi.localRank());
            case "auto":
                if (!cuda) return staged(mpi, device, device + " is not a CUDA device NCCL can reach");
                try {
                    return overNccl(mpi, device, cudaOrdinal(device));
                } catch (RuntimeException e) {
                    return staged(mpi, device, "slow: NCCL could not be opened: " + e.getMessage());
                }
            default:
                throw new IllegalArgumentException("-D" + TRANSPORT_PROPERTY + "=" + choice + ": expected auto, nccl "
                        + "or host");
        }
    }

    /**
     * The system property that picks how device tensors move: {@code auto} (NCCL on a CUDA device when it opens,
     * else host staging), {@code nccl} (NCCL or an error; the tests run it over NCCL's stand-in on the emulated
     * device) or {@code host}.
     */
    public static final String TRANSPORT_PROPERTY = "rlhf4j.dist.device_transport";

    private static DeviceCommunicator overNccl(MpiCommunicator mpi, Device device, int ordinal) {
        NcclCommunicator nccl = NcclCommunicator.open(mpi, ordinal);
        return new DeviceCommunicator(mpi, device, nccl, "device tensors over NCCL (" + nccl.describe() + ")");
    }

    private static DeviceCommunicator staged(MpiCommunicator mpi, Device device, String why) {
        return new DeviceCommunicator(mpi, device, null, "device tensors staged through host memory over MPI (" + why
                + ")");
    }

    private static int cudaOrdinal(Device d) {
        return Integer.parseInt(d.toString().substring("cuda:".length()));
    }

    /** How device tensors move: over NCCL, or staged through the host (with the reason). */
    public String transport() {
        return transport;
    }

    /** Whether device tensors go over NCCL. */
    public boolean usesNccl() {
        return nccl != null;
    }

    @Override
    public boolean reaches(Device d) {
        return d.isCpu() || d == device;
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
    void checkDevice(String op, Tensor t) {
        if (!reaches(t.device()))
            throw new IllegalArgumentException(op + ": " + t.describe() + " is on " + t.device() + "; this "
                    + "communicator moves tensors of " + device + " and of the CPU");
    }

    @Override
    void doAllReduce(Tensor flat, ReduceOp op) {
        if (flat.device().isCpu()) mpi.allReduce(flat, op);
        else if (nccl != null) nccl.allReduce(flat, op);
        else onHost(flat, flat, (in, out) -> mpi.allReduce(in, op));
    }

    @Override
    void doReduceScatter(Tensor in, Tensor out, ReduceOp op) {
        if (in.device().isCpu() && out.device().isCpu()) mpi.reduceScatter(in, out, op);
        else if (nccl != null && in.device() == out.device()) nccl.reduceScatter(in, out, op);
        else onHost(in, out, (hostIn, hostOut) -> mpi.reduceScatter(hostIn, hostOut, op));
    }

    @Override
    void doAllGather(Tensor shard, Tensor out) {
        if (shard.device().isCpu() && out.device().isCpu()) mpi.allGather(shard, out);
        else if (nccl != null && shard.device() == out.device()) nccl.allGather(shard, out);
        else onHost(shard, out, mpi::allGather);
    }

    @Override
    Pending doAllGatherStart(Tensor shard, Tensor out) {
        Pending p;
        if (shard.device().isCpu() && out.device().isCpu()) p = mpi.allGatherStart(shard, out);
        else if (nccl != null && shard.device() == out.device()) p = nccl.allGatherStart(shard, out);
        else return super.doAllGatherStart(shard, out); // staged through the host: at once
        return p == Pending.DONE ? null : p;
    }

    @Override
    void doBroadcast(Tensor t, int root) {
        if (t.device().isCpu()) mpi.broadcast(t, root);
        else if (nccl != null) nccl.broadcast(t, root);
        else onHost(t, t, (in, out) -> mpi.broadcast(in, root));
    }

    /**
     * Host staging: {@code op} runs over MPI on host copies of {@code in} and {@code out} (one copy when they are the
     * same tensor, an in-place call), and out's copy is put back. Also the way for a pair on two devices (a host
     * partition gathered into device memory), which NCCL cannot take.
     */
    private static void onHost(Tensor in, Tensor out, java.util.function.BiConsumer<Tensor, Tensor> op) {
        try (Scope s = Scope.open(Device.cpu())) {
            Tensor hostIn = down(s, in);
            Tensor hostOut = in == out ? hostIn : s.empty(out.dtype(), out.shape());
            op.accept(hostIn, hostOut);
            up(hostOut, out);
        }
    }

    /** A host copy of {@code t} (a CPU tensor is its own). */
    private static Tensor down(Scope s, Tensor t) {
        if (t.device().isCpu()) return t;
        Tensor host = s.empty(t.dtype(), t.shape());
        long bytes = t.numel() * t.dtype().size;
        t.device().abi().memcpy(t.device().stream(), host.address(), t.address(), bytes, 1);
        t.device().synchronize();
        return host;
    }

    /** {@code host}'s values into {@code t}, in place: the collectives write their result as the transports do. */
    private static void up(Tensor host, Tensor t) {
        if (t.device().isCpu()) {
            if (host.address() != t.address())
                java.lang.foreign.MemorySegment.ofAddress(t.address()).reinterpret(t.numel() * t.dtype().size)
                        .copyFrom(java.lang.foreign.MemorySegment.ofAddress(host.address())
                                .reinterpret(t.numel() * t.dtype().size));
            return;
        }
        t.device().abi().memcpy(t.device().stream(), t.address(), host.address(), t.numel() * t.dtype().size, 0);
        t.device().synchronize();
    }

    @Override
    public void waitingOnFiles(Runnable work) {
        mpi.waitingOnFiles(work);
    }

    @Override
    void doBarrier() {
        mpi.barrier();
    }

    @Override
    long[] doAllGather(long value) {
        return mpi.allGather(value);
    }

    @Override
    void doClose() {
        mpi.close();
    }

    @Override
    public void abort(int code, String message) {
        mpi.abort(code, message);
    }

    @Override
    public String toString() {
        return "DeviceCommunicator[" + device + ", " + transport + "; " + mpi + "]";
    }
}
