#include "bm25.h"

#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"     /* gl_fnv1a */
#include "tensor.h" /* gl_fatal */

typedef struct {
    int doc, tf;
} posting;

typedef struct {
    char *text;
    int len;
    int n_docs;   /* documents containing it */
    double idf;
    posting *post;
    int n_post, cap_post;
} term;

struct bm25 {
    bm25_params p;
    int n_docs;
    int *doc_len;
    double avgdl;
    term *terms;
    int n_terms, cap_terms;
    int *slots; /* open addressing over term ids (-1 empty), a power of two */
    size_t n_slots;
};

void bm25_tokens(const char *text, void (*fn)(const char *tok, size_t len, void *ctx), void *ctx) {
    char buf[256];
    for (const char *s = text; *s;) {
        while (*s && !(isalnum((unsigned char)*s) && (unsigned char)*s < 128) && *s != '_') s++;
        if (!*s) break;
        const char *e = s;
        while (*e && ((isalnum((unsigned char)*e) && (unsigned char)*e < 128) || *e == '_')) e++;
        size_t n = (size_t)(e - s);
        char *t = n <= sizeof buf ? buf : malloc(n);
        if (!t) gl_fatal("bm25", "out of memory");
        for (size_t i = 0; i < n; i++) t[i] = (char)tolower((unsigned char)s[i]);
        fn(t, n, ctx);
        if (t != buf) free(t);
        s = e;
    }
}

static size_t slot_of(const bm25 *m, const char *tok, size_t len) {
    size_t mask = m->n_slots - 1, i = (size_t)gl_fnv1a(1469598103934665603ULL, tok, len) & mask;
    while (m->slots[i] >= 0) {
        const term *t = &m->terms[m->slots[i]];
        if ((size_t)t->len == len && !memcmp(t->text, tok, len)) break;
        i = (i + 1) & mask;
    }
    return i;
}

static int find(const bm25 *m, const char *tok, size_t len) { return m->slots[slot_of(m, tok, len)]; }

static void rehash(bm25 *m) {
    free(m->slots);
    m->n_slots = m->n_slots ? m->n_slots * 2 : 1024;
    if (!(m->slots = malloc(m->n_slots * sizeof *m->slots))) gl_fatal("bm25", "out of memory");
    memset(m->slots, -1, m->n_slots * sizeof *m->slots);
    for (int i = 0; i < m->n_terms; i++) m->slots[slot_of(m, m->terms[i].text, (size_t)m->terms[i].len)] = i;
}

typedef struct {
    bm25 *m;
    int doc;
} adding;

/* one token of document doc: its term (new ones in order of first appearance, as rank_bm25's dict) and tf */
static void add_token(const char *tok, size_t len, void *ctx) {
    adding *a = ctx;
    bm25 *m = a->m;
    if ((size_t)(m->n_terms + 1) * 2 > m->n_slots) rehash(m);
    size_t s = slot_of(m, tok, len);
    if (m->slots[s] < 0) {
        if (m->n_terms == m->cap_terms) {
            m->cap_terms = m->cap_terms ? 2 * m->cap_terms : 1024;
            if (!(m->terms = realloc(m->terms, (size_t)m->cap_terms * sizeof *m->terms))) gl_fatal("bm25", "out of memory");
        }
        term *t = &m->terms[m->n_terms];
        memset(t, 0, sizeof *t);
        if (!(t->text = malloc(len + 1))) gl_fatal("bm25", "out of memory");
        memcpy(t->text, tok, len), t->text[len] = 0, t->len = (int)len;
        m->slots[s] = m->n_terms++;
    }
    term *t = &m->terms[m->slots[s]];
    if (t->n_post && t->post[t->n_post - 1].doc == a->doc) t->post[t->n_post - 1].tf++;
    else {
        if (t->n_post == t->cap_post) {
            t->cap_post = t->cap_post ? 2 * t->cap_post : 4;
            if (!(t->post = realloc(t->post, (size_t)t->cap_post * sizeof *t->post))) gl_fatal("bm25", "out of memory");
        }
        t->post[t->n_post++] = (posting){a->doc, 1};
    }
    m->doc_len[a->doc]++;
}

bm25 *bm25_build(const char *const *docs, int n_docs, bm25_params p) {
    bm25 *m = calloc(1, sizeof *m);
    if (!m || !(m->doc_len = calloc((size_t)(n_docs ? n_docs : 1), sizeof *m->doc_len))) gl_fatal("bm25", "out of memory");
    m->p = p, m->n_docs = n_docs;
    rehash(m);
    long long total = 0;
    for (int d = 0; d < n_docs; d++) {
        adding a = {m, d};
        bm25_tokens(docs[d], add_token, &a);
        total += m->doc_len[d];
    }
    m->avgdl = n_docs ? (double)total / n_docs : 0;
    /* rank_bm25's _calc_idf: every term's idf summed in order for the mean, then the floor for negative ones */
    double idf_sum = 0;
    for (int i = 0; i < m->n_terms; i++) {
        term *t = &m->terms[i];
        t->n_docs = t->n_post;
        t->idf = log((double)n_docs - t->n_docs + 0.5) - log(t->n_docs + 0.5);
        idf_sum += t->idf;
    }
    double eps = m->n_terms ? p.epsilon * (idf_sum / m->n_terms) : 0;
    for (int i = 0; i < m->n_terms; i++)
        if (m->terms[i].idf < 0) m->terms[i].idf = eps;
    return m;
}

typedef struct {
    const bm25 *m;
    double *scores;
} scoring;

static void score_token(const char *tok, size_t len, void *ctx) {
    scoring *s = ctx;
    const bm25 *m = s->m;
    int id = find(m, tok, len);
    if (id < 0) return; /* idf 0: adds 0.0 to every score, as rank_bm25 does */
    const term *t = &m->terms[id];
    /* BEGIN SOLUTION lab09: BM25's term score: add idf * tf (k1 + 1) / (tf + k1 (1 - b + b |d| / avgdl)) to each document that has the term */
    double k1 = m->p.k1, b = m->p.b;
    for (int i = 0; i < t->n_post; i++) {
        double tf = t->post[i].tf, dl = m->doc_len[t->post[i].doc];
        s->scores[t->post[i].doc] += t->idf * (tf * (k1 + 1) / (tf + k1 * ((1 - b) + b * dl / m->avgdl)));
    }
    /* END SOLUTION */
}

void bm25_scores(const bm25 *m, const char *query, double *scores) {
    memset(scores, 0, (size_t)m->n_docs * sizeof *scores);
    scoring s = {m, scores};
    bm25_tokens(query, score_token, &s);
}

int bm25_doc_count(const bm25 *m) { return m->n_docs; }
int bm25_vocab_size(const bm25 *m) { return m->n_terms; }
double bm25_avgdl(const bm25 *m) { return m->avgdl; }

double bm25_idf(const bm25 *m, const char *term_text) {
    int id = find(m, term_text, strlen(term_text));
    return id < 0 ? 0 : m->terms[id].idf;
}

int bm25_doc_freq(const bm25 *m, const char *term_text) {
    int id = find(m, term_text, strlen(term_text));
    return id < 0 ? 0 : m->terms[id].n_docs;
}

void bm25_free(bm25 *m) {
    if (!m) return;
    for (int i = 0; i < m->n_terms; i++) free(m->terms[i].text), free(m->terms[i].post);
    free(m->terms), free(m->slots), free(m->doc_len);
    free(m);
}
