package io.github.rlhf4j.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.rlhf4j.model.CausalLM;
import io.github.rlhf4j.model.Gpt2Config;
import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.optim.LrSchedule;
import io.github.rlhf4j.rlhf.Optimized;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.tensor.Functional;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * ZeRO-Offload's optimizer side ({@code Optimized(..., offload = true)}) with the model on the CUDA backend, run
 * through the emulation layer: the AdamW moments leave the device for host memory, and the weights trained for five
 * steps match those of the optimizer stepping on the device (the CUDA AdamW kernel against the CPU backend's AdamW:
 * the same arithmetic in float32, up to rounding).
 */
class OptimizerOffloadTest {
    static final int VOCAB = 29, T = 8, B = 2;

    static Tensor loss(CausalLM m, int step) {
        Random r = new Random(40 + step);
        int[] ids = new int[B * T], targets = new int[B * T];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = r.nextInt(VOCAB);
            targets[i] = (ids[i] * 3 + 1) % VOCAB;
        }
        return Functional.crossEntropy(m.forward(Tensor.ofInts(ids, B, T)), Tensor.ofInts(targets, B, T), -100);
    }

    @Test
    void theOffloadedOptimizerKeepsItsStateOnTheHostAndTrainsAlike() {
        Device gpu = Emulated.get().device();
        Optimized.Settings settings = new Optimized.Settings(3e-3, 0.1, LrSchedule.constant(0), 1.0);
        CausalLM onDevice = CausalLM.of(Gpt2Config.tiny(VOCAB, T, 16, 2, 2)), offloaded = CausalLM.of(onDevice.config());
        try (ParameterStore a = ParameterStore.allocate(onDevice, gpu, 3);
             ParameterStore b = ParameterStore.allocate(offloaded, gpu, 3)) {
            long before = gpu.memory().live();
            try (Optimized optA = new Optimized(a, settings)) {
                long deviceMoments = gpu.memory().live() - before;
                long hostBefore = Device.cpu().memory().live();
                try (Optimized optB = new Optimized(b, settings, null, 0, true)) {
                    long deviceOffloaded = gpu.memory().live() - before - deviceMoments;
                    long host = Device.cpu().memory().live() - hostBefore;
                    long moments = 0;
                    for (var g : optB.adamw().groups()) moments += 2L * 4 * g.params().numel();
                    System.out.printf("OptimizerOffloadTest: optimizer state on the device %,d bytes; offloaded: %,d "
                            + "on the device, %,d on the host (moments %,d + fp32 weights and gradients)%n",
                            deviceMoments, deviceOffloaded, host, moments);
                    assertTrue(deviceMoments >= moments, "on the device the moments take " + deviceMoments);
                    assertEquals(0, deviceOffloaded, "offloaded, the device holds no optimizer state");
                    assertTrue(host >= 2 * moments, "the host holds the moments and fp32 copies: " + host);
                    assertTrue(optB.isOffloaded() && !optA.isOffloaded());
                    // the same, stepped in pieces of 1000 elements: the copies and the CPU's AdamW in a pipeline
                    CausalLM piecewise = CausalLM.of(onDevice.config());
                    try (ParameterStore c = ParameterStore.allocate(piecewise, gpu, 3);
                         Optimized optC = new Optimized(c, settings, null, 0, true)) {
                        optC.setOffloadPiece(1000);
                        for (int step = 0; step < 5; step++)
                            try (Scope s = Scope.open(gpu)) {
                                loss(onDevice, step).backward();
                                optA.step("offload test");
                                loss(offloaded, step).backward();
                                optB.step("offload test");
                                loss(piecewise, step).backward();
                                optC.step("offload test");
                            }
                        long elements = 0;
                        for (var g : optC.adamw().groups()) elements += g.params().numel();
                        assertEquals(optB.adamw().groups().size(), optB.offloadPieces(),
                                "at the default size, a piece a group");
                        assertTrue(optC.offloadPieces() >= elements / 1000, optC.offloadPieces() + " pieces of "
                                + elements + " elements");
                        assertArrayEquals(b.data().toFloatArray(), c.data().toFloatArray(),
                                "stepped in pieces, the same weights bit for bit");
                    }
                    float[] wa = a.data().toFloatArray(), wb = b.data().toFloatArray();
                    double max = 0, moved = 0;
                    float[] init;
                    try (ParameterStore fresh = ParameterStore.allocate(CausalLM.of(onDevice.config()), Device.cpu(),
                            DType.F32, 3, false)) {
                        init = fresh.data().toFloatArray();
                    }
                    for (int i = 0; i < wa.length; i++) {
                        max = Math.max(max, Math.abs(wa[i] - wb[i]));
                        moved = Math.max(moved, Math.abs(wa[i] - init[i]));
                    }
                    System.out.printf("OptimizerOffloadTest: after 5 steps max |w_offloaded - w_device| %.2e (the "
                            + "weights moved up to %.2e)%n", max, moved);
                    assertTrue(moved > 1e-2, "training moved the weights " + moved);
                    assertTrue(max < 1e-5, "offloaded and on-device training differ by " + max);
                }
            }
        }
        CausalLM cpuModel = CausalLM.of(Gpt2Config.tiny(VOCAB, T, 16, 2, 2));
        try (ParameterStore cpu = ParameterStore.allocate(cpuModel, Device.cpu(), 3)) {
            var e = assertThrows(IllegalArgumentException.class, () -> new Optimized(cpu, settings, null, 0, true));
            assertTrue(e.getMessage().contains("on the CPU already"), e.getMessage());
        }
    }
}
