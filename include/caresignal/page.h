/* caresignal paging: routes from alerts to sinks (stdout, webhook, exec), one delivery
 * attempt at a time, the webhook signature and the readable one-line form. */
#ifndef CARESIGNAL_PAGE_H
#define CARESIGNAL_PAGE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "caresignal/alert.h"
#include "caresignal/config.h"
#include "caresignal/directory.h"
#include "caresignal/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cs_sink_kind {
    CS_SINK_STDOUT,
    CS_SINK_WEBHOOK,
    CS_SINK_EXEC
} cs_sink_kind_t;

/** One route: which alerts (every non-empty set must match) and where they go. */
typedef struct cs_route {
    char name[64];
    unsigned subject_kinds; /**< bit per cs_subject_kind_t; 0 = any */
    unsigned levels;        /**< bit per cs_level_t */
    unsigned alert_kinds;   /**< bit per cs_alert_kind_t */
    char **regions;         /**< NULL = any */
    size_t nregions;
    cs_sink_kind_t sink;
    int text;        /**< stdout: one readable line instead of JSON */
    char *url;       /**< webhook */
    char *secret;    /**< webhook HMAC key; NULL = unsigned */
    long timeout_ms; /**< webhook request / exec run time limit */
    char *command;   /**< exec: run with /bin/sh -c */
    int allow_http;  /**< webhook: an http:// url is allowed (clear text) */
} cs_route_t;

typedef struct cs_routes cs_routes_t;

/**
 * Loads page.routes.file, if set: {"routes": [{"name", "match": {"subject_kind": [...],
 * "level": [...], "kind": [...], "region": [...]}, "sink": "stdout|webhook|exec",
 * "format", "url", "secret" or "secret_env", "timeout_ms", "command"}]}. The first
 * matching route wins; an alert no route matches goes to the default route built from
 * page.sink, page.format, page.webhook.* and page.exec.command. Every route is checked
 * now (a webhook needs a url, exec a command): @returns NULL with \p errstr naming the
 * route and key, or the config key.
 */
cs_routes_t *cs_routes_load(const cs_config_t *cfg, char *errstr, size_t errstr_size);
void cs_routes_destroy(cs_routes_t *r);

/** @returns the route for \p a (never NULL). Borrowed. */
const cs_route_t *cs_routes_match(const cs_routes_t *r, const cs_alert_t *a);

/** @returns the number of routes, the default included; cs_routes_at iterates them. */
size_t cs_routes_count(const cs_routes_t *r);
const cs_route_t *cs_routes_at(const cs_routes_t *r, size_t i);

/** A delivery channel: holds what attempts share (the HTTP connection). One per thread.
 */
typedef struct cs_pager cs_pager_t;

/** \p out receives the stdout sink's lines (borrowed; stdout when NULL); \p dir names
 *  locations in the readable form (borrowed, may be NULL). */
cs_pager_t *cs_pager_new(FILE *out, const cs_directory_t *dir);
void cs_pager_destroy(cs_pager_t *p);

/**
 * One attempt to deliver \p a by \p route (webhook: HTTP POST of the JSON, 2xx =
 * delivered, redirects not followed; exec: /bin/sh -c command with the JSON on its
 * stdin, exit 0 = delivered, run with no inherited descriptor, a minimal environment
 * (PATH, LANG, the CS_* variables) and stdout/stderr on /dev/null, in its own process
 * group, killed as a group after the route's time limit).
 * @returns CS_OK or CS_ERR_RETRY with \p errstr (what failed; never alert content).
 */
cs_err_t cs_pager_deliver(cs_pager_t *p, const cs_route_t *route, const cs_alert_t *a,
                          char *errstr, size_t errstr_size);

/**
 * Writes the X-Caresignal-Signature value for \p body sent at \p timestamp_s (epoch
 * seconds, the X-Caresignal-Timestamp header): "sha256=" and the hex HMAC-SHA256 of
 * "<timestamp_s>.<body>" with \p secret (needs 72 bytes). A receiver recomputes it over
 * the raw body, compares in constant time and refuses a timestamp outside its tolerance,
 * so a captured request cannot be replayed.
 */
void cs_page_signature(const char *secret, int64_t timestamp_s, const void *body,
                       size_t len, char *out, size_t size);

/**
 * The readable one-line form: time, level, change, subject, its name from \p dir, score,
 * and the signals of its recent events, e.g.
 * "2026-11-20 09:15Z INSPECT  RAISED  LOCATION 1-101669119 Rose Court (West Midlands)
 *  score 112.4 [IMMEDIATE] NEVER_EVENT/LOW, SAFEGUARDING/HIGH x2".
 */
void cs_page_text_line(const cs_alert_t *a, const cs_directory_t *dir, char *out,
                       size_t size);

#ifdef __cplusplus
}
#endif
#endif
