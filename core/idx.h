/* IDX files (MNIST's format), gzip-compressed or not: a big-endian header (magic 0x00000803 for images with
 * count, rows, cols; 0x00000801 for labels with count), then unsigned bytes. */
#ifndef GRADLAB_IDX_H
#define GRADLAB_IDX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int count, rows, cols; /* rows = cols = 0 for a label file */
    uint8_t *data;         /* count * rows * cols bytes (count for labels) */
} gl_idx;

/* expect_images: true for an image file (magic 2051), false for labels (2049). False with a message on a wrong
 * magic, a truncated file or sizes that do not fit. */
bool gl_idx_read(const char *path, bool expect_images, gl_idx *out, char *err, size_t err_len);
void gl_idx_free(gl_idx *t);

#endif
