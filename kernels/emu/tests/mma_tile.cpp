// Planted bug (c): tensor-core fragments. The emulated mma_m16n8k16_bf16 and ldmatrix move exactly the elements the
// PTX ISA assigns to each lane, so a tile product built from correctly indexed fragments equals the plain matrix
// product, and one built with a wrong fragment index does not.
#include "emu_test.h"

// Fragment indexing by hand, from the PTX ISA's tables (g = lane / 4, t = lane % 4). WRONG plants a bug: A's
// registers 1 and 2 swapped (rows g+8 and columns 2t+8 confused), the most common mistake.
template <bool WRONG>
__global__ void mma_manual(const bf16* A, const bf16* B, const float* C, float* D) {  // A 16x16, B 16x8 (k x n)
    int lane = threadIdx.x, g = lane >> 2, t = lane & 3;
    auto pair = [](bf16 lo, bf16 hi) { return (uint32_t)__bfloat16_as_ushort(lo) | (uint32_t)__bfloat16_as_ushort(hi) << 16; };
    uint32_t a[4], b[2];
    for (int i = 0; i < 4; i++) {
        int ii = WRONG ? (i == 1 ? 2 : i == 2 ? 1 : i) : i;
        int row = g + ((ii & 1) ? 8 : 0), col = 2 * t + ((ii & 2) ? 8 : 0);
        a[i] = pair(A[row * 16 + col], A[row * 16 + col + 1]);
    }
    for (int i = 0; i < 2; i++) b[i] = pair(B[(2 * t + 8 * i) * 8 + g], B[(2 * t + 8 * i + 1) * 8 + g]);
    float c[4] = {C[g * 8 + 2 * t], C[g * 8 + 2 * t + 1], C[(g + 8) * 8 + 2 * t], C[(g + 8) * 8 + 2 * t + 1]};
    mma_m16n8k16_bf16(c, a, b, c);  // d aliases c, as kernels do
    D[g * 8 + 2 * t] = c[0];
    D[g * 8 + 2 * t + 1] = c[1];
    D[(g + 8) * 8 + 2 * t] = c[2];
    D[(g + 8) * 8 + 2 * t + 1] = c[3];
}

// M x N x K GEMM, D = A B^T with A M x K and W N x K row-major (a linear layer's weight), K = 64: 4 warps, each 16 rows
// x 64 columns; tiles loaded with cp.async (2 stages), fragments with ldmatrix (.x4 for A, .x4 for two n-tiles of W;
// TRANS_B instead reads B = W^T stored K x N with .x2.trans). WRONG_B plants a swapped B register.
template <bool TRANS_B, bool WRONG_B>
__global__ void gemm64(const bf16* A, const bf16* Bm, float* D) {
    constexpr int M = 64, N = 64, K = 64, KT = 16, LD = KT + 8;  // +8 bf16 of padding keeps rows 16-byte aligned
    __shared__ __align__(16) bf16 sA[2][M][LD];
    __shared__ __align__(16) bf16 sB[2][TRANS_B ? KT : N][TRANS_B ? N + 8 : LD];
    int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    auto load = [&](int stage, int k0) {
        for (int c = tid; c < M * KT / 8; c += blockDim.x) {  // 16-byte chunks
            int r = c / (KT / 8), k = (c % (KT / 8)) * 8;
            cp_async_16(&sA[stage][r][k], A + r * K + k0 + k);
        }
        if (!TRANS_B) {
            for (int c = tid; c < N * KT / 8; c += blockDim.x) {
                int r = c / (KT / 8), k = (c % (KT / 8)) * 8;
                cp_async_16(&sB[stage][r][k], Bm + r * K + k0 + k);
            }
        } else {
            for (int c = tid; c < KT * N / 8; c += blockDim.x) {
                int k = c / (N / 8), n = (c % (N / 8)) * 8;
                cp_async_16(&sB[stage][k][n], Bm + (k0 + k) * N + n);
            }
        }
        cp_async_commit();
    };
    float acc[8][4] = {};
    load(0, 0);
    for (int kt = 0; kt < K / KT; kt++) {
        int st = kt & 1;
        if (kt + 1 < K / KT) {
            load(st ^ 1, (kt + 1) * KT);
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        uint32_t a[4];
        ldmatrix_x4(a, &sA[st][warp * 16 + lane % 16][8 * (lane / 16)]);
        for (int nt = 0; nt < 8; nt += 2) {
            uint32_t b[4];
            if (!TRANS_B) {
                ldmatrix_x4(b, &sB[st][nt * 8 + (lane % 8) + 8 * (lane / 16)][8 * ((lane / 8) % 2)]);
            } else {
                ldmatrix_x2_trans(b, &sB[st][lane % 16][nt * 8]);
                ldmatrix_x2_trans(b + 2, &sB[st][lane % 16][nt * 8 + 8]);
            }
            uint32_t b0[2] = {b[WRONG_B ? 1 : 0], b[WRONG_B ? 0 : 1]}, b1[2] = {b[2], b[3]};
            mma_m16n8k16_bf16(acc[nt], a, b0, acc[nt]);
            mma_m16n8k16_bf16(acc[nt + 1], a, b1, acc[nt + 1]);
        }
        __syncthreads();
    }
    int g = lane >> 2, t = lane & 3;
    for (int nt = 0; nt < 8; nt++) {
        int r = warp * 16 + g, c = nt * 8 + 2 * t;
        D[r * N + c] = acc[nt][0];
        D[r * N + c + 1] = acc[nt][1];
        D[(r + 8) * N + c] = acc[nt][2];
        D[(r + 8) * N + c + 1] = acc[nt][3];
    }
}

// Each ldmatrix form against the PTX ISA's statement of it, element by element.
__global__ void ldmatrix_forms(uint32_t* out) {  // out: 32 lanes x (1 + 2 + 4) x 2 registers
    __shared__ __align__(16) uint16_t m[4][8][8];
    for (int i = threadIdx.x; i < 256; i += 32) (&m[0][0][0])[i] = (uint16_t)i;
    __syncwarp();
    int l = threadIdx.x;
    const void* row = &m[l / 8][l % 8][0];
    uint32_t r[7], rt[7];
    ldmatrix_x1(r, row);
    ldmatrix_x2(r + 1, row);
    ldmatrix_x4(r + 3, row);
    ldmatrix_x1_trans(rt, row);
    ldmatrix_x2_trans(rt + 1, row);
    ldmatrix_x4_trans(rt + 3, row);
    for (int i = 0; i < 7; i++) {
        out[l * 14 + i] = r[i];
        out[l * 14 + 7 + i] = rt[i];
    }
}

static float bf(float x) { return __bfloat162float(__float2bfloat16_rn(x)); }

int main() {
    // Small integers and halves: bf16-exact, and every sum exact in fp32, so the comparison is bitwise.
    std::vector<bf16> hA(16 * 16), hB(16 * 8);
    std::vector<float> hC(16 * 8), want(16 * 8);
    for (int i = 0; i < 256; i++) hA[i] = __float2bfloat16_rn((float)((i * 37) % 11) - 5.0f);
    for (int i = 0; i < 128; i++) hB[i] = __float2bfloat16_rn(0.5f * (float)((i * 53) % 9 - 4));
    for (int i = 0; i < 128; i++) hC[i] = (float)(i % 7);
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 8; j++) {
            float s = hC[i * 8 + j];
            for (int k = 0; k < 16; k++) s += __bfloat162float(hA[i * 16 + k]) * __bfloat162float(hB[k * 8 + j]);
            want[i * 8 + j] = s;
        }
    bf16 *dA, *dB;
    float *dC, *dD;
    CHECK_CUDA(cudaMalloc(&dA, 512));
    CHECK_CUDA(cudaMalloc(&dB, 256));
    CHECK_CUDA(cudaMalloc(&dC, 512));
    CHECK_CUDA(cudaMalloc(&dD, 512));
    CHECK_CUDA(cudaMemcpy(dA, hA.data(), 512, cudaMemcpyHostToDevice));
    CHECK_CUDA(cudaMemcpy(dB, hB.data(), 256, cudaMemcpyHostToDevice));
    CHECK_CUDA(cudaMemcpy(dC, hC.data(), 512, cudaMemcpyHostToDevice));
    std::vector<float> got(128);
    CHECK_CUDA(launch_kernel(mma_manual<false>, dim3(1), dim3(32), 0, 0, dA, dB, dC, dD));
    CHECK_CUDA(cudaMemcpy(got.data(), dD, 512, cudaMemcpyDeviceToHost));
    report(got == want, "mma.fragments_by_hand", "D = A B + C from the PTX ISA's fragment tables matches the plain product");
    CHECK_CUDA(launch_kernel(mma_manual<true>, dim3(1), dim3(32), 0, 0, dA, dB, dC, dD));
    CHECK_CUDA(cudaMemcpy(got.data(), dD, 512, cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int i = 0; i < 128; i++) bad += got[i] != want[i];
    report(bad > 0, "mma.planted_wrong_fragment_index", "caught: A registers 1 and 2 swapped -> %d of 128 outputs wrong", bad);

    // The 64x64x64 GEMM, both B layouts.
    const int M = 64, N = 64, K = 64;
    std::vector<bf16> gA(M * K), gW(N * K), gBt(K * N);
    for (int i = 0; i < M * K; i++) gA[i] = __float2bfloat16_rn((float)((i * 29) % 7) - 3.0f);
    for (int i = 0; i < N * K; i++) gW[i] = __float2bfloat16_rn(0.25f * (float)((i * 31) % 9 - 4));
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) gBt[k * N + n] = gW[n * K + k];
    std::vector<float> gwant(M * N), gD(M * N);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float s = 0;
            for (int k = 0; k < K; k++) s += __bfloat162float(gA[i * K + k]) * __bfloat162float(gW[j * K + k]);
            gwant[i * N + j] = s;
        }
    bf16 *eA, *eW, *eBt;
    float* eD;
    CHECK_CUDA(cudaMalloc(&eA, M * K * 2));
    CHECK_CUDA(cudaMalloc(&eW, N * K * 2));
    CHECK_CUDA(cudaMalloc(&eBt, N * K * 2));
    CHECK_CUDA(cudaMalloc(&eD, M * N * 4));
    CHECK_CUDA(cudaMemcpy(eA, gA.data(), M * K * 2, cudaMemcpyHostToDevice));
    CHECK_CUDA(cudaMemcpy(eW, gW.data(), N * K * 2, cudaMemcpyHostToDevice));
    CHECK_CUDA(cudaMemcpy(eBt, gBt.data(), N * K * 2, cudaMemcpyHostToDevice));
    auto gemm = [&](auto kernel, const bf16* b, int mode) {
        rlhf4j_emu_set_schedule(mode, 7);
        CHECK_CUDA(launch_kernel(kernel, dim3(1), dim3(128), 0, 0, eA, b, eD));
        CHECK_CUDA(cudaMemcpy(gD.data(), eD, M * N * 4, cudaMemcpyDeviceToHost));
        int wrong = 0;
        for (int i = 0; i < M * N; i++) wrong += gD[i] != gwant[i];
        return wrong;
    };
    int w0 = gemm(gemm64<false, false>, eW, 0), w1 = gemm(gemm64<false, false>, eW, 1), w2 = gemm(gemm64<false, false>, eW, 2);
    report(w0 + w1 + w2 == 0, "mma.gemm_ldmatrix_x4_cp_async",
           "64x64x64 A W^T via cp.async + ldmatrix.x4 + mma equals the reference under schedules 0/1/2 (%d/%d/%d wrong)",
           w0, w1, w2);
    int t0 = gemm(gemm64<true, false>, eBt, 0), t1 = gemm(gemm64<true, false>, eBt, 1);
    report(t0 + t1 == 0, "mma.gemm_ldmatrix_x2_trans", "64x64x64 A B with B k-major via ldmatrix.x2.trans (%d/%d wrong)", t0, t1);
    int p0 = gemm(gemm64<false, true>, eW, 0);
    report(p0 > 0, "mma.planted_wrong_b_register", "caught: B registers swapped -> %d of %d outputs wrong", p0, M * N);
    rlhf4j_emu_set_schedule(0, 0);

    // ldmatrix forms, element by element.
    uint32_t* dout;
    CHECK_CUDA(cudaMalloc(&dout, 32 * 14 * 4));
    CHECK_CUDA(launch_kernel(ldmatrix_forms, dim3(1), dim3(32), 0, 0, dout));
    std::vector<uint32_t> h(32 * 14);
    CHECK_CUDA(cudaMemcpy(h.data(), dout, h.size() * 4, cudaMemcpyDeviceToHost));
    int mism = 0;
    for (int l = 0; l < 32; l++) {
        int r = l / 4, c = 2 * (l % 4);
        const int base[7] = {0, 0, 1, 0, 1, 2, 3};  // matrix of each register: x1 {0}, x2 {0,1}, x4 {0,1,2,3}
        for (int i = 0; i < 7; i++) {
            uint32_t m = base[i] * 64;
            uint32_t plain = (m + r * 8 + c) | (m + r * 8 + c + 1) << 16;
            uint32_t trans = (m + c * 8 + r) | (m + (c + 1) * 8 + r) << 16;
            mism += h[l * 14 + i] != plain;
            mism += h[l * 14 + 7 + i] != trans;
        }
    }
    report(mism == 0, "mma.ldmatrix_forms", "x1/x2/x4 and .trans give each lane the PTX ISA's elements (%d mismatches)", mism);
    (void)bf;
    return g_failures != 0;
}
