#include "charvocab.h"

#include "utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

void gl_charvocab_build(gl_charvocab *v, const uint32_t *cps, size_t n) {
    uint32_t *sorted = malloc((n ? n : 1) * sizeof *sorted);
    memcpy(sorted, cps, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_u32);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || sorted[i] != sorted[i - 1]) sorted[k++] = sorted[i];
    v->size = (int)k;
    v->codepoints = realloc(sorted, (k ? k : 1) * sizeof *sorted);
}

long long gl_charvocab_encode(const gl_charvocab *v, const uint32_t *cps, size_t n, int32_t *ids, size_t *dropped,
                              char *err, size_t err_len) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t *hit = bsearch(&cps[i], v->codepoints, (size_t)v->size, sizeof(uint32_t), cmp_u32);
        if (!hit && dropped) {
            (*dropped)++;
            continue;
        }
        if (!hit) {
            char utf8[5] = {0};
            gl_utf8_encode(cps[i], utf8);
            snprintf(err, err_len, "character '%s' (U+%04X) at position %zu is not in the model's vocabulary", utf8,
                     cps[i], i);
            return -1;
        }
        ids[k++] = (int32_t)(hit - v->codepoints);
    }
    return (long long)k;
}

void gl_charvocab_free(gl_charvocab *v) {
    free(v->codepoints);
    v->codepoints = NULL;
    v->size = 0;
}
