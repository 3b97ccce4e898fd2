#include "by_hand.h"

#include <math.h>
#include <stddef.h>

void attention_by_hand(const float *q, const float *k, const float *v, int T, int d, bool causal, float *weights,
                       float *out) {
    /* BEGIN SOLUTION lab04: one head's attention: scores q k^T / sqrt(d), the causal mask, each row's softmax, weights v */
    float scale = 1.0f / sqrtf((float)d);
    for (int i = 0; i < T; i++) {
        float *w = weights + (size_t)i * T;
        int last = causal ? i : T - 1; /* the masked scores are -inf: their weight is exactly 0 */
        float mx = -INFINITY;
        for (int j = 0; j <= last; j++) {
            float s = 0;
            for (int c = 0; c < d; c++) s += q[(size_t)i * d + c] * k[(size_t)j * d + c];
            w[j] = s * scale;
            mx = fmaxf(mx, w[j]);
        }
        float sum = 0;
        for (int j = 0; j <= last; j++) w[j] = expf(w[j] - mx), sum += w[j]; /* minus the row's max: no overflow */
        for (int j = 0; j < T; j++) w[j] = j <= last ? w[j] / sum : 0.0f;
        for (int c = 0; c < d; c++) {
            float s = 0;
            for (int j = 0; j <= last; j++) s += w[j] * v[(size_t)j * d + c];
            out[(size_t)i * d + c] = s;
        }
    }
    /* END SOLUTION */
}
