/* Checkpoint reading and writing (layout in docs/formats.md). */
#include "gpt_io.h"

#include <limits.h>
#include <math.h>

#include "io.h"
#include "json.h"
#include "safetensors.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CKPT_MAGIC "GLCKPT\0\0"
#define CKPT_VERSION 2u

/* ---- writing: every byte goes through put(), which also hashes it ---- */

typedef struct {
    FILE *f;
    uint64_t hash;
    bool ok;
} writer;

static void put(writer *w, const void *p, size_t n) {
    if (!w->ok || n == 0) return;
    w->hash = gl_fnv1a(w->hash, p, n);
    w->ok = fwrite(p, 1, n, w->f) == n;
}
#define PUT(w, v) put(w, &(v), sizeof(v))

bool gpt_save_checkpoint(const char *path, const gpt *m, const gl_optim *opt, const gpt_run_state *s, char *err,
                         size_t err_len) {
    if (m->device != GL_CPU || (opt && opt->device != GL_CPU))
        return snprintf(err, err_len, "checkpoints are written from the CPU: move the model and optimizer there first"),
               false;
    if (m->nf4 || m->n_adapters)
        return snprintf(err, err_len, "a model with %s is saved as its adapters (gpt_lora_save), or merged first",
                        m->nf4 ? "a 4-bit base" : "adapters"), false;
    gl_atomic file;
    FILE *f = gl_atomic_open(&file, path);
    if (!f) return snprintf(err, err_len, "cannot create a temporary beside '%s': %s", path, strerror(errno)), false;
    writer w = {f, GL_FNV_OFFSET, true};
    const gpt_config *c = &m->cfg;
    uint32_t version = CKPT_VERSION, reserved = 0;
    int32_t cfg[8] = {c->n_layer, c->n_head, c->n_embd, c->block_size, c->vocab_size, c->padded_vocab_size, c->bias, 0};
    put(&w, CKPT_MAGIC, 8);
    PUT(&w, version);
    PUT(&w, reserved);
    put(&w, cfg, sizeof cfg);
    PUT(&w, c->dropout);
    PUT(&w, c->ln_eps);
    PUT(&w, s->step);
    PUT(&w, s->seed);
    put(&w, s->rng.s, sizeof s->rng.s);
    float hyper[8] = {s->lr, s->min_lr, s->beta1, s->beta2, s->eps, s->weight_decay, s->grad_clip, s->val_fraction};
    put(&w, hyper, sizeof hyper);
    PUT(&w, s->warmup_steps);
    PUT(&w, s->decay_steps);
    PUT(&w, s->total_steps);
    PUT(&w, s->batch);
    PUT(&w, s->n_symbols);
    PUT(&w, s->data_hash);
    int64_t n_weights = m->n_weights, opt_floats = opt ? opt->state_floats : 0, opt_step = opt ? opt->step : 0;
    PUT(&w, n_weights);
    PUT(&w, opt_floats);
    PUT(&w, opt_step);
    put(&w, s->symbols, (size_t)s->n_symbols * sizeof(uint32_t));
    PUT(&w, s->bpe_len);
    if (s->bpe_len) put(&w, s->bpe, (size_t)s->bpe_len);
    for (int i = 0; i < m->n_params; i++) put(&w, m->params[i]->data, (size_t)m->params[i]->numel * sizeof(float));
    if (opt) put(&w, opt->state, (size_t)opt_floats * sizeof(float));
    uint64_t checksum = w.hash;
    w.ok = w.ok && fwrite(&checksum, sizeof checksum, 1, f) == 1;
    if (w.ok && gl_atomic_commit(&file)) return true;
    int e = file.err ? file.err : errno;
    gl_atomic_abort(&file);
    return snprintf(err, err_len, "could not write '%s' (the previous file, if any, is kept): %s", path,
                    strerror(e ? e : EIO)), false;
}

/* ---- reading: the whole file in memory, checksum first, then a bounds-checked cursor ---- */

typedef struct {
    const unsigned char *p;
    size_t len, pos;
} reader;

static bool take(reader *r, void *dst, size_t n) {
    if (r->len - r->pos < n) return false;
    memcpy(dst, r->p + r->pos, n);
    r->pos += n;
    return true;
}
#define TAKE(r, v) take(r, &(v), sizeof(v))

bool gpt_run_state_check(const gpt_run_state *s, char *err, size_t err_len) {
    const struct {
        const char *name;
        double v, lo, hi;
    } f[] = {{"lr", s->lr, 0, 10},
             {"min_lr", s->min_lr, 0, 10},
             {"beta1", s->beta1, 0, 0.999999},
             {"beta2", s->beta2, 0, 0.999999},
             {"eps", s->eps, 0, 1},
             {"weight_decay", s->weight_decay, 0, 10},
             {"grad_clip", s->grad_clip, 0, 1e9},
             {"val_fraction", s->val_fraction, 0.001, 0.5},
             {"batch", s->batch, 1, 1 << 20},
             {"warmup_steps", (double)s->warmup_steps, 0, 2e9},
             {"decay_steps", (double)s->decay_steps, 0, 2e9},
             {"total_steps", (double)s->total_steps, 0, 2e9},
             {"step", (double)s->step, 0, (double)s->total_steps}};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (!(f[i].v >= f[i].lo && f[i].v <= f[i].hi))
            return snprintf(err, err_len, "%s %g is outside [%g, %g]", f[i].name, f[i].v, f[i].lo, f[i].hi), false;
    return true;
}

bool gpt_load_checkpoint(const char *path, gpt *m, gpt_run_state *s, float **opt_state, int64_t *opt_floats,
                         int64_t *opt_step, char *err, size_t err_len) {
    unsigned char *buf;
    size_t len;
    if (!gl_read_whole_file(path, &buf, &len, err, err_len)) return false;
    memset(s, 0, sizeof *s);
    bool ok = false;
    reader r = {buf, len, 0};
    char magic[8];
    uint32_t version = 0, reserved = 0;
    int32_t cfg[8];
    float dropout, ln_eps, hyper[8];
    int64_t n_weights, n_opt, step_opt;
    if (len < 8 + 8 || !take(&r, magic, 8) || memcmp(magic, CKPT_MAGIC, 8) != 0) {
        snprintf(err, err_len, "'%s' is not a gradlab checkpoint (bad magic bytes)", path);
        goto done;
    }
    uint64_t stored;
    memcpy(&stored, buf + len - 8, 8);
    if (gl_fnv1a(GL_FNV_OFFSET, buf, len - 8) != stored) {
        snprintf(err, err_len, "'%s' is corrupt or truncated (checksum mismatch over %zu bytes)", path, len);
        goto done;
    }
    r.len = len - 8;
    if (!TAKE(&r, version) || !TAKE(&r, reserved) || version != CKPT_VERSION) {
        snprintf(err, err_len, "'%s' has checkpoint version %u; this build reads version %u", path, version,
                 CKPT_VERSION);
        goto done;
    }
    if (!take(&r, cfg, sizeof cfg) || !TAKE(&r, dropout) || !TAKE(&r, ln_eps) || !TAKE(&r, s->step) ||
        !TAKE(&r, s->seed) || !take(&r, s->rng.s, sizeof s->rng.s) || !take(&r, hyper, sizeof hyper) ||
        !TAKE(&r, s->warmup_steps) || !TAKE(&r, s->decay_steps) || !TAKE(&r, s->total_steps) || !TAKE(&r, s->batch) || !TAKE(&r, s->n_symbols) ||
        !TAKE(&r, s->data_hash) || !TAKE(&r, n_weights) || !TAKE(&r, n_opt) || !TAKE(&r, step_opt)) {
        snprintf(err, err_len, "'%s' ends inside its header", path);
        goto done;
    }
    gpt_config c = {.n_layer = cfg[0], .n_head = cfg[1], .n_embd = cfg[2], .block_size = cfg[3],
                    .vocab_size = cfg[4], .padded_vocab_size = cfg[5], .bias = cfg[6] != 0, .dropout = dropout,
                    .ln_eps = ln_eps};
    char why[200];
    if (!gpt_config_check(&c, why, sizeof why)) {
        snprintf(err, err_len, "'%s' holds an invalid model config: %s", path, why);
        goto done;
    }
    s->lr = hyper[0], s->min_lr = hyper[1], s->beta1 = hyper[2], s->beta2 = hyper[3], s->eps = hyper[4];
    s->weight_decay = hyper[5], s->grad_clip = hyper[6], s->val_fraction = hyper[7];
    /* the checksum proves the bytes are the ones written, not that a writer wrote sense: every field is checked */
    if (!gpt_run_state_check(s, why, sizeof why)) {
        snprintf(err, err_len, "'%s' holds an invalid run state: %s", path, why);
        goto done;
    }
    if (s->n_symbols < 0 || (s->n_symbols != c.vocab_size && s->n_symbols != 0)) {
        snprintf(err, err_len, "'%s' has %d vocabulary symbols for a vocab_size of %d", path, s->n_symbols, c.vocab_size);
        goto done;
    }
    if (r.len - r.pos < (size_t)s->n_symbols * 4 + 8) {
        snprintf(err, err_len, "'%s' ends inside its vocabulary", path);
        goto done;
    }
    for (int i = 0; i < s->n_symbols; i++) {
        uint32_t cp;
        memcpy(&cp, r.p + r.pos + (size_t)i * 4, 4);
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            snprintf(err, err_len, "'%s': vocabulary symbol %d is U+%X, not a Unicode scalar value", path, i, cp);
            goto done;
        }
    }
    memcpy(&s->bpe_len, r.p + r.pos + (size_t)s->n_symbols * 4, 8);
    if ((s->n_symbols == 0) != (s->bpe_len > 0) || s->bpe_len > r.len - r.pos) {
        snprintf(err, err_len, "'%s' holds neither exactly one character vocabulary nor one BPE tokenizer", path);
        goto done;
    }
    if (s->bpe_len) { /* the tokenizer must cover the vocabulary exactly: a smaller one decodes ids it lacks */
        uint32_t n_tokens = 0;
        if (s->bpe_len >= 24 && r.len - r.pos >= 8 + 24) memcpy(&n_tokens, r.p + r.pos + 8 + 12, 4);
        if (n_tokens != (uint32_t)c.vocab_size) {
            snprintf(err, err_len, "'%s': its BPE tokenizer has %u tokens but the model's vocabulary is %d", path,
                     n_tokens, c.vocab_size);
            goto done;
        }
    }
    /* sizes against the config and the file before anything is allocated: a small file cannot demand terabytes */
    int64_t expect_weights = gpt_config_weights(&c);
    if (n_weights != expect_weights || n_opt < 0 || (n_opt != 0 && n_opt != 2 * n_weights) || step_opt < 0 ||
        step_opt > s->step) {
        snprintf(err, err_len,
                 "'%s' stores %lld weights and %lld optimizer floats after %lld optimizer steps; its config needs %lld "
                 "weights and %lld or 0 optimizer floats, at most %lld steps",
                 path, (long long)n_weights, (long long)n_opt, (long long)step_opt, (long long)expect_weights,
                 (long long)(2 * expect_weights), (long long)s->step);
        goto done;
    }
    size_t need = (size_t)s->n_symbols * 4 + 8 + (size_t)s->bpe_len + (size_t)(n_weights + n_opt) * 4;
    if (r.len - r.pos != need) {
        snprintf(err, err_len, "'%s' has %zu payload bytes where its header promises %zu", path, r.len - r.pos, need);
        goto done;
    }
    gpt_build(m, c);
    s->symbols = malloc((size_t)(s->n_symbols ? s->n_symbols : 1) * sizeof(uint32_t));
    take(&r, s->symbols, (size_t)s->n_symbols * sizeof(uint32_t));
    r.pos += 8;
    s->bpe = malloc((size_t)s->bpe_len + 1);
    take(&r, s->bpe, (size_t)s->bpe_len);
    for (int i = 0; i < m->n_params; i++) take(&r, m->params[i]->data, (size_t)m->params[i]->numel * sizeof(float));
    if (opt_state) {
        *opt_state = malloc((size_t)(n_opt ? n_opt : 1) * sizeof(float));
        take(&r, *opt_state, (size_t)n_opt * sizeof(float));
        *opt_floats = n_opt;
        *opt_step = step_opt;
    }
    ok = true;
done:
    free(buf);
    return ok;
}

/* ---- Hugging Face safetensors + config.json ---- */

static bool config_int(const gl_json *cfg, const char *key, const char *alt, int *out, char *err, size_t err_len,
                       const char *path) {
    const gl_json *v = gl_json_get(cfg, key);
    if (!v && alt) v = gl_json_get(cfg, alt);
    /* the range first: casting 1e300 to int is undefined behaviour */
    if (!v || v->type != GL_JSON_NUMBER || !(v->number >= 1 && v->number <= INT_MAX) || v->number != floor(v->number))
        return snprintf(err, err_len, "'%s' lacks a positive integer \"%s\"", path, key), false;
    *out = (int)v->number;
    return true;
}

/* names that GPT-2 files carry besides the parameters: attention-mask buffers and the tied output head */
static bool ignorable(const char *name) {
    size_t n = strlen(name);
    return (n > 10 && !strcmp(name + n - 10, ".attn.bias")) || (n > 17 && !strcmp(name + n - 17, ".attn.masked_bias")) ||
           !strcmp(name, "lm_head.weight");
}

bool gpt_load_safetensors(const char *weights_path, const char *config_path, gpt *m, char *err, size_t err_len) {
    unsigned char *cbuf, *buf = NULL;
    size_t clen, len;
    if (!gl_read_whole_file(config_path, &cbuf, &clen, err, err_len)) return false;
    char jerr[200];
    gl_json *cfg = gl_json_parse((const char *)cbuf, clen, jerr, sizeof jerr);
    free(cbuf);
    if (!cfg || cfg->type != GL_JSON_OBJECT) {
        snprintf(err, err_len, "'%s' is not a JSON object: %s", config_path, cfg ? "wrong type" : jerr);
        gl_json_free(cfg);
        return false;
    }
    gpt_config c = {.bias = true, .dropout = 0.0f, .ln_eps = 1e-5f};
    bool ok = config_int(cfg, "n_layer", NULL, &c.n_layer, err, err_len, config_path) &&
              config_int(cfg, "n_head", NULL, &c.n_head, err, err_len, config_path) &&
              config_int(cfg, "n_embd", NULL, &c.n_embd, err, err_len, config_path) &&
              config_int(cfg, "n_positions", "n_ctx", &c.block_size, err, err_len, config_path) &&
              config_int(cfg, "vocab_size", NULL, &c.vocab_size, err, err_len, config_path);
    const gl_json *eps = gl_json_get(cfg, "layer_norm_epsilon");
    if (eps && eps->type == GL_JSON_NUMBER) c.ln_eps = fabs(eps->number) < 1 ? (float)eps->number : 1.0f; /* 1: refused below */
    gl_json_free(cfg);
    if (!ok) return false;
    c.padded_vocab_size = gpt_padded_vocab(c.vocab_size);
    char why[200];
    if (!gpt_config_check(&c, why, sizeof why))
        return snprintf(err, err_len, "'%s' describes an invalid model: %s", config_path, why), false;

    if (!gl_read_whole_file(weights_path, &buf, &len, err, err_len)) return false;
    gl_safetensors st;
    bool built = false, *seen = NULL;
    ok = false;
    if (!gl_safetensors_parse(buf, len, weights_path, &st, err, err_len)) goto done;
    /* the file must be able to hold the model before the model is built: a small file cannot demand terabytes */
    int64_t needed = gpt_config_weights(&c) - (int64_t)(c.padded_vocab_size - c.vocab_size) * c.n_embd;
    if ((uint64_t)needed > st.data_len / 4) {
        snprintf(err, err_len, "'%s' holds %zu data bytes; the model of '%s' needs %lld floats (%.3g GB)", weights_path,
                 st.data_len, config_path, (long long)needed, needed * 4e-9);
        goto done;
    }
    gpt_build(m, c);
    built = true;
    seen = calloc((size_t)m->n_params, sizeof *seen);
    for (int i = 0; i < st.n; i++) {
        const gl_st_tensor *t = &st.tensors[i];
        const char *name = t->name;
        const char *ours = strncmp(name, "transformer.", 12) == 0 ? name + 12 : name;
        if (ignorable(ours)) continue;
        gl_tensor *p = gpt_param(m, ours);
        if (!p) {
            snprintf(err, err_len, "'%s': tensor '%s' is not part of a GPT-2 with this config", weights_path, name);
            goto done;
        }
        if (strcmp(t->dtype, "F32") != 0) {
            snprintf(err, err_len, "'%s': tensor '%s' has dtype %s; only F32 is supported", weights_path, name, t->dtype);
            goto done;
        }
        /* the file's wte has vocab_size rows; ours has padded_vocab_size, the extra rows stay 0 */
        int rows = p == m->wte ? c.vocab_size : p->shape[0];
        bool shape_ok = t->ndim == p->ndim;
        for (int d = 0; shape_ok && d < p->ndim; d++) shape_ok = t->shape[d] == (d == 0 ? rows : p->shape[d]);
        size_t numel = (size_t)rows * (size_t)(p->numel / p->shape[0]);
        if (!shape_ok) {
            snprintf(err, err_len, "'%s': tensor '%s' has the wrong shape for n_embd %d, n_layer %d (expected %zu floats)",
                     weights_path, name, c.n_embd, c.n_layer, numel);
            goto done;
        }
        int idx;
        for (idx = 0; idx < m->n_params && m->params[idx] != p; idx++) {}
        if (seen[idx]) { /* "wte.weight" and "transformer.wte.weight" */
            snprintf(err, err_len, "'%s': tensor '%s' appears twice", weights_path, ours);
            goto done;
        }
        seen[idx] = true;
        memcpy(p->data, t->data, numel * 4);
    }
    for (int i = 0; i < m->n_params; i++)
        if (!seen[i]) {
            snprintf(err, err_len, "'%s' lacks tensor '%s'", weights_path, m->params[i]->name);
            goto done;
        }
    ok = true;
done:
    free(seen);
    if (!ok && built) gpt_free(m);
    gl_safetensors_free(&st);
    free(buf);
    return ok;
}
