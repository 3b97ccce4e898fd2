/* The engine-independent parts of data-parallel training (core/dist.h): one rank is the identity, the gradient
 * buffer helpers, and the rendezvous that NCCL runs use without MPI (file and TCP, two processes). The collectives
 * themselves run under Open MPI in `make MPI=1 test-dist` (tests/dist.sh). */
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "dist.h"
#include "optim.h"
#include "testutil.h"

Test(dist, one_rank_is_the_identity) {
    cr_assert_eq(gl_dist_world(), 1);
    cr_assert_eq(gl_dist_rank(), 0);
    cr_assert_str_eq(gl_dist_engine_name(), "none");
    gl_tensor *p = rand_param(GL_DIMS(3), 1, -1, 1, 0);
    p->grad[0] = 0.25f, p->grad[1] = -3.0f, p->grad[2] = 7.5f;
    gl_dist_mean_grads(&p, 1);
    cr_assert(p->grad[0] == 0.25f && p->grad[1] == -3.0f && p->grad[2] == 7.5f);
    cr_assert_eq(gl_dist_mean(1.5f), 1.5f);
    cr_assert(gl_dist_all(true) && !gl_dist_all(false));
    gl_param_free(p);
}

/* accumulate then assign: what --grad-accum does with two micro-batches, and the order of the sums */
Test(dist, gradients_accumulate_in_order_and_are_scaled_once) {
    gl_tensor *p[2] = {rand_param(GL_DIMS(2), 1, -1, 1, 0), rand_param(GL_DIMS(1), 2, -1, 1, 0)};
    cr_assert_eq(gl_grads_count(p, 2), 3);
    float sum[3] = {0, 0, 0};
    float first[3] = {1e8f, -0.0f, 0.1f}, second[3] = {1.0f, -0.0f, 0.2f};
    p[0]->grad[0] = first[0], p[0]->grad[1] = first[1], p[1]->grad[0] = first[2];
    gl_grads_accumulate(p, 2, sum);
    p[0]->grad[0] = second[0], p[0]->grad[1] = second[1], p[1]->grad[0] = second[2];
    gl_grads_accumulate(p, 2, sum);
    gl_grads_assign(p, 2, sum, 0.5f);
    cr_assert_eq(p[0]->grad[0], (0.0f + 1e8f + 1.0f) * 0.5f);
    cr_assert_eq(p[1]->grad[0], (0.0f + 0.1f + 0.2f) * 0.5f);
    cr_assert(p[0]->grad[1] == 0.0f && !signbit(p[0]->grad[1]), "0 + -0 + -0 is +0, as on every rank");
    gl_param_free(p[0]), gl_param_free(p[1]);
}

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* rank 0 (this process) and ranks 1..world-1 (children) share 64 bytes through spec */
static void rendezvous_between_processes(const char *spec, int world) {
    unsigned char id[64];
    for (int i = 0; i < 64; i++) id[i] = (unsigned char)(i * 7 + 3);
    pid_t kids[4];
    for (int r = 1; r < world; r++) {
        if ((kids[r] = fork()) == 0) {
            unsigned char got[64] = {0};
            char err[256];
            bool ok = gl_dist_rendezvous(spec, r, world, got, sizeof got, 20.0, err, sizeof err);
            _exit(ok && !memcmp(got, id, 64) ? 0 : 1);
        }
    }
    char err[256];
    cr_assert(gl_dist_rendezvous(spec, 0, world, id, sizeof id, 20.0, err, sizeof err), "%s: %s", spec, err);
    for (int r = 1; r < world; r++) {
        int status;
        cr_assert_eq(waitpid(kids[r], &status, 0), kids[r]);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "rank %d did not receive rank 0's bytes via %s", r, spec);
    }
}

Test(dist, rendezvous_through_a_file_and_tcp) {
    mkdir("out", 0755), mkdir("out/test", 0755);
    char spec[128];
    snprintf(spec, sizeof spec, "file:out/test/rendezvous_%d", (int)getpid());
    remove(spec + 5);
    rendezvous_between_processes(spec, 3);
    remove(spec + 5);
    snprintf(spec, sizeof spec, "tcp:127.0.0.1:%d", free_port());
    rendezvous_between_processes(spec, 3);
}

Test(dist, rendezvous_errors_are_clear) {
    unsigned char id[8] = {0};
    char err[256];
    cr_assert_not(gl_dist_rendezvous("udp:x", 1, 2, id, 8, 1.0, err, sizeof err));
    cr_assert(strstr(err, "must be file:PATH or tcp:HOST:PORT"), "%s", err);
    cr_assert_not(gl_dist_rendezvous("file:out/test/never_written", 1, 2, id, 8, 0.2, err, sizeof err));
    cr_assert(strstr(err, "did not appear within"), "%s", err);
    cr_assert_not(gl_dist_rendezvous("tcp:127.0.0.1:1", 1, 2, id, 8, 0.2, err, sizeof err));
    cr_assert(strstr(err, "cannot reach rank 0 at 127.0.0.1:1"), "%s", err);
    cr_assert_not(gl_dist_rendezvous("tcp:nocolon", 1, 2, id, 8, 0.2, err, sizeof err));
    cr_assert(strstr(err, "tcp:HOST:PORT expected"), "%s", err);
}
