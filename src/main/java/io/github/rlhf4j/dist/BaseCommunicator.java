package io.github.rlhf4j.dist;

import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.tensor.Tensor;
import java.util.EnumMap;

/**
 * What the implementations share: argument checks (the same on every rank, so a bad call fails everywhere before any
 * rank waits in a collective), the traffic counters, and serialisation of calls. Subclasses move the bytes.
 */
abstract class BaseCommunicator implements Communicator {
    private final EnumMap<Collective, Long> calls = new EnumMap<>(Collective.class);
    private final EnumMap<Collective, Long> bytes = new EnumMap<>(Collective.class);
    /** The collective in progress, for a message if the process is stopped during it; null when none. */
    private long startedAhead;
    private volatile String inFlight;
    private boolean closed;

    /** Whether {@code t} lives where this transport can reach it; the message says where it should be. */
    abstract void checkDevice(String op, Tensor t);

    abstract void doAllReduce(Tensor flat, ReduceOp op);

    abstract void doReduceScatter(Tensor in, Tensor out, ReduceOp op);

    abstract void doAllGather(Tensor shard, Tensor out);

    /**
     * Starts an all-gather and returns its wait, or null when this transport gathered at once (the default: it
     * cannot overlap). Called with the same checks as {@link #doAllGather}.
     */
    Pending doAllGatherStart(Tensor shard, Tensor out) {
        doAllGather(shard, out);
        return null;
    }

    abstract void doBroadcast(Tensor t, int root);

    abstract void doBarrier();

    abstract long[] doAllGather(long value);

    abstract void doClose();

    @Override
    public final synchronized void allReduce(Tensor flat, ReduceOp op) {
        check("allReduce", flat);
        run(Collective.ALL_REDUCE, sizeOf(flat), "allReduce of " + flat.describe(), () -> doAllReduce(flat, op));
    }

    @Override
    public final synchronized void reduceScatter(Tensor in, Tensor outShard, ReduceOp op) {
        check("reduceScatter", in);
        check("reduceScatter", outShard);
        sameDtype("reduceScatter", in, outShard);
        if (in.numel() != outShard.numel() * worldSize())
            throw new IllegalArgumentException("reduceScatter: " + in.describe() + " must hold worldSize (" + worldSize()
                    + ") blocks of " + outShard.describe() + ": " + in.numel() + " != " + worldSize() + " x "
                    + outShard.numel());
        run(Collective.REDUCE_SCATTER, sizeOf(in), "reduceScatter of " + in.describe(),
                () -> doReduceScatter(in, outShard, op));
    }

    @Override
    public final synchronized void allGather(Tensor shard, Tensor out) {
        checkGather(shard, out);
        run(Collective.ALL_GATHER, sizeOf(out), "allGather into " + out.describe(), () -> doAllGather(shard, out));
    }

    @Override
    public final synchronized Pending allGatherStart(Tensor shard, Tensor out) {
        checkGather(shard, out);
        Pending[] started = {null};
        run(Collective.ALL_GATHER, sizeOf(out), "allGatherStart into " + out.describe(),
                () -> started[0] = doAllGatherStart(shard, out));
        if (started[0] == null) return Pending.DONE;
        startedAhead++;
        Pending wait = started[0];
        boolean[] done = {false};
        return () -> {
            synchronized (this) {
                if (done[0]) return;
                done[0] = true;
                if (closed) return; // closing completed every request left pending
                inFlight = "wait for the all-gather into " + out.describe();
                try {
                    wait.await();
                } finally {
                    inFlight = null;
                }
            }
        };
    }

    @Override
    public final synchronized void broadcast(Tensor t, int root) {
        check("broadcast", t);
        if (root < 0 || root >= worldSize())
            throw new IllegalArgumentException("broadcast: root " + root + " is not a rank of a world of " + worldSize());
        run(Collective.BROADCAST, sizeOf(t), "broadcast of " + t.describe(), () -> doBroadcast(t, root));
    }

    @Override
    public final synchronized void barrier() {
        ensureOpen("barrier");
        run(Collective.BARRIER, 0, "barrier", this::doBarrier);
    }

    @Override
    public final synchronized long[] allGather(long value) {
        ensureOpen("allGather");
        inFlight = "allGather of a host value";
        try {
            return doAllGather(value);
        } finally {
            inFlight = null;
        }
    }

    private void checkGather(Tensor shard, Tensor out) {
        check("allGather", shard);
        check("allGather", out);
        sameDtype("allGather", shard, out);
        if (out.numel() != shard.numel() * worldSize())
            throw new IllegalArgumentException("allGather: " + out.describe() + " must hold worldSize (" + worldSize()
                    + ") blocks of " + shard.describe() + ": " + out.numel() + " != " + worldSize() + " x "
                    + shard.numel());
    }

    @Override
    public final synchronized Traffic bytesMoved() {
        return new Traffic(calls, bytes, startedAhead);
    }

    @Override
    public final synchronized void resetTraffic() {
        calls.clear();
        bytes.clear();
        startedAhead = 0;
    }

    @Override
    public final synchronized void close() {
        if (closed) return;
        closed = true;
        doClose();
    }

    /** What this rank was doing, or null: for the message of a process stopped from outside. */
    final String inFlight() {
        return inFlight;
    }

    final boolean isClosed() {
        return closed;
    }

    private void run(Collective kind, long size, String what, Runnable body) {
        inFlight = what;
        try {
            body.run();
        } finally {
            inFlight = null;
        }
        calls.merge(kind, 1L, Long::sum);
        bytes.merge(kind, Traffic.volume(kind, size, worldSize()), Long::sum);
    }

    private void ensureOpen(String op) {
        if (closed) throw new IllegalStateException(op + ": this communicator was closed");
    }

    private void check(String op, Tensor t) {
        ensureOpen(op);
        if (!t.isContiguous()) throw new IllegalArgumentException(op + ": " + t.describe() + " is not contiguous");
        checkDevice(op, t);
    }

    private static void sameDtype(String op, Tensor a, Tensor b) {
        if (a.dtype() != b.dtype())
            throw new IllegalArgumentException(op + ": " + a.describe() + " and " + b.describe() + " differ in dtype");
    }

    private static long sizeOf(Tensor t) {
        return t.numel() * t.dtype().size;
    }

    /** DType codes are rlhf4j_dtype codes, which the shim takes as they are. */
    static int code(DType d) {
        return d.code;
    }
}
