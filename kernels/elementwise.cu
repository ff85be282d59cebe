/*
 * elementwise.cu: fill, fill_random, convert, copy_strided, unary and binary ops with their backward, reductions,
 * masked reductions, axpby, dropout. The reference is the CPU backend (native/cpu/elementwise.c, .inc, random.c):
 * same argument checks in the same order, same formulas term by term, same Philox words.
 *
 * Design.
 *  - Contiguous ops (unary, unary backward, axpby, dropout, binary without broadcasting, ADD/SUB backward) all run
 *    through one grid-stride kernel, map_kernel, templated on the storage type and on a small functor that computes
 *    one element in fp32 from up to three inputs. When every pointer is 16-byte aligned each thread moves 16 bytes
 *    per operand per iteration (4 f32 or 8 bf16: one LDG.128/STG.128), else one element; the tail past the last
 *    full vector is done element by element. The op code is a uniform switch inside the functor: one kernel per
 *    dtype instead of one per op, and the branch costs nothing next to the memory traffic.
 *  - Strided ops (copy_strided, binary with broadcasting) first normalise the dimensions on the host exactly as the
 *    CPU backend does (drop size-1 dimensions; for copy_strided flip negative destination strides and sort by
 *    destination stride, since element order is free; coalesce adjacent dimensions that every operand steps over
 *    contiguously). Each thread then maps a flat index of the iteration space to operand offsets with one
 *    division per remaining dimension (32-bit divisions when the space has fewer than 2^32 elements). The
 *    innermost dimension is the destination's smallest stride, so writes coalesce. A transposing copy (the source
 *    contiguous along another dimension) goes through 32 x 32 shared-memory tiles instead, so that both sides move
 *    whole runs.
 *  - Reductions are deterministic: no float atomics. A row (inner == 1) is cut into fixed chunks of RED_CHUNK
 *    elements, one block per chunk, summed in double per thread and then in a fixed shared-memory tree; rows of
 *    several chunks get a second pass over the per-chunk partials (workspace) in a fixed order. Columns (inner > 1)
 *    are one thread per column and chunk of RED_COL_CHUNK rows, in order, and so are short rows (n <= 64). Chunk
 *    sizes are constants, not functions of the GPU, so every GPU (and the emulation) gives the same bits. Sums are
 *    in double, as on the CPU.
 *  - Random numbers: element i uses Philox-4x32-10 of counter offset + i under key seed (internal.cuh:
 *    rl_philox4x32, the CPU's function), and the same words and the same arithmetic as random.c, so UNIFORM and
 *    dropout streams are bit-identical to the CPU backend's. NORMAL computes log and cos in double and rounds them
 *    to f32 (the correctly rounded logf/cosf), where the CPU calls glibc's logf/cosf, which miss correct rounding
 *    by an ulp on about 1% of arguments: the two agree bit for bit except there, by an f32 ulp of an intermediate.
 *
 * Dtypes: compute ops (unary, binary, reduce, masked reduce, axpby, dropout) take F32 and BF16 (fp32 arithmetic,
 * bf16 storage rounded once per output element); fill, fill_random, convert and copy_strided also take F16 and F64
 * (and I32 where the CPU backend does), since they cost nothing extra.
 *
 * Memory traffic per element (bf16 / f32 bytes): unary 4 / 8, unary backward 6-8 / 12-16, binary 6 / 12 (4 / 8
 * with a broadcast operand), binary backward 6-10 / 12-20, reduce 2 / 4, masked reduce 4 / 8, axpby 6 / 12, dropout
 * 4 / 8, convert f32->bf16 6, copy_strided 4 / 8 (+2 / 4 accumulating). Floors on an H100 (3.0 TB/s) for GPT-2
 * 124M training shapes (B=8, T=1024, C=768): GELU on [8192, 3072] bf16 = 25.2M elements x 4 B = 101 MB -> 34 us,
 * its backward (x, dy -> dx: 6 B) 50 us; a residual add on [8192, 768] bf16 (6 B) 13 us; the gradient-norm
 * SUMSQ over 124M f32 grads (4 B) 165 us; dropout on [8192, 768] bf16 8.4 us.
 */
#include "internal.cuh"

// Resource budgets for sm_90 (kernels/check_resources.sh), with room for a compiler change; no kernel spills:
// @budget map_kernel regs<=64 smem<=0
// @budget fill_kernel regs<=40 smem<=0
// @budget random_kernel regs<=48 smem<=0 stack<=64
// @budget convert_kernel regs<=40 smem<=0
// @budget strided_copy_kernel regs<=48 smem<=0
// @budget strided_copy_acc_f64_kernel regs<=48 smem<=0
// @budget binary_strided_kernel regs<=48 smem<=0
// @budget binary_backward_strided_kernel regs<=48 smem<=0
// @budget reduce_rows_kernel regs<=48 smem<=2048
// @budget reduce_finish_kernel regs<=40 smem<=2048
// @budget reduce_cols_kernel regs<=48 smem<=0
// @budget reduce_cols_finish_kernel regs<=40 smem<=0
// @budget masked_reduce_kernel regs<=48 smem<=4096
// @budget masked_reduce_backward_kernel regs<=40 smem<=2048
// @budget transpose_copy_kernel regs<=56 smem<=8448
// @budget transpose_copy_acc_f64_kernel regs<=48 smem<=8448
// (random_kernel's NORMAL instances keep a 40-byte frame: the double cos's slow-path argument reduction, never taken
// for the arguments in [0, 2 pi) it gets.)

#define EW_BLOCK 256
#define RED_BLOCK 256
#define RED_CHUNK 16384    /* elements of a row per reduction block (fixed: results do not depend on the GPU) */
#define RED_COL_CHUNK 512  /* rows per thread when reducing columns (inner > 1) */
#define RED_SHORT_ROW 64   /* contiguous rows up to this length: one thread per row */

/* ---- 16-byte vectors ---------------------------------------------------------------------------------------- */

struct alignas(16) Bits16 {
    uint32_t w[4];
};

template <typename T> struct VecWidth {
    static constexpr int value = 16 / (int)sizeof(T);
};

/* v[k] = p[i0 + k] for k < N, as fp32; N == 1 is a plain load, N > 1 one 16-byte load (p + i0 aligned). */
template <typename T, int N>
__device__ __forceinline__ void load_n(const T *p, int64_t i0, float *v) {
    if (N == 1) {
        v[0] = to_float(p[i0]);
    } else {
        Bits16 raw = *reinterpret_cast<const Bits16 *>(p + i0);
        T e[N];
        memcpy(e, &raw, sizeof raw);
#pragma unroll
        for (int k = 0; k < N; k++) v[k] = to_float(e[k]);
    }
}

template <typename T, int N>
__device__ __forceinline__ void store_n(T *p, int64_t i0, const float *v) {
    if (N == 1) {
        p[i0] = from_float<T>(v[0]);
    } else {
        T e[N];
#pragma unroll
        for (int k = 0; k < N; k++) e[k] = from_float<T>(v[k]);
        Bits16 raw;
        memcpy(&raw, e, sizeof raw);
        *reinterpret_cast<Bits16 *>(p + i0) = raw;
    }
}

static inline bool aligned16(const void *p) { return p == NULL || ((uintptr_t)p & 15) == 0; }

/* ---- the contiguous map kernel ------------------------------------------------------------------------------
 * out[i] (+)= f(i, a[i], b[i], c[i]) for i < n; a missing input (NULL) reads as 0. Each thread handles N
 * consecutive elements per iteration (N = 16 / sizeof(T) when VEC), then the tail. Inputs may alias out (each
 * element is read before it is written, by the same thread): no __restrict__. */
template <typename T, bool VEC, typename F>
__global__ void __launch_bounds__(EW_BLOCK) map_kernel(int64_t n, F f, const T *a, const T *b, const T *c, T *out,
                                                      int acc) {
    constexpr int N = VEC ? VecWidth<T>::value : 1;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    const int64_t tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const int64_t nv = n / N;
    for (int64_t v = tid; v < nv; v += stride) {
        const int64_t i0 = v * N;
        float xa[N], xb[N], xc[N], xo[N];
#pragma unroll
        for (int k = 0; k < N; k++) xa[k] = xb[k] = xc[k] = xo[k] = 0.0f;
        if (a != NULL) load_n<T, N>(a, i0, xa);
        if (b != NULL) load_n<T, N>(b, i0, xb);
        if (c != NULL) load_n<T, N>(c, i0, xc);
        if (acc) load_n<T, N>(out, i0, xo);
#pragma unroll
        for (int k = 0; k < N; k++) {
            float r = f(i0 + k, xa[k], xb[k], xc[k]);
            xo[k] = acc ? xo[k] + r : r;
        }
        store_n<T, N>(out, i0, xo);
    }
    if (VEC) {
        for (int64_t i = nv * N + tid; i < n; i += stride) {
            float xa = a != NULL ? to_float(a[i]) : 0.0f;
            float xb = b != NULL ? to_float(b[i]) : 0.0f;
            float xc = c != NULL ? to_float(c[i]) : 0.0f;
            float r = f(i, xa, xb, xc);
            out[i] = from_float<T>(acc ? to_float(out[i]) + r : r);
        }
    }
}

/* Launches map_kernel over n > 0 elements, vectorised when every pointer allows. */
template <typename T, typename F>
static int32_t launch_map(const char *fn, rlhf4j_stream s, int64_t n, F f, const void *a, const void *b,
                          const void *c, void *out, int acc) {
    const T *pa = (const T *)a, *pb = (const T *)b, *pc = (const T *)c;
    T *po = (T *)out;
    if (aligned16(a) && aligned16(b) && aligned16(c) && aligned16(out)) {
        constexpr int N = VecWidth<T>::value;
        unsigned grid = grid_for(s, n / N > 0 ? n / N : 1, EW_BLOCK);
        return LAUNCH(fn, (map_kernel<T, true, F>), grid, EW_BLOCK, 0, s, n, f, pa, pb, pc, po, acc);
    }
    unsigned grid = grid_for(s, n, EW_BLOCK);
    return LAUNCH(fn, (map_kernel<T, false, F>), grid, EW_BLOCK, 0, s, n, f, pa, pb, pc, po, acc);
}

/* ---- strided iteration ----------------------------------------------------------------------------------------- */

struct StridedPlan {
    int nd;                                  /* dimensions left after normalising (innermost last) */
    int64_t shape[RLHF4J_MAX_DIMS];
    int64_t st[3][RLHF4J_MAX_DIMS];          /* per operand: 0 = destination / out, 1 = src / a, 2 = b */
    int64_t base[3];                         /* element offset of each operand's first element (after flips) */
    int64_t total;
};

/* The CPU backend's ew_plan_build: drop size-1 dimensions; with sort_dst, flip dimensions whose operand-0 stride is
 * negative and order dimensions by decreasing |operand-0 stride|; coalesce adjacent dimensions every operand steps
 * over contiguously. Leaves nd == 0 for a single element. */
static void plan_build(StridedPlan *p, int ndim, const int64_t *shape, int nops, const int64_t *const *strides,
                       bool sort_dst) {
    int nd = 0;
    memset(p, 0, sizeof *p);
    p->total = 1;
    for (int d = 0; d < ndim; d++) p->total *= shape[d];
    for (int d = 0; d < ndim; d++) {
        if (shape[d] == 1) continue;
        p->shape[nd] = shape[d];
        for (int o = 0; o < nops; o++) p->st[o][nd] = strides[o][d];
        nd++;
    }
    if (sort_dst) {
        for (int d = 0; d < nd; d++)
            if (p->st[0][d] < 0)
                for (int o = 0; o < nops; o++) {
                    p->base[o] += (p->shape[d] - 1) * p->st[o][d];
                    p->st[o][d] = -p->st[o][d];
                }
        for (int d = 1; d < nd; d++)
            for (int e = d; e > 0 && p->st[0][e - 1] < p->st[0][e]; e--) {
                int64_t t = p->shape[e];
                p->shape[e] = p->shape[e - 1];
                p->shape[e - 1] = t;
                for (int o = 0; o < nops; o++) {
                    t = p->st[o][e];
                    p->st[o][e] = p->st[o][e - 1];
                    p->st[o][e - 1] = t;
                }
            }
    }
    int m = 0;
    for (int d = 0; d < nd; d++) {
        if (m > 0) {
            bool ok = true;
            for (int o = 0; o < nops; o++) ok &= p->st[o][m - 1] == p->st[o][d] * p->shape[d];
            if (ok) {
                p->shape[m - 1] *= p->shape[d];
                for (int o = 0; o < nops; o++) p->st[o][m - 1] = p->st[o][d];
                continue;
            }
        }
        p->shape[m] = p->shape[d];
        for (int o = 0; o < nops; o++) p->st[o][m] = p->st[o][d];
        m++;
    }
    p->nd = m;
}

/* Offsets of flat index e (row-major over the plan's shape, innermost last) for operands 0..NOPS-1. */
template <typename I, int NOPS>
__device__ __forceinline__ void plan_offsets(const StridedPlan &p, I e, int64_t *off) {
#pragma unroll
    for (int o = 0; o < NOPS; o++) off[o] = p.base[o];
    for (int d = p.nd - 1; d >= 0; d--) {
        const I ext = (I)p.shape[d];
        const I q = e / ext;
        const int64_t idx = (int64_t)(e - q * ext);
        e = q;
#pragma unroll
        for (int o = 0; o < NOPS; o++) off[o] += idx * p.st[o][d];
    }
}

/* ---- argument checks shared with the CPU backend ------------------------------------------------------------- */

static int32_t check_shape(const char *fn, int32_t ndim, const int64_t *shape, int nstr, const int64_t *const *str,
                           const char *const *str_names, int64_t *total) {
    REQUIRE(ndim >= 0 && ndim <= RLHF4J_MAX_DIMS, "%s: ndim = %d must be in [0, %d]", fn, ndim, RLHF4J_MAX_DIMS);
    int64_t n = 1;
    if (ndim > 0) {
        CHECK_PTR(fn, shape);
        for (int i = 0; i < nstr; i++) REQUIRE(str[i] != NULL, "%s: %s is NULL", fn, str_names[i]);
    }
    for (int d = 0; d < ndim; d++) {
        REQUIRE(shape[d] >= 0, "%s: shape[%d] = %lld must be >= 0", fn, d, (long long)shape[d]);
        if (n != 0 && shape[d] > INT64_MAX / n) return rlhf4j_fail(RLHF4J_ERR_INVALID_ARGUMENT,
                                                                   "%s: shape has more than 2^63 elements", fn);
        n *= shape[d];
    }
    *total = n;
    return RLHF4J_OK;
}

/* ================================================================================================================
 * fill
 * x[i] = the dtype's bit pattern of value. Writes 2-8 B per element; 16 B per thread per iteration when aligned.
 * ================================================================================================================ */

template <typename U, bool VEC>
__global__ void __launch_bounds__(EW_BLOCK) fill_kernel(U *x, int64_t n, U v) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    const int64_t tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    int64_t start = 0;
    if (VEC) {
        constexpr int N = 16 / (int)sizeof(U);
        U e[N];
#pragma unroll
        for (int k = 0; k < N; k++) e[k] = v;
        Bits16 raw;
        memcpy(&raw, e, sizeof raw);
        const int64_t nv = n / N;
        for (int64_t i = tid; i < nv; i += stride) reinterpret_cast<Bits16 *>(x)[i] = raw;
        start = nv * N;
    }
    for (int64_t i = start + tid; i < n; i += stride) x[i] = v;
}

template <typename U>
static int32_t launch_fill(const char *fn, rlhf4j_stream s, void *x, int64_t n, U v) {
    if (aligned16(x)) {
        unsigned grid = grid_for(s, n * (int64_t)sizeof(U) / 16 > 0 ? n * (int64_t)sizeof(U) / 16 : 1, EW_BLOCK);
        return LAUNCH(fn, (fill_kernel<U, true>), grid, EW_BLOCK, 0, s, (U *)x, n, v);
    }
    return LAUNCH(fn, (fill_kernel<U, false>), grid_for(s, n, EW_BLOCK), EW_BLOCK, 0, s, (U *)x, n, v);
}

extern "C" RLHF4J_API int32_t rlhf4j_fill(rlhf4j_stream s, int32_t dtype, int64_t n, void *x, double value) {
    static const char *fn = "rlhf4j_fill";
    CHECK_STREAM(fn, s);
    CHECK_NONNEG(fn, n);
    int64_t esize = rlhf4j_dtype_size(dtype);
    REQUIRE(esize > 0, "%s: unknown dtype %d", fn, dtype);
    if (n == 0) return RLHF4J_OK;
    CHECK_PTR(fn, x);
    switch (dtype) {
    case RLHF4J_F32: return launch_fill<uint32_t>(fn, s, x, n, rl_f32_bits((float)value));
    case RLHF4J_F64: {
        uint64_t bits;
        memcpy(&bits, &value, 8);
        return launch_fill<uint64_t>(fn, s, x, n, bits);
    }
    case RLHF4J_BF16: return launch_fill<uint16_t>(fn, s, x, n, rl_f32_to_bf16((float)value));
    case RLHF4J_F16: return launch_fill<uint16_t>(fn, s, x, n, rl_f32_to_f16((float)value));
    default: /* I32 */
        REQUIRE(value > -2147483649.0 && value < 2147483648.0,
                "%s: value = %g does not fit in i32 (NaN or out of range)", fn, value);
        return launch_fill<uint32_t>(fn, s, x, n, (uint32_t)(int32_t)value);
    }
}

/* ================================================================================================================
 * fill_random (Philox-4x32-10; random.c gives the words and formulas). One counter per element, ten rounds of two
 * 32x32->64-bit multiplies and xors: ~60 integer operations, so on an H100 (~14 T int32 ops/s) the kernel is
 * compute-bound at roughly 250 G elements/s (1 ms for 124M parameters), above its write floor (bf16: 1.5 T/s).
 * ================================================================================================================ */

struct RandomParams {
    double a, b, range;
    uint64_t seed, offset;
    /* the largest value below b in each dtype (random.c: make_below_b) */
    double top_f64;
    float top_f32;
    uint16_t top_bf16, top_f16;
};

__device__ __forceinline__ uint64_t rl_bits53(uint32_t hi, uint32_t lo) {
    return (((uint64_t)hi << 21) ^ ((uint64_t)lo >> 11)) & ((1ull << 53) - 1);
}

/* F32 / BF16 / F16 draws in f32, as random.c: uniform a + (b - a) u in double (one fused multiply-add: what GCC emits
 * for the CPU's x86-64-v3/v4 clones), Box-Muller normal with f32 operands. */
__device__ __forceinline__ float random_f32(const RandomParams &p, int kind, uint32_t w0, uint32_t w1) {
    if (kind == RLHF4J_RANDOM_UNIFORM) {
        double u = (double)(w0 >> 8) * (1.0 / 16777216.0);
        return (float)fma(p.range, u, p.a);
    }
    float u1 = ((float)(w0 >> 8) + 1.0f) * (1.0f / 16777216.0f);
    float u2 = (float)(w1 >> 8) * (1.0f / 16777216.0f);
    float l = (float)log((double)u1);                              /* correctly rounded logf (see the file comment) */
    float c = (float)cos((double)(6.28318530717958648f * u2));     /* correctly rounded cosf */
    float z = sqrtf(-2.0f * l) * c;
    return (float)fma(p.b, (double)z, p.a);
}

template <int DT, int KIND>
__global__ void __launch_bounds__(EW_BLOCK) random_kernel(void *x, int64_t n, RandomParams p) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        uint32_t w[4];
        rl_philox4x32(p.offset + (uint64_t)i, p.seed, w);
        if (DT == RLHF4J_F64) {
            double v;
            if (KIND == RLHF4J_RANDOM_UNIFORM) {
                v = fma(p.range, (double)rl_bits53(w[0], w[1]) * (1.0 / 9007199254740992.0), p.a);
                v = v >= p.b ? p.top_f64 : v;
            } else {
                double u1 = ((double)rl_bits53(w[0], w[1]) + 1.0) * (1.0 / 9007199254740992.0);
                double u2 = (double)rl_bits53(w[2], w[3]) * (1.0 / 9007199254740992.0);
                v = fma(p.b, sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2), p.a);
            }
            ((double *)x)[i] = v;
        } else {
            float vf = random_f32(p, KIND, w[0], w[1]);
            const bool uni = KIND == RLHF4J_RANDOM_UNIFORM;
            if (DT == RLHF4J_F32) {
                ((float *)x)[i] = uni && (double)vf >= p.b ? p.top_f32 : vf;
            } else if (DT == RLHF4J_BF16) {
                uint16_t h = rl_f32_to_bf16(vf);
                ((uint16_t *)x)[i] = uni && (double)rl_bf16_to_f32(h) >= p.b ? p.top_bf16 : h;
            } else {
                uint16_t h = rl_f32_to_f16(vf);
                ((uint16_t *)x)[i] = uni && (double)rl_f16_to_f32(h) >= p.b ? p.top_f16 : h;
            }
        }
    }
}

static uint16_t half_step_down(uint16_t h) { /* next representable value toward -inf, for finite bf16/f16 bits */
    if (h == 0x0000) return 0x8001;
    return (h & 0x8000) ? (uint16_t)(h + 1) : (uint16_t)(h - 1);
}

extern "C" RLHF4J_API int32_t rlhf4j_fill_random(rlhf4j_stream s, int32_t dtype, int64_t n, void *x, int32_t kind,
                                                 double a, double b, uint64_t seed, uint64_t offset) {
    static const char *fn = "rlhf4j_fill_random";
    CHECK_STREAM(fn, s);
    CHECK_NONNEG(fn, n);
    REQUIRE(kind == RLHF4J_RANDOM_UNIFORM || kind == RLHF4J_RANDOM_NORMAL,
            "%s: kind = %d is not RLHF4J_RANDOM_UNIFORM (0) or RLHF4J_RANDOM_NORMAL (1)", fn, kind);
    REQUIRE(rlhf4j_dtype_size(dtype) > 0, "%s: unknown dtype %d", fn, dtype);
    if (dtype == RLHF4J_I32) UNSUPPORTED("%s: dtype i32 is not supported (random fills are floating point)", fn);
    REQUIRE(isfinite(a) && isfinite(b), "%s: a = %g and b = %g must be finite", fn, a, b);
    if (kind == RLHF4J_RANDOM_UNIFORM)
        REQUIRE(a <= b, "%s: uniform bounds a = %g > b = %g", fn, a, b);
    else
        REQUIRE(b >= 0, "%s: normal standard deviation b = %g must be >= 0", fn, b);
    if (n == 0) return RLHF4J_OK;
    CHECK_PTR(fn, x);
    RandomParams p;
    p.a = a;
    p.b = b;
    p.range = b - a;
    p.seed = seed;
    p.offset = offset;
    if (a == b) {
        p.top_f64 = a;
        p.top_f32 = (float)a;
        p.top_bf16 = rl_f32_to_bf16((float)a);
        p.top_f16 = rl_f32_to_f16((float)a);
    } else {
        p.top_f64 = nextafter(b, -INFINITY);
        float bf = (float)b;
        p.top_f32 = (double)bf < b ? bf : nextafterf(bf, -INFINITY);
        uint16_t h = rl_f32_to_bf16(bf);
        p.top_bf16 = (double)rl_bf16_to_f32(h) < b ? h : half_step_down(h);
        h = rl_f32_to_f16(bf);
        p.top_f16 = (double)rl_f16_to_f32(h) < b ? h : half_step_down(h);
    }
    unsigned grid = grid_for(s, n, EW_BLOCK);
#define RANDOM_CASE(DT)                                                                                             \
    case DT:                                                                                                        \
        if (kind == RLHF4J_RANDOM_UNIFORM)                                                                          \
            return LAUNCH(fn, (random_kernel<DT, RLHF4J_RANDOM_UNIFORM>), grid, EW_BLOCK, 0, s, x, n, p);           \
        return LAUNCH(fn, (random_kernel<DT, RLHF4J_RANDOM_NORMAL>), grid, EW_BLOCK, 0, s, x, n, p);
    switch (dtype) {
        RANDOM_CASE(RLHF4J_F32)
        RANDOM_CASE(RLHF4J_BF16)
        RANDOM_CASE(RLHF4J_F16)
        RANDOM_CASE(RLHF4J_F64)
    }
#undef RANDOM_CASE
    return rlhf4j_fail(RLHF4J_ERR_INTERNAL, "%s: unreachable dtype %d", fn, dtype);
}

/* ================================================================================================================
 * convert: dst[i] = (dst dtype) src[i], every pair of the five dtypes, with the CPU backend's rules (float to
 * BF16/F16 round to nearest even; F64 and I32 to BF16/F16 through F32; float to I32 truncates, saturates, NaN -> 0).
 * Both dtypes are template arguments, so each pair is a straight load-convert-store loop. Reads + writes the two
 * element sizes (f32 -> bf16: 6 B per element).
 * ================================================================================================================ */

template <int DT> struct StorageOf;
template <> struct StorageOf<RLHF4J_F32> { typedef float type; };
template <> struct StorageOf<RLHF4J_BF16> { typedef uint16_t type; };
template <> struct StorageOf<RLHF4J_F16> { typedef uint16_t type; };
template <> struct StorageOf<RLHF4J_I32> { typedef int32_t type; };
template <> struct StorageOf<RLHF4J_F64> { typedef double type; };

template <int DT>
__device__ __forceinline__ double load_as_double(const typename StorageOf<DT>::type v) {
    if (DT == RLHF4J_BF16) return rl_bf16_to_f32((uint16_t)v);
    if (DT == RLHF4J_F16) return rl_f16_to_f32((uint16_t)v);
    return (double)v;
}

__device__ __forceinline__ int32_t sat_i32(double d) {
    return d != d ? 0 : d >= 2147483648.0 ? INT32_MAX : d <= -2147483649.0 ? INT32_MIN : (int32_t)d;
}

template <int SD, int DD>
__global__ void __launch_bounds__(EW_BLOCK) convert_kernel(const typename StorageOf<SD>::type *src,
                                                          typename StorageOf<DD>::type *dst, int64_t n) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const double v = load_as_double<SD>(src[i]);
        if (DD == RLHF4J_F32) ((float *)dst)[i] = (float)v;
        else if (DD == RLHF4J_BF16) ((uint16_t *)dst)[i] = rl_f32_to_bf16((float)v);
        else if (DD == RLHF4J_F16) ((uint16_t *)dst)[i] = rl_f32_to_f16((float)v);
        else if (DD == RLHF4J_I32) ((int32_t *)dst)[i] = sat_i32(v);
        else ((double *)dst)[i] = v;
    }
}

template <int SD>
static int32_t convert_from(const char *fn, rlhf4j_stream s, const void *src, int32_t dd, void *dst, int64_t n) {
    typedef typename StorageOf<SD>::type S;
    unsigned grid = grid_for(s, n, EW_BLOCK);
    switch (dd) {
    case RLHF4J_F32: return LAUNCH(fn, (convert_kernel<SD, RLHF4J_F32>), grid, EW_BLOCK, 0, s, (const S *)src,
                                   (float *)dst, n);
    case RLHF4J_BF16: return LAUNCH(fn, (convert_kernel<SD, RLHF4J_BF16>), grid, EW_BLOCK, 0, s, (const S *)src,
                                    (uint16_t *)dst, n);
    case RLHF4J_F16: return LAUNCH(fn, (convert_kernel<SD, RLHF4J_F16>), grid, EW_BLOCK, 0, s, (const S *)src,
                                   (uint16_t *)dst, n);
    case RLHF4J_I32: return LAUNCH(fn, (convert_kernel<SD, RLHF4J_I32>), grid, EW_BLOCK, 0, s, (const S *)src,
                                   (int32_t *)dst, n);
    default: return LAUNCH(fn, (convert_kernel<SD, RLHF4J_F64>), grid, EW_BLOCK, 0, s, (const S *)src,
                           (double *)dst, n);
    }
}

extern "C" RLHF4J_API int32_t rlhf4j_convert(rlhf4j_stream s, int32_t src_dtype, const void *src, int32_t dst_dtype,
                                             void *dst, int64_t n) {
    static const char *fn = "rlhf4j_convert";
    CHECK_STREAM(fn, s);
    REQUIRE(rlhf4j_dtype_size(src_dtype) > 0, "%s: unknown src_dtype %d", fn, src_dtype);
    REQUIRE(rlhf4j_dtype_size(dst_dtype) > 0, "%s: unknown dst_dtype %d", fn, dst_dtype);
    CHECK_NONNEG(fn, n);
    if (n == 0) return RLHF4J_OK;
    CHECK_PTR(fn, src);
    CHECK_PTR(fn, dst);
    if (src_dtype == dst_dtype) {
        if (src != dst)
            CUDA_CHECK(fn, "cudaMemcpyAsync", cudaMemcpyAsync(dst, src, (size_t)(n * rlhf4j_dtype_size(src_dtype)),
                                                              cudaMemcpyDeviceToDevice, cuda_stream(s)));
        return RLHF4J_OK;
    }
    switch (src_dtype) {
    case RLHF4J_F32: return convert_from<RLHF4J_F32>(fn, s, src, dst_dtype, dst, n);
    case RLHF4J_BF16: return convert_from<RLHF4J_BF16>(fn, s, src, dst_dtype, dst, n);
    case RLHF4J_F16: return convert_from<RLHF4J_F16>(fn, s, src, dst_dtype, dst, n);
    case RLHF4J_I32: return convert_from<RLHF4J_I32>(fn, s, src, dst_dtype, dst, n);
    default: return convert_from<RLHF4J_F64>(fn, s, src, dst_dtype, dst, n);
    }
}

/* ================================================================================================================
 * copy_strided: dst[idx . dst_strides] (+)= src[idx . src_strides]. One thread per element of the normalised
 * iteration space (see the file comment). Plain copies move raw 2/4/8-byte words; accumulate adds in fp32 for
 * F32/BF16 (BF16 rounded once per element) and in fp64 for F64.
 * ================================================================================================================ */

template <typename U, bool ACC, typename I>
__global__ void __launch_bounds__(EW_BLOCK) strided_copy_kernel(StridedPlan p, U *dst, const U *src) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < p.total; e += stride) {
        int64_t off[2];
        plan_offsets<I, 2>(p, (I)e, off);
        if constexpr (ACC) dst[off[0]] = from_float<U>(to_float(dst[off[0]]) + to_float(src[off[1]]));
        else dst[off[0]] = src[off[1]];
    }
}

/* F64 accumulation keeps double precision (the f32 path would round). */
template <typename I>
__global__ void __launch_bounds__(EW_BLOCK) strided_copy_acc_f64_kernel(StridedPlan p, double *dst,
                                                                        const double *src) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < p.total; e += stride) {
        int64_t off[2];
        plan_offsets<I, 2>(p, (I)e, off);
        dst[off[0]] += src[off[1]];
    }
}

template <typename U, bool ACC>
static int32_t launch_copy(const char *fn, rlhf4j_stream s, const StridedPlan &p, void *dst, const void *src) {
    unsigned grid = grid_for(s, p.total, EW_BLOCK);
    if (p.total <= (int64_t)UINT32_MAX)
        return LAUNCH(fn, (strided_copy_kernel<U, ACC, uint32_t>), grid, EW_BLOCK, 0, s, p, (U *)dst,
                      (const U *)src);
    return LAUNCH(fn, (strided_copy_kernel<U, ACC, uint64_t>), grid, EW_BLOCK, 0, s, p, (U *)dst, (const U *)src);
}

/* Transposing copies (the destination contiguous along its innermost dimension K, the source contiguous along
 * another dimension J: contiguous() after a transpose or permute). One block of 32 x 8 threads moves a 32 x 32 tile
 * through shared memory: it reads the tile along J (coalesced in the source), and after a barrier writes it along K
 * (coalesced in the destination); the row padding of 1 keeps the column reads free of bank conflicts. Each block
 * finds its tile's base offsets with one division per outer dimension. Traffic: the copy's bytes, both ways in
 * whole 32-element runs, where the row kernel would read one element per 32-byte sector. */
#define TILE 32
#define TILE_ROWS 8

struct TransposePlan {
    int nd;                                  /* outer dimensions (neither J nor K) */
    int64_t shape[RLHF4J_MAX_DIMS], dst_st[RLHF4J_MAX_DIMS], src_st[RLHF4J_MAX_DIMS];
    int64_t nj, nk;                          /* extents of J and K */
    int64_t dsj, ssk;                        /* destination stride along J, source stride along K */
    int64_t tj, tk;                          /* tiles along J and K */
    int64_t base_d, base_s;
};

/* Raw bits of a 2-, 4- or 8-byte element (shared memory holds no class types). */
template <int BYTES> struct RawBits;
template <> struct RawBits<2> { typedef uint16_t type; };
template <> struct RawBits<4> { typedef uint32_t type; };
template <> struct RawBits<8> { typedef uint64_t type; };

/* old (+)= add on raw bits: float and bf16 add in fp32 and round once, as strided_copy_kernel. */
template <typename U>
__device__ __forceinline__ typename RawBits<sizeof(U)>::type raw_add(typename RawBits<sizeof(U)>::type old,
                                                                     typename RawBits<sizeof(U)>::type add) {
    if constexpr (sizeof(U) == 2) {
        bf16 r = from_float<bf16>(rl_bf16_to_f32(old) + rl_bf16_to_f32(add));
        uint16_t b;
        memcpy(&b, &r, 2);
        return b;
    } else {
        return rl_f32_bits(rl_bits_f32(old) + rl_bits_f32(add));
    }
}

/* (A minimum of 4 blocks per SM: without it ptxas held the accumulating instances to 32 registers and spilled.) */
template <typename U, bool ACC>
__global__ void __launch_bounds__(TILE * TILE_ROWS, 4) transpose_copy_kernel(TransposePlan p, U *dst_, const U *src_) {
    typedef typename RawBits<sizeof(U)>::type R;
    R *dst = reinterpret_cast<R *>(dst_);
    const R *src = reinterpret_cast<const R *>(src_);
    __shared__ R tile[TILE][TILE + 1]; /* [k][j] */
    int64_t t = blockIdx.x;
    const int64_t kt = t % p.tk;
    t /= p.tk;
    const int64_t jt = t % p.tj;
    t /= p.tj;
    int64_t od = p.base_d, os = p.base_s;
    for (int d = p.nd - 1; d >= 0; d--) {
        const int64_t i = t % p.shape[d];
        t /= p.shape[d];
        od += i * p.dst_st[d];
        os += i * p.src_st[d];
    }
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int jn = (int)min((int64_t)TILE, p.nj - jt * TILE), kn = (int)min((int64_t)TILE, p.nk - kt * TILE);
    const R *s0 = src + os + jt * TILE + kt * TILE * p.ssk; /* the tile's first element */
    R *d0 = dst + od + jt * TILE * p.dsj + kt * TILE;
#pragma unroll
    for (int r = ty; r < TILE; r += TILE_ROWS) /* read: lanes along J, source stride 1 */
        if (tx < jn && r < kn) tile[r][tx] = s0[tx + r * p.ssk];
    __syncthreads();
#pragma unroll
    for (int r = ty; r < TILE; r += TILE_ROWS) { /* write: lanes along K, destination stride 1 */
        if (r < jn && tx < kn) {
            R *q = d0 + r * p.dsj + tx;
            const R v = tile[tx][r];
            if constexpr (ACC) {
                const R o = *q;
                *q = raw_add<U>(o, v);
            } else {
                *q = v;
            }
        }
    }
}

/* F64 accumulation in double. */
__global__ void __launch_bounds__(TILE * TILE_ROWS) transpose_copy_acc_f64_kernel(TransposePlan p, double *dst,
                                                                                  const double *src) {
    __shared__ double tile[TILE][TILE + 1];
    int64_t t = blockIdx.x;
    const int64_t kt = t % p.tk;
    t /= p.tk;
    const int64_t jt = t % p.tj;
    t /= p.tj;
    int64_t od = p.base_d, os = p.base_s;
    for (int d = p.nd - 1; d >= 0; d--) {
        const int64_t i = t % p.shape[d];
        t /= p.shape[d];
        od += i * p.dst_st[d];
        os += i * p.src_st[d];
    }
    const int64_t j0 = jt * TILE, k0 = kt * TILE;
    const int tx = threadIdx.x, ty = threadIdx.y;
    for (int r = ty; r < TILE; r += TILE_ROWS) {
        const int64_t j = j0 + tx, k = k0 + r;
        if (j < p.nj && k < p.nk) tile[r][tx] = src[os + j + k * p.ssk];
    }
    __syncthreads();
    for (int r = ty; r < TILE; r += TILE_ROWS) {
        const int64_t j = j0 + r, k = k0 + tx;
        if (j < p.nj && k < p.nk) dst[od + j * p.dsj + k] += tile[tx][r];
    }
}

/* A transpose plan when the normalised copy is one (see above), else false. */
static bool transpose_plan(const StridedPlan &p, TransposePlan *t) {
    if (p.nd < 2) return false;
    const int in = p.nd - 1;
    if (p.st[0][in] != 1 || p.st[1][in] == 1 || p.st[1][in] == 0 || p.shape[in] < 8) return false;
    int jdim = -1;
    for (int d = 0; d < in; d++)
        if (p.st[1][d] == 1 && p.shape[d] >= 8) jdim = d;
    if (jdim < 0) return false;
    t->nd = 0;
    int64_t outer = 1;
    for (int d = 0; d < in; d++) {
        if (d == jdim) continue;
        t->shape[t->nd] = p.shape[d];
        t->dst_st[t->nd] = p.st[0][d];
        t->src_st[t->nd] = p.st[1][d];
        outer *= p.shape[d];
        t->nd++;
    }
    t->nj = p.shape[jdim];
    t->dsj = p.st[0][jdim];
    t->nk = p.shape[in];
    t->ssk = p.st[1][in];
    t->tj = ceil_div(t->nj, TILE);
    t->tk = ceil_div(t->nk, TILE);
    t->base_d = p.base[0];
    t->base_s = p.base[1];
    return outer * t->tj * t->tk <= (int64_t)INT32_MAX;
}

template <typename U, bool ACC>
static int32_t launch_transpose(const char *fn, rlhf4j_stream s, const TransposePlan &t, void *dst,
                                const void *src) {
    int64_t outer = 1;
    for (int d = 0; d < t.nd; d++) outer *= t.shape[d];
    const unsigned blocks = (unsigned)(outer * t.tj * t.tk);
    return LAUNCH(fn, (transpose_copy_kernel<U, ACC>), blocks, dim3(TILE, TILE_ROWS), 0, s, t, (U *)dst,
                  (const U *)src);
}

extern "C" RLHF4J_API int32_t rlhf4j_copy_strided(rlhf4j_stream s, int32_t dtype, int32_t ndim, const int64_t *shape,
                                                  const void *src, const int64_t *src_strides, void *dst,
                                                  const int64_t *dst_strides, int32_t accumulate) {
    static const char *fn = "rlhf4j_copy_strided";
    CHECK_STREAM(fn, s);
    int64_t esize = rlhf4j_dtype_size(dtype);
    REQUIRE(esize > 0, "%s: unknown dtype %d", fn, dtype);
    if (accumulate && dtype != RLHF4J_F32 && dtype != RLHF4J_BF16 && dtype != RLHF4J_F64)
        UNSUPPORTED("%s: accumulate is supported for f32, bf16 and f64 only, not %s", fn, rlhf4j_dtype_name(dtype));
    const int64_t *str[2] = {dst_strides, src_strides};
    static const char *const names[2] = {"dst_strides", "src_strides"};
    int64_t total = 0;
    int32_t st = check_shape(fn, ndim, shape, 2, str, names, &total);
    if (st != RLHF4J_OK) return st;
    if (total == 0) return RLHF4J_OK;
    CHECK_PTR(fn, src);
    CHECK_PTR(fn, dst);
    for (int d = 0; d < ndim; d++)
        REQUIRE(dst_strides[d] != 0 || shape[d] <= 1,
                "%s: dst_strides[%d] = 0 over shape[%d] = %lld: destination elements would alias", fn, d, d,
                (long long)shape[d]);
    StridedPlan p;
    plan_build(&p, ndim, shape, 2, str, true);
    TransposePlan tp;
    if (transpose_plan(p, &tp)) {
        if (accumulate) {
            if (dtype == RLHF4J_F32) return launch_transpose<float, true>(fn, s, tp, dst, src);
            if (dtype == RLHF4J_BF16) return launch_transpose<bf16, true>(fn, s, tp, dst, src);
            int64_t outer = 1;
            for (int d = 0; d < tp.nd; d++) outer *= tp.shape[d];
            return LAUNCH(fn, transpose_copy_acc_f64_kernel, (unsigned)(outer * tp.tj * tp.tk), dim3(TILE, TILE_ROWS),
                          0, s, tp, (double *)dst, (const double *)src);
        }
        switch (esize) {
        case 2: return launch_transpose<uint16_t, false>(fn, s, tp, dst, src);
        case 4: return launch_transpose<uint32_t, false>(fn, s, tp, dst, src);
        default: return launch_transpose<uint64_t, false>(fn, s, tp, dst, src);
        }
    }
    if (accumulate) {
        if (dtype == RLHF4J_F32) return launch_copy<float, true>(fn, s, p, dst, src);
        if (dtype == RLHF4J_BF16) return launch_copy<bf16, true>(fn, s, p, dst, src);
        unsigned grid = grid_for(s, p.total, EW_BLOCK);
        if (p.total <= (int64_t)UINT32_MAX)
            return LAUNCH(fn, strided_copy_acc_f64_kernel<uint32_t>, grid, EW_BLOCK, 0, s, p, (double *)dst,
                          (const double *)src);
        return LAUNCH(fn, strided_copy_acc_f64_kernel<uint64_t>, grid, EW_BLOCK, 0, s, p, (double *)dst,
                      (const double *)src);
    }
    /* A plain copy that normalised to one contiguous run on both sides is a memcpy. */
    if (p.nd <= 1 && (p.nd == 0 || (p.st[0][0] == 1 && p.st[1][0] == 1))) {
        const char *sp = (const char *)src + p.base[1] * esize;
        char *dp = (char *)dst + p.base[0] * esize;
        CUDA_CHECK(fn, "cudaMemcpyAsync", cudaMemcpyAsync(dp, sp, (size_t)(p.total * esize),
                                                          cudaMemcpyDeviceToDevice, cuda_stream(s)));
        return RLHF4J_OK;
    }
    switch (esize) {
    case 2: return launch_copy<uint16_t, false>(fn, s, p, dst, src);
    case 4: return launch_copy<uint32_t, false>(fn, s, p, dst, src);
    default: return launch_copy<uint64_t, false>(fn, s, p, dst, src);
    }
}

/* ================================================================================================================
 * unary and unary backward: torch's formulas term by term, as elementwise.inc, in fp32 with CUDA's full-precision
 * expf/logf/tanhf/erff/log1pf (1-2 ulp). Contiguous: map_kernel.
 * ================================================================================================================ */

#define K_BETA 0.7978845608028654f     /* M_SQRT2 * M_2_SQRTPI * 0.5 = sqrt(2 / pi) */
#define K_KAPPA 0.044715f
#define K_ALPHA 0.7071067811865476f    /* M_SQRT1_2 */
#define K_BETA_ERF 0.3989422804014327f /* M_2_SQRTPI * M_SQRT1_2 * 0.5 = 1 / sqrt(2 pi) */

struct UnaryFwd {
    int op;
    float alpha, beta;
    __device__ __forceinline__ float operator()(int64_t, float x, float, float) const {
        switch (op) {
        case RLHF4J_UNARY_EXP: return expf(x);
        case RLHF4J_UNARY_LOG: return logf(x);
        case RLHF4J_UNARY_AFFINE: return alpha * x + beta;
        case RLHF4J_UNARY_CLAMP: { /* NaN stays NaN; alpha > beta gives beta, as torch */
            float t = x < alpha ? alpha : x;
            return t > beta ? beta : t;
        }
        case RLHF4J_UNARY_RELU: return x < 0.0f ? 0.0f : x;
        case RLHF4J_UNARY_GELU_TANH: {
            float inner = K_BETA * (x + K_KAPPA * (x * x * x));
            return 0.5f * x * (1.0f + tanhf(inner));
        }
        case RLHF4J_UNARY_GELU_ERF: return x * 0.5f * (1.0f + erff(x * K_ALPHA));
        case RLHF4J_UNARY_SILU: return x / (1.0f + expf(-x));
        case RLHF4J_UNARY_SIGMOID: return 1.0f / (1.0f + expf(-x));
        case RLHF4J_UNARY_LOG_SIGMOID: return (x < 0.0f ? x : 0.0f) - log1pf(expf(-fabsf(x)));
        case RLHF4J_UNARY_TANH: return tanhf(x);
        case RLHF4J_UNARY_SQUARE: return x * x;
        case RLHF4J_UNARY_SQRT: return sqrtf(x);
        default: return fabsf(x); /* ABS */
        }
    }
};

/* Inputs: a = x, b = y, c = dy. */
struct UnaryBwd {
    int op;
    float alpha, beta;
    __device__ __forceinline__ float operator()(int64_t, float x, float y, float dy) const {
        switch (op) {
        case RLHF4J_UNARY_EXP: return dy * y;
        case RLHF4J_UNARY_LOG: return dy / x;
        case RLHF4J_UNARY_AFFINE: return dy * alpha;
        case RLHF4J_UNARY_CLAMP: return x >= alpha && x <= beta ? dy : 0.0f;
        case RLHF4J_UNARY_RELU: return x <= 0.0f ? 0.0f : dy;
        case RLHF4J_UNARY_GELU_TANH: {
            float x_sq = x * x;
            float inner = K_BETA * (x + K_KAPPA * (x * x * x));
            float t = tanhf(inner);
            float left = 0.5f * x, right = 1.0f + t;
            float left_derivative = 0.5f * right;
            float tanh_derivative = 1.0f - t * t;
            float inner_derivative = K_BETA * (1.0f + 3.0f * K_KAPPA * x_sq);
            float right_derivative = left * tanh_derivative * inner_derivative;
            return dy * (left_derivative + right_derivative);
        }
        case RLHF4J_UNARY_GELU_ERF: {
            float cdf = 0.5f * (1.0f + erff(x * K_ALPHA));
            float pdf = K_BETA_ERF * expf(x * x * -0.5f);
            return dy * (cdf + x * pdf);
        }
        case RLHF4J_UNARY_SILU: {
            float sg = 1.0f / (1.0f + expf(-x));
            return dy * sg * (1.0f + x * (1.0f - sg));
        }
        case RLHF4J_UNARY_SIGMOID: return dy * (1.0f - y) * y;
        case RLHF4J_UNARY_LOG_SIGMOID: {
            float z = expf(-fabsf(x));
            bool neg = x < 0.0f;
            float max_deriv = neg ? 1.0f : 0.0f, sign = neg ? 1.0f : -1.0f;
            return (max_deriv - sign * (z / (1.0f + z))) * dy;
        }
        case RLHF4J_UNARY_TANH: return dy * (1.0f - y * y);
        case RLHF4J_UNARY_SQUARE: return dy * (2.0f * x);
        case RLHF4J_UNARY_SQRT: return dy / (2.0f * y);
        default: return dy * (float)((x > 0.0f) - (x < 0.0f)); /* ABS: sgn, 0 at 0 and NaN */
        }
    }
};

static int32_t check_unary_op(const char *fn, int32_t op, double alpha, double beta) {
    REQUIRE(op >= RLHF4J_UNARY_EXP && op <= RLHF4J_UNARY_ABS, "%s: unknown op %d", fn, op);
    if (op == RLHF4J_UNARY_CLAMP)
        REQUIRE(alpha == alpha && beta == beta, "%s: clamp bounds alpha = %g, beta = %g must not be NaN", fn, alpha,
                beta);
    return RLHF4J_OK;
}

extern "C" RLHF4J_API int32_t rlhf4j_unary(rlhf4j_stream s, int32_t op, int32_t dtype, int64_t n, const void *x,
                                           void *y, double alpha, double beta) {
    static const char *fn = "rlhf4j_unary";
    CHECK_STREAM(fn, s);
    int32_t st = check_unary_op(fn, op, alpha, beta);
    if (st != RLHF4J_OK) return st;
    CHECK_COMPUTE_DTYPE(fn, dtype);
    CHECK_NONNEG(fn, n);
    if (n == 0) return RLHF4J_OK;
    CHECK_PTR(fn, x);
    CHECK_PTR(fn, y);
    UnaryFwd f{op, (float)alpha, (float)beta};
    DISPATCH_COMPUTE(dtype, T, return launch_map<T>(fn, s, n, f, x, NULL, NULL, y, 0));
}

extern "C" RLHF4J_API int32_t rlhf4j_unary_backward(rlhf4j_stream s, int32_t op, int32_t dtype, int64_t n,
                                                    const void *x, const void *y, const void *dy, void *dx,
                                                    double alpha, double beta, int32_t accumulate) {
    static const char *fn = "rlhf4j_unary_backward";
    CHECK_STREAM(fn, s);
    int32_t st = check_unary_op(fn, op, alpha, beta);
    if (st != RLHF4J_OK) return st;
    CHECK_COMPUTE_DTYPE(fn, dtype);
    CHECK_NONNEG(fn, n);
    if (n == 0) return RLHF4J_OK;
    CHECK_PTR(fn, dy);
    if (dx == NULL) return RLHF4J_OK; /* no gradient wanted */
    bool needs_y = op == RLHF4J_UNARY_EXP || op == RLHF4J_UNARY_SIGMOID || op == RLHF4J_UNARY_TANH ||
                   op == RLHF4J_UNARY_SQRT;
    if (needs_y)
        REQUIRE(y != NULL, "%s: y is NULL (op %d's derivative reads y = f(x))", fn, op);
    else
        REQUIRE(x != NULL || op == RLHF4J_UNARY_AFFINE, "%s: x is NULL", fn);
    /* Read only what the derivative needs: the other pointer may be NULL, and skipping it saves its traffic. */
    const void *xr = needs_y || op == RLHF4J_UNARY_AFFINE ? NULL : x;
    const void *yr = needs_y ? y : NULL;
    UnaryBwd f{op, (float)alpha, (float)beta};
    DISPATCH_COMPUTE(dtype, T, return launch_map<T>(fn, s, n, f, xr, yr, dy, dx, accumulate != 0));
}

/* ================================================================================================================
 * binary and binary backward. out is contiguous over `shape`; a and b are strided (zero strides broadcast). When
 * both normalise to the output's own contiguous layout the op is a map_kernel launch; otherwise one thread per
 * output element computes its a and b offsets from the plan.
 * ================================================================================================================ */

__device__ __forceinline__ float ew_max(float A, float B) { return A > B || A != A ? A : B; }
__device__ __forceinline__ float ew_min(float A, float B) { return A < B || A != A ? A : B; }

__device__ __forceinline__ float binary_apply(int op, float A, float B) {
    switch (op) {
    case RLHF4J_BINARY_ADD: return A + B;
    case RLHF4J_BINARY_SUB: return A - B;
    case RLHF4J_BINARY_MUL: return A * B;
    case RLHF4J_BINARY_DIV: return A / B;
    case RLHF4J_BINARY_MAX: return ew_max(A, B);
    default: return ew_min(A, B);
    }
}

struct BinaryFwd {
    int op;
    __device__ __forceinline__ float operator()(int64_t, float A, float B, float) const {
        return binary_apply(op, A, B);
    }
};

template <typename T, typename I>
__global__ void __launch_bounds__(EW_BLOCK) binary_strided_kernel(StridedPlan p, int op, const T *a, const T *b,
                                                                  T *out) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < p.total; e += stride) {
        int64_t off[3];
        plan_offsets<I, 3>(p, (I)e, off);
        out[e] = from_float<T>(binary_apply(op, to_float(a[off[1]]), to_float(b[off[2]])));
    }
}

/* torch's formulas (elementwise.inc): mul da = g b, db = g a; div da = g / b, db = -g ((a / b) / b); max/min: half
 * the gradient each on ties, none to the loser. */
__device__ __forceinline__ void binary_grads(int op, float g, float A, float B, float *ga, float *gb) {
    switch (op) {
    case RLHF4J_BINARY_MUL:
        *ga = g * B;
        *gb = g * A;
        break;
    case RLHF4J_BINARY_DIV:
        *ga = g / B;
        *gb = -g * ((A / B) / B);
        break;
    case RLHF4J_BINARY_MAX:
        *ga = A == B ? g * 0.5f : (A < B ? 0.0f : g);
        *gb = A == B ? g * 0.5f : (A > B ? 0.0f : g);
        break;
    default: /* MIN */
        *ga = A == B ? g * 0.5f : (A > B ? 0.0f : g);
        *gb = A == B ? g * 0.5f : (A < B ? 0.0f : g);
        break;
    }
}

template <typename T, typename I>
__global__ void __launch_bounds__(EW_BLOCK) binary_backward_strided_kernel(StridedPlan p, int op, const T *a,
                                                                           const T *b, const T *dout, T *da, T *db,
                                                                           int acc) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < p.total; e += stride) {
        int64_t off[3];
        plan_offsets<I, 3>(p, (I)e, off);
        float ga, gb;
        binary_grads(op, to_float(dout[e]), to_float(a[off[1]]), to_float(b[off[2]]), &ga, &gb);
        if (da != NULL) da[e] = from_float<T>(acc ? to_float(da[e]) + ga : ga);
        if (db != NULL) db[e] = from_float<T>(acc ? to_float(db[e]) + gb : gb);
    }
}

/* Contiguous (no broadcast) backward through map_kernel, one output per launch: a = A, b = B, c = g. */
struct BinaryBwdContig {
    int op;
    int which; /* 0: da, 1: db */
    __device__ __forceinline__ float operator()(int64_t, float A, float B, float g) const {
        float ga, gb;
        binary_grads(op, g, A, B, &ga, &gb);
        return which == 0 ? ga : gb;
    }
};

/* ADD / SUB backward: d (+)= +-g. */
struct GradCopy {
    float sign;
    __device__ __forceinline__ float operator()(int64_t, float g, float, float) const { return sign * g; }
};

static int32_t binary_setup(const char *fn, rlhf4j_stream s, int32_t op, int32_t dtype, int32_t ndim,
                            const int64_t *shape, const int64_t *a_strides, const int64_t *b_strides, StridedPlan *p,
                            int64_t *total) {
    REQUIRE(op >= RLHF4J_BINARY_ADD && op <= RLHF4J_BINARY_MIN, "%s: unknown op %d", fn, op);
    CHECK_COMPUTE_DTYPE(fn, dtype);
    const int64_t *str[2] = {a_strides, b_strides};
    static const char *const names[2] = {"a_strides", "b_strides"};
    int32_t st = check_shape(fn, ndim, shape, 2, str, names, total);
    if (st != RLHF4J_OK) return st;
    if (*total == 0) return RLHF4J_OK;
    int64_t out_strides[RLHF4J_MAX_DIMS];
    int64_t acc = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        out_strides[d] = acc;
        acc *= shape[d];
    }
    const int64_t *all[3] = {out_strides, a_strides, b_strides};
    plan_build(p, ndim, shape, 3, all, false);
    return RLHF4J_OK;
}

/* Both operands laid out exactly as the contiguous output. */
static bool plan_contiguous(const StridedPlan &p) {
    return p.nd == 0 || (p.nd == 1 && p.st[0][0] == 1 && p.st[1][0] == 1 && p.st[2][0] == 1);
}

extern "C" RLHF4J_API int32_t rlhf4j_binary(rlhf4j_stream s, int32_t op, int32_t dtype, int32_t ndim,
                                            const int64_t *shape, const void *a, const int64_t *a_strides,
                                            const void *b, const int64_t *b_strides, void *out) {
    static const char *fn = "rlhf4j_binary";
    CHECK_STREAM(fn, s);
    StridedPlan p;
    int64_t total = 0;
    int32_t st = binary_setup(fn, s, op, dtype, ndim, shape, a_strides, b_strides, &p, &total);
    if (st != RLHF4J_OK || total == 0) return st;
    CHECK_PTR(fn, a);
    CHECK_PTR(fn, b);
    CHECK_PTR(fn, out);
    if (plan_contiguous(p)) {
        BinaryFwd f{op};
        DISPATCH_COMPUTE(dtype, T, return launch_map<T>(fn, s, total, f, a, b, NULL, out, 0));
    }
    unsigned grid = grid_for(s, total, EW_BLOCK);
    DISPATCH_COMPUTE(dtype, T, {
        if (total <= (int64_t)UINT32_MAX)
            return LAUNCH(fn, (binary_strided_kernel<T, uint32_t>), grid, EW_BLOCK, 0, s, p, (int)op, (const T *)a,
                          (const T *)b, (T *)out);
        return LAUNCH(fn, (binary_strided_kernel<T, uint64_t>), grid, EW_BLOCK, 0, s, p, (int)op, (const T *)a,
                      (const T *)b, (T *)out);
    });
}

extern "C" RLHF4J_API int32_t rlhf4j_binary_backward(rlhf4j_stream s, int32_t op, int32_t dtype, int32_t ndim,
                                                     const int64_t *shape, const void *a, const int64_t *a_strides,
                                                     const void *b, const int64_t *b_strides, const void *dout,
                                                     void *da, void *db, int32_t accumulate) {
    static const char *fn = "rlhf4j_binary_backward";
    CHECK_STREAM(fn, s);
    StridedPlan p;
    int64_t total = 0;
    int32_t st = binary_setup(fn, s, op, dtype, ndim, shape, a_strides, b_strides, &p, &total);
    if (st != RLHF4J_OK || total == 0) return st;
    if (da == NULL && db == NULL) return RLHF4J_OK;
    CHECK_PTR(fn, dout);
    int acc = accumulate != 0;
    if (op == RLHF4J_BINARY_ADD || op == RLHF4J_BINARY_SUB) { /* neither operand is read */
        DISPATCH_COMPUTE(dtype, T, {
            if (da != NULL) {
                st = launch_map<T>(fn, s, total, GradCopy{1.0f}, dout, NULL, NULL, da, acc);
                if (st != RLHF4J_OK) return st;
            }
            if (db != NULL)
                return launch_map<T>(fn, s, total, GradCopy{op == RLHF4J_BINARY_SUB ? -1.0f : 1.0f}, dout, NULL,
                                     NULL, db, acc);
            return RLHF4J_OK;
        });
    }
    CHECK_PTR(fn, a);
    CHECK_PTR(fn, b);
    if (plan_contiguous(p)) {
        DISPATCH_COMPUTE(dtype, T, {
            if (da != NULL) {
                st = launch_map<T>(fn, s, total, BinaryBwdContig{op, 0}, a, b, dout, da, acc);
                if (st != RLHF4J_OK) return st;
            }
            if (db != NULL) return launch_map<T>(fn, s, total, BinaryBwdContig{op, 1}, a, b, dout, db, acc);
            return RLHF4J_OK;
        });
    }
    unsigned grid = grid_for(s, total, EW_BLOCK);
    DISPATCH_COMPUTE(dtype, T, {
        if (total <= (int64_t)UINT32_MAX)
            return LAUNCH(fn, (binary_backward_strided_kernel<T, uint32_t>), grid, EW_BLOCK, 0, s, p, (int)op,
                          (const T *)a, (const T *)b, (const T *)dout, (T *)da, (T *)db, acc);
        return LAUNCH(fn, (binary_backward_strided_kernel<T, uint64_t>), grid, EW_BLOCK, 0, s, p, (int)op,
                      (const T *)a, (const T *)b, (const T *)dout, (T *)da, (T *)db, acc);
    });
}

/* ================================================================================================================
 * reduce: viewing x as [outer, n, inner], y[o, i] (+)= reduce_j x[o, j, i], summed in double (see the file
 * comment for the fixed chunking). Reads x once; the second pass reads 8 B per chunk.
 * ================================================================================================================ */

/* Sum of v over the block (RED_BLOCK threads), in a fixed tree order; every thread gets the result. */
__device__ __forceinline__ double block_sum(double v, double *sh) {
    sh[threadIdx.x] = v;
    __syncthreads();
#pragma unroll
    for (int w = RED_BLOCK / 2; w > 0; w >>= 1) {
        if ((int)threadIdx.x < w) sh[threadIdx.x] += sh[threadIdx.x + w];
        __syncthreads();
    }
    double r = sh[0];
    __syncthreads(); /* sh is reused by the caller's next block_sum */
    return r;
}

/* The result of a finished sum into y[o] ((+)=, MEAN divided by n), rounded to f32 first as the CPU does. */
template <typename T>
__device__ __forceinline__ void reduce_store(T *y, int64_t o, double sum, int op, int64_t n, int acc) {
    if (op == RLHF4J_REDUCE_MEAN) sum /= (double)n;
    float r = (float)sum;
    y[o] = from_float<T>(acc ? to_float(y[o]) + r : r);
}

/* Block (row r, chunk c) of rows of n elements: sum of chunk c into partial[r * cpr + c], or into y when cpr == 1. */
template <typename T>
__global__ void __launch_bounds__(RED_BLOCK) reduce_rows_kernel(const T *x, int64_t n, int64_t cpr, int op,
                                                                double *partial, T *y, int acc) {
    __shared__ double sh[RED_BLOCK];
    const int64_t unit = blockIdx.x;
    const int64_t r = unit / cpr, c = unit % cpr;
    const int64_t j0 = c * RED_CHUNK, j1 = j0 + RED_CHUNK < n ? j0 + RED_CHUNK : n;
    const T *row = x + r * n;
    double acc_d = 0.0;
    const bool sq = op == RLHF4J_REDUCE_SUMSQ;
    for (int64_t j = j0 + threadIdx.x; j < j1; j += RED_BLOCK) {
        double v = (double)to_float(row[j]);
        acc_d += sq ? v * v : v;
    }
    double sum = block_sum(acc_d, sh);
    if (threadIdx.x == 0) {
        if (cpr == 1) reduce_store<T>(y, r, sum, op, n, acc);
        else partial[unit] = sum;
    }
}

/* One block per row: the row's cpr chunk partials, in a fixed order. */
template <typename T>
__global__ void __launch_bounds__(RED_BLOCK) reduce_finish_kernel(const double *partial, int64_t cpr, int64_t n,
                                                                  int op, T *y, int acc) {
    __shared__ double sh[RED_BLOCK];
    const int64_t r = blockIdx.x;
    double v = 0.0;
    for (int64_t c = threadIdx.x; c < cpr; c += RED_BLOCK) v += partial[r * cpr + c];
    double sum = block_sum(v, sh);
    if (threadIdx.x == 0) reduce_store<T>(y, r, sum, op, n, acc);
}

/* inner > 1: thread per (o, i, chunk of RED_COL_CHUNK j's): reads coalesce across i. */
template <typename T>
__global__ void __launch_bounds__(EW_BLOCK) reduce_cols_kernel(const T *x, int64_t outer, int64_t n, int64_t inner,
                                                               int64_t cpc, int op, double *partial, T *y, int acc) {
    const int64_t units = outer * cpc * inner;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    const bool sq = op == RLHF4J_REDUCE_SUMSQ;
    for (int64_t u = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; u < units; u += stride) {
        const int64_t i = u % inner, oc = u / inner, c = oc % cpc, o = oc / cpc;
        const int64_t j0 = c * RED_COL_CHUNK, j1 = j0 + RED_COL_CHUNK < n ? j0 + RED_COL_CHUNK : n;
        const T *base = x + (o * n) * inner + i;
        double sum = 0.0;
        for (int64_t j = j0; j < j1; j++) {
            double v = (double)to_float(base[j * inner]);
            sum += sq ? v * v : v;
        }
        if (cpc == 1) reduce_store<T>(y, o * inner + i, sum, op, n, acc);
        else partial[u] = sum; /* laid out [outer, cpc, inner] */
    }
}

template <typename T>
__global__ void __launch_bounds__(EW_BLOCK) reduce_cols_finish_kernel(const double *partial, int64_t outer,
                                                                      int64_t inner, int64_t cpc, int64_t n, int op,
                                                                      T *y, int acc) {
    const int64_t outputs = outer * inner;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t q = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; q < outputs; q += stride) {
        const int64_t o = q / inner, i = q % inner;
        double sum = 0.0;
        for (int64_t c = 0; c < cpc; c++) sum += partial[(o * cpc + c) * inner + i];
        reduce_store<T>(y, q, sum, op, n, acc);
    }
}

template <typename T>
static int32_t reduce_impl(const char *fn, rlhf4j_stream s, int32_t op, int64_t outer, int64_t n, int64_t inner,
                           const void *xv, void *yv, int acc) {
    const T *x = (const T *)xv;
    T *y = (T *)yv;
    /* Short contiguous rows (n <= RED_SHORT_ROW) go through the column kernel as [outer, n, 1]: one thread per row
     * summing in order, instead of a 256-thread block that would sit mostly idle. */
    if (inner == 1 && n > RED_SHORT_ROW) {
        const int64_t cpr = n > RED_CHUNK ? ceil_div(n, RED_CHUNK) : 1; /* n == 0: one empty chunk per row */
        if (cpr == 1)
            return LAUNCH(fn, reduce_rows_kernel<T>, (unsigned)outer, RED_BLOCK, 0, s, x, n, cpr, (int)op,
                          (double *)NULL, y, acc);
        const size_t bytes = (size_t)(outer * cpr) * sizeof(double);
        double *partial = (double *)rlhf4j_workspace(s, bytes);
        if (partial == NULL)
            return rlhf4j_fail(RLHF4J_ERR_OUT_OF_MEMORY, "%s: no device memory for a %zu-byte workspace", fn, bytes);
        int32_t st = LAUNCH(fn, reduce_rows_kernel<T>, (unsigned)(outer * cpr), RED_BLOCK, 0, s, x, n, cpr, (int)op,
                            partial, y, acc);
        if (st == RLHF4J_OK)
            st = LAUNCH(fn, reduce_finish_kernel<T>, (unsigned)outer, RED_BLOCK, 0, s, (const double *)partial, cpr,
                        n, (int)op, y, acc);
        rlhf4j_workspace_release(s, partial);
        return st;
    }
    const int64_t cpc = n > RED_COL_CHUNK ? ceil_div(n, RED_COL_CHUNK) : 1;
    const int64_t units = outer * cpc * inner;
    if (cpc == 1)
        return LAUNCH(fn, reduce_cols_kernel<T>, grid_for(s, units, EW_BLOCK), EW_BLOCK, 0, s, x, outer, n, inner,
                      cpc, (int)op, (double *)NULL, y, acc);
    const size_t bytes = (size_t)units * sizeof(double);
    double *partial = (double *)rlhf4j_workspace(s, bytes);
    if (partial == NULL)
        return rlhf4j_fail(RLHF4J_ERR_OUT_OF_MEMORY, "%s: no device memory for a %zu-byte workspace", fn, bytes);
    int32_t st = LAUNCH(fn, reduce_cols_kernel<T>, grid_for(s, units, EW_BLOCK), EW_BLOCK, 0, s, x, outer, n, inner,
                        cpc, (int)op, partial, y, acc);
    if (st == RLHF4J_OK)
        st = LAUNCH(fn, reduce_cols_finish_kernel<T>, grid_for(s, outer * inner, EW_BLOCK), EW_BLOCK, 0, s,
                    (const double *)partial, outer, inner, cpc, n, (int)op, y, acc);
    rlhf4j_workspace_release(s, partial);
    return st;
}

extern "C" RLHF4J_API int32_t rlhf4j_reduce(rlhf4j_stream s, int32_t op, int32_t dtype, int64_t outer, int64_t n,
                                            int64_t inner, const void *x, void *y, int32_t accumulate) {
    static const char *fn = "rlhf4j_reduce";
    CHECK_STREAM(fn, s);
    REQUIRE(op >= RLHF4J_REDUCE_SUM && op <= RLHF4J_REDUCE_SUMSQ, "%s: unknown op %d", fn, op);
    CHECK_COMPUTE_DTYPE(fn, dtype);
    CHECK_NONNEG(fn, outer);
    CHECK_NONNEG(fn, n);
    CHECK_NONNEG(fn, inner);
    int64_t outputs = outer * inner;
    if (outputs == 0) return RLHF4J_OK;
    CHECK_PTR(fn, y);
    if (n > 0) CHECK_PTR(fn, x);
    REQUIRE(inner > 1 || n <= RED_SHORT_ROW ||
                outer * (n > RED_CHUNK ? ceil_div(n, RED_CHUNK) : 1) <= (int64_t)INT32_MAX,
            "%s: %lld rows of %lld elements are more blocks than a grid holds", fn, (long long)outer, (long long)n);
    DISPATCH_COMPUTE(dtype, T, return reduce_impl<T>(fn, s, op, outer, n, inner, x, y, accumulate != 0));
}

/* ================================================================================================================
 * masked reduce: one block per row; s = sum x m and c = sum m in double (fixed tree); SUM y = s, MEAN y = c != 0 ?
 * s / c : 0. Backward: dx (+)= scale m with scale = dy (SUM) or (float)(dy / c) (MEAN; 0 where c == 0). Reads x and
 * m (forward), m and dy and writes dx (backward).
 * ================================================================================================================ */

template <typename T>
__global__ void __launch_bounds__(RED_BLOCK) masked_reduce_kernel(int op, int64_t cols, const T *x, const T *m,
                                                                  T *y) {
    __shared__ double sh[RED_BLOCK];
    __shared__ double sh2[RED_BLOCK];
    const int64_t r = blockIdx.x;
    const T *xr = x + r * cols, *mr = m + r * cols;
    double sv = 0.0, cv = 0.0;
    for (int64_t j = threadIdx.x; j < cols; j += RED_BLOCK) {
        double mv = (double)to_float(mr[j]);
        sv += (double)to_float(xr[j]) * mv;
        cv += mv;
    }
    double ssum = block_sum(sv, sh);
    double csum = op == RLHF4J_REDUCE_MEAN ? block_sum(cv, sh2) : 0.0;
    if (threadIdx.x == 0)
        y[r] = from_float<T>((float)(op == RLHF4J_REDUCE_SUM ? ssum : (csum != 0.0 ? ssum / csum : 0.0)));
}

template <typename T>
__global__ void __launch_bounds__(RED_BLOCK) masked_reduce_backward_kernel(int op, int64_t cols, const T *m,
                                                                           const T *dy, T *dx, int acc) {
    __shared__ double sh[RED_BLOCK];
    const int64_t r = blockIdx.x;
    const T *mr = m + r * cols;
    T *dxr = dx + r * cols;
    float scale = to_float(dy[r]);
    if (op == RLHF4J_REDUCE_MEAN) {
        double cv = 0.0;
        for (int64_t j = threadIdx.x; j < cols; j += RED_BLOCK) cv += (double)to_float(mr[j]);
        double c = block_sum(cv, sh);
        scale = c != 0.0 ? (float)((double)to_float(dy[r]) / c) : 0.0f;
    }
    for (int64_t j = threadIdx.x; j < cols; j += RED_BLOCK) {
        float g = scale * to_float(mr[j]);
        dxr[j] = from_float<T>(acc ? to_float(dxr[j]) + g : g);
    }
}

static int32_t masked_check(const char *fn, int32_t op, int32_t dtype, int64_t rows, int64_t cols) {
    REQUIRE(op == RLHF4J_REDUCE_SUM || op == RLHF4J_REDUCE_MEAN, "%s: op = %d must be SUM (0) or MEAN (1)", fn, op);
    CHECK_COMPUTE_DTYPE(fn, dtype);
    CHECK_NONNEG(fn, rows);
    CHECK_NONNEG(fn, cols);
    REQUIRE(rows <= (int64_t)INT32_MAX, "%s: rows = %lld is more blocks than a grid holds", fn, (long long)rows);
    return RLHF4J_OK;
}

extern "C" RLHF4J_API int32_t rlhf4j_masked_reduce(rlhf4j_stream s, int32_t op, int32_t dtype, int64_t rows,
                                                   int64_t cols, const void *x, const void *mask, void *y) {
    static const char *fn = "rlhf4j_masked_reduce";
    CHECK_STREAM(fn, s);
    int32_t st = masked_check(fn, op, dtype, rows, cols);
    if (st != RLHF4J_OK) return st;
    if (rows == 0) return RLHF4J_OK;
    CHECK_PTR(fn, y);
    if (cols > 0) {
        CHECK_PTR(fn, x);
        CHECK_PTR(fn, mask);
    }
    DISPATCH_COMPUTE(dtype, T,
                     return LAUNCH(fn, masked_reduce_kernel<T>, (unsigned)rows, RED_BLOCK, 0, s, (int)op, cols,
                                   (const T *)x, (const T *)mask, (T *)y));
}

extern "C" RLHF4J_API int32_t rlhf4j_masked_reduce_backward(rlhf4j_stream s, int32_t op, int32_t dtype, int64_t rows,
                                                            int64_t cols, const void *mask, const void *dy, void *dx,
                                                            int32_t accumulate) {
    static const char *fn = "rlhf4j_masked_reduce_backward";
    CHECK_STREAM(fn, s);
    int32_t st = masked_check(fn, op, dtype, rows, cols);
    if (st != RLHF4J_OK) return st;
    if (rows == 0 || cols == 0) return RLHF4J_OK;
    CHECK_PTR(fn, mask);
    CHECK_PTR(fn, dy);
    if (dx == NULL) return RLHF4J_OK; /* no gradient wanted */
    DISPATCH_COMPUTE(dtype, T,
                     return LAUNCH(fn, masked_reduce_backward_kernel<T>, (unsigned)rows, RED_BLOCK, 0, s, (int)op,
                                   cols, (const T *)mask, (const T *)dy, (T *)dx, accumulate != 0));
}

/* ================================================================================================================
 * axpby: y = alpha x + beta y in double, rounded once to f32 (then to bf16), as the CPU; beta == 0 ignores y's old
 * contents (NaN included). Reads x and y, writes y.
 * ================================================================================================================ */

struct Axpby {
    double alpha, beta;
    __device__ __forceinline__ float operator()(int64_t, float x, float y, float) const {
        return beta == 0.0 ? (float)(alpha * (double)x) : (float)(alpha * (double)x + beta * (double)y);
    }
};

extern "C" RLHF4J_API int32_t rlhf4j_axpby(rlhf4j_stream s, int32_t dtype, int64_t n, double alpha, const void *x,
                                           double beta, void *y) {
    static const char *fn = "rlhf4j_axpby";
    CHECK_STREAM(fn, s);
    CHECK_COMPUTE_DTYPE(fn, dtype);
    CHECK_NONNEG(fn, n);
    if (n == 0) return RLHF4J_OK;
    CHECK_PTR(fn, x);
    CHECK_PTR(fn, y);
    Axpby f{alpha, beta};
    DISPATCH_COMPUTE(dtype, T, return launch_map<T>(fn, s, n, f, x, beta == 0.0 ? NULL : y, NULL, y, 0));
}

/* ================================================================================================================
 * dropout: element i kept iff (word0 of Philox(offset + i, seed) >> 8) >= ceil(p 2^24), then scaled by 1 / (1 - p)
 * (multiplied by 0 otherwise, so NaN passes, as torch). Backward regenerates the mask. p == 0 is a copy.
 * ================================================================================================================ */

/* Inputs: a = x (or dy), b = the old dx when accumulating: dx + dy * k as one fused multiply-add, which is what
 * the CPU backend's `dst += src * f` compiles to on x86-64-v3/v4 (the GPU would fuse it too). */
struct DropoutOp {
    uint64_t seed, offset;
    uint32_t threshold;
    float scale;
    int accumulate;
    __device__ __forceinline__ float operator()(int64_t i, float x, float old, float) const {
        uint32_t w[4];
        rl_philox4x32(offset + (uint64_t)i, seed, w);
        const float k = (w[0] >> 8) >= threshold ? scale : 0.0f;
        return accumulate ? fmaf(x, k, old) : x * k;
    }
};

struct CopyOp {
    __device__ __forceinline__ float operator()(int64_t, float x, float, float) const { return x; }
};

static int32_t dropout(const char *fn, int forward, rlhf4j_stream s, int32_t dtype, int64_t n, const void *in,
                       void *out, double p, uint64_t seed, uint64_t offset, int accumulate) {
    CHECK_STREAM(fn, s);
    CHECK_COMPUTE_DTYPE(fn, dtype);
    CHECK_NONNEG(fn, n);
    REQUIRE(p != 1.0, "%s: p = 1 drops every element (the scale 1/(1-p) is infinite); p must be in [0, 1)", fn);
    REQUIRE(p >= 0.0 && p < 1.0, "%s: p = %g must be in [0, 1)", fn, p);
    if (n == 0) return RLHF4J_OK;
    if (!forward && out == NULL) return RLHF4J_OK; /* no gradient wanted */
    REQUIRE(in != NULL, "%s: %s is NULL", fn, forward ? "x" : "dy");
    REQUIRE(out != NULL, "%s: %s is NULL", fn, forward ? "y" : "dx");
    if (p == 0.0) {
        if (!accumulate && in == out) return RLHF4J_OK;
        if (!accumulate) {
            CUDA_CHECK(fn, "cudaMemcpyAsync", cudaMemcpyAsync(out, in, (size_t)(n * rlhf4j_dtype_size(dtype)),
                                                              cudaMemcpyDeviceToDevice, cuda_stream(s)));
            return RLHF4J_OK;
        }
        DISPATCH_COMPUTE(dtype, T, return launch_map<T>(fn, s, n, CopyOp{}, in, NULL, NULL, out, 1));
    }
    DropoutOp f{seed, offset, (uint32_t)ceil(p * 16777216.0), (float)(1.0 / (1.0 - p)), accumulate};
    DISPATCH_COMPUTE(dtype, T, return launch_map<T>(fn, s, n, f, in, accumulate ? out : NULL, NULL, out, 0));
}

extern "C" RLHF4J_API int32_t rlhf4j_dropout_forward(rlhf4j_stream s, int32_t dtype, int64_t n, const void *x,
                                                     void *y, double p, uint64_t seed, uint64_t offset) {
    return dropout("rlhf4j_dropout_forward", 1, s, dtype, n, x, y, p, seed, offset, 0);
}

extern "C" RLHF4J_API int32_t rlhf4j_dropout_backward(rlhf4j_stream s, int32_t dtype, int64_t n, const void *dy,
                                                      void *dx, double p, uint64_t seed, uint64_t offset,
                                                      int32_t accumulate) {
    return dropout("rlhf4j_dropout_backward", 0, s, dtype, n, dy, dx, p, seed, offset, accumulate != 0);
}
