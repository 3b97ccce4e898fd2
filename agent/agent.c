/* The agent loop (agent.h). */
#include "agent.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api.h"
#include "io.h"
#include "mock.h"
#include "schema.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static const char SYSTEM[] =
    "You are a helpful assistant that uses tools. Reply with one JSON object only: "
    "{\"name\": TOOL, \"arguments\": {...}}. Tools:\n"
    "- calculator {\"expression\": \"12*(3+4)\"}: exact arithmetic; use it for every calculation\n"
    "- convert_units {\"value\": 5, \"from\": \"km\", \"to\": \"mi\"}: length, mass, volume, time, temperature\n"
    "- search_docs {\"query\": \"...\"}: searches the FastAPI documentation\n"
    "- read_section {\"page\": \"...\", \"section\": \"...\"}: reads a section that search_docs found\n"
    "- get_weather {\"city\": \"Paris\"}: the current weather of a city\n"
    "- get_stock_price {\"symbol\": \"AAPL\"}: the latest price of a stock\n"
    "- final_answer {\"answer\": \"...\"}: your answer to the user; call it as soon as you know the answer, or "
    "when a tool fails say that it is unavailable\n"
    "After each tool call you get the Observation.";

const char *agent_system_prompt(void) { return SYSTEM; }

/* Worked examples as earlier turns of the chat (few-shot): a 135M model follows a shown pattern far better than a
 * described one. They are the same for every task, so the KV cache keeps them from one task to the next. */
#define OBS_TAIL "\nIf this answers the task, call final_answer with the answer."
static const char *const EXAMPLES[][2] = {
    {"user", "What is the weather in Madrid?"},
    {"assistant", "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Madrid\"}}"},
    {"user", "Observation: {\"city\": \"Madrid\", \"temperature_c\": 17, \"condition\": \"sunny\", "
             "\"humidity_pct\": 40}" OBS_TAIL},
    {"assistant", "{\"name\": \"final_answer\", \"arguments\": {\"answer\": \"It is sunny and 17 C in Madrid.\"}}"},
    {"user", "What is the price of the XYZ stock?"},
    {"assistant", "{\"name\": \"get_stock_price\", \"arguments\": {\"symbol\": \"XYZ\"}}"},
    {"user", "Observation: {\"error\": \"the finance service answered HTTP 500\"}" OBS_TAIL},
    {"assistant", "{\"name\": \"final_answer\", \"arguments\": {\"answer\": \"Sorry, the finance service is "
                  "unavailable right now.\"}}"},
    {"user", "Hi there!"},
    {"assistant", "{\"name\": \"final_answer\", \"arguments\": {\"answer\": \"Hello! How can I help you?\"}}"},
    {"user", "What is 23 times 19?"},
    {"assistant", "{\"name\": \"calculator\", \"arguments\": {\"expression\": \"23*19\"}}"},
    {"user", "Observation: {\"result\": 437}" OBS_TAIL},
    {"assistant", "{\"name\": \"final_answer\", \"arguments\": {\"answer\": \"23 times 19 is 437.\"}}"},
};
enum { N_EXAMPLES = sizeof EXAMPLES / sizeof EXAMPLES[0] };

char *agent_call_schema(void) {
    gl_strbuf s = {0};
    gl_sb_puts(&s, "{\"anyOf\": [");
    for (int k = 0; k < AGENT_N_TOOLS; k++)
        gl_sb_printf(&s, "%s{\"type\": \"object\", \"properties\": {\"name\": {\"const\": \"%s\"}, \"arguments\": %s}, "
                         "\"required\": [\"name\", \"arguments\"], \"additionalProperties\": false}",
                     k ? ", " : "", AGENT_TOOLS[k].name, AGENT_TOOLS[k].parameters);
    gl_sb_puts(&s, "]}");
    return s.p;
}

bool agent_init(agent *a, llama *m, agent_tools *tools, agent_mode mode, char *err, size_t err_len) {
    memset(a, 0, sizeof *a);
    a->m = m, a->tools = tools, a->mode = mode;
    a->max_steps = 4, a->token_budget = 400, a->max_call_tokens = 96;
    if (!m->tok || !m->chatml) return snprintf(err, err_len, "the agent needs a chat model with a tokenizer"), false;
    char *schema_text = agent_call_schema();
    gl_json *schema = gl_json_parse(schema_text, strlen(schema_text), err, err_len);
    free(schema_text);
    if (!schema) return false;
    a->calls = gl_schema_grammar(schema, err, err_len);
    gl_json_free(schema);
    if (!a->calls) return false;
    a->trie = gl_vocab_trie_from_bpe(m->tok);
    int ctx = m->cfg.ctx_len < 4096 ? m->cfg.ctx_len : 4096;
    llama_cache_init(&a->cache, m, ctx, true);
    return true;
}

void agent_free(agent *a) {
    gl_grammar_free(a->calls);
    gl_vocab_trie_free(a->trie);
    llama_cache_free(&a->cache);
}

typedef struct {
    agent *a;
    gl_strbuf text;
    int tokens;
} collect;

static bool collect_token(int32_t tok, void *p) {
    collect *c = p;
    c->tokens++;
    if (tok == c->a->m->eot || tok == c->a->m->eos) return true;
    size_t len;
    const unsigned char *b = gl_bpe_token_bytes(c->a->m->tok, tok, &len);
    gl_sb_put(&c->text, (const char *)b, len);
    return true;
}

/* The first JSON object in text (a small model may wrap it in prose or a code fence): NULL if none parses. */
static gl_json *first_object(const char *text) {
    for (const char *p = strchr(text, '{'); p; p = strchr(p + 1, '{')) {
        int depth = 0;
        bool in_str = false, esc = false;
        for (const char *q = p; *q; q++) {
            if (in_str) {
                if (esc) esc = false;
                else if (*q == '\\') esc = true;
                else if (*q == '"') in_str = false;
                continue;
            }
            if (*q == '"') in_str = true;
            else if (*q == '{') depth++;
            else if (*q == '}' && --depth == 0) {
                char err[64];
                gl_json *v = gl_json_parse(p, (size_t)(q - p + 1), err, sizeof err);
                if (v && v->type == GL_JSON_OBJECT) return v;
                gl_json_free(v);
                break;
            }
        }
    }
    return NULL;
}

static void append_tool(char *list, size_t n, const char *name) {
    size_t len = strlen(list);
    snprintf(list + len, n - len, "%s%s", len ? "," : "", name);
}

void agent_run(agent *a, const char *task_id, const char *task, agent_result *r) {
    memset(r, 0, sizeof *r);
    r->stopped = "max_steps";
    double t_start = now_s();
    int cap_msgs = 2 + N_EXAMPLES + 2 * a->max_steps;
    const char **roles = malloc((size_t)cap_msgs * sizeof *roles);
    char **texts = malloc((size_t)cap_msgs * sizeof *texts);
    int n_msgs = 0;
    roles[n_msgs] = "system", texts[n_msgs++] = strdup(SYSTEM);
    for (int k = 0; k < N_EXAMPLES; k++) roles[n_msgs] = EXAMPLES[k][0], texts[n_msgs++] = strdup(EXAMPLES[k][1]);
    roles[n_msgs] = "user", texts[n_msgs++] = strdup(task);
    char **calls = malloc((size_t)a->max_steps * sizeof *calls); /* every call so far, compact, for the stuck check */
    int n_calls = 0;
    int32_t *ids = NULL;
    size_t ids_cap = 0;
    gl_rng rng;
    gl_rng_seed(&rng, 1);
    int32_t stops[2] = {a->m->eot, a->m->eos};
    gl_grammar_matcher *matcher = a->mode == AGENT_CONSTRAINED ? gl_matcher_new(a->calls, a->trie, stops, 2, 0) : NULL;
    for (int step = 1; step <= a->max_steps; step++) {
        int left = a->token_budget - r->tokens;
        if (left <= 0) {
            r->stopped = "budget";
            break;
        }
        int n = llama_chat_ids(a->m, roles, (const char *const *)texts, n_msgs, &ids, &ids_cap);
        int max_new = left < a->max_call_tokens ? left : a->max_call_tokens;
        if (n + max_new > a->cache.capacity) {
            r->stopped = "context";
            break;
        }
        gl_sampling s = {.temperature = 0, .top_k = 0, .top_p = 1, .grammar = matcher};
        if (matcher) gl_matcher_reset(matcher, max_new);
        collect c = {.a = a};
        double t0 = now_s();
        llama_generate(a->m, &a->cache, ids, n, max_new, &s, &rng, true, collect_token, &c);
        double gen_ms = (now_s() - t0) * 1e3;
        r->tokens += c.tokens;
        r->steps = step;
        const char *text = c.text.p ? c.text.p : "";
        gl_json *call = first_object(text);
        const gl_json *name = call ? gl_json_get(call, "name") : NULL, *args = call ? gl_json_get(call, "arguments") : NULL;
        gl_strbuf obs = {0}, args_text = {0};
        bool ok = false;
        double tool_ms = 0;
        const char *tool = name && name->type == GL_JSON_STRING ? name->string : NULL;
        if (args) api_json_value(&args_text, args);
        if (step == 1) {
            snprintf(r->first_tool, sizeof r->first_tool, "%s", tool ? tool : "");
            snprintf(r->first_args, sizeof r->first_args, "%s", args_text.p ? args_text.p : "");
        }
        bool finished = false;
        if (!tool || !args) {
            r->invalid_calls++;
            gl_sb_puts(&obs, "{\"error\": \"the reply was not a tool call: reply with one JSON object {\\\"name\\\": "
                             "TOOL, \\\"arguments\\\": {...}}\"}");
        } else if (!strcmp(tool, "final_answer")) {
            const gl_json *ans = gl_json_get(args, "answer");
            if (ans && ans->type == GL_JSON_STRING) snprintf(r->answer, sizeof r->answer, "%s", ans->string);
            else snprintf(r->answer, sizeof r->answer, "%s", args_text.p ? args_text.p : "");
            append_tool(r->tools_used, sizeof r->tools_used, tool);
            r->stopped = "answer", finished = ok = true;
        } else {
            gl_strbuf key = {0};
            gl_sb_printf(&key, "%s %s", tool, args_text.p ? args_text.p : "{}");
            bool repeated = false;
            for (int k = 0; k < n_calls && !repeated; k++) repeated = !strcmp(calls[k], key.p);
            append_tool(r->tools_used, sizeof r->tools_used, tool);
            if (repeated) {
                gl_sb_puts(&obs, "{\"error\": \"the same call again: stopped\"}");
                r->stopped = "stuck", finished = true;
                gl_sb_free(&key);
            } else {
                calls[n_calls++] = key.p;
                double t1 = now_s();
                ok = agent_tool_run(a->tools, tool, args, &obs);
                tool_ms = (now_s() - t1) * 1e3;
                if (!ok) r->tool_errors++;
            }
        }
        if (a->trace) {
            gl_strbuf line = {0};
            gl_sb_puts(&line, "{\"task\": ");
            api_json_string(&line, task_id, strlen(task_id));
            gl_sb_printf(&line, ", \"mode\": \"%s\", \"step\": %d, \"thought\": ", a->mode == AGENT_CONSTRAINED ? "constrained" : "free", step);
            /* the free text before the call, if any, is what the model "thought" */
            const char *brace = strchr(text, '{');
            size_t pre = brace ? (size_t)(brace - text) : strlen(text);
            if (pre && call) api_json_string(&line, text, pre);
            else gl_sb_puts(&line, "null");
            gl_sb_puts(&line, ", \"reply\": ");
            api_json_string(&line, text, strlen(text));
            gl_sb_puts(&line, ", \"tool\": ");
            if (tool) api_json_string(&line, tool, strlen(tool));
            else gl_sb_puts(&line, "null");
            gl_sb_printf(&line, ", \"arguments\": %s, \"observation\": %s, \"ok\": %s, \"tokens\": %d, "
                                "\"generate_ms\": %.1f, \"tool_ms\": %.1f}\n",
                         args_text.p ? args_text.p : "null", obs.p ? obs.p : "null", ok ? "true" : "false", c.tokens,
                         gen_ms, tool_ms);
            fputs(line.p, a->trace);
            fflush(a->trace);
            gl_sb_free(&line);
        }
        if (!finished) { /* the call and its observation become the next two messages */
            roles[n_msgs] = "assistant", texts[n_msgs++] = strdup(text);
            gl_strbuf u = {0};
            gl_sb_printf(&u, "Observation: %s" OBS_TAIL, obs.p ? obs.p : "{}");
            roles[n_msgs] = "user", texts[n_msgs++] = u.p;
        }
        gl_json_free(call);
        gl_sb_free(&obs);
        gl_sb_free(&args_text);
        gl_sb_free(&c.text);
        if (finished) break;
    }
    if (matcher) {
        gl_matcher_free(matcher);
    }
    for (int k = 0; k < n_calls; k++) free(calls[k]);
    for (int k = 0; k < n_msgs; k++) free(texts[k]);
    free(calls);
    free(roles);
    free(texts);
    free(ids);
    r->seconds = now_s() - t_start;
}

/* ---------------------------------------------------------------- the task set */

bool agent_tasks_load(const char *path, agent_task **tasks, int *n, char *err, size_t err_len) {
    unsigned char *data;
    size_t len;
    *tasks = NULL, *n = 0;
    if (!gl_read_whole_file(path, &data, &len, err, err_len)) return false;
    int cap = 0, line = 0;
    bool ok = true;
    for (char *p = (char *)data, *end; ok && *p; p = end + (*end == '\n')) {
        end = strchr(p, '\n');
        if (!end) end = p + strlen(p);
        line++;
        if (end == p) continue;
        char jerr[200];
        gl_json *doc = gl_json_parse(p, (size_t)(end - p), jerr, sizeof jerr);
        if (!doc || doc->type != GL_JSON_OBJECT) {
            snprintf(err, err_len, "%s line %d: %s", path, line, doc ? "not a JSON object" : jerr);
            gl_json_free(doc);
            ok = false;
            break;
        }
        agent_task t = {.doc = doc};
        t.id = agent_json_text(doc, "id"), t.split = agent_json_text(doc, "split"), t.kind = agent_json_text(doc, "kind");
        t.task = agent_json_text(doc, "task"), t.tool = agent_json_text(doc, "tool");
        t.args = gl_json_get(doc, "args"), t.answer = gl_json_get(doc, "answer"), t.fault = gl_json_get(doc, "fault");
        const char *missing = !t.id ? "id" : !t.split ? "split" : !t.kind ? "kind" : !t.task ? "task" : !t.tool ? "tool"
                              : !t.args || t.args->type != GL_JSON_OBJECT ? "args (an object)"
                              : !t.answer || (t.answer->type != GL_JSON_NUMBER && t.answer->type != GL_JSON_ARRAY)
                                  ? "answer (a number or a list of strings)" : NULL;
        if (missing) {
            snprintf(err, err_len, "%s line %d: the task needs %s", path, line, missing);
            gl_json_free(doc);
            ok = false;
            break;
        }
        if (*n == cap) cap = cap ? 2 * cap : 64, *tasks = realloc(*tasks, (size_t)cap * sizeof **tasks);
        (*tasks)[(*n)++] = t;
    }
    free(data);
    if (!ok) agent_tasks_free(*tasks, *n), *tasks = NULL, *n = 0;
    return ok;
}

void agent_tasks_free(agent_task *tasks, int n) {
    for (int i = 0; i < n; i++) gl_json_free(tasks[i].doc);
    free(tasks);
}

static bool near(double a, double b) { return fabs(a - b) <= 0.01 * fabs(b) + 1e-9; }

/* one expected argument against the one given: numbers within 1%, strings equal ignoring case and outer spaces, a
 * calculator expression by its value */
static bool arg_matches(const char *key, const gl_json *want, const gl_json *got) {
    if (!got) return false;
    if (want->type == GL_JSON_NUMBER) return got->type == GL_JSON_NUMBER && near(got->number, want->number);
    if (want->type != GL_JSON_STRING || got->type != GL_JSON_STRING) return false;
    if (!strcmp(key, "expression")) {
        double a, b;
        char err[128];
        return calc_eval(want->string, &a, err, sizeof err) && calc_eval(got->string, &b, err, sizeof err) && near(b, a);
    }
    if (!strcmp(key, "from") || !strcmp(key, "to")) return units_same(want->string, got->string);
    const char *g = got->string;
    while (*g == ' ') g++;
    size_t gl = strlen(g), wl = strlen(want->string);
    while (gl && g[gl - 1] == ' ') gl--;
    return gl == wl && !strncasecmp(g, want->string, wl);
}

agent_score agent_grade(const agent_task *t, const agent_result *r) {
    agent_score s = {0};
    s.tool_ok = !strcmp(r->first_tool, t->tool);
    if (s.tool_ok && r->first_args[0]) {
        char err[64];
        gl_json *got = gl_json_parse(r->first_args, strlen(r->first_args), err, sizeof err);
        s.args_ok = got != NULL;
        for (size_t i = 0; got && i < t->args->count && s.args_ok; i++)
            s.args_ok = arg_matches(t->args->keys[i], &t->args->items[i], gl_json_get(got, t->args->keys[i]));
        gl_json_free(got);
    }
    if (strcmp(r->stopped, "answer")) return s;
    if (t->answer->type == GL_JSON_NUMBER) { /* any number in the answer */
        for (const char *p = r->answer; *p && !s.success; p++) {
            if (!(*p >= '0' && *p <= '9') && !(*p == '-' && p[1] >= '0' && p[1] <= '9')) continue;
            char clean[64];
            size_t k = 0;
            const char *q = p;
            for (; *q && k + 1 < sizeof clean && (strchr("0123456789.-", *q) || (*q == ',' && q[1] >= '0' && q[1] <= '9')); q++)
                if (*q != ',') clean[k++] = *q;
            clean[k] = 0;
            s.success = near(strtod(clean, NULL), t->answer->number);
            p = q - 1;
        }
    } else {
        for (size_t i = 0; i < t->answer->count && !s.success; i++)
            s.success = t->answer->items[i].type == GL_JSON_STRING && text_has_nocase(r->answer, t->answer->items[i].string);
    }
    return s;
}

bool agent_task_faults(const agent_task *t, mock_services *m, int latency_ms, char *err, size_t err_len) {
    mock_set_fault(m, "weather", MOCK_OK, latency_ms), mock_set_fault(m, "finance", MOCK_OK, latency_ms);
    if (!t->fault) return true;
    const gl_json *svc = gl_json_get(t->fault, "service"), *fm = gl_json_get(t->fault, "mode");
    mock_fault f;
    if (!svc || svc->type != GL_JSON_STRING || !fm || fm->type != GL_JSON_STRING || !mock_fault_parse(fm->string, &f) ||
        !mock_set_fault(m, svc->string, f, latency_ms))
        return snprintf(err, err_len, "task %s: 'fault' must be {\"service\": weather|finance, \"mode\": "
                                      "500|timeout|garbage}", t->id), false;
    return true;
}

void agent_result_json(gl_json_writer *w, const agent_task *t, const char *mode, const agent_score *s,
                       const agent_result *r) {
    gl_jw_object(w, NULL);
    gl_jw_string(w, "id", t->id);
    gl_jw_string(w, "kind", t->kind);
    gl_jw_string(w, "mode", mode);
    gl_jw_bool(w, "success", s->success);
    gl_jw_bool(w, "tool_ok", s->tool_ok);
    gl_jw_bool(w, "args_ok", s->args_ok);
    gl_jw_string(w, "first_tool", r->first_tool);
    gl_jw_string(w, "first_args", r->first_args);
    gl_jw_string(w, "tools", r->tools_used);
    gl_jw_string(w, "answer", r->answer);
    gl_jw_string(w, "stopped", r->stopped);
    gl_jw_int(w, "steps", r->steps);
    gl_jw_int(w, "tokens", r->tokens);
    gl_jw_int(w, "invalid_calls", r->invalid_calls);
    gl_jw_number(w, "seconds", r->seconds);
    gl_jw_end(w);
}
