/* Lab 09 - retrieval over the FastAPI docs: chunks, BM25, a sentence encoder, HNSW, hybrid search, cited answers.
 *   1. three chunkings of the same pages, each ranked by BM25 on the 40 gold questions
 *   2. BM25 by hand on a toy corpus, against retrieval/bm25.c; then one question over the docs
 *   3. the encoder: WordPiece pieces, and cosines between sentences (bidirectional attention, mean pooling)
 *   4. exact search against HNSW: recall@10 and time per query over efSearch
 *   5. bm25, dense and hybrid on the gold questions, and how often release-notes.md lands in the top 5
 *   6. extractive answers with citations, and a question the docs do not answer
 * Reads the indexes `make lab09` builds with `rag index` (out/lab09/fastapi.db, window.db, sentence.db). Writes
 * out/lab09/methods.png, hnsw.png and results.json. `make lab09`, or:
 *   ./build/lab09 --docs DIR [--out out/lab09] [--model data/minilm] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "answer.h"
#include "cli.h"
#include "eval.h"
#include "io.h"
#include "json.h"
#include "plot.h"
#include "search.h"

/* 1 once an output (a plot, results.json) could not be written: reported at once, exit status 1 at the end */
static int status;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void open_or_die(search_index *ix, const char *db, const char *method, const char *model) {
    char err[512];
    if (!search_open(ix, db, method, model, err, sizeof err)) {
        fprintf(stderr, "lab09: %s\n(make lab09 builds the indexes with rag index)\n", err);
        exit(1);
    }
}

/* whitespace-separated words */
static int count_words(const char *s) {
    int n = 0;
    for (const char *p = s; *p; p++) n += (p == s || p[-1] == ' ' || p[-1] == '\n') && *p != ' ' && *p != '\n';
    return n;
}

/* a rank for the table: the number, or '-' for none */
static const char *rank_text(int r, char *buf, size_t n) {
    snprintf(buf, n, r ? "%d" : "-", r);
    return buf;
}

/* ---- 1. chunking ---- */
static const char *strategies[3] = {"heading", "window", "sentence"};

static void show_page_chunks(const char *docs, const char *page) {
    char path[4096], err[256];
    snprintf(path, sizeof path, "%s/%s", docs, page);
    unsigned char *md;
    size_t len;
    if (!gl_read_whole_file(path, &md, &len, err, sizeof err)) {
        fprintf(stderr, "lab09: %s\n", err);
        return;
    }
    for (int s = 0; s < 3; s++) {
        chunk_config c = {(chunk_strategy)s, 200, 40};
        chunk_list l = {0};
        chunk_page(page, (const char *)md, len, c, &l);
        printf("  %-8s %2d chunks of %s:", strategies[s], l.n, page);
        for (int i = 0; i < l.n && i < 4; i++) printf(" %d", l.items[i].words);
        printf("%s words\n", l.n > 4 ? " ..." : "");
        printf("           the first: \"%.70s...\"\n", strchr(l.items[0].text, '\n') + 1);
        chunk_list_free(&l);
    }
    free(md);
}

/* ---- 2. BM25 by hand ---- */
enum { TOY_DOCS = 5 };
static const char *toy[TOY_DOCS] = {"the cat sat on the mat", "the dog chased the cat", "dogs and cats make good pets",
                                    "the red mat", "a bird sang"};

/* the formula of retrieval/bm25.h written out: idf from document counts, then the saturated, length-normalized tf */
static double bm25_by_hand(const char *query, int doc, double *idf_out) {
    const double k1 = 1.5, b = 0.75;
    char words[TOY_DOCS][8][16];
    int len[TOY_DOCS] = {0}, total = 0;
    for (int d = 0; d < TOY_DOCS; d++) {
        char tmp[64];
        snprintf(tmp, sizeof tmp, "%s", toy[d]);
        for (char *w = strtok(tmp, " "); w; w = strtok(NULL, " ")) snprintf(words[d][len[d]++], 16, "%s", w);
        total += len[d];
    }
    double avgdl = (double)total / TOY_DOCS, score = 0;
    /* the idf of every distinct word, for the floor: rank_bm25 gives words in more than half the documents
     * 0.25 x the mean idf instead of a negative one */
    double idf_sum = 0;
    int n_terms = 0;
    char seen[32][16];
    for (int d = 0; d < TOY_DOCS; d++)
        for (int i = 0; i < len[d]; i++) {
            int dup = 0;
            for (int j = 0; j < n_terms; j++) dup |= !strcmp(seen[j], words[d][i]);
            if (dup) continue;
            snprintf(seen[n_terms++], 16, "%s", words[d][i]);
            int n = 0;
            for (int e = 0; e < TOY_DOCS; e++)
                for (int k = 0; k < len[e]; k++)
                    if (!strcmp(words[e][k], words[d][i])) {
                        n++;
                        break;
                    }
            idf_sum += log(TOY_DOCS - n + 0.5) - log(n + 0.5);
        }
    double floor_idf = 0.25 * idf_sum / n_terms;
    char q[64];
    snprintf(q, sizeof q, "%s", query);
    int qi = 0;
    for (char *t = strtok(q, " "); t; t = strtok(NULL, " "), qi++) {
        int n = 0, tf = 0;
        for (int e = 0; e < TOY_DOCS; e++)
            for (int k = 0; k < len[e]; k++)
                if (!strcmp(words[e][k], t)) {
                    n++;
                    break;
                }
        for (int k = 0; k < len[doc]; k++) tf += !strcmp(words[doc][k], t);
        double idf = n ? log(TOY_DOCS - n + 0.5) - log(n + 0.5) : 0;
        if (idf < 0) idf = floor_idf;
        if (idf_out) idf_out[qi] = idf;
        score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len[doc] / avgdl));
    }
    return score;
}

/* ---- 4. exact against HNSW ---- */
typedef struct {
    int ef;
    double recall, us_per_query;
} ann_point;

int main(int argc, char **argv) {
    const char *docs = NULL, *out = "out/lab09", *model = "data/minilm";
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) fprintf(stderr, "lab09: %s needs a value\n", argv[i]), exit(2);
        if (!strcmp(argv[i], "--docs")) docs = argv[++i];
        else if (!strcmp(argv[i], "--out")) out = argv[++i];
        else if (!strcmp(argv[i], "--model")) model = argv[++i];
        else fprintf(stderr, "lab09: unknown flag '%s' (--docs DIR, --out DIR, --model DIR)\n", argv[i]), exit(2);
    }
    if (!docs) fprintf(stderr, "lab09: --docs DIR (the FastAPI docs with MANIFEST.tsv and gold.jsonl) is needed\n"), exit(2);
    char path[4096], err[512], gold_path[4096];
    snprintf(gold_path, sizeof gold_path, "%s/gold.jsonl", docs);
    double t_start = now();
    gl_json_writer js;
    snprintf(path, sizeof path, "%s/results.json", out);
    if (!gl_jw_open(&js, path)) fprintf(stderr, "lab09: cannot write %s\n", path), exit(1);
    gl_jw_object(&js, NULL);
    printf("Lab 09: retrieval over the FastAPI docs in %s\n", docs);

    /* ---- 1 ---- */
    printf("\n1. Chunking: the same pages cut three ways (cap 200 words, overlap 40), each ranked by BM25\n");
    show_page_chunks(docs, "tutorial/cors.md");
    printf("\n  %-8s %7s %10s %9s %7s %16s\n", "chunking", "chunks", "mean words", "Recall@5", "MRR@10", "release-notes@5");
    gl_jw_array(&js, "chunking");
    for (int s = 0; s < 3; s++) {
        snprintf(path, sizeof path, "%s/%s.db", out, s == 0 ? "fastapi" : strategies[s]);
        search_index ix;
        open_or_die(&ix, path, "bm25", NULL);
        eval_gold gold;
        if (!eval_gold_load(gold_path, &ix.st, &gold, err, sizeof err)) fprintf(stderr, "lab09: %s\n", err), exit(1);
        eval_result r;
        eval_method(&ix, "bm25", &gold, &r);
        double words = 0;
        for (int c = 0; c < ix.st.n_chunks; c++) words += count_words(ix.st.chunks[c].text);
        printf("  %-8s %7d %10.0f %9.3f %7.3f %16d\n", strategies[s], ix.st.n_chunks, words / ix.st.n_chunks,
               r.recall[1], r.mrr, r.trap_top5);
        gl_jw_object(&js, NULL);
        gl_jw_string(&js, "strategy", strategies[s]);
        gl_jw_int(&js, "chunks", ix.st.n_chunks);
        gl_jw_number(&js, "mean_words", words / ix.st.n_chunks);
        gl_jw_number(&js, "bm25_recall_at_5", r.recall[1]);
        gl_jw_number(&js, "bm25_mrr_at_10", r.mrr);
        gl_jw_int(&js, "release_notes_in_top5", r.trap_top5);
        gl_jw_end(&js);
        eval_result_free(&r), eval_gold_free(&gold);
        search_close(&ix);
    }
    gl_jw_end(&js);

    /* ---- 2 ---- */
    const char *toy_query = "the red cat";
    printf("\n2. BM25 by hand (k1 1.5, b 0.75) on %d toy documents, for the query \"%s\":\n", TOY_DOCS, toy_query);
    bm25 *toy_bm = bm25_build(toy, TOY_DOCS, BM25_DEFAULTS);
    double lib[TOY_DOCS], worst = 0, idf[3];
    bm25_scores(toy_bm, toy_query, lib);
    for (int d = 0; d < TOY_DOCS; d++) {
        double hand = bm25_by_hand(toy_query, d, idf);
        worst = fmax(worst, fabs(hand - lib[d]));
        printf("  %-30s by hand %.6f   retrieval/bm25.c %.6f\n", toy[d], hand, lib[d]);
    }
    printf("  idf: red %.4f = ln(5 - 1 + 0.5) - ln(1 + 0.5) (one document has it); cat %.4f (two); the %.4f: in three\n"
           "  of five its idf ln(2.5) - ln(3.5) is negative, and rank_bm25 puts 0.25 x the mean idf instead.\n"
           "  Largest difference between the hand formula and the library: %.1e\n", idf[1], idf[2], idf[0], worst);
    bm25_free(toy_bm);
    gl_jw_number(&js, "toy_bm25_max_difference", worst);

    /* the rest runs on the embedded heading index */
    snprintf(path, sizeof path, "%s/fastapi.db", out);
    search_index ix;
    open_or_die(&ix, path, "hybrid", model);
    eval_gold gold;
    if (!eval_gold_load(gold_path, &ix.st, &gold, err, sizeof err)) fprintf(stderr, "lab09: %s\n", err), exit(1);
    {
        const char *q = "How do I allow cross-origin requests from my frontend?";
        search_hit *hits = malloc((size_t)ix.st.n_pages * sizeof *hits);
        int n = search_rank_pages(&ix, "bm25", q, hits);
        printf("  over the docs' %d chunks, \"%s\":\n", ix.st.n_chunks, q);
        for (int i = 0; i < n && i < 3; i++)
            printf("    %d. %-36s %.3f  %s\n", i + 1, ix.st.pages[hits[i].page].path, hits[i].score,
                   ix.st.chunks[hits[i].chunk].heading);
        free(hits);
    }

    /* ---- 3 ---- */
    printf("\n3. The encoder (all-MiniLM-L6-v2: 6 layers, 384 dims). WordPiece pieces:\n");
    {
        const char *s = "Use CORSMiddleware to allow cross-origin requests.";
        int32_t ids[64];
        int n = gl_wordpiece_encode(ix.enc.tok, s, ids, 64, NULL);
        printf("  \"%s\" ->", s);
        for (int i = 0; i < n; i++) printf(" %s", gl_wordpiece_piece(ix.enc.tok, ids[i]));
        printf("\n");
    }
    static const char *sentences[6] = {"How do I allow requests from another origin?",
                                       "Configure CORSMiddleware with the allowed origins.",
                                       "Run a function after the response is sent.",
                                       "Use BackgroundTasks to do work once the reply has gone out.",
                                       "The bank raised interest rates.",
                                       "We sat on the bank of the river."};
    static const char *short_names[6] = {"origin?", "CORSMw", "after resp", "Background", "bank/rates", "bank/river"};
    float emb[6][384], sim[36];
    for (int i = 0; i < 6; i++) bert_embed(&ix.enc, sentences[i], emb[i], NULL);
    printf("  cosine of the L2-normalized mean-pooled embeddings:\n  %12s", "");
    for (int j = 0; j < 6; j++) printf(" %10s", short_names[j]);
    printf("\n");
    for (int i = 0; i < 6; i++) {
        printf("  %-12s", short_names[i]);
        for (int j = 0; j < 6; j++) {
            double d = 0;
            for (int k = 0; k < 384; k++) d += emb[i][k] * emb[j][k];
            sim[i * 6 + j] = (float)d;
            printf(" %10.3f", d);
        }
        printf("\n");
    }
    printf("  The pairs that mean the same with different words score highest: the encoder's attention is\n"
           "  bidirectional (every token sees the whole text; GPT's decoder of week 4 sees only the past), and the\n"
           "  text's vector is the mean of its tokens' last hidden states. \"bank\" in two senses shares a word, not\n"
           "  a meaning.\n");
    gl_jw_array(&js, "sentence_cosines");
    for (int i = 0; i < 36; i++) gl_jw_number(&js, NULL, sim[i]);
    gl_jw_end(&js);

    /* ---- 4 ---- */
    printf("\n4. Exact search against HNSW (M 16, efConstruction 200) for the %d gold questions' embeddings\n", gold.n);
    float *qv = malloc((size_t)gold.n * 384 * sizeof *qv);
    for (int q = 0; q < gold.n; q++) bert_embed(&ix.enc, gold.items[q].question, qv + (size_t)q * 384, NULL);
    int (*exact)[10] = malloc((size_t)gold.n * sizeof *exact);
    double t0 = now();
    for (int q = 0; q < gold.n; q++) search_dense_chunks(&ix, qv + (size_t)q * 384, 10, exact[q], NULL);
    double exact_us = (now() - t0) * 1e6 / gold.n;
    static const int efs[8] = {10, 12, 16, 24, 32, 48, 64, 128}; /* the beam is max(efSearch, k = 10) */
    ann_point ann[8];
    printf("  exact (one GEMM over %d chunks): %.0f us per query\n  %8s %10s %12s\n", ix.st.n_chunks, exact_us,
           "efSearch", "recall@10", "us/query");
    for (int e = 0; e < 8; e++) {
        ix.ann_ef = efs[e];
        int got[10];
        double same = 0, t = 0;
        for (int rep = 0; rep < 5; rep++) { /* five passes: the times are tens of microseconds */
            t0 = now();
            for (int q = 0; q < gold.n; q++) {
                int n = search_dense_chunks(&ix, qv + (size_t)q * 384, 10, got, NULL);
                if (rep == 0)
                    for (int a = 0; a < n; a++)
                        for (int b = 0; b < 10; b++) same += got[a] == exact[q][b];
            }
            t += now() - t0;
        }
        ann[e] = (ann_point){efs[e], same / (10.0 * gold.n), t * 1e6 / (5.0 * gold.n)};
        printf("  %8d %10.3f %12.1f\n", ann[e].ef, ann[e].recall, ann[e].us_per_query);
    }
    ix.ann_ef = 0;
    float ax[8], ay[8];
    for (int e = 0; e < 8; e++) ax[e] = (float)ann[e].us_per_query, ay[e] = (float)ann[e].recall;
    float ex[1] = {(float)exact_us}, ey[1] = {1.0f};
    gl_series hs[2] = {{"HNSW, efSearch 10..128", ax, ay, 8, false, NULL}, {"exact (one GEMM)", ex, ey, 1, true, NULL}};
    gl_chart hc = {.title = "HNSW: recall@10 against exact search", .xlabel = "microseconds per query (log)",
                   .ylabel = "recall@10", .log_x = true, .legend_bottom = true};
    snprintf(path, sizeof path, "%s/hnsw.png", out);
    if (!gl_plot_lines(path, &hc, hs, 2, err, (int)sizeof err)) fprintf(stderr, "lab09: %s\n", err), status = 1;
    gl_jw_number(&js, "exact_us_per_query", exact_us);
    gl_jw_array(&js, "hnsw");
    for (int e = 0; e < 8; e++) {
        gl_jw_object(&js, NULL);
        gl_jw_int(&js, "ef_search", ann[e].ef);
        gl_jw_number(&js, "recall_at_10", ann[e].recall);
        gl_jw_number(&js, "us_per_query", ann[e].us_per_query);
        gl_jw_end(&js);
    }
    gl_jw_end(&js);
    free(exact);

    /* ---- 5 ---- */
    printf("\n5. The three methods on the %d gold questions (pages ranked by their best chunk)\n", gold.n);
    static const char *methods[3] = {"bm25", "dense", "hybrid"};
    eval_result res[3];
    for (int m = 0; m < 3; m++) eval_method(&ix, methods[m], &gold, &res[m]);
    printf("  %-7s %9s %9s %10s %7s %8s %16s %9s\n", "method", "Recall@1", "Recall@5", "Recall@10", "MRR@10", "nDCG@10",
           "release-notes@5", "ms/query");
    for (int m = 0; m < 3; m++)
        printf("  %-7s %9.3f %9.3f %10.3f %7.3f %8.3f %16d %9.2f\n", methods[m], res[m].recall[0], res[m].recall[1],
               res[m].recall[2], res[m].mrr, res[m].ndcg, res[m].trap_top5, res[m].ms);
    printf("  Where they disagree (rank of the first relevant page; '-' = not in the ranking):\n");
    int shown = 0;
    for (int q = 0; q < gold.n && shown < 8; q++) {
        int a = res[0].first_rank[q], b = res[1].first_rank[q];
        if (a == b) continue;
        char ra[8], rb[8], rc[8];
        printf("    %-4s bm25 %-2s dense %-2s hybrid %-2s  %.64s\n", gold.items[q].id, rank_text(a, ra, sizeof ra),
               rank_text(b, rb, sizeof rb), rank_text(res[2].first_rank[q], rc, sizeof rc), gold.items[q].question);
        shown++;
    }
    int trap_first[3] = {0, 0, 0}, trap = -1;
    for (int p = 0; p < ix.st.n_pages; p++)
        if (!strcmp(ix.st.pages[p].path, "release-notes.md")) trap = p;
    for (int m = 0; m < 3; m++)
        for (int q = 0; q < gold.n; q++) trap_first[m] += res[m].top[q][0] == trap;
    printf("  The release-notes trap: release-notes.md (a third of the corpus, relevant to no question) is in the top 5\n"
           "  for %d (bm25), %d (dense) and %d (hybrid) of %d questions, and first for %d, %d and %d.\n",
           res[0].trap_top5, res[1].trap_top5, res[2].trap_top5, gold.n, trap_first[0], trap_first[1], trap_first[2]);
    {
        char title[96];
        snprintf(title, sizeof title, "BM25, MiniLM and their fusion on %d questions", gold.n);
        snprintf(path, sizeof path, "%s/methods.png", out);
        if (!eval_plot_bars(path, title, methods, res, 3, err, (int)sizeof err)) fprintf(stderr, "lab09: %s\n", err), status = 1;
    }
    gl_jw_object(&js, "methods");
    for (int m = 0; m < 3; m++) {
        gl_jw_object(&js, methods[m]);
        eval_result_json(&js, &res[m]);
        gl_jw_int(&js, "release_notes_first", trap_first[m]);
        gl_jw_end(&js);
    }
    gl_jw_end(&js);
    for (int m = 0; m < 3; m++) eval_result_free(&res[m]);

    /* ---- 6 ---- */
    printf("\n6. Answers with citations: the docs' own sentences closest to the question, each cited [n]\n");
    static const char *asks[3] = {"How can I run a task after sending the response?",
                                  "How do I declare an optional query parameter?", "What is the capital of France?"};
    gl_jw_array(&js, "answers");
    for (int i = 0; i < 3; i++) {
        answer a;
        answer_extract(&ix, "hybrid", asks[i], ANSWER_DEFAULTS, &a);
        int bad = 0;
        printf("\n  Q: %s\n  A: %s\n", asks[i], a.text);
        for (int s = 0; a.found && s < a.n_sources; s++)
            printf("     [%d] %s - %s\n", s + 1, ix.st.pages[a.sources[s].page].path, ix.st.chunks[a.sources[s].chunk].heading);
        printf("     (best source cosine %.3f; citations valid: %s)\n", a.best,
               answer_citations_valid(a.text, a.n_sources, &bad) ? "yes" : "no");
        gl_jw_object(&js, NULL);
        gl_jw_string(&js, "question", asks[i]);
        gl_jw_bool(&js, "found", a.found);
        gl_jw_number(&js, "best_cosine", a.best);
        gl_jw_string(&js, "answer", a.text);
        gl_jw_end(&js);
        answer_free(&a);
    }
    gl_jw_end(&js);
    gl_jw_number(&js, "seconds", now() - t_start);
    gl_jw_end(&js);
    snprintf(path, sizeof path, "%s/results.json", out);
    if (!gl_jw_close(&js)) fprintf(stderr, "lab09: could not write %s\n", path), status = 1;
    printf("\nwrote %s/methods.png, %s/hnsw.png, %s/results.json (%.0f s)\n", out, out, out,
           now() - t_start);
    free(qv);
    eval_gold_free(&gold);
    search_close(&ix);
    gl_stdout_check("lab09");
    return status;
}
