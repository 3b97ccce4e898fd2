#include "tensor.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "rng.h"

/* ------------------------------------------------------------------ errors */

_Noreturn void gl_fatal(const char *op, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "gradlab: %s: ", op);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

const char *gl_shape_str(const gl_tensor *t, char *buf, size_t len) {
    size_t k = (size_t)snprintf(buf, len, "[");
    for (int d = 0; d < t->ndim && k < len; d++) k += (size_t)snprintf(buf + k, len - k, d ? ", %d" : "%d", t->shape[d]);
    if (k < len) snprintf(buf + k, len - k, "]");
    return buf;
}

const char *gl_kernels_in_use(void) { return gl_kern()->name; }

/* ------------------------------------------------------------------ arena */

typedef struct chunk {
    struct chunk *next;
    size_t cap, used;
    _Alignas(64) unsigned char data[];
} chunk;

static struct {
    chunk *first, *cur;
    size_t used_before_cur; /* bytes used in chunks before cur */
    size_t high_water;
    size_t chunk_mallocs;
} arena;

enum { ARENA_MIN_CHUNK = 16 << 20 };

void *gl_arena_alloc(size_t bytes) {
    bytes = (bytes + 63) & ~(size_t)63;
    if (bytes == 0) bytes = 64;
    while (arena.cur && arena.cur->used + bytes > arena.cur->cap) {
        arena.used_before_cur += arena.cur->used;
        arena.cur = arena.cur->next;
        if (arena.cur) arena.cur->used = 0;
    }
    if (!arena.cur) {
        size_t cap = bytes > ARENA_MIN_CHUNK ? bytes : ARENA_MIN_CHUNK;
        chunk *c = aligned_alloc(64, sizeof(chunk) + cap);
        if (!c) gl_fatal("arena", "out of memory allocating %zu bytes for activations", cap);
        c->next = NULL;
        c->cap = cap;
        c->used = 0;
        arena.chunk_mallocs++;
        if (!arena.first) arena.first = c;
        else {
            chunk *last = arena.first;
            while (last->next) last = last->next;
            last->next = c;
        }
        arena.cur = c;
    }
    void *p = arena.cur->data + arena.cur->used;
    arena.cur->used += bytes;
    size_t in_use = arena.used_before_cur + arena.cur->used;
    if (in_use > arena.high_water) arena.high_water = in_use;
    return p;
}

static gl_node *tape_last;
static size_t tape_len;

void gl_step_reset(void) {
    for (chunk *c = arena.first; c; c = c->next) c->used = 0;
    arena.cur = arena.first;
    arena.used_before_cur = 0;
    tape_last = NULL;
    tape_len = 0;
}

gl_arena_stats gl_arena_stats_get(void) {
    gl_arena_stats s = {0};
    for (chunk *c = arena.first; c; c = c->next) s.capacity += c->cap;
    s.used = arena.used_before_cur + (arena.cur ? arena.cur->used : 0);
    s.high_water = arena.high_water;
    s.chunk_mallocs = arena.chunk_mallocs;
    return s;
}

void gl_arena_reset_high_water(void) { arena.high_water = arena.used_before_cur + (arena.cur ? arena.cur->used : 0); }

void gl_arena_release(void) {
    chunk *c = arena.first;
    while (c) {
        chunk *n = c->next;
        free(c);
        c = n;
    }
    memset(&arena, 0, sizeof arena);
    tape_last = NULL;
    tape_len = 0;
}

/* ------------------------------------------------------------------ tensors */

static void set_shape(gl_tensor *t, int ndim, const int *shape, const char *op) {
    if (ndim < 0 || ndim > GL_MAX_DIMS) gl_fatal(op, "%d dimensions requested; tensors have 0 to %d", ndim, GL_MAX_DIMS);
    t->ndim = ndim;
    t->numel = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        if (shape[d] < 0) gl_fatal(op, "dimension %d has negative size %d", d, shape[d]);
        t->shape[d] = shape[d];
        t->stride[d] = t->numel;
        t->numel *= shape[d];
    }
}

gl_tensor *gl_new(int ndim, const int *shape) {
    gl_tensor *t = gl_arena_alloc(sizeof *t);
    memset(t, 0, sizeof *t);
    set_shape(t, ndim, shape, "new");
    t->data = gl_arena_alloc((size_t)t->numel * sizeof(float));
    return t;
}

gl_tensor *gl_zeros(int ndim, const int *shape) {
    gl_tensor *t = gl_new(ndim, shape);
    memset(t->data, 0, (size_t)t->numel * sizeof(float));
    return t;
}

gl_tensor *gl_from(int ndim, const int *shape, const float *values) {
    gl_tensor *t = gl_new(ndim, shape);
    memcpy(t->data, values, (size_t)t->numel * sizeof(float));
    return t;
}

/* a zeroed, 64-byte aligned buffer for a parameter's values or gradient */
static float *param_buffer(int64_t numel, const char *name) {
    size_t bytes = ((size_t)numel * sizeof(float) + 63) & ~(size_t)63;
    float *b = aligned_alloc(64, bytes ? bytes : 64);
    if (!b) gl_fatal("param", "out of memory allocating %s (%lld floats)", name ? name : "?", (long long)numel);
    memset(b, 0, (size_t)numel * sizeof(float));
    return b;
}

gl_tensor *gl_param(int ndim, const int *shape, const char *name) {
    gl_tensor *t = calloc(1, sizeof *t);
    if (!t) gl_fatal("param", "out of memory");
    set_shape(t, ndim, shape, "param");
    t->data = param_buffer(t->numel, name);
    t->grad = param_buffer(t->numel, name);
    t->requires_grad = true;
    t->is_param = true;
    t->name = name;
    return t;
}

void gl_param_free(gl_tensor *p) {
    if (!p) return;
    free(p->data);
    free(p->grad);
    free(p);
}

void gl_param_freeze(gl_tensor *p) {
    free(p->grad);
    p->grad = NULL;
    p->requires_grad = false;
}

void gl_param_unfreeze(gl_tensor *p) {
    if (!p->grad) p->grad = param_buffer(p->numel, p->name);
    p->requires_grad = true;
}

void gl_init_normal(gl_tensor *p, gl_rng *rng, float std) {
    for (int64_t i = 0; i < p->numel; i++) p->data[i] = std * gl_rng_normal(rng);
}

void gl_init_uniform(gl_tensor *p, gl_rng *rng, float lo, float hi) {
    for (int64_t i = 0; i < p->numel; i++) p->data[i] = lo + (hi - lo) * gl_rng_uniform(rng);
}

void gl_fill(gl_tensor *t, float value) {
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = value;
}

bool gl_is_contiguous(const gl_tensor *t) {
    int64_t expect = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && t->stride[d] != expect) return false;
        expect *= t->shape[d];
    }
    return true;
}

bool gl_same_shape(const gl_tensor *a, const gl_tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return false;
    return true;
}

float gl_get(const gl_tensor *t, int64_t flat) {
    int64_t off = 0;
    for (int d = t->ndim - 1; d >= 0; d--) {
        off += (flat % t->shape[d]) * t->stride[d];
        flat /= t->shape[d];
    }
    return t->data[off];
}

int gl_axis(const char *op, const gl_tensor *t, int axis) {
    int a = axis < 0 ? axis + t->ndim : axis;
    if (a < 0 || a >= t->ndim) {
        char s[64];
        gl_fatal(op, "axis %d is out of range for a tensor of shape %s", axis, gl_shape_str(t, s, sizeof s));
    }
    return a;
}

/* ------------------------------------------------------------------ autograd */

static int no_grad_depth;

void gl_no_grad_begin(void) { no_grad_depth++; }
void gl_no_grad_end(void) {
    if (no_grad_depth > 0) no_grad_depth--;
}
bool gl_grad_enabled(void) { return no_grad_depth == 0; }
size_t gl_tape_length(void) { return tape_len; }

gl_tensor *gl_op_output(const char *op, int ndim, const int *shape, gl_backward_fn backward, gl_node **node_out,
                        int n_in, gl_tensor *const *in) {
    gl_tensor *out = gl_arena_alloc(sizeof *out);
    memset(out, 0, sizeof *out);
    set_shape(out, ndim, shape, op);
    out->data = gl_arena_alloc((size_t)out->numel * sizeof(float));
    bool needs = false;
    for (int i = 0; i < n_in; i++) needs |= in[i] && in[i]->requires_grad;
    needs &= gl_grad_enabled();
    *node_out = NULL;
    if (!needs) return out;
    out->requires_grad = true;
    out->grad = gl_arena_alloc((size_t)out->numel * sizeof(float));
    memset(out->grad, 0, (size_t)out->numel * sizeof(float));
    gl_node *n = gl_arena_alloc(sizeof *n);
    memset(n, 0, sizeof *n);
    n->op = op;
    n->backward = backward;
    n->out = out;
    n->n_in = n_in;
    for (int i = 0; i < n_in && i < 4; i++) n->in[i] = in[i];
    n->prev = tape_last;
    tape_last = n;
    tape_len++;
    *node_out = n;
    return out;
}

void gl_backward(gl_tensor *loss) {
    if (loss->numel != 1) {
        char s[64];
        gl_fatal("backward", "the loss must have one element, got shape %s", gl_shape_str(loss, s, sizeof s));
    }
    if (!loss->requires_grad || !loss->grad)
        gl_fatal("backward", "the loss does not depend on any tensor that requires a gradient");
    loss->grad[0] += 1.0f;
    for (gl_node *n = tape_last; n; n = n->prev) n->backward(n);
}

void gl_zero_grad(gl_tensor *const *params, int n) {
    for (int i = 0; i < n; i++)
        if (params[i]->grad) memset(params[i]->grad, 0, (size_t)params[i]->numel * sizeof(float));
}
