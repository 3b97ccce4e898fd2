/* Neural-net ops, each forward beside its backward: softmax, log_softmax, fused cross-entropy, fused layernorm,
 * embedding, dropout. Rows (all but the last axis) are independent, so row loops run under OpenMP; every
 * reduction across rows (loss, layernorm's weight gradients, embedding gradients) runs in a fixed order. */
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "kernels_cuda.h"
#include "ops.h"

static int64_t row_count(const gl_tensor *x) { return x->ndim ? x->numel / x->shape[x->ndim - 1] : 1; }
static int last_dim(const gl_tensor *x) { return x->ndim ? x->shape[x->ndim - 1] : 1; }

/* ================================================================ softmax and log_softmax */

static float row_logsumexp(const float *x, int n) {
    float mx = -INFINITY;
    for (int j = 0; j < n; j++) mx = x[j] > mx ? x[j] : mx;
    float s = 0.0f;
    for (int j = 0; j < n; j++) s += expf(x[j] - mx);
    return mx + logf(s);
}

/* softmax:      dx = y * (dy - sum(dy * y))
 * log_softmax:  y = x - logsumexp(x),  dx = dy - exp(y) * sum(dy) */
static void softmax_family_backward(gl_node *nd) {
    bool log_form = nd->ival[0];
    gl_tensor *x = nd->in[0], *y = nd->out;
    int64_t rows = row_count(y);
    int n = last_dim(y);
#pragma omp parallel for schedule(static) if (y->numel > (1 << 15))
    for (int64_t r = 0; r < rows; r++) {
        const float *yr = y->data + r * n, *dy = y->grad + r * n;
        float *dx = x->grad + r * n;
        float s = 0.0f;
        for (int j = 0; j < n; j++) s += log_form ? dy[j] : dy[j] * yr[j];
        for (int j = 0; j < n; j++) dx[j] += log_form ? dy[j] - expf(yr[j]) * s : yr[j] * (dy[j] - s);
    }
}

static gl_tensor *softmax_family(gl_tensor *x, bool log_form) {
    x = gl_contiguous(x);
    gl_node *node;
    gl_tensor *y = gl_op_output(log_form ? "log_softmax" : "softmax", x->ndim, x->shape, softmax_family_backward,
                                &node, GL_INPUTS(x));
    if (node) node->ival[0] = log_form;
    int64_t rows = row_count(x);
    int n = last_dim(x);
    const gl_kernels *k = gl_kern();
#pragma omp parallel for schedule(static) if (x->numel > (1 << 15))
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x->data + r * n;
        float *yr = y->data + r * n;
        if (!log_form) {
            k->softmax_rows(1, (size_t)n, xr, yr);
            continue;
        }
        float lse = row_logsumexp(xr, n);
        for (int j = 0; j < n; j++) yr[j] = xr[j] - lse;
    }
    return y;
}

gl_tensor *gl_softmax(gl_tensor *x) { return softmax_family(x, false); }
gl_tensor *gl_log_softmax(gl_tensor *x) { return softmax_family(x, true); }

/* ================================================================ cross-entropy (fused log_softmax + NLL) */

/* dlogits = dloss / n_valid * (softmax(logits) - onehot(target)); softmax recomputed from the saved lse */
/* dx += g * (softmax(x) - onehot(target)) for one row, softmax from its log-sum-exp: the gradient of
 * -log softmax(x)[target] scaled by g (cross-entropy), or of +log softmax with g negated (token_logprob) */
static void add_softmax_minus_onehot(const float *xr, float lse, int V, int target, float g, float *dx) {
    for (int j = 0; j < V; j++) dx[j] += g * expf(xr[j] - lse);
    dx[target] -= g;
}

static void cross_entropy_backward(gl_node *nd) {
    gl_tensor *x = nd->in[0];
    const int32_t *targets = nd->saved[0];
    const float *lse = nd->saved[1];
    int ignore = nd->ival[0], n_valid = nd->ival[1];
    if (n_valid == 0) return;
    int64_t rows = row_count(x);
    int V = last_dim(x);
    if (x->device == GL_CUDA) { /* targets and lse are device copies; the loss's gradient comes back as one float */
        const gl_cuda_kernels *cu = gl_cu("cross_entropy");
        float g;
        cu->download(&g, nd->out->grad, sizeof g);
        cu->cross_entropy_bwd((size_t)rows, (size_t)V, x->data, targets, ignore, lse, g / (float)n_valid, x->grad);
        return;
    }
    float g = nd->out->grad[0] / (float)n_valid;
#pragma omp parallel for schedule(static) if (x->numel > (1 << 15))
    for (int64_t r = 0; r < rows; r++) {
        if (targets[r] != ignore) add_softmax_minus_onehot(x->data + r * V, lse[r], V, targets[r], g, x->grad + r * V);
    }
}

gl_tensor *gl_cross_entropy(gl_tensor *logits, const int32_t *targets, int ignore_index) {
    logits = gl_contiguous(logits);
    int64_t rows = row_count(logits);
    int V = last_dim(logits);
    int n_valid = 0;
    for (int64_t r = 0; r < rows; r++) {
        if (targets[r] == ignore_index) continue;
        if (targets[r] < 0 || targets[r] >= V)
            gl_fatal("cross_entropy", "target %d of row %lld is outside [0, %d) (ignore_index is %d)", targets[r],
                     (long long)r, V, ignore_index);
        n_valid++;
    }
    gl_node *node;
    gl_tensor *loss = gl_op_output_any("cross_entropy", 0, NULL, cross_entropy_backward, &node, GL_INPUTS(logits));
    if (loss->device == GL_CUDA) { /* row losses summed on the device in a fixed order, then scaled by 1/n_valid */
        const gl_cuda_kernels *cu = gl_cu("cross_entropy");
        int32_t *tgt = gl_arena_copy_in(GL_CUDA, targets, (size_t)rows * sizeof(int32_t));
        float *lse = gl_device_arena_alloc((size_t)rows * sizeof(float));
        float *row_loss = gl_device_arena_alloc((size_t)rows * sizeof(float));
        float *scratch = gl_device_arena_alloc(cu->sum_scratch((size_t)rows) * sizeof(float));
        float inv = n_valid ? 1.0f / (float)n_valid : 0.0f, *inv_dev = gl_arena_copy_in(GL_CUDA, &inv, sizeof inv);
        cu->cross_entropy_fwd((size_t)rows, (size_t)V, logits->data, tgt, ignore_index, lse, row_loss);
        cu->sum((size_t)rows, row_loss, scratch, loss->data);
        cu->scale(1, inv_dev, loss->data);
        if (node) {
            node->saved[0] = tgt;
            node->saved[1] = lse;
            node->ival[0] = ignore_index;
            node->ival[1] = n_valid;
        }
        return loss;
    }
    float *lse = gl_arena_alloc((size_t)rows * sizeof(float));
    float *row_loss = gl_arena_alloc((size_t)rows * sizeof(float));
#pragma omp parallel for schedule(static) if (logits->numel > (1 << 15))
    for (int64_t r = 0; r < rows; r++) {
        if (targets[r] == ignore_index) {
            row_loss[r] = 0.0f;
            continue;
        }
        const float *xr = logits->data + r * V;
        lse[r] = row_logsumexp(xr, V);
        row_loss[r] = lse[r] - xr[targets[r]];
    }
    double total = 0.0; /* summed in row order: the same bits for any thread count */
    for (int64_t r = 0; r < rows; r++) total += row_loss[r];
    loss->data[0] = n_valid ? (float)(total / n_valid) : 0.0f;
    if (node) {
        int32_t *saved_targets = gl_arena_alloc((size_t)rows * sizeof(int32_t));
        memcpy(saved_targets, targets, (size_t)rows * sizeof(int32_t));
        node->saved[0] = saved_targets;
        node->saved[1] = lse;
        node->ival[0] = ignore_index;
        node->ival[1] = n_valid;
    }
    return loss;
}

/* ---- token_logprob: log softmax(logits)[target] per row, 0 for ignored rows ---- */

static void token_logprob_backward(gl_node *nd) {
    gl_tensor *x = nd->in[0], *y = nd->out;
    const int32_t *targets = nd->saved[0];
    const float *lse = nd->saved[1];
    int ignore = nd->ival[0], V = last_dim(x);
    int64_t rows = row_count(x);
#pragma omp parallel for schedule(static) if (x->numel > (1 << 15))
    for (int64_t r = 0; r < rows; r++)
        if (targets[r] != ignore) add_softmax_minus_onehot(x->data + r * V, lse[r], V, targets[r], -y->grad[r], x->grad + r * V);
}

gl_tensor *gl_token_logprob(gl_tensor *logits, const int32_t *targets, int ignore_index) {
    logits = gl_contiguous(logits);
    int64_t rows = row_count(logits);
    int V = last_dim(logits);
    for (int64_t r = 0; r < rows; r++)
        if (targets[r] != ignore_index && (targets[r] < 0 || targets[r] >= V))
            gl_fatal("token_logprob", "target %d of row %lld is outside [0, %d) (ignore_index is %d)", targets[r],
                     (long long)r, V, ignore_index);
    gl_node *node;
    gl_tensor *y = gl_op_output("token_logprob", logits->ndim - 1, logits->shape, token_logprob_backward, &node,
                                GL_INPUTS(logits));
    float *lse = gl_arena_alloc((size_t)rows * sizeof(float));
#pragma omp parallel for schedule(static) if (logits->numel > (1 << 15))
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = logits->data + r * V;
        lse[r] = row_logsumexp(xr, V);
        y->data[r] = targets[r] == ignore_index ? 0.0f : xr[targets[r]] - lse[r];
    }
    if (node) {
        int32_t *saved = gl_arena_alloc((size_t)rows * sizeof(int32_t));
        memcpy(saved, targets, (size_t)rows * sizeof(int32_t));
        node->saved[0] = saved;
        node->saved[1] = lse;
        node->ival[0] = ignore_index;
    }
    return y;
}

/* ================================================================ layernorm (fused) */

/* With n = (x - mean) * rstd and dn = dy * w:
 *   dx = rstd * (dn - mean(dn) - n * mean(dn * n)),  dw = sum_rows dy * n,  db = sum_rows dy */
static void layernorm_backward(gl_node *nd) {
    gl_tensor *x = nd->in[0], *w = nd->in[1], *b = nd->in[2], *y = nd->out;
    const float *mean = nd->saved[0], *rstd = nd->saved[1];
    int64_t rows = row_count(x);
    int C = last_dim(x);
    if (y->device == GL_CUDA) {
        gl_cu("layernorm")->layernorm_bwd((size_t)rows, (size_t)C, x->data, w ? w->data : NULL, mean, rstd, y->grad,
                                          x->requires_grad ? x->grad : NULL, w && w->requires_grad ? w->grad : NULL,
                                          b && b->requires_grad ? b->grad : NULL);
        return;
    }
    if (x->requires_grad) {
#pragma omp parallel for schedule(static) if (x->numel > (1 << 15))
        for (int64_t r = 0; r < rows; r++) {
            const float *xr = x->data + r * C, *dy = y->grad + r * C;
            float *dx = x->grad + r * C;
            float m = mean[r], s = rstd[r];
            float dn_mean = 0.0f, dn_n_mean = 0.0f;
            for (int j = 0; j < C; j++) {
                float dn = w ? dy[j] * w->data[j] : dy[j];
                dn_mean += dn;
                dn_n_mean += dn * (xr[j] - m) * s;
            }
            dn_mean /= (float)C;
            dn_n_mean /= (float)C;
            for (int j = 0; j < C; j++) {
                float dn = w ? dy[j] * w->data[j] : dy[j];
                dx[j] += s * (dn - dn_mean - (xr[j] - m) * s * dn_n_mean);
            }
        }
    }
    bool need_w = w && w->requires_grad, need_b = b && b->requires_grad;
    if (!need_w && !need_b) return;
    for (int64_t r = 0; r < rows; r++) { /* rows in order: deterministic sums */
        const float *xr = x->data + r * C, *dy = y->grad + r * C;
        float m = mean[r], s = rstd[r];
        if (need_w)
            for (int j = 0; j < C; j++) w->grad[j] += dy[j] * (xr[j] - m) * s;
        if (need_b)
            for (int j = 0; j < C; j++) b->grad[j] += dy[j];
    }
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
    gl_tensor *y = gl_op_output_any("layernorm", x->ndim, x->shape, layernorm_backward, &node, GL_INPUTS(x, w, b));
    int64_t rows = row_count(x);
    if (y->device == GL_CUDA) {
        float *mean = gl_device_arena_alloc((size_t)rows * sizeof(float));
        float *rstd = gl_device_arena_alloc((size_t)rows * sizeof(float));
        gl_cu("layernorm")->layernorm_fwd((size_t)rows, (size_t)C, x->data, w ? w->data : NULL, b ? b->data : NULL, eps,
                                          y->data, mean, rstd);
        if (node) node->saved[0] = mean, node->saved[1] = rstd;
        return y;
    }
    float *mean = gl_arena_alloc((size_t)rows * sizeof(float));
    float *rstd = gl_arena_alloc((size_t)rows * sizeof(float));
    const gl_kernels *k = gl_kern();
    const float *wd = w ? w->data : NULL, *bd = b ? b->data : NULL;
#pragma omp parallel for schedule(static) if (x->numel > (1 << 15))
    for (int64_t r = 0; r < rows; r++)
        k->layernorm_rows(1, (size_t)C, x->data + r * C, wd, bd, eps, y->data + r * C, mean + r, rstd + r);
    if (node) {
        node->saved[0] = mean;
        node->saved[1] = rstd;
    }
    return y;
}

/* ================================================================ embedding */

static void embedding_backward(gl_node *nd) {
    gl_tensor *w = nd->in[0], *y = nd->out;
    const int32_t *ids = nd->saved[0];
    int C = w->shape[1];
    int64_t n = y->numel / C;
    if (y->device == GL_CUDA) { /* atomic adds: the one op whose CUDA gradient is not bitwise repeatable */
        gl_cu("embedding")->embedding_bwd((size_t)n, (size_t)C, ids, y->grad, w->grad);
        return;
    }
    const gl_kernels *k = gl_kern();
    for (int64_t i = 0; i < n; i++) k->axpy((size_t)C, 1.0f, y->grad + i * C, w->grad + (int64_t)ids[i] * C);
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
    gl_tensor *y = gl_op_output_any("embedding", ids_ndim + 1, shape, embedding_backward, &node, GL_INPUTS(weight));
    if (y->device == GL_CUDA) {
        int32_t *dev_ids = gl_arena_copy_in(GL_CUDA, ids, (size_t)n * sizeof(int32_t));
        gl_cu("embedding")->embedding_fwd((size_t)n, (size_t)C, dev_ids, weight->data, y->data);
        if (node) node->saved[0] = dev_ids;
        return y;
    }
    for (int64_t i = 0; i < n; i++) memcpy(y->data + i * C, weight->data + (int64_t)ids[i] * C, (size_t)C * sizeof(float));
    if (node) {
        int32_t *saved = gl_arena_alloc((size_t)n * sizeof(int32_t));
        memcpy(saved, ids, (size_t)n * sizeof(int32_t));
        node->saved[0] = saved;
    }
    return y;
}

/* ================================================================ dropout */

static void dropout_backward(gl_node *nd) {
    if (nd->out->device == GL_CUDA) gl_cu("dropout")->mul_acc((size_t)nd->out->numel, nd->out->grad, nd->saved[0], nd->in[0]->grad);
    else gl_kern()->mul_acc((size_t)nd->out->numel, nd->out->grad, nd->saved[0], nd->in[0]->grad);
}

gl_tensor *gl_dropout(gl_tensor *x, float p, gl_rng *rng, bool training) {
    if (!(p >= 0.0f && p < 1.0f)) gl_fatal("dropout", "probability %g is outside [0, 1)", (double)p);
    if (!training || p == 0.0f) return x;
    x = gl_contiguous(x);
    gl_node *node;
    gl_tensor *y = gl_op_output_any("dropout", x->ndim, x->shape, dropout_backward, &node, GL_INPUTS(x));
    float *mask = gl_arena_alloc((size_t)x->numel * sizeof(float));
    float keep_scale = 1.0f / (1.0f - p);
    for (int64_t i = 0; i < x->numel; i++) mask[i] = gl_rng_uniform(rng) >= p ? keep_scale : 0.0f; /* in order */
    if (y->device == GL_CUDA) { /* the CPU's mask, drawn from the same stream and copied in: the same model either way */
        mask = gl_arena_copy_in(GL_CUDA, mask, (size_t)x->numel * sizeof(float));
        gl_cu("dropout")->mul((size_t)x->numel, x->data, mask, y->data);
    } else gl_kern()->mul((size_t)x->numel, x->data, mask, y->data);
    if (node) node->saved[0] = mask;
    return y;
}
