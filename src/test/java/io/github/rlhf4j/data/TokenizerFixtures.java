package io.github.rlhf4j.data;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.github.rlhf4j.data.ChatTemplate.Message;
import io.github.rlhf4j.testing.Fixtures;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The tokenizers the data tests run on: the real GPT-2 tokenizer from the shared data folder, and the tiny ones that
 * src/test/python/make_tokenizer_fixtures.py trained and saved with transformers, each with transformers' expected
 * outputs ({@code fixtures/tokenizers/<name>.expected.json}).
 */
final class TokenizerFixtures {
    private TokenizerFixtures() {}

    static final List<String> ALL = List.of("gpt2", "opt_style", "llama_style", "qwen2_style");
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Map<String, Tokenizer> LOADED = new ConcurrentHashMap<>();

    /**
     * The shared data folder: system property {@code rlhf4j.sharedData}, else {@code <rlhf4j.shared>/data} (set by
     * the build), else {@code ../shared/data} from the working folder, else {@code /work/shared/data}.
     */
    static Path sharedData() {
        List<Path> candidates = new ArrayList<>();
        String p = System.getProperty("rlhf4j.sharedData");
        if (p != null) candidates.add(Path.of(p));
        String shared = System.getProperty("rlhf4j.shared");
        if (shared != null) candidates.add(Path.of(shared, "data"));
        candidates.add(Path.of("..", "shared", "data"));
        candidates.add(Path.of("/work/shared/data"));
        for (Path c : candidates)
            if (Files.isDirectory(c.resolve("tokenizers"))) return c;
        return null;
    }

    /** The model folder of a fixture tokenizer; skips the test (visibly) when GPT-2's shared copy is absent. */
    static Path dir(String name) {
        if (name.equals("gpt2")) {
            Path data = sharedData();
            Path gpt2 = data == null ? null : data.resolve("tokenizers/gpt2");
            assumeTrue(gpt2 != null && Files.isRegularFile(gpt2.resolve("tokenizer.json")),
                    "GPT-2 tokenizer not found (looked in -Drlhf4j.sharedData, -Drlhf4j.shared/data, ../shared/data,"
                            + " /work/shared/data): skipping the GPT-2 comparison");
            return gpt2;
        }
        URL url = TokenizerFixtures.class.getResource("/fixtures/tokenizers/" + name);
        if (url == null) throw new IllegalStateException("missing test fixture /fixtures/tokenizers/" + name);
        try {
            return Path.of(url.toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    /** One loaded tokenizer per fixture for the whole test run (loading GPT-2 takes a few hundred ms). */
    static Tokenizer tokenizer(String name) {
        Path d = dir(name);
        return LOADED.computeIfAbsent(name, n -> Tokenizer.load(d));
    }

    static JsonNode expected(String name) {
        return Fixtures.load("tokenizers/" + name + ".expected.json");
    }

    static int[] ints(JsonNode list) {
        int[] out = new int[list.size()];
        for (int i = 0; i < out.length; i++) out[i] = list.get(i).asInt();
        return out;
    }

    /** A list of lists, flattened row-major. */
    static int[] flat(JsonNode rows) {
        List<Integer> out = new ArrayList<>();
        rows.forEach(r -> r.forEach(x -> out.add(x.asInt())));
        return out.stream().mapToInt(Integer::intValue).toArray();
    }

    static List<String> strings(JsonNode list) {
        List<String> out = new ArrayList<>();
        list.forEach(x -> out.add(x.asText()));
        return out;
    }

    static List<Message> messages(JsonNode list) {
        List<Message> out = new ArrayList<>();
        list.forEach(m -> out.add(new Message(m.get("role").asText(), m.get("content").asText())));
        return out;
    }

    /** JSON as plain Java maps and lists, as a template sees variables. */
    @SuppressWarnings("unchecked")
    static Map<String, Object> map(JsonNode object) {
        return JSON.convertValue(object, Map.class);
    }

    /** A string for messages: quoted and escaped, cut to 60 characters. */
    static String show(String s) {
        String q = s.length() > 60 ? s.substring(0, 60) + "..." : s;
        return '"' + q.replace("\n", "\\n").replace("\t", "\\t") + '"';
    }
}
