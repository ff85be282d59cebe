package io.github.rlhf4j.data;

import static io.github.rlhf4j.data.TokenizerFixtures.expected;
import static io.github.rlhf4j.data.TokenizerFixtures.ints;
import static io.github.rlhf4j.data.TokenizerFixtures.map;
import static io.github.rlhf4j.data.TokenizerFixtures.messages;
import static io.github.rlhf4j.data.TokenizerFixtures.tokenizer;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.github.rlhf4j.data.ChatTemplate.Message;
import io.github.rlhf4j.model.ModelFormatException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDateTime;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Chat templates against transformers' apply_chat_template (jinja2), and DeepSpeed-Chat's plain form. */
class ChatTemplateTest {
    @Test
    void commonTemplatesRenderAsTransformersRendersThem() {
        JsonNode fx = expected("templates");
        Map<String, String> special = new HashMap<>();
        fx.get("special_tokens").properties().forEach(e -> special.put(e.getKey(), e.getValue().asText()));
        int rendered = 0, rejected = 0;
        for (JsonNode c : fx.get("cases")) {
            String name = c.get("template").asText();
            ChatTemplate t = ChatTemplate.of(fx.get("templates").get(name).asText(), "templates/" + name, special);
            List<Message> conv = messages(fx.get("conversations").get(c.get("conversation").asInt()));
            boolean agp = c.get("add_generation_prompt").asBoolean();
            Map<String, Object> vars = map(c.get("variables"));
            String what = name + ", conversation " + c.get("conversation") + ", add_generation_prompt=" + agp
                    + (vars.isEmpty() ? "" : ", " + vars.keySet());
            if (c.has("error")) {
                var e = assertThrows(IllegalArgumentException.class, () -> t.apply(conv, agp, vars), what);
                assertTrue(e.getMessage().startsWith("templates/" + name + " rejects the conversation: ")
                        && e.getMessage().endsWith(c.get("error").asText()), what + ": " + e.getMessage());
                rejected++;
            } else {
                assertEquals(c.get("text").asText(), t.apply(conv, agp, vars), what);
                rendered++;
            }
        }
        assertEquals(fx.get("cases").size(), rendered + rejected);
        assertTrue(rejected > 0 && rendered > 0);
    }

    @Test
    void modelTemplatesRenderAndTokenizeAsApplyChatTemplate() {
        for (String name : List.of("llama_style", "qwen2_style")) {
            Tokenizer tok = tokenizer(name);
            assertTrue(tok.hasChatTemplate(), name);
            for (JsonNode c : expected(name).get("chat")) {
                List<Message> conv = messages(c.get("messages"));
                boolean agp = c.get("add_generation_prompt").asBoolean();
                String what = name + ": " + conv.size() + " messages, add_generation_prompt=" + agp;
                assertEquals(c.get("text").asText(), tok.chatTemplate().apply(conv, agp), what);
                assertArrayEquals(ints(c.get("ids")), tok.encodeChat(conv, agp), what + ", tokenized");
            }
        }
        // transformers 5 writes the template to chat_template.jinja; older saves keep it in tokenizer_config.json.
        assertTrue(tokenizer("llama_style").chatTemplate().source().endsWith("chat_template.jinja"));
        assertTrue(tokenizer("qwen2_style").chatTemplate().source().endsWith("tokenizer_config.json: chat_template"));
    }

    @Test
    void withoutATemplateTheChatUsesDeepSpeedChatsForm() {
        JsonNode fx = expected("deepspeed_chat");
        Tokenizer tok = tokenizer(fx.get("tokenizer").asText());
        assertFalse(tok.hasChatTemplate());
        assertTrue(tok.chatTemplate().isDsChat());
        for (JsonNode c : fx.get("cases")) {
            List<Message> conv = messages(c.get("messages"));
            boolean agp = c.get("add_generation_prompt").asBoolean();
            assertEquals(c.get("text").asText(), ChatTemplate.dsChat().apply(conv, agp), conv.toString());
            assertArrayEquals(ints(c.get("ids")), tok.encodeChat(conv, agp), conv + ", tokenized");
        }
        var e = assertThrows(IllegalArgumentException.class,
                () -> ChatTemplate.dsChat().apply(List.of(Message.system("be brief"), Message.user("hi")), true));
        assertTrue(e.getMessage().contains("message 0 has role 'system'"), e.getMessage());
    }

    @Test
    void strftimeNowFormatsAsPython() {
        for (JsonNode c : expected("templates").get("strftime"))
            assertEquals(c.get("text").asText(),
                    Jinja.strftime(c.get("format").asText(), LocalDateTime.parse(c.get("at").asText())),
                    c.get("format").asText());
    }

    @Test
    void aTemplateThatDoesNotParseFailsNamingItsFile(@TempDir Path tmp) throws IOException {
        Path dir = tmp.resolve("model");
        Files.createDirectories(dir);
        Path from = TokenizerFixtures.dir("llama_style");
        for (String f : List.of("tokenizer.json", "tokenizer_config.json", "config.json"))
            Files.copy(from.resolve(f), dir.resolve(f));
        Files.writeString(dir.resolve("chat_template.jinja"), "{% for m in messages %}{{ m.content }\n{% endfor %}");
        try (Tokenizer tok = Tokenizer.load(dir)) {
            var e = assertThrows(ModelFormatException.class,
                    () -> tok.chatTemplate().apply(List.of(Message.user("hi")), true));
            String expected = dir.resolve("chat_template.jinja") + ": cannot render the chat template";
            assertTrue(e.getMessage().startsWith(expected), e.getMessage());
        }
    }

    @Test
    void stepSlicesOtherThanReversalAreAKnownGapThatFailsNamingTheTemplate() {
        // jinjava parses no slice step; [::-1] is rewritten (Qwen3 uses it), others fail and say which template.
        ChatTemplate t = ChatTemplate.of("{% for m in messages[::2] %}{{ m.content }}{% endfor %}", "odd.jinja",
                Map.of());
        var e = assertThrows(ModelFormatException.class, () -> t.apply(List.of(Message.user("a")), false));
        assertTrue(e.getMessage().startsWith("odd.jinja: cannot render the chat template"), e.getMessage());
        ChatTemplate r = ChatTemplate.of("{% for m in messages[::-1] %}{{ m.content }}{% endfor %}", "r", Map.of());
        assertEquals("ba", r.apply(List.of(Message.user("a"), Message.assistant("b")), false));
    }
}
