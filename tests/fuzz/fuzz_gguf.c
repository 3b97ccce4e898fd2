/* libFuzzer target for the GGUF reader and the tokenizer it feeds: any bytes are parsed; a file that parses has
 * every string, array and tensor inside its bounds (ASan checks each access below), and when it carries a
 * tokenizer, loading it and encoding a text must not fail unsafely. Build and run: `make fuzz FUZZ_TARGETS=gguf`. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bpe.h"
#include "gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[512];
    gl_gguf *g = gl_gguf_parse(data, size, "fuzz", err, sizeof err);
    if (!g) return 0;
    volatile unsigned sum = 0;
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const gguf_kv *kv = &g->kv[i];
        sum += kv->key.len ? (unsigned char)kv->key.ptr[kv->key.len - 1] : 0;
        if (kv->type == GGUF_STRING && kv->v.s.len) sum += (unsigned char)kv->v.s.ptr[kv->v.s.len - 1];
        if (kv->type == GGUF_ARRAY && kv->strs)
            for (uint64_t j = 0; j < kv->arr_count; j++)
                if (kv->strs[j].len) sum += (unsigned char)kv->strs[j].ptr[kv->strs[j].len - 1];
        if (kv->type == GGUF_ARRAY && kv->arr_count && kv->arr_type != GGUF_STRING && kv->arr_type != GGUF_ARRAY)
            sum += (unsigned)gl_gguf_arr_number(kv, kv->arr_count - 1);
    }
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (g->tensors[i].n_bytes) sum += g->tensors[i].data[g->tensors[i].n_bytes - 1];
    gl_bpe *t = gl_bpe_load_gguf(g, err, sizeof err);
    if (t) {
        int32_t *ids = NULL;
        size_t cap = 0;
        const char *text = "Hello 12345, it's a test \xe2\x82\xac\xff";
        size_t n = gl_bpe_encode(t, (const unsigned char *)text, strlen(text), &ids, &cap);
        unsigned char *out;
        size_t out_len;
        if (gl_bpe_decode(t, ids, n, &out, &out_len, err, sizeof err)) free(out);
        free(ids);
        gl_bpe_free(t);
    }
    gl_gguf_close(g);
    (void)sum;
    return 0;
}
