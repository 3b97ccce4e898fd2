/* Checkpoint reading and writing (layout in docs/formats.md). */
#include "gpt_io.h"

#include <limits.h>
#include <math.h>

#include "io.h"
#include "json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CKPT_MAGIC "GLCKPT\0\0"
#define CKPT_VERSION 2u

uint64_t gl_fnv1a(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

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
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return snprintf(err, err_len, "cannot create '%s': %s", tmp, strerror(errno)), false;
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
    w.ok = w.ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    w.ok = (fclose(f) == 0) && w.ok;
    if (!w.ok) {
        remove(tmp);
        return snprintf(err, err_len, "could not write '%s' (disk full?)", tmp), false;
    }
    if (rename(tmp, path) != 0) {
        remove(tmp);
        return snprintf(err, err_len, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno)), false;
    }
    return true;
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
    if (s->n_symbols < 0 || (s->n_symbols != c.vocab_size && s->n_symbols != 0)) {
        snprintf(err, err_len, "'%s' has %d vocabulary symbols for a vocab_size of %d", path, s->n_symbols, c.vocab_size);
        goto done;
    }
    if (r.len - r.pos < (size_t)s->n_symbols * 4 + 8) {
        snprintf(err, err_len, "'%s' ends inside its vocabulary", path);
        goto done;
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
    gpt_build(m, c);
    if (n_weights != m->n_weights || n_opt < 0 || (n_opt != 0 && n_opt != 2 * n_weights)) {
        snprintf(err, err_len, "'%s' stores %lld weights and %lld optimizer floats; its config needs %lld and %lld",
                 path, (long long)n_weights, (long long)n_opt, (long long)m->n_weights, (long long)(2 * m->n_weights));
        gpt_free(m);
        goto done;
    }
    size_t need = (size_t)s->n_symbols * 4 + 8 + (size_t)s->bpe_len + (size_t)(n_weights + n_opt) * 4;
    if (r.len - r.pos != need) {
        snprintf(err, err_len, "'%s' has %zu payload bytes where its header promises %zu", path, r.len - r.pos, need);
        gpt_free(m);
        goto done;
    }
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
    gl_json *hdr = NULL;
    bool built = false;
    ok = false;
    uint64_t hlen = 0;
    if (len < 8) {
        snprintf(err, err_len, "'%s' is too short to be a safetensors file (%zu bytes)", weights_path, len);
        goto done;
    }
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | buf[i]; /* little-endian u64 */
    if (hlen > len - 8 || hlen > 100u << 20) {
        snprintf(err, err_len, "'%s': header length %llu does not fit in the file (%zu bytes)", weights_path,
                 (unsigned long long)hlen, len);
        goto done;
    }
    hdr = gl_json_parse((const char *)buf + 8, (size_t)hlen, jerr, sizeof jerr);
    if (!hdr || hdr->type != GL_JSON_OBJECT) {
        snprintf(err, err_len, "'%s': the header is not a JSON object (%s)", weights_path, hdr ? "wrong type" : jerr);
        goto done;
    }
    const unsigned char *data = buf + 8 + hlen;
    size_t data_len = len - 8 - (size_t)hlen;
    gpt_build(m, c);
    built = true;
    bool *seen = calloc((size_t)m->n_params, sizeof *seen);
    for (size_t i = 0; i < hdr->count; i++) {
        const char *name = hdr->keys[i];
        const gl_json *t = &hdr->items[i];
        if (!strcmp(name, "__metadata__")) continue;
        const char *ours = strncmp(name, "transformer.", 12) == 0 ? name + 12 : name;
        const gl_json *dtype = gl_json_get(t, "dtype"), *shape = gl_json_get(t, "shape"),
                      *offs = gl_json_get(t, "data_offsets");
        if (!dtype || dtype->type != GL_JSON_STRING || !shape || shape->type != GL_JSON_ARRAY || !offs ||
            offs->type != GL_JSON_ARRAY || offs->count != 2 || offs->items[0].type != GL_JSON_NUMBER ||
            offs->items[1].type != GL_JSON_NUMBER) {
            snprintf(err, err_len, "'%s': tensor '%s' lacks dtype, shape or data_offsets", weights_path, name);
            goto fail_seen;
        }
        double b0 = offs->items[0].number, b1 = offs->items[1].number;
        if (!(b0 >= 0 && b1 >= b0 && b1 <= (double)data_len)) {
            snprintf(err, err_len, "'%s': tensor '%s' has data_offsets [%.0f, %.0f] outside the %zu data bytes",
                     weights_path, name, b0, b1, data_len);
            goto fail_seen;
        }
        if (ignorable(ours)) continue;
        gl_tensor *p = gpt_param(m, ours);
        if (!p) {
            snprintf(err, err_len, "'%s': tensor '%s' is not part of a GPT-2 with this config", weights_path, name);
            goto fail_seen;
        }
        if (strcmp(dtype->string, "F32") != 0) {
            snprintf(err, err_len, "'%s': tensor '%s' has dtype %s; only F32 is supported", weights_path, name,
                     dtype->string);
            goto fail_seen;
        }
        /* the file's wte has vocab_size rows; ours has padded_vocab_size, the extra rows stay 0 */
        int rows = p == m->wte ? c.vocab_size : p->shape[0];
        bool shape_ok = (int)shape->count == p->ndim;
        for (int d = 0; shape_ok && d < p->ndim; d++)
            shape_ok = shape->items[d].type == GL_JSON_NUMBER &&
                       shape->items[d].number == (double)(d == 0 ? rows : p->shape[d]);
        size_t numel = (size_t)rows * (size_t)(p->numel / p->shape[0]);
        if (!shape_ok || (size_t)(b1 - b0) != numel * 4) {
            snprintf(err, err_len, "'%s': tensor '%s' has the wrong shape or size for n_embd %d, n_layer %d (expected %zu floats)",
                     weights_path, name, c.n_embd, c.n_layer, numel);
            goto fail_seen;
        }
        int idx;
        for (idx = 0; idx < m->n_params && m->params[idx] != p; idx++) {}
        if (seen[idx]) {
            snprintf(err, err_len, "'%s': tensor '%s' appears twice", weights_path, name);
            goto fail_seen;
        }
        seen[idx] = true;
        memcpy(p->data, data + (size_t)b0, numel * 4);
    }
    for (int i = 0; i < m->n_params; i++)
        if (!seen[i]) {
            snprintf(err, err_len, "'%s' lacks tensor '%s'", weights_path, m->params[i]->name);
            goto fail_seen;
        }
    ok = true;
fail_seen:
    free(seen);
done:
    if (!ok && built) gpt_free(m);
    gl_json_free(hdr);
    free(buf);
    return ok;
}
