package io.github.rlhf4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The kill -9 test of issue 6: {@code bin/rlhf4j train} on the embedded demo (EMA on) runs in a child JVM with this
 * test's java and class path. It is killed with SIGKILL as soon as a checkpoint of step 1 exists, resumed with
 * {@code --resume} and killed again as soon as one of step 3 exists (the hardest state: actor, critic, EMA, two
 * optimizers, the experience counter), then resumed to the end. Every model file and the summary must be bitwise
 * those of an uninterrupted run with the same seed, and the metrics the same apart from timings. The CPU backend is
 * deterministic for a fixed thread count, so the children all run with {@code OMP_NUM_THREADS=1}.
 */
class KillResumeTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int STEPS = 24;
    private static final List<String> ARGS = List.of("train", "--max-steps", Integer.toString(STEPS), "--demo-rows",
            "300", "--checkpoint-every", "4", "--enable-ema");
    private static final List<String> MODELS = List.of("actor-models/demo", "reward-models/demo",
            "step3-models/demo/actor", "step3-models/demo/critic", "step3-models/demo/actor_ema");
    private static final Pattern CHECKPOINT = Pattern.compile("checkpoint-(\\d+)");

    @TempDir
    Path tmp;

    @Test
    void killedTwiceAndResumedEndsBitwiseAsAnUninterruptedRun() throws Exception {
        Path ref = tmp.resolve("uninterrupted"), out = tmp.resolve("killed");
        Process whole = start(ref, tmp.resolve("uninterrupted.log"));
        assertEquals(0, finish(whole), log("uninterrupted.log"));

        // first run: killed in step 1, just after its first checkpoint
        Process first = start(out, tmp.resolve("first.log"));
        long at1 = killAfterCheckpoint(first, out.resolve("checkpoints/step1"), "first.log");
        assertFalse(Files.exists(out.resolve("actor-models/demo")), "killed before step 1 ended: " + log("first.log"));

        // second run: resumes step 1, runs step 2, killed in step 3 just after its first checkpoint
        Process second = start(out, tmp.resolve("second.log"), "--resume");
        long at3 = killAfterCheckpoint(second, out.resolve("checkpoints/step3"), "second.log");
        String log2 = log("second.log");
        assertTrue(log2.contains("step 1: resuming from") && log2.contains("checkpoint-"), log2);
        assertTrue(Files.exists(out.resolve("reward-models/demo")), log2);
        assertFalse(Files.exists(out.resolve("step3-models/demo/actor")), "killed before step 3 ended: " + log2);

        // third run: steps 1 and 2 are done, step 3 resumes and finishes
        Process third = start(out, tmp.resolve("third.log"), "--resume");
        assertEquals(0, finish(third), log("third.log"));
        String log3 = log("third.log");
        assertTrue(log3.contains("step 1: already complete") && log3.contains("step 2: already complete"), log3);
        assertTrue(log3.contains("step 3: resuming from"), log3);

        for (String m : MODELS) {
            Path a = ref.resolve(m).resolve("model.safetensors"), b = out.resolve(m).resolve("model.safetensors");
            assertEquals(-1, Files.mismatch(a, b), m + " differs after kills at step 1/" + at1 + " and 3/" + at3);
        }
        assertNotEquals(-1, Files.mismatch(ref.resolve(MODELS.get(0)).resolve("model.safetensors"),
                ref.resolve(MODELS.get(2)).resolve("model.safetensors")), "step 3 changed the actor");
        assertEquals(JSON.readTree(ref.resolve("summary.json").toFile()), JSON.readTree(out.resolve("summary.json")
                .toFile()));
        for (int s = 1; s <= 3; s++)
            assertEquals(withoutTimings(ref.resolve("logs/step" + s + ".jsonl")),
                    withoutTimings(out.resolve("logs/step" + s + ".jsonl")), "logs/step" + s + ".jsonl");
        for (int s = 1; s <= 3; s++)
            assertTrue(ImageIO.read(out.resolve("plots/step" + s + ".png").toFile()).getWidth() > 0, "step" + s + ".png");
    }

    private Process start(Path out, Path log, String... extra) throws IOException {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"),
                Main.class.getName()));
        cmd.addAll(ARGS);
        cmd.addAll(List.of("--output-dir", out.toString()));
        cmd.addAll(List.of(extra));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile());
        pb.environment().put("OMP_NUM_THREADS", "1");
        return pb.start();
    }

    private static int finish(Process p) throws InterruptedException {
        if (!p.waitFor(5, TimeUnit.MINUTES)) {
            p.destroyForcibly().waitFor();
            fail("the run did not end within 5 minutes");
        }
        return p.exitValue();
    }

    /**
     * Waits until {@code stageDir} holds a complete checkpoint of a step before the stage's last, then SIGKILLs the
     * process; returns that step.
     */
    private long killAfterCheckpoint(Process p, Path stageDir, String log) throws Exception {
        long step = -1;
        while (step < 0) {
            if (!p.isAlive()) fail("the run ended (exit " + p.exitValue() + ") before a checkpoint appeared in "
                    + stageDir + ":\n" + log(log));
            step = newest(stageDir);
            if (step < 0) Thread.sleep(5);
        }
        p.destroyForcibly(); // SIGKILL on Linux: no shutdown hook, no finally block runs
        assertTrue(p.waitFor(1, TimeUnit.MINUTES));
        assertEquals(137, p.exitValue(), "killed by SIGKILL");
        assertTrue(step < STEPS, "the first checkpoint seen (" + step + ") came before the stage's end");
        return step;
    }

    private static long newest(Path stageDir) throws IOException {
        if (!Files.isDirectory(stageDir)) return -1;
        try (Stream<Path> s = Files.list(stageDir)) {
            return s.map(p -> CHECKPOINT.matcher(p.getFileName().toString())).filter(java.util.regex.Matcher::matches)
                    .mapToLong(m -> Long.parseLong(m.group(1))).max().orElse(-1);
        }
    }

    private String log(String name) {
        try {
            return Files.readString(tmp.resolve(name));
        } catch (IOException e) {
            return "(no log: " + e + ")";
        }
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
}
