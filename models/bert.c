#include "bert.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "safetensors.h"

/* a frozen parameter holding the safetensors tensor `name` of the given shape (F32) */
static gl_tensor *take(const gl_safetensors *st, const char *dir, const char *name, int rows, int cols, char *err,
                       size_t n) {
    const gl_st_tensor *t = gl_safetensors_find(st, name);
    int64_t want = (int64_t)rows * (cols ? cols : 1);
    if (!t || strcmp(t->dtype, "F32") || t->numel != want) {
        snprintf(err, n, "%s/model.safetensors: tensor '%s' is %s, expected F32 with %lld values", dir, name,
                 t ? t->dtype : "missing", (long long)want);
        return NULL;
    }
    gl_tensor *p = cols ? gl_param(GL_DIMS(rows, cols), name) : gl_param(GL_DIMS(rows), name);
    memcpy(p->data, t->data, (size_t)want * sizeof(float));
    gl_param_freeze(p);
    return p;
}

static bool config_int(const gl_json *cfg, const char *key, int lo, int hi, int *out, const char *path, char *err,
                       size_t n) {
    const gl_json *v = gl_json_get(cfg, key);
    if (!v || v->type != GL_JSON_NUMBER || v->number < lo || v->number > hi || v->number != floor(v->number))
        return snprintf(err, n, "%s: \"%s\" must be an integer in [%d, %d]", path, key, lo, hi), false;
    *out = (int)v->number;
    return true;
}

/* A PyTorch weight [out, in] as a new frozen [in, out] tensor (the old one freed). Few tokens make the GEMM's cost its
 * packing of the weight, and packing [in, out] rows is a copy where [out, in] is a transpose: a 15-token question
 * embeds in about half the time. The sums run in the same order either way. */
static gl_tensor *in_out(gl_tensor *w) {
    int out = w->shape[0], in = w->shape[1];
    gl_tensor *t = gl_param(GL_DIMS(in, out), "weight [in, out]");
    gl_param_freeze(t);
    for (int o = 0; o < out; o++)
        for (int i = 0; i < in; i++) t->data[(size_t)i * out + o] = w->data[(size_t)o * in + i];
    gl_param_free(w);
    return t;
}

bool bert_load(bert *m, const char *dir, char *err, size_t n) {
    memset(m, 0, sizeof *m);
    char path[4096];
    unsigned char *text = NULL, *buf = NULL;
    size_t len;
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (!gl_read_whole_file(path, &text, &len, err, n)) return false;
    gl_json *cfg = gl_json_parse((const char *)text, len, err, n);
    free(text);
    if (!cfg) return false;
    bert_config *c = &m->cfg;
    const gl_json *eps = gl_json_get(cfg, "layer_norm_eps"), *act = gl_json_get(cfg, "hidden_act");
    bool ok = config_int(cfg, "num_hidden_layers", 1, 64, &c->n_layer, path, err, n) &&
              config_int(cfg, "hidden_size", 1, 8192, &c->n_embd, path, err, n) &&
              config_int(cfg, "num_attention_heads", 1, 256, &c->n_head, path, err, n) &&
              config_int(cfg, "intermediate_size", 1, 65536, &c->n_ff, path, err, n) &&
              config_int(cfg, "vocab_size", 5, 1 << 20, &c->vocab_size, path, err, n) &&
              config_int(cfg, "max_position_embeddings", 2, 1 << 16, &c->max_pos, path, err, n);
    if (ok && (c->n_embd % c->n_head || !eps || eps->type != GL_JSON_NUMBER || !(eps->number > 0) ||
               !act || act->type != GL_JSON_STRING || strcmp(act->string, "gelu")))
        ok = false, snprintf(err, n, "%s: a BERT with hidden_size divisible by the heads, layer_norm_eps > 0 and the "
                                     "erf \"gelu\" is needed", path);
    if (ok) c->ln_eps = (float)eps->number;
    gl_json_free(cfg);
    if (!ok) return false;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    gl_safetensors st;
    if (!gl_read_whole_file(path, &buf, &len, err, n)) return false;
    if (!gl_safetensors_parse(buf, len, path, &st, err, n)) return free(buf), false;
    int C = c->n_embd;
    ok = (m->word = take(&st, dir, "embeddings.word_embeddings.weight", c->vocab_size, C, err, n)) &&
         (m->pos = take(&st, dir, "embeddings.position_embeddings.weight", c->max_pos, C, err, n)) &&
         (m->type = take(&st, dir, "embeddings.token_type_embeddings.weight", 2, C, err, n)) &&
         (m->ln_w = take(&st, dir, "embeddings.LayerNorm.weight", C, 0, err, n)) &&
         (m->ln_b = take(&st, dir, "embeddings.LayerNorm.bias", C, 0, err, n));
    m->layers = calloc((size_t)c->n_layer, sizeof *m->layers);
    for (int l = 0; ok && l < c->n_layer; l++) {
        bert_layer *L = &m->layers[l];
        char name[128];
        gl_tensor *part[6] = {0};
        static const char *const qkv[3] = {"query", "key", "value"};
        for (int k = 0; ok && k < 3; k++) {
            snprintf(name, sizeof name, "encoder.layer.%d.attention.self.%s.weight", l, qkv[k]);
            ok = (part[k] = take(&st, dir, name, C, C, err, n)) != NULL;
            snprintf(name, sizeof name, "encoder.layer.%d.attention.self.%s.bias", l, qkv[k]);
            ok = ok && (part[3 + k] = take(&st, dir, name, C, 0, err, n)) != NULL;
        }
        if (ok) { /* q, k, v rows stacked: x [T, C] times its transpose gives [T, 3C] = q | k | v */
            L->qkv_w = gl_param(GL_DIMS(3 * C, C), "qkv.weight"), L->qkv_b = gl_param(GL_DIMS(3 * C), "qkv.bias");
            gl_param_freeze(L->qkv_w), gl_param_freeze(L->qkv_b);
            for (int k = 0; k < 3; k++) {
                memcpy(L->qkv_w->data + (size_t)k * C * C, part[k]->data, (size_t)C * C * sizeof(float));
                memcpy(L->qkv_b->data + (size_t)k * C, part[3 + k]->data, (size_t)C * sizeof(float));
            }
        }
        for (int k = 0; k < 6; k++) gl_param_free(part[k]);
#define TAKE(field, suffix, rows, cols)                                                                             \
    if (ok) {                                                                                                        \
        snprintf(name, sizeof name, "encoder.layer.%d.%s", l, suffix);                                               \
        ok = (L->field = take(&st, dir, name, rows, cols, err, n)) != NULL;                                           \
    }
        TAKE(o_w, "attention.output.dense.weight", C, C)
        TAKE(o_b, "attention.output.dense.bias", C, 0)
        TAKE(ln1_w, "attention.output.LayerNorm.weight", C, 0)
        TAKE(ln1_b, "attention.output.LayerNorm.bias", C, 0)
        TAKE(ff1_w, "intermediate.dense.weight", c->n_ff, C)
        TAKE(ff1_b, "intermediate.dense.bias", c->n_ff, 0)
        TAKE(ff2_w, "output.dense.weight", C, c->n_ff)
        TAKE(ff2_b, "output.dense.bias", C, 0)
        TAKE(ln2_w, "output.LayerNorm.weight", C, 0)
        TAKE(ln2_b, "output.LayerNorm.bias", C, 0)
#undef TAKE
    }
    gl_safetensors_free(&st);
    free(buf);
    for (int l = 0; ok && l < c->n_layer; l++) { /* each weight [out, in] stored as [in, out] */
        bert_layer *L = &m->layers[l];
        gl_tensor **w[4] = {&L->qkv_w, &L->o_w, &L->ff1_w, &L->ff2_w};
        for (int i = 0; i < 4; i++) *w[i] = in_out(*w[i]);
    }
    if (ok) {
        snprintf(path, sizeof path, "%s/vocab.txt", dir);
        ok = (m->tok = gl_wordpiece_load(path, err, n)) != NULL;
        if (ok && gl_wordpiece_vocab_size(m->tok) != c->vocab_size)
            ok = false, snprintf(err, n, "%s has %d pieces, the model %d", path, gl_wordpiece_vocab_size(m->tok), c->vocab_size);
    }
    m->max_tokens = c->max_pos < 256 ? c->max_pos : 256;
    if (!ok) bert_free(m);
    return ok;
}

void bert_free(bert *m) {
    gl_tensor *t[5] = {m->word, m->pos, m->type, m->ln_w, m->ln_b};
    for (int i = 0; i < 5; i++) gl_param_free(t[i]);
    for (int l = 0; m->layers && l < m->cfg.n_layer; l++) {
        bert_layer *L = &m->layers[l];
        gl_tensor *u[12] = {L->qkv_w, L->qkv_b, L->o_w, L->o_b, L->ln1_w, L->ln1_b,
                            L->ff1_w, L->ff1_b, L->ff2_w, L->ff2_b, L->ln2_w, L->ln2_b};
        for (int i = 0; i < 12; i++) gl_param_free(u[i]);
    }
    free(m->layers);
    gl_wordpiece_free(m->tok);
    memset(m, 0, sizeof *m);
}

/* x [T, in] times a weight stored [in, out] (bert_load transposed PyTorch's) plus its bias */
static gl_tensor *dense(gl_tensor *x, gl_tensor *w, gl_tensor *b) { return gl_linear(x, w, b); }

void bert_embed_ids(bert *m, const int32_t *ids, int T, float *out) {
    const bert_config *c = &m->cfg;
    if (T < 1 || T > c->max_pos) gl_fatal("bert", "%d tokens; the model takes 1 to %d", T, c->max_pos);
    gl_no_grad_begin();
    gl_scope scope = gl_scope_begin();
    int32_t *pos = gl_arena_alloc((size_t)T * sizeof *pos), *type = gl_arena_alloc((size_t)T * sizeof *type);
    for (int t = 0; t < T; t++) pos[t] = t, type[t] = 0;
    gl_tensor *x = gl_add(gl_add(gl_embedding(m->word, ids, GL_DIMS(T)), gl_embedding(m->pos, pos, GL_DIMS(T))),
                          gl_embedding(m->type, type, GL_DIMS(T)));
    x = gl_layernorm(x, m->ln_w, m->ln_b, c->ln_eps);
    for (int l = 0; l < c->n_layer; l++) {
        bert_layer *L = &m->layers[l];
        gl_tensor *qkv = gl_reshape(dense(x, L->qkv_w, L->qkv_b), GL_DIMS(1, T, 3 * c->n_embd));
        gl_tensor *a = gl_reshape(gl_attention_ex(qkv, c->n_head, false, GL_ATTN_NAIVE), GL_DIMS(T, c->n_embd));
        x = gl_layernorm(gl_add(x, dense(a, L->o_w, L->o_b)), L->ln1_w, L->ln1_b, c->ln_eps);
        gl_tensor *f = dense(gl_gelu_erf(dense(x, L->ff1_w, L->ff1_b)), L->ff2_w, L->ff2_b);
        x = gl_layernorm(gl_add(x, f), L->ln2_w, L->ln2_b, c->ln_eps);
    }
    gl_tensor *mean = gl_mean(x, 0, false); /* [C]: mean pooling over the tokens */
    double ss = 0;
    for (int i = 0; i < c->n_embd; i++) ss += (double)mean->data[i] * mean->data[i];
    float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
    for (int i = 0; i < c->n_embd; i++) out[i] = mean->data[i] * inv;
    gl_scope_end(&scope);
    gl_no_grad_end();
}

int bert_embed(bert *m, const char *text, float *out, bool *truncated) {
    int32_t ids[512];
    int n = gl_wordpiece_encode(m->tok, text, ids, m->max_tokens < 512 ? m->max_tokens : 512, truncated);
    bert_embed_ids(m, ids, n, out);
    return n;
}
