#include "quant.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "tensor.h"

size_t gl_qmatrix_bytes(int type, int rows, int cols) {
    if (!gl_qmatrix_supported(type, cols)) return 0;
    return gl_qtype_row_bytes((gl_qtype)type, cols) * (size_t)rows;
}

static void *alloc_or_die(size_t n, const char *what) {
    void *p = malloc(n ? n : 1);
    if (!p) gl_fatal("quant", "out of memory for %s (%zu bytes)", what, n);
    return p;
}

void gl_qmatrix_round(gl_qmatrix *q, int type, const float *w, int rows, int cols) {
    size_t bytes = gl_qmatrix_bytes(type, rows, cols), rb = bytes / (size_t)rows;
    if (!bytes) gl_fatal("quant", "type %d cannot hold rows of %d values", type, cols);
    uint8_t *out = alloc_or_die(bytes, "a quantized matrix");
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) gl_quantize_row((gl_qtype)type, w + (size_t)r * cols, out + rb * r, cols);
    *q = (gl_qmatrix){type, rows, cols, out};
}

void gl_hessian_init(gl_hessian *h, int dim) {
    h->dim = dim, h->rows = 0;
    h->xtx = calloc((size_t)dim * dim, sizeof *h->xtx);
    if (!h->xtx) gl_fatal("quant", "out of memory for a %d x %d Hessian", dim, dim);
}

void gl_hessian_add(gl_hessian *h, const float *x, int rows) {
    gl_gemm(1, 0, h->dim, h->dim, rows, 1.0f, x, h->dim, x, h->dim, 1.0f, h->xtx, h->dim);
    h->rows += rows;
}

void gl_hessian_free(gl_hessian *h) {
    free(h->xtx);
    memset(h, 0, sizeof *h);
}

double gl_hessian_error(const gl_hessian *h, const float *w, const float *wq, int rows, int cols) {
    size_t n = (size_t)rows * cols;
    float *d = calloc(n, sizeof *d), *dh = calloc(n, sizeof *dh);
    if (!d || !dh) gl_fatal("quant", "out of memory for a %d x %d product", rows, cols);
    for (size_t i = 0; i < n; i++) d[i] = w[i] - wq[i];
    gl_gemm(0, 0, rows, cols, cols, 1.0f, d, cols, h->xtx, cols, 0.0f, dh, cols);
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)d[i] * dh[i];
    free(d), free(dh);
    return h->rows ? 2 * s / (double)h->rows : 0;
}

bool gl_qmatrix_gptq(gl_qmatrix *q, int type, const float *w, int rows, int cols, const gl_hessian *h, double damp,
                     int block, bool act_order, float *dequant, char *err, size_t err_len) {
    if (h->dim != cols) return snprintf(err, err_len, "a Hessian of %d inputs for a weight of %d", h->dim, cols), false;
    if (h->rows < cols)
        return snprintf(err, err_len, "%lld calibration rows cannot determine a %d x %d Hessian: give at least %d "
                        "(better several times that)", (long long)h->rows, cols, cols, cols), false;
    size_t bytes = gl_qmatrix_bytes(type, rows, cols);
    if (!bytes) return snprintf(err, err_len, "type %d cannot hold rows of %d values", type, cols), false;
    double *hd = alloc_or_die((size_t)cols * cols * sizeof *hd, "GPTQ's Hessian");
    for (size_t e = 0; e < (size_t)cols * cols; e++) hd[e] = 2.0 * h->xtx[e] / (double)h->rows;
    float *wq = alloc_or_die((size_t)rows * cols * sizeof *wq, "GPTQ's weights");
    memcpy(wq, w, (size_t)rows * cols * sizeof *wq);
    uint8_t *out = alloc_or_die(bytes, "a quantized matrix");
    bool ok = gl_gptq_quantize((gl_qtype)type, wq, rows, cols, hd, damp, block, act_order, out, err, err_len);
    if (ok && dequant) memcpy(dequant, wq, (size_t)rows * cols * sizeof *wq);
    free(hd), free(wq);
    if (!ok) return free(out), false;
    *q = (gl_qmatrix){type, rows, cols, out};
    return true;
}
