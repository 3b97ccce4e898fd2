#include "wordpiece.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "io.h"

struct gl_wordpiece {
    char **pieces;
    int n;
    int32_t *slots; /* open addressing over piece ids, -1 empty */
    size_t n_slots;
    int32_t cls, sep, unk;
};

static size_t slot_of(const gl_wordpiece *w, const char *s, size_t len) {
    size_t mask = w->n_slots - 1, i = (size_t)gl_fnv1a(1469598103934665603ULL, s, len) & mask;
    while (w->slots[i] >= 0 && (strlen(w->pieces[w->slots[i]]) != len || memcmp(w->pieces[w->slots[i]], s, len)))
        i = (i + 1) & mask;
    return i;
}

static int32_t lookup(const gl_wordpiece *w, const char *s, size_t len) { return w->slots[slot_of(w, s, len)]; }

gl_wordpiece *gl_wordpiece_load(const char *path, char *err, size_t n) {
    unsigned char *text;
    size_t len;
    if (!gl_read_whole_file(path, &text, &len, err, n)) return NULL;
    gl_wordpiece *w = calloc(1, sizeof *w);
    int lines = 0;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    w->pieces = calloc((size_t)lines + 1, sizeof *w->pieces);
    for (w->n_slots = 1024; w->n_slots < (size_t)lines * 2 + 2;) w->n_slots *= 2;
    w->slots = malloc(w->n_slots * sizeof *w->slots);
    memset(w->slots, -1, w->n_slots * sizeof *w->slots);
    for (size_t at = 0; at < len;) {
        size_t e = at;
        while (e < len && text[e] != '\n') e++;
        size_t l = e - at;
        while (l && (text[at + l - 1] == '\r')) l--;
        char *p = malloc(l + 1);
        memcpy(p, text + at, l), p[l] = 0;
        size_t s = slot_of(w, p, l);
        if (w->slots[s] < 0) w->slots[s] = w->n; /* a repeated piece keeps its first id */
        w->pieces[w->n++] = p;
        at = e + 1;
    }
    free(text);
    w->cls = lookup(w, "[CLS]", 5), w->sep = lookup(w, "[SEP]", 5), w->unk = lookup(w, "[UNK]", 5);
    if (w->n < 5 || w->cls < 0 || w->sep < 0 || w->unk < 0 || lookup(w, "[PAD]", 5) < 0) {
        snprintf(err, n, "%s: not a WordPiece vocabulary (one piece per line, with [PAD] [UNK] [CLS] [SEP])", path);
        gl_wordpiece_free(w);
        return NULL;
    }
    return w;
}

void gl_wordpiece_free(gl_wordpiece *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) free(w->pieces[i]);
    free(w->pieces), free(w->slots), free(w);
}

int gl_wordpiece_vocab_size(const gl_wordpiece *w) { return w->n; }
const char *gl_wordpiece_piece(const gl_wordpiece *w, int32_t id) { return id >= 0 && id < w->n ? w->pieces[id] : NULL; }

/* Rust's char::is_whitespace (the White_Space property) */
static bool is_space(int32_t c) {
    return c == ' ' || (c >= 9 && c <= 13) || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

static bool is_control(int32_t c) {
    if (c == '\t' || c == '\n' || c == '\r') return false;
    utf8proc_category_t k = utf8proc_category(c);
    return k == UTF8PROC_CATEGORY_CC || k == UTF8PROC_CATEGORY_CF || k == UTF8PROC_CATEGORY_CS ||
           k == UTF8PROC_CATEGORY_CO || k == UTF8PROC_CATEGORY_CN;
}

static bool is_cjk(int32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static bool is_punct(int32_t c) {
    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126)) return true;
    utf8proc_category_t k = utf8proc_category(c);
    return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}

typedef struct {
    int32_t *c;
    size_t n, cap;
} cps;

static void push(cps *v, int32_t c) {
    if (v->n == v->cap) {
        v->cap = v->cap ? 2 * v->cap : 256;
        if (!(v->c = realloc(v->c, v->cap * sizeof *v->c))) abort();
    }
    v->c[v->n++] = c;
}

/* the normalized text as code points, words separated by one space and punctuation isolated */
static void normalize(const char *text, size_t text_len, cps *out) {
    const utf8proc_uint8_t *s = (const utf8proc_uint8_t *)text;
    utf8proc_ssize_t len = (utf8proc_ssize_t)text_len;
    for (utf8proc_ssize_t at = 0; at < len;) {
        utf8proc_int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate(s + at, len - at, &c);
        if (k < 0) { /* not UTF-8: the byte is dropped */
            at++;
            continue;
        }
        at += k;
        if (c == 0 || c == 0xFFFD || is_control(c)) continue;
        if (is_space(c)) {
            push(out, ' ');
            continue;
        }
        if (is_cjk(c)) {
            push(out, ' '), push(out, c), push(out, ' ');
            continue;
        }
        utf8proc_int32_t d[8];
        int last_boundclass = 0;
        utf8proc_ssize_t nd = utf8proc_decompose_char(c, d, 8, UTF8PROC_DECOMPOSE, &last_boundclass);
        if (nd < 0 || nd > 8) d[0] = c, nd = 1;
        for (utf8proc_ssize_t i = 0; i < nd; i++) {
            if (utf8proc_category(d[i]) == UTF8PROC_CATEGORY_MN) continue; /* accents */
            int32_t lc = utf8proc_tolower(d[i]);
            if (is_punct(lc)) push(out, ' '), push(out, lc), push(out, ' ');
            else push(out, lc);
        }
    }
}

/* the pieces of text[0..len) (no special tokens in it) appended to ids; false once max_len - 1 is reached */
static bool encode_segment(const gl_wordpiece *w, const char *text, size_t len, int32_t *ids, int *n, int max_len) {
    cps v = {0};
    normalize(text, len, &v);
    char word[512], piece[520];
    bool room = true;
    for (size_t i = 0; i < v.n && room;) {
        while (i < v.n && v.c[i] == ' ') i++;
        size_t j = i;
        while (j < v.n && v.c[j] != ' ') j++;
        if (j == i) break;
        /* the word as UTF-8, with each character's byte offset */
        size_t wl = 0, offs[101];
        bool too_long = j - i > 100;
        for (size_t k = i; k < j && !too_long; k++) {
            offs[k - i] = wl;
            wl += (size_t)utf8proc_encode_char(v.c[k], (utf8proc_uint8_t *)word + wl);
        }
        size_t nch = j - i;
        if (!too_long) offs[nch] = wl;
        int32_t found[100];
        int nf = 0;
        bool unk = too_long;
        for (size_t start = 0; !unk && start < nch;) { /* greedy longest match */
            size_t end = nch;
            int32_t id = -1;
            for (; end > start; end--) {
                size_t pl = 0;
                if (start > 0) memcpy(piece, "##", 2), pl = 2;
                memcpy(piece + pl, word + offs[start], offs[end] - offs[start]);
                pl += offs[end] - offs[start];
                if ((id = lookup(w, piece, pl)) >= 0) break;
            }
            if (id < 0) unk = true;
            else found[nf++] = id, start = end;
        }
        if (unk) found[0] = w->unk, nf = 1;
        for (int k = 0; k < nf && room; k++) {
            if (*n >= max_len - 1) room = false;
            else ids[(*n)++] = found[k];
        }
        i = j;
    }
    free(v.c);
    return room;
}

/* the special tokens Hugging Face matches in the raw text before normalizing (its added tokens) */
static const char *const specials[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};

int gl_wordpiece_encode(const gl_wordpiece *w, const char *text, int32_t *ids, int max_len, bool *truncated) {
    int n = 0;
    bool room = true;
    ids[n++] = w->cls;
    for (const char *at = text; room && *at;) {
        const char *best = NULL;
        int which = -1;
        for (int k = 0; k < 5; k++) {
            const char *hit = strstr(at, specials[k]);
            if (hit && (!best || hit < best) && lookup(w, specials[k], strlen(specials[k])) >= 0) best = hit, which = k;
        }
        size_t seg = best ? (size_t)(best - at) : strlen(at);
        room = encode_segment(w, at, seg, ids, &n, max_len);
        if (!best) break;
        if (room && n >= max_len - 1) room = false;
        if (room) ids[n++] = lookup(w, specials[which], strlen(specials[which]));
        at = best + strlen(specials[which]);
    }
    ids[n++] = w->sep;
    if (truncated) *truncated = !room;
    return n;
}
