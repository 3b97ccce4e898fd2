/* Hugging Face safetensors files: an 8-byte little-endian header length, a JSON header naming each tensor's dtype,
 * shape and [begin, end) byte offsets, then the data. One validation layer for every reader, following upstream's
 * rules before any tensor byte is used: the header fits the file and is a JSON object; `__metadata__`, if present,
 * maps strings to strings; every tensor has a known dtype, a shape of non-negative integers and integer offsets
 * whose length is exactly numel x dtype size (overflow-checked); names are unique; and the tensors, sorted by
 * offset, are contiguous from 0 and cover the data exactly (no holes, no overlaps, no trailing bytes). */
#ifndef GRADLAB_SAFETENSORS_H
#define GRADLAB_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "json.h"

enum { GL_ST_MAX_DIMS = 8 };

typedef struct {
    const char *name, *dtype;      /* point into the parsed header */
    int ndim;
    int64_t shape[GL_ST_MAX_DIMS];
    int64_t numel;
    const unsigned char *data;     /* points into the caller's buffer */
    size_t nbytes;
} gl_st_tensor;

typedef struct {
    gl_json *header;
    int n;                /* tensors, in header order */
    gl_st_tensor *tensors;
    size_t data_len;      /* bytes after the header */
} gl_safetensors;

/* Validates buf[0..len) (the whole file; `path` names it in messages). On success the tensors point into buf, which
 * must outlive *st. False with a one-line message naming the file and the first problem. */
bool gl_safetensors_parse(const unsigned char *buf, size_t len, const char *path, gl_safetensors *st, char *err,
                          size_t err_len);
const gl_st_tensor *gl_safetensors_find(const gl_safetensors *st, const char *name);
void gl_safetensors_free(gl_safetensors *st);

#endif
