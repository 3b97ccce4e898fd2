/* Helpers of the libFuzzer targets: the loaders read paths, so each input is written to a per-process file first
 * (in $TMPDIR or /tmp), and formats closed by an FNV-1a checksum get it recomputed, so that the fuzzer's mutations
 * reach the validation behind the checksum instead of stopping at it. */
#ifndef GRADLAB_FUZZ_UTIL_H
#define GRADLAB_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io.h" /* gl_fnv1a */

/* the path of this process's scratch file named by tag (the same on every call) */
static inline const char *fuzz_path(const char *tag) {
    static char path[8][512];
    static const char *tags[8];
    int i = 0;
    while (i < 8 && tags[i] && strcmp(tags[i], tag)) i++;
    if (i == 8) abort();
    if (!tags[i]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(path[i], sizeof path[i], "%s/gradlab_fuzz_%d_%s", tmp && *tmp ? tmp : "/tmp", (int)getpid(), tag);
        tags[i] = tag;
    }
    return path[i];
}

static inline const char *fuzz_write(const char *tag, const uint8_t *data, size_t n) {
    const char *path = fuzz_path(tag);
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) abort();
    return path;
}

/* a copy of data whose last 8 bytes are the FNV-1a of the rest (checkpoints, LoRA adapters, BPE files); NULL if
 * too short */
static inline uint8_t *fuzz_with_fnv(const uint8_t *data, size_t n) {
    if (n < 8) return NULL;
    uint8_t *copy = malloc(n);
    memcpy(copy, data, n);
    uint64_t h = gl_fnv1a(GL_FNV_OFFSET, copy, n - 8);
    memcpy(copy + n - 8, &h, 8);
    return copy;
}

#endif
