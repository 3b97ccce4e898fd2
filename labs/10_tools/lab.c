/* Lab 10: tool calling and agents. How a small model is made to emit a tool call that always parses (a grammar
 * from the tool's JSON Schema, a mask over the vocabulary before each token), what that costs, and how often an
 * agent built on it decides, acts, observes and stops correctly on a task set. README.md says what to look at. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "agent.h"
#include "cli.h"
#include "io.h"
#include "json.h"
#include "mock.h"
#include "plot.h"
#include "schema.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static void die(const char *what, const char *err) {
    fprintf(stderr, "lab10: %s: %s\n", what, err);
    exit(1);
}

/* a token's bytes, printable on one line */
static void show_token(const llama *m, int32_t id, char *out, size_t n) {
    size_t len, k = 0;
    const unsigned char *b = gl_bpe_token_bytes(m->tok, id, &len);
    for (size_t i = 0; i < len && k + 3 < n; i++) {
        if (b[i] == '\n') out[k++] = '\\', out[k++] = 'n';
        else out[k++] = (char)b[i];
    }
    out[k] = 0;
}

typedef struct {
    const llama *m;
    gl_strbuf text;
    int n;
} collect;

static bool keep(int32_t tok, void *p) {
    collect *c = p;
    c->n++;
    if (tok == c->m->eot || tok == c->m->eos) return true;
    size_t len;
    const unsigned char *b = gl_bpe_token_bytes(c->m->tok, tok, &len);
    gl_sb_put(&c->text, (const char *)b, len);
    return true;
}

int main(int argc, char **argv) {
    const char *out = "out/lab10", *docs = NULL, *split = "test";
    int samples = 20, limit = 0;
    char model_path[4096], err[512];
    if (!gl_find_data("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", model_path, sizeof model_path))
        die("no SmolLM2-135M-Instruct", "make data DATA_SETS=smollm2 fetches it");
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--out")) out = argv[i + 1];
        else if (!strcmp(argv[i], "--docs-db")) docs = argv[i + 1];
        else if (!strcmp(argv[i], "--split")) split = argv[i + 1];
        else if (!strcmp(argv[i], "--samples")) samples = gl_flag_int("lab10", argv[i], argv[i + 1], 1, 100000);
        else if (!strcmp(argv[i], "--limit")) limit = gl_flag_int("lab10", argv[i], argv[i + 1], 0, 1000);
        else die("unknown flag", argv[i]);
    }
    mkdir(out, 0755);
    llama m;
    if (!llama_load(&m, model_path, err, sizeof err)) die(model_path, err);
    printf("== Lab 10: tool calling and agents (SmolLM2-135M-Instruct, %d threads)\n\n", omp_get_max_threads());

    /* ---- 1. a schema becomes a grammar; the grammar becomes a mask */
    const char *weather_schema =
        "{\"type\": \"object\", \"properties\": {\"name\": {\"const\": \"get_weather\"}, \"arguments\": {\"type\": \"object\", "
        "\"properties\": {\"city\": {\"type\": \"string\", \"maxLength\": 40}}, \"required\": [\"city\"]}}, "
        "\"required\": [\"name\", \"arguments\"]}";
    gl_json *ws = gl_json_parse(weather_schema, strlen(weather_schema), err, sizeof err);
    char *gtext = gl_schema_to_grammar(ws, err, sizeof err);
    if (!gtext) die("schema", err);
    printf("1. The schema of one tool call\n   %s\nbecomes a grammar (models/schema.c); its first rules:\n", weather_schema);
    int shown = 0;
    for (char *p = gtext; *p && shown < 9; shown++) {
        char *e = strchr(p, '\n');
        printf("   %.*s\n", (int)(e ? e - p : (long)strlen(p)), p);
        p = e ? e + 1 : p + strlen(p);
    }
    gl_grammar *wg = gl_grammar_parse(gtext, err, sizeof err);
    if (!wg) die("grammar", err);
    printf("   ... %d rules in all once repetitions and groups are rules of their own.\n\n",
           gl_grammar_rule_count(wg));
    gl_vocab_trie *trie = gl_vocab_trie_from_bpe(m.tok);
    const char *call = "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}";
    int32_t *ids = NULL;
    size_t cap = 0, n_ids = gl_bpe_encode(m.tok, (const unsigned char *)call, strlen(call), &ids, &cap);
    int32_t stops[2] = {m.eot, m.eos};
    gl_grammar_matcher *mt = gl_matcher_new(wg, trie, stops, 2, 0);
    printf("   The call %s is %zu tokens. Before each, the tokens of the %d-token vocabulary the grammar allows\n"
           "   (a walk over the trie of the tokens' bytes, %d nodes):\n", call, n_ids, m.cfg.vocab_size,
           gl_vocab_trie_nodes(trie));
    printf("   %-4s %-14s %8s  %s\n", "step", "next token", "allowed", "some allowed tokens");
    for (size_t i = 0; i <= n_ids; i++) {
        int allowed = 0;
        const uint64_t *mask = gl_matcher_allowed(mt, &allowed);
        char tok[64] = "(end)", examples[256] = "";
        if (i < n_ids) show_token(&m, ids[i], tok, sizeof tok);
        size_t at = 0;
        int listed = 0;
        for (int t = 0; t < m.cfg.vocab_size && listed < 5; t++)
            if ((mask[t >> 6] >> (t & 63)) & 1) {
                char s[48];
                show_token(&m, t, s, sizeof s);
                if (t == m.eot) snprintf(s, sizeof s, "<|im_end|>");
                at += (size_t)snprintf(examples + at, sizeof examples - at, "%s'%s'", listed ? " " : "", s);
                listed++;
            }
        printf("   %-4zu %-14s %8d  %s\n", i + 1, tok, allowed, examples);
        if (i < n_ids && !gl_matcher_accept_token(mt, ids[i])) die("the example", "the grammar refused its own call");
    }
    gl_grammar_stats gs = gl_grammar_get_stats(wg);
    printf("   %lld parse states were met; %lld masks were walked and %lld reused from the cache.\n\n", gs.states,
           gs.masks_computed, gs.masks_reused);
    gl_matcher_free(mt);
    free(ids);

    /* ---- 2. valid calls at temperature 1, with and without the grammar; what the mask costs */
    char *call_schema_text = agent_call_schema();
    gl_json *call_schema = gl_json_parse(call_schema_text, strlen(call_schema_text), err, sizeof err);
    gl_grammar *cg = gl_schema_grammar(call_schema, err, sizeof err);
    if (!cg) die("the call schema", err);
    const char *roles[] = {"system", "user"};
    const char *texts[] = {agent_system_prompt(), "What is the weather in Paris?"};
    int32_t *prompt = NULL;
    size_t pcap = 0;
    int n_prompt = llama_chat_ids(&m, roles, texts, 2, &prompt, &pcap);
    llama_cache cache;
    llama_cache_init(&cache, &m, 1024, true);
    gl_grammar_matcher *cm = gl_matcher_new(cg, trie, stops, 2, 96);
    int valid[2] = {0, 0}, tokens[2] = {0, 0};
    double secs[2] = {0, 0};
    char example[2][512] = {"", ""};
    for (int k = 0; k < samples; k++)
        for (int constrained = 0; constrained < 2; constrained++) {
            gl_rng rng;
            gl_rng_seed(&rng, (uint64_t)k + 1);
            gl_matcher_reset(cm, 96);
            gl_sampling s = {.temperature = 1, .top_k = 0, .top_p = 1, .grammar = constrained ? cm : NULL};
            collect c = {.m = &m};
            double t0 = now_s();
            llama_generate(&m, &cache, prompt, n_prompt, 96, &s, &rng, true, keep, &c);
            secs[constrained] += now_s() - t0, tokens[constrained] += c.n;
            gl_json *doc = c.text.p ? gl_json_parse(c.text.p, c.text.len, err, sizeof err) : NULL;
            bool ok = doc && gl_schema_validate(call_schema, doc, err, sizeof err);
            valid[constrained] += ok;
            if (!example[constrained][0] && (constrained || !ok))
                for (size_t i = 0, j = 0; c.text.p && i < c.text.len && j + 3 < sizeof example[0]; i++)
                    example[constrained][j++] = c.text.p[i] == '\n' ? ' ' : c.text.p[i], example[constrained][j] = 0;
            gl_json_free(doc);
            gl_sb_free(&c.text);
        }
    printf("2. \"What is the weather in Paris?\" sampled %d times at temperature 1 (the agent's system prompt, no examples):\n",
           samples);
    printf("   unconstrained: %3d of %d replies are a valid tool call, %.1f tokens/s   e.g. %.90s\n", valid[0],
           samples, tokens[0] / secs[0], example[0]);
    printf("   constrained:   %3d of %d replies are a valid tool call, %.1f tokens/s   e.g. %.90s\n", valid[1],
           samples, tokens[1] / secs[1], example[1]);
    gl_grammar_stats cs = gl_grammar_get_stats(cg);
    printf("   The grammar met %lld states; %lld masks walked, %lld reused (make bench-tools measures the overhead).\n\n",
           cs.states, cs.masks_computed, cs.masks_reused);
    gl_matcher_free(cm);
    llama_cache_free(&cache);
    free(prompt);

    /* ---- 3. the agent on the task set */
    mock_services *mock = mock_start(1500, err, sizeof err);
    if (!mock) die("mock services", err);
    agent_tools tools;
    agent_tools_init(&tools, docs, mock_weather_port(mock), mock_finance_port(mock), 1000);
    if (!tools.have_docs) printf("   (search_docs: %s)\n", tools.docs_error);
    agent_task *tasks;
    int n_tasks;
    if (!agent_tasks_load("labs/10_tools/tasks.jsonl", &tasks, &n_tasks, err, sizeof err)) die("tasks", err);
    char path[4096];
    snprintf(path, sizeof path, "%s/traces.jsonl", out);
    FILE *trace = fopen(path, "w");
    if (!trace) die(path, "cannot write");
    const char *kinds[] = {"arithmetic", "units", "docs", "weather", "finance", "two_step", "no_tool"};
    enum { N_KINDS = 7 };
    float success[2][N_KINDS] = {{0}}, tool_ok[2][N_KINDS] = {{0}}, args_ok[2][N_KINDS] = {{0}};
    int count[N_KINDS] = {0}, total[2][3] = {{0}}, n_run = 0;
    int why[2][5] = {{0}}; /* wrong first tool, right tool wrong arguments, no answer (steps, stuck, budget), wrong answer */
    printf("3. The agent on the %s tasks (agent/agent.c; both modes; trace in %s):\n", split, path);
    gl_json_writer w;
    snprintf(path, sizeof path, "%s/results.json", out);
    if (!gl_jw_open(&w, path)) die(path, "cannot write");
    gl_jw_object(&w, NULL);
    gl_jw_int(&w, "samples", samples);
    gl_jw_int(&w, "valid_unconstrained", valid[0]);
    gl_jw_int(&w, "valid_constrained", valid[1]);
    gl_jw_number(&w, "tokens_per_s_unconstrained", tokens[0] / secs[0]);
    gl_jw_number(&w, "tokens_per_s_constrained", tokens[1] / secs[1]);
    gl_jw_array(&w, "tasks");
    for (int mode = 0; mode < 2; mode++) {
        agent a;
        if (!agent_init(&a, &m, &tools, mode == 0 ? AGENT_CONSTRAINED : AGENT_FREE, err, sizeof err)) die("agent", err);
        a.trace = trace;
        int taken[N_KINDS] = {0};
        for (int i = 0; i < n_tasks; i++) {
            const agent_task *t = &tasks[i];
            if (strcmp(split, "all") && strcmp(t->split, split)) continue;
            int kind = 0;
            while (kind < N_KINDS - 1 && strcmp(kinds[kind], t->kind)) kind++;
            if (limit && taken[kind]++ >= limit) continue; /* --limit N: the first N tasks of each kind */
            if (!agent_task_faults(t, mock, 0, err, sizeof err)) die("tasks", err);
            agent_result r;
            agent_run(&a, t->id, t->task, &r);
            agent_score s = agent_grade(t, &r);
            int k = 0;
            while (k < N_KINDS - 1 && strcmp(kinds[k], t->kind)) k++;
            success[mode][k] += s.success, tool_ok[mode][k] += s.tool_ok, args_ok[mode][k] += s.args_ok;
            if (mode == 0) count[k]++, n_run++;
            total[mode][0] += s.success, total[mode][1] += s.tool_ok, total[mode][2] += s.args_ok;
            if (!s.success) why[mode][!s.tool_ok ? 0 : !s.args_ok ? 1 : strcmp(r.stopped, "answer") ? 2 : 3]++;
            agent_result_json(&w, t, mode == 0 ? "constrained" : "free", &s, &r);
        }
        agent_free(&a);
    }
    gl_jw_end(&w);
    printf("   %-11s %5s   %-22s   %-22s\n", "", "tasks", "constrained: ok/tool/args", "free: ok/tool/args");
    for (int k = 0; k < N_KINDS; k++) {
        if (!count[k]) continue;
        printf("   %-11s %5d   %6.0f%% %5.0f%% %5.0f%%      %6.0f%% %5.0f%% %5.0f%%\n", kinds[k], count[k],
               100 * success[0][k] / count[k], 100 * tool_ok[0][k] / count[k], 100 * args_ok[0][k] / count[k],
               100 * success[1][k] / count[k], 100 * tool_ok[1][k] / count[k], 100 * args_ok[1][k] / count[k]);
        for (int mode = 0; mode < 2; mode++) success[mode][k] /= (float)count[k];
    }
    double n = n_run ? n_run : 1;
    printf("   %-11s %5d   %6.0f%% %5.0f%% %5.0f%%      %6.0f%% %5.0f%% %5.0f%%\n", "all", n_run, 100 * total[0][0] / n,
           100 * total[0][1] / n, 100 * total[0][2] / n, 100 * total[1][0] / n, 100 * total[1][1] / n,
           100 * total[1][2] / n);
    printf("\n4. Why tasks fail            constrained   free\n");
    const char *reasons[] = {"wrong first tool", "right tool, wrong arguments", "no final answer (steps, stuck)",
                             "answered, but wrongly"};
    for (int k = 0; k < 4; k++) printf("   %-28s %8d %8d\n", reasons[k], why[0][k], why[1][k]);
    gl_jw_object(&w, "summary");
    for (int mode = 0; mode < 2; mode++) {
        gl_jw_object(&w, mode == 0 ? "constrained" : "free");
        gl_jw_number(&w, "success_rate", total[mode][0] / n);
        gl_jw_number(&w, "tool_selection_accuracy", total[mode][1] / n);
        gl_jw_number(&w, "argument_exact_match", total[mode][2] / n);
        gl_jw_int(&w, "wrong_tool", why[mode][0]);
        gl_jw_int(&w, "wrong_arguments", why[mode][1]);
        gl_jw_int(&w, "no_answer", why[mode][2]);
        gl_jw_int(&w, "wrong_answer", why[mode][3]);
        gl_jw_end(&w);
    }
    gl_jw_end(&w);
    gl_jw_end(&w);
    if (!gl_jw_close(&w)) die("results.json", "write failed");
    fclose(trace);
    const char *groups[N_KINDS];
    float ys[2][N_KINDS];
    int g = 0;
    for (int k = 0; k < N_KINDS; k++)
        if (count[k]) groups[g] = kinds[k], ys[0][g] = success[0][k], ys[1][g] = success[1][k], g++;
    gl_series series[2] = {{.name = "constrained", .y = ys[0], .n = g}, {.name = "free", .y = ys[1], .n = g}};
    gl_chart chart = {.title = "Agent success by kind of task (SmolLM2-135M)", .ylabel = "success rate"};
    snprintf(path, sizeof path, "%s/agent.png", out);
    if (!gl_plot_bars(path, &chart, groups, g, series, 2, err, sizeof err)) die("plot", err);
    printf("\nwrote %s/results.json, %s/traces.jsonl, %s\n", out, out, path);
    agent_tasks_free(tasks, n_tasks);
    agent_tools_free(&tools);
    mock_stop(mock);
    gl_matcher_free(NULL);
    gl_grammar_free(cg), gl_grammar_free(wg);
    gl_json_free(call_schema), gl_json_free(ws);
    free(call_schema_text), free(gtext);
    gl_vocab_trie_free(trie);
    llama_free(&m);
    return 0;
}
