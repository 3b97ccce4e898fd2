/* Engine contexts and scopes (core/tensor.h): two threads, each in its own context, generate the same tokens as one
 * after the other; a library call frees its own tensors and none of its caller's; a second backward pass over a
 * consumed tape stops with a message instead of adding every gradient again. */
#include <pthread.h>

#include "gpt.h"
#include "sample.h"
#include "testutil.h"

static gpt model;

static void build_model(void) {
    if (model.n_params) return;
    gpt_build(&model, (gpt_config){.n_layer = 2, .n_head = 2, .n_embd = 32, .block_size = 24, .vocab_size = 40,
                                   .padded_vocab_size = 64, .bias = true, .ln_eps = 1e-5f});
    gpt_init(&model, 11);
}

typedef struct {
    int32_t prompt[4];
    uint64_t seed;
    bool use_cache, own_context;
    int32_t out[64];
    int n;
} job;

static bool collect(int32_t tok, void *ctx) {
    job *j = ctx;
    j->out[j->n++] = tok;
    return true;
}

static void *generate(void *arg) {
    job *j = arg;
    gl_context *c = j->own_context ? gl_context_new() : NULL;
    gl_context *previous = gl_context_use(c);
    gl_rng rng;
    gl_rng_seed(&rng, j->seed);
    gl_sampling s = {.temperature = 0.9f, .top_k = 0, .top_p = 1.0f};
    gl_generate(&model, j->prompt, 4, 40, &s, &rng, j->use_cache, collect, j); /* 44 > block 24: the window slides */
    gl_step_reset();
    gl_context_use(previous);
    gl_context_free(c);
    return NULL;
}

Test(context, two_threads_in_their_own_contexts_generate_what_one_thread_does) {
    build_model();
    job alone[2] = {{{1, 2, 3, 4}, 5, true, false, {0}, 0}, {{7, 7, 8, 9}, 6, false, false, {0}, 0}};
    for (int i = 0; i < 2; i++) generate(&alone[i]); /* one after the other, in the default context */
    for (int round = 0; round < 3; round++) {
        job together[2] = {alone[0], alone[1]};
        pthread_t t[2];
        for (int i = 0; i < 2; i++) {
            together[i].n = 0, together[i].own_context = true;
            cr_assert_eq(pthread_create(&t[i], NULL, generate, &together[i]), 0);
        }
        for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
        for (int i = 0; i < 2; i++) {
            cr_assert_eq(together[i].n, 40);
            cr_assert(!memcmp(together[i].out, alone[i].out, sizeof alone[i].out), "thread %d's tokens differ", i);
        }
    }
}

/* gl_generate used to call gl_step_reset: every tensor its caller held was overwritten by the generation */
Test(context, a_generation_keeps_the_callers_tensors) {
    build_model();
    gl_step_reset();
    gl_tensor *mine = gl_new(GL_DIMS(1000));
    for (int i = 0; i < 1000; i++) mine->data[i] = (float)i;
    size_t used = gl_arena_stats_get().used;
    job j = {{1, 2, 3, 4}, 5, true, false, {0}, 0};
    gl_rng rng;
    gl_rng_seed(&rng, 5);
    gl_sampling s = {.temperature = 0.9f, .top_k = 0, .top_p = 1.0f};
    for (int cache = 0; cache < 2; cache++) {
        gl_generate(&model, j.prompt, 4, 40, &s, &rng, cache, collect, (j.n = 0, &j));
        for (int i = 0; i < 1000; i++) cr_assert_eq(mine->data[i], (float)i, "the caller's tensor was overwritten at %d", i);
        cr_assert_eq(gl_arena_stats_get().used, used, "the generation freed what it allocated, and only that");
    }
}

Test(context, a_scope_frees_what_was_made_inside_it_only) {
    gl_step_reset();
    gl_tensor *a = gl_param(GL_DIMS(3), "a");
    a->data[0] = 1, a->data[1] = 2, a->data[2] = 3;
    gl_tensor *kept = gl_mul(a, a); /* on the tape, in the arena */
    size_t tape = gl_tape_length(), used = gl_arena_stats_get().used;
    gl_scope s = gl_scope_begin();
    for (int i = 0; i < 100; i++) gl_add(gl_new(GL_DIMS(4096)), gl_new(GL_DIMS(4096)));
    cr_assert_gt(gl_arena_stats_get().used, used);
    gl_scope_end(&s);
    cr_assert_eq(gl_tape_length(), tape);
    cr_assert_eq(gl_arena_stats_get().used, used);
    cr_assert(kept->data[0] == 1 && kept->data[1] == 4 && kept->data[2] == 9);
    gl_backward(gl_sum_all(kept)); /* the kept graph still differentiates */
    cr_assert(a->grad[0] == 2 && a->grad[1] == 4 && a->grad[2] == 6);
    gl_param_free(a);
}

static void backward_twice(void) {
    gl_step_reset();
    gl_tensor *a = gl_param(GL_DIMS(2), "a");
    gl_tensor *loss = gl_sum_all(gl_mul(a, a));
    gl_backward(loss);
    gl_backward(gl_sum_all(gl_mul(a, a)));
}

Test(context, a_second_backward_over_a_consumed_tape_is_an_error) {
    expect_fatal(backward_twice, (const char *[]){"backward", "already used by a backward pass", "gl_step_reset", NULL});
}
