package io.github.rlhf4j.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The floor against the figures performance.md publishes for the H100 suite. Those are rounded to 0.1 ms/seq and 0.01
 * h/epoch and were worked out by hand with "~" figures per phase, so the tolerance is the rounding plus 0.2% of the
 * value: |ours - published| <= 0.05 + 0.002 x published (ms/seq), <= 0.005 + 0.002 x published (h/epoch).
 */
class Step3FloorTest {
    private static Step3Floor floor(Step3Run r) {
        return Step3Floor.of(Step3Floor.Machine.H100, Step3Floor.Shape.causalLm(OptPresets.config(r.actor(), true)),
                Step3Floor.Shape.rewardModel(OptPresets.config(r.critic(), true)), r.batch(), Step3Run.PROMPT_LEN,
                Step3Run.ANSWER_LEN, r.loraActor());
    }

    @ParameterizedTest
    @EnumSource(Step3Run.class)
    void reproducesThePublishedFloorOfEachRun(Step3Run r) {
        Step3Floor f = floor(r);
        double ms = f.msPerSequence(), h = f.hoursPerEpoch();
        assertTrue(Math.abs(ms - r.floorMsPerSeq()) <= 0.05 + 0.002 * r.floorMsPerSeq(),
                r + ": " + ms + " ms/seq against the published " + r.floorMsPerSeq());
        assertTrue(Math.abs(h - r.floorHoursPerEpoch()) <= 0.005 + 0.002 * r.floorHoursPerEpoch(),
                r + ": " + h + " h/epoch against the published " + r.floorHoursPerEpoch());
    }

    @Test
    void r3PhasesMatchTheNotesBreakdown() {
        // performance.md, R3 at the floor: prefill ~50 ms, decode ~636 ms, actor/ref forwards ~110 ms each,
        // critic/reward forwards ~26 ms each, actor fwd+bwd ~329 ms, critic fwd+bwd ~78 ms, AdamW ~15 ms, ~1.38 s;
        // generation 84 TFLOP. Each within 1 ms (1% for the decode and the total) of the note's rounded figure.
        Step3Floor f = floor(Step3Run.R3);
        assertEquals(0.050, f.prefill(), 1e-3);
        assertEquals(0.636, f.decode(), 0.636 * 0.01);
        assertEquals(0.110, f.actorForward(), 1e-3);
        assertEquals(0.026, f.criticForward(), 1e-3);
        assertEquals(0.329, f.actorBackward(), 1e-3);
        assertEquals(0.078, f.criticBackward(), 1e-3);
        assertEquals(0.015, f.actorAdamW() + f.criticAdamW(), 1e-3);
        assertEquals(1.38, f.iteration(), 1.38 * 0.01);
        assertEquals(84e12, f.generationFlops(), 0.5e12);
    }

    @Test
    void decodeIsBandwidthBoundOnTheH100AndTheCpuFloorWithoutBandwidthCountsFlopsOnly() {
        Step3Floor.Shape a = Step3Floor.Shape.causalLm(OptPresets.config("opt-125m", true));
        Step3Floor.Shape c = Step3Floor.Shape.rewardModel(OptPresets.config("opt-125m", true));
        Step3Floor h100 = Step3Floor.of(Step3Floor.Machine.H100, a, c, 4, 64, 64, false);
        // 64 steps, each moving 2 bytes x 125.2M weights at least: 64 x 83.5 us
        assertTrue(h100.decode() >= 64 * 2.0 * a.parameters() / 3.0e12, "decode " + h100.decode());
        Step3Floor cpu = Step3Floor.of(Step3Floor.Machine.cpu(170, 0), a, c, 4, 64, 64, false);
        assertEquals(cpu.generationFlops() / 170e9, cpu.generation(), 1e-12);
        assertEquals(0.0, cpu.actorAdamW());
        assertEquals(cpu.totalFlops() / 170e9, cpu.iteration(), 1e-9);
    }
}
