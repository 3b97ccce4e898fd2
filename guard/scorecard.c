#include "scorecard.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"
#include "json.h"

static int find(const scorecard *s, const char *name) {
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->name[i], name)) return i;
    return -1;
}

void sc_set(scorecard *s, const char *name, double value) {
    int i = find(s, name);
    if (i < 0) {
        if (s->n == s->cap) {
            s->cap = s->cap ? 2 * s->cap : 32;
            s->name = realloc(s->name, (size_t)s->cap * sizeof *s->name);
            s->value = realloc(s->value, (size_t)s->cap * sizeof *s->value);
        }
        i = s->n++;
        s->name[i] = strdup(name);
    }
    s->value[i] = value;
}

bool sc_get(const scorecard *s, const char *name, double *value) {
    int i = find(s, name);
    if (i >= 0) *value = s->value[i];
    return i >= 0;
}

void sc_skip(scorecard *s, const char *suite, const char *reason) {
    s->skipped = realloc(s->skipped, (size_t)(s->n_skipped + 1) * sizeof *s->skipped);
    s->skip_reason = realloc(s->skip_reason, (size_t)(s->n_skipped + 1) * sizeof *s->skip_reason);
    s->skipped[s->n_skipped] = strdup(suite), s->skip_reason[s->n_skipped] = strdup(reason);
    s->n_skipped++;
}

const char *sc_skip_reason(const scorecard *s, const char *suite) {
    for (int i = 0; i < s->n_skipped; i++)
        if (!strcmp(s->skipped[i], suite)) return s->skip_reason[i];
    return NULL;
}

void sc_free(scorecard *s) {
    for (int i = 0; i < s->n; i++) free(s->name[i]);
    for (int i = 0; i < s->n_skipped; i++) free(s->skipped[i]), free(s->skip_reason[i]);
    free(s->name), free(s->value), free(s->skipped), free(s->skip_reason);
    memset(s, 0, sizeof *s);
}

static bool fail(char *err, size_t err_len, const char *path, const char *what, const char *name) {
    snprintf(err, err_len, "%s: %s%s%s", path, what, name ? " " : "", name ? name : "");
    return false;
}

bool sc_check_file(const scorecard *s, const char *path, sc_check **checks, int *n, char *err, size_t err_len) {
    *checks = NULL, *n = 0;
    unsigned char *data;
    size_t len;
    if (!gl_read_whole_file(path, &data, &len, err, err_len)) return false;
    char jerr[256];
    gl_json *doc = gl_json_parse((const char *)data, len, jerr, sizeof jerr);
    free(data);
    if (!doc) return fail(err, err_len, path, jerr, NULL);
    const gl_json *metrics = doc->type == GL_JSON_OBJECT ? gl_json_get(doc, "metrics") : NULL;
    if (!metrics || metrics->type != GL_JSON_OBJECT) {
        gl_json_free(doc);
        return fail(err, err_len, path, "expected an object with a member \"metrics\": {name: {\"min\" or \"max\", \"tolerance\"}}", NULL);
    }
    sc_check *c = calloc(metrics->count ? metrics->count : 1, sizeof *c);
    for (size_t i = 0; i < metrics->count; i++) {
        const char *name = metrics->keys[i];
        const gl_json *b = &metrics->items[i];
        sc_check *k = &c[i];
        k->name = strdup(name);
        *n = (int)i + 1;
        if (b->type != GL_JSON_OBJECT) {
            fail(err, err_len, path, "expected an object of bounds for", name);
            goto bad;
        }
        for (size_t j = 0; j < b->count; j++) {
            const char *key = b->keys[j];
            if (strcmp(key, "min") && strcmp(key, "max") && strcmp(key, "tolerance") && strcmp(key, "why")) {
                char what[128];
                snprintf(what, sizeof what, "unknown key '%.40s' (min, max, tolerance, why) in", key);
                fail(err, err_len, path, what, name);
                goto bad;
            }
            if (strcmp(key, "why") && b->items[j].type != GL_JSON_NUMBER) {
                fail(err, err_len, path, "min, max and tolerance must be numbers in", name);
                goto bad;
            }
        }
        const gl_json *mn = gl_json_get(b, "min"), *mx = gl_json_get(b, "max"), *tol = gl_json_get(b, "tolerance");
        if (!mn && !mx) {
            fail(err, err_len, path, "neither min nor max for", name);
            goto bad;
        }
        k->has_min = mn != NULL, k->has_max = mx != NULL;
        k->min = mn ? mn->number : 0, k->max = mx ? mx->number : 0, k->tolerance = tol ? fabs(tol->number) : 0;
        char suite[64];
        snprintf(suite, sizeof suite, "%.*s", (int)strcspn(name, "."), name);
        if (!sc_get(s, name, &k->value)) {
            k->value = NAN;
            k->status = sc_skip_reason(s, suite) ? SC_SKIPPED : SC_NOT_MEASURED;
        } else if ((k->has_min && k->value < k->min - k->tolerance) || (k->has_max && k->value > k->max + k->tolerance))
            k->status = SC_REGRESSED;
        else k->status = SC_PASS;
    }
    gl_json_free(doc);
    *checks = c;
    return true;
bad:
    gl_json_free(doc);
    sc_checks_free(c, *n);
    *n = 0;
    return false;
}

void sc_checks_free(sc_check *checks, int n) {
    for (int i = 0; i < n; i++) free(checks[i].name);
    free(checks);
}

int sc_failures(const sc_check *checks, int n) {
    int f = 0;
    for (int i = 0; i < n; i++) f += checks[i].status == SC_REGRESSED || checks[i].status == SC_NOT_MEASURED;
    return f;
}
