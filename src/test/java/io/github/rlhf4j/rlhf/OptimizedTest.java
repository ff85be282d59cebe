package io.github.rlhf4j.rlhf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
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
}
