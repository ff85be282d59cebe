package io.github.rlhf4j.tensor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.rlhf4j.runtime.DType;
import org.junit.jupiter.api.Test;

/** The tape engine's semantics, as PyTorch users expect them. */
class AutogradTest {
    @Test
    void leafGradientsAccumulateAcrossBackwardPasses() {
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.of(new double[] {1, 2, 3}).requiresGrad(true);
            x.mul(x).sum().backward();
            x.mul(3.0).sum().backward();
            assertArrayEquals(new double[] {5, 7, 9}, x.grad().toDoubleArray(), 1e-12); // 2x + 3
        }
    }

    @Test
    void aTensorUsedTwiceGetsBothContributions() {
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.of(new double[] {1, -2}).requiresGrad(true);
            Tensor y = x.exp();
            y.add(y).add(y.mul(y)).sum().backward(); // d/dx (2 e^x + e^2x) = 2 e^x + 2 e^2x
            double[] g = x.grad().toDoubleArray();
            assertEquals(2 * Math.exp(1) + 2 * Math.exp(2), g[0], 1e-12);
            assertEquals(2 * Math.exp(-2) + 2 * Math.exp(-4), g[1], 1e-12);
        }
    }

    @Test
    void secondBackwardThroughAFreedGraphFailsClearly() {
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.of(new double[] {1, 2}).requiresGrad(true);
            Tensor loss = Functional.layerNorm(x.reshape(1, 2), null, null, 1e-5).square().sum();
            loss.backward();
            IllegalStateException e = assertThrows(IllegalStateException.class, loss::backward);
            assertTrue(e.getMessage().contains("already freed"), e.getMessage());
            assertTrue(e.getMessage().contains("retainGraph"), e.getMessage());
        }
    }

    @Test
    void retainGraphAllowsAnotherBackward() {
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.of(new double[] {0.5, 2}).requiresGrad(true);
            Tensor loss = x.square().sum();
            loss.backward(Tensor.scalar(DType.F64, 1.0), true);
            loss.backward(Tensor.scalar(DType.F64, 1.0), false);
            assertArrayEquals(new double[] {2, 8}, x.grad().toDoubleArray(), 1e-12);
        }
    }

    @Test
    void noGradRecordsNothing() {
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.of(new double[] {1, 2}).requiresGrad(true);
            Tensor y;
            try (Autograd.NoGrad ignored = Autograd.noGrad()) {
                y = x.exp();
            }
            assertFalse(y.requiresGrad());
            assertNull(y.gradFnName());
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> y.sum().backward());
            assertTrue(e.getMessage().contains("does not require grad"), e.getMessage());
        }
    }

    @Test
    void detachCutsTheGraph() {
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.of(new double[] {3}).requiresGrad(true);
            Tensor y = x.mul(2.0);
            y.mul(y.detach()).sum().backward(); // d/dx (2x * const 2x) = 2 * 2x = 12
            assertEquals(12, x.grad().item(), 1e-12);
        }
    }

    @Test
    void inPlaceChangeOfASavedTensorIsRefused() {
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.of(new double[] {1, 2}).requiresGrad(true);
            Tensor y = x.exp();
            Tensor loss = y.mul(y).sum();
            y.fill(0); // y is saved by mul for backward
            IllegalStateException e = assertThrows(IllegalStateException.class, loss::backward);
            assertTrue(e.getMessage().contains("modified in place"), e.getMessage());
        }
    }

    @Test
    void nanLossIsRefusedNamingTheOp() {
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.of(new double[] {-1, 2}).requiresGrad(true);
            Tensor loss = x.log().sum();
            ArithmeticException e = assertThrows(ArithmeticException.class, loss::backward);
            assertTrue(e.getMessage().contains("NaN") && e.getMessage().contains("sum([2] f64)"), e.getMessage());
            Tensor inf = x.square().mul(1e308).mul(1e308).sum();
            ArithmeticException e2 = assertThrows(ArithmeticException.class, inf::backward);
            assertTrue(e2.getMessage().contains("Infinity"), e2.getMessage());
        }
    }

    @Test
    void nonScalarBackwardNeedsAGradient() {
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.of(new double[] {1, 2}).requiresGrad(true);
            Tensor y = x.mul(3.0);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, y::backward);
            assertTrue(e.getMessage().contains("not a scalar"), e.getMessage());
            y.backward(Tensor.of(new double[] {1, 10}), false);
            assertArrayEquals(new double[] {3, 30}, x.grad().toDoubleArray(), 1e-12);
        }
    }

    @Test
    void integerTensorsCannotRequireGrad() {
        try (Scope s = Scope.open()) {
            Tensor ids = Tensor.ofInts(new int[] {1, 2});
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ids.requiresGrad(true));
            assertTrue(e.getMessage().contains("integer"), e.getMessage());
        }
    }

    @Test
    void inPlaceWriteToALeafThatRequiresGradIsRefused() {
        try (Scope s = Scope.open()) {
            Tensor w = Tensor.of(new double[] {1, 2}).requiresGrad(true);
            assertThrows(IllegalStateException.class, () -> w.fill(0));
            try (Autograd.NoGrad ignored = Autograd.noGrad()) {
                w.fill(0); // an optimizer's update
            }
            assertArrayEquals(new double[] {0, 0}, w.toDoubleArray());
        }
    }

    @Test
    void gradientsFlowThroughDtypeConversions() {
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.of(new double[] {0.25, -1.5}).requiresGrad(true);
            x.to(DType.F32).mul(4.0).to(DType.F64).sum().backward();
            assertArrayEquals(new double[] {4, 4}, x.grad().toDoubleArray(), 0);
        }
    }

    /**
     * When only some inputs need gradients, the backend is passed NULL for the others (a frozen layer, LoRA) and
     * must still produce the rest exactly as when every gradient is wanted.
     */
    @Test
    void partialGradientsEqualTheFullOnes() {
        try (Scope s = Scope.open()) {
            Tensor q0 = Tensor.randn(DType.F64, 1, 0, 1, 2, 5, 4, 3), k0 = Tensor.randn(DType.F64, 2, 0, 1, 2, 5, 2, 3),
                    v0 = Tensor.randn(DType.F64, 3, 0, 1, 2, 5, 2, 3), x0 = Tensor.randn(DType.F64, 4, 0, 1, 3, 6),
                    w0 = Tensor.randn(DType.F64, 5, 1, 0.2, 6), b0 = Tensor.randn(DType.F64, 6, 0, 0.2, 6);
            double[][] full = grads(q0, k0, v0, x0, w0, b0, true);
            double[][] partial = grads(q0, k0, v0, x0, w0, b0, false);
            for (int i = 0; i < full.length; i++)
                if (partial[i] != null) assertArrayEquals(full[i], partial[i], 1e-14, "gradient " + i);
        }
    }

    /** Gradients of k, v (attention) and w, b (layer norm), with q and x requiring grad or not. */
    private static double[][] grads(Tensor q0, Tensor k0, Tensor v0, Tensor x0, Tensor w0, Tensor b0, boolean all) {
        Tensor q = q0.detach().requiresGrad(all), k = k0.detach().requiresGrad(true), v = v0.detach().requiresGrad(true);
        Tensor x = x0.detach().requiresGrad(all), w = w0.detach().requiresGrad(true), b = b0.detach().requiresGrad(true);
        Functional.attention(q, k, v, null, 0.5, true, 0).square().sum().backward();
        Functional.layerNorm(x, w, b, 1e-5).square().sum().backward();
        Functional.rmsNorm(x, w, 1e-5).sum().backward();
        return new double[][] {k.grad().toDoubleArray(), v.grad().toDoubleArray(), w.grad().toDoubleArray(),
                b.grad().toDoubleArray(), all ? q.grad().toDoubleArray() : null};
    }
}
