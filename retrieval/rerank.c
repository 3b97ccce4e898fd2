#include "rerank.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the single token the text encodes to, or -1 */
static int32_t single_token(llama *m, const char *text) {
    int32_t *ids = NULL;
    size_t cap = 0, n = gl_bpe_encode(m->tok, (const unsigned char *)text, strlen(text), &ids, &cap);
    int32_t id = n == 1 ? ids[0] : -1;
    free(ids);
    return id;
}

bool reranker_load(reranker *r, const char *path, char *err, size_t err_len) {
    memset(r, 0, sizeof *r);
    if (!llama_load(&r->model, path, err, err_len)) return false;
    llama *m = &r->model;
    if (!m->tok || !m->chatml) {
        snprintf(err, err_len, "%s: reranking needs a model with a tokenizer and a ChatML chat template", path);
        return llama_free(m), false;
    }
    const char *words[4] = {"yes", "Yes", "no", "No"};
    for (int i = 0; i < 4; i++) {
        int32_t id = single_token(m, words[i]);
        if (id < 0) {
            snprintf(err, err_len, "%s: '%s' is not one token of its vocabulary: the yes/no score needs it", path, words[i]);
            return llama_free(m), false;
        }
        (i < 2 ? r->yes : r->no)[i % 2] = id;
    }
    r->max_passage_words = 120;
    llama_cache_init(&r->cache, m, m->cfg.ctx_len < 2048 ? m->cfg.ctx_len : 2048, true);
    return true;
}

void reranker_free(reranker *r) {
    llama_cache_free(&r->cache);
    llama_free(&r->model);
    free(r->ids);
}

/* the largest n' <= n that does not split a UTF-8 character */
static size_t utf8_start(const char *s, size_t n) {
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
    return n;
}

/* How much of the question and the passage go into a prompt: the passage up to the start of its word number
 * max_passage_words + 1; bytes bound tokens, so at most 1000 bytes of the question and 900 of the passage keep any
 * prompt within the 2048 positions of the cache. */
static void prompt_lengths(const reranker *r, const char *question, const char *passage, size_t *qlen, size_t *cut) {
    size_t plen = strlen(passage);
    *cut = plen, *qlen = strlen(question);
    bool in_word = false;
    for (size_t i = 0, words = 0; i < plen; i++) {
        bool space = passage[i] == ' ' || passage[i] == '\n' || passage[i] == '\t';
        if (!space && !in_word && ++words > (size_t)r->max_passage_words) {
            *cut = i;
            break;
        }
        in_word = !space;
    }
    if (*qlen > 1000) *qlen = utf8_start(question, 1000);
    if (*cut > 900) *cut = utf8_start(passage, 900);
}

static double log_sum_exp2(double a, double b) {
    double m = fmax(a, b);
    return m + log(exp(a - m) + exp(b - m));
}

double reranker_yes_no(reranker *r, const char *system, const char *user) {
    llama *m = &r->model;
    const char *roles[2] = {"system", "user"};
    const char *texts[2] = {system, user};
    int n = llama_chat_ids(m, roles, texts, 2, &r->ids, &r->cap);
    if (n > r->cache.capacity) gl_fatal("rerank", "a prompt of %d tokens for a cache of %d", n, r->cache.capacity);
    /* keep the cached prefix this prompt shares with the last one */
    int keep = 0;
    while (keep < r->cache.len && keep < n - 1 && r->cache.ids[keep] == r->ids[keep]) keep++;
    r->cache.len = keep;
    float *logits = malloc((size_t)m->cfg.vocab_size * sizeof *logits);
    llama_forward(m, &r->cache, r->ids + keep, n - keep, logits, false);
    r->tokens_fed += n - keep;
    double mx = -INFINITY, z = 0;
    for (int v = 0; v < m->cfg.vocab_size; v++) mx = fmax(mx, logits[v]);
    for (int v = 0; v < m->cfg.vocab_size; v++) z += exp(logits[v] - mx);
    double lz = mx + log(z);
    double yes = log_sum_exp2(logits[r->yes[0]] - lz, logits[r->yes[1]] - lz),
           no = log_sum_exp2(logits[r->no[0]] - lz, logits[r->no[1]] - lz);
    free(logits);
    return yes - no;
}

double reranker_score(reranker *r, const char *question, const char *passage) {
    size_t cut, qlen;
    prompt_lengths(r, question, passage, &qlen, &cut);
    char *user = malloc(qlen + cut + 128);
    snprintf(user, qlen + cut + 128, "Question: %.*s\n\nPassage: %.*s\n\nDoes the passage answer the question? Answer yes or no.",
             (int)qlen, question, (int)cut, passage);
    double s = reranker_yes_no(r, "You judge whether a passage of documentation answers a question.", user);
    free(user);
    return s;
}

double reranker_query_likelihood(reranker *r, const char *question, const char *passage) {
    llama *m = &r->model;
    size_t cut, qlen;
    prompt_lengths(r, question, passage, &qlen, &cut);
    char *prefix = malloc(cut + 128), *q = malloc(qlen + 2);
    snprintf(prefix, cut + 128, "Passage: %.*s\nPlease write a question that this passage answers.\nQuestion:", (int)cut, passage);
    snprintf(q, qlen + 2, " %.*s", (int)qlen, question);
    int32_t *qids = NULL;
    size_t qcap = 0, nq = gl_bpe_encode(m->tok, (const unsigned char *)q, strlen(q), &qids, &qcap);
    size_t n = gl_bpe_encode(m->tok, (const unsigned char *)prefix, strlen(prefix), &r->ids, &r->cap);
    free(prefix), free(q);
    if (n + nq > r->cap) r->cap = n + nq, r->ids = realloc(r->ids, r->cap * sizeof *r->ids);
    memcpy(r->ids + n, qids, nq * sizeof *qids);
    int total = (int)(n + nq), V = m->cfg.vocab_size;
    if (total > r->cache.capacity) gl_fatal("rerank", "a prompt of %d tokens for a cache of %d", total, r->cache.capacity);
    r->cache.len = 0;
    float *logits = malloc((size_t)total * V * sizeof *logits);
    llama_forward(m, &r->cache, r->ids, total, logits, true);
    r->tokens_fed += total;
    double sum = 0; /* the position before each question token predicts it */
    for (size_t i = 0; i < nq; i++) {
        const float *l = logits + (n - 1 + i) * (size_t)V;
        double mx = -INFINITY, z = 0;
        for (int v = 0; v < V; v++) mx = fmax(mx, l[v]);
        for (int v = 0; v < V; v++) z += exp(l[v] - mx);
        sum += l[qids[i]] - mx - log(z);
    }
    free(logits), free(qids);
    return nq ? sum / (double)nq : 0;
}

double reranker_relevance(reranker *r, const char *question, const char *passage) {
    return r->yes_no ? reranker_score(r, question, passage) : reranker_query_likelihood(r, question, passage);
}
