/* caresignal configuration: the key table, properties files, --set, validation. */
#include "caresignal/config.h"

#include <ctype.h>
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OFF(f) offsetof(cs_config_t, f)
#define P_K    CS_PROG_KAFKA
#define P_R    CS_PROG_REDIS

/*
 * The one table of configuration keys (docs/contract/configuration.md). Parsing,
 * defaults, required checks, --help and the README's key list all come from here; adding
 * a key means adding a row and a field in cs_config_t, nothing else.
 */
static const cs_config_key_t cs_keys[] = {
    {"redis.host", CS_CFG_STRING, "127.0.0.1", OFF(redis_host), 0, 0, NULL, P_R, 0, 0,
     "Redis host (state store, alert de-duplication)"},
    {"redis.port", CS_CFG_INT, "6379", OFF(redis_port), 1, 65535, NULL, P_R, 0, 0,
     "Redis port"},
    {"redis.password", CS_CFG_STRING, NULL, OFF(redis_password), 0, 0, NULL, P_R, 0,
     CS_CFG_SECRET, "Redis AUTH password (unset: no AUTH)"},
    {"redis.password.file", CS_CFG_SECRET_FILE, NULL, OFF(redis_password), 0, 0, NULL,
     P_R, 0, CS_CFG_SECRET, "file holding redis.password (kept out of process listings)"},
    {"redis.timeout.ms", CS_CFG_INT, "2000", OFF(redis_timeout_ms), 10, 600000, NULL, P_R,
     0, 0, "connect and per-command timeout"},
    {"redis.cluster.nodes", CS_CFG_NODES, NULL, OFF(redis_cluster_nodes), 0, 0, NULL, P_R,
     0, 0,
     "seed nodes host:port,... of a Redis Cluster (unset: the single node "
     "redis.host:redis.port, which it replaces)"},
    {"state.namespace", CS_CFG_STRING, "cs", OFF(state_namespace), 0, 0, NULL, P_R, 0, 0,
     "Redis key prefix of the risk state (a rebuild writes a new one)"},
    {"state.layout", CS_CFG_INT, "1", OFF(state_layout), 1, 2, NULL,
     CS_PROG_SCORE | CS_PROG_REPLAY, 0, 0,
     "layout of the risk state the scorer writes: 1 (a hash, a sorted set and seen sets "
     "per subject) or 2 (one packed string per subject); a namespace keeps the layout "
     "it was created with (docs/contract/redis-layout.md)"},
    {"state.engine", CS_CFG_CHOICE, "redis", OFF(state_engine), 0, 0, "redis|scorer",
     CS_PROG_SCORE | CS_PROG_REPLAY, 0, 0,
     "where a subject's new state is computed: redis (the Redis function) or scorer "
     "(in the scorer, Redis only storing it under WATCH; needs state.layout 2)"},
    {"rules.file", CS_CFG_STRING, "deploy/config/rules.json", OFF(rules_file), 0, 0, NULL,
     CS_PROG_NORMALISE | CS_PROG_SCORE | CS_PROG_REPLAY, 0, 0,
     "risk rules: mapping, weights, thresholds (docs/contract/risk-model.md)"},
    {"directory.file", CS_CFG_STRING, NULL, OFF(directory_file), 0, 0, NULL,
     CS_PROG_NORMALISE | CS_PROG_PAGE, CS_PROG_NORMALISE, 0,
     "location directory CSV (docs/contract/canonical-event.md); reloaded on SIGHUP"},
    {"schema.registry", CS_CFG_STRING, "schemas/registry.json", OFF(schema_registry), 0,
     0, NULL,
     CS_PROG_NORMALISE | CS_PROG_SCORE | CS_PROG_PAGE | CS_PROG_PUBLISH | CS_PROG_REPLAY |
         CS_PROG_CAT,
     0, 0, "local schema registry file (id -> subject, version, .avsc)"},
    {"topic.raw.nhse", CS_CFG_STRING, "intel.raw.nhse", OFF(topic_raw_nhse), 0, 0, NULL,
     P_K | CS_PROG_DEVBROKER, 0, 0, "raw topic of NHS England"},
    {"topic.raw.ccg", CS_CFG_STRING, "intel.raw.ccg", OFF(topic_raw_ccg), 0, 0, NULL,
     P_K | CS_PROG_DEVBROKER, 0, 0, "raw topic of CCGs / ICBs"},
    {"topic.raw.ofsted-send", CS_CFG_STRING, "intel.raw.ofsted-send",
     OFF(topic_raw_ofsted_send), 0, 0, NULL, P_K | CS_PROG_DEVBROKER, 0, 0,
     "raw topic of Ofsted (joint SEND area reviews)"},
    {"topic.events", CS_CFG_STRING, "intel.events", OFF(topic_events), 0, 0, NULL,
     P_K | CS_PROG_DEVBROKER, 0, 0, "canonical IntelEvent topic"},
    {"topic.alerts", CS_CFG_STRING, "intel.alerts", OFF(topic_alerts), 0, 0, NULL,
     P_K | CS_PROG_DEVBROKER, 0, 0, "RiskAlert topic"},
    {"topic.deadletter", CS_CFG_STRING, "intel.deadletter", OFF(topic_deadletter), 0, 0,
     NULL, P_K | CS_PROG_DEVBROKER, 0, 0, "dead-letter topic (ops only)"},
    {"group.id", CS_CFG_STRING, "$PROGRAM", OFF(group_id), 0, 0, NULL,
     CS_PROG_NORMALISE | CS_PROG_SCORE | CS_PROG_PAGE, 0, 0, "Kafka consumer group"},
    {"log.level", CS_CFG_CHOICE, "info", OFF(log_level), 0, 0, "debug|info|warn|error",
     CS_PROG_ALL, 0, 0, "lowest log level written (same as --log-level)"},
    {"normalise.max.bytes", CS_CFG_INT, "65536", OFF(normalise_max_bytes), 64, 16777216,
     NULL, CS_PROG_NORMALISE | CS_PROG_PUBLISH, 0, 0,
     "largest raw value accepted; larger is TOO_LARGE"},
    {"normalise.batch.max", CS_CFG_INT, "1000", OFF(normalise_batch_max), 1, 100000, NULL,
     CS_PROG_NORMALISE, 0, 0, "raw messages taken from the consumer at once"},
    {"score.batch.max", CS_CFG_INT, "500", OFF(score_batch_max), 1, 100000, NULL,
     CS_PROG_SCORE | CS_PROG_REPLAY, 0, 0, "largest batch of events per Redis pipeline"},
    {"inflight.max.messages", CS_CFG_INT, "10000", OFF(inflight_max_messages), 1,
     10000000, NULL, CS_PROG_NORMALISE | CS_PROG_SCORE | CS_PROG_PAGE, 0, 0,
     "input messages in flight (fetched, not yet stored) before consumption pauses"},
    {"inflight.max.bytes", CS_CFG_INT, "16777216", OFF(inflight_max_bytes), 65536,
     4294967296, NULL, CS_PROG_NORMALISE | CS_PROG_SCORE | CS_PROG_PAGE, 0, 0,
     "bytes of input messages in flight before consumption pauses"},
    {"page.sink", CS_CFG_CHOICE, "stdout", OFF(page_sink), 0, 0, "stdout|webhook|exec",
     CS_PROG_PAGE, 0, 0, "default sink when no route matches"},
    {"page.webhook.url", CS_CFG_STRING, NULL, OFF(page_webhook_url), 0, 0, NULL,
     CS_PROG_PAGE, 0, 0, "webhook URL (required by the webhook sink)"},
    {"page.webhook.secret", CS_CFG_STRING, NULL, OFF(page_webhook_secret), 0, 0, NULL,
     CS_PROG_PAGE, 0, CS_CFG_SECRET, "HMAC-SHA256 key of X-Caresignal-Signature"},
    {"page.webhook.secret.file", CS_CFG_SECRET_FILE, NULL, OFF(page_webhook_secret), 0, 0,
     NULL, CS_PROG_PAGE, 0, CS_CFG_SECRET, "file holding page.webhook.secret"},
    {"page.webhook.allow.http", CS_CFG_CHOICE, "false", OFF(page_webhook_allow_http), 0,
     0, "true|false", CS_PROG_PAGE, 0, 0,
     "allow an http:// page.webhook.url (alerts in clear text)"},
    {"page.webhook.timeout.ms", CS_CFG_INT, "5000", OFF(page_webhook_timeout_ms), 100,
     600000, NULL, CS_PROG_PAGE, 0, 0, "webhook request timeout"},
    {"page.exec.command", CS_CFG_STRING, NULL, OFF(page_exec_command), 0, 0, NULL,
     CS_PROG_PAGE, 0, 0, "command run by the exec sink (alert JSON on stdin)"},
    {"page.retries", CS_CFG_INT, "5", OFF(page_retries), 0, 100, NULL, CS_PROG_PAGE, 0, 0,
     "delivery retries before an alert is dead-lettered"},
    {"page.retry.backoff.ms", CS_CFG_INT, "200", OFF(page_retry_backoff_ms), 1, 600000,
     NULL, CS_PROG_PAGE, 0, 0, "first retry delay, doubled each retry"},
    {"page.retry.max.ms", CS_CFG_INT, "60000", OFF(page_retry_max_ms), 0, 86400000, NULL,
     CS_PROG_PAGE, 0, 0,
     "no retry of an alert starts later than this after its first attempt"},
    {"page.queue.max", CS_CFG_INT, "1000", OFF(page_queue_max), 1, 1000000, NULL,
     CS_PROG_PAGE, 0, 0, "alerts queued per route before consumption pauses"},
    {"page.dedupe.wait.ms", CS_CFG_INT, "30000", OFF(page_dedupe_wait_ms), 0, 3600000,
     NULL, CS_PROG_PAGE, 0, 0,
     "how long an alert waits for Redis to say whether it was paged before it is paged "
     "without de-duplication"},
    {"page.routes.file", CS_CFG_STRING, NULL, OFF(page_routes_file), 0, 0, NULL,
     CS_PROG_PAGE, 0, 0, "routes by subject kind, level and region (unset: page.sink)"},
    {"page.format", CS_CFG_CHOICE, "json", OFF(page_format), 0, 0, "json|text",
     CS_PROG_PAGE, 0, 0, "stdout sink: JSON lines, or one readable line per alert"},
    {"metrics.listen", CS_CFG_LISTEN, NULL, OFF(metrics_listen), 0, 0, NULL,
     CS_PROG_NORMALISE | CS_PROG_SCORE | CS_PROG_PAGE, 0, 0,
     "host:port of /metrics, /healthz and /readyz (unset: not served; port 0: any free)"},
    {"metrics.healthz.max.ms", CS_CFG_INT, "30000", OFF(metrics_healthz_max_ms), 1000,
     3600000, NULL, CS_PROG_NORMALISE | CS_PROG_SCORE | CS_PROG_PAGE, 0, 0,
     "/healthz fails once the loop has not turned for this long"},
    {"page.dedupe.ttl.s", CS_CFG_INT, "2592000", OFF(page_dedupe_ttl_s), 1, 315360000,
     NULL, CS_PROG_PAGE, 0, 0, "how long a paged alert_id is remembered"},
    {NULL, 0, NULL, 0, 0, 0, NULL, 0, 0, 0, NULL},
};

const cs_config_key_t *cs_config_keys(void)
{
    return cs_keys;
}

const cs_config_key_t *cs_config_key_find(const char *name)
{
    for (const cs_config_key_t *k = cs_keys; k->name; k++)
        if (!strcmp(k->name, name))
            return k;
    return NULL;
}

static void cs_errf(char *errstr, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void cs_errf(char *errstr, size_t size, const char *fmt, ...)
{
    if (!errstr || !size)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errstr, size, fmt, ap);
    va_end(ap);
}

static char **cs_str_field(cs_config_t *cfg, const cs_config_key_t *k)
{
    return (char **)((char *)cfg + k->offset);
}

static long *cs_int_field(cs_config_t *cfg, const cs_config_key_t *k)
{
    return (long *)((char *)cfg + k->offset);
}

static int cs_choice_ok(const char *choices, const char *value)
{
    size_t n = strlen(value);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && !strncmp(p, value, n))
            return 1;
        if (!bar)
            break;
        p = bar + 1;
    }
    return 0;
}

/* Frees a string that may hold a secret, wiping it first. */
static void cs_secret_free(char *s)
{
    if (!s)
        return;
    volatile char *p = s;
    while (*p)
        *p++ = '\0';
    free(s);
}

/* Reads a secret from \p path: the whole file, one trailing newline (LF or CRLF)
 * removed, at most 64 KiB, no NUL. Errors name the key and the file, never content. */
cs_err_t cs_config_read_secret_file(const char *key, const char *path, char **out,
                                    char *errstr, size_t errstr_size)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        cs_errf(errstr, errstr_size, "config key '%s': cannot read '%s': %s", key, path,
                strerror(errno));
        return CS_ERR_CONFIG;
    }
    enum { MAX = 65536 };
    char *buf = malloc(MAX + 1);
    size_t n = buf ? fread(buf, 1, MAX + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (!buf)
        return CS_ERR_NOMEM;
    const char *why = bad ? "read error" : n > MAX ? "larger than 64 KiB" : NULL;
    if (!why && memchr(buf, '\0', n))
        why = "holds a NUL byte";
    if (!why) {
        if (n && buf[n - 1] == '\n')
            n--;
        if (n && buf[n - 1] == '\r')
            n--;
        if (!n)
            why = "is empty";
    }
    if (why) {
        memset(buf, 0, MAX + 1);
        free(buf);
        cs_errf(errstr, errstr_size, "config key '%s': file '%s' %s", key, path, why);
        return CS_ERR_CONFIG;
    }
    buf[n] = '\0';
    *out = buf;
    return CS_OK;
}

int cs_config_parse_listen(const char *s, char *host, size_t host_size, int *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon || !colon[1])
        return -1;
    const char *h = s, *hend = colon;
    if (*s == '[') {
        if (colon == s || colon[-1] != ']')
            return -1;
        h = s + 1;
        hend = colon - 1;
    } else if (memchr(s, ':', (size_t)(colon - s))) {
        return -1; /* an IPv6 address needs its brackets */
    }
    size_t n = (size_t)(hend - h);
    if (n >= host_size)
        return -1;
    for (const char *c = colon + 1; *c; c++)
        if (!isdigit((unsigned char)*c))
            return -1;
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno || *end || p < 0 || p > 65535 || end - (colon + 1) > 5)
        return -1;
    memcpy(host, h, n);
    host[n] = '\0';
    *port = (int)p;
    return 0;
}

/* 0 when \p value is one or more comma-separated host:port, none empty */
static int cs_config_check_nodes(const char *value)
{
    if (!*value)
        return -1;
    for (const char *at = value;;) {
        size_t n = strcspn(at, ",");
        char one[300], host[256];
        int port;
        if (n == 0 || n >= sizeof(one))
            return -1;
        memcpy(one, at, n);
        one[n] = '\0';
        if (cs_config_parse_listen(one, host, sizeof(host), &port) || !host[0] ||
            port < 1)
            return -1;
        if (!at[n])
            return 0;
        at += n + 1;
    }
}

static cs_err_t cs_config_apply(cs_config_t *cfg, const cs_config_key_t *k,
                                const char *value, char *errstr, size_t errstr_size)
{
    if (k->type == CS_CFG_INT) {
        char *end;
        errno = 0;
        long v = strtol(value, &end, 10);
        if (errno || end == value || *end || v < k->min || v > k->max) {
            cs_errf(errstr, errstr_size,
                    "config key '%s': expected an integer from %ld to %ld, got '%s'",
                    k->name, k->min, k->max, value);
            return CS_ERR_CONFIG;
        }
        *cs_int_field(cfg, k) = v;
        return CS_OK;
    }
    if (k->type == CS_CFG_SECRET_FILE) {
        char *secret = NULL;
        cs_err_t err =
            cs_config_read_secret_file(k->name, value, &secret, errstr, errstr_size);
        if (err)
            return err;
        char **field = cs_str_field(cfg, k);
        cs_secret_free(*field);
        *field = secret;
        return CS_OK;
    }
    if (k->type == CS_CFG_LISTEN) {
        char host[256];
        int port;
        if (cs_config_parse_listen(value, host, sizeof(host), &port)) {
            cs_errf(errstr, errstr_size,
                    "config key '%s': expected host:port (port 0-65535, an IPv6 host in "
                    "brackets), got '%s'",
                    k->name, value);
            return CS_ERR_CONFIG;
        }
    }
    if (k->type == CS_CFG_NODES && cs_config_check_nodes(value)) {
        cs_errf(
            errstr, errstr_size,
            "config key '%s': expected host:port[,host:port...] (port 1-65535, an IPv6 "
            "host in brackets), got '%s'",
            k->name, value);
        return CS_ERR_CONFIG;
    }
    if (k->type == CS_CFG_CHOICE && !cs_choice_ok(k->choices, value)) {
        cs_errf(errstr, errstr_size, "config key '%s': expected one of %s, got '%s'",
                k->name, k->choices, value);
        return CS_ERR_CONFIG;
    }
    char *copy = strdup(value);
    if (!copy)
        return CS_ERR_NOMEM;
    char **field = cs_str_field(cfg, k);
    cs_secret_free(*field);
    *field = copy;
    return CS_OK;
}

/* Default files (rules.file, schema.registry) as the source tree names them, and where
 * an installed tree has them under share/caresignal. */
static const char *const cs_data_files[][2] = {
    {"deploy/config/rules.json", "rules.json"},
    {"schemas/registry.json", "schemas/registry.json"},
};

static int cs_file_exists(const char *path)
{
    return access(path, R_OK) == 0;
}

const char *cs_config_default_path(const char *def, char *buf, size_t size)
{
    const char *installed = NULL;
    for (size_t i = 0; i < sizeof(cs_data_files) / sizeof(cs_data_files[0]); i++)
        if (!strcmp(def, cs_data_files[i][0]))
            installed = cs_data_files[i][1];
    if (!installed || cs_file_exists(def))
        return def; /* in a source tree: relative to the working directory, as before */
    /* installed: bin/../share/caresignal/..., wherever the prefix is */
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            snprintf(buf, size, "%s/../%s/caresignal/%s", exe, CS_DATADIR_REL, installed);
            char real[4096];
            if (cs_file_exists(buf) && realpath(buf, real)) {
                snprintf(buf, size, "%s", real);
                return buf;
            }
        }
    }
    /* a build tree's program run from elsewhere: the source tree it was built from */
    snprintf(buf, size, "%s/%s", CS_SOURCE_TREE, def);
    return cs_file_exists(buf) ? buf : def;
}

cs_err_t cs_config_init(cs_config_t *cfg, const char *program)
{
    memset(cfg, 0, sizeof(*cfg));
    for (const cs_config_key_t *k = cs_keys; k->name; k++) {
        if (!k->def)
            continue;
        char path[4096];
        const char *def = strcmp(k->def, "$PROGRAM")
                              ? cs_config_default_path(k->def, path, sizeof(path))
                              : program;
        if (cs_config_apply(cfg, k, def, NULL, 0) != CS_OK) {
            cs_config_clear(cfg);
            return CS_ERR_NOMEM;
        }
    }
    return CS_OK;
}

void cs_config_clear(cs_config_t *cfg)
{
    if (!cfg)
        return;
    for (const cs_config_key_t *k = cs_keys; k->name; k++)
        if (k->type != CS_CFG_INT && k->type != CS_CFG_SECRET_FILE)
            cs_secret_free(*cs_str_field(cfg, k));
    for (size_t i = 0; i < cfg->kafka_cnt; i++) {
        free(cfg->kafka[i].name);
        cs_secret_free(cfg->kafka[i].value);
    }
    free(cfg->kafka);
    memset(cfg, 0, sizeof(*cfg));
}

/* librdkafka's sensitive properties (its own configuration marks them so): their values
 * are never echoed, and each has a kafka.<name>.file form. */
static int cs_kafka_secret(const char *name)
{
    static const char *const secrets[] = {"sasl.password",
                                          "ssl.key.password",
                                          "ssl.keystore.password",
                                          "ssl.key.pem",
                                          "ssl_key",
                                          "sasl.oauthbearer.client.secret",
                                          "sasl.oauthbearer.config",
                                          NULL};
    for (const char *const *s = secrets; *s; s++)
        if (!strcmp(name, *s))
            return 1;
    return 0;
}

int cs_config_key_is_secret(const char *key)
{
    if (!strncmp(key, "kafka.", 6)) {
        const char *name = key + 6;
        size_t n = strlen(name);
        if (n > 5 && !strcmp(name + n - 5, ".file"))
            return 1; /* a path, but the property it fills is one we never echo */
        return cs_kafka_secret(name);
    }
    const cs_config_key_t *k = cs_config_key_find(key);
    return k && (k->flags & CS_CFG_SECRET);
}

/* The part of an unknown key that may be shown: a key that begins with a secret key's
 * name (a forgotten '=' in "--set redis.passwordhunter2") is shown up to that name. */
static int cs_key_shown_len(const char *key)
{
    static const char *const prefixes[] = {"kafka.sasl.password",
                                           "kafka.ssl.key.password",
                                           "kafka.ssl.keystore.password", NULL};
    size_t best = 0;
    for (const cs_config_key_t *k = cs_keys; k->name; k++)
        if ((k->flags & CS_CFG_SECRET) && !strncmp(key, k->name, strlen(k->name)) &&
            strlen(k->name) > best)
            best = strlen(k->name);
    for (const char *const *p = prefixes; *p; p++)
        if (!strncmp(key, *p, strlen(*p)) && strlen(*p) > best)
            best = strlen(*p);
    return best && best < strlen(key) ? (int)best : (int)strlen(key);
}

/* Asks librdkafka itself whether it knows the property, so a typo in a kafka.*
 * key stops the program at start-up instead of at the first connection. */
static cs_err_t cs_config_kafka_check(const char *name, const char *value, char *errstr,
                                      size_t errstr_size)
{
    char rkerr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_res_t res = rd_kafka_conf_set(conf, name, value, rkerr, sizeof(rkerr));
    rd_kafka_conf_destroy(conf);
    if (res == RD_KAFKA_CONF_OK)
        return CS_OK;
    if (cs_kafka_secret(name))
        cs_errf(errstr, errstr_size,
                "config key 'kafka.%s': refused by librdkafka (the "
                "value is a secret: not shown)",
                name);
    else
        cs_errf(errstr, errstr_size, "config key 'kafka.%s': %s", name, rkerr);
    return CS_ERR_CONFIG;
}

static cs_err_t cs_config_kafka_set(cs_config_t *cfg, const char *name, const char *value,
                                    char *errstr, size_t errstr_size)
{
    if (!*name) {
        cs_errf(errstr, errstr_size, "config key 'kafka.': missing property name");
        return CS_ERR_CONFIG;
    }
    /* kafka.<property>.file: the property's value from a file (no librdkafka property
     * ends in ".file", so the form cannot shadow one) */
    size_t nlen = strlen(name);
    char prop[256], *fromfile = NULL;
    if (nlen > 5 && nlen - 5 < sizeof(prop) && !strcmp(name + nlen - 5, ".file")) {
        char key[300];
        snprintf(prop, sizeof(prop), "%.*s", (int)(nlen - 5), name);
        snprintf(key, sizeof(key), "kafka.%s", name);
        cs_err_t err =
            cs_config_read_secret_file(key, value, &fromfile, errstr, errstr_size);
        if (err)
            return err;
        name = prop;
        value = fromfile;
    }
    cs_err_t err = cs_config_kafka_check(name, value, errstr, errstr_size);
    char *v = err ? NULL : strdup(value);
    cs_secret_free(fromfile);
    if (err)
        return err;
    if (!v)
        return CS_ERR_NOMEM;
    for (size_t i = 0; i < cfg->kafka_cnt; i++) {
        if (!strcmp(cfg->kafka[i].name, name)) {
            cs_secret_free(cfg->kafka[i].value);
            cfg->kafka[i].value = v;
            return CS_OK;
        }
    }
    cs_config_kv_t *grown = realloc(cfg->kafka, (cfg->kafka_cnt + 1) * sizeof(*grown));
    char *n = strdup(name);
    if (!grown || !n) {
        if (grown)
            cfg->kafka = grown;
        free(v);
        free(n);
        return CS_ERR_NOMEM;
    }
    cfg->kafka = grown;
    cfg->kafka[cfg->kafka_cnt].name = n;
    cfg->kafka[cfg->kafka_cnt].value = v;
    cfg->kafka_cnt++;
    return CS_OK;
}

cs_err_t cs_config_set(cs_config_t *cfg, const char *key, const char *value, char *errstr,
                       size_t errstr_size)
{
    if (!strncmp(key, "kafka.", 6))
        return cs_config_kafka_set(cfg, key + 6, value, errstr, errstr_size);
    const cs_config_key_t *k = cs_config_key_find(key);
    if (!k) {
        int shown = cs_key_shown_len(key);
        cs_errf(errstr, errstr_size, "config key '%.*s%s': unknown key", shown, key,
                key[shown] ? "..." : "");
        return CS_ERR_CONFIG;
    }
    return cs_config_apply(cfg, k, value, errstr, errstr_size);
}

static char *cs_trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

cs_err_t cs_config_set_pair(cs_config_t *cfg, const char *pair, char *errstr,
                            size_t errstr_size)
{
    char *copy = strdup(pair);
    if (!copy)
        return CS_ERR_NOMEM;
    char *eq = strchr(copy, '=');
    cs_err_t err;
    if (!eq) {
        char *key = cs_trim(copy);
        int shown = cs_key_shown_len(key);
        cs_errf(errstr, errstr_size, "config key '%.*s%s': expected key=value", shown,
                key, key[shown] ? "..." : "");
        err = CS_ERR_CONFIG;
    } else {
        *eq = '\0';
        err = cs_config_set(cfg, cs_trim(copy), cs_trim(eq + 1), errstr, errstr_size);
    }
    cs_secret_free(copy);
    return err;
}

cs_err_t cs_config_load_file(cs_config_t *cfg, const char *path, char *errstr,
                             size_t errstr_size)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        cs_errf(errstr, errstr_size, "config file '%s': cannot read: %s", path,
                strerror(errno));
        return CS_ERR_CONFIG;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0;
    cs_err_t err = CS_OK;
    char inner[384];
    while (err == CS_OK && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        char *s = cs_trim(line);
        if (!*s || *s == '#' || *s == '!')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            cs_errf(errstr, errstr_size, "config file '%s' line %d: expected key=value",
                    path, lineno);
            err = CS_ERR_CONFIG;
            break;
        }
        *eq = '\0';
        err = cs_config_set(cfg, cs_trim(s), cs_trim(eq + 1), inner, sizeof(inner));
        if (err)
            cs_errf(errstr, errstr_size, "%s (config file '%s' line %d)", inner, path,
                    lineno);
    }
    if (err == CS_OK && ferror(f)) {
        cs_errf(errstr, errstr_size, "config file '%s': read error", path);
        err = CS_ERR_CONFIG;
    }
    free(line);
    fclose(f);
    return err;
}

cs_err_t cs_config_check_required(const cs_config_t *cfg, unsigned program, char *errstr,
                                  size_t errstr_size)
{
    if ((program & CS_PROG_KAFKA) && !cs_config_kafka_get(cfg, "bootstrap.servers")) {
        cs_errf(errstr, errstr_size,
                "config key 'kafka.bootstrap.servers': required, not set");
        return CS_ERR_CONFIG;
    }
    for (const cs_config_key_t *k = cs_keys; k->name; k++) {
        if (!(k->required & program))
            continue;
        const char *v = cs_config_get_string(cfg, k->name);
        if (!v || !*v) {
            cs_errf(errstr, errstr_size, "config key '%s': required, not set", k->name);
            return CS_ERR_CONFIG;
        }
    }
    return CS_OK;
}

const char *cs_config_get_string(const cs_config_t *cfg, const char *key)
{
    if (!strncmp(key, "kafka.", 6))
        return cs_config_kafka_get(cfg, key + 6);
    const cs_config_key_t *k = cs_config_key_find(key);
    if (!k || k->type == CS_CFG_INT || k->type == CS_CFG_SECRET_FILE)
        return NULL; /* a .file row's field is the secret, not the path */
    return *cs_str_field((cs_config_t *)cfg, k);
}

const char *cs_config_kafka_get(const cs_config_t *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->kafka_cnt; i++)
        if (!strcmp(cfg->kafka[i].name, name))
            return cfg->kafka[i].value;
    return NULL;
}

void cs_config_print_help(FILE *out, unsigned program)
{
    fprintf(out, "Configuration keys (--config FILE with key=value lines, or --set "
                 "key=value):\n");
    if (program & CS_PROG_KAFKA)
        fprintf(out, "  %-26s %s\n", "kafka.<property>",
                "any librdkafka property, e.g. kafka.bootstrap.servers (required), "
                "kafka.security.protocol");
    for (const cs_config_key_t *k = cs_keys; k->name; k++) {
        if (!(k->uses & program))
            continue;
        char def[4200];
        if (k->required & program)
            snprintf(def, sizeof(def), "required");
        else if (!k->def)
            snprintf(def, sizeof(def), "unset");
        else if (!strcmp(k->def, "$PROGRAM"))
            snprintf(def, sizeof(def), "default: the program name");
        else {
            char path[4096];
            snprintf(def, sizeof(def), "default %s",
                     cs_config_default_path(k->def, path, sizeof(path)));
        }
        fprintf(out, "  %-26s %s [%s]\n", k->name, k->description, def);
    }
}
