package io.github.rlhf4j.runtime;

/**
 * A native entry point returned a non-zero {@code rlhf4j_status}. The message names the entry point and carries the
 * backend's own message (from {@code rlhf4j_last_error}), which names the argument at fault.
 */
public final class NativeException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /** The {@code rlhf4j_status} codes of rlhf4j.h. */
    public enum Status {
        OK, INVALID_ARGUMENT, UNSUPPORTED, OUT_OF_MEMORY, DEVICE, INTERNAL, UNKNOWN;

        static Status of(int code) {
            Status[] all = values();
            return code >= 0 && code < all.length - 1 ? all[code] : UNKNOWN;
        }
    }

    private final String function;
    private final Status status;

    public NativeException(String backend, String function, int code, String nativeMessage) {
        super(function + " failed on the " + backend + " backend (" + Status.of(code) + "): " + nativeMessage);
        this.function = function;
        this.status = Status.of(code);
    }

    /** The C function that failed, e.g. {@code rlhf4j_gemm}. */
    public String function() {
        return function;
    }

    public Status status() {
        return status;
    }
}
