/* A character-level MLP language model (Bengio et al. 2003, as in makemore): the previous `context` characters
 * are embedded, concatenated, passed through one hidden layer (linear -> layernorm -> GELU -> dropout) and a
 * linear read-out to next-character logits. The engine's demo model until the GPT arrives; it uses embedding,
 * reshape, matmul with broadcast bias, layernorm, GELU, dropout and cross-entropy. */
#ifndef GRADLAB_CHAR_MLP_H
#define GRADLAB_CHAR_MLP_H

#include "gradlab.h"

typedef struct {
    int vocab, context, n_embd, hidden;
    float dropout;
} char_mlp_config;

enum { CHAR_MLP_N_PARAMS = 7 };

typedef struct {
    char_mlp_config cfg;
    gl_tensor *wte, *w1, *b1, *ln_w, *ln_b, *w2, *b2;
    gl_tensor *params[CHAR_MLP_N_PARAMS];
} char_mlp;

/* weights ~ N(0, 1/sqrt(fan_in)) drawn from `seed`, biases 0, layernorm gain 1 */
void char_mlp_init(char_mlp *m, char_mlp_config cfg, uint64_t seed);
/* ids: batch x context character ids; returns logits [batch, vocab]. rng drives dropout when training. */
gl_tensor *char_mlp_forward(char_mlp *m, const int32_t *ids, int batch, gl_rng *rng, bool training);
int64_t char_mlp_n_params(const char_mlp *m);
void char_mlp_free(char_mlp *m);

#endif
