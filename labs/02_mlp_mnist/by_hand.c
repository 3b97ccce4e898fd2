#include "by_hand.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

float mlp_hand_loss_and_grads(const mlp_hand *m, const float *x, const int32_t *labels, int B, mlp_hand *g) {
    int I = m->in, H = m->hidden, O = m->out;
    float *a = malloc((size_t)B * H * sizeof *a), *h = malloc((size_t)B * H * sizeof *h),
          *z = malloc((size_t)B * O * sizeof *z), *dz = malloc((size_t)B * O * sizeof *dz),
          *dh = malloc((size_t)B * H * sizeof *dh);
    double loss = 0;
    /* BEGIN SOLUTION lab02: the forward pass: a = x W1 + b1, h = relu(a), z = h W2 + b2, the mean cross-entropy */
    for (int r = 0; r < B; r++) {
        float *ar = a + (size_t)r * H; /* row r of x W1, one input at a time: W1 is read row by row */
        for (int j = 0; j < H; j++) ar[j] = m->b1[j];
        for (int i = 0; i < I; i++)
            for (int j = 0; j < H; j++) ar[j] += x[(size_t)r * I + i] * m->w1[(size_t)i * H + j];
        for (int j = 0; j < H; j++) h[(size_t)r * H + j] = ar[j] > 0 ? ar[j] : 0;
        for (int k = 0; k < O; k++) {
            float s = m->b2[k];
            for (int j = 0; j < H; j++) s += h[(size_t)r * H + j] * m->w2[(size_t)j * O + k];
            z[(size_t)r * O + k] = s;
        }
        float mx = z[(size_t)r * O];
        for (int k = 1; k < O; k++) mx = fmaxf(mx, z[(size_t)r * O + k]);
        double sum = 0;
        for (int k = 0; k < O; k++) sum += exp(z[(size_t)r * O + k] - mx);
        loss += mx + log(sum) - z[(size_t)r * O + labels[r]];
        for (int k = 0; k < O; k++) /* the softmax, kept for the backward pass */
            dz[(size_t)r * O + k] = (float)(exp(z[(size_t)r * O + k] - mx) / sum);
    }
    /* END SOLUTION */
    /* BEGIN SOLUTION lab02: the backward pass by the chain rule: dz, dW2, db2, dh, da (relu), dW1, db1 */
    memset(g->w1, 0, (size_t)I * H * sizeof *g->w1), memset(g->b1, 0, (size_t)H * sizeof *g->b1);
    memset(g->w2, 0, (size_t)H * O * sizeof *g->w2), memset(g->b2, 0, (size_t)O * sizeof *g->b2);
    for (int r = 0; r < B; r++) {
        float *dzr = dz + (size_t)r * O;
        dzr[labels[r]] -= 1.0f; /* softmax - onehot */
        for (int k = 0; k < O; k++) dzr[k] /= (float)B;
        for (int k = 0; k < O; k++) {
            g->b2[k] += dzr[k];
            for (int j = 0; j < H; j++) g->w2[(size_t)j * O + k] += h[(size_t)r * H + j] * dzr[k];
        }
        for (int j = 0; j < H; j++) {
            float s = 0;
            for (int k = 0; k < O; k++) s += dzr[k] * m->w2[(size_t)j * O + k];
            dh[(size_t)r * H + j] = a[(size_t)r * H + j] > 0 ? s : 0; /* through the relu */
        }
        for (int j = 0; j < H; j++) g->b1[j] += dh[(size_t)r * H + j];
        for (int i = 0; i < I; i++)
            for (int j = 0; j < H; j++) g->w1[(size_t)i * H + j] += x[(size_t)r * I + i] * dh[(size_t)r * H + j];
    }
    /* END SOLUTION */
    free(a), free(h), free(z), free(dz), free(dh);
    return (float)(loss / B);
}
