package io.github.rlhf4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.rlhf4j.data.Tokenizer;
import io.github.rlhf4j.model.HfModel;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import io.github.rlhf4j.serve.TestModels;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code rlhf4j chat} driven through a pipe, against DeepSpeed-Chat's chatbot.py transcribed here: the history is
 * {@code user_input += f" Human: {q}\n Assistant: "}, then {@code f"{output}\n\n"} after each reply, a reply being cut
 * where the model starts the next {@code "Human: "}; {@code clear} empties it. Each reply must be the greedy
 * reply to exactly that prompt, so a wrong history shows as a wrong reply.
 */
class ChatTest {
    @TempDir
    Path tmp;

    private static String dsChatReply(HfModel m, Tokenizer t, String prompt, int maxNew) {
        String text = TestModels.greedy(m, t, t.encode(prompt), maxNew, false).text();
        int cut = text.indexOf("Human: ");
        return cut < 0 ? text : text.substring(0, cut);
    }

    @Test
    void pipedChatKeepsDeepSpeedChatHistoryClearsAndQuits() {
        Path model = TestModels.make(tmp.resolve("m"), "opt_style", 256, 5);
        String input = "What is the internet?\nTell me more.\nclear\nHi again\nquit\nnever answered\n";
        Cli r = Cli.piped(input, "chat", "--path", model.toString(), "--max-new-tokens", "10");
        assertEquals(0, r.exit(), r.toString());

        try (HfModel m = HfModel.load(model, Device.cpu(), DType.F32); Tokenizer t = Tokenizer.load(model)) {
            String userInput = " Human: What is the internet?\n Assistant: ";
            String a1 = dsChatReply(m, t, userInput, 10);
            userInput = userInput + a1 + "\n\n" + " Human: Tell me more.\n Assistant: ";
            String a2 = dsChatReply(m, t, userInput, 10);
            String a3 = dsChatReply(m, t, " Human: Hi again\n Assistant: ", 10);
            assertFalse(a1.isBlank() || a2.isBlank(), "replies too short to test with: '" + a1 + "', '" + a2 + "'");
            // Without the history, the second question gets another reply: the test can see a lost history.
            assertNotEquals(dsChatReply(m, t, " Human: Tell me more.\n Assistant: ", 10), a2);
            assertEquals(a1 + "\n" + a2 + "\n" + a3 + "\n", r.out(), r.toString());
        }
        assertTrue(r.err().contains("history cleared"), r.toString());
        assertFalse(r.out().contains("Human:") || r.out().contains("\u001b["), "prompts or ANSI on a pipe: " + r.out());
    }

    @Test
    void endOfInputEndsTheChatAndBadOptionsAreNamed() {
        Path model = TestModels.make(tmp.resolve("m"), "opt_style", 64, 5);
        Cli r = Cli.piped("Hello", "chat", "--model", model.toString(), "--max-new-tokens", "4");
        assertEquals(0, r.exit(), r.toString());
        try (HfModel m = HfModel.load(model, Device.cpu(), DType.F32); Tokenizer t = Tokenizer.load(model)) {
            assertEquals(dsChatReply(m, t, " Human: Hello\n Assistant: ", 4) + "\n", r.out());
        }
        r = Cli.piped("", "chat", "--path", model.toString(), "--system", "Be brief.");
        assertEquals(1, r.exit(), r.toString());
        assertTrue(r.err().contains("system prompt needs a chat template"), r.toString());
    }
}
