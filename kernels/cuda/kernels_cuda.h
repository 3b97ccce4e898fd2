/* gradlab's CUDA kernels: the GPU counterparts of kernels/cpu/kernels.h, with the same arguments on device
 * pointers. Forward kernels overwrite their outputs; backward kernels accumulate (+=) into gradients, as on the
 * CPU. Each is a host function that launches one or more kernels on the default stream; docs/kernels.md says how
 * each maps threads to data. Without a GPU they are tested through the host emulation (emu/cuda_emu.h).
 *
 * Determinism: every kernel here sums in a fixed order (no floating-point atomics), so a GPU run is repeatable
 * for a given launch configuration, except gl_cuda_embedding_bwd (atomicAdd over repeated ids). */
#ifndef GRADLAB_KERNELS_CUDA_H
#define GRADLAB_KERNELS_CUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- device memory (memory.cu): each stops the program with a message if the runtime fails ---- */
int gl_cuda_available(void); /* a device is present (always 1 in the emulation) */
void *gl_cuda_alloc(size_t bytes);
void gl_cuda_free(void *device);
void gl_cuda_upload(void *device, const void *host, size_t bytes);
void gl_cuda_download(void *host, const void *device, size_t bytes);
void gl_cuda_zero(void *device, size_t bytes);
void gl_cuda_copy(void *device_dst, const void *device_src, size_t bytes);
void gl_cuda_synchronize(void); /* waits for every launched kernel (timing) */

/* ---- elementwise ---- */
void gl_cuda_add(size_t n, const float *a, const float *b, float *out);          /* out = a + b */
void gl_cuda_axpy(size_t n, float alpha, const float *x, float *y);              /* y += alpha x */
void gl_cuda_mul(size_t n, const float *a, const float *b, float *out);          /* out = a b */
void gl_cuda_mul_acc(size_t n, const float *a, const float *b, float *y);        /* y += a b */
/* y[r * ldy + j] += alpha x[r * ldx + j] for r < rows, j < width: a block of columns (LoRA's updates) */
void gl_cuda_axpy_rows(size_t rows, size_t width, float alpha, const float *x, size_t ldx, float *y, size_t ldy);
/* y[r * ldy + j] = x[r * ldx + j]: the same block of columns copied (slices, concatenations) */
void gl_cuda_copy_rows(size_t rows, size_t width, const float *x, size_t ldx, float *y, size_t ldy);
void gl_cuda_gelu_fwd(size_t n, const float *x, float *y);                       /* GPT-2's tanh GELU */
void gl_cuda_gelu_bwd(size_t n, const float *x, const float *dy, float *dx);      /* dx += dy gelu'(x) */
void gl_cuda_add_bias(size_t rows, size_t cols, const float *b, float *y);        /* y[r, :] += b */
void gl_cuda_bias_grad(size_t rows, size_t cols, const float *dy, float *db);     /* db += column sums of dy */

/* ---- reductions ---- */
/* *out (device) = sum of x[0..n) in a fixed order; scratch holds gl_cuda_sum_scratch(n) floats */
size_t gl_cuda_sum_scratch(size_t n);
void gl_cuda_sum(size_t n, const float *x, float *scratch, float *out);
/* *out (device) = sum of x[i]^2 over the n_bufs buffers (for the gradient norm); same scratch rule, for the
 * total length */
void gl_cuda_sum_squares(int n_bufs, const float *const *bufs, const size_t *lens, float *scratch, float *out);
void gl_cuda_scale(size_t n, const float *factor, float *x);                    /* x *= *factor (device scalar) */
/* *factor = max_norm / (norm + 1e-6) if norm = sqrt(*sum_squares) > max_norm > 0, else 1 (gl_clip_grad_norm's rule) */
void gl_cuda_clip_factor(const float *sum_squares, float max_norm, float *factor);

/* ---- layernorm over rows of cols: as layernorm_rows; mean and rstd (rows each) are saved for backward ---- */
void gl_cuda_layernorm_fwd(size_t rows, size_t cols, const float *x, const float *w, const float *b, float eps,
                           float *y, float *mean, float *rstd);
/* dx, dw, db += (any may be NULL) */
void gl_cuda_layernorm_bwd(size_t rows, size_t cols, const float *x, const float *w, const float *mean,
                           const float *rstd, const float *dy, float *dx, float *dw, float *db);

/* ---- embedding: out[i, :] = weight[ids[i], :]; backward dweight[ids[i], :] += dout[i, :] ---- */
void gl_cuda_embedding_fwd(size_t n, size_t cols, const int32_t *ids, const float *weight, float *out);
void gl_cuda_embedding_bwd(size_t n, size_t cols, const int32_t *ids, const float *dout, float *dweight);

/* ---- fused softmax + cross-entropy over rows of V logits ----
 * forward: lse[r] = log sum exp(x[r]), row_loss[r] = lse[r] - x[r, target[r]] (0 where target == ignore)
 * backward: dx[r, j] += scale * (exp(x[r, j] - lse[r]) - [j == target[r]]) for rows not ignored */
void gl_cuda_cross_entropy_fwd(size_t rows, size_t V, const float *x, const int32_t *targets, int ignore, float *lse,
                               float *row_loss);
void gl_cuda_cross_entropy_bwd(size_t rows, size_t V, const float *x, const int32_t *targets, int ignore,
                               const float *lse, float scale, float *dx);

/* ---- AdamW: as adam_update in kernels/cpu/kernels.h ---- */
void gl_cuda_adam_update(size_t n, float *w, const float *g, float *m, float *v, float lr, float beta1, float beta2,
                         float eps, float l2, float decoupled, float bc1, float bc2);

/* ---- attention on the fused qkv layout [B, T, 3C] -> out [B, T, C], H heads, causal or not ----
 * naive: keeps the probabilities P [B, H, T, T]; its backward needs dS scratch of the same size.
 * flash: keeps each row's log-sum-exp lse [B, H, T]; its backward needs D scratch [B, H, T].
 * Backward kernels add into dqkv [B, T, 3C]. */
void gl_cuda_attention_naive_fwd(int B, int T, int C, int H, int causal, const float *qkv, float *out, float *P);
void gl_cuda_attention_naive_bwd(int B, int T, int C, int H, int causal, const float *qkv, const float *P,
                                 const float *dout, float *dS, float *dqkv);
void gl_cuda_attention_flash_fwd(int B, int T, int C, int H, int causal, const float *qkv, float *out, float *lse);
void gl_cuda_attention_flash_bwd(int B, int T, int C, int H, int causal, const float *qkv, const float *out,
                                 const float *lse, const float *dout, float *D, float *dqkv);

/* one decoding step (inference): appends the k and v of qkv (one row of 3C) at row pos of the caches
 * ([rows, C] each), and out (C) = softmax(q k^T / sqrt(hs)) v over cached rows 0..pos per head; scores holds
 * H * (pos + 1) floats of scratch */
void gl_cuda_attention_step(int C, int H, int pos, const float *qkv, float *k_cache, float *v_cache, float *scores,
                            float *out);

/* the next token from one row of V logits (sample.cu): the argmax when temperature <= 0, else the token where
 * u * total falls in the running sum of exp((x - max) / temperature) over ids in order (gl_sample_token's rule
 * without top-k/top-p; u in [0, 1) from the host's generator); written to *token (device) */
void gl_cuda_sample(int V, const float *logits, float temperature, double u, int32_t *token);

/* ---- Llama-family decoders (decoder.cu), inference ----
 * rmsnorm: y = x / sqrt(mean(x^2) + eps) w per row; rope: in place on x [T, n_head * hd], pairs (2i, 2i+1) of the
 * first rope_dim dims of each head rotated by (pos0 + t) base^(-2i/rope_dim); swiglu: y = a / (1 + e^-a) b;
 * attention_gqa: appends k, v [T, n_kv_head * hd] at positions pos.. of k_cache [capacity, n_kv_head * hd] and the
 * transposed v_cache [n_kv_head * hd, capacity], then out [T, n_head * hd] = causal softmax(q k^T / sqrt(hd)) v with
 * query head h on kv head h / (n_head / n_kv_head); scores holds T * n_head * (pos + T) floats of scratch */
void gl_cuda_rmsnorm_fwd(size_t rows, size_t cols, const float *x, const float *w, float eps, float *y);
void gl_cuda_rope(int T, int n_head, int hd, int pos0, float base, int rope_dim, float *x);
void gl_cuda_swiglu(size_t n, const float *a, const float *b, float *y);
void gl_cuda_attention_gqa(int T, int n_head, int n_kv_head, int hd, int pos, int capacity, const float *q,
                           const float *k, const float *v, float *k_cache, float *v_cache, float *scores, float *out);

/* ---- matrix multiply: gl_gemm's contract (row-major, C = alpha op(A) op(B) + beta C) through cuBLAS ---- */
void gl_cuda_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                  int ldb, float beta, float *C, int ldc);

/* ---- the backend table (backend.cu): these kernels, and the adapters that make whole ops of them, in the slots of
 * kernels/backend.h (gl_backend_cuda). The core declares it weak: a CPU-only build links without it and its ops
 * report that the build has no CUDA backend. */

#ifdef __cplusplus
}
#endif

#endif
