#include "assistant.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api.h"

const char *const ASSIST_KIND_NAMES[5] = {"answer", "not_found", "out_of_scope", "blocked_input", "blocked_output"};

static const char OUT_OF_SCOPE_TEXT[] =
    "Sorry, I can only help with questions about the FastAPI documentation. Ask me how to do something with FastAPI "
    "(CORS, background tasks, errors, testing, deployment...) and I will answer from the docs, with the sections cited.";
static const char NOT_FOUND_TEXT[] =
    "Not found in the docs: the FastAPI documentation indexed here does not answer this, so I will not guess.";
static const char OUTPUT_BLOCKED_TEXT[] =
    "I can't share that: the reply was withheld by the output guard (it contained a secret or a card number).";

static double seconds_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* the words that make a question the docs' business even when the docs do not answer it */
static const char *const DOMAIN_WORDS[] = {
    "fastapi", "api", "apis", "endpoint", "endpoints", "request", "requests", "response", "responses", "pydantic",
    "starlette", "uvicorn", "gunicorn", "asgi", "http", "https", "route", "routes", "router", "routing", "path",
    "query", "header", "headers", "cookie", "cookies", "json", "middleware", "cors", "dependency", "dependencies",
    "depends", "websocket", "websockets", "oauth", "oauth2", "jwt", "token", "tokens", "database", "sql", "sqlalchemy",
    "orm", "docker", "deploy", "deployment", "server", "async", "await", "python", "openapi", "swagger", "redoc",
    "schema", "status", "form", "forms", "upload", "file", "files", "test", "tests", "testing", "testclient",
    "background", "security", "authentication", "auth", "password", "lifespan", "template", "templates", "static",
    "proxy", "app", "application", "web", "url", "urls", "body", "parameter", "parameters", "validation", "model",
    "models", "graphql", "celery", "redis", "kafka", "http2", "ssl", "tls", "subdependency", "callback", "webhook",
    "webhooks", "pytest", "typer", "mount", "subapplication", "encoder", "serialize", "streaming", "sse", "pip",
    "uv", "virtualenv", "venv", "environment", "settings", "env"};

bool assistant_in_domain(const char *question) {
    /* BEGIN SOLUTION lab12: whole words only: split the question at every byte that is not a letter or digit, lowercase each word (up to 31 bytes), and return true as soon as one is in DOMAIN_WORDS ("apiary" is not "api") */
    char word[32];
    for (const char *p = question; *p;) {
        while (*p && !isalnum((unsigned char)*p)) p++;
        size_t n = 0;
        while (isalnum((unsigned char)*p)) {
            if (n + 1 < sizeof word) word[n++] = (char)tolower((unsigned char)*p);
            p++;
        }
        word[n] = 0;
        if (!n) continue;
        for (size_t k = 0; k < sizeof DOMAIN_WORDS / sizeof *DOMAIN_WORDS; k++)
            if (!strcmp(word, DOMAIN_WORDS[k])) return true;
    }
    return false;
    /* END SOLUTION */
}

static int by_string(const void *x, const void *y) { return strcmp(*(char *const *)x, *(char *const *)y); }

/* the dictionary's words, lowercased and sorted; none if the file is missing */
static void load_words(assistant *a, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[128];
    int cap = 0;
    while (fgets(line, sizeof line, f)) {
        size_t n = strcspn(line, "\r\n");
        line[n] = 0;
        for (size_t i = 0; i < n; i++) line[i] = (char)tolower((unsigned char)line[i]);
        if (n < 3) continue;
        if (a->n_words == cap) cap = cap ? 2 * cap : 1 << 16, a->words = realloc(a->words, (size_t)cap * sizeof *a->words);
        a->words[a->n_words++] = strdup(line);
    }
    fclose(f);
    if (a->words) qsort(a->words, (size_t)a->n_words, sizeof *a->words, by_string);
}

typedef struct {
    const assistant *a;
    char *term;
    size_t len;
    bool found;
} unknown_search;

static void check_term(const char *tok, size_t n, void *ctx) {
    unknown_search *u = ctx;
    if (u->found || n < 3 || n >= 64) return;
    char w[64];
    for (size_t i = 0; i < n; i++) {
        if (!isalpha((unsigned char)tok[i])) return;
        w[i] = tok[i];
    }
    w[n] = 0;
    /* BEGIN SOLUTION lab12: the unknown-term test for the word w: return if any chunk holds it (bm25_doc_freq of u->a->ix.bm) or the sorted dictionary u->a->words lists it (bsearch with by_string); otherwise copy it into u->term (u->len bytes) and set u->found */
    const char *key = w;
    if (bm25_doc_freq(u->a->ix.bm, w) > 0 || bsearch(&key, u->a->words, (size_t)u->a->n_words, sizeof *u->a->words, by_string))
        return;
    snprintf(u->term, u->len, "%s", w);
    u->found = true;
    /* END SOLUTION */
}

bool assistant_unknown_term(const assistant *a, const char *question, char *term, size_t len) {
    if (!a->words || !a->ix.bm) return false;
    unknown_search u = {a, term, len, false};
    bm25_tokens(question, check_term, &u);
    return u.found;
}

bool assistant_open(assistant *a, const char *db, const char *method, const char *model_dir,
                    const char *generator_gguf, const guard_rules *guard, char *err, size_t err_len) {
    memset(a, 0, sizeof *a);
    a->guard = guard;
    a->ctx = gl_context_new();
    gl_context *previous = gl_context_use(a->ctx);
    bool ok = search_open(&a->ix, db, "bm25", model_dir, err, err_len);
    if (ok && a->ix.st.vectors) ok = search_use_encoder(&a->ix, model_dir, err, err_len);
    a->method = ok && a->ix.have_enc ? "hybrid" : "bm25";
    if (ok && method && !strcmp(method, "rerank")) {
        if (!a->ix.have_enc) snprintf(err, err_len, "%s: rerank needs an index with embeddings (rag index without --no-embed)", db), ok = false;
        else ok = search_use_reranker(&a->ix, NULL, err, err_len), a->method = "rerank";
    } else if (ok && method && strcmp(method, "hybrid")) {
        snprintf(err, err_len, "the assistant's method is hybrid or rerank, not '%s'", method);
        ok = false;
    }
    if (ok && generator_gguf) {
        ok = llama_load(&a->gen, generator_gguf, err, err_len);
        if (ok && (!a->gen.tok || !a->gen.chatml)) {
            snprintf(err, err_len, "%s: the generator needs a tokenizer and a ChatML template", generator_gguf);
            llama_free(&a->gen);
            ok = false;
        }
        if (ok) {
            llama_cache_init(&a->gen_cache, &a->gen, a->gen.cfg.ctx_len < 2048 ? a->gen.cfg.ctx_len : 2048, true);
            a->have_generator = true;
        }
    }
    gl_context_use(previous);
    if (!ok) {
        search_close(&a->ix);
        gl_context_free(a->ctx);
        memset(a, 0, sizeof *a);
        return false;
    }
    load_words(a, ASSISTANT_WORDS);
    pthread_mutex_init(&a->lock, NULL);
    return true;
}

void assistant_close(assistant *a) {
    if (a->have_generator) llama_cache_free(&a->gen_cache), llama_free(&a->gen);
    search_close(&a->ix);
    gl_context_free(a->ctx);
    for (int i = 0; i < a->n_words; i++) free(a->words[i]);
    free(a->words);
    pthread_mutex_destroy(&a->lock);
    memset(a, 0, sizeof *a);
}

/* a chunk may become a source only if the injection rules find nothing planted in it */
static bool admit_chunk(const char *text, void *ctx) {
    const guard_rules *g = ctx;
    guard_verdict v;
    return !g || guard_rules_injection(g, text, strlen(text), &v);
}

static void tool_step(gl_strbuf *b, const char *tool, const char *args_json, const char *result) {
    gl_sb_printf(b, "%s{\"tool\": \"%s\", \"arguments\": %s, \"result\": ", b->len > 1 ? ", " : "", tool, args_json);
    api_json_string(b, result, strlen(result));
    gl_sb_puts(b, "}");
}

void assistant_ask(assistant *a, const char *question, assist_reply *r) {
    memset(r, 0, sizeof *r);
    double t0 = seconds_now();
    gl_sb_puts(&r->tools, "[");
    guard_verdict v;
    if (a->guard && !guard_rules_injection(a->guard, question, strlen(question), &v)) {
        r->kind = ASSIST_BLOCKED_INPUT;
        snprintf(r->note, sizeof r->note, "%s: %s", v.check, v.reason);
        r->text = strdup("I can't help with that: the request was blocked by the input guard.");
        gl_sb_puts(&r->tools, "]");
        r->seconds = seconds_now() - t0;
        return;
    }
    pthread_mutex_lock(&a->lock);
    gl_context *previous = gl_context_use(a->ctx);
    answer_config c = ANSWER_DEFAULTS;
    c.min_cosine = ASSISTANT_MIN_COSINE;
    c.sentence_margin = ASSISTANT_SENTENCE_MARGIN;
    c.admit = admit_chunk, c.admit_ctx = (void *)a->guard;
    answer_extract(&a->ix, a->method, question, c, &r->sources);
    r->best = r->sources.best;
    { /* search_docs: what the retrieval returned */
        gl_strbuf args = {0}, res = {0};
        gl_sb_puts(&args, "{\"query\": ");
        api_json_string(&args, question, strlen(question));
        gl_sb_puts(&args, "}");
        gl_sb_printf(&res, "%s, %d page(s), best %.3f", a->method, r->sources.n_sources, r->best);
        if (r->sources.n_dropped) gl_sb_printf(&res, "; %d chunk(s) passed over: planted instructions", r->sources.n_dropped);
        tool_step(&r->tools, "search_docs", args.p, res.p ? res.p : "");
        gl_sb_free(&args), gl_sb_free(&res);
    }
    bool in_domain = assistant_in_domain(question);
    char term[64];
    if (r->sources.found && assistant_unknown_term(a, question, term, sizeof term)) {
        r->kind = ASSIST_NOT_FOUND;
        snprintf(r->note, sizeof r->note, "the docs never mention '%s' (and it is not an English word)", term);
        gl_strbuf t = {0};
        gl_sb_printf(&t, "Not found in the docs: the FastAPI documentation indexed here never mentions '%s', so I will "
                         "not guess.", term);
        r->text = t.p;
        r->sources.n_sources = 0;
    } else if (!r->sources.found || (!a->ix.have_enc && !in_domain)) {
        /* without embeddings BM25 finds a page for any shared word: the domain words alone decide the scope then */
        bool scope = in_domain || (a->ix.have_enc && r->best >= ASSISTANT_SCOPE_COSINE);
        r->kind = scope ? ASSIST_NOT_FOUND : ASSIST_OUT_OF_SCOPE;
        snprintf(r->note, sizeof r->note, "best chunk %.3f%s; %s", r->best, a->ix.have_enc ? " < the answer threshold" : "",
                 in_domain ? "the question names the domain" : scope ? "close enough to the docs to be their business"
                                                                 : "no domain word and far from every chunk");
        r->text = strdup(scope ? NOT_FOUND_TEXT : OUT_OF_SCOPE_TEXT);
        r->sources.n_sources = 0;
    } else {
        r->kind = ASSIST_ANSWER;
        for (int s = 0; s < r->sources.n_sources; s++) { /* read_section: each source's text is what the answer quotes */
            const store_chunk *ch = &a->ix.st.chunks[r->sources.sources[s].chunk];
            gl_strbuf args = {0}, res = {0};
            gl_sb_puts(&args, "{\"page\": ");
            const char *page = a->ix.st.pages[ch->page].path;
            api_json_string(&args, page, strlen(page));
            gl_sb_puts(&args, ", \"section\": ");
            api_json_string(&args, ch->heading, strlen(ch->heading));
            gl_sb_puts(&args, "}");
            gl_sb_printf(&res, "source [%d], %zu bytes", s + 1, strlen(ch->text));
            tool_step(&r->tools, "read_section", args.p, res.p);
            gl_sb_free(&args), gl_sb_free(&res);
        }
        r->text = strdup(r->sources.text);
        int sentences = 0;
        for (const char *t = r->text; (t = strchr(t, '[')) != NULL; t++) sentences += isdigit((unsigned char)t[1]) != 0;
        snprintf(r->note, sizeof r->note, "extractive: %d sentence(s) of the docs", sentences);
        if (a->have_generator) {
            answer_generated g;
            answer_generate(&a->ix, &a->gen, &a->gen_cache, question, &r->sources, 160, &g);
            r->generated_tokens = g.tokens;
            if (g.supported && g.text && *g.text) {
                free(r->text);
                r->text = strdup(g.text), r->generated = true;
                snprintf(r->note, sizeof r->note, "generated by the model and supported by its sources");
            } else snprintf(r->note, sizeof r->note, "extractive; the generated answer was refused: %.250s", g.reason);
            answer_generated_free(&g);
        }
        guard_verdict cv;
        r->supported = guard_citations(&a->ix, &r->sources, r->text, &cv);
        if (a->guard && !guard_secrets(a->guard, r->text, strlen(r->text), &v)) {
            r->kind = ASSIST_BLOCKED_OUTPUT;
            snprintf(r->note, sizeof r->note, "%s: %s", v.check, v.reason);
            free(r->text);
            r->text = strdup(OUTPUT_BLOCKED_TEXT);
            r->sources.n_sources = 0;
        }
    }
    gl_context_use(previous);
    pthread_mutex_unlock(&a->lock);
    gl_sb_puts(&r->tools, "]");
    r->seconds = seconds_now() - t0;
}

void assist_reply_free(assist_reply *r) {
    free(r->text);
    answer_free(&r->sources);
    gl_sb_free(&r->tools);
    memset(r, 0, sizeof *r);
}

void assistant_source_url(const assistant *a, const answer *s, int n, char *out, size_t len) {
    int chunk = s->sources[n - 1].chunk;
    snprintf(out, len, "/docs/%s#chunk-%d", a->ix.st.pages[a->ix.st.chunks[chunk].page].path, chunk);
}

void assistant_citations_json(const assistant *a, const assist_reply *r, gl_strbuf *b) {
    gl_sb_puts(b, "[");
    for (int s = 0; s < r->sources.n_sources; s++) {
        const store_chunk *ch = &a->ix.st.chunks[r->sources.sources[s].chunk];
        const char *page = a->ix.st.pages[ch->page].path;
        char url[600];
        assistant_source_url(a, &r->sources, s + 1, url, sizeof url);
        gl_sb_printf(b, "%s{\"n\": %d, \"page\": ", s ? ", " : "", s + 1);
        api_json_string(b, page, strlen(page));
        gl_sb_puts(b, ", \"heading\": ");
        api_json_string(b, ch->heading, strlen(ch->heading));
        gl_sb_puts(b, ", \"url\": ");
        api_json_string(b, url, strlen(url));
        gl_sb_puts(b, "}");
    }
    gl_sb_puts(b, "]");
}

void assistant_ranking_json(const assistant *a, const assist_reply *r, gl_strbuf *b) {
    gl_sb_puts(b, "[");
    for (int i = 0; i < r->sources.n_ranked; i++) {
        const char *page = a->ix.st.pages[r->sources.ranked[i]].path;
        if (i) gl_sb_puts(b, ", ");
        api_json_string(b, page, strlen(page));
    }
    gl_sb_puts(b, "]");
}

static void html_text(gl_strbuf *b, const char *s) {
    for (; *s; s++) {
        if (*s == '<') gl_sb_puts(b, "&lt;");
        else if (*s == '>') gl_sb_puts(b, "&gt;");
        else if (*s == '&') gl_sb_puts(b, "&amp;");
        else if (*s == '"') gl_sb_puts(b, "&quot;");
        else gl_sb_put(b, s, 1);
    }
}

bool assistant_render_page(const assistant *a, const char *path, gl_strbuf *html) {
    int page = -1;
    for (int p = 0; p < a->ix.st.n_pages && page < 0; p++)
        if (!strcmp(a->ix.st.pages[p].path, path)) page = p;
    if (page < 0) return false;
    gl_sb_puts(html, "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>");
    html_text(html, path);
    gl_sb_puts(html, " - FastAPI docs (gradlab assistant)</title>\n<style>body{font:16px/1.5 system-ui,sans-serif;"
                     "max-width:52rem;margin:2rem auto;padding:0 1rem}section{border-left:3px solid #ddd;padding:0 1rem;"
                     "margin:1.5rem 0}section:target{border-color:#0a7;background:#f1fbf7}pre{white-space:pre-wrap;"
                     "font:14px/1.45 ui-monospace,monospace}h2{font-size:1rem;color:#555}</style></head><body>\n"
                     "<p><a href=\"/\">&larr; back to the assistant</a></p>\n<h1>");
    html_text(html, path);
    gl_sb_puts(html, "</h1>\n");
    for (int c = 0; c < a->ix.st.n_chunks; c++) {
        const store_chunk *ch = &a->ix.st.chunks[c];
        if (ch->page != page) continue;
        const char *body = strchr(ch->text, '\n');
        gl_sb_printf(html, "<section id=\"chunk-%d\"><h2>", c);
        html_text(html, ch->heading);
        gl_sb_puts(html, "</h2><pre>");
        html_text(html, body ? body + 1 : ch->text);
        gl_sb_puts(html, "</pre></section>\n");
    }
    gl_sb_puts(html, "</body></html>\n");
    return true;
}
