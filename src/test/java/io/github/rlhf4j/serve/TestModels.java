package io.github.rlhf4j.serve;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.github.rlhf4j.data.Tokenizer;
import io.github.rlhf4j.generate.GenerationConfig;
import io.github.rlhf4j.generate.Generator;
import io.github.rlhf4j.model.ConfigJson;
import io.github.rlhf4j.model.HfModel;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * Tiny random GPT-2 model folders paired with the committed tokenizer fixtures (fixtures/tokenizers/&lt;name&gt;/), for
 * the command and server tests; and the plain greedy reference they are checked against: {@link Generator} on the
 * tokenizer's ids, decoded by the tokenizer in one call.
 */
public final class TestModels {
    private TestModels() {}

    /** The tokenizer fixture folder {@code name} (opt_style: no chat template; qwen2_style: ChatML template). */
    public static Path tokenizerFixture(String name) {
        try {
            return Path.of(TestModels.class.getResource("/fixtures/tokenizers/" + name).toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The JSON of a tiny GPT-2 config whose vocabulary and EOS fit the tokenizer fixture {@code name}. */
    public static String config(String name, int positions) {
        try {
            JsonNode c = new ObjectMapper().readTree(tokenizerFixture(name).resolve("config.json").toFile());
            return """
                    {"model_type": "gpt2", "vocab_size": %d, "n_positions": %d, "n_embd": 32, "n_layer": 2, "n_head": 4,
                     "initializer_range": 0.2, "bos_token_id": %d, "eos_token_id": %d}"""
                    .formatted(c.get("vocab_size").asInt(), positions, c.get("bos_token_id").asInt(),
                            c.get("eos_token_id").asInt());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * Writes a random model with the tokenizer fixture's files to {@code out}. The initializer range is large (0.2)
     * so that greedy replies vary from token to token instead of repeating one.
     */
    public static Path make(Path out, String tokenizer, int positions, long seed) {
        ConfigJson json = ConfigJson.parse("test config.json", config(tokenizer, positions));
        try (HfModel m = HfModel.random(json, Device.cpu(), DType.F32, seed)) {
            HfModel.save(m.model(), json, out, tokenizerFixture(tokenizer), DType.F32, 1L << 30);
        }
        return out;
    }

    /** A greedy reply computed without the code under test: Generator's tokens, decoded in one call. */
    public record Reference(int[] tokens, String text, boolean eos) {}

    /** Greedy decoding of {@code prompt} through {@link Generator}, ending at the tokenizer's stop ids. */
    public static Reference greedy(HfModel model, Tokenizer tok, int[] prompt, int maxNewTokens, boolean ignoreEos) {
        GenerationConfig c = new GenerationConfig(maxNewTokens, false, 1, 0, 1, 1, tok.stopIds(), tok.padId(),
                ignoreEos, 0);
        Generator.Result r = new Generator(model.model()).generate(prompt, c, null);
        int[] t = r.tokens()[0];
        boolean eos = r.finish()[0] == Generator.Finish.EOS;
        return new Reference(t, tok.decode(eos ? Arrays.copyOf(t, t.length - 1) : t, true), eos);
    }
}
