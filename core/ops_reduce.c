/* sum and mean over one axis (or all elements). The tensor is viewed as [outer, n, inner] around the axis. */
#include "op_impl.h"

static void split_axis(const gl_tensor *x, int axis, int64_t *outer, int64_t *n, int64_t *inner) {
    *outer = *inner = 1;
    for (int d = 0; d < axis; d++) *outer *= x->shape[d];
    for (int d = axis + 1; d < x->ndim; d++) *inner *= x->shape[d];
    *n = x->shape[axis];
}

/* backward: every input element along the axis receives scale * the gradient of its output element */
static void reduce_backward(gl_node *nd) {
    gl_tensor *x = nd->in[0];
    int64_t outer, n, inner;
    split_axis(x, nd->ival[0], &outer, &n, &inner);
    GL_CALL(x->device, nd->op, reduce_bwd, (size_t)outer, (size_t)n, (size_t)inner, nd->fval[0], nd->out->grad, x->grad);
}

static gl_tensor *reduce(const char *op, gl_tensor *x, int axis, bool keepdim, bool mean) {
    x = gl_contiguous(x);
    axis = gl_axis(op, x, axis);
    int64_t outer, n, inner;
    split_axis(x, axis, &outer, &n, &inner);
    int shape[GL_MAX_DIMS], nd = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (d != axis) shape[nd++] = x->shape[d];
        else if (keepdim) shape[nd++] = 1;
    }
    float scale = mean ? (n > 0 ? 1.0f / (float)n : 0.0f) : 1.0f;
    gl_node *node;
    gl_tensor *y = gl_op_output(op, nd, shape, reduce_backward, &node, GL_INPUTS(x));
    if (node) {
        node->ival[0] = axis;
        node->fval[0] = scale;
    }
    GL_CALL(y->device, op, reduce_fwd, (size_t)outer, (size_t)n, (size_t)inner, scale, x->data, y->data);
    return y;
}

gl_tensor *gl_sum(gl_tensor *x, int axis, bool keepdim) { return reduce("sum", x, axis, keepdim, false); }
gl_tensor *gl_mean(gl_tensor *x, int axis, bool keepdim) { return reduce("mean", x, axis, keepdim, true); }

gl_tensor *gl_sum_all(gl_tensor *x) { return gl_sum(gl_reshape(x, GL_DIMS(-1)), 0, false); }
gl_tensor *gl_mean_all(gl_tensor *x) { return gl_mean(gl_reshape(x, GL_DIMS(-1)), 0, false); }
