/* Preference learning: the judge, the reward model, the Bradley-Terry and DPO losses (see preference.h). */
#include "preference.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"

bool pref_judge_load(pref_judge *j, const char *path, char *err, size_t n) {
    unsigned char *text;
    size_t len;
    if (!gl_read_whole_file(path, &text, &len, err, n)) return false;
    gl_w2v_corpus unused;
    bool ok = gl_w2v_build((const char *)text, len, 1, 1000, &j->words, &unused, err, (int)n);
    free(text);
    if (!ok) return snprintf(err, n, "word list '%s' has no words", path), false;
    gl_w2v_corpus_free(&unused);
    return true;
}

typedef struct {
    const pref_judge *j;
    int words, real;
    bool have_last, last_real;
} judge_count;

/* counts each word when the next one arrives, so the last word can be left out if the text cuts it */
static void judge_word(void *ctx, const char *w, int len) {
    judge_count *c = ctx;
    if (!len) return;
    if (c->have_last) c->words++, c->real += c->last_real;
    c->have_last = true;
    c->last_real = gl_w2v_find(&c->j->words, w) >= 0;
}

double pref_judge_score(const pref_judge *j, const char *text, size_t len, int *n_words) {
    judge_count c = {.j = j};
    gl_w2v_words(text, len, judge_word, &c);
    unsigned char end = len ? (unsigned char)text[len - 1] : ' ';
    bool cut = (end >= 'a' && end <= 'z') || (end >= 'A' && end <= 'Z') || (end >= '0' && end <= '9');
    if (c.have_last && !cut) c.words++, c.real += c.last_real;
    if (n_words) *n_words = c.words;
    return c.words ? (double)c.real / c.words : 0.0;
}

void pref_judge_free(pref_judge *j) { gl_w2v_vocab_free(&j->words); }

void pref_reward_init(pref_reward_model *rm, gpt body) {
    rm->body = body;
    int C = body.cfg.n_embd;
    rm->head_w = gl_param(GL_DIMS(C, 1), "reward_head.weight");
    rm->head_b = gl_param(GL_DIMS(1), "reward_head.bias");
    rm->head_b->no_weight_decay = true;
    rm->n_params = body.n_params + 2;
    rm->params = malloc((size_t)rm->n_params * sizeof *rm->params);
    memcpy(rm->params, body.params, (size_t)body.n_params * sizeof *rm->params);
    rm->params[body.n_params] = rm->head_w;
    rm->params[body.n_params + 1] = rm->head_b;
}

gl_tensor *pref_reward(pref_reward_model *rm, const int32_t *idx, int B, int T) {
    gl_tensor *h = gpt_hidden(&rm->body, idx, B, T, NULL, false);        /* [B, T, C] */
    gl_tensor *last = gl_slice(h, 1, T - 1, T);                          /* [B, 1, C] */
    return gl_reshape(gl_linear(last, rm->head_w, rm->head_b), GL_DIMS(B)); /* [B] */
}

void pref_reward_free(pref_reward_model *rm) {
    gl_param_free(rm->head_w);
    gl_param_free(rm->head_b);
    free(rm->params);
    gpt_free(&rm->body);
}

gl_tensor *pref_bradley_terry_loss(gl_tensor *chosen, gl_tensor *rejected) {
    /* BEGIN SOLUTION lab07: the Bradley-Terry loss: the mean of -log sigmoid(r_chosen - r_rejected), from ops */
    return gl_mul_scalar(gl_mean_all(gl_log_sigmoid(gl_sub(chosen, rejected))), -1.0f);
    /* END SOLUTION */
}

gl_tensor *pref_bce_loss(gl_tensor *logits, const float *labels) {
    /* BEGIN SOLUTION lab11: the binary cross-entropy from ops: the mean of -log sigmoid(sign * z) with sign +1 for a positive and -1 for a negative (a constant tensor from gl_from) */
    int n = (int)logits->numel;
    float *sign = malloc((size_t)n * sizeof *sign);
    for (int i = 0; i < n; i++) sign[i] = labels[i] > 0.5f ? 1.0f : -1.0f;
    gl_tensor *z = gl_mul(logits, gl_from(GL_DIMS(n), sign));
    free(sign);
    return gl_mul_scalar(gl_mean_all(gl_log_sigmoid(z)), -1.0f);
    /* END SOLUTION */
}

gl_tensor *pref_sequence_logprob(gpt *m, const int32_t *idx, const int32_t *targets, int B, int T) {
    return gl_sum(gl_token_logprob(gpt_forward(m, idx, B, T, NULL, false), targets, -1), 1, false);
}

gl_tensor *pref_dpo_loss(gl_tensor *pi_chosen, gl_tensor *pi_rejected, gl_tensor *ref_chosen,
                         gl_tensor *ref_rejected, float beta) {
    /* BEGIN SOLUTION lab07: the DPO loss: the mean of -log sigmoid(beta * margin), margin the log-ratio of chosen minus that of rejected */
    gl_tensor *margin = gl_sub(gl_sub(pi_chosen, ref_chosen), gl_sub(pi_rejected, ref_rejected));
    return gl_mul_scalar(gl_mean_all(gl_log_sigmoid(gl_mul_scalar(margin, beta))), -1.0f);
    /* END SOLUTION */
}
