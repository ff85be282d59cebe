package io.github.rlhf4j.tensor;

import io.github.rlhf4j.runtime.DType;

/** Checks and output allocation shared by every op, so each op's error names the op and the shapes at fault. */
final class Ops {
    private Ops() {}

    /** A new output in the current scope, which must be on the inputs' device. */
    static Tensor out(Tensor like, DType dtype, int... shape) {
        Scope s = Scope.current();
        if (s.device() != like.device())
            throw new IllegalStateException("the current Scope is on " + s.device() + " but the op's inputs are on "
                    + like.device() + ": open a Scope on " + like.device());
        return s.empty(dtype, shape);
    }

    /** Fails, naming the op, if t's memory was freed (its Scope closed). */
    static void alive(String op, Tensor t) {
        if (t != null && !t.isAlive())
            throw new IllegalStateException(op + ": use of a freed tensor: " + t.describe()
                    + " was released (its Scope was closed or it was released explicitly)");
    }

    static void sameDevice(String op, Tensor a, Tensor b) {
        alive(op, a);
        alive(op, b);
        if (a != null && b != null && a.device() != b.device())
            throw new IllegalArgumentException(op + ": " + a.describe() + " is on " + a.device() + " but "
                    + b.describe() + " is on " + b.device());
    }

    static void floating(String op, Tensor t) {
        alive(op, t);
        if (!t.dtype().isFloatingPoint())
            throw new IllegalArgumentException(op + ": " + t.describe() + " must have a floating-point dtype");
    }

    static void sameDtype(String op, Tensor a, Tensor b) {
        if (a != null && b != null && a.dtype() != b.dtype())
            throw new IllegalArgumentException(op + ": dtypes differ: " + a.describe() + " vs " + b.describe()
                    + " (convert one with .to(dtype))");
    }

    static void dtype(String op, Tensor t, DType expected, String what) {
        alive(op, t);
        if (t.dtype() != expected)
            throw new IllegalArgumentException(op + ": " + what + " " + t.describe() + " must be " + expected);
    }

    static void shape(String op, Tensor t, int[] expected, String what) {
        if (!java.util.Arrays.equals(t.shape(), expected))
            throw new IllegalArgumentException(op + ": " + what + " " + t.describe() + " must have shape "
                    + Shape.str(expected));
    }

    static long addr(Tensor t) {
        return t == null ? 0L : t.address();
    }

    static int flag(boolean b) {
        return b ? 1 : 0;
    }
}
