/* caresignal metrics server: /metrics, /healthz and /readyz over HTTP (libmicrohttpd, on
 * a thread of its own), on metrics.listen (docs/operations.md). */
#ifndef CARESIGNAL_METRICS_SERVER_H
#define CARESIGNAL_METRICS_SERVER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cs_metrics_server cs_metrics_server_t;

/**
 * Listens on \p listen ("host:port", "[v6]:port"; port 0 picks a free one) and serves:
 * - GET /metrics: cs_metrics_render, text/plain; version=0.0.4;
 * - GET /healthz: 200 while the loop turned within \p live_max_ms, else 503;
 * - GET /readyz: 200 while cs_health_ready, else 503;
 * each health answer with its one-line reason as the body. HEAD too; other methods 405,
 * other paths 404. @returns NULL with \p errstr (the address cannot be parsed or bound).
 */
cs_metrics_server_t *cs_metrics_server_start(const char *listen, int64_t live_max_ms,
                                             char *errstr, size_t errstr_size);

/** The port bound (the one chosen when listen said 0). */
int cs_metrics_server_port(const cs_metrics_server_t *s);

/** Stops serving and frees. NULL is a no-op. */
void cs_metrics_server_stop(cs_metrics_server_t *s);

#ifdef __cplusplus
}
#endif
#endif
