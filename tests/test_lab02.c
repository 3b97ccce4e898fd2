/* Lab 02's MLP by hand against autograd: the same loss and the same gradient for every parameter. */
#include "by_hand.h"
#include "testutil.h"

static float max_diff(const float *a, const float *b, size_t n, size_t *at) {
    float worst = 0;
    for (size_t i = 0; i < n; i++)
        if (fabsf(a[i] - b[i]) > worst) worst = fabsf(a[i] - b[i]), *at = i;
    return worst;
}

Test(lab02, mlp_by_hand_matches_autograd) {
    enum { IN = 20, HID = 16, OUT = 5, B = 7 };
    gl_rng r;
    gl_rng_seed(&r, 3);
    gl_tensor *w1 = gl_param(GL_DIMS(IN, HID), "w1"), *b1 = gl_param(GL_DIMS(HID), "b1"),
              *w2 = gl_param(GL_DIMS(HID, OUT), "w2"), *b2 = gl_param(GL_DIMS(OUT), "b2");
    gl_tensor *ps[4] = {w1, b1, w2, b2};
    for (int i = 0; i < 4; i++) gl_init_uniform(ps[i], &r, -0.5f, 0.5f);
    float x[B * IN];
    int32_t labels[B];
    for (int i = 0; i < B * IN; i++) x[i] = (float)gl_rng_normal(&r);
    for (int i = 0; i < B; i++) labels[i] = (int32_t)(gl_rng_u64(&r) % OUT);
    /* autograd */
    gl_tensor *xt = gl_param(GL_DIMS(B, IN), "x");
    gl_param_freeze(xt);
    memcpy(xt->data, x, sizeof x);
    gl_scope scope = gl_scope_begin();
    gl_tensor *loss = gl_cross_entropy(gl_linear(gl_relu(gl_linear(xt, w1, b1)), w2, b2), labels, -1);
    gl_backward(loss);
    float want_loss = loss->data[0];
    /* by hand */
    float gw1[IN * HID], gb1[HID], gw2[HID * OUT], gb2[OUT];
    mlp_hand m = {IN, HID, OUT, w1->data, b1->data, w2->data, b2->data}, g = {IN, HID, OUT, gw1, gb1, gw2, gb2};
    float got_loss = mlp_hand_loss_and_grads(&m, x, labels, B, &g);
    cr_assert(fabsf(got_loss - want_loss) < 1e-5f, "loss: by hand %.7f, autograd %.7f", got_loss, want_loss);
    const char *names[4] = {"dW1", "db1", "dW2", "db2"};
    float *mine[4] = {gw1, gb1, gw2, gb2};
    for (int i = 0; i < 4; i++) {
        size_t at = 0, n = (size_t)ps[i]->numel;
        float d = max_diff(mine[i], ps[i]->grad, n, &at);
        cr_assert(d < 1e-5f, "%s: max |by hand - autograd| = %.3g at [%zu]: by hand %.7f, autograd %.7f", names[i], d,
                  at, mine[i][at], ps[i]->grad[at]);
        cr_log_info("%s: max |by hand - autograd| = %.3g", names[i], d);
    }
    gl_scope_end(&scope);
    for (int i = 0; i < 4; i++) gl_param_free(ps[i]);
    gl_param_free(xt);
}
