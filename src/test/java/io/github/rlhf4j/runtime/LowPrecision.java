package io.github.rlhf4j.runtime;

/**
 * Test references for the 16-bit storage types, independent of the native code: bf16 decoding is a shift, bf16
 * rounding picks the nearer of the two neighbouring bf16 values by comparing distances in double (ties to the even
 * one; past the largest finite value the upper neighbour is 2^128, which stands for infinity, as IEEE 754 rounds),
 * and f16 uses Java's own {@link Float#floatToFloat16} / {@link Float#float16ToFloat} (round to nearest even).
 */
final class LowPrecision {
    private LowPrecision() {}

    static float bf16ToFloat(short h) {
        return Float.intBitsToFloat((h & 0xffff) << 16);
    }

    static float f16ToFloat(short h) {
        return Float.float16ToFloat(h);
    }

    /** f32 -> bf16, round to nearest even; NaN gives a NaN. */
    static short floatToBf16(float f) {
        if (Float.isNaN(f)) return (short) 0x7fc0;
        int u = Float.floatToRawIntBits(f);
        int sign = u & 0x80000000;
        int mag = u & 0x7fffffff;
        if (mag >= 0x7f800000) return (short) ((sign | mag) >>> 16); // infinity
        int down = mag & 0xffff0000; // the bf16 value at or below |f|
        if (down == mag) return (short) ((sign | mag) >>> 16);
        double lo = Float.intBitsToFloat(down);
        double hi = down + 0x10000 == 0x7f800000 ? 0x1p128 : Float.intBitsToFloat(down + 0x10000);
        double x = Float.intBitsToFloat(mag);
        double dl = x - lo, dh = hi - x; // exact: x, lo and hi are close floats
        int r;
        if (dl < dh) r = down;
        else if (dh < dl) r = down + 0x10000;
        else r = ((down >>> 16) & 1) == 0 ? down : down + 0x10000;
        return (short) ((sign | r) >>> 16);
    }

    /** f32 -> f16, round to nearest even. */
    static short floatToF16(float f) {
        return Float.floatToFloat16(f);
    }

    static float toFloat(DType t, short h) {
        return t == DType.BF16 ? bf16ToFloat(h) : f16ToFloat(h);
    }

    static short fromFloat(DType t, float f) {
        return t == DType.BF16 ? floatToBf16(f) : floatToF16(f);
    }

    /** Unit roundoff-scale epsilon (the gap above 1) of a floating-point dtype. */
    static double eps(DType t) {
        return switch (t) {
            case F64 -> 0x1p-52;
            case F32 -> 0x1p-23;
            case BF16 -> 0x1p-7;
            case F16 -> 0x1p-10;
            default -> throw new IllegalArgumentException(t.toString());
        };
    }
}
