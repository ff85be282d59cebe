package io.github.rlhf4j.data;

import static io.github.rlhf4j.data.TokenizerFixtures.expected;
import static io.github.rlhf4j.data.TokenizerFixtures.ints;
import static io.github.rlhf4j.data.TokenizerFixtures.show;
import static io.github.rlhf4j.data.TokenizerFixtures.tokenizer;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.FieldSource;

/** Streaming decode: the pieces handed back, joined, are transformers' decode of all ids. */
class StreamDecoderTest {
    static final List<String> NAMES = TokenizerFixtures.ALL;

    @ParameterizedTest
    @FieldSource("NAMES")
    void concatenatedDeltasEqualTheFullDecode(String name) {
        Tokenizer tok = tokenizer(name);
        int held = 0;
        for (JsonNode c : expected(name).get("cases")) {
            int[] ids = ints(c.get("ids"));
            for (boolean skip : new boolean[] {false, true}) {
                String want = c.get(skip ? "decode_skip" : "decode").asText();
                StreamDecoder d = tok.streamDecoder(skip);
                StringBuilder got = new StringBuilder();
                for (int id : ids) {
                    String delta = d.push(id);
                    if (!want.contains("\uFFFD"))
                        assertFalse(delta.contains("\uFFFD"), () -> name + ": a delta with U+FFFD in " + show(want));
                    if (delta.isEmpty() && tok.decode(new int[] {id}, skip).contains("\uFFFD")) held++;
                    got.append(delta);
                }
                got.append(d.finish());
                assertEquals(want, got.toString(), () -> name + ": streamed decode of " + show(c.get("text").asText())
                        + (skip ? " (skipping special tokens)" : ""));
                assertArrayEquals(ids, d.ids());
            }
        }
        // The cases include characters split across tokens; the decoder must have held some of them back.
        assertTrue(held > 0, name + ": no token that decodes alone to U+FFFD was held back; the cases do not test it");
    }

    @ParameterizedTest
    @FieldSource("NAMES")
    void aLongGenerationStreamsToTheSameTextAsOneDecode(String name) {
        Tokenizer tok = tokenizer(name);
        StringBuilder all = new StringBuilder();
        for (JsonNode c : expected(name).get("cases")) all.append(c.get("text").asText()).append(' ');
        int[] ids = tok.encode(all.toString(), false);
        StreamDecoder d = tok.streamDecoder(false);
        StringBuilder got = new StringBuilder();
        for (int i = 0; i < ids.length; i += 3)
            got.append(d.push(Arrays.copyOfRange(ids, i, Math.min(i + 3, ids.length))));
        got.append(d.finish());
        assertEquals(tok.decode(ids, false), got.toString(), name);
        assertEquals("", d.finish(), "a second finish has nothing left");
    }
}
