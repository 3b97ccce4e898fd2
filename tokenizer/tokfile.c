#include "tokfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io.h"

#define TOKFILE_MAGIC 20240520

bool gl_tokfile_write(const char *path, const int32_t *ids, size_t n, int vocab_size, char *err, size_t err_len) {
    if (vocab_size > 65536 || n > INT32_MAX) {
        snprintf(err, err_len, "token files hold uint16 ids and < 2^31 tokens (vocabulary %d, %zu tokens)", vocab_size, n);
        return false;
    }
    int32_t hdr[256] = {TOKFILE_MAGIC, 1, (int32_t)n, vocab_size};
    gl_atomic file;
    FILE *f = gl_atomic_open(&file, path);
    bool ok = f && fwrite(hdr, sizeof hdr, 1, f) == 1;
    for (size_t i = 0; ok && i < n; i++) {
        unsigned char le[2] = {(unsigned char)(ids[i] & 0xff), (unsigned char)(ids[i] >> 8)};
        ok = fwrite(le, 1, 2, f) == 2;
    }
    if (ok && gl_atomic_commit(&file)) return true;
    int e = file.err ? file.err : errno;
    gl_atomic_abort(&file);
    snprintf(err, err_len, "cannot write '%s': %s", path, strerror(e ? e : EIO));
    return false;
}

bool gl_tokfile_read(const char *path, int32_t **ids, size_t *n, int *vocab_size, char *err, size_t err_len) {
    unsigned char *buf;
    size_t len;
    if (!gl_read_whole_file(path, &buf, &len, err, err_len)) return false;
    int32_t hdr[256];
    if (len < sizeof hdr) {
        snprintf(err, err_len, "'%s' is too short for a token file header (%zu bytes)", path, len);
        free(buf);
        return false;
    }
    memcpy(hdr, buf, sizeof hdr);
    if (hdr[0] != TOKFILE_MAGIC || hdr[1] != 1 || hdr[2] < 0 || hdr[3] < 1 || hdr[3] > 65536 ||
        len != sizeof hdr + 2 * (size_t)hdr[2]) {
        snprintf(err, err_len, "'%s' is not a token file, or is truncated (header says %d tokens, file has %zu bytes)",
                 path, hdr[2], len);
        free(buf);
        return false;
    }
    *n = (size_t)hdr[2];
    *vocab_size = hdr[3];
    *ids = malloc((*n ? *n : 1) * sizeof **ids);
    for (size_t i = 0; i < *n; i++) {
        (*ids)[i] = buf[sizeof hdr + 2 * i] | buf[sizeof hdr + 2 * i + 1] << 8;
        if ((*ids)[i] >= *vocab_size) {
            snprintf(err, err_len, "'%s': token %zu has id %d, outside the vocabulary of %d", path, i, (*ids)[i], *vocab_size);
            free(*ids);
            free(buf);
            return false;
        }
    }
    free(buf);
    return true;
}
