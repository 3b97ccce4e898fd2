/* BPE training (as minbpe's RegexTokenizer, made fast): the text is pre-split with GPT-2's rule, identical pieces
 * are counted once with their frequency, and each round merges the most frequent adjacent pair (ties: the
 * smaller pair of ids) into a new token. Pair counts are kept up to date incrementally and the best pair comes
 * from a max-heap with lazy deletion, so a round costs only the words that contain the merged pair's first
 * symbol (found through per-symbol word lists). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpe.h"
#include "io.h"
#include "pretok.h"

typedef struct {
    int32_t *sym;
    int len;
    int64_t count;
} word;

/* ---- pair -> count, open addressing ---- */
typedef struct {
    uint64_t *keys; /* UINT64_MAX = empty */
    int64_t *counts;
    size_t mask, used;
} pair_map;

static uint64_t mix(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    return k ^ (k >> 33);
}

static int64_t *pair_slot(pair_map *m, uint64_t key) {
    if ((m->used + 1) * 2 > m->mask + 1) { /* grow */
        pair_map big = {malloc((m->mask + 1) * 2 * 8), malloc((m->mask + 1) * 2 * 8), (m->mask + 1) * 2 - 1, 0};
        memset(big.keys, 0xff, (big.mask + 1) * 8);
        for (size_t i = 0; i <= m->mask; i++)
            if (m->keys[i] != UINT64_MAX) *pair_slot(&big, m->keys[i]) = m->counts[i];
        free(m->keys);
        free(m->counts);
        *m = big;
    }
    size_t i = mix(key) & m->mask;
    while (m->keys[i] != UINT64_MAX && m->keys[i] != key) i = (i + 1) & m->mask;
    if (m->keys[i] == UINT64_MAX) {
        m->keys[i] = key;
        m->counts[i] = 0;
        m->used++;
    }
    return &m->counts[i];
}

/* ---- max-heap of (count, pair); entries go stale when a count changes and are skipped when popped ---- */
typedef struct {
    int64_t count;
    uint64_t key;
} entry;
typedef struct {
    entry *e;
    size_t n, cap;
} heap;

static bool above(entry a, entry b) { return a.count > b.count || (a.count == b.count && a.key < b.key); }

static void heap_push(heap *h, int64_t count, uint64_t key) {
    if (h->n == h->cap) h->e = realloc(h->e, (h->cap = h->cap ? h->cap * 2 : 1 << 16) * sizeof *h->e);
    size_t i = h->n++;
    h->e[i] = (entry){count, key};
    while (i && above(h->e[i], h->e[(i - 1) / 2])) {
        entry t = h->e[i];
        h->e[i] = h->e[(i - 1) / 2];
        h->e[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static entry heap_pop(heap *h) {
    entry top = h->e[0];
    h->e[0] = h->e[--h->n];
    for (size_t i = 0;;) {
        size_t l = 2 * i + 1, r = l + 1, best = i;
        if (l < h->n && above(h->e[l], h->e[best])) best = l;
        if (r < h->n && above(h->e[r], h->e[best])) best = r;
        if (best == i) break;
        entry t = h->e[i];
        h->e[i] = h->e[best];
        h->e[best] = t;
        i = best;
    }
    return top;
}

static uint64_t key_of(int32_t a, int32_t b) { return (uint64_t)(uint32_t)a << 32 | (uint32_t)b; }

static void add_pairs(pair_map *pm, heap *hp, const word *w, int64_t sign, bool push) {
    for (int i = 0; i + 1 < w->len; i++) {
        uint64_t k = key_of(w->sym[i], w->sym[i + 1]);
        int64_t *c = pair_slot(pm, k);
        *c += sign * w->count;
        if (push && *c > 0) heap_push(hp, *c, k);
    }
}

/* ---- per-symbol lists of words that contain the symbol (may hold stale entries; checked on use) ---- */
typedef struct {
    int32_t *w;
    int n, cap;
} wlist;

static void wlist_add(wlist *l, int32_t wi) {
    if (l->n && l->w[l->n - 1] == wi) return;
    if (l->n == l->cap) l->w = realloc(l->w, (size_t)(l->cap = l->cap ? l->cap * 2 : 4) * sizeof *l->w);
    l->w[l->n++] = wi;
}

gl_bpe *gl_bpe_train(const unsigned char *text, size_t len, int vocab_size, const char *const *specials,
                     int n_specials, int progress, char *err, size_t err_len) {
    int target = vocab_size - 256 - n_specials;
    if (vocab_size < 256 + n_specials || vocab_size > (1 << 24)) {
        snprintf(err, err_len, "vocabulary size %d is below 256 byte tokens + %d special tokens (or above 2^24)",
                 vocab_size, n_specials);
        return NULL;
    }
    if (len == 0) {
        snprintf(err, err_len, "the training corpus is empty");
        return NULL;
    }
    /* 1. distinct pieces with their counts */
    size_t cap = 1 << 16, n_words = 0;
    word *words = malloc(cap * sizeof *words);
    size_t tmask = (1 << 17) - 1;
    int64_t *table = malloc((tmask + 1) * sizeof *table); /* piece hash slot -> word index, -1 empty */
    memset(table, 0xff, (tmask + 1) * sizeof *table);
    const unsigned char **piece_ptr = malloc(cap * sizeof *piece_ptr);
    for (size_t pos = 0; pos < len;) {
        size_t end = gl_pretok_next(text, len, pos), n = end - pos;
        uint64_t h = gl_fnv1a(GL_FNV_OFFSET, text + pos, end - pos);
        size_t i = mix(h) & tmask;
        for (; table[i] >= 0; i = (i + 1) & tmask) {
            word *w = &words[table[i]];
            if ((size_t)w->len == n && memcmp(piece_ptr[table[i]], text + pos, n) == 0) break;
        }
        if (table[i] >= 0) {
            words[table[i]].count++;
        } else {
            if (n_words == cap) {
                cap *= 2;
                words = realloc(words, cap * sizeof *words);
                piece_ptr = realloc(piece_ptr, cap * sizeof *piece_ptr);
            }
            word *w = &words[n_words];
            w->len = (int)n;
            w->count = 1;
            w->sym = malloc(n * sizeof(int32_t));
            for (size_t k = 0; k < n; k++) w->sym[k] = text[pos + k];
            piece_ptr[n_words] = text + pos;
            table[i] = (int64_t)n_words++;
            if (n_words * 2 > tmask) { /* grow and rehash the piece table */
                free(table);
                tmask = tmask * 2 + 1;
                table = malloc((tmask + 1) * sizeof *table);
                memset(table, 0xff, (tmask + 1) * sizeof *table);
                for (size_t wi = 0; wi < n_words; wi++) {
                    uint64_t hh = gl_fnv1a(GL_FNV_OFFSET, piece_ptr[wi], (size_t)words[wi].len);
                    size_t j = mix(hh) & tmask;
                    while (table[j] >= 0) j = (j + 1) & tmask;
                    table[j] = (int64_t)wi;
                }
            }
        }
        pos = end;
    }
    free(table);
    free(piece_ptr);

    /* 2. pair counts, heap, symbol -> words */
    pair_map pm = {malloc(8 << 16), malloc(8 << 16), (1 << 16) - 1, 0};
    memset(pm.keys, 0xff, 8 << 16);
    heap hp = {0};
    int32_t n_sym = 256 + target;
    wlist *where = calloc((size_t)n_sym, sizeof *where);
    for (size_t wi = 0; wi < n_words; wi++) {
        add_pairs(&pm, &hp, &words[wi], 1, false);
        for (int k = 0; k < words[wi].len; k++) wlist_add(&where[words[wi].sym[k]], (int32_t)wi);
    }
    for (size_t i = 0; i <= pm.mask; i++)
        if (pm.keys[i] != UINT64_MAX && pm.counts[i] > 0) heap_push(&hp, pm.counts[i], pm.keys[i]);

    /* 3. merges */
    int32_t (*merges)[2] = malloc((size_t)(target > 0 ? target : 1) * sizeof *merges);
    int done = 0;
    while (done < target && hp.n) {
        entry top = heap_pop(&hp);
        if (*pair_slot(&pm, top.key) != top.count || top.count <= 0) continue; /* stale */
        int32_t a = (int32_t)(top.key >> 32), b = (int32_t)(top.key & 0xffffffffu), c = 256 + done;
        merges[done][0] = a, merges[done][1] = b;
        wlist *wl = &where[a];
        for (int li = 0; li < wl->n; li++) {
            word *w = &words[wl->w[li]];
            bool has = false;
            for (int i = 0; i + 1 < w->len && !has; i++) has = w->sym[i] == a && w->sym[i + 1] == b;
            if (!has) continue;
            add_pairs(&pm, &hp, w, -1, false);
            /* BEGIN SOLUTION lab05: apply one merge to a word: every adjacent pair (a, b), left to right, becomes the new symbol c (w->sym, w->len) */
            int o = 0;
            for (int i = 0; i < w->len;) {
                if (i + 1 < w->len && w->sym[i] == a && w->sym[i + 1] == b) w->sym[o++] = c, i += 2;
                else w->sym[o++] = w->sym[i++];
            }
            w->len = o;
            /* END SOLUTION */
            add_pairs(&pm, &hp, w, 1, true);
            wlist_add(&where[c], wl->w[li]);
        }
        done++;
        if (progress && done % progress == 0)
            fprintf(stderr, "  merge %d/%d: (%d, %d) -> %d, seen %lld times\n", done, target, a, b, c,
                    (long long)top.count);
    }
    gl_bpe *t = gl_bpe_from_merges((const int32_t (*)[2])merges, done, specials, n_specials);
    if (done < target)
        fprintf(stderr, "bpe: the corpus only supports %d merges (asked for %d); vocabulary size is %d\n", done, target,
                gl_bpe_vocab_size(t));
    for (size_t wi = 0; wi < n_words; wi++) free(words[wi].sym);
    for (int32_t s = 0; s < n_sym; s++) free(where[s].w);
    free(where);
    free(words);
    free(pm.keys);
    free(pm.counts);
    free(hp.e);
    free(merges);
    return t;
}
