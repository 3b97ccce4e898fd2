/* Causal multi-head self-attention, fused into one op (as llm.c's attention_forward/backward), forward beside
 * backward. Each (batch, head) pair is independent: OpenMP runs over the pairs and each does its small GEMMs on
 * one thread, reading q, k and v in place inside qkv through a leading dimension of 3C (no copies).
 *
 *   S = q k^T / sqrt(hs)          [T, T]
 *   P = softmax over j <= i of S  [T, T]   saved for backward
 *   out = P v                     [T, hs]  written into columns h*hs.. of out [B, T, C]
 * Backward, with dP = dout v^T and dS = P * (dP - rowsum(P * dP)):
 *   dv += P^T dout,  dq += dS k / sqrt(hs),  dk += dS^T q / sqrt(hs)
 * Queries go in blocks of ROWS: block [i0, i1) only meets keys [0, i1), so the GEMMs skip most of the masked
 * upper triangle (at T = 256, 62% of the full T x T work is done instead of 100%).
 */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "kernels.h"
#include "ops.h"

enum { ROWS = 64 }; /* query rows per block */

typedef struct {
    int B, T, C, nh, hs;
    float scale;
} attn_dims;

static attn_dims dims_of(const gl_tensor *qkv, int n_head) {
    attn_dims d;
    d.B = qkv->shape[0];
    d.T = qkv->shape[1];
    d.C = qkv->shape[2] / 3;
    d.nh = n_head;
    d.hs = d.C / n_head;
    d.scale = 1.0f / sqrtf((float)d.hs);
    return d;
}

static void attention_backward(gl_node *n) {
    gl_tensor *qkv = n->in[0], *out = n->out;
    attn_dims d = dims_of(qkv, n->ival[0]);
    const float *P_all = n->saved[0];
    float *dP_all = n->saved[1]; /* one T x T scratch per thread */
    int T = d.T, C3 = 3 * d.C;
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < d.B * d.nh; bh++) {
        int b = bh / d.nh, h = bh % d.nh;
        const float *P = P_all + (size_t)bh * T * T;
        float *dP = dP_all + (size_t)omp_get_thread_num() * T * T;
        const float *base = qkv->data + (size_t)b * T * C3;
        float *gbase = qkv->grad + (size_t)b * T * C3;
        const float *q = base + h * d.hs, *k = base + d.C + h * d.hs, *v = base + 2 * d.C + h * d.hs;
        float *dq = gbase + h * d.hs, *dk = gbase + d.C + h * d.hs, *dv = gbase + 2 * d.C + h * d.hs;
        const float *dout = out->grad + (size_t)b * T * d.C + h * d.hs;
        for (int i0 = 0; i0 < T; i0 += ROWS) {
            int i1 = i0 + ROWS < T ? i0 + ROWS : T, m = i1 - i0; /* rows [i0, i1) see keys [0, i1) */
            const float *Pb = P + (size_t)i0 * T;
            float *dS = dP + (size_t)i0 * T;
            gl_gemm(0, 1, m, i1, d.hs, 1.0f, dout + (size_t)i0 * d.C, d.C, v, C3, 0.0f, dS, T); /* dP = dout v^T */
            gl_gemm(1, 0, i1, d.hs, m, 1.0f, Pb, T, dout + (size_t)i0 * d.C, d.C, 1.0f, dv, C3); /* dv += P^T dout */
            for (int i = i0; i < i1; i++) { /* dS in place of dP */
                const float *p = P + (size_t)i * T;
                float *g = dP + (size_t)i * T, dot = 0.0f;
                for (int j = 0; j <= i; j++) dot += p[j] * g[j];
                for (int j = 0; j <= i; j++) g[j] = p[j] * (g[j] - dot);
                for (int j = i + 1; j < i1; j++) g[j] = 0.0f;
            }
            gl_gemm(0, 0, m, d.hs, i1, d.scale, dS, T, k, C3, 1.0f, dq + (size_t)i0 * C3, C3); /* dq += dS k */
            gl_gemm(1, 0, i1, d.hs, m, d.scale, dS, T, q + (size_t)i0 * C3, C3, 1.0f, dk, C3); /* dk += dS^T q */
        }
    }
}

gl_tensor *gl_attention(gl_tensor *qkv, int n_head) {
    char s[64];
    qkv = gl_contiguous(qkv);
    if (qkv->ndim != 3 || qkv->shape[2] % 3 != 0 || n_head <= 0 || (qkv->shape[2] / 3) % n_head != 0)
        gl_fatal("attention", "qkv must be [B, T, 3C] with C divisible by n_head = %d, got %s", n_head,
                 gl_shape_str(qkv, s, sizeof s));
    attn_dims d = dims_of(qkv, n_head);
    int T = d.T, C3 = 3 * d.C;
    gl_node *node;
    gl_tensor *out = gl_op_output("attention", GL_DIMS(d.B, T, d.C), attention_backward, &node, GL_INPUTS(qkv));
    float *P_all = gl_arena_alloc((size_t)d.B * d.nh * T * T * sizeof(float));
    const gl_kernels *kern = gl_kern();
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < d.B * d.nh; bh++) {
        int b = bh / d.nh, h = bh % d.nh;
        float *P = P_all + (size_t)bh * T * T;
        const float *base = qkv->data + (size_t)b * T * C3;
        const float *q = base + h * d.hs, *k = base + d.C + h * d.hs, *v = base + 2 * d.C + h * d.hs;
        float *o = out->data + (size_t)b * T * d.C + h * d.hs;
        for (int i0 = 0; i0 < T; i0 += ROWS) {
            int i1 = i0 + ROWS < T ? i0 + ROWS : T, m = i1 - i0;
            float *S = P + (size_t)i0 * T;
            gl_gemm(0, 1, m, i1, d.hs, d.scale, q + (size_t)i0 * C3, C3, k, C3, 0.0f, S, T); /* S = q k^T * scale */
            for (int i = i0; i < i1; i++) {
                float *row = P + (size_t)i * T;
                kern->softmax_rows(1, (size_t)i + 1, row, row); /* keys 0..i only: the causal mask */
                memset(row + i + 1, 0, (size_t)(i1 - i - 1) * sizeof(float));
            }
            gl_gemm(0, 0, m, d.hs, i1, 1.0f, S, T, v, C3, 0.0f, o + (size_t)i0 * d.C, d.C); /* out = P v */
        }
    }
    if (node) {
        node->ival[0] = n_head;
        node->saved[0] = P_all;
        node->saved[1] = gl_arena_alloc((size_t)omp_get_max_threads() * T * T * sizeof(float));
    }
    return out;
}

/* ---- one decoding step against a KV cache (inference only: no backward) ----
 * qkv [1, 3C] is the new token's projection; its k and v are appended at row `pos` of the caches
 * ([block_size, C] each, row-major) and its query attends to rows 0..pos. */
gl_tensor *gl_attention_step(gl_tensor *qkv, float *k_cache, float *v_cache, int pos, int n_head) {
    char s[64];
    qkv = gl_contiguous(qkv);
    if (qkv->numel % 3 != 0 || qkv->shape[qkv->ndim - 1] != qkv->numel || (qkv->numel / 3) % n_head != 0)
        gl_fatal("attention_step", "qkv must be one row of 3C values with C divisible by n_head = %d, got %s",
                 n_head, gl_shape_str(qkv, s, sizeof s));
    if (gl_grad_enabled() && qkv->requires_grad)
        gl_fatal("attention_step", "is for inference only; call it inside gl_no_grad_begin/end");
    int C = (int)(qkv->numel / 3), hs = C / n_head;
    float scale = 1.0f / sqrtf((float)hs);
    memcpy(k_cache + (size_t)pos * C, qkv->data + C, (size_t)C * sizeof(float));
    memcpy(v_cache + (size_t)pos * C, qkv->data + 2 * C, (size_t)C * sizeof(float));
    gl_tensor *out = gl_zeros(GL_DIMS(1, C));
    float *scores = gl_arena_alloc((size_t)n_head * (pos + 1) * sizeof(float));
    const gl_kernels *k = gl_kern();
#pragma omp parallel for schedule(static) if (pos >= 256)
    for (int h = 0; h < n_head; h++) {
        const float *q = qkv->data + h * hs;
        float *sc = scores + (size_t)h * (pos + 1);
        for (int j = 0; j <= pos; j++) {
            const float *kj = k_cache + (size_t)j * C + h * hs;
            float dot = 0.0f;
            for (int i = 0; i < hs; i++) dot += q[i] * kj[i];
            sc[j] = dot * scale;
        }
        k->softmax_rows(1, (size_t)pos + 1, sc, sc);
        float *o = out->data + h * hs;
        for (int j = 0; j <= pos; j++) k->axpy((size_t)hs, sc[j], v_cache + (size_t)j * C + h * hs, o);
    }
    return out;
}
