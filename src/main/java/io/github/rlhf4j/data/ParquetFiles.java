package io.github.rlhf4j.data;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.hardwood.InputFile;
import dev.hardwood.metadata.ColumnChunk;
import dev.hardwood.metadata.RowGroup;
import dev.hardwood.reader.ParquetFileReader;
import dev.hardwood.reader.RowGroupPredicate;
import dev.hardwood.reader.RowReader;
import dev.hardwood.row.FieldAccessor;
import dev.hardwood.row.PqList;
import dev.hardwood.row.PqStruct;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.nio.file.Path;
import java.util.List;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Parquet through Hardwood (dev.hardwood:hardwood-core, a dependency-free reader; Snappy through snappy-java). Each
 * row group is read on its own, so that a damaged one is named in the error.
 */
final class ParquetFiles {
    private ParquetFiles() {}

    private static final JsonNodeFactory NODES = JsonNodeFactory.instance;

    /** Hardwood announces at INFO on first use whether it found the Vector API; rlhf4j's users need not see it. */
    private static final Logger HARDWOOD_LOG = Logger.getLogger("dev.hardwood");

    static {
        if (HARDWOOD_LOG.getLevel() == null) HARDWOOD_LOG.setLevel(Level.WARNING);
    }

    static void read(Path file, DataFiles.Sink sink) {
        try (ParquetFileReader reader = ParquetFileReader.open(InputFile.of(file))) {
            List<RowGroup> groups = reader.getFileMetaData().rowGroups();
            long row = 0;
            for (int g = 0; g < groups.size(); g++) {
                long start = start(groups.get(g));
                long end = g + 1 < groups.size() ? start(groups.get(g + 1)) : Long.MAX_VALUE;
                long expected = groups.get(g).numRows(), read = 0;
                try (RowReader rows = reader.buildRowReader().filter(RowGroupPredicate.byteRange(start, end)).build()) {
                    while (rows.hasNext()) {
                        rows.next();
                        sink.record(RowPosition.parquet(file, row + read, g), RawRow.of(object(rows)));
                        read++;
                    }
                } catch (RuntimeException e) {
                    if (e instanceof DataFormatException) throw e;
                    throw new DataFormatException(file + ": row group " + g + " of " + groups.size()
                            + " cannot be read: " + reason(e), e);
                }
                if (read != expected) throw new DataFormatException(file + ": row group " + g + " has " + read
                        + " rows, its metadata says " + expected);
                row += read;
            }
        } catch (IOException | UncheckedIOException e) {
            throw new DataFormatException(file + ": not a readable Parquet file: " + reason(e), e);
        }
    }

    /** Where a row group starts in the file: its first column chunk (dictionary page first, when it has one). */
    private static long start(RowGroup g) {
        long start = Long.MAX_VALUE;
        for (ColumnChunk c : g.columns()) start = Math.min(start, c.chunkStartOffset());
        return start;
    }

    /** The innermost message: Hardwood's outer ones repeat the file name and the column. */
    private static String reason(Throwable e) {
        Throwable root = e;
        while (root.getCause() != null && root.getCause() != root) root = root.getCause();
        String m = root.getMessage();
        return m == null ? root.getClass().getSimpleName() : m;
    }

    private static ObjectNode object(FieldAccessor row) {
        ObjectNode o = NODES.objectNode();
        for (int i = 0; i < row.getFieldCount(); i++) {
            String name = row.getFieldName(i);
            o.set(name, row.isNull(name) ? NODES.nullNode() : node(row.getValue(name)));
        }
        return o;
    }

    private static JsonNode node(Object v) {
        return switch (v) {
            case null -> NODES.nullNode();
            case String s -> NODES.textNode(s);
            case Integer i -> NODES.numberNode(i);
            case Long l -> NODES.numberNode(l);
            case Float f -> NODES.numberNode(f);
            case Double d -> NODES.numberNode(d);
            case Boolean b -> NODES.booleanNode(b);
            case BigDecimal d -> NODES.numberNode(d);
            case BigInteger i -> NODES.numberNode(i);
            case byte[] bytes -> NODES.binaryNode(bytes);
            case PqStruct s -> object(s);
            case PqList list -> {
                ArrayNode a = NODES.arrayNode();
                for (int i = 0; i < list.size(); i++) a.add(list.isNull(i) ? NODES.nullNode() : node(list.get(i)));
                yield a;
            }
            default -> NODES.pojoNode(v); // dates, maps, variants: kept, and never text
        };
    }
}
