/* Byte-level BPE (GPT-2's scheme): text is pre-split into pieces (pretok.h), each piece starts as one token per
 * byte, and the pair with the lowest merge rank is merged until no pair has a rank. Loads the original GPT-2
 * files (encoder.json + vocab.bpe) and gives exactly tiktoken's "gpt2" ids; trains new vocabularies; saves and
 * loads them in our format (docs/formats.md). decode(encode(x)) == x for any bytes. */
#ifndef GRADLAB_BPE_H
#define GRADLAB_BPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gl_bpe gl_bpe;

/* GPT-2's encoder.json and vocab.bpe; <|endoftext|> becomes the special token 50256. */
gl_bpe *gl_bpe_load_gpt2(const char *encoder_json, const char *vocab_bpe, char *err, size_t err_len);
/* our format */
gl_bpe *gl_bpe_load(const char *path, char *err, size_t err_len);
bool gl_bpe_save(const gl_bpe *t, const char *path, char *err, size_t err_len);
/* Serialises into a malloc'd buffer (the same bytes gl_bpe_save writes) / reads one back. */
unsigned char *gl_bpe_serialize(const gl_bpe *t, size_t *len);
gl_bpe *gl_bpe_deserialize(const unsigned char *buf, size_t len, const char *what, char *err, size_t err_len);

/* Learns vocab_size - 256 - n_special merges from text (pre-split as GPT-2, so merges never cross pieces),
 * then appends the special tokens. progress: print a line every so many merges (0 = silent). */
gl_bpe *gl_bpe_train(const unsigned char *text, size_t len, int vocab_size, const char *const *specials,
                     int n_specials, int progress, char *err, size_t err_len);

/* Bytes are ids 0..255, merge k makes id 256 + k from the pair merges[k], then the special tokens follow. */
gl_bpe *gl_bpe_from_merges(const int32_t (*merges)[2], int n_merges, const char *const *specials, int n_specials);

int gl_bpe_vocab_size(const gl_bpe *t);
int gl_bpe_n_merges(const gl_bpe *t);
/* bytes of a token (not NUL-terminated) */
const unsigned char *gl_bpe_token_bytes(const gl_bpe *t, int32_t id, size_t *len);
/* id of a special token by its text, or -1 */
int32_t gl_bpe_special_id(const gl_bpe *t, const char *text);
bool gl_bpe_is_special(const gl_bpe *t, int32_t id);

/* The tokenizer of a GGUF model (tokenizer.ggml.model "gpt2"): tokens in GPT-2's byte-to-character map, token
 * types (control and user-defined tokens are special), merges in list order (Hugging Face's pair-rank rule), and
 * the pre-tokenizer named by tokenizer.ggml.pre ("gpt2", "smollm", "starcoder": digits split one by one).
 * Gives llama.cpp's ids. Errors name the file and the entry. */
struct gl_gguf;
gl_bpe *gl_bpe_load_gguf(const struct gl_gguf *g, char *err, size_t err_len);

/* Encodes ordinary text: special-token strings inside it are ordinary characters (as tiktoken's encode_ordinary).
 * Appends to *ids (grown with realloc; *cap is its capacity) and returns the number of ids written. */
size_t gl_bpe_encode(gl_bpe *t, const unsigned char *text, size_t len, int32_t **ids, size_t *cap);
/* Like gl_bpe_encode but the given special tokens' texts are recognised and emitted as their ids. */
size_t gl_bpe_encode_with_specials(gl_bpe *t, const unsigned char *text, size_t len, int32_t **ids, size_t *cap);
/* Concatenates the tokens' bytes; false (with the position) on an id outside the vocabulary. */
bool gl_bpe_decode(const gl_bpe *t, const int32_t *ids, size_t n, unsigned char **out, size_t *out_len, char *err,
                   size_t err_len);
/* Forget the cache of encoded pieces (benchmarks measure a cold start). */
void gl_bpe_clear_cache(gl_bpe *t);
void gl_bpe_free(gl_bpe *t);

#endif
