/*
 * nccl_stub.c: a stand-in libnccl.so.2 for the tests of nccl.c on machines without GPUs (never shipped).
 *
 * It implements the dozen NCCL 2 functions nccl.c opens, with nccl.h's types and enum values, on HOST memory over
 * MPI_COMM_WORLD, so that MpiCommunicatorTest can drive rlhf4j_dist_nccl_* on two ranks and check their results: the
 * symbol lookup, the unique id travelling from rank 0 (ncclCommInitRank checks that every rank got the same one),
 * the readiness agreement, and the mapping of dtypes and ops (an unknown code is refused, and a wrong but valid code
 * computes a wrong value that the test sees). Reductions gather every rank's buffer and combine in rank order,
 * BF16/F16 through F32 with rounding at each step, as NCCL does. It proves the glue, not NCCL.
 */
#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rlhf4j_bits.h"

#define EXPORT __attribute__((visibility("default")))

typedef struct { char internal[128]; } ncclUniqueId;
typedef struct { int rank, nranks; } stub_comm;
typedef stub_comm *ncclComm_t;
enum { ok = 0, invalid_argument = 4, invalid_usage = 5 };

static int elem_size(int t) {
    switch (t) {
    case 2: return 4;            /* ncclInt32 */
    case 4: return 8;            /* ncclInt64 */
    case 6: case 9: return 2;    /* ncclFloat16, ncclBfloat16 */
    case 7: return 4;            /* ncclFloat32 */
    case 8: return 8;            /* ncclFloat64 */
    default: return 0;
    }
}

static double get(const void *p, int t, size_t i) {
    switch (t) {
    case 2: return ((const int32_t *)p)[i];
    case 4: return (double)((const int64_t *)p)[i];
    case 6: return rl_f16_to_f32(((const uint16_t *)p)[i]);
    case 9: return rl_bf16_to_f32(((const uint16_t *)p)[i]);
    case 7: return ((const float *)p)[i];
    default: return ((const double *)p)[i];
    }
}

static void put(void *p, int t, size_t i, double v) {
    switch (t) {
    case 2: ((int32_t *)p)[i] = (int32_t)v; break;
    case 4: ((int64_t *)p)[i] = (int64_t)v; break;
    case 6: ((uint16_t *)p)[i] = rl_f32_to_f16((float)v); break;
    case 9: ((uint16_t *)p)[i] = rl_f32_to_bf16((float)v); break;
    case 7: ((float *)p)[i] = (float)v; break;
    default: ((double *)p)[i] = v; break;
    }
}

/* One step of op on a and b, rounded to the element type as NCCL rounds every step. */
static double combine(int op, int t, double a, double b) {
    double r = op == 0 ? a + b : op == 2 ? (a > b ? a : b) : (a < b ? a : b);
    if (t == 7 || t == 9 || t == 6) r = (float)r;
    if (t == 9) r = rl_bf16_to_f32(rl_f32_to_bf16((float)r));
    if (t == 6) r = rl_f16_to_f32(rl_f32_to_f16((float)r));
    return r;
}

EXPORT int ncclGetVersion(int *v) {
    *v = 29999; /* 2.99.99: the stub */
    return ok;
}

EXPORT const char *ncclGetErrorString(int r) { return r == ok ? "no error" : "stub NCCL error"; }
EXPORT const char *ncclGetLastError(ncclComm_t c) { return ""; }

EXPORT int ncclGetUniqueId(ncclUniqueId *id) {
    memset(id, 0, sizeof *id);
    long pid = (long)getpid();
    memcpy(id->internal, "rlhf4j-stub", 11);
    memcpy(id->internal + 16, &pid, sizeof pid);
    id->internal[127] = 42;
    return ok;
}

EXPORT int ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId id, int rank) {
    int size, me;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm_rank(MPI_COMM_WORLD, &me);
    if (nranks != size || rank != me || memcmp(id.internal, "rlhf4j-stub", 11) != 0 || id.internal[127] != 42)
        return invalid_argument;
    ncclUniqueId *all = malloc(sizeof(ncclUniqueId) * (size_t)size);
    MPI_Allgather(&id, (int)sizeof id, MPI_BYTE, all, (int)sizeof id, MPI_BYTE, MPI_COMM_WORLD);
    int same = 1;
    for (int r = 0; r < size; r++) same &= memcmp(&all[r], &id, sizeof id) == 0;
    free(all);
    if (!same) return invalid_usage;
    *comm = malloc(sizeof(stub_comm));
    (*comm)->rank = rank;
    (*comm)->nranks = nranks;
    return ok;
}

EXPORT int ncclCommDestroy(ncclComm_t c) {
    free(c);
    return ok;
}

EXPORT int ncclCommAbort(ncclComm_t c) { return ncclCommDestroy(c); }

EXPORT int ncclCommGetAsyncError(ncclComm_t c, int *e) {
    *e = ok;
    return ok;
}

/* Every rank's `bytes` from `send`, in rank order. */
static char *gather_all(const ncclComm_t c, const void *send, size_t bytes) {
    char *all = malloc(bytes * (size_t)c->nranks + 1);
    MPI_Allgather(send, (int)bytes, MPI_BYTE, all, (int)bytes, MPI_BYTE, MPI_COMM_WORLD);
    return all;
}

static int reduce_blocks(ncclComm_t c, const char *all, size_t stride, size_t offset, size_t count, int t, int op,
                         void *recv) {
    for (size_t i = 0; i < count; i++) {
        double v = get(all + offset, t, i);
        for (int r = 1; r < c->nranks; r++) v = combine(op, t, v, get(all + (size_t)r * stride + offset, t, i));
        put(recv, t, i, v);
    }
    return ok;
}

static int bad(int t, int op) { return elem_size(t) == 0 || !(op == 0 || op == 2 || op == 3); }

EXPORT int ncclAllReduce(const void *send, void *recv, size_t count, int t, int op, ncclComm_t c, void *stream) {
    if (bad(t, op)) return invalid_argument;
    size_t bytes = count * (size_t)elem_size(t);
    char *all = gather_all(c, send, bytes);
    int r = reduce_blocks(c, all, bytes, 0, count, t, op, recv);
    free(all);
    return r;
}

EXPORT int ncclReduceScatter(const void *send, void *recv, size_t count, int t, int op, ncclComm_t c, void *stream) {
    if (bad(t, op)) return invalid_argument;
    size_t block = count * (size_t)elem_size(t), bytes = block * (size_t)c->nranks;
    char *all = gather_all(c, send, bytes);
    int r = reduce_blocks(c, all, bytes, block * (size_t)c->rank, count, t, op, recv);
    free(all);
    return r;
}

EXPORT int ncclAllGather(const void *send, void *recv, size_t count, int t, ncclComm_t c, void *stream) {
    if (elem_size(t) == 0) return invalid_argument;
    size_t bytes = count * (size_t)elem_size(t);
    char *all = gather_all(c, send, bytes);
    memcpy(recv, all, bytes * (size_t)c->nranks);
    free(all);
    return ok;
}

EXPORT int ncclBroadcast(const void *send, void *recv, size_t count, int t, int root, ncclComm_t c, void *stream) {
    if (elem_size(t) == 0 || root < 0 || root >= c->nranks) return invalid_argument;
    size_t bytes = count * (size_t)elem_size(t);
    if (c->rank == root && send != recv) memmove(recv, send, bytes);
    MPI_Bcast(recv, (int)bytes, MPI_BYTE, root, MPI_COMM_WORLD);
    return ok;
}
