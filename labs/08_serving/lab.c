/* Lab 08 - make a model small and fast: quantization (round to nearest vs GPTQ), the KV cache, distillation.
 *   1. one block of 32 weights in each format, by hand: the scale, the codes, the error
 *   2. SmolLM2-135M-Instruct at 8, 4 and 3 bits, round to nearest (RTN) and GPTQ: bits per weight, file size,
 *      perplexity on Moby-Dick, KL divergence from the reference and the same-top-token share, decode tokens/s
 *      against the memory-bandwidth roofline
 *   3. the KV cache: milliseconds per generated token against position, with and without it
 *   4. our shakespeare GPT at the same formats: validation loss, RTN vs GPTQ
 *   5. distillation: the 4-layer teacher, a 2-layer student from the labels, a 2-layer student from the teacher
 * `make lab08` first makes the quantized files with build/quantize and the two students with build/train (kept in
 * out/lab08), runs this, then drives build/serve at concurrency 1..16 (bench/bench_serve.py, part 6).
 *   ./build/lab08 [--out out/lab08] [--tokens 2048] [--rounds 3] [--teacher checkpoints/shakespeare_char.ckpt] */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "codec.h"
#include "gpt.h"
#include "gpt_io.h"
#include "io.h"
#include "json.h"
#include "llama.h"
#include "perplexity.h"
#include "plot.h"
#include "quant.h"
#include "sample.h"

static int status; /* 1 once an output could not be written */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void plot_or_warn(bool ok, const char *err) {
    if (!ok) fprintf(stderr, "lab08: %s\n", err), status = 1;
}

static double file_mb(const char *path) {
    struct stat st;
    return stat(path, &st) ? NAN : (double)st.st_size / 1e6;
}

/* ---- 1. one block by hand ---- */
static const struct {
    const char *name;
    int type;
} FORMATS[] = {{"Q8_0", GL_TYPE_Q8_0}, {"Q4_1", GL_TYPE_Q4_1}, {"Q4_0", GL_TYPE_Q4_0}, {"Q3_0", GL_TYPE_Q3_0}};
enum { N_FORMATS = 4 };

static void one_block(gl_json_writer *js) {
    float w[32], back[32];
    gl_rng r;
    gl_rng_seed(&r, 8);
    for (int j = 0; j < 32; j++) w[j] = 0.05f * (2 * gl_rng_uniform(&r) - 1) + (j == 11 ? -0.21f : 0.0f);
    printf("1. One block of 32 weights (a typical row slice, one outlier at index 11: %.4f)\n", (double)w[11]);
    printf("  %-5s %6s %9s  %-40s %10s %10s\n", "type", "bytes", "bits/w", "codes of the first 12 weights", "max |err|",
           "rms err");
    gl_jw_array(js, "one_block");
    for (int f = 0; f < N_FORMATS; f++) {
        gl_qmatrix q;
        gl_qmatrix_round(&q, FORMATS[f].type, w, 1, 32);
        gl_qmatrix_to_floats(&q, back);
        size_t bytes = gl_qmatrix_bytes(FORMATS[f].type, 1, 32);
        double emax = 0, e2 = 0;
        for (int j = 0; j < 32; j++) emax = fmax(emax, fabs(w[j] - back[j])), e2 += (w[j] - back[j]) * (w[j] - back[j]);
        char codes[128] = "";
        const uint8_t *b = q.data; /* the stored codes (layouts in kernels.h) */
        for (int j = 0; j < 12; j++) {
            int code;
            if (FORMATS[f].type == GL_TYPE_Q8_0) code = ((const int8_t *)(b + 2))[j];
            else if (FORMATS[f].type == GL_TYPE_Q3_0) code = ((b[2 + j % 8] >> (2 * (j / 8))) & 3) | ((b[10 + j / 8] >> (j % 8)) & 1) << 2;
            else code = b[(FORMATS[f].type == GL_TYPE_Q4_1 ? 4 : 2) + j % 16] >> (j < 16 ? 0 : 4) & 15;
            char one[8];
            snprintf(one, sizeof one, "%d ", code);
            strncat(codes, one, sizeof codes - strlen(codes) - 1);
        }
        printf("  %-5s %6zu %9.2f  %-40s %10.5f %10.5f\n", FORMATS[f].name, bytes, 8.0 * (double)bytes / 32, codes, emax,
               sqrt(e2 / 32));
        gl_jw_object(js, NULL);
        gl_jw_string(js, "type", FORMATS[f].name);
        gl_jw_int(js, "bytes", (long long)bytes);
        gl_jw_number(js, "max_error", emax);
        gl_jw_number(js, "rms_error", sqrt(e2 / 32));
        gl_jw_end(js);
        free((void *)q.data);
    }
    gl_jw_end(js);
    printf("  (the outlier sets the scale of its whole block: at 3 bits the other 31 weights share 8 levels spread\n"
           "   over +-0.21, so most of them round to the same one or two codes)\n\n");
}

/* ---- 2. SmolLM2 ---- */
typedef struct {
    const char *label, *file; /* file under --out, or a data path */
    int bits_group;           /* 0 reference, else 8 / 4 / 3 (the plot's x); -1: the shipped Q4_1 */
    bool gptq;
    char path[4096];
    llama m;
    llama_scorer sc;
    double mb, bits_per_weight, tok_s, ratio;
    gl_ppl_stats st;
} variant;

/* tokens of Moby-Dick from chapter 1 (the book's opening pages are etymologies and quotations) */
static int32_t *book_tokens(llama *m, const char *path, int want, int *n_out) {
    unsigned char *text;
    size_t len;
    char err[512];
    if (!gl_read_whole_file(path, &text, &len, err, sizeof err)) fprintf(stderr, "lab08: %s\n", err), exit(1);
    const char *start = strstr((const char *)text, "CHAPTER 1. Loomings");
    size_t off = start ? (size_t)(start - (const char *)text) : 0, take = len - off;
    if (take > (size_t)want * 8) take = (size_t)want * 8;
    int32_t *ids = NULL;
    size_t cap = 0, n = gl_bpe_encode(m->tok, text + off, take, &ids, &cap);
    free(text);
    *n_out = (int)(n < (size_t)want ? n : (size_t)want);
    return ids;
}

/* greedy decoding of n tokens after a prompt, timed: tokens per second of the decode steps alone */
static double decode_rate(llama *m, const int32_t *prompt, int n_prompt, int n) {
    llama_cache c;
    llama_cache_init(&c, m, n_prompt + n + 1, true);
    float *logits = malloc((size_t)m->cfg.vocab_size * sizeof *logits);
    llama_forward(m, &c, prompt, n_prompt, logits, false);
    double t0 = now();
    for (int i = 0; i < n; i++) {
        int32_t best = 0;
        for (int v = 1; v < m->cfg.vocab_size; v++)
            if (logits[v] > logits[best]) best = v;
        llama_forward(m, &c, &best, 1, logits, false);
    }
    double rate = n / (now() - t0);
    free(logits);
    llama_cache_free(&c);
    return rate;
}

/* the bandwidth of reading memory: GB/s of summing a buffer far larger than the caches, best of three */
static double read_bandwidth(void) {
    size_t n = (size_t)256 << 20; /* 1 GiB of floats */
    float *buf = malloc(n * sizeof *buf);
    if (!buf) return NAN;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) buf[i] = (float)(i & 7);
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now(), s = 0;
#pragma omp parallel for reduction(+ : s) schedule(static)
        for (size_t i = 0; i < n; i += 16) { /* a float per 64-byte line would skip the data; read them all */
            float a = 0;
            for (int j = 0; j < 16; j++) a += buf[i + j];
            s += a;
        }
        double gbs = (double)n * sizeof *buf / (now() - t0) / 1e9;
        if (s < 0) gbs = 0; /* keeps the sum alive */
        if (gbs > best) best = gbs;
    }
    free(buf);
    return best;
}

static void smollm2(const char *out, int n_tokens, int rounds, gl_json_writer *js) {
    char smol[4096], book[4096];
    if (!gl_find_data("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", smol, sizeof smol) ||
        !gl_find_data("mobydick/mobydick.txt", book, sizeof book)) {
        printf("2. (skipped: %s or %s is missing: make data DATA_SETS=\"smollm2 mobydick\")\n\n", smol, book);
        return;
    }
#define V(L, F, B, G) {.label = L, .file = F, .bits_group = B, .gptq = G}
    variant v[] = {V("reference fp32", "smollm2.f32.gguf", 0, false),  V("Q4_1 as shipped", NULL, -1, false),
                   V("Q8_0 RTN", "smollm2.q8_0.rtn.gguf", 8, false),   V("Q8_0 GPTQ", "smollm2.q8_0.gptq.gguf", 8, true),
                   V("Q4_0 RTN", "smollm2.q4_0.rtn.gguf", 4, false),   V("Q4_0 GPTQ", "smollm2.q4_0.gptq.gguf", 4, true),
                   V("Q3_0 RTN", "smollm2.q3_0.rtn.gguf", 3, false),   V("Q3_0 GPTQ", "smollm2.q3_0.gptq.gguf", 3, true)};
#undef V
    enum { NV = sizeof v / sizeof v[0] };
    char err[512];
    for (int i = 0; i < NV; i++) {
        if (v[i].file) snprintf(v[i].path, sizeof v[i].path, "%s/%s", out, v[i].file);
        else snprintf(v[i].path, sizeof v[i].path, "%s", smol);
        if (!llama_load(&v[i].m, v[i].path, err, sizeof err)) {
            fprintf(stderr, "lab08: %s\n(make lab08 makes the quantized files with build/quantize)\n", err);
            exit(1);
        }
        v[i].mb = file_mb(v[i].path);
        int64_t w = 0, bytes = 0; /* the layers' matrices: what the format stores per weight */
        for (int k = 2; k < llama_matrix_count(&v[i].m); k++) {
            const gl_qmatrix *q = llama_matrix(&v[i].m, k);
            w += (int64_t)q->rows * q->cols, bytes += (int64_t)gl_qmatrix_bytes(q->type, q->rows, q->cols);
        }
        v[i].bits_per_weight = 8.0 * (double)bytes / (double)w;
        llama_scorer_init(&v[i].sc, &v[i].m, 512);
    }
    int n;
    int32_t *ids = book_tokens(&v[0].m, book, n_tokens, &n);
    printf("2. SmolLM2-135M-Instruct: the reference is its shipped Q4_1 weights dequantized to fp32; GPTQ calibrated on\n"
           "   8,192 tokens of State of the Union addresses; perplexity on %d tokens of Moby-Dick from chapter 1\n"
           "   (windows of 512); decode tokens/s over 64 greedy tokens, %d rounds taking the models in turn\n", n, rounds);
    gl_lm_logits_fn fns[NV];
    void *models[NV];
    gl_ppl_stats st[NV];
    for (int i = 0; i < NV; i++) fns[i] = llama_scorer_logits, models[i] = &v[i].sc;
    double t0 = now();
    gl_perplexity(fns, models, NV, v[0].m.cfg.vocab_size, ids, n, 512, 512, true, st);
    printf("   (perplexity of %d models in %.0f s)\n", NV, now() - t0);
    int32_t prompt[16];
    memcpy(prompt, ids, sizeof prompt);
    double *rates = malloc((size_t)rounds * NV * sizeof *rates), ratios[64];
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < NV; i++) rates[r * NV + i] = decode_rate(&v[i].m, prompt, 16, 64);
    for (int i = 0; i < NV; i++) {
        double each[64];
        for (int r = 0; r < rounds; r++) each[r] = rates[r * NV + i], ratios[r] = rates[r * NV + i] / rates[r * NV];
        v[i].tok_s = median(each, rounds);
        v[i].ratio = median(ratios, rounds);
        v[i].st = st[i];
    }
    double gbs = read_bandwidth();
    printf("\n  %-16s %8s %8s %11s %9s %10s %9s %10s %10s\n", "model", "bits/w", "MB", "perplexity", "KL", "same top",
           "tok/s", "x fp32", "roofline");
    gl_jw_object(js, "smollm2");
    gl_jw_int(js, "eval_tokens", v[0].st.tokens);
    gl_jw_number(js, "read_bandwidth_gbs", gbs);
    gl_jw_array(js, "models");
    for (int i = 0; i < NV; i++) {
        double roof = gbs * 1e9 / (double)v[i].m.weight_bytes;
        printf("  %-16s %8.2f %8.1f %11.3f %9.4f %9.1f%% %9.1f %9.2fx %9.0f\n", v[i].label, v[i].bits_per_weight, v[i].mb,
               gl_ppl_value(&v[i].st), gl_ppl_kl(&v[i].st), 100 * gl_ppl_same_top(&v[i].st), v[i].tok_s, v[i].ratio, roof);
        gl_jw_object(js, NULL);
        gl_jw_string(js, "model", v[i].label);
        gl_jw_number(js, "bits_per_weight", v[i].bits_per_weight);
        gl_jw_number(js, "file_mb", v[i].mb);
        gl_jw_int(js, "bytes_per_token", v[i].m.weight_bytes);
        gl_jw_number(js, "perplexity", gl_ppl_value(&v[i].st));
        gl_jw_number(js, "kl", gl_ppl_kl(&v[i].st));
        gl_jw_number(js, "same_top", gl_ppl_same_top(&v[i].st));
        gl_jw_number(js, "decode_tokens_per_s", v[i].tok_s);
        gl_jw_number(js, "decode_ratio_to_fp32", v[i].ratio);
        gl_jw_number(js, "roofline_tokens_per_s", roof);
        gl_jw_end(js);
    }
    gl_jw_end(js);
    gl_jw_end(js);
    double ref = gl_ppl_value(&v[0].st);
    printf("\n  perplexity increase over the reference, RTN -> GPTQ:");
    for (int b = 2; b < NV; b += 2)
        printf("  %s %+.2f%% -> %+.2f%%", v[b].label, 100 * (gl_ppl_value(&v[b].st) / ref - 1),
               100 * (gl_ppl_value(&v[b + 1].st) / ref - 1));
    printf("\n  reading memory at %.1f GB/s: the roofline is that rate over the bytes a token reads (every weight once)\n\n", gbs);

    /* perplexity against bits: RTN and GPTQ lines, the reference as a flat line */
    float bx[3], rtn[3], gq[3], refx[2] = {3.5f, 8.5f}, refy[2] = {(float)ref, (float)ref};
    for (int k = 0; k < 3; k++) {
        bx[k] = (float)v[2 + 2 * k].bits_per_weight;
        rtn[k] = (float)gl_ppl_value(&v[2 + 2 * k].st), gq[k] = (float)gl_ppl_value(&v[3 + 2 * k].st);
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/perplexity_vs_bits.png", out);
    gl_series sp[3] = {{"round to nearest", bx, rtn, 3, false, NULL}, {"GPTQ", bx, gq, 3, false, NULL},
                       {"reference (fp32)", refx, refy, 2, false, NULL}};
    gl_chart cp = {"SmolLM2-135M: perplexity vs bits", "bits per weight", "perplexity",
                   false, true, false, 0, 0};
    plot_or_warn(gl_plot_lines(path, &cp, sp, 3, err, sizeof err), err);
    /* decode speed against bytes per token, with the bandwidth roofline */
    float mbt[NV], tps[NV], lx[2] = {50, 600}, ly[2];
    for (int i = 0; i < NV; i++) mbt[i] = (float)(v[i].m.weight_bytes / 1e6), tps[i] = (float)v[i].tok_s;
    for (int k = 0; k < 2; k++) ly[k] = (float)(gbs * 1e3 / lx[k]);
    const char *labels[NV];
    for (int i = 0; i < NV; i++) labels[i] = v[i].gptq ? "" : v[i].label; /* GPTQ sits on RTN's point: one label */
    gl_series sr[2] = {{"measured", mbt, tps, NV, true, labels}, {"roofline: bandwidth / bytes", lx, ly, 2, false, NULL}};
    gl_chart cr = {"SmolLM2-135M decode: tokens/s vs MB/token", "MB per token",
                   "tokens per second", true, true, false, 0, 0};
    snprintf(path, sizeof path, "%s/tokens_vs_bytes.png", out);
    plot_or_warn(gl_plot_lines(path, &cr, sr, 2, err, sizeof err), err);

    /* ---- 3. the KV cache, on the Q8_0 model ---- */
    llama *m = &v[2].m;
    enum { MAXPOS = 384 };
    static const int at[] = {16, 32, 64, 128, 192, 256, 384};
    enum { NAT = sizeof at / sizeof at[0] };
    float px[NAT], with[NAT], without[NAT];
    llama_cache c;
    llama_cache_init(&c, m, MAXPOS + 1, true);
    float *logits = malloc((size_t)m->cfg.vocab_size * sizeof *logits);
    for (int k = 0; k < NAT; k++) {
        int p = at[k];
        c.len = 0; /* with the cache: the prefix is there; one step feeds one token */
        llama_forward(m, &c, ids, p - 1, logits, false);
        double t1 = now();
        llama_forward(m, &c, ids + p - 1, 1, logits, false);
        with[k] = (float)(1e3 * (now() - t1));
        c.len = 0; /* without: the whole prefix again for the next token */
        t1 = now();
        llama_forward(m, &c, ids, p, logits, false);
        without[k] = (float)(1e3 * (now() - t1));
        px[k] = (float)p;
    }
    free(logits);
    llama_cache_free(&c);
    printf("3. The KV cache (Q8_0 model): milliseconds to produce the next token at a position\n  %-10s", "position");
    for (int k = 0; k < NAT; k++) printf(" %7d", at[k]);
    printf("\n  %-10s", "cache");
    for (int k = 0; k < NAT; k++) printf(" %7.1f", (double)with[k]);
    printf("\n  %-10s", "no cache");
    for (int k = 0; k < NAT; k++) printf(" %7.1f", (double)without[k]);
    printf("\n  (with the cache a step reads the weights once whatever the position; without it, the step reruns the\n"
           "   whole prefix: its time grows with the position, and generating n tokens costs O(n^2))\n\n");
    gl_series sk[2] = {{"KV cache", px, with, NAT, false, NULL}, {"no cache (recompute the prefix)", px, without, NAT, false, NULL}};
    gl_chart ck = {"SmolLM2 Q8_0: ms per token vs position", "position", "ms per token", false,
                   true, false, 0, 0};
    snprintf(path, sizeof path, "%s/kv_cache.png", out);
    plot_or_warn(gl_plot_lines(path, &ck, sk, 2, err, sizeof err), err);
    gl_jw_object(js, "kv_cache");
    gl_jw_array(js, "position");
    for (int k = 0; k < NAT; k++) gl_jw_int(js, NULL, at[k]);
    gl_jw_end(js);
    gl_jw_array(js, "ms_with_cache");
    for (int k = 0; k < NAT; k++) gl_jw_number(js, NULL, with[k]);
    gl_jw_end(js);
    gl_jw_array(js, "ms_without_cache");
    for (int k = 0; k < NAT; k++) gl_jw_number(js, NULL, without[k]);
    gl_jw_end(js);
    gl_jw_end(js);

    for (int i = 0; i < NV; i++) llama_scorer_free(&v[i].sc), llama_free(&v[i].m);
    free(ids), free(rates);
}

/* ---- 4 and 5: our GPT ---- */
typedef struct {
    int32_t *ids;
    size_t n, n_train; /* the last 10% is the validation split, as train makes it */
} corpus;

static bool load_gpt(const char *path, gpt *m, corpus *cp, const char *text_path) {
    char err[512];
    gpt_run_state rs;
    if (!gpt_load_checkpoint(path, m, &rs, NULL, NULL, NULL, err, sizeof err)) {
        printf("   (%s)\n", err);
        return false;
    }
    if (cp && !cp->ids) {
        gl_codec codec = {0};
        codec.chars.size = rs.n_symbols, codec.chars.codepoints = rs.symbols;
        unsigned char *text;
        size_t len;
        if (!gl_read_whole_file(text_path, &text, &len, err, sizeof err) ||
            !gl_codec_encode(&codec, text, len, &cp->ids, &cp->n, NULL, err, sizeof err))
            fprintf(stderr, "lab08: %s\n", err), exit(1);
        free(text);
        cp->n_train = cp->n - (size_t)(0.1 * (double)cp->n);
    }
    free(rs.symbols), free(rs.bpe);
    return true;
}

/* mean cross-entropy over the validation split's consecutive windows of the block size (at most max_windows) */
static double val_loss(gpt *m, const corpus *cp, int max_windows) {
    int T = m->cfg.block_size, B = 16;
    size_t start = cp->n_train, windows = (cp->n - start - 1) / (size_t)T;
    if (windows > (size_t)max_windows) windows = (size_t)max_windows;
    int32_t *x = malloc((size_t)B * T * sizeof *x), *y = malloc((size_t)B * T * sizeof *y);
    double sum = 0;
    int batches = 0;
    gl_no_grad_begin();
    for (size_t w = 0; w + B <= windows; w += B, batches++) {
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) {
                size_t at = start + (w + b) * T + t;
                x[b * T + t] = cp->ids[at], y[b * T + t] = cp->ids[at + 1];
            }
        gl_scope s = gl_scope_begin();
        sum += gl_item(gpt_loss(m, x, y, B, T, NULL, false));
        gl_scope_end(&s);
    }
    gl_no_grad_end();
    free(x), free(y);
    return batches ? sum / batches : NAN;
}

static void gpt_formats(const char *teacher, const char *text, corpus *cp, gl_json_writer *js) {
    gpt m;
    printf("4. Our shakespeare GPT (%s) at the same formats: validation loss (nats per character)\n", teacher);
    if (!load_gpt(teacher, &m, cp, text)) {
        printf("   (skipped: run `make run` first)\n\n");
        return;
    }
    double ref = val_loss(&m, cp, 800);
    int T = m.cfg.block_size, n_seq = 256; /* 16,384 calibration characters from the training split */
    int32_t *calib = malloc((size_t)n_seq * T * sizeof *calib);
    for (int s = 0; s < n_seq; s++) memcpy(calib + (size_t)s * T, cp->ids + (size_t)s * 97 * T % (cp->n_train - T), (size_t)T * sizeof *calib);
    gpt_free(&m);
    printf("  %-6s %10s %10s %10s\n", "type", "bits/w", "RTN", "GPTQ");
    printf("  %-6s %10.2f %10.4f %10s   (the reference)\n", "fp32", 32.0, ref, "");
    gl_jw_object(js, "gpt_char");
    gl_jw_number(js, "val_loss_fp32", ref);
    gl_jw_array(js, "formats");
    for (int f = 0; f < N_FORMATS; f++) {
        double loss[2], bits = 0, ratio = 0;
        for (int g = 0; g < 2; g++) {
            load_gpt(teacher, &m, NULL, NULL);
            gpt_quant_report rep;
            char err[256];
            if (!gpt_quantize(&m, FORMATS[f].type, GL_TYPE_Q8_0, g == 1, true, calib, n_seq, T, 0.01, &rep, err, sizeof err))
                fprintf(stderr, "lab08: %s\n", err), exit(1);
            loss[g] = val_loss(&m, cp, 800);
            bits = 8.0 * (double)rep.bytes / (double)rep.weights;
            if (g == 1) ratio = rep.error / rep.error_rtn;
            gpt_free(&m);
        }
        printf("  %-6s %10.2f %10.4f %10.4f   GPTQ's layer output error %.2fx RTN's\n", FORMATS[f].name, bits, loss[0],
               loss[1], ratio);
        gl_jw_object(js, NULL);
        gl_jw_string(js, "type", FORMATS[f].name);
        gl_jw_number(js, "bits_per_weight", bits);
        gl_jw_number(js, "val_loss_rtn", loss[0]);
        gl_jw_number(js, "val_loss_gptq", loss[1]);
        gl_jw_number(js, "output_error_ratio", ratio);
        gl_jw_end(js);
    }
    gl_jw_end(js);
    gl_jw_end(js);
    printf("  (the blocks' four linear weights quantized, the token embedding at Q8_0; stored back as the values\n"
           "   they decode to, so the loss is exactly the quantized model's)\n\n");
    free(calib);
}

static double gpt_decode_rate(gpt *m, int n) {
    gpt_kv_cache c;
    gpt_kv_cache_init(&c, m);
    float *logits = malloc((size_t)m->cfg.vocab_size * sizeof *logits);
    int32_t tok = 0;
    double t0 = now();
    for (int i = 0; i < n && i < m->cfg.block_size; i++) {
        gpt_forward_cached(m, &c, tok, logits);
        tok = 0;
        for (int v = 1; v < m->cfg.vocab_size; v++)
            if (logits[v] > logits[tok]) tok = v;
    }
    double rate = (n < m->cfg.block_size ? n : m->cfg.block_size) / (now() - t0);
    free(logits);
    gpt_kv_cache_free(&c);
    return rate;
}

static void distillation(const char *teacher, const char *out, const char *text, corpus *cp, gl_json_writer *js) {
    char labels[4096], distilled[4096];
    snprintf(labels, sizeof labels, "%s/student_labels.ckpt", out);
    snprintf(distilled, sizeof distilled, "%s/student_distilled.ckpt", out);
    const char *paths[3] = {teacher, labels, distilled}, *names[3] = {"teacher", "student (labels)", "student (distilled)"};
    printf("5. Distillation: a 2-layer student trained from the labels alone, and from the teacher's distributions\n"
           "   (temperature 2, alpha 0.5); both the same steps, seed and data\n");
    printf("  %-20s %7s %10s %9s %10s\n", "model", "layers", "weights", "val loss", "tokens/s");
    gl_jw_array(js, "distillation");
    for (int i = 0; i < 3; i++) {
        gpt m;
        if (!load_gpt(paths[i], &m, cp, text)) {
            printf("   (skipped: make lab08 trains the students)\n");
            break;
        }
        double loss = val_loss(&m, cp, 800), rates[3];
        for (int r = 0; r < 3; r++) rates[r] = gpt_decode_rate(&m, 256);
        double rate = median(rates, 3);
        printf("  %-20s %7d %9.2fM %9.4f %10.0f\n", names[i], m.cfg.n_layer, m.n_weights / 1e6, loss, rate);
        gl_jw_object(js, NULL);
        gl_jw_string(js, "model", names[i]);
        gl_jw_int(js, "layers", m.cfg.n_layer);
        gl_jw_int(js, "weights", m.n_weights);
        gl_jw_number(js, "val_loss", loss);
        gl_jw_number(js, "decode_tokens_per_s", rate);
        gl_jw_end(js);
        gpt_free(&m);
    }
    gl_jw_end(js);
    printf("\n");
}

/* ---- 6. serving: the figures bench/bench_serve.py wrote (make lab08 runs it before this) ---- */
static double member(const gl_json *o, const char *k) {
    const gl_json *v = o ? gl_json_get(o, k) : NULL;
    return v && v->type == GL_JSON_NUMBER ? v->number : NAN;
}

static void serving(const char *out, gl_json_writer *js) {
    char path[4200], err[512];
    snprintf(path, sizeof path, "%s/serving.json", out);
    unsigned char *text;
    size_t len;
    printf("6. Serving the Q4_0 GPTQ model with build/serve: clients at each concurrency send streamed chat requests\n"
           "   back to back (bench/bench_serve.py; 48 new tokens each)\n");
    if (!gl_read_whole_file(path, &text, &len, err, sizeof err)) {
        printf("   (skipped: %s; make lab08 runs the load first)\n\n", err);
        return;
    }
    gl_json *doc = gl_json_parse((const char *)text, len, err, sizeof err);
    free(text);
    const gl_json *levels = doc ? gl_json_get(doc, "levels") : NULL;
    if (!levels || levels->type != GL_JSON_ARRAY || levels->count < 1 || levels->count > 16) {
        printf("   (skipped: %s is not bench_serve.py's output%s%s)\n\n", path, doc ? "" : ": ", doc ? "" : err);
        gl_json_free(doc);
        return;
    }
    int n = (int)levels->count;
    float c[16], tps[16], p50[16], p99[16], ttft[16];
    printf("  %11s %10s %9s %13s %13s %14s\n", "concurrency", "tokens/s", "req/s", "latency p50 s", "latency p99 s",
           "first token p99");
    gl_jw_array(js, "serving");
    for (int i = 0; i < n; i++) {
        const gl_json *row = &levels->items[i], *g = gl_json_get(row, "gradlab");
        c[i] = (float)member(row, "concurrency"), tps[i] = (float)member(g, "tokens_per_s");
        p50[i] = (float)member(g, "e2e_p50"), p99[i] = (float)member(g, "e2e_p99"), ttft[i] = (float)member(g, "ttft_p99");
        printf("  %11.0f %10.1f %9.2f %13.2f %13.2f %14.2f\n", (double)c[i], (double)tps[i], member(g, "requests_per_s"),
               (double)p50[i], (double)p99[i], (double)ttft[i]);
        gl_jw_object(js, NULL);
        gl_jw_number(js, "concurrency", c[i]);
        gl_jw_number(js, "tokens_per_s", tps[i]);
        gl_jw_number(js, "latency_p50_s", p50[i]);
        gl_jw_number(js, "latency_p99_s", p99[i]);
        gl_jw_number(js, "first_token_p99_s", ttft[i]);
        gl_jw_end(js);
    }
    gl_jw_end(js);
    gl_json_free(doc);
    printf("  (a batch of sequences shares each pass over the weights: throughput grows with the clients until the\n"
           "   matrix products stop being bound by memory, while each request waits longer)\n\n");
    gl_series st[1] = {{"aggregate tokens/s", c, tps, n, false, NULL}};
    gl_chart ct = {"serve: throughput vs concurrency", "concurrent clients",
                   "generated tokens per second", true, false, false, 0, 0};
    snprintf(path, sizeof path, "%s/serving_throughput.png", out);
    plot_or_warn(gl_plot_lines(path, &ct, st, 1, err, sizeof err), err);
    gl_series sl[3] = {{"latency p50", c, p50, n, false, NULL}, {"latency p99", c, p99, n, false, NULL},
                       {"first token p99", c, ttft, n, false, NULL}};
    gl_chart cl = {"serve: latency vs concurrency", "concurrent clients",
                   "seconds", true, false, false, 0, 0};
    snprintf(path, sizeof path, "%s/serving_latency.png", out);
    plot_or_warn(gl_plot_lines(path, &cl, sl, 3, err, sizeof err), err);
}

int main(int argc, char **argv) {
    const char *out = "out/lab08", *teacher = "checkpoints/shakespeare_char.ckpt";
    int n_tokens = 2048, rounds = 3;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) fprintf(stderr, "lab08: %s needs a value\n", argv[i]), exit(2);
        if (!strcmp(argv[i], "--out")) out = argv[++i];
        else if (!strcmp(argv[i], "--teacher")) teacher = argv[++i];
        else if (!strcmp(argv[i], "--tokens")) n_tokens = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rounds")) rounds = atoi(argv[++i]);
        else fprintf(stderr, "lab08: unknown flag '%s' (--out DIR, --tokens N, --rounds N, --teacher CKPT)\n", argv[i]), exit(2);
    }
    if (n_tokens < 600 || rounds < 1 || rounds > 64) fprintf(stderr, "lab08: --tokens >= 600 and --rounds 1..64\n"), exit(2);
    char path[4200], text[4096];
    if (!gl_find_data("tinyshakespeare/input.txt", text, sizeof text)) fprintf(stderr, "lab08: no %s\n", text), exit(1);
    double t_start = now();
    gl_json_writer js;
    snprintf(path, sizeof path, "%s/results.json", out);
    if (!gl_jw_open(&js, path)) fprintf(stderr, "lab08: cannot write %s\n", path), exit(1);
    gl_jw_object(&js, NULL);
    printf("Lab 08: quantization, the KV cache and distillation (%d threads)\n\n", omp_get_max_threads());
    one_block(&js);
    smollm2(out, n_tokens, rounds, &js);
    corpus cp = {0};
    gpt_formats(teacher, text, &cp, &js);
    distillation(teacher, out, text, &cp, &js);
    serving(out, &js);
    free(cp.ids);
    gl_jw_end(&js);
    if (!gl_jw_close(&js)) fprintf(stderr, "lab08: could not write %s\n", path), status = 1;
    printf("wrote %s/results.json, perplexity_vs_bits.png, tokens_vs_bytes.png, kv_cache.png, serving_*.png (%.0f s)\n", out,
           now() - t_start);
    return status;
}
