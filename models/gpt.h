/* GPT-2 architecture on the gradlab core ("nanoGPT in C"):
 *   x = wte[idx] + wpe[pos]                           token + learned position embeddings
 *   for each block:  x = x + proj(attention(ln_1(x)))  pre-LayerNorm, causal multi-head self-attention
 *                    x = x + fc_proj(gelu(fc(ln_2(x))))  4x MLP with GELU (tanh form)
 *   logits = ln_f(x) wte[:V]^T                         output projection tied to the token embedding
 * Linear weights are stored [in, out] (x @ W), as Hugging Face's GPT-2 Conv1D stores them. The vocabulary is
 * padded to padded_vocab_size rows of wte (a multiple of 64, as llm.c does); logits are only computed for the
 * first vocab_size rows, so padded entries are never sampled and get no gradient.
 * Parameters live in one canonical order (gpt.params) used by checkpoints, the PyTorch reference and the
 * optimizer; their names follow Hugging Face's ("h.0.attn.c_attn.weight"). */
#ifndef GRADLAB_GPT_H
#define GRADLAB_GPT_H

#include "gradlab.h"

typedef struct {
    int n_layer, n_head, n_embd, block_size, vocab_size, padded_vocab_size;
    float dropout;  /* on the embedding sum and on each residual branch (not on attention probabilities) */
    bool bias;      /* biases in linear layers and layernorms */
    float ln_eps;   /* 1e-5 */
} gpt_config;

typedef struct {
    gl_tensor *ln1_w, *ln1_b, *attn_w, *attn_b, *proj_w, *proj_b;
    gl_tensor *ln2_w, *ln2_b, *fc_w, *fc_b, *fcproj_w, *fcproj_b;
} gpt_block;

/* ---- LoRA and QLoRA (models/gpt_lora.c) ----
 * An adapter adds scale * (x A) B to some output columns of one linear layer: A [in, r], B [r, width], scale =
 * alpha / r. A starts uniform in +-1/sqrt(in) (PyTorch's nn.Linear default, as PEFT), B at zero, so the adapted
 * model starts exactly equal to the base. Targets, by letter: q, k, v (the three column thirds of attn.c_attn),
 * o (attn.c_proj), f (mlp.c_fc), p (mlp.c_proj). With adapters attached every base parameter is frozen (no
 * gradient, no optimizer state); QLoRA additionally stores the four linear weights of each block in NF4. */
enum { GPT_LINEAR_ATTN, GPT_LINEAR_PROJ, GPT_LINEAR_FC, GPT_LINEAR_FCPROJ, GPT_LINEARS };
typedef struct {
    int rank;
    float alpha;
    char targets[8]; /* letters from "qkvofp", in that order */
} gpt_lora_config;

typedef struct {
    gl_tensor *a, *b;
    int layer, linear, col0; /* columns col0 .. col0 + width of that linear's output */
    char target;
} gpt_adapter;

typedef struct {
    gpt_config cfg;
    gl_tensor *wte, *wpe, *lnf_w, *lnf_b;
    gpt_block *blocks;
    gl_tensor **params;
    int n_params;
    int64_t n_weights; /* floats in all parameters */
    gl_attn_impl attention; /* naive (default) or flash: a run-time choice, not part of the checkpoint */
    gl_device device;       /* where the parameters are (gpt_to); the forward runs there, through the same ops */
    char *names;       /* storage of the parameter names */
    /* fine-tuning state: adapters (n_adapters 0: none), the tensors an optimizer should update (all params, or
     * the adapters' A and B), and NF4 copies of the block linears (NULL unless quantised; their fp32 data freed) */
    gpt_lora_config lora;
    gpt_adapter *adapters;
    int n_adapters;
    gl_tensor **trainable;
    int n_trainable;
    struct gl_nf4 **nf4; /* [n_layer * GPT_LINEARS], QLoRA's 4-bit base (core/ops.h gl_nf4_from_param) */
    /* when set (CPU), called with the input of every block linear before it (x: rows x cols floats); gpt_quantize
     * collects GPTQ's Hessians through it */
    void (*observe)(void *ctx, int layer, int linear, const float *x, int rows, int cols);
    void *observe_ctx;
} gpt;

/* vocab rounded up to a multiple of 64 */
int gpt_padded_vocab(int vocab_size);
/* Checks the config (positive sizes, n_embd divisible by n_head, ...); on error writes a message into err
 * and returns false. */
bool gpt_config_check(const gpt_config *c, char *err, size_t err_len);
/* Allocates zeroed parameters in canonical order (the config must pass gpt_config_check). */
/* the number of weights gpt_build allocates for c (readers check a file can hold them before building) */
int64_t gpt_config_weights(const gpt_config *c);
void gpt_build(gpt *m, gpt_config cfg);
/* GPT-2 initialisation: weights N(0, 0.02), residual projections N(0, 0.02/sqrt(2 n_layer)), biases 0,
 * layernorm gains 1, padded embedding rows 0. Matrices get weight decay, vectors do not. */
void gpt_init(gpt *m, uint64_t seed);
/* the final layernorm's output [B, T, n_embd]: what the output head (or a reward head) reads */
gl_tensor *gpt_hidden(gpt *m, const int32_t *idx, int B, int T, gl_rng *rng, bool training);
/* logits [B, T, vocab_size] for token ids idx [B, T] (T <= block_size); rng drives dropout when training */
gl_tensor *gpt_forward(gpt *m, const int32_t *idx, int B, int T, gl_rng *rng, bool training);
/* mean cross-entropy of the next tokens targets [B, T] (-1 = ignore) */
gl_tensor *gpt_loss(gpt *m, const int32_t *idx, const int32_t *targets, int B, int T, gl_rng *rng, bool training);
/* Knowledge distillation (Hinton et al. 2015): alpha * temp^2 * KL(softmax(t / temp) || softmax(s / temp)) +
 * (1 - alpha) * cross-entropy(s, targets), per position, for the student's logits s and the teacher's t on the same
 * tokens (the teacher runs without gradients, in evaluation mode). temp^2 keeps the soft term's gradients on the
 * scale of the hard one's as temp grows. The vocabularies must be the same. */
gl_tensor *gpt_distill_loss(gpt *student, gpt *teacher, const int32_t *idx, const int32_t *targets, int B, int T,
                            float temp, float alpha, gl_rng *rng, bool training);
gl_tensor *gpt_param(const gpt *m, const char *name); /* by name, NULL if absent */
/* One of block l's four linear layers applied to x: the fp32 or NF4 base weight, plus its adapters if any. */
gl_tensor *gpt_block_linear(gpt *m, int l, int linear, gl_tensor *x);
void gpt_lora_free(gpt *m);
/* ---- post-training quantization (models/gpt_quant.c) ----
 * The four linear weights of every block, and the token embedding (which is also the output head), rounded to a
 * block type of kernels.h (Q8_0, Q4_0, Q4_1, Q3_0: 32 input weights per scale) and stored back as the values they
 * decode to: the checkpoint format holds fp32, so the model computes exactly what the quantized weights give, and
 * the size the weights would take in that format is reported. GPTQ (gptq true) quantizes one block at a time on
 * calibration sequences (n_seq x T ids) run through the blocks already quantized (act_order: kernels.h
 * gl_gptq_quantize); otherwise round to nearest.
 * embd_type: the embedding's type (GL_QT_F32 keeps it). false with a message (a bad calibration set). */
typedef struct {
    int64_t weights, bytes;          /* of the quantized matrices, in the block format */
    double error, error_rtn;         /* GPTQ: the blocks' output error (sum over matrices), and round to nearest's */
} gpt_quant_report;
bool gpt_quantize(gpt *m, int type, int embd_type, bool gptq, bool act_order, const int32_t *calib, int n_seq, int T,
                  double damp, gpt_quant_report *report, char *err, size_t err_len); /* drops adapters and NF4 weights (gpt_free calls it) */
/* Moves every parameter to device d: gpt_forward, gpt_loss and the KV-cache path then run there unchanged, and
 * one copy of the batch goes in and one float of loss comes out per step. LoRA adapters move with the model; NF4
 * (QLoRA) weights stay on the CPU (false with a message). Checkpoints read the parameters on the CPU. */
bool gpt_to(gpt *m, gl_device d, char *err, size_t err_len);
void gpt_free(gpt *m);

/* "r=8,alpha=16,targets=qv" (any subset, defaults r 8, alpha 16, targets qv); false with a message */
bool gpt_lora_parse(const char *spec, gpt_lora_config *c, char *err, size_t err_len);
/* Attaches fresh adapters (A drawn from seed) and freezes the base. */
void gpt_lora_attach(gpt *m, gpt_lora_config c, uint64_t seed);
/* Stores the block linears' weights in NF4 and frees their fp32 data (QLoRA); forward passes then use them. */
void gpt_quantize_nf4(gpt *m);
/* Folds the adapters into the weights (W[:, cols] += scale A B; an NF4 base is dequantised first) and removes
 * them: the model is a plain GPT again, every parameter trainable. */
void gpt_lora_merge(gpt *m);
/* Adapters alone, apart from the base checkpoint (docs/formats.md). Loading checks that they fit m: layers,
 * width, targets and every shape; on a mismatch it names what differs and leaves m untouched. Adapters trained
 * with QLoRA record it, and loading them quantises an fp32 base first: the model is then exactly the one trained. */
bool gpt_lora_save(const gpt *m, const char *path, char *err, size_t err_len);
bool gpt_lora_load(gpt *m, const char *path, char *err, size_t err_len);
int64_t gpt_trainable_weights(const gpt *m);
size_t gpt_base_weight_bytes(const gpt *m); /* the base parameters as stored: fp32, or NF4 for quantised linears */

/* ---- inference with a KV cache: one token at a time ---- */
typedef struct {
    int n_layer, block_size, n_embd, len; /* len: positions filled (lowering it forgets the positions after) */
    float *k, *v;                         /* [n_layer, block_size, n_embd] each, on the model's device */
    int32_t *ids;                         /* the tokens at positions 0 .. len - 1 (host), for prefix reuse */
    gl_device device;
} gpt_kv_cache;

void gpt_kv_cache_init(gpt_kv_cache *c, const gpt *m);
void gpt_kv_cache_free(gpt_kv_cache *c);
/* Feeds `token` at position c->len, appends its keys and values, and writes the next-token logits
 * (vocab_size floats). Runs without recording gradients; frees what it allocated (a scope), nothing else.
 * Fatal if the cache is full. */
void gpt_forward_cached(gpt *m, gpt_kv_cache *c, int32_t token, float *logits);
/* the same, leaving the logits [1, vocab_size] where the model is, in the current arena: the caller frees the
 * step's tensors (gl_scope_end, as gl_generate does per token, or gl_step_reset) */
gl_tensor *gpt_forward_cached_logits(gpt *m, gpt_kv_cache *c, int32_t token);
/* n rows at once: token i at the next position of caches[i]; rows that share a cache take its positions in order
 * (a prompt: one forward for all its tokens), rows of different caches are independent sequences (continuous
 * batching: the linear layers run as one GEMM over the n rows). Logits [n, vocab_size], or [1, vocab_size] of the
 * last row with last_only, where the model is, in the current arena (as gpt_forward_cached_logits). With n = 1
 * this is gpt_forward_cached_logits; with more rows the GEMMs sum in another order than the one-row product, so
 * the logits agree to rounding rather than to the bit. */
gl_tensor *gpt_forward_rows(gpt *m, gpt_kv_cache *const *caches, const int32_t *tokens, int n, bool last_only);

#endif
