/* Optimizers over a list of parameters, with PyTorch's update rules (so a step can be checked against
 * torch.optim by hand or by a reference script):
 *   SGD:   g = grad + wd * p;  buf = momentum * buf + g (buf = g on the first step);  p -= lr * buf
 *   Adam:  g = grad + wd * p (L2, coupled);  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
 *          p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 *   AdamW: as Adam with g = grad, after a decoupled decay p -= lr * wd * p
 * Parameters flagged no_weight_decay (biases, norm gains) get no decay in any of them.
 * The optimizer state (m, v or momentum buffers, step count) lives in one flat block so it can be saved.
 */
#ifndef GRADLAB_OPTIM_H
#define GRADLAB_OPTIM_H

#include "tensor.h"

typedef enum { GL_SGD, GL_ADAM, GL_ADAMW } gl_optim_kind;

typedef struct gl_optim {
    gl_optim_kind kind;
    float lr, momentum, beta1, beta2, eps, weight_decay;
    int64_t step; /* completed steps */
    int n_params;
    gl_tensor **params;
    float *state;        /* per parameter: SGD 1 buffer, Adam/AdamW 2 (m then v), each numel floats */
    int64_t state_floats;
    gl_device device;    /* where state lives: the parameters' device (Adam/AdamW only on CUDA) */
    int64_t shard_lo, shard_hi; /* ZeRO-1: Adam/AdamW state and updates only for the flat range [lo, hi) of the
                                 * parameters in order (m for the range, then v); 0, 0: all of them */
} gl_optim;

gl_optim *gl_sgd(gl_tensor *const *params, int n, float lr, float momentum, float weight_decay);
gl_optim *gl_adam(gl_tensor *const *params, int n, float lr, float beta1, float beta2, float eps, float weight_decay);
gl_optim *gl_adamw(gl_tensor *const *params, int n, float lr, float beta1, float beta2, float eps, float weight_decay);
void gl_optim_step(gl_optim *o);
/* An Adam/AdamW (CPU) that keeps state for and updates only the flat range [lo, hi) of its parameters (ZeRO-1 in
 * data-parallel training: each rank one slice; the others' slices arrive by all-gather). */
gl_optim *gl_adamw_shard(gl_tensor *const *params, int n, float lr, float beta1, float beta2, float eps,
                         float weight_decay, int64_t lo, int64_t hi);
void gl_optim_zero_grad(gl_optim *o);
/* A sharded Adam/AdamW's state against the full layout that checkpoints hold (per parameter: m, then v): writes its
 * range into full (leaving the rest as it is), or takes its range from full. */
void gl_optim_state_to_full(const gl_optim *o, float *full);
void gl_optim_state_from_full(gl_optim *o, const float *full);
void gl_optim_free(gl_optim *o);
/* Moves the state to device d (checkpoints read and write it on the CPU; the parameters move with gl_param_to). */
void gl_optim_to(gl_optim *o, gl_device d);

/* Scale all gradients so their global L2 norm is at most max_norm; returns the norm before clipping.
 * The norm is summed in double in parameter order: deterministic (on the CUDA device, in float in a fixed order). */
float gl_clip_grad_norm(gl_tensor *const *params, int n, float max_norm);

/* Gradients as one flat host buffer (gradient accumulation over micro-batches, and the all-reduce of data-parallel
 * training, core/dist.h), in parameter order: */
size_t gl_grads_count(gl_tensor *const *params, int n);                            /* total floats */
void gl_grads_accumulate(gl_tensor *const *params, int n, float *sum);             /* sum[k] += grad[k] */
void gl_grads_assign(gl_tensor *const *params, int n, const float *sum, float scale); /* grad[k] = sum[k] * scale */

/* nanoGPT's schedule, step counted from 0: lr_max * (step + 1) / warmup_steps during warmup, then a cosine from
 * lr_max down to lr_min at decay_steps, then lr_min. */
float gl_lr_warmup_cosine(int64_t step, int64_t warmup_steps, int64_t decay_steps, float lr_max, float lr_min);

#endif
