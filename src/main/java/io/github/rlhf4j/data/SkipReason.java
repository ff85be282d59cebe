package io.github.rlhf4j.data;

/** Why a row was skipped; {@link SkipReport} counts rows by these. */
public enum SkipReason {
    /** A field the schema needs is absent or null. */
    MISSING_FIELD("missing field"),
    /** A field has the wrong type (a number where text belongs), or the row is not an object. */
    WRONG_TYPE("wrong type"),
    /** A text field is empty or only white space. */
    EMPTY_TEXT("empty text"),
    /** The prompt has more tokens than the limit (step 3's {@code max_prompt_seq_len}). */
    PROMPT_TOO_LONG("prompt too long"),
    /** The row breaks a rule of its schema (an hh-rlhf pair without a shared Assistant turn, say). */
    MALFORMED("malformed");

    private final String label;

    SkipReason(String label) {
        this.label = label;
    }

    /** A short lower-case label for reports ({@code "missing field"}). */
    public String label() {
        return label;
    }
}
