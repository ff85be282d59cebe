package io.github.rlhf4j.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.zip.GZIPInputStream;
import org.junit.jupiter.api.Test;

/** The built-in schemas, their detection, and hh-rlhf's prompt rule on hand-made rows and on the real sample. */
class RowSchemaTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    static RawRow raw(String json) throws IOException {
        return RawRow.of((ObjectNode) JSON.readTree(json));
    }

    @Test
    void detectionFromTheFirstRecordsFields() {
        Path f = Path.of("x.jsonl");
        assertSame(RowSchema.RM_STATIC, RowSchema.detect(f, List.of("prompt", "response", "chosen", "rejected")));
        assertSame(RowSchema.RM_STATIC, RowSchema.detect(f, List.of("prompt", "chosen", "rejected")));
        assertSame(RowSchema.HH_RLHF, RowSchema.detect(f, List.of("chosen", "rejected")));
        assertSame(RowSchema.PROMPT, RowSchema.detect(f, List.of("prompt", "id")));
        assertSame(RowSchema.TEXT, RowSchema.detect(f, List.of("text", "meta")));
        var e = assertThrows(DataFormatException.class, () -> RowSchema.detect(f, List.of("question", "answer")));
        assertTrue(e.getMessage().startsWith("x.jsonl: cannot tell the schema from the fields of its first record"
                + " [question, answer]"), e.getMessage());
        assertTrue(e.getMessage().contains("hh-rlhf (chosen, rejected)"), e.getMessage());
    }

    @Test
    void namedFindsBuiltInSchemas() {
        assertSame(RowSchema.RM_STATIC, RowSchema.named("rm-static"));
        assertSame(RowSchema.HH_RLHF, RowSchema.named("HH_RLHF"));
        assertSame(RowSchema.TEXT, RowSchema.named(" text "));
        var e = assertThrows(IllegalArgumentException.class, () -> RowSchema.named("csv"));
        assertTrue(e.getMessage().contains("rm-static, hh-rlhf, prompt and text"), e.getMessage());
    }

    @Test
    void rmStaticIsPromptPlusAnswerAsDeepSpeedChatConcatenatesThem() throws Exception {
        Row r = RowSchema.RM_STATIC.map(raw("{\"prompt\": \"\\n\\nHuman: Hi\\n\\nAssistant:\", \"response\": \" A\","
                + " \"chosen\": \" Hello.\", \"rejected\": \" Go.\"}"));
        PreferenceRow p = (PreferenceRow) r;
        assertEquals("\n\nHuman: Hi\n\nAssistant: Hello.", p.promptAndChosen());
        assertEquals("\n\nHuman: Hi\n\nAssistant: Go.", p.promptAndRejected());
    }

    @Test
    void badFieldsGiveTheirReasons() throws IOException {
        record Case(String json, SkipReason reason, String message) {}
        for (Case c : List.of(
                new Case("{\"prompt\": \"p\", \"chosen\": \" c\"}", SkipReason.MISSING_FIELD, "missing field 'rejected'"),
                new Case("{\"prompt\": null, \"chosen\": \" c\", \"rejected\": \" r\"}", SkipReason.MISSING_FIELD,
                        "field 'prompt' is null"),
                new Case("{\"prompt\": \"p\", \"chosen\": 4, \"rejected\": \" r\"}", SkipReason.WRONG_TYPE,
                        "field 'chosen' is a number, not text"),
                new Case("{\"prompt\": \"p\", \"chosen\": [\" c\"], \"rejected\": \" r\"}", SkipReason.WRONG_TYPE,
                        "field 'chosen' is a list, not text"),
                new Case("{\"prompt\": \"p\", \"chosen\": \" \\n \", \"rejected\": \" r\"}", SkipReason.EMPTY_TEXT,
                        "field 'chosen' is empty"))) {
            var e = assertThrows(BadRowException.class, () -> RowSchema.RM_STATIC.map(raw(c.json())), c.json());
            assertEquals(c.reason(), e.reason(), c.json());
            assertEquals(c.message(), e.getMessage(), c.json());
        }
    }

    @Test
    void hhRlhfPromptIsTheCommonPartThroughItsLastAssistantTurn() throws Exception {
        // Written out by hand from the rows of fixtures/data/hh-rlhf.jsonl.
        List<PreferenceRow> want = List.of(
                new PreferenceRow("\n\nHuman: Is tea or coffee stronger?\n\nAssistant:",
                        " Coffee usually has more caffeine per cup.", " Tea."),
                new PreferenceRow("\n\nHuman: Say something kind.\n\nAssistant:", " I think you are doing great.",
                        " I think so."),
                new PreferenceRow("\n\nHuman: Hi!\n\nAssistant: Hello! How can I help?\n\nHuman: Tell me a fun"
                        + " fact.\n\nAssistant:", " Honey never spoils.", " No."),
                new PreferenceRow("\n\nHuman: Pick a number.\n\nAssistant:",
                        " Seven.\n\nHuman: Why seven?\n\nAssistant: It is my favourite.",
                        " Three.\n\nHuman: Why three?\n\nAssistant: No reason."));
        List<String> lines = java.nio.file.Files.readAllLines(DataFixtures.file("hh-rlhf.jsonl"));
        for (int i = 0; i < want.size(); i++) assertEquals(want.get(i), RowSchema.HH_RLHF.map(raw(lines.get(i))));
        var e = assertThrows(BadRowException.class, () -> RowSchema.HH_RLHF.map(raw(lines.get(4))));
        assertEquals(SkipReason.EMPTY_TEXT, e.reason());
        assertEquals("the chosen answer is empty", e.getMessage());
        e = assertThrows(BadRowException.class, () -> RowSchema.HH_RLHF.map(raw(
                "{\"chosen\": \"\\n\\nHuman: a\", \"rejected\": \"\\n\\nHuman: b\"}")));
        assertEquals(SkipReason.MALFORMED, e.reason());
    }

    /**
     * On all 2,000 real pairs: prompt + answer gives back each conversation exactly, the prompt ends a turn, and no
     * longer common beginning ends one; the rows skipped are the four whose chosen answer is empty, as
     * make_data_fixtures.py finds them on its own.
     */
    @Test
    void hhRlhfSplitsEveryRealPairBackIntoItsConversations() throws Exception {
        Path sample = DataFixtures.hhSample();
        List<Integer> badLines = new java.util.ArrayList<>();
        DataFixtures.expected("split.expected.json").get("hh_sample").get("bad_lines")
                .forEach(n -> badLines.add(n.asInt()));
        List<Integer> skipped = new java.util.ArrayList<>();
        int line = 0, multiTurnAnswers = 0;
        try (var in = new java.io.BufferedReader(new java.io.InputStreamReader(
                new GZIPInputStream(java.nio.file.Files.newInputStream(sample)), java.nio.charset.StandardCharsets.UTF_8))) {
            for (String text; (text = in.readLine()) != null; ) {
                line++;
                RawRow r = raw(text);
                String chosen = r.text("chosen"), rejected = r.text("rejected");
                PreferenceRow p;
                try {
                    p = (PreferenceRow) RowSchema.HH_RLHF.map(r);
                } catch (BadRowException e) {
                    assertEquals(SkipReason.EMPTY_TEXT, e.reason(), "line " + line);
                    skipped.add(line);
                    continue;
                }
                assertEquals(chosen, p.promptAndChosen(), "line " + line);
                assertEquals(rejected, p.promptAndRejected(), "line " + line);
                assertTrue(p.prompt().endsWith("\n\nAssistant:"), "line " + line);
                int common = 0;
                while (common < Math.min(chosen.length(), rejected.length())
                        && chosen.charAt(common) == rejected.charAt(common)) common++;
                String shared = chosen.substring(0, common);
                assertEquals(shared.lastIndexOf("\n\nAssistant:") + "\n\nAssistant:".length(), p.prompt().length(),
                        "line " + line);
                if (p.chosen().contains("\n\nAssistant:")) multiTurnAnswers++;
            }
        }
        assertEquals(2000, line);
        assertEquals(badLines, skipped);
        assertEquals(List.of(335, 1013, 1620, 1993), skipped);
        assertTrue(multiTurnAnswers <= 5, "pairs that part before their last turn: " + multiTurnAnswers);
    }

    @Test
    void userSchemaMapsItsOwnFields() throws Exception {
        RowSchema qa = new RowSchema() {
            @Override
            public String name() {
                return "qa";
            }

            @Override
            public Row map(RawRow r) throws BadRowException {
                return new PreferenceRow("\n\nHuman: " + r.text("question") + "\n\nAssistant:", " " + r.text("good"),
                        " " + r.text("bad"));
            }
        };
        assertEquals(new PreferenceRow("\n\nHuman: 2+2?\n\nAssistant:", " 4", " 5"),
                qa.map(raw("{\"question\": \"2+2?\", \"good\": \"4\", \"bad\": \"5\"}")));
        var e = assertThrows(BadRowException.class, () -> qa.map(raw("{\"question\": \"2+2?\", \"good\": \"4\"}")));
        assertEquals("missing field 'bad'", e.getMessage());
    }
}
