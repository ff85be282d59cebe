package io.github.rlhf4j.rlhf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.github.rlhf4j.data.DataSplit;
import io.github.rlhf4j.data.Phase;
import io.github.rlhf4j.data.SplitSpec;
import io.github.rlhf4j.data.Tokenizer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The demo task: its checker, its rows (comparisons: chosen right, rejected wrong; demonstrations: right only some of
 * the time), and its tokenizer.
 */
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
    void comparisonsPutTheRightAnswerAgainstAPlausibleWrongOneAndDemonstrationsAreNoisy() throws Exception {
        Path f = tmp.resolve("d.jsonl");
        DemoTask.writeData(f, 2000, 3, "2,4,4", 0.6);
        List<String> lines = Files.readAllLines(f);
        assertEquals(2000, lines.size());
        DataSplit split = DataSplit.load(List.of(f), SplitSpec.parse("2,4,4"), 3, null);
        Set<Integer> sft = new HashSet<>();
        for (DataSplit.Part part : DataSplit.Part.values())
            for (int i : split.indices(split.datasets().getFirst(), Phase.SFT, part)) sft.add(i);
        assertEquals(400, sft.size(), "a fifth of the rows");
        ObjectMapper json = new ObjectMapper();
        int right = 0;
        for (int i = 0; i < lines.size(); i++) {
            JsonNode r = json.readTree(lines.get(i));
            String prompt = r.get("prompt").asText();
            boolean ok = DemoTask.check(prompt, r.get("chosen").asText());
            if (sft.contains(i)) {
                if (ok) right++;
            } else {
                assertTrue(ok, "row " + i + " is a comparison: its chosen answer is right: " + lines.get(i));
            }
            assertFalse(DemoTask.check(prompt, r.get("rejected").asText()), lines.get(i));
            assertEquals(r.get("chosen").asText(), r.get("response").asText());
        }
        // 400 draws at 0.6: the mean 240, the standard deviation about 10
        assertTrue(right > 200 && right < 280, right + " of 400 demonstrations right");
        Path g = tmp.resolve("e.jsonl");
        DemoTask.writeData(g, 2000, 3, "2,4,4", 0.6);
        assertEquals(lines, Files.readAllLines(g), "seeded");
        DemoTask.writeData(g, 2000, 3, "2,4,4", 1.0);
        for (String line : Files.readAllLines(g)) {
            JsonNode r = json.readTree(line);
            assertTrue(DemoTask.check(r.get("prompt").asText(), r.get("chosen").asText()), line);
        }
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
