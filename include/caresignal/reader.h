/* caresignal topic reader: reads a fixed range of a topic — from the beginning or a time,
 * to the end as it was when reading started — without a consumer group, so nothing a
 * live consumer group has committed is touched. Offsets for a time are exact even on a
 * broker that cannot answer offsets-for-times (the dev broker answers -1). */
#ifndef CARESIGNAL_READER_H
#define CARESIGNAL_READER_H

#include <librdkafka/rdkafka.h>
#include <stdint.h>

#include "caresignal/config.h"
#include "caresignal/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * The earliest offset of \p topic / \p partition whose message timestamp is >= \p ts_ms
 * (the partition's end offset if there is none): Kafka's offsets-for-times, and where
 * the broker answers -1 for data it has, a binary search of the partition's message
 * timestamps (which assumes they do not decrease, as CreateTime from producers does not).
 * \p rk is any client handle on the cluster (a consumer is used for the search's
 * fetches: pass one that has no assignment).
 * @returns CS_OK with \p out, or CS_ERR_KAFKA with \p errstr.
 */
cs_err_t cs_offset_for_time(rd_kafka_t *rk, const char *topic, int32_t partition,
                            int64_t ts_ms, int64_t *out, char *errstr,
                            size_t errstr_size);

/** The partitions of \p topic with their watermarks. Caller frees with free(). */
typedef struct cs_partition_info {
    int32_t partition;
    int64_t low, high;
} cs_partition_info_t;

/** @returns CS_OK with \p *parts (\p *n entries), or CS_ERR_KAFKA with \p errstr. */
cs_err_t cs_topic_partitions(rd_kafka_t *rk, const char *topic,
                             cs_partition_info_t **parts, int *n, char *errstr,
                             size_t errstr_size);

typedef struct cs_reader cs_reader_t;

/**
 * Prepares to read \p topic from \p from_ms (-1: from the oldest message the broker
 * still has) to the end offsets of this moment. Creates its own consumer from \p cfg's
 * kafka.* keys, with no group.
 * @returns the reader or NULL with \p errstr.
 */
cs_reader_t *cs_reader_new(const cs_config_t *cfg, const char *topic, int64_t from_ms,
                           char *errstr, size_t errstr_size);
void cs_reader_destroy(cs_reader_t *r);

/** @returns how many messages the range holds (its end minus its start, per partition).
 */
int64_t cs_reader_total(const cs_reader_t *r);

/** The range: per partition, its start and end offsets (borrowed; n entries). */
const cs_partition_info_t *cs_reader_range(const cs_reader_t *r, int *n);

/**
 * Reads up to \p max messages of the range (the caller destroys them). @returns the
 * number read; 0 once every partition has reached its end (cs_reader_done) or after
 * \p timeout_ms without a message.
 */
int cs_reader_next(cs_reader_t *r, rd_kafka_message_t **msgs, int max, int timeout_ms);

/** @returns non-zero once every message of the range has been returned. */
int cs_reader_done(const cs_reader_t *r);

/** @returns the reader's client handle (borrowed): for metadata, offsets, commits. */
rd_kafka_t *cs_reader_handle(cs_reader_t *r);

#ifdef __cplusplus
}
#endif
#endif
