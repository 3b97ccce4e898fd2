#include "json.h"

#include "utf8.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *s;
    size_t len, pos;
    int depth;
    char *err;
    size_t err_len;
    bool failed;
} parser;

static bool fail(parser *p, const char *what) {
    if (!p->failed) snprintf(p->err, p->err_len, "%s at byte %zu", what, p->pos);
    p->failed = true;
    return false;
}

static void skip_ws(parser *p) {
    while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' || p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
        p->pos++;
}

static bool parse_value(parser *p, gl_json *out);

static int hex4(parser *p) {
    if (p->len - p->pos < 4) return -1;
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p->s[p->pos + i];
        v = v * 16 + (c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1000);
    }
    if (v < 0) return -1;
    p->pos += 4;
    return v;
}

/* p->pos at the opening quote */
static bool parse_string(parser *p, char **out, size_t *out_len) {
    p->pos++;
    size_t cap = 16, n = 0;
    char *b = malloc(cap);
    while (1) {
        if (p->pos >= p->len) return free(b), fail(p, "unterminated string");
        unsigned char c = (unsigned char)p->s[p->pos++];
        if (n + 8 > cap) b = realloc(b, cap *= 2);
        if (c == '"') break;
        if (c < 0x20) return free(b), p->pos--, fail(p, "control character inside a string");
        if (c != '\\') {
            b[n++] = (char)c;
            continue;
        }
        if (p->pos >= p->len) return free(b), fail(p, "unterminated escape");
        char e = p->s[p->pos++];
        switch (e) {
        case '"': b[n++] = '"'; break;
        case '\\': b[n++] = '\\'; break;
        case '/': b[n++] = '/'; break;
        case 'b': b[n++] = '\b'; break;
        case 'f': b[n++] = '\f'; break;
        case 'n': b[n++] = '\n'; break;
        case 'r': b[n++] = '\r'; break;
        case 't': b[n++] = '\t'; break;
        case 'u': {
            int u = hex4(p);
            if (u < 0) return free(b), fail(p, "bad \\u escape");
            uint32_t cp = (uint32_t)u;
            if (u >= 0xD800 && u <= 0xDBFF) { /* a surrogate pair */
                int lo = -1;
                if (p->len - p->pos >= 6 && p->s[p->pos] == '\\' && p->s[p->pos + 1] == 'u') {
                    p->pos += 2;
                    lo = hex4(p);
                }
                if (lo < 0xDC00 || lo > 0xDFFF) return free(b), fail(p, "unpaired surrogate in \\u escape");
                cp = 0x10000 + (((uint32_t)u - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
            } else if (u >= 0xDC00 && u <= 0xDFFF) {
                return free(b), fail(p, "unpaired surrogate in \\u escape");
            }
            n += (size_t)gl_utf8_encode(cp, b + n);
            break;
        }
        default: return free(b), p->pos--, fail(p, "unknown escape");
        }
    }
    b[n] = 0;
    *out = b;
    *out_len = n;
    return true;
}

static bool parse_number(parser *p, gl_json *out) {
    size_t start = p->pos;
    if (p->pos < p->len && p->s[p->pos] == '-') p->pos++;
    size_t digits = p->pos;
    while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') p->pos++;
    if (p->pos == digits) return fail(p, "expected a digit");
    if (p->pos < p->len && p->s[p->pos] == '.') {
        p->pos++;
        size_t f = p->pos;
        while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') p->pos++;
        if (p->pos == f) return fail(p, "expected a digit after '.'");
    }
    if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        p->pos++;
        if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-')) p->pos++;
        size_t e = p->pos;
        while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') p->pos++;
        if (p->pos == e) return fail(p, "expected a digit in the exponent");
    }
    char buf[64];
    size_t n = p->pos - start;
    if (n >= sizeof buf) return fail(p, "number too long");
    memcpy(buf, p->s + start, n);
    buf[n] = 0;
    out->type = GL_JSON_NUMBER;
    out->number = strtod(buf, NULL);
    return true;
}

static bool literal(parser *p, const char *word) {
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0) return fail(p, "unexpected character");
    p->pos += n;
    return true;
}

static bool parse_container(parser *p, gl_json *out, bool object) {
    if (++p->depth > 256) return fail(p, "nesting deeper than 256");
    p->pos++;
    out->type = object ? GL_JSON_OBJECT : GL_JSON_ARRAY;
    size_t cap = 0;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == (object ? '}' : ']')) {
        p->pos++;
        p->depth--;
        return true;
    }
    while (1) {
        if (out->count == cap) {
            cap = cap ? cap * 2 : 8;
            out->items = realloc(out->items, cap * sizeof *out->items);
            if (object) out->keys = realloc(out->keys, cap * sizeof *out->keys);
        }
        gl_json *item = &out->items[out->count];
        memset(item, 0, sizeof *item);
        skip_ws(p);
        if (object) {
            size_t klen;
            if (p->pos >= p->len || p->s[p->pos] != '"') return fail(p, "expected a string key");
            if (!parse_string(p, &out->keys[out->count], &klen)) return false;
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':') {
                free(out->keys[out->count]);
                return fail(p, "expected ':'");
            }
            p->pos++;
        }
        out->count++;
        if (!parse_value(p, item)) return false;
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len && p->s[p->pos] == (object ? '}' : ']')) {
            p->pos++;
            p->depth--;
            return true;
        }
        return fail(p, object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static bool parse_value(parser *p, gl_json *out) {
    skip_ws(p);
    if (p->pos >= p->len) return fail(p, "unexpected end of input");
    char c = p->s[p->pos];
    if (c == '{' || c == '[') return parse_container(p, out, c == '{');
    if (c == '"') {
        out->type = GL_JSON_STRING;
        return parse_string(p, &out->string, &out->string_len);
    }
    if (c == 't') return out->type = GL_JSON_BOOL, out->boolean = true, literal(p, "true");
    if (c == 'f') return out->type = GL_JSON_BOOL, out->boolean = false, literal(p, "false");
    if (c == 'n') return out->type = GL_JSON_NULL, literal(p, "null");
    if (c == '-' || (c >= '0' && c <= '9')) return parse_number(p, out);
    return fail(p, "unexpected character");
}

static void free_inner(gl_json *v) {
    free(v->string);
    for (size_t i = 0; i < v->count; i++) {
        free_inner(&v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
}

gl_json *gl_json_parse(const char *text, size_t len, char *err, size_t err_len) {
    parser p = {text, len, 0, 0, err, err_len, false};
    gl_json *root = calloc(1, sizeof *root);
    bool ok = parse_value(&p, root);
    if (ok) {
        skip_ws(&p);
        if (p.pos != p.len) ok = fail(&p, "trailing characters after the JSON value");
    }
    if (!ok) {
        free_inner(root);
        free(root);
        return NULL;
    }
    return root;
}

void gl_json_free(gl_json *v) {
    if (!v) return;
    free_inner(v);
    free(v);
}

const gl_json *gl_json_get(const gl_json *obj, const char *key) {
    if (!obj || obj->type != GL_JSON_OBJECT) return NULL;
    for (size_t i = 0; i < obj->count; i++)
        if (!strcmp(obj->keys[i], key)) return &obj->items[i];
    return NULL;
}

/* ------------------------------------------------------------------ writer */

static _Noreturn void jw_misuse(const char *what) {
    fprintf(stderr, "gradlab: json writer: %s\n", what);
    abort();
}

static void jw_escaped(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p == '\n') fputs("\\n", f);
        else if (*p == '\t') fputs("\\t", f);
        else if (*p == '\r') fputs("\\r", f);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

/* the separator, indentation and key before a value at the current depth */
static void jw_begin_value(gl_json_writer *w, const char *key) {
    if (!w->f) jw_misuse("write after close, or the writer was never opened");
    if (w->depth == 0) {
        if (w->wrote_root) jw_misuse("a second top-level value");
        if (key) jw_misuse("a key at the top level");
        w->wrote_root = true;
        return;
    }
    int d = w->depth - 1;
    if (w->in_object[d] != (key != NULL)) jw_misuse(key ? "a key inside an array" : "a value without a key inside an object");
    fputs(w->has_items[d] ? ",\n" : "\n", w->f);
    w->has_items[d] = true;
    for (int i = 0; i < w->depth; i++) fputs("  ", w->f);
    if (key) {
        jw_escaped(w->f, key);
        fputs(": ", w->f);
    }
}

bool gl_jw_open(gl_json_writer *w, const char *path) {
    memset(w, 0, sizeof *w);
    w->f = gl_atomic_open(&w->file, path);
    return w->f != NULL;
}

static void jw_open_container(gl_json_writer *w, const char *key, bool object) {
    jw_begin_value(w, key);
    if (w->depth == GL_JW_MAX_DEPTH) jw_misuse("nested too deeply");
    fputc(object ? '{' : '[', w->f);
    w->in_object[w->depth] = object;
    w->has_items[w->depth] = false;
    w->depth++;
}

void gl_jw_object(gl_json_writer *w, const char *key) { jw_open_container(w, key, true); }
void gl_jw_array(gl_json_writer *w, const char *key) { jw_open_container(w, key, false); }

void gl_jw_end(gl_json_writer *w) {
    if (!w->f || w->depth == 0) jw_misuse("end without an open object or array");
    int d = --w->depth;
    if (w->has_items[d]) {
        fputc('\n', w->f);
        for (int i = 0; i < d; i++) fputs("  ", w->f);
    }
    fputc(w->in_object[d] ? '}' : ']', w->f);
}

void gl_jw_number(gl_json_writer *w, const char *key, double v) {
    jw_begin_value(w, key);
    if (isfinite(v)) fprintf(w->f, "%.7g", v);
    else fputs("null", w->f);
}

void gl_jw_int(gl_json_writer *w, const char *key, long long v) {
    jw_begin_value(w, key);
    fprintf(w->f, "%lld", v);
}

void gl_jw_string(gl_json_writer *w, const char *key, const char *s) {
    jw_begin_value(w, key);
    jw_escaped(w->f, s);
}

void gl_jw_bool(gl_json_writer *w, const char *key, bool v) {
    jw_begin_value(w, key);
    fputs(v ? "true" : "false", w->f);
}

bool gl_jw_close(gl_json_writer *w) {
    if (!w->f) return false;
    bool ok;
    if (w->depth == 0 && w->wrote_root) {
        fputc('\n', w->f);
        ok = gl_atomic_commit(&w->file);
    } else { /* an unfinished document is never committed */
        gl_atomic_abort(&w->file);
        ok = false;
    }
    w->f = NULL;
    return ok;
}
