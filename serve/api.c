#include "api.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "pretok.h"

void api_json_string(gl_strbuf *b, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    gl_sb_put(b, "\"", 1);
    for (size_t i = 0; i < n;) {
        size_t len;
        gl_char_at(u, n, i, &len);
        unsigned char c = u[i];
        if (len == 1 && c >= 0x80) { /* not valid UTF-8: JSON text must be */
            gl_sb_puts(b, "\\ufffd");
            i++;
            continue;
        }
        if (len > 1) {
            gl_sb_put(b, s + i, len);
            i += len;
            continue;
        }
        if (c == '"') gl_sb_puts(b, "\\\"");
        else if (c == '\\') gl_sb_puts(b, "\\\\");
        else if (c == '\n') gl_sb_puts(b, "\\n");
        else if (c == '\r') gl_sb_puts(b, "\\r");
        else if (c == '\t') gl_sb_puts(b, "\\t");
        else if (c < 0x20) gl_sb_printf(b, "\\u%04x", c);
        else gl_sb_put(b, s + i, 1);
        i++;
    }
    gl_sb_put(b, "\"", 1);
}


void api_error_json(gl_strbuf *b, const char *message, const char *type, const char *param, const char *code) {
    gl_sb_puts(b, "{\"error\": {\"message\": ");
    api_json_string(b, message, strlen(message));
    gl_sb_puts(b, ", \"type\": ");
    api_json_string(b, type, strlen(type));
    gl_sb_puts(b, ", \"param\": ");
    if (param) api_json_string(b, param, strlen(param));
    else gl_sb_puts(b, "null");
    gl_sb_puts(b, ", \"code\": ");
    if (code) api_json_string(b, code, strlen(code));
    else gl_sb_puts(b, "null");
    gl_sb_puts(b, "}}");
}

/* ---- requests ---- */

#define FAIL(field, ...) return snprintf(message, message_len, __VA_ARGS__), *param = field, false

static bool number_in(const gl_json *v, double lo, double hi) {
    return v->type == GL_JSON_NUMBER && isfinite(v->number) && v->number >= lo && v->number <= hi;
}

static bool whole_in(const gl_json *v, double lo, double hi) { return number_in(v, lo, hi) && v->number == floor(v->number); }

/* a string without NUL bytes (the tokenizer and C strings would stop at one) */
static bool text(const gl_json *v) { return v->type == GL_JSON_STRING && strlen(v->string) == v->string_len; }

static bool parse_fields(const gl_json *o, bool chat, api_request *r, char *message, size_t message_len,
                         const char **param) {
    if (chat) {
        const gl_json *msgs = gl_json_get(o, "messages");
        if (!msgs || msgs->type != GL_JSON_ARRAY || msgs->count == 0)
            FAIL("messages", "'messages' must be a non-empty array of {\"role\", \"content\"} objects");
        if (msgs->count > API_MAX_MESSAGES) FAIL("messages", "at most %d messages", API_MAX_MESSAGES);
        for (size_t i = 0; i < msgs->count; i++) {
            const gl_json *m = &msgs->items[i], *role = gl_json_get(m, "role"), *content = gl_json_get(m, "content");
            const gl_json *calls = gl_json_get(m, "tool_calls");
            if (m->type != GL_JSON_OBJECT || !role || !text(role))
                FAIL("messages", "messages[%zu] needs a string 'role' and a string 'content'", i);
            bool is_tool = !strcmp(role->string, "tool");
            if (strcmp(role->string, "system") && strcmp(role->string, "user") && strcmp(role->string, "assistant") && !is_tool)
                FAIL("messages", "messages[%zu].role must be system, user, assistant or tool, got '%.40s'", i, role->string);
            bool has_calls = !strcmp(role->string, "assistant") && calls && calls->type == GL_JSON_ARRAY && calls->count;
            if (!has_calls && (!content || !text(content)))
                FAIL("messages", "messages[%zu] needs a string 'role' and a string 'content'", i);
            r->roles[i] = role->string, r->contents[i] = content && text(content) ? content->string : "";
            if (has_calls) { /* the call as the model wrote it: {"name": ..., "arguments": {...}} */
                const gl_json *fn = calls->items[0].type == GL_JSON_OBJECT ? gl_json_get(&calls->items[0], "function") : NULL;
                const gl_json *name = fn ? gl_json_get(fn, "name") : NULL, *args = fn ? gl_json_get(fn, "arguments") : NULL;
                if (!name || !text(name) || !args || !text(args))
                    FAIL("messages", "messages[%zu].tool_calls[0] needs function.name and function.arguments (a JSON string)", i);
                gl_strbuf b = {0};
                gl_sb_puts(&b, "{\"name\": ");
                api_json_string(&b, name->string, name->string_len);
                gl_sb_printf(&b, ", \"arguments\": %s}", args->string);
                r->contents[i] = r->owned[i] = b.p;
            } else if (is_tool) { /* a tool's result, as the agent of lab 10 shows it: the next user turn */
                gl_strbuf b = {0};
                gl_sb_printf(&b, "Observation: %s", content->string);
                r->roles[i] = "user", r->contents[i] = r->owned[i] = b.p;
            }
        }
        r->n_messages = (int)msgs->count;
    } else {
        const gl_json *p = gl_json_get(o, "prompt");
        if (!p || !text(p)) FAIL("prompt", "'prompt' must be a string");
        r->prompt = p->string;
    }
    const gl_json *v;
    if ((v = gl_json_get(o, "max_tokens")) || (v = gl_json_get(o, "max_completion_tokens"))) {
        if (v->type != GL_JSON_NULL) {
            if (!whole_in(v, 1, 1 << 20)) FAIL("max_tokens", "'max_tokens' must be an integer from 1 to 1048576");
            r->max_tokens = (int)v->number;
        }
    }
    if ((v = gl_json_get(o, "temperature")) && v->type != GL_JSON_NULL) {
        if (!number_in(v, 0, 2)) FAIL("temperature", "'temperature' must be a number from 0 to 2");
        r->temperature = (float)v->number;
    }
    if ((v = gl_json_get(o, "top_p")) && v->type != GL_JSON_NULL) {
        if (!number_in(v, 0, 1) || v->number == 0) FAIL("top_p", "'top_p' must be a number in (0, 1]");
        r->top_p = (float)v->number;
    }
    if ((v = gl_json_get(o, "top_k")) && v->type != GL_JSON_NULL) {
        if (!whole_in(v, 0, 1 << 24)) FAIL("top_k", "'top_k' must be a non-negative integer");
        r->top_k = (int)v->number;
    }
    if ((v = gl_json_get(o, "seed")) && v->type != GL_JSON_NULL) {
        if (!whole_in(v, -9007199254740992.0, 9007199254740992.0)) FAIL("seed", "'seed' must be an integer");
        r->seed = (uint64_t)(int64_t)v->number, r->has_seed = true;
    }
    if ((v = gl_json_get(o, "n")) && v->type != GL_JSON_NULL && !(whole_in(v, 1, 1)))
        FAIL("n", "only n = 1 is supported");
    if ((v = gl_json_get(o, "stop")) && v->type != GL_JSON_NULL) {
        if (text(v)) {
            r->stops[r->n_stops++] = v->string;
        } else if (v->type == GL_JSON_ARRAY && v->count <= API_MAX_STOPS) {
            for (size_t i = 0; i < v->count; i++) {
                if (!text(&v->items[i])) FAIL("stop", "'stop' must be a string or a list of at most 4 strings");
                r->stops[r->n_stops++] = v->items[i].string;
            }
        } else {
            FAIL("stop", "'stop' must be a string or a list of at most 4 strings");
        }
        for (int i = 0; i < r->n_stops; i++)
            if (!r->stops[i][0] || strlen(r->stops[i]) > 256) FAIL("stop", "each stop string needs 1 to 256 bytes");
    }
    if ((v = gl_json_get(o, "stream")) && v->type != GL_JSON_NULL) {
        if (v->type != GL_JSON_BOOL) FAIL("stream", "'stream' must be true or false");
        r->stream = v->boolean;
    }
    if ((v = gl_json_get(o, "stream_options")) && v->type != GL_JSON_NULL) {
        const gl_json *u = gl_json_get(v, "include_usage");
        if (v->type != GL_JSON_OBJECT || (u && u->type != GL_JSON_BOOL))
            FAIL("stream_options", "'stream_options' must be an object like {\"include_usage\": true}");
        r->include_usage = u && u->boolean;
    }
    if ((v = gl_json_get(o, "logprobs")) && v->type != GL_JSON_NULL) {
        if (chat) { /* chat: a boolean, with top_logprobs beside it */
            if (v->type != GL_JSON_BOOL) FAIL("logprobs", "'logprobs' must be true or false");
            r->logprobs = v->boolean;
        } else { /* completions: the number of alternatives */
            if (!whole_in(v, 0, 5)) FAIL("logprobs", "'logprobs' must be an integer from 0 to 5");
            r->logprobs = true, r->top_logprobs = (int)v->number;
        }
    }
    if ((v = gl_json_get(o, "response_format")) && v->type != GL_JSON_NULL) {
        const gl_json *type = gl_json_get(v, "type");
        if (v->type != GL_JSON_OBJECT || !type || !text(type))
            FAIL("response_format", "'response_format' must be {\"type\": \"text\" | \"json_object\" | \"json_schema\", ...}");
        if (!strcmp(type->string, "json_object")) r->format = API_FORMAT_JSON_OBJECT;
        else if (!strcmp(type->string, "json_schema")) {
            const gl_json *js = gl_json_get(v, "json_schema"), *schema = js ? gl_json_get(js, "schema") : NULL;
            if (!schema || (schema->type != GL_JSON_OBJECT && schema->type != GL_JSON_BOOL))
                FAIL("response_format", "'response_format' json_schema needs {\"json_schema\": {\"name\": ..., \"schema\": {...}}}");
            r->format = API_FORMAT_JSON_SCHEMA, r->schema = schema;
        } else if (strcmp(type->string, "text"))
            FAIL("response_format", "response_format type must be text, json_object or json_schema, got '%.40s'", type->string);
    }
    if (chat && (v = gl_json_get(o, "tools")) && v->type != GL_JSON_NULL) {
        if (v->type != GL_JSON_ARRAY || v->count > API_MAX_TOOLS)
            FAIL("tools", "'tools' must be an array of at most %d {\"type\": \"function\", \"function\": {...}}", API_MAX_TOOLS);
        for (size_t i = 0; i < v->count; i++) {
            const gl_json *t = &v->items[i], *type = gl_json_get(t, "type"), *fn = gl_json_get(t, "function");
            const gl_json *name = fn ? gl_json_get(fn, "name") : NULL, *desc = fn ? gl_json_get(fn, "description") : NULL;
            const gl_json *params = fn ? gl_json_get(fn, "parameters") : NULL;
            if (t->type != GL_JSON_OBJECT || !type || !text(type) || strcmp(type->string, "function") || !fn ||
                fn->type != GL_JSON_OBJECT || !name || !text(name))
                FAIL("tools", "tools[%zu] must be {\"type\": \"function\", \"function\": {\"name\": ..., \"parameters\": {...}}}", i);
            bool ok_name = name->string_len > 0 && name->string_len <= 64;
            for (size_t k = 0; k < name->string_len && ok_name; k++)
                ok_name = isalnum((unsigned char)name->string[k]) || name->string[k] == '_' || name->string[k] == '-';
            if (!ok_name) FAIL("tools", "tools[%zu].function.name must be 1 to 64 letters, digits, _ or -", i);
            if (desc && !text(desc)) FAIL("tools", "tools[%zu].function.description must be a string", i);
            if (params && params->type != GL_JSON_OBJECT) FAIL("tools", "tools[%zu].function.parameters must be a JSON Schema object", i);
            r->tool_names[i] = name->string, r->tool_descriptions[i] = desc ? desc->string : "";
            r->tool_parameters[i] = params;
        }
        r->n_tools = (int)v->count;
    }
    if (chat && (v = gl_json_get(o, "tool_choice")) && v->type != GL_JSON_NULL) {
        const gl_json *fn = v->type == GL_JSON_OBJECT ? gl_json_get(v, "function") : NULL;
        const gl_json *name = fn ? gl_json_get(fn, "name") : NULL;
        if (text(v) && !strcmp(v->string, "auto")) r->tool_choice = API_TOOLS_AUTO;
        else if (text(v) && !strcmp(v->string, "none")) r->tool_choice = API_TOOLS_NONE;
        else if (text(v) && !strcmp(v->string, "required")) r->tool_choice = API_TOOLS_REQUIRED;
        else if (name && text(name)) {
            r->tool_choice = API_TOOLS_FUNCTION, r->tool_choice_name = name->string;
            int k = 0;
            while (k < r->n_tools && strcmp(r->tool_names[k], name->string)) k++;
            if (k == r->n_tools) FAIL("tool_choice", "tool_choice names '%.64s', which is not in 'tools'", name->string);
        } else FAIL("tool_choice", "'tool_choice' must be \"auto\", \"none\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}");
        if (r->tool_choice != API_TOOLS_NONE && !r->n_tools) FAIL("tool_choice", "'tool_choice' needs 'tools'");
    }
    if (r->n_tools && r->format != API_FORMAT_TEXT && r->tool_choice != API_TOOLS_NONE)
        FAIL("response_format", "give 'response_format' or 'tools' (with tool_choice other than none), not both");
    if (chat && (v = gl_json_get(o, "top_logprobs")) && v->type != GL_JSON_NULL) {
        if (!whole_in(v, 0, API_MAX_TOP_LOGPROBS)) FAIL("top_logprobs", "'top_logprobs' must be an integer from 0 to 20");
        if (!r->logprobs) FAIL("top_logprobs", "'top_logprobs' needs 'logprobs': true");
        r->top_logprobs = (int)v->number;
    }
    return true;
}

bool api_parse(const char *body, size_t len, bool chat, api_request *r, char *message, size_t message_len,
               const char **param) {
    memset(r, 0, sizeof *r);
    r->chat = chat, r->max_tokens = -1, r->temperature = 1.0f, r->top_p = 1.0f;
    *param = NULL;
    char jerr[200];
    r->doc = gl_json_parse(body, len, jerr, sizeof jerr);
    if (!r->doc) return snprintf(message, message_len, "the body is not valid JSON: %s", jerr), false;
    if (r->doc->type != GL_JSON_OBJECT) return snprintf(message, message_len, "the body must be a JSON object"), false;
    return parse_fields(r->doc, chat, r, message, message_len, param);
}

void api_request_free(api_request *r) {
    for (int i = 0; i < API_MAX_MESSAGES; i++) free(r->owned[i]), r->owned[i] = NULL;
    gl_json_free(r->doc);
    r->doc = NULL;
}

/* ---- tools ---- */

void api_json_value(gl_strbuf *out, const gl_json *v) {
    switch (v->type) {
    case GL_JSON_NULL: gl_sb_puts(out, "null"); break;
    case GL_JSON_BOOL: gl_sb_puts(out, v->boolean ? "true" : "false"); break;
    case GL_JSON_NUMBER: gl_sb_printf(out, "%.17g", v->number); break;
    case GL_JSON_STRING: api_json_string(out, v->string, v->string_len); break;
    case GL_JSON_ARRAY:
    case GL_JSON_OBJECT:
        gl_sb_puts(out, v->type == GL_JSON_ARRAY ? "[" : "{");
        for (size_t i = 0; i < v->count; i++) {
            if (i) gl_sb_puts(out, ",");
            if (v->type == GL_JSON_OBJECT) api_json_string(out, v->keys[i], strlen(v->keys[i])), gl_sb_puts(out, ":");
            api_json_value(out, &v->items[i]);
        }
        gl_sb_puts(out, v->type == GL_JSON_ARRAY ? "]" : "}");
        break;
    }
}

char *api_tools_prompt(const api_request *r) {
    gl_strbuf b = {0};
    gl_sb_puts(&b, "You can call tools. To call one, reply with one JSON object only: {\"name\": TOOL, \"arguments\": {...}}.");
    if (r->tool_choice == API_TOOLS_AUTO) gl_sb_puts(&b, " If no tool is needed, answer in plain text.");
    gl_sb_puts(&b, " Tools:");
    for (int k = 0; k < r->n_tools; k++) {
        gl_sb_printf(&b, "\n- %s", r->tool_names[k]);
        if (r->tool_parameters[k]) gl_sb_puts(&b, " "), api_json_value(&b, r->tool_parameters[k]);
        if (r->tool_descriptions[k][0]) gl_sb_printf(&b, ": %s", r->tool_descriptions[k]);
    }
    return b.p;
}

char *api_call_schema(const api_request *r) {
    gl_strbuf b = {0};
    gl_sb_puts(&b, "{\"anyOf\": [");
    int n = 0;
    for (int k = 0; k < r->n_tools; k++) {
        if (r->tool_choice == API_TOOLS_FUNCTION && strcmp(r->tool_names[k], r->tool_choice_name)) continue;
        gl_sb_puts(&b, n++ ? ", " : "");
        gl_sb_puts(&b, "{\"type\": \"object\", \"properties\": {\"name\": {\"const\": ");
        api_json_string(&b, r->tool_names[k], strlen(r->tool_names[k]));
        gl_sb_puts(&b, "}, \"arguments\": ");
        if (r->tool_parameters[k]) api_json_value(&b, r->tool_parameters[k]);
        else gl_sb_puts(&b, "{\"type\": \"object\"}");
        gl_sb_puts(&b, "}, \"required\": [\"name\", \"arguments\"], \"additionalProperties\": false}");
    }
    gl_sb_puts(&b, "]}");
    return b.p;
}
