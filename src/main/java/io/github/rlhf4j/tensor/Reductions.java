package io.github.rlhf4j.tensor;


/** Sums and means ({@code rlhf4j_reduce}), masked ones ({@code rlhf4j_masked_reduce}), and broadcast reversal. */
final class Reductions {
    private Reductions() {}

    // rlhf4j_reduce_op
    static final int SUM = 0, MEAN = 1, SUMSQ = 2;

    /** Sum (or mean) of all elements as a scalar of shape []. */
    static Tensor sumAll(Tensor x, boolean mean) {
        String name = mean ? "mean" : "sum";
        Ops.floating(name, x);
        Tensor xc = x.contiguous();
        Tensor y = Ops.out(x, x.dtype());
        long n = xc.numel();
        x.abi().reduce(x.stream(), mean ? MEAN : SUM, x.dtype().code, 1, n, 1, xc.address(), y.address(), 0);
        if (Autograd.needsGrad(xc))
            Autograd.record(name, y, new Tensor[] {xc}, (gy, g) -> g.write(0, (dx, acc) ->
                    broadcastInto(gy, dx, mean && n > 0 ? 1.0 / n : 1.0, acc)));
        return y;
    }

    /** Sum (or mean) over one dimension. */
    static Tensor reduceDim(Tensor x, int dim, boolean keepDim, boolean mean) {
        String name = mean ? "mean" : "sum";
        Ops.floating(name, x);
        int[] shape = x.shape();
        int d = Shape.dim(name, dim, shape.length);
        Tensor xc = x.contiguous();
        int[] kept = shape.clone();
        kept[d] = 1;
        int[] outShape = keepDim ? kept : remove(shape, d);
        Tensor y = Ops.out(x, x.dtype(), outShape);
        long outer = Shape.prod(shape, 0, d), n = shape[d], inner = Shape.prod(shape, d + 1, shape.length);
        x.abi().reduce(x.stream(), mean ? MEAN : SUM, x.dtype().code, outer, n, inner, xc.address(), y.address(), 0);
        if (Autograd.needsGrad(xc))
            Autograd.record(name, y, new Tensor[] {xc}, (gy, g) -> g.write(0, (dx, acc) ->
                    broadcastInto(gy.reshape(kept), dx, mean && n > 0 ? 1.0 / n : 1.0, acc)));
        return y;
    }

    static int[] remove(int[] shape, int d) {
        int[] out = new int[shape.length - 1];
        for (int i = 0, j = 0; i < shape.length; i++)
            if (i != d) out[j++] = shape[i];
        return out;
    }

    /** dst (+)= scale * src broadcast to dst's shape (src has dst's rank, or is a scalar). */
    static void broadcastInto(Tensor src, Tensor dst, double scale, boolean acc) {
        Tensor s = scale == 1.0 ? src : src.mul(scale);
        dst.copyFromTensor(s.reshape(padRank(s.shape(), dst.dim())).expand(dst.shape()), acc);
    }

    private static int[] padRank(int[] shape, int rank) {
        int[] out = new int[rank];
        java.util.Arrays.fill(out, 1);
        System.arraycopy(shape, 0, out, rank - shape.length, shape.length);
        return out;
    }

    /**
     * Sums {@code g} down to {@code shape}, the shape of an operand that was broadcast to g's shape: the reverse of
     * broadcasting, used by the gradients of broadcasting ops. Not recorded by autograd.
     */
    static Tensor sumTo(Tensor g, int[] shape) {
        int[] gs = g.shape();
        if (java.util.Arrays.equals(gs, shape)) return g;
        Tensor cur = g.contiguous();
        int lead = gs.length - shape.length;
        if (lead > 0) { // leading dimensions the operand did not have
            long n = Shape.prod(gs, 0, lead), inner = Shape.prod(gs, lead, gs.length);
            int[] rest = java.util.Arrays.copyOfRange(gs, lead, gs.length);
            Tensor r = Ops.out(g, g.dtype(), rest);
            g.abi().reduce(g.stream(), SUM, g.dtype().code, 1, n, inner, cur.address(), r.address(), 0);
            cur = r;
        }
        int[] cs = cur.shape();
        for (int d = 0; d < shape.length; d++) {
            if (shape[d] == 1 && cs[d] != 1) {
                long outer = Shape.prod(cs, 0, d), n = cs[d], inner = Shape.prod(cs, d + 1, cs.length);
                int[] next = cs.clone();
                next[d] = 1;
                Tensor r = Ops.out(g, g.dtype(), next);
                g.abi().reduce(g.stream(), SUM, g.dtype().code, outer, n, inner, cur.address(), r.address(), 0);
                cur = r;
                cs = next;
            } else if (shape[d] != cs[d]) {
                throw new IllegalArgumentException("sumTo: " + Shape.str(gs) + " cannot reduce to " + Shape.str(shape));
            }
        }
        return cur;
    }

    /** Global sum of squares (the squared L2 norm) of a contiguous floating tensor, accumulated in double. */
    static double sumOfSquares(Tensor x) {
        Tensor xc = x.contiguous();
        try (Scope tmp = Scope.open(x.device())) {
            Tensor r = tmp.empty(x.dtype());
            x.abi().reduce(x.stream(), SUMSQ, x.dtype().code, 1, xc.numel(), 1, xc.address(), r.address(), 0);
            return r.item();
        }
    }

    /**
     * Masked sum or mean: over the last dimension ({@code allDims} false: result has x's shape without it) or over
     * everything (a scalar). The mask has x's shape and dtype; it receives no gradient.
     */
    static Tensor masked(Tensor x, Tensor mask, boolean mean, boolean allDims) {
        String name = mean ? "maskedMean" : "maskedSum";
        Ops.floating(name, x);
        Ops.sameDevice(name, x, mask);
        Ops.sameDtype(name, x, mask);
        Ops.shape(name, mask, x.shape(), "mask");
        if (x.dim() == 0 && !allDims) throw new IllegalArgumentException(name + ": " + x.describe() + " has no last dimension");
        int[] shape = x.shape();
        long cols = allDims ? x.numel() : shape[shape.length - 1];
        long rows = allDims ? 1 : x.numel() / Math.max(cols, 1);
        int[] outShape = allDims ? new int[0] : remove(shape, shape.length - 1);
        Tensor xc = x.contiguous(), mc = mask.contiguous();
        Tensor y = Ops.out(x, x.dtype(), outShape);
        int op = mean ? MEAN : SUM, dt = x.dtype().code;
        x.abi().maskedReduce(x.stream(), op, dt, rows, cols, xc.address(), mc.address(), y.address());
        if (Autograd.needsGrad(xc))
            Autograd.record(name, y, new Tensor[] {xc, mc}, (gy, g) -> g.write(0, (dx, acc) ->
                    x.abi().maskedReduceBackward(x.stream(), op, dt, rows, cols, mc.address(), gy.address(),
                            dx.address(), Ops.flag(acc))));
        return y;
    }

}
