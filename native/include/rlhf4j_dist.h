/*
 * rlhf4j_dist.h: the C ABI of librlhf4j_dist.so, the communication shim of multi-process training (native/dist/).
 *
 * Two transports behind one set of collectives:
 *  - MPI, on host buffers. The library is built with mpicc against Open MPI (Debian's libopenmpi-dev); a build
 *    without mpicc has no librlhf4j_dist.so at all, and Java then runs single-process only.
 *  - NCCL, on device buffers. libnccl.so.2 and the CUDA driver (libcuda.so.1) are opened at run time with dlopen,
 *    so the library links nothing of CUDA and loads on machines without a GPU; rlhf4j_dist_nccl_init says clearly
 *    when either is missing. NCCL's unique id travels from rank 0 to the others over MPI, so an NCCL job is still
 *    started by an MPI launcher (mpirun, srun).
 * Java binds this header one to one in io.github.rlhf4j.runtime.DistAbi (same order as here).
 *
 * Conventions, which hold for every entry point:
 *  - Every function returns an rlhf4j_status (rlhf4j.h). On failure, rlhf4j_dist_last_error() holds a message for
 *    this thread that names the entry point, the argument or the peer at fault, and MPI's or NCCL's own words.
 *    RLHF4J_ERR_DEVICE means MPI, NCCL or the CUDA driver reported an error; RLHF4J_ERR_UNSUPPORTED a dtype or op the
 *    transport lacks, or NCCL/CUDA not loadable; RLHF4J_ERR_INTERNAL a call before init or after finalize.
 *  - Element types are rlhf4j_dtype codes, plus RLHF4J_DIST_I64. Counts are elements, not bytes.
 *  - Every call is collective over all ranks of the world (except the getters, abort, last_error and
 *    nccl_stream_wait_event): every rank
 *    must make the same calls in the same order with the same counts, dtypes and roots. One thread at a time.
 *  - In place: all_reduce and broadcast take send == recv. reduce_scatter takes recv == send + rank * count (the
 *    rank's own block of its input, NCCL's in-place convention); all_gather takes send == recv + rank * count (the
 *    rank's own block of the output). Other overlaps are refused.
 *  - Reductions: SUM, MAX, MIN. BF16 and F16 are reduced as NCCL does: each pairwise step converts to F32, adds,
 *    and rounds to nearest even, so a sum over N ranks is rounded N - 1 times. I32 and I64 sums wrap.
 *  - Watchdog. A thread started by rlhf4j_dist_init times every collective call (and finalize). A call still
 *    running at the timeout means a peer is lost or stuck, and MPI alone may then wait forever (a launcher that
 *    does not tear the job down when a rank dies, a rank stuck outside the collective). 3 s before the timeout (at
 *    half of it when it is under 6 s) the watchdog asks every peer, over a separate communicator, what it is doing
 *    (a peer that does not answer within 3 s is lost); at the timeout it prints one report naming the call, its
 *    sequence number and each peer that is not in it, and ends the job with MPI_Abort (exit code 124, as
 *    timeout(1)). So the job ends at the timeout, not later. The report goes to stderr, prefixed
 *    "rlhf4j_dist: rank R/N:".
 *  - MPI counts are int: a block (reduce_scatter, all_gather) may hold at most 2^31 - 1 elements; all_reduce and
 *    broadcast are split into pieces of 2^28 elements, so they take any count.
 */
#ifndef RLHF4J_DIST_H
#define RLHF4J_DIST_H

#include <stdint.h>

#include "rlhf4j.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever a signature or a constant below changes; Java refuses a library whose version differs. */
#define RLHF4J_DIST_ABI_VERSION 3

/* A 64-bit integer element, which rlhf4j_dtype lacks (host counters, hashes, token counts). */
#define RLHF4J_DIST_I64 64

typedef enum {
    RLHF4J_DIST_SUM = 0,
    RLHF4J_DIST_MAX = 1,
    RLHF4J_DIST_MIN = 2
} rlhf4j_dist_op;

/* ------------------------------------------------------------------------------------------------------------ */
/* Library and process group                                                                                    */
/* ------------------------------------------------------------------------------------------------------------ */

RLHF4J_API int32_t rlhf4j_dist_abi_version(void);
/* One line: the MPI library's version string (MPI_Get_library_version, first line) and the thread level granted. */
RLHF4J_API const char *rlhf4j_dist_describe(void);
RLHF4J_API const char *rlhf4j_dist_last_error(void);

/* Joins the world: MPI_Init_thread (asking for MPI_THREAD_MULTIPLE, which the watchdog's probes need) unless MPI is
 * already initialised, so it works under mpirun, under srun, and as a singleton started without a launcher (a
 * world of 1). The collectives then run on a duplicate of MPI_COMM_WORLD whose errors are returned, not fatal.
 * timeout_seconds: the watchdog's limit for one call; 0 disables the watchdog; < 0 reads RLHF4J_DIST_TIMEOUT from
 * the environment, else 60. Calling it again after success does nothing; after finalize it fails (MPI cannot be
 * initialised twice in a process). */
RLHF4J_API int32_t rlhf4j_dist_init(double timeout_seconds);
/* The watchdog's limit from now on (0 disables it): raise it around a phase known to keep peers waiting long. */
RLHF4J_API int32_t rlhf4j_dist_set_timeout(double timeout_seconds);
/* This rank in the world, the world's size, this rank among the ranks on its node (OMPI_COMM_WORLD_LOCAL_RANK,
 * MPI_LOCALRANKID or SLURM_LOCALID when the launcher sets one, else its rank in MPI_Comm_split_type(SHARED)), and
 * the number of ranks on its node. */
RLHF4J_API int32_t rlhf4j_dist_rank(int32_t *rank);
RLHF4J_API int32_t rlhf4j_dist_world_size(int32_t *size);
RLHF4J_API int32_t rlhf4j_dist_local_rank(int32_t *local_rank);
RLHF4J_API int32_t rlhf4j_dist_local_size(int32_t *local_size);
/* Prints "rlhf4j_dist: rank R/N: <message>" to stderr and ends every process of the job with exit code `code`
 * (MPI_Abort; _exit when MPI is not initialised). Does not return. Not collective: any one rank may call it. */
RLHF4J_API int32_t rlhf4j_dist_abort(int32_t code, const char *message);
/* Leaves the world (MPI_Finalize, after the NCCL communicator if any is destroyed). Collective; the watchdog
 * still guards it, so a peer that never arrives cannot hang it forever. */
RLHF4J_API int32_t rlhf4j_dist_finalize(void);

/* ------------------------------------------------------------------------------------------------------------ */
/* Collectives on host buffers (MPI)                                                                            */
/* ------------------------------------------------------------------------------------------------------------ */

/* recv[i] = op over ranks of send[i], i < count, on every rank. F32, F64, BF16, F16, I32, I64. */
RLHF4J_API int32_t rlhf4j_dist_all_reduce(const void *send, void *recv, int64_t count, int32_t dtype, int32_t op);
/* recv[i] = op over ranks of send[rank * count + i], i < count: send holds world_size blocks of count elements and
 * this rank gets the reduction of block `rank`. Types and ops as all_reduce. */
RLHF4J_API int32_t rlhf4j_dist_reduce_scatter(const void *send, void *recv, int64_t count, int32_t dtype, int32_t op);
/* recv[r * count + i] = send of rank r [i]: recv holds world_size blocks of count elements. Any dtype. */
RLHF4J_API int32_t rlhf4j_dist_all_gather(const void *send, void *recv, int64_t count, int32_t dtype);
/* buf[i] = buf of rank root [i] on every rank. Any dtype. */
RLHF4J_API int32_t rlhf4j_dist_broadcast(void *buf, int64_t count, int32_t dtype, int32_t root);
RLHF4J_API int32_t rlhf4j_dist_barrier(void);

/* The most nonblocking requests pending at once. */
#define RLHF4J_DIST_MAX_PENDING 16

/* all_gather without waiting (MPI_Iallgather): starts it and sets *request, which rlhf4j_dist_request_wait
 * completes; until then neither buffer may be read or written. ZeRO stage 3 starts the next layer's gather this way
 * before computing the current one. It is a collective call like the others: the start takes its place in the order of calls that
 * every rank keeps, and each rank waits on it later, in any order of its own. Buffers and in-place rule as
 * all_gather. Open MPI moves a nonblocking collective only inside MPI calls: until a request is complete, a thread of
 * the shim tests it (from 20 us apart, backing off to 2 ms) to move it beside the caller's compute (under
 * MPI_THREAD_MULTIPLE; else it moves at the wait). The watchdog times the start and the wait. */
RLHF4J_API int32_t rlhf4j_dist_all_gather_start(const void *send, void *recv, int64_t count, int32_t dtype,
                                                int64_t *request);
/* Completes a request of rlhf4j_dist_all_gather_start; a handle is taken once (waiting again fails, naming it).
 * Finalize completes any request left pending. */
RLHF4J_API int32_t rlhf4j_dist_request_wait(int64_t request);

/* ------------------------------------------------------------------------------------------------------------ */
/* NCCL: collectives on device buffers                                                                          */
/* ------------------------------------------------------------------------------------------------------------ */

/* Opens NCCL and the CUDA driver, makes device `device` (< 0: the local rank) current, and joins an NCCL
 * communicator of the whole world: rank 0 calls ncclGetUniqueId, MPI_Bcast carries the 128-byte id, every rank
 * calls ncclCommInitRank. `library` names libnccl.so.2 or the folder holding it; NULL or "" reads RLHF4J_NCCL (file
 * or folder), else dlopen("libnccl.so.2") searches the loader path. Collective: when NCCL or the device is missing on
 * any rank, every rank fails with a message naming the ranks at fault. Requires rlhf4j_dist_init. */
RLHF4J_API int32_t rlhf4j_dist_nccl_init(const char *library, int32_t device);
/* "NCCL 2.27.3 (/path/libnccl.so.2), device 1", or why NCCL is not initialised. */
RLHF4J_API const char *rlhf4j_dist_nccl_describe(void);
/* The collectives above on device pointers, queued on `stream` (a cudaStream_t; NULL: the stream the shim created
 * at nccl_init). They return once queued; rlhf4j_dist_nccl_synchronize waits. F32, F64, BF16, F16, I32, I64. */
RLHF4J_API int32_t rlhf4j_dist_nccl_all_reduce(const void *send, void *recv, int64_t count, int32_t dtype, int32_t op,
                                               void *stream);
RLHF4J_API int32_t rlhf4j_dist_nccl_reduce_scatter(const void *send, void *recv, int64_t count, int32_t dtype,
                                                   int32_t op, void *stream);
RLHF4J_API int32_t rlhf4j_dist_nccl_all_gather(const void *send, void *recv, int64_t count, int32_t dtype,
                                               void *stream);
RLHF4J_API int32_t rlhf4j_dist_nccl_broadcast(void *buf, int64_t count, int32_t dtype, int32_t root, void *stream);
/* Makes the work queued on `stream` (NULL: the shim's) from now on wait until `event` (a cudaEvent_t recorded on
 * another stream of the device: the backend's rlhf4j_event_native) is passed, without the host waiting: a
 * collective queued next on the shim's stream then runs after the kernels that wrote its buffers, beside the ones
 * queued after them. Not collective. */
RLHF4J_API int32_t rlhf4j_dist_nccl_stream_wait_event(void *stream, void *event);
/* Waits until the work queued on `stream` (NULL: the shim's) is done, polling NCCL's asynchronous error (a peer
 * lost) so that a failure returns instead of hanging; the watchdog guards the wait. */
RLHF4J_API int32_t rlhf4j_dist_nccl_synchronize(void *stream);

#ifdef __cplusplus
}
#endif

#endif /* RLHF4J_DIST_H */
