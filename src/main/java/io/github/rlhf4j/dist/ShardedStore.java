package io.github.rlhf4j.dist;

import io.github.rlhf4j.model.Transformer;
import io.github.rlhf4j.nn.Module;
import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.tensor.Autograd;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A trained store partitioned over the ranks at ZeRO stage 2 or 3 (Rajbhandari et al. 2020, sections 5.2 and 5.3),
 * group by group: the store is laid out with every group (embeddings, each transformer layer, the final norm and
 * heads) on a multiple of world x 64 elements ({@link Zero#layout}), and rank r owns the r-th equal slice of each
 * group. Its partition is those slices end to end: {@code flatSize / world} elements.
 *
 * <p>What a rank holds between steps, and when the rest exists:
 * <ul>
 *   <li>Gradients (stages 2 and 3): the partition's ({@link #partitionGrad}). A group's whole gradient is an
 *   evictable buffer that comes into being, zeroed, at the first gradient written into it; when the group's backward
 *   is over it is reduce-scattered into the partition and given back. A layer's backward ends inside its
 *   {@link Autograd#region} (each layer runs through this class's {@link Transformer.LayerHook}); the groups outside
 *   the layers (embeddings and heads, whose tied weights gather gradient from both ends of the backward) are
 *   reduce-scattered at the step.</li>
 *   <li>Parameters (stage 3): the partition's ({@link #partitionData}). A group's whole parameters are an evictable
 *   buffer whose refill all-gathers them from the partitions, on the first use of any of its parameters: a layer's
 *   just before its forward and again before its backward (each time released after), the embeddings and heads at
 *   their first use, kept until the step. {@link #gathered} keeps everything whole for a while (generation), and
 *   {@link #walk} takes the groups one at a time in a given order (saves and loads).</li>
 * </ul>
 * Every gather and reduce-scatter is a collective, so every rank must run the same forwards and backwards in the same
 * order, as data-parallel training does. At stage 3, the gather of the layer that runs next (the next one in a
 * forward, the previous one in a backward) starts before the current layer computes and is waited for at its first
 * use ({@link #prefetch}), so that the transport moves it meanwhile: NCCL on its own stream beside the compute
 * kernels; MPI (host buffers) through a nonblocking all-gather that a thread of the shim keeps moving. It is on for
 * models on a GPU and off on the CPU, where the copies take the compute's own cores ({@link #PREFETCH_PROPERTY}).
 */
public final class ShardedStore implements AutoCloseable {
    private final ParameterStore store;
    private final Communicator comm;
    private final int stage, world, rank;
    private final long[] bounds;
    private final long[] partOffset; // where group g's slice starts in the partition
    private final long[] gradOffset; // where group g's trainable pieces start in the gradient partition
    private final long[][] gradPieces; // group g's pieces: {start in its slice, length}, pairs end to end
    private final Scope scope;
    private final Tensor partGrad, partData;
    private final Tensor[] gradGroups, dataGroups;
    private final boolean[] reduced; // group g's gradient summed into the partition since the last step
    private final Map<Transformer, Map<Integer, Integer>> layerGroups = new HashMap<>();
    private final Map<String, Integer> lastOfGroup = new HashMap<>(); // a group's last parameter, for loading
    private int pinned;
    private final boolean[] kept; // kept whole by gatheredWithin until its guard closes
    private Walk walk; // the walk under way: no group but its current one may be gathered
    private final boolean prefetch;

    /**
     * The system property that sets stage 3's prefetch of the next layer: {@code true}, {@code false}, or
     * {@code auto} (the default): on for a model on a GPU, off on the CPU. On the CPU an MPI transfer is a copy
     * that the CPU's cores make, the same cores the compute runs on, so starting it early wins nothing: on the
     * 2-core development machine a ZeRO-3 step of OPT-125m on 2 ranks took 3% longer with it (bench/RESULTS.md).
     */
    public static final String PREFETCH_PROPERTY = "rlhf4j.zero.prefetch";

    /** Whether a stage-3 store on {@code device} prefetches, as {@link #PREFETCH_PROPERTY} says. */
    public static boolean prefetches(io.github.rlhf4j.runtime.Device device) {
        String setting = System.getProperty(PREFETCH_PROPERTY, "auto").trim().toLowerCase(java.util.Locale.ROOT);
        return switch (setting) {
            case "true", "on" -> true;
            case "false", "off" -> false;
            case "auto" -> !device.isCpu();
            default -> throw new IllegalArgumentException("-D" + PREFETCH_PROPERTY + "=" + setting
                    + ": expected auto, true or false");
        };
    }

    /**
     * Partitions {@code store} over {@code comm}'s ranks at ZeRO {@code stage}. A frozen (inference-only) store takes
     * stage 3 alone, which DeepSpeed-Chat gives the reference and reward models when the actor and critic are at
     * stage 3: parameters partitioned and gathered a layer at a time, no gradients; after each forward pass
     * {@link #release} gives back what stayed gathered (the embeddings and heads).
     */
    public ShardedStore(ParameterStore store, Communicator comm, int stage) {
        if (stage != 2 && stage != 3) throw new IllegalArgumentException("ShardedStore is ZeRO stage 2 or 3, not " + stage);
        if (!store.isTrainable() && stage != 3)
            throw new IllegalArgumentException("ZeRO stage " + stage + " partitions gradients: a frozen store has none "
                    + "(stage 3 partitions its parameters)");
        this.store = store;
        this.comm = comm;
        this.stage = stage;
        this.world = comm.worldSize();
        this.rank = comm.rank();
        if (store.dtype() != DType.F32)
            throw new IllegalArgumentException("ZeRO stages 2 and 3 partition F32 stores, not " + store.dtype());
        if (store.isUnbound() && stage != 3)
            throw new IllegalArgumentException("a store laid out only (ParameterStore.layOut) is built partitioned, "
                    + "which is ZeRO stage 3's; stage " + stage + " keeps the parameters whole: allocate it");
        this.bounds = store.groupBoundaries();
        this.prefetch = prefetches(store.device());
        long multiple = Zero.flatMultiple(world);
        if (!store.layout().groupByLayer() || store.layout().flatMultiple() % multiple != 0)
            throw new IllegalArgumentException("ZeRO stage " + stage + " on " + world + " ranks needs the store laid "
                    + "out with Zero.layout(" + world + ", " + stage + "), every layer group on a multiple of "
                    + multiple + " elements; it has " + store.layout());
        int groups = bounds.length - 1;
        this.partOffset = new long[groups + 1];
        for (int g = 0; g < groups; g++) partOffset[g + 1] = partOffset[g] + (bounds[g + 1] - bounds[g]) / world;
        this.gradOffset = new long[groups + 1];
        this.gradPieces = new long[groups][];
        if (store.isTrainable()) trainablePieces();
        this.scope = Scope.detached(store.device());
        this.reduced = new boolean[groups];
        this.kept = new boolean[groups];
        try (Autograd.NoGrad ignored = Autograd.noGrad()) {
            if (store.isTrainable()) {
                partGrad = scope.flatZeros(DType.F32, gradOffset[groups]);
                gradGroups = new Tensor[groups];
                for (int g = 0; g < groups; g++) gradGroups[g] = scope.evictable(DType.F32, length(g), t -> t.fill(0));
            } else {
                partGrad = null;
                gradGroups = null;
            }
            if (stage == 3) {
                if (store.isUnbound()) { // built partitioned: this rank's slices alone, initialised where they lie
                    partData = scope.flatZeros(DType.F32, partOffset[groups]);
                    initialiseOwnSlices();
                } else {
                    partData = scope.flat(DType.F32, partOffset[groups]);
                    for (int g = 0; g < groups; g++) partData(g).copyFromTensor(ownSlice(store.data(), g), false);
                }
                dataGroups = new Tensor[groups];
                for (int g = 0; g < groups; g++) {
                    int gg = g;
                    dataGroups[g] = scope.evictable(DType.F32, length(g), t -> {
                        outsideWalk(gg);
                        comm.allGather(partData(gg), t);
                    }, t -> {
                        outsideWalk(gg);
                        return comm.allGatherStart(partData(gg), t)::await;
                    });
                }
            } else {
                partData = null;
                dataGroups = null;
            }
        }
        String why = "ZeRO stage " + stage + " over " + world + " ranks";
        if (store.isUnbound()) store.bindGroups(dataGroups, gradGroups, why);
        else store.regroup(dataGroups, gradGroups, why);
        String[] last = new String[groups]; // entries run in offset order: the last seen of a group is its last
        for (ParameterStore.Entry e : store.entries()) last[store.groupOf(e.offset())] = e.name();
        for (int g = 0; g < groups; g++) if (last[g] != null) lastOfGroup.put(last[g], g);
        hookLayers(store.model());
    }

    /** Refuses to gather group g during a walk that is at another group: a collective the other ranks would not enter. */
    private void outsideWalk(int g) {
        if (walk != null && walk.current != g)
            throw new IllegalStateException("layer group " + g + " was read outside the order of " + walk.what
                    + " (at group " + walk.current + ")");
    }

    /**
     * Where the gradient partition keeps what: the stretches of this rank's slice of each group that trainable
     * parameters cover (a run of adjacent ones with their alignment padding, as AdamW's ranges run), end to end; a
     * group with no frozen parameter keeps its whole slice. With every parameter trainable the gradient partition is
     * thus laid out as the parameters'; with LoRA (which freezes the weights it adapts) it holds the adapters and the
     * other trainable parameters alone, as DeepSpeed keeps gradient partitions only for what requires grad.
     */
    private void trainablePieces() {
        long[][] own = ownedRanges();
        int groups = bounds.length - 1;
        List<long[]> runs = new ArrayList<>(); // [start, end) of adjacent trainable parameters, by flat offset
        for (ParameterStore.Entry e : store.entries()) {
            if (e.parameter().isFrozen()) continue;
            long a = e.offset(), b = e.offset() + (e.numel() + ParameterStore.ALIGN - 1) / ParameterStore.ALIGN
                    * ParameterStore.ALIGN;
            if (!runs.isEmpty() && runs.getLast()[1] == a && store.groupOf(runs.getLast()[0]) == store.groupOf(a))
                runs.getLast()[1] = b;
            else runs.add(new long[] {a, b});
        }
        boolean[] frozen = new boolean[groups];
        for (ParameterStore.Entry e : store.entries()) frozen[store.groupOf(e.offset())] |= e.parameter().isFrozen();
        for (int g = 0; g < groups; g++) {
            if (!frozen[g]) { // all of it trains: the whole slice, padding too, reduce-scattered in place
                gradPieces[g] = new long[] {0, partOffset[g + 1] - partOffset[g]};
                gradOffset[g + 1] = gradOffset[g] + partOffset[g + 1] - partOffset[g];
                continue;
            }
            List<Long> pieces = new ArrayList<>();
            long held = 0;
            for (long[] r : runs) {
                long a = Math.max(r[0], own[0][g]), b = Math.min(r[1], own[1][g]);
                if (a >= b) continue;
                if (!pieces.isEmpty() && pieces.get(pieces.size() - 2) + pieces.getLast() == a - own[0][g]) {
                    pieces.set(pieces.size() - 1, pieces.getLast() + b - a);
                } else {
                    pieces.add(a - own[0][g]);
                    pieces.add(b - a);
                }
                held += b - a;
            }
            gradPieces[g] = pieces.stream().mapToLong(Long::longValue).toArray();
            gradOffset[g + 1] = gradOffset[g] + held;
        }
    }

    /** Whether group g's slice is all trainable: its gradient pieces are the slice itself. */
    private boolean wholeSliceTrains(int g) {
        return gradPieces[g].length == 2 && gradPieces[g][0] == 0 && gradPieces[g][1] == partOffset[g + 1] - partOffset[g];
    }

    /** Every parameter's stretch in this rank's partition, initialised as the whole parameter would be there. */
    private void initialiseOwnSlices() {
        long[][] own = ownedRanges();
        for (ParameterStore.Entry e : store.entries()) {
            int g = store.groupOf(e.offset());
            long s = Math.max(e.offset(), own[0][g]), t = Math.min(e.offset() + e.numel(), own[1][g]);
            if (s < t)
                ParameterStore.initialise(partData.flatView(partitionIndex(s), (int) (t - s)), e.parameter().init(),
                        store.seed(), s);
        }
    }

    /**
     * Loading a store built partitioned (stage 3): called after each parameter has been written whole (or left at
     * its initialisation), in the layout's order, as {@code HfModel.loadWeights} goes. A parameter's first write
     * gathers its group (a collective); after the group's last parameter this rank keeps its slice of it in the
     * partition and gives the group back, so loading holds at most one group whole. Every rank must load the same
     * parameters in the same order.
     */
    public void loaded(String name) {
        Integer g = lastOfGroup.get(name);
        if (g == null || dataGroups == null || !dataGroups[g].isResident()) return;
        keepGroup(g);
        if (!held(g)) dataGroups[g].evict();
    }

    /** Whether group g stays gathered after use: everything is pinned ({@link #gathered}) or it is kept. */
    private boolean held(int g) {
        return pinned > 0 || kept[g];
    }

    private void keepGroup(int g) {
        try (Autograd.NoGrad ignored = Autograd.noGrad()) {
            long part = length(g) / world;
            partData(g).copyFromTensor(dataGroups[g].flatRange(rank * part, (rank + 1) * part), false);
        }
    }

    private int length(int g) {
        long n = bounds[g + 1] - bounds[g];
        if (n > Integer.MAX_VALUE)
            throw new IllegalArgumentException("layer group " + g + " has " + n + " elements; ZeRO gathers a group "
                    + "whole, and one may hold at most 2^31 - 1");
        return (int) n;
    }

    /** This rank's slice of group g within {@code groupOrFlat}, a whole flat buffer. */
    private Tensor ownSlice(Tensor flat, int g) {
        long part = (bounds[g + 1] - bounds[g]) / world, start = bounds[g] + rank * part;
        return flat.flatRange(start, start + part);
    }

    private Tensor partData(int g) {
        return partData.flatRange(partOffset[g], partOffset[g + 1]);
    }

    private Tensor partGrad(int g) {
        return partGrad.flatRange(gradOffset[g], gradOffset[g + 1]);
    }

    private void hookLayers(Module root) {
        Map<String, Integer> byKey = new HashMap<>();
        for (int g = 0; g < bounds.length - 1; g++) {
            ParameterStore.Entry first = firstEntry(g);
            if (first != null) {
                String layer = ParameterStore.layerOf(first.name());
                if (layer != null) byKey.put(layer, g);
            }
        }
        java.util.List<Module> modules = new java.util.ArrayList<>(root.namedModules().values());
        modules.add(root);
        for (Module m : modules)
            if (m instanceof Transformer t && !layerGroups.containsKey(t)) {
                Map<Integer, Integer> groups = new HashMap<>();
                for (var e : byKey.entrySet()) {
                    String k = e.getKey();
                    groups.put(Integer.parseInt(k.substring(k.indexOf('.') + 1)), e.getValue());
                }
                layerGroups.put(t, groups);
                if (t.layerHook() != null) throw new IllegalStateException("the model's layers are hooked already");
                int last = groups.keySet().stream().mapToInt(Integer::intValue).max().orElse(-1);
                // a KV-cache forward (generation) is followed by another from the first layer: the next token's
                // or, after the last token, the experience pass's
                t.setLayerHook((index, x, cached, run) -> layer(groups.getOrDefault(index, -1),
                        groups.getOrDefault(cached && index == last ? 0 : index + 1, -1),
                        groups.getOrDefault(index - 1, -1), x, run));
            }
    }

    private ParameterStore.Entry firstEntry(int g) {
        for (ParameterStore.Entry e : store.entries()) if (e.offset() >= bounds[g] && e.offset() < bounds[g + 1]) return e;
        return null;
    }

    /**
     * Layer group g's run: its parameters gathered before (at stage 3, with the gather of the layer that comes next
     * started before this one computes: {@code next} in the forward, the first layer after the last in generation,
     * {@code previous} in the backward), given back after, and its gradient reduce-scattered after its backward.
     */
    private Tensor layer(int g, int next, int previous, Tensor x, java.util.function.UnaryOperator<Tensor> run) {
        if (g < 0) return run.apply(x);
        prefetch(g, next);
        return Autograd.region("layer group " + g, run, x, new Autograd.RegionHooks() {
            @Override
            public void afterForward() {
                releaseParameters(g);
            }

            @Override
            public void beforeBackward() {
                prefetch(g, previous);
            }

            @Override
            public void afterBackward() {
                reduceGradient(g);
                releaseParameters(g);
            }
        });
    }

    /**
     * Stage 3, before layer group g computes: g's parameters whole (gathered now, or the gather started ahead
     * waited for), then the gather of group {@code ahead} started without waiting, so that the transport moves it
     * while g computes (DeepSpeed's stage-3 prefetch; Rajbhandari et al. 2020, section 5.3). Two groups are whole
     * at once, the current and the next. Every rank runs the same layers in the same order, so the ranks start the
     * same gathers in the same order. On for a model on a GPU, off on the CPU ({@value #PREFETCH_PROPERTY}; every
     * rank must set it alike, as it changes the order of collectives). {@link Traffic#startedAhead} counts them.
     */
    private void prefetch(int g, int ahead) {
        if (!prefetch || dataGroups == null || world == 1 || ahead < 0 || walk != null) return;
        if (dataGroups[ahead].isResident()) return; // kept, or in use
        try (Autograd.NoGrad ignored = Autograd.noGrad()) {
            touch(dataGroups[g]);
            dataGroups[ahead].fillAhead();
        }
    }


    private void releaseParameters(int g) {
        if (dataGroups != null && !held(g)) dataGroups[g].evict();
    }

    /** Sums group g's whole gradient over the ranks into this rank's partition, and gives the whole one back. */
    private void reduceGradient(int g) {
        if (gradGroups == null) return; // frozen
        Tensor whole = gradGroups[g];
        if (!whole.isResident()) return; // nothing written into it since the last reduction
        try (Autograd.NoGrad ignored = Autograd.noGrad(); Scope s = Scope.open(store.device())) {
            if (!reduced[g] && wholeSliceTrains(g)) {
                comm.reduceScatter(whole, partGrad(g));
            } else { // a second backward before the step (gradient accumulation), or frozen stretches to leave out
                Tensor tmp = s.flat(DType.F32, partOffset[g + 1] - partOffset[g]);
                comm.reduceScatter(whole, tmp);
                long[] pieces = gradPieces[g];
                for (int k = 0, at = 0; k < pieces.length; at += (int) pieces[k + 1], k += 2) {
                    Tensor from = tmp.flatRange(pieces[k], pieces[k] + pieces[k + 1]);
                    Tensor to = partGrad(g).flatRange(at, at + pieces[k + 1]);
                    if (reduced[g]) io.github.rlhf4j.tensor.InPlace.axpby(1, from, 1, to);
                    else to.copyFromTensor(from, false);
                }
            }
        }
        reduced[g] = true;
        whole.evict();
        if (onReduced != null) onReduced.accept(g);
    }

    private java.util.function.IntConsumer onReduced;

    /**
     * Tells {@code listener} each time a group's gradient has been summed into the partition (a layer's, at the end
     * of its backward; the others' at {@link #finishBackward}): ZeRO-Offload starts copying that stretch of the
     * gradient partition to the host then, while the backward goes on. Null removes it.
     */
    public void onGradientReduced(java.util.function.IntConsumer listener) {
        this.onReduced = listener;
    }

    /** Group g's stretch [start, end) of {@link #partitionGrad}. */
    public long[] gradientRange(int g) {
        return new long[] {gradOffset[g], gradOffset[g + 1]};
    }

    /** The layer groups (embeddings, each layer, the final norm and heads). */
    public int groupCount() {
        return bounds.length - 1;
    }

    /**
     * Reduces every gradient not reduced yet (the groups outside the layers, and layers run without the hook), so
     * {@link #partitionGrad} holds this rank's slice of the gradient summed over ranks. Call it before the step.
     */
    public void finishBackward() {
        for (int g = 0; gradGroups != null && g < gradGroups.length; g++) reduceGradient(g);
    }

    /** After the step: the partition's gradient zeroed; at stage 3 every gathered parameter given back. */
    public void afterStep() {
        if (gradGroups != null) {
            try (Autograd.NoGrad ignored = Autograd.noGrad()) {
                partGrad.fill(0);
            }
            java.util.Arrays.fill(reduced, false);
            for (Tensor t : gradGroups) t.evict();
        }
        release();
    }

    /**
     * Stage 3: gives back every gathered parameter (unless {@link #gathered} pins them): what a frozen model calls
     * after a forward pass, and the step does for a trained one. This rank's own slices stay.
     */
    public void release() {
        for (int g = 0; dataGroups != null && g < dataGroups.length; g++) if (!held(g)) dataGroups[g].evict();
    }

    /**
     * Stage 2, after the step updated this rank's slices in the whole parameters: every rank's slices, to every
     * rank (one all-gather per group, in place).
     */
    public void gatherUpdatedParameters() {
        if (stage != 2) return;
        try (Autograd.NoGrad ignored = Autograd.noGrad()) {
            for (int g = 0; g < bounds.length - 1; g++) {
                Tensor whole = store.groupData(g);
                comm.allGather(ownSlice(store.data(), g), whole);
            }
        }
    }

    /** Every rank's partition laid out like {@link #partitionData} ({@code partition}), whole into {@code whole}. */
    public void gatherPartition(Tensor partition, Tensor whole) {
        for (int g = 0; g < bounds.length - 1; g++)
            comm.allGather(partition.flatRange(partOffset[g], partOffset[g + 1]), whole.flatRange(bounds[g], bounds[g + 1]));
    }

    /**
     * This rank's slice of every group's summed gradient, end to end, less the stretches that only frozen
     * parameters cover ({@link #gradientIndex} says where an element is).
     */
    public Tensor partitionGrad() {
        if (partGrad == null) throw new IllegalStateException("a frozen store has no gradients");
        return partGrad;
    }

    /** Stage 3: this rank's slice of every group's parameters, end to end (what the optimizer updates). */
    public Tensor partitionData() {
        if (partData == null) throw new IllegalStateException("stage 2 keeps the parameters whole: use store.data()");
        return partData;
    }

    /** Where this rank's partition holds flat store element {@code offset}, or -1 when another rank owns it. */
    public long partitionIndex(long offset) {
        int g = store.groupOf(offset);
        long part = (bounds[g + 1] - bounds[g]) / world, start = bounds[g] + rank * part;
        return offset >= start && offset < start + part ? partOffset[g] + offset - start : -1;
    }

    /**
     * Where {@link #partitionGrad} holds the gradient of flat store element {@code offset}, or -1 when another rank
     * owns it or no trainable parameter covers it.
     */
    public long gradientIndex(long offset) {
        int g = store.groupOf(offset);
        long within = partitionIndex(offset);
        if (within < 0 || gradPieces[g] == null) return -1;
        within -= partOffset[g];
        long at = gradOffset[g];
        long[] pieces = gradPieces[g];
        for (int k = 0; k < pieces.length; at += pieces[k + 1], k += 2)
            if (within >= pieces[k] && within < pieces[k] + pieces[k + 1]) return at + within - pieces[k];
        return -1;
    }

    /** This rank's owned flat ranges [starts[k], ends[k]), one per group, in order. */
    public long[][] ownedRanges() {
        int groups = bounds.length - 1;
        long[] starts = new long[groups], ends = new long[groups];
        for (int g = 0; g < groups; g++) {
            long part = (bounds[g + 1] - bounds[g]) / world;
            starts[g] = bounds[g] + rank * part;
            ends[g] = starts[g] + part;
        }
        return new long[][] {starts, ends};
    }

    public int stage() {
        return stage;
    }

    /** The store it partitions. */
    public ParameterStore store() {
        return store;
    }

    /**
     * Gathers every group's parameters (stage 3; a collective) and keeps them whole until the guard closes. Nested
     * guards keep them until the outermost closes.
     */
    public Whole gathered() {
        if (dataGroups == null) return () -> {};
        pinned++;
        try (Autograd.NoGrad ignored = Autograd.noGrad()) {
            for (Tensor t : dataGroups) if (!t.isResident()) touch(t);
        }
        boolean[] closed = {false};
        return () -> {
            if (closed[0]) return;
            closed[0] = true;
            if (--pinned == 0) for (int g = 0; g < dataGroups.length; g++) if (!kept[g]) dataGroups[g].evict();
        };
    }

    /**
     * Stage 3: keeps whole until the guard closes as many groups as {@code budget} bytes hold, in order (gathering
     * those not resident; a collective, so every rank must pass the same budget); the others are still gathered at
     * each use and given back after. The hybrid engine's middle way, when the whole model does not fit. Returns the
     * guard and, in {@code keptGroups[0]} and {@code keptGroups[1]}, how many groups it keeps and their bytes.
     */
    public Whole gatheredWithin(long budget, long[] keptGroups) {
        if (dataGroups == null) return () -> {};
        long left = budget, bytes = 0;
        int n = 0;
        boolean[] mine = new boolean[dataGroups.length];
        try (Autograd.NoGrad ignored = Autograd.noGrad()) {
            for (int g = 0; g < dataGroups.length; g++) {
                long b = dataGroups[g].numel() * dataGroups[g].dtype().size;
                if (kept[g] || (!dataGroups[g].isResident() && b > left)) continue;
                if (!dataGroups[g].isResident()) {
                    left -= b;
                    touch(dataGroups[g]);
                }
                kept[g] = mine[g] = true;
                n++;
                bytes += b;
            }
        }
        keptGroups[0] = n;
        keptGroups[1] = bytes;
        boolean[] closed = {false};
        return () -> {
            if (closed[0]) return;
            closed[0] = true;
            for (int g = 0; g < dataGroups.length; g++)
                if (mine[g]) {
                    kept[g] = false;
                    if (pinned == 0) dataGroups[g].evict();
                }
        };
    }

    /** Stage 3: its layer groups (0 below stage 3). */
    public int groups() {
        return dataGroups == null ? 0 : dataGroups.length;
    }

    /** Stage 3: the bytes a {@link #gathered} would bring in now (the groups not resident); 0 below stage 3. */
    public long bytesToGather() {
        long n = 0;
        if (dataGroups != null) for (Tensor t : dataGroups) if (!t.isResident()) n += t.numel() * t.dtype().size;
        return n;
    }

    /**
     * Stage 3: a walk over parameters {@code names} in that order (a save reading them, a load writing them) that
     * holds one group whole at a time: {@link Walk#at} gathers a parameter's group (a collective) and gives back the
     * group before it; with {@code keep}, this rank first keeps its slice of a group it leaves in its partition (a
     * load wrote into it). Every rank walks the same names: the rank that reads or writes calls {@code at} before
     * each parameter, and the others (and that one, after a failure) let {@link Walk#finish} run the same gathers.
     * While it is open, gathering any other group throws rather than leave the other ranks waiting in a collective.
     * Null below stage 3, where the parameters are whole already.
     */
    public Walk walk(java.util.List<String> names, boolean keep, String what) {
        if (dataGroups == null) return null;
        if (walk != null) throw new IllegalStateException(what + ": " + walk.what + " is under way");
        Map<String, Long> offsets = new HashMap<>();
        for (ParameterStore.Entry e : store.entries()) offsets.put(e.name(), e.offset());
        int[] groups = new int[names.size()];
        for (int i = 0; i < groups.length; i++) {
            Long o = offsets.get(names.get(i));
            if (o == null) throw new IllegalArgumentException(what + ": no parameter '" + names.get(i) + "' in the store");
            groups[i] = store.groupOf(o);
        }
        walk = new Walk(names.toArray(String[]::new), groups, keep, what);
        return walk;
    }

    /** A walk over the parameters a group at a time ({@link #walk}); closing it finishes it. */
    public final class Walk implements AutoCloseable {
        private final String[] names;
        private final int[] groups;
        private final boolean keep;
        private final String what;
        private int pos = -1, current = -1;
        private boolean finished;

        private Walk(String[] names, int[] groups, boolean keep, String what) {
            this.names = names;
            this.groups = groups;
            this.keep = keep;
            this.what = what;
        }

        /**
         * Before parameter {@code name} is read or written: its group whole on every rank. Names are taken in the
         * walk's order; one skipped over still has its group gathered, as the other ranks do.
         */
        public void at(String name) {
            if (finished) throw new IllegalStateException(what + ": the walk is finished");
            if (pos >= 0 && names[pos].equals(name)) return;
            int i = pos + 1;
            while (i < names.length && !names[i].equals(name)) i++;
            if (i == names.length)
                throw new IllegalStateException(what + ": parameter '" + name + "' is not ahead in the walk's order");
            for (int k = pos + 1; k <= i; k++) enter(groups[k]);
            pos = i;
        }

        private void enter(int g) {
            if (g == current) return;
            leave();
            current = g;
            try (Autograd.NoGrad ignored = Autograd.noGrad()) {
                touch(dataGroups[g]);
            }
        }

        private void leave() {
            if (current < 0) return;
            if (keep) keepGroup(current);
            if (!held(current)) dataGroups[current].evict();
            current = -1;
        }

        /** Runs the gathers of every parameter not visited yet, then gives the last group back (kept first). */
        public void finish() {
            if (finished) return;
            try {
                for (int k = pos + 1; k < names.length; k++) enter(groups[k]);
                pos = names.length - 1;
                leave();
            } finally {
                finished = true;
                walk = null;
            }
        }

        @Override
        public void close() {
            finish();
        }
    }

    /** Closes what {@code holder[0]} holds when it closes, if anything still does (a build that no optimizer took). */
    public static Closer closer(ShardedStore[] holder) {
        return () -> {
            if (holder[0] != null) holder[0].close();
            holder[0] = null;
        };
    }

    /** A guard that closes without a checked exception. */
    public interface Closer extends AutoCloseable {
        @Override
        void close();
    }

    /** A guard that keeps the parameters whole while open; closing throws nothing. */
    public interface Whole extends AutoCloseable {
        @Override
        void close();
    }

    /** Brings an evictable tensor back (its refill runs on the first access of its memory). */
    private static void touch(Tensor t) {
        t.slice(0, 0, 1).toFloatArray();
    }

    /** Removes the layer hooks and frees the partitions; the store is unusable after (its buffers are freed). */
    @Override
    public void close() {
        for (Transformer t : layerGroups.keySet()) t.setLayerHook(null);
        scope.close();
    }
}
