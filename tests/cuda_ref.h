/* CPU references for the emulated CUDA tests (tests/test_cuda_emu.cpp), computed through gradlab's ops in C
 * (the core's headers are C, not C++). */
#ifndef GRADLAB_CUDA_REF_H
#define GRADLAB_CUDA_REF_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
/* gradients of sum(layernorm(x; w, b) * dy) w.r.t. x, w, b (written, not accumulated) */
void ref_layernorm_grads(int rows, int cols, const float *x, const float *w, const float *b, const float *dy,
                         float *dx, float *dw, float *db);
/* mean cross-entropy (gl_cross_entropy) and its gradient w.r.t. the logits */
float ref_cross_entropy(int rows, int V, const float *x, const int32_t *targets, int ignore, float *dx);
/* attention (gl_attention_ex, naive) output and the gradient of sum(out * dout) w.r.t. qkv */
void ref_attention(int B, int T, int C, int H, int causal, const float *qkv, const float *dout, float *out, float *dqkv);
/* gl_sample_token with temperature only (top-k 0, top-p 1), drawing from rng */
struct gl_rng;
int ref_sample_token(const float *logits, int V, float temperature, struct gl_rng *rng);
/* gl_attention_step on the CPU: appends row pos of the caches ([rows, C]) from qkv (3C) and writes out (C) */
void ref_attention_step(int C, int H, int pos, const float *qkv, float *k_cache, float *v_cache, float *out);
/* `steps` training steps of a small GPT (bias on or off, naive or flash attention, dropout, LoRA adapters on q, v
 * and the MLP's first linear with the base frozen) through the same ops
 * with its parameters on the CPU and on the CUDA device, from the same weights on the same batch (and the same
 * dropout masks): the losses of both, and the largest weight difference at the end */
void ref_gpt_steps(int bias, int flash, float dropout, int lora, int steps, float *cpu_loss, float *cuda_loss,
                   float *max_weight_diff);
/* n tokens through the KV cache on both devices: the largest logit difference; and generations of n tokens
 * (greedy without and with the cache, then temperature 0.8 without and with it: 4n tokens each) into cpu_tokens
 * and cuda_tokens */
float ref_gpt_cached_logits(int n, int32_t *cpu_tokens, int32_t *cuda_tokens);
/* the tiny Llama (tests/ref/llama_tiny.gguf) on the CPU and, dequantized, on the CUDA device: the largest logit
 * difference over a 6-token prompt and 3 decoding steps; and n greedy tokens from each (-1 after a stop) */
float ref_llama_logits(int n, int32_t *cpu_tokens, int32_t *cuda_tokens);
float ref_llama_batch_logits(void); /* llama_forward_batch on both devices: the largest logit difference */
/* an op with no CUDA path on a CUDA tensor: exits with status 1 and a message */
void ref_op_without_cuda_path(void);
/* gl_fill on a parameter moved to the device: exits with status 1 and a message */
void ref_host_access_to_a_device_tensor(void);
#ifdef __cplusplus
}
#endif
#endif
