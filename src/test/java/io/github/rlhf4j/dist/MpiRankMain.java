package io.github.rlhf4j.dist;

import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.runtime.NativeException;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * One rank of {@link MpiCommunicatorTest}, which starts it under mpirun (or alone, for "singleton"). Each rank checks
 * every collective's result against values it computes by itself from the inputs every rank is known to give
 * (plain Java arithmetic on {@code input(rank, i)}), and prints {@code rank R: OK (N checks)} at the end; the first
 * failed check aborts the whole job with {@code FAIL}, so no rank waits on one that gave up.
 *
 * <p>Scenarios (first argument):
 * <ul>
 *   <li>{@code collectives}: the checks (with {@code -Drlhf4j.emu.dir}, also {@link DeviceCommunicator}'s on the
 *       emulated CUDA device), then a clean close;
 *   <li>{@code kill}: the checks, then rank 1 prints its pid and sleeps while rank 0 waits in an all-reduce, for the
 *       test to kill rank 1 with SIGKILL;
 *   <li>{@code watchdog}: (3 ranks, under {@code mpirun --enable-recovery}, which does not end the job when a rank
 *       dies) rank 1 prints its pid and sleeps to be killed, rank 2 sleeps (alive, outside any collective), rank 0
 *       waits in an all-reduce until the watchdog reports;
 *   <li>{@code files}: (a 3 s collectives' limit, 60 s for files) rank 0 sleeps 6 s, as in a long save, while rank 1
 *       waits at a barrier inside {@link Communicator#waitingOnFiles}: both go on; then the same outside it, where
 *       the watchdog must end the job, the 3 s limit restored;
 *   <li>{@code singleton}: started without a launcher: MPI as a world of 1, and NCCL's clear absence.
 * </ul>
 */
public final class MpiRankMain {
    private final Communicator comm;
    private final int rank, n;
    private int checks;

    private MpiRankMain(Communicator comm) {
        this.comm = comm;
        this.rank = comm.rank();
        this.n = comm.worldSize();
    }

    @SuppressWarnings("try") // the scope is only opened, for the tensors of the checks
    public static void main(String[] args) throws Exception {
        String scenario = args[0];
        if (scenario.equals("singleton")) {
            singleton();
            return;
        }
        Communicator comm = Communicator.fromEnvironment();
        MpiRankMain m = new MpiRankMain(comm);
        try (Scope scope = Scope.open()) {
            switch (scenario) {
                case "collectives" -> {
                    m.all();
                    if (System.getProperty("rlhf4j.emu.dir") != null) m.deviceCollectives();
                    m.ok();
                    comm.close();
                    m.closedIsRefused();
                }
                case "kill" -> {
                    m.all();
                    if (System.getenv("RLHF4J_NCCL") != null) m.ncclGlue();
                    m.ok();
                    m.waitToBeKilled(false);
                }
                case "watchdog" -> m.waitToBeKilled(true);
                case "watchdog-ahead" -> m.waitAheadToBeKilled();
                case "files" -> m.slowFiles();
                default -> throw new IllegalArgumentException("unknown scenario " + scenario);
            }
        } catch (Throwable t) {
            comm.abort(3, "FAIL: " + t);
        }
    }

    private void ok() {
        System.out.println("rank " + rank + ": OK (" + checks + " checks)");
        System.out.flush();
    }

    private void check(boolean ok, String what) {
        checks++;
        if (!ok) comm.abort(2, "FAIL: " + what);
    }

    private void all() {
        identity();
        allReduce();
        reduceScatter();
        largeRing();
        allGather();
        allGatherAhead();
        broadcast();
        traffic();
        checkSame();
        badArguments();
    }

    // ---- the inputs each rank gives; every rank can compute any rank's -------------------------------------------------

    /** Exact in f32 (quarters below 2^10), so sums in any order are exact too. */
    private static double f32Input(int r, int i) {
        return (r + 1) * 0.5 + (i % 13) * 0.25 - 1;
    }

    /** Needs f64: 1e9 plus 1/1024 steps (40 significant bits); sums of a few stay exact. */
    private static double f64Input(int r, int i) {
        return 1e9 + r * 3 + (i % 101) / 1024.0;
    }

    /** Small integers: exact in bf16, as their sums over 4 ranks. */
    private static double bf16Input(int r, int i) {
        return (r * 5 + i) % 9 - 4;
    }

    private static int i32Input(int r, int i) {
        return r * 1_000_003 + i;
    }

    private static double mixed(int r, int i) {
        return (r * 7 + i * 3) % 11 - 5;
    }

    private static float[] floats(int count, java.util.function.IntToDoubleFunction f) {
        float[] a = new float[count];
        for (int i = 0; i < count; i++) a[i] = (float) f.applyAsDouble(i);
        return a;
    }

    private static double[] doubles(int count, java.util.function.IntToDoubleFunction f) {
        double[] a = new double[count];
        for (int i = 0; i < count; i++) a[i] = f.applyAsDouble(i);
        return a;
    }

    private void same(double[] expected, double[] actual, String what) {
        int bad = -1;
        for (int i = 0; i < expected.length && bad < 0; i++) if (Double.compare(expected[i], actual[i]) != 0) bad = i;
        check(expected.length == actual.length && bad < 0, what + ": " + (bad < 0 ? "length " + actual.length
                : "element " + bad + " is " + actual[bad] + ", expected " + expected[bad]));
    }

    private static double[] toDoubles(float[] a) {
        double[] d = new double[a.length];
        for (int i = 0; i < a.length; i++) d[i] = a[i];
        return d;
    }

    private static double[] toDoubles(int[] a) {
        double[] d = new double[a.length];
        for (int i = 0; i < a.length; i++) d[i] = a[i];
        return d;
    }

    // ---- the checks ----------------------------------------------------------------------------------------------------

    private void identity() {
        check(comm instanceof MpiCommunicator, "fromEnvironment under mpirun gave " + comm);
        check(Communicator.fromEnvironment() == comm, "a second fromEnvironment gave another communicator");
        String size = System.getenv("OMPI_COMM_WORLD_SIZE"), local = System.getenv("OMPI_COMM_WORLD_LOCAL_RANK");
        check(Integer.toString(n).equals(size), "worldSize " + n + " but OMPI_COMM_WORLD_SIZE=" + size);
        check(Integer.toString(rank).equals(System.getenv("OMPI_COMM_WORLD_RANK")), "rank " + rank);
        check(Integer.toString(comm.localRank()).equals(local), "localRank " + comm.localRank() + " but " + local);
        check(((MpiCommunicator) comm).localSize() == n, "one node: localSize " + ((MpiCommunicator) comm).localSize());
        long[] ranks = comm.allGather(rank * 10L + 7);
        long[] expected = new long[n];
        for (int r = 0; r < n; r++) expected[r] = r * 10L + 7;
        check(Arrays.equals(ranks, expected), "allGather(long): " + Arrays.toString(ranks));
        check(((MpiCommunicator) comm).describe().contains("thread level multiple"), ((MpiCommunicator) comm).describe());
    }

    private void allReduce() {
        // f32 sum over an odd count, and a large one that goes through MPI's rendezvous protocol
        for (int count : new int[] {1001, 300_000}) {
            Tensor x = Tensor.of(floats(count, i -> f32Input(rank, i)));
            comm.allReduce(x);
            same(doubles(count, i -> {
                double s = 0;
                for (int r = 0; r < n; r++) s += f32Input(r, i);
                return s;
            }), toDoubles(x.toFloatArray()), "allReduce sum f32 x" + count);
        }
        Tensor d = Tensor.of(doubles(517, i -> f64Input(rank, i)));
        comm.allReduce(d, ReduceOp.SUM);
        same(doubles(517, i -> {
            double s = 0;
            for (int r = 0; r < n; r++) s += f64Input(r, i);
            return s;
        }), d.toDoubleArray(), "allReduce sum f64");

        Tensor b = Tensor.of(floats(333, i -> bf16Input(rank, i))).to(DType.BF16);
        comm.allReduce(b);
        same(doubles(333, i -> {
            double s = 0;
            for (int r = 0; r < n; r++) s += bf16Input(r, i);
            return s;
        }), toDoubles(b.toFloatArray()), "allReduce sum bf16");
        if (n == 2) {
            // 1 + 3/512 is not a bf16: the sum rounds to nearest, 1 + 1/128; 1 + 1/256 is a tie, to even: 1
            Tensor t = Tensor.of(new float[] {rank == 0 ? 1f : 3f / 512, rank == 0 ? 1f : 1f / 256}).to(DType.BF16);
            comm.allReduce(t);
            same(new double[] {1 + 1.0 / 128, 1}, toDoubles(t.toFloatArray()), "allReduce bf16 rounds to nearest even");
        }

        int[] ints = new int[77];
        for (int i = 0; i < ints.length; i++) ints[i] = i32Input(rank, i);
        Tensor t = Tensor.ofInts(ints);
        comm.allReduce(t);
        double[] isum = new double[ints.length];
        for (int i = 0; i < ints.length; i++) for (int r = 0; r < n; r++) isum[i] += i32Input(r, i);
        same(isum, toDoubles(t.toIntArray()), "allReduce sum i32");

        Tensor mx = Tensor.of(floats(64, i -> mixed(rank, i)));
        comm.allReduce(mx, ReduceOp.MAX);
        Tensor mn = Tensor.of(doubles(64, i -> mixed(rank, i)));
        comm.allReduce(mn, ReduceOp.MIN);
        double[] emx = new double[64], emn = new double[64];
        for (int i = 0; i < 64; i++) {
            emx[i] = Double.NEGATIVE_INFINITY;
            emn[i] = Double.POSITIVE_INFINITY;
            for (int r = 0; r < n; r++) {
                emx[i] = Math.max(emx[i], mixed(r, i));
                emn[i] = Math.min(emn[i], mixed(r, i));
            }
        }
        same(emx, toDoubles(mx.toFloatArray()), "allReduce max f32");
        same(emn, mn.toDoubleArray(), "allReduce min f64");
        // the 16-bit types go through the shim's own MPI ops
        Tensor bmx = Tensor.of(floats(64, i -> mixed(rank, i))).to(DType.BF16);
        comm.allReduce(bmx, ReduceOp.MAX);
        Tensor bmn = Tensor.of(floats(64, i -> mixed(rank, i))).to(DType.BF16);
        comm.allReduce(bmn, ReduceOp.MIN);
        Tensor h = Tensor.of(floats(64, i -> mixed(rank, i))).to(DType.F16);
        comm.allReduce(h);
        double[] ehs = new double[64];
        for (int i = 0; i < 64; i++) for (int r = 0; r < n; r++) ehs[i] += mixed(r, i);
        same(emx, toDoubles(bmx.toFloatArray()), "allReduce max bf16");
        same(emn, toDoubles(bmn.toFloatArray()), "allReduce min bf16");
        same(ehs, toDoubles(h.toFloatArray()), "allReduce sum f16");
    }

    private void reduceScatter() {
        int k = 257;
        double[] expected = doubles(k, j -> {
            double s = 0;
            for (int r = 0; r < n; r++) s += f32Input(r, rank * k + j);
            return s;
        });
        Tensor in = Tensor.of(floats(n * k, i -> f32Input(rank, i)));
        Tensor out = Tensor.full(DType.F32, Double.NaN, k);
        comm.reduceScatter(in, out);
        same(expected, toDoubles(out.toFloatArray()), "reduceScatter f32 into its own tensor");
        same(doubles(n * k, i -> f32Input(rank, i)), toDoubles(in.toFloatArray()), "reduceScatter left its input");

        // in place: the output is this rank's block of the input, as ZeRO reduces a flat gradient buffer
        Tensor flat = Tensor.of(floats(n * k, i -> f32Input(rank, i)));
        Tensor own = flat.slice(0, rank * k, (rank + 1) * k);
        comm.reduceScatter(flat, own);
        same(expected, toDoubles(own.toFloatArray()), "reduceScatter f32 in place");

        Tensor bin = Tensor.of(floats(n * k, i -> bf16Input(rank, i))).to(DType.BF16);
        Tensor bout = Tensor.zeros(DType.BF16, k);
        comm.reduceScatter(bin, bout);
        same(doubles(k, j -> {
            double s = 0;
            for (int r = 0; r < n; r++) s += bf16Input(r, rank * k + j);
            return s;
        }), toDoubles(bout.toFloatArray()), "reduceScatter bf16");

        Tensor win = Tensor.of(doubles(n * 5, i -> mixed(rank, i)));
        Tensor wout = Tensor.zeros(DType.F64, 5);
        comm.reduceScatter(win, wout, ReduceOp.MAX);
        same(doubles(5, j -> {
            double m = Double.NEGATIVE_INFINITY;
            for (int r = 0; r < n; r++) m = Math.max(m, mixed(r, rank * 5 + j));
            return m;
        }), wout.toDoubleArray(), "reduceScatter max f64");
    }

    /**
     * Sizes on the shim's ring: an all-reduce of more than 2^16 elements a rank (a ring reduce-scatter and an
     * all-gather, with a tail that does not split into n blocks) and a reduce-scatter of more than one 2^20-element
     * piece a block, in place, for sums, a max and bf16.
     */
    private void largeRing() {
        int count = n * 70_001 + 3;
        double[] sum = doubles(count, i -> {
            double s = 0;
            for (int r = 0; r < n; r++) s += f32Input(r, i);
            return s;
        });
        Tensor x = Tensor.of(floats(count, i -> f32Input(rank, i))), y = Tensor.full(DType.F32, Double.NaN, count);
        comm.allReduce(x, ReduceOp.SUM); // in place
        same(sum, toDoubles(x.toFloatArray()), "ring allReduce f32 in place");
        Tensor x2 = Tensor.of(floats(count, i -> f32Input(rank, i)));
        y.copyFromTensor(x2, false);
        comm.allReduce(y, ReduceOp.SUM);
        same(sum, toDoubles(y.toFloatArray()), "ring allReduce f32 of a copy");
        Tensor m = Tensor.of(doubles(count, i -> mixed(rank, i)));
        comm.allReduce(m, ReduceOp.MAX);
        same(doubles(count, i -> {
            double v = Double.NEGATIVE_INFINITY;
            for (int r = 0; r < n; r++) v = Math.max(v, mixed(r, i));
            return v;
        }), m.toDoubleArray(), "ring allReduce max f64");
        Tensor b = Tensor.of(floats(count, i -> bf16Input(rank, i))).to(DType.BF16);
        comm.allReduce(b, ReduceOp.SUM);
        same(doubles(count, i -> {
            double s = 0;
            for (int r = 0; r < n; r++) s += bf16Input(r, i);
            return s;
        }), toDoubles(b.toFloatArray()), "ring allReduce bf16");

        int k = (1 << 20) + 5;
        Tensor flat = Tensor.of(floats(n * k, i -> f32Input(rank, i)));
        Tensor own = flat.slice(0, rank * k, (rank + 1) * k);
        comm.reduceScatter(flat, own);
        same(doubles(k, j -> {
            double s = 0;
            for (int r = 0; r < n; r++) s += f32Input(r, rank * k + j);
            return s;
        }), toDoubles(own.toFloatArray()), "ring reduceScatter f32 in place, two pieces a block");
    }

    /**
     * {@link DeviceCommunicator} over this MPI world with tensors on the emulated CUDA device (device tensors staged
     * through the host): device to device, a host shard gathered into device memory, a device buffer reduce-scattered
     * into a host partition, a broadcast, and a host tensor going straight over MPI; each counted once.
     */
    private void deviceCollectives() {
        Device dev = io.github.rlhf4j.kernels.Emulated.get().device();
        DeviceCommunicator dc = DeviceCommunicator.open((MpiCommunicator) comm, dev); // not closed: MPI is comm's
        check(dc.transport().startsWith("device tensors staged through host memory") && !dc.usesNccl(), dc.transport());
        check(dc.reaches(dev) && dc.reaches(Device.cpu()), "reaches the device and the host");
        try (Scope s = Scope.open(dev)) {
            int count = 1000;
            Tensor x = Tensor.of(floats(count, i -> f32Input(rank, i)));
            check(x.device() == dev, "the test tensor is on the device");
            dc.allReduce(x);
            same(doubles(count, i -> {
                double v = 0;
                for (int r = 0; r < n; r++) v += f32Input(r, i);
                return v;
            }), toDoubles(x.toFloatArray()), "device allReduce f32");

            int k = 257;
            double[] partSum = doubles(k, j -> {
                double v = 0;
                for (int r = 0; r < n; r++) v += f32Input(r, rank * k + j);
                return v;
            });
            Tensor flat = Tensor.of(floats(n * k, i -> f32Input(rank, i)));
            Tensor own = flat.slice(0, rank * k, (rank + 1) * k);
            dc.reduceScatter(flat, own);
            same(partSum, toDoubles(own.toFloatArray()), "device reduceScatter in place");
            Tensor flat2 = Tensor.of(floats(n * k, i -> f32Input(rank, i)));
            Tensor hostPart;
            try (Scope h = Scope.open(Device.cpu())) {
                hostPart = h.zeros(DType.F32, k);
                dc.reduceScatter(flat2, hostPart);
                same(partSum, toDoubles(hostPart.toFloatArray()), "device buffer reduce-scattered into a host partition");
                Tensor hostShard = Tensor.of(floats(k, j -> f32Input(rank, j) + 100 * rank));
                Tensor whole = s.zeros(DType.F32, n * k);
                dc.allGather(hostShard, whole);
                same(doubles(n * k, i -> f32Input(i / k, i % k) + 100 * (i / k)), toDoubles(whole.toFloatArray()),
                        "host shard gathered into device memory");
                Tensor hostSum = Tensor.of(new double[] {rank + 1});
                dc.allReduce(hostSum);
                same(new double[] {n * (n + 1) / 2.0}, hostSum.toDoubleArray(), "host value through MPI");
            }
            Tensor bc = Tensor.ofInts(new int[] {rank == 1 ? 7 : -1, rank == 1 ? 8 : -1});
            dc.broadcast(bc, 1);
            same(new double[] {7, 8}, toDoubles(bc.toIntArray()), "device broadcast from rank 1");
        }
        check(dc.bytesMoved().calls(Collective.ALL_REDUCE) == 2 && dc.bytesMoved().calls(Collective.REDUCE_SCATTER) == 2
                && dc.bytesMoved().calls(Collective.ALL_GATHER) == 1, "each call counted once: " + dc.bytesMoved());
        System.out.println("rank " + rank + ": device collectives OK");
    }

    private void allGather() {
        int k = 129;
        double[] expected = doubles(n * k, i -> f32Input(i / k, i % k) + 100 * (i / k));
        Tensor shard = Tensor.of(floats(k, j -> f32Input(rank, j) + 100 * rank));
        Tensor out = Tensor.full(DType.F32, Double.NaN, n * k);
        comm.allGather(shard, out);
        same(expected, toDoubles(out.toFloatArray()), "allGather f32");

        // in place: the shard is this rank's block of the output, as ZeRO-3 gathers a flat parameter buffer
        Tensor whole = Tensor.full(DType.F32, Double.NaN, n * k);
        Tensor mine = whole.slice(0, rank * k, (rank + 1) * k);
        mine.copyFrom(floats(k, j -> f32Input(rank, j) + 100 * rank));
        comm.allGather(mine, whole);
        same(expected, toDoubles(whole.toFloatArray()), "allGather f32 in place");

        int[] ints = new int[3];
        for (int j = 0; j < 3; j++) ints[j] = i32Input(rank, j);
        Tensor io = Tensor.zeros(DType.I32, 3 * n);
        comm.allGather(Tensor.ofInts(ints), io);
        double[] ei = new double[3 * n];
        for (int i = 0; i < ei.length; i++) ei[i] = i32Input(i / 3, i % 3);
        same(ei, toDoubles(io.toIntArray()), "allGather i32");

        Tensor d = Tensor.zeros(DType.F64, 2 * n);
        comm.allGather(Tensor.of(doubles(2, j -> f64Input(rank, j))), d);
        same(doubles(2 * n, i -> f64Input(i / 2, i % 2)), d.toDoubleArray(), "allGather f64");
    }

    private void broadcast() {
        int root = n - 1;
        Tensor d = rank == root ? Tensor.of(doubles(1000, i -> f64Input(root, i))) : Tensor.full(DType.F64, -1, 1000);
        comm.broadcast(d, root);
        same(doubles(1000, i -> f64Input(root, i)), d.toDoubleArray(), "broadcast f64 from rank " + root);
        int[] ints = {rank == 0 ? 42 : -1, rank == 0 ? 43 : -1};
        Tensor t = Tensor.ofInts(ints);
        comm.broadcast(t, 0);
        same(new double[] {42, 43}, toDoubles(t.toIntArray()), "broadcast i32 from rank 0");
        comm.barrier();
        checks++;
    }

    /**
     * Gathers started ahead (ZeRO stage 3's prefetch): two at once, a blocking collective between them and their
     * waits, waited out of order; in place and not; counted as all-gathers and as started ahead; a handle waited for
     * twice is refused by the shim, naming it.
     */
    private void allGatherAhead() {
        int k = 1000; // past Open MPI's shared-memory eager limit: the data moves after the start returns
        comm.resetTraffic();
        double[] expected = doubles(n * k, i -> f32Input(i / k, i % k) + 100 * (i / k));
        Tensor whole = Tensor.full(DType.F32, Double.NaN, n * k);
        Tensor mine = whole.slice(0, rank * k, (rank + 1) * k);
        mine.copyFrom(floats(k, j -> f32Input(rank, j) + 100 * rank));
        Communicator.Pending first = comm.allGatherStart(mine, whole);
        Tensor shard = Tensor.of(floats(k, j -> -f32Input(rank, j))), out = Tensor.full(DType.F32, Double.NaN, n * k);
        Communicator.Pending second = comm.allGatherStart(shard, out);
        Tensor sum = Tensor.full(DType.F32, 1, 8);
        comm.allReduce(sum); // a blocking collective while both are pending, in the same order on every rank
        same(doubles(8, i -> n), toDoubles(sum.toFloatArray()), "allReduce between started gathers");
        second.await();
        first.await();
        first.await(); // a second wait returns at once
        same(expected, toDoubles(whole.toFloatArray()), "allGatherStart f32 in place");
        same(doubles(n * k, i -> -f32Input(i / k, i % k)), toDoubles(out.toFloatArray()), "allGatherStart f32");
        Traffic t = comm.bytesMoved();
        check(t.calls(Collective.ALL_GATHER) == 2 && t.startedAhead() == 2
                && t.bytes(Collective.ALL_GATHER) == 2L * (n - 1) * k * 4, "allGatherStart counted: " + t);

        var abi = ((MpiCommunicator) comm).abi();
        Tensor x = Tensor.zeros(DType.F32, n * 4);
        long request = abi.allGatherStart(x.address(), x.address() + rank * 16L, 4, DType.F32.code);
        abi.requestWait(request);
        NativeException again = null;
        try {
            abi.requestWait(request);
        } catch (NativeException e) {
            again = e;
        }
        check(again != null && again.status() == NativeException.Status.INVALID_ARGUMENT
                && again.getMessage().contains("request " + request + " is not pending"), "a second wait: " + again);
    }

    /** The counters follow the ring convention; the figures are written out for the world sizes the test runs. */
    private void traffic() {
        comm.resetTraffic();
        check(comm.bytesMoved().totalBytes() == 0, "resetTraffic");
        comm.allReduce(Tensor.zeros(DType.F32, 1000));                  // 4000 B
        comm.reduceScatter(Tensor.zeros(DType.F32, n * 100), Tensor.zeros(DType.F32, 100)); // 400 B a shard
        comm.allGather(Tensor.zeros(DType.BF16, 50), Tensor.zeros(DType.BF16, n * 50));    // 100 B a shard
        comm.allGather(Tensor.zeros(DType.BF16, 50), Tensor.zeros(DType.BF16, n * 50));
        comm.broadcast(Tensor.zeros(DType.F64, 10), 0);                 // 80 B
        comm.barrier();
        comm.allGather(1);                                              // host value: not counted
        Traffic t = comm.bytesMoved();
        long[] bytes = switch (n) {
            case 2 -> new long[] {4000, 400, 200, 80};  // 2 (N-1)/N 4000; (N-1) 400; 2 x (N-1) 100; 80
            case 3 -> new long[] {5333, 800, 400, 80};  // 2*2/3*4000 = 5333.3, rounded down
            case 4 -> new long[] {6000, 1200, 600, 80};
            default -> throw new IllegalStateException("no figures for a world of " + n);
        };
        check(t.bytes(Collective.ALL_REDUCE) == bytes[0], "all-reduce bytes " + t);
        check(t.bytes(Collective.REDUCE_SCATTER) == bytes[1], "reduce-scatter bytes " + t);
        check(t.bytes(Collective.ALL_GATHER) == bytes[2], "all-gather bytes " + t);
        check(t.bytes(Collective.BROADCAST) == bytes[3], "broadcast bytes " + t);
        check(t.bytes(Collective.BARRIER) == 0 && t.calls(Collective.BARRIER) == 1, "barrier " + t);
        check(t.calls(Collective.ALL_GATHER) == 2 && t.calls(Collective.ALL_REDUCE) == 1, "calls " + t);
        check(t.totalBytes() == bytes[0] + bytes[1] + bytes[2] + bytes[3], "total " + t);
    }

    private void checkSame() {
        comm.checkSame("model", "gpt2");
        checks++;
        String message = null;
        try {
            comm.checkSame("seed", rank == 1 ? "2" : "1");
        } catch (IllegalStateException e) {
            message = e.getMessage();
        }
        String others = n == 2 ? "rank 0" : n == 3 ? "ranks 0, 2" : "ranks 0, 2, 3";
        check(message != null && message.contains("'seed'") && message.contains("rank 1 differs from " + others)
                && message.contains("on rank " + rank + ": \"" + (rank == 1 ? "2" : "1") + "\""),
                "checkSame(seed) on rank " + rank + ": " + message);
        if (n == 4) {
            // two against two: the group of rank 0 is the reference
            message = null;
            try {
                comm.checkSame("model", rank % 2 == 1 ? "opt-125m" : "gpt2");
            } catch (IllegalStateException e) {
                message = e.getMessage();
            }
            check(message != null && message.contains("ranks 1, 3 differ from ranks 0, 2"), "checkSame 2:2: " + message);
        }
    }

    /** Caught on every rank before any rank waits, so the job goes on. */
    private void badArguments() {
        List<String> errors = new ArrayList<>();
        try {
            comm.reduceScatter(Tensor.zeros(DType.F32, n * 10 + 1), Tensor.zeros(DType.F32, 10));
        } catch (IllegalArgumentException e) {
            errors.add(e.getMessage());
        }
        try {
            comm.allGather(Tensor.zeros(DType.F32, 10), Tensor.zeros(DType.BF16, n * 10));
        } catch (IllegalArgumentException e) {
            errors.add(e.getMessage());
        }
        try {
            comm.broadcast(Tensor.zeros(DType.F32, 10), n);
        } catch (IllegalArgumentException e) {
            errors.add(e.getMessage());
        }
        try {
            comm.allReduce(Tensor.zeros(DType.F32, 4, 4).transpose(0, 1));
        } catch (IllegalArgumentException e) {
            errors.add(e.getMessage());
        }
        check(errors.size() == 4 && errors.get(0).contains("blocks") && errors.get(1).contains("dtype")
                && errors.get(2).contains("root " + n) && errors.get(3).contains("not contiguous"), "errors " + errors);
        comm.barrier(); // and the world still works
        checks++;
    }

    private void closedIsRefused() {
        try {
            comm.barrier();
            System.out.println("rank " + rank + ": FAIL: barrier after close did not throw");
        } catch (IllegalStateException e) {
            System.out.println("rank " + rank + ": closed");
        }
    }

    // ---- NCCL's glue, over the stand-ins of native/dist/tests (no GPU here) ------------------------------------------

    /**
     * rlhf4j_dist_nccl_* on host buffers (CPU tensors' memory), with RLHF4J_NCCL naming the stub libnccl.so.2 (which
     * reduces over MPI, as NCCL would on the GPUs) and the stub libcuda.so.1 on the loader path (2 "GPUs").
     */
    private void ncclGlue() {
        var abi = ((MpiCommunicator) comm).abi();
        String message = null;
        try {
            abi.ncclInit(null, rank == 1 ? 5 : -1); // rank 1 asks for a device that does not exist
        } catch (NativeException e) {
            message = e.getMessage();
        }
        check(message != null && message.contains("NCCL is unavailable on rank(s) 1;")
                && (rank != 1 || message.contains("device 5 does not exist: 2 CUDA device(s) visible")),
                "nccl_init fails on every rank, naming rank 1: " + message);
        abi.ncclInit(null, -1);
        check(abi.ncclDescribe().startsWith("NCCL 2.99.99 (") && abi.ncclDescribe().endsWith("device " + comm.localRank()),
                abi.ncclDescribe());

        int count = 101;
        Tensor f = Tensor.of(floats(count, i -> f32Input(rank, i)));
        abi.ncclAllReduce(f.address(), f.address(), count, DType.F32.code, ReduceOp.SUM.code, 0);
        abi.ncclSynchronize(0);
        same(doubles(count, i -> {
            double s = 0;
            for (int r = 0; r < n; r++) s += f32Input(r, i);
            return s;
        }), toDoubles(f.toFloatArray()), "nccl allReduce sum f32 in place");

        Tensor b = Tensor.of(floats(count, i -> bf16Input(rank, i))).to(DType.BF16), bsum = Tensor.zeros(DType.BF16, count);
        abi.ncclAllReduce(b.address(), bsum.address(), count, DType.BF16.code, ReduceOp.SUM.code, 0);
        same(doubles(count, i -> {
            double s = 0;
            for (int r = 0; r < n; r++) s += bf16Input(r, i);
            return s;
        }), toDoubles(bsum.toFloatArray()), "nccl allReduce sum bf16");

        Tensor d = Tensor.of(doubles(64, i -> mixed(rank, i)));
        abi.ncclAllReduce(d.address(), d.address(), 64, DType.F64.code, ReduceOp.MIN.code, 0);
        int[] ints = new int[64];
        for (int i = 0; i < 64; i++) ints[i] = (int) mixed(rank, i);
        Tensor im = Tensor.ofInts(ints);
        abi.ncclAllReduce(im.address(), im.address(), 64, DType.I32.code, ReduceOp.MAX.code, 0);
        double[] emin = new double[64], emax = new double[64];
        for (int i = 0; i < 64; i++) {
            emin[i] = Double.POSITIVE_INFINITY;
            emax[i] = Double.NEGATIVE_INFINITY;
            for (int r = 0; r < n; r++) {
                emin[i] = Math.min(emin[i], mixed(r, i));
                emax[i] = Math.max(emax[i], mixed(r, i));
            }
        }
        same(emin, d.toDoubleArray(), "nccl allReduce min f64");
        same(emax, toDoubles(im.toIntArray()), "nccl allReduce max i32");

        int k = 33;
        Tensor flat = Tensor.of(floats(n * k, i -> f32Input(rank, i)));
        Tensor own = flat.slice(0, rank * k, (rank + 1) * k);
        abi.ncclReduceScatter(flat.address(), own.address(), k, DType.F32.code, ReduceOp.SUM.code, 0);
        same(doubles(k, j -> {
            double s = 0;
            for (int r = 0; r < n; r++) s += f32Input(r, rank * k + j);
            return s;
        }), toDoubles(own.toFloatArray()), "nccl reduceScatter in place");

        Tensor whole = Tensor.full(DType.F32, Double.NaN, n * k);
        Tensor mine = whole.slice(0, rank * k, (rank + 1) * k);
        mine.copyFrom(floats(k, j -> f32Input(rank, j) + 100 * rank));
        abi.ncclAllGather(mine.address(), whole.address(), k, DType.F32.code, 0);
        same(doubles(n * k, i -> f32Input(i / k, i % k) + 100 * (i / k)), toDoubles(whole.toFloatArray()),
                "nccl allGather in place");

        // the shim's stream waits for an event of the backend's (stage 3's prefetch): not collective, no host wait
        abi.ncclStreamWaitEvent(0, whole.address()); // any non-NULL handle: the stand-in's streams are always done
        NativeException noEvent = null;
        try {
            abi.ncclStreamWaitEvent(0, 0);
        } catch (NativeException e) {
            noEvent = e;
        }
        check(noEvent != null && noEvent.getMessage().contains("event is NULL"), "nccl wait on no event: " + noEvent);

        Tensor bc = Tensor.ofInts(new int[] {rank == 1 ? 7 : -1, rank == 1 ? 8 : -1});
        abi.ncclBroadcast(bc.address(), 2, DType.I32.code, 1, 0);
        abi.ncclSynchronize(0);
        same(new double[] {7, 8}, toDoubles(bc.toIntArray()), "nccl broadcast i32 from rank 1");

        NativeException bad = null;
        try {
            abi.ncclAllReduce(f.address(), f.address(), count, 99, ReduceOp.SUM.code, 0);
        } catch (NativeException e) {
            bad = e;
        }
        check(bad != null && bad.status() == NativeException.Status.INVALID_ARGUMENT
                && bad.getMessage().contains("dtype 99"), "nccl bad dtype: " + bad);
        System.out.println("rank " + rank + ": NCCL glue OK");
    }

    // ---- faults --------------------------------------------------------------------------------------------------------

    private void slowFiles() throws InterruptedException {
        comm.barrier();
        comm.waitingOnFiles(() -> {
            if (rank == 0) sleep(6000);
            comm.barrier();
        });
        System.out.println("rank " + rank + ": waited on files past the collectives' limit");
        System.out.flush();
        if (rank == 0) sleep(6000);
        comm.barrier();
        System.out.println("rank " + rank + ": FAIL: the collectives' limit was not restored");
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            throw new IllegalStateException(e);
        }
    }

    private void waitToBeKilled(boolean stuckRank2) throws InterruptedException {
        comm.barrier();
        if (rank == 1) {
            System.out.println("rank 1: pid=" + ProcessHandle.current().pid() + " waiting to be killed");
            System.out.flush();
            Thread.sleep(120_000);
        } else if (rank == 2 && stuckRank2) {
            System.out.println("rank 2: alive, outside any collective");
            System.out.flush();
            Thread.sleep(120_000);
        } else {
            System.out.println("rank " + rank + ": entering allReduce");
            System.out.flush();
            Tensor x = Tensor.zeros(DType.F32, 1000);
            for (;;) comm.allReduce(x);
        }
        System.out.println("rank " + rank + ": FAIL: still alive after 120 s");
    }

    /** Rank 1 waits to be killed; rank 0 keeps starting gathers ahead and waiting for them (stage 3's prefetch). */
    private void waitAheadToBeKilled() throws InterruptedException {
        comm.barrier();
        if (rank == 1) {
            System.out.println("rank 1: pid=" + ProcessHandle.current().pid() + " waiting to be killed");
            System.out.flush();
            Thread.sleep(120_000);
        } else {
            System.out.println("rank " + rank + ": starting gathers ahead");
            System.out.flush();
            Tensor whole = Tensor.zeros(DType.F32, n * 1000);
            for (;;) comm.allGatherStart(whole.slice(0, rank * 1000, (rank + 1) * 1000), whole).await();
        }
        System.out.println("rank " + rank + ": FAIL: still alive after 120 s");
    }

    // ---- without a launcher --------------------------------------------------------------------------------------------

    @SuppressWarnings("try")
    private static void singleton() {
        Communicator env = Communicator.fromEnvironment();
        if (!(env instanceof SingleProcess)) throw new AssertionError("fromEnvironment alone gave " + env);
        MpiCommunicator mpi = MpiCommunicator.open();
        if (mpi.rank() != 0 || mpi.worldSize() != 1 || mpi.localRank() != 0)
            throw new AssertionError("singleton world: " + mpi.describe());
        try (Scope scope = Scope.open()) {
            Tensor x = Tensor.of(new float[] {1, 2, 3});
            mpi.allReduce(x);
            Tensor out = Tensor.zeros(DType.F32, 3);
            mpi.reduceScatter(x, out);
            if (!Arrays.equals(out.toFloatArray(), new float[] {1, 2, 3}))
                throw new AssertionError("singleton reduceScatter " + Arrays.toString(out.toFloatArray()));
            mpi.checkSame("seed", "1");
        }
        String why;
        try {
            NcclCommunicator.open(mpi);
            why = "NCCL opened";
        } catch (NativeException e) {
            why = e.getMessage();
        }
        System.out.println("singleton: nccl: " + why);
        String describe = mpi.describe();
        mpi.close();
        System.out.println("singleton: OK " + describe);
    }
}
