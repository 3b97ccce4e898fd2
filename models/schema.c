/* JSON Schema -> grammar text, and the validator of the same subset (schema.h). */
#include "schema.h"

#include "strbuf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* a value as compact JSON (the text a const or an enum member must appear as) */
static void json_text(gl_strbuf *t, const gl_json *v) {
    switch (v->type) {
    case GL_JSON_NULL: gl_sb_put(t, "null", 4); break;
    case GL_JSON_BOOL: v->boolean ? gl_sb_put(t, "true", 4) : gl_sb_put(t, "false", 5); break;
    case GL_JSON_NUMBER:
        if (v->number == floor(v->number) && fabs(v->number) < 1e15) gl_sb_printf(t, "%.0f", v->number);
        else gl_sb_printf(t, "%.17g", v->number);
        break;
    case GL_JSON_STRING:
        gl_sb_put(t, "\"", 1);
        for (size_t i = 0; i < v->string_len; i++) {
            unsigned char c = (unsigned char)v->string[i];
            if (c == '"' || c == '\\') gl_sb_printf(t, "\\%c", c);
            else if (c == '\n') gl_sb_put(t, "\\n", 2);
            else if (c == '\t') gl_sb_put(t, "\\t", 2);
            else if (c < 0x20) gl_sb_printf(t, "\\u%04x", c);
            else gl_sb_put(t, (const char *)&c, 1);
        }
        gl_sb_put(t, "\"", 1);
        break;
    case GL_JSON_ARRAY:
        gl_sb_put(t, "[", 1);
        for (size_t i = 0; i < v->count; i++) {
            if (i) gl_sb_put(t, ",", 1);
            json_text(t, &v->items[i]);
        }
        gl_sb_put(t, "]", 1);
        break;
    case GL_JSON_OBJECT:
        gl_sb_put(t, "{", 1);
        for (size_t i = 0; i < v->count; i++) {
            if (i) gl_sb_put(t, ",", 1);
            gl_json key = {.type = GL_JSON_STRING, .string = v->keys[i], .string_len = strlen(v->keys[i])};
            json_text(t, &key);
            gl_sb_put(t, ":", 1);
            json_text(t, &v->items[i]);
        }
        gl_sb_put(t, "}", 1);
        break;
    }
}

/* bytes as a grammar literal: "..." with " and \ and control bytes escaped */
static void literal(gl_strbuf *t, const char *s, size_t n) {
    gl_sb_put(t, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') gl_sb_printf(t, "\\%c", c);
        else if (c < 0x20 || c == 0x7F) gl_sb_printf(t, "\\x%02X", c);
        else gl_sb_put(t, (const char *)&c, 1);
    }
    gl_sb_put(t, "\"", 1);
}

static void value_literal(gl_strbuf *t, const gl_json *v) {
    gl_strbuf j = {0};
    json_text(&j, v);
    literal(t, j.p, j.len);
    free(j.p);
}

/* ---------------------------------------------------------------- schema -> grammar */

typedef struct {
    gl_strbuf out;
    int n_rules;
    char *err;
    size_t err_len;
} compiler;

static const char *const KEYWORDS[] = {"type", "properties", "required", "additionalProperties", "items", "minItems",
                                       "maxItems", "minLength", "maxLength", "enum", "const", "anyOf", "oneOf"};
static const char *const ANNOTATIONS[] = {"description", "title", "default", "examples", "$schema", "$id",
                                          "$comment", "strict"};

static bool refuse(compiler *c, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool refuse(compiler *c, const char *path, const char *fmt, ...) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(c->err, c->err_len, "json schema at %s: %s", *path ? path : "/", msg);
    return false;
}

static bool count_of(compiler *c, const gl_json *s, const char *key, const char *path, int fallback, int *out) {
    const gl_json *v = gl_json_get(s, key);
    *out = fallback;
    if (!v) return true;
    if (v->type != GL_JSON_NUMBER || v->number < 0 || v->number > 1000 || v->number != floor(v->number))
        return refuse(c, path, "'%s' must be a whole number from 0 to 1000", key);
    *out = (int)v->number;
    return true;
}

static bool gen(compiler *c, const gl_json *s, const char *name, const char *path);

/* x{min,max} with separator: for arrays (items separated by commas) */
static void repeat_list(compiler *c, const char *item, int min, int max) {
    /* [ ws ( item ( ws "," ws item ){min-1,max-1} )? ws ]   (the ? only when min is 0) */
    if (max == 0) {
        gl_sb_put(&c->out, "\"[\" ws \"]\"", 10);
        return;
    }
    gl_sb_put(&c->out, "\"[\" ws ", 7);
    if (min == 0) gl_sb_put(&c->out, "(", 1);
    gl_sb_printf(&c->out, "%s (ws \",\" ws %s)", item, item);
    int lo = min > 0 ? min - 1 : 0;
    if (max < 0) gl_sb_printf(&c->out, "{%d,}", lo);
    else gl_sb_printf(&c->out, "{%d,%d}", lo, max - 1);
    if (min == 0) gl_sb_put(&c->out, ")?", 2);
    gl_sb_put(&c->out, " ws \"]\"", 7);
}

static bool gen_typed(compiler *c, const gl_json *s, const char *type, const char *name, const char *path) {
    char sub[256], subpath[512];
    if (!strcmp(type, "string")) {
        int lo, hi;
        if (!count_of(c, s, "minLength", path, 0, &lo) || !count_of(c, s, "maxLength", path, -1, &hi)) return false;
        if (hi >= 0 && hi < lo) return refuse(c, path, "maxLength %d is below minLength %d", hi, lo);
        if (hi < 0) gl_sb_printf(&c->out, "%s ::= \"\\\"\" char{%d,} \"\\\"\"\n", name, lo);
        else gl_sb_printf(&c->out, "%s ::= \"\\\"\" char{%d,%d} \"\\\"\"\n", name, lo, hi);
        return true;
    }
    if (!strcmp(type, "number") || !strcmp(type, "integer") || !strcmp(type, "boolean") || !strcmp(type, "null")) {
        gl_sb_printf(&c->out, "%s ::= %s\n", name, type);
        return true;
    }
    if (!strcmp(type, "array")) {
        int lo, hi;
        if (!count_of(c, s, "minItems", path, 0, &lo) || !count_of(c, s, "maxItems", path, -1, &hi)) return false;
        if (hi >= 0 && hi < lo) return refuse(c, path, "maxItems %d is below minItems %d", hi, lo);
        const gl_json *items = gl_json_get(s, "items");
        const char *item = "value";
        if (items) {
            snprintf(sub, sizeof sub, "%s-item", name);
            snprintf(subpath, sizeof subpath, "%s/items", path);
            if (!gen(c, items, sub, subpath)) return false;
            item = sub;
        }
        gl_sb_printf(&c->out, "%s ::= ", name);
        repeat_list(c, item, lo, hi);
        gl_sb_put(&c->out, "\n", 1);
        return true;
    }
    if (!strcmp(type, "object")) {
        const gl_json *props = gl_json_get(s, "properties"), *req = gl_json_get(s, "required");
        const gl_json *extra = gl_json_get(s, "additionalProperties");
        if (extra && !(extra->type == GL_JSON_BOOL && !extra->boolean))
            return refuse(c, path, "'additionalProperties' other than false is not supported");
        if (props && props->type != GL_JSON_OBJECT) return refuse(c, path, "'properties' must be an object");
        if (req && req->type != GL_JSON_ARRAY) return refuse(c, path, "'required' must be an array of names");
        if (!props || !props->count) {
            if (req && req->count) return refuse(c, path, "'required' names properties the schema does not have");
            gl_sb_printf(&c->out, "%s ::= %s\n", name, extra ? "\"{\" ws \"}\"" : "object-any");
            return true;
        }
        size_t n = props->count;
        bool *required = calloc(n, sizeof *required);
        for (size_t r = 0; req && r < req->count; r++) {
            const gl_json *k = &req->items[r];
            if (k->type != GL_JSON_STRING) return free(required), refuse(c, path, "'required' must hold strings");
            size_t i = 0;
            while (i < n && strcmp(props->keys[i], k->string)) i++;
            if (i == n) return free(required), refuse(c, path, "'required' names '%s', which is not in 'properties'", k->string);
            required[i] = true;
        }
        for (size_t i = 0; i < n; i++) {
            snprintf(sub, sizeof sub, "%s-p%zu", name, i);
            snprintf(subpath, sizeof subpath, "%s/properties/%s", path, props->keys[i]);
            if (!gen(c, &props->items[i], sub, subpath)) return free(required), false;
            gl_json key = {.type = GL_JSON_STRING, .string = props->keys[i], .string_len = strlen(props->keys[i])};
            gl_sb_printf(&c->out, "%s-kv%zu ::= ", name, i);
            value_literal(&c->out, &key);
            gl_sb_printf(&c->out, " ws \":\" ws %s\n", sub);
        }
        /* first-i: no property written yet, from property i on; rest-i: one written (a comma comes first) */
        for (size_t i = 0; i < n; i++) {
            gl_sb_printf(&c->out, "%s-first%zu ::= %s-kv%zu %s-rest%zu", name, i, name, i, name, i + 1);
            if (!required[i]) gl_sb_printf(&c->out, " | %s-first%zu", name, i + 1);
            gl_sb_printf(&c->out, "\n%s-rest%zu ::= \",\" ws %s-kv%zu %s-rest%zu", name, i, name, i, name, i + 1);
            if (!required[i]) gl_sb_printf(&c->out, " | %s-rest%zu", name, i + 1);
            gl_sb_put(&c->out, "\n", 1);
        }
        gl_sb_printf(&c->out, "%s-first%zu ::= \"\"\n%s-rest%zu ::= \"\"\n", name, n, name, n);
        gl_sb_printf(&c->out, "%s ::= \"{\" ws %s-first0 ws \"}\"\n", name, name);
        free(required);
        return true;
    }
    return refuse(c, path, "unknown type '%s' (known: object, array, string, number, integer, boolean, null)", type);
}

static bool gen(compiler *c, const gl_json *s, const char *name, const char *path) {
    char sub[256], subpath[512];
    if (s->type == GL_JSON_BOOL) {
        if (!s->boolean) return refuse(c, path, "the schema false matches nothing");
        gl_sb_printf(&c->out, "%s ::= value\n", name);
        return true;
    }
    if (s->type != GL_JSON_OBJECT) return refuse(c, path, "a schema must be an object or a boolean");
    for (size_t i = 0; i < s->count; i++) {
        bool known = false;
        for (size_t k = 0; k < sizeof KEYWORDS / sizeof *KEYWORDS && !known; k++) known = !strcmp(s->keys[i], KEYWORDS[k]);
        for (size_t k = 0; k < sizeof ANNOTATIONS / sizeof *ANNOTATIONS && !known; k++)
            known = !strcmp(s->keys[i], ANNOTATIONS[k]);
        if (!known)
            return refuse(c, path, "keyword '%s' is not supported (supported: type, properties, required, "
                                   "additionalProperties: false, items, minItems, maxItems, minLength, maxLength, "
                                   "enum, const, anyOf, oneOf)", s->keys[i]);
    }
    if (++c->n_rules > 5000) return refuse(c, path, "the schema is too large (more than 5000 subschemas)");
    const gl_json *cst = gl_json_get(s, "const"), *en = gl_json_get(s, "enum");
    const gl_json *any = gl_json_get(s, "anyOf");
    if (!any) any = gl_json_get(s, "oneOf");
    if (cst) {
        gl_sb_printf(&c->out, "%s ::= ", name);
        value_literal(&c->out, cst);
        gl_sb_put(&c->out, "\n", 1);
        return true;
    }
    if (en) {
        if (en->type != GL_JSON_ARRAY || !en->count) return refuse(c, path, "'enum' must be a non-empty array");
        gl_sb_printf(&c->out, "%s ::= ", name);
        for (size_t i = 0; i < en->count; i++) {
            if (i) gl_sb_put(&c->out, " | ", 3);
            value_literal(&c->out, &en->items[i]);
        }
        gl_sb_put(&c->out, "\n", 1);
        return true;
    }
    if (any) {
        if (any->type != GL_JSON_ARRAY || !any->count) return refuse(c, path, "'anyOf'/'oneOf' must be a non-empty array");
        for (size_t i = 0; i < any->count; i++) {
            snprintf(sub, sizeof sub, "%s-a%zu", name, i);
            snprintf(subpath, sizeof subpath, "%s/anyOf/%zu", path, i);
            if (!gen(c, &any->items[i], sub, subpath)) return false;
        }
        gl_sb_printf(&c->out, "%s ::=", name);
        for (size_t i = 0; i < any->count; i++) gl_sb_printf(&c->out, "%s %s-a%zu", i ? " |" : "", name, i);
        gl_sb_put(&c->out, "\n", 1);
        return true;
    }
    const gl_json *type = gl_json_get(s, "type");
    if (!type) {
        if (gl_json_get(s, "properties")) return gen_typed(c, s, "object", name, path);
        if (gl_json_get(s, "items")) return gen_typed(c, s, "array", name, path);
        gl_sb_printf(&c->out, "%s ::= value\n", name);
        return true;
    }
    if (type->type == GL_JSON_STRING) return gen_typed(c, s, type->string, name, path);
    if (type->type != GL_JSON_ARRAY || !type->count) return refuse(c, path, "'type' must be a name or a list of names");
    for (size_t i = 0; i < type->count; i++) {
        if (type->items[i].type != GL_JSON_STRING) return refuse(c, path, "'type' must be a name or a list of names");
        snprintf(sub, sizeof sub, "%s-t%zu", name, i);
        if (!gen_typed(c, s, type->items[i].string, sub, path)) return false;
    }
    gl_sb_printf(&c->out, "%s ::=", name);
    for (size_t i = 0; i < type->count; i++) gl_sb_printf(&c->out, "%s %s-t%zu", i ? " |" : "", name, i);
    gl_sb_put(&c->out, "\n", 1);
    return true;
}

/* The JSON pieces every schema grammar may use. Numbers and whitespace are bounded, so a small model cannot run on
 * forever inside one (16 digits, as a double holds, and a two-digit exponent, so no number overflows; at most one space or line break between tokens). */
static const char COMMON[] =
    "ws ::= [ \\n]?\n"
    "char ::= [^\"\\\\\\x00-\\x1F] | \"\\\\\" ([\"\\\\/bfnrt] | \"u\" unicode)\n"
    /* \\u: any code unit but a surrogate, or a high surrogate followed by a low one (a lone one is not UTF-16) */
    "unicode ::= ([0-9a-cA-Ce-fE-F] hex | [dD] [0-7]) hex hex | [dD] [89abAB] hex hex \"\\\\u\" [dD] [c-fC-F] hex hex\n"
    "hex ::= [0-9a-fA-F]\n"
    "string ::= \"\\\"\" char* \"\\\"\"\n"
    "integer ::= \"-\"? (\"0\" | [1-9] [0-9]{0,15})\n"
    "number ::= integer (\".\" [0-9]{1,16})? ([eE] [-+]? [0-9]{1,2})?\n"
    "boolean ::= \"true\" | \"false\"\n"
    "null ::= \"null\"\n"
    "value ::= object-any | array-any | string | number | boolean | null\n"
    "object-any ::= \"{\" ws (string ws \":\" ws value (ws \",\" ws string ws \":\" ws value)*)? ws \"}\"\n"
    "array-any ::= \"[\" ws (value (ws \",\" ws value)*)? ws \"]\"\n";

char *gl_schema_to_grammar(const gl_json *schema, char *err, size_t err_len) {
    return gl_schema_to_grammar_rule(schema, "root", err, err_len);
}

char *gl_schema_to_grammar_rule(const gl_json *schema, const char *rule, char *err, size_t err_len) {
    compiler c = {.err = err, .err_len = err_len};
    if (!gen(&c, schema, rule, "")) {
        free(c.out.p);
        return NULL;
    }
    gl_sb_put(&c.out, COMMON, sizeof COMMON - 1);
    return c.out.p;
}

gl_grammar *gl_schema_grammar(const gl_json *schema, char *err, size_t err_len) {
    char *g = gl_schema_to_grammar(schema, err, err_len);
    if (!g) return NULL;
    gl_grammar *out = gl_grammar_parse(g, err, err_len);
    free(g);
    return out;
}

/* ---------------------------------------------------------------- validation */

static bool json_equal(const gl_json *a, const gl_json *b) {
    if (a->type != b->type) return false;
    switch (a->type) {
    case GL_JSON_NULL: return true;
    case GL_JSON_BOOL: return a->boolean == b->boolean;
    case GL_JSON_NUMBER: return a->number == b->number;
    case GL_JSON_STRING: return a->string_len == b->string_len && !memcmp(a->string, b->string, a->string_len);
    case GL_JSON_ARRAY:
        if (a->count != b->count) return false;
        for (size_t i = 0; i < a->count; i++)
            if (!json_equal(&a->items[i], &b->items[i])) return false;
        return true;
    case GL_JSON_OBJECT:
        if (a->count != b->count) return false;
        for (size_t i = 0; i < a->count; i++) {
            const gl_json *o = gl_json_get(b, a->keys[i]);
            if (!o || !json_equal(&a->items[i], o)) return false;
        }
        return true;
    }
    return false;
}

static bool invalid(char *err, size_t n, const char *path, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static bool invalid(char *err, size_t n, const char *path, const char *fmt, ...) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(err, n, "at %s: %s", *path ? path : "/", msg);
    return false;
}

static size_t utf8_length(const char *s, size_t n) {
    size_t count = 0;
    for (size_t i = 0; i < n; i++) count += ((unsigned char)s[i] & 0xC0) != 0x80;
    return count;
}

static bool has_type(const gl_json *v, const char *type) {
    if (!strcmp(type, "object")) return v->type == GL_JSON_OBJECT;
    if (!strcmp(type, "array")) return v->type == GL_JSON_ARRAY;
    if (!strcmp(type, "string")) return v->type == GL_JSON_STRING;
    if (!strcmp(type, "number")) return v->type == GL_JSON_NUMBER;
    if (!strcmp(type, "integer")) return v->type == GL_JSON_NUMBER && v->number == floor(v->number);
    if (!strcmp(type, "boolean")) return v->type == GL_JSON_BOOL;
    if (!strcmp(type, "null")) return v->type == GL_JSON_NULL;
    return false;
}

static bool validate(const gl_json *s, const gl_json *v, const char *path, char *err, size_t n) {
    char sub[512];
    if (s->type == GL_JSON_BOOL) return s->boolean || invalid(err, n, path, "the schema false matches nothing");
    if (s->type != GL_JSON_OBJECT) return invalid(err, n, path, "the schema is not an object");
    const gl_json *cst = gl_json_get(s, "const"), *en = gl_json_get(s, "enum"), *any = gl_json_get(s, "anyOf");
    if (!any) any = gl_json_get(s, "oneOf");
    if (cst && !json_equal(cst, v)) return invalid(err, n, path, "not the const value");
    if (en && en->type == GL_JSON_ARRAY) {
        bool found = false;
        for (size_t i = 0; i < en->count && !found; i++) found = json_equal(&en->items[i], v);
        if (!found) return invalid(err, n, path, "not one of the enum's values");
    }
    if (any && any->type == GL_JSON_ARRAY) {
        char first[256] = "";
        bool ok = false;
        for (size_t i = 0; i < any->count && !ok; i++) ok = validate(&any->items[i], v, path, i ? sub : first, i ? sizeof sub : sizeof first);
        if (!ok) return invalid(err, n, path, "matches no alternative of anyOf (the first: %s)", first);
    }
    const gl_json *type = gl_json_get(s, "type");
    if (type) {
        bool ok = false;
        if (type->type == GL_JSON_STRING) ok = has_type(v, type->string);
        for (size_t i = 0; type->type == GL_JSON_ARRAY && i < type->count && !ok; i++)
            ok = type->items[i].type == GL_JSON_STRING && has_type(v, type->items[i].string);
        if (!ok) return invalid(err, n, path, "wrong type");
    }
    if (v->type == GL_JSON_STRING) {
        const gl_json *lo = gl_json_get(s, "minLength"), *hi = gl_json_get(s, "maxLength");
        size_t len = utf8_length(v->string, v->string_len);
        if (lo && lo->type == GL_JSON_NUMBER && (double)len < lo->number) return invalid(err, n, path, "shorter than minLength");
        if (hi && hi->type == GL_JSON_NUMBER && (double)len > hi->number) return invalid(err, n, path, "longer than maxLength");
    }
    if (v->type == GL_JSON_ARRAY) {
        const gl_json *lo = gl_json_get(s, "minItems"), *hi = gl_json_get(s, "maxItems"), *items = gl_json_get(s, "items");
        if (lo && lo->type == GL_JSON_NUMBER && (double)v->count < lo->number) return invalid(err, n, path, "fewer items than minItems");
        if (hi && hi->type == GL_JSON_NUMBER && (double)v->count > hi->number) return invalid(err, n, path, "more items than maxItems");
        for (size_t i = 0; items && i < v->count; i++) {
            snprintf(sub, sizeof sub, "%s/%zu", path, i);
            if (!validate(items, &v->items[i], sub, err, n)) return false;
        }
    }
    if (v->type == GL_JSON_OBJECT) {
        const gl_json *props = gl_json_get(s, "properties"), *req = gl_json_get(s, "required");
        const gl_json *extra = gl_json_get(s, "additionalProperties");
        for (size_t r = 0; req && req->type == GL_JSON_ARRAY && r < req->count; r++)
            if (req->items[r].type == GL_JSON_STRING && !gl_json_get(v, req->items[r].string))
                return invalid(err, n, path, "the required property '%s' is missing", req->items[r].string);
        for (size_t i = 0; i < v->count; i++) {
            const gl_json *ps = props && props->type == GL_JSON_OBJECT ? gl_json_get(props, v->keys[i]) : NULL;
            snprintf(sub, sizeof sub, "%s/%s", path, v->keys[i]);
            if (!ps) {
                if (extra && extra->type == GL_JSON_BOOL && !extra->boolean)
                    return invalid(err, n, path, "the property '%s' is not allowed", v->keys[i]);
                continue;
            }
            if (!validate(ps, &v->items[i], sub, err, n)) return false;
        }
    }
    return true;
}

bool gl_schema_validate(const gl_json *schema, const gl_json *value, char *err, size_t err_len) {
    return validate(schema, value, "", err, err_len);
}
