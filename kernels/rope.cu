// rope.cu: rotary position embedding in the rotate-half layout of transformers' Llama / Qwen2 (apply_rotary_pos_emb
// with rotate_half), on the first rotary_dim dimensions of every head (partial rotary, as GPT-NeoX / Phi: the rest
// passes through); forward and backward (the transpose, R(-angle)). F32 and BF16 storage, f32 angles.
//
// One block per token row (b, t): its threads first compute cos / sin of angle = (float)position * inv_freq[i]
// for a chunk of up to 256 frequencies into shared memory, exactly as transformers forms them in fp32 and as the
// CPU backend does (accurate cosf / sinf, never the __cosf intrinsics: positions reach 10^5 radians), then rotate
// the H heads of the row with them. So the sin/cos cost is paid once per token, not once per head, which keeps the
// kernel memory-bound: rotary_dim / 2 sincos per H * D elements.
// Work items are (head, i) for the rotated pairs (i, i + rotary_dim / 2) and (head, d) for the copied tail,
// VV = 16 / sizeof(T) consecutive elements each when rotary_dim / 2, D - rotary_dim, the row strides and the
// pointers allow 16-byte vectors, else 1.
// x rows (tokens) are x_row_stride apart, so q and k are read straight out of a fused qkv projection; y is
// contiguous. Backward reads contiguous dy and writes (or adds to) dx with rows dx_row_stride apart.
//
// Memory traffic per element: read x, write y: 4 B (bf16) / 8 B (f32), +2 B / +4 B when accumulating; positions and
// inv_freq are negligible. Floor on an H100 (3.0 TB/s) for q of a GPT-2-sized model with rotary (B*T = 8 * 1024
// rows, H * D = 12 * 64 = 768): 25.2 MB / 50.3 MB -> 8.4 us / 16.8 us per tensor.
#include "internal.cuh"
#include "rowwise.cuh"

// ------------------------------------------------------------------------------------------------------------------
// CUDA kernels

constexpr int ROPE_CHUNK = 256; // frequencies whose cos / sin sit in shared memory at once (2 KiB)
constexpr int64_t ROPE_MAX_GRID = 1 << 30;

// dst[i] (+)= src[i] cos - src[i + half] sin, dst[i + half] (+)= src[i + half] cos + src[i] sin, with sin negated for
// backward (sign < 0); dims past rotary_dim copied (added). The 32-byte stack frame is cosf / sinf's own: their
// Payne-Hanek range reduction for |angle| > ~10^5 radians (positions past 100k) keeps 7 words in local memory.
// @budget rope_kernel regs<=48 smem<=2048 stack<=32
template <typename T, int VV>
__global__ void __launch_bounds__(256)
    rope_kernel(int64_t rows, int H, int D, int rotary_dim, const T* __restrict__ src, int64_t src_stride,
                const int32_t* __restrict__ positions, const float* __restrict__ inv_freq, T* __restrict__ dst,
                int64_t dst_stride, float sign, int accumulate) {
    __shared__ float cs[ROPE_CHUNK], sn[ROPE_CHUNK];
    const int half = rotary_dim / 2;
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* xr = src + r * src_stride;
        T* yr = dst + r * dst_stride;
        const float pos = (float)positions[r];
        for (int i0 = 0; i0 < half; i0 += ROPE_CHUNK) {
            const int n = half - i0 < ROPE_CHUNK ? half - i0 : ROPE_CHUNK;
            for (int i = threadIdx.x; i < n; i += blockDim.x) {
                const float angle = pos * inv_freq[i0 + i]; // as transformers: (float)position * inv_freq
                cs[i] = cosf(angle);
                sn[i] = sign * sinf(angle);
            }
            __syncthreads();
            const int per_head = n / VV;
            for (int it = threadIdx.x; it < H * per_head; it += blockDim.x) {
                const int h = it / per_head, i = (it - h * per_head) * VV;
                const T* x1 = xr + (int64_t)h * D + i0 + i;
                T* y1 = yr + (int64_t)h * D + i0 + i;
                float a[VV], b[VV], o1[VV], o2[VV];
                load_n<VV>(a, x1);
                load_n<VV>(b, x1 + half);
#pragma unroll
                for (int k = 0; k < VV; k++) {
                    o1[k] = a[k] * cs[i + k] - b[k] * sn[i + k];
                    o2[k] = b[k] * cs[i + k] + a[k] * sn[i + k];
                }
                if (accumulate) {
                    float p1[VV], p2[VV];
                    load_n<VV>(p1, y1);
                    load_n<VV>(p2, y1 + half);
#pragma unroll
                    for (int k = 0; k < VV; k++) {
                        o1[k] = p1[k] + o1[k];
                        o2[k] = p2[k] + o2[k];
                    }
                }
                store_n<VV>(y1, o1);
                store_n<VV>(y1 + half, o2);
            }
            __syncthreads(); // cs / sn are rewritten by the next chunk or row
        }
        const int tail = (D - rotary_dim) / VV;
        for (int it = threadIdx.x; it < H * tail; it += blockDim.x) {
            const int h = it / tail, d = rotary_dim + (it - h * tail) * VV;
            float v[VV];
            load_n<VV>(v, xr + (int64_t)h * D + d);
            if (accumulate) {
                float p[VV];
                load_n<VV>(p, yr + (int64_t)h * D + d);
#pragma unroll
                for (int k = 0; k < VV; k++) v[k] = p[k] + v[k];
            }
            store_n<VV>(yr + (int64_t)h * D + d, v);
        }
    }
}

// ------------------------------------------------------------------------------------------------------------------
// kernel launchers

template <typename T, int VV>
static int32_t rope_launch(const char* fn, rlhf4j_stream s, int64_t rows, int H, int D, int rotary_dim,
                           const void* src, int64_t ss, const int32_t* positions, const void* inv_freq, void* dst,
                           int64_t ds, float sign, int accumulate) {
    const int half = rotary_dim / 2;
    const int64_t items = (int64_t)H * ((half < ROPE_CHUNK ? half : ROPE_CHUNK) + D - rotary_dim) / VV;
    int threads = 32;
    while (threads < 256 && threads < items) threads <<= 1;
    const int64_t grid = rows < ROPE_MAX_GRID ? rows : ROPE_MAX_GRID;
    LAUNCH(fn, (rope_kernel<T, VV>), dim3((unsigned)grid), dim3(threads), 0, s, rows, H, D, rotary_dim, (const T*)src,
           ss, positions, (const float*)inv_freq, (T*)dst, ds, sign, accumulate);
    return RLHF4J_OK;
}

template <typename T>
static int32_t rope(const char* fn, rlhf4j_stream s, int64_t rows, int H, int D, int rotary_dim, const void* src,
                    int64_t ss, const int32_t* positions, const void* inv_freq, void* dst, int64_t ds, float sign,
                    int accumulate) {
    if (rows == 0) return RLHF4J_OK;
    constexpr int N = VecOf<T>::N;
    const int half = rotary_dim / 2;
    const bool vec = half % N == 0 && (D - rotary_dim) % N == 0 && ss % N == 0 && ds % N == 0 &&
                     (((uintptr_t)src | (uintptr_t)dst) & 15u) == 0;
    if (vec)
        return rope_launch<T, N>(fn, s, rows, H, D, rotary_dim, src, ss, positions, inv_freq, dst, ds, sign,
                                 accumulate);
    return rope_launch<T, 1>(fn, s, rows, H, D, rotary_dim, src, ss, positions, inv_freq, dst, ds, sign, accumulate);
}

// ------------------------------------------------------------------------------------------------------------------
// entry points (argument checks as the CPU backend's, with its messages)

// Checks shared by forward and backward: the strided tensor (x or dx) is named by its stride argument.
static int32_t check_rope(const char* fn, rlhf4j_stream s, int32_t dtype, int32_t B, int32_t T, int32_t H, int32_t D,
                          int32_t rotary_dim, int64_t row_stride, const char* stride_name, const int32_t* positions,
                          const void* inv_freq) {
    CHECK_STREAM(fn, s);
    CHECK_COMPUTE_DTYPE(fn, dtype);
    CHECK_NONNEG(fn, B);
    CHECK_NONNEG(fn, T);
    CHECK_POS(fn, H);
    CHECK_POS(fn, D);
    REQUIRE(rotary_dim > 0 && rotary_dim <= D && rotary_dim % 2 == 0,
            "%s: rotary_dim = %d must be even and in [2, D = %d]", fn, rotary_dim, D);
    REQUIRE(row_stride >= (int64_t)H * D, "%s: %s = %lld must be >= H * D = %lld", fn, stride_name,
            (long long)row_stride, (long long)H * D);
    CHECK_PTR(fn, positions);
    CHECK_PTR(fn, inv_freq);
    return RLHF4J_OK;
}

extern "C" RLHF4J_API int32_t rlhf4j_rope_forward(rlhf4j_stream s, int32_t dtype, int32_t B, int32_t T, int32_t H,
                                                  int32_t D, int32_t rotary_dim, const void* x, int64_t x_row_stride,
                                                  const int32_t* positions, const void* inv_freq, void* y) {
    static const char* fn = "rlhf4j_rope_forward";
    int32_t st = check_rope(fn, s, dtype, B, T, H, D, rotary_dim, x_row_stride, "x_row_stride", positions, inv_freq);
    if (st != RLHF4J_OK) return st;
    CHECK_PTR(fn, x);
    CHECK_PTR(fn, y);
    const int64_t rows = (int64_t)B * T, hd = (int64_t)H * D;
    if (dtype == RLHF4J_F32)
        return rope<float>(fn, s, rows, H, D, rotary_dim, x, x_row_stride, positions, inv_freq, y, hd, 1.0f, 0);
    return rope<bf16>(fn, s, rows, H, D, rotary_dim, x, x_row_stride, positions, inv_freq, y, hd, 1.0f, 0);
}

extern "C" RLHF4J_API int32_t rlhf4j_rope_backward(rlhf4j_stream s, int32_t dtype, int32_t B, int32_t T, int32_t H,
                                                   int32_t D, int32_t rotary_dim, const void* dy,
                                                   const int32_t* positions, const void* inv_freq, void* dx,
                                                   int64_t dx_row_stride, int32_t accumulate) {
    static const char* fn = "rlhf4j_rope_backward";
    int32_t st =
        check_rope(fn, s, dtype, B, T, H, D, rotary_dim, dx_row_stride, "dx_row_stride", positions, inv_freq);
    if (st != RLHF4J_OK) return st;
    CHECK_PTR(fn, dy);
    if (dx == NULL) return RLHF4J_OK; // no gradient wanted
    const int64_t rows = (int64_t)B * T, hd = (int64_t)H * D;
    if (dtype == RLHF4J_F32)
        return rope<float>(fn, s, rows, H, D, rotary_dim, dy, hd, positions, inv_freq, dx, dx_row_stride, -1.0f,
                           accumulate != 0);
    return rope<bf16>(fn, s, rows, H, D, rotary_dim, dy, hd, positions, inv_freq, dx, dx_row_stride, -1.0f,
                      accumulate != 0);
}
