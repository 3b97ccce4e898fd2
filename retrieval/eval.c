#include "eval.h"

#include <math.h>

static int is_relevant(int page, const int *relevant, int n) {
    for (int i = 0; i < n; i++)
        if (relevant[i] == page) return 1;
    return 0;
}

double eval_recall(const int *ranked, int n_ranked, const int *relevant, int n_relevant, int k) {
    if (n_relevant == 0) return 0;
    int found = 0;
    for (int r = 0; r < n_ranked && r < k; r++) found += is_relevant(ranked[r], relevant, n_relevant);
    return (double)found / n_relevant;
}

int eval_first_rank(const int *ranked, int n_ranked, const int *relevant, int n_relevant) {
    for (int r = 0; r < n_ranked; r++)
        if (is_relevant(ranked[r], relevant, n_relevant)) return r + 1;
    return 0;
}

double eval_mrr(const int *ranked, int n_ranked, const int *relevant, int n_relevant, int k) {
    int r = eval_first_rank(ranked, n_ranked < k ? n_ranked : k, relevant, n_relevant);
    return r ? 1.0 / r : 0;
}

double eval_ndcg(const int *ranked, int n_ranked, const int *relevant, int n_relevant, int k) {
    double dcg = 0, ideal = 0;
    for (int r = 0; r < n_ranked && r < k; r++)
        if (is_relevant(ranked[r], relevant, n_relevant)) dcg += 1 / log2(r + 2.0);
    for (int r = 0; r < n_relevant && r < k; r++) ideal += 1 / log2(r + 2.0);
    return ideal > 0 ? dcg / ideal : 0;
}
