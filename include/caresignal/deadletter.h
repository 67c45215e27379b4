/* caresignal dead letters: a rejected message, bytes intact, with the reason in headers.
 */
#ifndef CARESIGNAL_DEADLETTER_H
#define CARESIGNAL_DEADLETTER_H

#include <librdkafka/rdkafka.h>

#include "caresignal/kafka.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Header names (docs/contract/reason-codes.md). */
#define CS_HDR_ERROR            "cs.error"
#define CS_HDR_ERROR_FIELD      "cs.error.field"
#define CS_HDR_ORIGIN_TOPIC     "cs.origin.topic"
#define CS_HDR_ORIGIN_PARTITION "cs.origin.partition"
#define CS_HDR_ORIGIN_OFFSET    "cs.origin.offset"
/** the original message's Kafka timestamp (ms), so a re-drive can keep it */
#define CS_HDR_ORIGIN_TIMESTAMP "cs.origin.timestamp"

/** set instead of the value when a dead letter is too large for the broker: the value's
 *  length, and the hex SHA-256 of the value (docs/contract/canonical-event.md) */
#define CS_HDR_VALUE_OMITTED "cs.value.omitted"
#define CS_HDR_VALUE_SHA256  "cs.value.sha256"

/* Reasons beyond docs/contract/reason-codes.md's codes: an alert the pager could not deliver after its
 * retries, and an event whose subject's Redis function call failed (its state refused
 * it: re-drivable to intel.events once the state is repaired). */
#define CS_DL_UNDELIVERABLE "UNDELIVERABLE"
#define CS_DL_STATE_ERROR   "STATE_ERROR"

/**
 * Produces \p orig's key and value byte-for-byte to \p topic with the headers
 * cs.error = \p reason, cs.error.field = \p field ("" if none: a field path, never a
 * value) and the cs.origin.* headers naming where it came from. Delivery is tracked
 * by \p tracker (its on_report gets the dead letter's report). A dead letter larger than
 * the producer may send, or refused by the broker for its size, is sent again without
 * its value, with cs.value.omitted and cs.value.sha256: it is always producible. One that
 * still fails is logged (fatal: topic, partition, offset, cause) and counted as failed.
 * @returns CS_OK or CS_ERR_KAFKA with \p errstr.
 */
cs_err_t cs_deadletter_produce(rd_kafka_t *rk, cs_kafka_tracker_t *tracker,
                               const char *topic, const rd_kafka_message_t *orig,
                               const char *reason, const char *field, char *errstr,
                               size_t errstr_size);

#ifdef __cplusplus
}
#endif
#endif
