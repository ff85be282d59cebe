package io.github.rlhf4j.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * rlhf4j_convert as rlhf4j.h states it: BF16/F16 widen exactly, float to BF16/F16 rounds to nearest even (F64 and
 * I32 through F32 first), NaN stays NaN, overflow gives inf, float to I32 truncates toward zero, saturates and maps
 * NaN to 0. References: {@link LowPrecision} (bf16 by distance comparison, f16 by Java's own RNE conversions) and
 * Java's (int) cast, whose semantics are exactly the header's.
 */
class ConvertTest {
    private static short[] allPatterns() {
        short[] h = new short[65536];
        for (int i = 0; i < h.length; i++) h[i] = (short) i;
        return h;
    }

    /** Float bit patterns that probe rounding to 16 bits: every upper half with low halves at the ties and beside. */
    private static float[] trickyFloats() {
        int[] lows = {0x0000, 0x0001, 0x0fff, 0x1000, 0x1001, 0x2000, 0x3000, 0x7fff, 0x8000, 0x8001, 0x9000, 0xb000,
            0xefff, 0xf000, 0xffff};
        SplittableRandom r = new SplittableRandom(5);
        float[] f = new float[65536 * (lows.length + 2)];
        int n = 0;
        for (int hi = 0; hi < 65536; hi++) {
            for (int lo : lows) f[n++] = Float.intBitsToFloat(hi << 16 | lo);
            f[n++] = Float.intBitsToFloat(hi << 16 | r.nextInt(65536));
            f[n++] = Float.intBitsToFloat(hi << 16 | r.nextInt(65536));
        }
        return f;
    }

    private static boolean sameOrBothNaN(float want, float got) {
        return Float.isNaN(want) ? Float.isNaN(got) : Float.floatToRawIntBits(want) == Float.floatToRawIntBits(got);
    }

    private static boolean sameOrBothNaN(double want, double got) {
        return Double.isNaN(want) ? Double.isNaN(got) : Double.doubleToRawLongBits(want) == Double.doubleToRawLongBits(got);
    }

    @Test
    void everyBf16AndF16PatternWidensExactlyToF32AndF64() {
        short[] all = allPatterns();
        try (NativeMemory mem = new NativeMemory()) {
            MemorySegment src = mem.u16(all), f = mem.alloc(4L * all.length), d = mem.alloc(8L * all.length);
            for (DType t : new DType[] {DType.BF16, DType.F16}) {
                mem.abi.convert(mem.s, t.code, src.address(), DType.F32.code, f.address(), all.length);
                mem.abi.convert(mem.s, t.code, src.address(), DType.F64.code, d.address(), all.length);
                float[] gf = NativeMemory.floats(f);
                double[] gd = NativeMemory.doubles(d);
                for (int i = 0; i < all.length; i++) {
                    float want = LowPrecision.toFloat(t, all[i]);
                    if (!sameOrBothNaN(want, gf[i]))
                        fail(String.format("%s 0x%04x -> f32: got %s (0x%08x), want %s", t, i, gf[i],
                                Float.floatToRawIntBits(gf[i]), want));
                    if (!sameOrBothNaN((double) want, gd[i]))
                        fail(String.format("%s 0x%04x -> f64: got %s, want %s", t, i, gd[i], (double) want));
                }
            }
        }
    }

    @Test
    void f32ToBf16AndF16RoundsToNearestEvenOnTiesSubnormalsAndOverflow() {
        float[] x = trickyFloats();
        try (NativeMemory mem = new NativeMemory()) {
            MemorySegment src = mem.f32(x), dst = mem.alloc(2L * x.length);
            for (DType t : new DType[] {DType.BF16, DType.F16}) {
                mem.abi.convert(mem.s, DType.F32.code, src.address(), t.code, dst.address(), x.length);
                short[] got = NativeMemory.shorts(dst);
                int ties = 0;
                for (int i = 0; i < x.length; i++) {
                    short want = LowPrecision.fromFloat(t, x[i]);
                    boolean ok = Float.isNaN(x[i]) ? Float.isNaN(LowPrecision.toFloat(t, got[i])) : want == got[i];
                    if (!ok)
                        fail(String.format("f32 %s (0x%08x) -> %s: got 0x%04x (%s), want 0x%04x (%s)", x[i],
                                Float.floatToRawIntBits(x[i]), t, got[i] & 0xffff, LowPrecision.toFloat(t, got[i]),
                                want & 0xffff, LowPrecision.toFloat(t, want)));
                    // count exact halfway cases, to show that the pattern set exercises ties to even
                    double ax = Math.abs((double) x[i]), aw = Math.abs((double) LowPrecision.toFloat(t, want));
                    int mag = want & 0x7fff;
                    if (Double.isFinite(aw) && ax != aw && mag > 0) {
                        double other = Math.abs((double) LowPrecision.toFloat(t, (short) (ax > aw ? mag + 1 : mag - 1)));
                        if (Math.abs(ax - aw) == Math.abs(other - ax)) ties++;
                    }
                }
                assertTrue(ties > 1000, t + ": only " + ties + " halfway cases in the pattern set");
            }
        }
    }

    @Test
    void specialValuesKeepTheirMeaning() {
        float[] x = {0f, -0f, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.NaN,
            Float.intBitsToFloat(0x7f800001), Float.intBitsToFloat(0xff800001), Float.intBitsToFloat(0x7fc00000),
            Float.MAX_VALUE, -Float.MAX_VALUE, 65504f, 65520f, 65519.996f, -65520f, Float.MIN_VALUE, 0x1p-24f,
            0x1p-25f, 0x1.000002p-25f, 0x1.8p-24f, 0x1p-14f, 0x1.ff8p-15f, 0x1.fep127f, 0x1.ff8p127f};
        try (NativeMemory mem = new NativeMemory()) {
            MemorySegment src = mem.f32(x), dst = mem.alloc(2L * x.length);
            for (DType t : new DType[] {DType.BF16, DType.F16}) {
                mem.abi.convert(mem.s, DType.F32.code, src.address(), t.code, dst.address(), x.length);
                short[] got = NativeMemory.shorts(dst);
                for (int i = 0; i < x.length; i++) {
                    float g = LowPrecision.toFloat(t, got[i]);
                    if (Float.isNaN(x[i])) {
                        assertTrue(Float.isNaN(g), t + ": NaN 0x" + Integer.toHexString(Float.floatToRawIntBits(x[i]))
                                + " became " + g);
                        continue;
                    }
                    assertEquals(LowPrecision.fromFloat(t, x[i]), got[i], t + " of " + x[i]);
                    if (x[i] == 0) // -0 keeps its sign
                        assertEquals(Float.floatToRawIntBits(x[i]) >>> 31, Float.floatToRawIntBits(g) >>> 31, t + " of " + x[i]);
                }
            }
            // overflow gives inf, on both sides
            MemorySegment big = mem.f32(Float.MAX_VALUE, -Float.MAX_VALUE, 1e6f, -1e6f);
            mem.abi.convert(mem.s, DType.F32.code, big.address(), DType.BF16.code, dst.address(), 2);
            short[] b = NativeMemory.shorts(dst);
            assertEquals(Float.POSITIVE_INFINITY, LowPrecision.bf16ToFloat(b[0]));
            assertEquals(Float.NEGATIVE_INFINITY, LowPrecision.bf16ToFloat(b[1]));
            mem.abi.convert(mem.s, DType.F32.code, big.address(), DType.F16.code, dst.address(), 4);
            short[] h = NativeMemory.shorts(dst);
            for (int i = 0; i < 4; i++)
                assertEquals(i % 2 == 0 ? Float.POSITIVE_INFINITY : Float.NEGATIVE_INFINITY, LowPrecision.f16ToFloat(h[i]));
        }
    }

    @Test
    void f64AndI32RoundToSixteenBitsThroughF32() {
        // Doubles a hair above a 16-bit midpoint: F32 rounds them onto the midpoint, which then goes to even; a
        // direct rounding would go up. The header (and torch) specify the first.
        SplittableRandom r = new SplittableRandom(9);
        int n = 4096;
        for (DType t : new DType[] {DType.BF16, DType.F16}) {
            double[] d = new double[n];
            short[] want = new short[n];
            int differs = 0;
            for (int i = 0; i < n; i++) {
                short h;
                float lo;
                do {
                    h = (short) (r.nextInt(t == DType.BF16 ? 0x7f00 : 0x7b00) & ~1); // even, finite, positive
                    lo = LowPrecision.toFloat(t, h);
                } while (lo == 0);
                float hi = LowPrecision.toFloat(t, (short) (h + 1));
                float mid = lo + (hi - lo) / 2; // exact in f32 (and no overflow near the top)
                d[i] = (r.nextBoolean() ? 1 : -1) * ((double) mid + (double) Math.ulp(mid) / 4);
                want[i] = LowPrecision.fromFloat(t, (float) d[i]);
                double direct = Math.abs(d[i]) > mid ? hi : lo;
                if (Math.abs(LowPrecision.toFloat(t, want[i])) != direct) differs++;
            }
            assertEquals(n, differs, "every input must tell F32-first rounding from direct rounding");
            int[] ints = new int[n];
            short[] wantI = new short[n];
            for (int i = 0; i < n; i++) {
                ints[i] = r.nextInt() >> r.nextInt(8);
                wantI[i] = LowPrecision.fromFloat(t, (float) ints[i]);
            }
            try (NativeMemory mem = new NativeMemory()) {
                MemorySegment src = mem.f64(d), dst = mem.alloc(2L * n), is = mem.i32(ints);
                mem.abi.convert(mem.s, DType.F64.code, src.address(), t.code, dst.address(), n);
                assertArrayEquals(want, NativeMemory.shorts(dst), "f64 -> " + t);
                mem.abi.convert(mem.s, DType.I32.code, is.address(), t.code, dst.address(), n);
                assertArrayEquals(wantI, NativeMemory.shorts(dst), "i32 -> " + t);
            }
        }
    }

    @Test
    void floatToI32TruncatesSaturatesAndMapsNanToZero() {
        double[] special = {0.0, -0.0, 0.5, -0.5, 0.9999999, -0.9999999, 1.5, -1.5, 2.5, -2.5, 1e9 + 0.75, -1e9 - 0.75,
            2147483647.0, 2147483647.5, 2147483648.0, 2147483649.0, -2147483648.0, -2147483648.9, -2147483649.0,
            -2147483650.0, 1e20, -1e20, Double.MAX_VALUE, -Double.MAX_VALUE, Double.POSITIVE_INFINITY,
            Double.NEGATIVE_INFINITY, Double.NaN, Double.MIN_VALUE, 16777217.0, 3e9};
        SplittableRandom r = new SplittableRandom(3);
        double[] d = new double[special.length + 100_000];
        System.arraycopy(special, 0, d, 0, special.length);
        for (int i = special.length; i < d.length; i++) d[i] = r.nextDouble(-3e9, 3e9) / (1 << r.nextInt(31));
        float[] f = new float[d.length];
        for (int i = 0; i < d.length; i++) f[i] = (float) d[i];
        short[] bf = new short[d.length], hf = new short[d.length];
        for (int i = 0; i < d.length; i++) {
            bf[i] = LowPrecision.floatToBf16(f[i]);
            hf[i] = LowPrecision.floatToF16(f[i]);
        }
        try (NativeMemory mem = new NativeMemory()) {
            MemorySegment out = mem.alloc(4L * d.length);
            Object[][] sources = {{DType.F64, mem.f64(d)}, {DType.F32, mem.f32(f)}, {DType.BF16, mem.u16(bf)},
                {DType.F16, mem.u16(hf)}};
            for (Object[] s : sources) {
                DType t = (DType) s[0];
                MemorySegment src = (MemorySegment) s[1];
                mem.abi.convert(mem.s, t.code, src.address(), DType.I32.code, out.address(), d.length);
                int[] got = NativeMemory.ints(out);
                for (int i = 0; i < d.length; i++) {
                    double v = switch (t) {
                        case F64 -> d[i];
                        case F32 -> f[i];
                        case BF16 -> LowPrecision.bf16ToFloat(bf[i]);
                        default -> LowPrecision.f16ToFloat(hf[i]);
                    };
                    int want = (int) v; // Java: toward zero, saturating, NaN -> 0
                    if (got[i] != want) fail(t + " " + v + " -> i32: got " + got[i] + ", want " + want);
                }
            }
        }
    }

    @Test
    void roundTripsAreExact() {
        short[] all = allPatterns();
        SplittableRandom r = new SplittableRandom(4);
        float[] f = new float[100_000];
        for (int i = 0; i < f.length; i++) {
            f[i] = Float.intBitsToFloat(r.nextInt()); // any finite pattern, subnormals included
            if (!Float.isFinite(f[i])) f[i] = i;
        }
        int[] ints = new int[100_000];
        for (int i = 0; i < ints.length; i++) ints[i] = r.nextInt();
        try (NativeMemory mem = new NativeMemory()) {
            MemorySegment h = mem.u16(all), mid = mem.alloc(8L * all.length), back = mem.alloc(2L * all.length);
            for (DType t : new DType[] {DType.BF16, DType.F16})
                for (DType via : new DType[] {DType.F32, DType.F64}) {
                    mem.abi.convert(mem.s, t.code, h.address(), via.code, mid.address(), all.length);
                    mem.abi.convert(mem.s, via.code, mid.address(), t.code, back.address(), all.length);
                    short[] got = NativeMemory.shorts(back);
                    for (int i = 0; i < all.length; i++) {
                        float v = LowPrecision.toFloat(t, all[i]);
                        boolean ok = Float.isNaN(v) ? Float.isNaN(LowPrecision.toFloat(t, got[i])) : got[i] == all[i];
                        if (!ok) fail(String.format("%s 0x%04x -> %s -> %s gave 0x%04x", t, i, via, t, got[i]));
                    }
                }
            // bf16 <-> f16 directly: the value rounded once to the other format (it is exact in f32)
            MemorySegment other = mem.alloc(2L * all.length);
            for (DType t : new DType[] {DType.BF16, DType.F16}) {
                DType u = t == DType.BF16 ? DType.F16 : DType.BF16;
                mem.abi.convert(mem.s, t.code, h.address(), u.code, other.address(), all.length);
                short[] got = NativeMemory.shorts(other);
                for (int i = 0; i < all.length; i++) {
                    float v = LowPrecision.toFloat(t, all[i]);
                    short want = LowPrecision.fromFloat(u, v);
                    boolean ok = Float.isNaN(v) ? Float.isNaN(LowPrecision.toFloat(u, got[i])) : got[i] == want;
                    if (!ok) fail(String.format("%s 0x%04x (%s) -> %s gave 0x%04x, want 0x%04x", t, i, v, u, got[i], want));
                }
            }
            MemorySegment fs = mem.f32(f), d = mem.alloc(8L * f.length), f2 = mem.alloc(4L * f.length);
            mem.abi.convert(mem.s, DType.F32.code, fs.address(), DType.F64.code, d.address(), f.length);
            mem.abi.convert(mem.s, DType.F64.code, d.address(), DType.F32.code, f2.address(), f.length);
            assertArrayEquals(f, NativeMemory.floats(f2), "f32 -> f64 -> f32");
            double[] wide = NativeMemory.doubles(d);
            for (int i = 0; i < f.length; i++) assertEquals((double) f[i], wide[i], "f32 -> f64 is exact");
            MemorySegment is = mem.i32(ints), i2 = mem.alloc(4L * ints.length);
            mem.abi.convert(mem.s, DType.I32.code, is.address(), DType.F64.code, d.address(), ints.length);
            mem.abi.convert(mem.s, DType.F64.code, d.address(), DType.I32.code, i2.address(), ints.length);
            assertArrayEquals(ints, NativeMemory.ints(i2), "i32 -> f64 -> i32");
            mem.abi.convert(mem.s, DType.I32.code, is.address(), DType.F32.code, f2.address(), ints.length);
            float[] fi = NativeMemory.floats(f2);
            for (int i = 0; i < ints.length; i++) assertEquals((float) ints[i], fi[i], "i32 -> f32 rounds to nearest");
            // same dtype: a bit-exact copy, NaN payloads included
            float[] odd = {Float.intBitsToFloat(0x7f800001), Float.intBitsToFloat(0xffc12345), -0f, 1f};
            MemorySegment o = mem.f32(odd), o2 = mem.alloc(16);
            mem.abi.convert(mem.s, DType.F32.code, o.address(), DType.F32.code, o2.address(), 4);
            assertArrayEquals(NativeMemory.ints(o), NativeMemory.ints(o2), "f32 -> f32 copies the bits");
        }
    }

    @Test
    void badArgumentsAreRefusedByName() {
        try (NativeMemory mem = new NativeMemory()) {
            MemorySegment a = mem.f32(1, 2), b = mem.alloc(8);
            NativeException e = assertThrows(NativeException.class,
                    () -> mem.abi.convert(mem.s, DType.F32.code, a.address(), DType.F64.code, b.address(), -1));
            assertEquals("rlhf4j_convert", e.function());
            assertTrue(e.getMessage().contains("n = -1"), e.getMessage());
            e = assertThrows(NativeException.class,
                    () -> mem.abi.convert(mem.s, 9, a.address(), DType.F64.code, b.address(), 2));
            assertTrue(e.getMessage().contains("src_dtype"), e.getMessage());
            e = assertThrows(NativeException.class,
                    () -> mem.abi.convert(mem.s, DType.F32.code, a.address(), 7, b.address(), 2));
            assertTrue(e.getMessage().contains("dst_dtype"), e.getMessage());
            mem.abi.convert(mem.s, DType.F32.code, a.address(), DType.F64.code, b.address(), 0); // n == 0: nothing
        }
    }
}
