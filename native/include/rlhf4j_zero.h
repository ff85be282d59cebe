/*
 * rlhf4j_zero.h: ZeRO's partitioner (Rajbhandari et al., "ZeRO: Memory Optimizations Toward Training Trillion
 * Parameter Models", 2020), in librlhf4j_cpu.so beside the backend ABI. Host-only arithmetic: which part of each flat
 * buffer a rank owns, which collectives a training step runs at each stage, and the bytes each rank keeps. Java binds
 * it one to one (io.github.rlhf4j.dist.ZeroPlan); the collectives themselves go through the communicator
 * (rlhf4j_dist.h: MPI for CPU buffers, NCCL for GPU buffers).
 *
 * The flat buffers. A model's parameters, gradients and AdamW moments share one flat layout (ParameterStore). The
 * caller cuts it into groups at layer boundaries: [boundaries[g], boundaries[g + 1]) for g < groups (the embeddings,
 * each transformer layer, the final norm and head). Every group is padded on its own to a multiple of
 * world x (128 bytes in elements), and each rank owns one equal, 128-byte aligned slice of every group: so a layer
 * is gathered by one all-gather of its own (stage 3 gathers layer by layer) and every rank's slice starts aligned for
 * vector loads and NCCL. Offsets below are in elements of the padded layout, where group g starts at the sum of the
 * padded sizes before it.
 *
 * What each stage keeps per rank (Psi parameters; K optimizer bytes per parameter: 12 for fp32 master weights + two
 * fp32 moments with bf16 weights, 8 for two fp32 moments with fp32 weights):
 *   stage 0 (data parallel)  parameters Psi, gradients Psi, optimizer state K Psi
 *   stage 1                  parameters Psi, gradients Psi, optimizer state K Psi / N
 *   stage 2                  parameters Psi, gradients Psi / N, optimizer state K Psi / N
 *   stage 3                  parameters Psi / N, gradients Psi / N, optimizer state K Psi / N
 * And what a step moves per rank, counting a ring collective over S elements as ZeRO's paper does (all-reduce 2S,
 * reduce-scatter S, all-gather S; exactly (N - 1) / N of that leaves each rank): stages 0, 1, 2: 2 Psi; stage 3:
 * 3 Psi (the parameters gathered twice, forward and backward, and the gradients reduce-scattered once).
 */
#ifndef RLHF4J_ZERO_H
#define RLHF4J_ZERO_H

#include "rlhf4j.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Partitions are aligned to this many bytes (NCCL's and AVX-512's preferred alignment). */
#define RLHF4J_ZERO_ALIGN_BYTES 128

/* One group of a flat buffer as one rank sees it. */
typedef struct {
    int64_t numel;           /* elements of the group in the unpadded buffer */
    int64_t padded_numel;    /* numel rounded up to a multiple of world x align */
    int64_t partition_numel; /* padded_numel / world: every rank's slice */
    int64_t padded_offset;   /* where the group starts in the padded layout */
    int64_t start;           /* this rank's slice [start, start + partition_numel), relative to the group */
    int64_t owned;           /* elements of that slice below numel (the rest is padding) */
} rlhf4j_zero_partition;

/*
 * The partition of every group for `rank` of `world`: out[g] for g < groups. boundaries has groups + 1 increasing
 * entries starting at 0; elem_bytes is the element size (2, 4 or 8) and must divide RLHF4J_ZERO_ALIGN_BYTES.
 */
RLHF4J_API int32_t rlhf4j_zero_partition_groups(const int64_t *boundaries, int32_t groups, int32_t elem_bytes,
                                                int32_t world, int32_t rank, rlhf4j_zero_partition *out);

typedef enum {
    RLHF4J_ZERO_ALL_REDUCE = 0,     /* sum over ranks, everyone gets the whole buffer */
    RLHF4J_ZERO_REDUCE_SCATTER = 1, /* sum over ranks, each rank gets its slice */
    RLHF4J_ZERO_ALL_GATHER = 2      /* each rank's slice, everyone gets the whole buffer */
} rlhf4j_zero_collective;

typedef enum { RLHF4J_ZERO_PARAMETERS = 0, RLHF4J_ZERO_GRADIENTS = 1 } rlhf4j_zero_buffer;

typedef enum {
    RLHF4J_ZERO_FORWARD = 0,  /* before the group's forward */
    RLHF4J_ZERO_BACKWARD = 1, /* after the group's backward (gradients) or before it (stage 3 parameters) */
    RLHF4J_ZERO_AFTER_STEP = 2
} rlhf4j_zero_phase;

/* One collective of a step: on `buffer`, over padded elements [offset, offset + count), group -1 for the whole. */
typedef struct {
    int32_t collective, buffer, phase, group;
    int64_t offset, count;
} rlhf4j_zero_op;

/*
 * The collectives of one training step at `stage` (0 to 3), in the order they run: stage 0 all-reduces the
 * gradients after the backward; stage 1 reduce-scatters them (each rank updates only its slice, so it needs only
 * that slice summed: the reduce-scatter half of an all-reduce); stage 2 reduce-scatters each group's gradients as soon as its backward is done (last
 * group first); stages 1 and 2 all-gather the updated parameters after the optimizer step; stage 3 all-gathers each
 * group's parameters before its forward and again before its backward, and reduce-scatters its gradients after it.
 * Writes at most `capacity` ops and sets *count to the number the step has (call with capacity 0 to size the array).
 * *bytes_per_rank gets the volume each rank moves in a step by the paper's count (see above), elem_bytes each.
 */
RLHF4J_API int32_t rlhf4j_zero_plan_step(int32_t stage, const int64_t *boundaries, int32_t groups, int32_t elem_bytes,
                                         int32_t world, rlhf4j_zero_op *ops, int32_t capacity, int32_t *count,
                                         int64_t *bytes_per_rank);

/* Model-state bytes one rank keeps at `stage` (padding included), for parameters, gradients and optimizer state. */
typedef struct {
    int64_t parameter_bytes, gradient_bytes, optimizer_bytes;
} rlhf4j_zero_memory;

RLHF4J_API int32_t rlhf4j_zero_memory_per_rank(int32_t stage, const int64_t *boundaries, int32_t groups,
                                               int32_t parameter_elem_bytes, int32_t gradient_elem_bytes,
                                               int32_t optimizer_bytes_per_parameter, int32_t world,
                                               rlhf4j_zero_memory *out);

#ifdef __cplusplus
}
#endif

#endif
