package io.github.rlhf4j.tensor;

import io.github.rlhf4j.runtime.HostScratch;
import java.util.Arrays;

/** Unary ops ({@code rlhf4j_unary}) and broadcasting binary ops ({@code rlhf4j_binary}) with their gradients. */
final class Elementwise {
    private Elementwise() {}

    // rlhf4j_unary_op
    static final int EXP = 0, LOG = 1, AFFINE = 2, CLAMP = 3, RELU = 4, GELU_TANH = 5, GELU_ERF = 6, SILU = 7,
            SIGMOID = 8, LOG_SIGMOID = 9, TANH = 10, SQUARE = 11, SQRT = 12, ABS = 13;
    private static final String[] UNARY = {"exp", "log", "affine", "clamp", "relu", "geluTanh", "gelu", "silu",
            "sigmoid", "logSigmoid", "tanh", "square", "sqrt", "abs"};

    // rlhf4j_binary_op
    static final int ADD = 0, SUB = 1, MUL = 2, DIV = 3, MAX = 4, MIN = 5;
    private static final String[] BINARY = {"add", "sub", "mul", "div", "maximum", "minimum"};

    static Tensor unary(int op, Tensor x, double alpha, double beta) {
        String name = UNARY[op];
        Ops.floating(name, x);
        Tensor xc = x.contiguous();
        Tensor y = Ops.out(x, x.dtype(), x.shape());
        long n = y.numel();
        int dt = x.dtype().code;
        x.abi().unary(x.stream(), op, dt, n, xc.address(), y.address(), alpha, beta);
        if (Autograd.needsGrad(xc))
            Autograd.record(name, y, new Tensor[] {xc}, (gy, g) -> g.write(0, (dx, acc) ->
                    xc.abi().unaryBackward(xc.stream(), op, dt, n, xc.address(), y.address(), gy.address(),
                            dx.address(), alpha, beta, Ops.flag(acc))));
        return y;
    }

    static Tensor binary(int op, Tensor a, Tensor b) {
        String name = BINARY[op];
        Ops.sameDevice(name, a, b);
        Ops.floating(name, a);
        Ops.sameDtype(name, a, b);
        int[] shape = Shape.broadcast(name, a.shape(), b.shape());
        long[] as = Shape.broadcastStrides(a.shape(), a.strides(), shape);
        long[] bs = Shape.broadcastStrides(b.shape(), b.strides(), shape);
        Tensor out = Ops.out(a, a.dtype(), shape);
        int dt = a.dtype().code;
        a.abi().binary(a.stream(), op, dt, shape.length, HostScratch.longs(0, shape), a.address(),
                HostScratch.longs(1, as), b.address(), HostScratch.longs(2, bs), out.address());
        if (Autograd.needsGrad(a, b))
            Autograd.record(name, out, new Tensor[] {a, b}, (gy, g) -> {
                for (int i = 0; i < 2; i++) {
                    if (!g.needs(i)) continue;
                    Tensor in = i == 0 ? a : b;
                    boolean full = Arrays.equals(in.shape(), shape);
                    if (op == ADD || (op == SUB && i == 0)) {
                        g.add(i, full ? gy : Reductions.sumTo(gy, in.shape()));
                    } else if (op == SUB) {
                        Tensor neg = gy.mul(-1.0);
                        g.add(i, full ? neg : Reductions.sumTo(neg, in.shape()));
                    } else if (full) {
                        final int which = i;
                        g.write(i, (dst, acc) -> backward(op, dt, shape, a, as, b, bs, gy, which, dst, acc));
                    } else {
                        Tensor tmp = Scope.current().empty(in.dtype(), shape);
                        backward(op, dt, shape, a, as, b, bs, gy, i, tmp, false);
                        g.add(i, Reductions.sumTo(tmp, in.shape()));
                    }
                }
            });
        return out;
    }

    private static void backward(int op, int dt, int[] shape, Tensor a, long[] as, Tensor b, long[] bs, Tensor gy,
                                 int which, Tensor dst, boolean acc) {
        a.abi().binaryBackward(a.stream(), op, dt, shape.length, HostScratch.longs(0, shape), a.address(),
                HostScratch.longs(1, as), b.address(), HostScratch.longs(2, bs), gy.address(),
                which == 0 ? dst.address() : 0L, which == 1 ? dst.address() : 0L, Ops.flag(acc));
    }
}
