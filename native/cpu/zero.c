/*
 * zero.c: ZeRO's partitioner (rlhf4j_zero.h). Integer arithmetic on the flat layout, no data touched: the plan is
 * computed once per model and world size, and the communicator runs it every step.
 */
#include "rlhf4j_zero.h"

#include "internal.h"

static int32_t check_groups(const char *fn, const int64_t *boundaries, int32_t groups, int32_t elem_bytes,
                            int32_t world) {
    CHECK_PTR(fn, boundaries);
    CHECK_POS(fn, groups);
    CHECK_POS(fn, world);
    CHECK_ARG(elem_bytes == 2 || elem_bytes == 4 || elem_bytes == 8, "%s: elem_bytes = %d must be 2, 4 or 8", fn,
              elem_bytes);
    CHECK_ARG(boundaries[0] == 0, "%s: boundaries[0] = %lld must be 0", fn, (long long)boundaries[0]);
    for (int32_t g = 0; g < groups; g++)
        CHECK_ARG(boundaries[g + 1] > boundaries[g], "%s: boundaries[%d] = %lld must be > boundaries[%d] = %lld", fn,
                  g + 1, (long long)boundaries[g + 1], g, (long long)boundaries[g]);
    return RLHF4J_OK;
}

/* The padded size of a group of n elements: a multiple of world slices of a 128-byte multiple each. */
static int64_t padded(int64_t n, int32_t elem_bytes, int32_t world) {
    int64_t unit = (int64_t)world * (RLHF4J_ZERO_ALIGN_BYTES / elem_bytes);
    return (n + unit - 1) / unit * unit;
}

RLHF4J_API int32_t rlhf4j_zero_partition_groups(const int64_t *boundaries, int32_t groups, int32_t elem_bytes,
                                                int32_t world, int32_t rank, rlhf4j_zero_partition *out) {
    static const char *fn = "rlhf4j_zero_partition_groups";
    int32_t st = check_groups(fn, boundaries, groups, elem_bytes, world);
    if (st != RLHF4J_OK) return st;
    CHECK_ARG(rank >= 0 && rank < world, "%s: rank = %d is not in [0, world = %d)", fn, rank, world);
    CHECK_PTR(fn, out);
    int64_t offset = 0;
    for (int32_t g = 0; g < groups; g++) {
        rlhf4j_zero_partition *p = &out[g];
        p->numel = boundaries[g + 1] - boundaries[g];
        p->padded_numel = padded(p->numel, elem_bytes, world);
        p->partition_numel = p->padded_numel / world;
        p->padded_offset = offset;
        p->start = (int64_t)rank * p->partition_numel;
        int64_t end = p->start + p->partition_numel;
        p->owned = end <= p->numel ? p->partition_numel : (p->start < p->numel ? p->numel - p->start : 0);
        offset += p->padded_numel;
    }
    return RLHF4J_OK;
}

/* Appends an op if there is room; counts it either way. */
static void emit(rlhf4j_zero_op *ops, int32_t capacity, int32_t *n, int32_t collective, int32_t buffer,
                 int32_t phase, int32_t group, int64_t offset, int64_t count) {
    if (*n < capacity) {
        rlhf4j_zero_op *op = &ops[*n];
        op->collective = collective;
        op->buffer = buffer;
        op->phase = phase;
        op->group = group;
        op->offset = offset;
        op->count = count;
    }
    (*n)++;
}

RLHF4J_API int32_t rlhf4j_zero_plan_step(int32_t stage, const int64_t *boundaries, int32_t groups, int32_t elem_bytes,
                                         int32_t world, rlhf4j_zero_op *ops, int32_t capacity, int32_t *count,
                                         int64_t *bytes_per_rank) {
    static const char *fn = "rlhf4j_zero_plan_step";
    int32_t st = check_groups(fn, boundaries, groups, elem_bytes, world);
    if (st != RLHF4J_OK) return st;
    CHECK_ARG(stage >= 0 && stage <= 3, "%s: stage = %d must be 0, 1, 2 or 3", fn, stage);
    CHECK_NONNEG(fn, capacity);
    CHECK_ARG(capacity == 0 || ops != NULL, "%s: ops is NULL with capacity %d", fn, capacity);
    CHECK_PTR(fn, count);
    CHECK_PTR(fn, bytes_per_rank);

    int64_t total = 0;
    for (int32_t g = 0; g < groups; g++) total += padded(boundaries[g + 1] - boundaries[g], elem_bytes, world);
    int32_t n = 0;
    int64_t moved = 0; /* elements, the paper's count */
    switch (stage) {
    case 0: /* plain data parallel: every rank needs the whole averaged gradient */
        emit(ops, capacity, &n, RLHF4J_ZERO_ALL_REDUCE, RLHF4J_ZERO_GRADIENTS, RLHF4J_ZERO_BACKWARD, -1, 0, total);
        moved += 2 * total;
        break;
    case 1:
        /* The full gradient exists (stage 1 keeps it), but a rank updates only its slice, so it needs only its
           slice reduced: the reduce-scatter half of an all-reduce. The all-gather half moves the updated
           parameters instead. Same 2 Psi as data parallel, as the paper says. */
        emit(ops, capacity, &n, RLHF4J_ZERO_REDUCE_SCATTER, RLHF4J_ZERO_GRADIENTS, RLHF4J_ZERO_BACKWARD, -1, 0,
             total);
        emit(ops, capacity, &n, RLHF4J_ZERO_ALL_GATHER, RLHF4J_ZERO_PARAMETERS, RLHF4J_ZERO_AFTER_STEP, -1, 0, total);
        moved += 2 * total;
        break;
    case 2: {
        int64_t off = total;
        for (int32_t g = groups - 1; g >= 0; g--) { /* the backward finishes the last layer first */
            int64_t len = padded(boundaries[g + 1] - boundaries[g], elem_bytes, world);
            off -= len;
            emit(ops, capacity, &n, RLHF4J_ZERO_REDUCE_SCATTER, RLHF4J_ZERO_GRADIENTS, RLHF4J_ZERO_BACKWARD, g, off,
                 len);
            moved += len;
        }
        emit(ops, capacity, &n, RLHF4J_ZERO_ALL_GATHER, RLHF4J_ZERO_PARAMETERS, RLHF4J_ZERO_AFTER_STEP, -1, 0, total);
        moved += total;
        break;
    }
    case 3: {
        int64_t off = 0;
        for (int32_t g = 0; g < groups; g++) {
            int64_t len = padded(boundaries[g + 1] - boundaries[g], elem_bytes, world);
            emit(ops, capacity, &n, RLHF4J_ZERO_ALL_GATHER, RLHF4J_ZERO_PARAMETERS, RLHF4J_ZERO_FORWARD, g, off, len);
            off += len;
        }
        for (int32_t g = groups - 1; g >= 0; g--) {
            int64_t len = padded(boundaries[g + 1] - boundaries[g], elem_bytes, world);
            off -= len;
            emit(ops, capacity, &n, RLHF4J_ZERO_ALL_GATHER, RLHF4J_ZERO_PARAMETERS, RLHF4J_ZERO_BACKWARD, g, off, len);
            emit(ops, capacity, &n, RLHF4J_ZERO_REDUCE_SCATTER, RLHF4J_ZERO_GRADIENTS, RLHF4J_ZERO_BACKWARD, g, off,
                 len);
        }
        moved += 3 * total;
        break;
    }
    }
    *count = n;
    *bytes_per_rank = world == 1 ? 0 : moved * elem_bytes;
    return RLHF4J_OK;
}

RLHF4J_API int32_t rlhf4j_zero_memory_per_rank(int32_t stage, const int64_t *boundaries, int32_t groups,
                                               int32_t parameter_elem_bytes, int32_t gradient_elem_bytes,
                                               int32_t optimizer_bytes_per_parameter, int32_t world,
                                               rlhf4j_zero_memory *out) {
    static const char *fn = "rlhf4j_zero_memory_per_rank";
    /* the partition is laid out in the smallest element size, so every buffer's slices stay aligned */
    int32_t elem = parameter_elem_bytes < gradient_elem_bytes ? parameter_elem_bytes : gradient_elem_bytes;
    int32_t st = check_groups(fn, boundaries, groups, elem, world);
    if (st != RLHF4J_OK) return st;
    CHECK_ARG(stage >= 0 && stage <= 3, "%s: stage = %d must be 0, 1, 2 or 3", fn, stage);
    CHECK_ARG(parameter_elem_bytes == 2 || parameter_elem_bytes == 4 || parameter_elem_bytes == 8,
              "%s: parameter_elem_bytes = %d must be 2, 4 or 8", fn, parameter_elem_bytes);
    CHECK_ARG(gradient_elem_bytes == 2 || gradient_elem_bytes == 4 || gradient_elem_bytes == 8,
              "%s: gradient_elem_bytes = %d must be 2, 4 or 8", fn, gradient_elem_bytes);
    CHECK_POS(fn, optimizer_bytes_per_parameter);
    CHECK_PTR(fn, out);
    int64_t full = 0, slice = 0;
    for (int32_t g = 0; g < groups; g++) {
        int64_t p = padded(boundaries[g + 1] - boundaries[g], elem, world);
        full += p;
        slice += p / world;
    }
    out->parameter_bytes = (stage >= 3 ? slice : full) * parameter_elem_bytes;
    out->gradient_bytes = (stage >= 2 ? slice : full) * gradient_elem_bytes;
    out->optimizer_bytes = (stage >= 1 ? slice : full) * optimizer_bytes_per_parameter;
    return RLHF4J_OK;
}
