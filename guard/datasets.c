#include "datasets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guard.h"
#include "io.h"
#include "json.h"

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
