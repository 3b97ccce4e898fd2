#include "scheduler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the two models behind sched_model ---- */

static void *llama_cache_new(void *model, int capacity, bool kv_f16) {
    llama_cache *c = malloc(sizeof *c);
    if (!c) gl_fatal("scheduler", "out of memory");
    llama_cache_init(c, model, capacity, kv_f16);
    return c;
}
static void llama_cache_delete(void *cache) { llama_cache_free(cache), free(cache); }
static int *llama_cache_len(void *cache) { return &((llama_cache *)cache)->len; }
static const int32_t *llama_cache_ids(void *cache) { return ((llama_cache *)cache)->ids; }
static void llama_prefill(void *model, void *cache, const int32_t *ids, int T, float *logits) {
    llama_forward(model, cache, ids, T, logits, false);
}
static void llama_decode(void *model, void *const *caches, const int32_t *ids, int n, float *logits) {
    llama_forward_batch(model, (llama_cache *const *)caches, ids, n, logits);
}

sched_model sched_llama(llama *m) {
    return (sched_model){m, m->cfg.vocab_size, m->cfg.ctx_len, {m->eot, m->eos}, llama_cache_new, llama_cache_delete,
                         llama_cache_len, llama_cache_ids, llama_prefill, llama_decode};
}

static void *gpt_cache_new(void *model, int capacity, bool kv_f16) {
    (void)capacity, (void)kv_f16; /* a GPT's cache holds its block size */
    gpt_kv_cache *c = malloc(sizeof *c);
    if (!c) gl_fatal("scheduler", "out of memory");
    gpt_kv_cache_init(c, model);
    return c;
}
static void gpt_cache_delete(void *cache) { gpt_kv_cache_free(cache), free(cache); }
static int *gpt_cache_len(void *cache) { return &((gpt_kv_cache *)cache)->len; }
static const int32_t *gpt_cache_ids(void *cache) { return ((gpt_kv_cache *)cache)->ids; }
/* a prompt chunk: its T rows through one forward (the same cache T times), the last row's logits */
static void gpt_prefill(void *model, void *cache, const int32_t *ids, int T, float *logits) {
    gl_scope scope = gl_scope_begin();
    gpt_kv_cache **caches = gl_arena_alloc((size_t)T * sizeof *caches);
    for (int t = 0; t < T; t++) caches[t] = cache;
    gl_copy_to_host(gpt_forward_rows(model, caches, ids, T, true), logits);
    gl_scope_end(&scope);
}
static void gpt_decode(void *model, void *const *caches, const int32_t *ids, int n, float *logits) {
    gl_scope scope = gl_scope_begin();
    gl_copy_to_host(gpt_forward_rows(model, (gpt_kv_cache *const *)caches, ids, n, false), logits);
    gl_scope_end(&scope);
}

sched_model sched_gpt(gpt *m) {
    return (sched_model){m, m->cfg.vocab_size, m->cfg.block_size, {-1, -1}, gpt_cache_new, gpt_cache_delete,
                         gpt_cache_len, gpt_cache_ids, gpt_prefill, gpt_decode};
}

/* ---- the scheduler ---- */

typedef struct {
    void *cache;
    sched_request *req; /* NULL: idle (its cache still holds its last request's tokens) */
} slot;

struct sched {
    sched_model m;
    sched_config cfg;
    slot *slots;
    float *logits, *scratch; /* slots x vocab, and gl_sample_token's scratch */
    int32_t *ids;
    void **batch;
    pthread_mutex_t lock; /* the queue, cancellation flags and the counters */
    sched_request *queue_head, *queue_tail;
    int queued;
    sched_stats stats;
    long long admissions;
};

sched *sched_new(sched_model m, sched_config c, char *err, size_t err_len) {
    if (c.slots < 1 || c.slots > 256 || c.ctx < 2 || c.ctx > m.ctx_len || c.prefill_chunk < 1 || c.max_queue < 0)
        return snprintf(err, err_len, "slots %d (1 to 256), context %d (2 to the model's %d), prefill chunk %d (>= 1) "
                        "and queue %d (>= 0) do not make a scheduler", c.slots, c.ctx, m.ctx_len,
                        c.prefill_chunk, c.max_queue), NULL;
    sched *s = calloc(1, sizeof *s);
    s->m = m, s->cfg = c;
    s->slots = calloc((size_t)c.slots, sizeof *s->slots);
    for (int i = 0; i < c.slots; i++) s->slots[i].cache = m.cache_new(m.model, c.ctx, c.kv_f16);
    s->logits = malloc((size_t)c.slots * m.vocab_size * sizeof(float));
    s->scratch = malloc((size_t)m.vocab_size * 2 * sizeof(float));
    s->ids = malloc((size_t)c.slots * sizeof *s->ids);
    s->batch = malloc((size_t)c.slots * sizeof *s->batch);
    pthread_mutex_init(&s->lock, NULL);
    return s;
}

void sched_free(sched *s) {
    if (!s) return;
    for (int i = 0; i < s->cfg.slots; i++) s->m.cache_free(s->slots[i].cache);
    free(s->slots), free(s->logits), free(s->scratch), free(s->ids), free(s->batch);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

bool sched_submit(sched *s, sched_request *r) {
    r->state = SCHED_QUEUED, r->n_generated = 0, r->prefix_reused = 0, r->finish = NULL, r->cancel = false;
    r->next = NULL, r->slot = -1;
    if (r->n_prompt < 1 || r->n_prompt >= s->cfg.ctx) return r->finish = "too_long", r->state = SCHED_DONE, false;
    pthread_mutex_lock(&s->lock);
    bool ok = s->queued < s->cfg.max_queue;
    if (ok) {
        if (s->queue_tail) s->queue_tail->next = r;
        else s->queue_head = r;
        s->queue_tail = r;
        s->queued++;
    } else {
        r->finish = "queue_full", r->state = SCHED_DONE;
    }
    pthread_mutex_unlock(&s->lock);
    return ok;
}

void sched_cancel(sched *s, sched_request *r) {
    pthread_mutex_lock(&s->lock);
    r->cancel = true;
    pthread_mutex_unlock(&s->lock);
}

void sched_cancel_all(sched *s) {
    pthread_mutex_lock(&s->lock);
    for (sched_request *r = s->queue_head; r; r = r->next) r->cancel = true;
    for (int i = 0; i < s->cfg.slots; i++)
        if (s->slots[i].req) s->slots[i].req->cancel = true;
    pthread_mutex_unlock(&s->lock);
}

sched_stats sched_get_stats(sched *s) {
    pthread_mutex_lock(&s->lock);
    sched_stats st = s->stats;
    st.queued = s->queued;
    pthread_mutex_unlock(&s->lock);
    return st;
}

static void finish(sched *s, sched_request *r, const char *why) {
    s->slots[r->slot].req = NULL;
    pthread_mutex_lock(&s->lock);
    r->finish = why, r->state = SCHED_DONE;
    s->stats.busy_slots--;
    pthread_mutex_unlock(&s->lock);
    if (r->on_done) r->on_done(r);
}

/* the longest prefix of the prompt the cache holds; the last prompt token is always fed (its logits are needed) */
static int common_prefix(const sched *s, void *cache, const sched_request *r) {
    int k = 0, len = *s->m.cache_len(cache);
    const int32_t *ids = s->m.cache_ids(cache);
    while (k < len && k < r->n_prompt - 1 && ids[k] == r->prompt[k]) k++;
    return k;
}

/* queued requests into idle slots, each to the one whose cache shares the longest prefix with its prompt */
static void admit(sched *s) {
    sched_request *dropped = NULL; /* cancelled while they waited: they end without a slot */
    pthread_mutex_lock(&s->lock);
    for (sched_request **at = &s->queue_head; *at;) {
        sched_request *r = *at;
        if (!r->cancel) {
            at = &r->next;
            continue;
        }
        *at = r->next;
        s->queued--;
        r->finish = "cancelled", r->state = SCHED_DONE, r->next = dropped, dropped = r;
    }
    s->queue_tail = NULL;
    for (sched_request *r = s->queue_head; r; r = r->next) s->queue_tail = r;
    while (s->queue_head) {
        sched_request *r = s->queue_head;
        int best = -1, best_len = -1;
        for (int i = 0; i < s->cfg.slots; i++) {
            if (s->slots[i].req) continue;
            int k = common_prefix(s, s->slots[i].cache, r);
            if (k > best_len) best = i, best_len = k;
        }
        if (best < 0) break;
        s->queue_head = r->next;
        if (!s->queue_head) s->queue_tail = NULL;
        s->queued--;
        s->stats.busy_slots++;
        s->stats.prefix_tokens_reused += best_len;
        s->stats.prompt_tokens += r->n_prompt;
        r->slot = best, r->fed = best_len, r->prefix_reused = best_len, r->state = SCHED_PREFILL;
        r->admitted = s->admissions++;
        gl_rng_seed(&r->rng, r->seed);
        s->slots[best].req = r;
        *s->m.cache_len(s->slots[best].cache) = best_len;
    }
    pthread_mutex_unlock(&s->lock);
    for (sched_request *r = dropped, *next; r; r = next) {
        next = r->next;
        if (r->on_done) r->on_done(r);
    }
}

/* a token sampled for r from its logits: emitted, then the request ends or waits for its next decode step */
static void take_token(sched *s, sched_request *r, float *logits) {
    int32_t tok = gl_sample_next(logits, s->m.vocab_size, &r->sampling, &r->rng, s->scratch);
    if (tok < 0) return finish(s, r, "stop"); /* its grammar is complete (or can go no further) */
    r->n_generated++;
    pthread_mutex_lock(&s->lock);
    s->stats.generated_tokens++;
    bool cancelled = r->cancel;
    pthread_mutex_unlock(&s->lock);
    if (cancelled || !r->on_token(r, tok, logits)) return finish(s, r, "cancelled");
    if (tok >= 0 && (tok == s->m.stop[0] || tok == s->m.stop[1])) return finish(s, r, "stop");
    if (r->n_generated >= r->max_tokens || *s->m.cache_len(s->slots[r->slot].cache) >= s->cfg.ctx)
        return finish(s, r, "length");
    r->pending = tok, r->state = SCHED_DECODE;
}

bool sched_step(sched *s) {
    admit(s);
    const int V = s->m.vocab_size;
    bool worked = false;
    /* cancelled requests free their slots first */
    for (int i = 0; i < s->cfg.slots; i++) {
        sched_request *r = s->slots[i].req;
        if (!r) continue;
        pthread_mutex_lock(&s->lock);
        bool cancelled = r->cancel;
        pthread_mutex_unlock(&s->lock);
        if (cancelled) finish(s, r, "cancelled"), worked = true;
    }
    /* every decoding slot advances one token, together */
    int n = 0;
    for (int i = 0; i < s->cfg.slots; i++)
        if (s->slots[i].req && s->slots[i].req->state == SCHED_DECODE)
            s->batch[n] = s->slots[i].cache, s->ids[n++] = s->slots[i].req->pending;
    if (n) {
        s->m.forward_batch(s->m.model, s->batch, s->ids, n, s->logits);
        for (int i = 0, row = 0; i < s->cfg.slots; i++) {
            sched_request *r = s->slots[i].req;
            if (r && r->state == SCHED_DECODE) take_token(s, r, s->logits + (size_t)row++ * V);
        }
        pthread_mutex_lock(&s->lock);
        s->stats.decode_rows += n;
        pthread_mutex_unlock(&s->lock);
        worked = true;
    }
    /* then prompts in admission order, prefill_chunk tokens in all: short prompts arriving together are all
     * prefilled in one step, a long one over several */
    for (int budget = s->cfg.prefill_chunk; budget > 0;) {
        sched_request *first = NULL;
        for (int i = 0; i < s->cfg.slots; i++) {
            sched_request *r = s->slots[i].req;
            if (r && r->state == SCHED_PREFILL && (!first || r->admitted < first->admitted)) first = r;
        }
        if (!first) break;
        sched_request *r = first;
        int chunk = r->n_prompt - r->fed < budget ? r->n_prompt - r->fed : budget;
        s->m.forward(s->m.model, s->slots[r->slot].cache, r->prompt + r->fed, chunk, s->logits);
        r->fed += chunk, budget -= chunk;
        worked = true;
        if (r->fed < r->n_prompt) break; /* its next chunk waits for the next step */
        take_token(s, r, s->logits);
    }
    if (worked) {
        pthread_mutex_lock(&s->lock);
        s->stats.steps++;
        pthread_mutex_unlock(&s->lock);
    }
    return worked;
}
