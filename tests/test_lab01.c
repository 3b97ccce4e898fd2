/* Lab 01's routines and the CSV reader. */
#include "csv.h"
#include "regression.h"
#include "testutil.h"

static void load_all(const char *path, const char *target, double **x, double **y, int *rows, int *d) {
    gl_csv t;
    char err[256];
    cr_assert(gl_csv_read(path, &t, err, sizeof err), "%s", err);
    int tc = gl_csv_column(&t, target);
    cr_assert(tc >= 0);
    *rows = t.rows, *d = t.cols - 1;
    *x = malloc((size_t)t.rows * *d * sizeof **x);
    *y = malloc((size_t)t.rows * sizeof **y);
    for (int i = 0; i < t.rows; i++)
        for (int c = 0, k = 0; c < t.cols; c++)
            if (c == tc) (*y)[i] = t.values[i * t.cols + c];
            else (*x)[i * *d + k++] = t.values[i * t.cols + c];
    gl_csv_free(&t);
}

/* numpy.linalg.lstsq on the same standardised diabetes data (all 442 rows; population std), computed once */
static const double numpy_w[11] = {-0.47612079, -11.40686692, 24.72654886, 15.42940413, -37.67995261, 22.67616277,
                                   4.80613814,  8.42203936,   35.73444577, 3.21667372,  152.13348416};

Test(lab01, normal_equations_match_numpy_and_gradient_descent_reaches_them) {
    double *x, *y, w[11], g[11], mean[10], std[10];
    int rows, d;
    load_all("data/tabular/diabetes.csv", "target", &x, &y, &rows, &d);
    cr_assert(rows == 442 && d == 10);
    standardize(x, rows, d, rows, mean, std);
    cr_assert(linreg_closed_form(x, y, rows, d, w));
    for (int j = 0; j <= d; j++) /* 1e-6 relative: both solve the same 11 x 11 system in double */
        cr_assert(fabs(w[j] - numpy_w[j]) <= 1e-6 * fmax(1.0, fabs(numpy_w[j])), "w[%d] = %.8f, numpy %.8f", j, w[j],
                  numpy_w[j]);
    linreg_gd(x, y, rows, d, 0.3, 20000, g, NULL);
    for (int j = 0; j <= d; j++) cr_assert(fabs(g[j] - w[j]) < 1e-6, "gradient descent w[%d] = %.8f, exact %.8f", j, g[j], w[j]);
    cr_assert(fabs(r2(x, y, rows, d, w) - 0.5177) < 1e-3, "R^2 of the full least-squares fit is 0.5177 (numpy)");
    free(x);
    free(y);
}

Test(lab01, logistic_regression_separates_breast_cancer) {
    double *x, *y, w[31], mean[30], std[30], curve[2000];
    int rows, d;
    load_all("data/tabular/breast_cancer.csv", "label", &x, &y, &rows, &d);
    standardize(x, rows, d, rows, mean, std);
    logreg_gd(x, y, rows, d, 0.5, 2000, w, curve);
    cr_assert(curve[1999] < curve[0] && curve[0] > 0.69 && curve[0] < 0.70, "log loss starts at log 2 and falls");
    cr_assert(logreg_accuracy(x, y, rows, d, w) > 0.98, "training accuracy %.3f", logreg_accuracy(x, y, rows, d, w));
    free(x);
    free(y);
}

static void write_file(const char *path, const char *s) {
    FILE *f = fopen(path, "w");
    fputs(s, f);
    fclose(f);
}

Test(lab01, csv_errors_name_line_and_column) {
    gl_csv t;
    char err[256], path[64];
    snprintf(path, sizeof path, "/tmp/gradlab_csv_%d.csv", (int)getpid());
    write_file(path, "a,b,c\n1,2,3\n4,x,6\n");
    cr_assert(!gl_csv_read(path, &t, err, sizeof err));
    cr_assert(strstr(err, "line 3") && strstr(err, "column 2 (b)") && strstr(err, "not a number"), "%s", err);
    write_file(path, "a,b,c\n1,2\n");
    cr_assert(!gl_csv_read(path, &t, err, sizeof err));
    cr_assert(strstr(err, "line 2 has 2 values") && strstr(err, "3 columns"), "%s", err);
    write_file(path, "a,b\n1,2,3\n");
    cr_assert(!gl_csv_read(path, &t, err, sizeof err) && strstr(err, "more values"), "%s", err);
    write_file(path, "a,b\n");
    cr_assert(!gl_csv_read(path, &t, err, sizeof err) && strstr(err, "no rows"), "%s", err);
    write_file(path, "");
    cr_assert(!gl_csv_read(path, &t, err, sizeof err) && strstr(err, "empty"), "%s", err);
    write_file(path, "a,b\r\n1.5,-2e3\r\n");
    cr_assert(gl_csv_read(path, &t, err, sizeof err), "%s", err);
    cr_assert(t.rows == 1 && t.values[1] == -2000.0 && !strcmp(t.names[1], "b"));
    gl_csv_free(&t);
    remove(path);
}
