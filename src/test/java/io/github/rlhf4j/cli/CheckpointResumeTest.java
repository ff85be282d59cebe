package io.github.rlhf4j.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.github.rlhf4j.serve.TestModels;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code train --resume} in this JVM, on a tiny GPT-Neo (dropout 0.1, so the dropout counters must be restored too) through
 * the three steps with EMA and the pretraining mixture (so the EMA, the experience counter and both data positions
 * must be restored too). An uninterrupted run keeping every checkpoint is the reference; then the output folder is put
 * back into the state a run killed just after a given checkpoint leaves (later checkpoints and the later stages'
 * outputs gone, metrics lines past the checkpoint, a torn last line, damaged checkpoints), and {@code --resume} must
 * end with the same bytes in every model file and the same metrics (timings aside). The killed-process version of this
 * is {@link KillResumeTest}.
 */
class CheckpointResumeTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final List<String> MODELS = List.of("actor-models/init/model.safetensors",
            "reward-models/init/model.safetensors", "step3-models/init/actor/model.safetensors",
            "step3-models/init/critic/model.safetensors", "step3-models/init/actor_ema/model.safetensors");

    @TempDir
    Path tmp;

    Path init, out, hh, rmStatic, text;

    @BeforeEach
    void tinyOpt() throws Exception {
        Path config = tmp.resolve("config.json");
        init = tmp.resolve("init");
        out = tmp.resolve("output");
        Files.writeString(config, """
                {"model_type": "gpt_neo", "vocab_size": 803, "max_position_embeddings": 128, "hidden_size": 32,
                 "num_layers": 2, "num_heads": 4, "attention_types": [[["global", "local"], 1]], "window_size": 16,
                 "embed_dropout": 0.1, "resid_dropout": 0.1, "initializer_range": 0.2, "bos_token_id": 801,
                 "eos_token_id": 800}""");
        Cli made = Cli.run("init-model", "--config", config.toString(), "--out", init.toString(), "--seed", "3",
                "--tokenizer", TestModels.tokenizerFixture("qwen2_style").toString());
        assertEquals(0, made.exit(), made.toString());
        hh = Path.of(getClass().getResource("/fixtures/data/hh-rlhf.jsonl").toURI());
        rmStatic = Path.of(getClass().getResource("/fixtures/data/rm-static.jsonl").toURI());
        text = Path.of(getClass().getResource("/fixtures/data/text.jsonl").toURI());
    }

    private Cli train(String... extra) {
        List<String> args = new ArrayList<>(List.of("train", "--actor-model", init.toString(), "--reward-model",
                init.toString(), "--data-path", hh.toString(), rmStatic.toString(), "--data-split", "1,1,1",
                "--max-seq-len", "64", "--max-prompt-seq-len", "64", "--max-answer-seq-len", "6",
                "--per-device-train-batch-size", "2", "--num-train-epochs", "20", "--max-steps", "6",
                "--sft-learning-rate", "1e-2", "--reward-learning-rate", "1e-2", "--actor-learning-rate", "1e-3",
                "--critic-learning-rate", "1e-3", "--num-warmup-steps", "2", "--enable-ema",
                "--unsupervised-dataset-name", text.toString(), "--unsup-coef", "0.5",
                "--checkpoint-every", "2", "--output-dir", out.toString()));
        return Cli.runOver(args, extra); // an option given again replaces the default above
    }

    @Test
    void resumingAfterAKillReachesTheUninterruptedRunsBytes() throws IOException {
        Path reference = reference();
        assertTrue(Files.mismatch(init.resolve("model.safetensors"), out.resolve(MODELS.get(0))) >= 0,
                "step 1 trained nothing");
        assertEquals(List.of(6L, 4L, 2L), steps(out.resolve("checkpoints/step3")), "every 2 steps, all kept");

        // killed in step 3 after step 5: checkpoint-4 damaged afterwards (a file gone), so checkpoint-2 it is
        killedAfter(3, 4);
        Files.delete(out.resolve("checkpoints/step3/checkpoint-4/optimizer/critic.safetensors"));
        Cli r3 = train("--resume", "--save-total-limit", "0");
        assertEquals(0, r3.exit(), r3.toString());
        assertTrue(r3.out().contains("step 1: already complete"), r3.out());
        assertTrue(r3.out().contains("step 2: already complete"), r3.out());
        assertTrue(r3.out().contains("warning: step 3: skipping checkpoint " + out.resolve("checkpoints/step3/checkpoint-4")
                .toAbsolutePath().normalize()) && r3.out().contains("optimizer/critic.safetensors is missing"), r3.out());
        assertTrue(r3.out().contains("step 3: resuming from") && r3.out().contains("checkpoint-2 (step 2 of 6)"),
                r3.out());
        assertSameAsReference(reference, "after a kill in step 3");

        // killed in step 2 after step 5, checkpoint-4 without its manifest (cut short before it was renamed?)
        killedAfter(2, 4);
        Files.delete(out.resolve("checkpoints/step2/checkpoint-4/manifest.json"));
        Cli r2 = train("--resume", "--save-total-limit", "0");
        assertEquals(0, r2.exit(), r2.toString());
        assertTrue(r2.out().contains("checkpoint-4: " + out.resolve("checkpoints/step2/checkpoint-4").toAbsolutePath()
                .normalize() + ": no manifest.json"), r2.out());
        assertTrue(r2.out().contains("step 2: resuming from") && r2.out().contains("checkpoint-2 (step 2 of 6)"),
                r2.out());
        assertSameAsReference(reference, "after a kill in step 2");

        // killed in step 1 after step 3, the last metrics line torn; steps 2 and 3 then run from their beginning
        killedAfter(1, 2);
        Files.writeString(out.resolve("logs/step1.jsonl"), "{\"step\":4,\"lo", StandardOpenOption.APPEND);
        Cli r1 = train("--resume");
        assertEquals(0, r1.exit(), r1.toString());
        assertTrue(r1.out().contains("step 1: resuming from") && r1.out().contains("checkpoint-2 (step 2 of 6)"),
                r1.out());
        assertSameAsReference(reference, "after a kill in step 1");
        // the default --save-total-limit 2 keeps the newest two of each stage it wrote
        assertEquals(List.of(6L, 4L), steps(out.resolve("checkpoints/step1")));
        assertEquals(List.of(6L, 4L), steps(out.resolve("checkpoints/step3")));

        // a setting that differs from the checkpoint's is refused, naming it
        Cli other = train("--resume", "--sft-learning-rate", "2e-2");
        assertNotEquals(0, other.exit());
        assertTrue(other.err().contains("--learning-rate was '0.01' there and is '0.02' now"), other.toString());

        // without --resume the stage starts afresh and says it removes the old checkpoints
        Cli fresh = train("--step", "1", "--max-steps", "2");
        assertEquals(0, fresh.exit(), fresh.toString());
        assertTrue(fresh.out().contains("step 1: starting afresh (no --resume): removing 2 checkpoint(s)"), fresh.out());
        assertEquals(List.of(2L), steps(out.resolve("checkpoints/step1")));
    }

    /**
     * The same run with every flat buffer (weights, gradients, AdamW moments, the EMA) kept in rows of 64, the layout
     * of a model past 2^31 elements, which {@code rlhf4j.tensor.flat_limit} gives this tiny one: the three steps end
     * with the bytes and metrics of the 1-d run, and so does a resume from a checkpoint written in rows.
     */
    @Test
    void withTheFlatBuffersInRowsTheRunAndItsResumeReachTheSameBytes() throws IOException {
        Path reference = reference();
        delete(out);
        String key = "rlhf4j.tensor.flat_limit";
        System.setProperty(key, "1024");
        try {
            assertArrayEquals(new int[] {32, 64}, io.github.rlhf4j.tensor.Tensor.flatShape(2048));
            Cli rows = train("--save-total-limit", "0");
            assertEquals(0, rows.exit(), rows.toString());
            assertSameAsReference(reference, "in rows");
            killedAfter(3, 2);
            Cli resumed = train("--resume", "--save-total-limit", "0");
            assertEquals(0, resumed.exit(), resumed.toString());
            assertTrue(resumed.out().contains("step 3: resuming from") && resumed.out().contains("checkpoint-2 (step 2 "
                    + "of 6)"), resumed.out());
            assertSameAsReference(reference, "in rows, resumed in step 3");
        } finally {
            System.clearProperty(key);
        }
    }

    /** An uninterrupted run keeping every checkpoint; its model files and metrics copied aside. */
    private Path reference() throws IOException {
        Cli full = train("--save-total-limit", "0");
        assertEquals(0, full.exit(), full.toString());
        Path reference = tmp.resolve("reference");
        for (String m : MODELS) copy(out.resolve(m), reference.resolve(m));
        for (int s = 1; s <= 3; s++) copy(out.resolve("logs/step" + s + ".jsonl"), reference.resolve("step" + s + ".jsonl"));
        return reference;
    }

    /**
     * Puts the output folder where a run killed in {@code stage} just after checkpoint {@code step} (and one more
     * step) leaves it: that stage's later checkpoints and the later stages' checkpoints, outputs and logs gone; the
     * stage's own metrics file keeps its lines past the checkpoint (resume must cut them).
     */
    private void killedAfter(int stage, long step) throws IOException {
        List<String> outputs = List.of("actor-models/init", "reward-models/init", "step3-models/init");
        for (int s = stage; s <= 3; s++) delete(out.resolve(outputs.get(s - 1)));
        for (int s = stage + 1; s <= 3; s++) {
            delete(out.resolve("checkpoints/step" + s));
            Files.deleteIfExists(out.resolve("logs/step" + s + ".jsonl"));
        }
        for (long n : steps(out.resolve("checkpoints/step" + stage)))
            if (n > step) delete(out.resolve("checkpoints/step" + stage + "/checkpoint-" + n));
        List<String> lines = Files.readAllLines(out.resolve("logs/step" + stage + ".jsonl"));
        assertTrue(lines.size() > step + 1, "the metrics hold lines past the checkpoint");
    }

    private void assertSameAsReference(Path reference, String when) throws IOException {
        for (String m : MODELS)
            assertEquals(-1, Files.mismatch(reference.resolve(m), out.resolve(m)), when + ": " + m + " differs");
        for (int s = 1; s <= 3; s++)
            assertEquals(withoutTimings(reference.resolve("step" + s + ".jsonl")),
                    withoutTimings(out.resolve("logs/step" + s + ".jsonl")), when + ": step" + s + ".jsonl differs");
    }

    private static List<JsonNode> withoutTimings(Path jsonl) throws IOException {
        List<JsonNode> out = new ArrayList<>();
        for (String line : Files.readAllLines(jsonl)) {
            ObjectNode n = (ObjectNode) JSON.readTree(line);
            n.remove(List.of("tokens_per_s", "elapsed_s"));
            out.add(n);
        }
        return out;
    }

    private static List<Long> steps(Path stageDir) throws IOException {
        if (!Files.isDirectory(stageDir)) return List.of();
        try (Stream<Path> s = Files.list(stageDir)) {
            return s.map(p -> p.getFileName().toString()).filter(n -> n.startsWith("checkpoint-"))
                    .map(n -> Long.parseLong(n.substring("checkpoint-".length())))
                    .sorted(Comparator.reverseOrder()).toList();
        }
    }

    private static void copy(Path from, Path to) throws IOException {
        Files.createDirectories(to.getParent());
        Files.copy(from, to);
    }

    private static void delete(Path p) throws IOException {
        if (!Files.exists(p)) return;
        try (Stream<Path> s = Files.walk(p)) {
            for (Path q : s.sorted(Comparator.reverseOrder()).toList()) Files.delete(q);
        }
        assertFalse(Files.exists(p));
    }
}
