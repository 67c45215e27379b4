/* caresignal metrics server over libmicrohttpd (see metrics_server.h). */
#define _GNU_SOURCE
#include "caresignal/metrics_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "caresignal/config.h"
#include "caresignal/log.h"
#include "caresignal/metrics.h"
#include "caresignal/signals.h"

struct cs_metrics_server {
    struct MHD_Daemon *d;
    int64_t live_max_ms;
    int port;
    cs_series_t *ready, *live, *scrapes, *turn, *parts[CS_HEALTH_PARTS];
};

static void cs_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[256];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n')
        msg[--n] = '\0';
    cs_log_warn("metrics server", "{s:s}", "detail", msg);
}

static enum MHD_Result cs_reply(struct MHD_Connection *c, unsigned status, char *body,
                                size_t len, const char *type)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result cs_reply_text(struct MHD_Connection *c, unsigned status,
                                     const char *text)
{
    char *body = NULL;
    if (asprintf(&body, "%s\n", text) < 0)
        return MHD_NO;
    return cs_reply(c, status, body, strlen(body), "text/plain; charset=utf-8");
}

static enum MHD_Result cs_serve(void *cls, struct MHD_Connection *c, const char *url,
                                const char *method, const char *version,
                                const char *upload, size_t *upload_size, void **state)
{
    cs_metrics_server_t *s = cls;
    (void)version;
    (void)upload;
    (void)upload_size;
    (void)state;
    if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
        return cs_reply_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD");
    char why[160];
    /* the health gauges are worked out when asked, so /metrics and the probes agree */
    int64_t now = cs_mono_ms(), last = cs_health_last_turn();
    int live = cs_health_live(now, s->live_max_ms, why, sizeof(why));
    cs_series_set(s->live, live);
    if (last >= 0) /* the loop keeps a monotonic time; shown as wall-clock time */
        cs_series_set(s->turn, (double)(cs_wall_ms() - (now - last)) / 1000.0);
    if (!strcmp(url, "/healthz"))
        return cs_reply_text(c, live ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, why);
    int ready = cs_health_ready(why, sizeof(why));
    cs_series_set(s->ready, ready);
    for (int i = 0; i < CS_HEALTH_PARTS; i++) {
        int v = cs_health_get((cs_health_part_t)i);
        if (v >= 0) /* a part the program does not have is not shown */
            cs_series_set(s->parts[i], v);
    }
    if (!strcmp(url, "/readyz"))
        return cs_reply_text(c, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, why);
    if (!strcmp(url, "/metrics")) {
        cs_series_add(s->scrapes, 1);
        size_t len = 0;
        char *body = cs_metrics_render(&len);
        if (!body)
            return cs_reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
        return cs_reply(c, MHD_HTTP_OK, body, len,
                        "text/plain; version=0.0.4; charset=utf-8");
    }
    return cs_reply_text(c, MHD_HTTP_NOT_FOUND, "not found: /metrics, /healthz, /readyz");
}

/* A listening socket on \p ai, or -1 with errno: bound here rather than by
 * libmicrohttpd, so that a failure can say why (the address in use, not this machine's). */
static int cs_listen_socket(const struct addrinfo *ai)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ai->ai_family == AF_INET6) /* "[::]:port" is IPv6 only, as it says */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 64)) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int cs_socket_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len))
        return -1;
    return ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                          : ((struct sockaddr_in *)&ss)->sin_port);
}

cs_metrics_server_t *cs_metrics_server_start(const char *listen, int64_t live_max_ms,
                                             char *errstr, size_t errstr_size)
{
    char host[256];
    int port;
    if (cs_config_parse_listen(listen, host, sizeof(host), &port)) {
        snprintf(errstr, errstr_size,
                 "config key 'metrics.listen': expected host:port, got '%s'", listen);
        return NULL;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char service[8];
    snprintf(service, sizeof(service), "%d", port);
    int gai = getaddrinfo(*host ? host : NULL, service, &hints, &ai);
    if (gai) {
        snprintf(errstr, errstr_size, "config key 'metrics.listen': cannot resolve '%s': %s",
                 host, gai_strerror(gai));
        return NULL;
    }
    cs_metrics_server_t *s = calloc(1, sizeof(*s));
    if (!s) {
        freeaddrinfo(ai);
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    s->live_max_ms = live_max_ms;
    s->ready = cs_metric_at(cs_metric(CS_METRIC_GAUGE, "caresignal_ready",
                                      "1 while /readyz answers 200: partitions assigned, "
                                      "broker and Redis reachable",
                                      NULL));
    s->live = cs_metric_at(cs_metric(CS_METRIC_GAUGE, "caresignal_live",
                                     "1 while /healthz answers 200: the loop is turning",
                                     NULL));
    cs_metric_t *turn = cs_metric(CS_METRIC_GAUGE, "caresignal_last_turn_timestamp_seconds",
                                  "when the consumer loop last turned", NULL);
    s->turn = cs_metric_at(turn);
    cs_metric_hide_all(turn); /* until the first turn */
    s->scrapes = cs_metric_at(cs_metric(CS_METRIC_COUNTER,
                                        "caresignal_metrics_scrapes_total",
                                        "scrapes of /metrics served", NULL));
    static const char *const part_names[CS_HEALTH_PARTS][2] = {
        {"caresignal_group_assigned", "1 once the consumer group gave this process its "
                                      "assignment (0 during a rebalance)"},
        {"caresignal_kafka_up", "1 while a broker answers"},
        {"caresignal_redis_up", "1 while Redis answers (scorer: the state store; pager: "
                                "alert de-duplication)"}};
    for (int i = 0; i < CS_HEALTH_PARTS; i++) {
        cs_metric_t *m = cs_metric(CS_METRIC_GAUGE, part_names[i][0], part_names[i][1], NULL);
        s->parts[i] = cs_metric_at(m);
        cs_metric_hide_all(m); /* until the part is known */
    }
    int fd = cs_listen_socket(ai);
    int family = ai->ai_family;
    freeaddrinfo(ai);
    if (fd < 0) {
        snprintf(errstr, errstr_size, "config key 'metrics.listen': cannot listen on %s: %s",
                 listen, strerror(errno));
        free(s);
        return NULL;
    }
    s->port = cs_socket_port(fd);
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    if (family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* the logger first: libmicrohttpd logs with its own before it reads the option */
    s->d = MHD_start_daemon(flags, 0, NULL, NULL, cs_serve, s, MHD_OPTION_EXTERNAL_LOGGER,
                            cs_mhd_log, NULL, MHD_OPTION_LISTEN_SOCKET, fd,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
    if (!s->d) {
        close(fd);
        snprintf(errstr, errstr_size,
                 "config key 'metrics.listen': cannot serve on %s (libmicrohttpd refused: "
                 "see the log line before)",
                 listen);
        free(s);
        return NULL;
    }
    cs_log_info("serving metrics", "{s:s, s:i}", "listen", listen, "port", s->port);
    return s;
}

int cs_metrics_server_port(const cs_metrics_server_t *s)
{
    return s->port;
}

void cs_metrics_server_stop(cs_metrics_server_t *s)
{
    if (!s)
        return;
    MHD_stop_daemon(s->d);
    free(s);
}
