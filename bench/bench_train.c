/* bench-train: our GPT training step (forward + backward + AdamW) against PyTorch's (bench/torch_gpt.py,
 * nanoGPT's model in fp32 at 2 threads), and batch-1 generation with a KV cache against PyTorch's and against
 * the memory-bandwidth bound. Ours and the peer run alternately (ours, peer, ours, ...) and the table reports
 * medians and the median of the pairwise ratios; figures also go to out/bench/train.json.
 *
 * The peer is a separate Python process that answers one command per line on a pipe. Run through
 * `make bench-train`, which points PyTorch at Debian's OpenMP build of OpenBLAS. Both sides use libgomp with its
 * default wait policy: idle workers spin for a fraction of a millisecond, then sleep, so neither side holds the
 * other's core for long (OMP_WAIT_POLICY=passive would make every one of our per-token parallel regions pay a
 * futex wake-up, which cost a quarter of the generation speed).
 */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "bench_util.h"
#include "gpt.h"
#include "sample.h"

typedef struct {
    const char *name;
    int vocab, n_layer, n_head, n_embd, block, batch;
} bench_config;

static const bench_config configs[] = {
    {"S", 65, 6, 6, 384, 256, 8},
    {"G", 50257, 12, 12, 768, 64, 4},
};

/* ---- the PyTorch peer: one command per line, milliseconds back ---- */

static double peer_ms(bench_peer *p, const char *cmd) {
    char line[128];
    return bench_peer_ask(p, cmd, line, sizeof line) ? atof(line) : NAN;
}

/* ---- ours ---- */

static double our_step_ms(gpt *m, gl_optim *opt, const int32_t *x, const int32_t *y, int B, int T) {
    double t0 = bench_now();
    gl_step_reset();
    gl_tensor *loss = gpt_loss(m, x, y, B, T, NULL, false);
    gl_backward(loss);
    gl_optim_step(opt);
    gl_optim_zero_grad(opt);
    gl_device_sync(m->device); /* a GPU step is done when its last kernel is */
    return (bench_now() - t0) * 1e3;
}

static double our_gen_ms(gpt *m, int n) {
    gl_sampling greedy = {.temperature = 0.0f, .top_k = 0, .top_p = 1.0f};
    gl_rng rng;
    gl_rng_seed(&rng, 1);
    int32_t prompt = 0;
    double t0 = bench_now();
    gl_generate(m, &prompt, 1, n, &greedy, &rng, true, NULL, NULL);
    return (bench_now() - t0) * 1e3;
}

/* copy bandwidth at the current thread count: bytes read + written per second copying 256 MiB, best of 3 */
static double copy_bandwidth(void) {
    size_t n = (size_t)1 << 26; /* floats: 256 MiB each way, far past the caches */
    float *a = malloc(n * 4), *b = malloc(n * 4);
    if (!a || !b) return NAN;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) a[i] = (float)i, b[i] = 0;
    double best = 0;
    for (int r = 0; r < 3; r++) {
        double t0 = bench_now();
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) b[i] = a[i];
        double bw = 2.0 * n * 4 / (bench_now() - t0);
        if (bw > best) best = bw;
    }
    free(a);
    free(b);
    return best;
}

int main(int argc, char **argv) {
    int pairs = 5, gen_tokens = 48;
    const char *json_path = NULL, *python = "python3", *only = NULL;
    bool gen_only = false, cuda = false;
    gl_attn_impl attention = GL_ATTN_NAIVE; /* train's choice at these block sizes (--attention auto) */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--pairs") && i + 1 < argc) pairs = gl_flag_int("bench_train", "--pairs", argv[++i], 1, 1e6);
        else if (!strcmp(argv[i], "--json") && i + 1 < argc) json_path = argv[++i];
        else if (!strcmp(argv[i], "--python") && i + 1 < argc) python = argv[++i];
        else if (!strcmp(argv[i], "--config") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--gen-tokens") && i + 1 < argc) gen_tokens = gl_flag_int("bench_train", "--gen-tokens", argv[++i], 1, 1e6);
        else if (!strcmp(argv[i], "--gen-only")) gen_only = true, only = "G";
        else if (!strcmp(argv[i], "--attention") && i + 1 < argc && (!strcmp(argv[i + 1], "naive") || !strcmp(argv[i + 1], "flash")))
            attention = !strcmp(argv[++i], "flash") ? GL_ATTN_FLASH : GL_ATTN_NAIVE;
        else if (!strcmp(argv[i], "--device") && i + 1 < argc && !strcmp(argv[i + 1], "cuda")) cuda = true, i++;
        else if (!strcmp(argv[i], "--device") && i + 1 < argc && !strcmp(argv[i + 1], "cpu")) i++;
        else {
            fprintf(stderr, "usage: bench_train [--pairs 5] [--config S|G] [--gen-tokens 48] [--gen-only] [--python python3] "
                            "[--device cpu|cuda] [--attention naive|flash] [--json PATH]\n");
            return 2;
        }
    }
    if (pairs < 1 || pairs > 100 || gen_tokens < 1) {
        fprintf(stderr, "bench_train: --pairs must be in [1, 100] and --gen-tokens positive\n");
        return 2;
    }
    if (cuda && !gl_cuda_present()) {
        fprintf(stderr, "bench_train: --device cuda: %s\n", gl_cuda_linked() ? "no CUDA device is available"
                                                                           : "this build has no CUDA kernels (make CUDA=1)");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    printf("gradlab training benchmark on %s: %d threads, kernels %s, %s attention; peer: PyTorch (bench/torch_gpt.py via %s)\n",
           cuda ? "the CUDA device" : "the CPU", omp_get_max_threads(), gl_kernels_in_use(),
           attention == GL_ATTN_FLASH ? "flash" : "naive", python);
    printf("each figure: median of %d alternating pairs after warm-up; ratio = median of pairwise ours/peer speed\n\n",
           pairs);
    double bw = copy_bandwidth();
    printf("copy bandwidth (read + write, %d threads): %.1f GB/s\n\n", omp_get_max_threads(), bw / 1e9);

    gl_json_writer jw, *js = bench_json_open(&jw, json_path, "bench_train");
    if (json_path && !js) return 1;
    if (js) {
        gl_jw_string(js, "device", cuda ? "cuda" : "cpu");
        gl_jw_int(js, "threads", omp_get_max_threads());
        gl_jw_string(js, "kernels", gl_kernels_in_use());
        gl_jw_int(js, "pairs", pairs);
        gl_jw_string(js, "attention", attention == GL_ATTN_FLASH ? "flash" : "naive");
        gl_jw_number(js, "copy_bandwidth_gbs", bw / 1e9);
        gl_jw_array(js, "results");
    }
    printf("%-6s %-28s %10s %10s %10s %10s %7s\n", "config", "what", "ours ms", "peer ms", "ours tok/s", "peer tok/s",
           "ratio");
    for (size_t ci = 0; ci < sizeof configs / sizeof *configs; ci++) {
        const bench_config *c = &configs[ci];
        if (only && strcmp(only, c->name) != 0) continue;
        gpt m;
        gpt_build(&m, (gpt_config){.n_layer = c->n_layer, .n_head = c->n_head, .n_embd = c->n_embd,
                                   .block_size = c->block, .vocab_size = c->vocab,
                                   .padded_vocab_size = gpt_padded_vocab(c->vocab), .bias = true, .ln_eps = 1e-5f});
        gpt_init(&m, 0);
        m.attention = attention;
        char err[256];
        if (cuda && !gpt_to(&m, GL_CUDA, err, sizeof err)) {
            fprintf(stderr, "bench_train: %s\n", err);
            return 1;
        }
        gl_optim *opt = gl_adamw(m.params, m.n_params, 1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f);
        int B = c->batch, T = c->block;
        int32_t *x = malloc((size_t)B * T * 4), *y = malloc((size_t)B * T * 4);
        gl_rng r;
        gl_rng_seed(&r, 7);
        for (int i = 0; i < B * T; i++) x[i] = (int32_t)gl_rng_below(&r, (uint64_t)c->vocab), y[i] = (int32_t)gl_rng_below(&r, (uint64_t)c->vocab);
        bench_peer p;
        char a[6][16];
        int v[6] = {c->vocab, c->n_layer, c->n_head, c->n_embd, c->block, c->batch};
        for (int i = 0; i < 6; i++) snprintf(a[i], sizeof a[i], "%d", v[i]);
        char *peer_argv[] = {(char *)python, "bench/torch_gpt.py", "serve", a[0], a[1], a[2], a[3], a[4], a[5],
                             cuda ? "cuda" : NULL, NULL};
        bool have_peer = bench_peer_start(&p, peer_argv);
        if (!have_peer) printf("(config %s: PyTorch peer unavailable; reporting ours only)\n", c->name);
        double ours[100], theirs[100], ratio[100];
        /* training step */
        for (int i = -2; i < (gen_only ? -2 : pairs); i++) {
            double a = our_step_ms(&m, opt, x, y, B, T);
            double b = have_peer ? peer_ms(&p, "step") : NAN;
            if (i < 0) continue;
            ours[i] = a, theirs[i] = b, ratio[i] = b / a;
        }
        char what[64];
        double mo = 0, mp = 0, mr = 0;
        if (!gen_only) {
            mo = bench_median(ours, pairs), mp = bench_median(theirs, pairs), mr = bench_median(ratio, pairs);
            snprintf(what, sizeof what, "train step B=%d T=%d (%.0fM)", B, T, m.n_weights / 1e6);
            printf("%-6s %-28s %10.1f %10.1f %10.0f %10.0f %7.2f\n", c->name, what, mo, mp, B * T / mo * 1e3,
               B * T / mp * 1e3, mr);
        }
        if (js && !gen_only) {
            gl_jw_object(js, NULL);
            gl_jw_string(js, "config", c->name);
            gl_jw_string(js, "what", "train_step");
            gl_jw_int(js, "batch", B);
            gl_jw_int(js, "block", T);
            gl_jw_int(js, "params", (long long)m.n_weights);
            gl_jw_number(js, "ours_ms", mo);
            gl_jw_number(js, "peer_ms", mp);
            gl_jw_number(js, "ours_tokens_per_s", B * T / mo * 1e3);
            gl_jw_number(js, "peer_tokens_per_s", B * T / mp * 1e3);
            gl_jw_number(js, "ratio", mr);
            gl_jw_end(js);
        }
        fflush(stdout);
        /* generation with a KV cache, G only (the model the bandwidth question is about) */
        if (!strcmp(c->name, "G")) {
            gl_optim_free(opt);
            opt = NULL;
            int n = gen_tokens < c->block ? gen_tokens : c->block - 1;
            char cmd[32];
            snprintf(cmd, sizeof cmd, "gen %d", n);
            /* bytes per token: every weight once, except that only one row of wpe and the used rows of wte count */
            double bytes = (double)(m.n_weights - (int64_t)c->block * c->n_embd -
                                    (int64_t)(m.cfg.padded_vocab_size - c->vocab) * c->n_embd) * 4.0;
            double fraction[100], bws[100];
            for (int i = -1; i < pairs; i++) { /* bandwidth measured in each pair: the machine's phases shift it */
                double bwi = copy_bandwidth();
                double a = our_gen_ms(&m, n);
                double b = have_peer ? peer_ms(&p, cmd) : NAN;
                if (i < 0) continue;
                ours[i] = a, theirs[i] = b, ratio[i] = b / a;
                bws[i] = bwi;
                fraction[i] = (n / a * 1e3) / (bwi / bytes);
            }
            mo = bench_median(ours, pairs), mp = bench_median(theirs, pairs), mr = bench_median(ratio, pairs);
            bw = bench_median(bws, pairs);
            double bound = bw / bytes, ours_tps = n / mo * 1e3, mf = bench_median(fraction, pairs);
            snprintf(what, sizeof what, "generate %d tokens, KV cache", n);
            printf("%-6s %-28s %10.1f %10.1f %10.1f %10.1f %7.2f\n", c->name, what, mo, mp, ours_tps, n / mp * 1e3, mr);
            if (!cuda) printf("%-6s bandwidth bound: %.0f MB of weights per token / %.1f GB/s = %.1f tokens/s; ours reaches %.0f%% "
                   "(median over pairs, each against the bandwidth measured beside it)\n",
                   c->name, bytes / 1e6, bw / 1e9, bound, 100 * mf);
            if (js) {
                gl_jw_object(js, NULL);
                gl_jw_string(js, "config", "G");
                gl_jw_string(js, "what", "generate_kv_cache");
                gl_jw_int(js, "tokens", n);
                gl_jw_number(js, "ours_ms", mo);
                gl_jw_number(js, "peer_ms", mp);
                gl_jw_number(js, "ours_tokens_per_s", ours_tps);
                gl_jw_number(js, "peer_tokens_per_s", n / mp * 1e3);
                gl_jw_number(js, "ratio", mr);
                if (!cuda) { /* the host memory's bound: a CPU figure */
                    gl_jw_number(js, "bytes_per_token", bytes);
                    gl_jw_number(js, "bound_tokens_per_s", bound);
                    gl_jw_number(js, "fraction_of_bound", mf);
                }
                gl_jw_end(js);
            }
        }
        if (have_peer) {
            printf("%-6s peer: %s\n", c->name, p.banner);
            if (js) {
                gl_jw_object(js, NULL);
                gl_jw_string(js, "config", c->name);
                gl_jw_string(js, "peer", p.banner);
                gl_jw_end(js);
            }
            bench_peer_stop(&p);
        }
        if (opt) gl_optim_free(opt);
        gpt_free(&m);
        gl_arena_release();
        free(x);
        free(y);
    }
    if (!bench_json_close(js, json_path, "bench_train")) return 1;
    return 0;
}
