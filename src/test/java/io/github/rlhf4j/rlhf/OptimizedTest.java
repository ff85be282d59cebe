package io.github.rlhf4j.rlhf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.rlhf4j.model.CausalLM;
import io.github.rlhf4j.model.Gpt2Config;
import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.optim.LrSchedule;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.tensor.Autograd;
import org.junit.jupiter.api.Test;

/**
 * {@link Optimized}'s guard: a NaN or Inf gradient stops the step, naming the step and the parameter, and leaves the
 * weights as they were. (Its clipping, groups and AdamW against PyTorch: {@link PpoStepTest}.)
 */
class OptimizedTest {
    @Test
    void aNonFiniteGradientStopsTheStepNamingStepAndParameter() {
        CausalLM model = CausalLM.of(Gpt2Config.tiny(16, 8, 8, 1, 2));
        try (ParameterStore store = ParameterStore.allocate(model, Device.cpu(), DType.F32, 1);
             Optimized opt = new Optimized(store, new Optimized.Settings(1e-2, 0.1, LrSchedule.constant(0), 1.0))) {
            String bad = "transformer.h.0.mlp.c_fc.bias";
            try (Autograd.NoGrad ignored = Autograd.noGrad()) {
                store.grad().fill(0.5);
                model.namedParameters().get(bad).value().grad().fill(Double.NaN);
            }
            double[] before = store.data().toDoubleArray();
            ArithmeticException e = assertThrows(ArithmeticException.class, () -> opt.step("sft"));
            assertTrue(e.getMessage().startsWith("sft: gradient norm is NaN at step 1"), e.getMessage());
            assertTrue(e.getMessage().contains(bad), e.getMessage());
            assertArrayEquals(before, store.data().toDoubleArray(), "the weights are untouched");
            assertEquals(0, opt.steps());
        }
    }

    @Test
    void skippingANonFiniteStepCountsItAndLeavesWeightsMomentsAndScheduleAlone() {
        CausalLM model = CausalLM.of(Gpt2Config.tiny(16, 8, 8, 1, 2));
        try (ParameterStore store = ParameterStore.allocate(model, Device.cpu(), DType.F32, 1);
             Optimized opt = new Optimized(store, new Optimized.Settings(1e-2, 0.1, LrSchedule.linear(0, 10), 1.0))) {
            opt.skipNonFiniteSteps(true);
            try (Autograd.NoGrad ignored = Autograd.noGrad()) {
                store.grad().fill(0.5);
            }
            assertTrue(opt.step("sft"));
            double lr = opt.lr();
            double[] weights = store.data().toDoubleArray();
            double[] m = opt.adamw().moments(0)[0].toDoubleArray(), v = opt.adamw().moments(0)[1].toDoubleArray();
            try (Autograd.NoGrad ignored = Autograd.noGrad()) {
                store.grad().fill(0.5);
                model.namedParameters().get("transformer.h.0.attn.c_attn.weight").value().grad().fill(
                        Double.POSITIVE_INFINITY);
            }
            assertFalse(opt.step("sft"));
            assertFalse(opt.acceptLoss("sft", Double.NaN));
            assertTrue(opt.acceptLoss("sft", 1.5));
            assertEquals(2, opt.skippedSteps());
            assertTrue(opt.lastSkipReason().startsWith("sft: loss is NaN at step 2"), opt.lastSkipReason());
            assertEquals(1, opt.steps(), "AdamW's count, and with it the schedule, did not move");
            assertEquals(lr, opt.lr());
            assertArrayEquals(weights, store.data().toDoubleArray());
            assertArrayEquals(m, opt.adamw().moments(0)[0].toDoubleArray());
            assertArrayEquals(v, opt.adamw().moments(0)[1].toDoubleArray());
            assertEquals(0.0, Math.sqrt(io.github.rlhf4j.tensor.InPlace.sumOfSquares(store.grad())),
                    "the bad gradients are gone");
            try (Autograd.NoGrad ignored = Autograd.noGrad()) {
                store.grad().fill(0.5);
            }
            assertTrue(opt.step("sft"), "the next good step is taken");
            assertEquals(2, opt.steps());
        }
    }
}
