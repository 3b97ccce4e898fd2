/* The agent's tools (exact arithmetic, units, the mock services and their faults as observations), its task set
 * and its grading; and one agent run on SmolLM2 whose steps are checked in the trace (skipped without the model). */
#include "testutil.h"

#include "agent.h"
#include "mock.h"
#include "tools.h"

Test(agent, calculator_is_exact_and_names_errors) {
    struct {
        const char *expr;
        double value;
    } ok[] = {{"37*41+12", 1529}, {"2^10", 1024}, {"2**3**2", 512}, {"-(3+4)*2", -14}, {"sqrt(1764)", 42},
              {"1250-487.30", 762.7}, {"7 % 3", 1}, {"round(2.5) + abs(-1)", 4}, {"3.75 x 28", 105}};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        double v;
        char err[128];
        cr_assert(calc_eval(ok[i].expr, &v, err, sizeof err), "%s: %s", ok[i].expr, err);
        cr_assert_float_eq(v, ok[i].value, 1e-9, "%s = %g", ok[i].expr, v);
    }
    const char *bad[][2] = {{"1/0", "division by zero"}, {"2+", "ends early"}, {"(1+2", "expected ')'"},
                            {"3 apples", "unexpected character at character 3"}, {"sqrt(-4)", "negative"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        double v;
        char err[128] = "";
        cr_assert(!calc_eval(bad[i][0], &v, err, sizeof err), "%s evaluated", bad[i][0]);
        cr_assert(strstr(err, bad[i][1]), "%s: '%s' does not say '%s'", bad[i][0], err, bad[i][1]);
    }
}

Test(agent, units_convert_and_refuse) {
    double v;
    char err[256];
    cr_assert(units_convert(5, "km", "mi", &v, err, sizeof err));
    cr_assert_float_eq(v, 3.10686, 1e-5);
    cr_assert(units_convert(100, "Fahrenheit", "celsius", &v, err, sizeof err));
    cr_assert_float_eq(v, 37.77778, 1e-5);
    cr_assert(units_convert(0, "C", "K", &v, err, sizeof err));
    cr_assert_float_eq(v, 273.15, 1e-9);
    cr_assert(units_convert(2.5, "gallons", "l", &v, err, sizeof err));
    cr_assert_float_eq(v, 9.463529, 1e-6);
    cr_assert(!units_convert(1, "kg", "m", &v, err, sizeof err) && strstr(err, "different things"));
    cr_assert(!units_convert(1, "furlong", "m", &v, err, sizeof err) && strstr(err, "unknown unit 'furlong'"));
    cr_assert(units_same("km", " Kilometers ") && !units_same("km", "mi"));
}

/* every fault of the mock services becomes an error observation, and the services answer again afterwards */
Test(agent, service_faults_are_observations, .timeout = 30) {
    char err[256];
    mock_services *m = mock_start(400, err, sizeof err);
    cr_assert(m, "%s", err);
    agent_tools t;
    agent_tools_init(&t, NULL, mock_weather_port(m), mock_finance_port(m), 200);
    char args_text[] = "{\"city\": \"Paris\"}", sym_text[] = "{\"symbol\": \"aapl\"}";
    gl_json *city = gl_json_parse(args_text, strlen(args_text), err, sizeof err);
    gl_json *sym = gl_json_parse(sym_text, strlen(sym_text), err, sizeof err);
    struct {
        mock_fault fault;
        const char *expect;
    } cases[] = {{MOCK_OK, "\"temperature_c\": 14"}, {MOCK_ERROR_500, "answered HTTP 500: internal server error"},
                 {MOCK_TIMEOUT, "no answer within 200 ms"}, {MOCK_GARBAGE, "not JSON"}, {MOCK_OK, "\"condition\": \"cloudy\""}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        mock_set_fault(m, "weather", cases[i].fault, 0);
        gl_strbuf out = {0};
        bool ok = agent_tool_run(&t, "get_weather", city, &out);
        cr_assert_eq(ok, cases[i].fault == MOCK_OK, "case %zu: %s", i, out.p);
        cr_assert(strstr(out.p, cases[i].expect), "case %zu: '%s' does not say '%s'", i, out.p, cases[i].expect);
        char jerr[64];
        gl_json *obs = gl_json_parse(out.p, out.len, jerr, sizeof jerr); /* an observation is always JSON */
        cr_assert(obs, "case %zu: the observation is not JSON: %s", i, out.p);
        gl_json_free(obs);
        gl_sb_free(&out);
    }
    gl_strbuf out = {0};
    cr_assert(agent_tool_run(&t, "get_stock_price", sym, &out) && strstr(out.p, "\"price\": 187.42"), "%s", out.p);
    gl_sb_free(&out);
    cr_assert(!agent_tool_run(&t, "get_weather", sym, &out) && strstr(out.p, "needs a 'city'"), "%s", out.p);
    gl_sb_free(&out);
    cr_assert(!agent_tool_run(&t, "launch_rocket", city, &out) && strstr(out.p, "no tool named"), "%s", out.p);
    gl_sb_free(&out);
    char q_text[] = "{\"query\": \"cors\"}";
    gl_json *q = gl_json_parse(q_text, strlen(q_text), err, sizeof err);
    cr_assert(!agent_tool_run(&t, "search_docs", q, &out) && strstr(out.p, "unavailable: no documentation index"), "%s", out.p);
    gl_json_free(q);
    gl_sb_free(&out);
    gl_json_free(city);
    gl_json_free(sym);
    agent_tools_free(&t);
    mock_stop(m);
}

Test(agent, task_set_loads_and_grades) {
    agent_task *tasks;
    int n;
    char err[256];
    cr_assert(agent_tasks_load("labs/10_tools/tasks.jsonl", &tasks, &n, err, sizeof err), "%s", err);
    cr_assert_eq(n, 60);
    int dev = 0;
    for (int i = 0; i < n; i++) dev += !strcmp(tasks[i].split, "dev");
    cr_assert_eq(dev, 20);
    const agent_task *t = &tasks[0]; /* 37 times 41 plus 12 */
    agent_result r = {.stopped = "answer"};
    snprintf(r.first_tool, sizeof r.first_tool, "calculator");
    snprintf(r.first_args, sizeof r.first_args, "{\"expression\": \"12 + 41*37\"}"); /* the same value */
    snprintf(r.answer, sizeof r.answer, "The result is 1,529.");
    agent_score s = agent_grade(t, &r);
    cr_assert(s.success && s.tool_ok && s.args_ok);
    snprintf(r.answer, sizeof r.answer, "The result is 1600."); /* numbers count within 1% */
    snprintf(r.first_args, sizeof r.first_args, "{\"expression\": \"37+41\"}");
    s = agent_grade(t, &r);
    cr_assert(!s.success && s.tool_ok && !s.args_ok);
    r.stopped = "max_steps";
    snprintf(r.answer, sizeof r.answer, "1529");
    cr_assert(!agent_grade(t, &r).success, "a task that did not end with final_answer is not a success");
    agent_tasks_free(tasks, n);
    /* a malformed task names its line */
    FILE *f = fopen("build/bad_tasks.jsonl", "w");
    fputs("{\"id\": \"a\", \"split\": \"dev\", \"kind\": \"x\", \"task\": \"t\", \"tool\": \"calculator\", \"args\": {}, "
          "\"answer\": 1}\n{\"id\": \"b\", \"split\": \"dev\"}\n", f);
    fclose(f);
    cr_assert(!agent_tasks_load("build/bad_tasks.jsonl", &tasks, &n, err, sizeof err));
    cr_assert(strstr(err, "line 2: the task needs kind"), "%s", err);
}

/* one task on SmolLM2, constrained: the first reply is a calculator call that parses, and the trace has its steps */
Test(agent, smollm2_calls_the_calculator, .timeout = 300) {
    char path[4096];
    if (!gl_find_data("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", path, sizeof path)) {
        cr_skip_test("no SmolLM2 (make data DATA_SETS=smollm2)");
    }
    char err[512];
    llama m;
    cr_assert(llama_load(&m, path, err, sizeof err), "%s", err);
    agent_tools t;
    agent_tools_init(&t, NULL, 0, 0, 100);
    agent a;
    cr_assert(agent_init(&a, &m, &t, AGENT_CONSTRAINED, err, sizeof err), "%s", err);
    char *trace_text = NULL;
    size_t trace_len = 0;
    a.trace = open_memstream(&trace_text, &trace_len);
    a.max_steps = 1;
    agent_result r;
    agent_run(&a, "t1", "What is 37 times 41, plus 12?", &r);
    fclose(a.trace);
    cr_assert_str_eq(r.first_tool, "calculator", "the first call: %s %s", r.first_tool, r.first_args);
    cr_assert_eq(r.invalid_calls, 0);
    char *line = strtok(trace_text, "\n");
    cr_assert(line);
    gl_json *step = gl_json_parse(line, strlen(line), err, sizeof err);
    cr_assert(step, "the trace line is not JSON: %s", line);
    const gl_json *obs = gl_json_get(step, "observation"), *res = obs ? gl_json_get(obs, "result") : NULL;
    cr_assert(res && res->type == GL_JSON_NUMBER, "%s", line);
    gl_json_free(step);
    free(trace_text);
    agent_free(&a);
    agent_tools_free(&t);
    llama_free(&m);
}
