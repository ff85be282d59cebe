/*
 * rlhf4j.h: the one C ABI that every rlhf4j backend implements.
 *
 * Two shared libraries implement this header with the same symbol names: librlhf4j_cpu.so (native/cpu, C + OpenMP)
 * and librlhf4j_cuda.so (kernels/, CUDA). Java opens each with its own SymbolLookup and binds the functions below one
 * to one (io.github.rlhf4j.runtime.Abi, same order as here), so nothing above the Java runtime layer branches on the
 * backend.
 *
 * Conventions, which hold for every entry point:
 *  - Every function returns an rlhf4j_status. On failure, rlhf4j_last_error() holds a message for this thread that
 *    names the entry point and the argument at fault; it stays valid until the next failing call on the thread.
 *  - Pointers to tensor data are device pointers from rlhf4j_malloc (host pointers on the CPU backend). Shapes are
 *    passed explicitly; tensors are contiguous and row-major unless a stride argument says otherwise. Strides and
 *    offsets count elements, not bytes.
 *  - Every op names the dtype of its floating-point tensors. Statistics saved for a backward pass (mean, rstd, lse)
 *    and float side inputs (inv_freq) are F32, or F64 when the op's dtype is F64. Ids, targets, positions and
 *    masks are I32.
 *  - Ops are coarse (one call per fused op) and run on a stream; on the CPU backend they are synchronous.
 *  - Backward entry points: gradients of parameters (dweight, dbias) always accumulate (+=), so one zeroed flat
 *    gradient buffer serves a whole step, micro-batches included. Gradients of activations (dx, dq, ...) overwrite
 *    when accumulate == 0 and add when accumulate != 0; the autograd engine passes 0 for a fresh buffer.
 *    Any gradient output of a backward entry point may be NULL when it is not wanted (a frozen weight under LoRA, an
 *    input that needs no gradient); the rest are still computed.
 *  - Scalars are double whatever the dtype, so the F64 path (used for finite-difference checks) loses nothing.
 *  - Data pointers must be non-NULL even for zero-size tensors (rlhf4j_malloc(0) returns a unique pointer), except
 *    where an argument is documented as optional.
 *
 * Backends differ in the dtypes they compute in. The CPU backend computes F32 (fast path) and F64 (reference path,
 * used by the gradient checks), and supports BF16/F16 as storage in convert, copy_strided, embedding and gemm.
 * A dtype a backend does not support for an op fails with RLHF4J_ERR_UNSUPPORTED, never with a wrong answer.
 */
#ifndef RLHF4J_H
#define RLHF4J_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define RLHF4J_API __declspec(dllexport)
#else
#define RLHF4J_API __attribute__((visibility("default")))
#endif

/* Bumped whenever a signature or a constant below changes; Java refuses a library whose version differs. */
#define RLHF4J_ABI_VERSION 2
#define RLHF4J_MAX_DIMS 8

typedef enum {
    RLHF4J_OK = 0,
    RLHF4J_ERR_INVALID_ARGUMENT = 1, /* a shape, dtype, pointer or value is wrong; the message names it */
    RLHF4J_ERR_UNSUPPORTED = 2,      /* valid, but this backend does not implement it (e.g. a dtype) */
    RLHF4J_ERR_OUT_OF_MEMORY = 3,
    RLHF4J_ERR_DEVICE = 4,           /* the driver or runtime reported an error */
    RLHF4J_ERR_INTERNAL = 5
} rlhf4j_status;

typedef enum {
    RLHF4J_F32 = 0,
    RLHF4J_BF16 = 1,
    RLHF4J_F16 = 2,
    RLHF4J_I32 = 3,
    RLHF4J_F64 = 4
} rlhf4j_dtype;

typedef enum {
    RLHF4J_MEMCPY_HOST_TO_DEVICE = 0,
    RLHF4J_MEMCPY_DEVICE_TO_HOST = 1,
    RLHF4J_MEMCPY_DEVICE_TO_DEVICE = 2
} rlhf4j_memcpy_kind;

typedef struct rlhf4j_device_s *rlhf4j_device;
typedef struct rlhf4j_stream_s *rlhf4j_stream;
typedef struct rlhf4j_event_s *rlhf4j_event;

/* ------------------------------------------------------------------------------------------------------------ */
/* Library                                                                                                      */
/* ------------------------------------------------------------------------------------------------------------ */

RLHF4J_API int32_t rlhf4j_abi_version(void);
/* "cpu" or "cuda". */
RLHF4J_API const char *rlhf4j_backend_name(void);
/* One line on what this library dispatches to, e.g. "isa=avx512 (avx512f avx512bw avx512_bf16 fma); threads=2". */
RLHF4J_API const char *rlhf4j_backend_features(void);
RLHF4J_API const char *rlhf4j_last_error(void);

/* ------------------------------------------------------------------------------------------------------------ */
/* Devices, streams, memory                                                                                      */
/* ------------------------------------------------------------------------------------------------------------ */

RLHF4J_API int32_t rlhf4j_device_count(int32_t *count);
RLHF4J_API int32_t rlhf4j_device_open(int32_t ordinal, rlhf4j_device *out);
RLHF4J_API int32_t rlhf4j_device_close(rlhf4j_device dev);
/* Worker threads for ops on this device (CPU: OpenMP threads; CUDA: ignored). n <= 0 restores the default. */
RLHF4J_API int32_t rlhf4j_device_set_num_threads(rlhf4j_device dev, int32_t n);
/* Bytes currently allocated through rlhf4j_malloc on this device, the peak since open, and the device's total. */
RLHF4J_API int32_t rlhf4j_device_memory(rlhf4j_device dev, int64_t *in_use, int64_t *peak, int64_t *total);

RLHF4J_API int32_t rlhf4j_stream_create(rlhf4j_device dev, rlhf4j_stream *out);
RLHF4J_API int32_t rlhf4j_stream_destroy(rlhf4j_stream s);
RLHF4J_API int32_t rlhf4j_stream_synchronize(rlhf4j_stream s);

/* Events order work across streams without the host waiting: rlhf4j_event_record marks how far the work queued on
 * a stream has got, rlhf4j_stream_wait_event holds back what is queued on a stream afterwards until that mark is
 * passed, and rlhf4j_event_synchronize makes the host wait for it. An event recorded again marks the new point. The
 * CPU backend finishes every op before returning, so its events are always passed. */
RLHF4J_API int32_t rlhf4j_event_create(rlhf4j_device dev, rlhf4j_event *out);
RLHF4J_API int32_t rlhf4j_event_destroy(rlhf4j_event e);
RLHF4J_API int32_t rlhf4j_event_record(rlhf4j_event e, rlhf4j_stream s);
RLHF4J_API int32_t rlhf4j_stream_wait_event(rlhf4j_stream s, rlhf4j_event e);
RLHF4J_API int32_t rlhf4j_event_synchronize(rlhf4j_event e);
/* The backend's own handle of an event (a cudaEvent_t, which the driver API takes as a CUevent), for a library that
 * queues work beside the backend's (the dist shim's NCCL stream); NULL on the CPU backend. */
RLHF4J_API int32_t rlhf4j_event_native(rlhf4j_event e, void **out);

/* Uninitialised device memory, aligned to at least 256 bytes. bytes == 0 gives a valid unique pointer. */
RLHF4J_API int32_t rlhf4j_malloc(rlhf4j_device dev, int64_t bytes, void **out);
RLHF4J_API int32_t rlhf4j_free(rlhf4j_device dev, void *ptr);
RLHF4J_API int32_t rlhf4j_memcpy(rlhf4j_stream s, void *dst, const void *src, int64_t bytes, int32_t kind);
RLHF4J_API int32_t rlhf4j_memset(rlhf4j_stream s, void *dst, int32_t byte_value, int64_t bytes);
/* rlhf4j_memcpy without waiting: it returns once the copy is queued on s, a device-to-host copy included, so the
 * host may touch the host side only once an event recorded after it has passed. From pinned host memory
 * (rlhf4j_host_register) the copy runs beside the device's other work (ZeRO-Offload streams gradients down during
 * the backward this way); from pageable memory the driver makes it as rlhf4j_memcpy does. The CPU backend copies
 * before returning. */
RLHF4J_API int32_t rlhf4j_memcpy_async(rlhf4j_stream s, void *dst, const void *src, int64_t bytes, int32_t kind);
/* Pins [ptr, ptr + bytes) of host memory for rlhf4j_memcpy_async (cudaHostRegister), until rlhf4j_host_unregister.
 * Host memory the CPU backend allocates in blocks of 1 MiB or more is page-aligned and owns its pages, so it can be
 * pinned; a range that shares a page with one pinned already fails with RLHF4J_ERR_UNSUPPORTED (copies from it
 * still work, waiting as rlhf4j_memcpy does). The CPU backend has nothing to pin. */
RLHF4J_API int32_t rlhf4j_host_register(rlhf4j_device dev, void *ptr, int64_t bytes);
RLHF4J_API int32_t rlhf4j_host_unregister(rlhf4j_device dev, void *ptr);

/* ------------------------------------------------------------------------------------------------------------ */
/* Fill, random, convert, strided copy                                                                          */
/* ------------------------------------------------------------------------------------------------------------ */

/* x[i] = value for i < n. */
RLHF4J_API int32_t rlhf4j_fill(rlhf4j_stream s, int32_t dtype, int64_t n, void *x, double value);

typedef enum {
    RLHF4J_RANDOM_UNIFORM = 0, /* in [a, b) */
    RLHF4J_RANDOM_NORMAL = 1   /* mean a, standard deviation b */
} rlhf4j_random_kind;

/* Counter-based (Philox-4x32-10): element i draws from the 128-bit counter (offset + i, 0) under the 64-bit key
 * seed, so the numbers do not depend on the backend, the thread count or how a buffer is split, and a range can be
 * regenerated. F32/BF16/F16 uniform: u = (word0 >> 8) * 2^-24; F64 uniform: 53 bits from words 0-1. Normal:
 * Box-Muller from words 0-1 (F64: 53-bit uniforms from words 0-1 and 2-3), with the log argument in (0, 1]. A
 * uniform value that rounds up to b in the dtype becomes the largest value below b. */
RLHF4J_API int32_t rlhf4j_fill_random(rlhf4j_stream s, int32_t dtype, int64_t n, void *x, int32_t kind, double a,
                                      double b, uint64_t seed, uint64_t offset);

/* dst[i] = (dst_dtype) src[i]. Float to BF16/F16 rounds to nearest even (F64 and I32 go through F32 first, as
 * torch does); NaN stays NaN, overflow gives inf. Float to I32 truncates toward zero, saturates out of range, and
 * gives 0 for NaN. */
RLHF4J_API int32_t rlhf4j_convert(rlhf4j_stream s, int32_t src_dtype, const void *src, int32_t dst_dtype, void *dst,
                                  int64_t n);

/* For every index (i0..i{ndim-1}) < shape: dst[sum i*dst_strides] (+)= src[sum i*src_strides]. A zero source stride
 * broadcasts; destination strides must not alias (a zero destination stride over an extent > 1 is refused).
 * Strides may be negative. Serves contiguous(), slicing and concat backward, expand. */
RLHF4J_API int32_t rlhf4j_copy_strided(rlhf4j_stream s, int32_t dtype, int32_t ndim, const int64_t *shape,
                                       const void *src, const int64_t *src_strides, void *dst,
                                       const int64_t *dst_strides, int32_t accumulate);

/* ------------------------------------------------------------------------------------------------------------ */
/* Elementwise and reductions                                                                                    */
/* ------------------------------------------------------------------------------------------------------------ */

typedef enum {
    RLHF4J_UNARY_EXP = 0,
    RLHF4J_UNARY_LOG = 1,
    RLHF4J_UNARY_AFFINE = 2,      /* alpha * x + beta */
    RLHF4J_UNARY_CLAMP = 3,       /* min(max(x, alpha), beta); gradient passes where alpha <= x <= beta */
    RLHF4J_UNARY_RELU = 4,
    RLHF4J_UNARY_GELU_TANH = 5,   /* GPT-2's gelu_new */
    RLHF4J_UNARY_GELU_ERF = 6,    /* exact GELU */
    RLHF4J_UNARY_SILU = 7,
    RLHF4J_UNARY_SIGMOID = 8,
    RLHF4J_UNARY_LOG_SIGMOID = 9, /* stable: min(x, 0) - log1p(exp(-|x|)) */
    RLHF4J_UNARY_TANH = 10,
    RLHF4J_UNARY_SQUARE = 11,
    RLHF4J_UNARY_SQRT = 12,
    RLHF4J_UNARY_ABS = 13
} rlhf4j_unary_op;

/* y[i] = f(x[i]) for i < n; y may equal x. */
RLHF4J_API int32_t rlhf4j_unary(rlhf4j_stream s, int32_t op, int32_t dtype, int64_t n, const void *x, void *y,
                                double alpha, double beta);
/* dx[i] (+)= dy[i] * f'(x[i]); y = f(x) is passed too since some derivatives read it. EXP, SIGMOID, TANH and SQRT
 * read only y, AFFINE neither, the others only x: the one not read may be NULL. */
RLHF4J_API int32_t rlhf4j_unary_backward(rlhf4j_stream s, int32_t op, int32_t dtype, int64_t n, const void *x,
                                         const void *y, const void *dy, void *dx, double alpha, double beta,
                                         int32_t accumulate);

typedef enum {
    RLHF4J_BINARY_ADD = 0,
    RLHF4J_BINARY_SUB = 1,
    RLHF4J_BINARY_MUL = 2,
    RLHF4J_BINARY_DIV = 3,
    RLHF4J_BINARY_MAX = 4, /* gradient split in half on ties, as PyTorch's maximum */
    RLHF4J_BINARY_MIN = 5
} rlhf4j_binary_op;

/* out[idx] = a[idx . a_strides] op b[idx . b_strides] over the contiguous output `shape`; zero strides broadcast. */
RLHF4J_API int32_t rlhf4j_binary(rlhf4j_stream s, int32_t op, int32_t dtype, int32_t ndim, const int64_t *shape,
                                 const void *a, const int64_t *a_strides, const void *b, const int64_t *b_strides,
                                 void *out);
/* da, db (either may be NULL) have the output's full contiguous shape; the caller reduces broadcast dimensions.
 * ADD and SUB do not read a and b, which may then be NULL. */
RLHF4J_API int32_t rlhf4j_binary_backward(rlhf4j_stream s, int32_t op, int32_t dtype, int32_t ndim,
                                          const int64_t *shape, const void *a, const int64_t *a_strides,
                                          const void *b, const int64_t *b_strides, const void *dout, void *da,
                                          void *db, int32_t accumulate);

typedef enum {
    RLHF4J_REDUCE_SUM = 0,
    RLHF4J_REDUCE_MEAN = 1,
    RLHF4J_REDUCE_SUMSQ = 2 /* sum of squares, accumulated in double: global gradient norms */
} rlhf4j_reduce_op;

/* Viewing x as [outer, n, inner]: y[o, i] (+)= reduce over j of x[o, j, i]. MEAN over n == 0 is NaN, as torch. */
RLHF4J_API int32_t rlhf4j_reduce(rlhf4j_stream s, int32_t op, int32_t dtype, int64_t outer, int64_t n, int64_t inner,
                                 const void *x, void *y, int32_t accumulate);

/* Over rows of `cols` elements: SUM y[r] = sum_c x[r,c] m[r,c]; MEAN divides by sum_c m[r,c] (0 where that is 0).
 * The mask has the dtype of x (PPO's action masks are float). */
RLHF4J_API int32_t rlhf4j_masked_reduce(rlhf4j_stream s, int32_t op, int32_t dtype, int64_t rows, int64_t cols,
                                        const void *x, const void *mask, void *y);
RLHF4J_API int32_t rlhf4j_masked_reduce_backward(rlhf4j_stream s, int32_t op, int32_t dtype, int64_t rows,
                                                 int64_t cols, const void *mask, const void *dy, void *dx,
                                                 int32_t accumulate);

/* y = alpha * x + beta * y over n elements: EMA of parameters, gradient scaling and accumulation. beta == 0
 * ignores y's old contents (NaN included). */
RLHF4J_API int32_t rlhf4j_axpby(rlhf4j_stream s, int32_t dtype, int64_t n, double alpha, const void *x, double beta,
                                void *y);

/* ------------------------------------------------------------------------------------------------------------ */
/* Matrix multiply                                                                                               */
/* ------------------------------------------------------------------------------------------------------------ */

/* Row-major, for each p < batch:
 *   C_p[M,N] = alpha * op(A_p)[M,K] . op(B_p)[K,N] + beta * C_p + bias[N]
 * op(A) = A (M rows of lda) when trans_a == 0, else A^T with A stored as K rows of lda; likewise B.
 * A_p = A + p * stride_a (elements); stride_a or stride_b may be 0 (one operand shared by the batch), stride_c may
 * not when batch > 1. A and B share ab_dtype; C and bias have c_dtype; F64 goes with F64 only. bias may be NULL.
 * beta == 0 ignores C's old contents (NaN included); alpha == 0 reads neither A nor B; K == 0 gives beta C + bias.
 * Accumulation is F32 (F64 for F64) over all of K, rounded once into a BF16/F16 C. */
RLHF4J_API int32_t rlhf4j_gemm(rlhf4j_stream s, int32_t trans_a, int32_t trans_b, int64_t M, int64_t N, int64_t K,
                               double alpha, const void *A, int64_t lda, int64_t stride_a, const void *B, int64_t ldb,
                               int64_t stride_b, int32_t ab_dtype, double beta, void *C, int64_t ldc,
                               int64_t stride_c, int32_t c_dtype, int64_t batch, const void *bias);

/* ------------------------------------------------------------------------------------------------------------ */
/* Transformer ops                                                                                               */
/* ------------------------------------------------------------------------------------------------------------ */

/* out[t, :] = weight[ids[t], :] for t < n; every id must be in [0, vocab). */
RLHF4J_API int32_t rlhf4j_embedding_forward(rlhf4j_stream s, int32_t dtype, int64_t n, int64_t dim, int64_t vocab,
                                            const int32_t *ids, const void *weight, void *out);
/* dweight[ids[t], :] += dout[t, :]. */
RLHF4J_API int32_t rlhf4j_embedding_backward(rlhf4j_stream s, int32_t dtype, int64_t n, int64_t dim, int64_t vocab,
                                             const int32_t *ids, const void *dout, void *dweight);

/* y = (x - mean) * rstd * weight + bias over rows of `dim`; weight and bias may be NULL (no affine); mean and rstd
 * (rows, stat dtype) are saved for backward and may be NULL when there is no backward. Variance is biased, as
 * torch.nn.LayerNorm. In backward, dweight receives sum(dy * xhat) and dbias sum(dy) even when weight is NULL. */
RLHF4J_API int32_t rlhf4j_layernorm_forward(rlhf4j_stream s, int32_t dtype, int64_t rows, int64_t dim, const void *x,
                                            const void *weight, const void *bias, double eps, void *y, void *mean,
                                            void *rstd);
RLHF4J_API int32_t rlhf4j_layernorm_backward(rlhf4j_stream s, int32_t dtype, int64_t rows, int64_t dim,
                                             const void *x, const void *weight, const void *mean, const void *rstd,
                                             const void *dy, void *dx, void *dweight, void *dbias,
                                             int32_t accumulate);

/* y = x * rsqrt(mean(x^2) + eps) * weight (Llama's RMSNorm; weight may be NULL); rstd saved as for layernorm. */
RLHF4J_API int32_t rlhf4j_rmsnorm_forward(rlhf4j_stream s, int32_t dtype, int64_t rows, int64_t dim, const void *x,
                                          const void *weight, double eps, void *y, void *rstd);
RLHF4J_API int32_t rlhf4j_rmsnorm_backward(rlhf4j_stream s, int32_t dtype, int64_t rows, int64_t dim, const void *x,
                                           const void *weight, const void *rstd, const void *dy, void *dx,
                                           void *dweight, int32_t accumulate);

/* Softmax (log_softmax when log != 0) over rows of `cols`. */
RLHF4J_API int32_t rlhf4j_softmax_forward(rlhf4j_stream s, int32_t dtype, int32_t log, int64_t rows, int64_t cols,
                                          const void *x, void *y);
/* From the forward's output y: softmax dx = y (dy - sum(dy y)); log_softmax dx = dy - exp(y) sum(dy). */
RLHF4J_API int32_t rlhf4j_softmax_backward(rlhf4j_stream s, int32_t dtype, int32_t log, int64_t rows, int64_t cols,
                                           const void *y, const void *dy, void *dx, int32_t accumulate);

/* Token log-probabilities: logprobs[r] = logits[r, targets[r]] - logsumexp(logits[r, :]), rows of V logits that
 * are logits_row_stride apart (so logits[:, :-1] needs no copy). A target equal to ignore_index gives 0 and no
 * gradient; any other target outside [0, V) is an error, reported before anything is written. lse (rows, stat
 * dtype) is saved for backward (0 for an ignored row) and may be NULL when there is no backward (a frozen
 * reference model). Cross-entropy is the negated masked mean of these. */
RLHF4J_API int32_t rlhf4j_logprobs_forward(rlhf4j_stream s, int32_t dtype, int64_t rows, int64_t V,
                                           const void *logits, int64_t logits_row_stride, const int32_t *targets,
                                           int32_t ignore_index, void *logprobs, void *lse);
/* dlogits[r, :] (+)= dlogprobs[r] * (onehot(targets[r]) - softmax(logits[r, :])). */
RLHF4J_API int32_t rlhf4j_logprobs_backward(rlhf4j_stream s, int32_t dtype, int64_t rows, int64_t V,
                                            const void *logits, int64_t logits_row_stride, const int32_t *targets,
                                            int32_t ignore_index, const void *lse, const void *dlogprobs,
                                            void *dlogits, int64_t dlogits_row_stride, int32_t accumulate);

/* Multi-head attention, flash-style: softmax(scale * q k^T + mask) v without materialising the score matrix.
 *   q[b, t, h, d] = q[(b * Tq + t) * q_row_stride + h * D + d], h < Hq; k and v likewise with Tk rows and Hkv heads,
 *   so q, k and v can be column slices of one fused qkv projection. Query head h reads kv head h / (Hq / Hkv)
 *   (grouped-query attention); Hq must be a multiple of Hkv.
 *   Query row t sits at absolute position t + (Tk - Tq): with causal != 0 it sees keys j <= t + Tk - Tq, and with
 *   window > 0 only keys j > t + Tk - Tq - window (GPT-Neo's local layers). key_mask[b, j] == 0 hides key j
 *   (padding); key_mask may be NULL. A query row that sees no key (left padding; Tq > Tk under causal) gives zeros
 *   and zero gradient, and its lse is the stat dtype's largest finite value (FLT_MAX / DBL_MAX).
 *   out[b, t, h, d] is contiguous [B, Tq, Hq, D]. lse[b, h, t] (stat dtype) is saved for backward; NULL at inference. */
RLHF4J_API int32_t rlhf4j_attention_forward(rlhf4j_stream s, int32_t dtype, int32_t B, int32_t Tq, int32_t Tk,
                                            int32_t Hq, int32_t Hkv, int32_t D, const void *q, int64_t q_row_stride,
                                            const void *k, int64_t k_row_stride, const void *v,
                                            int64_t v_row_stride, const int32_t *key_mask, double scale,
                                            int32_t causal, int32_t window, void *out, void *lse);
/* dq, dk, dv use the row strides given (they may be slices of one fused dqkv buffer). */
RLHF4J_API int32_t rlhf4j_attention_backward(rlhf4j_stream s, int32_t dtype, int32_t B, int32_t Tq, int32_t Tk,
                                             int32_t Hq, int32_t Hkv, int32_t D, const void *q,
                                             int64_t q_row_stride, const void *k, int64_t k_row_stride,
                                             const void *v, int64_t v_row_stride, const int32_t *key_mask,
                                             double scale, int32_t causal, int32_t window, const void *out,
                                             const void *dout, const void *lse, void *dq, int64_t dq_row_stride,
                                             void *dk, int64_t dk_row_stride, void *dv, int64_t dv_row_stride,
                                             int32_t accumulate);

/* Attention of Tq new query rows per sequence against a KV cache, forward only (generation: prefill, then Tq = 1 per
 * step). k_cache and v_cache are [B, Tmax, Hkv, D], contiguous; the first Tk rows of each sequence are in use, the
 * Tq new ones (written before the call) last. key_mask [B, Tmax] I32 (0 = padding; NULL: none); only its first Tk
 * columns are read. Query t sits at position t + Tk - Tq and sees keys j <= that position (and, with window > 0,
 * j > position - window), as rlhf4j_attention_forward with causal = 1. q [B, Tq, Hq, D] has rows q_row_stride
 * apart; out is contiguous [B, Tq, Hq, D]. Needs 0 <= Tq <= Tk <= Tmax. */
RLHF4J_API int32_t rlhf4j_attention_decode(rlhf4j_stream s, int32_t dtype, int32_t B, int32_t Tq, int32_t Tk,
                                           int32_t Tmax, int32_t Hq, int32_t Hkv, int32_t D, const void *q,
                                           int64_t q_row_stride, const void *k_cache, const void *v_cache,
                                           const int32_t *key_mask, double scale, int32_t window, void *out);

/* Rotary position embedding in the rotate-half layout of Llama/Qwen2 in transformers, on the first rotary_dim of
 * each head of D: for i < rotary_dim / 2, angle = positions[b, t] * inv_freq[i] (computed in the stat dtype, as
 * transformers computes it in fp32),
 *   y[i] = x[i] cos - x[i + rotary_dim/2] sin,  y[i + rotary_dim/2] = x[i + rotary_dim/2] cos + x[i] sin;
 * dimensions past rotary_dim are copied. x is [B, T, H, D] with rows x_row_stride apart; y is contiguous.
 * inv_freq carries any rope scaling (linear, dynamic, llama3), so the kernel has none. */
RLHF4J_API int32_t rlhf4j_rope_forward(rlhf4j_stream s, int32_t dtype, int32_t B, int32_t T, int32_t H, int32_t D,
                                       int32_t rotary_dim, const void *x, int64_t x_row_stride,
                                       const int32_t *positions, const void *inv_freq, void *y);
/* The rotation's transpose: dx (+)= R(-angle) dy; dy contiguous, dx with rows dx_row_stride apart. */
RLHF4J_API int32_t rlhf4j_rope_backward(rlhf4j_stream s, int32_t dtype, int32_t B, int32_t T, int32_t H, int32_t D,
                                        int32_t rotary_dim, const void *dy, const int32_t *positions,
                                        const void *inv_freq, void *dx, int64_t dx_row_stride, int32_t accumulate);

/* Inverted dropout: element i is kept when u_i >= p, with u_i the F32 uniform of counter offset + i (so the test is
 * (word0 >> 8) >= ceil(p * 2^24) in integers, identical on every backend), and then scaled by 1 / (1 - p). The mask
 * is regenerated in backward instead of stored. p must be in [0, 1). */
RLHF4J_API int32_t rlhf4j_dropout_forward(rlhf4j_stream s, int32_t dtype, int64_t n, const void *x, void *y, double p,
                                          uint64_t seed, uint64_t offset);
RLHF4J_API int32_t rlhf4j_dropout_backward(rlhf4j_stream s, int32_t dtype, int64_t n, const void *dy, void *dx,
                                           double p, uint64_t seed, uint64_t offset, int32_t accumulate);

/* ------------------------------------------------------------------------------------------------------------ */
/* Optimizer                                                                                                     */
/* ------------------------------------------------------------------------------------------------------------ */

/* One AdamW step over n parameters, as torch.optim.AdamW computes it (decoupled weight decay, bias correction):
 *   g = grad * grad_scale;  param *= 1 - lr * weight_decay;  m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
 *   param -= lr / (1 - beta1^step) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
 * param, m and v are F32 (master weights and state); grad has grad_dtype. When param_copy is not NULL the updated
 * weights are also written there in copy_dtype (BF16 compute weights on GPU). step counts from 1. */
RLHF4J_API int32_t rlhf4j_adamw_step(rlhf4j_stream s, int64_t n, float *param, const void *grad, int32_t grad_dtype,
                                     float *m, float *v, double lr, double beta1, double beta2, double eps,
                                     double weight_decay, int64_t step, double grad_scale, void *param_copy,
                                     int32_t copy_dtype);

#ifdef __cplusplus
}
#endif

#endif /* RLHF4J_H */
