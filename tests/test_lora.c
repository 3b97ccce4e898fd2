/* NF4 (code book, error bound, the fused GEMM) and LoRA / QLoRA on a small GPT (start equal to the base, merge,
 * gradients only in the adapters, the adapters file and its errors). */
#include <sys/stat.h>

#include "gpt.h"
#include "gpt_io.h"
#include "io.h"
#include "kernels.h"
#include "testutil.h"

/* standard normal quantile by bisection on erf (independent of the table under test) */
static double normal_ppf(double p) {
    double lo = -10, hi = 10;
    for (int i = 0; i < 200; i++) {
        double mid = 0.5 * (lo + hi);
        if (0.5 * (1 + erf(mid / sqrt(2.0))) < p) lo = mid;
        else hi = mid;
    }
    return 0.5 * (lo + hi);
}

/* QLoRA's construction: 8 positive levels at the quantiles linspace(offset, 0.5, 9)[:-1], 7 negative ones at
 * linspace(offset, 0.5, 8)[:-1], and 0; all divided by the largest (offset = 0.9677083) */
Test(nf4, code_book_is_the_normal_quantiles_of_the_qlora_paper) {
    const double offset = 0.9677083, z = normal_ppf(offset);
    for (int j = 0; j < 8; j++) {
        double want = normal_ppf(offset - j * (offset - 0.5) / 8) / z;
        cr_assert(fabs(gl_nf4_levels[15 - j] - want) < 1e-6, "level %d: %.9f, quantile gives %.9f", 15 - j,
                  (double)gl_nf4_levels[15 - j], want);
    }
    for (int j = 0; j < 7; j++) {
        double want = -normal_ppf(offset - j * (offset - 0.5) / 7) / z;
        cr_assert(fabs(gl_nf4_levels[j] - want) < 1e-6, "level %d: %.9f, quantile gives %.9f", j,
                  (double)gl_nf4_levels[j], want);
    }
    cr_assert(gl_nf4_levels[7] == 0.0f && gl_nf4_levels[0] == -1.0f && gl_nf4_levels[15] == 1.0f);
}

static float *gaussian(int n, uint64_t seed, float std) {
    float *w = malloc((size_t)n * sizeof *w);
    gl_rng r;
    gl_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) w[i] = std * gl_rng_normal(&r);
    return w;
}

Test(nf4, quantisation_error_stays_within_its_bound_on_gaussian_weights) {
    const int rows = 300, cols = 257, n = rows * cols; /* 1205 blocks: 5 groups, the last block partial */
    float *w = gaussian(n, 3, 0.02f), *back = malloc((size_t)n * sizeof *back);
    gl_nf4 q;
    cr_assert(gl_nf4_quantize(&q, w, rows, cols));
    cr_assert(q.n_blocks == (n + 63) / 64 && q.n_groups == (q.n_blocks + 255) / 256);
    gl_nf4_dequantize_run(&q, 0, n, back);
    double max_gap = 0, se = 0, var = 0;
    for (int i = 0; i < 15; i++) max_gap = fmax(max_gap, 0.5 * (gl_nf4_levels[i + 1] - gl_nf4_levels[i]));
    for (int64_t b = 0; b < q.n_blocks; b++) {
        float true_max = 0;
        for (int e = (int)b * 64; e < n && e < (b + 1) * 64; e++) true_max = fmaxf(true_max, fabsf(w[e]));
        float a = gl_nf4_absmax(&q, b);
        /* the double quantisation: absmax to within half a step of its group's int8 scale */
        cr_assert(fabsf(a - true_max) <= 0.5f * q.group_scale[b / 256] * 1.0001f + 1e-9f, "block %lld absmax %g vs %g",
                  (long long)b, (double)a, (double)true_max);
        double bound = fmax(a * max_gap, true_max - a) * 1.0001 + 1e-9;
        for (int e = (int)b * 64; e < n && e < (b + 1) * 64; e++) {
            cr_assert(fabs(w[e] - back[e]) <= bound, "value %d: %g decodes to %g (bound %g)", e, (double)w[e],
                      (double)back[e], bound);
            se += (double)(w[e] - back[e]) * (w[e] - back[e]);
            var += (double)w[e] * w[e];
        }
    }
    /* and on average far inside it: the RMS error of 4-bit NormalFloat on normal data is under 10% of sigma */
    cr_assert(sqrt(se / var) < 0.10, "relative RMS error %.4f", sqrt(se / var));
    cr_assert(gl_nf4_bytes(&q) < (size_t)n * 4 / 7, "about 4.13 bits per weight: %zu bytes for %d", gl_nf4_bytes(&q), n);
    /* a run that starts mid-block decodes the same values */
    float part[100];
    gl_nf4_dequantize_run(&q, 1000, 100, part);
    cr_assert(memcmp(part, back + 1000, sizeof part) == 0);
    gl_nf4_free(&q);
    free(w);
    free(back);
}

Test(nf4, fused_gemm_equals_dequantise_then_gemm_bitwise) {
    const int shapes[][3] = {{37, 130, 70}, {5, 1000, 33}, {64, 96, 200}};
    for (int s = 0; s < 3; s++) {
        int M = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
        for (int trans_b = 0; trans_b < 2; trans_b++) {
            int rows = trans_b ? N : K, cols = trans_b ? K : N;
            float *w = gaussian(rows * cols, 10 + s, 0.05f), *a = gaussian(M * K, 20 + s, 1.0f);
            float *deq = malloc((size_t)rows * cols * sizeof *deq);
            float *c1 = malloc((size_t)M * N * sizeof *c1), *c2 = malloc((size_t)M * N * sizeof *c2);
            gl_nf4 q;
            cr_assert(gl_nf4_quantize(&q, w, rows, cols));
            gl_nf4_dequantize_run(&q, 0, rows * cols, deq);
            for (int i = 0; i < M * N; i++) c1[i] = c2[i] = 0.25f * (float)(i % 7);
            gl_gemm(0, trans_b, M, N, K, 0.5f, a, K, deq, cols, 1.0f, c1, N);
            gl_gemm_nf4(0, trans_b, M, N, K, 0.5f, a, K, &q, 1.0f, c2, N);
            cr_assert(memcmp(c1, c2, (size_t)M * N * sizeof *c1) == 0, "M %d K %d N %d trans_b %d", M, K, N, trans_b);
            gl_nf4_free(&q);
            free(w), free(a), free(deq), free(c1), free(c2);
        }
    }
}

static gl_nf4 *loss_nf4;
static gl_tensor *nf4_linear_loss(gl_tensor **in, void *ctx) {
    (void)ctx;
    return weighted_sum(gl_tanh(gl_linear_nf4(in[0], loss_nf4, in[1])));
}

Test(nf4, linear_nf4_gradients_match_finite_differences) {
    float *w = gaussian(9 * 5, 4, 0.5f);
    gl_nf4 q;
    cr_assert(gl_nf4_quantize(&q, w, 9, 5));
    loss_nf4 = &q;
    gl_tensor *in[2] = {rand_param(GL_DIMS(2, 3, 9), 1, -1, 1, 0), rand_param(GL_DIMS(5), 2, -1, 1, 0)};
    check_grads("linear_nf4", nf4_linear_loss, in, 2, NULL);
    gl_param_free(in[0]);
    gl_param_free(in[1]);
    gl_nf4_free(&q);
    free(w);
}

/* ---- LoRA on a small GPT ---- */

static const int32_t tokens[2 * 6] = {1, 5, 2, 9, 0, 3, 7, 7, 4, 10, 6, 2};
static const int32_t targets[2 * 6] = {5, 2, 9, 0, 3, 8, 7, 4, 10, 6, 2, 1};

static void small_gpt(gpt *m) {
    gpt_build(m, (gpt_config){.n_layer = 2, .n_head = 2, .n_embd = 16, .block_size = 8, .vocab_size = 11,
                              .padded_vocab_size = 64, .dropout = 0, .bias = true, .ln_eps = 1e-5f});
    gpt_init(m, 5);
    gl_rng r; /* non-zero biases and gains, so every parameter matters */
    gl_rng_seed(&r, 6);
    for (int i = 0; i < m->n_params; i++)
        if (m->params[i]->ndim == 1)
            for (int64_t j = 0; j < m->params[i]->numel; j++) m->params[i]->data[j] += 0.1f * gl_rng_normal(&r);
}

static float *logits_of(gpt *m) {
    gl_step_reset();
    gl_no_grad_begin();
    gl_tensor *y = gpt_forward(m, tokens, 2, 6, NULL, false);
    float *out = malloc((size_t)y->numel * sizeof *out);
    memcpy(out, y->data, (size_t)y->numel * sizeof *out);
    gl_no_grad_end();
    return out;
}

static void randomise_b(gpt *m, uint64_t seed) {
    gl_rng r;
    gl_rng_seed(&r, seed);
    for (int i = 0; i < m->n_adapters; i++) gl_init_normal(m->adapters[i].b, &r, 0.3f);
}

static float max_diff(const float *a, const float *b, int n) {
    float d = 0;
    for (int i = 0; i < n; i++) d = fmaxf(d, fabsf(a[i] - b[i]));
    return d;
}

Test(lora, spec_parsing_and_its_errors) {
    gpt_lora_config c;
    char err[256];
    cr_assert(gpt_lora_parse("r=4,alpha=8,targets=vq", &c, err, sizeof err), "%s", err);
    cr_assert(c.rank == 4 && c.alpha == 8.0f && !strcmp(c.targets, "qv"), "letters kept in canonical order");
    cr_assert(gpt_lora_parse("", &c, err, sizeof err) && c.rank == 8 && c.alpha == 16.0f && !strcmp(c.targets, "qv"));
    cr_assert_not(gpt_lora_parse("r=0", &c, err, sizeof err));
    cr_assert(strstr(err, "r must be"), "%s", err);
    cr_assert_not(gpt_lora_parse("targets=qx", &c, err, sizeof err));
    cr_assert(strstr(err, "target 'x'"), "%s", err);
    cr_assert_not(gpt_lora_parse("rank=4", &c, err, sizeof err));
    cr_assert(strstr(err, "unknown key 'rank'"), "%s", err);
}

Test(lora, zero_b_is_the_base_model_bit_for_bit_and_merging_agrees) {
    gpt m;
    small_gpt(&m);
    float *base = logits_of(&m);
    gpt_lora_config c;
    char err[128];
    cr_assert(gpt_lora_parse("r=3,alpha=6,targets=qkvofp", &c, err, sizeof err));
    gpt_lora_attach(&m, c, 9);
    cr_assert_eq(m.n_adapters, 12);
    int n = 2 * 6 * 11;
    float *adapted = logits_of(&m);
    cr_assert(memcmp(base, adapted, (size_t)n * sizeof(float)) == 0, "B = 0: the adapted model is the base exactly");
    randomise_b(&m, 10);
    float *unmerged = logits_of(&m);
    cr_assert(max_diff(base, unmerged, n) > 1e-2f, "non-zero B changes the output");
    gpt_lora_merge(&m);
    cr_assert(m.n_adapters == 0 && m.n_trainable == m.n_params && m.params[0]->requires_grad);
    float *merged = logits_of(&m);
    cr_assert(max_diff(unmerged, merged, n) < 1e-5f, "merged vs unmerged: %g", (double)max_diff(unmerged, merged, n));
    free(base), free(adapted), free(unmerged), free(merged);
    gpt_free(&m);
}

static gpt *grad_model;
static gl_tensor *gpt_loss_fn(gl_tensor **in, void *ctx) {
    (void)in, (void)ctx;
    return gpt_loss(grad_model, tokens, targets, 2, 6, NULL, false);
}

static void check_adapter_gradients(gpt *m, const char *what) {
    /* only the adapters have gradients; the base has none at all */
    gl_step_reset();
    gl_tensor *loss = gpt_loss(m, tokens, targets, 2, 6, NULL, false);
    gl_backward(loss);
    for (int i = 0; i < m->n_params; i++)
        cr_assert(!m->params[i]->requires_grad && !m->params[i]->grad, "%s: base %s has a gradient", what,
                  m->params[i]->name);
    double b_grad = 0;
    for (int i = 0; i < m->n_adapters; i++)
        for (int64_t j = 0; j < m->adapters[i].b->numel; j++) b_grad += fabsf(m->adapters[i].b->grad[j]);
    cr_assert(b_grad > 0, "%s: the adapters get a gradient", what);
    grad_model = m;
    check_grads(what, gpt_loss_fn, m->trainable, m->n_trainable, NULL);
}

Test(lora, gradients_reach_only_the_adapters_and_match_finite_differences) {
    gpt m;
    small_gpt(&m);
    gpt_lora_config c;
    char err[128];
    cr_assert(gpt_lora_parse("r=2,alpha=4,targets=qkvofp", &c, err, sizeof err));
    gpt_lora_attach(&m, c, 11);
    randomise_b(&m, 12); /* with B = 0 the gradient of A is exactly 0: check the general case */
    check_adapter_gradients(&m, "lora");
    gpt_free(&m);
}

Test(lora, qlora_base_is_4_bit_and_adapters_still_learn) {
    gpt m;
    small_gpt(&m);
    size_t fp32 = gpt_base_weight_bytes(&m);
    float *base = logits_of(&m);
    gpt_quantize_nf4(&m);
    cr_assert(m.blocks[0].attn_w->data == NULL, "no fp32 copy of a quantised weight is kept");
    cr_assert(gpt_base_weight_bytes(&m) < fp32, "%zu < %zu", gpt_base_weight_bytes(&m), fp32);
    float *quant = logits_of(&m);
    int n = 2 * 6 * 11;
    cr_assert(max_diff(base, quant, n) < 0.1f && max_diff(base, quant, n) > 0, "4-bit base: close, not equal (%g)",
              (double)max_diff(base, quant, n));
    gpt_lora_config c;
    char err[128];
    cr_assert(gpt_lora_parse("r=2,targets=qvf", &c, err, sizeof err));
    gpt_lora_attach(&m, c, 13);
    randomise_b(&m, 14);
    check_adapter_gradients(&m, "qlora");
    float *unmerged = logits_of(&m);
    /* the adapters file says QLoRA: loaded on the fp32 base, it quantises that base and gives the same model */
    mkdir("out", 0755);
    mkdir("out/test", 0755);
    cr_assert(gpt_lora_save(&m, "out/test/qlora.lora", err, sizeof err), "%s", err);
    gpt again;
    small_gpt(&again);
    cr_assert(gpt_lora_load(&again, "out/test/qlora.lora", err, sizeof err), "%s", err);
    cr_assert(again.nf4 != NULL);
    float *reloaded = logits_of(&again);
    cr_assert(memcmp(reloaded, unmerged, (size_t)n * sizeof(float)) == 0);
    free(reloaded);
    gpt_free(&again);
    gpt_lora_merge(&m); /* dequantises the base, then folds the adapters in */
    cr_assert(m.nf4 == NULL && m.blocks[0].attn_w->data != NULL);
    float *merged = logits_of(&m);
    cr_assert(max_diff(unmerged, merged, n) < 1e-5f, "%g", (double)max_diff(unmerged, merged, n));
    free(base), free(quant), free(unmerged), free(merged);
    gpt_free(&m);
}

Test(lora, adapters_file_round_trips_and_misfits_are_named) {
    mkdir("out", 0755);
    mkdir("out/test", 0755);
    const char *path = "out/test/adapters.lora";
    gpt m, m2;
    small_gpt(&m);
    small_gpt(&m2);
    gpt_lora_config c;
    char err[512];
    cr_assert(gpt_lora_parse("r=4,alpha=8,targets=vo", &c, err, sizeof err));
    gpt_lora_attach(&m, c, 15);
    randomise_b(&m, 16);
    cr_assert(gpt_lora_save(&m, path, err, sizeof err), "%s", err);
    cr_assert(gpt_lora_load(&m2, path, err, sizeof err), "%s", err);
    cr_assert(m2.n_adapters == 4 && m2.lora.rank == 4 && m2.lora.alpha == 8.0f && !strcmp(m2.lora.targets, "vo"));
    float *a = logits_of(&m), *b = logits_of(&m2);
    cr_assert(memcmp(a, b, 2 * 6 * 11 * sizeof(float)) == 0);
    free(a), free(b);
    char save_err[256];
    cr_assert_not(gpt_save_checkpoint("out/test/x.ckpt", &m, NULL, NULL, save_err, sizeof save_err));
    cr_assert(strstr(save_err, "adapters"), "%s", save_err);

    /* a base of another shape */
    gpt other;
    gpt_build(&other, (gpt_config){.n_layer = 3, .n_head = 2, .n_embd = 16, .block_size = 8, .vocab_size = 11,
                                   .padded_vocab_size = 64, .dropout = 0, .bias = true, .ln_eps = 1e-5f});
    cr_assert_not(gpt_lora_load(&other, path, err, sizeof err));
    cr_assert(strstr(err, "2 layers x 16 dims") && strstr(err, "3 x 16"), "%s", err);
    cr_assert(other.n_adapters == 0 && other.params[0]->requires_grad, "a failed load leaves the model untouched");
    gpt_free(&other);

    /* damage: truncation, a flipped byte, another kind of file, a missing file */
    unsigned char *data;
    size_t len;
    cr_assert(gl_read_whole_file(path, &data, &len, err, sizeof err));
    gpt fresh;
    small_gpt(&fresh);
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, len / 2, f);
    fclose(f);
    cr_assert_not(gpt_lora_load(&fresh, path, err, sizeof err));
    cr_assert(strstr(err, "damaged or truncated"), "%s", err);
    data[100] ^= 0x40;
    f = fopen(path, "wb");
    fwrite(data, 1, len, f);
    fclose(f);
    cr_assert_not(gpt_lora_load(&fresh, path, err, sizeof err));
    cr_assert(strstr(err, "checksum"), "%s", err);
    cr_assert_not(gpt_lora_load(&fresh, "data/tinyshakespeare/input.txt", err, sizeof err));
    cr_assert(strstr(err, "not a LoRA adapters file"), "%s", err);
    cr_assert_not(gpt_lora_load(&fresh, "out/test/none.lora", err, sizeof err));
    cr_assert(strstr(err, "cannot open"), "%s", err);
    free(data);
    gpt_free(&fresh);
    gpt_free(&m);
    gpt_free(&m2);
}
