#include "perplexity.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* log-softmax of one row of logits into out; returns the argmax */
static int log_softmax(const float *x, int n, float *out) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    double s = 0;
    for (int i = 0; i < n; i++) s += exp((double)x[i] - x[best]);
    double lse = x[best] + log(s);
    for (int i = 0; i < n; i++) out[i] = (float)(x[i] - lse);
    return best;
}

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

double gl_ppl_value(const gl_ppl_stats *s) { return s->tokens ? exp(s->nll / (double)s->tokens) : NAN; }
double gl_ppl_kl(const gl_ppl_stats *s) { return s->tokens ? s->kl / (double)s->tokens : NAN; }
double gl_ppl_same_top(const gl_ppl_stats *s) { return s->tokens ? (double)s->same_top / (double)s->tokens : NAN; }

void gl_perplexity(gl_lm_logits_fn const *fns, void *const *models, int n_models, int vocab, const int32_t *ids,
                   int64_t n, int window, int stride, bool progress, gl_ppl_stats *out) {
    for (int k = 0; k < n_models; k++) out[k] = (gl_ppl_stats){0};
    if (n < 2 || window < 2 || n_models < 1) return;
    if (stride < 1 || stride > window) stride = window;
    float *logits = malloc((size_t)window * vocab * sizeof *logits);
    float *ref = malloc((size_t)window * vocab * sizeof *ref), *lp = malloc((size_t)vocab * sizeof *lp);
    int *ref_top = malloc((size_t)window * sizeof *ref_top);
    int64_t scored_to = 1; /* positions below this are scored (position 0 has no context) */
    bool tty = progress && isatty(2);
    for (int64_t b = 0; scored_to < n; b += stride) {
        int T = (int)(n - b < window ? n - b : window);
        /* rows first .. T - 2 predict the tokens not scored yet (a window's first token has no row that predicts it) */
        int first = scored_to - 1 - b > 0 ? (int)(scored_to - 1 - b) : 0, last = T - 1;
        for (int k = 0; k < n_models; k++) {
            double t0 = seconds();
            fns[k](models[k], ids + b, T, logits);
            out[k].seconds += seconds() - t0;
            for (int at = first; at < last; at++) { /* row at predicts token b + at + 1 */
                int tok = ids[b + at + 1];
                float *row = k == 0 ? ref + (size_t)at * vocab : lp;
                int top = log_softmax(logits + (size_t)at * vocab, vocab, row);
                out[k].nll -= row[tok];
                out[k].tokens++;
                if (k == 0) {
                    ref_top[at] = top;
                    out[k].same_top++;
                    continue;
                }
                const float *pr = ref + (size_t)at * vocab;
                double kl = 0;
                for (int v = 0; v < vocab; v++) kl += exp((double)pr[v]) * ((double)pr[v] - lp[v]);
                out[k].kl += kl > 0 ? kl : 0; /* rounding can leave -1e-9 where the two agree */
                out[k].same_top += top == ref_top[at];
            }
            out[k].windows++;
        }
        scored_to = b + T;
        if (progress) { /* one line rewritten in place on a terminal, a line per window in a log */
            fprintf(stderr, "%sperplexity: %lld of %lld tokens:", tty ? "\r" : "", (long long)scored_to, (long long)n);
            for (int k = 0; k < n_models && k < 8; k++) fprintf(stderr, " %.3f", gl_ppl_value(&out[k]));
            fprintf(stderr, "%s", tty ? "" : "\n");
            fflush(stderr);
        }
        if (b + T >= n) break;
    }
    if (tty) fprintf(stderr, "\n");
    free(logits), free(ref), free(lp), free(ref_top);
}
