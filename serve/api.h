/* The OpenAI-compatible request side of `serve`: request bodies parsed and validated into one struct (every field
 * checked for type and range; a failure names the field), and a small string builder with JSON escaping for the
 * responses. Separate from the HTTP code so the parser can be fuzzed on its own (tests/fuzz/fuzz_request.c). */
#ifndef GRADLAB_SERVE_API_H
#define GRADLAB_SERVE_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"

enum { API_MAX_STOPS = 4, API_MAX_MESSAGES = 256, API_MAX_TOP_LOGPROBS = 20, API_MAX_TOOLS = 64 };

typedef enum { API_FORMAT_TEXT, API_FORMAT_JSON_OBJECT, API_FORMAT_JSON_SCHEMA } api_format;
typedef enum { API_TOOLS_AUTO, API_TOOLS_NONE, API_TOOLS_REQUIRED, API_TOOLS_FUNCTION } api_tool_choice;

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
    /* constrained output (docs/grammar.md) */
    api_format format;
    const struct gl_json *schema; /* response_format json_schema's schema */
    int n_tools;                  /* tools: [{"type": "function", "function": {name, description, parameters}}] */
    const char *tool_names[API_MAX_TOOLS], *tool_descriptions[API_MAX_TOOLS];
    const struct gl_json *tool_parameters[API_MAX_TOOLS]; /* NULL: any object */
    api_tool_choice tool_choice;  /* default auto when there are tools */
    const char *tool_choice_name; /* API_TOOLS_FUNCTION's */
    char *owned[API_MAX_MESSAGES]; /* message texts rendered here (a tool call, an observation); freed with the request */
    struct gl_json *doc;        /* the parsed body; the strings above point into it */
} api_request;

/* Parses a request body; false with "message" and the offending field in param (OpenAI's error object). */
bool api_parse(const char *body, size_t len, bool chat, api_request *r, char *message, size_t message_len,
               const char **param);
void api_request_free(api_request *r);

/* With tools: the system text that lists them and the reply format (appended to the conversation's system message,
 * or the first message), and the JSON Schema of one call the request allows: {"name": one of the tools (or the one
 * tool_choice names), "arguments": its parameters}. malloc'd text. */
char *api_tools_prompt(const api_request *r);
char *api_call_schema(const api_request *r);

/* ---- responses are built in a gl_strbuf (strbuf.h) ---- */
void api_json_string(gl_strbuf *b, const char *s, size_t n); /* quoted and escaped; invalid UTF-8 becomes U+FFFD */
struct gl_json;
void api_json_value(gl_strbuf *b, const struct gl_json *v); /* a parsed value as compact JSON */

/* OpenAI's error object: {"error": {"message", "type", "param", "code"}} */
void api_error_json(gl_strbuf *b, const char *message, const char *type, const char *param, const char *code);

#endif
