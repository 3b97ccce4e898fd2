/* Lab 11 - guardrails: what a served model must refuse and what it must not emit, measured.
 *   1. a spam filter on the SpamAssassin mails: logistic regression and an MLP on hashed word and character n-grams,
 *      the decision threshold chosen on held-out training mails, precision / recall / F1 and PR curves on the test
 *      split, against scikit-learn's TF-IDF + LogisticRegression on the same split (when --peer-python is given)
 *   2. prompt injection: rules, a cross-validated classifier and the instruction model as a judge, on bastioncorpus,
 *      on FastAPI chunks with planted instructions, and on the 40 ordinary FastAPI questions; per channel
 *   3. output validators, each on a case that passes and one that does not
 * `make lab11`, or ./build/lab11 --docs-db DB --gold gold.jsonl [--out out/lab11] [--judge-limit N] [--peer-python PY]
 * Writes spam_pr.png, injection.png, injection.clf (the classifier serve --guard loads) and results.json. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "datasets.h"
#include "guard.h"
#include "io.h"
#include "json.h"
#include "plot.h"
#include "rerank.h"
#include "schema.h"
#include "textclf.h"

static int status;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static _Noreturn void die(const char *what) {
    fprintf(stderr, "lab11: %s\n", what);
    exit(1);
}

/* ---- 1. spam ---- */

typedef struct {
    const char *name;
    double threshold, ap, train_s;
    tc_metrics test;
} spam_result;

static bool run_peer(const char *python, const char *tsv, const char *out, spam_result *r) {
    char cmd[16384], path[4096], err[256];
    snprintf(path, sizeof path, "%s/spam_sklearn.json", out);
    snprintf(cmd, sizeof cmd, "%s bench/peer_spam.py --tsv '%s' --json '%s'", python, tsv, path);
    if (system(cmd) != 0) return false;
    unsigned char *data;
    size_t len;
    if (!gl_read_whole_file(path, &data, &len, err, sizeof err)) return false;
    gl_json *j = gl_json_parse((char *)data, len, err, sizeof err);
    free(data);
    if (!j) return false;
    const char *keys[6] = {"f1", "precision", "recall", "threshold", "train_s", "average_precision"};
    double v[6] = {0};
    for (int k = 0; k < 6; k++) {
        const gl_json *m = gl_json_get(j, keys[k]);
        if (!m || m->type != GL_JSON_NUMBER) return gl_json_free(j), false;
        v[k] = m->number;
    }
    const gl_json *cm = gl_json_get(j, "confusion");
    if (cm && cm->type == GL_JSON_ARRAY && cm->count == 4) {
        r->test.tp = (int)cm->items[0].number, r->test.fp = (int)cm->items[1].number;
        r->test.fn = (int)cm->items[2].number, r->test.tn = (int)cm->items[3].number;
    }
    gl_json_free(j);
    r->name = "scikit-learn TF-IDF + LogisticRegression";
    r->test.f1 = v[0], r->test.precision = v[1], r->test.recall = v[2], r->threshold = v[3], r->train_s = v[4];
    r->ap = v[5];
    return true;
}

static int spam_section(const char *out, const char *peer_python, int gpt_steps, spam_result *res) {
    char tsv[4096], err[512];
    if (!gl_find_data("spam/spam.tsv", tsv, sizeof tsv)) {
        printf("1. Spam: no spam/spam.tsv in the course's data folder (or GRADLAB_DATA): skipped\n\n");
        return 0;
    }
    spam_set s;
    if (!spam_load(tsv, &s, err, sizeof err)) die(err);
    spam_run runs[3] = {0};
    spam_split_info info;
    spam_experiment(&s, true, 0, runs, &info);
    spam_gpt_config gc = SPAM_GPT_DEFAULTS;
    gc.steps = gpt_steps;
    float *gpt_loss = malloc((size_t)(gpt_steps ? gpt_steps : 1) * sizeof *gpt_loss);
    if (gpt_steps) spam_gpt_experiment(&s, gc, &runs[2], gpt_loss);
    printf("1. Spam filter on %d SpamAssassin mails: %d to train, %d to choose the threshold, %d to test "
           "(the file's split)\n", s.n, info.n_train, info.n_val, info.n_test);
    printf("   features: words, word pairs and 3-5 character runs hashed into 2^%d buckets, TF-IDF, unit length;\n"
           "   %.1f non-zero per mail on average (%.2f s for all mails)\n", info.bits, info.nonzero_per_mail,
           info.featurize_s);
    printf("   the table size, chosen on the threshold mails (logistic regression's F1 there):");
    for (int c = 0; c < SPAM_N_BITS; c++) printf(" 2^%d %.4f", SPAM_BITS[c], info.val_f1[c]);
    printf(" (%.1f s)\n", info.select_s);
    static char gpt_name[64];
    snprintf(gpt_name, sizeof gpt_name, "GPT body (%dx%d, bytes, %d steps)", gc.n_layer, gc.n_embd,
             gc.steps);
    const char *names[3] = {"logistic regression", "MLP (32 hidden, ReLU)", gpt_name};
    int n_models = gpt_steps ? 3 : 2, n_ours = n_models;
    for (int m = 0; m < n_models; m++)
        res[m] = (spam_result){names[m], runs[m].threshold, runs[m].ap, runs[m].train_s, runs[m].test};
    if (peer_python && run_peer(peer_python, tsv, out, &res[n_models])) n_models++;
    else if (peer_python) printf("   (the scikit-learn peer did not run: see its message above)\n");
    printf("\n   %-42s %9s %6s %6s %6s %6s %5s %5s %7s\n", "model", "threshold", "prec", "recall", "F1", "AP", "FP",
           "FN", "train s");
    for (int m = 0; m < n_models; m++)
        printf("   %-42s %9.3f %6.4f %6.4f %6.4f %6.4f %5d %5d %7.2f\n", res[m].name, res[m].threshold,
               res[m].test.precision, res[m].test.recall, res[m].test.f1, res[m].ap, res[m].test.fp, res[m].test.fn,
               res[m].train_s);
    if (n_models > n_ours) {
        double best = 0;
        for (int m = 0; m < n_ours; m++) best = fmax(best, res[m].test.f1);
        printf("   our best F1 %.4f against scikit-learn's %.4f: %s\n", best, res[n_ours].test.f1,
               best >= res[n_ours].test.f1 ? "at least as good" : "below the peer");
    }
    if (gpt_steps)
        printf("   the GPT body's training loss (binary cross-entropy): %.3f at the first step, %.3f at the last\n",
               gpt_loss[0], gpt_loss[gpt_steps - 1]);
    char path[4096];
    snprintf(path, sizeof path, "%s/spam_pr.png", out);
    gl_series series[3] = {{res[0].name, runs[0].recall, runs[0].precision, runs[0].n_pr, false, NULL},
                           {res[1].name, runs[1].recall, runs[1].precision, runs[1].n_pr, false, NULL},
                           {res[2].name, runs[2].recall, runs[2].precision, runs[2].n_pr, false, NULL}};
    gl_chart chart = {"Spam filter: precision vs recall (test mails)", "recall", "precision", false,
                      false, false, 0, 0};
    if (!gl_plot_lines(path, &chart, series, n_ours, err, sizeof err)) fprintf(stderr, "lab11: %s\n", err), status = 1;
    else printf("   PR curves: %s\n\n", path);
    for (int m = 0; m < 3; m++) spam_run_free(&runs[m]);
    free(gpt_loss);
    spam_free(&s);
    return n_models;
}

/* ---- 2. injection ---- */

enum { N_CHANNELS = INJ_N_CHANNELS, N_DETECTORS = 3, N_EXTRA = 200 };
static const char *DETECTORS[N_DETECTORS] = {"rules", "classifier", "judge"};

int main(int argc, char **argv) {
    const char *out = "out/lab11", *docs_db = NULL, *gold = NULL, *peer = NULL;
    int judge_limit = -1, n_docs = 96, gpt_steps = SPAM_GPT_DEFAULTS.steps;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) die("every flag takes a value (--out, --docs-db, --gold, --judge-limit, --peer-python, --docs, --gpt-steps)");
        if (!strcmp(argv[i], "--out")) out = argv[++i];
        else if (!strcmp(argv[i], "--docs-db")) docs_db = argv[++i];
        else if (!strcmp(argv[i], "--gold")) gold = argv[++i];
        else if (!strcmp(argv[i], "--peer-python")) peer = argv[++i];
        else if (!strcmp(argv[i], "--judge-limit")) judge_limit = gl_flag_int("lab11", argv[i], argv[i + 1], -1, 1e6), i++;
        else if (!strcmp(argv[i], "--gpt-steps")) gpt_steps = gl_flag_int("lab11", argv[i], argv[i + 1], 0, 1e6), i++;
        else if (!strcmp(argv[i], "--docs")) n_docs = gl_flag_int("lab11", argv[i], argv[i + 1], 0, 10000), i++;
        else {
            fprintf(stderr, "lab11: unknown flag %s\n", argv[i]);
            return 2;
        }
    }
    mkdir(out, 0755);
    printf("== Lab 11: guardrails (%d threads)\n\n", omp_get_max_threads());
    char err[512], path[4096];
    spam_result spam[4] = {0};
    int n_spam = spam_section(out, peer, gpt_steps, spam);

    /* the injection set */
    char bastion[4096];
    if (!gl_find_data("bastioncorpus/injections.jsonl", bastion, sizeof bastion))
        die("no bastioncorpus/injections.jsonl: make data DATA_SETS=bastion fetches it");
    inj_set set = {0};
    if (!inj_load_bastion(bastion, &set, err, sizeof err)) die(err);
    int n_bastion = set.n, n_added_docs = 0, n_extra = 0;
    store st = {0};
    search_index ix;
    bool have_ix = false;
    const char **extra = NULL;
    if (docs_db) {
        if (!search_open(&ix, docs_db, "bm25", NULL, err, sizeof err)) die(err);
        have_ix = true;
        st = ix.st;
        n_added_docs = inj_add_documents(&set, &st, n_docs);
        extra = malloc(N_EXTRA * sizeof *extra);
        n_extra = inj_benign_chunks(&st, N_EXTRA, extra);
    }
    int q0 = set.n;
    if (gold && !inj_add_questions(&set, gold, err, sizeof err)) die(err);
    printf("2. Prompt injection: %d bastioncorpus rows, %d FastAPI chunks (half with a planted instruction), %d "
           "ordinary FastAPI questions\n", n_bastion, n_added_docs, set.n - q0);
    printf("   an example plant (%d templates), in a chunk of %s:\n", GUARD_N_PLANTS,
           n_added_docs ? st.pages[st.chunks[0].page].path : "(no docs)");
    for (int i = n_bastion; i < n_bastion + n_added_docs && i < n_bastion + 1; i++) {
        const char *t = set.rows[i].text, *p = strstr(t, guard_plant_text(0));
        int from = p && p - t > 120 ? (int)(p - t) - 120 : 0;
        printf("     \"...%.*s...\"\n", (int)(p ? p - t - from + (long)strlen(guard_plant_text(0)) + 40 : 200), t + from);
    }
    guard_rules *rules = guard_rules_new(err, sizeof err);
    if (!rules) die(err);
    bool *blocked[N_DETECTORS];
    for (int d = 0; d < N_DETECTORS; d++) blocked[d] = calloc((size_t)set.n, sizeof(bool));
    char (*why)[256] = calloc((size_t)set.n, sizeof *why);
    double t0 = now();
    for (int i = 0; i < set.n; i++) {
        guard_verdict v;
        blocked[0][i] = !guard_rules_injection(rules, set.rows[i].text, strlen(set.rows[i].text), &v);
        if (blocked[0][i]) memcpy(why[i], v.reason, sizeof why[i]);
    }
    double rules_ms = (now() - t0) * 1e3 / set.n;
    double *prob = malloc((size_t)set.n * sizeof *prob);
    t0 = now();
    inj_cross_validate(&set, extra, n_extra, 5, prob);
    double cv_s = now() - t0;
    for (int i = 0; i < set.n; i++) blocked[1][i] = prob[i] >= 0.5;
    /* the judge */
    char model_path[4096];
    int judged = 0;
    double judge_s = 0;
    double *judge_score = calloc((size_t)set.n, sizeof *judge_score);
    bool *was_judged = calloc((size_t)set.n, sizeof *was_judged);
    if (judge_limit != 0 && gl_find_data("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", model_path, sizeof model_path)) {
        reranker r;
        if (!reranker_load(&r, model_path, err, sizeof err)) die(err);
        t0 = now();
        /* with a limit, every k-th row, so each channel is still represented */
        int step = judge_limit > 0 && judge_limit < set.n ? set.n / judge_limit : 1;
        for (int i = 0; i < set.n; i += step) {
            judge_score[i] = guard_judge(&r, set.rows[i].text, strlen(set.rows[i].text));
            blocked[2][i] = judge_score[i] > 0;
            was_judged[i] = true;
            if (++judged % 50 == 0) fprintf(stderr, "   judge: %d rows (%.0f s)\n", judged, now() - t0);
        }
        judge_s = now() - t0;
        reranker_free(&r);
    } else printf("   (the judge is skipped: %s)\n", judge_limit == 0 ? "--judge-limit 0" : "no SmolLM2 (make data DATA_SETS=smollm2)");
    inj_tally tl[N_DETECTORS][N_CHANNELS], all[N_DETECTORS];
    for (int d = 0; d < N_DETECTORS; d++) inj_tally_blocks(&set, blocked[d], d == 2 ? was_judged : NULL, tl[d], &all[d]);
    printf("\n   block rate on the malicious rows / false positives on the benign ones, per channel\n");
    printf("   %-11s", "detector");
    for (int c = 0; c < N_CHANNELS; c++) printf(" %16s", INJ_CHANNELS[c]);
    printf(" %16s\n", "all but questions");
    for (int d = 0; d < N_DETECTORS; d++) {
        if (d == 2 && !judged) continue;
        printf("   %-11s", DETECTORS[d]);
        for (int c = 0; c < N_CHANNELS; c++) {
            char cell[40];
            if (tl[d][c].mal) snprintf(cell, sizeof cell, "%d/%d | %d/%d", tl[d][c].mal_blocked, tl[d][c].mal,
                                       tl[d][c].ben_blocked, tl[d][c].ben);
            else snprintf(cell, sizeof cell, "- | %d/%d", tl[d][c].ben_blocked, tl[d][c].ben);
            printf(" %16s", cell);
        }
        printf("   %d/%d | %d/%d\n", all[d].mal_blocked, all[d].mal, all[d].ben_blocked, all[d].ben);
    }
    printf("   rules: %.3f ms per text; classifier: 5-fold cross-validation grouped by intent, template and page, "
           "%.1f s for all folds;\n   judge: %d texts in %.1f s (%.0f ms each)\n", rules_ms, cv_s, judged, judge_s,
           judged ? judge_s * 1e3 / judged : 0.0);
    int shown = 0;
    printf("   what the rules matched, a few:\n");
    for (int i = 0; i < set.n && shown < 4; i++)
        if (blocked[0][i] && set.rows[i].malicious && (i % 17 == 0 || i >= n_bastion)) {
            printf("     %-8s %s\n", set.rows[i].id, why[i]);
            shown++;
            if (i >= n_bastion) i += 20;
        }
    printf("   benign look-alikes the rules block:\n");
    for (int i = 0; i < set.n; i++)
        if (blocked[0][i] && !set.rows[i].malicious) printf("     %-8s %s\n", set.rows[i].id, why[i]);
    printf("   ordinary questions the classifier blocks:");
    for (int i = q0; i < set.n; i++)
        if (blocked[1][i]) printf(" %s (p %.2f: \"%.60s...\")", set.rows[i].id, prob[i], set.rows[i].text);
    printf("\n   malicious rows every detector misses: ");
    int missed = 0;
    for (int i = 0; i < set.n; i++)
        if (set.rows[i].malicious && !blocked[0][i] && !blocked[1][i] && !(was_judged[i] && blocked[2][i]))
            printf("%s%s", missed++ ? ", " : "", set.rows[i].id);
    printf("%s\n", missed ? "" : "none");
    /* the classifier serve --guard loads: trained on every row but the questions */
    tc_classifier clf;
    inj_train_classifier(&set, extra, n_extra, &clf);
    snprintf(path, sizeof path, "%s/injection.clf", out);
    if (!tc_classifier_save(&clf, path, err, sizeof err)) fprintf(stderr, "lab11: %s\n", err), status = 1;
    else printf("   the classifier trained on all of them: %s (serve --guard --guard-model %s)\n", path, path);
    tc_classifier_free(&clf);
    /* bars: block rate per channel and detector */
    float bars[N_DETECTORS][N_CHANNELS + 1];
    const char *groups[N_CHANNELS + 1] = {"user_input", "tool_output", "memory", "document", "FP: look-alikes",
                                          "FP: questions"};
    for (int d = 0; d < N_DETECTORS; d++) {
        for (int c = 0; c < 4; c++) bars[d][c] = tl[d][c].mal ? 100.0f * tl[d][c].mal_blocked / tl[d][c].mal : 0;
        int ben = 0, bb = 0;
        for (int c = 0; c < 4; c++) ben += tl[d][c].ben, bb += tl[d][c].ben_blocked;
        bars[d][4] = ben ? 100.0f * bb / ben : 0;
        bars[d][5] = tl[d][4].ben ? 100.0f * tl[d][4].ben_blocked / tl[d][4].ben : 0;
    }
    gl_series bs[N_DETECTORS];
    for (int d = 0; d < N_DETECTORS; d++) bs[d] = (gl_series){DETECTORS[d], NULL, bars[d], N_CHANNELS + 1, false, NULL};
    gl_chart bc = {"Injection detectors: % blocked per channel, and false positives", NULL, "% of rows", false, false,
                   false, 1000, 560};
    snprintf(path, sizeof path, "%s/injection.png", out);
    if (!gl_plot_bars(path, &bc, groups, N_CHANNELS + 1, bs, judged ? 3 : 2, err, sizeof err))
        fprintf(stderr, "lab11: %s\n", err), status = 1;
    else printf("   chart: %s\n\n", path);

    /* ---- 3. validators ---- */
    printf("3. Output validators: a verdict and its reason\n");
    const char *schema_text = "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"},\"days\":{\"type\":"
                              "\"integer\"}},\"required\":[\"city\",\"days\"],\"additionalProperties\":false}";
    gl_json *schema = gl_json_parse(schema_text, strlen(schema_text), err, sizeof err);
    const char *outputs[][2] = {
        {"json_schema", "{\"city\": \"Paris\", \"days\": 3}"},
        {"json_schema", "{\"city\": \"Paris\", \"days\": \"three\"}"},
        {"secrets", "Use the settings module to read the key from the environment."},
        {"secrets", "Here it is: AKIAIOSFODNN7EXAMPLE, and the card 4111 1111 1111 1111."},
        {"pii", "Write to the maintainers through the issue tracker."},
        {"pii", "Call me at (415) 555-0132 or write to jane.doe@example.com."},
        {"refusal", "Add the middleware with app.add_middleware()."},
        {"refusal", "I'm sorry, but I cannot help with that request."},
    };
    for (size_t i = 0; i < sizeof outputs / sizeof outputs[0]; i++) {
        guard_verdict v;
        const char *check = outputs[i][0], *text = outputs[i][1];
        size_t n = strlen(text);
        if (!strcmp(check, "json_schema")) guard_json_schema(schema, text, n, &v);
        else if (!strcmp(check, "secrets")) guard_secrets(rules, text, n, &v);
        else if (!strcmp(check, "pii")) guard_pii(rules, text, n, &v);
        else guard_refusal(rules, text, n, &v);
        printf("   %-11s %-4s %-60.60s %s\n", check, v.pass ? "pass" : "FAIL", text, v.reason);
    }
    gl_json_free(schema);
    if (have_ix) {
        answer a;
        const char *q = "How do I add CORS headers so that a frontend on another origin can call my API?";
        answer_extract(&ix, "bm25", q, ANSWER_DEFAULTS, &a);
        guard_verdict v;
        guard_citations(&ix, &a, a.text, &v);
        printf("   %-11s %-4s the extractive answer to \"%.50s...\" (%d sources) %s\n", "citations", v.pass ? "pass" : "FAIL",
               q, a.n_sources, v.reason);
        char forged[512];
        snprintf(forged, sizeof forged, "FastAPI requires the package `fastapi-cors-pro` for this [1]. See also [%d].",
                 a.n_sources + 2);
        guard_citations(&ix, &a, forged, &v);
        printf("   %-11s %-4s \"%.56s\" %s\n", "citations", v.pass ? "pass" : "FAIL", forged, v.reason);
        forged[strlen(forged) - 10] = 0;
        guard_citations(&ix, &a, forged, &v);
        printf("   %-11s %-4s \"%.56s\" %s\n", "citations", v.pass ? "pass" : "FAIL", forged, v.reason);
        answer_free(&a);
    }

    /* ---- results.json ---- */
    gl_json_writer w;
    snprintf(path, sizeof path, "%s/results.json", out);
    if (!gl_jw_open(&w, path)) die("cannot write results.json");
    gl_jw_object(&w, NULL);
    gl_jw_array(&w, "spam");
    for (int m = 0; m < n_spam; m++) {
        gl_jw_object(&w, NULL);
        gl_jw_string(&w, "model", spam[m].name);
        gl_jw_number(&w, "threshold", spam[m].threshold);
        gl_jw_number(&w, "precision", spam[m].test.precision);
        gl_jw_number(&w, "recall", spam[m].test.recall);
        gl_jw_number(&w, "f1", spam[m].test.f1);
        gl_jw_number(&w, "average_precision", spam[m].ap);
        gl_jw_int(&w, "false_positives", spam[m].test.fp);
        gl_jw_int(&w, "false_negatives", spam[m].test.fn);
        gl_jw_number(&w, "train_s", spam[m].train_s);
        gl_jw_end(&w);
    }
    gl_jw_end(&w);
    gl_jw_object(&w, "injection");
    gl_jw_int(&w, "rows", set.n);
    for (int d = 0; d < N_DETECTORS; d++) {
        if (d == 2 && !judged) continue;
        gl_jw_object(&w, DETECTORS[d]);
        for (int c = 0; c < N_CHANNELS; c++) {
            gl_jw_object(&w, INJ_CHANNELS[c]);
            gl_jw_int(&w, "malicious", tl[d][c].mal);
            gl_jw_int(&w, "blocked", tl[d][c].mal_blocked);
            gl_jw_int(&w, "benign", tl[d][c].ben);
            gl_jw_int(&w, "false_positives", tl[d][c].ben_blocked);
            gl_jw_end(&w);
        }
        gl_jw_number(&w, "block_rate", all[d].mal ? (double)all[d].mal_blocked / all[d].mal : 0);
        gl_jw_number(&w, "false_positive_rate", all[d].ben ? (double)all[d].ben_blocked / all[d].ben : 0);
        gl_jw_end(&w);
    }
    gl_jw_int(&w, "judged", judged);
    gl_jw_end(&w);
    gl_jw_end(&w);
    if (!gl_jw_close(&w)) fprintf(stderr, "lab11: could not write %s\n", path), status = 1;
    else printf("\nresults: %s\n", path);

    for (int d = 0; d < N_DETECTORS; d++) free(blocked[d]);
    free(why), free(prob), free(judge_score), free(was_judged), free(extra);
    guard_rules_free(rules);
    inj_free(&set);
    if (have_ix) search_close(&ix);
    gl_stdout_check("lab11");
    return status;
}
