/* Finite-difference gradient checks for every op (tolerance explained in testutil.h: check_grads). */
#include "testutil.h"

static const int odd_sizes[] = {1, 3, 7, 17, 33, 127};
#define N_ODD (int)(sizeof odd_sizes / sizeof *odd_sizes)

/* ---------------------------------------------------------------- binary ops with broadcasting */

typedef gl_tensor *(*binary_op)(gl_tensor *, gl_tensor *);
static gl_tensor *loss_binary(gl_tensor **in, void *ctx) { return weighted_sum(((binary_op)ctx)(in[0], in[1])); }

static void check_binary(const char *name, binary_op op, int nda, const int *sa, int ndb, const int *sb) {
    gl_tensor *in[2] = {rand_param(nda, sa, 1, -2, 2, 0.3f), rand_param(ndb, sb, 2, -2, 2, 0.3f)};
    check_grads(name, loss_binary, in, 2, (void *)op);
    gl_param_free(in[0]);
    gl_param_free(in[1]);
}

static void check_all_binary(int nda, const int *sa, int ndb, const int *sb) {
    check_binary("add", gl_add, nda, sa, ndb, sb);
    check_binary("sub", gl_sub, nda, sa, ndb, sb);
    check_binary("mul", gl_mul, nda, sa, ndb, sb);
    check_binary("div", gl_div, nda, sa, ndb, sb);
}

Test(grad, binary_same_shape_odd_sizes) {
    for (int i = 0; i < N_ODD; i++) check_all_binary(GL_DIMS(odd_sizes[i]), GL_DIMS(odd_sizes[i]));
    check_all_binary(GL_DIMS(7, 17), GL_DIMS(7, 17));
}

Test(grad, binary_broadcasting) {
    check_all_binary(GL_DIMS(7, 33), GL_DIMS(33));        /* bias add */
    check_all_binary(GL_DIMS(17), GL_DIMS(3, 17));        /* left operand broadcast */
    check_all_binary(GL_DIMS(7, 1), GL_DIMS(1, 3));       /* outer product shape */
    check_all_binary(GL_DIMS(2, 3, 7), GL_DIMS(3, 1));    /* middle and last */
    check_all_binary(GL_DIMS(3, 1, 5), GL_DIMS(2, 1));    /* both stretch */
    check_all_binary(GL_DIMS(1), GL_DIMS(2, 3, 1, 7));    /* scalar-like, 4-D */
}

Test(grad, same_tensor_used_twice) {
    gl_tensor *x = rand_param(GL_DIMS(17), 3, -2, 2, 0.3f);
    gl_tensor *in[2] = {x, x};
    check_grads("mul(x, x)", loss_binary, in, 1, (void *)gl_mul);
    gl_param_free(x);
}

/* ---------------------------------------------------------------- unary */

typedef gl_tensor *(*unary_op)(gl_tensor *);
static gl_tensor *loss_unary(gl_tensor **in, void *ctx) { return weighted_sum(((unary_op)ctx)(in[0])); }
static gl_tensor *add_scalar_3(gl_tensor *x) { return gl_add_scalar(x, 3.0f); }
static gl_tensor *mul_scalar_m2(gl_tensor *x) { return gl_mul_scalar(x, -2.5f); }

Test(grad, unary_odd_sizes) {
    struct {
        const char *name;
        unary_op f;
        float lo, hi;
    } ops[] = {{"exp", gl_exp, -2, 2},   {"log", gl_log, 0.3f, 3},        {"tanh", gl_tanh, -3, 3},
               {"sigmoid", gl_sigmoid, -4, 4}, {"log_sigmoid", gl_log_sigmoid, -6, 6},
               {"relu", gl_relu, -2, 2}, {"gelu", gl_gelu, -4, 4},
               {"add_scalar", add_scalar_3, -2, 2}, {"mul_scalar", mul_scalar_m2, -2, 2}};
    for (size_t o = 0; o < sizeof ops / sizeof *ops; o++)
        for (int i = 0; i < N_ODD; i++) {
            gl_tensor *x = rand_param(GL_DIMS(odd_sizes[i]), 10 + i, ops[o].lo, ops[o].hi, 0.05f);
            check_grads(ops[o].name, loss_unary, &x, 1, (void *)ops[o].f);
            gl_param_free(x);
        }
}

/* ---------------------------------------------------------------- matmul */

typedef struct {
    bool ta, tb;
} mm_ctx;

static gl_tensor *loss_matmul(gl_tensor **in, void *ctx) {
    mm_ctx *c = ctx;
    gl_tensor *a = c->ta ? gl_transpose(in[0], -1, -2) : in[0];
    gl_tensor *b = c->tb ? gl_transpose(in[1], -1, -2) : in[1];
    return weighted_sum(gl_matmul(a, b));
}

static void check_mm(int M, int K, int N, bool ta, bool tb) {
    gl_tensor *a = ta ? rand_param(GL_DIMS(K, M), 5, -1, 1, 0) : rand_param(GL_DIMS(M, K), 5, -1, 1, 0);
    gl_tensor *b = tb ? rand_param(GL_DIMS(N, K), 6, -1, 1, 0) : rand_param(GL_DIMS(K, N), 6, -1, 1, 0);
    gl_tensor *in[2] = {a, b};
    mm_ctx c = {ta, tb};
    char name[64];
    snprintf(name, sizeof name, "matmul %dx%dx%d ta=%d tb=%d", M, K, N, ta, tb);
    check_grads(name, loss_matmul, in, 2, &c);
    gl_param_free(a);
    gl_param_free(b);
}

Test(grad, matmul_2d_odd_sizes_and_transposed_views) {
    const int dims[][3] = {{1, 1, 1}, {3, 7, 1}, {1, 17, 3}, {7, 3, 17}, {17, 33, 7}, {33, 1, 5}};
    for (size_t i = 0; i < sizeof dims / sizeof *dims; i++)
        for (int t = 0; t < 4; t++) check_mm(dims[i][0], dims[i][1], dims[i][2], t & 1, t & 2);
}

Test(grad, matmul_batched_and_shared_weight) {
    gl_tensor *a = rand_param(GL_DIMS(2, 3, 5, 7), 7, -1, 1, 0), *b = rand_param(GL_DIMS(2, 3, 7, 4), 8, -1, 1, 0);
    gl_tensor *in[2] = {a, b};
    mm_ctx plain = {false, false}, both = {true, true};
    check_grads("batched matmul", loss_matmul, in, 2, &plain);
    gl_tensor *bt = rand_param(GL_DIMS(2, 3, 4, 7), 9, -1, 1, 0), *at = rand_param(GL_DIMS(2, 3, 7, 5), 10, -1, 1, 0);
    gl_tensor *in2[2] = {at, bt};
    check_grads("batched matmul of transposed views", loss_matmul, in2, 2, &both);
    gl_tensor *x = rand_param(GL_DIMS(3, 5, 7), 11, -1, 1, 0), *w = rand_param(GL_DIMS(7, 17), 12, -1, 1, 0);
    gl_tensor *in3[2] = {x, w};
    check_grads("[B,T,C] @ [C,D] (folded)", loss_matmul, in3, 2, &plain);
    gl_tensor *w2 = rand_param(GL_DIMS(17, 7), 13, -1, 1, 0);
    gl_tensor *in4[2] = {x, w2};
    mm_ctx tb = {false, true};
    check_grads("[B,T,C] @ W^T", loss_matmul, in4, 2, &tb);
    gl_tensor *xt = rand_param(GL_DIMS(3, 7, 5), 14, -1, 1, 0);
    gl_tensor *in5[2] = {xt, w};
    mm_ctx ta = {true, false};
    check_grads("[B,C,T]^T @ [C,D] (per batch)", loss_matmul, in5, 2, &ta);
    gl_tensor *all[] = {a, b, at, bt, x, w, w2, xt};
    for (int i = 0; i < 8; i++) gl_param_free(all[i]);
}

/* ---------------------------------------------------------------- reductions */

typedef struct {
    int axis;
    bool keepdim, mean;
} red_ctx;

static gl_tensor *loss_reduce(gl_tensor **in, void *ctx) {
    red_ctx *c = ctx;
    gl_tensor *y = c->mean ? gl_mean(in[0], c->axis, c->keepdim) : gl_sum(in[0], c->axis, c->keepdim);
    return weighted_sum(y);
}
static gl_tensor *loss_sum_all(gl_tensor **in, void *ctx) {
    (void)ctx;
    return gl_mul_scalar(gl_sum_all(gl_mul(in[0], in[0])), 0.5f);
}
static gl_tensor *loss_mean_all(gl_tensor **in, void *ctx) {
    (void)ctx;
    return gl_mean_all(gl_exp(in[0]));
}

Test(grad, sum_and_mean_over_each_axis) {
    gl_tensor *x = rand_param(GL_DIMS(3, 7, 5), 20, -2, 2, 0);
    for (int axis = -1; axis < 3; axis++)
        for (int k = 0; k < 4; k++) {
            red_ctx c = {axis, k & 1, k & 2};
            check_grads(c.mean ? "mean" : "sum", loss_reduce, &x, 1, &c);
        }
    check_grads("sum_all", loss_sum_all, &x, 1, NULL);
    check_grads("mean_all", loss_mean_all, &x, 1, NULL);
    gl_param_free(x);
    for (int i = 0; i < N_ODD; i++) {
        gl_tensor *v = rand_param(GL_DIMS(odd_sizes[i]), 21, -2, 2, 0);
        red_ctx c = {0, false, true};
        check_grads("mean 1-D", loss_reduce, &v, 1, &c);
        gl_param_free(v);
    }
}

/* ---------------------------------------------------------------- softmax family */

Test(grad, softmax_and_log_softmax) {
    const int shapes[][2] = {{1, 1}, {3, 7}, {5, 33}, {1, 127}, {2, 17}};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        gl_tensor *x = rand_param(GL_DIMS(shapes[i][0], shapes[i][1]), 30 + i, -3, 3, 0);
        check_grads("softmax", loss_unary, &x, 1, (void *)gl_softmax);
        check_grads("log_softmax", loss_unary, &x, 1, (void *)gl_log_softmax);
        gl_param_free(x);
    }
}

typedef struct {
    const int32_t *targets;
    int ignore;
} ce_ctx;

static gl_tensor *loss_ce(gl_tensor **in, void *ctx) {
    ce_ctx *c = ctx;
    return gl_cross_entropy(in[0], c->targets, c->ignore);
}

Test(grad, cross_entropy_with_ignore_index) {
    int32_t t7[7] = {0, 16, 3, -1, 5, 5, 12};
    gl_tensor *x = rand_param(GL_DIMS(7, 17), 40, -3, 3, 0);
    ce_ctx c = {t7, -1};
    check_grads("cross_entropy", loss_ce, &x, 1, &c);
    gl_param_free(x);
    int32_t t6[6] = {32, 0, 1, 2, 3, 31};
    gl_tensor *x3 = rand_param(GL_DIMS(2, 3, 33), 41, -3, 3, 0);
    ce_ctx c3 = {t6, 2}; /* ignore class id 2 rows */
    check_grads("cross_entropy 3-D", loss_ce, &x3, 1, &c3);
    gl_param_free(x3);
    int32_t t1[1] = {0};
    gl_tensor *x1 = rand_param(GL_DIMS(1, 1), 42, -3, 3, 0);
    ce_ctx c1 = {t1, -100};
    check_grads("cross_entropy V=1", loss_ce, &x1, 1, &c1);
    gl_param_free(x1);
}

static gl_tensor *loss_token_logprob(gl_tensor **in, void *ctx) {
    ce_ctx *c = ctx; /* summed per sequence, then weighted: what DPO does with it */
    return weighted_sum(gl_sum(gl_token_logprob(in[0], c->targets, c->ignore), 1, false));
}

Test(grad, token_logprob) {
    int32_t t[2 * 5] = {3, -1, 0, 9, 4, -1, -1, 7, 7, 1};
    gl_tensor *x = rand_param(GL_DIMS(2, 5, 10), 43, -3, 3, 0);
    ce_ctx c = {t, -1};
    check_grads("token_logprob", loss_token_logprob, &x, 1, &c);
    /* values by hand: row 0 is log softmax(x[0, 0])[3]; ignored rows are 0; and cross-entropy is minus their mean */
    gl_step_reset();
    gl_tensor *lp = gl_token_logprob(x, t, -1);
    double z = 0, sum = 0;
    for (int j = 0; j < 10; j++) z += exp(x->data[j]);
    cr_assert_float_eq(lp->data[0], x->data[3] - log(z), 1e-5);
    cr_assert(lp->data[1] == 0.0f && lp->data[5] == 0.0f && lp->data[6] == 0.0f);
    for (int r = 0; r < 10; r++) sum += lp->data[r];
    cr_assert_float_eq(gl_cross_entropy(x, t, -1)->data[0], -sum / 7, 1e-5);
    gl_param_free(x);
}

Test(grad, log_sigmoid_is_stable_at_the_extremes) {
    gl_step_reset();
    float v[4] = {-100.0f, -20.0f, 0.0f, 100.0f};
    gl_tensor *y = gl_log_sigmoid(gl_from(GL_DIMS(4), v));
    cr_assert_float_eq(y->data[0], -100.0f, 1e-4f);
    cr_assert_float_eq(y->data[1], -20.0f, 1e-4f); /* log(1 / (1 + e^20)) = -20 - log(1 + e^-20) */
    cr_assert_float_eq(y->data[2], -logf(2.0f), 1e-6f);
    cr_assert(y->data[3] <= 0.0f && y->data[3] > -1e-30f);
}

/* ---------------------------------------------------------------- layernorm */

static gl_tensor *loss_layernorm(gl_tensor **in, void *ctx) {
    (void)ctx;
    return weighted_sum(gl_layernorm(in[0], in[1], in[2], 1e-5f));
}
static gl_tensor *loss_layernorm_plain(gl_tensor **in, void *ctx) {
    (void)ctx;
    return weighted_sum(gl_layernorm(in[0], NULL, NULL, 1e-5f));
}

Test(grad, layernorm) {
    const int cols[] = {3, 7, 17, 33};
    for (int i = 0; i < 4; i++) {
        gl_tensor *in[3] = {rand_param(GL_DIMS(5, cols[i]), 50, -2, 2, 0), rand_param(GL_DIMS(cols[i]), 51, 0.5f, 1.5f, 0),
                            rand_param(GL_DIMS(cols[i]), 52, -1, 1, 0)};
        check_grads("layernorm", loss_layernorm, in, 3, NULL);
        check_grads("layernorm without affine", loss_layernorm_plain, in, 1, NULL);
        for (int k = 0; k < 3; k++) gl_param_free(in[k]);
    }
}

/* ---------------------------------------------------------------- embedding, dropout */

static gl_tensor *loss_embedding(gl_tensor **in, void *ctx) {
    const int32_t *ids = ctx;
    return weighted_sum(gl_embedding(in[0], ids, GL_DIMS(2, 3)));
}

Test(grad, embedding_with_repeated_ids) {
    int32_t ids[6] = {4, 0, 4, 6, 1, 4};
    gl_tensor *w = rand_param(GL_DIMS(7, 5), 60, -1, 1, 0);
    check_grads("embedding", loss_embedding, &w, 1, ids);
    gl_param_free(w);
}

static gl_tensor *loss_dropout(gl_tensor **in, void *ctx) {
    (void)ctx;
    gl_rng rng;
    gl_rng_seed(&rng, 5); /* the same mask at every evaluation */
    return weighted_sum(gl_dropout(in[0], 0.3f, &rng, true));
}

Test(grad, dropout) {
    gl_tensor *x = rand_param(GL_DIMS(127), 70, -2, 2, 0);
    check_grads("dropout", loss_dropout, &x, 1, NULL);
    gl_param_free(x);
}

/* ---------------------------------------------------------------- shape ops */

static gl_tensor *loss_reshape_transpose(gl_tensor **in, void *ctx) {
    (void)ctx;
    gl_tensor *y = gl_reshape(in[0], GL_DIMS(3, -1, 5));        /* [3, 7, 5] view */
    y = gl_transpose(y, 0, 2);                                  /* [5, 7, 3] strided view */
    y = gl_mul(y, y);                                           /* forces a recorded contiguous copy */
    return weighted_sum(gl_reshape(gl_transpose(y, 1, 2), GL_DIMS(-1))); /* reshape of a non-contiguous view */
}

static gl_tensor *loss_slice(gl_tensor **in, void *ctx) {
    (void)ctx;
    gl_tensor *a = gl_slice(in[0], 1, 2, 6), *b = gl_slice(in[0], -1, 0, 1), *c = gl_slice(in[0], 0, 1, 3); /* view */
    return gl_add(gl_add(weighted_sum(gl_exp(a)), weighted_sum(b)), weighted_sum(gl_tanh(c)));
}

static gl_tensor *loss_concat(gl_tensor **in, void *ctx) {
    int axis = *(int *)ctx;
    gl_tensor *parts[3] = {in[0], gl_tanh(in[1]), in[0]};
    return weighted_sum(gl_concat(parts, 3, axis));
}

Test(grad, reshape_transpose_slice_concat) {
    gl_tensor *x = rand_param(GL_DIMS(105), 80, -2, 2, 0);
    check_grads("reshape/transpose", loss_reshape_transpose, &x, 1, NULL);
    gl_param_free(x);
    gl_tensor *s = rand_param(GL_DIMS(3, 7, 5), 81, -2, 2, 0);
    check_grads("slice", loss_slice, &s, 1, NULL);
    gl_param_free(s);
    for (int axis = 0; axis < 2; axis++) {
        gl_tensor *in[2] = {rand_param(GL_DIMS(3, 4), 82, -2, 2, 0), rand_param(GL_DIMS(3, 4), 83, -2, 2, 0)};
        check_grads("concat", loss_concat, in, 2, &axis);
        gl_param_free(in[0]);
        gl_param_free(in[1]);
    }
}

static gl_tensor *loss_add_columns(gl_tensor **in, void *ctx) {
    (void)ctx; /* two overlapping updates in one call, then one more on top */
    gl_tensor *d[2] = {in[1], gl_tanh(in[1])};
    int col0[2] = {2, 4}, last = 5;
    gl_tensor *y = gl_add_columns(in[0], 2, d, col0, 1.5f);
    return weighted_sum(gl_tanh(gl_add_columns(y, 1, &in[1], &last, -0.5f)));
}

Test(grad, add_columns) {
    gl_tensor *in[2] = {rand_param(GL_DIMS(2, 3, 9), 84, -2, 2, 0), rand_param(GL_DIMS(2, 3, 4), 85, -2, 2, 0)};
    check_grads("add_columns", loss_add_columns, in, 2, NULL);
    /* and the forward by hand: only columns 2..5 of y move, by 1.5 d */
    gl_step_reset();
    int two = 2;
    gl_tensor *y = gl_add_columns(in[0], 1, &in[1], &two, 1.5f);
    for (int r = 0; r < 6; r++)
        for (int c = 0; c < 9; c++) {
            float want = in[0]->data[r * 9 + c] + (c >= 2 && c < 6 ? 1.5f * in[1]->data[r * 4 + c - 2] : 0.0f);
            cr_assert_float_eq(y->data[r * 9 + c], want, 1e-6f);
        }
    gl_param_free(in[0]);
    gl_param_free(in[1]);
}

/* ---------------------------------------------------------------- linear, attention */

static gl_tensor *loss_linear(gl_tensor **in, void *ctx) {
    bool transposed = ctx != NULL;
    gl_tensor *w = transposed ? gl_transpose(in[1], 0, 1) : in[1];
    return weighted_sum(gl_linear(in[0], w, in[2]));
}

Test(grad, linear_with_bias_and_transposed_weight) {
    gl_tensor *in[3] = {rand_param(GL_DIMS(2, 3, 7), 90, -1, 1, 0), rand_param(GL_DIMS(7, 17), 91, -1, 1, 0),
                        rand_param(GL_DIMS(17), 92, -1, 1, 0)};
    check_grads("linear", loss_linear, in, 3, NULL);
    gl_tensor *wt = rand_param(GL_DIMS(17, 7), 93, -1, 1, 0);
    gl_tensor *in2[3] = {in[0], wt, in[2]};
    check_grads("linear, W^T view", loss_linear, in2, 3, (void *)1);
    for (int k = 0; k < 3; k++) gl_param_free(in[k]);
    gl_param_free(wt);
}

static gl_tensor *loss_attention(gl_tensor **in, void *ctx) { return weighted_sum(gl_attention(in[0], *(int *)ctx)); }

Test(grad, causal_attention) {
    /* B, T, C, heads; T = 70 spans two query blocks of the causal block skipping */
    const int cases[][4] = {{1, 1, 4, 1}, {2, 5, 8, 2}, {1, 7, 6, 3}, {2, 17, 8, 1}, {1, 70, 4, 2}};
    for (int i = 0; i < 5; i++) {
        gl_tensor *qkv = rand_param(GL_DIMS(cases[i][0], cases[i][1], 3 * cases[i][2]), 95 + i, -1.5f, 1.5f, 0);
        check_grads("attention", loss_attention, &qkv, 1, (void *)&cases[i][3]);
        gl_param_free(qkv);
    }
}

/* ---------------------------------------------------------------- flash attention */

typedef struct {
    int heads;
    bool causal;
    gl_attn_impl impl;
} attn_ctx;

static gl_tensor *loss_attention_ex(gl_tensor **in, void *ctx) {
    attn_ctx *c = ctx;
    return weighted_sum(gl_attention_ex(in[0], c->heads, c->causal, c->impl));
}

Test(grad, flash_attention_finite_differences) {
    const int cases[][4] = {{1, 1, 4, 1}, {1, 5, 8, 2}, {2, 7, 6, 3}, {1, 70, 4, 2}}; /* B, T, C, heads */
    for (int i = 0; i < 4; i++)
        for (int causal = 0; causal < 2; causal++) {
            gl_tensor *qkv = rand_param(GL_DIMS(cases[i][0], cases[i][1], 3 * cases[i][2]), 120 + i, -1.5f, 1.5f, 0);
            attn_ctx c = {cases[i][3], causal, GL_ATTN_FLASH};
            check_grads(causal ? "flash attention, causal" : "flash attention", loss_attention_ex, &qkv, 1, &c);
            c.impl = GL_ATTN_NAIVE;
            check_grads(causal ? "naive attention, causal" : "naive attention", loss_attention_ex, &qkv, 1, &c);
            gl_param_free(qkv);
        }
}

/* flash against naive: outputs and all gradients, for odd T across tile edges (query tiles of 112 rows, key tiles
 * of 256 at AVX-512's micro-tile; T = 300 crosses both) and head dims 32, 48 (not a multiple of any NR), 64, 128.
 * Both compute in float32 with different summation orders (and flash's rescaling), so agreement is checked to
 * 2e-5 of the largest magnitude; a wrong mask or a missed rescale is off by 1e-2 or more. */
Test(grad, flash_matches_naive_for_odd_lengths_and_head_dims) {
    const int Ts[] = {1, 5, 63, 129, 300}, hss[] = {32, 48, 64, 128};
    for (int ti = 0; ti < 5; ti++)
        for (int hi = 0; hi < 4; hi++)
            for (int causal = 0; causal < 2; causal++) {
                int T = Ts[ti], hs = hss[hi], H = 2, C = H * hs;
                gl_tensor *qkv = rand_param(GL_DIMS(1, T, 3 * C), 200 + ti * 7 + hi, -1, 1, 0);
                float *out[2], *grad[2];
                for (int impl = 0; impl < 2; impl++) {
                    gl_step_reset();
                    gl_zero_grad(&qkv, 1);
                    gl_tensor *o = gl_attention_ex(qkv, H, causal, (gl_attn_impl)impl);
                    gl_backward(weighted_sum(o));
                    out[impl] = malloc((size_t)o->numel * 4);
                    memcpy(out[impl], o->data, (size_t)o->numel * 4);
                    grad[impl] = malloc((size_t)qkv->numel * 4);
                    memcpy(grad[impl], qkv->grad, (size_t)qkv->numel * 4);
                }
                double mo = 1e-30, mg = 1e-30, eo = 0, eg = 0;
                for (int64_t i = 0; i < (int64_t)T * C; i++) mo = fmax(mo, fabs(out[0][i])), eo = fmax(eo, fabs(out[0][i] - out[1][i]));
                for (int64_t i = 0; i < qkv->numel; i++) mg = fmax(mg, fabs(grad[0][i])), eg = fmax(eg, fabs(grad[0][i] - grad[1][i]));
                cr_assert(eo <= 2e-5 * mo && eg <= 2e-5 * mg, "T=%d hs=%d causal=%d: out differs by %.3g, grad by %.3g", T,
                          hs, causal, eo / mo, eg / mg);
                for (int impl = 0; impl < 2; impl++) free(out[impl]), free(grad[impl]);
                gl_param_free(qkv);
            }
}
