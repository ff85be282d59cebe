package io.github.rlhf4j.tensor;

import io.github.rlhf4j.runtime.DType;
import java.util.Arrays;

/**
 * Shape ops. Reshape, transpose, permute, slice, select, (un)squeeze and expand are views: new strides over the same
 * storage, no copy. contiguous, concat and dtype conversion copy ({@code rlhf4j_copy_strided}, {@code rlhf4j_convert}).
 */
final class Views {
    private Views() {}

    private static Tensor view(Tensor x, long offset, int[] shape, long[] strides) {
        return new Tensor(x.storage, offset, shape, strides, x.dtype());
    }

    /** Records a view op whose backward is "put the gradient back into x's shape". */
    private static Tensor recordView(String op, Tensor x, Tensor out, java.util.function.UnaryOperator<Tensor> back) {
        if (Autograd.needsGrad(x)) Autograd.record(op, out, new Tensor[] {x}, (gy, g) -> g.add(0, back.apply(gy)));
        return out;
    }

    static Tensor reshape(Tensor x, int[] requested) {
        int[] shape = requested.clone();
        long known = 1;
        int infer = -1;
        for (int i = 0; i < shape.length; i++) {
            if (shape[i] == -1) {
                if (infer >= 0) throw new IllegalArgumentException("reshape: more than one -1 in " + Shape.str(requested));
                infer = i;
            } else if (shape[i] < 0) {
                throw new IllegalArgumentException("reshape: bad size in " + Shape.str(requested));
            } else {
                known *= shape[i];
            }
        }
        long n = x.numel();
        if (infer >= 0) {
            if (known == 0 || n % known != 0)
                throw new IllegalArgumentException("reshape: cannot reshape " + x.describe() + " to " + Shape.str(requested));
            shape[infer] = (int) (n / known);
        }
        if (Shape.numel(shape) != n)
            throw new IllegalArgumentException("reshape: cannot reshape " + x.describe() + " (" + n + " elements) to "
                    + Shape.str(requested));
        Shape.check(shape);
        if (Arrays.equals(shape, x.shape())) return x;
        int[] original = x.shape();
        long[] st = Shape.viewStrides(original, x.strides(), shape);
        Tensor c = st != null ? x : x.contiguous();
        if (st == null) st = Shape.contiguousStrides(shape);
        return recordView("reshape", c, view(c, c.offset, shape, st), gy -> gy.reshape(original));
    }

    static Tensor permute(Tensor x, int[] dims) {
        int n = x.dim();
        if (dims.length != n)
            throw new IllegalArgumentException("permute: " + Arrays.toString(dims) + " does not order " + n + " dimensions");
        int[] shape = x.shape(), out = new int[n], inverse = new int[n];
        long[] st = x.strides(), os = new long[n];
        boolean[] used = new boolean[n];
        for (int i = 0; i < n; i++) {
            int d = Shape.dim("permute", dims[i], n);
            if (used[d]) throw new IllegalArgumentException("permute: dimension " + d + " repeated in " + Arrays.toString(dims));
            used[d] = true;
            out[i] = shape[d];
            os[i] = st[d];
            inverse[d] = i;
        }
        return recordView("permute", x, view(x, x.offset, out, os), gy -> gy.permute(inverse));
    }

    static Tensor transpose(Tensor x, int a, int b) {
        int n = x.dim();
        int[] dims = new int[n];
        for (int i = 0; i < n; i++) dims[i] = i;
        int da = Shape.dim("transpose", a, n), db = Shape.dim("transpose", b, n);
        dims[da] = db;
        dims[db] = da;
        return permute(x, dims);
    }

    static Tensor slice(Tensor x, int dim, int start, int end) {
        int[] shape = x.shape();
        int d = Shape.dim("slice", dim, shape.length);
        int size = shape[d];
        int s = start < 0 ? start + size : start, e = end < 0 ? end + size : end;
        if (s < 0 || e > size || s > e)
            throw new IllegalArgumentException("slice: [" + start + ", " + end + ") is out of range for dimension "
                    + dim + " of " + x.describe());
        int[] out = shape.clone();
        out[d] = e - s;
        long[] st = x.strides();
        Tensor v = view(x, x.offset + s * st[d], out, st);
        if (Autograd.needsGrad(x))
            Autograd.record("slice", v, new Tensor[] {x}, (gy, g) -> g.write(0, (dx, acc) -> {
                if (!acc) dx.fill(0);
                dx.slice(d, s, e).copyFromTensor(gy, acc);
            }));
        return v;
    }

    static Tensor select(Tensor x, int dim, int index) {
        int d = Shape.dim("select", dim, x.dim());
        int i = index < 0 ? index + x.size(d) : index;
        if (i < 0 || i >= x.size(d))
            throw new IllegalArgumentException("select: index " + index + " out of range for dimension " + dim + " of "
                    + x.describe());
        return slice(x, d, i, i + 1).squeeze(d);
    }

    static Tensor unsqueeze(Tensor x, int dim) {
        int n = x.dim();
        int d = dim < 0 ? dim + n + 1 : dim;
        if (d < 0 || d > n) throw new IllegalArgumentException("unsqueeze: dimension " + dim + " out of range for " + x.describe());
        int[] shape = x.shape(), out = new int[n + 1];
        long[] st = x.strides(), os = new long[n + 1];
        for (int i = 0, j = 0; i <= n; i++) {
            if (i == d) {
                out[i] = 1;
                os[i] = j < n ? st[j] * shape[j] : 1;
            } else {
                out[i] = shape[j];
                os[i] = st[j];
                j++;
            }
        }
        int[] original = x.shape();
        return recordView("unsqueeze", x, view(x, x.offset, out, os), gy -> gy.reshape(original));
    }

    static Tensor squeeze(Tensor x, int dim) {
        int d = Shape.dim("squeeze", dim, x.dim());
        if (x.size(d) != 1)
            throw new IllegalArgumentException("squeeze: dimension " + dim + " of " + x.describe() + " is not 1");
        int[] original = x.shape();
        Tensor v = view(x, x.offset, Reductions.remove(x.shape(), d), removeL(x.strides(), d));
        return recordView("squeeze", x, v, gy -> gy.reshape(original));
    }

    private static long[] removeL(long[] a, int d) {
        long[] out = new long[a.length - 1];
        for (int i = 0, j = 0; i < a.length; i++)
            if (i != d) out[j++] = a[i];
        return out;
    }

    static Tensor expand(Tensor x, int[] shape) {
        int[] b = Shape.broadcast("expand", x.shape(), shape);
        if (!Arrays.equals(b, shape))
            throw new IllegalArgumentException("expand: " + x.describe() + " cannot expand to " + Shape.str(shape));
        if (Arrays.equals(shape, x.shape())) return x;
        long[] st = Shape.broadcastStrides(x.shape(), x.strides(), shape);
        int[] original = x.shape();
        return recordView("expand", x, view(x, x.offset, shape.clone(), st), gy -> Reductions.sumTo(gy, original));
    }

    static Tensor contiguous(Tensor x) {
        Tensor out = Ops.out(x, x.dtype(), x.shape());
        out.copyFromTensor(x, false);
        if (Autograd.needsGrad(x)) Autograd.record("contiguous", out, new Tensor[] {x}, (gy, g) -> g.add(0, gy));
        return out;
    }

    static Tensor convert(Tensor x, DType target) {
        Tensor xc = x.contiguous();
        Tensor out = Ops.out(x, target, x.shape());
        x.abi().convert(x.stream(), x.dtype().code, xc.address(), target.code, out.address(), x.numel());
        if (Autograd.needsGrad(xc)) {
            if (!target.isFloatingPoint())
                throw new IllegalArgumentException("to: converting " + x.describe() + ", which requires grad, to "
                        + target + " would cut the graph; detach() first");
            DType source = x.dtype();
            Autograd.record("to", out, new Tensor[] {xc}, (gy, g) -> g.add(0, gy.to(source)));
        }
        return out;
    }

    /** Joins tensors along {@code dim}; all other dimensions must match. */
    static Tensor concat(int dim, Tensor... parts) {
        if (parts.length == 0) throw new IllegalArgumentException("concat: no tensors");
        Tensor first = parts[0];
        int d = Shape.dim("concat", dim, first.dim());
        int[] shape = first.shape();
        int total = 0;
        for (Tensor p : parts) {
            Ops.sameDevice("concat", first, p);
            Ops.sameDtype("concat", first, p);
            int[] ps = p.shape();
            if (ps.length != shape.length)
                throw new IllegalArgumentException("concat: " + p.describe() + " and " + first.describe() + " differ in rank");
            for (int i = 0; i < ps.length; i++)
                if (i != d && ps[i] != shape[i])
                    throw new IllegalArgumentException("concat: " + p.describe() + " and " + first.describe()
                            + " differ in dimension " + i);
            total += ps[d];
        }
        shape[d] = total;
        Tensor out = Ops.out(first, first.dtype(), shape);
        int[] offsets = new int[parts.length + 1];
        for (int i = 0; i < parts.length; i++) {
            offsets[i + 1] = offsets[i] + parts[i].size(d);
            try (Autograd.NoGrad ignored = Autograd.noGrad()) {
                out.slice(d, offsets[i], offsets[i + 1]).copyFromTensor(parts[i], false);
            }
        }
        if (Autograd.needsGrad(parts))
            Autograd.record("concat", out, parts.clone(), (gy, g) -> {
                for (int i = 0; i < parts.length; i++) g.add(i, gy.slice(d, offsets[i], offsets[i + 1]));
            });
        return out;
    }
}
