/* The capstone's assistant (lab 12, `serve --assistant DB`): a question about the FastAPI docs in, an answer with
 * numbered citations out, built from the parts of weeks 8-11:
 *
 *   question --input guard (serve's --guard rules)--> refused with the rule that fired
 *            --search_docs: hybrid retrieval (BM25 + MiniLM, reciprocal rank fusion; rerank on request)
 *            --each ranked chunk through the injection rules: a chunk carrying planted instructions is passed over
 *            --read_section: the best chunk of each of the first 3 pages is read as a numbered source
 *            --extractive answer: the sources' sentences closest to the question (up to 3, within
 *              ASSISTANT_SENTENCE_MARGIN of the best), each cited [n]
 *            --optional: SmolLM2 writes the answer from the sources; kept only if answer_supported passes
 *            --output guard (secrets) --> the reply, its sources, and the tool steps taken
 *
 * A question that names a term no chunk of the docs holds and no English dictionary lists (wamerican's
 * /usr/share/dict/words: "mangum", "tracemalloc") is "not found in the docs", naming the term: retrieval would
 * otherwise return the nearest page about something else.
 * A question whose best chunk is far from it (cosine below ASSISTANT_MIN_COSINE) is not answered: "not found in the
 * docs" when it is about the domain (it names a web/API/Python word, or its cosine is above ASSISTANT_SCOPE_COSINE),
 * otherwise a polite refusal (out of scope). Without embeddings (a BM25-only index) a question without a domain word
 * is out of scope. Nothing is invented: every sentence of an extractive answer is a sentence
 * of the docs. One question at a time (the encoder and the generator are not shared between threads). */
#ifndef GRADLAB_ASSISTANT_H
#define GRADLAB_ASSISTANT_H

#include <pthread.h>
#include <stdbool.h>

#include "answer.h"
#include "guard.h"
#include "llama.h"
#include "search.h"
#include "strbuf.h"

/* chosen on the dev half of eval/assistant_questions.jsonl (docs/assistant.md) */
#define ASSISTANT_MIN_COSINE 0.35
#define ASSISTANT_SCOPE_COSINE 0.30
/* an answer's sentences are those within this cosine of its best one (up to 3): chosen on the even-numbered gold
 * questions, where it raised the share of citations to a relevant page from 0.42 to 0.51 and dropped none of them */
#define ASSISTANT_SENTENCE_MARGIN 0.15

typedef enum { ASSIST_ANSWER, ASSIST_NOT_FOUND, ASSIST_OUT_OF_SCOPE, ASSIST_BLOCKED_INPUT, ASSIST_BLOCKED_OUTPUT } assist_kind;
extern const char *const ASSIST_KIND_NAMES[5]; /* "answer", "not_found", "out_of_scope", "blocked_input", ... */

typedef struct {
    search_index ix;
    const char *method;   /* "hybrid" (with embeddings) or "bm25"; "rerank" on request */
    const guard_rules *guard;
    bool have_generator;  /* --assistant-generate: SmolLM2 writes, answer_supported keeps or refuses */
    llama gen;
    llama_cache gen_cache;
    gl_context *ctx;      /* the assistant's own engine context (serve's engine thread has its own) */
    char **words;         /* the English dictionary, sorted (NULL when it is missing: the unknown-term check is off) */
    int n_words;
    pthread_mutex_t lock;
} assistant;

typedef struct {
    assist_kind kind;
    char *text;            /* what the user reads (malloc'd) */
    answer sources;        /* the numbered sources (sources.n_sources 0 unless kind is ASSIST_ANSWER) */
    double best;           /* the best chunk's cosine (or BM25 score without embeddings) */
    bool generated;        /* text is the model's, found supported */
    bool supported;        /* guard_citations: every citation names a source and the cited chunks hold the words */
    char note[320];        /* why: the guard's reason, the validator's, the scope decision */
    gl_strbuf tools;       /* the tool steps as a JSON array: [{"tool", "arguments", "result"}] */
    int generated_tokens;  /* tokens the generator wrote (0 without it) */
    double seconds;
} assist_reply;

/* Opens the index at db (with the encoder in model_dir, default data/minilm, when the index has embeddings), the
 * reranker when method is "rerank", and the generator (a ChatML GGUF) when generator_gguf is not NULL. guard may
 * be NULL (no checks). false with a message. */
bool assistant_open(assistant *a, const char *db, const char *method, const char *model_dir,
                    const char *generator_gguf, const guard_rules *guard, char *err, size_t err_len);
void assistant_close(assistant *a);

/* One question, answered; thread-safe (one at a time). */
void assistant_ask(assistant *a, const char *question, assist_reply *r);
void assist_reply_free(assist_reply *r);

/* The first term of the question (letters only, 3 or more) that no chunk holds and the dictionary does not list,
 * lowercased into term; false if there is none (or no dictionary). */
bool assistant_unknown_term(const assistant *a, const char *question, char *term, size_t len);
/* the dictionary used by assistant_open */
#define ASSISTANT_WORDS "/usr/share/dict/words"

/* the question is about the domain: it names a word of the FastAPI/web/Python vocabulary (case-insensitive, whole
 * words) */
bool assistant_in_domain(const char *question);

/* The citation link of source n (1-based) of a reply: /docs/PAGE#chunk-ID (written into out). */
void assistant_source_url(const assistant *a, const answer *s, int n, char *out, size_t len);
/* The HTML page for a docs page path (its chunks as sections with id="chunk-ID"), or false if the index has no
 * such page. */
bool assistant_render_page(const assistant *a, const char *path, gl_strbuf *html);
/* The reply's citations as a JSON array: [{"n", "page", "heading", "url"}]; the retrieval's ranking as an array of
 * page paths */
void assistant_citations_json(const assistant *a, const assist_reply *r, gl_strbuf *b);
void assistant_ranking_json(const assistant *a, const assist_reply *r, gl_strbuf *b);

#endif
