/* Lab 03 - word vectors: word2vec's skip-gram with negative sampling (models/word2vec.c).
 *   1. the corpus and its vocabulary; what subsampling keeps
 *   2. training, with the loss and words per second
 *   3. nearest neighbours of chosen words
 *   4. the analogy test (questions-words.txt), per section, with its coverage
 *   5. a 2-D PCA projection of chosen word groups
 * Reads the State of the Union addresses and Moby-Dick from $GRADLAB_DATA, ../shared/data or data/ (where
 * `make data` puts them), or any text given with --corpus. Writes out/lab03/loss.png, pca.png, vectors.bin, results.json.
 * `make lab03`, or ./build/lab03 --help */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "io.h"
#include "json.h"
#include "plot.h"
#include "word2vec.h"

/* 1 once an output (a plot, results.json) could not be written: reported at once, exit status 1 at the end */
static int status;

#define MAX_CORPORA 8

static void usage(void) {
    fprintf(stderr,
            "usage: lab03 [--corpus FILE]... [--analogies FILE] [--threads 2] [--epochs 5] [--dim 100] [--window 5]\n"
            "             [--negative 5] [--min-count 5] [--sample 1e-3] [--alpha 0.025] [--seed 1] [--out out/lab03]\n"
            "Without --corpus it reads sotu/sotu.txt and mobydick/mobydick.txt from $GRADLAB_DATA, ../shared/data or\n"
            "data/ (`make data` fetches them there).\n");
}

/* the top-2 principal axes of n points (rows of x, dim each) by power iteration with deflation; writes n x 2 */
static void pca_2d(const float *x, int n, int dim, float *px, float *py) {
    double *mean = calloc((size_t)dim, sizeof *mean), *cov = calloc((size_t)dim * dim, sizeof *cov);
    double *axis[2], *tmp = malloc((size_t)dim * sizeof *tmp);
    for (int i = 0; i < n; i++)
        for (int d = 0; d < dim; d++) mean[d] += x[(size_t)i * dim + d] / n;
    for (int i = 0; i < n; i++)
        for (int a = 0; a < dim; a++)
            for (int b = 0; b < dim; b++)
                cov[a * dim + b] += (x[(size_t)i * dim + a] - mean[a]) * (x[(size_t)i * dim + b] - mean[b]);
    for (int k = 0; k < 2; k++) {
        double *v = axis[k] = malloc((size_t)dim * sizeof *v);
        for (int d = 0; d < dim; d++) v[d] = 1.0 + 0.01 * d; /* a fixed start: the plot is reproducible */
        for (int it = 0; it < 500; it++) {
            for (int a = 0; a < dim; a++) {
                tmp[a] = 0;
                for (int b = 0; b < dim; b++) tmp[a] += cov[a * dim + b] * v[b];
            }
            if (k == 1) { /* remove the first axis */
                double p = 0;
                for (int d = 0; d < dim; d++) p += tmp[d] * axis[0][d];
                for (int d = 0; d < dim; d++) tmp[d] -= p * axis[0][d];
            }
            double norm = 0;
            for (int d = 0; d < dim; d++) norm += tmp[d] * tmp[d];
            norm = sqrt(norm);
            if (norm == 0) break;
            for (int d = 0; d < dim; d++) v[d] = tmp[d] / norm;
        }
    }
    for (int i = 0; i < n; i++) {
        double p[2] = {0, 0};
        for (int k = 0; k < 2; k++)
            for (int d = 0; d < dim; d++) p[k] += (x[(size_t)i * dim + d] - mean[d]) * axis[k][d];
        px[i] = (float)p[0];
        py[i] = (float)p[1];
    }
    free(mean);
    free(cov);
    free(tmp);
    free(axis[0]);
    free(axis[1]);
}

static void show_neighbours(const float *unit, const gl_w2v_vocab *vocab, int dim, const char *word) {
    int id = gl_w2v_find(vocab, word), ids[8];
    float sims[8];
    if (id < 0) return;
    int n = gl_w2v_nearest(unit, vocab->size, dim, unit + (size_t)id * dim, &id, 1, 8, ids, sims);
    printf("  %-10s", word);
    for (int i = 0; i < n; i++) printf(" %s %.2f%s", vocab->words[ids[i]], sims[i], i + 1 < n ? "," : "\n");
}

/* "a is to b as c is to ?": the top 3 answers */
static void show_analogy(const float *unit, const gl_w2v_vocab *vocab, int dim, const char *a, const char *b,
                         const char *c) {
    int q[3] = {gl_w2v_find(vocab, a), gl_w2v_find(vocab, b), gl_w2v_find(vocab, c)}, ids[3];
    if (q[0] < 0 || q[1] < 0 || q[2] < 0) return;
    float *query = malloc((size_t)dim * sizeof *query), sims[3];
    for (int d = 0; d < dim; d++)
        query[d] = unit[(size_t)q[1] * dim + d] - unit[(size_t)q[0] * dim + d] + unit[(size_t)q[2] * dim + d];
    int n = gl_w2v_nearest(unit, vocab->size, dim, query, q, 3, 3, ids, sims);
    printf("  %s : %s = %s : ?   ", a, b, c);
    for (int i = 0; i < n; i++) printf("%s%s", vocab->words[ids[i]], i + 1 < n ? ", " : "\n");
    free(query);
}

int main(int argc, char **argv) {
    const char *corpora[MAX_CORPORA], *analogies_path = NULL, *out = "out/lab03";
    int n_corpora = 0;
    gl_w2v_config cfg = gl_w2v_defaults();
    cfg.threads = 2;
    cfg.progress = true;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) return usage(), 0;
        if (!v) return usage(), 2;
        i++;
        if (!strcmp(f, "--corpus")) {
            if (n_corpora == MAX_CORPORA) return fprintf(stderr, "lab03: at most %d --corpus files\n", MAX_CORPORA), 2;
            corpora[n_corpora++] = v;
        } else if (!strcmp(f, "--analogies")) analogies_path = v;
        else if (!strcmp(f, "--out")) out = v;
        else if (!strcmp(f, "--threads")) cfg.threads = gl_flag_int("lab03", f, v, 1, 256);
        else if (!strcmp(f, "--epochs")) cfg.epochs = gl_flag_int("lab03", f, v, 1, 1000);
        else if (!strcmp(f, "--dim")) cfg.dim = gl_flag_int("lab03", f, v, 2, 4096);
        else if (!strcmp(f, "--window")) cfg.window = gl_flag_int("lab03", f, v, 1, 100);
        else if (!strcmp(f, "--negative")) cfg.negative = gl_flag_int("lab03", f, v, 0, 100);
        else if (!strcmp(f, "--min-count")) cfg.min_count = gl_flag_int("lab03", f, v, 1, 1e9);
        else if (!strcmp(f, "--sample")) cfg.sample = (float)gl_flag_number("lab03", f, v, 0, 1);
        else if (!strcmp(f, "--alpha")) cfg.alpha = (float)gl_flag_number("lab03", f, v, 1e-6, 10);
        else if (!strcmp(f, "--seed")) cfg.seed = (uint64_t)gl_flag_int("lab03", f, v, 0, 2e9);
        else return fprintf(stderr, "lab03: unknown flag '%s'\n", f), usage(), 2;
    }
    char sotu[4096], moby[4096], qw[4096], err[8192], path[4096];
    if (!n_corpora) {
        gl_find_data("sotu/sotu.txt", sotu, sizeof sotu);
        gl_find_data("mobydick/mobydick.txt", moby, sizeof moby);
        corpora[n_corpora++] = sotu;
        corpora[n_corpora++] = moby;
    }
    if (!analogies_path) {
        gl_find_data("analogy/questions-words.txt", qw, sizeof qw);
        analogies_path = qw;
    }

    char *text;
    size_t len;
    if (!gl_w2v_read_corpora(corpora, n_corpora, &text, &len, err, sizeof err)) {
        fprintf(stderr, "lab03: %s\n", err);
        fprintf(stderr, "lab03: `make data` fetches the corpora (or set GRADLAB_DATA, or pass --corpus FILE)\n");
        return 1;
    }
    unsigned char *questions = NULL;
    size_t questions_len = 0;
    if (!gl_read_whole_file(analogies_path, &questions, &questions_len, err, sizeof err)) {
        fprintf(stderr, "lab03: %s (the analogy test set: `make data` fetches it, or pass --analogies FILE)\n", err);
        return 1;
    }

    printf("Lab 03: word2vec, skip-gram with negative sampling\ncorpus:");
    for (int i = 0; i < n_corpora; i++) printf(" %s", corpora[i]);
    printf("\n\n1. The corpus\n");
    gl_w2v_vocab vocab;
    gl_w2v_corpus corpus;
    if (!gl_w2v_build(text, len, cfg.min_count, cfg.max_sentence, &vocab, &corpus, err, sizeof err)) {
        fprintf(stderr, "lab03: %s\n", err);
        return 1;
    }
    free(text);
    double kept = 0;
    for (int i = 0; i < vocab.size; i++) kept += vocab.counts[i] * gl_w2v_keep_prob(vocab.counts[i], vocab.total, cfg.sample);
    printf("  %lld words; %d distinct words occur %d+ times and make %.1f%% of the text (%lld training words,\n"
           "  %lld sentences). Subsampling (t = %g) keeps %.1f%% of the training words on average:\n",
           (long long)corpus.raw_words, vocab.size, cfg.min_count, 100.0 * vocab.total / corpus.raw_words,
           (long long)vocab.total, (long long)corpus.n_sentences, cfg.sample, 100 * kept / vocab.total);
    for (int i = 0; i < 6 && i < vocab.size; i++)
        printf("    %-6s %7lld times (%.2f%%), kept with probability %.3f\n", vocab.words[i], (long long)vocab.counts[i],
               100.0 * vocab.counts[i] / vocab.total, gl_w2v_keep_prob(vocab.counts[i], vocab.total, cfg.sample));

    printf("\n2. Training: %d dimensions, window %d, %d negatives, %d epochs, alpha %g -> 0, %d thread%s\n", cfg.dim,
           cfg.window, cfg.negative, cfg.epochs, cfg.alpha, cfg.threads, cfg.threads > 1 ? "s" : "");
    gl_w2v_model model;
    gl_w2v_stats stats;
    if (!gl_w2v_train(&model, &vocab, &corpus, &cfg, &stats, err, sizeof err)) {
        fprintf(stderr, "lab03: %s\n", err);
        return 1;
    }
    printf("  %.1f s, %.0f words/s, %lld (context, word) pairs; loss per pair %.3f after the first 1%%, %.3f at the "
           "end\n", stats.seconds, stats.words_per_second, (long long)stats.pairs, stats.curve_loss[0], stats.final_loss);
    float *unit = gl_w2v_unit_vectors(&model);

    printf("\n3. Nearest neighbours (cosine similarity)\n");
    const char *probe[] = {"whale", "ship", "war", "peace", "freedom", "congress", "tax", "economy", "france", "monday", "god", "ten"};
    for (size_t i = 0; i < sizeof probe / sizeof *probe; i++) show_neighbours(unit, &vocab, model.dim, probe[i]);

    printf("\n4. Analogies (%s): the nearest word to b - a + c\n", analogies_path);
    show_analogy(unit, &vocab, model.dim, "man", "king", "woman");
    show_analogy(unit, &vocab, model.dim, "france", "paris", "england");
    show_analogy(unit, &vocab, model.dim, "good", "better", "bad");
    show_analogy(unit, &vocab, model.dim, "go", "went", "take");
    gl_w2v_analogies an;
    if (!gl_w2v_eval_analogies(unit, &vocab, model.dim, (const char *)questions, questions_len, 0, &an, err, sizeof err)) {
        fprintf(stderr, "lab03: %s\n", err);
        return 1;
    }
    printf("\n  %-28s %9s %9s %9s\n", "section", "questions", "covered", "accuracy");
    for (int i = 0; i < an.n_sections; i++) {
        gl_w2v_section *s = &an.sections[i];
        printf("  %-28s %9d %9d ", s->name, s->total, s->covered);
        if (s->covered) printf("%8.1f%%\n", 100.0 * s->correct / s->covered);
        else printf("%9s\n", "-");
    }
    double acc = an.covered ? (double)an.correct / an.covered : 0;
    printf("  %-28s %9d %9d %8.1f%%\n", "all", an.total, an.covered, 100 * acc);
    printf("  semantic %.1f%% of %d, syntactic %.1f%% of %d; coverage %.1f%% of the questions (the rest name a word "
           "outside the vocabulary)\n",
           an.semantic_covered ? 100.0 * an.semantic_correct / an.semantic_covered : 0, an.semantic_covered,
           an.syntactic_covered ? 100.0 * an.syntactic_correct / an.syntactic_covered : 0, an.syntactic_covered,
           100.0 * an.covered / an.total);

    mkdir("out", 0755);
    mkdir(out, 0755);
    /* 5. the projection */
    static const char *groups[][12] = {
        {"countries", "france", "germany", "russia", "japan", "mexico", "england", "spain", "italy", "china", "cuba", NULL},
        {"capitals", "paris", "berlin", "moscow", "tokyo", "london", "madrid", "rome", "havana", NULL},
        {"numbers", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", NULL},
        {"family", "father", "mother", "son", "daughter", "brother", "sister", "husband", "wife", NULL},
        {"the sea", "whale", "ship", "sea", "ocean", "boat", "harpoon", "sail", "captain", "whales", NULL},
        {"the budget", "tax", "taxes", "budget", "deficit", "inflation", "revenue", "debt", "spending", NULL},
    };
    enum { N_GROUPS = sizeof groups / sizeof *groups };
    float pts[N_GROUPS * 11 * 128], px[N_GROUPS * 11], py[N_GROUPS * 11];
    const char *labels[N_GROUPS * 11];
    int n_pts = 0, group_start[N_GROUPS + 1];
    for (int g = 0; g < N_GROUPS; g++) {
        group_start[g] = n_pts;
        for (int w = 1; groups[g][w] && model.dim <= 128; w++) {
            int id = gl_w2v_find(&vocab, groups[g][w]);
            if (id < 0) continue;
            memcpy(pts + (size_t)n_pts * model.dim, unit + (size_t)id * model.dim, (size_t)model.dim * sizeof(float));
            labels[n_pts++] = groups[g][w];
        }
    }
    group_start[N_GROUPS] = n_pts;
    bool plotted = false;
    if (n_pts >= 3) {
        pca_2d(pts, n_pts, model.dim, px, py);
        gl_series s[N_GROUPS];
        for (int g = 0; g < N_GROUPS; g++)
            s[g] = (gl_series){groups[g][0], px + group_start[g], py + group_start[g], group_start[g + 1] - group_start[g],
                               true, labels + group_start[g]};
        gl_chart ch = {.title = "Word vectors on their first two principal axes", .xlabel = "PC 1",
                       .ylabel = "PC 2", .width = 1000, .height = 700};
        snprintf(path, sizeof path, "%s/pca.png", out);
        plotted = gl_plot_lines(path, &ch, s, N_GROUPS, err, sizeof err);
        if (!plotted) fprintf(stderr, "lab03: %s\n", err), status = 1;
    }
    printf("\n5. The 2-D projection of %d words in %d groups: %s/pca.png\n", n_pts, N_GROUPS, out);

    float prog[102];
    for (int i = 0; i < stats.n_curve; i++) prog[i] = 100 * stats.curve_progress[i];
    gl_series ls[1] = {{"loss per (context, word) pair", prog, stats.curve_loss, stats.n_curve, false, NULL}};
    gl_chart lc = {.title = "Skip-gram negative-sampling loss", .xlabel = "training progress (%)",
                   .ylabel = "mean loss over each 1%"};
    snprintf(path, sizeof path, "%s/loss.png", out);
    if (!gl_plot_lines(path, &lc, ls, 1, err, sizeof err)) fprintf(stderr, "lab03: %s\n", err), status = 1;
    snprintf(path, sizeof path, "%s/vectors.bin", out);
    if (!gl_w2v_save(path, &vocab, model.in, model.dim, model.stride, err, sizeof err)) fprintf(stderr, "lab03: %s\n", err), status = 1;

    snprintf(path, sizeof path, "%s/results.json", out);
    gl_json_writer js;
    if (gl_jw_open(&js, path)) {
        gl_jw_object(&js, NULL);
        gl_jw_int(&js, "corpus_words", (long long)corpus.raw_words);
        gl_jw_int(&js, "vocab_size", vocab.size);
        gl_jw_int(&js, "training_words", (long long)vocab.total);
        gl_jw_int(&js, "epochs", cfg.epochs);
        gl_jw_int(&js, "threads", cfg.threads);
        gl_jw_number(&js, "seconds", stats.seconds);
        gl_jw_number(&js, "words_per_second", stats.words_per_second);
        gl_jw_number(&js, "final_loss", stats.final_loss);
        gl_jw_int(&js, "analogy_questions", an.total);
        gl_jw_int(&js, "analogy_covered", an.covered);
        gl_jw_number(&js, "analogy_accuracy", acc);
        gl_jw_number(&js, "semantic_accuracy", an.semantic_covered ? (double)an.semantic_correct / an.semantic_covered : NAN);
        gl_jw_number(&js, "syntactic_accuracy", an.syntactic_covered ? (double)an.syntactic_correct / an.syntactic_covered : NAN);
        gl_jw_object(&js, "sections");
        for (int i = 0; i < an.n_sections; i++) {
            gl_jw_object(&js, an.sections[i].name);
            gl_jw_int(&js, "questions", an.sections[i].total);
            gl_jw_int(&js, "covered", an.sections[i].covered);
            gl_jw_int(&js, "correct", an.sections[i].correct);
            gl_jw_end(&js);
        }
        gl_jw_end(&js);
        gl_jw_end(&js);
    }
    if (!gl_jw_close(&js)) fprintf(stderr, "lab03: cannot write %s\n", path), status = 1;
    printf("wrote %s/loss.png, %spca.png, vectors.bin (word2vec binary format), results.json\n", out, plotted ? "" : "(no) ");
    gl_w2v_analogies_free(&an);
    free(unit);
    free(questions);
    gl_w2v_model_free(&model);
    gl_w2v_vocab_free(&vocab);
    gl_w2v_corpus_free(&corpus);
    gl_stdout_check("lab03");
    return status;
}
