/* The agent's tools (tools.h). */
#include "tools.h"

#include "api.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

const agent_tool_spec AGENT_TOOLS[] = {
    {"calculator", "evaluates an arithmetic expression exactly (+ - * / % ^, parentheses, sqrt, abs, round)",
     "{\"type\":\"object\",\"properties\":{\"expression\":{\"type\":\"string\",\"maxLength\":80}},"
     "\"required\":[\"expression\"],\"additionalProperties\":false}"},
    {"convert_units", "converts a value between units of length, mass, volume, time or temperature",
     "{\"type\":\"object\",\"properties\":{\"value\":{\"type\":\"number\"},\"from\":{\"type\":\"string\",\"maxLength\":20},"
     "\"to\":{\"type\":\"string\",\"maxLength\":20}},\"required\":[\"value\",\"from\",\"to\"],\"additionalProperties\":false}"},
    {"search_docs", "searches the FastAPI documentation and returns the best sections",
     "{\"type\":\"object\",\"properties\":{\"query\":{\"type\":\"string\",\"maxLength\":100}},"
     "\"required\":[\"query\"],\"additionalProperties\":false}"},
    {"read_section", "reads a section of a documentation page found by search_docs",
     "{\"type\":\"object\",\"properties\":{\"page\":{\"type\":\"string\",\"maxLength\":100},"
     "\"section\":{\"type\":\"string\",\"maxLength\":100}},\"required\":[\"page\"],\"additionalProperties\":false}"},
    {"get_weather", "the current weather of a city",
     "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\",\"maxLength\":40}},"
     "\"required\":[\"city\"],\"additionalProperties\":false}"},
    {"get_stock_price", "the latest price of a stock by its ticker symbol",
     "{\"type\":\"object\",\"properties\":{\"symbol\":{\"type\":\"string\",\"maxLength\":10}},"
     "\"required\":[\"symbol\"],\"additionalProperties\":false}"},
    {"final_answer", "gives the answer to the user and ends the task",
     "{\"type\":\"object\",\"properties\":{\"answer\":{\"type\":\"string\",\"maxLength\":200}},"
     "\"required\":[\"answer\"],\"additionalProperties\":false}"},
};
const int AGENT_N_TOOLS = (int)(sizeof AGENT_TOOLS / sizeof AGENT_TOOLS[0]);

/* ---------------------------------------------------------------- calculator: recursive descent on doubles */

typedef struct {
    const char *s;
    size_t i;
    char *err;
    size_t err_len;
    bool failed;
} calc;

static double calc_fail(calc *c, const char *what) {
    if (!c->failed) snprintf(c->err, c->err_len, "%s at character %zu of the expression", what, c->i + 1);
    c->failed = true;
    return 0;
}

static void calc_space(calc *c) {
    while (c->s[c->i] == ' ' || c->s[c->i] == '\t') c->i++;
}

static double calc_expr(calc *c, int depth);

static double calc_primary(calc *c, int depth) {
    calc_space(c);
    if (depth > 64) return calc_fail(c, "parentheses nested too deeply");
    char ch = c->s[c->i];
    if (ch == '(') {
        c->i++;
        double v = calc_expr(c, depth + 1);
        calc_space(c);
        if (c->s[c->i] != ')') return calc_fail(c, "expected ')'");
        c->i++;
        return v;
    }
    if (isdigit((unsigned char)ch) || ch == '.') {
        char *end;
        double v = strtod(c->s + c->i, &end);
        if (end == c->s + c->i) return calc_fail(c, "a malformed number");
        c->i = (size_t)(end - c->s);
        return v;
    }
    static const char *const fns[] = {"sqrt", "abs", "round"};
    for (int k = 0; k < 3; k++) {
        size_t n = strlen(fns[k]);
        if (!strncmp(c->s + c->i, fns[k], n)) {
            c->i += n;
            calc_space(c);
            if (c->s[c->i] != '(') return calc_fail(c, "expected '(' after a function name");
            double v = calc_primary(c, depth + 1);
            if (k == 0 && v < 0) return calc_fail(c, "the square root of a negative number");
            return k == 0 ? sqrt(v) : k == 1 ? fabs(v) : round(v);
        }
    }
    if (!ch) return calc_fail(c, "the expression ends early");
    return calc_fail(c, "an unexpected character");
}

static double calc_unary(calc *c, int depth) {
    calc_space(c);
    if (c->s[c->i] == '-') return c->i++, -calc_unary(c, depth + 1);
    if (c->s[c->i] == '+') return c->i++, calc_unary(c, depth + 1);
    double base = calc_primary(c, depth);
    calc_space(c);
    if (c->s[c->i] == '^' || (c->s[c->i] == '*' && c->s[c->i + 1] == '*')) { /* right-associative power */
        c->i += c->s[c->i] == '^' ? 1 : 2;
        return pow(base, calc_unary(c, depth + 1));
    }
    return base;
}

static double calc_term(calc *c, int depth) {
    double v = calc_unary(c, depth);
    for (;;) {
        calc_space(c);
        char op = c->s[c->i];
        if ((op != '*' && op != '/' && op != '%' && op != 'x') || c->failed) return v;
        c->i++;
        double r = calc_unary(c, depth);
        if ((op == '/' || op == '%') && r == 0) return calc_fail(c, "division by zero");
        v = op == '/' ? v / r : op == '%' ? fmod(v, r) : v * r;
    }
}

static double calc_expr(calc *c, int depth) {
    double v = calc_term(c, depth);
    for (;;) {
        calc_space(c);
        char op = c->s[c->i];
        if ((op != '+' && op != '-') || c->failed) return v;
        c->i++;
        double r = calc_term(c, depth);
        v = op == '+' ? v + r : v - r;
    }
}

bool calc_eval(const char *expr, double *value, char *err, size_t err_len) {
    calc c = {.s = expr, .err = err, .err_len = err_len};
    double v = calc_expr(&c, 0);
    calc_space(&c);
    if (!c.failed && c.s[c.i]) calc_fail(&c, "an unexpected character");
    if (!c.failed && !isfinite(v)) calc_fail(&c, "a result that is not a finite number");
    *value = v;
    return !c.failed;
}

/* ---------------------------------------------------------------- units */

typedef struct {
    const char *names; /* space-separated spellings */
    char dim;          /* L length, M mass, V volume, T time, K temperature */
    double to_si, offset; /* si = value * to_si + offset */
} unit;

static const unit UNITS[] = {
    {"m meter meters metre metres", 'L', 1, 0},          {"km kilometer kilometers kilometre kilometres", 'L', 1000, 0},
    {"cm centimeter centimeters", 'L', 0.01, 0},         {"mm millimeter millimeters", 'L', 0.001, 0},
    {"mi mile miles", 'L', 1609.344, 0},                 {"ft foot feet", 'L', 0.3048, 0},
    {"in inch inches", 'L', 0.0254, 0},                  {"yd yard yards", 'L', 0.9144, 0},
    {"kg kilogram kilograms kilo kilos", 'M', 1, 0},     {"g gram grams", 'M', 0.001, 0},
    {"lb lbs pound pounds", 'M', 0.45359237, 0},         {"oz ounce ounces", 'M', 0.028349523125, 0},
    {"l liter liters litre litres", 'V', 1, 0},          {"ml milliliter milliliters millilitre millilitres", 'V', 0.001, 0},
    {"gal gallon gallons", 'V', 3.785411784, 0},         {"s sec second seconds", 'T', 1, 0},
    {"min minute minutes", 'T', 60, 0},                  {"h hr hour hours", 'T', 3600, 0},
    {"day days", 'T', 86400, 0},                         {"c celsius °c degc", 'K', 1, 273.15},
    {"f fahrenheit °f degf", 'K', 5.0 / 9.0, 273.15 - 32 * 5.0 / 9.0}, {"k kelvin", 'K', 1, 0},
};

static const unit *find_unit(const char *name) {
    char low[32];
    size_t n = 0;
    while (isspace((unsigned char)*name)) name++;
    for (; name[n] && n + 1 < sizeof low; n++) low[n] = (char)tolower((unsigned char)name[n]);
    while (n && isspace((unsigned char)low[n - 1])) n--;
    low[n] = 0;
    if (!n) return NULL;
    for (size_t u = 0; u < sizeof UNITS / sizeof *UNITS; u++) {
        const char *p = UNITS[u].names;
        while (*p) {
            size_t len = strcspn(p, " ");
            if (len == n && !strncmp(p, low, n)) return &UNITS[u];
            p += len + (p[len] == ' ');
        }
    }
    return NULL;
}

bool units_convert(double value, const char *from, const char *to, double *out, char *err, size_t err_len) {
    const unit *a = find_unit(from), *b = find_unit(to);
    if (!a || !b) {
        snprintf(err, err_len, "unknown unit '%s' (known: m km cm mm mi ft in yd, kg g lb oz, l ml gal, s min h day, "
                               "celsius fahrenheit kelvin)", !a ? from : to);
        return false;
    }
    if (a->dim != b->dim) {
        snprintf(err, err_len, "cannot convert %s to %s: they measure different things", from, to);
        return false;
    }
    *out = (value * a->to_si + a->offset - b->offset) / b->to_si;
    return true;
}

bool units_same(const char *a, const char *b) {
    const unit *x = find_unit(a);
    return x && x == find_unit(b);
}

/* ---------------------------------------------------------------- a small HTTP/1.0 client for loopback */

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

bool http_get(int port, const char *path, int timeout_ms, int *status, char **body, char *err, size_t err_len) {
    *body = NULL, *status = 0;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return snprintf(err, err_len, "cannot open a socket: %s", strerror(errno)), false;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    double deadline = now_ms() + timeout_ms;
    bool ok = false;
    char req[1024];
    int rl = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
    gl_strbuf resp = {0};
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
        snprintf(err, err_len, "cannot connect to port %d: %s", port, strerror(errno));
        goto out;
    }
    size_t sent = 0;
    for (;;) {
        int left = (int)(deadline - now_ms());
        if (left <= 0) {
            snprintf(err, err_len, "no answer within %d ms", timeout_ms);
            goto out;
        }
        struct pollfd p = {.fd = fd, .events = sent < (size_t)rl ? POLLOUT : POLLIN};
        int r = poll(&p, 1, left);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) continue; /* the deadline check above ends it */
        if (sent < (size_t)rl) {
            ssize_t w = send(fd, req + sent, (size_t)rl - sent, MSG_NOSIGNAL);
            if (w < 0 && errno != EAGAIN) {
                snprintf(err, err_len, "cannot send to port %d: %s", port, strerror(errno));
                goto out;
            }
            if (w > 0) sent += (size_t)w;
            continue;
        }
        char buf[4096];
        ssize_t got = recv(fd, buf, sizeof buf, 0);
        if (got < 0 && errno == EAGAIN) continue;
        if (got < 0) {
            snprintf(err, err_len, "reading from port %d: %s", port, strerror(errno));
            goto out;
        }
        if (got == 0) break;
        gl_sb_put(&resp, buf, (size_t)got);
        if (resp.len > (1 << 20)) {
            snprintf(err, err_len, "the answer is larger than 1 MB");
            goto out;
        }
    }
    if (!resp.p || sscanf(resp.p, "HTTP/%*d.%*d %d", status) != 1) {
        snprintf(err, err_len, "not an HTTP answer");
        goto out;
    }
    char *sep = strstr(resp.p, "\r\n\r\n");
    *body = strdup(sep ? sep + 4 : "");
    ok = true;
out:
    gl_sb_free(&resp);
    close(fd);
    return ok;
}

/* ---------------------------------------------------------------- the tools */

const char *agent_json_text(const gl_json *args, const char *key) {
    const gl_json *v = gl_json_get(args, key);
    return v && v->type == GL_JSON_STRING ? v->string : NULL;
}

void agent_tools_init(agent_tools *t, const char *docs_db, int weather_port, int finance_port, int timeout_ms) {
    memset(t, 0, sizeof *t);
    t->weather_port = weather_port, t->finance_port = finance_port, t->timeout_ms = timeout_ms;
    if (!docs_db) snprintf(t->docs_error, sizeof t->docs_error, "no documentation index was given (--docs-db)");
    else t->have_docs = search_open(&t->docs, docs_db, "bm25", NULL, t->docs_error, sizeof t->docs_error);
}

void agent_tools_free(agent_tools *t) {
    if (t->have_docs) search_close(&t->docs);
    t->have_docs = false;
}

/* s as a JSON string, cut to at most max bytes (a character cut in two becomes U+FFFD) and on one line */
static void put_json_text(gl_strbuf *out, const char *s, size_t max) {
    size_t n = strnlen(s, max);
    char *line = malloc(n + 1);
    for (size_t i = 0; i < n; i++) line[i] = s[i] == '\n' ? ' ' : s[i];
    api_json_string(out, line, n);
    free(line);
}

static bool error_obs(gl_strbuf *out, const char *fmt, const char *detail) {
    char msg[512];
    snprintf(msg, sizeof msg, fmt, detail);
    gl_sb_puts(out, "{\"error\": ");
    put_json_text(out, msg, sizeof msg);
    gl_sb_puts(out, "}");
    return false;
}

static void url_escape(const char *s, char *out, size_t n) {
    size_t k = 0;
    for (; *s && k + 4 < n; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c == '-' || c == '_' || c == '.') out[k++] = (char)c;
        else k += (size_t)snprintf(out + k, n - k, "%%%02X", c);
    }
    out[k] = 0;
}

/* a JSON service's answer as the observation: its JSON when it is JSON and 200, else an error that says what came */
static bool service_call(agent_tools *t, int port, const char *what, const char *path, gl_strbuf *out) {
    if (!port) return error_obs(out, "the %s service is not running", what);
    int status;
    char *body, err[256];
    if (!http_get(port, path, t->timeout_ms, &status, &body, err, sizeof err)) {
        char msg[400];
        snprintf(msg, sizeof msg, "the %s service failed: %s", what, err);
        return error_obs(out, "%s", msg);
    }
    char jerr[128];
    gl_json *doc = gl_json_parse(body, strlen(body), jerr, sizeof jerr);
    bool ok = false;
    if (!doc) {
        char msg[300];
        snprintf(msg, sizeof msg, "the %s service sent something that is not JSON (HTTP %d)", what, status);
        error_obs(out, "%s", msg);
    } else if (status != 200) {
        const char *e = agent_json_text(doc, "error");
        char msg[400];
        snprintf(msg, sizeof msg, "the %s service answered HTTP %d: %s", what, status, e ? e : "no reason given");
        error_obs(out, "%s", msg);
    } else {
        gl_sb_puts(out, body);
        ok = true;
    }
    gl_json_free(doc);
    free(body);
    return ok;
}

/* {"page": ..., "section": ..., KEY: the chunk's text cut to max bytes} */
static void put_section(agent_tools *t, const store_chunk *c, const char *key, size_t max, gl_strbuf *out) {
    gl_sb_puts(out, "{\"page\": ");
    put_json_text(out, t->docs.st.pages[c->page].path, 200);
    gl_sb_puts(out, ", \"section\": ");
    put_json_text(out, c->heading ? c->heading : "", 120);
    gl_sb_printf(out, ", \"%s\": ", key);
    put_json_text(out, c->text, max);
    gl_sb_puts(out, "}");
}

static bool run_search(agent_tools *t, const char *query, gl_strbuf *out) {
    if (!t->have_docs) return error_obs(out, "search_docs is unavailable: %s", t->docs_error);
    search_hit *hits = malloc((size_t)(t->docs.st.n_pages ? t->docs.st.n_pages : 1) * sizeof *hits);
    int n = search_rank_pages(&t->docs, "bm25", query, hits);
    gl_sb_puts(out, "{\"results\": [");
    for (int k = 0; k < n && k < 3; k++) {
        if (k) gl_sb_puts(out, ", ");
        put_section(t, &t->docs.st.chunks[hits[k].chunk], "snippet", 240, out);
    }
    gl_sb_puts(out, "]}");
    free(hits);
    return true;
}

bool text_has_nocase(const char *hay, const char *needle) {
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (!strncasecmp(hay, needle, n)) return true;
    return n == 0;
}

static bool run_read(agent_tools *t, const char *page, const char *section, gl_strbuf *out) {
    if (!t->have_docs) return error_obs(out, "read_section is unavailable: %s", t->docs_error);
    int first = -1, best = -1;
    for (int i = 0; i < t->docs.st.n_chunks && best < 0; i++) {
        const store_chunk *c = &t->docs.st.chunks[i];
        if (!text_has_nocase(t->docs.st.pages[c->page].path, page)) continue;
        if (first < 0) first = i;
        if (section && c->heading && text_has_nocase(c->heading, section)) best = i;
    }
    if (best < 0) best = first;
    if (best < 0) return error_obs(out, "no page matches '%s': use a page from search_docs", page);
    put_section(t, &t->docs.st.chunks[best], "text", 1200, out);
    return true;
}

bool agent_tool_run(agent_tools *t, const char *name, const gl_json *args, gl_strbuf *out) {
    char err[256], path[512], esc[256];
    if (!args || args->type != GL_JSON_OBJECT) return error_obs(out, "the arguments of %s must be an object", name);
    if (!strcmp(name, "calculator")) {
        const char *e = agent_json_text(args, "expression");
        if (!e) return error_obs(out, "%s", "calculator needs a string 'expression'");
        double v;
        if (!calc_eval(e, &v, err, sizeof err)) return error_obs(out, "%s", err);
        gl_sb_printf(out, "{\"result\": %.12g}", v);
        return true;
    }
    if (!strcmp(name, "convert_units")) {
        const gl_json *v = gl_json_get(args, "value");
        const char *from = agent_json_text(args, "from"), *to = agent_json_text(args, "to");
        if (!v || v->type != GL_JSON_NUMBER || !from || !to)
            return error_obs(out, "%s", "convert_units needs a number 'value' and strings 'from' and 'to'");
        double r;
        if (!units_convert(v->number, from, to, &r, err, sizeof err)) return error_obs(out, "%s", err);
        gl_sb_printf(out, "{\"value\": %.6g, \"unit\": ", r);
        put_json_text(out, to, 20);
        gl_sb_puts(out, "}");
        return true;
    }
    if (!strcmp(name, "search_docs")) {
        const char *q = agent_json_text(args, "query");
        if (!q || !*q) return error_obs(out, "%s", "search_docs needs a non-empty 'query'");
        return run_search(t, q, out);
    }
    if (!strcmp(name, "read_section")) {
        const char *page = agent_json_text(args, "page");
        if (!page || !*page) return error_obs(out, "%s", "read_section needs a 'page'");
        return run_read(t, page, agent_json_text(args, "section"), out);
    }
    if (!strcmp(name, "get_weather")) {
        const char *city = agent_json_text(args, "city");
        if (!city || !*city) return error_obs(out, "%s", "get_weather needs a 'city'");
        url_escape(city, esc, sizeof esc);
        snprintf(path, sizeof path, "/weather?city=%s", esc);
        return service_call(t, t->weather_port, "weather", path, out);
    }
    if (!strcmp(name, "get_stock_price")) {
        const char *sym = agent_json_text(args, "symbol");
        if (!sym || !*sym) return error_obs(out, "%s", "get_stock_price needs a 'symbol'");
        url_escape(sym, esc, sizeof esc);
        snprintf(path, sizeof path, "/quote?symbol=%s", esc);
        return service_call(t, t->finance_port, "finance", path, out);
    }
    return error_obs(out, "there is no tool named '%s'", name);
}
