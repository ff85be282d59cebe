package io.github.rlhf4j.data;

import static io.github.rlhf4j.data.TokenizerFixtures.expected;
import static io.github.rlhf4j.data.TokenizerFixtures.flat;
import static io.github.rlhf4j.data.TokenizerFixtures.ints;
import static io.github.rlhf4j.data.TokenizerFixtures.show;
import static io.github.rlhf4j.data.TokenizerFixtures.strings;
import static io.github.rlhf4j.data.TokenizerFixtures.tokenizer;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.github.rlhf4j.data.Tokenizer.Batch;
import io.github.rlhf4j.data.Tokenizer.BatchOptions;
import io.github.rlhf4j.data.Tokenizer.Padding;
import io.github.rlhf4j.data.Tokenizer.Truncation;
import io.github.rlhf4j.model.ModelFormatException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.FieldSource;

/** Tokenizer against transformers' AutoTokenizer on GPT-2 and on tiny OPT-, Llama- and Qwen2-style tokenizers. */
class TokenizerTest {
    static final List<String> NAMES = TokenizerFixtures.ALL;

    @ParameterizedTest
    @FieldSource("NAMES")
    void encodeMatchesTransformersWithAndWithoutSpecialTokens(String name) {
        Tokenizer tok = tokenizer(name);
        for (JsonNode c : expected(name).get("cases")) {
            String text = c.get("text").asText();
            assertArrayEquals(ints(c.get("ids")), tok.encode(text), () -> name + ": encode(" + show(text) + ")");
            assertArrayEquals(ints(c.get("ids_plain")), tok.encode(text, false),
                    () -> name + ": encode(" + show(text) + ", add_special_tokens=False)");
        }
    }

    @ParameterizedTest
    @FieldSource("NAMES")
    void decodeMatchesTransformersWithAndWithoutSpecialTokens(String name) {
        Tokenizer tok = tokenizer(name);
        for (JsonNode c : expected(name).get("cases")) {
            int[] ids = ints(c.get("ids"));
            assertEquals(c.get("decode").asText(), tok.decode(ids, false), () -> name + ": decode of " + show(
                    c.get("text").asText()));
            assertEquals(c.get("decode_skip").asText(), tok.decode(ids, true),
                    () -> name + ": decode(skip_special_tokens=True) of " + show(c.get("text").asText()));
        }
    }

    @ParameterizedTest
    @FieldSource("NAMES")
    void vocabularyTokensAndSpecialIdsMatchTransformers(String name) {
        Tokenizer tok = tokenizer(name);
        JsonNode e = expected(name);
        assertEquals(e.get("len").asInt(), tok.vocabSize(), name + ": len(tokenizer)");
        e.get("tokens").properties().forEach(t -> {
            int id = Integer.parseInt(t.getKey());
            assertEquals(t.getValue().asText(), tok.token(id), name + ": convert_ids_to_tokens(" + id + ")");
            assertEquals(id, tok.tokenId(t.getValue().asText()), name + ": id of " + show(t.getValue().asText()));
        });
        int[] special = ints(e.get("added_special_ids"));
        for (int id = 0; id < tok.vocabSize(); id++) {
            boolean want = Arrays.binarySearch(special, id) >= 0;
            assertEquals(want, tok.isSpecial(id), name + ": isSpecial(" + id + ")");
        }
        assertEquals(null, tok.token(tok.vocabSize() + 5));
        assertEquals(-1, tok.tokenId("no such token \u0000"));
    }

    @ParameterizedTest
    @FieldSource("NAMES")
    void bosEosPadAndStopIdsFollowTheTokenizerThenTheConfigs(String name) {
        Tokenizer tok = tokenizer(name);
        JsonNode e = expected(name);
        assertEquals(e.get("bos_id").asInt(), tok.bosId(), name + ": bos");
        assertEquals(e.get("eos_id").asInt(), tok.eosId(), name + ": eos");
        assertEquals(e.get("pad_id").asInt(), tok.padId(), name + ": pad");
        assertArrayEquals(ints(e.get("stop_ids")), tok.stopIds(), name + ": stop ids");
    }

    @Test
    void specialTokensAreAddedAsEachFamilyDoes() {
        // What the fixtures above check case by case, stated once: OPT prepends </s>, Llama <s>, Qwen2 nothing.
        Tokenizer opt = tokenizer("opt_style"), llama = tokenizer("llama_style"), qwen = tokenizer("qwen2_style");
        assertArrayEquals(new int[] {opt.tokenId("</s>")}, opt.encode(""));
        assertArrayEquals(new int[] {llama.tokenId("<s>")}, llama.encode(""));
        assertArrayEquals(new int[] {}, qwen.encode(""));
        assertArrayEquals(qwen.encode("Hello world", false), qwen.encode("Hello world"));
    }

    @ParameterizedTest
    @FieldSource("NAMES")
    void batchesArePaddedAndTruncatedAsTransformersDoes(String name) {
        Tokenizer tok = tokenizer(name);
        JsonNode b = expected(name).get("batch");
        List<String> texts = strings(b.get("texts"));
        int limit = b.get("limit").asInt();
        check(name + " left padding", b.get("left"),
                tok.encodeBatch(texts,
                        new BatchOptions(Padding.LEFT, Integer.MAX_VALUE, false, Truncation.ERROR, true)));
        check(name + " right padding to max_length=" + limit + " with truncation", b.get("right_max_length"),
                tok.encodeBatch(texts, BatchOptions.forTraining(limit)));
        check(name + " left padding, left truncation to " + limit, b.get("left_truncate_left"),
                tok.encodeBatch(texts, new BatchOptions(Padding.LEFT, limit, false, Truncation.LEFT, true)));
    }

    private static void check(String what, JsonNode expected, Batch got) {
        int rows = expected.get("input_ids").size();
        assertEquals(rows, got.rows(), what + ": rows");
        assertEquals(expected.get("input_ids").get(0).size(), got.columns(), what + ": columns");
        assertArrayEquals(flat(expected.get("input_ids")), got.ids(), what + ": input_ids");
        assertArrayEquals(flat(expected.get("attention_mask")), got.attentionMask(), what + ": attention_mask");
        for (int r = 0; r < rows; r++) {
            int ones = 0;
            for (JsonNode m : expected.get("attention_mask").get(r)) ones += m.asInt();
            assertEquals(ones, got.lengths()[r], what + ": length of row " + r);
            assertEquals(ones, got.tokens(r).length, what + ": tokens of row " + r);
        }
    }

    @Test
    void aPromptOverTheLimitFailsNamingItsLengthAndTheLimit() {
        Tokenizer tok = tokenizer("opt_style");
        List<String> texts = List.of("Hi", "a somewhat longer prompt that will not fit", "ok");
        int len = tok.encode(texts.get(1)).length;
        var e = assertThrows(IllegalArgumentException.class,
                () -> tok.encodeBatch(texts, BatchOptions.forGeneration(5)));
        assertTrue(e.getMessage().contains("text 1 ") && e.getMessage().contains(len + " tokens")
                && e.getMessage().contains("limit of 5"), e.getMessage());
    }

    @Test
    void aBatchWithoutLimitFitsEveryPromptAndPadsWithThePadId() {
        Tokenizer tok = tokenizer("llama_style");
        Batch b = tok.encodeBatch(List.of("Hi", "Hello world, how are you?"), BatchOptions.forGeneration(1000));
        int shortLen = tok.encode("Hi").length;
        for (int c = 0; c < b.columns() - shortLen; c++) {
            assertEquals(tok.padId(), b.ids()[c], "left padding uses padId");
            assertEquals(0, b.attentionMask()[c]);
        }
        assertArrayEquals(tok.encode("Hi"), b.tokens(0));
        assertArrayEquals(tok.encode("Hello world, how are you?"), b.tokens(1));
    }

    // ------------------------------------------------------------------------------------------------ bad input

    private static Path copy(String name, Path to) throws IOException {
        Path from = TokenizerFixtures.dir(name);
        try (var files = Files.list(from)) {
            for (Path f : files.toList()) Files.copy(f, to.resolve(f.getFileName()));
        }
        return to;
    }

    @Test
    void tokenizerJsonThatIsNotJsonFailsNamingTheFileAndLine(@TempDir Path tmp) throws IOException {
        Path dir = copy("opt_style", tmp);
        Files.writeString(dir.resolve("tokenizer.json"), "{\n  \"version\": \"1.0\",\n  oops\n}");
        var e = assertThrows(ModelFormatException.class, () -> Tokenizer.load(dir));
        assertTrue(e.getMessage().startsWith(dir.resolve("tokenizer.json") + ":3:"), e.getMessage());
    }

    @Test
    void tokenizerJsonTheLibraryRejectsFailsWithTheLibrarysReason(@TempDir Path tmp) throws IOException {
        Path dir = copy("opt_style", tmp);
        String json = Files.readString(dir.resolve("tokenizer.json"));
        Files.writeString(dir.resolve("tokenizer.json"),
                json.replaceFirst("\"merges\": *\\[", "\"merges\": 7, \"x\": ["));
        var e = assertThrows(ModelFormatException.class, () -> Tokenizer.load(dir));
        String prefix = dir.resolve("tokenizer.json") + ": the tokenizers library cannot load it: ";
        assertTrue(e.getMessage().startsWith(prefix) && e.getMessage().length() > prefix.length() + 10, e.getMessage());
    }

    @Test
    void aFolderWithOnlyVocabAndMergesSaysHowToWriteTokenizerJson(@TempDir Path tmp) throws IOException {
        Files.writeString(tmp.resolve("vocab.json"), "{}");
        Files.writeString(tmp.resolve("merges.txt"), "#version: 0.2\n");
        var e = assertThrows(ModelFormatException.class, () -> Tokenizer.load(tmp));
        assertTrue(e.getMessage().contains("no tokenizer.json") && e.getMessage().contains("vocab.json and merges.txt")
                && e.getMessage().contains("AutoTokenizer.from_pretrained('" + tmp + "').save_pretrained('" + tmp
                        + "')"), e.getMessage());
    }

    @Test
    void aMissingFolderOrTokenizerJsonIsNamed(@TempDir Path tmp) {
        var e = assertThrows(ModelFormatException.class, () -> Tokenizer.load(tmp.resolve("nope")));
        assertTrue(e.getMessage().contains("nope") && e.getMessage().contains("not a folder"), e.getMessage());
        e = assertThrows(ModelFormatException.class, () -> Tokenizer.load(tmp));
        assertEquals(tmp + ": no tokenizer.json", e.getMessage());
    }

    @Test
    void badTokenizerConfigJsonFailsNamingTheFileAndLine(@TempDir Path tmp) throws IOException {
        Path dir = copy("opt_style", tmp);
        Files.writeString(dir.resolve("tokenizer_config.json"), "{\n  \"bos_token\": \"</s>\",\n  \"eos_token\": ,\n}");
        var e = assertThrows(ModelFormatException.class, () -> Tokenizer.load(dir));
        assertTrue(e.getMessage().startsWith(dir.resolve("tokenizer_config.json") + ":3:"), e.getMessage());
    }

    @Test
    void aChatTemplateListUsesTheDefaultTemplate(@TempDir Path tmp) throws IOException {
        Path dir = copy("opt_style", tmp);
        Files.writeString(dir.resolve("tokenizer_config.json"), """
                {"eos_token": "</s>", "chat_template": [
                  {"name": "tool_use", "template": "tools"},
                  {"name": "default", "template": "{{ messages[0].content }}!{{ eos_token }}"}]}""");
        try (Tokenizer tok = Tokenizer.load(dir)) {
            assertTrue(tok.hasChatTemplate());
            assertEquals("hi!</s>", tok.chatTemplate().apply(List.of(ChatTemplate.Message.user("hi")), false));
            assertTrue(tok.chatTemplate().source().endsWith("tokenizer_config.json: chat_template[default]"));
        }
    }

    @Test
    void specialTokensMapFillsInTokensTheConfigDoesNotName(@TempDir Path tmp) throws IOException {
        Path dir = copy("opt_style", tmp);
        Files.delete(dir.resolve("tokenizer_config.json"));
        Files.delete(dir.resolve("config.json"));
        Files.writeString(dir.resolve("special_tokens_map.json"),
                "{\"eos_token\": {\"content\": \"<unk>\", \"lstrip\": false}, \"pad_token\": \"<pad>\"}");
        try (Tokenizer tok = Tokenizer.load(dir)) {
            assertEquals(tok.tokenId("<unk>"), tok.eosId());
            assertEquals(tok.tokenId("<pad>"), tok.padId());
            assertEquals(-1, tok.bosId());
            assertArrayEquals(new int[] {tok.tokenId("<unk>")}, tok.stopIds());
            assertFalse(tok.hasChatTemplate());
        }
    }

    @Test
    void closingReleasesTheNativeTokenizer(@TempDir Path tmp) throws IOException {
        Path dir = copy("qwen2_style", tmp);
        Tokenizer tok = Tokenizer.load(dir);
        assertArrayEquals(tokenizer("qwen2_style").encode("Hello"), tok.encode("Hello"));
        tok.close();
        assertThrows(RuntimeException.class, () -> tok.encode("Hello"));
    }
}
