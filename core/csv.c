#include "csv.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"

bool gl_csv_read(const char *path, gl_csv *t, char *err, size_t err_len) {
    memset(t, 0, sizeof *t);
    unsigned char *buf;
    size_t len;
    if (!gl_read_whole_file(path, &buf, &len, err, err_len)) return false;
    size_t nul_line;
    if (gl_find_nul(buf, len, &nul_line)) { /* C strings would end there and the rest be dropped silently */
        snprintf(err, err_len, "'%s' line %zu holds a NUL byte: not a text CSV", path, nul_line);
        free(buf);
        return false;
    }
    char *s = (char *)buf, *save = NULL;
    char *line = strtok_r(s, "\n", &save);
    if (!line) {
        snprintf(err, err_len, "'%s' is empty", path);
        free(buf);
        return false;
    }
    /* header */
    int cap = 16;
    t->names = malloc((size_t)cap * sizeof *t->names);
    for (char *p = line;;) {
        char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (n && p[n - 1] == '\r') n--;
        if (t->cols == cap) t->names = realloc(t->names, (size_t)(cap *= 2) * sizeof *t->names);
        t->names[t->cols] = malloc(n + 1);
        memcpy(t->names[t->cols], p, n);
        t->names[t->cols++][n] = 0;
        if (!comma) break;
        p = comma + 1;
    }
    size_t vcap = 1024;
    t->values = malloc(vcap * sizeof *t->values);
    int line_no = 1;
    while ((line = strtok_r(NULL, "\n", &save))) {
        line_no++;
        if (line[0] == '\0' || (line[0] == '\r' && line[1] == '\0')) continue;
        char *p = line;
        for (int c = 0; c < t->cols; c++) {
            char *end;
            errno = 0;
            double v = strtod(p, &end);
            if (end == p || errno || !isfinite(v) || (*end != ',' && *end != '\0' && *end != '\r')) {
                snprintf(err, err_len, "'%s' line %d, column %d (%s): not a number: '%.20s'", path, line_no, c + 1,
                         t->names[c], p);
                goto fail;
            }
            if ((*end == '\0' || *end == '\r') && c + 1 < t->cols) {
                snprintf(err, err_len, "'%s' line %d has %d values; the header has %d columns", path, line_no, c + 1,
                         t->cols);
                goto fail;
            }
            if (*end == ',' && c + 1 == t->cols) {
                snprintf(err, err_len, "'%s' line %d has more values than the header's %d columns", path, line_no,
                         t->cols);
                goto fail;
            }
            if ((size_t)t->rows * t->cols + c >= vcap) t->values = realloc(t->values, (vcap *= 2) * sizeof *t->values);
            t->values[(size_t)t->rows * t->cols + c] = v;
            p = end + 1;
        }
        t->rows++;
    }
    if (t->rows == 0) {
        snprintf(err, err_len, "'%s' has a header but no rows", path);
        goto fail;
    }
    free(buf);
    return true;
fail:
    free(buf);
    gl_csv_free(t);
    return false;
}

int gl_csv_column(const gl_csv *t, const char *name) {
    for (int c = 0; c < t->cols; c++)
        if (!strcmp(t->names[c], name)) return c;
    return -1;
}

void gl_csv_free(gl_csv *t) {
    for (int c = 0; c < t->cols; c++) free(t->names[c]);
    free(t->names);
    free(t->values);
    memset(t, 0, sizeof *t);
}
