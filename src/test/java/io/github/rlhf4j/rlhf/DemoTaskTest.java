package io.github.rlhf4j.rlhf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.github.rlhf4j.data.Tokenizer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The demo task: its checker, its preference rows (chosen right, rejected wrong), and its tokenizer. */
class DemoTaskTest {
    @TempDir
    Path tmp;

    @Test
    void theCheckerAcceptsOnlyTheReversedWord() {
        String p = DemoTask.prompt("cabd");
        assertTrue(DemoTask.check(p, " dbac"));
        assertTrue(DemoTask.check(p, "dbac"));
        for (String wrong : List.of(" cabd", " dbca", " dba", " dbacc", "", " dbac dbac"))
            assertFalse(DemoTask.check(p, wrong), wrong);
        assertFalse(DemoTask.check("reverse cabd", " dbac"), "not a demo prompt");
    }

    @Test
    void rowsPutTheRightAnswerAgainstAPlausibleWrongOne() throws Exception {
        Path f = tmp.resolve("d.jsonl");
        DemoTask.writeData(f, 500, 3);
        List<String> lines = Files.readAllLines(f);
        assertEquals(500, lines.size());
        ObjectMapper json = new ObjectMapper();
        for (String line : lines) {
            JsonNode r = json.readTree(line);
            String prompt = r.get("prompt").asText();
            assertTrue(DemoTask.check(prompt, r.get("chosen").asText()), line);
            assertFalse(DemoTask.check(prompt, r.get("rejected").asText()), line);
            assertEquals(r.get("chosen").asText(), r.get("response").asText());
        }
        Path g = tmp.resolve("e.jsonl");
        DemoTask.writeData(g, 500, 3);
        assertEquals(lines, Files.readAllLines(g), "seeded");
    }

    @Test
    void theTokenizerRoundTripsTheDialogue() {
        DemoTask.writeTokenizer(tmp);
        try (Tokenizer tok = Tokenizer.load(tmp)) {
            String text = DemoTask.prompt("jihg") + DemoTask.answer("jihg") + "<|endoftext|>";
            int[] ids = tok.encode(text, false);
            assertArrayEquals(new int[] {13, 15, 1, 11, 10, 9, 8, 14, 1, 8, 9, 10, 11, 0}, ids);
            assertEquals(text, tok.decode(ids, false));
            assertEquals(0, tok.eosId());
            assertEquals(16, tok.vocabSize());
            assertEquals(12, tok.padId(), "its own pad, so that PPO trains the end-of-text action");
        }
    }
}
