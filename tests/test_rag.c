/* Retrieval: BM25 against rank_bm25's numbers, chunking of MkDocs Markdown, the metrics on known values, the SQLite
 * store (round trip, refusal of foreign or damaged files, an interrupted index leaving the old one), WordPiece and
 * the MiniLM encoder against Hugging Face, and dense, hybrid and extractive answers over a small embedded index. */
#include <sys/stat.h>

#include "answer.h"
#include "bert.h"
#include "bm25.h"
#include "chunk.h"
#include "eval.h"
#include "hnsw.h"
#include "json.h"
#include "search.h"
#include "store.h"
#include "testutil.h"
#include "wordpiece.h"
#include "io.h"
#include "rerank.h"

Test(bm25, scores_equal_rank_bm25_on_the_fixture) {
    unsigned char *text;
    size_t len;
    char err[256];
    cr_assert(gl_read_whole_file("tests/ref/bm25_rank_bm25.json", &text, &len, err, sizeof err), "%s", err);
    gl_json *doc = gl_json_parse((const char *)text, len, err, sizeof err);
    cr_assert(doc, "%s", err);
    const gl_json *texts = gl_json_get(doc, "texts"), *queries = gl_json_get(doc, "queries"), *idf = gl_json_get(doc, "idf");
    int n = (int)texts->count;
    const char **docs = malloc((size_t)n * sizeof *docs);
    for (int i = 0; i < n; i++) docs[i] = texts->items[i].string;
    bm25 *m = bm25_build(docs, n, BM25_DEFAULTS);
    cr_assert_eq(bm25_doc_count(m), n);
    cr_assert_eq(bm25_avgdl(m), gl_json_get(doc, "avgdl")->number, "avgdl %.17g", bm25_avgdl(m));
    for (size_t i = 0; i < idf->count; i++) { /* "the" and "a" are in most chunks: rank_bm25's epsilon floor */
        double want = idf->items[i].number, got = bm25_idf(m, idf->keys[i]);
        cr_assert(fabs(got - want) <= 1e-12 * fabs(want), "idf(%s): %.17g, rank_bm25 %.17g", idf->keys[i], got, want);
    }
    double *scores = malloc((size_t)n * sizeof *scores), worst = 0;
    int nonzero = 0;
    for (size_t q = 0; q < queries->count; q++) {
        const gl_json *qq = &queries->items[q], *want = gl_json_get(qq, "scores");
        cr_assert_eq((int)want->count, n);
        bm25_scores(m, gl_json_get(qq, "query")->string, scores);
        for (int d = 0; d < n; d++) {
            double w = want->items[d].number, diff = fabs(scores[d] - w);
            cr_assert(diff <= 1e-12 * fabs(w), "query %zu chunk %d: %.17g, rank_bm25 %.17g", q, d, scores[d], w);
            worst = diff > worst ? diff : worst;
            nonzero += w != 0;
        }
    }
    cr_assert_gt(nonzero, n, "the fixture's queries match many chunks");
    cr_log_info("BM25 vs rank_bm25: %zu queries x %d chunks, largest difference %g", queries->count, n, worst);
    free(scores), free(docs);
    bm25_free(m);
    gl_json_free(doc);
    free(text);
}

Test(bm25, tokens_are_lowercase_ascii_word_runs) {
    const char *docs[3] = {"CORSMiddleware allow_origins", "FastAPI's café: cors", "nothing here"};
    bm25 *m = bm25_build(docs, 3, BM25_DEFAULTS);
    cr_assert_gt(bm25_idf(m, "corsmiddleware"), 0);
    cr_assert_gt(bm25_idf(m, "allow_origins"), 0);
    cr_assert_gt(bm25_idf(m, "caf"), 0, "the non-ASCII byte separates");
    cr_assert_eq(bm25_idf(m, "café"), 0);
    double s[3];
    bm25_scores(m, "CORS cors", s);
    cr_assert(s[1] > 0 && s[0] == 0 && s[2] == 0);
    double once[3];
    bm25_scores(m, "cors", once);
    cr_assert_eq(s[1], 2 * once[1], "a repeated query word counts twice, as in rank_bm25");
    bm25_free(m);
}

/* ---- chunking ---- */

static const char page[] =
    "# Title\n"
    "\n"
    "Intro with <abbr title=\"Asynchronous Server Gateway Interface\">ASGI</abbr> and a "
    "<a href=\"x\" class=\"external-link\">link</a>.\n"
    "\n"
    "## Use `CORSMiddleware` { #use-cors }\n"
    "\n"
    "First sentence here. Second one!\n"
    "\n"
    "```Python hl_lines=\"2\"\n"
    "{!../../../docs_src/cors/tutorial001.py!}\n"
    "```\n"
    "\n"
    "```console\n"
    "$ pip install fastapi\n"
    "```\n"
    "\n"
    "/// tip\n"
    "\n"
    "Tips stay.\n"
    "\n"
    "///\n"
    "\n"
    "/// note | Technical Details\n"
    "\n"
    "Details stay.\n"
    "\n"
    "///\n"
    "\n"
    "//// tab | Python 3.9+\n"
    "\n"
    "Tabbed text.\n"
    "\n"
    "////\n"
    "\n"
    "### Deeper\n"
    "\n"
    "one two three four five six seven eight nine ten eleven twelve.\n";

static const chunk *find_heading(const chunk_list *l, const char *heading) {
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->items[i].heading, heading)) return &l->items[i];
    return NULL;
}

Test(chunk, headings_markers_admonitions_and_html) {
    chunk_list l = {0};
    int n = chunk_page("tutorial/x.md", page, strlen(page), (chunk_config){CHUNK_HEADING, 200, 40}, &l);
    cr_assert_eq(n, 3, "three sections, got %d", n);
    const chunk *intro = find_heading(&l, "Title"), *cors = find_heading(&l, "Title > Use `CORSMiddleware`"),
                *deep = find_heading(&l, "Title > Use `CORSMiddleware` > Deeper");
    cr_assert(intro && cors && deep, "heading paths (attribute lists dropped)");
    cr_assert_str_eq(intro->text, "Title\nIntro with ASGI and a link.");
    cr_assert(strstr(cors->text, "First sentence here. Second one!"));
    cr_assert(strstr(cors->text, "$ pip install fastapi"), "code in fences is kept");
    cr_assert(!strstr(cors->text, "{!") && !strstr(cors->text, "```") && !strstr(cors->text, "docs_src"),
              "include markers and fence lines go: %s", cors->text);
    cr_assert(strstr(cors->text, "Tip: Tips stay.") && strstr(cors->text, "Technical Details: Details stay."),
              "admonitions become their titles: %s", cors->text);
    cr_assert(strstr(cors->text, "Tabbed text.") && !strstr(cors->text, "tab |") && !strstr(cors->text, "///"));
    cr_assert(deep->start > cors->start && deep->end == strlen(page) && !strncmp(page + deep->start, "### Deeper", 10),
              "a section's byte range starts at its heading");
    chunk_list_free(&l);
}

Test(chunk, caps_overlaps_and_sentences) {
    char md[4096] = "# T\n\n";
    for (int i = 0; i < 50; i++) snprintf(md + strlen(md), sizeof md - strlen(md), "w%d%s", i, i % 10 == 9 ? ". " : " ");
    chunk_list l = {0};
    cr_assert_eq(chunk_page("p.md", md, strlen(md), (chunk_config){CHUNK_HEADING, 20, 5}, &l), 3);
    cr_assert(l.items[0].words == 20 && l.items[1].words == 20 && l.items[2].words == 20);
    cr_assert(strstr(l.items[1].text, "\nw15 ") && strstr(l.items[0].text, " w19."), "windows overlap by 5 words");
    cr_assert(strstr(l.items[2].text, " w49."));
    chunk_list_free(&l);
    cr_assert_eq(chunk_page("p.md", md, strlen(md), (chunk_config){CHUNK_SENTENCE, 25, 0}, &l), 3,
                 "sentences of 10 words packed two by two under 25 words, then the last one");
    cr_assert(l.items[0].words == 20 && l.items[1].words == 20 && l.items[2].words == 10);
    chunk_list_free(&l);
    cr_assert_eq(chunk_page("p.md", md, strlen(md), (chunk_config){CHUNK_WINDOW, 30, 10}, &l), 2);
    cr_assert(l.items[0].words == 30 && l.items[1].words == 30);
    chunk_list_free(&l);
    cr_assert_eq(chunk_page("e.md", "", 0, (chunk_config){CHUNK_HEADING, 20, 5}, &l), 0, "an empty page has no chunks");
    cr_assert_eq(chunk_page("e.md", "# Only a heading\n", 17, (chunk_config){CHUNK_HEADING, 20, 5}, &l), 0);
    chunk_list_free(&l);
}

/* ---- metrics ---- */

Test(answer, citations_are_checked_against_the_sources) {
    int bad = 0;
    cr_assert(answer_citations_valid("Use CORSMiddleware [1]. Set allow_origins [2].", 2, &bad));
    cr_assert(answer_citations_valid("No citation at all, [x] and [ 3] are not citations.", 0, &bad));
    cr_assert(!answer_citations_valid("Invented [3].", 2, &bad) && bad == 3);
    cr_assert(!answer_citations_valid("Zero [0].", 2, &bad) && bad == 0);
}

/* A generated answer is kept only where its sources support it: two chunks stand in for the retrieved sources. */
Test(answer, support_check_passes_grounded_text_and_names_what_is_invented) {
    store_chunk chunks[2] = {
        {0, "CORS > Use CORSMiddleware", "CORS > Use CORSMiddleware\nYou can configure it in your FastAPI application "
                                         "using the CORSMiddleware. Import CORSMiddleware from fastapi.middleware.cors, "
                                         "create a list of allowed origins and add it as a middleware.", 0, 0},
        {1, "Background Tasks", "Background Tasks\nYou can define background tasks to be run after returning a response. "
                                "Import BackgroundTasks and add a parameter to your path operation function.", 0, 0}};
    search_index ix;
    memset(&ix, 0, sizeof ix);
    ix.st.chunks = chunks, ix.st.n_chunks = 2;
    answer src;
    memset(&src, 0, sizeof src);
    src.n_sources = 2, src.sources[0] = (answer_source){0, 0}, src.sources[1] = (answer_source){1, 1};
    char why[256];
    cr_assert(answer_supported(&ix, &src, "Import `CORSMiddleware` from fastapi.middleware.cors and add it as a "
                                          "middleware with the allowed origins [1]. Tasks run after the response [2].",
                               why, sizeof why), "%s", why);
    cr_assert(!answer_supported(&ix, &src, "Write `from cors import CORS` and call it [1].", why, sizeof why));
    cr_assert(strstr(why, "`from cors import CORS` is not in the sources"), "%s", why);
    cr_assert(!answer_supported(&ix, &src, "Use CORSMiddleware from fastapi.", why, sizeof why) && strstr(why, "cites no source"), "%s", why);
    cr_assert(!answer_supported(&ix, &src, "Use CORSMiddleware [3].", why, sizeof why) && strstr(why, "cites [3]"), "%s", why);
    /* the claim's words must be in the source it cites, not merely in another one */
    cr_assert(!answer_supported(&ix, &src, "Background tasks run after returning a response [1].", why, sizeof why));
    cr_assert(strstr(why, "content words"), "%s", why);
    cr_assert(answer_supported(&ix, &src, "Background tasks run after returning a response [2].", why, sizeof why), "%s", why);
}

/* The reranker's two scores with SmolLM2: the passage that answers scores above one that does not; the yes/no
 * prompts of one question share their start in the cache; the same inputs give the same numbers. */
Test(rerank, the_answering_passage_scores_higher) {
    char path[512], err[256];
    if (!gl_find_data(SEARCH_DEFAULT_RERANKER, path, sizeof path)) cr_skip_test("%s is absent (make data DATA_SETS=smollm2)", path);
    reranker r;
    cr_assert(reranker_load(&r, path, err, sizeof err), "%s", err);
    const char *q = "How do I allow requests from another origin?";
    const char *good = "CORS\nUse CORSMiddleware to allow cross-origin requests: list the allowed origins.";
    const char *bad = "Testing\nWrite tests with pytest and the TestClient.";
    double lg = reranker_query_likelihood(&r, q, good), lb = reranker_query_likelihood(&r, q, bad);
    cr_assert(lg > lb && lg < 0, "query likelihood: answering %.4f, other %.4f", lg, lb);
    cr_assert_eq(reranker_query_likelihood(&r, q, good), lg, "deterministic");
    r.yes_no = true;
    long before = r.tokens_fed;
    double yg = reranker_relevance(&r, q, good);
    long first = r.tokens_fed - before;
    double yb = reranker_relevance(&r, q, bad);
    long second = r.tokens_fed - before - first;
    cr_assert(isfinite(yg) && isfinite(yb), "yes/no scores %f %f", yg, yb);
    cr_assert(second < first - 20, "the second prompt reuses the shared start: %ld tokens fed after %ld", second, first);
    cr_log_info("rerank: likelihood %.3f vs %.3f, yes-no %.3f vs %.3f", lg, lb, yg, yb);
    reranker_free(&r);
    cr_assert(!reranker_load(&r, "tests/ref/fastapi_mini/MANIFEST.tsv", err, sizeof err));
}

/* ---- HNSW against exact search ---- */

static void exact_top(const float *v, int n, int d, const float *q, int k, int *ids) {
    float best[16];
    for (int i = 0; i < k; i++) best[i] = -INFINITY, ids[i] = -1;
    for (int i = 0; i < n; i++) {
        float s = 0;
        for (int j = 0; j < d; j++) s += q[j] * v[(size_t)i * d + j];
        if (s <= best[k - 1]) continue;
        int p = k - 1;
        while (p > 0 && best[p - 1] < s) best[p] = best[p - 1], ids[p] = ids[p - 1], p--;
        best[p] = s, ids[p] = i;
    }
}

Test(hnsw, recall_against_exact_and_a_round_trip) {
    enum { N = 3000, D = 48, CENTERS = 30, Q = 100, K = 10 };
    float *v = malloc((size_t)(N + Q) * D * sizeof *v), *centers = malloc((size_t)CENTERS * D * sizeof *centers);
    gl_rng r;
    gl_rng_seed(&r, 3);
    for (int i = 0; i < CENTERS * D; i++) centers[i] = gl_rng_normal(&r);
    for (int i = 0; i < N + Q; i++) { /* clustered, as embeddings of documents are; normalized */
        float *x = v + (size_t)i * D, *c = centers + (size_t)(i % CENTERS) * D;
        double ss = 0;
        for (int j = 0; j < D; j++) x[j] = c[j] + 0.6f * gl_rng_normal(&r), ss += (double)x[j] * x[j];
        for (int j = 0; j < D; j++) x[j] /= (float)sqrt(ss);
    }
    hnsw *h = hnsw_build(v, N, D, HNSW_DEFAULTS);
    double recall = 0;
    int got[K], want[K];
    for (int q = 0; q < Q; q++) {
        const float *x = v + (size_t)(N + q) * D;
        cr_assert_eq(hnsw_search(h, x, K, 64, got, NULL), K);
        exact_top(v, N, D, x, K, want);
        int same = 0;
        for (int a = 0; a < K; a++)
            for (int b = 0; b < K; b++) same += got[a] == want[b];
        recall += same / (double)K;
    }
    recall /= Q;
    cr_log_info("HNSW recall@10 at efSearch 64 on %d clustered vectors of %d dims: %.4f", N, D, recall);
    cr_assert_geq(recall, 0.98, "recall@10 %.4f", recall);
    size_t len;
    unsigned char *bytes = hnsw_serialize(h, &len);
    char err[128];
    hnsw *back = hnsw_deserialize(bytes, len, v, N, D, err, sizeof err);
    cr_assert(back, "%s", err);
    float s1[K], s2[K];
    for (int q = 0; q < 10; q++) { /* the graph read back answers as the one built */
        hnsw_search(h, v + (size_t)(N + q) * D, K, 32, got, s1);
        hnsw_search(back, v + (size_t)(N + q) * D, K, 32, want, s2);
        cr_assert(!memcmp(got, want, sizeof got) && !memcmp(s1, s2, sizeof s1));
    }
    hnsw_free(back);
    cr_assert_null(hnsw_deserialize(bytes, len, v, N - 1, D, err, sizeof err), "another vector count is refused");
    bytes[8 + 7 * 4 + 5] ^= 0x7f; /* a link of node 0 out of range */
    cr_assert_null(hnsw_deserialize(bytes, len, v, N, D, err, sizeof err));
    cr_assert(strstr(err, "damaged"), "%s", err);
    cr_assert_null(hnsw_deserialize(bytes, len - 4, v, N, D, err, sizeof err), "a cut graph is refused");
    free(bytes);
    hnsw_free(h);
    free(v), free(centers);
}

Test(eval, metrics_on_known_rankings) {
    int ranked[5] = {7, 3, 1, 9, 4}, one[1] = {1}, two[2] = {3, 4}, none[1] = {8};
    cr_assert_eq(eval_recall(ranked, 5, one, 1, 1), 0.0);
    cr_assert_eq(eval_recall(ranked, 5, one, 1, 3), 1.0);
    cr_assert_eq(eval_recall(ranked, 5, two, 2, 2), 0.5);
    cr_assert_eq(eval_recall(ranked, 5, two, 2, 5), 1.0);
    cr_assert_eq(eval_mrr(ranked, 5, one, 1, 10), 1.0 / 3);
    cr_assert_eq(eval_mrr(ranked, 5, one, 1, 2), 0.0, "outside the cut-off");
    cr_assert_eq(eval_mrr(ranked, 5, none, 1, 10), 0.0);
    cr_assert_eq(eval_first_rank(ranked, 5, two, 2), 2);
    /* relevant at ranks 2 and 5: (1/log2 3 + 1/log2 6) / (1 + 1/log2 3) */
    double want = (1 / log2(3.0) + 1 / log2(6.0)) / (1 + 1 / log2(3.0));
    cr_assert(fabs(eval_ndcg(ranked, 5, two, 2, 10) - want) < 1e-15, "nDCG %.17g", eval_ndcg(ranked, 5, two, 2, 10));
    int perfect[2] = {3, 4};
    cr_assert_eq(eval_ndcg(perfect, 2, two, 2, 10), 1.0);
}

/* ---- the store ---- */

/* an index of one page with two sections; with_vectors: 3-dimensional test embeddings for them */
static void write_index(const char *path, const char *text, bool with_vectors) {
    char err[256];
    chunk_list l = {0};
    chunk_page("a.md", text, strlen(text), (chunk_config){CHUNK_HEADING, 200, 40}, &l);
    float vectors[2 * 3] = {1, 0, 0, 0, 0.6f, 0.8f};
    store_writer *w = store_begin(path, (chunk_config){CHUNK_HEADING, 200, 40}, with_vectors ? "test" : NULL,
                                  with_vectors ? 3 : 0, err, sizeof err);
    cr_assert(w, "%s", err);
    cr_assert(l.n <= 2);
    cr_assert(store_add_page(w, "a.md", (const unsigned char *)text, strlen(text), &l, with_vectors ? vectors : NULL,
                             err, sizeof err), "%s", err);
    cr_assert(store_commit(w, err, sizeof err), "%s", err);
    chunk_list_free(&l);
}

Test(store, round_trip_refusals_and_an_interrupted_index) {
    mkdir("out", 0755), mkdir("out/test", 0755);
    const char *path = "out/test/rag_store.db";
    char err[256];
    write_index(path, "# A\n\nalpha beta.\n\n## B\n\ngamma delta.\n", true);
    store s;
    cr_assert(store_load(path, &s, err, sizeof err), "%s", err);
    cr_assert(s.n_pages == 1 && s.n_chunks == 2 && !strcmp(s.pages[0].path, "a.md"));
    cr_assert_str_eq(s.chunks[1].heading, "A > B");
    cr_assert_str_eq(s.chunks[1].text, "A > B\ngamma delta.");
    cr_assert(s.dims == 3 && !strcmp(s.embedder, "test") && s.vectors[4] == 0.6f && s.vectors[0] == 1, "embeddings kept");
    int ids[4];
    cr_assert_eq(store_fts_search(path, "What about GAMMA?", 4, ids, err, sizeof err), 1, "%s", err);
    cr_assert_eq(ids[0], 1);
    store_free(&s);
    /* an index begun and abandoned (a crash, a full disk) leaves the old one whole, and no temporary */
    chunk_list none = {0};
    store_writer *w = store_begin(path, (chunk_config){CHUNK_WINDOW, 50, 10}, NULL, 0, err, sizeof err);
    cr_assert(store_add_page(w, "b.md", (const unsigned char *)"x", 1, &none, NULL, err, sizeof err));
    store_abort(w);
    cr_assert(store_load(path, &s, err, sizeof err) && s.n_chunks == 2, "the previous index is intact");
    store_free(&s);
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid());
    cr_assert(access(tmp, F_OK) != 0, "the temporary is gone");
    /* refusals, each naming the file */
    cr_assert(!store_load("out/test/no_such.db", &s, err, sizeof err) && strstr(err, "rag index"), "%s", err);
    FILE *f = fopen("out/test/rag_garbage.db", "wb");
    fputs("this is not a database at all, just text that is long enough to look like a header", f);
    fclose(f);
    cr_assert(!store_load("out/test/rag_garbage.db", &s, err, sizeof err) && strstr(err, "rag_garbage.db"), "%s", err);
    f = fopen("out/test/rag_truncated.db", "wb");
    unsigned char *bytes;
    size_t len;
    cr_assert(gl_read_whole_file(path, &bytes, &len, err, sizeof err));
    fwrite(bytes, 1, len / 3, f);
    fclose(f);
    free(bytes);
    cr_assert(!store_load("out/test/rag_truncated.db", &s, err, sizeof err) && strstr(err, "rag_truncated.db"), "%s", err);
}

/* ---- all-MiniLM-L6-v2: the WordPiece tokenizer against Hugging Face tokenizers, the encoder against PyTorch ---- */

static gl_json *minilm_fixture(unsigned char **text) {
    size_t len;
    char err[256];
    cr_assert(gl_read_whole_file("tests/ref/minilm_fixture.json", text, &len, err, sizeof err), "%s", err);
    gl_json *doc = gl_json_parse((const char *)*text, len, err, sizeof err);
    cr_assert(doc, "%s", err);
    return doc;
}

Test(wordpiece, ids_equal_hugging_face_tokenizers) {
    char err[256];
    gl_wordpiece *w = gl_wordpiece_load("tests/ref/minilm_vocab.txt", err, sizeof err);
    cr_assert(w, "%s", err);
    unsigned char *text;
    gl_json *doc = minilm_fixture(&text);
    const gl_json *texts = gl_json_get(doc, "texts"), *ids = gl_json_get(doc, "ids");
    int32_t got[300];
    for (size_t i = 0; i < texts->count; i++) {
        bool cut;
        int n = gl_wordpiece_encode(w, texts->items[i].string, got, 256, &cut);
        const gl_json *want = &ids->items[i];
        cr_assert_eq((size_t)n, want->count, "text %zu (%.40s): %d ids, tokenizers %zu", i, texts->items[i].string, n,
                     want->count);
        for (int k = 0; k < n; k++)
            cr_assert_eq(got[k], (int32_t)want->items[k].number, "text %zu (%.40s) id %d: %d (%s), tokenizers %d (%s)", i,
                         texts->items[i].string, k, got[k], gl_wordpiece_piece(w, got[k]), (int)want->items[k].number,
                         gl_wordpiece_piece(w, (int32_t)want->items[k].number));
        if (want->count < 256) cr_assert(!cut, "text %zu was not cut", i);
    }
    cr_log_info("WordPiece: %zu texts tokenized as tokenizers does", texts->count);
    gl_json_free(doc), free(text);
    gl_wordpiece_free(w);
    cr_assert_null(gl_wordpiece_load("tests/ref/fastapi_mini/MANIFEST.tsv", err, sizeof err));
    cr_assert(strstr(err, "not a WordPiece vocabulary"), "%s", err);
}

Test(bert, minilm_embeddings_match_pytorch) {
    char err[256];
    bert m;
    if (access("data/minilm/model.safetensors", R_OK) != 0) {
        cr_skip_test("data/minilm is absent (make data DATA_SETS=minilm fetches all-MiniLM-L6-v2)");
    }
    cr_assert(bert_load(&m, "data/minilm", err, sizeof err), "%s", err);
    unsigned char *text;
    gl_json *doc = minilm_fixture(&text);
    const gl_json *texts = gl_json_get(doc, "embedded"), *embs = gl_json_get(doc, "embeddings");
    float e[384];
    double worst = 1;
    for (size_t i = 0; i < texts->count; i++) {
        bert_embed(&m, texts->items[i].string, e, NULL);
        double dot = 0, nn = 0;
        for (int k = 0; k < 384; k++) dot += e[k] * embs->items[i].items[k].number, nn += (double)e[k] * e[k];
        cr_assert(fabs(nn - 1) < 1e-5, "the embedding is L2-normalized");
        cr_assert_geq(dot, 0.9999, "text %zu (%.40s): cosine %.7f with PyTorch", i, texts->items[i].string, dot);
        worst = dot < worst ? dot : worst;
    }
    cr_log_info("MiniLM: %zu embeddings, lowest cosine with PyTorch %.8f", texts->count, worst);
    gl_json_free(doc), free(text);
    bert_free(&m);
}

/* ---- dense and hybrid search over a small index with embeddings ---- */

Test(search, dense_and_hybrid_rank_the_answering_page_first) {
    if (access("data/minilm/model.safetensors", R_OK) != 0)
        cr_skip_test("data/minilm is absent (make data DATA_SETS=minilm fetches all-MiniLM-L6-v2)");
    char err[256];
    bert m;
    cr_assert(bert_load(&m, "data/minilm", err, sizeof err), "%s", err);
    mkdir("out", 0755), mkdir("out/test", 0755);
    const char *db = "out/test/rag_dense.db", *pages[3] = {"tutorial/cors.md", "tutorial/middleware.md", "tutorial/testing.md"};
    store_writer *w = store_begin(db, (chunk_config){CHUNK_HEADING, 200, 40}, "all-MiniLM-L6-v2", 384, err, sizeof err);
    cr_assert(w, "%s", err);
    for (int p = 0; p < 3; p++) {
        char path[256];
        snprintf(path, sizeof path, "tests/ref/fastapi_mini/%s", pages[p]);
        unsigned char *md;
        size_t len;
        cr_assert(gl_read_whole_file(path, &md, &len, err, sizeof err), "%s", err);
        chunk_list l = {0};
        chunk_page(pages[p], (const char *)md, len, (chunk_config){CHUNK_HEADING, 200, 40}, &l);
        float *v = malloc((size_t)l.n * 384 * sizeof *v);
        for (int c = 0; c < l.n; c++) bert_embed(&m, l.items[c].text, v + (size_t)c * 384, NULL);
        cr_assert(store_add_page(w, pages[p], md, len, &l, v, err, sizeof err), "%s", err);
        free(v), free(md);
        chunk_list_free(&l);
    }
    cr_assert(store_commit(w, err, sizeof err), "%s", err);
    bert_free(&m);
    search_index ix;
    cr_assert(search_open(&ix, db, "hybrid", NULL, err, sizeof err), "%s", err);
    search_hit hits[3];
    const char *q[3] = {"my browser app on another origin cannot call the API", /* no shared words with "CORS" */
                        "run some code for every request, before and after it is handled",
                        "write automated checks for my endpoints with pytest"};
    for (int i = 0; i < 3; i++) {
        int n = search_rank_pages(&ix, "dense", q[i], hits);
        cr_assert(n == 3 && hits[0].page == i, "dense, question %d: first is %s", i, ix.st.pages[hits[0].page].path);
        cr_assert(hits[0].score > hits[1].score && hits[0].score <= 1.0f + 1e-5f, "cosines, best first");
        n = search_rank_pages(&ix, "hybrid", q[i], hits);
        cr_assert(n >= 1 && hits[0].page == i, "hybrid, question %d: first is %s", i, ix.st.pages[hits[0].page].path);
    }
    /* a question longer than the encoder's 256 tokens is read from its start, and the index says so */
    char longq[4096] = "";
    for (int i = 0; i < 80; i++) strcat(longq, "cors origins browser ");
    cr_assert(search_rank_pages(&ix, "dense", longq, hits) >= 1 && ix.query_truncated, "a 240-word question is cut");
    cr_assert(search_rank_pages(&ix, "dense", q[0], hits) >= 1 && !ix.query_truncated, "a short one is not");
    /* extractive answers: the docs' own sentences, each cited; far from every page: not found */
    answer a;
    answer_extract(&ix, "hybrid", "Which origins may call my API from a browser, and how do I allow them?", ANSWER_DEFAULTS, &a);
    int bad = 0;
    cr_assert(a.found && a.n_sources == 3 && a.sources[0].page == 0, "the CORS page first: %s", a.text);
    cr_assert(strstr(a.text, "[1]") && answer_citations_valid(a.text, a.n_sources, &bad), "%s", a.text);
    answer_free(&a);
    answer_extract(&ix, "hybrid", "How do I bake sourdough bread at home?", ANSWER_DEFAULTS, &a);
    cr_assert(!a.found && !strcmp(a.text, "not found in the docs") && a.best < 0.35, "best %.3f: %s", a.best, a.text);
    answer_free(&a);
    search_close(&ix);
    /* an index without embeddings cannot serve dense search, and says why */
    write_index("out/test/rag_plain.db", "# A\n\nalpha.\n", false);
    cr_assert(!search_open(&ix, "out/test/rag_plain.db", "dense", NULL, err, sizeof err));
    cr_assert(strstr(err, "has no embeddings"), "%s", err);
}
