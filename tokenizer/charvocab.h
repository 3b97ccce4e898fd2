/* Character-level vocabulary over Unicode code points: the distinct characters of a UTF-8 text, sorted by code
 * point, each one token. Used by `train` by default and stored in its checkpoints. */
#ifndef GRADLAB_CHARVOCAB_H
#define GRADLAB_CHARVOCAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int size;
    uint32_t *codepoints; /* codepoints[id] */
} gl_charvocab;

/* Decode UTF-8; false with a message (byte offset of the first invalid sequence) if it is not valid UTF-8.
 * *out receives malloc'd code points. */
bool gl_utf8_decode(const unsigned char *text, size_t len, uint32_t **out, size_t *n_out, char *err, size_t err_len);
/* Appends the UTF-8 encoding of cp to buf (at least 4 bytes); returns the byte count. */
int gl_utf8_encode(uint32_t cp, char *buf);

/* Vocabulary of the distinct code points in cps. */
void gl_charvocab_build(gl_charvocab *v, const uint32_t *cps, size_t n);
/* ids[i] for each code point; false with a message naming the first character not in the vocabulary. */
bool gl_charvocab_encode(const gl_charvocab *v, const uint32_t *cps, size_t n, int32_t *ids, char *err, size_t err_len);
void gl_charvocab_free(gl_charvocab *v);

#endif
