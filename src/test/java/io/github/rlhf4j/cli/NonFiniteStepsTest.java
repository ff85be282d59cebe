package io.github.rlhf4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.github.rlhf4j.serve.TestModels;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A NaN in training, made the way it happens in real runs: a learning rate so large (1e30) that the first step
 * throws the weights out of range and the next forward pass overflows. Without a flag the run stops naming the step;
 * with {@code --skip-nonfinite-steps} the bad steps are skipped, counted and logged, and the weights stay exactly
 * those after the last good step.
 */
class NonFiniteStepsTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path tmp;

    Path init, hh;

    @BeforeEach
    void tinyModel() throws Exception {
        Path config = tmp.resolve("config.json");
        init = tmp.resolve("tiny");
        Files.writeString(config, TestModels.config("opt_style", 128));
        Cli made = Cli.run("init-model", "--config", config.toString(), "--out", init.toString(), "--seed", "3",
                "--tokenizer", TestModels.tokenizerFixture("opt_style").toString());
        assertEquals(0, made.exit(), made.toString());
        hh = Path.of(getClass().getResource("/fixtures/data/hh-rlhf.jsonl").toURI());
    }

    private Cli sft(Path out, String steps, String... extra) {
        List<String> args = new ArrayList<>(List.of("sft", "--data-path", hh.toString(), "--data-split", "1,0,0",
                "--model-name-or-path", init.toString(), "--max-seq-len", "64", "--per-device-train-batch-size", "2",
                "--learning-rate", "1e30", "--lr-scheduler-type", "constant", "--num-train-epochs", "20",
                "--max-steps", steps, "--output-dir", out.toString()));
        args.addAll(List.of(extra));
        return Cli.run(args.toArray(String[]::new));
    }

    @Test
    void aNonFiniteStepStopsTheRunOrIsSkippedAndCounted() throws Exception {
        Cli stopped = sft(tmp.resolve("stopped"), "4");
        assertNotEquals(0, stopped.exit());
        assertTrue(stopped.err().matches("(?s).*rlhf4j sft: sft: (loss is (NaN|Infinity)|gradient norm is NaN) at step 2"
                + ".*the step was not taken.*"), stopped.toString());
        assertFalse(Files.exists(tmp.resolve("stopped/actor-models/tiny")), "no model from a stopped run");

        Path out = tmp.resolve("skipping");
        Cli skipped = sft(out, "4", "--skip-nonfinite-steps");
        assertEquals(0, skipped.exit(), skipped.toString());
        assertTrue(skipped.out().contains("step 1: 3 optimizer step(s) of 4 skipped for a NaN or Inf"), skipped.out());
        assertTrue(skipped.out().contains("warning: step 1 step 2: sft:"), skipped.out());
        List<JsonNode> log = new ArrayList<>();
        for (String line : Files.readAllLines(out.resolve("logs/step1.jsonl"))) log.add(JSON.readTree(line));
        assertFalse(log.get(0).has("skipped"), log.get(0).toString());
        for (int i = 1; i < 4; i++) {
            assertEquals(i, log.get(i).get("skipped_steps").asInt(), log.get(i).toString());
            assertTrue(log.get(i).get("skipped").asText().contains("at step 2"), "AdamW is still before its step 2");
        }

        // the skipped steps left the weights alone: they are those of a one-step run, byte for byte
        Path one = tmp.resolve("one-step");
        assertEquals(0, sft(one, "1").exit());
        assertEquals(-1, Files.mismatch(one.resolve("actor-models/tiny/model.safetensors"),
                out.resolve("actor-models/tiny/model.safetensors")));
        assertNotEquals(-1, Files.mismatch(init.resolve("model.safetensors"),
                out.resolve("actor-models/tiny/model.safetensors")), "step 1 was taken");
    }
}
