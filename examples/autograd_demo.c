/* autograd_demo: train a character-level MLP language model (models/char_mlp) on any text file with the
 * gradlab core - embedding, matmul, layernorm, GELU, dropout, cross-entropy, AdamW, clipping and a warmup +
 * cosine schedule - then sample from it. The default job of `make run` until the GPT program exists.
 *
 *   ./build/autograd_demo --data data/tinyshakespeare/input.txt [--steps 2000] [--help for all flags]
 */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "char_mlp.h"
#include "cli.h"

typedef struct {
    const char *data;
    int steps, batch, context, embd, hidden, eval_interval, eval_batches, sample_len, threads;
    float dropout, lr, min_lr, wd, clip, temperature;
    int warmup;
    uint64_t seed;
} options;

static void usage(FILE *f) {
    fprintf(f,
            "usage: autograd_demo [flags]\n"
            "  --data PATH          text file to learn (default data/tinyshakespeare/input.txt)\n"
            "  --steps N            optimizer steps (2000)       --batch N        examples per step (128)\n"
            "  --context N          characters of context (8)    --embd N         embedding size (24)\n"
            "  --hidden N           hidden units (256)           --dropout P      dropout probability (0.1)\n"
            "  --lr F               peak learning rate (3e-3)    --min-lr F       final learning rate (3e-4)\n"
            "  --warmup N           warmup steps (100)           --wd F           AdamW weight decay (0.01)\n"
            "  --clip F             gradient-norm clip (1.0)     --seed N         random seed (1337)\n"
            "  --eval-interval N    steps between val losses (250)\n"
            "  --sample N           characters to sample at the end (400)  --temperature F (0.8)\n"
            "  --threads N          OpenMP threads (default: OMP_NUM_THREADS or all cores)\n"
            "Same seed and same thread count give bitwise identical runs.\n");
}

static options parse_args(int argc, char **argv) {
    options o = {.data = "data/tinyshakespeare/input.txt", .steps = 2000, .batch = 128, .context = 8, .embd = 24,
                 .hidden = 256, .eval_interval = 250, .eval_batches = 20, .sample_len = 400, .threads = 0,
                 .dropout = 0.1f, .lr = 3e-3f, .min_lr = 3e-4f, .wd = 0.01f, .clip = 1.0f, .temperature = 0.8f,
                 .warmup = 100, .seed = 1337};
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            usage(stdout);
            exit(0);
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "autograd_demo: unknown flag or missing value: '%s'\n", f);
            usage(stderr);
            exit(2);
        }
        const char *v = argv[++i];
        if (!strcmp(f, "--data")) o.data = v;
        else if (!strcmp(f, "--steps")) o.steps = gl_flag_int("autograd_demo", f, v, 1, 100000000);
        else if (!strcmp(f, "--batch")) o.batch = gl_flag_int("autograd_demo", f, v, 1, 1 << 20);
        else if (!strcmp(f, "--context")) o.context = gl_flag_int("autograd_demo", f, v, 1, 1024);
        else if (!strcmp(f, "--embd")) o.embd = gl_flag_int("autograd_demo", f, v, 1, 4096);
        else if (!strcmp(f, "--hidden")) o.hidden = gl_flag_int("autograd_demo", f, v, 1, 65536);
        else if (!strcmp(f, "--dropout")) o.dropout = (float)gl_flag_number("autograd_demo", f, v, 0.0f, 0.95f);
        else if (!strcmp(f, "--lr")) o.lr = (float)gl_flag_number("autograd_demo", f, v, 0.0f, 10.0f);
        else if (!strcmp(f, "--min-lr")) o.min_lr = (float)gl_flag_number("autograd_demo", f, v, 0.0f, 10.0f);
        else if (!strcmp(f, "--warmup")) o.warmup = gl_flag_int("autograd_demo", f, v, 1, 100000000);
        else if (!strcmp(f, "--wd")) o.wd = (float)gl_flag_number("autograd_demo", f, v, 0.0f, 10.0f);
        else if (!strcmp(f, "--clip")) o.clip = (float)gl_flag_number("autograd_demo", f, v, 0.0f, 1e9f);
        else if (!strcmp(f, "--seed")) o.seed = (uint64_t)gl_flag_int("autograd_demo", f, v, 0, 2147483647);
        else if (!strcmp(f, "--eval-interval")) o.eval_interval = gl_flag_int("autograd_demo", f, v, 1, 100000000);
        else if (!strcmp(f, "--sample")) o.sample_len = gl_flag_int("autograd_demo", f, v, 0, 1000000);
        else if (!strcmp(f, "--temperature")) o.temperature = (float)gl_flag_number("autograd_demo", f, v, 0.01f, 100.0f);
        else if (!strcmp(f, "--threads")) o.threads = gl_flag_int("autograd_demo", f, v, 1, 1024);
        else {
            fprintf(stderr, "autograd_demo: unknown flag '%s'\n", f);
            usage(stderr);
            exit(2);
        }
    }
    return o;
}

static unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "autograd_demo: cannot open '%s': %s\n", path, strerror(errno));
        exit(1);
    }
    size_t cap = 1 << 20, n = 0;
    unsigned char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) buf = realloc(buf, cap *= 2);
    }
    if (!buf || ferror(f)) {
        fprintf(stderr, "autograd_demo: error reading '%s'\n", path);
        exit(1);
    }
    fclose(f);
    *len = n;
    return buf;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* batch of (context ids, next id) pairs from tokens[lo, hi) */
static void sample_batch(const int32_t *tokens, size_t lo, size_t hi, int batch, int ctx, gl_rng *rng, int32_t *x,
                         int32_t *y) {
    for (int b = 0; b < batch; b++) {
        size_t start = lo + gl_rng_below(rng, hi - lo - (size_t)ctx);
        memcpy(x + (size_t)b * ctx, tokens + start, (size_t)ctx * sizeof(int32_t));
        y[b] = tokens[start + ctx];
    }
}

static float eval_loss(char_mlp *m, const int32_t *tokens, size_t lo, size_t hi, const options *o, int32_t *x,
                       int32_t *y) {
    gl_rng rng;
    gl_rng_seed(&rng, 4242); /* the same val batches at every evaluation */
    double sum = 0;
    gl_no_grad_begin();
    for (int i = 0; i < o->eval_batches; i++) {
        gl_step_reset();
        sample_batch(tokens, lo, hi, o->batch, o->context, &rng, x, y);
        sum += gl_cross_entropy(char_mlp_forward(m, x, o->batch, NULL, false), y, -1)->data[0];
    }
    gl_no_grad_end();
    return (float)(sum / o->eval_batches);
}

int main(int argc, char **argv) {
    options o = parse_args(argc, argv);
    if (o.threads) omp_set_num_threads(o.threads);
    size_t n;
    unsigned char *text = read_file(o.data, &n);
    if (n < (size_t)(o.context + 1) * 20) {
        fprintf(stderr, "autograd_demo: '%s' has %zu bytes; need at least %d for context %d and a train/val split\n",
                o.data, n, (o.context + 1) * 20, o.context);
        return 1;
    }
    /* vocabulary: the distinct bytes of the file, in byte order */
    int byte_to_id[256], vocab = 0;
    unsigned char id_to_byte[256];
    for (int b = 0; b < 256; b++) byte_to_id[b] = -1;
    for (size_t i = 0; i < n; i++) byte_to_id[text[i]] = 1;
    for (int b = 0; b < 256; b++)
        if (byte_to_id[b] == 1) {
            id_to_byte[vocab] = (unsigned char)b;
            byte_to_id[b] = vocab++;
        }
    int32_t *tokens = malloc(n * sizeof(int32_t));
    for (size_t i = 0; i < n; i++) tokens[i] = byte_to_id[text[i]];
    size_t split = n * 9 / 10;

    char_mlp m;
    char_mlp_init(&m, (char_mlp_config){vocab, o.context, o.embd, o.hidden, o.dropout}, o.seed);
    gl_optim *opt = gl_adamw(m.params, CHAR_MLP_N_PARAMS, o.lr, 0.9f, 0.95f, 1e-8f, o.wd);
    gl_rng rng;
    gl_rng_seed(&rng, o.seed + 1);
    int32_t *x = malloc((size_t)o.batch * o.context * sizeof(int32_t)), *y = malloc((size_t)o.batch * sizeof(int32_t));

    printf("gradlab autograd demo: char-level MLP on %s\n", o.data);
    printf("  %zu bytes, vocabulary %d, train %zu / val %zu characters\n", n, vocab, split, n - split);
    printf("  model: context %d x embd %d -> hidden %d (layernorm, GELU, dropout %.2f) -> %d logits; %lld parameters\n",
           o.context, o.embd, o.hidden, (double)o.dropout, vocab, (long long)char_mlp_n_params(&m));
    printf("  AdamW lr %.1e (warmup %d, cosine to %.1e), wd %.2f, clip %.1f, batch %d, %d steps, %d threads, "
           "kernels %s\n\n", (double)o.lr, o.warmup, (double)o.min_lr, (double)o.wd, (double)o.clip, o.batch, o.steps,
           omp_get_max_threads(), gl_kernels_in_use());
    printf("  step 0: val loss %.4f (uniform guess would be %.4f)\n", (double)eval_loss(&m, tokens, split, n, &o, x, y),
           log((double)vocab));

    double t0 = now(), last_print = t0;
    float loss_ema = 0.0f;
    for (int step = 0; step < o.steps; step++) {
        gl_step_reset();
        sample_batch(tokens, 0, split, o.batch, o.context, &rng, x, y);
        gl_tensor *loss = gl_cross_entropy(char_mlp_forward(&m, x, o.batch, &rng, true), y, -1);
        if (!isfinite(loss->data[0])) {
            fprintf(stderr, "autograd_demo: loss became %f at step %d; try a lower --lr\n", (double)loss->data[0], step);
            return 1;
        }
        gl_backward(loss);
        gl_clip_grad_norm(m.params, CHAR_MLP_N_PARAMS, o.clip);
        opt->lr = gl_lr_warmup_cosine(step, o.warmup, o.steps, o.lr, o.min_lr);
        gl_optim_step(opt);
        gl_optim_zero_grad(opt);
        loss_ema = step == 0 ? loss->data[0] : 0.95f * loss_ema + 0.05f * loss->data[0];
        double t = now();
        bool eval = (step + 1) % o.eval_interval == 0 || step + 1 == o.steps;
        if (eval || t - last_print > 0.5) {
            double rate = (step + 1) / (t - t0);
            int width = 30, filled = (int)((double)(step + 1) / o.steps * width);
            char bar[64];
            for (int i = 0; i < width; i++) bar[i] = i < filled ? '#' : '.';
            bar[width] = 0;
            printf("\r  [%s] step %5d/%d  loss %.4f  lr %.2e  %.0f chars/s  ETA %.0fs   ", bar, step + 1, o.steps,
                   (double)loss_ema, (double)opt->lr, rate * o.batch, (o.steps - step - 1) / rate);
            if (eval) printf("\n  step %d: val loss %.4f\n", step + 1, (double)eval_loss(&m, tokens, split, n, &o, x, y));
            fflush(stdout);
            last_print = t;
        }
    }
    gl_arena_stats as = gl_arena_stats_get();
    printf("\n  trained in %.1f s; activation arena high-water %.2f MiB, grown %zu time(s) in all (no allocation "
           "in later steps)\n", now() - t0, as.high_water / 1048576.0, as.chunk_mallocs);

    if (o.sample_len > 0) {
        printf("\n--- sample (temperature %.2f, seed %llu) ---\n", (double)o.temperature, (unsigned long long)o.seed);
        int32_t *window = malloc((size_t)o.context * sizeof(int32_t));
        memcpy(window, tokens + split, (size_t)o.context * sizeof(int32_t));
        for (int i = 0; i < o.context; i++) putchar(id_to_byte[window[i]]);
        gl_no_grad_begin();
        float *probs = malloc((size_t)vocab * sizeof(float));
        for (int i = 0; i < o.sample_len; i++) {
            gl_step_reset();
            gl_tensor *logits = gl_mul_scalar(char_mlp_forward(&m, window, 1, NULL, false), 1.0f / o.temperature);
            gl_tensor *p = gl_softmax(logits);
            memcpy(probs, p->data, (size_t)vocab * sizeof(float));
            float u = gl_rng_uniform(&rng), acc = 0.0f;
            int next = vocab - 1;
            for (int v = 0; v < vocab; v++)
                if ((acc += probs[v]) > u) {
                    next = v;
                    break;
                }
            putchar(id_to_byte[next]);
            memmove(window, window + 1, (size_t)(o.context - 1) * sizeof(int32_t));
            window[o.context - 1] = next;
        }
        gl_no_grad_end();
        printf("\n---\n");
        free(probs);
        free(window);
    }
    gl_optim_free(opt);
    char_mlp_free(&m);
    gl_arena_release();
    free(tokens);
    free(text);
    free(x);
    free(y);
    return 0;
}
