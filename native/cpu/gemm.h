/*
 * gemm.h: what gemm.c (the driver) shares with the micro-kernels in gemm_avx512.c and gemm_avx2.c, which are
 * compiled with those instruction sets and called only when rlhf4j_cpu_isa() says the CPU has them.
 *
 * A micro-kernel computes one MR x NR tile of C from two panels (gemm.c explains the packing):
 *   a: kc steps of MR floats (op(A) rows i0..i0+MR, one k after the other), 64-byte aligned;
 *   b: kc steps of NR floats (op(B) columns j0..j0+NR) ldb floats apart: a packed micro-panel (ldb = NR, zero-padded
 *      past N, 64-byte aligned), or B itself read in place (ldb = B's leading dimension, whole NR columns only);
 * and writes the tile through the epilogue below; only the leading mr x nr part of the tile exists in C.
 */
#ifndef RLHF4J_CPU_GEMM_H
#define RLHF4J_CPU_GEMM_H

#include "internal.h"

/* What a micro-kernel does with its accumulators acc (= op(A) op(B) over this K block):
 *   first K block: C = alpha * acc + beta * C + bias   (beta == 0: C's old value is not read, NaN or not)
 *   later blocks:  C = C + alpha * acc                  (only for F32 C; BF16/F16 C is computed in one K block)
 * C has c_dtype (F32, BF16 or F16; rounded to nearest even on store), bias too (NULL = none), both already offset
 * to the tile's first element. */
typedef struct {
    float alpha;
    float beta;
    int32_t first;
    int32_t c_dtype;
    const void *bias;
} gemm_epilogue_f32;

typedef void (*gemm_ukr_f32)(int64_t kc, const float *a, const float *b, int64_t ldb, void *c, int64_t ldc, int mr,
                             int nr, const gemm_epilogue_f32 *ep);

/* AVX-512: 14 rows x 32 columns (2 zmm per row, 28 accumulators). */
#define GEMM_AVX512_MR 14
#define GEMM_AVX512_NR 32
void rlhf4j_sgemm_ukr_avx512(int64_t kc, const float *a, const float *b, int64_t ldb, void *c, int64_t ldc, int mr,
                             int nr, const gemm_epilogue_f32 *ep);
/* Packing of f32 sources with AVX-512 (any W <= 32), the same layout as gemm_pack.inc's. */
void rlhf4j_sgemm_pack_tr_avx512(const float *src, int64_t ld, int64_t n, int64_t kc, int W, float *dst);
void rlhf4j_sgemm_pack_copy_avx512(const float *src, int64_t ld, int64_t kc, int64_t n, int W, float *dst);

/* AVX2 + FMA: 6 rows x 16 columns (2 ymm per row, 12 accumulators of the 16 ymm registers). */
#define GEMM_AVX2_MR 6
#define GEMM_AVX2_NR 16
void rlhf4j_sgemm_ukr_avx2(int64_t kc, const float *a, const float *b, int64_t ldb, void *c, int64_t ldc, int mr,
                           int nr, const gemm_epilogue_f32 *ep);
/* The transposing pack of f32 sources with AVX (any W <= 16). */
void rlhf4j_sgemm_pack_tr_avx2(const float *src, int64_t ld, int64_t n, int64_t kc, int W, float *dst);

#endif
