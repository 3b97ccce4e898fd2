/* The CUDA backend: the slots of kernels/backend.h filled with this folder's kernels. Where a slot is a whole op
 * made of several launches (the loss and its mean, a linear layer and its bias, attention and its scratch), a
 * small adapter here composes them. Linking this object is what gives a build its CUDA device. Slots left out are
 * ops without a CUDA kernel: the core reports them with one message, and gl_supports_op says so beforehand.
 * Scratch memory: one grown device buffer per role, reused by every call (the device is driven from one thread;
 * launches on the default stream run in order, so a buffer is never in use by two kernels at once). */
#include <math.h>

#include "cuda_common.h"

#include "backend.h"

enum { SCRATCH_A, SCRATCH_B, SCRATCH_C, SCRATCH_ROLES };

static void *scratch(int role, size_t bytes) {
    static void *buf[SCRATCH_ROLES];
    static size_t cap[SCRATCH_ROLES];
    if (bytes > cap[role]) {
        if (buf[role]) gl_cuda_free(buf[role]);
        buf[role] = gl_cuda_alloc(bytes);
        cap[role] = bytes;
    }
    return buf[role];
}

static float *device_float(int role, float value) {
    float *p = (float *)scratch(role, sizeof value);
    gl_cuda_upload(p, &value, sizeof value);
    return p;
}

/* add with equal shapes, or b repeated over the rows of a (a bias): the only binary op on the device */
static bool cuda_binary_fwd(int op, const gl_bcast *p, const float *a, const float *b, float *out) {
    if (op != GL_BIN_ADD || !(p->same || p->rows)) return false;
    if (p->same) gl_cuda_add((size_t)p->n, a, b, out);
    else {
        gl_cuda_copy(out, a, (size_t)p->n * sizeof(float));
        gl_cuda_add_bias((size_t)(p->n / (p->nb ? p->nb : 1)), (size_t)p->nb, b, out);
    }
    return true;
}

static bool cuda_binary_bwd(int op, const gl_bcast *p, const float *, const float *, const float *, const float *dout,
                            float *da, float *db) {
    if (op != GL_BIN_ADD || !(p->same || p->rows)) return false;
    if (da) gl_cuda_axpy((size_t)p->n, 1.0f, dout, da);
    if (db) {
        if (p->same) gl_cuda_axpy((size_t)p->n, 1.0f, dout, db);
        else gl_cuda_bias_grad((size_t)(p->n / (p->nb ? p->nb : 1)), (size_t)p->nb, dout, db);
    }
    return true;
}

static bool cuda_unary_fwd(int op, float, size_t n, const float *x, float *y) {
    if (op != GL_UN_GELU) return false;
    gl_cuda_gelu_fwd(n, x, y);
    return true;
}

static bool cuda_unary_bwd(int op, float, size_t n, const float *x, const float *, const float *dy, float *dx) {
    if (op != GL_UN_GELU) return false;
    gl_cuda_gelu_bwd(n, x, dy, dx);
    return true;
}

static void cuda_scale(size_t n, float factor, float *x) { gl_cuda_scale(n, device_float(SCRATCH_C, factor), x); }

/* row losses summed on the device in a fixed order, then scaled by 1/n_valid */
static void cuda_cross_entropy_fwd(size_t rows, size_t V, const float *x, const int32_t *targets, int ignore,
                                   int n_valid, float *lse, float *loss) {
    float *row_loss = (float *)scratch(SCRATCH_A, rows * sizeof(float));
    float *sum_scratch = (float *)scratch(SCRATCH_B, gl_cuda_sum_scratch(rows) * sizeof(float));
    gl_cuda_cross_entropy_fwd(rows, V, x, targets, ignore, lse, row_loss);
    gl_cuda_sum(rows, row_loss, sum_scratch, loss);
    gl_cuda_scale(1, device_float(SCRATCH_C, n_valid ? 1.0f / (float)n_valid : 0.0f), loss);
}

/* the loss's gradient comes back as one float */
static void cuda_cross_entropy_bwd(size_t rows, size_t V, const float *x, const int32_t *targets, int ignore,
                                   int n_valid, const float *lse, const float *dloss, float *dx) {
    if (n_valid == 0) return;
    float g;
    gl_cuda_download(&g, dloss, sizeof g);
    gl_cuda_cross_entropy_bwd(rows, V, x, targets, ignore, lse, g / (float)n_valid, dx);
}

/* the product, then the bias rows added */
static void cuda_linear_fwd(int rows, int N, int K, int tw, int ldw, const float *x, const float *w, const float *bias,
                            float *y) {
    gl_cuda_gemm(0, tw, rows, N, K, 1.0f, x, K, w, ldw, 0.0f, y, N);
    if (bias) gl_cuda_add_bias((size_t)rows, (size_t)N, bias, y);
}

static void cuda_linear_bwd(int rows, int N, int K, int tw, int ldw, const float *x, const float *w, const float *dy,
                            float *dx, float *dw, float *db) {
    if (dx) gl_cuda_gemm(0, !tw, rows, K, N, 1.0f, dy, N, w, ldw, 1.0f, dx, K);
    if (dw) {
        if (!tw) gl_cuda_gemm(1, 0, K, N, rows, 1.0f, x, K, dy, N, 1.0f, dw, ldw);
        else gl_cuda_gemm(1, 0, N, K, rows, 1.0f, dy, N, x, K, 1.0f, dw, ldw);
    }
    if (db) gl_cuda_bias_grad((size_t)rows, (size_t)N, dy, db);
}

static void cuda_attention_naive_fwd(int B, int T, int C, int H, bool causal, const float *qkv, float *out, float *P) {
    if (!P) P = (float *)scratch(SCRATCH_A, (size_t)B * H * T * T * sizeof(float));
    gl_cuda_attention_naive_fwd(B, T, C, H, causal, qkv, out, P);
}

static void cuda_attention_naive_bwd(int B, int T, int C, int H, bool causal, const float *qkv, const float *P,
                                     const float *dout, float *dqkv) {
    float *dS = (float *)scratch(SCRATCH_A, (size_t)B * H * T * T * sizeof(float));
    gl_cuda_attention_naive_bwd(B, T, C, H, causal, qkv, P, dout, dS, dqkv);
}

static void cuda_attention_flash_fwd(int B, int T, int C, int H, bool causal, const float *qkv, float *out, float *lse) {
    gl_cuda_attention_flash_fwd(B, T, C, H, causal, qkv, out, lse);
}

static void cuda_attention_flash_bwd(int B, int T, int C, int H, bool causal, const float *qkv, const float *out,
                                     const float *lse, const float *dout, float *dqkv) {
    float *D = (float *)scratch(SCRATCH_A, (size_t)B * H * T * sizeof(float));
    gl_cuda_attention_flash_bwd(B, T, C, H, causal, qkv, out, lse, dout, D, dqkv);
}

static void cuda_attention_step(int C, int H, int pos, const float *qkv, float *k_cache, float *v_cache, float *out) {
    float *scores = (float *)scratch(SCRATCH_A, (size_t)H * (pos + 1) * sizeof(float));
    gl_cuda_attention_step(C, H, pos, qkv, k_cache, v_cache, scores, out);
}

/* inference only: no rstd is kept (the table has no rmsnorm backward, so the core never asks for one) */
static void cuda_rmsnorm_fwd(size_t rows, size_t cols, const float *x, const float *w, float eps, float *y, float *) {
    gl_cuda_rmsnorm_fwd(rows, cols, x, w, eps, y);
}

/* float attention always: llama.cpp's fp16 arithmetic is the CPU's */
static void cuda_attention_gqa(int T, int n_head, int n_kv_head, int hd, int pos, int capacity, bool, const float *q,
                               const float *k, const float *v, float *k_cache, float *v_cache, float *out) {
    float *scores = (float *)scratch(SCRATCH_A, (size_t)T * n_head * (pos + T) * sizeof(float));
    gl_cuda_attention_gqa(T, n_head, n_kv_head, hd, pos, capacity, q, k, v, k_cache, v_cache, scores, out);
}

/* the sum of squares in a fixed order on the device, one float back */
static float cuda_grad_norm(int n, const float *const *bufs, const size_t *lens) {
    size_t floats = 4;
    for (int i = 0; i < n; i++) floats += gl_cuda_sum_scratch(lens[i]);
    float *sum_scratch = (float *)scratch(SCRATCH_A, floats * sizeof(float));
    float *ss = (float *)scratch(SCRATCH_B, sizeof(float)), sum_squares;
    gl_cuda_sum_squares(n, bufs, lens, sum_scratch, ss);
    gl_cuda_download(&sum_squares, ss, sizeof sum_squares);
    return sqrtf(sum_squares);
}

static int32_t cuda_sample(int V, const float *logits, float temperature, double u) {
    int32_t *token = (int32_t *)scratch(SCRATCH_A, sizeof(int32_t)), host;
    gl_cuda_sample(V, logits, temperature, u, token);
    gl_cuda_download(&host, token, sizeof host);
    return host;
}

/* in the order of GL_BACKEND_SLOTS (C++20 designated initializers must follow it); nullptr: no CUDA kernel yet */
extern "C" const gl_backend gl_backend_cuda = {
    .name = "cuda",
    .available = gl_cuda_available,
    .alloc = gl_cuda_alloc,
    .free = gl_cuda_free,
    .upload = gl_cuda_upload,
    .download = gl_cuda_download,
    .zero = gl_cuda_zero,
    .copy = gl_cuda_copy,
    .synchronize = gl_cuda_synchronize,
    .binary_fwd = cuda_binary_fwd,
    .binary_bwd = cuda_binary_bwd,
    .unary_fwd = cuda_unary_fwd,
    .unary_bwd = cuda_unary_bwd,
    .mul = gl_cuda_mul,
    .mul_acc = gl_cuda_mul_acc,
    .axpy = gl_cuda_axpy,
    .scale = cuda_scale,
    .axpy_rows = gl_cuda_axpy_rows,
    .copy_rows = gl_cuda_copy_rows,
    .gather = nullptr, /* none yet */
    .scatter_add = nullptr, /* none yet */
    .reduce_fwd = nullptr, /* none yet */
    .reduce_bwd = nullptr, /* none yet */
    .softmax_fwd = nullptr, /* none yet */
    .softmax_bwd = nullptr, /* none yet */
    .cross_entropy_fwd = cuda_cross_entropy_fwd,
    .cross_entropy_bwd = cuda_cross_entropy_bwd,
    .token_logprob_fwd = nullptr, /* none yet */
    .token_logprob_bwd = nullptr, /* none yet */
    .layernorm_fwd = gl_cuda_layernorm_fwd,
    .layernorm_bwd = gl_cuda_layernorm_bwd,
    .embedding_fwd = gl_cuda_embedding_fwd,
    .embedding_bwd = gl_cuda_embedding_bwd,
    .gemm = gl_cuda_gemm,
    .linear_fwd = cuda_linear_fwd,
    .linear_bwd = cuda_linear_bwd,
    .linear_nf4_fwd = nullptr, /* none yet */
    .linear_nf4_bwd = nullptr, /* none yet */
    .linear_q_fwd = nullptr, /* none yet */
    .linear_q_bwd = nullptr, /* none yet */
    .embedding_q = nullptr, /* none yet */
    .attention_naive_fwd = cuda_attention_naive_fwd,
    .attention_naive_bwd = cuda_attention_naive_bwd,
    .attention_flash_fwd = cuda_attention_flash_fwd,
    .attention_flash_bwd = cuda_attention_flash_bwd,
    .attention_weights = nullptr, /* none yet */
    .attention_step = cuda_attention_step,
    .rmsnorm_fwd = cuda_rmsnorm_fwd,
    .rmsnorm_bwd = nullptr, /* none yet */
    .rope_fwd = gl_cuda_rope,
    .rope_bwd = nullptr, /* none yet */
    .swiglu_fwd = gl_cuda_swiglu,
    .swiglu_bwd = nullptr, /* none yet */
    .attention_gqa = cuda_attention_gqa,
    .adam_update = gl_cuda_adam_update,
    .sgd_update = nullptr, /* none yet */
    .grad_norm = cuda_grad_norm,
    .sample = cuda_sample,
};
static_assert(GL_BACKEND_LAYOUT_OK, "gl_backend has a field outside GL_BACKEND_SLOTS");
