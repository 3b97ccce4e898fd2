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

/* ---- one decoding step against a KV cache (inference only: no backward) ----
 * qkv [1, 3C] is the new token's projection; its k and v are appended at row `pos` of the caches
 * ([block_size, C] each, row-major, on qkv's device) and its query attends to rows 0..pos. */
gl_tensor *gl_attention_step(gl_tensor *qkv, float *k_cache, float *v_cache, int pos, int n_head) {
    char s[64];
    qkv = gl_contiguous(qkv);
    if (qkv->numel % 3 != 0 || qkv->shape[qkv->ndim - 1] != qkv->numel || n_head <= 0 || (qkv->numel / 3) % n_head != 0)
        gl_fatal("attention_step", "qkv must be one row of 3C values with C divisible by n_head = %d, got %s",
                 n_head, gl_shape_str(qkv, s, sizeof s));
    if (gl_grad_enabled() && qkv->requires_grad)
        gl_fatal("attention_step", "is for inference only; call it inside gl_no_grad_begin/end");
    int C = (int)(qkv->numel / 3);
    gl_tensor *out = gl_new_on(qkv->device, GL_DIMS(1, C));
    GL_CALL(qkv->device, "attention_step", attention_step, C, n_head, pos, qkv->data, k_cache, v_cache, out->data);
    return out;
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
