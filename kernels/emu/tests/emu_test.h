// Shared helpers of the emulation layer's tests: each test program prints one line per case ("PASS name: detail" or
// "FAIL name: detail") and exits non-zero if a case failed.
#pragma once
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vector>

#include "common.cuh"
#include "mma.cuh"

static int g_failures = 0;

static void report(bool ok, const char* name, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
static void report(bool ok, const char* name, const char* fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    printf("%s %s: %s\n", ok ? "PASS" : "FAIL", name, buf);
    fflush(stdout);
    if (!ok) g_failures++;
}

// Runs f in a forked child; returns the signal that ended it (0 if it exited normally, then *code = exit status).
template <typename F>
static int run_forked(F f, int* code) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        // The child's crash is the expected outcome: keep it quiet.
        int devnull_fd = open("/dev/null", 1);
        if (devnull_fd >= 0) dup2(devnull_fd, 2);
        f();
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    if (WIFSIGNALED(st)) return WTERMSIG(st);
    if (code) *code = WEXITSTATUS(st);
    return 0;
}

#define CHECK_CUDA(call)                                                                                               \
    do {                                                                                                               \
        cudaError_t e_ = (call);                                                                                       \
        if (e_ != cudaSuccess) {                                                                                       \
            printf("FAIL %s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_));                         \
            exit(1);                                                                                                   \
        }                                                                                                              \
    } while (0)
