package io.github.rlhf4j.serve;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.ArrayList;
import java.util.List;

/**
 * Typed reads of a request body's fields. A missing or JSON-null field is absent; a field of the wrong type or out of
 * range is a 400 that names it, as OpenAI's API answers.
 */
final class RequestFields {
    private final ObjectNode body;

    RequestFields(ObjectNode body) {
        this.body = body;
    }

    boolean has(String field) {
        JsonNode n = body.get(field);
        return n != null && !n.isNull();
    }

    JsonNode get(String field) {
        return has(field) ? body.get(field) : null;
    }

    JsonNode require(String field) {
        if (!has(field)) throw ApiException.invalid("you must provide a '" + field + "' parameter", field,
                "missing_required_parameter");
        return body.get(field);
    }

    String string(String field, String otherwise) {
        JsonNode n = get(field);
        if (n == null) return otherwise;
        if (!n.isTextual()) throw wrongType(field, "a string", n);
        return n.asText();
    }

    boolean bool(String field, boolean otherwise) {
        JsonNode n = get(field);
        if (n == null) return otherwise;
        if (!n.isBoolean()) throw wrongType(field, "a boolean", n);
        return n.asBoolean();
    }

    /** An integer in [min, max] (a number with a fraction, or a string, is a type error). */
    Long integer(String field, long min, long max) {
        JsonNode n = get(field);
        if (n == null) return null;
        if (!n.isIntegralNumber() || !n.canConvertToLong()) throw wrongType(field, "an integer", n);
        long v = n.asLong();
        if (v < min || v > max)
            throw ApiException.invalid(v + " is " + (v < min ? "less than the minimum of " + min
                    : "greater than the maximum of " + max) + " - '" + field + "'", field);
        return v;
    }

    /** A number in [min, max] (or (min, max] when {@code openMin}). */
    Double number(String field, double min, boolean openMin, double max) {
        JsonNode n = get(field);
        if (n == null) return null;
        if (!n.isNumber()) throw wrongType(field, "a number", n);
        double v = n.asDouble();
        if (!(openMin ? v > min : v >= min) || !(v <= max))
            throw ApiException.invalid(v + " is not in " + (openMin ? "(" : "[") + min + ", " + max + "] - '" + field
                    + "'", field);
        return v;
    }

    /** OpenAI's {@code stop}: null, a string, or a list of up to {@code max} non-empty strings. */
    List<String> stop(int max) {
        JsonNode n = get("stop");
        if (n == null) return List.of();
        List<String> out = new ArrayList<>();
        if (n.isTextual()) out.add(n.asText());
        else if (n.isArray()) {
            if (n.size() > max)
                throw ApiException.invalid("'stop' has " + n.size() + " strings; at most " + max + " are allowed",
                        "stop");
            for (JsonNode s : n) {
                if (!s.isTextual()) throw wrongType("stop", "a string or a list of strings", n);
                out.add(s.asText());
            }
        } else throw wrongType("stop", "a string or a list of strings", n);
        for (String s : out) if (s.isEmpty()) throw ApiException.invalid("'stop' strings must not be empty", "stop");
        return out;
    }

    /** A 400 for features this server does not have, when the field asks for them. */
    void unsupported(String field, boolean asked, String what) {
        if (has(field) && asked)
            throw ApiException.invalid("'" + field + "' is not supported by this server: " + what, field,
                    "unsupported_parameter");
    }

    static ApiException wrongType(String field, String expected, JsonNode got) {
        String shown = got.toString();
        if (shown.length() > 60) shown = shown.substring(0, 57) + "...";
        return ApiException.invalid(shown + " is not of type " + expected + " - '" + field + "'", field,
                "invalid_type");
    }
}
