/* caresignal configuration: one key table (docs/contract/configuration.md), properties
 * files and --set. */
#ifndef CARESIGNAL_CONFIG_H
#define CARESIGNAL_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "caresignal/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Programs, as a bit mask: which program uses (CS_CFG_USES) or requires
 * (CS_CFG_REQUIRED) a key. `--help` lists the keys a program uses.
 */
enum {
    CS_PROG_NORMALISE = 1 << 0,
    CS_PROG_SCORE = 1 << 1,
    CS_PROG_PAGE = 1 << 2,
    CS_PROG_PUBLISH = 1 << 3,
    CS_PROG_REPLAY = 1 << 4,
    CS_PROG_DEVBROKER = 1 << 5,
    CS_PROG_CAT = 1 << 6,
    CS_PROG_KAFKA = CS_PROG_NORMALISE | CS_PROG_SCORE | CS_PROG_PAGE | CS_PROG_PUBLISH |
                    CS_PROG_REPLAY | CS_PROG_CAT,
    CS_PROG_REDIS = CS_PROG_SCORE | CS_PROG_PAGE | CS_PROG_REPLAY,
    CS_PROG_ALL = 0x7f,
};

/** A `kafka.<name>=<value>` entry, passed to librdkafka as `<name>=<value>`. */
typedef struct cs_config_kv {
    char *name; /**< without the "kafka." prefix */
    char *value;
} cs_config_kv_t;

/**
 * The whole configuration of every program, filled from the key table's
 * defaults, then `--config FILE`, then each `--set key=value` in order.
 * All strings are owned by the struct (freed by cs_config_clear); an unset
 * optional string is NULL.
 */
typedef struct cs_config {
    cs_config_kv_t *kafka;
    size_t kafka_cnt;

    char *redis_host;
    long redis_port;
    char *redis_password;
    long redis_timeout_ms;
    char *redis_cluster_nodes; /* "host:port,..." seeds of a Redis Cluster, or NULL */

    char *state_namespace;
    int state_layout;   /* of a new namespace's risk state: 1 or 2 */
    char *state_engine; /* "redis" or "scorer" (cs_scorer_set_compute) */
    char *rules_file;
    char *directory_file;
    char *schema_registry;

    char *topic_raw_nhse;
    char *topic_raw_ccg;
    char *topic_raw_ofsted_send;
    char *topic_events;
    char *topic_alerts;
    char *topic_deadletter;

    char *group_id;
    char *log_level;

    long normalise_max_bytes;
    long normalise_batch_max;
    long score_batch_max;
    long inflight_max_messages;
    long inflight_max_bytes;

    char *page_sink;
    char *page_webhook_url;
    char *page_webhook_secret;
    char *page_webhook_allow_http;
    long page_webhook_timeout_ms;
    char *page_exec_command;
    long page_retries;
    long page_retry_backoff_ms;
    long page_retry_max_ms;
    long page_queue_max;
    long page_dedupe_wait_ms;
    char *page_routes_file;
    char *page_format;
    long page_dedupe_ttl_s;

    char *metrics_listen;
    long metrics_healthz_max_ms;

} cs_config_t;

typedef enum cs_config_type {
    CS_CFG_STRING,
    CS_CFG_INT,
    CS_CFG_CHOICE, /**< a string restricted to `choices` ("a|b|c") */
    /** `<secret>.file`: the value is a path; the file's content (one trailing newline
     *  removed) becomes the secret at `offset`, which never appears in a process listing
     */
    CS_CFG_SECRET_FILE,
    CS_CFG_LISTEN, /**< a string "host:port" (cs_config_parse_listen) */
    CS_CFG_NODES,  /**< "host:port,host:port,...": one or more, port 1-65535 */
} cs_config_type_t;

enum {
    CS_CFG_SECRET = 1 << 0, /**< a secret: its value never appears in an error or a log */
};

/** One row of the key table: the single source for parsing, defaults and --help. */
typedef struct cs_config_key {
    const char *name;
    cs_config_type_t type;
    const char *def; /**< default as text, NULL = unset; "$PROGRAM" = program name */
    size_t offset;   /**< offsetof(cs_config_t, field) */
    long min, max;   /**< CS_CFG_INT bounds (inclusive) */
    const char *choices;
    unsigned uses;     /**< CS_PROG_* mask of programs that read the key */
    unsigned required; /**< CS_PROG_* mask of programs that cannot start without it */
    unsigned flags;
    const char *description;
} cs_config_key_t;

/** Splits "host:port" or "[v6]:port" (port 0-65535) into \p host and \p port.
 *  @returns 0, or -1 if \p s is not of that form or the host does not fit. */
int cs_config_parse_listen(const char *s, char *host, size_t host_size, int *port);

/**
 * Where a default data file is: \p def (rules.file's deploy/config/rules.json,
 * schema.registry's schemas/registry.json) relative to the working directory when it is
 * there (a source tree); else the installed copy, bin/../share/caresignal/..., beside the
 * running program; else the source tree the program was built from. Other values come
 * back unchanged. @returns \p def or \p buf.
 */
const char *cs_config_default_path(const char *def, char *buf, size_t size);

/** @returns the key table (borrowed, static), terminated by a row with name NULL. */
const cs_config_key_t *cs_config_keys(void);

/** @returns the table row for \p name, or NULL (kafka.* keys have no row). */
const cs_config_key_t *cs_config_key_find(const char *name);

/**
 * @returns non-zero if the value of \p key is a secret: a row flagged CS_CFG_SECRET or
 * CS_CFG_SECRET_FILE, or a kafka.* property librdkafka treats as sensitive
 * (kafka.sasl.password, kafka.ssl.key.password, ...). Such values are never echoed.
 */
int cs_config_key_is_secret(const char *key);

/**
 * Fills \p cfg with the defaults; "$PROGRAM" defaults take \p program.
 * @returns CS_OK or CS_ERR_NOMEM.
 */
cs_err_t cs_config_init(cs_config_t *cfg, const char *program);

/** Frees everything \p cfg owns and zeroes it. NULL is a no-op. */
void cs_config_clear(cs_config_t *cfg);

/**
 * Sets one key from text. Unknown keys, bad numbers, out-of-range values and bad
 * choices fail with CS_ERR_CONFIG and one line in \p errstr naming the key, e.g.
 * "config key 'score.batch.max': expected an integer from 1 to 100000, got 'x'".
 * `kafka.*` keys are checked against librdkafka's own property table; `kafka.<p>.file`
 * reads property <p> from a file. A secret's value is never part of an error, and an
 * unknown key that begins with a secret key's name is shown only up to that name.
 */
cs_err_t cs_config_set(cs_config_t *cfg, const char *key, const char *value, char *errstr,
                       size_t errstr_size);

/** Parses "key=value" (as given to --set) and calls cs_config_set(). */
cs_err_t cs_config_set_pair(cs_config_t *cfg, const char *pair, char *errstr,
                            size_t errstr_size);

/**
 * Loads a properties file: `key=value` lines, `#` or `!` comments, blank lines;
 * white space around key and value is trimmed; no line continuations. An
 * unreadable file or a line without '=' is CS_ERR_CONFIG naming the file (and line).
 */
cs_err_t cs_config_load_file(cs_config_t *cfg, const char *path, char *errstr,
                             size_t errstr_size);

/**
 * Checks the keys \p program requires are set (non-empty).
 * @returns CS_ERR_CONFIG naming the first missing key.
 */
cs_err_t cs_config_check_required(const cs_config_t *cfg, unsigned program, char *errstr,
                                  size_t errstr_size);

/**
 * Reads a secret from the file \p path for \p key (named in errors): the whole file, one
 * trailing newline removed, at most 64 KiB, no NUL, not empty. Errors name the key and
 * the file, never the content. @returns CS_OK with \p *out (caller frees) or
 * CS_ERR_CONFIG with \p errstr.
 */
cs_err_t cs_config_read_secret_file(const char *key, const char *path, char **out,
                                    char *errstr, size_t errstr_size);

/** @returns the current value of \p key as text (borrowed), NULL if unset/unknown. */
const char *cs_config_get_string(const cs_config_t *cfg, const char *key);

/** @returns the kafka.* value for \p name (without prefix), or NULL; borrowed. */
const char *cs_config_kafka_get(const cs_config_t *cfg, const char *name);

/**
 * Writes the keys \p program uses, with default and description, to \p out
 * (the configuration part of --help).
 */
void cs_config_print_help(FILE *out, unsigned program);

#ifdef __cplusplus
}
#endif
#endif
