/*
 * random.c: fill, counter-based random fill (Philox-4x32-10) and inverted dropout.
 *
 * Every random number is a pure function of (seed, offset + i): element i draws from Philox counter offset + i
 * under key seed (rlhf4j_bits.h: rl_philox4x32). Nothing depends on the thread count, on how a buffer is split into
 * calls, or on the backend, and dropout regenerates its mask in backward instead of storing it.
 *
 * Which words of the counter each use reads (the CUDA backend must read the same ones):
 *   UNIFORM, F32/BF16/F16: u = philox_uniform         = (w0 >> 8) * 2^-24                    in [0, 1)
 *   UNIFORM, F64:          u = philox_uniform_double  = ((w0 << 21) ^ (w1 >> 11)) mod 2^53 * 2^-53
 *   NORMAL,  F32/BF16/F16: u1 = ((w0 >> 8) + 1) * 2^-24 in (0, 1], u2 = (w1 >> 8) * 2^-24, in float math
 *   NORMAL,  F64:          u1 = (53 bits of w0,w1 as above + 1) * 2^-53, u2 = the same from w2,w3, in double
 *                          z = sqrt(-2 ln u1) cos(2 pi u2) (Box-Muller, the cosine half; u1 > 0 so no log(0))
 *   dropout:               keep iff (w0 >> 8) >= ceil(p * 2^24), which is exactly philox_uniform(seed, i) >= p
 *                          (u is a multiple of 2^-24), compared in integers so it vectorises.
 * UNIFORM values are computed as a + (b - a) u in double and rounded to the dtype (through f32 for BF16/F16), as
 * torch's CPU uniform_. Rounding can reach b (in BF16 for 1 value in 2^9 of U[0, 1)); such a value becomes the
 * largest value of the dtype below b, so results stay in [a, b) with a bias of under half an ulp of b on a fraction
 * of about an ulp of the draws. (torch's CUDA uniform_ maps it to a instead, which shifts a BF16 mean by 1.5%.)
 * a == b gives a.
 *
 * Memory traffic: fill writes 1 element per element; fill_random writes 1 (compute-bound: ~30 integer ops per
 * Philox counter); dropout reads x and writes y (backward: reads dy, writes or read-modify-writes dx).
 * Philox runs over blocks of PHILOX_BLOCK counters held in arrays, so the ten rounds vectorise across counters
 * (32x32->64-bit multiplies are vpmuludq).
 */
#include "internal.h"

#include <omp.h>

#define PHILOX_BLOCK 64
#define CHUNK 16384 /* elements per parallel work unit; a multiple of PHILOX_BLOCK */

/* Philox-4x32-10 for counters base .. base + PHILOX_BLOCK - 1 (key = seed); the same rounds as internal.h's
 * rl_philox4x32, laid out so the compiler runs them across counters in SIMD lanes. Writes the words asked for
 * (w2/w3 may be NULL). */
static inline void philox_block(uint64_t base, uint64_t key, uint32_t *restrict w0, uint32_t *restrict w1,
                                uint32_t *restrict w2, uint32_t *restrict w3) {
    uint32_t c0[PHILOX_BLOCK], c1[PHILOX_BLOCK], c2[PHILOX_BLOCK], c3[PHILOX_BLOCK];
    for (int l = 0; l < PHILOX_BLOCK; l++) {
        uint64_t c = base + (uint64_t)l;
        c0[l] = (uint32_t)c;
        c1[l] = (uint32_t)(c >> 32);
        c2[l] = 0;
        c3[l] = 0;
    }
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int r = 0; r < 10; r++) {
        for (int l = 0; l < PHILOX_BLOCK; l++) {
            uint64_t p0 = (uint64_t)0xD2511F53u * c0[l];
            uint64_t p1 = (uint64_t)0xCD9E8D57u * c2[l];
            uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1[l] ^ k0;
            uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3[l] ^ k1;
            c1[l] = (uint32_t)p1;
            c3[l] = (uint32_t)p0;
            c0[l] = n0;
            c2[l] = n2;
        }
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    for (int l = 0; l < PHILOX_BLOCK; l++) {
        w0[l] = c0[l];
        w1[l] = c1[l];
    }
    if (w2 != NULL)
        for (int l = 0; l < PHILOX_BLOCK; l++) w2[l] = c2[l];
    if (w3 != NULL)
        for (int l = 0; l < PHILOX_BLOCK; l++) w3[l] = c3[l];
}

static inline uint64_t bits53(uint32_t hi, uint32_t lo) {
    return (((uint64_t)hi << 21) ^ ((uint64_t)lo >> 11)) & ((1ull << 53) - 1);
}

/* ---- fill -------------------------------------------------------------------------------------------------- */

RLHF4J_MULTIVERSION
static void fill_chunk(int64_t esize, void *x, int64_t i0, int64_t i1, uint64_t bits) {
    switch (esize) {
    case 2: {
        uint16_t *restrict p = (uint16_t *)x, v = (uint16_t)bits;
        for (int64_t i = i0; i < i1; i++) p[i] = v;
        break;
    }
    case 4: {
        uint32_t *restrict p = (uint32_t *)x, v = (uint32_t)bits;
        for (int64_t i = i0; i < i1; i++) p[i] = v;
        break;
    }
    default: {
        uint64_t *restrict p = (uint64_t *)x;
        for (int64_t i = i0; i < i1; i++) p[i] = bits;
        break;
    }
    }
}

RLHF4J_API int32_t rlhf4j_fill(rlhf4j_stream s, int32_t dtype, int64_t n, void *x, double value) {
    static const char *fn = "rlhf4j_fill";
    CHECK_STREAM(fn, s);
    CHECK_NONNEG(fn, n);
    int64_t esize = rlhf4j_dtype_size(dtype);
    CHECK_ARG(esize > 0, "%s: unknown dtype %d", fn, dtype);
    if (n == 0) return RLHF4J_OK;
    CHECK_PTR(fn, x);
    uint64_t bits = 0;
    switch (dtype) {
    case RLHF4J_F32: {
        float f = (float)value;
        uint32_t u;
        memcpy(&u, &f, 4);
        bits = u;
        break;
    }
    case RLHF4J_F64: memcpy(&bits, &value, 8); break;
    case RLHF4J_BF16: bits = rl_f32_to_bf16((float)value); break;
    case RLHF4J_F16: bits = rl_f32_to_f16((float)value); break;
    case RLHF4J_I32:
        CHECK_ARG(value > -2147483649.0 && value < 2147483648.0,
                  "%s: value = %g does not fit in i32 (NaN or out of range)", fn, value);
        bits = (uint32_t)(int32_t)value; /* truncates toward zero, as rlhf4j_convert */
        break;
    }
    int64_t chunks = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for num_threads(nthreads(s, n)) schedule(static)
    for (int64_t c = 0; c < chunks; c++) {
        int64_t i1 = (c + 1) * CHUNK < n ? (c + 1) * CHUNK : n;
        fill_chunk(esize, x, c * CHUNK, i1, bits);
    }
    return RLHF4J_OK;
}

/* ---- fill_random ------------------------------------------------------------------------------------------- */

/* The largest value below b in each dtype, which replaces a uniform draw that rounded up to b. */
typedef struct {
    double f64;
    float f32;
    uint16_t bf16, f16;
} below_b;

static uint16_t half_step_down(uint16_t h) { /* next representable value toward -inf, for finite bf16/f16 bits */
    if (h == 0x0000) return 0x8001;
    return (h & 0x8000) ? (uint16_t)(h + 1) : (uint16_t)(h - 1);
}

static below_b make_below_b(double a, double b) {
    below_b t;
    if (a == b) { /* degenerate range: every draw is a */
        t.f64 = a;
        t.f32 = (float)a;
        t.bf16 = rl_f32_to_bf16((float)a);
        t.f16 = rl_f32_to_f16((float)a);
        return t;
    }
    t.f64 = nextafter(b, -INFINITY);
    float bf = (float)b;
    t.f32 = (double)bf < b ? bf : nextafterf(bf, -INFINITY);
    uint16_t h = rl_f32_to_bf16(bf);
    t.bf16 = (double)rl_bf16_to_f32(h) < b ? h : half_step_down(h);
    h = rl_f32_to_f16(bf);
    t.f16 = (double)rl_f16_to_f32(h) < b ? h : half_step_down(h);
    return t;
}

/* Elements [i0, i1) of the stream, i0 a multiple of PHILOX_BLOCK. */
RLHF4J_MULTIVERSION
static void random_chunk(int32_t dtype, int32_t kind, void *x, int64_t i0, int64_t i1, double a, double b,
                         const below_b *top, uint64_t seed, uint64_t offset) {
    uint32_t w0[PHILOX_BLOCK], w1[PHILOX_BLOCK], w2[PHILOX_BLOCK], w3[PHILOX_BLOCK];
    float vf[PHILOX_BLOCK];
    double vd[PHILOX_BLOCK];
    const double range = b - a;
    const int uniform = kind == RLHF4J_RANDOM_UNIFORM;
    for (int64_t i = i0; i < i1; i += PHILOX_BLOCK) {
        int m = i1 - i < PHILOX_BLOCK ? (int)(i1 - i) : PHILOX_BLOCK;
        int wide = dtype == RLHF4J_F64;
        philox_block(offset + (uint64_t)i, seed, w0, w1, wide && !uniform ? w2 : NULL, wide && !uniform ? w3 : NULL);
        if (wide) {
            if (uniform) {
                for (int l = 0; l < PHILOX_BLOCK; l++) {
                    double v = a + range * ((double)bits53(w0[l], w1[l]) * (1.0 / 9007199254740992.0));
                    vd[l] = v >= b ? top->f64 : v;
                }
            } else {
                for (int l = 0; l < m; l++) {
                    double u1 = ((double)bits53(w0[l], w1[l]) + 1.0) * (1.0 / 9007199254740992.0);
                    double u2 = (double)bits53(w2[l], w3[l]) * (1.0 / 9007199254740992.0);
                    vd[l] = a + b * (sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
                }
            }
            memcpy((double *)x + i, vd, (size_t)m * sizeof(double));
            continue;
        }
        if (uniform) {
            for (int l = 0; l < PHILOX_BLOCK; l++)
                vf[l] = (float)(a + range * ((double)(w0[l] >> 8) * (1.0 / 16777216.0)));
        } else {
            for (int l = 0; l < m; l++) {
                float u1 = ((float)(w0[l] >> 8) + 1.0f) * (1.0f / 16777216.0f);
                float u2 = (float)(w1[l] >> 8) * (1.0f / 16777216.0f);
                vf[l] = (float)(a + b * (double)(sqrtf(-2.0f * logf(u1)) * cosf(6.28318530717958648f * u2)));
            }
        }
        switch (dtype) {
        case RLHF4J_F32: {
            float *restrict p = (float *)x + i;
            if (uniform)
                for (int l = 0; l < m; l++) p[l] = (double)vf[l] >= b ? top->f32 : vf[l];
            else
                memcpy(p, vf, (size_t)m * sizeof(float));
            break;
        }
        case RLHF4J_BF16: {
            uint16_t *restrict p = (uint16_t *)x + i;
            for (int l = 0; l < m; l++) {
                uint16_t h = rl_f32_to_bf16(vf[l]);
                p[l] = uniform && (double)rl_bf16_to_f32(h) >= b ? top->bf16 : h;
            }
            break;
        }
        default: { /* F16 */
            uint16_t *restrict p = (uint16_t *)x + i;
            for (int l = 0; l < m; l++) {
                uint16_t h = rl_f32_to_f16(vf[l]);
                p[l] = uniform && (double)rl_f16_to_f32(h) >= b ? top->f16 : h;
            }
            break;
        }
        }
    }
}

RLHF4J_API int32_t rlhf4j_fill_random(rlhf4j_stream s, int32_t dtype, int64_t n, void *x, int32_t kind, double a,
                                      double b, uint64_t seed, uint64_t offset) {
    static const char *fn = "rlhf4j_fill_random";
    CHECK_STREAM(fn, s);
    CHECK_NONNEG(fn, n);
    CHECK_ARG(kind == RLHF4J_RANDOM_UNIFORM || kind == RLHF4J_RANDOM_NORMAL,
              "%s: kind = %d is not RLHF4J_RANDOM_UNIFORM (0) or RLHF4J_RANDOM_NORMAL (1)", fn, kind);
    CHECK_ARG(rlhf4j_dtype_size(dtype) > 0, "%s: unknown dtype %d", fn, dtype);
    if (dtype == RLHF4J_I32)
        return FAIL_UNSUPPORTED("%s: dtype i32 is not supported (random fills are floating point)", fn);
    CHECK_ARG(isfinite(a) && isfinite(b), "%s: a = %g and b = %g must be finite", fn, a, b);
    if (kind == RLHF4J_RANDOM_UNIFORM)
        CHECK_ARG(a <= b, "%s: uniform bounds a = %g > b = %g", fn, a, b);
    else
        CHECK_ARG(b >= 0, "%s: normal standard deviation b = %g must be >= 0", fn, b);
    if (n == 0) return RLHF4J_OK;
    CHECK_PTR(fn, x);
    below_b top = make_below_b(a, b);
    int64_t chunks = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for num_threads(nthreads(s, n * 8)) schedule(static)
    for (int64_t c = 0; c < chunks; c++) {
        int64_t i1 = (c + 1) * CHUNK < n ? (c + 1) * CHUNK : n;
        random_chunk(dtype, kind, x, c * CHUNK, i1, a, b, &top, seed, offset);
    }
    return RLHF4J_OK;
}

/* ---- dropout ----------------------------------------------------------------------------------------------- */

/* out[i] = in[i] * (keep_i ? scale : 0) (accumulate: out[i] += ...), over [i0, i1), i0 a multiple of PHILOX_BLOCK.
 * Multiplying by 0 rather than writing 0 lets a NaN through, as torch's input * mask * scale does. */
#define DROPOUT_CHUNK(NAME, real)                                                                                  \
    RLHF4J_MULTIVERSION                                                                                            \
    static void NAME(const real *in, real *out, int64_t i0, int64_t i1, uint32_t threshold, real scale,            \
                     uint64_t seed, uint64_t offset, int accumulate) {                                             \
        uint32_t w0[PHILOX_BLOCK], w1[PHILOX_BLOCK];                                                               \
        real f[PHILOX_BLOCK];                                                                                      \
        for (int64_t i = i0; i < i1; i += PHILOX_BLOCK) {                                                          \
            int m = i1 - i < PHILOX_BLOCK ? (int)(i1 - i) : PHILOX_BLOCK;                                          \
            philox_block(offset + (uint64_t)i, seed, w0, w1, NULL, NULL);                                          \
            for (int l = 0; l < PHILOX_BLOCK; l++) f[l] = (w0[l] >> 8) >= threshold ? scale : (real)0;             \
            const real *restrict src = in + i;                                                                     \
            real *restrict dst = out + i;                                                                          \
            if (accumulate)                                                                                        \
                for (int l = 0; l < m; l++) dst[l] += src[l] * f[l];                                               \
            else                                                                                                   \
                for (int l = 0; l < m; l++) dst[l] = src[l] * f[l];                                                \
        }                                                                                                          \
    }
DROPOUT_CHUNK(dropout_chunk_f32, float)
DROPOUT_CHUNK(dropout_chunk_f64, double)

/* p == 0: out (+)= in. memmove, not memcpy: in may equal out. */
#define COPY_CHUNK(NAME, real)                                                                                     \
    RLHF4J_MULTIVERSION                                                                                            \
    static void NAME(const real *in, real *out, int64_t i0, int64_t i1, int accumulate) {                          \
        if (!accumulate) {                                                                                         \
            if (in != out) memmove(out + i0, in + i0, (size_t)(i1 - i0) * sizeof(real));                           \
            return;                                                                                                \
        }                                                                                                          \
        for (int64_t i = i0; i < i1; i++) out[i] += in[i];                                                         \
    }
COPY_CHUNK(copy_chunk_f32, float)
COPY_CHUNK(copy_chunk_f64, double)

/* In place (in == out) is allowed: each element is read before it is written, by the same thread. */
static int32_t dropout(const char *fn, int forward, rlhf4j_stream s, int32_t dtype, int64_t n, const void *in,
                       void *out, double p, uint64_t seed, uint64_t offset, int accumulate) {
    CHECK_STREAM(fn, s);
    CHECK_COMPUTE_DTYPE(fn, dtype);
    CHECK_NONNEG(fn, n);
    CHECK_ARG(p != 1.0, "%s: p = 1 drops every element (the scale 1/(1-p) is infinite); p must be in [0, 1)", fn);
    CHECK_ARG(p >= 0.0 && p < 1.0, "%s: p = %g must be in [0, 1)", fn, p);
    if (n == 0) return RLHF4J_OK;
    if (!forward && out == NULL) return RLHF4J_OK; /* no gradient wanted */
    CHECK_ARG(in != NULL, "%s: %s is NULL", fn, forward ? "x" : "dy");
    CHECK_ARG(out != NULL, "%s: %s is NULL", fn, forward ? "y" : "dx");
    /* keep iff u >= p with u = k / 2^24  <=>  k >= p 2^24  <=>  k >= ceil(p 2^24); p 2^24 is exact in double.
     * p == 0 keeps everything with scale 1: threshold 0 makes it an exact copy, but skip Philox altogether. */
    uint32_t threshold = (uint32_t)ceil(p * 16777216.0);
    double scale = 1.0 / (1.0 - p);
    int64_t chunks = (n + CHUNK - 1) / CHUNK;
    int nt = nthreads(s, p == 0.0 ? n : n * 8);
    if (dtype == RLHF4J_F32) {
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int64_t c = 0; c < chunks; c++) {
            int64_t i1 = (c + 1) * CHUNK < n ? (c + 1) * CHUNK : n;
            if (p == 0.0)
                copy_chunk_f32(in, out, c * CHUNK, i1, accumulate);
            else
                dropout_chunk_f32(in, out, c * CHUNK, i1, threshold, (float)scale, seed, offset, accumulate);
        }
    } else {
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int64_t c = 0; c < chunks; c++) {
            int64_t i1 = (c + 1) * CHUNK < n ? (c + 1) * CHUNK : n;
            if (p == 0.0)
                copy_chunk_f64(in, out, c * CHUNK, i1, accumulate);
            else
                dropout_chunk_f64(in, out, c * CHUNK, i1, threshold, scale, seed, offset, accumulate);
        }
    }
    return RLHF4J_OK;
}

RLHF4J_API int32_t rlhf4j_dropout_forward(rlhf4j_stream s, int32_t dtype, int64_t n, const void *x, void *y, double p,
                                          uint64_t seed, uint64_t offset) {
    return dropout("rlhf4j_dropout_forward", 1, s, dtype, n, x, y, p, seed, offset, 0);
}

RLHF4J_API int32_t rlhf4j_dropout_backward(rlhf4j_stream s, int32_t dtype, int64_t n, const void *dy, void *dx,
                                           double p, uint64_t seed, uint64_t offset, int32_t accumulate) {
    return dropout("rlhf4j_dropout_backward", 0, s, dtype, n, dy, dx, p, seed, offset, accumulate != 0);
}
