// softmax.cu: softmax / log_softmax over rows, and token log-probabilities, the fused classifier of a language
// model's loss: log_softmax + gather of the target's logit, so the [rows, V] log-probabilities are never written and
// the fp32 logits are never copied. F32 and BF16 storage, f32 arithmetic; lse is f32 for both.
//
// Every kernel here gives one row to one block (rows up to 250k columns: a warp per row would leave most of the GPU
// idle on 8k rows of 50k) and reads the row in 16-byte vectors through row_walk, which peels the unaligned head of
// rows of odd length (V = 50257). Block size ~ cols / (4 vectors), a power of two in [32, 1024].
//
// One pass of online max / sum-of-exp per row (maxsum_add: one rescale per 16-byte vector, not per element), merged
// across the block in a fixed tree: the row's max m and s = sum exp(x - m); lse = m + log(s). Every exp is of a
// non-positive number, so nothing overflows; a row that is all -inf gives NaN, as the CPU backend.
//
// softmax_forward: pass 1 (max/sum), pass 2 writes y = exp(x - m) / s, or x - lse for log_softmax. x is read twice;
//   the second read comes from L2 while the rows in flight fit (132 SMs x 2 rows x 100 KB for bf16 V = 50257).
// softmax_backward: pass 1 dot = sum(dy y) (sum(dy) for log), pass 2 dx = y (dy - dot) (dy - exp(y) dot).
// logprobs_forward: pass 1 only, plus one gather: logprob = x[target] - lse; writes 2 numbers per row. Ignored rows
//   (target == ignore_index) read nothing.
// logprobs_backward: one pass: dlogits = g (onehot(target) - exp(x - lse)) from the saved lse; rows with g == 0
//   (ignored, or masked by the caller) only zero their row, or are skipped when accumulating.
// Targets are device memory: a one-block validation kernel finds the first bad target before anything is written
// and the host reads its answer back (rowwise_check_indices), so a bad target fails the call naming row and value,
// as on the CPU backend, at the price of one stream synchronisation per call.
//
// Memory traffic per element (bf16 / f32) and floors on an H100 (3.0 TB/s) for GPT-2 124M logits
// (rows = B*T = 8 * 1024, V = 50257: 411.7 M elements):
//   logprobs_forward   read logits once             2 B / 4 B    823 MB / 1.65 GB  ->  274 us / 549 us
//   logprobs_backward  read logits, write dlogits   4 B / 8 B    1.65 GB / 3.3 GB  ->  549 us / 1.10 ms
//                      (+2 B / +4 B when accumulating)
//   softmax_forward    read x (twice), write y      4-6 B / 8-12 B                ->  549-823 us / 1.10-1.65 ms
//   softmax_backward   read y, dy (twice), write dx 6-10 B / 12-20 B              ->  823 us-1.37 ms / 1.65-2.74 ms
// Compute: one expf per element (~411 M: ~0.1 ms of SFU throughput), under the memory floor in all four.
#include "internal.cuh"
#include "rowwise.cuh"

// ------------------------------------------------------------------------------------------------------------------
// CUDA kernels

constexpr int SOFTMAX_VECS_PER_THREAD = 4; // block size: cols / (4 vectors), so each thread has a few loads in flight
constexpr int64_t SOFTMAX_MAX_GRID = 1 << 30;

// @budget softmax_forward_kernel regs<=40 smem<=256
template <typename T, bool LOG>
__global__ void __launch_bounds__(1024) softmax_forward_kernel(int64_t rows, int64_t cols, const T* __restrict__ x,
                                                               T* __restrict__ y) {
    __shared__ float red[64];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* xr = x + r * cols;
        T* yr = y + r * cols;
        MaxSum ms{-INFINITY, 0.0f};
        row_walk(xr, cols, [&](int64_t, auto& v, auto) { maxsum_add(ms, v); });
        ms = block_maxsum(ms, red);
        const bool al = same_phase(xr, yr);
        if constexpr (LOG) {
            const float shift = ms.m + logf(ms.s);
            row_walk(xr, cols, [&](int64_t c, auto& v, auto cnt) {
                constexpr int K = decltype(cnt)::value;
                float o[K];
#pragma unroll
                for (int i = 0; i < K; i++) o[i] = v[i] - shift;
                store_maybe<K>(yr + c, o, al);
            });
        } else {
            const float m = ms.m, inv = 1.0f / ms.s;
            row_walk(xr, cols, [&](int64_t c, auto& v, auto cnt) {
                constexpr int K = decltype(cnt)::value;
                float o[K];
#pragma unroll
                for (int i = 0; i < K; i++) o[i] = expf(v[i] - m) * inv;
                store_maybe<K>(yr + c, o, al);
            });
        }
    }
}

// @budget softmax_backward_kernel regs<=56 smem<=256
template <typename T, bool LOG>
__global__ void __launch_bounds__(1024)
    softmax_backward_kernel(int64_t rows, int64_t cols, const T* __restrict__ y, const T* __restrict__ dy,
                            T* __restrict__ dx, int accumulate) {
    __shared__ float red[64];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* yr = y + r * cols;
        const T* dyr = dy + r * cols;
        T* dxr = dx + r * cols;
        const bool ady = same_phase(yr, dyr), adx = same_phase(yr, dxr);
        float dot = 0.0f;
        row_walk(yr, cols, [&](int64_t c, auto& v, auto cnt) {
            constexpr int K = decltype(cnt)::value;
            float d[K];
            load_maybe<K>(d, dyr + c, ady);
#pragma unroll
            for (int i = 0; i < K; i++) dot += LOG ? d[i] : d[i] * v[i];
        });
        dot = block_sum(dot, red);
        row_walk(yr, cols, [&](int64_t c, auto& v, auto cnt) {
            constexpr int K = decltype(cnt)::value;
            float d[K], o[K];
            load_maybe<K>(d, dyr + c, ady);
#pragma unroll
            for (int i = 0; i < K; i++) o[i] = LOG ? d[i] - expf(v[i]) * dot : v[i] * (d[i] - dot);
            if (accumulate) {
                float old[K];
                load_maybe<K>(old, dxr + c, adx);
#pragma unroll
                for (int i = 0; i < K; i++) o[i] = old[i] + o[i];
            }
            store_maybe<K>(dxr + c, o, adx);
        });
    }
}

// @budget logprobs_forward_kernel regs<=40 smem<=256
template <typename T>
__global__ void __launch_bounds__(1024)
    logprobs_forward_kernel(int64_t rows, int64_t V, const T* __restrict__ logits, int64_t ls,
                            const int32_t* __restrict__ targets, int32_t ignore_index, T* __restrict__ logprobs,
                            float* __restrict__ lse) {
    __shared__ float red[64];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const int32_t tgt = targets[r];
        if (tgt == ignore_index) { // no work: the row gives 0 and no gradient (uniform over the block)
            if (threadIdx.x == 0) {
                logprobs[r] = from_float<T>(0.0f);
                if (lse != nullptr) lse[r] = 0.0f;
            }
            continue;
        }
        const T* row = logits + r * ls;
        MaxSum ms{-INFINITY, 0.0f};
        row_walk(row, V, [&](int64_t, auto& v, auto) { maxsum_add(ms, v); });
        ms = block_maxsum(ms, red);
        if (threadIdx.x == 0) {
            const float l = ms.m + logf(ms.s);
            logprobs[r] = from_float<T>(to_float(row[tgt]) - l);
            if (lse != nullptr) lse[r] = l;
        }
    }
}

// @budget logprobs_backward_kernel regs<=56 smem<=0
template <typename T>
__global__ void __launch_bounds__(1024)
    logprobs_backward_kernel(int64_t rows, int64_t V, const T* __restrict__ logits, int64_t ls,
                             const int32_t* __restrict__ targets, int32_t ignore_index, const float* __restrict__ lse,
                             const T* __restrict__ dlogprobs, T* __restrict__ dlogits, int64_t ds, int accumulate) {
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const int32_t tgt = targets[r];
        T* drow = dlogits + r * ds;
        const float g = tgt == ignore_index ? 0.0f : to_float(dlogprobs[r]);
        if (g == 0.0f) { // ignored or masked row: the gradient is exactly zero, skip the exps
            if (!accumulate) row_zero(drow, V);
            continue;
        }
        const T* row = logits + r * ls;
        const float l = lse[r];
        const bool al = same_phase(row, drow);
        row_walk(row, V, [&](int64_t c, auto& v, auto cnt) {
            constexpr int K = decltype(cnt)::value;
            float o[K];
            if (accumulate) {
                load_maybe<K>(o, drow + c, al);
#pragma unroll
                for (int i = 0; i < K; i++) o[i] -= g * expf(v[i] - l);
            } else {
#pragma unroll
                for (int i = 0; i < K; i++) o[i] = -g * expf(v[i] - l);
            }
#pragma unroll
            for (int i = 0; i < K; i++)
                if (c + i == tgt) o[i] += g;
            store_maybe<K>(drow + c, o, al);
        });
    }
}

// rowwise_check_index_kernel (rowwise.cuh) validates targets here and ids in embedding.cu; its budget line is here
// because the resource check reads .cu files.
// @budget rowwise_check_index_kernel regs<=24 smem<=2048

// ------------------------------------------------------------------------------------------------------------------
// kernel launchers

static dim3 row_grid(int64_t rows) { return dim3((unsigned)(rows < SOFTMAX_MAX_GRID ? rows : SOFTMAX_MAX_GRID)); }

template <typename T> static dim3 row_block(int64_t cols) {
    return dim3(row_block_threads(cols, VecOf<T>::N, SOFTMAX_VECS_PER_THREAD));
}

template <typename T>
static int32_t softmax_forward_launch(const char* fn, rlhf4j_stream s, int log, int64_t rows, int64_t cols,
                                      const void* x, void* y) {
    if (rows == 0) return RLHF4J_OK;
    if (log)
        LAUNCH(fn, (softmax_forward_kernel<T, true>), row_grid(rows), row_block<T>(cols), 0, s, rows, cols, (const T*)x,
               (T*)y);
    else
        LAUNCH(fn, (softmax_forward_kernel<T, false>), row_grid(rows), row_block<T>(cols), 0, s, rows, cols,
               (const T*)x, (T*)y);
    return RLHF4J_OK;
}

template <typename T>
static int32_t softmax_backward_launch(const char* fn, rlhf4j_stream s, int log, int64_t rows, int64_t cols,
                                       const void* y, const void* dy, void* dx, int accumulate) {
    if (rows == 0) return RLHF4J_OK;
    if (log)
        LAUNCH(fn, (softmax_backward_kernel<T, true>), row_grid(rows), row_block<T>(cols), 0, s, rows, cols,
               (const T*)y, (const T*)dy, (T*)dx, accumulate);
    else
        LAUNCH(fn, (softmax_backward_kernel<T, false>), row_grid(rows), row_block<T>(cols), 0, s, rows, cols,
               (const T*)y, (const T*)dy, (T*)dx, accumulate);
    return RLHF4J_OK;
}

template <typename T>
static int32_t logprobs_forward_launch(const char* fn, rlhf4j_stream s, int64_t rows, int64_t V, const void* logits,
                                       int64_t ls, const int32_t* targets, int32_t ignore_index, void* logprobs,
                                       void* lse) {
    LAUNCH(fn, (logprobs_forward_kernel<T>), row_grid(rows), row_block<T>(V), 0, s, rows, V, (const T*)logits, ls,
           targets, ignore_index, (T*)logprobs, (float*)lse);
    return RLHF4J_OK;
}

template <typename T>
static int32_t logprobs_backward_launch(const char* fn, rlhf4j_stream s, int64_t rows, int64_t V,
                                        const void* logits, int64_t ls, const int32_t* targets, int32_t ignore_index,
                                        const void* lse, const void* dlogprobs, void* dlogits, int64_t ds,
                                        int accumulate) {
    LAUNCH(fn, (logprobs_backward_kernel<T>), row_grid(rows), row_block<T>(V), 0, s, rows, V, (const T*)logits, ls,
           targets, ignore_index, (const float*)lse, (const T*)dlogprobs, (T*)dlogits, ds, accumulate);
    return RLHF4J_OK;
}

// ------------------------------------------------------------------------------------------------------------------
// entry points (argument checks as the CPU backend's, with its messages)

extern "C" RLHF4J_API int32_t rlhf4j_softmax_forward(rlhf4j_stream s, int32_t dtype, int32_t log, int64_t rows,
                                                     int64_t cols, const void* x, void* y) {
    static const char* fn = "rlhf4j_softmax_forward";
    CHECK_STREAM(fn, s);
    CHECK_COMPUTE_DTYPE(fn, dtype);
    CHECK_NONNEG(fn, rows);
    CHECK_POS(fn, cols);
    CHECK_PTR(fn, x);
    CHECK_PTR(fn, y);
    if (dtype == RLHF4J_F32) return softmax_forward_launch<float>(fn, s, log != 0, rows, cols, x, y);
    return softmax_forward_launch<bf16>(fn, s, log != 0, rows, cols, x, y);
}

extern "C" RLHF4J_API int32_t rlhf4j_softmax_backward(rlhf4j_stream s, int32_t dtype, int32_t log, int64_t rows,
                                                      int64_t cols, const void* y, const void* dy, void* dx,
                                                      int32_t accumulate) {
    static const char* fn = "rlhf4j_softmax_backward";
    CHECK_STREAM(fn, s);
    CHECK_COMPUTE_DTYPE(fn, dtype);
    CHECK_NONNEG(fn, rows);
    CHECK_POS(fn, cols);
    CHECK_PTR(fn, y);
    CHECK_PTR(fn, dy);
    if (dx == NULL) return RLHF4J_OK; // no gradient wanted
    if (dtype == RLHF4J_F32)
        return softmax_backward_launch<float>(fn, s, log != 0, rows, cols, y, dy, dx, accumulate != 0);
    return softmax_backward_launch<bf16>(fn, s, log != 0, rows, cols, y, dy, dx, accumulate != 0);
}

// Fails naming the first row whose target is outside [0, V) and not ignore_index; reads the targets on the device.
static int32_t check_targets(const char* fn, rlhf4j_stream s, int64_t rows, int64_t V, const int32_t* targets,
                             int32_t ignore_index) {
    int64_t bad;
    int32_t value;
    int32_t st = rowwise_check_indices(fn, s, rows, targets, V, ignore_index, true, &bad, &value);
    if (st != RLHF4J_OK) return st;
    REQUIRE(bad < 0, "%s: targets[%lld] = %d is outside [0, V = %lld) and is not ignore_index (%d)", fn,
            (long long)bad, value, (long long)V, ignore_index);
    return RLHF4J_OK;
}

extern "C" RLHF4J_API int32_t rlhf4j_logprobs_forward(rlhf4j_stream s, int32_t dtype, int64_t rows, int64_t V,
                                                      const void* logits, int64_t logits_row_stride,
                                                      const int32_t* targets, int32_t ignore_index, void* logprobs,
                                                      void* lse) {
    static const char* fn = "rlhf4j_logprobs_forward";
    CHECK_STREAM(fn, s);
    CHECK_COMPUTE_DTYPE(fn, dtype);
    CHECK_NONNEG(fn, rows);
    CHECK_POS(fn, V);
    REQUIRE(logits_row_stride >= V, "%s: logits_row_stride = %lld must be >= V = %lld", fn,
            (long long)logits_row_stride, (long long)V);
    CHECK_PTR(fn, logits);
    CHECK_PTR(fn, targets);
    CHECK_PTR(fn, logprobs);
    int32_t st = check_targets(fn, s, rows, V, targets, ignore_index);
    if (st != RLHF4J_OK) return st;
    if (rows == 0) return RLHF4J_OK;
    if (dtype == RLHF4J_F32)
        return logprobs_forward_launch<float>(fn, s, rows, V, logits, logits_row_stride, targets, ignore_index,
                                              logprobs, lse);
    return logprobs_forward_launch<bf16>(fn, s, rows, V, logits, logits_row_stride, targets, ignore_index, logprobs,
                                         lse);
}

extern "C" RLHF4J_API int32_t rlhf4j_logprobs_backward(rlhf4j_stream s, int32_t dtype, int64_t rows, int64_t V,
                                                       const void* logits, int64_t logits_row_stride,
                                                       const int32_t* targets, int32_t ignore_index, const void* lse,
                                                       const void* dlogprobs, void* dlogits,
                                                       int64_t dlogits_row_stride, int32_t accumulate) {
    static const char* fn = "rlhf4j_logprobs_backward";
    CHECK_STREAM(fn, s);
    CHECK_COMPUTE_DTYPE(fn, dtype);
    CHECK_NONNEG(fn, rows);
    CHECK_POS(fn, V);
    REQUIRE(logits_row_stride >= V, "%s: logits_row_stride = %lld must be >= V = %lld", fn,
            (long long)logits_row_stride, (long long)V);
    REQUIRE(dlogits_row_stride >= V, "%s: dlogits_row_stride = %lld must be >= V = %lld", fn,
            (long long)dlogits_row_stride, (long long)V);
    CHECK_PTR(fn, logits);
    CHECK_PTR(fn, targets);
    CHECK_PTR(fn, lse);
    CHECK_PTR(fn, dlogprobs);
    if (dlogits == NULL) return RLHF4J_OK; // no gradient wanted
    int32_t st = check_targets(fn, s, rows, V, targets, ignore_index);
    if (st != RLHF4J_OK) return st;
    if (rows == 0) return RLHF4J_OK;
    if (dtype == RLHF4J_F32)
        return logprobs_backward_launch<float>(fn, s, rows, V, logits, logits_row_stride, targets, ignore_index,
                                               lse, dlogprobs, dlogits, dlogits_row_stride, accumulate != 0);
    return logprobs_backward_launch<bf16>(fn, s, rows, V, logits, logits_row_stride, targets, ignore_index, lse,
                                          dlogprobs, dlogits, dlogits_row_stride, accumulate != 0);
}
