/* caresignal Kafka helpers: clients from the configuration, delivery tracking,
 * batch polling and loud offset resets. */
#ifndef CARESIGNAL_KAFKA_H
#define CARESIGNAL_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stdint.h>

#include "caresignal/config.h"
#include "caresignal/error.h"
#include "caresignal/signals.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ clients */

/**
 * A new librdkafka configuration from every kafka.* key of \p cfg, with caresignal's
 * logger and error callback installed (librdkafka's logs become JSON lines).
 * @returns the conf (caller owns; passed on to rd_kafka_new) or NULL with \p errstr set.
 */
rd_kafka_conf_t *cs_kafka_conf_new(const cs_config_t *cfg, char *errstr,
                                   size_t errstr_size);

/**
 * Sets \p name=\p value on \p conf unless the user configured kafka.<name>: our
 * defaults never override an operator's explicit choice.
 * @returns CS_OK or CS_ERR_CONFIG with \p errstr set.
 */
cs_err_t cs_kafka_conf_default(rd_kafka_conf_t *conf, const cs_config_t *cfg,
                               const char *name, const char *value, char *errstr,
                               size_t errstr_size);

/**
 * Per-batch (or per-message) delivery bookkeeping. Pass it to cs_kafka_produce();
 * the delivery-report callback decrements `outstanding` and counts failures.
 * Owned by the caller, who must keep it alive until `outstanding` is 0.
 */
typedef struct cs_kafka_tracker {
    long outstanding; /**< produced, not yet reported */
    long delivered;
    long failed;
    rd_kafka_resp_err_t first_err; /**< first failure */
    /** optional, called from the delivery report of every message (check msg->err);
     *  msg->_private is the tracker, the message's own opaque is not kept */
    void (*on_report)(void *opaque, const rd_kafka_message_t *msg);
    void *opaque;
} cs_kafka_tracker_t;

/** Counts one delivery report of \p err in \p t (outstanding, delivered, failed,
 *  first_err), for code that reports to a tracker itself. */
void cs_kafka_tracker_count(cs_kafka_tracker_t *t, rd_kafka_resp_err_t err);

/**
 * An idempotent producer (enable.idempotence=true, acks=all) unless the user set
 * those kafka.* keys. Delivery reports go to each message's tracker; they are
 * served by rd_kafka_poll()/cs_kafka_tracker_wait().
 * @returns the handle (caller destroys after rd_kafka_flush) or NULL with \p errstr.
 */
rd_kafka_t *cs_kafka_producer_new(const cs_config_t *cfg, char *errstr,
                                  size_t errstr_size);

/** The producers' message.max.bytes unless kafka.message.max.bytes is set: Kafka's
 *  default largest record (1,048,588 bytes) plus 64 KiB for a dead letter's headers. */
#define CS_KAFKA_PRODUCER_MAX_BYTES "1114124"

/** Header on every record the consumers produce for an input: when the raw message it
 *  descends from was published (ms since the epoch, decimal), for the end-to-end age. */
#define CS_HDR_RAW_TIMESTAMP "cs.raw.timestamp"

/** Headers holding CS_HDR_RAW_TIMESTAMP = \p origin_ms; NULL if it is negative (unknown)
 *  or out of memory. A produce that succeeds takes them. */
rd_kafka_headers_t *cs_kafka_origin_headers(int64_t origin_ms);

/** @returns the librdkafka error of this thread's last failed cs_kafka_produce*. */
rd_kafka_resp_err_t cs_kafka_last_produce_error(void);

/**
 * Produces one message (key, value and \p headers copied; \p headers, if not NULL,
 * is taken over on success only). Retries while the local queue is full.
 * \p partition may be RD_KAFKA_PARTITION_UA (partitioner by key).
 * @returns CS_OK (tracker->outstanding incremented) or CS_ERR_KAFKA with \p errstr.
 */
cs_err_t cs_kafka_produce(rd_kafka_t *rk, cs_kafka_tracker_t *tracker, const char *topic,
                          int32_t partition, const void *key, size_t key_len,
                          const void *value, size_t value_len,
                          rd_kafka_headers_t *headers, char *errstr, size_t errstr_size);

/** As cs_kafka_produce, with the message's timestamp set to \p timestamp_ms (epoch ms;
 *  0 or less: now) — a re-drive keeps the original message's time. */
cs_err_t cs_kafka_produce_at(rd_kafka_t *rk, cs_kafka_tracker_t *tracker,
                             const char *topic, int32_t partition, const void *key,
                             size_t key_len, const void *value, size_t value_len,
                             rd_kafka_headers_t *headers, int64_t timestamp_ms,
                             char *errstr, size_t errstr_size);

/**
 * Serves delivery reports until \p tracker has nothing outstanding or
 * \p timeout_ms passes (-1: no limit). Wakes the producer to send at once.
 * @returns CS_OK if all were delivered, CS_ERR_KAFKA if any failed,
 *          CS_ERR_TIMEOUT if some are still outstanding.
 */
cs_err_t cs_kafka_tracker_wait(rd_kafka_t *rk, cs_kafka_tracker_t *tracker,
                               int timeout_ms);

/** Hooks a consumer calls on rebalance. Both optional. */
typedef struct cs_consumer_hooks {
    /**
     * Called with the partitions about to start fetching, each with its start offset
     * already set (the committed offset, or the beginning for a group with none): on
     * assignment, and for partitions restarted after another one's offset reset.
     * May lower or change offsets; an offset above the high watermark is then refused
     * (read from the beginning instead). Return non-CS_OK to stop the program.
     */
    cs_err_t (*on_assign)(void *opaque, rd_kafka_t *rk,
                          rd_kafka_topic_partition_list_t *parts);
    /** Called before partitions are revoked (after which the stored offsets are
     *  committed synchronously, and a refused commit is logged as an error). */
    void (*on_revoke)(void *opaque, rd_kafka_t *rk,
                      rd_kafka_topic_partition_list_t *parts);
    void *opaque;
} cs_consumer_hooks_t;

/**
 * A group consumer for \p topics (\p ntopics names, borrowed) in group \p group.
 * Offsets are stored explicitly (enable.auto.offset.store=false) and committed
 * automatically (unless kafka.enable.auto.commit=false) and always, synchronously, on
 * revoke and on close, so only what the caller stored is committed.
 * A group with no committed offset starts at the beginning (nothing is skipped).
 * An offset the broker no longer has is logged as an error with the partition and
 * the offsets skipped, and counted (cs_kafka_offset_resets()).
 * @returns the handle (caller frees it with cs_kafka_consumer_destroy) or NULL with
 *          \p errstr.
 */
rd_kafka_t *cs_kafka_consumer_new(const cs_config_t *cfg, const char *group,
                                  const char *const *topics, int ntopics,
                                  const cs_consumer_hooks_t *hooks, char *errstr,
                                  size_t errstr_size);

/**
 * Closes a consumer made by cs_kafka_consumer_new (leaves the group, commits the stored
 * offsets) and frees it. NULL is a no-op.
 */
void cs_kafka_consumer_destroy(rd_kafka_t *rk);

/**
 * Polls up to \p max messages: waits up to \p timeout_ms for the first, then takes
 * what is already there. Consumer errors are handled (logged, offset resets
 * repaired) and never returned. Messages are the caller's: rd_kafka_message_destroy.
 * @returns the number of messages in \p msgs.
 */
int cs_kafka_poll_batch(rd_kafka_t *rk, rd_kafka_message_t **msgs, int max,
                        int timeout_ms);

/**
 * Stores offset+1 for each message's partition (the highest per partition wins).
 * Call only after every output of these messages is delivered / applied.
 */
cs_err_t cs_kafka_store_offsets(rd_kafka_t *rk, rd_kafka_message_t *const *msgs, int n);

/**
 * Pauses (or resumes) every partition of the consumer's assignment. Call it on a change
 * only: librdkafka re-seeks a partition on each pause or resume, and may return messages
 * it had already queued a second time after a resume (drop offsets already seen).
 */
void cs_kafka_pause_assignment(rd_kafka_t *rk, int pause);

/** @returns how many offset resets (data gone from the broker) this process saw. */
long cs_kafka_offset_resets(void);

/** @returns how many messages were skipped by those resets (where known). */
long cs_kafka_offsets_skipped(void);

/** @returns how many start positions above a partition's high watermark were refused
 *  (the topic was recreated or migrated; the partition was then read from its start). */
long cs_kafka_positions_refused(void);

/**
 * Reads the value of header \p name of \p msg into \p buf (NUL-terminated,
 * truncated to \p size-1). @returns CS_OK or CS_ERR_NOT_FOUND.
 */
cs_err_t cs_kafka_header_get(const rd_kafka_message_t *msg, const char *name, char *buf,
                             size_t size);

#ifdef __cplusplus
}
#endif
#endif
