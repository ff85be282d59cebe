package io.github.rlhf4j.tensor;

import java.util.Arrays;

/**
 * Matrix products on {@code rlhf4j_gemm}. A transposed view needs no copy: a matrix whose column stride is 1 is read
 * as is (ld = row stride), one whose row stride is 1 is read with the transpose flag (ld = column stride).
 *
 * <p>Gradients of C = A.B: dA = dC.B^T and dB = A^T.dC, each one more gemm with the flags flipped; a weight shared
 * across the batch (a linear layer) gets dW = dY^T.X over all rows in one gemm.
 */
final class Linalg {
    private Linalg() {}

    /** How gemm reads a matrix view: transpose flag and leading dimension. */
    private record MatrixView(int trans, long ld) {}

    /** The gemm reading of the last two dimensions of {@code t}, or null when it needs a copy first. */
    private static MatrixView matrixView(Tensor t) {
        int n = t.dim();
        long[] st = t.strides();
        int rows = t.size(n - 2), cols = t.size(n - 1);
        long sr = st[n - 2], sc = st[n - 1];
        if ((rows > 1 && sr == 0) || (cols > 1 && sc == 0)) return null; // broadcast inside the matrix
        if (cols == 1 || sc == 1) {
            long ld = rows == 1 ? cols : sr;
            if (ld >= cols) return new MatrixView(0, Math.max(ld, 1));
        }
        if (rows == 1 || sr == 1) {
            long ld = cols == 1 ? rows : sc;
            if (ld >= rows) return new MatrixView(1, Math.max(ld, 1));
        }
        return null;
    }

    /** The stride between matrices when the leading dimensions collapse to one (0 when broadcast), else -1. */
    private static long batchStride(Tensor t, int batchDims) {
        int[] sh = t.shape();
        long[] st = t.strides();
        long stride = -1, prevStride = 0;
        int prevSize = 0;
        for (int i = batchDims - 1; i >= 0; i--) {
            if (sh[i] == 1) continue;
            if (stride == -1) stride = st[i];
            else if (st[i] != prevStride * prevSize) return -1;
            prevStride = st[i];
            prevSize = sh[i];
        }
        return stride == -1 ? 0 : stride;
    }

    static Tensor matmul(Tensor a, Tensor b) {
        Ops.sameDevice("matmul", a, b);
        Ops.floating("matmul", a);
        Ops.sameDtype("matmul", a, b);
        if (a.dim() < 2 || b.dim() < 2)
            throw new IllegalArgumentException("matmul: operands must be at least 2-d, got " + a.describe() + " and "
                    + b.describe() + " (unsqueeze vectors)");
        int m = a.size(-2), k = a.size(-1), k2 = b.size(-2), n = b.size(-1);
        if (k != k2)
            throw new IllegalArgumentException("matmul: " + a.describe() + " and " + b.describe()
                    + " do not multiply (inner dimensions " + k + " != " + k2 + ")");
        if (b.dim() == 2 && a.dim() > 2) { // activations times a weight: one gemm over all rows
            int[] lead = Arrays.copyOf(a.shape(), a.dim() - 1);
            Tensor y = matmul(a.reshape(-1, k), b);
            int[] outShape = Arrays.copyOf(lead, lead.length + 1);
            outShape[lead.length] = n;
            return y.reshape(outShape);
        }
        int[] aBatch = Arrays.copyOf(a.shape(), a.dim() - 2), bBatch = Arrays.copyOf(b.shape(), b.dim() - 2);
        int[] batch = Shape.broadcast("matmul", aBatch, bBatch);
        int[] aFull = concat(batch, m, k), bFull = concat(batch, k, n);
        Tensor ae = prepare(a.expand(aFull), batch.length), be = prepare(b.expand(bFull), batch.length);
        int[] outShape = concat(batch, m, n);
        Tensor c = Ops.out(a, a.dtype(), outShape);
        gemm(ae, be, c, batch.length, false, false, false);
        if (Autograd.needsGrad(ae, be))
            Autograd.record("matmul", c, new Tensor[] {ae, be}, (gc, g) -> {
                // dA = dC . B^T, dB = A^T . dC
                g.write(0, (da, acc) -> gemm(gc, be, da, batch.length, false, true, acc));
                g.write(1, (db, acc) -> gemm(ae, gc, db, batch.length, true, false, acc));
            });
        return c;
    }

    private static int[] concat(int[] batch, int r, int c) {
        int[] out = Arrays.copyOf(batch, batch.length + 2);
        out[batch.length] = r;
        out[batch.length + 1] = c;
        return out;
    }

    /** A view gemm can read directly, or a contiguous copy. */
    private static Tensor prepare(Tensor t, int batchDims) {
        if (matrixView(t) != null && batchStride(t, batchDims) >= 0) return t;
        return t.contiguous();
    }

    /**
     * out = op(x) . op(y) (+ out when acc), batched over the leading {@code batchDims} of x's shape, which out (a
     * contiguous tensor) shares; {@code tx}/{@code ty} transpose the logical operand. An operand broadcast over the
     * batch has batch stride 0.
     */
    static void gemm(Tensor x, Tensor y, Tensor out, int batchDims, boolean tx, boolean ty, boolean acc) {
        MatrixView vx = matrixView(x), vy = matrixView(y);
        long sx = batchStride(x, batchDims), sy = batchStride(y, batchDims);
        if (vx == null || sx < 0) {
            x = x.contiguous();
            vx = matrixView(x);
            sx = batchStride(x, batchDims);
        }
        if (vy == null || sy < 0) {
            y = y.contiguous();
            vy = matrixView(y);
            sy = batchStride(y, batchDims);
        }
        int n = x.dim();
        long m = tx ? x.size(n - 1) : x.size(n - 2);
        long k = tx ? x.size(n - 2) : x.size(n - 1);
        long cols = ty ? y.size(y.dim() - 2) : y.size(y.dim() - 1);
        long batch = Shape.prod(x.shape(), 0, batchDims);
        int ta = vx.trans() ^ (tx ? 1 : 0), tb = vy.trans() ^ (ty ? 1 : 0);
        x.abi().gemm(x.stream(), ta, tb, m, cols, k, 1.0, x.address(), vx.ld(), sx, y.address(), vy.ld(), sy,
                x.dtype().code, acc ? 1.0 : 0.0, out.address(), cols, m * cols, out.dtype().code, batch, 0L);
    }

    /**
     * y = x . W^T + b for a weight stored [out, in] (torch.nn.Linear), or x . W + b for one stored [in, out]
     * (GPT-2's Conv1D) when {@code inOut}. x is [..., in]; the bias is fused into the gemm.
     */
    static Tensor linear(Tensor x, Tensor w, Tensor bias, boolean inOut) {
        String op = inOut ? "linear(Conv1D)" : "linear";
        Ops.sameDevice(op, x, w);
        Ops.sameDevice(op, x, bias);
        Ops.floating(op, x);
        Ops.sameDtype(op, x, w);
        Ops.sameDtype(op, x, bias);
        if (w.dim() != 2) throw new IllegalArgumentException(op + ": weight " + w.describe() + " must be 2-d");
        if (x.dim() < 1) throw new IllegalArgumentException(op + ": input " + x.describe() + " must have a feature dimension");
        int in = inOut ? w.size(0) : w.size(1), outF = inOut ? w.size(1) : w.size(0);
        if (x.size(-1) != in)
            throw new IllegalArgumentException(op + ": input " + x.describe() + " has " + x.size(-1)
                    + " features, weight " + w.describe() + " expects " + in);
        if (bias != null && (bias.dim() != 1 || bias.size(0) != outF))
            throw new IllegalArgumentException(op + ": bias " + bias.describe() + " must have shape [" + outF + "]");
        Tensor xc = x.contiguous(), wc = w.contiguous(), bc = bias == null ? null : bias.contiguous();
        long rows = x.numel() / in;
        int[] outShape = x.shape();
        outShape[outShape.length - 1] = outF;
        Tensor y = Ops.out(x, x.dtype(), outShape);
        int dt = x.dtype().code;
        long s = x.stream();
        var abi = x.abi();
        // y[rows, out] = x[rows, in] . op(W)
        abi.gemm(s, 0, inOut ? 0 : 1, rows, outF, in, 1.0, xc.address(), in, 0, wc.address(), inOut ? outF : in, 0,
                dt, 0.0, y.address(), outF, 0, dt, 1, Ops.addr(bc));
        if (Autograd.needsGrad(xc, wc, bc))
            Autograd.record(op, y, new Tensor[] {xc, wc, bc}, (gy, g) -> {
                // dx[rows, in] = dy[rows, out] . W[out, in]  (W^T when stored [in, out])
                g.write(0, (dx, acc) -> abi.gemm(s, 0, inOut ? 1 : 0, rows, in, outF, 1.0, gy.address(), outF, 0,
                        wc.address(), inOut ? outF : in, 0, dt, acc ? 1.0 : 0.0, dx.address(), in, 0, dt, 1, 0L));
                if (inOut) // dW[in, out] = x^T . dy
                    g.write(1, (dw, acc) -> abi.gemm(s, 1, 0, in, outF, rows, 1.0, xc.address(), in, 0, gy.address(),
                            outF, 0, dt, acc ? 1.0 : 0.0, dw.address(), outF, 0, dt, 1, 0L));
                else // dW[out, in] = dy^T . x
                    g.write(1, (dw, acc) -> abi.gemm(s, 1, 0, outF, in, rows, 1.0, gy.address(), outF, 0, xc.address(),
                            in, 0, dt, acc ? 1.0 : 0.0, dw.address(), in, 0, dt, 1, 0L));
                // db[out] = sum over rows of dy
                g.write(2, (db, acc) -> abi.reduce(s, Reductions.SUM, dt, 1, rows, outF, gy.address(), db.address(),
                        Ops.flag(acc)));
            });
        return y;
    }
}
