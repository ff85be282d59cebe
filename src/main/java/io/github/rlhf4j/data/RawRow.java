package io.github.rlhf4j.data;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.databind.node.POJONode;
import java.util.Collections;
import java.util.LinkedHashSet;
import java.util.Objects;
import java.util.Set;

/**
 * One record of a data file before a {@link RowSchema} turns it into a {@link Row}: a JSON object, or a Parquet row
 * seen as one (strings as text, numbers as numbers, lists and structs as arrays and objects). {@link #text(String)}
 * does the checks every schema needs and throws the {@link BadRowException} that makes the reader skip and count
 * the row.
 */
public final class RawRow {
    private final ObjectNode json;

    private RawRow(ObjectNode json) {
        this.json = json;
    }

    /** Wraps a JSON object (not copied: do not change it while the row is in use). */
    public static RawRow of(ObjectNode json) {
        return new RawRow(Objects.requireNonNull(json, "json"));
    }

    /** The field names, in file order. */
    public Set<String> fieldNames() {
        Set<String> names = new LinkedHashSet<>();
        json.fieldNames().forEachRemaining(names::add);
        return Collections.unmodifiableSet(names);
    }

    /** Whether the field is present and not null. */
    public boolean has(String field) {
        JsonNode v = json.get(field);
        return v != null && !v.isNull();
    }

    /**
     * The text of a field that must be there: a string with something other than white space in it.
     *
     * @throws BadRowException {@link SkipReason#MISSING_FIELD} if the field is absent or null,
     *     {@link SkipReason#WRONG_TYPE} if it is not a string, {@link SkipReason#EMPTY_TEXT} if it is blank
     */
    public String text(String field) throws BadRowException {
        String s = optionalText(field);
        if (s == null) throw new BadRowException(SkipReason.MISSING_FIELD, json.has(field)
                ? "field '" + field + "' is null" : "missing field '" + field + "'");
        if (s.isBlank()) throw new BadRowException(SkipReason.EMPTY_TEXT, "field '" + field + "' is empty");
        return s;
    }

    /**
     * The text of a field that may be absent: null if it is absent or null, the string (even blank) otherwise.
     *
     * @throws BadRowException {@link SkipReason#WRONG_TYPE} if the field is there but not a string
     */
    public String optionalText(String field) throws BadRowException {
        JsonNode v = json.get(field);
        if (v == null || v.isNull()) return null;
        if (!v.isTextual())
            throw new BadRowException(SkipReason.WRONG_TYPE, "field '" + field + "' is " + describe(v) + ", not text");
        return v.textValue();
    }

    /** The whole record, for schemas that read nested fields; treat it as read-only. */
    public JsonNode json() {
        return json;
    }

    /** "a number", "an array", ...: what a value is, for messages. */
    static String describe(JsonNode v) {
        return switch (v.getNodeType()) {
            case ARRAY -> "a list";
            case OBJECT -> "an object";
            case NUMBER -> "a number";
            case BOOLEAN -> "a boolean";
            case BINARY -> "binary data";
            case STRING -> "text";
            case NULL, MISSING -> "null";
            case POJO -> v instanceof POJONode p && p.getPojo() != null
                    ? "a value of type " + p.getPojo().getClass().getSimpleName() : "an unknown value";
        };
    }

    @Override
    public String toString() {
        return "RawRow" + fieldNames();
    }
}
