#include "monitor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"
#include "json.h"

static const char *record(const gl_json *o, mon_request *r) {
    if (o->type != GL_JSON_OBJECT) return "not a JSON object";
    static const char *numbers[] = {"time", "status", "latency_s", "prompt_tokens", "completion_tokens", "cost_usd"};
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
        const gl_json *v = gl_json_get(o, numbers[i]);
        if (!v || v->type != GL_JSON_NUMBER)
            return "expected the numbers time, status, latency_s, prompt_tokens, completion_tokens and cost_usd";
    }
    const gl_json *route = gl_json_get(o, "route"), *ttft = gl_json_get(o, "ttft_s"), *stream = gl_json_get(o, "stream"),
                  *guard = gl_json_get(o, "guard");
    if (!route || route->type != GL_JSON_STRING) return "expected a string route";
    memset(r, 0, sizeof *r);
    r->time = gl_json_get(o, "time")->number;
    r->status = (int)gl_json_get(o, "status")->number;
    r->latency_s = gl_json_get(o, "latency_s")->number;
    r->prompt_tokens = (int)gl_json_get(o, "prompt_tokens")->number;
    r->completion_tokens = (int)gl_json_get(o, "completion_tokens")->number;
    r->cost_usd = gl_json_get(o, "cost_usd")->number;
    r->ttft_s = ttft && ttft->type == GL_JSON_NUMBER ? ttft->number : -1;
    r->stream = stream && stream->type == GL_JSON_BOOL && stream->boolean;
    r->chat = !strcmp(route->string, "chat_completions");
    if (guard && guard->type == GL_JSON_STRING) {
        /* serve writes "input block: ..." for a refused request and "... output block: ..." for a replaced reply */
        r->blocked_input = !strncmp(guard->string, "input block", 11);
        r->blocked_output = strstr(guard->string, "output block") != NULL;
    }
    if (!(r->latency_s >= 0) || !isfinite(r->time)) return "latency_s must be >= 0 and time a number";
    return NULL;
}

bool mon_log_load(const char *path, mon_log *log, char *err, size_t err_len) {
    memset(log, 0, sizeof *log);
    unsigned char *data;
    size_t len;
    if (!gl_read_whole_file(path, &data, &len, err, err_len)) return false;
    int line = 0;
    for (char *p = (char *)data, *end = p + len; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        line++;
        if (!nl) {
            log->partial_last_line = true;
            break;
        }
        if (nl > p) {
            char jerr[200];
            gl_json *o = gl_json_parse(p, (size_t)(nl - p), jerr, sizeof jerr);
            mon_request r;
            const char *why = o ? record(o, &r) : jerr;
            gl_json_free(o);
            if (why) {
                snprintf(err, err_len, "%s:%d: %s", path, line, why);
                free(data);
                mon_log_free(log);
                return false;
            }
            if (log->n == log->cap) {
                log->cap = log->cap ? 2 * log->cap : 256;
                log->r = realloc(log->r, (size_t)log->cap * sizeof *log->r);
            }
            log->r[log->n++] = r;
        }
        p = nl + 1;
    }
    free(data);
    return true;
}

void mon_log_free(mon_log *log) {
    free(log->r);
    memset(log, 0, sizeof *log);
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double mon_quantile(double *x, int n, double p) {
    if (n <= 0) return NAN;
    qsort(x, (size_t)n, sizeof *x, by_value);
    double at = p * (n - 1);
    int lo = (int)floor(at), hi = lo + 1 < n ? lo + 1 : lo;
    return x[lo] + (at - lo) * (x[hi] - x[lo]);
}

void mon_summarize(const mon_log *log, mon_summary *s) {
    memset(s, 0, sizeof *s);
    double *lat = malloc((size_t)(log->n ? log->n : 1) * sizeof *lat), *ttft = malloc((size_t)(log->n ? log->n : 1) * sizeof *ttft);
    int n_lat = 0, n_ttft = 0;
    s->first = INFINITY, s->last = -INFINITY;
    for (int i = 0; i < log->n; i++) {
        const mon_request *r = &log->r[i];
        s->requests++;
        s->first = fmin(s->first, r->time - r->latency_s), s->last = fmax(s->last, r->time);
        s->blocked_input += r->blocked_input, s->blocked_output += r->blocked_output, s->streamed += r->stream;
        s->prompt_tokens += r->prompt_tokens, s->completion_tokens += r->completion_tokens;
        s->cost_usd += r->cost_usd;
        if (r->status == 200) {
            s->ok++;
            lat[n_lat++] = r->latency_s;
            if (r->ttft_s >= 0) ttft[n_ttft++] = r->ttft_s;
        } else if (!r->blocked_input) s->errors++;
    }
    if (!log->n) s->first = s->last = 0;
    s->span_s = s->last - s->first;
    s->latency_p50 = mon_quantile(lat, n_lat, 0.5), s->latency_p95 = mon_quantile(lat, n_lat, 0.95);
    s->latency_max = n_lat ? lat[n_lat - 1] : NAN; /* sorted by the quantile */
    s->ttft_p50 = mon_quantile(ttft, n_ttft, 0.5), s->ttft_p95 = mon_quantile(ttft, n_ttft, 0.95);
    s->requests_per_s = s->span_s > 0 ? s->requests / s->span_s : NAN;
    s->tokens_per_s = s->span_s > 0 ? s->completion_tokens / s->span_s : NAN;
    s->cost_per_100 = s->ok ? 100.0 * s->cost_usd / s->ok : NAN;
    free(lat), free(ttft);
}

int mon_timeline(const mon_log *log, double window_s, int max, float *start, float *requests, float *tokens_per_s,
                 float *p95) {
    if (!log->n || window_s <= 0 || max <= 0) return 0;
    double t0 = INFINITY, t1 = -INFINITY;
    for (int i = 0; i < log->n; i++) t0 = fmin(t0, log->r[i].time - log->r[i].latency_s), t1 = fmax(t1, log->r[i].time);
    int n = (int)floor((t1 - t0) / window_s) + 1;
    if (n > max) n = max;
    double *lat = malloc((size_t)log->n * sizeof *lat);
    for (int w = 0; w < n; w++) {
        double a = t0 + w * window_s, b = w == n - 1 ? INFINITY : a + window_s;
        int k = 0, count = 0;
        long tokens = 0;
        for (int i = 0; i < log->n; i++) {
            const mon_request *r = &log->r[i];
            if (r->time < a || r->time >= b) continue;
            count++, tokens += r->completion_tokens;
            if (r->status == 200) lat[k++] = r->latency_s;
        }
        start[w] = (float)(w * window_s), requests[w] = (float)count;
        tokens_per_s[w] = (float)(tokens / window_s);
        p95[w] = (float)mon_quantile(lat, k, 0.95);
    }
    free(lat);
    return n;
}
