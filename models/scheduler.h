/* Continuous batching for a language model (a Llama model from GGUF, or a GPT checkpoint): the engine of a server. Requests wait in a bounded queue; each of n slots
 * (a KV cache) serves one request at a time. One engine step decodes one token for every decoding slot together
 * (one GEMM over the batch) and then prefills at most prefill_chunk prompt tokens (several
 * short prompts, or one chunk of a long one), so a long new prompt never stalls the streams already decoding. A slot keeps its cache after its request ends, and a new
 * request goes to the idle slot whose cached tokens share the longest prefix with its prompt (the next turn of a
 * chat): only the rest is prefilled.
 *
 * Threads: sched_submit and sched_cancel may be called from any thread; sched_step from one engine thread, which
 * also runs every request's on_token. For a Llama model each request's tokens are exactly those llama_generate would
 * give it alone (greedy or sampled with its seed): batching changes nothing in any row's arithmetic (its quantized
 * products are per row). A GPT's float GEMM sums a batch in another order than one row, so its logits agree with the
 * request alone to rounding (the tokens, in the tests). One caveat: with llama.cpp's
 * fp16 attention (kv_f16), a prompt prefilled in several chunks can differ in the last bits from one prefilled in
 * one piece, as llama.cpp's own results depend on its batch size; with float attention chunking changes nothing. */
#ifndef GRADLAB_SCHEDULER_H
#define GRADLAB_SCHEDULER_H

#include <pthread.h>

#include "gpt.h"
#include "llama.h"

/* The model a scheduler drives, through one interface (sched_llama, sched_gpt make it). */
typedef struct {
    void *model;
    int vocab_size, ctx_len;
    int32_t stop[2]; /* tokens that end a generation and are emitted (end of text, end of turn); -1: none */
    void *(*cache_new)(void *model, int capacity, bool kv_f16);
    void (*cache_free)(void *cache);
    int *(*cache_len)(void *cache);           /* positions filled: lowering it keeps only a prefix */
    const int32_t *(*cache_ids)(void *cache); /* the tokens at those positions */
    /* T tokens of one sequence at the end of its cache; the last one's logits (vocab_size floats) */
    void (*forward)(void *model, void *cache, const int32_t *ids, int T, float *logits);
    /* one token for each of n sequences at the ends of their caches; logits n x vocab_size */
    void (*forward_batch)(void *model, void *const *caches, const int32_t *ids, int n, float *logits);
} sched_model;

sched_model sched_llama(llama *m);
sched_model sched_gpt(gpt *m); /* its context is its block size; kv_f16 does not apply */

typedef struct {
    int slots;         /* sequences decoded together */
    int ctx;           /* positions per slot's KV cache: prompt + generated tokens must fit */
    int prefill_chunk; /* prompt tokens fed per engine step, over one or more prompts */
    int max_queue;     /* requests waiting for a slot; more are refused (the server's 429/503) */
    bool kv_f16;       /* llama.cpp's fp16 cache (llama_cache_init) */
} sched_config;

typedef enum { SCHED_QUEUED, SCHED_PREFILL, SCHED_DECODE, SCHED_DONE } sched_state;

typedef struct sched_request {
    /* set by the caller before sched_submit */
    const int32_t *prompt;
    int n_prompt, max_tokens;
    gl_sampling sampling;
    uint64_t seed;
    /* each sampled token with the logits it was drawn from (vocab_size floats, for logprobs); false cancels the
     * request (a client went away, a stop string matched) */
    bool (*on_token)(struct sched_request *r, int32_t token, const float *logits);
    void (*on_done)(struct sched_request *r); /* optional: the request ended (finish is set); the engine is done with it */
    void *user;
    /* written by the engine */
    sched_state state;
    int n_generated;
    int prefix_reused;  /* prompt tokens found in the slot's cache and not prefilled again */
    const char *finish; /* "stop" (a stop token, emitted), "length" (max_tokens or the context), "cancelled" */
    /* the engine's own */
    int slot, fed;
    long long admitted; /* admission order: the prompt admitted first is prefilled first */
    int32_t pending; /* the last sampled token, fed at the next decode step */
    gl_rng rng;
    bool cancel;
    struct sched_request *next;
} sched_request;

typedef struct {
    long long prefix_tokens_reused, prompt_tokens, generated_tokens, steps, decode_rows;
    int busy_slots, queued;
} sched_stats;

typedef struct sched sched;

/* NULL with a message if the configuration does not fit (slots < 1, a context larger than the model's, ...) */
sched *sched_new(sched_model m, sched_config c, char *err, size_t err_len);
void sched_free(sched *s);
/* false if the queue is full or the request cannot fit the context (r->finish says which: "queue_full", "too_long") */
bool sched_submit(sched *s, sched_request *r);
void sched_cancel(sched *s, sched_request *r); /* ends it at the next step (on_token is not called again) */
void sched_cancel_all(sched *s);               /* every queued and running request (shutdown) */
/* One engine step; false when there was nothing to do (no request queued or running). */
bool sched_step(sched *s);
sched_stats sched_get_stats(sched *s);

#endif
