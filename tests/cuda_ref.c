/* CPU references for the emulated CUDA tests, through the ops (see cuda_ref.h). */
#include "cuda_ref.h"

#include <string.h>

#include "gpt.h"
#include "llama.h"
#include "sample.h"
#include "gradlab.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
    int32_t *out;
    int k;
} collect_ctx;
static bool collect_token(int32_t tok, void *ctx) {
    collect_ctx *c = ctx;
    c->out[c->k++] = tok;
    return true;
}

void ref_layernorm_grads(int rows, int cols, const float *x, const float *w, const float *b, const float *dy,
                         float *dx, float *dw, float *db) {
    gl_tensor *xp = gl_param(GL_DIMS(rows, cols), "x"), *wp = gl_param(GL_DIMS(cols), "w"), *bp = gl_param(GL_DIMS(cols), "b");
    memcpy(xp->data, x, (size_t)rows * cols * sizeof(float));
    memcpy(wp->data, w, (size_t)cols * sizeof(float));
    memcpy(bp->data, b, (size_t)cols * sizeof(float));
    gl_step_reset();
    gl_backward(gl_sum_all(gl_mul(gl_layernorm(xp, wp, bp, 1e-5f), gl_from(GL_DIMS(rows, cols), dy))));
    memcpy(dx, xp->grad, (size_t)rows * cols * sizeof(float));
    memcpy(dw, wp->grad, (size_t)cols * sizeof(float));
    memcpy(db, bp->grad, (size_t)cols * sizeof(float));
    gl_param_free(xp), gl_param_free(wp), gl_param_free(bp);
    gl_step_reset();
}

float ref_cross_entropy(int rows, int V, const float *x, const int32_t *targets, int ignore, float *dx) {
    gl_tensor *xp = gl_param(GL_DIMS(rows, V), "logits");
    memcpy(xp->data, x, (size_t)rows * V * sizeof(float));
    gl_step_reset();
    gl_tensor *loss = gl_cross_entropy(xp, targets, ignore);
    float value = loss->data[0];
    gl_backward(loss);
    memcpy(dx, xp->grad, (size_t)rows * V * sizeof(float));
    gl_param_free(xp);
    gl_step_reset();
    return value;
}

void ref_attention(int B, int T, int C, int H, int causal, const float *qkv, const float *dout, float *out, float *dqkv) {
    gl_tensor *x = gl_param(GL_DIMS(B, T, 3 * C), "qkv");
    memcpy(x->data, qkv, (size_t)B * T * 3 * C * sizeof(float));
    gl_step_reset();
    gl_tensor *y = gl_attention_ex(x, H, causal, GL_ATTN_NAIVE);
    memcpy(out, y->data, (size_t)B * T * C * sizeof(float));
    gl_backward(gl_sum_all(gl_mul(y, gl_from(GL_DIMS(B, T, C), dout))));
    memcpy(dqkv, x->grad, (size_t)B * T * 3 * C * sizeof(float));
    gl_param_free(x);
    gl_step_reset();
}

int ref_sample_token(const float *logits, int V, float temperature, gl_rng *rng) {
    gl_sampling s = {.temperature = temperature, .top_k = 0, .top_p = 1.0f};
    float *scratch = malloc(2 * (size_t)V * sizeof(float));
    int token = gl_sample_token(logits, V, &s, rng, scratch);
    free(scratch);
    return token;
}

void ref_attention_step(int C, int H, int pos, const float *qkv, float *k_cache, float *v_cache, float *out) {
    gl_step_reset();
    gl_no_grad_begin();
    gl_tensor *y = gl_attention_step(gl_from(GL_DIMS(1, 3 * C), qkv), k_cache, v_cache, pos, H);
    memcpy(out, y->data, (size_t)C * sizeof(float));
    gl_no_grad_end();
    gl_step_reset();
}

static gpt_config small_config(int bias, float dropout) {
    return (gpt_config){.n_layer = 2, .n_head = 2, .n_embd = 32, .block_size = 48, .vocab_size = 13,
                        .padded_vocab_size = 64, .dropout = dropout, .bias = bias, .ln_eps = 1e-5f};
}

/* a CPU model and a copy of it moved to the CUDA device, from the same initial weights (and the same LoRA
 * adapters, with B made nonzero so they change the output from the first step, when lora) */
static void model_pair(gpt_config cfg, gl_attn_impl attention, bool lora, gpt *cpu, gpt *dev) {
    gpt_build(cpu, cfg);
    gpt_init(cpu, 3);
    gpt_build(dev, cfg);
    gpt_init(dev, 3);
    cpu->attention = dev->attention = attention;
    for (int k = 0; lora && k < 2; k++) {
        gpt *m = k ? dev : cpu;
        gpt_lora_config lc = {.rank = 4, .alpha = 8.0f, .targets = "qvf"};
        gpt_lora_attach(m, lc, 9);
        gl_rng r;
        gl_rng_seed(&r, 4);
        for (int i = 0; i < m->n_adapters; i++) gl_init_normal(m->adapters[i].b, &r, 0.05f);
    }
    char err[256];
    if (!gpt_to(dev, GL_CUDA, err, sizeof err)) {
        fprintf(stderr, "gpt_to: %s\n", err);
        abort();
    }
}

void ref_gpt_steps(int bias, int flash, float dropout, int lora, int steps, float *cpu_loss, float *cuda_loss,
                   float *max_weight_diff) {
    enum { B = 2, MAX_T = 40 };
    int T = flash ? MAX_T : 12; /* flash: two 32-row tiles; naive attention's emulation costs ~T^2 fiber switches */
    gpt cpu, dev;
    model_pair(small_config(bias, dropout), flash ? GL_ATTN_FLASH : GL_ATTN_NAIVE, lora, &cpu, &dev);
    gl_optim *opt_cpu = gl_adamw(cpu.trainable, cpu.n_trainable, 1e-2f, 0.9f, 0.99f, 1e-8f, 0.1f);
    gl_optim *opt_dev = gl_adamw(dev.trainable, dev.n_trainable, 1e-2f, 0.9f, 0.99f, 1e-8f, 0.1f);
    gl_rng r, drop_cpu, drop_dev;
    gl_rng_seed(&r, 11);
    gl_rng_seed(&drop_cpu, 5), gl_rng_seed(&drop_dev, 5);
    int32_t x[B * MAX_T], y[B * MAX_T]; /* one batch, seen at every step: the loss must fall */
    for (int i = 0; i < B * T; i++) x[i] = (int32_t)gl_rng_below(&r, 13), y[i] = (int32_t)gl_rng_below(&r, 13);
    for (int s = 0; s < steps; s++) /* the same code for both: only where the parameters live differs */
        for (int d = 0; d < 2; d++) {
            gpt *m = d ? &dev : &cpu;
            gl_optim *opt = d ? opt_dev : opt_cpu;
            gl_step_reset();
            gl_tensor *loss = gpt_loss(m, x, y, B, T, d ? &drop_dev : &drop_cpu, dropout > 0.0f);
            (d ? cuda_loss : cpu_loss)[s] = gl_item(loss);
            gl_backward(loss);
            gl_clip_grad_norm(m->trainable, m->n_trainable, 0.5f); /* small enough that clipping acts */
            gl_optim_step(opt);
            gl_optim_zero_grad(opt);
        }
    char err[256];
    gpt_to(&dev, GL_CPU, err, sizeof err);
    float diff = 0;
    for (int i = 0; i < cpu.n_trainable; i++)
        for (int64_t j = 0; j < cpu.trainable[i]->numel; j++)
            diff = fmaxf(diff, fabsf(cpu.trainable[i]->data[j] - dev.trainable[i]->data[j]));
    *max_weight_diff = diff;
    gl_optim_free(opt_cpu), gl_optim_free(opt_dev);
    gpt_free(&cpu), gpt_free(&dev);
    gl_step_reset();
}

float ref_gpt_cached_logits(int n, int32_t *cpu_tokens, int32_t *cuda_tokens) {
    gpt cpu, dev;
    model_pair(small_config(1, 0.0f), GL_ATTN_NAIVE, false, &cpu, &dev);
    gpt_kv_cache kc, kd;
    gpt_kv_cache_init(&kc, &cpu), gpt_kv_cache_init(&kd, &dev);
    float lc[13], ld[13], diff = 0;
    for (int i = 0; i < n; i++) { /* feed a fixed token stream, compare every step's logits */
        int32_t tok = (int32_t)((i * 7 + 3) % 13);
        gpt_forward_cached(&cpu, &kc, tok, lc);
        gpt_forward_cached(&dev, &kd, tok, ld);
        for (int v = 0; v < 13; v++) diff = fmaxf(diff, fabsf(lc[v] - ld[v]));
    }
    gpt_kv_cache_free(&kc), gpt_kv_cache_free(&kd);
    /* generation: greedy, then temperature 0.8 (drawn on the device there), each with the window recomputed and
     * with the cache */
    gl_sampling modes[2] = {{.temperature = 0.0f, .top_k = 0, .top_p = 1.0f},
                            {.temperature = 0.8f, .top_k = 0, .top_p = 1.0f}};
    int32_t prompt[2] = {1, 2};
    for (int d = 0; d < 2; d++) {
        gl_rng rng;
        gl_rng_seed(&rng, 1);
        for (int k = 0; k < 4; k++) {
            int32_t *out = (d ? cuda_tokens : cpu_tokens) + k * n;
            collect_ctx ctx = {out, 0};
            gl_generate(d ? &dev : &cpu, prompt, 2, n, &modes[k / 2], &rng, k % 2, collect_token, &ctx);
        }
    }
    gpt_free(&cpu), gpt_free(&dev);
    gl_step_reset();
    return diff;
}

void ref_host_access_to_a_device_tensor(void) {
    gl_tensor *p = gl_param(GL_DIMS(4), "w");
    gl_param_to(p, GL_CUDA);
    gl_fill(p, 1.0f); /* would write device memory from the host: stops with a message */
}

void ref_op_without_cuda_path(void) {
    gl_tensor *p = gl_param(GL_DIMS(4), "p");
    gl_param_to(p, GL_CUDA);
    gl_exp(p); /* exp has no CUDA kernel: stops with a message */
}

/* continuous batching on each device: three sequences' prompts, then two steps of the three together */
float ref_llama_batch_logits(void) {
    char err[256];
    llama a, b;
    if (!llama_load(&a, "tests/ref/llama_tiny.gguf", err, sizeof err) || !llama_load(&b, "tests/ref/llama_tiny.gguf", err, sizeof err) ||
        !llama_to(&b, GL_CUDA, err, sizeof err))
        gl_fatal("ref_llama_batch_logits", "%s", err);
    int V = a.cfg.vocab_size;
    int32_t prompts[3][4] = {{3, 96, 0, 41}, {7, 58}, {13, 2, 77}}, lens[3] = {4, 2, 3};
    llama_cache ca[3], cb[3];
    llama_cache *pa[3], *pb[3];
    float *la = malloc((size_t)3 * V * sizeof(float)), *lb = malloc((size_t)3 * V * sizeof(float)), diff = 0;
    for (int i = 0; i < 3; i++) {
        llama_cache_init(&ca[i], &a, 16, false), llama_cache_init(&cb[i], &b, 16, false);
        llama_forward(&a, &ca[i], prompts[i], lens[i], la, false), llama_forward(&b, &cb[i], prompts[i], lens[i], lb, false);
        pa[i] = &ca[i], pb[i] = &cb[i];
    }
    int32_t next[3] = {5, 9, 64};
    for (int step = 0; step < 2; step++) {
        llama_forward_batch(&a, pa, next, 3, la), llama_forward_batch(&b, pb, next, 3, lb);
        for (int i = 0; i < 3 * V; i++) diff = fmaxf(diff, fabsf(la[i] - lb[i]));
        for (int i = 0; i < 3; i++) next[i] = (next[i] + 11) % V;
    }
    for (int i = 0; i < 3; i++) llama_cache_free(&ca[i]), llama_cache_free(&cb[i]);
    llama_free(&a), llama_free(&b);
    free(la), free(lb);
    return diff;
}

float ref_llama_logits(int n, int32_t *cpu_tokens, int32_t *cuda_tokens) {
    char err[256];
    llama a, b;
    if (!llama_load(&a, "tests/ref/llama_tiny.gguf", err, sizeof err) || !llama_load(&b, "tests/ref/llama_tiny.gguf", err, sizeof err) ||
        !llama_to(&b, GL_CUDA, err, sizeof err))
        gl_fatal("ref_llama_logits", "%s", err);
    int V = a.cfg.vocab_size, T = 9;
    int32_t ids[9] = {3, 96, 0, 41, 41, 7, 58, 13, 2};
    float *la = malloc((size_t)T * V * sizeof(float)), *lb = malloc((size_t)T * V * sizeof(float)), diff = 0;
    llama_cache ca, cb;
    llama_cache_init(&ca, &a, 32, false), llama_cache_init(&cb, &b, 32, false);
    /* a prompt of 6 in one pass, then 3 single steps: both attention paths of each device */
    llama_forward(&a, &ca, ids, 6, la, true), llama_forward(&b, &cb, ids, 6, lb, true);
    for (int t = 6; t < T; t++)
        llama_forward(&a, &ca, ids + t, 1, la + (size_t)t * V, false), llama_forward(&b, &cb, ids + t, 1, lb + (size_t)t * V, false);
    for (int i = 0; i < T * V; i++) diff = fmaxf(diff, fabsf(la[i] - lb[i]));
    gl_sampling greedy = {.temperature = 0, .top_k = 0, .top_p = 1};
    collect_ctx ka = {cpu_tokens, 0}, kb = {cuda_tokens, 0};
    ca.len = cb.len = 0;
    llama_generate(&a, &ca, ids, 3, n, &greedy, NULL, true, collect_token, &ka);
    llama_generate(&b, &cb, ids, 3, n, &greedy, NULL, true, collect_token, &kb);
    for (int i = ka.k; i < n; i++) cpu_tokens[i] = -1;
    for (int i = kb.k; i < n; i++) cuda_tokens[i] = -1;
    llama_cache_free(&ca), llama_cache_free(&cb);
    llama_free(&a), llama_free(&b);
    free(la), free(lb);
    return diff;
}
