#include "tensor.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "op_impl.h"
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

/* ------------------------------------------------------------------ devices */

/* defined by kernels/cuda/backend.cu when a build links the CUDA kernels (real or emulated); absent otherwise */
extern const gl_backend gl_backend_cuda __attribute__((weak));

bool gl_cuda_linked(void) { return &gl_backend_cuda != NULL; }
bool gl_cuda_present(void) { return gl_cuda_linked() && gl_backend_cuda.available(); }

const gl_backend *gl_backend_of(gl_device d, const char *op) {
    if (d == GL_CPU) return &gl_backend_cpu;
    if (!gl_cuda_linked())
        gl_fatal(op, "a tensor is on the cuda device but this build has no CUDA kernels (make CUDA=1)");
    return &gl_backend_cuda;
}

void gl_op_unsupported(const char *op, gl_device d, const char *what) {
    gl_fatal(op, "is not supported on the %s device (%s); compute it on the CPU", gl_device_name(d), what);
}

const gl_backend *gl_backend_need(gl_device d, const char *op, size_t slot_offset, const char *slot) {
    const gl_backend *be = gl_backend_of(d, op);
    void (*fn)(void);
    memcpy(&fn, (const char *)be + slot_offset, sizeof fn);
    if (!fn) {
        char what[96];
        snprintf(what, sizeof what, "its %s backend has no %s kernel", be->name, slot);
        gl_op_unsupported(op, d, what);
    }
    return be;
}

/* the slots by name, for gl_supports_op */
static const struct {
    const char *name;
    size_t offset;
} slot_names[] = {
#define GL_SLOT_NAME(name, ret, args) {#name, offsetof(gl_backend, name)},
    GL_BACKEND_SLOTS(GL_SLOT_NAME)
#undef GL_SLOT_NAME
};

bool gl_supports_op(gl_device d, const char *slot) {
    if (d != GL_CPU && !gl_cuda_linked()) return false;
    const gl_backend *be = d == GL_CPU ? &gl_backend_cpu : &gl_backend_cuda;
    for (size_t i = 0; i < sizeof slot_names / sizeof slot_names[0]; i++)
        if (!strcmp(slot_names[i].name, slot)) {
            void (*fn)(void);
            memcpy(&fn, (const char *)be + slot_names[i].offset, sizeof fn);
            return fn != NULL;
        }
    return false;
}

int gl_backend_slots(const char **names, int max) {
    int n = (int)(sizeof slot_names / sizeof slot_names[0]);
    for (int i = 0; i < n && i < max; i++) names[i] = slot_names[i].name;
    return n;
}

const char *gl_device_name(gl_device d) { return d == GL_CUDA ? "cuda" : "cpu"; }

/* ------------------------------------------------------------------ arena */

/* Chunk headers live on the host; a chunk's memory is host memory, or device memory for the device arena. */
typedef struct chunk {
    struct chunk *next;
    size_t cap, used;
    unsigned char *data;
} chunk;

typedef struct arena_state {
    chunk *first, *cur;
    size_t used_before_cur; /* bytes used in chunks before cur */
    size_t high_water;
    size_t chunk_mallocs;
    gl_device device; /* whose memory the chunks are */
} arena_state;

/* An engine context: the arenas of one graph at a time, its tape and its grad mode (tensor.h). Each thread works in
 * its current context: its own (gl_context_use) or, by default, the process's. */
struct gl_context {
    arena_state arena, device_arena;
    gl_node *tape_last;
    size_t tape_len;
    int no_grad_depth;
    bool tape_consumed; /* a backward pass has run over the tape since the last reset */
};
static gl_context default_context = {.device_arena = {.device = GL_CUDA}};
static _Thread_local gl_context *current;
static gl_context *ctx(void) { return current ? current : &default_context; }

gl_context *gl_context_new(void) {
    gl_context *c = calloc(1, sizeof *c);
    if (!c) gl_fatal("context", "out of memory");
    c->device_arena.device = GL_CUDA;
    return c;
}

gl_context *gl_context_use(gl_context *c) {
    gl_context *previous = current;
    current = c;
    return previous;
}

enum { ARENA_MIN_CHUNK = 16 << 20 };

static void *arena_alloc(arena_state *a, size_t bytes) {
    bytes = (bytes + 63) & ~(size_t)63;
    if (bytes == 0) bytes = 64;
    while (a->cur && a->cur->used + bytes > a->cur->cap) {
        a->used_before_cur += a->cur->used;
        a->cur = a->cur->next;
        if (a->cur) a->cur->used = 0;
    }
    if (!a->cur) {
        size_t cap = bytes > ARENA_MIN_CHUNK ? bytes : ARENA_MIN_CHUNK;
        chunk *c = malloc(sizeof *c);
        if (!c) gl_fatal("arena", "out of memory");
        c->data = gl_backend_of(a->device, "arena")->alloc(cap);
        if (!c->data) gl_fatal("arena", "out of memory allocating %zu bytes for activations", cap);
        c->next = NULL;
        c->cap = cap;
        c->used = 0;
        a->chunk_mallocs++;
        if (!a->first) a->first = c;
        else {
            chunk *last = a->first;
            while (last->next) last = last->next;
            last->next = c;
        }
        a->cur = c;
    }
    void *p = a->cur->data + a->cur->used;
    a->cur->used += bytes;
    size_t in_use = a->used_before_cur + a->cur->used;
    if (in_use > a->high_water) a->high_water = in_use;
    return p;
}

void *gl_arena_alloc(size_t bytes) { return arena_alloc(&ctx()->arena, bytes); }
void *gl_device_arena_alloc(size_t bytes) { return arena_alloc(&ctx()->device_arena, bytes); }
void *gl_arena_alloc_on(gl_device d, size_t bytes) { return d == GL_CPU ? gl_arena_alloc(bytes) : gl_device_arena_alloc(bytes); }

static void arena_rewind(arena_state *a) {
    for (chunk *c = a->first; c; c = c->next) c->used = 0;
    a->cur = a->first;
    a->used_before_cur = 0;
}

static void arena_free(arena_state *a) {
    chunk *c = a->first;
    while (c) {
        chunk *n = c->next;
        gl_backend_of(a->device, "arena")->free(c->data);
        free(c);
        c = n;
    }
    gl_device device = a->device;
    memset(a, 0, sizeof *a);
    a->device = device;
}

void gl_step_reset(void) {
    gl_context *c = ctx();
    arena_rewind(&c->arena);
    arena_rewind(&c->device_arena);
    c->tape_last = NULL;
    c->tape_len = 0;
    c->tape_consumed = false;
}

/* ---- scopes: a library function frees what it allocated, and nothing its caller holds ---- */

static void arena_mark(const arena_state *a, gl_arena_mark *m) {
    m->chunk = a->cur, m->used = a->cur ? a->cur->used : 0, m->before = a->used_before_cur;
}

static void arena_rewind_to(arena_state *a, const gl_arena_mark *m) {
    if (!m->chunk) { /* nothing was allocated at the mark */
        arena_rewind(a);
        return;
    }
    a->cur = m->chunk;
    a->cur->used = m->used;
    a->used_before_cur = m->before;
}

gl_scope gl_scope_begin(void) {
    gl_context *c = ctx();
    gl_scope s = {.context = c, .tape_last = c->tape_last, .tape_len = c->tape_len};
    arena_mark(&c->arena, &s.host);
    arena_mark(&c->device_arena, &s.device);
    return s;
}

void gl_scope_end(const gl_scope *s) {
    gl_context *c = ctx();
    if (s->context != c) gl_fatal("scope", "ended in another context than it began in");
    arena_rewind_to(&c->arena, &s->host);
    arena_rewind_to(&c->device_arena, &s->device);
    c->tape_last = s->tape_last;
    c->tape_len = s->tape_len;
}

gl_arena_stats gl_arena_stats_get(void) {
    const arena_state *a = &ctx()->arena;
    gl_arena_stats s = {0};
    for (chunk *c = a->first; c; c = c->next) s.capacity += c->cap;
    s.used = a->used_before_cur + (a->cur ? a->cur->used : 0);
    s.high_water = a->high_water;
    s.chunk_mallocs = a->chunk_mallocs;
    return s;
}

void gl_arena_reset_high_water(void) {
    arena_state *a = &ctx()->arena;
    a->high_water = a->used_before_cur + (a->cur ? a->cur->used : 0);
}

void gl_arena_release(void) {
    gl_context *c = ctx();
    arena_free(&c->arena);
    arena_free(&c->device_arena);
    c->tape_last = NULL;
    c->tape_len = 0;
    c->tape_consumed = false;
}

void gl_context_free(gl_context *c) {
    if (!c) return;
    if (c == current) gl_fatal("context", "freed while it is this thread's current context (gl_context_use(NULL) first)");
    arena_free(&c->arena);
    arena_free(&c->device_arena);
    free(c);
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

static void buffer_free(gl_device d, float *b) { gl_backend_of(d, "param")->free(b); }

void gl_param_free(gl_tensor *p) {
    if (!p) return;
    buffer_free(p->device, p->data);
    buffer_free(p->device, p->grad);
    free(p);
}

void gl_param_freeze(gl_tensor *p) {
    buffer_free(p->device, p->grad);
    p->grad = NULL;
    p->requires_grad = false;
}

/* a copy of host floats in a new buffer on device d (zeroed when src is NULL) */
static float *buffer_on(gl_device d, const float *src, int64_t numel, const char *name) {
    if (d == GL_CPU) {
        float *b = param_buffer(numel, name);
        if (src) memcpy(b, src, (size_t)numel * sizeof(float));
        return b;
    }
    const gl_backend *be = gl_backend_of(d, "param");
    size_t bytes = (size_t)numel * sizeof(float);
    float *b = be->alloc(bytes ? bytes : 4);
    if (!b) gl_fatal("param", "out of %s memory for %s (%zu bytes)", be->name, name ? name : "a buffer", bytes);
    if (src) be->upload(b, src, bytes);
    else be->zero(b, bytes);
    return b;
}

float *gl_buffer_alloc(gl_device d, int64_t numel, const char *what) { return buffer_on(d, NULL, numel, what); }
void gl_buffer_free(gl_device d, float *b) { buffer_free(d, b); }

void gl_param_unfreeze(gl_tensor *p) {
    if (!p->grad) p->grad = buffer_on(p->device, NULL, p->numel, p->name);
    p->requires_grad = true;
}

void gl_param_to(gl_tensor *p, gl_device d) {
    if (p->device == d) return;
    if (!p->is_param) gl_fatal("to_device", "%s is not a parameter (activations are made on their inputs' device)",
                               p->name ? p->name : "a tensor");
    float *host_data = p->data, *host_grad = p->grad;
    if (d == GL_CPU) { /* to the CPU: through host copies */
        const gl_backend *from = gl_backend_of(p->device, "param");
        host_data = param_buffer(p->numel, p->name);
        from->download(host_data, p->data, (size_t)p->numel * sizeof(float));
        if (p->grad) {
            host_grad = param_buffer(p->numel, p->name);
            from->download(host_grad, p->grad, (size_t)p->numel * sizeof(float));
        }
        buffer_free(p->device, p->data), buffer_free(p->device, p->grad);
        p->data = host_data, p->grad = p->grad ? host_grad : NULL;
    } else {
        p->data = buffer_on(d, host_data, p->numel, p->name);
        p->grad = host_grad ? buffer_on(d, host_grad, p->numel, p->name) : NULL;
        free(host_data), free(host_grad);
    }
    p->device = d;
}

void gl_device_sync(gl_device d) { gl_backend_of(d, "sync")->synchronize(); }

void gl_copy_to_host(const gl_tensor *t, float *dst) {
    if (!gl_is_contiguous(t)) gl_fatal("copy_to_host", "needs a contiguous tensor");
    size_t bytes = (size_t)t->numel * sizeof(float);
    gl_backend_of(t->device, "copy_to_host")->download(dst, t->data, bytes);
}

float gl_item(const gl_tensor *t) {
    if (t->numel != 1) {
        char s[64];
        gl_fatal("item", "needs a tensor of one element, got shape %s", gl_shape_str(t, s, sizeof s));
    }
    float v;
    gl_copy_to_host(t, &v);
    return v;
}

void *gl_arena_copy_in(gl_device d, const void *host, size_t bytes) {
    void *p = gl_arena_alloc_on(d, bytes);
    gl_backend_of(d, "arena")->upload(p, host, bytes);
    return p;
}

int gl_device_sample(const gl_tensor *logits, float temperature, double u) {
    if (!gl_is_contiguous(logits)) gl_fatal("sample", "needs a contiguous row of logits");
    return GL_CALL(logits->device, "sample", sample, (int)logits->numel, logits->data, temperature, u);
}

gl_tensor *gl_new_on(gl_device d, int ndim, const int *shape) {
    if (d == GL_CPU) return gl_new(ndim, shape);
    gl_tensor *t = gl_arena_alloc(sizeof *t);
    memset(t, 0, sizeof *t);
    set_shape(t, ndim, shape, "new");
    t->data = gl_device_arena_alloc((size_t)t->numel * sizeof(float));
    t->device = d;
    return t;
}

/* host-side element access on a CUDA tensor would read device memory: a clear stop instead */
static void require_cpu(const gl_tensor *t, const char *op) {
    if (t->device != GL_CPU)
        gl_fatal(op, "reads or writes values on the host; %s is on the cuda device (initialise before gl_param_to, "
                     "or copy out with gl_copy_to_host)", t->name ? t->name : "the tensor");
}

void gl_init_normal(gl_tensor *p, gl_rng *rng, float std) {
    require_cpu(p, "init_normal");
    for (int64_t i = 0; i < p->numel; i++) p->data[i] = std * gl_rng_normal(rng);
}

void gl_init_uniform(gl_tensor *p, gl_rng *rng, float lo, float hi) {
    require_cpu(p, "init_uniform");
    for (int64_t i = 0; i < p->numel; i++) p->data[i] = lo + (hi - lo) * gl_rng_uniform(rng);
}

void gl_fill(gl_tensor *t, float value) {
    require_cpu(t, "fill");
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
    require_cpu(t, "get");
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

void gl_no_grad_begin(void) { ctx()->no_grad_depth++; }
void gl_no_grad_end(void) {
    if (ctx()->no_grad_depth > 0) ctx()->no_grad_depth--;
}
bool gl_grad_enabled(void) { return ctx()->no_grad_depth == 0; }
size_t gl_tape_length(void) { return ctx()->tape_len; }

gl_tensor *gl_op_output(const char *op, int ndim, const int *shape, gl_backward_fn backward, gl_node **node_out,
                        int n_in, gl_tensor *const *in) {
    const gl_tensor *first = NULL; /* the first input given: the device every other one must share */
    for (int i = 0; i < n_in; i++) {
        if (!in[i]) continue;
        if (!first) first = in[i];
        else if (in[i]->device != first->device) gl_fatal(op, "inputs are on different devices (cpu and cuda)");
    }
    gl_device dev = first ? first->device : GL_CPU;
    gl_tensor *out = gl_arena_alloc(sizeof *out);
    memset(out, 0, sizeof *out);
    set_shape(out, ndim, shape, op);
    out->device = dev;
    size_t bytes = (size_t)out->numel * sizeof(float);
    out->data = gl_arena_alloc_on(dev, bytes);
    bool needs = false;
    for (int i = 0; i < n_in; i++) needs |= in[i] && in[i]->requires_grad;
    needs &= gl_grad_enabled();
    *node_out = NULL;
    if (!needs) return out;
    out->requires_grad = true;
    out->grad = gl_arena_alloc_on(dev, bytes);
    gl_backend_of(dev, op)->zero(out->grad, bytes);
    gl_node *n = gl_arena_alloc(sizeof *n);
    memset(n, 0, sizeof *n);
    n->op = op;
    n->backward = backward;
    n->out = out;
    n->n_in = n_in;
    for (int i = 0; i < n_in && i < 4; i++) n->in[i] = in[i];
    gl_context *c = ctx();
    n->prev = c->tape_last;
    c->tape_last = n;
    c->tape_len++;
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
    const gl_backend *be = gl_backend_of(loss->device, "backward");
    float g;
    be->download(&g, loss->grad, sizeof g);
    g += 1.0f;
    be->upload(loss->grad, &g, sizeof g);
    gl_context *c = ctx();
    if (c->tape_consumed)
        gl_fatal("backward", "this step's tape was already used by a backward pass: a second one would add every "
                             "gradient again (call gl_step_reset() before the next forward pass)");
    for (gl_node *n = c->tape_last; n; n = n->prev) n->backward(n);
    c->tape_consumed = true;
}

void gl_zero_grad(gl_tensor *const *params, int n) {
    for (int i = 0; i < n; i++)
        if (params[i]->grad)
            gl_backend_of(params[i]->device, "zero_grad")->zero(params[i]->grad, (size_t)params[i]->numel * sizeof(float));
}
