// The warp-serial schedules (3 and 4). Under schedules 0-2 every warp of a block gets one turn per warp collective, so
// the warps move in lockstep through their shuffles / mma / ldmatrix, and a cp.async lands only at its wait. A missing
// __syncthreads between warps whose reads and writes of shared memory sit on either side of such a collective then
// goes unseen (flash attention's end-of-iteration barrier is one). Schedule 3 runs one warp at a time, in order, until
// it waits at __syncthreads, and lands cp.async at issue; 4 does the same with the warps reversed and copies landing at
// the wait. Planted bugs here must pass 0 and 1 unseen (that is the gap) and be caught by 3 (against 0) or 4; the
// correct kernels must give the exact answer under all five schedules.
#include "emu_test.h"

const unsigned FULL = 0xffffffffu;

// Two warps, one tile of 32 floats in shared memory per step: warp 0 produces it, warp 1 consumes it. Both warps do a
// warp collective after the barrier that publishes the tile (the consumer's is the read itself, like an ldmatrix
// feeding an mma). The planted bug drops the end-of-step barrier, so the producer may overwrite the tile of step s
// with step s+1 while the consumer has not read it yet.
template <bool BARRIER>
__global__ void producer_consumer(const float* x, float* out, int steps) {
    __shared__ float tile[32];
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    float acc = 0.0f;
    for (int s = 0; s < steps; s++) {
        if (warp == 0) tile[lane] = x[s * 32 + lane];
        __syncthreads();  // the tile is complete
        if (warp == 1) acc += __shfl_xor_sync(FULL, tile[(lane * 7) % 32], 1);
        else acc += __shfl_xor_sync(FULL, (float)s, 1);  // the producer's own work, with its own collective
        if (BARRIER) __syncthreads();  // the tile is consumed before the next step overwrites it: the planted bug drops it
    }
    out[blockIdx.x * blockDim.x + threadIdx.x] = acc;
}

// Every warp (3 of them, the last one partial) loads its share of a 64-float tile and reads the whole tile, with a
// shuffle after the reads; the planted bug drops the end-of-step barrier again, so whichever warp runs first overwrites its
// share of the tile for step s+1 while the others still read step s (caught by 3 and by 4).
template <bool BARRIER>
__global__ void exchange(const float* x, float* out, int steps) {
    __shared__ float tile[64];
    int t = threadIdx.x, lane = t % 32;
    float acc = 0.0f;
    for (int s = 0; s < steps; s++) {
        for (int i = t; i < 64; i += blockDim.x) tile[i] = x[s * 64 + i];
        __syncthreads();
        float v = tile[lane] * tile[32 + lane] + tile[(t * 5) % 64];
        acc += v + __shfl_xor_sync(FULL, v, 1);
        if (BARRIER) __syncthreads();
    }
    out[blockIdx.x * blockDim.x + t] = acc;
}

// cp.async: every thread of two warps copies 16 bytes of a 256-float tile, waits for its own copies, does some warp
// collective work, then reads a chunk another warp copied. The planted bug drops the __syncthreads after the wait:
// the reader may run before the other warp has even issued (or waited for) its copy.
template <bool BARRIER>
__global__ void async_exchange(const float* x, float* out) {
    RLHF4J_DYNAMIC_SMEM(float, s);
    int t = threadIdx.x;
    const float* src = x + blockIdx.x * 256;
    cp_async_16(s + 4 * t, src + 4 * t);
    cp_async_commit();
    cp_async_wait<0>();
    if (BARRIER) __syncthreads();
    float g = __shfl_xor_sync(FULL, (float)t, 1);
    int other = (t + 32) % 64;
    for (int i = 0; i < 4; i++) out[blockIdx.x * 256 + 4 * t + i] = s[4 * other + i] + 0.0f * g;
}

// A thread reads its OWN copy without waiting: schedule 3 lands it at issue, 4 at the wait that never comes.
template <bool WAIT>
__global__ void own_copy(const float* x, float* out) {
    RLHF4J_DYNAMIC_SMEM(float, s);
    int t = threadIdx.x;
    cp_async_16(s + 4 * t, x + 4 * t);
    cp_async_commit();
    if (WAIT) cp_async_wait<0>();
    for (int i = 0; i < 4; i++) out[4 * t + i] = s[4 * t + i];
    cp_async_wait<0>();
}

// Who runs when: each thread takes a ticket before and after a shuffle; warp-serial schedules give a warp's lanes
// both their tickets before the next warp takes any.
__global__ void tickets(int* out) {
    __shared__ int counter;
    if (threadIdx.x == 0) counter = 0;
    __syncthreads();
    int a = counter++;  // one OS thread runs the block: no race here, only the order of the fibers
    int b = __shfl_xor_sync(__activemask(), a, 1);
    int c = counter++;
    out[2 * threadIdx.x] = a + 0 * b;
    out[2 * threadIdx.x + 1] = c;
}

// Runs kernel under a schedule with dout poisoned (NaN); returns the first count floats of dout.
template <typename K, typename... A>
static std::vector<float> run(K kernel, int mode, int blocks, int threads, size_t smem, float* dout, size_t count,
                              A... args) {
    rlhf4j_emu_set_schedule(mode, 77);
    CHECK_CUDA(cudaMemset(dout, 0xff, count * 4));
    CHECK_CUDA(launch_kernel(kernel, dim3(blocks), dim3(threads), smem, 0, args...));
    std::vector<float> r(count);
    CHECK_CUDA(cudaMemcpy(r.data(), dout, r.size() * 4, cudaMemcpyDeviceToHost));
    return r;
}

static int differ(const std::vector<float>& a, const std::vector<float>& b) {
    int d = 0;
    for (size_t i = 0; i < a.size(); i++) d += memcmp(&a[i], &b[i], 4) != 0;
    return d;
}

int main() {
    rlhf4j_emu::set_quiet(true);
    const int steps = 6, blocks = 3;
    std::vector<float> hx(steps * 256 + blocks * 256);
    for (size_t i = 0; i < hx.size(); i++) hx[i] = (float)((i * 37) % 19) - 9.0f;  // small integers: exact sums
    float *dx, *dout;
    CHECK_CUDA(cudaMalloc(&dx, hx.size() * 4));
    CHECK_CUDA(cudaMalloc(&dout, blocks * 256 * 4 * 4));
    CHECK_CUDA(cudaMemcpy(dx, hx.data(), hx.size() * 4, cudaMemcpyHostToDevice));

    // producer / consumer
    {
        const size_t N = blocks * 64;
        std::vector<float> want(N);
        for (int b = 0; b < blocks; b++)
            for (int t = 0; t < 64; t++) {
                float acc = 0.0f;
                for (int s = 0; s < steps; s++)
                    acc += t < 32 ? (float)s : hx[s * 32 + (((t % 32) ^ 1) * 7) % 32];
                want[b * 64 + t] = acc;
            }
        bool ok = true;
        for (int m = 0; m <= 4; m++)
            ok &= differ(run(producer_consumer<true>, m, blocks, 64, 0, dout, N, (const float*)dx, dout, steps), want) == 0;
        report(ok, "warp_serial.producer_consumer_correct", "exact under schedules 0-4");
        std::vector<float> r[5];
        for (int m = 0; m <= 4; m++) r[m] = run(producer_consumer<false>, m, blocks, 64, 0, dout, N, (const float*)dx, dout, steps);
        int d0 = differ(r[0], want), d1 = differ(r[1], want), d3 = differ(r[3], r[0]), d34 = differ(r[3], r[4]);
        report(d0 == 0 && d1 == 0, "warp_serial.producer_consumer_gap",
               "the planted missing end-of-step barrier passes schedules 0 and 1 unseen (%d, %d wrong): the gap", d0, d1);
        report(d3 > 0 && d34 > 0, "warp_serial.planted_missing_barrier_between_warps",
               "caught: schedule 3 disagrees with 0 on %d and with 4 on %d of %d values", d3, d34, blocks * 64);
    }

    // all warps exchange a tile (3 warps, the last partial)
    {
        const int threads = 80;
        const size_t N = blocks * threads;
        std::vector<float> g[5], p[5];
        for (int m = 0; m <= 4; m++) {
            g[m] = run(exchange<true>, m, blocks, threads, 0, dout, N, (const float*)dx, dout, steps);
            p[m] = run(exchange<false>, m, blocks, threads, 0, dout, N, (const float*)dx, dout, steps);
        }
        bool ok = true;
        for (int m = 1; m <= 4; m++) ok &= differ(g[m], g[0]) == 0;
        for (size_t i = 0; i < N; i++) ok &= !(g[0][i] != g[0][i]);  // every thread wrote
        report(ok, "warp_serial.exchange_correct", "bitwise identical under schedules 0-4, 80 threads (a partial warp)");
        int d1 = differ(p[1], p[0]), d3 = differ(p[3], p[0]), d4 = differ(p[4], p[0]);
        report(d1 == 0 && d3 > 0 && d4 > 0, "warp_serial.planted_exchange_missing_barrier",
               "0 and 1 agree (%d differ); caught: 3 and 4 disagree with 0 on %d and %d values", d1, d3, d4);
    }

    // cp.async read by another warp before its wait
    {
        size_t N = blocks * 256;
        std::vector<float> w(N);
        for (int b = 0; b < blocks; b++)
            for (int t = 0; t < 64; t++)
                for (int i = 0; i < 4; i++) w[b * 256 + 4 * t + i] = hx[b * 256 + 4 * ((t + 32) % 64) + i];
        bool ok = true;
        for (int m = 0; m <= 4; m++) ok &= differ(run(async_exchange<true>, m, blocks, 64, 1024, dout, N, (const float*)dx, dout), w) == 0;
        report(ok, "warp_serial.cp_async_correct", "commit + wait + __syncthreads: exact under schedules 0-4");
        int d[5];
        for (int m = 0; m <= 4; m++) d[m] = differ(run(async_exchange<false>, m, blocks, 64, 1024, dout, N, (const float*)dx, dout), w);
        report(d[0] == 0 && d[1] == 0, "warp_serial.cp_async_gap",
               "reading another warp's copy without the barrier after the wait passes 0 and 1 (%d, %d wrong)", d[0], d[1]);
        report(d[3] > 0 && d[4] > 0, "warp_serial.planted_cp_async_read_before_other_warps_wait",
               "caught: %d and %d of %d values wrong under schedules 3 and 4", d[3], d[4], blocks * 256);

        auto own = [&](auto kernel, int m) {
            std::vector<float> v = run(kernel, m, 1, 64, 1024, dout, 256, (const float*)dx, dout);
            return differ(v, std::vector<float>(hx.begin(), hx.begin() + 256));
        };
        bool wait_ok = true;
        for (int m = 0; m <= 4; m++) wait_ok &= own(own_copy<true>, m) == 0;
        int o3 = own(own_copy<false>, 3), o4 = own(own_copy<false>, 4);
        report(wait_ok && o3 == 0 && o4 == 256, "warp_serial.cp_async_landing",
               "with the wait exact under 0-4; without it, lands at issue under 3 (%d wrong), not under 4 (%d wrong)", o3, o4);
    }

    // the order itself
    {
        int* dt;
        CHECK_CUDA(cudaMalloc(&dt, 2 * 80 * 4));
        auto order = [&](int m) {
            rlhf4j_emu_set_schedule(m, 0);
            CHECK_CUDA(launch_kernel(tickets, dim3(1), dim3(80), 0, 0, dt));
            std::vector<int> v(160);
            CHECK_CUDA(cudaMemcpy(v.data(), dt, 160 * 4, cudaMemcpyDeviceToHost));
            return v;
        };
        // warps in order (3) or reversed (4), lanes likewise; each warp takes all its tickets before the next warp
        auto expect = [&](bool rev) {
            std::vector<int> v(160);
            int next = 0;
            for (int k = 0; k < 3; k++) {
                int wi = rev ? 2 - k : k, nl = wi == 2 ? 16 : 32;
                for (int l = 0; l < nl; l++) v[2 * (wi * 32 + (rev ? nl - 1 - l : l))] = next++;
                for (int l = 0; l < nl; l++) v[2 * (wi * 32 + (rev ? nl - 1 - l : l)) + 1] = next++;
            }
            return v;
        };
        std::vector<int> t0 = order(0), t3 = order(3), t4 = order(4);
        bool lockstep = t0[1] == 80;  // schedule 0: lane 0's second ticket comes after every thread's first
        report(t3 == expect(false) && t4 == expect(true) && lockstep, "warp_serial.order",
               "3: warp by warp in order, 4: reversed (lane 0 second ticket %d, %d; schedule 0: %d)", t3[1], t4[1], t0[1]);
        cudaFree(dt);
    }

    for (int m = 3; m <= 4; m++) {
        rlhf4j_emu_set_schedule(m, 5);
        report(rlhf4j_emu_get_schedule() == m, "warp_serial.get_set", "mode %d reads back as %d", m, rlhf4j_emu_get_schedule());
    }
    rlhf4j_emu_set_schedule(5, 0);
    report(rlhf4j_emu_get_schedule() == 0, "warp_serial.out_of_range", "mode 5 means 0");
    rlhf4j_emu_set_schedule(0, 0);
    cudaFree(dx);
    cudaFree(dout);
    return g_failures != 0;
}
