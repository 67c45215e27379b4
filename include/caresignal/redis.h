/* caresignal Redis helper: timeouts, AUTH, Lua function libraries, pipelines, reconnect.
 */
#ifndef CARESIGNAL_REDIS_H
#define CARESIGNAL_REDIS_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#include "caresignal/config.h"
#include "caresignal/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cs_redis cs_redis_t;

/**
 * A handle for one Redis node; does not connect yet (see cs_redis_connect).
 * \p host and \p password are copied; \p password may be NULL (no AUTH).
 * \p timeout_ms bounds the connect and every command (hiredis 0.14 has no
 * command timeout by default: a hung server would hang us).
 * @returns the handle (cs_redis_destroy) or NULL when out of memory.
 */
cs_redis_t *cs_redis_new(const char *host, int port, const char *password,
                         int timeout_ms);

/**
 * A handle for a Redis Cluster reached through \p nodes ("host:port,...", seeds: any
 * reachable one gives the slot map). Every call is routed by the hash slot of its key
 * (lib/cluster.c; docs/contract/redis-layout.md, "Redis Cluster"); the rest of this API
 * is the same as for one node.
 */
cs_redis_t *cs_redis_new_cluster(const char *nodes, const char *password, int timeout_ms);

/** cs_redis_new() from redis.host, redis.port, redis.password, redis.timeout.ms; or
 *  cs_redis_new_cluster() when redis.cluster.nodes is set. */
cs_redis_t *cs_redis_new_from_config(const cs_config_t *cfg);

/** @returns non-zero for a Redis Cluster handle. */
int cs_redis_is_cluster(const cs_redis_t *r);

/** @returns how many masters hold the state: 1 for one node, else the cluster's masters
 *  (as of the last connect; 0 before it). */
size_t cs_redis_shards(const cs_redis_t *r);

/**
 * The hash tags (what goes between `{` and `}`) of keys that live on master \p shard: the
 * tag of its lowest slot first, then of the start of each other slot range it holds.
 * @returns how many were put in \p tags (0 on one node: no tag is needed).
 */
size_t cs_redis_shard_tags(const cs_redis_t *r, size_t shard, const char **tags,
                           size_t max);

/**
 * On a Redis Cluster: waits (WAIT 1, half of redis.timeout.ms) until a replica of every
 * master that has one holds everything this handle wrote, so that a fail-over cannot lose
 * it. A replica that does not answer in time is logged and counted, not waited for. One
 * node: nothing to do. @returns CS_OK, or CS_ERR_RETRY when a master was lost meanwhile
 * (its writes may be lost too: write them again).
 */
cs_err_t cs_redis_wait_replicas(cs_redis_t *r, char *errstr, size_t errstr_size);

/** Counters of a cluster handle: MOVED and ASK redirections followed, WAITs that timed
 *  out (all 0 for one node). */
void cs_redis_cluster_counts(const cs_redis_t *r, long *moved, long *ask, long *lagging);

/** The Redis Cluster hash slot of a key (CRC16 of its hash tag, or of the key). */
unsigned cs_cluster_key_slot(const char *key, size_t len);

/** A hash tag whose slot is \p slot: the smallest non-negative integer, in decimal,
 *  that hashes to it (a fixed, documented choice: key names built with it are stable). */
const char *cs_cluster_slot_tag(unsigned slot);

/** Closes and frees. NULL is a no-op. */
void cs_redis_destroy(cs_redis_t *r);

/**
 * (Re)connects: drops any old connection, connects, sends AUTH if configured, and
 * re-loads every library registered with cs_redis_function_load (a restarted or
 * failed-over server may not have it).
 * @returns CS_OK; CS_ERR_RETRY when the server cannot be reached (try later);
 *          CS_ERR_FATAL when it answers but refuses us (bad password, bad library).
 */
cs_err_t cs_redis_connect(cs_redis_t *r, char *errstr, size_t errstr_size);

/**
 * Connects, retrying with exponential backoff (100 ms doubling to 5 s) until it
 * succeeds, \p max_wait_ms passes (-1: no limit) or a stop is requested. Logs once
 * when the server becomes unreachable and once when it is back.
 * @returns as cs_redis_connect; CS_ERR_RETRY if it gave up.
 */
cs_err_t cs_redis_connect_retry(cs_redis_t *r, long max_wait_ms, char *errstr,
                                size_t errstr_size);

/** @returns non-zero while a connection is believed healthy. */
int cs_redis_connected(const cs_redis_t *r);

/** @returns the hiredis context (borrowed; NULL when not connected). */
redisContext *cs_redis_context(cs_redis_t *r);

/**
 * Loads \p code (a Lua library starting with "#!lua name=...") with
 * FUNCTION LOAD REPLACE, and remembers it for every later reconnect.
 * \p code is copied. @returns CS_OK, CS_ERR_RETRY (connection), CS_ERR_FATAL
 * (Redis rejected the code; \p errstr has its message).
 */
cs_err_t cs_redis_function_load(cs_redis_t *r, const char *code, char *errstr,
                                size_t errstr_size);

/**
 * Runs one command given as arguments (binary-safe; \p argvlen may be NULL for C
 * strings). @returns the reply (caller frees with freeReplyObject), or NULL on a
 * connection error (the connection is then dropped; \p errstr says why). An error
 * reply is returned as a reply of type REDIS_REPLY_ERROR.
 */
redisReply *cs_redis_command(cs_redis_t *r, int argc, const char **argv,
                             const size_t *argvlen, char *errstr, size_t errstr_size);

/**
 * @returns non-zero if \p reply is an error reply that means "try again later"
 * (docs/contract/guarantees.md): LOADING, BUSY, READONLY, MASTERDOWN, TRYAGAIN, OOM,
 * MISCONF, NOREPLICAS, CLUSTERDOWN.
 */
int cs_redis_reply_retriable(const redisReply *reply);

/**
 * Checks that the server never evicts keys (maxmemory-policy noeviction, read from INFO
 * memory): an eviction policy would silently drop seen sets (events counted twice) or
 * state. @returns CS_OK; CS_ERR_CONFIG with \p errstr naming the setting; CS_ERR_RETRY
 * (connection).
 */
cs_err_t cs_redis_check_noeviction(cs_redis_t *r, char *errstr, size_t errstr_size);

/**
 * A pipeline: commands are kept until cs_redis_pipe_reset, so after a dropped
 * connection the same commands can be sent again in full. Only put idempotent
 * commands in a pipeline you may re-send (our FCALLs are).
 */
typedef struct cs_redis_pipe cs_redis_pipe_t;

cs_redis_pipe_t *cs_redis_pipe_new(void);
void cs_redis_pipe_destroy(cs_redis_pipe_t *p);

/** Appends one command (arguments copied). @returns CS_OK or CS_ERR_NOMEM. */
cs_err_t cs_redis_pipe_add(cs_redis_pipe_t *p, int argc, const char **argv,
                           const size_t *argvlen);

/** @returns the number of commands in \p p. */
size_t cs_redis_pipe_count(const cs_redis_pipe_t *p);

/**
 * Sends every command and reads every reply. Earlier replies are discarded first.
 * Error replies that mean "try again" (cs_redis_reply_retriable) and a missing function
 * (re-loaded, then sent once more) are handled here.
 * @returns CS_OK (inspect each reply: one may still be an error reply),
 *          CS_ERR_RETRY (connection lost or server busy: reconnect and call again;
 *          no reply is kept), or CS_ERR_FATAL.
 */
cs_err_t cs_redis_pipe_exec(cs_redis_t *r, cs_redis_pipe_t *p, char *errstr,
                            size_t errstr_size);

/** @returns reply \p i of the last successful exec (borrowed, valid until the next
 *  exec or reset), or NULL. */
const redisReply *cs_redis_pipe_reply(const cs_redis_pipe_t *p, size_t i);

/** Removes every command and reply. */
void cs_redis_pipe_reset(cs_redis_pipe_t *p);

#ifdef __cplusplus
}
#endif
#endif
