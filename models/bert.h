/* BERT encoders for sentence embeddings (all-MiniLM-L6-v2: 6 layers, 384 dims, 12 heads), from Hugging Face's
 * model.safetensors and config.json:
 *   x = LayerNorm(word[ids] + position[0..T) + token_type[0])
 *   for each layer (post-LN):  x = LayerNorm(x + Wo attention(x Wqkv))          bidirectional, every token sees all
 *                              x = LayerNorm(x + W2 gelu_erf(x W1))
 *   embedding = mean of x over the T tokens, divided by its L2 norm
 * q, k and v are fused at load time into one [3C, C] matrix so attention reads them side by side (the layout of
 * gl_attention). Each text is encoded alone, so no padding and no attention mask are needed; every product is a
 * GEMM over the text's T tokens. */
#ifndef GRADLAB_BERT_H
#define GRADLAB_BERT_H

#include "gradlab.h"
#include "wordpiece.h"

typedef struct {
    int n_layer, n_embd, n_head, n_ff, vocab_size, max_pos;
    float ln_eps;
} bert_config;

typedef struct {
    gl_tensor *qkv_w, *qkv_b, *o_w, *o_b, *ln1_w, *ln1_b, *ff1_w, *ff1_b, *ff2_w, *ff2_b, *ln2_w, *ln2_b;
} bert_layer;

typedef struct {
    bert_config cfg;
    gl_tensor *word, *pos, *type, *ln_w, *ln_b;
    bert_layer *layers;
    gl_wordpiece *tok;
    int max_tokens; /* texts are truncated to this many tokens, [CLS] and [SEP] included (256 for MiniLM) */
} bert;

/* dir holds model.safetensors, config.json and vocab.txt (make data DATA_SETS=minilm); false with a message */
bool bert_load(bert *m, const char *dir, char *err, size_t err_len);
void bert_free(bert *m);
/* the L2-normalized embedding of text (cfg.n_embd floats); returns its token count; *truncated says if it was cut */
int bert_embed(bert *m, const char *text, float *out, bool *truncated);
/* the same from token ids (with [CLS] and [SEP]) */
void bert_embed_ids(bert *m, const int32_t *ids, int n, float *out);

#endif
