// Warp collectives, atomics and the faults the scheduler reports.
#include "emu_test.h"

__global__ void shuffles(int* out) {  // 64 threads: two warps
    int t = threadIdx.x, lane = t % 32;
    int v = 100 * t;
    int* o = out + t * 12;
    o[0] = __shfl_sync(0xffffffffu, v, 5);
    o[1] = __shfl_sync(0xffffffffu, v, lane + 1, 8);   // within groups of 8, wrapping
    o[2] = __shfl_up_sync(0xffffffffu, v, 3);
    o[3] = __shfl_down_sync(0xffffffffu, v, 3);
    o[4] = __shfl_down_sync(0xffffffffu, v, 3, 16);
    o[5] = __shfl_xor_sync(0xffffffffu, v, 1);
    o[6] = __shfl_xor_sync(0xffffffffu, v, 16, 16);    // a later group: own value
    o[7] = (int)__ballot_sync(0xffffffffu, lane % 3 == 0);
    o[8] = __any_sync(0xffffffffu, lane == 31);
    o[9] = __all_sync(0xffffffffu, lane < 31);
    o[10] = (int)__match_any_sync(0xffffffffu, lane / 4);
    o[11] = __reduce_add_sync(0xffffffffu, lane);
}

__global__ void divergent(int* out) {  // halves of a warp shuffle separately, with their own masks
    int lane = threadIdx.x;
    int v = lane;
    if (lane < 16) v = __shfl_xor_sync(0x0000ffffu, v, 1);
    else v = __shfl_down_sync(0xffff0000u, v, 1);
    out[lane] = v;
}

__global__ void sums(const float* x, float* out) {
    float v = x[blockIdx.x * blockDim.x + threadIdx.x];
    float s = warp_sum(v), m = warp_max(v);
    out[(blockIdx.x * blockDim.x + threadIdx.x) * 2] = s;
    out[(blockIdx.x * blockDim.x + threadIdx.x) * 2 + 1] = m;
}

__global__ void atomics(float* fsum, int* isum, unsigned* umax, int* cas_count, float* smem_out) {
    __shared__ float s_acc;
    __shared__ int s_cnt;
    if (threadIdx.x == 0) s_acc = 0.0f, s_cnt = 0;
    __syncthreads();
    atomicAdd(fsum, 0.5f);
    atomicAdd(isum, (int)threadIdx.x);
    atomicMax(umax, blockIdx.x * 1000u + threadIdx.x);
    atomicAdd(&s_acc, 1.0f);
    int old = atomicAdd(&s_cnt, 1);
    int seen;
    do {
        seen = *cas_count;
    } while (atomicCAS(cas_count, seen, seen + 1) != seen);
    __syncthreads();
    if (threadIdx.x == 0) smem_out[blockIdx.x] = s_acc + (float)(old >= 0 ? 0 : 1000);
}

__global__ void count(int* out) {
    int c = __syncthreads_count(threadIdx.x % 3 == 0);
    int a = __syncthreads_and(threadIdx.x < 1000), o = __syncthreads_or(threadIdx.x == 77);
    if (threadIdx.x == 0) out[0] = c, out[1] = a, out[2] = o;
}

__global__ void partial_warp(float* out) {  // 40 threads: the second warp has 8 lanes
    float v = (float)threadIdx.x;
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, v, 8);  // lanes 8..15 of warp 1 do not exist
}

// Faults the scheduler must report as a failed launch.
__global__ void exit_before_barrier(float* out) {
    if (threadIdx.x >= 100) return;
    __syncthreads();
    out[threadIdx.x] = 1.0f;
}
__global__ void exit_before_shuffle(float* out) {
    if (threadIdx.x % 32 == 7) return;
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
}
__global__ void mismatched(float* out) {
    float v = 1.0f;
    if (threadIdx.x % 2) v = __shfl_xor_sync(0xffffffffu, v, 1);
    else v = (float)__ballot_sync(0xffffffffu, 1);
    out[threadIdx.x] = v;
}
__global__ void deadlock(float* out) {
    if (threadIdx.x < 16) __syncwarp();
    else __syncthreads();
    out[threadIdx.x] = 1.0f;
}
__global__ void trap(float*) {
    if (threadIdx.x == 3) __trap();
}
__global__ void dyn_smem(float* out, int n) {
    RLHF4J_DYNAMIC_SMEM(float, s);
    for (int i = threadIdx.x; i < n; i += blockDim.x) s[i] = (float)(blockIdx.x * 10000 + i);
    __syncthreads();
    float acc = 0;
    for (int i = 0; i < n; i++) acc += s[i];
    if (threadIdx.x == 5) out[blockIdx.x] = acc;
}

int main() {
    rlhf4j_emu::set_quiet(true);
    int* di;
    CHECK_CUDA(cudaMalloc(&di, 64 * 12 * 4));
    CHECK_CUDA(launch_kernel(shuffles, dim3(1), dim3(64), 0, 0, di));
    std::vector<int> h(64 * 12);
    CHECK_CUDA(cudaMemcpy(h.data(), di, h.size() * 4, cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int t = 0; t < 64; t++) {
        int lane = t % 32, w = t / 32 * 32;
        auto V = [&](int l) { return 100 * (w + l); };
        int* o = &h[t * 12];
        unsigned ballot = 0;
        for (int l = 0; l < 32; l += 3) ballot |= 1u << l;
        int exp[12] = {V(5), V((lane & ~7) + ((lane + 1) & 7)), lane >= 3 ? V(lane - 3) : V(lane),
                       lane + 3 < 32 ? V(lane + 3) : V(lane), (lane % 16) + 3 < 16 ? V(lane + 3) : V(lane),
                       V(lane ^ 1), lane < 16 ? V(lane) : V(lane - 16), (int)ballot, 1, 0,
                       (int)(0xfu << (lane / 4 * 4)), 496};
        // xor 16 with width 16: lanes 0-15 would read a later group (own value); lanes 16-31 read lanes 0-15.
        for (int i = 0; i < 12; i++) bad += o[i] != exp[i];
    }
    report(bad == 0, "warp.shuffles_votes_match_reduce", "idx/up/down/xor with widths, ballot/any/all, match_any, reduce_add: %d wrong", bad);

    CHECK_CUDA(launch_kernel(divergent, dim3(1), dim3(32), 0, 0, di));
    CHECK_CUDA(cudaMemcpy(h.data(), di, 32 * 4, cudaMemcpyDeviceToHost));
    bad = 0;
    for (int l = 0; l < 32; l++) bad += h[l] != (l < 16 ? l ^ 1 : (l < 31 ? l + 1 : l));
    report(bad == 0, "warp.divergent_masks", "two half-warps shuffling with their own masks: %d wrong", bad);

    // warp_sum / warp_max: the GPU's butterfly, bit for bit.
    const int W = 6;
    std::vector<float> hx(W * 32);
    for (int i = 0; i < W * 32; i++) hx[i] = sinf((float)i * 1.7f) * 1000.0f;
    float *dx, *dsum;
    CHECK_CUDA(cudaMalloc(&dx, W * 32 * 4));
    CHECK_CUDA(cudaMalloc(&dsum, W * 32 * 2 * 4));
    CHECK_CUDA(cudaMemcpy(dx, hx.data(), W * 32 * 4, cudaMemcpyHostToDevice));
    CHECK_CUDA(launch_kernel(sums, dim3(W / 2), dim3(64), 0, 0, dx, dsum));
    std::vector<float> hs(W * 64);
    CHECK_CUDA(cudaMemcpy(hs.data(), dsum, hs.size() * 4, cudaMemcpyDeviceToHost));
    bad = 0;
    for (int w = 0; w < W; w++) {
        float v[32], m[32];
        for (int l = 0; l < 32; l++) v[l] = m[l] = hx[w * 32 + l];
        for (int o = 16; o > 0; o >>= 1) {
            float nv[32], nm[32];
            for (int l = 0; l < 32; l++) nv[l] = v[l] + v[l ^ o], nm[l] = fmaxf(m[l], m[l ^ o]);
            memcpy(v, nv, sizeof v);
            memcpy(m, nm, sizeof m);
        }
        for (int l = 0; l < 32; l++) bad += hs[(w * 32 + l) * 2] != v[l] || hs[(w * 32 + l) * 2 + 1] != m[l];
    }
    report(bad == 0, "warp.warp_sum_max_bitwise", "one-collective butterfly equals the five-shuffle loop bit for bit: %d wrong", bad);

    // Partial warp: reading a lane that does not exist gives poison (NaN), not a plausible value.
    float* dp;
    CHECK_CUDA(cudaMalloc(&dp, 40 * 4));
    CHECK_CUDA(launch_kernel(partial_warp, dim3(1), dim3(40), 0, 0, dp));
    std::vector<float> hp(40);
    CHECK_CUDA(cudaMemcpy(hp.data(), dp, 40 * 4, cudaMemcpyDeviceToHost));
    bad = 0;
    for (int t = 0; t < 40; t++) bad += t < 32 ? hp[t] != (float)(t ^ 8) : hp[t] == hp[t];
    report(bad == 0, "warp.partial_warp_poison", "lanes 32-39 read missing lanes 40-47 as NaN: %d wrong", bad);

    // Atomics on float/int/unsigned, global and shared, across 50 blocks on OpenMP threads.
    const int NB = 50, NT = 128;
    float *fsum, *sm;
    int *isum, *cas;
    unsigned* umax;
    CHECK_CUDA(cudaMalloc(&fsum, 4));
    CHECK_CUDA(cudaMalloc(&isum, 4));
    CHECK_CUDA(cudaMalloc(&umax, 4));
    CHECK_CUDA(cudaMalloc(&cas, 4));
    CHECK_CUDA(cudaMalloc(&sm, NB * 4));
    CHECK_CUDA(cudaMemset(fsum, 0, 4));
    CHECK_CUDA(cudaMemset(isum, 0, 4));
    CHECK_CUDA(cudaMemset(umax, 0, 4));
    CHECK_CUDA(cudaMemset(cas, 0, 4));
    CHECK_CUDA(launch_kernel(atomics, dim3(NB), dim3(NT), 0, 0, fsum, isum, umax, cas, sm));
    float hf;
    int hi, hc;
    unsigned hu;
    std::vector<float> hsm(NB);
    CHECK_CUDA(cudaMemcpy(&hf, fsum, 4, cudaMemcpyDeviceToHost));
    CHECK_CUDA(cudaMemcpy(&hi, isum, 4, cudaMemcpyDeviceToHost));
    CHECK_CUDA(cudaMemcpy(&hu, umax, 4, cudaMemcpyDeviceToHost));
    CHECK_CUDA(cudaMemcpy(&hc, cas, 4, cudaMemcpyDeviceToHost));
    CHECK_CUDA(cudaMemcpy(hsm.data(), sm, NB * 4, cudaMemcpyDeviceToHost));
    bool sm_ok = true;
    for (float v : hsm) sm_ok &= v == (float)NT;
    bool aok = hf == 0.5f * NB * NT && hi == NB * (NT * (NT - 1) / 2) && hu == (NB - 1) * 1000u + NT - 1 &&
               hc == NB * NT && sm_ok;
    report(aok, "atomics.global_and_shared", "float sum %g, int sum %d, unsigned max %u, CAS loop count %d, shared sums ok %d",
           hf, hi, hu, hc, (int)sm_ok);

    int* dc;
    CHECK_CUDA(cudaMalloc(&dc, 12));
    CHECK_CUDA(launch_kernel(count, dim3(1), dim3(200), 0, 0, dc));
    int hcnt[3];
    CHECK_CUDA(cudaMemcpy(hcnt, dc, 12, cudaMemcpyDeviceToHost));
    report(hcnt[0] == 67 && hcnt[1] == 1 && hcnt[2] == 1, "barrier.syncthreads_count_and_or", "count %d and %d or %d",
           hcnt[0], hcnt[1], hcnt[2]);

    float* ds;
    CHECK_CUDA(cudaMalloc(&ds, 16 * 4));
    const int n = 3000;
    CHECK_CUDA(launch_kernel(dyn_smem, dim3(16), dim3(96), n * 4, 0, ds, n));
    std::vector<float> hd(16);
    CHECK_CUDA(cudaMemcpy(hd.data(), ds, 64, cudaMemcpyDeviceToHost));
    bad = 0;
    for (int b = 0; b < 16; b++) {
        float acc = 0;
        for (int i = 0; i < n; i++) acc += (float)(b * 10000 + i);
        bad += hd[b] != acc;
    }
    report(bad == 0, "smem.dynamic_per_block", "16 blocks, %d floats of dynamic shared memory each: %d wrong", n, bad);

    // Faults: each launch must fail, with a message that says what happened.
    struct Case {
        const char* name;
        void (*k)(float*);
        int threads;
        const char* needle;
    } cases[] = {
        {"fault.exit_while_others_wait_at_syncthreads", exit_before_barrier, 128, "exited"},
        {"fault.lane_exited_before_shuffle", exit_before_shuffle, 64, "exited"},
        {"fault.lanes_at_different_collectives", mismatched, 32, "disagree"},
        {"fault.deadlock", deadlock, 32, "deadlock"},
        {"fault.trap", trap, 32, "__trap"},
    };
    float* dummy;
    CHECK_CUDA(cudaMalloc(&dummy, 256 * 4));
    for (const Case& c : cases) {
        bool all = true;
        std::string msg;
        for (int mode = 0; mode < 3; mode++) {
            rlhf4j_emu_set_schedule(mode, 5);
            cudaError_t e = launch_kernel(c.k, dim3(3), dim3(c.threads), 0, 0, dummy);
            msg = cudaGetErrorString(e);
            all &= e == cudaErrorLaunchFailure && msg.find(c.needle) != std::string::npos;
        }
        report(all, c.name, "caught under schedules 0/1/2: %s", msg.c_str());
    }
    rlhf4j_emu_set_schedule(0, 0);
    // And a good launch after the faults still works (stacks and blocks recycled).
    CHECK_CUDA(launch_kernel(count, dim3(1), dim3(200), 0, 0, dc));
    CHECK_CUDA(cudaMemcpy(hcnt, dc, 12, cudaMemcpyDeviceToHost));
    report(hcnt[0] == 67, "fault.recovery", "a correct launch after the faults runs normally");
    return g_failures != 0;
}
