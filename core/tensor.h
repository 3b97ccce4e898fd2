/* gradlab tensors, the activation arena and the autograd tape.
 *
 * A tensor is f32, up to 4-D, with per-dimension strides (in elements). Two kinds of storage:
 *   parameters  - gl_param(): malloc'd, live until gl_param_free(), always carry a gradient buffer;
 *   activations - every op's output: tensor struct, data and gradient all come from the arena, a bump
 *                 allocator that gl_step_reset() rewinds. After the first step has grown the arena to its
 *                 high-water mark, a training step allocates nothing (gl_arena_stats() shows it).
 * Views (gl_reshape of a contiguous tensor, gl_transpose) share data AND gradient buffer with their base, so they
 * need no backward: what flows into the view's gradient is already in the base's.
 *
 * The tape: each op that produces a tensor needing a gradient appends a node (inputs, output, a backward
 * function, a few saved values) in execution order. gl_backward(loss) seeds d loss = 1 and calls the nodes'
 * backward functions in reverse order, which is a valid reverse topological order because an op can only use
 * tensors created before it. Backward functions accumulate (+=), so a tensor used twice gets both contributions.
 * gl_no_grad_begin()/end() turns recording off (inference): outputs then need no gradient and no nodes are made.
 */
#ifndef GRADLAB_TENSOR_H
#define GRADLAB_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GL_MAX_DIMS 4

/* Where a tensor's data and gradient live. CUDA tensors hold device pointers: every op runs the kernel of its
 * inputs' device (kernels/backend.h: one table per device; CUDA's is linked in by a CUDA build), and an op whose
 * slot that device lacks stops with a message (gl_supports_op asks beforehand). */
typedef enum { GL_CPU = 0, GL_CUDA = 1 } gl_device;

typedef struct gl_tensor {
    int ndim;
    int shape[GL_MAX_DIMS];
    int64_t stride[GL_MAX_DIMS];
    int64_t numel;
    float *data;
    float *grad; /* NULL unless requires_grad; same strides as data */
    bool requires_grad;
    bool is_param;
    bool no_weight_decay; /* parameters only: optimizers skip decoupled/L2 decay for it (biases, norms) */
    gl_device device;
    const char *name;
} gl_tensor;

/* gl_new(GL_DIMS(2, 3)) == gl_new(2, (int[]){2, 3}) */
#define GL_DIMS(...) (int)(sizeof((int[]){__VA_ARGS__}) / sizeof(int)), (int[]){__VA_ARGS__}

/* ---- errors: a programming error (bad shape, bad axis) stops the program with a message naming the op ---- */
_Noreturn void gl_fatal(const char *op, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "[2, 3, 4]" into buf; returns buf */
const char *gl_shape_str(const gl_tensor *t, char *buf, size_t len);

/* ---- creation ---- */
gl_tensor *gl_new(int ndim, const int *shape);   /* arena activation, uninitialised, no gradient */
gl_tensor *gl_zeros(int ndim, const int *shape); /* arena activation, zero-filled */
gl_tensor *gl_from(int ndim, const int *shape, const float *values); /* arena copy of values */
gl_tensor *gl_param(int ndim, const int *shape, const char *name);  /* heap parameter, zeroed, with gradient */
void gl_param_free(gl_tensor *p);
/* A frozen parameter: no gradient buffer and requires_grad false, so backward skips its weight gradient
 * (fine-tuning with adapters trains only the adapters). */
void gl_param_freeze(gl_tensor *p);
void gl_param_unfreeze(gl_tensor *p); /* a zeroed gradient buffer again */
/* Parameter init helpers (values drawn in element order from rng) */
struct gl_rng;
void gl_init_normal(gl_tensor *p, struct gl_rng *rng, float std);
void gl_init_uniform(gl_tensor *p, struct gl_rng *rng, float lo, float hi);
void gl_fill(gl_tensor *t, float value);

bool gl_is_contiguous(const gl_tensor *t);
bool gl_same_shape(const gl_tensor *a, const gl_tensor *b);
/* element at a flat row-major index, honouring strides */
float gl_get(const gl_tensor *t, int64_t flat_index);
/* normalise a possibly negative axis; fatal if out of range */
int gl_axis(const char *op, const gl_tensor *t, int axis);

/* name of the CPU kernel level in use: "avx512", "avx2" or "scalar" (see kernels/cpu/kernels.h) */
const char *gl_kernels_in_use(void);

/* ---- devices ---- */
bool gl_cuda_linked(void);  /* this build has the CUDA kernels (make CUDA=1, or the emulated test builds) */
bool gl_cuda_present(void); /* ... and a device to run them on */
const char *gl_device_name(gl_device d);
/* Moves a parameter's values and gradient to device d (frees the old buffers). Initialise on the CPU first. */
void gl_param_to(gl_tensor *p, gl_device d);
/* A zeroed, long-lived buffer of numel floats on device d (a KV cache, ...); `what` names it in an out-of-memory
 * message. Free with gl_buffer_free on the same device. */
float *gl_buffer_alloc(gl_device d, int64_t numel, const char *what);
void gl_buffer_free(gl_device d, float *b);
void gl_device_sync(gl_device d); /* waits until device d has finished its queued work (timing); no-op on the CPU */
void gl_copy_to_host(const gl_tensor *t, float *dst); /* a contiguous tensor's values into host memory */
float gl_item(const gl_tensor *t);                    /* the value of a one-element tensor, on either device */
gl_tensor *gl_new_on(gl_device d, int ndim, const int *shape); /* gl_new on device d */
/* The next token drawn on the CUDA device from a contiguous row of logits (a CUDA tensor): the argmax when
 * temperature <= 0, else where u * total falls in the running sum of exp((x - max) / temperature) (u in [0, 1)).
 * One int comes back instead of the row. */
int gl_device_sample(const gl_tensor *logits, float temperature, double u);
/* bytes copied from the host into this step's activation memory on device d (ids, targets, masks for ops) */
void *gl_arena_copy_in(gl_device d, const void *host, size_t bytes);
/* Whether device d's backend has a kernel for slot (a name of kernels/backend.h's GL_BACKEND_SLOTS, such as
 * "layernorm_bwd"): false for a device this build lacks. A slot may still decline some configurations (CUDA's
 * binary ops add equal shapes and row broadcasts only); an op that cannot run stops with one message. */
bool gl_supports_op(gl_device d, const char *slot);
/* the slot names in table order (up to max of them into names); returns how many there are */
int gl_backend_slots(const char **names, int max);

/* ---- arena ---- */
void *gl_arena_alloc(size_t bytes); /* 64-byte aligned, in the current context; until gl_step_reset() */
void *gl_device_arena_alloc(size_t bytes); /* the same on the CUDA device (activations of CUDA tensors) */
void *gl_arena_alloc_on(gl_device d, size_t bytes); /* the arena of device d */
void gl_step_reset(void);

/* ---- contexts: the arenas, tape and grad mode of one computation at a time ----
 * Every op allocates from and records on the calling thread's current context: the process's default one, or one
 * made with gl_context_new and selected with gl_context_use (which returns the previous one; NULL selects the
 * default). Two threads, each in its own context, compute independently (parameters are shared read-only; the
 * kernels keep per-thread scratch). A context is used by one thread at a time. */
typedef struct gl_context gl_context;
gl_context *gl_context_new(void);
gl_context *gl_context_use(gl_context *c);
void gl_context_free(gl_context *c); /* its arenas too; not while it is some thread's current context */

/* Scopes: gl_scope_end frees every tensor and tape entry made since gl_scope_begin, and nothing made before, so
 * a library function that computes (a generation step) cleans up after itself without touching its caller's
 * tensors -- which gl_step_reset would. */
typedef struct {
    void *chunk;
    size_t used, before;
} gl_arena_mark;
typedef struct {
    gl_context *context;
    gl_arena_mark host, device;
    struct gl_node *tape_last;
    size_t tape_len;
} gl_scope;
gl_scope gl_scope_begin(void);
void gl_scope_end(const gl_scope *s);           /* drop all activations and the tape */
typedef struct gl_arena_stats {
    size_t used, high_water, capacity;
    size_t chunk_mallocs; /* how many times the arena had to grow, ever */
} gl_arena_stats;
gl_arena_stats gl_arena_stats_get(void);
void gl_arena_release(void); /* free the arena's memory (end of program) */
void gl_arena_reset_high_water(void); /* start measuring the peak anew from what is in use now */

/* ---- autograd ---- */
typedef struct gl_node gl_node;
typedef void (*gl_backward_fn)(gl_node *n);
struct gl_node {
    const char *op;
    gl_backward_fn backward;
    gl_tensor *out;
    gl_tensor *in[4];
    int n_in;
    float fval[4];
    int ival[4];
    void *saved[2];
    gl_node *prev;
};

/* Output tensor of an op on n_in inputs: arena-allocated with `shape` on the inputs' device (they must share one); it requires a gradient iff recording is
 * on and some input does. If so, *node_out receives a fresh tape node (first 4 inputs and the output filled in)
 * for the op to complete with what its backward needs; else *node_out is NULL and nothing is recorded. */
gl_tensor *gl_op_output(const char *op, int ndim, const int *shape, gl_backward_fn backward, gl_node **node_out,
                        int n_in, gl_tensor *const *in);
#define GL_INPUTS(...) (int)(sizeof((gl_tensor *[]){__VA_ARGS__}) / sizeof(gl_tensor *)), (gl_tensor *[]){__VA_ARGS__}

void gl_backward(gl_tensor *loss);
void gl_zero_grad(gl_tensor *const *params, int n);
void gl_no_grad_begin(void);
void gl_no_grad_end(void);
bool gl_grad_enabled(void);
/* nodes on the tape now (tests) */
size_t gl_tape_length(void);

#endif
