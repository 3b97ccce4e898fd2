#include "optim.h"

#include "op_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static gl_optim *optim_new(gl_optim_kind kind, gl_tensor *const *params, int n, int buffers, int64_t lo, int64_t hi) {
    gl_optim *o = calloc(1, sizeof *o);
    if (!o) gl_fatal("optim", "out of memory");
    o->kind = kind;
    o->n_params = n;
    o->params = malloc((size_t)(n ? n : 1) * sizeof *o->params);
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        if (!params[i]->requires_grad || !params[i]->grad)
            gl_fatal("optim", "parameter %d (%s) has no gradient", i, params[i]->name ? params[i]->name : "unnamed");
        if (params[i]->device != params[0]->device)
            gl_fatal("optim", "parameters are on different devices (%s is on %s, %s on %s)", params[0]->name,
                     gl_device_name(params[0]->device), params[i]->name, gl_device_name(params[i]->device));
        o->params[i] = params[i];
        total += params[i]->numel;
    }
    if (hi > lo) {
        if (lo < 0 || hi > total || params[0]->device != GL_CPU)
            gl_fatal("optim", "a shard [%lld, %lld) of %lld CPU parameters is out of range", (long long)lo, (long long)hi,
                     (long long)total);
        o->shard_lo = lo, o->shard_hi = hi;
        total = hi - lo;
    }
    o->state_floats = total * buffers;
    o->state = calloc((size_t)(o->state_floats ? o->state_floats : 1), sizeof(float));
    if (!o->params || !o->state) gl_fatal("optim", "out of memory for %lld state floats", (long long)o->state_floats);
    if (n) { /* the update's kernel must exist where the parameters are; the state moves there */
        if (kind == GL_SGD) GL_BACKEND(params[0]->device, "sgd", sgd_update);
        else GL_BACKEND(params[0]->device, "adam", adam_update);
        gl_optim_to(o, params[0]->device);
    }
    return o;
}

gl_optim *gl_sgd(gl_tensor *const *params, int n, float lr, float momentum, float weight_decay) {
    gl_optim *o = optim_new(GL_SGD, params, n, 1, 0, 0);
    o->lr = lr;
    o->momentum = momentum;
    o->weight_decay = weight_decay;
    return o;
}

static gl_optim *adam_like(gl_optim_kind kind, gl_tensor *const *params, int n, float lr, float beta1, float beta2,
                           float eps, float weight_decay, int64_t lo, int64_t hi) {
    gl_optim *o = optim_new(kind, params, n, 2, lo, hi);
    o->lr = lr;
    o->beta1 = beta1;
    o->beta2 = beta2;
    o->eps = eps;
    o->weight_decay = weight_decay;
    return o;
}

gl_optim *gl_adam(gl_tensor *const *params, int n, float lr, float beta1, float beta2, float eps, float weight_decay) {
    return adam_like(GL_ADAM, params, n, lr, beta1, beta2, eps, weight_decay, 0, 0);
}

gl_optim *gl_adamw(gl_tensor *const *params, int n, float lr, float beta1, float beta2, float eps, float weight_decay) {
    return adam_like(GL_ADAMW, params, n, lr, beta1, beta2, eps, weight_decay, 0, 0);
}

gl_optim *gl_adamw_shard(gl_tensor *const *params, int n, float lr, float beta1, float beta2, float eps,
                         float weight_decay, int64_t lo, int64_t hi) {
    return adam_like(GL_ADAMW, params, n, lr, beta1, beta2, eps, weight_decay, lo, hi);
}

void gl_optim_step(gl_optim *o) {
    o->step++;
    float bc1 = 1.0f - powf(o->beta1, (float)o->step), bc2 = 1.0f - powf(o->beta2, (float)o->step);
    const gl_backend *be = gl_backend_of(o->device, "optim");
    bool sharded = o->shard_hi > o->shard_lo, decoupled = o->kind == GL_ADAMW;
    int64_t offset = 0, shard = o->shard_hi - o->shard_lo;
    float *state = o->state;
    for (int i = 0; i < o->n_params; offset += o->params[i]->numel, i++) {
        gl_tensor *p = o->params[i];
        int64_t n = p->numel;
        float wd = p->no_weight_decay ? 0.0f : o->weight_decay;
        if (o->kind == GL_SGD) {
            be->sgd_update((size_t)n, p->data, p->grad, state, o->lr, o->momentum, wd, o->step == 1);
            state += n;
            continue;
        }
        float *w = p->data, *m = state, *v = state + n;
        const float *g = p->grad;
        state += 2 * n;
        if (sharded) { /* the part of this parameter inside [lo, hi), with its state at the same place of the shard */
            int64_t a = offset > o->shard_lo ? offset : o->shard_lo, b = offset + n < o->shard_hi ? offset + n : o->shard_hi;
            if (a >= b) continue;
            n = b - a;
            w += a - offset, g += a - offset;
            m = o->state + (a - o->shard_lo), v = o->state + shard + (a - o->shard_lo);
        }
        be->adam_update((size_t)n, w, g, m, v, o->lr, o->beta1, o->beta2, o->eps, decoupled ? 0.0f : wd,
                        decoupled ? wd : 0.0f, bc1, bc2);
    }
}

/* visits the shard's range parameter by parameter: the full layout's m and v positions and the shard's */
static void shard_map(const gl_optim *o, float *full, float *shard, bool to_full) {
    int64_t offset = 0, len = o->shard_hi - o->shard_lo;
    for (int i = 0; i < o->n_params; offset += o->params[i]->numel, i++) {
        int64_t n = o->params[i]->numel;
        int64_t a = offset > o->shard_lo ? offset : o->shard_lo, b = offset + n < o->shard_hi ? offset + n : o->shard_hi;
        if (a >= b) continue;
        float *fm = full + 2 * offset + (a - offset), *fv = fm + n;
        float *sm = shard + (a - o->shard_lo), *sv = sm + len;
        size_t bytes = (size_t)(b - a) * sizeof(float);
        if (to_full) memcpy(fm, sm, bytes), memcpy(fv, sv, bytes);
        else memcpy(sm, fm, bytes), memcpy(sv, fv, bytes);
    }
}

void gl_optim_state_to_full(const gl_optim *o, float *full) { shard_map(o, full, o->state, true); }
void gl_optim_state_from_full(gl_optim *o, const float *full) { shard_map(o, (float *)full, o->state, false); }

void gl_optim_zero_grad(gl_optim *o) { gl_zero_grad(o->params, o->n_params); }

void gl_optim_to(gl_optim *o, gl_device d) {
    if (o->device == d) return;
    size_t bytes = (size_t)(o->state_floats ? o->state_floats : 1) * sizeof(float);
    const gl_backend *from = gl_backend_of(o->device, "optim"), *to = gl_backend_of(d, "optim");
    float *moved = to->alloc(bytes), *host = o->device == GL_CPU ? o->state : malloc(bytes);
    if (!moved || !host) gl_fatal("optim", "out of memory for %zu bytes of state", bytes);
    if (host != o->state) from->download(host, o->state, bytes);
    to->upload(moved, host, bytes);
    if (host != o->state) free(host);
    from->free(o->state);
    o->state = moved;
    o->device = d;
}

void gl_optim_free(gl_optim *o) {
    if (!o) return;
    free(o->params);
    gl_backend_of(o->device, "optim")->free(o->state);
    free(o);
}

float gl_clip_grad_norm(gl_tensor *const *params, int n, float max_norm) {
    if (n == 0) return 0.0f;
    gl_device d = params[0]->device;
    const float **bufs = gl_arena_alloc((size_t)n * sizeof *bufs);
    size_t *lens = gl_arena_alloc((size_t)n * sizeof *lens);
    for (int i = 0; i < n; i++) {
        if (params[i]->device != d) gl_fatal("clip_grad_norm", "parameters are on different devices");
        bufs[i] = params[i]->grad, lens[i] = (size_t)params[i]->numel;
    }
    float norm = GL_CALL(d, "clip_grad_norm", grad_norm, n, bufs, lens);
    if (max_norm > 0.0f && norm > max_norm) {
        float scale = max_norm / (norm + 1e-6f);
        const gl_backend *be = GL_BACKEND(d, "clip_grad_norm", scale);
        for (int i = 0; i < n; i++) be->scale(lens[i], scale, params[i]->grad);
    }
    return norm;
}

size_t gl_grads_count(gl_tensor *const *params, int n) {
    size_t total = 0;
    for (int i = 0; i < n; i++) total += (size_t)params[i]->numel;
    return total;
}

/* a device gradient visits the host through a scratch buffer (the engine's collectives work on host memory) */
static float *host_grad(const gl_tensor *p, float **scratch, size_t *cap) {
    if (p->device == GL_CPU) return p->grad;
    if ((size_t)p->numel > *cap) {
        free(*scratch);
        *cap = (size_t)p->numel;
        if (!(*scratch = malloc(*cap * sizeof(float)))) gl_fatal("gradients", "out of memory for %s", p->name);
    }
    gl_backend_of(p->device, "gradients")->download(*scratch, p->grad, (size_t)p->numel * sizeof(float));
    return *scratch;
}

void gl_grads_accumulate(gl_tensor *const *params, int n, float *sum) {
    float *scratch = NULL;
    size_t cap = 0;
    for (int i = 0; i < n; i++) {
        const float *g = host_grad(params[i], &scratch, &cap);
        for (int64_t j = 0; j < params[i]->numel; j++) sum[j] += g[j];
        sum += params[i]->numel;
    }
    free(scratch);
}

void gl_grads_assign(gl_tensor *const *params, int n, const float *sum, float scale) {
    float *scratch = NULL;
    size_t cap = 0;
    for (int i = 0; i < n; i++) {
        gl_tensor *p = params[i];
        float *g = host_grad(p, &scratch, &cap);
        for (int64_t j = 0; j < p->numel; j++) g[j] = sum[j] * scale;
        if (g != p->grad) gl_backend_of(p->device, "gradients")->upload(p->grad, g, (size_t)p->numel * sizeof(float));
        sum += p->numel;
    }
    free(scratch);
}

/* nanoGPT's schedule: lr_max * (step+1)/warmup during warmup; then cosine from lr_max down to lr_min between
 * warmup and decay_steps; lr_min after. */
float gl_lr_warmup_cosine(int64_t step, int64_t warmup_steps, int64_t decay_steps, float lr_max, float lr_min) {
    if (step < warmup_steps) return lr_max * (float)(step + 1) / (float)warmup_steps;
    if (step >= decay_steps) return lr_min;
    double ratio = (double)(step - warmup_steps) / (double)(decay_steps - warmup_steps);
    double coeff = 0.5 * (1.0 + cos(3.14159265358979323846 * ratio));
    return (float)(lr_min + coeff * (lr_max - lr_min));
}
