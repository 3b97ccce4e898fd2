/* Extractive answers with citations: the question's best-ranked pages (search.h), the best chunk of each as a numbered
 * source, and the sentences of those chunks closest to the question (cosine of MiniLM embeddings when the index has
 * them, else BM25 over the sentences), each followed by its source's number: "... [2]". Nothing is invented: every
 * sentence is a sentence of the docs. When even the best chunk is far from the question (cosine below min_cosine, or
 * no word in common without embeddings) the answer is "not found in the docs" instead. */
#ifndef GRADLAB_ANSWER_H
#define GRADLAB_ANSWER_H

#include "llama.h"
#include "search.h"

enum { ANSWER_MAX_SOURCES = 8, ANSWER_RANKED = 10 };

typedef struct {
    int page, chunk;
} answer_source;

typedef struct {
    char *text; /* the sentences, each with its citation, or "not found in the docs" */
    answer_source sources[ANSWER_MAX_SOURCES];
    int n_sources;
    int n_dropped; /* ranked chunks that answer_config.admit refused */
    int ranked[ANSWER_RANKED], n_ranked; /* the retrieval's first pages, best first (for Recall@k and MRR) */
    bool found;
    double best; /* the best chunk's score: cosine (dense, hybrid) or BM25 */
} answer;

typedef struct {
    int sources;       /* pages to draw from (default 3) */
    int sentences;     /* sentences in the answer (default 3) */
    double min_cosine; /* below it: not found (default 0.35) */
    double sentence_margin; /* > 0: only sentences within this much of the best sentence's score (0: the first ones) */
    /* NULL, or a check every chunk must pass to become a source (the assistant refuses chunks that carry planted
     * instructions); a refused chunk's page is passed over */
    bool (*admit)(const char *chunk_text, void *ctx);
    void *admit_ctx;
} answer_config;
#define ANSWER_DEFAULTS ((answer_config){.sources = 3, .sentences = 3, .min_cosine = 0.35})

void answer_extract(search_index *ix, const char *method, const char *question, answer_config c, answer *out);
void answer_free(answer *a);
/* Every citation "[n]" in text names a source 1..n_sources (generated answers are checked with this); false, with
 * the first bad number in *bad, if one does not. Text without citations passes. */
bool answer_citations_valid(const char *text, int n_sources, int *bad);


/* ---- generated answers, kept only where the sources support them ---- */
typedef struct {
    char *text;          /* what the model wrote */
    bool supported;      /* answer_supported's verdict */
    char reason[256];    /* why not, naming the sentence or the word */
    int tokens;          /* generated tokens */
} answer_generated;

/* An instruction model (ChatML; SmolLM2-135M-Instruct) answers the question from each source of an extractive
 * answer in turn (its heading path and the first 120 words of its chunk), in one sentence: greedy decoding, at most
 * max_new tokens, stopped at the sentence's end; each sentence gets its source's citation [n] here (a 135M model asked
 * to cite numbered sources itself did not: 0 of 40). Then answer_supported judges the whole text. */
void answer_generate(search_index *ix, llama *m, llama_cache *cache, const char *question, const answer *sources,
                     int max_new, answer_generated *out);
void answer_generated_free(answer_generated *g);

/* A lexical check that a text says only what its cited sources say: every [n] names a source; the text cites at
 * least one; each sentence of 3 or more content words (BM25 tokens less common English words) has at least 75% of
 * them in the chunks it cites (a sentence without a citation: in any source), and everything it writes between
 * backticks appears in those chunks verbatim (an invented `package` or function fails). false with the reason. */
bool answer_supported(const search_index *ix, const answer *sources, const char *text, char *reason, size_t n);

#endif
