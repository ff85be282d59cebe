package io.github.rlhf4j.dist;

import io.github.rlhf4j.tensor.Tensor;

/**
 * A world of one process: reductions and broadcasts leave tensors as they are, a reduce-scatter or all-gather copies
 * (unless the shard is the whole buffer's memory already), and nothing is sent, so {@link #bytesMoved()} stays at 0
 * bytes while still counting the calls. Any device.
 */
public final class SingleProcess extends BaseCommunicator {

    public SingleProcess() {}

    @Override
    public int rank() {
        return 0;
    }

    @Override
    public int worldSize() {
        return 1;
    }

    @Override
    public int localRank() {
        return 0;
    }

    @Override
    void checkDevice(String op, Tensor t) {}

    @Override
    void doAllReduce(Tensor flat, ReduceOp op) {}

    @Override
    void doReduceScatter(Tensor in, Tensor out, ReduceOp op) {
        copy(in, out);
    }

    @Override
    void doAllGather(Tensor shard, Tensor out) {
        copy(shard, out);
    }

    @Override
    void doBroadcast(Tensor t, int root) {}

    @Override
    void doBarrier() {}

    @Override
    long[] doAllGather(long value) {
        return new long[] {value};
    }

    @Override
    void doClose() {}

    /** Prints the message and exits this process, the whole job here. */
    @Override
    public void abort(int code, String message) {
        System.err.println("rlhf4j: rank 0/1: " + message);
        System.exit(code);
    }

    private static void copy(Tensor from, Tensor to) {
        if (from.address() == to.address()) return;
        to.copyFromTensor(from.detach().reshape(to.shape()), false);
    }

    @Override
    public String toString() {
        return "SingleProcess";
    }
}
