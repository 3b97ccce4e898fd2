/* CPU references for the emulated CUDA tests, through the ops (see cuda_ref.h). */
#include "cuda_ref.h"

#include <string.h>

#include "gpt.h"
#include "gpt_cuda.h"
#include "gradlab.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

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

void ref_gpt_steps(int bias, int steps, float *cpu_loss, float *cuda_loss, float *max_weight_diff) {
    gpt_config cfg = {.n_layer = 2, .n_head = 2, .n_embd = 32, .block_size = 16, .vocab_size = 13,
                      .padded_vocab_size = 64, .dropout = 0.0f, .bias = bias, .ln_eps = 1e-5f};
    enum { B = 2, T = 12 };
    gpt cpu, back;
    gpt_build(&cpu, cfg);
    gpt_init(&cpu, 3);
    gpt_build(&back, cfg);
    char err[256];
    gpt_cuda *dev = gpt_cuda_create(&cpu, B, T, err, sizeof err);
    if (!dev) {
        fprintf(stderr, "gpt_cuda_create: %s\n", err);
        abort();
    }
    gl_optim *opt = gl_adamw(cpu.params, cpu.n_params, 1e-2f, 0.9f, 0.99f, 1e-8f, 0.1f);
    gl_rng r;
    gl_rng_seed(&r, 11);
    int32_t x[B * T], y[B * T]; /* one batch, seen at every step: the loss must fall */
    for (int i = 0; i < B * T; i++) x[i] = (int32_t)gl_rng_below(&r, 13), y[i] = (int32_t)gl_rng_below(&r, 13);
    for (int s = 0; s < steps; s++) {
        gl_step_reset();
        gl_tensor *loss = gpt_loss(&cpu, x, y, B, T, NULL, false);
        cpu_loss[s] = loss->data[0];
        gl_backward(loss);
        gl_clip_grad_norm(cpu.params, cpu.n_params, 0.5f); /* small enough that clipping acts */
        gl_optim_step(opt);
        gl_optim_zero_grad(opt);
        cuda_loss[s] = gpt_cuda_train_step(dev, x, y, 1e-2f, 0.9f, 0.99f, 1e-8f, 0.1f, 0.5f);
    }
    gpt_cuda_download(dev, &back);
    float d = 0;
    for (int i = 0; i < cpu.n_params; i++)
        for (int64_t j = 0; j < cpu.params[i]->numel; j++)
            d = fmaxf(d, fabsf(cpu.params[i]->data[j] - back.params[i]->data[j]));
    *max_weight_diff = d;
    gl_optim_free(opt);
    gpt_cuda_free(dev);
    gpt_free(&cpu);
    gpt_free(&back);
    gl_step_reset();
}
