/* The backend interface: one table of whole-op kernels per device, with the same slots and the same signatures on
 * every device (kernels/cpu/ops.c fills gl_backend_cpu; kernels/cuda/backend.cu fills gl_backend_cuda). An op in
 * the core checks shapes, makes its output on its inputs' device and calls that device's slot; it never branches
 * on the device. An empty slot (NULL) means "not on this device": the core turns it into one message, and
 * gl_supports_op (core/tensor.h) lets tests and programs ask before they try.
 *
 * Contract of every slot: pointers are memory of the table's device (host pointers on the CPU, device pointers on
 * CUDA) unless a comment says "host"; forward slots overwrite their outputs; backward slots ACCUMULATE (+=) into
 * gradients, and a gradient pointer may be NULL when that input needs none. Slots find their own scratch memory.
 * A slot returning bool may decline a configuration its device does not implement (false: nothing was written).
 * Adding an op: add its slots to GL_BACKEND_SLOTS, fill them in ops.c (and backend.cu if the GPU has it), call them
 * from the op, and add a case to tests/test_backend_ops.c (docs/architecture.md walks through it). */
#ifndef GRADLAB_BACKEND_H
#define GRADLAB_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { GL_BIN_ADD, GL_BIN_SUB, GL_BIN_MUL, GL_BIN_DIV } gl_binop;
typedef enum {
    GL_UN_EXP, GL_UN_LOG, GL_UN_TANH, GL_UN_SIGMOID, GL_UN_LOG_SIGMOID, GL_UN_RELU, GL_UN_GELU, GL_UN_ADD_SCALAR,
    GL_UN_MUL_SCALAR, GL_UN_GELU_ERF
} gl_unop;

/* A broadcast of two contiguous inputs to the output's shape, padded on the left to 4 dims: sa and sb are each
 * input's strides in the output's index space (0 where it is broadcast). same: equal shapes (n elements each);
 * rows: b's shape ends a's (b repeats over the rows of a, a has the output's shape). */
typedef struct {
    int shape[4];
    int64_t sa[4], sb[4];
    int64_t n, nb; /* elements of the output and of b */
    bool same, rows;
} gl_bcast;

struct gl_nf4; /* kernels/cpu/kernels.h: QLoRA's 4-bit weights (CPU) */

/* Every slot: name, return type, parameters. The struct below is generated from this list, in this order. */
#define GL_BACKEND_SLOTS(X) \
    /* ---- memory ---- */ \
    X(available, int, (void)) /* a device to run on is present */ \
    X(alloc, void *, (size_t bytes)) /* NULL when out of memory */ \
    X(free, void, (void *p)) \
    X(upload, void, (void *dst, const void *host, size_t bytes)) \
    X(download, void, (void *host, const void *src, size_t bytes)) \
    X(zero, void, (void *p, size_t bytes)) \
    X(copy, void, (void *dst, const void *src, size_t bytes)) \
    X(synchronize, void, (void)) \
    /* ---- elementwise ---- */ \
    X(binary_fwd, bool, (int op, const gl_bcast *p, const float *a, const float *b, float *out)) \
    X(binary_bwd, bool, (int op, const gl_bcast *p, const float *a, const float *b, const float *out, const float *dout, float *da, float *db)) \
    /* y = f(x) (s: the scalar of add_scalar and mul_scalar); backward dx += dy f'(x), given x and y */ \
    X(unary_fwd, bool, (int op, float s, size_t n, const float *x, float *y)) \
    X(unary_bwd, bool, (int op, float s, size_t n, const float *x, const float *y, const float *dy, float *dx)) \
    X(mul, void, (size_t n, const float *a, const float *b, float *out)) \
    X(mul_acc, void, (size_t n, const float *a, const float *b, float *y)) /* y += a b */ \
    X(axpy, void, (size_t n, float alpha, const float *x, float *y)) \
    X(scale, void, (size_t n, float factor, float *x)) /* factor: host */ \
    /* y[r * ldy + j] += alpha x[r * ldx + j] (axpy_rows) or = x[r * ldx + j] (copy_rows), r < rows, j < width */ \
    X(axpy_rows, void, (size_t rows, size_t width, float alpha, const float *x, size_t ldx, float *y, size_t ldy)) \
    X(copy_rows, void, (size_t rows, size_t width, const float *x, size_t ldx, float *y, size_t ldy)) \
    /* dense[i] = strided[offset of the i-th index in row-major order] over shape/stride (host, ndim <= 4), and the \
     * adjoint strided[...] += dense[i] */ \
    X(gather, void, (int ndim, const int *shape, const int64_t *stride, const float *strided, float *dense)) \
    X(scatter_add, void, (int ndim, const int *shape, const int64_t *stride, const float *dense, float *strided)) \
    /* ---- reductions over the middle axis of [outer, n, inner]: y = scale * sum; backward dx += scale dy ---- */ \
    X(reduce_fwd, void, (size_t outer, size_t n, size_t inner, float scale, const float *x, float *y)) \
    X(reduce_bwd, void, (size_t outer, size_t n, size_t inner, float scale, const float *dy, float *dx)) \
    /* ---- rows of cols ---- */ \
    X(softmax_fwd, void, (size_t rows, size_t cols, bool log_form, const float *x, float *y)) \
    X(softmax_bwd, void, (size_t rows, size_t cols, bool log_form, const float *y, const float *dy, float *dx)) \
    /* mean over rows not ignored of lse[r] - x[r, target[r]] into *loss (n_valid of them), lse saved; backward \
     * dx += *dloss / n_valid (softmax(x) - onehot(target)) */ \
    X(cross_entropy_fwd, void, (size_t rows, size_t V, const float *x, const int32_t *targets, int ignore, int n_valid, float *lse, float *loss)) \
    X(cross_entropy_bwd, void, (size_t rows, size_t V, const float *x, const int32_t *targets, int ignore, int n_valid, const float *lse, const float *dloss, float *dx)) \
    /* y[r] = x[r, target[r]] - lse[r] (0 for ignored rows), lse saved */ \
    X(token_logprob_fwd, void, (size_t rows, size_t V, const float *x, const int32_t *targets, int ignore, float *lse, float *y)) \
    X(token_logprob_bwd, void, (size_t rows, size_t V, const float *x, const int32_t *targets, int ignore, const float *lse, const float *dy, float *dx)) \
    /* y = (x - mean) rstd w + b per row (w, b may be NULL), mean and rstd saved */ \
    X(layernorm_fwd, void, (size_t rows, size_t cols, const float *x, const float *w, const float *b, float eps, float *y, float *mean, float *rstd)) \
    X(layernorm_bwd, void, (size_t rows, size_t cols, const float *x, const float *w, const float *mean, const float *rstd, const float *dy, float *dx, float *dw, float *db)) \
    X(embedding_fwd, void, (size_t n, size_t cols, const int32_t *ids, const float *weight, float *out)) \
    X(embedding_bwd, void, (size_t n, size_t cols, const int32_t *ids, const float *dout, float *dweight)) \
    /* ---- matrix products (row-major; gl_gemm's contract: C = alpha op(A) op(B) + beta C) ---- */ \
    X(gemm, void, (int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)) \
    /* y [rows, N] = x [rows, K] op(w) + bias (tw: w stored N x K with leading dim ldw) */ \
    X(linear_fwd, void, (int rows, int N, int K, int tw, int ldw, const float *x, const float *w, const float *bias, float *y)) \
    X(linear_bwd, void, (int rows, int N, int K, int tw, int ldw, const float *x, const float *w, const float *dy, float *dx, float *dw, float *db)) \
    /* the same with a frozen NF4 weight [K, N] (host struct); backward reaches x and bias only */ \
    X(linear_nf4_fwd, void, (int rows, int N, int K, const float *x, const struct gl_nf4 *w, const float *bias, float *y)) \
    X(linear_nf4_bwd, void, (int rows, int N, int K, const struct gl_nf4 *w, const float *dy, float *dx, float *db)) \
    /* y [M, N] = x [M, K] W^T for W [N, K] in one of ggml's block types (kernels.h gl_qtype); backward dx += dy W; \
     * out [n, cols] = rows ids of the table */ \
    X(linear_q_fwd, void, (int type, const void *w, int N, int K, const float *x, int M, float *y)) \
    X(linear_q_bwd, void, (int type, const void *w, int N, int K, const float *dy, int M, float *dx)) \
    X(embedding_q, void, (int type, const void *table, int cols, const int32_t *ids, int n, float *out)) \
    /* ---- attention on the fused qkv [B, T, 3C] -> out [B, T, C], H heads ---- \
     * naive keeps the probabilities P [B, H, T, T] for backward (P NULL: none kept); flash keeps lse [B, H, T]; \
     * weights writes P alone */ \
    X(attention_naive_fwd, void, (int B, int T, int C, int H, bool causal, const float *qkv, float *out, float *P)) \
    X(attention_naive_bwd, void, (int B, int T, int C, int H, bool causal, const float *qkv, const float *P, const float *dout, float *dqkv)) \
    X(attention_flash_fwd, void, (int B, int T, int C, int H, bool causal, const float *qkv, float *out, float *lse)) \
    X(attention_flash_bwd, void, (int B, int T, int C, int H, bool causal, const float *qkv, const float *out, const float *lse, const float *dout, float *dqkv)) \
    X(attention_weights, void, (int B, int T, int C, int H, bool causal, const float *qkv, float *P)) \
    /* one decoding step: k, v of qkv [3C] appended at row pos of the caches [rows, C]; out [C] over rows 0..pos */ \
    X(attention_step, void, (int C, int H, int pos, const float *qkv, float *k_cache, float *v_cache, float *out)) \
    /* ---- Llama-family decoders ---- */ \
    X(rmsnorm_fwd, void, (size_t rows, size_t cols, const float *x, const float *w, float eps, float *y, float *rstd)) \
    X(rmsnorm_bwd, void, (size_t rows, size_t cols, const float *x, const float *w, const float *rstd, const float *dy, float *dx, float *dw)) \
    /* in place on x [T, n_head * hd]; backward dx += the rotation of dy by -theta */ \
    X(rope_fwd, void, (int T, int n_head, int hd, int pos0, float base, int rope_dim, float *x)) \
    X(rope_bwd, void, (int T, int n_head, int hd, int pos0, float base, int rope_dim, const float *dy, float *dx)) \
    X(swiglu_fwd, void, (size_t n, const float *a, const float *b, float *y)) \
    X(swiglu_bwd, void, (size_t n, const float *a, const float *b, const float *dy, float *da, float *db)) \
    /* k, v [T, n_kv_head * hd] appended at pos of k_cache [capacity, ...] and the transposed v_cache; out [T, n_head \
     * * hd] causal over the cache; kv_f16: llama.cpp's fp16 arithmetic (a device without it attends in float) */ \
    X(attention_gqa, void, (int T, int n_head, int n_kv_head, int hd, int pos, int capacity, bool kv_f16, const float *q, const float *k, const float *v, float *k_cache, float *v_cache, float *out)) \
    /* ---- optimizers and gradients ---- */ \
    X(adam_update, void, (size_t n, float *w, const float *g, float *m, float *v, float lr, float beta1, float beta2, float eps, float l2, float decoupled, float bc1, float bc2)) \
    X(sgd_update, void, (size_t n, float *w, const float *g, float *buf, float lr, float momentum, float weight_decay, bool first_step)) \
    /* sqrt of the sum of squares over n buffers (bufs and lens: host arrays), returned to the host */ \
    X(grad_norm, float, (int n, const float *const *bufs, const size_t *lens)) \
    /* the next token from one row of V logits: the argmax when temperature <= 0, else where u in [0, 1) falls in \
     * the softmax at that temperature (returned to the host) */ \
    X(sample, int32_t, (int V, const float *logits, float temperature, double u))

#define GL_BACKEND_FIELD(name, ret, args) ret(*name) args;
typedef struct gl_backend {
    const char *name;
    GL_BACKEND_SLOTS(GL_BACKEND_FIELD)
} gl_backend;
#undef GL_BACKEND_FIELD

#define GL_BACKEND_COUNT_SLOT(name, ret, args) +1
enum { GL_BACKEND_SLOT_COUNT = 0 GL_BACKEND_SLOTS(GL_BACKEND_COUNT_SLOT) };
#undef GL_BACKEND_COUNT_SLOT

/* a hand-added field outside the list breaks the count each table checks with this */
#define GL_BACKEND_LAYOUT_OK (sizeof(gl_backend) == sizeof(const char *) + GL_BACKEND_SLOT_COUNT * sizeof(void (*)(void)))

extern const gl_backend gl_backend_cpu;
extern const gl_backend gl_backend_cuda; /* only in builds that link kernels/cuda (real or emulated) */

#ifdef __cplusplus
}
#endif

#endif
