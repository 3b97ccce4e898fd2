#include "store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io.h"

struct store_writer {
    sqlite3 *db;
    char *path, *tmp;
    sqlite3_stmt *page, *chunk, *vector;
    int pages, chunks, dims;
    chunk_config config;
    char embedder[64];
};

static bool fail(sqlite3 *db, const char *what, const char *path, char *err, size_t n) {
    snprintf(err, n, "%s: %s: %s", path, what, db ? sqlite3_errmsg(db) : "out of memory");
    return false;
}

static const char *const schema =
    "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;"
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE pages(id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, bytes INTEGER NOT NULL, fnv1a TEXT NOT NULL);"
    "CREATE TABLE chunks(id INTEGER PRIMARY KEY, page INTEGER NOT NULL REFERENCES pages(id), heading TEXT NOT NULL,"
    " text TEXT NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL);"
    "CREATE VIRTUAL TABLE chunks_fts USING fts5(text, content='chunks', content_rowid='id');"
    "CREATE TABLE embeddings(chunk INTEGER PRIMARY KEY REFERENCES chunks(id), vector BLOB NOT NULL);"
    "CREATE TABLE graphs(name TEXT PRIMARY KEY, bytes BLOB NOT NULL);"
    "BEGIN;";

store_writer *store_begin(const char *path, chunk_config c, const char *embedder, int dims, char *err, size_t n) {
    store_writer *w = calloc(1, sizeof *w);
    size_t len = strlen(path) + 32;
    if (!w || !(w->path = strdup(path)) || !(w->tmp = malloc(len))) return snprintf(err, n, "out of memory"), NULL;
    snprintf(w->tmp, len, "%s.tmp-%ld", path, (long)getpid());
    unlink(w->tmp);
    w->config = c;
    w->dims = embedder && dims > 0 ? dims : 0;
    snprintf(w->embedder, sizeof w->embedder, "%s", w->dims ? embedder : "");
    if (sqlite3_open(w->tmp, &w->db) != SQLITE_OK || sqlite3_exec(w->db, schema, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(w->db, "INSERT INTO embeddings(chunk, vector) VALUES (?, ?)", -1, &w->vector, NULL) ||
        sqlite3_prepare_v2(w->db, "INSERT INTO pages(id, path, bytes, fnv1a) VALUES (?, ?, ?, ?)", -1, &w->page, NULL) ||
        sqlite3_prepare_v2(w->db, "INSERT INTO chunks(id, page, heading, text, start, end) VALUES (?, ?, ?, ?, ?, ?)", -1,
                           &w->chunk, NULL)) {
        fail(w->db, "cannot create the index", w->tmp, err, n);
        store_abort(w);
        return NULL;
    }
    return w;
}

bool store_add_page(store_writer *w, const char *path, const unsigned char *bytes, size_t len, const chunk_list *chunks,
                    const float *vectors, char *err, size_t n) {
    char hash[17];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)gl_fnv1a(1469598103934665603ULL, bytes, len));
    sqlite3_reset(w->page);
    sqlite3_bind_int(w->page, 1, w->pages);
    sqlite3_bind_text(w->page, 2, path, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(w->page, 3, (sqlite3_int64)len);
    sqlite3_bind_text(w->page, 4, hash, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(w->page) != SQLITE_DONE) return fail(w->db, "cannot add a page", path, err, n);
    for (int i = 0; i < chunks->n; i++) {
        const chunk *c = &chunks->items[i];
        sqlite3_reset(w->chunk);
        sqlite3_bind_int(w->chunk, 1, w->chunks);
        sqlite3_bind_int(w->chunk, 2, w->pages);
        sqlite3_bind_text(w->chunk, 3, c->heading, -1, SQLITE_STATIC);
        sqlite3_bind_text(w->chunk, 4, c->text, -1, SQLITE_STATIC);
        sqlite3_bind_int64(w->chunk, 5, (sqlite3_int64)c->start);
        sqlite3_bind_int64(w->chunk, 6, (sqlite3_int64)c->end);
        if (sqlite3_step(w->chunk) != SQLITE_DONE) return fail(w->db, "cannot add a chunk", path, err, n);
        if (w->dims) {
            if (!vectors) return snprintf(err, n, "%s: the index keeps embeddings and none were given", path), false;
            sqlite3_reset(w->vector);
            sqlite3_bind_int(w->vector, 1, w->chunks);
            sqlite3_bind_blob(w->vector, 2, vectors + (size_t)i * w->dims, (int)(w->dims * sizeof(float)), SQLITE_STATIC);
            if (sqlite3_step(w->vector) != SQLITE_DONE) return fail(w->db, "cannot add an embedding", path, err, n);
        }
        w->chunks++;
    }
    w->pages++;
    return true;
}

bool store_add_graph(store_writer *w, const char *name, const unsigned char *bytes, size_t len, char *err, size_t n) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(w->db, "INSERT INTO graphs(name, bytes) VALUES (?, ?)", -1, &st, NULL) != SQLITE_OK)
        return fail(w->db, "cannot add a graph", w->tmp, err, n);
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_blob64(st, 2, bytes, (sqlite3_uint64)len, SQLITE_STATIC);
    bool ok = sqlite3_step(st) == SQLITE_DONE;
    sqlite3_finalize(st);
    return ok ? true : fail(w->db, "cannot add a graph", w->tmp, err, n);
}

static bool set_meta(sqlite3 *db, const char *key, const char *value) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "INSERT INTO meta(key, value) VALUES (?, ?)", -1, &st, NULL) != SQLITE_OK) return false;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
    bool ok = sqlite3_step(st) == SQLITE_DONE;
    sqlite3_finalize(st);
    return ok;
}

bool store_commit(store_writer *w, char *err, size_t n) {
    char words[16], overlap[16], pages[16], chunks[16], dims[16];
    snprintf(words, sizeof words, "%d", w->config.words), snprintf(overlap, sizeof overlap, "%d", w->config.overlap);
    snprintf(pages, sizeof pages, "%d", w->pages), snprintf(chunks, sizeof chunks, "%d", w->chunks);
    snprintf(dims, sizeof dims, "%d", w->dims);
    bool ok = set_meta(w->db, "format", STORE_FORMAT) && set_meta(w->db, "chunking", chunk_strategy_name(w->config.strategy)) &&
              set_meta(w->db, "words", words) && set_meta(w->db, "overlap", overlap) && set_meta(w->db, "pages", pages) &&
              set_meta(w->db, "chunks", chunks) && set_meta(w->db, "dims", dims) && set_meta(w->db, "embedder", w->embedder) &&
              sqlite3_exec(w->db, "INSERT INTO chunks_fts(chunks_fts) VALUES ('rebuild'); COMMIT;", NULL, NULL, NULL) == SQLITE_OK;
    if (!ok) {
        fail(w->db, "cannot finish the index", w->tmp, err, n);
        store_abort(w);
        return false;
    }
    sqlite3_finalize(w->page), sqlite3_finalize(w->chunk), sqlite3_finalize(w->vector);
    w->page = w->chunk = w->vector = NULL;
    ok = sqlite3_close(w->db) == SQLITE_OK;
    w->db = NULL;
    int fd = ok ? open(w->tmp, O_RDONLY) : -1;
    ok = fd >= 0 && fsync(fd) == 0;
    if (fd >= 0) close(fd);
    if (!ok || rename(w->tmp, w->path) != 0) {
        snprintf(err, n, "%s: cannot write the index (disk full, or the folder is not writable?)", w->path);
        store_abort(w);
        return false;
    }
    char dir[4096];
    gl_parent_dir(w->path, dir, sizeof dir);
    int dfd = open(dir, O_RDONLY);
    if (dfd >= 0) fsync(dfd), close(dfd);
    free(w->path), free(w->tmp), free(w);
    return true;
}

void store_abort(store_writer *w) {
    if (!w) return;
    sqlite3_finalize(w->page), sqlite3_finalize(w->chunk), sqlite3_finalize(w->vector);
    if (w->db) sqlite3_close(w->db);
    if (w->tmp) unlink(w->tmp);
    free(w->path), free(w->tmp), free(w);
}

static char *text_dup(sqlite3_stmt *st, int col) {
    const unsigned char *t = sqlite3_column_text(st, col);
    char *d = strdup(t ? (const char *)t : "");
    if (!d) abort();
    return d;
}

bool store_load(const char *path, store *s, char *err, size_t n) {
    memset(s, 0, sizeof *s);
    sqlite3 *db = NULL;
    if (access(path, R_OK) != 0)
        return snprintf(err, n, "%s: no index there (make one with: rag index --docs DIR --db %s)", path, path), false;
    sqlite3_stmt *st = NULL;
    bool ok = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
              sqlite3_prepare_v2(db, "SELECT key, value FROM meta", -1, &st, NULL) == SQLITE_OK;
    if (!ok) {
        snprintf(err, n, "%s: not a gradlab index (%s); make it again with rag index", path, db ? sqlite3_errmsg(db) : "?");
        sqlite3_finalize(st), sqlite3_close(db);
        return false;
    }
    char format[64] = "", chunking[32] = "";
    s->config = (chunk_config){CHUNK_HEADING, 0, 0};
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(st, 0), *v = (const char *)sqlite3_column_text(st, 1);
        if (!k || !v) continue;
        if (!strcmp(k, "format")) snprintf(format, sizeof format, "%s", v);
        else if (!strcmp(k, "chunking")) snprintf(chunking, sizeof chunking, "%s", v);
        else if (!strcmp(k, "words")) s->config.words = atoi(v);
        else if (!strcmp(k, "overlap")) s->config.overlap = atoi(v);
        else if (!strcmp(k, "dims")) s->dims = atoi(v);
        else if (!strcmp(k, "embedder")) snprintf(s->embedder, sizeof s->embedder, "%s", v);
    }
    sqlite3_finalize(st);
    if (strcmp(format, STORE_FORMAT) != 0 || !chunk_strategy_parse(chunking, &s->config.strategy)) {
        snprintf(err, n, "%s: index format '%s', expected '%s'; make it again with rag index", path, format, STORE_FORMAT);
        sqlite3_close(db);
        return false;
    }
    int np = 0, nc = 0;
    ok = sqlite3_prepare_v2(db, "SELECT (SELECT count(*) FROM pages), (SELECT count(*) FROM chunks)", -1, &st, NULL) == SQLITE_OK &&
         sqlite3_step(st) == SQLITE_ROW;
    if (ok) np = sqlite3_column_int(st, 0), nc = sqlite3_column_int(st, 1);
    sqlite3_finalize(st);
    s->pages = calloc((size_t)(np ? np : 1), sizeof *s->pages);
    s->chunks = calloc((size_t)(nc ? nc : 1), sizeof *s->chunks);
    ok = ok && s->pages && s->chunks &&
         sqlite3_prepare_v2(db, "SELECT id, path, bytes, fnv1a FROM pages ORDER BY id", -1, &st, NULL) == SQLITE_OK;
    while (ok && sqlite3_step(st) == SQLITE_ROW) {
        int id = sqlite3_column_int(st, 0);
        if (id != s->n_pages || id >= np) {
            ok = false;
            break;
        }
        store_page *p = &s->pages[s->n_pages++];
        p->path = text_dup(st, 1), p->bytes = sqlite3_column_int64(st, 2);
        p->fnv1a = strtoull((const char *)sqlite3_column_text(st, 3), NULL, 16);
    }
    sqlite3_finalize(st);
    ok = ok && sqlite3_prepare_v2(db, "SELECT id, page, heading, text, start, end FROM chunks ORDER BY id", -1, &st, NULL) == SQLITE_OK;
    while (ok && sqlite3_step(st) == SQLITE_ROW) {
        int id = sqlite3_column_int(st, 0), page = sqlite3_column_int(st, 1);
        if (id != s->n_chunks || id >= nc || page < 0 || page >= s->n_pages) {
            ok = false;
            break;
        }
        store_chunk *c = &s->chunks[s->n_chunks++];
        c->page = page, c->heading = text_dup(st, 2), c->text = text_dup(st, 3);
        c->start = sqlite3_column_int64(st, 4), c->end = sqlite3_column_int64(st, 5);
    }
    sqlite3_finalize(st);
    if (ok && s->dims > 0) { /* every chunk's embedding, in chunk order */
        if (s->dims > 65536 || !(s->vectors = malloc((size_t)(nc ? nc : 1) * s->dims * sizeof(float)))) ok = false;
        int seen = 0;
        ok = ok && sqlite3_prepare_v2(db, "SELECT chunk, vector FROM embeddings ORDER BY chunk", -1, &st, NULL) == SQLITE_OK;
        while (ok && sqlite3_step(st) == SQLITE_ROW) {
            int id = sqlite3_column_int(st, 0);
            if (id != seen || id >= nc || sqlite3_column_bytes(st, 1) != (int)(s->dims * sizeof(float))) {
                ok = false;
                break;
            }
            memcpy(s->vectors + (size_t)id * s->dims, sqlite3_column_blob(st, 1), s->dims * sizeof(float));
            seen++;
        }
        sqlite3_finalize(st);
        ok = ok && seen == nc;
        /* the HNSW graph, if the index has one (older indexes have no graphs table: none) */
        if (ok && sqlite3_prepare_v2(db, "SELECT bytes FROM graphs WHERE name = 'hnsw'", -1, &st, NULL) == SQLITE_OK) {
            if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) > 0) {
                s->hnsw_len = (size_t)sqlite3_column_bytes(st, 0);
                if ((s->hnsw_bytes = malloc(s->hnsw_len))) memcpy(s->hnsw_bytes, sqlite3_column_blob(st, 0), s->hnsw_len);
                else ok = false;
            }
            sqlite3_finalize(st);
        }
    } else s->dims = 0;
    if (!ok || s->n_pages != np || s->n_chunks != nc) {
        snprintf(err, n, "%s: the index is damaged (%s); make it again with rag index", path, sqlite3_errmsg(db));
        sqlite3_close(db);
        store_free(s);
        return false;
    }
    sqlite3_close(db);
    return true;
}

void store_free(store *s) {
    for (int i = 0; i < s->n_pages; i++) free(s->pages[i].path);
    for (int i = 0; i < s->n_chunks; i++) free(s->chunks[i].heading), free(s->chunks[i].text);
    free(s->pages), free(s->chunks), free(s->vectors), free(s->hnsw_bytes);
    memset(s, 0, sizeof *s);
}

int store_fts_search(const char *path, const char *query, int k, int *chunk_ids, char *err, size_t n) {
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    /* the query's words OR'ed, each quoted: FTS5's syntax characters in a question are not operators */
    size_t len = strlen(query), cap = len * 3 + 16, at = 0;
    char *q = malloc(cap);
    if (!q) return snprintf(err, n, "out of memory"), -1;
    for (size_t i = 0; i < len;) {
        while (i < len && !((unsigned char)query[i] >= 128 || ((unsigned char)query[i] < 128 && (query[i] == '_' ||
               (query[i] >= '0' && query[i] <= '9') || ((query[i] | 32) >= 'a' && (query[i] | 32) <= 'z'))))) i++;
        size_t j = i;
        while (j < len && ((unsigned char)query[j] >= 128 || query[j] == '_' || (query[j] >= '0' && query[j] <= '9') ||
                           ((query[j] | 32) >= 'a' && (query[j] | 32) <= 'z'))) j++;
        if (j > i) {
            at += (size_t)snprintf(q + at, cap - at, "%s\"%.*s\"", at ? " OR " : "", (int)(j - i), query + i);
        }
        i = j;
    }
    q[at] = 0;
    int found = 0;
    if (!at) {
        free(q);
        return 0;
    }
    bool ok = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
              sqlite3_prepare_v2(db, "SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY bm25(chunks_fts), rowid LIMIT ?",
                                 -1, &st, NULL) == SQLITE_OK;
    if (ok) {
        sqlite3_bind_text(st, 1, q, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, k);
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) chunk_ids[found++] = sqlite3_column_int(st, 0);
        ok = rc == SQLITE_DONE;
    }
    if (!ok) snprintf(err, n, "%s: full-text search failed: %s", path, db ? sqlite3_errmsg(db) : "?");
    sqlite3_finalize(st), sqlite3_close(db);
    free(q);
    return ok ? found : -1;
}
