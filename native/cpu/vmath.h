/*
 * vmath.h: float math that GCC vectorises (libm's expf does not without -ffast-math), shared by the kernels whose
 * inner loops are dominated by it: softmax, token logprobs and attention. elementwise.c keeps its own exp, which also
 * returns subnormal results (it backs the user-visible exp op); here results below e^-87 flush to zero, which
 * probabilities can afford.
 */
#ifndef RLHF4J_CPU_VMATH_H
#define RLHF4J_CPU_VMATH_H

#include <stdint.h>
#include <string.h>

/* exp(x) for float: n = round(x / ln2), r = x - n ln2 (Cody-Waite), exp(r) by Cephes' degree-6 polynomial, and
 * n added to the exponent bits; <= 1.5 ulp. Results below e^-87 (x < -87, -inf included) flush to 0, x > 127.5 ln2
 * (= 88.376) gives inf, NaN stays NaN. The special cases are bit masks, not selects: with selects GCC sinks the
 * polynomial into a branch and, under the default -ftrapping-math, then refuses to vectorise the loop; libm's expf
 * would not vectorise at all without -ffast-math. */
static inline __attribute__((always_inline)) float exp_f32(float x) {
    int32_t ix;
    memcpy(&ix, &x, 4);
    const int32_t mag = ix & 0x7fffffff;
    const int32_t neg = ix >> 31;                                    /* all ones when x < 0 */
    const int32_t mnan = -(int32_t)(mag > 0x7f800000);
    const int32_t mlo = neg & -(int32_t)(mag > 0x42ae0000) & ~mnan;  /* x < -87 */
    const int32_t mhi = ~neg & -(int32_t)(mag > 0x42b0c0a5) & ~mnan; /* x > 88.3762626647949 */
    const int32_t ixc = (ix & ~(mlo | mhi | mnan)) | ((int32_t)0xc2ae0000 & mlo) | (0x42b0c0a5 & mhi);
    float xc;
    memcpy(&xc, &ixc, 4);
    const float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round to nearest */
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500E-4f;
    p = p * r + 1.3981999507E-3f;
    p = p * r + 8.3334519073E-3f;
    p = p * r + 4.1665795894E-2f;
    p = p * r + 1.6666665459E-1f;
    p = p * r + 5.0000001201E-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits;
    memcpy(&bits, &p, 4);
    bits += (int32_t)((uint32_t)(int32_t)n << 23);
    bits = (bits & ~(mlo | mhi | mnan)) | (0x7f800000 & mhi) | (ix & mnan);
    memcpy(&p, &bits, 4);
    return p;
}

#endif
