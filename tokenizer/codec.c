#include "codec.h"

#include <stdlib.h>

#include "utf8.h"

int gl_codec_size(const gl_codec *c) { return c->bpe ? gl_bpe_vocab_size(c->bpe) : c->chars.size; }

bool gl_codec_encode(gl_codec *c, const unsigned char *text, size_t len, int32_t **ids, size_t *n, size_t *dropped,
                     char *err, size_t err_len) {
    if (c->bpe) {
        size_t cap = 0;
        *ids = NULL;
        *n = gl_bpe_encode_with_specials(c->bpe, text, len, ids, &cap);
        if (!*ids) *ids = malloc(sizeof **ids);
        return true;
    }
    uint32_t *cps;
    size_t ncp;
    if (!gl_utf8_decode(text, len, &cps, &ncp, err, err_len)) return false;
    *ids = malloc((ncp ? ncp : 1) * sizeof **ids);
    long long kept = gl_charvocab_encode(&c->chars, cps, ncp, *ids, dropped, err, err_len);
    free(cps);
    if (kept < 0) {
        free(*ids);
        *ids = NULL;
        return false;
    }
    *n = (size_t)kept;
    return true;
}

const unsigned char *gl_codec_token(const gl_codec *c, int32_t id, unsigned char buf[4], size_t *len) {
    if (c->bpe) return gl_bpe_token_bytes(c->bpe, id, len);
    *len = (size_t)gl_utf8_encode(c->chars.codepoints[id], (char *)buf);
    return buf;
}

void gl_codec_free(gl_codec *c) {
    gl_charvocab_free(&c->chars);
    gl_bpe_free(c->bpe);
    c->bpe = NULL;
}
