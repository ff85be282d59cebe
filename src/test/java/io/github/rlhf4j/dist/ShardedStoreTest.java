package io.github.rlhf4j.dist;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.rlhf4j.model.CausalLM;
import io.github.rlhf4j.model.Gpt2Config;
import io.github.rlhf4j.model.Transformer;
import io.github.rlhf4j.nn.Module;
import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.tensor.Autograd;
import io.github.rlhf4j.tensor.Functional;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The single-process pieces of ZeRO stages 2 and 3: the layer-grouped layout, evictable tensors, the autograd
 * region a layer's backward ends in, and {@link ShardedStore} on one rank (where a reduce-scatter and an all-gather
 * are copies), whose partition gradient must be the plain backward's gradient bit for bit. The multi-rank runs are
 * {@link ZeroTrainingTest}'s.
 */
class ShardedStoreTest {
    static final int VOCAB = 41, T = 8, B = 2;

    static CausalLM tiny() {
        CausalLM m = CausalLM.of(Gpt2Config.tiny(VOCAB, T, 16, 3, 2));
        m.train(false);
        return m;
    }

    static Tensor loss(CausalLM m) {
        Random r = new Random(3);
        int[] ids = new int[B * T], targets = new int[B * T];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = r.nextInt(VOCAB);
            targets[i] = r.nextInt(VOCAB);
        }
        return Functional.crossEntropy(m.forward(Tensor.ofInts(ids, B, T)), Tensor.ofInts(targets, B, T), -100);
    }

    /** Copies {@code from}'s weights into {@code to} by name (their layouts differ). */
    static void copyWeights(Module from, Module to) {
        for (var e : from.namedParameters().entrySet())
            to.namedParameters().get(e.getKey()).value().copyFromTensor(e.getValue().value(), false);
    }

    @Test
    void theLayerGroupedLayoutPutsEveryLayerOnTheMultiple() {
        CausalLM plain = tiny(), grouped = tiny();
        try (ParameterStore a = ParameterStore.allocate(plain, Device.cpu(), 1);
             ParameterStore b = ParameterStore.allocate(grouped, Device.cpu(), DType.F32, 1, true, Zero.layout(4, 3))) {
            long[] cuts = b.groupBoundaries();
            assertEquals(3 + 2 + 1, cuts.length, "embeddings, 3 layers, final norm: " + java.util.Arrays.toString(cuts));
            for (long c : cuts) assertEquals(0, c % Zero.flatMultiple(4), "boundary " + c);
            assertEquals(a.groupBoundaries().length, cuts.length, "the same groups, unpadded");
            for (int i = 0; i < a.entries().size(); i++) {
                ParameterStore.Entry x = a.entries().get(i), y = b.entries().get(i);
                assertEquals(x.name(), y.name());
                assertEquals(b.groupOf(y.offset()), a.groupOf(x.offset()), x.name() + " in the same group");
            }
            assertTrue(b.flatSize() > a.flatSize());
            assertEquals(ParameterStore.Layout.DEFAULT, Zero.layout(1, 3), "one rank partitions nothing");
            assertEquals(new ParameterStore.Layout(64 * 4, false), Zero.layout(4, 1));
        }
    }

    @Test
    void anEvictedTensorRefillsOnFirstUseAndKeepsItsViewsAndVersion() {
        int[] refills = {0};
        try (Scope s = Scope.open()) {
            Tensor t = s.evictable(DType.F32, 8, w -> {
                refills[0]++;
                w.copyFrom(new float[] {1, 2, 3, 4, 5, 6, 7, 8});
            });
            Tensor view = t.slice(0, 2, 5);
            assertFalse(t.isResident(), "it starts evicted");
            assertEquals(0, refills[0], "making a view does not fill it");
            assertArrayEquals(new float[] {3, 4, 5}, view.toFloatArray());
            assertTrue(t.isResident());
            assertEquals(1, refills[0]);
            long live = Device.cpu().memory().live();
            t.evict();
            assertTrue(Device.cpu().memory().live() < live, "its memory went back to the pool");
            assertArrayEquals(new float[] {3, 4, 5}, view.toFloatArray(), "the old view reads the refilled memory");
            assertEquals(2, refills[0]);
            Tensor plain = s.zeros(DType.F32, 4);
            assertThrows(IllegalStateException.class, plain::evict, "only evictable tensors can be evicted");
        }
    }

    @Test
    void thePrefetchIsOffOnTheCpuUnlessAskedForAndABadSettingIsNamed() {
        String before = System.getProperty(ShardedStore.PREFETCH_PROPERTY);
        try {
            System.clearProperty(ShardedStore.PREFETCH_PROPERTY);
            assertFalse(ShardedStore.prefetches(Device.cpu()), "auto: off on the CPU");
            System.setProperty(ShardedStore.PREFETCH_PROPERTY, "true");
            assertTrue(ShardedStore.prefetches(Device.cpu()));
            System.setProperty(ShardedStore.PREFETCH_PROPERTY, "sometimes");
            var e = assertThrows(IllegalArgumentException.class, () -> ShardedStore.prefetches(Device.cpu()));
            assertTrue(e.getMessage().contains("-Drlhf4j.zero.prefetch=sometimes: expected auto, true or false"),
                    e.getMessage());
        } finally {
            if (before == null) System.clearProperty(ShardedStore.PREFETCH_PROPERTY);
            else System.setProperty(ShardedStore.PREFETCH_PROPERTY, before);
        }
    }

    @Test
    void aFillStartedAheadIsWaitedForAtFirstUseOrBeforeTheMemoryGoesBack() {
        List<String> log = new ArrayList<>();
        try (Scope s = Scope.open()) {
            Tensor t = s.evictable(DType.F32, 8, w -> {
                log.add("refill");
                w.copyFrom(new float[] {1, 2, 3, 4, 5, 6, 7, 8});
            }, w -> {
                log.add("start");
                w.copyFrom(new float[] {8, 7, 6, 5, 4, 3, 2, 1}); // as a transport writes: into the block, untracked
                return () -> log.add("wait");
            });
            Tensor view = t.slice(0, 2, 5);
            long live = Device.cpu().memory().live();
            assertTrue(t.fillAhead(), "an evicted tensor starts its fill");
            assertTrue(t.isResident(), "its memory is held while the fill runs");
            assertTrue(Device.cpu().memory().live() > live, "a block was taken");
            assertFalse(t.fillAhead(), "a resident one does not");
            assertEquals(List.of("start"), log, "nothing waited yet");
            assertArrayEquals(new float[] {6, 5, 4}, view.toFloatArray(), "the first use reads what the fill wrote");
            assertEquals(List.of("start", "wait"), log, "the first use waited, and did not refill");
            view.toFloatArray();
            assertEquals(2, log.size(), "waited once");

            t.evict();
            assertTrue(t.fillAhead());
            t.evict(); // never used: the fill is waited for before its block goes back
            assertEquals(List.of("start", "wait", "start", "wait"), log);
            assertFalse(t.isResident());
            assertArrayEquals(new float[] {3, 4, 5}, view.toFloatArray(), "evicted after all: the refill runs");
            assertEquals("refill", log.getLast());

            t.evict();
            assertTrue(t.fillAhead());
            t.release(); // freed with a fill under way: waited for first
            assertEquals("wait", log.getLast());

            Tensor plain = s.evictable(DType.F32, 4, w -> w.fill(0));
            assertFalse(plain.fillAhead(), "no fill-ahead: it fills at first use, as before");
            assertFalse(plain.isResident());
        }
    }

    @Test
    void aRegionGivesTheGradientsOfRunningInlineAndEndsEachLayerAfterItsGradients() {
        CausalLM a = tiny(), b = tiny();
        try (ParameterStore sa = ParameterStore.allocate(a, Device.cpu(), 7);
             ParameterStore sb = ParameterStore.allocate(b, Device.cpu(), 7)) {
            List<Integer> ended = new ArrayList<>();
            List<float[]> gradAtEnd = new ArrayList<>();
            Transformer t = (Transformer) b.namedModules().values().stream().filter(m -> m instanceof Transformer)
                    .findFirst().orElseThrow();
            t.setLayerHook((index, x, cached, run) -> Autograd.region("l" + index, run, x, new Autograd.RegionHooks() {
                @Override
                public void afterForward() {}

                @Override
                public void afterBackward() {
                    ended.add(index);
                    gradAtEnd.add(sb.groupGrad(index + 1).toFloatArray());
                }
            }));
            try (Scope s = Scope.open()) {
                loss(a).backward();
                loss(b).backward();
            }
            assertEquals(List.of(2, 1, 0), ended, "the last layer's backward ends first");
            assertArrayEquals(sa.grad().toFloatArray(), sb.grad().toFloatArray(), "bit for bit");
            for (int k = 0; k < 3; k++)
                assertArrayEquals(sb.groupGrad(ended.get(k) + 1).toFloatArray(), gradAtEnd.get(k),
                        "layer " + ended.get(k) + "'s gradient was final when its region ended");
        }
    }

    @Test
    void stagesTwoAndThreeOnOneRankSumTheGradientIntoThePartitionAndFreeWhatTheyGathered() {
        for (int stage : new int[] {2, 3})
            for (boolean checkpointing : new boolean[] {false, true}) {
                CausalLM plain = tiny(), sharded = tiny();
                try (ParameterStore sp = ParameterStore.allocate(plain, Device.cpu(), 9);
                     ParameterStore ss = ParameterStore.allocate(sharded, Device.cpu(), DType.F32, 0, true,
                             new ParameterStore.Layout(64, true))) {
                    copyWeights(plain, sharded);
                    for (Module m : List.of(plain, sharded))
                        for (Module x : m.namedModules().values())
                            if (x instanceof Transformer t) t.setGradientCheckpointing(checkpointing);
                    long[] cuts = ss.groupBoundaries();
                    try (ShardedStore z = new ShardedStore(ss, new SingleProcess(), stage)) {
                        assertThrows(IllegalStateException.class, ss::grad, "no whole gradient buffer");
                        if (stage == 3) assertThrows(IllegalStateException.class, ss::data, "no whole parameters");
                        try (Scope s = Scope.open()) {
                            Tensor l = loss(sharded);
                            if (stage == 3)
                                for (int g = 1; g + 1 < cuts.length - 1; g++)
                                    assertFalse(ss.groupData(g).isResident(), "layer group " + g + " freed after its forward");
                            l.backward();
                            loss(plain).backward();
                        }
                        for (int g = 1; g + 1 < cuts.length - 1; g++)
                            assertFalse(ss.groupGrad(g).isResident(), "layer " + g + "'s whole gradient given back");
                        z.finishBackward();
                        float[] want = sp.grad().toFloatArray(), got = z.partitionGrad().toFloatArray();
                        String what = "stage " + stage + (checkpointing ? " with checkpointing" : "");
                        for (ParameterStore.Entry e : ss.entries()) {
                            ParameterStore.Entry p = sp.entries().stream().filter(x -> x.name().equals(e.name()))
                                    .findFirst().orElseThrow();
                            for (int i = 0; i < e.numel(); i++)
                                assertEquals(want[(int) p.offset() + i], got[(int) z.partitionIndex(e.offset() + i)],
                                        what + ": " + e.name() + "[" + i + "]");
                        }
                        z.afterStep();
                        if (stage == 3) {
                            for (int g = 0; g < cuts.length - 1; g++)
                                assertFalse(ss.groupData(g).isResident(), "group " + g + " freed at rest");
                            try (var whole = z.gathered()) {
                                for (int g = 0; g < cuts.length - 1; g++) assertTrue(ss.groupData(g).isResident());
                                for (var e : plain.namedParameters().entrySet())
                                    assertArrayEquals(e.getValue().value().toFloatArray(),
                                            sharded.namedParameters().get(e.getKey()).value().toFloatArray(), e.getKey());
                            }
                            assertFalse(ss.groupData(1).isResident(), "given back when the guard closes");
                        }
                    }
                }
            }
    }

    /**
     * A frozen store at stage 3 (DeepSpeed-Chat's reference and reward models when the actor and critic are at stage
     * 3): its forward gives bitwise the whole model's logits, each layer is given back after its forward, and
     * {@link ShardedStore#release} gives back the embeddings and heads; stage 2 is refused (no gradients).
     */
    @Test
    void aFrozenStoreAtStageThreeRunsItsForwardALayerAtATime() {
        CausalLM plain = tiny(), sharded = tiny();
        try (ParameterStore sp = ParameterStore.allocate(plain, Device.cpu(), DType.F32, 9, false);
             ParameterStore ss = ParameterStore.allocate(sharded, Device.cpu(), DType.F32, 0, false,
                     new ParameterStore.Layout(64, true))) {
            copyWeights(plain, sharded);
            var refused = assertThrows(IllegalArgumentException.class, () -> new ShardedStore(ss, new SingleProcess(), 2));
            assertTrue(refused.getMessage().contains("a frozen store has none"), refused.getMessage());
            long[] cuts = ss.groupBoundaries();
            try (ShardedStore z = new ShardedStore(ss, new SingleProcess(), 3)) {
                assertThrows(IllegalStateException.class, ss::data, "no whole parameters");
                assertThrows(IllegalStateException.class, z::partitionGrad, "no gradients");
                try (Scope s = Scope.open(); Autograd.NoGrad ignored = Autograd.noGrad()) {
                    int[] ids = new int[B * T];
                    for (int i = 0; i < ids.length; i++) ids[i] = (i * 7) % VOCAB;
                    float[] got = sharded.forward(Tensor.ofInts(ids, B, T)).toFloatArray();
                    for (int g = 1; g + 1 < cuts.length - 1; g++)
                        assertFalse(ss.groupData(g).isResident(), "layer group " + g + " given back after its forward");
                    assertTrue(ss.groupData(0).isResident(), "the embeddings stay gathered until released");
                    assertArrayEquals(plain.forward(Tensor.ofInts(ids, B, T)).toFloatArray(), got);
                }
                z.release();
                for (int g = 0; g < cuts.length - 1; g++) assertFalse(ss.groupData(g).isResident(), "group " + g);
            }
        }
    }

    /**
     * A walk ({@link ShardedStore#walk}, what saves and resumes at stage 3 go through) holds exactly one group whole
     * at a time, in the order of the names it is given; reading another group's parameter throws (on many ranks it
     * would be a collective the others never enter) and the walk still finishes; a walk that keeps writes what was
     * written into each group back into the partition, and nothing stays gathered after.
     */
    @Test
    void aWalkHoldsOneGroupAtATimeAndKeepsWhatWasWritten() {
        CausalLM plain = tiny(), sharded = tiny();
        try (ParameterStore sp = ParameterStore.allocate(plain, Device.cpu(), DType.F32, 9, false);
             ParameterStore ss = ParameterStore.allocate(sharded, Device.cpu(), DType.F32, 0, false,
                     new ParameterStore.Layout(64, true));
             ShardedStore z = new ShardedStore(ss, new SingleProcess(), 3);
             Autograd.NoGrad ignored = Autograd.noGrad()) {
            List<String> names = new ArrayList<>(sharded.namedParameters().keySet());
            int groups = ss.groupBoundaries().length - 1;
            var params = sharded.namedParameters();
            try (ShardedStore.Walk w = z.walk(names, true, "the test's load")) {
                assertThrows(IllegalStateException.class, () -> z.walk(names, false, "another"), "one walk at a time");
                for (String n : names) {
                    w.at(n);
                    int g = ss.groupOf(entry(ss, n).offset());
                    for (int h = 0; h < groups; h++)
                        assertEquals(h == g, ss.groupData(h).isResident(), "at " + n + ": group " + h);
                    params.get(n).value().copyFromTensor(plain.namedParameters().get(n).value(), false);
                }
            }
            for (int h = 0; h < groups; h++) assertFalse(ss.groupData(h).isResident(), "group " + h + " given back");
            try (var whole = z.gathered()) { // the walk kept every group's values in the partition
                for (String n : names)
                    assertArrayEquals(plain.namedParameters().get(n).value().toFloatArray(),
                            params.get(n).value().toFloatArray(), n);
            }
            String last = names.getLast(), first = names.getFirst();
            try (ShardedStore.Walk w = z.walk(names, false, "the test's save")) {
                w.at(first);
                var outside = assertThrows(IllegalStateException.class, () -> params.get(last).value().toFloatArray());
                assertTrue(outside.getMessage().contains("outside the order of the test's save"), outside.getMessage());
                assertThrows(IllegalStateException.class, () -> w.at("no.such.parameter"));
            }
            for (int h = 0; h < groups; h++) assertFalse(ss.groupData(h).isResident(), "group " + h + " given back");
            assertThrows(IllegalArgumentException.class, () -> z.walk(List.of("no.such"), false, "x"));
        }
    }

    /**
     * {@link ShardedStore#gatheredWithin}: the groups that fit the budget, in order, stay whole through a forward
     * (their layers are not given back after it), the others are given back as usual, the logits are the whole
     * model's, and closing the guard gives the kept groups back.
     */
    @Test
    void gatheringWithinABudgetKeepsTheGroupsThatFit() {
        CausalLM plain = tiny(), sharded = tiny();
        try (ParameterStore sp = ParameterStore.allocate(plain, Device.cpu(), DType.F32, 9, false);
             ParameterStore ss = ParameterStore.allocate(sharded, Device.cpu(), DType.F32, 0, false,
                     new ParameterStore.Layout(64, true))) {
            copyWeights(plain, sharded); // before partitioning: the partitions start from these
            long[] cuts = ss.groupBoundaries();
            long budget = 4 * (cuts[2] - cuts[0]); // the embeddings and the first layer
            int[] ids = new int[B * T];
            for (int i = 0; i < ids.length; i++) ids[i] = (i * 5) % VOCAB;
            try (ShardedStore z = new ShardedStore(ss, new SingleProcess(), 3);
                 Scope s = Scope.open(); Autograd.NoGrad ignored = Autograd.noGrad()) {
                long[] kept = new long[2];
                try (var guard = z.gatheredWithin(budget, kept)) {
                    assertEquals(2, kept[0], "the groups that fit, in order");
                    assertEquals(budget, kept[1]);
                    float[] got = sharded.forward(Tensor.ofInts(ids, B, T)).toFloatArray();
                    assertTrue(ss.groupData(1).isResident(), "a kept layer stays gathered after its forward");
                    assertFalse(ss.groupData(2).isResident(), "a layer not kept is given back");
                    assertArrayEquals(plain.forward(Tensor.ofInts(ids, B, T)).toFloatArray(), got);
                }
                z.release();
                for (int g = 0; g + 1 < cuts.length; g++) assertFalse(ss.groupData(g).isResident(), "group " + g);
            }
        }
    }

    /**
     * An op on an evicted tensor passes its shapes and strides through the thread's scratch, then asks for the
     * tensor's address, whose refill runs ops of its own (a ZeRO gather, here a copy of another shape): the op must
     * still run with its own. It used to run with the refill's, and crashed the JVM on a stage-3 model's weights.
     */
    @Test
    void anOpOnAnEvictedTensorKeepsItsShapesWhileTheRefillRunsOps() {
        try (Scope s = Scope.open(); Autograd.NoGrad ignored = Autograd.noGrad()) {
            float[] fill = new float[24], values = new float[24];
            for (int i = 0; i < 24; i++) {
                fill[i] = -i;
                values[i] = i * 0.5f;
            }
            Tensor filler = Tensor.of(fill, 2, 3, 4);
            Tensor t = s.evictable(DType.F32, 24, w -> w.reshape(2, 3, 4).copyFromTensor(filler, false));
            Tensor target = t.reshape(4, 6).transpose(0, 1); // [6, 4], strided: its own shape and strides
            Tensor src = Tensor.of(values, 6, 4);
            assertFalse(t.isResident());
            target.copyFromTensor(src, false);
            assertArrayEquals(values, target.toFloatArray(), "the copy ran with its own shapes, after the refill");
        }
    }

    static ParameterStore.Entry entry(ParameterStore store, String name) {
        for (ParameterStore.Entry e : store.entries()) if (e.name().equals(name)) return e;
        throw new AssertionError("no " + name);
    }
}
