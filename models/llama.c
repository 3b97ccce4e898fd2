#include "llama.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- loading ---- */

/* a weight of `rows` rows of `cols` values: GGUF dims [cols, rows], a type the kernels multiply */
static bool get_matrix(llama *m, const char *name, int rows, int cols, gl_qmatrix *out, char *err, size_t n) {
    const gguf_tensor *t = gl_gguf_tensor(m->file, name);
    if (!t) return snprintf(err, n, "%s: the model has no tensor '%s'", m->file->path, name), false;
    if (t->ne[0] != cols || t->ne[1] != rows || t->ne[2] != 1 || t->ne[3] != 1)
        return snprintf(err, n, "%s: tensor '%s' is [%lld, %lld, %lld, %lld], expected [%d, %d]", m->file->path, name,
                        (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3], cols, rows),
               false;
    if (!gl_qmatrix_supported(t->type, cols))
        return snprintf(err, n, "%s: tensor '%s' is %s; gradlab computes with F32, F16, Q8_0, Q4_0, Q4_1 and Q3_0", m->file->path,
                        name, gl_ggml_type_name(t->type)), false;
    *out = (gl_qmatrix){t->type, rows, cols, t->data};
    m->weight_bytes += (int64_t)t->n_bytes;
    return true;
}

/* a norm vector of n floats (F32 or F16 in the file) copied into a parameter */
static gl_tensor *get_vector(llama *m, const char *name, int n, char *err, size_t len) {
    const gguf_tensor *t = gl_gguf_tensor(m->file, name);
    if (!t) return snprintf(err, len, "%s: the model has no tensor '%s'", m->file->path, name), NULL;
    if (t->ne[0] != n || t->n_dims != 1 || (t->type != GGML_F32 && t->type != GGML_F16))
        return snprintf(err, len, "%s: tensor '%s' must be %d F32 or F16 values", m->file->path, name, n), NULL;
    gl_tensor *p = gl_param(GL_DIMS(n), name);
    gl_qmatrix_to_floats(&(gl_qmatrix){t->type, 1, n, t->data}, p->data);
    m->weight_bytes += (int64_t)t->n_bytes;
    return p;
}

static bool get_int(llama *m, const char *key, int64_t lo, int64_t hi, int *out, char *err, size_t n) {
    int64_t v;
    if (!gl_gguf_get_int(m->file, key, lo, hi, &v, err, n)) return false;
    *out = (int)v;
    return true;
}

/* the ChatML default system message: what the template writes after "<|im_start|>system\n" when the conversation
 * has no system message of its own */
static char *default_system(gguf_str tpl) {
    const char *marker = "<|im_start|>system\n";
    size_t ml = strlen(marker);
    for (uint64_t i = 0; i + ml <= tpl.len; i++)
        if (!memcmp(tpl.ptr + i, marker, ml)) {
            const char *start = tpl.ptr + i + ml;
            for (const char *e = start; e + 10 <= tpl.ptr + tpl.len; e++)
                if (!memcmp(e, "<|im_end|>", 10)) {
                    if (memchr(start, '{', (size_t)(e - start)) || memchr(start, '\'', (size_t)(e - start))) return NULL;
                    char *s = malloc((size_t)(e - start) + 1);
                    memcpy(s, start, (size_t)(e - start));
                    s[e - start] = 0;
                    return s;
                }
        }
    return NULL;
}

bool llama_load(llama *m, const char *path, char *err, size_t n) {
    memset(m, 0, sizeof *m);
    if (!(m->file = gl_gguf_open(path, err, n))) return false;
    llama_config *c = &m->cfg;
    gguf_str arch;
    bool ok = gl_gguf_get_str(m->file, "general.architecture", &arch, err, n);
    if (ok && !gl_gguf_str_eq(arch, "llama")) {
        snprintf(err, n, "%s: architecture '%.*s' is not supported (gradlab runs 'llama')", path, (int)arch.len, arch.ptr);
        ok = false;
    }
    ok = ok && get_int(m, "llama.block_count", 1, 512, &c->n_layer, err, n) &&
         get_int(m, "llama.embedding_length", 1, 65536, &c->n_embd, err, n) &&
         get_int(m, "llama.feed_forward_length", 1, 1 << 20, &c->n_ff, err, n) &&
         get_int(m, "llama.attention.head_count", 1, 1024, &c->n_head, err, n) &&
         get_int(m, "llama.context_length", 1, 1 << 24, &c->ctx_len, err, n);
    if (!ok) goto fail;
    c->n_kv_head = c->n_head;
    if (gl_gguf_find(m->file, "llama.attention.head_count_kv") &&
        !get_int(m, "llama.attention.head_count_kv", 1, c->n_head, &c->n_kv_head, err, n))
        goto fail;
    if (c->n_embd % c->n_head || c->n_head % c->n_kv_head) {
        snprintf(err, n, "%s: %d heads over %d kv heads do not divide width %d", path, c->n_head, c->n_kv_head, c->n_embd);
        goto fail;
    }
    c->head_dim = c->n_embd / c->n_head;
    c->rope_dim = c->head_dim;
    if (gl_gguf_find(m->file, "llama.rope.dimension_count") &&
        !get_int(m, "llama.rope.dimension_count", 2, c->head_dim, &c->rope_dim, err, n))
        goto fail;
    double base = 10000.0, eps;
    if (gl_gguf_find(m->file, "llama.rope.freq_base") && !gl_gguf_get_float(m->file, "llama.rope.freq_base", &base, err, n))
        goto fail;
    if (!gl_gguf_get_float(m->file, "llama.attention.layer_norm_rms_epsilon", &eps, err, n)) goto fail;
    if (!(base > 1.0 && base < 1e12) || !(eps > 0 && eps < 1) || c->rope_dim % 2) {
        snprintf(err, n, "%s: rope base %g, rope dims %d or norm eps %g is out of range", path, base, c->rope_dim, eps);
        goto fail;
    }
    c->rope_base = (float)base;
    c->norm_eps = (float)eps;
    const gguf_tensor *emb = gl_gguf_tensor(m->file, "token_embd.weight");
    if (!emb) {
        snprintf(err, n, "%s: the model has no tensor 'token_embd.weight'", path);
        goto fail;
    }
    if (emb->ne[1] > 1 << 24) {
        snprintf(err, n, "%s: a vocabulary of %lld tokens is too large", path, (long long)emb->ne[1]);
        goto fail;
    }
    c->vocab_size = (int)emb->ne[1];
    int C = c->n_embd, Ckv = c->head_dim * c->n_kv_head;
    if (!get_matrix(m, "token_embd.weight", c->vocab_size, C, &m->tok_embd, err, n)) goto fail;
    m->weight_bytes -= (int64_t)emb->n_bytes; /* a token reads one row of it, unless it is the output head too */
    m->tied = !gl_gguf_tensor(m->file, "output.weight");
    if (m->tied) m->output = m->tok_embd, m->weight_bytes += (int64_t)emb->n_bytes;
    else if (!get_matrix(m, "output.weight", c->vocab_size, C, &m->output, err, n)) goto fail;
    if (!(m->out_norm = get_vector(m, "output_norm.weight", C, err, n))) goto fail;
    m->layers = calloc((size_t)c->n_layer, sizeof *m->layers);
    for (int l = 0; l < c->n_layer; l++) {
        llama_layer *L = &m->layers[l];
        char name[64];
#define NAME(s) (snprintf(name, sizeof name, "blk.%d.%s.weight", l, s), name)
        if (!(L->attn_norm = get_vector(m, NAME("attn_norm"), C, err, n)) ||
            !(L->ffn_norm = get_vector(m, NAME("ffn_norm"), C, err, n)) ||
            !get_matrix(m, NAME("attn_q"), C, C, &L->wq, err, n) || !get_matrix(m, NAME("attn_k"), Ckv, C, &L->wk, err, n) ||
            !get_matrix(m, NAME("attn_v"), Ckv, C, &L->wv, err, n) ||
            !get_matrix(m, NAME("attn_output"), C, C, &L->wo, err, n) ||
            !get_matrix(m, NAME("ffn_gate"), c->n_ff, C, &L->gate, err, n) ||
            !get_matrix(m, NAME("ffn_up"), c->n_ff, C, &L->up, err, n) ||
            !get_matrix(m, NAME("ffn_down"), C, c->n_ff, &L->down, err, n))
            goto fail;
#undef NAME
    }
    /* the tokenizer and chat template, when the file has them */
    m->bos = m->eos = m->eot = -1;
    if (gl_gguf_find(m->file, "tokenizer.ggml.tokens")) {
        if (!(m->tok = gl_bpe_load_gguf(m->file, err, n))) goto fail;
        if (gl_bpe_vocab_size(m->tok) != c->vocab_size) {
            snprintf(err, n, "%s: the tokenizer has %d tokens but the embedding %d rows", path, gl_bpe_vocab_size(m->tok),
                     c->vocab_size);
            goto fail;
        }
        int64_t v;
        char e2[160];
        if (gl_gguf_get_int(m->file, "tokenizer.ggml.bos_token_id", 0, c->vocab_size - 1, &v, e2, sizeof e2)) m->bos = (int32_t)v;
        if (gl_gguf_get_int(m->file, "tokenizer.ggml.eos_token_id", 0, c->vocab_size - 1, &v, e2, sizeof e2)) m->eos = (int32_t)v;
        const gguf_kv *ab = gl_gguf_find(m->file, "tokenizer.ggml.add_bos_token");
        m->add_bos = ab && ab->type == GGUF_BOOL && ab->v.u && m->bos >= 0;
        gguf_str tpl;
        if (gl_gguf_get_str(m->file, "tokenizer.chat_template", &tpl, e2, sizeof e2)) {
            int32_t start = gl_bpe_special_id(m->tok, "<|im_start|>"), end = gl_bpe_special_id(m->tok, "<|im_end|>");
            bool has = false;
            for (uint64_t i = 0; i + 12 <= tpl.len && !has; i++) has = !memcmp(tpl.ptr + i, "<|im_start|>", 12);
            m->chatml = has && start >= 0 && end >= 0;
            if (m->chatml) m->default_system = default_system(tpl);
        }
        m->eot = m->chatml ? gl_bpe_special_id(m->tok, "<|im_end|>") : m->eos;
    }
    return true;
fail:
    llama_free(m);
    return false;
}

enum { DENSE_PER_LAYER = LLAMA_PER_LAYER };

/* the matrices in the order of llama.h's dense[] */
gl_qmatrix *llama_matrix(llama *m, int i) {
    if (i == 0) return &m->tok_embd;
    if (i == 1) return &m->output;
    llama_layer *L = &m->layers[(i - 2) / DENSE_PER_LAYER];
    gl_qmatrix *ms[DENSE_PER_LAYER] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->gate, &L->up, &L->down};
    return ms[(i - 2) % DENSE_PER_LAYER];
}
static const gl_qmatrix *matrix_at(const llama *m, int i) { return llama_matrix((llama *)m, i); }

int llama_matrix_count(const llama *m) { return 2 + DENSE_PER_LAYER * m->cfg.n_layer; }

void llama_matrix_name(int i, char *name, size_t n) {
    static const char *const names[DENSE_PER_LAYER] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
    if (i < 2) snprintf(name, n, "%s", i == 0 ? "token_embd.weight" : "output.weight");
    else snprintf(name, n, "blk.%d.%s.weight", (i - 2) / DENSE_PER_LAYER, names[(i - 2) % DENSE_PER_LAYER]);
}

bool llama_to(llama *m, gl_device d, char *err, size_t n) {
    if (d == m->device) return true;
    if (d == GL_CPU) return snprintf(err, n, "a model on the cuda device stays there (load it again for the CPU)"), false;
    if (!gl_cuda_present())
        return snprintf(err, n, "%s", gl_cuda_linked() ? "no CUDA device is available" :
                                      "this build has no CUDA kernels (make CUDA=1)"), false;
    int count = 2 + DENSE_PER_LAYER * m->cfg.n_layer;
    m->dense = calloc((size_t)count, sizeof *m->dense);
    for (int i = 0; i < count; i++) {
        const gl_qmatrix *q = matrix_at(m, i);
        if (i == 1 && m->tied) {
            m->dense[1] = m->dense[0];
            continue;
        }
        gl_tensor *t = gl_param(GL_DIMS(q->rows, q->cols), "dequantized weight");
        gl_param_freeze(t);
        gl_qmatrix_to_floats(q, t->data);
        gl_param_to(t, d);
        m->dense[i] = t;
    }
    gl_param_to(m->out_norm, d);
    for (int l = 0; l < m->cfg.n_layer; l++) gl_param_to(m->layers[l].attn_norm, d), gl_param_to(m->layers[l].ffn_norm, d);
    m->device = d;
    return true;
}

void llama_free(llama *m) {
    if (m->dense)
        for (int i = 0; i < 2 + DENSE_PER_LAYER * m->cfg.n_layer; i++)
            if (m->dense[i] && !(i == 1 && m->tied)) gl_param_free(m->dense[i]);
    free(m->dense);
    if (m->layers)
        for (int l = 0; l < m->cfg.n_layer; l++) gl_param_free(m->layers[l].attn_norm), gl_param_free(m->layers[l].ffn_norm);
    if (m->out_norm) gl_param_free(m->out_norm);
    free(m->layers);
    gl_bpe_free(m->tok);
    free(m->default_system);
    gl_gguf_close(m->file);
    memset(m, 0, sizeof *m);
}

/* ---- the KV cache and the forward ---- */

void llama_cache_init(llama_cache *c, const llama *m, int capacity, bool f16) {
    c->n_layer = m->cfg.n_layer;
    c->capacity = capacity;
    c->width = m->cfg.n_kv_head * m->cfg.head_dim;
    c->len = 0;
    c->f16 = f16;
    int64_t n = (int64_t)c->n_layer * capacity * c->width;
    c->device = m->device;
    c->k = gl_buffer_alloc(c->device, n, "KV cache keys");
    c->v = gl_buffer_alloc(c->device, n, "KV cache values");
    c->ids = calloc((size_t)capacity, sizeof *c->ids);
    if (!c->ids) gl_fatal("llama", "out of memory for a cache of %d positions", capacity);
}

void llama_cache_free(llama_cache *c) {
    gl_buffer_free(c->device, c->k);
    gl_buffer_free(c->device, c->v);
    free(c->ids);
    memset(c, 0, sizeof *c);
}

/* x W^T for matrix i of dense[] (llama.h): in place in its blocks on the CPU, dequantized fp32 through cuBLAS on CUDA */
static gl_tensor *linear(llama *m, gl_tensor *x, int i) {
    if (m->dense) return gl_linear(x, gl_transpose(m->dense[i], 0, 1), NULL);
    if (m->observe) {
        x = gl_contiguous(x);
        m->observe(m->observe_ctx, i, x->data, (int)(x->numel / x->shape[x->ndim - 1]), x->shape[x->ndim - 1]);
    }
    return gl_linear_q(x, matrix_at(m, i));
}

/* layer l of the forward on x [T, C] at positions pos.. of cache */
static gl_tensor *layer_forward(llama *m, int l, gl_tensor *x, llama_cache *cache, int pos) {
    const llama_config *c = &m->cfg;
    llama_layer *L = &m->layers[l];
    size_t layer_floats = (size_t)cache->capacity * cache->width;
    int w = 2 + DENSE_PER_LAYER * l; /* wq wk wv wo gate up down */
    gl_tensor *h = gl_rmsnorm(x, L->attn_norm, c->norm_eps);
    gl_tensor *q = gl_rope(linear(m, h, w + 0), c->n_head, pos, c->rope_base, c->rope_dim);
    gl_tensor *k = gl_rope(linear(m, h, w + 1), c->n_kv_head, pos, c->rope_base, c->rope_dim);
    gl_tensor *a = gl_attention_gqa(q, k, linear(m, h, w + 2), cache->k + l * layer_floats, cache->v + l * layer_floats,
                                    cache->capacity, pos, c->n_head, c->n_kv_head, cache->f16);
    x = gl_add(x, linear(m, a, w + 3));
    h = gl_rmsnorm(x, L->ffn_norm, c->norm_eps);
    return gl_add(x, linear(m, gl_swiglu(linear(m, h, w + 4), linear(m, h, w + 5)), w + 6));
}

void llama_layer_forward(llama *m, int l, llama_cache *cache, float *x, int T) {
    if (m->device != GL_CPU || cache->device != GL_CPU) gl_fatal("llama", "llama_layer_forward runs on the CPU");
    if (l < 0 || l >= m->cfg.n_layer) gl_fatal("llama", "layer %d of a model of %d", l, m->cfg.n_layer);
    if (T < 1 || T > cache->capacity - cache->len)
        gl_fatal("llama", "%d tokens at position %d do not fit the KV cache of %d positions", T, cache->len, cache->capacity);
    gl_no_grad_begin();
    gl_scope scope = gl_scope_begin();
    gl_tensor *in = gl_new(GL_DIMS(T, m->cfg.n_embd));
    memcpy(in->data, x, (size_t)T * m->cfg.n_embd * sizeof *x);
    gl_tensor *out = gl_contiguous(layer_forward(m, l, in, cache, cache->len));
    memcpy(x, out->data, (size_t)T * m->cfg.n_embd * sizeof *x);
    gl_scope_end(&scope);
    gl_no_grad_end();
}

void llama_forward_batch(llama *m, llama_cache *const *caches, const int32_t *ids, int n, float *logits) {
    const llama_config *c = &m->cfg;
    if (n < 1) gl_fatal("llama", "a batch needs at least one sequence, got %d", n);
    for (int i = 0; i < n; i++) {
        if (caches[i]->len >= caches[i]->capacity)
            gl_fatal("llama", "sequence %d of the batch: its KV cache of %d positions is full", i, caches[i]->capacity);
        if (caches[i]->device != m->device) gl_fatal("llama", "sequence %d's KV cache is on another device", i);
        for (int j = 0; j < i; j++)
            if (caches[j] == caches[i]) gl_fatal("llama", "sequences %d and %d of the batch share a KV cache", j, i);
    }
    gl_no_grad_begin();
    gl_scope scope = gl_scope_begin();
    gl_tensor *x = m->dense ? gl_embedding(m->dense[0], ids, GL_DIMS(n)) : gl_embedding_q(&m->tok_embd, ids, n); /* [n, C] */
    gl_tensor **rows = gl_arena_alloc((size_t)n * sizeof *rows);
    for (int l = 0; l < c->n_layer; l++) {
        llama_layer *L = &m->layers[l];
        int w = 2 + DENSE_PER_LAYER * l;
        gl_tensor *h = gl_rmsnorm(x, L->attn_norm, c->norm_eps);
        gl_tensor *q = linear(m, h, w + 0), *k = linear(m, h, w + 1), *v = linear(m, h, w + 2); /* [n, .] each */
        for (int i = 0; i < n; i++) { /* sequence i: its position, its cache */
            const llama_cache *ci = caches[i];
            size_t layer_floats = (size_t)ci->capacity * ci->width;
            gl_tensor *qi = gl_rope(gl_slice(q, 0, i, i + 1), c->n_head, ci->len, c->rope_base, c->rope_dim);
            gl_tensor *ki = gl_rope(gl_slice(k, 0, i, i + 1), c->n_kv_head, ci->len, c->rope_base, c->rope_dim);
            rows[i] = gl_attention_gqa(qi, ki, gl_slice(v, 0, i, i + 1), ci->k + l * layer_floats,
                                       ci->v + l * layer_floats, ci->capacity, ci->len, c->n_head, c->n_kv_head, ci->f16);
        }
        x = gl_add(x, linear(m, gl_concat(rows, n, 0), w + 3));
        h = gl_rmsnorm(x, L->ffn_norm, c->norm_eps);
        x = gl_add(x, linear(m, gl_swiglu(linear(m, h, w + 4), linear(m, h, w + 5)), w + 6));
    }
    gl_copy_to_host(linear(m, gl_rmsnorm(x, m->out_norm, c->norm_eps), 1), logits);
    for (int i = 0; i < n; i++) caches[i]->ids[caches[i]->len++] = ids[i];
    gl_scope_end(&scope);
    gl_no_grad_end();
}

void llama_forward(llama *m, llama_cache *cache, const int32_t *ids, int T, float *logits, bool all_logits) {
    const llama_config *c = &m->cfg;
    int pos = cache->len;
    if (T < 1 || T > cache->capacity - pos)
        gl_fatal("llama", "%d tokens at position %d do not fit the KV cache of %d positions", T, pos, cache->capacity);
    if (cache->device != m->device) gl_fatal("llama", "the KV cache and the model are on different devices");
    gl_no_grad_begin();
    gl_scope scope = gl_scope_begin(); /* everything below is freed at the end; the caller's tensors are kept */
    gl_tensor *x = m->dense ? gl_embedding(m->dense[0], ids, GL_DIMS(T)) : gl_embedding_q(&m->tok_embd, ids, T); /* [T, C] */
    for (int l = 0; l < c->n_layer; l++) x = layer_forward(m, l, x, cache, pos);
    if (!all_logits) x = gl_slice(x, 0, T - 1, T); /* the head (vocab x width) only where a token is sampled */
    gl_tensor *out = linear(m, gl_rmsnorm(x, m->out_norm, c->norm_eps), 1);
    gl_copy_to_host(out, logits);
    memcpy(cache->ids + pos, ids, (size_t)T * sizeof *ids);
    cache->len += T;
    gl_scope_end(&scope);
    gl_no_grad_end();
}

void llama_scorer_init(llama_scorer *s, llama *m, int window) {
    s->m = m;
    llama_cache_init(&s->cache, m, window, true);
}
void llama_scorer_free(llama_scorer *s) { llama_cache_free(&s->cache); }
void llama_scorer_logits(void *scorer, const int32_t *ids, int T, float *logits) {
    llama_scorer *s = scorer;
    s->cache.len = 0;
    llama_forward(s->m, &s->cache, ids, T, logits, true);
}

int llama_generate(llama *m, llama_cache *c, const int32_t *prompt, int n_prompt, int max_new, const gl_sampling *s,
                   gl_rng *rng, bool use_cache, gl_emit_fn emit, void *ctx) {
    int V = m->cfg.vocab_size;
    if (n_prompt < 1 || n_prompt > c->capacity)
        gl_fatal("llama", "a prompt of %d tokens does not fit the context of %d", n_prompt, c->capacity);
    int32_t *seq = malloc((size_t)c->capacity * sizeof *seq);
    float *logits = malloc((size_t)V * sizeof(float)), *scratch = malloc((size_t)V * 2 * sizeof(float));
    memcpy(seq, prompt, (size_t)n_prompt * sizeof *seq);
    int keep = 0; /* positions the cache already holds for this prompt; the last prompt token is always fed */
    while (use_cache && keep < c->len && keep < n_prompt - 1 && c->ids[keep] == prompt[keep]) keep++;
    c->len = keep;
    int len = n_prompt, made = 0;
    llama_forward(m, c, seq + keep, len - keep, logits, false);
    while (made < max_new) {
        int32_t tok = gl_sample_next(logits, V, s, rng, scratch);
        if (tok < 0) break; /* a grammar allows nothing more */
        made++;
        bool stop = tok == m->eot || tok == m->eos;
        if ((emit && !emit(tok, ctx)) || stop || len >= c->capacity) break;
        seq[len++] = tok;
        if (made == max_new) break;
        if (use_cache) llama_forward(m, c, seq + len - 1, 1, logits, false);
        else {
            c->len = 0;
            llama_forward(m, c, seq, len, logits, false);
        }
    }
    free(seq);
    free(logits);
    free(scratch);
    return made;
}

/* ---- chat ---- */

/* appends ids for text (plain, no control tokens) at (*ids)[*count..] */
static void append_text(llama *m, const char *text, size_t len, int32_t **ids, size_t *cap, size_t *count) {
    int32_t *seg = NULL;
    size_t seg_cap = 0, seg_n = gl_bpe_encode(m->tok, (const unsigned char *)text, len, &seg, &seg_cap);
    if (*count + seg_n + 2 > *cap) {
        *cap = (*count + seg_n + 2) * 2;
        *ids = realloc(*ids, *cap * sizeof **ids);
    }
    if (seg_n) memcpy(*ids + *count, seg, seg_n * sizeof *seg);
    *count += seg_n;
    free(seg);
}

static void append_id(int32_t id, int32_t **ids, size_t *cap, size_t *count) {
    if (*count + 1 > *cap) {
        *cap = (*count + 1) * 2 + 64;
        *ids = realloc(*ids, *cap * sizeof **ids);
    }
    (*ids)[(*count)++] = id;
}

int llama_chat_ids(llama *m, const char *const *roles, const char *const *texts, int n, int32_t **ids, size_t *cap) {
    if (!m->chatml || !m->tok) return -1;
    int32_t start = gl_bpe_special_id(m->tok, "<|im_start|>"), end = gl_bpe_special_id(m->tok, "<|im_end|>");
    size_t count = 0;
    /* <|im_start|> "role\ntext" <|im_end|> "\n" per message (the text between control tokens is encoded in one
     * piece, as llama.cpp tokenizes the rendered template), then <|im_start|> "assistant\n" */
    for (int i = -1; i <= n; i++) {
        const char *role, *text;
        if (i == -1) {
            if (!m->default_system || (n > 0 && !strcmp(roles[0], "system"))) continue;
            role = "system", text = m->default_system;
        } else if (i == n) role = "assistant", text = "";
        else role = roles[i], text = texts[i];
        size_t len = strlen(role) + 1 + strlen(text);
        char *buf = malloc(len + 1);
        snprintf(buf, len + 1, "%s\n%s", role, text);
        append_id(start, ids, cap, &count);
        append_text(m, buf, len, ids, cap, &count);
        free(buf);
        if (i == n) break;
        append_id(end, ids, cap, &count);
        append_text(m, "\n", 1, ids, cap, &count);
    }
    return (int)count;
}
