/* The NCCL engine of core/dist.h (`make CUDA=1 NCCL=1`): collectives on device buffers, so a CUDA run's gradients
 * never leave the GPU. The same interface as dist/mpi.c and the same rank-order additions (core/dist.c), so the
 * engine-independent part is what test-dist checks under MPI on CPU tensors; NCCL itself needs two GPUs to run.
 *
 * Start-up: the ranks share NCCL's unique id -- through MPI when this build links dist/mpi.c too and the job was
 * launched by mpirun, otherwise through `--dist-init file:PATH` or `--dist-init tcp:HOST:PORT` with `--rank R
 * --world-size N` (consumed here, before train reads its flags). Each rank takes GPU rank % device count. */
#include <cuda_runtime.h>
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"

extern const gl_dist_engine gl_dist_mpi __attribute__((weak));

static ncclComm_t comm;
static int world_size;

static bool nccl_failed(ncclResult_t rc, const char *what, char *err, size_t n) {
    if (rc == ncclSuccess) return false;
    snprintf(err, n, "%s: %s", what, ncclGetErrorString(rc));
    return true;
}

static bool synced(const char *what, char *err, size_t n) {
    cudaError_t e = cudaStreamSynchronize(0);
    if (e == cudaSuccess) return true;
    snprintf(err, n, "%s: %s", what, cudaGetErrorString(e));
    return false;
}

/* removes argv[i] and argv[i + 1] */
static void drop_two(int *argc, char **argv, int i) {
    for (int k = i; k + 2 <= *argc; k++) argv[k] = argv[k + 2];
    *argc -= 2;
}

static bool parse_int(const char *s, int lo, int hi, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < lo || v > hi) return false;
    *out = (int)v;
    return true;
}

static bool nccl_init(int *argc, char ***argv, int *rank, int *world, char *err, size_t n) {
    const char *spec = NULL;
    int r = -1, w = -1;
    char **av = *argv;
    for (int i = 1; i + 1 < *argc;) {
        if (!strcmp(av[i], "--dist-init")) spec = av[i + 1], drop_two(argc, av, i);
        else if (!strcmp(av[i], "--rank")) {
            if (!parse_int(av[i + 1], 0, 1 << 20, &r)) return snprintf(err, n, "--rank: '%s'", av[i + 1]), false;
            drop_two(argc, av, i);
        } else if (!strcmp(av[i], "--world-size")) {
            if (!parse_int(av[i + 1], 1, 1 << 20, &w)) return snprintf(err, n, "--world-size: '%s'", av[i + 1]), false;
            drop_two(argc, av, i);
        } else i++;
    }
    ncclUniqueId id;
    if (!spec && &gl_dist_mpi) { /* under mpirun: MPI starts, ranks from it, the id by broadcast */
        if (!gl_dist_mpi.init(argc, argv, &r, &w, err, n)) return false;
        if (r == 0 && nccl_failed(ncclGetUniqueId(&id), "ncclGetUniqueId", err, n)) return false;
        if (!gl_dist_mpi.broadcast(&id, (int)sizeof id, err, n)) return false;
    } else {
        if (!spec) return snprintf(err, n, "give --dist-init file:PATH or tcp:HOST:PORT with --rank and --world-size "
                                           "(or launch with mpirun in a build that links MPI)"), false;
        if (r < 0 || w < 1 || r >= w) return snprintf(err, n, "--dist-init needs --rank R and --world-size N, R < N"), false;
        if (r == 0 && nccl_failed(ncclGetUniqueId(&id), "ncclGetUniqueId", err, n)) return false;
        if (!gl_dist_rendezvous(spec, r, w, &id, sizeof id, 120.0, err, n)) return false;
    }
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices < 1) return snprintf(err, n, "no CUDA device"), false;
    if (cudaSetDevice(r % devices) != cudaSuccess) return snprintf(err, n, "cannot use GPU %d", r % devices), false;
    if (nccl_failed(ncclCommInitRank(&comm, w, id, r), "ncclCommInitRank", err, n)) return false;
    *rank = r, *world = w, world_size = w;
    return true;
}

static bool nccl_alltoallv(const float *send, const int *counts, const int *displs, float *recv, int mine, char *err,
                           size_t n) {
    if (nccl_failed(ncclGroupStart(), "ncclGroupStart", err, n)) return false;
    for (int r = 0; r < world_size; r++) {
        if (nccl_failed(ncclSend(send + displs[r], (size_t)counts[r], ncclFloat, r, comm, 0), "ncclSend", err, n) ||
            nccl_failed(ncclRecv(recv + (size_t)r * mine, (size_t)mine, ncclFloat, r, comm, 0), "ncclRecv", err, n))
            return ncclGroupEnd(), false;
    }
    return !nccl_failed(ncclGroupEnd(), "ncclGroupEnd", err, n) && synced("the gradient exchange", err, n);
}

static bool nccl_allgatherv(float *buf, const int *counts, const int *displs, char *err, size_t n) {
    if (nccl_failed(ncclGroupStart(), "ncclGroupStart", err, n)) return false;
    for (int r = 0; r < world_size; r++)
        if (nccl_failed(ncclBroadcast(buf + displs[r], buf + displs[r], (size_t)counts[r], ncclFloat, r, comm, 0),
                        "ncclBroadcast", err, n))
            return ncclGroupEnd(), false;
    return !nccl_failed(ncclGroupEnd(), "ncclGroupEnd", err, n) && synced("the gradient gather", err, n);
}

static bool nccl_allreduce_sum(float *buf, int count, char *err, size_t n) {
    return !nccl_failed(ncclAllReduce(buf, buf, (size_t)count, ncclFloat, ncclSum, comm, 0), "ncclAllReduce", err, n) &&
           synced("ncclAllReduce", err, n);
}

static bool nccl_allreduce_min(int *value, char *err, size_t n) {
    return !nccl_failed(ncclAllReduce(value, value, 1, ncclInt32, ncclMin, comm, 0), "ncclAllReduce", err, n) &&
           synced("ncclAllReduce", err, n);
}

static bool nccl_broadcast(void *buf, int bytes, char *err, size_t n) {
    return !nccl_failed(ncclBroadcast(buf, buf, (size_t)bytes, ncclChar, 0, comm, 0), "ncclBroadcast", err, n) &&
           synced("ncclBroadcast", err, n);
}

static void nccl_abort(int code) {
    ncclCommAbort(comm);
    if (&gl_dist_mpi) gl_dist_mpi.abort(code); /* under mpirun: the other ranks too */
    exit(code);
}

static void nccl_finalize(void) {
    ncclCommDestroy(comm);
    if (&gl_dist_mpi) gl_dist_mpi.finalize();
}

const gl_dist_engine gl_dist_nccl = {
    .name = "NCCL",
    .init = nccl_init,
    .device_memory = true,
    .alltoallv = nccl_alltoallv,
    .allgatherv = nccl_allgatherv,
    .allreduce_sum = nccl_allreduce_sum,
    .allreduce_min = nccl_allreduce_min,
    .broadcast = nccl_broadcast,
    .abort = nccl_abort,
    .finalize = nccl_finalize,
};
