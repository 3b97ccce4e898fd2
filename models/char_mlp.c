#include "char_mlp.h"

#include <math.h>
#include <string.h>

void char_mlp_init(char_mlp *m, char_mlp_config c, uint64_t seed) {
    memset(m, 0, sizeof *m);
    m->cfg = c;
    gl_rng rng;
    gl_rng_seed(&rng, seed);
    int in = c.context * c.n_embd;
    m->wte = gl_param(GL_DIMS(c.vocab, c.n_embd), "wte");
    m->w1 = gl_param(GL_DIMS(in, c.hidden), "w1");
    m->b1 = gl_param(GL_DIMS(c.hidden), "b1");
    m->ln_w = gl_param(GL_DIMS(c.hidden), "ln_w");
    m->ln_b = gl_param(GL_DIMS(c.hidden), "ln_b");
    m->w2 = gl_param(GL_DIMS(c.hidden, c.vocab), "w2");
    m->b2 = gl_param(GL_DIMS(c.vocab), "b2");
    gl_init_normal(m->wte, &rng, 1.0f);
    gl_init_normal(m->w1, &rng, 1.0f / sqrtf((float)in));
    gl_init_normal(m->w2, &rng, 1.0f / sqrtf((float)c.hidden));
    gl_fill(m->ln_w, 1.0f);
    gl_tensor *all[CHAR_MLP_N_PARAMS] = {m->wte, m->w1, m->b1, m->ln_w, m->ln_b, m->w2, m->b2};
    memcpy(m->params, all, sizeof all);
    m->b1->no_weight_decay = m->ln_w->no_weight_decay = m->ln_b->no_weight_decay = m->b2->no_weight_decay = true;
}

gl_tensor *char_mlp_forward(char_mlp *m, const int32_t *ids, int batch, gl_rng *rng, bool training) {
    const char_mlp_config *c = &m->cfg;
    gl_tensor *x = gl_embedding(m->wte, ids, GL_DIMS(batch, c->context)); /* [B, ctx, E] */
    x = gl_reshape(x, GL_DIMS(batch, c->context * c->n_embd));           /* [B, ctx*E] */
    x = gl_add(gl_matmul(x, m->w1), m->b1);                               /* [B, H] */
    x = gl_gelu(gl_layernorm(x, m->ln_w, m->ln_b, 1e-5f));
    x = gl_dropout(x, c->dropout, rng, training);
    return gl_add(gl_matmul(x, m->w2), m->b2); /* [B, V] */
}

int64_t char_mlp_n_params(const char_mlp *m) {
    int64_t n = 0;
    for (int i = 0; i < CHAR_MLP_N_PARAMS; i++) n += m->params[i]->numel;
    return n;
}

void char_mlp_free(char_mlp *m) {
    for (int i = 0; i < CHAR_MLP_N_PARAMS; i++) gl_param_free(m->params[i]);
    memset(m, 0, sizeof *m);
}
