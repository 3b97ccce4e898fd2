/* Lab 04's attention written out by hand for one head, before the fused ops do it:
 *   scores = q k^T / sqrt(d),  scores[i][j] = -inf for j > i when causal (a token may not look ahead),
 *   weights = softmax of each row of scores,  out = weights v.
 * Row-major float arrays: q, k, v and out are [T, d], weights [T, T]. tests/test_lab04.c checks out against
 * gl_attention_ex (the naive and the flash op) and weights against gl_attention_weights. */
#ifndef GRADLAB_LAB04_BY_HAND_H
#define GRADLAB_LAB04_BY_HAND_H

#include <stdbool.h>

void attention_by_hand(const float *q, const float *k, const float *v, int T, int d, bool causal, float *weights,
                       float *out);

#endif
