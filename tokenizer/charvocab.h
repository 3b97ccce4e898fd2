/* Character-level vocabulary over Unicode code points: the distinct characters of a UTF-8 text, sorted by code
 * point, each one token. Used by `train` by default and stored in its checkpoints. */
#ifndef GRADLAB_CHARVOCAB_H
#define GRADLAB_CHARVOCAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "utf8.h"

typedef struct {
    int size;
    uint32_t *codepoints; /* codepoints[id] */
} gl_charvocab;

/* Vocabulary of the distinct code points in cps. */
void gl_charvocab_build(gl_charvocab *v, const uint32_t *cps, size_t n);
/* ids[i] for each code point; false with a message naming the first character not in the vocabulary. */
/* ids of n code points; an unknown character is an error naming it, or, when dropped is not NULL, skipped and
 * counted there. Returns the number of ids written (n without drops), or -1 on error. */
long long gl_charvocab_encode(const gl_charvocab *v, const uint32_t *cps, size_t n, int32_t *ids, size_t *dropped,
                              char *err, size_t err_len);
void gl_charvocab_free(gl_charvocab *v);

#endif
