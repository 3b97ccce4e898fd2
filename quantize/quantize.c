/* quantize: a Llama GGUF model's weight matrices to another type, by round to nearest (RTN) or by GPTQ with a
 * calibration text, written as a GGUF file that infer, serve and rag load. `quantize --help` for flags;
 * docs/quantization.md for the method, the formats and measured results.
 *
 * GPTQ runs the calibration text through the model one layer at a time: a layer's inputs are the outputs of the
 * layers before it *as already quantized* (so each layer corrects for the error of those before it, as in the
 * paper), the Hessians of its four distinct matrix inputs (attention in, attention out, FFN in, FFN down) are
 * collected while it runs at full precision, its seven matrices are quantized, and it runs again quantized to make
 * the next layer's inputs. The token embedding and an untied output head are rounded (Q8_0 unless --embd-type). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "codec.h"
#include "gguf.h"
#include "gpt.h"
#include "gpt_io.h"
#include "io.h"
#include "llama.h"
#include "quant.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: quantize --gguf IN.gguf --type f32|f16|q8_0|q4_0|q4_1|q3_0 [--method rtn|gptq] --out OUT.gguf [flags]\n"
            "       quantize --checkpoint IN.ckpt --type q8_0|q4_0|q4_1|q3_0 [--method rtn|gptq] --out OUT.ckpt [flags]\n"
            "  (a GPT checkpoint of train: its block linears quantized and stored back as the values they decode to,\n"
            "   since the checkpoint holds fp32; the embedding at --embd-type; calibration sequences of its block size)\n"
            "  --method rtn|gptq   round each block to nearest (rtn, default) or GPTQ with a calibration text\n"
            "  --calib FILE        GPTQ's calibration text (plain UTF-8), tokenized with the model's tokenizer\n"
            "  --calib-tokens N    tokens of it to use (8192)   --calib-len N  tokens per sequence (512)\n"
            "  --damp F            GPTQ's damping, a fraction of the Hessian's mean diagonal (0.01)\n"
            "  --block N           GPTQ's lazy-update block of columns, a multiple of 32 (128)\n"
            "  --column-order      GPTQ takes the columns in their order, each block's scale chosen when it is reached\n"
            "                      (default: act order, by decreasing Hessian diagonal, each block keeping the scale\n"
            "                      round to nearest gives it)\n"
            "  --embd-type T       the token embedding and an untied output head (default: the --type for f32, f16\n"
            "                      and q8_0, else q8_0: the head's rounding costs the most per bit, as in llama.cpp)\n"
            "  --threads N\n"
            "Block types hold 32 weights per scale (ggml's Q8_0, Q4_0, Q4_1; Q3_0 is gradlab's own 3-bit block, which\n"
            "llama.cpp does not read). Progress goes to stderr, one line per layer.\n");
}

static _Noreturn void fail(const char *a, const char *b) {
    fprintf(stderr, "quantize: %s%s\n", a, b);
    exit(2);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static const struct {
    const char *name;
    int type;
    int file_type; /* llama.cpp's general.file_type, -1: none */
} TYPES[] = {{"f32", GL_TYPE_F32, 0}, {"f16", GL_TYPE_F16, 1}, {"q8_0", GL_TYPE_Q8_0, 7},
             {"q4_0", GL_TYPE_Q4_0, 2}, {"q4_1", GL_TYPE_Q4_1, 3}, {"q3_0", GL_TYPE_Q3_0, -1}};
enum { N_TYPES = sizeof TYPES / sizeof TYPES[0] };

static int type_index(const char *flag, const char *v) {
    for (int i = 0; i < N_TYPES; i++)
        if (!strcmp(v, TYPES[i].name)) return i;
    fprintf(stderr, "quantize: %s must be one of f32 f16 q8_0 q4_0 q4_1 q3_0, got: %s\n", flag, v);
    exit(2);
}

/* ---- the Hessians of one layer's four distinct inputs, collected through the model's observer ---- */
enum { SITE_ATTN_IN, SITE_ATTN_OUT, SITE_FFN_IN, SITE_FFN_DOWN, N_SITES };

static int site_of(int matrix) {
    static const int site[LLAMA_PER_LAYER] = {SITE_ATTN_IN, SITE_ATTN_IN, SITE_ATTN_IN, SITE_ATTN_OUT,
                                              SITE_FFN_IN,  SITE_FFN_IN,  SITE_FFN_DOWN};
    return site[(matrix - 2) % LLAMA_PER_LAYER];
}

static void observe(void *ctx, int i, const float *x, int rows, int cols) {
    gl_hessian *h = ctx;
    int k = (i - 2) % LLAMA_PER_LAYER, s = site_of(i);
    if (k != LLAMA_WQ && k != LLAMA_WO && k != LLAMA_GATE && k != LLAMA_DOWN) return; /* the others share an input */
    if (cols != h[s].dim) gl_fatal("quantize", "matrix %d: an input of %d columns, expected %d", i, cols, h[s].dim);
    gl_hessian_add(&h[s], x, rows);
}

static float *to_floats(const gl_qmatrix *q) {
    float *w = malloc((size_t)q->rows * q->cols * sizeof *w);
    if (!w) fail("out of memory", "");
    gl_qmatrix_to_floats(q, w);
    return w;
}

/* the calibration tokens: n_seq sequences of len ids, each starting with BOS when the model adds one */
static int32_t *calibration_ids(llama *m, const char *path, int n_seq, int len) {
    unsigned char *text;
    size_t bytes;
    char err[512];
    if (!gl_read_whole_file(path, &text, &bytes, err, sizeof err)) fail("--calib: ", err);
    int body = len - (m->add_bos ? 1 : 0);
    size_t want = (size_t)n_seq * body, take = bytes;
    if (take > want * 16) take = want * 16; /* English runs ~4 bytes a token: enough, without tokenizing a book */
    int32_t *ids = NULL;
    size_t cap = 0, got = gl_bpe_encode(m->tok, text, take, &ids, &cap);
    free(text);
    if (got < want) {
        snprintf(err, sizeof err, "%s gives %zu tokens; %d sequences of %d need %zu: give a longer text or fewer "
                 "--calib-tokens", path, got, n_seq, len, want);
        fail("--calib: ", err);
    }
    int32_t *seq = malloc((size_t)n_seq * len * sizeof *seq);
    for (int s = 0; s < n_seq; s++) {
        int32_t *o = seq + (size_t)s * len;
        if (m->add_bos) *o++ = m->bos;
        memcpy(o, ids + (size_t)s * body, (size_t)body * sizeof *ids);
    }
    free(ids);
    return seq;
}

/* --checkpoint: our GPT, through gpt_quantize */
static int quantize_checkpoint(const char *in, const char *out, int type, int embd, bool gptq, bool act_order,
                               const char *calib, int calib_tokens, double damp) {
    char err[512];
    gpt m;
    gpt_run_state rs;
    if (!gpt_load_checkpoint(in, &m, &rs, NULL, NULL, NULL, err, sizeof err)) fail(err, "");
    if (type == GL_TYPE_F32 || type == GL_TYPE_F16) fail("--checkpoint takes a block type (q8_0 q4_0 q4_1 q3_0)", "");
    int T = m.cfg.block_size, n_seq = 0;
    int32_t *seqs = NULL;
    double t0 = now();
    if (gptq) {
        gl_codec codec = {0};
        codec.chars.size = rs.n_symbols, codec.chars.codepoints = rs.symbols;
        if (rs.bpe_len && !(codec.bpe = gl_bpe_deserialize(rs.bpe, rs.bpe_len, in, err, sizeof err))) fail(err, "");
        unsigned char *text;
        size_t len, n = 0, dropped = 0;
        int32_t *ids = NULL;
        if (!gl_read_whole_file(calib, &text, &len, err, sizeof err)) fail("--calib: ", err);
        if (!gl_codec_encode(&codec, text, len, &ids, &n, &dropped, err, sizeof err)) fail("--calib: ", err);
        free(text);
        if (codec.bpe) gl_bpe_free(codec.bpe);
        n_seq = calib_tokens / T;
        if ((size_t)n_seq * T > n) n_seq = (int)(n / T);
        if (n_seq < 1) fail("--calib: the text is shorter than one sequence of the model's block size", "");
        seqs = malloc((size_t)n_seq * T * sizeof *seqs);
        for (int s = 0; s < n_seq; s++) memcpy(seqs + (size_t)s * T, ids + (size_t)s * T, (size_t)T * sizeof *ids);
        free(ids);
        fprintf(stderr, "quantize: calibration: %d sequences of %d tokens from %s\n", n_seq, T, calib);
    }
    gpt_quant_report rep;
    if (!gpt_quantize(&m, type, embd, gptq, act_order, seqs, n_seq, T, damp, &rep, err, sizeof err)) fail(err, "");
    if (gptq) fprintf(stderr, "quantize: GPTQ's output error is %.2fx round-to-nearest's\n", rep.error / rep.error_rtn);
    if (!gpt_save_checkpoint(out, &m, NULL, &rs, err, sizeof err)) fail(err, "");
    printf("quantize: wrote %s: %lld block weights at %.3f bits per weight (%.2f MB in that format; stored as fp32), "
           "%.1f s\n", out, (long long)rep.weights, 8.0 * (double)rep.bytes / (double)rep.weights, rep.bytes / 1e6,
           now() - t0);
    free(seqs), free(rs.symbols), free(rs.bpe);
    gpt_free(&m);
    gl_stdout_check("quantize");
    return 0;
}

int main(int argc, char **argv) {
    const char *in = NULL, *ckpt = NULL, *out = NULL, *type_name = NULL, *method = "rtn", *calib = NULL, *embd_name = NULL;
    int calib_tokens = 8192, calib_len = 512, block = 128, threads = 0;
    bool act_order = true;
    double damp = 0.01;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) usage(stdout), exit(0);
        if (!strcmp(f, "--column-order")) { act_order = false; continue; }
        if (i + 1 >= argc) fail("missing value for ", f);
        const char *v = argv[++i];
        if (!strcmp(f, "--gguf")) in = v;
        else if (!strcmp(f, "--checkpoint")) ckpt = v;
        else if (!strcmp(f, "--out")) out = v;
        else if (!strcmp(f, "--type")) type_name = v;
        else if (!strcmp(f, "--method")) method = v;
        else if (!strcmp(f, "--calib")) calib = v;
        else if (!strcmp(f, "--embd-type")) embd_name = v;
        else if (!strcmp(f, "--calib-tokens")) calib_tokens = gl_flag_int("quantize", f, v, 1, 1 << 24);
        else if (!strcmp(f, "--calib-len")) calib_len = gl_flag_int("quantize", f, v, 2, 1 << 16);
        else if (!strcmp(f, "--block")) block = gl_flag_int("quantize", f, v, 32, 1 << 16);
        else if (!strcmp(f, "--damp")) damp = gl_flag_number("quantize", f, v, 1e-6, 10);
        else if (!strcmp(f, "--threads")) threads = gl_flag_int("quantize", f, v, 1, 1024);
        else {
            fprintf(stderr, "quantize: unknown flag %s\n", f);
            usage(stderr);
            exit(2);
        }
    }
    if (!in == !ckpt || !out || !type_name) usage(stderr), exit(2);
    if (threads) omp_set_num_threads(threads);
    int ti = type_index("--type", type_name);
    int type = TYPES[ti].type;
    int embd = embd_name ? TYPES[type_index("--embd-type", embd_name)].type
                         : (type == GL_TYPE_F32 || type == GL_TYPE_F16 ? type : GL_TYPE_Q8_0);
    bool gptq = !strcmp(method, "gptq");
    if (!gptq && strcmp(method, "rtn")) fail("--method must be rtn or gptq, got: ", method);
    if (gptq && (type == GL_TYPE_F32 || type == GL_TYPE_F16)) fail("--method gptq needs a block type (q8_0 q4_0 q4_1 q3_0)", "");
    if (gptq && !calib) fail("--method gptq needs a calibration text: --calib FILE", "");
    if (!gptq && calib) fail("--calib goes with --method gptq", "");
    if (block % 32) fail("--block must be a multiple of 32", "");

    char err[512];
    if (ckpt) return quantize_checkpoint(ckpt, out, type, embd, gptq, act_order, calib, calib_tokens, damp);
    llama m;
    if (!llama_load(&m, in, err, sizeof err)) fail(err, "");
    const llama_config *c = &m.cfg;
    int count = llama_matrix_count(&m);
    uint8_t **q = calloc((size_t)count, sizeof *q); /* each matrix's new bytes */
    double t0 = now();
    fprintf(stderr, "quantize: %s: %d layers, width %d, FFN %d, vocabulary %d -> %s (%s)\n", in, c->n_layer, c->n_embd,
            c->n_ff, c->vocab_size, TYPES[ti].name, gptq ? "GPTQ" : "round to nearest");

    if (gptq) {
        if (!m.tok) fail(in, ": the model has no tokenizer gradlab reads, which the calibration text needs");
        int n_seq = calib_tokens / calib_len;
        if (n_seq < 1) fail("--calib-tokens must be at least --calib-len", "");
        if (calib_len > c->ctx_len) fail("--calib-len is beyond the model's context", "");
        int64_t n_rows = (int64_t)n_seq * calib_len, widest = c->n_ff > c->n_embd ? c->n_ff : c->n_embd;
        if (n_rows < 2 * widest) {
            snprintf(err, sizeof err, "%lld calibration tokens are too few to estimate a %lld x %lld Hessian: give at "
                     "least %lld (--calib-tokens)", (long long)n_rows, (long long)widest, (long long)widest,
                     (long long)(2 * widest));
            fail(err, "");
        }
        int32_t *ids = calibration_ids(&m, calib, n_seq, calib_len);
        /* the hidden states of every sequence, [n_seq, len, C]: first the token embeddings */
        size_t C = (size_t)c->n_embd, per_seq = (size_t)calib_len * C;
        float *x = malloc((size_t)n_seq * per_seq * sizeof *x), *scratch = malloc(per_seq * sizeof *x);
        if (!x || !scratch) fail("out of memory for the calibration's hidden states", "");
        size_t emb_row = gl_qmatrix_bytes(m.tok_embd.type, 1, c->n_embd);
        for (int64_t r = 0; r < n_rows; r++) /* row ids[r] of the table */
            gl_qmatrix_to_floats(&(gl_qmatrix){m.tok_embd.type, 1, c->n_embd, (const uint8_t *)m.tok_embd.data + emb_row * ids[r]},
                                 x + r * C);
        free(ids);
        llama_cache cache;
        llama_cache_init(&cache, &m, calib_len, true);
        gl_hessian h[N_SITES];
        int dims[N_SITES] = {c->n_embd, c->n_head * c->head_dim, c->n_embd, c->n_ff};
        double error_gptq = 0, error_rtn = 0;
        fprintf(stderr, "quantize: calibration: %d sequences of %d tokens from %s\n", n_seq, calib_len, calib);
        for (int l = 0; l < c->n_layer; l++) {
            double tl = now();
            for (int s = 0; s < N_SITES; s++) gl_hessian_init(&h[s], dims[s]);
            m.observe = observe, m.observe_ctx = h;
            for (int s = 0; s < n_seq; s++) { /* at full precision, on the quantized layers' outputs */
                memcpy(scratch, x + s * per_seq, per_seq * sizeof *x);
                cache.len = 0;
                llama_layer_forward(&m, l, &cache, scratch, calib_len);
            }
            m.observe = NULL;
            double layer_gptq = 0, layer_rtn = 0;
            for (int k = 0; k < LLAMA_PER_LAYER; k++) {
                int i = 2 + l * LLAMA_PER_LAYER + k;
                gl_qmatrix *mat = llama_matrix(&m, i), rounded, gq;
                size_t n = (size_t)mat->rows * mat->cols;
                float *w = to_floats(mat), *wq = malloc(n * sizeof *wq), *wr = malloc(n * sizeof *wr);
                const gl_hessian *hs = &h[site_of(i)];
                if (!gl_qmatrix_gptq(&gq, type, w, mat->rows, mat->cols, hs, damp, block, act_order, wq, err, sizeof err)) {
                    char name[64];
                    llama_matrix_name(i, name, sizeof name);
                    fprintf(stderr, "quantize: %s: %s\n", name, err);
                    exit(1);
                }
                gl_qmatrix_round(&rounded, type, w, mat->rows, mat->cols);
                gl_qmatrix_to_floats(&rounded, wr);
                layer_gptq += gl_hessian_error(hs, w, wq, mat->rows, mat->cols);
                layer_rtn += gl_hessian_error(hs, w, wr, mat->rows, mat->cols);
                q[i] = (uint8_t *)gq.data;
                *mat = gq;
                free(w), free(wq), free(wr), free((void *)rounded.data);
            }
            for (int s = 0; s < n_seq; s++) { /* the next layer's inputs, through this layer quantized */
                cache.len = 0;
                llama_layer_forward(&m, l, &cache, x + s * per_seq, calib_len);
            }
            for (int s = 0; s < N_SITES; s++) gl_hessian_free(&h[s]);
            error_gptq += layer_gptq, error_rtn += layer_rtn;
            fprintf(stderr, "quantize: layer %2d/%d  output error GPTQ %.4g vs RTN %.4g (%.2fx)  %.1f s\n", l + 1,
                    c->n_layer, layer_gptq, layer_rtn, layer_rtn > 0 ? layer_gptq / layer_rtn : 0.0, now() - tl);
        }
        fprintf(stderr, "quantize: all layers: GPTQ's output error is %.2fx round-to-nearest's\n",
                error_rtn > 0 ? error_gptq / error_rtn : 0.0);
        llama_cache_free(&cache);
        free(x), free(scratch);
    }

    /* everything not quantized above: rounded to nearest */
    for (int i = 0; i < count; i++) {
        if (q[i] || (i == 1 && m.tied)) continue;
        gl_qmatrix *mat = llama_matrix(&m, i);
        int t = i < 2 ? embd : type;
        if (!gl_qmatrix_supported(t, mat->cols)) {
            char name[64];
            llama_matrix_name(i, name, sizeof name);
            fail(name, ": its rows are not a multiple of 32 weights; give --type f32 or f16");
        }
        float *w = to_floats(mat);
        gl_qmatrix r;
        gl_qmatrix_round(&r, t, w, mat->rows, mat->cols);
        q[i] = (uint8_t *)r.data;
        free(w);
    }

    /* the file: every key as it was (the file type updated), every tensor in its order */
    gl_gguf_writer *wr = gl_gguf_writer_new();
    for (uint64_t k = 0; k < m.file->n_kv; k++) {
        const gguf_kv *kv = &m.file->kv[k];
        if (gl_gguf_str_eq(kv->key, "general.file_type") || gl_gguf_str_eq(kv->key, "gradlab.quantization")) continue;
        if (!gl_gguf_put_kv_copy(wr, kv)) fail(in, ": a key holds an array of arrays, which quantize does not copy");
    }
    if (TYPES[ti].file_type >= 0) gl_gguf_put_u32(wr, "general.file_type", (uint32_t)TYPES[ti].file_type);
    char how[256];
    if (gptq)
        snprintf(how, sizeof how, "gptq %s%s, damp %g, block %d, %d calibration tokens of %s", TYPES[ti].name,
                 act_order ? " act order" : " column order", damp, block, calib_tokens / calib_len * calib_len, calib);
    else snprintf(how, sizeof how, "rtn %s", TYPES[ti].name);
    gl_gguf_put_str(wr, "gradlab.quantization", how);
    int64_t matrix_weights = 0, matrix_bytes = 0;
    for (uint64_t k = 0; k < m.file->n_tensors; k++) {
        const gguf_tensor *t = &m.file->tensors[k];
        char tname[256];
        snprintf(tname, sizeof tname, "%.*s", (int)t->name.len, t->name.ptr);
        int found = -1;
        for (int i = 0; i < count && found < 0; i++) {
            char name[64];
            llama_matrix_name(i, name, sizeof name);
            if (!strcmp(name, tname)) found = i;
        }
        if (found < 0) {
            gl_gguf_put_tensor(wr, tname, t->type, t->n_dims, t->ne, t->data, t->n_bytes);
            continue;
        }
        const gl_qmatrix *mat = llama_matrix(&m, found);
        int qt = found < 2 ? embd : type;
        uint64_t n_bytes = gl_qmatrix_bytes(qt, mat->rows, mat->cols);
        gl_gguf_put_tensor(wr, tname, (ggml_type)qt, 2, (const int64_t[]){mat->cols, mat->rows}, q[found], n_bytes);
        if (found >= 2) matrix_weights += (int64_t)mat->rows * mat->cols, matrix_bytes += (int64_t)n_bytes;
    }
    if (!gl_gguf_writer_save(wr, out, err, sizeof err)) fail(err, "");
    gl_gguf_writer_free(wr);
    FILE *fo = fopen(out, "rb");
    long size = 0;
    if (fo) fseek(fo, 0, SEEK_END), size = ftell(fo), fclose(fo);
    printf("quantize: wrote %s: %.1f MB; the layers' matrices at %.3f bits per weight (%s), %.1f s\n", out, size / 1e6,
           8.0 * (double)matrix_bytes / (double)matrix_weights, how, now() - t0);
    for (int i = 0; i < count; i++) free(q[i]);
    free(q);
    llama_free(&m);
    gl_stdout_check("quantize");
    return 0;
}
