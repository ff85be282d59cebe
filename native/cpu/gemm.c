/*
 * gemm.c: rlhf4j_gemm on the CPU, a BLIS / GotoBLAS style blocked GEMM.
 *
 * (header comment on the blocking scheme: see the end of the tuning work)
 */
#include "gemm.h"

#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>

/* One GEMM (one batch entry); A, B, C, bias already offset to the entry. */
typedef struct {
    int ta, tb;
    int64_t M, N, K;
    const void *A;
    int64_t lda;
    const void *B;
    int64_t ldb;
    int32_t ab_dtype;
    void *C;
    int64_t ldc;
    int32_t c_dtype;
    const void *bias;
    double alpha, beta;
} gemm_problem;

typedef struct {
    double alpha;
    double beta;
    int32_t first;
    int32_t c_dtype;
    const void *bias;
} gemm_epilogue_f64;

/* Out-of-memory status; the entry point writes the message on the caller's thread (a worker's would be lost). */
#define FAIL_OOM() RLHF4J_ERR_OUT_OF_MEMORY

/* ---- packing buffers: per thread, 64-byte aligned, grown, never shrunk ------------------------------------- */

/* Slot 0 holds this thread's A blocks, slot 1 its B panels (or, on the calling thread of a parallel GEMM, the two
 * B panels the whole team shares), slot 2 the calling thread's work queues. Freed when the thread exits, so Java
 * threads that come and go do not leak. */
#define SCRATCH_SLOTS 3
typedef struct {
    void *p[SCRATCH_SLOTS];
    size_t n[SCRATCH_SLOTS];
} scratch_tls;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *v) {
    scratch_tls *t = v;
    for (int i = 0; i < SCRATCH_SLOTS; i++) free(t->p[i]);
    free(t);
}

static void scratch_init(void) { (void)pthread_key_create(&scratch_key, scratch_free); }

static void *scratch(int slot, size_t bytes) {
    pthread_once(&scratch_once, scratch_init);
    scratch_tls *t = pthread_getspecific(scratch_key);
    if (t == NULL) {
        t = calloc(1, sizeof *t);
        if (t == NULL) return NULL;
        if (pthread_setspecific(scratch_key, t) != 0) {
            free(t);
            return NULL;
        }
    }
    if (t->n[slot] < bytes) {
        free(t->p[slot]);
        size_t n = (bytes + 65535) & ~(size_t)65535;
        t->p[slot] = aligned_alloc(64, n);
        t->n[slot] = t->p[slot] ? n : 0;
    }
    return t->p[slot];
}

/* ---- threads ------------------------------------------------------------------------------------------------ */

/* A tm x tn grid of T threads over mtiles x ntiles micro-tiles that minimises the largest share; ties go to more
 * threads along M, because threads split along N each pack the same A rows. */
static void split_threads(int T, int64_t mtiles, int64_t ntiles, int *tm, int *tn) {
    double best = 1e300;
    *tm = T;
    *tn = 1;
    for (int m = T; m >= 1; m--) {
        if (T % m) continue;
        int n = T / m;
        double cost = (double)((mtiles + m - 1) / m) * (double)((ntiles + n - 1) / n) * (1.0 + 0.02 * (n - 1));
        if (cost < best) {
            best = cost;
            *tm = m;
            *tn = n;
        }
    }
}

/* Work queues of the parallel GEMM: a range [front, back) of unit numbers in one 64-bit word, so that its owner
 * taking from the front and a thief taking from the back never both get the last unit. Each on its own line. */
typedef struct {
    _Alignas(64) uint64_t fb;
    char pad[56];
} work_range;

static inline void range_init(work_range *r, int64_t front, int64_t back) {
    __atomic_store_n(&r->fb, ((uint64_t)back << 32) | (uint64_t)front, __ATOMIC_RELAXED);
}

/* The next unit from the front (owner) or the back (thief), or -1 when the range is empty. */
static inline int64_t range_take(work_range *r, int from_back) {
    uint64_t old = __atomic_load_n(&r->fb, __ATOMIC_RELAXED);
    for (;;) {
        uint64_t f = old & 0xffffffffu, b = old >> 32;
        if (f >= b) return -1;
        uint64_t nu = from_back ? ((b - 1) << 32) | f : (b << 32) | (f + 1);
        if (__atomic_compare_exchange_n(&r->fb, &old, nu, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            return (int64_t)(from_back ? b - 1 : f);
    }
}

/* ---- element access for the generic epilogue ------------------------------------------------------------------ */

static inline float load_c_f32(const void *c, int dtype, int64_t i) {
    if (dtype == RLHF4J_F32) return ((const float *)c)[i];
    if (dtype == RLHF4J_F16) return f16_to_f32(((const uint16_t *)c)[i]);
    return bf16_to_f32(((const uint16_t *)c)[i]);
}

static inline void store_c_f32(void *c, int dtype, int64_t i, float x) {
    if (dtype == RLHF4J_F32) ((float *)c)[i] = x;
    else if (dtype == RLHF4J_F16) ((uint16_t *)c)[i] = f32_to_f16(x);
    else ((uint16_t *)c)[i] = f32_to_bf16(x);
}

static inline double load_c_f64(const void *c, int dtype, int64_t i) { return ((const double *)c)[i]; }
static inline void store_c_f64(void *c, int dtype, int64_t i, double x) { ((double *)c)[i] = x; }

/* f16 -> f32 without branches or loops, so packing loops vectorize: the 15 magnitude bits shifted into place are an
 * f32 with the exponent 112 too small (subnormal halves become f32 subnormals), which one multiply by 2^112 fixes
 * exactly; infinities and NaNs (exponent 31) take the all-ones exponent instead. */
static inline float h2f(uint16_t h) {
    uint32_t o = (uint32_t)(h & 0x7fff) << 13, s = (uint32_t)(h & 0x8000) << 16;
    float f;
    memcpy(&f, &o, 4);
    f *= 0x1p112f;
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((h & 0x7c00) == 0x7c00) u = o | 0x7f800000u;
    u |= s;
    memcpy(&f, &u, 4);
    return f;
}

/* ---- packing ------------------------------------------------------------------------------------------------ */

#define real float
#define SRC_T float
#define CVT(x) (x)
#define PFN(name) name##_f32_f32
#include "gemm_pack.inc"
#undef SRC_T
#undef CVT
#undef PFN
#define SRC_T uint16_t
#define CVT(x) bf16_to_f32(x)
#define PFN(name) name##_f32_bf16
#include "gemm_pack.inc"
#undef CVT
#undef PFN
#define CVT(x) h2f(x)
#define PFN(name) name##_f32_f16
#include "gemm_pack.inc"
#undef SRC_T
#undef CVT
#undef PFN
#undef real
#define real double
#define SRC_T double
#define CVT(x) (x)
#define PFN(name) name##_f64_f64
#include "gemm_pack.inc"
#undef SRC_T
#undef CVT
#undef PFN
#undef real

/* A micro-kernel, its blocking, and the packing of sources of its compute type (gemm_pack.inc's layout). */
typedef struct {
    int mr, nr;         /* micro-tile */
    int64_t mc, kc, nc; /* cache blocks: A block mc x kc, B panel kc x nc, B micro-panel kc x nr */
    void (*ukr)(int64_t kc, const float *a, const float *b, int64_t ldb, void *c, int64_t ldc, int mr, int nr,
                const gemm_epilogue_f32 *ep);
    void (*pack_tr)(const float *src, int64_t ld, int64_t n, int64_t kc, int W, float *dst);
    void (*pack_copy)(const float *src, int64_t ld, int64_t kc, int64_t n, int W, float *dst);
} gemm_cfg_f32;

typedef struct {
    int mr, nr;
    int64_t mc, kc, nc;
    void (*ukr)(int64_t kc, const double *a, const double *b, int64_t ldb, void *c, int64_t ldc, int mr, int nr,
                const gemm_epilogue_f64 *ep);
    void (*pack_tr)(const double *src, int64_t ld, int64_t n, int64_t kc, int W, double *dst);
    void (*pack_copy)(const double *src, int64_t ld, int64_t kc, int64_t n, int W, double *dst);
} gemm_cfg_f64;

/* op(A)[i0:i0+mc, p0:p0+kc] into MR-row micro-panels; op(A) = A reads rows of A (a transpose), A^T rows of A^T. */
static void pack_a_f32(const gemm_cfg_f32 *cfg, const gemm_problem *pr, int64_t i0, int64_t mc, int64_t p0,
                       int64_t kc, int MR, float *dst) {
    int64_t off = pr->ta ? p0 * pr->lda + i0 : i0 * pr->lda + p0;
    switch (pr->ab_dtype) {
    case RLHF4J_F32: {
        const float *s = (const float *)pr->A + off;
        if (pr->ta) cfg->pack_copy(s, pr->lda, kc, mc, MR, dst);
        else cfg->pack_tr(s, pr->lda, mc, kc, MR, dst);
        break;
    }
    case RLHF4J_BF16: {
        const uint16_t *s = (const uint16_t *)pr->A + off;
        if (pr->ta) pack_copy_f32_bf16(s, pr->lda, kc, mc, MR, dst);
        else pack_tr_f32_bf16(s, pr->lda, mc, kc, MR, dst);
        break;
    }
    default: {
        const uint16_t *s = (const uint16_t *)pr->A + off;
        if (pr->ta) pack_copy_f32_f16(s, pr->lda, kc, mc, MR, dst);
        else pack_tr_f32_f16(s, pr->lda, mc, kc, MR, dst);
        break;
    }
    }
}

/* op(B)[p0:p0+kc, j0:j0+nc] into NR-column micro-panels. */
static void pack_b_f32(const gemm_cfg_f32 *cfg, const gemm_problem *pr, int64_t p0, int64_t kc, int64_t j0,
                       int64_t nc, int NR, float *dst) {
    int64_t off = pr->tb ? j0 * pr->ldb + p0 : p0 * pr->ldb + j0;
    switch (pr->ab_dtype) {
    case RLHF4J_F32: {
        const float *s = (const float *)pr->B + off;
        if (pr->tb) cfg->pack_tr(s, pr->ldb, nc, kc, NR, dst);
        else cfg->pack_copy(s, pr->ldb, kc, nc, NR, dst);
        break;
    }
    case RLHF4J_BF16: {
        const uint16_t *s = (const uint16_t *)pr->B + off;
        if (pr->tb) pack_tr_f32_bf16(s, pr->ldb, nc, kc, NR, dst);
        else pack_copy_f32_bf16(s, pr->ldb, kc, nc, NR, dst);
        break;
    }
    default: {
        const uint16_t *s = (const uint16_t *)pr->B + off;
        if (pr->tb) pack_tr_f32_f16(s, pr->ldb, nc, kc, NR, dst);
        else pack_copy_f32_f16(s, pr->ldb, kc, nc, NR, dst);
        break;
    }
    }
}

static void pack_a_f64(const gemm_cfg_f64 *cfg, const gemm_problem *pr, int64_t i0, int64_t mc, int64_t p0,
                       int64_t kc, int MR, double *dst) {
    const double *s = (const double *)pr->A + (pr->ta ? p0 * pr->lda + i0 : i0 * pr->lda + p0);
    if (pr->ta) pack_copy_f64_f64(s, pr->lda, kc, mc, MR, dst);
    else pack_tr_f64_f64(s, pr->lda, mc, kc, MR, dst);
}

static void pack_b_f64(const gemm_cfg_f64 *cfg, const gemm_problem *pr, int64_t p0, int64_t kc, int64_t j0,
                       int64_t nc, int NR, double *dst) {
    const double *s = (const double *)pr->B + (pr->tb ? j0 * pr->ldb + p0 : p0 * pr->ldb + j0);
    if (pr->tb) pack_tr_f64_f64(s, pr->ldb, nc, kc, NR, dst);
    else pack_copy_f64_f64(s, pr->ldb, kc, nc, NR, dst);
}

/* Small M: each B micro-panel would be used by at most this many A micro-panels, too few to pay for packing it
 * (a read, a write and a read again); the micro-kernel reads B's rows in place instead. */
#define DIRECT_B_MAX_PANELS 2

/* op(B) = B^T with at most this many rows of A: dot products instead of packed panels (gemm.inc: dot_cols). */
#ifndef DOT_MAX_M
#define DOT_MAX_M 16
#endif

/* ---- the driver, once per compute type ------------------------------------------------------------------------ */

#define real float
#define FN(name) name##_f32
#define EPI gemm_epilogue_f32
#define GEN_MR 4
#define GEN_NR 16
#define REAL_DTYPE RLHF4J_F32
#include "gemm.inc"
#undef real
#undef FN
#undef EPI
#undef GEN_MR
#undef GEN_NR
#undef REAL_DTYPE

#define real double
#define FN(name) name##_f64
#define EPI gemm_epilogue_f64
#define GEN_MR 6
#define GEN_NR 8
#define REAL_DTYPE RLHF4J_F64
#include "gemm.inc"
#undef real
#undef FN
#undef EPI
#undef GEN_MR
#undef GEN_NR
#undef REAL_DTYPE

static const gemm_cfg_f32 cfg_avx512 = {GEMM_AVX512_MR, GEMM_AVX512_NR, 168, 256, 3072, rlhf4j_sgemm_ukr_avx512,
                                        rlhf4j_sgemm_pack_tr_avx512, rlhf4j_sgemm_pack_copy_avx512};
static const gemm_cfg_f32 cfg_avx2 = {GEMM_AVX2_MR, GEMM_AVX2_NR, 144, 256, 3072, rlhf4j_sgemm_ukr_avx2,
                                      rlhf4j_sgemm_pack_tr_avx2, pack_copy_f32_f32};
static const gemm_cfg_f32 cfg_generic_f32 = {4, 16, 128, 256, 2048, ukr_generic_f32, pack_tr_f32_f32,
                                             pack_copy_f32_f32};
static const gemm_cfg_f64 cfg_generic_f64 = {6, 8, 120, 256, 2048, ukr_generic_f64, pack_tr_f64_f64,
                                             pack_copy_f64_f64};

#ifdef RLHF4J_GEMM_TUNING
#define V(name) void name(int64_t, const float *, const float *, int64_t, void *, int64_t, int, int, const gemm_epilogue_f32 *);
V(ukr_v14x32np) V(ukr_v6x64) V(ukr_v12x32) V(ukr_v8x48) V(ukr_v6x64np) V(ukr_v12x32np) V(ukr_v8x48np)
static const struct { const char *name; int mr, nr; gemm_ukr_f32 fn; } tune_ukrs[] = {
    {"14x32", 14, 32, rlhf4j_sgemm_ukr_avx512}, {"14x32np", 14, 32, ukr_v14x32np}, {"6x64", 6, 64, ukr_v6x64},
    {"12x32", 12, 32, ukr_v12x32}, {"8x48", 8, 48, ukr_v8x48}, {"6x64np", 6, 64, ukr_v6x64np},
    {"12x32np", 12, 32, ukr_v12x32np}, {"8x48np", 8, 48, ukr_v8x48np}};
#endif
static gemm_cfg_f32 cfg_tune;
static const gemm_cfg_f32 *cfg_f32(void) {
    if (getenv("GEMM_TUNE")) { /* TUNING ONLY: GEMM_TUNE=mc,kc,nc */
        const gemm_cfg_f32 *b = rlhf4j_cpu_isa() == ISA_AVX512 ? &cfg_avx512 : &cfg_avx2;
        cfg_tune = *b;
        long mc, kc, nc;
        char uk[32] = "";
        if (sscanf(getenv("GEMM_TUNE"), "%ld,%ld,%ld,%31s", &mc, &kc, &nc, uk) >= 3) { cfg_tune.mc = mc; cfg_tune.kc = kc; cfg_tune.nc = nc; }
#ifdef RLHF4J_GEMM_TUNING
        for (size_t i = 0; i < sizeof tune_ukrs / sizeof tune_ukrs[0]; i++)
            if (strcmp(uk, tune_ukrs[i].name) == 0) { cfg_tune.mr = tune_ukrs[i].mr; cfg_tune.nr = tune_ukrs[i].nr; cfg_tune.ukr = tune_ukrs[i].fn; }
#endif
        return &cfg_tune;
    }
    switch (rlhf4j_cpu_isa()) {
    case ISA_AVX512: return &cfg_avx512;
    case ISA_AVX2: return &cfg_avx2;
    default: return &cfg_generic_f32;
    }
}

/* ---- C = beta * C + bias (K == 0 or alpha == 0) ------------------------------------------------------------------ */

static void scale_c(const gemm_problem *pr) {
    for (int64_t i = 0; i < pr->M; i++) {
        for (int64_t j = 0; j < pr->N; j++) {
            int64_t at = i * pr->ldc + j;
            double x = 0;
            if (pr->beta != 0) x = pr->beta * (pr->c_dtype == RLHF4J_F64 ? load_c_f64(pr->C, pr->c_dtype, at)
                                                                          : (double)load_c_f32(pr->C, pr->c_dtype, at));
            if (pr->bias) x += pr->c_dtype == RLHF4J_F64 ? load_c_f64(pr->bias, pr->c_dtype, j)
                                                         : (double)load_c_f32(pr->bias, pr->c_dtype, j);
            if (pr->c_dtype == RLHF4J_F64) store_c_f64(pr->C, pr->c_dtype, at, x);
            else store_c_f32(pr->C, pr->c_dtype, at, (float)x);
        }
    }
}

/* ---- entry point ---------------------------------------------------------------------------------------------- */

/* Below this many multiply-adds a GEMM runs on one thread: the fork/join (a few microseconds) would cost more than
 * the second core saves. */
#define PAR_MIN_FMAS (1 << 19)

static int32_t gemm_one(const gemm_problem *pr, int nt) {
    if (pr->K == 0 || pr->alpha == 0) {
        scale_c(pr);
        return RLHF4J_OK;
    }
    if (pr->ab_dtype == RLHF4J_F64) {
        const gemm_cfg_f64 *cfg = &cfg_generic_f64;
        if (use_dot_f64(pr)) return gemm_dot_f64(pr, nt);
        return nt > 1 ? gemm_parallel_f64(cfg, pr, 0, nt) : gemm_serial_f64(cfg, pr, 0);
    }
    if (use_dot_f32(pr)) return gemm_dot_f32(pr, nt);
    const gemm_cfg_f32 *cfg = cfg_f32();
    int single = pr->c_dtype != RLHF4J_F32;
    return nt > 1 ? gemm_parallel_f32(cfg, pr, single, nt) : gemm_serial_f32(cfg, pr, single);
}

RLHF4J_API int32_t rlhf4j_gemm(rlhf4j_stream s, int32_t trans_a, int32_t trans_b, int64_t M, int64_t N, int64_t K,
                               double alpha, const void *A, int64_t lda, int64_t stride_a, const void *B, int64_t ldb,
                               int64_t stride_b, int32_t ab_dtype, double beta, void *C, int64_t ldc,
                               int64_t stride_c, int32_t c_dtype, int64_t batch, const void *bias) {
    static const char *fn = "rlhf4j_gemm";
    CHECK_STREAM(fn, s);
    CHECK_NONNEG(fn, M);
    CHECK_NONNEG(fn, N);
    CHECK_NONNEG(fn, K);
    CHECK_NONNEG(fn, batch);
    CHECK_ARG(rlhf4j_dtype_size(ab_dtype) != 0, "%s: unknown ab_dtype %d", fn, ab_dtype);
    CHECK_ARG(rlhf4j_dtype_size(c_dtype) != 0, "%s: unknown c_dtype %d", fn, c_dtype);
    if (ab_dtype == RLHF4J_I32 || c_dtype == RLHF4J_I32)
        return FAIL_UNSUPPORTED("%s: ab_dtype %s, c_dtype %s: i32 is not a gemm dtype", fn,
                                rlhf4j_dtype_name(ab_dtype), rlhf4j_dtype_name(c_dtype));
    if ((ab_dtype == RLHF4J_F64) != (c_dtype == RLHF4J_F64))
        return FAIL_UNSUPPORTED("%s: ab_dtype %s with c_dtype %s: f64 gemm needs f64 for both (the cpu backend "
                                "computes f32 for f32/bf16/f16 and f64 for f64)",
                                fn, rlhf4j_dtype_name(ab_dtype), rlhf4j_dtype_name(c_dtype));
    const int64_t a_cols = trans_a ? M : K, b_cols = trans_b ? K : N;
    CHECK_ARG(lda >= a_cols, "%s: lda = %lld must be >= %lld (the row width of A%s)", fn, (long long)lda,
              (long long)a_cols, trans_a ? ", M, as trans_a != 0" : ", K");
    CHECK_ARG(ldb >= b_cols, "%s: ldb = %lld must be >= %lld (the row width of B%s)", fn, (long long)ldb,
              (long long)b_cols, trans_b ? ", K, as trans_b != 0" : ", N");
    CHECK_ARG(ldc >= N, "%s: ldc = %lld must be >= N = %lld", fn, (long long)ldc, (long long)N);
    CHECK_NONNEG(fn, stride_a);
    CHECK_NONNEG(fn, stride_b);
    CHECK_NONNEG(fn, stride_c);
    if (batch == 0 || M == 0 || N == 0) return RLHF4J_OK;
    CHECK_PTR(fn, C);
    CHECK_ARG(batch == 1 || stride_c != 0, "%s: stride_c = 0 with batch = %lld would write every C_p to the same C", fn,
              (long long)batch);
    const int products = K > 0 && alpha != 0;
    if (products) {
        CHECK_PTR(fn, A);
        CHECK_PTR(fn, B);
    }

    gemm_problem base = {trans_a != 0, trans_b != 0, M, N, K, A, lda, B, ldb, ab_dtype, C, ldc, c_dtype, bias,
                         alpha, beta};
    const int64_t asz = rlhf4j_dtype_size(ab_dtype), csz = rlhf4j_dtype_size(c_dtype);
    const int dev_threads = s->dev->num_threads > 0 ? s->dev->num_threads : 1;
    const double fmas = products ? (double)M * (double)N * (double)K : (double)M * (double)N / 8;
    const int nt_one = fmas >= PAR_MIN_FMAS ? dev_threads : 1;
    int32_t status = RLHF4J_OK;

    /* Many entries: one thread per entry (no barriers, each thread packs its own panels), unless the entries are few
     * and big enough that splitting each one balances better. */
    const int by_entry = dev_threads > 1 && batch > 1 && fmas * (double)batch >= PAR_MIN_FMAS &&
                         (nt_one == 1 || batch % dev_threads == 0 || batch >= 4 * dev_threads);
    if (by_entry) {
        int nt = batch < dev_threads ? (int)batch : dev_threads;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
        for (int64_t p = 0; p < batch; p++) {
            gemm_problem pr = base;
            pr.A = (const char *)A + p * stride_a * asz;
            pr.B = (const char *)B + p * stride_b * asz;
            pr.C = (char *)C + p * stride_c * csz;
            int32_t st = gemm_one(&pr, 1);
            if (st != RLHF4J_OK) __atomic_store_n(&status, st, __ATOMIC_RELAXED);
        }
    } else {
        for (int64_t p = 0; p < batch && status == RLHF4J_OK; p++) {
            gemm_problem pr = base;
            pr.A = (const char *)A + p * stride_a * asz;
            pr.B = (const char *)B + p * stride_b * asz;
            pr.C = (char *)C + p * stride_c * csz;
            status = gemm_one(&pr, nt_one);
        }
    }
    if (status == RLHF4J_ERR_OUT_OF_MEMORY)
        return rlhf4j_fail(status, "%s: out of host memory for the packing buffers (M = %lld, N = %lld, K = %lld)", fn,
                           (long long)M, (long long)N, (long long)K);
    return status;
}
