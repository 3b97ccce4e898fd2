/* agent: a chat model that uses tools (lab 10). One task, or a task set graded per task; `agent --help`. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agent.h"
#include "cli.h"
#include "io.h"
#include "json.h"
#include "mock.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: agent --gguf MODEL.gguf --task TEXT [flags]          one task; the trace goes to stderr\n"
            "       agent --gguf MODEL.gguf --tasks FILE [--split dev|test|all] --out DIR [flags]\n"
            "                                    a task set: DIR/results.json (per task and summed) and DIR/traces.jsonl\n"
            "  --mode constrained|free|both  tool calls under the grammar of the tools' schemas, or free (default both\n"
            "                              with --tasks, constrained with --task)\n"
            "  --docs-db FILE      a `rag index` of the FastAPI docs for search_docs and read_section\n"
            "  --max-steps N       tool calls per task (4)       --budget N   generated tokens per task (400)\n"
            "  --tool-timeout-ms N an HTTP tool's limit (1000)    --latency-ms N  the mock services' delay (0)\n"
            "  --fault SERVICE:MODE  weather|finance : 500|timeout|garbage for --task (a task set sets its own)\n"
            "  --threads N\n"
            "The weather and finance tools call two mock JSON services that agent starts on loopback (docs/agents.md).\n");
}

static void fail(const char *msg) {
    fprintf(stderr, "agent: %s\n", msg);
    exit(1);
}

typedef struct {
    int n, success, tool_ok, args_ok, steps, tokens, invalid, tool_errors, answered, stuck, budget, max_steps;
    double seconds;
} tally;

static void add(tally *t, const agent_score *s, const agent_result *r) {
    t->n++;
    t->success += s->success, t->tool_ok += s->tool_ok, t->args_ok += s->args_ok;
    t->steps += r->steps, t->tokens += r->tokens, t->invalid += r->invalid_calls, t->tool_errors += r->tool_errors;
    t->answered += !strcmp(r->stopped, "answer"), t->stuck += !strcmp(r->stopped, "stuck");
    t->budget += !strcmp(r->stopped, "budget"), t->max_steps += !strcmp(r->stopped, "max_steps");
    t->seconds += r->seconds;
}

static void write_tally(gl_json_writer *w, const char *key, const tally *t) {
    gl_jw_object(w, key);
    gl_jw_int(w, "tasks", t->n);
    double n = t->n ? t->n : 1;
    gl_jw_number(w, "success_rate", t->success / n);
    gl_jw_number(w, "tool_selection_accuracy", t->tool_ok / n);
    gl_jw_number(w, "argument_exact_match", t->args_ok / n);
    gl_jw_number(w, "valid_call_rate", t->steps ? 1.0 - (double)t->invalid / t->steps : 0);
    gl_jw_number(w, "mean_steps", t->steps / n);
    gl_jw_number(w, "mean_tokens", t->tokens / n);
    gl_jw_number(w, "mean_seconds", t->seconds / n);
    gl_jw_int(w, "tool_errors", t->tool_errors);
    gl_jw_int(w, "ended_by_answer", t->answered);
    gl_jw_int(w, "ended_stuck", t->stuck);
    gl_jw_int(w, "ended_by_budget", t->budget);
    gl_jw_int(w, "ended_by_max_steps", t->max_steps);
    gl_jw_end(w);
}

int main(int argc, char **argv) {
    const char *gguf = NULL, *task = NULL, *tasks_path = NULL, *split = "test", *out = NULL, *docs = NULL;
    const char *mode_name = NULL, *fault = NULL;
    int max_steps = 4, budget = 400, timeout_ms = 1000, latency_ms = 0, threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) usage(stdout), exit(0);
        if (i + 1 >= argc) {
            fprintf(stderr, "agent: unknown flag or missing value: '%s'\n", f);
            usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(f, "--gguf")) gguf = v;
        else if (!strcmp(f, "--task")) task = v;
        else if (!strcmp(f, "--tasks")) tasks_path = v;
        else if (!strcmp(f, "--split")) split = v;
        else if (!strcmp(f, "--out")) out = v;
        else if (!strcmp(f, "--docs-db")) docs = v;
        else if (!strcmp(f, "--mode")) mode_name = v;
        else if (!strcmp(f, "--fault")) fault = v;
        else if (!strcmp(f, "--max-steps")) max_steps = gl_flag_int("agent", f, v, 1, 32);
        else if (!strcmp(f, "--budget")) budget = gl_flag_int("agent", f, v, 16, 100000);
        else if (!strcmp(f, "--tool-timeout-ms")) timeout_ms = gl_flag_int("agent", f, v, 1, 600000);
        else if (!strcmp(f, "--latency-ms")) latency_ms = gl_flag_int("agent", f, v, 0, 600000);
        else if (!strcmp(f, "--threads")) threads = gl_flag_int("agent", f, v, 1, 1024);
        else {
            fprintf(stderr, "agent: unknown flag '%s'\n", f);
            usage(stderr);
            return 2;
        }
    }
    if (!gguf) fail("give the model: --gguf MODEL.gguf (make data DATA_SETS=smollm2 fetches SmolLM2-135M-Instruct)");
    if (!task == !tasks_path) fail("give one of --task TEXT or --tasks FILE");
    if (tasks_path && !out) fail("--tasks needs --out DIR for results.json and traces.jsonl");
    if (strcmp(split, "dev") && strcmp(split, "test") && strcmp(split, "all")) fail("--split must be dev, test or all");
    if (!mode_name) mode_name = task ? "constrained" : "both";
    bool run_constrained = !strcmp(mode_name, "constrained") || !strcmp(mode_name, "both");
    bool run_free = !strcmp(mode_name, "free") || !strcmp(mode_name, "both");
    if (!run_constrained && !run_free) fail("--mode must be constrained, free or both");
    if (threads) omp_set_num_threads(threads);

    char err[512];
    agent_task *tasks = NULL;
    int n_tasks = 0;
    if (tasks_path && !agent_tasks_load(tasks_path, &tasks, &n_tasks, err, sizeof err)) fail(err);
    mock_fault cli_fault = MOCK_OK;
    char fault_service[16] = "";
    if (fault) {
        const char *colon = strchr(fault, ':');
        if (!colon || colon - fault >= (long)sizeof fault_service || !mock_fault_parse(colon + 1, &cli_fault))
            fail("--fault must be SERVICE:MODE, e.g. weather:timeout (modes: 500, timeout, garbage)");
        memcpy(fault_service, fault, (size_t)(colon - fault));
        fault_service[colon - fault] = 0;
    }
    mock_services *mock = mock_start(timeout_ms + 500, err, sizeof err);
    if (!mock) fail(err);
    if (fault && !mock_set_fault(mock, fault_service, cli_fault, latency_ms)) fail("--fault: the service must be weather or finance");
    if (!fault) mock_set_fault(mock, "weather", MOCK_OK, latency_ms), mock_set_fault(mock, "finance", MOCK_OK, latency_ms);
    llama m;
    if (!llama_load(&m, gguf, err, sizeof err)) fail(err);
    agent_tools tools;
    agent_tools_init(&tools, docs, mock_weather_port(mock), mock_finance_port(mock), timeout_ms);
    if (docs && !tools.have_docs) fprintf(stderr, "agent: search_docs will report: %s\n", tools.docs_error);

    if (task) {
        agent a;
        if (!agent_init(&a, &m, &tools, run_constrained ? AGENT_CONSTRAINED : AGENT_FREE, err, sizeof err)) fail(err);
        a.max_steps = max_steps, a.token_budget = budget, a.trace = stderr;
        agent_result r;
        agent_run(&a, "task", task, &r);
        printf("%s\n", r.answer[0] ? r.answer : "(no answer)");
        fprintf(stderr, "agent: %s after %d steps, %d tokens, %.1f s; tools: %s\n", r.stopped, r.steps, r.tokens,
                r.seconds, r.tools_used[0] ? r.tools_used : "none");
        agent_free(&a);
    } else {
        mkdir(out, 0755);
        char path[4096];
        snprintf(path, sizeof path, "%s/traces.jsonl", out);
        gl_atomic trace_file;
        FILE *trace = gl_atomic_open(&trace_file, path);
        if (!trace) fail("cannot write the traces in --out");
        gl_json_writer w;
        snprintf(path, sizeof path, "%s/results.json", out);
        if (!gl_jw_open(&w, path)) fail("cannot write results.json in --out");
        gl_jw_object(&w, NULL);
        gl_jw_string(&w, "model", gguf);
        gl_jw_string(&w, "split", split);
        gl_jw_int(&w, "max_steps", max_steps);
        gl_jw_int(&w, "token_budget", budget);
        for (int mode = 0; mode < 2; mode++) {
            if ((mode == 0 && !run_constrained) || (mode == 1 && !run_free)) continue;
            agent a;
            if (!agent_init(&a, &m, &tools, mode == 0 ? AGENT_CONSTRAINED : AGENT_FREE, err, sizeof err)) fail(err);
            a.max_steps = max_steps, a.token_budget = budget, a.trace = trace;
            const char *mname = mode == 0 ? "constrained" : "free";
            tally all = {0}, by_kind[8] = {{0}};
            const char *kinds[8];
            int n_kinds = 0;
            gl_jw_object(&w, mname);
            gl_jw_array(&w, "tasks");
            for (int i = 0; i < n_tasks; i++) {
                const agent_task *t = &tasks[i];
                if (strcmp(split, "all") && strcmp(t->split, split)) continue;
                if (!agent_task_faults(t, mock, latency_ms, err, sizeof err)) fail(err);
                agent_result r;
                agent_run(&a, t->id, t->task, &r);
                agent_score s = agent_grade(t, &r);
                add(&all, &s, &r);
                int k = 0;
                while (k < n_kinds && strcmp(kinds[k], t->kind)) k++;
                if (k == n_kinds && n_kinds < 8) kinds[n_kinds++] = t->kind;
                if (k < 8) add(&by_kind[k], &s, &r);
                fprintf(stderr, "agent: %-11s %-8s %-10s %s %s %s  %-9s %d steps %5.1f s  %s\n", mname, t->id, t->kind,
                        s.success ? "ok  " : "FAIL", s.tool_ok ? "tool" : "----", s.args_ok ? "args" : "----",
                        r.stopped, r.steps, r.seconds, r.tools_used);
                agent_result_json(&w, t, mname, &s, &r);
            }
            gl_jw_end(&w);
            write_tally(&w, "summary", &all);
            gl_jw_object(&w, "by_kind");
            for (int k = 0; k < n_kinds; k++) write_tally(&w, kinds[k], &by_kind[k]);
            gl_jw_end(&w);
            gl_jw_end(&w);
            double n = all.n ? all.n : 1;
            printf("%-11s tasks %d: success %.0f%%, tool selection %.0f%%, arguments exact %.0f%%, valid calls %.0f%%, "
                   "%.1f steps and %.1f s a task\n", mname, all.n, 100 * all.success / n, 100 * all.tool_ok / n,
                   100 * all.args_ok / n, all.steps ? 100.0 * (1.0 - (double)all.invalid / all.steps) : 0.0,
                   all.steps / n, all.seconds / n);
            agent_free(&a);
        }
        gl_jw_end(&w);
        if (!gl_jw_close(&w)) fail("writing results.json failed");
        if (!gl_atomic_commit(&trace_file)) fail("writing traces.jsonl failed");
        printf("agent: %s/results.json, %s/traces.jsonl\n", out, out);
    }
    agent_tasks_free(tasks, n_tasks);
    agent_tools_free(&tools);
    llama_free(&m);
    mock_stop(mock);
    gl_arena_release();
    return 0;
}
