package io.github.rlhf4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.github.rlhf4j.model.HfModel;
import io.github.rlhf4j.model.Models;
import io.github.rlhf4j.model.RewardModel;
import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.serve.TestModels;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code train}, {@code sft}, {@code reward} and {@code ppo} run as {@code bin/rlhf4j} runs them, with tiny step counts. */
class TrainCommandsTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path tmp;

    @Test
    void trainWithoutModelFlagsRunsTheDemoThroughTheThreeSteps() throws IOException {
        Path out = tmp.resolve("output");
        Cli r = Cli.run("train", "--output-dir", out.toString(), "--max-steps", "3", "--demo-rows", "300");
        assertEquals(0, r.exit(), r.toString());

        Path actor = out.resolve("actor-models/demo"), rm = out.resolve("reward-models/demo");
        Path step3 = out.resolve("step3-models/demo");
        for (Path dir : List.of(actor, step3.resolve("actor")))
            try (HfModel m = HfModel.load(dir, Device.cpu(), DType.F32, false)) {
                assertTrue(m.parameters().parameterCount() > 0);
                assertTrue(Files.isRegularFile(dir.resolve("tokenizer.json")), dir + " has no tokenizer");
            }
        for (Path dir : List.of(rm, step3.resolve("critic"))) {
            RewardModel model = RewardModel.of(Models.config(dir));
            try (ParameterStore s = ParameterStore.allocate(model, Device.cpu(), DType.F32, 0, false)) {
                var report = HfModel.loadWeights(model, model.config().basePrefix(), dir, Set.of());
                assertTrue(report.notInCheckpoint().isEmpty(), dir + ": " + report); // v_head included
            }
        }
        assertFalse(Files.exists(step3.resolve("actor_ema")), "no --enable-ema, no actor_ema");

        List<JsonNode> s1 = lines(out.resolve("logs/step1.jsonl"));
        assertEquals(4, s1.size(), "3 steps and the eval line");
        assertKeys(s1.get(0), "step", "loss", "lr", "tokens_per_s", "elapsed_s");
        assertTrue(s1.get(3).get("eval_perplexity").asDouble() > 1, s1.get(3).toString());
        List<JsonNode> s2 = lines(out.resolve("logs/step2.jsonl"));
        assertEquals(4, s2.size());
        assertKeys(s2.get(2), "step", "loss", "lr", "tokens_per_s", "elapsed_s");
        assertKeys(s2.get(3), "eval_accuracy", "eval_chosen_score", "eval_rejected_score", "eval_pairs");
        List<JsonNode> s3 = lines(out.resolve("logs/step3.jsonl"));
        assertEquals(3, s3.size());
        assertKeys(s3.get(2), "step", "actor_loss", "critic_loss", "reward", "kl", "answer_length", "actor_lr",
                "critic_lr", "tokens_per_s", "elapsed_s");
        assertEquals(3, s3.get(2).get("step").asInt());

        JsonNode summary = JSON.readTree(out.resolve("summary.json").toFile());
        List<String> keys = new ArrayList<>();
        summary.fieldNames().forEachRemaining(keys::add);
        assertEquals(List.of("rm_accuracy", "sft_reward", "ppo_reward", "sft_checker_accuracy", "ppo_checker_accuracy"),
                keys);
        for (String k : List.of("rm_accuracy", "sft_checker_accuracy", "ppo_checker_accuracy")) {
            double v = summary.get(k).asDouble(-1);
            assertTrue(v >= 0 && v <= 1, k + " = " + summary.get(k));
        }
        assertTrue(r.out().contains("| ppo_checker_accuracy"), r.out());
        assertTrue(r.out().contains("checker accuracy of sampled answers (temperature 1"), r.out());
        // the SFT actor's sampled mistakes replace step 2's rejected answers
        assertTrue(r.out().contains("of step 2's rejected answers are now the SFT actor's own mistakes"), r.out());
        // stdout of a test is not a terminal: progress comes as plain lines
        assertTrue(r.out().contains("step3 3/3 (100%)"), r.out());
        // by default a checkpoint at each stage's end (with its result) and the plots
        for (int s = 1; s <= 3; s++) {
            assertTrue(Files.isRegularFile(out.resolve("checkpoints/step" + s + "/checkpoint-3/result.json")), "step " + s);
            assertTrue(Files.size(out.resolve("plots/step" + s + ".png")) > 0, "step" + s + ".png");
        }
    }

    @Test
    void sftTrainsATinyModelOnHhRlhfRows() throws Exception {
        Path config = tmp.resolve("config.json"), init = tmp.resolve("tiny"), out = tmp.resolve("output");
        Files.writeString(config, TestModels.config("opt_style", 128));
        Cli made = Cli.run("init-model", "--config", config.toString(), "--out", init.toString(), "--seed", "3",
                "--tokenizer", TestModels.tokenizerFixture("opt_style").toString());
        assertEquals(0, made.exit(), made.toString());
        Path hh = Path.of(getClass().getResource("/fixtures/data/hh-rlhf.jsonl").toURI());
        Path rmStatic = Path.of(getClass().getResource("/fixtures/data/rm-static.jsonl").toURI());

        Cli r = Cli.run("sft", "--data-path", hh.toString(), rmStatic.toString(), "--data-split", "1,0,0",
                "--model-name-or-path", init.toString(), "--max-seq-len", "64", "--per-device-train-batch-size", "2",
                "--learning-rate", "1e-2", "--max-steps", "4", "--output-dir", out.toString());
        assertEquals(0, r.exit(), r.toString());
        assertTrue(r.out().contains("step 1 data: train"), r.out());

        Path actor = out.resolve("actor-models/tiny");
        try (HfModel before = HfModel.load(init, Device.cpu(), DType.F32, false);
             HfModel after = HfModel.load(actor, Device.cpu(), DType.F32, false)) {
            float[] a = before.parameters().data().toFloatArray(), b = after.parameters().data().toFloatArray();
            int changed = 0;
            for (int i = 0; i < a.length; i++) if (a[i] != b[i]) changed++;
            assertTrue(changed > a.length / 2, "SFT changed only " + changed + " of " + a.length + " weights");
        }
        List<JsonNode> log = lines(out.resolve("logs/step1.jsonl"));
        assertEquals(5, log.size());
        for (int i = 0; i < 4; i++) assertEquals(i + 1, log.get(i).get("step").asInt());
        // lr 1e-2 on 4 steps of a few rows: the loss must come down
        assertTrue(log.get(3).get("loss").asDouble() < log.get(0).get("loss").asDouble(), log.toString());
        assertTrue(Files.isRegularFile(out.resolve("data-cache").resolve(Files.list(out.resolve("data-cache"))
                .findFirst().orElseThrow().getFileName())), "split indices cached");
    }

    @Test
    void badFlagsSayWhatIsWrong() {
        Cli noData = Cli.run("sft", "--model-name-or-path", tmp.toString());
        assertNotEquals(0, noData.exit());
        assertTrue(noData.err().contains("--data-path"), noData.toString());

        Cli unknown = Cli.run("train", "--deployment-type", "cluster", "--output-dir", tmp.toString());
        assertNotEquals(0, unknown.exit());
        assertTrue(unknown.err().contains("expected single_gpu, single_node or multi_node"), unknown.toString());

        // on a machine without GPUs single_node needs the rank count, multi_node its hosts (nothing is launched)
        Cli noCount = Cli.run("train", "--deployment-type", "single_node", "--output-dir", tmp.toString());
        assertNotEquals(0, noCount.exit());
        assertTrue(noCount.err().contains("single_node needs --num-gpus"), noCount.toString());
        Cli noHosts = Cli.run("train", "--deployment-type", "multi_node", "--output-dir", tmp.toString());
        assertNotEquals(0, noHosts.exit());
        assertTrue(noHosts.err().contains("--hostfile"), noHosts.toString());

        Cli half = Cli.run("train", "--actor-model", tmp.toString(), "--output-dir", tmp.toString());
        assertNotEquals(0, half.exit());
        assertTrue(half.err().contains("--reward-model"), half.toString());

        Cli badStep = Cli.run("train", "--step", "4", "--output-dir", tmp.toString());
        assertNotEquals(0, badStep.exit());
        assertTrue(badStep.err().contains("the steps are 1, 2 and 3"), badStep.toString());

        Cli notModel = Cli.run("ppo", "--data-path", tmp.toString(), "--actor-model-name-or-path", tmp.toString(),
                "--critic-model-name-or-path", tmp.toString());
        assertNotEquals(0, notModel.exit());
        assertTrue(notModel.err().contains("not a model directory"), notModel.toString());
        assertFalse(Files.exists(tmp.resolve("summary.json")));
    }

    private static List<JsonNode> lines(Path file) throws IOException {
        List<JsonNode> out = new ArrayList<>();
        for (String line : Files.readAllLines(file)) out.add(JSON.readTree(line));
        return out;
    }

    private static void assertKeys(JsonNode n, String... keys) {
        for (String k : keys) assertTrue(n.has(k), "no '" + k + "' in " + n);
        Iterator<String> it = n.fieldNames();
        assertTrue(it.hasNext());
    }
}
