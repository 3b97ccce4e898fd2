/* Grammar-constrained decoding: the EBNF parser, the compiled rules, the hash-consed parse states and the vocabulary
 * trie walk (grammar.h says how they fit together; docs/grammar.md is the language). */
#include "grammar.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "bpe.h"
#include "codec.h"
#include "io.h"

enum { INF = INT_MAX / 4, MAX_REPEAT = 1000 };
/* A grammar whose parse needs more stacks than this (nested repetitions of repetitions, such as ((x+)+)+, make the
 * number of ways to be in the middle of them grow exponentially) stops instead of running on: every later step
 * refuses, and gl_grammar_error says why. */
enum { MAX_STACK_NODES = 1 << 19, MAX_STATE_STACKS = 1 << 13 };

/* An element is coded in one int32: 0 ends an alternative, (k << 2) | 1 is byte set k, (r << 2) | 2 is rule r. */
#define END 0
#define IS_SET(e) (((e)&3) == 1)
#define IS_RULE(e) (((e)&3) == 2)
#define ARG(e) ((e) >> 2)
#define MK_SET(k) (((k) << 2) | 1)
#define MK_RULE(r) (((r) << 2) | 2)

typedef struct {
    int32_t *v;
    int n, cap;
} ivec;

static void ivec_push(ivec *a, int32_t x) {
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 8;
        a->v = realloc(a->v, (size_t)a->cap * sizeof *a->v);
    }
    a->v[a->n++] = x;
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static void ivec_sort_unique(ivec *a) {
    if (a->n < 2) return;
    qsort(a->v, (size_t)a->n, sizeof *a->v, cmp_i32);
    int k = 1;
    for (int i = 1; i < a->n; i++)
        if (a->v[i] != a->v[k - 1]) a->v[k++] = a->v[i];
    a->n = k;
}

/* ---------------------------------------------------------------- rules as parsed */

typedef struct {
    char *name;
    ivec *alts;
    int n_alts, cap_alts;
    int line;      /* where it was defined (or first used, while undefined) */
    bool defined;
} rule_def;

typedef struct {
    uint64_t bits[4];
} byteset;

typedef struct {
    rule_def *rules;
    int n_rules, cap_rules;
    byteset *sets;
    int n_sets, cap_sets;
    int utf8_rule, any_rule; /* built on first use; -1 before */
} builder;

static int add_rule(builder *b, const char *name, int line) {
    if (b->n_rules == b->cap_rules) {
        b->cap_rules = b->cap_rules ? 2 * b->cap_rules : 16;
        b->rules = realloc(b->rules, (size_t)b->cap_rules * sizeof *b->rules);
    }
    rule_def *r = &b->rules[b->n_rules];
    memset(r, 0, sizeof *r);
    r->name = strdup(name);
    r->line = line;
    return b->n_rules++;
}

static int find_rule(const builder *b, const char *name) {
    for (int i = 0; i < b->n_rules; i++)
        if (!strcmp(b->rules[i].name, name)) return i;
    return -1;
}

static ivec *add_alt(builder *b, int r) {
    rule_def *d = &b->rules[r];
    if (d->n_alts == d->cap_alts) {
        d->cap_alts = d->cap_alts ? 2 * d->cap_alts : 4;
        d->alts = realloc(d->alts, (size_t)d->cap_alts * sizeof *d->alts);
    }
    memset(&d->alts[d->n_alts], 0, sizeof(ivec));
    return &d->alts[d->n_alts++];
}

static int add_set(builder *b, const byteset *s) {
    for (int i = 0; i < b->n_sets; i++) /* sets repeat (digits, string characters): share them */
        if (!memcmp(&b->sets[i], s, sizeof *s)) return i;
    if (b->n_sets == b->cap_sets) {
        b->cap_sets = b->cap_sets ? 2 * b->cap_sets : 16;
        b->sets = realloc(b->sets, (size_t)b->cap_sets * sizeof *b->sets);
    }
    b->sets[b->n_sets] = *s;
    return b->n_sets++;
}

static void set_range(byteset *s, int lo, int hi) {
    for (int c = lo; c <= hi; c++) s->bits[c >> 6] |= 1ull << (c & 63);
}

static int32_t byte_range(builder *b, int lo, int hi) {
    byteset s = {{0}};
    set_range(&s, lo, hi);
    return MK_SET(add_set(b, &s));
}

static int anon_rule(builder *b, const char *base, int line) {
    char name[96];
    snprintf(name, sizeof name, "%s-%d", base, b->n_rules);
    int r = add_rule(b, name, line);
    b->rules[r].defined = true;
    return r;
}

/* Any well-formed UTF-8 sequence of 2 to 4 bytes (no overlongs, no surrogates: RFC 3629's table). */
static int utf8_multibyte_rule(builder *b) {
    if (b->utf8_rule >= 0) return b->utf8_rule;
    int r = add_rule(b, "utf8-multibyte", 0);
    b->rules[r].defined = true;
    static const int table[][4][2] = {
        {{0xC2, 0xDF}, {0x80, 0xBF}, {0, 0}, {0, 0}},
        {{0xE0, 0xE0}, {0xA0, 0xBF}, {0x80, 0xBF}, {0, 0}},
        {{0xE1, 0xEC}, {0x80, 0xBF}, {0x80, 0xBF}, {0, 0}},
        {{0xED, 0xED}, {0x80, 0x9F}, {0x80, 0xBF}, {0, 0}},
        {{0xEE, 0xEF}, {0x80, 0xBF}, {0x80, 0xBF}, {0, 0}},
        {{0xF0, 0xF0}, {0x90, 0xBF}, {0x80, 0xBF}, {0x80, 0xBF}},
        {{0xF1, 0xF3}, {0x80, 0xBF}, {0x80, 0xBF}, {0x80, 0xBF}},
        {{0xF4, 0xF4}, {0x80, 0x8F}, {0x80, 0xBF}, {0x80, 0xBF}},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        ivec *a = add_alt(b, r);
        for (int k = 0; k < 4 && table[i][k][0]; k++) ivec_push(a, byte_range(b, table[i][k][0], table[i][k][1]));
    }
    b->utf8_rule = r;
    return r;
}

/* ---------------------------------------------------------------- the parser */

typedef struct {
    const char *s;
    size_t i;
    int line;
    builder *b;
    char *err;
    size_t err_len;
    bool failed;
} parser;

static bool fail(parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool fail(parser *p, const char *fmt, ...) {
    if (p->failed) return false;
    p->failed = true;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(p->err, p->err_len, "grammar line %d: %s", p->line, msg);
    return false;
}

static void skip_space(parser *p) {
    for (;;) {
        char c = p->s[p->i];
        if (c == '\n') p->line++, p->i++;
        else if (c == ' ' || c == '\t' || c == '\r') p->i++;
        else if (c == '#') {
            while (p->s[p->i] && p->s[p->i] != '\n') p->i++;
        } else break;
    }
}

static bool is_name_char(char c) { return isalnum((unsigned char)c) || c == '_' || c == '-'; }

static size_t name_length(const parser *p, size_t at) {
    size_t n = 0;
    while (is_name_char(p->s[at + n])) n++;
    return n;
}

/* a rule definition starts here: NAME ::= */
static bool at_definition(parser *p) {
    size_t n = name_length(p, p->i);
    if (!n) return false;
    size_t j = p->i + n;
    while (p->s[j] == ' ' || p->s[j] == '\t' || p->s[j] == '\r' || p->s[j] == '\n') j++;
    return !strncmp(p->s + j, "::=", 3);
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* one character of a literal or class: an escape or a UTF-8 code point; -1 on error */
static long read_char(parser *p) {
    unsigned char c = (unsigned char)p->s[p->i];
    if (!c) return fail(p, "the text ends inside a literal or a class"), -1;
    if (c == '\n') return fail(p, "a literal or class runs past the end of the line"), -1;
    if (c == '\\') {
        char e = p->s[p->i + 1];
        p->i += 2;
        int digits = e == 'x' ? 2 : e == 'u' ? 4 : e == 'U' ? 8 : 0;
        if (digits) {
            long v = 0;
            for (int k = 0; k < digits; k++) {
                int h = hex_digit(p->s[p->i]);
                if (h < 0) return fail(p, "\\%c needs %d hex digits", e, digits), -1;
                v = v * 16 + h, p->i++;
            }
            if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return fail(p, "\\%c%lX is not a character", e, v), -1;
            return v;
        }
        switch (e) {
        case 'n': return '\n';
        case 't': return '\t';
        case 'r': return '\r';
        case '\\': case '"': case '\'': case '[': case ']': case '-': case '^': case '/': return e;
        default: return fail(p, "unknown escape \\%c (known: \\n \\t \\r \\\\ \\\" \\[ \\] \\- \\^ \\xHH \\uHHHH)", e), -1;
        }
    }
    int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (!n) return fail(p, "invalid UTF-8 byte 0x%02X", c), -1;
    long v = n == 1 ? c : n == 2 ? (c & 31) : n == 3 ? (c & 15) : (c & 7);
    for (int k = 1; k < n; k++) {
        unsigned char d = (unsigned char)p->s[p->i + k];
        if ((d >> 6) != 2) return fail(p, "invalid UTF-8 sequence"), -1;
        v = (v << 6) | (d & 63);
    }
    p->i += (size_t)n;
    return v;
}

static int utf8_encode(long cp, unsigned char out[4]) {
    if (cp < 0x80) return out[0] = (unsigned char)cp, 1;
    if (cp < 0x800) return out[0] = (unsigned char)(0xC0 | (cp >> 6)), out[1] = (unsigned char)(0x80 | (cp & 63)), 2;
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (cp >> 12)), out[1] = (unsigned char)(0x80 | ((cp >> 6) & 63));
        out[2] = (unsigned char)(0x80 | (cp & 63));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | (cp >> 18)), out[1] = (unsigned char)(0x80 | ((cp >> 12) & 63));
    out[2] = (unsigned char)(0x80 | ((cp >> 6) & 63)), out[3] = (unsigned char)(0x80 | (cp & 63));
    return 4;
}

static bool parse_alternatives(parser *p, int rule);

/* [...]: the ASCII members become one byte set; non-ASCII members must be all of U+0080..U+10FFFF (as in [^"\\])
 * or a short list of characters, each then an alternative of its bytes */
static bool parse_class(parser *p, ivec *frag) {
    int line = p->line;
    p->i++; /* [ */
    bool negate = p->s[p->i] == '^';
    if (negate) p->i++;
    long lo[256], hi[256];
    int n = 0;
    while (p->s[p->i] != ']') {
        long a = read_char(p);
        if (a < 0) return false;
        long z = a;
        if (p->s[p->i] == '-' && p->s[p->i + 1] != ']') {
            p->i++;
            z = read_char(p);
            if (z < 0) return false;
            if (z < a) return fail(p, "the range %lX-%lX in a class runs backwards", a, z);
        }
        if (n == 256) return fail(p, "a class has more than 256 members");
        lo[n] = a, hi[n] = z, n++;
    }
    p->i++; /* ] */
    byteset ascii = {{0}};
    for (int k = 0; k < n; k++)
        if (lo[k] < 0x80) set_range(&ascii, (int)lo[k], (int)(hi[k] < 0x80 ? hi[k] : 0x7F));
    /* the members above ASCII, as a sorted list of ranges */
    long extra_lo[257], extra_hi[257];
    int n_extra = 0;
    for (int k = 0; k < n; k++)
        if (hi[k] >= 0x80) extra_lo[n_extra] = lo[k] < 0x80 ? 0x80 : lo[k], extra_hi[n_extra++] = hi[k];
    bool all_above = false, none_above = n_extra == 0;
    long count_above = 0;
    for (int k = 0; k < n_extra; k++) {
        if (extra_lo[k] <= 0x80 && extra_hi[k] >= 0x10FFFF) all_above = true;
        count_above += extra_hi[k] - extra_lo[k] + 1;
    }
    if (negate) {
        for (int k = 0; k < 4; k++) ascii.bits[k] = ~ascii.bits[k];
        ascii.bits[2] = ascii.bits[3] = 0;
        bool was_none = none_above;
        none_above = all_above, all_above = was_none;
        if (!all_above && !none_above)
            return fail(p, "a negated class that leaves out characters above U+007F is not supported (line %d)", line);
    } else if (!all_above && !none_above && count_above > 64) {
        return fail(p, "a class with a range of more than 64 characters above U+007F is not supported (line %d)",
                    line);
    }
    bool has_ascii = ascii.bits[0] || ascii.bits[1];
    if (none_above) {
        if (!has_ascii) return fail(p, "the class matches nothing");
        ivec_push(frag, MK_SET(add_set(p->b, &ascii)));
        return true;
    }
    int r = anon_rule(p->b, "class", line);
    if (has_ascii) ivec_push(add_alt(p->b, r), MK_SET(add_set(p->b, &ascii)));
    if (all_above) {
        int u = utf8_multibyte_rule(p->b);
        ivec_push(add_alt(p->b, r), MK_RULE(u));
    } else {
        for (int k = 0; k < n_extra; k++)
            for (long cp = extra_lo[k]; cp <= extra_hi[k]; cp++) {
                unsigned char bytes[4];
                int len = utf8_encode(cp, bytes);
                ivec *a = add_alt(p->b, r);
                for (int j = 0; j < len; j++) ivec_push(a, byte_range(p->b, bytes[j], bytes[j]));
            }
    }
    ivec_push(frag, MK_RULE(r));
    return true;
}

/* a fragment of more than one element becomes one rule, so a postfix applies to all of it */
static int32_t as_element(parser *p, ivec *frag, int line) {
    if (frag->n == 1) return frag->v[0];
    int r = anon_rule(p->b, "seq", line);
    ivec *a = add_alt(p->b, r);
    for (int k = 0; k < frag->n; k++) ivec_push(a, frag->v[k]);
    return MK_RULE(r);
}

/* x*: R ::= x R | (empty) */
static int32_t star_of(parser *p, int32_t x, int line) {
    int r = anon_rule(p->b, "star", line);
    ivec *a = add_alt(p->b, r);
    ivec_push(a, x);
    ivec_push(a, MK_RULE(r));
    add_alt(p->b, r);
    return MK_RULE(r);
}

static bool parse_number(parser *p, int *v) {
    if (!isdigit((unsigned char)p->s[p->i])) return fail(p, "a repetition count must be a number");
    long n = 0;
    while (isdigit((unsigned char)p->s[p->i])) {
        n = n * 10 + (p->s[p->i++] - '0');
        if (n > MAX_REPEAT) return fail(p, "a repetition count above %d", MAX_REPEAT);
    }
    *v = (int)n;
    return true;
}

static bool parse_postfix(parser *p, ivec *frag, int line) {
    for (;;) {
        char c = p->s[p->i];
        if (c != '*' && c != '+' && c != '?' && c != '{') return true;
        if (frag->n == 0) return fail(p, "'%c' after an empty literal", c);
        int32_t x = as_element(p, frag, line);
        frag->n = 0;
        p->i++;
        if (c == '*') ivec_push(frag, star_of(p, x, line));
        else if (c == '+') ivec_push(frag, x), ivec_push(frag, star_of(p, x, line));
        else if (c == '?') {
            int r = anon_rule(p->b, "opt", line);
            ivec_push(add_alt(p->b, r), x);
            add_alt(p->b, r);
            ivec_push(frag, MK_RULE(r));
        } else {
            int m = 0, n = 0;
            bool unbounded = false;
            skip_space(p);
            if (!parse_number(p, &m)) return false;
            skip_space(p);
            if (p->s[p->i] == ',') {
                p->i++;
                skip_space(p);
                if (p->s[p->i] == '}') unbounded = true;
                else if (!parse_number(p, &n)) return false;
            } else n = m;
            skip_space(p);
            if (p->s[p->i] != '}') return fail(p, "expected '}' to close {m,n}");
            p->i++;
            if (!unbounded && n < m) return fail(p, "{%d,%d}: the maximum is below the minimum", m, n);
            for (int k = 0; k < m; k++) ivec_push(frag, x);
            if (unbounded) ivec_push(frag, star_of(p, x, line));
            else if (n > m) { /* opt_1 ::= x | ; opt_k ::= x opt_(k-1) | */
                int prev = -1;
                for (int k = 0; k < n - m; k++) {
                    int r = anon_rule(p->b, "rep", line);
                    ivec *a = add_alt(p->b, r);
                    ivec_push(a, x);
                    if (prev >= 0) ivec_push(a, MK_RULE(prev));
                    add_alt(p->b, r);
                    prev = r;
                }
                ivec_push(frag, MK_RULE(prev));
            }
        }
    }
}

static bool parse_sequence(parser *p, ivec *out) {
    ivec frag = {0};
    bool ok = true;
    for (;;) {
        skip_space(p);
        char c = p->s[p->i];
        if (!c || c == '|' || c == ')' || at_definition(p)) break;
        int line = p->line;
        frag.n = 0;
        if (c == '"') {
            p->i++;
            while (p->s[p->i] != '"') {
                long cp = read_char(p);
                if (cp < 0) {
                    ok = false;
                    break;
                }
                unsigned char bytes[4];
                int len = utf8_encode(cp, bytes);
                for (int k = 0; k < len; k++) ivec_push(&frag, byte_range(p->b, bytes[k], bytes[k]));
            }
            if (!ok) break;
            p->i++;
        } else if (c == '[') {
            if (!(ok = parse_class(p, &frag))) break;
        } else if (c == '.') {
            p->i++;
            if (p->b->any_rule < 0) {
                int r = add_rule(p->b, "any-char", 0);
                p->b->rules[r].defined = true;
                ivec_push(add_alt(p->b, r), byte_range(p->b, 0, 0x7F));
                ivec_push(add_alt(p->b, r), MK_RULE(utf8_multibyte_rule(p->b)));
                p->b->any_rule = r;
            }
            ivec_push(&frag, MK_RULE(p->b->any_rule));
        } else if (c == '(') {
            p->i++;
            int r = anon_rule(p->b, "group", line);
            if (!(ok = parse_alternatives(p, r))) break;
            skip_space(p);
            if (p->s[p->i] != ')') {
                ok = fail(p, "expected ')' to close the group opened on line %d", line);
                break;
            }
            p->i++;
            ivec_push(&frag, MK_RULE(r));
        } else if (is_name_char(c)) {
            size_t n = name_length(p, p->i);
            char name[96];
            if (n >= sizeof name) {
                ok = fail(p, "a rule name longer than %zu characters", sizeof name - 1);
                break;
            }
            memcpy(name, p->s + p->i, n);
            name[n] = 0;
            p->i += n;
            int r = find_rule(p->b, name);
            if (r < 0) r = add_rule(p->b, name, line);
            ivec_push(&frag, MK_RULE(r));
        } else {
            ok = fail(p, "unexpected '%c' (expected a literal, a class, a rule name, '(' or '.')", c);
            break;
        }
        if (!(ok = parse_postfix(p, &frag, line))) break;
        for (int k = 0; k < frag.n; k++) ivec_push(out, frag.v[k]);
    }
    free(frag.v);
    return ok && !p->failed;
}

static bool parse_alternatives(parser *p, int rule) {
    for (;;) {
        ivec seq = {0};
        if (!parse_sequence(p, &seq)) {
            free(seq.v);
            return false;
        }
        *add_alt(p->b, rule) = seq; /* add_alt may move the rule's alternatives: copy after */
        skip_space(p);
        if (p->s[p->i] != '|') return true;
        p->i++;
    }
}

/* ---------------------------------------------------------------- the compiled grammar */

typedef struct {
    int32_t off, len; /* its stack nodes, sorted, in the pool */
    int minlen;       /* bytes still needed to complete the grammar, at least */
    bool accepting;   /* the empty stack (node 0) is in it */
    int32_t *next;    /* per byte: the next state (0: none), -1 not yet computed; NULL until the first step */
    uint64_t *mask;   /* allowed tokens, cached (NULL until computed) */
    int mask_count, mask_maxml; /* tokens in it; the largest minlen after one of them (the budget check) */
} gstate;

struct gl_grammar {
    int n_rules;
    char **names;
    int32_t *rule_alts, *rule_n_alts; /* per rule: index of its first alternative in alt_start, and how many */
    int32_t *alt_start;               /* the element position where each alternative begins */
    int32_t *elems;                   /* every alternative's elements followed by END */
    int *seqmin;                      /* per position: bytes needed, at least, from there to the alternative's end */
    int n_elems;
    byteset *sets;
    int n_sets;
    /* stack nodes: node 0 is the empty stack; node k = element at npos[k] on top of the stack ntail[k] */
    int32_t *npos, *ntail, *nmin, *nsucc_off, *nsucc_len, *nexp_off, *nexp_len;
    int n_nodes, cap_nodes;
    int32_t *node_table;
    int node_table_cap;
    /* lists of node ids (successor sets, states) */
    int32_t *pool;
    size_t pool_len, pool_cap;
    gstate *states;
    int n_states, cap_states;
    int32_t *state_table;
    int state_table_cap;
    int start;
    /* masks are for one vocabulary at a time */
    const gl_vocab_trie *mask_vocab;
    bool overflow; /* past MAX_STACK_NODES or MAX_STATE_STACKS: every step refuses */
    int32_t *walk; /* the trie walk's stack: (trie node, state) pairs */
    size_t walk_cap;
    gl_grammar_stats stats;
};

/* Nodes in depth-first preorder, so a walk reads memory in order: node i's first child is i + 1 (when size[i] > 1)
 * and its next sibling is i + size[i] (size: the nodes of its subtree, itself included). */
struct gl_vocab_trie {
    int n_tokens, n_nodes, cap_nodes;
    int32_t *first_child, *next_sibling, *first_token; /* while building: linked children */
    int32_t *size;
    uint8_t *byte;
    int32_t *next_token; /* per token: the next token with the same bytes */
    unsigned char *bytes;
    size_t *tok_off, *tok_len;
};

struct gl_grammar_matcher {
    gl_grammar *g;
    const gl_vocab_trie *v;
    int32_t *stops;
    int n_stops;
    int state, budget;
    bool stopped;
    uint64_t *allowed;
    int words;
};

static int sat_add(int a, int b) { return a >= INF - b ? INF : a + b; }

static int32_t pool_add(gl_grammar *g, const int32_t *v, int n) {
    if (g->pool_len + (size_t)n > g->pool_cap) {
        while (g->pool_len + (size_t)n > g->pool_cap) g->pool_cap = g->pool_cap ? 2 * g->pool_cap : 1024;
        g->pool = realloc(g->pool, g->pool_cap * sizeof *g->pool);
    }
    if (n) memcpy(g->pool + g->pool_len, v, (size_t)n * sizeof *v); /* v is NULL for the empty (dead) state */
    g->pool_len += (size_t)n;
    return (int32_t)(g->pool_len - (size_t)n);
}

static uint32_t mix(uint64_t h) {
    h ^= h >> 33, h *= 0xff51afd7ed558ccdull, h ^= h >> 33;
    return (uint32_t)h;
}

static void node_table_grow(gl_grammar *g) {
    int cap = g->node_table_cap ? 2 * g->node_table_cap : 1024;
    int32_t *t = malloc((size_t)cap * sizeof *t);
    for (int i = 0; i < cap; i++) t[i] = -1;
    for (int k = 1; k < g->n_nodes; k++) {
        uint32_t h = mix(((uint64_t)(uint32_t)g->npos[k] << 32) | (uint32_t)g->ntail[k]) & (uint32_t)(cap - 1);
        while (t[h] >= 0) h = (h + 1) & (uint32_t)(cap - 1);
        t[h] = k;
    }
    free(g->node_table);
    g->node_table = t, g->node_table_cap = cap;
}

/* the stack with the element at pos on top of tail, hash-consed */
static int32_t cons(gl_grammar *g, int32_t pos, int32_t tail) {
    if (2 * g->n_nodes >= g->node_table_cap) node_table_grow(g);
    uint32_t m = (uint32_t)(g->node_table_cap - 1), h = mix(((uint64_t)(uint32_t)pos << 32) | (uint32_t)tail) & m;
    for (; g->node_table[h] >= 0; h = (h + 1) & m) {
        int32_t k = g->node_table[h];
        if (g->npos[k] == pos && g->ntail[k] == tail) return k;
    }
    if (g->n_nodes >= MAX_STACK_NODES) {
        g->overflow = true;
        return 0;
    }
    if (g->n_nodes == g->cap_nodes) {
        g->cap_nodes *= 2;
        g->npos = realloc(g->npos, (size_t)g->cap_nodes * sizeof *g->npos);
        g->ntail = realloc(g->ntail, (size_t)g->cap_nodes * sizeof *g->ntail);
        g->nmin = realloc(g->nmin, (size_t)g->cap_nodes * sizeof *g->nmin);
        g->nsucc_off = realloc(g->nsucc_off, (size_t)g->cap_nodes * sizeof *g->nsucc_off);
        g->nsucc_len = realloc(g->nsucc_len, (size_t)g->cap_nodes * sizeof *g->nsucc_len);
        g->nexp_off = realloc(g->nexp_off, (size_t)g->cap_nodes * sizeof *g->nexp_off);
        g->nexp_len = realloc(g->nexp_len, (size_t)g->cap_nodes * sizeof *g->nexp_len);
    }
    int32_t k = g->n_nodes++;
    g->npos[k] = pos, g->ntail[k] = tail, g->nmin[k] = sat_add(g->seqmin[pos], g->nmin[tail]);
    g->nsucc_off[k] = -1, g->nsucc_len[k] = 0, g->nexp_off[k] = -1, g->nexp_len[k] = 0;
    g->node_table[h] = k;
    g->stats.stack_nodes++;
    return k;
}

/* The stacks a stack stands for once every rule on top is replaced by its alternatives: each result has a byte
 * set on top, or is empty (node 0). Ends because no rule is left-recursive (checked when parsing). Remembered per
 * node: alternatives that may be empty reach the same stacks by many paths, which without it would be walked again
 * each time (exponentially often for nested optional repetitions). */
static void expand(gl_grammar *g, int32_t node, ivec *out) {
    if (g->overflow) return;
    if (node == 0) {
        ivec_push(out, 0);
        return;
    }
    int32_t pos = g->npos[node], e = g->elems[pos];
    if (IS_SET(e)) {
        ivec_push(out, node);
        return;
    }
    if (g->nexp_off[node] < 0) {
        ivec v = {0};
        int32_t tail = g->ntail[node];
        int32_t rest = g->elems[pos + 1] == END ? tail : cons(g, pos + 1, tail); /* a rule last in its alternative
                                                                                  leaves no return frame behind */
        int r = ARG(e);
        for (int a = 0; a < g->rule_n_alts[r]; a++) {
            int32_t first = g->alt_start[g->rule_alts[r] + a];
            expand(g, g->elems[first] == END ? rest : cons(g, first, rest), &v);
        }
        ivec_sort_unique(&v);
        int32_t off = pool_add(g, v.v, v.n);
        g->nexp_off[node] = off, g->nexp_len[node] = v.n;
        free(v.v);
    }
    for (int j = 0; j < g->nexp_len[node]; j++) ivec_push(out, g->pool[g->nexp_off[node] + j]);
}

/* the stacks after the byte set on top of node has matched a byte (the same for every byte it matches) */
static void successors(gl_grammar *g, int32_t node) {
    if (g->nsucc_off[node] >= 0) return;
    ivec v = {0};
    int32_t pos = g->npos[node], tail = g->ntail[node];
    expand(g, g->elems[pos + 1] == END ? tail : cons(g, pos + 1, tail), &v);
    ivec_sort_unique(&v);
    int32_t off = pool_add(g, v.v, v.n);
    g->nsucc_off[node] = off, g->nsucc_len[node] = v.n;
    free(v.v);
}

static uint64_t list_hash(const int32_t *v, int n) { return gl_fnv1a(GL_FNV_OFFSET, v, (size_t)n * sizeof *v); }

static void state_table_grow(gl_grammar *g) {
    int cap = g->state_table_cap ? 2 * g->state_table_cap : 256;
    int32_t *t = malloc((size_t)cap * sizeof *t);
    for (int i = 0; i < cap; i++) t[i] = -1;
    for (int s = 0; s < g->n_states; s++) {
        uint32_t h = mix(list_hash(g->pool + g->states[s].off, g->states[s].len)) & (uint32_t)(cap - 1);
        while (t[h] >= 0) h = (h + 1) & (uint32_t)(cap - 1);
        t[h] = s;
    }
    free(g->state_table);
    g->state_table = t, g->state_table_cap = cap;
}

/* the state of a sorted set of stacks, interned: equal sets are one state; the empty set is state 0 (dead) */
static int32_t intern_state(gl_grammar *g, const int32_t *v, int n) {
    if (n > MAX_STATE_STACKS) {
        g->overflow = true;
        return 0;
    }
    if (2 * g->n_states >= g->state_table_cap) state_table_grow(g);
    uint32_t m = (uint32_t)(g->state_table_cap - 1), h = mix(list_hash(v, n)) & m;
    for (; g->state_table[h] >= 0; h = (h + 1) & m) {
        gstate *s = &g->states[g->state_table[h]];
        if (s->len == n && (n == 0 || !memcmp(g->pool + s->off, v, (size_t)n * sizeof *v))) return g->state_table[h];
    }
    if (g->n_states == g->cap_states) {
        g->cap_states = g->cap_states ? 2 * g->cap_states : 256;
        g->states = realloc(g->states, (size_t)g->cap_states * sizeof *g->states);
    }
    int32_t id = g->n_states++;
    gstate *s = &g->states[id];
    memset(s, 0, sizeof *s);
    s->off = pool_add(g, v, n), s->len = n;
    s->minlen = INF;
    for (int k = 0; k < n; k++) s->minlen = g->nmin[v[k]] < s->minlen ? g->nmin[v[k]] : s->minlen;
    s->accepting = n > 0 && v[0] == 0;
    g->state_table[h] = id;
    g->stats.states++;
    return id;
}

/* the state after byte c, or 0 if no stack of s can take it */
static int32_t step(gl_grammar *g, int32_t s, unsigned char c) {
    if (s == 0 || g->overflow) return 0;
    if (g->states[s].next && g->states[s].next[c] >= 0) return g->states[s].next[c];
    /* BEGIN SOLUTION lab10: one byte's step of the parse: for every stack of state s (skip node 0, the empty stack) whose top byte set (g->sets[ARG(g->elems[g->npos[node]])]) holds c, its successors (successors(g, node), then the nsucc_off/nsucc_len list in g->pool) join the next set; sort and dedupe it (ivec_sort_unique), intern it (intern_state; 0 when empty) and remember it in g->states[s].next[c] (allocate the 256 entries, -1 each, on first use) */
    ivec v = {0};
    for (int k = 0; k < g->states[s].len; k++) {
        int32_t node = g->pool[g->states[s].off + k]; /* re-read: successors() may move the pool */
        if (node == 0) continue;
        const byteset *set = &g->sets[ARG(g->elems[g->npos[node]])];
        if (!((set->bits[c >> 6] >> (c & 63)) & 1)) continue;
        successors(g, node);
        for (int j = 0; j < g->nsucc_len[node]; j++) ivec_push(&v, g->pool[g->nsucc_off[node] + j]);
    }
    ivec_sort_unique(&v);
    int32_t t = v.n ? intern_state(g, v.v, v.n) : 0;
    free(v.v);
    gstate *st = &g->states[s]; /* intern_state may move the states */
    if (!st->next) {
        st->next = malloc(256 * sizeof *st->next);
        for (int i = 0; i < 256; i++) st->next[i] = -1;
    }
    st->next[c] = t;
    return t;
    /* END SOLUTION */
}

/* ---------------------------------------------------------------- checks after parsing */

static int elem_min(const int *rmin, int32_t e) { return IS_SET(e) ? 1 : rmin[ARG(e)]; }

static int alt_min(const int *rmin, const ivec *a) {
    int s = 0;
    for (int k = 0; k < a->n; k++) s = sat_add(s, elem_min(rmin, a->v[k]));
    return s;
}

/* depth-first search for a cycle of rules that can start with themselves; writes the cycle's names on finding one */
static bool left_cycle(const builder *b, const int *rmin, int r, int *color, int *path, int depth, char *msg,
                       size_t n) {
    color[r] = 1;
    path[depth] = r;
    const rule_def *d = &b->rules[r];
    for (int a = 0; a < d->n_alts; a++)
        for (int k = 0; k < d->alts[a].n; k++) {
            int32_t e = d->alts[a].v[k];
            if (IS_SET(e)) break;
            int s = ARG(e);
            if (color[s] == 1) {
                size_t at = 0;
                int from = depth;
                while (from > 0 && path[from] != s) from--;
                for (int j = from; j <= depth && at < n; j++)
                    at += (size_t)snprintf(msg + at, n - at, "%s -> ", b->rules[path[j]].name);
                if (at < n) snprintf(msg + at, n - at, "%s", b->rules[s].name);
                return true;
            }
            if (color[s] == 0 && left_cycle(b, rmin, s, color, path, depth + 1, msg, n)) return true;
            if (rmin[s] != 0) break;
        }
    color[r] = 2;
    return false;
}

static void builder_free(builder *b) {
    for (int r = 0; r < b->n_rules; r++) {
        for (int a = 0; a < b->rules[r].n_alts; a++) free(b->rules[r].alts[a].v);
        free(b->rules[r].alts);
        free(b->rules[r].name);
    }
    free(b->rules);
    free(b->sets);
}

gl_grammar *gl_grammar_parse(const char *text, char *err, size_t err_len) {
    builder b = {.utf8_rule = -1, .any_rule = -1};
    parser p = {.s = text, .line = 1, .b = &b, .err = err, .err_len = err_len};
    gl_grammar *g = NULL;
    int *rmin = NULL, *color = NULL, *path = NULL;
    for (;;) {
        skip_space(&p);
        if (!text[p.i]) break;
        if (!at_definition(&p)) {
            fail(&p, "expected a rule definition: name ::= ...");
            goto out;
        }
        size_t n = name_length(&p, p.i);
        char name[96];
        if (n >= sizeof name) {
            fail(&p, "a rule name longer than %zu characters", sizeof name - 1);
            goto out;
        }
        memcpy(name, text + p.i, n);
        name[n] = 0;
        p.i += n;
        skip_space(&p);
        p.i += 3; /* ::= */
        int r = find_rule(&b, name);
        if (r >= 0 && b.rules[r].defined) {
            fail(&p, "rule '%s' is defined twice (first on line %d)", name, b.rules[r].line);
            goto out;
        }
        if (r < 0) r = add_rule(&b, name, p.line);
        b.rules[r].defined = true, b.rules[r].line = p.line;
        if (!parse_alternatives(&p, r)) goto out;
        skip_space(&p);
        if (text[p.i] && !at_definition(&p)) {
            fail(&p, "unexpected '%c' (expected '|', or the next rule: name ::= ...)", text[p.i]);
            goto out;
        }
    }
    int root = find_rule(&b, "root");
    if (root < 0 || !b.rules[root].defined) {
        snprintf(err, err_len, "grammar: no rule named 'root' (the start rule)");
        goto out;
    }
    for (int r = 0; r < b.n_rules; r++)
        if (!b.rules[r].defined) {
            snprintf(err, err_len, "grammar line %d: rule '%s' is used but never defined", b.rules[r].line,
                     b.rules[r].name);
            goto out;
        }
    /* the fewest bytes each rule derives (INF: none, the rule never ends) */
    rmin = malloc((size_t)b.n_rules * sizeof *rmin);
    for (int r = 0; r < b.n_rules; r++) rmin[r] = INF;
    for (bool changed = true; changed;) {
        changed = false;
        for (int r = 0; r < b.n_rules; r++)
            for (int a = 0; a < b.rules[r].n_alts; a++) {
                int m = alt_min(rmin, &b.rules[r].alts[a]);
                if (m < rmin[r]) rmin[r] = m, changed = true;
            }
    }
    if (rmin[root] >= INF) {
        snprintf(err, err_len, "grammar: cannot be satisfied: rule 'root' derives no finite text (every alternative "
                               "needs a rule that never ends)");
        goto out;
    }
    color = calloc((size_t)b.n_rules, sizeof *color);
    path = malloc((size_t)b.n_rules * sizeof *path);
    for (int r = 0; r < b.n_rules; r++) {
        char cycle[512];
        if (color[r] == 0 && left_cycle(&b, rmin, r, color, path, 0, cycle, sizeof cycle)) {
            snprintf(err, err_len, "grammar line %d: rule '%s' is left-recursive (%s): a rule must not start with "
                     "itself; write the repetition with * or +, and nothing repeated may be empty",
                     b.rules[path[0]].line, b.rules[path[0]].name, cycle);
            goto out;
        }
    }
    /* flatten; alternatives that can never end are dropped (a stack could enter them and never complete) */
    g = calloc(1, sizeof *g);
    g->n_rules = b.n_rules;
    g->names = malloc((size_t)b.n_rules * sizeof *g->names);
    g->rule_alts = malloc((size_t)b.n_rules * sizeof *g->rule_alts);
    g->rule_n_alts = calloc((size_t)b.n_rules, sizeof *g->rule_n_alts);
    ivec elems = {0}, starts = {0};
    for (int r = 0; r < b.n_rules; r++) {
        g->names[r] = strdup(b.rules[r].name);
        g->rule_alts[r] = starts.n;
        for (int a = 0; a < b.rules[r].n_alts; a++) {
            const ivec *alt = &b.rules[r].alts[a];
            if (alt_min(rmin, alt) >= INF) continue;
            ivec_push(&starts, elems.n);
            for (int k = 0; k < alt->n; k++) ivec_push(&elems, alt->v[k]);
            ivec_push(&elems, END);
            g->rule_n_alts[r]++;
        }
    }
    g->elems = elems.v, g->n_elems = elems.n, g->alt_start = starts.v;
    g->seqmin = malloc((size_t)g->n_elems * sizeof *g->seqmin);
    for (int i = g->n_elems - 1; i >= 0; i--)
        g->seqmin[i] = g->elems[i] == END ? 0 : sat_add(elem_min(rmin, g->elems[i]), g->seqmin[i + 1]);
    g->sets = b.sets, g->n_sets = b.n_sets;
    b.sets = NULL;
    g->cap_nodes = 1024;
    g->npos = malloc((size_t)g->cap_nodes * sizeof *g->npos);
    g->ntail = malloc((size_t)g->cap_nodes * sizeof *g->ntail);
    g->nmin = malloc((size_t)g->cap_nodes * sizeof *g->nmin);
    g->nsucc_off = malloc((size_t)g->cap_nodes * sizeof *g->nsucc_off);
    g->nsucc_len = malloc((size_t)g->cap_nodes * sizeof *g->nsucc_len);
    g->nexp_off = malloc((size_t)g->cap_nodes * sizeof *g->nexp_off);
    g->nexp_len = malloc((size_t)g->cap_nodes * sizeof *g->nexp_len);
    g->npos[0] = -1, g->ntail[0] = 0, g->nmin[0] = 0, g->nsucc_off[0] = -1, g->nsucc_len[0] = 0;
    g->nexp_off[0] = -1, g->nexp_len[0] = 0;
    g->n_nodes = 1;
    intern_state(g, NULL, 0); /* state 0: dead */
    ivec v = {0};
    for (int a = 0; a < g->rule_n_alts[root]; a++) {
        int32_t first = g->alt_start[g->rule_alts[root] + a];
        expand(g, g->elems[first] == END ? 0 : cons(g, first, 0), &v);
    }
    ivec_sort_unique(&v);
    g->start = intern_state(g, v.v, v.n);
    free(v.v);
out:
    free(rmin);
    free(color);
    free(path);
    builder_free(&b);
    return g;
}

void gl_grammar_free(gl_grammar *g) {
    if (!g) return;
    for (int r = 0; r < g->n_rules; r++) free(g->names[r]);
    free(g->names);
    free(g->rule_alts);
    free(g->rule_n_alts);
    free(g->alt_start);
    free(g->elems);
    free(g->seqmin);
    free(g->sets);
    free(g->npos);
    free(g->ntail);
    free(g->nmin);
    free(g->nsucc_off);
    free(g->nsucc_len);
    free(g->nexp_off);
    free(g->nexp_len);
    free(g->node_table);
    free(g->pool);
    for (int s = 0; s < g->n_states; s++) free(g->states[s].next), free(g->states[s].mask);
    free(g->states);
    free(g->state_table);
    free(g->walk);
    free(g);
}

int gl_grammar_rule_count(const gl_grammar *g) { return g->n_rules; }

const char *gl_grammar_error(const gl_grammar *g) {
    return g->overflow ? "the grammar is too ambiguous to follow: its parse needs more than 524,288 stacks, or a "
                         "state more than 8,192 of them (nested repetitions such as ((x+)+)+ do that)"
                       : NULL;
}

gl_grammar_stats gl_grammar_get_stats(const gl_grammar *g) { return g->stats; }

static void print_set(const byteset *s, FILE *f) {
    int n = 0;
    for (int c = 0; c < 256; c++) n += (int)((s->bits[c >> 6] >> (c & 63)) & 1);
    if (n == 1) {
        for (int c = 0; c < 256; c++)
            if ((s->bits[c >> 6] >> (c & 63)) & 1) {
                if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\') fprintf(f, "\"%c\"", c);
                else fprintf(f, "[\\x%02X]", c);
            }
        return;
    }
    fputc('[', f);
    for (int c = 0; c < 256;) {
        if (!((s->bits[c >> 6] >> (c & 63)) & 1)) {
            c++;
            continue;
        }
        int z = c;
        while (z + 1 < 256 && ((s->bits[(z + 1) >> 6] >> ((z + 1) & 63)) & 1)) z++;
        for (int k = 0; k < 2; k++) {
            int x = k ? z : c;
            if (k && z == c) break;
            if (k) fputc('-', f);
            if (x > 0x20 && x < 0x7F && !strchr("]\\-^", x)) fputc(x, f);
            else fprintf(f, "\\x%02X", x);
        }
        c = z + 1;
    }
    fputc(']', f);
}

void gl_grammar_print(const gl_grammar *g, FILE *f) {
    for (int r = 0; r < g->n_rules; r++) {
        fprintf(f, "%s ::=", g->names[r]);
        for (int a = 0; a < g->rule_n_alts[r]; a++) {
            if (a) fprintf(f, " |");
            int32_t pos = g->alt_start[g->rule_alts[r] + a];
            if (g->elems[pos] == END) fprintf(f, " \"\"");
            for (; g->elems[pos] != END; pos++) {
                fputc(' ', f);
                if (IS_SET(g->elems[pos])) print_set(&g->sets[ARG(g->elems[pos])], f);
                else fputs(g->names[ARG(g->elems[pos])], f);
            }
        }
        fputc('\n', f);
    }
}

/* ---------------------------------------------------------------- the vocabulary trie */

static int32_t trie_node(gl_vocab_trie *t) {
    if (t->n_nodes == t->cap_nodes) {
        t->cap_nodes = t->cap_nodes ? 2 * t->cap_nodes : 1024;
        t->first_child = realloc(t->first_child, (size_t)t->cap_nodes * sizeof *t->first_child);
        t->next_sibling = realloc(t->next_sibling, (size_t)t->cap_nodes * sizeof *t->next_sibling);
        t->first_token = realloc(t->first_token, (size_t)t->cap_nodes * sizeof *t->first_token);
        t->byte = realloc(t->byte, (size_t)t->cap_nodes);
    }
    int32_t k = t->n_nodes++;
    t->first_child[k] = t->next_sibling[k] = t->first_token[k] = -1;
    t->byte[k] = 0;
    return k;
}

gl_vocab_trie *gl_vocab_trie_new(int n_tokens, const unsigned char *const *bytes, const size_t *lens) {
    gl_vocab_trie *t = calloc(1, sizeof *t);
    t->n_tokens = n_tokens;
    t->next_token = malloc((size_t)(n_tokens ? n_tokens : 1) * sizeof *t->next_token);
    t->tok_off = malloc((size_t)(n_tokens ? n_tokens : 1) * sizeof *t->tok_off);
    t->tok_len = malloc((size_t)(n_tokens ? n_tokens : 1) * sizeof *t->tok_len);
    size_t total = 0;
    for (int i = 0; i < n_tokens; i++) total += lens[i];
    t->bytes = malloc(total ? total : 1);
    trie_node(t); /* the root */
    size_t at = 0;
    for (int i = 0; i < n_tokens; i++) {
        if (lens[i]) memcpy(t->bytes + at, bytes[i], lens[i]);
        t->tok_off[i] = at, t->tok_len[i] = lens[i];
        at += lens[i];
        t->next_token[i] = -1;
        if (!lens[i]) continue;
        int32_t node = 0;
        for (size_t k = 0; k < lens[i]; k++) {
            uint8_t c = bytes[i][k];
            int32_t child = t->first_child[node];
            while (child >= 0 && t->byte[child] != c) child = t->next_sibling[child];
            if (child < 0) {
                child = trie_node(t);
                t->byte[child] = c;
                t->next_sibling[child] = t->first_child[node];
                t->first_child[node] = child;
            }
            node = child;
        }
        t->next_token[i] = t->first_token[node];
        t->first_token[node] = i;
    }
    /* renumber in preorder: popping a node and pushing its children lays every subtree out contiguously */
    int32_t *order = malloc((size_t)t->n_nodes * sizeof *order), *stack = malloc((size_t)t->n_nodes * sizeof *stack);
    int32_t *size = malloc((size_t)t->n_nodes * sizeof *size), *tok = malloc((size_t)t->n_nodes * sizeof *tok);
    int32_t *subtree = malloc((size_t)t->n_nodes * sizeof *subtree);
    uint8_t *byte = malloc((size_t)t->n_nodes);
    int n = 0, top = 0;
    stack[top++] = 0;
    while (top) {
        int32_t k = stack[--top];
        order[n++] = k;
        for (int32_t c = t->first_child[k]; c >= 0; c = t->next_sibling[c]) stack[top++] = c;
    }
    for (int i = n - 1; i >= 0; i--) { /* children come after their parent: sizes from the end */
        int32_t k = order[i];
        subtree[k] = 1;
        for (int32_t c = t->first_child[k]; c >= 0; c = t->next_sibling[c]) subtree[k] += subtree[c];
    }
    for (int i = 0; i < n; i++) size[i] = subtree[order[i]];
    free(subtree);
    for (int i = 0; i < n; i++) byte[i] = t->byte[order[i]], tok[i] = t->first_token[order[i]];
    free(order);
    free(stack);
    free(t->first_child);
    free(t->next_sibling);
    free(t->first_token);
    free(t->byte);
    t->first_child = t->next_sibling = NULL;
    t->first_token = tok, t->byte = byte, t->size = size;
    return t;
}

void gl_vocab_trie_free(gl_vocab_trie *t) {
    if (!t) return;
    free(t->first_child);
    free(t->next_sibling);
    free(t->first_token);
    free(t->size);
    free(t->byte);
    free(t->next_token);
    free(t->bytes);
    free(t->tok_off);
    free(t->tok_len);
    free(t);
}

gl_vocab_trie *gl_vocab_trie_from_bpe(const gl_bpe *bpe) {
    int n = gl_bpe_vocab_size(bpe);
    const unsigned char **bytes = malloc((size_t)n * sizeof *bytes);
    size_t *lens = malloc((size_t)n * sizeof *lens);
    for (int i = 0; i < n; i++) {
        bytes[i] = gl_bpe_token_bytes(bpe, i, &lens[i]);
        if (gl_bpe_is_special(bpe, i)) lens[i] = 0;
    }
    gl_vocab_trie *t = gl_vocab_trie_new(n, bytes, lens);
    free(bytes);
    free(lens);
    return t;
}

gl_vocab_trie *gl_vocab_trie_from_codec(const gl_codec *codec) {
    if (codec->bpe) return gl_vocab_trie_from_bpe(codec->bpe);
    int n = codec->chars.size;
    unsigned char(*chars)[4] = malloc((size_t)(n ? n : 1) * 4);
    const unsigned char **bytes = malloc((size_t)(n ? n : 1) * sizeof *bytes);
    size_t *lens = malloc((size_t)(n ? n : 1) * sizeof *lens);
    for (int i = 0; i < n; i++) bytes[i] = gl_codec_token(codec, i, chars[i], &lens[i]);
    gl_vocab_trie *t = gl_vocab_trie_new(n, bytes, lens);
    free(chars);
    free(bytes);
    free(lens);
    return t;
}

int gl_vocab_trie_tokens(const gl_vocab_trie *t) { return t->n_tokens; }
int gl_vocab_trie_nodes(const gl_vocab_trie *t) { return t->n_nodes; }

/* One walk over the trie from state s: every token whose bytes the grammar can take is set in mask, if the state
 * after it can still be completed within limit bytes. Returns the count; *maxml: the largest minlen after an
 * allowed token (when limit is not below it, the same walk without a limit gives the same set). */
static int walk_trie(gl_grammar *g, const gl_vocab_trie *t, int32_t s, int limit, uint64_t *mask, int *maxml) {
    int words = (t->n_tokens + 63) / 64, count = 0, worst = 0;
    memset(mask, 0, (size_t)words * sizeof *mask);
    /* the walk's stack holds (end of the subtree being walked, state at its parent) per open level; node i is
     * visited with the state of its parent, which is on top */
    if (g->walk_cap < 256) g->walk_cap = 256, g->walk = realloc(g->walk, g->walk_cap * 2 * sizeof *g->walk);
    size_t top = 0;
    g->walk[0] = t->size[0], g->walk[1] = s, top = 1;
    int32_t i = 1;
    while (top) {
        int32_t end = g->walk[2 * top - 2], st = g->walk[2 * top - 1];
        if (i >= end) {
            top--;
            continue;
        }
        int32_t s2 = step(g, st, t->byte[i]);
        if (!s2) {
            i += t->size[i]; /* nothing below can follow either */
            continue;
        }
        if (t->first_token[i] >= 0) {
            int ml = g->states[s2].minlen;
            if (ml <= limit) {
                if (ml > worst) worst = ml;
                for (int32_t k = t->first_token[i]; k >= 0; k = t->next_token[k]) mask[k >> 6] |= 1ull << (k & 63), count++;
            }
        }
        if (t->size[i] > 1) {
            if (top + 1 > g->walk_cap) g->walk_cap *= 2, g->walk = realloc(g->walk, g->walk_cap * 2 * sizeof *g->walk);
            g->walk[2 * top] = i + t->size[i], g->walk[2 * top + 1] = s2, top++;
        }
        i++;
    }
    *maxml = worst;
    return count;
}

/* ---------------------------------------------------------------- the matcher */

gl_grammar_matcher *gl_matcher_new(gl_grammar *g, const gl_vocab_trie *v, const int32_t *stops, int n_stops,
                                   int budget) {
    gl_grammar_matcher *m = calloc(1, sizeof *m);
    m->g = g, m->v = v;
    m->n_stops = n_stops;
    m->stops = malloc((size_t)(n_stops ? n_stops : 1) * sizeof *m->stops);
    if (n_stops) memcpy(m->stops, stops, (size_t)n_stops * sizeof *stops);
    m->words = (v->n_tokens + 63) / 64;
    m->allowed = malloc((size_t)(m->words ? m->words : 1) * sizeof *m->allowed);
    gl_matcher_reset(m, budget);
    return m;
}

void gl_matcher_free(gl_grammar_matcher *m) {
    if (!m) return;
    free(m->stops);
    free(m->allowed);
    free(m);
}

void gl_matcher_reset(gl_grammar_matcher *m, int budget) {
    m->state = m->g->start, m->budget = budget, m->stopped = false;
}

gl_grammar *gl_matcher_grammar(const gl_grammar_matcher *m) { return m->g; }

static bool is_stop(const gl_grammar_matcher *m, int32_t tok) {
    for (int k = 0; k < m->n_stops; k++)
        if (m->stops[k] == tok) return true;
    return false;
}

bool gl_matcher_complete(const gl_grammar_matcher *m) { return m->stopped || m->g->states[m->state].accepting; }

bool gl_matcher_done(const gl_grammar_matcher *m) {
    const gstate *s = &m->g->states[m->state];
    return m->stopped || (s->accepting && s->len == 1);
}

int gl_matcher_min_remaining(const gl_grammar_matcher *m) {
    return m->stopped ? 0 : m->g->states[m->state].minlen;
}

/* the allowed set of the current state without the stops: the state's cached mask when the budget does not bind,
 * else a walk with the budget's limit into m->allowed */
static const uint64_t *state_mask(gl_grammar_matcher *m, int *count) {
    gl_grammar *g = m->g;
    if (g->mask_vocab != m->v) { /* masks of another vocabulary are of no use */
        for (int s = 0; s < g->n_states; s++) free(g->states[s].mask), g->states[s].mask = NULL;
        g->mask_vocab = m->v;
    }
    int limit = m->budget > 0 ? m->budget - 1 : INF;
    gstate *s = &g->states[m->state];
    if (!s->mask) {
        uint64_t *mask = malloc((size_t)(m->words ? m->words : 1) * sizeof *mask);
        int maxml = 0, n = walk_trie(g, m->v, m->state, INF, mask, &maxml);
        s = &g->states[m->state]; /* the walk may have moved the states */
        s->mask = mask, s->mask_count = n, s->mask_maxml = maxml;
        g->stats.masks_computed++;
    } else g->stats.masks_reused++;
    if (limit >= s->mask_maxml) {
        *count = s->mask_count;
        return s->mask;
    }
    int maxml = 0;
    *count = walk_trie(g, m->v, m->state, limit, m->allowed, &maxml);
    g->stats.masks_budgeted++;
    s = &g->states[m->state]; /* the walk may have moved the states */
    if (*count == 0) { /* the bound counts a byte a token; when no token fits it, tokens of several bytes may still
                          finish in time: fall back to every valid token rather than stop with nothing */
        *count = s->mask_count;
        return s->mask;
    }
    return m->allowed;
}

const uint64_t *gl_matcher_allowed(gl_grammar_matcher *m, int *n_allowed) {
    int count = 0;
    if (gl_matcher_done(m) && m->stopped) {
        memset(m->allowed, 0, (size_t)m->words * sizeof *m->allowed);
        *n_allowed = 0;
        return m->allowed;
    }
    const uint64_t *mask = state_mask(m, &count);
    if (m->g->overflow) { /* the walk stopped part way (too many stacks): nothing is allowed */
        memset(m->allowed, 0, (size_t)m->words * sizeof *m->allowed);
        *n_allowed = 0;
        return m->allowed;
    }
    if (mask != m->allowed) memcpy(m->allowed, mask, (size_t)m->words * sizeof *mask);
    if (m->g->states[m->state].accepting)
        for (int k = 0; k < m->n_stops; k++) {
            int32_t t = m->stops[k];
            if (t >= 0 && t < m->v->n_tokens && !((m->allowed[t >> 6] >> (t & 63)) & 1))
                m->allowed[t >> 6] |= 1ull << (t & 63), count++;
        }
    *n_allowed = count;
    return m->allowed;
}

int gl_matcher_mask_logits(gl_grammar_matcher *m, float *logits, int V) {
    int count = 0;
    const uint64_t *allowed = gl_matcher_allowed(m, &count);
    int n = V < m->v->n_tokens ? V : m->v->n_tokens;
    for (int i = 0; i < n; i++)
        if (!((allowed[i >> 6] >> (i & 63)) & 1)) logits[i] = -INFINITY;
    for (int i = n; i < V; i++) logits[i] = -INFINITY;
    return count;
}

bool gl_matcher_accept_bytes(gl_grammar_matcher *m, const unsigned char *s, size_t n) {
    if (m->stopped) return n == 0;
    int32_t st = m->state;
    for (size_t i = 0; i < n; i++)
        if (!(st = step(m->g, st, s[i]))) return false;
    m->state = st;
    return true;
}

bool gl_matcher_accept_token(gl_grammar_matcher *m, int32_t tok) {
    if (tok < 0 || tok >= m->v->n_tokens || m->stopped) return false;
    if (is_stop(m, tok)) {
        if (!m->g->states[m->state].accepting) return false;
        m->stopped = true;
    } else {
        size_t len = m->v->tok_len[tok];
        if (!len || !gl_matcher_accept_bytes(m, m->v->bytes + m->v->tok_off[tok], len)) return false;
    }
    if (m->budget > 0) m->budget--;
    return true;
}
