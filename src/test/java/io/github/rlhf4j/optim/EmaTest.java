package io.github.rlhf4j.optim;

import static io.github.rlhf4j.optim.AdamWTest.atol;
import static io.github.rlhf4j.optim.AdamWTest.wrap;
import static io.github.rlhf4j.testing.Assertions.assertClose;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.fasterxml.jackson.databind.JsonNode;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import io.github.rlhf4j.testing.Fixtures;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/**
 * The parameter EMA against DeepSpeed-Chat's moving_average computed in torch (fixtures/optim.json): starting as a
 * copy of the parameters, after each training step param_ema = torch.lerp(param, param_ema, beta), for DeepSpeed-Chat's
 * beta 0.992 and others (0.9; 0.3, where torch's lerp takes its other formula; the limits 1 and 0).
 */
class EmaTest {
    static final JsonNode FIXTURE = AdamWTest.FIXTURE;
    static final double RTOL = AdamWTest.RTOL;

    @TestFactory
    Stream<DynamicTest> shadowMatchesDsChatMovingAverageAfterEveryUpdate() {
        List<DynamicTest> tests = new ArrayList<>();
        for (JsonNode c : FIXTURE.get("ema")) {
            double beta = c.get("beta").asDouble();
            tests.add(DynamicTest.dynamicTest("beta " + beta, () -> {
                try (Scope s = Scope.open()) {
                    double[] init = Fixtures.doubles(wrap(c.get("init")));
                    Tensor source = Tensor.of(init).to(DType.F32);
                    try (Ema ema = new Ema(source)) {
                        assertArrayEquals(init, ema.shadow().toDoubleArray(), "the average starts at the parameters");
                        int k = 0;
                        for (JsonNode step : c.get("steps")) {
                            k++;
                            source.copyFrom(Fixtures.doubles(wrap(step.get("source"))));
                            ema.update(beta);
                            double[] expected = Fixtures.doubles(wrap(step.get("shadow")));
                            assertClose(expected, ema.shadow().toDoubleArray(), atol(expected), RTOL,
                                    "beta " + beta + " after update " + k);
                        }
                    }
                }
            }));
        }
        return tests.stream();
    }

    /** The shadow is its own buffer: later writes to the parameters reach it only through update. */
    @Test
    void shadowIsACopyNotAView() {
        JsonNode c = FIXTURE.get("ema").get(0);
        try (Scope s = Scope.open()) {
            double[] init = Fixtures.doubles(wrap(c.get("init")));
            Tensor source = Tensor.of(init).to(DType.F32);
            try (Ema ema = new Ema(source)) {
                source.copyFrom(Fixtures.doubles(wrap(c.get("steps").get(0).get("source"))));
                assertArrayEquals(init, ema.shadow().toDoubleArray());
            }
        }
    }

    @Test
    void betaOutsideTheUnitIntervalIsRejected() {
        try (Scope s = Scope.open(); Ema ema = new Ema(Tensor.of(new float[] {1f, 2f}))) {
            for (double beta : new double[] {-0.1, 1.0001, Double.NaN})
                assertThrows(IllegalArgumentException.class, () -> ema.update(beta), "beta " + beta);
        }
    }
}
