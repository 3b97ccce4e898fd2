/* Llama-family decoders read from GGUF (SmolLM2, TinyLlama, Llama 2/3 shapes with ggml's F32/F16/Q8_0/Q4_0/Q4_1
 * weights):
 *   x = tok_embd[ids]
 *   for each block:  h = rmsnorm(x) attn_norm
 *                    q, k = rope(h Wq^T), rope(h Wk^T);  v = h Wv^T       grouped-query: n_kv_head <= n_head
 *                    x = x + attention(q, k, v over the KV cache) Wo^T
 *                    x = x + (silu(h' Wgate^T) * (h' Wup^T)) Wdown^T      h' = rmsnorm(x) ffn_norm
 *   logits = rmsnorm(x) output_norm  Wout^T                               Wout = tok_embd when the file has no output
 * Quantized weights are used where the file's mapping holds them; only the norm vectors are copied. */
#ifndef GRADLAB_LLAMA_H
#define GRADLAB_LLAMA_H

#include "bpe.h"
#include "gguf.h"
#include "gradlab.h"
#include "sample.h"

typedef struct {
    int n_layer, n_embd, n_ff, n_head, n_kv_head, head_dim, vocab_size, ctx_len, rope_dim;
    float rope_base, norm_eps;
} llama_config;

typedef struct {
    gl_tensor *attn_norm, *ffn_norm;
    gl_qmatrix wq, wk, wv, wo, gate, up, down;
} llama_layer;

typedef struct {
    llama_config cfg;
    gl_gguf *file;
    gl_qmatrix tok_embd, output;
    bool tied;          /* the output head is the token embedding */
    gl_tensor *out_norm;
    llama_layer *layers;
    gl_bpe *tok;        /* NULL if the file has no tokenizer gradlab reads */
    int32_t bos, eos, eot; /* eot: <|im_end|> for ChatML models, else eos; -1 if absent */
    bool add_bos;
    bool chatml;        /* the chat template is ChatML (<|im_start|>role\n...<|im_end|>\n) */
    char *default_system; /* the system message the template adds when a chat has none (NULL: none) */
    int64_t weight_bytes; /* bytes of every weight a token's forward reads (the decode bandwidth bound) */
    gl_device device;     /* where the forward runs (llama_to) */
    /* on a CUDA device: each matrix dequantized once to fp32 [rows, cols] there (cuBLAS multiplies them): [0] the
     * token embedding, [1] the output head (the same tensor when tied), then 7 per layer in llama_layer's order */
    gl_tensor **dense;
    /* when set (CPU only), called with the input of every matrix product, before it: i is the matrix's index in
     * dense[]'s order (llama_matrix), x its rows x cols floats. quantize collects GPTQ's Hessians through it. */
    void (*observe)(void *ctx, int i, const float *x, int rows, int cols);
    void *observe_ctx;
} llama;

/* The weight matrices by index, in dense[]'s order: 0 the token embedding, 1 the output head (the same matrix when
 * tied), then LLAMA_PER_LAYER per layer. llama_matrix_name writes the GGUF tensor name ("blk.3.ffn_down.weight"). */
enum { LLAMA_WQ, LLAMA_WK, LLAMA_WV, LLAMA_WO, LLAMA_GATE, LLAMA_UP, LLAMA_DOWN, LLAMA_PER_LAYER };
int llama_matrix_count(const llama *m);
gl_qmatrix *llama_matrix(llama *m, int i);
void llama_matrix_name(int i, char *name, size_t n);

/* Opens path (mmapped), checks the architecture and every tensor's shape and type; false with one line naming the
 * file and the problem. */
bool llama_load(llama *m, const char *path, char *err, size_t err_len);
void llama_free(llama *m);
/* Moves the model to device d. On CUDA the quantized matrices are dequantized to fp32 once (540 MB for SmolLM2-135M)
 * and the forward runs through the same ops with their CUDA kernels (plain float attention: llama.cpp's bit-exact
 * arithmetic is the CPU's). false with a message if the build or the machine has no CUDA device. */
bool llama_to(llama *m, gl_device d, char *err, size_t err_len);

typedef struct {
    int n_layer, capacity, width, len; /* len: positions filled */
    float *k, *v;                       /* per layer: k [capacity, n_kv_head * head_dim], v transposed */
    int32_t *ids;                       /* the tokens at positions 0 .. len - 1 (what a later prompt may reuse) */
    bool f16; /* llama.cpp's attention over its default fp16 cache, to the bit (ops.h gl_attention_gqa); else float */
    gl_device device;
} llama_cache;

/* a cache on the model's device */
void llama_cache_init(llama_cache *c, const llama *m, int capacity, bool f16);
void llama_cache_free(llama_cache *c);

/* Feeds tokens ids[0..T) at positions c->len.. (fatal if they do not fit the cache) and writes the logits of the
 * last one (all_logits false: vocab_size floats) or of every one (T x vocab_size). Runs without gradients and frees
 * what it allocated (a scope), nothing its caller holds. */
void llama_forward(llama *m, llama_cache *c, const int32_t *ids, int T, float *logits, bool all_logits);

/* One decoding step for n sequences at once (continuous batching): token ids[i] at position caches[i]->len of
 * caches[i] (each cache its own sequence, on the model's device), logits n x vocab_size. The linear layers run once
 * over the n rows (one GEMM over the batch instead of n GEMVs); rope and attention run per sequence at its own
 * position over its own cache. Each row's logits are bitwise those of llama_forward on that sequence alone. */
void llama_forward_batch(llama *m, llama_cache *const *caches, const int32_t *ids, int n, float *logits);
/* Generation: the prompt's tokens that the cache does not already hold (the longest common prefix of c->ids and
 * the prompt is kept, so a follow-up turn only feeds what is new), then up to max_new sampled tokens, each passed
 * to emit. Stops after emitting a stop token (m->eot or m->eos; it is not fed to the model) or when the cache is
 * full. use_cache false recomputes every position at every step (the reference the cache is tested against).
 * Returns the number of tokens emitted. */
/* Layer l alone on x (T x n_embd floats, in place) at positions c->len .. c->len + T - 1, writing that layer's keys
 * and values into c (c->len is not advanced: the caller runs the layers one after another at the same positions).
 * The same arithmetic as llama_forward's layer l: quantize runs the calibration text through the model layer by
 * layer, each layer on the outputs of the layers already quantized. CPU only. */
void llama_layer_forward(llama *m, int l, llama_cache *c, float *x, int T);

/* A window scorer for perplexity (perplexity.h's gl_lm_logits_fn): every window starts from an empty cache. */
typedef struct {
    llama *m;
    llama_cache cache;
} llama_scorer;
void llama_scorer_init(llama_scorer *s, llama *m, int window);
void llama_scorer_free(llama_scorer *s);
void llama_scorer_logits(void *scorer, const int32_t *ids, int T, float *logits);

int llama_generate(llama *m, llama_cache *c, const int32_t *prompt, int n_prompt, int max_new, const gl_sampling *s,
                   gl_rng *rng, bool use_cache, gl_emit_fn emit, void *ctx);

/* The ChatML prompt for a conversation: roles[i] ("system", "user", "assistant") with texts[i], then
 * "<|im_start|>assistant\n". The model's default system message comes first when the conversation has none, as its
 * template does. Texts are encoded as plain text: "<|im_end|>" typed by a user is text, not a control token.
 * Appends to *ids; returns the count written, or -1 if the model has no ChatML template. */
int llama_chat_ids(llama *m, const char *const *roles, const char *const *texts, int n, int32_t **ids, size_t *cap);

#endif
