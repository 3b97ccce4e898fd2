/* libFuzzer target: any bytes as a Markdown page through the chunker (each strategy, small caps so windows and
 * packing are exercised), then BM25 over the chunks with the page's first line as the query. Checks the chunker's
 * promises: every chunk has text, at most the cap of words, a byte range inside the page. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bm25.h"
#include "chunk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *md = malloc(size + 1);
    memcpy(md, data, size);
    md[size] = 0;
    size_t len = strlen(md); /* the indexer refuses pages with a NUL byte */
    for (int s = 0; s < 3; s++) {
        chunk_list l = {0};
        chunk_config c = {(chunk_strategy)s, 3 + (int)(size % 29), (int)(size % 3)};
        chunk_page("fuzz.md", md, len, c, &l);
        const char **texts = malloc((size_t)(l.n ? l.n : 1) * sizeof *texts);
        for (int i = 0; i < l.n; i++) {
            const chunk *k = &l.items[i];
            if (!k->text || !k->heading || k->words < 1 || k->words > c.words || k->start > k->end || k->end > len) abort();
            texts[i] = k->text;
        }
        bm25 *m = bm25_build(texts, l.n, BM25_DEFAULTS);
        double *scores = malloc((size_t)(l.n ? l.n : 1) * sizeof *scores);
        char query[64];
        snprintf(query, sizeof query, "%.*s", (int)strcspn(md, "\n"), md);
        bm25_scores(m, query, scores);
        free(scores), free(texts);
        bm25_free(m);
        chunk_list_free(&l);
    }
    free(md);
    return 0;
}
