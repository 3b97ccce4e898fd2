#include "gpt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int gpt_padded_vocab(int vocab_size) { return (vocab_size + 63) / 64 * 64; }

bool gpt_config_check(const gpt_config *c, char *err, size_t n) {
    if (c->n_layer < 1 || c->n_layer > 256) return snprintf(err, n, "n_layer %d is outside [1, 256]", c->n_layer), false;
    if (c->n_head < 1 || c->n_embd < 1 || c->n_embd % c->n_head != 0)
        return snprintf(err, n, "n_embd %d must be a positive multiple of n_head %d", c->n_embd, c->n_head), false;
    if (c->n_embd > 65536) return snprintf(err, n, "n_embd %d is too large", c->n_embd), false;
    if (c->block_size < 1 || c->block_size > 1 << 20)
        return snprintf(err, n, "block_size %d is outside [1, 1048576]", c->block_size), false;
    if (c->vocab_size < 1 || c->vocab_size > 1 << 24)
        return snprintf(err, n, "vocab_size %d is outside [1, 16777216]", c->vocab_size), false;
    if (c->padded_vocab_size < c->vocab_size || c->padded_vocab_size > (1 << 24) + 64)
        return snprintf(err, n, "padded_vocab_size %d is below vocab_size %d", c->padded_vocab_size, c->vocab_size),
               false;
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f)) return snprintf(err, n, "dropout %g is outside [0, 1)", (double)c->dropout), false;
    if (!(c->ln_eps > 0.0f && c->ln_eps < 1.0f)) return snprintf(err, n, "layernorm eps %g is outside (0, 1)", (double)c->ln_eps), false;
    return true;
}

int64_t gpt_config_weights(const gpt_config *c) {
    int64_t C = c->n_embd, per_layer = 12 * C * C + 2 * C + (c->bias ? 11 * C : 0);
    return (int64_t)c->padded_vocab_size * C + (int64_t)c->block_size * C + c->n_layer * per_layer + C +
           (c->bias ? C : 0);
}

/* ---- construction: one function decides the canonical order and the names ---- */

typedef struct {
    gpt *m;
    char *name_cursor;
} builder;

static gl_tensor *add_param(builder *b, const char *name, int ndim, const int *shape) {
    size_t len = strlen(name) + 1;
    memcpy(b->name_cursor, name, len);
    gl_tensor *p = gl_param(ndim, shape, b->name_cursor);
    b->name_cursor += len;
    p->no_weight_decay = ndim < 2;
    b->m->params[b->m->n_params++] = p;
    b->m->n_weights += p->numel;
    return p;
}

void gpt_build(gpt *m, gpt_config c) {
    char err[128];
    if (!gpt_config_check(&c, err, sizeof err)) gl_fatal("gpt", "bad config: %s", err);
    memset(m, 0, sizeof *m);
    m->cfg = c;
    int C = c.n_embd, L = c.n_layer;
    m->blocks = calloc((size_t)L, sizeof *m->blocks);
    m->params = calloc((size_t)(4 + 12 * L), sizeof *m->params);
    m->names = malloc((size_t)(4 + 12 * L) * 40);
    if (!m->blocks || !m->params || !m->names) gl_fatal("gpt", "out of memory");
    builder b = {m, m->names};
    char name[40];
    m->wte = add_param(&b, "wte.weight", GL_DIMS(c.padded_vocab_size, C));
    m->wpe = add_param(&b, "wpe.weight", GL_DIMS(c.block_size, C));
    for (int l = 0; l < L; l++) {
        gpt_block *k = &m->blocks[l];
#define P(field, suffix, ...)                                   \
    snprintf(name, sizeof name, "h.%d.%s", l, suffix);          \
    k->field = add_param(&b, name, GL_DIMS(__VA_ARGS__))
        P(ln1_w, "ln_1.weight", C);
        if (c.bias) { P(ln1_b, "ln_1.bias", C); }
        P(attn_w, "attn.c_attn.weight", C, 3 * C);
        if (c.bias) { P(attn_b, "attn.c_attn.bias", 3 * C); }
        P(proj_w, "attn.c_proj.weight", C, C);
        if (c.bias) { P(proj_b, "attn.c_proj.bias", C); }
        P(ln2_w, "ln_2.weight", C);
        if (c.bias) { P(ln2_b, "ln_2.bias", C); }
        P(fc_w, "mlp.c_fc.weight", C, 4 * C);
        if (c.bias) { P(fc_b, "mlp.c_fc.bias", 4 * C); }
        P(fcproj_w, "mlp.c_proj.weight", 4 * C, C);
        if (c.bias) { P(fcproj_b, "mlp.c_proj.bias", C); }
#undef P
    }
    m->lnf_w = add_param(&b, "ln_f.weight", GL_DIMS(C));
    if (c.bias) m->lnf_b = add_param(&b, "ln_f.bias", GL_DIMS(C));
    m->trainable = m->params;
    m->n_trainable = m->n_params;
    if (m->n_weights != gpt_config_weights(&c)) gl_fatal("gpt", "gpt_config_weights disagrees with gpt_build");
}

void gpt_init(gpt *m, uint64_t seed) {
    gl_rng rng;
    gl_rng_seed(&rng, seed);
    float std = 0.02f, resid_std = 0.02f / sqrtf(2.0f * (float)m->cfg.n_layer);
    for (int i = 0; i < m->n_params; i++) {
        gl_tensor *p = m->params[i];
        const char *n = p->name;
        size_t len = strlen(n);
        if (p->ndim == 1) gl_fill(p, strstr(n, "ln_") && !strcmp(n + len - 6, "weight") ? 1.0f : 0.0f);
        else gl_init_normal(p, &rng, strstr(n, "c_proj.weight") ? resid_std : std);
    }
    int V = m->cfg.vocab_size, Vp = m->cfg.padded_vocab_size, C = m->cfg.n_embd;
    memset(m->wte->data + (size_t)V * C, 0, (size_t)(Vp - V) * C * sizeof(float)); /* padding rows stay 0 */
}

gl_tensor *gpt_param(const gpt *m, const char *name) {
    for (int i = 0; i < m->n_params; i++)
        if (!strcmp(m->params[i]->name, name)) return m->params[i];
    return NULL;
}

void gpt_free(gpt *m) {
    gpt_lora_free(m);
    for (int i = 0; i < m->n_params; i++) gl_param_free(m->params[i]);
    free(m->params);
    free(m->blocks);
    free(m->names);
    memset(m, 0, sizeof *m);
}

bool gpt_to(gpt *m, gl_device d, char *err, size_t n) {
    if (d == GL_CUDA && m->nf4)
        return snprintf(err, n, "NF4 (QLoRA) weights run on the CPU: the CUDA kernels have no 4-bit GEMM yet"), false;
    if (d == GL_CUDA && !gl_cuda_present())
        return snprintf(err, n, "%s", gl_cuda_linked() ? "no CUDA device is available" :
                                      "this build has no CUDA kernels (make CUDA=1)"), false;
    for (int i = 0; i < m->n_params; i++) gl_param_to(m->params[i], d);
    for (int i = 0; i < m->n_adapters; i++) gl_param_to(m->adapters[i].a, d), gl_param_to(m->adapters[i].b, d);
    m->device = d;
    return true;
}

/* ---- training / full-sequence forward ---- */

gl_tensor *gpt_hidden(gpt *m, const int32_t *idx, int B, int T, gl_rng *rng, bool training) {
    const gpt_config *c = &m->cfg;
    if (T < 1 || T > c->block_size) gl_fatal("gpt", "sequence length %d is outside [1, block_size %d]", T, c->block_size);
    for (int64_t i = 0; i < (int64_t)B * T; i++)
        if (idx[i] < 0 || idx[i] >= c->vocab_size)
            gl_fatal("gpt", "token id %d at position %lld is outside the vocabulary [0, %d)", idx[i], (long long)i,
                     c->vocab_size);
    int32_t *pos = gl_arena_alloc((size_t)T * sizeof(int32_t));
    for (int t = 0; t < T; t++) pos[t] = t;
    float p = training ? c->dropout : 0.0f;

    gl_tensor *x = gl_add(gl_embedding(m->wte, idx, GL_DIMS(B, T)), gl_embedding(m->wpe, pos, GL_DIMS(T)));
    x = gl_dropout(x, p, rng, training);
    for (int l = 0; l < c->n_layer; l++) {
        gpt_block *k = &m->blocks[l];
        gl_tensor *h = gl_layernorm(x, k->ln1_w, k->ln1_b, c->ln_eps);
        h = gl_attention_ex(gpt_block_linear(m, l, GPT_LINEAR_ATTN, h), c->n_head, true, m->attention);
        h = gl_dropout(gpt_block_linear(m, l, GPT_LINEAR_PROJ, h), p, rng, training);
        x = gl_add(x, h);
        h = gl_layernorm(x, k->ln2_w, k->ln2_b, c->ln_eps);
        h = gl_gelu(gpt_block_linear(m, l, GPT_LINEAR_FC, h));
        h = gl_dropout(gpt_block_linear(m, l, GPT_LINEAR_FCPROJ, h), p, rng, training);
        x = gl_add(x, h);
    }
    return gl_layernorm(x, m->lnf_w, m->lnf_b, c->ln_eps);
}

gl_tensor *gpt_forward(gpt *m, const int32_t *idx, int B, int T, gl_rng *rng, bool training) {
    gl_tensor *x = gpt_hidden(m, idx, B, T, rng, training);
    gl_tensor *wte_used = gl_slice(m->wte, 0, 0, m->cfg.vocab_size); /* [V, C] view: padding rows unused */
    return gl_linear(x, gl_transpose(wte_used, 0, 1), NULL);         /* [B, T, V] */
}

gl_tensor *gpt_loss(gpt *m, const int32_t *idx, const int32_t *targets, int B, int T, gl_rng *rng, bool training) {
    return gl_cross_entropy(gpt_forward(m, idx, B, T, rng, training), targets, -1);
}

gl_tensor *gpt_distill_loss(gpt *student, gpt *teacher, const int32_t *idx, const int32_t *targets, int B, int T,
                            float temp, float alpha, gl_rng *rng, bool training) {
    if (teacher->cfg.vocab_size != student->cfg.vocab_size)
        gl_fatal("distill", "the teacher's vocabulary (%d) is not the student's (%d)", teacher->cfg.vocab_size,
                 student->cfg.vocab_size);
    gl_no_grad_begin();
    gl_tensor *z = gl_mul_scalar(gpt_forward(teacher, idx, B, T, NULL, false), 1.0f / temp);
    gl_tensor *p_teacher = gl_softmax(z);
    /* sum p log p: the KL's constant part, so the loss reads as a true KL (0 when the student matches) */
    gl_tensor *neg_entropy = gl_sum_all(gl_mul(p_teacher, gl_log_softmax(z)));
    gl_no_grad_end();
    gl_tensor *s = gpt_forward(student, idx, B, T, rng, training);
    gl_tensor *cross = gl_sum_all(gl_mul(p_teacher, gl_log_softmax(gl_mul_scalar(s, 1.0f / temp))));
    float positions = (float)B * (float)T;
    gl_tensor *kl = gl_mul_scalar(gl_add_scalar(gl_mul_scalar(cross, -1.0f), gl_item(neg_entropy)), 1.0f / positions);
    return gl_add(gl_mul_scalar(kl, alpha * temp * temp), gl_mul_scalar(gl_cross_entropy(s, targets, -1), 1.0f - alpha));
}

/* ---- inference with a KV cache ---- */

void gpt_kv_cache_init(gpt_kv_cache *c, const gpt *m) {
    c->n_layer = m->cfg.n_layer;
    c->block_size = m->cfg.block_size;
    c->n_embd = m->cfg.n_embd;
    c->len = 0;
    c->device = m->device;
    int64_t n = (int64_t)c->n_layer * c->block_size * c->n_embd;
    c->k = gl_buffer_alloc(c->device, n, "KV cache keys");
    c->v = gl_buffer_alloc(c->device, n, "KV cache values");
    c->ids = calloc((size_t)c->block_size, sizeof *c->ids);
    if (!c->ids) gl_fatal("gpt", "out of memory for a KV cache");
}

void gpt_kv_cache_free(gpt_kv_cache *c) {
    gl_buffer_free(c->device, c->k);
    gl_buffer_free(c->device, c->v);
    free(c->ids);
    memset(c, 0, sizeof *c);
}

gl_tensor *gpt_forward_rows(gpt *m, gpt_kv_cache *const *caches, const int32_t *tokens, int n, bool last_only) {
    const gpt_config *c = &m->cfg;
    if (n < 1) gl_fatal("gpt", "%d rows to decode", n);
    int32_t *pos = gl_arena_alloc((size_t)n * sizeof *pos);
    float **kc = gl_arena_alloc((size_t)n * sizeof *kc), **vc = gl_arena_alloc((size_t)n * sizeof *vc);
    for (int i = 0; i < n; i++) { /* rows of one cache take its next positions in order */
        gpt_kv_cache *cache = caches[i];
        if (cache->device != m->device) gl_fatal("gpt", "the KV cache and the model are on different devices");
        if (cache->len >= c->block_size) gl_fatal("gpt", "KV cache full: %d positions (block_size)", c->block_size);
        if (tokens[i] < 0 || tokens[i] >= c->vocab_size)
            gl_fatal("gpt", "token id %d is outside the vocabulary [0, %d)", tokens[i], c->vocab_size);
        pos[i] = cache->len;
        cache->ids[cache->len++] = tokens[i];
    }
    gl_no_grad_begin();
    gl_tensor *x = gl_add(gl_embedding(m->wte, tokens, GL_DIMS(n)), gl_embedding(m->wpe, pos, GL_DIMS(n))); /* [n, C] */
    size_t layer_floats = (size_t)c->block_size * c->n_embd;
    for (int l = 0; l < c->n_layer; l++) {
        gpt_block *k = &m->blocks[l];
        for (int i = 0; i < n; i++) kc[i] = caches[i]->k + l * layer_floats, vc[i] = caches[i]->v + l * layer_floats;
        gl_tensor *h = gl_layernorm(x, k->ln1_w, k->ln1_b, c->ln_eps);
        h = gl_attention_rows(gpt_block_linear(m, l, GPT_LINEAR_ATTN, h), kc, vc, pos, c->n_head);
        x = gl_add(x, gpt_block_linear(m, l, GPT_LINEAR_PROJ, h));
        h = gl_gelu(gpt_block_linear(m, l, GPT_LINEAR_FC, gl_layernorm(x, k->ln2_w, k->ln2_b, c->ln_eps)));
        x = gl_add(x, gpt_block_linear(m, l, GPT_LINEAR_FCPROJ, h));
    }
    if (last_only && n > 1) x = gl_slice(x, 0, n - 1, n);
    x = gl_layernorm(x, m->lnf_w, m->lnf_b, c->ln_eps);
    gl_tensor *out = gl_linear(x, gl_transpose(gl_slice(m->wte, 0, 0, c->vocab_size), 0, 1), NULL);
    gl_no_grad_end();
    return out;
}

gl_tensor *gpt_forward_cached_logits(gpt *m, gpt_kv_cache *cache, int32_t token) {
    return gpt_forward_rows(m, &cache, &token, 1, false);
}

void gpt_forward_cached(gpt *m, gpt_kv_cache *cache, int32_t token, float *logits) {
    gl_scope scope = gl_scope_begin();
    gl_copy_to_host(gpt_forward_cached_logits(m, cache, token), logits);
    gl_scope_end(&scope);
}
