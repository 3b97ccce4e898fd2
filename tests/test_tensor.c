/* Tensor, arena, tape and RNG behaviour. */
#include "testutil.h"

Test(tensor, tensor_used_twice_gets_both_contributions) {
    /* y = sum(x * x + x): dy/dx = 2x + 1 */
    gl_tensor *x = gl_param(GL_DIMS(3), "x");
    float v[3] = {-1.5f, 0.0f, 2.0f};
    memcpy(x->data, v, sizeof v);
    gl_backward(gl_sum_all(gl_add(gl_mul(x, x), x)));
    for (int i = 0; i < 3; i++) cr_assert_float_eq(x->grad[i], 2 * v[i] + 1, 1e-6f);
    /* a second backward without zero_grad accumulates on top */
    gl_step_reset();
    gl_backward(gl_sum_all(x));
    for (int i = 0; i < 3; i++) cr_assert_float_eq(x->grad[i], 2 * v[i] + 2, 1e-6f);
    gl_zero_grad(&x, 1);
    for (int i = 0; i < 3; i++) cr_assert(x->grad[i] == 0.0f);
    gl_param_free(x);
}

Test(tensor, no_grad_records_nothing) {
    gl_tensor *w = gl_param(GL_DIMS(4, 4), "w");
    gl_fill(w, 0.5f);
    gl_tensor *x = gl_zeros(GL_DIMS(2, 4));
    gl_no_grad_begin();
    gl_tensor *y = gl_gelu(gl_matmul(x, w));
    gl_no_grad_end();
    cr_assert(!y->requires_grad && y->grad == NULL);
    cr_assert(gl_tape_length() == 0);
    gl_tensor *z = gl_matmul(x, w);
    cr_assert(z->requires_grad && gl_tape_length() == 1);
    gl_param_free(w);
}

Test(tensor, views_share_data_and_gradient) {
    gl_tensor *x = gl_param(GL_DIMS(2, 3), "x");
    for (int i = 0; i < 6; i++) x->data[i] = (float)i;
    gl_tensor *r = gl_reshape(x, GL_DIMS(3, 2));
    gl_tensor *t = gl_transpose(x, 0, 1);
    cr_assert(r->data == x->data && r->grad == x->grad, "reshape of a contiguous tensor is a view");
    cr_assert(t->data == x->data && !gl_is_contiguous(t));
    cr_assert(t->shape[0] == 3 && t->shape[1] == 2 && gl_get(t, 1) == 3.0f && gl_get(t, 2) == 1.0f);
    size_t before = gl_tape_length();
    gl_tensor *m = gl_matmul(t, x); /* [3,2] @ [2,3]: the transposed view goes to the GEMM as a flag */
    cr_assert(gl_tape_length() == before + 1, "matmul of a transposed view records no copy");
    gl_backward(gl_sum_all(m));
    /* d/dx sum(x^T x) = x (1 1^T) + ... : check one element by hand: d/dx[0][0] = 2 * sum over row 0 = 2*(0+1+2) */
    cr_assert_float_eq(x->grad[0], 6.0f, 1e-5f);
    gl_param_free(x);
}

Test(tensor, arena_stops_growing_after_first_step) {
    gl_tensor *w = gl_param(GL_DIMS(64, 64), "w");
    gl_fill(w, 0.01f);
    size_t mallocs_after_first = 0;
    for (int step = 0; step < 5; step++) {
        gl_step_reset();
        gl_tensor *x = gl_zeros(GL_DIMS(32, 64));
        gl_tensor *h = x;
        for (int l = 0; l < 4; l++) h = gl_gelu(gl_matmul(h, w));
        gl_backward(gl_mean_all(h));
        if (step == 0) mallocs_after_first = gl_arena_stats_get().chunk_mallocs;
    }
    gl_arena_stats s = gl_arena_stats_get();
    cr_assert(s.chunk_mallocs == mallocs_after_first, "arena grew after step 1 (%zu -> %zu chunks)",
              mallocs_after_first, s.chunk_mallocs);
    cr_assert(s.high_water > 0 && s.high_water <= s.capacity);
    gl_param_free(w);
}

Test(tensor, rng_stream_is_pinned) {
    /* xoshiro256** seeded by splitmix64(42): the first outputs, computed by an independent Python model of the
     * two published algorithms. Pinning them keeps saved RNG states meaningful across versions. */
    gl_rng r;
    gl_rng_seed(&r, 42);
    cr_assert(gl_rng_u64(&r) == 0x15780b2e0c2ec716ull);
    cr_assert(gl_rng_u64(&r) == 0x6104d9866d113a7eull);
    cr_assert(gl_rng_u64(&r) == 0xae17533239e499a1ull);
    /* uniform in [0,1), normal with the right moments */
    double sum = 0, sumsq = 0;
    for (int i = 0; i < 200000; i++) {
        float u = gl_rng_uniform(&r);
        cr_assert(u >= 0.0f && u < 1.0f);
        float z = gl_rng_normal(&r);
        sum += z;
        sumsq += (double)z * z;
    }
    cr_assert(fabs(sum / 200000) < 0.01, "normal mean %g", sum / 200000); /* 4.5 standard errors */
    cr_assert(fabs(sumsq / 200000 - 1.0) < 0.015, "normal variance %g", sumsq / 200000);
    for (int i = 0; i < 1000; i++) cr_assert(gl_rng_below(&r, 7) < 7);
}

Test(tensor, forward_values_match_hand_computation) {
    /* spot values, so the gradient checks are not checking a consistently wrong forward */
    float a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {1, 0, -1, 2, 0.5f, 1};
    gl_tensor *A = gl_from(GL_DIMS(2, 3), a), *B = gl_from(GL_DIMS(3, 2), b);
    gl_tensor *C = gl_matmul(A, B); /* [[1*1+2*-1+3*0.5, 0+4+3], [4-5+3, 0+10+6]] */
    cr_assert_float_eq(C->data[0], 0.5f, 1e-6f);
    cr_assert_float_eq(C->data[1], 7.0f, 1e-6f);
    cr_assert_float_eq(C->data[2], 2.0f, 1e-6f);
    cr_assert_float_eq(C->data[3], 16.0f, 1e-6f);
    gl_tensor *s = gl_softmax(gl_from(GL_DIMS(1, 2), (float[]){0.0f, logf(3.0f)}));
    cr_assert_float_eq(s->data[0], 0.25f, 1e-6f);
    int32_t t[1] = {1};
    gl_tensor *ce = gl_cross_entropy(gl_from(GL_DIMS(1, 2), (float[]){0.0f, logf(3.0f)}), t, -1);
    cr_assert_float_eq(ce->data[0], -logf(0.75f), 1e-6f);
    gl_tensor *g = gl_gelu(gl_from(GL_DIMS(2), (float[]){1.0f, -1.0f}));
    cr_assert_float_eq(g->data[0], 0.8411920f, 1e-6f); /* torch.nn.functional.gelu(1., approximate='tanh') */
    cr_assert_float_eq(g->data[1], -0.1588080f, 1e-6f);
    gl_tensor *ln = gl_layernorm(gl_from(GL_DIMS(1, 4), (float[]){1, 2, 3, 4}), NULL, NULL, 0.0f);
    cr_assert_float_eq(ln->data[0], -1.3416408f, 1e-5f); /* (1 - 2.5) / sqrt(1.25) */
    gl_tensor *m = gl_mean(gl_from(GL_DIMS(2, 3), a), 0, false);
    cr_assert_float_eq(m->data[2], 4.5f, 1e-6f);
    gl_tensor *sl = gl_slice(gl_from(GL_DIMS(2, 3), a), 1, 1, 3);
    cr_assert(sl->shape[1] == 2 && sl->data[0] == 2 && sl->data[3] == 6);
    gl_tensor *parts[2] = {gl_from(GL_DIMS(1, 2), a), gl_from(GL_DIMS(1, 2), b)};
    gl_tensor *cat = gl_concat(parts, 2, 1);
    cr_assert(cat->shape[1] == 4 && cat->data[2] == 1 && cat->data[3] == 0);
    gl_tensor *bc = gl_add(gl_from(GL_DIMS(2, 3), a), gl_from(GL_DIMS(3), b));
    cr_assert(bc->data[5] == 6 - 1);
}

Test(tensor, dropout_is_seeded_and_scaled) {
    gl_tensor *x = gl_param(GL_DIMS(10000), "x");
    gl_fill(x, 1.0f);
    gl_rng r1, r2;
    gl_rng_seed(&r1, 9);
    gl_rng_seed(&r2, 9);
    gl_tensor *a = gl_dropout(x, 0.25f, &r1, true), *b = gl_dropout(x, 0.25f, &r2, true);
    cr_assert(memcmp(a->data, b->data, 10000 * 4) == 0, "same seed, same mask");
    int zeros = 0;
    for (int i = 0; i < 10000; i++) {
        cr_assert(a->data[i] == 0.0f || fabsf(a->data[i] - 1.0f / 0.75f) < 1e-6f);
        zeros += a->data[i] == 0.0f;
    }
    cr_assert(zeros > 2300 && zeros < 2700, "%d of 10000 dropped at p = 0.25", zeros); /* 5.8 sigma band */
    cr_assert(gl_dropout(x, 0.25f, &r1, false) == x, "eval mode is the identity");
    gl_param_free(x);
}
