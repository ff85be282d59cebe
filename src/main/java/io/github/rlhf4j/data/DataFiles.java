package io.github.rlhf4j.data;

import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.SequenceInputStream;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;
import java.util.Objects;
import java.util.zip.GZIPInputStream;

/**
 * Streams the records of one local data file, whatever its format:
 * <ul>
 *   <li>JSON Lines ({@code .jsonl}, {@code .json}, either gzip-compressed as {@code .gz}): one JSON object a line,
 *       blank lines ignored. A {@code .json} file that starts with {@code [} is read as one JSON array of objects,
 *       as Hugging Face's {@code json} loader reads it.</li>
 *   <li>Parquet ({@code .parquet}), through Hardwood (a Parquet reader without Hadoop): top-level columns become the
 *       fields, row group by row group. Uncompressed, Snappy (pyarrow's and Hugging Face's default) and gzip
 *       files are read as they are; for other codecs the error names the library to add to the class path (zstd:
 *       {@code com.github.luben:zstd-jni}).</li>
 * </ul>
 * A record that is not a JSON object is passed on as a {@link BadRowException} (skipped and counted); a file that
 * does not parse stops the read with a {@link DataFormatException} naming the file and line, or row group.
 */
public final class DataFiles {
    private DataFiles() {}

    /** What a reader hands on for each record: the record, or why it is not one. */
    public interface Sink {
        void record(RowPosition at, RawRow record);

        void bad(RowPosition at, BadRowException why);
    }

    /** One JSON value a line, nothing after it. */
    private static final ObjectMapper JSON = new ObjectMapper()
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);
    /** Elements of a JSON array, read one after the other from one parser. */
    private static final ObjectMapper ARRAY_JSON = new ObjectMapper();

    /** The file types {@link #read} knows, for messages. */
    public static final String FORMATS = ".jsonl, .json, .jsonl.gz, .json.gz, .parquet";

    /** Whether {@link #read} knows the file's type from its name. */
    public static boolean isDataFile(Path file) {
        String n = file.getFileName().toString().toLowerCase(Locale.ROOT);
        if (n.endsWith(".gz")) n = n.substring(0, n.length() - 3);
        return n.endsWith(".jsonl") || n.endsWith(".json") || n.endsWith(".parquet");
    }

    /**
     * Reads every record of {@code file} into {@code sink}, in file order.
     *
     * @throws DataFormatException for a missing or unreadable file, an unknown file type, or a file that does not
     *     parse (naming the file and line or row group)
     */
    public static void read(Path file, Sink sink) {
        Objects.requireNonNull(file, "file");
        Objects.requireNonNull(sink, "sink");
        if (!Files.isRegularFile(file)) throw new DataFormatException(file + ": no such file");
        String n = file.getFileName().toString().toLowerCase(Locale.ROOT);
        boolean gz = n.endsWith(".gz");
        if (gz) n = n.substring(0, n.length() - 3);
        if (n.endsWith(".parquet")) {
            if (gz) throw new DataFormatException(file + ": a gzip-compressed Parquet file; Parquet compresses its"
                    + " own pages: decompress it first");
            ParquetFiles.read(file, sink);
        } else if (n.endsWith(".jsonl") || n.endsWith(".json")) {
            readJson(file, gz, sink);
        } else {
            throw new DataFormatException(file + ": unknown data file type; rlhf4j reads " + FORMATS);
        }
    }

    private static void readJson(Path file, boolean gz, Sink sink) {
        long line = 0;
        try (InputStream raw = Files.newInputStream(file);
             InputStream in = gz ? new GZIPInputStream(raw, 1 << 16) : raw) {
            ByteLines lines = new ByteLines(in);
            line = lines.skipWhiteSpace();
            if (lines.peek() == '[') {
                readJsonArray(file, lines.rest(), line, sink);
                return;
            }
            CharsetDecoder utf8 = StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT).onUnmappableCharacter(CodingErrorAction.REPORT);
            for (String text; (text = lines.next(utf8)) != null; ) {
                line++;
                if (text.isBlank()) continue;
                RowPosition at = RowPosition.line(file, line);
                JsonNode node;
                try {
                    node = JSON.readTree(text);
                } catch (JsonProcessingException e) {
                    JsonLocation loc = e.getLocation();
                    throw new DataFormatException(at + (loc == null ? "" : ":" + loc.getColumnNr())
                            + ": not valid JSON: " + e.getOriginalMessage(), e);
                }
                if (node instanceof ObjectNode o) sink.record(at, RawRow.of(o));
                else sink.bad(at, new BadRowException(SkipReason.WRONG_TYPE,
                        "the line is " + RawRow.describe(node) + ", not a JSON object"));
            }
        } catch (CharacterCodingException e) {
            throw new DataFormatException(file + ":" + (line + 1) + ": not valid UTF-8 text", e);
        } catch (NoSuchFileException e) {
            throw new DataFormatException(file + ": no such file", e);
        } catch (IOException e) { // a truncated or damaged gzip stream, mostly
            throw new DataFormatException(file + ":" + (line + 1) + ": cannot read" + (gz ? " (gzip)" : "") + ": "
                    + e.getMessage(), e);
        }
    }

    private static void readJsonArray(Path file, InputStream in, long before, Sink sink) throws IOException {
        try (JsonParser p = ARRAY_JSON.createParser(in)) {
            p.nextToken(); // [
            for (JsonToken t; (t = p.nextToken()) != JsonToken.END_ARRAY; ) {
                if (t == null) throw new DataFormatException(file + ": the JSON array is not closed");
                RowPosition at = RowPosition.line(file, p.currentTokenLocation().getLineNr() + before);
                JsonNode node = p.readValueAsTree();
                if (node instanceof ObjectNode o) sink.record(at, RawRow.of(o));
                else sink.bad(at, new BadRowException(SkipReason.WRONG_TYPE,
                        "the array element is " + RawRow.describe(node) + ", not a JSON object"));
            }
            if (p.nextToken() != null) throw new DataFormatException(file + ":"
                    + (p.currentTokenLocation().getLineNr() + before) + ": text after the JSON array");
        } catch (JsonProcessingException e) { // Jackson reads the bytes itself, so bad UTF-8 lands here too
            JsonLocation loc = e.getLocation();
            throw new DataFormatException(file + (loc == null ? "" : ":" + (loc.getLineNr() + before) + ":"
                    + loc.getColumnNr()) + ": not valid JSON: " + e.getOriginalMessage(), e);
        }
    }

    /**
     * Lines of a byte stream, each decoded on its own, so that a UTF-8 error is reported at its line (a
     * {@code BufferedReader} decodes ahead and would blame an earlier one).
     */
    private static final class ByteLines {
        private final InputStream in;
        private final byte[] buf = new byte[1 << 16];
        private int pos, lim;
        private byte[] line = new byte[1 << 12];

        ByteLines(InputStream in) {
            this.in = in;
        }

        private boolean fill() throws IOException {
            if (pos < lim) return true;
            int n = in.read(buf, 0, buf.length);
            pos = 0;
            lim = Math.max(n, 0);
            return n > 0;
        }

        /** Skips white space and a byte order mark at the start; returns the newlines skipped. */
        long skipWhiteSpace() throws IOException {
            long newlines = 0;
            boolean start = true;
            while (fill()) {
                byte b = buf[pos];
                if (start && b == (byte) 0xEF && lim - pos >= 3 && buf[pos + 1] == (byte) 0xBB
                        && buf[pos + 2] == (byte) 0xBF) {
                    pos += 3;
                } else if (b == ' ' || b == '\t' || b == '\r' || b == '\n') {
                    if (b == '\n') newlines++;
                    pos++;
                } else {
                    break;
                }
                start = false;
            }
            return newlines;
        }

        int peek() throws IOException {
            return fill() ? buf[pos] : -1;
        }

        /** The unread bytes, as one stream. */
        InputStream rest() {
            return new SequenceInputStream(new ByteArrayInputStream(buf, pos, lim - pos), in);
        }

        /** The next line without its line ending, or null at the end. */
        String next(CharsetDecoder utf8) throws IOException {
            if (!fill()) return null;
            int len = 0;
            while (fill()) {
                int i = pos;
                while (i < lim && buf[i] != '\n') i++;
                int n = i - pos;
                if (len + n > line.length) line = Arrays.copyOf(line, Math.max(2 * line.length, len + n));
                System.arraycopy(buf, pos, line, len, n);
                len += n;
                pos = i;
                if (i < lim) { // the newline
                    pos++;
                    break;
                }
            }
            if (len > 0 && line[len - 1] == '\r') len--;
            return utf8.reset().decode(ByteBuffer.wrap(line, 0, len)).toString();
        }
    }
}
