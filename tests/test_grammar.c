/* Grammar-constrained decoding: the EBNF parser's errors, matching bytes, the trie walk's mask against a check of
 * every token one by one, and JSON Schema outputs sampled at temperature 1 from random logits over GPT-2's
 * vocabulary: every one must parse and validate. */
#include "testutil.h"

#include "bpe.h"
#include "grammar.h"
#include "json.h"
#include "rng.h"
#include "sample.h"
#include "schema.h"

static gl_bpe *gpt2(void) {
    char err[256];
    gl_bpe *t = gl_bpe_load_gpt2("tokenizer/gpt2/encoder.json", "tokenizer/gpt2/vocab.bpe", err, sizeof err);
    cr_assert(t, "%s", err);
    return t;
}

static void parse_fails(const char *text, const char *expect) {
    char err[512] = "";
    gl_grammar *g = gl_grammar_parse(text, err, sizeof err);
    cr_assert_null(g, "parsed: %s", text);
    cr_assert(strstr(err, expect), "message '%s' does not say '%s'", err, expect);
}

Test(grammar, errors_name_the_problem) {
    parse_fails("root ::= a\n", "rule 'a' is used but never defined");
    parse_fails("start ::= \"x\"\n", "no rule named 'root'");
    parse_fails("root ::= root \"x\" | \"y\"\n", "left-recursive");
    parse_fails("root ::= a\na ::= b? a \"x\" | \"y\"\nb ::= \"z\"\n", "left-recursive");
    parse_fails("root ::= (\"a\"?)*\n", "left-recursive"); /* a repetition of something that may be empty */
    parse_fails("root ::= \"x\" root\n", "cannot be satisfied");
    parse_fails("root ::= \"x\n", "past the end of the line");
    parse_fails("root ::= [^é]\n", "not supported");
    parse_fails("root ::= \"a\"{3,2}\n", "below the minimum");
    parse_fails("root ::= \"a\"\nroot ::= \"b\"\n", "defined twice");
    parse_fails("root ::= \"a\" )\n", "unexpected ')'");
    parse_fails("root ::= \"\\q\"\n", "unknown escape");
}

static bool matches(gl_grammar *g, const char *s) {
    gl_vocab_trie *v = gl_vocab_trie_new(0, NULL, NULL);
    gl_grammar_matcher *m = gl_matcher_new(g, v, NULL, 0, 0);
    bool ok = gl_matcher_accept_bytes(m, (const unsigned char *)s, strlen(s)) && gl_matcher_complete(m);
    gl_matcher_free(m);
    gl_vocab_trie_free(v);
    return ok;
}

Test(grammar, matches_the_language) {
    char err[256];
    gl_grammar *g = gl_grammar_parse("# a list of numbers\n"
                                     "root ::= \"[\" (num (\", \" num)*)? \"]\"\n"
                                     "num  ::= \"-\"? [1-9] [0-9]{0,2} | \"0\"\n",
                                     err, sizeof err);
    cr_assert(g, "%s", err);
    cr_assert(matches(g, "[]"));
    cr_assert(matches(g, "[0]"));
    cr_assert(matches(g, "[12, -345, 0]"));
    cr_assert(!matches(g, "[1234]"));   /* four digits */
    cr_assert(!matches(g, "[01]"));     /* a leading zero */
    cr_assert(!matches(g, "[1,2]"));    /* the separator is ", " */
    cr_assert(!matches(g, "[1, 2"));    /* incomplete */
    gl_grammar_free(g);
    /* non-ASCII: a class of listed characters, '.', and a negated class that keeps every character above ASCII */
    g = gl_grammar_parse("root ::= [éü]+ . [^a-z]\n", err, sizeof err);
    cr_assert(g, "%s", err);
    cr_assert(matches(g, "éüé日A"));
    cr_assert(matches(g, "üx語"));
    cr_assert(!matches(g, "éxa"));
    cr_assert(!matches(g, "ä日x"));
    const char bad[] = {(char)0xC3, (char)0xA9, 'x', (char)0xE6, (char)0x97, 0}; /* a character cut short */
    cr_assert(!matches(g, bad));
    gl_grammar_free(g);
}

/* the mask of the trie walk equals, token by token, whether the matcher takes that token */
static void check_mask(gl_grammar *g, gl_vocab_trie *v, const char *prefix, int budget) {
    gl_grammar_matcher *m = gl_matcher_new(g, v, NULL, 0, budget);
    cr_assert(gl_matcher_accept_bytes(m, (const unsigned char *)prefix, strlen(prefix)), "prefix %s", prefix);
    int n = 0;
    const uint64_t *mask = gl_matcher_allowed(m, &n);
    int words = (gl_vocab_trie_tokens(v) + 63) / 64;
    uint64_t *copy = malloc((size_t)words * sizeof *copy);
    memcpy(copy, mask, (size_t)words * sizeof *copy);
    gl_grammar_matcher *probe = gl_matcher_new(g, v, NULL, 0, budget);
    int counted = 0;
    for (int t = 0; t < gl_vocab_trie_tokens(v); t++) {
        gl_matcher_reset(probe, budget);
        gl_matcher_accept_bytes(probe, (const unsigned char *)prefix, strlen(prefix));
        bool ok = gl_matcher_accept_token(probe, t);
        if (ok && budget > 0) ok = gl_matcher_min_remaining(probe) <= budget - 1;
        bool in = (copy[t >> 6] >> (t & 63)) & 1;
        cr_assert_eq(in, ok, "token %d after '%s': mask %d, matcher %d", t, prefix, in, ok);
        counted += ok;
    }
    cr_assert_eq(n, counted);
    free(copy);
    gl_matcher_free(probe);
    gl_matcher_free(m);
}

Test(grammar, mask_equals_token_by_token_check) {
    gl_bpe *bpe = gpt2();
    gl_vocab_trie *v = gl_vocab_trie_from_bpe(bpe);
    char err[512];
    gl_json *schema = gl_json_parse("{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"},"
                                    "\"days\":{\"type\":\"integer\"},\"unit\":{\"enum\":[\"C\",\"F\"]}},"
                                    "\"required\":[\"city\"]}", 129, err, sizeof err);
    cr_assert(schema, "%s", err);
    gl_grammar *g = gl_schema_grammar(schema, err, sizeof err);
    cr_assert(g, "%s", err);
    const char *prefixes[] = {"", "{", "{\"ci", "{\"city\": \"Par", "{\"city\":\"Paris\"", "{\"city\":\"P\",\"days\":1",
                              "{\"city\":\"P\", \"unit\": \""};
    for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++) check_mask(g, v, prefixes[i], 0);
    /* with a budget of 3 tokens inside a string, only tokens that leave the closing "} reachable are allowed */
    check_mask(g, v, "{\"city\": \"Par", 3);
    check_mask(g, v, "{\"city\": \"Par", 2);
    gl_grammar_free(g);
    gl_json_free(schema);
    gl_vocab_trie_free(v);
    gl_bpe_free(bpe);
}

Test(grammar, unsupported_schemas_name_the_keyword) {
    const char *cases[][2] = {
        {"{\"type\":\"string\",\"pattern\":\"^a\"}", "keyword 'pattern' is not supported"},
        {"{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"number\",\"minimum\":0}}}", "/properties/n: keyword 'minimum'"},
        {"{\"$ref\":\"#/defs/x\"}", "keyword '$ref'"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{}},\"required\":[\"b\"]}", "'required' names 'b'"},
        {"{\"type\":\"decimal\"}", "unknown type 'decimal'"},
        {"{\"type\":\"array\",\"minItems\":3,\"maxItems\":2}", "maxItems 2 is below minItems 3"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char err[512] = "";
        gl_json *s = gl_json_parse(cases[i][0], strlen(cases[i][0]), err, sizeof err);
        cr_assert(s, "%s", err);
        gl_grammar *g = gl_schema_grammar(s, err, sizeof err);
        cr_assert_null(g, "accepted %s", cases[i][0]);
        cr_assert(strstr(err, cases[i][1]), "'%s' does not say '%s'", err, cases[i][1]);
        gl_json_free(s);
    }
}

Test(grammar, validator_knows_the_subset) {
    const char *schema = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"array\","
                         "\"items\":{\"type\":\"string\",\"maxLength\":2},\"maxItems\":2},\"c\":{\"anyOf\":[{\"const\":1},"
                         "{\"type\":\"boolean\"}]}},\"required\":[\"a\"],\"additionalProperties\":false}";
    const char *cases[][2] = {
        {"{\"a\":3}", NULL},
        {"{\"a\":3,\"b\":[\"xy\",\"é\"],\"c\":true}", NULL},
        {"{\"a\":3,\"c\":1}", NULL},
        {"{\"a\":3.5}", "at /a: wrong type"},
        {"{\"b\":[]}", "'a' is missing"},
        {"{\"a\":1,\"b\":[\"xyz\"]}", "at /b/0: longer than maxLength"},
        {"{\"a\":1,\"b\":[\"x\",\"y\",\"z\"]}", "more items than maxItems"},
        {"{\"a\":1,\"c\":2}", "matches no alternative"},
        {"{\"a\":1,\"d\":2}", "'d' is not allowed"},
    };
    char err[512];
    gl_json *s = gl_json_parse(schema, strlen(schema), err, sizeof err);
    cr_assert(s, "%s", err);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        gl_json *v = gl_json_parse(cases[i][0], strlen(cases[i][0]), err, sizeof err);
        cr_assert(v, "%s", err);
        err[0] = 0;
        bool ok = gl_schema_validate(s, v, err, sizeof err);
        if (!cases[i][1]) cr_assert(ok, "%s: %s", cases[i][0], err);
        else cr_assert(!ok && strstr(err, cases[i][1]), "%s: '%s' (expected '%s')", cases[i][0], err, cases[i][1]);
        gl_json_free(v);
    }
    gl_json_free(s);
}

/* Sampling at temperature 1 from random logits (each token's logit drawn anew each step): the constrained output
 * parses and validates every time, also when the token budget ends it early. (make bench-tools samples thousands;
 * the test keeps to hundreds: sampling over GPT-2's 50,257 tokens takes about half a millisecond a step.) */
static void sample_many(const char *schema_text, int n_samples, int budget, uint64_t seed) {
    gl_bpe *bpe = gpt2();
    gl_vocab_trie *v = gl_vocab_trie_from_bpe(bpe);
    int V = gl_bpe_vocab_size(bpe);
    char err[512];
    gl_json *schema = gl_json_parse(schema_text, strlen(schema_text), err, sizeof err);
    cr_assert(schema, "%s", err);
    gl_grammar *g = gl_schema_grammar(schema, err, sizeof err);
    cr_assert(g, "%s", err);
    int32_t eot = 50256;
    gl_grammar_matcher *m = gl_matcher_new(g, v, &eot, 1, budget);
    gl_sampling s = {.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .grammar = m};
    gl_rng rng;
    gl_rng_seed(&rng, seed);
    float *logits = malloc((size_t)V * sizeof *logits), *scratch = malloc((size_t)V * 2 * sizeof *scratch);
    float *noise = malloc((size_t)V * 4 * sizeof *noise); /* each step's logits: a window of it at a random offset */
    for (int i = 0; i < 4 * V; i++) noise[i] = 4.0f * gl_rng_uniform(&rng);
    int32_t *ids = malloc((size_t)budget * sizeof *ids);
    for (int k = 0; k < n_samples; k++) {
        gl_matcher_reset(m, budget);
        int n = 0;
        while (n < budget) {
            memcpy(logits, noise + (size_t)(gl_rng_uniform(&rng) * 3 * V), (size_t)V * sizeof *logits);
            int32_t t = gl_sample_next(logits, V, &s, &rng, scratch);
            if (t < 0 || t == eot) break;
            ids[n++] = t;
        }
        cr_assert(gl_matcher_complete(m), "sample %d stopped incomplete", k);
        unsigned char *out;
        size_t len;
        cr_assert(gl_bpe_decode(bpe, ids, (size_t)n, &out, &len, err, sizeof err));
        gl_json *doc = gl_json_parse((const char *)out, len, err, sizeof err);
        cr_assert(doc, "sample %d does not parse (%s): %.*s", k, err, (int)len, out);
        cr_assert(gl_schema_validate(schema, doc, err, sizeof err), "sample %d: %s: %.*s", k, err, (int)len, out);
        gl_json_free(doc);
        free(out);
    }
    free(ids);
    free(noise);
    free(logits);
    free(scratch);
    gl_matcher_free(m);
    gl_grammar_free(g);
    gl_json_free(schema);
    gl_vocab_trie_free(v);
    gl_bpe_free(bpe);
}

static const char TOOL_SCHEMA[] =
    "{\"anyOf\":["
    "{\"type\":\"object\",\"properties\":{\"name\":{\"const\":\"calculator\"},\"arguments\":{\"type\":\"object\","
    "\"properties\":{\"expression\":{\"type\":\"string\",\"maxLength\":20}},\"required\":[\"expression\"]}},"
    "\"required\":[\"name\",\"arguments\"]},"
    "{\"type\":\"object\",\"properties\":{\"name\":{\"const\":\"weather\"},\"arguments\":{\"type\":\"object\","
    "\"properties\":{\"city\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":12},\"days\":{\"type\":\"integer\"},"
    "\"unit\":{\"enum\":[\"celsius\",\"fahrenheit\"]},\"hourly\":{\"type\":\"boolean\"},"
    "\"tags\":{\"type\":\"array\",\"items\":{\"type\":[\"string\",\"null\"],\"maxLength\":4},\"maxItems\":3},"
    "\"at\":{\"type\":\"object\",\"properties\":{\"lat\":{\"type\":\"number\"},\"lon\":{\"type\":\"number\"}},"
    "\"required\":[\"lat\",\"lon\"]}},"
    "\"required\":[\"city\"]}},\"required\":[\"name\",\"arguments\"]}]}";

/* under the sanitizers (about ten times slower) a quarter of the samples */
#if defined(__SANITIZE_ADDRESS__)
enum { SAMPLE_SHARE = 4 };
#else
enum { SAMPLE_SHARE = 1 };
#endif

Test(grammar, sampled_outputs_always_validate, .timeout = 300) { sample_many(TOOL_SCHEMA, 600 / SAMPLE_SHARE, 200, 7); }

/* a budget that binds: the shortest weather call is 43 bytes; random tokens average more than one byte, so most
 * samples run into the budget and must be steered to close in the tokens left */
Test(grammar, budget_keeps_outputs_complete, .timeout = 300) { sample_many(TOOL_SCHEMA, 200 / SAMPLE_SHARE, 50, 11); }

/* nested repetitions make the ways to be inside them grow exponentially: the matcher stops with a reason */
Test(grammar, too_ambiguous_grammar_stops_with_a_reason, .timeout = 60) {
    char err[256];
    gl_grammar *g = gl_grammar_parse("root ::= .++++++++++++++++++++++++++\n", err, sizeof err);
    cr_assert(g, "%s", err);
    gl_vocab_trie *v = gl_vocab_trie_new(0, NULL, NULL);
    gl_grammar_matcher *m = gl_matcher_new(g, v, NULL, 0, 0);
    bool ok = true;
    for (int i = 0; i < 64 && ok; i++) ok = gl_matcher_accept_bytes(m, (const unsigned char *)"a", 1);
    cr_assert(!ok && gl_grammar_error(g) && strstr(gl_grammar_error(g), "too ambiguous"));
    gl_matcher_free(m);
    gl_vocab_trie_free(v);
    gl_grammar_free(g);
}

Test(grammar, stuck_grammar_is_reported) {
    /* a vocabulary without the byte the grammar needs next: no token is allowed and the matcher is not done */
    const unsigned char *bytes[] = {(const unsigned char *)"a", (const unsigned char *)"b"};
    size_t lens[] = {1, 1};
    gl_vocab_trie *v = gl_vocab_trie_new(2, bytes, lens);
    char err[256];
    gl_grammar *g = gl_grammar_parse("root ::= \"a\" \"{\"\n", err, sizeof err);
    cr_assert(g, "%s", err);
    gl_grammar_matcher *m = gl_matcher_new(g, v, NULL, 0, 0);
    float logits[2] = {1, 2};
    cr_assert_eq(gl_matcher_mask_logits(m, logits, 2), 1);
    cr_assert(isinf(logits[1]) && logits[0] == 1);
    cr_assert(gl_matcher_accept_token(m, 0));
    cr_assert_eq(gl_matcher_mask_logits(m, logits, 2), 0);
    cr_assert(!gl_matcher_done(m));
    gl_matcher_free(m);
    gl_grammar_free(g);
    gl_vocab_trie_free(v);
}
