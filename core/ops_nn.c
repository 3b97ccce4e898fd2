/* Neural-net ops, each forward beside its backward: softmax, log_softmax, fused cross-entropy, token_logprob,
 * fused layernorm, embedding, dropout. Each checks its shapes, makes its output on its inputs' device and calls that
 * device's kernel (kernels/backend.h); the loop nests live in the backends (kernels/cpu/ops.c, kernels/cuda). */
#include <string.h>

#include "op_impl.h"

static int64_t row_count(const gl_tensor *x) { return x->ndim ? x->numel / x->shape[x->ndim - 1] : 1; }
static int last_dim(const gl_tensor *x) { return x->ndim ? x->shape[x->ndim - 1] : 1; }

/* ================================================================ softmax and log_softmax */

static void softmax_family_backward(gl_node *nd) {
    gl_tensor *x = nd->in[0], *y = nd->out;
    GL_CALL(y->device, nd->op, softmax_bwd, (size_t)row_count(y), (size_t)last_dim(y), nd->ival[0], y->data, y->grad,
            x->grad);
}

static gl_tensor *softmax_family(gl_tensor *x, bool log_form) {
    x = gl_contiguous(x);
    gl_node *node;
    gl_tensor *y = gl_op_output(log_form ? "log_softmax" : "softmax", x->ndim, x->shape, softmax_family_backward,
                                &node, GL_INPUTS(x));
    if (node) node->ival[0] = log_form;
    GL_CALL(y->device, log_form ? "log_softmax" : "softmax", softmax_fwd, (size_t)row_count(x), (size_t)last_dim(x),
            log_form, x->data, y->data);
    return y;
}

gl_tensor *gl_softmax(gl_tensor *x) { return softmax_family(x, false); }
gl_tensor *gl_log_softmax(gl_tensor *x) { return softmax_family(x, true); }

/* ================================================================ cross-entropy (fused log_softmax + NLL) */

/* targets and the log-sum-exp of each row are saved on the logits' device */
static void cross_entropy_backward(gl_node *nd) {
    gl_tensor *x = nd->in[0];
    GL_CALL(x->device, "cross_entropy", cross_entropy_bwd, (size_t)row_count(x), (size_t)last_dim(x), x->data, nd->saved[0],
            nd->ival[0], nd->ival[1], nd->saved[1], nd->out->grad, x->grad);
}

static int check_targets(const char *op, const int32_t *targets, int64_t rows, int V, int ignore_index) {
    int n_valid = 0;
    for (int64_t r = 0; r < rows; r++) {
        if (targets[r] == ignore_index) continue;
        if (targets[r] < 0 || targets[r] >= V)
            gl_fatal(op, "target %d of row %lld is outside [0, %d) (ignore_index is %d)", targets[r], (long long)r, V,
                     ignore_index);
        n_valid++;
    }
    return n_valid;
}

gl_tensor *gl_cross_entropy(gl_tensor *logits, const int32_t *targets, int ignore_index) {
    logits = gl_contiguous(logits);
    int64_t rows = row_count(logits);
    int V = last_dim(logits);
    int n_valid = check_targets("cross_entropy", targets, rows, V, ignore_index);
    gl_node *node;
    gl_tensor *loss = gl_op_output("cross_entropy", 0, NULL, cross_entropy_backward, &node, GL_INPUTS(logits));
    gl_device d = loss->device;
    int32_t *tgt = gl_arena_copy_in(d, targets, (size_t)rows * sizeof(int32_t));
    float *lse = gl_arena_alloc_on(d, (size_t)rows * sizeof(float));
    GL_CALL(d, "cross_entropy", cross_entropy_fwd, (size_t)rows, (size_t)V, logits->data, tgt, ignore_index, n_valid,
            lse, loss->data);
    if (node) {
        node->saved[0] = tgt;
        node->saved[1] = lse;
        node->ival[0] = ignore_index;
        node->ival[1] = n_valid;
    }
    return loss;
}

/* ---- token_logprob: log softmax(logits)[target] per row, 0 for ignored rows ---- */

static void token_logprob_backward(gl_node *nd) {
    gl_tensor *x = nd->in[0], *y = nd->out;
    GL_CALL(x->device, "token_logprob", token_logprob_bwd, (size_t)row_count(x), (size_t)last_dim(x), x->data, nd->saved[0],
            nd->ival[0], nd->saved[1], y->grad, x->grad);
}

gl_tensor *gl_token_logprob(gl_tensor *logits, const int32_t *targets, int ignore_index) {
    logits = gl_contiguous(logits);
    int64_t rows = row_count(logits);
    int V = last_dim(logits);
    check_targets("token_logprob", targets, rows, V, ignore_index);
    gl_node *node;
    gl_tensor *y = gl_op_output("token_logprob", logits->ndim - 1, logits->shape, token_logprob_backward, &node,
                                GL_INPUTS(logits));
    gl_device d = y->device;
    int32_t *tgt = gl_arena_copy_in(d, targets, (size_t)rows * sizeof(int32_t));
    float *lse = gl_arena_alloc_on(d, (size_t)rows * sizeof(float));
    GL_CALL(d, "token_logprob", token_logprob_fwd, (size_t)rows, (size_t)V, logits->data, tgt, ignore_index, lse,
            y->data);
    if (node) {
        node->saved[0] = tgt;
        node->saved[1] = lse;
        node->ival[0] = ignore_index;
    }
    return y;
}

/* ================================================================ layernorm (fused) */

static void layernorm_backward(gl_node *nd) {
    gl_tensor *x = nd->in[0], *w = nd->in[1], *b = nd->in[2], *y = nd->out;
    GL_CALL(y->device, "layernorm", layernorm_bwd, (size_t)row_count(x), (size_t)last_dim(x), x->data,
            w ? w->data : NULL, nd->saved[0], nd->saved[1], y->grad, x->requires_grad ? x->grad : NULL,
            w && w->requires_grad ? w->grad : NULL, b && b->requires_grad ? b->grad : NULL);
}

gl_tensor *gl_layernorm(gl_tensor *x, gl_tensor *w, gl_tensor *b, float eps) {
    x = gl_contiguous(x);
    int C = last_dim(x);
    char s1[64], s2[64];
    if (w && (w->ndim != 1 || w->shape[0] != C))
        gl_fatal("layernorm", "weight of shape %s does not match the last dim of input %s",
                 gl_shape_str(w, s1, sizeof s1), gl_shape_str(x, s2, sizeof s2));
    if (b && (b->ndim != 1 || b->shape[0] != C))
        gl_fatal("layernorm", "bias of shape %s does not match the last dim of input %s",
                 gl_shape_str(b, s1, sizeof s1), gl_shape_str(x, s2, sizeof s2));
    gl_node *node;
    gl_tensor *y = gl_op_output("layernorm", x->ndim, x->shape, layernorm_backward, &node, GL_INPUTS(x, w, b));
    int64_t rows = row_count(x);
    float *mean = gl_arena_alloc_on(y->device, (size_t)rows * sizeof(float));
    float *rstd = gl_arena_alloc_on(y->device, (size_t)rows * sizeof(float));
    GL_CALL(y->device, "layernorm", layernorm_fwd, (size_t)rows, (size_t)C, x->data, w ? w->data : NULL,
            b ? b->data : NULL, eps, y->data, mean, rstd);
    if (node) {
        node->saved[0] = mean;
        node->saved[1] = rstd;
    }
    return y;
}

/* ================================================================ embedding */

/* on CUDA the gradient adds atomically: the one op whose CUDA gradient is not bitwise repeatable */
static void embedding_backward(gl_node *nd) {
    gl_tensor *w = nd->in[0], *y = nd->out;
    int C = w->shape[1];
    GL_CALL(y->device, "embedding", embedding_bwd, (size_t)(y->numel / C), (size_t)C, nd->saved[0], y->grad, w->grad);
}

gl_tensor *gl_embedding(gl_tensor *weight, const int32_t *ids, int ids_ndim, const int *ids_shape) {
    char s1[64];
    if (weight->ndim != 2)
        gl_fatal("embedding", "weight must be [vocab, dim], got %s", gl_shape_str(weight, s1, sizeof s1));
    if (ids_ndim + 1 > GL_MAX_DIMS) gl_fatal("embedding", "ids have %d dims; at most %d allowed", ids_ndim, GL_MAX_DIMS - 1);
    weight = gl_contiguous(weight);
    int V = weight->shape[0], C = weight->shape[1];
    int shape[GL_MAX_DIMS];
    int64_t n = 1;
    for (int d = 0; d < ids_ndim; d++) n *= (shape[d] = ids_shape[d]);
    shape[ids_ndim] = C;
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V)
            gl_fatal("embedding", "id %d at position %lld is outside the vocabulary [0, %d)", ids[i], (long long)i, V);
    gl_node *node;
    gl_tensor *y = gl_op_output("embedding", ids_ndim + 1, shape, embedding_backward, &node, GL_INPUTS(weight));
    int32_t *dev_ids = gl_arena_copy_in(y->device, ids, (size_t)n * sizeof(int32_t));
    GL_CALL(y->device, "embedding", embedding_fwd, (size_t)n, (size_t)C, dev_ids, weight->data, y->data);
    if (node) node->saved[0] = dev_ids;
    return y;
}

/* ================================================================ dropout */

static void dropout_backward(gl_node *nd) {
    GL_CALL(nd->out->device, "dropout", mul_acc, (size_t)nd->out->numel, nd->out->grad, nd->saved[0], nd->in[0]->grad);
}

/* the mask is drawn on the CPU from rng in order and copied to the device: the same model on either device */
gl_tensor *gl_dropout(gl_tensor *x, float p, gl_rng *rng, bool training) {
    if (!(p >= 0.0f && p < 1.0f)) gl_fatal("dropout", "probability %g is outside [0, 1)", (double)p);
    if (!training || p == 0.0f) return x;
    x = gl_contiguous(x);
    gl_node *node;
    gl_tensor *y = gl_op_output("dropout", x->ndim, x->shape, dropout_backward, &node, GL_INPUTS(x));
    float *mask = gl_arena_alloc((size_t)x->numel * sizeof(float));
    float keep_scale = 1.0f / (1.0f - p);
    for (int64_t i = 0; i < x->numel; i++) mask[i] = gl_rng_uniform(rng) >= p ? keep_scale : 0.0f; /* in order */
    if (y->device != GL_CPU) mask = gl_arena_copy_in(y->device, mask, (size_t)x->numel * sizeof(float));
    GL_CALL(y->device, "dropout", mul, (size_t)x->numel, x->data, mask, y->data);
    if (node) node->saved[0] = mask;
    return y;
}
