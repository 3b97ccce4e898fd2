#include "dist.h"

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "io.h"
#include "op_impl.h"
#include "optim.h"

/* dist/mpi.c and dist/nccl.c define them in `make MPI=1` / `make CUDA=1 NCCL=1` builds; weak, so the default build
 * links without them. NCCL, when linked, is the engine (it uses MPI, if linked too, to start). */
extern const gl_dist_engine gl_dist_mpi __attribute__((weak));
extern const gl_dist_engine gl_dist_nccl __attribute__((weak));

static const gl_dist_engine *engine;
static int rank, world = 1;
static double comm_seconds;
static float *pack, *recv_buf, *dev_pack, *dev_recv; /* reused between steps (host; device for NCCL) */
static size_t pack_cap, recv_cap, dev_pack_cap, dev_recv_cap;

/* where a device-memory engine (NCCL) keeps what it exchanges: the GPU's memory */
static gl_device engine_device(void) { return engine && engine->device_memory ? GL_CUDA : GL_CPU; }

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void gl_dist_init(int *argc, char ***argv) {
    const gl_dist_engine *e = &gl_dist_nccl ? &gl_dist_nccl : &gl_dist_mpi ? &gl_dist_mpi : NULL;
    if (!e) return;
    char err[512];
    if (!e->init(argc, argv, &rank, &world, err, sizeof err)) {
        fprintf(stderr, "gradlab: cannot start %s: %s\n", e->name, err);
        exit(1);
    }
    engine = e;
}

int gl_dist_rank(void) { return rank; }
int gl_dist_world(void) { return world; }
const char *gl_dist_engine_name(void) { return engine ? engine->name : "none"; }
double gl_dist_comm_seconds(void) { return comm_seconds; }

void gl_dist_finalize(void) {
    if (engine) engine->finalize();
    free(pack), free(recv_buf);
    pack = recv_buf = NULL, pack_cap = recv_cap = 0;
    if (dev_pack) gl_buffer_free(engine_device(), dev_pack);
    if (dev_recv) gl_buffer_free(engine_device(), dev_recv);
    dev_pack = dev_recv = NULL, dev_pack_cap = dev_recv_cap = 0;
}

void gl_dist_fail(const char *prog, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (world > 1) fprintf(stderr, "%s (rank %d of %d): ", prog, rank, world);
    else fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (engine && world > 1) engine->abort(code);
    exit(code);
}

static void check(bool ok, const char *what, const char *err) {
    if (!ok) gl_dist_fail("gradlab", 1, "%s failed: %s (another rank stopped or the connection broke)", what, err);
}

static float *grow(float **buf, size_t *cap, size_t n) {
    if (n > *cap) {
        free(*buf);
        *buf = malloc(n * sizeof(float));
        if (!*buf) gl_dist_fail("gradlab", 1, "out of memory for %zu floats of gradients", n);
        *cap = n;
    }
    return *buf;
}

/* rank r owns floats [start[r], start[r] + len[r]) of the flat gradient */
static void slices(size_t total, int *len, int *start) {
    for (int r = 0; r < world; r++) {
        start[r] = (int)(total * (size_t)r / (size_t)world);
        len[r] = (int)(total * (size_t)(r + 1) / (size_t)world) - start[r];
    }
}

/* the device-memory engines' version (NCCL): the same steps and the same additions, on the GPU */
static float *grow_device(float **buf, size_t *cap, size_t n) {
    if (n > *cap) {
        if (*buf) gl_buffer_free(engine_device(), *buf);
        *buf = gl_buffer_alloc(engine_device(), (int64_t)n, "all-reduce");
        *cap = n;
    }
    return *buf;
}

static void mean_grads_device(gl_tensor *const *params, int n, size_t total, const int *len, const int *start) {
    const gl_backend *cu = gl_backend_of(engine_device(), "all-reduce");
    float *g = grow_device(&dev_pack, &dev_pack_cap, total);
    cu->zero(g, total * sizeof(float));
    for (int i = 0, off = 0; i < n; off += (int)params[i]->numel, i++)
        cu->axpy((size_t)params[i]->numel, 1.0f, params[i]->grad, g + off); /* 0 + g */
    int mine = len[rank];
    float *in = grow_device(&dev_recv, &dev_recv_cap, (size_t)mine * (size_t)world + 1);
    char err[512] = "";
    check(engine->alltoallv(g, len, start, in, mine, err, sizeof err), "the gradient exchange", err);
    cu->copy(g + start[rank], in, (size_t)mine * sizeof(float));
    for (int r = 1; r < world; r++) cu->axpy((size_t)mine, 1.0f, in + (size_t)r * mine, g + start[rank]);
    check(engine->allgatherv(g, len, start, err, sizeof err), "the gradient gather", err);
    float scale = (float)(1.0 / world);
    for (int i = 0, off = 0; i < n; off += (int)params[i]->numel, i++) {
        cu->copy(params[i]->grad, g + off, (size_t)params[i]->numel * sizeof(float));
        cu->scale((size_t)params[i]->numel, scale, params[i]->grad);
    }
}

void gl_dist_slice(size_t total, int64_t *lo, int64_t *hi) {
    *lo = (int64_t)(total * (size_t)rank / (size_t)world);
    *hi = (int64_t)(total * (size_t)(rank + 1) / (size_t)world);
}

void gl_dist_gather_slices(float *flat, size_t total) {
    if (world == 1) return;
    double t0 = now();
    int *len = malloc((size_t)world * sizeof(int)), *start = malloc((size_t)world * sizeof(int));
    slices(total, len, start);
    char err[512] = "";
    check(engine->allgatherv(flat, len, start, err, sizeof err), "the gather of slices", err);
    free(len), free(start);
    comm_seconds += now() - t0;
}

void gl_dist_gather_params(gl_tensor *const *params, int n) {
    if (world == 1) return;
    size_t total = gl_grads_count(params, n);
    float *flat = grow(&pack, &pack_cap, total);
    for (int i = 0, off = 0; i < n; off += (int)params[i]->numel, i++) {
        if (params[i]->device != GL_CPU) gl_dist_fail("gradlab", 1, "ZeRO-1 gathers parameters on the CPU only");
        memcpy(flat + off, params[i]->data, (size_t)params[i]->numel * sizeof(float));
    }
    gl_dist_gather_slices(flat, total);
    for (int i = 0, off = 0; i < n; off += (int)params[i]->numel, i++)
        memcpy(params[i]->data, flat + off, (size_t)params[i]->numel * sizeof(float));
}

void gl_dist_mean_grads(gl_tensor *const *params, int n) {
    if (world == 1) return;
    double t0 = now();
    size_t total = gl_grads_count(params, n);
    int *len = malloc((size_t)world * sizeof(int)), *start = malloc((size_t)world * sizeof(int));
    slices(total, len, start);
    if (engine->device_memory) {
        mean_grads_device(params, n, total, len, start);
    } else {
        float *g = grow(&pack, &pack_cap, total);
        memset(g, 0, total * sizeof(float));
        gl_grads_accumulate(params, n, g); /* 0 + g, as one process's first micro-batch */
        int mine = len[rank];
        float *in = grow(&recv_buf, &recv_cap, (size_t)mine * (size_t)world + 1);
        char err[512] = "";
        check(engine->alltoallv(g, len, start, in, mine, err, sizeof err), "the gradient exchange", err);
        float *sum = g + start[rank]; /* my slice, summed in rank order */
        for (int j = 0; j < mine; j++) {
            float s = in[j];
            for (int r = 1; r < world; r++) s += in[(size_t)r * mine + j];
            sum[j] = s;
        }
        check(engine->allgatherv(g, len, start, err, sizeof err), "the gradient gather", err);
        gl_grads_assign(params, n, g, (float)(1.0 / world));
    }
    free(len), free(start);
    comm_seconds += now() - t0;
}

float gl_dist_mean(float mine) {
    if (world == 1) return mine;
    double t0 = now();
    float *all = calloc((size_t)world, sizeof(float));
    all[rank] = mine;
    gl_dist_share_slots(all, world);
    double s = 0;
    for (int r = 0; r < world; r++) s += all[r];
    free(all);
    comm_seconds += now() - t0;
    return (float)(s / world);
}

/* host values through a device buffer for the device-memory engines */
static void *on_engine(void *host, size_t bytes) {
    return engine->device_memory ? gl_arena_copy_in(engine_device(), host, bytes) : host;
}
static void back_from_engine(void *host, void *buf, size_t bytes) {
    if (buf != host) gl_backend_of(engine_device(), "all-reduce")->download(host, buf, bytes);
}

void gl_dist_share_slots(float *slots, int n) {
    if (world == 1) return;
    char err[512] = "";
    float *buf = on_engine(slots, (size_t)n * sizeof(float));
    check(engine->allreduce_sum(buf, n, err, sizeof err), "sharing values between ranks", err);
    back_from_engine(slots, buf, (size_t)n * sizeof(float));
}

bool gl_dist_all(bool ok) {
    if (world == 1) return ok;
    int v = ok, *buf = on_engine(&v, sizeof v);
    char err[512] = "";
    check(engine->allreduce_min(buf, err, sizeof err), "agreeing between ranks", err);
    back_from_engine(&v, buf, sizeof v);
    return v != 0;
}

/* ---- rendezvous without MPI ---- */

static bool rendezvous_file(const char *path, int rank, void *blob, size_t bytes, double timeout_s, char *err, size_t n) {
    if (rank == 0) return gl_write_file_atomic(path, blob, bytes, err, n);
    double t0 = now();
    for (;;) {
        unsigned char *data;
        size_t len;
        char why[256];
        if (access(path, F_OK) == 0 && gl_read_whole_file(path, &data, &len, why, sizeof why)) {
            bool ok = len == bytes;
            if (ok) memcpy(blob, data, bytes);
            free(data);
            if (!ok) return snprintf(err, n, "rendezvous file '%s' holds %zu bytes, not %zu", path, len, bytes), false;
            return true;
        }
        if (now() - t0 > timeout_s)
            return snprintf(err, n, "rendezvous file '%s' did not appear within %.0f s (is rank 0 running?)", path,
                            timeout_s), false;
        usleep(20000);
    }
}

static bool split_host_port(const char *spec, char *host, size_t hn, char *port, size_t pn) {
    const char *colon = strrchr(spec, ':');
    if (!colon || colon == spec || !colon[1] || (size_t)(colon - spec) >= hn || strlen(colon + 1) >= pn) return false;
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = 0;
    snprintf(port, pn, "%s", colon + 1);
    return true;
}

static bool send_all(int fd, const void *p, size_t n) {
    for (size_t done = 0; done < n;) {
        ssize_t k = send(fd, (const char *)p + done, n - done, MSG_NOSIGNAL);
        if (k <= 0) return false;
        done += (size_t)k;
    }
    return true;
}

static bool recv_all(int fd, void *p, size_t n) {
    for (size_t done = 0; done < n;) {
        ssize_t k = recv(fd, (char *)p + done, n - done, 0);
        if (k <= 0) return false;
        done += (size_t)k;
    }
    return true;
}

static bool rendezvous_tcp(const char *spec, int rank, int world, void *blob, size_t bytes, double timeout_s, char *err,
                           size_t n) {
    char host[256], port[32];
    if (!split_host_port(spec, host, sizeof host, port, sizeof port))
        return snprintf(err, n, "--dist-init tcp:HOST:PORT expected, got 'tcp:%s'", spec), false;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = rank == 0 ? AI_PASSIVE : 0};
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0) return snprintf(err, n, "rendezvous address %s:%s: %s", host, port, gai_strerror(rc)), false;
    bool ok = false;
    double t0 = now();
    if (rank == 0) {
        int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol), one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, world) != 0) {
            snprintf(err, n, "cannot listen on %s:%s for the rendezvous: %s", host, port, strerror(errno));
        } else {
            ok = true;
            for (int r = 1; ok && r < world; r++) {
                struct timeval tv = {.tv_sec = (long)timeout_s};
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
                int c = accept(fd, NULL, NULL);
                ok = c >= 0 && send_all(c, blob, bytes);
                if (c >= 0) close(c);
                if (!ok) snprintf(err, n, "rendezvous on %s:%s: %d of %d ranks connected within %.0f s", host, port, r - 1,
                                  world - 1, timeout_s);
            }
        }
        if (fd >= 0) close(fd);
    } else {
        while (!ok) {
            int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
            if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
                ok = recv_all(fd, blob, bytes);
                close(fd);
                if (!ok) {
                    snprintf(err, n, "rendezvous on %s:%s: the connection closed early", host, port);
                    break;
                }
            } else {
                if (fd >= 0) close(fd);
                if (now() - t0 > timeout_s) {
                    snprintf(err, n, "cannot reach rank 0 at %s:%s within %.0f s", host, port, timeout_s);
                    break;
                }
                usleep(50000);
            }
        }
    }
    freeaddrinfo(ai);
    return ok;
}

bool gl_dist_rendezvous(const char *spec, int rank, int world, void *blob, size_t bytes, double timeout_s, char *err,
                        size_t n) {
    if (!strncmp(spec, "file:", 5) && spec[5]) return rendezvous_file(spec + 5, rank, blob, bytes, timeout_s, err, n);
    if (!strncmp(spec, "tcp:", 4)) return rendezvous_tcp(spec + 4, rank, world, blob, bytes, timeout_s, err, n);
    return snprintf(err, n, "--dist-init must be file:PATH or tcp:HOST:PORT, got '%s'", spec), false;
}
