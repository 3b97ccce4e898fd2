/* The mock services (mock.h) on libmicrohttpd, one thread per connection so a hanging answer delays no other. */
#include "mock.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

typedef struct {
    mock_fault fault;
    int latency_ms;
} service_state;

struct mock_services;
typedef struct {
    struct mock_services *m;
    int which; /* 0 weather, 1 finance */
} service_ctx;

struct mock_services {
    struct MHD_Daemon *weather, *finance;
    service_ctx ctx[2];
    pthread_mutex_t lock;
    service_state state[2]; /* weather, finance */
    int hang_ms;
    long requests;
};

static const struct {
    const char *city, *condition;
    int temp_c, humidity;
} CITIES[] = {
    {"Paris", "cloudy", 14, 71},   {"London", "rain", 11, 82},      {"Tokyo", "clear", 19, 55},
    {"New York", "windy", 9, 48},  {"Sydney", "sunny", 24, 60},     {"Berlin", "cloudy", 7, 77},
    {"Cairo", "sunny", 28, 30},    {"Toronto", "snow", -3, 85},     {"Madrid", "sunny", 17, 40},
    {"Mumbai", "humid", 31, 78},   {"Moscow", "snow", -8, 80},      {"Rome", "clear", 16, 58},
};

static const struct {
    const char *symbol, *name;
    double price, change_pct;
} QUOTES[] = {
    {"AAPL", "Apple", 187.42, 0.8},       {"MSFT", "Microsoft", 402.10, -0.4}, {"GOOG", "Alphabet", 141.80, 1.2},
    {"TSLA", "Tesla", 245.30, -2.1},      {"NVDA", "NVIDIA", 495.22, 3.4},     {"AMZN", "Amazon", 151.94, 0.2},
    {"META", "Meta", 326.49, -1.0},       {"IBM", "IBM", 160.35, 0.1},
};

static void sleep_ms(int ms) {
    struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) != 0) {
    }
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *body) {
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **state) {
    (void)version, (void)upload, (void)upload_size;
    if (!*state) { /* the first call for a request only announces it */
        *state = (void *)1;
        return MHD_YES;
    }
    const service_ctx *sc = cls;
    mock_services *m = sc->m;
    bool weather = sc->which == 0;
    pthread_mutex_lock(&m->lock);
    service_state st = m->state[weather ? 0 : 1];
    m->requests++;
    int hang = m->hang_ms;
    pthread_mutex_unlock(&m->lock);
    if (st.latency_ms > 0) sleep_ms(st.latency_ms);
    if (strcmp(method, "GET")) return reply(c, 405, "{\"error\": \"only GET\"}");
    if (st.fault == MOCK_TIMEOUT) {
        sleep_ms(hang);
        return reply(c, 504, "{\"error\": \"upstream timeout\"}");
    }
    if (st.fault == MOCK_ERROR_500) return reply(c, 500, "{\"error\": \"internal server error\"}");
    if (st.fault == MOCK_GARBAGE) return reply(c, 200, "<html><body>502 Bad Gateway</body></html> {\"temp");
    char body[512];
    if (weather) {
        if (strcmp(url, "/weather")) return reply(c, 404, "{\"error\": \"unknown path; use /weather?city=NAME\"}");
        const char *city = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "city");
        if (!city) return reply(c, 400, "{\"error\": \"missing city\"}");
        for (size_t i = 0; i < sizeof CITIES / sizeof *CITIES; i++)
            if (!strcasecmp(city, CITIES[i].city)) {
                snprintf(body, sizeof body,
                         "{\"city\": \"%s\", \"temperature_c\": %d, \"condition\": \"%s\", \"humidity_pct\": %d}",
                         CITIES[i].city, CITIES[i].temp_c, CITIES[i].condition, CITIES[i].humidity);
                return reply(c, 200, body);
            }
        return reply(c, 404, "{\"error\": \"unknown city\"}");
    }
    if (strcmp(url, "/quote")) return reply(c, 404, "{\"error\": \"unknown path; use /quote?symbol=TICKER\"}");
    const char *sym = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "symbol");
    if (!sym) return reply(c, 400, "{\"error\": \"missing symbol\"}");
    for (size_t i = 0; i < sizeof QUOTES / sizeof *QUOTES; i++)
        if (!strcasecmp(sym, QUOTES[i].symbol)) {
            snprintf(body, sizeof body,
                     "{\"symbol\": \"%s\", \"name\": \"%s\", \"price\": %.2f, \"currency\": \"USD\", \"change_pct\": %.1f}",
                     QUOTES[i].symbol, QUOTES[i].name, QUOTES[i].price, QUOTES[i].change_pct);
            return reply(c, 200, body);
        }
    return reply(c, 404, "{\"error\": \"unknown symbol\"}");
}

static struct MHD_Daemon *start_one(mock_services *m, int which) {
    m->ctx[which].m = m, m->ctx[which].which = which;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0,
                            NULL, NULL, handle, &m->ctx[which], MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                            MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
}

mock_services *mock_start(int hang_ms, char *err, size_t err_len) {
    mock_services *m = calloc(1, sizeof *m);
    pthread_mutex_init(&m->lock, NULL);
    m->hang_ms = hang_ms;
    m->weather = start_one(m, 0);
    m->finance = start_one(m, 1);
    if (!m->weather || !m->finance) {
        snprintf(err, err_len, "cannot start the mock services on loopback");
        mock_stop(m);
        return NULL;
    }
    return m;
}

void mock_stop(mock_services *m) {
    if (!m) return;
    if (m->weather) MHD_stop_daemon(m->weather);
    if (m->finance) MHD_stop_daemon(m->finance);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static int port_of(struct MHD_Daemon *d) {
    const union MHD_DaemonInfo *i = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    return i ? (int)i->port : 0;
}

int mock_weather_port(const mock_services *m) { return port_of(m->weather); }
int mock_finance_port(const mock_services *m) { return port_of(m->finance); }

bool mock_set_fault(mock_services *m, const char *service, mock_fault fault, int latency_ms) {
    int k = !strcmp(service, "weather") ? 0 : !strcmp(service, "finance") ? 1 : -1;
    if (k < 0) return false;
    pthread_mutex_lock(&m->lock);
    m->state[k].fault = fault, m->state[k].latency_ms = latency_ms;
    pthread_mutex_unlock(&m->lock);
    return true;
}

bool mock_fault_parse(const char *name, mock_fault *out) {
    static const char *const names[] = {"ok", "500", "timeout", "garbage"};
    for (int k = 0; k < 4; k++)
        if (!strcmp(name, names[k])) return *out = (mock_fault)k, true;
    return false;
}

long mock_requests(mock_services *m) {
    pthread_mutex_lock(&m->lock);
    long n = m->requests;
    pthread_mutex_unlock(&m->lock);
    return n;
}
