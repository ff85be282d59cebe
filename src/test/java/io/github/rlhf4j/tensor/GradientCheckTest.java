package io.github.rlhf4j.tensor;

import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.testing.Fixtures;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/**
 * Every op's gradient against central finite differences in float64 (h = 1e-6) on the inputs of fixtures/ops.json:
 * backward must agree with (L(x + h) - L(x - h)) / 2h to 1e-6 relative on every input element.
 */
class GradientCheckTest {
    @TestFactory
    Stream<DynamicTest> gradientsMatchCentralDifferences() {
        return TorchParityTest.cases().map(c -> DynamicTest.dynamicTest(c.get("name").asText(), () -> check(c)));
    }

    private static void check(JsonNode c) {
        OpCases.Op op = OpCases.OPS.get(c.get("op").asText());
        try (Scope s = Scope.open()) {
            List<Tensor> all = new ArrayList<>(), differentiable = new ArrayList<>();
            for (JsonNode in : c.get("inputs")) {
                Tensor t = in.isNull() ? null : Fixtures.tensor(in, DType.F64);
                if (t != null && in.path("requiresGrad").asBoolean(false)) differentiable.add(t.requiresGrad(true));
                all.add(t);
            }
            GradCheck.Result r = GradCheck.check(x -> op.apply(all, c.get("attrs")), differentiable, 1e-6, 1e-8, 1e-6,
                    200, 5);
            assertTrue(r.passed(), c.get("name").asText() + ": " + r.worst());
            assertTrue(r.checked() > 0, "nothing checked");
        }
    }

    /** Dropout's mask is a fixed function of (seed, offset), so its gradient can be checked like any other. */
    @Test
    void dropoutGradientMatchesCentralDifferences() {
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.randn(DType.F64, 3, 0, 1, 5, 7).requiresGrad(true);
            GradCheck.Result r = GradCheck.check(in -> Functional.dropout(in.getFirst(), 0.3, 42, 1000), List.of(x),
                    1e-6, 1e-8, 1e-6, 100, 1);
            assertTrue(r.passed(), r.worst());
        }
    }

    /** A tied embedding (used twice), a residual (x used twice) and a view chain, through one backward pass. */
    @Test
    void sharedInputsAndViewsAccumulate() {
        try (Scope s = Scope.open()) {
            Tensor w = Tensor.randn(DType.F64, 1, 0, 1, 6, 4).requiresGrad(true);
            Tensor ids = Tensor.ofInts(new int[] {1, 5, 1, 0}, 2, 2);
            GradCheck.Result r = GradCheck.check(in -> {
                Tensor h = Functional.embedding(ids, in.getFirst());        // [2, 2, 4]
                Tensor x = h.add(Functional.geluTanh(h));                  // residual
                Tensor logits = Functional.linear(x, in.getFirst(), null); // tied head
                return logits.transpose(0, 1).reshape(4, 6).slice(1, 1, 5).mul(logits.reshape(4, 6).slice(1, 0, 4));
            }, List.of(w), 1e-6, 1e-8, 1e-6, 100, 2);
            assertTrue(r.passed(), r.worst());
        }
    }
}
