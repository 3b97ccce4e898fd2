#include "sample.h"

#include "grammar.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* scratch holds (prob, id) pairs; sorted by descending probability, ties by ascending id (deterministic) */
typedef struct {
    float p;
    int32_t id;
} pair;

static int by_prob_desc(const void *a, const void *b) {
    const pair *x = a, *y = b;
    if (x->p != y->p) return x->p < y->p ? 1 : -1;
    return (x->id > y->id) - (x->id < y->id);
}

int gl_sample_token(const float *logits, int V, const gl_sampling *s, gl_rng *rng, float *scratch) {
    int best = 0;
    for (int i = 1; i < V; i++) best = logits[i] > logits[best] ? i : best;
    if (s->temperature <= 0.0f || s->top_k == 1) return best;
    pair *pr = (pair *)scratch;
    double sum = 0.0;
    for (int i = 0; i < V; i++) {
        pr[i].p = expf((logits[i] - logits[best]) / s->temperature);
        pr[i].id = i;
        sum += pr[i].p;
    }
    int keep = V;
    if (s->top_k > 0 || s->top_p < 1.0f) {
        qsort(pr, (size_t)V, sizeof *pr, by_prob_desc);
        if (s->top_k > 0 && s->top_k < keep) keep = s->top_k;
        if (s->top_p < 1.0f) { /* the smallest prefix whose probability reaches top_p */
            double acc = 0.0;
            for (int i = 0; i < keep; i++) {
                acc += pr[i].p / sum;
                if (acc >= s->top_p) {
                    keep = i + 1;
                    break;
                }
            }
        }
        sum = 0.0;
        for (int i = 0; i < keep; i++) sum += pr[i].p;
    }
    double u = (double)gl_rng_uniform(rng) * sum, acc = 0.0;
    for (int i = 0; i < keep; i++) {
        acc += pr[i].p;
        if (u < acc) return pr[i].id;
    }
    return pr[keep - 1].id;
}

int gl_sample_next(float *logits, int V, const gl_sampling *s, gl_rng *rng, float *scratch) {
    if (!s->grammar) return gl_sample_token(logits, V, s, rng, scratch);
    if (gl_matcher_mask_logits(s->grammar, logits, V) == 0) return -1;
    int tok = gl_sample_token(logits, V, s, rng, scratch);
    gl_matcher_accept_token(s->grammar, tok); /* allowed by the mask, so taken */
    return tok;
}

/* The next token from a row of logits [.., V] where the model is: drawn on the CUDA device when the sampling needs
 * no sort (greedy or plain temperature: one int comes back), else on the host from a copy of the row. The rng
 * advances as in gl_sample_token either way. */
static int32_t sample_row(gl_tensor *row, const gl_sampling *s, gl_rng *rng, float *logits, float *scratch) {
    bool greedy = s->temperature <= 0.0f || s->top_k == 1;
    if (row->device == GL_CUDA && !s->grammar && (greedy || (s->top_k == 0 && s->top_p >= 1.0f)))
        return gl_device_sample(row, greedy ? 0.0f : s->temperature, greedy ? 0.0 : (double)gl_rng_uniform(rng));
    gl_copy_to_host(row, logits);
    return gl_sample_next(logits, (int)row->numel, s, rng, scratch);
}

int gl_generate(gpt *m, const int32_t *prompt, int n_prompt, int max_new, const gl_sampling *s, gl_rng *rng,
                bool use_cache, gl_emit_fn emit, void *ctx) {
    int V = m->cfg.vocab_size, bs = m->cfg.block_size;
    int cap = n_prompt + max_new;
    int32_t *seq = malloc((size_t)(cap ? cap : 1) * sizeof(int32_t));
    float *logits = malloc((size_t)V * sizeof(float)), *scratch = malloc((size_t)V * 2 * sizeof(float));
    memcpy(seq, prompt, (size_t)n_prompt * sizeof(int32_t));
    int len = n_prompt, made = 0;
    gl_scope scope = gl_scope_begin(); /* each step's tensors are freed before the next; the caller's are kept */
    gpt_kv_cache cache;
    if (use_cache) gpt_kv_cache_init(&cache, m);
    /* The context is seq[win, len). When it would exceed block_size, win jumps so that the last block_size/2
     * tokens remain (at least one: a block of 1 keeps the last token); both paths follow the same rule, so they see
     * the same context at every step. */
    int keep = bs / 2 > 0 ? bs / 2 : 1;
    int win = len > bs ? len - keep : 0;
    bool refill = true;
    while (made < max_new) {
        if (len - win > bs) {
            win = len - keep;
            refill = true;
        }
        gl_tensor *row = NULL; /* the window holds at least one token: the loop below always sets it */
        gl_scope_end(&scope);
        if (use_cache && refill) {
            cache.len = 0;
            for (int i = win; i < len; i++) gl_scope_end(&scope), row = gpt_forward_cached_logits(m, &cache, seq[i]);
            refill = false;
        } else if (use_cache) {
            row = gpt_forward_cached_logits(m, &cache, seq[len - 1]);
        } else {
            gl_no_grad_begin();
            gl_tensor *lg = gpt_forward(m, seq + win, 1, len - win, NULL, false);
            gl_no_grad_end();
            row = gl_slice(lg, 1, len - win - 1, len - win); /* the last position's */
        }
        int32_t tok = sample_row(row, s, rng, logits, scratch);
        if (tok < 0) break; /* a grammar allows nothing more */
        seq[len++] = tok;
        made++;
        if (emit && !emit(tok, ctx)) break;
    }
    gl_scope_end(&scope);
    if (use_cache) gpt_kv_cache_free(&cache);
    free(seq);
    free(logits);
    free(scratch);
    return made;
}
