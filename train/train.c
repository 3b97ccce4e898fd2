/* train: a GPT on any UTF-8 text file, character-level, with AdamW, warmup + cosine, clipping, periodic val
 * loss, a loss-curve PNG, atomic checkpoints and bit-exact resume. `train --help` lists every flag.
 * Defaults are nanoGPT's CPU recipe for tiny shakespeare (4 layers, 4 heads, 128 dims, block 64, batch 12,
 * 2000 steps, lr 1e-3 with 100 warmup steps and cosine to 1e-4, betas 0.9/0.99, weight decay 0.1, clip 1). */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "codec.h"
#include "dist.h"
#include "gpt.h"
#include "gpt_io.h"
#include "io.h"
#include "plot.h"
#include "sample.h"
#include "tokfile.h"
#include "utf8.h"

typedef struct {
    const char *data, *out, *resume, *plot, *loss_log, *tokenizer, *attention, *finetune, *lora, *device, *distill;
    float distill_temp, distill_alpha;
    bool qlora, dropout_given;
    gpt_config cfg;
    int batch, grad_accum, zero, threads, eval_interval, eval_batches, final_eval_batches, ckpt_interval, sample_len;
    int64_t steps, warmup, decay_steps, stop_after;
    bool steps_given, out_given;
    const char *fixed_given[24]; /* flags whose values a checkpoint fixes: ignored (with a note) on --resume */
    int n_fixed_given;
    float lr, min_lr, beta1, beta2, eps, wd, clip, val_fraction, temperature;
    uint64_t seed;
    bool quiet;
} options;

static void usage(FILE *f) {
    fprintf(f,
            "usage: train --data FILE [flags]          (or --resume CKPT to continue a run)\n"
            "model:    --n-layer 4  --n-head 4  --n-embd 128  --block-size 64  --dropout 0  --bias 0|1 (0)\n"
            "          --attention auto|naive|flash (auto: flash from block size 4096, where its memory matters)\n"
            "data:     --data FILE (UTF-8 text, or a token file from `tokenize train --tokens`)  --val-fraction 0.1\n"
            "          --tokenizer char (default: one token per character) | gpt2 | FILE.bpe (from `tokenize train`)\n"
            "training: --batch 12  --steps 2000  --lr 1e-3  --min-lr 1e-4  --warmup 100  --decay-steps STEPS\n"
            "          --beta1 0.9  --beta2 0.99  --eps 1e-8  --weight-decay 0.1 (matrices only)  --clip 1.0\n"
            "          --seed 1337  --threads N (default: OMP_NUM_THREADS or all cores)\n"
            "          --grad-accum K: each step adds the gradients of K micro-batches of batch/K rows, in order\n"
            "          --device cpu|cuda: cuda (a `make CUDA=1` build) keeps weights and activations on the GPU\n"
            "          --stop-after N: stop (with a checkpoint) after N steps of a --steps-long run\n"
            "parallel: mpirun -np N build/mpi/train ... (make MPI=1): N ranks each take batch/N rows of every batch;\n"
            "          the result equals --grad-accum N on one process bit for bit (docs/distributed.md)\n"
            "          --zero 1: ZeRO-1, each rank keeps and updates 1/N of the AdamW state (CPU; same results)\n"
            "eval:     --eval-interval 250  --eval-batches 50  --final-eval-batches 200\n"
            "output:   --out checkpoints/gpt.ckpt  --ckpt-interval 500  --plot PNG (default: OUT.loss.png)\n"
            "          --loss-log FILE (step and exact loss per line)  --sample 300  --temperature 0.8  --quiet\n"
            "resume:   --resume CKPT continues that run to its planned --steps (or a new --steps), bit for bit as if\n"
            "          it had not stopped\n"
            "finetune: --finetune BASE_CKPT: start from that model (its architecture and vocabulary; characters of --data\n"
            "          outside its vocabulary are dropped and counted) and train all its weights, or with\n"
            "          --lora r=8,alpha=16,targets=qv  only low-rank adapters (targets: q k v o f p = attention q/k/v,\n"
            "          attention output, MLP in, MLP out); the base is frozen and --out gets the adapters alone\n"
            "          --qlora: the same with the base's linear weights in 4-bit NF4 (implies --lora's defaults)\n"
            "distill:  --distill TEACHER_CKPT: a new model (the model flags) learns from the teacher's next-token\n"
            "          distributions as well as the text: alpha T^2 KL(teacher/T || student/T) + (1 - alpha) cross-entropy\n"
            "          --distill-temp T (2)  --distill-alpha A (0.5); the teacher's vocabulary is used\n"
            "Same seed and same thread count give bitwise identical runs.\n");
}

static void die(const char *fmt, const char *a, const char *b) {
    fprintf(stderr, "train: ");
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    exit(2);
}

static options parse(int argc, char **argv) {
    options o = {.out = "checkpoints/gpt.ckpt", .tokenizer = "char", .attention = "auto", .device = "cpu",
                 .distill_temp = 2.0f, .distill_alpha = 0.5f,
                 .cfg = {.n_layer = 4, .n_head = 4, .n_embd = 128, .block_size = 64, .dropout = 0.0f, .bias = false,
                         .ln_eps = 1e-5f},
                 .batch = 12, .grad_accum = 1, .eval_interval = 250, .eval_batches = 50, .final_eval_batches = 200,
                 .ckpt_interval = 500, .sample_len = 300, .steps = 2000, .warmup = 100, .decay_steps = -1,
                 .lr = 1e-3f, .min_lr = 1e-4f, .beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-8f, .wd = 0.1f, .clip = 1.0f,
                 .val_fraction = 0.1f, .temperature = 0.8f, .seed = 1337};
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) usage(stdout), exit(0);
        if (!strcmp(f, "--quiet")) {
            o.quiet = true;
            continue;
        }
        if (!strcmp(f, "--qlora")) {
            o.qlora = true;
            continue;
        }
        if (strncmp(f, "--", 2) != 0) die("unexpected argument '%s'%s (flags start with --)", f, "");
        if (i + 1 >= argc) die("flag %s needs a value%s", f, "");
        const char *v = argv[++i];
        static const char *const fixed[] = {"--n-layer", "--n-head", "--n-embd", "--block-size", "--dropout", "--bias",
                                            "--batch", "--lr", "--min-lr", "--warmup", "--decay-steps", "--beta1",
                                            "--beta2", "--eps", "--weight-decay", "--clip", "--val-fraction", "--seed",
                                            "--tokenizer"};
        for (size_t k = 0; k < sizeof fixed / sizeof fixed[0]; k++)
            if (!strcmp(f, fixed[k]) && o.n_fixed_given < 24) o.fixed_given[o.n_fixed_given++] = fixed[k];
        if (!strcmp(f, "--data")) o.data = v;
        else if (!strcmp(f, "--out")) o.out = v, o.out_given = true;
        else if (!strcmp(f, "--resume")) o.resume = v;
        else if (!strcmp(f, "--finetune")) o.finetune = v;
        else if (!strcmp(f, "--distill")) o.distill = v;
        else if (!strcmp(f, "--distill-temp")) o.distill_temp = (float)gl_flag_number("train", f, v, 0.05, 100);
        else if (!strcmp(f, "--distill-alpha")) o.distill_alpha = (float)gl_flag_number("train", f, v, 0, 1);
        else if (!strcmp(f, "--lora")) o.lora = v;
        else if (!strcmp(f, "--plot")) o.plot = v;
        else if (!strcmp(f, "--loss-log")) o.loss_log = v;
        else if (!strcmp(f, "--tokenizer")) o.tokenizer = v;
        else if (!strcmp(f, "--attention")) o.attention = v;
        else if (!strcmp(f, "--device")) o.device = v;
        else if (!strcmp(f, "--n-layer")) o.cfg.n_layer = gl_flag_int("train", f, v, 1, 256);
        else if (!strcmp(f, "--n-head")) o.cfg.n_head = gl_flag_int("train", f, v, 1, 1024);
        else if (!strcmp(f, "--n-embd")) o.cfg.n_embd = gl_flag_int("train", f, v, 1, 65536);
        else if (!strcmp(f, "--block-size")) o.cfg.block_size = gl_flag_int("train", f, v, 1, 1 << 20);
        else if (!strcmp(f, "--dropout")) o.cfg.dropout = (float)gl_flag_number("train", f, v, 0, 0.95), o.dropout_given = true;
        else if (!strcmp(f, "--bias")) o.cfg.bias = gl_flag_int("train", f, v, 0, 1);
        else if (!strcmp(f, "--batch")) o.batch = gl_flag_int("train", f, v, 1, 1 << 20);
        else if (!strcmp(f, "--grad-accum")) o.grad_accum = gl_flag_int("train", f, v, 1, 4096);
        else if (!strcmp(f, "--zero")) o.zero = gl_flag_int("train", f, v, 0, 1);
        else if (!strcmp(f, "--steps")) o.steps = gl_flag_int("train", f, v, 0, 2e9), o.steps_given = true;
        else if (!strcmp(f, "--stop-after")) o.stop_after = gl_flag_int("train", f, v, 1, 2e9);
        else if (!strcmp(f, "--lr")) o.lr = (float)gl_flag_number("train", f, v, 0, 10);
        else if (!strcmp(f, "--min-lr")) o.min_lr = (float)gl_flag_number("train", f, v, 0, 10);
        else if (!strcmp(f, "--warmup")) o.warmup = gl_flag_int("train", f, v, 1, 2e9);
        else if (!strcmp(f, "--decay-steps")) o.decay_steps = gl_flag_int("train", f, v, 1, 2e9);
        else if (!strcmp(f, "--beta1")) o.beta1 = (float)gl_flag_number("train", f, v, 0, 0.999999);
        else if (!strcmp(f, "--beta2")) o.beta2 = (float)gl_flag_number("train", f, v, 0, 0.999999);
        else if (!strcmp(f, "--eps")) o.eps = (float)gl_flag_number("train", f, v, 0, 1);
        else if (!strcmp(f, "--weight-decay")) o.wd = (float)gl_flag_number("train", f, v, 0, 10);
        else if (!strcmp(f, "--clip")) o.clip = (float)gl_flag_number("train", f, v, 0, 1e9);
        else if (!strcmp(f, "--val-fraction")) o.val_fraction = (float)gl_flag_number("train", f, v, 0.001, 0.5);
        else if (!strcmp(f, "--seed")) o.seed = gl_flag_u64("train", f, v, 0, 9007199254740992.0);
        else if (!strcmp(f, "--threads")) o.threads = gl_flag_int("train", f, v, 1, 1024);
        else if (!strcmp(f, "--eval-interval")) o.eval_interval = gl_flag_int("train", f, v, 1, 2e9);
        else if (!strcmp(f, "--eval-batches")) o.eval_batches = gl_flag_int("train", f, v, 1, 1e6);
        else if (!strcmp(f, "--final-eval-batches")) o.final_eval_batches = gl_flag_int("train", f, v, 0, 1e6);
        else if (!strcmp(f, "--ckpt-interval")) o.ckpt_interval = gl_flag_int("train", f, v, 1, 2e9);
        else if (!strcmp(f, "--sample")) o.sample_len = gl_flag_int("train", f, v, 0, 1e6);
        else if (!strcmp(f, "--temperature")) o.temperature = (float)gl_flag_number("train", f, v, 0, 100);
        else {
            fprintf(stderr, "train: unknown flag '%s'\n", f);
            usage(stderr);
            exit(2);
        }
    }
    if (!o.data) die("--data FILE is required%s%s (the text to train on; --help lists all flags)", "", "");
    if (o.decay_steps < 0) o.decay_steps = o.steps;
    if ((o.lora || o.qlora) && !o.finetune) die("--lora and --qlora adapt a trained model: give --finetune BASE_CKPT%s%s", "", "");
    if (o.distill && (o.finetune || o.lora || o.qlora))
        die("--distill trains a new model from the teacher: not with --finetune, --lora or --qlora%s%s", "", "");
    if (o.distill && strcmp(o.device, "cpu")) die("--distill runs on the CPU%s%s", "", "");
    if (o.finetune && o.resume) die("--finetune starts a new run; --resume continues one: give one of them%s%s", "", "");
    if (o.qlora && !o.lora) o.lora = "";
    if (o.resume && !o.out_given) o.out = o.resume; /* a resumed run continues the file it resumed */
    if (o.zero && !strcmp(o.device, "cuda")) die("--zero 1 shards the optimizer on the CPU only (not with --device cuda)%s%s", "", "");
    if (strcmp(o.device, "cpu") && strcmp(o.device, "cuda")) die("--device must be cpu or cuda, got '%s'%s", o.device, "");
    if (!strcmp(o.device, "cuda") && !gl_cuda_linked()) die("--device cuda needs a CUDA build of train (make CUDA=1)%s%s", "", "");
    if (!strcmp(o.device, "cuda") && o.qlora) die("--qlora runs on the CPU for now (no 4-bit GEMM on the GPU; --lora works with --device cuda)%s%s", "", "");
    if (strcmp(o.attention, "auto") && strcmp(o.attention, "naive") && strcmp(o.attention, "flash"))
        die("--attention must be auto, naive or flash, got '%s'%s", o.attention, "");
    return o;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct {
    const int32_t *tokens;
    size_t n_train, n_val;
} dataset;

/* B windows of T+1 tokens from [lo, lo+n): inputs x, next-token targets y */
static void get_batch(const int32_t *tokens, size_t lo, size_t n, int B, int T, gl_rng *rng, int32_t *x, int32_t *y) {
    for (int b = 0; b < B; b++) {
        size_t start = lo + gl_rng_below(rng, n - (size_t)T);
        memcpy(x + (size_t)b * T, tokens + start, (size_t)T * sizeof(int32_t));
        memcpy(y + (size_t)b * T, tokens + start + 1, (size_t)T * sizeof(int32_t));
    }
}

/* mean val loss over n_batches batches drawn with a fixed seed: the same batches at every evaluation, and the
 * training RNG is left untouched (so evaluating does not change the run) */
static float val_loss(gpt *m, const dataset *d, int B, int T, int n_batches, int32_t *x, int32_t *y) {
    gl_rng rng;
    gl_rng_seed(&rng, 0x5eed);
    /* with several ranks, rank r evaluates batches r, r + N, ...; every rank draws every batch (the stream stays
     * the same) and the losses are summed in batch order, as one process does */
    float *losses = calloc((size_t)n_batches, sizeof(float));
    gl_no_grad_begin();
    for (int i = 0; i < n_batches; i++) {
        get_batch(d->tokens, d->n_train, d->n_val, B, T, &rng, x, y);
        if (i % gl_dist_world() != gl_dist_rank()) continue;
        gl_step_reset();
        losses[i] = gl_item(gpt_loss(m, x, y, B, T, NULL, false));
    }
    gl_no_grad_end();
    gl_dist_share_slots(losses, n_batches);
    double sum = 0;
    for (int i = 0; i < n_batches; i++) sum += losses[i];
    free(losses);
    return (float)(sum / n_batches);
}

/* a full checkpoint, or the adapters alone when the run trains adapters; a CUDA run's weights and AdamW state
 * visit the CPU for it */
static bool save_run(const char *path, gpt *m, gl_optim *opt, const gpt_run_state *rs, char *err, size_t n) {
    gl_device d = m->device;
    if (d != GL_CPU) gpt_to(m, GL_CPU, err, n), gl_optim_to(opt, GL_CPU);
    bool ok = m->n_adapters ? gpt_lora_save(m, path, err, n) : gpt_save_checkpoint(path, m, opt, rs, err, n);
    if (d != GL_CPU) gpt_to(m, d, err, n), gl_optim_to(opt, d);
    return ok;
}

/* Every rank calls it: a ZeRO-1 optimizer's state is gathered into the full layout first (collectives), then rank 0
 * writes the checkpoint, and every rank learns whether that worked. */
static bool checkpoint(const char *path, gpt *m, gl_optim *opt, const gpt_run_state *rs, char *err, size_t n) {
    gl_optim full_view = *opt;
    float *flat = NULL, *full = NULL;
    if (opt->shard_hi > opt->shard_lo) {
        size_t total = gl_grads_count(opt->params, opt->n_params), len = (size_t)(opt->shard_hi - opt->shard_lo);
        flat = calloc(2 * total, sizeof(float)), full = malloc(2 * total * sizeof(float));
        if (!flat || !full) gl_dist_fail("train", 1, "out of memory gathering the optimizer state for a checkpoint");
        memcpy(flat + opt->shard_lo, opt->state, len * sizeof(float));                 /* m */
        memcpy(flat + total + opt->shard_lo, opt->state + len, len * sizeof(float));   /* v */
        gl_dist_gather_slices(flat, total);
        gl_dist_gather_slices(flat + total, total);
        full_view.shard_lo = 0, full_view.shard_hi = (int64_t)total, full_view.state = flat;
        gl_optim_state_to_full(&full_view, full); /* flat m, v -> per parameter m, v */
        full_view.shard_lo = full_view.shard_hi = 0, full_view.state = full, full_view.state_floats = (int64_t)(2 * total);
    }
    /* the optimizer itself when it is whole: save_run may move its state between devices */
    bool ok = gl_dist_rank() != 0 || save_run(path, m, full ? &full_view : opt, rs, err, n);
    if (!ok) fprintf(stderr, "\ntrain: %s\n", err);
    free(flat), free(full);
    return gl_dist_all(ok);
}

/* One step's gradients over a batch split into ranks x micro-batches: this rank's micro-batches (rows
 * [(rank * accum + k) * micro, ...)) one after the other, their gradients summed in order into a flat buffer
 * (0 + g0 + g1 + ...), then divided by accum and averaged over the ranks in rank order (gl_dist_mean_grads). Dropout
 * masks come from one stream per micro-batch, keyed by a draw from the run's generator and the micro-batch's
 * global index, so a micro-batch drops the same units whichever rank runs it. Returns the batch's mean loss. */
static float split_step(gpt *m, gl_optim *opt, gl_rng *run_rng, const int32_t *x, const int32_t *y, int micro, int T,
                        int accum, bool dropout, float *sum) {
    int rank = gl_dist_rank();
    uint64_t key = dropout ? gl_rng_u64(run_rng) : 0;
    size_t n_grads = gl_grads_count(m->trainable, m->n_trainable);
    if (accum > 1) memset(sum, 0, n_grads * sizeof(float));
    double loss_sum = 0;
    for (int k = 0; k < accum; k++) {
        size_t at = (size_t)(rank * accum + k) * (size_t)micro * (size_t)T;
        gl_rng drop;
        gl_rng_seed(&drop, key + (uint64_t)(rank * accum + k) * 0x9E3779B97F4A7C15ull);
        gl_step_reset();
        gl_tensor *loss = gpt_loss(m, x + at, y + at, micro, T, &drop, dropout);
        float lv = gl_item(loss);
        loss_sum += lv;
        if (!isfinite(lv)) continue;
        gl_backward(loss);
        if (accum > 1) {
            gl_grads_accumulate(m->trainable, m->n_trainable, sum);
            gl_optim_zero_grad(opt);
        }
    }
    if (accum > 1) gl_grads_assign(m->trainable, m->n_trainable, sum, (float)(1.0 / accum));
    gl_dist_mean_grads(m->trainable, m->n_trainable);
    return gl_dist_mean((float)(loss_sum / accum));
}

/* The loss log of a resumed run: the lines of the steps before the checkpoint's, and nothing after (a run killed
 * after its last checkpoint logged steps that the resumed run repeats, and perhaps half a line). Returns the log
 * open for appending. */
static FILE *open_loss_log(const char *path, bool resume, int64_t step, char *err, size_t n) {
    if (resume) {
        unsigned char *old;
        size_t len, keep = 0;
        if (gl_read_whole_file(path, &old, &len, err, n)) {
            while (keep < len) {
                const unsigned char *nl = memchr(old + keep, '\n', len - keep);
                char *end;
                long long line_step = strtoll((const char *)old + keep, &end, 10);
                if (!nl || end == (const char *)old + keep || line_step >= step) break;
                keep = (size_t)(nl - old) + 1;
            }
            bool ok = gl_write_file_atomic(path, old, keep, err, n);
            free(old);
            if (!ok) return NULL;
        } else if (access(path, F_OK) == 0) {
            return NULL; /* there but unreadable: the message says why */
        }
    }
    FILE *f = fopen(path, resume ? "a" : "w");
    if (!f) snprintf(err, n, "cannot write the loss log '%s': %s", path, strerror(errno));
    return f;
}

/* the log's lines so far on disk: called before each checkpoint, so a checkpoint never runs ahead of its log */
static bool sync_loss_log(FILE *f) { return !f || (!ferror(f) && fflush(f) == 0 && fsync(fileno(f)) == 0); }

/* the folder a file will be written into exists and is writable: found at the start, not after hours of training */
static void check_writable(const char *what, const char *path) {
    char dir[4096];
    gl_parent_dir(path, dir, sizeof dir);
    if (access(dir, W_OK | X_OK) != 0) {
        fprintf(stderr, "train: %s '%s' cannot be written: folder '%s': %s\n", what, path, dir, strerror(errno));
        exit(1);
    }
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        fprintf(stderr, "train: %s '%s' is a folder; give a file name\n", what, path);
        exit(1);
    }
}

static bool emit_token(int32_t tok, void *ctx) {
    unsigned char buf[4];
    size_t len;
    const unsigned char *b = gl_codec_token(ctx, tok, buf, &len);
    fwrite(b, 1, len, stdout);
    fflush(stdout);
    return true;
}

int main(int argc, char **argv) {
    gl_dist_init(&argc, &argv);
    int rank = gl_dist_rank(), world = gl_dist_world();
    options o = parse(argc, argv);
    if (rank != 0 && !freopen("/dev/null", "w", stdout)) gl_dist_fail("train", 1, "cannot quiet rank %d's output", rank);
    if (o.threads) omp_set_num_threads(o.threads);
    char err[512];
    /* outputs are checked before any work: a missing folder or a second run on the same --out stops us now */
    if (rank == 0) { /* rank 0 alone writes checkpoints, logs and plots */
        check_writable("--out", o.out);
        if (!gl_lock_output(o.out, err, sizeof err)) {
            fprintf(stderr, "train: --out: %s\n", err);
            return 1;
        }
        if (o.loss_log) check_writable("--loss-log", o.loss_log);
        if (o.plot) check_writable("--plot", o.plot);
    }

    /* ---- data ---- */
    unsigned char *text;
    size_t text_len;
    if (!gl_read_whole_file(o.data, &text, &text_len, err, sizeof err)) die("%s%s", err, "");
    uint64_t data_hash = gl_fnv1a(GL_FNV_OFFSET, text, text_len);
    bool token_file = text_len >= 4 && ((int32_t *)(void *)text)[0] == 20240520;

    /* ---- model, optimizer, run state and tokenizer: fresh or from a checkpoint ---- */
    gpt m;
    gpt_run_state rs;
    gl_codec codec = {{0, NULL}, NULL};
    float *opt_state = NULL;
    int64_t opt_floats = 0, opt_step = 0;
    if (o.resume) {
        if (!gpt_load_checkpoint(o.resume, &m, &rs, &opt_state, &opt_floats, &opt_step, err, sizeof err)) {
            fprintf(stderr, "train: cannot resume: %s\n", err);
            return 1;
        }
        if (rs.data_hash != data_hash) {
            fprintf(stderr, "train: '%s' is not the text that checkpoint '%s' was trained on (content hash differs)\n",
                    o.data, o.resume);
            return 1;
        }
        if (rs.bpe_len && !(codec.bpe = gl_bpe_deserialize(rs.bpe, rs.bpe_len, o.resume, err, sizeof err))) die("%s%s", err, "");
        codec.chars.size = rs.n_symbols;
        codec.chars.codepoints = rs.symbols;
        o.cfg = m.cfg;
        o.batch = rs.batch;
        o.lr = rs.lr, o.min_lr = rs.min_lr, o.beta1 = rs.beta1, o.beta2 = rs.beta2, o.eps = rs.eps;
        o.wd = rs.weight_decay, o.clip = rs.grad_clip, o.val_fraction = rs.val_fraction;
        o.warmup = rs.warmup_steps, o.decay_steps = rs.decay_steps, o.seed = rs.seed;
        if (!o.steps_given) o.steps = rs.total_steps;
        rs.total_steps = o.steps;
        for (int i = 0; i < o.n_fixed_given; i++)
            fprintf(stderr, "train: note: %s is ignored: a resumed run keeps the settings stored in '%s'\n",
                    o.fixed_given[i], o.resume);
    } else if (o.finetune) { /* the base model with its tokenizer; a fresh run state below */
        gpt_run_state base;
        if (!gpt_load_checkpoint(o.finetune, &m, &base, NULL, NULL, NULL, err, sizeof err)) {
            fprintf(stderr, "train: --finetune: %s\n", err);
            return 1;
        }
        if (base.bpe_len && !(codec.bpe = gl_bpe_deserialize(base.bpe, base.bpe_len, o.finetune, err, sizeof err)))
            die("%s%s", err, "");
        free(base.bpe);
        codec.chars.size = base.n_symbols;
        codec.chars.codepoints = base.symbols;
        if (o.dropout_given) m.cfg.dropout = o.cfg.dropout;
        o.cfg = m.cfg;
    } else if (!strcmp(o.tokenizer, "char")) {
        uint32_t *cps;
        size_t n_cps;
        if (token_file) die("'%s' is a token file: give the --tokenizer it was made with (gpt2 or FILE.bpe)%s", o.data, "");
        if (!gl_utf8_decode(text, text_len, &cps, &n_cps, err, sizeof err)) {
            fprintf(stderr, "train: '%s' is %s\n", o.data, err);
            return 1;
        }
        gl_charvocab_build(&codec.chars, cps, n_cps);
        free(cps);
    } else {
        codec.bpe = !strcmp(o.tokenizer, "gpt2")
                        ? gl_bpe_load_gpt2("tokenizer/gpt2/encoder.json", "tokenizer/gpt2/vocab.bpe", err, sizeof err)
                        : gl_bpe_load(o.tokenizer, err, sizeof err);
        if (!codec.bpe) die("--tokenizer: %s%s", err, "");
    }

    /* the corpus as token ids: a token file as is, or the text through the tokenizer */
    int32_t *tokens = NULL;
    size_t n_tokens = 0;
    if (token_file) {
        int file_vocab;
        if (!gl_tokfile_read(o.data, &tokens, &n_tokens, &file_vocab, err, sizeof err)) die("%s%s", err, "");
        if (file_vocab > gl_codec_size(&codec)) {
            fprintf(stderr, "train: '%s' holds ids of a %d-token vocabulary; the tokenizer has %d\n", o.data, file_vocab,
                    gl_codec_size(&codec));
            return 1;
        }
    } else {
        size_t dropped = 0;
        if (!gl_codec_encode(&codec, text, text_len, &tokens, &n_tokens, o.finetune ? &dropped : NULL, err, sizeof err)) {
            fprintf(stderr, "train: '%s': %s\n", o.data, err);
            return 1;
        }
        if (dropped)
            printf("train: %zu characters of '%s' are outside the base model's vocabulary and were dropped\n", dropped,
                   o.data);
    }
    int B = o.batch, T = o.cfg.block_size;
    int splits = world * o.grad_accum, micro = B / splits; /* rows of one micro-batch */
    gpt teacher = {0};
    if (o.distill) { /* the teacher: its vocabulary must be the one the text was just encoded with */
        gpt_run_state ts;
        if (!gpt_load_checkpoint(o.distill, &teacher, &ts, NULL, NULL, NULL, err, sizeof err)) die("--distill: %s%s", err, "");
        bool same = false;
        if (codec.bpe) {
            size_t blen;
            unsigned char *mine = gl_bpe_serialize(codec.bpe, &blen);
            same = ts.bpe_len == (uint64_t)blen && !memcmp(ts.bpe, mine, blen);
            free(mine);
        } else
            same = !ts.bpe_len && ts.n_symbols == (int32_t)codec.chars.size &&
                   !memcmp(ts.symbols, codec.chars.codepoints, codec.chars.size * sizeof *ts.symbols);
        free(ts.bpe), free(ts.symbols);
        if (!same) die("--distill: %s has another vocabulary than --data with this --tokenizer: distill on the text "
                       "and tokenizer the teacher was trained with%s", o.distill, "");
        if (T > teacher.cfg.block_size) die("--distill: the block size is beyond the teacher's%s%s", "", "");
        if (splits > 1) die("--distill runs one process without --grad-accum%s%s", "", "");
    }
    if (B % splits != 0)
        gl_dist_fail("train", 2, "--batch %d cannot be split evenly: it must be divisible by %d (%d rank%s x --grad-accum %d)",
                     B, splits, world, world > 1 ? "s" : "", o.grad_accum);
    dataset d = {tokens, 0, 0};
    d.n_val = (size_t)((double)n_tokens * o.val_fraction);
    d.n_train = n_tokens - d.n_val;
    if (d.n_val <= (size_t)T + 1 || d.n_train <= (size_t)T + 1) {
        fprintf(stderr,
                "train: '%s' has %zu tokens: too few for block size %d with a %.0f%% validation split "
                "(each split needs more than %d)\n",
                o.data, n_tokens, T, 100.0 * o.val_fraction, T + 1);
        return 1;
    }
    if (!o.resume) {
        if (!o.finetune) {
            o.cfg.vocab_size = gl_codec_size(&codec);
            o.cfg.padded_vocab_size = gpt_padded_vocab(o.cfg.vocab_size);
            if (!gpt_config_check(&o.cfg, err, sizeof err)) die("bad model flags: %s%s", err, "");
            gpt_build(&m, o.cfg);
            gpt_init(&m, o.seed);
        }
        memset(&rs, 0, sizeof rs);
        rs.seed = o.seed;
        gl_rng_seed(&rs.rng, o.seed ^ 0xda7a5eedull);
        rs.lr = o.lr, rs.min_lr = o.min_lr, rs.beta1 = o.beta1, rs.beta2 = o.beta2, rs.eps = o.eps;
        rs.weight_decay = o.wd, rs.grad_clip = o.clip, rs.val_fraction = o.val_fraction;
        rs.warmup_steps = o.warmup, rs.decay_steps = o.decay_steps, rs.batch = o.batch;
        rs.total_steps = o.steps;
        rs.data_hash = data_hash;
        if (codec.bpe) {
            size_t blen;
            rs.bpe = gl_bpe_serialize(codec.bpe, &blen);
            rs.bpe_len = blen;
        } else {
            rs.n_symbols = codec.chars.size;
            rs.symbols = codec.chars.codepoints;
        }
    }
    m.attention = !strcmp(o.attention, "flash") || (!strcmp(o.attention, "auto") && T >= 4096) ? GL_ATTN_FLASH
                                                                                               : GL_ATTN_NAIVE;
    size_t full_base_bytes = gpt_base_weight_bytes(&m);
    if (o.qlora) gpt_quantize_nf4(&m);
    if (o.lora) {
        gpt_lora_config lc;
        if (!gpt_lora_parse(o.lora, &lc, err, sizeof err)) die("%s%s", err, "");
        gpt_lora_attach(&m, lc, o.seed);
    }
    int64_t shard_lo = 0, shard_hi = 0; /* ZeRO-1: this rank's slice of the flat parameters */
    if (o.zero && world > 1) gl_dist_slice(gl_grads_count(m.trainable, m.n_trainable), &shard_lo, &shard_hi);
    gl_optim *opt = shard_hi > shard_lo ? gl_adamw_shard(m.trainable, m.n_trainable, o.lr, o.beta1, o.beta2, o.eps, o.wd,
                                                         shard_lo, shard_hi)
                                        : gl_adamw(m.trainable, m.n_trainable, o.lr, o.beta1, o.beta2, o.eps, o.wd);
    if (opt_state) {
        if (shard_hi > shard_lo && opt_floats) gl_optim_state_from_full(opt, opt_state);
        else memcpy(opt->state, opt_state, (size_t)opt_floats * sizeof(float));
        opt->step = opt_step;
        free(opt_state);
    }
    bool cuda = !strcmp(o.device, "cuda");
    if (cuda) { /* the same ops from here on, on the device: the batch goes in, one float of loss comes out */
        if (!gpt_to(&m, GL_CUDA, err, sizeof err)) die("--device cuda: %s%s", err, "");
        gl_optim_to(opt, GL_CUDA);
    }
    printf("train: %s, %zu %s (vocabulary %d), train %zu / val %zu\n", o.data, n_tokens,
           codec.bpe ? "BPE tokens" : "characters", gl_codec_size(&codec), d.n_train, d.n_val);
    printf("model: %d layers, %d heads, %d dims, block %d, bias %s, dropout %.2f: %.2fM parameters\n", o.cfg.n_layer,
           o.cfg.n_head, o.cfg.n_embd, T, o.cfg.bias ? "on" : "off", (double)o.cfg.dropout, m.n_weights / 1e6);
    printf("AdamW lr %.1e (warmup %lld, cosine to %.1e at %lld), betas %.2f/%.3f, wd %.2f, clip %.1f; batch %d x %d "
           "tokens; %d threads, kernels %s\n",
           (double)o.lr, (long long)o.warmup, (double)o.min_lr, (long long)o.decay_steps, (double)o.beta1,
           (double)o.beta2, (double)o.wd, (double)o.clip, B, T, omp_get_max_threads(), gl_kernels_in_use());
    printf("attention: %s; device: %s\n", m.attention == GL_ATTN_FLASH ? "flash" : "naive", gl_device_name(m.device));
    if (shard_hi > shard_lo)
        printf("ZeRO-1: each rank keeps AdamW state for %lld of %lld weights (%.2f MB instead of %.2f MB)\n",
               (long long)(shard_hi - shard_lo), (long long)gl_grads_count(m.trainable, m.n_trainable),
               opt->state_floats * 4e-6, gl_grads_count(m.trainable, m.n_trainable) * 8e-6);
    if (splits > 1)
        printf("batch %d = %d rank%s (%s) x %d micro-batch%s of %d rows; gradients summed in rank and micro-batch order\n",
               B, world, world > 1 ? "s" : "", gl_dist_engine_name(), o.grad_accum, o.grad_accum > 1 ? "es" : "", micro);
    if (o.resume) printf("resuming from %s at step %lld\n", o.resume, (long long)rs.step);
    if (o.finetune)
        printf("fine-tuning %s: %s%s; trainable %lld of %lld weights (%.2f%%); base weights %.2f MB%s\n", o.finetune,
               m.n_adapters ? "LoRA adapters" : "all weights", m.nf4 ? " on a 4-bit NF4 base" : "",
               (long long)gpt_trainable_weights(&m), (long long)m.n_weights,
               100.0 * gpt_trainable_weights(&m) / m.n_weights, gpt_base_weight_bytes(&m) / 1e6,
               m.nf4 ? "" : " (fp32)");
    if (m.n_adapters)
        printf("LoRA: rank %d, alpha %g (scale %g), targets %s; --out %s gets the adapters alone (base: %s)\n",
               m.lora.rank, (double)m.lora.alpha, (double)(m.lora.alpha / m.lora.rank), m.lora.targets, o.out,
               o.finetune);
    if (m.nf4) printf("QLoRA: block linears in NF4: %.2f MB of base weights instead of %.2f MB\n",
                      gpt_base_weight_bytes(&m) / 1e6, full_base_bytes / 1e6);

    /* ---- the loop ---- */
    FILE *loss_log = NULL;
    if (rank == 0 && o.loss_log && !(loss_log = open_loss_log(o.loss_log, o.resume, rs.step, err, sizeof err))) die("%s%s", err, "");
    int64_t n_steps = o.steps;
    int64_t stop_at = o.stop_after && rs.step + o.stop_after < n_steps ? rs.step + o.stop_after : n_steps;
    float *accum = splits > 1 ? malloc(gl_grads_count(m.trainable, m.n_trainable) * sizeof(float)) : NULL;
    float *train_curve = calloc((size_t)(n_steps + 1), sizeof(float)), *val_x = calloc(1024, 4), *val_y = calloc(1024, 4);
    if (!train_curve || !val_x || !val_y) {
        fprintf(stderr, "train: out of memory for the loss curve of %lld steps\n", (long long)n_steps);
        return 1;
    }
    for (int64_t i = 0; i <= n_steps; i++) train_curve[i] = NAN;
    int n_val_points = 0;
    int32_t *x = malloc((size_t)B * T * sizeof(int32_t)), *y = malloc((size_t)B * T * sizeof(int32_t));
    if (!x || !y) {
        fprintf(stderr, "train: out of memory for a batch of %d x %d tokens (lower --batch)\n", B, T);
        return 1;
    }
    bool tty = isatty(fileno(stdout)) && !o.quiet;
    double t0 = now(), last = 0;
    int64_t first_step = rs.step;
    float ema = NAN;
    for (int64_t step = rs.step; step < stop_at; step++) {
        opt->lr = gl_lr_warmup_cosine(step, o.warmup, o.decay_steps, o.lr, o.min_lr);
        get_batch(tokens, 0, d.n_train, B, T, &rs.rng, x, y);
        float lv;
        if (splits == 1) {
            gl_step_reset();
            gl_tensor *loss = o.distill ? gpt_distill_loss(&m, &teacher, x, y, B, T, o.distill_temp, o.distill_alpha, &rs.rng,
                                                           o.cfg.dropout > 0.0f)
                                        : gpt_loss(&m, x, y, B, T, &rs.rng, o.cfg.dropout > 0.0f);
            lv = gl_item(loss);
            if (isfinite(lv)) gl_backward(loss);
        } else {
            lv = split_step(&m, opt, &rs.rng, x, y, micro, T, o.grad_accum, o.cfg.dropout > 0.0f, accum);
        }
        if (isfinite(lv)) {
            gl_clip_grad_norm(m.trainable, m.n_trainable, o.clip);
            gl_optim_step(opt);
            if (shard_hi > shard_lo) gl_dist_gather_params(m.trainable, m.n_trainable); /* each rank updated a slice */
            gl_optim_zero_grad(opt);
        }
        if (!isfinite(lv)) {
            fprintf(stderr, "\ntrain: the loss became %f at step %lld; stopping (lower --lr or raise --warmup)\n",
                    (double)lv, (long long)step);
            return 1;
        }
        rs.step = step + 1;
        train_curve[step] = lv;
        ema = isnan(ema) ? lv : 0.9f * ema + 0.1f * lv;
        if (loss_log) fprintf(loss_log, "%lld %a %.6f\n", (long long)step, (double)lv, (double)lv);

        double t = now();
        bool eval = rs.step % o.eval_interval == 0 || rs.step == n_steps;
        if (!o.quiet && (eval || (tty && t - last > 0.25) || (!tty && rs.step % 100 == 0))) {
            double rate = (double)(rs.step - first_step) / (t - t0);
            int w = 30, filled = (int)((double)rs.step / n_steps * w);
            char bar[64];
            for (int i = 0; i < w; i++) bar[i] = i < filled ? '#' : '.';
            bar[w] = 0;
            char tune[96] = "";
            if (o.finetune)
                snprintf(tune, sizeof tune, "  trainable %.1fk, base %.2f MB", gpt_trainable_weights(&m) / 1e3,
                         gpt_base_weight_bytes(&m) / 1e6);
            printf("%s[%s] step %lld/%lld  loss %.4f  lr %.2e  %.0f tok/s  ETA %.0fs%s   %s", tty ? "\r" : "", bar,
                   (long long)rs.step, (long long)n_steps, (double)ema, (double)opt->lr, rate * B * T,
                   (n_steps - rs.step) / rate, tune, tty ? "" : "\n");
            fflush(stdout);
            last = t;
        }
        if (eval) {
            float vl = val_loss(&m, &d, B, T, o.eval_batches, x, y);
            if (n_val_points < 1024) val_x[n_val_points] = (float)rs.step, val_y[n_val_points++] = vl;
            if (!o.quiet) printf("%sstep %lld: val loss %.4f (%d batches)\n", tty ? "\n" : "", (long long)rs.step,
                                 (double)vl, o.eval_batches);
        }
        if (rs.step % o.ckpt_interval == 0 || rs.step == stop_at) {
            if (!sync_loss_log(loss_log)) die("cannot write the loss log '%s': %s", o.loss_log, strerror(errno));
            if (!checkpoint(o.out, &m, opt, &rs, err, sizeof err)) return 1;
        }
    }
    double elapsed = now() - t0;
    if (loss_log && (!sync_loss_log(loss_log) | (fclose(loss_log) != 0)))
        die("cannot write the loss log '%s': %s", o.loss_log, strerror(errno));
    if (rs.step == first_step && !checkpoint(o.out, &m, opt, &rs, err, sizeof err)) return 1;
    printf("trained %lld steps in %.1f s (%.0f tokens/s); %s %s\n", (long long)(rs.step - first_step), elapsed,
           (double)(rs.step - first_step) * B * T / (elapsed > 0 ? elapsed : 1), m.n_adapters ? "adapters" : "checkpoint",
           o.out);
    if (world > 1)
        printf("communication: %.2f ms per step in collectives (%zu gradient floats, %d ranks, %s)\n",
               1e3 * gl_dist_comm_seconds() / (double)(rs.step - first_step > 0 ? rs.step - first_step : 1),
               gl_grads_count(m.trainable, m.n_trainable), world, gl_dist_engine_name());
    if (o.final_eval_batches > 0)
        printf("final val loss %.4f over %d batches (%d tokens)\n",
               (double)val_loss(&m, &d, B, T, o.final_eval_batches, x, y), o.final_eval_batches,
               o.final_eval_batches * B * T);

    /* ---- loss curve ---- */
    char plot_path[4096];
    snprintf(plot_path, sizeof plot_path, "%s", o.plot ? o.plot : o.out);
    if (!o.plot) strncat(plot_path, ".loss.png", sizeof plot_path - strlen(plot_path) - 1);
    gl_series series[2] = {{"train loss", NULL, train_curve, (int)n_steps, false, NULL}, {"val loss", val_x, val_y, n_val_points, false, NULL}};
    gl_chart chart = {.title = "GPT training loss", .xlabel = "step", .ylabel = "cross-entropy (nats)"};
    int status = 0;
    bool plotted = rank != 0 || gl_plot_lines(plot_path, &chart, series, 2, err, (int)sizeof err); /* rank 0 writes */
    if (!plotted) fprintf(stderr, "train: plot: %s\n", err), status = 1;
    else if (rank == 0) printf("loss curve: %s\n", plot_path);

    if (o.sample_len > 0 && rank == 0) {
        printf("\n--- sample (temperature %.2f) ---\n", (double)o.temperature);
        int plen = T < 8 ? T : 8; /* the first characters of the validation text as the prompt */
        for (int i = 0; i < plen; i++) emit_token(tokens[d.n_train + i], &codec);
        gl_sampling s = {.temperature = o.temperature, .top_k = 0, .top_p = 1.0f};
        gl_rng sample_rng;
        gl_rng_seed(&sample_rng, o.seed);
        gl_generate(&m, tokens + d.n_train, plen, o.sample_len, &s, &sample_rng, true, emit_token, &codec);
        printf("\n---\n");
    }
    gl_optim_free(opt);
    gpt_free(&m);
    if (o.distill) gpt_free(&teacher);
    gl_codec_free(&codec);
    free(rs.bpe);
    free(tokens);
    free(text);
    free(x);
    free(y);
    free(train_curve);
    free(val_x);
    free(val_y);
    free(accum);
    gl_arena_release();
    gl_stdout_check("train");
    gl_dist_finalize();
    return status;
}
