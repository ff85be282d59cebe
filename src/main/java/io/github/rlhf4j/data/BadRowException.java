package io.github.rlhf4j.data;

import java.util.Objects;

/**
 * Thrown by a {@link RowSchema} (or by {@link RawRow#text(String)} for it) for a row that cannot be used: the reader
 * skips the row, counts it under {@link #reason()} and keeps its position for the {@link SkipReport}. The message
 * says what is wrong with the row without naming its position ({@code "missing field 'rejected'"}).
 */
public final class BadRowException extends Exception {
    private final SkipReason reason;

    public BadRowException(SkipReason reason, String message) {
        super(message, null, false, false); // rows are skipped by the thousand: no stack traces
        this.reason = Objects.requireNonNull(reason, "reason");
    }

    public SkipReason reason() {
        return reason;
    }
}
