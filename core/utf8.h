/* UTF-8 <-> Unicode code points. */
#ifndef GRADLAB_UTF8_H
#define GRADLAB_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Decode UTF-8 (rejecting overlong forms, surrogates and values past U+10FFFF); false with a message naming the
 * byte offset of the first invalid sequence. *out receives malloc'd code points. */
bool gl_utf8_decode(const unsigned char *text, size_t len, uint32_t **out, size_t *n_out, char *err, size_t err_len);
/* Writes the UTF-8 encoding of cp to buf (room for 4 bytes); returns the byte count. */
int gl_utf8_encode(uint32_t cp, char *buf);

#endif
