/* Post-training quantization of weight matrices: round to nearest and GPTQ (the ops layer over kernels/cpu/quant.c
 * and kernels/cpu/gptq.c), and the Hessians of a layer's inputs that GPTQ needs. Used by the quantize program
 * (Llama GGUF models) and gpt_quantize (our GPT). Types are gl_qmatrix's (ggml's numbers; 130 is gradlab's Q3_0).
 * docs/quantization.md explains the method and the formats. */
#ifndef GRADLAB_QUANT_H
#define GRADLAB_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ops.h"

enum { GL_TYPE_F32 = 0, GL_TYPE_F16 = 1, GL_TYPE_Q4_0 = 2, GL_TYPE_Q4_1 = 3, GL_TYPE_Q8_0 = 8, GL_TYPE_Q3_0 = 130 };

/* bytes of a rows x cols matrix of the type (0: unknown type, or block rows that are not a multiple of 32) */
size_t gl_qmatrix_bytes(int type, int rows, int cols);
/* w (rows x cols, row-major) rounded to the type, each block on its own; q->data is malloc'd (the caller frees it) */
void gl_qmatrix_round(gl_qmatrix *q, int type, const float *w, int rows, int cols);

/* X^T X summed over the rows of a layer's inputs X (dim columns), in floats */
typedef struct {
    float *xtx;
    int dim;
    int64_t rows;
} gl_hessian;
void gl_hessian_init(gl_hessian *h, int dim);
void gl_hessian_add(gl_hessian *h, const float *x, int rows);
void gl_hessian_free(gl_hessian *h);
/* GPTQ's objective for a weight w and its quantized wq: sum over rows r of (w_r - wq_r) H (w_r - wq_r)^T with
 * H = 2 X^T X / n, the layer's squared output error per input row */
double gl_hessian_error(const gl_hessian *h, const float *w, const float *wq, int rows, int cols);

/* w quantized by GPTQ with h; q->data malloc'd; dequant (rows x cols, may be NULL) gets the values it decodes to.
 * damp: a fraction of H's mean diagonal added to it; block: GPTQ's lazy-update block (a multiple of 32);
 * act_order: the columns by decreasing Hessian diagonal, with static block scales (kernels.h gl_gptq_quantize).
 * false with a message if the Hessian cannot be used (too few rows for its size, not positive definite). */
bool gl_qmatrix_gptq(gl_qmatrix *q, int type, const float *w, int rows, int cols, const gl_hessian *h, double damp,
                     int block, bool act_order, float *dequant, char *err, size_t err_len);

#endif
