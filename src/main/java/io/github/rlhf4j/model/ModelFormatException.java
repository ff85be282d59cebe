package io.github.rlhf4j.model;

/**
 * A model directory, config, checkpoint or tokenizer file that rlhf4j cannot use as it is. The message names the file
 * and, where there is one, the field or tensor at fault, and says how to fix it when there is a known way.
 */
public final class ModelFormatException extends RuntimeException {
    public ModelFormatException(String message) {
        super(message);
    }

    public ModelFormatException(String message, Throwable cause) {
        super(message, cause);
    }
}
