/* The train and infer programs end to end: bit-exact resume, KV cache vs full recompute through the CLI, and
 * bad input answered with a clear message and a non-zero exit. Runs the binaries from GL_BUILD_DIR. */
#include <sys/stat.h>

#include "testutil.h"

static char tmpdir[128];

static void make_tmpdir(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/gradlab_train_test_%d", (int)getpid());
    mkdir(tmpdir, 0755);
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    char *buf = malloc(1 << 24);
    *len = fread(buf, 1, 1 << 24, f);
    buf[*len] = 0;
    fclose(f);
    return buf;
}

#define SMALL "--data data/tinyshakespeare/input.txt --n-layer 2 --n-head 2 --n-embd 32 --block-size 32 --batch 4 " \
              "--dropout 0.1 --eval-interval 10 --eval-batches 2 --final-eval-batches 0 --sample 0 --quiet --seed 5"

Test(train, resume_continues_bit_for_bit) {
    make_tmpdir();
    char *out;
    int rc = run(&out, GL_BUILD_DIR "/train " SMALL " --steps 40 --ckpt-interval 1000 --out %s/a.ckpt --loss-log %s/a.log",
                 tmpdir, tmpdir);
    cr_assert(rc == 0, "train failed: %s", out);
    free(out);
    rc = run(&out, GL_BUILD_DIR "/train " SMALL " --steps 40 --stop-after 20 --out %s/b.ckpt --loss-log %s/b.log", tmpdir,
             tmpdir);
    cr_assert(rc == 0, "train (first half) failed: %s", out);
    free(out);
    rc = run(&out, GL_BUILD_DIR "/train --data data/tinyshakespeare/input.txt --resume %s/b.ckpt --out %s/b.ckpt "
                   "--loss-log %s/b.log --eval-interval 10 --eval-batches 2 --final-eval-batches 0 --sample 0 --quiet",
             tmpdir, tmpdir, tmpdir);
    cr_assert(rc == 0, "resumed train failed: %s", out);
    free(out);
    char pa[256], pb[256];
    size_t la, lb;
    snprintf(pa, sizeof pa, "%s/a.log", tmpdir);
    snprintf(pb, sizeof pb, "%s/b.log", tmpdir);
    char *a = slurp(pa, &la), *b = slurp(pb, &lb);
    cr_assert(la > 0 && la == lb && memcmp(a, b, la) == 0, "loss logs differ:\n--- one run:\n%s\n--- 20 + resume + 20:\n%s", a, b);
    int lines = 0;
    for (size_t i = 0; i < la; i++) lines += a[i] == '\n';
    cr_assert(lines == 40);
    free(a);
    free(b);
    snprintf(pa, sizeof pa, "%s/a.ckpt", tmpdir);
    snprintf(pb, sizeof pb, "%s/b.ckpt", tmpdir);
    a = slurp(pa, &la), b = slurp(pb, &lb);
    cr_assert(la == lb && memcmp(a, b, la) == 0, "final checkpoints differ");
    free(a);
    free(b);
}

Test(train, infer_kv_cache_equals_recompute_and_streams_ids) {
    make_tmpdir();
    char *out, *with, *without;
    int rc = run(&out, GL_BUILD_DIR "/train " SMALL " --steps 150 --out %s/c.ckpt", tmpdir);
    cr_assert(rc == 0, "%s", out);
    free(out);
    rc = run(&with, GL_BUILD_DIR "/infer --checkpoint %s/c.ckpt --prompt 'ROMEO:' --temperature 1 --seed 3 --max-new-tokens 60 "
                    "--print-ids 2>/dev/null", tmpdir);
    cr_assert(rc == 0, "%s", with);
    rc = run(&without, GL_BUILD_DIR "/infer --checkpoint %s/c.ckpt --prompt 'ROMEO:' --temperature 1 --seed 3 --max-new-tokens 60 "
                       "--print-ids --no-kv-cache 2>/dev/null", tmpdir);
    cr_assert(rc == 0, "%s", without);
    cr_assert(strlen(with) > 60, "expected 60 ids, got: %s", with);
    cr_assert_str_eq(with, without, "sampled ids (same seed) with the KV cache differ from recomputing the window");
    int distinct = 0, first = atoi(with);
    for (char *p = with; *p; p++)
        if (*p == ' ' && atoi(p + 1) != first) distinct++;
    cr_assert(distinct > 5, "degenerate generation (one repeated id): %s", with);
    free(with);
    free(without);
    rc = run(&out, GL_BUILD_DIR "/infer --checkpoint %s/c.ckpt --prompt-ids 1,2,3 --max-new-tokens 5 --top-k 5 --top-p 0.9",
             tmpdir);
    cr_assert(rc == 0 && strstr(out, "tokens/s"), "%s", out);
    free(out);
}

static void expect_failure(const char *needle, const char *fmt, const char *arg) {
    char *out;
    char cmd[2048];
    snprintf(cmd, sizeof cmd, fmt, arg, arg, arg);
    int rc = run(&out, "%s", cmd);
    cr_assert(rc != 0 && rc != 139 && rc != 134, "`%s` should fail cleanly, exit %d: %s", cmd, rc, out);
    cr_assert(strstr(out, needle), "`%s`: output lacks \"%s\":\n%s", cmd, needle, out);
    free(out);
}

Test(train, bad_input_gets_clear_messages) {
    make_tmpdir();
    char *out, path[256];
    int rc = run(&out, GL_BUILD_DIR "/train " SMALL " --steps 2 --out %s/d.ckpt", tmpdir);
    cr_assert(rc == 0, "%s", out);
    free(out);
    FILE *f;
    snprintf(path, sizeof path, "%s/empty.txt", tmpdir);
    fclose(fopen(path, "w"));
    expect_failure("too few", GL_BUILD_DIR "/train --data %s --quiet", path);
    snprintf(path, sizeof path, "%s/bad.txt", tmpdir);
    f = fopen(path, "w");
    fputs("hello \xff\xfe world", f);
    fclose(f);
    expect_failure("not valid UTF-8 at byte 6", GL_BUILD_DIR "/train --data %s --quiet", path);
    expect_failure("cannot open", GL_BUILD_DIR "/train --data %s/missing.txt", tmpdir);
    expect_failure("unknown flag '--layers'", GL_BUILD_DIR "/train --data x --layers 3%s", "");
    expect_failure("multiple of n_head", GL_BUILD_DIR "/train --data data/tinyshakespeare/input.txt --n-head 3 --n-embd 32%s", "");
    /* a truncated checkpoint, a flipped byte, a checkpoint of other data */
    char ck[256], cut[256];
    snprintf(ck, sizeof ck, "%s/d.ckpt", tmpdir);
    size_t len;
    char *bytes = slurp(ck, &len);
    snprintf(cut, sizeof cut, "%s/cut.ckpt", tmpdir);
    f = fopen(cut, "wb");
    fwrite(bytes, 1, len / 2, f);
    fclose(f);
    expect_failure("corrupt or truncated", GL_BUILD_DIR "/infer --checkpoint %s", cut);
    expect_failure("corrupt or truncated", GL_BUILD_DIR "/train --data data/tinyshakespeare/input.txt --resume %s", cut);
    bytes[len / 3] ^= 0x40;
    f = fopen(cut, "wb");
    fwrite(bytes, 1, len, f);
    fclose(f);
    expect_failure("checksum", GL_BUILD_DIR "/infer --checkpoint %s", cut);
    free(bytes);
    expect_failure("not a gradlab checkpoint", GL_BUILD_DIR "/infer --checkpoint %s", "data/tinyshakespeare/input.txt");
    snprintf(path, sizeof path, "%s/other.txt", tmpdir);
    f = fopen(path, "w");
    for (int i = 0; i < 200; i++) fputs("some other text for training\n", f);
    fclose(f);
    char cmd[512];
    snprintf(cmd, sizeof cmd, GL_BUILD_DIR "/train --data %s --resume %s/d.ckpt", path, tmpdir);
    expect_failure("is not the text", "%s", cmd);
    /* infer: prompt problems */
    snprintf(cmd, sizeof cmd, GL_BUILD_DIR "/infer --checkpoint %s/d.ckpt --prompt '%%s'", tmpdir);
    expect_failure("not in the model's vocabulary", cmd, "caf\xc3\xa9");
    expect_failure("block size is 32", cmd, "This prompt is certainly longer than thirty-two characters.");
    snprintf(cmd, sizeof cmd, GL_BUILD_DIR "/infer --checkpoint %s/d.ckpt --prompt-ids %%s", tmpdir);
    expect_failure("outside the vocabulary", cmd, "1,2,9999");
    expect_failure("comma-separated", cmd, "1,x");
    expect_failure("cannot open", GL_BUILD_DIR "/infer --checkpoint %s", "no/such.ckpt");
}

#include "gpt_io.h"

/* A checkpoint whose weights hold a NaN (written with a valid checksum): resuming must stop at once, naming the
 * step, instead of training on garbage. */
Test(train, nan_loss_stops_with_the_step_named) {
    make_tmpdir();
    char *out, ck[256];
    int rc = run(&out, GL_BUILD_DIR "/train " SMALL " --steps 10 --stop-after 3 --out %s/n.ckpt", tmpdir);
    cr_assert(rc == 0, "%s", out);
    free(out);
    snprintf(ck, sizeof ck, "%s/n.ckpt", tmpdir);
    size_t len;
    char *bytes = slurp(ck, &len);
    int32_t n_symbols;
    memcpy(&n_symbols, bytes + 164, 4);
    float nan_value = NAN;
    memcpy(bytes + 200 + 4 * (size_t)n_symbols + 8, &nan_value, 4); /* the first weight of wte (after bpe_len) */
    uint64_t sum = gl_fnv1a(GL_FNV_OFFSET, bytes, len - 8);
    memcpy(bytes + len - 8, &sum, 8);
    FILE *f = fopen(ck, "wb");
    fwrite(bytes, 1, len, f);
    fclose(f);
    free(bytes);
    rc = run(&out, GL_BUILD_DIR "/train --data data/tinyshakespeare/input.txt --resume %s --quiet", ck);
    cr_assert(rc == 1 && strstr(out, "loss became nan at step 3"), "exit %d: %s", rc, out);
    free(out);
}

/* BPE end to end: a vocabulary trained by `tokenize`, the corpus as a token file, training on it, resuming,
 * and infer decoding through the tokenizer stored in the checkpoint. */
Test(train, bpe_tokenizer_end_to_end) {
    make_tmpdir();
    char *out;
    int rc = run(&out, GL_BUILD_DIR "/tokenize train --vocab-size 512 --out %s/v.bpe --tokens %s/v.tok "
                       "data/tinyshakespeare/input.txt", tmpdir, tmpdir);
    cr_assert(rc == 0 && strstr(out, "trained 512 tokens"), "%s", out);
    free(out);
    rc = run(&out, GL_BUILD_DIR "/train --data %s/v.tok --tokenizer %s/v.bpe --n-layer 1 --n-head 2 --n-embd 32 "
                   "--block-size 32 --batch 4 --steps 20 --stop-after 10 --eval-batches 2 --final-eval-batches 0 "
                   "--sample 0 --quiet --out %s/b.ckpt --loss-log %s/b.log", tmpdir, tmpdir, tmpdir, tmpdir);
    cr_assert(rc == 0 && strstr(out, "BPE tokens (vocabulary 512)"), "%s", out);
    free(out);
    rc = run(&out, GL_BUILD_DIR "/train --data %s/v.tok --resume %s/b.ckpt --out %s/b.ckpt --loss-log %s/b.log "
                   "--final-eval-batches 0 --sample 0 --quiet", tmpdir, tmpdir, tmpdir, tmpdir);
    cr_assert(rc == 0, "%s", out);
    free(out);
    rc = run(&out, GL_BUILD_DIR "/infer --checkpoint %s/b.ckpt --prompt 'KING RICHARD' --max-new-tokens 8 2>/dev/null",
             tmpdir);
    cr_assert(rc == 0 && strncmp(out, "KING RICHARD", 12) == 0, "%s", out);
    free(out);
    /* encode -> decode through the CLI is the identity, for GPT-2 and for the trained vocabulary */
    rc = run(&out, GL_BUILD_DIR "/tokenize encode --format u16 -o %s/s.u16 data/tinyshakespeare/input.txt && "
                   GL_BUILD_DIR "/tokenize decode --format u16 -o %s/s.txt %s/s.u16 && "
                   "cmp %s/s.txt data/tinyshakespeare/input.txt && cmp %s/s.u16 tests/ref/tinyshakespeare.gpt2.u16",
             tmpdir, tmpdir, tmpdir, tmpdir, tmpdir);
    cr_assert(rc == 0, "GPT-2 CLI round trip or parity failed: %s", out);
    free(out);
    rc = run(&out, "echo 'to be, or not to be' | " GL_BUILD_DIR "/tokenize encode --vocab %s/v.bpe | "
                   GL_BUILD_DIR "/tokenize decode --vocab %s/v.bpe", tmpdir, tmpdir);
    cr_assert(rc == 0 && !strcmp(out, "to be, or not to be\n"), "got '%s'", out);
    free(out);
    /* bad input */
    rc = run(&out, GL_BUILD_DIR "/tokenize train --vocab-size 100 --out %s/x.bpe data/tinyshakespeare/input.txt", tmpdir);
    cr_assert(rc == 1 && strstr(out, "below 256"), "%s", out);
    free(out);
    rc = run(&out, "echo '15496 99999' | " GL_BUILD_DIR "/tokenize decode");
    cr_assert(rc == 1 && strstr(out, "99999") && strstr(out, "outside the vocabulary"), "%s", out);
    free(out);
    rc = run(&out, GL_BUILD_DIR "/tokenize encode --vocab %s/v.tok data/tinyshakespeare/input.txt", tmpdir);
    cr_assert(rc == 1 && strstr(out, "not a gradlab BPE"), "%s", out);
    free(out);
}

/* fine-tuning through the CLI: a small base, then full, LoRA and QLoRA runs on another text; infer with adapters */
Test(train, finetune_lora_and_qlora_end_to_end) {
    make_tmpdir();
    char *out;
    int rc = run(&out, GL_BUILD_DIR "/train " SMALL " --steps 10 --out %s/base.ckpt", tmpdir);
    cr_assert_eq(rc, 0, "%s", out);
    free(out);
    /* the new domain: a text with characters the base never saw (digits are absent from tiny shakespeare's 65) */
    char path[256];
    snprintf(path, sizeof path, "%s/domain.txt", tmpdir);
    FILE *f = fopen(path, "w");
    for (int i = 0; i < 400; i++) fprintf(f, "Call me Ishmael, %d years ago, never mind how long precisely.\n", i);
    fclose(f);
    const char *tune = "--eval-interval 5 --eval-batches 2 --final-eval-batches 0 --sample 0 --batch 4 --steps 5";
    rc = run(&out, GL_BUILD_DIR "/train --finetune %s/base.ckpt --data %s %s --out %s/full.ckpt", tmpdir, path, tune, tmpdir);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "characters of") && strstr(out, "were dropped"), "%s", out);
    cr_assert(strstr(out, "all weights"), "%s", out);
    free(out);
    rc = run(&out, GL_BUILD_DIR "/train --finetune %s/base.ckpt --data %s %s --lora r=4,alpha=8,targets=qvf --out %s/a.lora",
             tmpdir, path, tune, tmpdir);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "LoRA: rank 4, alpha 8 (scale 2), targets qvf") && strstr(out, "adapters"), "%s", out);
    free(out);
    rc = run(&out, GL_BUILD_DIR "/train --finetune %s/base.ckpt --data %s %s --qlora --out %s/q.lora", tmpdir, path,
             tune, tmpdir);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "on a 4-bit NF4 base") && strstr(out, "QLoRA: block linears in NF4"), "%s", out);
    free(out);
    for (int k = 0; k < 2; k++) {
        rc = run(&out, GL_BUILD_DIR "/infer --checkpoint %s/base.ckpt --lora %s/%s --prompt Call --max-new-tokens 20 "
                 "--temperature 0", tmpdir, tmpdir, k ? "q.lora" : "a.lora");
        cr_assert_eq(rc, 0, "%s", out);
        free(out);
    }
    /* misfits and misuse */
    rc = run(&out, GL_BUILD_DIR "/train --data %s --lora r=4", path);
    cr_assert(rc == 2 && strstr(out, "give --finetune BASE_CKPT"), "%s", out);
    free(out);
    rc = run(&out, GL_BUILD_DIR "/train --finetune %s/none.ckpt --data %s --lora r=4", tmpdir, path);
    cr_assert(rc == 1 && strstr(out, "cannot open"), "%s", out);
    free(out);
    rc = run(&out, GL_BUILD_DIR "/train --finetune %s/base.ckpt --data %s --lora r=4,targets=qz", tmpdir, path);
    cr_assert(rc == 2 && strstr(out, "target 'z'"), "%s", out);
    free(out);
    rc = run(&out, GL_BUILD_DIR "/train " SMALL " --n-layer 3 --steps 2 --out %s/other.ckpt", tmpdir);
    cr_assert_eq(rc, 0, "%s", out);
    free(out);
    rc = run(&out, GL_BUILD_DIR "/infer --checkpoint %s/other.ckpt --lora %s/a.lora --max-new-tokens 5", tmpdir, tmpdir);
    cr_assert(rc == 1 && strstr(out, "2 layers x 32 dims") && strstr(out, "3 x 32"), "%s", out);
    free(out);
}

/* the first n losses of two --loss-log files in tmpdir agree to 1e-5 relative */
static void expect_same_losses(const char *cuda_log, const char *cpu_log, int n) {
    char path[256];
    size_t len;
    snprintf(path, sizeof path, "%s/%s", tmpdir, cuda_log);
    char *cu = slurp(path, &len);
    snprintf(path, sizeof path, "%s/%s", tmpdir, cpu_log);
    char *cpu = slurp(path, &len);
    char *p = cu, *q = cpu;
    for (int step = 0; step < n; step++) { /* lines: step, exact hex float, decimal */
        long s1 = strtol(p, &p, 10), s2 = strtol(q, &q, 10);
        double a = strtod(p, &p), b = strtod(q, &q);
        strtod(p, &p), strtod(q, &q);
        cr_assert(s1 == step && s2 == step, "%s / %s: step %d", cuda_log, cpu_log, step);
        cr_assert(fabs(a - b) < 1e-5 * fabs(b), "%s step %d: cuda loss %.7f, cpu %.7f", cuda_log, step, a, b);
    }
    free(cu);
    free(cpu);
}

/* train --device cuda through the emulated kernels (a CPU-only build refuses it): the same losses as --device cpu,
 * and its checkpoint resumes on the CPU */
Test(train, device_cuda_emulated_matches_cpu) {
    make_tmpdir();
    const char *tiny = "--data data/tinyshakespeare/input.txt --n-layer 1 --n-head 2 --n-embd 16 --block-size 8 --batch 2 "
                       "--eval-interval 3 --eval-batches 1 --final-eval-batches 0 --sample 0 --quiet --steps 3 --dropout 0.1";
    char *out;
    int rc = run(&out, GL_BUILD_DIR "/train_cuda_emu %s --device cuda --out %s/cu.ckpt --loss-log %s/cu.log", tiny,
                 tmpdir, tmpdir);
    cr_assert_eq(rc, 0, "%s", out);
    free(out);
    rc = run(&out, GL_BUILD_DIR "/train %s --out %s/cpu.ckpt --loss-log %s/cpu.log", tiny, tmpdir, tmpdir);
    cr_assert_eq(rc, 0, "%s", out);
    free(out);
    expect_same_losses("cu.log", "cpu.log", 3);
    /* LoRA fine-tuning of that checkpoint on the device: the CPU's losses too; QLoRA is refused there */
    const char *tune = "--data data/tinyshakespeare/input.txt --batch 2 --eval-interval 3 --eval-batches 1 "
                       "--final-eval-batches 0 --sample 0 --quiet --steps 3 --lora r=2,targets=qvf --lr 1e-2";
    rc = run(&out, GL_BUILD_DIR "/train_cuda_emu %s --finetune %s/cu.ckpt --device cuda --out %s/cu.lora --loss-log "
                   "%s/lcu.log", tune, tmpdir, tmpdir, tmpdir);
    cr_assert_eq(rc, 0, "%s", out);
    free(out);
    rc = run(&out, GL_BUILD_DIR "/train %s --finetune %s/cu.ckpt --out %s/cpu.lora --loss-log %s/lcpu.log", tune, tmpdir,
             tmpdir, tmpdir);
    cr_assert_eq(rc, 0, "%s", out);
    free(out);
    expect_same_losses("lcu.log", "lcpu.log", 3);
    rc = run(&out, GL_BUILD_DIR "/train_cuda_emu %s --finetune %s/cu.ckpt --device cuda --qlora --out %s/q.lora", tune,
             tmpdir, tmpdir);
    cr_assert(rc == 2 && strstr(out, "--qlora runs on the CPU"), "%s", out);
    free(out);
    rc = run(&out, GL_BUILD_DIR "/train --resume %s/cu.ckpt --data data/tinyshakespeare/input.txt --steps 4 --quiet "
                   "--sample 0 --final-eval-batches 0 --eval-batches 1 --out %s/cu2.ckpt", tmpdir, tmpdir);
    cr_assert_eq(rc, 0, "a device checkpoint resumes on the CPU: %s", out);
    free(out);
    rc = run(&out, GL_BUILD_DIR "/train %s --device cuda --out %s/x.ckpt", tiny, tmpdir);
    cr_assert(rc == 2 && strstr(out, "needs a CUDA build"), "%s", out);
    free(out);
    /* greedy generation on the (emulated) device gives the CPU's tokens */
    char *gen_cpu, *gen_cuda;
    rc = run(&gen_cuda, GL_BUILD_DIR "/infer_cuda_emu --checkpoint %s/cu.ckpt --device cuda --prompt ROMEO --max-new-tokens 6 "
                        "--temperature 0 --print-ids 2>/dev/null", tmpdir);
    cr_assert_eq(rc, 0, "%s", gen_cuda);
    rc = run(&gen_cpu, GL_BUILD_DIR "/infer --checkpoint %s/cu.ckpt --prompt ROMEO --max-new-tokens 6 --temperature 0 "
                       "--print-ids 2>/dev/null", tmpdir);
    cr_assert_eq(rc, 0, "%s", gen_cpu);
    cr_assert_str_eq(gen_cuda, gen_cpu);
    free(gen_cpu);
    free(gen_cuda);
    rc = run(&out, GL_BUILD_DIR "/infer --checkpoint %s/cu.ckpt --device cuda", tmpdir);
    cr_assert(rc == 1 && strstr(out, "needs a CUDA build"), "%s", out);
    free(out);
}
