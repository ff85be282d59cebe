package io.github.rlhf4j.runtime;

/** Element types, with the codes of {@code rlhf4j_dtype} in rlhf4j.h. */
public enum DType {
    F32(0, 4),
    BF16(1, 2),
    F16(2, 2),
    I32(3, 4),
    F64(4, 8);

    /** The {@code rlhf4j_dtype} value. */
    public final int code;
    /** Bytes per element. */
    public final int size;

    DType(int code, int size) {
        this.code = code;
        this.size = size;
    }

    public boolean isFloatingPoint() {
        return this != I32;
    }

    public static DType ofCode(int code) {
        for (DType t : values()) if (t.code == code) return t;
        throw new IllegalArgumentException("unknown rlhf4j_dtype code " + code);
    }

    @Override
    public String toString() {
        return name().toLowerCase(java.util.Locale.ROOT);
    }
}
