#include "hnsw.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h" /* the vector dot product at the machine's SIMD level, as word2vec's search (docs/architecture.md) */
#include "rng.h"
#include "tensor.h" /* gl_fatal on out of memory */

struct hnsw {
    const float *v;
    int n, dims, M, max_level, entry;
    int *level;      /* per node */
    int **links;     /* per node: for each layer l <= level, a block of (cap_l + 1) ints: count, then ids */
    uint32_t *seen;  /* visit marks for one search at a time */
    uint32_t epoch;
    int ef_construction;
    float (*dot)(size_t n, const float *a, const float *b);
};

static int cap_of(const hnsw *h, int layer) { return layer == 0 ? 2 * h->M : h->M; }

static int *layer_links(const hnsw *h, int node, int layer) {
    int *p = h->links[node];
    for (int l = 0; l < layer; l++) p += cap_of(h, l) + 1;
    return p; /* p[0] = count, p[1..] = neighbours */
}

static float sim(const hnsw *h, const float *q, int node) { return h->dot((size_t)h->dims, q, h->v + (size_t)node * h->dims); }

/* ---- heaps of (similarity, node): max-heap by similarity (candidates) or min-heap (results) ---- */
typedef struct {
    float s;
    int id;
} item;
typedef struct {
    item *a;
    int n, cap;
    bool max;
} heap;

static bool above(const heap *h, item x, item y) { return h->max ? x.s > y.s : x.s < y.s; }

static void heap_push(heap *h, item x) {
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 64;
        if (!(h->a = realloc(h->a, (size_t)h->cap * sizeof *h->a))) gl_fatal("hnsw", "out of memory");
    }
    int i = h->n++;
    while (i > 0 && above(h, x, h->a[(i - 1) / 2])) h->a[i] = h->a[(i - 1) / 2], i = (i - 1) / 2;
    h->a[i] = x;
}

static item heap_pop(heap *h) {
    item top = h->a[0], last = h->a[--h->n];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && above(h, h->a[c + 1], h->a[c])) c++;
        if (!above(h, h->a[c], last)) break;
        h->a[i] = h->a[c], i = c;
    }
    if (h->n) h->a[i] = last;
    return top;
}

/* beam search on one layer from the entries: the ef most similar found, as a min-heap (worst on top) */
static void search_layer(hnsw *h, const float *q, const int *entries, int n_entries, int ef, int layer, heap *found) {
    heap cand = {NULL, 0, 0, true};
    found->n = 0, found->max = false;
    if (++h->epoch == 0) memset(h->seen, 0, (size_t)h->n * sizeof *h->seen), h->epoch = 1;
    for (int i = 0; i < n_entries; i++) {
        item e = {sim(h, q, entries[i]), entries[i]};
        h->seen[e.id] = h->epoch;
        heap_push(&cand, e), heap_push(found, e);
    }
    while (cand.n) {
        item c = heap_pop(&cand);
        if (found->n >= ef && c.s < found->a[0].s) break;
        const int *nb = layer_links(h, c.id, layer);
        for (int k = 1; k <= nb[0]; k++) {
            int e = nb[k];
            if (h->seen[e] == h->epoch) continue;
            h->seen[e] = h->epoch;
            float s = sim(h, q, e);
            if (found->n < ef || s > found->a[0].s) {
                heap_push(&cand, (item){s, e}), heap_push(found, (item){s, e});
                if (found->n > ef) heap_pop(found);
            }
        }
    }
    free(cand.a);
}

/* the paper's heuristic: from candidates (any order), keep up to m, each closer to the base than to any kept */
static int select_neighbors(const hnsw *h, item *c, int nc, int m, int *out) {
    for (int i = 1; i < nc; i++) /* most similar first */
        for (int j = i; j > 0 && (c[j].s > c[j - 1].s || (c[j].s == c[j - 1].s && c[j].id < c[j - 1].id)); j--) {
            item t = c[j];
            c[j] = c[j - 1], c[j - 1] = t;
        }
    int n = 0;
    for (int i = 0; i < nc && n < m; i++) {
        bool keep = true;
        for (int j = 0; j < n && keep; j++)
            keep = sim(h, h->v + (size_t)c[i].id * h->dims, out[j]) < c[i].s;
        if (keep) out[n++] = c[i].id;
    }
    return n;
}

static void link(hnsw *h, int from, int to, int layer) {
    int *nb = layer_links(h, from, layer), cap = cap_of(h, layer);
    if (nb[0] < cap) {
        nb[++nb[0]] = to;
        return;
    }
    /* full: choose again among the old neighbours and the new one */
    item c[2 * 64 + 1];
    int nc = 0;
    const float *base = h->v + (size_t)from * h->dims;
    for (int k = 1; k <= nb[0]; k++) c[nc++] = (item){sim(h, base, nb[k]), nb[k]};
    c[nc++] = (item){sim(h, base, to), to};
    nb[0] = select_neighbors(h, c, nc, cap, nb + 1);
}

/* from the entry point down to layer `down` + 1, always to the most similar neighbour: where layer `down` starts */
static int descend(const hnsw *h, const float *q, int down) {
    int ep = h->entry;
    for (int l = h->max_level; l > down; l--) {
        bool moved = true;
        float best = sim(h, q, ep);
        while (moved) {
            moved = false;
            const int *nb = layer_links(h, ep, l);
            for (int k = 1; k <= nb[0]; k++) {
                float s = sim(h, q, nb[k]);
                if (s > best) best = s, ep = nb[k], moved = true;
            }
        }
    }
    return ep;
}

hnsw *hnsw_build(const float *vectors, int n, int dims, hnsw_params p) {
    if (p.M < 2 || p.M > 64 || p.ef_construction < 1) gl_fatal("hnsw", "M %d (2 to 64), efConstruction %d (>= 1)", p.M, p.ef_construction);
    hnsw *h = calloc(1, sizeof *h);
    h->v = vectors, h->n = n, h->dims = dims, h->M = p.M, h->ef_construction = p.ef_construction, h->dot = gl_kern()->dot;
    h->level = calloc((size_t)(n ? n : 1), sizeof *h->level);
    h->links = calloc((size_t)(n ? n : 1), sizeof *h->links);
    h->seen = calloc((size_t)(n ? n : 1), sizeof *h->seen);
    h->entry = -1, h->max_level = -1;
    gl_rng rng;
    gl_rng_seed(&rng, p.seed);
    double ml = 1.0 / log((double)p.M);
    heap found = {0};
    int *entries = malloc(sizeof *entries), n_entries;
    int *chosen = malloc((size_t)(2 * p.M + 1) * sizeof *chosen);
    for (int i = 0; i < n; i++) {
        double u = 1.0 - gl_rng_uniform(&rng); /* (0, 1] */
        int lv = (int)floor(-log(u) * ml);
        if (lv > 16) lv = 16;
        h->level[i] = lv;
        size_t ints = 0;
        for (int l = 0; l <= lv; l++) ints += (size_t)cap_of(h, l) + 1;
        if (!(h->links[i] = calloc(ints, sizeof(int)))) gl_fatal("hnsw", "out of memory");
        if (h->entry < 0) {
            h->entry = i, h->max_level = lv;
            continue;
        }
        const float *q = vectors + (size_t)i * dims;
        entries[0] = descend(h, q, lv), n_entries = 1;
        for (int l = (lv < h->max_level ? lv : h->max_level); l >= 0; l--) {
            search_layer(h, q, entries, n_entries, p.ef_construction, l, &found);
            int nc = select_neighbors(h, found.a, found.n, h->M, chosen);
            int *nb = layer_links(h, i, l);
            nb[0] = nc;
            memcpy(nb + 1, chosen, (size_t)nc * sizeof *chosen);
            for (int k = 0; k < nc; k++) link(h, chosen[k], i, l);
            /* the next layer starts from everything found here */
            entries = realloc(entries, (size_t)found.n * sizeof *entries);
            for (int k = 0; k < found.n; k++) entries[k] = found.a[k].id;
            n_entries = found.n;
        }
        if (lv > h->max_level) h->max_level = lv, h->entry = i;
    }
    free(found.a), free(entries), free(chosen);
    return h;
}

void hnsw_free(hnsw *h) {
    if (!h) return;
    for (int i = 0; i < h->n; i++) free(h->links[i]);
    free(h->links), free(h->level), free(h->seen), free(h);
}

int hnsw_search(const hnsw *hc, const float *q, int k, int ef_search, int *ids, float *scores) {
    hnsw *h = (hnsw *)hc; /* the visit marks change; the graph does not */
    if (h->n == 0 || k < 1) return 0;
    int ep = descend(h, q, 0);
    heap found = {0};
    search_layer(h, q, &ep, 1, ef_search > k ? ef_search : k, 0, &found);
    while (found.n > k) heap_pop(&found);
    int n = found.n;
    for (int i = n - 1; i >= 0; i--) { /* the min-heap pops worst first */
        item it = heap_pop(&found);
        ids[i] = it.id;
        if (scores) scores[i] = it.s;
    }
    free(found.a);
    return n;
}

/* ---- bytes: "GLHNSW1\0", n, dims, M, ef_construction, entry, max_level, then per node its level and links ---- */

unsigned char *hnsw_serialize(const hnsw *h, size_t *len) {
    size_t ints = 7;
    for (int i = 0; i < h->n; i++) {
        ints += 1;
        for (int l = 0; l <= h->level[i]; l++) ints += (size_t)cap_of(h, l) + 1;
    }
    unsigned char *b = malloc(8 + ints * sizeof(int32_t));
    if (!b) gl_fatal("hnsw", "out of memory");
    memcpy(b, "GLHNSW1", 8);
    int32_t *w = (int32_t *)(b + 8);
    *w++ = h->n, *w++ = h->dims, *w++ = h->M, *w++ = h->ef_construction, *w++ = h->entry, *w++ = h->max_level, *w++ = 0;
    for (int i = 0; i < h->n; i++) {
        *w++ = h->level[i];
        size_t block = 0;
        for (int l = 0; l <= h->level[i]; l++) block += (size_t)cap_of(h, l) + 1;
        memcpy(w, h->links[i], block * sizeof(int32_t));
        w += block;
    }
    *len = 8 + ints * sizeof(int32_t);
    return b;
}

hnsw *hnsw_deserialize(const unsigned char *b, size_t len, const float *vectors, int n, int dims, char *err, size_t en) {
    const int32_t *r = (const int32_t *)(b + 8), *end = (const int32_t *)(b + len);
    if (len < 8 + 7 * sizeof(int32_t) || memcmp(b, "GLHNSW1", 8) || (len - 8) % sizeof(int32_t))
        return snprintf(err, en, "not an HNSW graph"), NULL;
    if (r[0] != n || r[1] != dims || r[2] < 2 || r[2] > 64 || (n && (r[4] < 0 || r[4] >= n)) || r[5] < -1 || r[5] > 16)
        return snprintf(err, en, "the HNSW graph is over %d vectors of %d floats, the index has %d of %d", r[0], r[1], n,
                        dims), NULL;
    hnsw *h = calloc(1, sizeof *h);
    h->v = vectors, h->n = n, h->dims = dims, h->M = r[2], h->ef_construction = r[3], h->entry = r[4], h->max_level = r[5];
    h->dot = gl_kern()->dot;
    h->level = calloc((size_t)(n ? n : 1), sizeof *h->level);
    h->links = calloc((size_t)(n ? n : 1), sizeof *h->links);
    h->seen = calloc((size_t)(n ? n : 1), sizeof *h->seen);
    r += 7;
    bool ok = true;
    for (int i = 0; ok && i < n; i++) {
        ok = r < end && *r >= 0 && *r <= 16;
        if (!ok) break;
        h->level[i] = *r++;
        size_t block = 0;
        for (int l = 0; l <= h->level[i]; l++) block += (size_t)cap_of(h, l) + 1;
        ok = (size_t)(end - r) >= block && (h->links[i] = malloc(block * sizeof(int32_t)));
        if (!ok) break;
        memcpy(h->links[i], r, block * sizeof(int32_t));
        r += block;
        for (int l = 0; ok && l <= h->level[i]; l++) { /* counts and ids in range */
            const int *nb = layer_links(h, i, l);
            ok = nb[0] >= 0 && nb[0] <= cap_of(h, l);
            for (int k = 1; ok && k <= nb[0]; k++) ok = nb[k] >= 0 && nb[k] < n && h->level[nb[k]] >= 0;
        }
    }
    for (int i = 0; ok && i < n; i++) /* a link to layer l needs a node that lives on it */
        for (int l = 0; ok && l <= h->level[i]; l++) {
            const int *nb = layer_links(h, i, l);
            for (int k = 1; ok && k <= nb[0]; k++) ok = h->level[nb[k]] >= l;
        }
    if (!ok || r != end || (n && h->level[h->entry] != h->max_level)) {
        hnsw_free(h);
        return snprintf(err, en, "the HNSW graph is damaged"), NULL;
    }
    return h;
}
