/* Byte-level BPE: encoding (tiktoken's merge rule), GPT-2 files, our file format, decoding.
 *
 * Merge rule, as tiktoken's byte_pair_merge: a piece is a list of parts (initially its bytes); the rank of two
 * adjacent parts is the id of their concatenated bytes if that is a token; the lowest rank merges first (the
 * leftmost among equals) until no adjacent pair is a token. A piece that is itself a token is that token. For
 * GPT-2 the ids are the merge order, so this is GPT-2's BPE. Pieces already seen are served from a cache. */
#include "bpe.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "io.h"
#include "json.h"
#include "pretok.h"
#include "utf8.h"

struct gl_bpe {
    int n_tokens, n_merges, n_special;
    int32_t byte_id[256];
    int32_t *merge_left, *merge_right, *merge_id; /* by rank */
    unsigned char *blob;                          /* token bytes, token i at blob[off[i] .. off[i+1]) */
    size_t *off;
    bool *special;                                /* special tokens are never merge results */
    int32_t *special_ids;                         /* the n_special ids, ascending (built by build_index) */
    /* Hugging Face's merge rule (GGUF vocabularies): the rank of a pair of parts is its merge's position in the
     * merges list, looked up by the pair's ids (open addressing; key left << 32 | right), not the id of the
     * concatenation as in tiktoken. pretok_digits: every \p{N} character is a piece of its own before the GPT-2
     * split (llama.cpp's "smollm"/"starcoder" pre-tokenizers). */
    bool pair_ranks, pretok_digits;
    uint64_t *pair_key;
    int32_t *pair_rank;
    size_t pair_mask;
    int32_t *map;                                 /* open addressing: token bytes -> id, -1 = empty */
    size_t map_mask;
    /* piece cache: bytes -> ids */
    struct cache_entry {
        uint64_t hash;
        uint32_t key_off, key_len, ids_off, ids_len;
    } *cache;
    size_t cache_mask, cache_used;
    unsigned char *cache_keys;
    int32_t *cache_ids;
    size_t keys_len, keys_cap, ids_len, ids_cap;
};

static uint64_t hash_bytes(const unsigned char *p, size_t n) {
    uint64_t h = gl_fnv1a(GL_FNV_OFFSET, p, n);
    return h ^ (h >> 29);
}

static const unsigned char *tok(const gl_bpe *t, int32_t id, size_t *len) {
    *len = t->off[id + 1] - t->off[id];
    return t->blob + t->off[id];
}

/* id of a non-special token with these bytes, or -1 */
static int32_t lookup(const gl_bpe *t, const unsigned char *p, size_t n) {
    for (size_t i = hash_bytes(p, n) & t->map_mask;; i = (i + 1) & t->map_mask) {
        int32_t id = t->map[i];
        if (id < 0) return -1;
        size_t len;
        const unsigned char *b = tok(t, id, &len);
        if (len == n && memcmp(b, p, n) == 0 && !t->special[id]) return id;
    }
}

/* builds the bytes -> id map and the cache; the first id wins if two tokens share bytes */
static void build_index(gl_bpe *t) {
    size_t cap = 1;
    while (cap < (size_t)t->n_tokens * 2 + 2) cap <<= 1;
    t->map = malloc(cap * sizeof *t->map);
    memset(t->map, 0xff, cap * sizeof *t->map);
    t->map_mask = cap - 1;
    for (int32_t id = 0; id < t->n_tokens; id++) {
        size_t len;
        const unsigned char *b = tok(t, id, &len);
        if (!t->special[id] && lookup(t, b, len) >= 0) continue;
        size_t i = hash_bytes(b, len) & t->map_mask;
        while (t->map[i] >= 0) i = (i + 1) & t->map_mask;
        t->map[i] = id;
    }
    t->cache_mask = (1u << 16) - 1;
    t->cache = calloc(t->cache_mask + 1, sizeof *t->cache);
    t->special_ids = malloc(((size_t)t->n_special + 1) * sizeof *t->special_ids);
    int k = 0;
    for (int32_t id = 0; id < t->n_tokens && k < t->n_special; id++)
        if (t->special[id]) t->special_ids[k++] = id;
    t->n_special = k;
}

static void cache_clear(gl_bpe *t) {
    memset(t->cache, 0, (t->cache_mask + 1) * sizeof *t->cache);
    t->cache_used = t->keys_len = t->ids_len = 0;
}

void gl_bpe_clear_cache(gl_bpe *t) { cache_clear(t); }

void gl_bpe_free(gl_bpe *t) {
    if (!t) return;
    free(t->merge_left);
    free(t->merge_right);
    free(t->merge_id);
    free(t->blob);
    free(t->off);
    free(t->special);
    free(t->special_ids);
    free(t->pair_key);
    free(t->pair_rank);
    free(t->map);
    free(t->cache);
    free(t->cache_keys);
    free(t->cache_ids);
    free(t);
}

int gl_bpe_vocab_size(const gl_bpe *t) { return t->n_tokens; }
int gl_bpe_n_merges(const gl_bpe *t) { return t->n_merges; }
const unsigned char *gl_bpe_token_bytes(const gl_bpe *t, int32_t id, size_t *len) { return tok(t, id, len); }

int32_t gl_bpe_special_id(const gl_bpe *t, const char *text) {
    size_t n = strlen(text);
    for (int k = 0; k < t->n_special; k++) {
        size_t len;
        const unsigned char *b = tok(t, t->special_ids[k], &len);
        if (len == n && memcmp(b, text, n) == 0) return t->special_ids[k];
    }
    return -1;
}

bool gl_bpe_is_special(const gl_bpe *t, int32_t id) { return id >= 0 && id < t->n_tokens && t->special[id]; }

/* ---------------------------------------------------------------- encoding */

static uint64_t pair_hash(uint64_t key) { return (key * 0x9E3779B97F4A7C15ull) >> 20; }

/* rank of merging parts a and b (ids), INT32_MAX if no merge makes them one */
static int32_t pair_rank(const gl_bpe *t, int32_t a, int32_t b) {
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    for (size_t i = pair_hash(key) & t->pair_mask;; i = (i + 1) & t->pair_mask) {
        if (t->pair_rank[i] < 0) return INT32_MAX;
        if (t->pair_key[i] == key) return t->pair_rank[i];
    }
}

/* Hugging Face's BPE of one piece: start from its bytes' tokens, merge the adjacent pair whose merge comes first in
 * the list (the leftmost among equals) until no adjacent pair has a merge. */
static size_t bpe_piece_pairs(const gl_bpe *t, const unsigned char *p, size_t n, int32_t *out) {
    size_t parts = 0; /* a byte without a token of its own is dropped, as llama.cpp does */
    for (size_t i = 0; i < n; i++)
        if (t->byte_id[p[i]] >= 0) out[parts++] = t->byte_id[p[i]];
    while (parts > 1) {
        size_t best = 0;
        int32_t best_rank = INT32_MAX;
        for (size_t i = 0; i + 1 < parts; i++) {
            int32_t r = pair_rank(t, out[i], out[i + 1]);
            if (r < best_rank) best_rank = r, best = i;
        }
        if (best_rank == INT32_MAX) break;
        out[best] = t->merge_id[best_rank];
        memmove(out + best + 1, out + best + 2, (parts - best - 2) * sizeof *out);
        parts--;
    }
    return parts;
}

/* BPE of one piece into out (room for n ids); returns the count */
static size_t bpe_piece(const gl_bpe *t, const unsigned char *p, size_t n, int32_t *out) {
    if (n == 1) return t->byte_id[p[0]] < 0 ? 0 : (out[0] = t->byte_id[p[0]], 1);
    if (t->pair_ranks) return bpe_piece_pairs(t, p, n, out);
    int32_t whole = lookup(t, p, n);
    if (whole >= 0) return out[0] = whole, 1;
    enum { SMALL = 256 };
    size_t bounds_small[SMALL + 1];
    int32_t ranks_small[SMALL];
    size_t *bound = n < SMALL ? bounds_small : malloc((n + 1) * sizeof *bound);
    int32_t *rank = n < SMALL ? ranks_small : malloc(n * sizeof *rank);
    size_t parts = n; /* part i is p[bound[i] .. bound[i+1]) */
    for (size_t i = 0; i <= n; i++) bound[i] = i;
    for (size_t i = 0; i + 1 < parts; i++) {
        int32_t r = lookup(t, p + i, 2);
        rank[i] = r < 0 ? INT32_MAX : r;
    }
    while (parts > 1) {
        size_t best = 0;
        for (size_t i = 1; i + 1 < parts; i++)
            if (rank[i] < rank[best]) best = i;
        if (rank[best] == INT32_MAX) break;
        /* merge parts best and best+1: drop boundary best+1 */
        memmove(bound + best + 1, bound + best + 2, (parts - best - 1) * sizeof *bound);
        memmove(rank + best + 1, rank + best + 2, (parts > best + 2 ? parts - best - 2 : 0) * sizeof *rank);
        parts--;
        if (best + 1 < parts) {
            int32_t r = lookup(t, p + bound[best], bound[best + 2] - bound[best]);
            rank[best] = r < 0 ? INT32_MAX : r;
        }
        if (best > 0) {
            int32_t r = lookup(t, p + bound[best - 1], bound[best + 1] - bound[best - 1]);
            rank[best - 1] = r < 0 ? INT32_MAX : r;
        }
    }
    for (size_t i = 0; i < parts; i++) {
        size_t len = bound[i + 1] - bound[i];
        out[i] = len == 1 ? t->byte_id[p[bound[i]]] : lookup(t, p + bound[i], len);
    }
    if (bound != bounds_small) free(bound);
    if (rank != ranks_small) free(rank);
    return parts;
}

static void reserve(int32_t **ids, size_t *cap, size_t need) {
    if (need <= *cap) return;
    size_t c = *cap ? *cap : 1024;
    while (c < need) c *= 2;
    *ids = realloc(*ids, c * sizeof **ids);
    *cap = c;
}

/* encode one piece through the cache */
static size_t encode_piece(gl_bpe *t, const unsigned char *p, size_t n, int32_t **ids, size_t *cap, size_t at) {
    reserve(ids, cap, at + n);
    if (n == 1) return t->byte_id[p[0]] < 0 ? 0 : ((*ids)[at] = t->byte_id[p[0]], 1);
    uint64_t h = hash_bytes(p, n);
    size_t i = h & t->cache_mask;
    for (; t->cache[i].key_len; i = (i + 1) & t->cache_mask) {
        struct cache_entry *e = &t->cache[i];
        if (e->hash == h && e->key_len == n && memcmp(t->cache_keys + e->key_off, p, n) == 0) {
            memcpy(*ids + at, t->cache_ids + e->ids_off, e->ids_len * sizeof(int32_t));
            return e->ids_len;
        }
    }
    size_t m = bpe_piece(t, p, n, *ids + at);
    if (n > 64) return m; /* long pieces (runs of spaces, long words) are rarely repeated */
    if (t->cache_used * 2 > t->cache_mask || t->keys_len + n > 1u << 24 || t->ids_len + m > 1u << 22) {
        cache_clear(t);
        i = h & t->cache_mask;
    }
    if (t->keys_len + n > t->keys_cap) {
        t->keys_cap = t->keys_cap ? t->keys_cap * 2 : 1 << 16;
        t->cache_keys = realloc(t->cache_keys, t->keys_cap);
    }
    if (t->ids_len + m > t->ids_cap) {
        t->ids_cap = t->ids_cap ? t->ids_cap * 2 : 1 << 15;
        t->cache_ids = realloc(t->cache_ids, t->ids_cap * sizeof(int32_t));
    }
    memcpy(t->cache_keys + t->keys_len, p, n);
    memcpy(t->cache_ids + t->ids_len, *ids + at, m * sizeof(int32_t));
    t->cache[i] = (struct cache_entry){h, (uint32_t)t->keys_len, (uint32_t)n, (uint32_t)t->ids_len, (uint32_t)m};
    t->keys_len += n;
    t->ids_len += m;
    t->cache_used++;
    return m;
}

/* the end of the segment at pos when every number character stands alone: the character itself if it is a
 * number, else the run up to the next number character (or the end) */
static size_t digit_segment(const unsigned char *s, size_t len, size_t pos) {
    size_t n;
    if (gl_char_at(s, len, pos, &n) == GL_CHAR_NUMBER) return pos + n;
    while (pos < len && gl_char_at(s, len, pos, &n) != GL_CHAR_NUMBER) pos += n;
    return pos;
}

size_t gl_bpe_encode(gl_bpe *t, const unsigned char *text, size_t len, int32_t **ids, size_t *cap) {
    size_t pos = 0, n = 0;
    while (pos < len) {
        size_t seg_end = t->pretok_digits ? digit_segment(text, len, pos) : len;
        while (pos < seg_end) {
            size_t end = gl_pretok_next(text, seg_end, pos);
            n += encode_piece(t, text + pos, end - pos, ids, cap, n);
            pos = end;
        }
    }
    return n;
}

size_t gl_bpe_encode_with_specials(gl_bpe *t, const unsigned char *text, size_t len, int32_t **ids, size_t *cap) {
    size_t n = 0, start = 0, pos = 0;
    while (pos < len) {
        int32_t hit = -1;
        size_t hit_len = 0;
        for (int k = 0; k < t->n_special; k++) { /* specials are checked at every byte; they are few */
                int32_t id = t->special_ids[k];
                size_t l;
                const unsigned char *b = tok(t, id, &l);
                if (l && l <= len - pos && memcmp(text + pos, b, l) == 0 && l > hit_len) hit = id, hit_len = l;
            }
        if (hit < 0) {
            pos++;
            continue;
        }
        int32_t *seg = NULL;
        size_t seg_cap = 0, m = gl_bpe_encode(t, text + start, pos - start, &seg, &seg_cap);
        reserve(ids, cap, n + m + 1);
        memcpy(*ids + n, seg, m * sizeof(int32_t));
        free(seg);
        n += m;
        (*ids)[n++] = hit;
        pos += hit_len;
        start = pos;
    }
    int32_t *seg = NULL;
    size_t seg_cap = 0, m = gl_bpe_encode(t, text + start, len - start, &seg, &seg_cap);
    reserve(ids, cap, n + m);
    if (m) memcpy(*ids + n, seg, m * sizeof(int32_t));
    free(seg);
    return n + m;
}

bool gl_bpe_decode(const gl_bpe *t, const int32_t *ids, size_t n, unsigned char **out, size_t *out_len, char *err,
                   size_t err_len) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_tokens) {
            snprintf(err, err_len, "token id %d at position %zu is outside the vocabulary [0, %d)", ids[i], i,
                     t->n_tokens);
            return false;
        }
        total += t->off[ids[i] + 1] - t->off[ids[i]];
    }
    unsigned char *buf = malloc(total + 1), *w = buf;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const unsigned char *b = tok(t, ids[i], &len);
        memcpy(w, b, len);
        w += len;
    }
    *w = 0;
    *out = buf;
    *out_len = total;
    return true;
}

/* ---------------------------------------------------------------- construction helpers */

/* a tokenizer with n tokens whose bytes are lens[i] bytes of data in order; merges are set by the caller */
static gl_bpe *alloc_bpe(int n_tokens, int n_merges) {
    gl_bpe *t = calloc(1, sizeof *t);
    t->n_tokens = n_tokens;
    t->n_merges = n_merges;
    t->merge_left = calloc((size_t)n_merges + 1, sizeof(int32_t));
    t->merge_right = calloc((size_t)n_merges + 1, sizeof(int32_t));
    t->merge_id = calloc((size_t)n_merges + 1, sizeof(int32_t));
    t->off = calloc((size_t)n_tokens + 1, sizeof(size_t));
    t->special = calloc((size_t)n_tokens + 1, sizeof(bool));
    return t;
}

/* ---------------------------------------------------------------- GPT-2 files */

/* GPT-2's bytes_to_unicode: printable bytes map to themselves, the other 68 to U+0100 + k */
static void gpt2_byte_table(uint32_t byte_to_cp[256]) {
    int k = 0;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        byte_to_cp[b] = printable ? (uint32_t)b : 256u + (uint32_t)k++;
    }
}

/* a GPT-2 token string (UTF-8 of mapped code points) back to raw bytes; false if a code point is not in the map */
static bool gpt2_unmap(const char *s, size_t n, const int cp_to_byte[324], unsigned char *out, size_t *out_len) {
    uint32_t *cps;
    size_t ncp;
    char e[64];
    if (!gl_utf8_decode((const unsigned char *)s, n, &cps, &ncp, e, sizeof e)) return false;
    bool ok = true;
    for (size_t i = 0; i < ncp && ok; i++) {
        if (cps[i] >= 324 || cp_to_byte[cps[i]] < 0) ok = false;
        else out[i] = (unsigned char)cp_to_byte[cps[i]];
    }
    *out_len = ncp;
    free(cps);
    return ok;
}

gl_bpe *gl_bpe_load_gpt2(const char *encoder_json, const char *vocab_bpe, char *err, size_t err_len) {
    unsigned char *jbuf, *mbuf;
    size_t jlen, mlen;
    if (!gl_read_whole_file(encoder_json, &jbuf, &jlen, err, err_len)) return NULL;
    char jerr[160];
    gl_json *enc = gl_json_parse((const char *)jbuf, jlen, jerr, sizeof jerr);
    free(jbuf);
    if (!enc || enc->type != GL_JSON_OBJECT || enc->count < 256) {
        snprintf(err, err_len, "'%s' is not a GPT-2 encoder.json (an object of at least 256 token: id pairs)%s%s",
                 encoder_json, enc ? "" : ": ", enc ? "" : jerr);
        gl_json_free(enc);
        return NULL;
    }
    if (!gl_read_whole_file(vocab_bpe, &mbuf, &mlen, err, err_len)) {
        gl_json_free(enc);
        return NULL;
    }
    uint32_t byte_to_cp[256];
    int cp_to_byte[324];
    gpt2_byte_table(byte_to_cp);
    for (int i = 0; i < 324; i++) cp_to_byte[i] = -1;
    for (int b = 0; b < 256; b++) cp_to_byte[byte_to_cp[b]] = b;

    int n = (int)enc->count;
    /* count merge lines */
    int lines = 0;
    for (size_t i = 0; i < mlen; i++) lines += mbuf[i] == '\n';
    gl_bpe *t = alloc_bpe(n, lines + 1);
    unsigned char **tb = calloc((size_t)n, sizeof *tb);
    size_t *tl = calloc((size_t)n, sizeof *tl), total = 0;
    bool ok = true;
    for (int i = 0; i < n && ok; i++) {
        const gl_json *v = &enc->items[i];
        double id = v->type == GL_JSON_NUMBER ? v->number : -1;
        if (id < 0 || id >= n || id != (double)(int)id || tb[(int)id]) {
            snprintf(err, err_len, "'%s': entry %d has a missing, repeated or out-of-range id", encoder_json, i);
            ok = false;
            break;
        }
        int k = (int)id;
        const char *key = enc->keys[i];
        size_t klen = strlen(key);
        tb[k] = malloc(klen + 1);
        if (!strcmp(key, "<|endoftext|>")) {
            memcpy(tb[k], key, klen);
            tl[k] = klen;
            t->special[k] = true;
            t->n_special++;
        } else if (!gpt2_unmap(key, klen, cp_to_byte, tb[k], &tl[k])) {
            snprintf(err, err_len, "'%s': token \"%s\" (id %d) uses a character outside GPT-2's byte map",
                     encoder_json, key, k);
            ok = false;
        }
        total += tl[k];
    }
    if (ok) {
        t->blob = malloc(total + 1);
        size_t o = 0;
        for (int i = 0; i < n; i++) {
            t->off[i] = o;
            memcpy(t->blob + o, tb[i], tl[i]);
            o += tl[i];
        }
        t->off[n] = o;
        build_index(t);
        for (int b = 0; b < 256 && ok; b++) {
            unsigned char byte = (unsigned char)b;
            t->byte_id[b] = lookup(t, &byte, 1);
            if (t->byte_id[b] < 0) {
                snprintf(err, err_len, "'%s' lacks the single-byte token for byte 0x%02x", encoder_json, b);
                ok = false;
            }
        }
    }
    /* merges: "#version" line, then "left right" per line in rank order */
    int rank = 0, line_no = 0;
    size_t pos = 0;
    while (ok && pos < mlen) {
        size_t end = pos;
        while (end < mlen && mbuf[end] != '\n') end++;
        line_no++;
        size_t l = end - pos;
        const char *line = (const char *)mbuf + pos;
        pos = end + 1;
        if (l && line[l - 1] == '\r') l--;
        if (l == 0 || (line_no == 1 && line[0] == '#')) continue;
        const char *sp = memchr(line, ' ', l);
        if (!sp || sp == line || sp == line + l - 1 || memchr(sp + 1, ' ', (size_t)(line + l - sp - 1))) {
            snprintf(err, err_len, "'%s' line %d: expected two tokens separated by one space", vocab_bpe, line_no);
            ok = false;
            break;
        }
        unsigned char a[256], b[256], ab[512];
        size_t al, bl;
        if ((size_t)(sp - line) > 255 || (size_t)(line + l - sp - 1) > 255 ||
            !gpt2_unmap(line, (size_t)(sp - line), cp_to_byte, a, &al) ||
            !gpt2_unmap(sp + 1, (size_t)(line + l - sp - 1), cp_to_byte, b, &bl)) {
            snprintf(err, err_len, "'%s' line %d: a token uses a character outside GPT-2's byte map", vocab_bpe, line_no);
            ok = false;
            break;
        }
        memcpy(ab, a, al);
        memcpy(ab + al, b, bl);
        int32_t ia = al == 1 ? t->byte_id[a[0]] : lookup(t, a, al), ib = bl == 1 ? t->byte_id[b[0]] : lookup(t, b, bl);
        int32_t iab = lookup(t, ab, al + bl);
        if (ia < 0 || ib < 0 || iab < 0) {
            snprintf(err, err_len, "'%s' line %d: merge \"%.*s\" names a token that '%s' does not have", vocab_bpe,
                     line_no, (int)l, line, encoder_json);
            ok = false;
            break;
        }
        t->merge_left[rank] = ia, t->merge_right[rank] = ib, t->merge_id[rank] = iab;
        rank++;
    }
    t->n_merges = rank;
    if (ok && rank + 256 + t->n_special != n) {
        snprintf(err, err_len, "'%s' has %d merges but '%s' has %d tokens (expected 256 + merges + specials)",
                 vocab_bpe, rank, encoder_json, n);
        ok = false;
    }
    for (int i = 0; i < n; i++) free(tb[i]);
    free(tb);
    free(tl);
    free(mbuf);
    gl_json_free(enc);
    if (!ok) {
        gl_bpe_free(t);
        return NULL;
    }
    return t;
}

/* ---------------------------------------------------------------- our format */

#define BPE_MAGIC "GLBPE\0\0\0"

unsigned char *gl_bpe_serialize(const gl_bpe *t, size_t *len) {
    size_t n = 8 + 16 + 256 * 4 + (size_t)t->n_tokens * 5 + t->off[t->n_tokens] + (size_t)t->n_merges * 12 + 8;
    unsigned char *buf = malloc(n), *w = buf;
#define W(p, k) (memcpy(w, p, k), w += (k))
    uint32_t hdr[4] = {1, (uint32_t)t->n_tokens, (uint32_t)t->n_merges, (uint32_t)t->n_special};
    W(BPE_MAGIC, 8);
    W(hdr, sizeof hdr);
    W(t->byte_id, sizeof t->byte_id);
    for (int32_t id = 0; id < t->n_tokens; id++) {
        size_t l;
        const unsigned char *b = tok(t, id, &l);
        uint32_t l32 = (uint32_t)l;
        unsigned char sp = t->special[id];
        W(&l32, 4);
        W(&sp, 1);
        W(b, l);
    }
    for (int r = 0; r < t->n_merges; r++) {
        W(&t->merge_left[r], 4);
        W(&t->merge_right[r], 4);
        W(&t->merge_id[r], 4);
    }
    uint64_t h = gl_fnv1a(GL_FNV_OFFSET, buf, (size_t)(w - buf));
    W(&h, 8);
#undef W
    *len = (size_t)(w - buf);
    return buf;
}

gl_bpe *gl_bpe_deserialize(const unsigned char *buf, size_t len, const char *what, char *err, size_t err_len) {
    if (len < 8 + 16 + 1024 + 8 || memcmp(buf, BPE_MAGIC, 8) != 0) {
        snprintf(err, err_len, "'%s' is not a gradlab BPE vocabulary (bad magic or too short)", what);
        return NULL;
    }
    uint64_t h = gl_fnv1a(GL_FNV_OFFSET, buf, len - 8), stored;
    memcpy(&stored, buf + len - 8, 8);
    if (h != stored) {
        snprintf(err, err_len, "'%s' is corrupt or truncated (checksum mismatch)", what);
        return NULL;
    }
    uint32_t hdr[4];
    memcpy(hdr, buf + 8, 16);
    if (hdr[0] != 1 || hdr[1] < 256 || hdr[1] > (1u << 24) || hdr[2] >= hdr[1] || hdr[3] > hdr[1]) {
        snprintf(err, err_len, "'%s': unsupported version %u or impossible sizes (%u tokens, %u merges)", what, hdr[0],
                 hdr[1], hdr[2]);
        return NULL;
    }
    gl_bpe *t = alloc_bpe((int)hdr[1], (int)hdr[2]);
    const unsigned char *r = buf + 24, *end = buf + len - 8;
    memcpy(t->byte_id, r, sizeof t->byte_id);
    r += sizeof t->byte_id;
    /* token bytes: first pass for sizes */
    size_t total = 0;
    const unsigned char *q = r;
    for (int i = 0; i < t->n_tokens; i++) {
        uint32_t l;
        if (end - q < 5) goto truncated;
        memcpy(&l, q, 4);
        if ((size_t)(end - q - 5) < l) goto truncated;
        q += 5 + l;
        total += l;
    }
    t->blob = malloc(total + 1);
    size_t o = 0;
    for (int i = 0; i < t->n_tokens; i++) {
        uint32_t l;
        memcpy(&l, r, 4);
        t->special[i] = r[4] != 0;
        t->n_special += t->special[i];
        t->off[i] = o;
        memcpy(t->blob + o, r + 5, l);
        o += l;
        r += 5 + l;
    }
    t->off[t->n_tokens] = o;
    if ((size_t)(end - r) != (size_t)t->n_merges * 12) goto truncated;
    for (int k = 0; k < t->n_merges; k++, r += 12) {
        memcpy(&t->merge_left[k], r, 4);
        memcpy(&t->merge_right[k], r + 4, 4);
        memcpy(&t->merge_id[k], r + 8, 4);
        int32_t a = t->merge_left[k], b = t->merge_right[k], c = t->merge_id[k];
        size_t la, lb, lc;
        if (a < 0 || b < 0 || c < 0 || a >= t->n_tokens || b >= t->n_tokens || c >= t->n_tokens) goto bad_merge;
        const unsigned char *pa = tok(t, a, &la), *pb = tok(t, b, &lb), *pc = tok(t, c, &lc);
        if (lc != la + lb || memcmp(pc, pa, la) != 0 || memcmp(pc + la, pb, lb) != 0) goto bad_merge;
    }
    for (int b = 0; b < 256; b++) {
        size_t l;
        if (t->byte_id[b] < 0 || t->byte_id[b] >= t->n_tokens || *tok(t, t->byte_id[b], &l) != b || l != 1) {
            snprintf(err, err_len, "'%s': the token for byte 0x%02x is wrong", what, b);
            gl_bpe_free(t);
            return NULL;
        }
    }
    build_index(t);
    return t;
truncated:
    snprintf(err, err_len, "'%s': token table or merges do not fit the header's sizes", what);
    gl_bpe_free(t);
    return NULL;
bad_merge:
    snprintf(err, err_len, "'%s': a merge refers to tokens whose bytes do not concatenate to its result", what);
    gl_bpe_free(t);
    return NULL;
}

gl_bpe *gl_bpe_load(const char *path, char *err, size_t err_len) {
    unsigned char *buf;
    size_t len;
    if (!gl_read_whole_file(path, &buf, &len, err, err_len)) return NULL;
    gl_bpe *t = gl_bpe_deserialize(buf, len, path, err, err_len);
    free(buf);
    return t;
}

bool gl_bpe_save(const gl_bpe *t, const char *path, char *err, size_t err_len) {
    size_t len;
    unsigned char *buf = gl_bpe_serialize(t, &len);
    bool ok = gl_write_file_atomic(path, buf, len, err, err_len);
    free(buf);
    return ok;
}

/* ---------------------------------------------------------------- from a list of merges (training) */

gl_bpe *gl_bpe_from_merges(const int32_t (*merges)[2], int n_merges, const char *const *specials, int n_specials) {
    int n = 256 + n_merges + n_specials;
    gl_bpe *t = alloc_bpe(n, n_merges);
    size_t total = 256;
    size_t *len = malloc((size_t)n * sizeof *len);
    for (int i = 0; i < 256; i++) len[i] = 1;
    for (int k = 0; k < n_merges; k++) total += len[256 + k] = len[merges[k][0]] + len[merges[k][1]];
    for (int s = 0; s < n_specials; s++) total += len[256 + n_merges + s] = strlen(specials[s]);
    t->blob = malloc(total + 1);
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        t->off[i] = o;
        if (i < 256) t->blob[o] = (unsigned char)i;
        else if (i < 256 + n_merges) {
            const int32_t *m = merges[i - 256];
            memcpy(t->blob + o, t->blob + t->off[m[0]], len[m[0]]);
            memcpy(t->blob + o + len[m[0]], t->blob + t->off[m[1]], len[m[1]]);
            t->merge_left[i - 256] = m[0], t->merge_right[i - 256] = m[1], t->merge_id[i - 256] = i;
        } else {
            memcpy(t->blob + o, specials[i - 256 - n_merges], len[i]);
            t->special[i] = true;
            t->n_special++;
        }
        o += len[i];
    }
    t->off[n] = o;
    for (int b = 0; b < 256; b++) t->byte_id[b] = b;
    free(len);
    build_index(t);
    return t;
}

/* ---------------------------------------------------------------- GGUF vocabularies */

gl_bpe *gl_bpe_load_gguf(const gl_gguf *g, char *err, size_t err_len) {
    gguf_str model, pre = {"gpt2", 4};
    if (!gl_gguf_get_str(g, "tokenizer.ggml.model", &model, err, err_len)) return NULL;
    if (!gl_gguf_str_eq(model, "gpt2"))
        return snprintf(err, err_len, "%s: tokenizer.ggml.model is '%.*s'; gradlab reads byte-level BPE ('gpt2') only",
                        g->path, (int)model.len, model.ptr), NULL;
    const gguf_kv *pre_kv = gl_gguf_find(g, "tokenizer.ggml.pre");
    if (pre_kv && pre_kv->type == GGUF_STRING) pre = pre_kv->v.s;
    bool digits;
    if (gl_gguf_str_eq(pre, "gpt2") || gl_gguf_str_eq(pre, "default")) digits = false;
    else if (gl_gguf_str_eq(pre, "smollm") || gl_gguf_str_eq(pre, "starcoder") || gl_gguf_str_eq(pre, "refact"))
        digits = true;
    else
        return snprintf(err, err_len, "%s: the pre-tokenizer '%.*s' is not implemented (gpt2, smollm and starcoder are)",
                        g->path, (int)pre.len, pre.ptr), NULL;
    const gguf_kv *tokens = gl_gguf_find(g, "tokenizer.ggml.tokens"), *types = gl_gguf_find(g, "tokenizer.ggml.token_type"),
                  *merges = gl_gguf_find(g, "tokenizer.ggml.merges");
    if (!tokens || tokens->type != GGUF_ARRAY || tokens->arr_type != GGUF_STRING || tokens->arr_count < 256 ||
        tokens->arr_count > (1u << 24))
        return snprintf(err, err_len, "%s: tokenizer.ggml.tokens must be an array of 256 to 2^24 strings", g->path), NULL;
    if (!merges || merges->type != GGUF_ARRAY || merges->arr_type != GGUF_STRING || merges->arr_count >= tokens->arr_count)
        return snprintf(err, err_len, "%s: tokenizer.ggml.merges must be an array of fewer strings than tokens", g->path),
               NULL;
    if (types && (types->type != GGUF_ARRAY || types->arr_count != tokens->arr_count || types->arr_type == GGUF_STRING ||
                  types->arr_type == GGUF_ARRAY))
        return snprintf(err, err_len, "%s: tokenizer.ggml.token_type must be numbers, one per token", g->path), NULL;
    int n = (int)tokens->arr_count;
    uint32_t byte_to_cp[256];
    int cp_to_byte[324];
    gpt2_byte_table(byte_to_cp);
    for (int i = 0; i < 324; i++) cp_to_byte[i] = -1;
    for (int b = 0; b < 256; b++) cp_to_byte[byte_to_cp[b]] = b;

    gl_bpe *t = alloc_bpe(n, (int)merges->arr_count);
    size_t total = 0;
    for (int i = 0; i < n; i++) total += tokens->strs[i].len;
    t->blob = malloc(total + 1);
    if (!t->blob) {
        gl_bpe_free(t);
        return snprintf(err, err_len, "%s: out of memory for the vocabulary", g->path), NULL;
    }
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        gguf_str s = tokens->strs[i];
        int type = types ? (int)gl_gguf_arr_number(types, (uint64_t)i) : 1;
        t->off[i] = o;
        if (type == 3 || type == 4) { /* control and user-defined tokens: their text as is */
            memcpy(t->blob + o, s.ptr, s.len);
            o += s.len;
            t->special[i] = true;
            t->n_special++;
            continue;
        }
        size_t len;
        if (!gpt2_unmap(s.ptr, s.len, cp_to_byte, t->blob + o, &len)) {
            snprintf(err, err_len, "%s: token %d \"%.*s\" uses a character outside GPT-2's byte map", g->path, i,
                     (int)(s.len > 40 ? 40 : s.len), s.ptr);
            gl_bpe_free(t);
            return NULL;
        }
        o += len;
    }
    t->off[n] = o;
    build_index(t);
    for (int b = 0; b < 256; b++) { /* some vocabularies lack rare bytes (SmolLM2 has no 0x04): -1, dropped */
        unsigned char byte = (unsigned char)b;
        t->byte_id[b] = lookup(t, &byte, 1);
    }
    size_t cap = 1;
    while (cap < merges->arr_count * 2 + 2) cap <<= 1;
    t->pair_key = malloc(cap * sizeof *t->pair_key);
    t->pair_rank = malloc(cap * sizeof *t->pair_rank);
    t->pair_mask = cap - 1;
    memset(t->pair_rank, 0xff, cap * sizeof *t->pair_rank);
    t->pair_ranks = true;
    t->pretok_digits = digits;
    for (uint64_t k = 0; k < merges->arr_count; k++) {
        gguf_str m = merges->strs[k];
        const char *sp = memchr(m.ptr, ' ', m.len);
        unsigned char a[256], b[256], ab[512];
        size_t al = 0, bl = 0;
        int32_t ia = -1, ib = -1, iab = -1;
        if (sp && sp > m.ptr && (size_t)(sp - m.ptr) < 256 && m.len - (size_t)(sp - m.ptr) - 1 < 256 &&
            gpt2_unmap(m.ptr, (size_t)(sp - m.ptr), cp_to_byte, a, &al) &&
            gpt2_unmap(sp + 1, m.len - (size_t)(sp - m.ptr) - 1, cp_to_byte, b, &bl) && al && bl) {
            memcpy(ab, a, al);
            memcpy(ab + al, b, bl);
            ia = lookup(t, a, al), ib = lookup(t, b, bl), iab = lookup(t, ab, al + bl);
        }
        if (ia < 0 || ib < 0 || iab < 0) {
            snprintf(err, err_len, "%s: merge %llu \"%.*s\" is not two tokens of the vocabulary whose join is one too",
                     g->path, (unsigned long long)k, (int)(m.len > 40 ? 40 : m.len), m.ptr);
            gl_bpe_free(t);
            return NULL;
        }
        t->merge_left[k] = ia, t->merge_right[k] = ib, t->merge_id[k] = iab;
        uint64_t key = (uint64_t)(uint32_t)ia << 32 | (uint32_t)ib;
        size_t i = pair_hash(key) & t->pair_mask;
        while (t->pair_rank[i] >= 0 && t->pair_key[i] != key) i = (i + 1) & t->pair_mask;
        if (t->pair_rank[i] < 0) t->pair_key[i] = key, t->pair_rank[i] = (int32_t)k; /* the first merge wins */
    }
    return t;
}
