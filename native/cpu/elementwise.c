/*
 * elementwise.c: convert, strided copy, unary and binary elementwise ops with their backward, reductions, masked
 * reductions and axpby. The F32/F64 arithmetic lives in elementwise.inc (included twice, below); this file holds
 * the dtype-independent machinery, the entry points and their argument checks.
 *
 * Design.
 *  - Strided iteration (copy_strided, binary): the dimensions are first normalised (size-1 dimensions dropped;
 *    for copy_strided, negative destination strides flipped and dimensions sorted by destination stride, since the
 *    order of independent element copies is free) and adjacent dimensions coalesced wherever every operand's
 *    strides allow it. What is left is `rows` rows of `len` elements along the innermost dimension, walked by a
 *    cursor (an odometer, no divisions per row). The row kernels are specialised for the stride patterns that
 *    matter (contiguous, broadcast scalar, strided). A long row is split into chunks, so one huge contiguous
 *    tensor parallelises as well as many short rows.
 *  - Transposes (copy_strided where the source is contiguous along a dimension other than the destination's
 *    innermost: contiguous() after transpose or permute) go through in-register 8 x 8 transposes (AVX2 for 4- and
 *    8-byte elements when the CPU has it, SSE2 for 2-byte ones) over 64 x 64 tiles inside 256 x 256 super-blocks,
 *    so reads and writes are both whole cache lines and a work unit stays within the TLB's reach.
 *  - Work is split by a static partition of units (row chunks or tiles) over threads; the result of every unit
 *    depends on nothing but its data, so results do not depend on the thread count. Reductions sum in double in a
 *    fixed order (elementwise.inc: chunk_sum), so they are deterministic whatever the split.
 *  - F32 transcendental math (exp, tanh, log, log1p, erf) uses the vectorisable ew_* functions below (Cephes
 *    polynomials and one fit, 1-3 ulp), because libm calls keep GCC from vectorising and GELU/SiLU would otherwise
 *    cost more than the matmuls around them. F64, the reference path, uses libm.
 *
 * Memory traffic (bytes per element, F32): convert reads src and writes dst (sizes of the two dtypes);
 * copy_strided 8 (12 accumulating); unary 8, backward 12; binary 12 (8 with a broadcast operand), backward 12-20;
 * reduce 4; masked_reduce 8; axpby 12.
 */
#include "internal.h"

#include <immintrin.h>
#include <omp.h>
#include <stdlib.h>

#define EW_MAXOPS 3
#define EW_CHUNK 32768 /* elements per work unit when a row is long */
#define UNARY_CHUNK 8192
#define TILE 64        /* transpose: tile edge (one call of a tile kernel) */
#define SUPER 256      /* transpose: super-block edge (one work unit; keeps both sides within the TLB) */
#define RED_LANES 32   /* independent double accumulators per reduction (enough to hide the add latency) */
#define RED_CHUNK 65536 /* elements per fixed summation chunk of a contiguous row */
#define RED_INNER 1024 /* elements per block inside a chunk (elementwise.inc: chunk_sum) */
#define RED_BLOCK 64   /* columns per unit when reducing over a strided axis */

/* ---- fast F32 math (vectorisable: no calls, no tables, branch-free) ------------------------------------------- */

static inline float f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* c ? a : b as a bitwise blend of two values that are both computed. A plain ?: lets GCC sink an FP operation
 * that feeds only one side into a branch, which it then will not if-convert (the operation could trap), and the
 * calling loop does not vectorise. */
static inline float ew_blend(int c, float a, float b) {
    uint32_t m = c ? 0xffffffffu : 0u;
    return f32_from_bits((f32_bits(a) & m) | (f32_bits(b) & ~m));
}

/* exp(x): x = k ln2 + r with |r| <= ln2/2 (Cody-Waite split of ln2), exp(r) by Cephes' degree-6 polynomial, 2^k
 * applied as two factors so that results down to the subnormals (k >= -150) and overflow to inf (k = 128) come
 * out right. NaN propagates, +-inf gives inf / 0. */
static inline float ew_expf(float x) {
    float xc = ew_blend(x < -104.0f, -104.0f, x); /* blends, not ?:, so GCC does not fold a clamped constant */
    xc = ew_blend(xc > 89.0f, 89.0f, xc);          /* path into a branch (see ew_blend) */
    const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer held in the low mantissa bits */
    float kf = xc * 1.44269504088896341f + magic;
    int32_t k = (int32_t)(f32_bits(kf) - f32_bits(magic));
    kf -= magic;
    float r = xc - kf * 0.693359375f;
    r = r - kf * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t k1 = k >> 1, k2 = k - k1;
    return p * f32_from_bits((uint32_t)(k1 + 127) << 23) * f32_from_bits((uint32_t)(k2 + 127) << 23);
}

/* tanh(x): Cephes' odd polynomial below |x| = 0.625, 1 - 2 / (exp(2|x|) + 1) above (no cancellation there). */
static inline float ew_tanhf(float x) {
    float ax = fabsf(x);
    float e = ew_expf(2.0f * ax);
    float big = copysignf(1.0f - 2.0f / (e + 1.0f), x);
    float z = x * x;
    float p = -5.70498872745e-3f;
    p = p * z + 2.06390887954e-2f;
    p = p * z - 5.37397155531e-2f;
    p = p * z + 1.33314422036e-1f;
    p = p * z - 3.33332819422e-1f;
    float small = p * z * x + x;
    return ew_blend(ax < 0.625f, small, big);
}

/* log(x): x = 2^e m with m in [sqrt(1/2), sqrt(2)), log(m) by Cephes' polynomial in m - 1, e ln2 added in two
 * parts. Subnormals are scaled up first; 0 -> -inf, x < 0 -> NaN, inf -> inf, NaN -> NaN. */
static inline float ew_logf(float x) {
    int sub = x < 1.17549435e-38f;
    uint32_t u = f32_bits(ew_blend(sub, x * 33554432.0f, x)); /* subnormals times 2^25 */
    int32_t e = (int32_t)((u >> 23) & 0xff) - (sub ? 151 : 126);
    float m = f32_from_bits((u & 0x007fffffu) | 0x3f000000u); /* [0.5, 1) */
    int low = m < 0.707106781186547524f;
    e = low ? e - 1 : e;
    m = ew_blend(low, m + m - 1.0f, m - 1.0f);
    float z = m * m;
    float p = 7.0376836292e-2f;
    p = p * m - 1.1514610310e-1f;
    p = p * m + 1.1676998740e-1f;
    p = p * m - 1.2420140846e-1f;
    p = p * m + 1.4249322787e-1f;
    p = p * m - 1.6668057665e-1f;
    p = p * m + 2.0000714765e-1f;
    p = p * m - 2.4999993993e-1f;
    p = p * m + 3.3333331174e-1f;
    float fe = (float)e;
    float y = p * m * z;
    y = y + -2.12194440e-4f * fe;
    y = y - 0.5f * z;
    float r = m + y;
    r = r + 0.693359375f * fe;
    r = ew_blend(x == 0.0f, -INFINITY, r);
    r = ew_blend(x < 0.0f, NAN, r);
    return ew_blend(x == INFINITY || x != x, x, r);
}

/* log1p(x) = log(u) x / (u - 1) with u = 1 + x (Goldberg): exact where u == 1, and the factor x / (u - 1) undoes
 * the rounding of u. */
static inline float ew_log1pf(float x) {
    float u = 1.0f + x;
    float l = ew_logf(u) * (x / (u - 1.0f));
    return ew_blend((u == 1.0f) | (x == INFINITY), x, l);
}

/* erf(x): Cephes' odd polynomial below |x| = 1 (1.6e-7 relative); above, 1 - exp(-x^2) h(|x|), h(a) = erfc(a)
 * exp(a^2) fitted by a degree-8 polynomial in 1 / (1 + a) on [1, 4] (2e-10 relative; 6e-8 absolute for erf in
 * f32); past 4, erf rounds to +-1 in f32. */
static inline float ew_erff(float x) {
    float z = x * x;
    float ps = 7.853861353153693e-5f;
    ps = ps * z - 8.010193625184903e-4f;
    ps = ps * z + 5.188327685732524e-3f;
    ps = ps * z - 2.685381193529856e-2f;
    ps = ps * z + 1.128358514861418e-1f;
    ps = ps * z - 3.761262582423300e-1f;
    ps = ps * z + 1.128379165726710e+0f;
    float small = x * ps;
    float a = fabsf(x);
    float ac = ew_blend(a > 4.0f, 4.0f, a);
    float t = 1.0f / (1.0f + ac);
    float h = 1.023442069e+00f;
    h = h * t - 3.467503397e+00f;
    h = h * t + 4.763296338e+00f;
    h = h * t - 2.973036221e+00f;
    h = h * t + 3.571824525e-01f;
    h = h * t + 1.663916752e-01f;
    h = h * t + 5.773895049e-01f;
    h = h * t + 5.633224231e-01f;
    h = h * t + 2.505211540e-05f;
    float large = copysignf(1.0f - ew_expf(-(ac * ac)) * h, x);
    return ew_blend(a < 1.0f, small, large);
}

/* ---- strided iteration ------------------------------------------------------------------------------------------ */

typedef struct {
    int nd;   /* outer dimensions, walked by the cursor (innermost last) */
    int nops; /* operands: copy 2 (dst, src), binary 3 (out, a, b) */
    int64_t shape[RLHF4J_MAX_DIMS];
    int64_t st[EW_MAXOPS][RLHF4J_MAX_DIMS];
    int64_t base[EW_MAXOPS]; /* element offset of each operand's first element (after flipping) */
    int64_t len;             /* the inner dimension */
    int64_t ist[EW_MAXOPS];  /* and its strides */
    int64_t rows;            /* product of the outer shape */
    int64_t chunk, cpr;      /* each row is cpr chunks of `chunk` elements (cpr = 1 unless len > EW_CHUNK) */
    int64_t units;           /* rows * cpr */
} ew_plan;

typedef struct {
    int64_t idx[RLHF4J_MAX_DIMS];
    int64_t off[EW_MAXOPS];
    int64_t chunk;
} ew_cursor;

/* Places the cursor on work unit `unit` (row unit / cpr, chunk unit % cpr). */
static inline void ew_seek(const ew_plan *p, ew_cursor *c, int64_t unit) {
    int64_t row = unit / p->cpr;
    c->chunk = unit % p->cpr;
    for (int o = 0; o < EW_MAXOPS; o++) c->off[o] = p->base[o];
    for (int d = p->nd - 1; d >= 0; d--) {
        int64_t i = row % p->shape[d];
        row /= p->shape[d];
        c->idx[d] = i;
        for (int o = 0; o < p->nops; o++) c->off[o] += i * p->st[o][d];
    }
}

static inline void ew_advance(const ew_plan *p, ew_cursor *c) {
    if (++c->chunk < p->cpr) return;
    c->chunk = 0;
    for (int d = p->nd - 1; d >= 0; d--) {
        for (int o = 0; o < p->nops; o++) c->off[o] += p->st[o][d];
        if (++c->idx[d] < p->shape[d]) return;
        for (int o = 0; o < p->nops; o++) c->off[o] -= p->st[o][d] * p->shape[d];
        c->idx[d] = 0;
    }
}

/* Normalises (ndim, shape, strides[op]) into a plan. sort_dst: flip dimensions with a negative operand-0 stride
 * and order dimensions by decreasing |operand-0 stride| (allowed when the element order does not matter).
 * The iteration space must be non-empty. */
static void ew_plan_build(ew_plan *p, int ndim, const int64_t *shape, int nops, const int64_t *const *strides,
                          int sort_dst) {
    int nd = 0;
    p->nops = nops;
    for (int o = 0; o < EW_MAXOPS; o++) p->base[o] = 0;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] == 1) continue;
        p->shape[nd] = shape[d];
        for (int o = 0; o < nops; o++) p->st[o][nd] = strides[o][d];
        nd++;
    }
    if (sort_dst) {
        for (int d = 0; d < nd; d++)
            if (p->st[0][d] < 0) {
                for (int o = 0; o < nops; o++) {
                    p->base[o] += (p->shape[d] - 1) * p->st[o][d];
                    p->st[o][d] = -p->st[o][d];
                }
            }
        for (int d = 1; d < nd; d++) { /* stable insertion sort, largest destination stride first */
            for (int e = d; e > 0 && p->st[0][e - 1] < p->st[0][e]; e--) {
                int64_t t = p->shape[e];
                p->shape[e] = p->shape[e - 1];
                p->shape[e - 1] = t;
                for (int o = 0; o < nops; o++) {
                    t = p->st[o][e];
                    p->st[o][e] = p->st[o][e - 1];
                    p->st[o][e - 1] = t;
                }
            }
        }
    }
    /* coalesce: outer dimension d-1 and inner d merge when every operand steps over d exactly once per d-1 step */
    int m = 0;
    for (int d = 0; d < nd; d++) {
        if (m > 0) {
            int ok = 1;
            for (int o = 0; o < nops; o++) ok &= p->st[o][m - 1] == p->st[o][d] * p->shape[d];
            if (ok) {
                p->shape[m - 1] *= p->shape[d];
                for (int o = 0; o < nops; o++) p->st[o][m - 1] = p->st[o][d];
                continue;
            }
        }
        p->shape[m] = p->shape[d];
        for (int o = 0; o < nops; o++) p->st[o][m] = p->st[o][d];
        m++;
    }
    if (m == 0) { /* a single element */
        p->len = 1;
        for (int o = 0; o < EW_MAXOPS; o++) p->ist[o] = 0;
    } else {
        m--;
        p->len = p->shape[m];
        for (int o = 0; o < nops; o++) p->ist[o] = p->st[o][m];
    }
    p->nd = m;
    p->rows = 1;
    for (int d = 0; d < m; d++) p->rows *= p->shape[d];
    p->chunk = p->len > EW_CHUNK ? EW_CHUNK : p->len;
    p->cpr = (p->len + p->chunk - 1) / p->chunk;
    p->units = p->rows * p->cpr;
}

/* Runs the statement(s) after `units` with u0, u1 set to each thread's share of a static partition of [0, units). */
#define EW_PARALLEL(nt, units, ...)                                                                                 \
    do {                                                                                                            \
        int nt_ = (int)((units) < (nt) ? (units) : (nt));                                                           \
        if (nt_ <= 1) {                                                                                             \
            int64_t u0 = 0, u1 = (units);                                                                           \
            __VA_ARGS__;                                                                                            \
        } else {                                                                                                    \
            _Pragma("omp parallel num_threads(nt_)") {                                                              \
                int64_t T_ = omp_get_num_threads(), t_ = omp_get_thread_num();                                      \
                int64_t u0 = (units) * t_ / T_, u1 = (units) * (t_ + 1) / T_;                                       \
                __VA_ARGS__;                                                                                        \
            }                                                                                                       \
        }                                                                                                           \
    } while (0)

/* ---- F32 / F64 kernels ----------------------------------------------------------------------------------------- */

#define real float
#define FN(name) name##_f32
#define EXP ew_expf
#define TANH ew_tanhf
#define ERF ew_erff
#define LOG ew_logf
#define LOG1P ew_log1pf
#define SQRT sqrtf
#define FABS fabsf
#include "elementwise.inc"
#undef real
#undef FN
#undef EXP
#undef TANH
#undef ERF
#undef LOG
#undef LOG1P
#undef SQRT
#undef FABS

#define real double
#define FN(name) name##_f64
#define EXP exp
#define TANH tanh
#define ERF erf
#define LOG log
#define LOG1P log1p
#define SQRT sqrt
#define FABS fabs
#include "elementwise.inc"
#undef real
#undef FN
#undef EXP
#undef TANH
#undef ERF
#undef LOG
#undef LOG1P
#undef SQRT
#undef FABS

/* ---- strided copy kernels, by element size (plain copy) or F32 / F64 (accumulate) ------------------------------ */

/* Transpose plan: J is the dimension along which the source is contiguous (src stride 1, dst stride dsj), K the
 * destination's contiguous one (dst stride 1, src stride ssk); the other dimensions are walked per unit. A unit is a
 * SUPER x SUPER block (J x K) cut into TILE x TILE tiles, each transposed 8 x 8 (4 x 4 for 8-byte elements) in
 * registers: 8 row loads from the source, 24 shuffles, 8 row stores into the destination. */
typedef struct {
    int nd;
    int64_t shape[RLHF4J_MAX_DIMS], dst_st[RLHF4J_MAX_DIMS], src_st[RLHF4J_MAX_DIMS];
    int64_t nj, nk, dsj, ssk;
    int64_t sj, sk;  /* super-blocks along J and K */
    int64_t units;   /* (other dims) * sj * sk */
    int64_t base_d, base_s;
    int avx2;        /* the CPU has AVX2 (rlhf4j_cpu_isa) */
} ew_tplan;

/* One tile, dst[a * dsj + b] (+)= src[a + b * ssk] for a < nj, b < nk, in blocks of 8 (SSE2 is baseline x86-64). */
static void tile_b16_sse2(uint16_t *restrict d, int64_t dsj, const uint16_t *restrict s, int64_t ssk, int64_t nj,
                          int64_t nk) {
    int64_t a8 = nj & ~(int64_t)7, b8 = nk & ~(int64_t)7;
    for (int64_t a = 0; a < a8; a += 8)
        for (int64_t b = 0; b < b8; b += 8) {
            const uint16_t *p = s + a + b * ssk;
#define LOAD_ROW(k) _mm_loadu_si128((const __m128i *)(p + (k) * ssk))
            __m128i r0 = LOAD_ROW(0), r1 = LOAD_ROW(1), r2 = LOAD_ROW(2), r3 = LOAD_ROW(3);
            __m128i r4 = LOAD_ROW(4), r5 = LOAD_ROW(5), r6 = LOAD_ROW(6), r7 = LOAD_ROW(7);
#undef LOAD_ROW
            __m128i a0 = _mm_unpacklo_epi16(r0, r1), a1 = _mm_unpackhi_epi16(r0, r1);
            __m128i a2 = _mm_unpacklo_epi16(r2, r3), a3 = _mm_unpackhi_epi16(r2, r3);
            __m128i a4 = _mm_unpacklo_epi16(r4, r5), a5 = _mm_unpackhi_epi16(r4, r5);
            __m128i a6 = _mm_unpacklo_epi16(r6, r7), a7 = _mm_unpackhi_epi16(r6, r7);
            __m128i b0 = _mm_unpacklo_epi32(a0, a2), b1 = _mm_unpackhi_epi32(a0, a2);
            __m128i b2 = _mm_unpacklo_epi32(a1, a3), b3 = _mm_unpackhi_epi32(a1, a3);
            __m128i b4 = _mm_unpacklo_epi32(a4, a6), b5 = _mm_unpackhi_epi32(a4, a6);
            __m128i b6 = _mm_unpacklo_epi32(a5, a7), b7 = _mm_unpackhi_epi32(a5, a7);
            uint16_t *q = d + a * dsj + b;
            _mm_storeu_si128((__m128i *)(q + 0 * dsj), _mm_unpacklo_epi64(b0, b4));
            _mm_storeu_si128((__m128i *)(q + 1 * dsj), _mm_unpackhi_epi64(b0, b4));
            _mm_storeu_si128((__m128i *)(q + 2 * dsj), _mm_unpacklo_epi64(b1, b5));
            _mm_storeu_si128((__m128i *)(q + 3 * dsj), _mm_unpackhi_epi64(b1, b5));
            _mm_storeu_si128((__m128i *)(q + 4 * dsj), _mm_unpacklo_epi64(b2, b6));
            _mm_storeu_si128((__m128i *)(q + 5 * dsj), _mm_unpackhi_epi64(b2, b6));
            _mm_storeu_si128((__m128i *)(q + 6 * dsj), _mm_unpacklo_epi64(b3, b7));
            _mm_storeu_si128((__m128i *)(q + 7 * dsj), _mm_unpackhi_epi64(b3, b7));
        }
    for (int64_t a = 0; a < nj; a++)
        for (int64_t b = a < a8 ? b8 : 0; b < nk; b++) d[a * dsj + b] = s[a + b * ssk];
}

/* 4-byte elements, blocks of 8 with AVX2 (called only when the CPU has it); acc adds as f32. */
__attribute__((target("avx2"))) static void tile_b32_avx2(uint32_t *restrict d, int64_t dsj,
                                                           const uint32_t *restrict s, int64_t ssk, int64_t nj,
                                                           int64_t nk, int acc) {
    int64_t a8 = nj & ~(int64_t)7, b8 = nk & ~(int64_t)7;
    float *df = (float *)d;
    const float *sf = (const float *)s;
    for (int64_t a = 0; a < a8; a += 8)
        for (int64_t b = 0; b < b8; b += 8) {
            const float *p = sf + a + b * ssk;
            __m256 r0 = _mm256_loadu_ps(p + 0 * ssk), r1 = _mm256_loadu_ps(p + 1 * ssk);
            __m256 r2 = _mm256_loadu_ps(p + 2 * ssk), r3 = _mm256_loadu_ps(p + 3 * ssk);
            __m256 r4 = _mm256_loadu_ps(p + 4 * ssk), r5 = _mm256_loadu_ps(p + 5 * ssk);
            __m256 r6 = _mm256_loadu_ps(p + 6 * ssk), r7 = _mm256_loadu_ps(p + 7 * ssk);
            __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
            __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
            __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
            __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
            __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
            __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
            __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
            __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
            __m256 o[8] = {_mm256_permute2f128_ps(u0, u4, 0x20), _mm256_permute2f128_ps(u1, u5, 0x20),
                           _mm256_permute2f128_ps(u2, u6, 0x20), _mm256_permute2f128_ps(u3, u7, 0x20),
                           _mm256_permute2f128_ps(u0, u4, 0x31), _mm256_permute2f128_ps(u1, u5, 0x31),
                           _mm256_permute2f128_ps(u2, u6, 0x31), _mm256_permute2f128_ps(u3, u7, 0x31)};
            float *q = df + a * dsj + b;
            if (acc)
                for (int k = 0; k < 8; k++)
                    _mm256_storeu_ps(q + k * dsj, _mm256_add_ps(_mm256_loadu_ps(q + k * dsj), o[k]));
            else
                for (int k = 0; k < 8; k++) _mm256_storeu_ps(q + k * dsj, o[k]);
        }
    for (int64_t a = 0; a < nj; a++)
        for (int64_t b = a < a8 ? b8 : 0; b < nk; b++) {
            if (acc)
                df[a * dsj + b] += sf[a + b * ssk];
            else
                d[a * dsj + b] = s[a + b * ssk];
        }
}

/* 8-byte elements, blocks of 4 with AVX2; acc adds as f64. */
__attribute__((target("avx2"))) static void tile_b64_avx2(uint64_t *restrict d, int64_t dsj,
                                                           const uint64_t *restrict s, int64_t ssk, int64_t nj,
                                                           int64_t nk, int acc) {
    int64_t a4 = nj & ~(int64_t)3, b4 = nk & ~(int64_t)3;
    double *df = (double *)d;
    const double *sf = (const double *)s;
    for (int64_t a = 0; a < a4; a += 4)
        for (int64_t b = 0; b < b4; b += 4) {
            const double *p = sf + a + b * ssk;
            __m256d r0 = _mm256_loadu_pd(p), r1 = _mm256_loadu_pd(p + ssk);
            __m256d r2 = _mm256_loadu_pd(p + 2 * ssk), r3 = _mm256_loadu_pd(p + 3 * ssk);
            __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
            __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
            __m256d o[4] = {_mm256_permute2f128_pd(t0, t2, 0x20), _mm256_permute2f128_pd(t1, t3, 0x20),
                            _mm256_permute2f128_pd(t0, t2, 0x31), _mm256_permute2f128_pd(t1, t3, 0x31)};
            double *q = df + a * dsj + b;
            if (acc)
                for (int k = 0; k < 4; k++)
                    _mm256_storeu_pd(q + k * dsj, _mm256_add_pd(_mm256_loadu_pd(q + k * dsj), o[k]));
            else
                for (int k = 0; k < 4; k++) _mm256_storeu_pd(q + k * dsj, o[k]);
        }
    for (int64_t a = 0; a < nj; a++)
        for (int64_t b = a < a4 ? b4 : 0; b < nk; b++) {
            if (acc)
                df[a * dsj + b] += sf[a + b * ssk];
            else
                d[a * dsj + b] = s[a + b * ssk];
        }
}

/* copy_row_X: one row of the row plan. copy_units_X: rows [u0, u1) of a row plan. copy_supers_X: super-blocks
 * [u0, u1) of a transpose plan. Short contiguous rows use an inline loop: a memcpy call costs more than copying
 * one head (64 elements) of a [B, T, H, D] permute. */
#define DEFINE_COPY(SFX, T, ACC)                                                                                    \
    static inline void copy_row_##SFX(T *d, int64_t ds, const T *s, int64_t ss, int64_t n) {                       \
        if (ds == 1 && ss == 1) {                                                                                   \
            if (ACC || n <= 64)                                                                                     \
                for (int64_t j = 0; j < n; j++) d[j] = ACC ? d[j] + s[j] : s[j];                                    \
            else                                                                                                    \
                memcpy(d, s, (size_t)n * sizeof(T));                                                                \
        } else if (ds == 1 && ss == 0) {                                                                            \
            const T v = s[0];                                                                                       \
            for (int64_t j = 0; j < n; j++) d[j] = ACC ? d[j] + v : v;                                              \
        } else {                                                                                                    \
            for (int64_t j = 0; j < n; j++) d[j * ds] = ACC ? d[j * ds] + s[j * ss] : s[j * ss];                    \
        }                                                                                                           \
    }                                                                                                               \
    RLHF4J_MULTIVERSION                                                                                             \
    static void copy_units_##SFX(const ew_plan *p, int64_t u0, int64_t u1, T *dst, const T *src) {                  \
        ew_cursor c;                                                                                                \
        ew_seek(p, &c, u0);                                                                                         \
        for (int64_t u = u0; u < u1; u++) {                                                                         \
            int64_t j0 = c.chunk * p->chunk, n = p->len - j0 < p->chunk ? p->len - j0 : p->chunk;                   \
            copy_row_##SFX(dst + c.off[0] + j0 * p->ist[0], p->ist[0], src + c.off[1] + j0 * p->ist[1], p->ist[1], \
                           n);                                                                                      \
            ew_advance(p, &c);                                                                                      \
        }                                                                                                           \
    }                                                                                                               \
    static void copy_supers_##SFX(const ew_tplan *p, int64_t u0, int64_t u1, T *dst, const T *src) {                \
        for (int64_t u = u0; u < u1; u++) {                                                                         \
            int64_t t = u, ks = t % p->sk;                                                                          \
            t /= p->sk;                                                                                             \
            int64_t js = t % p->sj;                                                                                 \
            t /= p->sj;                                                                                             \
            int64_t od = p->base_d, os = p->base_s;                                                                 \
            for (int d = p->nd - 1; d >= 0; d--) {                                                                  \
                int64_t i = t % p->shape[d];                                                                        \
                t /= p->shape[d];                                                                                   \
                od += i * p->dst_st[d];                                                                             \
                os += i * p->src_st[d];                                                                             \
            }                                                                                                       \
            int64_t J1 = (js + 1) * SUPER < p->nj ? (js + 1) * SUPER : p->nj;                                       \
            int64_t K1 = (ks + 1) * SUPER < p->nk ? (ks + 1) * SUPER : p->nk;                                       \
            for (int64_t j0 = js * SUPER; j0 < J1; j0 += TILE)                                                      \
                for (int64_t k0 = ks * SUPER; k0 < K1; k0 += TILE) {                                                \
                    int64_t nj = J1 - j0 < TILE ? J1 - j0 : TILE, nk = K1 - k0 < TILE ? K1 - k0 : TILE;             \
                    T *dd = dst + od + j0 * p->dsj + k0;                                                            \
                    const T *sp = src + os + j0 + k0 * p->ssk;                                                      \
                    if (sizeof(T) == 4 && p->avx2)                                                                  \
                        tile_b32_avx2((uint32_t *)dd, p->dsj, (const uint32_t *)sp, p->ssk, nj, nk, ACC);           \
                    else if (sizeof(T) == 8 && p->avx2)                                                             \
                        tile_b64_avx2((uint64_t *)dd, p->dsj, (const uint64_t *)sp, p->ssk, nj, nk, ACC);           \
                    else if (sizeof(T) == 2 && !ACC)                                                                \
                        tile_b16_sse2((uint16_t *)dd, p->dsj, (const uint16_t *)sp, p->ssk, nj, nk);                \
                    else                                                                                            \
                        for (int64_t a = 0; a < nj; a++)                                                            \
                            for (int64_t b = 0; b < nk; b++)                                                        \
                                dd[a * p->dsj + b] = ACC ? dd[a * p->dsj + b] + sp[a + b * p->ssk]                  \
                                                         : sp[a + b * p->ssk];                                      \
                }                                                                                                   \
        }                                                                                                           \
    }

DEFINE_COPY(u16, uint16_t, 0)
DEFINE_COPY(u32, uint32_t, 0)
DEFINE_COPY(u64, uint64_t, 0)
DEFINE_COPY(acc_f32, float, 1)
DEFINE_COPY(acc_f64, double, 1)

/* ---- shared argument checks ------------------------------------------------------------------------------------ */

/* ndim in [0, MAX_DIMS], shape (and the stride arrays) present when ndim > 0, every extent >= 0; *total gets the
 * element count. */
static int32_t check_shape(const char *fn, int32_t ndim, const int64_t *shape, int nstr, const int64_t *const *str,
                           const char *const *str_names, int64_t *total) {
    CHECK_ARG(ndim >= 0 && ndim <= RLHF4J_MAX_DIMS, "%s: ndim = %d must be in [0, %d]", fn, ndim, RLHF4J_MAX_DIMS);
    int64_t n = 1;
    if (ndim > 0) {
        CHECK_PTR(fn, shape);
        for (int i = 0; i < nstr; i++) CHECK_ARG(str[i] != NULL, "%s: %s is NULL", fn, str_names[i]);
    }
    for (int d = 0; d < ndim; d++) {
        CHECK_ARG(shape[d] >= 0, "%s: shape[%d] = %lld must be >= 0", fn, d, (long long)shape[d]);
        if (n != 0 && shape[d] > INT64_MAX / n)
            return FAIL_ARG("%s: shape has more than 2^63 elements", fn);
        n *= shape[d];
    }
    *total = n;
    return RLHF4J_OK;
}

/* ---- convert --------------------------------------------------------------------------------------------------- */

/* float -> i32 as Java's (int) cast: truncation toward zero, NaN -> 0, out of range saturates. (A C cast is
 * undefined there; torch gives INT32_MIN on x86.) */
static inline int32_t sat_i32(double d) {
    return d != d ? 0 : d >= 2147483648.0 ? INT32_MAX : d <= -2147483649.0 ? INT32_MIN : (int32_t)d;
}

static inline double load_as_double(int32_t dt, const void *p, int64_t i) {
    switch (dt) {
    case RLHF4J_F32: return ((const float *)p)[i];
    case RLHF4J_BF16: return rl_bf16_to_f32(((const uint16_t *)p)[i]);
    case RLHF4J_F16: return rl_f16_to_f32(((const uint16_t *)p)[i]);
    case RLHF4J_I32: return ((const int32_t *)p)[i];
    default: return ((const double *)p)[i];
    }
}

/* dst[i0..i1) from src. The common float pairs have loops of their own; every other pair goes through double,
 * which holds every value of every source dtype exactly, so each conversion rounds once, except that F64 and I32
 * to BF16/F16 round to F32 first, exactly as torch's .to() does (c10::BFloat16 / c10::Half convert from float). */
RLHF4J_MULTIVERSION
static void convert_chunk(int32_t sd, const void *src, int32_t dd, void *dst, int64_t i0, int64_t i1) {
    const int64_t n = i1 - i0;
    if (sd == RLHF4J_F32 && dd == RLHF4J_BF16) {
        const float *restrict s = (const float *)src + i0;
        uint16_t *restrict d = (uint16_t *)dst + i0;
        for (int64_t i = 0; i < n; i++) d[i] = rl_f32_to_bf16(s[i]);
    } else if (sd == RLHF4J_BF16 && dd == RLHF4J_F32) {
        const uint16_t *restrict s = (const uint16_t *)src + i0;
        float *restrict d = (float *)dst + i0;
        for (int64_t i = 0; i < n; i++) d[i] = rl_bf16_to_f32(s[i]);
    } else if (sd == RLHF4J_F32 && dd == RLHF4J_F16) {
        const float *restrict s = (const float *)src + i0;
        uint16_t *restrict d = (uint16_t *)dst + i0;
        for (int64_t i = 0; i < n; i++) d[i] = rl_f32_to_f16(s[i]);
    } else if (sd == RLHF4J_F16 && dd == RLHF4J_F32) {
        const uint16_t *restrict s = (const uint16_t *)src + i0;
        float *restrict d = (float *)dst + i0;
        for (int64_t i = 0; i < n; i++) d[i] = rl_f16_to_f32(s[i]);
    } else if (sd == RLHF4J_F32 && dd == RLHF4J_F64) {
        const float *restrict s = (const float *)src + i0;
        double *restrict d = (double *)dst + i0;
        for (int64_t i = 0; i < n; i++) d[i] = s[i];
    } else if (sd == RLHF4J_F64 && dd == RLHF4J_F32) {
        const double *restrict s = (const double *)src + i0;
        float *restrict d = (float *)dst + i0;
        for (int64_t i = 0; i < n; i++) d[i] = (float)s[i];
    } else {
        switch (dd) {
        case RLHF4J_F32:
            for (int64_t i = 0; i < n; i++) ((float *)dst)[i0 + i] = (float)load_as_double(sd, src, i0 + i);
            break;
        case RLHF4J_BF16:
            for (int64_t i = 0; i < n; i++)
                ((uint16_t *)dst)[i0 + i] = rl_f32_to_bf16((float)load_as_double(sd, src, i0 + i));
            break;
        case RLHF4J_F16:
            for (int64_t i = 0; i < n; i++)
                ((uint16_t *)dst)[i0 + i] = rl_f32_to_f16((float)load_as_double(sd, src, i0 + i));
            break;
        case RLHF4J_I32:
            for (int64_t i = 0; i < n; i++) ((int32_t *)dst)[i0 + i] = sat_i32(load_as_double(sd, src, i0 + i));
            break;
        default:
            for (int64_t i = 0; i < n; i++) ((double *)dst)[i0 + i] = load_as_double(sd, src, i0 + i);
            break;
        }
    }
}

RLHF4J_API int32_t rlhf4j_convert(rlhf4j_stream s, int32_t src_dtype, const void *src, int32_t dst_dtype, void *dst,
                                  int64_t n) {
    static const char *fn = "rlhf4j_convert";
    CHECK_STREAM(fn, s);
    CHECK_ARG(rlhf4j_dtype_size(src_dtype) > 0, "%s: unknown src_dtype %d", fn, src_dtype);
    CHECK_ARG(rlhf4j_dtype_size(dst_dtype) > 0, "%s: unknown dst_dtype %d", fn, dst_dtype);
    CHECK_NONNEG(fn, n);
    if (n == 0) return RLHF4J_OK;
    CHECK_PTR(fn, src);
    CHECK_PTR(fn, dst);
    if (src_dtype == dst_dtype) {
        if (src != dst) memmove(dst, src, (size_t)(n * rlhf4j_dtype_size(src_dtype)));
        return RLHF4J_OK;
    }
    int64_t chunks = (n + EW_CHUNK - 1) / EW_CHUNK;
    EW_PARALLEL(nthreads(s, n), chunks, {
        for (int64_t c = u0; c < u1; c++)
            convert_chunk(src_dtype, src, dst_dtype, dst, c * EW_CHUNK,
                          (c + 1) * EW_CHUNK < n ? (c + 1) * EW_CHUNK : n);
    });
    return RLHF4J_OK;
}

/* ---- copy_strided ------------------------------------------------------------------------------------------------ */

RLHF4J_API int32_t rlhf4j_copy_strided(rlhf4j_stream s, int32_t dtype, int32_t ndim, const int64_t *shape,
                                       const void *src, const int64_t *src_strides, void *dst,
                                       const int64_t *dst_strides, int32_t accumulate) {
    static const char *fn = "rlhf4j_copy_strided";
    CHECK_STREAM(fn, s);
    int64_t esize = rlhf4j_dtype_size(dtype);
    CHECK_ARG(esize > 0, "%s: unknown dtype %d", fn, dtype);
    if (accumulate && dtype != RLHF4J_F32 && dtype != RLHF4J_F64)
        return FAIL_UNSUPPORTED("%s: accumulate is supported for f32 and f64 only, not %s", fn,
                                rlhf4j_dtype_name(dtype));
    const int64_t *str[2] = {dst_strides, src_strides};
    static const char *const names[2] = {"dst_strides", "src_strides"};
    int64_t total = 0;
    int32_t st = check_shape(fn, ndim, shape, 2, str, names, &total);
    if (st != RLHF4J_OK) return st;
    if (total == 0) return RLHF4J_OK;
    CHECK_PTR(fn, src);
    CHECK_PTR(fn, dst);
    for (int d = 0; d < ndim; d++)
        CHECK_ARG(dst_strides[d] != 0 || shape[d] <= 1,
                  "%s: dst_strides[%d] = 0 over shape[%d] = %lld: destination elements would alias", fn, d, d,
                  (long long)shape[d]);

    ew_plan p;
    ew_plan_build(&p, ndim, shape, 2, str, 1);
    int nt = nthreads(s, total);

    /* Transpose: destination contiguous along the inner dimension, source contiguous along another one. */
    int jdim = -1;
    if (p.ist[0] == 1 && p.ist[1] != 1 && p.ist[1] != 0 && p.len >= 8)
        for (int d = 0; d < p.nd; d++)
            if (p.st[1][d] == 1 && p.shape[d] >= 8) jdim = d;
    if (jdim >= 0) {
        ew_tplan t;
        t.nd = 0;
        for (int d = 0; d < p.nd; d++) {
            if (d == jdim) continue;
            t.shape[t.nd] = p.shape[d];
            t.dst_st[t.nd] = p.st[0][d];
            t.src_st[t.nd] = p.st[1][d];
            t.nd++;
        }
        t.nj = p.shape[jdim];
        t.dsj = p.st[0][jdim];
        t.nk = p.len;
        t.ssk = p.ist[1];
        t.sj = (t.nj + SUPER - 1) / SUPER;
        t.sk = (t.nk + SUPER - 1) / SUPER;
        t.units = p.rows / t.nj * t.sj * t.sk;
        t.base_d = p.base[0];
        t.base_s = p.base[1];
        t.avx2 = rlhf4j_cpu_isa() >= ISA_AVX2;
        switch (accumulate ? (dtype == RLHF4J_F32 ? 5 : 6) : (int)esize) {
        case 2: EW_PARALLEL(nt, t.units, copy_supers_u16(&t, u0, u1, dst, src)); break;
        case 4: EW_PARALLEL(nt, t.units, copy_supers_u32(&t, u0, u1, dst, src)); break;
        case 8: EW_PARALLEL(nt, t.units, copy_supers_u64(&t, u0, u1, dst, src)); break;
        case 5: EW_PARALLEL(nt, t.units, copy_supers_acc_f32(&t, u0, u1, dst, src)); break;
        default: EW_PARALLEL(nt, t.units, copy_supers_acc_f64(&t, u0, u1, dst, src)); break;
        }
        return RLHF4J_OK;
    }
    switch (accumulate ? (dtype == RLHF4J_F32 ? 5 : 6) : (int)esize) {
    case 2: EW_PARALLEL(nt, p.units, copy_units_u16(&p, u0, u1, dst, src)); break;
    case 4: EW_PARALLEL(nt, p.units, copy_units_u32(&p, u0, u1, dst, src)); break;
    case 8: EW_PARALLEL(nt, p.units, copy_units_u64(&p, u0, u1, dst, src)); break;
    case 5: EW_PARALLEL(nt, p.units, copy_units_acc_f32(&p, u0, u1, dst, src)); break;
    default: EW_PARALLEL(nt, p.units, copy_units_acc_f64(&p, u0, u1, dst, src)); break;
    }
    return RLHF4J_OK;
}

/* ---- unary --------------------------------------------------------------------------------------------------- */

static int is_transcendental(int32_t op) {
    return op == RLHF4J_UNARY_EXP || op == RLHF4J_UNARY_LOG || op >= RLHF4J_UNARY_GELU_TANH;
}

static int32_t check_unary_op(const char *fn, int32_t op, double alpha, double beta) {
    CHECK_ARG(op >= RLHF4J_UNARY_EXP && op <= RLHF4J_UNARY_ABS, "%s: unknown op %d", fn, op);
    if (op == RLHF4J_UNARY_CLAMP)
        CHECK_ARG(alpha == alpha && beta == beta, "%s: clamp bounds alpha = %g, beta = %g must not be NaN", fn, alpha,
                  beta);
    return RLHF4J_OK;
}

RLHF4J_API int32_t rlhf4j_unary(rlhf4j_stream s, int32_t op, int32_t dtype, int64_t n, const void *x, void *y,
                                double alpha, double beta) {
    static const char *fn = "rlhf4j_unary";
    CHECK_STREAM(fn, s);
    int32_t st = check_unary_op(fn, op, alpha, beta);
    if (st != RLHF4J_OK) return st;
    CHECK_COMPUTE_DTYPE(fn, dtype);
    CHECK_NONNEG(fn, n);
    if (n == 0) return RLHF4J_OK;
    CHECK_PTR(fn, x);
    CHECK_PTR(fn, y);
    int64_t chunks = (n + UNARY_CHUNK - 1) / UNARY_CHUNK;
    int nt = nthreads(s, is_transcendental(op) ? n * 16 : n);
    EW_PARALLEL(nt, chunks, {
        for (int64_t c = u0; c < u1; c++) {
            int64_t i0 = c * UNARY_CHUNK, m = n - i0 < UNARY_CHUNK ? n - i0 : UNARY_CHUNK;
            if (dtype == RLHF4J_F32)
                unary_chunk_f32(op, m, (const float *)x + i0, (float *)y + i0, (float)alpha, (float)beta);
            else
                unary_chunk_f64(op, m, (const double *)x + i0, (double *)y + i0, alpha, beta);
        }
    });
    return RLHF4J_OK;
}

RLHF4J_API int32_t rlhf4j_unary_backward(rlhf4j_stream s, int32_t op, int32_t dtype, int64_t n, const void *x,
                                         const void *y, const void *dy, void *dx, double alpha, double beta,
                                         int32_t accumulate) {
    static const char *fn = "rlhf4j_unary_backward";
    CHECK_STREAM(fn, s);
    int32_t st = check_unary_op(fn, op, alpha, beta);
    if (st != RLHF4J_OK) return st;
    CHECK_COMPUTE_DTYPE(fn, dtype);
    CHECK_NONNEG(fn, n);
    if (n == 0) return RLHF4J_OK;
    CHECK_PTR(fn, dy);
    if (dx == NULL) return RLHF4J_OK; /* no gradient wanted */
    /* The derivative reads y for exp, sigmoid, tanh and sqrt (as torch's), x for the others; the unused one may be
     * NULL. */
    int needs_y = op == RLHF4J_UNARY_EXP || op == RLHF4J_UNARY_SIGMOID || op == RLHF4J_UNARY_TANH ||
                  op == RLHF4J_UNARY_SQRT;
    if (needs_y)
        CHECK_ARG(y != NULL, "%s: y is NULL (op %d's derivative reads y = f(x))", fn, op);
    else
        CHECK_ARG(x != NULL || op == RLHF4J_UNARY_AFFINE, "%s: x is NULL", fn);
    int64_t chunks = (n + UNARY_CHUNK - 1) / UNARY_CHUNK;
    int nt = nthreads(s, is_transcendental(op) ? n * 16 : n);
    int acc = accumulate != 0;
    EW_PARALLEL(nt, chunks, {
        for (int64_t c = u0; c < u1; c++) {
            int64_t i0 = c * UNARY_CHUNK, m = n - i0 < UNARY_CHUNK ? n - i0 : UNARY_CHUNK;
            if (dtype == RLHF4J_F32)
                unary_backward_chunk_f32(op, m, x ? (const float *)x + i0 : NULL, y ? (const float *)y + i0 : NULL,
                                         (const float *)dy + i0, (float *)dx + i0, (float)alpha, (float)beta, acc);
            else
                unary_backward_chunk_f64(op, m, x ? (const double *)x + i0 : NULL, y ? (const double *)y + i0 : NULL,
                                         (const double *)dy + i0, (double *)dx + i0, alpha, beta, acc);
        }
    });
    return RLHF4J_OK;
}

/* ---- binary -------------------------------------------------------------------------------------------------- */

static int32_t binary_setup(const char *fn, rlhf4j_stream s, int32_t op, int32_t dtype, int32_t ndim,
                            const int64_t *shape, const int64_t *a_strides, const int64_t *b_strides, ew_plan *p,
                            int64_t *total) {
    CHECK_STREAM(fn, s);
    CHECK_ARG(op >= RLHF4J_BINARY_ADD && op <= RLHF4J_BINARY_MIN, "%s: unknown op %d", fn, op);
    CHECK_COMPUTE_DTYPE(fn, dtype);
    const int64_t *str[2] = {a_strides, b_strides};
    static const char *const names[2] = {"a_strides", "b_strides"};
    int32_t st = check_shape(fn, ndim, shape, 2, str, names, total);
    if (st != RLHF4J_OK) return st;
    if (*total == 0) return RLHF4J_OK;
    int64_t out_strides[RLHF4J_MAX_DIMS];
    int64_t acc = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        out_strides[d] = acc;
        acc *= shape[d];
    }
    const int64_t *all[3] = {out_strides, a_strides, b_strides};
    ew_plan_build(p, ndim, shape, 3, all, 0);
    return RLHF4J_OK;
}

RLHF4J_API int32_t rlhf4j_binary(rlhf4j_stream s, int32_t op, int32_t dtype, int32_t ndim, const int64_t *shape,
                                 const void *a, const int64_t *a_strides, const void *b, const int64_t *b_strides,
                                 void *out) {
    static const char *fn = "rlhf4j_binary";
    ew_plan p;
    int64_t total = 0;
    int32_t st = binary_setup(fn, s, op, dtype, ndim, shape, a_strides, b_strides, &p, &total);
    if (st != RLHF4J_OK || total == 0) return st;
    CHECK_PTR(fn, a);
    CHECK_PTR(fn, b);
    CHECK_PTR(fn, out);
    int nt = nthreads(s, total);
    if (dtype == RLHF4J_F32)
        EW_PARALLEL(nt, p.units, binary_units_f32(&p, op, u0, u1, out, a, b));
    else
        EW_PARALLEL(nt, p.units, binary_units_f64(&p, op, u0, u1, out, a, b));
    return RLHF4J_OK;
}

RLHF4J_API int32_t rlhf4j_binary_backward(rlhf4j_stream s, int32_t op, int32_t dtype, int32_t ndim,
                                          const int64_t *shape, const void *a, const int64_t *a_strides,
                                          const void *b, const int64_t *b_strides, const void *dout, void *da,
                                          void *db, int32_t accumulate) {
    static const char *fn = "rlhf4j_binary_backward";
    ew_plan p;
    int64_t total = 0;
    int32_t st = binary_setup(fn, s, op, dtype, ndim, shape, a_strides, b_strides, &p, &total);
    if (st != RLHF4J_OK || total == 0) return st;
    if (da == NULL && db == NULL) return RLHF4J_OK;
    CHECK_PTR(fn, dout);
    int acc = accumulate != 0;
    int nt = nthreads(s, total);
    if (op == RLHF4J_BINARY_ADD || op == RLHF4J_BINARY_SUB) { /* neither operand is read */
        int64_t chunks = (total + EW_CHUNK - 1) / EW_CHUNK;
        EW_PARALLEL(nt, chunks, {
            for (int64_t c = u0; c < u1; c++) {
                int64_t i0 = c * EW_CHUNK, m = total - i0 < EW_CHUNK ? total - i0 : EW_CHUNK;
                int neg = op == RLHF4J_BINARY_SUB;
                if (dtype == RLHF4J_F32) {
                    if (da) grad_copy_chunk_f32(m, (const float *)dout + i0, (float *)da + i0, 0, acc);
                    if (db) grad_copy_chunk_f32(m, (const float *)dout + i0, (float *)db + i0, neg, acc);
                } else {
                    if (da) grad_copy_chunk_f64(m, (const double *)dout + i0, (double *)da + i0, 0, acc);
                    if (db) grad_copy_chunk_f64(m, (const double *)dout + i0, (double *)db + i0, neg, acc);
                }
            }
        });
        return RLHF4J_OK;
    }
    CHECK_PTR(fn, a);
    CHECK_PTR(fn, b);
    if (dtype == RLHF4J_F32)
        EW_PARALLEL(nt, p.units, binary_backward_units_f32(&p, op, u0, u1, dout, da, db, a, b, acc));
    else
        EW_PARALLEL(nt, p.units, binary_backward_units_f64(&p, op, u0, u1, dout, da, db, a, b, acc));
    return RLHF4J_OK;
}

/* ---- reduce ---------------------------------------------------------------------------------------------------- */

RLHF4J_API int32_t rlhf4j_reduce(rlhf4j_stream s, int32_t op, int32_t dtype, int64_t outer, int64_t n, int64_t inner,
                                 const void *x, void *y, int32_t accumulate) {
    static const char *fn = "rlhf4j_reduce";
    CHECK_STREAM(fn, s);
    CHECK_ARG(op >= RLHF4J_REDUCE_SUM && op <= RLHF4J_REDUCE_SUMSQ, "%s: unknown op %d", fn, op);
    CHECK_COMPUTE_DTYPE(fn, dtype);
    CHECK_NONNEG(fn, outer);
    CHECK_NONNEG(fn, n);
    CHECK_NONNEG(fn, inner);
    int64_t outputs = outer * inner;
    if (outputs == 0) return RLHF4J_OK;
    CHECK_PTR(fn, y);
    if (n > 0) CHECK_PTR(fn, x);
    int acc = accumulate != 0;
    int nt = nthreads(s, outputs * n);
    /* n == 0: SUM and SUMSQ give 0, MEAN gives NaN (0 / 0), as torch.mean of an empty dimension. */
    if (inner == 1) {
        int64_t cpr = (n + RED_CHUNK - 1) / RED_CHUNK;
        if (outer >= nt || cpr <= 1 || nt <= 1) {
            if (dtype == RLHF4J_F32)
                EW_PARALLEL(nt, outer, reduce_rows_f32(x, n, u0, u1, op, y, acc));
            else
                EW_PARALLEL(nt, outer, reduce_rows_f64(x, n, u0, u1, op, y, acc));
            return RLHF4J_OK;
        }
        /* Few long rows: chunk sums in parallel, then added per row in the same order reduce_rows uses. */
        int64_t units = outer * cpr;
        double *partial = malloc((size_t)units * sizeof(double));
        if (partial == NULL) return rlhf4j_fail(RLHF4J_ERR_OUT_OF_MEMORY, "%s: out of host memory", fn);
        if (dtype == RLHF4J_F32)
            EW_PARALLEL(nt, units, reduce_chunks_f32(x, n, cpr, u0, u1, op, partial));
        else
            EW_PARALLEL(nt, units, reduce_chunks_f64(x, n, cpr, u0, u1, op, partial));
        for (int64_t o = 0; o < outer; o++) {
            double sum = 0;
            for (int64_t c = 0; c < cpr; c++) sum += partial[o * cpr + c];
            if (op == RLHF4J_REDUCE_MEAN) sum /= (double)n;
            if (dtype == RLHF4J_F32) {
                float *yy = y;
                yy[o] = acc ? yy[o] + (float)sum : (float)sum;
            } else {
                double *yy = y;
                yy[o] = acc ? yy[o] + sum : sum;
            }
        }
        free(partial);
        return RLHF4J_OK;
    }
    int64_t units = outer * ((inner + RED_BLOCK - 1) / RED_BLOCK);
    if (dtype == RLHF4J_F32)
        EW_PARALLEL(nt, units, reduce_columns_f32(x, n, inner, u0, u1, op, y, acc));
    else
        EW_PARALLEL(nt, units, reduce_columns_f64(x, n, inner, u0, u1, op, y, acc));
    return RLHF4J_OK;
}

/* ---- masked reduce -------------------------------------------------------------------------------------------- */

static int32_t masked_check(const char *fn, rlhf4j_stream s, int32_t op, int32_t dtype, int64_t rows, int64_t cols) {
    CHECK_STREAM(fn, s);
    CHECK_ARG(op == RLHF4J_REDUCE_SUM || op == RLHF4J_REDUCE_MEAN, "%s: op = %d must be SUM (0) or MEAN (1)", fn, op);
    CHECK_COMPUTE_DTYPE(fn, dtype);
    CHECK_NONNEG(fn, rows);
    CHECK_NONNEG(fn, cols);
    return RLHF4J_OK;
}

RLHF4J_API int32_t rlhf4j_masked_reduce(rlhf4j_stream s, int32_t op, int32_t dtype, int64_t rows, int64_t cols,
                                        const void *x, const void *mask, void *y) {
    static const char *fn = "rlhf4j_masked_reduce";
    int32_t st = masked_check(fn, s, op, dtype, rows, cols);
    if (st != RLHF4J_OK) return st;
    if (rows == 0) return RLHF4J_OK;
    CHECK_PTR(fn, y);
    if (cols > 0) {
        CHECK_PTR(fn, x);
        CHECK_PTR(fn, mask);
    }
    int nt = nthreads(s, rows * cols);
    if (dtype == RLHF4J_F32)
        EW_PARALLEL(nt, rows, masked_reduce_rows_f32(op, cols, u0, u1, x, mask, y));
    else
        EW_PARALLEL(nt, rows, masked_reduce_rows_f64(op, cols, u0, u1, x, mask, y));
    return RLHF4J_OK;
}

RLHF4J_API int32_t rlhf4j_masked_reduce_backward(rlhf4j_stream s, int32_t op, int32_t dtype, int64_t rows,
                                                 int64_t cols, const void *mask, const void *dy, void *dx,
                                                 int32_t accumulate) {
    static const char *fn = "rlhf4j_masked_reduce_backward";
    int32_t st = masked_check(fn, s, op, dtype, rows, cols);
    if (st != RLHF4J_OK) return st;
    if (rows == 0 || cols == 0) return RLHF4J_OK;
    CHECK_PTR(fn, mask);
    CHECK_PTR(fn, dy);
    if (dx == NULL) return RLHF4J_OK; /* no gradient wanted */
    int nt = nthreads(s, rows * cols);
    int acc = accumulate != 0;
    if (dtype == RLHF4J_F32)
        EW_PARALLEL(nt, rows, masked_reduce_backward_rows_f32(op, cols, u0, u1, mask, dy, dx, acc));
    else
        EW_PARALLEL(nt, rows, masked_reduce_backward_rows_f64(op, cols, u0, u1, mask, dy, dx, acc));
    return RLHF4J_OK;
}

/* ---- axpby ----------------------------------------------------------------------------------------------------- */

RLHF4J_API int32_t rlhf4j_axpby(rlhf4j_stream s, int32_t dtype, int64_t n, double alpha, const void *x, double beta,
                                void *y) {
    static const char *fn = "rlhf4j_axpby";
    CHECK_STREAM(fn, s);
    CHECK_COMPUTE_DTYPE(fn, dtype);
    CHECK_NONNEG(fn, n);
    if (n == 0) return RLHF4J_OK;
    CHECK_PTR(fn, x);
    CHECK_PTR(fn, y);
    int64_t chunks = (n + EW_CHUNK - 1) / EW_CHUNK;
    EW_PARALLEL(nthreads(s, n), chunks, {
        for (int64_t c = u0; c < u1; c++) {
            int64_t i0 = c * EW_CHUNK, m = n - i0 < EW_CHUNK ? n - i0 : EW_CHUNK;
            if (dtype == RLHF4J_F32)
                axpby_chunk_f32(m, alpha, (const float *)x + i0, beta, (float *)y + i0);
            else
                axpby_chunk_f64(m, alpha, (const double *)x + i0, beta, (double *)y + i0);
        }
    });
    return RLHF4J_OK;
}
