/* caresignal paging de-duplication: an alert_id once paged is remembered (in Redis for
 * page.dedupe.ttl.s, and in the process for the most recent ones), so a replayed or
 * re-emitted alert pages once (docs/contract/guarantees.md). */
#ifndef CARESIGNAL_DEDUPE_H
#define CARESIGNAL_DEDUPE_H

#include <stddef.h>

#include "caresignal/error.h"
#include "caresignal/redis.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cs_dedupe cs_dedupe_t;

/**
 * \p redis is borrowed (the caller's connection, reconnected here when it went stale);
 * records are `<ns>:paged:<alert_id>` with a TTL of \p ttl_s. \p cache_max alert ids are
 * also kept in memory, so an alert re-emitted after Redis lost its last writes (AOF
 * everysec) still pages once while this process lives.
 */
cs_dedupe_t *cs_dedupe_new(cs_redis_t *redis, const char *ns, long ttl_s,
                           size_t cache_max);
void cs_dedupe_destroy(cs_dedupe_t *d);

/**
 * @returns 1 if \p alert_id was paged already, 0 if not, CS_ERR_RETRY if Redis cannot say
 * (down, loading, ...: \p errstr) — the caller waits rather than risk paging twice. A
 * connection that went stale (a Redis restart) is reconnected and asked again first.
 */
int cs_dedupe_seen(cs_dedupe_t *d, const char *alert_id, char *errstr,
                   size_t errstr_size);

/**
 * Remembers \p alert_id as paged: in memory at once, in Redis now or, if Redis cannot
 * take it, at a later cs_dedupe_flush. @returns CS_OK or CS_ERR_RETRY (kept for later).
 */
cs_err_t cs_dedupe_remember(cs_dedupe_t *d, const char *alert_id);

/**
 * Writes the Redis record of \p alert_id on \p redis (a connection of the caller's
 * thread: a delivery worker records right after it delivered), reconnecting a stale
 * connection once. Thread-safe with respect to \p d (reads only its settings).
 * @returns non-zero if written.
 */
int cs_dedupe_record(const cs_dedupe_t *d, cs_redis_t *redis, const char *alert_id);

/** Like cs_dedupe_remember, when the record is already in Redis: memory only. */
void cs_dedupe_remember_local(cs_dedupe_t *d, const char *alert_id);

/** Writes the records Redis could not take earlier. @returns how many are still waiting.
 */
size_t cs_dedupe_flush(cs_dedupe_t *d);

#ifdef __cplusplus
}
#endif
#endif
