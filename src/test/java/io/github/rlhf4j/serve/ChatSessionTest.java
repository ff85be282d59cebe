package io.github.rlhf4j.serve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.rlhf4j.data.ChatTemplate.Message;
import io.github.rlhf4j.runtime.Device;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The prompts a chat feeds its model, seen through {@link ChatSession#onPrompt}: DeepSpeed-Chat's form (chatbot.py,
 * transcribed in {@link #dsChat}) for a model without a template, the model's template otherwise, and the history
 * cut from its oldest turns when the context is full.
 */
class ChatSessionTest {
    @TempDir
    Path tmp;

    /** chatbot.py's main loop: user_input += f" Human: {q}\n Assistant: "; after the reply, f"{output}\n\n". */
    static String dsChat(List<String[]> turns, String question) {
        String userInput = "";
        for (String[] qa : turns) userInput = userInput + " Human: " + qa[0] + "\n Assistant: " + qa[1] + "\n\n";
        return userInput + " Human: " + question + "\n Assistant: ";
    }

    @Test
    void deepSpeedChatPromptsAcrossTurnsAndClear() {
        try (TextGenerator g = TextGenerator.load(TestModels.make(tmp.resolve("m"), "opt_style", 256, 3), Device.cpu())) {
            List<String> prompts = new ArrayList<>();
            ChatSession s = new ChatSession(g, g.greedy(8), null).onPrompt(prompts::add);
            String a1 = s.reply("Hi", null).text();
            String a2 = s.reply("Tell me a joke.", null).text();
            assertEquals(dsChat(List.of(), "Hi"), prompts.get(0));
            assertEquals(dsChat(List.<String[]>of(new String[] {"Hi", a1}), "Tell me a joke."), prompts.get(1));
            assertEquals(List.of(Message.user("Hi"), Message.assistant(a1), Message.user("Tell me a joke."),
                    Message.assistant(a2)), s.history());
            s.clear();
            s.reply("Why?", null);
            assertEquals(dsChat(List.of(), "Why?"), prompts.get(2));
        }
    }

    @Test
    void chatTemplatePromptsCarryTheSystemMessageAndReplies() {
        try (TextGenerator g = TextGenerator.load(TestModels.make(tmp.resolve("q"), "qwen2_style", 256, 3), Device.cpu())) {
            List<String> prompts = new ArrayList<>();
            ChatSession s = new ChatSession(g, g.greedy(6), "Be brief.").onPrompt(prompts::add);
            String a1 = s.reply("Hi", null).text();
            s.reply("And then?", null);
            List<Message> expected = List.of(Message.system("Be brief."), Message.user("Hi"), Message.assistant(a1),
                    Message.user("And then?"));
            assertEquals(g.tokenizer().chatTemplate().apply(expected, true), prompts.get(1));
            assertTrue(prompts.get(1).startsWith("<|im_start|>system\nBe brief.<|im_end|>\n"), prompts.get(1));
            assertTrue(prompts.get(1).endsWith("<|im_start|>user\nAnd then?<|im_end|>\n<|im_start|>assistant\n"),
                    prompts.get(1));
        }
    }

    @Test
    void fullContextDropsTheOldestTurnsAndSaysSo() {
        int context = 60, maxNew = 6;
        try (TextGenerator g = TextGenerator.load(TestModels.make(tmp.resolve("m"), "opt_style", context, 3), Device.cpu())) {
            List<String> prompts = new ArrayList<>(), notices = new ArrayList<>();
            ChatSession s = new ChatSession(g, g.greedy(maxNew), null).onPrompt(prompts::add).onNotice(notices::add);
            List<String[]> turns = new ArrayList<>();
            String[] questions = {"What is the capital of France?", "And of Germany, please?", "Which one is larger?",
                    "How far apart are they?", "Thanks!"};
            int droppedTotal = 0;
            for (String q : questions) {
                // The expected prompt: the longest run of the latest turns that leaves room for the reply.
                int keep = turns.size();
                while (keep > 0 && g.encode(dsChat(turns.subList(turns.size() - keep, turns.size()), q)).length + maxNew
                        > context) keep--;
                droppedTotal += turns.size() - keep;
                turns = new ArrayList<>(turns.subList(turns.size() - keep, turns.size()));
                String a = s.reply(q, null).text();
                assertEquals(dsChat(turns, q), prompts.getLast());
                assertTrue(g.encode(prompts.getLast()).length + maxNew <= context);
                turns.add(new String[] {q, a});
            }
            assertTrue(droppedTotal > 0, "the test never filled the context");
            assertTrue(notices.stream().anyMatch(n -> n.contains("dropped the oldest")), notices.toString());
            assertEquals(2 * turns.size(), s.history().size());
        }
    }

    @Test
    void aMessageTooLongForTheContextFailsAndLeavesTheHistory() {
        try (TextGenerator g = TextGenerator.load(TestModels.make(tmp.resolve("m"), "opt_style", 32, 3), Device.cpu())) {
            List<String> notices = new ArrayList<>();
            ChatSession s = new ChatSession(g, g.greedy(4), null).onNotice(notices::add);
            s.reply("Hi", null);
            List<Message> before = s.history();
            var e = assertThrows(IllegalArgumentException.class,
                    () -> s.reply("word ".repeat(40), null));
            assertTrue(e.getMessage().contains("context is 32"), e.getMessage());
            assertEquals(before, s.history());
            assertEquals(2, before.size());
            // A message that fits only with a shorter reply gets one, and a notice.
            String q = "word ".repeat(4);
            int room = 32 - g.encode(dsChat(List.of(), q)).length;
            ChatSession t = new ChatSession(g, g.greedy(room + 5), null).onNotice(notices::add);
            var c = t.reply(q, null);
            assertTrue(c.tokens().length <= room);
            assertTrue(notices.getLast().contains("reply limited to " + room + " tokens"), notices.toString());
        }
    }
}
