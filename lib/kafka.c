/* caresignal Kafka helpers: clients, delivery tracking, batch polling, offset resets. */
#include "caresignal/kafka.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "caresignal/backoff.h"
#include "caresignal/log.h"
#include "caresignal/metrics.h"

/* ------------------------------------------------------------------ configuration */

static void cs_kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac,
                            const char *buf)
{
    cs_log_level_t lvl = level <= 3   ? CS_LOG_ERROR
                         : level == 4 ? CS_LOG_WARN
                         : level <= 6 ? CS_LOG_INFO
                                      : CS_LOG_DEBUG;
    /* one kafka.* configuration serves a program's consumer and producer alike: that a
     * consumer property is ignored by the producer (and the reverse) is expected */
    if (!strcmp(fac, "CONFWARN") && strstr(buf, " property and will be ignored by this "))
        lvl = CS_LOG_DEBUG;
    cs_log(lvl, "librdkafka", "{s:s, s:s, s:s}", "client", rd_kafka_name(rk), "facility",
           fac, "detail", buf);
}

static void cs_kafka_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char fatal[512];
        rd_kafka_resp_err_t ferr = rd_kafka_fatal_error(rk, fatal, sizeof(fatal));
        cs_log_fatal("kafka fatal error: stopping", "{s:s, s:s, s:s}", "client",
                     rd_kafka_name(rk), "error", rd_kafka_err2name(ferr), "detail",
                     fatal);
        cs_request_fail();
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        cs_health_set(CS_HEALTH_KAFKA, 0);
    /* Transient by librdkafka's definition: it retries by itself. */
    cs_log_warn("kafka error", "{s:s, s:s, s:s}", "client", rd_kafka_name(rk), "error",
                rd_kafka_err2name((rd_kafka_resp_err_t)err), "detail", reason);
}

/* ------------------------------------------------------------------ statistics */

/* Lag per partition and broker reachability from librdkafka's statistics (JSON, every
 * statistics.interval.ms, served on the polling thread). The lag is against the offset
 * stored (consumer_lag_stored): what this process has finished, not yet committed. */
static void cs_kafka_stats_consumer(json_t *root)
{
    static cs_metric_t *lag;
    if (!lag)
        lag = cs_metric(CS_METRIC_GAUGE, "caresignal_consumer_lag",
                        "messages between the offset stored and the high watermark, per "
                        "assigned partition",
                        "topic,partition");
    cs_series_t **keep = NULL; /* the series set this time: the others are hidden */
    size_t nkeep = 0, cap = 0;
    const char *tname;
    json_t *t;
    json_object_foreach(json_object_get(root, "topics"), tname, t)
    {
        const char *pname;
        json_t *p;
        json_object_foreach(json_object_get(t, "partitions"), pname, p)
        {
            if (!strcmp(pname, "-1") || !json_is_true(json_object_get(p, "desired")))
                continue;
            json_int_t l = json_integer_value(json_object_get(p, "consumer_lag_stored"));
            if (l < 0)
                l = json_integer_value(json_object_get(p, "consumer_lag"));
            if (l < 0)
                continue; /* not known yet: no high watermark or no position */
            cs_series_t *s = cs_metric_at(lag, tname, pname);
            cs_series_set(s, (double)l);
            if (nkeep == cap) {
                cs_series_t **k = realloc(keep, (cap = cap ? 2 * cap : 64) * sizeof(*k));
                if (!k) { /* keep the earlier figures shown rather than hide live ones */
                    free(keep);
                    return;
                }
                keep = k;
            }
            keep[nkeep++] = s;
        }
    }
    cs_metric_hide_others(lag, keep, nkeep);
    free(keep);
}

static int cs_kafka_stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    (void)rk;
    (void)opaque;
    json_t *root = json_loadb(json, len, 0, NULL);
    if (!root)
        return 0;
    int up = 0;
    const char *bname;
    json_t *b;
    json_object_foreach(json_object_get(root, "brokers"), bname, b)
    {
        /* a learned broker (not a bootstrap entry) in state UP */
        if (json_integer_value(json_object_get(b, "nodeid")) >= 0 &&
            !strcmp(json_string_value(json_object_get(b, "state")) ?: "", "UP"))
            up = 1;
    }
    cs_health_set(CS_HEALTH_KAFKA, up);
    const char *type = json_string_value(json_object_get(root, "type"));
    if (type && !strcmp(type, "consumer"))
        cs_kafka_stats_consumer(root);
    json_decref(root);
    return 0; /* librdkafka frees json */
}

rd_kafka_headers_t *cs_kafka_origin_headers(int64_t origin_ms)
{
    if (origin_ms < 0)
        return NULL;
    rd_kafka_headers_t *h = rd_kafka_headers_new(1);
    if (!h)
        return NULL;
    /* decimal by hand: on every produced record, snprintf cost more than the header */
    char ts[24], *p = ts + sizeof(ts);
    uint64_t v = (uint64_t)origin_ms;
    do
        *--p = (char)('0' + v % 10);
    while (v /= 10);
    rd_kafka_header_add(h, CS_HDR_RAW_TIMESTAMP, -1, p, (ssize_t)(ts + sizeof(ts) - p));
    return h;
}

rd_kafka_conf_t *cs_kafka_conf_new(const cs_config_t *cfg, char *errstr,
                                   size_t errstr_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    for (size_t i = 0; i < cfg->kafka_cnt; i++) {
        char rkerr[256];
        if (rd_kafka_conf_set(conf, cfg->kafka[i].name, cfg->kafka[i].value, rkerr,
                              sizeof(rkerr)) != RD_KAFKA_CONF_OK) {
            snprintf(errstr, errstr_size, "config key 'kafka.%s': %s", cfg->kafka[i].name,
                     rkerr);
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    rd_kafka_conf_set_log_cb(conf, cs_kafka_log_cb);
    rd_kafka_conf_set_error_cb(conf, cs_kafka_error_cb);
    rd_kafka_conf_set_stats_cb(conf, cs_kafka_stats_cb);
    return conf;
}

cs_err_t cs_kafka_conf_default(rd_kafka_conf_t *conf, const cs_config_t *cfg,
                               const char *name, const char *value, char *errstr,
                               size_t errstr_size)
{
    if (cs_config_kafka_get(cfg, name))
        return CS_OK;
    char rkerr[256];
    if (rd_kafka_conf_set(conf, name, value, rkerr, sizeof(rkerr)) != RD_KAFKA_CONF_OK) {
        snprintf(errstr, errstr_size, "config key 'kafka.%s': %s", name, rkerr);
        return CS_ERR_CONFIG;
    }
    return CS_OK;
}

/* ------------------------------------------------------------------ producer */

void cs_kafka_tracker_count(cs_kafka_tracker_t *t, rd_kafka_resp_err_t err)
{
    t->outstanding--;
    if (err) {
        if (!t->failed)
            t->first_err = err;
        t->failed++;
    } else {
        t->delivered++;
    }
}

static void cs_kafka_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    (void)rk;
    (void)opaque;
    cs_kafka_tracker_t *t = msg->_private;
    if (!t)
        return;
    cs_kafka_tracker_count(t, msg->err);
    if (t->on_report)
        t->on_report(t->opaque, msg);
}

rd_kafka_t *cs_kafka_producer_new(const cs_config_t *cfg, char *errstr,
                                  size_t errstr_size)
{
    rd_kafka_conf_t *conf = cs_kafka_conf_new(cfg, errstr, errstr_size);
    if (!conf)
        return NULL;
    /* Idempotence keeps order and drops retried duplicates per partition; a short
     * linger keeps end-to-end latency low (docs/contract/targets.md); message.max.bytes leaves room
     * for a dead letter of the largest raw message a broker accepts by default plus its
     * headers (librdkafka's own default, 1,000,000, is below Kafka's 1,048,588). */
    if (cs_kafka_conf_default(conf, cfg, "enable.idempotence", "true", errstr,
                              errstr_size) ||
        cs_kafka_conf_default(conf, cfg, "acks", "all", errstr, errstr_size) ||
        cs_kafka_conf_default(conf, cfg, "linger.ms", "2", errstr, errstr_size) ||
        cs_kafka_conf_default(conf, cfg, "message.max.bytes", CS_KAFKA_PRODUCER_MAX_BYTES,
                              errstr, errstr_size)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, cs_kafka_dr_cb);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size);
    if (!rk)
        rd_kafka_conf_destroy(conf);
    return rk;
}

static _Thread_local rd_kafka_resp_err_t cs_last_produce_err;

rd_kafka_resp_err_t cs_kafka_last_produce_error(void)
{
    return cs_last_produce_err;
}

cs_err_t cs_kafka_produce_at(rd_kafka_t *rk, cs_kafka_tracker_t *tracker,
                             const char *topic, int32_t partition, const void *key,
                             size_t key_len, const void *value, size_t value_len,
                             rd_kafka_headers_t *headers, int64_t timestamp_ms,
                             char *errstr, size_t errstr_size)
{
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, key_len),
            RD_KAFKA_V_VALUE((void *)value, value_len), RD_KAFKA_V_HEADERS(headers),
            RD_KAFKA_V_TIMESTAMP(timestamp_ms > 0 ? timestamp_ms : 0),
            RD_KAFKA_V_OPAQUE(tracker), RD_KAFKA_V_END);
        if (!err) {
            if (tracker)
                tracker->outstanding++;
            return CS_OK;
        }
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            cs_last_produce_err = err;
            snprintf(errstr, errstr_size, "produce to %s: %s", topic,
                     rd_kafka_err2str(err));
            return CS_ERR_KAFKA;
        }
        rd_kafka_poll(rk, 50);
    }
}

cs_err_t cs_kafka_produce(rd_kafka_t *rk, cs_kafka_tracker_t *tracker, const char *topic,
                          int32_t partition, const void *key, size_t key_len,
                          const void *value, size_t value_len,
                          rd_kafka_headers_t *headers, char *errstr, size_t errstr_size)
{
    return cs_kafka_produce_at(rk, tracker, topic, partition, key, key_len, value,
                               value_len, headers, 0, errstr, errstr_size);
}

cs_err_t cs_kafka_tracker_wait(rd_kafka_t *rk, cs_kafka_tracker_t *tracker,
                               int timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : cs_mono_ms() + timeout_ms;
    /* rd_kafka_flush() wakes the broker threads so the batch goes out now instead of
     * after linger.ms; with a short timeout it also serves delivery reports. */
    while (tracker->outstanding > 0) {
        int64_t left = deadline - cs_mono_ms();
        if (left <= 0)
            return CS_ERR_TIMEOUT;
        rd_kafka_flush(rk, left < 100 ? (int)left : 100);
    }
    return tracker->failed ? CS_ERR_KAFKA : CS_OK;
}

/* ------------------------------------------------------------------ consumer */

typedef struct cs_consumer_ctx {
    cs_consumer_hooks_t hooks;
} cs_consumer_ctx_t;

static long cs_resets;
static long cs_skipped;
static long cs_refused;

long cs_kafka_offset_resets(void)
{
    return cs_resets;
}

long cs_kafka_offsets_skipped(void)
{
    return cs_skipped;
}

long cs_kafka_positions_refused(void)
{
    return cs_refused;
}

static int cs_is_cooperative(rd_kafka_t *rk)
{
    return !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
}

static void cs_log_parts(const char *what, const rd_kafka_topic_partition_list_t *parts)
{
    char buf[1024];
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; i < parts->cnt && n < sizeof(buf) - 64; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s[%d]@%lld", i ? " " : "",
                              parts->elems[i].topic, (int)parts->elems[i].partition,
                              (long long)parts->elems[i].offset);
    cs_log_info(what, "{s:i, s:s}", "count", parts->cnt, "partitions", buf);
}

/* Fills in the committed offsets; a partition the group never committed starts at
 * the beginning, so a new group reads everything rather than skipping. */
static cs_err_t cs_committed_offsets(rd_kafka_t *rk,
                                     rd_kafka_topic_partition_list_t *parts)
{
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    cs_backoff_t backoff;
    cs_backoff_init(&backoff, 500, 8000);
    for (int attempt = 0; attempt < 5; attempt++) {
        err = rd_kafka_committed(rk, parts, 10000);
        if (!err)
            break;
        cs_log_warn("cannot read committed offsets, retrying", "{s:s, s:i}", "error",
                    rd_kafka_err2name(err), "attempt", attempt + 1);
        cs_backoff_sleep(&backoff);
    }
    if (err) {
        cs_log_fatal("cannot read committed offsets: stopping rather than guess where to "
                     "resume",
                     "{s:s}", "error", rd_kafka_err2name(err));
        return CS_ERR_KAFKA;
    }
    for (int i = 0; i < parts->cnt; i++)
        if (parts->elems[i].offset < 0)
            parts->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
    return CS_OK;
}

/* A start offset above the partition's high watermark points past everything the broker
 * has: the topic was recreated or migrated (or the dev broker restarted) under a group
 * or a Redis that kept the old positions. Reading from there would skip every message
 * until the new log grows past it, in silence; instead the position is refused, loudly,
 * and the partition is read from its beginning (the scorer's seen sets absorb what it
 * had already applied). A broker that cannot say is not a reason to stop: the fetch
 * itself then reports an out-of-range offset. */
static void cs_refuse_past_high_watermark(rd_kafka_t *rk,
                                          rd_kafka_topic_partition_list_t *parts)
{
    int64_t deadline = cs_mono_ms() + 10000;
    for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &parts->elems[i];
        if (tp->offset < 0)
            continue;
        int64_t lo = -1, hi = -1;
        int64_t left = deadline - cs_mono_ms();
        rd_kafka_resp_err_t err =
            left > 0
                ? rd_kafka_query_watermark_offsets(rk, tp->topic, tp->partition, &lo, &hi,
                                                   (int)(left < 5000 ? left : 5000))
                : RD_KAFKA_RESP_ERR__TIMED_OUT;
        if (err) {
            cs_log_warn("cannot check the start offset against the high watermark",
                        "{s:s, s:i, s:I, s:s}", "topic", tp->topic, "partition",
                        (int)tp->partition, "offset", (json_int_t)tp->offset, "error",
                        rd_kafka_err2name(err));
            continue;
        }
        if (tp->offset <= hi)
            continue;
        cs_refused++;
        cs_log_error("stored position above the partition's high watermark: refused "
                     "(the topic was recreated or migrated); reading it from the "
                     "beginning",
                     "{s:s, s:i, s:I, s:I, s:I}", "topic", tp->topic, "partition",
                     (int)tp->partition, "position", (json_int_t)tp->offset,
                     "high_watermark", (json_int_t)hi, "resume_offset", (json_int_t)lo);
        tp->offset = lo >= 0 ? lo : RD_KAFKA_OFFSET_BEGINNING;
    }
}

/* The one place where a partition's start offset is decided (docs/contract/redis-layout.md, docs/contract/guarantees.md), for a
 * rebalance and for a restart after an offset reset alike: the committed offset (none:
 * the beginning), then the program's hook (the scorer lowers it to its Redis position),
 * then the high-watermark check. */
static cs_err_t cs_start_offsets(rd_kafka_t *rk, cs_consumer_ctx_t *ctx,
                                 rd_kafka_topic_partition_list_t *parts)
{
    cs_err_t err = cs_committed_offsets(rk, parts);
    if (!err && ctx->hooks.on_assign)
        err = ctx->hooks.on_assign(ctx->hooks.opaque, rk, parts);
    if (!err)
        cs_refuse_past_high_watermark(rk, parts);
    return err;
}

/* Commits what the program stored, synchronously, and says so when the broker refuses:
 * on revoke (the next owner starts there) and on close. Nothing stored is no error. */
static void cs_commit_stored(rd_kafka_t *rk, const char *when)
{
    rd_kafka_resp_err_t err = rd_kafka_commit(rk, NULL, 0);
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET && err != RD_KAFKA_RESP_ERR__STATE)
        cs_log_error("commit of the stored offsets failed: the next owner re-reads from "
                     "the last commit",
                     "{s:s, s:s}", "when", when, "error", rd_kafka_err2name(err));
}

static void cs_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                            rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    cs_consumer_ctx_t *ctx = opaque;
    int coop = cs_is_cooperative(rk);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        if (cs_start_offsets(rk, ctx, parts)) {
            /* Without a safe start offset we must not fetch (an unset offset would be
             * the committed one): take nothing and stop; on close the group moves the
             * partitions to a healthy member. */
            cs_request_fail();
            cs_log_parts("partitions not taken: no safe start offset", parts);
            if (!coop)
                rd_kafka_assign(rk, NULL);
            return;
        }
        cs_log_parts("partitions assigned", parts);
        if (coop)
            rd_kafka_error_destroy(rd_kafka_incremental_assign(rk, parts));
        else
            rd_kafka_assign(rk, parts);
    } else {
        if (ctx->hooks.on_revoke)
            ctx->hooks.on_revoke(ctx->hooks.opaque, rk, parts);
        cs_commit_stored(rk, "revoke");
        cs_log_parts("partitions revoked", parts);
        if (coop)
            rd_kafka_error_destroy(rd_kafka_incremental_unassign(rk, parts));
        else
            rd_kafka_assign(rk, NULL);
    }
}

rd_kafka_t *cs_kafka_consumer_new(const cs_config_t *cfg, const char *group,
                                  const char *const *topics, int ntopics,
                                  const cs_consumer_hooks_t *hooks, char *errstr,
                                  size_t errstr_size)
{
    rd_kafka_conf_t *conf = cs_kafka_conf_new(cfg, errstr, errstr_size);
    if (!conf)
        return NULL;
    char rkerr[256];
    /* auto.offset.reset=error: we decide what happens when the broker no longer has
     * the data, and we say so loudly (docs/contract/guarantees.md). */
    if (rd_kafka_conf_set(conf, "group.id", group, rkerr, sizeof(rkerr)) ||
        rd_kafka_conf_set(conf, "enable.auto.offset.store", "false", rkerr,
                          sizeof(rkerr)) ||
        rd_kafka_conf_set(conf, "auto.offset.reset", "error", rkerr, sizeof(rkerr))) {
        snprintf(errstr, errstr_size, "kafka consumer configuration: %s", rkerr);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    if (cs_kafka_conf_default(conf, cfg, "enable.auto.commit", "true", errstr,
                              errstr_size) ||
        cs_kafka_conf_default(conf, cfg, "auto.commit.interval.ms", "1000", errstr,
                              errstr_size) ||
        cs_kafka_conf_default(conf, cfg, "enable.partition.eof", "false", errstr,
                              errstr_size) ||
        /* librdkafka pre-fetches up to 64 MiB by default: with a large lag that alone
         * would be most of a consumer's memory (the runtime keeps its own bound on what
         * is in flight, inflight.max.*). Not lower, and queued.min.messages is left alone:
         * past either threshold librdkafka backs the partition's fetches off, and on the
         * dev broker 10,000 messages cut the normaliser from ~100k to ~18k events/s */
        cs_kafka_conf_default(conf, cfg, "queued.max.messages.kbytes", "16384", errstr,
                              errstr_size) ||
        /* the lag per partition and the brokers' state, for metrics.listen */
        (cfg->metrics_listen &&
         cs_kafka_conf_default(conf, cfg, "statistics.interval.ms", "1000", errstr,
                               errstr_size))) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    cs_consumer_ctx_t *ctx = calloc(1, sizeof(*ctx));
    if (!ctx) {
        rd_kafka_conf_destroy(conf);
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    if (hooks)
        ctx->hooks = *hooks;
    rd_kafka_conf_set_opaque(conf, ctx);
    rd_kafka_conf_set_rebalance_cb(conf, cs_rebalance_cb);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        free(ctx);
        return NULL;
    }
    /* ctx is the handle's opaque: the rebalance callback may run until
     * rd_kafka_destroy returns, so cs_kafka_consumer_destroy frees it after that. */
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(ntopics);
    for (int i = 0; i < ntopics; i++)
        rd_kafka_topic_partition_list_add(subs, topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (err) {
        snprintf(errstr, errstr_size, "subscribe: %s", rd_kafka_err2str(err));
        rd_kafka_destroy(rk);
        return NULL;
    }
    return rk;
}

/* Restarts fetching of one partition at \p offset. After an offset error librdkafka
 * leaves the partition stopped (seek refuses a stopped partition), so it is assigned
 * again; with the eager protocol rd_kafka_assign replaces the whole assignment, so
 * every other partition restarts from its position (the next offset the application
 * has not seen yet: nothing in the current batch is lost or read twice). */
static void cs_restart_partition(rd_kafka_t *rk, const char *topic, int32_t partition,
                                 int64_t offset)
{
    cs_consumer_ctx_t *ctx = rd_kafka_opaque(rk);
    rd_kafka_topic_partition_list_t *one = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(one, topic, partition)->offset = offset;
    if (cs_is_cooperative(rk)) {
        rd_kafka_error_destroy(rd_kafka_incremental_unassign(rk, one));
        rd_kafka_error_destroy(rd_kafka_incremental_assign(rk, one));
        rd_kafka_topic_partition_list_destroy(one);
        return;
    }
    rd_kafka_topic_partition_list_t *all = NULL;
    if (rd_kafka_assignment(rk, &all) || !all) {
        rd_kafka_topic_partition_list_destroy(one);
        return;
    }
    rd_kafka_position(rk, all);
    rd_kafka_topic_partition_list_t *unknown =
        rd_kafka_topic_partition_list_new(all->cnt);
    for (int i = 0; i < all->cnt; i++) {
        rd_kafka_topic_partition_t *p = &all->elems[i];
        if (p->partition == partition && !strcmp(p->topic, topic))
            p->offset = offset;
        else if (p->offset < 0)
            rd_kafka_topic_partition_list_add(unknown, p->topic, p->partition);
    }
    /* nothing consumed from these yet: they start where an assignment would start them
     * (the scorer's Redis position included), not merely at the committed offset */
    if (unknown->cnt && cs_start_offsets(rk, ctx, unknown)) {
        cs_request_fail(); /* no safe start offset: fetch nothing more, stop */
        rd_kafka_assign(rk, NULL);
        rd_kafka_topic_partition_list_destroy(unknown);
        rd_kafka_topic_partition_list_destroy(all);
        rd_kafka_topic_partition_list_destroy(one);
        return;
    }
    for (int i = 0; i < unknown->cnt; i++)
        rd_kafka_topic_partition_list_find(all, unknown->elems[i].topic,
                                           unknown->elems[i].partition)
            ->offset = unknown->elems[i].offset;
    rd_kafka_resp_err_t err = rd_kafka_assign(rk, all);
    if (err)
        cs_log_error("cannot restart fetching after an offset reset", "{s:s, s:s, s:i}",
                     "error", rd_kafka_err2name(err), "topic", topic, "partition",
                     (int)partition);
    rd_kafka_topic_partition_list_destroy(unknown);
    rd_kafka_topic_partition_list_destroy(all);
    rd_kafka_topic_partition_list_destroy(one);
}

/* The broker no longer has the offset we asked for (retention), or the group has no
 * committed offset. The second is normal start-up; the first loses data and must be
 * loud: log the partition and the skipped range, count it, resume at the oldest
 * offset still there. */
static void cs_handle_offset_reset(rd_kafka_t *rk, rd_kafka_message_t *msg)
{
    const char *topic = rd_kafka_topic_name(msg->rkt);
    int64_t lo = -1, hi = -1;
    rd_kafka_query_watermark_offsets(rk, topic, msg->partition, &lo, &hi, 5000);
    if (msg->offset < 0) {
        cs_log_info("no committed offset: starting at the beginning", "{s:s, s:i, s:I}",
                    "topic", topic, "partition", (int)msg->partition, "offset",
                    (json_int_t)lo);
    } else {
        long skipped = (lo > msg->offset) ? (long)(lo - msg->offset) : 0;
        cs_resets++;
        cs_skipped += skipped;
        cs_series_add(cs_metric_at(cs_metric(CS_METRIC_COUNTER,
                                             "caresignal_offset_resets_total",
                                             "offsets the broker no longer had (retention)",
                                             "topic"),
                                   topic),
                      1);
        cs_series_add(cs_metric_at(cs_metric(CS_METRIC_COUNTER,
                                             "caresignal_offsets_skipped_total",
                                             "messages never processed: gone from the "
                                             "broker before they were read",
                                             "topic"),
                                   topic),
                      (double)skipped);
        cs_log_error("OFFSET RESET: the broker no longer has these messages; they were "
                     "not processed",
                     "{s:s, s:i, s:I, s:I, s:I, s:I, s:s}", "topic", topic, "partition",
                     (int)msg->partition, "requested_offset", (json_int_t)msg->offset,
                     "resume_offset", (json_int_t)lo, "high_watermark", (json_int_t)hi,
                     "skipped", (json_int_t)skipped, "detail",
                     rd_kafka_message_errstr(msg));
    }
    cs_restart_partition(rk, topic, msg->partition,
                         lo >= 0 ? lo : RD_KAFKA_OFFSET_BEGINNING);
}

void cs_kafka_consumer_destroy(rd_kafka_t *rk)
{
    if (!rk)
        return;
    void *ctx = rd_kafka_opaque(rk);
    /* Leave the group first and let the revoke run (its callback commits what was
     * stored: with kafka.enable.auto.commit=false nothing else would), then close.
     * Closing straight away in the middle of a rebalance can make librdkafka 2.0.2 abort
     * in rd_kafka_cgrp_terminated ("assignment in progress"); a commit of our own before
     * the close did so too. Messages fetched meanwhile are dropped unprocessed: their
     * offsets were never stored, so the next owner reads them. */
    rd_kafka_unsubscribe(rk);
    int64_t deadline = cs_mono_ms() + 10000;
    for (;;) {
        rd_kafka_topic_partition_list_t *parts = NULL;
        int held = !rd_kafka_assignment(rk, &parts) && parts && parts->cnt > 0;
        rd_kafka_topic_partition_list_destroy(parts);
        if (!held || cs_mono_ms() >= deadline)
            break;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (m)
            rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    free(ctx);
}

int cs_kafka_poll_batch(rd_kafka_t *rk, rd_kafka_message_t **msgs, int max,
                        int timeout_ms)
{
    int n = 0;
    int timeout = timeout_ms;
    while (n < max && cs_running()) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, timeout);
        if (!m)
            break;
        if (!m->err) {
            msgs[n++] = m;
            timeout = 0;
            continue;
        }
        if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET)
            cs_handle_offset_reset(rk, m);
        else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            cs_log_warn("consumer error", "{s:s, s:s}", "error",
                        rd_kafka_err2name(m->err), "detail", rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        timeout = 0;
    }
    return n;
}

cs_err_t cs_kafka_store_offsets(rd_kafka_t *rk, rd_kafka_message_t *const *msgs, int n)
{
    if (n <= 0)
        return CS_OK;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
    for (int i = 0; i < n; i++) {
        const char *topic = rd_kafka_topic_name(msgs[i]->rkt);
        rd_kafka_topic_partition_t *p =
            rd_kafka_topic_partition_list_find(l, topic, msgs[i]->partition);
        if (!p)
            p = rd_kafka_topic_partition_list_add(l, topic, msgs[i]->partition);
        if (msgs[i]->offset + 1 > p->offset)
            p->offset = msgs[i]->offset + 1;
    }
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(rk, l);
    /* A partition revoked meanwhile refuses the store: its new owner re-reads from
     * the committed offset, which is the at-least-once we promise. */
    if (err && err != RD_KAFKA_RESP_ERR__STATE && err != RD_KAFKA_RESP_ERR__INVALID_ARG)
        cs_log_warn("offset store failed", "{s:s}", "error", rd_kafka_err2name(err));
    rd_kafka_topic_partition_list_destroy(l);
    return CS_OK;
}

cs_err_t cs_kafka_header_get(const rd_kafka_message_t *msg, const char *name, char *buf,
                             size_t size)
{
    rd_kafka_headers_t *hdrs = NULL;
    const void *val;
    size_t len;
    if (rd_kafka_message_headers(msg, &hdrs) || !hdrs ||
        rd_kafka_header_get_last(hdrs, name, &val, &len))
        return CS_ERR_NOT_FOUND;
    if (!size)
        return CS_OK;
    if (len >= size)
        len = size - 1;
    if (val)
        memcpy(buf, val, len);
    buf[len] = '\0';
    return CS_OK;
}

void cs_kafka_pause_assignment(rd_kafka_t *rk, int pause)
{
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (rd_kafka_assignment(rk, &parts) || !parts)
        return;
    if (pause)
        rd_kafka_pause_partitions(rk, parts);
    else
        rd_kafka_resume_partitions(rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
}
