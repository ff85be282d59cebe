/*
 * softmax.c: softmax / log_softmax over rows, and token log-probabilities (the log_softmax + gather of a language
 * model's loss, fused so the [rows, V] log-probabilities are never written).
 *
 * softmax forward: max pass, exp-and-sum pass (writes exp(x - max) to y), scale pass over y: reads x twice (the
 * second from L2 for rows up to ~100k floats) and writes y once. log_softmax writes y = x - (max + log(sum)).
 * softmax backward reads y and dy once for the row's dot product, then again (cached) to write dx.
 *
 * logprobs forward: per row, max pass and sum-of-exp pass over the V logits (2 reads of V elements, from L2 for
 * V = 152k floats = 608 KB) and one gather; it writes 2 numbers per row (logprob and the saved lse), nothing of
 * size V. Rows whose target is ignore_index cost nothing (SFT prompts). Backward writes the full dlogits row once:
 * dlogits = g * (onehot(target) - exp(logit - lse)), one read of the logits and one write per element; rows with
 * g == 0 (ignored, or masked by the caller) only zero their row (or skip it when accumulating).
 *
 * Numerics: every exp is of (x - row max) or (x - lse) <= 0, so nothing overflows; sums of exps are formed in
 * vector lanes over blocks of SUM_BLOCK elements and the blocks are added in double. The f32 path uses a
 * polynomial exp (Cephes' expf, <= 1.5 ulp) written so that GCC vectorises it; libm's expf would not vectorise
 * without -ffast-math. f64 uses libm. Targets are checked before anything is written: an out-of-range target
 * (other than ignore_index) fails naming the row and the value.
 */
#include "internal.h"
#include "vmath.h"

#define SUM_BLOCK 2048
#define ROW_CHUNK 4


#define real float
#define FN(name) name##_f32
#define EXP exp_f32
#define LOG log
#include "softmax.inc"
#undef real
#undef FN
#undef EXP
#undef LOG

#define real double
#define FN(name) name##_f64
#define EXP exp
#define LOG log
#include "softmax.inc"
#undef real
#undef FN
#undef EXP
#undef LOG

RLHF4J_API int32_t rlhf4j_softmax_forward(rlhf4j_stream s, int32_t dtype, int32_t log, int64_t rows, int64_t cols,
                                          const void *x, void *y) {
    static const char *fn = "rlhf4j_softmax_forward";
    CHECK_STREAM(fn, s);
    CHECK_COMPUTE_DTYPE(fn, dtype);
    CHECK_NONNEG(fn, rows);
    CHECK_POS(fn, cols);
    CHECK_PTR(fn, x);
    CHECK_PTR(fn, y);
    const int nt = nthreads(s, rows * cols);
    if (dtype == RLHF4J_F32) softmax_forward_f32(nt, log != 0, rows, cols, x, y);
    else softmax_forward_f64(nt, log != 0, rows, cols, x, y);
    return RLHF4J_OK;
}

RLHF4J_API int32_t rlhf4j_softmax_backward(rlhf4j_stream s, int32_t dtype, int32_t log, int64_t rows, int64_t cols,
                                           const void *y, const void *dy, void *dx, int32_t accumulate) {
    static const char *fn = "rlhf4j_softmax_backward";
    CHECK_STREAM(fn, s);
    CHECK_COMPUTE_DTYPE(fn, dtype);
    CHECK_NONNEG(fn, rows);
    CHECK_POS(fn, cols);
    CHECK_PTR(fn, y);
    CHECK_PTR(fn, dy);
    if (dx == NULL) return RLHF4J_OK; /* no gradient wanted */
    const int nt = nthreads(s, rows * cols);
    if (dtype == RLHF4J_F32) softmax_backward_f32(nt, log != 0, rows, cols, y, dy, dx, accumulate != 0);
    else softmax_backward_f64(nt, log != 0, rows, cols, y, dy, dx, accumulate != 0);
    return RLHF4J_OK;
}

static int32_t check_targets(const char *fn, int64_t rows, int64_t V, const int32_t *targets, int32_t ignore_index) {
    for (int64_t r = 0; r < rows; r++) {
        const int32_t t = targets[r];
        if (t != ignore_index && (t < 0 || t >= V))
            return FAIL_ARG("%s: targets[%lld] = %d is outside [0, V = %lld) and is not ignore_index (%d)", fn,
                            (long long)r, t, (long long)V, ignore_index);
    }
    return RLHF4J_OK;
}

RLHF4J_API int32_t rlhf4j_logprobs_forward(rlhf4j_stream s, int32_t dtype, int64_t rows, int64_t V,
                                           const void *logits, int64_t logits_row_stride, const int32_t *targets,
                                           int32_t ignore_index, void *logprobs, void *lse) {
    static const char *fn = "rlhf4j_logprobs_forward";
    CHECK_STREAM(fn, s);
    CHECK_COMPUTE_DTYPE(fn, dtype);
    CHECK_NONNEG(fn, rows);
    CHECK_POS(fn, V);
    CHECK_ARG(logits_row_stride >= V, "%s: logits_row_stride = %lld must be >= V = %lld", fn,
              (long long)logits_row_stride, (long long)V);
    CHECK_PTR(fn, logits);
    CHECK_PTR(fn, targets);
    CHECK_PTR(fn, logprobs);
    int32_t st = check_targets(fn, rows, V, targets, ignore_index);
    if (st != RLHF4J_OK) return st;
    const int nt = nthreads(s, rows * V);
    if (dtype == RLHF4J_F32)
        logprobs_forward_f32(nt, rows, V, logits, logits_row_stride, targets, ignore_index, logprobs, lse);
    else
        logprobs_forward_f64(nt, rows, V, logits, logits_row_stride, targets, ignore_index, logprobs, lse);
    return RLHF4J_OK;
}

RLHF4J_API int32_t rlhf4j_logprobs_backward(rlhf4j_stream s, int32_t dtype, int64_t rows, int64_t V,
                                            const void *logits, int64_t logits_row_stride, const int32_t *targets,
                                            int32_t ignore_index, const void *lse, const void *dlogprobs,
                                            void *dlogits, int64_t dlogits_row_stride, int32_t accumulate) {
    static const char *fn = "rlhf4j_logprobs_backward";
    CHECK_STREAM(fn, s);
    CHECK_COMPUTE_DTYPE(fn, dtype);
    CHECK_NONNEG(fn, rows);
    CHECK_POS(fn, V);
    CHECK_ARG(logits_row_stride >= V, "%s: logits_row_stride = %lld must be >= V = %lld", fn,
              (long long)logits_row_stride, (long long)V);
    CHECK_ARG(dlogits_row_stride >= V, "%s: dlogits_row_stride = %lld must be >= V = %lld", fn,
              (long long)dlogits_row_stride, (long long)V);
    CHECK_PTR(fn, logits);
    CHECK_PTR(fn, targets);
    CHECK_PTR(fn, lse);
    CHECK_PTR(fn, dlogprobs);
    if (dlogits == NULL) return RLHF4J_OK; /* no gradient wanted */
    int32_t st = check_targets(fn, rows, V, targets, ignore_index);
    if (st != RLHF4J_OK) return st;
    const int nt = nthreads(s, rows * V);
    if (dtype == RLHF4J_F32)
        logprobs_backward_f32(nt, rows, V, logits, logits_row_stride, targets, ignore_index, lse, dlogprobs,
                              dlogits, dlogits_row_stride, accumulate != 0);
    else
        logprobs_backward_f64(nt, rows, V, logits, logits_row_stride, targets, ignore_index, lse, dlogprobs,
                              dlogits, dlogits_row_stride, accumulate != 0);
    return RLHF4J_OK;
}
