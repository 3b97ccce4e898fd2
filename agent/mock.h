/* Two JSON services on loopback for the agent's HTTP tools, started in the process that uses them: a weather-like
 * API (GET /weather?city=Paris) and a finance-like API (GET /quote?symbol=AAPL). Their answers come from fixed
 * tables (made-up values, the same every run). Faults can be injected per service: latency, an HTTP 500, no answer
 * until the client gives up (a timeout), or a body that is not JSON. */
#ifndef GRADLAB_AGENT_MOCK_H
#define GRADLAB_AGENT_MOCK_H

#include <stdbool.h>
#include <stddef.h>

typedef enum { MOCK_OK, MOCK_ERROR_500, MOCK_TIMEOUT, MOCK_GARBAGE } mock_fault;

typedef struct mock_services mock_services;

/* Both services on ephemeral loopback ports; NULL with a message. hang_ms: how long a MOCK_TIMEOUT answer waits. */
mock_services *mock_start(int hang_ms, char *err, size_t err_len);
void mock_stop(mock_services *m);
int mock_weather_port(const mock_services *m);
int mock_finance_port(const mock_services *m);
/* service: "weather" or "finance"; false if the name is neither */
bool mock_set_fault(mock_services *m, const char *service, mock_fault fault, int latency_ms);
bool mock_fault_parse(const char *name, mock_fault *out); /* ok, 500, timeout, garbage */
long mock_requests(mock_services *m); /* requests answered so far, both services */

#endif
