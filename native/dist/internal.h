/*
 * internal.h: what dist.c (MPI, watchdog) and nccl.c share. Not part of the ABI.
 */
#ifndef RLHF4J_DIST_INTERNAL_H
#define RLHF4J_DIST_INTERNAL_H

#include <mpi.h>
#include <stdint.h>

#include "rlhf4j_dist.h"

/* The calls the watchdog times, by the names its report uses (dist.c: op_names). */
typedef enum {
    DIST_OP_NONE = 0,
    DIST_OP_ALL_REDUCE,
    DIST_OP_REDUCE_SCATTER,
    DIST_OP_ALL_GATHER,
    DIST_OP_BROADCAST,
    DIST_OP_BARRIER,
    DIST_OP_FINALIZE,
    DIST_OP_NCCL_INIT,
    DIST_OP_NCCL_ALL_REDUCE,
    DIST_OP_NCCL_REDUCE_SCATTER,
    DIST_OP_NCCL_ALL_GATHER,
    DIST_OP_NCCL_BROADCAST,
    DIST_OP_NCCL_SYNCHRONIZE,
    DIST_OP_ALL_GATHER_START,
    DIST_OP_WAIT,
    DIST_OP_COUNT
} dist_op_id;

/* Process-wide state, written by rlhf4j_dist_init and read by every call. */
typedef struct {
    int initialized;  /* rlhf4j_dist_init succeeded and finalize has not run */
    int finalized;
    int rank, size, local_rank, local_size;
    int thread_level; /* MPI_THREAD_* granted */
    MPI_Comm comm;    /* MPI_COMM_WORLD duplicate, MPI_ERRORS_RETURN: the collectives */
} dist_state;

extern dist_state g_dist;

/* Sets this thread's last error (printf-style) and returns code. */
int32_t dist_fail(int32_t code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Fails with RLHF4J_ERR_INTERNAL unless init succeeded and finalize has not run. */
int32_t dist_check_ready(const char *fn);
/* Element size of a dist dtype, or 0 when the code is unknown. */
int dist_dtype_size(int32_t dtype);
const char *dist_dtype_name(int32_t dtype);
const char *dist_op_name(int32_t op);

/* Watchdog bookkeeping around one timed call: begin records it (and its sequence number), end clears it. */
void dist_track_begin(dist_op_id op, int64_t bytes, int32_t dtype);
void dist_track_end(void);

/* Refuses overlap of [a, a + an) and [b, b + bn) unless a == b + allowed_offset (allowed_offset < 0: never). Returns
 * 1 when a == b + allowed_offset (the in-place case), 0 when disjoint, -1 when they overlap otherwise. */
int dist_overlap(const void *a, int64_t an, const void *b, int64_t bn, int64_t allowed_offset);

/* nccl.c: destroys the NCCL communicator if there is one (finalize calls it first). */
int32_t dist_nccl_finalize(void);

#endif
