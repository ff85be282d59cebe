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

/* Ops finish before they return, so an event has nothing to mark: it only checks its arguments. */
struct rlhf4j_event_s {
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

/* ---- bf16 / f16 conversions and Philox-4x32-10: one source with the CUDA backend (rlhf4j_bits.h) ---------- */

#include "rlhf4j_bits.h"

/* Uniform in [0, 1) with 24 random bits: element i of a stream uses word 0 of counter i. */
static inline float philox_uniform(uint64_t seed, uint64_t index) {
    uint32_t r[4];
    rl_philox4x32(index, seed, r);
    return (float)(r[0] >> 8) * (1.0f / 16777216.0f);
}

/* Uniform in [0, 1) with 53 random bits, from words 0-1. */
static inline double philox_uniform_double(uint64_t seed, uint64_t index) {
    uint32_t r[4];
    rl_philox4x32(index, seed, r);
    uint64_t bits = ((uint64_t)r[0] << 21) ^ ((uint64_t)r[1] >> 11);
    return (double)(bits & ((1ull << 53) - 1)) * (1.0 / 9007199254740992.0);
}

/* ---- dispatch ---------------------------------------------------------------------------------------------- */

typedef enum { ISA_GENERIC = 0, ISA_AVX2 = 1, ISA_AVX512 = 2 } rlhf4j_isa;

/* The instruction set the library dispatches to, chosen once from CPUID (RLHF4J_ISA=generic|avx2|avx512 lowers it). */
rlhf4j_isa rlhf4j_cpu_isa(void);

#endif
