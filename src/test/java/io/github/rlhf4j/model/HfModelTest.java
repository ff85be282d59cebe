package io.github.rlhf4j.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.github.rlhf4j.nn.ParameterStore;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.tensor.Scope;
import io.github.rlhf4j.tensor.Tensor;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Safetensors and model directories: round trips, shards, dtypes, and every kind of bad input named. */
class HfModelTest {
    static final String GPT2 = """
            {"model_type": "gpt2", "vocab_size": 61, "n_positions": 32, "n_embd": 16, "n_layer": 2, "n_head": 4,
             "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5, "initializer_range": 0.02,
             "bos_token_id": 60, "eos_token_id": 60, "architectures": ["GPT2LMHeadModel"], "some_future_field": 7}""";

    @TempDir
    Path tmp;

    static ConfigJson config(String json) {
        return ConfigJson.parse("test config.json", json);
    }

    private Path savedTiny(String name, DType dtype, long shardBytes) {
        Path out = tmp.resolve(name);
        try (HfModel m = HfModel.random(config(GPT2), Device.cpu(), DType.F32, 3)) {
            HfModel.save(m.model(), m.configJson(), out, null, dtype, shardBytes);
        }
        return out;
    }

    @Test
    void roundTripIsBitExactAndKeepsUnknownConfigFields() throws IOException {
        Path out = tmp.resolve("m");
        try (HfModel a = HfModel.random(config(GPT2), Device.cpu(), DType.F32, 3)) {
            a.save(out, DType.F32);
            try (HfModel b = HfModel.load(out, Device.cpu(), DType.F32)) {
                assertArrayEquals(a.parameters().data().toFloatArray(), b.parameters().data().toFloatArray());
                assertEquals(7, b.configJson().integer("some_future_field"));
                assertEquals("float32", b.configJson().string("torch_dtype"));
                // save again from the loaded model: same bytes
                Path again = tmp.resolve("again");
                b.save(again, DType.F32);
                assertArrayEquals(Files.readAllBytes(out.resolve("model.safetensors")),
                        Files.readAllBytes(again.resolve("model.safetensors")));
            }
        }
        try (Safetensors st = Safetensors.open(out.resolve("model.safetensors"))) {
            assertFalse(st.entries().containsKey("lm_head.weight"), "tied head not written, as transformers does");
            assertTrue(st.entries().containsKey("transformer.h.1.attn.c_attn.weight"));
            assertEquals("F32", st.entries().get("transformer.wte.weight").dtype());
        }
        try (var files = Files.list(tmp)) {
            assertEquals(0, files.filter(p -> p.getFileName().toString().startsWith(".")).count(), "no temp dirs left");
        }
    }

    @Test
    void shardedRoundTrip() throws IOException {
        Path one = savedTiny("one", DType.F32, 5L << 30), many = savedTiny("many", DType.F32, 4096);
        assertTrue(Files.exists(many.resolve("model.safetensors.index.json")));
        try (var files = Files.list(many)) {
            assertTrue(files.filter(p -> p.toString().endsWith(".safetensors")).count() > 3);
        }
        try (HfModel a = HfModel.load(one, Device.cpu(), DType.F32); HfModel b = HfModel.load(many, Device.cpu(), DType.F32)) {
            assertArrayEquals(a.parameters().data().toFloatArray(), b.parameters().data().toFloatArray());
        }
    }

    @Test
    void bf16AndF16CheckpointsLoadAsRoundedWeights() {
        Path f32 = savedTiny("f32", DType.F32, 5L << 30);
        for (DType half : new DType[] {DType.BF16, DType.F16}) {
            Path h = savedTiny("h" + half, half, 5L << 30);
            try (HfModel a = HfModel.load(f32, Device.cpu(), DType.F32); HfModel b = HfModel.load(h, Device.cpu(), DType.F32);
                 Scope s = Scope.open()) {
                float[] want = a.parameters().data().to(half).to(DType.F32).toFloatArray();
                assertArrayEquals(want, b.parameters().data().toFloatArray(), half + " weights are the rounded f32 ones");
            }
        }
    }

    @Test
    void baseAndRewardCheckpointsLoadIntoEachOther() {
        Path causal = savedTiny("causal", DType.F32, 5L << 30);
        // a reward model initialised from the causal LM: rwtranrsformer.* from transformer.*, v_head fresh
        RewardModel rm = RewardModel.of(Models.config(config(GPT2)));
        try (ParameterStore store = ParameterStore.allocate(rm, Device.cpu(), 1)) {
            var report = HfModel.loadWeights(rm, "transformer", causal, Set.of("v_head.weight"));
            assertEquals(java.util.List.of("v_head.weight"), report.notInCheckpoint());
            Path rmDir = tmp.resolve("rm");
            HfModel.save(rm, config(GPT2), rmDir, null, DType.F32, 5L << 30);
            // and back into a causal LM: the v_head is skipped, the base weights are the same
            try (HfModel back = HfModel.load(rmDir, Device.cpu(), DType.F32); HfModel orig = HfModel.load(causal, Device.cpu(), DType.F32)) {
                assertArrayEquals(orig.parameters().data().toFloatArray(), back.parameters().data().toFloatArray());
            }
        }
    }

    // ---- bad input ----------------------------------------------------------------------------------------------

    private static String message(Runnable r) {
        return assertThrows(ModelFormatException.class, r::run).getMessage();
    }

    private static void assertMentions(String msg, String... parts) {
        for (String p : parts) assertTrue(msg.contains(p), "message '" + msg + "' should mention '" + p + "'");
    }

    /** Rewrites the header of dir/model.safetensors through {@code edit}, keeping the data. */
    private static void editHeader(Path dir, Consumer<ObjectNode> edit) throws IOException {
        Path f = dir.resolve("model.safetensors");
        byte[] all = Files.readAllBytes(f);
        long n = ByteBuffer.wrap(all, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        ObjectMapper json = new ObjectMapper();
        ObjectNode h = (ObjectNode) json.readTree(new String(all, 8, (int) n, StandardCharsets.UTF_8));
        edit.accept(h);
        byte[] nh = json.writeValueAsBytes(h);
        ByteBuffer out = ByteBuffer.allocate(8 + nh.length + all.length - 8 - (int) n).order(ByteOrder.LITTLE_ENDIAN);
        out.putLong(nh.length).put(nh).put(all, 8 + (int) n, all.length - 8 - (int) n);
        Files.write(f, out.array());
    }

    @Test
    void missingAndTruncatedFilesAreNamed() throws IOException {
        Path d = savedTiny("t", DType.F32, 5L << 30);
        Path f = d.resolve("model.safetensors");
        byte[] all = Files.readAllBytes(f);
        Files.write(f, java.util.Arrays.copyOf(all, all.length - 100));
        assertMentions(message(() -> HfModel.load(d, Device.cpu(), DType.F32)), f.toString(), "outside");
        Files.write(f, java.util.Arrays.copyOf(all, 5));
        assertMentions(message(() -> HfModel.load(d, Device.cpu(), DType.F32)), f.toString(), "truncated");
        Files.delete(f);
        assertMentions(message(() -> HfModel.load(d, Device.cpu(), DType.F32)), "no model.safetensors");
        Files.write(d.resolve("pytorch_model.bin"), new byte[] {1, 2, 3});
        assertMentions(message(() -> HfModel.load(d, Device.cpu(), DType.F32)), "pytorch_model.bin", "safetensors",
                "save_pretrained");
        assertMentions(message(() -> HfModel.load(tmp.resolve("nowhere"), Device.cpu(), DType.F32)), "config.json",
                "not found");
    }

    @Test
    void headersThatLieAreRefused() throws IOException {
        Path d = savedTiny("lie1", DType.F32, 5L << 30);
        editHeader(d, h -> ((ObjectNode) h.get("transformer.wpe.weight")).putArray("shape").add(33).add(16));
        assertMentions(message(() -> HfModel.load(d, Device.cpu(), DType.F32)), "transformer.wpe.weight", "bytes");
        Path d2 = savedTiny("lie2", DType.F32, 5L << 30);
        editHeader(d2, h -> {
            var off = (com.fasterxml.jackson.databind.node.ArrayNode) h.get("transformer.ln_f.bias").get("data_offsets");
            long b = off.get(0).asLong();
            off.set(0, b - 8);
            off.set(1, off.get(1).asLong() - 8);
        });
        assertMentions(message(() -> HfModel.load(d2, Device.cpu(), DType.F32)), "overlapping");
        Path d3 = savedTiny("lie3", DType.F32, 5L << 30);
        editHeader(d3, h -> ((ObjectNode) h.get("transformer.wte.weight")).put("dtype", "F8_E4M3"));
        assertMentions(message(() -> HfModel.load(d3, Device.cpu(), DType.F32)), "transformer.wte.weight");
        Path d4 = savedTiny("lie4", DType.F32, 5L << 30);
        editHeader(d4, h -> h.remove("transformer.h.0.ln_1.weight"));
        assertMentions(message(() -> HfModel.load(d4, Device.cpu(), DType.F32)), "hole");
        Path d5 = savedTiny("lie5", DType.F32, 5L << 30);
        editHeader(d5, h -> h.set("transformer.h.0.ln_1.weightx", h.remove("transformer.h.0.ln_1.weight")));
        assertMentions(message(() -> HfModel.load(d5, Device.cpu(), DType.F32)), "transformer.h.0.ln_1.weight");
    }

    @Test
    void badConfigsNameTheField() throws IOException {
        Path d = savedTiny("c", DType.F32, 5L << 30);
        Path cfg = d.resolve("config.json");
        Files.writeString(cfg, GPT2.replace("\"gpt2\"", "\"bert\""));
        assertMentions(message(() -> HfModel.load(d, Device.cpu(), DType.F32)), cfg.toString(), "model_type", "bert");
        Files.writeString(cfg, GPT2.replace("\"n_head\": 4,", ""));
        assertMentions(message(() -> HfModel.load(d, Device.cpu(), DType.F32)), cfg.toString(), "n_head", "missing");
        Files.writeString(cfg, GPT2.replace("\"n_head\": 4", "\"n_head\": 5"));
        assertMentions(message(() -> HfModel.load(d, Device.cpu(), DType.F32)), cfg.toString(), "n_head");
        Files.writeString(cfg, GPT2.replace("\"gelu_new\"", "\"relu\""));
        assertMentions(message(() -> HfModel.load(d, Device.cpu(), DType.F32)), "activation_function", "relu");
        Files.writeString(cfg, "{\"model_type\": \"gpt2\",\n \"vocab_size\": }");
        assertMentions(message(() -> HfModel.load(d, Device.cpu(), DType.F32)), cfg + ":2:", "JSON");
    }

    @Test
    void contextLimitIsNamed() {
        try (HfModel m = HfModel.random(config(GPT2), Device.cpu(), DType.F32, 3); Scope s = Scope.open()) {
            Tensor ids = Tensor.ofInts(new int[33], 1, 33);
            var e = assertThrows(IllegalArgumentException.class, () -> m.model().forward(ids));
            assertMentions(e.getMessage(), "33", "32");
        }
    }
}
