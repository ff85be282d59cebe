// Planted bug (b): out-of-bounds accesses must fault. Every emulated device allocation ends against a PROT_NONE page
// (its size rounded up to 256 bytes), and so does each block's dynamic shared memory. The crashes run in forked
// children; a child killed by SIGSEGV is the pass.
#include "emu_test.h"

__global__ void write_at(float* x, int i, float v) {
    if (threadIdx.x == 0) x[i] = v;
}
__global__ void smem_write_at(int i, float* out) {
    RLHF4J_DYNAMIC_SMEM(float, s);
    s[threadIdx.x] = 1.0f;
    __syncthreads();
    if (threadIdx.x == 0) {
        s[i] = 2.0f;
        out[0] = s[0];
    }
}
__global__ void read_smem(float* out, int n) {
    RLHF4J_DYNAMIC_SMEM(float, s);
    for (int i = threadIdx.x; i < n; i += blockDim.x) out[blockIdx.x * n + i] = s[i];
    __syncthreads();
    for (int i = threadIdx.x; i < n; i += blockDim.x) s[i] = (float)blockIdx.x;
}

int main() {
    rlhf4j_emu::set_quiet(true);
    const int n = 1024;  // 4096 bytes: the end is exactly against the guard
    float* x;
    CHECK_CUDA(cudaMalloc(&x, n * 4));
    report(((uintptr_t)x % 256) == 0, "guard.alignment", "cudaMalloc returns %p, 256-byte aligned", (void*)x);

    unsigned char first = 0;
    CHECK_CUDA(cudaMemcpy(&first, x, 1, cudaMemcpyDeviceToHost));
    float f0;
    CHECK_CUDA(cudaMemcpy(&f0, x + n - 1, 4, cudaMemcpyDeviceToHost));
    report(first == 0xff && f0 != f0, "guard.fresh_memory_is_nan", "fresh bytes 0x%02x, last float %g", first, f0);

    int code = -1;
    int sig = run_forked([&] { exit(launch_kernel(write_at, dim3(1), dim3(32), 0, 0, x, n - 1, 1.0f) == cudaSuccess ? 0 : 3); }, &code);
    report(sig == 0 && code == 0, "guard.in_bounds_write", "the last element is writable (signal %d, exit %d)", sig, code);

    sig = run_forked([&] { launch_kernel(write_at, dim3(1), dim3(32), 0, 0, x, n, 1.0f); }, &code);
    report(sig == SIGSEGV, "guard.planted_oob_write", "caught: a write one element past the end %s (signal %d)",
           sig == SIGSEGV ? "died of SIGSEGV" : "was NOT caught", sig);

    sig = run_forked([&] { launch_kernel(write_at, dim3(1), dim3(32), 0, 0, x, n + 1000, 1.0f); }, &code);
    report(sig == SIGSEGV, "guard.planted_oob_write_far", "caught: a write 1000 elements past the end (signal %d)", sig);

    // A size that is not a multiple of 256: a write into the slack is found when the buffer is freed.
    float* y;
    CHECK_CUDA(cudaMalloc(&y, 100 * 4));
    CHECK_CUDA(launch_kernel(write_at, dim3(1), dim3(32), 0, 0, y, 100, 1.0f));
    cudaError_t e = cudaFree(y);
    report(e == cudaErrorIllegalAddress, "guard.planted_write_into_slack", "caught at cudaFree: %s", cudaGetErrorName(e));
    cudaGetLastError();

    // Dynamic shared memory: ends against a guard page too.
    float* out;
    CHECK_CUDA(cudaMalloc(&out, 64 * 4 * 8));
    sig = run_forked([&] { exit(launch_kernel(smem_write_at, dim3(1), dim3(64), 64 * 4, 0, 63, out) == cudaSuccess ? 0 : 3); }, &code);
    report(sig == 0 && code == 0, "guard.smem_in_bounds", "the last shared element is writable (signal %d, exit %d)", sig, code);
    sig = run_forked([&] { launch_kernel(smem_write_at, dim3(1), dim3(64), 64 * 4, 0, 64, out); }, &code);
    report(sig == SIGSEGV, "guard.planted_smem_oob_write", "caught: a write one element past dynamic shared memory (signal %d)", sig);

    // Each block starts with its dynamic shared memory all 0xff, whatever the block before it left there.
    CHECK_CUDA(launch_kernel(read_smem, dim3(8), dim3(32), 64 * 4, 0, out, 64));
    std::vector<float> h(64 * 8);
    CHECK_CUDA(cudaMemcpy(h.data(), out, h.size() * 4, cudaMemcpyDeviceToHost));
    bool all_nan = true;
    for (float v : h) all_nan &= v != v;
    report(all_nan, "guard.smem_poisoned_per_block", "every block reads NaN from unwritten shared memory");

    // A kernel that asks for more shared memory than the device allows is refused.
    e = launch_kernel(read_smem, dim3(1), dim3(32), 300 * 1024, 0, out, 64);
    report(e != cudaSuccess, "guard.smem_limit", "300 KiB of dynamic shared memory: %s", cudaGetErrorName(e));
    e = launch_kernel(read_smem, dim3(0), dim3(32), 0, 0, out, 64);
    report(e == cudaErrorInvalidConfiguration, "guard.empty_grid", "grid 0: %s", cudaGetErrorName(e));
    e = launch_kernel(read_smem, dim3(1), dim3(1025), 0, 0, out, 64);
    report(e == cudaErrorInvalidConfiguration, "guard.block_too_large", "1025 threads: %s", cudaGetErrorName(e));

    cudaFree(x);
    cudaFree(out);
    return g_failures != 0;
}
