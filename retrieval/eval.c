#include "eval.h"

#include "json.h"
#include "plot.h"
#include "io.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

static int is_relevant(int page, const int *relevant, int n) {
    for (int i = 0; i < n; i++)
        if (relevant[i] == page) return 1;
    return 0;
}

double eval_recall(const int *ranked, int n_ranked, const int *relevant, int n_relevant, int k) {
    /* BEGIN SOLUTION lab09: recall@k: the share of the relevant pages among the first k ranked */
    if (n_relevant == 0) return 0;
    int found = 0;
    for (int r = 0; r < n_ranked && r < k; r++) found += is_relevant(ranked[r], relevant, n_relevant);
    return (double)found / n_relevant;
    /* END SOLUTION */
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
    /* BEGIN SOLUTION lab09: nDCG@k with binary relevance: DCG = sum of 1 / log2(rank + 1) over relevant ranks <= k, over the ideal DCG */
    double dcg = 0, ideal = 0;
    for (int r = 0; r < n_ranked && r < k; r++)
        if (is_relevant(ranked[r], relevant, n_relevant)) dcg += 1 / log2(r + 2.0);
    for (int r = 0; r < n_relevant && r < k; r++) ideal += 1 / log2(r + 2.0);
    return ideal > 0 ? dcg / ideal : 0;
    /* END SOLUTION */
}

void eval_gold_free(eval_gold *g) {
    for (int i = 0; i < g->n; i++) free(g->items[i].id), free(g->items[i].question);
    free(g->items);
    g->items = NULL, g->n = 0;
}

static char *dup_string(const char *s) {
    size_t n = strlen(s) + 1;
    return memcpy(malloc(n), s, n);
}

bool eval_gold_load(const char *path, const store *st, eval_gold *g, char *err, size_t err_len) {
    memset(g, 0, sizeof *g);
    unsigned char *text;
    size_t len;
    if (!gl_read_whole_file(path, &text, &len, err, err_len)) return false;
    int cap = 0, line_no = 0;
    char perr[256];
    for (char *line = (char *)text, *end = (char *)text + len; line < end;) {
        char *nl = memchr(line, '\n', (size_t)(end - line));
        if (!nl) nl = end;
        line_no++;
        size_t ll = (size_t)(nl - line);
        char *s = line;
        line = nl + 1;
        while (ll && (s[ll - 1] == '\r' || s[ll - 1] == ' ')) ll--;
        if (!ll) continue;
        gl_json *q = gl_json_parse(s, ll, perr, sizeof perr);
        const gl_json *id = q ? gl_json_get(q, "id") : NULL, *question = q ? gl_json_get(q, "question") : NULL,
                      *rel = q ? gl_json_get(q, "relevant") : NULL;
        if (!q || !question || question->type != GL_JSON_STRING || !rel || rel->type != GL_JSON_ARRAY || !rel->count) {
            snprintf(err, err_len, "%s:%d: %s", path, line_no,
                     q ? "needs {\"question\": text, \"relevant\": [page paths]}" : perr);
            gl_json_free(q), free(text), eval_gold_free(g);
            return false;
        }
        eval_question e = {NULL, NULL, {0}, 0};
        for (size_t r = 0; r < rel->count && e.n_relevant < EVAL_MAX_RELEVANT; r++) {
            int page = -1;
            for (int p = 0; rel->items[r].type == GL_JSON_STRING && p < st->n_pages; p++)
                if (!strcmp(st->pages[p].path, rel->items[r].string)) page = p;
            if (page < 0) {
                snprintf(err, err_len, "%s:%d: relevant page '%s' is not in the index", path, line_no,
                         rel->items[r].type == GL_JSON_STRING ? rel->items[r].string : "(not a string)");
                gl_json_free(q), free(text), eval_gold_free(g);
                return false;
            }
            e.relevant[e.n_relevant++] = page;
        }
        char num[16];
        snprintf(num, sizeof num, "q%d", g->n + 1);
        e.id = dup_string(id && id->type == GL_JSON_STRING ? id->string : num);
        e.question = dup_string(question->string);
        if (g->n == cap) cap = cap ? 2 * cap : 64, g->items = realloc(g->items, (size_t)cap * sizeof *g->items);
        g->items[g->n++] = e;
        gl_json_free(q);
    }
    free(text);
    if (!g->n) return snprintf(err, err_len, "%s has no questions", path), false;
    return true;
}

static double seconds(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return tv.tv_sec + tv.tv_usec * 1e-6;
}

void eval_method(search_index *ix, const char *method, const eval_gold *g, eval_result *r) {
    static const int ks[3] = {1, 5, 10};
    memset(r, 0, sizeof *r);
    int np = ix->st.n_pages ? ix->st.n_pages : 1, trap = -1;
    for (int p = 0; p < ix->st.n_pages; p++)
        if (!strcmp(ix->st.pages[p].path, "release-notes.md")) trap = p;
    search_hit *hits = malloc((size_t)np * sizeof *hits);
    int *ranked = malloc((size_t)np * sizeof *ranked);
    r->n = g->n;
    r->first_rank = calloc((size_t)g->n, sizeof *r->first_rank);
    r->top = malloc((size_t)g->n * sizeof *r->top);
    double total = 0;
    for (int i = 0; i < g->n; i++) {
        const eval_question *q = &g->items[i];
        double t0 = seconds();
        int n = search_rank_pages(ix, method, q->question, hits);
        total += seconds() - t0;
        for (int j = 0; j < n; j++) ranked[j] = hits[j].page;
        for (int k = 0; k < 3; k++) r->recall[k] += eval_recall(ranked, n, q->relevant, q->n_relevant, ks[k]);
        r->mrr += eval_mrr(ranked, n, q->relevant, q->n_relevant, 10);
        r->ndcg += eval_ndcg(ranked, n, q->relevant, q->n_relevant, 10);
        r->first_rank[i] = eval_first_rank(ranked, n, q->relevant, q->n_relevant);
        for (int j = 0; j < EVAL_TOP; j++) r->top[i][j] = j < n ? ranked[j] : -1;
        for (int j = 0; j < n && j < 5; j++) r->trap_top5 += ranked[j] == trap;
    }
    for (int k = 0; k < 3; k++) r->recall[k] /= g->n;
    r->mrr /= g->n, r->ndcg /= g->n, r->ms = total * 1e3 / g->n;
    free(hits), free(ranked);
}

void eval_result_free(eval_result *r) {
    free(r->first_rank), free(r->top);
    r->first_rank = NULL, r->top = NULL;
}

void eval_result_json(gl_json_writer *w, const eval_result *r) {
    gl_jw_number(w, "recall_at_1", r->recall[0]);
    gl_jw_number(w, "recall_at_5", r->recall[1]);
    gl_jw_number(w, "recall_at_10", r->recall[2]);
    gl_jw_number(w, "mrr_at_10", r->mrr);
    gl_jw_number(w, "ndcg_at_10", r->ndcg);
    gl_jw_int(w, "release_notes_in_top5", r->trap_top5);
    gl_jw_number(w, "ms_per_query", r->ms);
}

bool eval_plot_bars(const char *path, const char *title, const char *const *names, const eval_result *rs, int n,
                    char *err, int err_len) {
    static const char *metrics[5] = {"Recall@1", "Recall@5", "Recall@10", "MRR@10", "nDCG@10"};
    float *values = malloc((size_t)(n > 0 ? n : 1) * 5 * sizeof *values);
    gl_series *series = malloc((size_t)(n > 0 ? n : 1) * sizeof *series);
    for (int m = 0; m < n; m++) {
        float v[5] = {(float)rs[m].recall[0], (float)rs[m].recall[1], (float)rs[m].recall[2], (float)rs[m].mrr,
                      (float)rs[m].ndcg};
        memcpy(values + 5 * m, v, sizeof v);
        series[m] = (gl_series){names[m], NULL, values + 5 * m, 5, false, NULL};
    }
    gl_chart chart = {.title = title, .ylabel = "score"};
    bool ok = gl_plot_bars(path, &chart, metrics, 5, series, n, err, err_len);
    free(values), free(series);
    return ok;
}
