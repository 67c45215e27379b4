/* caresignal dead letters: original key and value unchanged, reason and origin in
 * headers. */
#include "caresignal/deadletter.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

cs_err_t cs_deadletter_produce(rd_kafka_t *rk, cs_kafka_tracker_t *tracker,
                               const char *topic, const rd_kafka_message_t *orig,
                               const char *reason, const char *field, char *errstr,
                               size_t errstr_size)
{
    char partition[16], offset[24], ts[24];
    rd_kafka_timestamp_type_t tstype;
    snprintf(partition, sizeof(partition), "%" PRId32, orig->partition);
    snprintf(offset, sizeof(offset), "%" PRId64, orig->offset);
    snprintf(ts, sizeof(ts), "%" PRId64, rd_kafka_message_timestamp(orig, &tstype));
    rd_kafka_headers_t *h = rd_kafka_headers_new(6);
    rd_kafka_header_add(h, CS_HDR_ERROR, -1, reason, -1);
    rd_kafka_header_add(h, CS_HDR_ERROR_FIELD, -1, field ? field : "", -1);
    rd_kafka_header_add(h, CS_HDR_ORIGIN_TOPIC, -1, rd_kafka_topic_name(orig->rkt), -1);
    rd_kafka_header_add(h, CS_HDR_ORIGIN_PARTITION, -1, partition, -1);
    rd_kafka_header_add(h, CS_HDR_ORIGIN_OFFSET, -1, offset, -1);
    rd_kafka_header_add(h, CS_HDR_ORIGIN_TIMESTAMP, -1, ts, -1);
    cs_err_t err =
        cs_kafka_produce(rk, tracker, topic, RD_KAFKA_PARTITION_UA, orig->key,
                         orig->key_len, orig->payload, orig->len, h, errstr, errstr_size);
    if (err)
        rd_kafka_headers_destroy(h);
    return err;
}
