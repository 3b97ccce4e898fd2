/* Lab 07 - preferences: a judge, a reward model, best-of-N reranking and DPO on the shakespeare GPT.
 *   1. preference pairs from the model's own samples, judged by the share of real English words
 *   2. a reward model (the GPT's body + a scalar head) trained with the Bradley-Terry loss; held-out accuracy
 *   3. best-of-N: N samples per prompt, keep the one the reward model likes best; the judge's score against N
 *   4. DPO: the policy tuned on the same pairs against a frozen reference; its samples judged
 * Writes out/lab07/best_of_n.png, reward_vs_judge.png, dpo_loss.png, results.json. `make lab07`, or
 * ./build/lab07 --help */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "codec.h"
#include "gpt_io.h"
#include "io.h"
#include "json.h"
#include "plot.h"
#include "preference.h"
#include "sample.h"

/* 1 once an output (a plot, results.json) could not be written: reported at once, exit status 1 at the end */
static int status;

enum { PROMPT = 24, COMPLETION = 40, SEQ = PROMPT + COMPLETION, MAX_N = 16, BATCH = 16 };

typedef struct {
    int32_t ids[SEQ]; /* prompt, then completion */
    double judge;
    float reward;
    double distinct; /* distinct words / words: a repetition check the judge does not make */
} sample;

typedef struct {
    const sample *chosen, *rejected;
} pair;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- text of ids, the judge on completions ---- */

static size_t text_of(const gl_codec *codec, const int32_t *ids, int n, char *buf, size_t cap) {
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        unsigned char tmp[4];
        size_t l;
        const unsigned char *b = gl_codec_token(codec, ids[i], tmp, &l);
        if (len + l + 1 >= cap) break;
        memcpy(buf + len, b, l);
        len += l;
    }
    buf[len] = 0;
    return len;
}

typedef struct {
    char words[64][32];
    int n;
} word_set;

static void add_word(void *ctx, const char *w, int len) {
    word_set *s = ctx;
    if (len && s->n < 64) snprintf(s->words[s->n++], 32, "%s", w);
}

static void judge_sample(sample *s, const pref_judge *j, const gl_codec *codec) {
    char text[512];
    size_t len = text_of(codec, s->ids + PROMPT, COMPLETION, text, sizeof text);
    s->judge = pref_judge_score(j, text, len, NULL);
    word_set ws = {.n = 0};
    gl_w2v_words(text, len, add_word, &ws);
    int distinct = 0;
    for (int i = 0; i < ws.n; i++) {
        bool seen = false;
        for (int k = 0; k < i && !seen; k++) seen = !strcmp(ws.words[i], ws.words[k]);
        distinct += !seen;
    }
    s->distinct = ws.n ? (double)distinct / ws.n : 1.0;
}

/* ---- sampling completions ---- */

typedef struct {
    int32_t *out;
    int n;
} id_sink;

static bool keep_id(int32_t tok, void *ctx) {
    id_sink *s = ctx;
    if (s->n < COMPLETION) s->out[s->n++] = tok;
    return s->n < COMPLETION;
}

static void complete(gpt *m, const int32_t *prompt, gl_rng *rng, sample *s) {
    memcpy(s->ids, prompt, PROMPT * sizeof *prompt);
    id_sink sink = {s->ids + PROMPT, 0};
    gl_sampling sp = {.temperature = 1.0f, .top_k = 0, .top_p = 1.0f};
    gl_generate(m, prompt, PROMPT, COMPLETION, &sp, rng, true, keep_id, &sink);
    for (; sink.n < COMPLETION; sink.n++) s->ids[PROMPT + sink.n] = s->ids[PROMPT + sink.n - 1]; /* never: 40 < block */
}

/* prompts: windows of PROMPT characters that end with a space, from tokens[lo, hi) */
static void pick_prompts(const int32_t *tokens, size_t lo, size_t hi, int32_t space, int n, gl_rng *rng,
                         int32_t *out) {
    for (int i = 0; i < n; i++) {
        size_t at;
        do at = lo + gl_rng_below(rng, hi - lo - PROMPT);
        while (tokens[at + PROMPT - 1] != space);
        memcpy(out + (size_t)i * PROMPT, tokens + at, PROMPT * sizeof *out);
    }
}

/* ---- batched rewards and log-probabilities ---- */

static void rewards_of(pref_reward_model *rm, sample *s, int n) {
    int32_t idx[BATCH * 4 * SEQ];
    gl_no_grad_begin();
    for (int b = 0; b < n; b += BATCH * 4) {
        int k = n - b < BATCH * 4 ? n - b : BATCH * 4;
        for (int i = 0; i < k; i++) memcpy(idx + (size_t)i * SEQ, s[b + i].ids, sizeof s[b + i].ids);
        gl_step_reset();
        gl_tensor *r = pref_reward(rm, idx, k, SEQ);
        for (int i = 0; i < k; i++) s[b + i].reward = r->data[i];
    }
    gl_no_grad_end();
}

/* inputs and targets of a batch of pairs: chosen sequences first, then rejected; targets are the completion */
static void pair_batch(const pair *pairs, const int *pick, int n, int32_t *idx, int32_t *tgt) {
    for (int i = 0; i < 2 * n; i++) {
        const sample *s = i < n ? pairs[pick[i]].chosen : pairs[pick[i - n]].rejected;
        memcpy(idx + (size_t)i * SEQ, s->ids, sizeof s->ids);
        for (int t = 0; t < SEQ; t++) tgt[(size_t)i * SEQ + t] = t >= PROMPT - 1 && t < SEQ - 1 ? s->ids[t + 1] : -1;
    }
}

static gl_tensor *half(gl_tensor *x, int n, int which) { return gl_slice(x, 0, which * n, (which + 1) * n); }

static double pearson(const double *x, const double *y, int n) {
    double mx = 0, my = 0, sxy = 0, sxx = 0, syy = 0;
    for (int i = 0; i < n; i++) mx += x[i] / n, my += y[i] / n;
    for (int i = 0; i < n; i++) {
        sxy += (x[i] - mx) * (y[i] - my);
        sxx += (x[i] - mx) * (x[i] - mx);
        syy += (y[i] - my) * (y[i] - my);
    }
    return sxx > 0 && syy > 0 ? sxy / sqrt(sxx * syy) : 0;
}

static void print_sample(const char *label, const sample *s, const gl_codec *codec) {
    char p[256], c[256];
    text_of(codec, s->ids, PROMPT, p, sizeof p);
    text_of(codec, s->ids + PROMPT, COMPLETION, c, sizeof c);
    for (char *q = p; *q; q++) *q = *q == '\n' ? '/' : *q;
    for (char *q = c; *q; q++) *q = *q == '\n' ? '/' : *q;
    printf("  %-22s judge %.2f  \"%s|%s\"\n", label, s->judge, p, c);
}

int main(int argc, char **argv) {
    const char *base_path = "checkpoints/shakespeare_char.ckpt", *words_path = "/usr/share/dict/words";
    const char *out = "out/lab07", *text_path = "data/tinyshakespeare/input.txt";
    int n_train_prompts = 600, n_test_prompts = 200, rm_steps = 300, dpo_steps = 200;
    float beta = 0.1f;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h") || i + 1 >= argc) {
            fprintf(stderr, "usage: lab07 [--base CKPT] [--words FILE] [--beta 0.1] [--train-prompts 600]\n"
                            "             [--test-prompts 200] [--rm-steps 300] [--dpo-steps 200] [--out out/lab07]\n"
                            "  the judge's word list is wamerican's /usr/share/dict/words (apt-get install wamerican)\n");
            return strcmp(argv[i], "--help") && strcmp(argv[i], "-h") ? 2 : 0;
        }
        const char *f = argv[i], *v = argv[++i];
        if (!strcmp(f, "--base")) base_path = v;
        else if (!strcmp(f, "--words")) words_path = v;
        else if (!strcmp(f, "--out")) out = v;
        else if (!strcmp(f, "--beta")) beta = (float)gl_flag_number("lab07", f, v, 1e-4, 100);
        else if (!strcmp(f, "--train-prompts")) n_train_prompts = gl_flag_int("lab07", f, v, 8, 100000);
        else if (!strcmp(f, "--test-prompts")) n_test_prompts = gl_flag_int("lab07", f, v, 8, 100000);
        else if (!strcmp(f, "--rm-steps")) rm_steps = gl_flag_int("lab07", f, v, 1, 1000000);
        else if (!strcmp(f, "--dpo-steps")) dpo_steps = gl_flag_int("lab07", f, v, 1, 1000000);
        else return fprintf(stderr, "lab07: unknown flag '%s' (--help)\n", f), 2;
    }
    char err[512], path[4096];
    pref_judge judge;
    if (!pref_judge_load(&judge, words_path, err, sizeof err))
        return fprintf(stderr, "lab07: the judge's word list: %s\n  (apt-get install wamerican, or --words FILE)\n", err), 1;
    gpt base;
    gpt_run_state rs;
    if (!gpt_load_checkpoint(base_path, &base, &rs, NULL, NULL, NULL, err, sizeof err))
        return fprintf(stderr, "lab07: %s\n  (`make run` trains the shakespeare model)\n", err), 1;
    if (rs.bpe_len || base.cfg.block_size < SEQ)
        return fprintf(stderr, "lab07: needs a character-level model with block size >= %d\n", SEQ), 1;
    gl_codec codec = {{rs.n_symbols, rs.symbols}, NULL};
    unsigned char *raw;
    size_t raw_len, n_tok;
    int32_t *tokens, space_id[1];
    if (!gl_read_whole_file(text_path, &raw, &raw_len, err, sizeof err) ||
        !gl_codec_encode(&codec, raw, raw_len, &tokens, &n_tok, NULL, err, sizeof err))
        return fprintf(stderr, "lab07: %s\n", err), 1;
    free(raw);
    {
        int32_t *ids;
        size_t n;
        gl_codec_encode(&codec, (const unsigned char *)" ", 1, &ids, &n, NULL, err, sizeof err);
        space_id[0] = ids[0];
        free(ids);
    }
    printf("Lab 07: preferences on %s; the judge: share of complete words found in %s (%d words)\n", base_path,
           words_path, judge.words.size);

    /* 1. samples and pairs */
    double t0 = now();
    gl_rng rng;
    gl_rng_seed(&rng, 7);
    size_t split = n_tok * 9 / 10;
    int32_t *train_prompts = malloc((size_t)n_train_prompts * PROMPT * sizeof *train_prompts);
    int32_t *test_prompts = malloc((size_t)n_test_prompts * PROMPT * sizeof *test_prompts);
    pick_prompts(tokens, 0, split, space_id[0], n_train_prompts, &rng, train_prompts);
    pick_prompts(tokens, split, n_tok, space_id[0], n_test_prompts, &rng, test_prompts);
    enum { PER_TRAIN_PROMPT = 4 };
    sample *train_s = malloc((size_t)n_train_prompts * PER_TRAIN_PROMPT * sizeof *train_s);
    sample *test_s = malloc((size_t)n_test_prompts * MAX_N * sizeof *test_s);
    for (int p = 0; p < n_train_prompts; p++)
        for (int k = 0; k < PER_TRAIN_PROMPT; k++) {
            sample *s = &train_s[p * PER_TRAIN_PROMPT + k];
            complete(&base, train_prompts + (size_t)p * PROMPT, &rng, s);
            judge_sample(s, &judge, &codec);
        }
    for (int p = 0; p < n_test_prompts; p++)
        for (int k = 0; k < MAX_N; k++) {
            sample *s = &test_s[p * MAX_N + k];
            complete(&base, test_prompts + (size_t)p * PROMPT, &rng, s);
            judge_sample(s, &judge, &codec);
        }
    /* training pairs: each prompt's best and worst of 4 by the judge; held-out pairs: each test prompt's first two
     * samples. Pairs the judge scores equal are dropped. */
    pair *train_pairs = malloc((size_t)n_train_prompts * sizeof *train_pairs);
    pair *test_pairs = malloc((size_t)n_test_prompts * sizeof *test_pairs);
    int n_train = 0, n_test = 0;
    for (int p = 0; p < n_train_prompts; p++) {
        sample *g = &train_s[p * PER_TRAIN_PROMPT], *best = g, *worst = g;
        for (int k = 1; k < PER_TRAIN_PROMPT; k++) {
            if (g[k].judge > best->judge) best = &g[k];
            if (g[k].judge < worst->judge) worst = &g[k];
        }
        if (best->judge > worst->judge) train_pairs[n_train++] = (pair){best, worst};
    }
    for (int p = 0; p < n_test_prompts; p++) {
        sample *a = &test_s[p * MAX_N], *b = a + 1;
        if (a->judge != b->judge) test_pairs[n_test++] = a->judge > b->judge ? (pair){a, b} : (pair){b, a};
    }
    double base_judge = 0;
    for (int i = 0; i < n_test_prompts * MAX_N; i++) base_judge += test_s[i].judge / (n_test_prompts * MAX_N);
    printf("\n1. %d + %d prompts of %d characters; %d completions of %d characters sampled at temperature 1 "
           "(%.1f s)\n   the base model's samples score %.3f on average; %d training pairs (best vs worst of %d), "
           "%d held-out pairs\n", n_train_prompts, n_test_prompts, PROMPT, n_train_prompts * PER_TRAIN_PROMPT +
           n_test_prompts * MAX_N, COMPLETION, now() - t0, base_judge, n_train, PER_TRAIN_PROMPT, n_test);
    print_sample("a chosen completion", train_pairs[0].chosen, &codec);
    print_sample("its rejected one", train_pairs[0].rejected, &codec);

    /* 2. the reward model */
    t0 = now();
    gpt body;
    gpt_run_state unused;
    if (!gpt_load_checkpoint(base_path, &body, &unused, NULL, NULL, NULL, err, sizeof err)) return fprintf(stderr, "lab07: %s\n", err), 1;
    free(unused.symbols), free(unused.bpe);
    pref_reward_model rm;
    pref_reward_init(&rm, body);
    gl_optim *opt = gl_adamw(rm.params, rm.n_params, 3e-4f, 0.9f, 0.99f, 1e-8f, 0.0f);
    int32_t idx[2 * BATCH * SEQ], tgt[2 * BATCH * SEQ];
    int pick[BATCH];
    float *rm_curve = malloc((size_t)rm_steps * sizeof *rm_curve);
    for (int step = 0; step < rm_steps; step++) {
        for (int i = 0; i < BATCH; i++) pick[i] = (int)gl_rng_below(&rng, (uint64_t)n_train);
        pair_batch(train_pairs, pick, BATCH, idx, tgt);
        gl_step_reset();
        gl_tensor *r = pref_reward(&rm, idx, 2 * BATCH, SEQ);
        gl_tensor *loss = pref_bradley_terry_loss(half(r, BATCH, 0), half(r, BATCH, 1));
        rm_curve[step] = loss->data[0];
        gl_backward(loss);
        gl_clip_grad_norm(rm.params, rm.n_params, 1.0f);
        gl_optim_step(opt);
        gl_optim_zero_grad(opt);
    }
    gl_optim_free(opt);
    rewards_of(&rm, train_s, n_train_prompts * PER_TRAIN_PROMPT);
    rewards_of(&rm, test_s, n_test_prompts * MAX_N);
    int right_train = 0, right_test = 0;
    for (int i = 0; i < n_train; i++) right_train += train_pairs[i].chosen->reward > train_pairs[i].rejected->reward;
    for (int i = 0; i < n_test; i++) right_test += test_pairs[i].chosen->reward > test_pairs[i].rejected->reward;
    int n_all = n_test_prompts * MAX_N;
    double *jx = malloc((size_t)n_all * sizeof *jx), *ry = malloc((size_t)n_all * sizeof *ry);
    float *jxf = malloc((size_t)n_all * sizeof *jxf), *ryf = malloc((size_t)n_all * sizeof *ryf);
    for (int i = 0; i < n_all; i++) jx[i] = jxf[i] = (float)test_s[i].judge, ry[i] = ryf[i] = test_s[i].reward;
    double corr = pearson(jx, ry, n_all);
    printf("\n2. Reward model: the GPT's body + a scalar head, Bradley-Terry loss, %d steps of %d pairs (%.1f s)\n"
           "   loss %.4f -> %.4f; pairs ranked as the judge ranks them: %.1f%% of %d training pairs, %.1f%% of %d "
           "held-out pairs\n   correlation of reward and judge over %d held-out samples: %.3f\n", rm_steps, BATCH,
           now() - t0, rm_curve[0], rm_curve[rm_steps - 1], 100.0 * right_train / n_train, n_train,
           100.0 * right_test / n_test, n_test, n_all, corr);

    /* 3. best-of-N */
    const int ns[5] = {1, 2, 4, 8, 16};
    float bx[5], by_reward[5], by_random[5], by_oracle[5], distinct_bon[5];
    printf("\n3. Best-of-N on %d held-out prompts: the mean judge score of the sample each rule keeps\n"
           "   %4s %14s %14s %14s %16s\n", n_test_prompts, "N", "reward picks", "random pick", "judge picks",
           "distinct words");
    for (int k = 0; k < 5; k++) {
        double sr = 0, sa = 0, so = 0, sd = 0;
        for (int p = 0; p < n_test_prompts; p++) {
            const sample *g = &test_s[p * MAX_N];
            int best = 0, oracle = 0;
            for (int i = 0; i < ns[k]; i++) {
                if (g[i].reward > g[best].reward) best = i;
                if (g[i].judge > g[oracle].judge) oracle = i;
                sa += g[i].judge / ns[k];
            }
            sr += g[best].judge;
            so += g[oracle].judge;
            sd += g[best].distinct;
        }
        bx[k] = (float)ns[k];
        by_reward[k] = (float)(sr / n_test_prompts);
        by_random[k] = (float)(sa / n_test_prompts);
        by_oracle[k] = (float)(so / n_test_prompts);
        distinct_bon[k] = (float)(sd / n_test_prompts);
        printf("   %4d %14.3f %14.3f %14.3f %16.3f\n", ns[k], by_reward[k], by_random[k], by_oracle[k], distinct_bon[k]);
    }

    /* 4. DPO */
    t0 = now();
    gpt policy, ref;
    if (!gpt_load_checkpoint(base_path, &policy, &unused, NULL, NULL, NULL, err, sizeof err)) return fprintf(stderr, "lab07: %s\n", err), 1;
    free(unused.symbols), free(unused.bpe);
    if (!gpt_load_checkpoint(base_path, &ref, &unused, NULL, NULL, NULL, err, sizeof err)) return fprintf(stderr, "lab07: %s\n", err), 1;
    free(unused.symbols), free(unused.bpe);
    for (int i = 0; i < ref.n_params; i++) gl_param_freeze(ref.params[i]);
    opt = gl_adamw(policy.params, policy.n_params, 5e-5f, 0.9f, 0.99f, 1e-8f, 0.0f);
    float *dpo_curve = malloc((size_t)dpo_steps * sizeof *dpo_curve), *dpo_acc = malloc((size_t)dpo_steps * sizeof *dpo_acc);
    for (int step = 0; step < dpo_steps; step++) {
        for (int i = 0; i < BATCH; i++) pick[i] = (int)gl_rng_below(&rng, (uint64_t)n_train);
        pair_batch(train_pairs, pick, BATCH, idx, tgt);
        gl_step_reset();
        gl_no_grad_begin();
        gl_tensor *ref_lp = pref_sequence_logprob(&ref, idx, tgt, 2 * BATCH, SEQ);
        gl_no_grad_end();
        gl_tensor *pi_lp = pref_sequence_logprob(&policy, idx, tgt, 2 * BATCH, SEQ);
        gl_tensor *loss = pref_dpo_loss(half(pi_lp, BATCH, 0), half(pi_lp, BATCH, 1), half(ref_lp, BATCH, 0),
                                        half(ref_lp, BATCH, 1), beta);
        int ahead = 0;
        for (int i = 0; i < BATCH; i++)
            ahead += (pi_lp->data[i] - ref_lp->data[i]) > (pi_lp->data[BATCH + i] - ref_lp->data[BATCH + i]);
        dpo_curve[step] = loss->data[0];
        dpo_acc[step] = (float)ahead / BATCH;
        gl_backward(loss);
        gl_clip_grad_norm(policy.params, policy.n_params, 1.0f);
        gl_optim_step(opt);
        gl_optim_zero_grad(opt);
    }
    gl_optim_free(opt);
    double train_time = now() - t0;
    enum { DPO_SAMPLES = 4 };
    sample *dpo_s = malloc((size_t)n_test_prompts * DPO_SAMPLES * sizeof *dpo_s);
    double dpo_judge = 0, dpo_distinct = 0, base_distinct = 0;
    for (int p = 0; p < n_test_prompts; p++)
        for (int k = 0; k < DPO_SAMPLES; k++) {
            sample *s = &dpo_s[p * DPO_SAMPLES + k];
            complete(&policy, test_prompts + (size_t)p * PROMPT, &rng, s);
            judge_sample(s, &judge, &codec);
            dpo_judge += s->judge / (n_test_prompts * DPO_SAMPLES);
            dpo_distinct += s->distinct / (n_test_prompts * DPO_SAMPLES);
        }
    for (int i = 0; i < n_all; i++) base_distinct += test_s[i].distinct / n_all;
    float matched = 0; /* the N at which best-of-N (reward picks) reaches DPO's one sample, by log-linear interpolation */
    for (int k = 0; k + 1 < 5 && matched == 0; k++)
        if (by_reward[k] <= dpo_judge && by_reward[k + 1] >= dpo_judge)
            matched = (float)(ns[k] * pow(2.0, (dpo_judge - by_reward[k]) / (by_reward[k + 1] - by_reward[k] + 1e-12)));
    printf("\n4. DPO (beta %g): %d steps of %d pairs against the frozen base (%.1f s)\n"
           "   loss %.4f (log 2 = %.4f) -> %.4f; pairs where the policy moved toward the chosen one: %.0f%% -> %.0f%%\n"
           "   judge score of its samples (%d per held-out prompt): %.3f, against the base's %.3f\n",
           (double)beta, dpo_steps, BATCH, train_time, dpo_curve[0], log(2.0), dpo_curve[dpo_steps - 1],
           100.0 * dpo_acc[0], 100.0 * dpo_acc[dpo_steps - 1], DPO_SAMPLES, dpo_judge, base_judge);
    if (matched > 0)
        printf("   best-of-N with the reward model needs N = %.1f samples (and as many reward evaluations) to score as "
               "well as one DPO sample\n", matched);
    else
        printf("   best-of-N with the reward model at N = 1..16 scores %.3f..%.3f: %s DPO's one sample\n",
               by_reward[0], by_reward[4], by_reward[4] < dpo_judge ? "never as high as" : "above");
    printf("   distinct-word share (repetition check, not part of the judge): base %.3f, best-of-16 %.3f, DPO %.3f\n",
           base_distinct, distinct_bon[4], dpo_distinct);

    printf("\nSamples for the first held-out prompt:\n");
    int best16 = 0;
    for (int i = 1; i < MAX_N; i++)
        if (test_s[i].reward > test_s[best16].reward) best16 = i;
    print_sample("base (first sample)", &test_s[0], &codec);
    print_sample("best of 16 by reward", &test_s[best16], &codec);
    print_sample("DPO", &dpo_s[0], &codec);
    const sample *gamer = NULL; /* the sample that games the judge best: full marks, fewest distinct words */
    for (int i = 0; i < n_all; i++)
        if (test_s[i].judge == 1.0 && (!gamer || test_s[i].distinct < gamer->distinct)) gamer = &test_s[i];
    for (int i = 0; i < n_test_prompts * DPO_SAMPLES; i++)
        if (dpo_s[i].judge == 1.0 && (!gamer || dpo_s[i].distinct < gamer->distinct)) gamer = &dpo_s[i];
    if (gamer) {
        printf("The most repetitive sample with full marks from the judge (distinct-word share %.2f):\n", gamer->distinct);
        print_sample("", gamer, &codec);
    }

    /* plots and results */
    mkdir("out", 0755);
    mkdir(out, 0755);
    float dpo_line[2] = {(float)dpo_judge, (float)dpo_judge}, dpo_x[2] = {1, 16};
    gl_series bs[4] = {{"best of N by the reward model", bx, by_reward, 5, false, NULL},
                       {"random pick (the base model)", bx, by_random, 5, false, NULL},
                       {"best of N by the judge itself", bx, by_oracle, 5, false, NULL},
                       {"DPO policy, one sample", dpo_x, dpo_line, 2, false, NULL}};
    gl_chart bc = {.title = "Best-of-N: judge score of the kept sample", .xlabel = "N (samples per prompt)",
                   .ylabel = "share of real words", .log_x = true, .legend_bottom = true};
    snprintf(path, sizeof path, "%s/best_of_n.png", out);
    if (!gl_plot_lines(path, &bc, bs, 4, err, sizeof err)) fprintf(stderr, "lab07: %s\n", err), status = 1;
    gl_series rj[1] = {{NULL, jxf, ryf, n_all, true, NULL}};
    char title[128];
    snprintf(title, sizeof title, "Reward vs judge on held-out samples (r = %.2f)", corr);
    gl_chart rc = {.title = title, .xlabel = "judge: share of real words", .ylabel = "reward model's score"};
    snprintf(path, sizeof path, "%s/reward_vs_judge.png", out);
    if (!gl_plot_lines(path, &rc, rj, 1, err, sizeof err)) fprintf(stderr, "lab07: %s\n", err), status = 1;
    gl_series dl[2] = {{"DPO loss", NULL, dpo_curve, dpo_steps, false, NULL},
                       {"reward model loss (Bradley-Terry)", NULL, rm_curve, rm_steps, false, NULL}};
    gl_chart dc = {.title = "Training losses", .xlabel = "step", .ylabel = "loss (log 2 = 0.693 at the start)"};
    snprintf(path, sizeof path, "%s/losses.png", out);
    if (!gl_plot_lines(path, &dc, dl, 2, err, sizeof err)) fprintf(stderr, "lab07: %s\n", err), status = 1;

    snprintf(path, sizeof path, "%s/results.json", out);
    gl_json_writer js;
    if (gl_jw_open(&js, path)) {
        gl_jw_object(&js, NULL);
        gl_jw_int(&js, "train_pairs", n_train);
        gl_jw_int(&js, "heldout_pairs", n_test);
        gl_jw_number(&js, "reward_train_accuracy", (double)right_train / n_train);
        gl_jw_number(&js, "reward_heldout_accuracy", (double)right_test / n_test);
        gl_jw_number(&js, "reward_judge_correlation", corr);
        gl_jw_number(&js, "base_judge", base_judge);
        gl_jw_object(&js, "best_of_n");
        for (int k = 0; k < 5; k++) {
            char n[16];
            snprintf(n, sizeof n, "%d", ns[k]);
            gl_jw_object(&js, n);
            gl_jw_number(&js, "reward", by_reward[k]);
            gl_jw_number(&js, "random", by_random[k]);
            gl_jw_number(&js, "judge", by_oracle[k]);
            gl_jw_end(&js);
        }
        gl_jw_end(&js);
        gl_jw_number(&js, "dpo_beta", beta);
        gl_jw_number(&js, "dpo_loss_start", dpo_curve[0]);
        gl_jw_number(&js, "dpo_loss_end", dpo_curve[dpo_steps - 1]);
        gl_jw_number(&js, "dpo_judge", dpo_judge);
        gl_jw_number(&js, "dpo_gain_over_base", dpo_judge - base_judge);
        gl_jw_number(&js, "best_of_n_matching_dpo", matched);
        gl_jw_end(&js);
    }
    if (!gl_jw_close(&js)) fprintf(stderr, "lab07: cannot write %s\n", path), status = 1;
    printf("wrote %s/best_of_n.png, reward_vs_judge.png, losses.png, results.json\n", out);
    pref_reward_free(&rm);
    gpt_free(&policy);
    gpt_free(&ref);
    gpt_free(&base);
    pref_judge_free(&judge);
    gl_codec_free(&codec);
    free(tokens), free(train_prompts), free(test_prompts), free(train_s), free(test_s), free(train_pairs);
    free(test_pairs), free(rm_curve), free(jx), free(ry), free(jxf), free(ryf), free(dpo_curve), free(dpo_acc), free(dpo_s);
    gl_arena_release();
    gl_stdout_check("lab07");
    return status;
}
