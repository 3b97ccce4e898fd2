/* Retrieval metrics over ranked pages, with binary relevance (a page answers the question or not):
 *   recall@k  the share of the question's relevant pages among the first k
 *   MRR@k     1 / the rank of the first relevant page within k (0 if none)
 *   nDCG@k    DCG = sum over ranks r <= k of rel_r / log2(r + 1), divided by the ideal DCG (all relevant first)
 * A ranking lists each page once. */
#ifndef GRADLAB_EVAL_H
#define GRADLAB_EVAL_H

#include "json.h"
#include "search.h"

double eval_recall(const int *ranked, int n_ranked, const int *relevant, int n_relevant, int k);
double eval_mrr(const int *ranked, int n_ranked, const int *relevant, int n_relevant, int k);
double eval_ndcg(const int *ranked, int n_ranked, const int *relevant, int n_relevant, int k);
/* the 1-based rank of the first relevant page, 0 if none is ranked */
int eval_first_rank(const int *ranked, int n_ranked, const int *relevant, int n_relevant);


/* ---- a gold set and a method evaluated on it ---- */
enum { EVAL_MAX_RELEVANT = 16, EVAL_TOP = 10 };

typedef struct {
    char *id, *question;
    int relevant[EVAL_MAX_RELEVANT], n_relevant; /* page indexes of the store */
} eval_question;

typedef struct {
    eval_question *items;
    int n;
} eval_gold;

/* JSON lines {"id": ..., "question": text, "relevant": [page paths]} (blank lines skipped); every relevant page must
 * be one of st's. false with a message naming the file and line. */
bool eval_gold_load(const char *path, const store *st, eval_gold *g, char *err, size_t err_len);
void eval_gold_free(eval_gold *g);

typedef struct {
    int n;                          /* questions */
    double recall[3], mrr, ndcg;    /* means: Recall@1, @5, @10, MRR@10, nDCG@10 */
    double ms;                      /* mean time per question */
    int trap_top5;                  /* questions with the trap page (release-notes.md, when the index has it) in the top 5 */
    int *first_rank;                /* per question: the rank of its first relevant page, 0 if none */
    int (*top)[EVAL_TOP];           /* per question: the first pages ranked (-1 past the end) */
} eval_result;

/* every question of g ranked by method (search_rank_pages) and scored */
void eval_method(search_index *ix, const char *method, const eval_gold *g, eval_result *r);
void eval_result_free(eval_result *r);
/* r's means (recall_at_1/5/10, mrr_at_10, ndcg_at_10), release_notes_in_top5 and ms_per_query, as members of the
 * object w has open */
void eval_result_json(gl_json_writer *w, const eval_result *r);
/* grouped bars (core/plot.h): one group per metric (Recall@1, @5, @10, MRR@10, nDCG@10), one bar per method */
bool eval_plot_bars(const char *path, const char *title, const char *const *names, const eval_result *rs, int n,
                    char *err, int err_len);

#endif
