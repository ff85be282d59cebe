package io.github.rlhf4j.tensor;

import io.github.rlhf4j.runtime.DType;

/**
 * The fused transformer ops, each one native call forward and one backward (torch.nn.functional's counterpart):
 * linear, embedding, layer and RMS norms, activations, softmax, attention, rotary embedding, dropout, token
 * log-probabilities, cross-entropy, masked reductions and concat.
 *
 * <p>Statistics saved for backward (norm mean/rstd, attention and logprob log-sum-exp) are F32 tensors, or F64 for
 * F64 inputs; they live in the current scope with the activations.
 */
public final class Functional {
    private Functional() {}

    private static DType statType(Tensor x) {
        return x.dtype() == DType.F64 ? DType.F64 : DType.F32;
    }

    // ---- linear layers --------------------------------------------------------------------------------------------

    /** y = x W^T + b for W stored [out, in] (torch.nn.Linear); bias may be null. */
    public static Tensor linear(Tensor x, Tensor weight, Tensor bias) {
        return Linalg.linear(x, weight, bias, false);
    }

    /** y = x W + b for W stored [in, out] (GPT-2's Conv1D); bias may be null. */
    public static Tensor linearInOut(Tensor x, Tensor weight, Tensor bias) {
        return Linalg.linear(x, weight, bias, true);
    }

    /** Rows of {@code weight} [vocab, dim] picked by I32 {@code ids} of any shape: result [..., dim]. */
    public static Tensor embedding(Tensor ids, Tensor weight) {
        String op = "embedding";
        Ops.dtype(op, ids, DType.I32, "ids");
        Ops.sameDevice(op, ids, weight);
        if (weight.dim() != 2) throw new IllegalArgumentException(op + ": weight " + weight.describe() + " must be 2-d");
        Tensor idc = ids.contiguous(), wc = weight.contiguous();
        long n = ids.numel(), vocab = weight.size(0), dim = weight.size(1);
        int[] shape = java.util.Arrays.copyOf(ids.shape(), ids.dim() + 1);
        shape[ids.dim()] = (int) dim;
        Tensor out = Ops.out(weight, weight.dtype(), shape);
        int dt = weight.dtype().code;
        weight.abi().embeddingForward(weight.stream(), dt, n, dim, vocab, idc.address(), wc.address(), out.address());
        if (Autograd.needsGrad(wc))
            Autograd.record(op, out, new Tensor[] {idc, wc}, (gy, g) -> g.accumulate(1, dw ->
                    weight.abi().embeddingBackward(weight.stream(), dt, n, dim, vocab, idc.address(), gy.address(),
                            dw.address())));
        return out;
    }

    // ---- normalisation --------------------------------------------------------------------------------------------

    /** torch.nn.functional.layer_norm over the last dimension; weight and bias may be null. */
    public static Tensor layerNorm(Tensor x, Tensor weight, Tensor bias, double eps) {
        String op = "layerNorm";
        int dim = checkNorm(op, x, weight, bias);
        long rows = x.numel() / Math.max(dim, 1);
        Tensor xc = x.contiguous(), wc = cont(weight), bc = cont(bias);
        Tensor y = Ops.out(x, x.dtype(), x.shape());
        boolean grad = Autograd.needsGrad(xc, wc, bc);
        Tensor mean = grad ? Ops.out(x, statType(x), (int) rows) : null;
        Tensor rstd = grad ? Ops.out(x, statType(x), (int) rows) : null;
        int dt = x.dtype().code;
        var abi = x.abi();
        long s = x.stream();
        abi.layernormForward(s, dt, rows, dim, xc.address(), Ops.addr(wc), Ops.addr(bc), eps, y.address(),
                Ops.addr(mean), Ops.addr(rstd));
        if (grad)
            Autograd.record(op, y, new Tensor[] {xc, wc, bc}, (gy, g) -> {
                Autograd.Target dx = g.target(0);
                Tensor dw = g.accumulating(1), db = g.accumulating(2);
                abi.layernormBackward(s, dt, rows, dim, xc.address(), Ops.addr(wc), mean.address(), rstd.address(),
                        gy.address(), dx == null ? 0L : dx.dst().address(), Ops.addr(dw), Ops.addr(db),
                        dx != null && dx.accumulate() ? 1 : 0);
            });
        return y;
    }

    /** Llama's RMSNorm over the last dimension: x / sqrt(mean(x^2) + eps) * weight; weight may be null. */
    public static Tensor rmsNorm(Tensor x, Tensor weight, double eps) {
        String op = "rmsNorm";
        int dim = checkNorm(op, x, weight, null);
        long rows = x.numel() / Math.max(dim, 1);
        Tensor xc = x.contiguous(), wc = cont(weight);
        Tensor y = Ops.out(x, x.dtype(), x.shape());
        boolean grad = Autograd.needsGrad(xc, wc);
        Tensor rstd = grad ? Ops.out(x, statType(x), (int) rows) : null;
        int dt = x.dtype().code;
        var abi = x.abi();
        long s = x.stream();
        abi.rmsnormForward(s, dt, rows, dim, xc.address(), Ops.addr(wc), eps, y.address(), Ops.addr(rstd));
        if (grad)
            Autograd.record(op, y, new Tensor[] {xc, wc}, (gy, g) -> {
                Autograd.Target dx = g.target(0);
                Tensor dw = g.accumulating(1);
                abi.rmsnormBackward(s, dt, rows, dim, xc.address(), Ops.addr(wc), rstd.address(), gy.address(),
                        dx == null ? 0L : dx.dst().address(), Ops.addr(dw), dx != null && dx.accumulate() ? 1 : 0);
            });
        return y;
    }

    private static int checkNorm(String op, Tensor x, Tensor weight, Tensor bias) {
        Ops.floating(op, x);
        if (x.dim() == 0) throw new IllegalArgumentException(op + ": " + x.describe() + " has no feature dimension");
        int dim = x.size(-1);
        for (Tensor p : new Tensor[] {weight, bias}) {
            if (p == null) continue;
            Ops.sameDevice(op, x, p);
            Ops.sameDtype(op, x, p);
            Ops.shape(op, p, new int[] {dim}, "parameter");
        }
        return dim;
    }

    private static Tensor cont(Tensor t) {
        return t == null ? null : t.contiguous();
    }

    // ---- activations ----------------------------------------------------------------------------------------------

    /** Exact GELU (erf), torch.nn.functional.gelu. */
    public static Tensor gelu(Tensor x) {
        return Elementwise.unary(Elementwise.GELU_ERF, x, 0, 0);
    }

    /** GELU with the tanh approximation: GPT-2's gelu_new, torch's gelu(approximate='tanh'). */
    public static Tensor geluTanh(Tensor x) {
        return Elementwise.unary(Elementwise.GELU_TANH, x, 0, 0);
    }

    /** x * sigmoid(x) (SwiGLU's gate). */
    public static Tensor silu(Tensor x) {
        return Elementwise.unary(Elementwise.SILU, x, 0, 0);
    }

    public static Tensor relu(Tensor x) {
        return Elementwise.unary(Elementwise.RELU, x, 0, 0);
    }

    public static Tensor sigmoid(Tensor x) {
        return Elementwise.unary(Elementwise.SIGMOID, x, 0, 0);
    }

    /** log(sigmoid(x)), computed stably: the pairwise reward-model loss is -logSigmoid(chosen - rejected). */
    public static Tensor logSigmoid(Tensor x) {
        return Elementwise.unary(Elementwise.LOG_SIGMOID, x, 0, 0);
    }

    // ---- softmax and log-probabilities ----------------------------------------------------------------------------

    /** Softmax over the last dimension. */
    public static Tensor softmax(Tensor x) {
        return softmax(x, false);
    }

    /** Log-softmax over the last dimension. */
    public static Tensor logSoftmax(Tensor x) {
        return softmax(x, true);
    }

    private static Tensor softmax(Tensor x, boolean log) {
        String op = log ? "logSoftmax" : "softmax";
        Ops.floating(op, x);
        if (x.dim() == 0) throw new IllegalArgumentException(op + ": " + x.describe() + " has no last dimension");
        long cols = x.size(-1), rows = x.numel() / Math.max(cols, 1);
        Tensor xc = x.contiguous();
        Tensor y = Ops.out(x, x.dtype(), x.shape());
        int dt = x.dtype().code, lg = log ? 1 : 0;
        var abi = x.abi();
        long s = x.stream();
        abi.softmaxForward(s, dt, lg, rows, cols, xc.address(), y.address());
        if (Autograd.needsGrad(xc))
            Autograd.record(op, y, new Tensor[] {xc}, (gy, g) -> g.write(0, (dx, acc) ->
                    abi.softmaxBackward(s, dt, lg, rows, cols, y.address(), gy.address(), dx.address(), Ops.flag(acc))));
        return y;
    }

    /**
     * log softmax(logits)[target] for each position: logits [..., V], I32 targets [...] → logprobs [...]. Positions
     * whose target equals {@code ignoreIndex} give 0 and no gradient; any other target outside [0, V) is an error.
     */
    public static Tensor logprobs(Tensor logits, Tensor targets, int ignoreIndex) {
        String op = "logprobs";
        Ops.floating(op, logits);
        Ops.dtype(op, targets, DType.I32, "targets");
        Ops.sameDevice(op, logits, targets);
        int[] ls = logits.shape();
        if (ls.length == 0 || !java.util.Arrays.equals(java.util.Arrays.copyOf(ls, ls.length - 1), targets.shape()))
            throw new IllegalArgumentException(op + ": logits " + logits.describe() + " and targets "
                    + targets.describe() + " must have shapes [..., V] and [...]");
        long vocab = ls[ls.length - 1], rows = targets.numel();
        Tensor lc = logits.contiguous(), tc = targets.contiguous();
        Tensor out = Ops.out(logits, logits.dtype(), targets.shape());
        Tensor lse = Ops.out(logits, statType(logits), (int) rows);
        int dt = logits.dtype().code;
        var abi = logits.abi();
        long s = logits.stream();
        abi.logprobsForward(s, dt, rows, vocab, lc.address(), vocab, tc.address(), ignoreIndex, out.address(),
                lse.address());
        if (Autograd.needsGrad(lc))
            Autograd.record(op, out, new Tensor[] {lc, tc}, (gy, g) -> g.write(0, (dl, acc) ->
                    abi.logprobsBackward(s, dt, rows, vocab, lc.address(), vocab, tc.address(), ignoreIndex,
                            lse.address(), gy.address(), dl.address(), vocab, Ops.flag(acc))));
        return out;
    }

    /** Token log-probabilities with no ignored positions. */
    public static Tensor logprobs(Tensor logits, Tensor targets) {
        return logprobs(logits, targets, Integer.MIN_VALUE);
    }

    /**
     * Mean cross-entropy over the targets that are not {@code ignoreIndex} (torch.nn.functional.cross_entropy with
     * ignore_index). Fails if every target is ignored, where torch would return NaN.
     */
    public static Tensor crossEntropy(Tensor logits, Tensor targets, int ignoreIndex) {
        long count = 0;
        for (int t : targets.toIntArray())
            if (t != ignoreIndex) count++;
        if (count == 0)
            throw new IllegalArgumentException("crossEntropy: every one of the " + targets.numel() + " targets is "
                    + "ignore_index " + ignoreIndex + ", so the mean is undefined");
        return logprobs(logits, targets, ignoreIndex).sum().mul(-1.0 / count);
    }

    // ---- attention ------------------------------------------------------------------------------------------------

    /**
     * Scaled dot-product attention, fused (flash-style: no [T, T] matrix kept): q [B, Tq, Hq, D], k and v
     * [B, Tk, Hkv, D] (Hq a multiple of Hkv: grouped-query attention) → [B, Tq, Hq, D].
     *
     * <p>q, k and v may be views whose rows are strided (column slices of one fused projection, split into heads by
     * reshape): only the last two dimensions must be dense. Query t sits at position t + Tk - Tq; {@code causal} hides
     * later keys, {@code window} > 0 hides keys {@code window} or more positions back (GPT-Neo's local layers),
     * {@code keyMask} (I32 [B, Tk], 0 = padding) hides padding; a query that sees no key gives zeros.
     */
    public static Tensor attention(Tensor q, Tensor k, Tensor v, Tensor keyMask, double scale, boolean causal,
                                   int window) {
        String op = "attention";
        Ops.floating(op, q);
        for (Tensor t : new Tensor[] {k, v}) {
            Ops.sameDevice(op, q, t);
            Ops.sameDtype(op, q, t);
        }
        if (q.dim() != 4 || k.dim() != 4 || v.dim() != 4)
            throw new IllegalArgumentException(op + ": q, k, v must be [B, T, H, D], got " + q.describe() + ", "
                    + k.describe() + ", " + v.describe());
        int b = q.size(0), tq = q.size(1), hq = q.size(2), d = q.size(3);
        int tk = k.size(1), hkv = k.size(2);
        if (k.size(0) != b || v.size(0) != b || k.size(3) != d || v.size(3) != d || v.size(1) != tk || v.size(2) != hkv)
            throw new IllegalArgumentException(op + ": shapes do not agree: q " + q.describe() + ", k " + k.describe()
                    + ", v " + v.describe());
        if (hkv == 0 || hq % hkv != 0)
            throw new IllegalArgumentException(op + ": " + hq + " query heads are not a multiple of " + hkv + " kv heads");
        if (keyMask != null) {
            Ops.dtype(op, keyMask, DType.I32, "keyMask");
            Ops.shape(op, keyMask, new int[] {b, tk}, "keyMask");
        }
        Tensor qc = rowStrided(q), kc = rowStrided(k), vc = rowStrided(v);
        Tensor mc = keyMask == null ? null : keyMask.contiguous();
        Tensor out = Ops.out(q, q.dtype(), b, tq, hq, d);
        boolean grad = Autograd.needsGrad(qc, kc, vc);
        Tensor lse = grad ? Ops.out(q, statType(q), b, hq, tq) : null;
        int dt = q.dtype().code, c = causal ? 1 : 0;
        var abi = q.abi();
        long s = q.stream();
        long qrs = rowStride(qc), krs = rowStride(kc), vrs = rowStride(vc);
        abi.attentionForward(s, dt, b, tq, tk, hq, hkv, d, qc.address(), qrs, kc.address(), krs, vc.address(), vrs,
                Ops.addr(mc), scale, c, window, out.address(), Ops.addr(lse));
        if (grad)
            Autograd.record(op, out, new Tensor[] {qc, kc, vc, mc}, (gy, g) -> {
                Autograd.Target[] t = {g.target(0), g.target(1), g.target(2)};
                boolean acc = unifyAccumulate(t);
                abi.attentionBackward(s, dt, b, tq, tk, hq, hkv, d, qc.address(), qrs, kc.address(), krs,
                        vc.address(), vrs, Ops.addr(mc), scale, c, window, out.address(), gy.address(), lse.address(),
                        dst(t[0]), (long) hq * d, dst(t[1]), (long) hkv * d, dst(t[2]), (long) hkv * d, Ops.flag(acc));
            });
        return out;
    }

    /**
     * Attention of q [B, Tq, Hq, D] against the first {@code length} positions of a KV cache kCache, vCache
     * [B, Tmax, Hkv, D] (contiguous), the last Tq of them being q's own: causal, {@code window} > 0 for local
     * attention, {@code keyMask} (I32 [B, Tmax], 0 = padding) may be null. Forward only: generation, not training.
     */
    public static Tensor attentionDecode(Tensor q, Tensor kCache, Tensor vCache, int length, Tensor keyMask,
                                         double scale, int window) {
        String op = "attentionDecode";
        Ops.floating(op, q);
        for (Tensor t : new Tensor[] {kCache, vCache}) {
            Ops.sameDevice(op, q, t);
            Ops.sameDtype(op, q, t);
            if (!t.isContiguous()) throw new IllegalArgumentException(op + ": cache " + t.describe() + " must be contiguous");
        }
        if (q.dim() != 4 || kCache.dim() != 4 || !java.util.Arrays.equals(kCache.shape(), vCache.shape()))
            throw new IllegalArgumentException(op + ": q must be [B, Tq, Hq, D] and both caches [B, Tmax, Hkv, D], got "
                    + q.describe() + ", " + kCache.describe() + ", " + vCache.describe());
        int b = q.size(0), tq = q.size(1), hq = q.size(2), d = q.size(3);
        int tmax = kCache.size(1), hkv = kCache.size(2);
        if (kCache.size(0) != b || kCache.size(3) != d)
            throw new IllegalArgumentException(op + ": q " + q.describe() + " does not match cache " + kCache.describe());
        if (keyMask != null) {
            Ops.dtype(op, keyMask, DType.I32, "keyMask");
            Ops.shape(op, keyMask, new int[] {b, tmax}, "keyMask");
            Ops.sameDevice(op, q, keyMask);
            if (!keyMask.isContiguous()) keyMask = keyMask.contiguous();
        }
        if (Autograd.needsGrad(q, kCache, vCache))
            throw new IllegalStateException(op + " is for generation and has no backward: run it under Autograd.noGrad()");
        Tensor qc = rowStrided(q);
        Tensor out = Ops.out(q, q.dtype(), b, tq, hq, d);
        q.abi().attentionDecode(q.stream(), q.dtype().code, b, tq, length, tmax, hq, hkv, d, qc.address(),
                rowStride(qc), kCache.address(), vCache.address(), Ops.addr(keyMask), scale, window, out.address());
        return out;
    }

    /** A [B, T, H, D] view with dense heads and uniformly strided rows, or a contiguous copy. */
    private static Tensor rowStrided(Tensor t) {
        long[] st = t.strides();
        int tt = t.size(1), h = t.size(2), d = t.size(3);
        boolean dense = (d <= 1 || st[3] == 1) && (h <= 1 || st[2] == d);
        boolean rows = t.size(0) <= 1 || st[0] == (long) tt * st[1];
        boolean wide = tt <= 1 || st[1] >= (long) h * d;
        return dense && rows && wide ? t : t.contiguous();
    }

    private static long rowStride(Tensor t) {
        return t.size(1) <= 1 ? (long) t.size(2) * t.size(3) : t.strides()[1];
    }

    /** One accumulate flag for a native op writing several gradients: zero-fill the fresh ones if they disagree. */
    private static boolean unifyAccumulate(Autograd.Target[] targets) {
        boolean any = false, all = true;
        for (Autograd.Target t : targets) {
            if (t == null) continue;
            any |= t.accumulate();
            all &= t.accumulate();
        }
        if (any && !all)
            for (Autograd.Target t : targets)
                if (t != null && !t.accumulate()) t.dst().fill(0);
        return any;
    }

    private static long dst(Autograd.Target t) {
        return t == null ? 0L : t.dst().address();
    }

    /**
     * Rotary position embedding (transformers' rotate-half layout) on the first {@code rotaryDim} of each head of
     * x [B, T, H, D] (rows may be strided, as for attention), at I32 {@code positions} [B, T], with
     * {@code invFreq} [rotaryDim / 2] in F32 (F64 for F64 x) carrying any rope scaling.
     */
    public static Tensor rope(Tensor x, Tensor positions, Tensor invFreq, int rotaryDim) {
        String op = "rope";
        Ops.floating(op, x);
        if (x.dim() != 4) throw new IllegalArgumentException(op + ": x " + x.describe() + " must be [B, T, H, D]");
        int b = x.size(0), t = x.size(1), h = x.size(2), d = x.size(3);
        Ops.dtype(op, positions, DType.I32, "positions");
        Ops.shape(op, positions, new int[] {b, t}, "positions");
        Ops.dtype(op, invFreq, statType(x), "invFreq");
        if (rotaryDim <= 0 || rotaryDim > d || rotaryDim % 2 != 0)
            throw new IllegalArgumentException(op + ": rotaryDim " + rotaryDim + " must be even and in (0, " + d + "]");
        Ops.shape(op, invFreq, new int[] {rotaryDim / 2}, "invFreq");
        Ops.sameDevice(op, x, positions);
        Ops.sameDevice(op, x, invFreq);
        Tensor xc = rowStrided(x), pc = positions.contiguous(), fc = invFreq.contiguous();
        Tensor y = Ops.out(x, x.dtype(), b, t, h, d);
        int dt = x.dtype().code;
        var abi = x.abi();
        long s = x.stream();
        abi.ropeForward(s, dt, b, t, h, d, rotaryDim, xc.address(), rowStride(xc), pc.address(), fc.address(),
                y.address());
        if (Autograd.needsGrad(xc))
            Autograd.record(op, y, new Tensor[] {xc, pc, fc}, (gy, g) -> g.write(0, (dx, acc) ->
                    abi.ropeBackward(s, dt, b, t, h, d, rotaryDim, gy.address(), pc.address(), fc.address(),
                            dx.address(), (long) h * d, Ops.flag(acc))));
        return y;
    }

    // ---- dropout --------------------------------------------------------------------------------------------------

    /**
     * Inverted dropout: each element kept with probability 1 - p and scaled by 1 / (1 - p). The mask comes from
     * Philox(seed) at counters offset.. (the same on every backend) and is regenerated in backward, not stored.
     */
    public static Tensor dropout(Tensor x, double p, long seed, long offset) {
        String op = "dropout";
        Ops.floating(op, x);
        if (!(p >= 0 && p < 1)) throw new IllegalArgumentException(op + ": p = " + p + " must be in [0, 1)");
        if (p == 0) return x;
        Tensor xc = x.contiguous();
        Tensor y = Ops.out(x, x.dtype(), x.shape());
        long n = x.numel();
        int dt = x.dtype().code;
        var abi = x.abi();
        long s = x.stream();
        abi.dropoutForward(s, dt, n, xc.address(), y.address(), p, seed, offset);
        if (Autograd.needsGrad(xc))
            Autograd.record(op, y, new Tensor[] {xc}, (gy, g) -> g.write(0, (dx, acc) ->
                    abi.dropoutBackward(s, dt, n, gy.address(), dx.address(), p, seed, offset, Ops.flag(acc))));
        return y;
    }

    // ---- masked reductions and joins -------------------------------------------------------------------------------

    /** sum(x * mask) over all elements, a scalar; the mask (same shape and dtype) gets no gradient. */
    public static Tensor maskedSum(Tensor x, Tensor mask) {
        return Reductions.masked(x, mask, false, true);
    }

    /** sum(x * mask) / sum(mask) over all elements (0 when the mask is empty): PPO's loss averaging. */
    public static Tensor maskedMean(Tensor x, Tensor mask) {
        return Reductions.masked(x, mask, true, true);
    }

    /** Masked sum over the last dimension. */
    public static Tensor maskedSumLastDim(Tensor x, Tensor mask) {
        return Reductions.masked(x, mask, false, false);
    }

    /** Masked mean over the last dimension (0 for rows with an empty mask). */
    public static Tensor maskedMeanLastDim(Tensor x, Tensor mask) {
        return Reductions.masked(x, mask, true, false);
    }

    /** Joins tensors along {@code dim}. */
    public static Tensor concat(int dim, Tensor... parts) {
        return Views.concat(dim, parts);
    }
}
