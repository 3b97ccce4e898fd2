#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void gl_sb_put(gl_strbuf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) abort();
        b->p = p, b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

void gl_sb_puts(gl_strbuf *b, const char *s) { gl_sb_put(b, s, strlen(s)); }

void gl_sb_vprintf(gl_strbuf *b, const char *fmt, va_list ap) {
    char small[256];
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    if (n >= 0 && (size_t)n < sizeof small) gl_sb_put(b, small, (size_t)n);
    else if (n >= 0) {
        char *big = malloc((size_t)n + 1);
        if (!big) abort();
        vsnprintf(big, (size_t)n + 1, fmt, again);
        gl_sb_put(b, big, (size_t)n);
        free(big);
    }
    va_end(again);
}

void gl_sb_printf(gl_strbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    gl_sb_vprintf(b, fmt, ap);
    va_end(ap);
}

void gl_sb_free(gl_strbuf *b) {
    free(b->p);
    b->p = NULL, b->len = b->cap = 0;
}
