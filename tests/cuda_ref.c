/* CPU references for the emulated CUDA tests, through the ops (see cuda_ref.h). */
#include "cuda_ref.h"

#include <string.h>

#include "gradlab.h"

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
