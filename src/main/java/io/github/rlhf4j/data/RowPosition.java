package io.github.rlhf4j.data;

import java.nio.file.Path;
import java.util.Objects;

/**
 * Where a row comes from, for messages: a JSON file and line ({@code data/train.jsonl:17}) or a Parquet file, row
 * and row group ({@code data/train.parquet: row 1203 (row group 2)}, both counted from 0 as pyarrow counts them).
 *
 * @param file the file as the user named it
 * @param line the 1-based line of a JSON file, or -1 for Parquet
 * @param row the 0-based row of a Parquet file, or -1 for JSON
 * @param rowGroup the 0-based row group of a Parquet file, or -1 for JSON
 */
public record RowPosition(Path file, long line, long row, int rowGroup) {
    public RowPosition {
        Objects.requireNonNull(file, "file");
    }

    public static RowPosition line(Path file, long line) {
        return new RowPosition(file, line, -1, -1);
    }

    public static RowPosition parquet(Path file, long row, int rowGroup) {
        return new RowPosition(file, -1, row, rowGroup);
    }

    @Override
    public String toString() {
        return line >= 0 ? file + ":" + line : file + ": row " + row + " (row group " + rowGroup + ")";
    }
}
