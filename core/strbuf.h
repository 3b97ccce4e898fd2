/* A growing NUL-terminated string: responses of the server, grammar text made from a schema, cleaned documents.
 * Zero-initialise it ({0}); gl_sb_free releases it. Running out of memory aborts: nothing sensible is left to do. */
#ifndef GRADLAB_STRBUF_H
#define GRADLAB_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct {
    char *p; /* NULL until something is appended */
    size_t len, cap;
} gl_strbuf;

void gl_sb_put(gl_strbuf *b, const char *s, size_t n);
void gl_sb_puts(gl_strbuf *b, const char *s);
void gl_sb_printf(gl_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void gl_sb_vprintf(gl_strbuf *b, const char *fmt, va_list ap);
void gl_sb_free(gl_strbuf *b);

#endif
