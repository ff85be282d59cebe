// Measures the emulation's costs (not a test: `make -C kernels emu-bench`): a fiber switch, a __syncthreads of a
// 256-thread block, a warp shuffle, an mma, and an empty launch of many blocks.
#include <time.h>
#include <vector>

#include "common.cuh"
#include "mma.cuh"

__global__ void barriers(int iters, float* out) {
    for (int i = 0; i < iters; i++) __syncthreads();
    if (threadIdx.x == 0) out[blockIdx.x] = 1.0f;
}
__global__ void shuffles(int iters, float* out) {
    float v = (float)threadIdx.x;
    for (int i = 0; i < iters; i++) v = __shfl_xor_sync(0xffffffffu, v, 1);
    if (threadIdx.x == 0) out[blockIdx.x] = v;
}
__global__ void sums(int iters, float* out) {
    float v = (float)threadIdx.x;
    for (int i = 0; i < iters; i++) v = warp_sum(v) * 1e-3f;
    if (threadIdx.x == 0) out[blockIdx.x] = v;
}
__global__ void mmas(int iters, float* out) {
    uint32_t a[4] = {threadIdx.x, 1, 2, 3}, b[2] = {4, 5};
    float c[4] = {};
    for (int i = 0; i < iters; i++) mma_m16n8k16_bf16(c, a, b, c);
    if (threadIdx.x == 0) out[blockIdx.x] = c[0];
}
__global__ void empty(float* out) {
    if (threadIdx.x == 0) out[blockIdx.x] = 0.0f;
}

// CPU time of the calling thread (the machine may be shared: wall time would count other jobs). Run with
// OMP_NUM_THREADS=1 so that every block runs on this thread.
template <typename F>
static double seconds(F f) {
    timespec a, b;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
    f();
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
    return (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
}

int main() {
    float* out;
    cudaMalloc(&out, 4096 * 4);
    const int it = 2000;
    double t = seconds([&] { launch_kernel(barriers, dim3(1), dim3(256), 0, 0, it, out); });
    printf("__syncthreads, 256 threads: %.2f us per barrier, %.1f ns per fiber switch\n", t / it * 1e6,
           t / it / 256 * 1e9);
    t = seconds([&] { launch_kernel(shuffles, dim3(1), dim3(256), 0, 0, it, out); });
    printf("__shfl_xor_sync: %.2f us per warp (%.1f ns per lane)\n", t / it / 8 * 1e6, t / it / 256 * 1e9);
    t = seconds([&] { launch_kernel(sums, dim3(1), dim3(256), 0, 0, it, out); });
    printf("warp_sum: %.2f us per warp\n", t / it / 8 * 1e6);
    t = seconds([&] { launch_kernel(mmas, dim3(1), dim3(128), 0, 0, it, out); });
    printf("mma_m16n8k16_bf16: %.2f us per warp-wide mma\n", t / it / 4 * 1e6);
    t = seconds([&] { launch_kernel(empty, dim3(4096), dim3(256), 0, 0, out); });
    printf("empty launch, 4096 blocks x 256 threads: %.1f ms (%.0f ns per thread)\n", t * 1e3, t / 4096 / 256 * 1e9);
    return 0;
}
