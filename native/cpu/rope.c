/*
 * rope.c: rotary position embedding in the rotate-half layout of transformers' Llama / Qwen2
 * (apply_rotary_pos_emb with rotate_half), on the first rotary_dim dimensions of every head (partial rotary, as
 * GPT-NeoX / Phi apply it: the rest of the head passes through).
 *
 * The angle is (stat)position * inv_freq[i] and cos / sin are taken in the stat dtype, exactly as transformers
 * forms them in fp32 (an outer product of float positions and inv_freq, then .cos() / .sin()), so the f32 path
 * matches HF's to an ulp or so. inv_freq comes from the caller with any rope scaling folded in; an attention
 * scaling factor on cos / sin (YaRN, LongRoPE) is not part of this op.
 *
 * cos / sin are computed once per token and shared by its H heads (libm, rotary_dim per token, small next to the
 * H * rotary_dim multiply-adds). Traffic per element: read x, write y; nothing else of size [B, T, H, D]. x rows
 * (tokens) are x_row_stride apart so q and k are read straight out of a fused qkv projection; y is
 * contiguous. Backward applies the transpose, R(-angle), to dy.
 */
#include "internal.h"

#define ROPE_CHUNK 64

#define real float
#define FN(name) name##_f32
#define COS cosf
#define SIN sinf
#include "rope.inc"
#undef real
#undef FN
#undef COS
#undef SIN

#define real double
#define FN(name) name##_f64
#define COS cos
#define SIN sin
#include "rope.inc"
#undef real
#undef FN
#undef COS
#undef SIN

/* Checks shared by forward and backward: the strided tensor (x or dx) is named by its stride argument. */
static int32_t check_rope(const char *fn, rlhf4j_stream s, int32_t dtype, int32_t B, int32_t T, int32_t H,
                          int32_t D, int32_t rotary_dim, int64_t row_stride, const char *stride_name,
                          const int32_t *positions, const void *inv_freq) {
    CHECK_STREAM(fn, s);
    CHECK_COMPUTE_DTYPE(fn, dtype);
    CHECK_NONNEG(fn, B);
    CHECK_NONNEG(fn, T);
    CHECK_POS(fn, H);
    CHECK_POS(fn, D);
    CHECK_ARG(rotary_dim > 0 && rotary_dim <= D && rotary_dim % 2 == 0,
              "%s: rotary_dim = %d must be even and in [2, D = %d]", fn, rotary_dim, D);
    CHECK_ARG(row_stride >= (int64_t)H * D, "%s: %s = %lld must be >= H * D = %lld", fn, stride_name,
              (long long)row_stride, (long long)H * D);
    CHECK_PTR(fn, positions);
    CHECK_PTR(fn, inv_freq);
    return RLHF4J_OK;
}

RLHF4J_API int32_t rlhf4j_rope_forward(rlhf4j_stream s, int32_t dtype, int32_t B, int32_t T, int32_t H, int32_t D,
                                       int32_t rotary_dim, const void *x, int64_t x_row_stride,
                                       const int32_t *positions, const void *inv_freq, void *y) {
    static const char *fn = "rlhf4j_rope_forward";
    int32_t st = check_rope(fn, s, dtype, B, T, H, D, rotary_dim, x_row_stride, "x_row_stride", positions, inv_freq);
    if (st != RLHF4J_OK) return st;
    CHECK_PTR(fn, x);
    CHECK_PTR(fn, y);
    const int64_t rows = (int64_t)B * T, hd = (int64_t)H * D;
    const int nt = nthreads(s, rows * hd);
    if (dtype == RLHF4J_F32)
        rope_f32(nt, rows, H, D, rotary_dim, x, x_row_stride, positions, inv_freq, y, hd, 1, 0);
    else
        rope_f64(nt, rows, H, D, rotary_dim, x, x_row_stride, positions, inv_freq, y, hd, 1, 0);
    return RLHF4J_OK;
}

RLHF4J_API int32_t rlhf4j_rope_backward(rlhf4j_stream s, int32_t dtype, int32_t B, int32_t T, int32_t H, int32_t D,
                                        int32_t rotary_dim, const void *dy, const int32_t *positions,
                                        const void *inv_freq, void *dx, int64_t dx_row_stride, int32_t accumulate) {
    static const char *fn = "rlhf4j_rope_backward";
    int32_t st =
        check_rope(fn, s, dtype, B, T, H, D, rotary_dim, dx_row_stride, "dx_row_stride", positions, inv_freq);
    if (st != RLHF4J_OK) return st;
    CHECK_PTR(fn, dy);
    if (dx == NULL) return RLHF4J_OK; /* no gradient wanted */
    const int64_t rows = (int64_t)B * T, hd = (int64_t)H * D;
    const int nt = nthreads(s, rows * hd);
    if (dtype == RLHF4J_F32)
        rope_f32(nt, rows, H, D, rotary_dim, dy, hd, positions, inv_freq, dx, dx_row_stride, -1, accumulate != 0);
    else
        rope_f64(nt, rows, H, D, rotary_dim, dy, hd, positions, inv_freq, dx, dx_row_stride, -1, accumulate != 0);
    return RLHF4J_OK;
}
