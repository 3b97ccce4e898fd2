/* The GPT step on the device: see gpt_cuda.h. Buffers are named as in gpt.c's forward; per layer l the forward
 * keeps its inputs to every op with a backward (x, ln1, qkv, P, att, x_mid, ln2, fc, gelu) and the layernorms'
 * mean and rstd. */
#include "gpt_cuda.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels_cuda.h"

typedef struct {
    float *x, *ln1, *mean1, *rstd1, *qkv, *P, *att, *xmid, *ln2, *mean2, *rstd2, *fc, *gelu;
} layer_acts;

struct gpt_cuda {
    gpt_config cfg;
    int B, T, n_params, n_valid; /* n_valid: the last forward's targets that count (not -1) */
    int64_t step;
    float **w, **g, **m, **v; /* per parameter, canonical order */
    size_t *numel;
    bool *decay;
    const gpt *host;          /* only for the parameter order */
    layer_acts *acts;
    float *x_final, *lnf, *meanf, *rstdf, *logits, *lse, *row_loss, *loss, *scratch, *sumsq, *factor;
    float *dx, *dln, *dgelu, *dfc, *dqkv, *dS, *datt, *dlogits;
    int32_t *idx, *tgt, *pos;
};

static float *dev_floats(size_t n) { return gl_cuda_alloc(n * sizeof(float)); }

/* the slot of one of m's parameters in the device arrays (-1 for an absent bias) */
static int slot(const gpt_cuda *g, const gl_tensor *p) {
    for (int i = 0; p && i < g->n_params; i++)
        if (g->host->params[i] == p) return i;
    return -1;
}
static float *W(const gpt_cuda *g, const gl_tensor *p) {
    int i = slot(g, p);
    return i < 0 ? NULL : g->w[i];
}
static float *G(const gpt_cuda *g, const gl_tensor *p) {
    int i = slot(g, p);
    return i < 0 ? NULL : g->g[i];
}

gpt_cuda *gpt_cuda_create(const gpt *m, int B, int T, char *err, size_t n) {
    if (m->n_adapters || m->nf4) return snprintf(err, n, "the CUDA step trains plain models (merge adapters first)"), NULL;
    if (m->cfg.dropout > 0) return snprintf(err, n, "the CUDA step has no dropout yet (dropout %g)", (double)m->cfg.dropout), NULL;
    if (T < 1 || T > m->cfg.block_size || B < 1) return snprintf(err, n, "batch %d x %d does not fit block size %d", B, T, m->cfg.block_size), NULL;
    if (m->cfg.n_embd / m->cfg.n_head > 128) return snprintf(err, n, "head size above 128"), NULL;
    if (!gl_cuda_available()) return snprintf(err, n, "no CUDA device is available"), NULL;
    gpt_cuda *g = calloc(1, sizeof *g);
    g->cfg = m->cfg;
    g->B = B, g->T = T, g->n_params = m->n_params, g->host = m;
    g->w = calloc((size_t)m->n_params, sizeof *g->w);
    g->g = calloc((size_t)m->n_params, sizeof *g->g);
    g->m = calloc((size_t)m->n_params, sizeof *g->m);
    g->v = calloc((size_t)m->n_params, sizeof *g->v);
    g->numel = calloc((size_t)m->n_params, sizeof *g->numel);
    g->decay = calloc((size_t)m->n_params, sizeof *g->decay);
    size_t total = 0;
    for (int i = 0; i < m->n_params; i++) {
        const gl_tensor *p = m->params[i];
        size_t k = (size_t)p->numel;
        g->numel[i] = k;
        g->decay[i] = !p->no_weight_decay;
        g->w[i] = dev_floats(k), g->g[i] = dev_floats(k), g->m[i] = dev_floats(k), g->v[i] = dev_floats(k);
        gl_cuda_upload(g->w[i], p->data, k * sizeof(float));
        gl_cuda_zero(g->g[i], k * sizeof(float)), gl_cuda_zero(g->m[i], k * sizeof(float)), gl_cuda_zero(g->v[i], k * sizeof(float));
        total += gl_cuda_sum_scratch(k);
    }
    size_t N = (size_t)B * T, C = (size_t)m->cfg.n_embd, V = (size_t)m->cfg.vocab_size, H = (size_t)m->cfg.n_head;
    g->acts = calloc((size_t)m->cfg.n_layer, sizeof *g->acts);
    for (int l = 0; l < m->cfg.n_layer; l++) {
        layer_acts *a = &g->acts[l];
        a->x = dev_floats(N * C), a->ln1 = dev_floats(N * C), a->mean1 = dev_floats(N), a->rstd1 = dev_floats(N);
        a->qkv = dev_floats(N * 3 * C), a->P = dev_floats((size_t)B * H * T * T), a->att = dev_floats(N * C);
        a->xmid = dev_floats(N * C), a->ln2 = dev_floats(N * C), a->mean2 = dev_floats(N), a->rstd2 = dev_floats(N);
        a->fc = dev_floats(N * 4 * C), a->gelu = dev_floats(N * 4 * C);
    }
    g->x_final = dev_floats(N * C), g->lnf = dev_floats(N * C), g->meanf = dev_floats(N), g->rstdf = dev_floats(N);
    g->logits = dev_floats(N * V), g->lse = dev_floats(N), g->row_loss = dev_floats(N), g->loss = dev_floats(1);
    g->scratch = dev_floats(total + gl_cuda_sum_scratch(N) + 4), g->sumsq = dev_floats(1), g->factor = dev_floats(1);
    g->dx = dev_floats(N * C), g->dln = dev_floats(N * C), g->dgelu = dev_floats(N * 4 * C), g->dfc = dev_floats(N * 4 * C);
    g->dqkv = dev_floats(N * 3 * C);
    g->dS = dev_floats((size_t)B * H * T * T), g->datt = dev_floats(N * C), g->dlogits = dev_floats(N * V);
    g->idx = gl_cuda_alloc(N * sizeof(int32_t)), g->tgt = gl_cuda_alloc(N * sizeof(int32_t));
    g->pos = gl_cuda_alloc(N * sizeof(int32_t));
    int32_t *pos = malloc(N * sizeof *pos);
    for (size_t i = 0; i < N; i++) pos[i] = (int32_t)(i % (size_t)T);
    gl_cuda_upload(g->pos, pos, N * sizeof *pos);
    free(pos);
    return g;
}

/* y = x W (+ b): x [N, K], W [K, Nout] */
static void linear_fwd(size_t N, size_t K, size_t Nout, const float *x, const float *w, const float *b, float *y) {
    gl_cuda_gemm(0, 0, (int)N, (int)Nout, (int)K, 1.0f, x, (int)K, w, (int)Nout, 0.0f, y, (int)Nout);
    if (b) gl_cuda_add_bias(N, Nout, b, y);
}

/* dx = dy W^T (overwritten), dW += x^T dy, db += column sums of dy */
static void linear_bwd(size_t N, size_t K, size_t Nout, const float *x, const float *w, const float *dy, float *dx,
                       float *dw, float *db) {
    gl_cuda_gemm(0, 1, (int)N, (int)K, (int)Nout, 1.0f, dy, (int)Nout, w, (int)Nout, 0.0f, dx, (int)K);
    gl_cuda_gemm(1, 0, (int)K, (int)Nout, (int)N, 1.0f, x, (int)K, dy, (int)Nout, 1.0f, dw, (int)Nout);
    if (db) gl_cuda_bias_grad(N, Nout, dy, db);
}

/* the forward of B sequences of T tokens (T <= the created T; positions are 0 .. T-1 in every sequence) up to
 * the logits [B * T, V] */
static void forward_logits(gpt_cuda *g, const int32_t *x, int T) {
    const gpt *m = g->host;
    size_t N = (size_t)g->B * T, C = (size_t)g->cfg.n_embd, V = (size_t)g->cfg.vocab_size;
    int H = g->cfg.n_head, L = g->cfg.n_layer;
    float eps = g->cfg.ln_eps;
    gl_cuda_upload(g->idx, x, N * sizeof(int32_t));
    float *x0 = L ? g->acts[0].x : g->x_final;
    gl_cuda_embedding_fwd(N, C, g->idx, W(g, m->wte), x0);
    gl_cuda_embedding_fwd(N, C, g->pos, W(g, m->wpe), g->dln); /* dln as scratch */
    gl_cuda_axpy(N * C, 1.0f, g->dln, x0);
    for (int l = 0; l < L; l++) {
        layer_acts *a = &g->acts[l];
        const gpt_block *k = &m->blocks[l];
        float *next = l + 1 < L ? g->acts[l + 1].x : g->x_final;
        gl_cuda_layernorm_fwd(N, C, a->x, W(g, k->ln1_w), W(g, k->ln1_b), eps, a->ln1, a->mean1, a->rstd1);
        linear_fwd(N, C, 3 * C, a->ln1, W(g, k->attn_w), W(g, k->attn_b), a->qkv);
        gl_cuda_attention_naive_fwd(g->B, T, (int)C, H, 1, a->qkv, a->att, a->P);
        linear_fwd(N, C, C, a->att, W(g, k->proj_w), W(g, k->proj_b), a->xmid);
        gl_cuda_axpy(N * C, 1.0f, a->x, a->xmid);
        gl_cuda_layernorm_fwd(N, C, a->xmid, W(g, k->ln2_w), W(g, k->ln2_b), eps, a->ln2, a->mean2, a->rstd2);
        linear_fwd(N, C, 4 * C, a->ln2, W(g, k->fc_w), W(g, k->fc_b), a->fc);
        gl_cuda_gelu_fwd(N * 4 * C, a->fc, a->gelu);
        linear_fwd(N, 4 * C, C, a->gelu, W(g, k->fcproj_w), W(g, k->fcproj_b), next);
        gl_cuda_axpy(N * C, 1.0f, a->xmid, next);
    }
    gl_cuda_layernorm_fwd(N, C, g->x_final, W(g, m->lnf_w), W(g, m->lnf_b), eps, g->lnf, g->meanf, g->rstdf);
    /* logits = lnf wte[:V]^T: wte is [padded V, C] row-major, its first V rows used */
    gl_cuda_gemm(0, 1, (int)N, (int)V, (int)C, 1.0f, g->lnf, (int)C, W(g, m->wte), (int)C, 0.0f, g->logits, (int)V);
}

/* the forward to the per-row losses; returns the mean loss (the one copy back) */
static float forward(gpt_cuda *g, const int32_t *x, const int32_t *y) {
    size_t N = (size_t)g->B * g->T, V = (size_t)g->cfg.vocab_size;
    forward_logits(g, x, g->T);
    gl_cuda_upload(g->tgt, y, N * sizeof(int32_t));
    gl_cuda_cross_entropy_fwd(N, V, g->logits, g->tgt, -1, g->lse, g->row_loss);
    gl_cuda_sum(N, g->row_loss, g->scratch, g->loss);
    float sum;
    gl_cuda_download(&sum, g->loss, sizeof sum);
    g->n_valid = 0;
    for (size_t i = 0; i < N; i++) g->n_valid += y[i] != -1;
    return g->n_valid ? sum / (float)g->n_valid : 0.0f;
}

float gpt_cuda_loss(gpt_cuda *g, const int32_t *x, const int32_t *y) { return forward(g, x, y); }

void gpt_cuda_next_logits(gpt_cuda *g, const int32_t *ids, int n, float *logits) {
    if (g->B != 1 || n < 1 || n > g->T) {
        fprintf(stderr, "gpt_cuda_next_logits: needs a model created for batch 1 and 1 <= n <= %d (n = %d)\n", g->T, n);
        exit(1);
    }
    forward_logits(g, ids, n);
    size_t V = (size_t)g->cfg.vocab_size;
    gl_cuda_download(logits, g->logits + (size_t)(n - 1) * V, V * sizeof(float));
}

/* the backward of the last forward (its targets are on the device) */
static void backward(gpt_cuda *g) {
    const gpt *m = g->host;
    size_t N = (size_t)g->B * g->T, C = (size_t)g->cfg.n_embd, V = (size_t)g->cfg.vocab_size;
    int H = g->cfg.n_head, L = g->cfg.n_layer, valid = g->n_valid;
    if (!valid) return;
    gl_cuda_zero(g->dlogits, N * V * sizeof(float));
    gl_cuda_cross_entropy_bwd(N, V, g->logits, g->tgt, -1, g->lse, 1.0f / (float)valid, g->dlogits);
    /* logits = lnf wte^T: d lnf = dlogits wte[:V], d wte[:V] += dlogits^T lnf */
    gl_cuda_gemm(0, 0, (int)N, (int)C, (int)V, 1.0f, g->dlogits, (int)V, W(g, m->wte), (int)C, 0.0f, g->dln, (int)C);
    gl_cuda_gemm(1, 0, (int)V, (int)C, (int)N, 1.0f, g->dlogits, (int)V, g->lnf, (int)C, 1.0f, G(g, m->wte), (int)C);
    gl_cuda_zero(g->dx, N * C * sizeof(float));
    gl_cuda_layernorm_bwd(N, C, g->x_final, W(g, m->lnf_w), g->meanf, g->rstdf, g->dln, g->dx, G(g, m->lnf_w),
                          G(g, m->lnf_b));
    for (int l = L - 1; l >= 0; l--) { /* dx: d loss / d (layer l's output), then / d (its input) */
        layer_acts *a = &g->acts[l];
        const gpt_block *k = &m->blocks[l];
        /* out = xmid + gelu(fc(ln2(xmid))) Wfcproj: dx reaches xmid unchanged, and through the MLP */
        linear_bwd(N, 4 * C, C, a->gelu, W(g, k->fcproj_w), g->dx, g->dgelu, G(g, k->fcproj_w), G(g, k->fcproj_b));
        gl_cuda_zero(g->dfc, N * 4 * C * sizeof(float));
        gl_cuda_gelu_bwd(N * 4 * C, a->fc, g->dgelu, g->dfc);
        linear_bwd(N, C, 4 * C, a->ln2, W(g, k->fc_w), g->dfc, g->dln, G(g, k->fc_w), G(g, k->fc_b));
        gl_cuda_layernorm_bwd(N, C, a->xmid, W(g, k->ln2_w), a->mean2, a->rstd2, g->dln, g->dx, G(g, k->ln2_w),
                              G(g, k->ln2_b));
        /* xmid = x + attention(ln1(x) Wattn) Wproj */
        linear_bwd(N, C, C, a->att, W(g, k->proj_w), g->dx, g->datt, G(g, k->proj_w), G(g, k->proj_b));
        gl_cuda_zero(g->dqkv, N * 3 * C * sizeof(float));
        gl_cuda_attention_naive_bwd(g->B, g->T, (int)C, H, 1, a->qkv, a->P, g->datt, g->dS, g->dqkv);
        linear_bwd(N, C, 3 * C, a->ln1, W(g, k->attn_w), g->dqkv, g->dln, G(g, k->attn_w), G(g, k->attn_b));
        gl_cuda_layernorm_bwd(N, C, a->x, W(g, k->ln1_w), a->mean1, a->rstd1, g->dln, g->dx, G(g, k->ln1_w),
                              G(g, k->ln1_b));
    }
    /* x0 = wte[idx] + wpe[pos] */
    gl_cuda_embedding_bwd(N, C, g->idx, g->dx, G(g, m->wte));
    gl_cuda_embedding_bwd(N, C, g->pos, g->dx, G(g, m->wpe));
}

float gpt_cuda_train_step(gpt_cuda *g, const int32_t *x, const int32_t *y, float lr, float beta1, float beta2,
                          float eps, float weight_decay, float max_norm) {
    float loss = forward(g, x, y);
    backward(g);
    if (max_norm > 0) { /* gl_clip_grad_norm's rule, the factor computed and applied on the device */
        gl_cuda_sum_squares(g->n_params, (const float *const *)g->g, g->numel, g->scratch, g->sumsq);
        gl_cuda_clip_factor(g->sumsq, max_norm, g->factor);
        for (int i = 0; i < g->n_params; i++) gl_cuda_scale(g->numel[i], g->factor, g->g[i]);
    }
    g->step++;
    float bc1 = 1.0f - powf(beta1, (float)g->step), bc2 = 1.0f - powf(beta2, (float)g->step);
    for (int i = 0; i < g->n_params; i++) { /* AdamW: decoupled decay on matrices only, as gl_optim_step */
        gl_cuda_adam_update(g->numel[i], g->w[i], g->g[i], g->m[i], g->v[i], lr, beta1, beta2, eps, 0.0f,
                            g->decay[i] ? weight_decay : 0.0f, bc1, bc2);
        gl_cuda_zero(g->g[i], g->numel[i] * sizeof(float));
    }
    return loss;
}

void gpt_cuda_download(const gpt_cuda *g, gpt *m) {
    for (int i = 0; i < g->n_params; i++) gl_cuda_download(m->params[i]->data, g->w[i], g->numel[i] * sizeof(float));
}

void gpt_cuda_adam_state(gpt_cuda *g, float *state, int64_t *step, bool to_host) {
    for (int i = 0; i < g->n_params; i++) {
        size_t bytes = g->numel[i] * sizeof(float);
        if (to_host) gl_cuda_download(state, g->m[i], bytes), gl_cuda_download(state + g->numel[i], g->v[i], bytes);
        else gl_cuda_upload(g->m[i], state, bytes), gl_cuda_upload(g->v[i], state + g->numel[i], bytes);
        state += 2 * g->numel[i];
    }
    if (to_host) *step = g->step;
    else g->step = *step;
}

void gpt_cuda_free(gpt_cuda *g) {
    if (!g) return;
    for (int i = 0; i < g->n_params; i++) gl_cuda_free(g->w[i]), gl_cuda_free(g->g[i]), gl_cuda_free(g->m[i]), gl_cuda_free(g->v[i]);
    for (int l = 0; l < g->cfg.n_layer; l++) {
        layer_acts *a = &g->acts[l];
        float *bufs[] = {a->x, a->ln1, a->mean1, a->rstd1, a->qkv, a->P, a->att, a->xmid, a->ln2, a->mean2, a->rstd2, a->fc, a->gelu};
        for (size_t k = 0; k < sizeof bufs / sizeof *bufs; k++) gl_cuda_free(bufs[k]);
    }
    float *bufs[] = {g->x_final, g->lnf, g->meanf, g->rstdf, g->logits, g->lse, g->row_loss, g->loss, g->scratch,
                     g->sumsq, g->factor, g->dx, g->dln, g->dgelu, g->dfc, g->dqkv, g->dS, g->datt, g->dlogits};
    for (size_t k = 0; k < sizeof bufs / sizeof *bufs; k++) gl_cuda_free(bufs[k]);
    gl_cuda_free(g->idx), gl_cuda_free(g->tgt), gl_cuda_free(g->pos);
    free(g->w), free(g->g), free(g->m), free(g->v), free(g->numel), free(g->decay), free(g->acts);
    free(g);
}
