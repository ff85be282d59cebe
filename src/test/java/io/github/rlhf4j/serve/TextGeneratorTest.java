package io.github.rlhf4j.serve;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.rlhf4j.runtime.Device;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Streamed replies: pieces that add up to the tokenizer's decode, and stop strings that cut and end generation. */
class TextGeneratorTest {
    @TempDir
    Path tmp;

    private static List<String> feed(List<String> stops, boolean[] stopped, String... pieces) {
        List<String> out = new ArrayList<>();
        var e = new TextGenerator.Emitter(stops, out::add);
        for (String p : pieces)
            if (e.add(p)) {
                stopped[0] = true;
                break;
            }
        if (!stopped[0]) e.flush();
        out.add("=" + e.text());
        return out;
    }

    @Test
    void emitterHoldsBackWhatMayStartAStopStringAndCutsBeforeIt() {
        boolean[] s = {false};
        // "Hu", "Human" may begin "Human: " and wait; the stop arrives split over three pieces
        assertEquals(List.of("Hello ", "=Hello "), feed(List.of("Human: "), s, "Hello ", "Hu", "man", ": next", "x"));
        assertTrue(s[0]);
        // a false alarm is handed on once it cannot be a stop any more, or at the end
        s[0] = false;
        assertEquals(List.of("Hello ", "Hugo ", "Hum", "=Hello Hugo Hum"),
                feed(List.of("Human: "), s, "Hello Hu", "go Hum"));
        assertFalse(s[0]);
        // the earliest of several stops wins, also inside one piece
        s[0] = false;
        assertEquals(List.of("a", "=a"), feed(List.of("b", "cd"), s, "acdb"));
        assertTrue(s[0]);
        // a stop at the very start gives an empty reply
        s[0] = false;
        assertEquals(List.of("="), feed(List.of("\n\n"), s, "\n", "\nrest"));
        assertTrue(s[0]);
        // no stops: every piece goes straight through
        s[0] = false;
        assertEquals(List.of("x", "y", "=xy"), feed(List.of(), s, "x", "", "y"));
    }

    @Test
    void streamedPiecesAddUpToTheDecodedGreedyReply() {
        try (TextGenerator g = TextGenerator.load(TestModels.make(tmp.resolve("m"), "opt_style", 128, 9), Device.cpu())) {
            int[] prompt = g.encode("The weather today is");
            var ref = TestModels.greedy(g.model(), g.tokenizer(), prompt, 24, true);
            List<String> pieces = new ArrayList<>();
            var c = g.complete(prompt, g.greedy(24).withIgnoreEos(true), List.of(), pieces::add);
            assertArrayEquals(ref.tokens(), c.tokens());
            assertEquals(ref.text(), c.text());
            assertEquals(ref.text(), String.join("", pieces));
            assertTrue(pieces.size() > 5, "streamed in " + pieces.size() + " pieces");
            assertEquals(TextGenerator.Finish.LENGTH, c.finish());
            assertEquals(prompt.length, c.promptTokens());
            assertTrue(c.firstTokenNanos() > 0 && c.totalNanos() >= c.firstTokenNanos());
        }
    }

    @Test
    void aStopStringCutsTheReplyAndEndsGeneration() {
        try (TextGenerator g = TextGenerator.load(TestModels.make(tmp.resolve("m"), "opt_style", 128, 9), Device.cpu())) {
            int[] prompt = g.encode("The weather today is");
            var ref = TestModels.greedy(g.model(), g.tokenizer(), prompt, 24, true);
            // a stop string from the middle of the reference reply: the reply is what came before it
            String text = ref.text();
            int mid = text.length() / 2;
            String stop = text.substring(mid, Math.min(text.length(), mid + 3));
            int cut = text.indexOf(stop);
            List<String> pieces = new ArrayList<>();
            var c = g.complete(prompt, g.greedy(24).withIgnoreEos(true), List.of(stop), pieces::add);
            assertEquals(text.substring(0, cut), c.text());
            assertEquals(c.text(), String.join("", pieces));
            assertEquals(TextGenerator.Finish.STOP, c.finish());
            assertTrue(c.tokens().length < ref.tokens().length, "generation went on after the stop");
            assertArrayEquals(Arrays.copyOf(ref.tokens(), c.tokens().length), c.tokens());
            assertTrue(g.tokenizer().decode(c.tokens(), true).contains(stop), "ended before the stop was complete");
        }
    }

    @Test
    void aTokenizerLargerThanTheModelIsRefused() {
        Path m = TestModels.make(tmp.resolve("m"), "opt_style", 32, 1);
        var e = assertThrows(IllegalArgumentException.class, () -> {
            // the qwen2-style tokenizer (803 tokens) with the 700-token model
            java.nio.file.Files.copy(TestModels.tokenizerFixture("qwen2_style").resolve("tokenizer.json"),
                    m.resolve("tokenizer.json"), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            TextGenerator.load(m, Device.cpu()).close();
        });
        assertTrue(e.getMessage().contains("803 tokens") && e.getMessage().contains("vocab_size is 700"), e.getMessage());
    }
}
