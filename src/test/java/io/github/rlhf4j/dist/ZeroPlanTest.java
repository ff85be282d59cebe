package io.github.rlhf4j.dist;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.rlhf4j.model.CausalLM;
import io.github.rlhf4j.model.Gpt2Config;
import io.github.rlhf4j.model.OptConfig;
import io.github.rlhf4j.model.Models;
import io.github.rlhf4j.model.ConfigJson;
import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.runtime.NativeException;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The C partitioner through its Java binding: slices that cover every group exactly once, 128-byte aligned; the
 * model-state bytes per rank of ZeRO's paper (stage 1 optimizer / N, stage 2 + gradients / N, stage 3 + parameters
 * / N) for world sizes 1, 2 and 4 on a real model's layout; the collectives of a step and their volume (2 Psi for
 * stages 0 to 2, 3 Psi for stage 3), checked against the sizes computed here by hand.
 */
class ZeroPlanTest {
    @Test
    void slicesCoverEachGroupOnceAndStartAligned() {
        ZeroPlan plan = new ZeroPlan(new long[] {0, 1000, 3000}, 4, 4);
        // 128 bytes = 32 floats; 4 ranks: groups padded to multiples of 128 elements
        List<ZeroPlan.Partition> r3 = plan.partitions(3);
        assertEquals(new ZeroPlan.Partition(1000, 1024, 256, 0, 768, 232), r3.get(0));
        assertEquals(new ZeroPlan.Partition(2000, 2048, 512, 1024, 1536, 464), r3.get(1));
        for (int g = 0; g < 2; g++) {
            long covered = 0, owned = 0;
            for (int r = 0; r < 4; r++) {
                ZeroPlan.Partition p = plan.partitions(r).get(g);
                assertEquals(covered, p.start(), "rank " + r + " starts where rank " + (r - 1) + " ended");
                assertEquals(0, p.start() * 4 % 128, "128-byte aligned");
                covered += p.partitionNumel();
                owned += p.owned();
            }
            assertEquals(plan.partitions(0).get(g).paddedNumel(), covered);
            assertEquals(plan.partitions(0).get(g).numel(), owned, "every real element owned by exactly one rank");
        }
        // a group smaller than the ranks' slices: the last ranks own only padding
        ZeroPlan small = new ZeroPlan(new long[] {0, 10}, 4, 4);
        assertEquals(10, small.partitions(0).get(0).owned());
        assertEquals(0, small.partitions(1).get(0).owned());
    }

    static ParameterStore tinyGpt(CausalLM[] model) {
        model[0] = CausalLM.of(Gpt2Config.tiny(97, 32, 48, 3, 4));
        return ParameterStore.allocate(model[0], Device.cpu(), DType.F32, 1, true);
    }

    @Test
    void layerGroupsCutTheFlatBufferAtTransformerLayers() {
        CausalLM[] m = new CausalLM[1];
        try (ParameterStore store = tinyGpt(m)) {
            long[] cuts = ZeroPlan.layerGroups(store);
            // the plan of a model that is not allocated (ZeroScale's large models) cuts the same layout
            assertEquals(java.util.Arrays.toString(cuts), java.util.Arrays.toString(ZeroPlan.layerGroups(m[0])));
            // embeddings (wte, wpe), h.0, h.1, h.2, ln_f: 5 groups
            assertEquals(6, cuts.length, java.util.Arrays.toString(cuts));
            assertEquals(0, cuts[0]);
            assertEquals(store.flatSize(), cuts[5]);
            for (ParameterStore.Entry e : store.entries()) {
                String layer = ZeroPlan.layerOf(e.name());
                int group = 0;
                while (!(e.offset() >= cuts[group] && e.offset() < cuts[group + 1])) group++;
                int expected = layer == null ? (e.name().contains("ln_f") ? 4 : 0) : 1 + Integer.parseInt(layer.substring(2));
                assertEquals(expected, group, e.name());
            }
        }
        // OPT declares final_layer_norm before the layers: it stays with the embeddings
        OptConfig opt = (OptConfig) Models.config(ConfigJson.read(Path.of("src/test/resources/fixtures/models/opt_tiny/config.json")));
        CausalLM o = CausalLM.of(opt);
        try (ParameterStore store = ParameterStore.allocate(o, Device.cpu(), DType.F32, 1, false)) {
            long[] cuts = ZeroPlan.layerGroups(store);
            assertEquals(opt.numHiddenLayers() + 1, cuts.length - 1, java.util.Arrays.toString(cuts));
        }
    }

    @Test
    void eachStageKeepsWhatTheZeroPaperSaysPerRank() {
        CausalLM[] m = new CausalLM[1];
        try (ParameterStore store = tinyGpt(m)) {
            long[] cuts = ZeroPlan.layerGroups(store);
            int groups = cuts.length - 1;
            long psi = store.flatSize();
            for (int world : new int[] {1, 2, 4}) {
                ZeroPlan plan = new ZeroPlan(cuts, world, 4);
                long padded = 0;
                for (ZeroPlan.Partition p : plan.partitions(0)) padded += p.paddedNumel();
                assertTrue(padded >= psi && padded - psi < (long) groups * world * 32, "padding stays below one "
                        + "aligned slice per rank and group");
                // fp32 weights and gradients, two fp32 moments: K = 8
                ZeroPlan.Memory s0 = plan.memoryPerRank(0, 4, 4, 8), s1 = plan.memoryPerRank(1, 4, 4, 8);
                ZeroPlan.Memory s2 = plan.memoryPerRank(2, 4, 4, 8), s3 = plan.memoryPerRank(3, 4, 4, 8);
                assertEquals(new ZeroPlan.Memory(4 * padded, 4 * padded, 8 * padded), s0);
                assertEquals(new ZeroPlan.Memory(4 * padded, 4 * padded, 8 * padded / world), s1);
                assertEquals(new ZeroPlan.Memory(4 * padded, 4 * padded / world, 8 * padded / world), s2);
                assertEquals(new ZeroPlan.Memory(4 * padded / world, 4 * padded / world, 8 * padded / world), s3);
                System.out.printf(java.util.Locale.ROOT, "ZeroPlanTest world %d: model states per rank, stages 0-3: "
                        + "%,d / %,d / %,d / %,d bytes%n", world, s0.total(), s1.total(), s2.total(), s3.total());

                // volumes per rank and step: 2 Psi for stages 0-2 (none with one rank), 3 Psi for stage 3
                for (int stage = 0; stage <= 3; stage++) {
                    long expected = world == 1 ? 0 : (stage == 3 ? 3 : 2) * padded * 4;
                    assertEquals(expected, plan.step(stage).bytesPerRank(), "stage " + stage + ", world " + world);
                }
            }
        }
    }

    @Test
    void theCollectivesOfAStepComeInTheOrderTheyRun() {
        ZeroPlan plan = new ZeroPlan(new long[] {0, 100, 300, 400}, 2, 4);
        long g0 = 128, g1 = 256, g2 = 128; // padded to 2 x 32 floats
        assertEquals(List.of(new ZeroPlan.Op(ZeroPlan.Collective.ALL_REDUCE, ZeroPlan.Buffer.GRADIENTS,
                ZeroPlan.Phase.BACKWARD, -1, 0, g0 + g1 + g2)), plan.step(0).ops());
        assertEquals(List.of(
                new ZeroPlan.Op(ZeroPlan.Collective.REDUCE_SCATTER, ZeroPlan.Buffer.GRADIENTS, ZeroPlan.Phase.BACKWARD, -1, 0, 512),
                new ZeroPlan.Op(ZeroPlan.Collective.ALL_GATHER, ZeroPlan.Buffer.PARAMETERS, ZeroPlan.Phase.AFTER_STEP, -1, 0, 512)),
                plan.step(1).ops());
        // stage 2: each group's gradients as soon as its backward is done, last layer first
        assertEquals(List.of(
                new ZeroPlan.Op(ZeroPlan.Collective.REDUCE_SCATTER, ZeroPlan.Buffer.GRADIENTS, ZeroPlan.Phase.BACKWARD, 2, g0 + g1, g2),
                new ZeroPlan.Op(ZeroPlan.Collective.REDUCE_SCATTER, ZeroPlan.Buffer.GRADIENTS, ZeroPlan.Phase.BACKWARD, 1, g0, g1),
                new ZeroPlan.Op(ZeroPlan.Collective.REDUCE_SCATTER, ZeroPlan.Buffer.GRADIENTS, ZeroPlan.Phase.BACKWARD, 0, 0, g0),
                new ZeroPlan.Op(ZeroPlan.Collective.ALL_GATHER, ZeroPlan.Buffer.PARAMETERS, ZeroPlan.Phase.AFTER_STEP, -1, 0, 512)),
                plan.step(2).ops());
        // stage 3: gather each layer before its forward, again before its backward, scatter its gradients after
        List<ZeroPlan.Op> s3 = plan.step(3).ops();
        assertEquals(9, s3.size());
        assertEquals(List.of(0, 1, 2), s3.subList(0, 3).stream().map(ZeroPlan.Op::group).toList());
        assertTrue(s3.subList(0, 3).stream().allMatch(o -> o.phase() == ZeroPlan.Phase.FORWARD
                && o.collective() == ZeroPlan.Collective.ALL_GATHER && o.buffer() == ZeroPlan.Buffer.PARAMETERS));
        assertEquals(List.of(2, 2, 1, 1, 0, 0), s3.subList(3, 9).stream().map(ZeroPlan.Op::group).toList());
        assertEquals(new ZeroPlan.Op(ZeroPlan.Collective.REDUCE_SCATTER, ZeroPlan.Buffer.GRADIENTS,
                ZeroPlan.Phase.BACKWARD, 0, 0, g0), s3.get(8));
    }

    @Test
    void badPlansNameTheArgumentAtFault() {
        NativeException order = assertThrows(NativeException.class, () -> new ZeroPlan(new long[] {0, 10, 10}, 2, 4));
        assertTrue(order.getMessage().contains("boundaries[2] = 10 must be > boundaries[1] = 10"), order.getMessage());
        NativeException rank = assertThrows(NativeException.class, () -> new ZeroPlan(new long[] {0, 10}, 2, 4).partitions(2));
        assertTrue(rank.getMessage().contains("rank = 2 is not in [0, world = 2)"), rank.getMessage());
        NativeException stage = assertThrows(NativeException.class, () -> new ZeroPlan(new long[] {0, 10}, 2, 4).step(4));
        assertTrue(stage.getMessage().contains("stage = 4 must be 0, 1, 2 or 3"), stage.getMessage());
        NativeException elem = assertThrows(NativeException.class, () -> new ZeroPlan(new long[] {0, 10}, 2, 3));
        assertTrue(elem.getMessage().contains("elem_bytes = 3 must be 2, 4 or 8"), elem.getMessage());
    }
}
