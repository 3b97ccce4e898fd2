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

/* in place: the lower Cholesky factor L of the n x n symmetric matrix a (a = L L^T; the upper triangle is zeroed);
 * false at a pivot <= 0. Row by row: each entry is one dot product of two rows' beginnings. */
static bool cholesky_lower(double *a, int n, int *bad) {
    for (int j = 0; j < n; j++) {
        const double *rj = a + (size_t)j * n;
        double d = rj[j];
#pragma omp simd reduction(- : d)
        for (int k = 0; k < j; k++) d -= rj[k] * rj[k];
        if (!(d > 0)) return *bad = j, false;
        d = sqrt(d);
        a[(size_t)j * n + j] = d;
#pragma omp parallel for schedule(static) if (n - j > 128)
        for (int i = j + 1; i < n; i++) {
            const double *ri = a + (size_t)i * n;
            double s = ri[j];
#pragma omp simd reduction(- : s)
            for (int k = 0; k < j; k++) s -= ri[k] * rj[k];
            a[(size_t)i * n + j] = s / d;
        }
    }
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) a[(size_t)i * n + j] = 0;
    return true;
}

/* U (upper, row-major) with H^-1 = U^T U, from H (destroyed). false if H is not positive definite.
 * With J the reversal of the index order: J H J = L L^T (L lower), so H = V V^T with V = J L J upper, and
 * H^-1 = V^-T V^-1: U = V^-1 = J L^-1 J. One Cholesky factorization and one triangular inverse. */
static bool inverse_hessian_factor(double *h, int n, double *u, int *bad) {
    for (int i = 0; i < n / 2; i++) /* h = J h J: reverse the rows, then each row */
        for (int j = 0; j < n; j++) {
            double t = h[(size_t)i * n + j];
            h[(size_t)i * n + j] = h[(size_t)(n - 1 - i) * n + j], h[(size_t)(n - 1 - i) * n + j] = t;
        }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n / 2; j++) {
            double t = h[(size_t)i * n + j];
            h[(size_t)i * n + j] = h[(size_t)i * n + n - 1 - j], h[(size_t)i * n + n - 1 - j] = t;
        }
    if (!cholesky_lower(h, n, bad)) return *bad = n - 1 - *bad, false;
    /* M = L^-1, row by row: row i is (e_i - sum_{k<i} L_ik M_k) / L_ii, the sum taken as row updates (each thread
     * a range of columns, so the order of every sum is fixed) */
    double *m = u;
    memset(m, 0, (size_t)n * n * sizeof *m);
    int chunks = (n + 63) / 64;
#pragma omp parallel for schedule(static)
    for (int ch = 0; ch < chunks; ch++) {
        int c0 = ch * 64, c1 = c0 + 64 < n ? c0 + 64 : n;
        for (int i = c0; i < n; i++) {
            double *mi = m + (size_t)i * n;
            for (int k = c0; k < i; k++) {
                double l = h[(size_t)i * n + k];
                const double *mk = m + (size_t)k * n;
                int top = k + 1 < c1 ? k + 1 : c1; /* M_k is zero right of k */
#pragma omp simd
                for (int j = c0; j < top; j++) mi[j] -= l * mk[j];
            }
            double inv = 1.0 / h[(size_t)i * n + i];
            for (int j = c0; j < c1 && j <= i; j++) mi[j] = (j == i ? 1.0 + mi[j] : mi[j]) * inv;
        }
    }
    /* U = J M J: U_ij = M_{n-1-i, n-1-j}, upper since M is lower; reversing in place */
    for (size_t e = 0; e < (size_t)n * n / 2; e++) {
        double t = m[e];
        m[e] = m[(size_t)n * n - 1 - e], m[(size_t)n * n - 1 - e] = t;
    }
    return true;
}

enum { ROW_TILE = 8 };

static const double *sort_key;
static int by_key_descending(const void *a, const void *b) { /* ties keep the index order: a stable permutation */
    int i = *(const int *)a, j = *(const int *)b;
    return sort_key[i] > sort_key[j] ? -1 : sort_key[i] < sort_key[j] ? 1 : (i > j) - (i < j);
}

bool gl_gptq_quantize(gl_qtype t, float *W, int rows, int cols, double *H, double damp, int block, bool act_order,
                      void *out, char *err, size_t err_len) {
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
    /* act order: the columns of largest Hessian diagonal (the inputs that move the output most) first, while they
     * still have the most columns left to absorb their error; each block keeps the scale round to nearest gives
     * it (static groups), so the order does not break ggml's 32-consecutive-weight blocks */
    int *perm = malloc((size_t)cols * sizeof *perm);
    double *U = malloc((size_t)cols * cols * sizeof *U), *diag = malloc((size_t)cols * sizeof *diag);
    if (!perm || !U || !diag) return free(perm), free(U), free(diag),
                              snprintf(err, err_len, "GPTQ: out of memory for a %d x %d Hessian", cols, cols), false;
    for (int i = 0; i < cols; i++) perm[i] = i, diag[i] = H[(size_t)i * cols + i];
    if (act_order) {
        sort_key = diag;
        qsort(perm, (size_t)cols, sizeof *perm, by_key_descending);
        for (int i = 0; i < cols; i++) /* U as scratch: H with rows and columns permuted */
            for (int j = 0; j < cols; j++) U[(size_t)i * cols + j] = H[(size_t)perm[i] * cols + perm[j]];
        memcpy(H, U, (size_t)cols * cols * sizeof *H);
    }
    free(diag);
    for (int i = 0; i < cols; i++) H[(size_t)i * cols + i] += damp * mean;
    int bad = 0;
    if (!inverse_hessian_factor(H, cols, U, &bad)) {
        free(U), free(perm);
        return snprintf(err, err_len, "GPTQ: the calibration Hessian is not positive definite (pivot %d of %d) even "
                        "with damping %g of its mean diagonal: give more calibration tokens or a larger damping",
                        bad, cols, damp), false;
    }
    int nb = cols / GL_QK;
    size_t row_bytes = gl_qtype_row_bytes(t, cols), block_bytes = gl_qtype_row_bytes(t, GL_QK);
    int tiles = (rows + ROW_TILE - 1) / ROW_TILE;
#pragma omp parallel
    {
        /* per tile: the rows in the order of quantization, each weight's code and each block's scale in the order
         * of the file, and the block's errors for the lazy update */
        double *w = malloc((size_t)ROW_TILE * cols * sizeof *w), *e = malloc((size_t)ROW_TILE * block * sizeof *e);
        int *codes = malloc((size_t)ROW_TILE * cols * sizeof *codes);
        gl_block_scale *scale = malloc((size_t)ROW_TILE * nb * sizeof *scale);
#pragma omp for schedule(dynamic, 1)
        for (int tile = 0; tile < tiles; tile++) {
            int r0 = tile * ROW_TILE, nr = rows - r0 < ROW_TILE ? rows - r0 : ROW_TILE;
            for (int r = 0; r < nr; r++) {
                const float *src = W + (size_t)(r0 + r) * cols;
                for (int i = 0; i < cols; i++) w[(size_t)r * cols + i] = src[perm[i]];
                if (act_order)
                    for (int b = 0; b < nb; b++) scale[r * nb + b] = gl_block_scale_of(t, src + b * GL_QK);
            }
            for (int i1 = 0; i1 < cols; i1 += block) {
                int i2 = i1 + block < cols ? i1 + block : cols;
                for (int i = i1; i < i2; i++) {
                    const double *ui = U + (size_t)i * cols;
                    int col = perm[i];
                    for (int r = 0; r < nr; r++) {
                        double *wr = w + (size_t)r * cols;
                        gl_block_scale *sc = &scale[r * nb + col / GL_QK];
                        if (!act_order && i % GL_QK == 0) { /* the block's values as the errors so far left them */
                            float g[GL_QK];
                            for (int j = 0; j < GL_QK; j++) g[j] = (float)wr[i + j];
                            *sc = gl_block_scale_of(t, g);
                        }
                        /* BEGIN SOLUTION lab08: GPTQ's step for column i of row wr: its code q under the block's scale *sc (gl_block_code) and the value v it decodes to (gl_block_value); the error er = (w_i - v) / U_ii kept in e for the lazy update; w_i = v; and w_j -= er U_ij for the block's later columns j < i2 */
                        int q = gl_block_code(t, *sc, (float)wr[i]);
                        double v = gl_block_value(t, *sc, q), er = (wr[i] - v) / ui[i];
                        codes[(size_t)r * cols + col] = q;
                        e[(size_t)r * block + (i - i1)] = er;
                        wr[i] = v;
#pragma omp simd
                        for (int j = i + 1; j < i2; j++) wr[j] -= er * ui[j];
                        /* END SOLUTION */
                    }
                }
                for (int r = 0; r < nr; r++) /* the block's errors reach the later columns at once */
                    for (int i = i1; i < i2; i++) {
                        double er = e[(size_t)r * block + (i - i1)];
                        const double *ui = U + (size_t)i * cols;
                        double *wr = w + (size_t)r * cols;
#pragma omp simd
                        for (int j = i2; j < cols; j++) wr[j] -= er * ui[j];
                    }
            }
            for (int r = 0; r < nr; r++) {
                for (int b = 0; b < nb; b++)
                    gl_block_pack(t, scale[r * nb + b], codes + (size_t)r * cols + b * GL_QK,
                                  (uint8_t *)out + (size_t)(r0 + r) * row_bytes + (size_t)b * block_bytes);
                for (int i = 0; i < cols; i++) W[(size_t)(r0 + r) * cols + perm[i]] = (float)w[(size_t)r * cols + i];
            }
        }
        free(w), free(e), free(codes), free(scale);
    }
    free(U), free(perm);
    return true;
}
