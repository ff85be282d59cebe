// gemm.cu: rlhf4j_gemm on the GPU. Row-major, for each p < batch:
//   C_p[M,N] = alpha * op(A_p)[M,K] . op(B_p)[K,N] + beta * C_p + bias[N]
// BF16 operands with F32 accumulation and C in BF16 or F32; F32 operands (C in F32 or BF16); F16 and F64 are
// unsupported (RLHF4J_ERR_UNSUPPORTED). The semantics are the header's and the CPU backend's (native/cpu/gemm.c):
// beta == 0 ignores C's old contents (NaN included), alpha == 0 or K == 0 reads neither A nor B and gives
// beta C + bias, accumulation is over all of K in F32 and rounds once into a BF16 C.
//
// Two implementations behind the one entry point:
//
// 1. cuBLASLt (GPU build only), the fast path for BF16 x BF16 -> BF16/F32 and F32 x F32 -> F32. Opened at run time
//    with dlopen by soname (libcublasLt.so.13, then .so.12; RLHF4J_CUBLASLT=<file or folder> names another, =off
//    disables it) and bound through function pointers to the dozen symbols used, so the library links nothing
//    of cuBLAS and loads on machines without it. Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T,
//    so cuBLASLt gets (m, n, k) = (N, M, K) with B's data as its first operand and A's as its second, no copies:
//      first operand  = B: trans_b == 0 -> OP_N on a N x K column-major view (ld = ldb), else OP_T on K x N;
//      second operand = A: trans_a == 0 -> OP_N on a K x M view (ld = lda), else OP_T on M x K;
//      D = C: N x M, ld = ldc; bias (length N = D's rows) through CUBLASLT_EPILOGUE_BIAS, in C's dtype (the
//      header's rule, which is cuBLASLt's default bias type: Dtype), added after alpha AB + beta C as here.
//    CUBLAS_COMPUTE_32F with CUDA_R_32F scale (exact fp32 for F32, not TF32). Strided batches through
//    CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT / STRIDED_BATCH_OFFSET (stride 0 = an operand shared by the batch), in
//    chunks of at most INT32_MAX. Descriptors and the heuristic's algorithm are cached per shape (and per device,
//    bias or not, and pointer alignment, which the heuristic depends on) in a mutex-guarded hash map; the workspace
//    (up to 32 MiB, what the algorithm asks for) comes from the device's caching allocator (rlhf4j_workspace), so
//    a steady-state step allocates nothing. If the heuristic finds no algorithm for a shape, that shape runs on
//    our own kernel (cached too), and rlhf4j_gemm_describe() says how many shapes did.
//
// 2. Our own kernels: always in the emulated build (so CI proves them on every push), and on a GPU when cuBLASLt
//    is absent or has no algorithm for a shape.
//    gemm_bf16_kernel<TA, TB, TC>: a 128 x 128 tile of C per block of 8 warps (2 along M x 4 along N, 64 x 32 per
//      warp: 4 x 4 mma.sync.m16n8k16 tiles, 64 fp32 accumulators per thread), K in steps of 32 through shared
//      memory, double-buffered with cp.async (the next step's tiles load while this one's mma run). Each operand
//      tile is stored the way it lies in global memory (K-contiguous rows, or M/N-contiguous rows for the other
//      transpose), so every transpose is a plain 16-byte copy, and ldmatrix / ldmatrix.trans turns it into the
//      mma fragment layout. Rows are padded by 16 bytes so that the 8 row addresses of an ldmatrix hit distinct
//      banks. Edges: 16-byte chunks past M/N/K are zero-filled by cp.async (no global read); a chunk that straddles
//      the edge, and every chunk when a pointer, leading dimension or batch stride is not a multiple of 8 elements,
//      is loaded element by element (zeros past the edge) and stored to shared memory as one 16-byte vector.
//      The epilogue applies alpha, beta (C not read when beta == 0) and bias in fp32 in registers and rounds once.
//      __launch_bounds__(256, 2): at most 128 registers, so two blocks (16 warps, 2 x <= 40 KiB of shared memory)
//      share an SM and one block's loads overlap the other's mma.
//    gemm_f32_kernel<TC>: F32 operands, plain fp32 FMA (no tensor cores: F32 is exact fp32 as on the CPU): a 64 x 64
//      tile per block of 256 threads, 4 x 4 outputs per thread from two 16 x 64 shared-memory panels per K step.
//    gemm_scale_kernel<TC>: C = beta C + bias, for K == 0 and alpha == 0 (then A and B may be NULL).
//
// Traffic and FLOPs: 2 M N K FLOPs; the least traffic is A, B and C once (+ C read when beta != 0), in bytes
// 2 (M K + K N) + c_size M N (BF16 operands). The own bf16 kernel reads A once per 128-column block and B once per
// 128-row block (K (M N / 128) * 2 elements in all, mostly from L2).
// Floors on an H100 (798 TFLOP/s bf16, 3.0 TB/s) for GPT-2 124M's training GEMMs (B T = 8192 rows, bf16 C):
//   qkv      8192 x 2304 x 768     29.0 GFLOP  36.3 us   |  53.9 MB  18.0 us   compute-bound
//   attn out 8192 x  768 x 768      9.7 GFLOP  12.1 us   |  26.3 MB   8.8 us   compute-bound
//   fc       8192 x 3072 x 768     38.7 GFLOP  48.4 us   |  67.6 MB  22.5 us   compute-bound
//   fc out   8192 x  768 x 3072    38.7 GFLOP  48.4 us   |  67.6 MB  22.5 us   compute-bound
//   lm head  8192 x 50257 x 768   632.4 GFLOP 792.5 us   | 913.2 MB 304.4 us   compute-bound
// (backward: the same FLOPs twice, dX = dY W and dW = dY^T X). cuBLASLt is expected near the floor; the own
// mma.sync kernel, without Hopper's wgmma and TMA, well under it (not measured yet: no GPU has run this file): it
// is the fallback and what CI proves.
//
// Resource budgets (sm_90, checked by check_resources.sh against the ptxas report; static shared memory):
// @budget gemm_bf16_kernel regs<=128 smem<=40960
// @budget gemm_f32_kernel regs<=80 smem<=8704
// @budget gemm_scale_kernel regs<=32 smem<=0
#include "internal.cuh"
#include "mma.cuh"

#include <mutex>

#ifndef RLHF4J_EMU
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unordered_map>
#endif

// ------------------------------------------------------------------------------------------------------------------
// CUDA kernels

namespace {

struct GemmArgs {
    const void* A;
    const void* B;
    void* C;
    const void* bias;  // NULL: none
    int64_t M, N, K, lda, ldb, ldc, sa, sb, sc, batch;
    float alpha, beta;
    int vec_a, vec_b;  // 16-byte copies allowed: pointer, leading dimension and batch stride all multiples of 8
};

constexpr int TC_BM = 128, TC_BN = 128, TC_BK = 32, TC_THREADS = 256;
constexpr int TC_PAD = 8;  // elements of padding per shared-memory row (16 bytes): conflict-free ldmatrix
// A tile: K-contiguous (trans_a == 0): BM rows of BK; M-contiguous (trans_a != 0): BK rows of BM. B likewise.
template <bool KROWS, int R>  // KROWS: stored as BK rows of R; else R rows of BK
struct TileShape {
    static constexpr int rows = KROWS ? TC_BK : R;
    static constexpr int cols = KROWS ? R : TC_BK;
    static constexpr int pitch = cols + TC_PAD;
    static constexpr int elems = rows * pitch;
};

// The 16-byte chunks one thread copies of one operand's tile, K step after K step. A tile is ROWS x COLS with COLS
// contiguous in global and shared memory; K runs along the rows (KROWS: BK rows of M or N) or along the columns
// (else: M or N rows of BK). Each thread owns CHUNKS / 256 chunks at fixed places in the tile; what changes from one
// K step to the next is only the global pointer (+ BK elements or + BK rows) and how much of K is left, so the
// per-chunk state is set up once per tile and the K loop carries a pointer and two small integers per chunk.
// A chunk wholly outside the matrix is zero-filled by cp.async without a global read; a whole chunk in bounds is
// one cp.async when vec (16-byte aligned); a chunk that straddles the edge, or any chunk when !vec, is loaded
// element by element (zeros past the edge) and stored to shared memory as one 16-byte vector.
template <int ROWS, int COLS, int PITCH, bool KROWS>
struct TileLoader {
    static constexpr int CPR = COLS / 8, N = ROWS * CPR / TC_THREADS;
    static_assert(ROWS * CPR % TC_THREADS == 0, "whole chunks per thread");
    const uint16_t* ptr[N];  // this K step's source of chunk i
    int fixed[N];            // KROWS: elements of the chunk inside M (or N), 0..8; else 1 if its row is inside

    // The tile at (m0 or n0) = f0 of an operand with `extent` rows (or columns) along M (or N), leading dim ld.
    __device__ __forceinline__ void init(const uint16_t* g, int64_t ld, int64_t f0, int64_t extent) {
#pragma unroll
        for (int i = 0; i < N; i++) {
            const int chunk = (int)threadIdx.x + i * TC_THREADS;
            const int row = chunk / CPR, col = (chunk % CPR) * 8;
            if (KROWS) {  // rows are k, columns are m (or n)
                const int64_t left = extent - (f0 + col);
                fixed[i] = left <= 0 ? 0 : left >= 8 ? 8 : (int)left;
                ptr[i] = g + (int64_t)row * ld + (fixed[i] ? f0 + col : 0);
            } else {      // rows are m (or n), columns are k
                fixed[i] = f0 + row < extent;
                ptr[i] = g + (fixed[i] ? (f0 + row) * ld : 0) + col;
            }
        }
    }

    // Issues this K step's copies into s (the stage's tile) and advances to the next step (ld is read from the
    // kernel's parameters each time rather than kept in a register: registers are the limit here).
    __device__ __forceinline__ void load(uint16_t* s, int64_t k0, int64_t K, int64_t ld, bool vec) {
#pragma unroll
        for (int i = 0; i < N; i++) {
            const int chunk = (int)threadIdx.x + i * TC_THREADS;
            const int row = chunk / CPR, col = (chunk % CPR) * 8;
            uint16_t* dst = s + row * PITCH + col;
            const int64_t k = k0 + (KROWS ? row : col);  // recomputed, not kept: registers are the limit here
            int n;  // elements of the chunk inside the matrix
            if (KROWS) n = k < K ? fixed[i] : 0;
            else n = !fixed[i] ? 0 : K - k >= 8 ? 8 : K - k > 0 ? (int)(K - k) : 0;
            if (n == 0) {
                cp_async_16_zfill(dst, ptr[i], false);
            } else if (n == 8 && vec) {
                cp_async_16(dst, ptr[i]);
            } else {
                const uint16_t* src = ptr[i];
                uint32_t w[4];
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    const uint32_t lo = 2 * j < n ? src[2 * j] : 0u, hi = 2 * j + 1 < n ? src[2 * j + 1] : 0u;
                    w[j] = lo | hi << 16;
                }
                *reinterpret_cast<uint4*>(dst) = make_uint4(w[0], w[1], w[2], w[3]);
            }
            ptr[i] += KROWS ? TC_BK * ld : TC_BK;
        }
    }
};

template <typename TC>
__device__ __forceinline__ void store_c(TC* __restrict__ c, const TC* __restrict__ bias, int64_t at, int64_t col,
                                        float acc, float alpha, float beta) {
    float x = alpha * acc;
    if (bias) x += to_float(bias[col]);
    if (beta != 0.0f) x = fmaf(beta, to_float(c[at]), x);
    c[at] = from_float<TC>(x);
}

// One 128 x 128 tile of C per block (grid: x over N tiles, y over M tiles, z over the batch; the host splits
// problems whose grid would exceed 65535 in y or z). Warp w: rows 64 (w / 4) .. +64, columns 32 (w % 4) .. +32.
template <bool TA, bool TB, typename TC>
__global__ void __launch_bounds__(TC_THREADS, 2) gemm_bf16_kernel(GemmArgs p) {
    using SA = TileShape<TA, TC_BM>;   // trans_a: A is K x M, M-contiguous -> BK rows of BM
    using SB = TileShape<!TB, TC_BN>;  // trans_b == 0: B is K x N, N-contiguous -> BK rows of BN
    constexpr int STAGE = SA::elems + SB::elems;
    __shared__ __align__(128) uint16_t smem[2 * STAGE];

    const uint16_t* __restrict__ A = static_cast<const uint16_t*>(p.A);
    const uint16_t* __restrict__ B = static_cast<const uint16_t*>(p.B);
    TC* __restrict__ C = static_cast<TC*>(p.C);
    const TC* __restrict__ bias = static_cast<const TC*>(p.bias);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int wm = warp >> 2, wn = warp & 3;
    const int q = lane >> 3, r8 = lane & 7;  // ldmatrix: the 8x8 matrix this lane addresses, and its row in it
    const int g = lane >> 2, t4 = lane & 3;  // mma fragments: row group and thread in group
    const int64_t n0 = (int64_t)blockIdx.x * TC_BN;
    const int kt_count = (int)((p.K + TC_BK - 1) / TC_BK);

    const int64_t z = blockIdx.z, m0 = (int64_t)blockIdx.y * TC_BM;
    const uint16_t* Az = A + z * p.sa;
    const uint16_t* Bz = B + z * p.sb;
    float acc[4][4][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[i][j][e] = 0.0f;

    TileLoader<SA::rows, SA::cols, SA::pitch, TA> la;
    TileLoader<SB::rows, SB::cols, SB::pitch, !TB> lb;
    la.init(Az, p.lda, m0, p.M);
    lb.init(Bz, p.ldb, n0, p.N);
    auto load_stage = [&](int stage, int kt) {
        uint16_t* sa = smem + stage * STAGE;
        la.load(sa, (int64_t)kt * TC_BK, p.K, p.lda, p.vec_a);
        lb.load(sa + SA::elems, (int64_t)kt * TC_BK, p.K, p.ldb, p.vec_b);
    };

    load_stage(0, 0);
    cp_async_commit();
    for (int kt = 0; kt < kt_count; kt++) {
        if (kt + 1 < kt_count) load_stage((kt + 1) & 1, kt + 1);
        cp_async_commit();   // possibly empty: keeps "all but the newest group" = this step's tiles
        cp_async_wait<1>();
        __syncthreads();     // this step's tiles (cp.async and plain stores) visible to every warp

        const uint16_t* sa = smem + (kt & 1) * STAGE;
        const uint16_t* sb = sa + SA::elems;
#pragma unroll
        for (int kk = 0; kk < TC_BK; kk += 16) {
            // B fragments of the warp's 4 n8 tiles first (8 registers), then one m16 row of A at a time
            // (4 registers) against them: 64 accumulators + 12 fragment registers stay under 128.
            uint32_t bfrag[4][2];
#pragma unroll
            for (int nj = 0; nj < 2; nj++) {
                const int nb = wn * 32 + nj * 16;
                uint32_t t[4];
                if (TB) ldmatrix_x4(t, sb + (nb + (q >> 1) * 8 + r8) * SB::pitch + kk + (q & 1) * 8);
                else ldmatrix_x4_trans(t, sb + (kk + (q & 1) * 8 + r8) * SB::pitch + nb + (q >> 1) * 8);
                bfrag[2 * nj][0] = t[0];
                bfrag[2 * nj][1] = t[1];
                bfrag[2 * nj + 1][0] = t[2];
                bfrag[2 * nj + 1][1] = t[3];
            }
#pragma unroll
            for (int mi = 0; mi < 4; mi++) {
                const int mb = wm * 64 + mi * 16;
                uint32_t af[4];
                if (TA) ldmatrix_x4_trans(af, sa + (kk + (q >> 1) * 8 + r8) * SA::pitch + mb + (q & 1) * 8);
                else ldmatrix_x4(af, sa + (mb + (q & 1) * 8 + r8) * SA::pitch + kk + (q >> 1) * 8);
#pragma unroll
                for (int ni = 0; ni < 4; ni++) mma_m16n8k16_bf16(acc[mi][ni], af, bfrag[ni], acc[mi][ni]);
            }
        }
        __syncthreads();     // every warp is done with this stage before the next step refills it
    }

    // Accumulator (mi, ni, e): row g (+8 for e >= 2) of m16 tile mi, columns 2 t4 + (e & 1) of n8 tile ni.
#pragma unroll
    for (int mi = 0; mi < 4; mi++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const int64_t row = m0 + wm * 64 + mi * 16 + g + h * 8;
            if (row >= p.M) continue;
#pragma unroll
            for (int ni = 0; ni < 4; ni++)
#pragma unroll
                for (int j = 0; j < 2; j++) {
                    const int64_t col = n0 + wn * 32 + ni * 8 + 2 * t4 + j;
                    if (col < p.N)
                        store_c(C + z * p.sc, bias, row * p.ldc + col, col, acc[mi][ni][2 * h + j], p.alpha, p.beta);
                }
        }
}

constexpr int F32_BM = 64, F32_BN = 64, F32_BK = 16, F32_THREADS = 256;

// F32 operands: one 64 x 64 tile of C per block, thread (ty, tx) = (tid / 16, tid % 16) computes rows 4 ty..+4 and
// columns 4 tx..+4. Shared panels hold op(A)^T and op(B) as BK rows of 64 (+4 padding), so a thread reads its 4
// rows' (and 4 columns') values of one k as one float4. Loads are coalesced along the stored contiguous dimension.
template <typename TC>
__global__ void __launch_bounds__(F32_THREADS) gemm_f32_kernel(GemmArgs p, int ta, int tb) {
    __shared__ __align__(16) float As[F32_BK][F32_BM + 4];
    __shared__ __align__(16) float Bs[F32_BK][F32_BN + 4];
    const float* __restrict__ A = static_cast<const float*>(p.A);
    const float* __restrict__ B = static_cast<const float*>(p.B);
    TC* __restrict__ C = static_cast<TC*>(p.C);
    const TC* __restrict__ bias = static_cast<const TC*>(p.bias);
    const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
    const int64_t mtiles = (p.M + F32_BM - 1) / F32_BM;
    const int64_t n0 = (int64_t)blockIdx.x * F32_BN;

    for (int64_t z = blockIdx.z; z < p.batch; z += gridDim.z) {
        const float* Az = A + z * p.sa;
        const float* Bz = B + z * p.sb;
        TC* Cz = C + z * p.sc;
        for (int64_t mt = blockIdx.y; mt < mtiles; mt += gridDim.y) {
            const int64_t m0 = mt * F32_BM;
            float acc[4][4] = {};
            for (int64_t k0 = 0; k0 < p.K; k0 += F32_BK) {
#pragma unroll
                for (int i = 0; i < F32_BM * F32_BK / F32_THREADS; i++) {
                    const int idx = tid + i * F32_THREADS;
                    // trans_a == 0: A rows are K-contiguous -> consecutive threads along k; else along m.
                    const int mm = ta ? idx % F32_BM : idx / F32_BK, kk = ta ? idx / F32_BM : idx % F32_BK;
                    const int64_t m = m0 + mm, k = k0 + kk;
                    As[kk][mm] = m < p.M && k < p.K ? Az[ta ? k * p.lda + m : m * p.lda + k] : 0.0f;
                    const int nn = tb ? idx / F32_BK : idx % F32_BN, kb = tb ? idx % F32_BK : idx / F32_BN;
                    const int64_t n = n0 + nn, kb2 = k0 + kb;
                    Bs[kb][nn] = n < p.N && kb2 < p.K ? Bz[tb ? n * p.ldb + kb2 : kb2 * p.ldb + n] : 0.0f;
                }
                __syncthreads();
#pragma unroll
                for (int kk = 0; kk < F32_BK; kk++) {
                    const float4 a = *reinterpret_cast<const float4*>(&As[kk][ty * 4]);
                    const float4 b = *reinterpret_cast<const float4*>(&Bs[kk][tx * 4]);
                    const float av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
                    for (int i = 0; i < 4; i++)
#pragma unroll
                        for (int j = 0; j < 4; j++) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
                }
                __syncthreads();
            }
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const int64_t row = m0 + ty * 4 + i;
                if (row >= p.M) continue;
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    const int64_t col = n0 + tx * 4 + j;
                    if (col < p.N) store_c(Cz, bias, row * p.ldc + col, col, acc[i][j], p.alpha, p.beta);
                }
            }
        }
    }
}

// C = beta C + bias (K == 0 or alpha == 0), a grid-stride loop over batch x M x N.
template <typename TC>
__global__ void __launch_bounds__(256) gemm_scale_kernel(TC* __restrict__ C, const TC* __restrict__ bias, int64_t M,
                                                         int64_t N, int64_t ldc, int64_t sc, int64_t batch,
                                                         float beta) {
    const int64_t total = batch * M * N;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t z = i / (M * N), rem = i % (M * N), row = rem / N, col = rem % N;
        const int64_t at = z * sc + row * ldc + col;
        float x = bias ? to_float(bias[col]) : 0.0f;
        if (beta != 0.0f) x = fmaf(beta, to_float(C[at]), x);
        C[at] = from_float<TC>(x);
    }
}

}  // namespace

// ------------------------------------------------------------------------------------------------------------------
// kernel launchers

namespace {

const char* const FN = "rlhf4j_gemm";

inline unsigned capped(int64_t n) { return (unsigned)(n < 65535 ? (n < 1 ? 1 : n) : 65535); }

inline bool aligned16(const void* p, int64_t ld, int64_t stride, int64_t batch) {
    return ((uintptr_t)p & 15) == 0 && ld % 8 == 0 && (batch == 1 || stride % 8 == 0);
}

template <typename TC>
int32_t launch_scale(rlhf4j_stream s, const GemmArgs& a) {
    const int64_t total = a.batch * a.M * a.N;
    unsigned grid = grid_for(s, total, 256);
    return LAUNCH(FN, gemm_scale_kernel<TC>, dim3(grid), dim3(256), 0, s, static_cast<TC*>(a.C),
                  static_cast<const TC*>(a.bias), a.M, a.N, a.ldc, a.sc, a.batch, a.beta);
}

template <bool TA, bool TB, typename TC>
int32_t launch_bf16(rlhf4j_stream s, const GemmArgs& a) {
    // grid.y and grid.z stop at 65535: larger problems go in pieces of 65535 M tiles and 65535 batch entries.
    const int64_t mstep = (int64_t)65535 * TC_BM, zstep = 65535;
    for (int64_t z0 = 0; z0 < a.batch; z0 += zstep)
        for (int64_t m0 = 0; m0 < a.M; m0 += mstep) {
            GemmArgs b = a;
            b.batch = a.batch - z0 < zstep ? a.batch - z0 : zstep;
            b.M = a.M - m0 < mstep ? a.M - m0 : mstep;
            b.A = static_cast<const uint16_t*>(a.A) + z0 * a.sa + (TA ? m0 : m0 * a.lda);
            b.B = static_cast<const uint16_t*>(a.B) + z0 * a.sb;
            b.C = static_cast<TC*>(a.C) + z0 * a.sc + m0 * a.ldc;
            dim3 grid((unsigned)((b.N + TC_BN - 1) / TC_BN), (unsigned)((b.M + TC_BM - 1) / TC_BM), (unsigned)b.batch);
            LAUNCH(FN, (gemm_bf16_kernel<TA, TB, TC>), grid, dim3(TC_THREADS), 0, s, b);
        }
    return RLHF4J_OK;
}

template <typename TC>
int32_t launch_bf16_any(rlhf4j_stream s, const GemmArgs& a, bool ta, bool tb) {
    if (!ta && !tb) return launch_bf16<false, false, TC>(s, a);
    if (!ta && tb) return launch_bf16<false, true, TC>(s, a);
    if (ta && !tb) return launch_bf16<true, false, TC>(s, a);
    return launch_bf16<true, true, TC>(s, a);
}

template <typename TC>
int32_t launch_f32(rlhf4j_stream s, const GemmArgs& a, bool ta, bool tb) {
    dim3 grid((unsigned)((a.N + F32_BN - 1) / F32_BN), capped((a.M + F32_BM - 1) / F32_BM), capped(a.batch));
    return LAUNCH(FN, gemm_f32_kernel<TC>, grid, dim3(F32_THREADS), 0, s, a, (int)ta, (int)tb);
}

// Our own kernels for a validated problem with products to compute.
int32_t own_gemm(rlhf4j_stream s, const GemmArgs& a, bool ta, bool tb, int32_t ab_dtype, int32_t c_dtype) {
    if (a.N > (int64_t)INT32_MAX * 64)
        return rlhf4j_fail(RLHF4J_ERR_UNSUPPORTED, "%s: N = %lld is beyond the grid of the own gemm kernel", FN,
                           (long long)a.N);
    if (ab_dtype == RLHF4J_BF16)
        return c_dtype == RLHF4J_F32 ? launch_bf16_any<float>(s, a, ta, tb) : launch_bf16_any<bf16>(s, a, ta, tb);
    return c_dtype == RLHF4J_F32 ? launch_f32<float>(s, a, ta, tb) : launch_f32<bf16>(s, a, ta, tb);
}

}  // namespace

// ------------------------------------------------------------------------------------------------------------------
// cuBLASLt, opened at run time (GPU build only)

#ifndef RLHF4J_EMU
namespace {

// Our declarations of the few cuBLASLt types and constants used. Every value below was checked against NVIDIA's
// headers: cublasLt.h and cublas_api.h of CUDA 12.6.3 (github.com/zspace/system.cuda-12.6, include/, read 2025-11)
// and library_types.h of the CUDA 13.0 toolkit installed on the development machine
// (/usr/local/cuda-13.0/include); and cross-checked against Modular's CUDA 13 bindings
// (github.com/rcghpge/modular, max/kernels/src/_cublas/cublaslt.mojo, cublas.mojo, dtype.mojo, which open
// libcublasLt.so.13 first). cuBLASLt keeps these numbers stable across major versions (they are its ABI).
typedef int32_t lt_status;                    // cublasStatus_t; CUBLAS_STATUS_SUCCESS = 0 (cublas_api.h)
typedef void* lt_handle;                      // cublasLtHandle_t (struct cublasLtContext*)
typedef void* lt_desc;                        // cublasLtMatmulDesc_t
typedef void* lt_layout;                      // cublasLtMatrixLayout_t
typedef void* lt_pref;                        // cublasLtMatmulPreference_t
struct lt_algo { uint64_t data[8]; };         // cublasLtMatmulAlgo_t (cublasLt.h: uint64_t data[8])
struct lt_heuristic {                         // cublasLtMatmulHeuristicResult_t (cublasLt.h)
    lt_algo algo;
    size_t workspaceSize;
    lt_status state;
    float wavesCount;
    int reserved[4];
};
static_assert(sizeof(lt_algo) == 64 && sizeof(lt_heuristic) == 96, "cuBLASLt struct layout");

enum : int32_t {
    LT_SUCCESS = 0,                           // CUBLAS_STATUS_SUCCESS (cublas_api.h)
    LT_COMPUTE_32F = 68,                      // CUBLAS_COMPUTE_32F (cublas_api.h, cublasComputeType_t)
    LT_R_32F = 0,                             // CUDA_R_32F (library_types.h)
    LT_R_16BF = 14,                           // CUDA_R_16BF (library_types.h)
    LT_OP_N = 0,                              // CUBLAS_OP_N (cublas_api.h)
    LT_OP_T = 1,                              // CUBLAS_OP_T
    // cublasLtMatmulDescAttributes_t (cublasLt.h)
    LT_DESC_TRANSA = 3,                       // CUBLASLT_MATMUL_DESC_TRANSA, int32_t
    LT_DESC_TRANSB = 4,                       // CUBLASLT_MATMUL_DESC_TRANSB, int32_t
    LT_DESC_EPILOGUE = 7,                     // CUBLASLT_MATMUL_DESC_EPILOGUE, uint32_t
    LT_DESC_BIAS_POINTER = 8,                 // CUBLASLT_MATMUL_DESC_BIAS_POINTER, const void*
    // (CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE = 26, int32_t, default -1 = Dtype: what we want, so never set)
    // cublasLtEpilogue_t
    LT_EPILOGUE_DEFAULT = 1,                  // CUBLASLT_EPILOGUE_DEFAULT
    LT_EPILOGUE_BIAS = 4,                     // CUBLASLT_EPILOGUE_BIAS
    // cublasLtMatrixLayoutAttribute_t
    LT_LAYOUT_BATCH_COUNT = 5,                // CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, int32_t
    LT_LAYOUT_STRIDED_BATCH_OFFSET = 6,       // CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, int64_t (elements)
    // cublasLtMatmulPreferenceAttributes_t
    LT_PREF_MAX_WORKSPACE_BYTES = 1,          // CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, uint64_t
    LT_PREF_MIN_ALIGNMENT_A_BYTES = 5,        // CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, uint32_t (default 256)
    LT_PREF_MIN_ALIGNMENT_B_BYTES = 6,        // ..._B_BYTES
    LT_PREF_MIN_ALIGNMENT_C_BYTES = 7,        // ..._C_BYTES
    LT_PREF_MIN_ALIGNMENT_D_BYTES = 8,        // ..._D_BYTES
};

// The workspace cuBLASLt's heuristic may use (llm.c's and PyTorch's choice for Hopper).
constexpr size_t LT_WORKSPACE = (size_t)32 << 20;

struct Lt {
    void* lib = nullptr;
    char path[512] = "";
    char why[512] = "";  // why it is not used, when lib == nullptr
    size_t version = 0;
    lt_status (*create)(lt_handle*);
    lt_status (*desc_create)(lt_desc*, int32_t compute, int32_t scale);
    lt_status (*desc_destroy)(lt_desc);
    lt_status (*desc_set)(lt_desc, int32_t attr, const void* buf, size_t size);
    lt_status (*layout_create)(lt_layout*, int32_t type, uint64_t rows, uint64_t cols, int64_t ld);
    lt_status (*layout_destroy)(lt_layout);
    lt_status (*layout_set)(lt_layout, int32_t attr, const void* buf, size_t size);
    lt_status (*pref_create)(lt_pref*);
    lt_status (*pref_destroy)(lt_pref);
    lt_status (*pref_set)(lt_pref, int32_t attr, const void* buf, size_t size);
    lt_status (*heuristic)(lt_handle, lt_desc, lt_layout, lt_layout, lt_layout, lt_layout, lt_pref, int,
                           lt_heuristic*, int*);
    lt_status (*matmul)(lt_handle, lt_desc, const void* alpha, const void* A, lt_layout, const void* B, lt_layout,
                        const void* beta, const void* C, lt_layout, void* D, lt_layout, const lt_algo*, void* ws,
                        size_t ws_size, cudaStream_t);
    const char* (*status_name)(lt_status);  // optional
    size_t (*get_version)(void);            // optional
};

Lt g_lt;
std::once_flag g_lt_once;
std::mutex g_lt_mu;              // handles, cache
lt_handle g_handles[64];         // per device ordinal
bool g_handle_failed[64];        // cublasLtCreate failed there: own kernels
int64_t g_fallback_shapes = 0;   // shapes for which the heuristic found no algorithm

bool lt_try_open(const char* file) {
    void* h = dlopen(file, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char* e = dlerror();
        snprintf(g_lt.why, sizeof g_lt.why, "%s", e ? e : file);
        return false;
    }
    struct Sym { void** slot; const char* name; bool required; } syms[] = {
        {(void**)&g_lt.create, "cublasLtCreate", true},
        {(void**)&g_lt.desc_create, "cublasLtMatmulDescCreate", true},
        {(void**)&g_lt.desc_destroy, "cublasLtMatmulDescDestroy", true},
        {(void**)&g_lt.desc_set, "cublasLtMatmulDescSetAttribute", true},
        {(void**)&g_lt.layout_create, "cublasLtMatrixLayoutCreate", true},
        {(void**)&g_lt.layout_destroy, "cublasLtMatrixLayoutDestroy", true},
        {(void**)&g_lt.layout_set, "cublasLtMatrixLayoutSetAttribute", true},
        {(void**)&g_lt.pref_create, "cublasLtMatmulPreferenceCreate", true},
        {(void**)&g_lt.pref_destroy, "cublasLtMatmulPreferenceDestroy", true},
        {(void**)&g_lt.pref_set, "cublasLtMatmulPreferenceSetAttribute", true},
        {(void**)&g_lt.heuristic, "cublasLtMatmulAlgoGetHeuristic", true},
        {(void**)&g_lt.matmul, "cublasLtMatmul", true},
        {(void**)&g_lt.status_name, "cublasLtGetStatusName", false},
        {(void**)&g_lt.get_version, "cublasLtGetVersion", false},
    };
    for (auto& s : syms) {
        *s.slot = dlsym(h, s.name);
        if (!*s.slot && s.required) {
            snprintf(g_lt.why, sizeof g_lt.why, "%s lacks %s", file, s.name);
            dlclose(h);
            return false;
        }
    }
    g_lt.lib = h;
    snprintf(g_lt.path, sizeof g_lt.path, "%s", file);
    g_lt.version = g_lt.get_version ? g_lt.get_version() : 0;
    return true;
}

void lt_open() {
    static const char* const sonames[] = {"libcublasLt.so.13", "libcublasLt.so.12"};
    const char* env = getenv("RLHF4J_CUBLASLT");
    if (env && *env) {
        if (!strcmp(env, "0") || !strcasecmp(env, "off") || !strcasecmp(env, "none") || !strcasecmp(env, "false")) {
            snprintf(g_lt.why, sizeof g_lt.why, "disabled by RLHF4J_CUBLASLT=%s", env);
            return;
        }
        struct stat st;
        if (stat(env, &st) == 0 && S_ISDIR(st.st_mode)) {
            char file[600];
            for (const char* so : sonames) {
                snprintf(file, sizeof file, "%s/%s", env, so);
                if (lt_try_open(file)) return;
            }
            snprintf(g_lt.why, sizeof g_lt.why, "RLHF4J_CUBLASLT=%s has no libcublasLt.so.13 or .so.12", env);
            return;
        }
        if (!lt_try_open(env)) {
            char e[512];
            snprintf(e, sizeof e, "%s", g_lt.why);
            snprintf(g_lt.why, sizeof g_lt.why, "RLHF4J_CUBLASLT=%s: %s", env, e);
        }
        return;
    }
    for (const char* so : sonames)
        if (lt_try_open(so)) return;
    snprintf(g_lt.why, sizeof g_lt.why, "dlopen found no libcublasLt.so.13 or .so.12 (RLHF4J_CUBLASLT=file or folder)");
}

const Lt* lt() {
    std::call_once(g_lt_once, lt_open);
    return g_lt.lib ? &g_lt : nullptr;
}

int32_t lt_fail(const char* call, lt_status st) {
    const char* name = g_lt.status_name ? g_lt.status_name(st) : nullptr;
    return rlhf4j_fail(RLHF4J_ERR_DEVICE, "%s: %s: cuBLASLt status %d%s%s", FN, call, (int)st, name ? " " : "",
                       name ? name : "");
}

#define LT_CHECK(call, expr)                                                                                        \
    do {                                                                                                            \
        lt_status st_ = (expr);                                                                                     \
        if (st_ != LT_SUCCESS) return lt_fail(call, st_);                                                           \
    } while (0)

uint32_t alignment(const void* p, int64_t stride_bytes, int64_t batch) {
    uintptr_t a = (uintptr_t)p | (uintptr_t)256;
    if (batch > 1 && stride_bytes != 0) a |= (uintptr_t)stride_bytes;
    return (uint32_t)(a & (~a + 1));  // lowest set bit: the largest power of two (<= 256) dividing them all
}

struct LtKey {
    int32_t dev, ta, tb, ab, c, has_bias;
    int64_t M, N, K, lda, ldb, ldc, sa, sb, sc, batch;
    uint32_t align_a, align_b, align_c, align_bias;
    bool operator==(const LtKey& o) const { return !memcmp(this, &o, sizeof *this); }
};
struct LtKeyHash {
    size_t operator()(const LtKey& k) const {
        const unsigned char* b = reinterpret_cast<const unsigned char*>(&k);
        uint64_t h = 1469598103934665603ull;  // FNV-1a
        for (size_t i = 0; i < sizeof k; i++) h = (h ^ b[i]) * 1099511628211ull;
        return (size_t)h;
    }
};
struct LtPlan {
    bool ok = false;  // false: the heuristic found no algorithm, run our own kernel
    lt_desc desc = nullptr;
    lt_layout la = nullptr, lb = nullptr, lc = nullptr;
    lt_algo algo;
    size_t ws = 0;
    std::mutex mu;    // the bias pointer is set on the shared descriptor right before each matmul
};
std::unordered_map<LtKey, LtPlan*, LtKeyHash> g_plans;
constexpr size_t LT_MAX_PLANS = 4096;  // beyond this, plans are built per call and destroyed

void plan_destroy(const Lt* L, LtPlan* pl) {
    if (pl->la) L->layout_destroy(pl->la);
    if (pl->lb) L->layout_destroy(pl->lb);
    if (pl->lc) L->layout_destroy(pl->lc);
    if (pl->desc) L->desc_destroy(pl->desc);
    delete pl;
}

// Builds the descriptors of a (batch-chunk of a) problem and asks the heuristic for one algorithm.
int32_t plan_build(const Lt* L, lt_handle h, const LtKey& k, const void* bias, LtPlan* pl) {
    const int32_t ab = k.ab == RLHF4J_BF16 ? LT_R_16BF : LT_R_32F;
    const int32_t ct = k.c == RLHF4J_BF16 ? LT_R_16BF : LT_R_32F;
    LT_CHECK("cublasLtMatmulDescCreate", L->desc_create(&pl->desc, LT_COMPUTE_32F, LT_R_32F));
    const int32_t opa = k.tb ? LT_OP_T : LT_OP_N, opb = k.ta ? LT_OP_T : LT_OP_N;
    LT_CHECK("cublasLtMatmulDescSetAttribute(TRANSA)", L->desc_set(pl->desc, LT_DESC_TRANSA, &opa, sizeof opa));
    LT_CHECK("cublasLtMatmulDescSetAttribute(TRANSB)", L->desc_set(pl->desc, LT_DESC_TRANSB, &opb, sizeof opb));
    const uint32_t epi = k.has_bias ? LT_EPILOGUE_BIAS : LT_EPILOGUE_DEFAULT;
    LT_CHECK("cublasLtMatmulDescSetAttribute(EPILOGUE)", L->desc_set(pl->desc, LT_DESC_EPILOGUE, &epi, sizeof epi));
    if (k.has_bias)  // bias in Dtype: cuBLASLt's default CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE (-1), left unset
        LT_CHECK("cublasLtMatmulDescSetAttribute(BIAS_POINTER)",
                 L->desc_set(pl->desc, LT_DESC_BIAS_POINTER, &bias, sizeof bias));
    // Column-major views (see the header comment): first operand = B, second = A, D = C^T.
    if (k.tb) LT_CHECK("cublasLtMatrixLayoutCreate(B)", L->layout_create(&pl->la, ab, k.K, k.N, k.ldb));
    else LT_CHECK("cublasLtMatrixLayoutCreate(B)", L->layout_create(&pl->la, ab, k.N, k.K, k.ldb));
    if (k.ta) LT_CHECK("cublasLtMatrixLayoutCreate(A)", L->layout_create(&pl->lb, ab, k.M, k.K, k.lda));
    else LT_CHECK("cublasLtMatrixLayoutCreate(A)", L->layout_create(&pl->lb, ab, k.K, k.M, k.lda));
    LT_CHECK("cublasLtMatrixLayoutCreate(C)", L->layout_create(&pl->lc, ct, k.N, k.M, k.ldc));
    if (k.batch > 1) {
        const int32_t n = (int32_t)k.batch;
        struct { lt_layout l; int64_t stride; const char* what; } ls[] = {
            {pl->la, k.sb, "B"}, {pl->lb, k.sa, "A"}, {pl->lc, k.sc, "C"}};
        for (auto& l : ls) {
            LT_CHECK("cublasLtMatrixLayoutSetAttribute(BATCH_COUNT)",
                     L->layout_set(l.l, LT_LAYOUT_BATCH_COUNT, &n, sizeof n));
            LT_CHECK("cublasLtMatrixLayoutSetAttribute(STRIDED_BATCH_OFFSET)",
                     L->layout_set(l.l, LT_LAYOUT_STRIDED_BATCH_OFFSET, &l.stride, sizeof l.stride));
        }
    }
    lt_pref pref = nullptr;
    LT_CHECK("cublasLtMatmulPreferenceCreate", L->pref_create(&pref));
    const uint64_t ws = LT_WORKSPACE;
    lt_status st = L->pref_set(pref, LT_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    const uint32_t al[4] = {k.align_b, k.align_a, k.align_c, k.align_c};  // cuBLASLt's A is our B, its B our A
    for (int i = 0; i < 4 && st == LT_SUCCESS; i++)
        st = L->pref_set(pref, LT_PREF_MIN_ALIGNMENT_A_BYTES + i, &al[i], sizeof al[i]);
    lt_heuristic res;
    int found = 0;
    if (st == LT_SUCCESS) st = L->heuristic(h, pl->desc, pl->la, pl->lb, pl->lc, pl->lc, pref, 1, &res, &found);
    L->pref_destroy(pref);
    if (st == LT_SUCCESS && found > 0 && res.state == LT_SUCCESS) {
        pl->ok = true;
        pl->algo = res.algo;
        pl->ws = res.workspaceSize;
    }
    // Anything else (CUBLAS_STATUS_NOT_SUPPORTED for an unsupported shape or alignment): our own kernel.
    return RLHF4J_OK;
}

int32_t plan_run(const Lt* L, lt_handle h, rlhf4j_stream s, LtPlan* pl, const GemmArgs& a, int64_t asz,
                 int64_t csz, int64_t p0) {
    const char* A = static_cast<const char*>(a.A) + p0 * a.sa * asz;
    const char* B = static_cast<const char*>(a.B) + p0 * a.sb * asz;
    char* C = static_cast<char*>(a.C) + p0 * a.sc * csz;
    void* ws = nullptr;
    if (pl->ws > 0) {
        ws = rlhf4j_workspace(s, pl->ws);
        if (!ws)
            return rlhf4j_fail(RLHF4J_ERR_OUT_OF_MEMORY, "%s: no device memory for a %zu-byte workspace", FN, pl->ws);
    }
    lt_status st = LT_SUCCESS;
    {
        std::lock_guard<std::mutex> lock(pl->mu);
        if (a.bias) st = L->desc_set(pl->desc, LT_DESC_BIAS_POINTER, &a.bias, sizeof a.bias);
        if (st == LT_SUCCESS)
            st = L->matmul(h, pl->desc, &a.alpha, B, pl->la, A, pl->lb, &a.beta, C, pl->lc, C, pl->lc, &pl->algo,
                           ws, pl->ws, cuda_stream(s));  // cuBLASLt's first operand is our B, its second our A
    }
    if (ws) rlhf4j_workspace_release(s, ws);
    if (st != LT_SUCCESS) return lt_fail("cublasLtMatmul", st);
    if (rlhf4j_sync_launches) CUDA_CHECK(FN, "cublasLtMatmul (RLHF4J_CUDA_SYNC)", cudaStreamSynchronize(cuda_stream(s)));
    return RLHF4J_OK;
}

// Runs the problem through cuBLASLt when it can: *done = false means "use our own kernel".
int32_t lt_gemm(rlhf4j_stream s, const GemmArgs& a, bool ta, bool tb, int32_t ab, int32_t c, bool* done) {
    *done = false;
    if (!(ab == RLHF4J_BF16 || (ab == RLHF4J_F32 && c == RLHF4J_F32))) return RLHF4J_OK;  // F32 -> BF16: own kernel
    const Lt* L = lt();
    const int dev = s->dev->ordinal;
    if (!L || dev < 0 || dev >= 64) return RLHF4J_OK;
    const int64_t asz = rlhf4j_dtype_size(ab), csz = rlhf4j_dtype_size(c);
    lt_handle h;
    {
        std::lock_guard<std::mutex> lock(g_lt_mu);
        if (g_handle_failed[dev]) return RLHF4J_OK;
        if (!g_handles[dev]) {
            lt_status st = L->create(&g_handles[dev]);
            if (st != LT_SUCCESS) {  // a library that cannot work on this device: our own kernels, said in describe
                g_handle_failed[dev] = true;
                g_handles[dev] = nullptr;
                fprintf(stderr, "rlhf4j: cublasLtCreate failed on device %d (status %d): using the own gemm kernels\n",
                        dev, (int)st);
                return RLHF4J_OK;
            }
        }
        h = g_handles[dev];
    }
    for (int64_t p0 = 0; p0 < a.batch; p0 += INT32_MAX) {
        const int64_t nb = a.batch - p0 < INT32_MAX ? a.batch - p0 : INT32_MAX;
        LtKey k;
        memset(&k, 0, sizeof k);  // the padding too: keys are compared and hashed as bytes
        k.dev = dev; k.ta = ta; k.tb = tb; k.ab = ab; k.c = c; k.has_bias = a.bias != nullptr;
        k.M = a.M; k.N = a.N; k.K = a.K; k.lda = a.lda; k.ldb = a.ldb; k.ldc = a.ldc;
        k.sa = a.sa; k.sb = a.sb; k.sc = a.sc; k.batch = nb;
        k.align_a = alignment(a.A, a.sa * asz, nb);
        k.align_b = alignment(a.B, a.sb * asz, nb);
        k.align_c = alignment(a.C, a.sc * csz, nb);
        k.align_bias = a.bias ? alignment(a.bias, 0, 1) : 0;
        LtPlan* pl = nullptr;
        bool cached = false;
        {
            std::lock_guard<std::mutex> lock(g_lt_mu);
            auto it = g_plans.find(k);
            if (it != g_plans.end()) pl = it->second, cached = true;
        }
        if (!pl) {
            pl = new LtPlan();
            int32_t st = plan_build(L, h, k, a.bias, pl);
            if (st != RLHF4J_OK) {
                plan_destroy(L, pl);
                return st;
            }
            std::lock_guard<std::mutex> lock(g_lt_mu);
            auto it = g_plans.find(k);
            if (it != g_plans.end()) {  // another thread built it meanwhile
                plan_destroy(L, pl);
                pl = it->second;
                cached = true;
            } else if (g_plans.size() < LT_MAX_PLANS) {
                g_plans.emplace(k, pl);
                cached = true;
                if (!pl->ok) g_fallback_shapes++;
            }
        }
        if (!pl->ok) {
            if (!cached) plan_destroy(L, pl);
            if (p0 == 0) return RLHF4J_OK;  // nothing enqueued yet: the caller runs the whole problem
            GemmArgs rest = a;
            rest.A = static_cast<const char*>(a.A) + p0 * a.sa * asz;
            rest.B = static_cast<const char*>(a.B) + p0 * a.sb * asz;
            rest.C = static_cast<char*>(a.C) + p0 * a.sc * csz;
            rest.batch = a.batch - p0;
            *done = true;
            return own_gemm(s, rest, ta, tb, ab, c);
        }
        int32_t st = plan_run(L, h, s, pl, a, asz, csz, p0);
        if (!cached) plan_destroy(L, pl);
        if (st != RLHF4J_OK) return st;
    }
    *done = true;
    return RLHF4J_OK;
}

}  // namespace
#endif  // !RLHF4J_EMU

// ------------------------------------------------------------------------------------------------------------------
// entry point

// What rlhf4j_gemm dispatches to, for rlhf4j_backend_features (backend.cu appends it after "gemm: "). Opens
// cuBLASLt if that was not tried yet, so the answer is true before the first GEMM too.
extern "C" const char* rlhf4j_gemm_describe(void) {
#ifdef RLHF4J_EMU
    return "own kernels (bf16 mma.sync tensor-core tiles, f32 FMA tiles)";
#else
    static thread_local char buf[288];
    const Lt* L = lt();
    if (L) {
        int64_t fb;
        {
            std::lock_guard<std::mutex> lock(g_lt_mu);
            fb = g_fallback_shapes;
        }
        snprintf(buf, sizeof buf, "cuBLASLt %zu (%s); own kernels for f32->bf16 and %lld shape(s) it has no "
                 "algorithm for", L->version, L->path, (long long)fb);
    } else {
        snprintf(buf, sizeof buf, "own kernels (bf16 mma.sync tiles, f32 FMA tiles): no cuBLASLt: %s", g_lt.why);
    }
    return buf;
#endif
}

extern "C" RLHF4J_API int32_t rlhf4j_gemm(rlhf4j_stream s, int32_t trans_a, int32_t trans_b, int64_t M, int64_t N,
                                          int64_t K, double alpha, const void* A, int64_t lda, int64_t stride_a,
                                          const void* B, int64_t ldb, int64_t stride_b, int32_t ab_dtype,
                                          double beta, void* C, int64_t ldc, int64_t stride_c, int32_t c_dtype,
                                          int64_t batch, const void* bias) {
    static const char* fn = "rlhf4j_gemm";
    CHECK_STREAM(fn, s);
    CHECK_NONNEG(fn, M);
    CHECK_NONNEG(fn, N);
    CHECK_NONNEG(fn, K);
    CHECK_NONNEG(fn, batch);
    CHECK_ARG(rlhf4j_dtype_size(ab_dtype) != 0, "%s: unknown ab_dtype %d", fn, ab_dtype);
    CHECK_ARG(rlhf4j_dtype_size(c_dtype) != 0, "%s: unknown c_dtype %d", fn, c_dtype);
    if (ab_dtype == RLHF4J_I32 || c_dtype == RLHF4J_I32)
        UNSUPPORTED("%s: ab_dtype %s, c_dtype %s: i32 is not a gemm dtype", fn, rlhf4j_dtype_name(ab_dtype),
                    rlhf4j_dtype_name(c_dtype));
    if ((ab_dtype != RLHF4J_BF16 && ab_dtype != RLHF4J_F32) || (c_dtype != RLHF4J_BF16 && c_dtype != RLHF4J_F32))
        UNSUPPORTED("%s: ab_dtype %s, c_dtype %s: the cuda backend computes gemm with bf16 or f32 operands and a "
                    "bf16 or f32 C (f16 and f64 are cpu-only)",
                    fn, rlhf4j_dtype_name(ab_dtype), rlhf4j_dtype_name(c_dtype));
    const int64_t a_cols = trans_a ? M : K, b_cols = trans_b ? K : N;
    CHECK_ARG(lda >= a_cols, "%s: lda = %lld must be >= %lld (the row width of A%s)", fn, (long long)lda,
              (long long)a_cols, trans_a ? ", M, as trans_a != 0" : ", K");
    CHECK_ARG(ldb >= b_cols, "%s: ldb = %lld must be >= %lld (the row width of B%s)", fn, (long long)ldb,
              (long long)b_cols, trans_b ? ", K, as trans_b != 0" : ", N");
    CHECK_ARG(ldc >= N, "%s: ldc = %lld must be >= N = %lld", fn, (long long)ldc, (long long)N);
    CHECK_NONNEG(fn, stride_a);
    CHECK_NONNEG(fn, stride_b);
    CHECK_NONNEG(fn, stride_c);
    if (batch == 0 || M == 0 || N == 0) return RLHF4J_OK;
    CHECK_PTR(fn, C);
    CHECK_ARG(batch == 1 || stride_c != 0, "%s: stride_c = 0 with batch = %lld would write every C_p to the same C", fn,
              (long long)batch);
    const bool products = K > 0 && alpha != 0;
    if (products) {
        CHECK_PTR(fn, A);
        CHECK_PTR(fn, B);
    }

    GemmArgs a;
    a.A = A;
    a.B = B;
    a.C = C;
    a.bias = bias;
    a.M = M, a.N = N, a.K = K, a.lda = lda, a.ldb = ldb, a.ldc = ldc;
    a.sa = stride_a, a.sb = stride_b, a.sc = stride_c, a.batch = batch;
    a.alpha = (float)alpha;
    a.beta = (float)beta;
    a.vec_a = products && aligned16(A, lda, stride_a, batch);
    a.vec_b = products && aligned16(B, ldb, stride_b, batch);

    if (!products) return c_dtype == RLHF4J_F32 ? launch_scale<float>(s, a) : launch_scale<bf16>(s, a);
#ifndef RLHF4J_EMU
    bool done = false;
    int32_t st = lt_gemm(s, a, trans_a != 0, trans_b != 0, ab_dtype, c_dtype, &done);
    if (st != RLHF4J_OK || done) return st;
#endif
    return own_gemm(s, a, trans_a != 0, trans_b != 0, ab_dtype, c_dtype);
}
