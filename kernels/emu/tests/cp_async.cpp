// cp.async in emulation lands at the cp_async_wait that covers its group, never earlier: a kernel that forgets the
// wait (or the barrier after it) reads what shared memory held before, and fails.
#include "emu_test.h"

// Each thread copies one 16-byte chunk of a 256-float row into shared memory; then every thread reads its
// neighbour's chunk. MODE 0: correct (commit, wait, barrier); 1: planted missing wait; 2: planted missing barrier.
template <int MODE>
__global__ void stage_and_read(const float* x, float* out) {
    RLHF4J_DYNAMIC_SMEM(float, s);
    int t = threadIdx.x;
    cp_async_16(s + 4 * t, x + blockIdx.x * 256 + 4 * t);
    cp_async_commit();
    if (MODE != 1) cp_async_wait<0>();
    if (MODE != 2) __syncthreads();
    int nb = (t + 1) % 64;
    for (int i = 0; i < 4; i++) out[blockIdx.x * 256 + 4 * t + i] = s[4 * nb + i];
}

// Two groups in flight: wait<1> completes the older only.
__global__ void two_groups(const float* x, float* out) {
    RLHF4J_DYNAMIC_SMEM(float, s);
    int t = threadIdx.x;
    if (t == 0) {
        cp_async_16(s, x);
        cp_async_commit();
        cp_async_16(s + 4, x + 4);
        cp_async_commit();
        cp_async_wait<1>();
        for (int i = 0; i < 8; i++) out[i] = s[i];   // first 4 copied, last 4 still poison
        cp_async_wait<0>();
        for (int i = 0; i < 8; i++) out[8 + i] = s[i];
    }
}

// zfill: !valid writes zeros and never reads the (out-of-bounds) source.
__global__ void zfill(const float* x, int n, float* out) {
    RLHF4J_DYNAMIC_SMEM(float, s);
    int t = threadIdx.x;
    bool valid = 4 * t < n;
    cp_async_16_zfill(s + 4 * t, x + 4 * t, valid);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
    for (int i = 0; i < 4; i++) out[4 * t + i] = s[4 * t + i];
}

int main() {
    rlhf4j_emu::set_quiet(true);
    const int B = 5;
    std::vector<float> hx(B * 256), want(B * 256), got(B * 256);
    for (int i = 0; i < B * 256; i++) hx[i] = (float)i;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < 64; t++)
            for (int i = 0; i < 4; i++) want[b * 256 + 4 * t + i] = hx[b * 256 + 4 * ((t + 1) % 64) + i];
    float *x, *out;
    CHECK_CUDA(cudaMalloc(&x, B * 256 * 4));
    CHECK_CUDA(cudaMalloc(&out, B * 256 * 4));
    CHECK_CUDA(cudaMemcpy(x, hx.data(), B * 256 * 4, cudaMemcpyHostToDevice));
    auto run = [&](auto kernel, int mode) {
        rlhf4j_emu_set_schedule(mode, 3);
        CHECK_CUDA(launch_kernel(kernel, dim3(B), dim3(64), 256 * 4, 0, x, out));
        CHECK_CUDA(cudaMemcpy(got.data(), out, B * 256 * 4, cudaMemcpyDeviceToHost));
        int wrong = 0;
        for (int i = 0; i < B * 256; i++) wrong += !(got[i] == want[i]);
        return wrong;
    };
    int c0 = run(stage_and_read<0>, 0), c1 = run(stage_and_read<0>, 1);
    report(c0 + c1 == 0, "cp_async.with_wait", "commit + wait + __syncthreads: all correct under schedules 0 and 1");
    int m0 = run(stage_and_read<1>, 0), m1 = run(stage_and_read<1>, 1);
    report(m0 > 0 && m1 > 0, "cp_async.planted_missing_wait", "caught: %d and %d of %d values wrong (schedules 0, 1)", m0, m1, B * 256);
    int s0 = run(stage_and_read<2>, 0), s1 = run(stage_and_read<2>, 1);
    report(s0 > 0 || s1 > 0, "cp_async.planted_missing_barrier", "caught: %d and %d values wrong (schedules 0, 1)", s0, s1);
    rlhf4j_emu_set_schedule(0, 0);

    CHECK_CUDA(launch_kernel(two_groups, dim3(1), dim3(32), 64, 0, x, out));
    CHECK_CUDA(cudaMemcpy(got.data(), out, 64, cudaMemcpyDeviceToHost));
    bool ok = true;
    for (int i = 0; i < 4; i++) ok &= got[i] == hx[i] && got[4 + i] != got[4 + i] && got[8 + i] == hx[i] && got[12 + i] == hx[4 + i];
    report(ok, "cp_async.wait_group_n", "wait<1> lands the older group only, wait<0> the rest");

    // 10 valid floats would need 2.5 chunks: 2 chunks valid, the rest zero-filled; the source has 8 floats, so a
    // read of chunk 2 or later would hit the guard page.
    float* small;
    CHECK_CUDA(cudaMalloc(&small, 64 * 4));  // 256 bytes: ends at the guard
    CHECK_CUDA(cudaMemcpy(small, hx.data(), 64 * 4, cudaMemcpyHostToDevice));
    int code = -1;
    int sig = run_forked([&] {
        float* tail = small + 56;  // 8 floats before the guard
        exit(launch_kernel(zfill, dim3(1), dim3(32), 32 * 16, 0, (const float*)tail, 8, out) == cudaSuccess ? 0 : 3);
    }, &code);
    report(sig == 0 && code == 0, "cp_async.zfill_reads_nothing", "invalid chunks past the end are not read (signal %d, exit %d)", sig, code);
    CHECK_CUDA(launch_kernel(zfill, dim3(1), dim3(32), 32 * 16, 0, (const float*)(small + 56), 8, out));
    CHECK_CUDA(cudaMemcpy(got.data(), out, 128 * 4, cudaMemcpyDeviceToHost));
    ok = true;
    for (int i = 0; i < 128; i++) ok &= got[i] == (i < 8 ? hx[56 + i] : 0.0f);
    report(ok, "cp_async.zfill_zeros", "valid chunks copied, invalid ones zero");
    return g_failures != 0;
}
