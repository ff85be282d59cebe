/*
 * gemm_avx2.c: the AVX2 + FMA SGEMM micro-kernel, 6 x 16, and the transposing pack of f32 panels with AVX (gemm.c
 * has the blocking scheme around them).
 *
 * Registers: 12 ymm accumulators (6 rows x 2 vectors of 8 columns), 2 for the current k's row of the B panel and 1
 * for the broadcast A element: 15 of 16. Each k step is 2 loads of B, 6 broadcasts and 12 FMAs; with two FMA pipes
 * of latency 4-5, 12 independent chains keep both busy (the classic Haswell shape). Tiles with fewer than 6 rows
 * run a kernel compiled for their row count; fewer than 16 columns go through a small stack tile in the epilogue
 * (AVX2 has no masked 16-bit loads), which only edge tiles pay.
 */
#include "gemm.h"

#include <immintrin.h>

#define MR GEMM_AVX2_MR
#define NV (GEMM_AVX2_NR / 8)

static inline __m256 load8(const void *c, int dtype) {
    if (dtype == RLHF4J_F32) return _mm256_loadu_ps(c);
    __m128i h = _mm_loadu_si128(c);
    if (dtype == RLHF4J_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

static inline void store8(void *c, int dtype, __m256 x) {
    if (dtype == RLHF4J_F32) {
        _mm256_storeu_ps(c, x);
    } else if (dtype == RLHF4J_F16) {
        _mm_storeu_si128(c, _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    } else { /* bf16, round to nearest even, NaN stays a quiet NaN (as rl_f32_to_bf16) */
        __m256i u = _mm256_castps_si256(x);
        __m256i r = _mm256_add_epi32(
            u, _mm256_add_epi32(_mm256_set1_epi32(0x7fff),
                                _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1))));
        __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q));
        r = _mm256_blendv_epi8(r, _mm256_or_si256(u, _mm256_set1_epi32(0x400000)), nan);
        r = _mm256_srli_epi32(r, 16);
        /* pack 8 x u32 (each < 65536) to 8 x u16 */
        __m128i lo = _mm256_castsi256_si128(r), hi = _mm256_extracti128_si256(r, 1);
        _mm_storeu_si128(c, _mm_packus_epi32(lo, hi));
    }
}

static inline float load1(const void *c, int dtype, int64_t j) {
    if (dtype == RLHF4J_F32) return ((const float *)c)[j];
    if (dtype == RLHF4J_F16) return rl_f16_to_f32(((const uint16_t *)c)[j]);
    return rl_bf16_to_f32(((const uint16_t *)c)[j]);
}

static inline void store1(void *c, int dtype, int64_t j, float x) {
    if (dtype == RLHF4J_F32) ((float *)c)[j] = x;
    else if (dtype == RLHF4J_F16) ((uint16_t *)c)[j] = rl_f32_to_f16(x);
    else ((uint16_t *)c)[j] = rl_f32_to_bf16(x);
}

static inline __attribute__((always_inline)) void ukr(const int mr, int64_t kc, const float *restrict a,
                                                      const float *restrict b, int64_t ldb, void *c, int64_t ldc,
                                                      int nr, const gemm_epilogue_f32 *ep) {
    __m256 acc[MR][NV];
    const int64_t esz = ep->c_dtype == RLHF4J_F32 ? 4 : 2;
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) {
        _mm_prefetch((const char *)c + i * ldc * esz, _MM_HINT_T0);
        _mm_prefetch((const char *)c + i * ldc * esz + 32 * NV - 1, _MM_HINT_T0);
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) acc[i][v] = _mm256_setzero_ps();
    }
#pragma GCC unroll 4
    for (int64_t k = 0; k < kc; k++) {
        __m256 bv[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) bv[v] = _mm256_loadu_ps(b + 8 * v);
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) {
            __m256 av = _mm256_broadcast_ss(a + i);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) acc[i][v] = _mm256_fmadd_ps(av, bv[v], acc[i][v]);
        }
        a += MR;
        b += ldb;
    }

    const int dt = ep->c_dtype;
    const int use_beta = ep->first && ep->beta != 0.0f, use_c = !ep->first || use_beta;
    const void *bias = ep->first ? ep->bias : NULL;
    const float alpha = ep->alpha, cscale = use_beta ? ep->beta : 1.0f;
    if (nr == 8 * NV) {
        const __m256 alphav = _mm256_set1_ps(alpha), cscalev = _mm256_set1_ps(cscale);
        __m256 biasv[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            biasv[v] = bias ? load8((const char *)bias + 8 * v * esz, dt) : _mm256_setzero_ps();
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) {
            char *cr = (char *)c + i * ldc * esz;
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) {
                void *p = cr + 8 * v * esz;
                __m256 x = _mm256_fmadd_ps(alphav, acc[i][v], biasv[v]);
                if (use_c) x = _mm256_fmadd_ps(cscalev, load8(p, dt), x);
                store8(p, dt, x);
            }
        }
    } else {
        float t[8 * NV];
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) {
            char *cr = (char *)c + i * ldc * esz;
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) _mm256_storeu_ps(t + 8 * v, acc[i][v]);
            for (int j = 0; j < nr; j++) {
                float x = alpha * t[j] + (bias ? load1(bias, dt, j) : 0.0f);
                if (use_c) x += cscale * load1(cr, dt, j);
                store1(cr, dt, j, x);
            }
        }
    }
}

#define UKR_M(m)                                                                                                   \
    static void ukr_##m(int64_t kc, const float *a, const float *b, int64_t ldb, void *c, int64_t ldc, int nr,       \
                        const gemm_epilogue_f32 *ep) {                                                             \
        ukr(m, kc, a, b, ldb, c, ldc, nr, ep);                                                                     \
    }
UKR_M(1)
UKR_M(2)
UKR_M(3)
UKR_M(4)
UKR_M(5)
UKR_M(6)

void rlhf4j_sgemm_ukr_avx2(int64_t kc, const float *a, const float *b, int64_t ldb, void *c, int64_t ldc, int mr,
                           int nr, const gemm_epilogue_f32 *ep) {
    typedef void (*fn)(int64_t, const float *, const float *, int64_t, void *, int64_t, int, const gemm_epilogue_f32 *);
    static const fn by_rows[MR + 1] = {NULL, ukr_1, ukr_2, ukr_3, ukr_4, ukr_5, ukr_6};
    by_rows[mr](kc, a, b, ldb, c, ldc, nr, ep);
}

/* ---- packing (f32 sources; gemm_pack.inc explains the panel layout) ---------------------------------------------- */

/* 8 x 8 transpose in registers: r[i] = row i in, r[j] = column j out; 24 shuffles for 64 elements. */
static inline void transpose8(__m256 r[8]) {
    __m256 t[8], u[8];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
#pragma GCC unroll 2
    for (int i = 0; i < 2; i++) { /* u[4i + c], 128-bit lane L: column 4L + c of rows 4i..4i+3 */
        u[4 * i + 0] = _mm256_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0x44);
        u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0xEE);
        u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        r[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
        r[4 + c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
    }
}

/* Panel columns are source rows: 8 rows x 8 k are loaded, transposed, stored as 8 steps of (up to) 8 columns. */
void rlhf4j_sgemm_pack_tr_avx2(const float *src, int64_t ld, int64_t n, int64_t kc, int W, float *dst) {
    int64_t np = (n + W - 1) / W;
    for (int64_t p = 0; p < np; p++) {
        int64_t w = n - p * W < W ? n - p * W : W;
        float *d = dst + p * kc * W;
        const float *s = src + p * W * ld;
        for (int g = 0; g < W; g += 8) {
            const int cols = W - g < 8 ? W - g : 8;
            const int rows = w - g < 0 ? 0 : w - g > 8 ? 8 : (int)(w - g);
            int64_t k = 0;
            for (; k + 8 <= kc; k += 8) {
                __m256 r[8];
#pragma GCC unroll 8
                for (int i = 0; i < 8; i++)
                    r[i] = i < rows ? _mm256_loadu_ps(s + (g + i) * ld + k) : _mm256_setzero_ps();
                transpose8(r);
                if (cols == 8) {
#pragma GCC unroll 8
                    for (int i = 0; i < 8; i++) _mm256_storeu_ps(d + (k + i) * W + g, r[i]);
                } else if (cols == 6) { /* the A panels of the 6 x 16 kernel */
#pragma GCC unroll 8
                    for (int i = 0; i < 8; i++) {
                        float *o = d + (k + i) * W + g;
                        _mm_storeu_ps(o, _mm256_castps256_ps128(r[i]));
                        _mm_storel_pi((__m64 *)(o + 4), _mm256_extractf128_ps(r[i], 1));
                    }
                } else {
                    for (int i = 0; i < 8; i++) {
                        float t[8];
                        _mm256_storeu_ps(t, r[i]);
                        memcpy(d + (k + i) * W + g, t, (size_t)cols * sizeof(float));
                    }
                }
            }
            for (; k < kc; k++)
                for (int j = 0; j < cols; j++) d[k * W + g + j] = j < rows ? s[(g + j) * ld + k] : 0.0f;
        }
    }
}
