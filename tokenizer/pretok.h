/* GPT-2's pre-split, by hand: the pieces of
 *     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * so BPE merges never cross a piece boundary. Works on any bytes: a byte that does not start a valid UTF-8
 * sequence counts as one character of its own, of the "other" class (neither letter, number nor space). */
#ifndef GRADLAB_PRETOK_H
#define GRADLAB_PRETOK_H

#include <stddef.h>
#include <stdint.h>

typedef enum { GL_CHAR_LETTER, GL_CHAR_NUMBER, GL_CHAR_SPACE, GL_CHAR_OTHER } gl_char_class;

gl_char_class gl_char_class_of(uint32_t cp);
/* the class of the character at pos and its byte length *n (1 for a byte that does not start valid UTF-8) */
gl_char_class gl_char_at(const unsigned char *s, size_t len, size_t pos, size_t *n);
/* End (exclusive) of the piece that starts at pos (< len). */
size_t gl_pretok_next(const unsigned char *s, size_t len, size_t pos);

#endif
