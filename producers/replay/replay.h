/* caresignal-replay: shared between its sub-commands (one file each). */
#ifndef CARESIGNAL_REPLAY_H
#define CARESIGNAL_REPLAY_H

#include <stdint.h>

#include "caresignal/cli.h"
#include "caresignal/config.h"
#include "caresignal/engine.h"
#include "caresignal/redis.h"
#include "caresignal/registry.h"
#include "caresignal/rules.h"

/** What every sub-command gets. All borrowed from main(). */
typedef struct replay_ctx {
    const cs_cli_spec_t *spec; /**< for cs_cli_fail (exit 2) and cs_cli_get */
    const cs_config_t *cfg;
    const cs_cli_t *cli;
    int execute; /**< --execute: act; otherwise print exactly what would be done */
} replay_ctx_t;

/* Each returns the process exit status: 0 done (or the dry run printed), 1 runtime
 * failure. Usage and configuration errors stop the program with exit 2 (cs_cli_fail). */
int replay_offsets(const replay_ctx_t *ctx);
int replay_redrive(const replay_ctx_t *ctx);
int replay_rebuild(const replay_ctx_t *ctx);
int replay_whatif(const replay_ctx_t *ctx);

/* ------------------------------------------------------------ events.c: rebuild, whatif
 */

/** A scratch or target namespace being written by a replay. */
typedef struct replay_target {
    const char *ns;
    cs_rules_t *rules; /**< borrowed */
    cs_scorer_t *scorer;
    cs_redis_t *redis; /**< borrowed */
    cs_engine_t *engine;
    /** called with each batch's alerts (may be NULL) */
    void (*on_alerts)(void *opaque, const cs_alert_t *alerts, int n);
    void *opaque;
    long applied, duplicates, alerts;
    int positions; /**< set by replay_events: whether its batches record positions */
} replay_target_t;

/** Loads the scorer's Redis function for \p t (rules, namespace) on \p redis. Exit 2 on a
 * bad namespace, 1 if Redis refuses. */
void replay_target_init(const replay_ctx_t *ctx, replay_target_t *t, const char *ns,
                        cs_rules_t *rules, cs_redis_t *redis);
void replay_target_release(replay_target_t *t);

/** @returns the number of keys under "<ns>:" (stops counting at \p limit). */
long replay_namespace_keys(cs_redis_t *redis, const char *ns, long limit);

/** Deletes every key under "<ns>:". @returns how many. */
long replay_namespace_delete(cs_redis_t *redis, const char *ns);

/**
 * Replays topic.events from \p from_ms (-1: the oldest the broker has) to its end as of
 * now through every target's engine (positions recorded when \p positions), with a
 * progress display; each batch's alerts are acknowledged at once (nothing is paged).
 * Undecodable messages are counted in \p *undecodable and skipped.
 * @returns the number of events read, or -1 on failure (logged).
 */
long replay_events(const replay_ctx_t *ctx, cs_registry_t *reg, int64_t from_ms,
                   replay_target_t *targets, int ntargets, int positions,
                   const char *what, long *undecodable);

/** Prints the range a replay of topic.events from \p from_ms would read (dry runs).
 *  @returns the number of events in it, or -1. */
long replay_describe_range(const replay_ctx_t *ctx, int64_t from_ms);

/** Connects to Redis or exits 1 with a clear line. */
cs_redis_t *replay_redis(const replay_ctx_t *ctx);

/** Parses an ISO-8601 option value (an offset required) into epoch ms, or exits 2
 *  naming the option. @returns -1 if the option was not given. */
int64_t replay_time_option(const replay_ctx_t *ctx, const char *option);

#endif
