package io.github.rlhf4j.serve;

import io.github.rlhf4j.data.ChatTemplate;
import io.github.rlhf4j.data.ChatTemplate.Message;
import io.github.rlhf4j.generate.GenerationConfig;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Objects;
import java.util.function.Consumer;

/**
 * A multi-turn conversation with a model, kept as messages and rendered each turn through the model's chat template,
 * or, for models without one, DeepSpeed-Chat's form ({@code chatbot.py}):
 * {@code " Human: q1\n Assistant: a1\n\n Human: q2\n Assistant: "}, a reply ending where the model starts the
 * next {@code "Human: "} turn. When a prompt and its reply would not fit the model's context, the oldest turns are
 * dropped (and a notice says so); a system message, if any, is kept.
 *
 * <p>Not thread-safe.
 */
public final class ChatSession {
    private final TextGenerator generator;
    private final GenerationConfig config;
    private final Message system; // null: none
    private final List<Message> history = new ArrayList<>();
    private Consumer<String> promptListener = p -> {};
    private Consumer<String> notices = n -> {};
    private int turns;

    /**
     * A session generating with {@code config} (its max_new_tokens is the reply budget, shortened only when a single
     * message leaves less room); {@code systemPrompt} may be null, and needs a chat template that has a system role.
     */
    public ChatSession(TextGenerator generator, GenerationConfig config, String systemPrompt) {
        this.generator = Objects.requireNonNull(generator, "generator");
        this.config = Objects.requireNonNull(config, "config");
        if (systemPrompt != null && generator.chatTemplate().isDsChat())
            throw new IllegalArgumentException("a system prompt needs a chat template; " + generator.name()
                    + " has none, and DeepSpeed-Chat's Human/Assistant form has no system role");
        this.system = systemPrompt == null ? null : Message.system(systemPrompt);
    }

    /** Called with each prompt text before it is generated from (for logging and tests). */
    public ChatSession onPrompt(Consumer<String> listener) {
        this.promptListener = Objects.requireNonNull(listener);
        return this;
    }

    /** Called with a human-readable line when the history is cut or the reply budget shortened. */
    public ChatSession onNotice(Consumer<String> listener) {
        this.notices = Objects.requireNonNull(listener);
        return this;
    }

    /** The conversation so far (system message first, if any). */
    public List<Message> history() {
        List<Message> all = new ArrayList<>();
        if (system != null) all.add(system);
        all.addAll(history);
        return Collections.unmodifiableList(all);
    }

    /** Forgets the conversation (the system message stays). */
    public void clear() {
        history.clear();
    }

    public ChatTemplate template() {
        return generator.chatTemplate();
    }

    /**
     * Answers {@code userText}, streaming the reply's text to {@code onText}, and adds the turn to the history.
     *
     * @throws IllegalArgumentException when the message alone does not fit the context (the history is unchanged:
     *     turns are dropped only once a reply has been generated)
     */
    public TextGenerator.Completion reply(String userText, Consumer<String> onText) {
        ChatTemplate template = generator.chatTemplate();
        int context = generator.contextLength();
        int dropped = 0; // oldest turns (a user message and its reply) left out of this prompt
        String prompt;
        int[] ids;
        while (true) {
            List<Message> messages = new ArrayList<>();
            if (system != null) messages.add(system);
            messages.addAll(history.subList(2 * dropped, history.size()));
            messages.add(Message.user(userText));
            prompt = template.apply(messages, true);
            ids = generator.tokenizer().encode(prompt, template.addSpecialTokens());
            if (ids.length + config.maxNewTokens() <= context || 2 * dropped == history.size()) break;
            dropped++;
        }
        GenerationConfig c = config.withSeed(config.seed() + turns);
        if (ids.length >= context)
            throw new IllegalArgumentException("the message is too long: its prompt is " + ids.length
                    + " tokens and the model's context is " + context);
        if (dropped > 0)
            notices.accept("history cut: dropped the oldest " + dropped + " turn" + (dropped == 1 ? "" : "s")
                    + " to fit prompt (" + ids.length + " tokens) and reply (" + config.maxNewTokens()
                    + ") in the context of " + context + " tokens");
        if (ids.length + c.maxNewTokens() > context) {
            c = c.withMaxNewTokens(context - ids.length);
            notices.accept("reply limited to " + c.maxNewTokens() + " tokens: the prompt is " + ids.length
                    + " of the context's " + context);
        }
        promptListener.accept(prompt);
        TextGenerator.Completion done = generator.complete(ids, c, template.stopStrings(), onText);
        history.subList(0, 2 * dropped).clear();
        history.add(Message.user(userText));
        history.add(Message.assistant(done.text()));
        turns++;
        return done;
    }
}
