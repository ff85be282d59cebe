package io.github.rlhf4j.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.rlhf4j.data.Tokenizer;
import io.github.rlhf4j.model.ConfigJson;
import io.github.rlhf4j.model.HfModel;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.serve.TestModels;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** init-model, generate and the help of every command, run as {@code bin/rlhf4j} runs them. */
class CommandsTest {
    @TempDir
    static Path tmp;

    static Path model;

    @BeforeAll
    static void makeModel() {
        model = TestModels.make(tmp.resolve("opt-style-gpt2"), "opt_style", 128, 11);
    }

    @Test
    void convertRewritesAModelShardedAndInBf16() throws Exception {
        Path src = Path.of(CommandsTest.class.getResource("/fixtures/models/llama_gqa_untied").toURI());
        Path out = tmp.resolve("converted");
        Cli r = Cli.run("convert", "--model", src.toString(), "--out", out.toString(), "--dtype", "bf16",
                "--max-shard-size", "20KB");
        org.junit.jupiter.api.Assertions.assertEquals(0, r.exit(), r.err());
        org.junit.jupiter.api.Assertions.assertTrue(Files.exists(out.resolve("model.safetensors.index.json")));
        try (var a = io.github.rlhf4j.model.HfModel.load(src, io.github.rlhf4j.runtime.Device.cpu(),
                io.github.rlhf4j.runtime.DType.F32, false);
             var b = io.github.rlhf4j.model.HfModel.load(out, io.github.rlhf4j.runtime.Device.cpu(),
                     io.github.rlhf4j.runtime.DType.F32, false);
             var s = io.github.rlhf4j.tensor.Scope.open()) {
            org.junit.jupiter.api.Assertions.assertArrayEquals(
                    a.parameters().data().to(io.github.rlhf4j.runtime.DType.BF16).to(io.github.rlhf4j.runtime.DType.F32).toFloatArray(),
                    b.parameters().data().toFloatArray());
            org.junit.jupiter.api.Assertions.assertEquals("bfloat16", b.configJson().string(
                    b.configJson().has("dtype") ? "dtype" : "torch_dtype"));
        }
        Cli again = Cli.run("convert", "--model", src.toString(), "--out", out.toString());
        org.junit.jupiter.api.Assertions.assertNotEquals(0, again.exit());
        org.junit.jupiter.api.Assertions.assertTrue(again.err().contains("--force"), again.err());
    }

    @Test
    void initModelWritesTheSeededRandomModelWithTheTokenizer() throws IOException {
        Path config = tmp.resolve("init.json"), out = tmp.resolve("init");
        String json = TestModels.config("opt_style", 64);
        Files.writeString(config, json);
        Path tok = TestModels.tokenizerFixture("opt_style");
        Cli r = Cli.run("init-model", "--config", config.toString(), "--out", out.toString(), "--seed", "7",
                "--tokenizer", tok.toString());
        assertEquals(0, r.exit(), r.toString());
        try (HfModel loaded = HfModel.load(out, Device.cpu(), DType.F32);
             HfModel fresh = HfModel.random(ConfigJson.parse("x", json), Device.cpu(), DType.F32, 7);
             Tokenizer t = Tokenizer.load(out)) {
            assertArrayEquals(fresh.parameters().data().toFloatArray(), loaded.parameters().data().toFloatArray());
            long n = loaded.parameters().parameterCount();
            assertTrue(r.out().contains(String.format(Locale.ROOT, "gpt2: %,d parameters", n)), r.toString());
            assertTrue(r.out().contains(out.toAbsolutePath().toString()), r.toString());
            assertEquals(700, t.vocabSize());
        }
        assertArrayEquals(Files.readAllBytes(tok.resolve("tokenizer.json")), Files.readAllBytes(out.resolve("tokenizer.json")));
        assertArrayEquals(Files.readAllBytes(tok.resolve("tokenizer_config.json")),
                Files.readAllBytes(out.resolve("tokenizer_config.json")));
    }

    @Test
    void initModelInBf16RoundsTheSameWeights() throws IOException {
        Path config = tmp.resolve("bf16.json"), out = tmp.resolve("bf16");
        String json = TestModels.config("opt_style", 32);
        Files.writeString(config, json);
        Cli r = Cli.run("init-model", "--config", config.toString(), "--out", out.toString(), "--dtype", "bf16");
        assertEquals(0, r.exit(), r.toString());
        assertEquals("bfloat16", ConfigJson.read(out.resolve("config.json")).string("torch_dtype"));
        try (HfModel loaded = HfModel.load(out, Device.cpu(), DType.F32);
             HfModel fresh = HfModel.random(ConfigJson.parse("x", json), Device.cpu(), DType.F32, 42)) {
            float[] a = fresh.parameters().data().toFloatArray(), b = loaded.parameters().data().toFloatArray();
            for (int i = 0; i < a.length; i++)
                assertTrue(Math.abs(a[i] - b[i]) <= Math.abs(a[i]) * 0x1p-8, "element " + i + ": " + a[i] + " vs " + b[i]);
        }
    }

    @Test
    void initModelRefusesToReplaceADirectoryWithoutForce() throws IOException {
        Path config = tmp.resolve("force.json"), out = tmp.resolve("force");
        Files.writeString(config, TestModels.config("opt_style", 32));
        Files.createDirectories(out);
        Files.writeString(out.resolve("precious.txt"), "keep me");
        Cli r = Cli.run("init-model", "--config", config.toString(), "--out", out.toString());
        assertEquals(2, r.exit(), r.toString());
        assertTrue(r.err().contains("--force"), r.toString());
        assertTrue(Files.exists(out.resolve("precious.txt")));
        r = Cli.run("init-model", "--config", config.toString(), "--out", out.toString(), "--force");
        assertEquals(0, r.exit(), r.toString());
        assertTrue(Files.exists(out.resolve("model.safetensors")) && !Files.exists(out.resolve("precious.txt")));
    }

    @Test
    void initModelNamesTheFileAndFieldOfABadConfig() throws IOException {
        Path config = tmp.resolve("bad.json");
        Files.writeString(config, "{\"model_type\": \"bert\", \"vocab_size\": 10}");
        Cli r = Cli.run("init-model", "--config", config.toString(), "--out", tmp.resolve("never").toString());
        assertEquals(1, r.exit(), r.toString());
        assertTrue(r.err().contains(config.toString()) && r.err().contains("model_type"), r.toString());
        assertTrue(!Files.exists(tmp.resolve("never")));
    }

    @Test
    void generatePrintsTheGreedyTextOfGenerator() {
        String prompt = "Hello, how are you today?";
        Cli r = Cli.run("generate", "--model", model.toString(), "--prompt", prompt, "--max-new-tokens", "12");
        assertEquals(0, r.exit(), r.toString());
        try (HfModel m = HfModel.load(model, Device.cpu(), DType.F32); Tokenizer t = Tokenizer.load(model)) {
            TestModels.Reference ref = TestModels.greedy(m, t, t.encode(prompt), 12, false);
            assertTrue(ref.tokens().length > 3, "a reply too short to test streaming: " + ref.tokens().length);
            assertEquals(ref.text() + "\n", r.out());
            assertTrue(r.err().contains(ref.tokens().length + " tokens in ") && r.err().contains("tokens/s")
                    && r.err().contains("prefill") && r.err().contains(t.encode(prompt).length + " prompt tokens"),
                    r.toString());
        }
    }

    @Test
    void generateRunsSeveralPromptsAsOneBatchWithTheTextsOfSinglePrompts() {
        String a = "The capital of France", b = "Human: hi";
        Cli r = Cli.run("generate", "--model", model.toString(), "--prompt", a, "--prompt", b, "--max-new-tokens", "9",
                "--ignore-eos", "--num-threads", "1");
        assertEquals(0, r.exit(), r.toString());
        try (HfModel m = HfModel.load(model, Device.cpu(), DType.F32); Tokenizer t = Tokenizer.load(model)) {
            String ra = TestModels.greedy(m, t, t.encode(a), 9, true).text();
            String rb = TestModels.greedy(m, t, t.encode(b), 9, true).text();
            assertEquals("### 1/2\n" + ra + "\n### 2/2\n" + rb + "\n", r.out());
            assertTrue(r.err().contains("18 tokens") && r.err().contains("batch 2"), r.toString());
        }
    }

    @Test
    void samplingIsReproducibleForASeed() {
        String[] args = {"generate", "--model", model.toString(), "--prompt", "Once upon a time", "--max-new-tokens",
                "16", "--ignore-eos", "--temperature", "1.5", "--top-k", "0", "--seed", "5"};
        Cli first = Cli.run(args), again = Cli.run(args);
        assertEquals(0, first.exit(), first.toString());
        assertEquals(first.out(), again.out());
        Cli greedy = Cli.run("generate", "--model", model.toString(), "--prompt", "Once upon a time",
                "--max-new-tokens", "16", "--ignore-eos");
        assertNotEquals(greedy.out(), first.out(), "sampling at temperature 1.5 gave the greedy text");
    }

    @Test
    void generateRejectsContradictoryOrBadOptionsNamingThem() {
        Cli r = Cli.run("generate", "--model", model.toString(), "--prompt", "x", "--greedy", "--temperature", "0.7");
        assertEquals(2, r.exit(), r.toString());
        assertTrue(r.err().contains("--greedy cannot be combined"), r.toString());
        r = Cli.run("generate", "--model", model.toString(), "--prompt", "x", "--top-p", "1.5");
        assertEquals(2, r.exit(), r.toString());
        assertTrue(r.err().contains("--top-p = 1.5"), r.toString());
        r = Cli.run("generate", "--model", model.toString(), "--prompt", "x", "--max-new-tokens", "500");
        assertEquals(1, r.exit(), r.toString());
        assertTrue(r.err().contains("exceeds the model's context of 128"), r.toString());
        r = Cli.run("generate", "--model", tmp.resolve("missing").toString(), "--prompt", "x");
        assertEquals(1, r.exit(), r.toString());
        assertTrue(r.err().contains("missing"), r.toString());
    }

    @Test
    void everyCommandHasHelpWithExamplesAndDefaults() {
        String[][] cases = {
                {"init-model", "--seed=N", "(default: 42)", "--dtype=f32|bf16|f16", "(default: f32)"},
                {"generate", "--max-new-tokens=N", "(default: 128)", "--seed=S", "--top-p=P", "--ignore-eos"},
                {"chat", "--path, --model=DIR", "(default: 128)", "clear", "quit"},
                {"serve", "--host=<host>", "(default: 127.0.0.1", "(default: 8000)", "--max-tokens-limit=N", "1024)",
                        "(default: 1048576)", "curl"},
        };
        for (String[] c : cases) {
            Cli r = Cli.run("help", c[0]);
            assertEquals(0, r.exit(), r.toString());
            assertTrue(r.out().contains("Examples:"), r.toString());
            for (int i = 1; i < c.length; i++) assertTrue(r.out().contains(c[i]), c[0] + " help lacks " + c[i] + ":\n" + r.out());
            // every example is a line of its own (picocli wraps lines over 80 columns)
            String examples = r.out().substring(r.out().indexOf("Examples:") + "Examples:".length()).strip();
            for (String line : examples.split("\n"))
                assertTrue(line.startsWith("bin/rlhf4j") || line.startsWith("  ") || line.startsWith("printf")
                        || line.startsWith("curl"), c[0] + " help has a wrapped example line: '" + line + "'");
        }
        Cli top = Cli.run("--help");
        for (String c : new String[] {"init-model", "generate", "chat", "serve"}) assertTrue(top.out().contains(c), top.out());
    }
}
