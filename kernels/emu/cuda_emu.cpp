// The runtime of the CUDA emulation (see cuda_emu.h for the model): fibers and their scheduler, warp collectives,
// cp.async, emulated device memory with guard pages, and the CUDA runtime API subset.
//
// Fibers: Boost.Context's fcontext (a few ns a switch) when the Makefile found it (-DRLHF4J_EMU_FCONTEXT), else
// ucontext (a sigprocmask system call a switch, ~250 ns here). Each OS thread keeps a pool of fiber stacks, each with a
// PROT_NONE guard page below it, reused by every block it runs.
#include "cuda_emu.h"

#include <omp.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#if RLHF4J_EMU_FCONTEXT
#include <boost/context/detail/fcontext.hpp>
namespace bctx = boost::context::detail;
#else
#include <ucontext.h>
#endif

__thread uint3 threadIdx;
__thread uint3 blockIdx;
__thread uint3 blockDim;
__thread uint3 gridDim;

namespace rlhf4j_emu {
namespace {

std::atomic<int> g_mode{0};
std::atomic<uint64_t> g_seed{0};
std::atomic<bool> g_quiet{false};
const size_t kPage = 4096;

enum State : uint8_t { RUNNABLE, AT_BARRIER, AT_WARP, DONE };

struct Copy {
    void* dst;
    const void* src;  // nullptr: zero-fill
    uint32_t group;
    uint32_t bytes;
};

struct Fiber {
#if RLHF4J_EMU_FCONTEXT
    bctx::fcontext_t ctx = nullptr;
#else
    ucontext_t uc;
#endif
    char* stack_map = nullptr;  // guard page, then the stack
    size_t stack_map_len = 0;
    uint3 tid{};
    uint32_t linear = 0;
    State state = RUNNABLE;
    int kind = 0;
    uint32_t mask = 0;
    void* data = nullptr;
    CollectiveFn fn = nullptr;
    std::vector<Copy> copies;  // cp.async issued and not yet waited for
    uint32_t committed = 0;    // cp.async groups committed so far
};

struct Warp {
    uint32_t exist, arrived, done;
};

struct Worker {  // one per OS thread: the block it runs now, and pools reused by every block
    std::vector<std::unique_ptr<Fiber>> fibers;
    std::vector<int> order;
    std::vector<Warp> warps;
    Fiber main;
    size_t stack_size = 0;
    char* smem_map = nullptr;
    size_t smem_map_len = 0;
    char* smem = nullptr;
    size_t smem_size = 0;
    // the running launch and block
    void (*body)(void*) = nullptr;
    void* body_ctx = nullptr;
    int n = 0, n_alive = 0, n_at_bar = 0, n_done = 0, cursor = 0, first_done = -1;
    int bar_acc = 0, bar_result = 0;
    int mode = 0;
    // Schedules 3 and 4 (warp-serial): the warp being run until all its lanes wait at __syncthreads or have exited
    // (-1 at the start of a phase: the next runnable fiber in the order picks it). eager_copies: cp.async lands at issue.
    bool warp_serial = false, eager_copies = false;
    int run_warp = -1;
    uint64_t seed = 0, block_linear = 0, epoch = 0;
    bool failed = false;
    std::string msg;

    ~Worker() {
        for (auto& f : fibers)
            if (f->stack_map) munmap(f->stack_map, f->stack_map_len);
        if (smem_map) munmap(smem_map, smem_map_len);
    }
};

thread_local std::unique_ptr<Worker> t_worker;
__thread Worker* g_w = nullptr;
__thread Fiber* g_cur = nullptr;
thread_local std::string t_error_detail;  // the message of this thread's last failed launch
__thread cudaError_t t_last_error = cudaSuccess;

size_t round_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

uint64_t splitmix(uint64_t& s) {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

const char* kind_name(int kind) {
    switch (kind) {
        case COLL_SYNCWARP: return "__syncwarp";
        case COLL_SHFL_IDX: return "__shfl_sync";
        case COLL_SHFL_UP: return "__shfl_up_sync";
        case COLL_SHFL_DOWN: return "__shfl_down_sync";
        case COLL_SHFL_XOR: return "__shfl_xor_sync";
        case COLL_VOTE: return "__ballot_sync/__any_sync/__all_sync";
        case COLL_MATCH_ANY: return "__match_any_sync";
        case COLL_MATCH_ALL: return "__match_all_sync";
        case COLL_REDUCE: return "__reduce_*_sync";
        case COLL_WARP_SUM: return "warp_sum";
        case COLL_WARP_MAX: return "warp_max";
        case COLL_MMA: return "mma_m16n8k16_bf16";
        default:
            if (kind >= COLL_LDMATRIX && kind < COLL_LDMATRIX + 16) return "ldmatrix";
            return "a warp collective";
    }
}

// ---- fibers -------------------------------------------------------------------------------------------------------

[[noreturn]] void fiber_main();

#if RLHF4J_EMU_FCONTEXT
void fiber_entry(bctx::transfer_t t) {
    static_cast<Fiber*>(t.data)->ctx = t.fctx;
    fiber_main();
}
#endif

inline void switch_to(Fiber* from, Fiber* to) {
    g_cur = to;
    threadIdx = to->tid;
#if RLHF4J_EMU_FCONTEXT
    bctx::transfer_t t = bctx::jump_fcontext(to->ctx, from);
    static_cast<Fiber*>(t.data)->ctx = t.fctx;
#else
    swapcontext(&from->uc, &to->uc);
#endif
}

// The next runnable fiber after the cursor in the schedule's order (the current one included), or nullptr.
// Warp-serial schedules first look for one in the running warp (its lanes are contiguous in the order: in order or
// reversed), wrapping around within the warp, so that a warp runs on through its collectives until every lane of it
// waits at __syncthreads (or has exited); only then does the next warp in the order start.
inline Fiber* pick_next(Worker& w) {
    if (w.warp_serial && w.run_warp >= 0) {
        int len = w.n - 32 * w.run_warp < 32 ? w.n - 32 * w.run_warp : 32;
        int begin = w.mode == 4 ? w.n - 32 * w.run_warp - len : 32 * w.run_warp;
        int off = w.cursor - begin;  // the cursor is in the running warp
        for (int k = 0; k < len; k++) {
            off = off + 1 == len ? 0 : off + 1;
            Fiber* f = w.fibers[w.order[begin + off]].get();
            if (f->state == RUNNABLE) {
                w.cursor = begin + off;
                return f;
            }
        }
    }
    for (int k = 0; k < w.n; k++) {
        w.cursor = w.cursor + 1 == w.n ? 0 : w.cursor + 1;
        Fiber* f = w.fibers[w.order[w.cursor]].get();
        if (f->state == RUNNABLE) {
            if (w.warp_serial) w.run_warp = (int)(f->linear / 32);
            return f;
        }
    }
    return nullptr;
}

// Hands over to the next fiber (to the block's scheduler when none can run: the block is done, or stuck).
inline void yield_from(Worker& w, Fiber* self) {
    Fiber* nx = pick_next(w);
    if (!nx) nx = &w.main;
    if (nx != self) switch_to(self, nx);
}

void shuffle_order(Worker& w) {
    uint64_t s = w.seed ^ (w.block_linear * 0x632be59bd9b4e019ull) ^ (w.epoch * 0x9e3779b97f4a7c15ull);
    for (int i = w.n - 1; i > 0; i--) {
        int j = (int)(splitmix(s) % (uint64_t)(i + 1));
        std::swap(w.order[i], w.order[j]);
    }
}

std::string where(const Worker& w, const Fiber* f) {
    char buf[160];
    if (f && f != &w.main)
        snprintf(buf, sizeof buf, "block (%u,%u,%u) thread (%u,%u,%u) [warp %u lane %u]: ", blockIdx.x, blockIdx.y,
                 blockIdx.z, f->tid.x, f->tid.y, f->tid.z, f->linear / 32, f->linear % 32);
    else
        snprintf(buf, sizeof buf, "block (%u,%u,%u): ", blockIdx.x, blockIdx.y, blockIdx.z);
    return buf;
}

[[noreturn]] void fail_block(Worker& w, Fiber* self, const std::string& m) {
    w.failed = true;
    w.msg = where(w, self) + m;
    switch_to(self, &w.main);
    abort();  // never resumed
}

[[noreturn]] void fiber_exit() {
    Worker& w = *g_w;
    Fiber* f = g_cur;
    f->state = DONE;
    w.n_alive--;
    w.n_done++;
    if (w.first_done < 0) w.first_done = (int)f->linear;
    Warp& wp = w.warps[f->linear / 32];
    uint32_t bit = 1u << (f->linear % 32);
    wp.done |= bit;
    char m[256];
    if (w.n_at_bar > 0 && w.n_at_bar == w.n_alive) {
        snprintf(m, sizeof m, "exited while %d other threads of the block wait at __syncthreads", w.n_at_bar);
        fail_block(w, f, m);
    }
    for (uint32_t a = wp.arrived; a; a &= a - 1) {
        Fiber* g = w.fibers[(f->linear & ~31u) + __builtin_ctz(a)].get();
        if (g->mask & bit) {
            snprintf(m, sizeof m, "exited while lane %u waits for it at %s (mask 0x%08x)", g->linear % 32,
                     kind_name(g->kind), g->mask);
            fail_block(w, f, m);
        }
    }
    yield_from(w, f);
    abort();
}

[[noreturn]] void fiber_main() {
    Worker& w = *g_w;
    w.body(w.body_ctx);
    fiber_exit();
}

#if !RLHF4J_EMU_FCONTEXT
void fiber_main_uc() { fiber_main(); }
#endif

void ensure_fibers(Worker& w, int n) {
    if (!w.stack_size) {
        size_t kb = 128;
        if (const char* e = getenv("RLHF4J_EMU_STACK_KB")) kb = (size_t)atol(e) > 16 ? (size_t)atol(e) : 16;
        w.stack_size = round_up(kb * 1024, kPage);
    }
    while ((int)w.fibers.size() < n) {
        auto f = std::make_unique<Fiber>();
        f->stack_map_len = w.stack_size + kPage;
        void* p = mmap(nullptr, f->stack_map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                       -1, 0);
        if (p == MAP_FAILED) {
            fprintf(stderr, "rlhf4j emu: cannot map a fiber stack of %zu bytes\n", f->stack_map_len);
            abort();
        }
        mprotect(p, kPage, PROT_NONE);  // a stack overflow faults instead of corrupting the next stack
        f->stack_map = static_cast<char*>(p);
        w.fibers.push_back(std::move(f));
    }
    if ((int)w.order.size() < n) w.order.resize(n);
    if ((int)w.warps.size() < (n + 31) / 32) w.warps.resize((n + 31) / 32);
}

// Dynamic shared memory of the block: ends against a guard page, filled with 0xff (NaN) at the start of each block.
void ensure_smem(Worker& w, size_t bytes) {
    size_t need = round_up(round_up(bytes, 16), kPage) + kPage;
    if (need > w.smem_map_len) {
        if (w.smem_map) munmap(w.smem_map, w.smem_map_len);
        void* p = mmap(nullptr, need, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            fprintf(stderr, "rlhf4j emu: cannot map %zu bytes of shared memory\n", need);
            abort();
        }
        mprotect(static_cast<char*>(p) + need - kPage, kPage, PROT_NONE);
        w.smem_map = static_cast<char*>(p);
        w.smem_map_len = need;
    }
    w.smem = w.smem_map + w.smem_map_len - kPage - round_up(bytes, 16);
    w.smem_size = bytes;
}

void describe_deadlock(Worker& w) {
    std::string m = "deadlock: no thread can run;";
    char buf[200];
    if (w.n_at_bar) {
        snprintf(buf, sizeof buf, " %d threads wait at __syncthreads;", w.n_at_bar);
        m += buf;
    }
    for (size_t wi = 0; wi < w.warps.size() && (int)(wi * 32) < w.n; wi++) {
        Warp& wp = w.warps[wi];
        if (!wp.arrived) continue;
        Fiber* g = w.fibers[wi * 32 + __builtin_ctz(wp.arrived)].get();
        snprintf(buf, sizeof buf, " warp %zu: lanes 0x%08x wait at %s (mask 0x%08x) for lanes 0x%08x;", wi,
                 wp.arrived, kind_name(g->kind), g->mask, g->mask & ~wp.arrived);
        m += buf;
    }
    w.failed = true;
    w.msg = where(w, nullptr) + m;
}

struct LaunchShared {
    std::atomic<bool> failed{false};
    std::mutex mu;
    std::string msg;
};

void run_block(Worker& w, uint64_t linear, dim3 grid, dim3 block) {
    blockIdx = uint3{(unsigned)(linear % grid.x), (unsigned)(linear / grid.x % grid.y),
                     (unsigned)(linear / ((uint64_t)grid.x * grid.y))};
    int n = w.n;
    for (int i = 0; i < n; i++) {
        Fiber* f = w.fibers[i].get();
        f->tid = uint3{i % block.x, i / block.x % block.y, i / (block.x * block.y)};
        f->linear = (uint32_t)i;
        f->state = RUNNABLE;
        f->mask = 0;
        f->kind = 0;
        f->copies.clear();
        f->committed = 0;
#if RLHF4J_EMU_FCONTEXT
        f->ctx = bctx::make_fcontext(f->stack_map + f->stack_map_len, w.stack_size, fiber_entry);
#else
        getcontext(&f->uc);
        f->uc.uc_stack.ss_sp = f->stack_map + kPage;
        f->uc.uc_stack.ss_size = w.stack_size;
        f->uc.uc_link = nullptr;
        makecontext(&f->uc, fiber_main_uc, 0);
#endif
    }
    for (int wi = 0; wi < (n + 31) / 32; wi++) {
        int lanes = n - wi * 32 < 32 ? n - wi * 32 : 32;
        w.warps[wi] = Warp{lanes == 32 ? 0xffffffffu : (1u << lanes) - 1, 0, 0};
    }
    bool reversed = w.mode == 1 || w.mode == 4;
    for (int i = 0; i < n; i++) w.order[i] = reversed ? n - 1 - i : i;
    w.warp_serial = w.mode == 3 || w.mode == 4;
    w.eager_copies = w.mode == 3;
    w.run_warp = -1;
    w.block_linear = linear;
    w.epoch = 0;
    if (w.mode == 2) shuffle_order(w);
    w.n_alive = n;
    w.n_at_bar = w.n_done = 0;
    w.first_done = -1;
    w.bar_acc = w.bar_result = 0;
    w.cursor = n - 1;
    w.failed = false;
    if (w.smem_size) memset(w.smem, 0xff, w.smem_size);
    g_cur = &w.main;
    Fiber* first = pick_next(w);
    switch_to(&w.main, first);
    g_cur = nullptr;
    if (!w.failed && w.n_alive > 0) describe_deadlock(w);
}

}  // namespace

// ---- the kernel-side entry points ---------------------------------------------------------------------------------

void fault(const char* fmt, ...) {
    char m[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    Worker* w = g_w;
    if (!w || !g_cur || g_cur == &w->main) {
        fprintf(stderr, "rlhf4j emu: %s (outside a kernel)\n", m);
        abort();
    }
    fail_block(*w, g_cur, m);
}

static int barrier(int pred) {
    if (!g_w || !g_cur || g_cur == &g_w->main) fault("__syncthreads outside a kernel");
    Worker& w = *g_w;
    Fiber* f = g_cur;
    f->state = AT_BARRIER;
    w.n_at_bar++;
    w.bar_acc += pred;
    if (w.n_at_bar == w.n_alive) {
        if (w.n_done > 0) {
            Fiber* d = w.fibers[w.first_done].get();
            char m[200];
            snprintf(m, sizeof m, "__syncthreads: thread (%u,%u,%u) has exited, so the barrier is never complete",
                     d->tid.x, d->tid.y, d->tid.z);
            fail_block(w, f, m);
        }
        for (int i = 0; i < w.n; i++) w.fibers[i]->state = RUNNABLE;  // all that are alive wait here
        w.n_at_bar = 0;
        w.bar_result = w.bar_acc;
        w.bar_acc = 0;
        w.epoch++;
        if (w.mode == 2) shuffle_order(w);
        w.cursor = w.n - 1;  // the next phase starts again from the first fiber of the order
        w.run_warp = -1;     // (and, warp-serial, from its warp)
    }
    yield_from(w, f);
    return w.bar_result;
}

void syncthreads() { barrier(0); }
int syncthreads_count(int pred) { return barrier(pred); }

void warp_collective(uint32_t mask, int kind, void* data, CollectiveFn fn) {
    if (!g_w || !g_cur || g_cur == &g_w->main) fault("%s outside a kernel", kind_name(kind));
    Worker& w = *g_w;
    Fiber* f = g_cur;
    uint32_t lane = f->linear % 32, bit = 1u << lane;
    Warp& wp = w.warps[f->linear / 32];
    if (!(mask & bit)) fault("%s: the calling lane %u is not in mask 0x%08x", kind_name(kind), lane, mask);
    uint32_t eff = mask & wp.exist;
    if (eff & wp.done)
        fault("%s: lanes 0x%08x named in mask 0x%08x have exited", kind_name(kind), eff & wp.done, mask);
    f->kind = kind;
    f->mask = eff;
    f->data = data;
    f->fn = fn;
    f->state = AT_WARP;
    wp.arrived |= bit;
    if ((wp.arrived & eff) == eff) {
        void* ptrs[32] = {};
        uint32_t first = f->linear & ~31u;
        for (uint32_t a = eff; a; a &= a - 1) {
            int l = __builtin_ctz(a);
            Fiber* g = w.fibers[first + l].get();
            if (g->kind != kind || g->mask != eff || g->fn != fn) {
                char m[300];
                snprintf(m, sizeof m,
                         "lanes of warp %u disagree at a warp collective: lane %u at %s (mask 0x%08x), lane %d at %s "
                         "(mask 0x%08x)%s",
                         f->linear / 32, lane, kind_name(kind), eff, l, kind_name(g->kind), g->mask,
                         g->kind == kind && g->mask == eff ? " with another operand type or shape" : "");
                fail_block(w, f, m);
            }
            ptrs[l] = g->data;
        }
        wp.arrived &= ~eff;
        fn(ptrs, eff);
        for (uint32_t a = eff; a; a &= a - 1) w.fibers[first + __builtin_ctz(a)]->state = RUNNABLE;
    }
    yield_from(w, f);
}

unsigned lane_id() { return g_cur->linear % 32; }
uint32_t existing_lanes() { return g_w->warps[g_cur->linear / 32].exist; }
uint32_t active_mask() {
    const Warp& wp = g_w->warps[g_cur->linear / 32];
    return wp.exist & ~wp.done;
}
void* dynamic_smem() { return g_w->smem; }
size_t dynamic_smem_size() { return g_w->smem_size; }
int schedule() { return g_mode.load(std::memory_order_relaxed); }

void cp_async(void* smem, const void* gmem, int bytes, bool zfill) {
    if (!g_w || !g_cur || g_cur == &g_w->main) fault("cp.async outside a kernel");
    Fiber* f = g_cur;
    if (((uintptr_t)smem % bytes) || (!zfill && (uintptr_t)gmem % bytes))
        fault("cp.async of %d bytes: addresses %p (shared) and %p (global) must be %d-byte aligned", bytes, smem,
              gmem, bytes);
    if (g_w->eager_copies) {  // schedule 3: the earliest a copy can land; other warps may see it before any wait
        if (zfill) memset(smem, 0, bytes);
        else memcpy(smem, gmem, bytes);
        return;
    }
    f->copies.push_back(Copy{smem, zfill ? nullptr : gmem, f->committed, (uint32_t)bytes});
}
void cp_async_commit() {
    if (!g_w || !g_cur || g_cur == &g_w->main) fault("cp.async.commit_group outside a kernel");
    g_cur->committed++;
}
void cp_async_wait(int n) {
    if (!g_w || !g_cur || g_cur == &g_w->main) fault("cp.async.wait_group outside a kernel");
    Fiber* f = g_cur;
    if (f->committed < (uint32_t)n) return;
    uint32_t limit = f->committed - (uint32_t)n;  // groups below this one must be complete
    size_t keep = 0;
    for (size_t i = 0; i < f->copies.size(); i++) {
        Copy& c = f->copies[i];
        if (c.group < limit) {
            if (c.src) memcpy(c.dst, c.src, c.bytes);
            else memset(c.dst, 0, c.bytes);
        } else {
            f->copies[keep++] = c;
        }
    }
    f->copies.resize(keep);
}

int launch(dim3 grid, dim3 block, size_t smem, void (*body)(void*), void* ctx) {
    if (g_cur) fault("a kernel launch from inside a kernel");
    uint64_t nblocks = (uint64_t)grid.x * grid.y * grid.z;
    int nthreads = (int)(block.x * block.y * block.z);
    int mode = g_mode.load(std::memory_order_relaxed);
    uint64_t seed = g_seed.load(std::memory_order_relaxed);
    LaunchShared shared;
    auto run = [&](uint64_t i) {
        if (shared.failed.load(std::memory_order_relaxed)) return;
        if (!t_worker) t_worker = std::make_unique<Worker>();
        Worker& w = *t_worker;
        g_w = &w;
        ensure_fibers(w, nthreads);
        w.n = nthreads;
        w.body = body;
        w.body_ctx = ctx;
        w.mode = mode;
        w.seed = seed;
        ensure_smem(w, smem);
        gridDim = uint3{grid.x, grid.y, grid.z};
        blockDim = uint3{block.x, block.y, block.z};
        run_block(w, mode == 1 || mode == 4 ? nblocks - 1 - i : i, grid, block);
        if (w.failed) {
            std::lock_guard<std::mutex> lock(shared.mu);
            if (!shared.failed.load()) {
                shared.msg = w.msg;
                shared.failed.store(true);
            }
        }
    };
    if (nblocks == 1 || omp_get_max_threads() == 1 || omp_in_parallel()) {
        for (uint64_t i = 0; i < nblocks; i++) run(i);
    } else {
#pragma omp parallel for schedule(dynamic, 1)
        for (int64_t i = 0; i < (int64_t)nblocks; i++) run((uint64_t)i);
    }
    if (shared.failed.load()) {
        t_error_detail = "unspecified launch failure (emulated kernel fault: " + shared.msg + ")";
        if (!g_quiet.load()) fprintf(stderr, "rlhf4j emu: kernel fault: %s\n", shared.msg.c_str());
        return cudaErrorLaunchFailure;
    }
    return cudaSuccess;
}

void set_quiet(bool q) { g_quiet.store(q); }

}  // namespace rlhf4j_emu

// ---- exported schedule hooks --------------------------------------------------------------------------------------

RLHF4J_EMU_EXPORT void rlhf4j_emu_set_schedule(int32_t mode, uint64_t seed) {
    rlhf4j_emu::g_mode.store(mode < 0 || mode > 4 ? 0 : mode);
    rlhf4j_emu::g_seed.store(seed);
}
RLHF4J_EMU_EXPORT int32_t rlhf4j_emu_get_schedule(void) { return rlhf4j_emu::g_mode.load(); }

namespace {
struct EnvSchedule {  // RLHF4J_EMU_SCHEDULE=mode[:seed] sets the initial schedule (for debugging a kernel by hand)
    EnvSchedule() {
        if (const char* e = getenv("RLHF4J_EMU_SCHEDULE")) {
            char* end = nullptr;
            long m = strtol(e, &end, 10);
            uint64_t s = (end && *end == ':') ? strtoull(end + 1, nullptr, 10) : 0;
            rlhf4j_emu_set_schedule((int32_t)m, s);
        }
        if (getenv("RLHF4J_EMU_QUIET")) rlhf4j_emu::g_quiet.store(true);
    }
} env_schedule;
}  // namespace

// ---- emulated device memory -----------------------------------------------------------------------------------------
//
// Every allocation gets its own mapping, its end (rounded up to 256 bytes, the alignment cudaMalloc guarantees) placed
// right against a PROT_NONE page: an access past the end faults at once. The 0-255 bytes of slack between the
// requested end and the guard are checked when the allocation is freed. Fresh memory is all 0xff (NaN in f32 and bf16).

namespace {
struct Alloc {
    char* base;
    size_t map_len;
    size_t bytes;
};
std::mutex g_alloc_mu;
std::map<uintptr_t, Alloc> g_allocs;
size_t g_alloc_bytes = 0;

cudaError_t set_error(cudaError_t e) {
    if (e != cudaSuccess) rlhf4j_emu::t_last_error = e;
    return e;
}

bool slack_intact(const Alloc& a, const char* p) {
    size_t slack = rlhf4j_emu::round_up(a.bytes, 256) - a.bytes;
    for (size_t i = 0; i < slack; i++)
        if ((unsigned char)p[a.bytes + i] != 0xff) return false;
    return true;
}
}  // namespace

cudaError_t cudaMalloc(void** p, size_t bytes) {
    using rlhf4j_emu::kPage;
    using rlhf4j_emu::round_up;
    if (!p) return set_error(cudaErrorInvalidValue);
    if (bytes == 0) {
        *p = nullptr;
        return cudaSuccess;
    }
    size_t body = round_up(bytes, 256), map_len = round_up(body, kPage) + kPage;
    void* m = mmap(nullptr, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) return set_error(cudaErrorMemoryAllocation);
    char* base = static_cast<char*>(m);
    mprotect(base + map_len - kPage, kPage, PROT_NONE);
    char* ptr = base + map_len - kPage - body;
    memset(ptr, 0xff, body);
    {
        std::lock_guard<std::mutex> lock(g_alloc_mu);
        g_allocs[(uintptr_t)ptr] = Alloc{base, map_len, bytes};
        g_alloc_bytes += bytes;
    }
    *p = ptr;
    return cudaSuccess;
}

cudaError_t cudaFree(void* p) {
    if (!p) return cudaSuccess;
    Alloc a;
    {
        std::lock_guard<std::mutex> lock(g_alloc_mu);
        auto it = g_allocs.find((uintptr_t)p);
        if (it == g_allocs.end()) return set_error(cudaErrorInvalidValue);
        a = it->second;
        g_allocs.erase(it);
        g_alloc_bytes -= a.bytes;
    }
    bool ok = slack_intact(a, static_cast<char*>(p));
    munmap(a.base, a.map_len);
    if (!ok) {
        if (!rlhf4j_emu::g_quiet.load())
            fprintf(stderr, "rlhf4j emu: cudaFree(%p): something wrote past the end of this %zu-byte allocation\n", p,
                    a.bytes);
        return set_error(cudaErrorIllegalAddress);
    }
    return cudaSuccess;
}

cudaError_t cudaMallocAsync(void** p, size_t bytes, cudaStream_t) { return cudaMalloc(p, bytes); }
cudaError_t cudaFreeAsync(void* p, cudaStream_t) { return cudaFree(p); }
cudaError_t cudaMallocHost(void** p, size_t bytes) {
    if (!p) return set_error(cudaErrorInvalidValue);
    *p = aligned_alloc(4096, rlhf4j_emu::round_up(bytes ? bytes : 1, 4096));
    return *p ? cudaSuccess : set_error(cudaErrorMemoryAllocation);
}
cudaError_t cudaHostAlloc(void** p, size_t bytes, unsigned) { return cudaMallocHost(p, bytes); }
cudaError_t cudaFreeHost(void* p) {
    free(p);
    return cudaSuccess;
}
cudaError_t cudaHostRegister(void*, size_t, unsigned) { return cudaSuccess; }
cudaError_t cudaHostUnregister(void*) { return cudaSuccess; }

cudaError_t cudaMemcpy(void* dst, const void* src, size_t n, cudaMemcpyKind kind) {
    if ((int)kind < 0 || (int)kind > 4) return set_error(cudaErrorInvalidMemcpyDirection);
    if (n && (!dst || !src)) return set_error(cudaErrorInvalidValue);
    if (n) memmove(dst, src, n);
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t n, cudaMemcpyKind kind, cudaStream_t) {
    return cudaMemcpy(dst, src, n, kind);
}
cudaError_t cudaMemcpy2D(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                         cudaMemcpyKind kind) {
    if (width > dpitch || width > spitch) return set_error(cudaErrorInvalidPitchValue);
    for (size_t r = 0; r < height; r++) {
        cudaError_t e = cudaMemcpy(static_cast<char*>(dst) + r * dpitch, static_cast<const char*>(src) + r * spitch,
                                   width, kind);
        if (e) return e;
    }
    return cudaSuccess;
}
cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t) {
    return cudaMemcpy2D(dst, dpitch, src, spitch, width, height, kind);
}
cudaError_t cudaMemset(void* p, int value, size_t n) {
    if (n && !p) return set_error(cudaErrorInvalidValue);
    if (n) memset(p, value, n);
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* p, int value, size_t n, cudaStream_t) { return cudaMemset(p, value, n); }
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t total = (size_t)sysconf(_SC_PHYS_PAGES) * page, avail = (size_t)sysconf(_SC_AVPHYS_PAGES) * page;
    if (free_bytes) *free_bytes = avail;
    if (total_bytes) *total_bytes = total;
    return cudaSuccess;
}

// ---- streams and events: the work is done when a call returns, so they only keep time ---------------------------
struct CUstream_st {
    unsigned flags;
};
struct CUevent_st {
    unsigned flags;
    bool recorded;
    std::chrono::steady_clock::time_point t;
};
cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, 0); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags) {
    if (!s) return set_error(cudaErrorInvalidValue);
    *s = new CUstream_st{flags};
    return cudaSuccess;
}
cudaError_t cudaStreamCreateWithPriority(cudaStream_t* s, unsigned flags, int) {
    return cudaStreamCreateWithFlags(s, flags);
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
    if (s == cudaStreamLegacy || s == cudaStreamPerThread) return set_error(cudaErrorInvalidResourceHandle);
    delete s;
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaStreamQuery(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t e, unsigned) {
    return e ? cudaSuccess : set_error(cudaErrorInvalidResourceHandle);
}
cudaError_t cudaDeviceGetStreamPriorityRange(int* least, int* greatest) {
    if (least) *least = 0;
    if (greatest) *greatest = -5;
    return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t* e) { return cudaEventCreateWithFlags(e, 0); }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned flags) {
    if (!e) return set_error(cudaErrorInvalidValue);
    *e = new CUevent_st{flags, false, {}};
    return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
    if (!e) return set_error(cudaErrorInvalidResourceHandle);
    delete e;
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) {
    if (!e) return set_error(cudaErrorInvalidResourceHandle);
    e->recorded = true;
    e->t = std::chrono::steady_clock::now();
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) { return e ? cudaSuccess : set_error(cudaErrorInvalidResourceHandle); }
cudaError_t cudaEventQuery(cudaEvent_t e) { return e ? cudaSuccess : set_error(cudaErrorInvalidResourceHandle); }
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
    if (!ms || !a || !b) return set_error(cudaErrorInvalidValue);
    if (!a->recorded || !b->recorded) return set_error(cudaErrorInvalidResourceHandle);
    if ((a->flags | b->flags) & cudaEventDisableTiming) return set_error(cudaErrorInvalidResourceHandle);
    *ms = std::chrono::duration<float, std::milli>(b->t - a->t).count();
    return cudaSuccess;
}

// ---- the device: one, shaped like an H100 SXM (sm_90) so that host code picks the same configurations -------------
namespace {
__thread int t_device = 0;
}
cudaError_t cudaGetDeviceCount(int* n) {
    if (!n) return set_error(cudaErrorInvalidValue);
    *n = 1;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int d) {
    if (d != 0) return set_error(cudaErrorInvalidDevice);
    t_device = d;
    return cudaSuccess;
}
cudaError_t cudaGetDevice(int* d) {
    if (!d) return set_error(cudaErrorInvalidValue);
    *d = t_device;
    return cudaSuccess;
}
cudaError_t cudaSetDeviceFlags(unsigned) { return cudaSuccess; }
cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
cudaError_t cudaDeviceReset() { return cudaSuccess; }
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int d) {
    if (!p) return set_error(cudaErrorInvalidValue);
    if (d != 0) return set_error(cudaErrorInvalidDevice);
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "rlhf4j emulated device (CPU, shaped like an H100)");
    size_t free_b, total_b;
    cudaMemGetInfo(&free_b, &total_b);
    p->totalGlobalMem = total_b;
    p->sharedMemPerBlock = 48 * 1024;
    p->regsPerBlock = 65536;
    p->warpSize = 32;
    p->memPitch = (size_t)1 << 31;
    p->maxThreadsPerBlock = 1024;
    p->maxThreadsDim[0] = 1024, p->maxThreadsDim[1] = 1024, p->maxThreadsDim[2] = 64;
    p->maxGridSize[0] = 2147483647, p->maxGridSize[1] = 65535, p->maxGridSize[2] = 65535;
    p->totalConstMem = 65536;
    p->major = 9;
    p->minor = 0;
    p->textureAlignment = 512;
    p->multiProcessorCount = 132;
    p->concurrentKernels = 1;
    p->asyncEngineCount = 2;
    p->unifiedAddressing = 1;
    p->memoryBusWidth = 5120;
    p->l2CacheSize = 50 * 1024 * 1024;
    p->maxThreadsPerMultiProcessor = 2048;
    p->sharedMemPerMultiprocessor = 228 * 1024;
    p->regsPerMultiprocessor = 65536;
    p->managedMemory = 1;
    p->sharedMemPerBlockOptin = 227 * 1024;
    p->maxBlocksPerMultiProcessor = 32;
    p->reservedSharedMemPerBlock = 1024;
    p->memoryPoolsSupported = 1;
    return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr attr, int d) {
    if (!v) return set_error(cudaErrorInvalidValue);
    cudaDeviceProp p;
    cudaError_t e = cudaGetDeviceProperties(&p, d);
    if (e) return e;
    switch (attr) {
        case cudaDevAttrMaxThreadsPerBlock: *v = p.maxThreadsPerBlock; break;
        case cudaDevAttrMaxBlockDimX: *v = p.maxThreadsDim[0]; break;
        case cudaDevAttrMaxBlockDimY: *v = p.maxThreadsDim[1]; break;
        case cudaDevAttrMaxBlockDimZ: *v = p.maxThreadsDim[2]; break;
        case cudaDevAttrMaxGridDimX: *v = p.maxGridSize[0]; break;
        case cudaDevAttrMaxGridDimY: *v = p.maxGridSize[1]; break;
        case cudaDevAttrMaxGridDimZ: *v = p.maxGridSize[2]; break;
        case cudaDevAttrMaxSharedMemoryPerBlock: *v = (int)p.sharedMemPerBlock; break;
        case cudaDevAttrTotalConstantMemory: *v = (int)p.totalConstMem; break;
        case cudaDevAttrWarpSize: *v = 32; break;
        case cudaDevAttrMaxRegistersPerBlock: *v = p.regsPerBlock; break;
        case cudaDevAttrClockRate: *v = 1980000; break;
        case cudaDevAttrMultiProcessorCount: *v = p.multiProcessorCount; break;
        case cudaDevAttrConcurrentKernels: *v = 1; break;
        case cudaDevAttrMemoryClockRate: *v = 2619000; break;
        case cudaDevAttrGlobalMemoryBusWidth: *v = p.memoryBusWidth; break;
        case cudaDevAttrL2CacheSize: *v = p.l2CacheSize; break;
        case cudaDevAttrMaxThreadsPerMultiProcessor: *v = p.maxThreadsPerMultiProcessor; break;
        case cudaDevAttrComputeCapabilityMajor: *v = p.major; break;
        case cudaDevAttrComputeCapabilityMinor: *v = p.minor; break;
        case cudaDevAttrMaxSharedMemoryPerMultiprocessor: *v = (int)p.sharedMemPerMultiprocessor; break;
        case cudaDevAttrMaxRegistersPerMultiprocessor: *v = p.regsPerMultiprocessor; break;
        case cudaDevAttrMaxSharedMemoryPerBlockOptin: *v = (int)p.sharedMemPerBlockOptin; break;
        case cudaDevAttrMaxBlocksPerMultiprocessor: *v = p.maxBlocksPerMultiProcessor; break;
        case cudaDevAttrMemoryPoolsSupported: *v = 1; break;
        default: return set_error(cudaErrorInvalidValue);
    }
    return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int* v) {
    if (!v) return set_error(cudaErrorInvalidValue);
    *v = 13000;
    return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int* v) { return cudaDriverGetVersion(v); }
cudaError_t cudaGetLastError() {
    cudaError_t e = rlhf4j_emu::t_last_error;
    rlhf4j_emu::t_last_error = cudaSuccess;
    return e;
}
cudaError_t cudaPeekAtLastError() { return rlhf4j_emu::t_last_error; }
cudaError_t rlhf4j_emu_func_set_attribute(const void* f, cudaFuncAttribute attr, int value) {
    if (!f) return set_error(cudaErrorInvalidDeviceFunction);
    if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize && (value < 0 || value > 227 * 1024))
        return set_error(cudaErrorInvalidValue);
    return cudaSuccess;
}

const char* cudaGetErrorName(cudaError_t e) {
    switch (e) {
#define N(x) \
    case x: return #x;
        N(cudaSuccess) N(cudaErrorInvalidValue) N(cudaErrorMemoryAllocation) N(cudaErrorInitializationError)
        N(cudaErrorCudartUnloading) N(cudaErrorInsufficientDriver) N(cudaErrorMissingConfiguration)
        N(cudaErrorNoKernelImageForDevice)
        N(cudaErrorInvalidConfiguration) N(cudaErrorInvalidPitchValue) N(cudaErrorInvalidSymbol)
        N(cudaErrorInvalidDevicePointer) N(cudaErrorInvalidMemcpyDirection) N(cudaErrorInvalidDeviceFunction)
        N(cudaErrorNoDevice) N(cudaErrorInvalidDevice) N(cudaErrorInvalidResourceHandle) N(cudaErrorNotReady)
        N(cudaErrorHostMemoryAlreadyRegistered)
        N(cudaErrorIllegalAddress) N(cudaErrorLaunchOutOfResources) N(cudaErrorAssert) N(cudaErrorLaunchFailure)
        N(cudaErrorNotPermitted) N(cudaErrorNotSupported) N(cudaErrorUnknown)
#undef N
    }
    return "cudaErrorUnknown";
}

const char* cudaGetErrorString(cudaError_t e) {
    switch (e) {
        case cudaSuccess: return "no error";
        case cudaErrorInvalidValue: return "invalid argument";
        case cudaErrorMemoryAllocation: return "out of memory";
        case cudaErrorInitializationError: return "initialization error";
        case cudaErrorInvalidConfiguration: return "invalid configuration argument";
        case cudaErrorInvalidPitchValue: return "invalid pitch argument";
        case cudaErrorInvalidSymbol: return "invalid device symbol";
        case cudaErrorInvalidDevicePointer: return "invalid device pointer";
        case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
        case cudaErrorCudartUnloading: return "driver shutting down";
        case cudaErrorInsufficientDriver: return "CUDA driver version is insufficient for CUDA runtime version";
        case cudaErrorMissingConfiguration: return "__global__ function call is not configured";
        case cudaErrorNoKernelImageForDevice: return "no kernel image is available for execution on the device";
        case cudaErrorInvalidDeviceFunction: return "invalid device function";
        case cudaErrorNoDevice: return "no CUDA-capable device is detected";
        case cudaErrorInvalidDevice: return "invalid device ordinal";
        case cudaErrorInvalidResourceHandle: return "invalid resource handle";
        case cudaErrorHostMemoryAlreadyRegistered:
            return "part or all of the requested memory range is already mapped";
        case cudaErrorNotReady: return "device not ready";
        case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
        case cudaErrorLaunchOutOfResources: return "too many resources requested for launch";
        case cudaErrorAssert: return "device-side assert triggered";
        case cudaErrorLaunchFailure:
            return rlhf4j_emu::t_error_detail.empty() ? "unspecified launch failure"
                                                      : rlhf4j_emu::t_error_detail.c_str();
        case cudaErrorNotPermitted: return "operation not permitted";
        case cudaErrorNotSupported: return "operation not supported";
        default: return "unknown error";
    }
}
