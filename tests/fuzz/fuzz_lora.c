/* libFuzzer target for LoRA adapter files (models/gpt_lora.c) against a fixed small base model (2 layers, 16 dims,
 * bias on); the checksum is fixed up so the fuzzer explores the header and records. A file that loads is used in
 * one forward pass (a QLoRA file quantises the base to NF4 first, as train does). `make fuzz`. */
#include "fuzz_util.h"
#include "gpt.h"

static gpt base;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!base.n_params) {
        gpt_build(&base, (gpt_config){.n_layer = 2, .n_head = 2, .n_embd = 16, .block_size = 8, .vocab_size = 20,
                                      .padded_vocab_size = 64, .bias = true, .ln_eps = 1e-5f});
        gpt_init(&base, 1);
    }
    uint8_t *fixed = fuzz_with_fnv(data, size);
    const char *path = fuzz_write("lora", fixed ? fixed : data, size);
    free(fixed);
    char err[512];
    if (gpt_lora_load(&base, path, err, sizeof err)) {
        int32_t ids[2] = {1, 19};
        gl_step_reset();
        gl_no_grad_begin();
        gpt_forward(&base, ids, 1, 2, NULL, false);
        gl_no_grad_end();
        if (base.nf4) gpt_free(&base), base.n_params = 0; /* a QLoRA file quantised the base: build it afresh */
        else gpt_lora_free(&base);
    }
    return 0;
}
