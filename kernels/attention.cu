/*
 * attention.cu: multi-head attention, softmax(scale q k^T + mask) v, forward, backward and decode over a KV cache,
 * flash-style (the [Tq, Tk] score matrix never exists in memory). Semantics are rlhf4j.h's and native/cpu/attention.c's
 * (the reference these kernels are tested against): rows q/k/v_row_stride apart (column slices of a fused qkv), query
 * head h reads kv head h / (Hq / Hkv), query t sits at position t + Tk - Tq and sees key j iff key_mask[b, j] != 0,
 * (!causal || j <= pos) and (window <= 0 || j > pos - window); a row that sees no key gives out = 0, zero gradient and
 * lse = FLT_MAX. Statistics (lse, D_t) are fp32 for both dtypes.
 *
 * Paths, picked per call on the host:
 *   BF16, D in {64, 80, 96, 128}: tensor cores (mma.sync m16n8k16 bf16 -> fp32, ldmatrix, cp.async) below.
 *   F32 (any D <= 256) and BF16 with another D <= 256: a SIMT path (fp32 FMA, same query/key tiling idea, K/V tiles
 *     staged in shared memory as fp32), so the F32 models that run on the CPU also run here, tiny test models included.
 *   D > 256, F16, F64: RLHF4J_ERR_UNSUPPORTED with a message.
 *
 * Forward (attn_fwd_mma_kernel<D>): one CTA per 64 query rows of one (batch, head), 4 warps x 16 rows. Q is staged
 *   once and kept in registers as mma A fragments; 64-key K/V tiles stream through shared memory double-buffered with
 *   cp.async (tile i+1 lands while tile i is used). Per tile: S = Q K^T (ldmatrix K rows = the "col" B operand), scale,
 *   mask (only on tiles that straddle a causal/window/padding/Tk boundary), online softmax in the log2 domain with the
 *   running max and partial row sums in registers (the 4 lanes of a row reduce with two shuffles), P re-packed from the
 *   C fragment straight into the A fragment of O += P V (ldmatrix.trans of V rows), no shared-memory round trip. Key
 *   tiles outside the CTA's causal / window range are never loaded, so causal costs half. Writes out and lse.
 *   Shared memory rows are D + 8 bf16 (an odd multiple of 16 bytes), so ldmatrix's 8 row addresses hit 8 distinct
 *   bank groups; D = 80 and 96 are 5 and 6 k-steps of 16 and 10 and 12 n-tiles of 8: nothing is padded in the math.
 *   FLOPs 4 Tq Tk D per head (half causal); traffic q + out + lse once, K/V once per query block (L2 across blocks).
 *
 * Backward (FlashAttention-2's recurrence with the saved lse), three kernels, deterministic (no float atomics between
 * CTAs, bitwise identical run to run and under the emulator's schedules):
 *   attn_bwd_pre_kernel<T>: D_t = rowsum(dO * O) per (b, t, h), and zeroes the fp32 dq partials.
 *   attn_bwd_mma_kernel<D>: one CTA per (key chunk c, batch, kv head): it walks the key blocks kb = c, c + C, ...
 *     (64 keys, 4 warps x 16 keys); for each it keeps dK and dV of its keys in registers over every query block of
 *     every query head of the GQA group (so dK/dV of a kv head are summed over its query heads without atomics) and
 *     writes them once, honouring accumulate / NULL / row strides. Per (key block, 64 or 32 query rows), with Q, dO,
 *     lse and D_t double-buffered by cp.async:
 *       S^T = K Q^T, P^T = exp2(S^T scale log2e - lse log2e), dP^T = V dO^T, dS^T = P^T (dP^T - D_t),
 *       dV += P^T dO, dK += dS^T Q (P^T and dS^T go from C to A fragments in registers),
 *       dS^T -> shared (bf16), dQ_c += dS K (ldmatrix.trans of dS^T and of K).
 *     dq of query rows gets one partial per key chunk c: part[c] is written by exactly one CTA, and each element by
 *     exactly one thread, with red.global.add in that thread's program order, so the sum order is fixed (same-address
 *     operations of one thread are ordered): deterministic although it uses atomicAdd.
 *   attn_dq_finalize_kernel<T>: dq (+)= scale * sum_c part[c] in chunk order, into dq's dtype and row stride.
 *   C = ceil(SMs / (B Hkv)) chunks, at most the key block count and at most 512 MiB of partials.
 *   FLOPs 5 matmuls of Tq Tk D per head (half causal); traffic q, k, v, o, dO read once per pass, dq/dk/dv written
 *   once, plus the partials: C x 4 B Tq Hq D bytes zeroed, accumulated in L2 and read back.
 *   The SIMT backward (attn_bwd_dkdv_simt_kernel + attn_bwd_dq_simt_kernel) computes dK/dV per 16-key block and dq per
 *   query tile in two kernels (S and dP are recomputed by both): simple, deterministic, for F32 and odd head dims.
 *
 * Decode (rlhf4j_attention_decode): Tq new rows against the cache [B, Tmax, Hkv, D]. Up to 16 rows of one kv group
 *   (G heads x a few positions) share each K/V tile, so a cache row is read once per step for the whole group. When
 *   the CTAs of one step do not fill the GPU (B Hkv small, long cache), the cache is split into chunks of >= 64 keys
 *   (split-K, flash-decoding): each CTA writes (max, sum, unnormalised o) for its chunk and attn_decode_combine_kernel
 *   merges the chunks in a fixed order. A prefill (Tq >= 16, BF16, tensor-core D) runs the forward MMA kernel instead.
 *   Decode is bandwidth-bound: bytes = B Tk Hkv D 2 (K + V) x 2 bytes; FLOPs 4 B Tq Hq Tk D (negligible).
 *
 * Rotary: the ABI keeps rope a separate entry point (rlhf4j_rope_forward) and this file does not change the ABI. A
 *   fused form would rotate Q while staging it (registers, before the A fragments are built) and K as each tile lands
 *   in shared memory (positions + inv_freq passed alongside), saving one read+write of q and k per layer.
 *
 * Floors on an H100 (798 TFLOP/s bf16, 3.0 TB/s), causal, bf16, FLOPs counting the visible half; in parentheses the
 * floor of this design, whose fp32 dq partials (C copies of 4 B Tq Hq D bytes, zeroed then read back; the red.adds
 * in between stay in L2) add traffic that FlashAttention-2 pays once (its dQaccum) and a deterministic design pays C
 * times:
 *   B=8, H=12, T=1024, d=64:   fwd 12.9 GFLOP = 16.1 us, 50.7 MB = 16.9 us                -> floor 16.9 us
 *                              bwd 32.2 GFLOP = 40.4 us, 101 MB = 33.8 us (C = 2: 202 MB = 67 us) -> 40.4 (67) us
 *                              fwd+bwd floor 57 us (84 us)
 *   B=4, H=16, T=2048, d=128:  fwd 68.7 GFLOP = 86.1 us, 135 MB = 44.9 us                -> floor 86.1 us
 *                              bwd 172 GFLOP = 215 us, 270 MB = 90 us (C = 3: 672 MB = 224 us) -> 215 (224) us
 *                              fwd+bwd floor 301 us (310 us)
 *   Measured: nothing yet (no GPU has run this file); bench/RESULTS.md lists these beside the measurements.
 *
 * Resources: every kernel has its "// @budget" line(s) above it (registers from nvcc -Xptxas -v for sm_90, no spills,
 * no static shared memory: all tiles are dynamic shared memory, sized at launch).
 */
#include "internal.cuh"
#include "mma.cuh"

#include <float.h>
#include <math.h>

#define ATT_LOG2E 1.4426950408889634f

/* ---------------------------------------------------------------------------------------------------------------- */
/* shared by every kernel                                                                                            */
/* ---------------------------------------------------------------------------------------------------------------- */

/* The arguments of one call (a kernel parameter, passed by value). Pointers are typed by the kernel that reads them. */
struct AttnArgs {
    const void *q, *k, *v;
    int64_t qs, ks, vs;    /* row strides (elements) */
    int64_t kbs, vbs, mbs; /* batch strides of k, v (Tk or Tmax rows) and key_mask (Tk or Tmax) */
    const int32_t *key_mask;
    int B, Tq, Tk, Hq, Hkv, D, G;
    int off; /* Tk - Tq: query t sits at position t + off */
    int causal, window;
    float scale, scale_log2;
    int aligned; /* every q/k/v (o, dO) row can be copied in 16-byte pieces (cp.async) */
    /* forward / decode */
    void *out;
    float *lse;
    int nh, nq;        /* SIMT: heads x positions of one kv group per CTA (rows = nh * nq <= 16) */
    int nsplit, split; /* decode split-K: chunks and keys per chunk */
    float *part;       /* decode split-K partials [B, Tq, Hq, nsplit, D + 2] */
    /* backward */
    const void *o, *dout;
    const float *lse_in;
    void *dq, *dk, *dv;
    int64_t dqs, dks, dvs;
    int accumulate;
    float *Di;      /* [B, Hq, Tq] rowsum(dO * O) */
    float *dq_part; /* [C, B, Tq, Hq, D] fp32 dq partials (MMA backward), NULL when dq is not wanted */
    int C;          /* key chunks of the MMA backward */
};

/* Whether a query at position pos sees key j by position alone, given dlt = pos - j. */
__device__ __forceinline__ bool pos_visible(long long dlt, int causal, int window) {
    return (!causal || dlt >= 0) && (window <= 0 || dlt < (long long)window);
}

/* Keys [lo, hi) that positions of queries ta..tb (inclusive) can see before the key mask; lo >= hi when none. */
__host__ __device__ __forceinline__ void key_range(const AttnArgs &a, int ta, int tb, int *lo, int *hi) {
    long long l = 0, h = a.Tk;
    if (a.window > 0) l = (long long)ta + a.off - a.window + 1;
    if (a.causal) h = (long long)tb + a.off + 1;
    if (l < 0) l = 0;
    if (h > a.Tk) h = a.Tk;
    if (h < l) h = l;
    *lo = (int)(l > a.Tk ? a.Tk : l);
    *hi = (int)(h > a.Tk ? a.Tk : h);
}

/* Queries [lo, hi) that see some key of [ja, jb) (jb > ja, jb <= Tk) by position. */
__device__ __forceinline__ void query_range(const AttnArgs &a, int ja, int jb, int *lo, int *hi) {
    long long l = 0, h = a.Tq;
    if (a.causal) l = (long long)ja - a.off;
    if (a.window > 0) h = (long long)jb - 1 - a.off + a.window;
    if (l < 0) l = 0;
    if (h > a.Tq) h = a.Tq;
    if (h < l) h = l;
    *lo = (int)l;
    *hi = (int)h;
}

__device__ __forceinline__ bool key_on(const int32_t *km, int j) { return km == nullptr || km[j] != 0; }

/* Stores two adjacent elements p[0], p[1] (adding to what is there when acc): one 4-byte store when aligned. */
template <typename T> __device__ __forceinline__ void store_pair(T *p, float x, float y, int acc) {
    if (acc) {
        x += to_float(p[0]);
        y += to_float(p[1]);
    }
    if constexpr (sizeof(T) == 2) {
        if (((uintptr_t)p & 3) == 0) {
            *reinterpret_cast<__nv_bfloat162 *>(p) = __floats2bfloat162_rn(x, y);
            return;
        }
    }
    p[0] = from_float<T>(x);
    p[1] = from_float<T>(y);
}

/* ---------------------------------------------------------------------------------------------------------------- */
/* tensor-core forward                                                                                               */
/* ---------------------------------------------------------------------------------------------------------------- */

/* Copies rows [0, ROWS) of D bf16 (row r at src + r * stride) into a tile whose rows are D + 8 bf16 apart (an odd
 * multiple of 16 bytes: conflict-free ldmatrix); rows >= valid become zeros (keys past Tk
 * must be exact zeros: P = 0 times garbage V could be NaN). cp.async 16 bytes when aligned, else element copies (a
 * plain store is published by the same __syncthreads that follows the cp.async wait). */
template <int D, int ROWS, int NT>
__device__ __forceinline__ void stage_rows(bf16 *dst, const bf16 *fallback, const bf16 *src, int64_t stride,
                                           int valid, int aligned) {
    constexpr int CPR = D / 8, SROW = D + 8;
    for (int c = threadIdx.x; c < ROWS * CPR; c += NT) {
        const int r = c / CPR, col = (c - r * CPR) * 8;
        bf16 *d = dst + r * SROW + col;
        const bool ok = r < valid;
        if (aligned) {
            cp_async_16_zfill(d, ok ? (const void *)(src + r * stride + col) : (const void *)fallback, ok);
        } else {
            for (int i = 0; i < 8; i++) d[i] = ok ? src[r * stride + col + i] : __float2bfloat16(0.f);
        }
    }
}

/* ldmatrix address patterns (PTX ISA "Matrix fragments for mma.m16n8k16"), for a lane of a warp:
 *   A from a row-major [m][k] tile:          row m0 + (l & 7) + ((l >> 3) & 1) * 8, col k0 + (l >> 4) * 8      (x4)
 *   B pair (2 n-tiles) from [n][k] rows:     row n0 + (l & 7) + (l >> 4) * 8,       col k0 + ((l >> 3) & 1) * 8 (x4)
 *   B pair from [k][n] rows, .trans:         row k0 + (l & 7) + ((l >> 3) & 1) * 8, col n0 + (l >> 4) * 8      (x4)
 *   A from [k][m] rows (A transposed), .trans: row k0 + (l & 7) + (l >> 4) * 8,     col m0 + ((l >> 3) & 1) * 8 (x4)
 * The B pairs give {r0, r1} for n-tile n0 and {r2, r3} for n-tile n0 + 8. */
__device__ __forceinline__ int lm_a_row(int l) { return (l & 7) + ((l >> 3) & 1) * 8; }
__device__ __forceinline__ int lm_a_col(int l) { return (l >> 4) * 8; }
__device__ __forceinline__ int lm_bnk_row(int l) { return (l & 7) + (l >> 4) * 8; }
__device__ __forceinline__ int lm_bnk_col(int l) { return ((l >> 3) & 1) * 8; }

__device__ __forceinline__ void mma2(float (&d0)[4], float (&d1)[4], const uint32_t (&a)[4], const uint32_t (&b)[4]) {
    const uint32_t b0[2] = {b[0], b[1]}, b1[2] = {b[2], b[3]};
    mma_m16n8k16_bf16(d0, a, b0, d0);
    mma_m16n8k16_bf16(d1, a, b1, d1);
}

constexpr int FWD_BM = 64, FWD_BN = 64, FWD_NT = 128;

template <int D> constexpr size_t fwd_mma_smem() {
    return (size_t)(FWD_BM + 4 * FWD_BN) * (D + 8) * sizeof(bf16) + 2 * FWD_BN * sizeof(int);
}

// @budget attn_fwd_mma_kernelILi64E regs<=160 smem<=0
// @budget attn_fwd_mma_kernelILi80E regs<=184 smem<=0
// @budget attn_fwd_mma_kernelILi96E regs<=184 smem<=0
// @budget attn_fwd_mma_kernelILi128E regs<=216 smem<=0
template <int D> __global__ void __launch_bounds__(FWD_NT) attn_fwd_mma_kernel(const AttnArgs a) {
    constexpr int BM = FWD_BM, BN = FWD_BN, SROW = D + 8, KS = D / 16, NTD = D / 8, NTK = BN / 8;
    RLHF4J_DYNAMIC_SMEM(bf16, smem);
    bf16 *sQ = smem;
    bf16 *sK = sQ + BM * SROW;     /* [2][BN][SROW] */
    bf16 *sV = sK + 2 * BN * SROW; /* [2][BN][SROW] */
    int *sKm = reinterpret_cast<int *>(sV + 2 * BN * SROW); /* [2][BN]: key < Tk and not padding */
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;

    const int nqb = (a.Tq + BM - 1) / BM;
    const int qb = nqb - 1 - (int)(blockIdx.x % nqb); /* the longest (latest, under causal) query blocks first */
    const int bh = (int)(blockIdx.x / nqb);
    const int h = bh % a.Hq, b = bh / a.Hq, g = h / a.G;
    const int t0 = qb * BM, tn = min(BM, a.Tq - t0);
    int jlo, jhi;
    key_range(a, t0, t0 + tn - 1, &jlo, &jhi);
    const int kt0 = jlo / BN, kt1 = jhi > jlo ? (jhi + BN - 1) / BN : kt0;

    const bf16 *qg = (const bf16 *)a.q + ((int64_t)b * a.Tq + t0) * a.qs + (int64_t)h * D;
    const bf16 *kg = (const bf16 *)a.k + (int64_t)b * a.kbs + (int64_t)g * D;
    const bf16 *vg = (const bf16 *)a.v + (int64_t)b * a.vbs + (int64_t)g * D;
    const int32_t *km = a.key_mask != nullptr ? a.key_mask + (int64_t)b * a.mbs : nullptr;

    auto stage_kv = [&](int kt, int buf) {
        const int j0 = kt * BN, nk = min(BN, a.Tk - j0);
        stage_rows<D, BN, FWD_NT>(sK + buf * BN * SROW, (const bf16 *)a.k, kg + (int64_t)j0 * a.ks, a.ks, nk,
                                  a.aligned);
        stage_rows<D, BN, FWD_NT>(sV + buf * BN * SROW, (const bf16 *)a.v, vg + (int64_t)j0 * a.vs, a.vs, nk,
                                  a.aligned);
        if (tid < BN) sKm[buf * BN + tid] = tid < nk && key_on(km, j0 + tid);
    };

    float o[NTD][4];
#pragma unroll
    for (int n = 0; n < NTD; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f}; /* rows lane/4 and lane/4 + 8 of the warp */
    uint32_t qf[KS][4];

    if (kt1 > kt0) {
        stage_rows<D, BM, FWD_NT>(sQ, (const bf16 *)a.q, qg, a.qs, tn, a.aligned);
        stage_kv(kt0, 0);
        cp_async_commit();
    }
    const int r0 = warp * 16 + (lane >> 2); /* this lane's rows r0 and r0 + 8 of the block */
    for (int kt = kt0; kt < kt1; kt++) {
        const int buf = (kt - kt0) & 1, j0 = kt * BN;
        if (kt + 1 < kt1) {
            stage_kv(kt + 1, buf ^ 1);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        if (kt == kt0) {
#pragma unroll
            for (int kk = 0; kk < KS; kk++)
                ldmatrix_x4(qf[kk], sQ + (warp * 16 + lm_a_row(lane)) * SROW + kk * 16 + lm_a_col(lane));
        }
        const bf16 *sKb = sK + buf * BN * SROW, *sVb = sV + buf * BN * SROW;
        const int *sKmb = sKm + buf * BN;

        /* S = Q K^T for this warp's 16 rows x 64 keys */
        float s[NTK][4];
#pragma unroll
        for (int n = 0; n < NTK; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
        for (int kk = 0; kk < KS; kk++) {
#pragma unroll
            for (int np = 0; np < NTK / 2; np++) {
                uint32_t kb[4];
                ldmatrix_x4(kb, sKb + (np * 16 + lm_bnk_row(lane)) * SROW + kk * 16 + lm_bnk_col(lane));
                mma2(s[2 * np], s[2 * np + 1], qf[kk], kb);
            }
        }
        /* scale into the log2 domain, then mask (after scaling: a negative scale must not turn -inf into +inf) */
        const long long base = (long long)t0 + a.off - j0; /* pos - j = base + row - col */
        const bool edge = km != nullptr || j0 + BN > a.Tk || (a.causal && base - (BN - 1) < 0) ||
                          (a.window > 0 && base + (tn - 1) >= (long long)a.window);
#pragma unroll
        for (int n = 0; n < NTK; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float x = s[n][e] * a.scale_log2;
                if (edge) {
                    const int r = r0 + (e >> 1) * 8, c = n * 8 + (lane & 3) * 2 + (e & 1);
                    if (!(sKmb[c] && pos_visible(base + r - c, a.causal, a.window))) x = -INFINITY;
                }
                s[n][e] = x;
            }
        /* online softmax: rows r0 (e = 0, 1) and r0 + 8 (e = 2, 3); the 4 lanes of a row share it by shuffles */
#pragma unroll
        for (int i = 0; i < 2; i++) {
            float mx = -INFINITY;
#pragma unroll
            for (int n = 0; n < NTK; n++) mx = fmaxf(mx, fmaxf(s[n][2 * i], s[n][2 * i + 1]));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
            const float mn = fmaxf(m[i], mx);
            const float ms = mn == -INFINITY ? 0.f : mn; /* a row with no visible key yet: exps give 0, not NaN */
            const float alpha = exp2f(m[i] - ms);
            m[i] = mn;
            float rs = 0.f;
#pragma unroll
            for (int n = 0; n < NTK; n++) {
                const float p0 = exp2f(s[n][2 * i] - ms), p1 = exp2f(s[n][2 * i + 1] - ms);
                s[n][2 * i] = p0;
                s[n][2 * i + 1] = p1;
                rs += p0 + p1;
            }
            l[i] = l[i] * alpha + rs;
#pragma unroll
            for (int n = 0; n < NTD; n++) {
                o[n][2 * i] *= alpha;
                o[n][2 * i + 1] *= alpha;
            }
        }
        /* O += P V: P's C fragments are the A fragments of the next mma (bf16), V through ldmatrix.trans */
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++) {
            const uint32_t pa[4] = {pack_bf16x2(s[2 * kk][0], s[2 * kk][1]), pack_bf16x2(s[2 * kk][2], s[2 * kk][3]),
                                    pack_bf16x2(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                    pack_bf16x2(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
            for (int np = 0; np < NTD / 2; np++) {
                uint32_t vb[4];
                ldmatrix_x4_trans(vb, sVb + (kk * 16 + lm_a_row(lane)) * SROW + np * 16 + lm_a_col(lane));
                mma2(o[2 * np], o[2 * np + 1], pa, vb);
            }
        }
        __syncthreads(); /* every warp is done with buffer buf before the next iteration refills it */
    }

    /* out = O / l, lse = (m + log2 l) ln 2; a row that saw no key: zeros and FLT_MAX */
    bf16 *out = (bf16 *)a.out;
#pragma unroll
    for (int i = 0; i < 2; i++) {
        float lt = l[i];
        lt += __shfl_xor_sync(0xffffffffu, lt, 1);
        lt += __shfl_xor_sync(0xffffffffu, lt, 2);
        const int r = r0 + i * 8, t = t0 + r;
        if (r >= tn) continue;
        const float inv = lt > 0.f ? 1.f / lt : 0.f;
        bf16 *orow = out + (((int64_t)b * a.Tq + t) * a.Hq + h) * D + (lane & 3) * 2;
#pragma unroll
        for (int n = 0; n < NTD; n++) store_pair(orow + n * 8, o[n][2 * i] * inv, o[n][2 * i + 1] * inv, 0);
        if (a.lse != nullptr && (lane & 3) == 0)
            a.lse[((int64_t)b * a.Hq + h) * a.Tq + t] = lt > 0.f ? (m[i] + log2f(lt)) / ATT_LOG2E : FLT_MAX;
    }
}

/* ---------------------------------------------------------------------------------------------------------------- */
/* tensor-core backward                                                                                              */
/* ---------------------------------------------------------------------------------------------------------------- */

constexpr int BWD_BN = 64, BWD_NT = 128;
template <int D> struct BwdCfg {
    /* query rows per step: 64 where dK + dV accumulators (D floats per thread) leave room, 32 at D = 128 */
    static constexpr int BM = D <= 96 ? 64 : 32;
    static constexpr size_t smem() {
        return (size_t)(2 * BWD_BN + 4 * BM) * (D + 8) * sizeof(bf16) + (size_t)BWD_BN * (BM + 8) * sizeof(bf16) +
               4 * BM * sizeof(float) + BWD_BN * sizeof(int);
    }
};

// dK + dV accumulators (D floats per thread), S^T and dP^T tiles and their bf16 A fragments keep this kernel at the
// 255-register ceiling of a 128-thread CTA (two CTAs per SM by registers); 32-row query steps at D = 128 keep it there.
// @budget attn_bwd_mma_kernel regs<=255 smem<=0
template <int D> __global__ void __launch_bounds__(BWD_NT) attn_bwd_mma_kernel(const AttnArgs a) {
    constexpr int BN = BWD_BN, BM = BwdCfg<D>::BM, SROW = D + 8, DSROW = BM + 8, KS = D / 16, NTD = D / 8;
    constexpr int NTQ = BM / 8, KQ = BM / 16, MT = BM / 16, WPM = 4 / MT;
    RLHF4J_DYNAMIC_SMEM(bf16, smem);
    bf16 *sK = smem;                /* [BN][SROW] */
    bf16 *sV = sK + BN * SROW;      /* [BN][SROW] */
    bf16 *sQ = sV + BN * SROW;      /* [2][BM][SROW] */
    bf16 *sdO = sQ + 2 * BM * SROW; /* [2][BM][SROW] */
    bf16 *sdS = sdO + 2 * BM * SROW; /* [BN][DSROW]: dS^T of the step, bf16 */
    float *sLse = reinterpret_cast<float *>(sdS + BN * DSROW); /* [2][BM], times log2e */
    float *sDi = sLse + 2 * BM;                                /* [2][BM] */
    int *sKm = reinterpret_cast<int *>(sDi + 2 * BM);          /* [BN] */
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;

    const int c = (int)(blockIdx.x % a.C), bg = (int)(blockIdx.x / a.C);
    const int b = bg / a.Hkv, g = bg % a.Hkv, G = a.G;
    const int nkb = (a.Tk + BN - 1) / BN;
    const int64_t N = (int64_t)a.B * a.Tq * a.Hq * D;
    const bf16 *kg = (const bf16 *)a.k + (int64_t)b * a.kbs + (int64_t)g * D;
    const bf16 *vg = (const bf16 *)a.v + (int64_t)b * a.vbs + (int64_t)g * D;
    const int32_t *km = a.key_mask != nullptr ? a.key_mask + (int64_t)b * a.mbs : nullptr;
    const int kr0 = warp * 16 + (lane >> 2); /* this lane's key rows kr0 and kr0 + 8 of the block */

    for (int kb = c; kb < nkb; kb += a.C) {
        const int j0 = kb * BN, nk = min(BN, a.Tk - j0);
        int qlo, qhi;
        query_range(a, j0, j0 + nk, &qlo, &qhi);
        const int qs0 = qlo / BM * BM;
        const int nqb = qhi > qlo ? (qhi - qs0 + BM - 1) / BM : 0;
        const int steps = G * nqb;

        float dk[NTD][4], dv[NTD][4];
#pragma unroll
        for (int n = 0; n < NTD; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) dk[n][e] = dv[n][e] = 0.f;

        auto stage_step = [&](int st, int buf) {
            const int hh = st / nqb, t0 = qs0 + (st % nqb) * BM, h = g * G + hh, tn = min(BM, a.Tq - t0);
            stage_rows<D, BM, BWD_NT>(sQ + buf * BM * SROW, (const bf16 *)a.q,
                                      (const bf16 *)a.q + ((int64_t)b * a.Tq + t0) * a.qs + (int64_t)h * D, a.qs, tn,
                                      a.aligned);
            stage_rows<D, BM, BWD_NT>(sdO + buf * BM * SROW, (const bf16 *)a.dout,
                                      (const bf16 *)a.dout + (((int64_t)b * a.Tq + t0) * a.Hq + h) * D,
                                      (int64_t)a.Hq * D, tn, a.aligned);
            if (tid < BM) {
                const bool ok = tid < tn;
                const int64_t row = ((int64_t)b * a.Hq + h) * a.Tq + t0 + tid;
                sLse[buf * BM + tid] = ok ? a.lse_in[row] * ATT_LOG2E : INFINITY;
                sDi[buf * BM + tid] = ok ? a.Di[row] : 0.f;
            }
        };

        if (steps > 0) {
            stage_rows<D, BN, BWD_NT>(sK, (const bf16 *)a.k, kg + (int64_t)j0 * a.ks, a.ks, nk, a.aligned);
            stage_rows<D, BN, BWD_NT>(sV, (const bf16 *)a.v, vg + (int64_t)j0 * a.vs, a.vs, nk, a.aligned);
            if (tid < BN) sKm[tid] = tid < nk && key_on(km, j0 + tid);
            stage_step(0, 0);
            cp_async_commit();
        }
        for (int st = 0; st < steps; st++) {
            const int buf = st & 1;
            const int hh = st / nqb, t0 = qs0 + (st % nqb) * BM, h = g * G + hh;
            if (st + 1 < steps) {
                stage_step(st + 1, buf ^ 1);
                cp_async_commit();
                cp_async_wait<1>();
            } else {
                cp_async_wait<0>();
            }
            __syncthreads();
            const bf16 *sQb = sQ + buf * BM * SROW, *sdOb = sdO + buf * BM * SROW;
            const float *lseb = sLse + buf * BM, *dib = sDi + buf * BM;

            /* S^T = K Q^T and dP^T = V dO^T: this warp's 16 keys x BM queries */
            float sp[NTQ][4], dp[NTQ][4];
#pragma unroll
            for (int n = 0; n < NTQ; n++)
#pragma unroll
                for (int e = 0; e < 4; e++) sp[n][e] = dp[n][e] = 0.f;
#pragma unroll
            for (int kk = 0; kk < KS; kk++) {
                uint32_t ka[4], va[4];
                ldmatrix_x4(ka, sK + (warp * 16 + lm_a_row(lane)) * SROW + kk * 16 + lm_a_col(lane));
                ldmatrix_x4(va, sV + (warp * 16 + lm_a_row(lane)) * SROW + kk * 16 + lm_a_col(lane));
#pragma unroll
                for (int np = 0; np < NTQ / 2; np++) {
                    uint32_t qb[4], ob[4];
                    ldmatrix_x4(qb, sQb + (np * 16 + lm_bnk_row(lane)) * SROW + kk * 16 + lm_bnk_col(lane));
                    ldmatrix_x4(ob, sdOb + (np * 16 + lm_bnk_row(lane)) * SROW + kk * 16 + lm_bnk_col(lane));
                    mma2(sp[2 * np], sp[2 * np + 1], ka, qb);
                    mma2(dp[2 * np], dp[2 * np + 1], va, ob);
                }
            }
            /* P^T = exp2(S^T scale log2e - lse log2e) on visible (key, query) pairs; dS^T = P^T (dP^T - D_t) */
            const long long base = (long long)t0 + a.off - j0; /* pos - j = base + col - row */
            const bool full = km == nullptr && nk == BN && t0 + BM <= a.Tq && (!a.causal || base - (BN - 1) >= 0) &&
                              (a.window <= 0 || base + (BM - 1) < (long long)a.window);
#pragma unroll
            for (int n = 0; n < NTQ; n++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int r = kr0 + (e >> 1) * 8, cq = n * 8 + (lane & 3) * 2 + (e & 1);
                    const bool vis = full || (sKm[r] && t0 + cq < a.Tq &&
                                              pos_visible(base + cq - r, a.causal, a.window));
                    const float p = vis ? exp2f(sp[n][e] * a.scale_log2 - lseb[cq]) : 0.f;
                    sp[n][e] = p;
                    dp[n][e] = p * (dp[n][e] - dib[cq]);
                }
            uint32_t pa[KQ][4], da[KQ][4];
#pragma unroll
            for (int kk = 0; kk < KQ; kk++) {
                pa[kk][0] = pack_bf16x2(sp[2 * kk][0], sp[2 * kk][1]);
                pa[kk][1] = pack_bf16x2(sp[2 * kk][2], sp[2 * kk][3]);
                pa[kk][2] = pack_bf16x2(sp[2 * kk + 1][0], sp[2 * kk + 1][1]);
                pa[kk][3] = pack_bf16x2(sp[2 * kk + 1][2], sp[2 * kk + 1][3]);
                da[kk][0] = pack_bf16x2(dp[2 * kk][0], dp[2 * kk][1]);
                da[kk][1] = pack_bf16x2(dp[2 * kk][2], dp[2 * kk][3]);
                da[kk][2] = pack_bf16x2(dp[2 * kk + 1][0], dp[2 * kk + 1][1]);
                da[kk][3] = pack_bf16x2(dp[2 * kk + 1][2], dp[2 * kk + 1][3]);
                /* dS^T rows kr0 / kr0 + 8, query columns (2kk)*8 and (2kk+1)*8 + 2 (lane & 3) */
                uint32_t *w0 = reinterpret_cast<uint32_t *>(sdS + kr0 * DSROW + kk * 16 + (lane & 3) * 2);
                uint32_t *w1 = reinterpret_cast<uint32_t *>(sdS + (kr0 + 8) * DSROW + kk * 16 + (lane & 3) * 2);
                w0[0] = da[kk][0];
                w1[0] = da[kk][1];
                w0[4] = da[kk][2];
                w1[4] = da[kk][3];
            }
            /* dV += P^T dO, dK += dS^T Q (dO and Q as [k = query][n = d] through ldmatrix.trans) */
#pragma unroll
            for (int np = 0; np < NTD / 2; np++)
#pragma unroll
                for (int kk = 0; kk < KQ; kk++) {
                    uint32_t ob[4], qb[4];
                    ldmatrix_x4_trans(ob, sdOb + (kk * 16 + lm_a_row(lane)) * SROW + np * 16 + lm_a_col(lane));
                    ldmatrix_x4_trans(qb, sQb + (kk * 16 + lm_a_row(lane)) * SROW + np * 16 + lm_a_col(lane));
                    mma2(dv[2 * np], dv[2 * np + 1], pa[kk], ob);
                    mma2(dk[2 * np], dk[2 * np + 1], da[kk], qb);
                }
            __syncthreads(); /* dS^T complete */

            /* dQ_c += dS K: warp -> (16-query m-tile, every WPM-th pair of d n-tiles); A = dS from dS^T (.trans) */
            if (a.dq_part != nullptr) {
                const int mt = warp % MT;
                uint32_t sa[BN / 16][4];
#pragma unroll
                for (int kk = 0; kk < BN / 16; kk++)
                    ldmatrix_x4_trans(sa[kk], sdS + (kk * 16 + lm_bnk_row(lane)) * DSROW + mt * 16 + lm_bnk_col(lane));
                const int q0 = t0 + mt * 16 + (lane >> 2);
                float *p0 = a.dq_part + (int64_t)c * N + (((int64_t)b * a.Tq + q0) * a.Hq + h) * D + (lane & 3) * 2;
                float *p1 = p0 + (int64_t)8 * a.Hq * D;
                const bool ok0 = q0 < a.Tq, ok1 = q0 + 8 < a.Tq;
                for (int np = warp / MT; np < D / 16; np += WPM) {
                    float acc[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
#pragma unroll
                    for (int kk = 0; kk < BN / 16; kk++) {
                        uint32_t kb[4];
                        ldmatrix_x4_trans(kb, sK + (kk * 16 + lm_a_row(lane)) * SROW + np * 16 + lm_a_col(lane));
                        mma2(acc[0], acc[1], sa[kk], kb);
                    }
#pragma unroll
                    for (int u = 0; u < 2; u++) {
                        const int d = np * 16 + u * 8;
                        if (ok0) {
                            atomicAdd(p0 + d, acc[u][0]);
                            atomicAdd(p0 + d + 1, acc[u][1]);
                        }
                        if (ok1) {
                            atomicAdd(p1 + d, acc[u][2]);
                            atomicAdd(p1 + d + 1, acc[u][3]);
                        }
                    }
                }
            }
            __syncthreads(); /* sdS and this step's buffers are free */
        }

        /* dK = scale dS^T Q and dV of this block's keys, written once (every key gets a value, seen or not) */
#pragma unroll
        for (int i = 0; i < 2; i++) {
            const int j = j0 + kr0 + i * 8;
            if (j >= a.Tk) continue;
            bf16 *dkr = a.dk != nullptr ? (bf16 *)a.dk + ((int64_t)b * a.Tk + j) * a.dks + (int64_t)g * D : nullptr;
            bf16 *dvr = a.dv != nullptr ? (bf16 *)a.dv + ((int64_t)b * a.Tk + j) * a.dvs + (int64_t)g * D : nullptr;
#pragma unroll
            for (int n = 0; n < NTD; n++) {
                const int d = n * 8 + (lane & 3) * 2;
                if (dkr != nullptr)
                    store_pair(dkr + d, dk[n][2 * i] * a.scale, dk[n][2 * i + 1] * a.scale, a.accumulate);
                if (dvr != nullptr) store_pair(dvr + d, dv[n][2 * i], dv[n][2 * i + 1], a.accumulate);
            }
        }
    }
}

/* dq (+)= scale * sum_c part[c], in chunk order, into dq's dtype and row stride. Grid-stride over B Tq Hq D. */
// @budget attn_dq_finalize_kernel regs<=40 smem<=0
template <typename T> __global__ void __launch_bounds__(256) attn_dq_finalize_kernel(const AttnArgs a) {
    const int64_t HD = (int64_t)a.Hq * a.D, N = (int64_t)a.B * a.Tq * HD;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < N; i += (int64_t)gridDim.x * blockDim.x) {
        float s = 0.f;
        for (int c = 0; c < a.C; c++) s += a.dq_part[c * N + i];
        const int64_t row = i / HD;
        T *p = (T *)a.dq + row * a.dqs + (i - row * HD);
        float v = a.scale * s;
        if (a.accumulate) v += to_float(*p);
        *p = from_float<T>(v);
    }
}

/* D_t = sum_d dO O for every (b, t, h), one warp per row (butterfly: a fixed order), and zeroes the dq partials. */
// @budget attn_bwd_pre_kernel regs<=48 smem<=0
template <typename T> __global__ void __launch_bounds__(256) attn_bwd_pre_kernel(const AttnArgs a) {
    const int lane = threadIdx.x & 31, wpb = blockDim.x >> 5;
    const int64_t rows = (int64_t)a.B * a.Tq * a.Hq, N = rows * a.D;
    for (int64_t row = (int64_t)blockIdx.x * wpb + (threadIdx.x >> 5); row < rows; row += (int64_t)gridDim.x * wpb) {
        const T *o = (const T *)a.o + row * a.D, *d = (const T *)a.dout + row * a.D;
        float s = 0.f;
        for (int x = lane; x < a.D; x += 32) s += to_float(o[x]) * to_float(d[x]);
        s = warp_sum(s);
        const int64_t h = row % a.Hq, bt = row / a.Hq, t = bt % a.Tq, b = bt / a.Tq;
        if (lane == 0) a.Di[(b * a.Hq + h) * a.Tq + t] = s;
        if (a.dq_part != nullptr)
            for (int c = 0; c < a.C; c++)
                for (int x = lane; x < a.D; x += 32) a.dq_part[c * N + row * a.D + x] = 0.f;
    }
}

/* ---------------------------------------------------------------------------------------------------------------- */
/* SIMT path (F32, and BF16 at head dims without a tensor-core instance)                                           */
/* ---------------------------------------------------------------------------------------------------------------- */

/* Forward / decode / dq tiles: up to SIMT_ROWS rows (positions x heads of one kv group) per CTA, SIMT_RPW rows per
 * warp, keys in tiles of 32 (lane j scores key j: K staged with rows D + 1 floats apart, so the 32 lanes read 32
 * banks; q rows are broadcast). o / dq accumulators have lanes over d (NC = ceil(D / 32) per lane and row), and the
 * per-key weights reach them through a per-warp shared-memory row (one __syncwarp, no 32 shuffles). */
constexpr int SIMT_ROWS = 16, SIMT_RPW = 2, SIMT_KT = 32, SIMT_MAXW = SIMT_ROWS / SIMT_RPW;

static size_t fwd_simt_smem(int D) {
    return ((size_t)SIMT_KT * (D + 1) + (size_t)SIMT_KT * D + (size_t)SIMT_ROWS * D + SIMT_MAXW * SIMT_RPW * SIMT_KT) *
               sizeof(float) +
           SIMT_KT * sizeof(int);
}

/* The rows of a SIMT CTA: blockIdx.x -> (query block, head block, batch, kv head). */
struct SimtRows {
    int b, g, t0, tn, h0, hn;
};
__device__ __forceinline__ SimtRows simt_rows(const AttnArgs &a) {
    const int hblocks = (a.G + a.nh - 1) / a.nh, qblocks = (a.Tq + a.nq - 1) / a.nq;
    const int64_t idx = blockIdx.x;
    SimtRows r;
    const int qb = (int)(idx % qblocks);
    const int64_t rest = idx / qblocks;
    const int hb = (int)(rest % hblocks);
    const int64_t bg = rest / hblocks;
    r.g = (int)(bg % a.Hkv);
    r.b = (int)(bg / a.Hkv);
    r.t0 = qb * a.nq;
    r.tn = min(a.nq, a.Tq - r.t0);
    r.h0 = hb * a.nh;
    r.hn = min(a.nh, a.G - r.h0);
    return r;
}

/* Stages keys [j0, j0 + 32) of K (and V) as fp32, rows kstride / vstride floats apart; keys >= jend are zeros. */
template <typename T>
__device__ __forceinline__ void simt_stage_kv(float *sK, int kstride, float *sV, int vstride, const T *kg,
                                              int64_t ks, const T *vg, int64_t vs, int D, int j0, int jend) {
    for (int e = threadIdx.x; e < SIMT_KT * D; e += blockDim.x) {
        const int jj = e / D, d = e - jj * D;
        const bool ok = j0 + jj < jend;
        sK[jj * kstride + d] = ok ? to_float(kg[(int64_t)(j0 + jj) * ks + d]) : 0.f;
        if (sV != nullptr) sV[jj * vstride + d] = ok ? to_float(vg[(int64_t)(j0 + jj) * vs + d]) : 0.f;
    }
}

/* Forward and decode rows. Split s (blockIdx.y) covers keys [s split, (s + 1) split); with one split it writes out
 * (and lse), with several the partial (m, l, unnormalised o) of its chunk. */
// @budget attn_fwd_simt_kernel regs<=96 smem<=0
template <typename T, int NC> __global__ void __launch_bounds__(256) attn_fwd_simt_kernel(const AttnArgs a) {
    const int D = a.D, DK = D + 1, tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    RLHF4J_DYNAMIC_SMEM(float, smem);
    float *sK = smem;                        /* [KT][D + 1] */
    float *sV = sK + SIMT_KT * DK;           /* [KT][D] */
    float *sQ = sV + SIMT_KT * D;            /* [ROWS][D], times scale */
    float *sP = sQ + SIMT_ROWS * D;          /* [MAXW][RPW][KT] */
    int *sF = reinterpret_cast<int *>(sP + SIMT_MAXW * SIMT_RPW * SIMT_KT); /* [KT] */
    const SimtRows R = simt_rows(a);
    const int nrows = a.nh * a.nq;

    for (int e = tid; e < nrows * D; e += blockDim.x) {
        const int r = e / D, d = e - r * D, tt = r / a.nh, hh = r % a.nh;
        float x = 0.f;
        if (tt < R.tn && hh < R.hn)
            x = to_float(((const T *)a.q)[((int64_t)R.b * a.Tq + R.t0 + tt) * a.qs +
                                          (int64_t)(R.g * a.G + R.h0 + hh) * D + d]) *
                a.scale;
        sQ[e] = x;
    }
    int jlo, jhi;
    key_range(a, R.t0, R.t0 + R.tn - 1, &jlo, &jhi);
    const int split = blockIdx.y;
    if (a.nsplit > 1) {
        const int64_t s0 = (int64_t)split * a.split, s1 = s0 + a.split;
        if (s0 > jlo) jlo = (int)(s0 < jhi ? s0 : jhi);
        if (s1 < jhi) jhi = (int)(s1 > jlo ? s1 : jlo);
    }
    const T *kg = (const T *)a.k + (int64_t)R.b * a.kbs + (int64_t)R.g * D;
    const T *vg = (const T *)a.v + (int64_t)R.b * a.vbs + (int64_t)R.g * D;
    const int32_t *km = a.key_mask != nullptr ? a.key_mask + (int64_t)R.b * a.mbs : nullptr;

    float m[SIMT_RPW], l[SIMT_RPW], o[SIMT_RPW][NC];
    int pos[SIMT_RPW];
#pragma unroll
    for (int i = 0; i < SIMT_RPW; i++) {
        m[i] = -INFINITY;
        l[i] = 0.f;
        pos[i] = R.t0 + (warp * SIMT_RPW + i) / a.nh + a.off;
#pragma unroll
        for (int c = 0; c < NC; c++) o[i][c] = 0.f;
    }
    for (int j0 = jlo; j0 < jhi; j0 += SIMT_KT) {
        __syncthreads(); /* the previous tile is consumed (and sQ is complete on the first pass) */
        simt_stage_kv<T>(sK, DK, sV, D, kg, a.ks, vg, a.vs, D, j0, jhi);
        if (tid < SIMT_KT) sF[tid] = j0 + tid < jhi && key_on(km, j0 + tid);
        __syncthreads();
        float s[SIMT_RPW];
#pragma unroll
        for (int i = 0; i < SIMT_RPW; i++) s[i] = 0.f;
        const float *kr = sK + lane * DK, *q0 = sQ + (warp * SIMT_RPW) * D;
        for (int d = 0; d < D; d++) {
            const float kd = kr[d];
#pragma unroll
            for (int i = 0; i < SIMT_RPW; i++) s[i] += q0[i * D + d] * kd;
        }
        const int j = j0 + lane;
#pragma unroll
        for (int i = 0; i < SIMT_RPW; i++) {
            const bool vis = sF[lane] && pos_visible((long long)pos[i] - j, a.causal, a.window);
            const float x = vis ? s[i] : -INFINITY;
            const float mn = fmaxf(m[i], warp_max(x));
            const float ms = mn == -INFINITY ? 0.f : mn;
            const float alpha = expf(m[i] - ms);
            const float p = vis ? expf(x - ms) : 0.f;
            l[i] = l[i] * alpha + warp_sum(p);
            m[i] = mn;
            sP[(warp * SIMT_RPW + i) * SIMT_KT + lane] = p;
#pragma unroll
            for (int c = 0; c < NC; c++) o[i][c] *= alpha;
        }
        __syncwarp();
        const float *pw = sP + warp * SIMT_RPW * SIMT_KT;
        for (int jj = 0; jj < SIMT_KT; jj++) {
            const float *vr = sV + jj * D;
#pragma unroll
            for (int c = 0; c < NC; c++) {
                const int d = lane + 32 * c;
                const float vd = d < D ? vr[d] : 0.f;
#pragma unroll
                for (int i = 0; i < SIMT_RPW; i++) o[i][c] += pw[i * SIMT_KT + jj] * vd;
            }
        }
    }
#pragma unroll
    for (int i = 0; i < SIMT_RPW; i++) {
        const int r = warp * SIMT_RPW + i, tt = r / a.nh, hh = r % a.nh;
        if (r >= nrows || tt >= R.tn || hh >= R.hn) continue;
        const int t = R.t0 + tt, h = R.g * a.G + R.h0 + hh;
        const int64_t row = ((int64_t)R.b * a.Tq + t) * a.Hq + h;
        if (a.nsplit > 1) {
            float *p = a.part + (row * a.nsplit + split) * (int64_t)(D + 2);
            if (lane == 0) {
                p[0] = m[i];
                p[1] = l[i];
            }
#pragma unroll
            for (int c = 0; c < NC; c++)
                if (lane + 32 * c < D) p[2 + lane + 32 * c] = o[i][c];
        } else {
            const float inv = l[i] > 0.f ? 1.f / l[i] : 0.f;
            T *orow = (T *)a.out + row * D;
#pragma unroll
            for (int c = 0; c < NC; c++)
                if (lane + 32 * c < D) orow[lane + 32 * c] = from_float<T>(o[i][c] * inv);
            if (a.lse != nullptr && lane == 0)
                a.lse[((int64_t)R.b * a.Hq + h) * a.Tq + t] = l[i] > 0.f ? m[i] + logf(l[i]) : FLT_MAX;
        }
    }
}

/* Merges the split-K partials of each (b, t, h) row: one warp per row; the max and the weights with lanes over splits
 * (butterfly reductions: a fixed order), then o with lanes over d, splits summed in order. A split whose keys are all
 * hidden (m = -inf) weighs 0. */
// @budget attn_decode_combine_kernel regs<=40 smem<=0
template <typename T> __global__ void __launch_bounds__(256) attn_decode_combine_kernel(const AttnArgs a) {
    const int lane = threadIdx.x & 31, wpb = blockDim.x >> 5, D = a.D, ns = a.nsplit, stride = D + 2;
    const int64_t rows = (int64_t)a.B * a.Tq * a.Hq;
    for (int64_t row = (int64_t)blockIdx.x * wpb + (threadIdx.x >> 5); row < rows; row += (int64_t)gridDim.x * wpb) {
        const float *p = a.part + row * ns * (int64_t)stride;
        float M = -INFINITY;
        for (int s = lane; s < ns; s += 32) M = fmaxf(M, p[s * stride]);
        M = warp_max(M);
        const float Ms = M == -INFINITY ? 0.f : M;
        float L = 0.f;
        for (int s = lane; s < ns; s += 32) L += p[s * stride + 1] * expf(p[s * stride] - Ms);
        L = warp_sum(L);
        const float inv = L > 0.f ? 1.f / L : 0.f;
        T *orow = (T *)a.out + row * D;
        for (int d = lane; d < D; d += 32) {
            float x = 0.f;
            for (int s = 0; s < ns; s++) x += p[s * stride + 2 + d] * expf(p[s * stride] - Ms);
            orow[d] = from_float<T>(x * inv);
        }
    }
}

static size_t dq_simt_smem(int D) {
    return ((size_t)2 * SIMT_KT * (D + 1) + (size_t)2 * SIMT_ROWS * D + SIMT_MAXW * SIMT_RPW * SIMT_KT) *
               sizeof(float) +
           SIMT_KT * sizeof(int);
}

/* dq of up to 16 rows per CTA over every key they see: s_j and dp_j with lane j, dS_j = P_j (dp_j - D_t),
 * dq += dS_j k_j with lanes over d. Writes dq (+)= scale * that, every row (zeros where no key is seen). */
// @budget attn_bwd_dq_simt_kernel regs<=128 smem<=0
template <typename T, int NC> __global__ void __launch_bounds__(256, 2) attn_bwd_dq_simt_kernel(const AttnArgs a) {
    const int D = a.D, DK = D + 1, tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    RLHF4J_DYNAMIC_SMEM(float, smem);
    float *sK = smem;                       /* [KT][D + 1] */
    float *sV = sK + SIMT_KT * DK;          /* [KT][D + 1] */
    float *sQ = sV + SIMT_KT * DK;          /* [ROWS][D], times scale */
    float *sO = sQ + SIMT_ROWS * D;         /* [ROWS][D]: dO */
    float *sP = sO + SIMT_ROWS * D;         /* [MAXW][RPW][KT]: dS */
    int *sF = reinterpret_cast<int *>(sP + SIMT_MAXW * SIMT_RPW * SIMT_KT);
    const SimtRows R = simt_rows(a);
    const int nrows = a.nh * a.nq;

    for (int e = tid; e < nrows * D; e += blockDim.x) {
        const int r = e / D, d = e - r * D, tt = r / a.nh, hh = r % a.nh;
        float x = 0.f, y = 0.f;
        if (tt < R.tn && hh < R.hn) {
            const int t = R.t0 + tt, h = R.g * a.G + R.h0 + hh;
            x = to_float(((const T *)a.q)[((int64_t)R.b * a.Tq + t) * a.qs + (int64_t)h * D + d]) * a.scale;
            y = to_float(((const T *)a.dout)[(((int64_t)R.b * a.Tq + t) * a.Hq + h) * D + d]);
        }
        sQ[e] = x;
        sO[e] = y;
    }
    int jlo, jhi;
    key_range(a, R.t0, R.t0 + R.tn - 1, &jlo, &jhi);
    const T *kg = (const T *)a.k + (int64_t)R.b * a.kbs + (int64_t)R.g * D;
    const T *vg = (const T *)a.v + (int64_t)R.b * a.vbs + (int64_t)R.g * D;
    const int32_t *km = a.key_mask != nullptr ? a.key_mask + (int64_t)R.b * a.mbs : nullptr;

    float dq[SIMT_RPW][NC], L[SIMT_RPW], Dt[SIMT_RPW];
    int pos[SIMT_RPW];
#pragma unroll
    for (int i = 0; i < SIMT_RPW; i++) {
        const int r = warp * SIMT_RPW + i, tt = r / a.nh, hh = r % a.nh;
        const bool ok = r < nrows && tt < R.tn && hh < R.hn;
        const int64_t row = ((int64_t)R.b * a.Hq + R.g * a.G + R.h0 + hh) * a.Tq + R.t0 + tt;
        L[i] = ok ? a.lse_in[row] : INFINITY;
        Dt[i] = ok ? a.Di[row] : 0.f;
        pos[i] = R.t0 + tt + a.off;
#pragma unroll
        for (int c = 0; c < NC; c++) dq[i][c] = 0.f;
    }
    for (int j0 = jlo; j0 < jhi; j0 += SIMT_KT) {
        __syncthreads();
        simt_stage_kv<T>(sK, DK, sV, DK, kg, a.ks, vg, a.vs, D, j0, jhi);
        if (tid < SIMT_KT) sF[tid] = j0 + tid < jhi && key_on(km, j0 + tid);
        __syncthreads();
        float s[SIMT_RPW], dp[SIMT_RPW];
#pragma unroll
        for (int i = 0; i < SIMT_RPW; i++) s[i] = dp[i] = 0.f;
        const float *kr = sK + lane * DK, *vr = sV + lane * DK;
        const float *q0 = sQ + (warp * SIMT_RPW) * D, *o0 = sO + (warp * SIMT_RPW) * D;
        for (int d = 0; d < D; d++) {
            const float kd = kr[d], vd = vr[d];
#pragma unroll
            for (int i = 0; i < SIMT_RPW; i++) {
                s[i] += q0[i * D + d] * kd;
                dp[i] += o0[i * D + d] * vd;
            }
        }
        const int j = j0 + lane;
#pragma unroll
        for (int i = 0; i < SIMT_RPW; i++) {
            const bool vis = sF[lane] && pos_visible((long long)pos[i] - j, a.causal, a.window);
            const float p = vis ? expf(s[i] - L[i]) : 0.f;
            sP[(warp * SIMT_RPW + i) * SIMT_KT + lane] = p * (dp[i] - Dt[i]);
        }
        __syncwarp();
        const float *pw = sP + warp * SIMT_RPW * SIMT_KT;
        for (int jj = 0; jj < SIMT_KT; jj++) {
            const float *kk = sK + jj * DK;
#pragma unroll
            for (int c = 0; c < NC; c++) {
                const int d = lane + 32 * c;
                const float kd = d < D ? kk[d] : 0.f;
#pragma unroll
                for (int i = 0; i < SIMT_RPW; i++) dq[i][c] += pw[i * SIMT_KT + jj] * kd;
            }
        }
    }
#pragma unroll
    for (int i = 0; i < SIMT_RPW; i++) {
        const int r = warp * SIMT_RPW + i, tt = r / a.nh, hh = r % a.nh;
        if (r >= nrows || tt >= R.tn || hh >= R.hn) continue;
        T *row = (T *)a.dq + ((int64_t)R.b * a.Tq + R.t0 + tt) * a.dqs + (int64_t)(R.g * a.G + R.h0 + hh) * D;
#pragma unroll
        for (int c = 0; c < NC; c++) {
            const int d = lane + 32 * c;
            if (d >= D) continue;
            float x = a.scale * dq[i][c];
            if (a.accumulate) x += to_float(row[d]);
            row[d] = from_float<T>(x);
        }
    }
}

/* dK / dV of 16 keys per CTA (128 threads): 8 query rows at a time (rows = (head of the group, position) pairs that
 * see the block), phase 1 scores them (thread = (row, key)), phase 2 adds P^T dO and dS^T Q into accumulators that
 * each thread owns (elements tid + 128 i of the block's [16][D], NE = ceil(16 D / 128) per thread). */
constexpr int DKV_KB = 16, DKV_RB = 8, DKV_NT = 128;

static size_t dkdv_simt_smem(int D) {
    return ((size_t)2 * DKV_KB * (D + 1) + (size_t)2 * DKV_RB * D + 2 * DKV_RB * DKV_KB + 2 * DKV_RB) * sizeof(float) +
           (DKV_KB + DKV_RB) * sizeof(int);
}

// @budget attn_bwd_dkdv_simt_kernel regs<=160 smem<=0
template <typename T, int NE> __global__ void __launch_bounds__(DKV_NT) attn_bwd_dkdv_simt_kernel(const AttnArgs a) {
    const int D = a.D, DK = D + 1, tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, G = a.G;
    RLHF4J_DYNAMIC_SMEM(float, smem);
    float *sK = smem;                   /* [KB][D + 1] */
    float *sV = sK + DKV_KB * DK;       /* [KB][D + 1] */
    float *sQ = sV + DKV_KB * DK;       /* [RB][D] */
    float *sO = sQ + DKV_RB * D;        /* [RB][D]: dO */
    float *sP = sO + DKV_RB * D;        /* [RB][KB] */
    float *sS = sP + DKV_RB * DKV_KB;   /* [RB][KB]: dS */
    float *sL = sS + DKV_RB * DKV_KB;   /* [RB]: lse */
    float *sD = sL + DKV_RB;            /* [RB]: D_t */
    int *sF = reinterpret_cast<int *>(sD + DKV_RB); /* [KB] */
    int *sT = sF + DKV_KB;                          /* [RB]: position, or -1 for no row */

    const int nkb = (a.Tk + DKV_KB - 1) / DKV_KB;
    const int kb = (int)(blockIdx.x % nkb);
    const int64_t bg = blockIdx.x / nkb;
    const int g = (int)(bg % a.Hkv), b = (int)(bg / a.Hkv);
    const int j0 = kb * DKV_KB, nk = min(DKV_KB, a.Tk - j0);
    const T *kg = (const T *)a.k + ((int64_t)b * a.kbs) + (int64_t)g * D;
    const T *vg = (const T *)a.v + ((int64_t)b * a.vbs) + (int64_t)g * D;
    const int32_t *km = a.key_mask != nullptr ? a.key_mask + (int64_t)b * a.mbs : nullptr;

    for (int e = tid; e < DKV_KB * D; e += DKV_NT) {
        const int jj = e / D, d = e - jj * D;
        const bool ok = jj < nk;
        sK[jj * DK + d] = ok ? to_float(kg[(int64_t)(j0 + jj) * a.ks + d]) : 0.f;
        sV[jj * DK + d] = ok ? to_float(vg[(int64_t)(j0 + jj) * a.vs + d]) : 0.f;
    }
    if (tid < DKV_KB) sF[tid] = tid < nk && key_on(km, j0 + tid);
    int qlo, qhi;
    query_range(a, j0, j0 + nk, &qlo, &qhi);
    const int nt = qhi - qlo, nrow = G * nt;

    float ak[NE], av[NE];
#pragma unroll
    for (int i = 0; i < NE; i++) ak[i] = av[i] = 0.f;
    for (int r0 = 0; r0 < nrow; r0 += DKV_RB) {
        __syncthreads(); /* K/V staged; the previous rows are consumed */
        for (int e = tid; e < DKV_RB * D; e += DKV_NT) {
            const int rr = e / D, d = e - rr * D, n = r0 + rr;
            float x = 0.f, y = 0.f;
            if (n < nrow) {
                const int h = g * G + n / nt, t = qlo + n % nt;
                x = to_float(((const T *)a.q)[((int64_t)b * a.Tq + t) * a.qs + (int64_t)h * D + d]);
                y = to_float(((const T *)a.dout)[(((int64_t)b * a.Tq + t) * a.Hq + h) * D + d]);
            }
            sQ[e] = x;
            sO[e] = y;
        }
        if (tid < DKV_RB) {
            const int n = r0 + tid;
            if (n < nrow) {
                const int h = g * G + n / nt, t = qlo + n % nt;
                const int64_t row = ((int64_t)b * a.Hq + h) * a.Tq + t;
                sL[tid] = a.lse_in[row];
                sD[tid] = a.Di[row];
                sT[tid] = t;
            } else {
                sL[tid] = INFINITY;
                sD[tid] = 0.f;
                sT[tid] = -1;
            }
        }
        __syncthreads();
        {
            const int rr = warp * 2 + (lane >> 4), jj = lane & 15;
            const float *qr = sQ + rr * D, *orr = sO + rr * D, *kr = sK + jj * DK, *vr = sV + jj * DK;
            float s = 0.f, dp = 0.f;
            for (int d = 0; d < D; d++) {
                s += qr[d] * kr[d];
                dp += orr[d] * vr[d];
            }
            const int t = sT[rr];
            const bool vis = t >= 0 && sF[jj] && pos_visible((long long)t + a.off - (j0 + jj), a.causal, a.window);
            const float p = vis ? expf(s * a.scale - sL[rr]) : 0.f;
            sP[rr * DKV_KB + jj] = p;
            sS[rr * DKV_KB + jj] = p * (dp - sD[rr]);
        }
        __syncthreads();
#pragma unroll
        for (int i = 0; i < NE; i++) {
            const int e = tid + DKV_NT * i;
            if (e < DKV_KB * D) {
                const int jj = e / D, d = e - jj * D;
#pragma unroll
                for (int rr = 0; rr < DKV_RB; rr++) {
                    av[i] += sP[rr * DKV_KB + jj] * sO[rr * D + d];
                    ak[i] += sS[rr * DKV_KB + jj] * sQ[rr * D + d];
                }
            }
        }
    }
#pragma unroll
    for (int i = 0; i < NE; i++) {
        const int e = tid + DKV_NT * i;
        if (e >= DKV_KB * D) continue;
        const int jj = e / D, d = e - jj * D;
        if (jj >= nk) continue;
        const int64_t j = (int64_t)b * a.Tk + j0 + jj;
        if (a.dk != nullptr) {
            T *p = (T *)a.dk + j * a.dks + (int64_t)g * D + d;
            float x = a.scale * ak[i];
            if (a.accumulate) x += to_float(*p);
            *p = from_float<T>(x);
        }
        if (a.dv != nullptr) {
            T *p = (T *)a.dv + j * a.dvs + (int64_t)g * D + d;
            float x = av[i];
            if (a.accumulate) x += to_float(*p);
            *p = from_float<T>(x);
        }
    }
}

/* ---------------------------------------------------------------------------------------------------------------- */
/* kernel launchers                                                                                                  */
/* ---------------------------------------------------------------------------------------------------------------- */

static bool mma_head_dim(int D) { return D == 64 || D == 80 || D == 96 || D == 128; }

/* The SIMT instances cover D <= 256 in steps of 32 lanes: NC = 1, 2, 4 or 8 chunks of 32 (NE = 4 NC for dK/dV). */
static int simt_nc(int D) { return D <= 32 ? 1 : D <= 64 ? 2 : D <= 128 ? 4 : 8; }
#define ATT_MAX_D 256

/* 16-byte alignment of a pointer and a row stride in elements of esz bytes. */
static bool aligned16(const void *p, int64_t stride, size_t esz) {
    return ((uintptr_t)p & 15) == 0 && ((uint64_t)stride * esz) % 16 == 0;
}

/* Checks shared by forward, backward and decode, as native/cpu/attention.c's check_attention; fills the shape. */
static int32_t check_attention(const char *fn, rlhf4j_stream s, int32_t dtype, int32_t B, int32_t Tq, int32_t Tk,
                               int32_t Hq, int32_t Hkv, int32_t D, const void *q, int64_t q_row_stride, const void *k,
                               int64_t k_row_stride, const void *v, int64_t v_row_stride, double scale,
                               int32_t window, AttnArgs *a) {
    CHECK_STREAM(fn, s);
    CHECK_COMPUTE_DTYPE(fn, dtype);
    CHECK_NONNEG(fn, B);
    CHECK_NONNEG(fn, Tq);
    CHECK_NONNEG(fn, Tk);
    CHECK_POS(fn, Hq);
    CHECK_POS(fn, Hkv);
    CHECK_POS(fn, D);
    CHECK_ARG(Hq % Hkv == 0, "%s: Hq = %d must be a multiple of Hkv = %d", fn, Hq, Hkv);
    CHECK_ARG(q_row_stride >= (int64_t)Hq * D, "%s: q_row_stride = %lld must be >= Hq * D = %lld", fn,
              (long long)q_row_stride, (long long)Hq * D);
    CHECK_ARG(k_row_stride >= (int64_t)Hkv * D, "%s: k_row_stride = %lld must be >= Hkv * D = %lld", fn,
              (long long)k_row_stride, (long long)Hkv * D);
    CHECK_ARG(v_row_stride >= (int64_t)Hkv * D, "%s: v_row_stride = %lld must be >= Hkv * D = %lld", fn,
              (long long)v_row_stride, (long long)Hkv * D);
    CHECK_ARG(isfinite(scale), "%s: scale = %g must be finite", fn, scale);
    CHECK_NONNEG(fn, window);
    CHECK_PTR(fn, q);
    CHECK_PTR(fn, k);
    CHECK_PTR(fn, v);
    if (D > ATT_MAX_D)
        UNSUPPORTED("%s: head dim D = %d is not supported by the CUDA backend (D <= %d; tensor cores for BF16 at "
                    "D = 64, 80, 96, 128)",
                    fn, D, ATT_MAX_D);
    memset(a, 0, sizeof *a);
    a->B = B;
    a->Tq = Tq;
    a->Tk = Tk;
    a->Hq = Hq;
    a->Hkv = Hkv;
    a->D = D;
    a->G = Hq / Hkv;
    a->off = Tk - Tq;
    a->q = q;
    a->k = k;
    a->v = v;
    a->qs = q_row_stride;
    a->ks = k_row_stride;
    a->vs = v_row_stride;
    a->kbs = (int64_t)Tk * k_row_stride;
    a->vbs = (int64_t)Tk * v_row_stride;
    a->mbs = Tk;
    a->scale = (float)scale;
    a->scale_log2 = (float)(scale * 1.4426950408889634);
    a->window = window;
    a->nsplit = 1;
    a->C = 1;
    return RLHF4J_OK;
}

/* Rows of a SIMT CTA: nh heads of a group x nq positions, at most 16 (the CPU backend's tile, smaller). */
static void simt_tiling(AttnArgs *a) {
    a->nh = a->G < SIMT_ROWS ? a->G : SIMT_ROWS;
    a->nq = SIMT_ROWS / a->nh;
    if (a->nq > a->Tq) a->nq = a->Tq > 0 ? a->Tq : 1;
}

static int64_t simt_blocks(const AttnArgs &a) {
    return ceil_div(a.Tq, a.nq) * ceil_div(a.G, a.nh) * (int64_t)a.B * a.Hkv;
}

static unsigned simt_threads(const AttnArgs &a) {
    const int w = (int)ceil_div((int64_t)a.nh * a.nq, SIMT_RPW);
    return 32u * (unsigned)w;
}

#define ATT_GRID_MAX 2147483647LL

template <typename T, int NC>
static int32_t launch_fwd_simt(const char *fn, rlhf4j_stream s, const AttnArgs &a, int64_t blocks) {
    return LAUNCH(fn, (attn_fwd_simt_kernel<T, NC>), dim3((unsigned)blocks, (unsigned)a.nsplit), dim3(simt_threads(a)),
                  fwd_simt_smem(a.D), s, a);
}

/* Forward rows into out / lse (or split-K partials when a.nsplit > 1). */
template <typename T> static int32_t run_fwd_simt(const char *fn, rlhf4j_stream s, const AttnArgs &a) {
    const int64_t blocks = simt_blocks(a);
    CHECK_ARG(blocks <= ATT_GRID_MAX, "%s: %lld thread blocks exceed the grid limit", fn, (long long)blocks);
    switch (simt_nc(a.D)) {
    case 1: return launch_fwd_simt<T, 1>(fn, s, a, blocks);
    case 2: return launch_fwd_simt<T, 2>(fn, s, a, blocks);
    case 4: return launch_fwd_simt<T, 4>(fn, s, a, blocks);
    default: return launch_fwd_simt<T, 8>(fn, s, a, blocks);
    }
}

template <int D> static int32_t launch_fwd_mma(const char *fn, rlhf4j_stream s, const AttnArgs &a) {
    const int64_t blocks = ceil_div(a.Tq, FWD_BM) * (int64_t)a.Hq * a.B;
    CHECK_ARG(blocks <= ATT_GRID_MAX, "%s: %lld thread blocks exceed the grid limit", fn, (long long)blocks);
    return LAUNCH(fn, attn_fwd_mma_kernel<D>, dim3((unsigned)blocks), dim3(FWD_NT), fwd_mma_smem<D>(), s, a);
}

static int32_t run_fwd_mma(const char *fn, rlhf4j_stream s, const AttnArgs &a) {
    switch (a.D) {
    case 64: return launch_fwd_mma<64>(fn, s, a);
    case 80: return launch_fwd_mma<80>(fn, s, a);
    case 96: return launch_fwd_mma<96>(fn, s, a);
    default: return launch_fwd_mma<128>(fn, s, a);
    }
}

/* q/k/v row alignment for the cp.async loads of the tensor-core kernels. */
static int qkv_aligned(const AttnArgs &a) {
    return aligned16(a.q, a.qs, 2) && aligned16(a.k, a.ks, 2) && aligned16(a.v, a.vs, 2);
}

extern "C" RLHF4J_API int32_t rlhf4j_attention_forward(rlhf4j_stream s, int32_t dtype, int32_t B, int32_t Tq,
                                                       int32_t Tk, int32_t Hq, int32_t Hkv, int32_t D, const void *q,
                                                       int64_t q_row_stride, const void *k, int64_t k_row_stride,
                                                       const void *v, int64_t v_row_stride, const int32_t *key_mask,
                                                       double scale, int32_t causal, int32_t window, void *out,
                                                       void *lse) {
    static const char *fn = "rlhf4j_attention_forward";
    AttnArgs a;
    int32_t st = check_attention(fn, s, dtype, B, Tq, Tk, Hq, Hkv, D, q, q_row_stride, k, k_row_stride, v,
                                 v_row_stride, scale, window, &a);
    if (st != RLHF4J_OK) return st;
    CHECK_PTR(fn, out);
    a.key_mask = key_mask;
    a.causal = causal != 0;
    a.out = out;
    a.lse = (float *)lse;
    if (B == 0 || Tq == 0) return RLHF4J_OK;
    if (dtype == RLHF4J_BF16 && mma_head_dim(D)) {
        a.aligned = qkv_aligned(a);
        return run_fwd_mma(fn, s, a);
    }
    simt_tiling(&a);
    DISPATCH_COMPUTE(dtype, T, return run_fwd_simt<T>(fn, s, a));
    return RLHF4J_OK;
}

extern "C" RLHF4J_API int32_t rlhf4j_attention_decode(rlhf4j_stream s, int32_t dtype, int32_t B, int32_t Tq,
                                                      int32_t Tk, int32_t Tmax, int32_t Hq, int32_t Hkv, int32_t D,
                                                      const void *q, int64_t q_row_stride, const void *k_cache,
                                                      const void *v_cache, const int32_t *key_mask, double scale,
                                                      int32_t window, void *out) {
    static const char *fn = "rlhf4j_attention_decode";
    CHECK_ARG(Tq <= Tk && Tk <= Tmax, "%s: need 0 <= Tq <= Tk <= Tmax, got Tq = %d, Tk = %d, Tmax = %d", fn, Tq, Tk,
              Tmax);
    AttnArgs a;
    const int64_t rs = (int64_t)Hkv * D;
    int32_t st = check_attention(fn, s, dtype, B, Tq, Tk, Hq, Hkv, D, q, q_row_stride, k_cache, rs, v_cache, rs, scale,
                                 window, &a);
    if (st != RLHF4J_OK) return st;
    CHECK_PTR(fn, out);
    a.kbs = a.vbs = (int64_t)Tmax * rs;
    a.mbs = Tmax;
    a.key_mask = key_mask;
    a.causal = 1;
    a.out = out;
    if (B == 0 || Tq == 0) return RLHF4J_OK;
    /* a prefill is an ordinary causal forward over the cache */
    if (dtype == RLHF4J_BF16 && mma_head_dim(D) && Tq >= 16) {
        a.aligned = qkv_aligned(a);
        return run_fwd_mma(fn, s, a);
    }
    simt_tiling(&a);
    /* split-K when the step's CTAs would not fill the GPU twice: chunks of >= 64 keys (two tiles), merged after */
    const int64_t blocks = simt_blocks(a), want = 2 * (int64_t)(s->dev->sm_count > 0 ? s->dev->sm_count : 1);
    if (blocks < want && Tk > 2 * SIMT_KT) {
        int64_t ns = ceil_div(want, blocks), most = ceil_div(Tk, 2 * SIMT_KT);
        if (ns > most) ns = most;
        if (ns > 65535) ns = 65535;
        const int64_t len = ceil_div(ceil_div(Tk, ns), SIMT_KT) * SIMT_KT;
        a.split = (int)len;
        a.nsplit = (int)ceil_div(Tk, len);
    }
    if (a.nsplit == 1) {
        DISPATCH_COMPUTE(dtype, T, return run_fwd_simt<T>(fn, s, a));
    }
    const size_t bytes = (size_t)B * Tq * Hq * a.nsplit * (D + 2) * sizeof(float);
    a.part = (float *)rlhf4j_workspace(s, bytes);
    if (a.part == NULL)
        return rlhf4j_fail(RLHF4J_ERR_OUT_OF_MEMORY, "%s: no device memory for a %zu-byte workspace", fn, bytes);
    DISPATCH_COMPUTE(dtype, T, st = run_fwd_simt<T>(fn, s, a);
                     if (st == RLHF4J_OK) {
                         const unsigned grid = grid_for(s, (int64_t)B * Tq * Hq, 8);
                         st = LAUNCH(fn, attn_decode_combine_kernel<T>, dim3(grid), dim3(256), 0, s, a);
                     });
    rlhf4j_workspace_release(s, a.part);
    return st;
}

/* ---- backward ---------------------------------------------------------------------------------------------------- */

template <int D> static int32_t launch_bwd_mma(const char *fn, rlhf4j_stream s, const AttnArgs &a) {
    const int64_t blocks = (int64_t)a.C * a.B * a.Hkv;
    CHECK_ARG(blocks <= ATT_GRID_MAX, "%s: %lld thread blocks exceed the grid limit", fn, (long long)blocks);
    return LAUNCH(fn, attn_bwd_mma_kernel<D>, dim3((unsigned)blocks), dim3(BWD_NT), BwdCfg<D>::smem(), s, a);
}

template <typename T, int NE>
static int32_t launch_dkdv_simt(const char *fn, rlhf4j_stream s, const AttnArgs &a, int64_t blocks) {
    return LAUNCH(fn, (attn_bwd_dkdv_simt_kernel<T, NE>), dim3((unsigned)blocks), dim3(DKV_NT), dkdv_simt_smem(a.D),
                  s, a);
}

template <typename T, int NC>
static int32_t launch_dq_simt(const char *fn, rlhf4j_stream s, const AttnArgs &a, int64_t blocks) {
    return LAUNCH(fn, (attn_bwd_dq_simt_kernel<T, NC>), dim3((unsigned)blocks), dim3(simt_threads(a)),
                  dq_simt_smem(a.D), s, a);
}

/* The SIMT backward: dK/dV per 16-key block, then dq per query tile. */
template <typename T> static int32_t run_bwd_simt(const char *fn, rlhf4j_stream s, AttnArgs &a) {
    const int nc = simt_nc(a.D);
    if (a.Tk > 0 && (a.dk != nullptr || a.dv != nullptr)) {
        const int64_t blocks = ceil_div(a.Tk, DKV_KB) * (int64_t)a.B * a.Hkv;
        CHECK_ARG(blocks <= ATT_GRID_MAX, "%s: %lld thread blocks exceed the grid limit", fn, (long long)blocks);
        int32_t st;
        switch (nc) {
        case 1: st = launch_dkdv_simt<T, 4>(fn, s, a, blocks); break;
        case 2: st = launch_dkdv_simt<T, 8>(fn, s, a, blocks); break;
        case 4: st = launch_dkdv_simt<T, 16>(fn, s, a, blocks); break;
        default: st = launch_dkdv_simt<T, 32>(fn, s, a, blocks); break;
        }
        if (st != RLHF4J_OK) return st;
    }
    if (a.dq != nullptr && a.Tq > 0) {
        simt_tiling(&a);
        const int64_t blocks = simt_blocks(a);
        CHECK_ARG(blocks <= ATT_GRID_MAX, "%s: %lld thread blocks exceed the grid limit", fn, (long long)blocks);
        switch (nc) {
        case 1: return launch_dq_simt<T, 1>(fn, s, a, blocks);
        case 2: return launch_dq_simt<T, 2>(fn, s, a, blocks);
        case 4: return launch_dq_simt<T, 4>(fn, s, a, blocks);
        default: return launch_dq_simt<T, 8>(fn, s, a, blocks);
        }
    }
    return RLHF4J_OK;
}

static int32_t run_bwd_mma(const char *fn, rlhf4j_stream s, AttnArgs &a) {
    switch (a.D) {
    case 64: return launch_bwd_mma<64>(fn, s, a);
    case 80: return launch_bwd_mma<80>(fn, s, a);
    case 96: return launch_bwd_mma<96>(fn, s, a);
    default: return launch_bwd_mma<128>(fn, s, a);
    }
}

extern "C" RLHF4J_API int32_t rlhf4j_attention_backward(
    rlhf4j_stream s, int32_t dtype, int32_t B, int32_t Tq, int32_t Tk, int32_t Hq, int32_t Hkv, int32_t D,
    const void *q, int64_t q_row_stride, const void *k, int64_t k_row_stride, const void *v, int64_t v_row_stride,
    const int32_t *key_mask, double scale, int32_t causal, int32_t window, const void *out, const void *dout,
    const void *lse, void *dq, int64_t dq_row_stride, void *dk, int64_t dk_row_stride, void *dv, int64_t dv_row_stride,
    int32_t accumulate) {
    static const char *fn = "rlhf4j_attention_backward";
    AttnArgs a;
    int32_t st = check_attention(fn, s, dtype, B, Tq, Tk, Hq, Hkv, D, q, q_row_stride, k, k_row_stride, v,
                                 v_row_stride, scale, window, &a);
    if (st != RLHF4J_OK) return st;
    if (dq == NULL && dk == NULL && dv == NULL) return RLHF4J_OK;
    if (dq != NULL)
        CHECK_ARG(dq_row_stride >= (int64_t)Hq * D, "%s: dq_row_stride = %lld must be >= Hq * D = %lld", fn,
                  (long long)dq_row_stride, (long long)Hq * D);
    if (dk != NULL)
        CHECK_ARG(dk_row_stride >= (int64_t)Hkv * D, "%s: dk_row_stride = %lld must be >= Hkv * D = %lld", fn,
                  (long long)dk_row_stride, (long long)Hkv * D);
    if (dv != NULL)
        CHECK_ARG(dv_row_stride >= (int64_t)Hkv * D, "%s: dv_row_stride = %lld must be >= Hkv * D = %lld", fn,
                  (long long)dv_row_stride, (long long)Hkv * D);
    CHECK_PTR(fn, out);
    CHECK_PTR(fn, dout);
    CHECK_PTR(fn, lse);
    a.key_mask = key_mask;
    a.causal = causal != 0;
    a.accumulate = accumulate != 0;
    a.o = out;
    a.dout = dout;
    a.lse_in = (const float *)lse;
    a.dq = dq;
    a.dk = dk;
    a.dv = dv;
    a.dqs = dq_row_stride;
    a.dks = dk_row_stride;
    a.dvs = dv_row_stride;
    if (B == 0) return RLHF4J_OK;

    const bool mma = dtype == RLHF4J_BF16 && mma_head_dim(D);
    const int64_t rows = (int64_t)B * Tq * Hq, N = rows * D;
    if (mma && dq != NULL) {
        /* key chunks: enough CTAs to cover the SMs, at most one per key block, partials capped at 512 MiB */
        const int64_t groups = (int64_t)B * Hkv, nkb = ceil_div(Tk, BWD_BN);
        int64_t C = ceil_div(s->dev->sm_count > 0 ? s->dev->sm_count : 1, groups);
        const int64_t cap = N > 0 ? ((int64_t)512 << 20) / (N * (int64_t)sizeof(float)) : C;
        if (C > cap) C = cap;
        if (C > nkb) C = nkb;
        if (C < 1) C = 1;
        a.C = (int)C;
    }
    const size_t di_floats = (size_t)rows, part_floats = mma && dq != NULL ? (size_t)a.C * N : 0;
    const size_t bytes = (di_floats + part_floats) * sizeof(float);
    float *ws = (float *)rlhf4j_workspace(s, bytes);
    if (ws == NULL)
        return rlhf4j_fail(RLHF4J_ERR_OUT_OF_MEMORY, "%s: no device memory for a %zu-byte workspace", fn, bytes);
    a.Di = ws;
    a.dq_part = part_floats > 0 ? ws + di_floats : nullptr;
    st = RLHF4J_OK;
    if (rows > 0) {
        const unsigned grid = grid_for(s, rows, 8);
        DISPATCH_COMPUTE(dtype, T, st = LAUNCH(fn, attn_bwd_pre_kernel<T>, dim3(grid), dim3(256), 0, s, a));
    }
    if (st == RLHF4J_OK && mma) {
        a.aligned = qkv_aligned(a) && aligned16(a.dout, (int64_t)Hq * D, 2);
        if (Tk > 0) st = run_bwd_mma(fn, s, a);
        if (st == RLHF4J_OK && dq != NULL && N > 0)
            st = LAUNCH(fn, attn_dq_finalize_kernel<bf16>, dim3(grid_for(s, N, 256)), dim3(256), 0, s, a);
    } else if (st == RLHF4J_OK) {
        DISPATCH_COMPUTE(dtype, T, st = run_bwd_simt<T>(fn, s, a));
    }
    rlhf4j_workspace_release(s, ws);
    return st;
}
