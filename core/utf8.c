#include "utf8.h"

#include <stdio.h>
#include <stdlib.h>

bool gl_utf8_decode(const unsigned char *s, size_t len, uint32_t **out, size_t *n_out, char *err, size_t err_len) {
    uint32_t *cps = malloc((len ? len : 1) * sizeof *cps);
    if (!cps) return snprintf(err, err_len, "out of memory"), false;
    size_t n = 0, i = 0;
    while (i < len) {
        unsigned char c = s[i];
        uint32_t cp;
        int extra;
        if (c < 0x80) cp = c, extra = 0;
        else if ((c & 0xE0) == 0xC0) cp = c & 0x1F, extra = 1;
        else if ((c & 0xF0) == 0xE0) cp = c & 0x0F, extra = 2;
        else if ((c & 0xF8) == 0xF0) cp = c & 0x07, extra = 3;
        else goto bad;
        for (int k = 1; k <= extra; k++) {
            if (i + (size_t)k >= len || (s[i + k] & 0xC0) != 0x80) goto bad;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        /* overlong forms, surrogates and values past U+10FFFF are not UTF-8 */
        if ((extra == 1 && cp < 0x80) || (extra == 2 && cp < 0x800) || (extra == 3 && cp < 0x10000) ||
            (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
            goto bad;
        cps[n++] = cp;
        i += (size_t)extra + 1;
    }
    *out = cps;
    *n_out = n;
    return true;
bad:
    free(cps);
    snprintf(err, err_len, "not valid UTF-8 at byte %zu (byte 0x%02x)", i, s[i]);
    return false;
}

int gl_utf8_encode(uint32_t cp, char *b) {
    if (cp < 0x80) return b[0] = (char)cp, 1;
    if (cp < 0x800) return b[0] = (char)(0xC0 | cp >> 6), b[1] = (char)(0x80 | (cp & 0x3F)), 2;
    if (cp < 0x10000)
        return b[0] = (char)(0xE0 | cp >> 12), b[1] = (char)(0x80 | ((cp >> 6) & 0x3F)), b[2] = (char)(0x80 | (cp & 0x3F)), 3;
    b[0] = (char)(0xF0 | cp >> 18), b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    b[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), b[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

