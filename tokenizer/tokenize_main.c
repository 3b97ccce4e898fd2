/* tokenize: byte-level BPE from the command line.
 *   tokenize encode [--vocab gpt2|FILE.bpe] [--format txt|u16] [--specials] [INPUT|-] [-o OUT]
 *   tokenize decode [--vocab ...] [--format txt|u16] [INPUT|-] [-o OUT]
 *   tokenize train  --vocab-size N --out FILE.bpe [--special TEXT]... [--tokens OUT.tok] INPUT
 *   tokenize stats  [--vocab ...] INPUT...
 * `--vocab gpt2` (the default) loads tokenizer/gpt2/encoder.json + vocab.bpe, or --encoder/--merges. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bpe.h"
#include "cli.h"
#include "io.h"
#include "tokfile.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: tokenize encode [--vocab gpt2|FILE.bpe] [--format txt|u16] [--specials] [INPUT|-] [-o OUT]\n"
            "       tokenize decode [--vocab gpt2|FILE.bpe] [--format txt|u16] [INPUT|-] [-o OUT]\n"
            "       tokenize train  --vocab-size N --out FILE.bpe [--special TEXT]... [--tokens OUT.tok] INPUT\n"
            "       tokenize stats  [--vocab gpt2|FILE.bpe] INPUT...\n"
            "  --vocab gpt2 (default) reads --encoder tokenizer/gpt2/encoder.json and --merges tokenizer/gpt2/vocab.bpe\n"
            "  --format txt: ids as decimal text separated by spaces (default); u16: raw little-endian uint16\n"
            "  --specials: recognise special tokens (e.g. <|endoftext|>) in the input instead of treating them as text\n"
            "  --tokens: also write the corpus encoded with the new vocabulary, in the token-file format train reads\n");
}

static void die(const char *fmt, const char *a) {
    fprintf(stderr, "tokenize: ");
    fprintf(stderr, fmt, a);
    fputc('\n', stderr);
    exit(1);
}

static unsigned char *read_input(const char *path, size_t *len) {
    char err[512];
    unsigned char *buf;
    if (path && strcmp(path, "-") != 0) {
        if (!gl_read_whole_file(path, &buf, len, err, sizeof err)) die("%s", err);
        return buf;
    }
    size_t cap = 1 << 16, n = 0, got;
    buf = malloc(cap);
    while ((got = fread(buf + n, 1, cap - n - 1, stdin)) > 0)
        if ((n += got) + 1 == cap) buf = realloc(buf, cap *= 2);
    buf[n] = 0;
    *len = n;
    return buf;
}

/* a file written through gl_atomic (never half-written), or stdout for "-" or NULL */
typedef struct {
    FILE *f;
    const char *path;
    gl_atomic file;
} output;

static output open_output(const char *path) {
    output o = {stdout, NULL, {0}};
    if (!path || !strcmp(path, "-")) return o;
    o.path = path;
    if (!(o.f = gl_atomic_open(&o.file, path))) die("cannot create a file beside '%s'", path);
    return o;
}

static void close_output(output *o) {
    if (!o->path) {
        gl_stdout_check("tokenize");
        return;
    }
    if (!gl_atomic_commit(&o->file)) {
        gl_atomic_abort(&o->file);
        die("could not write '%s'", o->path);
    }
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1], *vocab = "gpt2", *encoder = "tokenizer/gpt2/encoder.json",
               *merges = "tokenizer/gpt2/vocab.bpe", *format = "txt", *out = NULL, *tokens = NULL;
    const char *inputs[64], *specials[64];
    int n_inputs = 0, n_specials = 0, vocab_size = 0;
    bool with_specials = false;
    for (int i = 2; i < argc; i++) {
        const char *f = argv[i];
        bool has = i + 1 < argc;
        if (!strcmp(f, "--vocab") && has) vocab = argv[++i];
        else if (!strcmp(f, "--encoder") && has) encoder = argv[++i];
        else if (!strcmp(f, "--merges") && has) merges = argv[++i];
        else if (!strcmp(f, "--format") && has) format = argv[++i];
        else if ((!strcmp(f, "-o") || !strcmp(f, "--out")) && has) out = argv[++i];
        else if (!strcmp(f, "--tokens") && has) tokens = argv[++i];
        else if (!strcmp(f, "--special") && has && n_specials < 64) specials[n_specials++] = argv[++i];
        else if (!strcmp(f, "--specials")) with_specials = true;
        else if (!strcmp(f, "--vocab-size") && has) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > 1 << 24) die("--vocab-size expects a positive integer, got '%s'", argv[i]);
            vocab_size = (int)v;
        } else if (f[0] == '-' && f[1] == '-') {
            fprintf(stderr, "tokenize: unknown flag or missing value: '%s'\n", f);
            usage(stderr);
            return 2;
        } else if (n_inputs < 64) inputs[n_inputs++] = f;
    }
    if (strcmp(format, "txt") && strcmp(format, "u16")) die("--format must be txt or u16, got '%s'", format);
    char err[512];

    if (!strcmp(cmd, "train")) {
        if (n_inputs != 1 || !out || !vocab_size) die("train needs --vocab-size N, --out FILE.bpe and one INPUT%s", "");
        if (n_specials == 0) specials[n_specials++] = "<|endoftext|>";
        size_t len;
        unsigned char *text = read_input(inputs[0], &len);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        gl_bpe *t = gl_bpe_train(text, len, vocab_size, specials, n_specials, 0, err, sizeof err);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (!t) die("%s", err);
        if (!gl_bpe_save(t, out, err, sizeof err)) die("%s", err);
        fprintf(stderr, "tokenize: trained %d tokens (%d merges) on %zu bytes in %.2f s; wrote %s\n",
                gl_bpe_vocab_size(t), gl_bpe_n_merges(t), len,
                (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9, out);
        if (tokens) {
            int32_t *ids = NULL;
            size_t cap = 0, n = gl_bpe_encode(t, text, len, &ids, &cap);
            if (!gl_tokfile_write(tokens, ids, n, gl_bpe_vocab_size(t), err, sizeof err)) die("%s", err);
            fprintf(stderr, "tokenize: wrote %zu tokens (%.2f bytes/token) to %s\n", n, (double)len / (n ? n : 1), tokens);
            free(ids);
        }
        gl_bpe_free(t);
        free(text);
        return 0;
    }

    gl_bpe *t = !strcmp(vocab, "gpt2") ? gl_bpe_load_gpt2(encoder, merges, err, sizeof err)
                                       : gl_bpe_load(vocab, err, sizeof err);
    if (!t) die("%s", err);
    if (!strcmp(cmd, "encode")) {
        if (n_inputs > 1) die("encode takes one INPUT (or - for stdin)%s", "");
        size_t len;
        unsigned char *text = read_input(n_inputs ? inputs[0] : NULL, &len);
        int32_t *ids = NULL;
        size_t cap = 0, n = with_specials ? gl_bpe_encode_with_specials(t, text, len, &ids, &cap)
                                          : gl_bpe_encode(t, text, len, &ids, &cap);
        output o = open_output(out);
        if (!strcmp(format, "u16")) {
            if (gl_bpe_vocab_size(t) > 65536) die("--format u16 cannot hold this vocabulary's ids%s", "");
            for (size_t i = 0; i < n; i++) {
                unsigned char le[2] = {(unsigned char)(ids[i] & 0xff), (unsigned char)(ids[i] >> 8)};
                fwrite(le, 1, 2, o.f);
            }
        } else {
            for (size_t i = 0; i < n; i++) fprintf(o.f, i ? " %d" : "%d", ids[i]);
            fputc('\n', o.f);
        }
        close_output(&o);
        free(ids);
        free(text);
    } else if (!strcmp(cmd, "decode")) {
        if (n_inputs > 1) die("decode takes one INPUT (or - for stdin)%s", "");
        size_t len, n = 0;
        unsigned char *data = read_input(n_inputs ? inputs[0] : NULL, &len);
        int32_t *ids = malloc((len + 1) * sizeof *ids);
        if (!strcmp(format, "u16")) {
            if (len % 2) die("u16 input has an odd number of bytes%s", "");
            for (size_t i = 0; i < len; i += 2) ids[n++] = data[i] | data[i + 1] << 8;
        } else {
            const unsigned char *nul = memchr(data, 0, len);
            if (nul) { /* parsing would stop there and drop the rest silently */
                fprintf(stderr, "tokenize: decode input holds a NUL byte at byte %zu; expected integer ids\n",
                        (size_t)(nul - data));
                return 1;
            }
            char *p = (char *)data;
            while (*p) {
                while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r' || *p == ',') p++;
                if (!*p) break;
                char *end;
                errno = 0;
                long v = strtol(p, &end, 10);
                if (end == p || errno || v < INT32_MIN || v > INT32_MAX) {
                    fprintf(stderr, "tokenize: decode input is not integer ids (at byte %zu: '%.10s')\n",
                            (size_t)(p - (char *)data), p);
                    return 1;
                }
                ids[n++] = (int32_t)v;
                p = end;
            }
        }
        unsigned char *text;
        size_t tlen;
        if (!gl_bpe_decode(t, ids, n, &text, &tlen, err, sizeof err)) die("%s", err);
        output o = open_output(out);
        fwrite(text, 1, tlen, o.f);
        close_output(&o);
        free(text);
        free(ids);
        free(data);
    } else if (!strcmp(cmd, "stats")) {
        if (!n_inputs) die("stats needs at least one INPUT%s", "");
        printf("%-40s %12s %10s %10s %12s %9s\n", "file", "bytes", "tokens", "bytes/tok", "distinct ids", "MB/s");
        for (int k = 0; k < n_inputs; k++) {
            size_t len;
            unsigned char *text = read_input(inputs[k], &len);
            int32_t *ids = NULL;
            size_t cap = 0;
            struct timespec t0, t1;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            size_t n = gl_bpe_encode(t, text, len, &ids, &cap);
            clock_gettime(CLOCK_MONOTONIC, &t1);
            double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
            char *seen = calloc((size_t)gl_bpe_vocab_size(t), 1);
            size_t distinct = 0;
            for (size_t i = 0; i < n; i++)
                if (!seen[ids[i]]) seen[ids[i]] = 1, distinct++;
            printf("%-40s %12zu %10zu %10.2f %12zu %9.1f\n", inputs[k], len, n, (double)len / (n ? n : 1), distinct,
                   len / (secs > 0 ? secs : 1e-9) / 1e6);
            free(seen);
            free(ids);
            free(text);
        }
    } else {
        fprintf(stderr, "tokenize: unknown command '%s'\n", cmd);
        usage(stderr);
        return 2;
    }
    gl_bpe_free(t);
    gl_stdout_check("tokenize");
    return 0;
}
