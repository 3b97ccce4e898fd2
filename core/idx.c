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
    /* the buffer grows with the data that actually arrives (a 30-byte file may declare 3 GB), up to the declared
     * size plus one byte, which tells "more data than declared" apart */
    size_t n = (size_t)count * rows * cols, have = 0, cap = n + 1 < (1u << 20) ? n + 1 : (1u << 20);
    unsigned char *buf = malloc(cap);
    bool read_error = !buf;
    while (buf && !read_error) {
        if (have == cap) {
            if (cap == n + 1) break;
            size_t grown = cap * 2 < n + 1 ? cap * 2 : n + 1;
            unsigned char *more = realloc(buf, grown);
            if (!more) {
                read_error = true;
                break;
            }
            buf = more, cap = grown;
        }
        size_t want_now = cap - have < (1u << 30) ? cap - have : (1u << 30);
        int got = gzread(f, buf + have, (unsigned)want_now);
        if (got < 0) read_error = true;
        if (got <= 0) break;
        have += (size_t)got;
    }
    gzclose(f);
    if (read_error || have != n) {
        if (read_error) snprintf(err, err_len, "'%s' cannot be read to its declared %u x %u x %u (corrupt?)", path, count, rows, cols);
        else snprintf(err, err_len, "'%s' holds %s data than its header's %u x %u x %u", path, have > n ? "more" : "less",
                      count, rows, cols);
        free(buf);
        return false;
    }
    t->data = buf;
    t->count = (int)count;
    t->rows = expect_images ? (int)rows : 0;
    t->cols = expect_images ? (int)cols : 0;
    return true;
}

void gl_idx_free(gl_idx *t) {
    free(t->data);
    memset(t, 0, sizeof *t);
}
