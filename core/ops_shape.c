/* Shape ops. reshape (of a contiguous tensor), transpose and a slice that is one contiguous block are views: they
 * share data and gradient with their base and record nothing. contiguous, other slices and concat copy, and their
 * backward adds the gradient back. */
#include <stdio.h>
#include <string.h>

#include "op_impl.h"

static gl_tensor *view_of(gl_tensor *x) {
    gl_tensor *v = gl_arena_alloc(sizeof *v);
    *v = *x;
    v->is_param = false;
    return v;
}

gl_tensor *gl_transpose(gl_tensor *x, int dim0, int dim1) {
    dim0 = gl_axis("transpose", x, dim0);
    dim1 = gl_axis("transpose", x, dim1);
    gl_tensor *v = view_of(x);
    v->shape[dim0] = x->shape[dim1];
    v->shape[dim1] = x->shape[dim0];
    v->stride[dim0] = x->stride[dim1];
    v->stride[dim1] = x->stride[dim0];
    return v;
}

/* ---- contiguous: a strided gather; backward scatters the gradient back through the same strides ---- */

static void contiguous_backward(gl_node *nd) {
    gl_tensor *x = nd->in[0];
    GL_CALL(x->device, "contiguous", scatter_add, x->ndim, x->shape, x->stride, nd->out->grad, x->grad);
}

gl_tensor *gl_contiguous(gl_tensor *x) {
    if (gl_is_contiguous(x)) return x;
    if (x->ndim > 4) gl_fatal("contiguous", "copies views of at most 4 dimensions, got %d", x->ndim);
    gl_node *node;
    gl_tensor *y = gl_op_output("contiguous", x->ndim, x->shape, contiguous_backward, &node, GL_INPUTS(x));
    GL_CALL(x->device, "contiguous", gather, x->ndim, x->shape, x->stride, x->data, y->data);
    return y;
}

gl_tensor *gl_reshape(gl_tensor *x, int ndim, const int *shape) {
    char s1[64];
    if (ndim < 0 || ndim > GL_MAX_DIMS) gl_fatal("reshape", "%d dimensions requested; at most %d", ndim, GL_MAX_DIMS);
    int resolved[GL_MAX_DIMS], infer = -1;
    int64_t known = 1;
    for (int d = 0; d < ndim; d++) {
        resolved[d] = shape[d];
        if (shape[d] == -1) {
            if (infer >= 0) gl_fatal("reshape", "more than one -1 in the new shape");
            infer = d;
        } else if (shape[d] < 0) {
            gl_fatal("reshape", "size %d in dimension %d", shape[d], d);
        } else {
            known *= shape[d];
        }
    }
    if (infer >= 0) resolved[infer] = known ? (int)(x->numel / known) : 0;
    int64_t total = 1;
    for (int d = 0; d < ndim; d++) total *= resolved[d];
    if (total != x->numel) {
        char want[64] = "[";
        for (int d = 0; d < ndim; d++)
            snprintf(want + strlen(want), sizeof want - strlen(want), d ? ", %d" : "%d", shape[d]);
        strncat(want, "]", sizeof want - strlen(want) - 1);
        gl_fatal("reshape", "cannot reshape %s (%lld elements) to %s", gl_shape_str(x, s1, sizeof s1),
                 (long long)x->numel, want);
    }
    x = gl_contiguous(x);
    gl_tensor *v = view_of(x);
    v->ndim = ndim;
    int64_t st = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        v->shape[d] = resolved[d];
        v->stride[d] = st;
        st *= resolved[d];
    }
    return v;
}

/* ---- slice and concat: block copies around one axis, as [outer, axis, inner] ---- */

static void outer_inner(const gl_tensor *x, int axis, int64_t *outer, int64_t *inner) {
    *outer = *inner = 1;
    for (int d = 0; d < axis; d++) *outer *= x->shape[d];
    for (int d = axis + 1; d < x->ndim; d++) *inner *= x->shape[d];
}

static void slice_backward(gl_node *nd) {
    gl_tensor *x = nd->in[0], *y = nd->out;
    int axis = nd->ival[0], start = nd->ival[1], len = y->shape[axis];
    int64_t outer, inner;
    outer_inner(x, axis, &outer, &inner);
    GL_CALL(x->device, "slice", axpy_rows, (size_t)outer, (size_t)(len * inner), 1.0f, y->grad, (size_t)(len * inner),
            x->grad + start * inner, (size_t)(x->shape[axis] * inner));
}

gl_tensor *gl_slice(gl_tensor *x, int axis, int start, int end) {
    x = gl_contiguous(x);
    axis = gl_axis("slice", x, axis);
    if (start < 0 || end < start || end > x->shape[axis]) {
        char s1[64];
        gl_fatal("slice", "range [%d, %d) is not inside dimension %d of %s", start, end, axis,
                 gl_shape_str(x, s1, sizeof s1));
    }
    int64_t outer, inner;
    outer_inner(x, axis, &outer, &inner);
    if (outer == 1) { /* a contiguous block (e.g. the first V rows of a [Vp, C] matrix): a view, no copy */
        gl_tensor *v = view_of(x);
        v->shape[axis] = end - start;
        v->numel = (int64_t)(end - start) * inner;
        v->data = x->data + (int64_t)start * inner;
        if (x->grad) v->grad = x->grad + (int64_t)start * inner;
        return v;
    }
    int shape[GL_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[axis] = end - start;
    gl_node *node;
    gl_tensor *y = gl_op_output("slice", x->ndim, shape, slice_backward, &node, GL_INPUTS(x));
    if (node) {
        node->ival[0] = axis;
        node->ival[1] = start;
    }
    size_t block = (size_t)(end - start) * inner;
    GL_CALL(x->device, "slice", copy_rows, (size_t)outer, block, x->data + start * inner, (size_t)(x->shape[axis] * inner),
            y->data, block);
    return y;
}

static void concat_backward(gl_node *nd) {
    gl_tensor **xs = nd->saved[0];
    int n = nd->ival[0], axis = nd->ival[1];
    gl_tensor *y = nd->out;
    int64_t outer, inner;
    outer_inner(y, axis, &outer, &inner);
    int offset = 0;
    for (int k = 0; k < n; k++) {
        int len = xs[k]->shape[axis];
        if (xs[k]->requires_grad)
            GL_CALL(y->device, "concat", axpy_rows, (size_t)outer, (size_t)(len * inner), 1.0f, y->grad + offset * inner,
                    (size_t)(y->shape[axis] * inner), xs[k]->grad, (size_t)(len * inner));
        offset += len;
    }
}

gl_tensor *gl_concat(gl_tensor *const *in, int n, int axis) {
    if (n < 1) gl_fatal("concat", "needs at least one tensor");
    gl_tensor **xs = gl_arena_alloc((size_t)n * sizeof *xs);
    for (int k = 0; k < n; k++) xs[k] = gl_contiguous(in[k]);
    axis = gl_axis("concat", xs[0], axis);
    int shape[GL_MAX_DIMS];
    memcpy(shape, xs[0]->shape, sizeof shape);
    shape[axis] = 0;
    for (int k = 0; k < n; k++) {
        bool ok = xs[k]->ndim == xs[0]->ndim;
        for (int d = 0; ok && d < xs[0]->ndim; d++) ok = d == axis || xs[k]->shape[d] == xs[0]->shape[d];
        if (!ok) {
            char s1[64], s2[64];
            gl_fatal("concat", "tensor %d has shape %s, which does not match %s outside axis %d", k,
                     gl_shape_str(xs[k], s1, sizeof s1), gl_shape_str(xs[0], s2, sizeof s2), axis);
        }
        shape[axis] += xs[k]->shape[axis];
    }
    gl_node *node;
    gl_tensor *y = gl_op_output("concat", xs[0]->ndim, shape, concat_backward, &node, n, xs);
    if (node) {
        node->saved[0] = xs;
        node->ival[0] = n;
        node->ival[1] = axis;
    }
    int64_t outer, inner;
    outer_inner(y, axis, &outer, &inner);
    int offset = 0;
    for (int k = 0; k < n; k++) {
        int len = xs[k]->shape[axis];
        GL_CALL(y->device, "concat", copy_rows, (size_t)outer, (size_t)(len * inner), xs[k]->data, (size_t)(len * inner),
                y->data + offset * inner, (size_t)(shape[axis] * inner));
        offset += len;
    }
    return y;
}

/* ---- add_columns: out = y, then out[..., col0[k] + j] += scale * d[k][..., j] ---- */

static void add_columns_backward(gl_node *n) {
    gl_tensor *y = n->in[0], *out = n->out;
    int N = out->shape[out->ndim - 1];
    float scale = n->fval[0];
    int64_t rows = out->numel / N;
    const gl_backend *be = GL_BACKEND(out->device, "add_columns", axpy_rows);
    if (y->requires_grad) be->axpy((size_t)out->numel, 1.0f, out->grad, y->grad);
    for (int i = 1; i < n->n_in; i++) {
        gl_tensor *d = n->in[i];
        size_t W = (size_t)d->shape[d->ndim - 1];
        if (d->requires_grad) be->axpy_rows((size_t)rows, W, scale, out->grad + n->ival[i - 1], (size_t)N, d->grad, W);
    }
}

gl_tensor *gl_add_columns(gl_tensor *y, int n, gl_tensor *const *ds, const int *col0, float scale) {
    if (n < 1 || n > 3) gl_fatal("add_columns", "takes 1 to 3 updates, got %d", n);
    gl_tensor *in[4] = {gl_contiguous(y)};
    y = in[0];
    int N = y->shape[y->ndim - 1];
    for (int k = 0; k < n; k++) {
        gl_tensor *d = in[k + 1] = gl_contiguous(ds[k]);
        int W = d->shape[d->ndim - 1];
        bool ok = y->ndim == d->ndim && col0[k] >= 0 && col0[k] + W <= N;
        for (int i = 0; ok && i < y->ndim - 1; i++) ok = y->shape[i] == d->shape[i];
        if (!ok) {
            char s1[64], s2[64];
            gl_fatal("add_columns", "%s cannot go into columns %d..%d of %s", gl_shape_str(d, s1, sizeof s1), col0[k],
                     col0[k] + W, gl_shape_str(y, s2, sizeof s2));
        }
    }
    gl_node *node;
    gl_tensor *out = gl_op_output("add_columns", y->ndim, y->shape, add_columns_backward, &node, n + 1, in);
    if (node) {
        for (int k = 0; k < n; k++) node->ival[k] = col0[k];
        node->fval[0] = scale;
    }
    const gl_backend *be = GL_BACKEND(out->device, "add_columns", axpy_rows);
    be->copy(out->data, y->data, (size_t)y->numel * sizeof(float));
    for (int k = 0; k < n; k++) {
        size_t W = (size_t)in[k + 1]->shape[y->ndim - 1];
        be->axpy_rows((size_t)(y->numel / N), W, scale, in[k + 1]->data, W, out->data + col0[k], (size_t)N);
    }
    return out;
}
