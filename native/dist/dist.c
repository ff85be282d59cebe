/*
 * dist.c: the MPI half of librlhf4j_dist.so (rlhf4j_dist.h): the process group, the collectives on host buffers,
 * abort, and the watchdog.
 *
 * Why a watchdog. When a rank dies, Open MPI's mpirun notices (its daemon waits on the process), prints "mpirun
 * noticed that process rank 1 ... exited on signal 9" and kills the others within a second or two: nothing more is
 * needed there. But a collective is only as safe as the launcher: under `mpirun --enable-recovery`, under srun
 * without --kill-on-bad-exit, or when a peer is alive but never reaches the collective (stuck in Java, or calling a
 * different collective), the survivors spin in MPI forever. So every call is timed; one that outlives the timeout
 * is reported and the job is ended. The report says what each peer is doing, which tells a lost rank (no answer)
 * from a stuck one (answers, but is elsewhere): the peers are asked a few seconds before the limit, and each
 * process's watchdog thread also answers such questions on a communicator of its own (`health`), which it polls
 * every 100 ms with MPI_Test. That needs MPI_THREAD_MULTIPLE; under a lower thread level the watchdog still times
 * and aborts, without asking the peers.
 *
 * BF16 and F16 reductions are user-defined MPI ops over 16-bit words that add in F32 and round to nearest even at
 * every step, which is what NCCL does on the GPU, so the two transports agree bit for bit on two ranks.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "rlhf4j_bits.h"

dist_state g_dist;

/* ---- errors, dtypes -------------------------------------------------------------------------------------------- */

static _Thread_local char last_error[2048];

int32_t dist_fail(int32_t code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return code;
}

RLHF4J_API const char *rlhf4j_dist_last_error(void) { return last_error; }

RLHF4J_API int32_t rlhf4j_dist_abi_version(void) { return RLHF4J_DIST_ABI_VERSION; }

int dist_dtype_size(int32_t dtype) {
    switch (dtype) {
    case RLHF4J_F32: return 4;
    case RLHF4J_BF16: return 2;
    case RLHF4J_F16: return 2;
    case RLHF4J_I32: return 4;
    case RLHF4J_F64: return 8;
    case RLHF4J_DIST_I64: return 8;
    default: return 0;
    }
}

const char *dist_dtype_name(int32_t dtype) {
    switch (dtype) {
    case RLHF4J_F32: return "f32";
    case RLHF4J_BF16: return "bf16";
    case RLHF4J_F16: return "f16";
    case RLHF4J_I32: return "i32";
    case RLHF4J_F64: return "f64";
    case RLHF4J_DIST_I64: return "i64";
    default: return "?";
    }
}

const char *dist_op_name(int32_t op) {
    switch (op) {
    case RLHF4J_DIST_SUM: return "sum";
    case RLHF4J_DIST_MAX: return "max";
    case RLHF4J_DIST_MIN: return "min";
    default: return "?";
    }
}

static const char *const op_names[DIST_OP_COUNT] = {
    "none", "all_reduce", "reduce_scatter", "all_gather", "broadcast", "barrier", "finalize", "nccl_init",
    "nccl_all_reduce", "nccl_reduce_scatter", "nccl_all_gather", "nccl_broadcast", "nccl_synchronize",
    "all_gather_start", "wait",
};

static const char *call_name(int64_t op) { return op >= 0 && op < DIST_OP_COUNT ? op_names[op] : "?"; }

static int32_t mpi_fail(const char *fn, const char *call, int err) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(err, text, &len) != MPI_SUCCESS) snprintf(text, sizeof text, "MPI error %d", err);
    return dist_fail(RLHF4J_ERR_DEVICE, "%s: %s failed on rank %d of %d: %s", fn, call, g_dist.rank, g_dist.size,
                     text);
}

int32_t dist_check_ready(const char *fn) {
    if (g_dist.finalized) return dist_fail(RLHF4J_ERR_INTERNAL, "%s: called after rlhf4j_dist_finalize", fn);
    if (!g_dist.initialized) return dist_fail(RLHF4J_ERR_INTERNAL, "%s: called before rlhf4j_dist_init", fn);
    return RLHF4J_OK;
}

int dist_overlap(const void *a, int64_t an, const void *b, int64_t bn, int64_t allowed_offset) {
    uintptr_t pa = (uintptr_t)a, pb = (uintptr_t)b;
    if (an <= 0 || bn <= 0) return 0;
    if (allowed_offset >= 0 && pa == pb + (uintptr_t)allowed_offset) return 1;
    return pa < pb + (uintptr_t)bn && pb < pa + (uintptr_t)an ? -1 : 0;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- 16-bit float reductions ------------------------------------------------------------------------------------ */

static MPI_Op op16[2][3]; /* [bf16, f16][sum, max, min] */

#define DEFINE_OP16(name, to32, from32, expr)                                                                      \
    static void name(void *in, void *inout, int *len, MPI_Datatype *type) {                                        \
        const uint16_t *x = in;                                                                                    \
        uint16_t *y = inout;                                                                                       \
        for (int i = 0; i < *len; i++) {                                                                           \
            float a = to32(x[i]), b = to32(y[i]);                                                                  \
            y[i] = from32(expr);                                                                                   \
        }                                                                                                          \
    }
/* max/min propagate NaN, as torch.maximum does (fmaxf would drop it). */
DEFINE_OP16(bf16_sum, rl_bf16_to_f32, rl_f32_to_bf16, a + b)
DEFINE_OP16(bf16_max, rl_bf16_to_f32, rl_f32_to_bf16, (a != a || b != b) ? a + b : (a > b ? a : b))
DEFINE_OP16(bf16_min, rl_bf16_to_f32, rl_f32_to_bf16, (a != a || b != b) ? a + b : (a < b ? a : b))
DEFINE_OP16(f16_sum, rl_f16_to_f32, rl_f32_to_f16, a + b)
DEFINE_OP16(f16_max, rl_f16_to_f32, rl_f32_to_f16, (a != a || b != b) ? a + b : (a > b ? a : b))
DEFINE_OP16(f16_min, rl_f16_to_f32, rl_f32_to_f16, (a != a || b != b) ? a + b : (a < b ? a : b))

static MPI_Datatype mpi_type(int32_t dtype) {
    switch (dtype) {
    case RLHF4J_F32: return MPI_FLOAT;
    case RLHF4J_F64: return MPI_DOUBLE;
    case RLHF4J_I32: return MPI_INT32_T;
    case RLHF4J_DIST_I64: return MPI_INT64_T;
    case RLHF4J_BF16:
    case RLHF4J_F16: return MPI_UINT16_T;
    default: return MPI_DATATYPE_NULL;
    }
}

/* The MPI op for a reduction, or MPI_OP_NULL with the last error set. */
static MPI_Op mpi_op(const char *fn, int32_t dtype, int32_t op) {
    if (op < RLHF4J_DIST_SUM || op > RLHF4J_DIST_MIN) {
        dist_fail(RLHF4J_ERR_INVALID_ARGUMENT, "%s: op %d is not a rlhf4j_dist_op (sum 0, max 1, min 2)", fn, op);
        return MPI_OP_NULL;
    }
    if (dtype == RLHF4J_BF16) return op16[0][op];
    if (dtype == RLHF4J_F16) return op16[1][op];
    return op == RLHF4J_DIST_SUM ? MPI_SUM : op == RLHF4J_DIST_MAX ? MPI_MAX : MPI_MIN;
}

static int32_t check_dtype(const char *fn, int32_t dtype) {
    if (dist_dtype_size(dtype) == 0)
        return dist_fail(RLHF4J_ERR_INVALID_ARGUMENT,
                         "%s: dtype %d is not one of f32 0, bf16 1, f16 2, i32 3, f64 4, i64 64", fn, dtype);
    return RLHF4J_OK;
}

/* ---- the watchdog ----------------------------------------------------------------------------------------------- */

enum { TAG_PING = 7001, TAG_PONG = 7002, PONG_LEN = 6 };
#define PROBE_SECONDS 3.0
#define WATCHDOG_EXIT 124

/* What this process is doing, read by the watchdog and sent to peers that ask. Guarded by wd.mu. */
typedef struct {
    int active;
    dist_op_id op;
    int64_t seq; /* calls begun so far; the active call's number */
    int64_t bytes;
    int32_t dtype;
    uint64_t start_ns;
} call_state;

static struct {
    pthread_mutex_t mu;      /* guards cur, timeout_ns, stop */
    pthread_mutex_t mpi_mu;  /* held while the watchdog thread uses MPI; finalize takes it to stop that */
    pthread_cond_t wake;
    pthread_t thread;
    int running;
    int stop;
    int mpi_off;             /* set (under mpi_mu) once finalize begins: no more MPI calls from the thread */
    int can_probe;           /* MPI_THREAD_MULTIPLE granted */
    uint64_t timeout_ns;     /* 0: disabled */
    call_state cur;
    MPI_Comm health;
    MPI_Request ping_req;
    int64_t ping_buf;
    int64_t (*pong_buf)[6];  /* per peer, kept alive while the answer is in flight */
    int64_t probe_tag;       /* numbers the probes, so a late answer to an old one is not taken for news */
    int64_t probe_out;       /* the ping being sent (static storage: its sends are not waited for) */
} wd = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .mpi_mu = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .ping_req = MPI_REQUEST_NULL,
};

/* The requests started and not yet waited for. A handle is the start's serial number, so a stale or foreign handle
 * is refused by name instead of waiting on a slot that another start has taken since. Guarded by pend.mu, which
 * the progress thread below shares. */
enum { SLOT_FREE = 0, SLOT_MOVING, SLOT_DONE, SLOT_WAITED };
static struct {
    pthread_mutex_t mu;
    pthread_cond_t wake;     /* a request to move, or stop */
    MPI_Request req[RLHF4J_DIST_MAX_PENDING];
    int64_t serial[RLHF4J_DIST_MAX_PENDING];
    int state[RLHF4J_DIST_MAX_PENDING];
    int err[RLHF4J_DIST_MAX_PENDING];   /* MPI_Test's result, once SLOT_DONE */
    int64_t next;
    pthread_t thread;
    int running, stop;
} pend = {.mu = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

/* Progress for requests started ahead. Open MPI moves a nonblocking collective only inside MPI calls, and the compute
 * between a start and its wait makes none, so without help the data would move at the wait. While a request is
 * moving (started, not complete, not yet being waited for), this thread tests it (MPI_Test runs the progress engine
 * and completes it), at PROGRESS_MIN_NS and then twice as far apart each time up to PROGRESS_MAX_NS, so that a
 * transfer which takes a few calls gets them early and a long one costs the compute little; a complete request is
 * left for its wait, and with none moving the thread sleeps. A request is touched by one thread at a time: the
 * waiter takes it over (SLOT_WAITED) under the lock. Needs MPI_THREAD_MULTIPLE; without it requests move at their
 * wait. */
#define PROGRESS_MIN_NS 20000
#define PROGRESS_MAX_NS 2000000
static void *progress_main(void *arg) {
    (void)arg;
    long pause = PROGRESS_MIN_NS;
    pthread_mutex_lock(&pend.mu);
    while (!pend.stop) {
        int moving = 0;
        for (int i = 0; i < RLHF4J_DIST_MAX_PENDING; i++) {
            if (pend.state[i] != SLOT_MOVING) continue;
            int flag = 0;
            int err = MPI_Test(&pend.req[i], &flag, MPI_STATUS_IGNORE);
            if (flag || err != MPI_SUCCESS) {
                pend.state[i] = SLOT_DONE;
                pend.err[i] = err;
            } else {
                moving++;
            }
        }
        if (!moving) {
            pause = PROGRESS_MIN_NS;
            pthread_cond_wait(&pend.wake, &pend.mu);
            continue;
        }
        pthread_mutex_unlock(&pend.mu);
        struct timespec ts = {0, pause};
        nanosleep(&ts, NULL);
        pause = pause * 2 > PROGRESS_MAX_NS ? PROGRESS_MAX_NS : pause * 2;
        pthread_mutex_lock(&pend.mu);
    }
    pthread_mutex_unlock(&pend.mu);
    return NULL;
}

static void progress_stop(void) {
    pthread_mutex_lock(&pend.mu);
    pend.stop = 1;
    pthread_cond_signal(&pend.wake);
    int running = pend.running;
    pend.running = 0;
    pthread_mutex_unlock(&pend.mu);
    if (running) pthread_join(pend.thread, NULL);
}

void dist_track_begin(dist_op_id op, int64_t bytes, int32_t dtype) {
    pthread_mutex_lock(&wd.mu);
    wd.cur.active = 1;
    wd.cur.op = op;
    wd.cur.seq++;
    wd.cur.bytes = bytes;
    wd.cur.dtype = dtype;
    wd.cur.start_ns = now_ns();
    pthread_mutex_unlock(&wd.mu);
}

void dist_track_end(void) {
    pthread_mutex_lock(&wd.mu);
    wd.cur.active = 0;
    pthread_mutex_unlock(&wd.mu);
}

static void say(const char *fmt, ...) {
    char line[8192];
    int n = snprintf(line, sizeof line, "rlhf4j_dist: rank %d/%d: ", g_dist.rank, g_dist.size);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", line);
    fflush(stderr);
}

/* Answers any peer that asked what we are doing: {active, op, seq, elapsed ms, bytes, the asker's tag}. Needs
 * mpi_mu. */
static void answer_pings(void) {
    for (;;) {
        int done = 0;
        MPI_Status st;
        if (wd.ping_req == MPI_REQUEST_NULL)
            if (MPI_Irecv(&wd.ping_buf, 1, MPI_INT64_T, MPI_ANY_SOURCE, TAG_PING, wd.health, &wd.ping_req) !=
                MPI_SUCCESS)
                return;
        if (MPI_Test(&wd.ping_req, &done, &st) != MPI_SUCCESS || !done) return;
        int peer = st.MPI_SOURCE;
        if (peer < 0 || peer >= g_dist.size) continue;
        pthread_mutex_lock(&wd.mu);
        int64_t *p = wd.pong_buf[peer];
        p[0] = wd.cur.active;
        p[1] = wd.cur.op;
        p[2] = wd.cur.seq;
        p[3] = wd.cur.active ? (int64_t)((now_ns() - wd.cur.start_ns) / 1000000u) : 0;
        p[4] = wd.cur.bytes;
        p[5] = wd.ping_buf;
        pthread_mutex_unlock(&wd.mu);
        MPI_Request r;
        if (MPI_Isend(p, PONG_LEN, MPI_INT64_T, peer, TAG_PONG, wd.health, &r) == MPI_SUCCESS) MPI_Request_free(&r);
    }
}

/* Asks every peer what it is doing, for up to PROBE_SECONDS, and appends one clause per peer that is not in the
 * same call to `out`. Returns the number of such peers. Needs mpi_mu. The call may still complete and the job go
 * on, so nothing is left posted: unanswered receives are cancelled, and an answer that comes after that (it names
 * an older probe) is skipped by the next probe. */
static int probe_peers(const call_state *mine, char *out, size_t cap) {
    int n = g_dist.size, me = g_dist.rank, missing = 0;
    int64_t(*ans)[PONG_LEN] = calloc((size_t)n, sizeof *ans);
    MPI_Request *rr = calloc((size_t)n, sizeof *rr);
    int *state = calloc((size_t)n, sizeof *state); /* 0 waiting, 1 answered, 2 unreachable */
    size_t len = strlen(out);
    if (!ans || !rr || !state) {
        snprintf(out + len, cap - len, " (could not probe the peers: out of memory)");
        free(ans), free(rr), free(state);
        return 0;
    }
    wd.probe_out = ++wd.probe_tag;
    for (int p = 0; p < n; p++) {
        rr[p] = MPI_REQUEST_NULL;
        if (p == me) continue;
        MPI_Request s;
        if (MPI_Irecv(ans[p], PONG_LEN, MPI_INT64_T, p, TAG_PONG, wd.health, &rr[p]) != MPI_SUCCESS ||
            MPI_Isend(&wd.probe_out, 1, MPI_INT64_T, p, TAG_PING, wd.health, &s) != MPI_SUCCESS) {
            state[p] = 2;
            continue;
        }
        MPI_Request_free(&s);
    }
    uint64_t deadline = now_ns() + (uint64_t)(PROBE_SECONDS * 1e9);
    for (;;) {
        int waiting = 0;
        for (int p = 0; p < n; p++) {
            if (p == me || state[p] != 0) continue;
            int done = 0;
            if (MPI_Test(&rr[p], &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) {
                state[p] = 2;
            } else if (done && ans[p][5] == wd.probe_out) {
                state[p] = 1;
            } else {
                /* not yet, or an answer to an older probe: wait for this one's */
                if (done && MPI_Irecv(ans[p], PONG_LEN, MPI_INT64_T, p, TAG_PONG, wd.health, &rr[p]) != MPI_SUCCESS) {
                    rr[p] = MPI_REQUEST_NULL;
                    state[p] = 2;
                } else {
                    waiting++;
                }
            }
        }
        answer_pings(); /* the peers may be asking us at the same time */
        if (waiting == 0 || now_ns() > deadline) break;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    for (int p = 0; p < n; p++) {
        if (p == me) continue;
        len = strlen(out);
        if (len + 200 > cap) break;
        const char *lead = missing ? ";" : " Not in this call:";
        int64_t *a = ans[p];
        if (state[p] != 1)
            snprintf(out + len, cap - len, "%s rank %d (no answer within %.0f s: lost, dead or unreachable)", lead, p,
                     PROBE_SECONDS);
        else if (a[0] && a[1] == mine->op && a[2] == mine->seq)
            continue; /* waiting in the same call */
        else if (a[0])
            snprintf(out + len, cap - len, "%s rank %d (alive, in %s #%lld for %.1f s)", lead, p, call_name(a[1]),
                     (long long)a[2], (double)a[3] / 1000.0);
        else
            snprintf(out + len, cap - len, "%s rank %d (alive, in no collective since %s #%lld: still computing, or stuck)",
                     lead, p, call_name(a[1]), (long long)a[2]);
        missing++;
    }
    if (missing) snprintf(out + strlen(out), cap - strlen(out), ".");
    for (int p = 0; p < n; p++)
        if (rr[p] != MPI_REQUEST_NULL) {
            MPI_Cancel(&rr[p]);
            MPI_Wait(&rr[p], MPI_STATUS_IGNORE);
        }
    free(ans), free(rr), free(state);
    return missing;
}

/* What the peers said about the call numbered peers_seq, asked before the limit (see watchdog_main). */
static char peers_report[6144];
static int64_t peers_seq = -1;

/* Asks the peers about call `mine` and keeps their answers for the report. Called by the watchdog thread only. */
static void ask_peers(const call_state *mine) {
    peers_report[0] = '\0';
    peers_seq = mine->seq;
    if (mine->op == DIST_OP_FINALIZE || g_dist.size == 1) return;
    if (!wd.can_probe) {
        snprintf(peers_report, sizeof peers_report, " Peers not asked (MPI thread level below MULTIPLE).");
        return;
    }
    pthread_mutex_lock(&wd.mpi_mu);
    if (!wd.mpi_off && probe_peers(mine, peers_report, sizeof peers_report) == 0)
        snprintf(peers_report, sizeof peers_report,
                 " Every peer answered from this same call (a slow or stuck transport).");
    pthread_mutex_unlock(&wd.mpi_mu);
}

static void fire(const call_state *mine, double waited) {
    int finalizing = mine->op == DIST_OP_FINALIZE;
    say("%s #%lld (%lld bytes, %s) has not completed after %.1f s (the limit: RLHF4J_DIST_TIMEOUT or "
        "-Drlhf4j.dist.timeout).%s Aborting the job (exit code %d).", call_name(mine->op), (long long)mine->seq,
        (long long)mine->bytes, dist_dtype_name(mine->dtype), waited, peers_seq == mine->seq ? peers_report : "",
        WATCHDOG_EXIT);
    pthread_mutex_lock(&wd.mpi_mu);
    if (!finalizing && !wd.mpi_off) MPI_Abort(MPI_COMM_WORLD, WATCHDOG_EXIT);
    _exit(WATCHDOG_EXIT);
}

/* The peers are asked PROBE_SECONDS before the limit (at half the limit when it is short), so that the job ends
 * at the limit, not after it: a job whose rank died stops within the limit of the survivors' call. */
static void *watchdog_main(void *arg) {
    (void)arg;
    pthread_mutex_lock(&wd.mu);
    while (!wd.stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 100 * 1000 * 1000;
        if (until.tv_nsec >= 1000000000) until.tv_sec++, until.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&wd.wake, &wd.mu, &until);
        if (wd.stop) break;
        call_state c = wd.cur;
        uint64_t limit = wd.timeout_ns, now = now_ns();
        pthread_mutex_unlock(&wd.mu);

        if (c.active && limit > 0) {
            uint64_t probe = (uint64_t)(PROBE_SECONDS * 1e9);
            uint64_t ask_at = limit > 2 * probe ? limit - probe : limit / 2;
            if (now - c.start_ns > ask_at && peers_seq != c.seq) ask_peers(&c);
            now = now_ns();
            pthread_mutex_lock(&wd.mu);
            int still = wd.cur.active && wd.cur.seq == c.seq;
            pthread_mutex_unlock(&wd.mu);
            if (still && now - c.start_ns > limit) fire(&c, (double)(now - c.start_ns) / 1e9);
        }
        if (wd.can_probe) {
            pthread_mutex_lock(&wd.mpi_mu);
            if (!wd.mpi_off) answer_pings();
            pthread_mutex_unlock(&wd.mpi_mu);
        }
        pthread_mutex_lock(&wd.mu);
    }
    pthread_mutex_unlock(&wd.mu);
    return NULL;
}

static uint64_t timeout_ns_of(double seconds) {
    if (seconds < 0) {
        const char *env = getenv("RLHF4J_DIST_TIMEOUT");
        char *end = NULL;
        double v = env && *env ? strtod(env, &end) : -1;
        seconds = env && *env && end && *end == '\0' && v >= 0 ? v : 60.0;
    }
    return seconds > 0 ? (uint64_t)(seconds * 1e9) : 0;
}

RLHF4J_API int32_t rlhf4j_dist_set_timeout(double timeout_seconds) {
    pthread_mutex_lock(&wd.mu);
    wd.timeout_ns = timeout_ns_of(timeout_seconds);
    pthread_mutex_unlock(&wd.mu);
    return RLHF4J_OK;
}

/* ---- process group ---------------------------------------------------------------------------------------------- */

static char describe_buf[512];

RLHF4J_API const char *rlhf4j_dist_describe(void) {
    char lib[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    if (MPI_Get_library_version(lib, &len) != MPI_SUCCESS) strcpy(lib, "MPI");
    lib[strcspn(lib, ",\n")] = '\0';
    if (!g_dist.initialized) {
        snprintf(describe_buf, sizeof describe_buf, "%s; not initialised", lib);
        return describe_buf;
    }
    const char *level = g_dist.thread_level == MPI_THREAD_MULTIPLE     ? "multiple"
                        : g_dist.thread_level == MPI_THREAD_SERIALIZED ? "serialized"
                        : g_dist.thread_level == MPI_THREAD_FUNNELED   ? "funneled"
                                                                       : "single";
    snprintf(describe_buf, sizeof describe_buf, "%s; thread level %s; rank %d of %d, local %d of %d", lib, level,
             g_dist.rank, g_dist.size, g_dist.local_rank, g_dist.local_size);
    return describe_buf;
}

static int env_int(const char *name, int *out) {
    const char *v = getenv(name);
    char *end = NULL;
    if (!v || !*v) return 0;
    long x = strtol(v, &end, 10);
    if (*end != '\0' || x < 0) return 0;
    *out = (int)x;
    return 1;
}

RLHF4J_API int32_t rlhf4j_dist_init(double timeout_seconds) {
    static const char *fn = "rlhf4j_dist_init";
    if (g_dist.initialized) return RLHF4J_OK;
    int flag = 0;
    MPI_Finalized(&flag);
    if (flag || g_dist.finalized)
        return dist_fail(RLHF4J_ERR_INTERNAL, "%s: MPI was finalized in this process and cannot be initialised again",
                         fn);
    MPI_Initialized(&flag);
    int provided = MPI_THREAD_SINGLE, err;
    if (!flag) {
        err = MPI_Init_thread(NULL, NULL, MPI_THREAD_MULTIPLE, &provided);
        if (err != MPI_SUCCESS) return mpi_fail(fn, "MPI_Init_thread", err);
    } else {
        MPI_Query_thread(&provided);
    }
    g_dist.thread_level = provided;
    MPI_Comm_rank(MPI_COMM_WORLD, &g_dist.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_dist.size);
    if ((err = MPI_Comm_dup(MPI_COMM_WORLD, &g_dist.comm)) != MPI_SUCCESS) return mpi_fail(fn, "MPI_Comm_dup", err);
    MPI_Comm_set_errhandler(g_dist.comm, MPI_ERRORS_RETURN);
    if ((err = MPI_Comm_dup(MPI_COMM_WORLD, &wd.health)) != MPI_SUCCESS) return mpi_fail(fn, "MPI_Comm_dup", err);
    MPI_Comm_set_errhandler(wd.health, MPI_ERRORS_RETURN);

    /* Every rank splits (it is collective), so all take the same path whatever the environment says. */
    MPI_Comm node;
    if ((err = MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_dist.rank, MPI_INFO_NULL, &node)) !=
        MPI_SUCCESS)
        return mpi_fail(fn, "MPI_Comm_split_type", err);
    int node_rank = 0;
    MPI_Comm_rank(node, &node_rank);
    MPI_Comm_size(node, &g_dist.local_size);
    MPI_Comm_free(&node);
    if (!env_int("OMPI_COMM_WORLD_LOCAL_RANK", &g_dist.local_rank) && !env_int("MPI_LOCALRANKID", &g_dist.local_rank) &&
        !env_int("SLURM_LOCALID", &g_dist.local_rank))
        g_dist.local_rank = node_rank;

    MPI_User_function *fns[2][3] = {{bf16_sum, bf16_max, bf16_min}, {f16_sum, f16_max, f16_min}};
    for (int t = 0; t < 2; t++)
        for (int o = 0; o < 3; o++)
            if ((err = MPI_Op_create(fns[t][o], 1, &op16[t][o])) != MPI_SUCCESS) return mpi_fail(fn, "MPI_Op_create", err);

    wd.pong_buf = calloc((size_t)g_dist.size, sizeof *wd.pong_buf);
    if (!wd.pong_buf) return dist_fail(RLHF4J_ERR_OUT_OF_MEMORY, "%s: out of host memory", fn);
    wd.can_probe = provided == MPI_THREAD_MULTIPLE;
    wd.timeout_ns = timeout_ns_of(timeout_seconds);
    wd.stop = 0;
    wd.mpi_off = 0;
    if (pthread_create(&wd.thread, NULL, watchdog_main, NULL) != 0)
        return dist_fail(RLHF4J_ERR_INTERNAL, "%s: cannot start the watchdog thread: %s", fn, strerror(errno));
    wd.running = 1;
    g_dist.initialized = 1;
    return RLHF4J_OK;
}

RLHF4J_API int32_t rlhf4j_dist_rank(int32_t *rank) {
    int32_t st = dist_check_ready("rlhf4j_dist_rank");
    if (st) return st;
    if (!rank) return dist_fail(RLHF4J_ERR_INVALID_ARGUMENT, "rlhf4j_dist_rank: rank is NULL");
    *rank = g_dist.rank;
    return RLHF4J_OK;
}

RLHF4J_API int32_t rlhf4j_dist_world_size(int32_t *size) {
    int32_t st = dist_check_ready("rlhf4j_dist_world_size");
    if (st) return st;
    if (!size) return dist_fail(RLHF4J_ERR_INVALID_ARGUMENT, "rlhf4j_dist_world_size: size is NULL");
    *size = g_dist.size;
    return RLHF4J_OK;
}

RLHF4J_API int32_t rlhf4j_dist_local_rank(int32_t *local_rank) {
    int32_t st = dist_check_ready("rlhf4j_dist_local_rank");
    if (st) return st;
    if (!local_rank) return dist_fail(RLHF4J_ERR_INVALID_ARGUMENT, "rlhf4j_dist_local_rank: local_rank is NULL");
    *local_rank = g_dist.local_rank;
    return RLHF4J_OK;
}

RLHF4J_API int32_t rlhf4j_dist_local_size(int32_t *local_size) {
    int32_t st = dist_check_ready("rlhf4j_dist_local_size");
    if (st) return st;
    if (!local_size) return dist_fail(RLHF4J_ERR_INVALID_ARGUMENT, "rlhf4j_dist_local_size: local_size is NULL");
    *local_size = g_dist.local_size;
    return RLHF4J_OK;
}

RLHF4J_API int32_t rlhf4j_dist_abort(int32_t code, const char *message) {
    say("%s", message && *message ? message : "aborted");
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (init && !fin) MPI_Abort(MPI_COMM_WORLD, code);
    _exit(code);
}

RLHF4J_API int32_t rlhf4j_dist_finalize(void) {
    static const char *fn = "rlhf4j_dist_finalize";
    int32_t st = dist_check_ready(fn);
    if (st) return st;
    st = dist_nccl_finalize();
    if (st) return st;
    /* Stop the watchdog's MPI use (waiting out a probe), then let it time the finalize itself. */
    pthread_mutex_lock(&wd.mpi_mu);
    wd.mpi_off = 1;
    if (wd.ping_req != MPI_REQUEST_NULL) {
        MPI_Cancel(&wd.ping_req);
        MPI_Wait(&wd.ping_req, MPI_STATUS_IGNORE);
    }
    pthread_mutex_unlock(&wd.mpi_mu);
    dist_track_begin(DIST_OP_FINALIZE, 0, RLHF4J_I32);
    progress_stop();
    for (int i = 0; i < RLHF4J_DIST_MAX_PENDING; i++) { /* a request must not outlive its communicator */
        if (pend.state[i] == SLOT_MOVING) MPI_Wait(&pend.req[i], MPI_STATUS_IGNORE);
        pend.state[i] = SLOT_FREE;
        pend.serial[i] = 0;
    }
    MPI_Comm_free(&wd.health);
    MPI_Comm_free(&g_dist.comm);
    for (int t = 0; t < 2; t++)
        for (int o = 0; o < 3; o++)
            MPI_Op_free(&op16[t][o]);
    int err = MPI_Finalize();
    dist_track_end();
    pthread_mutex_lock(&wd.mu);
    wd.stop = 1;
    pthread_cond_signal(&wd.wake);
    pthread_mutex_unlock(&wd.mu);
    if (wd.running) pthread_join(wd.thread, NULL);
    wd.running = 0;
    g_dist.initialized = 0;
    g_dist.finalized = 1;
    if (err != MPI_SUCCESS) return mpi_fail(fn, "MPI_Finalize", err);
    return RLHF4J_OK;
}

/* ---- collectives ------------------------------------------------------------------------------------------------ */

/* all_reduce and broadcast go in pieces of this many elements, under MPI's int counts with room to spare. */
#define PIECE ((int64_t)1 << 28)

static int32_t check_buffers(const char *fn, const void *send, const void *recv, int64_t count) {
    if (count < 0) return dist_fail(RLHF4J_ERR_INVALID_ARGUMENT, "%s: count %lld < 0", fn, (long long)count);
    if (count > 0 && (!send || !recv))
        return dist_fail(RLHF4J_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn, !send ? "send" : "recv");
    return RLHF4J_OK;
}

/* Reduce-scatter as a ring, in pieces of RING_PIECE elements of every block: in step k (0 .. n-2) rank r sends
 * its partial sum of block (r-k-1) mod n to rank r+1, receives rank r-1's partial of block (r-k-2) mod n and adds its
 * own input block to it; after n-1 steps it holds the whole sum of its block r. Each rank sends (n-1)/n of the buffer
 * once, the bandwidth-optimal volume. Open MPI's MPI_Reduce_scatter_block took as long as its all-reduce here (2 ranks,
 * 125M floats: 400 ms; this ring: 125 ms). Two piece buffers of scratch, whatever the size; the input is only read,
 * so recv may be this rank's block of send (the in-place form, without MPI's forbidden aliasing). */
#define RING_PIECE ((int64_t)1 << 20)
/* Below this many elements per rank the all-reduce stays MPI's own (latency, not bandwidth, bounds it). */
#define RING_MIN ((int64_t)1 << 16)

static int ring_reduce_scatter(const void *send, void *recv, int64_t count, int64_t es, MPI_Datatype t, MPI_Op op) {
    int n = g_dist.size, r = g_dist.rank;
    if (n == 1) {
        if (recv != send) memmove(recv, send, (size_t)(count * es));
        return MPI_SUCCESS;
    }
    int64_t piece = count < RING_PIECE ? count : RING_PIECE;
    char *cur = malloc((size_t)(piece > 0 ? piece * es : 1)), *in = malloc((size_t)(piece > 0 ? piece * es : 1));
    if (!cur || !in) {
        free(cur), free(in);
        return -1;
    }
    const char *src = send;
    int right = (r + 1) % n, left = (r + n - 1) % n, err = MPI_SUCCESS;
    for (int64_t at = 0; at < count && err == MPI_SUCCESS; at += piece) {
        int len = (int)(count - at < piece ? count - at : piece);
        size_t bytes = (size_t)len * (size_t)es;
        const char *out = src + ((int64_t)((r + n - 1) % n) * count + at) * es; /* step 0 sends its own input */
        for (int k = 0; k < n - 1 && err == MPI_SUCCESS; k++) {
            int b = (r - k - 2 + 2 * n) % n;
            err = MPI_Sendrecv(out, len, t, right, 0, in, len, t, left, 0, g_dist.comm, MPI_STATUS_IGNORE);
            if (err == MPI_SUCCESS) err = MPI_Reduce_local(src + ((int64_t)b * count + at) * es, in, len, t, op);
            char *swap = cur;
            cur = in, in = swap;
            out = cur;
        }
        if (err == MPI_SUCCESS) memcpy((char *)recv + at * es, cur, bytes); /* the sum of block r */
    }
    free(cur), free(in);
    return err;
}

RLHF4J_API int32_t rlhf4j_dist_all_reduce(const void *send, void *recv, int64_t count, int32_t dtype, int32_t op) {
    static const char *fn = "rlhf4j_dist_all_reduce";
    int32_t st;
    if ((st = dist_check_ready(fn)) || (st = check_dtype(fn, dtype)) || (st = check_buffers(fn, send, recv, count)))
        return st;
    MPI_Op mop = mpi_op(fn, dtype, op);
    if (mop == MPI_OP_NULL) return RLHF4J_ERR_INVALID_ARGUMENT;
    int64_t es = dist_dtype_size(dtype);
    int ov = dist_overlap(send, count * es, recv, count * es, 0);
    if (ov < 0) return dist_fail(RLHF4J_ERR_INVALID_ARGUMENT, "%s: send and recv overlap without being equal", fn);
    dist_track_begin(DIST_OP_ALL_REDUCE, count * es, dtype);
    int err = MPI_SUCCESS;
    int64_t n = g_dist.size, block = count / n;
    if (n > 1 && block >= RING_MIN && block <= INT32_MAX) {
        /* large: a ring reduce-scatter into this rank's block of recv, then an all-gather in place (each rank sends
         * 2 (n-1)/n of the buffer; every block is summed once, on its owner, so every rank gets the same bits) */
        if (!ov) memcpy(recv, send, (size_t)(count * es));
        err = ring_reduce_scatter(recv, (char *)recv + g_dist.rank * block * es, block, es, mpi_type(dtype), mop);
        if (err == MPI_SUCCESS)
            err = MPI_Allgather(MPI_IN_PLACE, (int)block, mpi_type(dtype), recv, (int)block, mpi_type(dtype),
                                g_dist.comm);
        if (err == MPI_SUCCESS && count % n) /* the tail that does not split into n blocks */
            err = MPI_Allreduce(MPI_IN_PLACE, (char *)recv + n * block * es, (int)(count % n), mpi_type(dtype), mop,
                                g_dist.comm);
        dist_track_end();
        if (err == -1)
            return dist_fail(RLHF4J_ERR_OUT_OF_MEMORY, "%s: no host memory for two %lld-byte pieces", fn,
                             (long long)(RING_PIECE * es));
        return err == MPI_SUCCESS ? RLHF4J_OK : mpi_fail(fn, "ring all-reduce (MPI_Sendrecv/MPI_Allgather)", err);
    }
    for (int64_t at = 0; at < count && err == MPI_SUCCESS; at += PIECE) {
        int n = (int)(count - at < PIECE ? count - at : PIECE);
        char *r = (char *)recv + at * es;
        err = MPI_Allreduce(ov ? MPI_IN_PLACE : (const char *)send + at * es, r, n, mpi_type(dtype), mop, g_dist.comm);
    }
    dist_track_end();
    return err == MPI_SUCCESS ? RLHF4J_OK : mpi_fail(fn, "MPI_Allreduce", err);
}

RLHF4J_API int32_t rlhf4j_dist_reduce_scatter(const void *send, void *recv, int64_t count, int32_t dtype, int32_t op) {
    static const char *fn = "rlhf4j_dist_reduce_scatter";
    int32_t st;
    if ((st = dist_check_ready(fn)) || (st = check_dtype(fn, dtype)) || (st = check_buffers(fn, send, recv, count)))
        return st;
    MPI_Op mop = mpi_op(fn, dtype, op);
    if (mop == MPI_OP_NULL) return RLHF4J_ERR_INVALID_ARGUMENT;
    if (count > INT32_MAX)
        return dist_fail(RLHF4J_ERR_UNSUPPORTED, "%s: count %lld per rank exceeds MPI's int counts", fn,
                         (long long)count);
    int64_t es = dist_dtype_size(dtype), block = count * es;
    int ov = dist_overlap(recv, block, send, block * g_dist.size, block * g_dist.rank);
    if (ov < 0)
        return dist_fail(RLHF4J_ERR_INVALID_ARGUMENT,
                         "%s: recv overlaps send without being this rank's block of it (send + %d * count)", fn,
                         g_dist.rank);
    dist_track_begin(DIST_OP_REDUCE_SCATTER, block * g_dist.size, dtype);
    int err = ring_reduce_scatter(send, recv, count, es, mpi_type(dtype), mop);
    dist_track_end();
    if (err == -1)
        return dist_fail(RLHF4J_ERR_OUT_OF_MEMORY, "%s: no host memory for two %lld-byte pieces", fn,
                         (long long)(RING_PIECE * es));
    return err == MPI_SUCCESS ? RLHF4J_OK : mpi_fail(fn, "MPI_Sendrecv/MPI_Reduce_local", err);
}

/* The checks all_gather and all_gather_start share; *in_place tells whether send is this rank's block of recv. */
static int32_t check_all_gather(const char *fn, const void *send, void *recv, int64_t count, int32_t dtype,
                                int *in_place) {
    int32_t st;
    if ((st = dist_check_ready(fn)) || (st = check_dtype(fn, dtype)) || (st = check_buffers(fn, send, recv, count)))
        return st;
    if (count > INT32_MAX)
        return dist_fail(RLHF4J_ERR_UNSUPPORTED, "%s: count %lld per rank exceeds MPI's int counts", fn,
                         (long long)count);
    int64_t block = count * dist_dtype_size(dtype);
    *in_place = dist_overlap(send, block, recv, block * g_dist.size, block * g_dist.rank);
    if (*in_place < 0)
        return dist_fail(RLHF4J_ERR_INVALID_ARGUMENT,
                         "%s: send overlaps recv without being this rank's block of it (recv + %d * count)", fn,
                         g_dist.rank);
    return RLHF4J_OK;
}

RLHF4J_API int32_t rlhf4j_dist_all_gather(const void *send, void *recv, int64_t count, int32_t dtype) {
    static const char *fn = "rlhf4j_dist_all_gather";
    int ov;
    int32_t st = check_all_gather(fn, send, recv, count, dtype, &ov);
    if (st) return st;
    int64_t block = count * dist_dtype_size(dtype);
    MPI_Datatype t = mpi_type(dtype);
    dist_track_begin(DIST_OP_ALL_GATHER, block * g_dist.size, dtype);
    int err = MPI_Allgather(ov ? MPI_IN_PLACE : send, (int)count, t, recv, (int)count, t, g_dist.comm);
    dist_track_end();
    return err == MPI_SUCCESS ? RLHF4J_OK : mpi_fail(fn, "MPI_Allgather", err);
}

/* ---- nonblocking all-gather ------------------------------------------------------------------------------------- */

RLHF4J_API int32_t rlhf4j_dist_all_gather_start(const void *send, void *recv, int64_t count, int32_t dtype,
                                                int64_t *request) {
    static const char *fn = "rlhf4j_dist_all_gather_start";
    if (!request) return dist_fail(RLHF4J_ERR_INVALID_ARGUMENT, "%s: request is NULL", fn);
    *request = 0;
    int ov;
    int32_t st = check_all_gather(fn, send, recv, count, dtype, &ov);
    if (st) return st;
    int slot = 0; /* only this thread frees and fills slots: reading the states unlocked is safe */
    while (slot < RLHF4J_DIST_MAX_PENDING && pend.state[slot] != SLOT_FREE) slot++;
    if (slot == RLHF4J_DIST_MAX_PENDING)
        return dist_fail(RLHF4J_ERR_INVALID_ARGUMENT, "%s: %d requests are pending already (the most at once): wait "
                         "for one first", fn, RLHF4J_DIST_MAX_PENDING);
    int64_t block = count * dist_dtype_size(dtype);
    MPI_Datatype t = mpi_type(dtype);
    dist_track_begin(DIST_OP_ALL_GATHER_START, block * g_dist.size, dtype);
    MPI_Request req;
    int err = MPI_Iallgather(ov ? MPI_IN_PLACE : send, (int)count, t, recv, (int)count, t, g_dist.comm, &req);
    dist_track_end();
    if (err != MPI_SUCCESS) return mpi_fail(fn, "MPI_Iallgather", err);
    pthread_mutex_lock(&pend.mu);
    pend.req[slot] = req;
    pend.serial[slot] = ++pend.next;
    pend.state[slot] = SLOT_MOVING;
    *request = pend.serial[slot];
    if (!pend.running && !pend.stop && g_dist.thread_level == MPI_THREAD_MULTIPLE)
        pend.running = pthread_create(&pend.thread, NULL, progress_main, NULL) == 0;
    pthread_cond_signal(&pend.wake);
    pthread_mutex_unlock(&pend.mu);
    return RLHF4J_OK;
}

RLHF4J_API int32_t rlhf4j_dist_request_wait(int64_t request) {
    static const char *fn = "rlhf4j_dist_request_wait";
    int32_t st = dist_check_ready(fn);
    if (st) return st;
    int slot = 0;
    while (slot < RLHF4J_DIST_MAX_PENDING &&
           (request <= 0 || pend.state[slot] == SLOT_FREE || pend.serial[slot] != request))
        slot++;
    if (slot == RLHF4J_DIST_MAX_PENDING)
        return dist_fail(RLHF4J_ERR_INVALID_ARGUMENT, "%s: request %lld is not pending (waited for already, or never "
                         "started)", fn, (long long)request);
    pthread_mutex_lock(&pend.mu);
    int done = pend.state[slot] == SLOT_DONE, err = pend.err[slot];
    pend.state[slot] = SLOT_WAITED; /* the progress thread leaves it alone from here */
    pthread_mutex_unlock(&pend.mu);
    const char *call = "MPI_Test";
    if (!done) {
        dist_track_begin(DIST_OP_WAIT, 0, RLHF4J_I32);
        err = MPI_Wait(&pend.req[slot], MPI_STATUS_IGNORE);
        dist_track_end();
        call = "MPI_Wait";
    }
    pthread_mutex_lock(&pend.mu);
    pend.state[slot] = SLOT_FREE;
    pend.serial[slot] = 0;
    pthread_mutex_unlock(&pend.mu);
    return err == MPI_SUCCESS ? RLHF4J_OK : mpi_fail(fn, call, err);
}

RLHF4J_API int32_t rlhf4j_dist_broadcast(void *buf, int64_t count, int32_t dtype, int32_t root) {
    static const char *fn = "rlhf4j_dist_broadcast";
    int32_t st;
    if ((st = dist_check_ready(fn)) || (st = check_dtype(fn, dtype)) || (st = check_buffers(fn, buf, buf, count)))
        return st;
    if (root < 0 || root >= g_dist.size)
        return dist_fail(RLHF4J_ERR_INVALID_ARGUMENT, "%s: root %d is not a rank of a world of %d", fn, root,
                         g_dist.size);
    int64_t es = dist_dtype_size(dtype);
    dist_track_begin(DIST_OP_BROADCAST, count * es, dtype);
    int err = MPI_SUCCESS;
    for (int64_t at = 0; at < count && err == MPI_SUCCESS; at += PIECE) {
        int n = (int)(count - at < PIECE ? count - at : PIECE);
        err = MPI_Bcast((char *)buf + at * es, n, mpi_type(dtype), root, g_dist.comm);
    }
    dist_track_end();
    return err == MPI_SUCCESS ? RLHF4J_OK : mpi_fail(fn, "MPI_Bcast", err);
}

RLHF4J_API int32_t rlhf4j_dist_barrier(void) {
    static const char *fn = "rlhf4j_dist_barrier";
    int32_t st = dist_check_ready(fn);
    if (st) return st;
    dist_track_begin(DIST_OP_BARRIER, 0, RLHF4J_I32);
    int err = MPI_Barrier(g_dist.comm);
    dist_track_end();
    return err == MPI_SUCCESS ? RLHF4J_OK : mpi_fail(fn, "MPI_Barrier", err);
}
