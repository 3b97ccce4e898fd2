/* Helpers shared by the benchmarks: a monotonic clock, medians, the peer process and the figures file. */
#ifndef GRADLAB_BENCH_UTIL_H
#define GRADLAB_BENCH_UTIL_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "json.h"

static inline double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static inline int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* median of v[0..n) (v is left untouched) */
static inline double bench_median(const double *v, int n) {
    double *c = malloc((size_t)n * sizeof *c);
    memcpy(c, v, (size_t)n * sizeof *c);
    qsort(c, (size_t)n, sizeof *c, bench_cmp_double);
    double m = n % 2 ? c[n / 2] : 0.5 * (c[n / 2 - 1] + c[n / 2]);
    free(c);
    return m;
}

/* A peer benchmark running as a child process that reads one command per line and answers one line; its first
 * line must start with "ready" (kept in banner, without the "ready " prefix). */
typedef struct {
    pid_t pid;
    FILE *to, *from;
    char banner[512];
} bench_peer;

static inline bool bench_peer_start(bench_peer *p, char *const argv[]) {
    int in[2], out[2];
    if (pipe(in) || pipe(out)) return false;
    if ((p->pid = fork()) == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    p->to = fdopen(in[1], "w");
    p->from = fdopen(out[0], "r");
    char line[512];
    if (!fgets(line, sizeof line, p->from) || strncmp(line, "ready", 5) != 0) {
        fclose(p->to);
        fclose(p->from);
        waitpid(p->pid, NULL, 0);
        return false;
    }
    line[strcspn(line, "\n")] = 0;
    snprintf(p->banner, sizeof p->banner, "%s", line[5] ? line + 6 : "");
    return true;
}

/* sends one command line and reads the one-line answer into line; false if the peer is gone */
static inline bool bench_peer_ask(bench_peer *p, const char *cmd, char *line, int len) {
    fprintf(p->to, "%s\n", cmd);
    fflush(p->to);
    return fgets(line, len, p->from) != NULL;
}

static inline void bench_peer_stop(bench_peer *p) {
    fprintf(p->to, "quit\n");
    fclose(p->to);
    fclose(p->from);
    waitpid(p->pid, NULL, 0);
}

/* The figures file (--json PATH): opened with the top-level object begun and "benchmark": name written; NULL when
 * no path was given, or with a message when it cannot be written (the benchmark still prints its table). */
static inline gl_json_writer *bench_json_open(gl_json_writer *w, const char *path, const char *name) {
    if (!path) return NULL;
    if (!gl_jw_open(w, path)) {
        fprintf(stderr, "%s: cannot write %s\n", name, path);
        return NULL;
    }
    gl_jw_object(w, NULL);
    gl_jw_string(w, "benchmark", name);
    return w;
}

/* closes whatever is still open and commits the file; false with a message */
static inline bool bench_json_close(gl_json_writer *w, const char *path, const char *name) {
    if (!w) return true;
    while (w->depth > 0) gl_jw_end(w);
    if (gl_jw_close(w)) return printf("wrote %s\n", path), true;
    fprintf(stderr, "%s: could not write %s\n", name, path);
    return false;
}

#endif
