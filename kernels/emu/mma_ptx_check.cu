// nvcc-only check that every wrapper of mma.cuh assembles to real PTX for sm_80 and sm_90, without spills:
// `make -C kernels mma-ptx-check`. (Not part of the library.)
#include "mma.cuh"

__global__ void __launch_bounds__(128) mma_wrappers(const bf16* __restrict__ A, const bf16* __restrict__ B,
                                                    float* __restrict__ D, int valid_rows) {
    __shared__ __align__(16) bf16 sA[2][64][24];
    __shared__ __align__(16) bf16 sB[2][16][72];
    int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    float acc[8][4] = {};
    for (int st = 0; st < 2; st++) {
        for (int c = tid; c < 64 * 2; c += 128) {
            int r = c / 2, k = (c % 2) * 8;
            cp_async_16_zfill(&sA[st][r][k], A + r * 64 + st * 16 + k, r < valid_rows);
        }
        for (int c = tid; c < 16 * 8; c += 128) {
            int k = c / 8, n = (c % 8) * 8;
            cp_async_16(&sB[st][k][n], B + (st * 16 + k) * 64 + n);
        }
        cp_async_commit();
    }
    for (int st = 0; st < 2; st++) {
        if (st == 0) cp_async_wait<1>();
        else cp_async_wait<0>();
        __syncthreads();
        uint32_t a[4], x1[1], x2[2], x1t[1], x4t[4];
        ldmatrix_x4(a, &sA[st][warp * 16 + lane % 16][8 * (lane / 16)]);
        ldmatrix_x1(x1, &sA[st][lane % 8][0]);
        ldmatrix_x2(x2, &sA[st][lane % 16][0]);
        ldmatrix_x1_trans(x1t, &sB[st][lane % 8][0]);
        ldmatrix_x4_trans(x4t, &sB[st][lane % 16][8 * (lane / 16)]);
        a[0] ^= x1[0] & 1u;
        a[1] ^= x2[1] & 1u;
        a[2] ^= x1t[0] & 1u;
        a[3] ^= x4t[3] & 1u;
#pragma unroll
        for (int nt = 0; nt < 8; nt++) {
            uint32_t b[2];
            ldmatrix_x2_trans(b, &sB[st][lane % 16][nt * 8]);
            mma_m16n8k16_bf16(acc[nt], a, b, acc[nt]);
        }
    }
    int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int nt = 0; nt < 8; nt++) {
        int r = warp * 16 + g, c = nt * 8 + 2 * t;
        D[r * 64 + c] = warp_sum(acc[nt][0]) + warp_max(acc[nt][1]);
        D[(r + 8) * 64 + c] = acc[nt][2] + acc[nt][3];
    }
}
