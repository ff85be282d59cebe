package io.github.rlhf4j.data;

import java.util.Objects;

/**
 * A preference pair in DeepSpeed-Chat's form: the prompt holds the conversation so far, ending where the assistant's
 * answer starts ({@code "\n\nHuman: ...\n\nAssistant:"}), and {@code chosen} and {@code rejected} are the two answer
 * texts that follow it, usually with a leading space ({@code " Paris."}). Step 1 trains on {@code prompt + chosen},
 * step 2 compares {@code prompt + chosen} with {@code prompt + rejected}, step 3 generates from {@code prompt}.
 */
public record PreferenceRow(String prompt, String chosen, String rejected) implements Row {
    public PreferenceRow {
        Objects.requireNonNull(prompt, "prompt");
        Objects.requireNonNull(chosen, "chosen");
        Objects.requireNonNull(rejected, "rejected");
    }

    /** DeepSpeed-Chat's {@code get_prompt_and_chosen}: the text of step 1 and the chosen side of step 2. */
    public String promptAndChosen() {
        return prompt + chosen;
    }

    /** DeepSpeed-Chat's {@code get_prompt_and_rejected}: the rejected side of step 2. */
    public String promptAndRejected() {
        return prompt + rejected;
    }
}
