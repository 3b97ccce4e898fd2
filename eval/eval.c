/* eval: the project's AI unit tests (docs/evaluation.md). Runs every gold set we have and checks the figures against
 * a checked-in thresholds file:
 *   retrieval   the FastAPI gold questions: Recall@1/5/10, MRR@10, nDCG@10 per method (bm25; dense and hybrid when
 *               the index has embeddings and the MiniLM encoder is there)
 *   answers     the extractive answer to each gold question: answered, its citations valid and supported
 *               (guard_citations), and a cited page among the question's relevant ones
 *   injection   the rules and the cross-validated classifier on bastioncorpus, planted FastAPI chunks and the gold
 *               questions: block rates, false positives on look-alikes and on the questions
 *   spam        logistic regression on the SpamAssassin split: precision, recall, F1, average precision
 *   tools       the agent (SmolLM2, constrained tool calls) on lab 10's test tasks: success, tool, arguments
 * Writes OUT/report.json, OUT/report.md and OUT/report.png; exits 1 when a metric regressed beyond its tolerance
 * (or one the thresholds name was not measured), 2 on bad usage or input.
 *   eval --thresholds FILE [--docs-db DB] [--gold FILE] [--model DIR] [--gguf FILE] [--tasks FILE] [--tool-tasks N]
 *        [--skip SUITE,...] [--out DIR] */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "agent.h"
#include "answer.h"
#include "cli.h"
#include "datasets.h"
#include "eval.h"
#include "guard.h"
#include "io.h"
#include "json.h"
#include "mock.h"
#include "plot.h"
#include "scorecard.h"
#include "search.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static _Noreturn void die(const char *what) {
    fprintf(stderr, "eval: %s\n", what);
    exit(2);
}

static void usage(FILE *f) {
    fprintf(f, "usage: eval --thresholds FILE [--docs-db DB] [--gold FILE] [--model DIR] [--gguf FILE] [--tasks FILE]\n"
               "            [--tool-tasks N] [--skip retrieval,answers,injection,spam,tools] [--out out/eval]\n"
               "  --docs-db   a `rag index` of the FastAPI docs (retrieval, answers, the planted chunks of injection)\n"
               "  --gold      the gold questions of those docs (retrieval, answers, injection's questions)\n"
               "  --model     the MiniLM encoder for dense and hybrid retrieval (default data/minilm)\n"
               "  --gguf      SmolLM2 for the tool tasks (default: smollm2/SmolLM2-135M-Instruct.Q4_1.gguf in the data)\n"
               "  --tasks     the tool task set (default labs/10_tools/tasks.jsonl); --tool-tasks N: its first N test\n"
               "              tasks (default all 40)\n"
               "  --measured FILE  check figures measured elsewhere ({\"metrics\": {name: number}}, e.g. make\n"
               "              eval-assistant's out/eval/assistant.json) against the thresholds instead of running the suites\n"
               "A suite whose data is missing is skipped with the reason, and its thresholds are not checked.\n");
}

static scorecard card;
static double suite_seconds[5];
static const char *SUITES[5] = {"retrieval", "answers", "injection", "spam", "tools"};

static void metric(const char *suite, const char *part, const char *name, double v) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s.%s", suite, part, name);
    sc_set(&card, key, v);
}

static bool skipped(const char *skip_list, const char *suite) {
    if (!skip_list) return false;
    size_t n = strlen(suite);
    for (const char *p = skip_list; (p = strstr(p, suite)); p += n)
        if ((p == skip_list || p[-1] == ',') && (p[n] == 0 || p[n] == ',')) return true;
    return false;
}

/* ---- retrieval and answers ---- */

/* the pages an answer cites ([n] in its text) include one of the question's relevant pages */
static bool cites_relevant(const answer *a, const eval_question *q) {
    for (const char *p = a->text; (p = strchr(p, '[')); p++) {
        char *end;
        long k = strtol(p + 1, &end, 10);
        if (end == p + 1 || *end != ']' || k < 1 || k > a->n_sources) continue;
        for (int r = 0; r < q->n_relevant; r++)
            if (a->sources[k - 1].page == q->relevant[r]) return true;
    }
    return false;
}

static void retrieval_and_answers(const char *db, const char *gold_path, const char *model_dir, bool run_retrieval,
                                  bool run_answers) {
    char err[512];
    search_index ix;
    if (!search_open(&ix, db, "bm25", model_dir, err, sizeof err)) die(err);
    eval_gold gold;
    if (!eval_gold_load(gold_path, &ix.st, &gold, err, sizeof err)) die(err);
    char why[600] = "";
    bool enc = ix.st.vectors && search_use_encoder(&ix, model_dir, why, sizeof why);
    if (!ix.st.vectors) snprintf(why, sizeof why, "the index has no embeddings");
    const char *methods[3] = {"bm25", "dense", "hybrid"};
    int n_methods = enc ? 3 : 1;
    if (run_retrieval) {
        double t0 = now();
        printf("retrieval: %d questions over %d pages (%d chunks)%s%s\n", gold.n, ix.st.n_pages, ix.st.n_chunks,
               enc ? "" : "; dense and hybrid not run: ", enc ? "" : why);
        for (int m = 0; m < n_methods; m++) {
            eval_result r;
            eval_method(&ix, methods[m], &gold, &r);
            printf("  %-7s Recall@1 %.3f  Recall@5 %.3f  Recall@10 %.3f  MRR@10 %.3f  nDCG@10 %.3f\n", methods[m],
                   r.recall[0], r.recall[1], r.recall[2], r.mrr, r.ndcg);
            metric("retrieval", methods[m], "recall_at_1", r.recall[0]);
            metric("retrieval", methods[m], "recall_at_5", r.recall[1]);
            metric("retrieval", methods[m], "recall_at_10", r.recall[2]);
            metric("retrieval", methods[m], "mrr_at_10", r.mrr);
            metric("retrieval", methods[m], "ndcg_at_10", r.ndcg);
            eval_result_free(&r);
        }
        suite_seconds[0] = now() - t0;
    }
    if (run_answers) {
        double t0 = now();
        const char *method = methods[n_methods - 1];
        int answered = 0, valid = 0, relevant = 0;
        for (int q = 0; q < gold.n; q++) {
            answer a;
            answer_extract(&ix, method, gold.items[q].question, ANSWER_DEFAULTS, &a);
            if (a.found) {
                guard_verdict v;
                answered++;
                if (guard_citations(&ix, &a, a.text, &v)) valid++;
                else printf("  %s: the answer's citations fail: %s\n", gold.items[q].id, v.reason);
                if (cites_relevant(&a, &gold.items[q])) relevant++;
            }
            answer_free(&a);
        }
        double n = gold.n ? gold.n : 1, na = answered ? answered : 1;
        printf("answers (%s, extractive): %d of %d answered; citations valid and supported %d of %d; a cited page "
               "relevant %d of %d\n", method, answered, gold.n, valid, answered, relevant, answered);
        metric("answers", method, "answered_rate", answered / n);
        metric("answers", method, "citations_valid_rate", valid / na);
        metric("answers", method, "cited_relevant_rate", relevant / na);
        suite_seconds[1] = now() - t0;
    }
    eval_gold_free(&gold);
    search_close(&ix);
}

/* ---- injection ---- */

enum { N_EXTRA = 200, N_DOC_ROWS = 96 };

static void injection(const char *bastion, const char *db, const char *gold) {
    double t0 = now();
    char err[512];
    inj_set set = {0};
    if (!inj_load_bastion(bastion, &set, err, sizeof err)) die(err);
    search_index ix;
    const char **extra = NULL;
    int n_extra = 0;
    bool have_ix = false;
    if (db) {
        if (!search_open(&ix, db, "bm25", NULL, err, sizeof err)) die(err);
        have_ix = true;
        inj_add_documents(&set, &ix.st, N_DOC_ROWS);
        extra = malloc(N_EXTRA * sizeof *extra);
        n_extra = inj_benign_chunks(&ix.st, N_EXTRA, extra);
    }
    if (gold && !inj_add_questions(&set, gold, err, sizeof err)) die(err);
    guard_rules *rules = guard_rules_new(err, sizeof err);
    if (!rules) die(err);
    bool *blocked[2] = {calloc((size_t)set.n, sizeof(bool)), calloc((size_t)set.n, sizeof(bool))};
    for (int i = 0; i < set.n; i++) {
        guard_verdict v;
        blocked[0][i] = !guard_rules_injection(rules, set.rows[i].text, strlen(set.rows[i].text), &v);
    }
    double *prob = malloc((size_t)set.n * sizeof *prob);
    inj_cross_validate(&set, extra, n_extra, 5, prob);
    for (int i = 0; i < set.n; i++) blocked[1][i] = prob[i] >= 0.5;
    static const char *detectors[2] = {"rules", "classifier"};
    printf("injection: %d rows (bastioncorpus, planted FastAPI chunks, gold questions)\n", set.n);
    for (int d = 0; d < 2; d++) {
        inj_tally per[INJ_N_CHANNELS], all;
        inj_tally_blocks(&set, blocked[d], NULL, per, &all);
        const inj_tally *doc = &per[3], *q = &per[INJ_N_CHANNELS - 1];
        printf("  %-10s blocked %d/%d malicious; false positives %d/%d look-alikes, %d/%d questions; planted chunks "
               "%d/%d\n", detectors[d], all.mal_blocked, all.mal, all.ben_blocked, all.ben, q->ben_blocked, q->ben,
               doc->mal_blocked, doc->mal);
        metric("injection", detectors[d], "block_rate", all.mal ? (double)all.mal_blocked / all.mal : 0);
        metric("injection", detectors[d], "fp_rate", all.ben ? (double)all.ben_blocked / all.ben : 0);
        if (q->ben) metric("injection", detectors[d], "questions_fp_rate", (double)q->ben_blocked / q->ben);
        if (doc->mal) metric("injection", detectors[d], "planted_block_rate", (double)doc->mal_blocked / doc->mal);
        for (int c = 0; c < 3; c++)
            if (per[c].mal) {
                char name[64];
                snprintf(name, sizeof name, "%s_block_rate", INJ_CHANNELS[c]);
                metric("injection", detectors[d], name, (double)per[c].mal_blocked / per[c].mal);
            }
    }
    free(blocked[0]), free(blocked[1]), free(prob), free(extra);
    guard_rules_free(rules);
    inj_free(&set);
    if (have_ix) search_close(&ix);
    suite_seconds[2] = now() - t0;
}

/* ---- spam ---- */

static void spam(const char *tsv) {
    double t0 = now();
    char err[512];
    spam_set s;
    if (!spam_load(tsv, &s, err, sizeof err)) die(err);
    spam_run runs[2];
    spam_split_info info;
    spam_experiment(&s, false, 0, runs, &info);
    const spam_run *r = &runs[0];
    printf("spam: hashing table 2^%d (chosen on the validation mails: F1 %.4f %.4f %.4f %.4f at 2^12 .. 2^18)\n",
           info.bits, info.val_f1[0], info.val_f1[1], info.val_f1[2], info.val_f1[3]);
    metric("spam", "logreg", "validation_f1", info.val_f1[(info.bits - SPAM_BITS[0]) / 2]);
    printf("spam: logistic regression, %d training mails, %d test: precision %.4f recall %.4f F1 %.4f AP %.4f "
           "(threshold %.3f)\n", info.n_train, info.n_test, r->test.precision, r->test.recall, r->test.f1, r->ap,
           r->threshold);
    metric("spam", "logreg", "precision", r->test.precision);
    metric("spam", "logreg", "recall", r->test.recall);
    metric("spam", "logreg", "f1", r->test.f1);
    metric("spam", "logreg", "average_precision", r->ap);
    spam_run_free(&runs[0]);
    spam_free(&s);
    suite_seconds[3] = now() - t0;
}

/* ---- tools ---- */

static void tools(const char *gguf, const char *tasks_path, const char *docs_db, int limit) {
    double t0 = now();
    char err[512];
    agent_task *tasks;
    int n_tasks;
    if (!agent_tasks_load(tasks_path, &tasks, &n_tasks, err, sizeof err)) die(err);
    mock_services *mock = mock_start(1500, err, sizeof err);
    if (!mock) die(err);
    llama m;
    if (!llama_load(&m, gguf, err, sizeof err)) die(err);
    agent_tools tools;
    agent_tools_init(&tools, docs_db, mock_weather_port(mock), mock_finance_port(mock), 1000);
    agent a;
    if (!agent_init(&a, &m, &tools, AGENT_CONSTRAINED, err, sizeof err)) die(err);
    int n = 0, ok = 0, tool_ok = 0, args_ok = 0;
    for (int i = 0; i < n_tasks && (limit <= 0 || n < limit); i++) {
        const agent_task *t = &tasks[i];
        if (strcmp(t->split, "test")) continue;
        if (!agent_task_faults(t, mock, 0, err, sizeof err)) die(err);
        agent_result r;
        agent_run(&a, t->id, t->task, &r);
        agent_score s = agent_grade(t, &r);
        n++, ok += s.success, tool_ok += s.tool_ok, args_ok += s.args_ok;
        fprintf(stderr, "  tools: %-8s %-10s %s (%.1f s)\n", t->id, t->kind, s.success ? "ok" : "FAIL", r.seconds);
    }
    double d = n ? n : 1;
    printf("tools: the agent (constrained) on %d test tasks: success %d, first tool right %d, its arguments exact %d\n",
           n, ok, tool_ok, args_ok);
    metric("tools", "constrained", "success_rate", ok / d);
    metric("tools", "constrained", "tool_rate", tool_ok / d);
    metric("tools", "constrained", "args_rate", args_ok / d);
    agent_free(&a);
    agent_tools_free(&tools);
    llama_free(&m);
    mock_stop(mock);
    agent_tasks_free(tasks, n_tasks);
    suite_seconds[4] = now() - t0;
}

/* ---- the report ---- */

static const char *STATUS[4] = {"pass", "REGRESSED", "NOT MEASURED", "skipped"};

static void bound_text(const sc_check *c, char *out, size_t n) {
    if (c->has_min && c->has_max) snprintf(out, n, "%.4g..%.4g", c->min, c->max);
    else if (c->has_min) snprintf(out, n, ">= %.4g", c->min);
    else snprintf(out, n, "<= %.4g", c->max);
    if (c->tolerance > 0) snprintf(out + strlen(out), n - strlen(out), " (± %.3g)", c->tolerance);
}

static bool write_reports(const char *out, const char *thresholds, const char *inputs, const sc_check *checks,
                          int n_checks, int failures, double seconds) {
    char path[4096], err[512];
    bool ok = true;
    gl_json_writer w;
    snprintf(path, sizeof path, "%s/report.json", out);
    if (!gl_jw_open(&w, path)) return false;
    gl_jw_object(&w, NULL);
    gl_jw_string(&w, "thresholds", thresholds);
    gl_jw_string(&w, "inputs", inputs);
    gl_jw_int(&w, "threads", omp_get_max_threads());
    gl_jw_number(&w, "seconds", seconds);
    gl_jw_bool(&w, "passed", failures == 0);
    gl_jw_int(&w, "failures", failures);
    gl_jw_object(&w, "suites");
    for (int s = 0; s < 5; s++) {
        gl_jw_object(&w, SUITES[s]);
        const char *why = sc_skip_reason(&card, SUITES[s]);
        gl_jw_bool(&w, "run", !why);
        if (why) gl_jw_string(&w, "skipped", why);
        else gl_jw_number(&w, "seconds", suite_seconds[s]);
        gl_jw_end(&w);
    }
    gl_jw_end(&w);
    gl_jw_object(&w, "metrics");
    for (int i = 0; i < card.n; i++) gl_jw_number(&w, card.name[i], card.value[i]);
    gl_jw_end(&w);
    gl_jw_array(&w, "checks");
    for (int i = 0; i < n_checks; i++) {
        const sc_check *c = &checks[i];
        gl_jw_object(&w, NULL);
        gl_jw_string(&w, "metric", c->name);
        gl_jw_number(&w, "value", c->value);
        if (c->has_min) gl_jw_number(&w, "min", c->min);
        if (c->has_max) gl_jw_number(&w, "max", c->max);
        gl_jw_number(&w, "tolerance", c->tolerance);
        gl_jw_string(&w, "status", STATUS[c->status]);
        gl_jw_end(&w);
    }
    gl_jw_end(&w);
    gl_jw_end(&w);
    ok &= gl_jw_close(&w);

    snprintf(path, sizeof path, "%s/report.md", out);
    gl_atomic a;
    FILE *f = gl_atomic_open(&a, path);
    if (!f) return false;
    fprintf(f, "# gradlab evaluation: %s\n\n", failures ? "REGRESSED" : "passed");
    fprintf(f, "Thresholds: `%s`. Inputs: %s. %d threads, %.0f s.\n\n", thresholds, inputs, omp_get_max_threads(),
            seconds);
    fprintf(f, "| suite | run | seconds |\n|---|---|---|\n");
    for (int s = 0; s < 5; s++) {
        const char *why = sc_skip_reason(&card, SUITES[s]);
        if (why) fprintf(f, "| %s | skipped: %s | |\n", SUITES[s], why);
        else fprintf(f, "| %s | yes | %.1f |\n", SUITES[s], suite_seconds[s]);
    }
    fprintf(f, "\n| metric | value | threshold | status |\n|---|---|---|---|\n");
    for (int i = 0; i < n_checks; i++) {
        char b[64];
        bound_text(&checks[i], b, sizeof b);
        if (isnan(checks[i].value)) fprintf(f, "| %s | - | %s | %s |\n", checks[i].name, b, STATUS[checks[i].status]);
        else fprintf(f, "| %s | %.4f | %s | %s |\n", checks[i].name, checks[i].value, b, STATUS[checks[i].status]);
    }
    fprintf(f, "\nMeasured without a threshold:\n\n");
    for (int i = 0; i < card.n; i++) {
        bool checked = false;
        for (int j = 0; j < n_checks && !checked; j++) checked = !strcmp(checks[j].name, card.name[i]);
        if (!checked) fprintf(f, "- %s: %.4f\n", card.name[i], card.value[i]);
    }
    ok &= gl_atomic_commit(&a);

    /* the checked metrics against their bounds (every metric here is a rate in 0..1) */
    float *value = calloc((size_t)n_checks + 1, sizeof(float)), *bound = calloc((size_t)n_checks + 1, sizeof(float));
    const char **names = calloc((size_t)n_checks + 1, sizeof *names);
    int n_bars = 0;
    for (int i = 0; i < n_checks; i++) {
        if (isnan(checks[i].value)) continue;
        names[n_bars] = checks[i].name + strcspn(checks[i].name, ".") + 1; /* the suite is in the title */
        value[n_bars] = (float)checks[i].value;
        bound[n_bars] = (float)(checks[i].has_min ? checks[i].min : checks[i].max);
        n_bars++;
    }
    if (n_bars) {
        gl_series series[2] = {{"measured", NULL, value, n_bars, false, NULL},
                               {"threshold (min, or max for error rates)", NULL, bound, n_bars, false, NULL}};
        gl_chart chart = {failures ? "make eval: REGRESSED (measured against the thresholds)"
                                   : "make eval: every checked metric within its threshold",
                          NULL, "rate", false, false, false, n_bars < 7 ? 1000 : 160 + 120 * n_bars, 600};
        snprintf(path, sizeof path, "%s/report.png", out);
        if (!gl_plot_bars(path, &chart, names, n_bars, series, 2, err, sizeof err)) {
            fprintf(stderr, "eval: %s\n", err);
            ok = false;
        }
    }
    free(value), free(bound), free(names);
    return ok;
}

/* figures measured by another harness: {"metrics": {name: number, ...}, ...} */
static void load_measured(const char *path) {
    size_t len;
    unsigned char *text;
    char err[512];
    if (!gl_read_whole_file(path, &text, &len, err, sizeof err)) die(err);
    gl_json *doc = gl_json_parse((const char *)text, len, err, sizeof err);
    const gl_json *m = doc ? gl_json_get(doc, "metrics") : NULL;
    if (!m || m->type != GL_JSON_OBJECT) {
        fprintf(stderr, "eval: %s: %s\n", path, doc ? "no \"metrics\" object" : err);
        exit(2);
    }
    for (size_t i = 0; i < m->count; i++)
        if (m->items[i].type == GL_JSON_NUMBER) sc_set(&card, m->keys[i], m->items[i].number);
    gl_json_free(doc);
    free(text);
}

int main(int argc, char **argv) {
    const char *out = "out/eval", *db = NULL, *gold = NULL, *model_dir = NULL, *gguf = NULL,
               *tasks = "labs/10_tools/tasks.jsonl", *thresholds = NULL, *skip = NULL, *measured = NULL;
    int tool_tasks = 0;
    setvbuf(stdout, NULL, _IOLBF, 0); /* each suite's line as it finishes, also through a pipe */
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) usage(stdout), exit(0);
        if (i + 1 >= argc) {
            fprintf(stderr, "eval: unknown flag or missing value: '%s'\n", f);
            usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(f, "--out")) out = v;
        else if (!strcmp(f, "--docs-db")) db = v;
        else if (!strcmp(f, "--gold")) gold = v;
        else if (!strcmp(f, "--model")) model_dir = v;
        else if (!strcmp(f, "--gguf")) gguf = v;
        else if (!strcmp(f, "--tasks")) tasks = v;
        else if (!strcmp(f, "--thresholds")) thresholds = v;
        else if (!strcmp(f, "--skip")) skip = v;
        else if (!strcmp(f, "--measured")) measured = v;
        else if (!strcmp(f, "--tool-tasks")) tool_tasks = gl_flag_int("eval", f, v, 0, 100000);
        else {
            fprintf(stderr, "eval: unknown flag '%s'\n", f);
            usage(stderr);
            return 2;
        }
    }
    if (!thresholds) usage(stderr), die("--thresholds FILE is required (eval/thresholds.json)");
    if (skip)
        for (const char *p = skip; *p; p += strcspn(p, ",") + (p[strcspn(p, ",")] == ',')) {
            size_t n = strcspn(p, ",");
            bool known = false;
            for (int s = 0; s < 5; s++) known |= strlen(SUITES[s]) == n && !strncmp(p, SUITES[s], n);
            if (!known) die("--skip takes suites among retrieval, answers, injection, spam, tools");
        }
    /* the thresholds file is read first, so a malformed one stops the run before the work */
    char err[512];
    sc_check *checks;
    int n_checks;
    if (!sc_check_file(&card, thresholds, &checks, &n_checks, err, sizeof err)) die(err);
    sc_checks_free(checks, n_checks);
    mkdir(out, 0755);
    double t0 = now();
    printf("== gradlab eval (%d threads; thresholds %s)\n", omp_get_max_threads(), thresholds);

    bool want[5];
    for (int s = 0; s < 5; s++) {
        want[s] = !skipped(skip, SUITES[s]) && !measured;
        if (!want[s]) sc_skip(&card, SUITES[s], measured ? "--measured" : "--skip");
    }
    char inputs[8192] = "";
    if (measured) load_measured(measured), snprintf(inputs, sizeof inputs, "measured %s", measured);
    const char *need_docs = !db ? "no --docs-db" : !gold ? "no --gold" : NULL;
    for (int s = 0; s < 2; s++)
        if (want[s] && need_docs) sc_skip(&card, SUITES[s], need_docs), want[s] = false;
    if (want[0] || want[1]) {
        retrieval_and_answers(db, gold, model_dir, want[0], want[1]);
        snprintf(inputs + strlen(inputs), sizeof inputs - strlen(inputs), "docs %s, gold %s; ", db, gold);
    }
    char path[4096];
    if (want[2]) {
        if (!gl_find_data("bastioncorpus/injections.jsonl", path, sizeof path))
            sc_skip(&card, "injection", "no bastioncorpus/injections.jsonl (make data DATA_SETS=bastion)");
        else injection(path, db, gold);
    }
    if (want[3]) {
        if (!gl_find_data("spam/spam.tsv", path, sizeof path))
            sc_skip(&card, "spam", "no spam/spam.tsv in the course's data folder (or GRADLAB_DATA)");
        else spam(path), snprintf(inputs + strlen(inputs), sizeof inputs - strlen(inputs), "spam %s; ", path);
    }
    if (want[4]) {
        char model[4096];
        if (!gguf && !gl_find_data("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", model, sizeof model))
            sc_skip(&card, "tools", "no SmolLM2 (make data DATA_SETS=smollm2)");
        else {
            tools(gguf ? gguf : model, tasks, db, tool_tasks);
            snprintf(inputs + strlen(inputs), sizeof inputs - strlen(inputs), "tasks %s (%s)", tasks,
                     tool_tasks ? "the first test tasks, --tool-tasks" : "every test task");
        }
    }
    for (int s = 0; s < 5; s++) {
        const char *why = sc_skip_reason(&card, SUITES[s]);
        if (why) printf("%s: skipped (%s)\n", SUITES[s], why);
    }

    if (!sc_check_file(&card, thresholds, &checks, &n_checks, err, sizeof err)) die(err);
    int failures = sc_failures(checks, n_checks);
    printf("\n%-48s %9s %18s  %s\n", "metric", "value", "threshold", "status");
    for (int i = 0; i < n_checks; i++) {
        char b[64], v[32] = "-";
        bound_text(&checks[i], b, sizeof b);
        if (!isnan(checks[i].value)) snprintf(v, sizeof v, "%.4f", checks[i].value);
        printf("%-48s %9s %18s  %s\n", checks[i].name, v, b, STATUS[checks[i].status]);
    }
    double seconds = now() - t0;
    bool wrote = write_reports(out, thresholds, inputs, checks, n_checks, failures, seconds);
    if (!wrote) fprintf(stderr, "eval: could not write the reports in %s\n", out);
    else printf("\nwrote %s/report.json, %s/report.md, %s/report.png (%.0f s)\n", out, out, out, seconds);
    if (failures) printf("eval: %d of %d checks failed\n", failures, n_checks);
    else printf("eval: all %d checks passed\n", n_checks);
    sc_checks_free(checks, n_checks);
    sc_free(&card);
    gl_stdout_check("eval");
    return failures ? 1 : wrote ? 0 : 2;
}
