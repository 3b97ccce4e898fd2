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
#include "sample.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: infer --checkpoint CKPT [--lora ADAPTERS] [--prompt TEXT | --prompt-ids 1,2,3] [flags]\n"
            "       infer --safetensors model.safetensors --config config.json --prompt-ids 1,2,3 [flags]\n"
            "  --max-new-tokens N  tokens to generate (200)      --temperature F  0 = greedy (0.8)\n"
            "  --top-k N           keep the N most likely (0 = all)  --top-p F   nucleus mass (1 = all)\n"
            "  --seed N            sampling seed (1337)          --threads N\n"
            "  --print-ids         print generated ids (one line, space-separated) instead of text\n"
            "  --no-kv-cache       recompute the whole window at every step (the reference path)\n"
            "  --encoder F --merges F  GPT-2 tokenizer files for text prompts with --safetensors\n"
            "                      (default tokenizer/gpt2/encoder.json and vocab.bpe)\n"
            "  --lora FILE         LoRA adapters from `train --finetune CKPT --lora ...`, folded into the weights\n"
            "  --device cpu|cuda   cuda (a `make CUDA=1` build): the forward, the KV cache and greedy or temperature\n"
            "                      sampling on the GPU (one token back per step); --top-k/--top-p sample on the CPU\n"
            "Without --prompt or --prompt-ids the prompt is a newline.\n");
}

static void fail(const char *msg, const char *detail) {
    fprintf(stderr, "infer: %s%s\n", msg, detail);
    exit(1);
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
    const char *device = "cpu";
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
        else if (!strcmp(f, "--config")) st_config = v;
        else if (!strcmp(f, "--encoder")) gpt2_encoder = v;
        else if (!strcmp(f, "--merges")) gpt2_merges = v;
        else if (!strcmp(f, "--prompt")) prompt = v;
        else if (!strcmp(f, "--prompt-ids")) prompt_ids = v;
        else if (!strcmp(f, "--max-new-tokens")) max_new = (int)gl_flag_number("infer", f, v, 0, 1e8);
        else if (!strcmp(f, "--temperature")) s.temperature = (float)gl_flag_number("infer", f, v, 0, 100);
        else if (!strcmp(f, "--top-k")) s.top_k = (int)gl_flag_number("infer", f, v, 0, 1e8);
        else if (!strcmp(f, "--top-p")) s.top_p = (float)gl_flag_number("infer", f, v, 1e-6, 1);
        else if (!strcmp(f, "--seed")) seed = (uint64_t)gl_flag_number("infer", f, v, 0, 9007199254740992.0);
        else if (!strcmp(f, "--threads")) threads = (int)gl_flag_number("infer", f, v, 1, 1024);
        else {
            fprintf(stderr, "infer: unknown flag '%s'\n", f);
            usage(stderr);
            return 2;
        }
    }
    if (threads) omp_set_num_threads(threads);
    if (!ckpt == !st) fail("give exactly one of --checkpoint CKPT or --safetensors FILE --config FILE", "");
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
        ids = malloc((strlen(prompt_ids) / 2 + 2) * sizeof(int32_t));
        const char *p = prompt_ids;
        while (*p) {
            char *end;
            errno = 0;
            long id = strtol(p, &end, 10);
            if (end == p || errno) fail("--prompt-ids must be comma-separated integers, got: ", prompt_ids);
            if (id < 0 || id >= V) {
                fprintf(stderr, "infer: prompt id %ld (position %d) is outside the vocabulary [0, %d)\n", id, n_ids, V);
                return 1;
            }
            ids[n_ids++] = (int32_t)id;
            p = end;
            if (*p == ',') p++;
            else if (*p) fail("--prompt-ids must be comma-separated integers, got: ", prompt_ids);
        }
    } else {
        if (!have_codec) fail("no tokenizer for this model: give the prompt as --prompt-ids", "");
        const char *text = prompt ? prompt : "\n";
        size_t n;
        if (!gl_codec_encode(&codec, (const unsigned char *)text, strlen(text), &ids, &n, NULL, err, sizeof err))
            fail("the prompt: ", err);
        n_ids = (int)n;
    }
    if (n_ids < 1) fail("the prompt is empty", "");
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
    fprintf(stderr, "infer: %d tokens in %.2f s (%.1f tokens/s, %s, %d threads)\n", made, secs,
            secs > 0 ? made / secs : 0.0, use_cache ? "KV cache" : "no cache", omp_get_max_threads());
    free(ids);
    gl_codec_free(&codec);
    gpt_free(&m);
    gl_arena_release();
    return 0;
}
