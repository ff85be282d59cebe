package io.github.rlhf4j.data;

import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.StringJoiner;

/**
 * The rows a step left out and why: counts by {@link SkipReason}, and the first {@value #EXAMPLES} with their file
 * positions, for the trainer to print ({@link #summary()}):
 * <pre>
 * 2000 rows, 4 skipped (4 empty text); first: harmless-base-sample.jsonl.gz:335: the chosen answer is empty, ...
 * </pre>
 */
public final class SkipReport {
    /** How many skipped rows are kept with their positions. */
    public static final int EXAMPLES = 5;

    /** One skipped row. */
    public record Skip(RowPosition position, SkipReason reason, String message) {
        public Skip {
            Objects.requireNonNull(position, "position");
            Objects.requireNonNull(reason, "reason");
            Objects.requireNonNull(message, "message");
        }

        @Override
        public String toString() {
            return position + ": " + message;
        }
    }

    private long rows;
    private final Map<SkipReason, Long> counts = new EnumMap<>(SkipReason.class);
    private final List<Skip> examples = new ArrayList<>();

    SkipReport() {}

    /** Counts {@code n} rows looked at (kept or skipped). */
    void looked(long n) {
        rows += n;
    }

    /** Counts a skipped row; the caller has counted it among the rows looked at. */
    void skip(RowPosition at, SkipReason reason, String message) {
        counts.merge(reason, 1L, Long::sum);
        if (examples.size() < EXAMPLES) examples.add(new Skip(at, reason, message));
    }

    void skip(RowPosition at, BadRowException why) {
        skip(at, why.reason(), why.getMessage());
    }

    SkipReport copy() {
        SkipReport c = new SkipReport();
        c.addAll(this);
        return c;
    }

    void addAll(SkipReport other) {
        rows += other.rows;
        other.counts.forEach((r, n) -> counts.merge(r, n, Long::sum));
        for (Skip s : other.examples)
            if (examples.size() < EXAMPLES) examples.add(s);
    }

    /** The rows looked at: kept plus skipped. */
    public long rows() {
        return rows;
    }

    /** The rows skipped, for any reason. */
    public long skipped() {
        return counts.values().stream().mapToLong(Long::longValue).sum();
    }

    /** The rows skipped for this reason. */
    public long count(SkipReason reason) {
        return counts.getOrDefault(reason, 0L);
    }

    /** The first {@value #EXAMPLES} skipped rows, in the order they were met. */
    public List<Skip> examples() {
        return Collections.unmodifiableList(examples);
    }

    /** One line: rows looked at, rows skipped by reason, and the first few positions. */
    public String summary() {
        long skipped = skipped();
        if (skipped == 0) return rows + " rows, none skipped";
        StringJoiner by = new StringJoiner(", ", " (", ")");
        counts.forEach((r, n) -> by.add(n + " " + r.label()));
        StringJoiner first = new StringJoiner(", ", "; first: ", skipped > examples.size() ? ", ..." : "");
        examples.forEach(s -> first.add(s.toString()));
        return rows + " rows, " + skipped + " skipped" + by + first;
    }

    @Override
    public String toString() {
        return summary();
    }
}
