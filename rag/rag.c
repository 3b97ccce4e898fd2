/* rag: retrieval over a documentation set (docs/rag.md).
 *   rag index --docs DIR [--manifest FILE] --db FILE [--chunking heading|window|sentence] [--words 200] [--overlap 40]
 *             [--model DIR | --no-embed]
 *   rag query "question" --db FILE [--method bm25|fts5|dense|hybrid] [-k 10] [--json] [--model DIR]
 *   rag eval --gold FILE --db FILE [--method ...] [--json PATH] [--model DIR]
 *   rag ask "question" --db FILE [--method hybrid] [--sources 3] [--sentences 3] [--min-cosine 0.35] [--json]
 * Pages are ranked by their best chunk (ties to the lower chunk index); hybrid fuses the BM25 and dense page rankings
 * by reciprocal rank (k = 60). The encoder is all-MiniLM-L6-v2 (models/bert.h), data/minilm by default. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "answer.h"
#include "bert.h"
#include "bm25.h"
#include "chunk.h"
#include "cli.h"
#include "eval.h"
#include "io.h"
#include "json.h"
#include "plot.h"
#include "hnsw.h"
#include "search.h"
#include "store.h"

static _Noreturn void die(const char *fmt, const char *a) {
    fprintf(stderr, "rag: ");
    fprintf(stderr, fmt, a);
    fputc('\n', stderr);
    exit(1);
}

static void usage(FILE *f) {
    fprintf(f, "usage:\n"
               "  rag index --docs DIR [--manifest FILE] --db FILE [--chunking heading|window|sentence] [--words 200]\n"
               "            [--overlap 40] [--model DIR | --no-embed] [--hnsw-m 16] [--ef-construction 200]\n"
               "            (the manifest: one \"BYTES<TAB>relative/path.md\" per line, default DIR/MANIFEST.tsv; the\n"
               "             chunks are embedded with the MiniLM model in --model, default data/minilm, when it is there)\n"
               "  rag query \"question\" --db FILE [--method bm25|fts5|dense|hybrid|rerank] [-k 10] [--json] [--model DIR]\n"
               "            [--ann EF]          (dense search through the HNSW graph with efSearch EF, not exactly; 64 is a good\n"
               "                                 default)\n"
               "  rag eval --gold FILE --db FILE [--method bm25,dense,...] [--json PATH] [--plot PNG] [--model DIR] [--ann EF]\n"
               "            [--reranker GGUF] [--rerank-yes-no]\n"
               "            (default: every method the index allows, rerank aside; the JSON has each method's metrics and\n"
               "             ranks. rerank: SmolLM2 rescores the hybrid top 20 by query likelihood, or by log P(yes) -\n"
               "             log P(no) with --rerank-yes-no; about 13 s per question on 2 cores, and it does not help)\n"
               "  rag ask \"question\" | --gold FILE  --db FILE [--method hybrid] [--sources 3] [--sentences 3]\n"
               "          [--min-cosine 0.35] [--json] [--model DIR]   (the docs' own sentences, each cited [n])\n"
               "          [--generate [--generator GGUF]]   (SmolLM2 writes the answer from the sources; shown only\n"
               "                                           where the support check passes, else the extractive one)\n"
               "            (gold: one {\"id\", \"question\", \"relevant\": [page paths]} per line)\n");
}

static void print_json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') printf("\\%c", *s);
        else if ((unsigned char)*s < 32) printf("\\u%04x", *s);
        else putchar(*s);
    }
    putchar('"');
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ================================================================ index */

static int cmd_index(int argc, char **argv) {
    const char *docs = NULL, *manifest = NULL, *db = NULL, *model_dir = NULL;
    bool embed = true;
    chunk_config cfg = {CHUNK_HEADING, 200, 40};
    hnsw_params hp = HNSW_DEFAULTS;
    for (int i = 0; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--no-embed")) {
            embed = false;
            continue;
        }
        if (i + 1 >= argc) die("%s needs a value", f);
        const char *v = argv[++i];
        if (!strcmp(f, "--docs")) docs = v;
        else if (!strcmp(f, "--manifest")) manifest = v;
        else if (!strcmp(f, "--db")) db = v;
        else if (!strcmp(f, "--model")) model_dir = v;
        else if (!strcmp(f, "--hnsw-m")) hp.M = gl_flag_int("rag", f, v, 2, 64);
        else if (!strcmp(f, "--ef-construction")) hp.ef_construction = gl_flag_int("rag", f, v, 1, 10000);
        else if (!strcmp(f, "--chunking")) {
            if (!chunk_strategy_parse(v, &cfg.strategy)) die("--chunking must be heading, window or sentence, got '%s'", v);
        } else if (!strcmp(f, "--words")) cfg.words = gl_flag_int("rag", f, v, 8, 4096);
        else if (!strcmp(f, "--overlap")) cfg.overlap = gl_flag_int("rag", f, v, 0, 4095);
        else usage(stderr), die("unknown flag '%s' for index", f);
    }
    if (!docs || !db) usage(stderr), die("%s", "index needs --docs DIR and --db FILE");
    if (cfg.overlap >= cfg.words) die("%s", "--overlap must be below --words");
    char path[4096], err[512];
    if (!manifest) snprintf(path, sizeof path, "%s/MANIFEST.tsv", docs), manifest = path;
    unsigned char *list;
    size_t list_len;
    if (!gl_read_whole_file(manifest, &list, &list_len, err, sizeof err))
        die("%s (give the page list with --manifest)", err);
    bert enc;
    bool have_enc = false;
    if (embed && (model_dir || access("data/minilm/model.safetensors", R_OK) == 0)) {
        if (!bert_load(&enc, model_dir ? model_dir : "data/minilm", err, sizeof err)) die("%s", err);
        have_enc = true;
    } else if (embed)
        fprintf(stderr, "rag: note: no encoder at data/minilm (make data DATA_SETS=minilm): BM25 only; --no-embed "
                        "says so on purpose\n");
    if (!gl_lock_output(db, err, sizeof err)) die("%s", err);
    store_writer *w = store_begin(db, cfg, have_enc ? "all-MiniLM-L6-v2" : NULL, have_enc ? enc.cfg.n_embd : 0, err,
                                  sizeof err);
    if (!w) die("%s", err);
    float *vectors = NULL, *all = NULL; /* this page's chunks; every chunk's (for the HNSW graph) */
    int vcap = 0, truncated = 0, all_cap = 0;
    double t_embed = 0;
    int pages = 0, chunks = 0, skipped = 0, line_no = 0, total_lines = 0;
    for (size_t i = 0; i < list_len; i++) total_lines += list[i] == '\n';
    double t0 = now();
    for (char *line = (char *)list, *end = (char *)list + list_len; line < end;) {
        char *nl = memchr(line, '\n', (size_t)(end - line));
        if (!nl) nl = end;
        *nl = 0;
        line_no++;
        char *rel = strchr(line, '\t') ? strchr(line, '\t') + 1 : line; /* "BYTES\tpath" or a bare path */
        size_t rl = strlen(rel);
        while (rl && (rel[rl - 1] == '\r' || rel[rl - 1] == ' ')) rel[--rl] = 0;
        if (rl) {
            char file[4096];
            snprintf(file, sizeof file, "%s/%s", docs, rel);
            unsigned char *md;
            size_t len;
            if (!gl_read_whole_file(file, &md, &len, err, sizeof err)) {
                store_abort(w);
                fprintf(stderr, "rag: %s:%d lists %s, which cannot be read: %s\n", manifest, line_no, rel, err);
                exit(1);
            }
            size_t nul_line;
            if (gl_find_nul(md, len, &nul_line)) {
                fprintf(stderr, "rag: skipped %s: binary (a NUL byte on line %zu)\n", rel, nul_line);
                skipped++;
            } else {
                chunk_list cl = {0};
                int n = chunk_page(rel, (const char *)md, len, cfg, &cl);
                if (n == 0) fprintf(stderr, "rag: note: %s has no text (no chunks)\n", rel);
                if (have_enc) {
                    if (n > vcap) vcap = n, vectors = realloc(vectors, (size_t)vcap * enc.cfg.n_embd * sizeof(float));
                    double t1 = now();
                    for (int c = 0; c < n; c++) {
                        bool cut;
                        bert_embed(&enc, cl.items[c].text, vectors + (size_t)c * enc.cfg.n_embd, &cut);
                        truncated += cut;
                    }
                    t_embed += now() - t1;
                    if (chunks + n > all_cap) {
                        all_cap = (chunks + n) * 2;
                        if (!(all = realloc(all, (size_t)all_cap * enc.cfg.n_embd * sizeof(float)))) die("%s", "out of memory");
                    }
                    memcpy(all + (size_t)chunks * enc.cfg.n_embd, vectors, (size_t)n * enc.cfg.n_embd * sizeof(float));
                }
                if (!store_add_page(w, rel, md, len, &cl, vectors, err, sizeof err)) {
                    store_abort(w);
                    die("%s", err);
                }
                chunks += n, pages++;
                chunk_list_free(&cl);
            }
            free(md);
            if (isatty(2))
                fprintf(stderr, "\rrag: indexing %d/%d pages, %d chunks%s", pages + skipped, total_lines, chunks,
                        have_enc ? " embedded" : "");
        }
        line = nl + 1;
    }
    free(list), free(vectors);
    if (isatty(2)) fputc('\n', stderr);
    double t_graph = 0;
    if (have_enc && chunks > 0) { /* the HNSW graph over every chunk's embedding, stored beside them */
        double t1 = now();
        hnsw *g = hnsw_build(all, chunks, enc.cfg.n_embd, hp);
        size_t glen;
        unsigned char *gb = hnsw_serialize(g, &glen);
        t_graph = now() - t1;
        if (!store_add_graph(w, "hnsw", gb, glen, err, sizeof err)) store_abort(w), die("%s", err);
        free(gb);
        hnsw_free(g);
    }
    free(all);
    if (!store_commit(w, err, sizeof err)) die("%s", err);
    printf("rag: indexed %d pages into %d chunks (%s, %d words, overlap %d) in %.2f s: %s%s\n", pages, chunks,
           chunk_strategy_name(cfg.strategy), cfg.words, cfg.overlap, now() - t0, db,
           skipped ? " (some pages skipped: see above)" : "");
    if (have_enc) {
        printf("rag: embedded %d chunks with all-MiniLM-L6-v2 in %.1f s (%.1f chunks/s)%s\n", chunks, t_embed,
               t_embed > 0 ? chunks / t_embed : 0.0, "");
        if (truncated) printf("rag: %d chunks were longer than %d tokens: their embeddings read the first %d\n", truncated,
                              enc.max_tokens, enc.max_tokens);
        printf("rag: HNSW graph (M %d, efConstruction %d) over them in %.2f s\n", hp.M, hp.ef_construction, t_graph);
        bert_free(&enc);
    }
    return 0;
}

/* ================================================================ ranking */

static void check_method(const char *m) {
    if (!search_method_known(m)) die("--method must be bm25, fts5, dense, hybrid or rerank, got '%s'", m);
}

/* rerank: the hybrid index, then the reranker (rerank_gguf, or the default SmolLM2) */
static void open_index(search_index *ix, const char *db, const char *method, const char *model_dir,
                       const char *rerank_gguf) {
    char err[512];
    bool rerank = !strcmp(method, "rerank");
    if (!search_open(ix, db, rerank ? "hybrid" : method, model_dir, err, sizeof err)) die("%s", err);
    if (rerank && !search_use_reranker(ix, rerank_gguf, err, sizeof err)) die("%s", err);
}

/* The arguments of query and ask: one (quoted) question, --json, and FLAG VALUE pairs, each handed to the
 * command's own flag() (false: not one of its flags). Returns the question. */
static const char *question_args(const char *cmd, int argc, char **argv, bool *json,
                                 bool (*flag)(const char *f, const char *v, void *ctx), void *ctx) {
    const char *question = NULL;
    for (int i = 0; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--json")) {
            *json = true;
            continue;
        }
        if (f[0] != '-' || !f[1]) {
            if (question) die("one question at a time (quote it): '%s'", f);
            question = f;
            continue;
        }
        if (i + 1 >= argc) die("%s needs a value", f);
        if (!flag(f, argv[++i], ctx)) usage(stderr), fprintf(stderr, "rag: unknown flag '%s' for %s\n", f, cmd), exit(1);
    }
    return question;
}

/* ================================================================ query */

typedef struct {
    const char *db, *method, *model_dir, *reranker;
    int k, ann;
} query_opts;

static bool query_flag(const char *f, const char *v, void *ctx) {
    query_opts *o = ctx;
    if (!strcmp(f, "--db")) o->db = v;
    else if (!strcmp(f, "--method")) o->method = v;
    else if (!strcmp(f, "-k") || !strcmp(f, "--k")) o->k = gl_flag_int("rag", f, v, 1, 1000);
    else if (!strcmp(f, "--model")) o->model_dir = v;
    else if (!strcmp(f, "--ann")) o->ann = gl_flag_int("rag", f, v, 1, 100000);
    else if (!strcmp(f, "--reranker")) o->reranker = v;
    else return false;
    return true;
}

static void truncation_note(const search_index *ix) {
    if (ix->query_truncated)
        fprintf(stderr, "rag: note: the question is longer than the encoder's %d tokens; dense search read its start "
                        "(BM25 reads it all)\n", ix->enc.max_tokens);
}

static void use_ann(search_index *ix, int ef, const char *db) {
    if (ef <= 0) return;
    if (!ix->graph) die("%s has no HNSW graph (index it with the encoder), or the method is not dense or hybrid", db);
    ix->ann_ef = ef;
}

static int cmd_query(int argc, char **argv) {
    query_opts o = {NULL, "bm25", NULL, NULL, 10, 0};
    bool json = false;
    const char *query = question_args("query", argc, argv, &json, query_flag, &o);
    const char *db = o.db, *method = o.method, *model_dir = o.model_dir;
    int k = o.k;
    if (!db || !query) usage(stderr), die("%s", "query needs a question and --db FILE");
    check_method(method);
    search_index ix;
    open_index(&ix, db, method, model_dir, o.reranker);
    use_ann(&ix, o.ann, db);
    search_hit *hits = malloc((size_t)(ix.st.n_pages ? ix.st.n_pages : 1) * sizeof *hits);
    double t0 = now();
    int n = search_rank_pages(&ix, method, query, hits);
    double ms = (now() - t0) * 1e3;
    if (n > k) n = k;
    truncation_note(&ix);
    if (json) {
        printf("{\"query\": ");
        print_json_string(query);
        printf(", \"method\": \"%s\", \"ms\": %.3f, \"hits\": [", method, ms);
        for (int i = 0; i < n; i++) {
            const store_chunk *c = &ix.st.chunks[hits[i].chunk];
            printf("%s{\"rank\": %d, \"page\": ", i ? ", " : "", i + 1);
            print_json_string(ix.st.pages[hits[i].page].path);
            printf(", \"chunk\": %d, \"score\": %.6g, \"heading\": ", hits[i].chunk, hits[i].score);
            print_json_string(c->heading);
            printf("}");
        }
        printf("]}\n");
    } else {
        printf("%s over %d chunks of %d pages (%.2f ms):\n", method, ix.st.n_chunks, ix.st.n_pages, ms);
        for (int i = 0; i < n; i++) {
            const store_chunk *c = &ix.st.chunks[hits[i].chunk];
            const char *body = strchr(c->text, '\n') ? strchr(c->text, '\n') + 1 : c->text;
            printf("%2d. %-40s %8.3f  %s\n      %.150s%s\n", i + 1, ix.st.pages[hits[i].page].path, hits[i].score,
                   c->heading, body, strlen(body) > 150 ? "..." : "");
        }
        if (!n) printf("no chunk shares a word with the question\n");
    }
    gl_stdout_check("rag");
    free(hits);
    search_close(&ix);
    return 0;
}

/* ================================================================ eval */

/* --method a,b,c into names (each checked); returns the count */
static int method_list(const char *arg, char names[][16], int max) {
    int n = 0;
    for (const char *p = arg; *p && n < max;) {
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= 16) die("--method: '%s' is not a list of methods (bm25,fts5,dense,hybrid,rerank)", arg);
        memcpy(names[n], p, len), names[n][len] = 0;
        check_method(names[n++]);
        p += len + (p[len] == ',');
    }
    return n;
}

static int cmd_eval(int argc, char **argv) {
    const char *db = NULL, *methods_arg = NULL, *gold_path = NULL, *json_path = NULL, *plot_path = NULL,
               *model_dir = NULL, *reranker = NULL;
    int ann = 0;
    bool yes_no = false;
    for (int i = 0; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--rerank-yes-no")) {
            yes_no = true;
            continue;
        }
        if (i + 1 >= argc) die("%s needs a value", f);
        const char *v = argv[++i];
        if (!strcmp(f, "--db")) db = v;
        else if (!strcmp(f, "--method")) methods_arg = v;
        else if (!strcmp(f, "--gold")) gold_path = v;
        else if (!strcmp(f, "--json")) json_path = v;
        else if (!strcmp(f, "--plot")) plot_path = v;
        else if (!strcmp(f, "--reranker")) reranker = v;
        else if (!strcmp(f, "--model")) model_dir = v;
        else if (!strcmp(f, "--ann")) ann = gl_flag_int("rag", f, v, 1, 100000);
        else usage(stderr), die("unknown flag '%s' for eval", f);
    }
    if (!db || !gold_path) usage(stderr), die("%s", "eval needs --gold FILE and --db FILE");
    enum { MAX_METHODS = 8 };
    char methods[MAX_METHODS][16];
    int n_methods = methods_arg ? method_list(methods_arg, methods, MAX_METHODS) : 0;
    char err[512];
    search_index ix;
    bool need_enc = false, need_rerank = false;
    for (int m = 0; m < n_methods; m++) {
        need_rerank |= !strcmp(methods[m], "rerank");
        need_enc |= need_rerank || !strcmp(methods[m], "dense") || !strcmp(methods[m], "hybrid");
    }
    open_index(&ix, db, need_rerank ? "rerank" : need_enc ? "dense" : "bm25", model_dir, reranker);
    if (ix.rr) ix.rr->yes_no = yes_no;
    if (!methods_arg) { /* every method the index and the machine allow */
        static const char *all[4] = {"bm25", "fts5", "dense", "hybrid"};
        bool enc = ix.st.vectors && search_use_encoder(&ix, model_dir, err, sizeof err);
        if (!enc) printf("(dense and hybrid skipped: %s)\n", ix.st.vectors ? err : "the index has no embeddings");
        for (int m = 0; m < (enc ? 4 : 2); m++) snprintf(methods[n_methods++], sizeof methods[0], "%s", all[m]);
    }
    use_ann(&ix, ann, db);
    eval_gold gold;
    if (!eval_gold_load(gold_path, &ix.st, &gold, err, sizeof err)) die("%s", err);
    eval_result res[MAX_METHODS];
    for (int m = 0; m < n_methods; m++) eval_method(&ix, methods[m], &gold, &res[m]);

    /* per question: the rank of the first relevant page under each method, and the top 3 of the last */
    printf("%-5s %-40s", "id", "relevant");
    for (int m = 0; m < n_methods; m++) printf(" %6s", methods[m]);
    printf("   top 3 (%s)\n", methods[n_methods - 1]);
    for (int q = 0; q < gold.n; q++) {
        printf("%-5s %-40s", gold.items[q].id, ix.st.pages[gold.items[q].relevant[0]].path);
        for (int m = 0; m < n_methods; m++) {
            char rank[16];
            snprintf(rank, sizeof rank, res[m].first_rank[q] ? "%d" : "-", res[m].first_rank[q]);
            printf(" %6s", rank);
        }
        printf("  ");
        for (int i = 0; i < 3 && res[n_methods - 1].top[q][i] >= 0; i++) printf(" %s", ix.st.pages[res[n_methods - 1].top[q][i]].path);
        printf("\n");
    }
    printf("\n%d questions, %d chunks of %d pages (%s, %d words, overlap %d)%s:\n", gold.n, ix.st.n_chunks,
           ix.st.n_pages, chunk_strategy_name(ix.st.config.strategy), ix.st.config.words, ix.st.config.overlap,
           ann ? " (dense search through the HNSW graph)" : "");
    printf("%-8s %9s %9s %10s %7s %8s %15s %9s\n", "method", "Recall@1", "Recall@5", "Recall@10", "MRR@10", "nDCG@10",
           "release-notes@5", "ms/query");
    for (int m = 0; m < n_methods; m++)
        printf("%-8s %9.3f %9.3f %10.3f %7.3f %8.3f %15d %9.2f\n", methods[m], res[m].recall[0], res[m].recall[1],
               res[m].recall[2], res[m].mrr, res[m].ndcg, res[m].trap_top5, res[m].ms);
    double ann_recall = 0;
    if (ann) { /* the graph's 10 nearest chunks against the exact 10 */
        float *q = malloc((size_t)ix.st.dims * sizeof *q);
        for (int i = 0; i < gold.n; i++) {
            int a[10], e[10], na, ne, same = 0;
            bert_embed(&ix.enc, gold.items[i].question, q, NULL);
            na = search_dense_chunks(&ix, q, 10, a, NULL);
            ix.ann_ef = 0, ne = search_dense_chunks(&ix, q, 10, e, NULL), ix.ann_ef = ann;
            for (int x = 0; x < na; x++)
                for (int y = 0; y < ne; y++) same += a[x] == e[y];
            ann_recall += ne ? (double)same / ne : 1;
        }
        free(q);
        ann_recall /= gold.n;
        printf("HNSW (efSearch %d): recall@10 of the nearest chunks against exact search %.3f\n", ann, ann_recall);
    }
    if (json_path) {
        gl_json_writer jw;
        if (!gl_jw_open(&jw, json_path)) die("cannot write %s", json_path);
        gl_jw_object(&jw, NULL);
        gl_jw_string(&jw, "db", db);
        gl_jw_string(&jw, "gold", gold_path);
        gl_jw_string(&jw, "chunking", chunk_strategy_name(ix.st.config.strategy));
        gl_jw_int(&jw, "chunks", ix.st.n_chunks);
        gl_jw_int(&jw, "questions_count", gold.n);
        if (ann) gl_jw_int(&jw, "hnsw_ef_search", ann), gl_jw_number(&jw, "hnsw_recall_at_10", ann_recall);
        gl_jw_object(&jw, "methods");
        for (int m = 0; m < n_methods; m++) {
            gl_jw_object(&jw, methods[m]);
            eval_result_json(&jw, &res[m]);
            gl_jw_array(&jw, "questions");
            for (int q = 0; q < gold.n; q++) {
                gl_jw_object(&jw, NULL);
                gl_jw_string(&jw, "id", gold.items[q].id);
                gl_jw_int(&jw, "first_relevant_rank", res[m].first_rank[q]);
                gl_jw_array(&jw, "top10");
                for (int i = 0; i < EVAL_TOP && res[m].top[q][i] >= 0; i++)
                    gl_jw_string(&jw, NULL, ix.st.pages[res[m].top[q][i]].path);
                gl_jw_end(&jw);
                gl_jw_end(&jw);
            }
            gl_jw_end(&jw);
            gl_jw_end(&jw);
        }
        gl_jw_end(&jw);
        gl_jw_end(&jw);
        if (!gl_jw_close(&jw)) die("cannot write %s", json_path);
        printf("wrote %s\n", json_path);
    }
    if (plot_path) { /* one group of bars per metric, one bar per method */
        char title[160];
        snprintf(title, sizeof title, "Retrieval on %d questions (%s chunks)", gold.n, chunk_strategy_name(ix.st.config.strategy));
        const char *names[MAX_METHODS];
        for (int m = 0; m < n_methods; m++) names[m] = methods[m];
        if (!eval_plot_bars(plot_path, title, names, res, n_methods, err, sizeof err)) die("%s", err);
        printf("wrote %s\n", plot_path);
    }
    gl_stdout_check("rag");
    for (int m = 0; m < n_methods; m++) eval_result_free(&res[m]);
    eval_gold_free(&gold);
    search_close(&ix);
    return 0;
}

/* ================================================================ ask */

typedef struct {
    const char *db, *method, *model_dir, *reranker, *gold, *generator;
    bool generate;
    answer_config ac;
} ask_opts;

static bool ask_flag(const char *f, const char *v, void *ctx) {
    ask_opts *o = ctx;
    if (!strcmp(f, "--db")) o->db = v;
    else if (!strcmp(f, "--method")) o->method = v;
    else if (!strcmp(f, "--model")) o->model_dir = v;
    else if (!strcmp(f, "--sources")) o->ac.sources = gl_flag_int("rag", f, v, 1, ANSWER_MAX_SOURCES);
    else if (!strcmp(f, "--sentences")) o->ac.sentences = gl_flag_int("rag", f, v, 1, 20);
    else if (!strcmp(f, "--min-cosine")) o->ac.min_cosine = gl_flag_number("rag", f, v, -1, 1);
    else if (!strcmp(f, "--reranker")) o->reranker = v;
    else if (!strcmp(f, "--gold")) o->gold = v;
    else if (!strcmp(f, "--generator")) o->generator = v, o->generate = true;
    else return false;
    return true;
}

typedef struct {
    llama m;
    llama_cache cache;
    bool loaded;
} generator;

/* one question answered and printed (text or one JSON line); returns whether the answer cites a relevant page (when
 * relevant is given) in *cites_relevant, and the generated answer's verdict in *supported */
static void ask_one(search_index *ix, const char *method, const char *question, answer_config ac, generator *gen,
                    bool json, const int *relevant, int n_relevant, bool *found, bool *cites_relevant, bool *supported) {
    answer a;
    answer_generated g = {0};
    double t0 = now();
    answer_extract(ix, method, question, ac, &a);
    double ms = (now() - t0) * 1e3;
    truncation_note(ix);
    if (gen && a.found) answer_generate(ix, &gen->m, &gen->cache, question, &a, 160, &g);
    double gen_ms = (now() - t0) * 1e3 - ms;
    *found = a.found, *cites_relevant = false, *supported = g.supported;
    for (int s = 0; s < a.n_sources && a.found; s++)
        for (int r = 0; r < n_relevant; r++) *cites_relevant |= a.sources[s].page == relevant[r];
    const char *shown = g.text && g.supported ? g.text : a.text; /* the generated text only where it is supported */
    if (json) {
        printf("{\"question\": ");
        print_json_string(question);
        printf(", \"method\": \"%s\", \"found\": %s, \"best\": %.4f, \"ms\": %.1f, \"answer\": ", method,
               a.found ? "true" : "false", a.best, ms);
        print_json_string(shown);
        if (gen && a.found) {
            printf(", \"extractive\": ");
            print_json_string(a.text);
            printf(", \"generated\": ");
            print_json_string(g.text);
            printf(", \"generated_supported\": %s, \"generated_reason\": ", g.supported ? "true" : "false");
            print_json_string(g.reason);
            printf(", \"generated_ms\": %.0f", gen_ms);
        }
        if (n_relevant) printf(", \"cites_relevant\": %s", *cites_relevant ? "true" : "false");
        printf(", \"sources\": [");
        for (int s = 0; s < a.n_sources && a.found; s++) {
            printf("%s{\"n\": %d, \"page\": ", s ? ", " : "", s + 1);
            print_json_string(ix->st.pages[a.sources[s].page].path);
            printf(", \"heading\": ");
            print_json_string(ix->st.chunks[a.sources[s].chunk].heading);
            printf("}");
        }
        printf("]}\n");
    } else {
        if (n_relevant) printf("Q: %s\n", question);
        printf("%s\n", shown);
        if (a.found) {
            printf("\n");
            for (int s = 0; s < a.n_sources; s++)
                printf("[%d] %s — %s\n", s + 1, ix->st.pages[a.sources[s].page].path, ix->st.chunks[a.sources[s].chunk].heading);
        }
        printf("(%s, best source %.3f, %.0f ms", method, a.best, ms);
        if (gen && a.found)
            printf("; generated in %.0f ms, %s%s%s", gen_ms, g.supported ? "supported by its sources" : "not supported: ",
                   g.supported ? "" : g.reason, g.supported ? "" : "; the extractive answer is shown");
        printf(")\n");
        if (gen && a.found && !g.supported) printf("(the generated text was: %s)\n", g.text);
        if (n_relevant) printf("\n");
    }
    answer_generated_free(&g);
    answer_free(&a);
}

static int cmd_ask(int argc, char **argv) {
    ask_opts o = {NULL, NULL, NULL, NULL, NULL, NULL, false, ANSWER_DEFAULTS};
    bool json = false;
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--generate")) { /* a flag without a value */
            o.generate = true;
            memmove(argv + i, argv + i + 1, (size_t)(argc - i - 1) * sizeof *argv), argc--, i--;
        }
    const char *question = question_args("ask", argc, argv, &json, ask_flag, &o);
    const char *db = o.db, *method = o.method, *model_dir = o.model_dir;
    if (!db || !(question || o.gold)) usage(stderr), die("%s", "ask needs a question (or --gold FILE) and --db FILE");
    if (question && o.gold) die("%s", "ask takes a question or --gold FILE, not both");
    search_index ix;
    char err[512];
    if (method) check_method(method);
    open_index(&ix, db, method ? method : "bm25", model_dir, o.reranker);
    if (!method) { /* hybrid where the index has embeddings and the model is at hand, else BM25 */
        method = "bm25";
        if (ix.st.vectors && access(model_dir ? model_dir : "data/minilm/model.safetensors", R_OK) == 0) {
            if (!search_use_encoder(&ix, model_dir, err, sizeof err)) die("%s", err);
            method = "hybrid";
        }
    }
    generator gen = {0};
    if (o.generate) {
        char found_path[4096];
        const char *path = o.generator;
        if (!path) gl_find_data(SEARCH_DEFAULT_RERANKER, found_path, sizeof found_path), path = found_path;
        if (!llama_load(&gen.m, path, err, sizeof err))
            die("%s (make data DATA_SETS=smollm2 fetches SmolLM2-135M-Instruct)", err);
        if (!gen.m.tok || !gen.m.chatml) die("%s: --generate needs a model with a tokenizer and a ChatML template", path);
        llama_cache_init(&gen.cache, &gen.m, gen.m.cfg.ctx_len < 2048 ? gen.m.cfg.ctx_len : 2048, true);
        gen.loaded = true;
    }
    bool found, cites, supported;
    if (question) ask_one(&ix, method, question, o.ac, gen.loaded ? &gen : NULL, json, NULL, 0, &found, &cites, &supported);
    else { /* every gold question, then how often the answers found something, cite a relevant page, were supported */
        eval_gold gold;
        if (!eval_gold_load(o.gold, &ix.st, &gold, err, sizeof err)) die("%s", err);
        int n_found = 0, n_cites = 0, n_supported = 0;
        for (int q = 0; q < gold.n; q++) {
            ask_one(&ix, method, gold.items[q].question, o.ac, gen.loaded ? &gen : NULL, json, gold.items[q].relevant,
                    gold.items[q].n_relevant, &found, &cites, &supported);
            n_found += found, n_cites += cites, n_supported += supported;
        }
        FILE *f = json ? stderr : stdout;
        fprintf(f, "%d questions: %d answered from the docs, %d cite a relevant page", gold.n, n_found, n_cites);
        if (gen.loaded) fprintf(f, "; the generated answer was supported by its sources for %d of the %d answered", n_supported, n_found);
        fprintf(f, "\n");
        eval_gold_free(&gold);
    }
    gl_stdout_check("rag");
    if (gen.loaded) llama_cache_free(&gen.cache), llama_free(&gen.m);
    search_close(&ix);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "index")) return cmd_index(argc - 2, argv + 2);
    if (!strcmp(argv[1], "query")) return cmd_query(argc - 2, argv + 2);
    if (!strcmp(argv[1], "eval")) return cmd_eval(argc - 2, argv + 2);
    if (!strcmp(argv[1], "ask")) return cmd_ask(argc - 2, argv + 2);
    usage(stderr);
    die("unknown command '%s' (index, query, eval, ask)", argv[1]);
}
