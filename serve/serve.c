/* serve: an OpenAI-compatible HTTP server for a GGUF Llama model or a GPT checkpoint, with continuous batching
 * (models/scheduler.h),
 * streaming (server-sent events), Prometheus metrics and limits. HTTP is libmicrohttpd's (a thread per connection,
 * so a stream waits in its own thread and concurrency is bounded by --max-connections, not by a worker pool); the
 * model runs on one engine thread that serves every slot. `serve --help` lists the flags; docs/serving.md. */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <omp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "assistant.h"
#include "assistant_page.h"
#include "bert.h"
#include "cli.h"
#include "codec.h"
#include "gpt_io.h"
#include "grammar.h"
#include "guard.h"
#include "textclf.h"
#include "json.h"
#include "llama.h"
#include "scheduler.h"
#include "schema.h"

typedef struct {
    const char *gguf, *checkpoint, *host, *api_key, *device, *model_name, *embed_model, *guard_model, *log_path;
    const char *assistant_db, *assistant_method;
    bool guard, assistant_generate;
    double cost_per_hour;
    int port, slots, ctx, threads, max_connections, prefill_chunk, queue;
    double timeout_s, idle_s, grace_s;
    size_t max_body;
} options;

static void usage(FILE *f) {
    fprintf(f, "usage: serve --gguf FILE | --checkpoint CKPT [flags]\n"
               "  --device cpu|cuda (cuda: a make CUDA=1 build, build/cuda/serve)\n"
               "  --embed-model DIR (all-MiniLM-L6-v2 from make data DATA_SETS=minilm: POST /v1/embeddings)\n"
               "  --host 127.0.0.1  --port 8080  --api-key KEY (requests then need Authorization: Bearer KEY)\n"
               "  --slots 4 (sequences decoded together)  --ctx 2048 (positions per slot)  --threads N\n"
               "  --prefill-chunk 256 (prompt tokens per engine step)  --queue 64 (waiting requests; more get 429)\n"
               "  --max-connections 128  --max-body 1048576 (bytes)  --timeout 600 (seconds per request)\n"
               "  --idle-timeout 60 (seconds without traffic on a connection)  --grace 10 (seconds at shutdown)\n"
               "  --guard (chat requests: the input injection rules, the output secrets check; docs/guardrails.md)\n"
               "  --guard-model FILE (and a text classifier from lab 11, e.g. out/lab11/injection.clf; implies --guard)\n"
               "  --log FILE (one JSON line per request: route, status, latency, time to first token, tokens, cost)\n"
               "  --cost-per-hour 0.10 (USD per hour of the machine, for the log's cost estimate)\n"
               "  --assistant DB (lab 12: chat requests answered from a `rag index` of the FastAPI docs with citations;\n"
               "                  the web page at /, the cited pages at /docs/PAGE; implies --guard; docs/assistant.md)\n"
               "  --assistant-method hybrid|rerank  --assistant-generate (SmolLM2 writes; kept where its sources support it)\n"
               "routes: POST /v1/chat/completions, /v1/completions, /v1/embeddings, /tokenize, /detokenize;\n"
               "        GET /v1/models, /health, / and /docs/PAGE (--assistant),\n"
               "        /metrics. SIGTERM or SIGINT: stop accepting, finish or cancel what runs, exit 0.\n");
}

static options parse_options(int argc, char **argv) {
    options o = {.host = "127.0.0.1", .device = "cpu", .port = 8080, .slots = 4, .ctx = 2048, .max_connections = 128,
                 .prefill_chunk = 256, .queue = 64, .timeout_s = 600, .idle_s = 60, .grace_s = 10, .max_body = 1 << 20,
                 .cost_per_hour = 0.10};
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) usage(stdout), exit(0);
        if (!strcmp(f, "--guard") || !strcmp(f, "--assistant-generate")) {
            if (!strcmp(f, "--guard")) o.guard = true;
            else o.assistant_generate = true;
            continue;
        }
        if (i + 1 >= argc) fprintf(stderr, "serve: %s needs a value\n", f), exit(2);
        const char *v = argv[++i];
        if (!strcmp(f, "--gguf")) o.gguf = v;
        else if (!strcmp(f, "--checkpoint")) o.checkpoint = v;
        else if (!strcmp(f, "--embed-model")) o.embed_model = v;
        else if (!strcmp(f, "--host")) o.host = v;
        else if (!strcmp(f, "--api-key")) o.api_key = v;
        else if (!strcmp(f, "--guard-model")) o.guard_model = v, o.guard = true;
        else if (!strcmp(f, "--log")) o.log_path = v;
        else if (!strcmp(f, "--assistant")) o.assistant_db = v, o.guard = true;
        else if (!strcmp(f, "--assistant-method")) o.assistant_method = v;
        else if (!strcmp(f, "--cost-per-hour")) o.cost_per_hour = gl_flag_number("serve", f, v, 0, 1e6);
        else if (!strcmp(f, "--device")) o.device = v;
        else if (!strcmp(f, "--port")) o.port = gl_flag_int("serve", f, v, 1, 65535);
        else if (!strcmp(f, "--slots")) o.slots = gl_flag_int("serve", f, v, 1, 256);
        else if (!strcmp(f, "--ctx")) o.ctx = gl_flag_int("serve", f, v, 16, 1 << 20);
        else if (!strcmp(f, "--threads")) o.threads = gl_flag_int("serve", f, v, 1, 1024);
        else if (!strcmp(f, "--prefill-chunk")) o.prefill_chunk = gl_flag_int("serve", f, v, 1, 1 << 16);
        else if (!strcmp(f, "--queue")) o.queue = gl_flag_int("serve", f, v, 0, 1 << 16);
        else if (!strcmp(f, "--max-connections")) o.max_connections = gl_flag_int("serve", f, v, 1, 65536);
        else if (!strcmp(f, "--max-body")) o.max_body = (size_t)gl_flag_int("serve", f, v, 1024, 1 << 30);
        else if (!strcmp(f, "--timeout")) o.timeout_s = gl_flag_number("serve", f, v, 1, 86400);
        else if (!strcmp(f, "--idle-timeout")) o.idle_s = gl_flag_number("serve", f, v, 1, 86400);
        else if (!strcmp(f, "--grace")) o.grace_s = gl_flag_number("serve", f, v, 0, 3600);
        else fprintf(stderr, "serve: unknown flag '%s'\n", f), usage(stderr), exit(2);
    }
    if (!o.gguf == !o.checkpoint)
        fprintf(stderr, "serve: give --gguf FILE (make data DATA_SETS=smollm2 fetches SmolLM2) or --checkpoint CKPT "
                        "(a GPT from train), one of them\n"), exit(2);
    if ((o.assistant_method || o.assistant_generate) && !o.assistant_db)
        fprintf(stderr, "serve: --assistant-method and --assistant-generate need --assistant DB\n"), exit(2);
    if (o.assistant_generate && !o.gguf)
        fprintf(stderr, "serve: --assistant-generate needs --gguf (an instruction model with a ChatML template)\n"), exit(2);
    if (strcmp(o.device, "cpu") && strcmp(o.device, "cuda"))
        fprintf(stderr, "serve: --device must be cpu or cuda, got '%s'\n", o.device), exit(2);
    if (!strcmp(o.device, "cuda") && !gl_cuda_linked())
        fprintf(stderr, "serve: --device cuda needs the CUDA build (make CUDA=1 build/cuda/serve)\n"), exit(2);
    return o;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ================================================================ the server's state */

static options opt;
static sched *engine;

/* ---- the model served: a Llama model with its tokenizer and chat template, or a GPT with its checkpoint's
 * tokenizer (characters or BPE) and no template ---- */
static llama model;       /* with --gguf */
static gpt gpt_model;     /* with --checkpoint */
static gl_codec gpt_codec;
static bool is_gpt;
static int vocab_size;
static gl_vocab_trie *vocab_trie; /* the tokens' bytes, for constrained output */
static int32_t stop_tokens[2];
static pthread_mutex_t tok_lock = PTHREAD_MUTEX_INITIALIZER; /* the tokenizer's caches are not thread-safe */
static pthread_mutex_t work_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work_cv = PTHREAD_COND_INITIALIZER;
static bool stopping;
static int in_flight; /* jobs the engine holds */
static volatile sig_atomic_t got_signal;
static long long next_id;

/* ---- guardrails (--guard) and the request log (--log) ---- */
static guard_rules *guard;
static tc_classifier guard_clf;
static bool have_guard_clf;
static FILE *request_log;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static assistant helper; /* --assistant */
static bool have_assistant;
enum { GUARD_INPUT_BLOCK, GUARD_INPUT_PASS, GUARD_OUTPUT_BLOCK, GUARD_OUTPUT_PASS, N_GUARD };

/* ---- metrics (Prometheus text at /metrics) ---- */
enum { ROUTE_EMBEDDINGS = 7, ROUTE_PAGE = 8, ROUTE_DOCS = 9, ROUTE_OTHER = 10, N_ROUTES = 11 };

static const double ttft_buckets[] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
static const double itl_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1};
enum { N_TTFT = sizeof ttft_buckets / sizeof *ttft_buckets, N_ITL = sizeof itl_buckets / sizeof *itl_buckets };
static struct {
    pthread_mutex_t lock;
    long long requests[N_ROUTES][7]; /* route x status */
    long long prompt_tokens, generated_tokens, ttft_count[N_TTFT + 1], itl_count[N_ITL + 1], ttft_n, itl_n;
    double ttft_sum, itl_sum;
    long long guard[N_GUARD];
    long long assistant[5]; /* replies by assist_kind */
} metrics = {.lock = PTHREAD_MUTEX_INITIALIZER};
static const char *routes[N_ROUTES] = {"chat_completions", "completions", "models", "health", "metrics", "tokenize",
                                       "detokenize", "embeddings", "page", "docs", "other"};
static const int status_codes[7] = {200, 400, 401, 404, 413, 429, 503};

static void count_request(int route, int status) {
    int k = 6;
    for (int i = 0; i < 7; i++)
        if (status_codes[i] == status) k = i;
    pthread_mutex_lock(&metrics.lock);
    metrics.requests[route][k]++;
    pthread_mutex_unlock(&metrics.lock);
}

static void observe(long long *counts, const double *bounds, int n, double v) {
    int i = 0;
    while (i < n && v > bounds[i]) i++;
    counts[i]++;
}

/* ================================================================ jobs: one request's life */

typedef struct {
    float logprob;
    int32_t token, top_n;
    int32_t top_token[API_MAX_TOP_LOGPROBS];
    float top_logprob[API_MAX_TOP_LOGPROBS];
} token_info;

typedef struct job {
    sched_request req;
    api_request api;
    int32_t *prompt;
    int n_prompt;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    gl_strbuf text;        /* the completion's bytes so far (stop strings cut out) */
    size_t sent;         /* bytes of text already streamed */
    token_info *tokens;  /* one per completion token, for logprobs and usage */
    int n_tokens, cap_tokens;
    bool done, stop_matched, timed_out;
    int refs;            /* the engine's and the connection's */
    double t_submit, t_first, t_last, deadline;
    char id[48];
    long created;
    /* streaming */
    gl_strbuf out;         /* bytes of SSE events not yet handed to the connection */
    size_t out_at;
    int phase;           /* 0 nothing sent, 1 role sent, 2 final chunks queued */
    int logged;          /* tokens whose logprobs have been streamed */
    /* constrained output: response_format or tools (the matcher runs on the engine thread) */
    gl_grammar *grammar;
    gl_grammar_matcher *matcher;
    bool tools_active;
    bool output_blocked; /* --guard: the output check replaced the reply */
    char guard_note[160];
} job;

/* One JSON line per finished request (--log): what `report` aggregates (docs/guardrails.md). The cost is the
 * machine's price for the time the request held one of its slots: latency x cost_per_hour / 3600 / slots. */
static void log_line(int route, int status, bool stream, double latency, double ttft, int prompt_tokens,
                     int completion_tokens, const char *guard_note) {
    if (!request_log) return;
    gl_strbuf b = {0};
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    gl_sb_printf(&b, "{\"time\": %.3f, \"route\": \"%s\", \"status\": %d, \"stream\": %s, \"latency_s\": %.4f, ",
                 wall.tv_sec + wall.tv_nsec * 1e-9, routes[route], status, stream ? "true" : "false", latency);
    if (ttft >= 0) gl_sb_printf(&b, "\"ttft_s\": %.4f, ", ttft);
    else gl_sb_puts(&b, "\"ttft_s\": null, ");
    gl_sb_printf(&b, "\"prompt_tokens\": %d, \"completion_tokens\": %d, \"cost_usd\": %.8f, \"guard\": ",
                 prompt_tokens, completion_tokens, latency * opt.cost_per_hour / 3600.0 / opt.slots);
    api_json_string(&b, guard_note ? guard_note : "", guard_note ? strlen(guard_note) : 0);
    gl_sb_puts(&b, "}\n");
    pthread_mutex_lock(&log_lock);
    fputs(b.p, request_log);
    fflush(request_log);
    pthread_mutex_unlock(&log_lock);
    gl_sb_free(&b);
}

static void log_request(int route, int status, const job *j, bool stream, const char *guard_note) {
    double t = now(), latency = j ? t - j->t_submit : 0, ttft = j && j->t_first > 0 ? j->t_first - j->t_submit : -1;
    log_line(route, status, stream, latency, ttft, j ? j->n_prompt : 0, j ? j->n_tokens : 0, guard_note);
}

static void count_guard(int which) {
    pthread_mutex_lock(&metrics.lock);
    metrics.guard[which]++;
    pthread_mutex_unlock(&metrics.lock);
}

/* --guard on a chat request's input: the user's and the tools' messages (where planted instructions arrive) through
 * the injection rules, then the classifier when one is loaded; false with the verdict */
static bool guard_input(const api_request *r, guard_verdict *v) {
    for (int i = 0; i < r->n_messages; i++) {
        if (strcmp(r->roles[i], "user") && strcmp(r->roles[i], "tool")) continue;
        const char *t = r->contents[i] ? r->contents[i] : "";
        if (!guard_rules_injection(guard, t, strlen(t), v)) return false;
        if (have_guard_clf) {
            double p = tc_classifier_prob(&guard_clf, t, strlen(t));
            if (p >= guard_clf.threshold) {
                v->pass = false, v->check = "classifier";
                snprintf(v->reason, sizeof v->reason, "the injection classifier gives %.2f (threshold %.2f)", p,
                         (double)guard_clf.threshold);
                return false;
            }
        }
    }
    v->pass = true;
    return true;
}

/* one token's bytes (the tokenizer is shared between threads: its caches are not thread-safe) */
/* the bytes of n tokens (malloc'd); a GPT's tokenizer knows no special tokens */
static bool decode_ids(const int32_t *ids, size_t count, unsigned char **bytes, size_t *n) {
    char err[64];
    if (!is_gpt) return gl_bpe_decode(model.tok, ids, count, bytes, n, err, sizeof err);
    gl_strbuf b = {0};
    for (size_t i = 0; i < count; i++) {
        unsigned char buf[4];
        size_t len;
        const unsigned char *t = gl_codec_token(&gpt_codec, ids[i], buf, &len);
        gl_sb_put(&b, (const char *)t, len);
    }
    *bytes = b.p ? (unsigned char *)b.p : calloc(1, 1);
    *n = b.len;
    return *bytes != NULL;
}

/* the ids of text (malloc'd); false if it cannot be written in the model's vocabulary (a character model meets
 * a character it never saw) */
static bool encode_text(const char *text, size_t len, int32_t **ids, size_t *n) {
    *ids = NULL;
    if (!is_gpt || gpt_codec.bpe) {
        size_t cap = 0;
        *n = gl_bpe_encode(is_gpt ? gpt_codec.bpe : model.tok, (const unsigned char *)text, len, ids, &cap);
        if (!*ids) *ids = malloc(sizeof **ids);
        return true;
    }
    char err[128];
    return gl_codec_encode(&gpt_codec, (const unsigned char *)text, len, ids, n, NULL, err, sizeof err);
}

static bool decode_token(int32_t tok, unsigned char **bytes, size_t *n) {
    pthread_mutex_lock(&tok_lock);
    bool ok = decode_ids(&tok, 1, bytes, n);
    pthread_mutex_unlock(&tok_lock);
    return ok;
}

static void job_release(job *j) {
    pthread_mutex_lock(&j->mu);
    bool last = --j->refs == 0;
    pthread_mutex_unlock(&j->mu);
    if (!last) return;
    api_request_free(&j->api);
    gl_matcher_free(j->matcher), gl_grammar_free(j->grammar);
    free(j->prompt), free(j->tokens);
    gl_sb_free(&j->text), gl_sb_free(&j->out);
    pthread_mutex_destroy(&j->mu), pthread_cond_destroy(&j->cv);
    free(j);
}

static size_t max_stop_len(const job *j) {
    size_t m = 0;
    for (int i = 0; i < j->api.n_stops; i++) m = strlen(j->api.stops[i]) > m ? strlen(j->api.stops[i]) : m;
    return m;
}

/* engine thread: a token and its logits */
static bool on_token(sched_request *r, int32_t tok, const float *logits) {
    job *j = r->user;
    double t = now();
    int V = vocab_size;
    pthread_mutex_lock(&metrics.lock);
    if (j->n_tokens == 0) {
        metrics.ttft_sum += t - j->t_submit, metrics.ttft_n++;
        observe(metrics.ttft_count, ttft_buckets, N_TTFT, t - j->t_submit);
    } else {
        metrics.itl_sum += t - j->t_last, metrics.itl_n++;
        observe(metrics.itl_count, itl_buckets, N_ITL, t - j->t_last);
    }
    metrics.generated_tokens++;
    pthread_mutex_unlock(&metrics.lock);
    bool special = !is_gpt && (tok == model.eot || tok == model.eos);
    pthread_mutex_lock(&j->mu);
    if (j->n_tokens == 0) j->t_first = t;
    j->t_last = t;
    if (!special) {
        if (j->n_tokens == j->cap_tokens) {
            j->cap_tokens = j->cap_tokens ? 2 * j->cap_tokens : 64;
            j->tokens = realloc(j->tokens, (size_t)j->cap_tokens * sizeof *j->tokens);
        }
        token_info *ti = &j->tokens[j->n_tokens++];
        memset(ti, 0, sizeof *ti);
        ti->token = tok;
        if (j->api.logprobs) { /* log softmax from the logits the token was drawn from */
            float mx = -INFINITY;
            for (int v = 0; v < V; v++) mx = logits[v] > mx ? logits[v] : mx;
            double s = 0;
            for (int v = 0; v < V; v++) s += exp((double)(logits[v] - mx));
            float lse = mx + (float)log(s);
            ti->logprob = logits[tok] - lse;
            ti->top_n = j->api.top_logprobs;
            /* the top_n largest in one pass over the vocabulary (this runs on the engine thread, which serves every
             * slot): a sorted insertion, ties to the lower id */
            int kept = 0;
            for (int v = 0; v < V && ti->top_n; v++) {
                if (kept == ti->top_n && !(logits[v] > logits[ti->top_token[kept - 1]])) continue;
                int at = kept < ti->top_n ? kept++ : kept - 1;
                while (at > 0 && logits[v] > logits[ti->top_token[at - 1]]) ti->top_token[at] = ti->top_token[at - 1], at--;
                ti->top_token[at] = v;
            }
            for (int k = 0; k < ti->top_n; k++) ti->top_logprob[k] = logits[ti->top_token[k]] - lse;
            /* a grammar's mask leaves -infinity on the tokens it refuses: they are not alternatives (nor JSON) */
            while (ti->top_n > 0 && !isfinite(ti->top_logprob[ti->top_n - 1])) ti->top_n--;
        }
        unsigned char *bytes;
        size_t n;
        if (decode_token(tok, &bytes, &n)) {
            size_t from = j->text.len;
            gl_sb_put(&j->text, (const char *)bytes, n);
            free(bytes);
            size_t longest = max_stop_len(j);
            size_t start = from + 1 > longest ? from + 1 - longest : 0; /* a stop string may span tokens */
            for (int i = 0; i < j->api.n_stops && !j->stop_matched; i++) {
                const char *hit = j->text.len ? strstr(j->text.p + start, j->api.stops[i]) : NULL;
                if (hit) j->text.len = (size_t)(hit - j->text.p), j->text.p[j->text.len] = 0, j->stop_matched = true;
            }
        }
    }
    if (t > j->deadline) j->timed_out = true; /* --timeout: ends as "length" */
    bool go_on = !j->stop_matched && !j->timed_out;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    return go_on;
}

static void on_done(sched_request *r) {
    job *j = r->user;
    pthread_mutex_lock(&j->mu);
    j->done = true;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    pthread_mutex_lock(&work_lock);
    in_flight--;
    pthread_cond_broadcast(&work_cv);
    pthread_mutex_unlock(&work_lock);
    job_release(j);
}

/* With tools, a reply that is one JSON object naming a tool is a call: its name and its arguments as compact JSON
 * (malloc'd into *args). */
static bool tool_call_of(const job *j, const char **name, char **args) {
    if (!j->tools_active || !j->text.len || j->text.p[0] != '{') return false;
    char err[64];
    gl_json *doc = gl_json_parse(j->text.p, j->text.len, err, sizeof err);
    const gl_json *n = doc ? gl_json_get(doc, "name") : NULL, *a = doc ? gl_json_get(doc, "arguments") : NULL;
    bool ok = n && n->type == GL_JSON_STRING && a && a->type == GL_JSON_OBJECT;
    *name = NULL;
    for (int k = 0; ok && k < j->api.n_tools && !*name; k++)
        if (!strcmp(j->api.tool_names[k], n->string)) *name = j->api.tool_names[k];
    if (ok && *name) {
        gl_strbuf b = {0};
        api_json_value(&b, a);
        *args = b.p;
    }
    gl_json_free(doc);
    return ok && *name;
}

/* OpenAI's tool_calls array: [{"index", "id", "type": "function", "function": {"name", "arguments": "JSON text"}}] */
static void tool_calls_json(const job *j, const char *name, const char *args, gl_strbuf *b) {
    gl_sb_printf(b, "[{\"index\": 0, \"id\": \"call_%s\", \"type\": \"function\", \"function\": {\"name\": ", j->id);
    api_json_string(b, name, strlen(name));
    gl_sb_puts(b, ", \"arguments\": ");
    api_json_string(b, args, strlen(args));
    gl_sb_puts(b, "}}]");
}

static const char *finish_reason(const job *j) {
    const char *name;
    char *args = NULL;
    if (j->done && tool_call_of(j, &name, &args)) return free(args), "tool_calls";
    if (j->stop_matched) return "stop";
    if (j->timed_out) return "length";
    return j->req.finish && !strcmp(j->req.finish, "stop") ? "stop" : "length";
}

static void *engine_main(void *arg) {
    (void)arg;
    for (;;) {
        if (sched_step(engine)) continue;
        pthread_mutex_lock(&work_lock);
        sched_stats st = sched_get_stats(engine);
        if (stopping && in_flight == 0) {
            pthread_mutex_unlock(&work_lock);
            return NULL;
        }
        if (st.queued == 0 && st.busy_slots == 0) pthread_cond_wait(&work_cv, &work_lock);
        pthread_mutex_unlock(&work_lock);
    }
}

/* ================================================================ responses */

static enum MHD_Result respond(struct MHD_Connection *c, int route, int status, const char *type, gl_strbuf *body) {
    struct MHD_Response *r = MHD_create_response_from_buffer(body->len, body->p, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", type);
    if (status == 429 || status == 503) MHD_add_response_header(r, "Retry-After", "1");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    gl_sb_free(body);
    count_request(route, status);
    return ret;
}

/* a server-sent events response whose bytes come from reader (on the connection's thread) until it ends */
static enum MHD_Result queue_stream(struct MHD_Connection *c, int route, MHD_ContentReaderCallback reader, void *cls,
                                    MHD_ContentReaderFreeCallback done) {
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, reader, cls, done);
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    count_request(route, 200);
    return ret;
}

static enum MHD_Result error(struct MHD_Connection *c, int route, int status, const char *message, const char *type,
                             const char *param, const char *code) {
    gl_strbuf b = {0};
    api_error_json(&b, message, type, param, code);
    return respond(c, route, status, "application/json", &b);
}

static void token_text(int32_t tok, gl_strbuf *into) {
    unsigned char *bytes;
    size_t n;
    if (!decode_token(tok, &bytes, &n)) return api_json_string(into, "", 0);
    api_json_string(into, (const char *)bytes, n);
    free(bytes);
}

static void token_bytes(int32_t tok, gl_strbuf *into) {
    unsigned char *bytes;
    size_t n;
    bool ok = decode_token(tok, &bytes, &n);
    gl_sb_puts(into, "[");
    for (size_t i = 0; ok && i < n; i++) gl_sb_printf(into, i ? ", %u" : "%u", bytes[i]);
    gl_sb_puts(into, "]");
    if (ok) free(bytes);
}

/* OpenAI's logprobs shapes for tokens [from, to): chat {"content": [...]}, completions {"tokens", ...} */
static void logprobs_json(const job *j, int from, int to, gl_strbuf *b) {
    if (!j->api.logprobs) return gl_sb_puts(b, "null");
    if (j->api.chat) {
        gl_sb_puts(b, "{\"content\": [");
        for (int i = from; i < to; i++) {
            const token_info *t = &j->tokens[i];
            gl_sb_puts(b, i > from ? ", {\"token\": " : "{\"token\": ");
            token_text(t->token, b);
            gl_sb_printf(b, ", \"logprob\": %.6g, \"bytes\": ", (double)t->logprob);
            token_bytes(t->token, b);
            gl_sb_puts(b, ", \"top_logprobs\": [");
            for (int k = 0; k < t->top_n; k++) {
                gl_sb_puts(b, k ? ", {\"token\": " : "{\"token\": ");
                token_text(t->top_token[k], b);
                gl_sb_printf(b, ", \"logprob\": %.6g, \"bytes\": ", (double)t->top_logprob[k]);
                token_bytes(t->top_token[k], b);
                gl_sb_puts(b, "}");
            }
            gl_sb_puts(b, "]}");
        }
        return gl_sb_puts(b, "]}");
    }
    gl_sb_puts(b, "{\"tokens\": [");
    for (int i = from; i < to; i++) {
        if (i > from) gl_sb_puts(b, ", ");
        token_text(j->tokens[i].token, b);
    }
    gl_sb_puts(b, "], \"token_logprobs\": [");
    for (int i = from; i < to; i++) gl_sb_printf(b, i > from ? ", %.6g" : "%.6g", (double)j->tokens[i].logprob);
    gl_sb_puts(b, "], \"top_logprobs\": [");
    for (int i = from; i < to; i++) {
        gl_sb_puts(b, i > from ? ", {" : "{");
        for (int k = 0; k < j->tokens[i].top_n; k++) {
            if (k) gl_sb_puts(b, ", ");
            token_text(j->tokens[i].top_token[k], b);
            gl_sb_printf(b, ": %.6g", (double)j->tokens[i].top_logprob[k]);
        }
        gl_sb_puts(b, "}");
    }
    gl_sb_puts(b, "]}");
}

static void usage_json(const job *j, gl_strbuf *b) {
    gl_sb_printf(b, "{\"prompt_tokens\": %d, \"completion_tokens\": %d, \"total_tokens\": %d, "
                  "\"prompt_tokens_details\": {\"cached_tokens\": %d}}",
               j->n_prompt, j->n_tokens, j->n_prompt + j->n_tokens, j->req.prefix_reused);
}

static void chunk_head(const job *j, gl_strbuf *b) {
    gl_sb_printf(b, "data: {\"id\": \"%s\", \"object\": \"%s\", \"created\": %ld, \"model\": ", j->id,
               j->api.chat ? "chat.completion.chunk" : "text_completion", j->created);
    api_json_string(b, opt.model_name, strlen(opt.model_name));
}

/* the bytes of text that can be streamed now: not inside a possible stop string, and ending on a UTF-8 boundary */
static size_t ready_bytes(const job *j) {
    size_t end = j->text.len;
    if (!j->done && !j->stop_matched) {
        size_t hold = max_stop_len(j);
        end = end > hold ? end - (hold ? hold - 1 : 0) : 0;
        size_t back = 0; /* a multi-byte character still incomplete at the end */
        while (back < 4 && back < end && ((unsigned char)j->text.p[end - 1 - back] & 0xC0) == 0x80) back++;
        if (back < end && back < 4) {
            unsigned char lead = (unsigned char)j->text.p[end - 1 - back];
            size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
            if (need > back + 1) end -= back + 1;
        }
    }
    return end < j->sent ? j->sent : end;
}

/* SSE events for what is new: text deltas (with their tokens' logprobs), then the final chunk, usage, [DONE] */
static void stream_events(job *j) {
    if (j->phase == 0) {
        chunk_head(j, &j->out);
        gl_sb_puts(&j->out, j->api.chat ? ", \"choices\": [{\"index\": 0, \"delta\": {\"role\": \"assistant\", \"content\": \"\"}, "
                                        "\"logprobs\": null, \"finish_reason\": null}]}\n\n"
                                      : ", \"choices\": [{\"index\": 0, \"text\": \"\", \"logprobs\": null, "
                                        "\"finish_reason\": null}]}\n\n");
        j->phase = 1;
    }
    size_t end = ready_bytes(j);
    /* with tools, a reply that opens with '{' is held back: if it ends as a call it goes out as tool_calls */
    bool holding = j->tools_active && j->text.len && j->text.p[0] == '{' && j->sent == 0;
    const char *call = NULL;
    char *args = NULL;
    if (holding && j->done && tool_call_of(j, &call, &args)) {
        chunk_head(j, &j->out);
        gl_sb_puts(&j->out, ", \"choices\": [{\"index\": 0, \"delta\": {\"tool_calls\": ");
        tool_calls_json(j, call, args, &j->out);
        gl_sb_puts(&j->out, "}, \"logprobs\": null, \"finish_reason\": null}]}\n\n");
        free(args);
        j->sent = j->text.len, j->logged = j->n_tokens;
    } else if (holding && !j->done) end = j->sent;
    if (end > j->sent) {
        chunk_head(j, &j->out);
        gl_sb_puts(&j->out, j->api.chat ? ", \"choices\": [{\"index\": 0, \"delta\": {\"content\": "
                                      : ", \"choices\": [{\"index\": 0, \"text\": ");
        api_json_string(&j->out, j->text.p + j->sent, end - j->sent);
        gl_sb_puts(&j->out, j->api.chat ? "}, \"logprobs\": " : ", \"logprobs\": ");
        logprobs_json(j, j->logged, j->n_tokens, &j->out);
        j->logged = j->n_tokens;
        gl_sb_puts(&j->out, ", \"finish_reason\": null}]}\n\n");
        j->sent = end;
    }
    if (j->done && j->phase == 1 && j->sent == j->text.len) {
        chunk_head(j, &j->out);
        gl_sb_printf(&j->out, j->api.chat ? ", \"choices\": [{\"index\": 0, \"delta\": {}, \"logprobs\": null, "
                                          "\"finish_reason\": \"%s\"}]}\n\n"
                                        : ", \"choices\": [{\"index\": 0, \"text\": \"\", \"logprobs\": null, "
                                          "\"finish_reason\": \"%s\"}]}\n\n",
                   finish_reason(j));
        if (j->api.include_usage) {
            chunk_head(j, &j->out);
            gl_sb_puts(&j->out, ", \"choices\": [], \"usage\": ");
            usage_json(j, &j->out);
            gl_sb_puts(&j->out, "}\n\n");
        }
        gl_sb_puts(&j->out, "data: [DONE]\n\n");
        j->phase = 2;
    }
}

/* libmicrohttpd asks for more of a stream: block (this connection's own thread) until there is something */
static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    job *j = cls;
    pthread_mutex_lock(&j->mu);
    for (;;) {
        if (j->out_at < j->out.len) break;
        j->out.len = j->out_at = 0;
        if (j->phase == 2) {
            pthread_mutex_unlock(&j->mu);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        stream_events(j);
        if (j->out.len) break;
        pthread_cond_wait(&j->cv, &j->mu);
    }
    size_t n = j->out.len - j->out_at < max ? j->out.len - j->out_at : max;
    memcpy(buf, j->out.p + j->out_at, n);
    j->out_at += n;
    pthread_mutex_unlock(&j->mu);
    return (ssize_t)n;
}

static void stream_done(void *cls) { /* the response is gone: finished, or the client went away */
    job *j = cls;
    log_request(j->api.chat ? 0 : 1, 200, j, true, guard ? "input pass; output not checked (streamed)" : NULL);
    sched_cancel(engine, &j->req); /* a no-op for a finished request */
    pthread_mutex_lock(&work_lock);
    pthread_cond_broadcast(&work_cv);
    pthread_mutex_unlock(&work_lock);
    job_release(j);
}

static enum MHD_Result complete(struct MHD_Connection *c, int route, job *j) {
    pthread_mutex_lock(&j->mu);
    while (!j->done) pthread_cond_wait(&j->cv, &j->mu);
    pthread_mutex_unlock(&j->mu);
    if (guard && j->api.chat && j->text.len) { /* --guard: nothing secret leaves */
        guard_verdict v;
        if (!guard_secrets(guard, j->text.p, j->text.len, &v)) {
            j->output_blocked = true;
            count_guard(GUARD_OUTPUT_BLOCK);
            snprintf(j->guard_note, sizeof j->guard_note, "output block: %.140s", v.reason);
            j->text.len = 0;
            gl_sb_puts(&j->text, "I can't share that: the reply was withheld by the output guard (it contained a "
                                 "secret or a card number).");
        } else {
            count_guard(GUARD_OUTPUT_PASS);
            snprintf(j->guard_note, sizeof j->guard_note, "input pass; output pass");
        }
    }
    gl_strbuf b = {0};
    gl_sb_printf(&b, "{\"id\": \"%s\", \"object\": \"%s\", \"created\": %ld, \"model\": ", j->id,
               j->api.chat ? "chat.completion" : "text_completion", j->created);
    api_json_string(&b, opt.model_name, strlen(opt.model_name));
    gl_sb_puts(&b, ", \"choices\": [{\"index\": 0, ");
    const char *call;
    char *args = NULL;
    if (j->api.chat && !j->output_blocked && tool_call_of(j, &call, &args)) {
        gl_sb_puts(&b, "\"message\": {\"role\": \"assistant\", \"content\": null, \"tool_calls\": ");
        tool_calls_json(j, call, args, &b);
        gl_sb_puts(&b, "}, ");
        free(args);
    } else if (j->api.chat) {
        gl_sb_puts(&b, "\"message\": {\"role\": \"assistant\", \"content\": ");
        api_json_string(&b, j->text.p ? j->text.p : "", j->text.len);
        gl_sb_puts(&b, "}, ");
    } else {
        gl_sb_puts(&b, "\"text\": ");
        api_json_string(&b, j->text.p ? j->text.p : "", j->text.len);
        gl_sb_puts(&b, ", ");
    }
    gl_sb_puts(&b, "\"logprobs\": ");
    logprobs_json(j, 0, j->n_tokens, &b);
    gl_sb_printf(&b, ", \"finish_reason\": \"%s\"}], \"usage\": ", j->output_blocked ? "content_filter" : finish_reason(j));
    usage_json(j, &b);
    gl_sb_puts(&b, "}");
    log_request(route, 200, j, false, j->guard_note[0] ? j->guard_note : NULL);
    job_release(j);
    return respond(c, route, 200, "application/json", &b);
}

/* ================================================================ routes */

static enum MHD_Result generate(struct MHD_Connection *c, int route, const char *body, size_t len) {
    bool chat = route == 0;
    char message[512];
    const char *param;
    job *j = calloc(1, sizeof *j);
    if (!api_parse(body, len, chat, &j->api, message, sizeof message, &param)) {
        api_request_free(&j->api);
        free(j);
        return error(c, route, 400, message, "invalid_request_error", param, NULL);
    }
    guard_verdict gv;
    if (guard && chat && !guard_input(&j->api, &gv)) {
        /* refused as Azure OpenAI refuses a filtered prompt: a 400 whose code is content_filter */
        count_guard(GUARD_INPUT_BLOCK);
        snprintf(message, sizeof message, "the request was blocked by the input guard (%s): %s", gv.check, gv.reason);
        char note[200];
        snprintf(note, sizeof note, "input block: %s: %.150s", gv.check, gv.reason);
        log_request(route, 400, NULL, j->api.stream, note);
        api_request_free(&j->api);
        free(j);
        return error(c, route, 400, message, "invalid_request_error", "messages", "content_filter");
    }
    if (guard && chat) count_guard(GUARD_INPUT_PASS);
    /* constrained output: the grammar of response_format, or of a tool call (docs/grammar.md) */
    j->tools_active = j->api.n_tools && j->api.tool_choice != API_TOOLS_NONE;
    char *tools_text = NULL;
    if (j->api.format != API_FORMAT_TEXT || j->tools_active) {
        char gerr[400] = "";
        char *gtext = NULL;
        const char *bad = j->tools_active ? "tools" : "response_format";
        if (j->api.format == API_FORMAT_JSON_SCHEMA) gtext = gl_schema_to_grammar(j->api.schema, gerr, sizeof gerr);
        else if (j->api.format == API_FORMAT_JSON_OBJECT) {
            gl_json any_object = {.type = GL_JSON_OBJECT};
            gl_json type = {.type = GL_JSON_STRING, .string = "object", .string_len = 6};
            char *key = "type";
            any_object.count = 1, any_object.keys = &key, any_object.items = &type;
            gtext = gl_schema_to_grammar(&any_object, gerr, sizeof gerr);
        } else {
            char *schema_text = api_call_schema(&j->api);
            gl_json *schema = gl_json_parse(schema_text, strlen(schema_text), gerr, sizeof gerr);
            char *calls = schema ? gl_schema_to_grammar_rule(schema, "call", gerr, sizeof gerr) : NULL;
            if (calls) { /* auto: a call, or text that does not open with '{' */
                gl_strbuf g = {0};
                gl_sb_puts(&g, j->api.tool_choice == API_TOOLS_AUTO ? "root ::= call | free\nfree ::= [^{] .*\n"
                                                                    : "root ::= call\n");
                gl_sb_puts(&g, calls);
                gtext = g.p;
            }
            free(calls);
            gl_json_free(schema);
            free(schema_text);
            tools_text = api_tools_prompt(&j->api);
        }
        if (gtext) j->grammar = gl_grammar_parse(gtext, gerr, sizeof gerr);
        free(gtext);
        if (!j->grammar) {
            snprintf(message, sizeof message, "%s: %s", bad, gerr);
            api_request_free(&j->api), free(tools_text), free(j);
            return error(c, route, 400, message, "invalid_request_error", bad, NULL);
        }
    }
    if (tools_text) { /* the tools join the system message, or become one */
        if (j->api.n_messages && !strcmp(j->api.roles[0], "system")) {
            gl_strbuf sys = {0};
            gl_sb_printf(&sys, "%s\n\n%s", j->api.contents[0], tools_text);
            free(j->api.owned[0]);
            j->api.contents[0] = j->api.owned[0] = sys.p;
            free(tools_text);
        } else if (j->api.n_messages < API_MAX_MESSAGES) {
            memmove(j->api.roles + 1, j->api.roles, (size_t)j->api.n_messages * sizeof *j->api.roles);
            memmove(j->api.contents + 1, j->api.contents, (size_t)j->api.n_messages * sizeof *j->api.contents);
            memmove(j->api.owned + 1, j->api.owned, (size_t)(API_MAX_MESSAGES - 1) * sizeof *j->api.owned);
            j->api.roles[0] = "system", j->api.contents[0] = j->api.owned[0] = tools_text;
            j->api.n_messages++;
        } else free(tools_text);
    }
    /* the prompt as token ids: the chat template, or the text with the model's BOS; a GPT has no template: a chat
     * is its messages' contents, each followed by a newline (docs/serving.md) */
    size_t cap = 0;
    bool encoded = true;
    pthread_mutex_lock(&tok_lock);
    if (chat && !is_gpt) {
        j->n_prompt = llama_chat_ids(&model, j->api.roles, j->api.contents, j->api.n_messages, &j->prompt, &cap);
    } else {
        gl_strbuf text = {0};
        if (chat)
            for (int i = 0; i < j->api.n_messages; i++) gl_sb_puts(&text, j->api.contents[i]), gl_sb_puts(&text, "\n");
        else gl_sb_puts(&text, j->api.prompt);
        int32_t *ids = NULL;
        size_t n = 0;
        encoded = encode_text(text.p ? text.p : "", text.len, &ids, &n);
        gl_sb_free(&text);
        j->prompt = malloc((n + 1) * sizeof *j->prompt);
        j->n_prompt = 0;
        if (!is_gpt && model.add_bos && model.bos >= 0) j->prompt[j->n_prompt++] = model.bos;
        if (encoded) memcpy(j->prompt + j->n_prompt, ids, n * sizeof *ids), j->n_prompt += (int)n;
        free(ids);
    }
    pthread_mutex_unlock(&tok_lock);
    if (!encoded) {
        api_request_free(&j->api), gl_grammar_free(j->grammar), free(j->prompt), free(j);
        return error(c, route, 400, "the prompt has characters outside this model's vocabulary (a character-level "
                     "checkpoint knows only the characters of its training text)", "invalid_request_error",
                     chat ? "messages" : "prompt", NULL);
    }
    int room = opt.ctx - j->n_prompt;
    if (j->n_prompt < 1 || room < 1 || (j->api.max_tokens > 0 && j->api.max_tokens > room)) {
        snprintf(message, sizeof message,
                 "this model's context is %d tokens; the prompt has %d and max_tokens asks for %d more", opt.ctx,
                 j->n_prompt, j->api.max_tokens > 0 ? j->api.max_tokens : 1);
        api_request_free(&j->api), gl_grammar_free(j->grammar), free(j->prompt), free(j);
        return error(c, route, 400, message, "invalid_request_error", "messages", "context_length_exceeded");
    }
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    j->refs = 2;
    j->t_submit = now(), j->deadline = j->t_submit + opt.timeout_s, j->created = (long)time(NULL);
    pthread_mutex_lock(&work_lock);
    snprintf(j->id, sizeof j->id, "%s-%lld", chat ? "chatcmpl" : "cmpl", ++next_id);
    pthread_mutex_unlock(&work_lock);
    j->req = (sched_request){.prompt = j->prompt, .n_prompt = j->n_prompt,
                             .max_tokens = j->api.max_tokens > 0 ? j->api.max_tokens : room,
                             .sampling = {j->api.temperature, j->api.top_k, j->api.top_p, NULL},
                             .seed = j->api.has_seed ? j->api.seed : (uint64_t)time(NULL) ^ (uint64_t)next_id,
                             .on_token = on_token, .on_done = on_done, .user = j};
    if (j->grammar) {
        j->matcher = gl_matcher_new(j->grammar, vocab_trie, stop_tokens, 2, j->req.max_tokens);
        j->req.sampling.grammar = j->matcher;
    }
    pthread_mutex_lock(&work_lock);
    bool accepted = !stopping && sched_submit(engine, &j->req);
    if (accepted) in_flight++;
    pthread_cond_broadcast(&work_cv);
    pthread_mutex_unlock(&work_lock);
    if (!accepted) {
        bool full = j->req.finish && !strcmp(j->req.finish, "queue_full");
        j->refs = 1, job_release(j);
        return error(c, route, full ? 429 : 503, full ? "the server is busy: every slot and the queue are taken"
                                                       : "the server is shutting down",
                     full ? "rate_limit_error" : "server_error", NULL, full ? "queue_full" : "shutting_down");
    }
    pthread_mutex_lock(&metrics.lock);
    metrics.prompt_tokens += j->n_prompt;
    pthread_mutex_unlock(&metrics.lock);
    if (!j->api.stream) return complete(c, route, j);
    return queue_stream(c, route, stream_reader, j, stream_done);
}

static enum MHD_Result tokenize_route(struct MHD_Connection *c, int route, const char *body, size_t len) {
    char jerr[200];
    gl_json *doc = gl_json_parse(body, len, jerr, sizeof jerr);
    const gl_json *v = doc ? gl_json_get(doc, route == 5 ? "content" : "tokens") : NULL;
    gl_strbuf b = {0};
    if (route == 5) {
        if (!v || v->type != GL_JSON_STRING) {
            gl_json_free(doc);
            return error(c, route, 400, "the body must be {\"content\": \"text\"}", "invalid_request_error", "content", NULL);
        }
        int32_t *ids = NULL;
        size_t n = 0;
        pthread_mutex_lock(&tok_lock);
        bool encoded = encode_text(v->string, v->string_len, &ids, &n);
        pthread_mutex_unlock(&tok_lock);
        if (!encoded) {
            free(ids);
            gl_json_free(doc);
            return error(c, route, 400, "the content has characters outside this model's vocabulary",
                         "invalid_request_error", "content", NULL);
        }
        gl_sb_puts(&b, "{\"tokens\": [");
        for (size_t i = 0; i < n; i++) gl_sb_printf(&b, i ? ", %d" : "%d", ids[i]);
        gl_sb_puts(&b, "]}");
        free(ids);
    } else {
        bool ok = v && v->type == GL_JSON_ARRAY && v->count <= 1 << 20;
        int32_t *ids = ok ? malloc((v->count + 1) * sizeof *ids) : NULL;
        for (size_t i = 0; ok && i < v->count; i++) {
            ok = v->items[i].type == GL_JSON_NUMBER && v->items[i].number >= 0 &&
                 v->items[i].number < vocab_size && v->items[i].number == floor(v->items[i].number);
            if (ok) ids[i] = (int32_t)v->items[i].number;
        }
        unsigned char *out = NULL;
        size_t n = 0;
        if (ok) {
            pthread_mutex_lock(&tok_lock);
            ok = decode_ids(ids, v->count, &out, &n);
            pthread_mutex_unlock(&tok_lock);
        }
        free(ids);
        if (!ok) {
            gl_json_free(doc);
            return error(c, route, 400, "the body must be {\"tokens\": [ids in the vocabulary]}", "invalid_request_error",
                         "tokens", NULL);
        }
        gl_sb_puts(&b, "{\"content\": ");
        api_json_string(&b, (const char *)out, n);
        gl_sb_puts(&b, "}");
        free(out);
    }
    gl_json_free(doc);
    return respond(c, route, 200, "application/json", &b);
}

static enum MHD_Result metrics_route(struct MHD_Connection *c) {
    gl_strbuf b = {0};
    sched_stats st = sched_get_stats(engine);
    pthread_mutex_lock(&metrics.lock);
    gl_sb_puts(&b, "# HELP gradlab_requests_total HTTP requests by route and status.\n# TYPE gradlab_requests_total counter\n");
    for (int r = 0; r < N_ROUTES; r++)
        for (int k = 0; k < 7; k++)
            if (metrics.requests[r][k])
                gl_sb_printf(&b, "gradlab_requests_total{route=\"%s\",status=\"%d\"} %lld\n", routes[r], status_codes[k],
                           metrics.requests[r][k]);
    gl_sb_printf(&b, "# HELP gradlab_prompt_tokens_total Prompt tokens of accepted requests.\n"
                   "# TYPE gradlab_prompt_tokens_total counter\ngradlab_prompt_tokens_total %lld\n"
                   "# HELP gradlab_generated_tokens_total Tokens sampled.\n"
                   "# TYPE gradlab_generated_tokens_total counter\ngradlab_generated_tokens_total %lld\n"
                   "# HELP gradlab_prefix_tokens_reused_total Prompt tokens found in a slot's KV cache, not prefilled again.\n"
                   "# TYPE gradlab_prefix_tokens_reused_total counter\ngradlab_prefix_tokens_reused_total %lld\n",
               metrics.prompt_tokens, metrics.generated_tokens, st.prefix_tokens_reused);
    if (guard) {
        gl_sb_puts(&b, "# HELP gradlab_guard_verdicts_total Guardrail verdicts on chat requests (serve --guard).\n"
                       "# TYPE gradlab_guard_verdicts_total counter\n");
        const char *stage[N_GUARD] = {"input", "input", "output", "output"}, *verdict[N_GUARD] = {"block", "pass", "block", "pass"};
        for (int k = 0; k < N_GUARD; k++)
            gl_sb_printf(&b, "gradlab_guard_verdicts_total{stage=\"%s\",verdict=\"%s\"} %lld\n", stage[k], verdict[k],
                         metrics.guard[k]);
    }
    if (have_assistant) {
        gl_sb_puts(&b, "# HELP gradlab_assistant_replies_total The assistant's replies by kind (serve --assistant).\n"
                       "# TYPE gradlab_assistant_replies_total counter\n");
        for (int k = 0; k < 5; k++)
            gl_sb_printf(&b, "gradlab_assistant_replies_total{kind=\"%s\"} %lld\n", ASSIST_KIND_NAMES[k], metrics.assistant[k]);
    }
    const struct {
        const char *name, *help;
        const double *bounds;
        int n;
        long long *counts, total;
        double sum;
    } hist[2] = {{"gradlab_time_to_first_token_seconds", "Time from a request's arrival to its first token.",
                  ttft_buckets, N_TTFT, metrics.ttft_count, metrics.ttft_n, metrics.ttft_sum},
                 {"gradlab_inter_token_latency_seconds", "Time between a request's consecutive tokens.", itl_buckets,
                  N_ITL, metrics.itl_count, metrics.itl_n, metrics.itl_sum}};
    for (int h = 0; h < 2; h++) {
        gl_sb_printf(&b, "# HELP %s %s\n# TYPE %s histogram\n", hist[h].name, hist[h].help, hist[h].name);
        long long cum = 0;
        for (int i = 0; i < hist[h].n; i++) {
            cum += hist[h].counts[i];
            gl_sb_printf(&b, "%s_bucket{le=\"%g\"} %lld\n", hist[h].name, hist[h].bounds[i], cum);
        }
        cum += hist[h].counts[hist[h].n];
        gl_sb_printf(&b, "%s_bucket{le=\"+Inf\"} %lld\n%s_sum %.6f\n%s_count %lld\n", hist[h].name, cum, hist[h].name,
                   hist[h].sum, hist[h].name, hist[h].total);
    }
    pthread_mutex_unlock(&metrics.lock);
    gl_sb_printf(&b, "# HELP gradlab_queue_length Requests waiting for a slot.\n# TYPE gradlab_queue_length gauge\n"
                   "gradlab_queue_length %d\n"
                   "# HELP gradlab_busy_slots Slots serving a request.\n# TYPE gradlab_busy_slots gauge\n"
                   "gradlab_busy_slots %d\n"
                   "# HELP gradlab_slots Slots (sequences decoded together).\n# TYPE gradlab_slots gauge\n"
                   "gradlab_slots %d\n"
                   "# HELP gradlab_kv_cache_capacity_tokens KV-cache positions over all slots.\n"
                   "# TYPE gradlab_kv_cache_capacity_tokens gauge\ngradlab_kv_cache_capacity_tokens %d\n",
               st.queued, st.busy_slots, opt.slots, opt.slots * opt.ctx);
    return respond(c, 4, 200, "text/plain; version=0.0.4", &b);
}

/* ================================================================ the HTTP side */

typedef struct {
    gl_strbuf body;
    bool too_large;
} connection_state;

/* ---- POST /v1/embeddings (with --embed-model): OpenAI's shape; the encoder runs in its own engine context, one
 * request at a time, beside the generation engine's ---- */
static bert embedder;
static bool have_embedder;
static gl_context *embed_ctx;
static pthread_mutex_t embed_lock = PTHREAD_MUTEX_INITIALIZER;

static void base64(gl_strbuf *b, const unsigned char *p, size_t n) {
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        char out[4] = {digits[v >> 18 & 63], digits[v >> 12 & 63], i + 1 < n ? digits[v >> 6 & 63] : '=',
                       i + 2 < n ? digits[v & 63] : '='};
        gl_sb_put(b, out, 4);
    }
}

static enum MHD_Result embeddings_route(struct MHD_Connection *c, int route, const char *body, size_t len) {
    if (!have_embedder)
        return error(c, route, 404, "this server has no embedding model (start it with --embed-model DIR)",
                     "invalid_request_error", "model", "model_not_found");
    char jerr[200];
    gl_json *doc = gl_json_parse(body, len, jerr, sizeof jerr);
    const gl_json *in = doc ? gl_json_get(doc, "input") : NULL, *fmt = doc ? gl_json_get(doc, "encoding_format") : NULL;
    size_t n = !in ? 0 : in->type == GL_JSON_STRING ? 1 : in->type == GL_JSON_ARRAY ? in->count : 0;
    bool ok = n >= 1 && n <= 2048;
    for (size_t i = 0; ok && in->type == GL_JSON_ARRAY && i < n; i++) ok = in->items[i].type == GL_JSON_STRING;
    bool b64 = fmt && fmt->type == GL_JSON_STRING && !strcmp(fmt->string, "base64");
    if (fmt && !(fmt->type == GL_JSON_STRING && (b64 || !strcmp(fmt->string, "float")))) ok = false;
    if (!ok) {
        const char *param = fmt && !b64 && (fmt->type != GL_JSON_STRING || strcmp(fmt->string, "float")) ? "encoding_format" : "input";
        enum MHD_Result r = error(c, route, 400, doc ? "input must be a string or a list of 1 to 2048 strings (token ids "
                                                       "are not taken), encoding_format float or base64" : jerr,
                                  "invalid_request_error", param, NULL);
        gl_json_free(doc);
        return r;
    }
    int dims = embedder.cfg.n_embd;
    float *v = malloc((size_t)dims * sizeof *v);
    gl_strbuf b = {0};
    long long tokens = 0;
    gl_sb_puts(&b, "{\"object\": \"list\", \"data\": [");
    pthread_mutex_lock(&embed_lock);
    gl_context *previous = gl_context_use(embed_ctx);
    for (size_t i = 0; i < n; i++) {
        const char *text = in->type == GL_JSON_STRING ? in->string : in->items[i].string;
        tokens += bert_embed(&embedder, text, v, NULL);
        gl_sb_printf(&b, "%s{\"object\": \"embedding\", \"index\": %zu, \"embedding\": ", i ? ", " : "", i);
        if (b64) {
            gl_sb_puts(&b, "\"");
            base64(&b, (const unsigned char *)v, (size_t)dims * sizeof *v);
            gl_sb_puts(&b, "\"");
        } else {
            gl_sb_puts(&b, "[");
            for (int k = 0; k < dims; k++) gl_sb_printf(&b, k ? ", %.9g" : "%.9g", (double)v[k]);
            gl_sb_puts(&b, "]");
        }
        gl_sb_puts(&b, "}");
    }
    gl_context_use(previous);
    pthread_mutex_unlock(&embed_lock);
    gl_sb_printf(&b, "], \"model\": \"all-MiniLM-L6-v2\", \"usage\": {\"prompt_tokens\": %lld, \"total_tokens\": %lld}}",
               tokens, tokens);
    free(v);
    gl_json_free(doc);
    return respond(c, route, 200, "application/json", &b);
}

/* ---- the assistant (--assistant DB; lab 12, docs/assistant.md): chat requests answered from the docs with
 * citations (serve/assistant.h), the web page at / and the cited pages at /docs/PAGE ---- */
static const char ASSISTANT_MODEL[] = "gradlab-assistant";

static enum MHD_Result assistant_pages(struct MHD_Connection *c, int route, const char *url) {
    if (!have_assistant)
        return error(c, route, 404, "this server has no assistant (start it with --assistant DB)", "invalid_request_error",
                     NULL, "not_found");
    gl_strbuf b = {0};
    if (route == ROUTE_PAGE) {
        gl_sb_put(&b, ASSISTANT_PAGE, sizeof ASSISTANT_PAGE - 1);
        return respond(c, route, 200, "text/html; charset=utf-8", &b);
    }
    if (!assistant_render_page(&helper, url + 6, &b)) {
        gl_sb_free(&b);
        return error(c, route, 404, "no such page in the docs index", "invalid_request_error", NULL, "not_found");
    }
    return respond(c, route, 200, "text/html; charset=utf-8", &b);
}

static int count_tokens(const char *text) {
    int32_t *ids = NULL;
    size_t n = 0;
    pthread_mutex_lock(&tok_lock);
    encode_text(text, strlen(text), &ids, &n);
    pthread_mutex_unlock(&tok_lock);
    free(ids);
    return (int)n;
}

typedef struct {
    api_request api;
    const char *question;
    assist_reply reply;
    bool asked, stream;
    int phase, prompt_tokens, completion_tokens;
    double t_submit, t_first;
    char id[48];
    long created;
    gl_strbuf out;
    size_t out_at;
} assistant_job;

static void assistant_run(assistant_job *j) {
    assistant_ask(&helper, j->question, &j->reply);
    j->asked = true;
    j->completion_tokens = count_tokens(j->reply.text);
    pthread_mutex_lock(&metrics.lock);
    metrics.assistant[j->reply.kind]++;
    metrics.prompt_tokens += j->prompt_tokens, metrics.generated_tokens += j->reply.generated_tokens;
    pthread_mutex_unlock(&metrics.lock);
    count_guard(j->reply.kind == ASSIST_BLOCKED_OUTPUT ? GUARD_OUTPUT_BLOCK : GUARD_OUTPUT_PASS);
}

/* the reply's metadata, OpenAI's fields aside: {"kind", "citations", "tools", "note", "ranking", "best", "generated",
 * "supported", "seconds"} */
static void assistant_meta_json(const assistant_job *j, gl_strbuf *b) {
    gl_sb_printf(b, "{\"kind\": \"%s\", \"citations\": ", ASSIST_KIND_NAMES[j->reply.kind]);
    assistant_citations_json(&helper, &j->reply, b);
    gl_sb_puts(b, ", \"tools\": ");
    gl_sb_puts(b, j->reply.tools.p);
    gl_sb_puts(b, ", \"note\": ");
    api_json_string(b, j->reply.note, strlen(j->reply.note));
    gl_sb_puts(b, ", \"ranking\": ");
    assistant_ranking_json(&helper, &j->reply, b);
    gl_sb_printf(b, ", \"best\": %.4f, \"generated\": %s, \"supported\": %s, \"seconds\": %.4f}", j->reply.best,
                 j->reply.generated ? "true" : "false", j->reply.supported ? "true" : "false", j->reply.seconds);
}

static const char *assistant_finish(const assistant_job *j) {
    return j->reply.kind == ASSIST_BLOCKED_OUTPUT ? "content_filter" : "stop";
}

static void assistant_usage_json(const assistant_job *j, gl_strbuf *b) {
    gl_sb_printf(b, "{\"prompt_tokens\": %d, \"completion_tokens\": %d, \"total_tokens\": %d}", j->prompt_tokens,
                 j->completion_tokens, j->prompt_tokens + j->completion_tokens);
}

static void assistant_chunk(assistant_job *j, const char *delta_json, const char *finish, bool meta) {
    gl_sb_printf(&j->out, "data: {\"id\": \"%s\", \"object\": \"chat.completion.chunk\", \"created\": %ld, \"model\": "
                          "\"%s\", \"choices\": [{\"index\": 0, \"delta\": %s, \"finish_reason\": ",
                 j->id, j->created, ASSISTANT_MODEL, delta_json);
    if (finish) gl_sb_printf(&j->out, "\"%s\"}]", finish);
    else gl_sb_puts(&j->out, "null}]");
    if (meta) {
        gl_sb_puts(&j->out, ", \"assistant\": ");
        assistant_meta_json(j, &j->out);
        if (j->api.include_usage) gl_sb_puts(&j->out, ", \"usage\": "), assistant_usage_json(j, &j->out);
    }
    gl_sb_puts(&j->out, "}\n\n");
}

/* SSE: the role at once; the answer once the pipeline has it, a sentence (up to its citation) per event; then the
 * final chunk with the citations and [DONE]. The callback runs on the connection's own thread, so the pipeline
 * may block here. */
static ssize_t assistant_stream(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    assistant_job *j = cls;
    if (j->out_at == j->out.len) {
        j->out.len = j->out_at = 0;
        if (j->phase == 0) {
            assistant_chunk(j, "{\"role\": \"assistant\", \"content\": \"\"}", NULL, false);
            j->phase = 1;
        } else if (j->phase == 1) {
            assistant_run(j);
            j->t_first = now();
            const char *t = j->reply.text;
            while (*t) {
                const char *e = strstr(t, "] ");
                size_t n = e ? (size_t)(e - t) + 2 : strlen(t);
                gl_strbuf d = {0};
                gl_sb_puts(&d, "{\"content\": ");
                api_json_string(&d, t, n);
                gl_sb_puts(&d, "}");
                assistant_chunk(j, d.p, NULL, false);
                gl_sb_free(&d);
                t += n;
            }
            assistant_chunk(j, "{}", assistant_finish(j), true);
            gl_sb_puts(&j->out, "data: [DONE]\n\n");
            j->phase = 2;
        } else return MHD_CONTENT_READER_END_OF_STREAM;
    }
    size_t n = j->out.len - j->out_at < max ? j->out.len - j->out_at : max;
    memcpy(buf, j->out.p + j->out_at, n);
    j->out_at += n;
    return (ssize_t)n;
}

static void assistant_log(const assistant_job *j) {
    char note[220];
    if (j->asked && j->reply.kind == ASSIST_BLOCKED_OUTPUT) snprintf(note, sizeof note, "output block: %.150s", j->reply.note);
    else snprintf(note, sizeof note, "input pass; output %s; assistant %s", j->asked ? "pass" : "not reached",
                  j->asked ? ASSIST_KIND_NAMES[j->reply.kind] : "cancelled");
    log_line(0, 200, j->stream, now() - j->t_submit, j->t_first > 0 ? j->t_first - j->t_submit : -1, j->prompt_tokens,
             j->completion_tokens, note);
}

static void assistant_job_free(assistant_job *j) {
    if (j->asked) assist_reply_free(&j->reply);
    api_request_free(&j->api);
    gl_sb_free(&j->out);
    free(j);
}

static void assistant_stream_done(void *cls) {
    assistant_job *j = cls;
    assistant_log(j);
    assistant_job_free(j);
}

static enum MHD_Result assistant_route(struct MHD_Connection *c, int route, const char *body, size_t len) {
    char message[512];
    const char *param;
    assistant_job *j = calloc(1, sizeof *j);
    j->t_submit = now(), j->created = (long)time(NULL);
    if (!api_parse(body, len, true, &j->api, message, sizeof message, &param)) {
        assistant_job_free(j);
        return error(c, route, 400, message, "invalid_request_error", param, NULL);
    }
    for (int i = j->api.n_messages - 1; i >= 0 && !j->question; i--)
        if (!strcmp(j->api.roles[i], "user") && j->api.contents[i]) j->question = j->api.contents[i];
    if (!j->question || !*j->question) {
        assistant_job_free(j);
        return error(c, route, 400, "the assistant answers the last user message: the request has none (or it is empty)",
                     "invalid_request_error", "messages", NULL);
    }
    guard_verdict gv;
    if (!guard_input(&j->api, &gv)) {
        count_guard(GUARD_INPUT_BLOCK);
        pthread_mutex_lock(&metrics.lock);
        metrics.assistant[ASSIST_BLOCKED_INPUT]++;
        pthread_mutex_unlock(&metrics.lock);
        snprintf(message, sizeof message, "the request was blocked by the input guard (%s): %s", gv.check, gv.reason);
        char note[200];
        snprintf(note, sizeof note, "input block: %s: %.150s", gv.check, gv.reason);
        log_line(route, 400, j->api.stream, now() - j->t_submit, -1, 0, 0, note);
        assistant_job_free(j);
        return error(c, route, 400, message, "invalid_request_error", "messages", "content_filter");
    }
    count_guard(GUARD_INPUT_PASS);
    j->prompt_tokens = count_tokens(j->question);
    j->stream = j->api.stream;
    pthread_mutex_lock(&work_lock);
    snprintf(j->id, sizeof j->id, "chatcmpl-%lld", ++next_id);
    pthread_mutex_unlock(&work_lock);
    if (j->stream) return queue_stream(c, route, assistant_stream, j, assistant_stream_done);
    assistant_run(j);
    j->t_first = now();
    gl_strbuf b = {0};
    gl_sb_printf(&b, "{\"id\": \"%s\", \"object\": \"chat.completion\", \"created\": %ld, \"model\": \"%s\", "
                     "\"choices\": [{\"index\": 0, \"message\": {\"role\": \"assistant\", \"content\": ",
                 j->id, j->created, ASSISTANT_MODEL);
    api_json_string(&b, j->reply.text, strlen(j->reply.text));
    gl_sb_printf(&b, "}, \"logprobs\": null, \"finish_reason\": \"%s\"}], \"usage\": ", assistant_finish(j));
    assistant_usage_json(j, &b);
    gl_sb_puts(&b, ", \"assistant\": ");
    assistant_meta_json(j, &b);
    gl_sb_puts(&b, "}");
    assistant_log(j);
    assistant_job_free(j);
    return respond(c, route, 200, "application/json", &b);
}

static int route_of(const char *method, const char *url, bool *method_ok) {
    static const struct {
        const char *url, *method;
    } table[ROUTE_DOCS] = {{"/v1/chat/completions", "POST"}, {"/v1/completions", "POST"}, {"/v1/models", "GET"},
                           {"/health", "GET"},             {"/metrics", "GET"},         {"/tokenize", "POST"},
                           {"/detokenize", "POST"},        {"/v1/embeddings", "POST"},  {"/", "GET"}};
    if (!strncmp(url, "/docs/", 6)) return *method_ok = !strcmp(method, "GET"), ROUTE_DOCS;
    for (int i = 0; i < ROUTE_DOCS; i++)
        if (!strcmp(url, table[i].url)) return *method_ok = !strcmp(method, table[i].method), i;
    *method_ok = false;
    return ROUTE_OTHER;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **state) {
    (void)cls, (void)version;
    connection_state *cs = *state;
    if (!cs) { /* the first call: headers only */
        *state = calloc(1, sizeof(connection_state));
        return *state ? MHD_YES : MHD_NO;
    }
    if (*upload_size) { /* more of the body */
        if (cs->body.len + *upload_size > opt.max_body) cs->too_large = true;
        else gl_sb_put(&cs->body, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    bool method_ok;
    int route = route_of(method, url, &method_ok);
    if (route == ROUTE_OTHER) return error(c, route, 404, "no such route", "invalid_request_error", NULL, "not_found");
    if (!method_ok) return error(c, route, 404, "this route does not take that method", "invalid_request_error", NULL, "not_found");
    if (opt.api_key && route != 3 && route != ROUTE_PAGE && route != ROUTE_DOCS) { /* the page and the docs are public */
        const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
        char want[600];
        snprintf(want, sizeof want, "Bearer %s", opt.api_key);
        if (!auth || strcmp(auth, want))
            return error(c, route, 401, "a valid API key is required (Authorization: Bearer KEY)", "invalid_request_error",
                         NULL, "invalid_api_key");
    }
    if (cs->too_large) {
        char m[128];
        snprintf(m, sizeof m, "the request body is larger than %zu bytes", opt.max_body);
        return error(c, route, 413, m, "invalid_request_error", NULL, "request_too_large");
    }
    const char *body = cs->body.p ? cs->body.p : "";
    if (route == 3) {
        gl_strbuf b = {0};
        gl_sb_puts(&b, "{\"status\": \"ok\"}");
        return respond(c, route, 200, "application/json", &b);
    }
    if (route == 2) {
        gl_strbuf b = {0};
        gl_sb_puts(&b, "{\"object\": \"list\", \"data\": [{\"id\": ");
        api_json_string(&b, opt.model_name, strlen(opt.model_name));
        gl_sb_puts(&b, ", \"object\": \"model\", \"created\": 0, \"owned_by\": \"gradlab\"}]}");
        return respond(c, route, 200, "application/json", &b);
    }
    if (route == 4) return metrics_route(c);
    if (route == 5 || route == 6) return tokenize_route(c, route, body, cs->body.len);
    if (route == ROUTE_EMBEDDINGS) return embeddings_route(c, route, body, cs->body.len);
    if (route == ROUTE_PAGE || route == ROUTE_DOCS) return assistant_pages(c, route, url);
    if (route == 0 && have_assistant) return assistant_route(c, route, body, cs->body.len);
    return generate(c, route, body, cs->body.len);
}

static void request_completed(void *cls, struct MHD_Connection *c, void **state, enum MHD_RequestTerminationCode why) {
    (void)cls, (void)c, (void)why;
    connection_state *cs = *state;
    if (cs) gl_sb_free(&cs->body), free(cs);
    *state = NULL;
}

static void on_signal(int sig) { got_signal = sig; }

int main(int argc, char **argv) {
    opt = parse_options(argc, argv);
    if (opt.threads) omp_set_num_threads(opt.threads);
    char err[512];
    int n_layer, n_embd;
    sched_model served;
    gl_device device = strcmp(opt.device, "cuda") ? GL_CPU : GL_CUDA;
    if (opt.gguf) {
        if (!llama_load(&model, opt.gguf, err, sizeof err)) return fprintf(stderr, "serve: %s\n", err), 1;
        if (!model.tok) return fprintf(stderr, "serve: '%s' has no tokenizer gradlab reads\n", opt.gguf), 1;
        if (device != GL_CPU && !llama_to(&model, device, err, sizeof err))
            return fprintf(stderr, "serve: --device %s: %s\n", opt.device, err), 1;
        vocab_size = model.cfg.vocab_size, n_layer = model.cfg.n_layer, n_embd = model.cfg.n_embd;
        served = sched_llama(&model);
        vocab_trie = gl_vocab_trie_from_bpe(model.tok);
    } else {
        gpt_run_state rs;
        is_gpt = true;
        if (!gpt_load_checkpoint(opt.checkpoint, &gpt_model, &rs, NULL, NULL, NULL, err, sizeof err))
            return fprintf(stderr, "serve: %s\n", err), 1;
        if (rs.bpe_len && !(gpt_codec.bpe = gl_bpe_deserialize(rs.bpe, rs.bpe_len, opt.checkpoint, err, sizeof err)))
            return fprintf(stderr, "serve: %s\n", err), 1;
        gpt_codec.chars.size = rs.n_symbols, gpt_codec.chars.codepoints = rs.symbols;
        free(rs.bpe);
        if (device != GL_CPU && !gpt_to(&gpt_model, device, err, sizeof err))
            return fprintf(stderr, "serve: --device %s: %s\n", opt.device, err), 1;
        vocab_size = gpt_model.cfg.vocab_size, n_layer = gpt_model.cfg.n_layer, n_embd = gpt_model.cfg.n_embd;
        served = sched_gpt(&gpt_model);
        vocab_trie = gl_vocab_trie_from_codec(&gpt_codec);
    }
    stop_tokens[0] = served.stop[0], stop_tokens[1] = served.stop[1];
    if (opt.guard) {
        char gerr[512];
        if (!(guard = guard_rules_new(gerr, sizeof gerr))) fprintf(stderr, "serve: %s\n", gerr), exit(1);
        if (opt.guard_model && !tc_classifier_load(&guard_clf, opt.guard_model, gerr, sizeof gerr))
            fprintf(stderr, "serve: --guard-model: %s\n", gerr), exit(1);
        have_guard_clf = opt.guard_model != NULL;
    }
    if (opt.log_path && !(request_log = fopen(opt.log_path, "a")))
        fprintf(stderr, "serve: --log: cannot open '%s' to append: %s\n", opt.log_path, strerror(errno)), exit(1);
    if (opt.embed_model) {
        if (!bert_load(&embedder, opt.embed_model, err, sizeof err)) return fprintf(stderr, "serve: --embed-model: %s\n", err), 1;
        have_embedder = true;
        embed_ctx = gl_context_new();
    }
    if (opt.assistant_db) {
        if (!assistant_open(&helper, opt.assistant_db, opt.assistant_method, opt.embed_model,
                            opt.assistant_generate ? opt.gguf : NULL, guard, err, sizeof err))
            return fprintf(stderr, "serve: --assistant: %s\n", err), 1;
        have_assistant = true;
        printf("serve: assistant over %s (%d pages, %d chunks), %s retrieval%s\n", opt.assistant_db, helper.ix.st.n_pages,
               helper.ix.st.n_chunks, helper.method, helper.have_generator ? ", generated answers where supported" : "");
    }
    const char *path = opt.gguf ? opt.gguf : opt.checkpoint, *base = strrchr(path, '/');
    opt.model_name = base ? base + 1 : path;
    if (opt.ctx > served.ctx_len) opt.ctx = served.ctx_len;
    engine = sched_new(served, (sched_config){.slots = opt.slots, .ctx = opt.ctx, .prefill_chunk = opt.prefill_chunk,
                                              .max_queue = opt.queue, .kv_f16 = device == GL_CPU},
                       err, sizeof err);
    if (!engine) return fprintf(stderr, "serve: %s\n", err), 1;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
    if (inet_pton(AF_INET, !strcmp(opt.host, "localhost") ? "127.0.0.1" : opt.host, &addr.sin_addr) != 1)
        return fprintf(stderr, "serve: --host '%s' is not an IPv4 address\n", opt.host), 2;
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL), sigaction(SIGINT, &sa, NULL);
    pthread_t engine_thread;
    pthread_create(&engine_thread, NULL, engine_main, NULL);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG, 0, NULL, NULL,
        handle, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)opt.max_connections, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)opt.idle_s,
        MHD_OPTION_NOTIFY_COMPLETED, request_completed, NULL, MHD_OPTION_END);
    if (!d) return fprintf(stderr, "serve: cannot listen on %s:%d: %s\n", opt.host, opt.port, strerror(errno)), 1;
    printf("serve: %s (%d layers, %d dims, vocabulary %d) on %s, http://%s:%d/v1 with %d slots of %d positions%s\n",
           opt.model_name, n_layer, n_embd, vocab_size, opt.device, opt.host, opt.port, opt.slots, opt.ctx,
           opt.api_key ? ", API key required" : "");
    fflush(stdout);
    while (!got_signal) pause();
    /* shutdown: no new connections or requests; what runs gets the grace period, then is cancelled */
    printf("serve: signal %d: finishing %d request(s) (up to %.0f s)\n", (int)got_signal, in_flight, opt.grace_s);
    fflush(stdout);
    MHD_quiesce_daemon(d);
    pthread_mutex_lock(&work_lock);
    stopping = true;
    double until = now() + opt.grace_s;
    while (in_flight > 0 && now() < until) {
        pthread_mutex_unlock(&work_lock);
        usleep(20000);
        pthread_mutex_lock(&work_lock);
    }
    sched_cancel_all(engine); /* past the grace period: whatever still runs ends now, as "cancelled" */
    pthread_cond_broadcast(&work_cv);
    pthread_mutex_unlock(&work_lock);
    MHD_stop_daemon(d); /* waits for every connection's thread: each has its answer by now */
    pthread_mutex_lock(&work_lock);
    pthread_cond_broadcast(&work_cv);
    pthread_mutex_unlock(&work_lock);
    pthread_join(engine_thread, NULL);
    sched_free(engine);
    if (is_gpt) gpt_free(&gpt_model), gl_codec_free(&gpt_codec);
    else llama_free(&model);
    if (have_embedder) bert_free(&embedder), gl_context_free(embed_ctx);
    if (have_assistant) assistant_close(&helper);
    printf("serve: stopped\n");
    return 0;
}
