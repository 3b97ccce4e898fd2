/* Files as a hostile user would write them (issue: hardening). Each case once crashed, read out of bounds,
 * allocated without limit or was accepted silently; now each is refused with a message naming the file and the
 * problem. The programs' cases (flags, --resume, outputs) are in tests/hostile_programs.sh. */
#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "csv.h"
#include "idx.h"
#include "gpt.h"
#include "gpt_io.h"
#include "io.h"
#include "safetensors.h"
#include "testutil.h"

static const char *dir(void) {
    mkdir("out", 0755), mkdir("out/test", 0755), mkdir("out/test/hostile", 0755);
    return "out/test/hostile";
}

/* ---- safetensors: the validation layer alone, on small files built from a header text ---- */

static bool parse_st(const char *header, size_t data_len, char *err, size_t n, gl_safetensors *st,
                     unsigned char **buf) {
    size_t hlen = strlen(header), len = 8 + hlen + data_len;
    *buf = calloc(len, 1);
    for (int i = 0; i < 8; i++) (*buf)[i] = (unsigned char)(hlen >> (8 * i));
    memcpy(*buf + 8, header, hlen);
    return gl_safetensors_parse(*buf, len, "x.safetensors", st, err, n);
}

static void expect_st_error(const char *header, size_t data_len, const char *needle) {
    char err[512] = "";
    gl_safetensors st;
    unsigned char *buf;
    cr_assert_not(parse_st(header, data_len, err, sizeof err, &st, &buf), "accepted: %s", header);
    cr_assert(strstr(err, needle), "error \"%s\" lacks \"%s\" (header %s)", err, needle, header);
    cr_assert(strstr(err, "'x.safetensors'"), "the message names the file: %s", err);
    free(buf);
}

#define T2(a, b) "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":" a "},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":" b "}}"

Test(hostile, safetensors_layout_is_validated_like_upstream) {
    char err[512] = "";
    gl_safetensors st;
    unsigned char *buf;
    cr_assert(parse_st(T2("[0,8]", "[8,16]"), 16, err, sizeof err, &st, &buf), "%s", err);
    cr_assert_eq(st.n, 2);
    cr_assert_eq(gl_safetensors_find(&st, "b")->data, buf + 8 + strlen(T2("[0,8]", "[8,16]")) + 8);
    gl_safetensors_free(&st), free(buf);
    cr_assert(parse_st(T2("[8,16]", "[0,8]"), 16, err, sizeof err, &st, &buf), "any header order: %s", err);
    gl_safetensors_free(&st), free(buf);

    expect_st_error(T2("[0,8]", "[4,12]"), 12, "overlaps");
    expect_st_error(T2("[0,8]", "[0,8]"), 8, "overlaps");
    expect_st_error(T2("[0,8]", "[12,20]"), 20, "a hole");
    expect_st_error(T2("[0,8]", "[8,16]"), 20, "trailing bytes");
    expect_st_error(T2("[0,8]", "[8.5,16.5]"), 17, "two integers");
    expect_st_error(T2("[0,8]", "[16,8]"), 16, "begin <= end");
    expect_st_error(T2("[0,8]", "[8,24]"), 16, "outside the 16 data bytes");
    expect_st_error(T2("[0,8]", "[8,12]"), 12, "need 8");
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                    "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16, "appears twice");
    expect_st_error("{\"a\":{\"dtype\":\"F99\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "unknown dtype");
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "non-negative integer");
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,8]}}", 8, "non-negative integer");
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8,
                    "more elements");
    expect_st_error("{\"__metadata__\":{\"format\":1}}", 0, "strings to strings");
    expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "lacks dtype, shape or data_offsets");
    expect_st_error("[1,2]", 0, "not a JSON object");
}

/* A tiny file whose config.json describes a huge model is refused before anything is allocated (it was killed for
 * memory, with no message). */
Test(hostile, a_small_safetensors_file_cannot_demand_a_huge_model) {
    char cfg[256], err[512] = "";
    snprintf(cfg, sizeof cfg, "%s/huge.config.json", dir());
    FILE *f = fopen(cfg, "w");
    fputs("{\"n_layer\": 256, \"n_head\": 64, \"n_embd\": 65536, \"n_positions\": 1048576, \"vocab_size\": 50257}", f);
    fclose(f);
    gpt m;
    cr_assert_not(gpt_load_safetensors("tests/ref/gpt2_tiny.safetensors", cfg, &m, err, sizeof err));
    cr_assert(strstr(err, "holds 31488 data bytes") && strstr(err, "needs"), "%s", err);
}

/* ---- checkpoints: every run-state field is range-checked after the checksum ---- */

static const char *write_ckpt(const char *name) {
    static char path[256];
    snprintf(path, sizeof path, "%s/%s.ckpt", dir(), name);
    gpt m;
    gpt_build(&m, (gpt_config){.n_layer = 1, .n_head = 1, .n_embd = 8, .block_size = 4, .vocab_size = 3,
                               .padded_vocab_size = 64, .bias = true, .ln_eps = 1e-5f});
    uint32_t symbols[3] = {'a', 'b', 'c'};
    gpt_run_state s = {.step = 5, .batch = 2, .lr = 1e-3f, .min_lr = 1e-4f, .beta1 = 0.9f, .beta2 = 0.99f,
                       .eps = 1e-8f, .weight_decay = 0.1f, .grad_clip = 1, .val_fraction = 0.1f, .warmup_steps = 2,
                       .decay_steps = 10, .total_steps = 10, .n_symbols = 3, .symbols = symbols};
    char err[256];
    cr_assert(gpt_save_checkpoint(path, &m, NULL, &s, err, sizeof err), "%s", err);
    gpt_free(&m);
    return path;
}

/* overwrites n bytes at offset and fixes the checksum, as a deliberate forger would */
static void forge(const char *path, size_t offset, const void *bytes, size_t n) {
    unsigned char *buf;
    size_t len;
    char err[256];
    cr_assert(gl_read_whole_file(path, &buf, &len, err, sizeof err), "%s", err);
    memcpy(buf + offset, bytes, n);
    uint64_t sum = gl_fnv1a(GL_FNV_OFFSET, buf, len - 8);
    memcpy(buf + len - 8, &sum, 8);
    cr_assert(gl_write_file_atomic(path, buf, len, err, sizeof err), "%s", err);
    free(buf);
}

static void expect_ckpt_error(const char *path, const char *needle) {
    gpt m;
    gpt_run_state s;
    float *opt = NULL;
    int64_t nf, st;
    char err[512] = "";
    cr_assert_not(gpt_load_checkpoint(path, &m, &s, &opt, &nf, &st, err, sizeof err), "accepted");
    cr_assert(strstr(err, needle), "error \"%s\" lacks \"%s\"", err, needle);
}

enum { AT_STEP = 56, AT_LR = 104, AT_VAL_FRACTION = 132, AT_TOTAL = 152, AT_BATCH = 160, AT_N_WEIGHTS = 176,
       AT_OPT_STEP = 192, AT_SYMBOLS = 200 };

Test(hostile, checkpoint_run_state_fields_are_range_checked) {
    const char *p = write_ckpt("ok");
    gpt m;
    gpt_run_state s;
    char err[512];
    cr_assert(gpt_load_checkpoint(p, &m, &s, NULL, NULL, NULL, err, sizeof err), "the unforged file loads: %s", err);
    gpt_free(&m), free(s.symbols), free(s.bpe);

    int32_t batch = -3, huge_batch = 1 << 30;
    forge(p = write_ckpt("batch"), AT_BATCH, &batch, 4);
    expect_ckpt_error(p, "batch -3 is outside");
    forge(p = write_ckpt("batch2"), AT_BATCH, &huge_batch, 4);
    expect_ckpt_error(p, "batch 1.07374e+09 is outside");
    int64_t step = -1, step_past = 11, total = (int64_t)1 << 40;
    forge(p = write_ckpt("step"), AT_STEP, &step, 8);
    expect_ckpt_error(p, "step -1 is outside");
    forge(p = write_ckpt("step2"), AT_STEP, &step_past, 8);
    expect_ckpt_error(p, "step 11 is outside [0, 10]");
    forge(p = write_ckpt("total"), AT_TOTAL, &total, 8);
    expect_ckpt_error(p, "total_steps");
    float nan = NAN, val = 1.5f;
    forge(p = write_ckpt("lr"), AT_LR, &nan, 4);
    expect_ckpt_error(p, "lr nan is outside");
    forge(p = write_ckpt("val"), AT_VAL_FRACTION, &val, 4);
    expect_ckpt_error(p, "val_fraction 1.5 is outside");
    int64_t opt_step = 99;
    forge(p = write_ckpt("optstep"), AT_OPT_STEP, &opt_step, 8);
    expect_ckpt_error(p, "after 99 optimizer steps");
    uint32_t surrogate = 0xD800;
    forge(p = write_ckpt("symbol"), AT_SYMBOLS + 4, &surrogate, 4);
    expect_ckpt_error(p, "symbol 1 is U+D800");
}

/* A header whose config asks for a huge model is refused before the model is built (it was built and zeroed first:
 * killed for memory with no message). */
Test(hostile, a_small_checkpoint_cannot_demand_a_huge_model) {
    const char *p = write_ckpt("cfg");
    int32_t cfg[3] = {256, 64, 65536}; /* n_layer, n_head, n_embd */
    forge(p, 16, cfg, sizeof cfg);
    expect_ckpt_error(p, "its config needs");
    p = write_ckpt("nweights");
    int64_t n = 12345;
    forge(p, AT_N_WEIGHTS, &n, 8);
    expect_ckpt_error(p, "stores 12345 weights");
}

/* ---- writing files ---- */

/* The temporary of an atomic write has an unpredictable name and is created exclusively: a symlink planted at
 * the old fixed name PATH.tmp is not written through, and the file gets the usual permissions. */
Test(hostile, atomic_writes_do_not_follow_planted_symlinks) {
    char path[256], planted[300], victim[300], err[256];
    snprintf(path, sizeof path, "%s/out.bin", dir());
    snprintf(planted, sizeof planted, "%s.tmp", path);
    snprintf(victim, sizeof victim, "%s/victim.txt", dir());
    FILE *f = fopen(victim, "w");
    fputs("precious", f);
    fclose(f);
    remove(planted), remove(path);
    cr_assert_eq(symlink("victim.txt", planted), 0);
    cr_assert(gl_write_file_atomic(path, "new bytes", 9, err, sizeof err), "%s", err);
    unsigned char *got;
    size_t len;
    cr_assert(gl_read_whole_file(victim, &got, &len, err, sizeof err));
    cr_assert(len == 8 && !memcmp(got, "precious", 8), "the symlink's target is untouched");
    free(got);
    cr_assert(gl_read_whole_file(path, &got, &len, err, sizeof err));
    cr_assert(len == 9 && !memcmp(got, "new bytes", 9));
    free(got);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    mode_t mask = umask(0);
    umask(mask);
    cr_assert_eq(st.st_mode & 0777, 0666 & ~mask, "permissions %o, not mkstemp's 0600", st.st_mode & 0777);
    remove(planted), remove(victim), remove(path);
}

/* A write into a missing folder fails with a message and leaves nothing behind. */
Test(hostile, a_failed_atomic_write_names_the_path) {
    char err[256] = "";
    cr_assert_not(gl_write_file_atomic("out/test/no/such/folder/x.bin", "x", 1, err, sizeof err));
    cr_assert(strstr(err, "cannot write 'out/test/no/such/folder/x.bin'"), "%s", err);
}

/* Two writers of one output: the second is refused while the first holds the lock, and leftover temporaries of a
 * killed writer are cleaned by the next lock holder. */
Test(hostile, one_output_has_one_writer) {
    char path[256], stale[300], lock[300], err[512];
    snprintf(path, sizeof path, "%s/locked.ckpt", dir());
    snprintf(lock, sizeof lock, "%s.lock", path);
    snprintf(stale, sizeof stale, "%s.tmp-Ab12Cd", path);
    remove(lock);
    FILE *f = fopen(stale, "w");
    fclose(f);
    int other = open(lock, O_RDWR | O_CREAT, 0644); /* another process's lock, as flock sees it */
    cr_assert(other >= 0 && flock(other, LOCK_EX | LOCK_NB) == 0);
    cr_assert_not(gl_lock_output(path, err, sizeof err));
    cr_assert(strstr(err, "in use by another run"), "%s", err);
    cr_assert_eq(access(stale, F_OK), 0, "a locked output's temporaries are left alone");
    close(other);
    cr_assert(gl_lock_output(path, err, sizeof err), "%s", err);
    cr_assert_neq(access(stale, F_OK), 0, "the stale temporary is removed");
    cr_assert_not(gl_lock_output("out/test/no/such/folder/x.ckpt", err, sizeof err));
    cr_assert(strstr(err, "is the folder there and writable?"), "%s", err);
}

/* ---- text files ---- */

Test(hostile, a_nul_byte_in_a_csv_is_refused_not_a_silent_end) {
    char path[256], err[512] = "";
    snprintf(path, sizeof path, "%s/nul.csv", dir());
    FILE *f = fopen(path, "wb");
    fwrite("a,b\n1,2\n3,4\0\n5,6\n", 1, 17, f);
    fclose(f);
    gl_csv t;
    cr_assert_not(gl_csv_read(path, &t, err, sizeof err));
    cr_assert(strstr(err, "line 3 holds a NUL byte"), "%s", err);
}

/* An IDX header may declare 3 GB in a 24-byte file (found by fuzz_datafiles): memory grows only with the data that
 * arrives, and the file is refused for holding less than it declares. */
Test(hostile, a_small_idx_file_cannot_demand_gigabytes) {
    char path[256], err[512] = "";
    snprintf(path, sizeof path, "%s/huge.idx", dir());
    const unsigned char bytes[24] = {0, 0, 8, 3, 0, 0x3d, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28, 0x7f, 0x28, 0x72, 0x33, 0, 0, 0x66, 0x37};
    FILE *f = fopen(path, "wb");
    fwrite(bytes, 1, sizeof bytes, f);
    fclose(f);
    gl_idx t;
    cr_assert_not(gl_idx_read(path, true, &t, err, sizeof err));
    cr_assert(strstr(err, "holds less data than its header's 3997698 x 28 x 28"), "%s", err);
#ifndef __SANITIZE_ADDRESS__ /* ASan reserves terabytes of address space: an address-space limit would stop it */
    /* 1,000,000 images of 28 x 28 (784 MB) declared in 24 bytes, read with 512 MB of address space: the reader used
     * to malloc the declared size first, and read into the NULL it got */
    const unsigned char million[24] = {0, 0, 8, 3, 0, 0x0f, 0x42, 0x40, 0, 0, 0, 28, 0, 0, 0, 28, 1, 2, 3, 4, 5, 6, 7, 8};
    f = fopen(path, "wb");
    fwrite(million, 1, sizeof million, f);
    fclose(f);
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit lim = {512u << 20, 512u << 20};
        setrlimit(RLIMIT_AS, &lim);
        _exit(!gl_idx_read(path, true, &t, err, sizeof err) && strstr(err, "holds less data") ? 0 : 1);
    }
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "within 512 MB the reader failed another way");
#endif
}
