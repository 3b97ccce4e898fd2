/* GPTQ (Frantar, Ashkboos, Hoefler, Alistarh 2022, arXiv 2210.17323): quantize a linear layer's weight column by
 * column, and after each column spread its rounding error over the columns not yet quantized, weighted by the
 * inverse Hessian of the layer's inputs, so that the layer's outputs on the calibration data move as little as
 * possible. For the loss ||X W^T - X Q^T||^2 the Hessian is H = 2 X^T X / n; with U the upper Cholesky factor of
 * H^-1 (H^-1 = U^T U), quantizing column i of a row w leaves the error e = (w_i - q_i) / U_ii, and the optimal
 * change of the later columns is w_j -= e U_ij (j > i). Blocks of `block` columns get these updates at once inside
 * the block and as one product Err U[block, later] after it (the paper's lazy batch updates).
 *
 * Rows are independent given U, so threads take tiles of rows; every row is computed in the same order whatever
 * the thread count (bitwise the same result). The block formats' scale for a group of 32 columns is chosen, as
 * round-to-nearest would choose it, from the group's values at the moment the first of them is reached, i.e.
 * after the error of the earlier columns has been spread into them. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

/* in place: the lower Cholesky factor L of the n x n symmetric matrix a (H = L L^T); false at a pivot <= 0 */
static bool cholesky_lower(double *a, int n, int *bad) {
    for (int j = 0; j < n; j++) {
        double d = a[(size_t)j * n + j];
        for (int k = 0; k < j; k++) d -= a[(size_t)j * n + k] * a[(size_t)j * n + k];
        if (!(d > 0)) return *bad = j, false;
        d = sqrt(d);
        a[(size_t)j * n + j] = d;
#pragma omp parallel for schedule(static) if (n - j > 256)
        for (int i = j + 1; i < n; i++) {
            double s = a[(size_t)i * n + j];
            const double *ri = a + (size_t)i * n, *rj = a + (size_t)j * n;
            for (int k = 0; k < j; k++) s -= ri[k] * rj[k];
            a[(size_t)i * n + j] = s / d;
        }
        for (int i = 0; i < j; i++) a[(size_t)i * n + j] = 0; /* the upper triangle is not part of L */
    }
    return true;
}

/* U (upper, row-major) with H^-1 = U^T U, from H (destroyed). false if H is not positive definite. */
static bool inverse_hessian_factor(double *h, int n, double *u, int *bad) {
    if (!cholesky_lower(h, n, bad)) return false;
    /* M = L^-1 (lower), column by column of the identity: forward substitution, into u as scratch */
    memset(u, 0, (size_t)n * n * sizeof *u);
#pragma omp parallel for schedule(dynamic, 16)
    for (int c = 0; c < n; c++) {
        u[(size_t)c * n + c] = 1.0 / h[(size_t)c * n + c];
        for (int i = c + 1; i < n; i++) {
            double s = 0;
            for (int k = c; k < i; k++) s += h[(size_t)i * n + k] * u[(size_t)k * n + c];
            u[(size_t)i * n + c] = -s / h[(size_t)i * n + i];
        }
    }
    /* H^-1 = M^T M into h (symmetric; M lower: (M^T M)_ij = sum_{k >= max(i,j)} M_ki M_kj) */
#pragma omp parallel for schedule(dynamic, 16)
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++) {
            double s = 0;
            for (int k = i; k < n; k++) s += u[(size_t)k * n + i] * u[(size_t)k * n + j];
            h[(size_t)i * n + j] = h[(size_t)j * n + i] = s;
        }
    /* H^-1 = L2 L2^T; U = L2^T */
    if (!cholesky_lower(h, n, bad)) return false;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) u[(size_t)i * n + j] = j >= i ? h[(size_t)j * n + i] : 0;
    return true;
}

enum { ROW_TILE = 8 };

bool gl_gptq_quantize(gl_qtype t, float *W, int rows, int cols, double *H, double damp, int block, void *out,
                      char *err, size_t err_len) {
    if (t != GL_QT_Q8_0 && t != GL_QT_Q4_0 && t != GL_QT_Q4_1 && t != GL_QT_Q3_0)
        return snprintf(err, err_len, "GPTQ needs a block type (Q8_0, Q4_0, Q4_1, Q3_0), got type %d", (int)t), false;
    if (cols % GL_QK || rows < 1 || block < GL_QK || block % GL_QK)
        return snprintf(err, err_len, "GPTQ: %d x %d weight, block %d: columns and block must be multiples of %d",
                        rows, cols, block, GL_QK), false;
    /* a column no calibration input ever reached carries no information: its weights are zeroed, as in the paper */
    double mean = 0;
    for (int i = 0; i < cols; i++) {
        double *d = &H[(size_t)i * cols + i];
        if (!isfinite(*d)) return snprintf(err, err_len, "GPTQ: the calibration Hessian has a non-finite value at column %d", i), false;
        if (*d == 0) {
            *d = 1;
            for (int r = 0; r < rows; r++) W[(size_t)r * cols + i] = 0;
        }
        mean += *d / cols;
    }
    for (int i = 0; i < cols; i++) H[(size_t)i * cols + i] += damp * mean;
    double *U = malloc((size_t)cols * cols * sizeof *U);
    if (!U) return snprintf(err, err_len, "GPTQ: out of memory for a %d x %d Hessian", cols, cols), false;
    int bad = 0;
    if (!inverse_hessian_factor(H, cols, U, &bad)) {
        free(U);
        return snprintf(err, err_len, "GPTQ: the calibration Hessian is not positive definite (pivot %d of %d) even "
                        "with damping %g of its mean diagonal: give more calibration tokens or a larger damping",
                        bad, cols, damp), false;
    }
    size_t row_bytes = gl_qtype_row_bytes(t, cols), block_bytes = gl_qtype_row_bytes(t, GL_QK);
    int tiles = (rows + ROW_TILE - 1) / ROW_TILE;
#pragma omp parallel
    {
        double *w = malloc((size_t)ROW_TILE * cols * sizeof *w), *e = malloc((size_t)ROW_TILE * block * sizeof *e);
        int *codes = malloc((size_t)ROW_TILE * GL_QK * sizeof *codes);
        gl_block_scale scale[ROW_TILE];
#pragma omp for schedule(dynamic, 1)
        for (int tile = 0; tile < tiles; tile++) {
            int r0 = tile * ROW_TILE, nr = rows - r0 < ROW_TILE ? rows - r0 : ROW_TILE;
            for (int r = 0; r < nr; r++)
                for (int j = 0; j < cols; j++) w[(size_t)r * cols + j] = W[(size_t)(r0 + r) * cols + j];
            for (int i1 = 0; i1 < cols; i1 += block) {
                int i2 = i1 + block < cols ? i1 + block : cols;
                for (int i = i1; i < i2; i++) {
                    const double *ui = U + (size_t)i * cols;
                    for (int r = 0; r < nr; r++) {
                        double *wr = w + (size_t)r * cols;
                        if (i % GL_QK == 0) {
                            float g[GL_QK];
                            for (int j = 0; j < GL_QK; j++) g[j] = (float)wr[i + j];
                            scale[r] = gl_block_scale_of(t, g);
                        }
                        int q = gl_block_code(t, scale[r], (float)wr[i]);
                        double v = gl_block_value(t, scale[r], q), er = (wr[i] - v) / ui[i];
                        codes[r * GL_QK + i % GL_QK] = q;
                        e[(size_t)r * block + (i - i1)] = er;
                        wr[i] = v;
                        for (int j = i + 1; j < i2; j++) wr[j] -= er * ui[j];
                        if (i % GL_QK == GL_QK - 1)
                            gl_block_pack(t, scale[r], codes + r * GL_QK,
                                          (uint8_t *)out + (size_t)(r0 + r) * row_bytes + (size_t)(i / GL_QK) * block_bytes);
                    }
                }
                for (int r = 0; r < nr; r++) /* the block's errors reach the later columns at once */
                    for (int i = i1; i < i2; i++) {
                        double er = e[(size_t)r * block + (i - i1)];
                        const double *ui = U + (size_t)i * cols;
                        double *wr = w + (size_t)r * cols;
                        for (int j = i2; j < cols; j++) wr[j] -= er * ui[j];
                    }
            }
            for (int r = 0; r < nr; r++)
                for (int j = 0; j < cols; j++) W[(size_t)(r0 + r) * cols + j] = (float)w[(size_t)r * cols + j];
        }
        free(w), free(e), free(codes);
    }
    free(U);
    return true;
}
