/* word2vec (models/word2vec.c and the sgns_step kernel): words, vocabulary, subsampling, the noise table, the
 * update against finite differences, fast kernels against the reference, analogies, the vector file, training. */
#include <sys/stat.h>

#include "io.h"
#include "kernels.h"
#include "testutil.h"
#include "word2vec.h"

typedef struct {
    char out[512];
} word_log;

static void log_word(void *ctx, const char *w, int len) {
    word_log *l = ctx;
    strcat(l->out, len ? w : "|");
    if (len) strcat(l->out, " ");
}

Test(word2vec, words_are_lower_case_letter_and_digit_runs_and_lines_end_sentences) {
    word_log l = {{0}};
    const char *text = "Hello, World!\nIt's 42 \xe2\x80\x94 caf\xc3\xa9\r\n\nUSA";
    gl_w2v_words(text, strlen(text), log_word, &l);
    cr_assert_str_eq(l.out, "hello world |it s 42 caf ||usa |");
}

Test(word2vec, vocabulary_keeps_frequent_words_by_count_and_drops_the_rest) {
    const char *text = "b a b c b a\nd a b\ne";
    gl_w2v_vocab v;
    gl_w2v_corpus c;
    char err[256];
    cr_assert(gl_w2v_build(text, strlen(text), 2, 1000, &v, &c, err, sizeof err), "%s", err);
    cr_assert_eq(v.size, 2);
    cr_assert_str_eq(v.words[0], "b");
    cr_assert_str_eq(v.words[1], "a");
    cr_assert(v.counts[0] == 4 && v.counts[1] == 3 && v.total == 7);
    cr_assert_eq(gl_w2v_find(&v, "a"), 1);
    cr_assert_eq(gl_w2v_find(&v, "c"), -1);
    cr_assert(c.raw_words == 10 && c.n == 7);
    int32_t want[7] = {0, 1, 0, 0, 1, 1, 0};
    for (int i = 0; i < 7; i++) cr_assert_eq(c.ids[i], want[i]);
    /* "b a b c b a" | "d a b" | "e" (no vocabulary word: no sentence) */
    cr_assert_eq(c.n_sentences, 2);
    cr_assert(c.sentence_start[1] == 5 && c.sentence_start[2] == 7);
    gl_w2v_vocab_free(&v);
    gl_w2v_corpus_free(&c);

    /* sentences are cut at max_sentence vocabulary words */
    cr_assert(gl_w2v_build(text, strlen(text), 2, 2, &v, &c, err, sizeof err));
    cr_assert_eq(c.n_sentences, 4);
    cr_assert(c.sentence_start[1] == 2 && c.sentence_start[2] == 4 && c.sentence_start[3] == 5 && c.sentence_start[4] == 7);
    gl_w2v_vocab_free(&v);
    gl_w2v_corpus_free(&c);
}

Test(word2vec, empty_or_too_rare_corpus_is_a_clear_error) {
    gl_w2v_vocab v;
    gl_w2v_corpus c;
    char err[256];
    cr_assert_not(gl_w2v_build(" ,.;\n\n", 6, 5, 1000, &v, &c, err, sizeof err));
    cr_assert(strstr(err, "no words"), "%s", err);
    cr_assert_not(gl_w2v_build("one two two", 11, 5, 1000, &v, &c, err, sizeof err));
    cr_assert(strstr(err, "5 times") && strstr(err, "3 words"), "%s", err);
}

Test(word2vec, subsampling_keep_probability_is_word2vec_c_formula) {
    /* t = sample * total = 1000: keep = (sqrt(count/t) + 1) * t / count */
    cr_assert_float_eq(gl_w2v_keep_prob(10000, 1000000, 1e-3), (sqrt(10.0) + 1) / 10, 1e-12);
    cr_assert_float_eq(gl_w2v_keep_prob(4000, 1000000, 1e-3), (2.0 + 1) / 4, 1e-12);
    cr_assert_float_eq(gl_w2v_keep_prob(1000, 1000000, 1e-3), 1.0, 1e-12); /* (1 + 1) * 1 = 2, capped */
    cr_assert_float_eq(gl_w2v_keep_prob(10000, 1000000, 0), 1.0, 1e-12);
}

Test(word2vec, noise_table_draws_count_to_the_three_quarters) {
    int64_t counts[6] = {5000, 900, 120, 33, 7, 5};
    gl_w2v_noise nz;
    cr_assert(gl_w2v_noise_init(&nz, counts, 6, 0.75));
    double z = 0, p[6];
    for (int i = 0; i < 6; i++) z += pow((double)counts[i], 0.75);
    for (int i = 0; i < 6; i++) {
        p[i] = pow((double)counts[i], 0.75) / z;
        cr_assert(fabs(gl_w2v_noise_prob(&nz, i) - p[i]) < 1e-6, "word %d: table %.8f, exact %.8f", i,
                  gl_w2v_noise_prob(&nz, i), p[i]);
    }
    /* and the draws follow it: 10^6 draws, each frequency within 5 standard deviations */
    gl_rng r;
    gl_rng_seed(&r, 3);
    int hits[6] = {0};
    const int n = 1000000;
    for (int k = 0; k < n; k++) hits[gl_w2v_noise_draw(&nz, gl_rng_u64(&r))]++;
    for (int i = 0; i < 6; i++) {
        double sd = sqrt(n * p[i] * (1 - p[i]));
        cr_assert(fabs(hits[i] - n * p[i]) < 5 * sd, "word %d drawn %d times, expected %.0f", i, hits[i], n * p[i]);
    }
    gl_w2v_noise_free(&nz);
}

/* the loss of one (context, word) pair with its negatives, in double */
static double pair_loss(int dim, const double *v, double u[][16], int n_out) {
    double loss = 0;
    for (int j = 0; j < n_out; j++) {
        double f = 0;
        for (int d = 0; d < dim; d++) f += v[d] * u[j][d];
        loss += j == 0 ? log1p(exp(-f)) : log1p(exp(f)); /* -log s(f), -log s(-f) */
    }
    return loss;
}

/* one step of every kernel level is -alpha times the gradient (central differences in double) */
Test(word2vec, sgns_step_is_a_gradient_step_on_the_pair_loss) {
    enum { DIM = 13, NOUT = 4 };
    gl_rng r;
    gl_rng_seed(&r, 11);
    double v[DIM], u[NOUT][16];
    for (int d = 0; d < DIM; d++) v[d] = gl_rng_normal(&r);
    for (int j = 0; j < NOUT; j++)
        for (int d = 0; d < DIM; d++) u[j][d] = 0.7 * gl_rng_normal(&r);
    for (int isa = 0; isa < GL_ISA_COUNT; isa++) {
        const gl_kernels *k = gl_kern_for((gl_isa)isa);
        if (!k) continue;
        float vf[DIM], uf[NOUT][DIM], acc[DIM], *outs[NOUT];
        for (int d = 0; d < DIM; d++) vf[d] = (float)v[d];
        for (int j = 0; j < NOUT; j++) {
            for (int d = 0; d < DIM; d++) uf[j][d] = (float)u[j][d];
            outs[j] = uf[j];
        }
        const float alpha = 0.01f;
        float loss = k->sgns_step(DIM, vf, outs, NOUT, alpha, acc, 1);
        cr_assert(fabs(loss - pair_loss(DIM, v, u, NOUT)) < 1e-5, "%s: loss %.7f, exact %.7f", k->name, loss,
                  pair_loss(DIM, v, u, NOUT));
        const double h = 1e-6;
        for (int d = 0; d < DIM; d++) {
            double vp[DIM], vm[DIM];
            memcpy(vp, v, sizeof v);
            memcpy(vm, v, sizeof v);
            vp[d] += h, vm[d] -= h;
            double grad = (pair_loss(DIM, vp, u, NOUT) - pair_loss(DIM, vm, u, NOUT)) / (2 * h);
            double moved = vf[d] - (float)v[d];
            cr_assert(fabs(moved + alpha * grad) < 2e-6, "%s: v[%d] moved %.8f, -alpha grad %.8f", k->name, d, moved,
                      -alpha * grad);
        }
        for (int j = 0; j < NOUT; j++)
            for (int d = 0; d < DIM; d++) {
                double up[NOUT][16], um[NOUT][16];
                memcpy(up, u, sizeof u);
                memcpy(um, u, sizeof u);
                up[j][d] += h, um[j][d] -= h;
                double grad = (pair_loss(DIM, v, up, NOUT) - pair_loss(DIM, v, um, NOUT)) / (2 * h);
                double moved = uf[j][d] - (float)u[j][d];
                cr_assert(fabs(moved + alpha * grad) < 2e-6, "%s: u%d[%d] moved %.8f, -alpha grad %.8f", k->name, j, d,
                          moved, -alpha * grad);
            }
        cr_assert_eq(k->sgns_step(DIM, vf, outs, NOUT, alpha, acc, 0), 0.0f, "no loss asked, none returned");
    }
}

Test(word2vec, sgns_step_simd_builds_match_the_scalar_reference) {
    const int dims[] = {112, 100, 16, 7};
    for (size_t t = 0; t < sizeof dims / sizeof *dims; t++) {
        int dim = dims[t];
        for (int isa = GL_ISA_AVX2; isa < GL_ISA_COUNT; isa++) {
            const gl_kernels *k = gl_kern_for((gl_isa)isa), *ref = gl_kern_for(GL_ISA_SCALAR);
            if (!k) continue;
            float v[2][112], u[2][6][112], acc[112], *outs[2][6], loss[2];
            gl_rng r;
            gl_rng_seed(&r, 5 + (uint64_t)dim);
            for (int d = 0; d < dim; d++) v[0][d] = v[1][d] = 0.3f * gl_rng_normal(&r);
            for (int j = 0; j < 6; j++)
                for (int d = 0; d < dim; d++) u[0][j][d] = u[1][j][d] = 0.3f * gl_rng_normal(&r);
            for (int s = 0; s < 2; s++) {
                for (int j = 0; j < 6; j++) outs[s][j] = u[s][j];
                loss[s] = (s ? k : ref)->sgns_step((size_t)dim, v[s], outs[s], 6, 0.025f, acc, 1);
            }
            cr_assert(fabsf(loss[0] - loss[1]) < 1e-5f * fmaxf(1, fabsf(loss[0])), "%s dim %d loss", k->name, dim);
            for (int d = 0; d < dim; d++) cr_assert(fabsf(v[0][d] - v[1][d]) < 1e-6f, "%s dim %d v[%d]", k->name, dim, d);
            for (int j = 0; j < 6; j++)
                for (int d = 0; d < dim; d++)
                    cr_assert(fabsf(u[0][j][d] - u[1][j][d]) < 1e-6f, "%s dim %d u%d[%d]", k->name, dim, j, d);
        }
    }
}

/* four words on a plane: king - man + woman lands exactly on queen */
static void toy_vectors(gl_w2v_vocab *v, float **unit) {
    const char *text = "man woman king queen apple man woman king queen apple";
    gl_w2v_corpus c;
    char err[128];
    cr_assert(gl_w2v_build(text, strlen(text), 1, 1000, v, &c, err, sizeof err));
    gl_w2v_corpus_free(&c);
    /* alphabetical among equal counts: apple king man queen woman */
    static const float raw[5][3] = {{0, 0, 1}, {1, 1, 0}, {1, 0, 0}, {1, 1, 0.2f}, {1, 0, 0.2f}};
    *unit = malloc(5 * 3 * sizeof **unit);
    for (int i = 0; i < 5; i++) {
        float n = sqrtf(raw[i][0] * raw[i][0] + raw[i][1] * raw[i][1] + raw[i][2] * raw[i][2]);
        for (int d = 0; d < 3; d++) (*unit)[i * 3 + d] = raw[i][d] / n;
    }
}

Test(word2vec, analogies_count_coverage_and_exclude_the_question_words) {
    gl_w2v_vocab v;
    float *unit;
    toy_vectors(&v, &unit);
    cr_assert_str_eq(v.words[0], "apple");
    const char *q = ": family\nMan Woman King Queen\nman woman king prince\nman king woman queen\n"
                    ": gram-test\nking queen man woman\n";
    gl_w2v_analogies a;
    char err[256];
    cr_assert(gl_w2v_eval_analogies(unit, &v, 3, q, strlen(q), 0, &a, err, sizeof err), "%s", err);
    cr_assert_eq(a.n_sections, 2);
    cr_assert_str_eq(a.sections[0].name, "family");
    cr_assert(a.sections[0].total == 3 && a.sections[0].covered == 2, "prince is not in the vocabulary");
    cr_assert_eq(a.sections[0].correct, 2, "queen = king - man + woman, upper case folded");
    cr_assert(a.sections[1].total == 1 && a.sections[1].covered == 1 && a.sections[1].correct == 1);
    cr_assert(a.total == 4 && a.covered == 3 && a.correct == 3);
    cr_assert(a.semantic_covered == 2 && a.syntactic_covered == 1);
    gl_w2v_analogies_free(&a);
    /* restricted to the 3 most frequent words (apple king man) nothing is covered */
    cr_assert(gl_w2v_eval_analogies(unit, &v, 3, q, strlen(q), 3, &a, err, sizeof err));
    cr_assert_eq(a.covered, 0);
    gl_w2v_analogies_free(&a);
    const char *bad = ": s\nman woman king\n";
    cr_assert_not(gl_w2v_eval_analogies(unit, &v, 3, bad, strlen(bad), 0, &a, err, sizeof err));
    cr_assert(strstr(err, "line 2") && strstr(err, "4 words"), "%s", err);
    cr_assert_not(gl_w2v_eval_analogies(unit, &v, 3, ": empty\n", 8, 0, &a, err, sizeof err));

    int ids[2];
    float sims[2];
    int king = gl_w2v_find(&v, "king");
    cr_assert_eq(gl_w2v_nearest(unit, v.size, 3, unit + king * 3, &king, 1, 2, ids, sims), 2);
    cr_assert_str_eq(v.words[ids[0]], "queen");
    cr_assert(sims[0] >= sims[1]);
    free(unit);
    gl_w2v_vocab_free(&v);
}

Test(word2vec, vector_file_round_trips_and_damage_is_reported) {
    gl_w2v_vocab v, back;
    float *unit, *vec;
    int dim;
    char err[512];
    toy_vectors(&v, &unit);
    const char *path = "out/test/w2v_vectors.bin";
    mkdir("out", 0755);
    mkdir("out/test", 0755);
    cr_assert(gl_w2v_save(path, &v, unit, 3, 3, err, sizeof err), "%s", err);
    cr_assert(gl_w2v_load(path, &back, &vec, &dim, err, sizeof err), "%s", err);
    cr_assert(back.size == 5 && dim == 3);
    for (int i = 0; i < 5; i++) cr_assert_str_eq(back.words[i], v.words[i]);
    cr_assert(memcmp(vec, unit, 15 * sizeof *vec) == 0);
    cr_assert_eq(gl_w2v_find(&back, "queen"), gl_w2v_find(&v, "queen"));
    gl_w2v_vocab_free(&back);
    free(vec);
    /* the first line of the file is "5 3\n"; each word takes len + 1 + 12 + 1 bytes */
    unsigned char *data;
    size_t len;
    cr_assert(gl_read_whole_file(path, &data, &len, err, sizeof err));
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, len - 9, f);
    fclose(f);
    cr_assert_not(gl_w2v_load(path, &back, &vec, &dim, err, sizeof err));
    cr_assert(strstr(err, "word 5 of 5"), "%s", err);
    f = fopen(path, "wb");
    fputs("five three\n", f);
    fclose(f);
    cr_assert_not(gl_w2v_load(path, &back, &vec, &dim, err, sizeof err));
    cr_assert(strstr(err, "not a word2vec binary file"), "%s", err);
    free(data);
    free(unit);
    gl_w2v_vocab_free(&v);
}

static void train_on_shakespeare(int threads, gl_w2v_model *m, gl_w2v_stats *st, gl_w2v_vocab *v) {
    unsigned char *text;
    size_t len;
    char err[256];
    cr_assert(gl_read_whole_file("data/tinyshakespeare/input.txt", &text, &len, err, sizeof err), "%s", err);
    gl_w2v_corpus c;
    cr_assert(gl_w2v_build((const char *)text, len, 5, 1000, v, &c, err, sizeof err), "%s", err);
    gl_w2v_config cfg = gl_w2v_defaults();
    cfg.dim = 32;
    cfg.epochs = 2;
    cfg.threads = threads;
    cfg.seed = 7;
    cr_assert(gl_w2v_train(m, v, &c, &cfg, st, err, sizeof err), "%s", err);
    gl_w2v_corpus_free(&c);
    free(text);
}

Test(word2vec, one_thread_training_is_reproducible_and_lowers_the_loss) {
    gl_w2v_model a, b;
    gl_w2v_stats sa, sb;
    gl_w2v_vocab va, vb;
    train_on_shakespeare(1, &a, &sa, &va);
    train_on_shakespeare(1, &b, &sb, &vb);
    cr_assert(memcmp(a.in, b.in, (size_t)a.size * a.stride * sizeof(float)) == 0, "same seed, 1 thread: same bits");
    cr_assert(memcmp(a.out, b.out, (size_t)a.size * a.stride * sizeof(float)) == 0);
    cr_assert(sa.n_curve >= 20 && sa.n_curve <= 101 && sa.words == 2 * va.total);
    cr_assert(sa.curve_progress[sa.n_curve - 1] == 1.0f);
    /* negative sampling starts at 6 log 2 = 4.16 per pair (all vectors near 0) and must fall well below */
    cr_assert(sa.curve_loss[0] > 3.0f && sa.final_loss < 0.75 * sa.curve_loss[0], "loss %.3f -> %.3f",
              sa.curve_loss[0], sa.final_loss);
    for (int i = 0; i < a.size; i++) /* the padding of each row stays zero */
        for (int d = a.dim; d < a.stride; d++) cr_assert(a.in[(size_t)i * a.stride + d] == 0 && a.out[(size_t)i * a.stride + d] == 0);
    /* words the play pairs up end nearer each other than a random pair of frequent words */
    float *unit = gl_w2v_unit_vectors(&a);
    int king = gl_w2v_find(&va, "king"), queen = gl_w2v_find(&va, "queen"), then = gl_w2v_find(&va, "then");
    float kq = 0, kt = 0;
    for (int d = 0; d < a.dim; d++) {
        kq += unit[king * a.dim + d] * unit[queen * a.dim + d];
        kt += unit[king * a.dim + d] * unit[then * a.dim + d];
    }
    cr_assert(kq > kt, "cos(king, queen) %.3f <= cos(king, then) %.3f", kq, kt);
    free(unit);
    gl_w2v_model_free(&a);
    gl_w2v_model_free(&b);
    gl_w2v_vocab_free(&va);
    gl_w2v_vocab_free(&vb);
}

Test(word2vec, two_threads_train_every_word_once_per_epoch) {
    gl_w2v_model m;
    gl_w2v_stats st;
    gl_w2v_vocab v;
    train_on_shakespeare(2, &m, &st, &v);
    cr_assert_eq(st.words, 2 * v.total);
    cr_assert(isfinite(st.final_loss) && st.final_loss < 0.75 * st.curve_loss[0]);
    gl_w2v_model_free(&m);
    gl_w2v_vocab_free(&v);
}
