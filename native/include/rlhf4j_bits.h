/*
 * rlhf4j_bits.h: the bit-level functions both backends must compute identically, written once. Not part of the ABI
 * (nothing here is exported); native/cpu/internal.h and kernels/internal.cuh include it.
 *  - bf16 / f16 <-> f32 conversions (round to nearest even, NaN kept quiet, overflow to inf), so a BF16 tensor
 *    converted on one backend has the same bits as on the other;
 *  - Philox-4x32-10 (Salmon et al., SC'11, as in cuRAND and PyTorch), so rlhf4j_fill_random and dropout draw the same
 *    numbers on every backend (rlhf4j.h documents the streams).
 * In C it is plain `static inline`; compiled as CUDA (nvcc, or g++ under kernels/emu) the same source is
 * `__host__ __device__`.
 */
#ifndef RLHF4J_BITS_H
#define RLHF4J_BITS_H

#include <stdint.h>
#include <string.h>

#if defined(__CUDACC__) || defined(RLHF4J_EMU)
#define RLHF4J_HD __host__ __device__ __forceinline__
#else
#define RLHF4J_HD static inline
#endif

RLHF4J_HD uint32_t rl_f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

RLHF4J_HD float rl_bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

RLHF4J_HD float rl_bf16_to_f32(uint16_t h) { return rl_bits_f32((uint32_t)h << 16); }

/* Round to nearest even; NaN stays NaN (quiet). */
RLHF4J_HD uint16_t rl_f32_to_bf16(float f) {
    uint32_t u = rl_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

RLHF4J_HD float rl_f16_to_f32(uint16_t h) {
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
    return rl_bits_f32(u);
}

RLHF4J_HD uint16_t rl_f32_to_f16(float f) {
    uint32_t u = rl_f32_bits(f);
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

/* Philox-4x32-10: 4 uint32 from (counter, key); the high words of the products are mul.wide.u32 on the GPU. */
RLHF4J_HD void rl_philox4x32(uint64_t counter, uint64_t key, uint32_t out[4]) {
    uint32_t c0 = (uint32_t)counter, c1 = (uint32_t)(counter >> 32), c2 = 0, c3 = 0;
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
#if defined(__CUDACC__)
#pragma unroll
#endif
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

#endif
