package io.github.rlhf4j.kernels;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;
import static org.junit.jupiter.api.Assertions.fail;

import io.github.rlhf4j.runtime.Abi;
import io.github.rlhf4j.runtime.DType;
import io.github.rlhf4j.runtime.Device;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;

/**
 * Runs one op through the ABI on the CPU backend (the reference, in F32) and on the device under test (the emulated
 * CUDA backend, or a real GPU) on the same inputs, and compares.
 *
 * <p>A check is made for the dtype under test ({@link #dtype}: F32 or BF16). Buffers are declared once and exist on
 * both sides: an <em>input</em> of the case's dtype holds the given values rounded to that dtype (so both sides see
 * the same numbers: the CPU side gets them as F32), an <em>output</em> is poisoned with NaN bytes (0xFF) before every
 * call (an element no thread writes stays NaN and fails the comparison), an <em>inout</em> is reset to its initial
 * values before every call (accumulate = 1). {@code F32} variants have F32 on both sides whatever the case's dtype
 * (statistics such as lse, rstd), {@link #ints} I32.
 *
 * <p>Every {@link #run} poisons, resets and downloads every buffer of the check, so a check holds one case: open a
 * new one per case (allocation is cheap) rather than declaring buffers for many cases in one check.
 *
 * <p>{@link #run} calls the op once on the CPU and, on the emulated backend, four more times, under the schedules
 * {@link #SCHEDULES}: the lanes of each block in order and reversed between barriers (those move all warps in lockstep
 * through each warp collective), then warp-serial (one warp at a time until it waits at __syncthreads; cp.async lands
 * at issue) and warp-serial reversed (cp.async lands at the wait), which expose a missing __syncthreads between warps
 * that only meet at mma/ldmatrix/shuffles. All results must be bitwise identical to the first (a difference is a
 * missing barrier or cp.async wait, or a shared-memory race). The {@link Result} then compares each output with the
 * CPU's at a stated tolerance, naming the op, the case, the element and both values.
 *
 * <pre>{@code
 * try (KernelCheck k = KernelCheck.of(DType.BF16)) {
 *     var x = k.input("x", KernelCheck.random(1, n, -3, 3));
 *     var y = k.output("y", n);
 *     k.run("rlhf4j_unary", "gelu n=" + n, c -> c.abi.unary(c.s, 5, c.dtype, n, c.p(x), c.p(y), 0, 0))
 *      .close(y, 1e-6, 1e-2);
 * }
 * }</pre>
 */
public final class KernelCheck implements AutoCloseable {
    /** Tolerances for results in F32 (CPU F32 against device F32) and BF16 (a few bf16 ulps). */
    public static final double F32_RTOL = 1e-5, F32_ATOL = 1e-6, BF16_RTOL = 1e-2, BF16_ATOL = 1e-5;

    private static final Map<String, double[]> WORST = new TreeMap<>();

    /** The emulator's schedules every {@link #run} uses (kernels/emu/cuda_emu.h), each with its name for messages. */
    static final int[] SCHEDULES = {Emulated.IN_ORDER, Emulated.REVERSED, 3, 4};
    private static final String[] SCHEDULE_NAMES = {"in order", "reversed", "shuffled", "warp-serial",
            "warp-serial reversed"};

    /** The dtype under test (the device side's dtype; the CPU computes in F32). */
    public final DType dtype;
    private final Side ref, target;
    private final Emulated emu;
    private final List<Buf> bufs = new ArrayList<>();

    private KernelCheck(DType dtype, Device target, Emulated emu) {
        if (dtype != DType.F32 && dtype != DType.BF16)
            throw new IllegalArgumentException("kernel checks run F32 or BF16, not " + dtype);
        this.dtype = dtype;
        this.emu = emu;
        this.ref = new Side(Device.cpu(), true, DType.F32);
        this.target = new Side(target, false, dtype);
    }

    /** A check of the emulated CUDA backend against the CPU backend (fails if the emulated library is missing). */
    public static KernelCheck of(DType dtype) {
        Emulated e = Emulated.get();
        return new KernelCheck(dtype, e.device(), e);
    }

    /** A check of any device (a real GPU, say) against the CPU backend; no schedules. */
    public static KernelCheck on(Device target, DType dtype) {
        return new KernelCheck(dtype, target, null);
    }

    /** The tolerance for results of the case's dtype: {F32_ATOL, F32_RTOL} or {BF16_ATOL, BF16_RTOL}. */
    public double rtol() {
        return dtype == DType.F32 ? F32_RTOL : BF16_RTOL;
    }

    public double atol() {
        return dtype == DType.F32 ? F32_ATOL : BF16_ATOL;
    }

    // ---- buffers ----------------------------------------------------------------------------------------------------

    private enum Role { INPUT, OUTPUT, INOUT }

    /** A buffer that exists on both sides. */
    public final class Buf {
        final String name;
        final Role role;
        final DType refType, targetType;
        final long n;
        final long refPtr, targetPtr;
        final double[] init; // INPUT / INOUT: the values (already rounded to both sides' dtypes)
        final int[] initInts;

        private Buf(String name, Role role, DType refType, DType targetType, long n, double[] init, int[] initInts) {
            this.name = name;
            this.role = role;
            this.refType = refType;
            this.targetType = targetType;
            this.n = n;
            this.init = init;
            this.initInts = initInts;
            this.refPtr = ref.malloc(n * refType.size);
            this.targetPtr = target.malloc(n * targetType.size);
            if (role == Role.INPUT) {
                ref.upload(this, refPtr, refType);
                target.upload(this, targetPtr, targetType);
            }
        }

        public String name() {
            return name;
        }

        public long size() {
            return n;
        }

        /** The values both sides start from (rounded to the dtypes), for computing expectations in Java. */
        public double[] values() {
            return init == null ? null : init.clone();
        }
    }

    private Buf add(Buf b) {
        bufs.add(b);
        return b;
    }

    private double[] rounded(DType t1, DType t2, float[] v) {
        double[] d = new double[v.length];
        for (int i = 0; i < v.length; i++) d[i] = round(t2, round(t1, v[i]));
        return d;
    }

    /** An input of the case's dtype; the values are rounded to it (bf16) on both sides. */
    public Buf input(String name, float[] values) {
        return add(new Buf(name, Role.INPUT, DType.F32, dtype, values.length, rounded(DType.F32, dtype, values),
                null));
    }

    /** An F32 input on both sides. */
    public Buf inputF32(String name, float[] values) {
        return add(new Buf(name, Role.INPUT, DType.F32, DType.F32, values.length,
                rounded(DType.F32, DType.F32, values), null));
    }

    /** An input of a fixed dtype on both sides (BF16 on both: the CPU side of such an op reads bf16 too). */
    public Buf input(String name, DType both, float[] values) {
        return add(new Buf(name, Role.INPUT, both, both, values.length, rounded(both, both, values), null));
    }

    /** An I32 input on both sides. */
    public Buf ints(String name, int[] values) {
        double[] d = new double[values.length];
        for (int i = 0; i < d.length; i++) d[i] = values[i];
        return add(new Buf(name, Role.INPUT, DType.I32, DType.I32, values.length, d, values.clone()));
    }

    /** An output of the case's dtype, poisoned with NaN before every call. */
    public Buf output(String name, long n) {
        return add(new Buf(name, Role.OUTPUT, DType.F32, dtype, n, null, null));
    }

    /** An F32 output on both sides (statistics), poisoned with NaN before every call. */
    public Buf outputF32(String name, long n) {
        return add(new Buf(name, Role.OUTPUT, DType.F32, DType.F32, n, null, null));
    }

    /** An output of a fixed dtype on both sides. */
    public Buf output(String name, DType both, long n) {
        return add(new Buf(name, Role.OUTPUT, both, both, n, null, null));
    }

    /** An output of the case's dtype reset to {@code initial} (rounded) before every call: accumulate = 1. */
    public Buf inout(String name, float[] initial) {
        return add(new Buf(name, Role.INOUT, DType.F32, dtype, initial.length, rounded(DType.F32, dtype, initial),
                null));
    }

    /** An F32 inout on both sides. */
    public Buf inoutF32(String name, float[] initial) {
        return add(new Buf(name, Role.INOUT, DType.F32, DType.F32, initial.length,
                rounded(DType.F32, DType.F32, initial), null));
    }

    /** An inout of a fixed dtype on both sides. */
    public Buf inout(String name, DType both, float[] initial) {
        return add(new Buf(name, Role.INOUT, both, both, initial.length, rounded(both, both, initial), null));
    }

    // ---- running ----------------------------------------------------------------------------------------------------

    /** What an op sees on one side: the bindings, the stream, the dtype to pass, and the side's pointers. */
    public static final class Ctx {
        public final Abi abi;
        /** The {@code rlhf4j_stream}. */
        public final long s;
        /** The dtype code to pass for the case's dtype: F32 on the CPU side, the dtype under test on the device. */
        public final int dtype;
        /** True on the CPU (reference) side. */
        public final boolean reference;
        private final Side side;
        private final Arena arena;

        private Ctx(Side side, Arena arena) {
            this.side = side;
            this.abi = side.dev.abi();
            this.s = side.dev.stream();
            this.dtype = side.dtype.code;
            this.reference = side.isRef;
            this.arena = arena;
        }

        /** This side's pointer to b. */
        public long p(Buf b) {
            return side.isRef ? b.refPtr : b.targetPtr;
        }

        /** This side's pointer to element {@code index} of b (views, unaligned starts). */
        public long p(Buf b, long index) {
            return p(b) + index * (side.isRef ? b.refType : b.targetType).size;
        }

        /** The dtype code of b on this side (for ops that take a dtype per tensor). */
        public int dtypeOf(Buf b) {
            return (side.isRef ? b.refType : b.targetType).code;
        }

        /** A host array of longs (shapes, strides) that lives for this call. */
        public MemorySegment longs(long... v) {
            return arena.allocateFrom(JAVA_LONG, v);
        }
    }

    @FunctionalInterface
    public interface Op {
        void call(Ctx c);
    }

    /**
     * Runs op on the CPU, then on the device under test (under every schedule of {@link #SCHEDULES} when emulated,
     * which must agree bit for bit), and returns the outputs for comparison.
     */
    public Result run(String op, String caseName, Op fn) {
        String what = op + " " + caseName + " [" + dtype + "]";
        Map<Buf, double[]> refOut = ref.call(what, fn);
        Map<Buf, byte[]> bits0 = null;
        Map<Buf, double[]> out = null;
        int[] schedules = emu == null ? new int[] {-1} : SCHEDULES;
        try {
            for (int sched : schedules) {
                if (emu != null) emu.setSchedule(sched, 0x5eed);
                Map<Buf, double[]> o = target.call(what, fn);
                Map<Buf, byte[]> bits = target.lastBits;
                if (bits0 == null) {
                    bits0 = bits;
                    out = o;
                    continue;
                }
                for (Buf b : bits.keySet()) {
                    byte[] a = bits0.get(b), c = bits.get(b);
                    if (!Arrays.equals(a, c)) {
                        int e = Arrays.mismatch(a, c) / b.targetType.size;
                        fail(String.format("%s: %s[%d] differs between emulator schedules: %s %s, %s %s "
                                + "(a missing __syncthreads/__syncwarp/cp.async wait or a shared-memory race)", what,
                                b.name, e, out.get(b)[e], SCHEDULE_NAMES[schedules[0]], o.get(b)[e],
                                SCHEDULE_NAMES[sched]));
                    }
                }
            }
        } finally {
            if (emu != null) emu.setSchedule(Emulated.IN_ORDER, 0);
        }
        return new Result(what, op, refOut, out);
    }

    /** Calls op on the device under test only (error cases, setup); outputs are poisoned and inouts reset first. */
    public void runTarget(Op fn) {
        target.call("", fn);
    }

    /** Outputs of one {@link #run}. */
    public final class Result {
        private final String what, op;
        private final Map<Buf, double[]> ref, out;

        private Result(String what, String op, Map<Buf, double[]> ref, Map<Buf, double[]> out) {
            this.what = what;
            this.op = op;
            this.ref = ref;
            this.out = out;
        }

        /** The device's values of an output (decoded to double). */
        public double[] device(Buf b) {
            return out.get(b).clone();
        }

        /** The CPU's values of an output. */
        public double[] reference(Buf b) {
            return ref.get(b).clone();
        }

        /** Every element within atol + rtol |expected| of the CPU's (NaN where the CPU has NaN, equal infinities). */
        public Result close(Buf b, double atol, double rtol) {
            compare(b, ref.get(b), atol, rtol, "cpu f32");
            return this;
        }

        /** At the dtype's default tolerance ({@link #atol()}, {@link #rtol()}). */
        public Result close(Buf b) {
            return close(b, atol(), rtol());
        }

        /** Every element equal to the CPU's rounded to the output's dtype on the device (bit-exact ops). */
        public Result exact(Buf b) {
            double[] e = ref.get(b).clone();
            for (int i = 0; i < e.length; i++) e[i] = round(b.targetType, e[i]);
            compare(b, e, 0, 0, "cpu, rounded to " + b.targetType);
            return this;
        }

        /** Compares with expectations computed in Java. */
        public Result close(Buf b, double[] expected, double atol, double rtol) {
            compare(b, expected, atol, rtol, "java");
            return this;
        }

        private void compare(Buf b, double[] expected, double atol, double rtol, String source) {
            double[] actual = out.get(b);
            if (actual == null) fail(what + ": " + b.name + " is not an output or inout of this check");
            double worstAbs = 0, worstRel = 0, worst = 0;
            int at = -1;
            for (int i = 0; i < actual.length; i++) {
                double a = actual[i], e = expected[i];
                double err;
                if (Double.isNaN(e) || Double.isNaN(a)) err = Double.isNaN(e) && Double.isNaN(a) ? 0 : Double.POSITIVE_INFINITY;
                else if (Double.isInfinite(e) || Double.isInfinite(a)) err = a == e ? 0 : Double.POSITIVE_INFINITY;
                else {
                    double d = Math.abs(a - e);
                    worstAbs = Math.max(worstAbs, d);
                    if (e != 0) worstRel = Math.max(worstRel, d / Math.abs(e));
                    err = d == 0 ? 0 : d / (atol + rtol * Math.abs(e));
                }
                if (err > worst) {
                    worst = err;
                    at = i;
                }
            }
            synchronized (WORST) {
                double[] w = WORST.computeIfAbsent(op + " " + b.targetType + " " + b.name, k -> new double[2]);
                w[0] = Math.max(w[0], worstAbs);
                w[1] = Math.max(w[1], worstRel);
            }
            if (worst > 1.0) {
                double a = actual[at], e = expected[at];
                String hint = Double.isNaN(a) && !Double.isNaN(e) ? " (NaN: the poison, so never written?)" : "";
                fail(String.format("%s: %s[%d] = %.9g%s, expected %.9g (%s); |diff| %.3g > %.1g + %.1g*|expected|",
                        what, b.name, at, a, hint, e, source, Math.abs(a - e), atol, rtol));
            }
        }
    }

    /** The largest absolute and relative errors seen per op, dtype and output, one line each (for reports). */
    public static String summary() {
        StringBuilder sb = new StringBuilder();
        synchronized (WORST) {
            for (var e : WORST.entrySet())
                sb.append(String.format("%-60s max |err| %.3g, max rel %.3g%n", e.getKey(), e.getValue()[0],
                        e.getValue()[1]));
        }
        return sb.toString();
    }

    // ---- the two sides ----------------------------------------------------------------------------------------------

    private final class Side {
        final Device dev;
        final boolean isRef;
        final DType dtype;
        final List<Long> live = new ArrayList<>();
        Map<Buf, byte[]> lastBits;

        Side(Device dev, boolean isRef, DType dtype) {
            this.dev = dev;
            this.isRef = isRef;
            this.dtype = dtype;
        }

        long malloc(long bytes) {
            long p = dev.abi().malloc(dev.handle(), bytes);
            live.add(p);
            return p;
        }

        void upload(Buf b, long ptr, DType t) {
            if (b.n == 0) return;
            try (Arena a = Arena.ofConfined()) {
                MemorySegment h = a.allocate(b.n * t.size, 16);
                for (int i = 0; i < b.n; i++) {
                    switch (t) {
                        case F32 -> h.setAtIndex(JAVA_FLOAT, i, (float) b.init[i]);
                        case F64 -> h.setAtIndex(JAVA_DOUBLE, i, b.init[i]);
                        case BF16 -> h.setAtIndex(JAVA_SHORT, i, toBf16((float) b.init[i]));
                        case F16 -> h.setAtIndex(JAVA_SHORT, i, Float.floatToFloat16((float) b.init[i]));
                        case I32 -> h.setAtIndex(JAVA_INT, i, b.initInts != null ? b.initInts[i] : (int) b.init[i]);
                    }
                }
                dev.abi().memcpy(dev.stream(), ptr, h.address(), h.byteSize(), 0);
                dev.synchronize();
            }
        }

        void poison(long ptr, long bytes) {
            if (bytes == 0) return;
            try (Arena a = Arena.ofConfined()) {
                MemorySegment h = a.allocate(bytes, 16);
                h.fill((byte) 0xFF);
                dev.abi().memcpy(dev.stream(), ptr, h.address(), bytes, 0);
                dev.synchronize();
            }
        }

        Map<Buf, double[]> call(String what, Op fn) {
            for (Buf b : bufs) {
                long ptr = isRef ? b.refPtr : b.targetPtr;
                DType t = isRef ? b.refType : b.targetType;
                if (b.role == Role.OUTPUT) poison(ptr, b.n * t.size);
                else if (b.role == Role.INOUT) upload(b, ptr, t);
            }
            try (Arena a = Arena.ofConfined()) {
                fn.call(new Ctx(this, a));
            } catch (RuntimeException e) {
                throw new AssertionError(what + " failed on " + (isRef ? "the CPU reference" : dev) + ": "
                        + e.getMessage(), e);
            }
            dev.synchronize();
            Map<Buf, double[]> out = new java.util.LinkedHashMap<>();
            Map<Buf, byte[]> bits = new java.util.LinkedHashMap<>();
            for (Buf b : bufs) {
                if (b.role == Role.INPUT) continue;
                long ptr = isRef ? b.refPtr : b.targetPtr;
                DType t = isRef ? b.refType : b.targetType;
                byte[] raw = download(dev, ptr, b.n * t.size);
                bits.put(b, raw);
                out.put(b, decode(raw, t));
            }
            lastBits = bits;
            return out;
        }

        void close() {
            for (long p : live) dev.abi().free(dev.handle(), p);
            live.clear();
        }
    }

    @Override
    public void close() {
        ref.close();
        target.close();
    }

    // ---- static helpers -----------------------------------------------------------------------------------------

    /** The bytes at a device pointer. */
    public static byte[] download(Device dev, long ptr, long bytes) {
        if (bytes == 0) return new byte[0];
        try (Arena a = Arena.ofConfined()) {
            MemorySegment h = a.allocate(bytes, 16);
            dev.abi().memcpy(dev.stream(), h.address(), ptr, bytes, 1);
            dev.synchronize();
            return h.toArray(JAVA_BYTE);
        }
    }

    /** Raw little-endian bytes of dtype t as doubles. */
    public static double[] decode(byte[] raw, DType t) {
        MemorySegment m = MemorySegment.ofArray(raw);
        int n = raw.length / t.size;
        double[] d = new double[n];
        for (int i = 0; i < n; i++)
            d[i] = switch (t) {
                case F32 -> m.get(JAVA_FLOAT.withByteAlignment(1), 4L * i);
                case F64 -> m.get(JAVA_DOUBLE.withByteAlignment(1), 8L * i);
                case BF16 -> fromBf16(m.get(JAVA_SHORT.withByteAlignment(1), 2L * i));
                case F16 -> Float.float16ToFloat(m.get(JAVA_SHORT.withByteAlignment(1), 2L * i));
                case I32 -> m.get(JAVA_INT.withByteAlignment(1), 4L * i);
            };
        return d;
    }

    /** f32 -> bf16 bits, round to nearest even (NaN -> a quiet NaN). */
    public static short toBf16(float f) {
        if (Float.isNaN(f)) return (short) 0x7fc0;
        int u = Float.floatToRawIntBits(f);
        u += 0x7fff + ((u >>> 16) & 1);
        return (short) (u >>> 16);
    }

    public static float fromBf16(short h) {
        return Float.intBitsToFloat((h & 0xffff) << 16);
    }

    /** v rounded to dtype t (F32 and narrower round through f32; I32 truncates). */
    public static double round(DType t, double v) {
        return switch (t) {
            case F64 -> v;
            case F32 -> (float) v;
            case BF16 -> fromBf16(toBf16((float) v));
            case F16 -> Float.float16ToFloat(Float.floatToFloat16((float) v));
            case I32 -> (int) v;
        };
    }

    /** n uniform values in [lo, hi), reproducible from seed. */
    public static float[] random(long seed, int n, double lo, double hi) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) (lo + (hi - lo) * r.nextDouble());
        return v;
    }

    /** n uniform ints in [lo, hi), reproducible from seed. */
    public static int[] randomInts(long seed, int n, int lo, int hi) {
        SplittableRandom r = new SplittableRandom(seed);
        int[] v = new int[n];
        for (int i = 0; i < n; i++) v[i] = r.nextInt(lo, hi);
        return v;
    }
}
