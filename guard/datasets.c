#include "datasets.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gpt.h"
#include "guard.h"
#include "io.h"
#include "json.h"
#include "preference.h"

/* ---- spam ---- */

bool spam_load(const char *path, spam_set *s, char *err, size_t err_len) {
    memset(s, 0, sizeof *s);
    unsigned char *data;
    size_t len;
    if (!gl_read_whole_file(path, &data, &len, err, err_len)) return false;
    int cap = 0, line = 0;
    char *p = (char *)data, *end = p + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) nl = end;
        line++;
        if (line > 1 && nl > p) {
            char *f[5];
            int k = 0;
            f[k++] = p;
            for (char *q = p; q < nl && k < 5; q++)
                if (*q == '\t') *q = 0, f[k++] = q + 1;
            *nl = 0;
            if (k != 5 || strchr(f[4], '\t')) {
                snprintf(err, err_len, "%s:%d: expected 5 TAB-separated fields (label group id split text)", path, line);
                free(data), spam_free(s);
                return false;
            }
            bool spam = !strcmp(f[0], "spam"), test = !strcmp(f[3], "test");
            if ((!spam && strcmp(f[0], "ham")) || (!test && strcmp(f[3], "train"))) {
                snprintf(err, err_len, "%s:%d: label '%s' / split '%s' (expected spam|ham, train|test)", path, line,
                         f[0], f[3]);
                free(data), spam_free(s);
                return false;
            }
            if (s->n == cap) {
                cap = cap ? cap * 2 : 1024;
                s->text = realloc(s->text, (size_t)cap * sizeof *s->text);
                s->len = realloc(s->len, (size_t)cap * sizeof *s->len);
                s->label = realloc(s->label, (size_t)cap * sizeof *s->label);
                s->test = realloc(s->test, (size_t)cap * sizeof *s->test);
            }
            /* \\ \t \n back to their bytes */
            size_t n = strlen(f[4]), o = 0;
            char *t = malloc(n + 1);
            for (size_t i = 0; i < n; i++) {
                if (f[4][i] == '\\' && i + 1 < n) {
                    char c = f[4][++i];
                    t[o++] = c == 'n' ? '\n' : c == 't' ? '\t' : c;
                } else t[o++] = f[4][i];
            }
            t[o] = 0;
            s->text[s->n] = t, s->len[s->n] = o, s->label[s->n] = spam, s->test[s->n] = test;
            s->n++;
        }
        p = nl + 1;
    }
    free(data);
    if (s->n == 0) {
        snprintf(err, err_len, "%s: no mails after the header line", path);
        return false;
    }
    return true;
}

void spam_free(spam_set *s) {
    for (int i = 0; i < s->n; i++) free(s->text[i]);
    free(s->text), free(s->len), free(s->label), free(s->test);
    memset(s, 0, sizeof *s);
}

static double seconds_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double sigmoid(double z) { return 1.0 / (1.0 + exp(-z)); }

/* idf from the training mails, then every mail's vector (x has room for s->n); the features' idf is malloc'd */
static long featurize_mails(const spam_set *s, const int *train, int nt, int bits, tc_features *f, tc_vec *x) {
    *f = (tc_features){bits, NULL};
    const char **texts = malloc((size_t)(nt ? nt : 1) * sizeof *texts);
    size_t *lens = malloc((size_t)(nt ? nt : 1) * sizeof *lens);
    for (int i = 0; i < nt; i++) texts[i] = s->text[train[i]], lens[i] = s->len[train[i]];
    tc_fit_idf(f, texts, lens, nt);
    long nnz = 0;
    for (int i = 0; i < s->n; i++) tc_featurize(f, s->text[i], s->len[i], &x[i]), nnz += x[i].n;
    free(texts), free(lens);
    return nnz;
}

/* F1 on the validation mails of a logistic regression trained on the training ones, at its F1-best threshold */
static double validation_f1(const spam_set *s, const tc_vec *x, int dim, const int *train, int nt, const int *val,
                            int nv) {
    tc_vec *xt = malloc((size_t)nt * sizeof *xt);
    int *yt = malloc((size_t)nt * sizeof *yt), *vy = malloc((size_t)nv * sizeof *vy);
    double *vs = malloc((size_t)nv * sizeof *vs);
    for (int i = 0; i < nt; i++) xt[i] = x[train[i]], yt[i] = s->label[train[i]];
    tc_logreg lr = {0};
    tc_logreg_train(&lr, dim, xt, yt, nt, TC_LOGREG_DEFAULTS);
    for (int i = 0; i < nv; i++) vs[i] = tc_logreg_logit(&lr, &x[val[i]]), vy[i] = s->label[val[i]];
    double f1 = tc_evaluate(vs, vy, nv, tc_best_f1_threshold(vs, vy, nv)).f1;
    tc_logreg_free(&lr);
    free(xt), free(yt), free(vy), free(vs);
    return f1;
}

void spam_experiment(const spam_set *s, bool with_mlp, int bits, spam_run runs[2], spam_split_info *info) {
    int *train = malloc((size_t)s->n * sizeof(int)), *val = malloc((size_t)s->n * sizeof(int)),
        *test = malloc((size_t)s->n * sizeof(int)), nt = 0, nv = 0, ns = 0, k = 0;
    for (int i = 0; i < s->n; i++) {
        if (s->test[i]) test[ns++] = i;
        else if (k++ % 5 == 4) val[nv++] = i; /* every fifth training mail holds the threshold out */
        else train[nt++] = i;
    }
    memset(info, 0, sizeof *info);
    tc_vec *x = malloc((size_t)s->n * sizeof *x);
    tc_features f;
    double t0 = seconds_now();
    if (bits == 0) { /* the table size is a choice made on the validation mails, never on the test ones */
        double best = -1;
        for (int c = 0; c < SPAM_N_BITS; c++) {
            featurize_mails(s, train, nt, SPAM_BITS[c], &f, x);
            info->val_f1[c] = validation_f1(s, x, 1 << SPAM_BITS[c], train, nt, val, nv);
            if (info->val_f1[c] > best) best = info->val_f1[c], bits = SPAM_BITS[c];
            for (int i = 0; i < s->n; i++) tc_vec_free(&x[i]);
            tc_features_free(&f);
        }
        info->bits_chosen = true;
    }
    info->select_s = seconds_now() - t0;
    t0 = seconds_now();
    long nnz = featurize_mails(s, train, nt, bits, &f, x);
    info->n_train = nt, info->n_val = nv, info->n_test = ns, info->bits = bits;
    info->nonzero_per_mail = s->n ? (double)nnz / s->n : 0, info->featurize_s = seconds_now() - t0;
    tc_vec *xt = malloc((size_t)nt * sizeof *xt);
    int *yt = malloc((size_t)nt * sizeof *yt), *vy = malloc((size_t)nv * sizeof *vy), *ty = malloc((size_t)ns * sizeof *ty);
    for (int i = 0; i < nt; i++) xt[i] = x[train[i]], yt[i] = s->label[train[i]];
    for (int i = 0; i < nv; i++) vy[i] = s->label[val[i]];
    for (int i = 0; i < ns; i++) ty[i] = s->label[test[i]];
    double *vs = malloc((size_t)nv * sizeof *vs), *ts = malloc((size_t)ns * sizeof *ts);
    for (int m = 0; m < (with_mlp ? 2 : 1); m++) {
        spam_run *r = &runs[m];
        memset(r, 0, sizeof *r);
        tc_logreg lr = {0};
        tc_mlp mlp = {0};
        t0 = seconds_now();
        if (m) tc_mlp_train(&mlp, 1 << f.bits, xt, yt, nt, TC_MLP_DEFAULTS);
        else tc_logreg_train(&lr, 1 << f.bits, xt, yt, nt, TC_LOGREG_DEFAULTS);
        r->train_s = seconds_now() - t0;
        for (int i = 0; i < nv; i++) vs[i] = sigmoid(m ? tc_mlp_logit(&mlp, &x[val[i]]) : tc_logreg_logit(&lr, &x[val[i]]));
        for (int i = 0; i < ns; i++) ts[i] = sigmoid(m ? tc_mlp_logit(&mlp, &x[test[i]]) : tc_logreg_logit(&lr, &x[test[i]]));
        if (m) tc_mlp_free(&mlp);
        else tc_logreg_free(&lr);
        r->threshold = tc_best_f1_threshold(vs, vy, nv);
        r->test = tc_evaluate(ts, ty, ns, r->threshold);
        r->recall = malloc((size_t)(ns ? ns : 1) * sizeof(float)), r->precision = malloc((size_t)(ns ? ns : 1) * sizeof(float));
        r->n_pr = tc_pr_curve(ts, ty, ns, r->recall, r->precision, &r->ap);
    }
    for (int i = 0; i < s->n; i++) tc_vec_free(&x[i]);
    free(x), free(xt), free(yt), free(vy), free(ty), free(vs), free(ts), free(train), free(val), free(test);
    tc_features_free(&f);
}

/* a mail's first `block` bytes as token ids, padded with spaces in front so that its last byte is the last position */
static void mail_bytes(const spam_set *s, int i, int block, int32_t *out) {
    size_t n = s->len[i] < (size_t)block ? s->len[i] : (size_t)block, pad = (size_t)block - n;
    for (size_t t = 0; t < pad; t++) out[t] = ' ';
    for (size_t t = 0; t < n; t++) out[pad + t] = (unsigned char)s->text[i][t];
}

static void gpt_scores(pref_reward_model *rm, const spam_set *s, const int *rows, int n, int block, double *out) {
    enum { EVAL_BATCH = 32 };
    int32_t *idx = malloc((size_t)EVAL_BATCH * block * sizeof *idx);
    gl_no_grad_begin();
    for (int b = 0; b < n; b += EVAL_BATCH) {
        int k = n - b < EVAL_BATCH ? n - b : EVAL_BATCH;
        for (int i = 0; i < k; i++) mail_bytes(s, rows[b + i], block, idx + (size_t)i * block);
        gl_step_reset();
        gl_tensor *z = pref_reward(rm, idx, k, block);
        for (int i = 0; i < k; i++) out[b + i] = sigmoid(z->data[i]);
    }
    gl_no_grad_end();
    free(idx);
}

void spam_gpt_experiment(const spam_set *s, spam_gpt_config c, spam_run *r, float *loss_curve) {
    memset(r, 0, sizeof *r);
    int *train = malloc((size_t)s->n * sizeof(int)), *val = malloc((size_t)s->n * sizeof(int)),
        *test = malloc((size_t)s->n * sizeof(int)), nt = 0, nv = 0, ns = 0, k = 0;
    for (int i = 0; i < s->n; i++) { /* spam_experiment's split */
        if (s->test[i]) test[ns++] = i;
        else if (k++ % 5 == 4) val[nv++] = i;
        else train[nt++] = i;
    }
    gpt_config cfg = {c.n_layer, c.n_head, c.n_embd, c.block, 256, 256, 0.0f, true, 1e-5f};
    gpt body;
    gpt_build(&body, cfg);
    gpt_init(&body, c.seed);
    pref_reward_model rm;
    pref_reward_init(&rm, body);
    gl_optim *opt = gl_adamw(rm.params, rm.n_params, c.lr, 0.9f, 0.99f, 1e-8f, 0.0f);
    gl_rng rng;
    gl_rng_seed(&rng, c.seed);
    int32_t *idx = malloc((size_t)c.batch * c.block * sizeof *idx);
    float *labels = malloc((size_t)c.batch * sizeof *labels);
    double t0 = seconds_now();
    for (int step = 0; step < c.steps; step++) {
        for (int b = 0; b < c.batch; b++) {
            int i = train[gl_rng_below(&rng, (uint64_t)nt)];
            mail_bytes(s, i, c.block, idx + (size_t)b * c.block);
            labels[b] = (float)s->label[i];
        }
        gl_step_reset();
        gl_tensor *loss = pref_bce_loss(pref_reward(&rm, idx, c.batch, c.block), labels);
        if (loss_curve) loss_curve[step] = loss->data[0];
        gl_backward(loss);
        gl_clip_grad_norm(rm.params, rm.n_params, 1.0f);
        gl_optim_step(opt);
        gl_optim_zero_grad(opt);
    }
    r->train_s = seconds_now() - t0;
    gl_optim_free(opt);
    double *vs = malloc((size_t)nv * sizeof *vs), *ts = malloc((size_t)ns * sizeof *ts);
    int *vy = malloc((size_t)nv * sizeof *vy), *ty = malloc((size_t)ns * sizeof *ty);
    for (int i = 0; i < nv; i++) vy[i] = s->label[val[i]];
    for (int i = 0; i < ns; i++) ty[i] = s->label[test[i]];
    gpt_scores(&rm, s, val, nv, c.block, vs);
    gpt_scores(&rm, s, test, ns, c.block, ts);
    r->threshold = tc_best_f1_threshold(vs, vy, nv);
    r->test = tc_evaluate(ts, ty, ns, r->threshold);
    r->recall = malloc((size_t)(ns ? ns : 1) * sizeof(float)), r->precision = malloc((size_t)(ns ? ns : 1) * sizeof(float));
    r->n_pr = tc_pr_curve(ts, ty, ns, r->recall, r->precision, &r->ap);
    pref_reward_free(&rm);
    free(idx), free(labels), free(vs), free(ts), free(vy), free(ty), free(train), free(val), free(test);
}

void spam_run_free(spam_run *r) {
    free(r->recall), free(r->precision);
    memset(r, 0, sizeof *r);
}

/* ---- injection rows ---- */

static inj_row *add_row(inj_set *s) {
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 256;
        s->rows = realloc(s->rows, (size_t)s->cap * sizeof *s->rows);
    }
    inj_row *r = &s->rows[s->n++];
    memset(r, 0, sizeof *r);
    return r;
}

static const char *str_member(const gl_json *o, const char *key) {
    const gl_json *v = gl_json_get(o, key);
    return v && v->type == GL_JSON_STRING ? v->string : NULL;
}

/* text with every {canary} replaced */
static char *with_canary(const char *t) {
    const char *mark = "{canary}";
    size_t n = strlen(t), extra = 0;
    for (const char *p = strstr(t, mark); p; p = strstr(p + 8, mark)) extra += strlen(INJ_CANARY);
    char *out = malloc(n + extra + 1), *o = out;
    for (const char *p = t; *p;) {
        if (!strncmp(p, mark, 8)) {
            memcpy(o, INJ_CANARY, strlen(INJ_CANARY)), o += strlen(INJ_CANARY), p += 8;
        } else *o++ = *p++;
    }
    *o = 0;
    return out;
}

/* Calls row(object, ctx) for each non-blank line of a JSON-lines file; a line that is not JSON, or that row refuses
 * (it writes what it expected into why), stops the reading with "FILE:LINE: reason" */
typedef const char *(*jsonl_row)(const gl_json *o, void *ctx);
static bool read_jsonl(const char *path, jsonl_row row, void *ctx, char *err, size_t err_len) {
    unsigned char *data;
    size_t len;
    if (!gl_read_whole_file(path, &data, &len, err, err_len)) return false;
    int line = 0;
    for (char *p = (char *)data, *end = p + len; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) nl = end;
        line++;
        if (nl > p) {
            char jerr[200];
            gl_json *o = gl_json_parse(p, (size_t)(nl - p), jerr, sizeof jerr);
            const char *why = o ? row(o, ctx) : jerr;
            gl_json_free(o);
            if (why) {
                snprintf(err, err_len, "%s:%d: %s", path, line, why);
                free(data);
                return false;
            }
        }
        p = nl + 1;
    }
    free(data);
    return true;
}

static const char *bastion_row(const gl_json *o, void *ctx) {
    const char *id = str_member(o, "id"), *text = str_member(o, "text"), *label = str_member(o, "label"),
               *channel = str_member(o, "channel");
    if (!id || !text || !label || !channel || (strcmp(label, "malicious") && strcmp(label, "benign")))
        return "expected string members id, text, channel and label (malicious|benign)";
    const char *intent = str_member(o, "intent"), *cat = str_member(o, "category"), *lang = str_member(o, "lang");
    inj_row *r = add_row(ctx);
    r->id = strdup(id), r->text = with_canary(text), r->channel = strdup(channel);
    r->category = strdup(cat ? cat : ""), r->lang = strdup(lang ? lang : "");
    r->group = strdup(intent && *intent ? intent : id);
    r->malicious = !strcmp(label, "malicious");
    return NULL;
}

bool inj_load_bastion(const char *path, inj_set *s, char *err, size_t err_len) {
    return read_jsonl(path, bastion_row, s, err, err_len);
}

static bool eligible(const store *st, int c) {
    const store_chunk *ch = &st->chunks[c];
    size_t n = strlen(ch->text);
    return n >= 200 && n <= 1500 && !strstr(st->pages[ch->page].path, "release-notes");
}

/* the eligible chunks of pages with index parity `parity`, every step-th of them, at most n */
static int pick_chunks(const store *st, int parity, int n, int *out) {
    int total = 0;
    for (int c = 0; c < st->n_chunks; c++) total += eligible(st, c) && st->chunks[c].page % 2 == parity;
    int step = n > 0 && total > n ? total / n : 1, k = 0, seen = 0;
    for (int c = 0; c < st->n_chunks && k < n; c++)
        if (eligible(st, c) && st->chunks[c].page % 2 == parity && seen++ % step == 0) out[k++] = c;
    return k;
}

int inj_add_documents(inj_set *s, const store *st, int n_docs) {
    int *ids = malloc((size_t)(n_docs > 0 ? n_docs : 1) * sizeof *ids), k = pick_chunks(st, 0, n_docs, ids);
    for (int i = 0; i < k; i++) {
        const store_chunk *ch = &st->chunks[ids[i]];
        inj_row *r = add_row(s);
        char id[64];
        snprintf(id, sizeof id, "doc-%03d", i);
        r->id = strdup(id), r->channel = strdup("document"), r->lang = strdup("en");
        r->malicious = i % 2 == 0;
        int plant = (i / 2) % GUARD_N_PLANTS;
        r->text = r->malicious ? guard_plant(ch->text, plant, ((i * 37) % 100) / 100.0) : strdup(ch->text);
        r->category = strdup(r->malicious ? "planted" : "benign_document");
        char group[64]; /* one template's plants share a fold: a template seen in training is not a test */
        if (r->malicious) snprintf(group, sizeof group, "plant-%d", plant);
        else snprintf(group, sizeof group, "page-%d", ch->page);
        r->group = strdup(group);
    }
    free(ids);
    return k;
}

const int SPAM_BITS[SPAM_N_BITS] = {12, 14, 16, 18};

const char *const INJ_CHANNELS[INJ_N_CHANNELS] = {"user_input", "tool_output", "memory", "document", "question"};

static int channel_of(const char *c) {
    for (int i = 0; i < INJ_N_CHANNELS; i++)
        if (!strcmp(c, INJ_CHANNELS[i])) return i;
    return 0;
}

void inj_tally_blocks(const inj_set *s, const bool *blocked, const bool *counted, inj_tally per[INJ_N_CHANNELS],
                      inj_tally *all) {
    memset(per, 0, INJ_N_CHANNELS * sizeof *per);
    memset(all, 0, sizeof *all);
    for (int i = 0; i < s->n; i++) {
        if (counted && !counted[i]) continue;
        const inj_row *r = &s->rows[i];
        int c = channel_of(r->channel);
        if (r->malicious) per[c].mal++, per[c].mal_blocked += blocked[i], all->mal++, all->mal_blocked += blocked[i];
        else {
            per[c].ben++, per[c].ben_blocked += blocked[i];
            if (c != INJ_N_CHANNELS - 1) all->ben++, all->ben_blocked += blocked[i];
        }
    }
}

int inj_benign_chunks(const store *st, int n, const char **out) {
    int *ids = malloc((size_t)(n > 0 ? n : 1) * sizeof *ids), k = pick_chunks(st, 1, n, ids);
    for (int i = 0; i < k; i++) out[i] = st->chunks[ids[i]].text;
    free(ids);
    return k;
}

static const char *question_row(const gl_json *o, void *ctx) {
    const char *id = str_member(o, "id"), *q = str_member(o, "question");
    if (!id || !q) return "expected string members id and question";
    inj_row *r = add_row(ctx);
    r->id = strdup(id), r->text = strdup(q), r->channel = strdup("question"), r->category = strdup("fastapi");
    r->lang = strdup("en"), r->group = strdup(id), r->eval_only = true;
    return NULL;
}

bool inj_add_questions(inj_set *s, const char *gold_path, char *err, size_t err_len) {
    return read_jsonl(gold_path, question_row, s, err, err_len);
}

void inj_free(inj_set *s) {
    for (int i = 0; i < s->n; i++) {
        inj_row *r = &s->rows[i];
        free(r->id), free(r->text), free(r->channel), free(r->category), free(r->lang), free(r->group);
    }
    free(s->rows);
    memset(s, 0, sizeof *s);
}

/* ---- the classifier ---- */

static const tc_train_config INJ_TRAIN = {0.5f, 1e-6f, 20, 7, 0};
enum { INJ_BITS = 18 };

/* trains on the trainable rows whose fold is not `leave_out` (-1: all) plus the extras */
static void train_on(const inj_set *s, const int *fold, int leave_out, const char *const *extra, int n_extra,
                     tc_classifier *c) {
    int n = 0;
    const char **texts = malloc((size_t)(s->n + n_extra) * sizeof *texts);
    size_t *lens = malloc((size_t)(s->n + n_extra) * sizeof *lens);
    int *y = malloc((size_t)(s->n + n_extra) * sizeof *y);
    for (int i = 0; i < s->n; i++)
        if (!s->rows[i].eval_only && fold[i] != leave_out)
            texts[n] = s->rows[i].text, lens[n] = strlen(texts[n]), y[n++] = s->rows[i].malicious;
    for (int i = 0; i < n_extra; i++) texts[n] = extra[i], lens[n] = strlen(extra[i]), y[n++] = 0;
    memset(c, 0, sizeof *c);
    c->features.bits = INJ_BITS;
    tc_fit_idf(&c->features, texts, lens, n);
    tc_vec *x = malloc((size_t)n * sizeof *x);
    for (int i = 0; i < n; i++) tc_featurize(&c->features, texts[i], lens[i], &x[i]);
    tc_logreg_train(&c->model, 1 << INJ_BITS, x, y, n, INJ_TRAIN);
    c->threshold = 0.5f;
    for (int i = 0; i < n; i++) tc_vec_free(&x[i]);
    free(x), free(texts), free(lens), free(y);
}

static int *folds_of(const inj_set *s, int folds) {
    int *f = malloc((size_t)(s->n ? s->n : 1) * sizeof *f);
    for (int i = 0; i < s->n; i++)
        f[i] = s->rows[i].eval_only ? -2
                                    : (int)(gl_fnv1a(GL_FNV_OFFSET, s->rows[i].group, strlen(s->rows[i].group)) % (uint64_t)folds);
    return f;
}

void inj_cross_validate(const inj_set *s, const char *const *extra_benign, int n_extra, int folds, double *prob) {
    int *fold = folds_of(s, folds);
    for (int k = -1; k < folds; k++) {
        tc_classifier c;
        train_on(s, fold, k, extra_benign, n_extra, &c);
        for (int i = 0; i < s->n; i++)
            if (fold[i] == k || (k == -1 && s->rows[i].eval_only))
                prob[i] = tc_classifier_prob(&c, s->rows[i].text, strlen(s->rows[i].text));
        tc_classifier_free(&c);
    }
    free(fold);
}

void inj_train_classifier(const inj_set *s, const char *const *extra_benign, int n_extra, tc_classifier *c) {
    int *fold = folds_of(s, 5);
    train_on(s, fold, -1, extra_benign, n_extra, c);
    free(fold);
}
