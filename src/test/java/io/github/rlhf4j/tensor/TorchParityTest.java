package io.github.rlhf4j.tensor;

import static io.github.rlhf4j.testing.Assertions.assertClose;
import static io.github.rlhf4j.testing.Assertions.maxAbs;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.testing.Fixtures;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/**
 * Forward values and gradients of every op against PyTorch on the fixed inputs of fixtures/ops.json: in F64 to
 * within rounding (1e-12 relative), in F32 to within float32 accumulation error.
 */
class TorchParityTest {
    static final JsonNode FIXTURE = Fixtures.load("ops.json");

    @TestFactory
    Stream<DynamicTest> f64MatchesTorch() {
        return cases().map(c -> DynamicTest.dynamicTest(c.get("name").asText(), () -> check(c, DType.F64)));
    }

    @TestFactory
    Stream<DynamicTest> f32MatchesTorch() {
        return cases().map(c -> DynamicTest.dynamicTest(c.get("name").asText(), () -> check(c, DType.F32)));
    }

    static Stream<JsonNode> cases() {
        List<JsonNode> list = new ArrayList<>();
        FIXTURE.get("cases").forEach(list::add);
        return list.stream();
    }

    private static void check(JsonNode c, DType dtype) {
        String name = c.get("name").asText() + " (" + dtype + ")";
        OpCases.Op op = OpCases.OPS.get(c.get("op").asText());
        assertNotNull(op, "no OpCases entry for " + c.get("op"));
        double atol = dtype == DType.F64 ? 1e-12 : 2e-5, rtol = dtype == DType.F64 ? 1e-10 : 1e-4;
        try (Scope s = Scope.open()) {
            List<Tensor> inputs = new ArrayList<>();
            for (JsonNode in : c.get("inputs")) {
                if (in.isNull()) {
                    inputs.add(null);
                    continue;
                }
                Tensor t = Fixtures.tensor(in, dtype);
                inputs.add(in.path("requiresGrad").asBoolean(false) ? t.requiresGrad(true) : t);
            }
            Tensor out = op.apply(inputs, c.get("attrs"));
            double[] expected = Fixtures.doubles(c.get("output"));
            assertClose(expected, out.toDoubleArray(), atol * (1 + maxAbs(expected)), rtol, name + " output");
            assertEquals(java.util.Arrays.toString(Fixtures.shape(c.get("output"))), java.util.Arrays.toString(out.shape()),
                    name + " output shape");
            Tensor w = Fixtures.tensor(c.get("weights"), dtype);
            out.mul(w).sum().backward();
            for (int i = 0; i < inputs.size(); i++) {
                JsonNode g = c.get("grads").get(i);
                Tensor in = inputs.get(i);
                if (g.isNull()) {
                    if (in != null && in.dtype().isFloatingPoint() && in.grad() != null)
                        assertClose(new double[(int) in.numel()], in.grad().toDoubleArray(), 1e-12, 0, name + " grad " + i);
                    continue;
                }
                assertNotNull(in.grad(), name + ": no gradient reached input " + i);
                double[] eg = Fixtures.doubles(g);
                assertClose(eg, in.grad().toDoubleArray(), atol * (1 + maxAbs(eg)), rtol, name + " grad of input " + i);
            }
        }
    }

    /** The list of ops, each covered by at least one case. */
    @Test
    void everyListedOpHasACase() {
        Set<String> covered = new HashSet<>();
        cases().forEach(c -> covered.add(c.get("op").asText()));
        for (String op : List.of("matmul", "linear", "linearInOut", "add", "mul", "mulScalar", "embedding",
                "layerNorm", "rmsNorm", "gelu", "geluTanh", "silu", "relu", "softmax", "attention", "rope",
                "logprobs", "crossEntropy", "logSigmoid", "exp", "clamp", "maximum", "minimum", "maskedSum",
                "maskedMean", "slice", "concat", "reshape", "transpose"))
            assertTrue(covered.contains(op), "no PyTorch case for " + op);
        for (String op : covered) assertTrue(OpCases.OPS.containsKey(op), "fixture op " + op + " has no OpCases entry");
    }
}
