/* report: the serve request log (serve --log FILE) summed up -- latency and time to first token (p50, p95),
 * throughput over the log's span and over time, tokens, cost (total and per 100 answered requests, from the cost
 * each line carries; docs/guardrails.md) and the guard's blocks -- printed, written as JSON and drawn as a
 * dashboard PNG (requests, tokens per second, p95 latency per window; the latency distribution).
 *   report --log FILE [--out DIR] [--window SECONDS] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "json.h"
#include "monitor.h"
#include "plot.h"

static _Noreturn void die(const char *what) {
    fprintf(stderr, "report: %s\n", what);
    exit(1);
}

static void usage(FILE *f) {
    fprintf(f, "usage: report --log FILE [--out DIR] [--window SECONDS]\n"
               "  --log     serve's request log (serve --log FILE): one JSON object a line\n"
               "  --out     where report.json and dashboard.png go (default out/report)\n"
               "  --window  the width of the dashboard's time windows (default: the span / 30, at least 1 s)\n");
}

int main(int argc, char **argv) {
    const char *log_path = NULL, *out = "out/report";
    double window = 0;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) usage(stdout), exit(0);
        if (i + 1 >= argc) {
            fprintf(stderr, "report: unknown flag or missing value: '%s'\n", f);
            usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(f, "--log")) log_path = v;
        else if (!strcmp(f, "--out")) out = v;
        else if (!strcmp(f, "--window")) window = gl_flag_number("report", f, v, 1e-3, 1e9);
        else {
            fprintf(stderr, "report: unknown flag '%s'\n", f);
            usage(stderr);
            return 2;
        }
    }
    if (!log_path) usage(stderr), die("--log FILE is required");
    char err[512], path[4096];
    mon_log log;
    if (!mon_log_load(log_path, &log, err, sizeof err)) die(err);
    if (!log.n) die("the log has no requests yet");
    mon_summary s;
    mon_summarize(&log, &s);
    mkdir(out, 0755);

    printf("== %s: %d requests over %.1f s%s\n", log_path, s.requests, s.span_s,
           log.partial_last_line ? " (a last line still being written was left out)" : "");
    printf("  answered %d, errors %d, blocked by the guard: %d requests, %d replies; streamed %d\n", s.ok, s.errors,
           s.blocked_input, s.blocked_output, s.streamed);
    printf("  latency        p50 %.3f s   p95 %.3f s   max %.3f s\n", s.latency_p50, s.latency_p95, s.latency_max);
    printf("  first token    p50 %.3f s   p95 %.3f s\n", s.ttft_p50, s.ttft_p95);
    printf("  throughput     %.2f requests/s, %.1f completion tokens/s (%ld prompt, %ld completion tokens)\n",
           s.requests_per_s, s.tokens_per_s, s.prompt_tokens, s.completion_tokens);
    printf("  cost           $%.6f in all, $%.6f per 100 answered requests\n", s.cost_usd, s.cost_per_100);

    if (window <= 0) window = fmax(1.0, s.span_s / 30);
    enum { MAX_WINDOWS = 2000 };
    float *start = malloc(MAX_WINDOWS * sizeof(float)), *req = malloc(MAX_WINDOWS * sizeof(float)),
          *tps = malloc(MAX_WINDOWS * sizeof(float)), *p95 = malloc(MAX_WINDOWS * sizeof(float));
    int nw = mon_timeline(&log, window, MAX_WINDOWS, start, req, tps, p95);
    /* the latency distribution: the share of answered requests done within x seconds */
    double *lat = malloc((size_t)log.n * sizeof *lat);
    int nl = 0;
    for (int i = 0; i < log.n; i++)
        if (log.r[i].status == 200) lat[nl++] = log.r[i].latency_s;
    mon_quantile(lat, nl, 0.5); /* sorts */
    float *cx = malloc((size_t)(nl ? nl : 1) * sizeof(float)), *cy = malloc((size_t)(nl ? nl : 1) * sizeof(float));
    for (int i = 0; i < nl; i++) cx[i] = (float)lat[i], cy[i] = (float)(i + 1) / nl;
    char xl[64];
    snprintf(xl, sizeof xl, "seconds since the first request (%.3g s windows)", window);
    gl_series s_req = {"requests finished", start, req, nw, false, NULL},
              s_tps = {"completion tokens / s", start, tps, nw, false, NULL},
              s_p95 = {"p95 latency (s)", start, p95, nw, false, NULL},
              s_cdf = {"answered requests", cx, cy, nl, false, NULL};
    gl_panel panels[4] = {
        {{"Requests per window", xl, "requests", false, false, false, 700, 420}, &s_req, 1},
        {{"Throughput", xl, "tokens / s", false, false, false, 700, 420}, &s_tps, 1},
        {{"Latency over time (p95 per window)", xl, "seconds", false, false, false, 700, 420}, &s_p95, 1},
        {{"Latency distribution", "latency (s)", "share done within", false, false, true, 700, 420}, &s_cdf, 1},
    };
    char title[256];
    snprintf(title, sizeof title, "serve: %d requests, p50 %.2f s, p95 %.2f s, $%.4f per 100", s.requests,
             s.latency_p50, s.latency_p95, s.cost_per_100);
    snprintf(path, sizeof path, "%s/dashboard.png", out);
    int status = 0;
    if (!gl_plot_panels(path, title, panels, 4, 2, err, sizeof err)) fprintf(stderr, "report: %s\n", err), status = 1;

    gl_json_writer w;
    char jpath[4096];
    snprintf(jpath, sizeof jpath, "%s/report.json", out);
    if (!gl_jw_open(&w, jpath)) die("cannot write report.json in --out");
    gl_jw_object(&w, NULL);
    gl_jw_string(&w, "log", log_path);
    gl_jw_int(&w, "requests", s.requests);
    gl_jw_int(&w, "answered", s.ok);
    gl_jw_int(&w, "errors", s.errors);
    gl_jw_int(&w, "blocked_input", s.blocked_input);
    gl_jw_int(&w, "blocked_output", s.blocked_output);
    gl_jw_int(&w, "streamed", s.streamed);
    gl_jw_number(&w, "span_s", s.span_s);
    gl_jw_number(&w, "latency_p50_s", s.latency_p50);
    gl_jw_number(&w, "latency_p95_s", s.latency_p95);
    gl_jw_number(&w, "latency_max_s", s.latency_max);
    gl_jw_number(&w, "ttft_p50_s", s.ttft_p50);
    gl_jw_number(&w, "ttft_p95_s", s.ttft_p95);
    gl_jw_number(&w, "requests_per_s", s.requests_per_s);
    gl_jw_number(&w, "completion_tokens_per_s", s.tokens_per_s);
    gl_jw_int(&w, "prompt_tokens", s.prompt_tokens);
    gl_jw_int(&w, "completion_tokens", s.completion_tokens);
    gl_jw_number(&w, "cost_usd", s.cost_usd);
    gl_jw_number(&w, "cost_per_100_answered_usd", s.cost_per_100);
    gl_jw_number(&w, "window_s", window);
    gl_jw_array(&w, "timeline");
    for (int i = 0; i < nw; i++) {
        gl_jw_object(&w, NULL);
        gl_jw_number(&w, "start_s", start[i]);
        gl_jw_number(&w, "requests", req[i]);
        gl_jw_number(&w, "completion_tokens_per_s", tps[i]);
        gl_jw_number(&w, "latency_p95_s", p95[i]);
        gl_jw_end(&w);
    }
    gl_jw_end(&w);
    gl_jw_end(&w);
    if (!gl_jw_close(&w)) fprintf(stderr, "report: could not write %s\n", jpath), status = 1;
    if (!status) printf("wrote %s and %s\n", path, jpath);
    free(start), free(req), free(tps), free(p95), free(lat), free(cx), free(cy);
    mon_log_free(&log);
    gl_stdout_check("report");
    return status;
}
