// layernorm.cu: LayerNorm (torch.nn.LayerNorm, biased variance) and RMSNorm (transformers' LlamaRMSNorm:
// weight * (x * rsqrt(mean(x^2) + eps))), forward and backward, over rows of `dim`; F32 and BF16 storage, f32
// arithmetic and f32 statistics (mean, rstd) in both.
//
// The two norms share their kernels (template flag RMS): RMSNorm is LayerNorm with mean 0 and no bias, and with
// mu = 0 every expression below reduces to RMSNorm's exactly, bit for bit, so one source serves both.
//
// Forward saves what backward needs and nothing else: mean and rstd per row (rstd only for RMSNorm); either may be
// NULL when no backward follows. Backward recomputes xhat = (x - mean) * rstd from them instead of storing it.
//
// Gradients: dx overwrites unless accumulate != 0; dweight / dbias always accumulate (+=) into the step's flat
// gradient buffer, as the ABI says. Parameter gradients are sums over all rows, and float atomics would make them
// depend on timing, so they are reduced deterministically in two levels:
//   1. norm_backward_kernel: P blocks (P depends on rows, dim and which gradients are wanted, never on the device)
//      each own a contiguous range of rows; inside a block, warp w takes rows w, w + W, ... and adds dy * xhat (and
//      dy) into its OWN accumulator row in shared memory, in row order; its lanes own fixed columns, so no two
//      threads ever touch one float. At the end the block adds its W warp rows in warp order and writes one partial.
//   2. norm_param_reduce_kernel: one thread per column adds the P partials in block order into dweight / dbias.
// The summation order depends only on the arguments, so the result is identical on every run, on every GPU, and
// under every emulated lane schedule.
// Rows too wide for shared memory (nacc * dim * 4 > 64 KiB) use one warp per block accumulating straight into its
// partial in global memory (L2-resident: each warp touches only its own row of partials).
//
// Fused residual-add + LayerNorm (llm.c's fused_residual_forward) has no entry point in ABI v1, so it is not here. It
// would be a new rlhf4j_residual_layernorm_forward(s, dtype, rows, dim, x, residual, weight, bias, eps, sum, y, mean,
// rstd) writing sum = x + residual and y = LN(sum): norm_forward_kernel with the sum formed in pass 1, stored once,
// and re-read by passes 2 and 3 from L1. It saves LayerNorm's DRAM read of sum (10 -> 8 B/elem in bf16) and a
// launch; its backward needs no new kernel (the gradient of sum is dy of the residual branch plus this dx: the
// existing accumulate flag of layernorm_backward adds dx into it).
//
// Memory traffic per element (bf16 / f32), weight and bias being L2-resident and shared by all rows:
//   forward:  read x, write y                     4 B / 8 B   (x is read twice more from L1: one warp owns a row,
//                                                              1.5 KiB at C = 768, and re-reads it for each pass)
//   backward: read x and dy, write dx             6 B / 12 B  (+2 B / +4 B read of dx when accumulating)
//             + partials: 2 * P * nacc * dim * 4 B in total (P <= 256: 3.1 MB at C = 768), negligible next to x.
// FLOPs are ~10 per element: all four kernels are memory-bound by a factor > 100 on an H100.
// Floors on an H100 (3.0 TB/s) for GPT-2 124M (rows = B*T = 8 * 1024, C = 768), bf16 / f32:
//   layernorm_forward  25.2 MB / 50.3 MB   ->  8.4 us / 16.8 us
//   layernorm_backward 37.7 MB + 3.1 MB / 75.5 MB + 3.1 MB  ->  13.6 us / 26.2 us
//   rmsnorm: the same minus dbias (and the bias read).
#include "internal.cuh"
#include "rowwise.cuh"

// ------------------------------------------------------------------------------------------------------------------
// CUDA kernels

constexpr int NORM_FWD_WARPS = 8;         // rows per forward block: one warp per row
constexpr int NORM_BWD_MAX_WARPS = 8;     // warps (accumulator rows) per backward block
constexpr int NORM_ROWS_PER_WARP = 4;     // rows each backward warp takes, before P is capped
constexpr int NORM_MAX_PARTIALS = 256;    // P: partial rows the second level adds (bounds its traffic)
constexpr int64_t NORM_SMEM_BUDGET = 64 * 1024; // per block, for the warps' accumulator rows

// One warp per row; lanes own columns [k V, k V + V) for k = lane, lane + 32, ... Three passes over the row, the
// second and third from L1: mean relative to x[0] (so its rounding scales with the row's spread, not its
// magnitude), centred sum of squares (no E[x^2] - E[x]^2 cancellation), then y. V = 16 / sizeof(T) when dim and
// every pointer allow 16-byte vectors, else 1.
// @budget norm_forward_kernel regs<=40 smem<=0
template <typename T, int V, bool RMS>
__global__ void __launch_bounds__(256)
    norm_forward_kernel(int64_t rows, int dim, const T* __restrict__ x, const T* __restrict__ w,
                        const T* __restrict__ b, float eps, T* __restrict__ y, float* __restrict__ mean,
                        float* __restrict__ rstd) {
    const int lane = threadIdx.x & 31;
    const int64_t r = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (r >= rows) return; // the whole warp: this kernel has no block barrier
    const T* xr = x + r * dim;
    T* yr = y + r * dim;
    const int nv = dim / V;
    const float inv_dim = 1.0f / (float)dim;
    float mu = 0.0f;
    if constexpr (!RMS) {
        const float x0 = to_float(xr[0]);
        float s = 0.0f;
        for (int k = lane; k < nv; k += 32) {
            float v[V];
            load_n<V>(v, xr + (int64_t)k * V);
#pragma unroll
            for (int i = 0; i < V; i++) s += v[i] - x0;
        }
        mu = x0 + warp_sum(s) * inv_dim;
    }
    float sq = 0.0f;
    for (int k = lane; k < nv; k += 32) {
        float v[V];
        load_n<V>(v, xr + (int64_t)k * V);
#pragma unroll
        for (int i = 0; i < V; i++) {
            const float d = v[i] - mu;
            sq += d * d;
        }
    }
    const float rs = 1.0f / sqrtf(warp_sum(sq) * inv_dim + eps);
    for (int k = lane; k < nv; k += 32) {
        float v[V], o[V];
        load_n<V>(v, xr + (int64_t)k * V);
        if constexpr (RMS) { // weight * (x * rstd), LlamaRMSNorm's order
#pragma unroll
            for (int i = 0; i < V; i++) o[i] = v[i] * rs;
            if (w != nullptr) {
                float wv[V];
                load_n<V>(wv, w + (int64_t)k * V);
#pragma unroll
                for (int i = 0; i < V; i++) o[i] = wv[i] * o[i];
            }
        } else {
#pragma unroll
            for (int i = 0; i < V; i++) o[i] = (v[i] - mu) * rs;
            if (w != nullptr) {
                float wv[V];
                load_n<V>(wv, w + (int64_t)k * V);
#pragma unroll
                for (int i = 0; i < V; i++) o[i] *= wv[i];
            }
            if (b != nullptr) {
                float bv[V];
                load_n<V>(bv, b + (int64_t)k * V);
#pragma unroll
                for (int i = 0; i < V; i++) o[i] += bv[i];
            }
        }
        store_n<V>(yr + (int64_t)k * V, o);
    }
    if (lane == 0) {
        if (!RMS && mean != nullptr) mean[r] = mu;
        if (rstd != nullptr) rstd[r] = rs;
    }
}

// Block b owns rows [rows b / P, rows (b + 1) / P) with P = gridDim.x; warp w of W takes rows r0 + w, r0 + w + W, ...
// Per row: pass 1 forms sum(g) and sum(g xhat) with g = dy * weight (a warp reduction), pass 2 writes
// dx = rstd (g - mean(g) - xhat mean(g xhat)) and adds dy xhat (and dy) into the warp's accumulator row at the
// columns this lane owns. Accumulators: want_dw / want_db select which exist (nacc of them, dw first), in shared
// memory (W rows of nacc * dim floats) or, with acc_in_part (W == 1), directly in this block's partial row.
// @budget norm_backward_kernel regs<=64 smem<=0
template <typename T, int V, bool RMS>
__global__ void __launch_bounds__(256)
    norm_backward_kernel(int64_t rows, int dim, const T* __restrict__ x, const T* __restrict__ w,
                         const float* __restrict__ mean, const float* __restrict__ rstd, const T* __restrict__ dy,
                         T* __restrict__ dx, int accumulate, int want_dw, int want_db, float* __restrict__ part,
                         int acc_in_part) {
    RLHF4J_DYNAMIC_SMEM(float, smem);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    const int64_t P = gridDim.x;
    const int64_t r0 = rows * blockIdx.x / P, r1 = rows * (blockIdx.x + 1) / P;
    const int nacc = want_dw + want_db;
    const int64_t stride = (int64_t)nacc * dim;
    float* acc = nacc == 0 ? nullptr : acc_in_part ? part + blockIdx.x * stride : smem + warp * stride;
    float* adw = want_dw ? acc : nullptr;
    float* adb = want_db ? acc + (want_dw ? dim : 0) : nullptr;
    const int nv = dim / V;
    const float inv_dim = 1.0f / (float)dim;

    for (int k = lane; k < nv; k += 32) { // each lane zeroes exactly the columns it will add to
#pragma unroll
        for (int i = 0; i < V; i++) {
            if (adw != nullptr) adw[k * V + i] = 0.0f;
            if (adb != nullptr) adb[k * V + i] = 0.0f;
        }
    }
    for (int64_t r = r0 + warp; r < r1; r += nw) {
        const T* xr = x + r * dim;
        const T* dyr = dy + r * dim;
        const float mu = RMS ? 0.0f : mean[r], rs = rstd[r];
        float sg = 0.0f, sgx = 0.0f;
        for (int k = lane; k < nv; k += 32) {
            float xv[V], g[V];
            load_n<V>(xv, xr + (int64_t)k * V);
            load_n<V>(g, dyr + (int64_t)k * V);
            if (w != nullptr) {
                float wv[V];
                load_n<V>(wv, w + (int64_t)k * V);
#pragma unroll
                for (int i = 0; i < V; i++) g[i] *= wv[i];
            }
#pragma unroll
            for (int i = 0; i < V; i++) {
                sg += g[i];
                sgx += g[i] * ((xv[i] - mu) * rs);
            }
        }
        const float mg = RMS ? 0.0f : warp_sum(sg) * inv_dim;
        const float mgx = warp_sum(sgx) * inv_dim;
        for (int k = lane; k < nv; k += 32) {
            float xv[V], dv[V], xh[V];
            load_n<V>(xv, xr + (int64_t)k * V);
            load_n<V>(dv, dyr + (int64_t)k * V);
#pragma unroll
            for (int i = 0; i < V; i++) xh[i] = (xv[i] - mu) * rs;
            if (dx != nullptr) {
                float g[V], o[V];
#pragma unroll
                for (int i = 0; i < V; i++) g[i] = dv[i];
                if (w != nullptr) {
                    float wv[V];
                    load_n<V>(wv, w + (int64_t)k * V);
#pragma unroll
                    for (int i = 0; i < V; i++) g[i] *= wv[i];
                }
#pragma unroll
                for (int i = 0; i < V; i++) o[i] = rs * (g[i] - mg - xh[i] * mgx);
                T* dxp = dx + r * dim + (int64_t)k * V;
                if (accumulate) {
                    float old[V];
                    load_n<V>(old, dxp);
#pragma unroll
                    for (int i = 0; i < V; i++) o[i] = old[i] + o[i];
                }
                store_n<V>(dxp, o);
            }
#pragma unroll
            for (int i = 0; i < V; i++) {
                if (adw != nullptr) adw[k * V + i] += dv[i] * xh[i];
                if (adb != nullptr) adb[k * V + i] += dv[i];
            }
        }
    }
    if (nacc != 0 && !acc_in_part) {
        __syncthreads(); // every warp's accumulator row is complete
        for (int64_t c = threadIdx.x; c < stride; c += blockDim.x) {
            float s = smem[c];
            for (int k = 1; k < nw; k++) s += smem[k * stride + c];
            part[blockIdx.x * stride + c] = s;
        }
    }
}

// dst[c] += sum over p < P of part[p][c], partials added first and in block order; one thread per column of the
// nacc * dim partial row (dw columns, then db columns). Traffic: P * 4 B read per column.
// @budget norm_param_reduce_kernel regs<=32 smem<=0
template <typename T>
__global__ void __launch_bounds__(256) norm_param_reduce_kernel(int P, int dim, int64_t stride,
                                                                const float* __restrict__ part, T* __restrict__ d0,
                                                                T* __restrict__ d1) {
    const int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= stride) return;
    float s = part[c];
    for (int p = 1; p < P; p++) s += part[(int64_t)p * stride + c];
    T* dst = c < dim ? d0 + c : d1 + (c - dim);
    *dst = from_float<T>(to_float(*dst) + s);
}

// ------------------------------------------------------------------------------------------------------------------
// kernel launchers

static bool aligned16(const void* p) { return p == nullptr || ((uintptr_t)p & 15u) == 0; }

template <typename T>
static int vec_width(int64_t dim, const void* a, const void* b, const void* c, const void* d, const void* e) {
    constexpr int N = VecOf<T>::N;
    return dim % N == 0 && aligned16(a) && aligned16(b) && aligned16(c) && aligned16(d) && aligned16(e) ? N : 1;
}

template <typename T, int V, bool RMS>
static int32_t norm_forward_launch(const char* fn, rlhf4j_stream s, int64_t rows, int dim, const void* x,
                                   const void* w, const void* b, float eps, void* y, void* mean, void* rstd) {
    const int64_t grid = (rows + NORM_FWD_WARPS - 1) / NORM_FWD_WARPS;
    LAUNCH(fn, (norm_forward_kernel<T, V, RMS>), dim3((unsigned)grid), dim3(32 * NORM_FWD_WARPS), 0, s, rows, dim,
           (const T*)x, (const T*)w, (const T*)b, eps, (T*)y, (float*)mean, (float*)rstd);
    return RLHF4J_OK;
}

template <typename T, bool RMS>
static int32_t norm_forward(const char* fn, rlhf4j_stream s, int64_t rows, int64_t dim, const void* x,
                            const void* w, const void* b, double eps, void* y, void* mean, void* rstd) {
    if (rows == 0) return RLHF4J_OK;
    if (vec_width<T>(dim, x, w, b, y, nullptr) > 1)
        return norm_forward_launch<T, VecOf<T>::N, RMS>(fn, s, rows, (int)dim, x, w, b, (float)eps, y, mean, rstd);
    return norm_forward_launch<T, 1, RMS>(fn, s, rows, (int)dim, x, w, b, (float)eps, y, mean, rstd);
}

// The launch geometry of the backward: W warps (accumulator rows) per block and P blocks (partials).
struct NormBwdPlan {
    int W, acc_in_part;
    int64_t P;
    size_t smem;
};

static NormBwdPlan norm_backward_plan(int64_t rows, int64_t dim, int nacc) {
    const int64_t per_warp = (int64_t)nacc * dim * (int64_t)sizeof(float);
    NormBwdPlan p{NORM_BWD_MAX_WARPS, 0, 0, 0};
    if (nacc == 0) { // dx only: one row per warp, nothing to reduce
        p.P = (rows + p.W - 1) / p.W;
        return p;
    }
    if (per_warp <= NORM_SMEM_BUDGET) {
        p.W = (int)(NORM_SMEM_BUDGET / per_warp);
        if (p.W > NORM_BWD_MAX_WARPS) p.W = NORM_BWD_MAX_WARPS;
        p.smem = (size_t)p.W * (size_t)per_warp;
    } else { // too wide for shared memory: one warp per block accumulates in its own partial row
        p.W = 1;
        p.acc_in_part = 1;
    }
    p.P = (rows + (int64_t)p.W * NORM_ROWS_PER_WARP - 1) / ((int64_t)p.W * NORM_ROWS_PER_WARP);
    if (p.P > NORM_MAX_PARTIALS) p.P = NORM_MAX_PARTIALS;
    return p;
}

template <typename T, int V, bool RMS>
static int32_t norm_backward_enqueue(const char* fn, rlhf4j_stream s, const NormBwdPlan& p, int64_t rows, int dim,
                                     const void* x, const void* w, const void* mean, const void* rstd,
                                     const void* dy, void* dx, void* dw, void* db, int accumulate, float* part) {
    const int want_dw = dw != nullptr, want_db = db != nullptr;
    LAUNCH(fn, (norm_backward_kernel<T, V, RMS>), dim3((unsigned)p.P), dim3(32 * p.W), p.smem, s, rows, dim,
           (const T*)x, (const T*)w, (const float*)mean, (const float*)rstd, (const T*)dy, (T*)dx, accumulate,
           want_dw, want_db, part, p.acc_in_part);
    if (want_dw || want_db) {
        const int64_t stride = (int64_t)(want_dw + want_db) * dim;
        LAUNCH(fn, (norm_param_reduce_kernel<T>), dim3((unsigned)((stride + 255) / 256)), dim3(256), 0, s, (int)p.P,
               dim, stride, (const float*)part, (T*)(want_dw ? dw : db), (T*)db);
    }
    return RLHF4J_OK;
}

template <typename T, int V, bool RMS>
static int32_t norm_backward_launch(const char* fn, rlhf4j_stream s, int64_t rows, int dim, const void* x,
                                    const void* w, const void* mean, const void* rstd, const void* dy, void* dx,
                                    void* dw, void* db, int accumulate) {
    const int nacc = (dw != nullptr) + (db != nullptr);
    const NormBwdPlan p = norm_backward_plan(rows, dim, nacc);
    float* part = nullptr;
    if (nacc != 0) {
        const size_t bytes = (size_t)p.P * (size_t)nacc * (size_t)dim * sizeof(float);
        part = static_cast<float*>(rlhf4j_workspace(s, bytes));
        if (part == nullptr)
            return rlhf4j_fail(RLHF4J_ERR_OUT_OF_MEMORY, "%s: no device memory for a %zu-byte workspace", fn, bytes);
    }
    const int32_t st = norm_backward_enqueue<T, V, RMS>(fn, s, p, rows, dim, x, w, mean, rstd, dy, dx, dw, db,
                                                        accumulate, part);
    if (part != nullptr) rlhf4j_workspace_release(s, part);
    return st;
}

template <typename T, bool RMS>
static int32_t norm_backward(const char* fn, rlhf4j_stream s, int64_t rows, int64_t dim, const void* x,
                             const void* w, const void* mean, const void* rstd, const void* dy, void* dx, void* dw,
                             void* db, int32_t accumulate) {
    if (dx == nullptr && dw == nullptr && db == nullptr) return RLHF4J_OK;
    if (rows == 0) return RLHF4J_OK; // sums over no rows: dweight += 0
    if (vec_width<T>(dim, x, w, dy, dx, nullptr) > 1)
        return norm_backward_launch<T, VecOf<T>::N, RMS>(fn, s, rows, (int)dim, x, w, mean, rstd, dy, dx, dw, db,
                                                         accumulate != 0);
    return norm_backward_launch<T, 1, RMS>(fn, s, rows, (int)dim, x, w, mean, rstd, dy, dx, dw, db,
                                           accumulate != 0);
}

// ------------------------------------------------------------------------------------------------------------------
// entry points (argument checks as the CPU backend's, with its messages)

static int32_t check_norm_args(const char* fn, rlhf4j_stream s, int32_t dtype, int64_t rows, int64_t dim) {
    CHECK_STREAM(fn, s);
    CHECK_COMPUTE_DTYPE(fn, dtype);
    CHECK_NONNEG(fn, rows);
    CHECK_POS(fn, dim);
    REQUIRE(dim <= INT32_MAX, "%s: dim = %lld must be < 2^31 on the cuda backend", fn, (long long)dim);
    return RLHF4J_OK;
}

static int32_t check_eps(const char* fn, double eps) {
    REQUIRE(eps >= 0 && std::isfinite(eps), "%s: eps = %g must be finite and >= 0", fn, eps);
    return RLHF4J_OK;
}

extern "C" RLHF4J_API int32_t rlhf4j_layernorm_forward(rlhf4j_stream s, int32_t dtype, int64_t rows, int64_t dim,
                                                       const void* x, const void* weight, const void* bias,
                                                       double eps, void* y, void* mean, void* rstd) {
    static const char* fn = "rlhf4j_layernorm_forward";
    int32_t st = check_norm_args(fn, s, dtype, rows, dim);
    if (st != RLHF4J_OK) return st;
    CHECK_PTR(fn, x);
    CHECK_PTR(fn, y);
    if ((st = check_eps(fn, eps)) != RLHF4J_OK) return st;
    if (dtype == RLHF4J_F32) return norm_forward<float, false>(fn, s, rows, dim, x, weight, bias, eps, y, mean, rstd);
    return norm_forward<bf16, false>(fn, s, rows, dim, x, weight, bias, eps, y, mean, rstd);
}

extern "C" RLHF4J_API int32_t rlhf4j_layernorm_backward(rlhf4j_stream s, int32_t dtype, int64_t rows, int64_t dim,
                                                        const void* x, const void* weight, const void* mean,
                                                        const void* rstd, const void* dy, void* dx, void* dweight,
                                                        void* dbias, int32_t accumulate) {
    static const char* fn = "rlhf4j_layernorm_backward";
    int32_t st = check_norm_args(fn, s, dtype, rows, dim);
    if (st != RLHF4J_OK) return st;
    CHECK_PTR(fn, x);
    CHECK_PTR(fn, mean);
    CHECK_PTR(fn, rstd);
    CHECK_PTR(fn, dy);
    if (dtype == RLHF4J_F32)
        return norm_backward<float, false>(fn, s, rows, dim, x, weight, mean, rstd, dy, dx, dweight, dbias,
                                           accumulate);
    return norm_backward<bf16, false>(fn, s, rows, dim, x, weight, mean, rstd, dy, dx, dweight, dbias, accumulate);
}

extern "C" RLHF4J_API int32_t rlhf4j_rmsnorm_forward(rlhf4j_stream s, int32_t dtype, int64_t rows, int64_t dim,
                                                     const void* x, const void* weight, double eps, void* y,
                                                     void* rstd) {
    static const char* fn = "rlhf4j_rmsnorm_forward";
    int32_t st = check_norm_args(fn, s, dtype, rows, dim);
    if (st != RLHF4J_OK) return st;
    CHECK_PTR(fn, x);
    CHECK_PTR(fn, y);
    if ((st = check_eps(fn, eps)) != RLHF4J_OK) return st;
    if (dtype == RLHF4J_F32)
        return norm_forward<float, true>(fn, s, rows, dim, x, weight, nullptr, eps, y, nullptr, rstd);
    return norm_forward<bf16, true>(fn, s, rows, dim, x, weight, nullptr, eps, y, nullptr, rstd);
}

extern "C" RLHF4J_API int32_t rlhf4j_rmsnorm_backward(rlhf4j_stream s, int32_t dtype, int64_t rows, int64_t dim,
                                                      const void* x, const void* weight, const void* rstd,
                                                      const void* dy, void* dx, void* dweight, int32_t accumulate) {
    static const char* fn = "rlhf4j_rmsnorm_backward";
    int32_t st = check_norm_args(fn, s, dtype, rows, dim);
    if (st != RLHF4J_OK) return st;
    CHECK_PTR(fn, x);
    CHECK_PTR(fn, rstd);
    CHECK_PTR(fn, dy);
    if (dtype == RLHF4J_F32)
        return norm_backward<float, true>(fn, s, rows, dim, x, weight, nullptr, rstd, dy, dx, dweight, nullptr,
                                          accumulate);
    return norm_backward<bf16, true>(fn, s, rows, dim, x, weight, nullptr, rstd, dy, dx, dweight, nullptr,
                                     accumulate);
}
