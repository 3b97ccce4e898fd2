/* Post-training quantization of our GPT (gpt.h gpt_quantize): round to nearest or GPTQ, block by block.
 *
 * The weights of a gl_linear are stored [in, out]; GPTQ and the block formats work on rows of inputs (one row per
 * output, 32 consecutive inputs per scale, as a GGUF matrix), so each weight is transposed on the way in and out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpt.h"
#include "quant.h"

static gl_tensor *linear_weight(gpt *m, int l, int which) {
    gpt_block *k = &m->blocks[l];
    gl_tensor *ws[GPT_LINEARS] = {k->attn_w, k->proj_w, k->fc_w, k->fcproj_w};
    return ws[which];
}

/* [in, out] -> [out, in] (or back, with the sizes swapped) */
static float *transposed(const float *w, int rows, int cols) {
    float *t = malloc((size_t)rows * cols * sizeof *t);
    if (!t) gl_fatal("gpt_quantize", "out of memory for a %d x %d weight", rows, cols);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) t[(size_t)c * rows + r] = w[(size_t)r * cols + c];
    return t;
}

/* the values q decodes to, written into p as [in, out] */
static void store(gl_tensor *p, const gl_qmatrix *q) {
    float *rows = malloc((size_t)q->rows * q->cols * sizeof *rows);
    if (!rows) gl_fatal("gpt_quantize", "out of memory");
    gl_qmatrix_to_floats(q, rows);
    float *back = transposed(rows, q->rows, q->cols);
    memcpy(p->data, back, (size_t)q->rows * q->cols * sizeof *back);
    free(rows), free(back);
}

typedef struct {
    gl_hessian h[GPT_LINEARS];
    int layer;
} observer;

static void observe(void *ctx, int layer, int which, const float *x, int rows, int cols) {
    observer *o = ctx;
    if (layer != o->layer) return;
    if (cols != o->h[which].dim) gl_fatal("gpt_quantize", "linear %d of block %d: %d inputs, expected %d", which, layer, cols, o->h[which].dim);
    gl_hessian_add(&o->h[which], x, rows);
}

bool gpt_quantize(gpt *m, int type, int embd_type, bool gptq, bool act_order, const int32_t *calib, int n_seq, int T,
                  double damp, gpt_quant_report *rep, char *err, size_t n) {
    const gpt_config *c = &m->cfg;
    *rep = (gpt_quant_report){0};
    if (m->device != GL_CPU || m->nf4 || m->n_adapters)
        return snprintf(err, n, "gpt_quantize takes a plain model on the CPU (no adapters, no NF4)"), false;
    if (!gl_qmatrix_bytes(type, 1, c->n_embd) || type == GL_TYPE_F32 || type == GL_TYPE_F16)
        return snprintf(err, n, "type %d is not a block type for rows of %d inputs", type, c->n_embd), false;
    if (gptq && (!calib || n_seq < 1 || T < 1 || T > c->block_size))
        return snprintf(err, n, "GPTQ needs calibration sequences of 1 .. %d tokens", c->block_size), false;
    for (int l = 0; l < c->n_layer; l++) {
        observer o = {.layer = l};
        if (gptq) { /* this block's inputs, through the blocks already quantized */
            for (int k = 0; k < GPT_LINEARS; k++) gl_hessian_init(&o.h[k], k == GPT_LINEAR_FCPROJ ? 4 * c->n_embd : c->n_embd);
            m->observe = observe, m->observe_ctx = &o;
            gl_no_grad_begin();
            for (int s = 0; s < n_seq; s++) {
                gl_scope scope = gl_scope_begin();
                gpt_hidden(m, calib + (size_t)s * T, 1, T, NULL, false);
                gl_scope_end(&scope);
            }
            gl_no_grad_end();
            m->observe = NULL;
        }
        for (int k = 0; k < GPT_LINEARS; k++) {
            gl_tensor *p = linear_weight(m, l, k);
            int in = p->shape[0], out = p->shape[1];
            float *w = transposed(p->data, in, out), *wr = malloc((size_t)in * out * sizeof *wr);
            gl_qmatrix q, r;
            gl_qmatrix_round(&r, type, w, out, in);
            if (gptq) {
                float *wq = malloc((size_t)in * out * sizeof *wq);
                bool ok = gl_qmatrix_gptq(&q, type, w, out, in, &o.h[k], damp, 128, act_order, wq, err, n);
                if (ok) {
                    gl_qmatrix_to_floats(&r, wr);
                    rep->error += gl_hessian_error(&o.h[k], w, wq, out, in);
                    rep->error_rtn += gl_hessian_error(&o.h[k], w, wr, out, in);
                    store(p, &q);
                    free((void *)q.data);
                }
                free(wq);
                if (!ok) {
                    free(w), free(wr), free((void *)r.data);
                    for (int j = 0; j < GPT_LINEARS; j++) gl_hessian_free(&o.h[j]);
                    return false;
                }
            } else
                store(p, &r);
            rep->weights += (int64_t)in * out, rep->bytes += (int64_t)gl_qmatrix_bytes(type, out, in);
            free(w), free(wr), free((void *)r.data);
        }
        if (gptq)
            for (int k = 0; k < GPT_LINEARS; k++) gl_hessian_free(&o.h[k]);
    }
    if (embd_type != GL_TYPE_F32) { /* the token embedding, also the output head: its used rows, rounded */
        gl_qmatrix r;
        gl_qmatrix_round(&r, embd_type, m->wte->data, c->vocab_size, c->n_embd);
        gl_qmatrix_to_floats(&r, m->wte->data);
        free((void *)r.data);
    }
    return true;
}
