#include "search.h"

#include "io.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool search_method_known(const char *m) {
    return !strcmp(m, "bm25") || !strcmp(m, "fts5") || !strcmp(m, "dense") || !strcmp(m, "hybrid") || !strcmp(m, "rerank");
}

static bool needs_vectors(const char *method) {
    return !strcmp(method, "dense") || !strcmp(method, "hybrid") || !strcmp(method, "rerank");
}

bool search_use_reranker(search_index *ix, const char *gguf, char *err, size_t n) {
    if (ix->rr) return true;
    char path[4096];
    if (!gguf) gl_find_data(SEARCH_DEFAULT_RERANKER, path, sizeof path), gguf = path;
    ix->rr = malloc(sizeof *ix->rr);
    if (!reranker_load(ix->rr, gguf, err, n)) {
        free(ix->rr), ix->rr = NULL;
        if (gguf == path) snprintf(err + strlen(err), n - strlen(err), " (make data DATA_SETS=smollm2 fetches the reranker)");
        return false;
    }
    return true;
}

bool search_use_encoder(search_index *ix, const char *model_dir, char *err, size_t n) {
    if (ix->have_enc) return true;
    if (!ix->st.vectors)
        return snprintf(err, n, "%s has no embeddings: index it again with the encoder (make data DATA_SETS=minilm, then "
                                "rag index)", ix->db), false;
    if (!bert_load(&ix->enc, model_dir ? model_dir : "data/minilm", err, n)) return false;
    if (ix->enc.cfg.n_embd != ix->st.dims)
        return bert_free(&ix->enc), snprintf(err, n, "%s: its embeddings do not have the model's dimension", ix->db), false;
    if (ix->st.hnsw_bytes) {
        ix->graph = hnsw_deserialize(ix->st.hnsw_bytes, ix->st.hnsw_len, ix->st.vectors, ix->st.n_chunks, ix->st.dims,
                                     err, n);
        if (!ix->graph) return bert_free(&ix->enc), false;
    }
    ix->have_enc = true;
    ix->vectors = gl_param(GL_DIMS(ix->st.n_chunks ? ix->st.n_chunks : 1, ix->st.dims), "chunk embeddings");
    gl_param_freeze(ix->vectors);
    memcpy(ix->vectors->data, ix->st.vectors, (size_t)ix->st.n_chunks * ix->st.dims * sizeof(float));
    return true;
}

bool search_open(search_index *ix, const char *db, const char *method, const char *model_dir, char *err, size_t n) {
    memset(ix, 0, sizeof *ix);
    if (!store_load(db, &ix->st, err, n)) return false;
    ix->db = db;
    if (needs_vectors(method) && !search_use_encoder(ix, model_dir, err, n)) return store_free(&ix->st), false;
    if (!strcmp(method, "rerank") && !search_use_reranker(ix, NULL, err, n)) return search_close(ix), false;
    const char **texts = malloc((size_t)(ix->st.n_chunks ? ix->st.n_chunks : 1) * sizeof *texts);
    for (int i = 0; i < ix->st.n_chunks; i++) texts[i] = ix->st.chunks[i].text;
    ix->bm = bm25_build(texts, ix->st.n_chunks, BM25_DEFAULTS);
    free(texts);
    return true;
}

void search_close(search_index *ix) {
    if (ix->rr) reranker_free(ix->rr), free(ix->rr);
    hnsw_free(ix->graph);
    bm25_free(ix->bm);
    if (ix->have_enc) bert_free(&ix->enc), gl_param_free(ix->vectors);
    store_free(&ix->st);
}

static int by_score(const void *a, const void *b) {
    const search_hit *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->chunk - y->chunk;
}

typedef struct {
    float s;
    int id;
} scored;

static int by_similarity(const void *a, const void *b) {
    const scored *x = a, *y = b;
    if (x->s != y->s) return x->s > y->s ? -1 : 1;
    return x->id - y->id;
}

int search_dense_chunks(search_index *ix, const float *query, int k, int *ids, float *scores) {
    int nc = ix->st.n_chunks;
    if (k > nc) k = nc;
    if (ix->ann_ef > 0 && ix->graph) return hnsw_search(ix->graph, query, k, ix->ann_ef, ids, scores);
    gl_tensor *q = gl_param(GL_DIMS(1, ix->st.dims), "query");
    memcpy(q->data, query, (size_t)ix->st.dims * sizeof *query);
    gl_scope scope = gl_scope_begin();
    gl_no_grad_begin();
    gl_tensor *cos = gl_linear(q, gl_transpose(ix->vectors, 0, 1), NULL); /* [1, chunks]: one GEMM */
    gl_no_grad_end();
    scored *all = malloc((size_t)(nc ? nc : 1) * sizeof *all);
    for (int c = 0; c < nc; c++) all[c] = (scored){cos->data[c], c};
    gl_scope_end(&scope);
    gl_param_free(q);
    qsort(all, (size_t)nc, sizeof *all, by_similarity);
    for (int i = 0; i < k; i++) {
        ids[i] = all[i].id;
        if (scores) scores[i] = all[i].s;
    }
    free(all);
    return k;
}

int search_rank_pages(search_index *ix, const char *method, const char *query, search_hit *out) {
    return search_rank_pages_with(ix, method, query, NULL, out);
}

int search_rank_pages_with(search_index *ix, const char *method, const char *query, const float *qvec,
                           search_hit *out) {
    int nc = ix->st.n_chunks, np = ix->st.n_pages, n = 0;
    if (!strcmp(method, "rerank")) { /* the hybrid top pages rescored, best first; the rest after them as they were */
        if (!ix->rr) gl_fatal("search", "rerank without a reranker (search_use_reranker)");
        n = search_rank_pages_with(ix, "hybrid", query, qvec, out);
        int depth = n < SEARCH_RERANK_DEPTH ? n : SEARCH_RERANK_DEPTH;
        for (int i = 0; i < depth; i++) out[i].score = reranker_relevance(ix->rr, query, ix->st.chunks[out[i].chunk].text);
        qsort(out, (size_t)depth, sizeof *out, by_score);
        return n;
    }
    for (int p = 0; p < np; p++) out[p] = (search_hit){p, -1, -INFINITY};
    if (!strcmp(method, "hybrid")) { /* reciprocal rank fusion of the two page rankings, k = 60 */
        search_hit *a = malloc((size_t)np * sizeof *a), *b = malloc((size_t)np * sizeof *b);
        int na = search_rank_pages_with(ix, "bm25", query, qvec, a), nb = search_rank_pages_with(ix, "dense", query, qvec, b);
        for (int p = 0; p < np; p++) out[p].score = 0;
        for (int r = 0; r < na; r++) out[a[r].page].score += 1.0 / (60 + r + 1), out[a[r].page].chunk = a[r].chunk;
        for (int r = 0; r < nb; r++) {
            search_hit *h = &out[b[r].page];
            h->score += 1.0 / (60 + r + 1);
            if (h->chunk < 0) h->chunk = b[r].chunk;
        }
        free(a), free(b);
    } else if (!strcmp(method, "bm25") || !strcmp(method, "dense")) {
        double *sc = malloc((size_t)(nc ? nc : 1) * sizeof *sc);
        if (!strcmp(method, "bm25")) bm25_scores(ix->bm, query, sc);
        else { /* the question's embedding against the chunks': exact, or the closest through the graph */
            float *q = malloc((size_t)ix->st.dims * sizeof *q), *cs = malloc((size_t)(nc ? nc : 1) * sizeof *cs);
            int *ids = malloc((size_t)(nc ? nc : 1) * sizeof *ids);
            if (qvec) memcpy(q, qvec, (size_t)ix->st.dims * sizeof *q);
            else bert_embed(&ix->enc, query, q, &ix->query_truncated);
            int k = ix->ann_ef > 0 && ix->graph ? (nc < 100 ? nc : 100) : nc;
            int got = search_dense_chunks(ix, q, k, ids, cs);
            memset(sc, 0, (size_t)nc * sizeof *sc);
            for (int i = 0; i < got; i++) sc[ids[i]] = cs[i] == 0 ? 1e-30 : cs[i]; /* 0 marks "not found" below */
            free(q), free(cs), free(ids);
        }
        for (int c = 0; c < nc; c++) { /* != 0: in a tiny corpus a word of most chunks scores below 0 */
            search_hit *h = &out[ix->st.chunks[c].page];
            if (sc[c] != 0 && sc[c] > h->score) h->score = sc[c], h->chunk = c;
        }
        free(sc);
    } else { /* fts5: chunks in SQLite's order; a page takes the rank of its first chunk there */
        char err[512];
        int *ids = malloc((size_t)(nc ? nc : 1) * sizeof *ids);
        int found = store_fts_search(ix->db, query, nc, ids, err, sizeof err);
        if (found < 0) fprintf(stderr, "gradlab: %s\n", err), found = 0; /* a damaged FTS table: nothing found */
        for (int r = 0; r < found; r++) {
            search_hit *h = &out[ix->st.chunks[ids[r]].page];
            if (h->chunk < 0) h->score = (double)(found - r), h->chunk = ids[r];
        }
        free(ids);
    }
    for (int p = 0; p < np; p++)
        if (out[p].chunk >= 0) out[n++] = out[p];
    qsort(out, (size_t)n, sizeof *out, by_score);
    return n;
}

