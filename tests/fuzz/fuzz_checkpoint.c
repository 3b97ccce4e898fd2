/* libFuzzer target for training checkpoints (models/gpt_io.c): the checksum is fixed up (fuzz_util.h) so that every
 * header and run-state field is explored; a file that loads must give a model, a vocabulary or tokenizer and an
 * optimizer state of consistent sizes, and one generation step on it must not fault. `make fuzz`. */
#include "fuzz_util.h"
#include "gpt_io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *fixed = fuzz_with_fnv(data, size);
    const char *path = fuzz_write("ckpt", fixed ? fixed : data, size);
    free(fixed);
    gpt m;
    gpt_run_state s;
    float *opt = NULL;
    int64_t n_opt = 0, opt_step = 0;
    char err[512];
    if (!gpt_load_checkpoint(path, &m, &s, &opt, &n_opt, &opt_step, err, sizeof err)) return 0;
    if (n_opt) opt[n_opt - 1] += 1.0f; /* inside its allocation (ASan) */
    if (s.n_symbols) s.symbols[s.n_symbols - 1] ^= 1;
    if (s.bpe_len) s.bpe[s.bpe_len - 1] ^= 1;
    int32_t id = m.cfg.vocab_size - 1;
    gl_step_reset();
    gl_no_grad_begin();
    gpt_forward(&m, &id, 1, 1, NULL, false);
    gl_no_grad_end();
    free(opt), free(s.symbols), free(s.bpe);
    gpt_free(&m);
    return 0;
}
