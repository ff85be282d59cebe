package io.github.rlhf4j.tensor;

import java.util.Arrays;

/** Shape arithmetic shared by the ops: sizes, contiguous strides, broadcasting. */
final class Shape {
    private Shape() {}

    static int[] check(int[] shape) {
        if (shape.length > io.github.rlhf4j.runtime.Abi.MAX_DIMS)
            throw new IllegalArgumentException("shape " + str(shape) + " has more than "
                    + io.github.rlhf4j.runtime.Abi.MAX_DIMS + " dimensions");
        for (int d : shape)
            if (d < 0) throw new IllegalArgumentException("negative size in shape " + str(shape));
        return shape.clone();
    }

    static long numel(int[] shape) {
        long n = 1;
        for (int d : shape) n *= d;
        return n;
    }

    static long[] contiguousStrides(int[] shape) {
        long[] st = new long[shape.length];
        long s = 1;
        for (int i = shape.length - 1; i >= 0; i--) {
            st[i] = s;
            s *= shape[i];
        }
        return st;
    }

    static String str(int[] shape) {
        return Arrays.toString(shape);
    }

    /** NumPy broadcasting of two shapes, or an error naming the op and both shapes. */
    static int[] broadcast(String op, int[] a, int[] b) {
        int n = Math.max(a.length, b.length);
        int[] out = new int[n];
        for (int i = 0; i < n; i++) {
            int da = i < n - a.length ? 1 : a[i - (n - a.length)];
            int db = i < n - b.length ? 1 : b[i - (n - b.length)];
            if (da != db && da != 1 && db != 1)
                throw new IllegalArgumentException(op + ": shapes " + str(a) + " and " + str(b)
                        + " do not broadcast (dimension " + i + ": " + da + " vs " + db + ")");
            out[i] = da == 1 ? db : da;
        }
        return out;
    }

    /** The strides that read a tensor of {@code shape}/{@code strides} broadcast to {@code out} (0 where broadcast). */
    static long[] broadcastStrides(int[] shape, long[] strides, int[] out) {
        long[] st = new long[out.length];
        int off = out.length - shape.length;
        for (int i = 0; i < shape.length; i++)
            st[i + off] = shape[i] == 1 && out[i + off] != 1 ? 0 : strides[i];
        return st;
    }

    /** Normalises a possibly negative dimension index. */
    static int dim(String op, int dim, int ndim) {
        int d = dim < 0 ? dim + ndim : dim;
        if (d < 0 || d >= ndim)
            throw new IllegalArgumentException(op + ": dimension " + dim + " out of range for a " + ndim + "-d tensor");
        return d;
    }

    static long prod(int[] shape, int from, int to) {
        long p = 1;
        for (int i = from; i < to; i++) p *= shape[i];
        return p;
    }

    /**
     * Strides that read a tensor of {@code shape}/{@code strides} as {@code newShape} without copying, or null when
     * the layout does not allow it (the algorithm of PyTorch's view: dimensions merge only where they are contiguous
     * with each other).
     */
    static long[] viewStrides(int[] shape, long[] strides, int[] newShape) {
        long[] out = new long[newShape.length];
        if (numel(shape) == 0) return contiguousStrides(newShape);
        if (shape.length == 0) {
            java.util.Arrays.fill(out, 1);
            return out;
        }
        int viewD = newShape.length - 1;
        long chunkBase = strides[shape.length - 1];
        long tensorNumel = 1, viewNumel = 1;
        for (int d = shape.length - 1; d >= 0; d--) {
            tensorNumel *= shape[d];
            if (d == 0 || (shape[d - 1] != 1 && strides[d - 1] != tensorNumel * chunkBase)) {
                while (viewD >= 0 && (viewNumel < tensorNumel || newShape[viewD] == 1)) {
                    out[viewD] = viewNumel * chunkBase;
                    viewNumel *= newShape[viewD];
                    viewD--;
                }
                if (viewNumel != tensorNumel) return null;
                if (d > 0) {
                    chunkBase = strides[d - 1];
                    tensorNumel = 1;
                    viewNumel = 1;
                }
            }
        }
        return viewD == -1 ? out : null;
    }
}
