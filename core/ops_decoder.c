/* The ops a Llama-family decoder adds to GPT-2's: RMSNorm, rotary embeddings, the SwiGLU gate, linear layers and
 * embeddings whose weights stay in ggml's quantized blocks, and grouped-query attention over a KV cache.
 * Each op's backward sits below its forward; the quantized weights are frozen (gradients reach x only), and the
 * cached attention is for inference. The arithmetic (ggml's, to the bit, on the CPU) lives in the backends. */
#include "kernels.h" /* ggml's block formats */
#include "op_impl.h"

/* A node for this op needs its backward slot on the device: checked before the forward runs, so a device with
 * only the inference kernels (CUDA's decoder ops) refuses training at once with the one message. */
static void need_backward(const gl_node *node, gl_device d, const char *op, size_t slot_offset, const char *slot) {
    if (node) gl_backend_need(d, op, slot_offset, slot);
}
#define NEED_BACKWARD(node, d, op, slot) need_backward((node), (d), (op), offsetof(gl_backend, slot), #slot)

/* ---- RMSNorm: y = x r w, r = 1 / sqrt(mean(x^2) + eps) per row ---- */
static void rmsnorm_backward(gl_node *nd) {
    gl_tensor *x = nd->in[0], *w = nd->in[1], *y = nd->out;
    int C = x->shape[x->ndim - 1];
    GL_CALL(y->device, "rmsnorm", rmsnorm_bwd, (size_t)(x->numel / C), (size_t)C, x->data, w->data, nd->saved[0],
            y->grad, x->grad, w->grad);
}

gl_tensor *gl_rmsnorm(gl_tensor *x, gl_tensor *w, float eps) {
    char s1[64], s2[64];
    x = gl_contiguous(x);
    int C = x->shape[x->ndim - 1];
    if (w->ndim != 1 || w->shape[0] != C)
        gl_fatal("rmsnorm", "weight %s does not match the last axis of %s", gl_shape_str(w, s2, sizeof s2),
                 gl_shape_str(x, s1, sizeof s1));
    gl_node *node;
    gl_tensor *y = gl_op_output("rmsnorm", x->ndim, x->shape, rmsnorm_backward, &node, GL_INPUTS(x, w));
    NEED_BACKWARD(node, y->device, "rmsnorm", rmsnorm_bwd);
    int64_t rows = x->numel / C;
    float *rstd = node ? gl_arena_alloc_on(y->device, (size_t)rows * sizeof(float)) : NULL;
    if (node) node->saved[0] = rstd;
    GL_CALL(y->device, "rmsnorm", rmsnorm_fwd, (size_t)rows, (size_t)C, x->data, w->data, eps, y->data, rstd);
    return y;
}

/* ---- RoPE: pairs (2i, 2i+1) of the first rope_dim dims of each head rotated by (pos0 + t) base^(-2i/rope_dim) ---- */
static void rope_backward(gl_node *nd) { /* the rotation is orthogonal: dx = R^T dy */
    gl_tensor *x = nd->in[0], *y = nd->out;
    if (!x->grad) return;
    int width = x->shape[x->ndim - 1], n_head = nd->ival[0];
    GL_CALL(y->device, "rope", rope_bwd, (int)(x->numel / width), n_head, width / n_head, nd->ival[1], nd->fval[0],
            nd->ival[2], y->grad, x->grad);
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
    gl_tensor *y = gl_op_output("rope", x->ndim, x->shape, rope_backward, &node, GL_INPUTS(x));
    NEED_BACKWARD(node, y->device, "rope", rope_bwd);
    if (node) node->ival[0] = n_head, node->ival[1] = pos0, node->ival[2] = rope_dim, node->fval[0] = base;
    GL_CALL(y->device, "rope", copy, y->data, x->data, (size_t)x->numel * sizeof(float));
    GL_CALL(y->device, "rope", rope_fwd, (int)(x->numel / width), n_head, width / n_head, pos0, base, rope_dim, y->data);
    return y;
}

/* ---- SwiGLU: silu(a) * b ---- */
static void swiglu_backward(gl_node *nd) {
    gl_tensor *a = nd->in[0], *b = nd->in[1], *y = nd->out;
    GL_CALL(y->device, "swiglu", swiglu_bwd, (size_t)y->numel, a->data, b->data, y->grad, a->grad, b->grad);
}

gl_tensor *gl_swiglu(gl_tensor *a, gl_tensor *b) {
    char s1[64], s2[64];
    a = gl_contiguous(a);
    b = gl_contiguous(b);
    if (!gl_same_shape(a, b))
        gl_fatal("swiglu", "gate %s and up %s differ in shape", gl_shape_str(a, s1, sizeof s1), gl_shape_str(b, s2, sizeof s2));
    gl_node *node;
    gl_tensor *y = gl_op_output("swiglu", a->ndim, a->shape, swiglu_backward, &node, GL_INPUTS(a, b));
    NEED_BACKWARD(node, y->device, "swiglu", swiglu_bwd);
    GL_CALL(y->device, "swiglu", swiglu_fwd, (size_t)y->numel, a->data, b->data, y->data);
    return y;
}

/* ---- linear layers and embeddings on quantized weights (host memory: the CPU's kernels) ---- */
bool gl_qmatrix_supported(int type, int cols) {
    return gl_qtype_known((gl_qtype)type) && (type == GL_QT_F32 || type == GL_QT_F16 || cols % GL_QK == 0);
}

void gl_qmatrix_to_floats(const gl_qmatrix *q, float *dst) {
    size_t row_bytes = gl_qtype_row_bytes((gl_qtype)q->type, q->cols);
    for (int r = 0; r < q->rows; r++)
        gl_dequantize_row((gl_qtype)q->type, (const uint8_t *)q->data + (size_t)r * row_bytes, dst + (size_t)r * q->cols,
                          q->cols);
}

static void linear_q_backward(gl_node *nd) { /* dx[m] += sum_n dy[m, n] W[n] */
    gl_tensor *x = nd->in[0], *y = nd->out;
    const gl_qmatrix *w = nd->saved[0];
    if (!x->grad) return;
    GL_CALL(y->device, "linear_q", linear_q_bwd, w->type, w->data, w->rows, w->cols, y->grad,
            (int)(x->numel / w->cols), x->grad);
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
    GL_CALL(y->device, "linear_q", linear_q_fwd, w->type, w->data, N, K, x->data, (int)(x->numel / K), y->data);
    return y;
}

gl_tensor *gl_embedding_q(const gl_qmatrix *table, const int32_t *ids, int n) {
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= table->rows)
            gl_fatal("embedding_q", "id %d at position %d is outside the table's %d rows", ids[i], i, table->rows);
    gl_tensor *y = gl_new(GL_DIMS(n, table->cols));
    GL_CALL(GL_CPU, "embedding_q", embedding_q, table->type, table->data, table->cols, ids, n, y->data);
    return y;
}

/* ---- grouped-query attention over a KV cache (the caches are memory of q's device) ---- */
gl_tensor *gl_attention_gqa(gl_tensor *q, gl_tensor *k, gl_tensor *v, float *k_cache, float *v_cache,
                            int capacity, int pos, int n_head, int n_kv_head, bool kv_f16) {
    char s1[64], s2[64], s3[64];
    q = gl_contiguous(q);
    k = gl_contiguous(k);
    v = gl_contiguous(v);
    int T = q->ndim == 2 ? q->shape[0] : 0, Cq = q->shape[q->ndim - 1], Ckv = k->shape[k->ndim - 1];
    if (q->ndim != 2 || k->ndim != 2 || v->ndim != 2 || !gl_same_shape(k, v) || k->shape[0] != T || n_kv_head < 1 ||
        n_head < 1 || n_head % n_kv_head || Cq % n_head || Ckv != Cq / n_head * n_kv_head || pos < 0 ||
        T > capacity - pos)
        gl_fatal("attention_gqa", "q %s, k %s, v %s do not fit %d query heads over %d kv heads (or the cache)",
                 gl_shape_str(q, s1, sizeof s1), gl_shape_str(k, s2, sizeof s2), gl_shape_str(v, s3, sizeof s3), n_head,
                 n_kv_head);
    if (q->device != k->device || q->device != v->device) gl_fatal("attention_gqa", "q, k and v must be on the same device");
    if (gl_grad_enabled() && (q->requires_grad || k->requires_grad || v->requires_grad))
        gl_fatal("attention_gqa", "is for inference only; call it inside gl_no_grad_begin/end");
    gl_tensor *out = gl_new_on(q->device, GL_DIMS(T, Cq));
    GL_CALL(q->device, "attention_gqa", attention_gqa, T, n_head, n_kv_head, Cq / n_head, pos, capacity, kv_f16,
            q->data, k->data, v->data, k_cache, v_cache, out->data);
    return out;
}
