package io.github.rlhf4j.data;

import java.util.Objects;

/** A prompt alone, for step 3 (PPO generates the answer); in DeepSpeed-Chat's form it ends with {@code "Assistant:"}. */
public record PromptRow(String prompt) implements Row {
    public PromptRow {
        Objects.requireNonNull(prompt, "prompt");
    }
}
