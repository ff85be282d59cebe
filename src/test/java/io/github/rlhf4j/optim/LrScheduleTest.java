package io.github.rlhf4j.optim;

import static io.github.rlhf4j.testing.Assertions.assertClose;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.function.Executable;

/**
 * Learning-rate schedules against transformers.get_scheduler (fixtures/optim.json): for linear, cosine, constant and
 * constant_with_warmup at several (warm-up, total) pairs, warm-up 0 included, the lr of every optimizer step from
 * 0 to total + 3 is what the optimizer's param_groups held before that step when torch's loop called
 * optimizer.step() then scheduler.step().
 */
class LrScheduleTest {
    static final JsonNode FIXTURE = AdamWTest.FIXTURE;

    @TestFactory
    Stream<DynamicTest> namedScheduleMatchesTransformersAtEveryStepAndPastTheEnd() {
        List<DynamicTest> tests = new ArrayList<>();
        for (JsonNode c : FIXTURE.get("lr")) {
            String name = c.get("name").asText();
            long warmup = c.get("warmup").asLong(), total = c.get("total").asLong();
            tests.add(DynamicTest.dynamicTest(name + " warmup " + warmup + " total " + total, () -> {
                double base = c.get("base_lr").asDouble();
                JsonNode lrs = c.get("lrs");
                assertTrue(lrs.size() > total + 1, "the fixture should run past the last training step");
                LrSchedule schedule = LrSchedule.named(name, warmup, total);
                double[] expected = new double[lrs.size()], actual = new double[lrs.size()];
                double[] factors = new double[lrs.size()];
                for (int k = 0; k < lrs.size(); k++) {
                    expected[k] = lrs.get(k).asDouble();
                    actual[k] = schedule.lr(base, k);
                    factors[k] = schedule.factor(k) * base;
                }
                // libm's and Java's cos may differ in the last bit; everything else is the same double arithmetic.
                assertClose(expected, actual, 1e-20, 1e-14, name + " lr(base, step)");
                assertClose(expected, factors, 1e-20, 1e-14, name + " base * factor(step)");
            }));
        }
        return tests.stream();
    }

    /** The factories agree with the names get_scheduler takes for them. */
    @TestFactory
    Stream<DynamicTest> factoriesMatchTransformersForTheirNames() {
        List<DynamicTest> tests = new ArrayList<>();
        for (JsonNode c : FIXTURE.get("lr")) {
            String name = c.get("name").asText();
            long warmup = c.get("warmup").asLong(), total = c.get("total").asLong();
            LrSchedule direct = switch (name) {
                case "linear" -> LrSchedule.linear(warmup, total);
                case "cosine" -> LrSchedule.cosine(warmup, total);
                case "constant" -> LrSchedule.constant(0);
                case "constant_with_warmup" -> LrSchedule.constant(warmup);
                default -> throw new IllegalStateException("fixture schedule " + name);
            };
            tests.add(DynamicTest.dynamicTest(name + " warmup " + warmup + " total " + total, () -> {
                double base = c.get("base_lr").asDouble();
                JsonNode lrs = c.get("lrs");
                double[] expected = new double[lrs.size()], actual = new double[lrs.size()];
                for (int k = 0; k < lrs.size(); k++) {
                    expected[k] = lrs.get(k).asDouble();
                    actual[k] = direct.lr(base, k);
                }
                assertClose(expected, actual, 1e-20, 1e-14, name);
            }));
        }
        return tests.stream();
    }

    @Test
    void badArgumentsAreRejected() {
        List<Executable> bad = List.of(
                () -> LrSchedule.linear(-1, 10),
                () -> LrSchedule.linear(5, 4),
                () -> LrSchedule.cosine(-1, 10),
                () -> LrSchedule.cosine(11, 10),
                () -> LrSchedule.constant(-2),
                () -> LrSchedule.named("linear", 3, 2),
                () -> LrSchedule.named("cosine", -1, 5),
                () -> LrSchedule.named("constant_with_warmup", -1, 5),
                () -> LrSchedule.named("cosine_with_restarts", 0, 10),
                () -> LrSchedule.named("Linear", 0, 10),
                () -> LrSchedule.named("", 0, 10));
        for (int i = 0; i < bad.size(); i++)
            assertThrows(IllegalArgumentException.class, bad.get(i), "bad call " + i + " was accepted");
    }
}
