/* The CPU backend: every slot of kernels/backend.h as a loop nest over float pointers, built on the SIMD building
 * blocks of the active level (gl_kern()) and the GEMM. Row loops run under OpenMP; every sum that crosses rows
 * runs in a fixed order, so results are bitwise the same for any thread count. Per-thread scratch comes from
 * gl_kernel_scratch (slots 4-7: attention maps, flash tiles, and two for the calling thread). */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "kernels.h"

enum { PAR_CHUNK = 1 << 14 }; /* floats per OpenMP work item in elementwise loops */
enum { SCRATCH_MAP = 4, SCRATCH_TILE = 5, SCRATCH_A = 6, SCRATCH_B = 7 };

/* ================================================================ memory: the host's */

static int cpu_available(void) { return 1; }
static void *cpu_alloc(size_t bytes) { return aligned_alloc(64, ((bytes ? bytes : 1) + 63) & ~(size_t)63); }
static void cpu_free(void *p) { free(p); }
static void cpu_copy(void *dst, const void *src, size_t bytes) {
    if (bytes) memcpy(dst, src, bytes);
}
static void cpu_zero(void *p, size_t bytes) {
    if (bytes) memset(p, 0, bytes);
}
static void cpu_synchronize(void) {}

/* ================================================================ elementwise */

static void (*binop_kernel(int op))(size_t, const float *, const float *, float *) {
    const gl_kernels *k = gl_kern();
    return op == GL_BIN_ADD ? k->add : op == GL_BIN_SUB ? k->sub : op == GL_BIN_MUL ? k->mul : k->div;
}

static inline float apply(int op, float x, float y) {
    switch (op) {
    case GL_BIN_ADD: return x + y;
    case GL_BIN_SUB: return x - y;
    case GL_BIN_MUL: return x * y;
    default: return x / y;
    }
}

static bool cpu_binary_fwd(int op, const gl_bcast *p, const float *a, const float *b, float *out) {
    void (*f)(size_t, const float *, const float *, float *) = binop_kernel(op);
    if (p->same) {
        size_t n = (size_t)p->n;
#pragma omp parallel for schedule(static) if (n > 4 * PAR_CHUNK)
        for (size_t c = 0; c < n; c += PAR_CHUNK) f(n - c < PAR_CHUNK ? n - c : PAR_CHUNK, a + c, b + c, out + c);
        return true;
    }
    float *o = out;
    for (int i0 = 0; i0 < p->shape[0]; i0++)
        for (int i1 = 0; i1 < p->shape[1]; i1++)
            for (int i2 = 0; i2 < p->shape[2]; i2++, o += p->shape[3]) {
                const float *ra = a + i0 * p->sa[0] + i1 * p->sa[1] + i2 * p->sa[2];
                const float *rb = b + i0 * p->sb[0] + i1 * p->sb[1] + i2 * p->sb[2];
                if (p->sa[3] == 1 && p->sb[3] == 1) f((size_t)p->shape[3], ra, rb, o); /* whole rows, SIMD */
                else
                    for (int i3 = 0; i3 < p->shape[3]; i3++) o[i3] = apply(op, ra[i3 * p->sa[3]], rb[i3 * p->sb[3]]);
            }
    return true;
}

static bool cpu_binary_bwd(int op, const gl_bcast *p, const float *a, const float *b, const float *out,
                           const float *g, float *ga, float *gb) {
    const gl_kernels *k = gl_kern();
    if (p->same) {
        size_t cnt = (size_t)p->n;
        if (ga) {
            if (op == GL_BIN_MUL) k->mul_acc(cnt, g, b, ga);
            else if (op == GL_BIN_DIV)
                for (size_t i = 0; i < cnt; i++) ga[i] += g[i] / b[i];
            else k->axpy(cnt, 1.0f, g, ga);
        }
        if (gb) {
            if (op == GL_BIN_MUL) k->mul_acc(cnt, g, a, gb);
            else if (op == GL_BIN_DIV)
                for (size_t i = 0; i < cnt; i++) gb[i] -= g[i] * out[i] / b[i];
            else k->axpy(cnt, op == GL_BIN_SUB ? -1.0f : 1.0f, g, gb);
        }
        return true;
    }
    /* broadcast: walk the output once, adding each element's contribution where it came from */
    size_t idx = 0;
    for (int i0 = 0; i0 < p->shape[0]; i0++)
        for (int i1 = 0; i1 < p->shape[1]; i1++)
            for (int i2 = 0; i2 < p->shape[2]; i2++) {
                int64_t oa = i0 * p->sa[0] + i1 * p->sa[1] + i2 * p->sa[2];
                int64_t ob = i0 * p->sb[0] + i1 * p->sb[1] + i2 * p->sb[2];
                for (int i3 = 0; i3 < p->shape[3]; i3++, idx++) {
                    int64_t ea = oa + i3 * p->sa[3], eb = ob + i3 * p->sb[3];
                    float gi = g[idx], x = a[ea], y = b[eb];
                    switch (op) {
                    case GL_BIN_ADD:
                        if (ga) ga[ea] += gi;
                        if (gb) gb[eb] += gi;
                        break;
                    case GL_BIN_SUB:
                        if (ga) ga[ea] += gi;
                        if (gb) gb[eb] -= gi;
                        break;
                    case GL_BIN_MUL:
                        if (ga) ga[ea] += gi * y;
                        if (gb) gb[eb] += gi * x;
                        break;
                    case GL_BIN_DIV:
                        if (ga) ga[ea] += gi / y;
                        if (gb) gb[eb] -= gi * x / (y * y);
                        break;
                    }
                }
            }
    return true;
}

static void unary_forward_chunk(int op, float s, size_t n, const float *x, float *y) {
    const gl_kernels *k = gl_kern();
    switch (op) {
    case GL_UN_EXP: k->exp_fwd(n, x, y); break;
    case GL_UN_LOG:
        for (size_t i = 0; i < n; i++) y[i] = logf(x[i]);
        break;
    case GL_UN_TANH: k->tanh_fwd(n, x, y); break;
    case GL_UN_SIGMOID:
        for (size_t i = 0; i < n; i++) y[i] = 1.0f / (1.0f + expf(-x[i]));
        break;
    case GL_UN_LOG_SIGMOID: /* log s(x) = min(x, 0) - log(1 + e^-|x|): no overflow for any x */
        for (size_t i = 0; i < n; i++) y[i] = fminf(x[i], 0.0f) - log1pf(expf(-fabsf(x[i])));
        break;
    case GL_UN_RELU:
        for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
        break;
    case GL_UN_GELU: k->gelu_fwd(n, x, y); break;
    case GL_UN_ADD_SCALAR:
        for (size_t i = 0; i < n; i++) y[i] = x[i] + s;
        break;
    case GL_UN_MUL_SCALAR:
        for (size_t i = 0; i < n; i++) y[i] = x[i] * s;
        break;
    case GL_UN_GELU_ERF: /* BERT's exact GELU: x Phi(x) */
        for (size_t i = 0; i < n; i++) y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
        break;
    }
}

/* dx += dy * f'(x), written with whichever of x and y = f(x) gives the cheaper derivative */
static void unary_backward_chunk(int op, float s, size_t n, const float *x, const float *y, const float *dy,
                                 float *dx) {
    const gl_kernels *k = gl_kern();
    switch (op) {
    case GL_UN_EXP: k->mul_acc(n, dy, y, dx); break;
    case GL_UN_LOG:
        for (size_t i = 0; i < n; i++) dx[i] += dy[i] / x[i];
        break;
    case GL_UN_TANH: k->tanh_bwd(n, y, dy, dx); break;
    case GL_UN_SIGMOID:
        for (size_t i = 0; i < n; i++) dx[i] += dy[i] * y[i] * (1.0f - y[i]);
        break;
    case GL_UN_LOG_SIGMOID: /* d/dx log s(x) = 1 - s(x) = 1 - e^y */
        for (size_t i = 0; i < n; i++) dx[i] += dy[i] * (1.0f - expf(y[i]));
        break;
    case GL_UN_RELU:
        for (size_t i = 0; i < n; i++) dx[i] += x[i] > 0.0f ? dy[i] : 0.0f;
        break;
    case GL_UN_GELU: k->gelu_bwd(n, x, dy, dx); break;
    case GL_UN_ADD_SCALAR: k->axpy(n, 1.0f, dy, dx); break;
    case GL_UN_MUL_SCALAR: k->axpy(n, s, dy, dx); break;
    case GL_UN_GELU_ERF: /* Phi(x) + x phi(x) */
        for (size_t i = 0; i < n; i++) {
            float v = x[i];
            dx[i] += dy[i] * (0.5f * (1.0f + erff(v * 0.70710678118654752f)) + v * 0.39894228040143268f * expf(-0.5f * v * v));
        }
        break;
    }
}

static bool cpu_unary_fwd(int op, float s, size_t n, const float *x, float *y) {
#pragma omp parallel for schedule(static) if (n > 4 * PAR_CHUNK)
    for (size_t c = 0; c < n; c += PAR_CHUNK) unary_forward_chunk(op, s, n - c < PAR_CHUNK ? n - c : PAR_CHUNK, x + c, y + c);
    return true;
}

static bool cpu_unary_bwd(int op, float s, size_t n, const float *x, const float *y, const float *dy, float *dx) {
#pragma omp parallel for schedule(static) if (n > 4 * PAR_CHUNK)
    for (size_t c = 0; c < n; c += PAR_CHUNK)
        unary_backward_chunk(op, s, n - c < PAR_CHUNK ? n - c : PAR_CHUNK, x + c, y + c, dy + c, dx + c);
    return true;
}

static void cpu_mul(size_t n, const float *a, const float *b, float *out) { gl_kern()->mul(n, a, b, out); }
static void cpu_mul_acc(size_t n, const float *a, const float *b, float *y) { gl_kern()->mul_acc(n, a, b, y); }
static void cpu_axpy(size_t n, float alpha, const float *x, float *y) { gl_kern()->axpy(n, alpha, x, y); }
static void cpu_scale(size_t n, float factor, float *x) {
    for (size_t j = 0; j < n; j++) x[j] *= factor;
}

static void cpu_axpy_rows(size_t rows, size_t width, float alpha, const float *x, size_t ldx, float *y, size_t ldy) {
    const gl_kernels *k = gl_kern();
    for (size_t r = 0; r < rows; r++) k->axpy(width, alpha, x + r * ldx, y + r * ldy);
}

static void cpu_copy_rows(size_t rows, size_t width, const float *x, size_t ldx, float *y, size_t ldy) {
    for (size_t r = 0; r < rows; r++) memcpy(y + r * ldy, x + r * ldx, width * sizeof(float));
}

static void strided_walk(int ndim, const int *shape_in, const int64_t *stride_in, float *strided, float *dense,
                         bool gather) {
    int shape[4] = {1, 1, 1, 1};
    int64_t st[4] = {0, 0, 0, 0};
    for (int d = 0; d < ndim; d++) {
        shape[4 - ndim + d] = shape_in[d];
        st[4 - ndim + d] = stride_in[d];
    }
    int64_t i = 0;
    for (int a = 0; a < shape[0]; a++)
        for (int b = 0; b < shape[1]; b++)
            for (int c = 0; c < shape[2]; c++)
                for (int d = 0; d < shape[3]; d++, i++) {
                    int64_t off = a * st[0] + b * st[1] + c * st[2] + d * st[3];
                    if (gather) dense[i] = strided[off];
                    else strided[off] += dense[i];
                }
}

static void cpu_gather(int ndim, const int *shape, const int64_t *stride, const float *strided, float *dense) {
    strided_walk(ndim, shape, stride, (float *)strided, dense, true);
}
static void cpu_scatter_add(int ndim, const int *shape, const int64_t *stride, const float *dense, float *strided) {
    strided_walk(ndim, shape, stride, strided, (float *)dense, false);
}

/* ================================================================ reductions */

static void cpu_reduce_fwd(size_t outer, size_t n, size_t inner, float scale, const float *x, float *y) {
    if (inner == 1) { /* reducing contiguous rows: accumulate in double so long rows keep their precision */
#pragma omp parallel for schedule(static) if (outer * n > (1 << 16))
        for (size_t o = 0; o < outer; o++) {
            double s = 0.0;
            const float *row = x + o * n;
            for (size_t j = 0; j < n; j++) s += row[j];
            y[o] = (float)(s * scale);
        }
        return;
    }
    const gl_kernels *k = gl_kern();
    memset(y, 0, outer * inner * sizeof(float));
    for (size_t o = 0; o < outer; o++)
        for (size_t j = 0; j < n; j++) k->axpy(inner, 1.0f, x + (o * n + j) * inner, y + o * inner);
    if (scale != 1.0f)
        for (size_t i = 0; i < outer * inner; i++) y[i] *= scale;
}

static void cpu_reduce_bwd(size_t outer, size_t n, size_t inner, float scale, const float *dy, float *dx) {
    const gl_kernels *k = gl_kern();
    for (size_t o = 0; o < outer; o++)
        for (size_t j = 0; j < n; j++) k->axpy(inner, scale, dy + o * inner, dx + (o * n + j) * inner);
}

/* ================================================================ softmax, cross-entropy, layernorm, embedding */

static float row_logsumexp(const float *x, size_t n) {
    float mx = -INFINITY;
    for (size_t j = 0; j < n; j++) mx = x[j] > mx ? x[j] : mx;
    float s = 0.0f;
    for (size_t j = 0; j < n; j++) s += expf(x[j] - mx);
    return mx + logf(s);
}

static void cpu_softmax_fwd(size_t rows, size_t n, bool log_form, const float *x, float *y) {
    const gl_kernels *k = gl_kern();
#pragma omp parallel for schedule(static) if (rows * n > (1 << 15))
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * n;
        float *yr = y + r * n;
        if (!log_form) {
            k->softmax_rows(1, n, xr, yr);
            continue;
        }
        float lse = row_logsumexp(xr, n);
        for (size_t j = 0; j < n; j++) yr[j] = xr[j] - lse;
    }
}

/* softmax:      dx = y * (dy - sum(dy * y))
 * log_softmax:  y = x - logsumexp(x),  dx = dy - exp(y) * sum(dy) */
static void cpu_softmax_bwd(size_t rows, size_t n, bool log_form, const float *y, const float *dy_all, float *dx_all) {
#pragma omp parallel for schedule(static) if (rows * n > (1 << 15))
    for (size_t r = 0; r < rows; r++) {
        const float *yr = y + r * n, *dy = dy_all + r * n;
        float *dx = dx_all + r * n;
        /* BEGIN SOLUTION lab04: softmax's backward for one row: dx += y (dy - sum(dy y)); for log_softmax dx += dy - exp(y) sum(dy) */
        float s = 0.0f;
        for (size_t j = 0; j < n; j++) s += log_form ? dy[j] : dy[j] * yr[j];
        for (size_t j = 0; j < n; j++) dx[j] += log_form ? dy[j] - expf(yr[j]) * s : yr[j] * (dy[j] - s);
        /* END SOLUTION */
    }
}

/* dx += g * (softmax(x) - onehot(target)) for one row, softmax from its log-sum-exp: the gradient of
 * -log softmax(x)[target] scaled by g (cross-entropy), or of +log softmax with g negated (token_logprob) */
static void add_softmax_minus_onehot(const float *xr, float lse, size_t V, int target, float g, float *dx) {
    for (size_t j = 0; j < V; j++) dx[j] += g * expf(xr[j] - lse);
    dx[target] -= g;
}

static void cpu_cross_entropy_fwd(size_t rows, size_t V, const float *x, const int32_t *targets, int ignore,
                                  int n_valid, float *lse, float *loss) {
    float *row_loss = gl_kernel_scratch(SCRATCH_A, rows);
#pragma omp parallel for schedule(static) if (rows * V > (1 << 15))
    for (size_t r = 0; r < rows; r++) {
        if (targets[r] == ignore) {
            row_loss[r] = 0.0f;
            continue;
        }
        const float *xr = x + r * V;
        lse[r] = row_logsumexp(xr, V);
        row_loss[r] = lse[r] - xr[targets[r]];
    }
    double total = 0.0; /* summed in row order: the same bits for any thread count */
    for (size_t r = 0; r < rows; r++) total += row_loss[r];
    *loss = n_valid ? (float)(total / n_valid) : 0.0f;
}

static void cpu_cross_entropy_bwd(size_t rows, size_t V, const float *x, const int32_t *targets, int ignore,
                                  int n_valid, const float *lse, const float *dloss, float *dx) {
    if (n_valid == 0) return;
    float g = *dloss / (float)n_valid;
#pragma omp parallel for schedule(static) if (rows * V > (1 << 15))
    for (size_t r = 0; r < rows; r++)
        if (targets[r] != ignore) add_softmax_minus_onehot(x + r * V, lse[r], V, targets[r], g, dx + r * V);
}

static void cpu_token_logprob_fwd(size_t rows, size_t V, const float *x, const int32_t *targets, int ignore,
                                  float *lse, float *y) {
#pragma omp parallel for schedule(static) if (rows * V > (1 << 15))
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * V;
        lse[r] = row_logsumexp(xr, V);
        y[r] = targets[r] == ignore ? 0.0f : xr[targets[r]] - lse[r];
    }
}

static void cpu_token_logprob_bwd(size_t rows, size_t V, const float *x, const int32_t *targets, int ignore,
                                  const float *lse, const float *dy, float *dx) {
#pragma omp parallel for schedule(static) if (rows * V > (1 << 15))
    for (size_t r = 0; r < rows; r++)
        if (targets[r] != ignore) add_softmax_minus_onehot(x + r * V, lse[r], V, targets[r], -dy[r], dx + r * V);
}

static void cpu_layernorm_fwd(size_t rows, size_t C, const float *x, const float *w, const float *b, float eps,
                              float *y, float *mean, float *rstd) {
    const gl_kernels *k = gl_kern();
#pragma omp parallel for schedule(static) if (rows * C > (1 << 15))
    for (size_t r = 0; r < rows; r++) k->layernorm_rows(1, C, x + r * C, w, b, eps, y + r * C, mean + r, rstd + r);
}

/* With n = (x - mean) * rstd and dn = dy * w:
 *   dx = rstd * (dn - mean(dn) - n * mean(dn * n)),  dw = sum_rows dy * n,  db = sum_rows dy */
static void cpu_layernorm_bwd(size_t rows, size_t C, const float *x, const float *w, const float *mean,
                              const float *rstd, const float *dy_all, float *dx_all, float *dw, float *db) {
    if (dx_all) {
#pragma omp parallel for schedule(static) if (rows * C > (1 << 15))
        for (size_t r = 0; r < rows; r++) {
            const float *xr = x + r * C, *dy = dy_all + r * C;
            float *dx = dx_all + r * C;
            float m = mean[r], s = rstd[r];
            float dn_mean = 0.0f, dn_n_mean = 0.0f;
            for (size_t j = 0; j < C; j++) {
                float dn = w ? dy[j] * w[j] : dy[j];
                dn_mean += dn;
                dn_n_mean += dn * (xr[j] - m) * s;
            }
            dn_mean /= (float)C;
            dn_n_mean /= (float)C;
            for (size_t j = 0; j < C; j++) {
                float dn = w ? dy[j] * w[j] : dy[j];
                dx[j] += s * (dn - dn_mean - (xr[j] - m) * s * dn_n_mean);
            }
        }
    }
    if (!dw && !db) return;
    for (size_t r = 0; r < rows; r++) { /* rows in order: deterministic sums */
        const float *xr = x + r * C, *dy = dy_all + r * C;
        float m = mean[r], s = rstd[r];
        if (dw)
            for (size_t j = 0; j < C; j++) dw[j] += dy[j] * (xr[j] - m) * s;
        if (db)
            for (size_t j = 0; j < C; j++) db[j] += dy[j];
    }
}

static void cpu_embedding_fwd(size_t n, size_t C, const int32_t *ids, const float *weight, float *out) {
    for (size_t i = 0; i < n; i++) memcpy(out + i * C, weight + (size_t)ids[i] * C, C * sizeof(float));
}

static void cpu_embedding_bwd(size_t n, size_t C, const int32_t *ids, const float *dout, float *dweight) {
    const gl_kernels *k = gl_kern();
    for (size_t i = 0; i < n; i++) k->axpy(C, 1.0f, dout + i * C, dweight + (size_t)ids[i] * C);
}

/* ================================================================ matrix products */

static void bias_rows(int rows, int N, const float *bias, float *y) {
    for (int r = 0; r < rows; r++) memcpy(y + (size_t)r * N, bias, (size_t)N * sizeof(float));
}

static void bias_grad_rows(int rows, int N, const float *dy, float *db) { /* rows in order */
    const gl_kernels *k = gl_kern();
    for (int r = 0; r < rows; r++) k->axpy((size_t)N, 1.0f, dy + (size_t)r * N, db);
}

/* the bias is folded into the GEMM's C (beta = 1) */
static void cpu_linear_fwd(int rows, int N, int K, int tw, int ldw, const float *x, const float *w, const float *bias,
                           float *y) {
    if (bias) bias_rows(rows, N, bias, y);
    gl_gemm(0, tw, rows, N, K, 1.0f, x, K, w, ldw, bias ? 1.0f : 0.0f, y, N);
}

static void cpu_linear_bwd(int rows, int N, int K, int tw, int ldw, const float *x, const float *w, const float *dy,
                           float *dx, float *dw, float *db) {
    if (dx) gl_gemm(0, !tw, rows, K, N, 1.0f, dy, N, w, ldw, 1.0f, dx, K); /* dX += dY op(W)^T */
    if (dw) {
        if (!tw) gl_gemm(1, 0, K, N, rows, 1.0f, x, K, dy, N, 1.0f, dw, ldw); /* dW (K x N) += X^T dY */
        else gl_gemm(1, 0, N, K, rows, 1.0f, dy, N, x, K, 1.0f, dw, ldw);    /* W stored N x K: dW += dY^T X */
    }
    if (db) bias_grad_rows(rows, N, dy, db);
}

static void cpu_linear_nf4_fwd(int rows, int N, int K, const float *x, const gl_nf4 *w, const float *bias, float *y) {
    if (bias) bias_rows(rows, N, bias, y);
    gl_gemm_nf4(0, 0, rows, N, K, 1.0f, x, K, w, bias ? 1.0f : 0.0f, y, N);
}

static void cpu_linear_nf4_bwd(int rows, int N, int K, const gl_nf4 *w, const float *dy, float *dx, float *db) {
    if (dx) gl_gemm_nf4(0, 1, rows, K, N, 1.0f, dy, N, w, 1.0f, dx, K); /* dX += dY W^T: W read stored-transposed */
    if (db) bias_grad_rows(rows, N, dy, db);
}

static void cpu_linear_q_fwd(int type, const void *w, int N, int K, const float *x, int M, float *y) {
    gl_matmul_q((gl_qtype)type, w, N, K, x, M, y);
}

static void cpu_linear_q_bwd(int type, const void *w, int N, int K, const float *dy, int M, float *dx) {
    float *row = gl_kernel_scratch(SCRATCH_A, (size_t)K);
    size_t row_bytes = gl_qtype_row_bytes((gl_qtype)type, K);
    const gl_kernels *k = gl_kern();
    for (int n = 0; n < N; n++) { /* dx[m] += sum_n dy[m, n] W[n] */
        gl_dequantize_row((gl_qtype)type, (const uint8_t *)w + (size_t)n * row_bytes, row, K);
        for (int m = 0; m < M; m++) k->axpy((size_t)K, dy[(size_t)m * N + n], row, dx + (size_t)m * K);
    }
}

static void cpu_embedding_q(int type, const void *table, int C, const int32_t *ids, int n, float *out) {
    size_t row_bytes = gl_qtype_row_bytes((gl_qtype)type, C);
    for (int i = 0; i < n; i++)
        gl_dequantize_row((gl_qtype)type, (const uint8_t *)table + (size_t)ids[i] * row_bytes, out + (size_t)i * C, C);
}

/* ================================================================ attention
 * Each (batch, head) pair is independent: OpenMP runs over the pairs and each does its small GEMMs on one thread,
 * reading q, k and v in place inside qkv through a leading dimension of 3C (no copies).
 *   S = q k^T / sqrt(hs);  P = softmax over j <= i of S;  out = P v
 * Backward, with dP = dout v^T and dS = P * (dP - rowsum(P * dP)):
 *   dv += P^T dout,  dq += dS k / sqrt(hs),  dk += dS^T q / sqrt(hs)
 * Queries go in blocks of ROWS: block [i0, i1) only meets keys [0, i1), so the GEMMs skip most of the masked upper
 * triangle (at T = 256, 62% of the full T x T work is done instead of 100%). */
enum { ROWS = 64 };

static void cpu_attention_naive_fwd(int B, int T, int C, int H, bool causal, const float *qkv, float *out,
                                    float *P_all) {
    int hs = C / H, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    const gl_kernels *kern = gl_kern();
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H;
        /* kept for backward, or one T x T map per thread for inference */
        float *P = P_all ? P_all + (size_t)bh * T * T : gl_kernel_scratch(SCRATCH_MAP, (size_t)T * T);
        const float *base = qkv + (size_t)b * T * C3;
        const float *q = base + h * hs, *k = base + C + h * hs, *v = base + 2 * C + h * hs;
        float *o = out + (size_t)b * T * C + h * hs;
        for (int i0 = 0; i0 < T; i0 += ROWS) {
            int i1 = i0 + ROWS < T ? i0 + ROWS : T, m = i1 - i0, kn = causal ? i1 : T; /* keys [0, kn) */
            float *S = P + (size_t)i0 * T;
            gl_gemm(0, 1, m, kn, hs, scale, q + (size_t)i0 * C3, C3, k, C3, 0.0f, S, T); /* S = q k^T * scale */
            for (int i = i0; i < i1; i++) {
                float *row = P + (size_t)i * T;
                int seen = causal ? i + 1 : T; /* the causal mask: keys 0..i only */
                kern->softmax_rows(1, (size_t)seen, row, row);
                memset(row + seen, 0, (size_t)(kn - seen) * sizeof(float));
            }
            gl_gemm(0, 0, m, hs, kn, 1.0f, S, T, v, C3, 0.0f, o + (size_t)i0 * C, C); /* out = P v */
        }
    }
}

static void cpu_attention_naive_bwd(int B, int T, int C, int H, bool causal, const float *qkv, const float *P_all,
                                    const float *dout_all, float *dqkv) {
    int hs = C / H, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    const gl_kernels *kern = gl_kern();
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H;
        const float *P = P_all + (size_t)bh * T * T;
        float *dP = gl_kernel_scratch(SCRATCH_MAP, (size_t)T * T); /* one T x T scratch per thread */
        const float *base = qkv + (size_t)b * T * C3;
        float *gbase = dqkv + (size_t)b * T * C3;
        const float *q = base + h * hs, *k = base + C + h * hs, *v = base + 2 * C + h * hs;
        float *dq = gbase + h * hs, *dk = gbase + C + h * hs, *dv = gbase + 2 * C + h * hs;
        const float *dout = dout_all + (size_t)b * T * C + h * hs;
        for (int i0 = 0; i0 < T; i0 += ROWS) {
            int i1 = i0 + ROWS < T ? i0 + ROWS : T, m = i1 - i0, kn = causal ? i1 : T; /* rows see keys [0, kn) */
            const float *Pb = P + (size_t)i0 * T;
            float *dS = dP + (size_t)i0 * T;
            gl_gemm(0, 1, m, kn, hs, 1.0f, dout + (size_t)i0 * C, C, v, C3, 0.0f, dS, T); /* dP = dout v^T */
            gl_gemm(1, 0, kn, hs, m, 1.0f, Pb, T, dout + (size_t)i0 * C, C, 1.0f, dv, C3); /* dv += P^T dout */
            for (int i = i0; i < i1; i++) { /* dS in place of dP */
                const float *p = P + (size_t)i * T;
                float *g = dP + (size_t)i * T;
                int seen = causal ? i + 1 : T;
                kern->dsoftmax((size_t)seen, p, kern->dot((size_t)seen, p, g), g);
                if (seen < kn) memset(g + seen, 0, (size_t)(kn - seen) * sizeof(float));
            }
            gl_gemm(0, 0, m, hs, kn, scale, dS, T, k, C3, 1.0f, dq + (size_t)i0 * C3, C3); /* dq += dS k */
            gl_gemm(1, 0, kn, hs, m, scale, dS, T, q + (size_t)i0 * C3, C3, 1.0f, dk, C3); /* dk += dS^T q */
        }
    }
}

/* Flash attention: tiled over query tiles of BR rows and key tiles of BC columns with the online-softmax
 * recurrence: per query row a running max m, a running sum l and an unnormalised output o; a new key tile rescales
 * them by exp(m_old - m_new). No T x T buffer exists: each thread holds one BR x BC tile. The forward saves only
 * the per-row log-sum-exp L = m + log(l); the backward recomputes P = exp(S - L) tile by tile (FlashAttention-2):
 *   D = rowsum(dout * out);  dv += P^T dout;  dP = dout v^T;  dS = P * (dP - D);
 *   dq += dS k * scale;  dk += dS^T q * scale
 * The tiles' products call the GEMM micro-kernel directly: each head's q, k, v (and dout) are packed once into the
 * GEMM's panel layouts (gl_gemm_pack_a/b), not once per tile pair, and the causal mask is applied at the grain of
 * one micro-tile: a group of MR query rows only meets the keys it can see, rounded up to NR. OpenMP runs over
 * (batch, head) pairs; each head's sums run in a fixed order, so results do not depend on the thread count. */
enum { FLASH_BR = 112, FLASH_BC = 256 }; /* rounded down to whole micro-tiles; 56-224 x 128-512 ran alike */

static int round_up_to(int x, int m) { return (x + m - 1) / m * m; }

/* op(B) (K x N) as consecutive panels of nr columns: the panel of columns j0.. starts at dst + j0 * K */
static void pack_b_all(int nr, int trans, const float *B, int ldb, int K, int N, float *dst) {
    for (int j0 = 0; j0 < N; j0 += nr) gl_gemm_pack_b(nr, trans, B, ldb, 0, K, j0, N - j0 < nr ? N - j0 : nr, dst + (size_t)j0 * K);
}

/* scratch carving: consecutive buffers, each rounded to 16 floats so that all start on a cache line */
static float *carve(float **at, size_t floats) {
    float *p = *at;
    *at += (floats + 15) / 16 * 16;
    return p;
}

/* the keys [j0, j0 + seen) of a key tile of nc that query rows up to `last` can see */
static int keys_seen(bool causal, int j0, int nc, int last) {
    int seen = causal ? last - j0 + 1 : nc;
    return seen < 0 ? 0 : seen > nc ? nc : seen;
}

/* the same for the micro-tile group of query rows [i0 + ir, i0 + ir + mr) of a tile of `rows` rows */
static int group_keys_seen(bool causal, int j0, int nc, int i0, int ir, int mr, int rows) {
    return keys_seen(causal, j0, nc, i0 + (ir + mr < rows ? ir + mr : rows) - 1);
}

static void cpu_attention_flash_fwd(int B, int T, int C, int H, bool causal, const float *qkv, float *out, float *lse) {
    const gl_kernels *kern = gl_kern();
    int hs = C / H, C3 = 3 * C, mr = kern->gemm_mr, nr = kern->gemm_nr;
    int br = FLASH_BR / mr * mr, bc = FLASH_BC / nr * nr, hsp = round_up_to(hs, nr), tp = round_up_to(T, nr);
    float scale = 1.0f / sqrtf((float)hs);
    size_t floats = (size_t)tp * hs + (size_t)hsp * T + (size_t)br * hs + (size_t)br * bc + (size_t)br * hsp +
                    2 * (size_t)br + 6 * 16;
#pragma omp parallel
    {
        float *at = gl_kernel_scratch(SCRATCH_TILE, floats);
        float *KT = carve(&at, (size_t)tp * hs), *VB = carve(&at, (size_t)hsp * T), *QA = carve(&at, (size_t)br * hs);
        float *S = carve(&at, (size_t)br * bc), *O = carve(&at, (size_t)br * hsp);
        float *m = carve(&at, (size_t)br), *l = carve(&at, (size_t)br);
#pragma omp for schedule(dynamic, 1)
        for (int bh = 0; bh < B * H; bh++) {
            int b = bh / H, h = bh % H;
            const float *base = qkv + (size_t)b * T * C3;
            const float *q = base + h * hs, *k = base + C + h * hs, *v = base + 2 * C + h * hs;
            float *o = out + (size_t)b * T * C + h * hs;
            pack_b_all(nr, 1, k, C3, hs, T, KT); /* k^T: panels of nr keys */
            pack_b_all(nr, 0, v, C3, T, hs, VB); /* v: panels of nr dimensions, T rows each */
            for (int i0 = 0; i0 < T; i0 += br) {
                int rows = T - i0 < br ? T - i0 : br, kend = causal ? i0 + rows : T;
                gl_gemm_pack_a(mr, 0, q, C3, i0, rows, 0, hs, QA);
                for (int r = 0; r < rows; r++) m[r] = -INFINITY, l[r] = 0.0f;
                memset(O, 0, (size_t)br * hsp * sizeof(float));
                for (int j0 = 0; j0 < kend; j0 += bc) {
                    int nc = kend - j0 < bc ? kend - j0 : bc;
                    for (int ir = 0; ir < rows; ir += mr) { /* S = q k^T * scale, the tiles the group can see */
                        int seen = group_keys_seen(causal, j0, nc, i0, ir, mr, rows);
                        for (int jp = 0; jp < seen; jp += nr)
                            kern->gemm_micro(hs, QA + (size_t)ir * hs, KT + (size_t)(j0 + jp) * hs, (size_t)nr,
                                             S + (size_t)ir * bc + jp, (size_t)bc, scale, 0.0f);
                    }
                    for (int r = 0; r < rows; r++) {
                        float *srow = S + (size_t)r * bc;
                        int lim = keys_seen(causal, j0, nc, i0 + r); /* keys j0 .. i0 + r only */
                        float mx = lim > 0 ? kern->row_max((size_t)lim, srow) : -INFINITY;
                        mx = mx > m[r] ? mx : m[r];
                        float sum = lim > 0 ? kern->exp_shift((size_t)lim, srow, mx) : 0.0f;
                        if (lim < nc) memset(srow + lim, 0, (size_t)(nc - lim) * sizeof(float));
                        float alpha = m[r] == -INFINITY ? 0.0f : expf(m[r] - mx); /* rescale what came before */
                        l[r] = l[r] * alpha + sum;
                        m[r] = mx;
                        if (alpha != 1.0f) kern->scale((size_t)hs, alpha, O + (size_t)r * hsp);
                    }
                    for (int ir = 0; ir < rows; ir += mr) { /* O += P v over the keys the group sees */
                        int seen = group_keys_seen(causal, j0, nc, i0, ir, mr, rows);
                        for (int dp = 0; dp < hs && seen > 0; dp += nr)
                            kern->gemm_micro_rows(seen, S + (size_t)ir * bc, (size_t)bc, VB + (size_t)dp * T + (size_t)j0 * nr,
                                                  (size_t)nr, O + (size_t)ir * hsp + dp, (size_t)hsp, 1.0f, 1.0f);
                    }
                }
                for (int r = 0; r < rows; r++) {
                    float inv = 1.0f / l[r];
                    for (int c = 0; c < hs; c++) o[(size_t)(i0 + r) * C + c] = O[(size_t)r * hsp + c] * inv;
                    lse[(size_t)bh * T + i0 + r] = m[r] + logf(l[r]);
                }
            }
        }
    }
}

static void cpu_attention_flash_bwd(int B, int T, int C, int H, bool causal, const float *qkv, const float *out,
                                    const float *lse, const float *dout_all, float *dqkv) {
    const gl_kernels *kern = gl_kern();
    int hs = C / H, C3 = 3 * C, mr = kern->gemm_mr, nr = kern->gemm_nr;
    int br = FLASH_BR / mr * mr, bc = FLASH_BC / nr * nr, hsp = round_up_to(hs, nr), hsm = round_up_to(hs, mr);
    int tp = round_up_to(T, nr), tm = round_up_to(T, mr);
    float scale = 1.0f / sqrtf((float)hs);
    size_t floats = 2 * (size_t)tm * hs + 2 * (size_t)tp * hs + 2 * (size_t)hsm * T + (size_t)hsp * T +
                    (size_t)tm * hsp + (size_t)T + 2 * (size_t)br * bc + 2 * (size_t)hsm * bc + 12 * 16;
#pragma omp parallel
    {
        float *at = gl_kernel_scratch(SCRATCH_TILE, floats);
        float *QA = carve(&at, (size_t)tm * hs), *DA = carve(&at, (size_t)tm * hs);     /* A panels: q, dout */
        float *QAT = carve(&at, (size_t)hsm * T), *DAT = carve(&at, (size_t)hsm * T);   /* A panels: q^T, dout^T */
        float *KT = carve(&at, (size_t)tp * hs), *VT = carve(&at, (size_t)tp * hs);     /* B panels: k^T, v^T */
        float *KB = carve(&at, (size_t)hsp * T);                                         /* B panels: k */
        float *dQ = carve(&at, (size_t)tm * hsp), *D = carve(&at, (size_t)T);
        float *P = carve(&at, (size_t)br * bc), *dP = carve(&at, (size_t)br * bc);
        float *dKT = carve(&at, (size_t)hsm * bc), *dVT = carve(&at, (size_t)hsm * bc); /* dk^T, dv^T of a key tile */
#pragma omp for schedule(dynamic, 1)
        for (int bh = 0; bh < B * H; bh++) {
            int b = bh / H, h = bh % H;
            const float *base = qkv + (size_t)b * T * C3;
            float *gbase = dqkv + (size_t)b * T * C3;
            const float *q = base + h * hs, *k = base + C + h * hs, *v = base + 2 * C + h * hs;
            float *dq = gbase + h * hs, *dk = gbase + C + h * hs, *dv = gbase + 2 * C + h * hs;
            const float *o = out + (size_t)b * T * C + h * hs, *dout = dout_all + (size_t)b * T * C + h * hs;
            const float *L = lse + (size_t)bh * T;
            gl_gemm_pack_a(mr, 0, q, C3, 0, T, 0, hs, QA);
            gl_gemm_pack_a(mr, 0, dout, C, 0, T, 0, hs, DA);
            gl_gemm_pack_a(mr, 1, q, C3, 0, hs, 0, T, QAT);
            gl_gemm_pack_a(mr, 1, dout, C, 0, hs, 0, T, DAT);
            pack_b_all(nr, 1, k, C3, hs, T, KT);
            pack_b_all(nr, 1, v, C3, hs, T, VT);
            pack_b_all(nr, 0, k, C3, T, hs, KB);
            for (int i = 0; i < T; i++) D[i] = kern->dot((size_t)hs, dout + (size_t)i * C, o + (size_t)i * C);
            memset(dQ, 0, (size_t)tm * hsp * sizeof(float));
            for (int j0 = 0; j0 < T; j0 += bc) {
                int nc = T - j0 < bc ? T - j0 : bc;
                memset(dKT, 0, (size_t)hsm * bc * sizeof(float));
                memset(dVT, 0, (size_t)hsm * bc * sizeof(float));
                for (int i0 = causal ? j0 / br * br : 0; i0 < T; i0 += br) {
                    int rows = T - i0 < br ? T - i0 : br;
                    for (int ir = 0; ir < rows; ir += mr) { /* S = q k^T * scale and dP = dout v^T, seen tiles */
                        int seen = group_keys_seen(causal, j0, nc, i0, ir, mr, rows);
                        for (int jp = 0; jp < seen; jp += nr) {
                            kern->gemm_micro(hs, QA + (size_t)(i0 + ir) * hs, KT + (size_t)(j0 + jp) * hs, (size_t)nr,
                                             P + (size_t)ir * bc + jp, (size_t)bc, scale, 0.0f);
                            kern->gemm_micro(hs, DA + (size_t)(i0 + ir) * hs, VT + (size_t)(j0 + jp) * hs, (size_t)nr,
                                             dP + (size_t)ir * bc + jp, (size_t)bc, 1.0f, 0.0f);
                        }
                    }
                    for (int r = 0; r < rows; r++) { /* P = exp(S - L), dS = P * (dP - D) in place of dP; masked 0 */
                        float *p = P + (size_t)r * bc, *g = dP + (size_t)r * bc;
                        int lim = keys_seen(causal, j0, nc, i0 + r);
                        kern->exp_shift((size_t)lim, p, L[i0 + r]);
                        kern->dsoftmax((size_t)lim, p, D[i0 + r], g);
                        if (lim < nc) {
                            memset(p + lim, 0, (size_t)(nc - lim) * sizeof(float));
                            memset(g + lim, 0, (size_t)(nc - lim) * sizeof(float));
                        }
                    }
                    /* dv^T += dout^T P and dk^T += q^T dS * scale: P and dS are read in place as the B operand
                     * (rows of nr keys), from the first query of the tile that sees the panel's keys */
                    for (int jp = 0; jp < nc; jp += nr) {
                        int q0 = causal ? j0 + jp - i0 : 0;
                        if (q0 < 0) q0 = 0;
                        if (q0 >= rows) continue;
                        for (int dg = 0; dg < hs; dg += mr) {
                            kern->gemm_micro(rows - q0, DAT + (size_t)dg * T + (size_t)(i0 + q0) * mr, P + (size_t)q0 * bc + jp,
                                             (size_t)bc, dVT + (size_t)dg * bc + jp, (size_t)bc, 1.0f, 1.0f);
                            kern->gemm_micro(rows - q0, QAT + (size_t)dg * T + (size_t)(i0 + q0) * mr, dP + (size_t)q0 * bc + jp,
                                             (size_t)bc, dKT + (size_t)dg * bc + jp, (size_t)bc, scale, 1.0f);
                        }
                    }
                    for (int ir = 0; ir < rows; ir += mr) { /* dq += dS k * scale over the keys the group sees */
                        int seen = group_keys_seen(causal, j0, nc, i0, ir, mr, rows);
                        for (int dp = 0; dp < hs && seen > 0; dp += nr)
                            kern->gemm_micro_rows(seen, dP + (size_t)ir * bc, (size_t)bc, KB + (size_t)dp * T + (size_t)j0 * nr,
                                                  (size_t)nr, dQ + (size_t)(i0 + ir) * hsp + dp, (size_t)hsp, scale, 1.0f);
                    }
                }
                for (int j = 0; j < nc; j++)
                    for (int d = 0; d < hs; d++) {
                        dk[(size_t)(j0 + j) * C3 + d] += dKT[(size_t)d * bc + j];
                        dv[(size_t)(j0 + j) * C3 + d] += dVT[(size_t)d * bc + j];
                    }
            }
            for (int i = 0; i < T; i++) kern->axpy((size_t)hs, 1.0f, dQ + (size_t)i * hsp, dq + (size_t)i * C3);
        }
    }
}

static void cpu_attention_weights(int B, int T, int C, int H, bool causal, const float *qkv, float *W) {
    int hs = C / H, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    const gl_kernels *kern = gl_kern();
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H;
        const float *base = qkv + (size_t)b * T * C3;
        float *P = W + (size_t)bh * T * T;
        gl_gemm(0, 1, T, T, hs, scale, base + h * hs, C3, base + C + h * hs, C3, 0.0f, P, T);
        for (int i = 0; i < T; i++) {
            int seen = causal ? i + 1 : T;
            kern->softmax_rows(1, (size_t)seen, P + (size_t)i * T, P + (size_t)i * T);
            if (seen < T) memset(P + (size_t)i * T + seen, 0, (size_t)(T - seen) * sizeof(float));
        }
    }
}

static void cpu_attention_step(int C, int n_head, int pos, const float *qkv, float *k_cache, float *v_cache,
                               float *out) {
    int hs = C / n_head;
    float scale = 1.0f / sqrtf((float)hs);
    memcpy(k_cache + (size_t)pos * C, qkv + C, (size_t)C * sizeof(float));
    memcpy(v_cache + (size_t)pos * C, qkv + 2 * C, (size_t)C * sizeof(float));
    memset(out, 0, (size_t)C * sizeof(float));
    float *scores = gl_kernel_scratch(SCRATCH_A, (size_t)n_head * (pos + 1));
    const gl_kernels *k = gl_kern();
#pragma omp parallel for schedule(static) if (pos >= 256)
    for (int h = 0; h < n_head; h++) {
        const float *q = qkv + h * hs;
        float *sc = scores + (size_t)h * (pos + 1);
        for (int j = 0; j <= pos; j++) {
            const float *kj = k_cache + (size_t)j * C + h * hs;
            float dot = 0.0f;
            for (int i = 0; i < hs; i++) dot += q[i] * kj[i];
            sc[j] = dot * scale;
        }
        k->softmax_rows(1, (size_t)pos + 1, sc, sc);
        float *o = out + h * hs;
        for (int j = 0; j <= pos; j++) k->axpy((size_t)hs, sc[j], v_cache + (size_t)j * C + h * hs, o);
    }
}

/* ================================================================ Llama-family decoders */

static void cpu_rmsnorm_fwd(size_t rows, size_t C, const float *x, const float *w, float eps, float *y, float *rstd) {
#pragma omp parallel for schedule(static) if (rows * C >= 65536)
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * C;
        double ss = 0;
        for (size_t i = 0; i < C; i++) ss += (double)(xr[i] * xr[i]); /* squares in float, summed in double: ggml's */
        float rs = 1.0f / sqrtf((float)(ss / C) + eps);
        if (rstd) rstd[r] = rs;
        float *yr = y + r * C;
        for (size_t i = 0; i < C; i++) yr[i] = xr[i] * rs * w[i];
    }
}

static void cpu_rmsnorm_bwd(size_t rows, size_t C, const float *x, const float *w, const float *rstd,
                            const float *dy_all, float *dx_all, float *dw) {
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * C, *dy = dy_all + r * C;
        float rs = rstd[r];
        if (dw)
            for (size_t i = 0; i < C; i++) dw[i] += dy[i] * xr[i] * rs;
        if (!dx_all) continue;
        /* dx_i = r w_i dy_i - x_i r^3 / C sum_j dy_j w_j x_j */
        double dot = 0;
        for (size_t i = 0; i < C; i++) dot += (double)dy[i] * w[i] * xr[i];
        float c = (float)dot * rs * rs * rs / (float)C;
        float *dx = dx_all + r * C;
        for (size_t i = 0; i < C; i++) dx[i] += rs * w[i] * dy[i] - xr[i] * c;
    }
}

/* The angles as ggml computes them: theta starts at the position and is multiplied by base^(-2/rope_dim) for each
 * following pair, in float; the rotation fused as llama.cpp's build computes it, so ours equals it bit for bit. */
static void rope_rotate(float *x, int T, int n_head, int hd, int pos0, float base, int rope_dim, float sign) {
    float step = powf(base, -2.0f / (float)rope_dim);
    for (int t = 0; t < T; t++) {
        float theta = (float)(pos0 + t);
        for (int i = 0; i < rope_dim / 2; i++, theta *= step) {
            float c = cosf(theta), s = sign * sinf(theta);
            for (int h = 0; h < n_head; h++) {
                float *p = x + (size_t)t * n_head * hd + (size_t)h * hd + 2 * i;
                float a = p[0], b = p[1]; /* fused as GCC contracts ggml's a c - b s and a s + b c */
                p[0] = fmaf(a, c, -(b * s)); /* libm's fmaf: exact on any CPU */
                p[1] = fmaf(a, s, b * c);
            }
        }
    }
}

static void cpu_rope_fwd(int T, int n_head, int hd, int pos0, float base, int rope_dim, float *x) {
    rope_rotate(x, T, n_head, hd, pos0, base, rope_dim, 1.0f);
}

static void cpu_rope_bwd(int T, int n_head, int hd, int pos0, float base, int rope_dim, const float *dy, float *dx) {
    size_t n = (size_t)T * n_head * hd; /* the rotation is orthogonal: dx = R^T dy, a rotation by -theta */
    float *g = gl_kernel_scratch(SCRATCH_A, n);
    memcpy(g, dy, n * sizeof(float));
    rope_rotate(g, T, n_head, hd, pos0, base, rope_dim, -1.0f);
    for (size_t i = 0; i < n; i++) dx[i] += g[i];
}

/* with ggml's expf: llama.cpp's bits */
static void cpu_swiglu_fwd(size_t n, const float *a, const float *b, float *y) { gl_kern()->swiglu_ggml(n, a, b, y); }

static void cpu_swiglu_bwd(size_t n, const float *a, const float *b, const float *dy, float *da, float *db) {
    for (size_t i = 0; i < n; i++) {
        float x = a[i], sg = 1.0f / (1.0f + expf(-x));
        if (da) da[i] += dy[i] * b[i] * sg * (1.0f + x * (1.0f - sg));
        if (db) db[i] += dy[i] * x * sg;
    }
}

static void cpu_attention_gqa(int T, int n_head, int n_kv_head, int hd, int pos, int capacity, bool kv_f16,
                              const float *q, const float *k, const float *v, float *k_cache, float *v_cache,
                              float *out) {
    int Cq = n_head * hd, Ckv = n_kv_head * hd, group = n_head / n_kv_head;
    for (int t = 0; t < T; t++) /* keys by row; values transposed, one row per dimension (llama.cpp's layout) */
        for (int i = 0; i < Ckv; i++) {
            float kv = k[(size_t)t * Ckv + i], vv = v[(size_t)t * Ckv + i];
            k_cache[(size_t)(pos + t) * Ckv + i] = kv;
            v_cache[(size_t)i * capacity + pos + t] = vv;
        }
    if (kv_f16) {
        gl_round_to_f16(k_cache + (size_t)pos * Ckv, (size_t)T * Ckv);
        for (int i = 0; i < Ckv; i++) gl_round_to_f16(v_cache + (size_t)i * capacity + pos, (size_t)T);
    }
    memset(out, 0, (size_t)T * Cq * sizeof(float));
    int n_keys = pos + T;
    /* llama.cpp attends over n_kv = the keys rounded up to 256 (at most the cache), the rest masked to 0; zeros
     * change no sum, so only where the last steps of 64 or 16 end matters: pad to that */
    int n_kv = n_keys <= 256 ? 256 : (n_keys + 255) / 256 * 256;
    if (n_kv > capacity) n_kv = capacity;
    bool tiled = T >= 2;
    int step = tiled ? 16 : 64, n_pad = (n_keys + step - 1) / step * step;
    if (n_pad > n_kv - n_kv % step) n_pad = n_kv; /* the tail then takes the leftover path, as in ggml */
    size_t row = (size_t)(n_pad > n_keys ? n_pad : n_keys);
    float *scores = gl_kernel_scratch(SCRATCH_A, (size_t)T * n_head * row);
    float *qr = gl_kernel_scratch(SCRATCH_B, (size_t)T * Cq);
    memcpy(qr, q, (size_t)T * Cq * sizeof(float));
    if (kv_f16) gl_round_to_f16(qr, (size_t)T * Cq);
    float scale = 1.0f / sqrtf((float)hd);
    const gl_kernels *kn = gl_kern();
#pragma omp parallel for schedule(dynamic, 1) collapse(2) if ((int64_t)T * n_keys * Cq >= 8192)
    for (int t = 0; t < T; t++)
        for (int h = 0; h < n_head; h++) {
            const float *qh = qr + (size_t)t * Cq + (size_t)h * hd;
            int g = h / group, last = pos + t;
            float *sc = scores + ((size_t)t * n_head + h) * row, *o = out + (size_t)t * Cq + (size_t)h * hd;
            const float *vt = v_cache + (size_t)g * hd * capacity; /* dimension i of kv head g: vt[i * capacity + j] */
            if (!kv_f16) { /* plain float attention */
                for (int j = 0; j <= last; j++) sc[j] = kn->dot((size_t)hd, qh, k_cache + (size_t)j * Ckv + (size_t)g * hd) * scale;
                kn->softmax_rows(1, (size_t)last + 1, sc, sc);
                for (int i = 0; i < hd; i++) o[i] = kn->dot((size_t)last + 1, sc, vt + (size_t)i * capacity);
                continue;
            }
            /* llama.cpp: q k in fp16 (tinyBLAS's order for two or more tokens when hd is a multiple of 16), scaled,
             * softmax with its expf and 16-key chunk sums in double, probabilities to fp16, then p v */
            float max = -INFINITY;
            for (int j = 0; j <= last; j++) {
                const float *kj = k_cache + (size_t)j * Ckv + (size_t)g * hd;
                sc[j] = (tiled && hd % 16 == 0 ? kn->dot_lanes16 : kn->dot_acc4x16)((size_t)hd, qh, kj) * scale;
                max = sc[j] > max ? sc[j] : max; /* scores are never NaN: the plain compare spares a libm call */
            }
            float inv = (float)(1.0 / kn->exp_shift_ggml((size_t)last + 1, sc, max));
            for (int j = 0; j <= last; j++) sc[j] *= inv;
            gl_round_to_f16(sc, (size_t)last + 1);
            for (int j = last + 1; j < n_pad; j++) sc[j] = 0.0f;
            /* tinyBLAS takes whole steps of 16 only: a cache whose end is not one (n_pad = n_kv above) goes through
             * ggml's plain dot, which also reads nothing past the cache */
            for (int i = 0; i < hd; i++)
                o[i] = (tiled && n_pad % 16 == 0 ? kn->dot_lanes16 : kn->dot_acc4x16)((size_t)n_pad, sc, vt + (size_t)i * capacity);
        }
}

/* ================================================================ optimizers */

static void cpu_adam_update(size_t n, float *w, const float *g, float *m, float *v, float lr, float beta1, float beta2,
                            float eps, float l2, float decoupled, float bc1, float bc2) {
    const gl_kernels *k = gl_kern();
    enum { CHUNK = 1 << 15 };
#pragma omp parallel for schedule(static) if (n > 4 * CHUNK)
    for (size_t c = 0; c < n; c += CHUNK) {
        size_t len = n - c < CHUNK ? n - c : CHUNK;
        k->adam_update(len, w + c, g + c, m + c, v + c, lr, beta1, beta2, eps, l2, decoupled, bc1, bc2);
    }
}

static void cpu_sgd_update(size_t n, float *w, const float *g, float *buf, float lr, float momentum, float wd,
                           bool first_step) {
    for (size_t j = 0; j < n; j++) {
        float gj = g[j] + wd * w[j];
        if (momentum != 0.0f) {
            buf[j] = first_step ? gj : momentum * buf[j] + gj;
            gj = buf[j];
        }
        w[j] -= lr * gj;
    }
}

static float cpu_grad_norm(int n, const float *const *bufs, const size_t *lens) {
    double ss = 0.0;
    for (int i = 0; i < n; i++)
        for (size_t j = 0; j < lens[i]; j++) ss += (double)bufs[i][j] * bufs[i][j];
    return (float)sqrt(ss);
}

/* sampling on the CPU lives in models/sample.c (top-k, top-p, repetition penalties): no slot here */

const gl_backend gl_backend_cpu = {
    .name = "cpu",
    .available = cpu_available,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .zero = cpu_zero,
    .copy = cpu_copy,
    .synchronize = cpu_synchronize,
    .binary_fwd = cpu_binary_fwd,
    .binary_bwd = cpu_binary_bwd,
    .unary_fwd = cpu_unary_fwd,
    .unary_bwd = cpu_unary_bwd,
    .mul = cpu_mul,
    .mul_acc = cpu_mul_acc,
    .axpy = cpu_axpy,
    .scale = cpu_scale,
    .axpy_rows = cpu_axpy_rows,
    .copy_rows = cpu_copy_rows,
    .gather = cpu_gather,
    .scatter_add = cpu_scatter_add,
    .reduce_fwd = cpu_reduce_fwd,
    .reduce_bwd = cpu_reduce_bwd,
    .softmax_fwd = cpu_softmax_fwd,
    .softmax_bwd = cpu_softmax_bwd,
    .cross_entropy_fwd = cpu_cross_entropy_fwd,
    .cross_entropy_bwd = cpu_cross_entropy_bwd,
    .token_logprob_fwd = cpu_token_logprob_fwd,
    .token_logprob_bwd = cpu_token_logprob_bwd,
    .layernorm_fwd = cpu_layernorm_fwd,
    .layernorm_bwd = cpu_layernorm_bwd,
    .embedding_fwd = cpu_embedding_fwd,
    .embedding_bwd = cpu_embedding_bwd,
    .gemm = gl_gemm,
    .linear_fwd = cpu_linear_fwd,
    .linear_bwd = cpu_linear_bwd,
    .linear_nf4_fwd = cpu_linear_nf4_fwd,
    .linear_nf4_bwd = cpu_linear_nf4_bwd,
    .linear_q_fwd = cpu_linear_q_fwd,
    .linear_q_bwd = cpu_linear_q_bwd,
    .embedding_q = cpu_embedding_q,
    .attention_naive_fwd = cpu_attention_naive_fwd,
    .attention_naive_bwd = cpu_attention_naive_bwd,
    .attention_flash_fwd = cpu_attention_flash_fwd,
    .attention_flash_bwd = cpu_attention_flash_bwd,
    .attention_weights = cpu_attention_weights,
    .attention_step = cpu_attention_step,
    .rmsnorm_fwd = cpu_rmsnorm_fwd,
    .rmsnorm_bwd = cpu_rmsnorm_bwd,
    .rope_fwd = cpu_rope_fwd,
    .rope_bwd = cpu_rope_bwd,
    .swiglu_fwd = cpu_swiglu_fwd,
    .swiglu_bwd = cpu_swiglu_bwd,
    .attention_gqa = cpu_attention_gqa,
    .adam_update = cpu_adam_update,
    .sgd_update = cpu_sgd_update,
    .grad_norm = cpu_grad_norm,
    .sample = NULL,
};
_Static_assert(GL_BACKEND_LAYOUT_OK, "gl_backend has a field outside GL_BACKEND_SLOTS");
