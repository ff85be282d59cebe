package io.github.rlhf4j.rlhf;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A stage's metrics as JSON Lines ({@code output/logs/step3.jsonl}): one object per line, flushed as it is written
 * so that a killed run keeps every line it logged. Starts the file afresh, or appends to it when a stage resumes.
 */
public final class MetricsLog implements AutoCloseable {
    private static final ObjectMapper JSON = new ObjectMapper();
    private final Path file;
    private final BufferedWriter out;
    private int lines;

    public MetricsLog(Path file) {
        this(file, false);
    }

    /**
     * A log that counts its lines and writes nothing: a data-parallel rank other than 0 keeps the same counters as
     * rank 0 without writing the same file.
     */
    public static MetricsLog discarding() {
        return new MetricsLog();
    }

    private MetricsLog() {
        this.file = null;
        this.out = new BufferedWriter(java.io.Writer.nullWriter());
    }

    /** With {@code append}, lines go after the file's existing ones (a resumed stage); else the file starts empty. */
    public MetricsLog(Path file, boolean append) {
        this.file = file;
        try {
            Path parent = file.toAbsolutePath().getParent();
            if (parent != null) Files.createDirectories(parent);
            if (append && Files.exists(file)) lines = Files.readAllLines(file, StandardCharsets.UTF_8).size();
            out = append ? Files.newBufferedWriter(file, StandardCharsets.UTF_8, StandardOpenOption.CREATE,
                    StandardOpenOption.WRITE, StandardOpenOption.APPEND)
                    : Files.newBufferedWriter(file, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write metrics to " + file + ": " + e.getMessage(), e);
        }
    }

    /** A line from alternating keys and values: {@code log("step", 3, "loss", 0.7)}. */
    public void log(Object... keysAndValues) {
        if (keysAndValues.length % 2 != 0) throw new IllegalArgumentException("keys and values must alternate");
        Map<String, Object> line = new LinkedHashMap<>();
        for (int i = 0; i < keysAndValues.length; i += 2) {
            Object v = keysAndValues[i + 1];
            // JSON has no NaN or Infinity: write null rather than a line other readers reject
            if (v instanceof Double d && !Double.isFinite(d)) v = null;
            line.put((String) keysAndValues[i], v);
        }
        try {
            out.write(JSON.writeValueAsString(line));
            out.newLine();
            out.flush();
            lines++;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write metrics to " + file + ": " + e.getMessage(), e);
        }
    }

    public Path file() {
        return file;
    }

    /** Lines in the file: those written, plus those it held when opened to append. */
    public int lines() {
        return lines;
    }

    @Override
    public void close() {
        try {
            out.close();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot close " + file + ": " + e.getMessage(), e);
        }
    }
}
