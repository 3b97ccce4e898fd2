/* libFuzzer target for Hugging Face GPT-2 weights: safetensors + config.json (core/safetensors.c, models/gpt_io.c).
 * The input's first two bytes give the length of the config.json that follows; the rest is the safetensors file.
 * `make fuzz`. */
#include "fuzz_util.h"
#include "gpt_io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    size_t clen = (size_t)data[0] | (size_t)data[1] << 8;
    data += 2, size -= 2;
    if (clen > size) clen = size;
    const char *config = fuzz_write("config.json", data, clen);
    const char *weights = fuzz_write("model.safetensors", data + clen, size - clen);
    gpt m;
    char err[512];
    if (gpt_load_safetensors(weights, config, &m, err, sizeof err)) gpt_free(&m);
    return 0;
}
