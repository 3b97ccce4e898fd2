/* The serve request log (serve --log FILE, one JSON object a line; docs/guardrails.md) read back and aggregated:
 * what `report` prints and draws. */
#ifndef GRADLAB_MONITOR_H
#define GRADLAB_MONITOR_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    double time;      /* when the request finished, Unix seconds */
    double latency_s; /* submit to last byte */
    double ttft_s;    /* to the first token; negative when none was generated (a blocked request) */
    double cost_usd;
    int status, prompt_tokens, completion_tokens;
    bool stream, chat;
    bool blocked_input, blocked_output; /* the guard refused the request, or replaced the reply */
} mon_request;

typedef struct {
    mon_request *r;
    int n, cap;
    bool partial_last_line; /* the last line had no newline (a server still writing): left out */
} mon_log;

/* false with "FILE:LINE: what is wrong" for a line that is not a log record */
bool mon_log_load(const char *path, mon_log *log, char *err, size_t err_len);
void mon_log_free(mon_log *log);

/* the p-quantile (0..1) of x[0..n), linear between the order statistics (numpy's default); x is sorted in place.
 * NAN for n = 0 */
double mon_quantile(double *x, int n, double p);

typedef struct {
    int requests, ok, errors, blocked_input, blocked_output, streamed;
    double first, last, span_s;                 /* the first and last finish times */
    double latency_p50, latency_p95, latency_max; /* over the requests answered (status 200) */
    double ttft_p50, ttft_p95;
    long prompt_tokens, completion_tokens;
    double requests_per_s, tokens_per_s;         /* over the span (requests / span, completion tokens / span) */
    double cost_usd, cost_per_100;               /* the sum, and per 100 answered requests */
} mon_summary;

void mon_summarize(const mon_log *log, mon_summary *s);

/* The log in windows of window_s seconds from the first request: per window its start (seconds from the first),
 * requests finished, completion tokens per second and the p95 latency (NAN for a window without answers). Returns
 * the number of windows (at most max). */
int mon_timeline(const mon_log *log, double window_s, int max, float *start, float *requests, float *tokens_per_s,
                 float *p95);

#endif
