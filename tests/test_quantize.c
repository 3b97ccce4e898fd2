/* GPTQ against a plain NumPy implementation of the paper's algorithm (tests/ref/gptq_reference.py): the same codes
 * for every block type; its layer-output error below round-to-nearest's on correlated inputs; the same bits for any
 * thread count; a Hessian it cannot invert refused with a message. */
#include "testutil.h"

#include <omp.h>

#include "io.h"
#include "kernels.h"

typedef struct {
    int rows, cols, n, n_types, block;
    float *W, *X;
    double *H, damp;
    int *type, *codes; /* codes: n_types x 2 (column order, act order) x rows x cols */
    unsigned char *file;
} fixture;

static fixture load_fixture(void) {
    fixture f = {0};
    size_t len;
    char err[256];
    cr_assert(gl_read_whole_file("tests/ref/gptq_layer.bin", &f.file, &len, err, sizeof err), "%s", err);
    int32_t head[5];
    memcpy(head, f.file, sizeof head);
    f.rows = head[0], f.cols = head[1], f.n = head[2], f.n_types = head[3], f.block = head[4];
    size_t at = sizeof head, wn = (size_t)f.rows * f.cols;
    f.W = malloc(wn * 4), f.X = malloc((size_t)f.n * f.cols * 4), f.H = malloc((size_t)f.cols * f.cols * 8);
    memcpy(f.W, f.file + at, wn * 4), at += wn * 4;
    memcpy(f.X, f.file + at, (size_t)f.n * f.cols * 4), at += (size_t)f.n * f.cols * 4;
    memcpy(f.H, f.file + at, (size_t)f.cols * f.cols * 8), at += (size_t)f.cols * f.cols * 8;
    memcpy(&f.damp, f.file + at, 8), at += 8;
    f.type = malloc((size_t)f.n_types * sizeof *f.type), f.codes = malloc((size_t)f.n_types * 2 * wn * sizeof *f.codes);
    for (int k = 0; k < f.n_types; k++) {
        memcpy(&f.type[k], f.file + at, 4), at += 4;
        memcpy(f.codes + 2 * k * wn, f.file + at, 2 * wn * 4), at += 2 * wn * 4;
    }
    cr_assert_eq(at, len, "fixture size");
    return f;
}

static void free_fixture(fixture *f) {
    free(f->W), free(f->X), free(f->H), free(f->type), free(f->codes), free(f->file);
}

/* the code of weight j of a packed row */
static int code_at(gl_qtype t, const uint8_t *row, int j) {
    int b = j / 32, i = j % 32;
    switch (t) {
    case GL_QT_Q8_0: return ((const gl_block_q8_0 *)row)[b].qs[i];
    case GL_QT_Q4_0: return (((const gl_block_q4_0 *)row)[b].qs[i % 16] >> (i < 16 ? 0 : 4)) & 15;
    case GL_QT_Q4_1: return (((const gl_block_q4_1 *)row)[b].qs[i % 16] >> (i < 16 ? 0 : 4)) & 15;
    case GL_QT_Q3_0: {
        const gl_block_q3_0 *x = (const gl_block_q3_0 *)row + b;
        return ((x->ql[i % 8] >> (2 * (i / 8))) & 3) | ((x->qh[i / 8] >> (i % 8)) & 1) << 2;
    }
    default: return -1;
    }
}

/* GPTQ of the fixture's layer to type t: the packed rows (malloc'd) and W's dequantized values in wq */
static uint8_t *run_gptq(const fixture *f, gl_qtype t, bool act_order, float *wq) {
    size_t rb = gl_qtype_row_bytes(t, f->cols);
    uint8_t *out = malloc(rb * f->rows);
    double *h = malloc((size_t)f->cols * f->cols * 8);
    memcpy(h, f->H, (size_t)f->cols * f->cols * 8);
    memcpy(wq, f->W, (size_t)f->rows * f->cols * 4);
    char err[256] = "";
    cr_assert(gl_gptq_quantize(t, wq, f->rows, f->cols, h, f->damp, f->block, act_order, out, err, sizeof err), "%s", err);
    free(h);
    return out;
}

/* sum over the calibration rows of ||x (W - Wq)^T||^2 */
static double output_error(const fixture *f, const float *wq) {
    double s = 0;
    for (int i = 0; i < f->n; i++)
        for (int r = 0; r < f->rows; r++) {
            double d = 0;
            for (int j = 0; j < f->cols; j++)
                d += (double)f->X[(size_t)i * f->cols + j] * (f->W[(size_t)r * f->cols + j] - wq[(size_t)r * f->cols + j]);
            s += d * d;
        }
    return s;
}

Test(gptq, codes_equal_the_numpy_reference_for_every_block_type) {
    fixture f = load_fixture();
    float *wq = malloc((size_t)f.rows * f.cols * 4);
    for (int k = 0; k < 2 * f.n_types; k++) {
        gl_qtype t = (gl_qtype)f.type[k / 2];
        bool act = k % 2;
        uint8_t *out = run_gptq(&f, t, act, wq);
        size_t rb = gl_qtype_row_bytes(t, f.cols);
        int differ = 0, first = -1;
        for (int r = 0; r < f.rows; r++)
            for (int j = 0; j < f.cols; j++)
                if (code_at(t, out + r * rb, j) != f.codes[(size_t)k * f.rows * f.cols + (size_t)r * f.cols + j])
                    if (differ++ == 0) first = r * f.cols + j;
        cr_assert_eq(differ, 0, "type %d%s: %d of %d codes differ from NumPy's, the first at row %d column %d", t,
                     act ? " (act order)" : "", differ, f.rows * f.cols, first / f.cols, first % f.cols);
        /* the column no input reached is zero, and W holds exactly what the packed rows decode to */
        float row[96];
        for (int r = 0; r < f.rows; r++) {
            gl_dequantize_row(t, out + r * rb, row, f.cols);
            cr_assert(!memcmp(row, wq + (size_t)r * f.cols, (size_t)f.cols * 4), "type %d row %d: W is not the decoded row", t, r);
        }
        free(out);
    }
    free(wq);
    free_fixture(&f);
}

Test(gptq, layer_output_error_is_below_round_to_nearest_on_correlated_inputs) {
    fixture f = load_fixture();
    size_t wn = (size_t)f.rows * f.cols;
    float *wq = malloc(wn * 4), *rtn = malloc(wn * 4);
    for (int k = 0; k < 2 * f.n_types; k++) {
        gl_qtype t = (gl_qtype)f.type[k / 2];
        free(run_gptq(&f, t, k % 2, wq));
        size_t rb = gl_qtype_row_bytes(t, f.cols);
        uint8_t *packed = malloc(rb);
        for (int r = 0; r < f.rows; r++) {
            gl_quantize_row(t, f.W + (size_t)r * f.cols, packed, f.cols);
            gl_dequantize_row(t, packed, rtn + (size_t)r * f.cols, f.cols);
        }
        free(packed);
        /* GPTQ zeroes the dead column; round-to-nearest keeps it: it changes nothing on these inputs either way */
        double e_gptq = output_error(&f, wq), e_rtn = output_error(&f, rtn);
        cr_log_info("type %d%s: output error GPTQ %.4g, RTN %.4g (ratio %.3f)", t, k % 2 ? " act order" : "", e_gptq,
                    e_rtn, e_gptq / e_rtn);
        cr_assert(e_gptq < 0.7 * e_rtn, "type %d: GPTQ's output error %g is not well below RTN's %g", t, e_gptq, e_rtn);
    }
    free(wq), free(rtn);
    free_fixture(&f);
}

Test(gptq, same_bits_for_any_thread_count) {
    fixture f = load_fixture();
    size_t wn = (size_t)f.rows * f.cols, rb = gl_qtype_row_bytes(GL_QT_Q4_1, f.cols);
    float *a = malloc(wn * 4), *b = malloc(wn * 4);
    omp_set_num_threads(1);
    uint8_t *qa = run_gptq(&f, GL_QT_Q4_1, true, a);
    omp_set_num_threads(2);
    uint8_t *qb = run_gptq(&f, GL_QT_Q4_1, true, b);
    cr_assert(!memcmp(qa, qb, rb * f.rows) && !memcmp(a, b, wn * 4));
    free(qa), free(qb), free(a), free(b);
    free_fixture(&f);
}

Test(gptq, a_hessian_it_cannot_use_is_refused_with_a_message) {
    enum { C = 64 };
    static double h[C * C];
    float w[2 * C] = {0};
    uint8_t out[2 * 68];
    char err[256] = "";
    for (int i = 0; i < C; i++) h[i * C + i] = i == 40 ? -5.0 : 1.0; /* not positive definite */
    cr_assert(!gl_gptq_quantize(GL_QT_Q4_0, w, 2, C, h, 0.01, 32, false, out, err, sizeof err));
    cr_assert(strstr(err, "not positive definite"), "%s", err);
    for (int i = 0; i < C; i++) h[i * C + i] = i == 3 ? NAN : 1.0;
    cr_assert(!gl_gptq_quantize(GL_QT_Q4_0, w, 2, C, h, 0.01, 32, false, out, err, sizeof err));
    cr_assert(strstr(err, "non-finite"), "%s", err);
    cr_assert(!gl_gptq_quantize(GL_QT_F32, w, 2, C, h, 0.01, 32, false, out, err, sizeof err));
    cr_assert(strstr(err, "block type"), "%s", err);
}
