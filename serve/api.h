/* The OpenAI-compatible request side of `serve`: request bodies parsed and validated into one struct (every field
 * checked for type and range; a failure names the field), and a small string builder with JSON escaping for the
 * responses. Separate from the HTTP code so the parser can be fuzzed on its own (tests/fuzz/fuzz_request.c). */
#ifndef GRADLAB_SERVE_API_H
#define GRADLAB_SERVE_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"

enum { API_MAX_STOPS = 4, API_MAX_MESSAGES = 256, API_MAX_TOP_LOGPROBS = 20 };

typedef struct {
    bool chat;                  /* /v1/chat/completions (messages) or /v1/completions (prompt) */
    int n_messages;
    const char *roles[API_MAX_MESSAGES], *contents[API_MAX_MESSAGES];
    const char *prompt;
    int max_tokens;             /* -1: up to the context */
    float temperature, top_p;   /* OpenAI's defaults: 1 and 1 */
    int top_k;                  /* extension: 0 = all */
    uint64_t seed;
    bool has_seed;
    int n_stops;
    const char *stops[API_MAX_STOPS];
    bool stream, include_usage;
    bool logprobs;              /* chat: logprobs true; completions: logprobs N */
    int top_logprobs;
    struct gl_json *doc;        /* the parsed body; the strings above point into it */
} api_request;

/* Parses a request body; false with "message" and the offending field in param (OpenAI's error object). */
bool api_parse(const char *body, size_t len, bool chat, api_request *r, char *message, size_t message_len,
               const char **param);
void api_request_free(api_request *r);

/* ---- responses are built in a gl_strbuf (strbuf.h) ---- */
void api_json_string(gl_strbuf *b, const char *s, size_t n); /* quoted and escaped; invalid UTF-8 becomes U+FFFD */

/* OpenAI's error object: {"error": {"message", "type", "param", "code"}} */
void api_error_json(gl_strbuf *b, const char *message, const char *type, const char *param, const char *code);

#endif
