package io.github.rlhf4j.data;

import java.nio.file.Path;
import java.util.Collection;
import java.util.List;
import java.util.Locale;
import java.util.Objects;

/**
 * How the records of a data file become {@link Row}s. rlhf4j knows the four schemas below and picks one from the
 * field names of a file's first record ({@link #detect}); for any other layout, implement this interface (usually as
 * a lambda-sized class) and pass it to {@link Dataset#load(Path, RowSchema)}:
 *
 * <pre>{@code
 * // {"question": ..., "good": ..., "bad": ...} in DeepSpeed-Chat's Human/Assistant form
 * RowSchema qa = new RowSchema() {
 *     public String name() { return "qa"; }
 *     public Row map(RawRow r) throws BadRowException {
 *         return new PreferenceRow("\n\nHuman: " + r.text("question") + "\n\nAssistant:",
 *                 " " + r.text("good"), " " + r.text("bad"));
 *     }
 * };
 * }</pre>
 *
 * {@link RawRow#text(String)} already rejects missing, null, non-text and blank fields; throw a
 * {@link BadRowException} for any other reason to skip a row. Everything else a schema throws stops the run.
 */
public interface RowSchema {
    /** The name used in messages and by {@code --data-schema}. */
    String name();

    /** The row this record makes. Must not keep {@code record}, which the reader may reuse. */
    Row map(RawRow record) throws BadRowException;

    /**
     * Dahoas/rm-static, as DeepSpeed-Chat's {@code DahoasRmstaticDataset}: {@code prompt} (the conversation through
     * the last {@code "\n\nAssistant:"}), {@code chosen}, {@code rejected} (the answers that follow it); an optional
     * {@code response}, ignored. Files with just {@code prompt}, {@code chosen} and {@code rejected} use it too.
     */
    RowSchema RM_STATIC = new BuiltInSchemas.RmStatic();

    /**
     * Anthropic's hh-rlhf: {@code chosen} and {@code rejected} are whole conversations. The prompt is their common
     * beginning up to and including its last {@code "\n\nAssistant:"}; the answers are what follows it in each, so
     * that {@code prompt + chosen} is exactly the chosen conversation (the split of Dahoas/full-hh-rlhf, which
     * DeepSpeed-Chat trains on).
     */
    RowSchema HH_RLHF = new BuiltInSchemas.HhRlhf();

    /** Prompts alone, for step 3: {@code prompt}. */
    RowSchema PROMPT = new BuiltInSchemas.PromptOnly();

    /** Plain text for the unsupervised (ptx) data: {@code text}. */
    RowSchema TEXT = new BuiltInSchemas.PlainText();

    /** The built-in schemas, in the order {@link #detect} tries them. */
    static List<RowSchema> builtIn() {
        return List.of(RM_STATIC, HH_RLHF, PROMPT, TEXT);
    }

    /**
     * A built-in schema by name: {@code rm-static}, {@code hh-rlhf}, {@code prompt} or {@code text} (case and
     * underscores do not matter).
     *
     * @throws IllegalArgumentException naming the known schemas
     */
    static RowSchema named(String name) {
        Objects.requireNonNull(name, "name");
        String n = name.trim().toLowerCase(Locale.ROOT).replace('_', '-');
        for (RowSchema s : builtIn())
            if (s.name().equals(n)) return s;
        throw new IllegalArgumentException("unknown data schema '" + name + "'; the built-in ones are "
                + BuiltInSchemas.NAMES);
    }

    /**
     * The built-in schema that fits a file whose first record has these fields: {@code prompt} + {@code chosen} +
     * {@code rejected} is rm-static, {@code chosen} + {@code rejected} is hh-rlhf, {@code prompt} alone is prompt,
     * {@code text} is text (other fields are ignored).
     *
     * @param file the file, for the message
     * @throws DataFormatException naming the file and the fields found, when none fits
     */
    static RowSchema detect(Path file, Collection<String> fields) {
        boolean prompt = fields.contains("prompt"), chosen = fields.contains("chosen"),
                rejected = fields.contains("rejected");
        if (prompt && chosen && rejected) return RM_STATIC;
        if (chosen && rejected) return HH_RLHF;
        if (prompt && !chosen && !rejected) return PROMPT;
        if (fields.contains("text")) return TEXT;
        throw new DataFormatException(file + ": cannot tell the schema from the fields of its first record "
                + fields + "; rlhf4j knows " + BuiltInSchemas.DESCRIPTIONS
                + " (name one with --data-schema, or implement io.github.rlhf4j.data.RowSchema)");
    }
}
