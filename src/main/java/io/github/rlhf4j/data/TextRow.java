package io.github.rlhf4j.data;

import java.util.Objects;

/** Plain text for the unsupervised (ptx) mixture of step 3: tokenized, concatenated and cut into blocks. */
public record TextRow(String text) implements Row {
    public TextRow {
        Objects.requireNonNull(text, "text");
    }
}
