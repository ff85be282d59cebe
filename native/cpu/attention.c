/*
 * attention.c: multi-head attention, softmax(scale q k^T + mask) v, flash-style: the [Tq, Tk] score matrix is
 * never stored. This is the CPU backend's attention (what every CPU user trains and generates with) and the
 * reference the CUDA flash kernels are tested against.
 *
 * Semantics (rlhf4j.h): q, k, v rows (tokens) are q/k/v_row_stride apart, so they can be column slices of one fused
 * qkv projection; query head h reads kv head h / (Hq / Hkv) (GQA, MQA); query t is at absolute position
 * pos = t + Tk - Tq (a decode step or a prefill against a cache); it sees key j iff
 *   key_mask[b, j] != 0  (NULL: all keys)  and  (!causal || j <= pos)  and  (window <= 0 || j > pos - window).
 * window is GPT-Neo's local attention (j in (pos - window, pos]). scale is the caller's (1/sqrt(D), or 1.0 for
 * GPT-Neo). A row that sees no key (a left-padding position under a key mask) gives out = 0, gradient 0, and
 * lse = the largest finite value of the stat dtype (FLT_MAX / DBL_MAX): finite, and any exp(s - lse) with it is 0.
 *
 * Forward: one task per (batch, kv head, run of query positions), the run sized so the tile holds up to ATT_ROWS
 * rows over the G query heads of the group (K and V are then read once per tile for the whole group). The tile's
 * queries are transposed once (Q^T, scaled) so that they sit in vector lanes; per key block of ATT_BK keys the
 * scores S^T = K Q^T come straight from k's rows, masking runs only for blocks that straddle a causal / window /
 * padding boundary, the online softmax (running max and sum per row, O rescaled when the max grows) updates all rows
 * lane-parallel, and O += P V has D in lanes. Key blocks outside the tile's causal / window range are never
 * visited, so causal attention costs half. lse = max + log(sum) is saved. Traffic: q and out once; K and V once per
 * tile that sees them (from L2 across the tiles of a head); FLOPs 4 Tq Tk D per head, half that causal.
 *
 * Backward (FlashAttention-2's recurrence, with the saved lse instead of a second softmax pass):
 *   D_t = sum_d dO O;  P = exp(scale q k^T - lse);  dP = dO v^T;  dS = P (dP - D_t)
 *   dv += P^T dO;  dk += scale dS^T q;  dq += scale dS k.
 * dk and dv of a kv head are sums over every query of every head of its group, and dq over every key: one task per
 * (batch, kv head) owns all three for its group, so no two threads write the same element and nothing is atomic.
 * The task walks key blocks (dK, dV of the block accumulate in a tile, written once) and, inside, the query tiles
 * that see the block (dq rows are added to in place). When there are fewer groups than 4 per thread (GQA with a
 * small batch), keys are also cut into C chunks; each chunk adds its dq into its own partial buffer (C x dq of the
 * group, a per-thread scratch buffer kept between calls) and a last pass sums the partials into dq in chunk order.
 * Work is 5 matmuls of Tq Tk D per head (S, dP, dV, dK, dQ), half causal. Results do not depend on the thread
 * count except through C (only when groups < 4 x threads), and are deterministic run to run. Numerics: D_t stands
 * in for sum_j P dP (equal in exact arithmetic); in f32 the two differ by rounding, so where a row's P sits on one
 * key, dS = P (dP - D_t) is ~1e-6 |dO| |v| of noise instead of an exact 0, as in every FlashAttention-2.
 *
 * Tiles live in a per-thread scratch buffer, grown once and kept (freed at thread exit): ~ (3 R D + 4 D BK + 2 R BK)
 * reals per thread (R = ATT_ROWS), plus Tq x G reals for D_t. No [Tq, Tk] buffer exists anywhere.
 */
#include "internal.h"
#include "vmath.h"

#include <float.h>
#include <pthread.h>
#include <stdlib.h>

#define ATT_BK 64                           /* keys per tile: score lanes */
#define ATT_ROWS 64                         /* query rows per tile (positions x heads of a GQA group) */
#define ATT_LN (64 / (int)sizeof(real))     /* lanes of a 64-byte vector of the current dtype */
#define ATT_INLINE static inline __attribute__((always_inline))

/* The arguments of one call, shared by every task. Pointers are typed by the instantiation that reads them. */
typedef struct {
    int B, Tq, Tk, Hq, Hkv, D, G; /* G = Hq / Hkv query heads per kv head */
    int causal, window, accumulate;
    int64_t off; /* Tk - Tq: query t is at position t + off */
    const void *q, *k, *v;
    int64_t qs, ks, vs;
    int64_t kbs, vbs, mbs; /* batch strides of k, v, key_mask (Tk rows unless a KV cache holds Tmax) */
    const int32_t *key_mask;
    double scale;
    void *out, *lse;                   /* forward outputs */
    const void *o, *dout, *lse_in;     /* backward inputs */
    void *dq, *dk, *dv;
    int64_t dqs, dks, dvs;
} attn_args;

/* ---- visibility (shared by both dtypes) ------------------------------------------------------------------------ */

/* The key range [key_lo, key_hi) that query position t can see before the key mask. */
ATT_INLINE int64_t key_lo(const attn_args *a, int64_t t) {
    if (a->window <= 0) return 0;
    const int64_t lo = t + a->off - a->window + 1;
    return lo < 0 ? 0 : (lo > a->Tk ? a->Tk : lo);
}
ATT_INLINE int64_t key_hi(const attn_args *a, int64_t t) {
    if (!a->causal) return a->Tk;
    const int64_t hi = t + a->off + 1;
    return hi < 0 ? 0 : (hi > a->Tk ? a->Tk : hi);
}

/* Copies the key mask of keys [j0, j0 + nk) of batch b into kv (1 = visible) and returns how many are visible. */
ATT_INLINE int block_key_mask(const attn_args *a, int b, int j0, int nk, int32_t *restrict kv) {
    int n = 0;
    if (a->key_mask == NULL) {
        for (int jj = 0; jj < nk; jj++) kv[jj] = 1;
        return nk;
    }
    const int32_t *restrict km = a->key_mask + (int64_t)b * a->mbs + j0;
    for (int jj = 0; jj < nk; jj++) {
        kv[jj] = km[jj] != 0;
        n += kv[jj];
    }
    return n;
}

/* Whether every row of queries [t0, t1) sees every key of [j0, j0 + nk) by position (causal, window). */
ATT_INLINE int block_all_visible(const attn_args *a, int t0, int t1, int j0, int nk) {
    if (a->causal && (int64_t)j0 + nk - 1 > (int64_t)t0 + a->off) return 0;
    if (a->window > 0 && (int64_t)j0 <= (int64_t)t1 - 1 + a->off - a->window) return 0;
    return 1;
}

/* ---- per-thread scratch, grown once, freed when the thread exits --------------------------------------------- */

enum { SCRATCH_CALL = 0, SCRATCH_TILE = 1 }; /* the caller's per-call buffer; a worker's tiles */

typedef struct {
    void *p[2];
    size_t cap[2];
} scratch_bufs;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_release(void *v) {
    scratch_bufs *b = v;
    free(b->p[0]);
    free(b->p[1]);
    free(b);
}

static void scratch_init(void) { pthread_key_create(&scratch_key, scratch_release); }

static void *scratch(int slot, size_t bytes) {
    pthread_once(&scratch_once, scratch_init);
    scratch_bufs *b = pthread_getspecific(scratch_key);
    if (b == NULL) {
        b = calloc(1, sizeof *b);
        if (b == NULL || pthread_setspecific(scratch_key, b) != 0) {
            free(b);
            return NULL;
        }
    }
    if (bytes > b->cap[slot]) {
        size_t cap = (bytes + 4095) & ~(size_t)4095;
        free(b->p[slot]);
        b->p[slot] = aligned_alloc(64, cap);
        b->cap[slot] = b->p[slot] != NULL ? cap : 0;
    }
    return b->p[slot];
}



#define real float
#define FN(name) name##_f32
#define EXP exp_f32
#define LOG logf
#define STAT_MAX FLT_MAX
#include "attention.inc"
#undef real
#undef FN
#undef EXP
#undef LOG
#undef STAT_MAX

#define real double
#define FN(name) name##_f64
#define EXP exp
#define LOG log
#define STAT_MAX DBL_MAX
#include "attention.inc"
#undef real
#undef FN
#undef EXP
#undef LOG
#undef STAT_MAX

/* Checks shared by forward and backward; fills the shape part of *a. */
static int32_t check_attention(const char *fn, rlhf4j_stream s, int32_t dtype, int32_t B, int32_t Tq, int32_t Tk,
                               int32_t Hq, int32_t Hkv, int32_t D, const void *q, int64_t q_row_stride,
                               const void *k, int64_t k_row_stride, const void *v, int64_t v_row_stride,
                               double scale, int32_t window, attn_args *a) {
    CHECK_STREAM(fn, s);
    CHECK_COMPUTE_DTYPE(fn, dtype);
    CHECK_NONNEG(fn, B);
    CHECK_NONNEG(fn, Tq);
    CHECK_NONNEG(fn, Tk);
    CHECK_POS(fn, Hq);
    CHECK_POS(fn, Hkv);
    CHECK_POS(fn, D);
    CHECK_ARG(Hq % Hkv == 0, "%s: Hq = %d must be a multiple of Hkv = %d", fn, Hq, Hkv);
    CHECK_ARG(q_row_stride >= (int64_t)Hq * D, "%s: q_row_stride = %lld must be >= Hq * D = %lld", fn,
              (long long)q_row_stride, (long long)Hq * D);
    CHECK_ARG(k_row_stride >= (int64_t)Hkv * D, "%s: k_row_stride = %lld must be >= Hkv * D = %lld", fn,
              (long long)k_row_stride, (long long)Hkv * D);
    CHECK_ARG(v_row_stride >= (int64_t)Hkv * D, "%s: v_row_stride = %lld must be >= Hkv * D = %lld", fn,
              (long long)v_row_stride, (long long)Hkv * D);
    CHECK_ARG(isfinite(scale), "%s: scale = %g must be finite", fn, scale);
    CHECK_NONNEG(fn, window);
    CHECK_PTR(fn, q);
    CHECK_PTR(fn, k);
    CHECK_PTR(fn, v);
    memset(a, 0, sizeof *a);
    a->B = B;
    a->Tq = Tq;
    a->Tk = Tk;
    a->Hq = Hq;
    a->Hkv = Hkv;
    a->D = D;
    a->G = Hq / Hkv;
    a->off = (int64_t)Tk - Tq;
    a->q = q;
    a->k = k;
    a->v = v;
    a->qs = q_row_stride;
    a->ks = k_row_stride;
    a->vs = v_row_stride;
    a->kbs = (int64_t)Tk * k_row_stride;
    a->vbs = (int64_t)Tk * v_row_stride;
    a->mbs = Tk;
    a->scale = scale;
    a->window = window;
    return RLHF4J_OK;
}

/* Threads for a call of ~work multiply-adds. */
static int attn_threads(rlhf4j_stream s, const attn_args *a) {
    const double work = (double)a->B * a->Hq * (double)a->Tq * (double)a->Tk * a->D;
    return nthreads(s, work > 1e15 ? (int64_t)1e15 : (int64_t)work);
}

RLHF4J_API int32_t rlhf4j_attention_forward(rlhf4j_stream s, int32_t dtype, int32_t B, int32_t Tq, int32_t Tk,
                                            int32_t Hq, int32_t Hkv, int32_t D, const void *q, int64_t q_row_stride,
                                            const void *k, int64_t k_row_stride, const void *v,
                                            int64_t v_row_stride, const int32_t *key_mask, double scale,
                                            int32_t causal, int32_t window, void *out, void *lse) {
    static const char *fn = "rlhf4j_attention_forward";
    attn_args a;
    int32_t st = check_attention(fn, s, dtype, B, Tq, Tk, Hq, Hkv, D, q, q_row_stride, k, k_row_stride, v,
                                 v_row_stride, scale, window, &a);
    if (st != RLHF4J_OK) return st;
    CHECK_PTR(fn, out);
    a.key_mask = key_mask;
    a.causal = causal != 0;
    a.out = out;
    a.lse = lse;
    const int nt = attn_threads(s, &a);
    st = dtype == RLHF4J_F32 ? attn_forward_f32(&a, nt) : attn_forward_f64(&a, nt);
    if (st != RLHF4J_OK) return rlhf4j_fail(st, "%s: cannot allocate tile scratch", fn);
    return RLHF4J_OK;
}

RLHF4J_API int32_t rlhf4j_attention_decode(rlhf4j_stream s, int32_t dtype, int32_t B, int32_t Tq, int32_t Tk,
                                           int32_t Tmax, int32_t Hq, int32_t Hkv, int32_t D, const void *q,
                                           int64_t q_row_stride, const void *k_cache, const void *v_cache,
                                           const int32_t *key_mask, double scale, int32_t window, void *out) {
    static const char *fn = "rlhf4j_attention_decode";
    CHECK_ARG(Tq <= Tk && Tk <= Tmax, "%s: need 0 <= Tq <= Tk <= Tmax, got Tq = %d, Tk = %d, Tmax = %d", fn, Tq, Tk,
              Tmax);
    attn_args a;
    const int64_t rs = (int64_t)Hkv * D;
    int32_t st = check_attention(fn, s, dtype, B, Tq, Tk, Hq, Hkv, D, q, q_row_stride, k_cache, rs, v_cache, rs,
                                 scale, window, &a);
    if (st != RLHF4J_OK) return st;
    CHECK_PTR(fn, out);
    /* The same tiles as the forward: a tile holds every query head of a kv group, so each cache row is read once
     * per step for the whole group; only the batch strides differ (Tmax rows per sequence). */
    a.kbs = a.vbs = (int64_t)Tmax * rs;
    a.mbs = Tmax;
    a.key_mask = key_mask;
    a.causal = 1;
    a.out = out;
    const int nt = attn_threads(s, &a);
    st = dtype == RLHF4J_F32 ? attn_forward_f32(&a, nt) : attn_forward_f64(&a, nt);
    if (st != RLHF4J_OK) return rlhf4j_fail(st, "%s: cannot allocate tile scratch", fn);
    return RLHF4J_OK;
}

static int32_t attention_backward_into(rlhf4j_stream s, const char *fn, attn_args *ap, int32_t dtype, int32_t B,
                                       int32_t Tq, int32_t Tk, int32_t Hq, int32_t Hkv, int32_t D,
                                       const int32_t *key_mask, int32_t causal, const void *out, const void *dout,
                                       const void *lse, void *dq, int64_t dq_row_stride, void *dk,
                                       int64_t dk_row_stride, void *dv, int64_t dv_row_stride, int32_t accumulate);

RLHF4J_API int32_t rlhf4j_attention_backward(rlhf4j_stream s, int32_t dtype, int32_t B, int32_t Tq, int32_t Tk,
                                             int32_t Hq, int32_t Hkv, int32_t D, const void *q,
                                             int64_t q_row_stride, const void *k, int64_t k_row_stride,
                                             const void *v, int64_t v_row_stride, const int32_t *key_mask,
                                             double scale, int32_t causal, int32_t window, const void *out,
                                             const void *dout, const void *lse, void *dq, int64_t dq_row_stride,
                                             void *dk, int64_t dk_row_stride, void *dv, int64_t dv_row_stride,
                                             int32_t accumulate) {
    static const char *fn = "rlhf4j_attention_backward";
    attn_args a;
    int32_t st = check_attention(fn, s, dtype, B, Tq, Tk, Hq, Hkv, D, q, q_row_stride, k, k_row_stride, v,
                                 v_row_stride, scale, window, &a);
    if (st != RLHF4J_OK) return st;
    if (dq == NULL && dk == NULL && dv == NULL) return RLHF4J_OK;
    /* A gradient nobody wants (the header allows NULL) is computed into a discarded buffer: the kernel computes
     * dq, dk and dv together, and the case is rare (an input that needs no gradient). */
    const size_t esz = (size_t)rlhf4j_dtype_size(dtype);
    void *unwanted[3] = {NULL, NULL, NULL};
    if (dq == NULL) {
        dq = unwanted[0] = calloc((size_t)B * Tq * Hq * D + 1, esz);
        dq_row_stride = (int64_t)Hq * D;
    }
    if (dk == NULL) {
        dk = unwanted[1] = calloc((size_t)B * Tk * Hkv * D + 1, esz);
        dk_row_stride = (int64_t)Hkv * D;
    }
    if (dv == NULL) {
        dv = unwanted[2] = calloc((size_t)B * Tk * Hkv * D + 1, esz);
        dv_row_stride = (int64_t)Hkv * D;
    }
    st = attention_backward_into(s, fn, &a, dtype, B, Tq, Tk, Hq, Hkv, D, key_mask, causal, out, dout, lse, dq,
                                 dq_row_stride, dk, dk_row_stride, dv, dv_row_stride, accumulate);
    free(unwanted[0]);
    free(unwanted[1]);
    free(unwanted[2]);
    return st;
}

static int32_t attention_backward_into(rlhf4j_stream s, const char *fn, attn_args *ap, int32_t dtype, int32_t B,
                                       int32_t Tq, int32_t Tk, int32_t Hq, int32_t Hkv, int32_t D,
                                       const int32_t *key_mask, int32_t causal, const void *out, const void *dout,
                                       const void *lse, void *dq, int64_t dq_row_stride, void *dk,
                                       int64_t dk_row_stride, void *dv, int64_t dv_row_stride, int32_t accumulate) {
    attn_args a = *ap;
    int32_t st;
    CHECK_ARG(dq != NULL && dk != NULL && dv != NULL, "%s: out of memory for an unwanted gradient", fn);
    CHECK_ARG(dq_row_stride >= (int64_t)Hq * D, "%s: dq_row_stride = %lld must be >= Hq * D = %lld", fn,
              (long long)dq_row_stride, (long long)Hq * D);
    CHECK_ARG(dk_row_stride >= (int64_t)Hkv * D, "%s: dk_row_stride = %lld must be >= Hkv * D = %lld", fn,
              (long long)dk_row_stride, (long long)Hkv * D);
    CHECK_ARG(dv_row_stride >= (int64_t)Hkv * D, "%s: dv_row_stride = %lld must be >= Hkv * D = %lld", fn,
              (long long)dv_row_stride, (long long)Hkv * D);
    CHECK_PTR(fn, out);
    CHECK_PTR(fn, dout);
    CHECK_PTR(fn, lse);
    a.key_mask = key_mask;
    a.causal = causal != 0;
    a.accumulate = accumulate != 0;
    a.o = out;
    a.dout = dout;
    a.lse_in = lse;
    a.dq = dq;
    a.dk = dk;
    a.dv = dv;
    a.dqs = dq_row_stride;
    a.dks = dk_row_stride;
    a.dvs = dv_row_stride;
    const int nt = attn_threads(s, &a);
    st = dtype == RLHF4J_F32 ? attn_backward_f32(&a, nt) : attn_backward_f64(&a, nt);
    if (st != RLHF4J_OK) return rlhf4j_fail(st, "%s: cannot allocate scratch", fn);
    return RLHF4J_OK;
}
