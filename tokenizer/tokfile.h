/* Token files: a corpus already encoded, for `build/train --tokens` (written by `tokenize train --tokens`).
 * Layout (little-endian), after llm.c's data files: int32[256] header = {20240520, 1, n_tokens, vocab_size, 0...},
 * then n_tokens uint16 ids. */
#ifndef GRADLAB_TOKFILE_H
#define GRADLAB_TOKFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

bool gl_tokfile_write(const char *path, const int32_t *ids, size_t n, int vocab_size, char *err, size_t err_len);
/* *ids is malloc'd; *vocab_size from the header */
bool gl_tokfile_read(const char *path, int32_t **ids, size_t *n, int *vocab_size, char *err, size_t err_len);

#endif
