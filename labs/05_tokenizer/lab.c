/* Lab 05 - byte-level BPE tokenizers.
 *   1. train vocabularies of 256 .. 8,192 tokens on 90% of a corpus; measure bytes per token on the other 10%
 *   2. the Zipf curve of token frequencies (GPT-2's vocabulary and a trained one)
 *   3. how GPT-2 splits numbers, code, whitespace and non-English text
 *   4. pretraining the same small GPT on bytes and on 1,024 BPE tokens: held-out bits per byte
 * Writes out/lab05/compression.png, zipf.png and results.json. `make lab05`, or:
 *   ./build/lab05 [--corpus FILE] [--out DIR] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "bpe.h"
#include "gpt.h"
#include "optim.h"
#include "io.h"
#include "json.h"
#include "plot.h"

/* 1 once an output (a plot, results.json) could not be written: reported at once, exit status 1 at the end */
static int status;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_desc(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x < y) - (x > y);
}

/* token counts sorted descending into freq (vocab entries); returns how many are non-zero */
static int zipf(gl_bpe *t, const unsigned char *text, size_t len, float *rank, float *freq) {
    int V = gl_bpe_vocab_size(t);
    int64_t *count = calloc((size_t)V, sizeof *count);
    int32_t *ids = NULL;
    size_t cap = 0, n = gl_bpe_encode(t, text, len, &ids, &cap);
    for (size_t i = 0; i < n; i++) count[ids[i]]++;
    qsort(count, (size_t)V, sizeof *count, cmp_desc);
    int used = 0;
    while (used < V && count[used] > 0) {
        rank[used] = (float)(used + 1);
        freq[used] = (float)count[used] / (float)n;
        used++;
    }
    free(count);
    free(ids);
    return used;
}

/* prints how t splits s: each token in brackets */
static int show_split(gl_bpe *t, const char *label, const char *s) {
    int32_t *ids = NULL;
    size_t cap = 0, n = gl_bpe_encode(t, (const unsigned char *)s, strlen(s), &ids, &cap);
    printf("  %-12s %3zu bytes -> %2zu tokens: ", label, strlen(s), n);
    for (size_t i = 0; i < n; i++) {
        size_t l;
        const unsigned char *b = gl_bpe_token_bytes(t, ids[i], &l);
        putchar('[');
        for (size_t k = 0; k < l; k++) {
            if (b[k] == '\n') fputs("\\n", stdout);
            else if (b[k] == ' ') fputs("\xc2\xb7", stdout); /* a middle dot shows the spaces */
            else putchar(b[k]);
        }
        putchar(']');
    }
    putchar('\n');
    free(ids);
    return (int)n;
}

/* ---- 4: pretraining on bytes vs BPE tokens ---- */
enum { PT_B = 12, PT_T = 64, PT_STEPS = 300, PT_EVAL = 20 };

static void pt_batch(const int32_t *tok, size_t n, gl_rng *r, int32_t *x, int32_t *y) {
    for (int b = 0; b < PT_B; b++) {
        size_t at = gl_rng_below(r, n - PT_T - 1);
        memcpy(x + (size_t)b * PT_T, tok + at, PT_T * sizeof *x);
        memcpy(y + (size_t)b * PT_T, tok + at + 1, PT_T * sizeof *y);
    }
}

/* The same 2-layer GPT (4 heads, 64 dims, block 64, batch 12, AdamW 3e-3, 300 steps) trained on train[0..n_train)
 * tokens of a vocabulary of V; returns the held-out loss in nats per token (20 fixed batches of val) */
static double pretrain(const int32_t *train, size_t n_train, const int32_t *val, size_t n_val, int V, double *secs) {
    gpt m;
    gpt_build(&m, (gpt_config){.n_layer = 2, .n_head = 4, .n_embd = 64, .block_size = PT_T, .vocab_size = V,
                               .padded_vocab_size = (V + 63) / 64 * 64, .bias = true, .ln_eps = 1e-5f});
    gpt_init(&m, 1337);
    gl_optim *opt = gl_adamw(m.trainable, m.n_trainable, 3e-3f, 0.9f, 0.99f, 1e-8f, 0.1f);
    int32_t x[PT_B * PT_T], y[PT_B * PT_T];
    gl_rng r;
    gl_rng_seed(&r, 5);
    double t0 = now();
    for (int step = 0; step < PT_STEPS; step++) {
        opt->lr = gl_lr_warmup_cosine(step, 20, PT_STEPS, 3e-3f, 3e-4f);
        pt_batch(train, n_train, &r, x, y);
        gl_step_reset();
        gl_backward(gpt_loss(&m, x, y, PT_B, PT_T, NULL, false));
        gl_clip_grad_norm(m.trainable, m.n_trainable, 1.0f);
        gl_optim_step(opt);
        gl_optim_zero_grad(opt);
    }
    *secs = now() - t0;
    gl_rng_seed(&r, 6);
    double sum = 0;
    gl_no_grad_begin();
    for (int i = 0; i < PT_EVAL; i++) {
        gl_step_reset();
        pt_batch(val, n_val, &r, x, y);
        sum += gpt_loss(&m, x, y, PT_B, PT_T, NULL, false)->data[0];
    }
    gl_no_grad_end();
    gl_step_reset();
    gl_optim_free(opt);
    gpt_free(&m);
    return sum / PT_EVAL;
}

int main(int argc, char **argv) {
    const char *corpus = "data/tinyshakespeare/input.txt", *out = "out/lab05";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--corpus") && i + 1 < argc) corpus = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else {
            fprintf(stderr, "usage: lab05 [--corpus FILE] [--out DIR]\n");
            return 2;
        }
    }
    char err[512], path[4096];
    unsigned char *text;
    size_t len;
    if (!gl_read_whole_file(corpus, &text, &len, err, sizeof err)) {
        fprintf(stderr, "lab05: %s\n", err);
        return 1;
    }
    if (len < 10000) {
        fprintf(stderr, "lab05: '%s' has %zu bytes; use a corpus of at least 10 kB\n", corpus, len);
        return 1;
    }
    mkdir("out", 0755);
    mkdir(out, 0755);
    size_t split = len * 9 / 10;
    while (split < len && (text[split] & 0xC0) == 0x80) split++; /* do not cut a UTF-8 character */
    printf("Lab 05: byte-level BPE on %s (%zu bytes: train %zu, held out %zu)\n\n", corpus, len, split, len - split);

    /* 1. compression against vocabulary size */
    const int sizes[] = {256, 512, 1024, 2048, 4096, 8192};
    enum { N_SIZES = sizeof sizes / sizeof *sizes };
    float xs[N_SIZES], bpt[N_SIZES], secs[N_SIZES];
    const char *sp[1] = {"<|endoftext|>"};
    gl_bpe *trained[N_SIZES];
    printf("1. Vocabulary size against compression (bytes per token on the held-out 10%%)\n");
    printf("  %8s %10s %12s %10s\n", "vocab", "merges", "bytes/token", "train s");
    for (int k = 0; k < N_SIZES; k++) {
        double t0 = now();
        trained[k] = gl_bpe_train(text, split, sizes[k] + (sizes[k] > 256), sp, sizes[k] > 256, 0, err, sizeof err);
        secs[k] = (float)(now() - t0);
        if (!trained[k]) {
            fprintf(stderr, "lab05: %s\n", err);
            return 1;
        }
        int32_t *ids = NULL;
        size_t cap = 0, n = gl_bpe_encode(trained[k], text + split, len - split, &ids, &cap);
        free(ids);
        xs[k] = (float)sizes[k];
        bpt[k] = (float)(len - split) / (float)n;
        printf("  %8d %10d %12.3f %10.3f\n", sizes[k], gl_bpe_n_merges(trained[k]), (double)bpt[k], (double)secs[k]);
    }
    gl_bpe *gpt2 = gl_bpe_load_gpt2("tokenizer/gpt2/encoder.json", "tokenizer/gpt2/vocab.bpe", err, sizeof err);
    if (!gpt2) {
        fprintf(stderr, "lab05: %s\n", err);
        return 1;
    }
    int32_t *ids = NULL;
    size_t cap = 0, n_gpt2 = gl_bpe_encode(gpt2, text + split, len - split, &ids, &cap);
    free(ids);
    float gx = 50257, gy = (float)(len - split) / (float)n_gpt2;
    printf("  %8s %10d %12.3f %10s   (GPT-2's vocabulary, trained on WebText, not on this corpus)\n", "50257",
           gl_bpe_n_merges(gpt2), (double)gy, "-");
    gl_series comp[2] = {{"trained on this corpus", xs, bpt, N_SIZES, false, NULL}, {"GPT-2's 50,257 (WebText)", &gx, &gy, 1, false, NULL}};
    gl_chart cc = {.title = "Compression vs vocabulary size", .xlabel = "vocabulary size (log)",
                   .ylabel = "held-out bytes per token", .log_x = true, .legend_bottom = true};
    snprintf(path, sizeof path, "%s/compression.png", out);
    if (!gl_plot_lines(path, &cc, comp, 2, err, (int)sizeof err)) fprintf(stderr, "lab05: %s\n", err), status = 1;

    /* 2. Zipf */
    float *r1 = malloc(50257 * sizeof(float)), *f1 = malloc(50257 * sizeof(float));
    float *r2 = malloc(8192 * sizeof(float)), *f2 = malloc(8192 * sizeof(float));
    int u1 = zipf(gpt2, text, len, r1, f1), u2 = zipf(trained[4], text, len, r2, f2);
    printf("\n2. Zipf: token frequency falls with rank as ~1/rank. GPT-2 uses %d distinct tokens on this corpus; the\n"
           "   4,096-token vocabulary uses %d. Top GPT-2 token: %.2f%% of all tokens; rank 100: %.3f%%; rank 1000: %.4f%%\n",
           u1, u2, 100.0 * f1[0], u1 > 99 ? 100.0 * f1[99] : 0.0, u1 > 999 ? 100.0 * f1[999] : 0.0);
    gl_series zs[2] = {{"GPT-2 vocabulary", r1, f1, u1, false, NULL}, {"4,096 trained here", r2, f2, u2, false, NULL}};
    gl_chart zc = {.title = "Zipf: token frequency by rank", .xlabel = "rank (log)", .ylabel = "share of tokens (log)",
                   .log_x = true, .log_y = true};
    snprintf(path, sizeof path, "%s/zipf.png", out);
    if (!gl_plot_lines(path, &zc, zs, 2, err, (int)sizeof err)) fprintf(stderr, "lab05: %s\n", err), status = 1;

    /* 3. how GPT-2 splits things */
    printf("\n3. How GPT-2 splits text (a middle dot marks a space)\n");
    struct {
        const char *label, *text;
    } cases[] = {
        {"numbers", "In 1984 there were 3,141,592 people and 12345678 dollars."},
        {"arithmetic", "127 + 677 = 804"},
        {"code", "for (int i = 0; i < n; i++) {\n    sum += x[i];\n}"},
        {"python", "def f(x):\n        return x ** 2"},
        {"whitespace", "a    b\n\n\n\tc"},
        {"English", "The quick brown fox jumps over the lazy dog."},
        {"German", "Der schnelle braune Fuchs springt über den faulen Hund."},
        {"Russian", "Быстрая коричневая лиса прыгает через ленивую собаку."},
        {"Japanese", "素早い茶色の狐が怠惰な犬を飛び越える。"},
        {"emoji", "I love 🦀 and 👩‍💻!"},
    };
    int n_cases = (int)(sizeof cases / sizeof *cases);
    float bytes_per_token[16];
    for (int k = 0; k < n_cases; k++) {
        int n = show_split(gpt2, cases[k].label, cases[k].text);
        bytes_per_token[k] = (float)strlen(cases[k].text) / (float)n;
    }
    printf("\n   Numbers are cut into chunks of at most three digits, and which chunks exist depends on what was\n"
           "   frequent in GPT-2's training text: 127 is one token, 677 and 804 are two each, 12345678 is three\n"
           "   pieces with no regard to place value, so arithmetic is hard to learn from them. Byte-level tokens\n"
           "   can also end inside a UTF-8 character (printed as \xef\xbf\xbd above): the model must learn to join them.\n"
           "   Each run of spaces in code costs tokens, and non-English text costs several tokens per character:\n"
           "   the same sentence is %.1f bytes/token in English, %.1f in Russian and %.1f in Japanese, so a model\n"
           "   sees far less of those languages per context window and per training token.\n",
           (double)bytes_per_token[5], (double)bytes_per_token[7], (double)bytes_per_token[8]);

    /* 4. pretraining on bytes vs BPE */
    printf("\n4. Pretraining the same small GPT (2 layers, 64 dims, block 64, batch 12, 300 steps) on bytes and on the\n"
           "   1,024-token vocabulary of part 1; held-out loss in bits per byte, so the two are comparable\n");
    int32_t *byte_ids = malloc(len * sizeof *byte_ids);
    for (size_t i = 0; i < len; i++) byte_ids[i] = text[i];
    int32_t *bpe_train_ids = NULL, *bpe_val_ids = NULL;
    size_t cap1 = 0, cap2 = 0, n_bt = gl_bpe_encode(trained[2], text, split, &bpe_train_ids, &cap1),
           n_bv = gl_bpe_encode(trained[2], text + split, len - split, &bpe_val_ids, &cap2);
    double bytes_per_bpe = (double)(len - split) / (double)n_bv, pt_secs[2];
    double nats_bytes = pretrain(byte_ids, split, byte_ids + split, len - split, 256, &pt_secs[0]);
    double nats_bpe = pretrain(bpe_train_ids, n_bt, bpe_val_ids, n_bv, gl_bpe_vocab_size(trained[2]), &pt_secs[1]);
    double bpb_bytes = nats_bytes / log(2.0), bpb_bpe = nats_bpe / log(2.0) / bytes_per_bpe;
    printf("   %-22s %14s %16s %12s %8s\n", "tokens", "loss (nats/tok)", "text seen (bytes)", "bits/byte", "seconds");
    printf("   %-22s %14.3f %16.0f %12.3f %8.1f\n", "bytes (256)", nats_bytes, (double)PT_STEPS * PT_B * PT_T, bpb_bytes,
           pt_secs[0]);
    printf("   %-22s %14.3f %16.0f %12.3f %8.1f\n", "BPE (1,024 tokens)", nats_bpe,
           (double)PT_STEPS * PT_B * PT_T * bytes_per_bpe, bpb_bpe, pt_secs[1]);
    printf("   With the same steps and context length, each BPE token carries %.2f bytes: the model reads %.1fx more\n"
           "   text and sees %.1fx further back; per byte of held-out text it needs %s bits.\n",
           bytes_per_bpe, bytes_per_bpe, bytes_per_bpe, bpb_bpe < bpb_bytes ? "fewer" : "more");
    free(byte_ids), free(bpe_train_ids), free(bpe_val_ids);

    /* results.json */
    snprintf(path, sizeof path, "%s/results.json", out);
    gl_json_writer js;
    if (gl_jw_open(&js, path)) {
        gl_jw_object(&js, NULL);
        gl_jw_string(&js, "corpus", corpus);
        gl_jw_int(&js, "bytes", (long long)len);
        gl_jw_array(&js, "compression");
        for (int k = 0; k < N_SIZES; k++) {
            gl_jw_object(&js, NULL);
            gl_jw_int(&js, "vocab", sizes[k]);
            gl_jw_number(&js, "bytes_per_token", bpt[k]);
            gl_jw_number(&js, "train_seconds", secs[k]);
            gl_jw_end(&js);
        }
        gl_jw_end(&js);
        gl_jw_number(&js, "gpt2_bytes_per_token", gy);
        gl_jw_int(&js, "gpt2_distinct_tokens", u1);
        gl_jw_number(&js, "pretrain_bytes_bits_per_byte", bpb_bytes);
        gl_jw_number(&js, "pretrain_bpe1024_bits_per_byte", bpb_bpe);
        gl_jw_array(&js, "splits");
        for (int k = 0; k < n_cases; k++) {
            gl_jw_object(&js, NULL);
            gl_jw_string(&js, "case", cases[k].label);
            gl_jw_number(&js, "bytes_per_token", bytes_per_token[k]);
            gl_jw_end(&js);
        }
        gl_jw_end(&js);
        gl_jw_end(&js);
    }
    if (!gl_jw_close(&js)) fprintf(stderr, "lab05: could not write %s\n", path), status = 1;
    printf("\nwrote %s/compression.png, %s/zipf.png, %s/results.json\n", out, out, out);
    for (int k = 0; k < N_SIZES; k++) gl_bpe_free(trained[k]);
    gl_bpe_free(gpt2);
    free(r1), free(f1), free(r2), free(f2), free(text);
    gl_stdout_check("lab05");
    return status;
}
