/* bench-word2vec: our skip-gram trainer against gensim's on the same corpus with the same settings, alternating
 * (ours, gensim, ours, gensim, ...). Speed is training words (vocabulary words x epochs) per wall-clock second of
 * training, vocabulary building excluded on both sides; the ratio reported is the median of the pairwise ratios.
 * Quality is the analogy accuracy (questions-words.txt, questions inside the vocabulary) of every run's vectors,
 * scored by our evaluator and, for the last run of each, by gensim's evaluate_word_analogies as a cross-check.
 *   ./build/bench_word2vec [--pairs 3] [--threads 2] [--epochs 5] [--python python3] [--json FILE] [--corpus F]... */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench_util.h"
#include "cli.h"
#include "io.h"
#include "word2vec.h"

static double accuracy_of(const char *path, const char *questions, size_t qlen, int *covered) {
    gl_w2v_vocab v;
    float *vec;
    int dim;
    char err[512];
    if (!gl_w2v_load(path, &v, &vec, &dim, err, sizeof err)) {
        fprintf(stderr, "bench_word2vec: %s\n", err);
        return NAN;
    }
    for (int i = 0; i < v.size; i++) { /* unit length, as the evaluator expects */
        double n = 0;
        for (int d = 0; d < dim; d++) n += (double)vec[(size_t)i * dim + d] * vec[(size_t)i * dim + d];
        for (int d = 0; d < dim; d++) vec[(size_t)i * dim + d] = n > 0 ? (float)(vec[(size_t)i * dim + d] / sqrt(n)) : 0;
    }
    gl_w2v_analogies an;
    double acc = NAN;
    if (gl_w2v_eval_analogies(vec, &v, dim, questions, qlen, 0, &an, err, sizeof err)) {
        acc = an.covered ? (double)an.correct / an.covered : 0;
        *covered = an.covered;
        gl_w2v_analogies_free(&an);
    }
    free(vec);
    gl_w2v_vocab_free(&v);
    return acc;
}

int main(int argc, char **argv) {
    const char *python = "python3", *json = NULL, *corpora[8];
    int n_corpora = 0, pairs = 3;
    gl_w2v_config cfg = gl_w2v_defaults();
    cfg.threads = 2;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--pairs")) pairs = gl_flag_int("bench_word2vec", argv[i], argv[i + 1], 1, 100);
        else if (!strcmp(argv[i], "--threads")) cfg.threads = gl_flag_int("bench_word2vec", argv[i], argv[i + 1], 1, 256);
        else if (!strcmp(argv[i], "--epochs")) cfg.epochs = gl_flag_int("bench_word2vec", argv[i], argv[i + 1], 1, 100);
        else if (!strcmp(argv[i], "--python")) python = argv[i + 1];
        else if (!strcmp(argv[i], "--json")) json = argv[i + 1];
        else if (!strcmp(argv[i], "--corpus") && n_corpora < 8) corpora[n_corpora++] = argv[i + 1];
        else return fprintf(stderr, "bench_word2vec: unknown flag %s\n", argv[i]), 2;
    }
    char sotu[4096], moby[4096], qpath[4096], err[4096];
    if (!n_corpora) {
        gl_find_data("sotu/sotu.txt", sotu, sizeof sotu);
        gl_find_data("mobydick/mobydick.txt", moby, sizeof moby);
        corpora[n_corpora++] = sotu;
        corpora[n_corpora++] = moby;
    }
    gl_find_data("analogy/questions-words.txt", qpath, sizeof qpath);
    char *text;
    size_t len;
    if (!gl_w2v_read_corpora(corpora, n_corpora, &text, &len, err, sizeof err))
        return fprintf(stderr, "bench_word2vec: %s (set GRADLAB_DATA, or `make data`)\n", err), 1;
    unsigned char *questions;
    size_t qlen;
    if (!gl_read_whole_file(qpath, &questions, &qlen, err, sizeof err)) return fprintf(stderr, "bench_word2vec: %s\n", err), 1;
    gl_w2v_vocab vocab;
    gl_w2v_corpus corpus;
    if (!gl_w2v_build(text, len, cfg.min_count, cfg.max_sentence, &vocab, &corpus, err, sizeof err))
        return fprintf(stderr, "bench_word2vec: %s\n", err), 1;
    free(text);

    /* the training stream as text, so the peer sees exactly our sentences and builds the same vocabulary */
    mkdir("out", 0755);
    mkdir("out/bench", 0755);
    const char *corpus_path = "out/bench/word2vec_corpus.txt";
    gl_atomic a;
    FILE *f = gl_atomic_open(&a, corpus_path);
    if (!f) return fprintf(stderr, "bench_word2vec: cannot write %s\n", corpus_path), 1;
    for (int64_t s = 0; s < corpus.n_sentences; s++) {
        for (int64_t i = corpus.sentence_start[s]; i < corpus.sentence_start[s + 1]; i++)
            fprintf(f, "%s%c", vocab.words[corpus.ids[i]], i + 1 < corpus.sentence_start[s + 1] ? ' ' : '\n');
    }
    if (!gl_atomic_commit(&a)) return fprintf(stderr, "bench_word2vec: cannot write %s\n", corpus_path), 1;

    char *peer_argv[] = {(char *)python, "bench/word2vec_peer.py", NULL};
    bench_peer peer;
    bool have_peer = bench_peer_start(&peer, peer_argv) && strcmp(peer.banner, "none") != 0;
    printf("bench-word2vec: skip-gram, %d dims, window %d, %d negatives, sample %g, min count %d, %d epochs, "
           "%d threads\ncorpus: %lld training words per epoch, %d words in the vocabulary, %lld sentences\n"
           "peer: %s\n\n", cfg.dim, cfg.window, cfg.negative, cfg.sample, cfg.min_count, cfg.epochs, cfg.threads,
           (long long)vocab.total, vocab.size, (long long)corpus.n_sentences,
           have_peer ? peer.banner : "gensim not found (pip install gensim); ours only");

    double *ours = calloc((size_t)pairs, sizeof *ours), *theirs = calloc((size_t)pairs, sizeof *theirs);
    double *ratio = calloc((size_t)pairs, sizeof *ratio), *acc_ours = calloc((size_t)pairs, sizeof *acc_ours);
    double *acc_theirs = calloc((size_t)pairs, sizeof *acc_theirs);
    int cov_ours = 0, cov_theirs = 0;
    char cmd[8192], line[512];
    for (int p = 0; p < pairs; p++) {
        for (int side = 0; side < 2; side++) {
            bool our_turn = (side == 0) == (p % 2 == 0); /* ABBA order: neither side always goes first */
            if (our_turn) {
                gl_w2v_model m;
                gl_w2v_stats st;
                cfg.seed = (uint64_t)p + 1;
                if (!gl_w2v_train(&m, &vocab, &corpus, &cfg, &st, err, sizeof err))
                    return fprintf(stderr, "bench_word2vec: %s\n", err), 1;
                ours[p] = st.words_per_second;
                gl_w2v_save("out/bench/word2vec_ours.bin", &vocab, m.in, m.dim, m.stride, err, sizeof err);
                gl_w2v_model_free(&m);
                acc_ours[p] = accuracy_of("out/bench/word2vec_ours.bin", (const char *)questions, qlen, &cov_ours);
            } else if (have_peer) {
                snprintf(cmd, sizeof cmd, "train %s %d %d %d %d %d %d %g %g %d out/bench/word2vec_gensim.bin",
                         corpus_path, cfg.epochs, cfg.threads, cfg.dim, cfg.window, cfg.negative, cfg.min_count,
                         cfg.sample, cfg.alpha, p + 1);
                double secs = NAN;
                long long words = 0;
                int vsize = 0;
                if (bench_peer_ask(&peer, cmd, line, sizeof line)) sscanf(line, "%lf %lld %d", &secs, &words, &vsize);
                if (words != vocab.total || vsize != vocab.size)
                    fprintf(stderr, "bench_word2vec: gensim's vocabulary differs (%d words, %lld training words)\n",
                            vsize, words);
                theirs[p] = (double)words * cfg.epochs / secs;
                acc_theirs[p] = accuracy_of("out/bench/word2vec_gensim.bin", (const char *)questions, qlen, &cov_theirs);
            }
        }
        ratio[p] = have_peer ? ours[p] / theirs[p] : NAN;
        printf("  pair %d: ours %7.0f words/s (analogies %5.2f%%)   gensim %7.0f words/s (analogies %5.2f%%)   "
               "ratio %.2f\n", p + 1, ours[p], 100 * acc_ours[p], theirs[p], 100 * acc_theirs[p], ratio[p]);
        fflush(stdout);
    }
    double g_ours = NAN, g_theirs = NAN;
    int gc_ours = 0, gc_theirs = 0;
    if (have_peer) { /* the last run of each side, scored by gensim */
        snprintf(cmd, sizeof cmd, "eval out/bench/word2vec_ours.bin %s", qpath);
        if (bench_peer_ask(&peer, cmd, line, sizeof line)) sscanf(line, "%lf %d", &g_ours, &gc_ours);
        snprintf(cmd, sizeof cmd, "eval out/bench/word2vec_gensim.bin %s", qpath);
        if (bench_peer_ask(&peer, cmd, line, sizeof line)) sscanf(line, "%lf %d", &g_theirs, &gc_theirs);
        bench_peer_stop(&peer);
    }
    double med_ours = bench_median(ours, pairs), med_theirs = have_peer ? bench_median(theirs, pairs) : NAN;
    double med_ratio = bench_median(ratio, pairs);
    double ma = bench_median(acc_ours, pairs), mt = have_peer ? bench_median(acc_theirs, pairs) : NAN;
    printf("\nwords/s: ours %.0f, gensim %.0f (medians); median of pairwise ratios ours/gensim: %.2f\n", med_ours,
           med_theirs, med_ratio);
    printf("analogy accuracy (median of runs, our evaluator): ours %.2f%% of %d, gensim %.2f%% of %d; difference "
           "%+.2f points\n", 100 * ma, cov_ours, 100 * mt, cov_theirs, 100 * (ma - mt));
    if (have_peer)
        printf("gensim's evaluator on the last runs: ours %.2f%% of %d, gensim %.2f%% of %d\n", 100 * g_ours, gc_ours,
               100 * g_theirs, gc_theirs);
    gl_json_writer jw, *js = bench_json_open(&jw, json, "bench_word2vec");
    if (js) { /* figures without the peer are null */
        gl_jw_int(js, "threads", cfg.threads);
        gl_jw_int(js, "epochs", cfg.epochs);
        gl_jw_int(js, "training_words", (long long)vocab.total);
        gl_jw_int(js, "vocab_size", vocab.size);
        gl_jw_string(js, "peer", have_peer ? peer.banner : "none");
        gl_jw_array(js, "ours_words_per_second");
        for (int p = 0; p < pairs; p++) gl_jw_number(js, NULL, ours[p]);
        gl_jw_end(js);
        gl_jw_array(js, "gensim_words_per_second");
        for (int p = 0; p < pairs; p++) gl_jw_number(js, NULL, theirs[p]);
        gl_jw_end(js);
        gl_jw_number(js, "median_ratio", med_ratio);
        gl_jw_number(js, "ours_analogy_accuracy", ma);
        gl_jw_number(js, "gensim_analogy_accuracy", mt);
        gl_jw_int(js, "analogy_covered", cov_ours);
        gl_jw_number(js, "gensim_evaluator_ours", g_ours);
        gl_jw_number(js, "gensim_evaluator_gensim", g_theirs);
        gl_jw_end(js);
    }
    bench_json_close(js, json, "bench_word2vec");
    gl_w2v_vocab_free(&vocab);
    gl_w2v_corpus_free(&corpus);
    free(questions);
    return 0;
}
