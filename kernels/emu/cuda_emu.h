// CUDA on the CPU: the subset of CUDA C++ that the kernels in kernels/*.cu use, so that g++ compiles the unchanged
// sources into librlhf4j_cuda_emu.so (see shared/notes/kernel-emulation.md and kernels/emu/README.md).
//
// Model: a launch runs the whole grid before it returns. Blocks are spread over OpenMP threads; the threads of one
// block run as cooperative fibers on one OS thread. A fiber runs until it reaches a synchronisation point
// (__syncthreads, a warp collective: shuffle, vote, __syncwarp, mma, ldmatrix) and then hands over to the next fiber
// of the block in the schedule's order (rlhf4j_emu_set_schedule: lanes in order, reversed, or shuffled). So between
// two synchronisation points the threads run one after another, and a missing barrier or a shared-memory race gives
// different results under different schedules. Those three move all warps of a block in lockstep through each warp
// collective, which hides a missing __syncthreads between warps that do mma/ldmatrix/shuffles; the warp-serial
// schedules 3 and 4 run one warp at a time until it waits at __syncthreads, which does not.
//
// A warp collective waits only for the lanes its mask names (that exist: a partial last warp has fewer); when the last
// of them arrives it computes every lane's result at once, from the values each lane passed. A __syncthreads waits for
// all threads of the block. The runtime reports, as a failed launch (cudaErrorLaunchFailure, with the message in
// cudaGetErrorString and on stderr): a thread that exits while others wait at __syncthreads, a lane named in a mask
// that has exited, lanes of one warp at different collectives or with different masks, a deadlock, __trap().
//
// Not emulated: speed, the weak memory model (all memory is coherent at once), the exact rounding of the tensor cores
// and of the fast math intrinsics (__expf is expf here), compiler bugs.
#pragma once
#ifndef RLHF4J_EMU
#error "cuda_emu.h is the CPU emulation of CUDA; compile with -DRLHF4J_EMU"
#endif

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmath>
#include <tuple>
#include <type_traits>
#include <utility>

// ---- qualifiers -----------------------------------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __constant__
#define __managed__
#define __grid_constant__
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __device_builtin__
// One copy per OS thread, and a block's fibers all run on one OS thread: so one copy per running block. (Dynamic
// shared memory cannot be declared this way: use RLHF4J_DYNAMIC_SMEM from common.cuh.)
#define __shared__ static thread_local

#define RLHF4J_EMU_HIDDEN __attribute__((visibility("hidden")))
#define RLHF4J_EMU_EXPORT extern "C" __attribute__((visibility("default")))

// ---- vector types ---------------------------------------------------------------------------------------------------
#define RLHF4J_EMU_VEC2(T, N, A)                                                                                       \
    struct __attribute__((aligned(A))) N##2 { T x, y; };                                                               \
    static inline N##2 make_##N##2(T x, T y) { return N##2{x, y}; }
#define RLHF4J_EMU_VEC3(T, N)                                                                                          \
    struct N##3 { T x, y, z; };                                                                                        \
    static inline N##3 make_##N##3(T x, T y, T z) { return N##3{x, y, z}; }
#define RLHF4J_EMU_VEC4(T, N, A)                                                                                       \
    struct __attribute__((aligned(A))) N##4 { T x, y, z, w; };                                                         \
    static inline N##4 make_##N##4(T x, T y, T z, T w) { return N##4{x, y, z, w}; }
RLHF4J_EMU_VEC2(signed char, char, 2)
RLHF4J_EMU_VEC4(signed char, char, 4)
RLHF4J_EMU_VEC2(unsigned char, uchar, 2)
RLHF4J_EMU_VEC4(unsigned char, uchar, 4)
RLHF4J_EMU_VEC2(short, short, 4)
RLHF4J_EMU_VEC4(short, short, 8)
RLHF4J_EMU_VEC2(unsigned short, ushort, 4)
RLHF4J_EMU_VEC4(unsigned short, ushort, 8)
RLHF4J_EMU_VEC2(int, int, 8)
RLHF4J_EMU_VEC3(int, int)
RLHF4J_EMU_VEC4(int, int, 16)
RLHF4J_EMU_VEC2(unsigned int, uint, 8)
RLHF4J_EMU_VEC3(unsigned int, uint)
RLHF4J_EMU_VEC4(unsigned int, uint, 16)
RLHF4J_EMU_VEC2(long long, longlong, 16)
RLHF4J_EMU_VEC2(unsigned long long, ulonglong, 16)
RLHF4J_EMU_VEC2(float, float, 8)
RLHF4J_EMU_VEC3(float, float)
RLHF4J_EMU_VEC4(float, float, 16)
RLHF4J_EMU_VEC2(double, double, 16)
#undef RLHF4J_EMU_VEC2
#undef RLHF4J_EMU_VEC3
#undef RLHF4J_EMU_VEC4

struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
    constexpr operator uint3() const { return uint3{x, y, z}; }
};

// The running fiber's coordinates (set by the scheduler before it resumes a fiber).
extern RLHF4J_EMU_HIDDEN __thread uint3 threadIdx;
extern RLHF4J_EMU_HIDDEN __thread uint3 blockIdx;
extern RLHF4J_EMU_HIDDEN __thread uint3 blockDim;
extern RLHF4J_EMU_HIDDEN __thread uint3 gridDim;
static constexpr int warpSize = 32;

// ---- the runtime (kernels/emu/cuda_emu.cpp) -------------------------------------------------------------------------
namespace rlhf4j_emu {

// Kinds of warp collectives: lanes meeting at one collective must agree on it (and on the mask).
enum Collective : int {
    COLL_SYNCWARP = 1, COLL_SHFL_IDX, COLL_SHFL_UP, COLL_SHFL_DOWN, COLL_SHFL_XOR, COLL_VOTE, COLL_MATCH_ANY,
    COLL_MATCH_ALL, COLL_REDUCE, COLL_WARP_SUM, COLL_WARP_MAX, COLL_MMA, COLL_LDMATRIX,
};
// The function that completes a collective, called once, on the last lane to arrive: data[l] is what lane l passed
// (nullptr for lanes not in mask), mask the lanes that take part (the caller's mask less lanes that do not exist).
typedef void (*CollectiveFn)(void* const* data, uint32_t mask);

RLHF4J_EMU_HIDDEN void syncthreads();
RLHF4J_EMU_HIDDEN int syncthreads_count(int pred);  // how many threads passed a non-zero pred
RLHF4J_EMU_HIDDEN void warp_collective(uint32_t mask, int kind, void* data, CollectiveFn fn);
RLHF4J_EMU_HIDDEN unsigned lane_id();
RLHF4J_EMU_HIDDEN uint32_t active_mask();      // lanes of this warp that exist and have not exited
RLHF4J_EMU_HIDDEN uint32_t existing_lanes();   // lanes of this warp that exist (a partial last warp has fewer)
RLHF4J_EMU_HIDDEN void* dynamic_smem();         // this block's dynamic shared memory (ends against a guard page)
RLHF4J_EMU_HIDDEN size_t dynamic_smem_size();
// Ends the running block with an error (the launch then fails and says why). Callable only inside a kernel.
[[noreturn]] RLHF4J_EMU_HIDDEN void fault(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
// cp.async, deferred: the copies of a group land when a cp_async_wait covers the group (at issue under schedule 3).
RLHF4J_EMU_HIDDEN void cp_async(void* smem, const void* gmem, int bytes, bool zfill);
RLHF4J_EMU_HIDDEN void cp_async_commit();
RLHF4J_EMU_HIDDEN void cp_async_wait(int n);
// Runs body(ctx) as every thread of every block; returns cudaSuccess (0) or cudaErrorLaunchFailure with the message.
RLHF4J_EMU_HIDDEN int launch(dim3 grid, dim3 block, size_t smem, void (*body)(void*), void* ctx);
// 0: lanes in order between barriers, 1: reversed, 2: shuffled with the seed, 3: warp-serial, copies at issue,
// 4: warp-serial reversed, copies at the wait (rlhf4j_emu_set_schedule below).
RLHF4J_EMU_HIDDEN int schedule();
// Faults are printed on stderr unless quiet (or RLHF4J_EMU_QUIET is set); the launch's error string has them anyway.
RLHF4J_EMU_HIDDEN void set_quiet(bool quiet);

template <typename T>
static inline T poison() {  // what a lane reads from a lane that does not take part: all bits set (NaN in f32/bf16)
    T v;
    memset(static_cast<void*>(&v), 0xff, sizeof v);
    return v;
}
}  // namespace rlhf4j_emu

// The schedule hooks, exported from librlhf4j_cuda_emu.so (the Java tests bind them). mode 0: the threads of a block
// run in order between synchronisation points; 1: in reverse (blocks too); 2: shuffled with seed, anew after each
// __syncthreads. Under 0-2 every warp gets one turn per warp collective, so the warps of a block move in lockstep
// through their mma/ldmatrix/shuffles and a missing __syncthreads between warps that only communicate across such
// collectives (or across a cp.async landed at the wait) goes unseen. Warp-serial modes: 3: the warps run one at a
// time, in order (lanes in order), each until all its lanes wait at __syncthreads or have exited, and cp.async lands
// when it is issued (so another warp sees the copy before any wait); 4: the same with warps, lanes and blocks
// reversed, and cp.async landing at the covering wait. A kernel is right under all five only if its results agree.
// Out-of-range modes mean 0. RLHF4J_EMU_SCHEDULE=mode[:seed] in the environment sets the initial one.
RLHF4J_EMU_EXPORT void rlhf4j_emu_set_schedule(int32_t mode, uint64_t seed);
RLHF4J_EMU_EXPORT int32_t rlhf4j_emu_get_schedule(void);

// ---- bf16 and half ------------------------------------------------------------------------------------------------
namespace rlhf4j_emu {
static inline uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline unsigned short f2bf_rn(float f) {  // as cvt.rn.bf16.f32: round to nearest even, NaN -> 0x7fff
    uint32_t u = f2u(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fffu;
    u += 0x7fffu + ((u >> 16) & 1u);
    return (unsigned short)(u >> 16);
}
static inline unsigned short f2bf_rz(float f) {
    uint32_t u = f2u(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fffu;
    return (unsigned short)(u >> 16);
}
static inline float bf2f(unsigned short h) { return u2f((uint32_t)h << 16); }
static inline float h2f(unsigned short h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, u;
    if (exp == 0) {
        if (mant == 0) {
            u = sign;
        } else {
            int e = -1;
            do { e++; mant <<= 1; } while ((mant & 0x400) == 0);
            u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mant & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (mant << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    return u2f(u);
}
static inline unsigned short f2h_rn(float f) {
    uint32_t u = f2u(f), sign = (u >> 16) & 0x8000, a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return 0x7fffu;
    if (a >= 0x477ff000u) return (unsigned short)(sign | 0x7c00);
    if (a < 0x38800000u) {
        if (a < 0x33000000u) return (unsigned short)sign;
        uint32_t e = a >> 23, m = (a & 0x7fffff) | 0x800000, shift = 126 - e;
        uint32_t half = m >> shift, rem = m & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (unsigned short)(sign | half);
    }
    uint32_t r = a + 0xfffu + ((a >> 13) & 1u) - (112u << 23);
    return (unsigned short)(sign | (r >> 13));
}
}  // namespace rlhf4j_emu

struct __nv_bfloat16_raw { unsigned short x; };
struct __nv_bfloat162_raw { unsigned short x, y; };
struct __half_raw { unsigned short x; };
struct __half2_raw { unsigned short x, y; };

struct __attribute__((aligned(2))) __nv_bfloat16 {
    unsigned short __x;
    __nv_bfloat16() = default;
    constexpr __nv_bfloat16(const __nv_bfloat16_raw& r) : __x(r.x) {}
    __nv_bfloat16(float f) : __x(rlhf4j_emu::f2bf_rn(f)) {}
    __nv_bfloat16(double f) : __x(rlhf4j_emu::f2bf_rn((float)f)) {}
    __nv_bfloat16(int v) : __x(rlhf4j_emu::f2bf_rn((float)v)) {}
    __nv_bfloat16(unsigned int v) : __x(rlhf4j_emu::f2bf_rn((float)v)) {}
    __nv_bfloat16(long long v) : __x(rlhf4j_emu::f2bf_rn((float)v)) {}
    __nv_bfloat16(unsigned long long v) : __x(rlhf4j_emu::f2bf_rn((float)v)) {}
    __nv_bfloat16& operator=(const __nv_bfloat16_raw& r) { __x = r.x; return *this; }
    __nv_bfloat16& operator=(float f) { __x = rlhf4j_emu::f2bf_rn(f); return *this; }
    __nv_bfloat16& operator=(double f) { __x = rlhf4j_emu::f2bf_rn((float)f); return *this; }
    operator __nv_bfloat16_raw() const { return __nv_bfloat16_raw{__x}; }
    operator float() const { return rlhf4j_emu::bf2f(__x); }
    explicit operator bool() const { return (__x & 0x7fffu) != 0; }
    explicit operator int() const { return (int)rlhf4j_emu::bf2f(__x); }
};
struct __attribute__((aligned(4))) __nv_bfloat162 {
    __nv_bfloat16 x, y;
    __nv_bfloat162() = default;
    constexpr __nv_bfloat162(const __nv_bfloat16& a, const __nv_bfloat16& b) : x(a), y(b) {}
    __nv_bfloat162(const __nv_bfloat162_raw& r) : x(__nv_bfloat16_raw{r.x}), y(__nv_bfloat16_raw{r.y}) {}
    operator __nv_bfloat162_raw() const { return __nv_bfloat162_raw{x.__x, y.__x}; }
};
struct __attribute__((aligned(2))) __half {
    unsigned short __x;
    __half() = default;
    constexpr __half(const __half_raw& r) : __x(r.x) {}
    __half(float f) : __x(rlhf4j_emu::f2h_rn(f)) {}
    __half(double f) : __x(rlhf4j_emu::f2h_rn((float)f)) {}
    __half(int v) : __x(rlhf4j_emu::f2h_rn((float)v)) {}
    __half& operator=(const __half_raw& r) { __x = r.x; return *this; }
    __half& operator=(float f) { __x = rlhf4j_emu::f2h_rn(f); return *this; }
    operator __half_raw() const { return __half_raw{__x}; }
    operator float() const { return rlhf4j_emu::h2f(__x); }
};
struct __attribute__((aligned(4))) __half2 {
    __half x, y;
    __half2() = default;
    constexpr __half2(const __half& a, const __half& b) : x(a), y(b) {}
};
typedef __half half;
typedef __half2 half2;
typedef __nv_bfloat16 nv_bfloat16;
typedef __nv_bfloat162 nv_bfloat162;

#define RLHF4J_EMU_H16_OPS(T, TO, FROM)                                                                               \
    static inline T operator+(const T& a, const T& b) { return T(TO(a) + TO(b)); }                                     \
    static inline T operator-(const T& a, const T& b) { return T(TO(a) - TO(b)); }                                     \
    static inline T operator*(const T& a, const T& b) { return T(TO(a) * TO(b)); }                                     \
    static inline T operator/(const T& a, const T& b) { return T(TO(a) / TO(b)); }                                     \
    static inline T& operator+=(T& a, const T& b) { return a = a + b; }                                                \
    static inline T& operator-=(T& a, const T& b) { return a = a - b; }                                                \
    static inline T& operator*=(T& a, const T& b) { return a = a * b; }                                                \
    static inline T& operator/=(T& a, const T& b) { return a = a / b; }                                                \
    static inline T operator+(const T& a) { return a; }                                                                \
    static inline T operator-(const T& a) { T r = a; r.__x ^= 0x8000u; return r; }                                     \
    static inline bool operator==(const T& a, const T& b) { return TO(a) == TO(b); }                                   \
    static inline bool operator!=(const T& a, const T& b) { return TO(a) != TO(b); }                                   \
    static inline bool operator<(const T& a, const T& b) { return TO(a) < TO(b); }                                     \
    static inline bool operator>(const T& a, const T& b) { return TO(a) > TO(b); }                                     \
    static inline bool operator<=(const T& a, const T& b) { return TO(a) <= TO(b); }                                   \
    static inline bool operator>=(const T& a, const T& b) { return TO(a) >= TO(b); }
static inline float rlhf4j_emu_bf(const __nv_bfloat16& a) { return rlhf4j_emu::bf2f(a.__x); }
static inline float rlhf4j_emu_h(const __half& a) { return rlhf4j_emu::h2f(a.__x); }
RLHF4J_EMU_H16_OPS(__nv_bfloat16, rlhf4j_emu_bf, )
RLHF4J_EMU_H16_OPS(__half, rlhf4j_emu_h, )
#undef RLHF4J_EMU_H16_OPS

static inline __nv_bfloat16 rlhf4j_emu_mkbf(unsigned short x) { return __nv_bfloat16(__nv_bfloat16_raw{x}); }
static inline __half rlhf4j_emu_mkh(unsigned short x) { return __half(__half_raw{x}); }

static inline __nv_bfloat16 __float2bfloat16(float f) { return rlhf4j_emu_mkbf(rlhf4j_emu::f2bf_rn(f)); }
static inline __nv_bfloat16 __float2bfloat16_rn(float f) { return rlhf4j_emu_mkbf(rlhf4j_emu::f2bf_rn(f)); }
static inline __nv_bfloat16 __float2bfloat16_rz(float f) { return rlhf4j_emu_mkbf(rlhf4j_emu::f2bf_rz(f)); }
static inline __nv_bfloat16 __double2bfloat16(double f) { return rlhf4j_emu_mkbf(rlhf4j_emu::f2bf_rn((float)f)); }
static inline __nv_bfloat16 __int2bfloat16_rn(int v) { return rlhf4j_emu_mkbf(rlhf4j_emu::f2bf_rn((float)v)); }
static inline float __bfloat162float(__nv_bfloat16 h) { return rlhf4j_emu::bf2f(h.__x); }
static inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.__x; }
static inline short __bfloat16_as_short(__nv_bfloat16 h) { return (short)h.__x; }
static inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short x) { return rlhf4j_emu_mkbf(x); }
static inline __nv_bfloat16 __short_as_bfloat16(short x) { return rlhf4j_emu_mkbf((unsigned short)x); }
static inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) {
    return __nv_bfloat162(__float2bfloat16_rn(a), __float2bfloat16_rn(b));
}
static inline __nv_bfloat162 __float22bfloat162_rn(float2 v) { return __floats2bfloat162_rn(v.x, v.y); }
static inline __nv_bfloat162 __float2bfloat162_rn(float a) { return __floats2bfloat162_rn(a, a); }
static inline __nv_bfloat162 __bfloat162bfloat162(__nv_bfloat16 a) { return __nv_bfloat162(a, a); }
static inline __nv_bfloat162 __halves2bfloat162(__nv_bfloat16 a, __nv_bfloat16 b) { return __nv_bfloat162(a, b); }
static inline __nv_bfloat162 make_bfloat162(__nv_bfloat16 a, __nv_bfloat16 b) { return __nv_bfloat162(a, b); }
static inline float2 __bfloat1622float2(__nv_bfloat162 v) { return float2{__bfloat162float(v.x), __bfloat162float(v.y)}; }
static inline float __low2float(__nv_bfloat162 v) { return __bfloat162float(v.x); }
static inline float __high2float(__nv_bfloat162 v) { return __bfloat162float(v.y); }
static inline __nv_bfloat16 __low2bfloat16(__nv_bfloat162 v) { return v.x; }
static inline __nv_bfloat16 __high2bfloat16(__nv_bfloat162 v) { return v.y; }
static inline __nv_bfloat16 __hadd(__nv_bfloat16 a, __nv_bfloat16 b) { return a + b; }
static inline __nv_bfloat16 __hsub(__nv_bfloat16 a, __nv_bfloat16 b) { return a - b; }
static inline __nv_bfloat16 __hmul(__nv_bfloat16 a, __nv_bfloat16 b) { return a * b; }
static inline __nv_bfloat16 __hdiv(__nv_bfloat16 a, __nv_bfloat16 b) { return a / b; }
static inline __nv_bfloat16 __hneg(__nv_bfloat16 a) { return -a; }
static inline __nv_bfloat16 __habs(__nv_bfloat16 a) { a.__x &= 0x7fffu; return a; }
static inline __nv_bfloat16 __hfma(__nv_bfloat16 a, __nv_bfloat16 b, __nv_bfloat16 c) {
    return __float2bfloat16_rn(fmaf(__bfloat162float(a), __bfloat162float(b), __bfloat162float(c)));
}
static inline __nv_bfloat16 __hmax(__nv_bfloat16 a, __nv_bfloat16 b) {
    return __float2bfloat16_rn(fmaxf(__bfloat162float(a), __bfloat162float(b)));
}
static inline __nv_bfloat16 __hmin(__nv_bfloat16 a, __nv_bfloat16 b) {
    return __float2bfloat16_rn(fminf(__bfloat162float(a), __bfloat162float(b)));
}
static inline bool __hisnan(__nv_bfloat16 a) { return (a.__x & 0x7fffu) > 0x7f80u; }
static inline bool __hisinf(__nv_bfloat16 a) { return (a.__x & 0x7fffu) == 0x7f80u; }
static inline __nv_bfloat162 __hadd2(__nv_bfloat162 a, __nv_bfloat162 b) { return {a.x + b.x, a.y + b.y}; }
static inline __nv_bfloat162 __hsub2(__nv_bfloat162 a, __nv_bfloat162 b) { return {a.x - b.x, a.y - b.y}; }
static inline __nv_bfloat162 __hmul2(__nv_bfloat162 a, __nv_bfloat162 b) { return {a.x * b.x, a.y * b.y}; }
static inline __nv_bfloat162 __hfma2(__nv_bfloat162 a, __nv_bfloat162 b, __nv_bfloat162 c) {
    return {__hfma(a.x, b.x, c.x), __hfma(a.y, b.y, c.y)};
}
static inline __nv_bfloat162 __hmax2(__nv_bfloat162 a, __nv_bfloat162 b) { return {__hmax(a.x, b.x), __hmax(a.y, b.y)}; }

static inline __half __float2half(float f) { return rlhf4j_emu_mkh(rlhf4j_emu::f2h_rn(f)); }
static inline __half __float2half_rn(float f) { return rlhf4j_emu_mkh(rlhf4j_emu::f2h_rn(f)); }
static inline float __half2float(__half h) { return rlhf4j_emu::h2f(h.__x); }
static inline unsigned short __half_as_ushort(__half h) { return h.__x; }
static inline short __half_as_short(__half h) { return (short)h.__x; }
static inline __half __ushort_as_half(unsigned short x) { return rlhf4j_emu_mkh(x); }
static inline __half __short_as_half(short x) { return rlhf4j_emu_mkh((unsigned short)x); }
static inline __half2 __floats2half2_rn(float a, float b) { return __half2(__float2half_rn(a), __float2half_rn(b)); }
static inline __half2 __float22half2_rn(float2 v) { return __floats2half2_rn(v.x, v.y); }
static inline float2 __half22float2(__half2 v) { return float2{__half2float(v.x), __half2float(v.y)}; }
static inline __half2 __halves2half2(__half a, __half b) { return __half2(a, b); }
static inline __half __low2half(__half2 v) { return v.x; }
static inline __half __high2half(__half2 v) { return v.y; }
static inline __half __hadd(__half a, __half b) { return a + b; }
static inline __half __hmul(__half a, __half b) { return a * b; }
static inline bool __hisnan(__half a) { return (a.__x & 0x7fffu) > 0x7c00u; }

// ---- math, bit and conversion intrinsics ----------------------------------------------------------------------------
// The fast intrinsics are the accurate functions here; on the GPU they are a few ulp off (see the PTX ISA).
// glibc declares (and does not export) __expf and friends, so these are macros, defined after <math.h>.
#define __expf(x) expf(x)
#define __exp10f(x) exp10f(x)
#define __logf(x) logf(x)
#define __log2f(x) log2f(x)
#define __log10f(x) log10f(x)
#define __sinf(x) sinf(x)
#define __cosf(x) cosf(x)
#define __tanf(x) tanf(x)
#define __tanhf(x) tanhf(x)
#define __powf(x, y) powf(x, y)
#define __sincosf(x, s, c) sincosf(x, s, c)
static inline float __fdividef(float a, float b) { return a / b; }
static inline float __frcp_rn(float x) { return 1.0f / x; }
static inline float __fsqrt_rn(float x) { return sqrtf(x); }
static inline float __frsqrt_rn(float x) { return 1.0f / sqrtf(x); }
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline double rsqrt(double x) { return 1.0 / sqrt(x); }
static inline float rcbrtf(float x) { return 1.0f / cbrtf(x); }
static inline float __saturatef(float x) { return x != x ? 0.0f : fminf(fmaxf(x, 0.0f), 1.0f); }
static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline double __dadd_rn(double a, double b) { return a + b; }
static inline double __dmul_rn(double a, double b) { return a * b; }
static inline double __fma_rn(double a, double b, double c) { return fma(a, b, c); }
static inline float __int_as_float(int v) { float f; memcpy(&f, &v, 4); return f; }
static inline int __float_as_int(float f) { int v; memcpy(&v, &f, 4); return v; }
static inline float __uint_as_float(unsigned v) { float f; memcpy(&f, &v, 4); return f; }
static inline unsigned __float_as_uint(float f) { unsigned v; memcpy(&v, &f, 4); return v; }
static inline double __longlong_as_double(long long v) { double f; memcpy(&f, &v, 8); return f; }
static inline long long __double_as_longlong(double f) { long long v; memcpy(&v, &f, 8); return v; }
static inline float __double2float_rn(double x) { return (float)x; }
static inline int __float2int_rn(float x) { return (int)nearbyintf(x); }
static inline int __float2int_rz(float x) { return (int)x; }
static inline int __float2int_rd(float x) { return (int)floorf(x); }
static inline int __float2int_ru(float x) { return (int)ceilf(x); }
static inline unsigned __float2uint_rn(float x) { return (unsigned)nearbyintf(x); }
static inline unsigned __float2uint_rz(float x) { return (unsigned)x; }
static inline long long __float2ll_rn(float x) { return (long long)nearbyintf(x); }
static inline long long __float2ll_rz(float x) { return (long long)x; }
static inline float __int2float_rn(int x) { return (float)x; }
static inline float __uint2float_rn(unsigned x) { return (float)x; }
static inline float __ll2float_rn(long long x) { return (float)x; }
static inline double __int2double_rn(int x) { return (double)x; }
static inline int __popc(unsigned x) { return __builtin_popcount(x); }
static inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
static inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
static inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }
static inline int __ffs(int x) { return __builtin_ffs(x); }
static inline int __ffsll(long long x) { return __builtin_ffsll(x); }
static inline unsigned __brev(unsigned x) {
    x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
    x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
    x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
    return __builtin_bswap32(x);
}
static inline unsigned __byte_perm(unsigned x, unsigned y, unsigned s) {
    uint64_t v = ((uint64_t)y << 32) | x;
    unsigned r = 0;
    for (int i = 0; i < 4; i++) r |= (unsigned)((v >> (8 * ((s >> (4 * i)) & 7))) & 0xff) << (8 * i);
    return r;
}
static inline unsigned __funnelshift_l(unsigned lo, unsigned hi, unsigned s) {
    return (unsigned)(((((uint64_t)hi << 32) | lo) << (s & 31)) >> 32);
}
static inline unsigned __funnelshift_r(unsigned lo, unsigned hi, unsigned s) {
    return (unsigned)((((uint64_t)hi << 32) | lo) >> (s & 31));
}
static inline int __mul24(int a, int b) { return ((a << 8) >> 8) * ((b << 8) >> 8); }
static inline unsigned __umul24(unsigned a, unsigned b) { return (a & 0xffffffu) * (b & 0xffffffu); }
static inline int __mulhi(int a, int b) { return (int)(((long long)a * b) >> 32); }
static inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((unsigned long long)a * b) >> 32); }
static inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
    return (unsigned long long)(((unsigned __int128)a * b) >> 64);
}
static inline long long __mul64hi(long long a, long long b) { return (long long)(((__int128)a * b) >> 64); }
static inline long long clock64() { return (long long)__builtin_ia32_rdtsc(); }
static inline void __nanosleep(unsigned) {}

// CUDA's overloaded min/max of device code (and of its host headers).
#define RLHF4J_EMU_MINMAX(T)                                                                                           \
    static inline T min(T a, T b) { return a < b ? a : b; }                                                            \
    static inline T max(T a, T b) { return a > b ? a : b; }
RLHF4J_EMU_MINMAX(int)
RLHF4J_EMU_MINMAX(unsigned int)
RLHF4J_EMU_MINMAX(long)
RLHF4J_EMU_MINMAX(unsigned long)
RLHF4J_EMU_MINMAX(long long)
RLHF4J_EMU_MINMAX(unsigned long long)
#undef RLHF4J_EMU_MINMAX
static inline float min(float a, float b) { return fminf(a, b); }
static inline float max(float a, float b) { return fmaxf(a, b); }
static inline double min(double a, double b) { return fmin(a, b); }
static inline double max(double a, double b) { return fmax(a, b); }
static inline unsigned min(int a, unsigned b) { return min((unsigned)a, b); }
static inline unsigned min(unsigned a, int b) { return min(a, (unsigned)b); }
static inline unsigned max(int a, unsigned b) { return max((unsigned)a, b); }
static inline unsigned max(unsigned a, int b) { return max(a, (unsigned)b); }
static inline double min(float a, double b) { return fmin(a, b); }
static inline double min(double a, float b) { return fmin(a, b); }
static inline double max(float a, double b) { return fmax(a, b); }
static inline double max(double a, float b) { return fmax(a, b); }

// Cache-hinted loads and stores: plain accesses here.
template <typename T> static inline T __ldg(const T* p) { return *p; }
template <typename T> static inline T __ldca(const T* p) { return *p; }
template <typename T> static inline T __ldcg(const T* p) { return *p; }
template <typename T> static inline T __ldcs(const T* p) { return *p; }
template <typename T> static inline T __ldlu(const T* p) { return *p; }
template <typename T> static inline T __ldcv(const T* p) { return *p; }
template <typename T> static inline void __stwb(T* p, T v) { *p = v; }
template <typename T> static inline void __stcg(T* p, T v) { *p = v; }
template <typename T> static inline void __stcs(T* p, T v) { *p = v; }
template <typename T> static inline void __stwt(T* p, T v) { *p = v; }
static inline size_t __cvta_generic_to_shared(const void* p) { return (size_t)p; }

// ---- barriers, fences ---------------------------------------------------------------------------------------------
static inline void __syncthreads() { rlhf4j_emu::syncthreads(); }
static inline int __syncthreads_count(int pred) { return rlhf4j_emu::syncthreads_count(pred != 0); }
static inline int __syncthreads_and(int pred) {
    return rlhf4j_emu::syncthreads_count(pred != 0) == (int)(blockDim.x * blockDim.y * blockDim.z);
}
static inline int __syncthreads_or(int pred) { return rlhf4j_emu::syncthreads_count(pred != 0) != 0; }
static inline void __syncwarp(unsigned mask = 0xffffffffu) {
    rlhf4j_emu::warp_collective(mask, rlhf4j_emu::COLL_SYNCWARP, nullptr, [](void* const*, uint32_t) {});
}
static inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
static inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
static inline void __threadfence_system() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
[[noreturn]] static inline void __trap() { rlhf4j_emu::fault("__trap() called"); }
[[noreturn]] static inline void __brkpt() { rlhf4j_emu::fault("__brkpt() called"); }
static inline unsigned __activemask() { return rlhf4j_emu::active_mask(); }

// ---- warp shuffles, votes, matches, reductions ----------------------------------------------------------------------
namespace rlhf4j_emu {
template <typename T>
struct ShflData {
    T val;
    int src;  // lane to read, or -1: keep the own value
    T out;
};
template <typename T>
static void shfl_complete(void* const* data, uint32_t mask) {
    for (int l = 0; l < 32; l++) {
        if (!(mask >> l & 1)) continue;
        ShflData<T>* d = static_cast<ShflData<T>*>(data[l]);
        if (d->src < 0) d->out = d->val;
        else if (mask >> d->src & 1) d->out = static_cast<ShflData<T>*>(data[d->src])->val;
        else d->out = poison<T>();  // reading a lane that does not take part is undefined on the GPU
    }
}
template <typename T>
static inline T shfl(uint32_t mask, int kind, T v, int src) {
    static_assert(std::is_trivially_copyable<T>::value && sizeof(T) <= 16, "shuffle of an unsupported type");
    ShflData<T> d;
    d.val = v;
    d.src = src;
    warp_collective(mask, kind, &d, &shfl_complete<T>);
    return d.out;
}
static inline int check_width(int width) {
    if (width < 1 || width > 32 || (width & (width - 1)) != 0) fault("shuffle width %d is not a power of 2 <= 32", width);
    return width;
}
}  // namespace rlhf4j_emu

template <typename T>
static inline T __shfl_sync(unsigned mask, T var, int srcLane, int width = 32) {
    int lane = (int)rlhf4j_emu::lane_id(), w = rlhf4j_emu::check_width(width);
    return rlhf4j_emu::shfl(mask, rlhf4j_emu::COLL_SHFL_IDX, var, (lane & ~(w - 1)) + (srcLane & (w - 1)));
}
template <typename T>
static inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = 32) {
    int lane = (int)rlhf4j_emu::lane_id(), w = rlhf4j_emu::check_width(width);
    int src = (lane & (w - 1)) - (int)delta < 0 ? -1 : lane - (int)delta;
    return rlhf4j_emu::shfl(mask, rlhf4j_emu::COLL_SHFL_UP, var, src);
}
template <typename T>
static inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = 32) {
    int lane = (int)rlhf4j_emu::lane_id(), w = rlhf4j_emu::check_width(width);
    int src = (lane & (w - 1)) + (int)delta >= w ? -1 : lane + (int)delta;
    return rlhf4j_emu::shfl(mask, rlhf4j_emu::COLL_SHFL_DOWN, var, src);
}
template <typename T>
static inline T __shfl_xor_sync(unsigned mask, T var, int laneMask, int width = 32) {
    int lane = (int)rlhf4j_emu::lane_id(), w = rlhf4j_emu::check_width(width);
    int src = lane ^ (laneMask & 31);
    if (src >= ((lane / w) + 1) * w) src = -1;  // a later group of width lanes: the own value
    return rlhf4j_emu::shfl(mask, rlhf4j_emu::COLL_SHFL_XOR, var, src);
}

namespace rlhf4j_emu {
struct VoteData {
    unsigned pred;
    unsigned out;
};
static inline void vote_complete(void* const* data, uint32_t mask) {
    unsigned ballot = 0;
    for (int l = 0; l < 32; l++)
        if ((mask >> l & 1) && static_cast<VoteData*>(data[l])->pred) ballot |= 1u << l;
    for (int l = 0; l < 32; l++)
        if (mask >> l & 1) static_cast<VoteData*>(data[l])->out = ballot;
}
static inline unsigned vote(unsigned mask, int pred) {
    VoteData d{pred != 0, 0};
    warp_collective(mask, COLL_VOTE, &d, &vote_complete);
    return d.out;
}
struct MatchData {
    unsigned long long val;
    unsigned out;
};
static inline void match_any_complete(void* const* data, uint32_t mask) {
    for (int l = 0; l < 32; l++) {
        if (!(mask >> l & 1)) continue;
        MatchData* d = static_cast<MatchData*>(data[l]);
        unsigned m = 0;
        for (int j = 0; j < 32; j++)
            if ((mask >> j & 1) && static_cast<MatchData*>(data[j])->val == d->val) m |= 1u << j;
        d->out = m;
    }
}
static inline void match_all_complete(void* const* data, uint32_t mask) {
    int first = __builtin_ctz(mask);
    bool same = true;
    for (int j = 0; j < 32; j++)
        if ((mask >> j & 1) && static_cast<MatchData*>(data[j])->val != static_cast<MatchData*>(data[first])->val)
            same = false;
    for (int l = 0; l < 32; l++)
        if (mask >> l & 1) static_cast<MatchData*>(data[l])->out = same ? mask : 0;
}
template <typename T>
static inline unsigned long long match_bits(T v) {
    static_assert(sizeof(T) == 4 || sizeof(T) == 8, "__match_*_sync takes 32- or 64-bit values");
    unsigned long long b = 0;
    memcpy(&b, &v, sizeof v);
    return b;
}
template <typename T>
struct ReduceData {
    T val;
    int op;
    T out;
};
template <typename T>
static void reduce_complete(void* const* data, uint32_t mask) {
    int first = __builtin_ctz(mask), op = static_cast<ReduceData<T>*>(data[first])->op;
    T r = static_cast<ReduceData<T>*>(data[first])->val;
    for (int j = first + 1; j < 32; j++) {
        if (!(mask >> j & 1)) continue;
        ReduceData<T>* d = static_cast<ReduceData<T>*>(data[j]);
        if (d->op != op) fault("__reduce_*_sync: lanes %d and %d reduce with different operations", first, j);
        switch (op) {
            case 0: r = (T)(r + d->val); break;
            case 1: r = d->val < r ? d->val : r; break;
            case 2: r = d->val > r ? d->val : r; break;
            case 3: r = r & d->val; break;
            case 4: r = r | d->val; break;
            default: r = r ^ d->val; break;
        }
    }
    for (int l = 0; l < 32; l++)
        if (mask >> l & 1) static_cast<ReduceData<T>*>(data[l])->out = r;
}
template <typename T>
static inline T reduce(unsigned mask, T v, int op) {
    ReduceData<T> d{v, op, T()};
    warp_collective(mask, COLL_REDUCE, &d, &reduce_complete<T>);
    return d.out;
}
}  // namespace rlhf4j_emu

static inline unsigned __ballot_sync(unsigned mask, int pred) { return rlhf4j_emu::vote(mask, pred); }
static inline int __any_sync(unsigned mask, int pred) { return rlhf4j_emu::vote(mask, pred) != 0; }
static inline int __all_sync(unsigned mask, int pred) {
    unsigned eff = mask & rlhf4j_emu::existing_lanes();
    return (rlhf4j_emu::vote(mask, pred) & eff) == eff;
}
static inline int __uni_sync(unsigned mask, int pred) {
    unsigned eff = mask & rlhf4j_emu::existing_lanes(), b = rlhf4j_emu::vote(mask, pred) & eff;
    return b == 0 || b == eff;
}
template <typename T>
static inline unsigned __match_any_sync(unsigned mask, T value) {
    rlhf4j_emu::MatchData d{rlhf4j_emu::match_bits(value), 0};
    rlhf4j_emu::warp_collective(mask, rlhf4j_emu::COLL_MATCH_ANY, &d, &rlhf4j_emu::match_any_complete);
    return d.out;
}
template <typename T>
static inline unsigned __match_all_sync(unsigned mask, T value, int* pred) {
    rlhf4j_emu::MatchData d{rlhf4j_emu::match_bits(value), 0};
    rlhf4j_emu::warp_collective(mask, rlhf4j_emu::COLL_MATCH_ALL, &d, &rlhf4j_emu::match_all_complete);
    *pred = d.out != 0;
    return d.out;
}
static inline unsigned __reduce_add_sync(unsigned mask, unsigned v) { return rlhf4j_emu::reduce(mask, v, 0); }
static inline int __reduce_add_sync(unsigned mask, int v) { return rlhf4j_emu::reduce(mask, v, 0); }
static inline unsigned __reduce_min_sync(unsigned mask, unsigned v) { return rlhf4j_emu::reduce(mask, v, 1); }
static inline int __reduce_min_sync(unsigned mask, int v) { return rlhf4j_emu::reduce(mask, v, 1); }
static inline unsigned __reduce_max_sync(unsigned mask, unsigned v) { return rlhf4j_emu::reduce(mask, v, 2); }
static inline int __reduce_max_sync(unsigned mask, int v) { return rlhf4j_emu::reduce(mask, v, 2); }
static inline unsigned __reduce_and_sync(unsigned mask, unsigned v) { return rlhf4j_emu::reduce(mask, v, 3); }
static inline unsigned __reduce_or_sync(unsigned mask, unsigned v) { return rlhf4j_emu::reduce(mask, v, 4); }
static inline unsigned __reduce_xor_sync(unsigned mask, unsigned v) { return rlhf4j_emu::reduce(mask, v, 5); }

// Full-warp butterfly reductions in ONE collective (common.cuh's warp_sum/warp_max): the same five xor-shuffle steps,
// so the same bits, as the GPU's loop, at a fifth of the switches. A partial warp is an error (the GPU's result would
// be undefined: the missing lanes' values are read).
namespace rlhf4j_emu {
struct ButterflyData {
    float val;
    float out;
};
template <bool MAX>
static void butterfly_complete(void* const* data, uint32_t mask) {
    if (mask != 0xffffffffu) fault("warp_%s over a partial warp (lanes 0x%08x)", MAX ? "max" : "sum", mask);
    float v[32], t[32];
    for (int l = 0; l < 32; l++) v[l] = static_cast<ButterflyData*>(data[l])->val;
    for (int o = 16; o > 0; o >>= 1) {
        for (int l = 0; l < 32; l++) t[l] = MAX ? fmaxf(v[l], v[l ^ o]) : v[l] + v[l ^ o];
        memcpy(v, t, sizeof v);
    }
    for (int l = 0; l < 32; l++) static_cast<ButterflyData*>(data[l])->out = v[l];
}
template <bool MAX>
static inline float butterfly(float x) {
    ButterflyData d{x, 0.0f};
    warp_collective(0xffffffffu, MAX ? COLL_WARP_MAX : COLL_WARP_SUM, &d, &butterfly_complete<MAX>);
    return d.out;
}
}  // namespace rlhf4j_emu

// ---- atomics (real atomics: blocks run concurrently on OpenMP threads) ----------------------------------------------
namespace rlhf4j_emu {
template <typename T, typename U, typename F>
static inline T atomic_cas_loop(T* addr, F f) {  // T stored as the same-size integer U
    static_assert(sizeof(T) == sizeof(U), "size");
    U* p = reinterpret_cast<U*>(addr);
    U old = __atomic_load_n(p, __ATOMIC_RELAXED), nv;
    T o;
    do {
        memcpy(&o, &old, sizeof o);
        T n = f(o);
        memcpy(&nv, &n, sizeof nv);
    } while (!__atomic_compare_exchange_n(p, &old, nv, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    return o;
}
}  // namespace rlhf4j_emu
#define RLHF4J_EMU_INT_ATOMICS(T)                                                                                      \
    static inline T atomicAdd(T* p, T v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }                        \
    static inline T atomicSub(T* p, T v) { return __atomic_fetch_sub(p, v, __ATOMIC_RELAXED); }                        \
    static inline T atomicExch(T* p, T v) { return __atomic_exchange_n(p, v, __ATOMIC_RELAXED); }                      \
    static inline T atomicAnd(T* p, T v) { return __atomic_fetch_and(p, v, __ATOMIC_RELAXED); }                        \
    static inline T atomicOr(T* p, T v) { return __atomic_fetch_or(p, v, __ATOMIC_RELAXED); }                          \
    static inline T atomicXor(T* p, T v) { return __atomic_fetch_xor(p, v, __ATOMIC_RELAXED); }                        \
    static inline T atomicMin(T* p, T v) {                                                                             \
        return rlhf4j_emu::atomic_cas_loop<T, T>(p, [v](T o) { return v < o ? v : o; });                              \
    }                                                                                                                  \
    static inline T atomicMax(T* p, T v) {                                                                             \
        return rlhf4j_emu::atomic_cas_loop<T, T>(p, [v](T o) { return v > o ? v : o; });                              \
    }                                                                                                                  \
    static inline T atomicCAS(T* p, T cmp, T v) {                                                                      \
        __atomic_compare_exchange_n(p, &cmp, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);                            \
        return cmp;                                                                                                    \
    }
RLHF4J_EMU_INT_ATOMICS(int)
RLHF4J_EMU_INT_ATOMICS(unsigned int)
RLHF4J_EMU_INT_ATOMICS(unsigned long long)
RLHF4J_EMU_INT_ATOMICS(long long)
#undef RLHF4J_EMU_INT_ATOMICS
static inline unsigned short atomicCAS(unsigned short* p, unsigned short cmp, unsigned short v) {
    __atomic_compare_exchange_n(p, &cmp, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    return cmp;
}
static inline unsigned atomicInc(unsigned* p, unsigned lim) {
    return rlhf4j_emu::atomic_cas_loop<unsigned, unsigned>(p, [lim](unsigned o) { return o >= lim ? 0u : o + 1; });
}
static inline unsigned atomicDec(unsigned* p, unsigned lim) {
    return rlhf4j_emu::atomic_cas_loop<unsigned, unsigned>(
        p, [lim](unsigned o) { return (o == 0 || o > lim) ? lim : o - 1; });
}
static inline float atomicAdd(float* p, float v) {
    return rlhf4j_emu::atomic_cas_loop<float, uint32_t>(p, [v](float o) { return o + v; });
}
static inline double atomicAdd(double* p, double v) {
    return rlhf4j_emu::atomic_cas_loop<double, uint64_t>(p, [v](double o) { return o + v; });
}
static inline float atomicExch(float* p, float v) {
    return rlhf4j_emu::atomic_cas_loop<float, uint32_t>(p, [v](float) { return v; });
}
static inline float atomicMax(float* p, float v) {  // not CUDA: only for symmetry with the int forms
    return rlhf4j_emu::atomic_cas_loop<float, uint32_t>(p, [v](float o) { return fmaxf(o, v); });
}
static inline __nv_bfloat16 atomicAdd(__nv_bfloat16* p, __nv_bfloat16 v) {
    return rlhf4j_emu::atomic_cas_loop<__nv_bfloat16, uint16_t>(p, [v](__nv_bfloat16 o) { return o + v; });
}
static inline __nv_bfloat162 atomicAdd(__nv_bfloat162* p, __nv_bfloat162 v) {
    return rlhf4j_emu::atomic_cas_loop<__nv_bfloat162, uint32_t>(
        p, [v](__nv_bfloat162 o) { return __nv_bfloat162(o.x + v.x, o.y + v.y); });
}

// ---- CUDA runtime API subset (cuda_emu.cpp) -------------------------------------------------------------------------
enum cudaError : int {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInitializationError = 3,
    cudaErrorCudartUnloading = 4,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidPitchValue = 12,
    cudaErrorInvalidSymbol = 13,
    cudaErrorInvalidDevicePointer = 17,
    cudaErrorInvalidMemcpyDirection = 21,
    cudaErrorInsufficientDriver = 35,
    cudaErrorMissingConfiguration = 52,
    cudaErrorInvalidDeviceFunction = 98,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDevice = 101,
    cudaErrorNoKernelImageForDevice = 209,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorHostMemoryAlreadyRegistered = 712,
    cudaErrorNotReady = 600,
    cudaErrorIllegalAddress = 700,
    cudaErrorLaunchOutOfResources = 701,
    cudaErrorAssert = 710,
    cudaErrorLaunchFailure = 719,
    cudaErrorNotPermitted = 800,
    cudaErrorNotSupported = 801,
    cudaErrorUnknown = 999,
};
typedef cudaError cudaError_t;
enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0, cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2, cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
};
enum cudaFuncAttribute {
    cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
    cudaFuncAttributePreferredSharedMemoryCarveout = 9,
};
enum cudaDeviceAttr {
    cudaDevAttrMaxThreadsPerBlock = 1, cudaDevAttrMaxBlockDimX = 2, cudaDevAttrMaxBlockDimY = 3,
    cudaDevAttrMaxBlockDimZ = 4, cudaDevAttrMaxGridDimX = 5, cudaDevAttrMaxGridDimY = 6, cudaDevAttrMaxGridDimZ = 7,
    cudaDevAttrMaxSharedMemoryPerBlock = 8, cudaDevAttrTotalConstantMemory = 9, cudaDevAttrWarpSize = 10,
    cudaDevAttrMaxRegistersPerBlock = 12, cudaDevAttrClockRate = 13, cudaDevAttrMultiProcessorCount = 16,
    cudaDevAttrConcurrentKernels = 31, cudaDevAttrMemoryClockRate = 36, cudaDevAttrGlobalMemoryBusWidth = 37,
    cudaDevAttrL2CacheSize = 38, cudaDevAttrMaxThreadsPerMultiProcessor = 39, cudaDevAttrComputeCapabilityMajor = 75,
    cudaDevAttrComputeCapabilityMinor = 76, cudaDevAttrMaxSharedMemoryPerMultiprocessor = 81,
    cudaDevAttrMaxRegistersPerMultiprocessor = 82, cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
    cudaDevAttrMaxBlocksPerMultiprocessor = 106, cudaDevAttrMemoryPoolsSupported = 115,
};
struct CUstream_st;
struct CUevent_st;
typedef CUstream_st* cudaStream_t;
typedef CUevent_st* cudaEvent_t;
#define cudaStreamDefault 0x00
#define cudaStreamNonBlocking 0x01
#define cudaStreamLegacy ((cudaStream_t)0x1)
#define cudaStreamPerThread ((cudaStream_t)0x2)
#define cudaEventDefault 0x00
#define cudaEventBlockingSync 0x01
#define cudaEventDisableTiming 0x02
#define cudaHostAllocDefault 0x00
#define cudaHostRegisterDefault 0x00
#define cudaDeviceScheduleAuto 0x00

struct cudaDeviceProp {  // the fields of CUDA 13's struct that a backend plausibly reads
    char name[256];
    size_t totalGlobalMem;
    size_t sharedMemPerBlock;
    int regsPerBlock;
    int warpSize;
    size_t memPitch;
    int maxThreadsPerBlock;
    int maxThreadsDim[3];
    int maxGridSize[3];
    size_t totalConstMem;
    int major;
    int minor;
    size_t textureAlignment;
    int multiProcessorCount;
    int integrated;
    int canMapHostMemory;
    int concurrentKernels;
    int ECCEnabled;
    int pciBusID;
    int pciDeviceID;
    int pciDomainID;
    int asyncEngineCount;
    int unifiedAddressing;
    int memoryBusWidth;
    int l2CacheSize;
    int persistingL2CacheMaxSize;
    int maxThreadsPerMultiProcessor;
    size_t sharedMemPerMultiprocessor;
    int regsPerMultiprocessor;
    int managedMemory;
    size_t sharedMemPerBlockOptin;
    int maxBlocksPerMultiProcessor;
    size_t reservedSharedMemPerBlock;
    int memoryPoolsSupported;
};
struct cudaFuncAttributes {
    size_t sharedSizeBytes;
    size_t constSizeBytes;
    size_t localSizeBytes;
    int maxThreadsPerBlock;
    int numRegs;
    int ptxVersion;
    int binaryVersion;
    int cacheModeCA;
    int maxDynamicSharedSizeBytes;
    int preferredShmemCarveout;
};

RLHF4J_EMU_HIDDEN cudaError_t cudaMalloc(void** p, size_t bytes);
template <typename T>
static inline cudaError_t cudaMalloc(T** p, size_t bytes) { return cudaMalloc(reinterpret_cast<void**>(p), bytes); }
RLHF4J_EMU_HIDDEN cudaError_t cudaFree(void* p);
RLHF4J_EMU_HIDDEN cudaError_t cudaMallocAsync(void** p, size_t bytes, cudaStream_t s);
template <typename T>
static inline cudaError_t cudaMallocAsync(T** p, size_t bytes, cudaStream_t s) {
    return cudaMallocAsync(reinterpret_cast<void**>(p), bytes, s);
}
RLHF4J_EMU_HIDDEN cudaError_t cudaFreeAsync(void* p, cudaStream_t s);
RLHF4J_EMU_HIDDEN cudaError_t cudaMallocHost(void** p, size_t bytes);
RLHF4J_EMU_HIDDEN cudaError_t cudaHostAlloc(void** p, size_t bytes, unsigned flags);
RLHF4J_EMU_HIDDEN cudaError_t cudaFreeHost(void* p);
RLHF4J_EMU_HIDDEN cudaError_t cudaHostRegister(void* p, size_t bytes, unsigned flags);
RLHF4J_EMU_HIDDEN cudaError_t cudaHostUnregister(void* p);
RLHF4J_EMU_HIDDEN cudaError_t cudaMemcpy(void* dst, const void* src, size_t n, cudaMemcpyKind kind);
RLHF4J_EMU_HIDDEN cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t n, cudaMemcpyKind kind,
                                              cudaStream_t s = 0);
RLHF4J_EMU_HIDDEN cudaError_t cudaMemcpy2D(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width,
                                           size_t height, cudaMemcpyKind kind);
RLHF4J_EMU_HIDDEN cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch,
                                                size_t width, size_t height, cudaMemcpyKind kind, cudaStream_t s = 0);
RLHF4J_EMU_HIDDEN cudaError_t cudaMemset(void* p, int value, size_t n);
RLHF4J_EMU_HIDDEN cudaError_t cudaMemsetAsync(void* p, int value, size_t n, cudaStream_t s = 0);
RLHF4J_EMU_HIDDEN cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes);
RLHF4J_EMU_HIDDEN cudaError_t cudaStreamCreate(cudaStream_t* s);
RLHF4J_EMU_HIDDEN cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags);
RLHF4J_EMU_HIDDEN cudaError_t cudaStreamCreateWithPriority(cudaStream_t* s, unsigned flags, int priority);
RLHF4J_EMU_HIDDEN cudaError_t cudaStreamDestroy(cudaStream_t s);
RLHF4J_EMU_HIDDEN cudaError_t cudaStreamSynchronize(cudaStream_t s);
RLHF4J_EMU_HIDDEN cudaError_t cudaStreamQuery(cudaStream_t s);
RLHF4J_EMU_HIDDEN cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags = 0);
RLHF4J_EMU_HIDDEN cudaError_t cudaDeviceGetStreamPriorityRange(int* least, int* greatest);
RLHF4J_EMU_HIDDEN cudaError_t cudaEventCreate(cudaEvent_t* e);
RLHF4J_EMU_HIDDEN cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned flags);
RLHF4J_EMU_HIDDEN cudaError_t cudaEventDestroy(cudaEvent_t e);
RLHF4J_EMU_HIDDEN cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = 0);
RLHF4J_EMU_HIDDEN cudaError_t cudaEventSynchronize(cudaEvent_t e);
RLHF4J_EMU_HIDDEN cudaError_t cudaEventQuery(cudaEvent_t e);
RLHF4J_EMU_HIDDEN cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end);
RLHF4J_EMU_HIDDEN cudaError_t cudaGetDeviceCount(int* n);
RLHF4J_EMU_HIDDEN cudaError_t cudaSetDevice(int d);
RLHF4J_EMU_HIDDEN cudaError_t cudaGetDevice(int* d);
RLHF4J_EMU_HIDDEN cudaError_t cudaSetDeviceFlags(unsigned flags);
RLHF4J_EMU_HIDDEN cudaError_t cudaDeviceSynchronize();
RLHF4J_EMU_HIDDEN cudaError_t cudaDeviceReset();
RLHF4J_EMU_HIDDEN cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int d);
RLHF4J_EMU_HIDDEN cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int d);
RLHF4J_EMU_HIDDEN cudaError_t cudaDriverGetVersion(int* v);
RLHF4J_EMU_HIDDEN cudaError_t cudaRuntimeGetVersion(int* v);
RLHF4J_EMU_HIDDEN cudaError_t cudaGetLastError();
RLHF4J_EMU_HIDDEN cudaError_t cudaPeekAtLastError();
RLHF4J_EMU_HIDDEN const char* cudaGetErrorString(cudaError_t e);
RLHF4J_EMU_HIDDEN const char* cudaGetErrorName(cudaError_t e);
RLHF4J_EMU_HIDDEN cudaError_t rlhf4j_emu_func_set_attribute(const void* f, cudaFuncAttribute attr, int value);
template <typename F>
static inline cudaError_t cudaFuncSetAttribute(F* f, cudaFuncAttribute attr, int value) {
    return rlhf4j_emu_func_set_attribute(reinterpret_cast<const void*>(f), attr, value);
}
template <typename F>
static inline cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* a, F* f) {
    if (!a || !f) return cudaErrorInvalidValue;
    memset(a, 0, sizeof *a);
    a->maxThreadsPerBlock = 1024;
    a->maxDynamicSharedSizeBytes = 48 * 1024;
    a->ptxVersion = a->binaryVersion = 90;
    return cudaSuccess;
}
template <typename F>
static inline cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* n, F* f, int block, size_t smem) {
    if (!n || !f || block <= 0 || block > 1024) return cudaErrorInvalidValue;
    int by_threads = 2048 / block, by_smem = smem ? (int)((228 * 1024) / (smem + 1024)) : 32;
    *n = by_threads < by_smem ? by_threads : by_smem;
    if (*n > 32) *n = 32;
    return cudaSuccess;
}
template <typename T>
static inline cudaError_t cudaMemcpyToSymbol(T& symbol, const void* src, size_t n, size_t offset = 0,
                                             cudaMemcpyKind kind = cudaMemcpyHostToDevice) {
    if (offset + n > sizeof(T)) return cudaErrorInvalidValue;
    memcpy(reinterpret_cast<char*>(&symbol) + offset, src, n);
    return cudaSuccess;
}
