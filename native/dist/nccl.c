/*
 * nccl.c: the NCCL half of librlhf4j_dist.so (rlhf4j_dist.h): collectives on device buffers.
 *
 * Nothing of CUDA or NCCL is linked or included: no NCCL headers are installed where this builds, and the library
 * must load on machines without a GPU. libnccl.so.2 and the CUDA driver's libcuda.so.1 are opened with dlopen at
 * rlhf4j_dist_nccl_init, and the dozen functions used are declared below with the types and enum values of nccl.h
 * (NCCL 2.x: ncclDataType_t, ncclRedOp_t, ncclResult_t, and ncclUniqueId, a 128-byte struct passed by value) and
 * cuda.h (the stable unversioned driver entry points: cuInit, cuDeviceGet, cuDevicePrimaryCtxRetain...).
 *
 * The driver API, not cudart: libcuda.so.1 comes with the driver, so it is on the loader path wherever there is a
 * GPU, while a cudart of the right major version may live only in a Python wheel. Making the device's primary
 * context current is what cudaSetDevice does; the runtime inside NCCL and the one inside librlhf4j_cuda.so both use
 * that context, so device pointers and streams pass between them.
 *
 * A dead peer makes NCCL kernels wait forever on the GPU. rlhf4j_dist_nccl_synchronize therefore polls the stream
 * and ncclCommGetAsyncError instead of blocking, returns NCCL's error when there is one (after ncclCommAbort), and
 * is timed by the watchdog like every MPI call.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "internal.h"

/* ---- nccl.h and cuda.h, the parts used ----------------------------------------------------------------------------- */

typedef struct { char internal[128]; } nccl_unique_id; /* NCCL_UNIQUE_ID_BYTES */
typedef struct nccl_comm_s *nccl_comm;
typedef int nccl_result;                               /* ncclResult_t */
enum { NCCL_SUCCESS = 0, NCCL_IN_PROGRESS = 7 };
enum { NCCL_INT32 = 2, NCCL_INT64 = 4, NCCL_FLOAT16 = 6, NCCL_FLOAT32 = 7, NCCL_FLOAT64 = 8, NCCL_BFLOAT16 = 9 };
enum { NCCL_SUM = 0, NCCL_MAX = 2, NCCL_MIN = 3 };

typedef int cu_result; /* CUresult */
typedef int cu_device;
typedef struct cu_ctx_s *cu_context;
typedef void *cu_stream;
enum { CU_SUCCESS = 0, CU_ERROR_NOT_READY = 600, CU_STREAM_NON_BLOCKING = 1 };

static struct {
    void *lib, *cuda;
    char path[640];
    char why[1024];  /* why NCCL is not initialised, when it is not */
    int version;
    int device;
    nccl_comm comm;
    cu_context ctx;
    cu_stream stream;

    nccl_result (*get_unique_id)(nccl_unique_id *);
    nccl_result (*comm_init_rank)(nccl_comm *, int, nccl_unique_id, int);
    nccl_result (*comm_destroy)(nccl_comm);
    nccl_result (*comm_abort)(nccl_comm);
    nccl_result (*comm_get_async_error)(nccl_comm, nccl_result *);
    const char *(*get_error_string)(nccl_result);
    const char *(*get_last_error)(nccl_comm); /* NCCL >= 2.13; optional */
    nccl_result (*get_version)(int *);
    nccl_result (*all_reduce)(const void *, void *, size_t, int, int, nccl_comm, void *);
    nccl_result (*reduce_scatter)(const void *, void *, size_t, int, int, nccl_comm, void *);
    nccl_result (*all_gather)(const void *, void *, size_t, int, nccl_comm, void *);
    nccl_result (*broadcast)(const void *, void *, size_t, int, int, nccl_comm, void *);

    cu_result (*cu_init)(unsigned);
    cu_result (*cu_device_get_count)(int *);
    cu_result (*cu_device_get)(cu_device *, int);
    cu_result (*cu_primary_ctx_retain)(cu_context *, cu_device);
    cu_result (*cu_ctx_set_current)(cu_context);
    cu_result (*cu_stream_create)(cu_stream *, unsigned);
    cu_result (*cu_stream_query)(cu_stream);
    cu_result (*cu_stream_wait_event)(cu_stream, void *, unsigned);
    cu_result (*cu_get_error_string)(cu_result, const char **);
} nc = {.device = -1};

static int nccl_dtype(int32_t dtype) {
    switch (dtype) {
    case RLHF4J_F32: return NCCL_FLOAT32;
    case RLHF4J_F64: return NCCL_FLOAT64;
    case RLHF4J_BF16: return NCCL_BFLOAT16;
    case RLHF4J_F16: return NCCL_FLOAT16;
    case RLHF4J_I32: return NCCL_INT32;
    case RLHF4J_DIST_I64: return NCCL_INT64;
    default: return -1;
    }
}

static int32_t nccl_fail(const char *fn, const char *call, nccl_result r) {
    const char *s = nc.get_error_string ? nc.get_error_string(r) : "?";
    const char *last = nc.get_last_error && nc.comm ? nc.get_last_error(nc.comm) : NULL;
    return dist_fail(RLHF4J_ERR_DEVICE, "%s: %s failed on rank %d of %d: NCCL error %d (%s)%s%s", fn, call,
                     g_dist.rank, g_dist.size, r, s, last && *last ? ": " : "", last ? last : "");
}

static int32_t cu_fail(const char *fn, const char *call, cu_result r) {
    const char *s = NULL;
    if (nc.cu_get_error_string) nc.cu_get_error_string(r, &s);
    return dist_fail(RLHF4J_ERR_DEVICE, "%s: %s failed on rank %d: CUDA driver error %d (%s)", fn, call, g_dist.rank, r,
                     s ? s : "?");
}

/* ---- loading ------------------------------------------------------------------------------------------------- */

static int sym(void *lib, const char *name, void *slot, int required, const char *file) {
    void *p = dlsym(lib, name);
    memcpy(slot, &p, sizeof p);
    if (!p && required) {
        snprintf(nc.why, sizeof nc.why, "%s lacks %s", file, name);
        return 0;
    }
    return 1;
}

static int open_nccl(const char *library) {
    char file[600];
    const char *name = library && *library ? library : getenv("RLHF4J_NCCL");
    const char *origin = library && *library ? "library argument" : "RLHF4J_NCCL";
    if (!name || !*name) {
        name = "libnccl.so.2";
        origin = NULL;
    } else {
        struct stat st;
        if (stat(name, &st) == 0 && S_ISDIR(st.st_mode)) {
            snprintf(file, sizeof file, "%s/libnccl.so.2", name);
            name = file;
        }
    }
    void *h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        snprintf(nc.why, sizeof nc.why, "cannot open NCCL: %s%s%s%s", e ? e : name, origin ? " (" : "",
                 origin ? origin : "", origin ? ")" : " (install NCCL 2, or set RLHF4J_NCCL to libnccl.so.2 or its folder)");
        return 0;
    }
    snprintf(nc.path, sizeof nc.path, "%s", name);
    int ok = sym(h, "ncclGetUniqueId", &nc.get_unique_id, 1, name) &&
             sym(h, "ncclCommInitRank", &nc.comm_init_rank, 1, name) &&
             sym(h, "ncclCommDestroy", &nc.comm_destroy, 1, name) &&
             sym(h, "ncclCommAbort", &nc.comm_abort, 1, name) &&
             sym(h, "ncclCommGetAsyncError", &nc.comm_get_async_error, 1, name) &&
             sym(h, "ncclGetErrorString", &nc.get_error_string, 1, name) &&
             sym(h, "ncclGetLastError", &nc.get_last_error, 0, name) &&
             sym(h, "ncclGetVersion", &nc.get_version, 1, name) &&
             sym(h, "ncclAllReduce", &nc.all_reduce, 1, name) &&
             sym(h, "ncclReduceScatter", &nc.reduce_scatter, 1, name) &&
             sym(h, "ncclAllGather", &nc.all_gather, 1, name) &&
             sym(h, "ncclBroadcast", &nc.broadcast, 1, name);
    if (!ok) {
        dlclose(h);
        return 0;
    }
    nc.lib = h;
    if (nc.get_version(&nc.version) != NCCL_SUCCESS) nc.version = 0;
    return 1;
}

static int open_cuda(void) {
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        snprintf(nc.why, sizeof nc.why, "cannot open the CUDA driver: %s (no NVIDIA driver on this machine?)",
                 e ? e : "libcuda.so.1");
        return 0;
    }
    int ok = sym(h, "cuInit", &nc.cu_init, 1, "libcuda.so.1") &&
             sym(h, "cuDeviceGetCount", &nc.cu_device_get_count, 1, "libcuda.so.1") &&
             sym(h, "cuDeviceGet", &nc.cu_device_get, 1, "libcuda.so.1") &&
             sym(h, "cuDevicePrimaryCtxRetain", &nc.cu_primary_ctx_retain, 1, "libcuda.so.1") &&
             sym(h, "cuCtxSetCurrent", &nc.cu_ctx_set_current, 1, "libcuda.so.1") &&
             sym(h, "cuStreamCreate", &nc.cu_stream_create, 1, "libcuda.so.1") &&
             sym(h, "cuStreamQuery", &nc.cu_stream_query, 1, "libcuda.so.1") &&
             sym(h, "cuStreamWaitEvent", &nc.cu_stream_wait_event, 1, "libcuda.so.1") &&
             sym(h, "cuGetErrorString", &nc.cu_get_error_string, 1, "libcuda.so.1");
    if (!ok) {
        dlclose(h);
        return 0;
    }
    nc.cuda = h;
    return 1;
}

/* Everything this rank can do alone: libraries, device, context, stream. 0 with nc.why set on failure. */
static int prepare_local(const char *library, int32_t device) {
    if (!nc.lib && !open_nccl(library)) return 0;
    if (!nc.cuda && !open_cuda()) return 0;
    cu_result r;
    int count = 0;
    if ((r = nc.cu_init(0)) != CU_SUCCESS || (r = nc.cu_device_get_count(&count)) != CU_SUCCESS) {
        const char *s = NULL;
        nc.cu_get_error_string(r, &s);
        snprintf(nc.why, sizeof nc.why, "the CUDA driver has no usable device: error %d (%s)", r, s ? s : "?");
        return 0;
    }
    int ordinal = device >= 0 ? device : g_dist.local_rank;
    if (ordinal >= count) {
        snprintf(nc.why, sizeof nc.why, "device %d does not exist: %d CUDA device(s) visible%s", ordinal, count,
                 device < 0 ? " (the device is the local rank: start at most one rank per GPU on each node)" : "");
        return 0;
    }
    cu_device d;
    if ((r = nc.cu_device_get(&d, ordinal)) != CU_SUCCESS || (r = nc.cu_primary_ctx_retain(&nc.ctx, d)) != CU_SUCCESS ||
        (r = nc.cu_ctx_set_current(nc.ctx)) != CU_SUCCESS ||
        (!nc.stream && (r = nc.cu_stream_create(&nc.stream, CU_STREAM_NON_BLOCKING)) != CU_SUCCESS)) {
        const char *s = NULL;
        nc.cu_get_error_string(r, &s);
        snprintf(nc.why, sizeof nc.why, "cannot set up CUDA device %d: error %d (%s)", ordinal, r, s ? s : "?");
        return 0;
    }
    nc.device = ordinal;
    return 1;
}

RLHF4J_API int32_t rlhf4j_dist_nccl_init(const char *library, int32_t device) {
    static const char *fn = "rlhf4j_dist_nccl_init";
    int32_t st = dist_check_ready(fn);
    if (st) return st;
    if (nc.comm) return RLHF4J_OK;
    int ok = prepare_local(library, device);

    /* Agree first, so that one rank without NCCL fails every rank instead of leaving the others in ncclCommInitRank. */
    int n = g_dist.size;
    int *oks = calloc((size_t)n, sizeof *oks);
    if (!oks) return dist_fail(RLHF4J_ERR_OUT_OF_MEMORY, "%s: out of host memory", fn);
    dist_track_begin(DIST_OP_NCCL_INIT, 0, RLHF4J_I32);
    int err = MPI_Allgather(&ok, 1, MPI_INT, oks, 1, MPI_INT, g_dist.comm);
    dist_track_end();
    if (err != MPI_SUCCESS) {
        free(oks);
        return dist_fail(RLHF4J_ERR_DEVICE, "%s: MPI_Allgather of the ranks' readiness failed", fn);
    }
    char bad[512] = "";
    for (int r = 0; r < n; r++)
        if (!oks[r] && strlen(bad) < sizeof bad - 16) snprintf(bad + strlen(bad), sizeof bad - strlen(bad), "%s%d",
                                                              bad[0] ? ", " : "", r);
    free(oks);
    if (bad[0])
        return dist_fail(RLHF4J_ERR_UNSUPPORTED, "%s: NCCL is unavailable on rank(s) %s; here (rank %d): %s", fn, bad,
                         g_dist.rank, ok ? "ready" : nc.why);

    /* Rank 0 makes the id; a failure there travels with it, so no rank waits on an id that never comes. */
    struct { int32_t status; nccl_unique_id id; } msg;
    memset(&msg, 0, sizeof msg);
    if (g_dist.rank == 0) msg.status = nc.get_unique_id(&msg.id);
    dist_track_begin(DIST_OP_NCCL_INIT, (int64_t)sizeof msg, RLHF4J_I32);
    err = MPI_Bcast(&msg, (int)sizeof msg, MPI_BYTE, 0, g_dist.comm);
    if (err == MPI_SUCCESS && msg.status == NCCL_SUCCESS) {
        nccl_result r = nc.comm_init_rank(&nc.comm, n, msg.id, g_dist.rank);
        dist_track_end();
        if (r != NCCL_SUCCESS) {
            nc.comm = NULL;
            return nccl_fail(fn, "ncclCommInitRank", r);
        }
    } else {
        dist_track_end();
        if (err != MPI_SUCCESS) return dist_fail(RLHF4J_ERR_DEVICE, "%s: MPI_Bcast of the NCCL unique id failed", fn);
        return dist_fail(RLHF4J_ERR_DEVICE, "%s: ncclGetUniqueId failed on rank 0: NCCL error %d (%s)", fn, msg.status,
                         nc.get_error_string(msg.status));
    }
    nc.why[0] = '\0';
    return RLHF4J_OK;
}

RLHF4J_API const char *rlhf4j_dist_nccl_describe(void) {
    static char buf[1200];
    if (!nc.comm) {
        snprintf(buf, sizeof buf, "NCCL not initialised%s%s", nc.why[0] ? ": " : "", nc.why);
        return buf;
    }
    snprintf(buf, sizeof buf, "NCCL %d.%d.%d (%s), device %d", nc.version / 10000, nc.version / 100 % 100,
             nc.version % 100, nc.path, nc.device);
    return buf;
}

int32_t dist_nccl_finalize(void) {
    if (!nc.comm) return RLHF4J_OK;
    nc.cu_ctx_set_current(nc.ctx);
    nccl_result r = nc.comm_destroy(nc.comm);
    nc.comm = NULL;
    return r == NCCL_SUCCESS ? RLHF4J_OK : nccl_fail("rlhf4j_dist_finalize", "ncclCommDestroy", r);
}

/* ---- collectives ------------------------------------------------------------------------------------------------ */

/* Common checks; sets the calling thread's current context (the Java thread may differ from nccl_init's). */
static int32_t ready(const char *fn, int32_t dtype, int64_t count, const void *a, const void *b) {
    int32_t st = dist_check_ready(fn);
    if (st) return st;
    if (!nc.comm)
        return dist_fail(RLHF4J_ERR_INTERNAL, "%s: called before rlhf4j_dist_nccl_init succeeded%s%s", fn,
                         nc.why[0] ? ": " : "", nc.why);
    if (nccl_dtype(dtype) < 0)
        return dist_fail(RLHF4J_ERR_INVALID_ARGUMENT,
                         "%s: dtype %d is not one of f32 0, bf16 1, f16 2, i32 3, f64 4, i64 64", fn, dtype);
    if (count < 0) return dist_fail(RLHF4J_ERR_INVALID_ARGUMENT, "%s: count %lld < 0", fn, (long long)count);
    if (count > 0 && (!a || !b)) return dist_fail(RLHF4J_ERR_INVALID_ARGUMENT, "%s: a buffer is NULL", fn);
    cu_result r = nc.cu_ctx_set_current(nc.ctx);
    return r == CU_SUCCESS ? RLHF4J_OK : cu_fail(fn, "cuCtxSetCurrent", r);
}

static int32_t check_op(const char *fn, int32_t op, int *out) {
    switch (op) {
    case RLHF4J_DIST_SUM: *out = NCCL_SUM; return RLHF4J_OK;
    case RLHF4J_DIST_MAX: *out = NCCL_MAX; return RLHF4J_OK;
    case RLHF4J_DIST_MIN: *out = NCCL_MIN; return RLHF4J_OK;
    default:
        return dist_fail(RLHF4J_ERR_INVALID_ARGUMENT, "%s: op %d is not a rlhf4j_dist_op (sum 0, max 1, min 2)", fn, op);
    }
}

#define STREAM(s) ((s) ? (s) : nc.stream)

RLHF4J_API int32_t rlhf4j_dist_nccl_all_reduce(const void *send, void *recv, int64_t count, int32_t dtype, int32_t op,
                                               void *stream) {
    static const char *fn = "rlhf4j_dist_nccl_all_reduce";
    int nop = 0;
    int32_t st;
    if ((st = ready(fn, dtype, count, send, recv)) || (st = check_op(fn, op, &nop))) return st;
    int64_t bytes = count * dist_dtype_size(dtype);
    if (dist_overlap(send, bytes, recv, bytes, 0) < 0)
        return dist_fail(RLHF4J_ERR_INVALID_ARGUMENT, "%s: send and recv overlap without being equal", fn);
    dist_track_begin(DIST_OP_NCCL_ALL_REDUCE, bytes, dtype);
    nccl_result r = nc.all_reduce(send, recv, (size_t)count, nccl_dtype(dtype), nop, nc.comm, STREAM(stream));
    dist_track_end();
    return r == NCCL_SUCCESS ? RLHF4J_OK : nccl_fail(fn, "ncclAllReduce", r);
}

RLHF4J_API int32_t rlhf4j_dist_nccl_reduce_scatter(const void *send, void *recv, int64_t count, int32_t dtype,
                                                   int32_t op, void *stream) {
    static const char *fn = "rlhf4j_dist_nccl_reduce_scatter";
    int nop = 0;
    int32_t st;
    if ((st = ready(fn, dtype, count, send, recv)) || (st = check_op(fn, op, &nop))) return st;
    int64_t block = count * dist_dtype_size(dtype);
    if (dist_overlap(recv, block, send, block * g_dist.size, block * g_dist.rank) < 0)
        return dist_fail(RLHF4J_ERR_INVALID_ARGUMENT,
                         "%s: recv overlaps send without being this rank's block of it (send + %d * count)", fn,
                         g_dist.rank);
    dist_track_begin(DIST_OP_NCCL_REDUCE_SCATTER, block * g_dist.size, dtype);
    nccl_result r = nc.reduce_scatter(send, recv, (size_t)count, nccl_dtype(dtype), nop, nc.comm, STREAM(stream));
    dist_track_end();
    return r == NCCL_SUCCESS ? RLHF4J_OK : nccl_fail(fn, "ncclReduceScatter", r);
}

RLHF4J_API int32_t rlhf4j_dist_nccl_all_gather(const void *send, void *recv, int64_t count, int32_t dtype,
                                               void *stream) {
    static const char *fn = "rlhf4j_dist_nccl_all_gather";
    int32_t st;
    if ((st = ready(fn, dtype, count, send, recv))) return st;
    int64_t block = count * dist_dtype_size(dtype);
    if (dist_overlap(send, block, recv, block * g_dist.size, block * g_dist.rank) < 0)
        return dist_fail(RLHF4J_ERR_INVALID_ARGUMENT,
                         "%s: send overlaps recv without being this rank's block of it (recv + %d * count)", fn,
                         g_dist.rank);
    dist_track_begin(DIST_OP_NCCL_ALL_GATHER, block * g_dist.size, dtype);
    nccl_result r = nc.all_gather(send, recv, (size_t)count, nccl_dtype(dtype), nc.comm, STREAM(stream));
    dist_track_end();
    return r == NCCL_SUCCESS ? RLHF4J_OK : nccl_fail(fn, "ncclAllGather", r);
}

RLHF4J_API int32_t rlhf4j_dist_nccl_broadcast(void *buf, int64_t count, int32_t dtype, int32_t root, void *stream) {
    static const char *fn = "rlhf4j_dist_nccl_broadcast";
    int32_t st;
    if ((st = ready(fn, dtype, count, buf, buf))) return st;
    if (root < 0 || root >= g_dist.size)
        return dist_fail(RLHF4J_ERR_INVALID_ARGUMENT, "%s: root %d is not a rank of a world of %d", fn, root,
                         g_dist.size);
    int64_t bytes = count * dist_dtype_size(dtype);
    dist_track_begin(DIST_OP_NCCL_BROADCAST, bytes, dtype);
    nccl_result r = nc.broadcast(buf, buf, (size_t)count, nccl_dtype(dtype), root, nc.comm, STREAM(stream));
    dist_track_end();
    return r == NCCL_SUCCESS ? RLHF4J_OK : nccl_fail(fn, "ncclBroadcast", r);
}

RLHF4J_API int32_t rlhf4j_dist_nccl_stream_wait_event(void *stream, void *event) {
    static const char *fn = "rlhf4j_dist_nccl_stream_wait_event";
    int32_t st;
    if ((st = ready(fn, RLHF4J_F32, 0, NULL, NULL))) return st;
    if (!event) return dist_fail(RLHF4J_ERR_INVALID_ARGUMENT, "%s: event is NULL", fn);
    cu_result r = nc.cu_stream_wait_event(STREAM(stream), event, 0);
    return r == CU_SUCCESS ? RLHF4J_OK : cu_fail(fn, "cuStreamWaitEvent", r);
}

RLHF4J_API int32_t rlhf4j_dist_nccl_synchronize(void *stream) {
    static const char *fn = "rlhf4j_dist_nccl_synchronize";
    int32_t st;
    if ((st = ready(fn, RLHF4J_F32, 0, NULL, NULL))) return st;
    cu_stream s = STREAM(stream);
    dist_track_begin(DIST_OP_NCCL_SYNCHRONIZE, 0, RLHF4J_I32);
    /* Spin briefly (collectives of a step are short), then poll every 100 us. */
    for (long polls = 0;; polls++) {
        cu_result r = nc.cu_stream_query(s);
        if (r == CU_SUCCESS) break;
        if (r != CU_ERROR_NOT_READY) {
            dist_track_end();
            return cu_fail(fn, "cuStreamQuery", r);
        }
        nccl_result async = NCCL_SUCCESS;
        if (nc.comm_get_async_error(nc.comm, &async) == NCCL_SUCCESS && async != NCCL_SUCCESS &&
            async != NCCL_IN_PROGRESS) {
            dist_track_end();
            int32_t e = nccl_fail(fn, "a queued collective (ncclCommGetAsyncError)", async);
            nc.comm_abort(nc.comm);
            nc.comm = NULL;
            return e;
        }
        if (polls < 1000) {
            sched_yield();
        } else {
            struct timespec ts = {0, 100 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    dist_track_end();
    return RLHF4J_OK;
}
