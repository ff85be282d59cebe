package io.github.rlhf4j.rlhf;

import io.github.rlhf4j.nn.Lora;
import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.dist.Communicator;
import io.github.rlhf4j.dist.ShardedStore;
import io.github.rlhf4j.dist.Zero;
import io.github.rlhf4j.optim.AdamW;
import io.github.rlhf4j.optim.GradClip;
import io.github.rlhf4j.optim.LrSchedule;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.tensor.Autograd;
import io.github.rlhf4j.tensor.InPlace;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;

/**
 * A trained model's optimizer side, as a DeepSpeed engine holds it: the flat parameters and gradients, AdamW over
 * DeepSpeed-Chat's weight-decay groups (and its LoRA group, at its own learning rate, when the model has
 * {@link Lora} adapters), a learning-rate schedule whose factor scales every group's base rate, and gradient clipping
 * by global norm (DS-Chat's DeepSpeed config clips at 1.0). {@link #step} clips, steps at the scheduled rates and
 * zeroes the gradients. Frozen parameters (LoRA base weights) are in no group and keep a zero gradient.
 *
 * <p>A NaN or Inf in a loss ({@link #acceptLoss}) or a gradient stops the step with an {@link ArithmeticException}
 * naming the step and the tensor, before any weight changes; with {@link #skipNonFiniteSteps} on, the step is skipped
 * instead (gradients zeroed, weights, moments, step count and schedule untouched, as DeepSpeed skips an overflowing
 * fp16 step) and counted in {@link #skippedSteps}.
 */
public final class Optimized implements AutoCloseable {
    /**
     * The settings of one model's optimizer; {@code loraLr} is the base learning rate of the LoRA adapters
     * (DS-Chat's {@code --lora_learning_rate} / {@code --actor_lora_learning_rate}), unused without adapters.
     */
    public record Settings(double lr, double weightDecay, LrSchedule schedule, double maxGradNorm, double loraLr) {
        public Settings {
            if (!(lr > 0)) throw new IllegalArgumentException("learning rate " + lr + " must be > 0");
            if (!(weightDecay >= 0)) throw new IllegalArgumentException("weight decay " + weightDecay + " must be >= 0");
            if (!(maxGradNorm > 0)) throw new IllegalArgumentException("max grad norm " + maxGradNorm + " must be > 0");
            if (!(loraLr > 0)) throw new IllegalArgumentException("LoRA learning rate " + loraLr + " must be > 0");
        }

        /** With DS-Chat's default LoRA learning rate ({@link Lora#DEFAULT_LR}). */
        public Settings(double lr, double weightDecay, LrSchedule schedule, double maxGradNorm) {
            this(lr, weightDecay, schedule, maxGradNorm, Lora.DEFAULT_LR);
        }
    }

    private final ParameterStore store;
    private AdamW adamw;
    private Offload offload; // null: the optimizer steps on the store's device
    private final Communicator comm; // null: one process
    private final ShardedStore sharded; // stages 2 and 3
    private final int zeroStage;
    private final long sliceStart, sliceEnd;
    private final Settings settings;
    private final java.util.List<ParameterStore.Range> optimizerRanges;
    private double lastGradNorm = Double.NaN;
    private boolean skipNonFinite;
    private long skipped;
    private String lastSkip;

    public Optimized(ParameterStore store, Settings settings) {
        this(store, settings, null, 0);
    }

    /**
     * Data-parallel over {@code comm}'s ranks, each rank having run the backward of its own share of the global
     * batch, with ZeRO {@code zeroStage}: 0 all-reduces the gradients and every rank steps every weight (plain data
     * parallel); 1 partitions the optimizer state: the gradients are reduce-scattered, each rank steps only its slice
     * of the flat weights (AdamW moments for that slice alone) and the slices are all-gathered. The store's flat
     * length must split into equal aligned slices ({@link Zero#flatMultiple}). Stage 2 partitions the gradients
     * too and stage 3 the parameters as well, layer by layer ({@link ShardedStore}); their store must be laid out
     * with {@link Zero#layout}.
     */
    public Optimized(ParameterStore store, Settings settings, Communicator comm, int zeroStage) {
        this(store, settings, comm, zeroStage, false);
    }

    /**
     * As {@link #Optimized(ParameterStore, Settings, Communicator, int)}, with {@code offload} (DS-Chat's
     * {@code --offload}, ZeRO-Offload): this rank's optimizer state and its AdamW step live on the CPU, in host
     * memory, while the model computes on its device. Each step copies this rank's (summed) gradients to the host,
     * steps there with the CPU backend's multi-threaded AdamW on fp32 master weights, and copies the updated weights
     * back. The device then holds no optimizer state. On a CPU store it changes nothing and is refused.
     */
    public Optimized(ParameterStore store, Settings settings, Communicator comm, int zeroStage, boolean offload) {
        this(store, settings, comm, zeroStage, offload, null);
    }

    /**
     * ZeRO stage 3 over a store built partitioned ({@code HfModel.partitioned}, {@link ShardedStore}), which this
     * optimizer then owns and closes; otherwise as {@link #Optimized(ParameterStore, Settings, Communicator, int,
     * boolean)} at stage 3 on {@code comm}.
     */
    public Optimized(ShardedStore sharded, Settings settings, Communicator comm, boolean offload) {
        this(sharded.store(), settings, comm, 3, offload, sharded);
    }

    private Optimized(ParameterStore store, Settings settings, Communicator comm, int zeroStage, boolean offload,
                      ShardedStore built) {
        if (built != null && (comm == null || comm.worldSize() == 1 || built.stage() != 3))
            throw new IllegalArgumentException("a store built partitioned is ZeRO stage 3 over more than one rank");
        this.store = store;
        this.settings = settings;
        this.comm = comm == null || comm.worldSize() == 1 ? null : comm;
        this.zeroStage = zeroStage;
        if (zeroStage < 0 || zeroStage > 3)
            throw new IllegalArgumentException("ZeRO stage " + zeroStage + " must be 0, 1, 2 or 3");
        AdamW.Config config = AdamW.Config.dsChat(settings.lr(), settings.weightDecay());
        if (this.comm != null && zeroStage >= 2) {
            this.sharded = built != null ? built : new ShardedStore(store, this.comm, zeroStage);
            long[][] own = sharded.ownedRanges();
            this.optimizerRanges = AdamW.clip(AdamW.dsChatRanges(store), own[0], own[1]);
            java.util.List<AdamW.Group> groups = new java.util.ArrayList<>();
            for (ParameterStore.Range r : optimizerRanges) {
                long p = sharded.partitionIndex(r.start()), q = sharded.gradientIndex(r.start()),
                        n = r.end() - r.start();
                if (q < 0 || sharded.gradientIndex(r.end() - 1) != q + n - 1)
                    throw new IllegalStateException("AdamW range " + r + " is not one stretch of the gradient partition");
                Tensor params = zeroStage == 3 ? sharded.partitionData().flatRange(p, p + n)
                        : store.data().flatRange(r.start(), r.end());
                groups.add(new AdamW.Group(params, sharded.partitionGrad().flatRange(q, q + n),
                        r.decay() ? config.weightDecay() : 0.0, r.ownLr() ? settings.loraLr() : Double.NaN));
            }
            this.adamw = new AdamW(groups, config);
            this.sliceStart = 0;
            this.sliceEnd = 0;
            if (offload) {
                offloadOptimizer(config);
                if (!store.device().isCpu()) {
                    long[] starts = new long[optimizerRanges.size()];
                    for (int i = 0; i < starts.length; i++) starts[i] = sharded.gradientIndex(optimizerRanges.get(i).start());
                    gradientStream = new GradientStream(starts);
                    sharded.onGradientReduced(gradientStream::reduced);
                }
            }
            return;
        }
        this.sharded = null;
        if (this.comm != null && zeroStage >= 1) {
            int world = this.comm.worldSize();
            if (store.flatSize() % Zero.flatMultiple(world) != 0)
                throw new IllegalArgumentException("ZeRO stage " + zeroStage + " on " + world + " ranks needs a flat "
                        + "length that is a multiple of " + Zero.flatMultiple(world) + " elements; allocate the store "
                        + "with ParameterStore.allocate(..., Zero.flatMultiple(world)), not " + store.flatSize());
            long n = store.flatSize() / world, start = this.comm.rank() * n;
            this.sliceStart = start;
            this.sliceEnd = start + n;
            this.adamw = AdamW.forSlice(store, config, settings.loraLr(), start, start + n);
            this.optimizerRanges = AdamW.clip(AdamW.dsChatRanges(store), new long[] {start}, new long[] {start + n});
        } else {
            this.sliceStart = 0;
            this.sliceEnd = store.flatSize();
            this.adamw = AdamW.forStore(store, config, settings.loraLr());
            this.optimizerRanges = AdamW.dsChatRanges(store);
        }
        if (offload) offloadOptimizer(config);
    }

    /**
     * The flat store ranges [start, end) this rank's AdamW groups cover, in AdamW's group order: the moments of group
     * i ({@code adamw().moments(i)}) are those of exactly these elements. One process and stage 0: the whole of
     * DeepSpeed-Chat's groups; stages 1 to 3: this rank's slices of them. A partitioned checkpoint records them.
     */
    public java.util.List<ParameterStore.Range> optimizerRanges() {
        return optimizerRanges;
    }

    /**
     * The flat weights this rank keeps whole between steps, what an EMA tracks: the store's flat buffer, or at
     * ZeRO stage 3 this rank's partition (so the EMA is partitioned too, 1/N of it per rank). Turn such a tensor's
     * values into the store's whole layout with {@link #gatherWhole}.
     */
    public Tensor emaSource() {
        return sharded != null && sharded.stage() == 3 ? sharded.partitionData() : store.data();
    }

    /**
     * Copies {@code source}, laid out as {@link #emaSource} (an EMA's shadow), into {@code whole}, a flat buffer in
     * the store's layout: a copy, or at stage 3 an all-gather per group (a collective: every rank calls it).
     */
    public void gatherWhole(Tensor source, Tensor whole) {
        try (Autograd.NoGrad ignored = Autograd.noGrad()) {
            if (sharded != null && sharded.stage() == 3) sharded.gatherPartition(source, whole);
            else whole.copyFromTensor(source, false);
        }
    }

    /** The communicator of a data-parallel run (null for one process). */
    public Communicator communicator() {
        return comm;
    }

    /**
     * Makes every parameter whole on every rank until the returned guard closes: at ZeRO stage 3, gathers each
     * layer once (a collective: every rank must call it at the same point) and keeps it, as DeepSpeed's Hybrid
     * Engine does for generation ({@link RlhfEngine#forGeneration}); at other stages the parameters are whole already
     * and it does nothing. Saves and loads take one group at a time instead ({@link #partitionedParameters}).
     */
    public ShardedStore.Whole gathered() {
        return sharded != null ? sharded.gathered() : () -> {};
    }

    /**
     * At ZeRO stage 3 the partitioned store of its parameters (a save or load walks it a group at a time,
     * {@link ShardedStore#walk}); else null: the parameters are whole on every rank.
     */
    public ShardedStore partitionedParameters() {
        return sharded != null && sharded.stage() == 3 ? sharded : null;
    }

    /**
     * ZeRO-Offload's optimizer side: host copies of every AdamW group's weights (the fp32 masters) and gradients,
     * an AdamW over them, and the device groups they mirror.
     */
    private record Offload(AdamW device, java.util.List<AdamW.Group> host, Scope scope) {}

    private void offloadOptimizer(AdamW.Config config) {
        if (store.device().isCpu())
            throw new IllegalArgumentException("--offload moves the optimizer from a GPU to the CPU; this model is on "
                    + "the CPU already");
        Scope scope = Scope.detached(io.github.rlhf4j.runtime.Device.cpu());
        java.util.List<AdamW.Group> host = new java.util.ArrayList<>();
        try (Autograd.NoGrad ignored = Autograd.noGrad()) {
            for (AdamW.Group g : adamw.groups()) {
                Tensor p = scope.flat(DType.F32, g.params().numel());
                g.params().copyToHost(segment(p), DType.F32);
                host.add(new AdamW.Group(p, scope.flatZeros(DType.F32, g.grads().numel()), g.weightDecay(), g.lr()));
            }
        }
        AdamW onDevice = adamw;
        this.adamw = new AdamW(host, config);
        this.offload = new Offload(onDevice, host, scope);
        onDevice.close(); // its moments on the device are not needed: the host AdamW keeps its own
    }

    private static java.lang.foreign.MemorySegment segment(Tensor cpu) {
        return java.lang.foreign.MemorySegment.ofAddress(cpu.address()).reinterpret(cpu.numel() * cpu.dtype().size);
    }

    /**
     * Tells the optimizer that the weights it steps were replaced from outside (a checkpoint's weights loaded into
     * the store). Offloaded, the host's fp32 master weights take the new values, or the next step would write the
     * old ones back; on the device the AdamW groups are the store's own weights and there is nothing to do.
     */
    public void weightsReplaced() {
        if (offload == null) return;
        java.util.List<AdamW.Group> dev = offload.device().groups();
        try (Autograd.NoGrad ignored = Autograd.noGrad()) {
            for (int i = 0; i < dev.size(); i++)
                dev.get(i).params().copyToHost(segment(offload.host().get(i).params()), DType.F32);
        }
    }

    /** Whether the optimizer state and step live on the CPU (ZeRO-Offload). */
    public boolean isOffloaded() {
        return offload != null;
    }

    private GradientStream gradientStream; // ZeRO-Offload at stage 2 or 3 on a GPU

    /**
     * ZeRO-Offload's transfers at stage 2 and 3 on a GPU (Ren et al. 2021, section 4): each group's stretch of the
     * gradient partition is copied to the host as soon as its reduce-scatter is done, on a stream of its own behind
     * an event of the compute stream, while the backward of the layers before it goes on; the CPU then steps, and
     * each stepped piece of the weights goes back up the same way while the CPU steps the next, the compute stream
     * waiting for the last before it uses them. Host memory is pinned where the backend can (rlhf4j_host_register),
     * which lets the copies run beside the compute; where it cannot, each copy waits as a plain copy does, with the
     * same result.
     */
    private final class GradientStream implements AutoCloseable {
        private final io.github.rlhf4j.runtime.Device device = store.device();
        private final io.github.rlhf4j.runtime.Abi abi = device.abi();
        private final long copies = abi.streamCreate(device.handle());
        private final long computed = abi.eventCreate(device.handle()), copied = abi.eventCreate(device.handle());
        private final long[] starts; // AdamW group i's first element in the gradient partition
        private final boolean[] streamed; // group g's gradient copied down since the last step
        private final java.util.List<Long> pinned = new java.util.ArrayList<>();
        private int duringBackward, lastStep; // groups copied down as their reduce-scatter ended

        GradientStream(long[] starts) {
            this.starts = starts;
            this.streamed = new boolean[sharded.groupCount()];
            for (AdamW.Group g : offload.host())
                for (Tensor t : new Tensor[] {g.params(), g.grads()})
                    if (abi.hostRegister(device.handle(), t.address(), t.numel() * 4)) pinned.add(t.address());
        }

        /** Group g's gradient is summed into the partition: its stretch goes down to the host. */
        void reduced(int g) {
            down(g);
            duringBackward++;
        }

        private void down(int g) {
            long[] r = sharded.gradientRange(g);
            abi.eventRecord(computed, device.stream());
            abi.streamWaitEvent(copies, computed);
            java.util.List<AdamW.Group> dev = offload.device().groups(), host = offload.host();
            for (int i = 0; i < starts.length; i++) {
                long n = dev.get(i).grads().numel(), a = Math.max(r[0], starts[i]), b = Math.min(r[1], starts[i] + n);
                if (a >= b) continue;
                long at = (a - starts[i]) * 4;
                abi.memcpyAsync(copies, host.get(i).grads().address() + at, dev.get(i).grads().address() + at,
                        (b - a) * 4, 1);
            }
            streamed[g] = true;
        }

        /** Before the CPU steps: the groups no gradient reached this step go down too; the host waits for all. */
        void gradientsDown() {
            lastStep = duringBackward;
            duringBackward = 0;
            for (int g = 0; g < streamed.length; g++) if (!streamed[g]) down(g);
            abi.streamSynchronize(copies);
        }

        /** A stepped piece of group i's weights, [a, b), goes up. */
        void up(int i, long a, long b) {
            abi.memcpyAsync(copies, offload.device().groups().get(i).params().address() + a * 4,
                    offload.host().get(i).params().address() + a * 4, (b - a) * 4, 0);
        }

        /** After the step: the compute stream waits for the weights; the next step streams afresh. */
        void stepped() {
            abi.eventRecord(copied, copies);
            abi.streamWaitEvent(device.stream(), copied);
            java.util.Arrays.fill(streamed, false);
        }

        /** A step skipped: the copies in flight finish before the gradients are zeroed. */
        void drop() {
            abi.streamSynchronize(copies);
            java.util.Arrays.fill(streamed, false);
            duringBackward = 0;
        }

        @Override
        public void close() {
            abi.streamSynchronize(copies);
            for (long p : pinned) abi.hostUnregister(device.handle(), p);
            abi.eventDestroy(computed);
            abi.eventDestroy(copied);
            abi.streamDestroy(copies);
        }
    }

    /**
     * Stage 2 or 3 offloaded to the CPU from a GPU: how many group gradients the last step had copied down during
     * the backward, as their reduce-scatters ended (0 otherwise).
     */
    public int gradientsStreamedDuringBackward() {
        return gradientStream == null ? 0 : gradientStream.lastStep;
    }

    /**
     * The elements of one piece of the offloaded step ({@link #setOffloadPiece}): 4M fp32 numbers, 16 MiB, a few
     * milliseconds of PCIe copy and of the CPU's AdamW each.
     */
    public static final long OFFLOAD_PIECE = 1L << 22;

    private long offloadPiece = OFFLOAD_PIECE;
    private int offloadPieces;

    /** Sets the elements of a piece of the offloaded step (tests use small ones to see the pipeline turn). */
    public void setOffloadPiece(long elements) {
        if (elements < 1) throw new IllegalArgumentException("an offload piece of " + elements + " elements");
        this.offloadPiece = elements;
    }

    /** How many pieces the last offloaded step took (0 when not offloaded or before the first step). */
    public int offloadPieces() {
        return offloadPieces;
    }

    /** The thread that runs offloaded AdamW steps while the caller's thread copies (one for the process: steps are serial). */
    private static final java.util.concurrent.ExecutorService OFFLOAD_STEPPER =
            java.util.concurrent.Executors.newSingleThreadExecutor(r -> {
                Thread t = new Thread(r, "rlhf4j-offload-adamw");
                t.setDaemon(true);
                return t;
            });

    /**
     * The AdamW step, on the device or (offloaded) on the host, pipelined as ZeRO-Offload's CPU Adam is: the
     * optimizer's ranges are cut into pieces ({@link #OFFLOAD_PIECE}); this thread copies each piece's gradients down
     * while another steps the pieces already down on the CPU, then copies each stepped piece's weights up while the
     * CPU steps the rest. So the copies (the GPU's DMA engines) and the CPU's AdamW overlap, and the step takes
     * about the longer of the two instead of their sum. The result is the whole step's (AdamW is elementwise).
     */
    private void adamwStep(double factor, double gradScale) {
        if (offload == null) {
            adamw.stepScheduled(factor, gradScale);
            return;
        }
        java.util.List<AdamW.Group> dev = offload.device().groups(), host = offload.host();
        java.util.List<long[]> pieces = new java.util.ArrayList<>();
        for (int i = 0; i < dev.size(); i++)
            for (long a = 0, n = dev.get(i).params().numel(); a < n; a += offloadPiece)
                pieces.add(new long[] {i, a, Math.min(n, a + offloadPiece)});
        offloadPieces = pieces.size();
        if (gradientStream != null) { // the gradients came down during the backward; the weights go up as stepped
            gradientStream.gradientsDown();
            try (Autograd.NoGrad ignored = Autograd.noGrad()) {
                adamw.stepScheduledInPieces(factor, gradScale, pieces, p -> {}, p -> {
                    long[] piece = pieces.get(p);
                    gradientStream.up((int) piece[0], piece[1], piece[2]);
                });
            }
            gradientStream.stepped();
            return;
        }
        int n = pieces.size();
        java.util.List<java.util.concurrent.CompletableFuture<Void>> down = new java.util.ArrayList<>(n),
                stepped = new java.util.ArrayList<>(n);
        for (int p = 0; p < n; p++) {
            down.add(new java.util.concurrent.CompletableFuture<>());
            stepped.add(new java.util.concurrent.CompletableFuture<>());
        }
        java.util.concurrent.Future<?> stepping = OFFLOAD_STEPPER.submit(() -> {
            try (Autograd.NoGrad ignored = Autograd.noGrad()) {
                adamw.stepScheduledInPieces(factor, gradScale, pieces, p -> down.get(p).join(),
                        p -> stepped.get(p).complete(null));
            } catch (Throwable t) { // the copying thread must not wait for pieces that will never be stepped
                for (var f : stepped) f.completeExceptionally(t);
                throw t;
            }
        });
        try (Autograd.NoGrad ignored = Autograd.noGrad()) {
            for (int p = 0; p < n; p++) {
                long[] piece = pieces.get(p);
                int g = (int) piece[0];
                dev.get(g).grads().flatRange(piece[1], piece[2])
                        .copyToHost(segment(host.get(g).grads().flatRange(piece[1], piece[2])), DType.F32);
                down.get(p).complete(null);
            }
            for (int p = 0; p < n; p++) {
                stepped.get(p).join();
                long[] piece = pieces.get(p);
                int g = (int) piece[0];
                dev.get(g).params().flatRange(piece[1], piece[2])
                        .copyFromHost(segment(host.get(g).params().flatRange(piece[1], piece[2])), DType.F32);
            }
            stepping.get();
        } catch (RuntimeException | Error e) { // a copy or a piece failed: let the stepper end, then report it
            for (var f : down) f.completeExceptionally(e);
            try {
                stepping.get();
            } catch (Exception ignoredToo) {
                // the first error is the one to report
            }
            if (e instanceof java.util.concurrent.CompletionException c && c.getCause() instanceof RuntimeException r)
                throw r;
            if (e instanceof java.util.concurrent.CompletionException c && c.getCause() instanceof Error err)
                throw err;
            throw e;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted during the offloaded AdamW step", e);
        } catch (java.util.concurrent.ExecutionException e) {
            Throwable cause = e.getCause();
            if (cause instanceof RuntimeException r) throw r;
            if (cause instanceof Error err) throw err;
            throw new IllegalStateException("the offloaded AdamW step failed", cause);
        }
    }

    /** The ZeRO stage (0 without a communicator of several ranks). */
    public int zeroStage() {
        return comm == null ? 0 : zeroStage;
    }

    public ParameterStore store() {
        return store;
    }

    public AdamW adamw() {
        return adamw;
    }

    /** Steps taken. */
    public long steps() {
        return adamw.stepCount();
    }

    /** The learning rate the next step uses. */
    public double lr() {
        return settings.schedule().lr(settings.lr(), adamw.stepCount());
    }

    /** The LoRA adapters' learning rate the next step uses (their base rate times the schedule's factor). */
    public double loraLr() {
        return settings.schedule().lr(settings.loraLr(), adamw.stepCount());
    }

    /** The global gradient norm before clipping of the last step. */
    public double lastGradNorm() {
        return lastGradNorm;
    }

    /** With {@code on}, a non-finite loss or gradient skips the step (counted) instead of stopping the run. */
    public void skipNonFiniteSteps(boolean on) {
        this.skipNonFinite = on;
    }

    public boolean skipsNonFiniteSteps() {
        return skipNonFinite;
    }

    /** Steps skipped for a NaN or Inf so far. */
    public long skippedSteps() {
        return skipped;
    }

    /** Why the last step was skipped (null if none was). */
    public String lastSkipReason() {
        return lastSkip;
    }

    /**
     * Sets the counters a checkpoint saved: AdamW's steps taken (which also places the schedule) and the steps
     * skipped. The moments are restored through {@link AdamW#moments}.
     */
    public void restoreCounters(long steps, long skippedSteps) {
        if (skippedSteps < 0) throw new IllegalArgumentException("skipped steps " + skippedSteps + " must be >= 0");
        adamw.setStepCount(steps);
        this.skipped = skippedSteps;
    }

    /**
     * Checks a loss before its backward pass: true when it is finite. A NaN or Inf throws, naming {@code what} and
     * the step; when skipping, it counts the step as skipped and returns false (the caller then takes no step).
     */
    public boolean acceptLoss(String what, double loss) {
        if (comm != null) {
            // every rank must take or skip the step alike, or the others would wait in its collectives forever
            long[] bad = comm.allGather(Double.isFinite(loss) ? -1L : comm.rank());
            for (long r : bad)
                if (r >= 0)
                    return skip(what + ": loss is " + (r == comm.rank() ? loss : "not finite") + " on rank " + r
                            + " at step " + (adamw.stepCount() + 1));
            return true;
        }
        if (Double.isFinite(loss)) return true;
        return skip(what + ": loss is " + loss + " at step " + (adamw.stepCount() + 1));
    }

    /**
     * Clips, steps and zeroes the gradients; returns whether the step was taken. A NaN or Inf gradient stops with the
     * step number and the first parameter whose gradient holds it, instead of corrupting the weights (or, when
     * skipping, zeroes the gradients, counts the step as skipped and returns false).
     */
    public boolean step(String what) {
        double scale = 1; // the gradients are summed over ranks; the step uses their mean
        double norm;
        if (sharded != null) {
            sharded.finishBackward();
            scale = 1.0 / comm.worldSize();
            try (Autograd.NoGrad ignored = Autograd.noGrad(); Scope s = Scope.open(store.device())) {
                Tensor sq = Tensor.of(new double[] {InPlace.sumOfSquares(sharded.partitionGrad())});
                comm.allReduce(sq);
                norm = Math.sqrt(sq.toDoubleArray()[0]) * scale;
            }
        } else if (comm == null) {
            // not GradClip.globalNorm: it throws on a non-finite norm without the step and the parameter
            norm = Math.sqrt(InPlace.sumOfSquares(store.grad()));
        } else {
            scale = 1.0 / comm.worldSize();
            norm = Math.sqrt(reduceGradients()) * scale;
        }
        if (!Double.isFinite(norm)) {
            String why = what + ": gradient norm is " + norm + " at step " + (adamw.stepCount() + 1)
                    + " (first non-finite gradient: " + firstNonFinite() + ")";
            if (gradientStream != null) gradientStream.drop();
            clearGradients();
            return skip(why);
        }
        lastGradNorm = norm;
        // each group at its base rate times the schedule's factor; the default groups exactly at lr()
        adamwStep(settings.schedule().factor(adamw.stepCount()),
                GradClip.coefficient(norm, settings.maxGradNorm()) * scale);
        if (sharded != null) sharded.gatherUpdatedParameters();
        else if (comm != null && zeroStage >= 1) gatherWeights();
        clearGradients();
        return true;
    }

    private void clearGradients() {
        if (sharded != null) sharded.afterStep();
        else store.zeroGrad();
    }

    /**
     * Sums the gradients over ranks, the whole buffer (stage 0) or this rank's slice (stage 1), and returns the
     * squared norm of the summed gradient (the same on every rank, so every rank takes or skips the step alike).
     */
    private double reduceGradients() {
        try (Autograd.NoGrad ignored = Autograd.noGrad(); Scope s = Scope.open(store.device())) {
            Tensor grad = store.grad();
            if (zeroStage == 0) {
                comm.allReduce(grad);
                return InPlace.sumOfSquares(grad);
            }
            Tensor mine = grad.flatRange(sliceStart, sliceEnd);
            comm.reduceScatter(grad, mine);
            Tensor sq = Tensor.of(new double[] {InPlace.sumOfSquares(mine)});
            comm.allReduce(sq);
            return sq.toDoubleArray()[0];
        }
    }

    /** Every rank's updated slice of the weights, to every rank. */
    private void gatherWeights() {
        try (Autograd.NoGrad ignored = Autograd.noGrad()) {
            Tensor data = store.data();
            comm.allGather(data.flatRange(sliceStart, sliceEnd), data);
        }
    }

    private boolean skip(String why) {
        if (!skipNonFinite) throw new ArithmeticException(why + "; the step was not taken");
        skipped++;
        lastSkip = why + "; skipped";
        return false;
    }

    /** The name of the first parameter whose gradient has a NaN or Inf (a host copy: only on the failure path). */
    private String firstNonFinite() {
        if (sharded != null) { // the whole gradients are gone: look in this rank's summed slice, a parameter at a time
            long[][] own = sharded.ownedRanges();
            for (ParameterStore.Entry e : store.entries())
                for (int k = 0; k < own[0].length && !e.parameter().isFrozen(); k++) {
                    long s = Math.max(e.offset(), own[0][k]), t = Math.min(e.offset() + e.numel(), own[1][k]);
                    if (s >= t) continue;
                    long i = sharded.gradientIndex(s);
                    for (double g : sharded.partitionGrad().flatView(i, (int) (t - s)).toDoubleArray())
                        if (!Double.isFinite(g)) return e.name() + " (in rank " + comm.rank() + "'s slice)";
                }
            return "none in rank " + comm.rank() + "'s slice";
        }
        for (ParameterStore.Entry e : store.entries()) {
            if (e.parameter().isFrozen()) continue;
            for (double g : e.parameter().value().grad().toDoubleArray())
                if (!Double.isFinite(g)) return e.name();
        }
        return "none found";
    }

    @Override
    public void close() {
        if (gradientStream != null) {
            sharded.onGradientReduced(null);
            gradientStream.close();
        }
        adamw.close();
        if (offload != null) offload.scope().close();
        if (sharded != null) sharded.close();
    }
}
