package io.github.rlhf4j.data;

import io.github.rlhf4j.model.ModelFormatException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * Turns a conversation into the prompt text a chat model was trained on: either the model's own Jinja template (the
 * {@code chat_template} of {@code tokenizer_config.json}, or {@code chat_template.jinja}), rendered as transformers'
 * {@code apply_chat_template(messages, tokenize=False, add_generation_prompt=...)} renders it, or, for models without
 * one, DeepSpeed-Chat's plain {@code Human: ... Assistant: ...} form ({@link #dsChat()}).
 *
 * <p>Templates see transformers' variables: {@code messages} (each a map with {@code role} and {@code content}),
 * {@code add_generation_prompt}, the tokenizer's special tokens ({@code bos_token}, {@code eos_token},
 * {@code unk_token}, {@code pad_token}, ... where the tokenizer has them), the functions {@code raise_exception} and
 * {@code strftime_now}, and the {@code tojson} filter; more variables ({@code tools}, {@code enable_thinking},
 * {@code date_string}) can be passed to {@link #apply(List, boolean, Map)}.
 *
 * <p>The engine is HubSpot's jinjava, set up and adjusted to render as jinja2 does (checked against transformers on
 * copies of the templates of Llama-2, Llama-3, Llama-3.1, Mistral, Zephyr, Gemma, Phi-3, Qwen2, Qwen2.5 and
 * Qwen3). Known differences: slices with a step other than {@code [::-1]} do not parse, and {@code {{ true }}} prints
 * {@code true} where jinja2 prints {@code True}.
 */
public final class ChatTemplate {
    /** One turn of a conversation. {@code role} is {@code "system"}, {@code "user"} or {@code "assistant"}. */
    public record Message(String role, String content) {
        public Message {
            Objects.requireNonNull(role, "role");
            Objects.requireNonNull(content, "content");
        }

        public static Message system(String content) {
            return new Message("system", content);
        }

        public static Message user(String content) {
            return new Message("user", content);
        }

        public static Message assistant(String content) {
            return new Message("assistant", content);
        }
    }

    private static final ChatTemplate DS_CHAT =
            new ChatTemplate(null, "DeepSpeed-Chat's Human/Assistant form", Map.of());

    private final String template; // null: DeepSpeed-Chat's form
    private final String prepared; // the template as jinjava gets it
    private final String source;
    private final Map<String, String> specialTokens;

    private ChatTemplate(String template, String source, Map<String, String> specialTokens) {
        this.template = template;
        this.prepared = template == null ? null : Jinja.prepare(template);
        this.source = source;
        this.specialTokens = Map.copyOf(specialTokens);
    }

    /**
     * A Jinja chat template. {@code source} names where it came from (a file, or a file and field) for error
     * messages; {@code specialTokens} maps {@code bos_token}, {@code eos_token}, ... to their text.
     */
    public static ChatTemplate of(String template, String source, Map<String, String> specialTokens) {
        return new ChatTemplate(Objects.requireNonNull(template, "template"), source, specialTokens);
    }

    /**
     * DeepSpeed-Chat's prompt form ({@code applications/DeepSpeed-Chat/inference/chatbot.py}), for models without a
     * template. The history is plain text: each user turn adds {@code " Human: {user}\n Assistant: "}, and each reply
     * is followed by {@code "\n\n"}, so {@code [user u1, assistant a1, user u2]} with a generation prompt becomes
     * {@code " Human: u1\n Assistant: a1\n\n Human: u2\n Assistant: "}. Without a generation prompt a trailing user
     * turn ends after {@code "\n"}. There is no system role. The text is tokenized with the tokenizer's special tokens
     * (chatbot.py's pipeline does; OPT then starts with {@code </s>}).
     */
    public static ChatTemplate dsChat() {
        return DS_CHAT;
    }

    public boolean isDsChat() {
        return template == null;
    }

    /** Where the template came from ({@code ".../tokenizer_config.json: chat_template"}), for messages. */
    public String source() {
        return source;
    }

    /** The Jinja source, or null for {@link #dsChat()}. */
    public String template() {
        return template;
    }

    /**
     * Whether the rendered text is tokenized with the tokenizer's special tokens: false for Jinja templates, which
     * write their own BOS ({@code apply_chat_template(tokenize=True)} encodes with {@code add_special_tokens=False}),
     * true for {@link #dsChat()}.
     */
    public boolean addSpecialTokens() {
        return isDsChat();
    }

    /**
     * Text after which a reply is complete even without an end-of-sequence token: chatbot.py cuts the model's output
     * where it starts the next {@code "Human: "} turn. Empty for Jinja templates, whose replies end with a stop token.
     */
    public List<String> stopStrings() {
        return isDsChat() ? List.of("Human: ") : List.of();
    }

    /** The prompt for {@code messages}; with {@code addGenerationPrompt} it ends where the assistant's reply starts. */
    public String apply(List<Message> messages, boolean addGenerationPrompt) {
        return apply(messages, addGenerationPrompt, Map.of());
    }

    /**
     * As {@link #apply(List, boolean)}, with more template variables ({@code tools}: a list of JSON-schema maps,
     * {@code enable_thinking}, {@code date_string}, ...); they override the special tokens of the same name.
     *
     * @throws IllegalArgumentException when the template rejects the conversation through {@code raise_exception}
     *     (roles that do not alternate, a system message the model does not support); the message names the template
     * @throws ModelFormatException when the template does not parse or fails while rendering
     */
    public String apply(List<Message> messages, boolean addGenerationPrompt, Map<String, ?> variables) {
        Objects.requireNonNull(messages, "messages");
        if (isDsChat()) return dsChat(messages, addGenerationPrompt);
        List<Map<String, Object>> msgs = new ArrayList<>(messages.size());
        for (Message m : messages) {
            Map<String, Object> map = new LinkedHashMap<>();
            map.put("role", m.role());
            map.put("content", m.content());
            msgs.add(map);
        }
        Map<String, Object> vars = new LinkedHashMap<>(specialTokens);
        vars.putAll(variables);
        vars.put("messages", msgs);
        vars.put("add_generation_prompt", addGenerationPrompt);
        try {
            return Jinja.render(prepared, vars);
        } catch (Jinja.Raised e) {
            throw new IllegalArgumentException(source + " rejects the conversation: " + e.getMessage(), e);
        } catch (Jinja.Failed e) {
            throw new ModelFormatException(source + ": cannot render the chat template: " + e.getMessage(), e);
        }
    }

    private static String dsChat(List<Message> messages, boolean addGenerationPrompt) {
        StringBuilder out = new StringBuilder();
        for (int i = 0; i < messages.size(); i++) {
            Message m = messages.get(i);
            switch (m.role()) {
                case "user" -> out.append(" Human: ").append(m.content()).append('\n');
                case "assistant" -> out.append(" Assistant: ").append(m.content()).append("\n\n");
                default -> throw new IllegalArgumentException("message " + i + " has role '" + m.role()
                        + "': DeepSpeed-Chat's Human/Assistant form has only 'user' and 'assistant' turns");
            }
        }
        if (addGenerationPrompt) out.append(" Assistant: ");
        return out.toString();
    }

    @Override
    public String toString() {
        return "ChatTemplate[" + source + "]";
    }
}
