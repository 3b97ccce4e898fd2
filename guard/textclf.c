#include "textclf.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"
#include "rng.h"

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "textclf: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

/* ---- features ---- */

static bool is_word_byte(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c >= 0x80; }

static uint32_t bucket(char space, const unsigned char *s, size_t n, uint32_t mask) {
    uint64_t h = gl_fnv1a(GL_FNV_OFFSET, &space, 1);
    h = gl_fnv1a(h, s, n);
    return (uint32_t)(h ^ (h >> 32)) & mask;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* the sorted bucket of every gram of the text (with repeats); *n of them */
static uint32_t *grams(int bits, const char *text, size_t len, int *n_out) {
    if (len > TC_MAX_BYTES) len = TC_MAX_BYTES;
    uint32_t mask = (1u << bits) - 1;
    /* lower-cased, whitespace collapsed */
    unsigned char *t = xmalloc(len + 1);
    size_t m = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c >= 'A' && c <= 'Z') c = (unsigned char)(c - 'A' + 'a');
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
            if (m == 0 || t[m - 1] == ' ') continue;
            c = ' ';
        }
        t[m++] = c;
    }
    if (m > 0 && t[m - 1] == ' ') m--;
    size_t cap = 3 * m + 16, n = 0;
    uint32_t *g = xmalloc(cap * sizeof *g);
    for (int k = 3; k <= 5; k++)
        for (size_t i = 0; i + (size_t)k <= m; i++) g[n++] = bucket((char)k, t + i, (size_t)k, mask);
    size_t prev_start = 0, prev_len = 0;
    for (size_t i = 0; i < m;) {
        if (!is_word_byte(t[i])) {
            i++;
            continue;
        }
        size_t s = i;
        while (i < m && is_word_byte(t[i])) i++;
        if (n + 2 > cap) g = realloc(g, (cap *= 2) * sizeof *g);
        g[n++] = bucket('w', t + s, i - s, mask);
        if (prev_len) { /* the pair: both words with one space between, hashed as one string */
            uint64_t h = gl_fnv1a(GL_FNV_OFFSET, "b", 1);
            h = gl_fnv1a(h, t + prev_start, prev_len);
            h = gl_fnv1a(h, " ", 1);
            h = gl_fnv1a(h, t + s, i - s);
            g[n++] = (uint32_t)(h ^ (h >> 32)) & mask;
        }
        prev_start = s, prev_len = i - s;
    }
    free(t);
    qsort(g, n, sizeof *g, cmp_u32);
    *n_out = (int)n;
    return g;
}

void tc_featurize(const tc_features *f, const char *text, size_t len, tc_vec *out) {
    int n;
    uint32_t *g = grams(f->bits, text, len, &n);
    out->idx = xmalloc((size_t)n * sizeof *out->idx);
    out->val = xmalloc((size_t)n * sizeof *out->val);
    out->n = 0;
    double norm = 0;
    for (int i = 0; i < n;) {
        int j = i;
        while (j < n && g[j] == g[i]) j++;
        float v = 1.0f + logf((float)(j - i));
        if (f->idf) v *= f->idf[g[i]];
        out->idx[out->n] = g[i];
        out->val[out->n++] = v;
        norm += (double)v * v;
        i = j;
    }
    float s = norm > 0 ? (float)(1.0 / sqrt(norm)) : 0.0f;
    for (int i = 0; i < out->n; i++) out->val[i] *= s;
    free(g);
}

void tc_vec_free(tc_vec *v) {
    free(v->idx);
    free(v->val);
    memset(v, 0, sizeof *v);
}

void tc_fit_idf(tc_features *f, const char *const *texts, const size_t *lens, int n) {
    size_t dim = (size_t)1 << f->bits;
    int *df = calloc(dim, sizeof *df);
    if (!df) xmalloc(SIZE_MAX);
    for (int d = 0; d < n; d++) {
        int m;
        uint32_t *g = grams(f->bits, texts[d], lens[d], &m);
        for (int i = 0; i < m; i++)
            if (i == 0 || g[i] != g[i - 1]) df[g[i]]++;
        free(g);
    }
    f->idf = xmalloc(dim * sizeof *f->idf);
    for (size_t j = 0; j < dim; j++) f->idf[j] = 1.0f + logf((1.0f + (float)n) / (1.0f + (float)df[j]));
    free(df);
}

void tc_features_free(tc_features *f) {
    free(f->idf);
    f->idf = NULL;
}

/* ---- training ---- */

static double sigmoid(double z) { return z >= 0 ? 1.0 / (1.0 + exp(-z)) : exp(z) / (1.0 + exp(z)); }

/* log(1 + e^-z) for y = 1, log(1 + e^z) for y = 0, without overflow */
static double log_loss(double z, int y) {
    double t = y ? -z : z;
    return t > 0 ? t + log1p(exp(-t)) : log1p(exp(t));
}

static int *shuffled_order(int n, gl_rng *rng) {
    int *o = xmalloc((size_t)n * sizeof *o);
    for (int i = 0; i < n; i++) o[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)gl_rng_below(rng, (uint64_t)i + 1), t = o[i];
        o[i] = o[j], o[j] = t;
    }
    return o;
}

/* w -= lr g / sqrt(G) with G += g^2: AdaGrad, one coordinate */
static inline void adagrad(float *w, float *G, float g, float lr) {
    *G += g * g;
    *w -= lr * g / (sqrtf(*G) + 1e-8f);
}

double tc_logreg_logit(const tc_logreg *m, const tc_vec *x) {
    double z = m->b;
    for (int i = 0; i < x->n; i++)
        if (x->idx[i] < (uint32_t)m->dim) z += (double)m->w[x->idx[i]] * x->val[i];
    return z;
}

void tc_logreg_train(tc_logreg *m, int dim, const tc_vec *x, const int *y, int n, tc_train_config c) {
    m->dim = dim;
    m->w = calloc((size_t)dim, sizeof *m->w);
    float *G = calloc((size_t)dim + 1, sizeof *G);
    if (!m->w || !G) xmalloc(SIZE_MAX);
    m->b = 0;
    gl_rng rng;
    gl_rng_seed(&rng, c.seed);
    for (int e = 0; e < c.epochs; e++) {
        int *order = shuffled_order(n, &rng);
        for (int k = 0; k < n; k++) {
            const tc_vec *v = &x[order[k]];
            float d = (float)(sigmoid(tc_logreg_logit(m, v)) - y[order[k]]);
            for (int i = 0; i < v->n; i++) {
                uint32_t j = v->idx[i];
                adagrad(&m->w[j], &G[j], d * v->val[i] + c.l2 * m->w[j], c.lr);
            }
            adagrad(&m->b, &G[dim], d, c.lr);
        }
        free(order);
    }
    free(G);
}

void tc_logreg_free(tc_logreg *m) {
    free(m->w);
    m->w = NULL;
}

/* h = relu(W1^T x + b1) into h; returns the logit */
static double mlp_forward(const tc_mlp *m, const tc_vec *x, float *h) {
    int H = m->hidden;
    memcpy(h, m->b1, (size_t)H * sizeof *h);
    for (int i = 0; i < x->n; i++) {
        const float *row = m->w1 + (size_t)x->idx[i] * H;
        float v = x->val[i];
        for (int k = 0; k < H; k++) h[k] += v * row[k];
    }
    double z = m->b2;
    for (int k = 0; k < H; k++) {
        if (h[k] < 0) h[k] = 0;
        z += (double)m->w2[k] * h[k];
    }
    return z;
}

double tc_mlp_logit(const tc_mlp *m, const tc_vec *x) {
    float h[256];
    float *hp = m->hidden <= 256 ? h : xmalloc((size_t)m->hidden * sizeof *hp);
    double z = mlp_forward(m, x, hp);
    if (hp != h) free(hp);
    return z;
}

double tc_mlp_example_grad(const tc_mlp *m, const tc_vec *x, int y, float *g_rows, float *g_b1, float *g_w2,
                           float *g_b2) {
    int H = m->hidden;
    float *h = xmalloc((size_t)H * sizeof *h);
    double z = mlp_forward(m, x, h);
    /* loss = log_loss(z, y); dloss/dz = s(z) - y */
    float dz = (float)(sigmoid(z) - y);
    *g_b2 = dz;
    for (int k = 0; k < H; k++) {
        g_w2[k] = dz * h[k];
        g_b1[k] = h[k] > 0 ? dz * m->w2[k] : 0.0f; /* relu passes the gradient where it was open */
    }
    for (int i = 0; i < x->n; i++)
        for (int k = 0; k < H; k++) g_rows[(size_t)i * H + k] = x->val[i] * g_b1[k];
    free(h);
    return log_loss(z, y);
}

void tc_mlp_train(tc_mlp *m, int dim, const tc_vec *x, const int *y, int n, tc_train_config c) {
    int H = c.hidden > 0 ? c.hidden : 32;
    size_t rows = (size_t)dim * H;
    m->dim = dim, m->hidden = H;
    m->w1 = xmalloc(rows * sizeof *m->w1);
    m->b1 = xmalloc((size_t)H * sizeof *m->b1);
    m->w2 = xmalloc((size_t)H * sizeof *m->w2);
    gl_rng rng;
    gl_rng_seed(&rng, c.seed);
    /* inputs have unit length, so a row's scale is the pre-activation's: order 1 */
    for (size_t i = 0; i < rows; i++) m->w1[i] = 0.5f * gl_rng_normal(&rng);
    for (int k = 0; k < H; k++) m->b1[k] = 0.1f, m->w2[k] = gl_rng_normal(&rng) / sqrtf((float)H);
    m->b2 = 0;
    float *G1 = calloc(rows, sizeof *G1), *Gb1 = calloc((size_t)H, sizeof *Gb1), *Gw2 = calloc((size_t)H, sizeof *Gw2);
    float Gb2 = 0;
    int max_n = 0;
    for (int i = 0; i < n; i++)
        if (x[i].n > max_n) max_n = x[i].n;
    float *g_rows = xmalloc((size_t)max_n * H * sizeof *g_rows), *g_b1 = xmalloc((size_t)H * sizeof *g_b1),
          *g_w2 = xmalloc((size_t)H * sizeof *g_w2), g_b2;
    if (!G1 || !Gb1 || !Gw2) xmalloc(SIZE_MAX);
    for (int e = 0; e < c.epochs; e++) {
        int *order = shuffled_order(n, &rng);
        for (int k = 0; k < n; k++) {
            const tc_vec *v = &x[order[k]];
            tc_mlp_example_grad(m, v, y[order[k]], g_rows, g_b1, g_w2, &g_b2);
            for (int i = 0; i < v->n; i++) {
                float *w = m->w1 + (size_t)v->idx[i] * H, *G = G1 + (size_t)v->idx[i] * H;
                for (int h = 0; h < H; h++) adagrad(&w[h], &G[h], g_rows[(size_t)i * H + h] + c.l2 * w[h], c.lr);
            }
            for (int h = 0; h < H; h++) {
                adagrad(&m->b1[h], &Gb1[h], g_b1[h], c.lr);
                adagrad(&m->w2[h], &Gw2[h], g_w2[h] + c.l2 * m->w2[h], c.lr);
            }
            adagrad(&m->b2, &Gb2, g_b2, c.lr);
        }
        free(order);
    }
    free(G1), free(Gb1), free(Gw2), free(g_rows), free(g_b1), free(g_w2);
}

void tc_mlp_free(tc_mlp *m) {
    free(m->w1), free(m->b1), free(m->w2);
    memset(m, 0, sizeof *m);
}

/* ---- the classifier file: magic, bits, threshold, bias, then idf and weights (2^bits floats each), then the
 * FNV-1a of everything before it ---- */

static const char MAGIC[16] = "gradlab-textclf1";

bool tc_classifier_save(const tc_classifier *c, const char *path, char *err, size_t err_len) {
    size_t dim = (size_t)1 << c->features.bits;
    size_t len = 16 + 3 * 4 + 2 * dim * 4;
    unsigned char *buf = xmalloc(len + 8), *p = buf;
    memcpy(p, MAGIC, 16), p += 16;
    int32_t bits = c->features.bits;
    memcpy(p, &bits, 4), p += 4;
    memcpy(p, &c->threshold, 4), p += 4;
    memcpy(p, &c->model.b, 4), p += 4;
    for (size_t j = 0; j < dim; j++, p += 4) {
        float v = c->features.idf ? c->features.idf[j] : 1.0f;
        memcpy(p, &v, 4);
    }
    memcpy(p, c->model.w, dim * 4), p += dim * 4;
    uint64_t h = gl_fnv1a(GL_FNV_OFFSET, buf, len);
    memcpy(p, &h, 8);
    bool ok = gl_write_file_atomic(path, buf, len + 8, err, err_len);
    free(buf);
    return ok;
}

bool tc_classifier_load(tc_classifier *c, const char *path, char *err, size_t err_len) {
    memset(c, 0, sizeof *c);
    unsigned char *data;
    size_t len;
    if (!gl_read_whole_file(path, &data, &len, err, err_len)) return false;
    int32_t bits = 0;
    if (len < 16 + 12 + 8 || memcmp(data, MAGIC, 16) != 0) {
        snprintf(err, err_len, "%s: not a gradlab text classifier (no 'gradlab-textclf1' header)", path);
        free(data);
        return false;
    }
    memcpy(&bits, data + 16, 4);
    size_t dim = bits >= 4 && bits <= 24 ? (size_t)1 << bits : 0;
    if (!dim || len != 16 + 12 + 2 * dim * 4 + 8) {
        snprintf(err, err_len, "%s: %zu bytes do not hold a classifier of 2^%d buckets (truncated?)", path, len,
                 (int)bits);
        free(data);
        return false;
    }
    uint64_t want, got = gl_fnv1a(GL_FNV_OFFSET, data, len - 8);
    memcpy(&want, data + len - 8, 8);
    if (want != got) {
        snprintf(err, err_len, "%s: checksum mismatch (the file is damaged)", path);
        free(data);
        return false;
    }
    c->features.bits = bits;
    memcpy(&c->threshold, data + 20, 4);
    memcpy(&c->model.b, data + 24, 4);
    c->features.idf = xmalloc(dim * 4);
    c->model.w = xmalloc(dim * 4);
    c->model.dim = (int)dim;
    memcpy(c->features.idf, data + 28, dim * 4);
    memcpy(c->model.w, data + 28 + dim * 4, dim * 4);
    free(data);
    if (!(c->threshold >= 0 && c->threshold <= 1)) {
        snprintf(err, err_len, "%s: threshold %g is not a probability", path, (double)c->threshold);
        tc_classifier_free(c);
        return false;
    }
    return true;
}

double tc_classifier_prob(const tc_classifier *c, const char *text, size_t len) {
    tc_vec v;
    tc_featurize(&c->features, text, len, &v);
    double p = sigmoid(tc_logreg_logit(&c->model, &v));
    tc_vec_free(&v);
    return p;
}

void tc_classifier_free(tc_classifier *c) {
    tc_features_free(&c->features);
    tc_logreg_free(&c->model);
}

/* ---- metrics ---- */

tc_metrics tc_evaluate(const double *scores, const int *labels, int n, double threshold) {
    tc_metrics m = {0};
    for (int i = 0; i < n; i++) {
        bool p = scores[i] >= threshold;
        if (p && labels[i]) m.tp++;
        else if (p) m.fp++;
        else if (labels[i]) m.fn++;
        else m.tn++;
    }
    m.precision = m.tp + m.fp ? (double)m.tp / (m.tp + m.fp) : 1.0;
    m.recall = m.tp + m.fn ? (double)m.tp / (m.tp + m.fn) : 0.0;
    m.f1 = m.precision + m.recall > 0 ? 2 * m.precision * m.recall / (m.precision + m.recall) : 0.0;
    m.accuracy = n ? (double)(m.tp + m.tn) / n : 0.0;
    return m;
}

static const double *sort_scores;
static int by_score_desc(const void *a, const void *b) {
    double x = sort_scores[*(const int *)a], y = sort_scores[*(const int *)b];
    if (x != y) return x < y ? 1 : -1;
    return *(const int *)a - *(const int *)b;
}

static int *order_by_score(const double *scores, int n) {
    int *o = xmalloc((size_t)n * sizeof *o);
    for (int i = 0; i < n; i++) o[i] = i;
    sort_scores = scores;
    qsort(o, n, sizeof *o, by_score_desc);
    return o;
}

int tc_pr_curve(const double *scores, const int *labels, int n, float *recall, float *precision, double *ap) {
    int *o = order_by_score(scores, n), pos = 0, tp = 0, k = 0;
    for (int i = 0; i < n; i++) pos += labels[i] != 0;
    double prev_r = 0, sum = 0;
    for (int i = 0; i < n; i++) {
        tp += labels[o[i]] != 0;
        if (i + 1 < n && scores[o[i + 1]] == scores[o[i]]) continue; /* a tie is one threshold */
        double r = pos ? (double)tp / pos : 0, p = (double)tp / (i + 1);
        recall[k] = (float)r, precision[k] = (float)p, k++;
        sum += (r - prev_r) * p;
        prev_r = r;
    }
    free(o);
    if (ap) *ap = sum;
    return k;
}

double tc_best_f1_threshold(const double *scores, const int *labels, int n) {
    /* BEGIN SOLUTION lab11: the F1-best threshold: sort the scores high to low (order_by_score), and at each distinct score count the positives at or above it (tp); F1 = 2 tp / (all positives + rows at or above); return the score with the best F1 (the first on ties) */
    int *o = order_by_score(scores, n), pos = 0, tp = 0;
    for (int i = 0; i < n; i++) pos += labels[i] != 0;
    double best = -1, t = n ? scores[o[0]] : 0.5;
    for (int i = 0; i < n; i++) {
        tp += labels[o[i]] != 0;
        if (i + 1 < n && scores[o[i + 1]] == scores[o[i]]) continue;
        double f1 = pos ? 2.0 * tp / (pos + i + 1) : 0; /* 2 tp / (tp + fp + tp + fn) */
        if (f1 > best) best = f1, t = scores[o[i]];
    }
    free(o);
    return t;
    /* END SOLUTION */
}
