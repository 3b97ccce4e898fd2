/* The ops a Llama-family decoder adds to GPT-2's: RMSNorm, rotary embeddings, the SwiGLU gate, linear layers and
 * embeddings whose weights stay in ggml's quantized blocks, and grouped-query attention over a KV cache.
 * Each op's backward sits below its forward; the quantized weights are frozen (gradients reach x only), and the
 * cached attention is for inference. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "kernels_cuda.h"
#include "ops.h"

/* the decoder's CUDA kernels are for inference: no tape node may be made for a CUDA tensor */
static void no_cuda_backward(const char *op, const gl_node *node) {
    if (node) gl_fatal(op, "has no backward on the cuda device (run it inside gl_no_grad_begin/end)");
}

/* ---- RMSNorm: y = x r w, r = 1 / sqrt(mean(x^2) + eps) per row ---- */
static void rmsnorm_backward(gl_node *nd) {
    gl_tensor *x = nd->in[0], *w = nd->in[1], *y = nd->out;
    const float *rstd = nd->saved[0];
    int C = x->shape[x->ndim - 1];
    int64_t rows = x->numel / C;
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x->data + r * C, *dy = y->grad + r * C;
        float rs = rstd[r];
        if (w->grad)
            for (int i = 0; i < C; i++) w->grad[i] += dy[i] * xr[i] * rs;
        if (!x->grad) continue;
        /* dx_i = r w_i dy_i - x_i r^3 / C sum_j dy_j w_j x_j */
        double dot = 0;
        for (int i = 0; i < C; i++) dot += (double)dy[i] * w->data[i] * xr[i];
        float c = (float)dot * rs * rs * rs / (float)C;
        float *dx = x->grad + r * C;
        for (int i = 0; i < C; i++) dx[i] += rs * w->data[i] * dy[i] - xr[i] * c;
    }
}

gl_tensor *gl_rmsnorm(gl_tensor *x, gl_tensor *w, float eps) {
    char s1[64], s2[64];
    x = gl_contiguous(x);
    int C = x->shape[x->ndim - 1];
    if (w->ndim != 1 || w->shape[0] != C)
        gl_fatal("rmsnorm", "weight %s does not match the last axis of %s", gl_shape_str(w, s2, sizeof s2),
                 gl_shape_str(x, s1, sizeof s1));
    gl_node *node;
    gl_tensor *y = gl_op_output_any("rmsnorm", x->ndim, x->shape, rmsnorm_backward, &node, GL_INPUTS(x, w));
    int64_t rows = x->numel / C;
    if (y->device == GL_CUDA) {
        no_cuda_backward("rmsnorm", node);
        gl_cu("rmsnorm")->rmsnorm_fwd((size_t)rows, (size_t)C, x->data, w->data, eps, y->data);
        return y;
    }
    float *rstd = node ? gl_arena_alloc((size_t)rows * sizeof(float)) : NULL;
    if (node) node->saved[0] = rstd;
#pragma omp parallel for schedule(static) if (rows * C >= 65536)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x->data + r * C;
        double ss = 0;
        for (int i = 0; i < C; i++) ss += (double)(xr[i] * xr[i]); /* squares in float, summed in double: ggml's */
        float rs = 1.0f / sqrtf((float)(ss / C) + eps);
        if (rstd) rstd[r] = rs;
        float *yr = y->data + r * C;
        for (int i = 0; i < C; i++) yr[i] = xr[i] * rs * w->data[i];
    }
    return y;
}

/* ---- RoPE ----
 * The angles as ggml computes them: theta starts at the position and is multiplied by base^(-2/rope_dim) for each
 * following pair, in float; the rotation fused as llama.cpp's build computes it, so ours equals it bit for bit. */
static void rope_rotate(float *x, int T, int n_head, int hd, int pos0, float base, int rope_dim, float sign) {
    float step = powf(base, -2.0f / (float)rope_dim);
    for (int t = 0; t < T; t++) {
        float theta = (float)(pos0 + t);
        for (int i = 0; i < rope_dim / 2; i++, theta *= step) {
            float c = cosf(theta), s = sign * sinf(theta);
            for (int h = 0; h < n_head; h++) {
                float *p = x + (size_t)t * n_head * hd + (size_t)h * hd + 2 * i;
                float a = p[0], b = p[1]; /* fused as GCC contracts ggml's a c - b s and a s + b c */
                p[0] = fmaf(a, c, -(b * s)); /* libm's fmaf: exact on any CPU */
                p[1] = fmaf(a, s, b * c);
            }
        }
    }
}

static void rope_backward(gl_node *nd) { /* the rotation is orthogonal: dx = R^T dy, a rotation by -theta */
    gl_tensor *x = nd->in[0], *y = nd->out;
    if (!x->grad) return;
    int T = (int)(x->numel / x->shape[x->ndim - 1]), n_head = nd->ival[0], hd = x->shape[x->ndim - 1] / n_head;
    float *g = gl_arena_alloc((size_t)y->numel * sizeof(float));
    memcpy(g, y->grad, (size_t)y->numel * sizeof(float));
    rope_rotate(g, T, n_head, hd, nd->ival[1], nd->fval[0], nd->ival[2], -1.0f);
    for (int64_t i = 0; i < x->numel; i++) x->grad[i] += g[i];
}

gl_tensor *gl_rope(gl_tensor *x, int n_head, int pos0, float base, int rope_dim) {
    char s[64];
    x = gl_contiguous(x);
    int width = x->shape[x->ndim - 1];
    if (n_head < 1 || width % n_head || rope_dim < 2 || rope_dim % 2 || rope_dim > width / n_head || pos0 < 0 ||
        !(base > 1.0f))
        gl_fatal("rope", "%s cannot be %d heads with %d rotated dims at position %d (base %g)",
                 gl_shape_str(x, s, sizeof s), n_head, rope_dim, pos0, (double)base);
    gl_node *node;
    gl_tensor *y = gl_op_output_any("rope", x->ndim, x->shape, rope_backward, &node, GL_INPUTS(x));
    if (y->device == GL_CUDA) {
        no_cuda_backward("rope", node);
        const gl_cuda_kernels *cu = gl_cu("rope");
        cu->copy(y->data, x->data, (size_t)x->numel * sizeof(float));
        cu->rope((int)(x->numel / width), n_head, width / n_head, pos0, base, rope_dim, y->data);
        return y;
    }
    if (node) node->ival[0] = n_head, node->ival[1] = pos0, node->ival[2] = rope_dim, node->fval[0] = base;
    memcpy(y->data, x->data, (size_t)x->numel * sizeof(float));
    rope_rotate(y->data, (int)(x->numel / width), n_head, width / n_head, pos0, base, rope_dim, 1.0f);
    return y;
}

/* ---- SwiGLU: silu(a) * b ---- */
static void swiglu_backward(gl_node *nd) {
    gl_tensor *a = nd->in[0], *b = nd->in[1], *y = nd->out;
    for (int64_t i = 0; i < y->numel; i++) {
        float x = a->data[i], sg = 1.0f / (1.0f + expf(-x)), dy = y->grad[i];
        if (a->grad) a->grad[i] += dy * b->data[i] * sg * (1.0f + x * (1.0f - sg));
        if (b->grad) b->grad[i] += dy * x * sg;
    }
}

gl_tensor *gl_swiglu(gl_tensor *a, gl_tensor *b) {
    char s1[64], s2[64];
    a = gl_contiguous(a);
    b = gl_contiguous(b);
    if (!gl_same_shape(a, b))
        gl_fatal("swiglu", "gate %s and up %s differ in shape", gl_shape_str(a, s1, sizeof s1), gl_shape_str(b, s2, sizeof s2));
    gl_node *node;
    gl_tensor *y = gl_op_output_any("swiglu", a->ndim, a->shape, swiglu_backward, &node, GL_INPUTS(a, b));
    if (y->device == GL_CUDA) {
        no_cuda_backward("swiglu", node);
        gl_cu("swiglu")->swiglu((size_t)y->numel, a->data, b->data, y->data);
        return y;
    }
    gl_kern()->swiglu_ggml((size_t)y->numel, a->data, b->data, y->data); /* with ggml's expf: llama.cpp's bits */
    return y;
}

/* ---- linear layers and embeddings on quantized weights ---- */
static void linear_q_backward(gl_node *nd) { /* dx[m] += sum_n dy[m, n] W[n] */
    gl_tensor *x = nd->in[0], *y = nd->out;
    const gl_qmatrix *w = nd->saved[0];
    if (!x->grad) return;
    int K = w->cols, N = w->rows, M = (int)(x->numel / K);
    float *row = gl_arena_alloc((size_t)K * sizeof(float));
    size_t row_bytes = gl_qtype_row_bytes(w->type, K);
    const gl_kernels *k = gl_kern();
    for (int n = 0; n < N; n++) {
        gl_dequantize_row(w->type, (const uint8_t *)w->data + (size_t)n * row_bytes, row, K);
        for (int m = 0; m < M; m++) k->axpy((size_t)K, y->grad[(size_t)m * N + n], row, x->grad + (size_t)m * K);
    }
}

gl_tensor *gl_linear_q(gl_tensor *x, const gl_qmatrix *w) {
    char s[64];
    x = gl_contiguous(x);
    int K = w->cols, N = w->rows;
    if (x->ndim < 1 || x->shape[x->ndim - 1] != K)
        gl_fatal("linear_q", "input %s does not end in the weight's input size %d", gl_shape_str(x, s, sizeof s), K);
    int shape[GL_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) shape[d] = x->shape[d];
    shape[x->ndim - 1] = N;
    gl_node *node;
    gl_tensor *y = gl_op_output("linear_q", x->ndim, shape, linear_q_backward, &node, GL_INPUTS(x));
    if (node) node->saved[0] = (void *)w;
    gl_matmul_q(w->type, w->data, N, K, x->data, (int)(x->numel / K), y->data);
    return y;
}

gl_tensor *gl_embedding_q(const gl_qmatrix *table, const int32_t *ids, int n) {
    int C = table->cols;
    gl_tensor *y = gl_new(GL_DIMS(n, C));
    size_t row_bytes = gl_qtype_row_bytes(table->type, C);
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= table->rows)
            gl_fatal("embedding_q", "id %d at position %d is outside the table's %d rows", ids[i], i, table->rows);
        gl_dequantize_row(table->type, (const uint8_t *)table->data + (size_t)ids[i] * row_bytes, y->data + (size_t)i * C, C);
    }
    return y;
}

/* ---- grouped-query attention over a KV cache ---- */
gl_tensor *gl_attention_gqa(gl_tensor *q, gl_tensor *k, gl_tensor *v, float *k_cache, float *v_cache,
                            int capacity, int pos, int n_head, int n_kv_head, bool kv_f16) {
    char s1[64], s2[64], s3[64];
    q = gl_contiguous(q);
    k = gl_contiguous(k);
    v = gl_contiguous(v);
    int T = q->ndim == 2 ? q->shape[0] : 0, Cq = q->shape[q->ndim - 1], Ckv = k->shape[k->ndim - 1];
    if (q->ndim != 2 || k->ndim != 2 || v->ndim != 2 || !gl_same_shape(k, v) || k->shape[0] != T || n_kv_head < 1 ||
        n_head % n_kv_head || Cq % n_head || Ckv != Cq / n_head * n_kv_head || pos < 0 || T > capacity - pos)
        gl_fatal("attention_gqa", "q %s, k %s, v %s do not fit %d query heads over %d kv heads (or the cache)",
                 gl_shape_str(q, s1, sizeof s1), gl_shape_str(k, s2, sizeof s2), gl_shape_str(v, s3, sizeof s3), n_head,
                 n_kv_head);
    if (gl_grad_enabled() && (q->requires_grad || k->requires_grad || v->requires_grad))
        gl_fatal("attention_gqa", "is for inference only; call it inside gl_no_grad_begin/end");
    int hd = Cq / n_head, group = n_head / n_kv_head;
    if (q->device == GL_CUDA || k->device == GL_CUDA || v->device == GL_CUDA) { /* the caches are device memory too */
        if (q->device != k->device || q->device != v->device)
            gl_fatal("attention_gqa", "q, k and v must be on the same device");
        gl_tensor *out = gl_new_on(GL_CUDA, GL_DIMS(T, Cq));
        float *scores = gl_device_arena_alloc((size_t)T * n_head * (pos + T) * sizeof(float));
        gl_cu("attention_gqa")->attention_gqa(T, n_head, n_kv_head, hd, pos, capacity, q->data, k->data, v->data,
                                              k_cache, v_cache, scores, out->data);
        return out;
    }
    for (int t = 0; t < T; t++) /* keys by row; values transposed, one row per dimension (llama.cpp's layout) */
        for (int i = 0; i < Ckv; i++) {
            float kv = k->data[(size_t)t * Ckv + i], vv = v->data[(size_t)t * Ckv + i];
            k_cache[(size_t)(pos + t) * Ckv + i] = kv;
            v_cache[(size_t)i * capacity + pos + t] = vv;
        }
    if (kv_f16) {
        gl_round_to_f16(k_cache + (size_t)pos * Ckv, (size_t)T * Ckv);
        for (int i = 0; i < Ckv; i++) gl_round_to_f16(v_cache + (size_t)i * capacity + pos, (size_t)T);
    }
    gl_tensor *out = gl_zeros(GL_DIMS(T, Cq));
    int n_keys = pos + T;
    /* llama.cpp attends over n_kv = the keys rounded up to 256 (at most the cache), the rest masked to 0; zeros
     * change no sum, so only where the last steps of 64 or 16 end matters: pad to that */
    int n_kv = n_keys <= 256 ? 256 : (n_keys + 255) / 256 * 256;
    if (n_kv > capacity) n_kv = capacity;
    bool tiled = T >= 2;
    int step = tiled ? 16 : 64, n_pad = (n_keys + step - 1) / step * step;
    if (n_pad > n_kv - n_kv % step) n_pad = n_kv; /* the tail then takes the leftover path, as in ggml */
    size_t row = (size_t)(n_pad > n_keys ? n_pad : n_keys);
    float *scores = gl_arena_alloc((size_t)T * n_head * row * sizeof(float));
    float *qr = gl_arena_alloc((size_t)T * Cq * sizeof(float));
    memcpy(qr, q->data, (size_t)T * Cq * sizeof(float));
    if (kv_f16) gl_round_to_f16(qr, (size_t)T * Cq);
    float scale = 1.0f / sqrtf((float)hd);
    const gl_kernels *kn = gl_kern();
#pragma omp parallel for schedule(dynamic, 1) collapse(2) if ((int64_t)T * n_keys * Cq >= 8192)
    for (int t = 0; t < T; t++)
        for (int h = 0; h < n_head; h++) {
            const float *qh = qr + (size_t)t * Cq + (size_t)h * hd;
            int g = h / group, last = pos + t;
            float *sc = scores + ((size_t)t * n_head + h) * row, *o = out->data + (size_t)t * Cq + (size_t)h * hd;
            const float *vt = v_cache + (size_t)g * hd * capacity; /* dimension i of kv head g: vt[i * capacity + j] */
            if (!kv_f16) { /* plain float attention */
                for (int j = 0; j <= last; j++) sc[j] = kn->dot((size_t)hd, qh, k_cache + (size_t)j * Ckv + (size_t)g * hd) * scale;
                kn->softmax_rows(1, (size_t)last + 1, sc, sc);
                for (int i = 0; i < hd; i++) o[i] = kn->dot((size_t)last + 1, sc, vt + (size_t)i * capacity);
                continue;
            }
            /* llama.cpp: q k in fp16 (tinyBLAS's order for two or more tokens when hd is a multiple of 16), scaled,
             * softmax with its expf and 16-key chunk sums in double, probabilities to fp16, then p v */
            float max = -INFINITY;
            for (int j = 0; j <= last; j++) {
                const float *kj = k_cache + (size_t)j * Ckv + (size_t)g * hd;
                sc[j] = (tiled && hd % 16 == 0 ? kn->dot_lanes16 : kn->dot_acc4x16)((size_t)hd, qh, kj) * scale;
                max = fmaxf(max, sc[j]);
            }
            float inv = (float)(1.0 / kn->exp_shift_ggml((size_t)last + 1, sc, max));
            for (int j = 0; j <= last; j++) sc[j] *= inv;
            gl_round_to_f16(sc, (size_t)last + 1);
            for (int j = last + 1; j < n_pad; j++) sc[j] = 0.0f;
            for (int i = 0; i < hd; i++)
                o[i] = (tiled ? kn->dot_lanes16 : kn->dot_acc4x16)((size_t)n_pad, sc, vt + (size_t)i * capacity);
        }
    return out;
}
