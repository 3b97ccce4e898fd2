/* Elementwise ops: binary with broadcasting, scalar, and unary activations - forward and backward together. The
 * core plans the broadcast; the backends run it (a device may support only some plans: CUDA adds equal shapes and
 * row broadcasts, and has GELU alone among the unary ops). */
#include "op_impl.h"

/* ================================================================ binary, broadcasting */

static const char *const binop_names[] = {"add", "sub", "mul", "div"};

/* shapes padded on the left to 4 dims, and each input's strides in the output's index space (0 = broadcast) */
static void bcast_plan(const char *op, const gl_tensor *a, const gl_tensor *b, int *out_ndim, int *out_shape,
                       gl_bcast *p) {
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    *out_ndim = nd;
    p->n = 1;
    for (int d = 0; d < 4; d++) {
        int ia = d - (4 - a->ndim), ib = d - (4 - b->ndim);
        int da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
        if (da != db && da != 1 && db != 1) {
            char sa[64], sb[64];
            gl_fatal(op, "shapes %s and %s cannot be broadcast together", gl_shape_str(a, sa, sizeof sa),
                     gl_shape_str(b, sb, sizeof sb));
        }
        int dout = da > db ? da : db;
        p->shape[d] = dout;
        p->n *= dout;
        p->sa[d] = (ia >= 0 && da == dout && dout != 1) ? a->stride[ia] : 0;
        p->sb[d] = (ib >= 0 && db == dout && dout != 1) ? b->stride[ib] : 0;
        if (d >= 4 - nd) out_shape[d - (4 - nd)] = dout;
    }
    p->nb = b->numel;
    p->same = gl_same_shape(a, b);
    /* b's shape ends a's and a is the output: rows of a plus b ([B, T, C] + [T, C]) */
    p->rows = !p->same && b->ndim <= a->ndim && a->numel == p->n;
    for (int d = 0; p->rows && d < b->ndim; d++) p->rows = b->shape[d] == a->shape[a->ndim - b->ndim + d];
}

static void binary_backward(gl_node *n) {
    gl_tensor *a = n->in[0], *b = n->in[1], *out = n->out;
    gl_bcast p;
    int nd, shape[4];
    bcast_plan(n->op, a, b, &nd, shape, &p);
    if (!GL_CALL(out->device, n->op, binary_bwd, n->ival[0], &p, a->data, b->data, out->data, out->grad,
                 a->requires_grad ? a->grad : NULL, b->requires_grad ? b->grad : NULL))
        gl_op_unsupported(n->op, out->device, "the backward of this broadcast");
}

static gl_tensor *binary(gl_binop op, gl_tensor *a, gl_tensor *b) {
    a = gl_contiguous(a);
    b = gl_contiguous(b);
    gl_bcast p;
    int nd, shape[4];
    bcast_plan(binop_names[op], a, b, &nd, shape, &p);
    gl_node *node;
    gl_tensor *out = gl_op_output(binop_names[op], nd, shape, binary_backward, &node, GL_INPUTS(a, b));
    if (node) node->ival[0] = op;
    if (!GL_CALL(out->device, binop_names[op], binary_fwd, op, &p, a->data, b->data, out->data))
        gl_op_unsupported(binop_names[op], out->device, "this broadcast (equal shapes, or b repeated over rows of a)");
    return out;
}

gl_tensor *gl_add(gl_tensor *a, gl_tensor *b) { return binary(GL_BIN_ADD, a, b); }
gl_tensor *gl_sub(gl_tensor *a, gl_tensor *b) { return binary(GL_BIN_SUB, a, b); }
gl_tensor *gl_mul(gl_tensor *a, gl_tensor *b) { return binary(GL_BIN_MUL, a, b); }
gl_tensor *gl_div(gl_tensor *a, gl_tensor *b) { return binary(GL_BIN_DIV, a, b); }

/* ================================================================ unary (and scalar) */

static const char *const unop_names[] = {"exp", "log", "tanh", "sigmoid", "log_sigmoid", "relu", "gelu", "add_scalar",
                                         "mul_scalar", "gelu_erf"};

static void unary_backward(gl_node *nd) {
    gl_tensor *x = nd->in[0], *y = nd->out;
    if (!GL_CALL(y->device, nd->op, unary_bwd, nd->ival[0], nd->fval[0], (size_t)y->numel, x->data, y->data, y->grad,
                 x->grad))
        gl_op_unsupported(nd->op, y->device, "its backward");
}

static gl_tensor *unary(gl_unop op, gl_tensor *x, float s) {
    x = gl_contiguous(x);
    gl_node *node;
    gl_tensor *y = gl_op_output(unop_names[op], x->ndim, x->shape, unary_backward, &node, GL_INPUTS(x));
    if (node) {
        node->ival[0] = op;
        node->fval[0] = s;
    }
    if (!GL_CALL(y->device, unop_names[op], unary_fwd, op, s, (size_t)x->numel, x->data, y->data))
        gl_op_unsupported(unop_names[op], y->device, "this activation");
    return y;
}

gl_tensor *gl_exp(gl_tensor *x) { return unary(GL_UN_EXP, x, 0.0f); }
gl_tensor *gl_log(gl_tensor *x) { return unary(GL_UN_LOG, x, 0.0f); }
gl_tensor *gl_tanh(gl_tensor *x) { return unary(GL_UN_TANH, x, 0.0f); }
gl_tensor *gl_sigmoid(gl_tensor *x) { return unary(GL_UN_SIGMOID, x, 0.0f); }
gl_tensor *gl_log_sigmoid(gl_tensor *x) { return unary(GL_UN_LOG_SIGMOID, x, 0.0f); }
gl_tensor *gl_relu(gl_tensor *x) { return unary(GL_UN_RELU, x, 0.0f); }
gl_tensor *gl_gelu(gl_tensor *x) { return unary(GL_UN_GELU, x, 0.0f); }
gl_tensor *gl_gelu_erf(gl_tensor *x) { return unary(GL_UN_GELU_ERF, x, 0.0f); }
gl_tensor *gl_add_scalar(gl_tensor *x, float s) { return unary(GL_UN_ADD_SCALAR, x, s); }
gl_tensor *gl_mul_scalar(gl_tensor *x, float s) { return unary(GL_UN_MUL_SCALAR, x, s); }
