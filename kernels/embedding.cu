// embedding.cu: token embedding lookup (forward) and its gradient scatter-add (backward).
//
// Forward is a row gather, out[t, :] = weight[ids[t], :]: it only moves bytes, so every storage dtype works (F32, F64,
// BF16, F16, as on the CPU backend), in the widest unit (16, 8, 4 or 2 bytes) that the row size and pointers allow.
//
// Backward, dweight[ids[t], :] += dout[t, :], repeats ids (padding, common tokens), so positions cannot simply be
// spread over threads: float atomics would race and make the sums depend on timing. Instead the positions are
// grouped by id with a sort, and each dweight element is then written by exactly one thread:
//   1. sort the n keys (id << 32 | position). The keys are unique, so the sorted order is unique whatever the sort
//      does internally: a bitonic sort, in shared memory for tiles of 2048 keys (emb_sort_local_kernel) and with
//      global compare-exchange steps for the strides above (emb_sort_step_kernel); log2(n)^2 / 2 steps, all on
//      n * 8 bytes that stay in L2 (64 KB at n = 8192).
//   2. emb_tile_kernel: the sorted keys are cut into tiles of 64; a block takes one tile and a slice of columns, and
//      walks the tile's runs of equal ids in position order. A run wholly inside the tile does
//      dw = ((dw + dout[p1]) + dout[p2]) + ..., the CPU backend's order exactly; the run that enters the tile from
//      the previous one, and the run that leaves it for the next, are summed from 0 into per-tile f32 partials
//      (pin / pout). Tiles bound every block's work, so one id repeated 100k times (left padding) spreads over
//      many blocks instead of serialising on one.
//   3. emb_fixup_kernel: for each run that crosses tiles, the tile where it starts adds dw + pout + pin of each
//      following tile it covers, in tile order.
// Every element is a fixed sequence of f32 additions: bitwise reproducible, no atomics. BF16 dweight is read once,
// accumulated in f32 and rounded once.
//
// Ids are device memory: a one-block validation kernel finds the first id outside [0, vocab) before anything is
// written and the host reads its answer back (one stream synchronisation per call), so a bad id fails the call
// naming the position and value, as on the CPU backend.
//
// Memory traffic and floors on an H100 (3.0 TB/s) for GPT-2 124M (n = B*T = 8 * 1024, C = 768), bf16 / f32:
//   forward:  read a weight row, write an out row: 4 B / 8 B per element: 25.2 MB / 50.3 MB -> 8.4 us / 16.8 us
//             (plus the index check's host round trip, ~10-20 us of latency, not bandwidth)
//   backward: read dout once (2 B / 4 B per element), read + write each distinct dweight row once (<= 4 B / 8 B
//             per element), keys and partials in L2: 12.6-37.7 MB / 25.2-75.5 MB -> 4.2-12.6 us / 8.4-25.2 us.
#include "internal.cuh"
#include "rowwise.cuh"

// ------------------------------------------------------------------------------------------------------------------
// CUDA kernels

constexpr int EMB_SORT_TILE = 2048; // keys sorted in shared memory by one block (16 KiB)
constexpr int EMB_TILE = 64;        // sorted keys per block of the scatter
constexpr int EMB_MAX_THREADS = 256;

// @budget emb_forward_kernel regs<=32 smem<=0
template <typename U>
__global__ void __launch_bounds__(256) emb_forward_kernel(int64_t n, int64_t upr, const int32_t* __restrict__ ids,
                                                          const U* __restrict__ w, U* __restrict__ out) {
    const int64_t total = n * upr;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t t = i / upr, c = i - t * upr;
        out[i] = w[(int64_t)ids[t] * upr + c];
    }
}

__device__ __forceinline__ uint32_t key_id(uint64_t k) { return (uint32_t)(k >> 32); }
__device__ __forceinline__ uint32_t key_pos(uint64_t k) { return (uint32_t)k; }

// One compare-exchange step (stage k, stride j) of a bitonic sort over keys[0, len) at global index base: pair p
// is (lo, lo + j) with lo = p with a zero bit inserted at j; ascending where (index & k) == 0.
__device__ __forceinline__ void bitonic_step(uint64_t* sk, int len, int64_t base, int64_t k, int j) {
    for (int p = threadIdx.x; p < len / 2; p += blockDim.x) {
        const int lo = ((p & ~(j - 1)) << 1) | (p & (j - 1)), hi = lo + j;
        const bool asc = ((base + lo) & k) == 0;
        const uint64_t a = sk[lo], b = sk[hi];
        if ((a > b) == asc) {
            sk[lo] = b;
            sk[hi] = a;
        }
    }
}

// Tile of `tile` keys (a power of two <= EMB_SORT_TILE) in shared memory. build != 0: forms the keys from ids (past
// n: ~0, which sorts last) and runs stages 2..tile. build == 0: finishes stage kmerge > tile for strides < tile.
// @budget emb_sort_local_kernel regs<=32 smem<=16384
template <int = 0>
__global__ void __launch_bounds__(1024) emb_sort_local_kernel(int64_t n, const int32_t* __restrict__ ids,
                                                              uint64_t* __restrict__ keys, int tile, int build,
                                                              int64_t kmerge) {
    __shared__ uint64_t sk[EMB_SORT_TILE];
    const int64_t base = (int64_t)blockIdx.x * tile;
    for (int e = threadIdx.x; e < tile; e += blockDim.x) {
        const int64_t i = base + e;
        sk[e] = !build ? keys[i] : i < n ? ((uint64_t)(uint32_t)ids[i] << 32) | (uint64_t)i : ~(uint64_t)0;
    }
    __syncthreads();
    if (build) {
        for (int k = 2; k <= tile; k <<= 1)
            for (int j = k >> 1; j > 0; j >>= 1) {
                bitonic_step(sk, tile, base, k, j);
                __syncthreads();
            }
    } else {
        for (int j = tile >> 1; j > 0; j >>= 1) {
            bitonic_step(sk, tile, base, kmerge, j);
            __syncthreads();
        }
    }
    for (int e = threadIdx.x; e < tile; e += blockDim.x) keys[base + e] = sk[e];
}

// A global step (stage k, stride j >= the shared-memory tile): one thread per pair.
// @budget emb_sort_step_kernel regs<=32 smem<=0
template <int = 0>
__global__ void __launch_bounds__(256) emb_sort_step_kernel(int64_t npad, uint64_t* __restrict__ keys, int64_t k,
                                                            int64_t j) {
    const int64_t p = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= npad / 2) return;
    const int64_t lo = ((p & ~(j - 1)) << 1) | (p & (j - 1)), hi = lo + j;
    const bool asc = (lo & k) == 0;
    const uint64_t a = keys[lo], b = keys[hi];
    if ((a > b) == asc) {
        keys[lo] = b;
        keys[hi] = a;
    }
}

// Block (tile, column slice): thread owns VV columns; walks the tile's runs of equal ids (see the file comment).
// @budget emb_tile_kernel regs<=40 smem<=512
template <typename T, int VV>
__global__ void __launch_bounds__(256) emb_tile_kernel(int64_t n, int dim, const uint64_t* __restrict__ keys,
                                                       const T* __restrict__ dout, T* __restrict__ dw,
                                                       float* __restrict__ pin, float* __restrict__ pout) {
    __shared__ uint64_t sk[EMB_TILE];
    const int64_t tile = blockIdx.x, i0 = tile * EMB_TILE, i1 = i0 + EMB_TILE < n ? i0 + EMB_TILE : n;
    const int cnt = (int)(i1 - i0);
    for (int e = threadIdx.x; e < cnt; e += blockDim.x) sk[e] = keys[i0 + e];
    __syncthreads();
    const bool cross_in = i0 > 0 && key_id(keys[i0 - 1]) == key_id(sk[0]);
    const bool cross_out = i1 < n && key_id(keys[i1]) == key_id(sk[cnt - 1]);
    const int cv = blockIdx.y * blockDim.x + threadIdx.x;
    if (cv >= dim / VV) return; // after the block's only barrier
    const int64_t col = (int64_t)cv * VV;
    int e = 0;
    while (e < cnt) {
        const uint32_t id = key_id(sk[e]);
        int f = e + 1;
        while (f < cnt && key_id(sk[f]) == id) f++;
        const bool to_in = e == 0 && cross_in;
        const bool to_out = !to_in && f == cnt && cross_out;
        float acc[VV];
        if (to_in || to_out) {
#pragma unroll
            for (int i = 0; i < VV; i++) acc[i] = 0.0f;
        } else {
            load_n<VV>(acc, dw + (int64_t)id * dim + col);
        }
        for (int q = e; q < f; q++) {
            float d[VV];
            load_n<VV>(d, dout + (int64_t)key_pos(sk[q]) * dim + col);
#pragma unroll
            for (int i = 0; i < VV; i++) acc[i] += d[i];
        }
        if (to_in || to_out) {
            float* p = (to_in ? pin : pout) + tile * dim + col;
#pragma unroll
            for (int i = 0; i < VV; i++) p[i] = acc[i];
        } else {
            store_n<VV>(dw + (int64_t)id * dim + col, acc);
        }
        e = f;
    }
}

// Block (tile, column slice): if the tile's last run starts in this tile and continues into the next, adds
// dw + pout[tile] + pin[tile + 1] + ... over the tiles the run covers, and stores dw once.
// @budget emb_fixup_kernel regs<=40 smem<=0
template <typename T, int VV>
__global__ void __launch_bounds__(256) emb_fixup_kernel(int64_t n, int dim, const uint64_t* __restrict__ keys,
                                                        T* __restrict__ dw, const float* __restrict__ pin,
                                                        const float* __restrict__ pout) {
    const int64_t tile = blockIdx.x, i0 = tile * EMB_TILE, i1 = i0 + EMB_TILE < n ? i0 + EMB_TILE : n;
    const uint32_t id_first = key_id(keys[i0]), id = key_id(keys[i1 - 1]);
    const bool cross_in = i0 > 0 && key_id(keys[i0 - 1]) == id_first;
    const bool cross_out = i1 < n && key_id(keys[i1]) == id;
    if (!cross_out || (cross_in && id_first == id)) return; // the run does not start here, or does not cross
    const int cv = blockIdx.y * blockDim.x + threadIdx.x;
    if (cv >= dim / VV) return;
    const int64_t col = (int64_t)cv * VV;
    float acc[VV];
    load_n<VV>(acc, dw + (int64_t)id * dim + col);
#pragma unroll
    for (int i = 0; i < VV; i++) acc[i] += pout[tile * dim + col + i];
    for (int64_t t = tile + 1;; t++) {
#pragma unroll
        for (int i = 0; i < VV; i++) acc[i] += pin[t * dim + col + i];
        const int64_t j1 = (t + 1) * EMB_TILE;
        if (!(j1 < n && key_id(keys[j1 - 1]) == id && key_id(keys[j1]) == id)) break;
    }
    store_n<VV>(dw + (int64_t)id * dim + col, acc);
}

// ------------------------------------------------------------------------------------------------------------------
// kernel launchers

template <typename U>
static int32_t emb_forward_launch(const char* fn, rlhf4j_stream s, int64_t n, int64_t row_bytes, const int32_t* ids,
                                  const void* w, void* out) {
    const int64_t upr = row_bytes / (int64_t)sizeof(U), total = n * upr;
    int64_t grid = (total + 255) / 256;
    if (grid > (1 << 20)) grid = 1 << 20; // grid-stride beyond: enough blocks to fill any GPU
    LAUNCH(fn, (emb_forward_kernel<U>), dim3((unsigned)grid), dim3(256), 0, s, n, upr, ids, (const U*)w, (U*)out);
    return RLHF4J_OK;
}

static size_t round_up_256(size_t b) { return (b + 255) & ~(size_t)255; }

template <typename T, int VV>
static int32_t emb_backward_enqueue(const char* fn, rlhf4j_stream s, int64_t n, int64_t npad, int dim,
                                    const int32_t* ids, const void* dout, void* dweight, uint64_t* keys, float* pin,
                                    float* pout) {
    const int tile = (int)(npad < EMB_SORT_TILE ? npad : EMB_SORT_TILE);
    const int sort_threads = tile / 2 < 32 ? 32 : tile / 2;
    const unsigned sort_blocks = (unsigned)(npad / tile);
    const unsigned step_blocks = (unsigned)((npad / 2 + 255) / 256);
    LAUNCH(fn, (emb_sort_local_kernel<0>), dim3(sort_blocks), dim3(sort_threads), 0, s, n, ids, keys, tile, 1,
           (int64_t)0);
    for (int64_t k = 2 * (int64_t)tile; k <= npad; k <<= 1) {
        for (int64_t j = k >> 1; j >= tile; j >>= 1)
            LAUNCH(fn, (emb_sort_step_kernel<0>), dim3(step_blocks), dim3(256), 0, s, npad, keys, k, j);
        LAUNCH(fn, (emb_sort_local_kernel<0>), dim3(sort_blocks), dim3(sort_threads), 0, s, n, ids, keys, tile, 0,
               k);
    }
    const int64_t ntiles = (n + EMB_TILE - 1) / EMB_TILE;
    const int nvec = dim / VV;
    const int threads = nvec >= EMB_MAX_THREADS ? EMB_MAX_THREADS : (nvec + 31) / 32 * 32;
    const dim3 grid((unsigned)ntiles, (unsigned)((nvec + threads - 1) / threads));
    LAUNCH(fn, (emb_tile_kernel<T, VV>), grid, dim3(threads), 0, s, n, dim, (const uint64_t*)keys, (const T*)dout,
           (T*)dweight, pin, pout);
    if (ntiles > 1)
        LAUNCH(fn, (emb_fixup_kernel<T, VV>), grid, dim3(threads), 0, s, n, dim, (const uint64_t*)keys, (T*)dweight,
               (const float*)pin, (const float*)pout);
    return RLHF4J_OK;
}

template <typename T, int VV>
static int32_t emb_backward_launch(const char* fn, rlhf4j_stream s, int64_t n, int dim, const int32_t* ids,
                                   const void* dout, void* dweight) {
    int64_t npad = 1;
    while (npad < n) npad <<= 1;
    const int64_t ntiles = (n + EMB_TILE - 1) / EMB_TILE;
    const size_t keys_bytes = round_up_256((size_t)npad * sizeof(uint64_t));
    const size_t part_bytes = round_up_256((size_t)ntiles * (size_t)dim * sizeof(float));
    const size_t bytes = keys_bytes + 2 * part_bytes;
    char* ws = static_cast<char*>(rlhf4j_workspace(s, bytes));
    if (ws == nullptr)
        return rlhf4j_fail(RLHF4J_ERR_OUT_OF_MEMORY, "%s: no device memory for a %zu-byte workspace", fn, bytes);
    const int32_t st = emb_backward_enqueue<T, VV>(fn, s, n, npad, dim, ids, dout, dweight,
                                                   reinterpret_cast<uint64_t*>(ws),
                                                   reinterpret_cast<float*>(ws + keys_bytes),
                                                   reinterpret_cast<float*>(ws + keys_bytes + part_bytes));
    rlhf4j_workspace_release(s, ws);
    return st;
}

template <typename T>
static int32_t emb_backward(const char* fn, rlhf4j_stream s, int64_t n, int64_t dim, const int32_t* ids,
                            const void* dout, void* dweight) {
    constexpr int N = VecOf<T>::N;
    if (dim % N == 0 && ((uintptr_t)dout & 15u) == 0 && ((uintptr_t)dweight & 15u) == 0)
        return emb_backward_launch<T, N>(fn, s, n, (int)dim, ids, dout, dweight);
    return emb_backward_launch<T, 1>(fn, s, n, (int)dim, ids, dout, dweight);
}

// ------------------------------------------------------------------------------------------------------------------
// entry points (argument checks as the CPU backend's, with its messages)

static int32_t check_ids(const char* fn, rlhf4j_stream s, int64_t n, int64_t vocab, const int32_t* ids) {
    int64_t bad;
    int32_t value;
    int32_t st = rowwise_check_indices(fn, s, n, ids, vocab, 0, false, &bad, &value);
    if (st != RLHF4J_OK) return st;
    REQUIRE(bad < 0, "%s: ids[%lld] = %d is outside [0, vocab = %lld)", fn, (long long)bad, value, (long long)vocab);
    return RLHF4J_OK;
}

extern "C" RLHF4J_API int32_t rlhf4j_embedding_forward(rlhf4j_stream s, int32_t dtype, int64_t n, int64_t dim,
                                                       int64_t vocab, const int32_t* ids, const void* weight,
                                                       void* out) {
    static const char* fn = "rlhf4j_embedding_forward";
    CHECK_STREAM(fn, s);
    if (dtype == RLHF4J_I32 || rlhf4j_dtype_size(dtype) == 0) {
        REQUIRE(rlhf4j_dtype_size(dtype) != 0, "%s: unknown dtype %d", fn, dtype);
        UNSUPPORTED("%s: dtype %s is not a floating-point dtype (f32, f64, bf16, f16)", fn,
                    rlhf4j_dtype_name(dtype));
    }
    CHECK_NONNEG(fn, n);
    CHECK_POS(fn, dim);
    CHECK_POS(fn, vocab);
    CHECK_PTR(fn, ids);
    CHECK_PTR(fn, weight);
    CHECK_PTR(fn, out);
    int32_t st = check_ids(fn, s, n, vocab, ids);
    if (st != RLHF4J_OK) return st;
    if (n == 0) return RLHF4J_OK;
    const int64_t row = dim * rlhf4j_dtype_size(dtype);
    const uintptr_t a = (uintptr_t)weight | (uintptr_t)out | (uintptr_t)row;
    if ((a & 15u) == 0) return emb_forward_launch<Pack16>(fn, s, n, row, ids, weight, out);
    if ((a & 7u) == 0) return emb_forward_launch<uint64_t>(fn, s, n, row, ids, weight, out);
    if ((a & 3u) == 0) return emb_forward_launch<uint32_t>(fn, s, n, row, ids, weight, out);
    return emb_forward_launch<uint16_t>(fn, s, n, row, ids, weight, out);
}

extern "C" RLHF4J_API int32_t rlhf4j_embedding_backward(rlhf4j_stream s, int32_t dtype, int64_t n, int64_t dim,
                                                        int64_t vocab, const int32_t* ids, const void* dout,
                                                        void* dweight) {
    static const char* fn = "rlhf4j_embedding_backward";
    CHECK_STREAM(fn, s);
    CHECK_COMPUTE_DTYPE(fn, dtype);
    CHECK_NONNEG(fn, n);
    CHECK_POS(fn, dim);
    CHECK_POS(fn, vocab);
    CHECK_PTR(fn, ids);
    CHECK_PTR(fn, dout);
    if (dweight == NULL) return RLHF4J_OK; // a frozen embedding
    REQUIRE(n <= (int64_t)UINT32_MAX && dim <= INT32_MAX,
            "%s: n = %lld and dim = %lld must be < 2^32 and < 2^31 on the cuda backend", fn, (long long)n,
            (long long)dim);
    int32_t st = check_ids(fn, s, n, vocab, ids);
    if (st != RLHF4J_OK) return st;
    if (n == 0) return RLHF4J_OK;
    if (dtype == RLHF4J_F32) return emb_backward<float>(fn, s, n, dim, ids, dout, dweight);
    return emb_backward<bf16>(fn, s, n, dim, ids, dout, dweight);
}
