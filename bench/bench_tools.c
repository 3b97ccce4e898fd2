/* make bench-tools: constrained decoding on SmolLM2-135M-Instruct (docs/grammar.md).
 *   1. validity: tool calls sampled at temperature 1 under the grammar of the agent's call schema, parsed and
 *      validated: thousands with random logits over the model's vocabulary (every token equally plausible: the
 *      hardest case for a grammar), and a hundred from the model itself, constrained and not (the unconstrained
 *      rate beside it);
 *   2. overhead: decode tokens/s with the schema against without, alternately (A B A B ...), the median of the pairwise
 *      ratios; and the grammar's time per token (mask + accept), with the grammar's caches cold and warm.
 * Figures to out/bench/tools.json. */
#include <omp.h>

#include "agent.h"
#include "bench_util.h"
#include "io.h"
#include "llama.h"
#include "schema.h"

typedef struct {
    llama *m;
    gl_strbuf text;
    int32_t ids[512];
    int n;
} collect;

static bool keep(int32_t tok, void *p) {
    collect *c = p;
    if (c->n < 512) c->ids[c->n++] = tok;
    if (tok == c->m->eot || tok == c->m->eos) return true;
    size_t len;
    const unsigned char *b = gl_bpe_token_bytes(c->m->tok, tok, &len);
    gl_sb_put(&c->text, (const char *)b, len);
    return true;
}

static bool valid(const gl_json *schema, const char *text, size_t len) {
    char err[256];
    gl_json *doc = gl_json_parse(text, len, err, sizeof err);
    bool ok = doc && gl_schema_validate(schema, doc, err, sizeof err);
    gl_json_free(doc);
    return ok;
}

int main(int argc, char **argv) {
    char path[4096], err[512];
    const char *model_path = argc > 1 ? argv[1] : NULL;
    if (!model_path) {
        if (!gl_find_data("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", path, sizeof path)) {
            fprintf(stderr, "bench_tools: no %s (make data DATA_SETS=smollm2)\n", path);
            return 1;
        }
        model_path = path;
    }
    int random_samples = argc > 2 ? atoi(argv[2]) : 2000, model_samples = argc > 3 ? atoi(argv[3]) : 100;
    llama m;
    if (!llama_load(&m, model_path, err, sizeof err)) return fprintf(stderr, "bench_tools: %s\n", err), 1;
    char *schema_text = agent_call_schema();
    gl_json *schema = gl_json_parse(schema_text, strlen(schema_text), err, sizeof err);
    gl_grammar *g = schema ? gl_schema_grammar(schema, err, sizeof err) : NULL;
    if (!g) return fprintf(stderr, "bench_tools: %s\n", err), 1;
    gl_vocab_trie *trie = gl_vocab_trie_from_bpe(m.tok);
    int V = m.cfg.vocab_size;
    int32_t stops[2] = {m.eot, m.eos};
    printf("bench_tools: %s, vocabulary %d (a trie of %d nodes), %d threads\n", model_path, V, gl_vocab_trie_nodes(trie),
           omp_get_max_threads());

    /* 1a. random logits */
    gl_rng rng;
    gl_rng_seed(&rng, 42);
    float *logits = malloc((size_t)V * sizeof *logits), *scratch = malloc((size_t)V * 2 * sizeof *scratch);
    float *noise = malloc((size_t)V * 4 * sizeof *noise);
    for (int i = 0; i < 4 * V; i++) noise[i] = 4.0f * gl_rng_uniform(&rng);
    gl_grammar_matcher *mt = gl_matcher_new(g, trie, stops, 2, 120);
    gl_sampling s = {.temperature = 1, .top_k = 0, .top_p = 1, .grammar = mt};
    int random_valid = 0;
    double t0 = bench_now();
    for (int k = 0; k < random_samples; k++) {
        gl_matcher_reset(mt, 120);
        collect c = {.m = &m};
        for (int n = 0; n < 120; n++) {
            memcpy(logits, noise + (size_t)(gl_rng_uniform(&rng) * 3 * V), (size_t)V * sizeof *logits);
            int32_t t = gl_sample_next(logits, V, &s, &rng, scratch);
            if (t < 0 || t == m.eot || t == m.eos) break;
            keep(t, &c);
        }
        random_valid += c.text.p && valid(schema, c.text.p, c.text.len);
        gl_sb_free(&c.text);
    }
    printf("random logits, temperature 1: %d of %d constrained outputs parse and validate (%.1f s)\n", random_valid,
           random_samples, bench_now() - t0);

    /* 1b. the model, constrained and not */
    const char *roles[] = {"system", "user"};
    const char *texts[] = {agent_system_prompt(), "What is the weather in Paris?"};
    int32_t *prompt = NULL;
    size_t cap = 0;
    int n_prompt = llama_chat_ids(&m, roles, texts, 2, &prompt, &cap);
    llama_cache cache;
    llama_cache_init(&cache, &m, 1024, true);
    int model_valid[2] = {0, 0};
    for (int k = 0; k < model_samples; k++)
        for (int constrained = 0; constrained < 2; constrained++) {
            gl_rng r;
            gl_rng_seed(&r, (uint64_t)k + 1);
            gl_matcher_reset(mt, 96);
            gl_sampling ms = {.temperature = 1, .top_k = 0, .top_p = 1, .grammar = constrained ? mt : NULL};
            collect c = {.m = &m};
            llama_generate(&m, &cache, prompt, n_prompt, 96, &ms, &r, true, keep, &c);
            model_valid[constrained] += c.text.p && valid(schema, c.text.p, c.text.len);
            gl_sb_free(&c.text);
        }
    printf("SmolLM2 at temperature 1, %d samples: valid tool calls %d constrained, %d unconstrained\n", model_samples,
           model_valid[1], model_valid[0]);

    /* 2. overhead: greedy decoding of a call, with and without the grammar, alternately */
    enum { REPS = 7 };
    double tps[2][REPS], ratio[REPS];
    int tokens[2] = {0, 0};
    collect last = {.m = &m};
    for (int rep = 0; rep < REPS; rep++)
        for (int constrained = 0; constrained < 2; constrained++) {
            gl_rng r;
            gl_rng_seed(&r, 1);
            gl_matcher_reset(mt, 96);
            gl_sampling gs = {.temperature = 0, .top_k = 0, .top_p = 1, .grammar = constrained ? mt : NULL};
            collect c = {.m = &m};
            double a = bench_now();
            int made = llama_generate(&m, &cache, prompt, n_prompt, 48, &gs, &r, true, keep, &c);
            double b = bench_now();
            tps[constrained][rep] = made / (b - a), tokens[constrained] = made;
            if (constrained) {
                gl_sb_free(&last.text);
                last = c;
            } else gl_sb_free(&c.text);
        }
    for (int rep = 0; rep < REPS; rep++) ratio[rep] = tps[1][rep] / tps[0][rep];
    double r_med = bench_median(ratio, REPS);
    printf("decode: %.1f tokens/s with the schema, %.1f without (%d and %d tokens a run); median ratio %.3f\n",
           bench_median(tps[1], REPS), bench_median(tps[0], REPS), tokens[1], tokens[0], r_med);
    /* the grammar's own time over the constrained output's tokens: a fresh grammar (every mask walked), then again */
    double us[2];
    for (int pass = 0; pass < 2; pass++) {
        gl_grammar *fresh = pass == 0 ? gl_schema_grammar(schema, err, sizeof err) : g;
        gl_grammar_matcher *fm = gl_matcher_new(fresh, trie, stops, 2, 96);
        double a = bench_now();
        for (int i = 0; i < last.n; i++) {
            gl_matcher_mask_logits(fm, logits, V);
            gl_matcher_accept_token(fm, last.ids[i]);
        }
        us[pass] = (bench_now() - a) * 1e6 / (last.n ? last.n : 1);
        gl_matcher_free(fm);
        if (pass == 0) gl_grammar_free(fresh);
    }
    printf("grammar time per token (mask + accept, %d tokens): %.0f us cold, %.0f us warm\n", last.n, us[0], us[1]);
    printf("the call: %s\n", last.text.p ? last.text.p : "");
    gl_grammar_stats st = gl_grammar_get_stats(g);
    if (system("mkdir -p out/bench") != 0) return 1;
    gl_json_writer w;
    if (!gl_jw_open(&w, "out/bench/tools.json")) return fprintf(stderr, "bench_tools: cannot write out/bench\n"), 1;
    gl_jw_object(&w, NULL);
    gl_jw_string(&w, "model", model_path);
    gl_jw_int(&w, "threads", omp_get_max_threads());
    gl_jw_int(&w, "random_logit_samples", random_samples);
    gl_jw_int(&w, "random_logit_valid", random_valid);
    gl_jw_int(&w, "model_samples", model_samples);
    gl_jw_int(&w, "model_valid_constrained", model_valid[1]);
    gl_jw_int(&w, "model_valid_unconstrained", model_valid[0]);
    gl_jw_number(&w, "decode_tokens_per_s_constrained", bench_median(tps[1], REPS));
    gl_jw_number(&w, "decode_tokens_per_s_unconstrained", bench_median(tps[0], REPS));
    gl_jw_number(&w, "median_ratio_constrained_over_unconstrained", r_med);
    gl_jw_number(&w, "grammar_us_per_token_cold", us[0]);
    gl_jw_number(&w, "grammar_us_per_token_warm", us[1]);
    gl_jw_int(&w, "grammar_states", st.states);
    gl_jw_int(&w, "masks_computed", st.masks_computed);
    gl_jw_int(&w, "masks_reused", st.masks_reused);
    gl_jw_end(&w);
    if (!gl_jw_close(&w)) return 1;
    printf("bench_tools: out/bench/tools.json\n");
    gl_sb_free(&last.text);
    gl_matcher_free(mt);
    free(prompt), free(logits), free(scratch), free(noise);
    llama_cache_free(&cache);
    gl_vocab_trie_free(trie);
    gl_grammar_free(g);
    gl_json_free(schema);
    free(schema_text);
    llama_free(&m);
    return 0;
}
