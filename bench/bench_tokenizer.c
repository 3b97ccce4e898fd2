/* bench-tokenizer: GPT-2 encode throughput (MB/s, one thread) of ours, tiktoken and Hugging Face tokenizers on
 * the same texts, alternating ours and the peers; parity of the ids with tiktoken; time to train a 4,096-token
 * vocabulary on tiny shakespeare. Table on stdout, figures in out/bench/tokenizer.json. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "bench_util.h"
#include "bpe.h"
#include "io.h"

/* seconds for the peer to encode path (NAN if it has no such peer); ids land in ids_out */
static double peer_encode(bench_peer *p, const char *name, const char *path, const char *ids_out, size_t *n_ids) {
    char line[128], cmd[4096];
    snprintf(cmd, sizeof cmd, "encode %s %s %s", name, path, ids_out);
    if (!bench_peer_ask(p, cmd, line, sizeof line)) return NAN;
    double secs = NAN;
    sscanf(line, "%lf %zu", &secs, n_ids);
    return secs;
}

/* how many of our ids equal the peer's (written as uint16) */
static bool same_ids(const int32_t *ids, size_t n, const char *path) {
    unsigned char *buf;
    size_t len;
    char err[256];
    if (!gl_read_whole_file(path, &buf, &len, err, sizeof err)) return false;
    bool same = len == 2 * n;
    for (size_t i = 0; same && i < n; i++) same = ids[i] == (buf[2 * i] | buf[2 * i + 1] << 8);
    free(buf);
    return same;
}

int main(int argc, char **argv) {
    int rounds = 5;
    const char *python = "python3", *json = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = gl_flag_int("bench_tokenizer", "--rounds", argv[++i], 1, 1e6);
        else if (!strcmp(argv[i], "--python") && i + 1 < argc) python = argv[++i];
        else if (!strcmp(argv[i], "--json") && i + 1 < argc) json = argv[++i];
        else {
            fprintf(stderr, "usage: bench_tokenizer [--rounds 5] [--python python3] [--json PATH]\n");
            return 2;
        }
    }
    if (rounds < 1 || rounds > 50) rounds = 5;
    signal(SIGPIPE, SIG_IGN);
    char err[512];
    gl_bpe *t = gl_bpe_load_gpt2("tokenizer/gpt2/encoder.json", "tokenizer/gpt2/vocab.bpe", err, sizeof err);
    if (!t) {
        fprintf(stderr, "bench_tokenizer: %s\n", err);
        return 1;
    }
    bench_peer p;
    char *peer_argv[] = {(char *)python, "bench/tokenizer_peer.py", "tokenizer/gpt2/encoder.json", "tokenizer/gpt2/vocab.bpe", NULL};
    bool have_peer = bench_peer_start(&p, peer_argv);
    printf("gradlab tokenizer benchmark: GPT-2 encode, one thread, median of %d alternating rounds\n", rounds);
    printf("peers: %s\n\n", have_peer ? p.banner : "none (pip install tiktoken tokenizers)");
    const char *root = getenv("GRADLAB_DATA") ? getenv("GRADLAB_DATA") : "../shared/data";
    char moby[512], sotu[512];
    snprintf(moby, sizeof moby, "%s/mobydick/mobydick.txt", root);
    snprintf(sotu, sizeof sotu, "%s/sotu/sotu.txt", root);
    const char *files[3] = {"data/tinyshakespeare/input.txt", moby, sotu};
    char tmp_ids[128];
    snprintf(tmp_ids, sizeof tmp_ids, "/tmp/gradlab_bench_tok_%d.u16", (int)getpid());
    printf("%-34s %8s %10s %10s %10s %8s %8s %s\n", "text", "MB", "ours MB/s", "tiktoken", "HF tok", "vs tik",
           "vs HF", "ids equal to tiktoken / HF");
    gl_json_writer jw, *js = bench_json_open(&jw, json, "bench_tokenizer");
    if (js) {
        gl_jw_int(js, "rounds", rounds);
        gl_jw_string(js, "peers", have_peer ? p.banner : "");
        gl_jw_array(js, "results");
    }
    int parity_texts = 0, parity_equal = 0;
    for (int fi = 0; fi < 3; fi++) {
        unsigned char *text;
        size_t len;
        if (!gl_read_whole_file(files[fi], &text, &len, err, sizeof err)) {
            printf("%-34s (skipped: %s)\n", files[fi], err);
            continue;
        }
        double ours[50], tik[50], hf[50], r_tik[50], r_hf[50];
        int32_t *ids = NULL;
        size_t cap = 0, n = 0, n_peer = 0;
        bool eq_tik = false, eq_hf = false;
        for (int r = 0; r < rounds; r++) {
            gl_bpe_clear_cache(t);
            double t0 = bench_now();
            n = gl_bpe_encode(t, text, len, &ids, &cap);
            ours[r] = bench_now() - t0;
            tik[r] = have_peer ? peer_encode(&p, "tiktoken", files[fi], tmp_ids, &n_peer) : NAN;
            if (r == 0 && !isnan(tik[r])) eq_tik = same_ids(ids, n, tmp_ids);
            hf[r] = have_peer ? peer_encode(&p, "hf", files[fi], tmp_ids, &n_peer) : NAN;
            if (r == 0 && !isnan(hf[r])) eq_hf = same_ids(ids, n, tmp_ids);
            r_tik[r] = tik[r] / ours[r];
            r_hf[r] = hf[r] / ours[r];
        }
        double mb = len / 1e6, mo = mb / bench_median(ours, rounds), mt = mb / bench_median(tik, rounds),
               mh = mb / bench_median(hf, rounds), rt = bench_median(r_tik, rounds), rh = bench_median(r_hf, rounds);
        const char *name = strrchr(files[fi], '/') ? strrchr(files[fi], '/') + 1 : files[fi];
        printf("%-34s %8.2f %10.1f %10.1f %10.1f %8.2f %8.2f %s / %s\n", name, mb, mo, mt, mh, rt, rh,
               isnan(tik[0]) ? "-" : eq_tik ? "yes" : "NO", isnan(hf[0]) ? "-" : eq_hf ? "yes" : "NO");
        if (!isnan(tik[0])) parity_texts++, parity_equal += eq_tik;
        if (js) { /* peer figures are null without the peers */
            gl_jw_object(js, NULL);
            gl_jw_string(js, "text", name);
            gl_jw_int(js, "bytes", (long long)len);
            gl_jw_int(js, "tokens", (long long)n);
            gl_jw_number(js, "ours_mb_s", mo);
            gl_jw_number(js, "tiktoken_mb_s", mt);
            gl_jw_number(js, "hf_mb_s", mh);
            gl_jw_number(js, "ratio_vs_tiktoken", rt);
            gl_jw_number(js, "ratio_vs_hf", rh);
            gl_jw_bool(js, "ids_equal_tiktoken", eq_tik);
            gl_jw_bool(js, "ids_equal_hf", eq_hf);
            gl_jw_end(js);
        }
        free(ids);
        free(text);
    }
    remove(tmp_ids);
    printf("\ntexts whose ids equal tiktoken's exactly: %d of %d\n", parity_equal, parity_texts);
    /* training time */
    unsigned char *text;
    size_t len;
    double tt[5];
    if (gl_read_whole_file("data/tinyshakespeare/input.txt", &text, &len, err, sizeof err)) {
        const char *sp[1] = {"<|endoftext|>"};
        for (int r = 0; r < 5; r++) {
            double t0 = bench_now();
            gl_bpe *v = gl_bpe_train(text, len, 4096, sp, 1, 0, err, sizeof err);
            tt[r] = bench_now() - t0;
            gl_bpe_free(v);
        }
        printf("training a 4,096-token vocabulary on tiny shakespeare (1.1 MB): %.3f s (median of 5)\n",
               bench_median(tt, 5));
        if (js) {
            gl_jw_object(js, NULL);
            gl_jw_int(js, "train_vocab", 4096);
            gl_jw_number(js, "train_seconds", bench_median(tt, 5));
            gl_jw_end(js);
        }
        free(text);
    }
    bench_json_close(js, json, "bench_tokenizer");
    if (have_peer) bench_peer_stop(&p);
    gl_bpe_free(t);
    return 0;
}
