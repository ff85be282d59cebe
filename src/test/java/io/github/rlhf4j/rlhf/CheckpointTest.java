package io.github.rlhf4j.rlhf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.github.rlhf4j.model.CausalLM;
import io.github.rlhf4j.model.ConfigJson;
import io.github.rlhf4j.model.Gpt2Config;
import io.github.rlhf4j.model.HfModel;
import io.github.rlhf4j.model.Safetensors;
import io.github.rlhf4j.nn.Lora;
import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.optim.LrSchedule;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.tensor.Autograd;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link Checkpoint}: what a writer commits reads back bit for bit (weights, AdamW moments and counters, integer
 * state), and every kind of damage is named: no manifest, a file missing or cut short, a tensor missing, another
 * format version, another setting.
 */
class CheckpointTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String CONFIG = """
            {"model_type": "gpt2", "vocab_size": 16, "n_positions": 8, "n_embd": 8, "n_layer": %d, "n_head": 2}""";

    @TempDir
    Path tmp;

    /** A model and its optimizer after {@code steps} AdamW steps on made-up gradients. */
    private record Trained(CausalLM model, ParameterStore store, Optimized opt) implements AutoCloseable {
        static Trained of(int layers, long seed, int steps) {
            return of(layers, seed, steps, false);
        }

        /** With {@code lora}, LoRA adapters of rank 2 on every Conv1D of the blocks. */
        static Trained of(int layers, long seed, int steps, boolean lora) {
            CausalLM m = CausalLM.of(Gpt2Config.fromJson(ConfigJson.parse("config", CONFIG.formatted(layers))));
            if (lora) Lora.apply(m, "h.", 2);
            ParameterStore s = ParameterStore.allocate(m, Device.cpu(), DType.F32, seed);
            Optimized o = new Optimized(s, new Optimized.Settings(1e-2, 0.1, LrSchedule.cosine(1, 10), 1.0));
            for (int i = 0; i < steps; i++) {
                randomGradients(s, seed + 100 + i);
                o.step("test");
            }
            return new Trained(m, s, o);
        }

        @Override
        public void close() {
            opt.close();
            store.close();
        }
    }

    /** Gradients as backward leaves them: in the parameters' places, the alignment gaps between them zero. */
    private static void randomGradients(ParameterStore s, long seed) {
        try (Autograd.NoGrad ignored = Autograd.noGrad()) {
            for (ParameterStore.Entry e : s.entries())
                if (!e.parameter().isFrozen()) e.parameter().value().grad().fillRandom(true, 0, 1, seed, e.offset());
        }
    }

    private Checkpoint write(Trained t, long step, Map<String, String> settings) {
        try (Checkpoint.Writer w = new Checkpoint.Writer(tmp.resolve("step1"), step)) {
            w.model("actor", t.model(), ConfigJson.parse("config", CONFIG.formatted(1)), null);
            w.optimizer("actor", t.opt());
            w.ints("last_sequences", new int[] {1, 2, 3, 4, 5, 6}, 2, 3);
            ObjectNode state = JSON.createObjectNode();
            state.putObject("optimizers").putObject("actor").put("steps", t.opt().steps()).put("skipped_steps", 1);
            return w.commit("step1", 10, settings, state);
        }
    }

    @Test
    void whatIsWrittenReadsBackBitForBit() throws IOException {
        try (Trained saved = Trained.of(1, 1, 3); Trained fresh = Trained.of(1, 7, 0)) {
            Checkpoint c = write(saved, 3, Map.of("--seed", "1"));
            assertEquals(tmp.resolve("step1/checkpoint-3").toAbsolutePath(), c.dir());
            Checkpoint read = Checkpoint.open(c.dir());
            assertEquals(3, read.step());
            assertEquals(10, read.totalSteps());
            read.verifyModel("actor", fresh.model());
            read.verifyOptimizer("actor", fresh.opt());
            read.loadModel("actor", fresh.model());
            read.loadOptimizer("actor", fresh.opt());
            assertArrayEquals(saved.store().data().toFloatArray(), fresh.store().data().toFloatArray());
            for (int g = 0; g < saved.opt().adamw().groups().size(); g++)
                for (int k = 0; k < 2; k++)
                    assertArrayEquals(saved.opt().adamw().moments(g)[k].toFloatArray(),
                            fresh.opt().adamw().moments(g)[k].toFloatArray(), "group " + g + " moment " + k);
            assertEquals(3, fresh.opt().steps());
            assertEquals(saved.opt().lr(), fresh.opt().lr(), "the schedule is where it was");
            assertEquals(1, fresh.opt().skippedSteps());
            assertArrayEquals(new int[] {1, 2, 3, 4, 5, 6}, read.ints("last_sequences"));
            assertEquals(null, read.result());
            ObjectNode figures = JSON.createObjectNode().put("perplexity", 3.5);
            read.withResult(figures);
            assertEquals(figures, Checkpoint.open(c.dir()).result());
            // the same steps taken again give the same weights: nothing was left out of the state
            randomGradients(saved.store(), 999);
            randomGradients(fresh.store(), 999);
            saved.opt().step("test");
            fresh.opt().step("test");
            assertArrayEquals(saved.store().data().toFloatArray(), fresh.store().data().toFloatArray());
            assertFalse(hidden(tmp.resolve("step1")), "no temp folder left behind");
        }
    }

    /**
     * A LoRA model's folder is a Hugging Face model with the adapters fused (what transformers loads), and its
     * {@code lora.safetensors} the exact unfused weights and adapters, from which a resumed run goes on bit for bit.
     */
    @Test
    void loraModelsResumeExactlyAndTheirFolderIsAFusedHuggingFaceModel() throws IOException {
        try (Trained saved = Trained.of(1, 1, 3, true); Trained fresh = Trained.of(1, 7, 0, true);
             Trained plain = Trained.of(1, 7, 0, false)) {
            Checkpoint c = write(saved, 3, Map.of());
            Path actor = c.dir().resolve("actor");
            Set<String> loraLayers = new LinkedHashSet<>();
            for (String layer : Lora.adapters(saved.model()).keySet())
                loraLayers.addAll(List.of(layer + ".weight", layer + "." + Lora.RIGHT, layer + "." + Lora.LEFT));
            try (Safetensors st = Safetensors.open(actor.resolve("model.safetensors"));
                 Safetensors ls = Safetensors.open(actor.resolve(Checkpoint.LORA_STATE))) {
                assertEquals(plain.model().namedParameters().keySet(), st.entries().keySet(),
                        "the Hugging Face weights: a plain GPT-2's tensors");
                assertEquals(loraLayers, ls.entries().keySet(), "the LoRA layers' weights and adapters");
                try (Scope s = Scope.open()) {
                    String w = "transformer.h.0.mlp.c_fc.weight";
                    Tensor fusedW = s.zeros(DType.F32, 8, 32), rawW = s.zeros(DType.F32, 8, 32);
                    st.read(w, fusedW);
                    ls.read(w, rawW);
                    assertArrayEquals(saved.model().namedParameters().get(w).value().toFloatArray(),
                            rawW.toFloatArray(), "lora.safetensors holds the unfused weight");
                    assertNotEquals(0.0, fusedW.sub(rawW).abs().sum().item(),
                            "the trained adapter is fused into the Hugging Face weight");
                }
            }
            Checkpoint read = Checkpoint.open(c.dir());
            read.verifyModel("actor", fresh.model());
            read.verifyOptimizer("actor", fresh.opt());
            read.loadModel("actor", fresh.model());
            read.loadOptimizer("actor", fresh.opt());
            assertArrayEquals(saved.store().data().toFloatArray(), fresh.store().data().toFloatArray(),
                    "every parameter, adapters and unfused weights included, as it was");
            // transformers' view of the folder: a plain model that computes what the trained LoRA model computes
            HfModel.loadWeights(plain.model(), "transformer", actor, Set.of());
            try (Scope s = Scope.open()) {
                Tensor ids = Tensor.ofInts(new int[] {1, 5, 9, 3, 14, 2}, 2, 3);
                double[] lora = fresh.model().forward(ids).toDoubleArray(), fused = plain.model().forward(ids)
                        .toDoubleArray();
                double diff = 0;
                for (int i = 0; i < lora.length; i++) diff = Math.max(diff, Math.abs(lora[i] - fused[i]));
                assertTrue(diff < 1e-5, "fused and LoRA logits differ by " + diff);
            }
            randomGradients(saved.store(), 999);
            randomGradients(fresh.store(), 999);
            saved.opt().step("test");
            fresh.opt().step("test");
            assertArrayEquals(saved.store().data().toFloatArray(), fresh.store().data().toFloatArray(),
                    "the next step is the same");

            Files.delete(actor.resolve(Checkpoint.LORA_STATE));
            var gone = assertThrows(Checkpoint.DamagedException.class, () -> Checkpoint.open(c.dir()));
            assertTrue(gone.getMessage().endsWith("actor/lora.safetensors is missing"), gone.getMessage());
        }
    }

    @Test
    void damageIsNamed() throws IOException {
        try (Trained t = Trained.of(1, 1, 2); Trained bigger = Trained.of(2, 1, 0)) {
            Checkpoint c = write(t, 2, Map.of());
            var missingTensor = assertThrows(Checkpoint.DamagedException.class,
                    () -> c.verifyModel("actor", bigger.model()));
            assertTrue(missingTensor.getMessage().contains("model.safetensors: no tensor 'transformer.h.1."),
                    missingTensor.getMessage());
            var otherGroups = assertThrows(Checkpoint.DamagedException.class,
                    () -> c.verifyOptimizer("actor", bigger.opt()));
            assertTrue(otherGroups.getMessage().contains("optimizer/actor.safetensors"), otherGroups.getMessage());

            Path opt = c.dir().resolve("optimizer/actor.safetensors");
            try (FileChannel ch = FileChannel.open(opt, StandardOpenOption.WRITE)) {
                ch.truncate(ch.size() - 4);
            }
            var cut = assertThrows(Checkpoint.DamagedException.class, () -> Checkpoint.open(c.dir()));
            assertTrue(cut.getMessage().contains("optimizer/actor.safetensors: ")
                    && cut.getMessage().contains("bytes, written with"), cut.getMessage());
            Files.delete(opt);
            var gone = assertThrows(Checkpoint.DamagedException.class, () -> Checkpoint.open(c.dir()));
            assertTrue(gone.getMessage().endsWith("optimizer/actor.safetensors is missing"), gone.getMessage());
            Files.delete(c.dir().resolve("manifest.json"));
            var none = assertThrows(Checkpoint.DamagedException.class, () -> Checkpoint.open(c.dir()));
            assertEquals(c.dir() + ": no manifest.json (incomplete checkpoint)", none.getMessage());
        }
    }

    @Test
    void anotherFormatVersionOrSettingIsRefusedByName() throws IOException {
        try (Trained t = Trained.of(1, 1, 1)) {
            Map<String, String> settings = new LinkedHashMap<>();
            settings.put("--seed", "1234");
            settings.put("--learning-rate", "0.001");
            Checkpoint c = write(t, 1, settings);
            c.requireSettings(settings);
            Map<String, String> other = new LinkedHashMap<>(settings);
            other.put("--learning-rate", "0.002");
            var e = assertThrows(IllegalArgumentException.class, () -> c.requireSettings(other));
            assertEquals("cannot resume step1 from " + c.dir() + ": --learning-rate was '0.001' there and is '0.002' "
                    + "now; run with the same settings, or without --resume to start the stage afresh", e.getMessage());
            other.remove("--learning-rate");
            assertThrows(IllegalArgumentException.class, () -> c.requireSettings(other));

            Path m = c.dir().resolve("manifest.json");
            ObjectNode manifest = (ObjectNode) JSON.readTree(m.toFile());
            manifest.put("format_version", 99);
            Files.write(m, JSON.writeValueAsBytes(manifest));
            var v = assertThrows(IllegalArgumentException.class, () -> Checkpoint.open(c.dir()));
            assertTrue(v.getMessage().contains("checkpoint format version 99"), v.getMessage());
        }
    }

    @Test
    void listingIsNewestFirstAndIgnoresHiddenFolders() throws IOException {
        for (String d : List.of("checkpoint-2", "checkpoint-10", "checkpoint-9", ".checkpoint-12.tmp-1", "other"))
            Files.createDirectories(tmp.resolve(d));
        assertEquals(List.of(10L, 9L, 2L),
                Checkpoint.list(tmp).stream().map(Checkpoint::stepOf).toList());
        assertNotEquals(List.of(), Checkpoint.list(tmp));
    }

    private static boolean hidden(Path dir) throws IOException {
        try (var s = Files.list(dir)) {
            return s.anyMatch(p -> p.getFileName().toString().startsWith("."));
        }
    }
}
