/* The GPT training step on a CUDA device (models/gpt_cuda.c), written as llm.c writes its GPU step: a forward that
 * keeps the activations the backward needs, a backward that mirrors it call for call, gradient clipping and
 * AdamW - every array on the device, one copy of the batch in and one float (the loss) out per step. The
 * arithmetic is gpt.c's (same parameters in the same canonical order, same AdamW and clipping rules), so a run
 * can be checked step by step against the CPU model; tests do it through the CUDA emulation.
 * Limits for now: naive attention, dropout 0, fp32; generation recomputes its window (no KV cache on the device). */
#ifndef GRADLAB_GPT_CUDA_H
#define GRADLAB_GPT_CUDA_H

#include "gpt.h"

typedef struct gpt_cuda gpt_cuda;

/* Copies m's weights to the device and sizes the activations for batches of B x T (T <= block_size).
 * NULL with a message if the model has adapters or NF4 weights, dropout, or an unsupported shape. */
gpt_cuda *gpt_cuda_create(const gpt *m, int B, int T, char *err, size_t err_len);
/* One step on x, y [B, T] (host arrays): forward, backward, clipping at max_norm (0: none), AdamW with the CPU
 * optimizer's rules (decay on matrices only); returns the loss before the update. */
float gpt_cuda_train_step(gpt_cuda *g, const int32_t *x, const int32_t *y, float lr, float beta1, float beta2,
                          float eps, float weight_decay, float max_norm);
/* mean loss of a batch without updating anything */
float gpt_cuda_loss(gpt_cuda *g, const int32_t *x, const int32_t *y);
/* generation (a model created for batch 1): the next-token logits (vocab_size floats, copied to the host) after
 * ids[0 .. n), n <= the created T. The window is recomputed at every call: there is no device KV cache yet. */
void gpt_cuda_next_logits(gpt_cuda *g, const int32_t *ids, int n, float *logits);
/* the device weights back into m (for checkpoints and sampling) */
void gpt_cuda_download(const gpt_cuda *g, gpt *m);
/* AdamW's state in the CPU optimizer's layout (per parameter: n first moments, then n second moments) and its step
 * count: copied out of the device (to_host) or into it, so checkpoints and --resume work across devices */
void gpt_cuda_adam_state(gpt_cuda *g, float *state, int64_t *step, bool to_host);
void gpt_cuda_free(gpt_cuda *g);

#endif
