package io.github.rlhf4j.nn;

import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.tensor.Autograd;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.function.Predicate;

/**
 * A model's parameters laid out in one contiguous buffer, with a parallel gradient buffer of the same layout: every
 * parameter's value and gradient are views at the same offset. Whole-model work is then one native call on a range
 * instead of a loop over hundreds of tensors: zeroing gradients, the global gradient norm, AdamW (optimizer state
 * uses the same layout), EMA, checkpoint writes, and later ZeRO's partitions and offload.
 *
 * <p>Each parameter starts at a multiple of 64 elements (256 bytes in F32), so every view is aligned for SIMD and
 * for GPU vector loads; the gaps stay zero in values, gradients and optimizer state alike.
 */
public final class ParameterStore implements AutoCloseable {
    /** Alignment of each parameter's first element, in elements. */
    public static final int ALIGN = 64;

    /** One parameter's place in the flat buffers. */
    public record Entry(String name, Parameter parameter, long offset, long numel) {}

    private final Scope scope;
    private final Module model;
    private Tensor data;
    private Tensor grad;
    private Tensor[] dataGroups, gradGroups;
    private String regroupedBy;
    private final List<Entry> entries;
    private final long[] boundaries;
    private final Layout layout;
    private final DType dtype;
    private final long seed;
    private final boolean trainable;
    private boolean unbound; // laid out only (layOut): no buffers until bindGroups

    private ParameterStore(Scope scope, Module model, Tensor data, Tensor grad, List<Entry> entries,
                           long[] boundaries, Layout layout, DType dtype, long seed, boolean trainable) {
        this.scope = scope;
        this.model = model;
        this.data = data;
        this.grad = grad;
        this.entries = entries;
        this.boundaries = boundaries;
        this.layout = layout;
        this.dtype = dtype;
        this.seed = seed;
        this.trainable = trainable;
    }

    /**
     * Lays out every parameter of {@code model} on {@code device} in F32 and initialises each from its {@link Init}
     * with Philox(seed) at counters starting at its offset, so a model's initial weights depend only on its config
     * and the seed.
     */
    public static ParameterStore allocate(Module model, Device device, long seed) {
        return allocate(model, device, DType.F32, seed);
    }

    /** As {@link #allocate(Module, Device, long)} in {@code dtype}: F64 serves gradient checks of whole models. */
    public static ParameterStore allocate(Module model, Device device, DType dtype, long seed) {
        return allocate(model, device, dtype, seed, true);
    }

    /**
     * As {@link #allocate(Module, Device, DType, long)}; with {@code trainable} false, for inference only (a frozen
     * reference or reward model, generation, serving): no gradient buffer, half the memory, every parameter frozen.
     */
    public static ParameterStore allocate(Module model, Device device, DType dtype, long seed, boolean trainable) {
        return allocate(model, device, dtype, seed, trainable, ALIGN);
    }

    /**
     * As {@link #allocate(Module, Device, DType, long, boolean)}, with the flat buffers' length rounded up to a
     * multiple of {@code flatMultiple} elements (zero padding at the end): ZeRO cuts them into equal, aligned slices,
     * one per rank ({@code io.github.rlhf4j.dist.Zero#flatMultiple}).
     */
    public static ParameterStore allocate(Module model, Device device, DType dtype, long seed, boolean trainable,
                                          long flatMultiple) {
        return allocate(model, device, dtype, seed, trainable, new Layout(flatMultiple, false));
    }

    /**
     * How {@link #allocate} lays the flat buffers out: their length is a multiple of {@code flatMultiple} elements,
     * and with {@code groupByLayer} every group ({@link #groupBoundaries}: the parameters before the first
     * transformer layer, each layer, those after the last) starts and ends on that multiple too, so ZeRO stages 2
     * and 3 gather and reduce-scatter one layer in place, each rank owning an equal aligned slice of it.
     */
    public record Layout(long flatMultiple, boolean groupByLayer) {
        public static final Layout DEFAULT = new Layout(ALIGN, false);

        public Layout {
            if (flatMultiple < 1 || flatMultiple % ALIGN != 0)
                throw new IllegalArgumentException("flat multiple " + flatMultiple + " must be a positive multiple of "
                        + ALIGN);
        }
    }

    /** As {@link #allocate(Module, Device, DType, long, boolean)}, laid out as {@code layout} says. */
    public static ParameterStore allocate(Module model, Device device, DType dtype, long seed, boolean trainable,
                                          Layout layout) {
        ParameterStore store = layOut(model, device, dtype, seed, trainable, layout);
        store.unbound = false;
        long offset = store.flatSize();
        Tensor data = store.scope.flatZeros(dtype, offset);
        Tensor grad = trainable ? store.scope.flatZeros(dtype, offset) : null;
        try (Autograd.NoGrad ignored = Autograd.noGrad()) {
            for (Entry e : store.entries) {
                Parameter p = e.parameter();
                Tensor value = view(data, e).name(e.name());
                initialise(value, p.init(), seed, e.offset());
                value.requiresGrad(!p.isFrozen());
                if (grad != null) value.setGrad(view(grad, e));
                p.bind(value);
            }
        }
        store.data = data;
        store.grad = grad;
        return store;
    }

    /**
     * Lays {@code model}'s parameters out as {@link #allocate(Module, Device, DType, long, boolean, Layout)} does,
     * without allocating their buffers or binding them: ZeRO stage 3's partitioned build (DeepSpeed's
     * {@code zero.Init}), where each rank allocates and initialises only its own slices and the parameters become
     * views of per-group buffers ({@link #bindGroups}). The whole model never exists on one device.
     */
    public static ParameterStore layOut(Module model, Device device, DType dtype, long seed, boolean trainable,
                                        Layout layout) {
        long flatMultiple = layout.flatMultiple();
        if (!dtype.isFloatingPoint()) throw new IllegalArgumentException("parameters must be floating point, not " + dtype);
        List<Entry> entries = new ArrayList<>();
        List<Long> cuts = new ArrayList<>();
        cuts.add(0L);
        long offset = 0;
        String group = null;
        for (var e : model.namedParameters().entrySet()) {
            Parameter p = e.getValue();
            if (p.isAllocated())
                throw new IllegalStateException("parameter " + e.getKey() + " already belongs to a ParameterStore");
            String g = groupKey(e.getKey(), group);
            if (group != null && !g.equals(group) && offset > cuts.getLast()) {
                if (layout.groupByLayer()) offset = (offset + flatMultiple - 1) / flatMultiple * flatMultiple;
                cuts.add(offset);
            }
            group = g;
            p.setName(e.getKey());
            entries.add(new Entry(e.getKey(), p, offset, p.numel()));
            offset += (p.numel() + ALIGN - 1) / ALIGN * ALIGN;
        }
        offset = (offset + flatMultiple - 1) / flatMultiple * flatMultiple;
        if (offset > cuts.getLast()) cuts.add(offset);
        if (!trainable) for (Entry e : entries) e.parameter().setFrozen(true);
        ParameterStore store = new ParameterStore(Scope.detached(device), model, null, null,
                Collections.unmodifiableList(entries), cuts.stream().mapToLong(Long::longValue).toArray(), layout,
                dtype, seed, trainable);
        store.unbound = true;
        return store;
    }

    /** Whether it is laid out only ({@link #layOut}), its parameters not bound to any buffer yet. */
    public boolean isUnbound() {
        return unbound;
    }

    /** The parameters' dtype. */
    public DType dtype() {
        return dtype;
    }

    /** The seed of the parameters' initialisation (Philox key; each parameter's counters start at its offset). */
    public long seed() {
        return seed;
    }

    /**
     * Binds a laid-out store's ({@link #layOut}) parameters to per-group buffers: each parameter's value becomes a
     * view of {@code dataGroups[g]} and (trainable stores) its gradient a view of {@code gradGroups[g]}, g its group
     * ({@link #groupBoundaries}). The buffers are the caller's (ZeRO stage 3's evictable groups); {@link #data} and
     * {@link #grad} then refuse, naming {@code why}.
     */
    public void bindGroups(Tensor[] dataGroups, Tensor[] gradGroups, String why) {
        if (!unbound) throw new IllegalStateException("bindGroups: this store's parameters are bound already");
        checkGroups(dataGroups);
        if (trainable != (gradGroups != null))
            throw new IllegalArgumentException(trainable ? "a trainable store needs gradient groups"
                    : "an inference-only store takes no gradient groups");
        if (gradGroups != null) checkGroups(gradGroups);
        try (Autograd.NoGrad ignored = Autograd.noGrad()) {
            for (Entry e : entries) {
                int g = groupOf(e.offset());
                Parameter p = e.parameter();
                Tensor value = view(dataGroups[g], e, boundaries[g]).name(e.name());
                value.requiresGrad(!p.isFrozen());
                if (gradGroups != null) value.setGrad(view(gradGroups[g], e, boundaries[g]));
                p.bind(value);
            }
        }
        this.dataGroups = dataGroups;
        this.gradGroups = gradGroups;
        this.regroupedBy = why;
        this.unbound = false;
    }

    private void checkGroups(Tensor[] ts) {
        int groups = boundaries.length - 1;
        if (ts == null || ts.length != groups)
            throw new IllegalArgumentException((ts == null ? 0 : ts.length) + " group buffers for " + groups + " groups");
        for (int g = 0; g < groups; g++)
            if (ts[g].numel() != boundaries[g + 1] - boundaries[g])
                throw new IllegalArgumentException("group " + g + " has " + (boundaries[g + 1] - boundaries[g])
                        + " elements, its buffer " + ts[g].numel());
    }

    /**
     * The group a parameter belongs to: its transformer layer ({@code h.3} for {@code transformer.h.3.attn.c_attn.weight};
     * the stacks {@code h}, {@code layers}, {@code decoder.layers}), else {@code #pre} before the first layer and
     * {@code #post} after one ({@code previous} is the group of the parameter before it, null for the first).
     */
    public static String groupKey(String name, String previous) {
        String layer = layerOf(name);
        if (layer != null) return layer;
        return previous == null || previous.equals("#pre") ? "#pre" : "#post";
    }

    /** "h.3" for "transformer.h.3.attn.c_attn.weight", null outside the layer stack. */
    public static String layerOf(String name) {
        String[] parts = name.split("\\.");
        for (int i = 0; i + 1 < parts.length; i++)
            if ((parts[i].equals("h") || parts[i].equals("layers")) && !parts[i + 1].isEmpty()
                    && parts[i + 1].chars().allMatch(Character::isDigit))
                return parts[i] + "." + parts[i + 1];
        return null;
    }

    /**
     * Where the groups of the flat buffers start, and their end: groups + 1 increasing offsets from 0 to
     * {@link #flatSize}. With {@link Layout#groupByLayer} each is a multiple of the layout's flat multiple.
     */
    public long[] groupBoundaries() {
        return boundaries.clone();
    }

    public Layout layout() {
        return layout;
    }

    private static Tensor view(Tensor flat, Entry e) {
        return view(flat, e, 0);
    }

    private static Tensor view(Tensor flat, Entry e, long base) {
        if (e.numel() > Integer.MAX_VALUE)
            throw new IllegalArgumentException("parameter " + e.name() + " has " + e.numel() + " elements; one "
                    + "parameter may hold at most 2^31 - 1 (a store may hold more)");
        return flat.flatView(e.offset() - base, (int) e.numel()).reshape(e.parameter().shape());
    }

    /**
     * Fills {@code t} as {@code init} says, its first element from Philox counter {@code offset} under key
     * {@code seed}: a parameter at its flat offset, or any stretch of one at the offset of its first element (ZeRO
     * stage 3 initialises each rank's slice alone, with the values the whole parameter would have there).
     */
    public static void initialise(Tensor t, Init init, long seed, long offset) {
        switch (init.kind()) {
            case ZEROS -> t.fill(0);
            case ONES -> t.fill(1);
            // Counters start at the parameter's flat offset: one random stream over the whole model, each
            // parameter its own stretch of it.
            case NORMAL -> t.fillRandom(true, init.a(), init.b(), seed, offset);
            case UNIFORM -> t.fillRandom(false, init.a(), init.b(), seed, offset);
        }
    }

    /**
     * All parameter values, flat (gaps included): 1-d, or past 2^31 elements rows of 64 ({@link Tensor#flatShape});
     * cut it with {@link Tensor#flatRange}.
     */
    public Tensor data() {
        if (unbound) throw new IllegalStateException("this store is laid out only: its parameters are not allocated");
        if (data == null)
            throw new IllegalStateException("this store's parameters are partitioned (" + regroupedBy + "): no rank "
                    + "holds them whole; each layer's are gathered when it runs (groupData)");
        return data;
    }

    /** All gradients, flat, in the same layout. */
    public Tensor grad() {
        if (unbound) throw new IllegalStateException("this store is laid out only: its parameters are not allocated");
        if (gradGroups != null)
            throw new IllegalStateException("this store's gradients are partitioned (" + regroupedBy + "): each "
                    + "layer's are reduce-scattered when its backward is done (groupGrad)");
        if (grad == null) throw new IllegalStateException("this ParameterStore is for inference only: no gradients");
        return grad;
    }

    /** Whether it has gradients (false for an inference-only store). */
    public boolean isTrainable() {
        return trainable;
    }

    /** The module laid out in this store. */
    public Module model() {
        return model;
    }

    /**
     * Gives every group its own buffers, ZeRO's: the values ({@code dataGroups}, stage 3) and the gradients
     * ({@code gradGroups}, stages 2 and 3) of group g ({@link #groupBoundaries}) become views of
     * {@code dataGroups[g]} and {@code gradGroups[g]} (null arrays: keep the flat buffer), and the flat buffers they
     * replace are freed. Contents are not copied: the new buffers are the caller's, typically evictable tensors
     * whose refill all-gathers the values from the ranks' partitions or zeroes the gradients. {@link #data} and
     * {@link #grad} then refuse, naming {@code why}.
     */
    public void regroup(Tensor[] dataGroups, Tensor[] gradGroups, String why) {
        if (unbound) throw new IllegalStateException("regroup: this store is laid out only (bindGroups)");
        for (Tensor[] ts : new Tensor[][] {dataGroups, gradGroups}) if (ts != null) checkGroups(ts);
        if (gradGroups != null && grad == null)
            throw new IllegalStateException("this ParameterStore is for inference only: no gradients to partition");
        if (this.dataGroups != null || this.gradGroups != null)
            throw new IllegalStateException("this store is partitioned already (" + regroupedBy + ")");
        try (Autograd.NoGrad ignored = Autograd.noGrad()) {
            for (Entry e : entries) {
                int g = groupOf(e.offset());
                Parameter p = e.parameter();
                Tensor oldValue = p.value();
                Tensor value = dataGroups != null ? view(dataGroups[g], e, boundaries[g]).name(e.name()) : oldValue;
                if (dataGroups != null) value.requiresGrad(oldValue.requiresGrad());
                value.setGrad(gradGroups != null ? view(gradGroups[g], e, boundaries[g])
                        : grad != null ? view(grad, e, 0) : null);
                p.bind(value);
            }
        }
        if (dataGroups != null) {
            data.release();
            data = null;
        }
        if (gradGroups != null) {
            grad.release();
            grad = null;
        }
        this.dataGroups = dataGroups;
        this.gradGroups = gradGroups;
        this.regroupedBy = why;
    }

    /** The group holding flat offset {@code offset}. */
    public int groupOf(long offset) {
        int i = java.util.Arrays.binarySearch(boundaries, offset);
        return i >= 0 ? Math.min(i, boundaries.length - 2) : -i - 2;
    }

    /** Group g's values: a slice of the flat buffer, or its own buffer once {@link #regroup regrouped}. */
    public Tensor groupData(int g) {
        return dataGroups != null ? dataGroups[g] : data().flatRange(boundaries[g], boundaries[g + 1]);
    }

    /** Group g's gradients, likewise. */
    public Tensor groupGrad(int g) {
        return gradGroups != null ? gradGroups[g] : grad().flatRange(boundaries[g], boundaries[g + 1]);
    }

    public List<Entry> entries() {
        return entries;
    }

    public Device device() {
        return scope.device();
    }

    /** Number of parameters (gaps excluded). */
    public long parameterCount() {
        long n = 0;
        for (Entry e : entries) n += e.numel();
        return n;
    }

    /** Length of the flat buffers (gaps included). */
    public long flatSize() {
        return boundaries[boundaries.length - 1];
    }

    /** Sets every gradient to zero: one memset over the flat buffer. */
    public void zeroGrad() {
        try (Autograd.NoGrad ignored = Autograd.noGrad()) {
            if (gradGroups == null) {
                grad().fill(0);
                return;
            }
            for (Tensor g : gradGroups)
                if (g.isEvictable()) g.evict(); // its refill zeroes it on the next use
                else g.fill(0);
        }
    }

    /**
     * A contiguous range of the flat buffers whose parameters share a weight-decay setting and a learning rate: the
     * optimizer's ({@code ownLr} false) or a group's own (DS-Chat's LoRA group, {@code lora_lr}).
     */
    public record Range(long start, long end, boolean decay, boolean ownLr) {
        public Range(long start, long end, boolean decay) {
            this(start, end, decay, false);
        }
    }

    /**
     * The flat buffers cut into maximal runs of parameters that do ({@code decay}) or do not take weight decay, for
     * optimizers that treat the groups differently; frozen parameters are left out.
     */
    public List<Range> ranges(Predicate<String> noDecay) {
        return ranges(noDecay, name -> false);
    }

    /**
     * As {@link #ranges(Predicate)}, with the parameters {@code ownLr} picks cut apart as well ({@link Range#ownLr}):
     * DS-Chat's three groups come from {@code ranges(dsChatNoDecay, n -> Lora.isLoraParameter(n) &&
     * !dsChatNoDecay(n))}.
     */
    public List<Range> ranges(Predicate<String> noDecay, Predicate<String> ownLr) {
        List<Range> out = new ArrayList<>();
        long start = -1, end = -1;
        boolean decay = false, own = false;
        for (Entry e : entries) {
            if (e.parameter().isFrozen()) continue;
            boolean d = !noDecay.test(e.name()), o = ownLr.test(e.name());
            long s = e.offset(), t = e.offset() + (e.numel() + ALIGN - 1) / ALIGN * ALIGN;
            if (start >= 0 && d == decay && o == own && s == end) {
                end = t;
            } else {
                if (start >= 0) out.add(new Range(start, end, decay, own));
                start = s;
                end = t;
                decay = d;
                own = o;
            }
        }
        if (start >= 0) out.add(new Range(start, end, decay, own));
        return out;
    }

    /**
     * DeepSpeed-Chat's no-decay rule (get_optimizer_grouped_parameters): a parameter whose lower-cased name contains
     * "bias", "layer_norm.weight", "layernorm.weight", "norm.weight" or "ln_f.weight" takes no weight decay. Being
     * a rule on names, it leaves some norm weights in the decay group, as DeepSpeed-Chat does: GPT-2's ln_1.weight
     * and ln_2.weight, for one.
     */
    public static boolean dsChatNoDecay(String name) {
        String lower = name.toLowerCase(java.util.Locale.ROOT);
        for (String s : new String[] {"bias", "layer_norm.weight", "layernorm.weight", "norm.weight", "ln_f.weight"})
            if (lower.contains(s)) return true;
        return false;
    }

    /** Frees the buffers; the model's parameters become unusable. */
    @Override
    public void close() {
        if (!unbound) for (Entry e : entries) e.parameter().bind(null);
        scope.close();
    }
}
