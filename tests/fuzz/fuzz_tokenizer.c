/* libFuzzer target for the tokenizer's file parsers and the encoder: the input is split by its first byte into
 * (a) our BPE file format (checksum fixed up, fuzz_util.h), (b) a GPT-2 encoder.json + vocab.bpe pair, (c) text to encode and decode with the
 * GPT-2 tokenizer (which must round-trip). Build and run: `make fuzz FUZZ_TARGETS=tokenizer`. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bpe.h"
#include "fuzz_util.h"
#include "json.h"

static gl_bpe *gpt2;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[512];
    if (size < 1) return 0;
    uint8_t mode = data[0] % 3;
    data++, size--;
    if (mode == 0) { /* our format, its checksum recomputed so that mutations reach the tables behind it */
        uint8_t *fixed = fuzz_with_fnv(data, size);
        gl_bpe *t = gl_bpe_deserialize(fixed ? fixed : data, size, "fuzz", err, sizeof err);
        free(fixed);
        if (t) {
            int32_t *ids = NULL;
            size_t cap = 0, n = gl_bpe_encode(t, (const unsigned char *)"hello world 123", 15, &ids, &cap);
            unsigned char *out;
            size_t len;
            if (!gl_bpe_decode(t, ids, n, &out, &len, err, sizeof err) || len != 15 || memcmp(out, "hello world 123", 15))
                abort();
            free(out);
            free(ids);
            gl_bpe_free(t);
        }
    } else if (mode == 1) { /* encoder.json + vocab.bpe, split at the first NUL */
        const uint8_t *nul = memchr(data, 0, size);
        size_t a = nul ? (size_t)(nul - data) : size;
        const char *enc = fuzz_write("encoder.json", data, a);
        const char *mer = fuzz_write("vocab.bpe", nul ? nul + 1 : data, nul ? size - a - 1 : 0);
        gl_bpe *t = gl_bpe_load_gpt2(enc, mer, err, sizeof err);
        gl_bpe_free(t);
        gl_json *j = gl_json_parse((const char *)data, a, err, sizeof err);
        gl_json_free(j);
    } else { /* text: encode, decode, compare */
        if (!gpt2) gpt2 = gl_bpe_load_gpt2("tokenizer/gpt2/encoder.json", "tokenizer/gpt2/vocab.bpe", err, sizeof err);
        if (!gpt2) abort();
        int32_t *ids = NULL;
        size_t cap = 0, n = gl_bpe_encode(gpt2, data, size, &ids, &cap);
        unsigned char *out;
        size_t len;
        if (!gl_bpe_decode(gpt2, ids, n, &out, &len, err, sizeof err) || len != size || memcmp(out, data, size)) abort();
        free(out);
        free(ids);
    }
    return 0;
}
