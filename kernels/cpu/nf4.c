/* 4-bit NormalFloat (NF4) weights, as QLoRA (Dettmers et al. 2023) stores a frozen base model.
 *
 * A matrix's values are cut, in storage order, into blocks of 64. Each block keeps its absolute maximum and, per
 * value, the index (4 bits) of the nearest of 16 levels in [-1, 1] to value / absmax. The levels are quantiles of
 * a standard normal distribution (normalised to [-1, 1], with an exact 0), so for normally distributed weights
 * each level is used about equally often: the information-theoretically best 4-bit code for such data.
 * Double quantisation then shrinks the absmax values themselves: their mean is subtracted, and they are stored as
 * int8 in blocks of 256 with one float scale per block - 8.1 bits per 64 weights instead of 32.
 * (bitsandbytes codes the second level with its 8-bit "dynamic" float map; we use symmetric linear int8, whose
 * error is stated in nf4.h and tested.) Packing: two indices per byte, the first value in the high nibble.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

const float gl_nf4_levels[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f,
    -0.18477343022823334f, -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f,
    0.24611230194568634f, 0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f,
    1.0f};

/* index of the level nearest to x in [-1, 1]: compare with the 15 midpoints */
static int nearest_level(float x) {
    /* BEGIN SOLUTION lab06: the index of the NF4 level nearest to x in [-1, 1] (gl_nf4_levels ascending; compare x with the midpoints) */
    int lo = 0;
    for (int step = 8; step >= 1; step /= 2)
        if (lo + step <= 15 && x > 0.5f * (gl_nf4_levels[lo + step - 1] + gl_nf4_levels[lo + step])) lo += step;
    return lo;
    /* END SOLUTION */
}

bool gl_nf4_quantize(gl_nf4 *q, const float *w, int rows, int cols) {
    memset(q, 0, sizeof *q);
    int64_t n = (int64_t)rows * cols;
    q->rows = rows;
    q->cols = cols;
    q->n_blocks = (n + GL_NF4_BLOCK - 1) / GL_NF4_BLOCK;
    q->n_groups = (q->n_blocks + GL_NF4_GROUP - 1) / GL_NF4_GROUP;
    q->packed = calloc((size_t)(n + 1) / 2, 1);
    q->absmax_q = malloc((size_t)q->n_blocks);
    q->group_scale = malloc((size_t)q->n_groups * sizeof(float));
    float *absmax = malloc((size_t)q->n_blocks * sizeof(float));
    if (!q->packed || !q->absmax_q || !q->group_scale || !absmax) {
        free(absmax);
        gl_nf4_free(q);
        return false;
    }
    double mean = 0;
    for (int64_t b = 0; b < q->n_blocks; b++) {
        int64_t e1 = (b + 1) * GL_NF4_BLOCK < n ? (b + 1) * GL_NF4_BLOCK : n;
        float m = 0;
        for (int64_t e = b * GL_NF4_BLOCK; e < e1; e++) m = fmaxf(m, fabsf(w[e]));
        absmax[b] = m;
        mean += m;
    }
    q->offset = (float)(mean / q->n_blocks);
    for (int64_t g = 0; g < q->n_groups; g++) {
        int64_t b1 = (g + 1) * GL_NF4_GROUP < q->n_blocks ? (g + 1) * GL_NF4_GROUP : q->n_blocks;
        float m = 0;
        for (int64_t b = g * GL_NF4_GROUP; b < b1; b++) m = fmaxf(m, fabsf(absmax[b] - q->offset));
        q->group_scale[g] = m / 127.0f;
        for (int64_t b = g * GL_NF4_GROUP; b < b1; b++)
            q->absmax_q[b] = (int8_t)(m > 0 ? lrintf((absmax[b] - q->offset) / q->group_scale[g]) : 0);
    }
    /* each value is coded against the absmax it will be decoded with, so the double quantisation's error is
     * partly absorbed by the choice of level */
    for (int64_t b = 0; b < q->n_blocks; b++) {
        float a = gl_nf4_absmax(q, b), inv = a > 0 ? 1.0f / a : 0.0f;
        int64_t e1 = (b + 1) * GL_NF4_BLOCK < n ? (b + 1) * GL_NF4_BLOCK : n;
        for (int64_t e = b * GL_NF4_BLOCK; e < e1; e++) {
            float x = w[e] * inv;
            x = x > 1 ? 1 : x < -1 ? -1 : x;
            int idx = nearest_level(x);
            q->packed[e / 2] |= (uint8_t)(e % 2 ? idx : idx << 4);
        }
    }
    free(absmax);
    return true;
}

float gl_nf4_absmax(const gl_nf4 *q, int64_t block) {
    return q->offset + (float)q->absmax_q[block] * q->group_scale[block / GL_NF4_GROUP];
}

void gl_nf4_dequantize_run(const gl_nf4 *q, int64_t start, int n, float *dst) {
    int64_t e = start, end = start + n;
    while (e < end) {
        int64_t block = e / GL_NF4_BLOCK, block_end = (block + 1) * GL_NF4_BLOCK < end ? (block + 1) * GL_NF4_BLOCK : end;
        float a = gl_nf4_absmax(q, block), lv[16];
        for (int i = 0; i < 16; i++) lv[i] = gl_nf4_levels[i] * a;
        for (; e < block_end; e++) *dst++ = lv[(q->packed[e / 2] >> (e % 2 ? 0 : 4)) & 15];
    }
}

size_t gl_nf4_bytes(const gl_nf4 *q) {
    return (size_t)((int64_t)q->rows * q->cols + 1) / 2 + (size_t)q->n_blocks + (size_t)q->n_groups * sizeof(float) +
           sizeof(float);
}

void gl_nf4_free(gl_nf4 *q) {
    free(q->packed);
    free(q->absmax_q);
    free(q->group_scale);
    memset(q, 0, sizeof *q);
}
