/* caresignal-devbroker's control protocol: parses a command, calls the mock cluster's
 * fault-injection API, answers one line and logs what was injected. */
#include "devbroker_control.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "caresignal/cli.h"
#include "caresignal/log.h"

struct cs_devctl {
    rd_kafka_mock_cluster_t *mc;
    int brokers;
    /* indexed by broker id 1..brokers, as injected through this controller */
    int *down;
    int *rtt_ms;
};

/*
 * The Kafka protocol's api keys (librdkafka's RD_KAFKAP_*, which its public headers do
 * not export), and what librdkafka 2.0.2's mock does with a request error injected for
 * each. Its request handlers (src/rdkafka_mock_handlers.c) take the next injected error
 * for every API they serve except Metadata, which only answers topic errors (see
 * topic-error); the APIs marked UNSERVED have no handler at all. Queuing errors that no
 * request will ever take would look like a fault that "did nothing", so it is refused.
 */
typedef enum cs_devctl_mock {
    CS_MOCK_INJECTS,
    CS_MOCK_NO_INJECT,
    CS_MOCK_UNSERVED,
} cs_devctl_mock_t;

typedef struct cs_devctl_api {
    const char *name;
    int16_t key;
    cs_devctl_mock_t mock;
} cs_devctl_api_t;

static const cs_devctl_api_t cs_devctl_apis[] = {
    {"Produce", 0, CS_MOCK_INJECTS},
    {"Fetch", 1, CS_MOCK_INJECTS},
    {"ListOffsets", 2, CS_MOCK_INJECTS},
    {"Metadata", 3, CS_MOCK_NO_INJECT},
    {"OffsetCommit", 8, CS_MOCK_INJECTS},
    {"OffsetFetch", 9, CS_MOCK_INJECTS},
    {"FindCoordinator", 10, CS_MOCK_INJECTS},
    {"JoinGroup", 11, CS_MOCK_INJECTS},
    {"Heartbeat", 12, CS_MOCK_INJECTS},
    {"LeaveGroup", 13, CS_MOCK_INJECTS},
    {"SyncGroup", 14, CS_MOCK_INJECTS},
    {"DescribeGroups", 15, CS_MOCK_UNSERVED},
    {"ListGroups", 16, CS_MOCK_UNSERVED},
    {"SaslHandshake", 17, CS_MOCK_UNSERVED},
    {"ApiVersions", 18, CS_MOCK_INJECTS},
    {"CreateTopics", 19, CS_MOCK_UNSERVED},
    {"DeleteTopics", 20, CS_MOCK_UNSERVED},
    {"InitProducerId", 22, CS_MOCK_INJECTS},
    {"AddPartitionsToTxn", 24, CS_MOCK_INJECTS},
    {"AddOffsetsToTxn", 25, CS_MOCK_INJECTS},
    {"EndTxn", 26, CS_MOCK_INJECTS},
    {"TxnOffsetCommit", 28, CS_MOCK_INJECTS},
    {"DescribeConfigs", 32, CS_MOCK_UNSERVED},
    {"SaslAuthenticate", 36, CS_MOCK_UNSERVED},
    {"OffsetDelete", 47, CS_MOCK_UNSERVED},
};

#define CS_DEVCTL_NAPIS         (sizeof(cs_devctl_apis) / sizeof(cs_devctl_apis[0]))
#define CS_DEVCTL_WORDS         8        /* a command and its arguments */
#define CS_DEVCTL_ERRNAMES      64       /* error names in one comma list */
#define CS_DEVCTL_MS_MAX        3600000L /* an hour: longer is a typo */
#define CS_DEVCTL_PARTITION_MAX 100000L

static cs_err_t cs_devctl_ok(char *reply, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static cs_err_t cs_devctl_fail(char *reply, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static cs_err_t cs_devctl_reply(char *reply, size_t size, const char *word,
                                const char *fmt, va_list ap)
{
    int n = snprintf(reply, size, "%s ", word);
    if (n > 0 && (size_t)n < size)
        vsnprintf(reply + n, size - (size_t)n, fmt, ap);
    return CS_OK;
}

static cs_err_t cs_devctl_ok(char *reply, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cs_devctl_reply(reply, size, "ok", fmt, ap);
    va_end(ap);
    return CS_OK;
}

static cs_err_t cs_devctl_fail(char *reply, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cs_devctl_reply(reply, size, "error", fmt, ap);
    va_end(ap);
    return CS_ERR_INVALID_ARG;
}

/* The mock refused a call: its own error, so the caller can tell it from bad usage. */
static cs_err_t cs_devctl_mock_fail(char *reply, size_t size, const char *what,
                                    rd_kafka_resp_err_t err)
{
    cs_devctl_fail(reply, size, "%s: the mock cluster refused: %s (%s)", what,
                   rd_kafka_err2name(err), rd_kafka_err2str(err));
    return CS_ERR_KAFKA;
}

int cs_devctl_api_key(const char *name)
{
    for (size_t i = 0; i < CS_DEVCTL_NAPIS; i++)
        if (!strcasecmp(name, cs_devctl_apis[i].name))
            return cs_devctl_apis[i].key;
    return -1;
}

static const cs_devctl_api_t *cs_devctl_api_find(const char *name)
{
    for (size_t i = 0; i < CS_DEVCTL_NAPIS; i++)
        if (!strcasecmp(name, cs_devctl_apis[i].name))
            return &cs_devctl_apis[i];
    return NULL;
}

cs_err_t cs_devctl_error_code(const char *name, rd_kafka_resp_err_t *out)
{
    static const char prefix[] = "RD_KAFKA_RESP_ERR_";
    if (!strncasecmp(name, prefix, sizeof(prefix) - 1))
        name += sizeof(prefix) - 1;
    const struct rd_kafka_err_desc *descs;
    size_t cnt;
    rd_kafka_get_err_descs(&descs, &cnt);
    for (size_t i = 0; i < cnt; i++) {
        /* the table is indexed by code, with holes (NULL names) between ranges */
        if (descs[i].name && *name && !strcasecmp(name, descs[i].name)) {
            *out = descs[i].code;
            return CS_OK;
        }
    }
    return CS_ERR_NOT_FOUND;
}

cs_devctl_t *cs_devctl_new(rd_kafka_mock_cluster_t *mc, int brokers)
{
    cs_devctl_t *ctl = calloc(1, sizeof(*ctl));
    if (!ctl)
        return NULL;
    ctl->mc = mc;
    ctl->brokers = brokers;
    ctl->down = calloc((size_t)brokers + 1, sizeof(*ctl->down));
    ctl->rtt_ms = calloc((size_t)brokers + 1, sizeof(*ctl->rtt_ms));
    if (!ctl->down || !ctl->rtt_ms) {
        cs_devctl_destroy(ctl);
        return NULL;
    }
    return ctl;
}

void cs_devctl_destroy(cs_devctl_t *ctl)
{
    if (!ctl)
        return;
    free(ctl->down);
    free(ctl->rtt_ms);
    free(ctl);
}

/* ------------------------------------------------------------------ argument parsing */

/* A broker id 1..N, or "all" (the mock's -1) where \p allow_all. */
static cs_err_t cs_devctl_broker(const cs_devctl_t *ctl, const char *s, int allow_all,
                                 int32_t *id, char *reply, size_t size)
{
    long v;
    if (allow_all && !strcasecmp(s, "all")) {
        *id = -1;
        return CS_OK;
    }
    if (cs_cli_parse_long(s, 1, ctl->brokers, &v))
        return cs_devctl_fail(reply, size,
                              "broker: expected an id from 1 to %d%s, got '%s'",
                              ctl->brokers, allow_all ? " or all" : "", s);
    *id = (int32_t)v;
    return CS_OK;
}

static cs_err_t cs_devctl_number(const char *what, const char *s, long min, long max,
                                 long *out, char *reply, size_t size)
{
    if (cs_cli_parse_long(s, min, max, out))
        return cs_devctl_fail(reply, size, "%s: expected %ld to %ld, got '%s'", what, min,
                              max, s);
    return CS_OK;
}

/* An API whose requests the mock actually fails with injected errors. */
static const cs_devctl_api_t *cs_devctl_injectable(const char *name, char *reply,
                                                   size_t size)
{
    const cs_devctl_api_t *api = cs_devctl_api_find(name);
    if (!api)
        cs_devctl_fail(reply, size,
                       "unknown Kafka API '%s' (Produce, Fetch, JoinGroup, ...)", name);
    else if (api->mock == CS_MOCK_NO_INJECT)
        cs_devctl_fail(reply, size,
                       "%s: the mock cluster (librdkafka 2.0.2) never fails %s requests "
                       "with injected errors; use topic-error <topic> <ERROR_NAME>",
                       api->name, api->name);
    else if (api->mock == CS_MOCK_UNSERVED)
        cs_devctl_fail(reply, size,
                       "%s: the mock cluster (librdkafka 2.0.2) does not serve this API, "
                       "so no error can be injected into it",
                       api->name);
    else
        return api;
    return NULL;
}

/*
 * An error name a broker could answer (NO_ERROR included: it lets a request through,
 * with broker-errors after a delay). Of librdkafka's local errors only _TRANSPORT means
 * anything to the mock: it drops the connection instead of answering.
 */
static cs_err_t cs_devctl_error(const char *name, rd_kafka_resp_err_t *err, char *reply,
                                size_t size)
{
    if (cs_devctl_error_code(name, err))
        return cs_devctl_fail(reply, size,
                              "unknown error name '%s' (librdkafka's, without "
                              "RD_KAFKA_RESP_ERR_: NOT_LEADER_FOR_PARTITION, "
                              "REQUEST_TIMED_OUT, ...)",
                              name);
    if (*err < 0 && *err != RD_KAFKA_RESP_ERR__TRANSPORT)
        return cs_devctl_fail(reply, size,
                              "%s is a local librdkafka error, not one a broker can "
                              "answer (of the local ones only _TRANSPORT, a dropped "
                              "connection, can be injected)",
                              name);
    return CS_OK;
}

/*
 * "A,B,C" for \p cnt requests: the errors in turn, the list repeated as needed.
 * @returns a malloc'ed array of \p cnt errors, or NULL with the reply written.
 */
static rd_kafka_resp_err_t *cs_devctl_error_list(const char *list, long cnt, char *reply,
                                                 size_t size)
{
    rd_kafka_resp_err_t names[CS_DEVCTL_ERRNAMES];
    int n = 0;
    for (const char *p = list;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char name[128];
        if (n == CS_DEVCTL_ERRNAMES) {
            cs_devctl_fail(reply, size, "at most %d error names in one list",
                           CS_DEVCTL_ERRNAMES);
            return NULL;
        }
        snprintf(name, sizeof(name), "%.*s", (int)len, p);
        if (cs_devctl_error(name, &names[n++], reply, size))
            return NULL;
        if (!comma)
            break;
        p = comma + 1;
    }
    if (n > cnt) {
        cs_devctl_fail(reply, size, "%d error names for a count of %ld requests", n, cnt);
        return NULL;
    }
    rd_kafka_resp_err_t *errs = malloc((size_t)cnt * sizeof(*errs));
    if (!errs) {
        cs_devctl_fail(reply, size, "out of memory");
        return NULL;
    }
    for (long i = 0; i < cnt; i++)
        errs[i] = names[i % n];
    return errs;
}

/* Kafka's own rule for topic names, so a typo does not reach the mock (which would
 * create the topic it names). */
static cs_err_t cs_devctl_topic(const char *s, char *reply, size_t size)
{
    size_t len = strlen(s);
    int ok = len > 0 && len <= 249;
    for (size_t i = 0; ok && i < len; i++)
        ok = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
             (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_' || s[i] == '-';
    if (!ok)
        return cs_devctl_fail(reply, size,
                              "topic: expected 1 to 249 of [A-Za-z0-9._-], got '%s'", s);
    return CS_OK;
}

/* ------------------------------------------------------------------ commands */

typedef cs_err_t (*cs_devctl_fn_t)(cs_devctl_t *ctl, char **argv, char *reply,
                                   size_t size);

static cs_err_t cs_devctl_updown(cs_devctl_t *ctl, const char *which, int down,
                                 char *reply, size_t size)
{
    int32_t id = 0;
    if (cs_devctl_broker(ctl, which, 1, &id, reply, size))
        return CS_ERR_INVALID_ARG;
    rd_kafka_resp_err_t err = down ? rd_kafka_mock_broker_set_down(ctl->mc, id)
                                   : rd_kafka_mock_broker_set_up(ctl->mc, id);
    if (err)
        return cs_devctl_mock_fail(reply, size, down ? "down" : "up", err);
    for (int b = 1; b <= ctl->brokers; b++)
        if (id == -1 || id == b)
            ctl->down[b] = down;
    if (id == -1)
        return cs_devctl_ok(reply, size, "all %d brokers %s", ctl->brokers,
                            down ? "down" : "up");
    return cs_devctl_ok(reply, size, "broker %d %s", (int)id, down ? "down" : "up");
}

static cs_err_t cs_devctl_cmd_down(cs_devctl_t *ctl, char **argv, char *reply,
                                   size_t size)
{
    return cs_devctl_updown(ctl, argv[0], 1, reply, size);
}

static cs_err_t cs_devctl_cmd_up(cs_devctl_t *ctl, char **argv, char *reply, size_t size)
{
    return cs_devctl_updown(ctl, argv[0], 0, reply, size);
}

static cs_err_t cs_devctl_cmd_rtt(cs_devctl_t *ctl, char **argv, char *reply, size_t size)
{
    int32_t id = 0;
    long ms;
    if (cs_devctl_broker(ctl, argv[0], 1, &id, reply, size) ||
        cs_devctl_number("rtt ms", argv[1], 0, CS_DEVCTL_MS_MAX, &ms, reply, size))
        return CS_ERR_INVALID_ARG;
    rd_kafka_resp_err_t err = rd_kafka_mock_broker_set_rtt(ctl->mc, id, (int)ms);
    if (err)
        return cs_devctl_mock_fail(reply, size, "rtt", err);
    for (int b = 1; b <= ctl->brokers; b++)
        if (id == -1 || id == b)
            ctl->rtt_ms[b] = (int)ms;
    if (id == -1)
        return cs_devctl_ok(reply, size, "all %d brokers rtt %ld ms", ctl->brokers, ms);
    return cs_devctl_ok(reply, size, "broker %d rtt %ld ms", (int)id, ms);
}

/*
 * Whether broker \p b has a queue of its own for \p key, made by broker-errors, and
 * how many errors wait in it. A trap of librdkafka 2.0.2's mock: once such a queue
 * exists, even drained, that broker answers the API from it alone and never takes the
 * cluster-wide errors of 'errors' again (rd_kafka_mock_next_request_error falls back to
 * the cluster's queue only when the broker has none). The mock has no call to ask, but
 * rd_kafka_mock_broker_error_stack_cnt leaves the count untouched when there is no
 * queue, which tells the two apart.
 */
static int cs_devctl_broker_queue(const cs_devctl_t *ctl, int b, int16_t key, size_t *cnt)
{
    *cnt = (size_t)-1;
    if (rd_kafka_mock_broker_error_stack_cnt(ctl->mc, b, key, cnt) ||
        *cnt == (size_t)-1) {
        *cnt = 0;
        return 0;
    }
    return 1;
}

static cs_err_t cs_devctl_cmd_errors(cs_devctl_t *ctl, char **argv, char *reply,
                                     size_t size)
{
    long cnt;
    const cs_devctl_api_t *api = cs_devctl_injectable(argv[0], reply, size);
    if (!api ||
        cs_devctl_number("count", argv[1], 1, CS_DEVCTL_COUNT_MAX, &cnt, reply, size))
        return CS_ERR_INVALID_ARG;
    rd_kafka_resp_err_t *errs = cs_devctl_error_list(argv[2], cnt, reply, size);
    if (!errs)
        return CS_ERR_INVALID_ARG;
    rd_kafka_mock_push_request_errors_array(ctl->mc, api->key, (size_t)cnt, errs);
    free(errs);
    char deaf[128] = ""; /* brokers that will not take these errors, "1,3" */
    for (int b = 1, n = 0; b <= ctl->brokers; b++) {
        size_t pending;
        if (cs_devctl_broker_queue(ctl, b, api->key, &pending))
            n += snprintf(deaf + n, sizeof(deaf) - (size_t)n, "%s%d", n ? "," : "", b);
    }
    if (*deaf)
        return cs_devctl_ok(reply, size,
                            "the next %ld %s requests fail with %s, except those to "
                            "broker %s: after broker-errors for %s the mock answers them "
                            "only from that broker's own queue",
                            cnt, api->name, argv[2], deaf, api->name);
    return cs_devctl_ok(reply, size, "the next %ld %s requests fail with %s", cnt,
                        api->name, argv[2]);
}

static cs_err_t cs_devctl_cmd_broker_errors(cs_devctl_t *ctl, char **argv, char *reply,
                                            size_t size)
{
    int32_t id = 0;
    long cnt, ms;
    const cs_devctl_api_t *api = NULL;
    if (cs_devctl_broker(ctl, argv[0], 0, &id, reply, size) ||
        !(api = cs_devctl_injectable(argv[1], reply, size)) ||
        cs_devctl_number("count", argv[2], 1, CS_DEVCTL_COUNT_MAX, &cnt, reply, size) ||
        cs_devctl_number("rtt ms", argv[4], 0, CS_DEVCTL_MS_MAX, &ms, reply, size))
        return CS_ERR_INVALID_ARG;
    rd_kafka_resp_err_t *errs = cs_devctl_error_list(argv[3], cnt, reply, size);
    if (!errs)
        return CS_ERR_INVALID_ARG;
    /* the call is variadic only: one (error, rtt) pair at a time */
    for (long i = 0; i < cnt; i++) {
        rd_kafka_resp_err_t err = rd_kafka_mock_broker_push_request_error_rtts(
            ctl->mc, id, api->key, 1, errs[i], (int)ms);
        if (err) {
            free(errs);
            return cs_devctl_mock_fail(reply, size, "broker-errors", err);
        }
    }
    free(errs);
    return cs_devctl_ok(reply, size,
                        "the next %ld %s requests to broker %d fail with %s after %ld ms",
                        cnt, api->name, (int)id, argv[3], ms);
}

static cs_err_t cs_devctl_cmd_clear(cs_devctl_t *ctl, char **argv, char *reply,
                                    size_t size)
{
    const cs_devctl_api_t *api = cs_devctl_api_find(argv[0]);
    if (!api)
        return cs_devctl_fail(reply, size, "unknown Kafka API '%s'", argv[0]);
    rd_kafka_mock_clear_request_errors(ctl->mc, api->key);
    /* librdkafka 2.0.2 clears the cluster's stack only; it has no call for a broker's */
    return cs_devctl_ok(reply, size,
                        "%s errors queued by 'errors' cleared (those of 'broker-errors' "
                        "stay: the mock cannot clear them)",
                        api->name);
}

static cs_err_t cs_devctl_cmd_leader(cs_devctl_t *ctl, char **argv, char *reply,
                                     size_t size)
{
    long partition;
    int32_t id = -1;
    if (cs_devctl_topic(argv[0], reply, size) ||
        cs_devctl_number("partition", argv[1], 0, CS_DEVCTL_PARTITION_MAX, &partition,
                         reply, size) ||
        (strcasecmp(argv[2], "none") &&
         cs_devctl_broker(ctl, argv[2], 0, &id, reply, size)))
        return CS_ERR_INVALID_ARG;
    rd_kafka_resp_err_t err =
        rd_kafka_mock_partition_set_leader(ctl->mc, argv[0], (int32_t)partition, id);
    if (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
        return cs_devctl_fail(reply, size, "topic %s has no partition %ld", argv[0],
                              partition);
    if (err)
        return cs_devctl_mock_fail(reply, size, "leader", err);
    if (id == -1)
        return cs_devctl_ok(reply, size, "%s [%ld] has no leader", argv[0], partition);
    return cs_devctl_ok(reply, size, "%s [%ld] leader is broker %d", argv[0], partition,
                        (int)id);
}

static cs_err_t cs_devctl_cmd_topic_error(cs_devctl_t *ctl, char **argv, char *reply,
                                          size_t size)
{
    rd_kafka_resp_err_t err;
    if (cs_devctl_topic(argv[0], reply, size) ||
        cs_devctl_error(argv[1], &err, reply, size))
        return CS_ERR_INVALID_ARG;
    if (err < 0)
        return cs_devctl_fail(reply, size, "a topic error must be a broker error");
    rd_kafka_mock_topic_set_error(ctl->mc, argv[0], err);
    if (!err)
        return cs_devctl_ok(reply, size, "topic %s has no error", argv[0]);
    return cs_devctl_ok(reply, size, "Metadata answers topic %s with %s", argv[0],
                        rd_kafka_err2name(err));
}

static cs_err_t cs_devctl_cmd_coordinator(cs_devctl_t *ctl, char **argv, char *reply,
                                          size_t size)
{
    int32_t id = 0;
    if (strcmp(argv[0], "group") && strcmp(argv[0], "transaction"))
        return cs_devctl_fail(reply, size,
                              "coordinator: expected group or transaction, "
                              "got '%s'",
                              argv[0]);
    if (cs_devctl_broker(ctl, argv[2], 0, &id, reply, size))
        return CS_ERR_INVALID_ARG;
    rd_kafka_resp_err_t err =
        rd_kafka_mock_coordinator_set(ctl->mc, argv[0], argv[1], id);
    if (err)
        return cs_devctl_mock_fail(reply, size, "coordinator", err);
    return cs_devctl_ok(reply, size, "%s %s: coordinator is broker %d", argv[0], argv[1],
                        (int)id);
}

/*
 * {"broker_count":N,"down":[ids],"brokers":[{"id","down","rtt_ms","pending_errors":
 * {api: errors of broker-errors still queued},"ignores_errors_for":[apis whose
 * cluster-wide errors this broker no longer takes, see cs_devctl_broker_queue]}]}
 */
static json_t *cs_devctl_status_json(const cs_devctl_t *ctl)
{
    json_t *down = json_array(), *brokers = json_array();
    for (int b = 1; b <= ctl->brokers; b++) {
        if (ctl->down[b])
            json_array_append_new(down, json_integer(b));
        json_t *pending = json_object(), *deaf = json_array();
        for (size_t i = 0; i < CS_DEVCTL_NAPIS; i++) {
            const cs_devctl_api_t *api = &cs_devctl_apis[i];
            size_t cnt;
            if (api->mock != CS_MOCK_INJECTS ||
                !cs_devctl_broker_queue(ctl, b, api->key, &cnt))
                continue;
            json_array_append_new(deaf, json_string(api->name));
            if (cnt > 0)
                json_object_set_new(pending, api->name, json_integer((json_int_t)cnt));
        }
        json_array_append_new(brokers, json_pack("{s:i, s:b, s:i, s:o, s:o}", "id", b,
                                                 "down", ctl->down[b], "rtt_ms",
                                                 ctl->rtt_ms[b], "pending_errors",
                                                 pending, "ignores_errors_for", deaf));
    }
    return json_pack("{s:i, s:o, s:o}", "broker_count", ctl->brokers, "down", down,
                     "brokers", brokers);
}

static cs_err_t cs_devctl_cmd_status(cs_devctl_t *ctl, char **argv, char *reply,
                                     size_t size)
{
    json_t *st = cs_devctl_status_json(ctl);
    char *text = st ? json_dumps(st, JSON_COMPACT) : NULL;
    json_decref(st);
    if (!text)
        return cs_devctl_fail(reply, size, "out of memory");
    cs_err_t r = cs_devctl_ok(reply, size, "%s", text);
    free(text);
    return r;
}

static cs_err_t cs_devctl_cmd_help(cs_devctl_t *ctl, char **argv, char *reply,
                                   size_t size);

typedef struct cs_devctl_cmd {
    const char *name;
    int nargs;   /* exact number of words after the name */
    int injects; /* a fault: logged as "fault injected" */
    cs_devctl_fn_t fn;
    const char *args;
    const char *help;
    const char *example;
} cs_devctl_cmd_t;

static const cs_devctl_cmd_t cs_devctl_cmds[] = {
    {"down", 1, 1, cs_devctl_cmd_down, "<broker-id|all>",
     "drop the broker's connections and refuse new ones (leaders stay)", "down 2"},
    {"up", 1, 1, cs_devctl_cmd_up, "<broker-id|all>", "accept connections again",
     "up all"},
    {"rtt", 2, 1, cs_devctl_cmd_rtt, "<broker-id|all> <ms>",
     "delay every response of the broker by ms (0 clears)", "rtt all 300"},
    {"errors", 3, 1, cs_devctl_cmd_errors, "<ApiName> <count> <ERROR_NAME>[,...]",
     "fail the next count requests of the API (any broker) with the errors in turn",
     "errors Produce 3 NOT_LEADER_FOR_PARTITION"},
    {"broker-errors", 5, 1, cs_devctl_cmd_broker_errors,
     "<broker-id> <ApiName> <count> <ERROR_NAME>[,...] <rtt-ms>",
     "the same for one broker, each answer delayed by rtt-ms (NO_ERROR: delay only);\n"
     "      from then on that broker ignores 'errors' for the API (the mock's way)",
     "broker-errors 1 Fetch 1 NO_ERROR 5000"},
    {"clear", 1, 1, cs_devctl_cmd_clear, "<ApiName>",
     "drop the errors 'errors' queued for the API (not those of broker-errors)",
     "clear Produce"},
    {"leader", 3, 1, cs_devctl_cmd_leader, "<topic> <partition> <broker-id|none>",
     "move the partition's leader (an unknown topic is created)",
     "leader intel.events 0 2"},
    {"topic-error", 2, 1, cs_devctl_cmd_topic_error, "<topic> <ERROR_NAME>",
     "answer the topic in Metadata with the error (NO_ERROR clears)",
     "topic-error intel.alerts LEADER_NOT_AVAILABLE"},
    {"coordinator", 3, 1, cs_devctl_cmd_coordinator,
     "<group|transaction> <id> <broker-id>",
     "make the broker the coordinator of the group or transactional id",
     "coordinator group caresignal-score 3"},
    {"status", 0, 0, cs_devctl_cmd_status, "",
     "one line of JSON: broker count, brokers down, rtts, broker-errors still\n"
     "      queued, the APIs each broker ignores 'errors' for",
     "status"},
    {"help", 0, 0, cs_devctl_cmd_help, "", "these commands on one line", "help"},
};

#define CS_DEVCTL_NCMDS (sizeof(cs_devctl_cmds) / sizeof(cs_devctl_cmds[0]))

static cs_err_t cs_devctl_cmd_help(cs_devctl_t *ctl, char **argv, char *reply,
                                   size_t size)
{
    size_t n = (size_t)snprintf(reply, size, "ok commands:");
    for (size_t i = 0; i < CS_DEVCTL_NCMDS && n < size; i++)
        n += (size_t)snprintf(reply + n, size - n, "%s %s%s%s", i ? ";" : "",
                              cs_devctl_cmds[i].name, *cs_devctl_cmds[i].args ? " " : "",
                              cs_devctl_cmds[i].args);
    return CS_OK;
}

void cs_devctl_help(char *buf, size_t size)
{
    size_t n =
        (size_t)snprintf(buf, size,
                         "Control commands (--control PATH: one per line, each "
                         "answered by one line,\n\"ok ...\" or \"error <reason>\"):\n");
    for (size_t i = 0; i < CS_DEVCTL_NCMDS && n < size; i++) {
        const cs_devctl_cmd_t *c = &cs_devctl_cmds[i];
        char usage[96];
        snprintf(usage, sizeof(usage), "%s%s%s", c->name, *c->args ? " " : "", c->args);
        n += (size_t)snprintf(buf + n, size - n, "  %s\n      %s\n      e.g. %s\n", usage,
                              c->help, c->example);
    }
}

/* ------------------------------------------------------------------ one line */

/* Printable ASCII only (a tab separates words as a space does): the reply is one
 * line, and the log needs valid UTF-8. */
static void cs_devctl_printable(char *s)
{
    for (; *s; s++)
        if (*s == '\t')
            *s = ' ';
        else if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            *s = '?';
}

/* \p in as logged: its words, one space apart. */
static void cs_devctl_squeeze(char *out, const char *in)
{
    char *o = out;
    for (; *in; in++)
        if (*in != ' ' || (o > out && o[-1] != ' '))
            *o++ = *in;
    if (o > out && o[-1] == ' ')
        o--;
    *o = '\0';
}

static int cs_devctl_split(char *line, char **words)
{
    int n = 0;
    for (char *save = NULL, *w = strtok_r(line, " ", &save); w;
         w = strtok_r(NULL, " ", &save)) {
        if (n == CS_DEVCTL_WORDS)
            return -1;
        words[n++] = w;
    }
    return n;
}

static const cs_devctl_cmd_t *cs_devctl_find(const char *name)
{
    for (size_t i = 0; i < CS_DEVCTL_NCMDS; i++)
        if (!strcmp(name, cs_devctl_cmds[i].name))
            return &cs_devctl_cmds[i];
    return NULL;
}

static cs_err_t cs_devctl_dispatch(cs_devctl_t *ctl, char *line,
                                   const cs_devctl_cmd_t **cmdp, char *reply, size_t size)
{
    char *words[CS_DEVCTL_WORDS];
    int n = cs_devctl_split(line, words);
    if (n < 0)
        return cs_devctl_fail(reply, size, "more than %d words (try help)",
                              CS_DEVCTL_WORDS);
    if (n == 0)
        return cs_devctl_fail(reply, size, "empty command (try help)");
    const cs_devctl_cmd_t *cmd = cs_devctl_find(words[0]);
    if (!cmd)
        return cs_devctl_fail(reply, size, "unknown command '%s' (try help)", words[0]);
    *cmdp = cmd;
    if (n - 1 != cmd->nargs)
        return cs_devctl_fail(reply, size, "usage: %s%s%s", cmd->name,
                              *cmd->args ? " " : "", cmd->args);
    return cmd->fn(ctl, words + 1, reply, size);
}

cs_err_t cs_devctl_exec(cs_devctl_t *ctl, const char *line, char *reply,
                        size_t reply_size)
{
    char buf[CS_DEVCTL_LINE_MAX + 1], shown[CS_DEVCTL_LINE_MAX + 1];
    snprintf(buf, sizeof(buf), "%s", line);
    cs_devctl_printable(buf);
    cs_devctl_squeeze(shown, buf); /* dispatch splits buf in place */
    const cs_devctl_cmd_t *cmd = NULL;
    cs_err_t r = cs_devctl_dispatch(ctl, buf, &cmd, reply, reply_size);
    cs_devctl_printable(reply);
    if (r)
        cs_log_warn("control command refused", "{s:s, s:s}", "command", shown, "reply",
                    reply);
    else if (cmd->injects)
        cs_log_info("fault injected", "{s:s, s:s, s:s}", "fault", cmd->name, "command",
                    shown, "reply", reply);
    return r;
}
