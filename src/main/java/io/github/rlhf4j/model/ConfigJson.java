package io.github.rlhf4j.model;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;

/**
 * A Hugging Face {@code config.json}, read with typed accessors whose errors name the file and the field
 * ({@code "models/x/config.json: field 'n_embd' is missing"}). The whole JSON object is kept, so a model written
 * back carries every field transformers wrote, including those rlhf4j does not use.
 */
public final class ConfigJson {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final String source;
    private final ObjectNode root;

    public ConfigJson(String source, ObjectNode root) {
        this.source = source;
        this.root = root;
    }

    /** Reads and parses {@code file}; a missing file or bad JSON fails with the file's path (and line, column). */
    public static ConfigJson read(Path file) {
        String text;
        try {
            text = Files.readString(file);
        } catch (NoSuchFileException e) {
            throw new ModelFormatException(file + ": file not found");
        } catch (IOException e) {
            throw new ModelFormatException(file + ": cannot read: " + e.getMessage(), e);
        }
        return parse(file.toString(), text);
    }

    public static ConfigJson parse(String source, String text) {
        JsonNode node;
        try {
            node = JSON.readTree(text);
        } catch (JsonProcessingException e) {
            var loc = e.getLocation();
            throw new ModelFormatException(source + (loc == null ? "" : ":" + loc.getLineNr() + ":" + loc.getColumnNr())
                    + ": not valid JSON: " + e.getOriginalMessage(), e);
        }
        if (!(node instanceof ObjectNode o)) throw new ModelFormatException(source + ": expected a JSON object");
        return new ConfigJson(source, o);
    }

    /** Where this config came from (a path), for messages. */
    public String source() {
        return source;
    }

    /** The JSON object (a copy: changes do not reach this config). */
    public ObjectNode json() {
        return root.deepCopy();
    }

    public boolean has(String field) {
        JsonNode n = root.get(field);
        return n != null && !n.isNull();
    }

    public String modelType() {
        return string("model_type");
    }

    public String string(String field) {
        JsonNode n = require(field);
        if (!n.isTextual()) throw error(field, "must be a string, got " + n);
        return n.asText();
    }

    public String string(String field, String otherwise) {
        return has(field) ? string(field) : otherwise;
    }

    public int integer(String field) {
        JsonNode n = require(field);
        if (!n.canConvertToInt() || !n.isIntegralNumber()) throw error(field, "must be an integer, got " + n);
        return n.asInt();
    }

    public int integer(String field, int otherwise) {
        return has(field) ? integer(field) : otherwise;
    }

    /** A positive integer, required. */
    public int positive(String field) {
        int v = integer(field);
        if (v <= 0) throw error(field, "= " + v + " must be > 0");
        return v;
    }

    public double number(String field) {
        JsonNode n = require(field);
        if (!n.isNumber()) throw error(field, "must be a number, got " + n);
        return n.asDouble();
    }

    public double number(String field, double otherwise) {
        return has(field) ? number(field) : otherwise;
    }

    public boolean bool(String field, boolean otherwise) {
        if (!has(field)) return otherwise;
        JsonNode n = root.get(field);
        if (!n.isBoolean()) throw error(field, "must be true or false, got " + n);
        return n.asBoolean();
    }

    /** The raw node of a field (null when absent or JSON null). */
    public JsonNode node(String field) {
        return has(field) ? root.get(field) : null;
    }

    private JsonNode require(String field) {
        if (!has(field)) throw error(field, "is missing");
        return root.get(field);
    }

    /** An error about {@code field} of this file. */
    public ModelFormatException error(String field, String message) {
        return new ModelFormatException(source + ": field '" + field + "' " + message);
    }
}
