package io.github.rlhf4j.dist;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import io.github.rlhf4j.nn.Module;
import io.github.rlhf4j.nn.Parameter;
import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.runtime.Abi;
import io.github.rlhf4j.runtime.Backend;
import io.github.rlhf4j.runtime.NativeException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * ZeRO's plan for one model on {@code world} ranks, from the C partitioner (native/include/rlhf4j_zero.h, bound one
 * to one): which slice of each group of the flat buffers a rank owns, the collectives of a training step at a
 * stage, the bytes a step moves per rank and the model-state bytes a rank keeps. Groups are cut at layer boundaries
 * ({@link #layerGroups}), so stage 3 gathers one layer with one all-gather.
 */
public final class ZeroPlan {
    /** One group of the flat buffers as one rank sees it; offsets in elements (see rlhf4j_zero_partition). */
    public record Partition(long numel, long paddedNumel, long partitionNumel, long paddedOffset, long start,
                            long owned) {}

    public enum Collective { ALL_REDUCE, REDUCE_SCATTER, ALL_GATHER }

    public enum Buffer { PARAMETERS, GRADIENTS }

    public enum Phase { FORWARD, BACKWARD, AFTER_STEP }

    /** One collective of a step over padded elements [offset, offset + count); group -1 for the whole buffer. */
    public record Op(Collective collective, Buffer buffer, Phase phase, int group, long offset, long count) {}

    /** The collectives of a step in order, and the bytes each rank moves (ZeRO's paper's count). */
    public record Step(List<Op> ops, long bytesPerRank) {}

    /** Model-state bytes one rank keeps. */
    public record Memory(long parameterBytes, long gradientBytes, long optimizerBytes) {
        public long total() {
            return parameterBytes + gradientBytes + optimizerBytes;
        }
    }

    private static final class Native {
        static final MethodHandle PARTITION, PLAN, MEMORY;
        static final Abi ABI = Backend.cpu().abi();

        static {
            PARTITION = ABI.companion("rlhf4j_zero_partition_groups", FunctionDescriptor.of(JAVA_INT, ADDRESS,
                    JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS));
            PLAN = ABI.companion("rlhf4j_zero_plan_step", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT,
                    JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, ADDRESS));
            MEMORY = ABI.companion("rlhf4j_zero_memory_per_rank", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS,
                    JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS));
        }

        static void check(int status, String fn) {
            if (status != 0) throw new NativeException("cpu", fn, status, ABI.lastError());
        }
    }

    private static final int PARTITION_LONGS = 6, OP_BYTES = 4 * 4 + 2 * 8;

    private final long[] boundaries;
    private final int world, elemBytes;

    /**
     * @param boundaries groups + 1 increasing offsets into the flat buffer, from 0 to its length
     * @param elemBytes the element size of the buffers the collectives move (4 for F32)
     */
    public ZeroPlan(long[] boundaries, int world, int elemBytes) {
        this.boundaries = boundaries.clone();
        this.world = world;
        this.elemBytes = elemBytes;
        partitions(0); // validates, naming the argument at fault
    }

    /**
     * The store's flat buffer cut at its transformer layers: everything before the first layer (embeddings), each
     * layer ({@code <prefix>.<i>.} in the parameter names, where prefix is {@code h}, {@code layers} or
     * {@code decoder.layers}), everything after the last (final norm, heads).
     */
    public static long[] layerGroups(ParameterStore store) {
        List<String> names = new ArrayList<>();
        long[] offsets = new long[store.entries().size()];
        for (ParameterStore.Entry e : store.entries()) {
            offsets[names.size()] = e.offset();
            names.add(e.name());
        }
        return layerGroups(names, offsets, store.flatSize());
    }

    /**
     * The same cut for a model laid out as {@link ParameterStore#allocate} would lay it out, without allocating it:
     * what {@link ZeroScale} plans for models too large for this machine.
     */
    public static long[] layerGroups(Module model) {
        List<String> names = new ArrayList<>(model.namedParameters().keySet());
        long[] offsets = new long[names.size()];
        long offset = 0;
        int i = 0;
        for (Parameter p : model.namedParameters().values()) {
            offsets[i++] = offset;
            offset += (p.numel() + ParameterStore.ALIGN - 1) / ParameterStore.ALIGN * ParameterStore.ALIGN;
        }
        return layerGroups(names, offsets, offset);
    }

    /** Cuts [0, end) where the parameter {@code names[i]} at {@code offsets[i]} starts another group. */
    private static long[] layerGroups(List<String> names, long[] offsets, long end) {
        List<Long> cuts = new ArrayList<>();
        cuts.add(0L);
        String current = null;
        for (int i = 0; i < names.size(); i++) {
            String key = ParameterStore.groupKey(names.get(i), current);
            if (current != null && !key.equals(current) && offsets[i] > cuts.get(cuts.size() - 1)) cuts.add(offsets[i]);
            current = key;
        }
        if (end > cuts.get(cuts.size() - 1)) cuts.add(end);
        return cuts.stream().mapToLong(Long::longValue).toArray();
    }

    /** "h.3" for "transformer.h.3.attn.c_attn.weight", null outside the layer stack. */
    static String layerOf(String name) {
        return ParameterStore.layerOf(name);
    }

    public int groups() {
        return boundaries.length - 1;
    }

    public int world() {
        return world;
    }

    /** Rank {@code rank}'s slice of every group. */
    public List<Partition> partitions(int rank) {
        int g = groups();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment b = a.allocateFrom(JAVA_LONG, boundaries);
            MemorySegment out = a.allocate(JAVA_LONG, (long) Math.max(g, 1) * PARTITION_LONGS);
            Native.check((int) Native.PARTITION.invokeExact(b, g, elemBytes, world, rank, out),
                    "rlhf4j_zero_partition_groups");
            List<Partition> list = new ArrayList<>(g);
            for (int i = 0; i < g; i++) {
                long[] v = out.asSlice((long) i * PARTITION_LONGS * 8, PARTITION_LONGS * 8).toArray(JAVA_LONG);
                list.add(new Partition(v[0], v[1], v[2], v[3], v[4], v[5]));
            }
            return Collections.unmodifiableList(list);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    /** The collectives of one training step at {@code stage} (0 to 3). */
    public Step step(int stage) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment b = a.allocateFrom(JAVA_LONG, boundaries);
            MemorySegment count = a.allocate(JAVA_INT), bytes = a.allocate(JAVA_LONG);
            Native.check((int) Native.PLAN.invokeExact(stage, b, groups(), elemBytes, world, MemorySegment.NULL, 0,
                    count, bytes), "rlhf4j_zero_plan_step");
            int n = count.get(JAVA_INT, 0);
            MemorySegment ops = a.allocate((long) Math.max(n, 1) * OP_BYTES, 8);
            Native.check((int) Native.PLAN.invokeExact(stage, b, groups(), elemBytes, world, ops, n, count, bytes),
                    "rlhf4j_zero_plan_step");
            List<Op> list = new ArrayList<>(n);
            for (int i = 0; i < n; i++) {
                long base = (long) i * OP_BYTES;
                list.add(new Op(Collective.values()[ops.get(JAVA_INT, base)], Buffer.values()[ops.get(JAVA_INT, base + 4)],
                        Phase.values()[ops.get(JAVA_INT, base + 8)], ops.get(JAVA_INT, base + 12),
                        ops.get(JAVA_LONG, base + 16), ops.get(JAVA_LONG, base + 24)));
            }
            return new Step(Collections.unmodifiableList(list), bytes.get(JAVA_LONG, 0));
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    /**
     * What one rank keeps at {@code stage}: parameters and gradients of the given element sizes, and
     * {@code optimizerBytesPerParameter} of optimizer state (8: two fp32 AdamW moments; 12 with fp32 master weights).
     */
    public Memory memoryPerRank(int stage, int parameterElemBytes, int gradientElemBytes, int optimizerBytesPerParameter) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment b = a.allocateFrom(JAVA_LONG, boundaries);
            MemorySegment out = a.allocate(JAVA_LONG, 3);
            Native.check((int) Native.MEMORY.invokeExact(stage, b, groups(), parameterElemBytes, gradientElemBytes,
                    optimizerBytesPerParameter, world, out), "rlhf4j_zero_memory_per_rank");
            return new Memory(out.getAtIndex(JAVA_LONG, 0), out.getAtIndex(JAVA_LONG, 1), out.getAtIndex(JAVA_LONG, 2));
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }
}
