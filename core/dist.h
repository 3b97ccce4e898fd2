/* Data-parallel training across processes: the ranks of one job and the collective operations train needs, over an
 * existing communication engine (Open MPI in a `make MPI=1` build: dist/mpi.c). Without an engine linked (the
 * default build) there is one rank and every operation is the identity.
 *
 * Determinism: gradients are summed in rank order (each rank owns a slice: every rank sends it that slice, the
 * owner adds the N copies in order 0, 1, ..., N-1, then everyone gathers the sums), so every rank gets the same
 * bits, and N ranks of B rows give exactly the bits of one process that accumulates N micro-batches of B rows in
 * order (train --grad-accum N): gl_grads_accumulate's 0 + g0 + g1 + ... */
#ifndef GRADLAB_DIST_H
#define GRADLAB_DIST_H

#include <stdbool.h>
#include <stddef.h>

#include "tensor.h"

/* A communication engine: collectives on float buffers in host memory. Every call reports failure by returning
 * false with a message (a rank that died, a broken connection); dist.c turns that into a clean stop of the job. */
typedef struct gl_dist_engine {
    const char *name;
    bool (*init)(int *argc, char ***argv, int *rank, int *world, char *err, size_t n);
    bool device_memory; /* collectives take device buffers (NCCL): gradients stay on the GPU */
    /* every rank sends counts[r] floats from send + displs[r] to rank r, and receives `mine` floats from each rank
     * r into recv + r * mine */
    bool (*alltoallv)(const float *send, const int *counts, const int *displs, float *recv, int mine, char *err,
                      size_t n);
    /* every rank contributes counts[rank] floats at buf + displs[rank]; afterwards every rank has all of buf */
    bool (*allgatherv)(float *buf, const int *counts, const int *displs, char *err, size_t n);
    bool (*allreduce_sum)(float *buf, int count, char *err, size_t n); /* element-wise sums (order: the engine's) */
    bool (*allreduce_min)(int *value, char *err, size_t n);
    bool (*broadcast)(void *buf, int bytes, char *err, size_t n); /* rank 0's bytes to every rank */
    void (*abort)(int code); /* stops every rank of the job */
    void (*finalize)(void);
} gl_dist_engine;

/* Rendezvous for engines launched without MPI (NCCL with --dist-init): rank 0's `bytes` bytes at blob reach every
 * rank. spec "file:PATH": rank 0 writes PATH atomically, the others wait for it; "tcp:HOST:PORT": rank 0 listens
 * there and sends the bytes to each of the world - 1 others, which connect. Gives up after timeout_s seconds with
 * a message. */
bool gl_dist_rendezvous(const char *spec, int rank, int world, void *blob, size_t bytes, double timeout_s, char *err,
                        size_t n);

/* Starts the engine when one is linked (consumes its command-line arguments); rank 0 of 1 otherwise. */
void gl_dist_init(int *argc, char ***argv);
int gl_dist_rank(void);
int gl_dist_world(void);
const char *gl_dist_engine_name(void); /* "none" without an engine */
void gl_dist_finalize(void);
/* Stops the whole job: prints "PROG (rank R of N): MESSAGE" and aborts every rank (exit(code) with one rank). */
_Noreturn void gl_dist_fail(const char *prog, int code, const char *fmt, ...);

/* The gradients of params replaced by their mean over the ranks (summed in rank order, then multiplied by
 * (float)(1.0 / world)): the same bits on every rank. No-op with one rank. */
void gl_dist_mean_grads(gl_tensor *const *params, int n);
/* ZeRO-1: this rank's slice [*lo, *hi) of a flat vector of `total` floats (the slice whose gradient sum it owns) */
void gl_dist_slice(size_t total, int64_t *lo, int64_t *hi);
/* flat[total]: each rank's slice (gl_dist_slice) of it to every rank (all-gather, exact copies) */
void gl_dist_gather_slices(float *flat, size_t total);
/* the parameters' values after each rank updated its slice: every slice to every rank (all-gather, exact) */
void gl_dist_gather_params(gl_tensor *const *params, int n);

/* the mean over ranks of each rank's value, summed in rank order in double: the same on every rank */
float gl_dist_mean(float mine);
/* slots[n]: each slot filled by exactly one rank (0 elsewhere); afterwards every rank has them all (exact: x + 0) */
void gl_dist_share_slots(float *slots, int n);
/* true on every rank if ok is true on every rank (a failed checkpoint write on rank 0 stops them all) */
bool gl_dist_all(bool ok);
/* seconds spent in collectives since the start (communication time, for the benchmark) */
double gl_dist_comm_seconds(void);

#endif
