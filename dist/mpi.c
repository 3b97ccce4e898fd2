/* The Open MPI engine of core/dist.h, linked into `make MPI=1` builds (build/mpi/train). Errors return to us
 * (MPI_ERRORS_RETURN) so that a failed collective -- a rank that died, a broken connection -- ends the job with a
 * message naming the operation instead of MPI's default abort or a hang. */
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "dist.h"

static bool failed(int rc, const char *what, char *err, size_t n) {
    if (rc == MPI_SUCCESS) return false;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    snprintf(err, n, "%s: %s", what, msg);
    return true;
}

static bool mpi_init(int *argc, char ***argv, int *rank, int *world, char *err, size_t n) {
    if (failed(MPI_Init(argc, argv), "MPI_Init", err, n)) return false;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    return !failed(MPI_Comm_rank(MPI_COMM_WORLD, rank), "MPI_Comm_rank", err, n) &&
           !failed(MPI_Comm_size(MPI_COMM_WORLD, world), "MPI_Comm_size", err, n);
}

static bool mpi_alltoallv(const float *send, const int *counts, const int *displs, float *recv, int mine, char *err,
                          size_t n) {
    int world;
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    int rcounts[world], rdispls[world];
    for (int r = 0; r < world; r++) rcounts[r] = mine, rdispls[r] = r * mine;
    return !failed(MPI_Alltoallv(send, counts, displs, MPI_FLOAT, recv, rcounts, rdispls, MPI_FLOAT, MPI_COMM_WORLD),
                   "MPI_Alltoallv", err, n);
}

static bool mpi_allgatherv(float *buf, const int *counts, const int *displs, char *err, size_t n) {
    return !failed(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, counts, displs, MPI_FLOAT, MPI_COMM_WORLD),
                   "MPI_Allgatherv", err, n);
}

static bool mpi_allreduce_sum(float *buf, int count, char *err, size_t n) {
    return !failed(MPI_Allreduce(MPI_IN_PLACE, buf, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce", err, n);
}

static bool mpi_allreduce_min(int *value, char *err, size_t n) {
    return !failed(MPI_Allreduce(MPI_IN_PLACE, value, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD), "MPI_Allreduce", err, n);
}

static bool mpi_broadcast(void *buf, int bytes, char *err, size_t n) {
    return !failed(MPI_Bcast(buf, bytes, MPI_BYTE, 0, MPI_COMM_WORLD), "MPI_Bcast", err, n);
}

static void mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

static void mpi_finalize(void) { MPI_Finalize(); }

const gl_dist_engine gl_dist_mpi = {
    .name = "Open MPI",
    .init = mpi_init,
    .alltoallv = mpi_alltoallv,
    .allgatherv = mpi_allgatherv,
    .allreduce_sum = mpi_allreduce_sum,
    .allreduce_min = mpi_allreduce_min,
    .broadcast = mpi_broadcast,
    .abort = mpi_abort,
    .finalize = mpi_finalize,
};
