/*
 * cuda_stub.c: a stand-in libcuda.so.1 for the tests of nccl.c on machines without GPUs (never shipped): the nine
 * driver functions nccl.c opens, with RLHF4J_STUB_GPUS devices (default 2) and streams that are always done (so a
 * stream waiting for an event has nothing to wait for; a NULL event is refused, as the driver refuses it).
 */
#include <stdlib.h>

#define EXPORT __attribute__((visibility("default")))

static int dummy;

EXPORT int cuInit(unsigned flags) { return 0; }

EXPORT int cuDeviceGetCount(int *n) {
    const char *v = getenv("RLHF4J_STUB_GPUS");
    *n = v ? atoi(v) : 2;
    return 0;
}

EXPORT int cuDeviceGet(int *d, int ordinal) {
    *d = ordinal;
    return 0;
}

EXPORT int cuDevicePrimaryCtxRetain(void **ctx, int d) {
    *ctx = &dummy;
    return 0;
}

EXPORT int cuCtxSetCurrent(void *ctx) { return ctx == &dummy ? 0 : 201; /* CUDA_ERROR_INVALID_CONTEXT */ }

EXPORT int cuStreamCreate(void **s, unsigned flags) {
    *s = &dummy;
    return 0;
}

EXPORT int cuStreamQuery(void *s) { return 0; }

EXPORT int cuStreamWaitEvent(void *s, void *event, unsigned flags) {
    return s && event && flags == 0 ? 0 : 400; /* CUDA_ERROR_INVALID_HANDLE */
}

EXPORT int cuGetErrorString(int e, const char **s) {
    *s = "stub CUDA error";
    return 0;
}
