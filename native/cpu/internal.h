/*
 * internal.h: what every file of the CPU backend shares: the device and stream structs, argument checks that
 * produce rlhf4j_last_error() messages, dtype helpers (bf16/f16 conversion), Philox, and the OpenMP thread count.
 */
#ifndef RLHF4J_CPU_INTERNAL_H
#define RLHF4J_CPU_INTERNAL_H

#include "rlhf4j.h"

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct rlhf4j_device_s {
    int32_t ordinal;
    int32_t num_threads;                   /* OpenMP threads every op on this device uses */
    int64_t in_use;                        /* bytes from rlhf4j_malloc not yet freed (atomic) */
    int64_t peak;
};

struct rlhf4j_stream_s {
    struct rlhf4j_device_s *dev;
};

/* ---- errors ---------------------------------------------------------------------------------------------- */

/* Formats the thread's last error message and returns code, so a check reads `return fail(...)`. */
int32_t rlhf4j_fail(int32_t code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define FAIL_ARG(...) rlhf4j_fail(RLHF4J_ERR_INVALID_ARGUMENT, __VA_ARGS__)
#define FAIL_UNSUPPORTED(...) rlhf4j_fail(RLHF4J_ERR_UNSUPPORTED, __VA_ARGS__)

/* Argument checks at the top of an entry point; `fn` is the entry point's name for the message. */
#define CHECK_ARG(cond, ...)                                                                                       \
    do {                                                                                                           \
        if (!(cond)) return FAIL_ARG(__VA_ARGS__);                                                                  \
    } while (0)
#define CHECK_STREAM(fn, s) CHECK_ARG((s) != NULL && (s)->dev != NULL, "%s: stream is NULL", fn)
#define CHECK_PTR(fn, p) CHECK_ARG((p) != NULL, "%s: %s is NULL", fn, #p)
#define CHECK_NONNEG(fn, v) CHECK_ARG((v) >= 0, "%s: %s = %lld must be >= 0", fn, #v, (long long)(v))
#define CHECK_POS(fn, v) CHECK_ARG((v) > 0, "%s: %s = %lld must be > 0", fn, #v, (long long)(v))

/* Fails unless dtype is F32 or F64, the two the CPU backend computes in. */
int32_t rlhf4j_check_float_dtype(const char *fn, int32_t dtype);
#define CHECK_COMPUTE_DTYPE(fn, dtype)                                                                             \
    do {                                                                                                           \
        int32_t st_ = rlhf4j_check_float_dtype(fn, dtype);                                                         \
        if (st_ != RLHF4J_OK) return st_;                                                                          \
    } while (0)

const char *rlhf4j_dtype_name(int32_t dtype);
/* Bytes per element, or 0 for an unknown dtype. */
int64_t rlhf4j_dtype_size(int32_t dtype);

/* ---- threads --------------------------------------------------------------------------------------------- */

/* Threads for a parallel region over `work` elements (or similar units): 1 when the region would cost more to
 * start than it saves (an OpenMP fork/join is a few microseconds), else the device's thread count. */
static inline int nthreads(const struct rlhf4j_stream_s *s, int64_t work) {
    int t = s->dev->num_threads;
    return work < 32768 ? 1 : t;
}

/* Compiled for AVX-512 (x86-64-v4), AVX2+FMA (x86-64-v3) and baseline x86-64, picked once at load by the dynamic
 * linker (ifunc). Put it on the serial worker of a hot loop (a row, a tile), not on a function that holds an OpenMP
 * region: GCC outlines the region's body into a function that does not inherit the clone's target. */
#define RLHF4J_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

/* ---- bf16 / f16 ------------------------------------------------------------------------------------------ */

static inline float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Round to nearest even; NaN stays NaN (quiet). */
static inline uint16_t f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t u;
    if (exp == 0) {
        if (mant == 0) {
            u = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                mant <<= 1;
            } while ((mant & 0x400) == 0);
            u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mant & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (mant << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint16_t f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000;
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00);  /* NaN */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* overflow (rounds to >= 65520) -> inf */
    if (a < 0x38800000u) {                                  /* below the smallest normal half: subnormal or 0 */
        if (a < 0x33000000u) return (uint16_t)sign;          /* < 2^-25 rounds to zero */
        uint32_t e = a >> 23;
        uint32_t m = (a & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e; /* value = m * 2^(e - 150) = half * 2^-24 */
        uint32_t half = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t r = a + 0xfffu + ((a >> 13) & 1u) - (112u << 23);
    return (uint16_t)(sign | (r >> 13));
}

/* ---- Philox-4x32-10 ---------------------------------------------------------------------------------------- */

/* The counter-based generator of Salmon et al. (SC'11), as in cuRAND and PyTorch: 4 uint32 from (counter, key).
 * The CUDA backend uses the same function, so random numbers agree across backends. */
static inline void philox4x32(uint64_t counter, uint64_t key, uint32_t out[4]) {
    uint32_t c0 = (uint32_t)counter, c1 = (uint32_t)(counter >> 32), c2 = 0, c3 = 0;
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0;
        uint64_t p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1;
        c3 = (uint32_t)p0;
        c0 = n0;
        c2 = n2;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

/* Uniform in [0, 1) with 24 random bits: element i of a stream uses word 0 of counter i. */
static inline float philox_uniform(uint64_t seed, uint64_t index) {
    uint32_t r[4];
    philox4x32(index, seed, r);
    return (float)(r[0] >> 8) * (1.0f / 16777216.0f);
}

/* Uniform in [0, 1) with 53 random bits, from words 0-1. */
static inline double philox_uniform_double(uint64_t seed, uint64_t index) {
    uint32_t r[4];
    philox4x32(index, seed, r);
    uint64_t bits = ((uint64_t)r[0] << 21) ^ ((uint64_t)r[1] >> 11);
    return (double)(bits & ((1ull << 53) - 1)) * (1.0 / 9007199254740992.0);
}

/* ---- dispatch ---------------------------------------------------------------------------------------------- */

typedef enum { ISA_GENERIC = 0, ISA_AVX2 = 1, ISA_AVX512 = 2 } rlhf4j_isa;

/* The instruction set the library dispatches to, chosen once from CPUID (RLHF4J_ISA=generic|avx2|avx512 lowers it). */
rlhf4j_isa rlhf4j_cpu_isa(void);

#endif
