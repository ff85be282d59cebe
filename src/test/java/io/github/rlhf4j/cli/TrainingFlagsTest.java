package io.github.rlhf4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.github.rlhf4j.model.HfModel;
import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.serve.TestModels;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Step 3's memory and scheduling flags through {@code bin/rlhf4j train}: gradient checkpointing changes no byte of
 * the trained models (dropout on, so the masks must be replayed); {@code --generation-batches} gathers experience
 * batches before the PPO epochs train on them, as DS-Chat's MiniDataset does; {@code --offload-reference-model} on
 * the CPU says it has nothing to do; {@code --device} refuses a GPU that is not there.
 */
class TrainingFlagsTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final List<String> MODELS = List.of("actor-models/init/model.safetensors",
            "reward-models/init/model.safetensors", "step3-models/init/actor/model.safetensors",
            "step3-models/init/critic/model.safetensors");

    @TempDir
    Path tmp;

    Path init, hh, rmStatic;

    @BeforeEach
    void tinyModel() throws Exception {
        Path config = tmp.resolve("config.json");
        init = tmp.resolve("init");
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
    }

    private Cli train(Path out, String... extra) {
        List<String> args = new ArrayList<>(List.of("train", "--actor-model", init.toString(), "--reward-model",
                init.toString(), "--data-path", hh.toString(), rmStatic.toString(), "--data-split", "1,1,1",
                "--max-seq-len", "64", "--max-prompt-seq-len", "64", "--max-answer-seq-len", "6",
                "--per-device-train-batch-size", "2", "--num-train-epochs", "20", "--max-steps", "4",
                "--sft-learning-rate", "1e-2", "--reward-learning-rate", "1e-2", "--actor-learning-rate", "1e-3",
                "--critic-learning-rate", "1e-3", "--num-warmup-steps", "1", "--checkpoint-every", "0",
                "--device", "cpu", "--output-dir", out.toString()));
        return Cli.runOver(args, extra); // an option given again replaces the default above
    }

    @Test
    void gradientCheckpointingChangesNoByteOfTheTrainedModels() throws IOException {
        Path plain = tmp.resolve("plain"), ckpt = tmp.resolve("ckpt");
        Cli a = train(plain);
        assertEquals(0, a.exit(), a.toString());
        Cli b = train(ckpt, "--actor-gradient-checkpointing", "--critic-gradient-checkpointing");
        assertEquals(0, b.exit(), b.toString());
        for (String m : MODELS) {
            assertTrue(Files.mismatch(init.resolve("model.safetensors"), plain.resolve(m)) >= 0, m + " trained nothing");
            assertEquals(-1, Files.mismatch(plain.resolve(m), ckpt.resolve(m)), m + " differs with checkpointing");
        }
    }

    @Test
    void generationBatchesGatherExperienceBeforeThePpoEpochsTrainOnIt() throws IOException {
        Path out = tmp.resolve("gb");
        Cli r = train(out, "--max-steps", "6", "--generation-batches", "2", "--ppo-epochs",
                "2", "--checkpoint-every", "2");
        assertEquals(0, r.exit(), r.toString());
        List<JsonNode> log = lines(out.resolve("logs/step3.jsonl"));
        // six prompt batches, trained on in three groups of two: a metrics line per group
        assertEquals(List.of(2, 4, 6), log.stream().map(n -> n.get("step").asInt()).toList(), log.toString());
        // each PPO epoch trains on both experiences of a group: 2 groups x ... = 6 batches x 2 epochs actor steps
        JsonNode state = JSON.readTree(out.resolve("checkpoints/step3/checkpoint-6/manifest.json").toFile());
        JsonNode optimizers = state.findValue("optimizers");
        assertEquals(12, optimizers.get("actor").get("steps").asInt(), state.toString());
        assertEquals(12, optimizers.get("critic").get("steps").asInt(), state.toString());

        // four per group over six batches: one group trained, the last two batches dropped, and said so
        Path out4 = tmp.resolve("gb4");
        Cli r4 = train(out4, "--max-steps", "6", "--generation-batches", "4");
        assertEquals(0, r4.exit(), r4.toString());
        assertTrue(r4.out().contains("the last 2 prompt batches do not fill --generation-batches 4"), r4.out());
        assertEquals(List.of(4), lines(out4.resolve("logs/step3.jsonl")).stream().map(n -> n.get("step").asInt())
                .toList());
        JsonNode state4 = JSON.readTree(out4.resolve("checkpoints/step3/checkpoint-6/manifest.json").toFile());
        assertEquals(4, state4.findValue("optimizers").get("actor").get("steps").asInt(), state4.toString());

        Cli tooMany = train(tmp.resolve("gb9"), "--step", "3", "--generation-batches", "9");
        assertNotEquals(0, tooMany.exit());
    }

    @Test
    void offloadOnTheCpuHasNothingToDoAndDevicesAreChecked() {
        Cli r = train(tmp.resolve("off"), "--max-steps", "2", "--offload-reference-model");
        assertEquals(0, r.exit(), r.toString());
        assertTrue(r.out().contains("--offload-reference-model has nothing to do"), r.out());
        assertTrue(r.out().contains("on cpu:0 (reference and reward model on cpu:0)"), r.out());

        Cli gpu = train(tmp.resolve("gpu"), "--device", "cuda:7");
        assertNotEquals(0, gpu.exit());
        assertTrue(gpu.err().contains("--device cuda:7"), gpu.toString());
        Cli bad = train(tmp.resolve("bad"), "--device", "tpu");
        assertNotEquals(0, bad.exit());
        assertTrue(bad.err().contains("expected cpu, cuda or cuda:N"), bad.toString());
        Cli lora = train(tmp.resolve("nolora"), "--only-optimize-lora");
        assertNotEquals(0, lora.exit());
        assertTrue(lora.err().contains("--only-optimize-lora needs"), lora.toString());
    }

    @Test
    void loraWithOnlyOptimizeLoraTrainsTheAdaptedLayersAloneAndSavesThemFused() {
        Path out = tmp.resolve("lora");
        Cli r = train(out, "--max-steps", "2", "--actor-lora-dim", "4", "--critic-lora-dim", "4",
                "--only-optimize-lora", "--actor-lora-learning-rate", "1e-2", "--critic-lora-learning-rate", "1e-2");
        assertEquals(0, r.exit(), r.toString());
        // GPT-Neo's default filter is its layer stack "h.": q, k, v, out_proj, c_fc, c_proj in each of 2 layers
        assertTrue(r.out().contains("step 3: LoRA on 12 actor and 12 critic layers; only the adapters train"), r.out());
        for (String dir : List.of("actor-models/init", "reward-models/init", "step3-models/init/actor",
                "step3-models/init/critic")) {
            // plain Hugging Face folders: every key a parameter of the plain model, no lora keys left
            try (HfModel before = HfModel.load(init, Device.cpu(), DType.F32, false);
                 HfModel after = HfModel.load(out.resolve(dir), Device.cpu(), DType.F32, false)) {
                int adapted = 0, frozen = 0;
                for (ParameterStore.Entry e : after.parameters().entries()) {
                    if (e.name().contains("v_head")) continue; // a fresh value head in step 2
                    float[] a = e.parameter().value().toFloatArray();
                    float[] b = before.model().namedParameters().get(e.name()).value().toFloatArray();
                    boolean same = java.util.Arrays.equals(a, b);
                    boolean layerMatrix = e.name().matches(".*\\.h\\.\\d+\\..*weight") && a.length > 32;
                    if (layerMatrix && !e.name().contains("ln_")) {
                        assertTrue(!same, dir + ": " + e.name() + " carries no trained adapter");
                        adapted++;
                    } else {
                        assertTrue(same, dir + ": " + e.name() + " moved though only the adapters train");
                        frozen++;
                    }
                }
                assertEquals(12, adapted, dir);
                assertTrue(frozen > 10, dir);
            }
        }
    }

    private static List<JsonNode> lines(Path file) throws IOException {
        List<JsonNode> out = new ArrayList<>();
        for (String line : Files.readAllLines(file)) out.add(JSON.readTree(line));
        return out;
    }
}
