#include "regression.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void standardize(double *x, int rows, int d, int fit_rows, double *mean, double *std) {
    for (int j = 0; j < d; j++) {
        double s = 0, ss = 0;
        for (int i = 0; i < fit_rows; i++) s += x[i * d + j];
        mean[j] = s / fit_rows;
        for (int i = 0; i < fit_rows; i++) ss += (x[i * d + j] - mean[j]) * (x[i * d + j] - mean[j]);
        std[j] = sqrt(ss / fit_rows);
        if (std[j] == 0) std[j] = 1; /* a constant column stays 0 */
        for (int i = 0; i < rows; i++) x[i * d + j] = (x[i * d + j] - mean[j]) / std[j];
    }
}

static double predict(const double *xi, int d, const double *w) {
    double p = w[d];
    for (int j = 0; j < d; j++) p += w[j] * xi[j];
    return p;
}

bool linreg_closed_form(const double *x, const double *y, int rows, int d, double *w) {
    int n = d + 1; /* the bias is a column of ones */
    double *a = calloc((size_t)n * (n + 1), sizeof *a); /* [X1^T X1 | X1^T y] */
    for (int i = 0; i < rows; i++)
        for (int r = 0; r < n; r++) {
            double xr = r < d ? x[i * d + r] : 1.0;
            for (int c = 0; c < n; c++) a[r * (n + 1) + c] += xr * (c < d ? x[i * d + c] : 1.0);
            a[r * (n + 1) + n] += xr * y[i];
        }
    for (int col = 0; col < n; col++) { /* Gaussian elimination with partial pivoting */
        int piv = col;
        for (int r = col + 1; r < n; r++)
            if (fabs(a[r * (n + 1) + col]) > fabs(a[piv * (n + 1) + col])) piv = r;
        if (fabs(a[piv * (n + 1) + col]) < 1e-12) {
            free(a);
            return false; /* singular: a feature is a combination of others */
        }
        for (int c = 0; c <= n; c++) {
            double t = a[col * (n + 1) + c];
            a[col * (n + 1) + c] = a[piv * (n + 1) + c];
            a[piv * (n + 1) + c] = t;
        }
        for (int r = 0; r < n; r++) {
            if (r == col) continue;
            double f = a[r * (n + 1) + col] / a[col * (n + 1) + col];
            for (int c = col; c <= n; c++) a[r * (n + 1) + c] -= f * a[col * (n + 1) + c];
        }
    }
    for (int r = 0; r < n; r++) w[r] = a[r * (n + 1) + n] / a[r * (n + 1) + r];
    free(a);
    return true;
}

/* Batch gradient descent for a model with a linear score z = x w + b. `residual` returns dL/dz for one sample
 * (and adds its loss): for both losses here the gradient is then (1/n) X^T r, which is what makes the two
 * models the same algorithm. */
static void gradient_descent(const double *x, const double *y, int rows, int d, double lr, int iters, double *w,
                             double *curve, double (*residual)(double z, double y, double *loss)) {
    double *g = malloc((size_t)(d + 1) * sizeof *g);
    memset(w, 0, (size_t)(d + 1) * sizeof *w);
    for (int it = 0; it < iters; it++) {
        memset(g, 0, (size_t)(d + 1) * sizeof *g);
        double loss = 0;
        /* BEGIN SOLUTION lab01: one step of batch gradient descent: the gradient (1/n) X^T r over the rows, then w -= lr * gradient */
        for (int i = 0; i < rows; i++) {
            double r = residual(predict(x + (size_t)i * d, d, w), y[i], &loss);
            for (int j = 0; j < d; j++) g[j] += r * x[i * d + j];
            g[d] += r;
        }
        if (curve) curve[it] = loss / rows;
        for (int j = 0; j <= d; j++) w[j] -= lr * g[j] / rows;
        /* END SOLUTION */
    }
    free(g);
}

/* squared error: dL/dz = z - y (for L = (z - y)^2 / 2; the curve reports (z - y)^2, the MSE) */
static double squared_residual(double z, double y, double *loss) {
    *loss += (z - y) * (z - y);
    return z - y;
}

/* log loss of p = sigmoid(z): dL/dz = p - y; the loss written stably as log(1 + e^-|z|) + max(-z or z, 0) */
static double logistic_residual(double z, double y, double *loss) {
    *loss += log1p(exp(-fabs(z))) + (y > 0.5 ? fmax(-z, 0) : fmax(z, 0));
    return 1.0 / (1.0 + exp(-z)) - y;
}

void linreg_gd(const double *x, const double *y, int rows, int d, double lr, int iters, double *w, double *curve) {
    gradient_descent(x, y, rows, d, lr, iters, w, curve, squared_residual);
}

void logreg_gd(const double *x, const double *y, int rows, int d, double lr, int iters, double *w, double *curve) {
    gradient_descent(x, y, rows, d, lr, iters, w, curve, logistic_residual);
}

double mse(const double *x, const double *y, int rows, int d, const double *w) {
    double s = 0;
    for (int i = 0; i < rows; i++) {
        double e = predict(x + (size_t)i * d, d, w) - y[i];
        s += e * e;
    }
    return s / rows;
}

double r2(const double *x, const double *y, int rows, int d, const double *w) {
    double mean = 0, var = 0;
    for (int i = 0; i < rows; i++) mean += y[i];
    mean /= rows;
    for (int i = 0; i < rows; i++) var += (y[i] - mean) * (y[i] - mean);
    return 1.0 - mse(x, y, rows, d, w) * rows / var;
}

double logreg_accuracy(const double *x, const double *y, int rows, int d, const double *w) {
    int ok = 0;
    for (int i = 0; i < rows; i++) ok += (predict(x + (size_t)i * d, d, w) > 0) == (y[i] > 0.5);
    return (double)ok / rows;
}
