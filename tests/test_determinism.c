/* Same seed and same thread count => bitwise identical training. gradlab goes further: no kernel's summation
 * order depends on the thread count (GEMM sums each element in a fixed K order, row ops own whole rows,
 * cross-row sums run in row order), so 1 and 2 threads also agree bit for bit; that is tested too. */
#include <omp.h>

#include "char_mlp.h"
#include "testutil.h"

enum { STEPS = 15, BATCH = 256, CTX = 5, HIDDEN = 512 }; /* large enough that GEMM, elementwise and row ops run threaded */

/* trains a small char-MLP (dropout on) on a fixed pseudo-text; returns per-step losses and the final w1 */
static void train(uint64_t seed, int threads, float *losses, float *w1_out, size_t *w1_len) {
    omp_set_num_threads(threads);
    static const char text[] = "It is a truth universally acknowledged, that a single man in possession of a good "
                               "fortune, must be in want of a wife. However little known the feelings or views of "
                               "such a man may be on his first entering a neighbourhood, this truth is so well fixed.";
    int n = (int)sizeof text - 1;
    int32_t tokens[sizeof text];
    for (int i = 0; i < n; i++) tokens[i] = (unsigned char)text[i] % 64;
    char_mlp m;
    char_mlp_init(&m, (char_mlp_config){64, CTX, 16, HIDDEN, 0.2f}, seed);
    gl_optim *opt = gl_adamw(m.params, CHAR_MLP_N_PARAMS, 3e-3f, 0.9f, 0.95f, 1e-8f, 0.1f);
    gl_rng rng;
    gl_rng_seed(&rng, seed + 1);
    int32_t x[BATCH * CTX], y[BATCH];
    for (int s = 0; s < STEPS; s++) {
        gl_step_reset();
        for (int b = 0; b < BATCH; b++) {
            int start = (int)gl_rng_below(&rng, (uint64_t)(n - CTX));
            memcpy(x + b * CTX, tokens + start, CTX * sizeof(int32_t));
            y[b] = tokens[start + CTX];
        }
        gl_tensor *loss = gl_cross_entropy(char_mlp_forward(&m, x, BATCH, &rng, true), y, -1);
        gl_backward(loss);
        gl_clip_grad_norm(m.params, CHAR_MLP_N_PARAMS, 1.0f);
        opt->lr = gl_lr_warmup_cosine(s, 3, STEPS, 3e-3f, 3e-4f);
        gl_optim_step(opt);
        gl_optim_zero_grad(opt);
        losses[s] = loss->data[0];
    }
    *w1_len = (size_t)m.w1->numel;
    memcpy(w1_out, m.w1->data, *w1_len * sizeof(float));
    gl_optim_free(opt);
    char_mlp_free(&m);
}

Test(determinism, same_seed_same_threads_is_bitwise_identical) {
    static float w_a[CTX * 16 * HIDDEN], w_b[CTX * 16 * HIDDEN], w_c[CTX * 16 * HIDDEN], w_d[CTX * 16 * HIDDEN];
    float l_a[STEPS], l_b[STEPS], l_c[STEPS], l_d[STEPS];
    size_t n;
    train(7, 2, l_a, w_a, &n);
    train(7, 2, l_b, w_b, &n);
    cr_assert(memcmp(l_a, l_b, sizeof l_a) == 0, "two runs with seed 7 and 2 threads differ in their losses");
    cr_assert(memcmp(w_a, w_b, n * 4) == 0, "two runs with seed 7 and 2 threads differ in their weights");
    cr_assert(l_a[STEPS - 1] < l_a[0], "training should lower the loss (%g -> %g)", (double)l_a[0],
              (double)l_a[STEPS - 1]);
    train(8, 2, l_c, w_c, &n);
    cr_assert(memcmp(l_a, l_c, sizeof l_a) != 0, "a different seed must give a different run");
    train(7, 1, l_d, w_d, &n);
    cr_assert(memcmp(l_a, l_d, sizeof l_a) == 0 && memcmp(w_a, w_d, n * 4) == 0,
              "1 thread and 2 threads should agree bit for bit");
}

/* attention's forward and backward, naive and flash (flash spreads heads over threads and sums each head's tiles
 * in a fixed order): 1 and 2 threads agree bit for bit, across tile edges (T = 300) and an odd head dim (48) */
static void attention_run(gl_attn_impl impl, int threads, gl_tensor *qkv, float *out, float *grad) {
    omp_set_num_threads(threads);
    gl_step_reset();
    gl_zero_grad(&qkv, 1);
    gl_tensor *o = gl_attention_ex(qkv, 3, true, impl);
    gl_backward(gl_sum_all(gl_mul(o, o)));
    memcpy(out, o->data, (size_t)o->numel * sizeof(float));
    memcpy(grad, qkv->grad, (size_t)qkv->numel * sizeof(float));
}

Test(determinism, attention_is_bitwise_identical_for_1_and_2_threads) {
    enum { B = 2, T = 300, C = 3 * 48 };
    gl_tensor *qkv = gl_param(GL_DIMS(B, T, 3 * C), "qkv");
    gl_rng r;
    gl_rng_seed(&r, 3);
    gl_init_normal(qkv, &r, 1.0f);
    static float out[2][B * T * C], grad[2][B * T * 3 * C];
    for (int impl = 0; impl < 2; impl++) {
        for (int k = 0; k < 2; k++) attention_run((gl_attn_impl)impl, k + 1, qkv, out[k], grad[k]);
        cr_assert(memcmp(out[0], out[1], sizeof out[0]) == 0, "%s attention's output differs between 1 and 2 threads",
                  impl ? "flash" : "naive");
        cr_assert(memcmp(grad[0], grad[1], sizeof grad[0]) == 0, "%s attention's gradient differs between 1 and 2 threads",
                  impl ? "flash" : "naive");
    }
    gl_param_free(qkv);
}
