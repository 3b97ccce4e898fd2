/* word2vec: skip-gram with negative sampling. See word2vec.h for the algorithm and its choices. */
#include "word2vec.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "io.h"
#include "kernels.h" /* the one model that calls kernels: its fused skip-gram step and the analogy search (docs/architecture.md) */
#include "rng.h"

#define W2V_MAX_WORD 100 /* longer runs of letters are cut, as word2vec.c's MAX_STRING */

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint32_t hash_word(const char *w, int len) {
    uint32_t h = 2166136261u;
    for (int i = 0; i < len; i++) h = (h ^ (unsigned char)w[i]) * 16777619u;
    return h;
}

/* ---------------- words ---------------- */

void gl_w2v_words(const char *text, size_t len, void (*fn)(void *ctx, const char *word, int len), void *ctx) {
    char word[W2V_MAX_WORD + 1];
    int n = 0;
    for (size_t i = 0; i <= len; i++) {
        unsigned char c = i < len ? (unsigned char)text[i] : '\n';
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z')) {
            if (n < W2V_MAX_WORD) word[n++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
            continue;
        }
        if (n) {
            word[n] = 0;
            fn(ctx, word, n);
            n = 0;
        }
        if (c == '\n') fn(ctx, NULL, 0);
    }
}

/* ---------------- vocabulary ---------------- */

typedef struct {
    char **words;
    int64_t *counts;
    int size, cap;
    int *slots;
    int n_slots;
} word_counter;

static int counter_slot(const word_counter *wc, const char *w, int len) {
    uint32_t mask = (uint32_t)wc->n_slots - 1, s = hash_word(w, len) & mask;
    while (wc->slots[s] >= 0 && strcmp(wc->words[wc->slots[s]], w) != 0) s = (s + 1) & mask;
    return (int)s;
}

static void counter_grow(word_counter *wc) {
    free(wc->slots);
    wc->n_slots = wc->n_slots ? wc->n_slots * 2 : 1 << 16;
    wc->slots = malloc((size_t)wc->n_slots * sizeof *wc->slots);
    memset(wc->slots, 0xff, (size_t)wc->n_slots * sizeof *wc->slots);
    for (int i = 0; i < wc->size; i++) wc->slots[counter_slot(wc, wc->words[i], (int)strlen(wc->words[i]))] = i;
}

static void count_word(void *ctx, const char *w, int len) {
    word_counter *wc = ctx;
    if (!len) return;
    int s = counter_slot(wc, w, len);
    if (wc->slots[s] >= 0) {
        wc->counts[wc->slots[s]]++;
        return;
    }
    if (wc->size == wc->cap) {
        wc->cap = wc->cap ? wc->cap * 2 : 1 << 14;
        wc->words = realloc(wc->words, (size_t)wc->cap * sizeof *wc->words);
        wc->counts = realloc(wc->counts, (size_t)wc->cap * sizeof *wc->counts);
    }
    wc->words[wc->size] = strdup(w);
    wc->counts[wc->size] = 1;
    wc->slots[s] = wc->size++;
    if (wc->size * 2 > wc->n_slots) counter_grow(wc);
}

typedef struct {
    const char *word;
    int64_t count;
} word_count;

static int by_count_then_word(const void *a, const void *b) {
    const word_count *x = a, *y = b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    return strcmp(x->word, y->word);
}

static void vocab_index(gl_w2v_vocab *v) {
    v->n_slots = 1;
    while (v->n_slots < 2 * v->size + 2) v->n_slots *= 2;
    v->slots = malloc((size_t)v->n_slots * sizeof *v->slots);
    memset(v->slots, 0xff, (size_t)v->n_slots * sizeof *v->slots);
    uint32_t mask = (uint32_t)v->n_slots - 1;
    for (int i = 0; i < v->size; i++) {
        uint32_t s = hash_word(v->words[i], (int)strlen(v->words[i])) & mask;
        while (v->slots[s] >= 0) s = (s + 1) & mask;
        v->slots[s] = i;
    }
}

int gl_w2v_find(const gl_w2v_vocab *v, const char *word) {
    if (!v->size) return -1;
    uint32_t mask = (uint32_t)v->n_slots - 1, s = hash_word(word, (int)strlen(word)) & mask;
    while (v->slots[s] >= 0) {
        if (strcmp(v->words[v->slots[s]], word) == 0) return v->slots[s];
        s = (s + 1) & mask;
    }
    return -1;
}

void gl_w2v_vocab_free(gl_w2v_vocab *v) {
    for (int i = 0; i < v->size; i++) free(v->words[i]);
    free(v->words);
    free(v->counts);
    free(v->slots);
    memset(v, 0, sizeof *v);
}

void gl_w2v_corpus_free(gl_w2v_corpus *c) {
    free(c->ids);
    free(c->sentence_start);
    memset(c, 0, sizeof *c);
}

typedef struct {
    const gl_w2v_vocab *vocab;
    gl_w2v_corpus *c;
    int64_t cap_ids, cap_sent, in_sentence;
    int max_sentence;
} id_writer;

static void end_sentence(id_writer *w) {
    if (!w->in_sentence) return;
    if (w->c->n_sentences + 2 > w->cap_sent) {
        w->cap_sent = w->cap_sent * 2 + 1024;
        w->c->sentence_start = realloc(w->c->sentence_start, (size_t)w->cap_sent * sizeof *w->c->sentence_start);
    }
    w->c->sentence_start[++w->c->n_sentences] = w->c->n;
    w->in_sentence = 0;
}

static void write_id(void *ctx, const char *word, int len) {
    id_writer *w = ctx;
    if (!len) {
        end_sentence(w);
        return;
    }
    w->c->raw_words++;
    int id = gl_w2v_find(w->vocab, word);
    if (id < 0) return;
    if (w->c->n == w->cap_ids) {
        w->cap_ids = w->cap_ids * 2 + 4096;
        w->c->ids = realloc(w->c->ids, (size_t)w->cap_ids * sizeof *w->c->ids);
    }
    w->c->ids[w->c->n++] = id;
    if (++w->in_sentence == w->max_sentence) end_sentence(w);
}

bool gl_w2v_build(const char *text, size_t len, int min_count, int max_sentence, gl_w2v_vocab *vocab,
                  gl_w2v_corpus *corpus, char *err, int err_len) {
    memset(vocab, 0, sizeof *vocab);
    memset(corpus, 0, sizeof *corpus);
    word_counter wc = {0};
    counter_grow(&wc);
    gl_w2v_words(text, len, count_word, &wc);

    word_count *order = malloc(((size_t)wc.size + 1) * sizeof *order);
    int kept = 0;
    int64_t raw = 0;
    for (int i = 0; i < wc.size; i++) {
        raw += wc.counts[i];
        if (wc.counts[i] >= min_count) order[kept++] = (word_count){wc.words[i], wc.counts[i]};
    }
    if (kept == 0) {
        if (raw == 0) snprintf(err, err_len, "the corpus has no words (letters or digits)");
        else snprintf(err, err_len, "no word occurs %d times or more in the corpus (%lld words, %d distinct)",
                      min_count, (long long)raw, wc.size);
    } else {
        qsort(order, (size_t)kept, sizeof *order, by_count_then_word);
        vocab->size = kept;
        vocab->words = malloc((size_t)kept * sizeof *vocab->words);
        vocab->counts = malloc((size_t)kept * sizeof *vocab->counts);
        for (int i = 0; i < kept; i++) {
            vocab->words[i] = strdup(order[i].word);
            vocab->counts[i] = order[i].count;
            vocab->total += order[i].count;
        }
        vocab_index(vocab);
    }
    free(order);
    for (int i = 0; i < wc.size; i++) free(wc.words[i]);
    free(wc.words);
    free(wc.counts);
    free(wc.slots);
    if (!kept) return false;

    id_writer w = {.vocab = vocab, .c = corpus, .max_sentence = max_sentence > 0 ? max_sentence : 1000};
    w.cap_sent = 1024;
    corpus->sentence_start = malloc((size_t)w.cap_sent * sizeof *corpus->sentence_start);
    corpus->sentence_start[0] = 0;
    gl_w2v_words(text, len, write_id, &w);
    end_sentence(&w);
    return true;
}

bool gl_w2v_read_corpora(const char *const *paths, int n, char **text, size_t *len, char *err, int err_len) {
    *text = NULL;
    *len = 0;
    for (int i = 0; i < n; i++) {
        unsigned char *data;
        size_t size;
        if (!gl_read_whole_file(paths[i], &data, &size, err, (size_t)err_len)) {
            free(*text);
            *text = NULL;
            return false;
        }
        *text = realloc(*text, *len + size + 1);
        memcpy(*text + *len, data, size);
        *len += size;
        (*text)[(*len)++] = '\n';
        free(data);
    }
    return true;
}

/* ---------------- noise distribution and subsampling ---------------- */

bool gl_w2v_noise_init(gl_w2v_noise *noise, const int64_t *counts, int size, double power) {
    memset(noise, 0, sizeof *noise);
    if (size <= 0) return false;
    double *p = malloc((size_t)size * sizeof *p), sum = 0;
    for (int i = 0; i < size; i++) sum += p[i] = pow((double)counts[i], power);
    int *small = malloc((size_t)size * sizeof *small), *large = malloc((size_t)size * sizeof *large);
    int ns = 0, nl = 0;
    for (int i = 0; i < size; i++) {
        p[i] = p[i] * size / sum; /* mean 1 */
        if (p[i] < 1) small[ns++] = i;
        else large[nl++] = i;
    }
    noise->size = size;
    noise->keep = malloc((size_t)size * sizeof *noise->keep);
    noise->alias = malloc((size_t)size * sizeof *noise->alias);
    /* Vose: pair each under-full slot with an over-full word that fills the rest of it */
    while (ns && nl) {
        int s = small[--ns], l = large[nl - 1];
        noise->keep[s] = (float)p[s];
        noise->alias[s] = l;
        p[l] -= 1 - p[s];
        if (p[l] < 1) {
            nl--;
            small[ns++] = l;
        }
    }
    while (nl) { int l = large[--nl]; noise->keep[l] = 1.0f; noise->alias[l] = l; }
    while (ns) { int s = small[--ns]; noise->keep[s] = 1.0f; noise->alias[s] = s; } /* rounding leftovers */
    free(p);
    free(small);
    free(large);
    return true;
}

double gl_w2v_noise_prob(const gl_w2v_noise *noise, int i) {
    /* the coin is a multiple of 2^-24, so a slot keeps its own word with probability ceil(keep * 2^24) / 2^24 */
    double prob = 0;
    for (int j = 0; j < noise->size; j++) {
        double keep = ceil((double)noise->keep[j] * 16777216.0) / 16777216.0;
        if (keep > 1) keep = 1;
        if (j == i) prob += keep;
        if (noise->alias[j] == i) prob += 1 - keep;
    }
    return prob / noise->size;
}

void gl_w2v_noise_free(gl_w2v_noise *noise) {
    free(noise->keep);
    free(noise->alias);
    memset(noise, 0, sizeof *noise);
}

double gl_w2v_keep_prob(int64_t count, int64_t total, double sample) {
    if (sample <= 0 || count <= 0) return 1;
    double t = sample * (double)total, keep = (sqrt((double)count / t) + 1) * t / (double)count;
    return keep < 1 ? keep : 1;
}

/* ---------------- training ---------------- */

gl_w2v_config gl_w2v_defaults(void) {
    return (gl_w2v_config){.dim = 100, .window = 5, .negative = 5, .min_count = 5, .epochs = 5, .threads = 1,
                           .max_sentence = 1000, .alpha = 0.025f, .sample = 1e-3f, .seed = 1, .progress = false};
}

void gl_w2v_model_free(gl_w2v_model *m) {
    free(m->in);
    free(m->out);
    memset(m, 0, sizeof *m);
}

/* what the threads share besides the vectors: progress, the loss record, the learning rate's clock */
typedef struct {
    int64_t words_done, planned;
    double loss_sum, interval_loss;        /* over the measured pairs */
    int64_t pairs, measured, interval_measured;
    double t0, last_print, next_mark;
    gl_w2v_stats *stats;
    bool progress;
    float alpha0;
} train_shared;

static float report(train_shared *sh, int64_t words, double loss, int64_t measured, int64_t pairs, bool final) {
    float alpha;
#pragma omp critical(gl_w2v_progress)
    {
        sh->words_done += words;
        sh->loss_sum += loss;
        sh->pairs += pairs;
        sh->measured += measured;
        sh->interval_loss += loss;
        sh->interval_measured += measured;
        double done = (double)sh->words_done / (double)sh->planned;
        gl_w2v_stats *st = sh->stats;
        /* one point each time progress passes the next whole percent (one point for several, when a report
         * of a small corpus spans more than 1%) */
        if (st->n_curve < 101 && sh->interval_measured && (done >= sh->next_mark || final)) {
            st->curve_progress[st->n_curve] = (float)done;
            st->curve_loss[st->n_curve] = (float)(sh->interval_loss / sh->interval_measured);
            st->n_curve++;
            sh->interval_loss = 0;
            sh->interval_measured = 0;
            sh->next_mark = (floor(done * 100) + 1) / 100;
        }
        double t = now_seconds();
        if (sh->progress && (t - sh->last_print > 0.5 || final)) {
            sh->last_print = t;
            fprintf(stderr, "\r  %5.1f%%  alpha %.5f  loss %.4f  %.0fk words/s   ", 100 * done,
                    sh->alpha0 * fmax(1e-4, 1 - done), st->n_curve ? st->curve_loss[st->n_curve - 1] : sh->measured ? sh->loss_sum / sh->measured : 0.0,
                    sh->words_done / (t - sh->t0) / 1e3);
            if (final) fputc('\n', stderr);
        }
        alpha = (float)(sh->alpha0 * fmax(1e-4, 1 - (double)sh->words_done / (double)(sh->planned + 1)));
    }
    return alpha;
}

/* the rows one centre word trains: a context row and its output rows (the centre's, then the negatives) per pair */
typedef struct {
    int n_pairs;
    float **in;
    int *n_out;
    float **outs;
} position_plan;

static inline void prefetch_row(const float *row, int stride) {
    for (int i = 0; i < stride; i += 16) __builtin_prefetch(row + i, 1, 3);
}

/* draws the window and the negatives of sentence position pos, as word2vec.c: the window reaches 1..window words
 * each side; a negative that equals the centre word is dropped */
static void plan_position(position_plan *p, const gl_w2v_model *m, const gl_w2v_noise *noise, gl_rng *rng,
                          const gl_w2v_config *cfg, const int32_t *sen, int n, int pos) {
    int32_t centre = sen[pos];
    float *centre_row = m->out + (size_t)centre * m->stride;
    int reach = cfg->window - (int)gl_rng_below(rng, (uint64_t)cfg->window);
    int lo = pos - reach < 0 ? 0 : pos - reach, hi = pos + reach >= n ? n - 1 : pos + reach, o = 0;
    p->n_pairs = 0;
    prefetch_row(centre_row, m->stride);
    for (int c = lo; c <= hi; c++) {
        if (c == pos) continue;
        int first = o;
        p->in[p->n_pairs] = m->in + (size_t)sen[c] * m->stride;
        prefetch_row(p->in[p->n_pairs], m->stride);
        p->outs[o++] = centre_row;
        for (int k = 0; k < cfg->negative; k++) {
            int target = gl_w2v_noise_draw(noise, gl_rng_u64(rng));
            if (target == centre) continue;
            p->outs[o] = m->out + (size_t)target * m->stride;
            prefetch_row(p->outs[o++], m->stride);
        }
        p->n_out[p->n_pairs++] = o - first;
    }
}

/* the first sentence that starts at or after word `word` (n_sentences if none): the threads' slices hold
 * equal numbers of words, whatever the sentences' lengths */
static int64_t first_sentence_at(const gl_w2v_corpus *c, int64_t word) {
    int64_t lo = 0, hi = c->n_sentences;
    while (lo < hi) {
        int64_t mid = (lo + hi) / 2;
        if (c->sentence_start[mid] < word) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

bool gl_w2v_train(gl_w2v_model *m, const gl_w2v_vocab *vocab, const gl_w2v_corpus *corpus,
                  const gl_w2v_config *cfg, gl_w2v_stats *stats, char *err, int err_len) {
    memset(m, 0, sizeof *m);
    memset(stats, 0, sizeof *stats);
    if (cfg->dim < 1 || cfg->window < 1 || cfg->negative < 0 || cfg->epochs < 1 || cfg->threads < 1 ||
        !(cfg->alpha > 0) || !(cfg->sample >= 0))
        return snprintf(err, err_len, "word2vec: dim, window, epochs, threads and alpha must be positive, "
                                      "negative and sample not negative"), false;
    if (vocab->size < 2 || corpus->n < 2)
        return snprintf(err, err_len, "word2vec: the corpus has fewer than 2 training words"), false;
    m->dim = cfg->dim;
    m->stride = (cfg->dim + 15) / 16 * 16;
    m->size = vocab->size;
    size_t bytes = (size_t)m->size * m->stride * sizeof(float);
    m->in = aligned_alloc(64, bytes);
    m->out = aligned_alloc(64, bytes);
    if (!m->in || !m->out) {
        gl_w2v_model_free(m);
        return snprintf(err, err_len, "word2vec: out of memory for %d x %d vectors", m->size, m->dim), false;
    }
    memset(m->in, 0, bytes);
    memset(m->out, 0, bytes);
    gl_rng init;
    gl_rng_seed(&init, cfg->seed);
    for (int i = 0; i < m->size; i++)
        for (int d = 0; d < m->dim; d++) m->in[(size_t)i * m->stride + d] = (gl_rng_uniform(&init) - 0.5f) / m->dim;

    gl_w2v_noise noise;
    gl_w2v_noise_init(&noise, vocab->counts, vocab->size, 0.75);
    float *keep = malloc((size_t)vocab->size * sizeof *keep);
    for (int i = 0; i < vocab->size; i++) keep[i] = (float)gl_w2v_keep_prob(vocab->counts[i], vocab->total, cfg->sample);

    train_shared sh = {.planned = (int64_t)cfg->epochs * corpus->n, .t0 = now_seconds(), .stats = stats,
                       .progress = cfg->progress, .alpha0 = cfg->alpha, .next_mark = 0.01};
    int threads = cfg->threads;
    if (threads > corpus->n_sentences) threads = (int)corpus->n_sentences;

#pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads();
        int64_t s_begin = first_sentence_at(corpus, corpus->n * t / T), s_end = first_sentence_at(corpus, corpus->n * (t + 1) / T);
        gl_rng rng;
        gl_rng_seed(&rng, cfg->seed * 0x9E3779B97F4A7C15ull + (uint64_t)t + 1);
        int max_len = 0;
        for (int64_t s = s_begin; s < s_end; s++) {
            int64_t l = corpus->sentence_start[s + 1] - corpus->sentence_start[s];
            if (l > max_len) max_len = (int)l;
        }
        int32_t *sen = malloc(((size_t)max_len + 1) * sizeof *sen);
        float *scratch = aligned_alloc(64, (size_t)m->stride * sizeof(float));
        position_plan plans[2];
        for (int k = 0; k < 2; k++) {
            plans[k].in = malloc(2 * (size_t)cfg->window * sizeof *plans[k].in);
            plans[k].n_out = malloc(2 * (size_t)cfg->window * sizeof *plans[k].n_out);
            plans[k].outs = malloc(2 * (size_t)cfg->window * ((size_t)cfg->negative + 1) * sizeof *plans[k].outs);
        }
        float alpha = cfg->alpha;
        const gl_kernels *kern = gl_kern();
        int64_t words = 0, pairs = 0, measured = 0;
        double loss = 0;
        for (int epoch = 0; epoch < cfg->epochs; epoch++) {
            for (int64_t s = s_begin; s < s_end; s++) {
                int n = 0;
                for (int64_t i = corpus->sentence_start[s]; i < corpus->sentence_start[s + 1]; i++) {
                    int32_t w = corpus->ids[i];
                    words++;
                    if (keep[w] < 1 && gl_rng_uniform(&rng) >= keep[w]) continue;
                    sen[n++] = w;
                }
                /* software pipeline: position pos+1's rows are chosen and prefetched while pos trains, since
                 * the random output rows (mostly out of L2) are what the step waits for */
                if (n) plan_position(&plans[0], m, &noise, &rng, cfg, sen, n, 0);
                for (int pos = 0; pos < n; pos++) {
                    if (pos + 1 < n) plan_position(&plans[(pos + 1) & 1], m, &noise, &rng, cfg, sen, n, pos + 1);
                    const position_plan *p = &plans[pos & 1];
                    for (int j = 0, o = 0; j < p->n_pairs; o += p->n_out[j], j++) {
                        /* the loss is measured on every 16th pair: an unbiased sample, and log1p on every
                         * pair would cost a fifth of the training time */
                        bool measure = (pairs & 15) == 0;
                        float l = kern->sgns_step((size_t)m->stride, p->in[j], p->outs + o, p->n_out[j], alpha,
                                                  scratch, measure);
                        if (measure) loss += l, measured++;
                        pairs++;
                    }
                }
                if (words >= 10000) {
                    alpha = report(&sh, words, loss, measured, pairs, false);
                    words = pairs = measured = 0;
                    loss = 0;
                }
            }
        }
        report(&sh, words, loss, measured, pairs, false);
        free(sen);
        free(scratch);
        for (int k = 0; k < 2; k++) {
            free(plans[k].in);
            free(plans[k].n_out);
            free(plans[k].outs);
        }
    }
    report(&sh, 0, 0, 0, 0, true);
    stats->seconds = now_seconds() - sh.t0;
    stats->words = sh.words_done;
    stats->pairs = sh.pairs;
    stats->words_per_second = sh.words_done / stats->seconds;
    stats->final_loss = stats->n_curve ? stats->curve_loss[stats->n_curve - 1] : NAN;
    gl_w2v_noise_free(&noise);
    free(keep);
    return true;
}

/* ---------------- using the vectors ---------------- */

float *gl_w2v_unit_vectors(const gl_w2v_model *m) {
    float *u = malloc((size_t)m->size * m->dim * sizeof *u);
    for (int i = 0; i < m->size; i++) {
        const float *v = m->in + (size_t)i * m->stride;
        double norm = 0;
        for (int d = 0; d < m->dim; d++) norm += (double)v[d] * v[d];
        float inv = norm > 0 ? (float)(1 / sqrt(norm)) : 0;
        for (int d = 0; d < m->dim; d++) u[(size_t)i * m->dim + d] = v[d] * inv;
    }
    return u;
}

int gl_w2v_nearest(const float *unit, int size, int dim, const float *query, const int *exclude, int n_exclude,
                   int k, int *ids, float *sims) {
    const gl_kernels *kern = gl_kern();
    int found = 0;
    for (int i = 0; i < size; i++) {
        bool skip = false;
        for (int e = 0; e < n_exclude; e++) skip |= exclude[e] == i;
        if (skip) continue;
        float s = kern->dot((size_t)dim, unit + (size_t)i * dim, query);
        if (found == k && s <= sims[k - 1]) continue;
        int at = found < k ? found++ : k - 1;
        while (at > 0 && sims[at - 1] < s) {
            sims[at] = sims[at - 1];
            ids[at] = ids[at - 1];
            at--;
        }
        sims[at] = s;
        ids[at] = i;
    }
    return found;
}

void gl_w2v_analogies_free(gl_w2v_analogies *a) {
    free(a->sections);
    memset(a, 0, sizeof *a);
}

/* scores a batch of questions (ids: n x 4) at once with one GEMM against all candidate vectors */
static void score_batch(const float *unit, int size, int dim, const int *q, int n, float *query, float *scores,
                        int *answer) {
    for (int i = 0; i < n; i++) {
        const float *a = unit + (size_t)q[4 * i] * dim, *b = unit + (size_t)q[4 * i + 1] * dim,
                    *c = unit + (size_t)q[4 * i + 2] * dim;
        for (int d = 0; d < dim; d++) query[(size_t)i * dim + d] = b[d] - a[d] + c[d];
    }
    gl_gemm(0, 1, n, size, dim, 1.0f, query, dim, unit, dim, 0.0f, scores, size);
    for (int i = 0; i < n; i++) {
        const float *s = scores + (size_t)i * size;
        int best = -1;
        for (int w = 0; w < size; w++) {
            if (w == q[4 * i] || w == q[4 * i + 1] || w == q[4 * i + 2]) continue;
            if (best < 0 || s[w] > s[best]) best = w;
        }
        answer[i] = best;
    }
}

bool gl_w2v_eval_analogies(const float *unit, const gl_w2v_vocab *vocab, int dim, const char *text, size_t len,
                           int restrict_to, gl_w2v_analogies *out, char *err, int err_len) {
    memset(out, 0, sizeof *out);
    int limit = restrict_to > 0 && restrict_to < vocab->size ? restrict_to : vocab->size;
    int cap = 0, *questions = NULL, *section_of = NULL, nq = 0, line_no = 0;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        line_no++;
        char line[512];
        size_t l = (size_t)(eol - p) < sizeof line - 1 ? (size_t)(eol - p) : sizeof line - 1;
        memcpy(line, p, l);
        line[l] = 0;
        p = eol + 1;
        if (l && line[l - 1] == '\r') line[--l] = 0;
        if (line[0] == ':') {
            out->sections = realloc(out->sections, (size_t)(out->n_sections + 1) * sizeof *out->sections);
            gl_w2v_section *s = &out->sections[out->n_sections++];
            memset(s, 0, sizeof *s);
            const char *name = line + 1;
            while (*name == ' ') name++;
            snprintf(s->name, sizeof s->name, "%.63s", name);
            continue;
        }
        char w[4][128], extra[2];
        int got = sscanf(line, "%127s %127s %127s %127s %1s", w[0], w[1], w[2], w[3], extra);
        if (got <= 0) continue; /* blank line */
        if (got != 4) {
            free(questions);
            free(section_of);
            gl_w2v_analogies_free(out);
            return snprintf(err, err_len, "analogy questions, line %d: expected 4 words, found %s", line_no,
                            got < 4 ? "fewer" : "more"), false;
        }
        if (!out->n_sections) {
            out->sections = calloc(1, sizeof *out->sections);
            snprintf(out->sections[0].name, sizeof out->sections[0].name, "questions");
            out->n_sections = 1;
        }
        gl_w2v_section *s = &out->sections[out->n_sections - 1];
        s->total++;
        int ids[4], ok = 1;
        for (int i = 0; i < 4; i++) {
            for (char *c = w[i]; *c; c++) *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
            ids[i] = gl_w2v_find(vocab, w[i]);
            ok &= ids[i] >= 0 && ids[i] < limit;
        }
        if (!ok) continue;
        s->covered++;
        if (nq == cap) {
            cap = cap * 2 + 1024;
            questions = realloc(questions, (size_t)cap * 4 * sizeof *questions);
            section_of = realloc(section_of, (size_t)cap * sizeof *section_of);
        }
        memcpy(questions + 4 * nq, ids, sizeof ids);
        section_of[nq++] = out->n_sections - 1;
    }
    for (int i = 0; i < out->n_sections; i++) out->total += out->sections[i].total;
    if (!out->total) {
        gl_w2v_analogies_free(out);
        free(questions);
        free(section_of);
        return snprintf(err, err_len, "analogy questions: no question lines found"), false;
    }
    enum { BATCH = 256 };
    float *query = malloc((size_t)BATCH * dim * sizeof *query);
    float *scores = malloc((size_t)BATCH * limit * sizeof *scores);
    int answer[BATCH];
    for (int b = 0; b < nq; b += BATCH) {
        int n = nq - b < BATCH ? nq - b : BATCH;
        score_batch(unit, limit, dim, questions + 4 * b, n, query, scores, answer);
        for (int i = 0; i < n; i++)
            if (answer[i] == questions[4 * (b + i) + 3]) out->sections[section_of[b + i]].correct++;
    }
    for (int i = 0; i < out->n_sections; i++) {
        gl_w2v_section *s = &out->sections[i];
        out->covered += s->covered;
        out->correct += s->correct;
        bool syntactic = strncmp(s->name, "gram", 4) == 0;
        *(syntactic ? &out->syntactic_covered : &out->semantic_covered) += s->covered;
        *(syntactic ? &out->syntactic_correct : &out->semantic_correct) += s->correct;
    }
    free(query);
    free(scores);
    free(questions);
    free(section_of);
    return true;
}

/* ---------------- the binary vector format ---------------- */

bool gl_w2v_save(const char *path, const gl_w2v_vocab *vocab, const float *vectors, int dim, int row_stride,
                 char *err, int err_len) {
    gl_atomic a;
    FILE *f = gl_atomic_open(&a, path);
    if (!f) return snprintf(err, err_len, "cannot create '%s'", path), false;
    fprintf(f, "%d %d\n", vocab->size, dim);
    for (int i = 0; i < vocab->size; i++) {
        fprintf(f, "%s ", vocab->words[i]);
        fwrite(vectors + (size_t)i * row_stride, sizeof(float), (size_t)dim, f);
        fputc('\n', f);
    }
    if (!gl_atomic_commit(&a)) return snprintf(err, err_len, "cannot write '%s'", path), false;
    return true;
}

bool gl_w2v_load(const char *path, gl_w2v_vocab *vocab, float **vectors, int *dim, char *err, int err_len) {
    memset(vocab, 0, sizeof *vocab);
    *vectors = NULL;
    unsigned char *data;
    size_t len;
    if (!gl_read_whole_file(path, &data, &len, err, (size_t)err_len)) return false;
    int size = 0, d = 0, used = 0;
    if (sscanf((const char *)data, "%d %d\n%n", &size, &d, &used) != 2 || used == 0 || size < 1 || d < 1 ||
        d > 100000 || (size_t)size > len / ((size_t)d * 4 + 2)) {
        free(data);
        return snprintf(err, err_len, "'%s' is not a word2vec binary file (its first line must be 'words dim' "
                                      "matching the file's size)", path), false;
    }
    size_t at = (size_t)used;
    vocab->words = calloc((size_t)size, sizeof *vocab->words);
    vocab->counts = calloc((size_t)size, sizeof *vocab->counts);
    float *v = malloc((size_t)size * d * sizeof *v);
    for (int i = 0; i < size; i++) {
        while (at < len && data[at] == '\n') at++;
        size_t start = at;
        while (at < len && data[at] != ' ' && at - start <= 1000) at++;
        if (at >= len || data[at] != ' ' || at == start || len - at - 1 < (size_t)d * 4) {
            vocab->size = i;
            gl_w2v_vocab_free(vocab);
            free(v);
            free(data);
            return snprintf(err, err_len, "'%s': word %d of %d is cut off or malformed (file truncated?)", path,
                            i + 1, size), false;
        }
        vocab->words[i] = strndup((const char *)data + start, at - start);
        memcpy(v + (size_t)i * d, data + at + 1, (size_t)d * 4);
        at += 1 + (size_t)d * 4;
    }
    free(data);
    vocab->size = size;
    vocab_index(vocab);
    *vectors = v;
    *dim = d;
    return true;
}
