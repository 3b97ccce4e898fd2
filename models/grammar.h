/* Grammar-constrained decoding: a small EBNF (docs/grammar.md) compiled to rules over bytes, and a matcher that
 * gives, at each step of a generation, the set of vocabulary tokens that keep the output a prefix of a sentence of
 * the grammar. Sampling applies that set to the logits before the softmax (sample.h: gl_sampling.grammar), so the
 * output always parses.
 *
 * How it works (the idea of llama.cpp's grammars, made cheap to repeat):
 *   - A rule is alternatives of sequences of elements: a byte set or a reference to a rule. Repetition and groups
 *     become rules of their own; a character class with non-ASCII members becomes alternatives of UTF-8 byte
 *     sequences, so the matcher works on bytes and a token (a byte string) is checked byte by byte.
 *   - The parse state is a set of stacks of "what must come next"; stacks are hash-consed (a stack is a node =
 *     (element, rest of the stack)), so equal stacks are one id, and a whole state (a sorted set of stack ids) is
 *     interned too. Each state keeps its 256 byte transitions once computed, so a byte step is a table lookup.
 *   - The vocabulary is a trie of the tokens' bytes; the allowed set of a state is one walk over the trie in which
 *     every edge is one transition, cut where the state dies. The set is cached per state: inside a JSON string the
 *     state after each character is the same state, so most steps reuse a mask.
 *   - A token budget (the tokens left before max_tokens): when the budget binds, only tokens after which the
 *     grammar can still be completed in the tokens left are allowed (every byte is a token of a byte-level
 *     vocabulary), so a constrained output that ends at max_tokens is still complete (when even the shortest
 *     completion has more bytes than tokens are left, every valid token is allowed: a best effort). 
 * One matcher belongs to one thread; the grammar's caches are shared by its matchers and are not locked, so all
 * matchers of one grammar must run on one thread (the server's engine thread does). */
#ifndef GRADLAB_GRAMMAR_H
#define GRADLAB_GRAMMAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct gl_grammar gl_grammar;

/* Parses grammar text whose start rule is "root"; NULL with a message naming the line (syntax, an undefined rule,
 * left recursion, a grammar that derives no finite text). */
gl_grammar *gl_grammar_parse(const char *text, char *err, size_t err_len);
void gl_grammar_free(gl_grammar *g);
/* the rules as compiled (anonymous rules for groups and repetitions included), for the lab and for debugging */
void gl_grammar_print(const gl_grammar *g, FILE *f);
int gl_grammar_rule_count(const gl_grammar *g);
/* why the grammar stopped accepting anything (too many parse stacks), or NULL */
const char *gl_grammar_error(const gl_grammar *g);

/* The tokens of a vocabulary as byte strings, in a trie. A token with no bytes (a control token such as
 * <|im_end|>: pass len 0) is never allowed by a grammar; stop tokens are handled by the matcher. */
typedef struct gl_vocab_trie gl_vocab_trie;
gl_vocab_trie *gl_vocab_trie_new(int n_tokens, const unsigned char *const *bytes, const size_t *lens);
void gl_vocab_trie_free(gl_vocab_trie *t);
/* the trie of a tokenizer (a BPE's special tokens are left out) or of a character vocabulary */
struct gl_bpe;
gl_vocab_trie *gl_vocab_trie_from_bpe(const struct gl_bpe *bpe);
struct gl_codec;
gl_vocab_trie *gl_vocab_trie_from_codec(const struct gl_codec *codec);
int gl_vocab_trie_tokens(const gl_vocab_trie *t);
int gl_vocab_trie_nodes(const gl_vocab_trie *t);

typedef struct gl_grammar_matcher gl_grammar_matcher;
/* A matcher at the start of the grammar. stops: tokens that end a generation (end of turn): allowed once the
 * grammar is complete. budget: tokens the generation may still take (<= 0: no limit). */
gl_grammar_matcher *gl_matcher_new(gl_grammar *g, const gl_vocab_trie *v, const int32_t *stops, int n_stops,
                                   int budget);
void gl_matcher_free(gl_grammar_matcher *m);
void gl_matcher_reset(gl_grammar_matcher *m, int budget);
gl_grammar *gl_matcher_grammar(const gl_grammar_matcher *m);

/* Applies the allowed set to logits[0..V): every other token's logit becomes -infinity (tokens at or past the
 * vocabulary's size are never allowed). Returns the number of tokens allowed; 0 means the generation must end:
 * gl_matcher_done says whether because the grammar is complete or because nothing can continue it (stuck). */
int gl_matcher_mask_logits(gl_grammar_matcher *m, float *logits, int V);
/* The allowed set as a bitset over the vocabulary (bit i of word i / 64), valid until the next call. */
const uint64_t *gl_matcher_allowed(gl_grammar_matcher *m, int *n_allowed);
/* Advances by a token (its bytes, or a stop token when complete); false (and no change) if it is not allowed. */
bool gl_matcher_accept_token(gl_grammar_matcher *m, int32_t token);
/* Advances by raw bytes (checking a text against the grammar); false at the first byte that cannot follow. */
bool gl_matcher_accept_bytes(gl_grammar_matcher *m, const unsigned char *s, size_t n);
bool gl_matcher_complete(const gl_grammar_matcher *m); /* the bytes so far are a whole sentence of the grammar */
bool gl_matcher_done(const gl_grammar_matcher *m);     /* complete and nothing more can follow, or a stop accepted */
/* bytes still needed, at least, to complete the grammar from here */
int gl_matcher_min_remaining(const gl_grammar_matcher *m);

/* cache statistics since the grammar was made: states interned, masks computed by a trie walk, masks reused */
typedef struct {
    long long states, stack_nodes, masks_computed, masks_reused, masks_budgeted;
} gl_grammar_stats;
gl_grammar_stats gl_grammar_get_stats(const gl_grammar *g);

#endif
