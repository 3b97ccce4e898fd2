/* Reranking with a small language model (no cross-encoder weights are installable here), two ways:
 *
 * Query likelihood (the default; UPR, Sachan et al. 2022): the mean log-probability of the question's tokens after
 * "Passage: {passage}\nPlease write a question that this passage answers.\nQuestion:" -- how well the passage
 * predicts the question. No chat template, and nothing shared between passages.
 *
 * Yes/no: SmolLM2-135M-Instruct (or any ChatML model of models/llama.h) is asked, in its chat template,
 *   system  You judge whether a passage of documentation answers a question.
 *   user    Question: {question}\n\nPassage: {passage}\n\nDoes the passage answer the question? Answer yes or no.
 * and the score is log P(yes) - log P(no) of its first answer token ("yes"/"Yes" against "no"/"No", each side's
 * probabilities summed). The question comes before the passage so the candidates of one question share the prompt's
 * start: the KV cache keeps it and only each passage and the closing words are fed. Passages are cut to
 * max_passage_words words. */
#ifndef GRADLAB_RERANK_H
#define GRADLAB_RERANK_H

#include "llama.h"

typedef struct {
    llama model;
    llama_cache cache;
    int32_t yes[2], no[2];
    int max_passage_words; /* default 120 */
    int32_t *ids;
    size_t cap;
    long tokens_fed; /* prompt tokens run through the model so far (the cost) */
    bool yes_no;     /* score by the yes/no question instead of the query likelihood */
} reranker;

/* path: a GGUF with a ChatML template and a tokenizer (data/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf); false with a
 * message */
bool reranker_load(reranker *r, const char *path, char *err, size_t err_len);
void reranker_free(reranker *r);
/* log P(yes) - log P(no) of the first answer token after a system and a user message in the chat template (the
 * cached prefix the prompt shares with the last one is kept); the user text must fit the cache */
double reranker_yes_no(reranker *r, const char *system, const char *user);
/* log P(yes) - log P(no) for the passage answering the question */
double reranker_score(reranker *r, const char *question, const char *passage);
/* the mean log-probability of the question given the passage */
double reranker_query_likelihood(reranker *r, const char *question, const char *passage);
/* the score r->yes_no selects: higher is more relevant */
double reranker_relevance(reranker *r, const char *question, const char *passage);

#endif
