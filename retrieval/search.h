/* Ranking the pages of an index for a question: BM25 (retrieval/bm25.h), SQLite FTS5, dense (the MiniLM embeddings
 * of the chunks against the question's, exact: one GEMM), or hybrid (reciprocal rank fusion of the BM25 and dense
 * page rankings, k = 60), or rerank (hybrid, then the best chunks of its first SEARCH_RERANK_DEPTH pages rescored by an
 * instruction model, rerank.h; the pages below keep their hybrid order). A page's score is its best chunk's; ties go
 * to the lower chunk index. */
#ifndef GRADLAB_SEARCH_H
#define GRADLAB_SEARCH_H

#include "bert.h"
#include "bm25.h"
#include "hnsw.h"
#include "rerank.h"
#include "store.h"

/* the default reranker and answer writer, found as gl_find_data finds data (data/, GRADLAB_DATA, ...) */
#define SEARCH_DEFAULT_RERANKER "smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
enum { SEARCH_RERANK_DEPTH = 20 };

typedef struct {
    store st;
    bm25 *bm;
    const char *db;
    bert enc;
    bool have_enc;
    gl_tensor *vectors; /* [chunks, dims]: the chunks' embeddings */
    hnsw *graph;        /* the stored HNSW graph over them, if any */
    int ann_ef;         /* > 0: dense search through the graph with this efSearch instead of exactly */
    reranker *rr;         /* for --method rerank: the instruction model that rescores the hybrid top 20 */
    bool query_truncated; /* the last question embedded was longer than the encoder reads (it read the start) */
} search_index;

typedef struct {
    int page, chunk; /* the page and its best chunk */
    double score;
} search_hit;

bool search_method_known(const char *method); /* bm25, fts5, dense, hybrid, rerank */
/* Loads the index at db (and, for dense and hybrid, the encoder in model_dir, default data/minilm); false with a
 * message when the file, its embeddings or the model are missing or do not fit each other. */
bool search_open(search_index *ix, const char *db, const char *method, const char *model_dir, char *err, size_t err_len);
void search_close(search_index *ix);
/* loads the encoder (and the HNSW graph) into an index opened for a method without them; false with a message if
 * the index has no embeddings or the model does not fit them */
bool search_use_encoder(search_index *ix, const char *model_dir, char *err, size_t err_len);
/* loads the reranker (gguf: a GGUF with a tokenizer, NULL for SEARCH_DEFAULT_RERANKER); false with a message */
bool search_use_reranker(search_index *ix, const char *gguf, char *err, size_t err_len);
/* the k chunks closest to an embedding, best first: exactly (one GEMM), or through the HNSW graph when ix->ann_ef > 0 */
int search_dense_chunks(search_index *ix, const float *query, int k, int *ids, float *scores);
/* every page with a matching chunk, best first, into out (room for every page); returns how many */
int search_rank_pages(search_index *ix, const char *method, const char *query, search_hit *out);
/* the same with the question's embedding already computed (qvec, or NULL to embed it here) */
int search_rank_pages_with(search_index *ix, const char *method, const char *query, const float *qvec,
                           search_hit *out);

#endif
