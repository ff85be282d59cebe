/*
 * layernorm.c: LayerNorm (torch.nn.LayerNorm, biased variance) and RMSNorm (transformers' LlamaRMSNorm:
 * weight * (x * rsqrt(mean(x^2) + eps))), forward and backward, over rows of `dim`.
 *
 * Forward saves what backward needs and nothing else: mean and rstd per row (rstd only for RMSNorm), in the compute
 * dtype. They may be NULL when no backward follows. Traffic per element: read x (twice; the second read is from
 * cache for any dim that fits L2), read weight/bias (cached, shared by all rows), write y.
 *
 * Backward recomputes xhat = (x - mean) * rstd from the saved statistics instead of storing it (one tensor fewer to
 * keep between passes; xhat costs a multiply-add). Per element: read x and dy, write (or add to) dx.
 * Following the header, dweight / dbias accumulate (+=) into the step's flat gradient buffer, while dx overwrites
 * unless accumulate != 0. Parameter gradients are sums over all rows, so threads cannot write them directly: each
 * of nt row blocks writes its own partial sums (nt * 2 * dim, a per-thread scratch buffer kept between calls), and a
 * second pass over columns adds the partials, in block order, into dweight / dbias. No atomics, deterministic for a
 * given thread count. A NULL weight means no affine (weight of ones); dweight / dbias may be NULL when those
 * gradients are not wanted (dweight is still sum(dy * xhat) when weight is NULL).
 */
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>

/* ---- per-thread scratch, grown once, freed when the thread exits --------------------------------------------- */

typedef struct {
    void *p;
    size_t cap;
} scratch_buf;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_release(void *v) {
    scratch_buf *b = v;
    free(b->p);
    free(b);
}

static void scratch_init(void) { pthread_key_create(&scratch_key, scratch_release); }

static void *scratch(size_t bytes) {
    pthread_once(&scratch_once, scratch_init);
    scratch_buf *b = pthread_getspecific(scratch_key);
    if (b == NULL) {
        b = calloc(1, sizeof *b);
        if (b == NULL || pthread_setspecific(scratch_key, b) != 0) {
            free(b);
            return NULL;
        }
    }
    if (bytes > b->cap) {
        size_t cap = (bytes + 4095) & ~(size_t)4095;
        free(b->p);
        b->p = aligned_alloc(64, cap);
        b->cap = b->p != NULL ? cap : 0;
    }
    return b->p;
}

#define real float
#define FN(name) name##_f32
#define SQRT sqrtf
#include "layernorm.inc"
#undef real
#undef FN
#undef SQRT

#define real double
#define FN(name) name##_f64
#define SQRT sqrt
#include "layernorm.inc"
#undef real
#undef FN
#undef SQRT

static int32_t check_eps(const char *fn, double eps) {
    CHECK_ARG(eps >= 0 && isfinite(eps), "%s: eps = %g must be finite and >= 0", fn, eps);
    return RLHF4J_OK;
}

RLHF4J_API int32_t rlhf4j_layernorm_forward(rlhf4j_stream s, int32_t dtype, int64_t rows, int64_t dim, const void *x,
                                            const void *weight, const void *bias, double eps, void *y, void *mean,
                                            void *rstd) {
    static const char *fn = "rlhf4j_layernorm_forward";
    CHECK_STREAM(fn, s);
    CHECK_COMPUTE_DTYPE(fn, dtype);
    CHECK_NONNEG(fn, rows);
    CHECK_POS(fn, dim);
    CHECK_PTR(fn, x);
    CHECK_PTR(fn, y);
    int32_t st = check_eps(fn, eps);
    if (st != RLHF4J_OK) return st;
    const int nt = nthreads(s, rows * dim);
    if (dtype == RLHF4J_F32)
        layernorm_forward_f32(nt, rows, dim, x, weight, bias, (float)eps, y, mean, rstd);
    else
        layernorm_forward_f64(nt, rows, dim, x, weight, bias, eps, y, mean, rstd);
    return RLHF4J_OK;
}

/* The shared tail of both backward entry points, after their argument checks. */
static int32_t norm_backward(const char *fn, int rms, rlhf4j_stream s, int32_t dtype, int64_t rows, int64_t dim,
                             const void *x, const void *weight, const void *mean, const void *rstd, const void *dy,
                             void *dx, void *dweight, void *dbias, int32_t accumulate) {
    if (dx == NULL && dweight == NULL && dbias == NULL) return RLHF4J_OK;
    const int nt = nthreads(s, rows * dim);
    const size_t esz = (size_t)rlhf4j_dtype_size(dtype);
    void *unwanted = NULL; /* dx of an input that needs no gradient (a frozen embedding): computed, then dropped */
    if (dx == NULL && (dx = unwanted = calloc((size_t)rows * (size_t)dim + 1, esz)) == NULL)
        return rlhf4j_fail(RLHF4J_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    void *part = NULL;
    if (dweight != NULL || dbias != NULL) {
        part = scratch((size_t)nt * 2 * (size_t)dim * esz);
        if (part == NULL) {
            free(unwanted);
            return rlhf4j_fail(RLHF4J_ERR_OUT_OF_MEMORY, "%s: cannot allocate %lld bytes of scratch", fn,
                               (long long)((size_t)nt * 2 * (size_t)dim * esz));
        }
    }
    if (dtype == RLHF4J_F32)
        norm_backward_f32(rms, nt, rows, dim, x, weight, mean, rstd, dy, dx, dweight, dbias, accumulate != 0, part);
    else
        norm_backward_f64(rms, nt, rows, dim, x, weight, mean, rstd, dy, dx, dweight, dbias, accumulate != 0, part);
    free(unwanted);
    return RLHF4J_OK;
}

RLHF4J_API int32_t rlhf4j_layernorm_backward(rlhf4j_stream s, int32_t dtype, int64_t rows, int64_t dim,
                                             const void *x, const void *weight, const void *mean, const void *rstd,
                                             const void *dy, void *dx, void *dweight, void *dbias,
                                             int32_t accumulate) {
    static const char *fn = "rlhf4j_layernorm_backward";
    CHECK_STREAM(fn, s);
    CHECK_COMPUTE_DTYPE(fn, dtype);
    CHECK_NONNEG(fn, rows);
    CHECK_POS(fn, dim);
    CHECK_PTR(fn, x);
    CHECK_PTR(fn, mean);
    CHECK_PTR(fn, rstd);
    CHECK_PTR(fn, dy);
    return norm_backward(fn, 0, s, dtype, rows, dim, x, weight, mean, rstd, dy, dx, dweight, dbias, accumulate);
}

RLHF4J_API int32_t rlhf4j_rmsnorm_forward(rlhf4j_stream s, int32_t dtype, int64_t rows, int64_t dim, const void *x,
                                          const void *weight, double eps, void *y, void *rstd) {
    static const char *fn = "rlhf4j_rmsnorm_forward";
    CHECK_STREAM(fn, s);
    CHECK_COMPUTE_DTYPE(fn, dtype);
    CHECK_NONNEG(fn, rows);
    CHECK_POS(fn, dim);
    CHECK_PTR(fn, x);
    CHECK_PTR(fn, y);
    int32_t st = check_eps(fn, eps);
    if (st != RLHF4J_OK) return st;
    const int nt = nthreads(s, rows * dim);
    if (dtype == RLHF4J_F32) rmsnorm_forward_f32(nt, rows, dim, x, weight, (float)eps, y, rstd);
    else rmsnorm_forward_f64(nt, rows, dim, x, weight, eps, y, rstd);
    return RLHF4J_OK;
}

RLHF4J_API int32_t rlhf4j_rmsnorm_backward(rlhf4j_stream s, int32_t dtype, int64_t rows, int64_t dim, const void *x,
                                           const void *weight, const void *rstd, const void *dy, void *dx,
                                           void *dweight, int32_t accumulate) {
    static const char *fn = "rlhf4j_rmsnorm_backward";
    CHECK_STREAM(fn, s);
    CHECK_COMPUTE_DTYPE(fn, dtype);
    CHECK_NONNEG(fn, rows);
    CHECK_POS(fn, dim);
    CHECK_PTR(fn, x);
    CHECK_PTR(fn, rstd);
    CHECK_PTR(fn, dy);
    return norm_backward(fn, 1, s, dtype, rows, dim, x, weight, NULL, rstd, dy, dx, dweight, NULL, accumulate);
}
