/* Lab 04 - attention and the transformer.
 *   1. attention from scratch on a 4-token example, step by step with ops and as plain loops (by_hand.c), checked
 *      against the fused op
 *   2. one transformer block: its parameters and what it does to a batch
 *   2b. where a token is: sinusoidal position encodings against the trained GPT's learned ones; encoder vs decoder
 *   3. heatmaps of the attention of a GPT trained on tiny shakespeare, per layer and head
 *   4. naive vs flash attention: time and memory against sequence length
 *   5. pretrained GPT-2, if its files are at hand
 * Writes PNGs and results.json into out/lab04. `make lab04`, or ./build/lab04 [--checkpoint CKPT] [--gpt2 DIR] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "by_hand.h"
#include "cli.h"
#include "bpe.h"
#include "charvocab.h"
#include "utf8.h"
#include "gpt.h"
#include "gpt_io.h"
#include "io.h"
#include "json.h"
#include "plot.h"
#include "sample.h"

/* 1 once an output (a plot, results.json) could not be written: reported at once, exit status 1 at the end */
static int status;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void print_matrix(const char *name, const gl_tensor *t) {
    int rows = t->shape[t->ndim - 2], cols = t->shape[t->ndim - 1];
    printf("  %s [%d x %d]\n", name, rows, cols);
    for (int i = 0; i < rows; i++) {
        printf("    ");
        for (int j = 0; j < cols; j++) {
            float v = t->data[i * cols + j];
            if (isinf(v)) printf("   -inf");
            else printf(" %6.3f", (double)v);
        }
        printf("\n");
    }
}

/* ---- 1 ---- */
static double attention_from_scratch(void) {
    printf("1. Attention from scratch: 4 tokens, one head of dimension 4\n");
    gl_rng r;
    gl_rng_seed(&r, 4);
    float qkv_data[4 * 12];
    for (int i = 0; i < 48; i++) qkv_data[i] = gl_rng_normal(&r);
    gl_tensor *qkv = gl_from(GL_DIMS(1, 4, 12), qkv_data);
    gl_tensor *q = gl_slice(qkv, 2, 0, 4), *k = gl_slice(qkv, 2, 4, 8), *v = gl_slice(qkv, 2, 8, 12);
    q = gl_reshape(q, GL_DIMS(4, 4)), k = gl_reshape(k, GL_DIMS(4, 4)), v = gl_reshape(v, GL_DIMS(4, 4));
    print_matrix("q (one row per token)", q);
    gl_tensor *scores = gl_mul_scalar(gl_matmul(q, gl_transpose(k, 0, 1)), 0.5f); /* 1/sqrt(4) */
    print_matrix("scores = q k^T / sqrt(4): how much token i (row) looks at token j (column)", scores);
    float mask_data[16];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) mask_data[i * 4 + j] = j <= i ? 0.0f : -INFINITY;
    gl_tensor *mask = gl_from(GL_DIMS(4, 4), mask_data);
    print_matrix("causal mask: a token may not look ahead", mask);
    gl_tensor *p = gl_softmax(gl_add(scores, mask));
    print_matrix("softmax(scores + mask): each row sums to 1", p);
    gl_tensor *out = gl_matmul(p, v);
    print_matrix("out = softmax(...) v: a weighted average of the values", out);
    gl_tensor *fused = gl_attention_ex(qkv, 1, true, GL_ATTN_NAIVE);
    gl_tensor *flash = gl_attention_ex(qkv, 1, true, GL_ATTN_FLASH);
    double diff = 0;
    for (int i = 0; i < 16; i++)
        diff = fmax(diff, fmax(fabs(fused->data[i] - out->data[i]), fabs(flash->data[i] - out->data[i])));
    printf("  the fused naive op and the flash op give the same out: max difference %.2g\n", diff);
    /* the same four lines as one loop nest (by_hand.c, the exercise of this lab) */
    float weights[16], out_by_hand[16];
    attention_by_hand(q->data, k->data, v->data, 4, 4, true, weights, out_by_hand);
    double diff_by_hand = 0;
    for (int i = 0; i < 16; i++)
        diff_by_hand = fmax(diff_by_hand, fmax(fabs(weights[i] - p->data[i]), fabs(out_by_hand[i] - out->data[i])));
    printf("  attention_by_hand (plain loops, by_hand.c) gives the same weights and out: max difference %.2g\n\n",
           diff_by_hand);
    return fmax(diff, diff_by_hand);
}

/* ---- 2 ---- */
static void one_block(void) {
    printf("2. A transformer block (GPT-2's, pre-LayerNorm): x + attn(ln_1(x)), then x + mlp(ln_2(x))\n");
    gpt m;
    gpt_build(&m, (gpt_config){.n_layer = 1, .n_head = 4, .n_embd = 32, .block_size = 8, .vocab_size = 16,
                               .padded_vocab_size = 64, .bias = true, .ln_eps = 1e-5f});
    gpt_init(&m, 1);
    for (int i = 0; i < m.n_params; i++) {
        gl_tensor *t = m.params[i];
        char s[64];
        if (!strncmp(t->name, "h.0.", 4)) printf("  %-24s %-12s %6lld weights\n", t->name, gl_shape_str(t, s, sizeof s), (long long)t->numel);
    }
    int32_t idx[8] = {1, 5, 2, 7, 7, 3, 0, 9};
    gl_no_grad_begin();
    gl_tensor *logits = gpt_forward(&m, idx, 1, 8, NULL, false);
    gl_no_grad_end();
    printf("  8 tokens -> embeddings [1, 8, 32] -> block -> ln_f -> logits [%d, %d, %d] (tied to the embedding)\n\n",
           logits->shape[0], logits->shape[1], logits->shape[2]);
    gpt_free(&m);
}

/* ---- 2b ---- */
/* cosine of two vectors of n floats */
static double cosine(const float *a, const float *b, int n) {
    double d = 0, na = 0, nb = 0;
    for (int i = 0; i < n; i++) d += (double)a[i] * b[i], na += (double)a[i] * a[i], nb += (double)b[i] * b[i];
    return na > 0 && nb > 0 ? d / sqrt(na * nb) : 0;
}

/* Attention by itself sees a set, not a sequence: q k^T is the same whatever the order of the tokens. The position
 * goes into x. The original transformer adds fixed sinusoids, PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(..):
 * their dot product depends only on the distance between two positions. GPT-2 (and our model) learns a vector per
 * position instead (wpe); training gives it a similar shape. Returns the learned cosines' fall from distance 1 to 16
 * (0 if the checkpoint is missing). */
static double positions(const char *ckpt) {
    enum { D = 128, P = 64 };
    static float pe[P][D];
    for (int p = 0; p < P; p++)
        for (int i = 0; i < D / 2; i++) {
            double f = pow(10000.0, -2.0 * i / D);
            pe[p][2 * i] = (float)sin(p * f), pe[p][2 * i + 1] = (float)cos(p * f);
        }
    static const int dist[6] = {1, 2, 4, 8, 16, 32};
    printf("2b. Where a token is: attention alone cannot tell \"dog bites man\" from \"man bites dog\"; the position is\n"
           "    added to each token's vector. Cosine between the vectors of position 10 and position 10 + k:\n");
    printf("    %-38s", "k =");
    for (int i = 0; i < 6; i++) printf(" %6d", dist[i]);
    printf("\n    %-38s", "sinusoids (fixed, d = 128)");
    for (int i = 0; i < 6; i++) printf(" %6.3f", cosine(pe[10], pe[10 + dist[i]], D));
    gpt m;
    gpt_run_state rs;
    char err[512];
    double fall = 0;
    if (!gpt_load_checkpoint(ckpt, &m, &rs, NULL, NULL, NULL, err, sizeof err)) {
        printf("\n    (the learned ones skipped: %s)\n", err);
    } else {
        int C = m.cfg.n_embd, T = m.cfg.block_size;
        printf("\n    %-38s", "learned (the shakespeare GPT's wpe)");
        for (int i = 0; i < 6; i++) {
            if (10 + dist[i] >= T) {
                printf(" %6s", "-");
                continue;
            }
            double c = cosine(m.wpe->data + (size_t)10 * C, m.wpe->data + (size_t)(10 + dist[i]) * C, C);
            if (dist[i] == 1) fall = c;
            if (dist[i] == 16) fall -= c;
            printf(" %6.3f", c);
        }
        printf("\n    Both make near positions alike and far ones different; the learned table got there from random\n"
               "    numbers, by training alone (block size %d: it has no vector for position %d and cannot go past it).\n", T, T);
        gpt_free(&m);
        free(rs.symbols), free(rs.bpe);
    }
    printf("    Encoder vs decoder: this GPT is a decoder: its causal mask (part 1) lets a token see only the past, so\n"
           "    it can be trained to predict the next token at every position at once. An encoder (BERT, the MiniLM of\n"
           "    lab 09) has no mask: every token sees the whole text, which suits understanding a text given whole\n"
           "    (one vector per text), not generating it.\n\n");
    return fall;
}

/* ---- 3 ---- */
static int heatmaps(const char *ckpt, const char *out_dir, const char *sentence) {
    gpt m;
    gpt_run_state rs;
    char err[512];
    if (!gpt_load_checkpoint(ckpt, &m, &rs, NULL, NULL, NULL, err, sizeof err)) {
        printf("3. (skipped: %s; run `make run` first or pass --checkpoint)\n\n", err);
        return 0;
    }
    if (rs.n_symbols == 0) {
        printf("3. (skipped: %s is not a character-level model)\n\n", ckpt);
        gpt_free(&m);
        return 0;
    }
    gl_charvocab v = {rs.n_symbols, rs.symbols};
    uint32_t *cps;
    size_t n;
    gl_utf8_decode((const unsigned char *)sentence, strlen(sentence), &cps, &n, err, sizeof err);
    int T = (int)n < m.cfg.block_size ? (int)n : m.cfg.block_size;
    int32_t *ids = malloc((size_t)T * sizeof *ids);
    if (gl_charvocab_encode(&v, cps, (size_t)T, ids, NULL, err, sizeof err) < 0) {
        printf("3. (skipped: %s)\n\n", err);
        return 0;
    }
    printf("3. Attention of %s (%d layers x %d heads) on \"%.*s\"\n", ckpt, m.cfg.n_layer, m.cfg.n_head, T, sentence);
    const gpt_config *c = &m.cfg;
    int L = c->n_layer, H = c->n_head;
    gl_heatmap *maps = calloc((size_t)(L * H), sizeof *maps);
    char **titles = calloc((size_t)(L * H), sizeof *titles);
    const char **labels = calloc((size_t)T, sizeof *labels);
    char(*lab)[8] = calloc((size_t)T, 8);
    for (int t = 0; t < T; t++) {
        if (cps[t] == '\n') strcpy(lab[t], "\\n");
        else if (cps[t] == ' ') strcpy(lab[t], "_");
        else gl_utf8_encode(cps[t], lab[t]);
        labels[t] = lab[t];
    }
    /* the model's forward, layer by layer, keeping each layer's attention probabilities */
    gl_no_grad_begin();
    gl_step_reset();
    int32_t *pos = malloc((size_t)T * sizeof *pos);
    for (int t = 0; t < T; t++) pos[t] = t;
    gl_tensor *x = gl_add(gl_embedding(m.wte, ids, GL_DIMS(1, T)), gl_embedding(m.wpe, pos, GL_DIMS(T)));
    for (int l = 0; l < L; l++) {
        gpt_block *k = &m.blocks[l];
        gl_tensor *qkv = gl_linear(gl_layernorm(x, k->ln1_w, k->ln1_b, c->ln_eps), k->attn_w, k->attn_b);
        gl_tensor *w = gl_attention_weights(qkv, H, true);
        for (int h = 0; h < H; h++) {
            titles[l * H + h] = malloc(48);
            snprintf(titles[l * H + h], 48, "layer %d head %d", l % 1000, h % 1000);
            float *copy = malloc((size_t)T * T * sizeof(float));
            memcpy(copy, w->data + (size_t)h * T * T, (size_t)T * T * sizeof(float));
            maps[l * H + h] = (gl_heatmap){titles[l * H + h], copy, T, T};
        }
        x = gl_add(x, gl_linear(gl_attention(qkv, H), k->proj_w, k->proj_b));
        x = gl_add(x, gl_linear(gl_gelu(gl_linear(gl_layernorm(x, k->ln2_w, k->ln2_b, c->ln_eps), k->fc_w, k->fc_b)),
                                k->fcproj_w, k->fcproj_b));
    }
    gl_no_grad_end();
    /* what each head looks at, in one number: the average distance back from a query to its weighted keys */
    for (int l = 0; l < L; l++) {
        printf("  layer %d: mean look-back distance per head:", l);
        for (int h = 0; h < H; h++) {
            double dist = 0;
            for (int i = 0; i < T; i++)
                for (int j = 0; j <= i; j++) dist += maps[l * H + h].values[i * T + j] * (i - j);
            printf(" %5.1f", dist / T);
        }
        printf("\n");
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/attention_heads.png", out_dir);
    if (!gl_plot_heatmaps(path, "Attention per layer (rows) and head: query (row) to key (column)", maps, L * H, H,
                          labels, labels, 0.0f, 1.0f, err, (int)sizeof err))
        fprintf(stderr, "lab04: %s\n", err);
    printf("  wrote %s\n\n", path);
    for (int i = 0; i < L * H; i++) free((void *)maps[i].values), free(titles[i]);
    free(maps), free(titles), free(labels), free(lab), free(pos), free(ids), free(cps), free(rs.symbols), free(rs.bpe);
    gpt_free(&m);
    return L * H;
}

/* ---- 4 ---- */
static void naive_vs_flash(const char *out_dir, gl_json_writer *js) {
    printf("4. Naive vs flash attention (B = 1, 12 heads of 64, causal, forward + backward, best of 3)\n");
    printf("  %6s %10s %10s %12s %12s\n", "T", "naive ms", "flash ms", "naive MiB", "flash MiB");
    enum { N = 5 };
    const int Ts[N] = {128, 256, 512, 1024, 2048};
    float tx[N], tn[N], tf[N], mn[N], mf[N];
    for (int i = 0; i < N; i++) {
        int T = Ts[i];
        gl_tensor *qkv = gl_param(GL_DIMS(1, T, 3 * 768), "qkv");
        gl_rng r;
        gl_rng_seed(&r, 2);
        gl_init_normal(qkv, &r, 1.0f);
        float best[2] = {1e30f, 1e30f}, mem[2] = {0, 0};
        for (int rep = 0; rep < 3; rep++)
            for (int impl = 0; impl < 2; impl++) {
                gl_step_reset();
                gl_zero_grad(&qkv, 1);
                gl_arena_reset_high_water();
                size_t before = gl_arena_stats_get().used;
                double t0 = now();
                gl_backward(gl_mean_all(gl_attention_ex(qkv, 12, true, (gl_attn_impl)impl)));
                float ms = (float)((now() - t0) * 1e3);
                best[impl] = ms < best[impl] ? ms : best[impl];
                mem[impl] = (float)((gl_arena_stats_get().high_water - before) / 1048576.0);
            }
        printf("  %6d %10.1f %10.1f %12.1f %12.1f\n", T, (double)best[0], (double)best[1], (double)mem[0], (double)mem[1]);
        tx[i] = (float)T, tn[i] = best[0], tf[i] = best[1], mn[i] = mem[0], mf[i] = mem[1];
        if (js) {
            gl_jw_object(js, NULL);
            gl_jw_int(js, "T", T);
            gl_jw_number(js, "naive_ms", best[0]);
            gl_jw_number(js, "flash_ms", best[1]);
            gl_jw_number(js, "naive_mib", mem[0]);
            gl_jw_number(js, "flash_mib", mem[1]);
            gl_jw_end(js);
        }
        gl_param_free(qkv);
        gl_arena_release();
    }
    char path[4096], err[256];
    gl_series s[4] = {{"naive time (ms)", tx, tn, N, false, NULL}, {"flash time (ms)", tx, tf, N, false, NULL},
                      {"naive memory (MiB)", tx, mn, N, false, NULL}, {"flash memory (MiB)", tx, mf, N, false, NULL}};
    gl_chart ch = {.title = "Naive vs flash attention", .xlabel = "sequence length T (log)", .ylabel = "ms or MiB (log)",
                   .log_x = true, .log_y = true};
    snprintf(path, sizeof path, "%s/naive_vs_flash.png", out_dir);
    if (!gl_plot_lines(path, &ch, s, 4, err, (int)sizeof err)) fprintf(stderr, "lab04: %s\n", err), status = 1;
    printf("  naive keeps the whole T x T probability matrix per head for the backward pass: its memory grows\n"
           "  as T^2; flash keeps one tile per thread and a log-sum-exp per row: linear in T. Wrote %s\n\n", path);
}

/* ---- 5 ---- */
static bool emit_bytes(int32_t tok, void *ctx) {
    size_t len;
    const unsigned char *b = gl_bpe_token_bytes(ctx, tok, &len);
    fwrite(b, 1, len, stdout);
    fflush(stdout);
    return true;
}

static void pretrained(const char *dir) {
    char st[4096], cfg[4096], err[512];
    snprintf(st, sizeof st, "%s/model.safetensors", dir);
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    if (access(st, R_OK) || access(cfg, R_OK)) {
        printf("5. Pretrained GPT-2: not found in %s/ (model.safetensors + config.json). Download them from\n"
               "   https://huggingface.co/openai-community/gpt2/tree/main into that folder to generate with GPT-2.\n", dir);
        return;
    }
    gpt m;
    if (!gpt_load_safetensors(st, cfg, &m, err, sizeof err)) {
        printf("5. Pretrained GPT-2: %s\n", err);
        return;
    }
    gl_bpe *tok = gl_bpe_load_gpt2("tokenizer/gpt2/encoder.json", "tokenizer/gpt2/vocab.bpe", err, sizeof err);
    if (!tok) {
        printf("5. %s\n", err);
        gpt_free(&m);
        return;
    }
    const char *prompt = "The meaning of life is";
    int32_t *ids = NULL;
    size_t cap = 0, n = gl_bpe_encode(tok, (const unsigned char *)prompt, strlen(prompt), &ids, &cap);
    printf("5. Pretrained GPT-2 (%.0fM parameters), temperature 0.8, top-k 40:\n   %s", m.n_weights / 1e6, prompt);
    gl_sampling s = {.temperature = 0.8f, .top_k = 40, .top_p = 1.0f};
    gl_rng rng;
    gl_rng_seed(&rng, 42);
    gl_generate(&m, ids, (int)n, 40, &s, &rng, true, emit_bytes, tok);
    printf("\n");
    free(ids);
    gl_bpe_free(tok);
    gpt_free(&m);
}

int main(int argc, char **argv) {
    const char *ckpt = "checkpoints/shakespeare_char.ckpt", *gpt2_dir = "checkpoints/gpt2", *out = "out/lab04";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--checkpoint") && i + 1 < argc) ckpt = argv[++i];
        else if (!strcmp(argv[i], "--gpt2") && i + 1 < argc) gpt2_dir = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else {
            fprintf(stderr, "usage: lab04 [--checkpoint CKPT] [--gpt2 DIR] [--out DIR]\n");
            return 2;
        }
    }
    mkdir("out", 0755);
    mkdir(out, 0755);
    printf("Lab 04: attention and the transformer\n\n");
    double diff = attention_from_scratch();
    one_block();
    double pos_fall = positions(ckpt);
    int maps = heatmaps(ckpt, out, "ROMEO:\nBut soft, what light through yonder window breaks?");
    char path[4096];
    snprintf(path, sizeof path, "%s/results.json", out);
    gl_json_writer js;
    bool have_js = gl_jw_open(&js, path);
    if (have_js) {
        gl_jw_object(&js, NULL);
        gl_jw_number(&js, "by_hand_max_difference", diff);
        gl_jw_int(&js, "heatmaps", maps);
        gl_jw_number(&js, "learned_position_cosine_fall_1_to_16", pos_fall);
        gl_jw_array(&js, "naive_vs_flash");
    }
    naive_vs_flash(out, have_js ? &js : NULL);
    if (have_js) gl_jw_end(&js), gl_jw_end(&js);
    if (!gl_jw_close(&js)) fprintf(stderr, "lab04: could not write %s\n", path), status = 1;
    pretrained(gpt2_dir);
    printf("\nwrote %s/attention_heads.png, %s/naive_vs_flash.png, %s/results.json\n", out, out, out);
    gl_stdout_check("lab04");
    return status;
}
