/*
 * gemm.c: rlhf4j_gemm on the CPU, a BLIS / GotoBLAS style blocked GEMM (driver: gemm.inc; packing: gemm_pack.inc;
 * micro-kernels: gemm_avx512.c, gemm_avx2.c, and a generic one in gemm.inc).
 *
 * The loop nest, for C[M,N] (+)= op(A)[M,K] op(B)[K,N], row-major:
 *   jc over N by NC:                                      B panel, kc x NC: L3, shared by the threads
 *     pc over K by KC:  pack op(B)[pc, jc] into NR-wide micro-panels (kc steps of NR floats)
 *       ic over M by MC:  pack op(A)[ic, pc] into MR-high micro-panels (kc steps of MR floats)   A block: L2
 *         jr over the panel by NR:                        B micro-panel, kc x NR: L1, reused by every ir
 *           ir over the block by MR:  micro-kernel: an MR x NR tile of C in registers, kc rank-1 updates
 * C is row-major, so the micro-kernel's vectors run along N: each step loads one NR-wide row of the B micro-panel
 * and broadcasts MR elements of A. Packing is where the transposes (trans_a, trans_b), the leading dimensions and
 * the BF16/F16 -> F32 conversion happen: each source element is converted once per panel, never a whole matrix.
 * The first K block applies beta (or ignores C when beta == 0) and the bias; later blocks add to C. BF16/F16 C is
 * computed in one K block (KC = K, MC and NC shrunk to keep the blocks' bytes), so it is rounded once.
 *
 * The numbers, for AVX-512 on the machine this was tuned on (AMD EPYC Zen 4, 2 cores, 32 KB L1d and 1 MB L2 per
 * core, 32 MB L3; 512-bit FMAs issue one per cycle at latency 4, so 16 FLOP x 2 / cycle = 116 GFLOP/s per core at
 * 3.6 GHz, measured with an FMA loop):
 *   MR x NR = 14 x 32: 28 zmm accumulators + 2 B vectors + 1 broadcast = 31 of 32 registers; 28 independent FMA
 *     chains (4 needed); 16 loads per 28 FMAs. 6 x 64, 8 x 48 and 12 x 32 measured the same within noise (2%);
 *     14 x 32 has the finer N granularity (edges waste less) and M edges cost nothing (a kernel per row count).
 *     In isolation, on L1-resident panels, it runs at 99% of the FMA peak.
 *   KC = 256: the B micro-panel is 256 x 32 x 4 = 32 KB (it streams partly from L2; the A micro-panel is 14 KB)
 *     and the C tile's load and store (3.5 KB) are spread over 256 x 28 FMAs. 128 was 5% slower, 384 and 512 the
 *     same within noise.
 *   MC = 168 (12 micro-panels): the A block is 168 KB of the 1 MB L2, and a B micro-panel is reused 12 times.
 *   NC = 3072: the B panel is 3 MB (twice, double-buffered) in L3; N = 2304 or 3072 is one panel.
 * The AVX2 kernel (6 x 16, 12 ymm accumulators) uses MC = 144; on Zen 4 it reaches the same speed, as two 256-bit
 * FMAs per cycle are the same peak.
 *
 * The floor: 2MNK FLOPs at 232 GFLOP/s (both cores) against 4(MK + KN + MN) bytes (+4MN when beta != 0) at
 * ~25 GB/s; n = 1024 is 2.1 GFLOP (9.3 ms) vs 12 MB (0.5 ms), compute-bound, and so is every shape with M, N and
 * K above ~50. Blocking adds re-reads that stay in cache: B is packed once, A once per N panel, C is read and
 * written once per K block (n = 1024: 4 passes over 4 MB, from L3).
 * Measured (this machine, 2 threads, same process as OpenBLAS 0.3.21 with its Cooperlake AVX-512 kernels, best of
 * 7 after idle waits): n = 1024 and the transformer shapes (512 x 2304 x 768, 512 x 768 x 3072, every trans_a /
 * trans_b) at 180-196 GFLOP/s (78-84% of the FMA peak), 0.93-1.03x OpenBLAS; n = 256 at 176, 1.04x; n = 512 and
 * the LM head (512 x 50257 x 768, B^T) 0.95-1.07x; decode shapes (M = 1..16) 1.1-3.8x; 32^3 and 64^3 only
 * 0.65-0.8x (OpenBLAS has an unpacked small-matrix kernel; here packing is a fifth of such a call).
 *
 * Threads (OpenMP, the device's num_threads; one thread below PAR_MIN_FMAS multiply-adds): the threads pack each B
 * panel together into a shared buffer, then compute units of (A block) x (part of the panel) from per-thread
 * ranges, stealing from each other's when done (gemm.inc: gemm_parallel). Batches of many GEMMs run one entry per
 * thread instead. Which thread computes a tile never changes the result: every element is summed in the same
 * order (K blocks in order, k in order within one), so the output is bitwise independent of the thread count.
 * Small M: with op(B) = B the micro-kernel reads B in place (packing would cost a read and two writes for a use or
 * two); with op(B) = B^T and M <= DOT_MAX_M the product is a set of dot products (gemm.inc: dot_cols).
 * F64 runs the same driver with a generic 6 x 8 micro-kernel (GCC vector types, target clones for AVX-512/AVX2).
 *
 * Packing buffers are per thread (pthread key, freed at thread exit), 64-byte aligned (2 MB pages for big ones),
 * grown to the largest request and then reused: no allocation per call in the steady state.
 */
#include "gemm.h"

#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>

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
        /* Panels of a MB or more go in 2 MB pages where the kernel offers them (madvise mode of transparent huge
         * pages): a 4 KB page per 1024 floats would need more TLB entries than the L1 TLB has. */
        const size_t huge = (size_t)2 << 20;
        size_t align = bytes >= huge / 2 ? huge : 64;
        size_t n = (bytes + align - 1) & ~(align - 1);
        n = (n + 65535) & ~(size_t)65535;
        t->p[slot] = aligned_alloc(align, n);
        t->n[slot] = t->p[slot] ? n : 0;
#ifdef MADV_HUGEPAGE
        if (t->p[slot] && align == huge) madvise(t->p[slot], n, MADV_HUGEPAGE);
#endif
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
 * taking from the front and a thief taking from the back never both get the last unit. The word also holds the
 * number of the K block the range belongs to: whoever first touches a range left over from an older block installs
 * the new block's range (every thread computes the same one), so two sets of queues, alternating like the B
 * buffers, serve any number of blocks without a barrier to reset them. Each queue on its own cache line. */
typedef struct {
    _Alignas(64) uint64_t word; /* front: bits 0-23, back: 24-47, tag: 48-63 (block number + 1; 0 = never used) */
    char pad[56];
} work_range;

#define RANGE_MAX_UNITS ((int64_t)1 << 24)

/* The next unit of block `iter` from the front (owner) or the back (thief), or -1 when the range is empty. */
static inline int64_t range_take(work_range *r, int64_t iter, int64_t front, int64_t back, int from_back) {
    const uint64_t tag = (uint64_t)(iter + 1) & 0xffff, mask = 0xffffff;
    uint64_t old = __atomic_load_n(&r->word, __ATOMIC_RELAXED);
    for (;;) {
        if (old >> 48 != tag) { /* still the range of block iter - 2: install this block's */
            uint64_t fresh = tag << 48 | (uint64_t)back << 24 | (uint64_t)front;
            if (__atomic_compare_exchange_n(&r->word, &old, fresh, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) old = fresh;
            continue;
        }
        uint64_t f = old & mask, b = (old >> 24) & mask;
        if (f >= b) return -1;
        uint64_t nu = from_back ? (old & ~(mask << 24)) | (b - 1) << 24 : (old & ~mask) | (f + 1);
        if (__atomic_compare_exchange_n(&r->word, &old, nu, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            return (int64_t)(from_back ? b - 1 : f);
    }
}

/* ---- element access for the generic epilogue ------------------------------------------------------------------ */

static inline float load_c_f32(const void *c, int dtype, int64_t i) {
    if (dtype == RLHF4J_F32) return ((const float *)c)[i];
    if (dtype == RLHF4J_F16) return rl_f16_to_f32(((const uint16_t *)c)[i]);
    return rl_bf16_to_f32(((const uint16_t *)c)[i]);
}

static inline void store_c_f32(void *c, int dtype, int64_t i, float x) {
    if (dtype == RLHF4J_F32) ((float *)c)[i] = x;
    else if (dtype == RLHF4J_F16) ((uint16_t *)c)[i] = rl_f32_to_f16(x);
    else ((uint16_t *)c)[i] = rl_f32_to_bf16(x);
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
#define CVT(x) rl_bf16_to_f32(x)
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

/* A panel of n micro-panels' worth (n rows of op(A), or n columns of op(B)) by kc, W per micro-panel, from src with
 * leading dimension ld, converted to f32: when along is set the n direction runs along src's rows (a straight copy of
 * kc rows of n), else across them (a transpose of n rows of kc). */
static void pack_panel_f32(const gemm_cfg_f32 *cfg, const void *src, int32_t dtype, int64_t ld, int along, int64_t kc,
                           int64_t n, int W, float *dst) {
    switch (dtype) {
    case RLHF4J_F32:
        if (along) cfg->pack_copy((const float *)src, ld, kc, n, W, dst);
        else cfg->pack_tr((const float *)src, ld, n, kc, W, dst);
        break;
    case RLHF4J_BF16:
        if (along) pack_copy_f32_bf16((const uint16_t *)src, ld, kc, n, W, dst);
        else pack_tr_f32_bf16((const uint16_t *)src, ld, n, kc, W, dst);
        break;
    default:
        if (along) pack_copy_f32_f16((const uint16_t *)src, ld, kc, n, W, dst);
        else pack_tr_f32_f16((const uint16_t *)src, ld, n, kc, W, dst);
        break;
    }
}

/* op(A)[i0:i0+mc, p0:p0+kc] into MR-row micro-panels; op(A) = A reads rows of A (a transpose), A^T rows of A^T. */
static void pack_a_f32(const gemm_cfg_f32 *cfg, const gemm_problem *pr, int64_t i0, int64_t mc, int64_t p0,
                       int64_t kc, int MR, float *dst) {
    int64_t off = pr->ta ? p0 * pr->lda + i0 : i0 * pr->lda + p0;
    const char *s = (const char *)pr->A + off * rlhf4j_dtype_size(pr->ab_dtype);
    pack_panel_f32(cfg, s, pr->ab_dtype, pr->lda, pr->ta, kc, mc, MR, dst);
}

/* op(B)[p0:p0+kc, j0:j0+nc] into NR-column micro-panels. */
static void pack_b_f32(const gemm_cfg_f32 *cfg, const gemm_problem *pr, int64_t p0, int64_t kc, int64_t j0,
                       int64_t nc, int NR, float *dst) {
    int64_t off = pr->tb ? j0 * pr->ldb + p0 : p0 * pr->ldb + j0;
    const char *s = (const char *)pr->B + off * rlhf4j_dtype_size(pr->ab_dtype);
    pack_panel_f32(cfg, s, pr->ab_dtype, pr->ldb, !pr->tb, kc, nc, NR, dst);
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
#define DOT_MAX_M 8

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

static const gemm_cfg_f32 *cfg_f32(void) {
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

/* Batch entry p (strides in bytes); A and B may be NULL when no products are computed. */
static gemm_problem entry(const gemm_problem *base, int64_t p, int64_t sa, int64_t sb, int64_t sc) {
    gemm_problem pr = *base;
    pr.A = base->A ? (const char *)base->A + p * sa : NULL;
    pr.B = base->B ? (const char *)base->B + p * sb : NULL;
    pr.C = (char *)base->C + p * sc;
    return pr;
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
            gemm_problem pr = entry(&base, p, stride_a * asz, stride_b * asz, stride_c * csz);
            int32_t st = gemm_one(&pr, 1);
            if (st != RLHF4J_OK) __atomic_store_n(&status, st, __ATOMIC_RELAXED);
        }
    } else {
        for (int64_t p = 0; p < batch && status == RLHF4J_OK; p++) {
            gemm_problem pr = entry(&base, p, stride_a * asz, stride_b * asz, stride_c * csz);
            status = gemm_one(&pr, nt_one);
        }
    }
    if (status == RLHF4J_ERR_OUT_OF_MEMORY)
        return rlhf4j_fail(status, "%s: out of host memory for the packing buffers (M = %lld, N = %lld, K = %lld)", fn,
                           (long long)M, (long long)N, (long long)K);
    return status;
}
