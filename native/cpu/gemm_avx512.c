/*
 * gemm_avx512.c: the AVX-512 SGEMM micro-kernel, 14 x 32, and the packing of f32 panels with AVX-512 (gemm.c has
 * the blocking scheme around them).
 *
 * Registers: 28 zmm accumulators (14 rows x 2 vectors of 16 columns), 2 for the current k's row of the B panel and
 * 1 for the broadcast A element: 31 of 32. Each k step is 2 loads of B (aligned when packed), 14 broadcasts of A
 * and 28 FMAs; on Zen 4 (one 512-bit FMA per cycle, latency 4) 28 independent chains hide the latency 7 times
 * over, and the 16 loads per 28 FMAs leave the load ports half idle. Tiles with fewer than 14 rows run a kernel
 * compiled for their row count (the table in rlhf4j_sgemm_ukr_avx512), so an edge or a small M costs what it
 * computes; fewer than 32 columns only mask the epilogue (the B panel is zero-padded).
 * Traffic per k step: 128 bytes of B (L1/L2) and 56 of A (L2) for 28 x 16 FMAs; the C tile (1.75 KB) is read and
 * written once per kc steps.
 */
#include "gemm.h"

#include <immintrin.h>

#define MR GEMM_AVX512_MR
#define NV (GEMM_AVX512_NR / 16)

static inline __m512 load_c(const void *c, int dtype, __mmask16 m) {
    if (dtype == RLHF4J_F32) return _mm512_maskz_loadu_ps(m, c);
    __m256i h = _mm256_maskz_loadu_epi16(m, c);
    if (dtype == RLHF4J_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

static inline void store_c(void *c, int dtype, __mmask16 m, __m512 x) {
    if (dtype == RLHF4J_F32) {
        _mm512_mask_storeu_ps(c, m, x);
    } else if (dtype == RLHF4J_F16) {
        _mm256_mask_storeu_epi16(c, m, _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    } else { /* bf16, round to nearest even, NaN stays a quiet NaN (as rl_f32_to_bf16) */
        __m512i u = _mm512_castps_si512(x);
        __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff),
                                                         _mm512_and_si512(_mm512_srli_epi32(u, 16),
                                                                          _mm512_set1_epi32(1))));
        __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
        r = _mm512_mask_or_epi32(r, nan, u, _mm512_set1_epi32(0x400000));
        _mm256_mask_storeu_epi16(c, m, _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16)));
    }
}

static inline __attribute__((always_inline)) void ukr(const int mr, int64_t kc, const float *restrict a,
                                                      const float *restrict b, int64_t ldb, void *c, int64_t ldc,
                                                      int nr, const gemm_epilogue_f32 *ep) {
    __m512 acc[MR][NV];
    const int64_t esz = ep->c_dtype == RLHF4J_F32 ? 4 : 2;
    /* The C tile's lines are requested now and used after kc steps: its rows are ldc apart, often a multiple of
     * 4 KB, so every row maps to the same L1 set and would otherwise miss one after the other in the epilogue
     * (measured: 10% slower without). */
#pragma GCC unroll 16
    for (int i = 0; i < mr; i++) {
        _mm_prefetch((const char *)c + i * ldc * esz, _MM_HINT_T0);
        _mm_prefetch((const char *)c + i * ldc * esz + 64 * NV - 1, _MM_HINT_T0);
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) acc[i][v] = _mm512_setzero_ps();
    }
#pragma GCC unroll 4
    for (int64_t k = 0; k < kc; k++) {
        __m512 bv[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) bv[v] = _mm512_loadu_ps(b + 16 * v);
#pragma GCC unroll 16
        for (int i = 0; i < mr; i++) {
            __m512 av = _mm512_set1_ps(a[i]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) acc[i][v] = _mm512_fmadd_ps(av, bv[v], acc[i][v]);
        }
        a += MR;
        b += ldb;
    }

    __mmask16 mask[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) {
        int left = nr - 16 * v;
        mask[v] = left >= 16 ? (__mmask16)0xffff : left <= 0 ? (__mmask16)0 : (__mmask16)((1u << left) - 1);
    }
    const __m512 alpha = _mm512_set1_ps(ep->alpha), beta = _mm512_set1_ps(ep->beta);
    const int dt = ep->c_dtype;
    const int use_beta = ep->first && ep->beta != 0.0f, use_c = !ep->first || use_beta;
    const void *bias = ep->first ? ep->bias : NULL;
    __m512 biasv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++)
        biasv[v] = bias ? load_c((const char *)bias + 16 * v * esz, dt, mask[v]) : _mm512_setzero_ps();
#pragma GCC unroll 16
    for (int i = 0; i < mr; i++) {
        char *cr = (char *)c + i * ldc * esz;
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            if (!mask[v]) continue;
            void *p = cr + 16 * v * esz;
            __m512 x = _mm512_fmadd_ps(alpha, acc[i][v], biasv[v]);
            if (use_c) x = _mm512_fmadd_ps(use_beta ? beta : _mm512_set1_ps(1.0f), load_c(p, dt, mask[v]), x);
            store_c(p, dt, mask[v], x);
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
UKR_M(7)
UKR_M(8)
UKR_M(9)
UKR_M(10)
UKR_M(11)
UKR_M(12)
UKR_M(13)
UKR_M(14)

void rlhf4j_sgemm_ukr_avx512(int64_t kc, const float *a, const float *b, int64_t ldb, void *c, int64_t ldc, int mr,
                             int nr, const gemm_epilogue_f32 *ep) {
    typedef void (*fn)(int64_t, const float *, const float *, int64_t, void *, int64_t, int, const gemm_epilogue_f32 *);
    static const fn by_rows[MR + 1] = {NULL,  ukr_1,  ukr_2,  ukr_3,  ukr_4,  ukr_5,  ukr_6, ukr_7,
                                       ukr_8, ukr_9, ukr_10, ukr_11, ukr_12, ukr_13, ukr_14};
    by_rows[mr](kc, a, b, ldb, c, ldc, nr, ep);
}

/* ---- packing (f32 sources; gemm_pack.inc explains the panel layout) ---------------------------------------------- */

/* 16 x 16 transpose in registers: r[i] = row i in, r[j] = column j out; 64 shuffles for 256 elements. */
static inline void transpose16(__m512 r[16]) {
    __m512 t[16], u[16];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) { /* u[4i + c], 128-bit lane L: column 4L + c of rows 4i..4i+3 */
        u[4 * i + 0] = _mm512_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0x44);
        u[4 * i + 1] = _mm512_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0xEE);
        u[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        u[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        __m512 v0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88), v1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD);
        __m512 v2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
        __m512 v3 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
        r[c] = _mm512_shuffle_f32x4(v0, v2, 0x88);
        r[4 + c] = _mm512_shuffle_f32x4(v1, v3, 0x88);
        r[8 + c] = _mm512_shuffle_f32x4(v0, v2, 0xDD);
        r[12 + c] = _mm512_shuffle_f32x4(v1, v3, 0xDD);
    }
}

static inline __mmask16 lanes(int64_t n) {
    return n >= 16 ? (__mmask16)0xffff : n <= 0 ? 0 : (__mmask16)((1u << n) - 1);
}

/* Panel columns are source rows: 16 rows x 16 k are loaded, transposed, stored as 16 steps of (up to) 16 columns. */
void rlhf4j_sgemm_pack_tr_avx512(const float *src, int64_t ld, int64_t n, int64_t kc, int W, float *dst) {
    int64_t np = (n + W - 1) / W;
    for (int64_t p = 0; p < np; p++) {
        int64_t w = n - p * W < W ? n - p * W : W;
        float *d = dst + p * kc * W;
        const float *s = src + p * W * ld;
        for (int g = 0; g < W; g += 16) {
            const __mmask16 sm = lanes(W - g);
            const int rows = w - g < 0 ? 0 : w - g > 16 ? 16 : (int)(w - g);
            for (int64_t k = 0; k < kc; k += 16) {
                const int64_t kw = kc - k < 16 ? kc - k : 16;
                const __mmask16 lm = lanes(kw);
                __m512 r[16];
#pragma GCC unroll 16
                for (int i = 0; i < 16; i++)
                    r[i] = i < rows ? _mm512_maskz_loadu_ps(lm, s + (g + i) * ld + k) : _mm512_setzero_ps();
                transpose16(r);
                if (kw == 16) {
#pragma GCC unroll 16
                    for (int i = 0; i < 16; i++) _mm512_mask_storeu_ps(d + (k + i) * W + g, sm, r[i]);
                } else {
                    for (int i = 0; i < kw; i++) _mm512_mask_storeu_ps(d + (k + i) * W + g, sm, r[i]);
                }
            }
        }
    }
}

/* Panel rows are source row pieces: masked loads zero the columns past n, masked stores keep to the panel. Whole
 * 32-wide panels go one after the other (a panel row is two cache lines); narrower ones step k of every panel
 * before step k + 1, so each source line is read once. */
void rlhf4j_sgemm_pack_copy_avx512(const float *src, int64_t ld, int64_t kc, int64_t n, int W, float *dst) {
    if (W == 32) {
        for (int64_t p = 0; p < n / 32; p++) {
            const float *s = src + p * 32;
            float *d = dst + p * kc * 32;
            for (int64_t k = 0; k < kc; k++) {
                _mm512_store_ps(d + k * 32, _mm512_loadu_ps(s + k * ld));
                _mm512_store_ps(d + k * 32 + 16, _mm512_loadu_ps(s + k * ld + 16));
            }
        }
        if (n % 32 == 0) return;
        src += n / 32 * 32;
        dst += n / 32 * kc * 32;
        n %= 32;
    }
    const int64_t np2 = (n + W - 1) / W;
    for (int64_t k = 0; k < kc; k++) {
        const float *s = src + k * ld;
        for (int64_t p = 0; p < np2; p++) {
            const int64_t w = n - p * W < W ? n - p * W : W;
            float *d = dst + (p * kc + k) * W;
            for (int g = 0; g < W; g += 16)
                _mm512_mask_storeu_ps(d + g, lanes(W - g), _mm512_maskz_loadu_ps(lanes(w - g), s + p * W + g));
        }
    }
}
