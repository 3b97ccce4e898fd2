/* Lab 01 - linear and logistic regression from scratch, then with autograd.
 *   1. linear regression on the diabetes data: normal equations vs gradient descent, same coefficients
 *   2. logistic regression on the breast-cancer data by gradient descent: accuracy, loss curve
 *   3. a two-feature logistic model and its decision boundary
 *   4. the same logistic regression written with the autograd core and AdamW
 *   5. overfitting: polynomials of one feature, fitted to a few patients, against held-out ones
 * Writes PNGs and results.json into out/lab01. `make lab01`. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "csv.h"
#include "gradlab.h"
#include "io.h"
#include "json.h"
#include "plot.h"
#include "regression.h"

/* features (all columns but target) and target of a CSV, rows shuffled with a fixed seed; the file must have at
 * least min_features feature columns, 10 rows (so both the 80% and the 20% split hold some) and, for a
 * classification target, only 0/1 labels */
static void load(const char *path, const char *target, int min_features, bool binary, double **x, double **y, int *rows,
                 int *d, char ***names) {
    gl_csv t;
    char err[512];
    if (!gl_csv_read(path, &t, err, sizeof err)) {
        fprintf(stderr, "lab01: %s\n", err);
        exit(1);
    }
    int tc = gl_csv_column(&t, target);
    if (tc < 0) {
        fprintf(stderr, "lab01: '%s' has no column '%s'\n", path, target);
        exit(1);
    }
    if (t.cols - 1 < min_features || t.rows < 10) {
        fprintf(stderr, "lab01: '%s' has %d feature columns and %d rows; this part of the lab needs at least %d and 10\n",
                path, t.cols - 1, t.rows, min_features);
        exit(1);
    }
    for (int i = 0; binary && i < t.rows; i++)
        if (t.values[(size_t)i * t.cols + tc] != 0 && t.values[(size_t)i * t.cols + tc] != 1) {
            fprintf(stderr, "lab01: '%s' data row %d: %s is %g; a classification label must be 0 or 1\n", path, i + 1,
                    target, t.values[(size_t)i * t.cols + tc]);
            exit(1);
        }
    *rows = t.rows, *d = t.cols - 1;
    *x = malloc((size_t)t.rows * *d * sizeof **x);
    *y = malloc((size_t)t.rows * sizeof **y);
    *names = malloc((size_t)*d * sizeof **names);
    int *order = malloc((size_t)t.rows * sizeof *order);
    for (int i = 0; i < t.rows; i++) order[i] = i;
    gl_rng r;
    gl_rng_seed(&r, 2026);
    for (int i = t.rows - 1; i > 0; i--) { /* Fisher-Yates */
        int j = (int)gl_rng_below(&r, (uint64_t)i + 1), tmp = order[i];
        order[i] = order[j], order[j] = tmp;
    }
    for (int i = 0; i < t.rows; i++) {
        const double *row = t.values + (size_t)order[i] * t.cols;
        for (int c = 0, k = 0; c < t.cols; c++)
            if (c == tc) (*y)[i] = row[c];
            else (*x)[(size_t)i * *d + k++] = row[c];
    }
    for (int c = 0, k = 0; c < t.cols; c++)
        if (c != tc) (*names)[k++] = strdup(t.names[c]);
    free(order);
    gl_csv_free(&t);
}

static int status; /* 1 once a plot could not be written: reported at once, and the lab exits 1 at the end */

static void plot(const char *path, const char *title, const char *xl, const char *yl, gl_series *s, int n, bool logy) {
    char err[256];
    gl_chart c = {.title = title, .xlabel = xl, .ylabel = yl, .log_y = logy};
    if (!gl_plot_lines(path, &c, s, n, err, (int)sizeof err)) fprintf(stderr, "lab01: %s\n", err), status = 1;
}

int main(int argc, char **argv) {
    const char *out = "out/lab01", *data = "data/tabular";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--data") && i + 1 < argc) data = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else {
            fprintf(stderr, "usage: lab01 [--data DIR with diabetes.csv and breast_cancer.csv] [--out DIR]\n");
            return 2;
        }
    }
    mkdir("out", 0755);
    mkdir(out, 0755);
    char path[4096];
    printf("Lab 01: regression from scratch\n\n");

    /* 1. linear regression */
    double *x, *y;
    int rows, d;
    char **names;
    snprintf(path, sizeof path, "%s/diabetes.csv", data);
    load(path, "target", 1, false, &x, &y, &rows, &d, &names);
    int ntr = rows * 4 / 5, nte = rows - ntr;
    double *mean = malloc((size_t)d * sizeof *mean), *std = malloc((size_t)d * sizeof *std);
    standardize(x, rows, d, ntr, mean, std);
    double *w_exact = malloc((size_t)(d + 1) * sizeof *w_exact), *w_gd = malloc((size_t)(d + 1) * sizeof *w_gd);
    if (!linreg_closed_form(x, y, ntr, d, w_exact)) {
        fprintf(stderr, "lab01: the normal equations are singular\n");
        return 1;
    }
    enum { ITERS = 20000 };
    static double curve[ITERS], lcurve[ITERS];
    static float it[ITERS], fc[ITERS];
    linreg_gd(x, y, ntr, d, 0.3, ITERS, w_gd, curve);
    double diff = 0;
    for (int j = 0; j <= d; j++) diff = fmax(diff, fabs(w_exact[j] - w_gd[j]));
    printf("1. Linear regression, diabetes progression from %d features (%d train / %d test patients, standardised)\n", d,
           ntr, nte);
    printf("   %-6s %12s %12s\n", "", "normal eq.", "grad. descent");
    for (int j = 0; j <= d; j++) printf("   %-6s %12.3f %12.3f\n", j < d ? names[j] : "bias", w_exact[j], w_gd[j]);
    double mse_te = mse(x + (size_t)ntr * d, y + ntr, nte, d, w_exact), r2_te = r2(x + (size_t)ntr * d, y + ntr, nte, d, w_exact);
    printf("   largest coefficient difference after %d steps of gradient descent: %.2g\n", ITERS, diff);
    printf("   test MSE %.1f (RMSE %.1f), R^2 %.3f\n\n", mse_te, sqrt(mse_te), r2_te);
    for (int i = 0; i < ITERS; i++) it[i] = (float)i, fc[i] = (float)curve[i];
    gl_series ls[1] = {{"training MSE", it, fc, ITERS, false, NULL}};
    snprintf(path, sizeof path, "%s/linreg_loss.png", out);
    plot(path, "Linear regression: gradient descent", "step", "mean squared error (log)", ls, 1, true);

    /* 2. logistic regression, all features */
    double *bx, *by;
    int brows, bd;
    char **bnames;
    snprintf(path, sizeof path, "%s/breast_cancer.csv", data);
    load(path, "label", 2, true, &bx, &by, &brows, &bd, &bnames); /* part 3 plots two features */
    int btr = brows * 4 / 5, bte = brows - btr;
    double *bmean = malloc((size_t)bd * sizeof *bmean), *bstd = malloc((size_t)bd * sizeof *bstd);
    standardize(bx, brows, bd, btr, bmean, bstd);
    double *bw = malloc((size_t)(bd + 1) * sizeof *bw);
    logreg_gd(bx, by, btr, bd, 0.5, 3000, bw, lcurve);
    double acc_tr = logreg_accuracy(bx, by, btr, bd, bw), acc_te = logreg_accuracy(bx + (size_t)btr * bd, by + btr, bte, bd, bw);
    printf("2. Logistic regression, benign vs malignant from %d features (%d train / %d test tumours)\n", bd, btr, bte);
    printf("   after %d steps: log loss %.4f, train accuracy %.1f%%, test accuracy %.1f%%\n\n", 3000, lcurve[3000 - 1],
           100 * acc_tr, 100 * acc_te);
    for (int i = 0; i < 3000; i++) fc[i] = (float)lcurve[i];
    gl_series lg[1] = {{"training log loss", it, fc, 3000, false, NULL}};
    snprintf(path, sizeof path, "%s/logreg_loss.png", out);
    plot(path, "Logistic regression: gradient descent", "step", "log loss (log)", lg, 1, true);

    /* 3. two features and the decision boundary */
    int f0 = 0, f1 = 1; /* mean_radius, mean_texture */
    double *x2 = malloc((size_t)brows * 2 * sizeof *x2), w2[3];
    for (int i = 0; i < brows; i++) x2[i * 2] = bx[(size_t)i * bd + f0], x2[i * 2 + 1] = bx[(size_t)i * bd + f1];
    logreg_gd(x2, by, btr, 2, 0.5, 3000, w2, NULL);
    double acc2 = logreg_accuracy(x2 + (size_t)btr * 2, by + btr, bte, 2, w2);
    printf("3. Two features (%s, %s, standardised): test accuracy %.1f%%\n", bnames[f0], bnames[f1], 100 * acc2);
    printf("   decision boundary: %.3f * %s + %.3f * %s + %.3f = 0\n\n", w2[0], bnames[f0], w2[1], bnames[f1], w2[2]);
    float *mx = malloc((size_t)brows * 4), *my = malloc((size_t)brows * 4), *bxs = malloc((size_t)brows * 4), *bys = malloc((size_t)brows * 4);
    int nm = 0, nb = 0;
    for (int i = 0; i < brows; i++) {
        if (by[i] > 0.5) bxs[nb] = (float)x2[i * 2], bys[nb++] = (float)x2[i * 2 + 1];
        else mx[nm] = (float)x2[i * 2], my[nm++] = (float)x2[i * 2 + 1];
    }
    /* the boundary w0 x + w1 y + b = 0, drawn only across the box the points occupy */
    double x_lo = 1e30, x_hi = -1e30, y_lo = 1e30, y_hi = -1e30;
    for (int i = 0; i < brows; i++) {
        x_lo = fmin(x_lo, x2[i * 2]), x_hi = fmax(x_hi, x2[i * 2]);
        y_lo = fmin(y_lo, x2[i * 2 + 1]), y_hi = fmax(y_hi, x2[i * 2 + 1]);
    }
    double xa = -(w2[1] * y_hi + w2[2]) / w2[0], xb = -(w2[1] * y_lo + w2[2]) / w2[0]; /* where it meets y_hi, y_lo */
    if (xa > xb) { double t = xa; xa = xb; xb = t; }
    float lx[2] = {(float)fmax(xa, x_lo), (float)fmin(xb, x_hi)}, ly[2];
    for (int k = 0; k < 2; k++) ly[k] = (float)(-(w2[0] * lx[k] + w2[2]) / w2[1]);
    gl_series sc[3] = {{"malignant", mx, my, nm, true, NULL}, {"benign", bxs, bys, nb, true, NULL}, {"decision boundary", lx, ly, 2, false, NULL}};
    snprintf(path, sizeof path, "%s/decision_boundary.png", out);
    char xl[64], yl[64];
    snprintf(xl, sizeof xl, "%s (standardised)", bnames[f0]);
    snprintf(yl, sizeof yl, "%s (standardised)", bnames[f1]);
    plot(path, "Logistic regression on two features", xl, yl, sc, 3, false);

    /* 4. the same model with autograd: no gradient written by hand */
    gl_tensor *W = gl_param(GL_DIMS(bd, 2), "W"), *b = gl_param(GL_DIMS(2), "b");
    b->no_weight_decay = true;
    gl_tensor *params[2] = {W, b};
    gl_optim *opt = gl_adamw(params, 2, 0.05f, 0.9f, 0.999f, 1e-8f, 0.0f);
    float *xf = malloc((size_t)brows * bd * sizeof *xf);
    int32_t *labels = malloc((size_t)brows * sizeof *labels);
    for (int i = 0; i < brows * bd; i++) xf[i] = (float)bx[i];
    for (int i = 0; i < brows; i++) labels[i] = by[i] > 0.5;
    gl_tensor *loss = NULL;
    for (int step = 0; step < 300; step++) {
        gl_step_reset();
        loss = gl_cross_entropy(gl_linear(gl_from(GL_DIMS(btr, bd), xf), W, b), labels, -1);
        gl_backward(loss);
        gl_optim_step(opt);
        gl_optim_zero_grad(opt);
    }
    gl_step_reset();
    gl_no_grad_begin();
    gl_tensor *logits = gl_linear(gl_from(GL_DIMS(bte, bd), xf + (size_t)btr * bd), W, b);
    gl_no_grad_end();
    int ok = 0;
    for (int i = 0; i < bte; i++) ok += (logits->data[i * 2 + 1] > logits->data[i * 2]) == labels[btr + i];
    double acc_ag = (double)ok / bte;
    printf("4. With autograd (gl_linear + gl_cross_entropy, AdamW, 300 steps): test accuracy %.1f%%\n", 100 * acc_ag);
    printf("   the model is three lines; the gradient of section 2, derived by hand, is computed by backward()\n\n");

    /* 5. overfitting: one feature (bmi) as a polynomial of growing degree, fitted to 30 training patients by the
     * normal equations, and scored on the held-out ones */
    enum { FEW = 30, MAX_DEG = 12 };
    int bmi = 0;
    for (int j = 0; j < d; j++)
        if (!strcmp(names[j], "bmi")) bmi = j;
    double train_mse[MAX_DEG + 1], val_mse[MAX_DEG + 1];
    float degs[MAX_DEG], ftr[MAX_DEG], fva[MAX_DEG];
    int best_deg = 1;
    printf("5. Overfitting: %s as a polynomial of degree 1..%d, fitted to %d training patients, scored on the %d "
           "held-out ones\n", names[bmi], MAX_DEG, FEW, nte);
    printf("   %6s %10s %12s\n", "degree", "train MSE", "held-out MSE");
    for (int deg = 1; deg <= MAX_DEG; deg++) {
        double *px = malloc((size_t)rows * deg * sizeof *px), *pm = malloc((size_t)deg * sizeof *pm),
               *ps = malloc((size_t)deg * sizeof *ps), *pw = malloc((size_t)(deg + 1) * sizeof *pw);
        double *py = malloc((size_t)(FEW + nte) * sizeof *py);
        /* rows: the first FEW training patients, then the held-out ones; powers of the standardised bmi,
         * each standardised again on the FEW (so the normal equations stay well conditioned) */
        for (int i = 0; i < FEW + nte; i++) {
            int src = i < FEW ? i : ntr + (i - FEW);
            for (int k = 0; k < deg; k++) px[(size_t)i * deg + k] = pow(x[(size_t)src * d + bmi], k + 1);
            py[i] = y[src];
        }
        standardize(px, FEW + nte, deg, FEW, pm, ps);
        bool solved = linreg_closed_form(px, py, FEW, deg, pw);
        train_mse[deg] = solved ? mse(px, py, FEW, deg, pw) : NAN;
        val_mse[deg] = solved ? mse(px + (size_t)FEW * deg, py + FEW, nte, deg, pw) : NAN;
        if (val_mse[deg] < val_mse[best_deg]) best_deg = deg;
        printf("   %6d %10.1f %12.1f%s\n", deg, train_mse[deg], val_mse[deg], solved ? "" : "   (singular)");
        degs[deg - 1] = (float)deg, ftr[deg - 1] = (float)train_mse[deg], fva[deg - 1] = (float)val_mse[deg];
        free(px), free(pm), free(ps), free(pw), free(py);
    }
    printf("   the training error only falls as the degree grows; the held-out error is lowest at degree %d and then\n"
           "   climbs: the high-degree polynomials fit the %d patients' noise, not the trend\n\n", best_deg, FEW);
    gl_series ov[2] = {{"training MSE (30 patients)", degs, ftr, MAX_DEG, false, NULL},
                       {"held-out MSE", degs, fva, MAX_DEG, false, NULL}};
    snprintf(path, sizeof path, "%s/overfitting.png", out);
    plot(path, "Overfitting: polynomial degree", "degree of the polynomial in bmi", "mean squared error (log)", ov, 2, true);

    snprintf(path, sizeof path, "%s/results.json", out);
    gl_json_writer js;
    if (gl_jw_open(&js, path)) {
        gl_jw_object(&js, NULL);
        gl_jw_number(&js, "linreg_max_coefficient_difference", diff);
        gl_jw_number(&js, "linreg_test_mse", mse_te);
        gl_jw_number(&js, "linreg_test_r2", r2_te);
        gl_jw_number(&js, "logreg_test_accuracy", acc_te);
        gl_jw_number(&js, "logreg_two_feature_test_accuracy", acc2);
        gl_jw_number(&js, "autograd_logreg_test_accuracy", acc_ag);
        gl_jw_int(&js, "overfitting_best_degree", best_deg);
        gl_jw_array(&js, "overfitting");
        for (int deg = 1; deg <= MAX_DEG; deg++) {
            gl_jw_object(&js, NULL);
            gl_jw_int(&js, "degree", deg);
            gl_jw_number(&js, "train_mse", train_mse[deg]);
            gl_jw_number(&js, "heldout_mse", val_mse[deg]);
            gl_jw_end(&js);
        }
        gl_jw_end(&js);
        gl_jw_end(&js);
    }
    if (!gl_jw_close(&js)) fprintf(stderr, "lab01: could not write %s\n", path), status = 1;
    printf("wrote %s/linreg_loss.png, logreg_loss.png, decision_boundary.png, overfitting.png, results.json\n", out);
    gl_stdout_check("lab01");
    return status;
}
