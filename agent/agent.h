/* The agent loop of lab 10: a chat model decides, acts, observes and stops.
 *   messages = [system: the tools and the reply format, user: the task]
 *   each step: the model writes one JSON tool call {"name": ..., "arguments": {...}}
 *              constrained: sampled under the grammar of "any tool with its own arguments' schema" (always parses)
 *              free: sampled as it likes, then the first JSON object in its text is taken (or the step is invalid)
 *              final_answer ends the task; any other tool runs and its observation is the next user message
 *   limits: max_steps, a stuck-loop detector (a call identical to an earlier one ends the task), a per-tool timeout
 *           (the HTTP tools), a token budget over the whole task
 * Every step is one JSON line of the trace: the model's text, the tool, its arguments, the observation, timings. */
#ifndef GRADLAB_AGENT_H
#define GRADLAB_AGENT_H

#include <stdio.h>

#include "grammar.h"
#include "llama.h"
#include "tools.h"

typedef enum { AGENT_CONSTRAINED, AGENT_FREE } agent_mode;

typedef struct {
    llama *m;
    agent_tools *tools;
    agent_mode mode;
    int max_steps, token_budget, max_call_tokens;
    FILE *trace; /* NULL: none */
    /* the agent's own */
    gl_vocab_trie *trie;
    gl_grammar *calls; /* the grammar of one tool call */
    llama_cache cache;
} agent;

typedef struct {
    char answer[512];      /* final_answer's text ("" if none) */
    const char *stopped;   /* "answer", "max_steps", "stuck", "budget", "context" */
    int steps, tokens, invalid_calls, tool_errors;
    char first_tool[32];   /* the first call's tool ("" if the first reply was not a call) */
    char first_args[512];  /* its arguments as compact JSON */
    char tools_used[256];  /* the tools called, in order, comma-separated */
    double seconds;
} agent_result;

/* false with a message (the call grammar cannot be built, the model has no ChatML template or tokenizer) */
bool agent_init(agent *a, llama *m, agent_tools *tools, agent_mode mode, char *err, size_t err_len);
void agent_free(agent *a);
/* Runs one task; task_id names it in the trace. */
void agent_run(agent *a, const char *task_id, const char *task, agent_result *r);
/* the JSON Schema of one tool call (malloc'd text): anyOf over the tools, each {"name": const, "arguments": ...} */
char *agent_call_schema(void);
/* the system message that lists the tools */
const char *agent_system_prompt(void);

/* ---- the task set (labs/10_tools/tasks.jsonl): one JSON object a line
 *   {"id", "split": "dev"|"test", "kind", "task", "tool": the first tool expected, "args": its expected arguments,
 *    "answer": a number (within 1%) or a list of strings (any of them, case-insensitive, in the answer),
 *    "fault": {"service": "weather"|"finance", "mode": "500"|"timeout"|"garbage"} (optional)} */
typedef struct {
    const char *id, *split, *kind, *task, *tool;
    gl_json *doc; /* the line, parsed: args, answer and fault point into it */
    const gl_json *args, *answer, *fault;
} agent_task;

/* false with "FILE line N: ..." */
bool agent_tasks_load(const char *path, agent_task **tasks, int *n, char *err, size_t err_len);
void agent_tasks_free(agent_task *tasks, int n);

typedef struct {
    bool success, tool_ok, args_ok;
} agent_score;
agent_score agent_grade(const agent_task *t, const agent_result *r);
/* Sets the mock services as task t asks: no fault, or its "fault"; false with a message if that is malformed. */
struct mock_services;
bool agent_task_faults(const agent_task *t, struct mock_services *m, int latency_ms, char *err, size_t err_len);
/* One task's result as a JSON object in an array of w (mode: "constrained" or "free") */
struct gl_json_writer;
void agent_result_json(struct gl_json_writer *w, const agent_task *t, const char *mode, const agent_score *s,
                       const agent_result *r);

#endif
