#include "safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    int bytes;
} dtypes[] = {{"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"I16", 2}, {"U16", 2}, {"F16", 2},
              {"BF16", 2}, {"I32", 4}, {"U32", 4}, {"F32", 4},     {"I64", 8},     {"U64", 8}, {"F64", 8}};

static int dtype_bytes(const char *name) {
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (!strcmp(dtypes[i].name, name)) return dtypes[i].bytes;
    return 0;
}

/* a JSON number that is a whole number in [0, 2^53]: anything else is not an offset or a dimension */
static bool whole(const gl_json *v, uint64_t *out) {
    if (!v || v->type != GL_JSON_NUMBER || !(v->number >= 0 && v->number <= 9007199254740992.0) ||
        v->number != floor(v->number))
        return false;
    *out = (uint64_t)v->number;
    return true;
}

static int by_offset(const void *a, const void *b) {
    const gl_st_tensor *x = *(const gl_st_tensor *const *)a, *y = *(const gl_st_tensor *const *)b;
    if (x->data != y->data) return x->data < y->data ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

static int by_name(const void *a, const void *b) {
    return strcmp((*(const gl_st_tensor *const *)a)->name, (*(const gl_st_tensor *const *)b)->name);
}

bool gl_safetensors_parse(const unsigned char *buf, size_t len, const char *path, gl_safetensors *st, char *err,
                          size_t err_len) {
    memset(st, 0, sizeof *st);
    if (len < 8) return snprintf(err, err_len, "'%s' is too short to be a safetensors file (%zu bytes)", path, len), false;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | buf[i]; /* little-endian u64 */
    if (hlen > len - 8 || hlen > 100u << 20)
        return snprintf(err, err_len, "'%s': header length %llu does not fit in the file (%zu bytes)", path,
                        (unsigned long long)hlen, len), false;
    char jerr[200];
    gl_json *h = gl_json_parse((const char *)buf + 8, (size_t)hlen, jerr, sizeof jerr);
    if (!h || h->type != GL_JSON_OBJECT) {
        snprintf(err, err_len, "'%s': the header is not a JSON object (%s)", path, h ? "wrong type" : jerr);
        gl_json_free(h);
        return false;
    }
    st->header = h;
    st->data_len = len - 8 - (size_t)hlen;
    const unsigned char *data = buf + 8 + hlen;
    st->tensors = calloc(h->count ? h->count : 1, sizeof *st->tensors);
    gl_st_tensor **order = calloc(h->count ? h->count : 1, sizeof *order);
    if (!st->tensors || !order) {
        snprintf(err, err_len, "'%s': out of memory for %zu header entries", path, h->count);
        goto fail;
    }
    for (size_t i = 0; i < h->count; i++) {
        const char *name = h->keys[i];
        const gl_json *t = &h->items[i];
        if (!strcmp(name, "__metadata__")) {
            bool strings = t->type == GL_JSON_OBJECT;
            for (size_t k = 0; strings && k < t->count; k++) strings = t->items[k].type == GL_JSON_STRING;
            if (!strings) {
                snprintf(err, err_len, "'%s': __metadata__ must map strings to strings", path);
                goto fail;
            }
            continue;
        }
        const gl_json *dtype = gl_json_get(t, "dtype"), *shape = gl_json_get(t, "shape"),
                      *offs = gl_json_get(t, "data_offsets");
        if (t->type != GL_JSON_OBJECT || !dtype || dtype->type != GL_JSON_STRING || !shape ||
            shape->type != GL_JSON_ARRAY || !offs || offs->type != GL_JSON_ARRAY || offs->count != 2) {
            snprintf(err, err_len, "'%s': tensor '%s' lacks dtype, shape or data_offsets", path, name);
            goto fail;
        }
        int bytes = dtype_bytes(dtype->string);
        if (!bytes) {
            snprintf(err, err_len, "'%s': tensor '%s' has an unknown dtype '%.20s'", path, name, dtype->string);
            goto fail;
        }
        if (shape->count > GL_ST_MAX_DIMS) {
            snprintf(err, err_len, "'%s': tensor '%s' has %zu dimensions (at most %d)", path, name, shape->count,
                     GL_ST_MAX_DIMS);
            goto fail;
        }
        gl_st_tensor *o = &st->tensors[st->n];
        o->name = name, o->dtype = dtype->string, o->ndim = (int)shape->count;
        uint64_t numel = 1, begin, end;
        for (int d = 0; d < o->ndim; d++) {
            uint64_t dim;
            if (!whole(&shape->items[d], &dim)) {
                snprintf(err, err_len, "'%s': tensor '%s': dimension %d is not a non-negative integer", path, name, d);
                goto fail;
            }
            o->shape[d] = (int64_t)dim;
            if (dim && numel > (UINT64_MAX / 8) / dim) {
                snprintf(err, err_len, "'%s': tensor '%s' has more elements than any file holds", path, name);
                goto fail;
            }
            numel *= dim;
        }
        if (!whole(&offs->items[0], &begin) || !whole(&offs->items[1], &end) || end < begin) {
            snprintf(err, err_len, "'%s': tensor '%s': data_offsets must be two integers, begin <= end", path, name);
            goto fail;
        }
        if (end > st->data_len) {
            snprintf(err, err_len, "'%s': tensor '%s' has data_offsets [%llu, %llu] outside the %zu data bytes", path,
                     name, (unsigned long long)begin, (unsigned long long)end, st->data_len);
            goto fail;
        }
        if (end - begin != numel * (uint64_t)bytes) {
            snprintf(err, err_len, "'%s': tensor '%s' spans %llu bytes; its shape and dtype %s need %llu", path, name,
                     (unsigned long long)(end - begin), dtype->string, (unsigned long long)(numel * (uint64_t)bytes));
            goto fail;
        }
        o->numel = (int64_t)numel;
        o->data = data + begin;
        o->nbytes = (size_t)(end - begin);
        order[st->n++] = o;
    }
    qsort(order, (size_t)st->n, sizeof *order, by_name);
    for (int i = 1; i < st->n; i++)
        if (!strcmp(order[i - 1]->name, order[i]->name)) {
            snprintf(err, err_len, "'%s': tensor '%s' appears twice", path, order[i]->name);
            goto fail;
        }
    qsort(order, (size_t)st->n, sizeof *order, by_offset);
    const unsigned char *expect = data;
    for (int i = 0; i < st->n; i++) {
        if (order[i]->data != expect) {
            snprintf(err, err_len, "'%s': tensor '%s' starts at byte %td of the data where %td was expected (%s)", path,
                     order[i]->name, order[i]->data - data, expect - data,
                     order[i]->data < expect ? "it overlaps the previous tensor" : "a hole before it");
            goto fail;
        }
        expect += order[i]->nbytes;
    }
    if ((size_t)(expect - data) != st->data_len) {
        snprintf(err, err_len, "'%s': the tensors cover %td of the %zu data bytes (trailing bytes)", path, expect - data,
                 st->data_len);
        goto fail;
    }
    free(order);
    return true;
fail:
    free(order);
    gl_safetensors_free(st);
    return false;
}

const gl_st_tensor *gl_safetensors_find(const gl_safetensors *st, const char *name) {
    for (int i = 0; i < st->n; i++)
        if (!strcmp(st->tensors[i].name, name)) return &st->tensors[i];
    return NULL;
}

void gl_safetensors_free(gl_safetensors *st) {
    gl_json_free(st->header);
    free(st->tensors);
    memset(st, 0, sizeof *st);
}
