package io.github.rlhf4j.tensor;

import io.github.rlhf4j.runtime.DType;

/**
 * In-place ops outside autograd, for optimizers and bookkeeping: each is one native call over a whole (flat) tensor.
 * Every write bumps the tensor's version, so a graph that saved the old values refuses to run backward.
 */
public final class InPlace {
    private InPlace() {}

    /** y = alpha * x + beta * y (EMA: alpha = 1 - decay, beta = decay). */
    public static void axpby(double alpha, Tensor x, double beta, Tensor y) {
        check("axpby", x, y);
        Ops.sameDtype("axpby", x, y);
        y.abi().axpby(y.stream(), y.dtype().code, y.numel(), alpha, x.address(), beta, y.address());
        y.bumpVersion();
    }

    /** Sum of squares of all elements (accumulated in double): the squared L2 norm. */
    public static double sumOfSquares(Tensor x) {
        return Reductions.sumOfSquares(x);
    }

    /**
     * One AdamW step over contiguous F32 {@code param}, {@code m}, {@code v} and {@code grad} (F32/BF16/F16), as
     * torch.optim.AdamW: see rlhf4j_adamw_step. {@code paramCopy} (nullable) receives the new weights in its dtype.
     */
    public static void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, double lr, double beta1, double beta2,
                             double eps, double weightDecay, long step, double gradScale, Tensor paramCopy) {
        String op = "adamw";
        check(op, param, grad);
        check(op, param, m);
        check(op, param, v);
        for (Tensor t : new Tensor[] {param, m, v}) Ops.dtype(op, t, DType.F32, "optimizer state");
        if (paramCopy != null) check(op, param, paramCopy);
        param.abi().adamwStep(param.stream(), param.numel(), param.address(), grad.address(), grad.dtype().code,
                m.address(), v.address(), lr, beta1, beta2, eps, weightDecay, step, gradScale, Ops.addr(paramCopy),
                paramCopy == null ? DType.F32.code : paramCopy.dtype().code);
        param.bumpVersion();
        m.bumpVersion();
        v.bumpVersion();
        if (paramCopy != null) paramCopy.bumpVersion();
    }

    private static void check(String op, Tensor a, Tensor b) {
        Ops.sameDevice(op, a, b);
        if (!a.isContiguous() || !b.isContiguous())
            throw new IllegalArgumentException(op + ": " + a.describe() + " and " + b.describe() + " must be contiguous");
        if (a.numel() != b.numel())
            throw new IllegalArgumentException(op + ": " + a.describe() + " and " + b.describe() + " differ in size");
    }
}
