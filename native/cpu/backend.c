/*
 * backend.c: the CPU backend's library, device, stream and memory entry points, the thread's error message, and the
 * run-time choice of instruction set.
 *
 * Memory: every live allocation is in a registry (pointer -> size, device), so rlhf4j_free refuses a foreign,
 * interior or already-freed pointer with a message instead of corrupting the heap or crashing the JVM, and each
 * device counts its bytes in use (the Java leak tests read that counter). malloc and free are rare (Java's pool
 * caches blocks), so one mutex around the registry costs nothing measurable.
 */
#include "internal.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <pthread.h>

#define ALIGNMENT 256
#define PAGE 4096

/* Open-addressing hash set of live allocations; a slot with ptr == NULL is empty, TOMBSTONE was freed. */
typedef struct {
    void *ptr;
    int64_t bytes;
    struct rlhf4j_device_s *dev;
} alloc_entry;

#define TOMBSTONE ((void *)1)

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static alloc_entry *registry;
static size_t registry_cap, registry_used; /* used counts live entries and tombstones */

static size_t slot_of(void *p, size_t cap) {
    uint64_t h = (uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 17) & (cap - 1);
}

/* Caller holds the lock. Returns 0 on success. */
static int registry_grow(void) {
    size_t cap = registry_cap ? registry_cap * 2 : 1024;
    alloc_entry *n = calloc(cap, sizeof *n);
    if (n == NULL) return -1;
    size_t live = 0;
    for (size_t i = 0; i < registry_cap; i++) {
        void *p = registry[i].ptr;
        if (p == NULL || p == TOMBSTONE) continue;
        size_t j = slot_of(p, cap);
        while (n[j].ptr != NULL) j = (j + 1) & (cap - 1);
        n[j] = registry[i];
        live++;
    }
    free(registry);
    registry = n;
    registry_cap = cap;
    registry_used = live;
    return 0;
}

static int registry_add(void *p, int64_t bytes, struct rlhf4j_device_s *dev) {
    pthread_mutex_lock(&registry_lock);
    if ((registry_used + 1) * 2 > registry_cap && registry_grow() != 0) {
        pthread_mutex_unlock(&registry_lock);
        return -1;
    }
    size_t j = slot_of(p, registry_cap);
    while (registry[j].ptr != NULL && registry[j].ptr != TOMBSTONE) j = (j + 1) & (registry_cap - 1);
    if (registry[j].ptr == NULL) registry_used++;
    registry[j] = (alloc_entry){p, bytes, dev};
    pthread_mutex_unlock(&registry_lock);
    return 0;
}

/* Removes p if it is live on dev; returns its size, -1 if unknown, -2 if it belongs to another device. */
static int64_t registry_remove(void *p, struct rlhf4j_device_s *dev) {
    int64_t bytes = -1;
    pthread_mutex_lock(&registry_lock);
    if (registry_cap > 0) {
        size_t j = slot_of(p, registry_cap);
        while (registry[j].ptr != NULL) {
            if (registry[j].ptr == p) {
                if (registry[j].dev != dev) {
                    bytes = -2;
                } else {
                    bytes = registry[j].bytes;
                    registry[j].ptr = TOMBSTONE;
                }
                break;
            }
            j = (j + 1) & (registry_cap - 1);
        }
    }
    pthread_mutex_unlock(&registry_lock);
    return bytes;
}

/* ---- errors ------------------------------------------------------------------------------------------------- */

static _Thread_local char last_error[2048];

int32_t rlhf4j_fail(int32_t code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return code;
}

RLHF4J_API const char *rlhf4j_last_error(void) { return last_error; }

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

int32_t rlhf4j_check_float_dtype(const char *fn, int32_t dtype) {
    if (dtype == RLHF4J_F32 || dtype == RLHF4J_F64) return RLHF4J_OK;
    if (rlhf4j_dtype_size(dtype) == 0) return FAIL_ARG("%s: unknown dtype %d", fn, dtype);
    return FAIL_UNSUPPORTED("%s: dtype %s is not supported by the cpu backend, which computes in f32 and f64 "
                            "(convert to f32 first)",
                            fn, rlhf4j_dtype_name(dtype));
}

/* ---- library ------------------------------------------------------------------------------------------------ */

RLHF4J_API int32_t rlhf4j_abi_version(void) { return RLHF4J_ABI_VERSION; }

RLHF4J_API const char *rlhf4j_backend_name(void) { return "cpu"; }

static rlhf4j_isa detect_isa(void) {
    __builtin_cpu_init();
    rlhf4j_isa best = ISA_GENERIC;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) best = ISA_AVX2;
    if (best == ISA_AVX2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        best = ISA_AVX512;
    const char *force = getenv("RLHF4J_ISA");
    if (force != NULL) {
        rlhf4j_isa want = best;
        if (strcmp(force, "generic") == 0) want = ISA_GENERIC;
        else if (strcmp(force, "avx2") == 0) want = ISA_AVX2;
        else if (strcmp(force, "avx512") == 0) want = ISA_AVX512;
        if (want < best) best = want; /* can lower, never raise past what the CPU has */
    }
    return best;
}

rlhf4j_isa rlhf4j_cpu_isa(void) {
    static int isa = -1;
    int v = __atomic_load_n(&isa, __ATOMIC_ACQUIRE);
    if (v < 0) {
        v = (int)detect_isa();
        __atomic_store_n(&isa, v, __ATOMIC_RELEASE);
    }
    return (rlhf4j_isa)v;
}

static int default_threads(void) {
    int t = omp_get_max_threads(); /* honours OMP_NUM_THREADS */
    return t > 0 ? t : 1;
}

RLHF4J_API const char *rlhf4j_backend_features(void) {
    static char buf[512];
    static const char *names[] = {"generic", "avx2", "avx512"};
    const char *flags[] = {"sse4.2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512dq",
                           "avx512vnni", "avx512bf16"};
    char have[256] = "";
    __builtin_cpu_init();
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        int ok = 0;
        /* __builtin_cpu_supports needs literal strings */
        switch (i) {
        case 0: ok = __builtin_cpu_supports("sse4.2"); break;
        case 1: ok = __builtin_cpu_supports("avx"); break;
        case 2: ok = __builtin_cpu_supports("avx2"); break;
        case 3: ok = __builtin_cpu_supports("fma"); break;
        case 4: ok = __builtin_cpu_supports("f16c"); break;
        case 5: ok = __builtin_cpu_supports("avx512f"); break;
        case 6: ok = __builtin_cpu_supports("avx512bw"); break;
        case 7: ok = __builtin_cpu_supports("avx512vl"); break;
        case 8: ok = __builtin_cpu_supports("avx512dq"); break;
        case 9: ok = __builtin_cpu_supports("avx512vnni"); break;
        case 10: ok = __builtin_cpu_supports("avx512bf16"); break;
        }
        if (ok) {
            if (have[0]) strncat(have, " ", sizeof have - strlen(have) - 1);
            strncat(have, flags[i], sizeof have - strlen(have) - 1);
        }
    }
    snprintf(buf, sizeof buf, "isa=%s; cpu flags: %s; openmp threads=%d", names[rlhf4j_cpu_isa()], have,
             default_threads());
    return buf;
}

/* ---- devices and streams ------------------------------------------------------------------------------------ */

RLHF4J_API int32_t rlhf4j_device_count(int32_t *count) {
    CHECK_PTR("rlhf4j_device_count", count);
    *count = 1;
    return RLHF4J_OK;
}

RLHF4J_API int32_t rlhf4j_device_open(int32_t ordinal, rlhf4j_device *out) {
    CHECK_PTR("rlhf4j_device_open", out);
    CHECK_ARG(ordinal == 0, "rlhf4j_device_open: the cpu backend has one device (ordinal 0), got %d", ordinal);
    struct rlhf4j_device_s *d = calloc(1, sizeof *d);
    if (d == NULL) return rlhf4j_fail(RLHF4J_ERR_OUT_OF_MEMORY, "rlhf4j_device_open: out of host memory");
    d->ordinal = ordinal;
    d->num_threads = default_threads();
    *out = d;
    return RLHF4J_OK;
}

RLHF4J_API int32_t rlhf4j_device_close(rlhf4j_device dev) {
    CHECK_PTR("rlhf4j_device_close", dev);
    free(dev);
    return RLHF4J_OK;
}

RLHF4J_API int32_t rlhf4j_device_set_num_threads(rlhf4j_device dev, int32_t n) {
    CHECK_PTR("rlhf4j_device_set_num_threads", dev);
    dev->num_threads = n > 0 ? n : default_threads();
    return RLHF4J_OK;
}

RLHF4J_API int32_t rlhf4j_device_memory(rlhf4j_device dev, int64_t *in_use, int64_t *peak, int64_t *total) {
    CHECK_PTR("rlhf4j_device_memory", dev);
    if (in_use) *in_use = __atomic_load_n(&dev->in_use, __ATOMIC_RELAXED);
    if (peak) *peak = __atomic_load_n(&dev->peak, __ATOMIC_RELAXED);
    if (total) *total = (int64_t)sysconf(_SC_PHYS_PAGES) * (int64_t)sysconf(_SC_PAGESIZE);
    return RLHF4J_OK;
}

RLHF4J_API int32_t rlhf4j_stream_create(rlhf4j_device dev, rlhf4j_stream *out) {
    CHECK_PTR("rlhf4j_stream_create", dev);
    CHECK_PTR("rlhf4j_stream_create", out);
    struct rlhf4j_stream_s *s = calloc(1, sizeof *s);
    if (s == NULL) return rlhf4j_fail(RLHF4J_ERR_OUT_OF_MEMORY, "rlhf4j_stream_create: out of host memory");
    s->dev = dev;
    *out = s;
    return RLHF4J_OK;
}

RLHF4J_API int32_t rlhf4j_stream_destroy(rlhf4j_stream s) {
    CHECK_PTR("rlhf4j_stream_destroy", s);
    free(s);
    return RLHF4J_OK;
}

RLHF4J_API int32_t rlhf4j_stream_synchronize(rlhf4j_stream s) {
    CHECK_STREAM("rlhf4j_stream_synchronize", s);
    return RLHF4J_OK; /* ops are synchronous */
}

RLHF4J_API int32_t rlhf4j_event_create(rlhf4j_device dev, rlhf4j_event *out) {
    CHECK_PTR("rlhf4j_event_create", dev);
    CHECK_PTR("rlhf4j_event_create", out);
    struct rlhf4j_event_s *e = calloc(1, sizeof *e);
    if (e == NULL) return rlhf4j_fail(RLHF4J_ERR_OUT_OF_MEMORY, "rlhf4j_event_create: out of host memory");
    e->dev = dev;
    *out = e;
    return RLHF4J_OK;
}

RLHF4J_API int32_t rlhf4j_event_destroy(rlhf4j_event e) {
    CHECK_PTR("rlhf4j_event_destroy", e);
    free(e);
    return RLHF4J_OK;
}

RLHF4J_API int32_t rlhf4j_event_record(rlhf4j_event e, rlhf4j_stream s) {
    CHECK_PTR("rlhf4j_event_record", e);
    CHECK_STREAM("rlhf4j_event_record", s);
    CHECK_ARG(e->dev == s->dev, "rlhf4j_event_record: the event and the stream are on different devices");
    return RLHF4J_OK; /* everything queued so far is done */
}

RLHF4J_API int32_t rlhf4j_stream_wait_event(rlhf4j_stream s, rlhf4j_event e) {
    CHECK_STREAM("rlhf4j_stream_wait_event", s);
    CHECK_PTR("rlhf4j_stream_wait_event", e);
    return RLHF4J_OK;
}

RLHF4J_API int32_t rlhf4j_event_synchronize(rlhf4j_event e) {
    CHECK_PTR("rlhf4j_event_synchronize", e);
    return RLHF4J_OK;
}

RLHF4J_API int32_t rlhf4j_event_native(rlhf4j_event e, void **out) {
    CHECK_PTR("rlhf4j_event_native", e);
    CHECK_PTR("rlhf4j_event_native", out);
    *out = NULL;
    return RLHF4J_OK;
}

/* ---- memory ------------------------------------------------------------------------------------------------- */

RLHF4J_API int32_t rlhf4j_malloc(rlhf4j_device dev, int64_t bytes, void **out) {
    CHECK_PTR("rlhf4j_malloc", dev);
    CHECK_PTR("rlhf4j_malloc", out);
    CHECK_NONNEG("rlhf4j_malloc", bytes);
    /* A block of 1 MiB or more gets whole pages of its own, so that a GPU backend can pin it (rlhf4j_host_register
     * pins whole pages, and refuses a page pinned already through another block). */
    size_t align = bytes >= ((int64_t)1 << 20) ? PAGE : ALIGNMENT;
    size_t total = ((size_t)bytes + align - 1) & ~(size_t)(align - 1);
    void *p = aligned_alloc(align, total ? total : align); /* size 0 still gets a unique pointer */
    if (p == NULL || registry_add(p, bytes, dev) != 0) {
        free(p);
        return rlhf4j_fail(RLHF4J_ERR_OUT_OF_MEMORY, "rlhf4j_malloc: cannot allocate %lld bytes of host memory",
                           (long long)bytes);
    }
    int64_t now = __atomic_add_fetch(&dev->in_use, bytes, __ATOMIC_RELAXED);
    int64_t peak = __atomic_load_n(&dev->peak, __ATOMIC_RELAXED);
    while (now > peak && !__atomic_compare_exchange_n(&dev->peak, &peak, now, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
    *out = p;
    return RLHF4J_OK;
}

RLHF4J_API int32_t rlhf4j_free(rlhf4j_device dev, void *ptr) {
    CHECK_PTR("rlhf4j_free", dev);
    if (ptr == NULL) return RLHF4J_OK;
    int64_t bytes = registry_remove(ptr, dev);
    CHECK_ARG(bytes != -2, "rlhf4j_free: %p belongs to another device", ptr);
    CHECK_ARG(bytes >= 0, "rlhf4j_free: %p is not a live allocation of rlhf4j_malloc (never allocated, or already freed)",
              ptr);
    __atomic_sub_fetch(&dev->in_use, bytes, __ATOMIC_RELAXED);
    free(ptr);
    return RLHF4J_OK;
}

RLHF4J_API int32_t rlhf4j_memcpy(rlhf4j_stream s, void *dst, const void *src, int64_t bytes, int32_t kind) {
    CHECK_STREAM("rlhf4j_memcpy", s);
    CHECK_NONNEG("rlhf4j_memcpy", bytes);
    CHECK_ARG(kind >= RLHF4J_MEMCPY_HOST_TO_DEVICE && kind <= RLHF4J_MEMCPY_DEVICE_TO_DEVICE,
              "rlhf4j_memcpy: unknown kind %d", kind);
    if (bytes == 0) return RLHF4J_OK;
    CHECK_PTR("rlhf4j_memcpy", dst);
    CHECK_PTR("rlhf4j_memcpy", src);
    const int64_t chunk = 1 << 20;
    if (bytes < 4 * chunk || s->dev->num_threads == 1) {
        memmove(dst, src, (size_t)bytes);
        return RLHF4J_OK;
    }
    /* Large copies: one stream per core moves more bytes than one (the copy is bandwidth-bound per core). Ranges
     * that overlap must not be split. */
    const char *sp = src;
    char *dp = dst;
    if ((sp < dp + bytes) && (dp < sp + bytes)) {
        memmove(dst, src, (size_t)bytes);
        return RLHF4J_OK;
    }
    int64_t chunks = (bytes + chunk - 1) / chunk;
#pragma omp parallel for num_threads(s->dev->num_threads) schedule(static)
    for (int64_t c = 0; c < chunks; c++) {
        int64_t off = c * chunk;
        int64_t len = bytes - off < chunk ? bytes - off : chunk;
        memcpy(dp + off, sp + off, (size_t)len);
    }
    return RLHF4J_OK;
}

RLHF4J_API int32_t rlhf4j_memcpy_async(rlhf4j_stream s, void *dst, const void *src, int64_t bytes, int32_t kind) {
    return rlhf4j_memcpy(s, dst, src, bytes, kind); /* ops finish before they return */
}

RLHF4J_API int32_t rlhf4j_host_register(rlhf4j_device dev, void *ptr, int64_t bytes) {
    CHECK_PTR("rlhf4j_host_register", dev);
    CHECK_PTR("rlhf4j_host_register", ptr);
    CHECK_NONNEG("rlhf4j_host_register", bytes);
    return RLHF4J_OK; /* host memory is this backend's own */
}

RLHF4J_API int32_t rlhf4j_host_unregister(rlhf4j_device dev, void *ptr) {
    CHECK_PTR("rlhf4j_host_unregister", dev);
    CHECK_PTR("rlhf4j_host_unregister", ptr);
    return RLHF4J_OK;
}

RLHF4J_API int32_t rlhf4j_memset(rlhf4j_stream s, void *dst, int32_t byte_value, int64_t bytes) {
    CHECK_STREAM("rlhf4j_memset", s);
    CHECK_NONNEG("rlhf4j_memset", bytes);
    if (bytes == 0) return RLHF4J_OK;
    CHECK_PTR("rlhf4j_memset", dst);
    memset(dst, byte_value, (size_t)bytes);
    return RLHF4J_OK;
}
