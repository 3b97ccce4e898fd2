/* The tools of the agent (lab 10): each takes its arguments as a JSON object that follows its schema and writes an
 * observation for the model. A tool that fails (a division by zero, a service that answers 500, says nothing in
 * time or sends garbage) writes an error observation and returns false: an observation for the model, never a
 * crash.
 *   calculator(expression)          exact arithmetic: + - * / % ^, parentheses, sqrt abs round; not the model's
 *   convert_units(value, from, to)  length, mass, volume, time, temperature
 *   search_docs(query)              BM25 over a `rag index` of the FastAPI docs: the best three sections
 *   read_section(page, section)     the text of one section of a page
 *   get_weather(city)               a weather-like JSON API on loopback (agent/mock.h)
 *   get_stock_price(symbol)         a finance-like JSON API on loopback
 *   final_answer(answer)            ends the task (handled by the loop) */
#ifndef GRADLAB_AGENT_TOOLS_H
#define GRADLAB_AGENT_TOOLS_H

#include <stdbool.h>

#include "json.h"
#include "search.h"
#include "strbuf.h"

typedef struct {
    const char *name, *description, *parameters; /* parameters: a JSON Schema */
} agent_tool_spec;

extern const agent_tool_spec AGENT_TOOLS[];
extern const int AGENT_N_TOOLS;

typedef struct {
    search_index docs;
    bool have_docs;
    char docs_error[256]; /* why search_docs cannot run, when it cannot */
    int weather_port, finance_port; /* 0: no service */
    int timeout_ms;                 /* per HTTP call */
} agent_tools;

/* docs_db may be NULL (search_docs and read_section then answer with the reason) */
void agent_tools_init(agent_tools *t, const char *docs_db, int weather_port, int finance_port, int timeout_ms);
void agent_tools_free(agent_tools *t);
/* Runs tool name on args, appending the observation to out; false if it failed (the observation says why). */
bool agent_tool_run(agent_tools *t, const char *name, const gl_json *args, gl_strbuf *out);

/* the pieces, for tests and the lab */
bool calc_eval(const char *expr, double *value, char *err, size_t err_len);
bool units_convert(double value, const char *from, const char *to, double *out, char *err, size_t err_len);
bool units_same(const char *a, const char *b); /* two spellings of one unit ("km", "Kilometers") */
bool text_has_nocase(const char *hay, const char *needle);
/* obj[key] when it is a string, else NULL */
const char *agent_json_text(const gl_json *obj, const char *key);
/* GET http://127.0.0.1:port/path within timeout_ms; the status and the body (malloc'd); false on no answer in time */
bool http_get(int port, const char *path, int timeout_ms, int *status, char **body, char *err, size_t err_len);

#endif
