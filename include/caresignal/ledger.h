/* caresignal ledger: the consumer runtime's book of input messages in flight — each
 * message's outstanding outputs (holds), which are finished, abandoned or revoked, their
 * bytes — over lib/inflight.c's finished-prefix tracking. No Kafka client is needed to
 * use it (the unit tests drive it directly); the runtime (runtime.h) keeps one. One
 * thread. */
#ifndef CARESIGNAL_LEDGER_H
#define CARESIGNAL_LEDGER_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#include "caresignal/error.h"
#include "caresignal/inflight.h"
#include "caresignal/kafka.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cs_ledger cs_ledger_t;

/** One input message in flight. Handed to the program with one hold, which it gives back
 *  (cs_rt_release) once it has started every output of the message. */
typedef struct cs_rt_msg {
    rd_kafka_message_t *m; /**< the message (may be NULL in tests); valid while held */
    const char *topic;     /**< borrowed from the message */
    int32_t partition;
    int64_t offset;
    void *user;            /**< the program's */
    /** when the raw message this one descends from was published (ms since the epoch;
     *  the header cs.raw.timestamp, or a raw message's own timestamp), -1 unknown */
    int64_t origin_ms;
    /* the ledger's own: */
    cs_ledger_t *ledger;
    struct cs_runtime *rt;
    cs_inflight_msg_t *h;
    int holds;
    int abandoned; /**< will not be finished here: never stored */
    int failed;    /**< an output failed: never stored (the program stops) */
    int forgotten; /**< its partition was revoked: released unstored once done */
    size_t bytes;
    cs_kafka_tracker_t tracker; /**< delivery reports of its produced records */
    struct cs_rt_msg *prev, *next;
} cs_rt_msg_t;

struct cs_ledger {
    cs_inflight_t *inflight;
    cs_rt_msg_t *live, *tail; /* every message not yet freed, oldest first */
    size_t bytes;             /* of those messages */
    /* called for each message finished (every output done; not abandoned or failed) */
    void (*on_finish)(void *opaque, const cs_rt_msg_t *m);
    void *finish_opaque;
};

/** @returns CS_OK or CS_ERR_NOMEM. */
cs_err_t cs_ledger_init(cs_ledger_t *l);

/** Frees every message still in the book, unstored (and its Kafka message). */
void cs_ledger_clear(cs_ledger_t *l);

/**
 * Books message \p km at \p topic (borrowed: must live as long as the message) /
 * \p partition / \p offset, of \p bytes, with one hold. Offsets of a partition come in
 * increasing order. @returns the message, or NULL when out of memory.
 */
cs_rt_msg_t *cs_ledger_add(cs_ledger_t *l, rd_kafka_message_t *km, const char *topic,
                           int32_t partition, int64_t offset, size_t bytes);

/** @returns non-zero if this offset was booked already since the partition was last
 *  forgotten (librdkafka returns messages a second time after a pause and resume). */
int cs_ledger_refetched(const cs_ledger_t *l, const char *topic, int32_t partition,
                        int64_t offset);

/** One more output of \p m is in progress (a record produced, a Redis reply, a sink). */
void cs_rt_hold(cs_rt_msg_t *m);

/** One output of \p m is done (or the initial hold). At the last, the message is
 *  finished: its offset may be stored once every earlier one is finished too. */
void cs_rt_release(cs_rt_msg_t *m);

/** Gives back the caller's hold on \p m, which will not be finished in this process (its
 *  partition is revoked, the program stops): it is never stored, nor is anything after it
 *  on its partition. Freed once its partition is forgotten, or at the end. */
void cs_rt_abandon(cs_rt_msg_t *m);

/** @returns the messages of \p parts (NULL: all) whose work can still finish here (not
 *  abandoned, failed or forgotten), finished ones not counted. */
size_t cs_ledger_busy(const cs_ledger_t *l, const rd_kafka_topic_partition_list_t *parts);

/** The partitions were revoked: their messages are never stored by this process; those
 *  with no output in progress are freed now, the others once their outputs are done. */
void cs_ledger_forget(cs_ledger_t *l, const rd_kafka_topic_partition_list_t *parts);

/** Reports (\p store) where each partition's finished prefix now ends, and releases it.
 *  @returns the number of messages released. */
size_t cs_ledger_collect(cs_ledger_t *l, cs_inflight_store_cb *store, void *opaque);

/** @returns the messages booked and not yet released by a collect. */
size_t cs_ledger_count(const cs_ledger_t *l);

#ifdef __cplusplus
}
#endif
#endif
