/* caresignal topic reader: a fixed offset range of a topic, read without a consumer
 * group; offsets for a time, exact even where the broker cannot answer them. */
#include "caresignal/reader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "caresignal/kafka.h"
#include "caresignal/log.h"
#include "caresignal/signals.h"

cs_err_t cs_topic_partitions(rd_kafka_t *rk, const char *topic,
                             cs_partition_info_t **parts, int *n, char *errstr,
                             size_t errstr_size)
{
    /* the whole cluster's metadata, not the topic's: asking for a topic by name makes
     * a broker that auto-creates topics (the dev broker does) create it */
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, NULL, &md, 10000);
    if (err) {
        snprintf(errstr, errstr_size, "topic %s: metadata: %s", topic,
                 rd_kafka_err2str(err));
        return CS_ERR_KAFKA;
    }
    const struct rd_kafka_metadata_topic *t = NULL;
    for (int i = 0; i < md->topic_cnt && !t; i++)
        if (!strcmp(md->topics[i].topic, topic))
            t = &md->topics[i];
    if (!t || t->err) {
        snprintf(errstr, errstr_size, "topic %s: %s", topic,
                 t ? rd_kafka_err2str(t->err) : "no such topic on the cluster");
        rd_kafka_metadata_destroy(md);
        return CS_ERR_KAFKA;
    }
    int cnt = t->partition_cnt;
    cs_partition_info_t *p = calloc((size_t)(cnt ? cnt : 1), sizeof(*p));
    for (int i = 0; i < cnt; i++)
        p[i].partition = t->partitions[i].id;
    rd_kafka_metadata_destroy(md);
    for (int i = 0; i < cnt; i++) {
        err = rd_kafka_query_watermark_offsets(rk, topic, p[i].partition, &p[i].low,
                                               &p[i].high, 10000);
        if (err) {
            snprintf(errstr, errstr_size, "topic %s [%d]: watermarks: %s", topic,
                     (int)p[i].partition, rd_kafka_err2str(err));
            free(p);
            return CS_ERR_KAFKA;
        }
    }
    *parts = p;
    *n = cnt;
    return CS_OK;
}

/* The message at or after \p offset (its offset and timestamp); 0 if there is one. */
static int cs_probe(rd_kafka_t *rk, const char *topic, int32_t partition, int64_t offset,
                    int64_t *found, int64_t *ts)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = offset;
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    int rc = -1;
    int64_t deadline = cs_mono_ms() + 10000;
    while (rc && cs_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m)
            continue;
        if (!m->err && m->partition == partition && m->offset >= offset) {
            rd_kafka_timestamp_type_t t;
            *found = m->offset;
            *ts = rd_kafka_message_timestamp(m, &t);
            rc = 0;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_assign(rk, NULL);
    return rc;
}

cs_err_t cs_offset_for_time(rd_kafka_t *rk, const char *topic, int32_t partition,
                            int64_t ts_ms, int64_t *out, char *errstr, size_t errstr_size)
{
    int64_t lo, hi;
    rd_kafka_resp_err_t err =
        rd_kafka_query_watermark_offsets(rk, topic, partition, &lo, &hi, 10000);
    if (err) {
        snprintf(errstr, errstr_size, "topic %s [%d]: %s", topic, (int)partition,
                 rd_kafka_err2str(err));
        return CS_ERR_KAFKA;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = ts_ms;
    err = rd_kafka_offsets_for_times(rk, l, 10000);
    int64_t answer = err ? -1 : l->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(l);
    if (answer >= 0) {
        *out = answer;
        return CS_OK;
    }
    /* -1: no such message, or a broker that cannot tell (the dev broker). Search. */
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2, found, ts;
        if (cs_probe(rk, topic, partition, mid, &found, &ts)) {
            snprintf(errstr, errstr_size, "topic %s [%d]: no message at offset %lld",
                     topic, (int)partition, (long long)mid);
            return CS_ERR_KAFKA;
        }
        if (ts >= ts_ms)
            hi = mid; /* offsets between mid and found do not exist */
        else
            lo = found + 1;
    }
    *out = lo;
    return CS_OK;
}

/* ------------------------------------------------------------------ reader */

struct cs_reader {
    rd_kafka_t *rk;
    char *topic;
    cs_partition_info_t *range; /* low = start, high = end (exclusive) */
    int n;
    int *done;
    int remaining; /* partitions not yet at their end */
};

rd_kafka_t *cs_reader_handle(cs_reader_t *r)
{
    return r->rk;
}

void cs_reader_destroy(cs_reader_t *r)
{
    if (!r)
        return;
    if (r->rk) {
        rd_kafka_assign(r->rk, NULL);
        rd_kafka_destroy(r->rk);
    }
    free(r->range);
    free(r->done);
    free(r->topic);
    free(r);
}

cs_reader_t *cs_reader_new(const cs_config_t *cfg, const char *topic, int64_t from_ms,
                           char *errstr, size_t errstr_size)
{
    cs_reader_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->topic = strdup(topic);
    rd_kafka_conf_t *conf = cs_kafka_conf_new(cfg, errstr, errstr_size);
    if (!conf)
        goto fail;
    char group[64];
    snprintf(group, sizeof(group), "caresignal-reader-%d", (int)getpid());
    /* no group membership, no commits: a live group's offsets are never touched */
    rd_kafka_conf_set(conf, "group.id", group, NULL, 0);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", NULL, 0);
    rd_kafka_conf_set(conf, "enable.auto.offset.store", "false", NULL, 0);
    rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", NULL, 0);
    r->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size);
    if (!r->rk) {
        rd_kafka_conf_destroy(conf);
        goto fail;
    }
    rd_kafka_poll_set_consumer(r->rk);
    if (cs_topic_partitions(r->rk, topic, &r->range, &r->n, errstr, errstr_size))
        goto fail;
    r->done = calloc((size_t)(r->n ? r->n : 1), sizeof(int));
    for (int i = 0; i < r->n; i++)
        if (from_ms >= 0 && r->range[i].low < r->range[i].high &&
            cs_offset_for_time(r->rk, topic, r->range[i].partition, from_ms,
                               &r->range[i].low, errstr, errstr_size))
            goto fail;
    rd_kafka_topic_partition_list_t *l =
        rd_kafka_topic_partition_list_new(r->n ? r->n : 1);
    for (int i = 0; i < r->n; i++) {
        if (r->range[i].low >= r->range[i].high) {
            r->done[i] = 1;
            continue;
        }
        rd_kafka_topic_partition_list_add(l, topic, r->range[i].partition)->offset =
            r->range[i].low;
        r->remaining++;
    }
    rd_kafka_assign(r->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    return r;
fail:
    cs_reader_destroy(r);
    return NULL;
}

int64_t cs_reader_total(const cs_reader_t *r)
{
    int64_t total = 0;
    for (int i = 0; i < r->n; i++)
        total +=
            r->range[i].high > r->range[i].low ? r->range[i].high - r->range[i].low : 0;
    return total;
}

const cs_partition_info_t *cs_reader_range(const cs_reader_t *r, int *n)
{
    *n = r->n;
    return r->range;
}

int cs_reader_done(const cs_reader_t *r)
{
    return r->remaining == 0;
}

/* The range entry of \p partition (r->n if none): partitions are numbered 0..n-1, so it
 * is their own index unless the metadata said otherwise. */
static int cs_reader_index(const cs_reader_t *r, int32_t partition)
{
    if (partition >= 0 && partition < r->n && r->range[partition].partition == partition)
        return partition;
    int i = 0;
    while (i < r->n && r->range[i].partition != partition)
        i++;
    return i;
}

int cs_reader_next(cs_reader_t *r, rd_kafka_message_t **msgs, int max, int timeout_ms)
{
    int got = 0;
    int timeout = timeout_ms;
    while (got < max && r->remaining > 0) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(r->rk, timeout);
        if (!m)
            break;
        timeout = 0;
        int i = cs_reader_index(r, m->partition);
        if (m->err || i == r->n || r->done[i] || m->offset >= r->range[i].high) {
            if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                cs_log_warn("read error", "{s:s, s:s}", "topic", r->topic, "error",
                            rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        if (m->offset + 1 >= r->range[i].high) {
            r->done[i] = 1;
            r->remaining--;
        }
        msgs[got++] = m;
    }
    return got;
}
