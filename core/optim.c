#include "optim.h"

#include "kernels.h"
#include "kernels_cuda.h"

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
        if (lo < 0 || hi > total || params[0]->device == GL_CUDA)
            gl_fatal("optim", "a shard [%lld, %lld) of %lld CPU parameters is out of range", (long long)lo, (long long)hi,
                     (long long)total);
        o->shard_lo = lo, o->shard_hi = hi;
        total = hi - lo;
    }
    o->state_floats = total * buffers;
    o->state = calloc((size_t)(o->state_floats ? o->state_floats : 1), sizeof(float));
    if (!o->params || !o->state) gl_fatal("optim", "out of memory for %lld state floats", (long long)o->state_floats);
    if (n && params[0]->device == GL_CUDA) {
        if (kind == GL_SGD) gl_fatal("optim", "SGD has no CUDA path; use Adam or AdamW for parameters on the cuda device");
        gl_optim_to(o, GL_CUDA);
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
    float *state = o->state;
    if (o->device == GL_CUDA) { /* Adam/AdamW only (gl_sgd refuses CUDA parameters) */
        const gl_cuda_kernels *cu = gl_cu("optim");
        bool decoupled = o->kind == GL_ADAMW;
        for (int i = 0; i < o->n_params; i++) {
            gl_tensor *p = o->params[i];
            float wd = p->no_weight_decay ? 0.0f : o->weight_decay;
            cu->adam_update((size_t)p->numel, p->data, p->grad, state, state + p->numel, o->lr, o->beta1, o->beta2,
                            o->eps, decoupled ? 0.0f : wd, decoupled ? wd : 0.0f, bc1, bc2);
            state += 2 * p->numel;
        }
        return;
    }
    bool sharded = o->shard_hi > o->shard_lo;
    int64_t offset = 0, shard = o->shard_hi - o->shard_lo;
    for (int i = 0; i < o->n_params; offset += o->params[i]->numel, i++) {
        gl_tensor *p = o->params[i];
        int64_t n = p->numel;
        float wd = p->no_weight_decay ? 0.0f : o->weight_decay;
        float *w = p->data;
        const float *g = p->grad;
        if (sharded) { /* the part of this parameter inside [lo, hi), with its state at the same place of the shard */
            int64_t a = offset > o->shard_lo ? offset : o->shard_lo, b = offset + n < o->shard_hi ? offset + n : o->shard_hi;
            if (a >= b) continue;
            gl_kern()->adam_update((size_t)(b - a), w + (a - offset), g + (a - offset), o->state + (a - o->shard_lo),
                                   o->state + shard + (a - o->shard_lo), o->lr, o->beta1, o->beta2, o->eps,
                                   o->kind == GL_ADAMW ? 0.0f : wd, o->kind == GL_ADAMW ? wd : 0.0f, bc1, bc2);
            continue;
        }
        if (o->kind == GL_SGD) {
            float *buf = state;
            state += n;
            for (int64_t j = 0; j < n; j++) {
                float gj = g[j] + wd * w[j];
                if (o->momentum != 0.0f) {
                    buf[j] = o->step == 1 ? gj : o->momentum * buf[j] + gj;
                    gj = buf[j];
                }
                w[j] -= o->lr * gj;
            }
            continue;
        }
        float *m = state, *v = state + n;
        state += 2 * n;
        bool decoupled = o->kind == GL_ADAMW;
        const gl_kernels *k = gl_kern();
        enum { CHUNK = 1 << 15 };
#pragma omp parallel for schedule(static) if (n > 4 * CHUNK)
        for (int64_t c = 0; c < n; c += CHUNK) {
            size_t len = (size_t)(n - c < CHUNK ? n - c : CHUNK);
            k->adam_update(len, w + c, g + c, m + c, v + c, o->lr, o->beta1, o->beta2, o->eps, decoupled ? 0.0f : wd,
                           decoupled ? wd : 0.0f, bc1, bc2);
        }
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
    const gl_cuda_kernels *cu = gl_cu("optim");
    if (d == GL_CUDA) {
        float *dev = cu->alloc(bytes);
        cu->upload(dev, o->state, bytes);
        free(o->state);
        o->state = dev;
    } else {
        float *host = malloc(bytes);
        if (!host) gl_fatal("optim", "out of memory for %zu bytes of state", bytes);
        cu->download(host, o->state, bytes);
        cu->free(o->state);
        o->state = host;
    }
    o->device = d;
}

void gl_optim_free(gl_optim *o) {
    if (!o) return;
    free(o->params);
    if (o->device == GL_CUDA) gl_cu("optim")->free(o->state);
    else free(o->state);
    free(o);
}

/* on the device: the sum of squares in a fixed order there, the norm's one float back, the factor sent in */
static float clip_grad_norm_cuda(gl_tensor *const *params, int n, float max_norm) {
    const gl_cuda_kernels *cu = gl_cu("clip_grad_norm");
    const float **bufs = gl_arena_alloc((size_t)n * sizeof *bufs);
    size_t *lens = gl_arena_alloc((size_t)n * sizeof *lens), scratch_floats = 4;
    for (int i = 0; i < n; i++) {
        if (params[i]->device != GL_CUDA) gl_fatal("clip_grad_norm", "parameters are on different devices");
        bufs[i] = params[i]->grad, lens[i] = (size_t)params[i]->numel;
        scratch_floats += cu->sum_scratch(lens[i]);
    }
    float *scratch = gl_device_arena_alloc(scratch_floats * sizeof(float)), *ss = gl_device_arena_alloc(sizeof(float));
    cu->sum_squares(n, bufs, lens, scratch, ss);
    float sum_squares;
    cu->download(&sum_squares, ss, sizeof sum_squares);
    float norm = sqrtf(sum_squares);
    if (max_norm > 0.0f && norm > max_norm) {
        float scale = max_norm / (norm + 1e-6f), *factor = gl_arena_copy_in(GL_CUDA, &scale, sizeof scale);
        for (int i = 0; i < n; i++) cu->scale(lens[i], factor, params[i]->grad);
    }
    return norm;
}

float gl_clip_grad_norm(gl_tensor *const *params, int n, float max_norm) {
    if (n && params[0]->device == GL_CUDA) return clip_grad_norm_cuda(params, n, max_norm);
    double ss = 0.0;
    for (int i = 0; i < n; i++)
        for (int64_t j = 0; j < params[i]->numel; j++) ss += (double)params[i]->grad[j] * params[i]->grad[j];
    float norm = (float)sqrt(ss);
    if (max_norm > 0.0f && norm > max_norm) {
        float scale = max_norm / (norm + 1e-6f);
        for (int i = 0; i < n; i++)
            for (int64_t j = 0; j < params[i]->numel; j++) params[i]->grad[j] *= scale;
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
    if (p->device != GL_CUDA) return p->grad;
    if ((size_t)p->numel > *cap) {
        free(*scratch);
        *cap = (size_t)p->numel;
        if (!(*scratch = malloc(*cap * sizeof(float)))) gl_fatal("gradients", "out of memory for %s", p->name);
    }
    gl_cu("gradients")->download(*scratch, p->grad, (size_t)p->numel * sizeof(float));
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
        float *g = p->device == GL_CUDA ? host_grad(p, &scratch, &cap) : p->grad;
        for (int64_t j = 0; j < p->numel; j++) g[j] = sum[j] * scale;
        if (p->device == GL_CUDA) gl_cu("gradients")->upload(p->grad, g, (size_t)p->numel * sizeof(float));
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
