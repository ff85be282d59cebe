// Planted bug (a): a block reduction that lacks the __syncthreads inside its loop. Its result depends on the order in
// which the threads of a block run between barriers, so schedules 0 (lanes in order) and 1 (reversed) must disagree;
// the correct kernel must give the exact sum under every schedule.
#include "emu_test.h"

template <bool BARRIER>
__global__ void block_sum(const float* x, float* out, int n) {
    __shared__ float s[256];
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    s[threadIdx.x] = i < n ? x[i] : 0.0f;
    __syncthreads();
    for (int o = blockDim.x / 2; o > 0; o >>= 1) {
        if ((int)threadIdx.x < o) s[threadIdx.x] += s[threadIdx.x + o];
        if (BARRIER) __syncthreads();  // the planted bug leaves this out
    }
    if (threadIdx.x == 0) out[blockIdx.x] = s[0];
}

// A race through shared memory between warps without any barrier between the write and the read.
__global__ void neighbour(float* out) {
    __shared__ float s[128];
    s[threadIdx.x] = (float)threadIdx.x;
    // missing __syncthreads()
    out[threadIdx.x] = s[(threadIdx.x + 32) % 128];
}

template <typename K>
static std::vector<float> run(K kernel, int mode, const float* dx, float* dout, int n, int blocks) {
    rlhf4j_emu_set_schedule(mode, 1234);
    CHECK_CUDA(launch_kernel(kernel, dim3(blocks), dim3(256), 0, 0, dx, dout, n));
    std::vector<float> r(blocks);
    CHECK_CUDA(cudaMemcpy(r.data(), dout, blocks * 4, cudaMemcpyDeviceToHost));
    return r;
}

int main() {
    const int n = 256 * 37 - 5, blocks = (n + 255) / 256;
    std::vector<float> hx(n);
    for (int i = 0; i < n; i++) hx[i] = (float)((i * 7919) % 13) - 6.0f;  // small integers: every sum is exact
    std::vector<float> want(blocks, 0.0f);
    for (int i = 0; i < n; i++) want[i / 256] += hx[i];
    float *dx, *dout;
    CHECK_CUDA(cudaMalloc(&dx, n * 4));
    CHECK_CUDA(cudaMalloc(&dout, blocks * 4));
    CHECK_CUDA(cudaMemcpy(dx, hx.data(), n * 4, cudaMemcpyHostToDevice));

    bool good_ok = true;
    for (int mode = 0; mode < 3; mode++) good_ok &= run(block_sum<true>, mode, dx, dout, n, blocks) == want;
    report(good_ok, "schedule.correct_reduction", "exact block sums under schedules 0, 1 and 2 (%d blocks)", blocks);

    std::vector<float> b0 = run(block_sum<false>, 0, dx, dout, n, blocks), b1 = run(block_sum<false>, 1, dx, dout, n, blocks);
    int differ = 0;
    for (int b = 0; b < blocks; b++) differ += b0[b] != b1[b];
    report(differ > 0, "schedule.planted_missing_syncthreads",
           "caught: schedules 0 and 1 disagree on %d of %d blocks (block 0: %g vs %g, exact %g)", differ, blocks, b0[0],
           b1[0], want[0]);

    float* dn;
    CHECK_CUDA(cudaMalloc(&dn, 128 * 4));
    std::vector<float> n0(128), n1(128);
    rlhf4j_emu_set_schedule(0, 0);
    CHECK_CUDA(launch_kernel(neighbour, dim3(1), dim3(128), 0, 0, dn));
    CHECK_CUDA(cudaMemcpy(n0.data(), dn, 512, cudaMemcpyDeviceToHost));
    rlhf4j_emu_set_schedule(1, 0);
    CHECK_CUDA(launch_kernel(neighbour, dim3(1), dim3(128), 0, 0, dn));
    CHECK_CUDA(cudaMemcpy(n1.data(), dn, 512, cudaMemcpyDeviceToHost));
    report(n0 != n1, "schedule.planted_smem_race_between_warps", "caught: schedules 0 and 1 disagree");

    rlhf4j_emu_set_schedule(2, 99);
    report(rlhf4j_emu_get_schedule() == 2, "schedule.get_set", "mode %d", rlhf4j_emu_get_schedule());
    rlhf4j_emu_set_schedule(0, 0);
    cudaFree(dx);
    cudaFree(dout);
    cudaFree(dn);
    return g_failures != 0;
}
