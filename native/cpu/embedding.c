/*
 * embedding.c: token embedding lookup (forward) and its gradient (backward).
 *
 * Forward is a row gather, out[t, :] = weight[ids[t], :]. It only moves bytes, so every storage dtype works (F32,
 * F64, BF16, F16), and it is one memcpy per token: dim * elem bytes read and the same written.
 *
 * Backward is a scatter-add, dweight[ids[t], :] += dout[t, :], and a batch repeats ids (padding, common tokens), so
 * splitting the positions among threads would race on dweight rows. Instead each thread owns a rectangle of dweight:
 * a range of columns (whole 64-byte lines) and, when dim has fewer column blocks than there are threads, a range of
 * ids as well. Every thread reads all n ids (4 bytes each) and adds the parts of dout rows that fall in its rectangle,
 * in position order. So each dweight element is summed in the same order whatever the thread count: the result is
 * bitwise the same for 1 or 64 threads, with no atomics and no per-thread copies of the table. Traffic per token:
 * dim * elem read from dout, and a read-modify-write of a dweight row.
 *
 * Ids are checked before anything is written, so a bad id leaves out / dweight untouched.
 */
#include "internal.h"

#define EMB_COL_BLOCK 16

#define real float
#define FN(name) name##_f32
#include "embedding.inc"
#undef real
#undef FN

#define real double
#define FN(name) name##_f64
#include "embedding.inc"
#undef real
#undef FN

static int32_t check_ids(const char *fn, int64_t n, int64_t vocab, const int32_t *ids) {
    for (int64_t t = 0; t < n; t++)
        if (ids[t] < 0 || ids[t] >= vocab)
            return FAIL_ARG("%s: ids[%lld] = %d is outside [0, vocab = %lld)", fn, (long long)t, ids[t],
                            (long long)vocab);
    return RLHF4J_OK;
}

RLHF4J_API int32_t rlhf4j_embedding_forward(rlhf4j_stream s, int32_t dtype, int64_t n, int64_t dim, int64_t vocab,
                                            const int32_t *ids, const void *weight, void *out) {
    static const char *fn = "rlhf4j_embedding_forward";
    CHECK_STREAM(fn, s);
    if (dtype == RLHF4J_I32 || rlhf4j_dtype_size(dtype) == 0) {
        if (rlhf4j_dtype_size(dtype) == 0) return FAIL_ARG("%s: unknown dtype %d", fn, dtype);
        return FAIL_UNSUPPORTED("%s: dtype %s is not a floating-point dtype (f32, f64, bf16, f16)", fn,
                                rlhf4j_dtype_name(dtype));
    }
    CHECK_NONNEG(fn, n);
    CHECK_POS(fn, dim);
    CHECK_POS(fn, vocab);
    CHECK_PTR(fn, ids);
    CHECK_PTR(fn, weight);
    CHECK_PTR(fn, out);
    int32_t st = check_ids(fn, n, vocab, ids);
    if (st != RLHF4J_OK) return st;
    const size_t row = (size_t)dim * (size_t)rlhf4j_dtype_size(dtype);
    const char *w = weight;
    char *o = out;
#pragma omp parallel for num_threads(nthreads(s, n * dim)) schedule(static)
    for (int64_t t = 0; t < n; t++) memcpy(o + (size_t)t * row, w + (size_t)ids[t] * row, row);
    return RLHF4J_OK;
}

RLHF4J_API int32_t rlhf4j_embedding_backward(rlhf4j_stream s, int32_t dtype, int64_t n, int64_t dim, int64_t vocab,
                                             const int32_t *ids, const void *dout, void *dweight) {
    static const char *fn = "rlhf4j_embedding_backward";
    CHECK_STREAM(fn, s);
    CHECK_COMPUTE_DTYPE(fn, dtype);
    CHECK_NONNEG(fn, n);
    CHECK_POS(fn, dim);
    CHECK_POS(fn, vocab);
    CHECK_PTR(fn, ids);
    CHECK_PTR(fn, dout);
    if (dweight == NULL) return RLHF4J_OK; /* a frozen embedding */
    int32_t st = check_ids(fn, n, vocab, ids);
    if (st != RLHF4J_OK) return st;
    const int nt = nthreads(s, n * dim);
    if (dtype == RLHF4J_F32) embedding_backward_f32(nt, n, dim, vocab, ids, dout, dweight);
    else embedding_backward_f64(nt, n, dim, vocab, ids, dout, dweight);
    return RLHF4J_OK;
}
