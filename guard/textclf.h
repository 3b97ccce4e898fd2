/* Text classifiers on hashed n-grams (lab 11: spam, prompt injection).
 *
 *   features   the text's first TC_MAX_BYTES bytes, ASCII lower-cased; words are runs of letters, digits and
 *              non-ASCII bytes (so UTF-8 words stay whole); each word and each pair of adjacent words, and each run
 *              of 3, 4 and 5 characters (whitespace collapsed to one space), hashed (FNV-1a with a namespace byte)
 *              into 2^bits buckets. A bucket's value is (1 + log count) x idf, then the vector is scaled to unit
 *              length: scikit-learn's TfidfVectorizer(sublinear_tf=True), with the hashing trick instead of a
 *              vocabulary. idf = 1 + log((1 + N) / (1 + df)) over the training texts (smooth, as scikit-learn).
 *   logreg     p = s(w . x + b); the lab 01 model on sparse inputs.
 *   mlp        p = s(w2 . relu(W1^T x + b1) + b2); W1 is stored one row of `hidden` floats per bucket, so a sparse
 *              input sums the rows of its buckets.
 * Both are trained by AdaGrad on the per-example log loss (L2 on the weights an example touches), one example at a
 * time in an order drawn from the seed: same seed, same weights, bit for bit. */
#ifndef GRADLAB_TEXTCLF_H
#define GRADLAB_TEXTCLF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { TC_MAX_BYTES = 8192, TC_DEFAULT_BITS = 18 };

typedef struct {
    uint32_t *idx; /* ascending, distinct */
    float *val;
    int n;
} tc_vec;

typedef struct {
    int bits;    /* 2^bits buckets */
    float *idf;  /* [2^bits], or NULL: every idf 1 */
} tc_features;

/* the bucket counts of a text, idf-weighted and unit length (out's arrays malloc'd; tc_vec_free) */
void tc_featurize(const tc_features *f, const char *text, size_t len, tc_vec *out);
void tc_vec_free(tc_vec *v);
/* idf from the document frequencies of n texts (bits set, idf NULL before) */
void tc_fit_idf(tc_features *f, const char *const *texts, const size_t *lens, int n);
void tc_features_free(tc_features *f);

typedef struct {
    float lr;     /* AdaGrad's step (default 0.5 for logreg, 0.05 for the MLP) */
    float l2;     /* per touched weight (default 1e-6) */
    int epochs;   /* default 8 */
    uint64_t seed;
    int hidden;   /* MLP width (default 32) */
} tc_train_config;
#define TC_LOGREG_DEFAULTS ((tc_train_config){0.5f, 1e-6f, 8, 1, 0})
#define TC_MLP_DEFAULTS ((tc_train_config){0.05f, 1e-6f, 8, 1, 32})

typedef struct {
    int dim;
    float *w, b;
} tc_logreg;

typedef struct {
    int dim, hidden;
    float *w1; /* [dim, hidden] */
    float *b1, *w2; /* [hidden] */
    float b2;
} tc_mlp;

void tc_logreg_train(tc_logreg *m, int dim, const tc_vec *x, const int *y, int n, tc_train_config c);
double tc_logreg_logit(const tc_logreg *m, const tc_vec *x);
void tc_logreg_free(tc_logreg *m);

void tc_mlp_train(tc_mlp *m, int dim, const tc_vec *x, const int *y, int n, tc_train_config c);
double tc_mlp_logit(const tc_mlp *m, const tc_vec *x);
/* one example's log loss and its gradients: g_rows [x->n, hidden] (the rows of W1 that x touches, in x's order),
 * g_b1 and g_w2 [hidden], *g_b2; training steps on exactly these (tests check them by finite differences) */
double tc_mlp_example_grad(const tc_mlp *m, const tc_vec *x, int y, float *g_rows, float *g_b1, float *g_w2,
                           float *g_b2);
void tc_mlp_free(tc_mlp *m);

/* A trained logistic regression with its features and decision threshold, as one file ("gradlab-textclf 1";
 * docs/formats.md): written to a temporary and renamed; loading checks the magic, sizes and checksum. */
typedef struct {
    tc_features features;
    tc_logreg model;
    float threshold; /* on the probability */
} tc_classifier;

bool tc_classifier_save(const tc_classifier *c, const char *path, char *err, size_t err_len);
bool tc_classifier_load(tc_classifier *c, const char *path, char *err, size_t err_len);
double tc_classifier_prob(const tc_classifier *c, const char *text, size_t len);
void tc_classifier_free(tc_classifier *c);

/* ---- binary metrics ---- */
typedef struct {
    int tp, fp, fn, tn;
    double precision, recall, f1, accuracy;
} tc_metrics;

/* predictions score >= threshold against labels (1 = positive) */
tc_metrics tc_evaluate(const double *scores, const int *labels, int n, double threshold);
/* the threshold (one of the scores) with the best F1; ties to the higher threshold */
double tc_best_f1_threshold(const double *scores, const int *labels, int n);
/* the precision-recall curve: at each distinct score, highest first, recall and precision of score >= it; room for n
 * points in each; returns the number of points. *ap gets the average precision (sum of precision x recall steps). */
int tc_pr_curve(const double *scores, const int *labels, int n, float *recall, float *precision, double *ap);

#endif
