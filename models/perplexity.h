/* Perplexity over a token stream with a sliding window, and the comparison of a model with a reference on the same
 * windows: mean KL divergence KL(reference || model) of the next-token distributions and the share of positions
 * whose most likely token is the same (llama.cpp's perplexity tool reports the same two beside perplexity).
 *
 * Windows of `window` tokens start every `stride` tokens; each window scores only the positions no earlier window
 * scored, so every scored token (all but the first) is predicted from at least window - stride tokens of context,
 * except in the first window. stride == window gives disjoint windows, whose
 * first tokens go unscored. */
#ifndef GRADLAB_PERPLEXITY_H
#define GRADLAB_PERPLEXITY_H

#include <stdbool.h>
#include <stdint.h>

/* the logits of every position of ids[0..T) (T x vocab floats), the model starting from an empty context */
typedef void (*gl_lm_logits_fn)(void *model, const int32_t *ids, int T, float *logits);

typedef struct {
    int64_t tokens;    /* positions scored */
    double nll;        /* sum of -ln p(token) under the model */
    double kl;         /* sum over positions of KL(reference || model), nats (0 for the reference itself) */
    int64_t same_top;  /* positions where the model's argmax is the reference's */
    double seconds;    /* spent in the model's forward passes */
    int windows;
} gl_ppl_stats;

/* n_models models (fns[i] with models[i]) over the same windows, out[i] for each; models[0] is the reference the
 * others are compared with (n_models 1: perplexity alone). Each window runs the reference once and keeps its
 * log-probabilities while the others run. progress: a line on stderr after each window. */
void gl_perplexity(gl_lm_logits_fn const *fns, void *const *models, int n_models, int vocab, const int32_t *ids,
                   int64_t n, int window, int stride, bool progress, gl_ppl_stats *out);
double gl_ppl_value(const gl_ppl_stats *s);      /* exp(nll / tokens) */
double gl_ppl_kl(const gl_ppl_stats *s);         /* mean KL per token */
double gl_ppl_same_top(const gl_ppl_stats *s);   /* share of positions, 0..1 */

#endif
