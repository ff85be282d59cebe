package io.github.rlhf4j.data;

/**
 * A data file that cannot be read at all: not valid JSON at some line, a damaged Parquet row group, an unknown file
 * type, no schema that fits. The message names the file and the line or row group. (A single bad row is not this:
 * it is skipped and counted, see {@link SkipReport}.)
 */
public final class DataFormatException extends RuntimeException {
    public DataFormatException(String message) {
        super(message);
    }

    public DataFormatException(String message, Throwable cause) {
        super(message, cause);
    }
}
