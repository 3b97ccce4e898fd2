#include "chunk.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"
#include "tensor.h"

static const char *const strategy_names[] = {"heading", "window", "sentence"};

bool chunk_strategy_parse(const char *name, chunk_strategy *s) {
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, strategy_names[i])) return *s = (chunk_strategy)i, true;
    return false;
}

const char *chunk_strategy_name(chunk_strategy s) { return (unsigned)s < 3 ? strategy_names[s] : "?"; }

static void *grow(void *p, int *cap, int need, size_t item) {
    if (need <= *cap) return p;
    int c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    p = realloc(p, (size_t)c * item);
    if (!p) gl_fatal("chunk", "out of memory");
    *cap = c;
    return p;
}

static char *dup_n(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (!d) gl_fatal("chunk", "out of memory");
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

/* ---- cleaning: one source line into text (appended to buf), or nothing ---- */


/* s[0..n) without HTML tags and include markers, into b */
static void put_clean(gl_strbuf *b, const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        if (s[i] == '{' && i + 1 < n && s[i + 1] == '!') { /* {!../../../docs_src/x.py!} */
            const char *close = NULL;
            for (size_t j = i + 2; j + 1 < n; j++)
                if (s[j] == '!' && s[j + 1] == '}') {
                    close = s + j;
                    break;
                }
            if (close) {
                i = (size_t)(close - s) + 2;
                continue;
            }
        }
        if (s[i] == '<' && i + 1 < n && (isalpha((unsigned char)s[i + 1]) || s[i + 1] == '/' || s[i + 1] == '!')) {
            size_t j = i + 1;
            while (j < n && s[j] != '>') j++;
            if (j < n) { /* a tag: its text stays, the tag goes */
                i = j + 1;
                continue;
            }
        }
        gl_sb_put(b, s + i, 1);
        i++;
    }
}

static size_t trim(const char **s, size_t n) {
    while (n && isspace((unsigned char)**s)) (*s)++, n--;
    while (n && isspace((unsigned char)(*s)[n - 1])) n--;
    return n;
}

/* ---- the page as words, each knowing its section and source line ---- */

typedef struct {
    size_t at, len;          /* in the cleaned text */
    size_t src_start, src_end; /* its source line */
    int section;
    bool para_start; /* first word after a blank line or a heading */
} word;

typedef struct {
    char *heading;
    size_t start, end; /* source bytes of the section, heading line included */
} section;

typedef struct {
    gl_strbuf text;
    word *w;
    int n, cap;
    section *s;
    int ns, scap;
} page;

static void add_words(page *pg, size_t from, size_t src_start, size_t src_end, bool *para) {
    const char *t = pg->text.p;
    for (size_t i = from; i < pg->text.len;) {
        while (i < pg->text.len && isspace((unsigned char)t[i])) i++;
        if (i >= pg->text.len) break;
        size_t j = i;
        while (j < pg->text.len && !isspace((unsigned char)t[j])) j++;
        pg->w = grow(pg->w, &pg->cap, pg->n + 1, sizeof *pg->w);
        pg->w[pg->n++] = (word){i, j - i, src_start, src_end, pg->ns - 1, *para};
        *para = false;
        i = j;
    }
}

static void open_section(page *pg, const char *heading, size_t start) {
    if (pg->ns) pg->s[pg->ns - 1].end = start;
    pg->s = grow(pg->s, &pg->scap, pg->ns + 1, sizeof *pg->s);
    pg->s[pg->ns++] = (section){dup_n(heading, strlen(heading)), start, start};
}

static void parse(const char *path, const char *md, size_t len, page *pg) {
    enum { MAX_LEVEL = 6 };
    char *stack[MAX_LEVEL] = {0};
    bool fence = false, para = true;
    open_section(pg, path, 0);
    for (size_t at = 0; at < len;) {
        size_t eol = at;
        while (eol < len && md[eol] != '\n') eol++;
        const char *line = md + at;
        size_t n = eol - at, next = eol < len ? eol + 1 : eol;
        const char *s = line;
        size_t m = trim(&s, n);
        if (m >= 3 && (!strncmp(s, "```", 3) || !strncmp(s, "~~~", 3))) {
            fence = !fence;
            at = next;
            continue;
        }
        if (!fence && m == 0) {
            para = true;
            at = next;
            continue;
        }
        int level = 0;
        while (!fence && (size_t)level < m && level < 7 && s[level] == '#') level++;
        if (!fence && level >= 1 && level <= MAX_LEVEL && level < (int)m && s[level] == ' ') {
            const char *h = s + level;
            size_t hn = m - (size_t)level;
            hn = trim(&h, hn);
            const char *brace = memchr(h, '{', hn); /* an attribute list: "Title { #anchor }" */
            if (brace && hn && h[hn - 1] == '}') hn = (size_t)(brace - h), hn = trim(&h, hn);
            gl_strbuf title = {0};
            put_clean(&title, h, hn);
            free(stack[level - 1]);
            stack[level - 1] = title.p ? title.p : dup_n("", 0);
            for (int k = level; k < MAX_LEVEL; k++) free(stack[k]), stack[k] = NULL;
            gl_strbuf hp = {0};
            for (int k = 0; k < MAX_LEVEL; k++)
                if (stack[k] && *stack[k]) {
                    if (hp.len) gl_sb_put(&hp, " > ", 3);
                    gl_sb_put(&hp, stack[k], strlen(stack[k]));
                }
            open_section(pg, hp.p ? hp.p : path, at);
            free(hp.p);
            para = true;
            at = next;
            continue;
        }
        if (!fence && m >= 3 && !strncmp(s, "///", 3)) { /* admonitions and tabs */
            const char *r = s;
            size_t rn = m;
            while (rn && *r == '/') r++, rn--;
            rn = trim(&r, rn);
            if (rn && strncmp(r, "tab", 3) != 0) {
                const char *bar = memchr(r, '|', rn);
                if (bar) rn -= (size_t)(bar + 1 - r), r = bar + 1, rn = trim(&r, rn);
                size_t from = pg->text.len;
                gl_sb_put(&pg->text, " ", 1);
                put_clean(&pg->text, r, rn);
                if (!bar && pg->text.len > from + 1) pg->text.p[from + 1] = (char)toupper((unsigned char)pg->text.p[from + 1]);
                gl_sb_put(&pg->text, ":", 1);
                para = true;
                add_words(pg, from, at, eol, &para);
                para = true;
            }
            at = next;
            continue;
        }
        size_t from = pg->text.len;
        gl_sb_put(&pg->text, " ", 1);
        put_clean(&pg->text, line, n);
        add_words(pg, from, at, eol, &para);
        at = next;
    }
    pg->s[pg->ns - 1].end = len;
    for (int k = 0; k < MAX_LEVEL; k++) free(stack[k]);
}

/* ---- chunks ---- */

static void emit(chunk_list *out, const page *pg, int w0, int w1, size_t start, size_t end) {
    if (w1 <= w0) return;
    const section *sec = &pg->s[pg->w[w0].section];
    gl_strbuf t = {0};
    gl_sb_put(&t, sec->heading, strlen(sec->heading));
    gl_sb_put(&t, "\n", 1);
    for (int i = w0; i < w1; i++) {
        if (i > w0) gl_sb_put(&t, " ", 1);
        gl_sb_put(&t, pg->text.p + pg->w[i].at, pg->w[i].len);
    }
    out->items = grow(out->items, &out->cap, out->n + 1, sizeof *out->items);
    out->items[out->n++] = (chunk){dup_n(sec->heading, strlen(sec->heading)), t.p, start, end, w1 - w0};
}

/* words [a, b) in windows of cap overlapping by overlap; byte ranges from the words' lines, or the section's */
static void windows(chunk_list *out, const page *pg, int a, int b, chunk_config c, const section *whole) {
    int step = c.words - c.overlap;
    for (int w0 = a; w0 < b; w0 += step) {
        int w1 = w0 + c.words < b ? w0 + c.words : b;
        size_t start = whole && w0 == a && w1 == b ? whole->start : pg->w[w0].src_start;
        size_t end = whole && w0 == a && w1 == b ? whole->end : pg->w[w1 - 1].src_end;
        emit(out, pg, w0, w1, start, end);
        if (w1 == b) break;
    }
}

static bool ends_sentence(const page *pg, int i) {
    const word *w = &pg->w[i];
    char last = pg->text.p[w->at + w->len - 1];
    if (last == '"' || last == ')' || last == '\'' || last == '*' || last == '`')
        last = w->len > 1 ? pg->text.p[w->at + w->len - 2] : last;
    return last == '.' || last == '!' || last == '?' ||
           (i + 1 < pg->n && (pg->w[i + 1].para_start || pg->w[i + 1].section != w->section));
}

int chunk_page(const char *path, const char *md, size_t len, chunk_config c, chunk_list *out) {
    if (c.words < 1 || c.overlap < 0 || c.overlap >= c.words) gl_fatal("chunk", "overlap %d must be below the cap of %d words", c.overlap, c.words);
    page pg = {0};
    parse(path, md, len, &pg);
    int before = out->n;
    if (c.strategy == CHUNK_WINDOW) {
        windows(out, &pg, 0, pg.n, c, NULL);
    } else {
        for (int i = 0; i < pg.n;) { /* section by section */
            int sec = pg.w[i].section, j = i;
            while (j < pg.n && pg.w[j].section == sec) j++;
            if (c.strategy == CHUNK_HEADING) {
                windows(out, &pg, i, j, c, &pg.s[sec]);
            } else { /* sentences packed whole: [cs, ce) is the chunk being filled */
                int cs = i, ce = i;
                for (int k = i; k < j;) {
                    int e = k; /* the sentence [k, e], cut at the cap */
                    while (e + 1 < j && e + 1 - k < c.words && !ends_sentence(&pg, e)) e++;
                    if (ce > cs && e + 1 - cs > c.words) { /* it does not fit: the chunk so far goes out */
                        emit(out, &pg, cs, ce, pg.w[cs].src_start, pg.w[ce - 1].src_end);
                        cs = k;
                    }
                    ce = e + 1, k = e + 1;
                }
                if (ce > cs) emit(out, &pg, cs, ce, pg.w[cs].src_start, pg.w[ce - 1].src_end);
            }
            i = j;
        }
    }
    for (int s = 0; s < pg.ns; s++) free(pg.s[s].heading);
    free(pg.s), free(pg.w), free(pg.text.p);
    return out->n - before;
}

void chunk_list_free(chunk_list *l) {
    for (int i = 0; i < l->n; i++) free(l->items[i].heading), free(l->items[i].text);
    free(l->items);
    memset(l, 0, sizeof *l);
}
