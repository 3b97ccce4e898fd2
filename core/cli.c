#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double parse(const char *prog, const char *flag, const char *s, double lo, double hi, bool whole) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || end == s || !(v >= lo && v <= hi) || (whole && v != floor(v))) {
        fprintf(stderr, "%s: %s expects %s in [%g, %g], got '%s'\n", prog, flag, whole ? "an integer" : "a number", lo, hi, s);
        exit(2);
    }
    return v;
}

double gl_flag_number(const char *prog, const char *flag, const char *value, double lo, double hi) {
    return parse(prog, flag, value, lo, hi, false);
}

int gl_flag_int(const char *prog, const char *flag, const char *value, double lo, double hi) {
    return (int)parse(prog, flag, value, lo, hi, true);
}

uint64_t gl_flag_u64(const char *prog, const char *flag, const char *value, double lo, double hi) {
    return (uint64_t)parse(prog, flag, value, lo < 0 ? 0 : lo, hi > 9007199254740992.0 ? 9007199254740992.0 : hi, true);
}

void gl_stdout_check(const char *prog) {
    errno = 0;
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "%s: could not write the output: %s\n", prog, errno ? strerror(errno) : "write error");
        exit(1);
    }
}

void gl_exercise_todo(const char *file, const char *func, const char *what) {
    fflush(stdout);
    fprintf(stderr, "not implemented: write %s in %s: %s\n", func, file, what);
    abort();
}
