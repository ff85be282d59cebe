/*
 * adamw.c: one AdamW step over a flat range of parameters, as torch.optim.AdamW computes it.
 *
 * The order of operations and the precision follow torch/optim/adam.py `_single_tensor_adam` (the path torch takes
 * for CPU tensors: default, not foreach, not fused, not amsgrad, not maximize), every tensor op in f32 with its
 * python-float scalar rounded to f32, the scalars themselves computed in double as python does:
 *     g = grad * grad_scale                                   (grad_scale == 1: g is grad exactly)
 *     param.mul_(1 - lr * wd)
 *     exp_avg.lerp_(g, 1 - beta1)          w < 0.5 ? fma(w, g - m, m) : fma(w - 1, g - m, g)   (torch's lerp_vec)
 *     exp_avg_sq.mul_(beta2).addcmul_(g, g, value = 1 - beta2)           v = fma((1 - b2) g, g, v b2)
 *     bc1 = 1 - beta1^step;  bc2 = 1 - beta2^step;  step_size = lr / bc1;  bc2_sqrt = bc2^0.5
 *     denom = (exp_avg_sq.sqrt() / bc2_sqrt).add_(eps)
 *     param.addcdiv_(exp_avg, denom, value = -step_size)                  p = p + (-step_size m) / denom
 * The two FMAs are where torch's CPU kernels (AVX2/AVX-512 builds) fuse; everything else rounds after every op,
 * so contraction is off for the kernel. The result is bit-identical to that op sequence run through torch with an
 * IEEE sqrt; torch's own f32 CPU sqrt is not correctly rounded (measured: 18% of results off by an ulp), so
 * torch.optim.AdamW itself differs by an ulp or two per step. The FMAs are explicit, so the baseline x86-64 clone
 * (libm fmaf) gives the same bits.
 *
 * Memory traffic per parameter: reads param, m, v (12 B) and grad (2-4 B); writes param, m, v (12 B) and the
 * optional copy (2-4 B): 26-32 B, so the step runs at memory bandwidth. grad is widened to f32 and the copy
 * narrowed from f32 through a small stack buffer per block, so one update loop serves every dtype combination.
 */
#include "internal.h"

#include <omp.h>

#define BLOCK 1024  /* elements per inner block (stack buffers of 4 KiB) */
#define CHUNK 16384 /* elements per parallel work unit */

typedef struct {
    float wd_factor;   /* 1 - lr * weight_decay */
    float lerp_w;      /* 1 - beta1 */
    int lerp_small;    /* lerp_w < 0.5: torch's two lerp formulas */
    float beta2;
    float one_minus_beta2;
    float bc2_sqrt;
    float eps;
    float neg_step_size; /* -lr / (1 - beta1^step) */
    float grad_scale;
    int scale_grad;      /* grad_scale != 1 */
} adamw_consts;

/* fp-contract=off: every torch op rounds to f32 before the next one reads it, so no multiply may be fused into a
 * later add. lerp is the exception: torch's vectorised lerp is an explicit fmadd, and so is ours. */
RLHF4J_MULTIVERSION __attribute__((optimize("fp-contract=off")))
static void adamw_chunk(const adamw_consts *k, int64_t i0, int64_t i1, float *param, const void *grad,
                        int32_t grad_dtype, float *m, float *v, void *param_copy, int32_t copy_dtype) {
    float gbuf[BLOCK];
    const float wdf = k->wd_factor, w = k->lerp_w, b2 = k->beta2, c2 = k->one_minus_beta2;
    const float bc2s = k->bc2_sqrt, eps = k->eps, nss = k->neg_step_size, gs = k->grad_scale;
    for (int64_t b0 = i0; b0 < i1; b0 += BLOCK) {
        const int64_t len = i1 - b0 < BLOCK ? i1 - b0 : BLOCK;
        const float *restrict g;
        switch (grad_dtype) {
        case RLHF4J_F32: g = (const float *)grad + b0; break;
        case RLHF4J_BF16: {
            const uint16_t *restrict h = (const uint16_t *)grad + b0;
            for (int64_t j = 0; j < len; j++) gbuf[j] = rl_bf16_to_f32(h[j]);
            g = gbuf;
            break;
        }
        default: { /* F16 */
            const uint16_t *restrict h = (const uint16_t *)grad + b0;
            for (int64_t j = 0; j < len; j++) gbuf[j] = rl_f16_to_f32(h[j]);
            g = gbuf;
            break;
        }
        }
        if (k->scale_grad) {
            for (int64_t j = 0; j < len; j++) gbuf[j] = g[j] * gs;
            g = gbuf;
        }
        float *restrict p = param + b0, *restrict mm = m + b0, *restrict vv = v + b0;
        if (k->lerp_small) {
            for (int64_t j = 0; j < len; j++) {
                float gj = g[j];
                float pj = p[j] * wdf;
                float mj = __builtin_fmaf(w, gj - mm[j], mm[j]);
                float vj = __builtin_fmaf(c2 * gj, gj, vv[j] * b2);
                float denom = sqrtf(vj) / bc2s + eps;
                p[j] = pj + nss * mj / denom;
                mm[j] = mj;
                vv[j] = vj;
            }
        } else {
            for (int64_t j = 0; j < len; j++) {
                float gj = g[j];
                float pj = p[j] * wdf;
                float mj = __builtin_fmaf(w - 1.0f, gj - mm[j], gj);
                float vj = __builtin_fmaf(c2 * gj, gj, vv[j] * b2);
                float denom = sqrtf(vj) / bc2s + eps;
                p[j] = pj + nss * mj / denom;
                mm[j] = mj;
                vv[j] = vj;
            }
        }
        if (param_copy != NULL) {
            switch (copy_dtype) {
            case RLHF4J_F32: memcpy((float *)param_copy + b0, p, (size_t)len * sizeof(float)); break;
            case RLHF4J_BF16: {
                uint16_t *restrict h = (uint16_t *)param_copy + b0;
                for (int64_t j = 0; j < len; j++) h[j] = rl_f32_to_bf16(p[j]);
                break;
            }
            default: {
                uint16_t *restrict h = (uint16_t *)param_copy + b0;
                for (int64_t j = 0; j < len; j++) h[j] = rl_f32_to_f16(p[j]);
                break;
            }
            }
        }
    }
}

RLHF4J_API int32_t rlhf4j_adamw_step(rlhf4j_stream s, int64_t n, float *param, const void *grad, int32_t grad_dtype,
                                     float *m, float *v, double lr, double beta1, double beta2, double eps,
                                     double weight_decay, int64_t step, double grad_scale, void *param_copy,
                                     int32_t copy_dtype) {
    static const char *fn = "rlhf4j_adamw_step";
    CHECK_STREAM(fn, s);
    CHECK_NONNEG(fn, n);
    /* An unknown dtype is a wrong argument; a known one other than f32/bf16/f16 (f64, i32) is unsupported. */
    CHECK_ARG(rlhf4j_dtype_size(grad_dtype) > 0, "%s: unknown grad_dtype %d", fn, grad_dtype);
    if (grad_dtype != RLHF4J_F32 && grad_dtype != RLHF4J_BF16 && grad_dtype != RLHF4J_F16)
        return FAIL_UNSUPPORTED("%s: grad_dtype %s is not supported (f32, bf16 or f16)", fn,
                                rlhf4j_dtype_name(grad_dtype));
    if (param_copy != NULL) {
        CHECK_ARG(rlhf4j_dtype_size(copy_dtype) > 0, "%s: unknown copy_dtype %d", fn, copy_dtype);
        if (copy_dtype != RLHF4J_F32 && copy_dtype != RLHF4J_BF16 && copy_dtype != RLHF4J_F16)
            return FAIL_UNSUPPORTED("%s: copy_dtype %s is not supported (f32, bf16 or f16)", fn,
                                    rlhf4j_dtype_name(copy_dtype));
    }
    CHECK_ARG(step >= 1, "%s: step = %lld must be >= 1 (steps count from 1)", fn, (long long)step);
    CHECK_ARG(lr >= 0 && isfinite(lr), "%s: lr = %g must be finite and >= 0", fn, lr);
    CHECK_ARG(beta1 >= 0 && beta1 < 1, "%s: beta1 = %g must be in [0, 1)", fn, beta1);
    CHECK_ARG(beta2 >= 0 && beta2 < 1, "%s: beta2 = %g must be in [0, 1)", fn, beta2);
    CHECK_ARG(eps >= 0 && isfinite(eps), "%s: eps = %g must be finite and >= 0", fn, eps);
    CHECK_ARG(weight_decay >= 0 && isfinite(weight_decay), "%s: weight_decay = %g must be finite and >= 0", fn,
              weight_decay);
    CHECK_ARG(isfinite(grad_scale), "%s: grad_scale = %g must be finite", fn, grad_scale);
    if (n == 0) return RLHF4J_OK;
    CHECK_PTR(fn, param);
    CHECK_PTR(fn, grad);
    CHECK_PTR(fn, m);
    CHECK_PTR(fn, v);

    adamw_consts k;
    double bc1 = 1.0 - pow(beta1, (double)step);
    double bc2 = 1.0 - pow(beta2, (double)step);
    k.wd_factor = (float)(1.0 - lr * weight_decay);
    k.lerp_w = (float)(1.0 - beta1);
    k.lerp_small = fabsf(k.lerp_w) < 0.5f;
    k.beta2 = (float)beta2;
    k.one_minus_beta2 = (float)(1.0 - beta2);
    k.bc2_sqrt = (float)pow(bc2, 0.5);
    k.eps = (float)eps;
    k.neg_step_size = (float)(-(lr / bc1));
    k.grad_scale = (float)grad_scale;
    k.scale_grad = grad_scale != 1.0;

    int64_t chunks = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for num_threads(nthreads(s, n * 4)) schedule(static)
    for (int64_t c = 0; c < chunks; c++) {
        int64_t i1 = (c + 1) * CHUNK < n ? (c + 1) * CHUNK : n;
        adamw_chunk(&k, c * CHUNK, i1, param, grad, grad_dtype, m, v, param_copy, copy_dtype);
    }
    return RLHF4J_OK;
}
