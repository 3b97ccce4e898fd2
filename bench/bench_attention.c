/* bench-attention: causal attention, B = 1, H = 12, head dim 64, 2 threads, at growing T: forward and
 * forward+backward time (median of rounds) and peak extra memory of our naive and flash ops and of PyTorch's
 * explicit attention (and scaled_dot_product_attention where the torch version has it), alternating in one run.
 * Then the same question through a whole GPT-2 124M forward pass: where does attention start to dominate?
 * Table on stdout, out/bench/attention.json, and PNG plots of time and memory against T (log scales). */
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "bench_util.h"
#include "gpt.h"
#include "plot.h"

enum { H = 12, HS = 64, N_T = 7 };
static const int Ts[N_T] = {128, 256, 512, 1024, 2048, 4096, 8192};

static double peer_run(bench_peer *p, const char *impl, int T, bool bwd, bool mem, double *mib) {
    char line[128], cmd[128];
    snprintf(cmd, sizeof cmd, "%s %d %s%s", impl, T, bwd ? "fwdbwd" : "fwd", mem ? " mem" : "");
    double ms = NAN;
    *mib = NAN;
    if (bench_peer_ask(p, cmd, line, sizeof line)) sscanf(line, "%lf %lf", &ms, mib);
    return ms;
}

/* one run of ours: milliseconds; *mib = the arena's peak growth during it */
static double ours(gl_tensor *qkv, gl_attn_impl impl, bool bwd, double *mib) {
    gl_step_reset();
    gl_zero_grad(&qkv, 1);
    gl_arena_reset_high_water();
    size_t before = gl_arena_stats_get().used;
    double t0 = bench_now();
    gl_tensor *o = gl_attention_ex(qkv, H, true, impl);
    if (bwd) gl_backward(gl_mean_all(o));
    double ms = (bench_now() - t0) * 1e3;
    *mib = (double)(gl_arena_stats_get().high_water - before) / 1048576.0;
    return ms;
}

int main(int argc, char **argv) {
    int rounds = 3, max_T = 8192;
    const char *python = "python3", *json = NULL, *out_dir = "out/bench";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = gl_flag_int("bench_attention", "--rounds", argv[++i], 1, 1e6);
        else if (!strcmp(argv[i], "--python") && i + 1 < argc) python = argv[++i];
        else if (!strcmp(argv[i], "--json") && i + 1 < argc) json = argv[++i];
        else if (!strcmp(argv[i], "--max-t") && i + 1 < argc) max_T = gl_flag_int("bench_attention", "--max-t", argv[++i], 1, 1 << 20);
        else {
            fprintf(stderr, "usage: bench_attention [--rounds 3] [--max-t 8192] [--python python3] [--json PATH]\n");
            return 2;
        }
    }
    if (rounds < 1 || rounds > 50) rounds = 3;
    signal(SIGPIPE, SIG_IGN);
    bench_peer p;
    char *peer_argv[] = {(char *)python, "bench/torch_attention.py", "12", "64", NULL};
    bool have_peer = bench_peer_start(&p, peer_argv);
    printf("gradlab attention benchmark: causal, B=1, H=%d, head dim %d, %d threads, kernels %s; median of %d rounds\n",
           H, HS, omp_get_max_threads(), gl_kernels_in_use(), rounds);
    printf("peer: %s\n\n", have_peer ? p.banner : "PyTorch unavailable (sudo apt-get install python3-torch)");
    printf("%6s | %9s %9s %9s %9s | %10s %10s %10s %10s | %9s %9s %9s\n", "T", "naive fwd", "flash fwd", "torch fwd",
           "sdpa fwd", "naive f+b", "flash f+b", "torch f+b", "sdpa f+b", "naive MiB", "flash MiB", "torch MiB");
    float tx[N_T], t_naive[N_T], t_flash[N_T], t_torch[N_T], t_sdpa[N_T], m_naive[N_T], m_flash[N_T], m_torch[N_T];
    int nt = 0;
    gl_json_writer jw, *js = bench_json_open(&jw, json, "bench_attention");
    if (js) {
        gl_jw_int(js, "heads", H);
        gl_jw_int(js, "head_dim", HS);
        gl_jw_int(js, "rounds", rounds);
        gl_jw_string(js, "peer", have_peer ? p.banner : "");
        gl_jw_array(js, "results");
    }
    for (int ti = 0; ti < N_T && Ts[ti] <= max_T; ti++, nt++) {
        int T = Ts[ti];
        gl_tensor *qkv = gl_param(GL_DIMS(1, T, 3 * H * HS), "qkv");
        gl_rng r;
        gl_rng_seed(&r, 1);
        gl_init_normal(qkv, &r, 1.0f);
        double f[4][50], fb[4][50], mem[4] = {0, 0, NAN, NAN}, mib;
        int R = T >= 4096 ? (rounds < 3 ? rounds : 3) : rounds;
        for (int k = -1; k < R; k++) { /* k = -1 warms up and measures memory */
            for (int bwd = 0; bwd < 2; bwd++) {
                double a = ours(qkv, GL_ATTN_NAIVE, bwd, &mib);
                if (bwd && k < 0) mem[0] = mib;
                double b = ours(qkv, GL_ATTN_FLASH, bwd, &mib);
                if (bwd && k < 0) mem[1] = mib;
                if (!have_peer) mib = NAN; /* no peer: no figure, not the last one measured */
                double c = have_peer ? peer_run(&p, "explicit", T, bwd, bwd && k < 0, &mib) : NAN;
                if (bwd && k < 0) mem[2] = mib;
                double d = have_peer ? peer_run(&p, "sdpa", T, bwd, false, &mib) : NAN;
                if (k < 0) continue;
                double *row[4] = {&a, &b, &c, &d};
                for (int m = 0; m < 4; m++) (bwd ? fb : f)[m][k] = *row[m];
            }
        }
        double med_f[4], med_fb[4];
        for (int m = 0; m < 4; m++) med_f[m] = bench_median(f[m], R), med_fb[m] = bench_median(fb[m], R);
        printf("%6d | %9.2f %9.2f %9.2f %9.2f | %10.2f %10.2f %10.2f %10.2f | %9.1f %9.1f %9.1f\n", T, med_f[0], med_f[1],
               med_f[2], med_f[3], med_fb[0], med_fb[1], med_fb[2], med_fb[3], mem[0], mem[1], mem[2]);
        fflush(stdout);
        tx[ti] = (float)T, t_naive[ti] = (float)med_fb[0], t_flash[ti] = (float)med_fb[1], t_torch[ti] = (float)med_fb[2];
        t_sdpa[ti] = (float)med_fb[3], m_naive[ti] = (float)mem[0], m_flash[ti] = (float)mem[1], m_torch[ti] = (float)mem[2];
        if (js) { /* a figure without the peer is null */
            static const char *const who[4] = {"naive", "flash", "torch_explicit", "torch_sdpa"};
            gl_jw_object(js, NULL);
            gl_jw_int(js, "T", T);
            for (int part = 0; part < 3; part++) {
                gl_jw_object(js, part == 0 ? "fwd_ms" : part == 1 ? "fwd_bwd_ms" : "peak_extra_mib");
                for (int m = 0; m < (part == 2 ? 3 : 4); m++)
                    gl_jw_number(js, who[m], part == 0 ? med_f[m] : part == 1 ? med_fb[m] : mem[m]);
                gl_jw_end(js);
            }
            gl_jw_end(js);
        }
        gl_param_free(qkv);
        gl_arena_release();
    }
    if (have_peer) bench_peer_stop(&p);
    char path[4096], err[256];
    gl_series ts[4] = {{"naive (ours)", tx, t_naive, nt, false, NULL}, {"flash (ours)", tx, t_flash, nt, false, NULL},
                       {"PyTorch explicit", tx, t_torch, nt, false, NULL}, {"PyTorch SDPA", tx, t_sdpa, nt, false, NULL}};
    gl_chart tc = {.title = "Causal attention, forward + backward", .xlabel = "sequence length T (log)",
                   .ylabel = "milliseconds (log)", .log_x = true, .log_y = true};
    snprintf(path, sizeof path, "%s/attention_time.png", out_dir);
    if (!gl_plot_lines(path, &tc, ts, 4, err, (int)sizeof err)) fprintf(stderr, "bench_attention: %s\n", err);
    gl_series ms[3] = {{"naive (ours)", tx, m_naive, nt, false, NULL}, {"flash (ours)", tx, m_flash, nt, false, NULL},
                       {"PyTorch explicit", tx, m_torch, nt, false, NULL}};
    gl_chart mc = {.title = "Peak extra memory, forward + backward", .xlabel = "sequence length T (log)",
                   .ylabel = "MiB (log)", .log_x = true, .log_y = true};
    snprintf(path, sizeof path, "%s/attention_memory.png", out_dir);
    if (!gl_plot_lines(path, &mc, ms, 3, err, (int)sizeof err)) fprintf(stderr, "bench_attention: %s\n", err);

    /* context-length scaling through GPT-2 124M (forward, batch 1) */
    printf("\nGPT-2 124M forward pass, batch 1 (attention as train's auto choice: naive below T = 4096, flash from\n"
           "4096): where attention starts to dominate\n");
    printf("%6s %12s %14s %16s\n", "T", "forward ms", "attention ms", "attention share");
    gpt m;
    gpt_build(&m, (gpt_config){.n_layer = 12, .n_head = 12, .n_embd = 768, .block_size = 8192, .vocab_size = 50257,
                               .padded_vocab_size = 50304, .bias = true, .ln_eps = 1e-5f});
    gpt_init(&m, 0);
    if (js) gl_jw_end(js), gl_jw_array(js, "gpt2_forward");
    for (int ti = 0; ti < N_T && Ts[ti] <= max_T; ti++) {
        int T = Ts[ti];
        int32_t *idx = malloc((size_t)T * sizeof *idx);
        for (int t = 0; t < T; t++) idx[t] = (t * 31) % 50257;
        double fw[5], at[5];
        gl_tensor *qkv = gl_param(GL_DIMS(1, T, 3 * 768), "qkv");
        gl_attn_impl impl = T >= 4096 ? GL_ATTN_FLASH : GL_ATTN_NAIVE;
        m.attention = impl;
        for (int k = 0; k < 3; k++) {
            gl_step_reset();
            gl_no_grad_begin();
            double t0 = bench_now();
            gpt_forward(&m, idx, 1, T, NULL, false);
            fw[k] = (bench_now() - t0) * 1e3;
            gl_step_reset();
            t0 = bench_now();
            gl_attention_ex(qkv, 12, true, impl);
            at[k] = (bench_now() - t0) * 1e3 * 12; /* 12 layers */
            gl_no_grad_end();
        }
        double f = bench_median(fw, 3), a = bench_median(at, 3);
        printf("%6d %12.1f %14.1f %15.0f%%  (%s)\n", T, f, a, 100 * a / f, impl == GL_ATTN_FLASH ? "flash" : "naive");
        fflush(stdout);
        if (js) {
            gl_jw_object(js, NULL);
            gl_jw_int(js, "T", T);
            gl_jw_number(js, "forward_ms", f);
            gl_jw_number(js, "attention_ms", a);
            gl_jw_string(js, "attention", impl == GL_ATTN_FLASH ? "flash" : "naive");
            gl_jw_end(js);
        }
        gl_param_free(qkv);
        gl_arena_release();
        free(idx);
    }
    gpt_free(&m);
    printf("\nwrote %s/attention_time.png, %s/attention_memory.png\n", out_dir, out_dir);
    if (!bench_json_close(js, json, "bench_attention")) return 1;
    return 0;
}
