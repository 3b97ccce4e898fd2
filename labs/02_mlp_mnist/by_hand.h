/* Lab 02's MLP written out by hand, before autograd does it: one hidden layer,
 *   a = x W1 + b1,  h = relu(a),  z = h W2 + b2,  loss = mean over the batch of -log softmax(z)[label]
 * and its backward by the chain rule:
 *   dz = (softmax(z) - onehot(label)) / B,  dW2 = h^T dz,  db2 = sum over rows of dz,
 *   dh = dz W2^T,  da = dh where a > 0 (else 0),  dW1 = x^T da,  db1 = sum over rows of da.
 * Row-major float arrays; tests/test_lab02.c checks the loss and every gradient against autograd's. */
#ifndef GRADLAB_LAB02_BY_HAND_H
#define GRADLAB_LAB02_BY_HAND_H

#include <stdint.h>

typedef struct {
    int in, hidden, out;
    float *w1, *b1, *w2, *b2; /* [in, hidden], [hidden], [hidden, out], [out] */
} mlp_hand;

/* the mean cross-entropy of a batch (x [batch, in], labels in [0, out)); the gradients of every parameter into grad
 * (the same shapes; overwritten) */
float mlp_hand_loss_and_grads(const mlp_hand *m, const float *x, const int32_t *labels, int batch, mlp_hand *grad);

#endif
