/* infer: generate text from a trained checkpoint (or Hugging Face GPT-2 weights, with token ids), streaming
 * tokens as they come, with temperature / top-k / top-p sampling and a KV cache. `infer --help` for flags. */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "codec.h"
#include "gpt.h"
#include "gpt_io.h"
#include "grammar.h"
#include "io.h"
#include "llama.h"
#include "perplexity.h"
#include "sample.h"
#include "schema.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: infer --checkpoint CKPT [--lora ADAPTERS] [--prompt TEXT | --prompt-ids 1,2,3] [flags]\n"
            "       infer --safetensors model.safetensors --config config.json --prompt-ids 1,2,3 [flags]\n"
            "       infer --gguf MODEL.gguf [--chat TEXT | --chat - | --prompt TEXT | --prompt-ids 1,2,3] [flags]\n"
            "  --chat TEXT         one chat turn through the model's ChatML template (greedy unless --temperature);\n"
            "  --chat -            interactive: one user turn per line on stdin, history kept, Ctrl-D ends\n"
            "  --system TEXT       the system message (default: the template's own)\n"
            "  --ctx N             context positions for a GGUF model (default min(its context, 4096))\n"
            "  --max-new-tokens N  tokens to generate (200)      --temperature F  0 = greedy (0.8)\n"
            "  --top-k N           keep the N most likely (0 = all)  --top-p F   nucleus mass (1 = all)\n"
            "  --seed N            sampling seed (1337)          --threads N\n"
            "  --print-ids         print generated ids (one line, space-separated) instead of text\n"
            "  --no-kv-cache       recompute the whole window at every step (the reference path)\n"
            "  --encoder F --merges F  GPT-2 tokenizer files for text prompts with --safetensors\n"
            "                      (default tokenizer/gpt2/encoder.json and vocab.bpe)\n"
            "  --lora FILE         LoRA adapters from `train --finetune CKPT --lora ...`, folded into the weights\n"
            "  --device cpu|cuda   cuda (a `make CUDA=1` build): the forward, the KV cache and greedy or temperature\n"
            "                      sampling on the GPU (one token back per step); --top-k/--top-p sample on the CPU;\n"
            "                      a GGUF model is dequantized to fp32 there once (not llama.cpp's bits: the CPU's)\n"
            "Constrained output (docs/grammar.md): only tokens that keep the output valid are sampled\n"
            "  --grammar FILE      a grammar (gradlab's EBNF, start rule root)\n"
            "  --json-schema FILE  a JSON Schema: the output is a JSON document that follows it\n"
            "Quality of a GGUF model on a text (docs/quantization.md):\n"
            "  --perplexity FILE   perplexity over the text with a sliding window (no generation)\n"
            "  --window N --stride N  the window (512) and how far it moves (256): each token after the first window\n"
            "                      is predicted from at least window - stride tokens\n"
            "  --max-tokens N      score only the first N tokens of the text\n"
            "  --compare REF.gguf  also run REF on the same windows: KL(REF || model) per token, same top token %%\n"
            "Without --prompt or --prompt-ids the prompt is a newline.\n");
}

static void fail(const char *msg, const char *detail) {
    fprintf(stderr, "infer: %s%s\n", msg, detail);
    exit(1);
}

/* --grammar FILE or --json-schema FILE compiled, or NULL when neither is given */
static gl_grammar *load_constraint(const char *grammar_path, const char *schema_path) {
    if (!grammar_path && !schema_path) return NULL;
    if (grammar_path && schema_path) fail("give --grammar or --json-schema, not both", "");
    const char *path = grammar_path ? grammar_path : schema_path;
    char err[512];
    unsigned char *text;
    size_t len;
    if (!gl_read_whole_file(path, &text, &len, err, sizeof err)) fail(err, "");
    gl_grammar *g = NULL;
    if (grammar_path) g = gl_grammar_parse((const char *)text, err, sizeof err);
    else {
        gl_json *schema = gl_json_parse((const char *)text, len, err, sizeof err);
        if (schema) g = gl_schema_grammar(schema, err, sizeof err);
        gl_json_free(schema);
    }
    free(text);
    if (!g) {
        fprintf(stderr, "infer: %s: %s\n", path, err);
        exit(1);
    }
    return g;
}

/* after a constrained generation: an output the grammar does not accept is an error, said plainly */
static void check_constraint(gl_grammar_matcher *m, int made, int max_new) {
    if (!m || gl_matcher_complete(m)) return;
    if (made >= max_new)
        fprintf(stderr, "infer: the output is incomplete: the grammar needs at least %d more bytes than "
                        "--max-new-tokens %d allowed\n", gl_matcher_min_remaining(m), max_new);
    else if (gl_grammar_error(gl_matcher_grammar(m))) fprintf(stderr, "infer: %s\n", gl_grammar_error(gl_matcher_grammar(m)));
    else fprintf(stderr, "infer: no token of the vocabulary can continue the grammar here (it needs a byte no token "
                         "has); the output is incomplete\n");
    exit(1);
}

/* ---- GGUF models: prompts, one chat turn, or an interactive chat ---- */
typedef struct {
    llama *m;
    bool print_ids;
    int count;
    char *reply; /* the text of a chat reply, kept for the history */
    size_t reply_len;
} llama_emit_ctx;

static bool llama_emit(int32_t tok, void *p) {
    llama_emit_ctx *c = p;
    if (tok == c->m->eot || tok == c->m->eos) return true; /* the stop token is not text */
    c->count++;
    if (c->print_ids || !c->m->tok) printf(c->count > 1 ? " %d" : "%d", tok); /* no tokenizer: ids are the text */
    else {
        size_t len;
        const unsigned char *b = gl_bpe_token_bytes(c->m->tok, tok, &len);
        if (!gl_bpe_is_special(c->m->tok, tok)) fwrite(b, 1, len, stdout);
        c->reply = realloc(c->reply, c->reply_len + len + 1);
        memcpy(c->reply + c->reply_len, b, len);
        c->reply_len += len;
        c->reply[c->reply_len] = 0;
    }
    fflush(stdout);
    return true;
}

static int32_t *parse_ids(const char *text, int V, int *n_out) {
    int32_t *ids = malloc((strlen(text) / 2 + 2) * sizeof(int32_t));
    int n = 0;
    const char *p = text;
    while (*p) {
        char *end;
        errno = 0;
        long id = strtol(p, &end, 10);
        if (end == p || errno) fail("--prompt-ids must be comma-separated integers, got: ", text);
        if (id < 0 || id >= V) {
            fprintf(stderr, "infer: prompt id %ld (position %d) is outside the vocabulary [0, %d)\n", id, n, V);
            exit(1);
        }
        ids[n++] = (int32_t)id;
        p = end;
        if (*p == ',') p++;
        else if (*p) fail("--prompt-ids must be comma-separated integers, got: ", text);
    }
    *n_out = n;
    return ids;
}

/* ---- perplexity of a GGUF model on a text, and its comparison with a reference model ---- */
static int run_perplexity(const char *path, const char *ref_path, const char *text_path, int window, int stride,
                          int64_t max_tokens) {
    char err[512];
    llama m, r;
    if (!llama_load(&m, path, err, sizeof err)) fail(err, "");
    if (!m.tok) fail(path, ": the model has no tokenizer gradlab reads, which --perplexity needs");
    if (window > m.cfg.ctx_len) fail("--window is beyond the model's context", "");
    if (ref_path) {
        if (!llama_load(&r, ref_path, err, sizeof err)) fail("--compare: ", err);
        if (r.cfg.vocab_size != m.cfg.vocab_size)
            fail("--compare: the reference's vocabulary differs from the model's: ", ref_path);
    }
    unsigned char *text;
    size_t bytes;
    if (!gl_read_whole_file(text_path, &text, &bytes, err, sizeof err)) fail("--perplexity: ", err);
    if (max_tokens && bytes > (size_t)max_tokens * 16) bytes = (size_t)max_tokens * 16; /* ~4 bytes a token */
    int32_t *ids = NULL;
    size_t cap = 0, n = 0;
    if (m.add_bos) {
        ids = malloc(sizeof *ids), cap = 1;
        ids[n++] = m.bos;
    }
    int32_t *body = NULL;
    size_t body_cap = 0, nb = gl_bpe_encode(m.tok, text, bytes, &body, &body_cap);
    free(text);
    ids = realloc(ids, (n + nb + 1) * sizeof *ids);
    memcpy(ids + n, body, nb * sizeof *ids), n += nb;
    free(body);
    (void)cap;
    if (max_tokens && (int64_t)n > max_tokens) n = (size_t)max_tokens;
    if (n < 2) fail(text_path, ": fewer than 2 tokens");
    llama_scorer sm, sr;
    llama_scorer_init(&sm, &m, window);
    if (ref_path) llama_scorer_init(&sr, &r, window);
    gl_ppl_stats st[2];
    gl_lm_logits_fn fns[2] = {llama_scorer_logits, llama_scorer_logits};
    void *models[2] = {ref_path ? (void *)&sr : (void *)&sm, &sm};
    int k = ref_path ? 1 : 0;
    gl_perplexity(fns, models, ref_path ? 2 : 1, m.cfg.vocab_size, ids, (int64_t)n, window, stride, true, st);
    printf("perplexity %.4f over %lld tokens of %s (%d windows of %d, stride %d)\n", gl_ppl_value(&st[k]),
           (long long)st[k].tokens, text_path, st[k].windows, window, stride);
    if (ref_path)
        printf("reference %.4f (%s); KL(reference || model) %.6f nats per token; same top token %.2f%%\n",
               gl_ppl_value(&st[0]), ref_path, gl_ppl_kl(&st[1]), 100.0 * gl_ppl_same_top(&st[1]));
    fprintf(stderr, "infer: %.1f s in the model's forward passes (%d threads)\n", st[k].seconds, omp_get_max_threads());
    llama_scorer_free(&sm);
    if (ref_path) llama_scorer_free(&sr), llama_free(&r);
    free(ids);
    llama_free(&m);
    gl_stdout_check("infer");
    return 0;
}

static int run_gguf(const char *path, const char *prompt, const char *prompt_ids, const char *chat, const char *system,
                    int ctx, int max_new, gl_sampling s, uint64_t seed, bool print_ids, bool use_cache, bool cuda,
                    gl_grammar *grammar) {
    char err[512];
    llama m;
    if (!llama_load(&m, path, err, sizeof err)) fail(err, "");
    gl_vocab_trie *trie = NULL;
    if (grammar) {
        if (!m.tok) fail(path, ": --grammar and --json-schema need the model's tokenizer, and it has none gradlab reads");
        trie = gl_vocab_trie_from_bpe(m.tok);
        int32_t stops[2] = {m.eot, m.eos};
        s.grammar = gl_matcher_new(grammar, trie, stops, 2, max_new);
    }
    if (cuda && !llama_to(&m, GL_CUDA, err, sizeof err)) fail("--device cuda: ", err);
    if (!m.tok && !prompt_ids) fail(path, ": the model has no tokenizer gradlab reads; give --prompt-ids");
    if (chat && !m.chatml) fail(path, ": --chat needs a model with a ChatML chat template, and this one has none");
    if (ctx == 0) ctx = m.cfg.ctx_len < 4096 ? m.cfg.ctx_len : 4096;
    if (ctx > m.cfg.ctx_len) {
        fprintf(stderr, "infer: --ctx %d is beyond the model's context of %d\n", ctx, m.cfg.ctx_len);
        return 1;
    }
    llama_cache cache;
    llama_cache_init(&cache, &m, ctx, true);
    gl_rng rng;
    gl_rng_seed(&rng, seed);
    llama_emit_ctx ec = {&m, print_ids, 0, NULL, 0};
    int32_t *ids = NULL;
    size_t cap = 0;
    int n = 0, made = 0;
    double secs = 0;
    struct timespec t0, t1;
    if (!chat || strcmp(chat, "-")) { /* one prompt or one chat turn */
        if (prompt_ids) ids = parse_ids(prompt_ids, m.cfg.vocab_size, &n);
        else if (chat) {
            const char *roles[2] = {"system", "user"}, *texts[2] = {system, chat};
            n = llama_chat_ids(&m, system ? roles : roles + 1, system ? texts : texts + 1, system ? 2 : 1, &ids, &cap);
        } else {
            const char *text = prompt ? prompt : "\n";
            if (m.add_bos) ids = malloc(sizeof *ids), ids[0] = m.bos, cap = 1, n = 1;
            int32_t *rest = NULL;
            size_t rest_cap = 0, k = gl_bpe_encode(m.tok, (const unsigned char *)text, strlen(text), &rest, &rest_cap);
            ids = realloc(ids, (n + k + 1) * sizeof *ids);
            memcpy(ids + n, rest, k * sizeof *rest);
            n += (int)k;
            free(rest);
            if (!print_ids) fputs(text, stdout);
        }
        if (n < 1) fail("the prompt is empty", "");
        if (n > ctx) {
            fprintf(stderr, "infer: the prompt has %d tokens; the context holds %d (--ctx)\n", n, ctx);
            return 1;
        }
        clock_gettime(CLOCK_MONOTONIC, &t0);
        made = llama_generate(&m, &cache, ids, n, max_new, &s, &rng, use_cache, llama_emit, &ec);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
        printf("\n");
        fflush(stdout);
        check_constraint(s.grammar, made, max_new);
    } else { /* interactive: the whole conversation is re-rendered each turn; the cache keeps its common prefix */
        int turns = 0, cap_msgs = 16;
        const char **roles = malloc(cap_msgs * sizeof *roles);
        char **texts = malloc(cap_msgs * sizeof *texts);
        if (system) roles[turns] = "system", texts[turns++] = strdup(system);
        char *line = NULL;
        size_t line_cap = 0;
        ssize_t got;
        fprintf(stderr, "chat with %s (%d context positions); one message per line, Ctrl-D ends\n", path, ctx);
        while (fprintf(stderr, "> "), (got = getline(&line, &line_cap, stdin)) >= 0) {
            while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = 0;
            if (!got) continue;
            if (turns + 2 > cap_msgs) {
                cap_msgs *= 2;
                roles = realloc(roles, cap_msgs * sizeof *roles);
                texts = realloc(texts, cap_msgs * sizeof *texts);
            }
            roles[turns] = "user", texts[turns++] = strdup(line);
            n = llama_chat_ids(&m, roles, (const char *const *)texts, turns, &ids, &cap);
            if (n >= ctx) {
                fprintf(stderr, "infer: the conversation has %d tokens; the context holds %d (--ctx): ending it\n", n, ctx);
                break;
            }
            ec.reply_len = 0;
            if (s.grammar) gl_matcher_reset(s.grammar, max_new); /* each reply follows the grammar */
            clock_gettime(CLOCK_MONOTONIC, &t0);
            made += llama_generate(&m, &cache, ids, n, max_new, &s, &rng, true, llama_emit, &ec);
            clock_gettime(CLOCK_MONOTONIC, &t1);
            secs += (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
            printf("\n");
            fflush(stdout);
            roles[turns] = "assistant", texts[turns++] = strdup(ec.reply_len ? ec.reply : "");
        }
        for (int i = 0; i < turns; i++) free(texts[i]);
        free(roles);
        free(texts);
        free(line);
    }
    fprintf(stderr, "infer: %d tokens in %.2f s (%.1f tokens/s, %s, %d threads)\n", made, secs,
            secs > 0 ? made / secs : 0.0, use_cache ? "KV cache" : "no cache", omp_get_max_threads());
    free(ids);
    free(ec.reply);
    gl_matcher_free(s.grammar);
    gl_vocab_trie_free(trie);
    llama_cache_free(&cache);
    llama_free(&m);
    gl_arena_release();
    gl_stdout_check("infer");
    return 0;
}

typedef struct {
    const gl_codec *codec; /* NULL: print ids */
    bool print_ids;
    int count;
} emit_ctx;

static bool emit(int32_t tok, void *p) {
    emit_ctx *c = p;
    if (c->print_ids || !c->codec) printf(c->count ? " %d" : "%d", tok);
    else {
        unsigned char buf[4];
        size_t len;
        const unsigned char *b = gl_codec_token(c->codec, tok, buf, &len);
        fwrite(b, 1, len, stdout);
    }
    c->count++;
    fflush(stdout);
    return true;
}

int main(int argc, char **argv) {
    const char *ckpt = NULL, *st = NULL, *st_config = NULL, *prompt = NULL, *prompt_ids = NULL, *lora = NULL;
    const char *device = "cpu", *gguf = NULL, *chat = NULL, *system = NULL, *ppl_text = NULL, *compare = NULL;
    const char *grammar_path = NULL, *schema_path = NULL;
    int ctx_len = 0, window = 512, stride = 256;
    int64_t max_tokens = 0;
    bool temperature_set = false;
    const char *gpt2_encoder = "tokenizer/gpt2/encoder.json", *gpt2_merges = "tokenizer/gpt2/vocab.bpe";
    int max_new = 200, threads = 0;
    gl_sampling s = {.temperature = 0.8f, .top_k = 0, .top_p = 1.0f};
    uint64_t seed = 1337;
    bool print_ids = false, use_cache = true;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) usage(stdout), exit(0);
        if (!strcmp(f, "--print-ids")) { print_ids = true; continue; }
        if (!strcmp(f, "--no-kv-cache")) { use_cache = false; continue; }
        if (i + 1 >= argc) {
            fprintf(stderr, "infer: unknown flag or missing value: '%s'\n", f);
            usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(f, "--checkpoint")) ckpt = v;
        else if (!strcmp(f, "--lora")) lora = v;
        else if (!strcmp(f, "--device")) device = v;
        else if (!strcmp(f, "--safetensors")) st = v;
        else if (!strcmp(f, "--gguf")) gguf = v;
        else if (!strcmp(f, "--chat")) chat = v;
        else if (!strcmp(f, "--perplexity")) ppl_text = v;
        else if (!strcmp(f, "--compare")) compare = v;
        else if (!strcmp(f, "--grammar")) grammar_path = v;
        else if (!strcmp(f, "--json-schema")) schema_path = v;
        else if (!strcmp(f, "--window")) window = gl_flag_int("infer", f, v, 2, 1 << 20);
        else if (!strcmp(f, "--stride")) stride = gl_flag_int("infer", f, v, 1, 1 << 20);
        else if (!strcmp(f, "--max-tokens")) max_tokens = gl_flag_int("infer", f, v, 2, 1e9);
        else if (!strcmp(f, "--system")) system = v;
        else if (!strcmp(f, "--ctx")) ctx_len = gl_flag_int("infer", f, v, 1, 1 << 24);
        else if (!strcmp(f, "--config")) st_config = v;
        else if (!strcmp(f, "--encoder")) gpt2_encoder = v;
        else if (!strcmp(f, "--merges")) gpt2_merges = v;
        else if (!strcmp(f, "--prompt")) prompt = v;
        else if (!strcmp(f, "--prompt-ids")) prompt_ids = v;
        else if (!strcmp(f, "--max-new-tokens")) max_new = gl_flag_int("infer", f, v, 0, 1e8);
        else if (!strcmp(f, "--temperature")) s.temperature = (float)gl_flag_number("infer", f, v, 0, 100), temperature_set = true;
        else if (!strcmp(f, "--top-k")) s.top_k = gl_flag_int("infer", f, v, 0, 1e8);
        else if (!strcmp(f, "--top-p")) s.top_p = (float)gl_flag_number("infer", f, v, 1e-6, 1);
        else if (!strcmp(f, "--seed")) seed = gl_flag_u64("infer", f, v, 0, 9007199254740992.0);
        else if (!strcmp(f, "--threads")) threads = gl_flag_int("infer", f, v, 1, 1024);
        else {
            fprintf(stderr, "infer: unknown flag '%s'\n", f);
            usage(stderr);
            return 2;
        }
    }
    if (threads) omp_set_num_threads(threads);
    if ((chat || system) && !gguf) fail("--chat and --system need a chat model: --gguf FILE", "");
    if ((ppl_text || compare) && !gguf) fail("--perplexity and --compare take a GGUF model: --gguf FILE", "");
    if (compare && !ppl_text) fail("--compare goes with --perplexity TEXT", "");
    if (ppl_text) {
        if (prompt || prompt_ids || chat || grammar_path || schema_path)
            fail("--perplexity scores a text: not with --prompt, --prompt-ids, --chat, --grammar or --json-schema", "");
        if (stride > window) fail("--stride must not exceed --window", "");
        return run_perplexity(gguf, compare, ppl_text, window, stride, max_tokens);
    }
    if (gguf) {
        if (ckpt || st || lora) fail("--gguf runs alone: not with --checkpoint, --safetensors or --lora", "");
        if ((prompt != NULL) + (prompt_ids != NULL) + (chat != NULL) > 1) fail("give one of --chat, --prompt, --prompt-ids", "");
        if (system && !chat) fail("--system goes with --chat", "");
        if (chat && !temperature_set) s.temperature = 0; /* a chat answers greedily unless asked otherwise */
        gl_grammar *g = load_constraint(grammar_path, schema_path);
        int rc = run_gguf(gguf, prompt, prompt_ids, chat, system, ctx_len, max_new, s, seed, print_ids, use_cache,
                          !strcmp(device, "cuda"), g);
        gl_grammar_free(g);
        return rc;
    }
    if (!ckpt == !st) fail("give exactly one of --checkpoint CKPT, --safetensors FILE --config FILE or --gguf FILE", "");
    if (st && !st_config) fail("--safetensors needs --config config.json (the model's shape)", "");
    if (prompt && prompt_ids) fail("give --prompt or --prompt-ids, not both", "");
    if (strcmp(device, "cpu") && strcmp(device, "cuda")) fail("--device must be cpu or cuda, got: ", device);
    if (!strcmp(device, "cuda") && !gl_cuda_linked()) fail("--device cuda needs a CUDA build of infer (make CUDA=1)", "");

    char err[512];
    gpt m;
    gl_codec codec = {{0, NULL}, NULL};
    bool have_codec = true;
    if (ckpt) {
        gpt_run_state rs;
        if (!gpt_load_checkpoint(ckpt, &m, &rs, NULL, NULL, NULL, err, sizeof err)) fail(err, "");
        if (rs.bpe_len && !(codec.bpe = gl_bpe_deserialize(rs.bpe, rs.bpe_len, ckpt, err, sizeof err))) fail(err, "");
        codec.chars.size = rs.n_symbols;
        codec.chars.codepoints = rs.symbols;
        free(rs.bpe);
    } else {
        if (!gpt_load_safetensors(st, st_config, &m, err, sizeof err)) fail(err, "");
        /* GPT-2's own vocabulary: text prompts work when the tokenizer files are at hand */
        have_codec = m.cfg.vocab_size == 50257 &&
                     (codec.bpe = gl_bpe_load_gpt2(gpt2_encoder, gpt2_merges, err, sizeof err)) != NULL;
    }
    if (lora) { /* fold the adapters in: generation then costs what the base costs */
        if (!gpt_lora_load(&m, lora, err, sizeof err)) fail("--lora: ", err);
        gpt_lora_merge(&m);
    }
    int V = m.cfg.vocab_size;

    /* the prompt as token ids */
    int32_t *ids = NULL;
    int n_ids = 0;
    if (prompt_ids) {
        ids = parse_ids(prompt_ids, V, &n_ids);
    } else {
        if (!have_codec) fail("no tokenizer for this model: give the prompt as --prompt-ids", "");
        const char *text = prompt ? prompt : "\n";
        size_t n;
        if (!gl_codec_encode(&codec, (const unsigned char *)text, strlen(text), &ids, &n, NULL, err, sizeof err))
            fail("the prompt: ", err);
        n_ids = (int)n;
    }
    if (n_ids < 1) fail("the prompt is empty", "");
    gl_grammar *grammar = load_constraint(grammar_path, schema_path);
    gl_vocab_trie *trie = NULL;
    if (grammar) {
        if (!have_codec) fail("--grammar and --json-schema need the model's tokenizer", "");
        trie = gl_vocab_trie_from_codec(&codec);
        s.grammar = gl_matcher_new(grammar, trie, NULL, 0, max_new); /* no stop token: it ends when complete */
    }
    if (n_ids > m.cfg.block_size) {
        fprintf(stderr, "infer: the prompt has %d tokens; this model's block size is %d\n", n_ids, m.cfg.block_size);
        return 1;
    }

    emit_ctx ctx = {have_codec ? &codec : NULL, print_ids, 0};
    if (!print_ids && have_codec)
        for (int k = 0; k < n_ids; k++) {
            unsigned char buf[4];
            size_t len;
            const unsigned char *b = gl_codec_token(&codec, ids[k], buf, &len);
            fwrite(b, 1, len, stdout);
        }
    gl_rng rng;
    gl_rng_seed(&rng, seed);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int made = 0;
    if (!strcmp(device, "cuda") && !gpt_to(&m, GL_CUDA, err, sizeof err)) fail("--device cuda: ", err);
    made = gl_generate(&m, ids, n_ids, max_new, &s, &rng, use_cache, emit, &ctx);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
    printf("\n");
    fflush(stdout);
    check_constraint(s.grammar, made, max_new);
    fprintf(stderr, "infer: %d tokens in %.2f s (%.1f tokens/s, %s, %d threads)\n", made, secs,
            secs > 0 ? made / secs : 0.0, use_cache ? "KV cache" : "no cache", omp_get_max_threads());
    free(ids);
    gl_matcher_free(s.grammar);
    gl_vocab_trie_free(trie);
    gl_grammar_free(grammar);
    gl_codec_free(&codec);
    gpt_free(&m);
    gl_arena_release();
    gl_stdout_check("infer");
    return 0;
}
