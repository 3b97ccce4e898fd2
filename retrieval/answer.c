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
    for (int i = 0; i < n && i < ANSWER_RANKED; i++) out->ranked[out->n_ranked++] = hits[i].page;
    int want = c.sources < ANSWER_MAX_SOURCES ? c.sources : ANSWER_MAX_SOURCES;
    for (int i = 0; i < n && out->n_sources < want; i++) {
        if (c.admit && !c.admit(ix->st.chunks[hits[i].chunk].text, c.admit_ctx)) {
            out->n_dropped++;
            continue;
        }
        out->sources[out->n_sources++] = (answer_source){hits[i].page, hits[i].chunk};
    }
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
    if (c.sentence_margin > 0)
        for (int i = 1; i < take; i++)
            if (ss[i].score < ss[0].score - c.sentence_margin) {
                take = i;
                break;
            }
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

/* ---- generated answers ---- */

void answer_generated_free(answer_generated *g) {
    free(g->text);
    memset(g, 0, sizeof *g);
}

typedef struct {
    llama *m;
    char *buf;
    size_t len, cap;
    int tokens;
} gen_sink;

/* appends each token's bytes; stops after the first sentence (a token ending in . ! or ?, or a blank line) */
static bool collect(int32_t token, void *ctx) {
    gen_sink *g = ctx;
    size_t n;
    const unsigned char *b = gl_bpe_token_bytes(g->m->tok, token, &n);
    if (gl_bpe_is_special(g->m->tok, token)) return true;
    if (g->len + n + 1 > g->cap) g->cap = 2 * (g->len + n + 1), g->buf = realloc(g->buf, g->cap);
    for (size_t i = 0; i < n; i++) g->buf[g->len++] = b[i] == '\n' ? ' ' : (char)b[i]; /* one line per answer */
    g->buf[g->len] = 0;
    g->tokens++;
    bool end = n && (b[n - 1] == '.' || b[n - 1] == '!' || b[n - 1] == '?' || (n >= 2 && b[n - 1] == '\n' && b[n - 2] == '\n'));
    return !end;
}

/* the chunk's heading line and up to `limit` words of its body, as a bounded prefix of text */
static int words_prefix(const char *t, int limit) {
    const char *end = t;
    for (int words = 0; *end; end++)
        if ((end == t || end[-1] == ' ' || end[-1] == '\n') && *end != ' ' && *end != '\n' && ++words > limit + 1) break;
    while (*end && end > t && end[-1] != ' ' && end[-1] != '\n') end--;
    return (int)(end - t);
}

void answer_generate(search_index *ix, llama *m, llama_cache *cache, const char *question, const answer *src,
                     int max_new, answer_generated *out) {
    memset(out, 0, sizeof *out);
    gen_sink g = {m, calloc(1, 1), 0, 1, 0};
    int32_t *ids = NULL;
    size_t ids_cap = 0;
    for (int s = 0; s < src->n_sources; s++) { /* one sentence per source, from that source alone; its citation added here */
        const char *t = ix->st.chunks[src->sources[s].chunk].text;
        size_t cap = strlen(question) + strlen(t) + 256;
        char *user = malloc(cap);
        snprintf(user, cap, "Passage:\n%.*s\n\nQuestion: %s\n\nAnswer the question in one sentence, using only the passage.",
                 words_prefix(t, 120), t, question);
        const char *roles[1] = {"user"};
        const char *texts[1] = {user};
        int n = llama_chat_ids(m, roles, texts, 1, &ids, &ids_cap);
        free(user);
        int room = cache->capacity - n > 0 ? cache->capacity - n : 0;
        size_t before = g.len;
        gl_sampling greedy = {.temperature = 0, .top_k = 0, .top_p = 1};
        if (room > 0) llama_generate(m, cache, ids, n, max_new < room ? max_new : room, &greedy, NULL, true, collect, &g);
        while (g.len > before && (g.buf[g.len - 1] == ' ' || g.buf[g.len - 1] == '\n')) g.buf[--g.len] = 0;
        if (g.len == before) continue; /* nothing written from this source */
        char cite[16];
        snprintf(cite, sizeof cite, " [%d] ", s + 1);
        size_t cl = strlen(cite);
        if (g.len + cl + 1 > g.cap) g.cap = 2 * (g.len + cl + 1), g.buf = realloc(g.buf, g.cap);
        memcpy(g.buf + g.len, cite, cl + 1), g.len += cl;
    }
    while (g.len && g.buf[g.len - 1] == ' ') g.buf[--g.len] = 0;
    free(ids);
    out->text = g.buf, out->tokens = g.tokens;
    out->supported = answer_supported(ix, src, out->text, out->reason, sizeof out->reason);
}

static bool common_word(const char *w, size_t n) {
    static const char *const stop[] = {"the", "and", "for", "are", "you", "your", "can", "with", "this", "that", "from",
                                       "use", "will", "have", "has", "not", "but", "all", "its", "was", "were", "into",
                                       "when", "which", "what", "how", "also", "then", "than", "they", "them", "there",
                                       "these", "those", "our", "out", "one", "any", "each", "more", "such", "some",
                                       "may", "should", "would", "could", "using", "used", "like", "just", "only",
                                       "about", "other", "their", "does", "here", "way", "get", "set", "make"};
    if (n < 3) return true;
    for (size_t i = 0; i < sizeof stop / sizeof *stop; i++)
        if (strlen(stop[i]) == n && !memcmp(stop[i], w, n)) return true;
    return false;
}

typedef struct {
    char **words;
    int n, cap;
} word_list;

static void add_word(const char *tok, size_t len, void *ctx) {
    word_list *l = ctx;
    if (l->n == l->cap) l->cap = l->cap ? 2 * l->cap : 64, l->words = realloc(l->words, (size_t)l->cap * sizeof *l->words);
    char *w = malloc(len + 1);
    memcpy(w, tok, len), w[len] = 0;
    l->words[l->n++] = w;
}

static void free_words(word_list *l) {
    for (int i = 0; i < l->n; i++) free(l->words[i]);
    free(l->words);
}

static bool has_word(const word_list *l, const char *w) {
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->words[i], w)) return true;
    return false;
}

bool answer_supported(const search_index *ix, const answer *src, const char *text, char *reason, size_t rn) {
    int bad = 0, cites = 0;
    if (!answer_citations_valid(text, src->n_sources, &bad))
        return snprintf(reason, rn, "cites [%d], but there are %d sources", bad, src->n_sources), false;
    for (const char *p = text; (p = strchr(p, '[')) != NULL; p++) cites += isdigit((unsigned char)p[1]) != 0;
    if (!cites) return snprintf(reason, rn, "cites no source"), false;
    bool ok = true;
    reason[0] = 0;
    for (const char *s = text; *s && ok;) {
        while (*s == ' ' || *s == '\n') s++;
        const char *e = s;
        while (*e && *e != '\n' && !((*e == '.' || *e == '!' || *e == '?') && (e[1] == ' ' || e[1] == '\n' || !e[1]))) e++;
        if (*e) e++;
        /* "... sentence. [2]": a citation after the full stop belongs to the sentence before it */
        for (const char *c = e;;) {
            while (*c == ' ') c++;
            if (c[0] != '[' || !isdigit((unsigned char)c[1])) break;
            const char *q = c + 1;
            while (isdigit((unsigned char)*q)) q++;
            if (*q != ']') break;
            e = c = q + 1;
        }
        if (e == s) break;
        size_t sl = (size_t)(e - s);
        char *sent = malloc(sl + 1);
        memcpy(sent, s, sl), sent[sl] = 0;
        /* the chunks this sentence cites (every source if none) */
        bool cited[ANSWER_MAX_SOURCES] = {false}, any = false;
        for (const char *p = sent; (p = strchr(p, '[')) != NULL; p++)
            if (isdigit((unsigned char)p[1])) {
                long v = strtol(p + 1, NULL, 10);
                if (v >= 1 && v <= src->n_sources) cited[v - 1] = any = true;
            }
        word_list have = {0}, words = {0};
        for (int k = 0; k < src->n_sources; k++)
            if (!any || cited[k]) bm25_tokens(ix->st.chunks[src->sources[k].chunk].text, add_word, &have);
        bm25_tokens(sent, add_word, &words);
        int content = 0, found = 0;
        for (int i = 0; i < words.n; i++) {
            if (common_word(words.words[i], strlen(words.words[i]))) continue;
            if (isdigit((unsigned char)words.words[i][0]) && strlen(words.words[i]) == 1) continue;
            content++;
            found += has_word(&have, words.words[i]);
        }
        /* code between backticks must be the sources' own */
        for (const char *p = sent; ok && (p = strchr(p, '`')) != NULL;) {
            const char *q = strchr(p + 1, '`');
            if (!q) break;
            size_t cl = (size_t)(q - p - 1);
            bool seen = cl == 0;
            char *code = malloc(cl + 1);
            memcpy(code, p + 1, cl), code[cl] = 0;
            for (int k = 0; !seen && k < src->n_sources; k++)
                seen = (!any || cited[k]) && strstr(ix->st.chunks[src->sources[k].chunk].text, code) != NULL;
            free(code);
            if (!seen) snprintf(reason, rn, "`%.*s` is not in the sources it cites", (int)(cl < 60 ? cl : 60), p + 1), ok = false;
            p = q + 1;
        }
        if (ok && content >= 3 && found < 0.75 * content) {
            snprintf(reason, rn, "%d of %d content words of \"%.80s\" are in the sources it cites", found, content, sent);
            ok = false;
        }
        free_words(&have), free_words(&words);
        free(sent);
        s = e;
    }
    return ok;
}
