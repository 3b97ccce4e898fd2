/* Shared test helpers: random tensors, a finite-difference gradient checker, and a fatal-error catcher. */
#ifndef GRADLAB_TESTUTIL_H
#define GRADLAB_TESTUTIL_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gradlab.h"

#ifndef GL_BUILD_DIR /* where the programs are: the Makefile passes build or build/sanitize */
#define GL_BUILD_DIR "build"
#endif

/* runs a shell command (the programs end to end), returns its exit status; its stdout+stderr go to *out (malloc'd) */
static inline int run(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline int run(char **out, const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    if (!strstr(cmd, "2>")) strncat(cmd, " 2>&1", sizeof cmd - strlen(cmd) - 1);
    FILE *p = popen(cmd, "r");
    cr_assert(p, "cannot run %s", cmd);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += got;
        if (n + 1 == cap) buf = realloc(buf, cap *= 2);
    }
    buf[n] = 0;
    int status = pclose(p);
    *out = buf;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* A parameter of the given shape with values uniform in [lo, hi), or with |value| >= gap when gap > 0
 * (keeps relu/abs-like kinks and log/div poles away from the finite-difference step). */
static inline gl_tensor *rand_param(int ndim, const int *shape, uint64_t seed, float lo, float hi, float gap) {
    gl_tensor *p = gl_param(ndim, shape, "test");
    gl_rng r;
    gl_rng_seed(&r, seed);
    for (int64_t i = 0; i < p->numel; i++) {
        float v;
        do v = lo + (hi - lo) * gl_rng_uniform(&r);
        while (gap > 0 && fabsf(v) < gap);
        p->data[i] = v;
    }
    return p;
}

/* sum(y * R) with R a fixed pseudo-random tensor: every element of y gets a distinct weight in the loss, so a
 * gradient landing on the wrong element is caught (plain sum(y) would hide permutations). */
static inline gl_tensor *weighted_sum(gl_tensor *y) {
    gl_tensor *r = gl_new(y->ndim, y->shape);
    gl_rng rng;
    gl_rng_seed(&rng, 977);
    for (int64_t i = 0; i < r->numel; i++) r->data[i] = 0.5f + gl_rng_uniform(&rng);
    return gl_sum_all(gl_mul(y, r));
}

typedef gl_tensor *(*loss_fn)(gl_tensor **in, void *ctx);

/* Compare backward's gradient of every input with central differences of the loss.
 * Tolerance: |analytic - numeric| <= atol + rtol * |numeric|. The forward runs in float32, so the numeric
 * gradient carries the loss's rounding error (about 1e-7 * sum of |terms|) divided by 2h, plus the O(h^2)
 * truncation error of central differences. h = 1e-2 balances the two for the O(1) values used here, giving
 * errors around 1e-3: atol = 1e-2 and rtol = 1e-2 leave margin while a wrong gradient is off by O(1). */
static inline void check_grads(const char *what, loss_fn f, gl_tensor **in, int n_in, void *ctx) {
    const float h = 1e-2f, atol = 1e-2f, rtol = 1e-2f;
    gl_step_reset();
    for (int k = 0; k < n_in; k++) gl_zero_grad(&in[k], 1);
    gl_tensor *loss = f(in, ctx);
    gl_backward(loss);
    for (int k = 0; k < n_in; k++) {
        if (!in[k]->requires_grad) continue;
        float *analytic = malloc((size_t)in[k]->numel * sizeof(float));
        memcpy(analytic, in[k]->grad, (size_t)in[k]->numel * sizeof(float));
        for (int64_t i = 0; i < in[k]->numel; i++) {
            float saved = in[k]->data[i];
            gl_no_grad_begin();
            in[k]->data[i] = saved + h;
            gl_step_reset();
            float up = f(in, ctx)->data[0];
            in[k]->data[i] = saved - h;
            gl_step_reset();
            float down = f(in, ctx)->data[0];
            gl_no_grad_end();
            in[k]->data[i] = saved;
            float numeric = (up - down) / (2 * h);
            float err = fabsf(analytic[i] - numeric);
            cr_assert(err <= atol + rtol * fabsf(numeric),
                      "%s: input %d element %lld: backward gives %.6f, finite differences %.6f", what, k,
                      (long long)i, (double)analytic[i], (double)numeric);
        }
        free(analytic);
    }
    gl_step_reset();
}

/* Run fn in a child process; assert that it exits with status 1 and that its stderr contains every
 * NULL-terminated expected substring. */
static inline void expect_fatal(void (*fn)(void), const char *const *expected) {
    int pipefd[2];
    cr_assert(pipe(pipefd) == 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        dup2(pipefd[1], 2);
        close(pipefd[0]);
        fn();
        _exit(0); /* fn should not return */
    }
    close(pipefd[1]);
    char buf[4096];
    size_t len = 0;
    ssize_t got;
    while ((got = read(pipefd[0], buf + len, sizeof buf - 1 - len)) > 0) len += (size_t)got;
    buf[len] = 0;
    close(pipefd[0]);
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1, "expected exit status 1; stderr was: %s", buf);
    for (int i = 0; expected[i]; i++)
        cr_assert(strstr(buf, expected[i]), "stderr \"%s\" lacks \"%s\"", buf, expected[i]);
}

#endif
