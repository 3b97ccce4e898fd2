/* Picking the next token from logits: temperature, top-k and nucleus (top-p) sampling; temperature 0 is greedy. */
#ifndef GRADLAB_SAMPLE_H
#define GRADLAB_SAMPLE_H

#include "rng.h"

typedef struct {
    float temperature; /* 0: argmax */
    int top_k;         /* 0: all */
    float top_p;       /* 1: all */
    struct gl_grammar_matcher *grammar; /* NULL: unconstrained; else only tokens it allows (grammar.h) */
} gl_sampling;

/* Returns a token id in [0, V). scratch must hold 2*V floats. Draws one uniform from rng unless greedy. */
int gl_sample_token(const float *logits, int V, const gl_sampling *s, gl_rng *rng, float *scratch);
/* The next token: with s->grammar, logits outside its allowed set become -infinity (in place) before sampling and
 * the matcher takes the token; -1 when the grammar allows no token (complete with no stop token to end it, or
 * stuck: gl_matcher_done tells which). Without a grammar, gl_sample_token. */
int gl_sample_next(float *logits, int V, const gl_sampling *s, gl_rng *rng, float *scratch);

#endif

/* ---- generation ---- */
#include "gpt.h"

/* Called with each generated token; return false to stop early. */
typedef bool (*gl_emit_fn)(int32_t token, void *ctx);

/* Feeds the prompt (n_prompt >= 1 ids), then samples up to max_new tokens, calling emit for each. With
 * use_cache the KV cache makes each step one token's work; without it every step re-runs the whole window
 * (the reference the cache is tested against). When the context would pass block_size, the window slides to the
 * last block_size/2 tokens (the cache is refilled from them). Returns the number of tokens generated. */
int gl_generate(gpt *m, const int32_t *prompt, int n_prompt, int max_new, const gl_sampling *s, gl_rng *rng,
                bool use_cache, gl_emit_fn emit, void *ctx);
