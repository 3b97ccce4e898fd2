/* Preference learning (models/preference.c): the judge, the Bradley-Terry and DPO losses against hand-computed
 * values and finite differences, DPO at log 2 when the policy is the reference, a reward model that separates a
 * small separable set. */
#include <sys/stat.h>

#include "gpt.h"
#include "preference.h"
#include "testutil.h"

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
}

Test(preference, judge_counts_complete_words_in_the_list) {
    mkdir("out", 0755);
    mkdir("out/test", 0755);
    write_file("out/test/words.txt", "The\nwhale\nsea\nwhale's\n");
    pref_judge j;
    char err[256];
    cr_assert(pref_judge_load(&j, "out/test/words.txt", err, sizeof err), "%s", err);
    int n;
    const char *t1 = "the Whale swims in the sea.";
    cr_assert_float_eq(pref_judge_score(&j, t1, strlen(t1), &n), 4.0 / 6.0, 1e-12);
    cr_assert_eq(n, 6);
    const char *t2 = "the whale sw"; /* the cut word "sw" is left out */
    cr_assert_float_eq(pref_judge_score(&j, t2, strlen(t2), &n), 1.0, 1e-12);
    cr_assert_eq(n, 2);
    cr_assert_float_eq(pref_judge_score(&j, "!?", 2, &n), 0.0, 1e-12);
    cr_assert_eq(n, 0);
    const char *t3 = "the the the the "; /* gamed: real, repeated */
    cr_assert_float_eq(pref_judge_score(&j, t3, strlen(t3), NULL), 1.0, 1e-12);
    pref_judge_free(&j);
    write_file("out/test/empty.txt", "\n--\n");
    cr_assert_not(pref_judge_load(&j, "out/test/empty.txt", err, sizeof err));
    cr_assert(strstr(err, "has no words"), "%s", err);
    cr_assert_not(pref_judge_load(&j, "out/test/missing.txt", err, sizeof err));
    cr_assert(strstr(err, "cannot open"), "%s", err);
}

static double log_sigmoid(double x) { return -log1p(exp(-x)); }

static gl_tensor *bt_loss(gl_tensor **in, void *ctx) {
    (void)ctx;
    return pref_bradley_terry_loss(in[0], in[1]);
}

Test(preference, bradley_terry_loss_value_and_gradient) {
    float c[3] = {1.0f, 0.0f, -0.5f}, r[3] = {0.0f, 2.0f, -0.5f};
    gl_step_reset();
    gl_tensor *loss = pref_bradley_terry_loss(gl_from(GL_DIMS(3), c), gl_from(GL_DIMS(3), r));
    double want = -(log_sigmoid(1.0) + log_sigmoid(-2.0) + log_sigmoid(0.0)) / 3; /* 0.3133, 2.1269, 0.6931 */
    cr_assert_float_eq(loss->data[0], want, 1e-6);
    gl_tensor *in[2] = {rand_param(GL_DIMS(5), 1, -3, 3, 0), rand_param(GL_DIMS(5), 2, -3, 3, 0)};
    check_grads("bradley_terry", bt_loss, in, 2, NULL);
    /* d loss / d chosen_i = -(1 - s(c_i - r_i)) / n, by hand */
    gl_step_reset();
    gl_zero_grad(in, 2);
    gl_backward(pref_bradley_terry_loss(in[0], in[1]));
    for (int i = 0; i < 5; i++) {
        double d = in[0]->data[i] - in[1]->data[i], g = -(1 - 1 / (1 + exp(-d))) / 5;
        cr_assert_float_eq(in[0]->grad[i], g, 1e-6);
        cr_assert_float_eq(in[1]->grad[i], -g, 1e-6);
    }
    gl_param_free(in[0]);
    gl_param_free(in[1]);
}

static gl_tensor *bce_loss(gl_tensor **in, void *ctx) { return pref_bce_loss(in[0], ctx); }

Test(preference, bce_loss_value_and_gradient) {
    float z[4] = {2.0f, -1.0f, 0.0f, 3.0f}, y[4] = {1, 0, 1, 0};
    gl_step_reset();
    gl_tensor *loss = pref_bce_loss(gl_from(GL_DIMS(4), z), y);
    /* -[log s(2) + log(1 - s(-1)) + log s(0) + log(1 - s(3))] / 4 = (0.1269 + 0.3133 + 0.6931 + 3.0486) / 4 */
    double want = -(log_sigmoid(2.0) + log_sigmoid(1.0) + log_sigmoid(0.0) + log_sigmoid(-3.0)) / 4;
    cr_assert_float_eq(loss->data[0], want, 1e-6);
    cr_assert_float_eq(want, 1.04549, 1e-4);
    float labels[6] = {1, 0, 0, 1, 1, 0};
    gl_tensor *in[1] = {rand_param(GL_DIMS(6), 3, -4, 4, 0)};
    check_grads("bce", bce_loss, in, 1, labels);
    /* d loss / d z_i = (s(z_i) - y_i) / n, by hand */
    gl_step_reset();
    gl_zero_grad(in, 1);
    gl_backward(pref_bce_loss(in[0], labels));
    for (int i = 0; i < 6; i++)
        cr_assert_float_eq(in[0]->grad[i], (1 / (1 + exp(-in[0]->data[i])) - labels[i]) / 6, 1e-6);
    gl_param_free(in[0]);
}

static gl_tensor *dpo_loss(gl_tensor **in, void *ctx) {
    gl_tensor **ref = ctx;
    return pref_dpo_loss(in[0], in[1], ref[0], ref[1], 0.5f);
}

Test(preference, dpo_loss_value_and_gradient) {
    float pc[2] = {-10.0f, -20.0f}, pr[2] = {-12.0f, -18.0f}, rc[2] = {-11.0f, -19.0f}, rr[2] = {-11.5f, -19.5f};
    gl_step_reset();
    gl_tensor *loss = pref_dpo_loss(gl_from(GL_DIMS(2), pc), gl_from(GL_DIMS(2), pr), gl_from(GL_DIMS(2), rc),
                                    gl_from(GL_DIMS(2), rr), 0.1f);
    /* margins: (1 - (-0.5)) = 1.5 and (-1 - 1.5) = -2.5 */
    double want = -(log_sigmoid(0.1 * 1.5) + log_sigmoid(0.1 * -2.5)) / 2;
    cr_assert_float_eq(loss->data[0], want, 1e-6);
    /* the policy equal to the reference: log 2 whatever the values */
    gl_step_reset();
    gl_tensor *same = pref_dpo_loss(gl_from(GL_DIMS(2), pc), gl_from(GL_DIMS(2), pr), gl_from(GL_DIMS(2), pc),
                                    gl_from(GL_DIMS(2), pr), 0.1f);
    cr_assert_float_eq(same->data[0], log(2.0), 1e-7);
    gl_tensor *in[2] = {rand_param(GL_DIMS(4), 3, -3, 3, 0), rand_param(GL_DIMS(4), 4, -3, 3, 0)};
    gl_tensor *ref[2] = {rand_param(GL_DIMS(4), 5, -3, 3, 0), rand_param(GL_DIMS(4), 6, -3, 3, 0)};
    gl_param_freeze(ref[0]);
    gl_param_freeze(ref[1]);
    check_grads("dpo", dpo_loss, in, 2, ref);
    for (int k = 0; k < 2; k++) gl_param_free(in[k]), gl_param_free(ref[k]);
}

static void tiny_gpt(gpt *m, uint64_t seed) {
    gpt_build(m, (gpt_config){.n_layer = 1, .n_head = 2, .n_embd = 16, .block_size = 8, .vocab_size = 7,
                              .padded_vocab_size = 64, .dropout = 0, .bias = true, .ln_eps = 1e-5f});
    gpt_init(m, seed);
}

Test(preference, dpo_starts_at_log_2_when_the_policy_is_the_reference) {
    gpt policy, ref;
    tiny_gpt(&policy, 3);
    tiny_gpt(&ref, 3);
    int32_t chosen[2 * 6] = {1, 2, 3, 4, 5, 6, 2, 2, 1, 0, 4, 4}, rejected[2 * 6] = {1, 2, 3, 0, 0, 0, 2, 2, 1, 6, 5, 3};
    int32_t tc[2 * 6], tr[2 * 6]; /* targets: the next token, prompt (first 3) positions -1 */
    for (int b = 0; b < 2; b++)
        for (int t = 0; t < 6; t++) {
            tc[b * 6 + t] = t >= 2 && t < 5 ? chosen[b * 6 + t + 1] : -1;
            tr[b * 6 + t] = t >= 2 && t < 5 ? rejected[b * 6 + t + 1] : -1;
        }
    gl_step_reset();
    gl_no_grad_begin();
    gl_tensor *rc = pref_sequence_logprob(&ref, chosen, tc, 2, 6), *rr = pref_sequence_logprob(&ref, rejected, tr, 2, 6);
    gl_no_grad_end();
    gl_tensor *pc = pref_sequence_logprob(&policy, chosen, tc, 2, 6);
    gl_tensor *pr = pref_sequence_logprob(&policy, rejected, tr, 2, 6);
    gl_tensor *loss = pref_dpo_loss(pc, pr, rc, rr, 0.1f);
    cr_assert_float_eq(loss->data[0], logf(2.0f), 1e-7f);
    /* a sequence's log-probability is minus its cross-entropy times its counted positions */
    gl_tensor *ce = gl_cross_entropy(gpt_forward(&policy, chosen, 2, 6, NULL, false), tc, -1);
    cr_assert_float_eq(pc->data[0] + pc->data[1], -6 * ce->data[0], 1e-5);
    gl_backward(loss);
    double g = 0;
    for (int i = 0; i < policy.n_params; i++)
        for (int64_t k = 0; k < policy.params[i]->numel; k++) g += fabsf(policy.params[i]->grad[k]);
    cr_assert(g > 0, "the policy gets a gradient at the start (its value is beta/2 times the log-prob difference)");
    gpt_free(&policy);
    gpt_free(&ref);
}

Test(preference, reward_model_separates_a_small_separable_set) {
    gpt body;
    tiny_gpt(&body, 7);
    pref_reward_model rm;
    pref_reward_init(&rm, body);
    /* 8 pairs of 5-token sequences: the chosen ones end in token 5, the rejected in token 6 */
    enum { P = 8, T = 5 };
    int32_t c[P * T], r[P * T];
    gl_rng g;
    gl_rng_seed(&g, 1);
    for (int p = 0; p < P; p++) {
        for (int t = 0; t < T - 1; t++) c[p * T + t] = r[p * T + t] = (int32_t)gl_rng_below(&g, 5);
        c[p * T + T - 1] = 5;
        r[p * T + T - 1] = 6;
    }
    gl_step_reset();
    gl_tensor *r0 = pref_reward(&rm, c, P, T);
    for (int p = 0; p < P; p++) cr_assert(r0->data[p] == 0.0f, "the head starts at zero");
    gl_optim *opt = gl_adamw(rm.params, rm.n_params, 3e-3f, 0.9f, 0.99f, 1e-8f, 0.0f);
    float first = 0, last = 0;
    for (int step = 0; step < 60; step++) {
        gl_step_reset();
        gl_tensor *loss = pref_bradley_terry_loss(pref_reward(&rm, c, P, T), pref_reward(&rm, r, P, T));
        if (step == 0) first = loss->data[0];
        last = loss->data[0];
        gl_backward(loss);
        gl_optim_step(opt);
        gl_optim_zero_grad(opt);
    }
    cr_assert_float_eq(first, logf(2.0f), 1e-6f);
    gl_step_reset();
    gl_no_grad_begin();
    gl_tensor *rc = pref_reward(&rm, c, P, T), *rr = pref_reward(&rm, r, P, T);
    int right = 0;
    for (int p = 0; p < P; p++) right += rc->data[p] > rr->data[p];
    gl_no_grad_end();
    cr_assert_eq(right, P, "accuracy %d of %d (loss %.4f -> %.4f)", right, P, (double)first, (double)last);
    cr_assert(last < 0.1f, "loss %.4f", (double)last);
    gl_optim_free(opt);
    pref_reward_free(&rm);
}
