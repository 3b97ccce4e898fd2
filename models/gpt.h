/* GPT-2 architecture on the gradlab core ("nanoGPT in C"):
 *   x = wte[idx] + wpe[pos]                           token + learned position embeddings
 *   for each block:  x = x + proj(attention(ln_1(x)))  pre-LayerNorm, causal multi-head self-attention
 *                    x = x + fc_proj(gelu(fc(ln_2(x))))  4x MLP with GELU (tanh form)
 *   logits = ln_f(x) wte[:V]^T                         output projection tied to the token embedding
 * Linear weights are stored [in, out] (x @ W), as Hugging Face's GPT-2 Conv1D stores them. The vocabulary is
 * padded to padded_vocab_size rows of wte (a multiple of 64, as llm.c does); logits are only computed for the
 * first vocab_size rows, so padded entries are never sampled and get no gradient.
 * Parameters live in one canonical order (gpt.params) used by checkpoints, the PyTorch reference and the
 * optimizer; their names follow Hugging Face's ("h.0.attn.c_attn.weight"). */
#ifndef GRADLAB_GPT_H
#define GRADLAB_GPT_H

#include "gradlab.h"

typedef struct {
    int n_layer, n_head, n_embd, block_size, vocab_size, padded_vocab_size;
    float dropout;  /* on the embedding sum and on each residual branch (not on attention probabilities) */
    bool bias;      /* biases in linear layers and layernorms */
    float ln_eps;   /* 1e-5 */
} gpt_config;

typedef struct {
    gl_tensor *ln1_w, *ln1_b, *attn_w, *attn_b, *proj_w, *proj_b;
    gl_tensor *ln2_w, *ln2_b, *fc_w, *fc_b, *fcproj_w, *fcproj_b;
} gpt_block;

typedef struct {
    gpt_config cfg;
    gl_tensor *wte, *wpe, *lnf_w, *lnf_b;
    gpt_block *blocks;
    gl_tensor **params;
    int n_params;
    int64_t n_weights; /* floats in all parameters */
    gl_attn_impl attention; /* naive (default) or flash: a run-time choice, not part of the checkpoint */
    char *names;       /* storage of the parameter names */
} gpt;

/* vocab rounded up to a multiple of 64 */
int gpt_padded_vocab(int vocab_size);
/* Checks the config (positive sizes, n_embd divisible by n_head, ...); on error writes a message into err
 * and returns false. */
bool gpt_config_check(const gpt_config *c, char *err, size_t err_len);
/* Allocates zeroed parameters in canonical order (the config must pass gpt_config_check). */
void gpt_build(gpt *m, gpt_config cfg);
/* GPT-2 initialisation: weights N(0, 0.02), residual projections N(0, 0.02/sqrt(2 n_layer)), biases 0,
 * layernorm gains 1, padded embedding rows 0. Matrices get weight decay, vectors do not. */
void gpt_init(gpt *m, uint64_t seed);
/* logits [B, T, vocab_size] for token ids idx [B, T] (T <= block_size); rng drives dropout when training */
gl_tensor *gpt_forward(gpt *m, const int32_t *idx, int B, int T, gl_rng *rng, bool training);
/* mean cross-entropy of the next tokens targets [B, T] (-1 = ignore) */
gl_tensor *gpt_loss(gpt *m, const int32_t *idx, const int32_t *targets, int B, int T, gl_rng *rng, bool training);
gl_tensor *gpt_param(const gpt *m, const char *name); /* by name, NULL if absent */
void gpt_free(gpt *m);

/* ---- inference with a KV cache: one token at a time ---- */
typedef struct {
    int n_layer, block_size, n_embd, len; /* len: positions filled */
    float *k, *v;                         /* [n_layer, block_size, n_embd] each */
} gpt_kv_cache;

void gpt_kv_cache_init(gpt_kv_cache *c, const gpt *m);
void gpt_kv_cache_free(gpt_kv_cache *c);
/* Feeds `token` at position c->len, appends its keys and values, and writes the next-token logits
 * (vocab_size floats). Runs without recording gradients and resets the activation arena (gl_step_reset) first.
 * Fatal if the cache is full. */
void gpt_forward_cached(gpt *m, gpt_kv_cache *c, int32_t token, float *logits);

#endif
