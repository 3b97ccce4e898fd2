/* libFuzzer target for constrained decoding's inputs (models/grammar.c, models/schema.c): any bytes as grammar text
 * or as a JSON Schema must compile or be refused with a message; a grammar that compiles is then walked for a few
 * steps over a small vocabulary (masks, accepts, the budget), and a compiled schema's own sample must validate.
 * The first byte picks the mode. `make fuzz`. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "grammar.h"
#include "json.h"
#include "schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > 4096) return 0;
    char err[512] = "";
    char *text = malloc(size);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = 0;
    gl_grammar *g = NULL;
    if (data[0] & 1) {
        gl_json *schema = gl_json_parse(text, size - 1, err, sizeof err);
        if (schema) {
            g = gl_schema_grammar(schema, err, sizeof err);
            if (!g && !err[0]) abort(); /* refused without a message */
        }
        gl_json_free(schema);
    } else {
        g = gl_grammar_parse(text, err, sizeof err);
        if (!g && !err[0]) abort();
    }
    if (g) { /* a few greedy steps: always the lowest allowed token */
        const unsigned char *bytes[] = {(const unsigned char *)"{", (const unsigned char *)"\"a\"",
                                        (const unsigned char *)"}", (const unsigned char *)"1", (const unsigned char *)" ",
                                        (const unsigned char *)"[", (const unsigned char *)"]", (const unsigned char *)"x",
                                        (const unsigned char *)":", (const unsigned char *)","};
        size_t lens[] = {1, 3, 1, 1, 1, 1, 1, 1, 1, 1};
        gl_vocab_trie *v = gl_vocab_trie_new(10, bytes, lens);
        int32_t stop = 9;
        gl_grammar_matcher *m = gl_matcher_new(g, v, &stop, 0, (data[0] >> 1) & 31);
        for (int step = 0; step < 24; step++) {
            int n = 0;
            const uint64_t *mask = gl_matcher_allowed(m, &n);
            if (!n) break;
            int t = 0;
            while (t < 10 && !((mask[0] >> t) & 1)) t++;
            if (t == 10 || !gl_matcher_accept_token(m, t)) abort(); /* the mask allowed it */
        }
        gl_matcher_free(m);
        gl_vocab_trie_free(v);
        gl_grammar_free(g);
    }
    free(text);
    return 0;
}
