/* caresignal dead letters: original key and value unchanged, reason and origin in
 * headers; a dead letter too large for the broker goes without its value (its length and
 * SHA-256 instead), so no message can stop a partition (docs/contract/canonical-event.md, docs/contract/guarantees.md). */
#include "caresignal/deadletter.h"

#include <inttypes.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caresignal/log.h"
#include "caresignal/metrics.h"

/*
 * One dead letter in flight. Its first member is the tracker librdkafka reports it to,
 * so the delivery report finds it; the outcome is then passed on to the caller's tracker.
 * When the broker (or our producer's message.max.bytes) refuses the message for its
 * size, the report produces it again without the value, once.
 */
typedef struct cs_dl {
    cs_kafka_tracker_t t;
    cs_kafka_tracker_t *user;
    rd_kafka_t *rk;
    char topic[256];
    int fallback; /* the value-less form was sent */
} cs_dl_t;

static int cs_too_large(rd_kafka_resp_err_t err)
{
    return err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ||
           err == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE;
}

static void cs_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(data ? data : "", data ? len : 0, md, &n, EVP_sha256(), NULL);
    for (unsigned int i = 0; i < n && i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* Produces the dead letter without its value: its headers, plus cs.value.omitted (the
 * value's length) and cs.value.sha256. \p hdrs is copied. */
static cs_err_t cs_produce_without_value(cs_dl_t *dl, const void *key, size_t key_len,
                                         const void *value, size_t value_len,
                                         const rd_kafka_headers_t *hdrs, char *errstr,
                                         size_t errstr_size)
{
    char len[24], sha[65];
    snprintf(len, sizeof(len), "%zu", value_len);
    cs_sha256_hex(value, value_len, sha);
    rd_kafka_headers_t *h = hdrs ? rd_kafka_headers_copy(hdrs) : rd_kafka_headers_new(2);
    rd_kafka_header_add(h, CS_HDR_VALUE_OMITTED, -1, len, -1);
    rd_kafka_header_add(h, CS_HDR_VALUE_SHA256, -1, sha, -1);
    dl->fallback = 1;
    cs_err_t err = cs_kafka_produce(dl->rk, &dl->t, dl->topic, RD_KAFKA_PARTITION_UA, key,
                                    key_len, NULL, 0, h, errstr, errstr_size);
    if (err)
        rd_kafka_headers_destroy(h);
    return err;
}

static void cs_dl_header(const rd_kafka_message_t *m, const char *name, char *buf,
                         size_t size)
{
    if (cs_kafka_header_get(m, name, buf, size))
        snprintf(buf, size, "?");
}

static void cs_dl_report(void *opaque, const rd_kafka_message_t *msg)
{
    cs_dl_t *dl = opaque;
    char errstr[512];
    if (msg->err && cs_too_large(msg->err) && !dl->fallback) {
        rd_kafka_headers_t *h = NULL;
        rd_kafka_message_headers(msg, &h);
        cs_log_warn("dead letter too large for the broker: sent without its value",
                    "{s:s, s:I}", "error", rd_kafka_err2name(msg->err), "value_bytes",
                    (json_int_t)msg->len);
        if (!cs_produce_without_value(dl, msg->key, msg->key_len, msg->payload, msg->len,
                                      h, errstr, sizeof(errstr)))
            return; /* its report comes back here */
    }
    if (msg->err) {
        /* nothing more can be done for this message: the consumer stops (without storing
         * its offset) and says exactly which one */
        char topic[256], partition[16], offset[24];
        cs_dl_header(msg, CS_HDR_ORIGIN_TOPIC, topic, sizeof(topic));
        cs_dl_header(msg, CS_HDR_ORIGIN_PARTITION, partition, sizeof(partition));
        cs_dl_header(msg, CS_HDR_ORIGIN_OFFSET, offset, sizeof(offset));
        cs_log_fatal("cannot dead-letter a message", "{s:s, s:s, s:s, s:s, s:s}", "topic",
                     topic, "partition", partition, "offset", offset, "error",
                     rd_kafka_err2str(msg->err));
    }
    cs_kafka_tracker_t *u = dl->user;
    if (u)
        cs_kafka_tracker_count(u, msg->err);
    if (dl->t.outstanding == 0)
        free(dl);
    if (u && u->on_report)
        u->on_report(u->opaque, msg);
}

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
    cs_dl_t *dl = calloc(1, sizeof(*dl));
    if (!dl) {
        snprintf(errstr, errstr_size, "out of memory");
        return CS_ERR_NOMEM;
    }
    dl->t.on_report = cs_dl_report;
    dl->t.opaque = dl;
    dl->user = tracker;
    dl->rk = rk;
    snprintf(dl->topic, sizeof(dl->topic), "%s", topic);
    rd_kafka_headers_t *h = rd_kafka_headers_new(6);
    rd_kafka_header_add(h, CS_HDR_ERROR, -1, reason, -1);
    rd_kafka_header_add(h, CS_HDR_ERROR_FIELD, -1, field ? field : "", -1);
    rd_kafka_header_add(h, CS_HDR_ORIGIN_TOPIC, -1, rd_kafka_topic_name(orig->rkt), -1);
    rd_kafka_header_add(h, CS_HDR_ORIGIN_PARTITION, -1, partition, -1);
    rd_kafka_header_add(h, CS_HDR_ORIGIN_OFFSET, -1, offset, -1);
    rd_kafka_header_add(h, CS_HDR_ORIGIN_TIMESTAMP, -1, ts, -1);
    cs_err_t err =
        cs_kafka_produce(rk, &dl->t, topic, RD_KAFKA_PARTITION_UA, orig->key,
                         orig->key_len, orig->payload, orig->len, h, errstr, errstr_size);
    if (err && cs_kafka_last_produce_error() == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) {
        /* larger than our producer may send (kafka.message.max.bytes) */
        cs_log_warn("dead letter larger than the producer's message.max.bytes: sent "
                    "without its value",
                    "{s:s, s:i, s:I, s:I}", "topic", rd_kafka_topic_name(orig->rkt),
                    "partition", (int)orig->partition, "offset", (json_int_t)orig->offset,
                    "value_bytes", (json_int_t)orig->len);
        err = cs_produce_without_value(dl, orig->key, orig->key_len, orig->payload,
                                       orig->len, h, errstr, errstr_size);
    }
    if (err || dl->fallback)
        rd_kafka_headers_destroy(h); /* not taken by the first produce */
    if (err) {
        free(dl);
        return err;
    }
    if (tracker)
        tracker->outstanding++;
    cs_series_add(cs_metric_at(cs_metric(CS_METRIC_COUNTER, "caresignal_dead_letters_total",
                                         "messages sent to the dead-letter topic, by reason",
                                         "reason"),
                               reason),
                  1);
    return CS_OK;
}
