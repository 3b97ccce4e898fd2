/* Okapi BM25 over a fixed set of documents, computed as rank_bm25's BM25Okapi computes it (the Python peer), so
 * the scores are the same numbers:
 *   idf(t) = ln(N - n_t + 0.5) - ln(n_t + 0.5)   (n_t: documents containing t; the "+0.5" Robertson-Sparck Jones
 *            form, which goes negative for terms in more than half the documents: those get epsilon * the mean idf
 *            of all terms instead, rank_bm25's floor)
 *   score(d, q) = sum over the query's tokens, repeats included, of
 *                 idf(t) * tf(t, d) (k1 + 1) / (tf(t, d) + k1 (1 - b + b |d| / avgdl))
 * with k1 = 1.5, b = 0.75, epsilon = 0.25 by default, in double, in rank_bm25's order of operations.
 * Tokens: runs of ASCII letters, digits and '_', lowercased; every other byte separates (so "allow_origins" and
 * "CORSMiddleware" stay whole, and "FastAPI's" is "fastapi" "s"). tools/bm25_fixture.py applies the same rule. */
#ifndef GRADLAB_BM25_H
#define GRADLAB_BM25_H

#include <stddef.h>

typedef struct bm25 bm25;

typedef struct {
    double k1, b, epsilon;
} bm25_params;
#define BM25_DEFAULTS ((bm25_params){1.5, 0.75, 0.25})

/* calls fn(token, len, ctx) for each token of text, in order; the token is lowercased into a scratch buffer */
void bm25_tokens(const char *text, void (*fn)(const char *tok, size_t len, void *ctx), void *ctx);

bm25 *bm25_build(const char *const *docs, int n_docs, bm25_params p);
/* scores[d] for every document d (n_docs of them) */
void bm25_scores(const bm25 *m, const char *query, double *scores);
int bm25_doc_count(const bm25 *m);
int bm25_vocab_size(const bm25 *m);
double bm25_idf(const bm25 *m, const char *term); /* 0 for a term no document has (and for one in half of them) */
int bm25_doc_freq(const bm25 *m, const char *term); /* documents holding the term */
double bm25_avgdl(const bm25 *m);
void bm25_free(bm25 *m);

#endif
