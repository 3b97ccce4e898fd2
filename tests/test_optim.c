/* Optimizer steps against values computed by hand (in double precision, with PyTorch's update rules as written
 * in optim.h) for one weight w0 = 1 and gradients 0.5, -1.0, 0.25 over three steps. Tolerance 1e-6: float32
 * arithmetic on O(1) values over three steps, while a wrong rule (missing bias correction, coupled instead of
 * decoupled decay, momentum started at 0) moves the weight by 1e-3 or more. */
#include "testutil.h"

static const float grads[3] = {0.5f, -1.0f, 0.25f};

/* one weight w0 = 1 */
static gl_tensor *unit_weight(bool no_weight_decay) {
    gl_tensor *w = gl_param(GL_DIMS(1), "w");
    w->data[0] = 1.0f;
    w->no_weight_decay = no_weight_decay;
    return w;
}

/* three steps of o on its single parameter, compared with expect[]; frees both */
static void check_steps(gl_optim *o, const double *expect) {
    gl_tensor *w = o->params[0];
    for (int t = 0; t < 3; t++) {
        w->grad[0] = grads[t];
        gl_optim_step(o);
        cr_assert(fabs(w->data[0] - expect[t]) < 1e-6, "step %d: w = %.9f, expected %.9f", t + 1, (double)w->data[0],
                  expect[t]);
    }
    cr_assert(o->step == 3);
    gl_optim_free(o);
    gl_param_free(w);
}

Test(optim, sgd_momentum_weight_decay) {
    check_steps(gl_sgd((gl_tensor *[]){unit_weight(false)}, 1, 0.1f, 0.9f, 0.01f),
                (const double[]){0.949, 1.002151, 1.023984749});
}

Test(optim, adam_with_l2_decay) {
    check_steps(gl_adam((gl_tensor *[]){unit_weight(false)}, 1, 0.1f, 0.9f, 0.999f, 1e-8f, 0.1f),
                (const double[]){0.9000000016666666, 0.9252635194456061, 0.9247305742687093});
}

Test(optim, adamw_decoupled_decay) {
    check_steps(gl_adamw((gl_tensor *[]){unit_weight(false)}, 1, 0.1f, 0.9f, 0.999f, 1e-8f, 0.1f),
                (const double[]){0.890000002, 0.9177103542205653, 0.9222023167767704});
}

Test(optim, no_weight_decay_flag_is_honoured) { /* AdamW with the decay skipped is plain Adam */
    check_steps(gl_adamw((gl_tensor *[]){unit_weight(true)}, 1, 0.1f, 0.9f, 0.999f, 1e-8f, 0.1f),
                (const double[]){0.900000002, 0.9366103542405654, 0.9502794203389762});
}

Test(optim, clip_grad_norm) {
    gl_tensor *a = gl_param(GL_DIMS(1), "a"), *b = gl_param(GL_DIMS(1), "b");
    a->grad[0] = 3.0f;
    b->grad[0] = -4.0f;
    gl_tensor *ps[2] = {a, b};
    float norm = gl_clip_grad_norm(ps, 2, 1.0f);
    cr_assert_float_eq(norm, 5.0f, 1e-6f);
    cr_assert_float_eq(a->grad[0], 0.6f, 1e-6f);
    cr_assert_float_eq(b->grad[0], -0.8f, 1e-6f);
    norm = gl_clip_grad_norm(ps, 2, 10.0f); /* under the limit: untouched */
    cr_assert_float_eq(norm, 1.0f, 1e-6f);
    cr_assert_float_eq(a->grad[0], 0.6f, 1e-6f);
    gl_param_free(a);
    gl_param_free(b);
}

Test(optim, warmup_cosine_schedule) {
    cr_assert_float_eq(gl_lr_warmup_cosine(0, 10, 110, 1e-3f, 1e-4f), 1e-4f, 1e-9f);   /* (0+1)/10 of max */
    cr_assert_float_eq(gl_lr_warmup_cosine(9, 10, 110, 1e-3f, 1e-4f), 1e-3f, 1e-9f);   /* end of warmup */
    cr_assert_float_eq(gl_lr_warmup_cosine(10, 10, 110, 1e-3f, 1e-4f), 1e-3f, 1e-9f);  /* cosine starts at max */
    cr_assert_float_eq(gl_lr_warmup_cosine(60, 10, 110, 1e-3f, 1e-4f), 5.5e-4f, 1e-9f); /* halfway: the mean */
    cr_assert_float_eq(gl_lr_warmup_cosine(110, 10, 110, 1e-3f, 1e-4f), 1e-4f, 1e-9f); /* floor */
    cr_assert_float_eq(gl_lr_warmup_cosine(500, 10, 110, 1e-3f, 1e-4f), 1e-4f, 1e-9f);
}
