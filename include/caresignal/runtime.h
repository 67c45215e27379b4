/* caresignal consumer runtime: the one loop the three consumers share (docs/contract/guarantees.md).
 *
 * It polls continuously and never waits for a delivery report, a Redis reply or a sink
 * before polling again: a message is handed to the program's handler as soon as it is
 * fetched, with whatever else is there at that moment (never waiting to fill a batch).
 * Each input message is tracked until all its outputs are done — the records produced
 * for it (delivery reports), and whatever else the handler holds it for (Redis replies,
 * sink deliveries) — and a partition's offset is stored up to the longest prefix of
 * finished messages, so at-least-once holds with any number of batches in flight.
 * In-flight work is bounded in messages and bytes: past the bound, or while the handler
 * asks for it (its store cannot answer, a route is full), the partitions are paused and
 * the consumer is still polled (the group sees us alive, rebalances are served).
 * Revoked partitions' work is finished (for a bounded time) and their offsets stored and
 * committed before the revoke returns; a stop drains what is in flight the same way,
 * stores, commits and closes. Offset resets and start positions are lib/kafka.c's.
 *
 * Threads: everything here runs on the thread that calls cs_runtime_run, except
 * cs_runtime_wake, which any thread may call (a worker that finished something).
 */
#ifndef CARESIGNAL_RUNTIME_H
#define CARESIGNAL_RUNTIME_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#include "caresignal/config.h"
#include "caresignal/error.h"
#include "caresignal/kafka.h"
#include "caresignal/ledger.h"
#include "caresignal/metrics.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cs_runtime cs_runtime_t;

/** What a program plugs into the runtime. Every callback is optional but on_messages. */
typedef struct cs_runtime_handler {
    /** Messages just fetched, in consumption order (a message fetched a second time
     *  after a pause is dropped before this). */
    void (*on_messages)(void *opaque, cs_rt_msg_t *const *msgs, size_t n);
    /**
     * Every turn of the loop, after the consumer and the producer were served: collect
     * what workers finished, start what waits. May lower \p *next_ms (monotonic ms) to be
     * called again by then. @returns non-zero while consumption must stay paused (the
     * store cannot answer, a route is full).
     */
    int (*on_turn)(void *opaque, int64_t *next_ms);
    /** Partitions are being revoked (\p parts), or the program stops (\p parts NULL):
     *  start at once whatever waits to be started (a batch being built), so that the
     *  drain can finish it. Work the handler will not start may be given up here with
     *  cs_rt_abandon. */
    void (*on_flush)(void *opaque, const rd_kafka_topic_partition_list_t *parts);
    /** Start positions of newly assigned partitions (see cs_consumer_hooks_t). */
    cs_err_t (*on_assign)(void *opaque, rd_kafka_t *rk,
                          rd_kafka_topic_partition_list_t *parts);
    /** Every stats interval, and once at the end. */
    void (*on_stats)(void *opaque);
    /** SIGHUP. */
    void (*on_reload)(void *opaque);
    void *opaque;
} cs_runtime_handler_t;

typedef struct cs_runtime_options {
    const char *const *topics; /**< subscribed (borrowed for the call) */
    int ntopics;
    /** topics the program produces to (borrowed for the call): their metadata is asked
     *  for at start, so the first record to each does not wait for it */
    const char *const *outputs;
    int noutputs;
    size_t max_messages;  /**< in flight at most (then nothing more is taken) */
    size_t max_bytes;     /**< of in-flight messages' keys and values */
    size_t max_poll;      /**< messages handed to on_messages at once */
    long revoke_drain_ms; /**< how long revoked partitions' work may hold a rebalance */
    long stop_drain_ms;   /**< how long a stop waits for what is in flight */
    long stats_interval_ms;
    long pause_after_ms;  /**< at a bound this long: pause (0: 1,000) */
    /** the inputs are raw messages: their own timestamp is when they were published
     *  (otherwise the header cs.raw.timestamp says it, see lib/kafka.h) */
    int origin_is_timestamp;
} cs_runtime_options_t;

/** What the runtime has seen (for stats and, later, metrics). */
typedef struct cs_runtime_stats {
    size_t in_flight;    /**< messages not yet stored (from the ledger) */
    size_t in_flight_bytes;
    long consumed;       /**< messages handed to the handler */
    long refetched;      /**< dropped: fetched a second time after a pause */
    long produced;       /**< records produced for messages */
    long pauses;         /**< times consumption paused */
    long turns;          /**< of the loop */
    long waits, wait_timeouts; /**< sleeps, and those that ended without a wake-up */
    long requeued; /**< turns that found more waiting right away */
    long full_turns; /**< turns that took nothing: in flight at a bound */
    int paused;
    int held;            /**< paused at the handler's request */
} cs_runtime_stats_t;

/**
 * A runtime for \p cfg's group (group.id) over \p opt->topics, with its idempotent
 * producer. \p handler is copied. @returns NULL with \p errstr (configuration: the
 * caller exits 2).
 */
cs_runtime_t *cs_runtime_new(const cs_config_t *cfg, const cs_runtime_options_t *opt,
                             const cs_runtime_handler_t *handler, char *errstr,
                             size_t errstr_size);

/** Runs until a stop is requested (cs_signals), then drains, stores and returns. */
void cs_runtime_run(cs_runtime_t *rt);

/** Leaves the group (the revoke commits what was stored), closes the consumer, flushes
 *  and closes the producer, frees what is left in flight unstored. NULL is a no-op. */
void cs_runtime_destroy(cs_runtime_t *rt);

rd_kafka_t *cs_runtime_producer(cs_runtime_t *rt);
rd_kafka_t *cs_runtime_consumer(cs_runtime_t *rt);

/** Makes the loop turn now (any thread; async-signal-safe). */
void cs_runtime_wake(cs_runtime_t *rt);

void cs_runtime_get_stats(const cs_runtime_t *rt, cs_runtime_stats_t *st);

/** The caresignal_messages_produced_total series of \p topic, for records a handler
 *  produces itself (the scorer's alerts); cs_rt_produce and cs_rt_deadletter count
 *  theirs. */
cs_series_t *cs_runtime_produced_series(const char *topic);

/** Produces a record for \p m (as cs_kafka_produce); \p m is finished only once it is
 *  delivered. A record that cannot be delivered stops the program (\p m not stored). */
cs_err_t cs_rt_produce(cs_rt_msg_t *m, const char *topic, int32_t partition,
                       const void *key, size_t key_len, const void *value,
                       size_t value_len, char *errstr, size_t errstr_size);

/** Sends \p m to \p topic as a dead letter (lib/deadletter.c) with \p reason and
 *  \p field; \p m is finished once it is delivered. One that cannot even be produced
 *  is logged (fatal: which message, why) and stops the program, \p m unstored. */
cs_err_t cs_rt_deadletter(cs_rt_msg_t *m, const char *topic, const char *reason,
                          const char *field);

/**
 * Flow control at the in-flight bounds, pure (the caller says what is in flight and what
 * time it is). A turn takes at most cs_flow_room() messages, so in flight stays within
 * the bounds without pausing. Consumption is paused (rd_kafka_pause) only while the
 * handler holds (its store is down) or once in flight has stayed at a bound for
 * pause_after_ms (an output that is slow for long): a pause stops librdkafka's fetcher
 * and purges what it pre-fetched, and a resume fetches it again, so a pause on every
 * brief fill costs more than it protects (under a lag, more than half the scorer's rate).
 */
typedef struct cs_flow {
    size_t max_messages, max_bytes, max_poll;
    int64_t pause_after_ms;
    int paused;
    int64_t full_since; /**< when in flight reached a bound (ms); -1 while below both */
} cs_flow_t;

void cs_flow_init(cs_flow_t *f, size_t max_messages, size_t max_bytes, size_t max_poll,
                  int64_t pause_after_ms);

/** Messages the next turn may take: what is left under the message bound, none at
 *  either bound; while paused, max_poll (the paused partitions bring nothing new, and
 *  the consumer's queue must still be served: rebalances and errors arrive there). */
size_t cs_flow_room(const cs_flow_t *f, size_t msgs, size_t bytes);

/** After a turn at \p now_ms: @returns whether consumption should now be paused (and
 *  records it in f->paused): while \p held, or once in flight has been at a bound for
 *  pause_after_ms; once paused, until not held and both figures are at or below half
 *  their bound. */
int cs_flow_update(cs_flow_t *f, size_t msgs, size_t bytes, int held, int64_t now_ms);

/** When the pause for staying at a bound falls due (ms), INT64_MAX if none is coming. */
int64_t cs_flow_due(const cs_flow_t *f);

#ifdef __cplusplus
}
#endif
#endif
