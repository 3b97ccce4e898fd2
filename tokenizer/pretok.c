#include "pretok.h"

#include <stdbool.h>

#include "unicode_tables.h"

static bool in_ranges(const uint32_t (*r)[2], size_t n, uint32_t cp) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < r[mid][0]) hi = mid;
        else if (cp > r[mid][1]) lo = mid + 1;
        else return true;
    }
    return false;
}

/* The White_Space property (what \s means in the regex engines tiktoken uses). */
static bool is_space(uint32_t cp) {
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
           cp == 0x3000;
}

gl_char_class gl_char_class_of(uint32_t cp) {
    if (cp < 0x80) { /* ASCII fast path */
        if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return GL_CHAR_LETTER;
        if (cp >= '0' && cp <= '9') return GL_CHAR_NUMBER;
        return is_space(cp) ? GL_CHAR_SPACE : GL_CHAR_OTHER;
    }
    if (is_space(cp)) return GL_CHAR_SPACE;
    if (in_ranges(gl_unicode_letter_ranges, sizeof gl_unicode_letter_ranges / sizeof *gl_unicode_letter_ranges, cp))
        return GL_CHAR_LETTER;
    if (in_ranges(gl_unicode_number_ranges, sizeof gl_unicode_number_ranges / sizeof *gl_unicode_number_ranges, cp))
        return GL_CHAR_NUMBER;
    return GL_CHAR_OTHER;
}

gl_char_class gl_char_at(const unsigned char *s, size_t len, size_t pos, size_t *n) {
    unsigned char c = s[pos];
    if (c < 0x80) {
        *n = 1;
        return gl_char_class_of(c);
    }
    int extra = (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : -1;
    if (extra < 0 || pos + (size_t)extra >= len) {
        *n = 1;
        return GL_CHAR_OTHER;
    }
    uint32_t cp = c & (0x3F >> extra);
    for (int k = 1; k <= extra; k++) {
        if ((s[pos + k] & 0xC0) != 0x80) {
            *n = 1;
            return GL_CHAR_OTHER;
        }
        cp = (cp << 6) | (s[pos + k] & 0x3F);
    }
    if ((extra == 1 && cp < 0x80) || (extra == 2 && cp < 0x800) || (extra == 3 && cp < 0x10000) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
        *n = 1;
        return GL_CHAR_OTHER;
    }
    *n = (size_t)extra + 1;
    return gl_char_class_of(cp);
}

/* end of the run of characters of class k starting at pos */
static size_t run_of(const unsigned char *s, size_t len, size_t pos, gl_char_class k) {
    while (pos < len) {
        size_t n;
        if (gl_char_at(s, len, pos, &n) != k) break;
        pos += n;
    }
    return pos;
}

static size_t contraction(const unsigned char *s, size_t len, size_t pos) {
    /* at an apostrophe: 's 't 'm 'd (2 bytes) or 're 've 'll (3 bytes), lower case only */
    if (pos + 1 >= len) return 0;
    unsigned char a = s[pos + 1];
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if (pos + 2 < len) {
        unsigned char b = s[pos + 2];
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    }
    return 0;
}

size_t gl_pretok_next(const unsigned char *s, size_t len, size_t pos) {
    if (s[pos] == '\'') {
        size_t c = contraction(s, len, pos);
        if (c) return pos + c;
    }
    size_t n;
    gl_char_class k = gl_char_at(s, len, pos, &n);
    if (k != GL_CHAR_SPACE) return run_of(s, len, pos + n, k); /* \p{L}+, \p{N}+ or [^\s\p{L}\p{N}]+ */
    if (s[pos] == ' ' && pos + 1 < len) { /* " ?" before a letter, number or other run */
        size_t n2;
        gl_char_class k2 = gl_char_at(s, len, pos + 1, &n2);
        if (k2 != GL_CHAR_SPACE) return run_of(s, len, pos + 1 + n2, k2);
    }
    /* whitespace: \s+(?!\S) takes the run but leaves its last character when a non-space follows; a run of one
     * character followed by a non-space falls through to \s+ and is taken whole */
    size_t end = pos, last = pos;
    while (end < len) {
        size_t m;
        if (gl_char_at(s, len, end, &m) != GL_CHAR_SPACE) break;
        last = end;
        end += m;
    }
    if (end < len && last > pos) return last;
    return end;
}
