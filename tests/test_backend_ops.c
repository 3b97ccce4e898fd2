/* Every op on every backend, from one registry (ggml's test-backend-ops idea). Each case builds one op from random
 * inputs and a fixed loss over its output. For each case:
 *   - the CPU's gradients are checked against central differences (testutil.h check_grads), unless the op is for
 *     inference only;
 *   - on every other backend this build links (CUDA: emulated in `make test`, the GPU in `make CUDA=1 test-cuda`)
 *     the forward output and every input's gradient are compared with the CPU's; an op the backend lacks must stop
 *     with the one "is not supported on the cuda device" message, and gl_supports_op must agree with the table.
 * Adding an op to a backend: fill its slot and change its case's `cuda` field below. */
#include "kernels.h"
#include "testutil.h"

typedef enum { ON_NONE, ON_FORWARD, ON_BOTH } coverage; /* what a backend runs: nothing, inference, training too */

typedef struct {
    const char *name;
    gl_tensor *(*run)(gl_tensor **in); /* the op on inputs in (all on one device) */
    int n_in;
    int ndim[3], shape[3][4];
    float lo, hi, gap;  /* input values uniform in [lo, hi), |v| >= gap */
    coverage cpu, cuda; /* cpu: ON_BOTH gets the finite-difference check */
    const char *cuda_slot; /* for ON_NONE on CUDA: the slot gl_supports_op must report missing (NULL: one that
                            * declines this configuration at run time) */
} op_case;

/* ---- the ops (integer inputs are fixed arrays) ---- */
static const int32_t targets[6] = {3, 0, -1, 4, 1, 2}, ids[6] = {2, 0, 4, 2, 1, 3};

static gl_tensor *op_add(gl_tensor **in) { return gl_add(in[0], in[1]); }
static gl_tensor *op_sub(gl_tensor **in) { return gl_sub(in[0], in[1]); }
static gl_tensor *op_mul(gl_tensor **in) { return gl_mul(in[0], in[1]); }
static gl_tensor *op_div(gl_tensor **in) { return gl_div(in[0], in[1]); }
static gl_tensor *op_exp(gl_tensor **in) { return gl_exp(in[0]); }
static gl_tensor *op_log(gl_tensor **in) { return gl_log(in[0]); }
static gl_tensor *op_tanh(gl_tensor **in) { return gl_tanh(in[0]); }
static gl_tensor *op_sigmoid(gl_tensor **in) { return gl_sigmoid(in[0]); }
static gl_tensor *op_log_sigmoid(gl_tensor **in) { return gl_log_sigmoid(in[0]); }
static gl_tensor *op_relu(gl_tensor **in) { return gl_relu(in[0]); }
static gl_tensor *op_gelu(gl_tensor **in) { return gl_gelu(in[0]); }
static gl_tensor *op_gelu_erf(gl_tensor **in) { return gl_gelu_erf(in[0]); }
static gl_tensor *op_add_scalar(gl_tensor **in) { return gl_add_scalar(in[0], 1.5f); }
static gl_tensor *op_mul_scalar(gl_tensor **in) { return gl_mul_scalar(in[0], -2.5f); }
static gl_tensor *op_matmul(gl_tensor **in) { return gl_matmul(in[0], in[1]); }
static gl_tensor *op_matmul_bt(gl_tensor **in) { return gl_matmul(in[0], gl_transpose(in[1], 0, 1)); }
static gl_tensor *op_linear(gl_tensor **in) { return gl_linear(in[0], in[1], in[2]); }
static gl_tensor *op_sum0(gl_tensor **in) { return gl_sum(in[0], 0, false); }
static gl_tensor *op_mean1(gl_tensor **in) { return gl_mean(in[0], 1, true); }
static gl_tensor *op_softmax(gl_tensor **in) { return gl_softmax(in[0]); }
static gl_tensor *op_log_softmax(gl_tensor **in) { return gl_log_softmax(in[0]); }
static gl_tensor *op_cross_entropy(gl_tensor **in) { return gl_cross_entropy(in[0], targets, -1); }
static gl_tensor *op_token_logprob(gl_tensor **in) { return gl_token_logprob(in[0], targets, -1); }
static gl_tensor *op_layernorm(gl_tensor **in) { return gl_layernorm(in[0], in[1], in[2], 1e-5f); }
static gl_tensor *op_embedding(gl_tensor **in) { return gl_embedding(in[0], ids, GL_DIMS(2, 3)); }
static gl_tensor *op_dropout(gl_tensor **in) {
    gl_rng rng;
    gl_rng_seed(&rng, 5); /* the same mask at every call: finite differences see one function */
    return gl_dropout(in[0], 0.25f, &rng, true);
}
static gl_tensor *op_contiguous(gl_tensor **in) { return gl_contiguous(gl_transpose(in[0], 0, 1)); }
static gl_tensor *op_slice(gl_tensor **in) { return gl_slice(in[0], 1, 1, 4); }
static gl_tensor *op_concat(gl_tensor **in) { return gl_concat(in, 2, 1); }
static gl_tensor *op_add_columns(gl_tensor **in) { return gl_add_columns(in[0], 1, &in[1], (const int[]){2}, 0.5f); }
static gl_tensor *op_attention_naive(gl_tensor **in) { return gl_attention_ex(in[0], 2, true, GL_ATTN_NAIVE); }
static gl_tensor *op_attention_flash(gl_tensor **in) { return gl_attention_ex(in[0], 2, true, GL_ATTN_FLASH); }
static gl_tensor *op_attention_full(gl_tensor **in) { return gl_attention_ex(in[0], 2, false, GL_ATTN_FLASH); }
static gl_tensor *op_rmsnorm(gl_tensor **in) { return gl_rmsnorm(in[0], in[1], 1e-5f); }
static gl_tensor *op_rope(gl_tensor **in) { return gl_rope(in[0], 2, 3, 10000.0f, 4); }
static gl_tensor *op_swiglu(gl_tensor **in) { return gl_swiglu(in[0], in[1]); }
static gl_tensor *op_attention_step(gl_tensor **in) { /* three decoding steps over a cache of 4 rows */
    int C = in[0]->shape[1] / 3;
    float *k = gl_buffer_alloc(in[0]->device, 4 * C, "k"), *v = gl_buffer_alloc(in[0]->device, 4 * C, "v");
    gl_tensor *out = NULL;
    for (int pos = 0; pos < 3; pos++) out = gl_attention_step(gl_slice(in[0], 0, pos, pos + 1), k, v, pos, 2);
    gl_device_sync(in[0]->device);
    gl_buffer_free(in[0]->device, k), gl_buffer_free(in[0]->device, v);
    return out;
}
static gl_tensor *op_attention_rows(gl_tensor **in) { /* two sequences: rows 0, 2 of one, 1, 3, 4 of the other */
    int C = in[0]->shape[1] / 3;
    gl_device d = in[0]->device;
    float *k0 = gl_buffer_alloc(d, 4 * C, "k"), *v0 = gl_buffer_alloc(d, 4 * C, "v");
    float *k1 = gl_buffer_alloc(d, 4 * C, "k"), *v1 = gl_buffer_alloc(d, 4 * C, "v");
    float *kc[5] = {k0, k1, k0, k1, k1}, *vc[5] = {v0, v1, v0, v1, v1};
    gl_tensor *out = gl_attention_rows(in[0], kc, vc, (const int[]){0, 0, 1, 1, 2}, 2);
    gl_device_sync(d);
    gl_buffer_free(d, k0), gl_buffer_free(d, v0), gl_buffer_free(d, k1), gl_buffer_free(d, v1);
    return out;
}
static gl_tensor *op_attention_gqa(gl_tensor **in) { /* 3 then 2 tokens, 4 query heads over 2 kv heads of 4 dims */
    gl_device d = in[0]->device;
    float *k = gl_buffer_alloc(d, 8 * 8, "k"), *v = gl_buffer_alloc(d, 8 * 8, "v");
    gl_attention_gqa(gl_slice(in[0], 0, 0, 3), gl_slice(in[1], 0, 0, 3), gl_slice(in[2], 0, 0, 3), k, v, 8, 0, 4, 2,
                     false);
    gl_tensor *out = gl_attention_gqa(gl_slice(in[0], 0, 3, 5), gl_slice(in[1], 0, 3, 5), gl_slice(in[2], 0, 3, 5), k,
                                      v, 8, 3, 4, 2, false);
    gl_device_sync(d);
    gl_buffer_free(d, k), gl_buffer_free(d, v);
    return out;
}
/* a fixed matrix of 3 rows of 32 in fp16: block types quantize the activations too (ggml's integer dot), which
 * makes the forward a step function of x that finite differences cannot check; fp16 takes the float dot */
static gl_qmatrix f16_weight(void) {
    static uint16_t halves[96];
    static bool made;
    if (!made) {
        float w[96];
        for (int i = 0; i < 96; i++) w[i] = sinf((float)i * 0.37f);
        gl_quantize_row(GL_QT_F16, w, halves, 96);
        made = true;
    }
    return (gl_qmatrix){GL_QT_F16, 3, 32, halves};
}
static gl_tensor *op_linear_q(gl_tensor **in) {
    static gl_qmatrix w;
    w = f16_weight();
    return gl_linear_q(in[0], &w);
}

static const op_case cases[] = {
    {"add (equal shapes)", op_add, 2, {2, 2}, {{3, 5}, {3, 5}}, -2, 2, 0, ON_BOTH, ON_BOTH, NULL},
    {"add (rows + bias)", op_add, 2, {3, 1}, {{2, 3, 5}, {5}}, -2, 2, 0, ON_BOTH, ON_BOTH, NULL},
    {"add (b's rows broadcast)", op_add, 2, {2, 2}, {{3, 5}, {3, 1}}, -2, 2, 0, ON_BOTH, ON_NONE, NULL},
    {"sub (broadcast)", op_sub, 2, {2, 1}, {{3, 5}, {5}}, -2, 2, 0, ON_BOTH, ON_NONE, NULL},
    {"mul (equal shapes)", op_mul, 2, {2, 2}, {{3, 5}, {3, 5}}, -2, 2, 0, ON_BOTH, ON_NONE, NULL},
    {"div (broadcast)", op_div, 2, {2, 2}, {{3, 5}, {1, 5}}, -2, 2, 0.4f, ON_BOTH, ON_NONE, NULL},
    {"exp", op_exp, 1, {2}, {{3, 5}}, -2, 2, 0, ON_BOTH, ON_NONE, NULL},
    {"log", op_log, 1, {2}, {{3, 5}}, 0.3f, 3, 0, ON_BOTH, ON_NONE, NULL},
    {"tanh", op_tanh, 1, {2}, {{3, 5}}, -3, 3, 0, ON_BOTH, ON_NONE, NULL},
    {"sigmoid", op_sigmoid, 1, {2}, {{3, 5}}, -4, 4, 0, ON_BOTH, ON_NONE, NULL},
    {"log_sigmoid", op_log_sigmoid, 1, {2}, {{3, 5}}, -6, 6, 0, ON_BOTH, ON_NONE, NULL},
    {"relu", op_relu, 1, {2}, {{3, 5}}, -2, 2, 0.1f, ON_BOTH, ON_NONE, NULL},
    {"gelu", op_gelu, 1, {2}, {{3, 5}}, -3, 3, 0, ON_BOTH, ON_BOTH, NULL},
    {"gelu_erf", op_gelu_erf, 1, {2}, {{3, 5}}, -3, 3, 0, ON_BOTH, ON_NONE, NULL},
    {"add_scalar", op_add_scalar, 1, {2}, {{3, 5}}, -2, 2, 0, ON_BOTH, ON_NONE, NULL},
    {"mul_scalar", op_mul_scalar, 1, {2}, {{3, 5}}, -2, 2, 0, ON_BOTH, ON_NONE, NULL},
    {"matmul (batched)", op_matmul, 2, {3, 2}, {{2, 3, 4}, {4, 5}}, -1, 1, 0, ON_BOTH, ON_BOTH, NULL},
    {"matmul (transposed view)", op_matmul_bt, 2, {2, 2}, {{3, 4}, {5, 4}}, -1, 1, 0, ON_BOTH, ON_BOTH, NULL},
    {"linear", op_linear, 3, {3, 2, 1}, {{2, 3, 4}, {4, 5}, {5}}, -1, 1, 0, ON_BOTH, ON_BOTH, NULL},
    {"sum", op_sum0, 1, {3}, {{3, 4, 2}}, -2, 2, 0, ON_BOTH, ON_NONE, "reduce_fwd"},
    {"mean", op_mean1, 1, {2}, {{3, 5}}, -2, 2, 0, ON_BOTH, ON_NONE, "reduce_fwd"},
    {"softmax", op_softmax, 1, {2}, {{3, 6}}, -2, 2, 0, ON_BOTH, ON_NONE, "softmax_fwd"},
    {"log_softmax", op_log_softmax, 1, {2}, {{3, 6}}, -2, 2, 0, ON_BOTH, ON_NONE, "softmax_fwd"},
    {"cross_entropy (one row ignored)", op_cross_entropy, 1, {2}, {{6, 5}}, -2, 2, 0, ON_BOTH, ON_BOTH, NULL},
    {"token_logprob", op_token_logprob, 1, {2}, {{6, 5}}, -2, 2, 0, ON_BOTH, ON_NONE, "token_logprob_fwd"},
    {"layernorm", op_layernorm, 3, {2, 1, 1}, {{4, 6}, {6}, {6}}, -2, 2, 0, ON_BOTH, ON_BOTH, NULL},
    {"embedding (repeated ids)", op_embedding, 1, {2}, {{5, 4}}, -2, 2, 0, ON_BOTH, ON_BOTH, NULL},
    {"dropout", op_dropout, 1, {2}, {{4, 6}}, -2, 2, 0, ON_BOTH, ON_BOTH, NULL},
    {"contiguous (a transposed view)", op_contiguous, 1, {2}, {{3, 5}}, -2, 2, 0, ON_BOTH, ON_NONE, "gather"},
    {"slice", op_slice, 1, {2}, {{3, 5}}, -2, 2, 0, ON_BOTH, ON_BOTH, NULL},
    {"concat", op_concat, 2, {2, 2}, {{3, 2}, {3, 4}}, -2, 2, 0, ON_BOTH, ON_BOTH, NULL},
    {"add_columns", op_add_columns, 2, {2, 2}, {{3, 6}, {3, 3}}, -2, 2, 0, ON_BOTH, ON_BOTH, NULL},
    {"attention (naive, causal)", op_attention_naive, 1, {3}, {{2, 5, 12}}, -1, 1, 0, ON_BOTH, ON_BOTH, NULL},
    {"attention (flash, causal)", op_attention_flash, 1, {3}, {{2, 5, 12}}, -1, 1, 0, ON_BOTH, ON_BOTH, NULL},
    {"attention (flash, full)", op_attention_full, 1, {3}, {{2, 5, 12}}, -1, 1, 0, ON_BOTH, ON_BOTH, NULL},
    {"rmsnorm", op_rmsnorm, 2, {2, 1}, {{3, 8}, {8}}, -2, 2, 0, ON_BOTH, ON_FORWARD, NULL},
    {"rope", op_rope, 1, {2}, {{3, 8}}, -2, 2, 0, ON_BOTH, ON_FORWARD, NULL},
    {"swiglu", op_swiglu, 2, {2, 2}, {{3, 5}, {3, 5}}, -3, 3, 0, ON_BOTH, ON_FORWARD, NULL},
    {"attention_step (KV cache)", op_attention_step, 1, {2}, {{3, 12}}, -1, 1, 0, ON_FORWARD, ON_FORWARD, NULL},
    {"attention_rows (two sequences interleaved)", op_attention_rows, 1, {2}, {{5, 12}}, -1, 1, 0, ON_FORWARD,
     ON_FORWARD, NULL},
    {"attention_gqa (KV cache)", op_attention_gqa, 3, {2, 2, 2}, {{5, 16}, {5, 8}, {5, 8}}, -1, 1, 0, ON_FORWARD,
     ON_FORWARD, NULL},
    {"linear_q (fp16 weight)", op_linear_q, 1, {2}, {{2, 32}}, -1, 1, 0, ON_BOTH, ON_NONE, "linear_q_fwd"},
};
#define N_CASES (int)(sizeof cases / sizeof cases[0])

/* the loss every case uses: the output's dot product with fixed weights, through ops every backend has */
static gl_tensor *dot_loss(gl_tensor *y) {
    gl_tensor *r = gl_new(GL_DIMS((int)y->numel, 1));
    gl_rng rng;
    gl_rng_seed(&rng, 977);
    for (int64_t i = 0; i < r->numel; i++) r->data[i] = 0.5f + gl_rng_uniform(&rng);
    if (y->device != GL_CPU) {
        gl_tensor *rd = gl_new_on(y->device, GL_DIMS((int)y->numel, 1));
        rd->data = gl_arena_copy_in(y->device, r->data, (size_t)r->numel * sizeof(float));
        r = rd;
    }
    return gl_linear(gl_reshape(y, GL_DIMS(1, (int)y->numel)), r, NULL);
}

static gl_tensor *fd_loss(gl_tensor **in, void *ctx) { return dot_loss(((const op_case *)ctx)->run(in)); }

static void make_inputs(const op_case *c, gl_tensor **in) {
    for (int k = 0; k < c->n_in; k++) in[k] = rand_param(c->ndim[k], c->shape[k], 11 + (uint64_t)k, c->lo, c->hi, c->gap);
}

/* forward (and backward when wanted) on device d: the output and each input's gradient, on the host */
typedef struct {
    float *out, *grad[3];
    int64_t out_n;
} result;

static result run_on(const op_case *c, gl_device d, bool backward) {
    gl_tensor *in[3];
    make_inputs(c, in);
    for (int k = 0; k < c->n_in; k++) gl_param_to(in[k], d);
    gl_step_reset();
    if (!backward) gl_no_grad_begin();
    gl_tensor *y = c->run(in);
    gl_tensor *loss = dot_loss(y);
    result res = {malloc((size_t)y->numel * sizeof(float)), {NULL, NULL, NULL}, y->numel};
    gl_copy_to_host(y, res.out);
    if (backward) gl_backward(loss);
    else gl_no_grad_end();
    for (int k = 0; k < c->n_in; k++) {
        gl_param_to(in[k], GL_CPU);
        if (backward) {
            res.grad[k] = malloc((size_t)in[k]->numel * sizeof(float));
            memcpy(res.grad[k], in[k]->grad, (size_t)in[k]->numel * sizeof(float));
        }
        gl_param_free(in[k]);
    }
    gl_step_reset();
    return res;
}

static void result_free(result *r) {
    free(r->out);
    for (int k = 0; k < 3; k++) free(r->grad[k]);
}

/* the CPU sums in its order, cuBLAS and the GPU kernels in theirs: equal to float rounding */
static void expect_close(const char *what, const char *name, int k, const float *want, const float *got, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        cr_assert(fabsf(want[i] - got[i]) <= 1e-4f + 1e-4f * fabsf(want[i]),
                  "%s: %s %d element %lld: cpu %.7g, cuda %.7g", name, what, k, (long long)i, (double)want[i],
                  (double)got[i]);
}

static const op_case *current_case;
static void run_current_on_cuda(void) {
    result r = run_on(current_case, GL_CUDA, current_case->cpu == ON_BOTH);
    result_free(&r);
}

Test(backend_ops, every_case_passes_finite_differences_on_the_cpu) {
    for (int i = 0; i < N_CASES; i++) {
        const op_case *c = &cases[i];
        if (c->cpu != ON_BOTH) continue;
        gl_tensor *in[3];
        make_inputs(c, in);
        check_grads(c->name, fd_loss, in, c->n_in, (void *)c);
        for (int k = 0; k < c->n_in; k++) gl_param_free(in[k]);
    }
}

Test(backend_ops, every_case_matches_the_cpu_on_each_other_backend) {
    if (!gl_cuda_present()) {
        cr_log_warn("no CUDA backend in this build: only the CPU was checked");
        return;
    }
    int compared = 0;
    for (int i = 0; i < N_CASES; i++) {
        const op_case *c = &cases[i];
        if (c->cuda == ON_NONE) continue;
        bool backward = c->cuda == ON_BOTH;
        result want = run_on(c, GL_CPU, backward), got = run_on(c, GL_CUDA, backward);
        cr_assert_eq(want.out_n, got.out_n);
        expect_close("output", c->name, 0, want.out, got.out, want.out_n);
        if (backward)
            for (int k = 0; k < c->n_in; k++) {
                int64_t n = 1;
                for (int dd = 0; dd < c->ndim[k]; dd++) n *= c->shape[k][dd];
                expect_close("gradient of input", c->name, k, want.grad[k], got.grad[k], n);
            }
        result_free(&want), result_free(&got);
        compared++;
    }
    cr_log_info("%d cases compared with the CPU on cuda", compared);
}

/* Each refusal runs in a child process that is the first to touch the device (a CUDA context does not survive
 * fork), so this test's own process never initialises it. */
Test(backend_ops, ops_a_backend_lacks_stop_with_one_message) {
    if (!gl_cuda_linked()) {
        cr_log_warn("no CUDA backend in this build: nothing to refuse");
        return;
    }
    int refused = 0;
    for (int i = 0; i < N_CASES; i++) {
        const op_case *c = &cases[i];
        if (c->cuda != ON_NONE) continue;
        if (c->cuda_slot) {
            cr_expect(!gl_supports_op(GL_CUDA, c->cuda_slot), "%s: the cuda table has %s", c->name, c->cuda_slot);
            cr_expect(gl_supports_op(GL_CPU, c->cuda_slot), "%s: the cpu table lacks %s", c->name, c->cuda_slot);
        }
        current_case = c;
        expect_fatal(run_current_on_cuda, (const char *const[]){"is not supported on the cuda device", NULL});
        refused++;
    }
    cr_log_info("%d cases refused on cuda with the one message", refused);
}

Test(backend_ops, the_tables_are_what_supports_op_reports) {
    const char *names[128];
    int n = gl_backend_slots(names, 128);
    cr_assert(n > 40 && n <= 128, "%d slots", n);
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], "sample") != 0) /* CPU sampling lives in models/sample.c */
            cr_expect(gl_supports_op(GL_CPU, names[i]), "the cpu backend lacks %s", names[i]);
    cr_expect(!gl_supports_op(GL_CPU, "no_such_slot"));
    cr_expect(gl_supports_op(GL_CUDA, "gemm") == gl_cuda_linked());
}
