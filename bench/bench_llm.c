/* bench_llm: SmolLM2-135M-Instruct (Q4_1 GGUF) on the CPU, ours against llama.cpp in the same run, alternating
 * (ours, peer, ours, peer ...) and reporting the median of the pairwise ratios:
 *   decode   tokens/s of 128 greedy single-token steps after a 32-token prompt (batch 1)
 *   prefill  tokens/s of one 512-token prompt on an empty cache
 *   bound    decode as a fraction of the memory-bandwidth bound: the weight bytes one token reads, against the copy
 *            bandwidth measured in the same run (STREAM's Copy: bytes read + written, 256 MB, every thread); the
 *            read-only bandwidth is printed beside it
 *   ./build/bench_llm [--model F] [--pairs 5] [--threads 2] [--python PY] [--json out/bench/llm.json]
 * The peer (bench/llama_peer.py) needs llama-cpp-python; without it ours is measured alone. */
#include <math.h>
#include <omp.h>

#include "cli.h"
#include "bench_util.h"
#include "io.h"
#include "llama.h"

/* STREAM's Copy over 256 MB with every thread: bytes read plus bytes written per second (best of 5); and a read-only
 * sweep of the same buffer (a sum), which is what decoding does with the weights */
static void bandwidths(double *copy, double *read) {
    size_t n = (size_t)256 << 20;
    char *a = malloc(n), *b = malloc(n);
    memset(a, 1, n), memset(b, 2, n);
    *copy = *read = 0;
    for (int r = 0; r < 5; r++) {
        double t0 = bench_now();
#pragma omp parallel
        {
            int k = omp_get_thread_num(), nt = omp_get_num_threads();
            size_t lo = n / nt * k, hi = k == nt - 1 ? n : n / nt * (k + 1);
            memcpy(b + lo, a + lo, hi - lo);
        }
        double bw = 2.0 * n / (bench_now() - t0);
        if (bw > *copy) *copy = bw;
        t0 = bench_now();
        uint64_t total = 0;
        const uint64_t *w = (const uint64_t *)a;
#pragma omp parallel for reduction(+ : total) schedule(static)
        for (size_t i = 0; i < n / 8; i++) total += w[i];
        bw = n / (bench_now() - t0);
        if (bw > *read && total) *read = bw;
    }
    free(a), free(b);
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static double ours_decode(llama *m, llama_cache *c, const int32_t *prompt, int n_prompt, int steps, float *logits) {
    c->len = 0;
    llama_forward(m, c, prompt, n_prompt, logits, false);
    int32_t tok = argmax(logits, m->cfg.vocab_size);
    double t0 = bench_now();
    for (int i = 0; i < steps; i++) {
        llama_forward(m, c, &tok, 1, logits, false);
        tok = argmax(logits, m->cfg.vocab_size);
    }
    return steps / (bench_now() - t0);
}

static double ours_prefill(llama *m, llama_cache *c, const int32_t *ids, int n, float *logits) {
    c->len = 0;
    double t0 = bench_now();
    llama_forward(m, c, ids, n, logits, false);
    return n / (bench_now() - t0);
}

static char *ids_csv(const int32_t *ids, int n) {
    char *s = malloc((size_t)n * 8 + 1), *w = s;
    for (int i = 0; i < n; i++) w += sprintf(w, i ? ",%d" : "%d", ids[i]);
    return s;
}

int main(int argc, char **argv) {
    char model[512];
    gl_find_data("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", model, sizeof model);
    const char *python = "python3", *json = NULL;
    int pairs = 5, threads = 2;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model")) snprintf(model, sizeof model, "%s", argv[i + 1]);
        else if (!strcmp(argv[i], "--pairs")) pairs = gl_flag_int("bench_llm", "--pairs", argv[i + 1], 1, 1e6);
        else if (!strcmp(argv[i], "--threads")) threads = gl_flag_int("bench_llm", "--threads", argv[i + 1], 1, 1024);
        else if (!strcmp(argv[i], "--python")) python = argv[i + 1];
        else if (!strcmp(argv[i], "--json")) json = argv[i + 1];
        else return fprintf(stderr, "bench_llm: unknown flag %s\n", argv[i]), 2;
    }
    if (pairs < 1 || pairs > 100 || threads < 1) return fprintf(stderr, "bench_llm: bad --pairs or --threads\n"), 2;
    omp_set_num_threads(threads);
    char err[512];
    llama m;
    if (!llama_load(&m, model, err, sizeof err)) return fprintf(stderr, "bench_llm: %s (make data fetches it)\n", err), 1;
    unsigned char *text;
    size_t len;
    if (!gl_read_whole_file("data/tinyshakespeare/input.txt", &text, &len, err, sizeof err))
        return fprintf(stderr, "bench_llm: %s\n", err), 1;
    int32_t *ids = NULL;
    size_t cap = 0, n_ids = gl_bpe_encode(m.tok, text, 20000, &ids, &cap);
    free(text);
    if (n_ids < 512) return fprintf(stderr, "bench_llm: the text gave only %zu tokens\n", n_ids), 1;
    enum { PROMPT = 32, STEPS = 128, PREFILL = 512 };
    llama_cache c;
    llama_cache_init(&c, &m, 1024, true);
    float *logits = malloc((size_t)m.cfg.vocab_size * sizeof(float));

    char *peer_argv[] = {(char *)python, "bench/llama_peer.py", model, NULL, NULL};
    char nthreads[16];
    snprintf(nthreads, sizeof nthreads, "%d", threads);
    peer_argv[3] = nthreads;
    bench_peer peer;
    bool have_peer = bench_peer_start(&peer, peer_argv);
    if (!have_peer) fprintf(stderr, "bench_llm: the llama.cpp peer did not start (%s bench/llama_peer.py needs llama-cpp-python): ours alone\n", python);
    printf("bench_llm: %s, %d threads, kernels %s%s%s\n", model, threads, gl_kernels_in_use(), have_peer ? ", peer " : "",
           have_peer ? peer.banner : "");
    char *decode_cmd = malloc(16 + (size_t)PROMPT * 8), *prefill_cmd = malloc(16 + (size_t)PREFILL * 8);
    char *csv = ids_csv(ids, PROMPT);
    sprintf(decode_cmd, "decode %d %s", STEPS, csv);
    free(csv);
    csv = ids_csv(ids, PREFILL);
    sprintf(prefill_cmd, "prefill %s", csv);
    free(csv);

    double bw, read_bw;
    bandwidths(&bw, &read_bw);
    double od[100], pd[100], op[100], pp[100], rd[100], rp[100];
    ours_decode(&m, &c, ids, PROMPT, 8, logits); /* warm: the mapping paged in, the arena grown */
    for (int i = 0; i < pairs; i++) {
        char line[256];
        od[i] = ours_decode(&m, &c, ids, PROMPT, STEPS, logits);
        pd[i] = have_peer && bench_peer_ask(&peer, decode_cmd, line, sizeof line) ? atof(line) : 0;
        op[i] = ours_prefill(&m, &c, ids, PREFILL, logits);
        pp[i] = have_peer && bench_peer_ask(&peer, prefill_cmd, line, sizeof line) ? atof(line) : 0;
        rd[i] = pd[i] > 0 ? od[i] / pd[i] : 0;
        rp[i] = pp[i] > 0 ? op[i] / pp[i] : 0;
        printf("  pair %d: decode %.1f vs %.1f tokens/s, prefill %.1f vs %.1f tokens/s\n", i + 1, od[i], pd[i], op[i], pp[i]);
    }
    if (have_peer) bench_peer_stop(&peer);
    double bound = bw / (double)m.weight_bytes;
    double md = bench_median(od, pairs), mp = bench_median(op, pairs);
    printf("\n%-28s %12s %12s %8s\n", "", "gradlab", "llama.cpp", "ratio");
    printf("%-28s %12.1f %12.1f %8.2f\n", "decode tokens/s (32+128)", md, have_peer ? bench_median(pd, pairs) : 0.0,
           have_peer ? bench_median(rd, pairs) : 0.0);
    printf("%-28s %12.1f %12.1f %8.2f\n", "prefill tokens/s (512)", mp, have_peer ? bench_median(pp, pairs) : 0.0,
           have_peer ? bench_median(rp, pairs) : 0.0);
    printf("weights read per token %.1f MB; copy bandwidth %.1f GB/s (read + write); bound %.0f tokens/s; decode at "
           "%.0f%% of it\n(read-only bandwidth %.1f GB/s: %.0f tokens/s, decode at %.0f%% of that)\n",
           m.weight_bytes / 1e6, bw / 1e9, bound, 100 * md / bound, read_bw / 1e9, read_bw / m.weight_bytes,
           100 * md / (read_bw / m.weight_bytes));
    gl_json_writer w;
    gl_json_writer *jw = bench_json_open(&w, json, "bench_llm");
    if (jw) {
        gl_jw_string(jw, "model", model);
        gl_jw_int(jw, "threads", threads);
        gl_jw_int(jw, "pairs", pairs);
        gl_jw_number(jw, "decode_tokens_per_s", md);
        gl_jw_number(jw, "prefill_tokens_per_s", mp);
        gl_jw_number(jw, "peer_decode_tokens_per_s", have_peer ? bench_median(pd, pairs) : NAN);
        gl_jw_number(jw, "peer_prefill_tokens_per_s", have_peer ? bench_median(pp, pairs) : NAN);
        gl_jw_number(jw, "decode_ratio_median", have_peer ? bench_median(rd, pairs) : NAN);
        gl_jw_number(jw, "prefill_ratio_median", have_peer ? bench_median(rp, pairs) : NAN);
        gl_jw_number(jw, "weight_bytes_per_token", (double)m.weight_bytes);
        gl_jw_number(jw, "copy_bandwidth_bytes_per_s", bw);
        gl_jw_number(jw, "decode_fraction_of_bound", md / bound);
        gl_jw_number(jw, "read_bandwidth_bytes_per_s", read_bw);
        gl_jw_number(jw, "decode_fraction_of_read_bound", md / (read_bw / m.weight_bytes));
    }
    bool ok = bench_json_close(jw, json, "bench_llm");
    free(decode_cmd), free(prefill_cmd), free(ids), free(logits);
    llama_cache_free(&c);
    llama_free(&m);
    return ok ? 0 : 1;
}
