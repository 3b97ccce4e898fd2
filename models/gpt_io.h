/* GPT files: training checkpoints (our format, docs/formats.md) and, for pretrained weights, Hugging Face
 * safetensors + config.json. Every reader checks sizes, offsets and checksums and reports what is wrong. */
#ifndef GRADLAB_GPT_IO_H
#define GRADLAB_GPT_IO_H

#include "gpt.h"
#include "io.h" /* gl_fnv1a: the checkpoint checksum */

/* Everything besides the weights that a training run needs to continue bit for bit. */
typedef struct {
    int64_t step;      /* completed optimizer steps */
    uint64_t seed;
    gl_rng rng;        /* data sampling and dropout, as it stands after `step` steps */
    float lr, min_lr, beta1, beta2, eps, weight_decay, grad_clip, val_fraction;
    int64_t warmup_steps, decay_steps, total_steps; /* total_steps: the planned length of the run */
    int32_t batch;
    uint64_t data_hash; /* FNV-1a of the training file's bytes */
    int32_t n_symbols;  /* character vocabulary: the code point of each token id (0 with a BPE tokenizer) */
    uint32_t *symbols;
    uint64_t bpe_len;   /* BPE tokenizer in its own format (tokenizer/bpe.h), or 0 for characters */
    unsigned char *bpe;
} gpt_run_state;

/* Writes model, optimizer state and run state to path.tmp, fsyncs, renames to path. */
bool gpt_save_checkpoint(const char *path, const gpt *m, const gl_optim *opt, const gpt_run_state *s, char *err,
                         size_t err_len);
/* false with "FIELD V is outside [LO, HI]" if a run-state field is out of the range train's flags accept (a
 * resumed run trusts every one of them: batch sizes buffers, step indexes the loss curve) */
bool gpt_run_state_check(const gpt_run_state *s, char *err, size_t err_len);
/* Reads a checkpoint: builds *m from its config and weights; fills *s (s->symbols and s->bpe malloc'd). If opt_state is
 * not NULL it receives the malloc'd optimizer state (*opt_floats floats, *opt_step steps). */
bool gpt_load_checkpoint(const char *path, gpt *m, gpt_run_state *s, float **opt_state, int64_t *opt_floats,
                         int64_t *opt_step, char *err, size_t err_len);

/* Loads Hugging Face GPT-2 weights: config.json (n_layer, n_head, n_embd, n_positions, vocab_size,
 * layer_norm_epsilon) and model.safetensors (F32 tensors named as in GPT2Model, optionally prefixed
 * "transformer."). */
bool gpt_load_safetensors(const char *weights_path, const char *config_path, gpt *m, char *err, size_t err_len);

#endif
