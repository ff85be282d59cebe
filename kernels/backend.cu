/*
 * backend.cu: the CUDA backend's library, device, stream and memory entry points, the thread's last error, and the
 * caching device allocator.
 *
 * Caching allocator. cudaMalloc/cudaFree cost tens of microseconds to milliseconds and cudaFree synchronises the
 * whole device, so a training step must not call them in steady state. Every block comes from a per-device cache:
 *  - Requests round up to a size class (GPU build: multiples of 512 B below 1 MiB, then 8 classes per power of two,
 *    at most 12.5% waste; emulated build: multiples of 256 B, so each block ends as close to its guard page as the
 *    alignment allows). A freed block goes to its class's free list and is handed out again for the same class;
 *    only a miss calls cudaMalloc. So a step that repeats last step's shapes allocates nothing from the driver.
 *  - Stream-ordered reuse. rlhf4j_malloc/rlhf4j_free name no stream, so a block freed while kernels that use it may
 *    still be queued can be reused at once only if everything that will use the new allocation is ordered after
 *    those kernels. With one stream on the device (the common case) that holds by construction, since every op and
 *    copy goes through that stream; creating a second stream first synchronises the existing ones, so no block
 *    freed under the one-stream rule is still in flight. With several streams, a free records an event on each of
 *    them, and the block is reused only once all have completed. Workspaces (rlhf4j_workspace) know their stream:
 *    the release records one event there, and a later workspace on the same stream reuses the block immediately.
 *  - On cudaErrorMemoryAllocation the cache is released to the driver (after a device synchronise) and the request
 *    retried once; then RLHF4J_ERR_OUT_OF_MEMORY names the size.
 *  - Every live block is in a registry, so rlhf4j_free refuses a foreign, interior, already-freed or another
 *    device's pointer with a message instead of corrupting the cache (the CPU backend has the same registry).
 *  - In the emulated build cudaMalloc is the emulation's guarded allocation, and every block handed out (new or
 *    reused) is refilled with 0xFF bytes (NaN in f32/bf16), so stale data from a previous use cannot hide a missing
 *    write. An access far past the end hits the guard page; the < 256 bytes between the requested end and the
 *    guard are checked when the block comes back (rlhf4j_free fails with RLHF4J_ERR_DEVICE, a workspace release
 *    aborts), so an overrun by a few elements is caught too.
 * in_use / peak count the bytes requested through rlhf4j_malloc (as the CPU backend does); workspaces and the
 * cache's rounding are not counted.
 */
#include "internal.cuh"

#include <stdio.h>
#include <stdlib.h>

#include <algorithm>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#ifdef RLHF4J_EMU
#include <omp.h>
#endif

/* H5's gemm.cu may describe its GEMM path (cuBLASLt version and soname, or the fallback); weak so this file links
 * without it. */
extern "C" const char *rlhf4j_gemm_describe(void) __attribute__((weak));

/* ---- errors ------------------------------------------------------------------------------------------------- */

static thread_local char last_error[2048];

int32_t rlhf4j_fail(int32_t status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

int32_t rlhf4j_cuda_fail(const char *entry, const char *what, cudaError_t err) {
    (void)cudaGetLastError(); /* clear a non-sticky error so the next call starts clean */
    int32_t status = err == cudaErrorMemoryAllocation ? RLHF4J_ERR_OUT_OF_MEMORY : RLHF4J_ERR_DEVICE;
    return rlhf4j_fail(status, "%s: %s: %s (CUDA error %d)", entry, what, cudaGetErrorString(err), (int)err);
}

extern "C" RLHF4J_API const char *rlhf4j_last_error(void) { return last_error; }

static int env_flag(const char *name) {
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' && strcmp(v, "0") != 0;
}

int rlhf4j_sync_launches = env_flag("RLHF4J_CUDA_SYNC");

int32_t rlhf4j_use_device(const char *entry, int32_t ordinal) {
    static thread_local int current = -1;
    if (current == ordinal) return RLHF4J_OK;
    CUDA_CHECK(entry, "cudaSetDevice", cudaSetDevice(ordinal));
    current = ordinal;
    return RLHF4J_OK;
}

const char *rlhf4j_dtype_name(int32_t dtype) {
    switch (dtype) {
    case RLHF4J_F32: return "f32";
    case RLHF4J_BF16: return "bf16";
    case RLHF4J_F16: return "f16";
    case RLHF4J_I32: return "i32";
    case RLHF4J_F64: return "f64";
    default: return "unknown";
    }
}

int64_t rlhf4j_dtype_size(int32_t dtype) {
    switch (dtype) {
    case RLHF4J_F32: return 4;
    case RLHF4J_BF16: return 2;
    case RLHF4J_F16: return 2;
    case RLHF4J_I32: return 4;
    case RLHF4J_F64: return 8;
    default: return 0;
    }
}

int32_t rlhf4j_check_compute_dtype(const char *fn, int32_t dtype) {
    if (dtype == RLHF4J_F32 || dtype == RLHF4J_BF16) return RLHF4J_OK;
    if (rlhf4j_dtype_size(dtype) == 0)
        return rlhf4j_fail(RLHF4J_ERR_INVALID_ARGUMENT, "%s: unknown dtype %d", fn, dtype);
    return rlhf4j_fail(RLHF4J_ERR_UNSUPPORTED,
                       "%s: dtype %s is not supported by the cuda backend, which computes in f32 and bf16", fn,
                       rlhf4j_dtype_name(dtype));
}

/* ---- library ------------------------------------------------------------------------------------------------ */

extern "C" RLHF4J_API int32_t rlhf4j_abi_version(void) { return RLHF4J_ABI_VERSION; }

extern "C" RLHF4J_API const char *rlhf4j_backend_name(void) { return "cuda"; }

extern "C" RLHF4J_API const char *rlhf4j_backend_features(void) {
    static char buf[1024];
    static std::once_flag once;
    std::call_once(once, [] {
        const char *gemm = rlhf4j_gemm_describe ? rlhf4j_gemm_describe() : NULL;
        char tail[300] = "";
        if (gemm != NULL) snprintf(tail, sizeof tail, "; gemm: %s", gemm);
#ifdef RLHF4J_EMU
        snprintf(buf, sizeof buf, "emulated on the CPU (%d OpenMP threads)%s", omp_get_max_threads(), tail);
#else
        int rt = 0, drv = 0, n = 0;
        cudaRuntimeGetVersion(&rt);
        cudaDriverGetVersion(&drv);
        cudaError_t e = cudaGetDeviceCount(&n);
        if (e != cudaSuccess || n == 0) {
            (void)cudaGetLastError();
            snprintf(buf, sizeof buf, "no CUDA device visible (%s); CUDA runtime %d.%d, driver %d.%d%s",
                     e != cudaSuccess ? cudaGetErrorString(e) : "0 devices", rt / 1000, rt % 1000 / 10, drv / 1000,
                     drv % 1000 / 10, tail);
            return;
        }
        cudaDeviceProp p;
        if (cudaGetDeviceProperties(&p, 0) != cudaSuccess) {
            (void)cudaGetLastError();
            snprintf(buf, sizeof buf, "%d CUDA device(s); CUDA runtime %d.%d, driver %d.%d%s", n, rt / 1000,
                     rt % 1000 / 10, drv / 1000, drv % 1000 / 10, tail);
            return;
        }
        snprintf(buf, sizeof buf, "%s (sm_%d%d, %d SMs, %.1f GiB)%s; CUDA runtime %d.%d, driver %d.%d%s", p.name,
                 p.major, p.minor, p.multiProcessorCount, (double)p.totalGlobalMem / (1024.0 * 1024.0 * 1024.0),
                 n > 1 ? " and more" : "", rt / 1000, rt % 1000 / 10, drv / 1000, drv % 1000 / 10, tail);
#endif
    });
    return buf;
}

/* ---- the caching allocator ------------------------------------------------------------------------------------- */

namespace {

struct Block {
    void *ptr;
    size_t cls;                       /* bytes obtained from cudaMalloc */
    int64_t requested;                /* bytes asked for (in_use accounting) */
    bool live;
    bool workspace;
    cudaStream_t owner;               /* a released workspace's stream: reusable at once by work on it */
    std::vector<cudaEvent_t> events;  /* pending uses; the block is free for anyone once all have completed */
};

} // namespace

struct rlhf4j_allocator {
    std::mutex mu;
    int32_t ordinal;
    rlhf4j_device dev;
    std::unordered_map<void *, Block *> blocks;                /* every block this device holds, live or cached */
    std::unordered_map<size_t, std::vector<Block *>> free_lists;
    std::vector<rlhf4j_stream> streams;                        /* live streams of the device */
    std::vector<cudaEvent_t> spare_events;
    int64_t in_use = 0, peak = 0;
    int64_t reserved = 0;                                      /* bytes obtained from the driver */
    int64_t driver_allocs = 0;                                 /* cudaMalloc calls that succeeded */
};

/* Every open device's allocator, so rlhf4j_free can tell "another device's pointer" from "not a pointer". */
static std::mutex all_mu;
static std::vector<rlhf4j_allocator *> all_allocators;

static size_t size_class(int64_t bytes) {
    size_t b = bytes <= 0 ? 1 : (size_t)bytes;
#ifdef RLHF4J_EMU
    return (b + 255) & ~(size_t)255;
#else
    if (b < ((size_t)1 << 20)) return (b + 511) & ~(size_t)511;
    int log = 63 - __builtin_clzll((unsigned long long)(b - 1)); /* 2^log < b <= 2^(log+1) */
    size_t step = (size_t)1 << (log - 3);
    return (b + step - 1) / step * step;
#endif
}

/* Caller holds a->mu. */
static bool events_done(rlhf4j_allocator *a, Block *b) {
    for (size_t i = 0; i < b->events.size(); i++) {
        cudaError_t e = cudaEventQuery(b->events[i]);
        if (e == cudaErrorNotReady) return false;
        if (e != cudaSuccess) (void)cudaGetLastError(); /* a failed stream: its work is over either way */
    }
    for (cudaEvent_t ev : b->events) a->spare_events.push_back(ev);
    b->events.clear();
    b->owner = NULL;
    return true;
}

/* Records an event on stream st for block b. Caller holds a->mu. */
static cudaError_t record_on(rlhf4j_allocator *a, Block *b, cudaStream_t st) {
    cudaEvent_t ev;
    if (!a->spare_events.empty()) {
        ev = a->spare_events.back();
        a->spare_events.pop_back();
    } else {
        cudaError_t e = cudaEventCreateWithFlags(&ev, cudaEventDisableTiming);
        if (e != cudaSuccess) return e;
    }
    cudaError_t e = cudaEventRecord(ev, st);
    if (e != cudaSuccess) {
        a->spare_events.push_back(ev);
        return e;
    }
    b->events.push_back(ev);
    return cudaSuccess;
}

/* Frees every cached block to the driver (after the device is idle). Caller holds a->mu. */
static void release_cache(rlhf4j_allocator *a) {
    cudaDeviceSynchronize();
    (void)cudaGetLastError();
    for (auto &fl : a->free_lists) {
        for (Block *b : fl.second) {
            for (cudaEvent_t ev : b->events) a->spare_events.push_back(ev);
            cudaFree(b->ptr);
            a->reserved -= (int64_t)b->cls;
            a->blocks.erase(b->ptr);
            delete b;
        }
    }
    a->free_lists.clear();
    (void)cudaGetLastError();
}

/* A block of at least `bytes` for use on `st` (NULL: unknown stream). Caller holds a->mu. Returns NULL and sets
 * *err on failure. */
static Block *take_block(rlhf4j_allocator *a, int64_t bytes, cudaStream_t st, cudaError_t *err) {
    size_t cls = size_class(bytes);
    Block *found = NULL;
    auto it = a->free_lists.find(cls);
    if (it != a->free_lists.end()) {
        std::vector<Block *> &fl = it->second;
        for (size_t i = fl.size(); i-- > 0;) { /* most recently freed first: its bytes are likeliest in L2 */
            Block *b = fl[i];
            if ((st != NULL && b->owner == st) || events_done(a, b)) {
                if (st != NULL && b->owner == st) { /* ordered after its last use by the stream itself */
                    for (cudaEvent_t ev : b->events) a->spare_events.push_back(ev);
                    b->events.clear();
                    b->owner = NULL;
                }
                fl.erase(fl.begin() + (ptrdiff_t)i);
                found = b;
                break;
            }
        }
    }
    if (found == NULL) {
        void *p = NULL;
        cudaError_t e = cudaMalloc(&p, cls);
        if (e == cudaErrorMemoryAllocation) {
            (void)cudaGetLastError();
            release_cache(a);
            e = cudaMalloc(&p, cls);
        }
        if (e != cudaSuccess) {
            (void)cudaGetLastError();
            *err = e;
            return NULL;
        }
        found = new Block();
        found->ptr = p;
        found->cls = cls;
        found->owner = NULL;
        a->blocks[p] = found;
        a->reserved += (int64_t)cls;
        a->driver_allocs++;
    }
    found->live = true;
    found->requested = bytes;
#ifdef RLHF4J_EMU
    memset(found->ptr, 0xFF, found->cls); /* emulated device memory is host memory */
#endif
    return found;
}

#ifdef RLHF4J_EMU
/* Emulation: the block was all 0xFF when handed out and ends against a guard page, so an access far past the end
 * faults at once; the slack between the requested end and the block's end (< 256 bytes) is checked here instead.
 * Returns the offset of the first byte written past the end, or -1. */
static int64_t overrun_at(const Block *b) {
    const unsigned char *p = (const unsigned char *)b->ptr;
    for (size_t i = (size_t)(b->requested > 0 ? b->requested : 0); i < b->cls; i++)
        if (p[i] != 0xFF) return (int64_t)i;
    return -1;
}
#endif

/* Returns a live block to the cache; st is the stream of a workspace (NULL for rlhf4j_free). Caller holds a->mu. */
static cudaError_t give_back(rlhf4j_allocator *a, Block *b, cudaStream_t st) {
    b->live = false;
    cudaError_t err = cudaSuccess;
    if (st != NULL) {
        b->owner = st;
        if (a->streams.size() > 1) err = record_on(a, b, st);
    } else if (a->streams.size() > 1) {
        for (rlhf4j_stream s : a->streams) {
            cudaError_t e = record_on(a, b, s->stream);
            if (e != cudaSuccess) err = e;
        }
    }
    if (err != cudaSuccess) { /* cannot order the reuse: wait for the device instead */
        (void)cudaGetLastError();
        cudaDeviceSynchronize();
        (void)cudaGetLastError();
        for (cudaEvent_t ev : b->events) a->spare_events.push_back(ev);
        b->events.clear();
    }
    a->free_lists[b->cls].push_back(b);
    return cudaSuccess;
}

void *rlhf4j_workspace(rlhf4j_stream s, size_t bytes) {
    rlhf4j_allocator *a = s->dev->alloc;
    std::lock_guard<std::mutex> g(a->mu);
    cudaError_t err = cudaSuccess;
    Block *b = take_block(a, (int64_t)bytes, s->stream, &err);
    if (b == NULL) return NULL;
    b->workspace = true;
    return b->ptr;
}

void rlhf4j_workspace_release(rlhf4j_stream s, void *p) {
    if (p == NULL) return;
    rlhf4j_allocator *a = s->dev->alloc;
    std::lock_guard<std::mutex> g(a->mu);
    auto it = a->blocks.find(p);
    if (it == a->blocks.end() || !it->second->live || !it->second->workspace) {
        fprintf(stderr, "rlhf4j (cuda): rlhf4j_workspace_release of %p, which is not a live workspace\n", p);
        return;
    }
#ifdef RLHF4J_EMU
    int64_t at = overrun_at(it->second);
    if (at >= 0) { /* a kernel bug with no caller to report it to: stop loudly, as a guard-page fault would */
        fprintf(stderr, "rlhf4j emu: a kernel wrote byte %lld of a %lld-byte workspace (past its end)\n",
                (long long)at, (long long)it->second->requested);
        abort();
    }
#endif
    give_back(a, it->second, s->stream);
}

/* Internal statistics for the tests (not in rlhf4j.h): successful cudaMalloc calls and bytes held from the driver. */
extern "C" RLHF4J_API int32_t rlhf4j_cuda_allocator_stats(rlhf4j_device dev, int64_t *driver_allocs,
                                                          int64_t *reserved) {
    REQUIRE(dev != NULL, "rlhf4j_cuda_allocator_stats: dev is NULL");
    std::lock_guard<std::mutex> g(dev->alloc->mu);
    if (driver_allocs) *driver_allocs = dev->alloc->driver_allocs;
    if (reserved) *reserved = dev->alloc->reserved;
    return RLHF4J_OK;
}

/* ---- devices and streams ------------------------------------------------------------------------------------ */

extern "C" RLHF4J_API int32_t rlhf4j_device_count(int32_t *count) {
    CHECK_PTR("rlhf4j_device_count", count);
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
#ifdef RLHF4J_EMU
    const bool none = e == cudaErrorNoDevice;
#else
    const bool none = e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver;
#endif
    if (none) { /* no GPU or no driver: zero devices, not an error */
        (void)cudaGetLastError();
        *count = 0;
        return RLHF4J_OK;
    }
    CUDA_CHECK("rlhf4j_device_count", "cudaGetDeviceCount", e);
    *count = n;
    return RLHF4J_OK;
}

extern "C" RLHF4J_API int32_t rlhf4j_device_open(int32_t ordinal, rlhf4j_device *out) {
    static const char *fn = "rlhf4j_device_open";
    CHECK_PTR(fn, out);
    int32_t n = 0;
    int32_t st = rlhf4j_device_count(&n);
    if (st != RLHF4J_OK) return st;
    REQUIRE(ordinal >= 0 && ordinal < n, "%s: ordinal %d does not exist: %d CUDA device(s) visible", fn, ordinal, n);
    st = rlhf4j_use_device(fn, ordinal);
    if (st != RLHF4J_OK) return st;
    int sm = 0, major = 0, minor = 0, optin = 0, per_sm = 0;
    CUDA_CHECK(fn, "cudaDeviceGetAttribute", cudaDeviceGetAttribute(&sm, cudaDevAttrMultiProcessorCount, ordinal));
    CUDA_CHECK(fn, "cudaDeviceGetAttribute",
               cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, ordinal));
    CUDA_CHECK(fn, "cudaDeviceGetAttribute",
               cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, ordinal));
    CUDA_CHECK(fn, "cudaDeviceGetAttribute",
               cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, ordinal));
    CUDA_CHECK(fn, "cudaDeviceGetAttribute",
               cudaDeviceGetAttribute(&per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, ordinal));
    rlhf4j_device d = new (std::nothrow) rlhf4j_device_s();
    rlhf4j_allocator *a = new (std::nothrow) rlhf4j_allocator();
    if (d == NULL || a == NULL) {
        delete d;
        delete a;
        return rlhf4j_fail(RLHF4J_ERR_OUT_OF_MEMORY, "%s: out of host memory", fn);
    }
    d->ordinal = ordinal;
    d->sm_count = sm;
    d->cc_major = major;
    d->cc_minor = minor;
    d->smem_optin = (size_t)optin;
    d->smem_per_sm = (size_t)per_sm;
    d->alloc = a;
    a->ordinal = ordinal;
    a->dev = d;
    {
        std::lock_guard<std::mutex> g(all_mu);
        all_allocators.push_back(a);
    }
    *out = d;
    return RLHF4J_OK;
}

extern "C" RLHF4J_API int32_t rlhf4j_device_close(rlhf4j_device dev) {
    static const char *fn = "rlhf4j_device_close";
    CHECK_PTR(fn, dev);
    int32_t st = rlhf4j_use_device(fn, dev->ordinal);
    if (st != RLHF4J_OK) return st;
    rlhf4j_allocator *a = dev->alloc;
    {
        std::lock_guard<std::mutex> g(all_mu);
        all_allocators.erase(std::remove(all_allocators.begin(), all_allocators.end(), a), all_allocators.end());
    }
    cudaDeviceSynchronize();
    (void)cudaGetLastError();
    for (auto &kv : a->blocks) { /* cached and still-live blocks alike: the device is gone */
        cudaFree(kv.second->ptr);
        for (cudaEvent_t ev : kv.second->events) cudaEventDestroy(ev);
        delete kv.second;
    }
    for (cudaEvent_t ev : a->spare_events) cudaEventDestroy(ev);
    (void)cudaGetLastError();
    delete a;
    delete dev;
    return RLHF4J_OK;
}

extern "C" RLHF4J_API int32_t rlhf4j_device_set_num_threads(rlhf4j_device dev, int32_t n) {
    CHECK_PTR("rlhf4j_device_set_num_threads", dev);
    (void)n; /* a GPU's parallelism is the grid */
    return RLHF4J_OK;
}

extern "C" RLHF4J_API int32_t rlhf4j_device_memory(rlhf4j_device dev, int64_t *in_use, int64_t *peak,
                                                   int64_t *total) {
    static const char *fn = "rlhf4j_device_memory";
    CHECK_PTR(fn, dev);
    {
        std::lock_guard<std::mutex> g(dev->alloc->mu);
        if (in_use) *in_use = dev->alloc->in_use;
        if (peak) *peak = dev->alloc->peak;
    }
    if (total) {
        int32_t st = rlhf4j_use_device(fn, dev->ordinal);
        if (st != RLHF4J_OK) return st;
        size_t free_b = 0, total_b = 0;
        CUDA_CHECK(fn, "cudaMemGetInfo", cudaMemGetInfo(&free_b, &total_b));
        *total = (int64_t)total_b;
    }
    return RLHF4J_OK;
}

extern "C" RLHF4J_API int32_t rlhf4j_stream_create(rlhf4j_device dev, rlhf4j_stream *out) {
    static const char *fn = "rlhf4j_stream_create";
    CHECK_PTR(fn, dev);
    CHECK_PTR(fn, out);
    int32_t st = rlhf4j_use_device(fn, dev->ordinal);
    if (st != RLHF4J_OK) return st;
    rlhf4j_stream s = new (std::nothrow) rlhf4j_stream_s();
    if (s == NULL) return rlhf4j_fail(RLHF4J_ERR_OUT_OF_MEMORY, "%s: out of host memory", fn);
    cudaError_t e = cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking);
    if (e != cudaSuccess) {
        delete s;
        return rlhf4j_cuda_fail(fn, "cudaStreamCreateWithFlags", e);
    }
    s->dev = dev;
    rlhf4j_allocator *a = dev->alloc;
    std::lock_guard<std::mutex> g(a->mu);
    /* Blocks freed under the one-stream rule carry no events: let the first stream's queued work finish before a
     * second stream can be handed one of them. */
    if (a->streams.size() == 1) {
        e = cudaStreamSynchronize(a->streams[0]->stream);
        if (e != cudaSuccess) {
            cudaStreamDestroy(s->stream);
            delete s;
            return rlhf4j_cuda_fail(fn, "cudaStreamSynchronize (the existing stream)", e);
        }
    }
    a->streams.push_back(s);
    *out = s;
    return RLHF4J_OK;
}

extern "C" RLHF4J_API int32_t rlhf4j_stream_destroy(rlhf4j_stream s) {
    static const char *fn = "rlhf4j_stream_destroy";
    CHECK_STREAM(fn, s);
    rlhf4j_allocator *a = s->dev->alloc;
    /* Queued work must finish first: cached blocks may carry this stream as their owner or in their events. */
    cudaError_t e = cudaStreamSynchronize(s->stream);
    {
        std::lock_guard<std::mutex> g(a->mu);
        a->streams.erase(std::remove(a->streams.begin(), a->streams.end(), s), a->streams.end());
        for (auto &fl : a->free_lists)
            for (Block *b : fl.second) {
                if (b->owner == s->stream) b->owner = NULL;
                events_done(a, b); /* this stream's events have completed; drop them */
            }
    }
    cudaStreamDestroy(s->stream);
    delete s;
    if (e != cudaSuccess) return rlhf4j_cuda_fail(fn, "cudaStreamSynchronize (work queued before the destroy)", e);
    return RLHF4J_OK;
}

extern "C" RLHF4J_API int32_t rlhf4j_stream_synchronize(rlhf4j_stream s) {
    static const char *fn = "rlhf4j_stream_synchronize";
    CHECK_STREAM(fn, s);
    CUDA_CHECK(fn, "cudaStreamSynchronize (a kernel queued earlier failed; RLHF4J_CUDA_SYNC=1 names it)",
               cudaStreamSynchronize(s->stream));
    return RLHF4J_OK;
}

/* ---- events: cudaEvent_t without timing, the cheap kind that only orders work -------------------------------- */

extern "C" RLHF4J_API int32_t rlhf4j_event_create(rlhf4j_device dev, rlhf4j_event *out) {
    static const char *fn = "rlhf4j_event_create";
    CHECK_PTR(fn, dev);
    CHECK_PTR(fn, out);
    int32_t st = rlhf4j_use_device(fn, dev->ordinal);
    if (st != RLHF4J_OK) return st;
    rlhf4j_event e = new (std::nothrow) rlhf4j_event_s();
    if (e == NULL) return rlhf4j_fail(RLHF4J_ERR_OUT_OF_MEMORY, "%s: out of host memory", fn);
    cudaError_t err = cudaEventCreateWithFlags(&e->event, cudaEventDisableTiming);
    if (err != cudaSuccess) {
        delete e;
        return rlhf4j_cuda_fail(fn, "cudaEventCreateWithFlags", err);
    }
    e->dev = dev;
    *out = e;
    return RLHF4J_OK;
}

extern "C" RLHF4J_API int32_t rlhf4j_event_destroy(rlhf4j_event e) {
    static const char *fn = "rlhf4j_event_destroy";
    CHECK_PTR(fn, e);
    cudaError_t err = cudaEventDestroy(e->event); /* released once the work it marks is done */
    delete e;
    CUDA_CHECK(fn, "cudaEventDestroy", err);
    return RLHF4J_OK;
}

extern "C" RLHF4J_API int32_t rlhf4j_event_record(rlhf4j_event e, rlhf4j_stream s) {
    static const char *fn = "rlhf4j_event_record";
    CHECK_PTR(fn, e);
    CHECK_STREAM(fn, s);
    REQUIRE(e->dev == s->dev, "%s: the event is on device %d, the stream on device %d", fn, e->dev->ordinal,
            s->dev->ordinal);
    CUDA_CHECK(fn, "cudaEventRecord", cudaEventRecord(e->event, s->stream));
    return RLHF4J_OK;
}

extern "C" RLHF4J_API int32_t rlhf4j_stream_wait_event(rlhf4j_stream s, rlhf4j_event e) {
    static const char *fn = "rlhf4j_stream_wait_event";
    CHECK_STREAM(fn, s);
    CHECK_PTR(fn, e);
    CUDA_CHECK(fn, "cudaStreamWaitEvent", cudaStreamWaitEvent(s->stream, e->event, 0));
    return RLHF4J_OK;
}

extern "C" RLHF4J_API int32_t rlhf4j_event_synchronize(rlhf4j_event e) {
    static const char *fn = "rlhf4j_event_synchronize";
    CHECK_PTR(fn, e);
    CUDA_CHECK(fn, "cudaEventSynchronize (work queued before the record failed; RLHF4J_CUDA_SYNC=1 names it)",
               cudaEventSynchronize(e->event));
    return RLHF4J_OK;
}

extern "C" RLHF4J_API int32_t rlhf4j_event_native(rlhf4j_event e, void **out) {
    static const char *fn = "rlhf4j_event_native";
    CHECK_PTR(fn, e);
    CHECK_PTR(fn, out);
    *out = (void *)e->event;
    return RLHF4J_OK;
}

/* ---- memory ------------------------------------------------------------------------------------------------- */

extern "C" RLHF4J_API int32_t rlhf4j_malloc(rlhf4j_device dev, int64_t bytes, void **out) {
    static const char *fn = "rlhf4j_malloc";
    CHECK_PTR(fn, dev);
    CHECK_PTR(fn, out);
    CHECK_NONNEG(fn, bytes);
    int32_t st = rlhf4j_use_device(fn, dev->ordinal);
    if (st != RLHF4J_OK) return st;
    rlhf4j_allocator *a = dev->alloc;
    std::lock_guard<std::mutex> g(a->mu);
    cudaError_t err = cudaSuccess;
    Block *b = take_block(a, bytes, NULL, &err);
    if (b == NULL) {
        if (err == cudaErrorMemoryAllocation)
            return rlhf4j_fail(RLHF4J_ERR_OUT_OF_MEMORY,
                               "%s: out of device memory allocating %lld bytes on cuda:%d (%lld bytes in use through "
                               "rlhf4j_malloc, cache released)",
                               fn, (long long)bytes, dev->ordinal, (long long)a->in_use);
        return rlhf4j_fail(RLHF4J_ERR_DEVICE, "%s: cudaMalloc of %lld bytes: %s (CUDA error %d)", fn,
                           (long long)bytes, cudaGetErrorString(err), (int)err);
    }
    b->workspace = false;
    a->in_use += bytes;
    if (a->in_use > a->peak) a->peak = a->in_use;
    *out = b->ptr;
    return RLHF4J_OK;
}

extern "C" RLHF4J_API int32_t rlhf4j_free(rlhf4j_device dev, void *ptr) {
    static const char *fn = "rlhf4j_free";
    CHECK_PTR(fn, dev);
    if (ptr == NULL) return RLHF4J_OK;
    rlhf4j_allocator *a = dev->alloc;
    {
        std::lock_guard<std::mutex> g(a->mu);
        auto it = a->blocks.find(ptr);
        if (it != a->blocks.end()) {
            Block *b = it->second;
            REQUIRE(b->live, "%s: %p was already freed", fn, ptr);
            REQUIRE(!b->workspace, "%s: %p is an op's workspace, not an allocation of rlhf4j_malloc", fn, ptr);
#ifdef RLHF4J_EMU
            int64_t at = overrun_at(b);
            if (at >= 0) { /* freed, but given back to the driver rather than reused */
                int64_t req = b->requested;
                a->in_use -= req;
                a->reserved -= (int64_t)b->cls;
                a->blocks.erase(it);
                cudaFree(b->ptr);
                delete b;
                return rlhf4j_fail(RLHF4J_ERR_DEVICE,
                                   "%s: %p: byte %lld of this %lld-byte allocation was written, past its end (an "
                                   "out-of-bounds write by a kernel or a copy)",
                                   fn, ptr, (long long)at, (long long)req);
            }
#endif
            int32_t st = rlhf4j_use_device(fn, dev->ordinal);
            if (st != RLHF4J_OK) return st;
            a->in_use -= b->requested;
            give_back(a, b, NULL);
            return RLHF4J_OK;
        }
    }
    {
        std::lock_guard<std::mutex> g(all_mu);
        for (rlhf4j_allocator *o : all_allocators) {
            if (o == a) continue;
            std::lock_guard<std::mutex> g2(o->mu);
            auto it = o->blocks.find(ptr);
            if (it != o->blocks.end() && it->second->live)
                return rlhf4j_fail(RLHF4J_ERR_INVALID_ARGUMENT, "%s: %p belongs to another device (cuda:%d)", fn,
                                   ptr, o->ordinal);
        }
    }
    return rlhf4j_fail(RLHF4J_ERR_INVALID_ARGUMENT,
                       "%s: %p is not a live allocation of rlhf4j_malloc (never allocated, or already freed)", fn,
                       ptr);
}

static cudaMemcpyKind memcpy_kind(int32_t kind) {
    switch (kind) {
    case RLHF4J_MEMCPY_HOST_TO_DEVICE: return cudaMemcpyHostToDevice;
    case RLHF4J_MEMCPY_DEVICE_TO_HOST: return cudaMemcpyDeviceToHost;
    default: return cudaMemcpyDeviceToDevice;
    }
}

extern "C" RLHF4J_API int32_t rlhf4j_memcpy(rlhf4j_stream s, void *dst, const void *src, int64_t bytes,
                                            int32_t kind) {
    static const char *fn = "rlhf4j_memcpy";
    CHECK_STREAM(fn, s);
    CHECK_NONNEG(fn, bytes);
    REQUIRE(kind >= RLHF4J_MEMCPY_HOST_TO_DEVICE && kind <= RLHF4J_MEMCPY_DEVICE_TO_DEVICE,
            "%s: unknown kind %d", fn, kind);
    if (bytes == 0) return RLHF4J_OK;
    CHECK_PTR(fn, dst);
    CHECK_PTR(fn, src);
    CUDA_CHECK(fn, "cudaMemcpyAsync", cudaMemcpyAsync(dst, src, (size_t)bytes, memcpy_kind(kind), s->stream));
    /* Host memory from Java is pageable: the driver stages a host-to-device copy before this returns, so the source
     * may be reused at once. A device-to-host copy is read as soon as this returns, so it waits for the stream. */
    if (kind == RLHF4J_MEMCPY_DEVICE_TO_HOST)
        CUDA_CHECK(fn, "cudaStreamSynchronize after a device-to-host copy", cudaStreamSynchronize(s->stream));
    return RLHF4J_OK;
}

extern "C" RLHF4J_API int32_t rlhf4j_memcpy_async(rlhf4j_stream s, void *dst, const void *src, int64_t bytes,
                                                  int32_t kind) {
    static const char *fn = "rlhf4j_memcpy_async";
    CHECK_STREAM(fn, s);
    CHECK_NONNEG(fn, bytes);
    REQUIRE(kind >= RLHF4J_MEMCPY_HOST_TO_DEVICE && kind <= RLHF4J_MEMCPY_DEVICE_TO_DEVICE,
            "%s: unknown kind %d", fn, kind);
    if (bytes == 0) return RLHF4J_OK;
    CHECK_PTR(fn, dst);
    CHECK_PTR(fn, src);
    CUDA_CHECK(fn, "cudaMemcpyAsync", cudaMemcpyAsync(dst, src, (size_t)bytes, memcpy_kind(kind), s->stream));
    return RLHF4J_OK;
}

extern "C" RLHF4J_API int32_t rlhf4j_host_register(rlhf4j_device dev, void *ptr, int64_t bytes) {
    static const char *fn = "rlhf4j_host_register";
    CHECK_PTR(fn, dev);
    CHECK_PTR(fn, ptr);
    CHECK_NONNEG(fn, bytes);
    int32_t st = rlhf4j_use_device(fn, dev->ordinal);
    if (st != RLHF4J_OK) return st;
    cudaError_t e = cudaHostRegister(ptr, (size_t)bytes, cudaHostRegisterDefault);
    if (e == cudaErrorHostMemoryAlreadyRegistered) {
        (void)cudaGetLastError();
        return rlhf4j_fail(RLHF4J_ERR_UNSUPPORTED, "%s: %p (%lld bytes) shares a page with host memory pinned "
                           "already; copies from it wait as rlhf4j_memcpy does", fn, ptr, (long long)bytes);
    }
    CUDA_CHECK(fn, "cudaHostRegister", e);
    return RLHF4J_OK;
}

extern "C" RLHF4J_API int32_t rlhf4j_host_unregister(rlhf4j_device dev, void *ptr) {
    static const char *fn = "rlhf4j_host_unregister";
    CHECK_PTR(fn, dev);
    CHECK_PTR(fn, ptr);
    int32_t st = rlhf4j_use_device(fn, dev->ordinal);
    if (st != RLHF4J_OK) return st;
    CUDA_CHECK(fn, "cudaHostUnregister", cudaHostUnregister(ptr));
    return RLHF4J_OK;
}

extern "C" RLHF4J_API int32_t rlhf4j_memset(rlhf4j_stream s, void *dst, int32_t byte_value, int64_t bytes) {
    static const char *fn = "rlhf4j_memset";
    CHECK_STREAM(fn, s);
    CHECK_NONNEG(fn, bytes);
    if (bytes == 0) return RLHF4J_OK;
    CHECK_PTR(fn, dst);
    CUDA_CHECK(fn, "cudaMemsetAsync", cudaMemsetAsync(dst, byte_value, (size_t)bytes, s->stream));
    return RLHF4J_OK;
}
