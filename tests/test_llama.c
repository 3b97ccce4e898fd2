/* GGUF reading and its failures, ggml's block formats and their dot products, the decoder ops' gradients, a tiny
 * random Llama against NumPy (tests/ref/llama_reference.py tiny), and SmolLM2-135M-Instruct against llama.cpp
 * (tokenizer ids, chat prompt ids, greedy choices; skipped with a message when the model file is absent). */
#include "testutil.h"

#include <omp.h>

#include "gguf.h"
#include "io.h"
#include "json.h"
#include "kernels.h"
#include "llama.h"

static uint8_t *find_bytes(uint8_t *hay, uint64_t len, const char *needle) {
    size_t n = strlen(needle);
    for (uint64_t i = 0; i + n <= len; i++)
        if (!memcmp(hay + i, needle, n)) return hay + i;
    return NULL;
}

/* ---------------------------------------------------------------- GGUF */

static uint8_t *sample_file(uint64_t *len) {
    gl_gguf_writer *w = gl_gguf_writer_new();
    gl_gguf_put_str(w, "general.architecture", "test");
    gl_gguf_put_u32(w, "a.u32", 4000000000u);
    gl_gguf_put_i32(w, "a.i32", -7);
    gl_gguf_put_f32(w, "a.f32", 0.25f);
    gl_gguf_put_bool(w, "a.bool", true);
    const char *strs[3] = {"x", "", "long string with ünïcode"};
    gl_gguf_put_str_array(w, "a.strs", strs, 3);
    int32_t ints[4] = {1, -2, 3, -4};
    gl_gguf_put_i32_array(w, "a.ints", ints, 4);
    float f[5] = {0, 1, 2, 3, 4};
    gl_gguf_put_tensor(w, "t.f32", GGML_F32, 1, (int64_t[]){5}, f, sizeof f);
    uint8_t q[2 * 3 * 18];
    for (size_t i = 0; i < sizeof q; i++) q[i] = (uint8_t)(i * 37);
    gl_gguf_put_tensor(w, "t.q4", GGML_Q4_0, 2, (int64_t[]){64, 3}, q, sizeof q);
    uint8_t *b = gl_gguf_writer_bytes(w, len);
    gl_gguf_writer_free(w);
    return b;
}

Test(gguf, reads_back_every_value_type) {
    uint64_t len;
    uint8_t *b = sample_file(&len);
    char err[256];
    gl_gguf *g = gl_gguf_parse(b, len, "sample", err, sizeof err);
    cr_assert(g, "%s", err);
    cr_assert_eq(g->version, 3);
    cr_assert_eq(g->n_kv, 7);
    int64_t v;
    double d;
    gguf_str s;
    cr_assert(gl_gguf_get_int(g, "a.u32", 0, INT64_MAX, &v, err, sizeof err) && v == 4000000000ll);
    cr_assert(gl_gguf_get_int(g, "a.i32", -10, 10, &v, err, sizeof err) && v == -7);
    cr_assert(!gl_gguf_get_int(g, "a.i32", 0, 10, &v, err, sizeof err));
    cr_assert(strstr(err, "'a.i32' is -7, outside [0, 10]"), "%s", err);
    cr_assert(gl_gguf_get_float(g, "a.f32", &d, err, sizeof err) && d == 0.25);
    cr_assert(gl_gguf_get_str(g, "general.architecture", &s, err, sizeof err) && gl_gguf_str_eq(s, "test"));
    cr_assert(!gl_gguf_get_str(g, "a.f32", &s, err, sizeof err) && strstr(err, "is a float32, not a string"), "%s", err);
    cr_assert(!gl_gguf_get_int(g, "missing", 0, 1, &v, err, sizeof err) && strstr(err, "has no 'missing'"));
    const gguf_kv *kv = gl_gguf_find(g, "a.strs");
    cr_assert(kv && kv->arr_count == 3 && kv->strs[1].len == 0 && gl_gguf_str_eq(kv->strs[2], "long string with ünïcode"));
    kv = gl_gguf_find(g, "a.ints");
    cr_assert(kv && kv->arr_count == 4 && gl_gguf_arr_number(kv, 3) == -4);
    const gguf_tensor *t = gl_gguf_tensor(g, "t.q4");
    cr_assert(t && t->ne[0] == 64 && t->ne[1] == 3 && t->n_bytes == 2 * 3 * 18 && t->offset % 32 == 0);
    cr_assert_eq(t->data[5], (uint8_t)(5 * 37));
    t = gl_gguf_tensor(g, "t.f32");
    float f3;
    memcpy(&f3, t->data + 12, 4);
    cr_assert_eq(f3, 3.0f);
    gl_gguf_close(g);
    free(b);
}

/* every prefix of a valid file is refused with a message, never read past (ASan watches) */
Test(gguf, every_truncation_is_refused) {
    uint64_t len;
    uint8_t *b = sample_file(&len);
    char err[256];
    for (uint64_t n = 0; n < len; n++) {
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, b, n);
        err[0] = 0;
        gl_gguf *g = gl_gguf_parse(copy, n, "cut", err, sizeof err);
        cr_assert_null(g, "a file cut to %llu of %llu bytes was accepted", (unsigned long long)n, (unsigned long long)len);
        cr_assert(!strncmp(err, "cut: ", 5), "no message for a cut at %llu: '%s'", (unsigned long long)n, err);
        free(copy);
    }
    free(b);
}

static void expect_refused(uint8_t *b, uint64_t len, const char *expected) {
    char err[256] = "";
    gl_gguf *g = gl_gguf_parse(b, len, "bad", err, sizeof err);
    cr_assert_null(g, "accepted; expected '%s'", expected);
    cr_assert(strstr(err, expected), "message '%s' lacks '%s'", err, expected);
}

Test(gguf, lies_in_the_header_are_refused) {
    uint64_t len;
    uint8_t *b = sample_file(&len), *c = malloc(len);
    uint64_t huge = 1ull << 60;
#define FRESH memcpy(c, b, len)
    FRESH, memcpy(c, "GGML", 4);
    expect_refused(c, len, "not a GGUF file");
    FRESH, c[4] = 9;
    expect_refused(c, len, "version 9 is not supported");
    FRESH, memcpy(c + 8, &huge, 8);
    expect_refused(c, len, "tensors cannot fit");
    FRESH, memcpy(c + 16, &huge, 8);
    expect_refused(c, len, "metadata entries cannot fit");
    FRESH, memcpy(c + 24, &huge, 8); /* the first key's length */
    expect_refused(c, len, "beyond the end of the file");
    /* the first value's type: after magic, version, counts, key length and "general.architecture" */
    FRESH, c[24 + 8 + 20] = 77;
    expect_refused(c, len, "unknown value type 77");
    /* the string array's count */
    uint8_t *p;
    FRESH, p = find_bytes(c, len, "a.strs"), memcpy(p + 6 + 4 + 4, &huge, 8);
    expect_refused(c, len, "cannot fit");
    /* a tensor type gradlab does not know, a misaligned offset, an offset past the end, overlapping tensors */
    uint8_t *q4 = find_bytes(b, len, "t.q4");
    size_t type_at = (size_t)(q4 - b) + 4 + 4 + 16, off_at = type_at + 4;
    FRESH, c[type_at] = 99;
    expect_refused(c, len, "unknown tensor type 99");
    uint64_t off;
    memcpy(&off, b + off_at, 8);
    FRESH, off += 4, memcpy(c + off_at, &off, 8);
    expect_refused(c, len, "not a multiple of the alignment");
    FRESH, off = 1ull << 40, memcpy(c + off_at, &off, 8);
    expect_refused(c, len, "extends past the end");
    FRESH, off = 0, memcpy(c + off_at, &off, 8);
    expect_refused(c, len, "overlap");
    uint64_t dim = 63; /* not a whole number of 32-weight blocks */
    FRESH, memcpy(c + (q4 - b) + 4 + 4, &dim, 8);
    expect_refused(c, len, "not a whole number of Q4_0 blocks");
    dim = 1ull << 61;
    FRESH, memcpy(c + (q4 - b) + 4 + 4 + 8, &dim, 8);
    expect_refused(c, len, "exceeds the file");
#undef FRESH
    free(b);
    free(c);
}

Test(gguf, file_errors_name_the_file) {
    char err[256];
    cr_assert_null(gl_gguf_open("does/not/exist.gguf", err, sizeof err));
    cr_assert(strstr(err, "cannot open 'does/not/exist.gguf'"), "%s", err);
    cr_assert_null(gl_gguf_open("README.md", err, sizeof err));
    cr_assert(strstr(err, "README.md: not a GGUF file"), "%s", err);
}

/* ---------------------------------------------------------------- block formats */

Test(quant, fp16_round_trips_and_rounds_to_nearest_even) {
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7C00) == 0x7C00 && (h & 0x3FF)) continue; /* nan */
        cr_assert_eq(gl_f32_to_f16(gl_f16_to_f32((uint16_t)h)), h, "half 0x%04x", h);
    }
    cr_assert_eq(gl_f32_to_f16(1.0f + 1.0f / 2048), 0x3C00);        /* a tie: down to even */
    cr_assert_eq(gl_f32_to_f16(1.0f + 3.0f / 2048), 0x3C02);        /* a tie: up to even */
    cr_assert_eq(gl_f32_to_f16(70000.0f), 0x7C00);                  /* overflow: infinity */
    cr_assert_eq(gl_f16_to_f32(0x0001), 5.9604644775390625e-8f);    /* the smallest subnormal */
}

static const gl_qtype block_types[4] = {GL_QT_Q8_0, GL_QT_Q4_0, GL_QT_Q4_1, GL_QT_Q3_0};

Test(quant, round_to_nearest_error_is_within_half_a_step) {
    gl_rng r;
    gl_rng_seed(&r, 5);
    float x[256], y[256];
    uint8_t buf[512];
    for (int i = 0; i < 256; i++) x[i] = 3.0f * (gl_rng_uniform(&r) - 0.5f) * (i % 32 == 7 ? 20.0f : 1.0f);
    for (int k = 0; k < 4; k++) {
        gl_quantize_row(block_types[k], x, buf, 256);
        gl_dequantize_row(block_types[k], buf, y, 256);
        for (int b = 0; b < 8; b++) {
            float lo = x[b * 32], hi = x[b * 32], amax = 0;
            for (int j = 0; j < 32; j++)
                lo = fminf(lo, x[b * 32 + j]), hi = fmaxf(hi, x[b * 32 + j]), amax = fmaxf(amax, fabsf(x[b * 32 + j]));
            gl_qtype t = block_types[k];
            float step = t == GL_QT_Q8_0 ? amax / 127 : t == GL_QT_Q4_0 ? amax / 8 : t == GL_QT_Q3_0 ? amax / 4 : (hi - lo) / 15;
            for (int j = 0; j < 32; j++) { /* half a step, plus the fp16 rounding of the scale (and of Q4_1's min) */
                float e = fabsf(x[b * 32 + j] - y[b * 32 + j]), bound = 0.5f * step + 2e-3f * (amax + fabsf(lo)) + 1e-6f;
                cr_assert(e <= bound, "type %d value %d: error %g > %g", block_types[k], b * 32 + j, (double)e, (double)bound);
            }
        }
    }
}

Test(quant, q3_0_packs_each_code_where_the_format_says) {
    gl_block_scale s = {gl_f32_to_f16(0.5f), 0, 2.0f, 0};
    int q[32];
    for (int j = 0; j < 32; j++) q[j] = (j * 5 + 3) % 8;
    gl_block_q3_0 b;
    gl_block_pack(GL_QT_Q3_0, s, q, &b);
    cr_assert_eq(b.d, gl_f32_to_f16(0.5f));
    for (int j = 0; j < 32; j++) { /* low bits: ql[j % 8] at 2 (j / 8); high bit: qh[j / 8] bit j % 8 */
        int got = ((b.ql[j % 8] >> (2 * (j / 8))) & 3) | (((b.qh[j / 8] >> (j % 8)) & 1) << 2);
        cr_assert_eq(got, q[j], "code %d", j);
    }
    float y[32];
    gl_dequantize_row(GL_QT_Q3_0, &b, y, 32);
    for (int j = 0; j < 32; j++) cr_assert_eq(y[j], 0.5f * (q[j] - 4), "value %d", j);
    /* the largest magnitude maps to code 0 (-4 d); a value beyond the block's span clamps to an end */
    float x[32] = {0};
    x[5] = -2.0f, x[9] = 1.0f;
    gl_block_scale t = gl_block_scale_of(GL_QT_Q3_0, x);
    cr_assert_eq(gl_f16_to_f32(t.d16), 0.5f);
    cr_assert_eq(gl_block_code(GL_QT_Q3_0, t, -2.0f), 0);
    cr_assert_eq(gl_block_code(GL_QT_Q3_0, t, 1.0f), 6);
    cr_assert_eq(gl_block_code(GL_QT_Q3_0, t, 9.0f), 7);
    cr_assert_eq(gl_block_code(GL_QT_Q3_0, t, -9.0f), 0);
}

Test(quant, simd_dots_equal_the_reference_to_the_bit_and_the_exact_sum_closely) {
    gl_rng r;
    gl_rng_seed(&r, 9);
    enum { K = 576 };
    float w[K], x[K];
    uint8_t wq[K / 32 * 40];
    gl_block_q8a xq[K / 32];
    for (int trial = 0; trial < 20; trial++) {
        for (int i = 0; i < K; i++) w[i] = gl_rng_uniform(&r) - 0.5f, x[i] = (gl_rng_uniform(&r) - 0.5f) * (i == 100 ? 500.0f : 4.0f);
        gl_quantize_act(x, xq, K);
        for (int k = 0; k < 4; k++) {
            gl_quantize_row(block_types[k], w, wq, K);
            float ref = gl_vec_dot_q_ref(block_types[k], K, wq, xq);
            /* the dequantized values' dot in double; Q4_1's offset m meets the activations' stored sum s, as in ggml */
            float wd[K];
            double exact = 0;
            gl_dequantize_row(block_types[k], wq, wd, K);
            for (int b = 0; b < K / 32; b++) {
                float m = block_types[k] == GL_QT_Q4_1 ? gl_f16_to_f32(((const gl_block_q4_1 *)wq)[b].m) : 0.0f;
                for (int j = 0; j < 32; j++) exact += ((double)wd[b * 32 + j] - m) * xq[b].d * xq[b].qs[j];
                exact += (double)m * xq[b].s;
            }
            cr_assert(fabs(ref - exact) <= 1e-4 * (fabs(exact) + 10), "type %d: reference %g, exact %g", block_types[k], (double)ref, exact);
            for (int isa = 0; isa < GL_ISA_COUNT; isa++) { /* every level adds in the same order: the same bits */
                if (gl_isa_set((gl_isa)isa) != (gl_isa)isa) continue;
                float got = gl_vec_dot_q(block_types[k], K, wq, xq);
                cr_assert_eq(got, ref, "type %d %s: %.9g vs reference %.9g", block_types[k], gl_isa_name((gl_isa)isa),
                             (double)got, (double)ref);
            }
        }
    }
    gl_isa_set(gl_isa_supported());
}

Test(quant, matmul_is_the_dot_of_each_pair_for_any_thread_count) {
    enum { N = 37, K = 96, M = 5 };
    gl_rng r;
    gl_rng_seed(&r, 3);
    float *w = malloc(N * K * 4), x[M * K], y1[M * N], y2[M * N];
    for (int i = 0; i < N * K; i++) w[i] = gl_rng_uniform(&r) - 0.5f;
    for (int i = 0; i < M * K; i++) x[i] = gl_rng_uniform(&r) * 2 - 1;
    uint8_t *wq = malloc(N * K * 2);
    for (int k = 0; k < 4; k++) {
        gl_qtype t = block_types[k];
        for (int n = 0; n < N; n++) gl_quantize_row(t, w + n * K, wq + n * gl_qtype_row_bytes(t, K), K);
        omp_set_num_threads(1);
        gl_matmul_q(t, wq, N, K, x, M, y1);
        omp_set_num_threads(2);
        gl_matmul_q(t, wq, N, K, x, M, y2);
        cr_assert(!memcmp(y1, y2, sizeof y1), "type %d: 1 and 2 threads differ", t);
        for (int m = 0; m < M; m++) {
            gl_block_q8a xq[K / 32];
            gl_quantize_act(x + m * K, xq, K);
            for (int n = 0; n < N; n++)
                cr_assert_eq(y1[m * N + n], gl_vec_dot_q(t, K, wq + n * gl_qtype_row_bytes(t, K), xq));
        }
    }
    free(w);
    free(wq);
}

/* ---------------------------------------------------------------- the decoder ops' gradients */

static gl_tensor *loss_rmsnorm(gl_tensor **in, void *ctx) { (void)ctx; return weighted_sum(gl_rmsnorm(in[0], in[1], 1e-5f)); }
static gl_tensor *loss_rope(gl_tensor **in, void *ctx) { (void)ctx; return weighted_sum(gl_rope(in[0], 3, 5, 10000.0f, 4)); }
static gl_tensor *loss_swiglu(gl_tensor **in, void *ctx) { (void)ctx; return weighted_sum(gl_swiglu(in[0], in[1])); }
static gl_tensor *loss_linear_q(gl_tensor **in, void *ctx) { return weighted_sum(gl_linear_q(in[0], ctx)); }

Test(decoder_ops, gradients_match_finite_differences) {
    gl_tensor *x = rand_param(GL_DIMS(3, 7), 1, -2, 2, 0), *w = rand_param(GL_DIMS(7), 2, 0.5f, 1.5f, 0);
    check_grads("rmsnorm", loss_rmsnorm, (gl_tensor *[]){x, w}, 2, NULL);
    gl_tensor *r = rand_param(GL_DIMS(4, 15), 3, -2, 2, 0); /* 3 heads of 5, the first 4 dims rotated */
    check_grads("rope", loss_rope, &r, 1, NULL);
    gl_tensor *a = rand_param(GL_DIMS(2, 9), 4, -3, 3, 0), *b = rand_param(GL_DIMS(2, 9), 5, -2, 2, 0);
    check_grads("swiglu", loss_swiglu, (gl_tensor *[]){a, b}, 2, NULL);
    uint16_t wh[5 * 7];
    for (int i = 0; i < 35; i++) wh[i] = gl_f32_to_f16((float)((i * 7) % 11) / 5 - 1);
    gl_qmatrix m = {GL_QT_F16, 5, 7, wh};
    check_grads("linear_q (F16 weight)", loss_linear_q, &x, 1, &m);
    gl_param_free(x), gl_param_free(w), gl_param_free(r), gl_param_free(a), gl_param_free(b);
}

Test(decoder_ops, rope_at_position_zero_is_the_identity_and_keeps_norms) {
    gl_tensor *x = rand_param(GL_DIMS(3, 8), 7, -1, 1, 0);
    gl_tensor *y = gl_rope(x, 2, 0, 10000.0f, 4);
    for (int i = 0; i < 8; i++) cr_assert_eq(y->data[i], x->data[i]);
    for (int t = 1; t < 3; t++)
        for (int h = 0; h < 2; h++)
            for (int p = 0; p < 2; p++) {
                const float *a = x->data + t * 8 + h * 4 + 2 * p, *b = y->data + t * 8 + h * 4 + 2 * p;
                cr_assert_float_eq(a[0] * a[0] + a[1] * a[1], b[0] * b[0] + b[1] * b[1], 1e-5);
            }
    gl_param_free(x);
    gl_step_reset();
}

/* ---------------------------------------------------------------- a tiny random Llama against NumPy */

Test(llama, tiny_model_matches_numpy_and_the_cache_matches_one_pass) {
    char err[256];
    llama m;
    cr_assert(llama_load(&m, "tests/ref/llama_tiny.gguf", err, sizeof err), "%s", err);
    cr_assert_eq(m.cfg.n_kv_head, 2);
    cr_assert_eq(m.cfg.rope_dim, 12);
    cr_assert(!m.tied && !m.tok);
    enum { T = 12, V = 97 };
    int32_t ids[T] = {3, 96, 0, 41, 41, 7, 58, 13, 2, 77, 5, 64};
    float ref[T * V], all[T * V], one[V];
    FILE *f = fopen("tests/ref/llama_tiny.logits.bin", "rb");
    cr_assert(f && fread(ref, sizeof(float), T * V, f) == T * V);
    fclose(f);
    llama_cache c;
    llama_cache_init(&c, &m, 16, false);
    llama_forward(&m, &c, ids, T, all, true);
    for (int i = 0; i < T * V; i++)
        cr_assert(fabsf(all[i] - ref[i]) <= 1e-4f * (1 + fabsf(ref[i])), "logit %d (position %d): %.6f vs NumPy %.6f", i,
                  i / V, (double)all[i], (double)ref[i]);
    c.len = 0; /* token by token through the cache: the same numbers, bit for bit */
    for (int t = 0; t < T; t++) {
        llama_forward(&m, &c, ids + t, 1, one, false);
        cr_assert(!memcmp(one, all + t * V, sizeof one), "position %d differs between one pass and the cache", t);
    }
    llama_cache_free(&c);
    llama_free(&m);
}

/* llama.cpp's attention (kv_f16) and everything else: the same bits for 1 and 2 threads */
Test(llama, logits_do_not_depend_on_the_thread_count) {
    char err[256];
    llama m;
    cr_assert(llama_load(&m, "tests/ref/llama_tiny.gguf", err, sizeof err), "%s", err);
    enum { T = 12, V = 97 };
    int32_t ids[T] = {3, 96, 0, 41, 41, 7, 58, 13, 2, 77, 5, 64};
    float one[T * V], two[T * V];
    llama_cache c;
    llama_cache_init(&c, &m, 16, true);
    for (int threads = 1; threads <= 2; threads++) {
        omp_set_num_threads(threads);
        c.len = 0;
        llama_forward(&m, &c, ids, T - 3, threads == 1 ? one : two, true);
        for (int t = T - 3; t < T; t++) llama_forward(&m, &c, ids + t, 1, (threads == 1 ? one : two) + t * V, false);
    }
    cr_assert(!memcmp(one, two, sizeof one), "1 and 2 threads give different logits");
    llama_cache_free(&c);
    llama_free(&m);
}

Test(llama, bad_models_get_one_line_errors) {
    char err[256];
    llama m;
    cr_assert(!llama_load(&m, "tests/ref/gpt2_tiny.safetensors", err, sizeof err));
    cr_assert(strstr(err, "not a GGUF file"), "%s", err);
    gl_gguf_writer *w = gl_gguf_writer_new();
    gl_gguf_put_str(w, "general.architecture", "mamba");
    cr_assert(gl_gguf_writer_save(w, "build/tests/arch.gguf", err, sizeof err), "%s", err);
    gl_gguf_writer_free(w);
    cr_assert(!llama_load(&m, "build/tests/arch.gguf", err, sizeof err));
    cr_assert(strstr(err, "architecture 'mamba' is not supported"), "%s", err);
    remove("build/tests/arch.gguf");
}

/* ---------------------------------------------------------------- SmolLM2-135M-Instruct against llama.cpp */

static bool smollm2(llama *m) {
    char path[512], err[256];
    if (!gl_find_data("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", path, sizeof path)) {
        cr_log_warn("skipped: %s is absent (make data fetches it)", path);
        return false;
    }
    cr_assert(llama_load(m, path, err, sizeof err), "%s", err);
    return true;
}

/* a line's tab-separated fields; the first is a JSON string */
static int split_tabs(char *line, char **fields, int max) {
    int n = 0;
    fields[n++] = line;
    for (char *p = line; *p && n < max; p++)
        if (*p == '\t') *p = 0, fields[n++] = p + 1;
    return n;
}

static int parse_ints(const char *s, int32_t *out, int max) {
    int n = 0;
    char *end;
    for (long v = strtol(s, &end, 10); end != s && n < max; v = strtol(s = end, &end, 10)) out[n++] = (int32_t)v;
    return n;
}

typedef struct {
    int32_t ids[128];
    int n;
} generated;

static bool collect(int32_t tok, void *ctx) {
    generated *g = ctx;
    if (g->n < 128) g->ids[g->n++] = tok;
    return true;
}

Test(llama, smollm2_tokenizer_gives_llama_cpp_ids) {
    llama m;
    if (!smollm2(&m)) return;
    FILE *f = fopen("tests/ref/smollm2_tokens.tsv", "r");
    cr_assert(f);
    char *line = NULL;
    size_t cap = 0;
    int lines = 0;
    while (getline(&line, &cap, f) > 0) {
        char *fields[2];
        cr_assert_eq(split_tabs(line, fields, 2), 2);
        char jerr[64];
        gl_json *j = gl_json_parse(fields[0], strlen(fields[0]), jerr, sizeof jerr);
        cr_assert(j && j->type == GL_JSON_STRING);
        int32_t want[4096], *got = NULL;
        int n_want = parse_ints(fields[1], want, 4096);
        size_t got_cap = 0, n = gl_bpe_encode(m.tok, (const unsigned char *)j->string, j->string_len, &got, &got_cap);
        cr_assert_eq((int)n, n_want, "line %d (%s): %zu ids, llama.cpp %d", lines + 1, fields[0], n, n_want);
        for (int i = 0; i < n_want; i++) cr_assert_eq(got[i], want[i], "line %d id %d", lines + 1, i);
        free(got);
        gl_json_free(j);
        lines++;
    }
    cr_assert_geq(lines, 20);
    free(line);
    fclose(f);
    llama_free(&m);
}

/* The chat prompt's ids equal llama.cpp's, and greedy generation gives llama.cpp's tokens, stop token included:
 * 64 tokens (or up to <|im_end|>) for each of five prompts. The arithmetic is llama.cpp's operation for operation
 * (docs/llama.md), so the logits are equal to the bit and no near-tie can go the other way. Teacher-forced, every
 * answer position is checked too, so a difference is reported where it first appears. */
Test(llama, smollm2_chat_prompt_and_greedy_answers_equal_llama_cpp) {
    llama m;
    if (!smollm2(&m)) return;
    FILE *f = fopen("tests/ref/smollm2_greedy.tsv", "r");
    cr_assert(f);
    char *line = NULL;
    size_t cap = 0;
    int checked = 0, prompts = 0;
    llama_cache c;
    llama_cache_init(&c, &m, 512, true);
    float *logits = malloc((size_t)m.cfg.vocab_size * sizeof(float));
    while (getline(&line, &cap, f) > 0) {
        char *fields[4], jerr[64];
        cr_assert_eq(split_tabs(line, fields, 4), 4);
        gl_json *j = gl_json_parse(fields[0], strlen(fields[0]), jerr, sizeof jerr);
        int32_t want_prompt[256], answer[128], seq[400];
        int n_prompt = parse_ints(fields[1], want_prompt, 256), n_answer = parse_ints(fields[2], answer, 128);
        float gaps[128];
        char *p = fields[3];
        for (int i = 0; i < n_answer; i++) gaps[i] = strtof(p, &p);
        int32_t *ids = NULL;
        size_t ids_cap = 0;
        const char *roles[1] = {"user"}, *texts[1] = {j->string};
        int n = llama_chat_ids(&m, roles, texts, 1, &ids, &ids_cap);
        cr_assert_eq(n, n_prompt, "%s: %d prompt ids, llama.cpp %d", j->string, n, n_prompt);
        for (int i = 0; i < n; i++) cr_assert_eq(ids[i], want_prompt[i], "%s: prompt id %d", j->string, i);
        memcpy(seq, ids, n * sizeof *ids);
        memcpy(seq + n, answer, n_answer * sizeof *answer);
        /* teacher-forced as llama.cpp generated it: the prompt in one batch, then one token per step */
        c.len = 0;
        llama_forward(&m, &c, seq, n, logits, false);
        for (int i = 0; i < n_answer; i++) {
            int best = 0;
            for (int v = 1; v < m.cfg.vocab_size; v++)
                if (logits[v] > logits[best]) best = v;
            cr_assert_eq(best, answer[i], "%s: answer token %d: ours %d, llama.cpp %d (its lead %.3f)", j->string, i, best,
                         answer[i], (double)gaps[i]);
            checked++;
            if (i + 1 < n_answer) llama_forward(&m, &c, seq + n + i, 1, logits, false);
        }
        c.len = 0; /* free-running, as infer --chat generates */
        gl_sampling greedy = {.temperature = 0, .top_k = 0, .top_p = 1};
        generated g = {{0}, 0};
        llama_generate(&m, &c, ids, n, n_answer, &greedy, NULL, true, collect, &g);
        cr_assert_eq(g.n, n_answer, "%s: %d tokens generated, llama.cpp %d", j->string, g.n, n_answer);
        for (int i = 0; i < n_answer; i++) cr_assert_eq(g.ids[i], answer[i], "%s: generated token %d", j->string, i);
        free(ids);
        gl_json_free(j);
        prompts++;
    }
    cr_assert_eq(prompts, 5);
    cr_assert_geq(checked, 250);
    free(logits);
    free(line);
    fclose(f);
    llama_cache_free(&c);
    llama_free(&m);
}

/* Continuous batching: n sequences at different positions decoded together (llama_forward_batch: one GEMM over the
 * batch, attention per sequence) give each sequence's logits bit for bit as decoding it alone, so greedy outputs
 * are identical too. Prompts of 1 to 8 tokens: every row has its own position. */
static void batch_equals_alone(llama *m, const int32_t *const *prompts, const int *lens, int n, int steps, bool f16,
                               int capacity) {
    int V = m->cfg.vocab_size;
    float *alone = malloc((size_t)n * steps * V * sizeof(float)), *batch = malloc((size_t)n * V * sizeof(float));
    int32_t *next = malloc((size_t)n * sizeof *next);
    llama_cache *caches = malloc((size_t)n * sizeof *caches);
    llama_cache **ptrs = malloc((size_t)n * sizeof *ptrs);
    for (int i = 0; i < n; i++) { /* alone: the prompt, then greedy steps one token at a time */
        llama_cache c;
        llama_cache_init(&c, m, capacity, f16);
        float *lg = alone + (size_t)i * steps * V;
        llama_forward(m, &c, prompts[i], lens[i], lg, false);
        for (int s = 1; s < steps; s++) {
            int32_t best = 0;
            for (int v = 1; v < V; v++) best = lg[(size_t)(s - 1) * V + v] > lg[(size_t)(s - 1) * V + best] ? v : best;
            llama_forward(m, &c, &best, 1, lg + (size_t)s * V, false);
        }
        llama_cache_free(&c);
    }
    for (int i = 0; i < n; i++) { /* together: each prompt prefilled alone, then every step for all at once */
        llama_cache_init(&caches[i], m, capacity, f16);
        ptrs[i] = &caches[i];
        llama_forward(m, &caches[i], prompts[i], lens[i], batch, false);
        cr_assert(!memcmp(batch, alone + (size_t)i * steps * V, (size_t)V * sizeof(float)));
    }
    for (int s = 1; s < steps; s++) {
        for (int i = 0; i < n; i++) {
            const float *lg = alone + ((size_t)i * steps + s - 1) * V;
            next[i] = 0;
            for (int v = 1; v < V; v++) next[i] = lg[v] > lg[next[i]] ? v : next[i];
        }
        llama_forward_batch(m, ptrs, next, n, batch);
        for (int i = 0; i < n; i++)
            cr_assert(!memcmp(batch + (size_t)i * V, alone + ((size_t)i * steps + s) * V, (size_t)V * sizeof(float)),
                      "step %d, sequence %d (f16 cache %d): the batched logits differ from decoding it alone", s, i, f16);
    }
    for (int i = 0; i < n; i++) llama_cache_free(&caches[i]);
    free(alone), free(batch), free(next), free(caches), free(ptrs);
}

Test(llama, a_batch_of_sequences_decodes_as_each_alone) {
    char err[256];
    llama m;
    cr_assert(llama_load(&m, "tests/ref/llama_tiny.gguf", err, sizeof err), "%s", err);
    int32_t p[8][8] = {{3}, {96, 0}, {41, 41, 7}, {58, 13, 2, 77}, {5, 64, 3, 96, 0}, {7, 7, 7, 7, 7, 7},
                       {1, 2, 3, 4, 5, 6, 7}, {90, 80, 70, 60, 50, 40, 30, 20}};
    const int32_t *prompts[8];
    int lens[8];
    for (int i = 0; i < 8; i++) prompts[i] = p[i], lens[i] = i + 1;
    batch_equals_alone(&m, prompts, lens, 8, 6, false, 16);
    batch_equals_alone(&m, prompts, lens, 8, 6, true, 16);
    batch_equals_alone(&m, prompts + 5, lens + 5, 3, 4, true, 16); /* another batch size */
    llama_free(&m);
}

Test(llama, smollm2_batch_of_8_chats_decodes_as_each_alone) {
    llama m;
    if (!smollm2(&m)) return;
    const char *questions[8] = {"What is the capital of France?", "Name three primary colors.", "Say hello in Spanish.",
                                "What is 12 times 12?", "Write a haiku about the sea.", "Why is the sky blue?",
                                "Give me a word that rhymes with cat.", "What does a compiler do?"};
    int32_t *ids[8];
    int lens[8];
    for (int i = 0; i < 8; i++) {
        size_t cap = 0;
        ids[i] = NULL;
        const char *roles[1] = {"user"}, *texts[1] = {questions[i]};
        lens[i] = llama_chat_ids(&m, roles, texts, 1, &ids[i], &cap);
    }
    batch_equals_alone(&m, (const int32_t *const *)ids, lens, 8, 8, true, 128);
    for (int i = 0; i < 8; i++) free(ids[i]);
    llama_free(&m);
}

/* ---------------------------------------------------------------- the continuous-batching scheduler */
#include "scheduler.h"

typedef struct {
    int32_t out[64];
    int n, cancel_after; /* on_token returns false at token number cancel_after (0: never) */
} reply;

static bool on_token(sched_request *r, int32_t tok, const float *logits) {
    (void)logits;
    reply *p = r->user;
    if (p->n < 64) p->out[p->n++] = tok;
    return !(p->cancel_after && p->n >= p->cancel_after);
}

static int run_until_idle(sched *s) {
    int steps = 0;
    while (sched_step(s)) steps++;
    return steps;
}

/* what llama_generate gives the request alone, from an empty cache */
static int alone(llama *m, const int32_t *prompt, int n, int max_tokens, gl_sampling smp, uint64_t seed, bool f16,
                 int32_t *out) {
    llama_cache c;
    llama_cache_init(&c, m, 64, f16);
    gl_rng rng;
    gl_rng_seed(&rng, seed);
    generated g = {{0}, 0};
    llama_generate(m, &c, prompt, n, max_tokens, &smp, &rng, true, collect, &g);
    llama_cache_free(&c);
    memcpy(out, g.ids, (size_t)g.n * sizeof *out);
    return g.n;
}

Test(llama, the_scheduler_gives_each_request_its_tokens_alone) {
    char err[256];
    llama m;
    cr_assert(llama_load(&m, "tests/ref/llama_tiny.gguf", err, sizeof err), "%s", err);
    int32_t p[8][8] = {{3}, {96, 0}, {41, 41, 7}, {58, 13, 2, 77}, {5, 64, 3, 96, 0}, {7, 7, 7, 7, 7, 7},
                       {1, 2, 3, 4, 5, 6, 7}, {90, 80, 70, 60, 50, 40, 30, 20}};
    /* 3 slots for 8 requests, prompts fed 2 tokens per step, half greedy and half sampled */
    sched *s = sched_new(sched_llama(&m), (sched_config){.slots = 3, .ctx = 64, .prefill_chunk = 2, .max_queue = 8}, err, sizeof err);
    cr_assert(s, "%s", err);
    sched_request r[8];
    reply out[8];
    memset(out, 0, sizeof out);
    for (int i = 0; i < 8; i++) {
        r[i] = (sched_request){.prompt = p[i], .n_prompt = i + 1, .max_tokens = 5 + i % 3, .seed = 100 + i,
                               .sampling = {i % 2 ? 0.8f : 0.0f, 0, 1.0f}, .on_token = on_token, .user = &out[i]};
        cr_assert(sched_submit(s, &r[i]));
    }
    run_until_idle(s);
    for (int i = 0; i < 8; i++) {
        int32_t want[64];
        int n = alone(&m, p[i], i + 1, r[i].max_tokens, r[i].sampling, r[i].seed, false, want);
        cr_assert_eq(out[i].n, n, "request %d: %d tokens, alone %d", i, out[i].n, n);
        cr_assert(!memcmp(out[i].out, want, (size_t)n * sizeof *want), "request %d's tokens differ from alone", i);
        cr_assert_str_eq(r[i].finish, "length");
    }
    sched_stats st = sched_get_stats(s);
    cr_assert_eq(st.busy_slots, 0);
    cr_assert_gt(st.decode_rows, st.steps, "decode steps carried several rows at once");
    sched_free(s);
    llama_free(&m);
}

/* the next turn reuses the cached prefix; a new prompt does not stall the streams decoding; cancelling frees the
 * slot; a full queue refuses */
Test(llama, the_scheduler_reuses_prefixes_interleaves_prefill_and_cancels) {
    char err[256];
    llama m;
    cr_assert(llama_load(&m, "tests/ref/llama_tiny.gguf", err, sizeof err), "%s", err);
    sched *s = sched_new(sched_llama(&m), (sched_config){.slots = 2, .ctx = 64, .prefill_chunk = 2, .max_queue = 1}, err, sizeof err);
    cr_assert(s, "%s", err);
    int32_t first[4] = {58, 13, 2, 77};
    reply a = {{0}, 0, 0};
    sched_request ra = {.prompt = first, .n_prompt = 4, .max_tokens = 5, .sampling = {0, 0, 1}, .on_token = on_token,
                        .user = &a};
    cr_assert(sched_submit(s, &ra));
    run_until_idle(s);
    /* turn two: the first prompt, the answer so far, one more token */
    int32_t second[16];
    memcpy(second, first, sizeof first);
    memcpy(second + 4, a.out, 5 * sizeof(int32_t));
    second[9] = 11;
    reply b = {{0}, 0, 0};
    sched_request rb = {.prompt = second, .n_prompt = 10, .max_tokens = 4, .sampling = {0, 0, 1}, .on_token = on_token,
                        .user = &b};
    cr_assert(sched_submit(s, &rb));
    run_until_idle(s);
    cr_assert_eq(rb.prefix_reused, 8, "the cache held the prompt and 4 fed answer tokens: %d reused", rb.prefix_reused);
    int32_t want[64];
    int n = alone(&m, second, 10, 4, rb.sampling, 0, false, want);
    cr_assert(b.n == n && !memcmp(b.out, want, (size_t)n * sizeof *want), "the reused turn's tokens differ from alone");

    /* a long prompt arrives while a request decodes: that request still gets a token at every step */
    reply c = {{0}, 0, 0}, d = {{0}, 0, 0};
    int32_t long_prompt[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    sched_request rc = {.prompt = first, .n_prompt = 2, .max_tokens = 20, .sampling = {0, 0, 1}, .on_token = on_token,
                        .user = &c};
    sched_request rd = {.prompt = long_prompt, .n_prompt = 12, .max_tokens = 3, .sampling = {0, 0, 1},
                        .on_token = on_token, .user = &d};
    cr_assert(sched_submit(s, &rc));
    sched_step(s); /* rc prefilled: its first token */
    cr_assert(sched_submit(s, &rd));
    for (int step = 0; step < 6; step++) { /* rd's 12 prompt tokens take 6 steps of 2 */
        int before = c.n;
        sched_step(s);
        cr_assert_eq(c.n, before + 1, "step %d: the decoding request got no token while a prompt was prefilled", step);
    }
    cr_assert_eq(d.n, 1, "the long prompt's first token came with its last chunk");
    /* the decoding request is cancelled by its client: its slot frees at once */
    sched_cancel(s, &rc);
    run_until_idle(s);
    cr_assert_str_eq(rc.finish, "cancelled");
    cr_assert_str_eq(rd.finish, "length");
    /* on_token returning false cancels too */
    reply e = {{0}, 0, 2};
    sched_request re = {.prompt = first, .n_prompt = 3, .max_tokens = 10, .sampling = {0, 0, 1}, .on_token = on_token,
                        .user = &e};
    cr_assert(sched_submit(s, &re));
    run_until_idle(s);
    cr_assert(e.n == 2 && !strcmp(re.finish, "cancelled"));
    /* a queue of 1 with both slots busy: the third request is refused */
    reply f[3];
    memset(f, 0, sizeof f);
    sched_request rf[3];
    for (int i = 0; i < 3; i++)
        rf[i] = (sched_request){.prompt = first, .n_prompt = 4, .max_tokens = 2, .sampling = {0, 0, 1},
                                .on_token = on_token, .user = &f[i]};
    cr_assert(sched_submit(s, &rf[0]));
    sched_step(s); /* admitted, prefilling */
    cr_assert(sched_submit(s, &rf[1]));
    sched_step(s); /* admitted: both slots busy */
    cr_assert(sched_submit(s, &rf[2])); /* waits in the queue */
    sched_request extra = rf[2];
    cr_assert_not(sched_submit(s, &extra));
    cr_assert_str_eq(extra.finish, "queue_full");
    run_until_idle(s);
    sched_request too_long = {.prompt = long_prompt, .n_prompt = 64, .max_tokens = 1, .on_token = on_token, .user = &f[0]};
    cr_assert_not(sched_submit(s, &too_long));
    cr_assert_str_eq(too_long.finish, "too_long");
    sched_free(s);
    llama_free(&m);
}

Test(llama, smollm2_scheduler_answers_8_chats_as_each_alone) {
    llama m;
    if (!smollm2(&m)) return;
    const char *questions[8] = {"What is the capital of France?", "Name three primary colors.", "Say hello in Spanish.",
                                "What is 12 times 12?", "Write a haiku about the sea.", "Why is the sky blue?",
                                "Give me a word that rhymes with cat.", "What does a compiler do?"};
    char err[256];
    /* llama.cpp's fp16 cache; every prompt in one piece (a budget of 512 covers them all), as llama_generate feeds
     * them: that attention's last bits depend on how a prompt is split */
    sched *s = sched_new(sched_llama(&m), (sched_config){.slots = 4, .ctx = 64, .prefill_chunk = 512, .max_queue = 8, .kv_f16 = true},
                         err, sizeof err);
    cr_assert(s, "%s", err);
    int32_t *ids[8];
    sched_request r[8];
    reply out[8];
    memset(out, 0, sizeof out);
    for (int i = 0; i < 8; i++) {
        size_t cap = 0;
        ids[i] = NULL;
        const char *roles[1] = {"user"}, *texts[1] = {questions[i]};
        int n = llama_chat_ids(&m, roles, texts, 1, &ids[i], &cap);
        r[i] = (sched_request){.prompt = ids[i], .n_prompt = n, .max_tokens = 8, .sampling = {0, 0, 1},
                               .on_token = on_token, .user = &out[i]};
        cr_assert(sched_submit(s, &r[i]));
    }
    run_until_idle(s);
    for (int i = 0; i < 8; i++) {
        int32_t want[64];
        int n = alone(&m, ids[i], r[i].n_prompt, 8, r[i].sampling, 0, true, want);
        cr_assert(out[i].n == n && !memcmp(out[i].out, want, (size_t)n * sizeof *want), "chat %d differs from alone", i);
        free(ids[i]);
    }
    sched_free(s);
    llama_free(&m);
}
