/*
 * adamw.cu: one AdamW step over a flat parameter buffer in one launch, bit-identical to the CPU backend
 * (native/cpu/adamw.c), which follows torch.optim.AdamW's single-tensor path op by op:
 *     g = grad * grad_scale;  p *= 1 - lr wd;  m = lerp(m, g, 1 - beta1);  v = fma((1 - beta2) g, g, v beta2)
 *     p += (-lr / (1 - beta1^step)) m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
 * Every operation rounds to f32 before the next reads it, except the two explicit FMAs (torch's lerp and addcmul),
 * so the GPU build uses the _rn intrinsics, which nvcc never contracts into FMAs, and IEEE division and square root
 * (nvcc's defaults); the scalars are computed once on the host in double, as python computes them. With the same
 * inputs the GPU, the emulation and the CPU backend therefore give the same bits.
 *
 * Design: a grid-stride loop, 4 parameters per thread per iteration; when param, m, v (and grad, param_copy)
 * are aligned, the f32 streams move as 16-byte vectors and bf16/f16 grads and copies as 8-byte vectors. The grad
 * and copy dtypes are template arguments (F32, BF16, F16; copy also "none").
 *
 * Memory traffic per parameter: reads param, m, v (12 B) and grad (2-4 B), writes param, m, v (12 B) and the
 * optional copy (2-4 B): 26-32 B. Floor on an H100 (3.0 TB/s): GPT-2 124M with bf16 grads and a bf16 copy
 * (28 B x 124.4M = 3.48 GB) 1.16 ms per step; no FLOP term worth stating (~15 flops per parameter).
 *
 * Global-norm clipping and the EMA need no kernel of their own: rlhf4j_reduce(SUMSQ) gives the squared norm in
 * double-accumulated f32, the clip is grad_scale here, and the EMA is rlhf4j_axpby.
 */
// @budget adamw_kernel regs<=64 smem<=0
#include "internal.cuh"

#define ADAMW_BLOCK 256
#define ADAMW_NONE (-1) /* no param_copy */

struct AdamwConsts {
    float wd_factor;     /* 1 - lr * weight_decay */
    float lerp_w;        /* 1 - beta1 */
    int lerp_small;      /* |lerp_w| < 0.5: torch's two lerp formulas */
    float beta2;
    float one_minus_beta2;
    float bc2_sqrt;
    float eps;
    float neg_step_size; /* -lr / (1 - beta1^step) */
    float grad_scale;
    int scale_grad;      /* grad_scale != 1 */
};

/* Storage of a 2- or 4-byte dtype code, and its conversion to and from f32 (bit-exact with the CPU backend). */
template <int DT> struct AdamwStorage { typedef uint16_t type; };
template <> struct AdamwStorage<RLHF4J_F32> { typedef float type; };
template <> struct AdamwStorage<ADAMW_NONE> { typedef float type; };

template <int DT>
__device__ __forceinline__ float adamw_load(typename AdamwStorage<DT>::type v) {
    if constexpr (DT == RLHF4J_BF16) return rl_bf16_to_f32(v);
    else if constexpr (DT == RLHF4J_F16) return rl_f16_to_f32(v);
    else return v;
}

template <int DT>
__device__ __forceinline__ typename AdamwStorage<DT>::type adamw_store(float v) {
    if constexpr (DT == RLHF4J_BF16) return rl_f32_to_bf16(v);
    else if constexpr (DT == RLHF4J_F16) return rl_f32_to_f16(v);
    else return v;
}

/* The update of one parameter, in torch's order; returns the new param, writes m and v. */
__device__ __forceinline__ float adamw_update(const AdamwConsts &k, float p, float g, float *m, float *v) {
    if (k.scale_grad) g = __fmul_rn(g, k.grad_scale);
    const float pj = __fmul_rn(p, k.wd_factor);
    const float d = __fsub_rn(g, *m);
    const float mj = k.lerp_small ? __fmaf_rn(k.lerp_w, d, *m) : __fmaf_rn(__fsub_rn(k.lerp_w, 1.0f), d, g);
    const float vj = __fmaf_rn(__fmul_rn(k.one_minus_beta2, g), g, __fmul_rn(*v, k.beta2));
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vj), k.bc2_sqrt), k.eps);
    *m = mj;
    *v = vj;
    return __fadd_rn(pj, __fdiv_rn(__fmul_rn(k.neg_step_size, mj), denom));
}

template <typename S, int N> struct alignas(sizeof(S) * N) Pack {
    S e[N];
};

template <int GD, int CD, bool VEC>
__global__ void __launch_bounds__(ADAMW_BLOCK) adamw_kernel(int64_t n, AdamwConsts k, float *param,
                                                            const typename AdamwStorage<GD>::type *grad, float *m,
                                                            float *v, typename AdamwStorage<CD>::type *copy) {
    typedef typename AdamwStorage<GD>::type G;
    typedef typename AdamwStorage<CD>::type C;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    const int64_t tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    int64_t start = 0;
    if constexpr (VEC) {
        const int64_t nv = n / 4;
        for (int64_t q = tid; q < nv; q += stride) {
            Pack<float, 4> p4 = reinterpret_cast<const Pack<float, 4> *>(param)[q];
            Pack<float, 4> m4 = reinterpret_cast<const Pack<float, 4> *>(m)[q];
            Pack<float, 4> v4 = reinterpret_cast<const Pack<float, 4> *>(v)[q];
            Pack<G, 4> g4 = reinterpret_cast<const Pack<G, 4> *>(grad)[q];
#pragma unroll
            for (int j = 0; j < 4; j++) p4.e[j] = adamw_update(k, p4.e[j], adamw_load<GD>(g4.e[j]), &m4.e[j], &v4.e[j]);
            reinterpret_cast<Pack<float, 4> *>(param)[q] = p4;
            reinterpret_cast<Pack<float, 4> *>(m)[q] = m4;
            reinterpret_cast<Pack<float, 4> *>(v)[q] = v4;
            if constexpr (CD != ADAMW_NONE) {
                Pack<C, 4> c4;
#pragma unroll
                for (int j = 0; j < 4; j++) c4.e[j] = adamw_store<CD>(p4.e[j]);
                reinterpret_cast<Pack<C, 4> *>(copy)[q] = c4;
            }
        }
        start = nv * 4;
    }
    for (int64_t i = start + tid; i < n; i += stride) {
        float mi = m[i], vi = v[i];
        const float p = adamw_update(k, param[i], adamw_load<GD>(grad[i]), &mi, &vi);
        param[i] = p;
        m[i] = mi;
        v[i] = vi;
        if constexpr (CD != ADAMW_NONE) copy[i] = adamw_store<CD>(p);
    }
}

static bool aligned_to(const void *p, size_t a) { return p == NULL || ((uintptr_t)p % a) == 0; }

template <int GD, int CD>
static int32_t launch_adamw(const char *fn, rlhf4j_stream s, int64_t n, const AdamwConsts &k, float *param,
                            const void *grad, float *m, float *v, void *copy) {
    typedef typename AdamwStorage<GD>::type G;
    typedef typename AdamwStorage<CD>::type C;
    const bool vec = aligned_to(param, 16) && aligned_to(m, 16) && aligned_to(v, 16) &&
                     aligned_to(grad, 4 * sizeof(G)) && (CD == ADAMW_NONE || aligned_to(copy, 4 * sizeof(C)));
    if (vec)
        return LAUNCH(fn, (adamw_kernel<GD, CD, true>), grid_for(s, n / 4 > 0 ? n / 4 : 1, ADAMW_BLOCK), ADAMW_BLOCK,
                      0, s, n, k, param, (const G *)grad, m, v, (C *)copy);
    return LAUNCH(fn, (adamw_kernel<GD, CD, false>), grid_for(s, n, ADAMW_BLOCK), ADAMW_BLOCK, 0, s, n, k, param,
                  (const G *)grad, m, v, (C *)copy);
}

template <int GD>
static int32_t adamw_copy_dispatch(const char *fn, rlhf4j_stream s, int64_t n, const AdamwConsts &k, float *param,
                                   const void *grad, float *m, float *v, void *copy, int32_t copy_dtype) {
    if (copy == NULL) return launch_adamw<GD, ADAMW_NONE>(fn, s, n, k, param, grad, m, v, copy);
    switch (copy_dtype) {
    case RLHF4J_F32: return launch_adamw<GD, RLHF4J_F32>(fn, s, n, k, param, grad, m, v, copy);
    case RLHF4J_BF16: return launch_adamw<GD, RLHF4J_BF16>(fn, s, n, k, param, grad, m, v, copy);
    default: return launch_adamw<GD, RLHF4J_F16>(fn, s, n, k, param, grad, m, v, copy);
    }
}

extern "C" RLHF4J_API int32_t rlhf4j_adamw_step(rlhf4j_stream s, int64_t n, float *param, const void *grad,
                                                int32_t grad_dtype, float *m, float *v, double lr, double beta1,
                                                double beta2, double eps, double weight_decay, int64_t step,
                                                double grad_scale, void *param_copy, int32_t copy_dtype) {
    static const char *fn = "rlhf4j_adamw_step";
    CHECK_STREAM(fn, s);
    CHECK_NONNEG(fn, n);
    /* An unknown dtype is a wrong argument; a known one other than f32/bf16/f16 (f64, i32) is unsupported. */
    REQUIRE(rlhf4j_dtype_size(grad_dtype) > 0, "%s: unknown grad_dtype %d", fn, grad_dtype);
    if (grad_dtype != RLHF4J_F32 && grad_dtype != RLHF4J_BF16 && grad_dtype != RLHF4J_F16)
        UNSUPPORTED("%s: grad_dtype %s is not supported (f32, bf16 or f16)", fn, rlhf4j_dtype_name(grad_dtype));
    if (param_copy != NULL) {
        REQUIRE(rlhf4j_dtype_size(copy_dtype) > 0, "%s: unknown copy_dtype %d", fn, copy_dtype);
        if (copy_dtype != RLHF4J_F32 && copy_dtype != RLHF4J_BF16 && copy_dtype != RLHF4J_F16)
            UNSUPPORTED("%s: copy_dtype %s is not supported (f32, bf16 or f16)", fn, rlhf4j_dtype_name(copy_dtype));
    }
    REQUIRE(step >= 1, "%s: step = %lld must be >= 1 (steps count from 1)", fn, (long long)step);
    REQUIRE(lr >= 0 && isfinite(lr), "%s: lr = %g must be finite and >= 0", fn, lr);
    REQUIRE(beta1 >= 0 && beta1 < 1, "%s: beta1 = %g must be in [0, 1)", fn, beta1);
    REQUIRE(beta2 >= 0 && beta2 < 1, "%s: beta2 = %g must be in [0, 1)", fn, beta2);
    REQUIRE(eps >= 0 && isfinite(eps), "%s: eps = %g must be finite and >= 0", fn, eps);
    REQUIRE(weight_decay >= 0 && isfinite(weight_decay), "%s: weight_decay = %g must be finite and >= 0", fn,
            weight_decay);
    REQUIRE(isfinite(grad_scale), "%s: grad_scale = %g must be finite", fn, grad_scale);
    if (n == 0) return RLHF4J_OK;
    CHECK_PTR(fn, param);
    CHECK_PTR(fn, grad);
    CHECK_PTR(fn, m);
    CHECK_PTR(fn, v);

    AdamwConsts k;
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

    switch (grad_dtype) {
    case RLHF4J_F32: return adamw_copy_dispatch<RLHF4J_F32>(fn, s, n, k, param, grad, m, v, param_copy, copy_dtype);
    case RLHF4J_BF16: return adamw_copy_dispatch<RLHF4J_BF16>(fn, s, n, k, param, grad, m, v, param_copy, copy_dtype);
    default: return adamw_copy_dispatch<RLHF4J_F16>(fn, s, n, k, param, grad, m, v, param_copy, copy_dtype);
    }
}
