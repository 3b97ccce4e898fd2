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
#include "kernels_cuda.h"
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
    bool causal = n->ival[1];
    const gl_kernels *kern = gl_kern();
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
            int i1 = i0 + ROWS < T ? i0 + ROWS : T, m = i1 - i0, kn = causal ? i1 : T; /* rows see keys [0, kn) */
            const float *Pb = P + (size_t)i0 * T;
            float *dS = dP + (size_t)i0 * T;
            gl_gemm(0, 1, m, kn, d.hs, 1.0f, dout + (size_t)i0 * d.C, d.C, v, C3, 0.0f, dS, T); /* dP = dout v^T */
            gl_gemm(1, 0, kn, d.hs, m, 1.0f, Pb, T, dout + (size_t)i0 * d.C, d.C, 1.0f, dv, C3); /* dv += P^T dout */
            for (int i = i0; i < i1; i++) { /* dS in place of dP */
                const float *p = P + (size_t)i * T;
                float *g = dP + (size_t)i * T;
                int seen = causal ? i + 1 : T;
                kern->dsoftmax((size_t)seen, p, kern->dot((size_t)seen, p, g), g);
                if (seen < kn) memset(g + seen, 0, (size_t)(kn - seen) * sizeof(float));
            }
            gl_gemm(0, 0, m, d.hs, kn, d.scale, dS, T, k, C3, 1.0f, dq + (size_t)i0 * C3, C3); /* dq += dS k */
            gl_gemm(1, 0, kn, d.hs, m, d.scale, dS, T, q + (size_t)i0 * C3, C3, 1.0f, dk, C3); /* dk += dS^T q */
        }
    }
}

static gl_tensor *attention_naive(gl_tensor *qkv, int n_head, bool causal) {
    attn_dims d = dims_of(qkv, n_head);
    int T = d.T, C3 = 3 * d.C;
    gl_node *node;
    gl_tensor *out = gl_op_output("attention_naive", GL_DIMS(d.B, T, d.C), attention_backward, &node, GL_INPUTS(qkv));
    /* the probabilities are kept for backward only when there will be one; inference needs one T x T per thread */
    size_t maps = node ? (size_t)d.B * d.nh : (size_t)omp_get_max_threads();
    float *P_all = gl_arena_alloc(maps * T * T * sizeof(float));
    const gl_kernels *kern = gl_kern();
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < d.B * d.nh; bh++) {
        int b = bh / d.nh, h = bh % d.nh;
        float *P = P_all + (node ? (size_t)bh : (size_t)omp_get_thread_num()) * T * T;
        const float *base = qkv->data + (size_t)b * T * C3;
        const float *q = base + h * d.hs, *k = base + d.C + h * d.hs, *v = base + 2 * d.C + h * d.hs;
        float *o = out->data + (size_t)b * T * d.C + h * d.hs;
        for (int i0 = 0; i0 < T; i0 += ROWS) {
            int i1 = i0 + ROWS < T ? i0 + ROWS : T, m = i1 - i0, kn = causal ? i1 : T; /* keys [0, kn) */
            float *S = P + (size_t)i0 * T;
            gl_gemm(0, 1, m, kn, d.hs, d.scale, q + (size_t)i0 * C3, C3, k, C3, 0.0f, S, T); /* S = q k^T * scale */
            for (int i = i0; i < i1; i++) {
                float *row = P + (size_t)i * T;
                int seen = causal ? i + 1 : T; /* the causal mask: keys 0..i only */
                kern->softmax_rows(1, (size_t)seen, row, row);
                memset(row + seen, 0, (size_t)(kn - seen) * sizeof(float));
            }
            gl_gemm(0, 0, m, d.hs, kn, 1.0f, S, T, v, C3, 0.0f, o + (size_t)i0 * d.C, d.C); /* out = P v */
        }
    }
    if (node) {
        node->ival[0] = n_head;
        node->ival[1] = causal;
        node->saved[0] = P_all;
        node->saved[1] = gl_arena_alloc((size_t)omp_get_max_threads() * T * T * sizeof(float));
    }
    return out;
}

/* ================================================================ flash attention
 * Tiled over query tiles of BR rows and key tiles of BC columns with the online-softmax recurrence: per query
 * row a running max m, a running sum l and an unnormalised output o; a new key tile rescales them by
 * exp(m_old - m_new). No T x T buffer exists: each thread holds one BR x BC tile. The forward saves only the
 * per-row log-sum-exp L = m + log(l); the backward recomputes P = exp(S - L) tile by tile (FlashAttention-2):
 *   D = rowsum(dout * out);  dv += P^T dout;  dP = dout v^T;  dS = P * (dP - D);
 *   dq += dS k * scale;  dk += dS^T q * scale
 * The forward runs OpenMP over (batch, head, query tile); the backward over (batch, head), because dk and dv
 * gather contributions from every query tile of their head. */

enum { BR = 112, BC = 256 };

static void flash_backward(gl_node *n) {
    gl_tensor *qkv = n->in[0], *out = n->out;
    attn_dims d = dims_of(qkv, n->ival[0]);
    bool causal = n->ival[1];
    const float *lse = n->saved[0];
    int T = d.T, C3 = 3 * d.C, hs = d.hs;
    const gl_kernels *kern = gl_kern();
    size_t per_thread = (size_t)2 * BR * BC + (size_t)T;
    float *scratch = gl_arena_alloc((size_t)omp_get_max_threads() * per_thread * sizeof(float));
#pragma omp parallel
    {
        float *P = scratch + (size_t)omp_get_thread_num() * per_thread;
        float *dP = P + BR * BC, *D = dP + BR * BC;
#pragma omp for schedule(dynamic, 1)
        for (int bh = 0; bh < d.B * d.nh; bh++) {
            int b = bh / d.nh, h = bh % d.nh;
            const float *base = qkv->data + (size_t)b * T * C3;
            float *gbase = qkv->grad + (size_t)b * T * C3;
            const float *q = base + h * hs, *k = base + d.C + h * hs, *v = base + 2 * d.C + h * hs;
            float *dq = gbase + h * hs, *dk = gbase + d.C + h * hs, *dv = gbase + 2 * d.C + h * hs;
            const float *o = out->data + (size_t)b * T * d.C + h * hs, *dout = out->grad + (size_t)b * T * d.C + h * hs;
            const float *L = lse + (size_t)bh * T;
            for (int i = 0; i < T; i++) D[i] = kern->dot((size_t)hs, dout + (size_t)i * d.C, o + (size_t)i * d.C);
            for (int j0 = 0; j0 < T; j0 += BC) {
                int j1 = j0 + BC < T ? j0 + BC : T, nc = j1 - j0;
                for (int i0 = causal ? j0 / BR * BR : 0; i0 < T; i0 += BR) {
                    int i1 = i0 + BR < T ? i0 + BR : T, nr = i1 - i0;
                    gl_gemm(0, 1, nr, nc, hs, d.scale, q + (size_t)i0 * C3, C3, k + (size_t)j0 * C3, C3, 0.0f, P, BC);
                    for (int r = 0; r < nr; r++) { /* P = exp(S - L), masked entries 0 */
                        float *p = P + (size_t)r * BC;
                        int lim = causal ? i0 + r - j0 + 1 : nc;
                        if (lim > nc) lim = nc;
                        if (lim < 0) lim = 0;
                        kern->exp_shift((size_t)lim, p, L[i0 + r]);
                        if (lim < nc) memset(p + lim, 0, (size_t)(nc - lim) * sizeof(float));
                    }
                    gl_gemm(1, 0, nc, hs, nr, 1.0f, P, BC, dout + (size_t)i0 * d.C, d.C, 1.0f, dv + (size_t)j0 * C3, C3);
                    gl_gemm(0, 1, nr, nc, hs, 1.0f, dout + (size_t)i0 * d.C, d.C, v + (size_t)j0 * C3, C3, 0.0f, dP, BC);
                    for (int r = 0; r < nr; r++) /* dS = P * (dP - D), in place of dP */
                        kern->dsoftmax((size_t)nc, P + (size_t)r * BC, D[i0 + r], dP + (size_t)r * BC);
                    gl_gemm(0, 0, nr, hs, nc, d.scale, dP, BC, k + (size_t)j0 * C3, C3, 1.0f, dq + (size_t)i0 * C3, C3);
                    gl_gemm(1, 0, nc, hs, nr, d.scale, dP, BC, q + (size_t)i0 * C3, C3, 1.0f, dk + (size_t)j0 * C3, C3);
                }
            }
        }
    }
}

static gl_tensor *attention_flash(gl_tensor *qkv, int n_head, bool causal) {
    attn_dims d = dims_of(qkv, n_head);
    int T = d.T, C3 = 3 * d.C, hs = d.hs;
    gl_node *node;
    gl_tensor *out = gl_op_output("attention_flash", GL_DIMS(d.B, T, d.C), flash_backward, &node, GL_INPUTS(qkv));
    float *lse = gl_arena_alloc((size_t)d.B * d.nh * T * sizeof(float));
    const gl_kernels *kern = gl_kern();
    int tiles = (T + BR - 1) / BR;
    size_t per_thread = (size_t)BR * BC + (size_t)BR * hs + 3 * BR;
    float *scratch = gl_arena_alloc((size_t)omp_get_max_threads() * per_thread * sizeof(float));
#pragma omp parallel
    {
        float *S = scratch + (size_t)omp_get_thread_num() * per_thread;
        float *O = S + BR * BC, *m = O + BR * hs, *l = m + BR, *alpha = l + BR;
#pragma omp for schedule(dynamic, 1)
        for (int item = 0; item < d.B * d.nh * tiles; item++) {
            int bh = item / tiles, i0 = item % tiles * BR, b = bh / d.nh, h = bh % d.nh;
            int i1 = i0 + BR < T ? i0 + BR : T, nr = i1 - i0;
            const float *base = qkv->data + (size_t)b * T * C3;
            const float *q = base + h * hs, *k = base + d.C + h * hs, *v = base + 2 * d.C + h * hs;
            for (int r = 0; r < nr; r++) m[r] = -INFINITY, l[r] = 0.0f;
            memset(O, 0, (size_t)nr * hs * sizeof(float));
            int kend = causal ? i1 : T;
            for (int j0 = 0; j0 < kend; j0 += BC) {
                int j1 = j0 + BC < kend ? j0 + BC : kend, nc = j1 - j0;
                gl_gemm(0, 1, nr, nc, hs, d.scale, q + (size_t)i0 * C3, C3, k + (size_t)j0 * C3, C3, 0.0f, S, BC);
                for (int r = 0; r < nr; r++) {
                    float *srow = S + (size_t)r * BC;
                    int lim = causal ? i0 + r - j0 + 1 : nc; /* keys j0 .. i0 + r only */
                    if (lim > nc) lim = nc;
                    if (lim < 0) lim = 0;
                    float mx = lim > 0 ? kern->row_max((size_t)lim, srow) : -INFINITY;
                    mx = mx > m[r] ? mx : m[r];
                    float sum = lim > 0 ? kern->exp_shift((size_t)lim, srow, mx) : 0.0f;
                    if (lim < nc) memset(srow + lim, 0, (size_t)(nc - lim) * sizeof(float));
                    alpha[r] = m[r] == -INFINITY ? 0.0f : expf(m[r] - mx); /* rescale what came before */
                    l[r] = l[r] * alpha[r] + sum;
                    m[r] = mx;
                    if (alpha[r] != 1.0f) kern->scale((size_t)hs, alpha[r], O + (size_t)r * hs);
                }
                gl_gemm(0, 0, nr, hs, nc, 1.0f, S, BC, v + (size_t)j0 * C3, C3, 1.0f, O, hs); /* O += P v */
            }
            float *o = out->data + (size_t)b * T * d.C + h * hs;
            for (int r = 0; r < nr; r++) {
                float inv = 1.0f / l[r];
                for (int c = 0; c < hs; c++) o[(size_t)(i0 + r) * d.C + c] = O[(size_t)r * hs + c] * inv;
                lse[(size_t)bh * T + i0 + r] = m[r] + logf(l[r]);
            }
        }
    }
    if (node) {
        node->ival[0] = n_head;
        node->ival[1] = causal;
        node->saved[0] = lse;
    }
    return out;
}

/* ---- on the CUDA device: the kernels of kernels/cuda/attention.cu; naive keeps P, flash each row's lse ---- */

static void attention_cuda_backward(gl_node *n) {
    gl_tensor *qkv = n->in[0], *out = n->out;
    attn_dims d = dims_of(qkv, n->ival[0]);
    const gl_cuda_kernels *cu = gl_cu("attention");
    if (n->ival[2] == GL_ATTN_FLASH) {
        float *D = gl_device_arena_alloc((size_t)d.B * d.nh * d.T * sizeof(float));
        cu->attention_flash_bwd(d.B, d.T, d.C, d.nh, n->ival[1], qkv->data, out->data, n->saved[0], out->grad, D,
                                qkv->grad);
    } else {
        float *dS = gl_device_arena_alloc((size_t)d.B * d.nh * d.T * d.T * sizeof(float));
        cu->attention_naive_bwd(d.B, d.T, d.C, d.nh, n->ival[1], qkv->data, n->saved[0], out->grad, dS, qkv->grad);
    }
}

static gl_tensor *attention_cuda(gl_tensor *qkv, int n_head, bool causal, gl_attn_impl impl) {
    attn_dims d = dims_of(qkv, n_head);
    const gl_cuda_kernels *cu = gl_cu("attention");
    gl_node *node;
    gl_tensor *out = gl_op_output_any(impl == GL_ATTN_FLASH ? "attention_flash" : "attention_naive",
                                      GL_DIMS(d.B, d.T, d.C), attention_cuda_backward, &node, GL_INPUTS(qkv));
    size_t rows = (size_t)d.B * d.nh * d.T;
    float *saved = gl_device_arena_alloc((impl == GL_ATTN_FLASH ? rows : rows * d.T) * sizeof(float));
    if (impl == GL_ATTN_FLASH) cu->attention_flash_fwd(d.B, d.T, d.C, d.nh, causal, qkv->data, out->data, saved);
    else cu->attention_naive_fwd(d.B, d.T, d.C, d.nh, causal, qkv->data, out->data, saved);
    if (node) {
        node->ival[0] = n_head;
        node->ival[1] = causal;
        node->ival[2] = impl;
        node->saved[0] = saved;
    }
    return out;
}

gl_tensor *gl_attention_ex(gl_tensor *qkv, int n_head, bool causal, gl_attn_impl impl) {
    char s[64];
    qkv = gl_contiguous(qkv);
    if (qkv->ndim != 3 || qkv->shape[2] % 3 != 0 || n_head <= 0 || (qkv->shape[2] / 3) % n_head != 0)
        gl_fatal("attention", "qkv must be [B, T, 3C] with C divisible by n_head = %d, got %s", n_head,
                 gl_shape_str(qkv, s, sizeof s));
    if (qkv->device == GL_CUDA) return attention_cuda(qkv, n_head, causal, impl);
    return impl == GL_ATTN_FLASH ? attention_flash(qkv, n_head, causal) : attention_naive(qkv, n_head, causal);
}

gl_tensor *gl_attention(gl_tensor *qkv, int n_head) { return gl_attention_ex(qkv, n_head, true, GL_ATTN_NAIVE); }

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
    if (qkv->device == GL_CUDA) { /* the caches are device memory too (gpt_kv_cache on a CUDA model) */
        gl_tensor *out = gl_new_on(GL_CUDA, GL_DIMS(1, C));
        float *scores = gl_device_arena_alloc((size_t)n_head * (pos + 1) * sizeof(float));
        gl_cu("attention_step")->attention_step(C, n_head, pos, qkv->data, k_cache, v_cache, scores, out->data);
        return out;
    }
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

/* ---- the attention probabilities themselves, for looking at them (inference only) ---- */
gl_tensor *gl_attention_weights(gl_tensor *qkv, int n_head, bool causal) {
    char s[64];
    qkv = gl_contiguous(qkv);
    if (qkv->ndim != 3 || qkv->shape[2] % 3 != 0 || n_head <= 0 || (qkv->shape[2] / 3) % n_head != 0)
        gl_fatal("attention_weights", "qkv must be [B, T, 3C] with C divisible by n_head = %d, got %s", n_head,
                 gl_shape_str(qkv, s, sizeof s));
    if (qkv->device == GL_CUDA) gl_fatal("attention_weights", "runs on the CPU (qkv is on the cuda device)");
    attn_dims d = dims_of(qkv, n_head);
    int T = d.T, C3 = 3 * d.C;
    gl_tensor *w = gl_new(GL_DIMS(d.B, d.nh, T, T));
    const gl_kernels *kern = gl_kern();
    for (int bh = 0; bh < d.B * d.nh; bh++) {
        int b = bh / d.nh, h = bh % d.nh;
        const float *base = qkv->data + (size_t)b * T * C3;
        float *P = w->data + (size_t)bh * T * T;
        gl_gemm(0, 1, T, T, d.hs, d.scale, base + h * d.hs, C3, base + d.C + h * d.hs, C3, 0.0f, P, T);
        for (int i = 0; i < T; i++) {
            int seen = causal ? i + 1 : T;
            kern->softmax_rows(1, (size_t)seen, P + (size_t)i * T, P + (size_t)i * T);
            if (seen < T) memset(P + (size_t)i * T + seen, 0, (size_t)(T - seen) * sizeof(float));
        }
    }
    return w;
}
