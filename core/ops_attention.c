/* Causal multi-head self-attention, fused into one op (as llm.c's attention_forward/backward), forward beside
 * backward; naive (keeps the T x T probabilities) or flash (tiles with the online softmax, keeps each row's
 * log-sum-exp). The arithmetic lives in the backends: kernels/cpu/ops.c explains the CPU's blocking and tiling,
 * kernels/cuda/attention.cu the GPU's. */
#include "op_impl.h"

typedef struct {
    int B, T, C, nh;
} attn_dims;

static attn_dims dims_of(const gl_tensor *qkv, int n_head) {
    attn_dims d = {qkv->shape[0], qkv->shape[1], qkv->shape[2] / 3, n_head};
    return d;
}

static void check_qkv(const char *op, gl_tensor *qkv, int n_head) {
    char s[64];
    if (qkv->ndim != 3 || qkv->shape[2] % 3 != 0 || n_head <= 0 || (qkv->shape[2] / 3) % n_head != 0)
        gl_fatal(op, "qkv must be [B, T, 3C] with C divisible by n_head = %d, got %s", n_head,
                 gl_shape_str(qkv, s, sizeof s));
}

static void attention_backward(gl_node *n) {
    gl_tensor *qkv = n->in[0], *out = n->out;
    attn_dims d = dims_of(qkv, n->ival[0]);
    bool causal = n->ival[1];
    if (n->ival[2] == GL_ATTN_FLASH)
        GL_CALL(qkv->device, "attention_flash", attention_flash_bwd, d.B, d.T, d.C, d.nh, causal, qkv->data, out->data,
                n->saved[0], out->grad, qkv->grad);
    else
        GL_CALL(qkv->device, "attention_naive", attention_naive_bwd, d.B, d.T, d.C, d.nh, causal, qkv->data,
                n->saved[0], out->grad, qkv->grad);
}

gl_tensor *gl_attention_ex(gl_tensor *qkv, int n_head, bool causal, gl_attn_impl impl) {
    qkv = gl_contiguous(qkv);
    check_qkv("attention", qkv, n_head);
    attn_dims d = dims_of(qkv, n_head);
    bool flash = impl == GL_ATTN_FLASH;
    const char *op = flash ? "attention_flash" : "attention_naive";
    gl_node *node;
    gl_tensor *out = gl_op_output(op, GL_DIMS(d.B, d.T, d.C), attention_backward, &node, GL_INPUTS(qkv));
    gl_device dev = out->device;
    size_t rows = (size_t)d.B * d.nh * d.T;
    float *saved;
    if (flash) {
        saved = gl_arena_alloc_on(dev, rows * sizeof(float)); /* each row's log-sum-exp */
        GL_CALL(dev, op, attention_flash_fwd, d.B, d.T, d.C, d.nh, causal, qkv->data, out->data, saved);
    } else { /* the probabilities are kept only when there will be a backward */
        saved = node ? gl_arena_alloc_on(dev, rows * d.T * sizeof(float)) : NULL;
        GL_CALL(dev, op, attention_naive_fwd, d.B, d.T, d.C, d.nh, causal, qkv->data, out->data, saved);
    }
    if (node) {
        node->ival[0] = n_head;
        node->ival[1] = causal;
        node->ival[2] = impl;
        node->saved[0] = saved;
    }
    return out;
}

gl_tensor *gl_attention(gl_tensor *qkv, int n_head) { return gl_attention_ex(qkv, n_head, true, GL_ATTN_NAIVE); }

/* ---- decoding steps against KV caches (inference only: no backward) ----
 * Row i of qkv [n, 3C] is a token at position pos[i] of the sequence whose caches are k_caches[i], v_caches[i]
 * ([rows, C] each, row-major, on qkv's device): its k and v are appended at row pos[i] and its query attends to rows
 * 0..pos[i]. Rows run in order, so rows of one sequence at consecutive positions (a prompt) see each other causally,
 * and rows of different sequences (continuous batching) do not meet. */
gl_tensor *gl_attention_rows(gl_tensor *qkv, float *const *k_caches, float *const *v_caches, const int *pos,
                             int n_head) {
    char s[64];
    qkv = gl_contiguous(qkv);
    int n = qkv->ndim == 2 ? qkv->shape[0] : 0, C3 = qkv->shape[qkv->ndim - 1];
    if (qkv->ndim != 2 || n < 1 || C3 % 3 != 0 || n_head <= 0 || (C3 / 3) % n_head != 0)
        gl_fatal("attention_rows", "qkv must be [n, 3C] with C divisible by n_head = %d, got %s", n_head,
                 gl_shape_str(qkv, s, sizeof s));
    if (gl_grad_enabled() && qkv->requires_grad)
        gl_fatal("attention_rows", "is for inference only; call it inside gl_no_grad_begin/end");
    int C = C3 / 3;
    gl_tensor *out = gl_new_on(qkv->device, GL_DIMS(n, C));
    const gl_backend *be = GL_BACKEND(qkv->device, "attention_rows", attention_step);
    for (int i = 0; i < n; i++) {
        if (pos[i] < 0) gl_fatal("attention_rows", "row %d has position %d", i, pos[i]);
        be->attention_step(C, n_head, pos[i], qkv->data + (size_t)i * C3, k_caches[i], v_caches[i],
                           out->data + (size_t)i * C);
    }
    return out;
}

gl_tensor *gl_attention_step(gl_tensor *qkv, float *k_cache, float *v_cache, int pos, int n_head) {
    char s[64];
    qkv = gl_contiguous(qkv);
    if (qkv->numel % 3 != 0 || qkv->shape[qkv->ndim - 1] != qkv->numel)
        gl_fatal("attention_step", "qkv must be one row of 3C values, got %s", gl_shape_str(qkv, s, sizeof s));
    return gl_attention_rows(gl_reshape(qkv, GL_DIMS(1, (int)qkv->numel)), &k_cache, &v_cache, &pos, n_head);
}

/* ---- the attention probabilities themselves, for looking at them (inference only) ---- */
gl_tensor *gl_attention_weights(gl_tensor *qkv, int n_head, bool causal) {
    qkv = gl_contiguous(qkv);
    check_qkv("attention_weights", qkv, n_head);
    attn_dims d = dims_of(qkv, n_head);
    gl_tensor *w = gl_new_on(qkv->device, GL_DIMS(d.B, d.nh, d.T, d.T));
    GL_CALL(qkv->device, "attention_weights", attention_weights, d.B, d.T, d.C, d.nh, causal, qkv->data, w->data);
    return w;
}
