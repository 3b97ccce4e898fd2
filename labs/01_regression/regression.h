/* Lab 01's routines, kept apart from its main so the tests can check them: feature scaling, linear regression
 * by the normal equations and by gradient descent, logistic regression by gradient descent, metrics. All in
 * double precision on row-major arrays: rows x d features, one target per row. */
#ifndef GRADLAB_REGRESSION_H
#define GRADLAB_REGRESSION_H

#include <stdbool.h>

/* x[:, j] = (x[:, j] - mean_j) / std_j with mean and std taken from the first fit_rows rows (the training set) */
void standardize(double *x, int rows, int d, int fit_rows, double *mean, double *std);
/* w (d weights, then the bias) minimising sum (x w + b - y)^2: normal equations solved by Gaussian elimination */
bool linreg_closed_form(const double *x, const double *y, int rows, int d, double *w);
/* batch gradient descent on the mean squared error / 2; mse_curve (iters entries, may be NULL) gets the loss */
void linreg_gd(const double *x, const double *y, int rows, int d, double lr, int iters, double *w, double *mse_curve);
/* logistic regression (labels 0/1) by batch gradient descent on the mean log loss */
void logreg_gd(const double *x, const double *y, int rows, int d, double lr, int iters, double *w, double *loss_curve);
double mse(const double *x, const double *y, int rows, int d, const double *w);
double r2(const double *x, const double *y, int rows, int d, const double *w);
double logreg_accuracy(const double *x, const double *y, int rows, int d, const double *w);

#endif
