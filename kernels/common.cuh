// The portable prelude of every kernel source: the same text compiles with nvcc for the GPU and with g++ -DRLHF4J_EMU
// for the CPU emulation (kernels/emu/cuda_emu.h). Host code launches kernels only through launch_kernel, so that the
// emulated build checks grid sizes, shared-memory sizes and argument order too.
#pragma once

#ifdef RLHF4J_EMU
#include "emu/cuda_emu.h"
#else
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#endif

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <mutex>
#include <tuple>
#include <type_traits>
#include <utility>

typedef __nv_bfloat16 bf16;

// Dynamic shared memory of the running block, as `T* name` (16-byte aligned; in emulation it ends against a guard
// page and starts each block filled with 0xff, NaN in f32/bf16):
//   RLHF4J_DYNAMIC_SMEM(float, smem);
#ifdef RLHF4J_EMU
#define RLHF4J_DYNAMIC_SMEM(T, name) T* name = reinterpret_cast<T*>(::rlhf4j_emu::dynamic_smem())
#else
#define RLHF4J_DYNAMIC_SMEM(T, name)                                                                                   \
    extern __shared__ __align__(16) unsigned char rlhf4j_dynamic_smem_[];                                              \
    T* name = reinterpret_cast<T*>(rlhf4j_dynamic_smem_)
#endif

// ---- storage <-> fp32 -----------------------------------------------------------------------------------------------
__host__ __device__ __forceinline__ float to_float(float x) { return x; }
__host__ __device__ __forceinline__ float to_float(bf16 x) { return __bfloat162float(x); }
__host__ __device__ __forceinline__ float to_float(__half x) { return __half2float(x); }
template <typename T>
__host__ __device__ __forceinline__ T from_float(float x);
template <>
__host__ __device__ __forceinline__ float from_float<float>(float x) { return x; }
template <>
__host__ __device__ __forceinline__ bf16 from_float<bf16>(float x) { return __float2bfloat16_rn(x); }
template <>
__host__ __device__ __forceinline__ __half from_float<__half>(float x) { return __float2half_rn(x); }
template <>
__host__ __device__ __forceinline__ double from_float<double>(float x) { return (double)x; }

// Two fp32 values as one bf16x2 register (lo in the low half), the packing of mma fragments.
__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    uint32_t r;
    memcpy(&r, &v, 4);
    return r;
}

// ---- full-warp reductions (butterfly: every lane gets the result, bit-identical on all lanes) -------------------------
// Emulation does the same five xor steps in one warp collective, so the bits are the GPU's.
__device__ __forceinline__ float warp_sum(float x) {
#ifdef RLHF4J_EMU
    return rlhf4j_emu::butterfly<false>(x);
#else
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
#endif
}
__device__ __forceinline__ float warp_max(float x) {
#ifdef RLHF4J_EMU
    return rlhf4j_emu::butterfly<true>(x);
#else
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
#endif
}

// ---- launching ------------------------------------------------------------------------------------------------------
namespace rlhf4j_launch {

// The device's opt-in maximum of dynamic shared memory per block, cached per device.
inline int smem_optin_max(int dev) {
    static int cache[64];
    if (dev >= 0 && dev < 64) {
        int v = __atomic_load_n(&cache[dev], __ATOMIC_RELAXED);
        if (v) return v;
    }
    int v = 48 * 1024;
    if (cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess) v = 48 * 1024;
    if (dev >= 0 && dev < 64) __atomic_store_n(&cache[dev], v, __ATOMIC_RELAXED);
    return v;
}

inline cudaError_t check(dim3 grid, dim3 block, size_t smem, int* dev_out) {
    if (block.x == 0 || block.y == 0 || block.z == 0 || block.x > 1024 || block.y > 1024 || block.z > 64 ||
        (uint64_t)block.x * block.y * block.z > 1024)
        return cudaErrorInvalidConfiguration;
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535)
        return cudaErrorInvalidConfiguration;
    int dev = 0;
    cudaError_t e = cudaGetDevice(&dev);
    if (e != cudaSuccess) return e;
    if (smem > (size_t)smem_optin_max(dev)) return cudaErrorInvalidValue;
    *dev_out = dev;
    return cudaSuccess;
}

#ifndef RLHF4J_EMU
// More than 48 KiB of dynamic shared memory must be asked for per kernel and device; remember what was granted.
inline cudaError_t allow_smem(const void* kernel, int dev, size_t smem) {
    struct Entry {
        const void* kernel;
        int dev;
        size_t smem;
    };
    static std::mutex mu;
    static Entry entries[256];
    static int n = 0;
    std::lock_guard<std::mutex> lock(mu);
    for (int i = 0; i < n; i++)
        if (entries[i].kernel == kernel && entries[i].dev == dev && entries[i].smem >= smem) return cudaSuccess;
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e != cudaSuccess) return e;
    for (int i = 0; i < n; i++)
        if (entries[i].kernel == kernel && entries[i].dev == dev) {
            entries[i].smem = smem;
            return cudaSuccess;
        }
    if (n < 256) entries[n++] = Entry{kernel, dev, smem};
    return cudaSuccess;
}
#else
template <typename K, typename Tuple, size_t... I>
inline void call(K kernel, Tuple& params, std::index_sequence<I...>) {
    kernel(std::get<I>(params)...);  // each thread gets its own copies of the parameters, as on the GPU
}
template <typename K, typename Tuple>
struct Closure {
    K kernel;
    Tuple* params;
    static void run(void* self) {
        Closure* c = static_cast<Closure*>(self);
        call(c->kernel, *c->params, std::make_index_sequence<std::tuple_size<Tuple>::value>());
    }
};
#endif
}  // namespace rlhf4j_launch

// Launches kernel<<<grid, block, smem, stream>>>(args...) after checking the configuration (block <= 1024 threads,
// grid limits, smem <= the device's opt-in maximum, asking for it when > 48 KiB); returns the launch's cudaError_t.
// In emulation the whole grid has run when it returns, and a kernel fault is returned as cudaErrorLaunchFailure with
// the emulator's message in cudaGetErrorString.
template <typename... P, typename... A>
cudaError_t launch_kernel(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                          A&&... args) {
    static_assert(sizeof...(P) == sizeof...(A), "launch_kernel: the number of arguments differs from the kernel's");
    int dev = 0;
    cudaError_t e = rlhf4j_launch::check(grid, block, smem, &dev);
    if (e != cudaSuccess) return e;
#ifdef RLHF4J_EMU
    (void)stream;
    typedef std::tuple<typename std::decay<P>::type...> Params;
    Params params(std::forward<A>(args)...);
    rlhf4j_launch::Closure<void (*)(P...), Params> closure{kernel, &params};
    return (cudaError_t)rlhf4j_emu::launch(grid, block, smem, &decltype(closure)::run, &closure);
#else
    if (smem > 48 * 1024) {
        e = rlhf4j_launch::allow_smem(reinterpret_cast<const void*>(kernel), dev, smem);
        if (e != cudaSuccess) return e;
    }
    kernel<<<grid, block, smem, stream>>>(std::forward<A>(args)...);
    return cudaGetLastError();
#endif
}
