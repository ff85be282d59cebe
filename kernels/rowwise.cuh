// rowwise.cuh: device and host helpers shared by the row-wise kernel families (layernorm.cu, softmax.cu,
// embedding.cu, rope.cu): 16-byte vector loads and stores of bf16 / f32 storage, a row walker that reads a row in
// aligned 16-byte vectors whatever its starting address, deterministic block-wide reductions, and the check of
// device-resident indices (targets, ids) before an op writes anything.
//
// Why 16 bytes: one ld.global.v4 per thread is what saturates HBM on an H100 for a streaming kernel; 2-byte bf16
// loads would need 8x the load instructions for the same bytes. Rows of an odd length (V = 50257 logits) start at
// any 2-byte boundary, so the walker peels a head of up to 7 elements, runs the aligned body in vectors and finishes
// with a tail; the reduction order then depends only on the row's address and the block size, never on timing.
//
// Reductions are butterflies inside a warp, then one value per warp in shared memory summed by every warp in the
// same order: a fixed tree for a given block size, so results are bitwise reproducible run to run (and under the
// emulator's lane schedules).
#pragma once
#include "internal.cuh"

#include <cmath>
#include <cstdint>
#include <cstring>

// 16 bytes, loaded and stored as one vector instruction when the address is 16-byte aligned.
struct alignas(16) Pack16 {
    uint32_t w[4];
};

// Compile-time element count, passed to generic lambdas so their loops unroll (C++17 has no template lambdas).
template <int K> struct Cnt {
    static constexpr int value = K;
};

template <typename T> struct VecOf {
    static constexpr int N = 16 / (int)sizeof(T); // elements per 16-byte vector: 4 f32, 8 bf16
};

// K consecutive elements as float. K * sizeof(T) == 16 is one 16-byte load (p must then be 16-byte aligned).
template <int K, typename T> __device__ __forceinline__ void load_n(float (&out)[K], const T* p) {
    if constexpr (K * sizeof(T) == 16) {
        const Pack16 b = *reinterpret_cast<const Pack16*>(p);
        T t[K];
        memcpy(t, &b, 16);
#pragma unroll
        for (int i = 0; i < K; i++) out[i] = to_float(t[i]);
    } else {
#pragma unroll
        for (int i = 0; i < K; i++) out[i] = to_float(p[i]);
    }
}

template <int K, typename T> __device__ __forceinline__ void store_n(T* p, const float (&v)[K]) {
    if constexpr (K * sizeof(T) == 16) {
        T t[K];
#pragma unroll
        for (int i = 0; i < K; i++) t[i] = from_float<T>(v[i]);
        Pack16 b;
        memcpy(&b, t, 16);
        *reinterpret_cast<Pack16*>(p) = b;
    } else {
#pragma unroll
        for (int i = 0; i < K; i++) p[i] = from_float<T>(v[i]);
    }
}

// As load_n / store_n for K elements at p that are 16-byte aligned only when `aligned` (a second row whose phase
// may differ from the row the walker follows).
template <int K, typename T> __device__ __forceinline__ void load_maybe(float (&out)[K], const T* p, bool aligned) {
    if (aligned) {
        load_n<K>(out, p);
    } else {
#pragma unroll
        for (int i = 0; i < K; i++) out[i] = to_float(p[i]);
    }
}

template <int K, typename T> __device__ __forceinline__ void store_maybe(T* p, const float (&v)[K], bool aligned) {
    if (aligned) {
        store_n<K>(p, v);
    } else {
#pragma unroll
        for (int i = 0; i < K; i++) p[i] = from_float<T>(v[i]);
    }
}

// Elements before p's first 16-byte boundary (at most n).
template <typename T> __device__ __forceinline__ int64_t row_head(const T* p, int64_t n) {
    const int64_t h = (int64_t)(((16u - ((uintptr_t)p & 15u)) & 15u) / sizeof(T));
    return h < n ? h : n;
}

// True when q's 16-byte phase equals p's, so the vectors the walker takes from p are aligned in q too.
template <typename T, typename U> __device__ __forceinline__ bool same_phase(const T* p, const U* q) {
    return (((uintptr_t)p ^ (uintptr_t)q) & 15u) == 0;
}

// Walks a row of n elements at p with the whole block: f(col, vals, Cnt<K>) is called for K = VecOf<T>::N
// consecutive elements from col (the aligned body) or K = 1 (head and tail). Each thread sees its own columns only.
template <typename T, typename F> __device__ __forceinline__ void row_walk(const T* p, int64_t n, F&& f) {
    constexpr int N = VecOf<T>::N;
    const int t = threadIdx.x, nt = blockDim.x;
    const int64_t head = row_head(p, n);
    if (t < head) {
        float v[1] = {to_float(p[t])};
        f((int64_t)t, v, Cnt<1>{});
    }
    const int64_t nv = (n - head) / N;
    for (int64_t k = t; k < nv; k += nt) {
        float v[N];
        load_n<N>(v, p + head + k * N);
        f(head + k * N, v, Cnt<N>{});
    }
    for (int64_t c = head + nv * N + t; c < n; c += nt) {
        float v[1] = {to_float(p[c])};
        f(c, v, Cnt<1>{});
    }
}

// Writes zeros over a row of n elements at p with the whole block (16-byte stores in the aligned body).
template <typename T> __device__ __forceinline__ void row_zero(T* p, int64_t n) {
    constexpr int N = VecOf<T>::N;
    const int t = threadIdx.x, nt = blockDim.x;
    const int64_t head = row_head(p, n);
    if (t < head) p[t] = from_float<T>(0.0f);
    const int64_t nv = (n - head) / N;
    float z[N];
#pragma unroll
    for (int i = 0; i < N; i++) z[i] = 0.0f;
    for (int64_t k = t; k < nv; k += nt) store_n<N>(p + head + k * N, z);
    for (int64_t c = head + nv * N + t; c < n; c += nt) p[c] = from_float<T>(0.0f);
}

// ---- block reductions (blockDim.x a multiple of 32, at most 1024; `red` is __shared__ float[64]) ----------------

// Sum over the block; every thread gets the same value. Ends with a barrier, so `red` can be reused at once.
__device__ __forceinline__ float block_sum(float v, float* red) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    if (lane == 0) red[warp] = v;
    __syncthreads();
    float t = lane < nw ? red[lane] : 0.0f;
    t = warp_sum(t);
    __syncthreads();
    return t;
}

// Running (max, sum of exp(x - max)) of an online softmax. A part that has seen only -inf has m = -inf and s = 0;
// merging two such parts must not form exp(-inf - -inf) = NaN, hence the equality tests.
struct MaxSum {
    float m, s;
};

__device__ __forceinline__ MaxSum maxsum_merge(MaxSum a, MaxSum b) {
    const float m = fmaxf(a.m, b.m);
    const float sa = a.m == m ? a.s : a.s * expf(a.m - m);
    const float sb = b.m == m ? b.s : b.s * expf(b.m - m);
    return {m, sa + sb};
}

// Adds K values to a running MaxSum: one rescale per vector instead of one per element.
template <int K> __device__ __forceinline__ void maxsum_add(MaxSum& ms, const float (&v)[K]) {
    float lm = v[0];
#pragma unroll
    for (int i = 1; i < K; i++) lm = fmaxf(lm, v[i]);
    const float m = fmaxf(ms.m, lm);
    if (m == -INFINITY) return; // nothing but -inf so far: contributes exp(-inf) = 0
    float s = ms.m == m ? ms.s : ms.s * expf(ms.m - m);
#pragma unroll
    for (int i = 0; i < K; i++) s += expf(v[i] - m);
    ms.m = m;
    ms.s = s;
}

// maxsum_merge is commutative bit for bit, so every lane of the butterfly ends with the same value.
__device__ __forceinline__ MaxSum warp_maxsum(MaxSum a) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        MaxSum b;
        b.m = __shfl_xor_sync(0xffffffffu, a.m, o);
        b.s = __shfl_xor_sync(0xffffffffu, a.s, o);
        a = maxsum_merge(a, b);
    }
    return a;
}

__device__ __forceinline__ MaxSum block_maxsum(MaxSum a, float* red) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    a = warp_maxsum(a);
    if (lane == 0) {
        red[warp] = a.m;
        red[32 + warp] = a.s;
    }
    __syncthreads();
    MaxSum t = lane < nw ? MaxSum{red[lane], red[32 + lane]} : MaxSum{-INFINITY, 0.0f};
    t = warp_maxsum(t);
    __syncthreads();
    return t;
}

// ---- host side ------------------------------------------------------------------------------------------------
// (Argument checks, dtype dispatch, LAUNCH and the workspace: internal.cuh.)

// Threads for a block that walks rows of n elements in vectors of `vec`: about `per_thread` vectors per thread,
// a power of two in [32, 1024].
static inline int row_block_threads(int64_t n, int vec, int per_thread) {
    const int64_t want = (n + (int64_t)vec * per_thread - 1) / ((int64_t)vec * per_thread);
    int t = 32;
    while (t < 1024 && t < want) t <<= 1;
    return t;
}

// ---- validation of device-resident indices ----------------------------------------------------------------------

// out[0] = the first i < n with idx[i] outside [0, limit) (and != skip when skip_enabled), or -1; out[1] = idx[i].
// One block: the scan is 4 bytes per index, tiny next to the op it guards, and one block finds the minimum with a
// fixed shared-memory scan, no atomics. (A template so that every .cu file may include it; its @budget line is in
// softmax.cu, since the resource check reads .cu files.)
template <int = 0>
__global__ void __launch_bounds__(256) rowwise_check_index_kernel(int64_t n, const int32_t* __restrict__ idx,
                                                                  int64_t limit, int32_t skip, int skip_enabled,
                                                                  int64_t* __restrict__ out) {
    __shared__ int64_t first[256];
    int64_t best = -1;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        const int32_t v = idx[i];
        if ((skip_enabled && v == skip) || (v >= 0 && v < limit)) continue;
        best = i; // i only grows: the first bad index this thread sees is its smallest
        break;
    }
    first[threadIdx.x] = best;
    __syncthreads();
    if (threadIdx.x == 0) {
        int64_t b = -1;
        for (int k = 0; k < (int)blockDim.x; k++)
            if (first[k] >= 0 && (b < 0 || first[k] < b)) b = first[k];
        out[0] = b;
        out[1] = b >= 0 ? idx[b] : 0;
    }
}

// Validates n device-resident indices before an op writes anything: *bad = first offending position or -1, *value
// its index. Synchronises the stream (the answer is needed on the host to fail the call), so it costs one host
// round trip per call (~10-20 us): the price of reporting a bad target / id as the CPU backend does.
static inline int32_t rowwise_check_indices(const char* fn, rlhf4j_stream s, int64_t n, const int32_t* idx,
                                            int64_t limit, int32_t skip, bool skip_enabled, int64_t* bad,
                                            int32_t* value) {
    *bad = -1;
    *value = 0;
    if (n == 0) return RLHF4J_OK;
    int64_t* res = static_cast<int64_t*>(rlhf4j_workspace(s, 2 * sizeof(int64_t)));
    if (res == NULL)
        return rlhf4j_fail(RLHF4J_ERR_OUT_OF_MEMORY, "%s: no device memory for a %zu-byte workspace", fn,
                           2 * sizeof(int64_t));
    int64_t host[2];
    const cudaStream_t st = cuda_stream(s);
    const cudaError_t e1 = launch_kernel(rowwise_check_index_kernel<0>, dim3(1), dim3(256), 0, st, n, idx, limit,
                                         skip, skip_enabled ? 1 : 0, res);
    const cudaError_t e2 = e1 == cudaSuccess ? cudaMemcpyAsync(host, res, sizeof host, cudaMemcpyDeviceToHost, st)
                                             : cudaSuccess;
    const cudaError_t e3 = e1 == cudaSuccess && e2 == cudaSuccess ? cudaStreamSynchronize(st) : cudaSuccess;
    rlhf4j_workspace_release(s, res);
    CUDA_CHECK(fn, "rowwise_check_index_kernel", e1);
    CUDA_CHECK(fn, "reading back the index check", e2);
    CUDA_CHECK(fn, "synchronising for the index check", e3);
    *bad = host[0];
    *value = (int32_t)host[1];
    return RLHF4J_OK;
}
