/* LoRA and QLoRA for the GPT: adapters on the block linears, NF4 base weights, merging, the adapters file.
 * See gpt.h for the scheme and docs/formats.md for the file. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpt.h"
#include "gpt_io.h"
#include "io.h"

#define LORA_MAGIC "GLLORA1"
static const char LORA_TARGETS[] = "qkvofp";

/* the weight and bias of block l's linear `which`, with its input and output sizes */
static void linear_params(const gpt *m, int l, int which, gl_tensor **w, gl_tensor **b) {
    gpt_block *k = &m->blocks[l];
    gl_tensor *ws[GPT_LINEARS] = {k->attn_w, k->proj_w, k->fc_w, k->fcproj_w};
    gl_tensor *bs[GPT_LINEARS] = {k->attn_b, k->proj_b, k->fc_b, k->fcproj_b};
    *w = ws[which];
    *b = bs[which];
}

/* where a target letter's adapter sits: which linear, which columns, and its input size */
static void target_geometry(const gpt *m, char t, int *linear, int *col0, int *width, int *in) {
    int C = m->cfg.n_embd;
    const char *at = strchr(LORA_TARGETS, t);
    int i = (int)(at - LORA_TARGETS);
    static const int linears[6] = {GPT_LINEAR_ATTN, GPT_LINEAR_ATTN, GPT_LINEAR_ATTN, GPT_LINEAR_PROJ, GPT_LINEAR_FC,
                                   GPT_LINEAR_FCPROJ};
    *linear = linears[i];
    *col0 = i < 3 ? i * C : 0;
    *width = i == 4 ? 4 * C : C;
    *in = i == 5 ? 4 * C : C;
}

gl_tensor *gpt_block_linear(gpt *m, int l, int which, gl_tensor *x) {
    gl_tensor *w, *b;
    linear_params(m, l, which, &w, &b);
    if (m->observe) {
        x = gl_contiguous(x);
        m->observe(m->observe_ctx, l, which, x->data, (int)(x->numel / x->shape[x->ndim - 1]), x->shape[x->ndim - 1]);
    }
    gl_tensor *y = m->nf4 ? gl_linear_nf4(x, m->nf4[l * GPT_LINEARS + which], b) : gl_linear(x, w, b);
    gl_tensor *updates[3];
    int col0[3], n = 0;
    for (int i = 0; i < m->n_adapters; i++) {
        const gpt_adapter *a = &m->adapters[i];
        if (a->layer != l || a->linear != which) continue;
        /* BEGIN SOLUTION lab06: the adapter's update from ops: x A B (A [in, r], B [r, out]); the caller scales it by alpha / r */
        updates[n] = gl_linear(gl_linear(x, a->a, NULL), a->b, NULL);
        /* END SOLUTION */
        col0[n++] = a->col0;
    }
    return n ? gl_add_columns(y, n, updates, col0, m->lora.alpha / (float)m->lora.rank) : y;
}

bool gpt_lora_parse(const char *spec, gpt_lora_config *c, char *err, size_t n) {
    *c = (gpt_lora_config){.rank = 8, .alpha = 16.0f, .targets = "qv"};
    char buf[256];
    snprintf(buf, sizeof buf, "%s", spec ? spec : "");
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq) return snprintf(err, n, "--lora: '%s' is not key=value (keys: r, alpha, targets)", tok), false;
        *eq = 0;
        const char *key = tok, *val = eq + 1;
        char *end;
        if (!strcmp(key, "r")) {
            long r = strtol(val, &end, 10);
            if (*end || end == val || r < 1 || r > 4096) return snprintf(err, n, "--lora: r must be an integer in [1, 4096], got '%s'", val), false;
            c->rank = (int)r;
        } else if (!strcmp(key, "alpha")) {
            double a = strtod(val, &end);
            if (*end || end == val || !(a > 0 && a < 1e6)) return snprintf(err, n, "--lora: alpha must be a positive number, got '%s'", val), false;
            c->alpha = (float)a;
        } else if (!strcmp(key, "targets")) {
            char picked[8] = {0};
            int k = 0;
            for (const char *t = LORA_TARGETS; *t; t++)
                if (strchr(val, *t)) picked[k++] = *t;
            for (const char *v = val; *v; v++)
                if (!strchr(LORA_TARGETS, *v))
                    return snprintf(err, n, "--lora: target '%c' is not one of q k v o f p (attention q/k/v, attention "
                                            "output, MLP in, MLP out)", *v), false;
            if (!k) return snprintf(err, n, "--lora: targets is empty"), false;
            memcpy(c->targets, picked, sizeof picked);
        } else
            return snprintf(err, n, "--lora: unknown key '%s' (keys: r, alpha, targets)", key), false;
    }
    return true;
}

static void freeze_base(gpt *m) {
    for (int i = 0; i < m->n_params; i++) gl_param_freeze(m->params[i]);
}

/* allocates the adapters of config c on m (A and B zero), in the canonical order: layer, then target letter */
static void make_adapters(gpt *m, gpt_lora_config c) {
    if (m->n_adapters) gl_fatal("lora", "the model already has adapters");
    int per_layer = (int)strlen(c.targets);
    m->lora = c;
    m->n_adapters = m->cfg.n_layer * per_layer;
    m->adapters = calloc((size_t)m->n_adapters, sizeof *m->adapters);
    m->trainable = malloc(2 * (size_t)m->n_adapters * sizeof *m->trainable);
    m->n_trainable = 2 * m->n_adapters;
    for (int l = 0, i = 0; l < m->cfg.n_layer; l++)
        for (int t = 0; t < per_layer; t++, i++) {
            gpt_adapter *a = &m->adapters[i];
            int width, in;
            a->layer = l;
            a->target = c.targets[t];
            target_geometry(m, a->target, &a->linear, &a->col0, &width, &in);
            a->a = gl_param(GL_DIMS(in, c.rank), "lora_A");
            a->b = gl_param(GL_DIMS(c.rank, width), "lora_B");
            m->trainable[2 * i] = a->a;
            m->trainable[2 * i + 1] = a->b;
        }
    freeze_base(m);
}

void gpt_lora_attach(gpt *m, gpt_lora_config c, uint64_t seed) {
    make_adapters(m, c);
    gl_rng rng;
    gl_rng_seed(&rng, seed);
    for (int i = 0; i < m->n_adapters; i++) {
        float bound = 1.0f / sqrtf((float)m->adapters[i].a->shape[0]);
        gl_init_uniform(m->adapters[i].a, &rng, -bound, bound);
        gl_param_to(m->adapters[i].a, m->device), gl_param_to(m->adapters[i].b, m->device); /* beside the base */
    }
}

void gpt_quantize_nf4(gpt *m) {
    if (m->nf4) return;
    m->nf4 = calloc((size_t)m->cfg.n_layer * GPT_LINEARS, sizeof *m->nf4);
    for (int l = 0; l < m->cfg.n_layer; l++)
        for (int which = 0; which < GPT_LINEARS; which++) {
            gl_tensor *w, *b;
            linear_params(m, l, which, &w, &b);
            if (!(m->nf4[l * GPT_LINEARS + which] = gl_nf4_from_param(w)))
                gl_fatal("qlora", "out of memory quantising %s", w->name);
        }
}

static void dequantize_nf4(gpt *m) {
    for (int l = 0; l < m->cfg.n_layer; l++)
        for (int which = 0; which < GPT_LINEARS; which++) {
            gl_tensor *w, *b;
            linear_params(m, l, which, &w, &b);
            gl_nf4_to_param(m->nf4[l * GPT_LINEARS + which], w);
        }
    free(m->nf4);
    m->nf4 = NULL;
}

void gpt_lora_free(gpt *m) {
    for (int i = 0; i < m->n_adapters; i++) {
        gl_param_free(m->adapters[i].a);
        gl_param_free(m->adapters[i].b);
    }
    free(m->adapters);
    m->adapters = NULL;
    m->n_adapters = 0;
    if (m->trainable != m->params) free(m->trainable);
    m->trainable = m->params;
    m->n_trainable = m->n_params;
    if (m->nf4) {
        for (int i = 0; i < m->cfg.n_layer * GPT_LINEARS; i++) gl_nf4_release(m->nf4[i]);
        free(m->nf4);
        m->nf4 = NULL;
    }
}

void gpt_lora_merge(gpt *m) {
    if (m->device != GL_CPU) gl_fatal("lora", "merging runs on the CPU: move the model there first (gpt_to)");
    if (m->nf4) dequantize_nf4(m);
    float scale = m->lora.alpha / (float)m->lora.rank;
    for (int i = 0; i < m->n_adapters; i++) {
        const gpt_adapter *a = &m->adapters[i];
        gl_tensor *w, *b;
        linear_params(m, a->layer, a->linear, &w, &b);
        gl_matmul_acc(w, a->col0, a->a, a->b, scale);
    }
    gpt_lora_free(m);
    for (int i = 0; i < m->n_params; i++) gl_param_unfreeze(m->params[i]);
}

int64_t gpt_trainable_weights(const gpt *m) {
    int64_t n = 0;
    for (int i = 0; i < m->n_trainable; i++) n += m->trainable[i]->numel;
    return n;
}

size_t gpt_base_weight_bytes(const gpt *m) {
    size_t bytes = 0;
    for (int i = 0; i < m->n_params; i++)
        if (m->params[i]->data) bytes += (size_t)m->params[i]->numel * sizeof(float);
    if (m->nf4)
        for (int i = 0; i < m->cfg.n_layer * GPT_LINEARS; i++) bytes += gl_nf4_size(m->nf4[i]);
    return bytes;
}

/* ---- the adapters file ---- */

typedef struct {
    char magic[8];
    int32_t n_layer, n_embd, rank, n_adapters;
    float alpha;
    char targets[8];
    int32_t nf4_base; /* 1: trained on the NF4-quantised base (QLoRA) */
} lora_header;

typedef struct {
    int32_t layer, linear, col0, in, width, target;
} adapter_record;

bool gpt_lora_save(const gpt *m, const char *path, char *err, size_t n) {
    if (m->device != GL_CPU) return snprintf(err, n, "adapters are read and written on the CPU: move the model there first"), false;
    if (!m->n_adapters) return snprintf(err, n, "the model has no adapters to save"), false;
    gl_atomic at;
    FILE *f = gl_atomic_open(&at, path);
    if (!f) return snprintf(err, n, "cannot create '%s'", path), false;
    lora_header h = {LORA_MAGIC, m->cfg.n_layer, m->cfg.n_embd, m->lora.rank, m->n_adapters, m->lora.alpha, {0},
                     m->nf4 != NULL};
    memcpy(h.targets, m->lora.targets, sizeof h.targets);
    uint64_t sum = gl_fnv1a(GL_FNV_OFFSET, &h, sizeof h);
    fwrite(&h, sizeof h, 1, f);
    for (int i = 0; i < m->n_adapters; i++) {
        const gpt_adapter *a = &m->adapters[i];
        adapter_record r = {a->layer, a->linear, a->col0, a->a->shape[0], a->b->shape[1], a->target};
        sum = gl_fnv1a(sum, &r, sizeof r);
        fwrite(&r, sizeof r, 1, f);
        gl_tensor *ts[2] = {a->a, a->b};
        for (int k = 0; k < 2; k++) {
            sum = gl_fnv1a(sum, ts[k]->data, (size_t)ts[k]->numel * sizeof(float));
            fwrite(ts[k]->data, sizeof(float), (size_t)ts[k]->numel, f);
        }
    }
    fwrite(&sum, sizeof sum, 1, f);
    if (!gl_atomic_commit(&at)) return snprintf(err, n, "cannot write '%s'", path), false;
    return true;
}

bool gpt_lora_load(gpt *m, const char *path, char *err, size_t n) {
    if (m->device != GL_CPU) return snprintf(err, n, "adapters are read and written on the CPU: move the model there first"), false;
    unsigned char *data;
    size_t len;
    if (!gl_read_whole_file(path, &data, &len, err, n)) return false;
    bool ok = false;
    lora_header h;
    if (len < sizeof h + 8 || memcmp(data, LORA_MAGIC, 8) != 0) {
        snprintf(err, n, "'%s' is not a LoRA adapters file (from `train --lora`)", path);
        goto done;
    }
    uint64_t stored;
    memcpy(&stored, data + len - 8, 8);
    if (gl_fnv1a(GL_FNV_OFFSET, data, len - 8) != stored) {
        snprintf(err, n, "'%s' is damaged or truncated (its checksum does not match)", path);
        goto done;
    }
    memcpy(&h, data, sizeof h);
    h.targets[7] = 0;
    if (h.n_layer != m->cfg.n_layer || h.n_embd != m->cfg.n_embd) {
        snprintf(err, n, "'%s' holds adapters for a model of %d layers x %d dims; this base model has %d x %d", path,
                 h.n_layer, h.n_embd, m->cfg.n_layer, m->cfg.n_embd);
        goto done;
    }
    gpt_lora_config c = {.rank = h.rank, .alpha = h.alpha};
    char spec[64];
    snprintf(spec, sizeof spec, "r=%d,targets=%s", h.rank, h.targets);
    if (!gpt_lora_parse(spec, &c, err, n)) goto done;
    c.alpha = h.alpha;
    if (h.n_adapters != h.n_layer * (int)strlen(c.targets) || strcmp(c.targets, h.targets) != 0) {
        snprintf(err, n, "'%s': %d adapters do not match %d layers x targets '%s'", path, h.n_adapters, h.n_layer, h.targets);
        goto done;
    }
    /* check every record and the size before touching the model */
    size_t at = sizeof h;
    for (int i = 0; i < h.n_adapters; i++) {
        adapter_record r;
        if (at + sizeof r > len - 8) {
            snprintf(err, n, "'%s' ends inside adapter %d", path, i);
            goto done;
        }
        memcpy(&r, data + at, sizeof r);
        int linear, col0, width, in;
        char target = h.targets[i % strlen(h.targets)];
        target_geometry(m, target, &linear, &col0, &width, &in);
        if (r.layer != i / (int)strlen(h.targets) || r.target != target || r.linear != linear || r.col0 != col0 ||
            r.in != in || r.width != width) {
            snprintf(err, n, "'%s': adapter %d (layer %d, target '%c') is %d x %d -> %d columns at %d; this model needs "
                     "%d x %d -> %d at %d", path, i, r.layer, r.target > 31 && r.target < 127 ? r.target : '?', r.in,
                     h.rank, r.width, r.col0, in, h.rank, width, col0);
            goto done;
        }
        at += sizeof r + ((size_t)r.in * h.rank + (size_t)h.rank * r.width) * sizeof(float);
    }
    if (at != len - 8) {
        snprintf(err, n, "'%s' has %s bytes than its adapters need", path, at > len - 8 ? "fewer" : "more");
        goto done;
    }
    /* QLoRA adapters learned against the 4-bit base: quantising this base (deterministic) restores that model */
    if (h.nf4_base && !m->nf4) gpt_quantize_nf4(m);
    make_adapters(m, c);
    at = sizeof h;
    for (int i = 0; i < m->n_adapters; i++) {
        at += sizeof(adapter_record);
        gl_tensor *ts[2] = {m->adapters[i].a, m->adapters[i].b};
        for (int k = 0; k < 2; k++) {
            memcpy(ts[k]->data, data + at, (size_t)ts[k]->numel * sizeof(float));
            at += (size_t)ts[k]->numel * sizeof(float);
        }
    }
    ok = true;
done:
    free(data);
    return ok;
}
