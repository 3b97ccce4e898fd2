/* Post-training quantization and distillation. GPTQ against a plain NumPy implementation of the paper's algorithm
 * (tests/ref/gptq_reference.py): the same codes for every block type, in column order and in act order; its
 * layer-output error below round-to-nearest's on correlated inputs; the same bits for any thread count; a Hessian it
 * cannot invert refused with a message. The quantize program on a tiny Llama (every row as the kernels round it,
 * the model still close; bad requests refused), the layer-by-layer forward it calibrates with, gpt_quantize, and
 * the distillation loss (zero against itself, the cross-entropy at alpha 0, gradients by finite differences). */
#include "testutil.h"

#include <omp.h>
#include <sys/stat.h>

#include "gguf.h"
#include "gpt.h"
#include "io.h"
#include "kernels.h"
#include "llama.h"
#include "quant.h"

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

/* ---------------------------------------------------------------- a tiny Llama through quantize and back */

enum { TL_C = 64, TL_F = 96, TL_V = 40 };

/* a random Llama of one layer whose matrices are F32 with rows of multiples of 32 values; no tokenizer */
static void write_tiny_llama(const char *path) {
    gl_gguf_writer *w = gl_gguf_writer_new();
    gl_gguf_put_str(w, "general.architecture", "llama");
    gl_gguf_put_u32(w, "llama.block_count", 1);
    gl_gguf_put_u32(w, "llama.embedding_length", TL_C);
    gl_gguf_put_u32(w, "llama.feed_forward_length", TL_F);
    gl_gguf_put_u32(w, "llama.attention.head_count", 4);
    gl_gguf_put_u32(w, "llama.attention.head_count_kv", 2);
    gl_gguf_put_u32(w, "llama.context_length", 64);
    gl_gguf_put_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    gl_gguf_put_u32(w, "general.file_type", 0);
    gl_rng r;
    gl_rng_seed(&r, 11);
    struct { const char *name; int cols, rows; float scale; } t[] = {
        {"token_embd.weight", TL_C, TL_V, 1.0f},       {"output_norm.weight", TL_C, 1, 0},
        {"blk.0.attn_norm.weight", TL_C, 1, 0},        {"blk.0.ffn_norm.weight", TL_C, 1, 0},
        {"blk.0.attn_q.weight", TL_C, TL_C, 0.15f},    {"blk.0.attn_k.weight", TL_C, TL_C / 2, 0.15f},
        {"blk.0.attn_v.weight", TL_C, TL_C / 2, 0.15f}, {"blk.0.attn_output.weight", TL_C, TL_C, 0.15f},
        {"blk.0.ffn_gate.weight", TL_C, TL_F, 0.15f},  {"blk.0.ffn_up.weight", TL_C, TL_F, 0.15f},
        {"blk.0.ffn_down.weight", TL_F, TL_C, 0.12f}};
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) {
        int n = t[k].cols * t[k].rows;
        float *v = malloc((size_t)n * sizeof *v);
        for (int i = 0; i < n; i++) v[i] = t[k].scale ? t[k].scale * (2 * gl_rng_uniform(&r) - 1) : 1.0f + 0.1f * gl_rng_uniform(&r);
        int64_t ne[2] = {t[k].cols, t[k].rows};
        gl_gguf_put_tensor(w, t[k].name, GGML_F32, t[k].rows == 1 ? 1 : 2, ne, v, (uint64_t)n * 4);
        free(v);
    }
    char err[256];
    cr_assert(gl_gguf_writer_save(w, path, err, sizeof err), "%s", err);
    gl_gguf_writer_free(w);
}

Test(quantize_program, rounds_every_matrix_as_the_kernels_do_and_the_model_still_answers) {
    char *out, src[128], dst[128], err[256];
    snprintf(src, sizeof src, "/tmp/gradlab_tiny_llama_%d.gguf", (int)getpid());
    snprintf(dst, sizeof dst, "/tmp/gradlab_tiny_llama_%d.q4_0.gguf", (int)getpid());
    write_tiny_llama(src);
    int rc = run(&out, GL_BUILD_DIR "/quantize --gguf %s --type q4_0 --out %s", src, dst);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "4.500 bits per weight"), "%s", out);
    free(out);
    llama a, b;
    cr_assert(llama_load(&a, src, err, sizeof err), "%s", err);
    cr_assert(llama_load(&b, dst, err, sizeof err), "%s", err);
    cr_assert(gl_gguf_find(b.file, "general.architecture") && gl_gguf_find(b.file, "llama.attention.head_count_kv"));
    const gguf_kv *ft = gl_gguf_find(b.file, "general.file_type");
    cr_assert(ft && ft->v.u == 2, "general.file_type is llama.cpp's MOSTLY_Q4_0");
    for (int i = 0; i < llama_matrix_count(&a); i++) {
        if (i == 1) continue; /* tied: the embedding */
        const gl_qmatrix *qa = llama_matrix(&a, i), *qb = llama_matrix(&b, i);
        int want = i == 0 ? GL_TYPE_Q8_0 : GL_TYPE_Q4_0; /* the embedding at Q8_0 unless --embd-type */
        cr_assert_eq(qb->type, want, "matrix %d", i);
        size_t rb = gl_qtype_row_bytes((gl_qtype)want, qa->cols);
        uint8_t *row = malloc(rb);
        for (int r = 0; r < qa->rows; r++) {
            gl_quantize_row((gl_qtype)want, (const float *)qa->data + (size_t)r * qa->cols, row, qa->cols);
            cr_assert(!memcmp(row, (const uint8_t *)qb->data + rb * r, rb), "matrix %d row %d", i, r);
        }
        free(row);
    }
    /* the quantized model's next-token distribution stays close to the original's */
    int32_t ids[8] = {1, 5, 9, 2, 33, 7, 7, 20};
    float la[8 * TL_V], lb[8 * TL_V];
    llama_cache ca, cb;
    llama_cache_init(&ca, &a, 16, true), llama_cache_init(&cb, &b, 16, true);
    llama_forward(&a, &ca, ids, 8, la, true), llama_forward(&b, &cb, ids, 8, lb, true);
    double diff = 0, norm = 0;
    for (int i = 0; i < 8 * TL_V; i++) diff += (la[i] - lb[i]) * (la[i] - lb[i]), norm += la[i] * la[i];
    cr_assert(sqrt(diff / norm) < 0.15, "relative logit error %g", sqrt(diff / norm));
    llama_cache_free(&ca), llama_cache_free(&cb), llama_free(&a), llama_free(&b);
    remove(src), remove(dst);
}

Test(quantize_program, bad_requests_get_a_message_and_a_nonzero_exit) {
    char *out, src[128];
    snprintf(src, sizeof src, "/tmp/gradlab_tiny_llama_bad_%d.gguf", (int)getpid());
    write_tiny_llama(src);
    struct { const char *args, *says; } cases[] = {
        {"--type q4_0 --method gptq --out /tmp/x.gguf", "needs a calibration text"},
        {"--type q5_k --out /tmp/x.gguf", "must be one of"},
        {"--type f32 --method gptq --calib README.md --out /tmp/x.gguf", "needs a block type"},
        {"--type q4_0 --method gptq --calib README.md --out /tmp/x.gguf", "no tokenizer"},
        {"--type q4_0 --method magic --out /tmp/x.gguf", "rtn or gptq"}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int rc = run(&out, GL_BUILD_DIR "/quantize --gguf %s %s", src, cases[k].args);
        cr_assert(rc != 0 && strstr(out, cases[k].says), "%s: rc %d, %s", cases[k].args, rc, out);
        free(out);
    }
    cr_assert(access("/tmp/x.gguf", F_OK) != 0, "no output on failure");
    remove(src);
}

/* the observer sees every matrix's input; llama_layer_forward layer after layer gives the hidden state llama_forward
 * hands the output head. The cache of 8 positions, filled, once made the fp16 attention read past its end. */
typedef struct {
    float head_in[8 * TL_C];
} head_capture;

static void capture_head(void *ctx, int i, const float *x, int rows, int cols) {
    if (i == 1) memcpy(((head_capture *)ctx)->head_in, x, (size_t)rows * cols * sizeof *x);
}

Test(quantize_program, layer_by_layer_forward_equals_the_whole_forward) {
    char src[128], err[256];
    snprintf(src, sizeof src, "/tmp/gradlab_tiny_llama_layers_%d.gguf", (int)getpid());
    write_tiny_llama(src);
    llama m;
    cr_assert(llama_load(&m, src, err, sizeof err), "%s", err);
    int32_t ids[8] = {3, 1, 4, 1, 5, 9, 2, 6};
    head_capture cap;
    m.observe = capture_head, m.observe_ctx = &cap;
    llama_cache c;
    llama_cache_init(&c, &m, 8, true);
    float logits[8 * TL_V];
    llama_forward(&m, &c, ids, 8, logits, true);
    m.observe = NULL;
    float x[8 * TL_C];
    for (int t = 0; t < 8; t++) memcpy(x + t * TL_C, (const float *)m.tok_embd.data + ids[t] * TL_C, TL_C * sizeof(float));
    c.len = 0;
    for (int l = 0; l < m.cfg.n_layer; l++) llama_layer_forward(&m, l, &c, x, 8);
    for (int t = 0; t < 8; t++) { /* the final rmsnorm by hand */
        double ss = 0;
        for (int j = 0; j < TL_C; j++) ss += (double)x[t * TL_C + j] * x[t * TL_C + j];
        double inv = 1.0 / sqrt(ss / TL_C + m.cfg.norm_eps);
        for (int j = 0; j < TL_C; j++) {
            double want = x[t * TL_C + j] * inv * m.out_norm->data[j];
            cr_assert(fabs(want - cap.head_in[t * TL_C + j]) < 1e-4 * (1 + fabs(want)), "position %d dim %d: %g vs %g", t,
                      j, want, (double)cap.head_in[t * TL_C + j]);
        }
    }
    llama_cache_free(&c), llama_free(&m);
    remove(src);
}

/* ---------------------------------------------------------------- our GPT: quantized in place, and distilled */

static gpt tiny_gpt(uint64_t seed) {
    gpt_config cfg = {.n_layer = 2, .n_head = 2, .n_embd = 64, .block_size = 16, .vocab_size = 40, .ln_eps = 1e-5f};
    cfg.padded_vocab_size = gpt_padded_vocab(cfg.vocab_size);
    gpt m;
    gpt_build(&m, cfg);
    gpt_init(&m, seed);
    return m;
}

static double mean_loss(gpt *m, const int32_t *x, const int32_t *y, int B) {
    gl_no_grad_begin();
    gl_scope s = gl_scope_begin();
    double v = gl_item(gpt_loss(m, x, y, B, 16, NULL, false));
    gl_scope_end(&s);
    gl_no_grad_end();
    return v;
}

Test(gpt_quantize, rounds_each_block_linear_and_gptq_beats_rounding_on_its_calibration) {
    enum { B = 64, T = 16 };
    int32_t *x = malloc(B * T * sizeof *x), *y = malloc(B * T * sizeof *y);
    gl_rng r;
    gl_rng_seed(&r, 4);
    for (int i = 0; i < B * T; i++) x[i] = (int32_t)(gl_rng_u64(&r) % 40), y[i] = (x[i] * 7 + 3) % 40;
    gpt ref = tiny_gpt(9), a = tiny_gpt(9), b = tiny_gpt(9);
    double l_ref = mean_loss(&ref, x, y, B);
    gpt_quant_report ra, rb;
    char err[256];
    cr_assert(gpt_quantize(&a, GL_TYPE_Q8_0, GL_TYPE_F32, false, false, NULL, 0, 0, 0.01, &ra, err, sizeof err), "%s", err);
    cr_assert(fabs(mean_loss(&a, x, y, B) - l_ref) < 2e-3, "Q8_0 moves the loss from %g to %g", l_ref, mean_loss(&a, x, y, B));
    cr_assert_eq(ra.weights, 2 * (64 * 192 + 64 * 64 + 64 * 256 + 256 * 64));
    cr_assert_eq(ra.bytes, ra.weights / 32 * 34);
    /* each stored weight is what its block decodes to: the block's rows ([out, in]) rounded again give it back */
    cr_assert(gpt_quantize(&b, GL_TYPE_Q3_0, GL_TYPE_F32, true, true, x, B, T, 0.01, &rb, err, sizeof err), "%s", err);
    cr_assert(rb.error < 0.7 * rb.error_rtn, "GPTQ's output error %g vs RTN's %g", rb.error, rb.error_rtn);
    cr_assert(!gpt_quantize(&b, GL_TYPE_F32, GL_TYPE_F32, false, false, NULL, 0, 0, 0.01, &rb, err, sizeof err));
    cr_assert(strstr(err, "not a block type"), "%s", err);
    gpt_free(&ref), gpt_free(&a), gpt_free(&b);
    free(x), free(y);
}

typedef struct {
    gpt *student, *teacher;
    int32_t *x, *y;
} distill_ctx;

static gl_tensor *distill_closure(gl_tensor **in, void *p) {
    (void)in;
    distill_ctx *c = p;
    return gpt_distill_loss(c->student, c->teacher, c->x, c->y, 2, 16, 2.0f, 0.7f, NULL, false);
}

Test(distill, zero_kl_against_itself_and_gradients_match_finite_differences) {
    int32_t x[32], y[32];
    for (int i = 0; i < 32; i++) x[i] = (i * 5) % 40, y[i] = (i * 11 + 1) % 40;
    gpt t = tiny_gpt(1), s = tiny_gpt(1), s2 = tiny_gpt(2);
    /* alpha = 1 and the student equal to the teacher: the loss is the KL, zero */
    gl_no_grad_begin();
    double kl = gl_item(gpt_distill_loss(&s, &t, x, y, 2, 16, 2.0f, 1.0f, NULL, false));
    gl_no_grad_end();
    cr_assert(fabs(kl) < 1e-5, "KL of a model with itself: %g", kl);
    /* alpha = 0: exactly the cross-entropy */
    gl_no_grad_begin();
    double hard = gl_item(gpt_distill_loss(&s2, &t, x, y, 2, 16, 2.0f, 0.0f, NULL, false));
    double ce = gl_item(gpt_loss(&s2, x, y, 2, 16, NULL, false));
    gl_no_grad_end();
    cr_assert(fabs(hard - ce) < 1e-6, "alpha 0: %g vs cross-entropy %g", hard, ce);
    /* the student's gradients (its last layer norm's weight) against finite differences */
    distill_ctx c = {&s2, &t, x, y};
    gl_tensor *in[1] = {s2.lnf_w};
    check_grads("distill loss", distill_closure, in, 1, &c);
    gpt_free(&t), gpt_free(&s), gpt_free(&s2);
}

Test(quantize_program, a_gpt_checkpoint_quantized_still_loads_and_generates) {
    char *out, dir[128];
    snprintf(dir, sizeof dir, "/tmp/gradlab_quantize_ckpt_%d", (int)getpid());
    mkdir(dir, 0755);
    int rc = run(&out, GL_BUILD_DIR "/train --data data/tinyshakespeare/input.txt --n-layer 1 --n-head 2 --n-embd 32 "
                 "--block-size 16 --batch 4 --steps 5 --eval-interval 5 --eval-batches 1 --final-eval-batches 1 "
                 "--sample 0 --quiet --out %s/a.ckpt", dir);
    cr_assert_eq(rc, 0, "%s", out);
    free(out);
    rc = run(&out, GL_BUILD_DIR "/quantize --checkpoint %s/a.ckpt --type q4_0 --method gptq --calib "
             "data/tinyshakespeare/input.txt --calib-tokens 2048 --out %s/q.ckpt", dir, dir);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "4.500 bits per weight") && strstr(out, "output error"), "%s", out);
    free(out);
    rc = run(&out, GL_BUILD_DIR "/infer --checkpoint %s/q.ckpt --prompt-ids 1,2,3 --max-new-tokens 5 --print-ids", dir);
    cr_assert_eq(rc, 0, "%s", out);
    free(out);
    rc = run(&out, GL_BUILD_DIR "/quantize --checkpoint %s/a.ckpt --type f16 --out %s/f.ckpt", dir, dir);
    cr_assert(rc != 0 && strstr(out, "block type"), "%s", out);
    free(out);
    run(&out, "rm -rf %s", dir);
    free(out);
}
