/* GGUF reader and writer (see gguf.h). The reader walks the header twice: once to check every length against the
 * bytes that remain (nothing is allocated), then to fill the tables, whose sizes are then known to be bounded by
 * the file's size. */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"

#define GGUF_MAX_DIMS 4
#define GGUF_MAX_NESTING 4

static const uint8_t value_size[GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
static const char *const value_name[GGUF_TYPE_COUNT] = {"uint8", "int8",  "uint16", "int16", "uint32",
                                                         "int32", "float32", "bool", "string", "array",
                                                         "uint64", "int64", "float64"};

bool gl_ggml_type_size(ggml_type t, int64_t *block, int64_t *bytes) {
    int64_t b, s;
    switch (t) {
    case GGML_F32: b = 1, s = 4; break;
    case GGML_F16: case GGML_BF16: b = 1, s = 2; break;
    case GGML_Q4_0: b = 32, s = 18; break;
    case GGML_Q4_1: b = 32, s = 20; break;
    case GGML_Q5_0: b = 32, s = 22; break;
    case GGML_Q5_1: b = 32, s = 24; break;
    case GGML_Q8_0: b = 32, s = 34; break;
    case GGML_Q8_1: b = 32, s = 36; break;
    case GGML_Q2_K: b = 256, s = 84; break;
    case GGML_Q3_K: b = 256, s = 110; break;
    case GGML_Q4_K: b = 256, s = 144; break;
    case GGML_Q5_K: b = 256, s = 176; break;
    case GGML_Q6_K: b = 256, s = 210; break;
    case GGML_Q8_K: b = 256, s = 292; break;
    case GGML_GL_Q3_0: b = 32, s = 14; break;
    default: return false;
    }
    *block = b, *bytes = s;
    return true;
}

const char *gl_ggml_type_name(ggml_type t) {
    switch (t) {
    case GGML_F32: return "F32";
    case GGML_F16: return "F16";
    case GGML_BF16: return "BF16";
    case GGML_Q4_0: return "Q4_0";
    case GGML_Q4_1: return "Q4_1";
    case GGML_Q5_0: return "Q5_0";
    case GGML_Q5_1: return "Q5_1";
    case GGML_Q8_0: return "Q8_0";
    case GGML_Q8_1: return "Q8_1";
    case GGML_Q2_K: return "Q2_K";
    case GGML_Q3_K: return "Q3_K";
    case GGML_Q4_K: return "Q4_K";
    case GGML_Q5_K: return "Q5_K";
    case GGML_Q6_K: return "Q6_K";
    case GGML_Q8_K: return "Q8_K";
    case GGML_GL_Q3_0: return "Q3_0";
    default: {
        static _Thread_local char buf[24];
        snprintf(buf, sizeof buf, "type %u", (unsigned)t);
        return buf;
    }
    }
}

/* ---------------------------------------------------------------- reading */

typedef struct {
    const uint8_t *p;
    uint64_t pos, len;
    const char *what;
    char *err;
    size_t err_len;
} cursor;

static bool fail(cursor *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool fail(cursor *c, const char *fmt, ...) {
    char msg[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(c->err, c->err_len, "%s: %s", c->what, msg);
    return false;
}

static bool take(cursor *c, uint64_t n, const char *field, const uint8_t **out) {
    if (n > c->len - c->pos)
        return fail(c, "truncated: %s needs %llu bytes at offset %llu but the file has %llu", field,
                    (unsigned long long)n, (unsigned long long)c->pos, (unsigned long long)c->len);
    *out = c->p + c->pos;
    c->pos += n;
    return true;
}

static bool read_u32(cursor *c, const char *field, uint32_t *v) {
    const uint8_t *b = NULL;
    if (!take(c, 4, field, &b)) return false;
    memcpy(v, b, 4);
    return true;
}

static bool read_u64(cursor *c, const char *field, uint64_t *v) {
    const uint8_t *b = NULL;
    if (!take(c, 8, field, &b)) return false;
    memcpy(v, b, 8);
    return true;
}

static bool read_str(cursor *c, const char *field, gguf_str *s) {
    uint64_t n;
    const uint8_t *b = NULL;
    if (!read_u64(c, field, &n)) return false;
    if (n > c->len - c->pos)
        return fail(c, "%s claims %llu bytes at offset %llu, beyond the end of the file", field,
                    (unsigned long long)n, (unsigned long long)c->pos);
    if (!take(c, n, field, &b)) return false;
    s->ptr = (const char *)b;
    s->len = n;
    return true;
}

/* one value of type t (not an array's header); fills kv's scalar when kv is given */
static bool read_value(cursor *c, gguf_value_type t, const char *field, gguf_kv *kv, int depth);

static bool read_array(cursor *c, const char *field, gguf_kv *kv, int depth) {
    uint32_t et;
    uint64_t count;
    if (!read_u32(c, field, &et) || !read_u64(c, field, &count)) return false;
    if (et >= GGUF_TYPE_COUNT) return fail(c, "%s: array of unknown value type %u", field, et);
    if (depth >= GGUF_MAX_NESTING) return fail(c, "%s: arrays nested deeper than %d", field, GGUF_MAX_NESTING);
    /* every element needs at least this many bytes: the bound that keeps a lying count from costing anything */
    uint64_t min_size = et == GGUF_STRING ? 8 : et == GGUF_ARRAY ? 12 : value_size[et];
    if (count > (c->len - c->pos) / min_size)
        return fail(c, "%s: array of %llu %s values cannot fit in the %llu bytes left", field,
                    (unsigned long long)count, value_name[et], (unsigned long long)(c->len - c->pos));
    if (kv) {
        kv->arr_type = (gguf_value_type)et;
        kv->arr_count = count;
        kv->arr = c->p + c->pos;
    }
    if (et != GGUF_STRING && et != GGUF_ARRAY) {
        const uint8_t *b = NULL;
        if (!take(c, count * min_size, field, &b)) return false;
        if (et == GGUF_BOOL)
            for (uint64_t i = 0; i < count; i++)
                if (b[i] > 1) return fail(c, "%s: bool element %llu is %u, not 0 or 1", field, (unsigned long long)i, b[i]);
        return true;
    }
    if (kv && et == GGUF_STRING && !(kv->strs = malloc((count ? count : 1) * sizeof *kv->strs)))
        return fail(c, "out of memory for %s", field);
    for (uint64_t i = 0; i < count; i++) {
        if (et == GGUF_STRING) {
            gguf_str s;
            if (!read_str(c, field, &s)) return false;
            if (kv) kv->strs[i] = s;
        } else if (!read_array(c, field, NULL, depth + 1))
            return false;
    }
    return true;
}

static bool read_value(cursor *c, gguf_value_type t, const char *field, gguf_kv *kv, int depth) {
    if (t == GGUF_STRING) {
        gguf_str s;
        if (!read_str(c, field, &s)) return false;
        if (kv) kv->v.s = s;
        return true;
    }
    if (t == GGUF_ARRAY) return read_array(c, field, kv, depth);
    const uint8_t *b = NULL;
    if (!take(c, value_size[t], field, &b)) return false;
    if (!kv) return true;
    switch (t) {
    case GGUF_UINT8: kv->v.u = b[0]; break;
    case GGUF_BOOL:
        if (b[0] > 1) return fail(c, "%s: bool value %u is not 0 or 1", field, b[0]);
        kv->v.u = b[0];
        break;
    case GGUF_INT8: kv->v.i = (int8_t)b[0]; break;
    case GGUF_UINT16: { uint16_t x; memcpy(&x, b, 2); kv->v.u = x; break; }
    case GGUF_INT16: { int16_t x; memcpy(&x, b, 2); kv->v.i = x; break; }
    case GGUF_UINT32: { uint32_t x; memcpy(&x, b, 4); kv->v.u = x; break; }
    case GGUF_INT32: { int32_t x; memcpy(&x, b, 4); kv->v.i = x; break; }
    case GGUF_FLOAT32: { float x; memcpy(&x, b, 4); kv->v.f = x; break; }
    case GGUF_UINT64: memcpy(&kv->v.u, b, 8); break;
    case GGUF_INT64: memcpy(&kv->v.i, b, 8); break;
    case GGUF_FLOAT64: memcpy(&kv->v.f, b, 8); break;
    default: break;
    }
    return true;
}

static int cmp_offset(const void *a, const void *b) {
    const gguf_tensor *x = *(const gguf_tensor *const *)a, *y = *(const gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static bool str_eq(gguf_str a, gguf_str b) { return a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0; }
bool gl_gguf_str_eq(gguf_str s, const char *c) { return s.len == strlen(c) && memcmp(s.ptr, c, s.len) == 0; }

/* pass 0 checks, pass 1 fills g's tables */
static bool walk(cursor *c, gl_gguf *g, int pass) {
    c->pos = 0;
    const uint8_t *magic = NULL;
    if (!take(c, 4, "the magic", &magic)) return false;
    if (memcmp(magic, "GGUF", 4) != 0) return fail(c, "not a GGUF file (the first bytes are not \"GGUF\")");
    if (!read_u32(c, "the version", &g->version)) return false;
    if (g->version != 2 && g->version != 3)
        return fail(c, "GGUF version %u is not supported (2 and 3 are)", g->version);
    if (!read_u64(c, "the tensor count", &g->n_tensors) || !read_u64(c, "the metadata count", &g->n_kv)) return false;
    /* a key/value pair is at least 8 + 4 + 1 bytes, a tensor description at least 8 + 4 + 8 + 4 + 8 */
    if (g->n_kv > (c->len - c->pos) / 13)
        return fail(c, "%llu metadata entries cannot fit in the file", (unsigned long long)g->n_kv);
    if (g->n_tensors > (c->len - c->pos) / 32)
        return fail(c, "%llu tensors cannot fit in the file", (unsigned long long)g->n_tensors);
    if (pass == 1) {
        g->kv = calloc(g->n_kv ? g->n_kv : 1, sizeof *g->kv);
        g->tensors = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *g->tensors);
        if (!g->kv || !g->tensors) return fail(c, "out of memory");
    }
    g->alignment = 32;
    for (uint64_t i = 0; i < g->n_kv; i++) {
        gguf_kv tmp = {0}, *kv = pass == 1 ? &g->kv[i] : &tmp;
        char field[96];
        snprintf(field, sizeof field, "metadata entry %llu", (unsigned long long)i);
        uint32_t t;
        if (!read_str(c, field, &kv->key) || !read_u32(c, field, &t)) return false;
        snprintf(field, sizeof field, "metadata '%.*s'", (int)(kv->key.len > 60 ? 60 : kv->key.len), kv->key.ptr);
        if (t >= GGUF_TYPE_COUNT) return fail(c, "%s has unknown value type %u", field, t);
        kv->type = (gguf_value_type)t;
        if (!read_value(c, kv->type, field, pass == 1 ? kv : NULL, 0)) return false; /* pass 0 allocates nothing */
        if (pass == 0) continue;
        for (uint64_t j = 0; j < i; j++)
            if (str_eq(g->kv[j].key, kv->key)) return fail(c, "%s appears twice", field);
        if (gl_gguf_str_eq(kv->key, "general.alignment")) {
            if (kv->type != GGUF_UINT32 || kv->v.u == 0 || (kv->v.u & (kv->v.u - 1)) || kv->v.u > 1u << 20)
                return fail(c, "general.alignment must be a uint32 power of two up to 2^20");
            g->alignment = kv->v.u;
        }
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        gguf_tensor tmp = {0}, *t = pass == 1 ? &g->tensors[i] : &tmp;
        char field[96];
        snprintf(field, sizeof field, "tensor %llu", (unsigned long long)i);
        uint32_t nd, type;
        if (!read_str(c, field, &t->name) || !read_u32(c, field, &nd)) return false;
        snprintf(field, sizeof field, "tensor '%.*s'", (int)(t->name.len > 60 ? 60 : t->name.len), t->name.ptr);
        if (nd < 1 || nd > GGUF_MAX_DIMS) return fail(c, "%s has %u dimensions (1 to %d allowed)", field, nd, GGUF_MAX_DIMS);
        t->n_dims = (int)nd;
        for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < nd; d++) {
            uint64_t ne;
            if (!read_u64(c, field, &ne)) return false;
            if (ne == 0 || ne > (uint64_t)INT64_MAX / 2) return fail(c, "%s: dimension %u is %llu", field, d, (unsigned long long)ne);
            t->ne[d] = (int64_t)ne;
        }
        if (!read_u32(c, field, &type) || !read_u64(c, field, &t->offset)) return false;
        t->type = (ggml_type)type;
        int64_t block, bytes;
        if (!gl_ggml_type_size(t->type, &block, &bytes)) return fail(c, "%s has unknown tensor type %u", field, type);
        if (t->ne[0] % block)
            return fail(c, "%s: a row of %lld is not a whole number of %s blocks of %lld", field, (long long)t->ne[0],
                        gl_ggml_type_name(t->type), (long long)block);
        /* bytes = ne0 / block * bytes * ne1 * ne2 * ne3, stopping at anything above the file's size */
        uint64_t n = (uint64_t)(t->ne[0] / block) * (uint64_t)bytes; /* ne0 < 2^62, bytes < 2^9: may overflow */
        if (n / (uint64_t)bytes != (uint64_t)(t->ne[0] / block) || n > c->len)
            return fail(c, "%s: its size exceeds the file (truncated or corrupt?)", field);
        for (int d = 1; d < GGUF_MAX_DIMS; d++) {
            if (n > c->len / (uint64_t)t->ne[d]) return fail(c, "%s: its size exceeds the file (truncated or corrupt?)", field);
            n *= (uint64_t)t->ne[d];
        }
        t->n_bytes = n;
        if (pass == 1)
            for (uint64_t j = 0; j < i; j++)
                if (str_eq(g->tensors[j].name, t->name)) return fail(c, "%s appears twice", field);
    }
    uint64_t data = (c->pos + g->alignment - 1) / g->alignment * g->alignment;
    if (data > c->len) return fail(c, "truncated: no data section after the tensor descriptions");
    g->data_offset = data;
    if (pass == 0) return true;
    uint64_t data_len = c->len - data;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        gguf_tensor *t = &g->tensors[i];
        if (t->offset % g->alignment)
            return fail(c, "tensor '%.*s': offset %llu is not a multiple of the alignment %llu", (int)t->name.len,
                        t->name.ptr, (unsigned long long)t->offset, (unsigned long long)g->alignment);
        if (t->offset > data_len || t->n_bytes > data_len - t->offset)
            return fail(c, "tensor '%.*s' (%llu bytes at data offset %llu) extends past the end of the file "
                        "(%llu data bytes): truncated?", (int)t->name.len, t->name.ptr,
                        (unsigned long long)t->n_bytes, (unsigned long long)t->offset, (unsigned long long)data_len);
        t->data = c->p + data + t->offset;
    }
    if (g->n_tensors > 1) {
        gguf_tensor **order = malloc(g->n_tensors * sizeof *order);
        if (!order) return fail(c, "out of memory");
        for (uint64_t i = 0; i < g->n_tensors; i++) order[i] = &g->tensors[i];
        qsort(order, g->n_tensors, sizeof *order, cmp_offset);
        for (uint64_t i = 1; i < g->n_tensors; i++)
            if (order[i - 1]->offset + order[i - 1]->n_bytes > order[i]->offset) {
                fail(c, "tensors '%.*s' and '%.*s' overlap", (int)order[i - 1]->name.len, order[i - 1]->name.ptr,
                     (int)order[i]->name.len, order[i]->name.ptr);
                free(order);
                return false;
            }
        free(order);
    }
    return true;
}

static void free_tables(gl_gguf *g) {
    if (g->kv)
        for (uint64_t i = 0; i < g->n_kv; i++) free(g->kv[i].strs);
    free(g->kv);
    free(g->tensors);
    g->kv = NULL;
    g->tensors = NULL;
}

gl_gguf *gl_gguf_parse(const uint8_t *buf, uint64_t len, const char *what, char *err, size_t err_len) {
    gl_gguf *g = calloc(1, sizeof *g);
    if (!g) return snprintf(err, err_len, "%s: out of memory", what), NULL;
    snprintf(g->path, sizeof g->path, "%s", what);
    g->base = buf;
    g->size = len;
    cursor c = {buf, 0, len, what, err, err_len};
    if (!walk(&c, g, 0) || !walk(&c, g, 1)) {
        free_tables(g);
        free(g);
        return NULL;
    }
    return g;
}

gl_gguf *gl_gguf_open(const char *path, char *err, size_t err_len) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return snprintf(err, err_len, "cannot open '%s': %s", path, strerror(errno)), NULL;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return snprintf(err, err_len, "'%s' is not a regular file", path), NULL;
    }
    if (st.st_size == 0) {
        close(fd);
        return snprintf(err, err_len, "%s: the file is empty, not a GGUF model", path), NULL;
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return snprintf(err, err_len, "cannot map '%s': %s", path, strerror(errno)), NULL;
    gl_gguf *g = gl_gguf_parse(map, (uint64_t)st.st_size, path, err, err_len);
    if (!g) {
        munmap(map, (size_t)st.st_size);
        return NULL;
    }
    g->mapped = true;
    return g;
}

void gl_gguf_close(gl_gguf *g) {
    if (!g) return;
    if (g->mapped) munmap((void *)g->base, g->size);
    free_tables(g);
    free(g);
}

const gguf_kv *gl_gguf_find(const gl_gguf *g, const char *key) {
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (gl_gguf_str_eq(g->kv[i].key, key)) return &g->kv[i];
    return NULL;
}

const gguf_tensor *gl_gguf_tensor(const gl_gguf *g, const char *name) {
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (gl_gguf_str_eq(g->tensors[i].name, name)) return &g->tensors[i];
    return NULL;
}

static bool is_signed(gguf_value_type t) { return t == GGUF_INT8 || t == GGUF_INT16 || t == GGUF_INT32 || t == GGUF_INT64; }
static bool is_unsigned(gguf_value_type t) {
    return t == GGUF_UINT8 || t == GGUF_UINT16 || t == GGUF_UINT32 || t == GGUF_UINT64;
}

bool gl_gguf_get_int(const gl_gguf *g, const char *key, int64_t lo, int64_t hi, int64_t *out, char *err, size_t n) {
    const gguf_kv *kv = gl_gguf_find(g, key);
    if (!kv) return snprintf(err, n, "%s: the metadata has no '%s'", g->path, key), false;
    bool ok;
    int64_t v = 0;
    if (is_signed(kv->type)) ok = true, v = kv->v.i;
    else if (is_unsigned(kv->type)) ok = kv->v.u <= (uint64_t)INT64_MAX, v = (int64_t)kv->v.u;
    else return snprintf(err, n, "%s: '%s' is a %s, not an integer", g->path, key, value_name[kv->type]), false;
    if (!ok || v < lo || v > hi)
        return snprintf(err, n, "%s: '%s' is %lld, outside [%lld, %lld]", g->path, key, (long long)v, (long long)lo,
                        (long long)hi), false;
    *out = v;
    return true;
}

bool gl_gguf_get_float(const gl_gguf *g, const char *key, double *out, char *err, size_t n) {
    const gguf_kv *kv = gl_gguf_find(g, key);
    if (!kv) return snprintf(err, n, "%s: the metadata has no '%s'", g->path, key), false;
    if (kv->type == GGUF_FLOAT32 || kv->type == GGUF_FLOAT64) *out = kv->v.f;
    else if (is_signed(kv->type)) *out = (double)kv->v.i;
    else if (is_unsigned(kv->type)) *out = (double)kv->v.u;
    else return snprintf(err, n, "%s: '%s' is a %s, not a number", g->path, key, value_name[kv->type]), false;
    return true;
}

bool gl_gguf_get_str(const gl_gguf *g, const char *key, gguf_str *out, char *err, size_t n) {
    const gguf_kv *kv = gl_gguf_find(g, key);
    if (!kv) return snprintf(err, n, "%s: the metadata has no '%s'", g->path, key), false;
    if (kv->type != GGUF_STRING)
        return snprintf(err, n, "%s: '%s' is a %s, not a string", g->path, key, value_name[kv->type]), false;
    *out = kv->v.s;
    return true;
}

double gl_gguf_arr_number(const gguf_kv *kv, uint64_t i) {
    const uint8_t *b = kv->arr + i * value_size[kv->arr_type];
    switch (kv->arr_type) {
    case GGUF_UINT8: case GGUF_BOOL: return b[0];
    case GGUF_INT8: return (int8_t)b[0];
    case GGUF_UINT16: { uint16_t x; memcpy(&x, b, 2); return x; }
    case GGUF_INT16: { int16_t x; memcpy(&x, b, 2); return x; }
    case GGUF_UINT32: { uint32_t x; memcpy(&x, b, 4); return x; }
    case GGUF_INT32: { int32_t x; memcpy(&x, b, 4); return x; }
    case GGUF_FLOAT32: { float x; memcpy(&x, b, 4); return x; }
    case GGUF_UINT64: { uint64_t x; memcpy(&x, b, 8); return (double)x; }
    case GGUF_INT64: { int64_t x; memcpy(&x, b, 8); return (double)x; }
    case GGUF_FLOAT64: { double x; memcpy(&x, b, 8); return x; }
    default: return 0;
    }
}

/* ---------------------------------------------------------------- writing */

typedef struct {
    uint8_t *p;
    size_t len, cap;
} bytes;

static void put(bytes *b, const void *src, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            fprintf(stderr, "gguf writer: out of memory\n");
            exit(1);
        }
        b->p = p, b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, src, n);
    b->len += n;
}
static void put_u32(bytes *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(bytes *b, uint64_t v) { put(b, &v, 8); }
static void put_string(bytes *b, const char *s) {
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}

struct gl_gguf_writer {
    bytes kv, info, data;
    uint64_t n_kv, n_tensors;
};

gl_gguf_writer *gl_gguf_writer_new(void) { return calloc(1, sizeof(gl_gguf_writer)); }

static void put_key(gl_gguf_writer *w, const char *key, gguf_value_type t) {
    put_string(&w->kv, key);
    put_u32(&w->kv, t);
    w->n_kv++;
}
void gl_gguf_put_u32(gl_gguf_writer *w, const char *key, uint32_t v) { put_key(w, key, GGUF_UINT32), put_u32(&w->kv, v); }
void gl_gguf_put_i32(gl_gguf_writer *w, const char *key, int32_t v) { put_key(w, key, GGUF_INT32), put(&w->kv, &v, 4); }
void gl_gguf_put_f32(gl_gguf_writer *w, const char *key, float v) { put_key(w, key, GGUF_FLOAT32), put(&w->kv, &v, 4); }
void gl_gguf_put_bool(gl_gguf_writer *w, const char *key, bool v) {
    uint8_t b = v;
    put_key(w, key, GGUF_BOOL), put(&w->kv, &b, 1);
}
void gl_gguf_put_str(gl_gguf_writer *w, const char *key, const char *v) { put_key(w, key, GGUF_STRING), put_string(&w->kv, v); }
void gl_gguf_put_str_array(gl_gguf_writer *w, const char *key, const char *const *v, uint64_t count) {
    put_key(w, key, GGUF_ARRAY);
    put_u32(&w->kv, GGUF_STRING);
    put_u64(&w->kv, count);
    for (uint64_t i = 0; i < count; i++) put_string(&w->kv, v[i]);
}
void gl_gguf_put_i32_array(gl_gguf_writer *w, const char *key, const int32_t *v, uint64_t count) {
    put_key(w, key, GGUF_ARRAY);
    put_u32(&w->kv, GGUF_INT32);
    put_u64(&w->kv, count);
    put(&w->kv, v, count * 4);
}
void gl_gguf_put_f32_array(gl_gguf_writer *w, const char *key, const float *v, uint64_t count) {
    put_key(w, key, GGUF_ARRAY);
    put_u32(&w->kv, GGUF_FLOAT32);
    put_u64(&w->kv, count);
    put(&w->kv, v, count * 4);
}

static void put_gstr(bytes *b, gguf_str s) {
    put_u64(b, s.len);
    put(b, s.ptr, s.len);
}

bool gl_gguf_put_kv_copy(gl_gguf_writer *w, const gguf_kv *kv) {
    if (kv->type == GGUF_ARRAY && kv->arr_type == GGUF_ARRAY) return false;
    put_gstr(&w->kv, kv->key);
    put_u32(&w->kv, kv->type);
    w->n_kv++;
    switch (kv->type) {
    case GGUF_STRING: put_gstr(&w->kv, kv->v.s); break;
    case GGUF_ARRAY:
        put_u32(&w->kv, kv->arr_type);
        put_u64(&w->kv, kv->arr_count);
        if (kv->arr_type == GGUF_STRING)
            for (uint64_t i = 0; i < kv->arr_count; i++) put_gstr(&w->kv, kv->strs[i]);
        else put(&w->kv, kv->arr, kv->arr_count * value_size[kv->arr_type]);
        break;
    case GGUF_FLOAT32: { float f = (float)kv->v.f; put(&w->kv, &f, 4); break; }
    case GGUF_FLOAT64: put(&w->kv, &kv->v.f, 8); break;
    case GGUF_INT8: case GGUF_INT16: case GGUF_INT32: case GGUF_INT64:
        put(&w->kv, &kv->v.i, value_size[kv->type]); break; /* little-endian: the low bytes come first */
    default: put(&w->kv, &kv->v.u, value_size[kv->type]); break;
    }
    return true;
}

void gl_gguf_put_tensor(gl_gguf_writer *w, const char *name, ggml_type type, int n_dims, const int64_t *ne,
                        const void *data, uint64_t n_bytes) {
    static const uint8_t zeros[32] = {0};
    while (w->data.len % 32) put(&w->data, zeros, 1);
    put_string(&w->info, name);
    put_u32(&w->info, (uint32_t)n_dims);
    for (int d = 0; d < n_dims; d++) put_u64(&w->info, (uint64_t)ne[d]);
    put_u32(&w->info, type);
    put_u64(&w->info, w->data.len);
    put(&w->data, data, n_bytes);
    w->n_tensors++;
}

uint8_t *gl_gguf_writer_bytes(const gl_gguf_writer *w, uint64_t *len) {
    bytes out = {0};
    put(&out, "GGUF", 4);
    put_u32(&out, 3);
    put_u64(&out, w->n_tensors);
    put_u64(&out, w->n_kv);
    put(&out, w->kv.p, w->kv.len);
    put(&out, w->info.p, w->info.len);
    static const uint8_t zeros[32] = {0};
    while (out.len % 32) put(&out, zeros, 1);
    put(&out, w->data.p, w->data.len);
    *len = out.len;
    return out.p;
}

bool gl_gguf_writer_save(const gl_gguf_writer *w, const char *path, char *err, size_t err_len) {
    uint64_t len;
    uint8_t *b = gl_gguf_writer_bytes(w, &len);
    gl_atomic a;
    FILE *f = gl_atomic_open(&a, path);
    if (!f) {
        free(b);
        return snprintf(err, err_len, "cannot create '%s': %s", path, strerror(errno)), false;
    }
    bool ok = fwrite(b, 1, len, f) == len;
    free(b);
    if (!gl_atomic_commit(&a) || !ok) return snprintf(err, err_len, "cannot write '%s'", path), false;
    return true;
}

void gl_gguf_writer_free(gl_gguf_writer *w) {
    if (!w) return;
    free(w->kv.p);
    free(w->info.p);
    free(w->data.p);
    free(w);
}
