/* The document store: one SQLite file holding pages and their chunks, and an FTS5 index over the chunks (SQLite's
 * own BM25, a second peer). An index is written whole into a temporary file in one transaction, synced, and renamed
 * over the old one: an interrupted `rag index` leaves the previous index as it was.
 *
 *   meta(key, value)                          format "gradlab-rag 1", chunking, words, overlap, pages, chunks
 *   pages(id, path, bytes, fnv1a)             one row per page, in manifest order
 *   chunks(id, page, heading, text, start, end)  in page order, then order within the page
 *   chunks_fts(text)                          FTS5, content = chunks
 *   embeddings(chunk, vector)                 optional: each chunk's embedding, dims floats (meta "embedder", "dims")
 *   graphs(name, bytes)                       optional: "hnsw", the HNSW graph over the embeddings (retrieval/hnsw.h) */
#ifndef GRADLAB_STORE_H
#define GRADLAB_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunk.h"

#define STORE_FORMAT "gradlab-rag 1"

typedef struct {
    char *path;
    int64_t bytes;
    uint64_t fnv1a;
} store_page;

typedef struct {
    int page;      /* index into pages */
    char *heading, *text;
    int64_t start, end;
} store_chunk;

typedef struct {
    store_page *pages;
    int n_pages;
    store_chunk *chunks;
    int n_chunks;
    chunk_config config;
    float *vectors; /* n_chunks x dims, or NULL when the index has no embeddings */
    int dims;
    char embedder[64];
    unsigned char *hnsw_bytes; /* the stored graph (NULL: none) */
    size_t hnsw_len;
} store;

typedef struct store_writer store_writer;

/* a new index at path (written beside it until store_commit); with embedder (a name) and dims > 0 every page's
 * chunks come with their embeddings; NULL with a message */
store_writer *store_begin(const char *path, chunk_config c, const char *embedder, int dims, char *err, size_t err_len);
/* a page and its chunks (and their embeddings, chunks->n x dims floats, when the index has them) */
bool store_add_page(store_writer *w, const char *path, const unsigned char *bytes, size_t len, const chunk_list *chunks,
                    const float *vectors, char *err, size_t err_len);
/* a named blob in the graphs table (the HNSW graph) */
bool store_add_graph(store_writer *w, const char *name, const unsigned char *bytes, size_t len, char *err, size_t err_len);
/* the transaction committed, the file synced and renamed over path; false (and nothing changed at path) on error */
bool store_commit(store_writer *w, char *err, size_t err_len);
void store_abort(store_writer *w); /* the temporary file removed */

/* Reads a whole index; false with a message naming the file for a missing, foreign, older or damaged one. */
bool store_load(const char *path, store *s, char *err, size_t err_len);
void store_free(store *s);

/* SQLite FTS5's ranking (its own bm25(), unicode61 tokenizer) of the chunks for a query: up to k chunk indexes,
 * best first; -1 with a message on error */
int store_fts_search(const char *path, const char *query, int k, int *chunk_ids, char *err, size_t err_len);

#endif
