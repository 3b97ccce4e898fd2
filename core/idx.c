#include "idx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static bool read_be32(gzFile f, uint32_t *v) {
    unsigned char b[4];
    if (gzread(f, b, 4) != 4) return false;
    *v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    return true;
}

bool gl_idx_read(const char *path, bool expect_images, gl_idx *t, char *err, size_t err_len) {
    memset(t, 0, sizeof *t);
    gzFile f = gzopen(path, "rb"); /* reads plain files too */
    if (!f) return snprintf(err, err_len, "cannot open '%s'", path), false;
    uint32_t magic = 0, count = 0, rows = 1, cols = 1;
    bool ok = read_be32(f, &magic) && read_be32(f, &count);
    uint32_t want = expect_images ? 0x803 : 0x801;
    if (!ok || magic != want) {
        snprintf(err, err_len, "'%s' is not an IDX %s file (magic 0x%08x, expected 0x%08x)", path,
                 expect_images ? "image" : "label", magic, want);
        gzclose(f);
        return false;
    }
    if (expect_images && (!read_be32(f, &rows) || !read_be32(f, &cols))) {
        snprintf(err, err_len, "'%s' ends inside its header", path);
        gzclose(f);
        return false;
    }
    if (count > 10000000u || rows > 4096 || cols > 4096 || (uint64_t)count * rows * cols > (1ull << 32)) {
        snprintf(err, err_len, "'%s' declares an implausible size (%u x %u x %u)", path, count, rows, cols);
        gzclose(f);
        return false;
    }
    size_t n = (size_t)count * rows * cols;
    t->data = malloc(n ? n : 1);
    int got = n ? gzread(f, t->data, (unsigned)n) : 0;
    unsigned char extra;
    bool trailing = gzread(f, &extra, 1) == 1;
    gzclose(f);
    if (got < 0 || (size_t)got != n || trailing) {
        snprintf(err, err_len, "'%s' holds %s data than its header's %u x %u x %u", path, trailing ? "more" : "less",
                 count, rows, cols);
        free(t->data);
        t->data = NULL;
        return false;
    }
    t->count = (int)count;
    t->rows = expect_images ? (int)rows : 0;
    t->cols = expect_images ? (int)cols : 0;
    return true;
}

void gl_idx_free(gl_idx *t) {
    free(t->data);
    memset(t, 0, sizeof *t);
}
