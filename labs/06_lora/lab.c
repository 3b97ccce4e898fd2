/* Lab 06 - fine-tuning the shakespeare GPT on a new domain: full fine-tuning, LoRA at several ranks, QLoRA.
 *   1. the base model and the new text (Moby-Dick), both val losses before any tuning
 *   2. each method for the same steps on the same batches: trainable weights, memory, step time, val loss on the
 *      new text and back on shakespeare (forgetting)
 *   3. samples before and after
 * Writes out/lab06/val_loss.png, forgetting.png, results.json. `make lab06`, or ./build/lab06 --help */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "codec.h"
#include "gpt.h"
#include "gpt_io.h"
#include "io.h"
#include "json.h"
#include "plot.h"
#include "sample.h"

/* 1 once an output (a plot, results.json) could not be written: reported at once, exit status 1 at the end */
static int status;

enum { B = 12, EVAL_BATCHES = 40, MAX_EVALS = 64 }; /* MAX_EVALS: one slot is kept for step 0 */

typedef struct {
    const char *name, *lora; /* lora: NULL for full fine-tuning */
    bool qlora;
    float lr;
} method;

typedef struct {
    int64_t trainable;
    double base_mb, train_state_mb, activations_mb, peak_mb, ms_per_step, domain_loss, shakespeare_loss;
    int n_evals;
    float eval_step[MAX_EVALS], eval_loss[MAX_EVALS];
} outcome;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* B windows of T+1 tokens from tokens[0 .. n) */
static void batch(const int32_t *tokens, size_t n, int T, gl_rng *rng, int32_t *x, int32_t *y) {
    for (int b = 0; b < B; b++) {
        size_t s = gl_rng_below(rng, n - (size_t)T - 1);
        memcpy(x + (size_t)b * T, tokens + s, (size_t)T * sizeof *x);
        memcpy(y + (size_t)b * T, tokens + s + 1, (size_t)T * sizeof *y);
    }
}

/* mean loss over EVAL_BATCHES fixed batches (the same ones for every method) */
static double eval_loss(gpt *m, const int32_t *tokens, size_t n, int T) {
    gl_rng r;
    gl_rng_seed(&r, 0xe7a1);
    int32_t *x = malloc((size_t)B * T * sizeof *x), *y = malloc((size_t)B * T * sizeof *y);
    double sum = 0;
    gl_no_grad_begin();
    for (int i = 0; i < EVAL_BATCHES; i++) {
        gl_step_reset();
        batch(tokens, n, T, &r, x, y);
        sum += gpt_loss(m, x, y, B, T, NULL, false)->data[0];
    }
    gl_no_grad_end();
    free(x);
    free(y);
    return sum / EVAL_BATCHES;
}

typedef struct {
    const gl_codec *codec;
    char *buf;
    size_t len, cap;
} text_sink;

static bool collect(int32_t tok, void *ctx) {
    text_sink *s = ctx;
    unsigned char tmp[4];
    size_t l;
    const unsigned char *b = gl_codec_token(s->codec, tok, tmp, &l);
    if (s->len + l + 1 < s->cap) memcpy(s->buf + s->len, b, l), s->len += l;
    s->buf[s->len] = 0;
    return true;
}

/* a 240-character sample after the prompt, at temperature 0.8 with a fixed seed; newlines shown as " / " */
static void print_sample(gpt *m, const gl_codec *codec, const char *label, const int32_t *prompt, int n_prompt) {
    char buf[1024];
    text_sink s = {codec, buf, 0, sizeof buf};
    for (int i = 0; i < n_prompt; i++) collect(prompt[i], &s);
    gl_sampling sp = {.temperature = 0.8f, .top_k = 0, .top_p = 1.0f};
    gl_rng r;
    gl_rng_seed(&r, 7);
    gl_generate(m, prompt, n_prompt, 240, &sp, &r, true, collect, &s);
    for (char *c = buf; *c; c++)
        if (*c == '\n') *c = '/';
    printf("  %-14s %s\n", label, buf);
}

int main(int argc, char **argv) {
    const char *base_path = "checkpoints/shakespeare_char.ckpt", *domain_path = NULL, *out = "out/lab06";
    const char *shakespeare_path = "data/tinyshakespeare/input.txt";
    int steps = 400;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h") || i + 1 >= argc) {
            fprintf(stderr, "usage: lab06 [--base CKPT] [--domain TEXT] [--steps 400] [--out out/lab06]\n"
                            "  the base is the shakespeare model of `make run`; the domain text defaults to Moby-Dick\n"
                            "  from $GRADLAB_DATA, ../shared/data or data/ (`make data`)\n");
            return strcmp(argv[i], "--help") && strcmp(argv[i], "-h") ? 2 : 0;
        }
        const char *f = argv[i], *v = argv[++i];
        if (!strcmp(f, "--base")) base_path = v;
        else if (!strcmp(f, "--domain")) domain_path = v;
        else if (!strcmp(f, "--out")) out = v;
        else if (!strcmp(f, "--steps")) steps = gl_flag_int("lab06", f, v, 10, 100000);
        else return fprintf(stderr, "lab06: unknown flag '%s' (--help)\n", f), 2;
    }
    char moby[4096], err[512], path[4096];
    if (!domain_path) {
        if (!gl_find_data("mobydick/mobydick.txt", moby, sizeof moby))
            return fprintf(stderr, "lab06: %s not found: `make data` fetches it (or pass --domain TEXT)\n", moby), 1;
        domain_path = moby;
    }

    /* the base model and both texts in its character vocabulary */
    gpt m;
    gpt_run_state rs;
    if (!gpt_load_checkpoint(base_path, &m, &rs, NULL, NULL, NULL, err, sizeof err))
        return fprintf(stderr, "lab06: %s\n  (`make run` trains the shakespeare model)\n", err), 1;
    if (rs.bpe_len) return fprintf(stderr, "lab06: '%s' is a BPE model; this lab adapts the character-level one\n", base_path), 1;
    gl_codec codec = {{rs.n_symbols, rs.symbols}, NULL};
    int T = m.cfg.block_size;
    int32_t *dom, *shk;
    size_t n_dom, n_shk, dropped = 0, dropped_shk = 0;
    unsigned char *text;
    size_t len;
    if (!gl_read_whole_file(domain_path, &text, &len, err, sizeof err) ||
        !gl_codec_encode(&codec, text, len, &dom, &n_dom, &dropped, err, sizeof err))
        return fprintf(stderr, "lab06: %s\n", err), 1;
    free(text);
    if (!gl_read_whole_file(shakespeare_path, &text, &len, err, sizeof err) ||
        !gl_codec_encode(&codec, text, len, &shk, &n_shk, &dropped_shk, err, sizeof err))
        return fprintf(stderr, "lab06: %s\n", err), 1;
    free(text);
    if (n_dom < 20 * (size_t)T) return fprintf(stderr, "lab06: '%s' is too short (%zu characters)\n", domain_path, n_dom), 1;
    size_t dom_train = n_dom * 9 / 10, shk_val_start = n_shk * 9 / 10; /* the base trained on shakespeare's first 90% */
    const int32_t *dom_val = dom + dom_train, *shk_val = shk + shk_val_start;
    size_t n_dom_val = n_dom - dom_train, n_shk_val = n_shk - shk_val_start;

    printf("Lab 06: fine-tuning %s (%d layers, %d dims, %.2fM weights) on %s\n", base_path, m.cfg.n_layer,
           m.cfg.n_embd, m.n_weights / 1e6, domain_path);
    printf("  %zu characters (%zu outside the model's %d-character vocabulary dropped); train %zu, val %zu\n", n_dom,
           dropped, m.cfg.vocab_size, dom_train, n_dom_val);
    double base_dom = eval_loss(&m, dom_val, n_dom_val, T), base_shk = eval_loss(&m, shk_val, n_shk_val, T);
    printf("  before tuning: val loss %.4f on the new text, %.4f on shakespeare's val split\n\n", base_dom, base_shk);
    int32_t prompt[32];
    const char *prompt_text = "The whale ";
    int n_prompt = 0;
    {
        int32_t *ids;
        size_t n;
        gl_codec_encode(&codec, (const unsigned char *)prompt_text, strlen(prompt_text), &ids, &n, NULL, err, sizeof err);
        memcpy(prompt, ids, n * sizeof *ids);
        n_prompt = (int)n;
        free(ids);
    }
    printf("Samples before tuning (temperature 0.8, prompt \"%s\"; '/' marks a newline):\n", prompt_text);
    print_sample(&m, &codec, "base", prompt, n_prompt);
    gpt_free(&m);

    const method methods[] = {
        {"full", NULL, false, 3e-4f},
        {"LoRA r=4", "r=4,alpha=8,targets=qv", false, 2e-3f},
        {"LoRA r=8", "r=8,alpha=16,targets=qv", false, 2e-3f},
        {"LoRA r=16", "r=16,alpha=32,targets=qv", false, 2e-3f},
        {"LoRA r=8 all", "r=8,alpha=16,targets=qkvofp", false, 2e-3f},
        {"QLoRA r=8", "r=8,alpha=16,targets=qv", true, 2e-3f},
    };
    enum { N_METHODS = sizeof methods / sizeof *methods };
    outcome res[N_METHODS];
    int eval_every = steps / 10 > 0 ? steps / 10 : 1;
    int32_t *x = malloc((size_t)B * T * sizeof *x), *y = malloc((size_t)B * T * sizeof *y);
    printf("\nTraining %d steps each (batch %d x %d characters, AdamW, 20 warmup steps then cosine to 10%%, clip 1;\n"
           "the same batches for every method; lr 3e-4 for full fine-tuning, 2e-3 for the adapters):\n", steps, B, T);
    for (int k = 0; k < N_METHODS; k++) {
        const method *me = &methods[k];
        outcome *o = &res[k];
        memset(o, 0, sizeof *o);
        gpt_run_state unused;
        if (!gpt_load_checkpoint(base_path, &m, &unused, NULL, NULL, NULL, err, sizeof err))
            return fprintf(stderr, "lab06: %s\n", err), 1;
        free(unused.symbols);
        free(unused.bpe);
        if (me->qlora) gpt_quantize_nf4(&m);
        if (me->lora) {
            gpt_lora_config lc;
            if (!gpt_lora_parse(me->lora, &lc, err, sizeof err)) return fprintf(stderr, "lab06: %s\n", err), 1;
            gpt_lora_attach(&m, lc, 1);
        }
        o->trainable = gpt_trainable_weights(&m);
        o->base_mb = gpt_base_weight_bytes(&m) / 1e6;
        if (!me->lora) o->base_mb = 0; /* full fine-tuning: every weight is trained, counted below */
        o->train_state_mb = o->trainable * 4.0 * 4 / 1e6; /* weights, gradients, Adam's two moments */
        gl_optim *opt = gl_adamw(m.trainable, m.n_trainable, me->lr, 0.9f, 0.99f, 1e-8f, 0.1f);
        gl_rng r;
        gl_rng_seed(&r, 2024);
        gl_step_reset();
        gl_arena_reset_high_water();
        double t0 = now(), train_time = 0;
        for (int step = 0; step < steps; step++) {
            double ts = now();
            opt->lr = gl_lr_warmup_cosine(step, 20, steps, me->lr, me->lr / 10);
            batch(dom, dom_train, T, &r, x, y);
            gl_step_reset();
            gl_tensor *loss = gpt_loss(&m, x, y, B, T, NULL, false);
            gl_backward(loss);
            gl_clip_grad_norm(m.trainable, m.n_trainable, 1.0f);
            gl_optim_step(opt);
            gl_optim_zero_grad(opt);
            train_time += now() - ts;
            if ((step + 1) % eval_every == 0 && o->n_evals < MAX_EVALS - 1) {
                o->eval_step[o->n_evals] = (float)(step + 1);
                o->eval_loss[o->n_evals++] = (float)eval_loss(&m, dom_val, n_dom_val, T);
                fprintf(stderr, "\r  %-13s step %d/%d  val loss %.4f   ", me->name, step + 1, steps,
                        (double)o->eval_loss[o->n_evals - 1]);
            }
        }
        fprintf(stderr, "\r%70s\r", "");
        o->activations_mb = gl_arena_stats_get().high_water / 1e6;
        o->peak_mb = o->base_mb + o->train_state_mb + o->activations_mb;
        o->ms_per_step = 1e3 * train_time / steps;
        o->domain_loss = o->eval_loss[o->n_evals - 1];
        o->shakespeare_loss = eval_loss(&m, shk_val, n_shk_val, T);
        printf("  %-13s %5.1f s  new text %.4f  shakespeare %.4f\n", me->name, now() - t0, o->domain_loss,
               o->shakespeare_loss);
        if (k == 0 || k == 2 || k == 5) print_sample(&m, &codec, me->name, prompt, n_prompt);
        gl_optim_free(opt);
        gpt_free(&m);
    }

    printf("\n%-13s %10s %9s %12s %11s %9s %8s %10s %11s\n", "method", "trainable", "base MB", "train-state",
           "activations", "peak MB", "ms/step", "val (new)", "val (shak.)");
    printf("%-13s %10s %9s %12s %11s %9s %8s %10.4f %11.4f\n", "(base)", "-", "-", "-", "-", "-", "-", base_dom, base_shk);
    for (int k = 0; k < N_METHODS; k++)
        printf("%-13s %10lld %9.2f %12.2f %11.2f %9.2f %8.1f %10.4f %11.4f\n", methods[k].name,
               (long long)res[k].trainable, res[k].base_mb, res[k].train_state_mb, res[k].activations_mb,
               res[k].peak_mb, res[k].ms_per_step, res[k].domain_loss, res[k].shakespeare_loss);
    printf("(train-state: trained weights + their gradients + AdamW's two moments, 16 bytes per trained weight;\n"
           " base: the frozen weights as stored, fp32 or NF4; activations: the arena's peak during training)\n");

    mkdir("out", 0755);
    mkdir(out, 0755);
    /* every curve starts at step 0 from the base model's loss */
    gl_series curves[N_METHODS];
    for (int k = 0; k < N_METHODS; k++) {
        memmove(res[k].eval_step + 1, res[k].eval_step, (size_t)res[k].n_evals * sizeof(float));
        memmove(res[k].eval_loss + 1, res[k].eval_loss, (size_t)res[k].n_evals * sizeof(float));
        res[k].eval_step[0] = 0;
        res[k].eval_loss[0] = (float)base_dom;
        curves[k] = (gl_series){methods[k].name, res[k].eval_step, res[k].eval_loss, res[k].n_evals + 1, false, NULL};
    }
    gl_chart c1 = {.title = "Fine-tuning on Moby-Dick: val loss", .xlabel = "step",
                   .ylabel = "val loss on Moby-Dick (nats per character)"};
    snprintf(path, sizeof path, "%s/val_loss.png", out);
    if (!gl_plot_lines(path, &c1, curves, N_METHODS, err, sizeof err)) fprintf(stderr, "lab06: %s\n", err), status = 1;

    /* one point per method (and the base): how much of the new text it learned against how much it forgot */
    float fx[N_METHODS + 1], fy[N_METHODS + 1];
    gl_series pts[N_METHODS + 1];
    for (int k = 0; k <= N_METHODS; k++) {
        fx[k] = (float)(k < N_METHODS ? res[k].domain_loss : base_dom);
        fy[k] = (float)(k < N_METHODS ? res[k].shakespeare_loss : base_shk);
        pts[k] = (gl_series){k < N_METHODS ? methods[k].name : "base model", fx + k, fy + k, 1, true, NULL};
    }
    gl_chart c2 = {.title = "Learning Moby-Dick vs forgetting shakespeare", .xlabel = "val loss on Moby-Dick",
                   .ylabel = "val loss on shakespeare"};
    snprintf(path, sizeof path, "%s/forgetting.png", out);
    if (!gl_plot_lines(path, &c2, pts, N_METHODS + 1, err, sizeof err)) fprintf(stderr, "lab06: %s\n", err), status = 1;

    snprintf(path, sizeof path, "%s/results.json", out);
    gl_json_writer js;
    if (gl_jw_open(&js, path)) {
        gl_jw_object(&js, NULL);
        gl_jw_int(&js, "steps", steps);
        gl_jw_number(&js, "base_val_loss_new_text", base_dom);
        gl_jw_number(&js, "base_val_loss_shakespeare", base_shk);
        gl_jw_array(&js, "methods");
        for (int k = 0; k < N_METHODS; k++) {
            gl_jw_object(&js, NULL);
            gl_jw_string(&js, "method", methods[k].name);
            gl_jw_int(&js, "trainable", (long long)res[k].trainable);
            gl_jw_number(&js, "base_mb", res[k].base_mb);
            gl_jw_number(&js, "train_state_mb", res[k].train_state_mb);
            gl_jw_number(&js, "activations_mb", res[k].activations_mb);
            gl_jw_number(&js, "peak_mb", res[k].peak_mb);
            gl_jw_number(&js, "ms_per_step", res[k].ms_per_step);
            gl_jw_number(&js, "val_loss_new_text", res[k].domain_loss);
            gl_jw_number(&js, "val_loss_shakespeare", res[k].shakespeare_loss);
            gl_jw_end(&js);
        }
        gl_jw_end(&js);
        gl_jw_end(&js);
    }
    if (!gl_jw_close(&js)) fprintf(stderr, "lab06: cannot write %s\n", path), status = 1;
    printf("wrote %s/val_loss.png, forgetting.png, results.json\n", out);
    free(x);
    free(y);
    free(dom);
    free(shk);
    gl_codec_free(&codec);
    gl_arena_release();
    gl_stdout_check("lab06");
    return status;
}
