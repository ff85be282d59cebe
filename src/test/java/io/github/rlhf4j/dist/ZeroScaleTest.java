package io.github.rlhf4j.dist;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The scale-on-paper table's figures against the arithmetic of ZeRO's paper done here by hand: model states of
 * 16 bytes per parameter split by stage (2 + 2 + 12, each partitioned from its stage on), 2 x 2 bytes per parameter
 * sent by a ring step at stages 0-2 and 3 x 2 at stage 3, times (N - 1) / N; padding may add at most one 128-byte
 * slice per rank and layer.
 */
class ZeroScaleTest {
    @Test
    void opt13bOnEightGpusMatchesThePapersArithmetic() {
        List<ZeroScale.Row> rows = ZeroScale.rows("opt-13b", 8, 8, 8192);
        long psi = rows.get(0).parameters();
        assertTrue(psi > 12_800_000_000L && psi < 13_000_000_000L, "OPT-13B has 12.85B parameters: " + psi);
        double[] perParam = {2 + 2 + 12, 2 + 2 + 12 / 8.0, 2 + 2 / 8.0 + 12 / 8.0, 16 / 8.0};
        long slack = 41L * 8 * 128 * 16; // layers + 1 groups, one padded slice per rank, 16 bytes per element
        for (ZeroScale.Row r : rows) {
            double expected = perParam[r.stage()] * psi;
            assertTrue(Math.abs(r.memory().total() - expected) < slack + 64L * 16 * 400,
                    "stage " + r.stage() + ": " + r.memory().total() + " vs " + expected);
            double sent = (r.stage() == 3 ? 3 : 2) * 2.0 * psi * 7 / 8;
            assertTrue(Math.abs(r.bytesSentPerGpu() - sent) / sent < 1e-3, "stage " + r.stage() + " sent "
                    + r.bytesSentPerGpu() + " vs " + sent);
            assertEquals(r.bytesSentPerGpu() / 900e9, r.commSeconds(), 1e-12, "NVLink inside one node");
            assertEquals(6.0 * psi * 8192 / 798e12, r.computeSeconds(), 1e-12);
        }
        assertTrue(!rows.get(0).fits() && rows.get(1).fits(), "stage 0 needs 192 GiB, stage 1 66 GiB");
        List<ZeroScale.Row> big = ZeroScale.rows("opt-66b", 16, 8, 8192);
        assertEquals(big.get(0).bytesSentPerGpu() / 50e9, big.get(0).commSeconds(), 1e-12, "InfiniBand across nodes");
        assertTrue(big.get(3).fits() && !big.get(2).fits(), "OPT-66B on 16 GPUs needs stage 3");
    }

    /**
     * Step 3 of deploy/'s set-ups in fp32: OPT-13B's rank-128 LoRA on the 6 linear layers of its 40 decoder layers
     * is 40 x 128 x (4 x (5120 + 5120) + 2 x (5120 + 20480)) parameters, the only ones with gradients and moments;
     * each figure is the stated bytes per parameter over the GPUs that share it; the offloaded reference and reward
     * model are on the host. (DS-Chat's LoRA freezes the weights it adapts, so the 1.3B actor trains its adapters,
     * embeddings, norms and biases.)
     */
    @Test
    void stepThreeOfTheDeploySetUpsIsTheirFp32Arithmetic() {
        List<ZeroScale.Step3Row> rows = ZeroScale.deploySetups().stream().map(ZeroScale::step3).toList();
        ZeroScale.Step3Row opt13 = rows.get(1);
        long lora = 40L * 128 * (4 * (5120 + 5120) + 2 * (5120 + 20480));
        assertEquals(lora, opt13.actorTrainable());
        long pa = opt13.actorParameters(), pc = opt13.criticParameters();
        assertTrue(pa - lora > 12_800_000_000L && pa - lora < 13_000_000_000L, "OPT-13B: " + pa);
        assertEquals(4 * (pa / 4) + 4 * (lora / 4) + 8 * (lora / 4), opt13.actorBytes());
        assertEquals(16 * (pc / 4), opt13.criticBytes(), "the critic trains whole at stage 3: 16 bytes, over 4");
        assertEquals(0, opt13.frozenBytes());
        assertEquals(4 * (pa + pc), opt13.hostBytes(), "--offload-reference-model: both frozen models on the host");
        assertTrue(opt13.fits() && !opt13.hybridEngineFits(), "13B's states fit an A100-40G; the whole actor does not");
        assertEquals(40, opt13.layers());
        // the KV cache of 4 sequences of 512 tokens: keys and values, 40 layers of 5120 fp32 numbers a token
        assertEquals(2L * 4 * 40 * 4 * 512 * 5120, opt13.kvCacheBytes());
        var actorConfig = io.github.rlhf4j.bench.OptPresets.config("opt-13b", true);
        var criticConfig = io.github.rlhf4j.bench.OptPresets.config("opt-350m", true);
        assertEquals(Math.max(ZeroScale.trainingActivationBytes(actorConfig, 4, 512, true, true),
                ZeroScale.trainingActivationBytes(criticConfig, 4, 512, false, false)), opt13.activationBytes(),
                "the larger of the checkpointed actor's and the whole critic's");
        // checkpointed: each of the 40 layers' input (4 bytes a number), one layer's saves and its input and input
        // gradient while it is recomputed, what lies outside the layers, and the LM head
        assertEquals((4L * 40 + ZeroScale.LAYER_SAVED_PER_TOKEN_UNIT + 8 + ZeroScale.OUTSIDE_LAYERS_PER_TOKEN_UNIT)
                * 2048 * 5120 + ZeroScale.HEAD_PER_TOKEN_VOCAB * 2048 * 50272,
                ZeroScale.trainingActivationBytes(actorConfig, 4, 512, true, true));
        assertEquals(opt13.total() + Math.max(opt13.activationBytes(), opt13.kvCacheBytes()), opt13.peak());
        assertTrue(opt13.peak() < (30L << 30), "13B's step 3 peaks under 30 GiB of the 40: " + opt13.peak());
        long room = (40L << 30) - (5L << 30) - opt13.total(); // an eighth of the GPU kept spare (the KV cache fits it)
        assertEquals(room / opt13.layerBytes(), opt13.hybridEngineLayers(), "the layers the hybrid engine keeps");
        assertTrue(opt13.hybridEngineLayers() > 0 && opt13.hybridEngineLayers() < 40);
        ZeroScale.Step3Row opt66 = rows.get(2);
        assertEquals(4 * (opt66.actorParameters() + opt66.criticParameters()) / 16, opt66.frozenBytes());
        assertTrue(opt66.fits() && !opt66.hybridEngineFits(), "66B on 16 GPUs: layer by layer");
        ZeroScale.Step3Row one = rows.get(0);
        // DS-Chat's LoRA freezes the weights it adapts even without --only-optimize-lora: the rest and the adapters train
        assertTrue(one.actorTrainable() < one.actorParameters() / 2, one.actorTrainable() + " trainable");
        assertEquals(4 * one.actorParameters() + 12 * one.actorTrainable(), one.actorBytes(), "one GPU: 4 bytes a "
                + "parameter, 12 more a trainable one");
        assertEquals(0, one.layerBytes() + one.wholeActorMore(), "nothing is partitioned on one GPU");
    }
}
