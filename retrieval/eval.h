/* Retrieval metrics over ranked pages, with binary relevance (a page answers the question or not):
 *   recall@k  the share of the question's relevant pages among the first k
 *   MRR@k     1 / the rank of the first relevant page within k (0 if none)
 *   nDCG@k    DCG = sum over ranks r <= k of rel_r / log2(r + 1), divided by the ideal DCG (all relevant first)
 * A ranking lists each page once. */
#ifndef GRADLAB_EVAL_H
#define GRADLAB_EVAL_H

double eval_recall(const int *ranked, int n_ranked, const int *relevant, int n_relevant, int k);
double eval_mrr(const int *ranked, int n_ranked, const int *relevant, int n_relevant, int k);
double eval_ndcg(const int *ranked, int n_ranked, const int *relevant, int n_relevant, int k);
/* the 1-based rank of the first relevant page, 0 if none is ranked */
int eval_first_rank(const int *ranked, int n_ranked, const int *relevant, int n_relevant);

#endif
