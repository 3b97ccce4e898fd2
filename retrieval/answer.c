#include "answer.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *text;
    int source;
    double score;
} sentence;

static int by_score_desc(const void *a, const void *b) {
    const sentence *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->source - y->source;
}

/* the sentences of a chunk's body (after its heading line) of at least 4 words */
static int split_sentences(const char *chunk_text, int source, sentence **out, int *n, int *cap) {
    const char *s = strchr(chunk_text, '\n');
    s = s ? s + 1 : chunk_text;
    int added = 0;
    while (*s) {
        while (*s == ' ') s++;
        if ((*s == '*' || *s == '-') && s[1] == ' ') s += 2; /* a list item's marker */
        const char *e = s;
        while (*e && !((*e == '.' || *e == '!' || *e == '?') && (e[1] == ' ' || !e[1]))) e++;
        if (*e) e++;
        int words = 0;
        for (const char *p = s; p < e; p++) words += (p == s || p[-1] == ' ') && *p != ' ';
        if (words >= 4) {
            if (*n == *cap) {
                *cap = *cap ? 2 * *cap : 32;
                if (!(*out = realloc(*out, (size_t)*cap * sizeof **out))) abort();
            }
            char *t = malloc((size_t)(e - s) + 1);
            memcpy(t, s, (size_t)(e - s)), t[e - s] = 0;
            (*out)[(*n)++] = (sentence){t, source, 0};
            added++;
        }
        s = e;
    }
    return added;
}

void answer_extract(search_index *ix, const char *method, const char *question, answer_config c, answer *out) {
    memset(out, 0, sizeof *out);
    int np = ix->st.n_pages;
    search_hit *hits = malloc((size_t)(np ? np : 1) * sizeof *hits);
    float *q = NULL; /* the question's embedding, once, for the ranking and the sentences */
    if (ix->have_enc) {
        q = malloc((size_t)ix->st.dims * sizeof *q);
        bert_embed(&ix->enc, question, q, &ix->query_truncated);
    }
    int n = search_rank_pages_with(ix, method, question, q, hits);
    int want = c.sources < ANSWER_MAX_SOURCES ? c.sources : ANSWER_MAX_SOURCES;
    for (int i = 0; i < n && out->n_sources < want; i++)
        out->sources[out->n_sources++] = (answer_source){hits[i].page, hits[i].chunk};
    /* how close the best chunk is: its cosine when there are embeddings, else whether any word matched */
    if (q) {
        double best = -1;
        for (int s = 0; s < out->n_sources; s++) {
            const float *v = ix->st.vectors + (size_t)out->sources[s].chunk * ix->st.dims;
            double d = 0;
            for (int k = 0; k < ix->st.dims; k++) d += (double)v[k] * q[k];
            best = d > best ? d : best;
        }
        out->best = best;
        out->found = out->n_sources > 0 && best >= c.min_cosine;
    } else {
        out->best = n ? hits[0].score : 0;
        out->found = out->n_sources > 0;
    }
    free(hits);
    if (!out->found) {
        out->text = strdup("not found in the docs");
        free(q);
        return;
    }
    sentence *ss = NULL;
    int ns = 0, cap = 0;
    for (int s = 0; s < out->n_sources; s++) split_sentences(ix->st.chunks[out->sources[s].chunk].text, s, &ss, &ns, &cap);
    if (q) { /* each sentence's cosine with the question */
        float *v = malloc((size_t)ix->st.dims * sizeof *v);
        for (int i = 0; i < ns; i++) {
            bert_embed(&ix->enc, ss[i].text, v, NULL);
            double d = 0;
            for (int k = 0; k < ix->st.dims; k++) d += (double)v[k] * q[k];
            ss[i].score = d;
        }
        free(v);
    } else if (ns) { /* BM25 over the sentences */
        const char **texts = malloc((size_t)ns * sizeof *texts);
        for (int i = 0; i < ns; i++) texts[i] = ss[i].text;
        bm25 *m = bm25_build(texts, ns, BM25_DEFAULTS);
        double *sc = malloc((size_t)ns * sizeof *sc);
        bm25_scores(m, question, sc);
        for (int i = 0; i < ns; i++) ss[i].score = sc[i];
        free(sc), free(texts);
        bm25_free(m);
    }
    qsort(ss, (size_t)ns, sizeof *ss, by_score_desc);
    size_t len = 1;
    int take = ns < c.sentences ? ns : c.sentences;
    for (int i = 0; i < take; i++) len += strlen(ss[i].text) + 8;
    out->text = malloc(len);
    out->text[0] = 0;
    for (int i = 0; i < take; i++)
        snprintf(out->text + strlen(out->text), len - strlen(out->text), "%s%s [%d]", i ? " " : "", ss[i].text,
                 ss[i].source + 1);
    if (!take) { /* matching chunks without a sentence of four words */
        free(out->text);
        out->text = strdup("not found in the docs"), out->found = false;
    }
    for (int i = 0; i < ns; i++) free(ss[i].text);
    free(ss), free(q);
}

void answer_free(answer *a) {
    free(a->text);
    memset(a, 0, sizeof *a);
}

bool answer_citations_valid(const char *text, int n_sources, int *bad) {
    for (const char *s = text; (s = strchr(s, '[')) != NULL; s++) {
        const char *d = s + 1;
        if (!isdigit((unsigned char)*d)) continue;
        long v = strtol(d, (char **)&d, 10);
        if (*d != ']') continue;
        if (v < 1 || v > n_sources) {
            if (bad) *bad = (int)v;
            return false;
        }
    }
    return true;
}
