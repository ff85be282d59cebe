// Tensor-core and async-copy wrappers: inline PTX on the GPU; on the CPU, warp collectives that move exactly the
// elements the PTX ISA says each lane holds, so a kernel that indexes a fragment wrongly gets a wrong answer in the
// emulated tests, as it would on the GPU.
//
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point type"; lane = %laneid,
// g = lane >> 2, t = lane & 3; a 32-bit register holds two bf16, the lower-indexed element in the low half):
//   A (16x16, row-major), a[4]:  a[0] = A[g][2t, 2t+1]      a[1] = A[g+8][2t, 2t+1]
//                                a[2] = A[g][2t+8, 2t+9]    a[3] = A[g+8][2t+8, 2t+9]
//   B (16x8, k x n, "col"), b[2]: b[0] = B[2t, 2t+1][g]      b[1] = B[2t+8, 2t+9][g]
//   C, D (16x8 fp32), c[4]:      c[0], c[1] = C[g][2t, 2t+1]   c[2], c[3] = C[g+8][2t, 2t+1]
// ldmatrix.m8n8.b16 (PTX ISA, "ldmatrix"): lane 8*m + r passes the address of row r of matrix m (16 bytes, 16-byte
// aligned; .x1 uses lanes 0-7, .x2 lanes 0-15, .x4 all); lane l receives in register m the elements (l>>2, 2(l&3))
// and (l>>2, 2(l&3)+1) of matrix m, or with .trans the elements (2(l&3), l>>2) and (2(l&3)+1, l>>2).
// So ldmatrix_x4 of a 16x16 row-major bf16 tile (lane l -> row l%16, column 8*(l/16)) gives exactly the A fragment,
// and ldmatrix_x2_trans of a 16x8 k-major tile (lane l -> row l%16) gives the B fragment.
#pragma once
#include "common.cuh"

#ifndef RLHF4J_EMU

__device__ __forceinline__ uint32_t rlhf4j_smem_u32(const void* p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// D = A B + C for one m16n8k16 tile: A, B bf16, C, D fp32. d may be c.
__device__ __forceinline__ void mma_m16n8k16_bf16(float d[4], const uint32_t a[4], const uint32_t b[2],
                                                  const float c[4]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%10, %11, %12, %13};\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
          "f"(c[3]));
}

__device__ __forceinline__ void ldmatrix_x1(uint32_t r[1], const void* smem_row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(rlhf4j_smem_u32(smem_row)));
}
__device__ __forceinline__ void ldmatrix_x2(uint32_t r[2], const void* smem_row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(rlhf4j_smem_u32(smem_row)));
}
__device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], const void* smem_row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(rlhf4j_smem_u32(smem_row)));
}
__device__ __forceinline__ void ldmatrix_x1_trans(uint32_t r[1], const void* smem_row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n"
                 : "=r"(r[0])
                 : "r"(rlhf4j_smem_u32(smem_row)));
}
__device__ __forceinline__ void ldmatrix_x2_trans(uint32_t r[2], const void* smem_row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(rlhf4j_smem_u32(smem_row)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t r[4], const void* smem_row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(rlhf4j_smem_u32(smem_row)));
}

// cp.async.cg (L2 only) of 16 bytes, both addresses 16-byte aligned. The zfill form copies 0 source bytes and writes
// 16 zeros when !valid (gmem is not read then, so it may point anywhere).
__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(rlhf4j_smem_u32(smem)), "l"(gmem));
}
__device__ __forceinline__ void cp_async_16_zfill(void* smem, const void* gmem, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(rlhf4j_smem_u32(smem)), "l"(gmem),
                 "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// Waits until at most N of this thread's committed groups are pending. Other threads see the data only after a
// barrier (__syncthreads) that follows their own waits.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

#else  // RLHF4J_EMU

namespace rlhf4j_emu {

struct MmaData {
    const uint32_t* a;
    const uint32_t* b;
    const float* c;
    float* d;
};

static inline float bf16_lo(uint32_t r) { return bf2f((unsigned short)(r & 0xffffu)); }
static inline float bf16_hi(uint32_t r) { return bf2f((unsigned short)(r >> 16)); }

static void mma_complete(void* const* data, uint32_t mask) {
    if (mask != 0xffffffffu) fault("mma_m16n8k16_bf16 needs all 32 lanes of the warp (lanes here: 0x%08x)", mask);
    float A[16][16], B[16][8], C[16][8];
    for (int l = 0; l < 32; l++) {  // gather every lane's fragments into the matrices (all read before any write)
        const MmaData* m = static_cast<const MmaData*>(data[l]);
        int g = l >> 2, t = l & 3;
        for (int i = 0; i < 4; i++) {
            int row = g + ((i & 1) ? 8 : 0), col = 2 * t + ((i & 2) ? 8 : 0);
            A[row][col] = bf16_lo(m->a[i]);
            A[row][col + 1] = bf16_hi(m->a[i]);
        }
        for (int i = 0; i < 2; i++) {
            int k = 2 * t + 8 * i;
            B[k][g] = bf16_lo(m->b[i]);
            B[k + 1][g] = bf16_hi(m->b[i]);
        }
        C[g][2 * t] = m->c[0];
        C[g][2 * t + 1] = m->c[1];
        C[g + 8][2 * t] = m->c[2];
        C[g + 8][2 * t + 1] = m->c[3];
    }
    float D[16][8];
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 8; j++) {
            float acc = C[i][j];
            for (int k = 0; k < 16; k++) acc += A[i][k] * B[k][j];  // bf16 x bf16 is exact in fp32
            D[i][j] = acc;
        }
    for (int l = 0; l < 32; l++) {
        float* d = static_cast<MmaData*>(data[l])->d;
        int g = l >> 2, t = l & 3;
        d[0] = D[g][2 * t];
        d[1] = D[g][2 * t + 1];
        d[2] = D[g + 8][2 * t];
        d[3] = D[g + 8][2 * t + 1];
    }
}

struct LdmatrixData {
    const void* row;
    uint32_t* r;
};

template <int N, bool TRANS>
static void ldmatrix_complete(void* const* data, uint32_t mask) {
    if (mask != 0xffffffffu) fault("ldmatrix needs all 32 lanes of the warp (lanes here: 0x%08x)", mask);
    uint16_t M[N][8][8];
    for (int m = 0; m < N; m++)
        for (int r = 0; r < 8; r++) {
            const void* p = static_cast<LdmatrixData*>(data[8 * m + r])->row;
            if ((uintptr_t)p % 16) fault("ldmatrix: lane %d passed %p, not a 16-byte aligned row", 8 * m + r, p);
            memcpy(M[m][r], p, 16);
        }
    for (int l = 0; l < 32; l++) {
        uint32_t* out = static_cast<LdmatrixData*>(data[l])->r;
        int r = l >> 2, c = 2 * (l & 3);
        for (int m = 0; m < N; m++) {
            uint32_t lo = TRANS ? M[m][c][r] : M[m][r][c], hi = TRANS ? M[m][c + 1][r] : M[m][r][c + 1];
            out[m] = lo | hi << 16;
        }
    }
}

template <int N, bool TRANS>
static inline void ldmatrix(uint32_t* r, const void* row) {
    LdmatrixData d{row, r};
    warp_collective(0xffffffffu, COLL_LDMATRIX + 2 * N + (TRANS ? 1 : 0), &d, &ldmatrix_complete<N, TRANS>);
}

}  // namespace rlhf4j_emu

static inline void mma_m16n8k16_bf16(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4]) {
    rlhf4j_emu::MmaData m{a, b, c, d};
    rlhf4j_emu::warp_collective(0xffffffffu, rlhf4j_emu::COLL_MMA, &m, &rlhf4j_emu::mma_complete);
}
static inline void ldmatrix_x1(uint32_t r[1], const void* smem_row) { rlhf4j_emu::ldmatrix<1, false>(r, smem_row); }
static inline void ldmatrix_x2(uint32_t r[2], const void* smem_row) { rlhf4j_emu::ldmatrix<2, false>(r, smem_row); }
static inline void ldmatrix_x4(uint32_t r[4], const void* smem_row) { rlhf4j_emu::ldmatrix<4, false>(r, smem_row); }
static inline void ldmatrix_x1_trans(uint32_t r[1], const void* smem_row) { rlhf4j_emu::ldmatrix<1, true>(r, smem_row); }
static inline void ldmatrix_x2_trans(uint32_t r[2], const void* smem_row) { rlhf4j_emu::ldmatrix<2, true>(r, smem_row); }
static inline void ldmatrix_x4_trans(uint32_t r[4], const void* smem_row) { rlhf4j_emu::ldmatrix<4, true>(r, smem_row); }

// Deferred: the copy happens at the cp_async_wait that covers its group, not before (a missing wait reads stale data).
static inline void cp_async_16(void* smem, const void* gmem) { rlhf4j_emu::cp_async(smem, gmem, 16, false); }
static inline void cp_async_16_zfill(void* smem, const void* gmem, bool valid) {
    rlhf4j_emu::cp_async(smem, gmem, 16, !valid);
}
static inline void cp_async_commit() { rlhf4j_emu::cp_async_commit(); }
template <int N>
static inline void cp_async_wait() {
    rlhf4j_emu::cp_async_wait(N);
}

#endif
