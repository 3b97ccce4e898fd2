/* matmul: forward and backward as GEMM calls. A transposed view (gl_transpose of the last two dims) is passed
 * to the GEMM as a transpose flag with its leading dimension, so x @ W^T never copies W. */
#include <stdlib.h>
#include <string.h>

#include "kernels.h" /* gl_nf4: QLoRA weights are the CPU kernels' own format */
#include "op_impl.h"

/* How the last two dims of t sit in memory: row-major (trans 0) or its transpose (trans 1), with leading dim. */
static bool matrix_layout(const gl_tensor *t, int *trans, int *ld) {
    int r = t->ndim - 2, c = t->ndim - 1;
    int64_t sr = t->shape[r] == 1 ? t->shape[c] : t->stride[r];
    int64_t sc = t->shape[c] == 1 ? 1 : t->stride[c];
    if (sc == 1 && sr >= t->shape[c]) {
        *trans = 0;
        *ld = (int)(sr > 0 ? sr : 1);
        return true;
    }
    sr = t->shape[r] == 1 ? 1 : t->stride[r];
    sc = t->shape[c] == 1 ? t->shape[r] : t->stride[c];
    if (sr == 1 && sc >= t->shape[r]) {
        *trans = 1;
        *ld = (int)(sc > 0 ? sc : 1);
        return true;
    }
    return false;
}

/* the GEMM of the device the operands are on (gl_gemm's contract on every backend) */
typedef void (*gemm_fn)(int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int);
static gemm_fn gemm_for(const gl_tensor *t, const char *op) { return GL_BACKEND(t->device, op, gemm)->gemm; }

void gl_matmul_acc(gl_tensor *dst, int col0, const gl_tensor *a, const gl_tensor *b, float alpha) {
    char s1[64], s2[64], s3[64];
    if (a->ndim != 2 || b->ndim != 2 || dst->ndim != 2 || a->shape[1] != b->shape[0] || dst->shape[0] != a->shape[0] ||
        col0 < 0 || col0 + b->shape[1] > dst->shape[1] || !gl_is_contiguous(a) || !gl_is_contiguous(b) ||
        !gl_is_contiguous(dst) || a->device != dst->device || b->device != dst->device)
        gl_fatal("matmul_acc", "needs contiguous matrices on one device with dst [M, >= %d + N] += a [M, K] @ b [K, N], "
                 "got %s += %s @ %s", col0, gl_shape_str(dst, s1, sizeof s1), gl_shape_str(a, s2, sizeof s2),
                 gl_shape_str(b, s3, sizeof s3));
    gemm_for(dst, "matmul_acc")(0, 0, a->shape[0], b->shape[1], a->shape[1], alpha, a->data, a->shape[1], b->data, b->shape[1], 1.0f,
                  dst->data + col0, dst->shape[1]);
}

/* offset of batch index bi (row-major over the leading dims) */
static int64_t batch_offset(const gl_tensor *t, int64_t bi) {
    int64_t off = 0;
    for (int d = t->ndim - 3; d >= 0; d--) {
        off += (bi % t->shape[d]) * t->stride[d];
        bi /= t->shape[d];
    }
    return off;
}

typedef struct {
    int M, N, K;
    int64_t batches; /* GEMM calls */
    int ta, tb, lda, ldb;
    bool b_shared; /* b is 2-D: the same matrix for every batch */
} mm_plan;

static mm_plan plan_matmul(gl_tensor *a, gl_tensor *b) {
    char sa[64], sb[64];
    if (a->ndim < 2 || b->ndim < 2)
        gl_fatal("matmul", "both operands need at least 2 dimensions, got %s @ %s", gl_shape_str(a, sa, sizeof sa),
                 gl_shape_str(b, sb, sizeof sb));
    mm_plan p = {0};
    p.M = a->shape[a->ndim - 2];
    p.K = a->shape[a->ndim - 1];
    p.N = b->shape[b->ndim - 1];
    if (b->shape[b->ndim - 2] != p.K)
        gl_fatal("matmul", "inner dimensions differ: %s @ %s (%d != %d)", gl_shape_str(a, sa, sizeof sa),
                 gl_shape_str(b, sb, sizeof sb), p.K, b->shape[b->ndim - 2]);
    p.b_shared = b->ndim == 2;
    if (!p.b_shared) {
        bool ok = a->ndim == b->ndim;
        for (int d = 0; ok && d < a->ndim - 2; d++) ok = a->shape[d] == b->shape[d];
        if (!ok)
            gl_fatal("matmul", "batch dimensions differ: %s @ %s (b must be 2-D or have a's batch dims)",
                     gl_shape_str(a, sa, sizeof sa), gl_shape_str(b, sb, sizeof sb));
    }
    p.batches = 1;
    for (int d = 0; d < a->ndim - 2; d++) p.batches *= a->shape[d];
    return p;
}

static void matmul_backward(gl_node *n) {
    gl_tensor *a = n->in[0], *b = n->in[1], *c = n->out;
    mm_plan p = plan_matmul(a, b);
    p.ta = n->ival[0];
    p.tb = n->ival[1];
    p.lda = n->ival[2];
    p.ldb = n->ival[3];
    int M = p.M, N = p.N, K = p.K;
    gemm_fn gemm = gemm_for(c, "matmul");
    if (n->fval[0] != 0.0f) { /* batches folded into one GEMM of M*batches rows */
        M *= (int)p.batches;
        p.batches = 1;
    }
    for (int64_t bi = 0; bi < p.batches; bi++) {
        const float *A = a->data + batch_offset(a, bi);
        const float *B = b->data + (p.b_shared ? 0 : batch_offset(b, bi));
        const float *dC = c->grad + bi * (int64_t)M * N;
        if (a->requires_grad) {
            float *dA = a->grad + batch_offset(a, bi);
            if (!p.ta) /* dA (M x K) += dC op(B)^T */
                gemm(0, !p.tb, M, K, N, 1.0f, dC, N, B, p.ldb, 1.0f, dA, p.lda);
            else /* A stored K x M: dA += op(B) dC^T */
                gemm(p.tb, 1, K, M, N, 1.0f, B, p.ldb, dC, N, 1.0f, dA, p.lda);
        }
        if (b->requires_grad) {
            float *dB = b->grad + (p.b_shared ? 0 : batch_offset(b, bi));
            if (!p.tb) /* dB (K x N) += op(A)^T dC */
                gemm(!p.ta, 0, K, N, M, 1.0f, A, p.lda, dC, N, 1.0f, dB, p.ldb);
            else /* B stored N x K: dB += dC^T op(A) */
                gemm(1, p.ta, N, K, M, 1.0f, dC, N, A, p.lda, 1.0f, dB, p.ldb);
        }
    }
}

gl_tensor *gl_matmul(gl_tensor *a, gl_tensor *b) {
    mm_plan p = plan_matmul(a, b);
    if (!matrix_layout(a, &p.ta, &p.lda)) a = gl_contiguous(a), matrix_layout(a, &p.ta, &p.lda);
    if (!matrix_layout(b, &p.tb, &p.ldb)) b = gl_contiguous(b), matrix_layout(b, &p.tb, &p.ldb);
    int shape[GL_MAX_DIMS];
    for (int d = 0; d < a->ndim - 2; d++) shape[d] = a->shape[d];
    shape[a->ndim - 2] = p.M;
    shape[a->ndim - 1] = p.N;
    gl_node *node;
    gl_tensor *c = gl_op_output("matmul", a->ndim, shape, matmul_backward, &node, GL_INPUTS(a, b));
    gemm_fn gemm = gemm_for(c, "matmul");
    /* x [B, T, C] @ W [C, D] with x contiguous is one GEMM of B*T rows: fewer, larger calls */
    bool fold = p.b_shared && p.batches > 1 && !p.ta && gl_is_contiguous(a);
    if (node) {
        node->ival[0] = p.ta;
        node->ival[1] = p.tb;
        node->ival[2] = p.lda;
        node->ival[3] = p.ldb;
        node->fval[0] = fold ? 1.0f : 0.0f;
    }
    if (fold) {
        gemm(0, p.tb, p.M * (int)p.batches, p.N, p.K, 1.0f, a->data, p.lda, b->data, p.ldb, 0.0f, c->data, p.N);
        return c;
    }
    for (int64_t bi = 0; bi < p.batches; bi++)
        gemm(p.ta, p.tb, p.M, p.N, p.K, 1.0f, a->data + batch_offset(a, bi),
                p.lda, b->data + (p.b_shared ? 0 : batch_offset(b, bi)), p.ldb, 0.0f,
                c->data + bi * (int64_t)p.M * p.N, p.N);
    return c;
}

/* ---- linear: y = x w + bias, with the bias folded into the GEMM's C (beta = 1) ---- */

static void linear_backward(gl_node *n) {
    gl_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2], *y = n->out;
    int K = x->shape[x->ndim - 1], N = y->shape[y->ndim - 1];
    GL_CALL(y->device, "linear", linear_bwd, (int)(x->numel / (K ? K : 1)), N, K, n->ival[0], n->ival[1], x->data,
            w->data, y->grad, x->requires_grad ? x->grad : NULL, w->requires_grad ? w->grad : NULL,
            b && b->requires_grad ? b->grad : NULL);
}

gl_tensor *gl_linear(gl_tensor *x, gl_tensor *w, gl_tensor *bias) {
    char s1[64], s2[64];
    x = gl_contiguous(x);
    int tw, ldw;
    if (w->ndim != 2) gl_fatal("linear", "weight must be 2-D [in, out], got %s", gl_shape_str(w, s1, sizeof s1));
    if (!matrix_layout(w, &tw, &ldw)) w = gl_contiguous(w), matrix_layout(w, &tw, &ldw);
    int K = w->shape[0], N = w->shape[1];
    if (x->ndim < 1 || x->shape[x->ndim - 1] != K)
        gl_fatal("linear", "input %s does not end in the weight's input size: weight is %s",
                 gl_shape_str(x, s1, sizeof s1), gl_shape_str(w, s2, sizeof s2));
    if (bias && (bias->ndim != 1 || bias->shape[0] != N))
        gl_fatal("linear", "bias %s does not match the weight's output size: weight is %s",
                 gl_shape_str(bias, s1, sizeof s1), gl_shape_str(w, s2, sizeof s2));
    int shape[GL_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) shape[d] = x->shape[d];
    shape[x->ndim - 1] = N;
    gl_node *node;
    gl_tensor *y = gl_op_output("linear", x->ndim, shape, linear_backward, &node, GL_INPUTS(x, w, bias));
    if (node) {
        node->ival[0] = tw;
        node->ival[1] = ldw;
    }
    GL_CALL(y->device, "linear", linear_fwd, (int)(x->numel / (K ? K : 1)), N, K, tw, ldw, x->data, w->data,
            bias ? bias->data : NULL, y->data);
    return y;
}

/* ---- linear with NF4 weights (QLoRA's frozen base): y = x deq(W) + bias; W never gets a gradient ---- */

gl_nf4 *gl_nf4_from_param(gl_tensor *w) {
    gl_nf4 *q = calloc(1, sizeof *q);
    if (w->ndim != 2 || w->device != GL_CPU || !w->data) gl_fatal("nf4", "quantises a [rows, cols] parameter on the CPU");
    if (!q || !gl_nf4_quantize(q, w->data, w->shape[0], w->shape[1])) return free(q), NULL;
    free(w->data);
    w->data = NULL;
    gl_param_freeze(w);
    return q;
}

void gl_nf4_to_param(gl_nf4 *q, gl_tensor *w) {
    w->data = aligned_alloc(64, ((size_t)w->numel * sizeof(float) + 63) & ~(size_t)63);
    if (!w->data) gl_fatal("nf4", "out of memory dequantising %s", w->name);
    gl_nf4_dequantize_run(q, 0, (int)w->numel, w->data);
    gl_nf4_release(q);
}

size_t gl_nf4_size(const gl_nf4 *q) { return gl_nf4_bytes(q); }

void gl_nf4_release(gl_nf4 *q) {
    if (q) gl_nf4_free(q);
    free(q);
}

static void linear_nf4_backward(gl_node *n) {
    gl_tensor *x = n->in[0], *b = n->in[1], *y = n->out;
    const gl_nf4 *w = n->saved[0];
    GL_CALL(y->device, "linear_nf4", linear_nf4_bwd, (int)(x->numel / w->rows), w->cols, w->rows, w, y->grad,
            x->requires_grad ? x->grad : NULL, b && b->requires_grad ? b->grad : NULL);
}

gl_tensor *gl_linear_nf4(gl_tensor *x, const gl_nf4 *w, gl_tensor *bias) {
    char s1[64], s2[64];
    x = gl_contiguous(x);
    int K = w->rows, N = w->cols;
    if (x->ndim < 1 || x->shape[x->ndim - 1] != K)
        gl_fatal("linear_nf4", "input %s does not end in the weight's input size %d", gl_shape_str(x, s1, sizeof s1), K);
    if (bias && (bias->ndim != 1 || bias->shape[0] != N))
        gl_fatal("linear_nf4", "bias %s does not match the weight's output size %d", gl_shape_str(bias, s2, sizeof s2), N);
    int shape[GL_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) shape[d] = x->shape[d];
    shape[x->ndim - 1] = N;
    gl_node *node;
    gl_tensor *y = gl_op_output("linear_nf4", x->ndim, shape, linear_nf4_backward, &node, GL_INPUTS(x, bias));
    if (node) node->saved[0] = (void *)w;
    GL_CALL(y->device, "linear_nf4", linear_nf4_fwd, (int)(x->numel / (K ? K : 1)), N, K, x->data, w,
            bias ? bias->data : NULL, y->data);
    return y;
}
