/*
 * internal.cuh: what every .cu file of the CUDA backend shares on the host side (and the few __host__ __device__
 * helpers whose bits must match the CPU backend): the device and stream structs, the thread's error message, argument
 * checks that read like the CPU backend's (native/cpu/internal.h), CUDA error checks that name the call, the kernel
 * launch macro, dtype dispatch, the op workspace, bf16/f16 bit conversions and Philox.
 *
 * Conventions every entry point follows:
 *   static const char *fn = "rlhf4j_xxx";
 *   CHECK_STREAM(fn, s);                 // s and s->dev non-NULL; makes s's GPU current on this host thread
 *   ... the CPU backend's checks, same conditions, same order, messages "<fn>: <what is wrong>" ...
 *   CHECK_COMPUTE_DTYPE(fn, dtype);      // F32 / BF16 compute; unknown -> INVALID_ARGUMENT, F16/F64/I32 -> UNSUPPORTED
 *   if (n == 0) return RLHF4J_OK;        // never launch an empty grid (an invalid configuration on the GPU)
 *   DISPATCH_COMPUTE(dtype, T, return LAUNCH(fn, my_kernel<T>, grid, block, smem, s, args...));
 *
 * Errors: every failure goes through rlhf4j_fail, which formats this thread's last error and returns the status, so a
 * check reads `return rlhf4j_fail(...)`. A CUDA error becomes RLHF4J_ERR_DEVICE ("<fn>: <kernel or call>: <CUDA error
 * string>"), cudaErrorMemoryAllocation becomes RLHF4J_ERR_OUT_OF_MEMORY. Launches are asynchronous on the GPU, so a
 * fault inside a kernel surfaces at the next synchronising call; RLHF4J_CUDA_SYNC=1 in the environment makes LAUNCH
 * synchronise after every kernel, so the error names the kernel that faulted (debugging only: it serialises the host).
 */
#pragma once

#include "rlhf4j.h"
#include "common.cuh"

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ---- device and stream --------------------------------------------------------------------------------------- */

struct rlhf4j_allocator; /* backend.cu: the caching allocator of one opened device */

struct rlhf4j_device_s {
    int32_t ordinal;          /* CUDA device ordinal */
    int sm_count;             /* multiprocessors: grid-stride kernels size their grid from it */
    int cc_major, cc_minor;   /* compute capability */
    size_t smem_optin;        /* largest dynamic shared memory a block may opt in to (bytes) */
    size_t smem_per_sm;       /* shared memory per multiprocessor (bytes) */
    struct rlhf4j_allocator *alloc;
};

struct rlhf4j_stream_s {
    rlhf4j_device dev;
    cudaStream_t stream;
};

static inline cudaStream_t cuda_stream(rlhf4j_stream s) { return s->stream; }

struct rlhf4j_event_s {
    rlhf4j_device dev;
    cudaEvent_t event;
};

/* ---- errors -------------------------------------------------------------------------------------------------- */

/* Formats this thread's last error message ("<entry point>: <what is wrong>") and returns status. */
int32_t rlhf4j_fail(int32_t status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A CUDA error as an rlhf4j status (clears the runtime's non-sticky error state so the next call starts clean). */
int32_t rlhf4j_cuda_fail(const char *entry, const char *what, cudaError_t err);

/* Nonzero when RLHF4J_CUDA_SYNC=1: LAUNCH synchronises the stream after every kernel. */
extern int rlhf4j_sync_launches;

/* Makes ordinal the current CUDA device of this host thread (cached per thread; cudaSetDevice only on a change). */
int32_t rlhf4j_use_device(const char *entry, int32_t ordinal);

#define REQUIRE(cond, ...)                                                                                          \
    do {                                                                                                            \
        if (!(cond)) return rlhf4j_fail(RLHF4J_ERR_INVALID_ARGUMENT, __VA_ARGS__);                                  \
    } while (0)
#define UNSUPPORTED(...) return rlhf4j_fail(RLHF4J_ERR_UNSUPPORTED, __VA_ARGS__)

#define CUDA_CHECK(entry, what, call)                                                                               \
    do {                                                                                                            \
        cudaError_t e_ = (call);                                                                                    \
        if (e_ != cudaSuccess) return rlhf4j_cuda_fail((entry), (what), e_);                                        \
    } while (0)

/* Launches kernel through H1's launch_kernel (grid/block/smem limits checked, smem attribute set) on rlhf4j stream s;
 * a kernel template with several arguments goes in parentheses: LAUNCH(fn, (k<float, 4>), ...). Evaluates to
 * RLHF4J_OK (so `return LAUNCH(...)` ends an entry point) or returns the failure from the enclosing function. */
#define LAUNCH(entry, kernel, grid, block, smem, s, ...)                                                            \
    ({                                                                                                              \
        CUDA_CHECK((entry), #kernel, launch_kernel(kernel, (grid), (block), (size_t)(smem), cuda_stream(s),         \
                                                   __VA_ARGS__));                                                   \
        if (rlhf4j_sync_launches)                                                                                   \
            CUDA_CHECK((entry), #kernel " (RLHF4J_CUDA_SYNC: synchronising after the launch)",                      \
                       cudaStreamSynchronize(cuda_stream(s)));                                                      \
        (int32_t)RLHF4J_OK;                                                                                         \
    })

/* ---- argument checks, as native/cpu/internal.h ----------------------------------------------------------------- */

#define CHECK_ARG(cond, ...) REQUIRE(cond, __VA_ARGS__)
#define CHECK_PTR(fn, p) REQUIRE((p) != NULL, "%s: %s is NULL", fn, #p)
#define CHECK_NONNEG(fn, v) REQUIRE((v) >= 0, "%s: %s = %lld must be >= 0", fn, #v, (long long)(v))
#define CHECK_POS(fn, v) REQUIRE((v) > 0, "%s: %s = %lld must be > 0", fn, #v, (long long)(v))
/* The stream is valid, and its device is current on this thread (ops may be called from any host thread). */
#define CHECK_STREAM(fn, s)                                                                                         \
    do {                                                                                                            \
        REQUIRE((s) != NULL && (s)->dev != NULL, "%s: stream is NULL", fn);                                         \
        int32_t st_dev_ = rlhf4j_use_device(fn, (s)->dev->ordinal);                                                 \
        if (st_dev_ != RLHF4J_OK) return st_dev_;                                                                   \
    } while (0)

const char *rlhf4j_dtype_name(int32_t dtype);
/* Bytes per element, or 0 for an unknown dtype. */
int64_t rlhf4j_dtype_size(int32_t dtype);

/* F32 and BF16 are what the CUDA backend computes in (fp32 arithmetic, bf16 or f32 storage). An unknown dtype is an
 * invalid argument; F16, F64 and I32 are unsupported. */
int32_t rlhf4j_check_compute_dtype(const char *fn, int32_t dtype);
#define CHECK_COMPUTE_DTYPE(fn, dtype)                                                                              \
    do {                                                                                                            \
        int32_t st_dt_ = rlhf4j_check_compute_dtype(fn, dtype);                                                     \
        if (st_dt_ != RLHF4J_OK) return st_dt_;                                                                     \
    } while (0)

/* Runs the statement(s) with T the storage type of a checked compute dtype (float for F32, bf16 for BF16). */
#define DISPATCH_COMPUTE(dtype, T, ...)                                                                             \
    do {                                                                                                            \
        if ((dtype) == RLHF4J_F32) {                                                                                \
            typedef float T;                                                                                        \
            __VA_ARGS__;                                                                                            \
        } else {                                                                                                    \
            typedef bf16 T;                                                                                         \
            __VA_ARGS__;                                                                                            \
        }                                                                                                           \
    } while (0)

/* ---- launch geometry ----------------------------------------------------------------------------------------- */

/* Blocks for a grid-stride loop over `work` items with `per_block` items per block per iteration: enough to cover
 * the work, at most blocks_per_sm waves of the device (grid-stride loops take the rest). Always >= 1. */
static inline unsigned grid_for(rlhf4j_stream s, int64_t work, int64_t per_block, int blocks_per_sm = 8) {
    int64_t need = (work + per_block - 1) / per_block;
    int64_t cap = (int64_t)(s->dev->sm_count > 0 ? s->dev->sm_count : 1) * blocks_per_sm;
    int64_t g = need < cap ? need : cap;
    return (unsigned)(g < 1 ? 1 : g);
}

static inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* ---- workspace ----------------------------------------------------------------------------------------------- */

/* Scratch device memory for one op (split-K partials, fp32 accumulators), from the device's caching allocator, so a
 * steady-state step costs no cudaMalloc. Stream-ordered: release it right after enqueueing the kernels that use it
 * (no synchronisation needed); it is only handed out again to work that is ordered after those kernels. Not counted
 * in rlhf4j_device_memory's in_use. Returns NULL when the device is out of memory; then
 *   return rlhf4j_fail(RLHF4J_ERR_OUT_OF_MEMORY, "%s: no device memory for a %zu-byte workspace", fn, bytes);
 * Contents are undefined (0xFF bytes in the emulated build, where a release also checks that no kernel wrote past
 * `bytes`, and aborts if one did). bytes == 0 gives a valid pointer. */
void *rlhf4j_workspace(rlhf4j_stream s, size_t bytes);
void rlhf4j_workspace_release(rlhf4j_stream s, void *p);

/* ---- bf16 / f16 conversions and Philox-4x32-10: one source with the CPU backend (host and device) ------------- */

#include "rlhf4j_bits.h"
