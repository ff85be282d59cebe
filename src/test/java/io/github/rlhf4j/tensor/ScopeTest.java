package io.github.rlhf4j.tensor;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.rlhf4j.model.CausalLM;
import io.github.rlhf4j.model.Gpt2Config;
import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.optim.AdamW;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

/** Memory ownership: scopes free what they own, the pool reuses it, and misuse fails with a message. */
class ScopeTest {
    @Test
    void thousandTrainingStepsLeaveNativeMemoryWhereItStarted() {
        Device dev = Device.cpu();
        dev.pool().trim();
        long start = dev.memory().inUse();
        long afterFirst = -1;
        CausalLM model = CausalLM.of(Gpt2Config.tiny(17, 8, 16, 2, 2));
        try (ParameterStore store = ParameterStore.allocate(model, dev, 3);
             AdamW opt = AdamW.forStore(store, AdamW.Config.dsChat(1e-3, 0.01))) {
            int[] ids = {1, 5, 9, 3, 2, 16, 0, 7, 4, 4, 8, 12};
            int[] targets = {5, 9, 3, 2, 16, 0, -100, 4, 4, 8, 12, 1};
            for (int step = 0; step < 1000; step++) {
                try (Scope s = Scope.open(dev)) {
                    store.zeroGrad();
                    Tensor logits = model.forward(Tensor.ofInts(ids, 2, 6), null, null, null);
                    Functional.crossEntropy(logits, Tensor.ofInts(targets, 2, 6), -100).backward();
                    opt.step();
                }
                if (step == 0) afterFirst = dev.memory().inUse();
                else assertEquals(afterFirst, dev.memory().inUse(), "step " + step + " allocated new device memory");
            }
        }
        dev.pool().trim();
        assertEquals(start, dev.memory().inUse(), "native memory did not return to its starting level");
    }

    @Test
    void closingAScopeFreesItsTensorsAndLaterUseFails() {
        Tensor t;
        try (Scope s = Scope.open()) {
            t = Tensor.zeros(DType.F32, 4, 4);
            assertTrue(t.isAlive());
        }
        assertFalse(t.isAlive());
        IllegalStateException e = assertThrows(IllegalStateException.class, t::toFloatArray);
        assertTrue(e.getMessage().contains("freed") && e.getMessage().contains("[4, 4] f32"), e.getMessage());
        try (Scope s = Scope.open()) {
            Tensor dead = t;
            IllegalStateException e2 = assertThrows(IllegalStateException.class, () -> dead.add(dead));
            assertTrue(e2.getMessage().startsWith("add: use of a freed tensor: [4, 4] f32"), e2.getMessage());
            IllegalStateException e3 = assertThrows(IllegalStateException.class,
                    () -> Functional.layerNorm(dead, null, null, 1e-5));
            assertTrue(e3.getMessage().startsWith("layerNorm: use of a freed tensor"), e3.getMessage());
        }
    }

    @Test
    void aClosedScopeTakesNoNewTensors() {
        Scope s = Scope.detached(Device.cpu());
        s.close();
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> s.zeros(DType.F32, 2));
        assertTrue(e.getMessage().contains("closed"), e.getMessage());
    }

    @Test
    void opsWithoutAnOpenScopeExplainWhatToDo() {
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> Tensor.zeros(DType.F32, 2));
        assertTrue(e.getMessage().contains("Scope.open()"), e.getMessage());
    }

    @Test
    void scopesCloseInnermostFirst() {
        Scope outer = Scope.open();
        Scope inner = Scope.open();
        assertThrows(IllegalStateException.class, outer::close);
        inner.close();
        outer.close();
    }

    @Test
    void aThreadConfinedScopeRefusesOtherThreads() throws InterruptedException {
        try (Scope s = Scope.open()) {
            AtomicReference<Throwable> error = new AtomicReference<>();
            Thread th = new Thread(() -> {
                try {
                    s.zeros(DType.F32, 2);
                } catch (Throwable e) {
                    error.set(e);
                }
            });
            th.start();
            th.join();
            assertTrue(error.get() instanceof IllegalStateException, String.valueOf(error.get()));
            assertTrue(error.get().getMessage().contains("detached"), error.get().getMessage());
        }
    }

    @Test
    void adoptMovesAResultOutOfAStep() {
        try (Scope keep = Scope.open()) {
            Tensor kept;
            try (Scope step = Scope.open()) {
                kept = keep.adopt(Tensor.of(new float[] {1, 2}).mul(2.0));
            }
            assertTrue(kept.isAlive());
            assertEquals(4.0f, kept.toFloatArray()[1]);
        }
    }

    @Test
    void releaseFreesEarlyAndIsIdempotent() {
        try (Scope s = Scope.open()) {
            Tensor t = Tensor.zeros(DType.F32, 1024);
            long live = Device.cpu().pool().liveBytes();
            t.release();
            t.release();
            assertTrue(Device.cpu().pool().liveBytes() < live);
            assertFalse(t.isAlive());
        }
    }

    @Test
    void viewsShareStorage() {
        try (Scope s = Scope.open()) {
            Tensor t = Tensor.of(new float[] {0, 1, 2, 3, 4, 5}, 2, 3);
            Tensor v = t.transpose(0, 1);
            assertFalse(v.isContiguous());
            try (Autograd.NoGrad ignored = Autograd.noGrad()) {
                t.fill(7);
            }
            assertEquals(7f, v.contiguous().toFloatArray()[5]);
            assertSame(t.reshape(2, 3), t);
        }
    }
}
