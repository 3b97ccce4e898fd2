/* Elementwise ops: binary with broadcasting, scalar, and unary activations - forward and backward together. */
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "kernels_cuda.h"
#include "ops.h"

enum { PAR_CHUNK = 1 << 14 }; /* floats per OpenMP work item: large enough to amortise, small enough to balance */

/* ================================================================ binary, broadcasting */

typedef enum { OP_ADD, OP_SUB, OP_MUL, OP_DIV } binop;
static const char *const binop_names[] = {"add", "sub", "mul", "div"};

/* shapes padded on the left to 4 dims, and each input's strides in the output's index space (0 = broadcast) */
typedef struct {
    int shape[4];
    int64_t sa[4], sb[4];
} bcast;

static void bcast_plan(const char *op, const gl_tensor *a, const gl_tensor *b, int *out_ndim, int *out_shape,
                       bcast *p) {
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    *out_ndim = nd;
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
        p->sa[d] = (ia >= 0 && da == dout && dout != 1) ? a->stride[ia] : 0;
        p->sb[d] = (ib >= 0 && db == dout && dout != 1) ? b->stride[ib] : 0;
        if (d >= 4 - nd) out_shape[d - (4 - nd)] = dout;
    }
}

static inline float apply(binop op, float x, float y) {
    switch (op) {
    case OP_ADD: return x + y;
    case OP_SUB: return x - y;
    case OP_MUL: return x * y;
    default: return x / y;
    }
}

static void same_shape_forward(binop op, size_t n, const float *a, const float *b, float *out) {
    const gl_kernels *k = gl_kern();
    void (*f)(size_t, const float *, const float *, float *) =
        op == OP_ADD ? k->add : op == OP_SUB ? k->sub : op == OP_MUL ? k->mul : k->div;
#pragma omp parallel for schedule(static) if (n > 4 * PAR_CHUNK)
    for (size_t c = 0; c < n; c += PAR_CHUNK) f(n - c < PAR_CHUNK ? n - c : PAR_CHUNK, a + c, b + c, out + c);
}

/* On the CUDA device: add, of equal shapes or with b's shape a suffix of a's (rows of a plus b, as [B, T, C] +
 * [T, C]); backward adds the gradient to a and the column sums of its rows to b. */
static bool cuda_add_suffix(const gl_tensor *a, const gl_tensor *b) {
    if (b->ndim > a->ndim) return false;
    for (int d = 0; d < b->ndim; d++)
        if (b->shape[d] != a->shape[a->ndim - b->ndim + d]) return false;
    return true;
}

static void cuda_add_backward(gl_node *n) {
    gl_tensor *a = n->in[0], *b = n->in[1], *out = n->out;
    const gl_cuda_kernels *cu = gl_cu("add");
    if (a->requires_grad) cu->axpy((size_t)out->numel, 1.0f, out->grad, a->grad);
    if (b->requires_grad) {
        if (gl_same_shape(a, b)) cu->axpy((size_t)out->numel, 1.0f, out->grad, b->grad);
        else cu->bias_grad((size_t)(out->numel / (b->numel ? b->numel : 1)), (size_t)b->numel, out->grad, b->grad);
    }
}

static gl_tensor *cuda_add(gl_tensor *a, gl_tensor *b) {
    char sa[64], sb[64];
    if (!cuda_add_suffix(a, b))
        gl_fatal("add", "on the cuda device b's shape must equal a's or end it: %s + %s", gl_shape_str(a, sa, sizeof sa),
                 gl_shape_str(b, sb, sizeof sb));
    gl_node *node;
    gl_tensor *out = gl_op_output_any("add", a->ndim, a->shape, cuda_add_backward, &node, GL_INPUTS(a, b));
    const gl_cuda_kernels *cu = gl_cu("add");
    if (gl_same_shape(a, b)) cu->add((size_t)out->numel, a->data, b->data, out->data);
    else {
        cu->copy(out->data, a->data, (size_t)out->numel * sizeof(float));
        cu->add_bias((size_t)(out->numel / (b->numel ? b->numel : 1)), (size_t)b->numel, b->data, out->data);
    }
    return out;
}

static void binary_backward(gl_node *n) {
    binop op = (binop)n->ival[0];
    gl_tensor *a = n->in[0], *b = n->in[1], *out = n->out;
    const float *g = out->grad;
    float *ga = a->requires_grad ? a->grad : NULL, *gb = b->requires_grad ? b->grad : NULL;
    const gl_kernels *k = gl_kern();
    if (gl_same_shape(a, b)) {
        size_t cnt = (size_t)out->numel;
        if (ga) {
            if (op == OP_MUL) k->mul_acc(cnt, g, b->data, ga);
            else if (op == OP_DIV)
                for (size_t i = 0; i < cnt; i++) ga[i] += g[i] / b->data[i];
            else k->axpy(cnt, 1.0f, g, ga);
        }
        if (gb) {
            if (op == OP_MUL) k->mul_acc(cnt, g, a->data, gb);
            else if (op == OP_DIV)
                for (size_t i = 0; i < cnt; i++) gb[i] -= g[i] * out->data[i] / b->data[i];
            else k->axpy(cnt, op == OP_SUB ? -1.0f : 1.0f, g, gb);
        }
        return;
    }
    /* broadcast: walk the output once, adding each element's contribution where it came from */
    bcast p;
    int nd, shape[4];
    bcast_plan(binop_names[op], a, b, &nd, shape, &p);
    size_t idx = 0;
    for (int i0 = 0; i0 < p.shape[0]; i0++)
        for (int i1 = 0; i1 < p.shape[1]; i1++)
            for (int i2 = 0; i2 < p.shape[2]; i2++) {
                int64_t oa = i0 * p.sa[0] + i1 * p.sa[1] + i2 * p.sa[2];
                int64_t ob = i0 * p.sb[0] + i1 * p.sb[1] + i2 * p.sb[2];
                for (int i3 = 0; i3 < p.shape[3]; i3++, idx++) {
                    int64_t ea = oa + i3 * p.sa[3], eb = ob + i3 * p.sb[3];
                    float gi = g[idx], x = a->data[ea], y = b->data[eb];
                    switch (op) {
                    case OP_ADD:
                        if (ga) ga[ea] += gi;
                        if (gb) gb[eb] += gi;
                        break;
                    case OP_SUB:
                        if (ga) ga[ea] += gi;
                        if (gb) gb[eb] -= gi;
                        break;
                    case OP_MUL:
                        if (ga) ga[ea] += gi * y;
                        if (gb) gb[eb] += gi * x;
                        break;
                    case OP_DIV:
                        if (ga) ga[ea] += gi / y;
                        if (gb) gb[eb] -= gi * x / (y * y);
                        break;
                    }
                }
            }
}

static gl_tensor *binary(binop op, gl_tensor *a, gl_tensor *b) {
    a = gl_contiguous(a);
    b = gl_contiguous(b);
    if (op == OP_ADD && (a->device == GL_CUDA || b->device == GL_CUDA) && a->device == b->device) return cuda_add(a, b);
    bcast p;
    int nd, shape[4];
    bcast_plan(binop_names[op], a, b, &nd, shape, &p);
    gl_node *node;
    gl_tensor *out = gl_op_output(binop_names[op], nd, shape, binary_backward, &node, GL_INPUTS(a, b));
    if (node) node->ival[0] = op;
    if (gl_same_shape(a, b)) {
        same_shape_forward(op, (size_t)out->numel, a->data, b->data, out->data);
        return out;
    }
    const gl_kernels *k = gl_kern();
    float *o = out->data;
    for (int i0 = 0; i0 < p.shape[0]; i0++)
        for (int i1 = 0; i1 < p.shape[1]; i1++)
            for (int i2 = 0; i2 < p.shape[2]; i2++, o += p.shape[3]) {
                const float *ra = a->data + i0 * p.sa[0] + i1 * p.sa[1] + i2 * p.sa[2];
                const float *rb = b->data + i0 * p.sb[0] + i1 * p.sb[1] + i2 * p.sb[2];
                if (p.sa[3] == 1 && p.sb[3] == 1) { /* e.g. [M, N] + [N]: whole rows through the SIMD kernel */
                    (op == OP_ADD ? k->add : op == OP_SUB ? k->sub : op == OP_MUL ? k->mul : k->div)(
                        (size_t)p.shape[3], ra, rb, o);
                } else {
                    for (int i3 = 0; i3 < p.shape[3]; i3++) o[i3] = apply(op, ra[i3 * p.sa[3]], rb[i3 * p.sb[3]]);
                }
            }
    return out;
}

gl_tensor *gl_add(gl_tensor *a, gl_tensor *b) { return binary(OP_ADD, a, b); }
gl_tensor *gl_sub(gl_tensor *a, gl_tensor *b) { return binary(OP_SUB, a, b); }
gl_tensor *gl_mul(gl_tensor *a, gl_tensor *b) { return binary(OP_MUL, a, b); }
gl_tensor *gl_div(gl_tensor *a, gl_tensor *b) { return binary(OP_DIV, a, b); }

/* ================================================================ unary (and scalar) */

typedef enum { U_EXP, U_LOG, U_TANH, U_SIGMOID, U_LOG_SIGMOID, U_RELU, U_GELU, U_ADD_SCALAR, U_MUL_SCALAR } unop;
static const char *const unop_names[] = {"exp", "log", "tanh", "sigmoid", "log_sigmoid", "relu", "gelu", "add_scalar",
                                         "mul_scalar"};

static void unary_forward_chunk(unop op, float s, size_t n, const float *x, float *y) {
    const gl_kernels *k = gl_kern();
    switch (op) {
    case U_EXP: k->exp_fwd(n, x, y); break;
    case U_LOG:
        for (size_t i = 0; i < n; i++) y[i] = logf(x[i]);
        break;
    case U_TANH: k->tanh_fwd(n, x, y); break;
    case U_SIGMOID:
        for (size_t i = 0; i < n; i++) y[i] = 1.0f / (1.0f + expf(-x[i]));
        break;
    case U_LOG_SIGMOID: /* log s(x) = min(x, 0) - log(1 + e^-|x|): no overflow for any x */
        for (size_t i = 0; i < n; i++) y[i] = fminf(x[i], 0.0f) - log1pf(expf(-fabsf(x[i])));
        break;
    case U_RELU:
        for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
        break;
    case U_GELU: k->gelu_fwd(n, x, y); break;
    case U_ADD_SCALAR:
        for (size_t i = 0; i < n; i++) y[i] = x[i] + s;
        break;
    case U_MUL_SCALAR:
        for (size_t i = 0; i < n; i++) y[i] = x[i] * s;
        break;
    }
}

/* dx += dy * f'(x), written with whichever of x and y = f(x) gives the cheaper derivative */
static void unary_backward_chunk(unop op, float s, size_t n, const float *x, const float *y, const float *dy,
                                 float *dx) {
    const gl_kernels *k = gl_kern();
    switch (op) {
    case U_EXP: k->mul_acc(n, dy, y, dx); break;
    case U_LOG:
        for (size_t i = 0; i < n; i++) dx[i] += dy[i] / x[i];
        break;
    case U_TANH: k->tanh_bwd(n, y, dy, dx); break;
    case U_SIGMOID:
        for (size_t i = 0; i < n; i++) dx[i] += dy[i] * y[i] * (1.0f - y[i]);
        break;
    case U_LOG_SIGMOID: /* d/dx log s(x) = 1 - s(x) = 1 - e^y */
        for (size_t i = 0; i < n; i++) dx[i] += dy[i] * (1.0f - expf(y[i]));
        break;
    case U_RELU:
        for (size_t i = 0; i < n; i++) dx[i] += x[i] > 0.0f ? dy[i] : 0.0f;
        break;
    case U_GELU: k->gelu_bwd(n, x, dy, dx); break;
    case U_ADD_SCALAR: k->axpy(n, 1.0f, dy, dx); break;
    case U_MUL_SCALAR: k->axpy(n, s, dy, dx); break;
    }
}

static void unary_backward(gl_node *nd) {
    gl_tensor *x = nd->in[0], *y = nd->out;
    size_t n = (size_t)y->numel;
    if (y->device == GL_CUDA) { /* only gelu has a CUDA path (unary refuses the rest) */
        gl_cu("gelu")->gelu_bwd(n, x->data, y->grad, x->grad);
        return;
    }
#pragma omp parallel for schedule(static) if (n > 4 * PAR_CHUNK)
    for (size_t c = 0; c < n; c += PAR_CHUNK) {
        size_t m = n - c < PAR_CHUNK ? n - c : PAR_CHUNK;
        unary_backward_chunk((unop)nd->ival[0], nd->fval[0], m, x->data + c, y->data + c, y->grad + c, x->grad + c);
    }
}

static gl_tensor *unary(unop op, gl_tensor *x, float s) {
    x = gl_contiguous(x);
    gl_node *node;
    gl_tensor *y = (op == U_GELU ? gl_op_output_any : gl_op_output)(unop_names[op], x->ndim, x->shape, unary_backward,
                                                                    &node, GL_INPUTS(x));
    if (node) {
        node->ival[0] = op;
        node->fval[0] = s;
    }
    size_t n = (size_t)x->numel;
    if (y->device == GL_CUDA) {
        gl_cu("gelu")->gelu_fwd(n, x->data, y->data);
        return y;
    }
#pragma omp parallel for schedule(static) if (n > 4 * PAR_CHUNK)
    for (size_t c = 0; c < n; c += PAR_CHUNK)
        unary_forward_chunk(op, s, n - c < PAR_CHUNK ? n - c : PAR_CHUNK, x->data + c, y->data + c);
    return y;
}

gl_tensor *gl_exp(gl_tensor *x) { return unary(U_EXP, x, 0.0f); }
gl_tensor *gl_log(gl_tensor *x) { return unary(U_LOG, x, 0.0f); }
gl_tensor *gl_tanh(gl_tensor *x) { return unary(U_TANH, x, 0.0f); }
gl_tensor *gl_sigmoid(gl_tensor *x) { return unary(U_SIGMOID, x, 0.0f); }
gl_tensor *gl_log_sigmoid(gl_tensor *x) { return unary(U_LOG_SIGMOID, x, 0.0f); }
gl_tensor *gl_relu(gl_tensor *x) { return unary(U_RELU, x, 0.0f); }
gl_tensor *gl_gelu(gl_tensor *x) { return unary(U_GELU, x, 0.0f); }
gl_tensor *gl_add_scalar(gl_tensor *x, float s) { return unary(U_ADD_SCALAR, x, s); }
gl_tensor *gl_mul_scalar(gl_tensor *x, float s) { return unary(U_MUL_SCALAR, x, s); }
