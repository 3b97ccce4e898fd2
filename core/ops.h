/* gradlab ops: each builds its output in the arena and, when a gradient is needed, records one tape node.
 * Forward and backward of an op sit next to each other in one file:
 *   ops_elementwise.c  add sub mul div (broadcasting), add_scalar mul_scalar, exp log tanh sigmoid log_sigmoid
 *                      relu gelu
 *   ops_matmul.c       matmul (2-D and batched; transposed views go to the GEMM as flags, never copied)
 *   ops_reduce.c       sum, mean (over an axis or all)
 *   ops_nn.c           softmax, log_softmax, cross_entropy, token_logprob, layernorm, embedding, dropout
 *   ops_shape.c        reshape, transpose, contiguous, slice, concat, add_columns
 *   ops_decoder.c      what Llama-family decoders add: rmsnorm, rope, swiglu, linear_q and embedding_q (weights in
 *                      ggml's quantized blocks, used in place), attention_gqa over a KV cache
 * Inputs that are non-contiguous views are made contiguous first (a recorded copy) except by matmul.
 * A shape error stops the program with a message naming the op and the shapes involved.
 */
#ifndef GRADLAB_OPS_H
#define GRADLAB_OPS_H

#include "rng.h"
#include "tensor.h"

/* ---- elementwise; binary ops broadcast as NumPy does (align trailing dims; size-1 dims stretch) ---- */
gl_tensor *gl_add(gl_tensor *a, gl_tensor *b);
gl_tensor *gl_sub(gl_tensor *a, gl_tensor *b);
gl_tensor *gl_mul(gl_tensor *a, gl_tensor *b);
gl_tensor *gl_div(gl_tensor *a, gl_tensor *b);
gl_tensor *gl_add_scalar(gl_tensor *a, float s);
gl_tensor *gl_mul_scalar(gl_tensor *a, float s);
gl_tensor *gl_exp(gl_tensor *x);
gl_tensor *gl_log(gl_tensor *x);
gl_tensor *gl_tanh(gl_tensor *x);
gl_tensor *gl_sigmoid(gl_tensor *x);
gl_tensor *gl_log_sigmoid(gl_tensor *x); /* log(1 / (1 + e^-x)), stable for any x: the Bradley-Terry and DPO losses */
gl_tensor *gl_relu(gl_tensor *x);
gl_tensor *gl_gelu(gl_tensor *x); /* tanh approximation, as GPT-2 */
gl_tensor *gl_gelu_erf(gl_tensor *x); /* x Phi(x) with the exact normal CDF (erf), as BERT */

/* ---- matmul: a [..., M, K] @ b [..., K, N] -> [..., M, N]; b may be 2-D (shared by every batch) ---- */
gl_tensor *gl_matmul(gl_tensor *a, gl_tensor *b);
/* fused linear layer: x [..., K] @ w [K, N] + bias [N] (bias may be NULL) -> [..., N] */
gl_tensor *gl_linear(gl_tensor *x, gl_tensor *w, gl_tensor *bias);
/* dst[:, col0 : col0 + N] += alpha a @ b, in place and outside autograd (merging LoRA adapters into a column block
 * of a weight); a [M, K], b [K, N], dst [M, >= col0 + N], all contiguous on one device */
void gl_matmul_acc(gl_tensor *dst, int col0, const gl_tensor *a, const gl_tensor *b, float alpha);

/* linear with a frozen 4-bit NF4 weight [in, out] (kernels.h gl_nf4): dequantised inside the GEMM, never copied
 * to fp32; gradients flow to x and bias only */
struct gl_nf4;
gl_tensor *gl_linear_nf4(gl_tensor *x, const struct gl_nf4 *w, gl_tensor *bias);
/* A [rows, cols] parameter turned into its NF4 codes (its fp32 values are freed and it is frozen; NULL if out of
 * memory), and back (the codes freed); the codes' size in bytes; freeing codes alone */
struct gl_nf4 *gl_nf4_from_param(gl_tensor *w);
void gl_nf4_to_param(struct gl_nf4 *q, gl_tensor *w);
size_t gl_nf4_size(const struct gl_nf4 *q);
void gl_nf4_release(struct gl_nf4 *q);

/* ---- attention (ops_attention.c) ----
 * Causal multi-head self-attention, fused: qkv [B, T, 3C] holds q, k, v side by side (head h of q in columns
 * h*hs .. h*hs+hs-1, k after C, v after 2C); out [B, T, C] = softmax(q k^T / sqrt(hs), causal) v per head. */
gl_tensor *gl_attention(gl_tensor *qkv, int n_head); /* causal, naive */
/* naive: materialises the T x T probabilities (saved for backward); flash: tiles with the online softmax and
 * saves only each row's log-sum-exp (memory linear in T). causal = false attends to every key. */
typedef enum { GL_ATTN_NAIVE, GL_ATTN_FLASH } gl_attn_impl;
gl_tensor *gl_attention_ex(gl_tensor *qkv, int n_head, bool causal, gl_attn_impl impl);
/* the probabilities softmax(q k^T / sqrt(hs)) per head, [B, n_head, T, T] (for inspection; records nothing) */
gl_tensor *gl_attention_weights(gl_tensor *qkv, int n_head, bool causal);
/* One decoding step with a KV cache (inference only): appends the k, v of qkv [1, 3C] at row pos of the caches
 * ([block_size, C] each) and returns the attention of its q over rows 0..pos, [1, C]. */
gl_tensor *gl_attention_step(gl_tensor *qkv, float *k_cache, float *v_cache, int pos, int n_head);
/* Decoding steps for n rows at once (inference only): row i of qkv [n, 3C] is a token at position pos[i] of the
 * sequence with caches k_caches[i], v_caches[i]; returns [n, C]. Rows run in order, so several rows of one sequence
 * (a prompt) attend causally to each other, and rows of different sequences (a batch) never meet. */
gl_tensor *gl_attention_rows(gl_tensor *qkv, float *const *k_caches, float *const *v_caches, const int *pos,
                             int n_head);

/* ---- reductions ---- */
gl_tensor *gl_sum(gl_tensor *x, int axis, bool keepdim);
gl_tensor *gl_mean(gl_tensor *x, int axis, bool keepdim);
gl_tensor *gl_sum_all(gl_tensor *x);  /* shape [] */
gl_tensor *gl_mean_all(gl_tensor *x); /* shape [] */

/* ---- neural-net ops ---- */
gl_tensor *gl_softmax(gl_tensor *x);     /* over the last axis */
gl_tensor *gl_log_softmax(gl_tensor *x); /* over the last axis */
/* mean over rows of -log softmax(logits)[target]; logits [..., V], targets: one int per row (numel / V of them).
 * Rows whose target == ignore_index are skipped (pass a negative value such as -1 to skip none you use);
 * if every row is ignored the loss is 0. A target outside [0, V) that is not ignore_index is fatal. */
gl_tensor *gl_cross_entropy(gl_tensor *logits, const int32_t *targets, int ignore_index);
/* log softmax(logits)[target] per row: logits [..., V] -> [...]; rows whose target == ignore_index give 0 (and no
 * gradient). Summed over a sequence's positions it is the sequence's log-probability (DPO's log pi(y|x)). */
gl_tensor *gl_token_logprob(gl_tensor *logits, const int32_t *targets, int ignore_index);
/* over the last axis: (x - mean) / sqrt(var + eps) * w + b; w, b of shape [C] or NULL */
gl_tensor *gl_layernorm(gl_tensor *x, gl_tensor *w, gl_tensor *b, float eps);
/* rows of weight [V, C] picked by ids; out shape = ids_shape + [C] */
gl_tensor *gl_embedding(gl_tensor *weight, const int32_t *ids, int ids_ndim, const int *ids_shape);
/* zero each element with probability p and scale the rest by 1/(1-p); identity when !training or p == 0 */
gl_tensor *gl_dropout(gl_tensor *x, float p, gl_rng *rng, bool training);

/* ---- shape ---- */
gl_tensor *gl_reshape(gl_tensor *x, int ndim, const int *shape); /* one size may be -1 */
gl_tensor *gl_transpose(gl_tensor *x, int dim0, int dim1);       /* a view */
gl_tensor *gl_contiguous(gl_tensor *x);                          /* x itself if already contiguous */
gl_tensor *gl_slice(gl_tensor *x, int axis, int start, int end); /* [start, end) along axis; a view when
                                                                    that range is one contiguous block */
gl_tensor *gl_concat(gl_tensor *const *xs, int n, int axis);
/* y + scale * d[k] placed in y's last-axis columns [col0[k], col0[k] + width of d[k]) for k < n (n <= 3): LoRA
 * updates of some of a linear's outputs (q and v of c_attn) in one tensor, without zeros for the rest */
gl_tensor *gl_add_columns(gl_tensor *y, int n, gl_tensor *const *d, const int *col0, float scale);

/* ---- Llama-family decoders (ops_decoder.c) ---- */
/* over the last axis: x / sqrt(mean(x^2) + eps) * w; w of shape [C] (the mean of squares summed in double) */
gl_tensor *gl_rmsnorm(gl_tensor *x, gl_tensor *w, float eps);
/* Rotary position embedding of x [T, n_head * hd], row t at position pos0 + t: in each head, the pairs
 * (x[2i], x[2i+1]) for 2i < rope_dim are rotated by (pos0 + t) * base^(-2i / rope_dim); the rest pass. This is
 * the adjacent-pair form that GGUF's llama weights are stored for (llama.cpp's rope type 0). */
gl_tensor *gl_rope(gl_tensor *x, int n_head, int pos0, float base, int rope_dim);
/* silu(a) * b elementwise (equal shapes), silu(a) = a / (1 + e^-a): the gated MLP of Llama */
gl_tensor *gl_swiglu(gl_tensor *a, gl_tensor *b);
/* A weight matrix in one of ggml's types, used where it lies (a mapped GGUF file): rows rows of cols values, row after
 * row. type is ggml's (and GGUF's) number: 0 F32, 1 F16, 2 Q4_0, 3 Q4_1, 8 Q8_0 (layouts in docs/formats.md). */
typedef struct gl_qmatrix {
    int type;
    int rows, cols;
    const void *data;
} gl_qmatrix;
/* whether the kernels compute with this type at this row width (block types need a multiple of 32) */
bool gl_qmatrix_supported(int type, int cols);
/* every value of q as floats, rows * cols of them into dst */
void gl_qmatrix_to_floats(const gl_qmatrix *q, float *dst);
/* x [..., K] W^T -> [..., N] for a weight of N rows of K values, multiplied in place, never expanded; gradients
 * flow to x only */
gl_tensor *gl_linear_q(gl_tensor *x, const gl_qmatrix *w);
/* rows ids[0..n) of a [V, C] table in a block format, dequantized: [n, C] (no gradient) */
gl_tensor *gl_embedding_q(const gl_qmatrix *table, const int32_t *ids, int n);
/* Grouped-query causal attention over a KV cache (inference only). q [T, n_head * hd], k and v [T, n_kv_head * hd]
 * for positions pos .. pos + T - 1 (pos + T <= capacity): their keys go into rows pos.. of k_cache ([capacity,
 * n_kv_head * hd]) and their values into columns pos.. of v_cache, which is stored transposed ([n_kv_head * hd,
 * capacity]: one row per dimension, as llama.cpp stores it). Query head h attends to kv head h / (n_head /
 * n_kv_head) over positions 0 .. its own. kv_f16: llama.cpp's attention with its default fp16 cache, operation
 * for operation (keys, values, q and the probabilities rounded to fp16, its sum orders and expf), so a GGUF model
 * gives llama.cpp's logits to the bit; else plain float attention. -> [T, n_head * hd] */
gl_tensor *gl_attention_gqa(gl_tensor *q, gl_tensor *k, gl_tensor *v, float *k_cache, float *v_cache, int capacity,
                            int pos, int n_head, int n_kv_head, bool kv_f16);

#endif
