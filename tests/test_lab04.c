/* Lab 04's attention by hand against the fused ops: the same weights and the same output, causal or not. */
#include "by_hand.h"
#include "testutil.h"

static void check_against_the_ops(int T, int d, bool causal, uint64_t seed) {
    gl_rng r;
    gl_rng_seed(&r, seed);
    float *qkv = malloc((size_t)T * 3 * d * sizeof *qkv), *q = malloc((size_t)T * d * sizeof *q),
          *k = malloc((size_t)T * d * sizeof *k), *v = malloc((size_t)T * d * sizeof *v),
          *weights = malloc((size_t)T * T * sizeof *weights), *out = malloc((size_t)T * d * sizeof *out);
    for (int i = 0; i < T * 3 * d; i++) qkv[i] = 2 * gl_rng_normal(&r); /* spread scores: a peaked softmax */
    for (int t = 0; t < T; t++)
        for (int c = 0; c < d; c++) {
            q[t * d + c] = qkv[t * 3 * d + c];
            k[t * d + c] = qkv[t * 3 * d + d + c];
            v[t * d + c] = qkv[t * 3 * d + 2 * d + c];
        }
    attention_by_hand(q, k, v, T, d, causal, weights, out);
    gl_scope scope = gl_scope_begin();
    gl_no_grad_begin();
    gl_tensor *x = gl_from(GL_DIMS(1, T, 3 * d), qkv);
    const gl_tensor *want_w = gl_attention_weights(x, 1, causal);
    const gl_attn_impl impls[2] = {GL_ATTN_NAIVE, GL_ATTN_FLASH};
    const char *impl_names[2] = {"naive", "flash"};
    float worst = 0;
    for (int i = 0; i < T * T; i++) {
        float diff = fabsf(weights[i] - want_w->data[i]);
        cr_assert(diff < 1e-5f, "T %d, %s: weights[%d][%d] by hand %.7f, gl_attention_weights %.7f", T,
                  causal ? "causal" : "not causal", i / T, i % T, weights[i], want_w->data[i]);
        worst = fmaxf(worst, diff);
    }
    for (int m = 0; m < 2; m++) {
        const gl_tensor *want = gl_attention_ex(x, 1, causal, impls[m]);
        for (int i = 0; i < T * d; i++) {
            float diff = fabsf(out[i] - want->data[i]);
            cr_assert(diff < 1e-4f, "T %d, %s: out[%d][%d] by hand %.7f, the %s op %.7f", T,
                      causal ? "causal" : "not causal", i / d, i % d, out[i], impl_names[m], want->data[i]);
            worst = fmaxf(worst, diff);
        }
    }
    cr_log_info("T %d, d %d, %s: max |by hand - ops| = %.3g", T, d, causal ? "causal" : "not causal", worst);
    gl_no_grad_end();
    gl_scope_end(&scope);
    free(qkv), free(q), free(k), free(v), free(weights), free(out);
}

Test(lab04, attention_by_hand_matches_the_fused_ops) {
    check_against_the_ops(4, 4, true, 4);
    check_against_the_ops(37, 16, true, 5);   /* more than one flash tile of rows and columns */
    check_against_the_ops(37, 16, false, 6);  /* no mask: every token sees every other */
}
