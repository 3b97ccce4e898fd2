/* models/gpt against PyTorch: tests/ref/gpt_small.bin is written by tests/ref/gpt_reference.py (see there).
 *
 * Tolerances. Both sides compute in float32 but sum in different orders (our GEMM's K blocks and SIMD lanes
 * against MKL/OpenBLAS inside torch), so each result carries a relative rounding error of a few 1e-7 per
 * operation, compounded through 2 blocks. We compare each tensor by max|ours - torch| / max|torch|: logits and
 * loss within 1e-4, gradients within 2e-4 (backward runs about twice as many operations), and AdamW losses over
 * 5 steps within 1e-4 relative. A wrong op (missed mask, transposed weight, absent bias gradient) is off by 1e-2
 * or more. */
#include <sys/stat.h>

#include "bpe.h"
#include "gpt.h"
#include "testutil.h"
#include "sample.h"

typedef struct {
    int hdr[16];
    float hyper[5];
    gpt model;
    int32_t *idx, *targets;
    float *logits, loss, *grads, *losses;
    int B, T, n_steps;
} reference;

static void read_exact(FILE *f, void *dst, size_t bytes) {
    cr_assert(fread(dst, 1, bytes, f) == bytes, "tests/ref/gpt_small.bin is truncated");
}

static void load_reference(reference *r) {
    FILE *f = fopen("tests/ref/gpt_small.bin", "rb");
    cr_assert(f, "cannot open tests/ref/gpt_small.bin (run the tests from the repository root)");
    read_exact(f, r->hdr, sizeof r->hdr);
    cr_assert(r->hdr[0] == 0x47505452 && r->hdr[1] == 1, "bad magic/version");
    read_exact(f, r->hyper, sizeof r->hyper);
    gpt_config c = {.n_layer = r->hdr[2], .n_head = r->hdr[3], .n_embd = r->hdr[4], .block_size = r->hdr[5],
                    .vocab_size = r->hdr[6], .padded_vocab_size = r->hdr[7], .bias = r->hdr[8] != 0,
                    .dropout = 0.0f, .ln_eps = 1e-5f};
    gpt_build(&r->model, c);
    cr_assert(r->model.n_params == r->hdr[12], "parameter count %d, reference has %d", r->model.n_params, r->hdr[12]);
    r->B = r->hdr[9];
    r->T = r->hdr[10];
    r->n_steps = r->hdr[11];
    for (int i = 0; i < r->model.n_params; i++)
        read_exact(f, r->model.params[i]->data, (size_t)r->model.params[i]->numel * 4);
    size_t n = (size_t)r->B * r->T, V = (size_t)c.vocab_size;
    r->idx = malloc(n * 4);
    r->targets = malloc(n * 4);
    r->logits = malloc(n * V * 4);
    r->grads = malloc((size_t)r->model.n_weights * 4);
    r->losses = malloc((size_t)r->n_steps * 4);
    read_exact(f, r->idx, n * 4);
    read_exact(f, r->targets, n * 4);
    read_exact(f, r->logits, n * V * 4);
    read_exact(f, &r->loss, 4);
    read_exact(f, r->grads, (size_t)r->model.n_weights * 4);
    read_exact(f, r->losses, (size_t)r->n_steps * 4);
    char extra;
    cr_assert(fread(&extra, 1, 1, f) == 0, "tests/ref/gpt_small.bin has trailing bytes");
    fclose(f);
}

static void free_reference(reference *r) {
    gpt_free(&r->model);
    free(r->idx);
    free(r->targets);
    free(r->logits);
    free(r->grads);
    free(r->losses);
}

static double rel_err(const float *ours, const float *ref, size_t n) {
    double maxdiff = 0, maxref = 1e-30;
    for (size_t i = 0; i < n; i++) {
        maxdiff = fmax(maxdiff, fabs((double)ours[i] - ref[i]));
        maxref = fmax(maxref, fabs((double)ref[i]));
    }
    return maxdiff / maxref;
}

Test(gpt, logits_loss_and_gradients_match_pytorch) {
    reference r;
    load_reference(&r);
    gl_tensor *logits = gpt_forward(&r.model, r.idx, r.B, r.T, NULL, false);
    size_t n = (size_t)r.B * r.T * r.model.cfg.vocab_size;
    cr_assert(logits->numel == (int64_t)n);
    double e = rel_err(logits->data, r.logits, n);
    cr_assert(e < 1e-4, "logits differ from PyTorch by %.3g (relative to max |logit|)", e);
    cr_log_info("logits: max relative difference to PyTorch %.3g", e);
    gl_tensor *loss = gl_cross_entropy(logits, r.targets, -1);
    cr_assert(fabs(loss->data[0] - r.loss) < 1e-4 * fabs(r.loss), "loss %.7f, PyTorch %.7f", (double)loss->data[0],
              (double)r.loss);
    gl_backward(loss);
    const float *g = r.grads;
    double worst = 0;
    for (int i = 0; i < r.model.n_params; i++) {
        gl_tensor *p = r.model.params[i];
        double ge = rel_err(p->grad, g, (size_t)p->numel);
        cr_assert(ge < 2e-4, "gradient of %s differs from PyTorch by %.3g", p->name, ge);
        worst = fmax(worst, ge);
        g += p->numel;
    }
    cr_log_info("gradients: worst max relative difference to PyTorch %.3g", worst);
    free_reference(&r);
}

Test(gpt, adamw_steps_match_pytorch) {
    reference r;
    load_reference(&r);
    gl_optim *opt = gl_adamw(r.model.params, r.model.n_params, r.hyper[0], r.hyper[1], r.hyper[2], r.hyper[3], r.hyper[4]);
    for (int s = 0; s < r.n_steps; s++) {
        gl_step_reset();
        gl_optim_zero_grad(opt);
        gl_tensor *loss = gpt_loss(&r.model, r.idx, r.targets, r.B, r.T, NULL, false);
        gl_backward(loss);
        gl_optim_step(opt);
        cr_assert(fabs(loss->data[0] - r.losses[s]) < 1e-4 * fabs(r.losses[s]), "step %d: loss %.7f, PyTorch %.7f", s,
                  (double)loss->data[0], (double)r.losses[s]);
    }
    gl_optim_free(opt);
    free_reference(&r);
}

Test(gpt, kv_cache_generation_equals_full_forward) {
    gpt m;
    gpt_build(&m, (gpt_config){.n_layer = 2, .n_head = 2, .n_embd = 16, .block_size = 24, .vocab_size = 11,
                               .padded_vocab_size = gpt_padded_vocab(11), .bias = true, .ln_eps = 1e-5f});
    gpt_init(&m, 3);
    for (int i = 0; i < m.n_params; i++) /* larger weights than GPT-2 init, so greedy choices are not ties */
        for (int64_t j = 0; j < m.params[i]->numel; j++) m.params[i]->data[j] *= m.params[i]->ndim == 2 ? 10.0f : 1.0f;
    int32_t seq[24] = {3, 1, 4};
    int len = 3;
    /* greedy without a cache: the whole prefix through gpt_forward each time */
    while (len < 24) {
        gl_step_reset();
        gl_no_grad_begin();
        gl_tensor *lg = gpt_forward(&m, seq, 1, len, NULL, false);
        gl_no_grad_end();
        const float *last = lg->data + (size_t)(len - 1) * 11;
        int best = 0;
        for (int v = 1; v < 11; v++) best = last[v] > last[best] ? v : best;
        seq[len++] = best;
    }
    /* greedy with the cache */
    gpt_kv_cache cache;
    gpt_kv_cache_init(&cache, &m);
    float logits[11];
    int32_t out[24] = {3, 1, 4};
    for (int t = 0; t < 23; t++) {
        gpt_forward_cached(&m, &cache, out[t], logits);
        if (t >= 2) {
            int best = 0;
            for (int v = 1; v < 11; v++) best = logits[v] > logits[best] ? v : best;
            out[t + 1] = best;
        }
    }
    for (int t = 0; t < 24; t++) cr_assert(out[t] == seq[t], "position %d: cached %d, full %d", t, out[t], seq[t]);
    int distinct = 0;
    for (int t = 4; t < 24; t++) distinct += out[t] != out[t - 1];
    cr_assert(distinct > 0, "degenerate test: generation repeats one token");
    gpt_kv_cache_free(&cache);
    gpt_free(&m);
}

/* A block of 1 or 2 positions: the sliding window keeps at least the last token (a window of 0 used to crash
 * generation), and the cached and uncached paths give the same tokens. */
typedef struct {
    int32_t ids[16];
    int n;
} token_list;

static bool keep_token(int32_t tok, void *ctx) {
    token_list *l = ctx;
    if (l->n < 16) l->ids[l->n++] = tok;
    return true;
}

Test(gpt, generation_slides_the_window_for_tiny_blocks) {
    for (int bs = 1; bs <= 3; bs++) {
        gpt m;
        gpt_build(&m, (gpt_config){.n_layer = 1, .n_head = 1, .n_embd = 8, .block_size = bs, .vocab_size = 7,
                                   .padded_vocab_size = gpt_padded_vocab(7), .bias = true, .ln_eps = 1e-5f});
        gpt_init(&m, 5);
        int32_t prompt[1] = {2};
        gl_sampling s = {.temperature = 0.9f, .top_k = 0, .top_p = 1.0f};
        token_list got[2] = {{{0}, 0}, {{0}, 0}};
        for (int cache = 0; cache < 2; cache++) {
            gl_rng rng;
            gl_rng_seed(&rng, 11);
            cr_assert_eq(gl_generate(&m, prompt, 1, 9, &s, &rng, cache, keep_token, &got[cache]), 9, "block %d", bs);
        }
        cr_assert(got[0].n == 9 && got[1].n == 9, "block %d: %d and %d tokens emitted", bs, got[0].n, got[1].n);
        for (int i = 0; i < 9; i++)
            cr_assert_eq(got[0].ids[i], got[1].ids[i], "block %d token %d: no cache %d, cache %d", bs, i, got[0].ids[i],
                         got[1].ids[i]);
        gpt_free(&m);
    }
}

/* ---------------------------------------------------------------- Hugging Face safetensors */

#include "gpt_io.h"

Test(gpt, safetensors_logits_match_pytorch) {
    gpt m;
    char err[512];
    cr_assert(gpt_load_safetensors("tests/ref/gpt2_tiny.safetensors", "tests/ref/gpt2_tiny.config.json", &m, err,
                                   sizeof err),
              "%s", err);
    FILE *f = fopen("tests/ref/gpt2_tiny.logits.bin", "rb");
    cr_assert(f);
    int hdr[2];
    cr_assert(fread(hdr, 4, 2, f) == 2);
    int T = hdr[0], V = hdr[1];
    cr_assert(V == m.cfg.vocab_size && m.cfg.padded_vocab_size == 64);
    int32_t ids[64];
    float *ref = malloc((size_t)T * V * 4);
    cr_assert(fread(ids, 4, (size_t)T, f) == (size_t)T && fread(ref, 4, (size_t)T * V, f) == (size_t)T * V);
    fclose(f);
    gl_tensor *logits = gpt_forward(&m, ids, 1, T, NULL, false);
    double e = rel_err(logits->data, ref, (size_t)T * V);
    cr_assert(e < 1e-4, "logits from the safetensors model differ from PyTorch by %.3g", e);
    free(ref);
    gpt_free(&m);
}

/* writes a damaged copy of the tiny safetensors file; mutate edits the bytes */
static const char *damaged(const char *name, void (*mutate)(unsigned char *buf, size_t *len)) {
    static char path[256];
    FILE *f = fopen("tests/ref/gpt2_tiny.safetensors", "rb");
    unsigned char *buf = malloc(1 << 20);
    size_t len = fread(buf, 1, 1 << 20, f);
    fclose(f);
    mutate(buf, &len);
    snprintf(path, sizeof path, "/tmp/gradlab_test_%d_%s.safetensors", (int)getpid(), name);
    f = fopen(path, "wb");
    fwrite(buf, 1, len, f);
    fclose(f);
    free(buf);
    return path;
}
static void truncate_data(unsigned char *b, size_t *len) { (void)b, *len -= 100; }
static void huge_header(unsigned char *b, size_t *len) { (void)len, b[5] = 0x7f; }
static void cut_header(unsigned char *b, size_t *len) { (void)b, *len = 40; }
static void bad_dtype(unsigned char *b, size_t *len) {
    char *p = strstr((char *)b + 8, "\"F32\"");
    memcpy(p, "\"F16\"", 5);
    (void)len;
}
static void renamed_tensor(unsigned char *b, size_t *len) {
    char *p = strstr((char *)b + 8, "ln_f.weight");
    memcpy(p, "ln_g", 4);
    (void)len;
}

static void expect_load_error(const char *path, const char *config, const char *needle) {
    gpt m;
    char err[512] = "";
    cr_assert(!gpt_load_safetensors(path, config, &m, err, sizeof err), "loading %s should fail", path);
    cr_assert(strstr(err, needle), "error \"%s\" lacks \"%s\"", err, needle);
}

Test(gpt, safetensors_rejects_bad_files_clearly) {
    const char *cfg = "tests/ref/gpt2_tiny.config.json";
    expect_load_error(damaged("trunc", truncate_data), cfg, "outside the");
    expect_load_error(damaged("hlen", huge_header), cfg, "header length");
    expect_load_error(damaged("cut", cut_header), cfg, "header");
    expect_load_error(damaged("dtype", bad_dtype), cfg, "its shape and dtype F16 need 1600");
    expect_load_error(damaged("name", renamed_tensor), cfg, "not part of a GPT-2");
    expect_load_error("tests/ref/no_such_file.safetensors", cfg, "cannot open");
    FILE *f = fopen("/tmp/gradlab_test_cfg.json", "w");
    fputs("{\"n_layer\": 2, \"n_head\": 2, \"n_embd\": 32, \"n_positions\": 12, \"vocab_size\": 50}", f);
    fclose(f);
    expect_load_error("tests/ref/gpt2_tiny.safetensors", "/tmp/gradlab_test_cfg.json", "needs 27456 floats");
    f = fopen("/tmp/gradlab_test_cfg.json", "w"); /* a smaller model fits in the bytes, but not in the shapes */
    fputs("{\"n_layer\": 2, \"n_head\": 2, \"n_embd\": 8, \"n_positions\": 12, \"vocab_size\": 50}", f);
    fclose(f);
    expect_load_error("tests/ref/gpt2_tiny.safetensors", "/tmp/gradlab_test_cfg.json", "wrong shape");
    f = fopen("/tmp/gradlab_test_cfg.json", "w");
    fputs("{\"n_layer\": 2, \"n_head\": 2,", f);
    fclose(f);
    expect_load_error("tests/ref/gpt2_tiny.safetensors", "/tmp/gradlab_test_cfg.json", "not a JSON object");
    f = fopen("/tmp/gradlab_test_cfg.json", "w"); /* a number no int holds: refused, not cast */
    fputs("{\"n_layer\": 2, \"n_head\": 2, \"n_embd\": 1e300, \"n_positions\": 12, \"vocab_size\": 50}", f);
    fclose(f);
    expect_load_error("tests/ref/gpt2_tiny.safetensors", "/tmp/gradlab_test_cfg.json", "positive integer \"n_embd\"");
    f = fopen("/tmp/gradlab_test_cfg.json", "w");
    fputs("{\"n_layer\": 2, \"n_head\": 2, \"n_embd\": 32, \"n_positions\": 12, \"vocab_size\": 50, "
          "\"layer_norm_epsilon\": 1e300}", f);
    fclose(f);
    expect_load_error("tests/ref/gpt2_tiny.safetensors", "/tmp/gradlab_test_cfg.json", "eps");
    remove("/tmp/gradlab_test_cfg.json");
}

/* A checkpoint whose embedded tokenizer does not cover the model's vocabulary is refused when read (decoding an id
 * the tokenizer lacks used to read out of bounds). */
Test(gpt, checkpoint_with_a_smaller_tokenizer_is_refused) {
    const char *specials[1] = {"<|end|>"};
    gl_bpe *t = gl_bpe_from_merges(NULL, 0, specials, 1); /* 257 tokens */
    size_t len;
    unsigned char *bytes = gl_bpe_serialize(t, &len);
    gl_bpe_free(t);
    char err[512];
    mkdir("out", 0755), mkdir("out/test", 0755);
    for (int vocab = 257; vocab <= 300; vocab += 43) {
        gpt m, back;
        gpt_build(&m, (gpt_config){.n_layer = 1, .n_head = 1, .n_embd = 8, .block_size = 4, .vocab_size = vocab,
                                   .padded_vocab_size = gpt_padded_vocab(vocab), .bias = true, .ln_eps = 1e-5f});
        gpt_run_state s = {.batch = 1, .val_fraction = 0.1f, .bpe_len = len, .bpe = bytes};
        cr_assert(gpt_save_checkpoint("out/test/tok.ckpt", &m, NULL, &s, err, sizeof err), "%s", err);
        gpt_run_state r;
        bool ok = gpt_load_checkpoint("out/test/tok.ckpt", &back, &r, NULL, NULL, NULL, err, sizeof err);
        if (vocab == 257) {
            cr_assert(ok, "%s", err);
            free(r.symbols), free(r.bpe), gpt_free(&back);
        } else {
            cr_assert_not(ok);
            cr_assert(strstr(err, "its BPE tokenizer has 257 tokens but the model's vocabulary is 300"), "%s", err);
        }
        gpt_free(&m);
    }
    free(bytes);
    remove("out/test/tok.ckpt");
}

/* ---- several rows per forward: prompts in one pass, sequences in one batch (what serve's scheduler runs) ---- */
#include "scheduler.h"

static void sharp_model(gpt *m) { /* larger weights than GPT-2 init, so greedy choices are not near ties */
    gpt_build(m, (gpt_config){.n_layer = 2, .n_head = 2, .n_embd = 16, .block_size = 32, .vocab_size = 11,
                              .padded_vocab_size = gpt_padded_vocab(11), .bias = true, .ln_eps = 1e-5f});
    gpt_init(m, 3);
    for (int i = 0; i < m->n_params; i++)
        for (int64_t j = 0; j < m->params[i]->numel; j++) m->params[i]->data[j] *= m->params[i]->ndim == 2 ? 10.0f : 1.0f;
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int v = 1; v < n; v++) best = x[v] > x[best] ? v : best;
    return best;
}

/* greedy continuation of a prompt, one token per forward (the reference) */
static void greedy_alone(gpt *m, const int32_t *prompt, int n, int steps, int32_t *out) {
    gpt_kv_cache c;
    gpt_kv_cache_init(&c, m);
    float logits[11];
    for (int t = 0; t < n; t++) gpt_forward_cached(m, &c, prompt[t], logits);
    for (int s = 0; s < steps; s++) {
        out[s] = argmax(logits, 11);
        gpt_forward_cached(m, &c, out[s], logits);
    }
    gpt_kv_cache_free(&c);
}

Test(gpt, rows_decode_prompts_in_one_pass_and_batches_as_each_alone) {
    gpt m;
    sharp_model(&m);
    int32_t prompts[4][5] = {{3, 1, 4}, {1, 5}, {9, 2, 6, 5, 3}, {5}};
    int lens[4] = {3, 2, 5, 1}, steps = 12;
    int32_t want[4][12], got[4][12];
    for (int i = 0; i < 4; i++) greedy_alone(&m, prompts[i], lens[i], steps, want[i]);
    gpt_kv_cache caches[4], *rows[4];
    float last[4][11];
    for (int i = 0; i < 4; i++) { /* each prompt in one forward: the same cache once per token */
        gpt_kv_cache_init(&caches[i], &m);
        gpt_kv_cache *same[5] = {&caches[i], &caches[i], &caches[i], &caches[i], &caches[i]};
        gl_scope sc = gl_scope_begin();
        gl_tensor *lg = gpt_forward_rows(&m, same, prompts[i], lens[i], true);
        cr_assert_eq(lg->numel, 11);
        gl_copy_to_host(lg, last[i]);
        gl_scope_end(&sc);
        cr_assert_eq(caches[i].len, lens[i]);
        cr_assert(!memcmp(caches[i].ids, prompts[i], (size_t)lens[i] * sizeof(int32_t)), "the cache records the ids");
        got[i][0] = argmax(last[i], 11);
        rows[i] = &caches[i];
    }
    for (int s = 1; s < steps; s++) { /* then all four sequences one token per step, together */
        int32_t next[4] = {got[0][s - 1], got[1][s - 1], got[2][s - 1], got[3][s - 1]};
        gl_scope sc = gl_scope_begin();
        gl_tensor *lg = gpt_forward_rows(&m, rows, next, 4, false);
        float all[4 * 11];
        gl_copy_to_host(lg, all);
        gl_scope_end(&sc);
        for (int i = 0; i < 4; i++) got[i][s] = argmax(all + i * 11, 11);
    }
    for (int i = 0; i < 4; i++) {
        cr_assert(!memcmp(got[i], want[i], sizeof want[i]), "sequence %d: batched tokens differ from alone", i);
        gpt_kv_cache_free(&caches[i]);
    }
    int distinct = 0;
    for (int s = 1; s < steps; s++) distinct += want[2][s] != want[2][s - 1];
    cr_assert(distinct > 0, "degenerate test: generation repeats one token");
    gpt_free(&m);
}

typedef struct {
    int32_t ids[32];
    int n;
} gpt_reply;

static bool collect_reply(sched_request *r, int32_t tok, const float *logits) {
    (void)logits;
    gpt_reply *g = r->user;
    if (g->n < 32) g->ids[g->n++] = tok;
    return true;
}

Test(gpt, the_scheduler_serves_a_gpt_as_each_request_alone) {
    gpt m;
    sharp_model(&m);
    char err[256];
    cr_assert_null(sched_new(sched_gpt(&m), (sched_config){.slots = 2, .ctx = 64, .prefill_chunk = 4, .max_queue = 4},
                             err, sizeof err), "a context past the block size is refused");
    cr_assert(strstr(err, "context 64 (2 to the model's 32)"), "%s", err);
    sched *s = sched_new(sched_gpt(&m), (sched_config){.slots = 2, .ctx = 32, .prefill_chunk = 3, .max_queue = 8}, err,
                         sizeof err);
    cr_assert(s, "%s", err);
    int32_t prompts[5][5] = {{3, 1, 4}, {1, 5}, {9, 2, 6, 5, 3}, {5}, {3, 1, 4, 1}};
    int lens[5] = {3, 2, 5, 1, 4};
    sched_request r[5];
    gpt_reply out[5];
    memset(out, 0, sizeof out);
    for (int i = 0; i < 5; i++) {
        r[i] = (sched_request){.prompt = prompts[i], .n_prompt = lens[i], .max_tokens = 8, .sampling = {0, 0, 1.0f},
                               .on_token = collect_reply, .user = &out[i]};
        cr_assert(sched_submit(s, &r[i]));
    }
    while (sched_step(s)) {}
    for (int i = 0; i < 5; i++) {
        int32_t want[8];
        greedy_alone(&m, prompts[i], lens[i], 8, want);
        cr_assert_eq(out[i].n, 8);
        cr_assert(!memcmp(out[i].ids, want, sizeof want), "request %d's tokens differ from alone", i);
        cr_assert_str_eq(r[i].finish, "length");
    }
    sched_stats st = sched_get_stats(s);
    cr_assert_gt(st.decode_rows, st.steps, "decode steps carried several rows at once");
    /* the next turn: the last request's prompt and two of its tokens; the slot that served it keeps them */
    int32_t turn[6] = {3, 1, 4, 1, out[4].ids[0], out[4].ids[1]};
    gpt_reply next = {{0}, 0};
    sched_request rn = {.prompt = turn, .n_prompt = 6, .max_tokens = 5, .sampling = {0, 0, 1.0f},
                        .on_token = collect_reply, .user = &next};
    cr_assert(sched_submit(s, &rn));
    while (sched_step(s)) {}
    cr_assert_eq(rn.prefix_reused, 5, "the cached prefix was reused (all but the last prompt token)");
    int32_t want[5];
    greedy_alone(&m, turn, 6, 5, want);
    cr_assert(!memcmp(next.ids, want, sizeof want), "after prefix reuse the tokens are those of the turn alone");
    sched_free(s);
    gpt_free(&m);
}
