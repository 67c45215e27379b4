/* caresignal consumer runtime: one event loop over the consumer's queue, the producer's
 * delivery reports and the handler's workers, with offsets stored up to the longest
 * finished prefix (see runtime.h). */
#define _GNU_SOURCE
#include "caresignal/runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <systemd/sd-daemon.h>

#include "caresignal/deadletter.h"
#include "caresignal/log.h"
#include "caresignal/metrics.h"
#include "caresignal/metrics_server.h"
#include "caresignal/signals.h"
#include "caresignal/timeutil.h"

struct cs_runtime {
    cs_runtime_options_t opt;
    cs_runtime_handler_t h;
    rd_kafka_t *consumer, *producer;
    rd_kafka_queue_t *cq, *pq; /* their queues, whose arrivals write to the wake pipe */
    int wake_r, wake_w;
    cs_ledger_t ledger;
    rd_kafka_message_t **batch;
    cs_rt_msg_t **ready; /* the batch's messages handed to the handler */
    cs_runtime_stats_t st;
    cs_flow_t flow;
    cs_metrics_server_t *server;
    struct {
        cs_metric_t *consumed, *produced;
        cs_series_t *inflight, *inflight_bytes, *paused, *held, *pauses, *age;
        cs_series_cache_t in, out; /* by librdkafka's topic names */
    } mx;
};

/* ------------------------------------------------------------------ metrics */

static cs_metric_t *cs_runtime_produced_family(void)
{
    return cs_metric(CS_METRIC_COUNTER, "caresignal_messages_produced_total",
                     "records produced and delivered, by topic", "topic");
}

cs_series_t *cs_runtime_produced_series(const char *topic)
{
    return cs_metric_at(cs_runtime_produced_family(), topic);
}

static void cs_runtime_metrics_init(cs_runtime_t *rt)
{
    rt->mx.consumed = cs_metric(CS_METRIC_COUNTER, "caresignal_messages_consumed_total",
                                "messages consumed, by topic", "topic");
    rt->mx.produced = cs_runtime_produced_family();
    rt->mx.inflight = cs_metric_at(cs_metric(CS_METRIC_GAUGE, "caresignal_inflight_messages",
                                             "input messages in flight (not yet stored)",
                                             NULL));
    rt->mx.inflight_bytes =
        cs_metric_at(cs_metric(CS_METRIC_GAUGE, "caresignal_inflight_bytes",
                               "bytes of input messages in flight", NULL));
    rt->mx.paused = cs_metric_at(cs_metric(CS_METRIC_GAUGE, "caresignal_paused",
                                           "1 while consumption is paused", NULL));
    rt->mx.held = cs_metric_at(cs_metric(
        CS_METRIC_GAUGE, "caresignal_held",
        "1 while paused because the program's store or sink cannot take more", NULL));
    rt->mx.pauses = cs_metric_at(cs_metric(CS_METRIC_COUNTER, "caresignal_pauses_total",
                                           "times consumption was paused", NULL));
    rt->mx.age = cs_metric_at(cs_metric_histogram(
        "caresignal_end_to_end_age_seconds",
        "now minus the raw message's timestamp, when an input's outputs are all done",
        NULL, cs_metric_age_bounds, cs_metric_age_nbounds));
}

static void cs_runtime_finished(void *opaque, const cs_rt_msg_t *m)
{
    cs_runtime_t *rt = opaque;
    if (m->origin_ms >= 0)
        cs_series_observe(rt->mx.age, (double)(cs_wall_ms() - m->origin_ms) / 1000.0);
}

/* The gauges of the loop, after a turn. */
static void cs_runtime_metrics_turn(cs_runtime_t *rt, int64_t now)
{
    cs_health_turned(now);
    cs_series_set(rt->mx.inflight, (double)cs_ledger_count(&rt->ledger));
    cs_series_set(rt->mx.inflight_bytes, (double)rt->ledger.bytes);
    cs_series_set(rt->mx.paused, rt->flow.paused);
    cs_series_set(rt->mx.held, rt->st.held);
}

/* When the raw message \p km descends from was published: (\p own, a raw message) its
 * own timestamp, else its cs.raw.timestamp header. -1 unknown. */
static int64_t cs_runtime_origin(const rd_kafka_message_t *km, int own)
{
    rd_kafka_headers_t *h = NULL;
    const void *v;
    size_t len;
    /* a raw message's header is the partner's to write: only its own timestamp counts */
    if (!own && !rd_kafka_message_headers(km, &h) &&
        !rd_kafka_header_get_last(h, CS_HDR_RAW_TIMESTAMP, &v, &len) && v && len < 24) {
        char buf[24];
        memcpy(buf, v, len);
        buf[len] = '\0';
        char *end;
        long long ts = strtoll(buf, &end, 10);
        if (end != buf && !*end && ts > 0)
            return ts;
    }
    if (!own)
        return -1;
    rd_kafka_timestamp_type_t type;
    int64_t ts = rd_kafka_message_timestamp(km, &type);
    return ts > 0 ? ts : -1;
}

void cs_flow_init(cs_flow_t *f, size_t max_messages, size_t max_bytes, size_t max_poll,
                  int64_t pause_after_ms)
{
    *f = (cs_flow_t){max_messages, max_bytes, max_poll, pause_after_ms, 0, -1};
}

static int cs_flow_full(const cs_flow_t *f, size_t msgs, size_t bytes)
{
    return msgs >= f->max_messages || bytes >= f->max_bytes;
}

size_t cs_flow_room(const cs_flow_t *f, size_t msgs, size_t bytes)
{
    if (f->paused)
        return f->max_poll;
    if (cs_flow_full(f, msgs, bytes))
        return 0;
    size_t left = f->max_messages - msgs;
    return left < f->max_poll ? left : f->max_poll;
}

int cs_flow_update(cs_flow_t *f, size_t msgs, size_t bytes, int held, int64_t now_ms)
{
    int full = cs_flow_full(f, msgs, bytes);
    if (!full)
        f->full_since = -1;
    else if (f->full_since < 0)
        f->full_since = now_ms;
    if (held || (full && now_ms - f->full_since >= f->pause_after_ms))
        f->paused = 1;
    else if (f->paused)
        f->paused = !(msgs <= f->max_messages / 2 && bytes <= f->max_bytes / 2);
    return f->paused;
}

int64_t cs_flow_due(const cs_flow_t *f)
{
    return f->full_since >= 0 && !f->paused ? f->full_since + f->pause_after_ms
                                            : INT64_MAX;
}

/* ------------------------------------------------------------------ wake-ups */

void cs_runtime_wake(cs_runtime_t *rt)
{
    char one = 1;
    /* a full pipe already holds a wake-up: nothing is lost */
    ssize_t n = write(rt->wake_w, &one, 1);
    (void)n;
}

static void cs_runtime_clear_wakes(cs_runtime_t *rt)
{
    char buf[256];
    while (read(rt->wake_r, buf, sizeof(buf)) > 0)
        ;
}

/* Sleeps until something arrives (a message, a delivery report, a worker's wake-up) or
 * \p timeout_ms passes. */
static void cs_runtime_wait(cs_runtime_t *rt, int64_t timeout_ms)
{
    if (timeout_ms <= 0)
        return;
    struct pollfd pfd = {.fd = rt->wake_r, .events = POLLIN};
    rt->st.waits++;
    int rc = poll(&pfd, 1, timeout_ms > 1000 ? 1000 : (int)timeout_ms);
    if (rc == 0)
        rt->st.wait_timeouts++;
    if (rc < 0 && errno != EINTR)
        cs_log_warn("poll failed", "{s:s}", "error", strerror(errno));
    cs_runtime_clear_wakes(rt);
}

/* ------------------------------------------------------------------ messages */

static void cs_rt_reported(void *opaque, const rd_kafka_message_t *rec)
{
    cs_rt_msg_t *m = opaque;
    if (rec->err) {
        if (!m->failed)
            cs_log_fatal("an output was not delivered: stopping without storing the "
                         "offset of its input, which will be read again",
                         "{s:s, s:s, s:s, s:i, s:I}", "error", rd_kafka_err2str(rec->err),
                         "output_topic", rd_kafka_topic_name(rec->rkt), "topic",
                         m->topic, "partition", (int)m->partition, "offset",
                         (json_int_t)m->offset);
        m->failed = 1;
        cs_request_fail();
    } else {
        cs_series_add(cs_series_cached(&m->rt->mx.out, m->rt->mx.produced,
                                       rd_kafka_topic_name(rec->rkt)),
                      1);
    }
    cs_rt_release(m);
}

/* Counts what a produce of \p m started: one more output, or its failure. */
static cs_err_t cs_rt_produced(cs_rt_msg_t *m, cs_err_t rc)
{
    if (rc) {
        m->failed = 1;
        return rc;
    }
    cs_rt_hold(m);
    m->rt->st.produced++;
    return CS_OK;
}

/* The hold is counted only after the produce returns: a full queue makes librdkafka serve
 * delivery reports inside it, and the handler's own hold keeps the message alive. */
cs_err_t cs_rt_produce(cs_rt_msg_t *m, const char *topic, int32_t partition,
                       const void *key, size_t key_len, const void *value,
                       size_t value_len, char *errstr, size_t errstr_size)
{
    rd_kafka_headers_t *h = cs_kafka_origin_headers(m->origin_ms);
    cs_err_t rc = cs_kafka_produce(m->rt->producer, &m->tracker, topic, partition, key,
                                   key_len, value, value_len, h, errstr, errstr_size);
    if (rc && h)
        rd_kafka_headers_destroy(h); /* not taken by a produce that failed */
    return cs_rt_produced(m, rc);
}

cs_err_t cs_rt_deadletter(cs_rt_msg_t *m, const char *topic, const char *reason,
                          const char *field)
{
    char errstr[512];
    cs_err_t rc = cs_rt_produced(m, cs_deadletter_produce(m->rt->producer, &m->tracker,
                                                          topic, m->m, reason, field,
                                                          errstr, sizeof(errstr)));
    if (rc) {
        cs_log_fatal("cannot dead-letter a message: stopping without storing its offset",
                     "{s:s, s:i, s:I, s:s}", "topic", m->topic, "partition",
                     (int)m->partition, "offset", (json_int_t)m->offset, "error", errstr);
        cs_request_fail();
    }
    return rc;
}

/* ------------------------------------------------------------------ offsets */

static void cs_runtime_store(void *opaque, const char *topic, int32_t partition,
                             int64_t next_offset)
{
    cs_runtime_t *rt = opaque;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = next_offset;
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(rt->consumer, l);
    /* a partition revoked meanwhile refuses the store: its next owner reads from the
     * last commit, which is the at-least-once we promise */
    if (err && err != RD_KAFKA_RESP_ERR__STATE && err != RD_KAFKA_RESP_ERR__INVALID_ARG)
        cs_log_warn("offset store failed", "{s:s}", "error", rd_kafka_err2name(err));
    rd_kafka_topic_partition_list_destroy(l);
}

static void cs_runtime_collect(cs_runtime_t *rt)
{
    cs_ledger_collect(&rt->ledger, cs_runtime_store, rt);
}

/* Lets the work in flight for \p parts (NULL: everything) finish, for up to \p ms:
 * the handler starts what waits, then the producer and the handler are served until
 * nothing of those partitions is busy. What is finished is stored. */
static void cs_runtime_drain(cs_runtime_t *rt,
                             const rd_kafka_topic_partition_list_t *parts, long ms)
{
    int64_t deadline = cs_mono_ms() + ms;
    if (rt->h.on_flush)
        rt->h.on_flush(rt->h.opaque, parts);
    for (;;) {
        rd_kafka_poll(rt->producer, 0);
        int64_t next = cs_mono_ms() + 10;
        if (rt->h.on_turn)
            rt->h.on_turn(rt->h.opaque, &next);
        cs_runtime_collect(rt);
        size_t busy = cs_ledger_busy(&rt->ledger, parts);
        int64_t now = cs_mono_ms();
        if (!busy)
            break;
        if (now >= deadline) {
            cs_log_warn("work in flight not finished in time: abandoned, it will be "
                        "read again",
                        "{s:s, s:I}", "when", parts ? "revoke" : "stop", "messages",
                        (json_int_t)busy);
            break;
        }
        cs_runtime_wait(rt, (next < deadline ? next : deadline) - now);
    }
}

static cs_err_t cs_runtime_on_assign(void *opaque, rd_kafka_t *rk,
                                     rd_kafka_topic_partition_list_t *parts)
{
    cs_runtime_t *rt = opaque;
    rt->flow.paused = 0; /* a new assignment fetches: the next turn pauses it if need be */
    cs_health_set(CS_HEALTH_ASSIGNED, 1);
    cs_health_set(CS_HEALTH_KAFKA, 1); /* the group coordinator answered */
    return rt->h.on_assign ? rt->h.on_assign(rt->h.opaque, rk, parts) : CS_OK;
}

static void cs_runtime_on_revoke(void *opaque, rd_kafka_t *rk,
                                 rd_kafka_topic_partition_list_t *parts)
{
    cs_runtime_t *rt = opaque;
    (void)rk;
    cs_health_set(CS_HEALTH_ASSIGNED, 0); /* until the next assignment */
    cs_runtime_drain(rt, parts, rt->opt.revoke_drain_ms);
    /* then lib/kafka.c commits what was stored, synchronously */
    cs_ledger_forget(&rt->ledger, parts);
    cs_runtime_collect(rt);
}

/* ------------------------------------------------------------------ the loop */

/* Pauses or resumes after a turn (see cs_flow_update), on a change only: librdkafka
 * purges and re-fetches a partition on every pause and resume. */
static void cs_runtime_regulate(cs_runtime_t *rt, int64_t now)
{
    int was = rt->flow.paused;
    int pause = cs_flow_update(&rt->flow, cs_ledger_count(&rt->ledger), rt->ledger.bytes,
                               rt->st.held, now);
    if (pause == was)
        return;
    cs_kafka_pause_assignment(rt->consumer, pause);
    if (pause) {
        rt->st.pauses++;
        cs_series_add(rt->mx.pauses, 1);
    }
    cs_log_debug(pause ? "consumption paused" : "consumption resumed",
                 "{s:I, s:I, s:b}", "in_flight",
                 (json_int_t)cs_ledger_count(&rt->ledger), "in_flight_bytes",
                 (json_int_t)rt->ledger.bytes, "held",
                 rt->st.held);
}

/* Hands fetched messages to the handler; one fetched a second time is dropped. */
static void cs_runtime_hand_over(cs_runtime_t *rt, int got)
{
    cs_rt_msg_t **msgs = rt->ready;
    size_t n = 0;
    for (int i = 0; i < got; i++) {
        rd_kafka_message_t *km = rt->batch[i];
        const char *topic = rd_kafka_topic_name(km->rkt);
        if (cs_ledger_refetched(&rt->ledger, topic, km->partition, km->offset)) {
            rt->st.refetched++;
            rd_kafka_message_destroy(km);
            continue;
        }
        cs_rt_msg_t *m = cs_ledger_add(&rt->ledger, km, topic, km->partition, km->offset,
                                       km->len + km->key_len);
        if (!m) {
            rd_kafka_message_destroy(km);
            cs_log_fatal("out of memory", NULL);
            cs_request_fail();
            continue;
        }
        m->rt = rt;
        m->origin_ms = cs_runtime_origin(km, rt->opt.origin_is_timestamp);
        m->tracker.on_report = cs_rt_reported;
        m->tracker.opaque = m;
        msgs[n++] = m;
    }
    rt->st.consumed += (long)n;
    /* by topic, a run of one topic at a time */
    for (size_t i = 0, j; i < n; i = j) {
        for (j = i + 1; j < n && !strcmp(msgs[j]->topic, msgs[i]->topic); j++)
            ;
        cs_series_add(cs_series_cached(&rt->mx.in, rt->mx.consumed, msgs[i]->topic),
                      (double)(j - i));
    }
    if (n)
        rt->h.on_messages(rt->h.opaque, msgs, n);
}

/* systemd's service manager, when it started us (Type=notify; a no-op otherwise): ready
 * once the loop turns, a watchdog ping every half WatchdogSec from the loop itself (a
 * stuck loop gets restarted), stopping when the drain begins. */
static int64_t cs_runtime_watchdog_ms(void)
{
    uint64_t usec = 0;
    return sd_watchdog_enabled(0, &usec) > 0 ? (int64_t)(usec / 2000) : 0;
}

void cs_runtime_run(cs_runtime_t *rt)
{
    int64_t next_stats = cs_mono_ms() + rt->opt.stats_interval_ms;
    int64_t watchdog = cs_runtime_watchdog_ms(), next_ping = 0;
    sd_notify(0, "READY=1\nSTATUS=consuming");
    while (cs_running()) {
        if (watchdog && cs_mono_ms() >= next_ping) {
            sd_notify(0, "WATCHDOG=1");
            next_ping = cs_mono_ms() + watchdog;
        }
        rt->st.turns++;
        if (cs_reload_requested() && rt->h.on_reload)
            rt->h.on_reload(rt->h.opaque);
        cs_runtime_clear_wakes(rt);
        size_t room = cs_flow_room(&rt->flow, cs_ledger_count(&rt->ledger), rt->ledger.bytes);
        int got = room ? cs_kafka_poll_batch(rt->consumer, rt->batch, (int)room, 0) : 0;
        if (!room)
            rt->st.full_turns++;
        cs_runtime_hand_over(rt, got);
        rd_kafka_poll(rt->producer, 0); /* delivery reports */
        int64_t now = cs_mono_ms();
        int64_t next = now + 1000;
        rt->st.held = rt->h.on_turn ? rt->h.on_turn(rt->h.opaque, &next) != 0 : 0;
        cs_runtime_collect(rt);
        now = cs_mono_ms();
        cs_runtime_regulate(rt, now);
        cs_runtime_metrics_turn(rt, now);
        if (now >= next_stats) {
            if (rt->h.on_stats)
                rt->h.on_stats(rt->h.opaque);
            next_stats = now + rt->opt.stats_interval_ms;
        }
        /* more may be waiting: librdkafka writes a queue's wake-up only when it goes
         * from empty to not empty, and a poll may return before the queue is empty (it
         * served an event that is not a message). At a bound, what waits is left there
         * until an output completes (its report or the handler's worker wakes the loop)
         * or the pause, whichever comes first. */
        if ((room && (got == (int)room || rd_kafka_queue_length(rt->cq) > 0)) ||
            rd_kafka_queue_length(rt->pq) > 0) {
            rt->st.requeued++;
            continue;
        }
        if (next > cs_flow_due(&rt->flow))
            next = cs_flow_due(&rt->flow);
        if (next > next_stats)
            next = next_stats;
        cs_runtime_wait(rt, next - now);
    }
    cs_log_info("stopping: finishing the work in flight", "{s:I}", "in_flight",
                (json_int_t)cs_ledger_count(&rt->ledger));
    sd_notify(0, "STOPPING=1\nSTATUS=stopping: finishing the work in flight");
    cs_runtime_drain(rt, NULL, rt->opt.stop_drain_ms);
    rd_kafka_flush(rt->producer, 10000);
    rd_kafka_poll(rt->producer, 0);
    cs_runtime_collect(rt);
    if (rt->h.on_stats)
        rt->h.on_stats(rt->h.opaque);
}

/* ------------------------------------------------------------------ life cycle */

/* Asks for the output topics' metadata now: otherwise the first record to each waits for
 * it (measured: the scorer's first batch took ~1 s from applied to its alerts delivered,
 * and every batch behind it waited as long; the next ones took 1 ms). */
static void cs_runtime_warm_outputs(cs_runtime_t *rt)
{
    for (int i = 0; i < rt->opt.noutputs; i++) {
        rd_kafka_topic_t *t = rd_kafka_topic_new(rt->producer, rt->opt.outputs[i], NULL);
        if (!t)
            continue;
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err = rd_kafka_metadata(rt->producer, 0, t, &md, 5000);
        if (err)
            cs_log_warn("no metadata for an output topic yet (its first record will wait "
                        "for it)",
                        "{s:s, s:s}", "topic", rt->opt.outputs[i], "error",
                        rd_kafka_err2name(err));
        if (md)
            rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(t);
    }
}

cs_runtime_t *cs_runtime_new(const cs_config_t *cfg, const cs_runtime_options_t *opt,
                             const cs_runtime_handler_t *handler, char *errstr,
                             size_t errstr_size)
{
    cs_runtime_t *rt = calloc(1, sizeof(*rt));
    if (!rt) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    rt->opt = *opt;
    rt->h = *handler;
    rt->wake_r = rt->wake_w = -1;
    if (!rt->opt.max_poll)
        rt->opt.max_poll = 500;
    if (!rt->opt.stats_interval_ms)
        rt->opt.stats_interval_ms = 10000;
    if (!rt->opt.pause_after_ms)
        rt->opt.pause_after_ms = 1000;
    cs_flow_init(&rt->flow, rt->opt.max_messages, rt->opt.max_bytes, rt->opt.max_poll,
                 rt->opt.pause_after_ms);
    cs_runtime_metrics_init(rt);
    int fds[2];
    cs_err_t lrc = cs_ledger_init(&rt->ledger);
    rt->batch = calloc(rt->opt.max_poll, sizeof(*rt->batch));
    rt->ready = calloc(rt->opt.max_poll, sizeof(*rt->ready));
    if (lrc || !rt->batch || !rt->ready || pipe2(fds, O_NONBLOCK | O_CLOEXEC)) {
        snprintf(errstr, errstr_size, "cannot set up the consumer loop: %s",
                 strerror(errno ? errno : ENOMEM));
        cs_runtime_destroy(rt);
        return NULL;
    }
    rt->wake_r = fds[0];
    rt->wake_w = fds[1];
    rt->ledger.on_finish = cs_runtime_finished;
    rt->ledger.finish_opaque = rt;
    if (cfg->metrics_listen &&
        !(rt->server = cs_metrics_server_start(cfg->metrics_listen,
                                               cfg->metrics_healthz_max_ms, errstr,
                                               errstr_size))) {
        cs_runtime_destroy(rt);
        return NULL;
    }
    rt->producer = cs_kafka_producer_new(cfg, errstr, errstr_size);
    if (!rt->producer) {
        cs_runtime_destroy(rt);
        return NULL;
    }
    cs_runtime_warm_outputs(rt);
    cs_consumer_hooks_t hooks = {cs_runtime_on_assign, cs_runtime_on_revoke, rt};
    rt->consumer = cs_kafka_consumer_new(cfg, cfg->group_id, opt->topics, opt->ntopics,
                                         &hooks, errstr, errstr_size);
    if (!rt->consumer) {
        cs_runtime_destroy(rt);
        return NULL;
    }
    /* the consumer's messages and rebalances, and the producer's delivery reports, wake
     * the loop through the same pipe as the workers do */
    rt->cq = rd_kafka_queue_get_consumer(rt->consumer);
    rt->pq = rd_kafka_queue_get_main(rt->producer);
    rd_kafka_queue_io_event_enable(rt->cq, rt->wake_w, "c", 1);
    rd_kafka_queue_io_event_enable(rt->pq, rt->wake_w, "p", 1);
    return rt;
}

void cs_runtime_destroy(cs_runtime_t *rt)
{
    if (!rt)
        return;
    if (rt->cq) {
        rd_kafka_queue_io_event_enable(rt->cq, -1, NULL, 0);
        rd_kafka_queue_destroy(rt->cq);
    }
    /* leaving the group revokes: the drain there finds what the stop left, then the
     * stored offsets are committed */
    cs_kafka_consumer_destroy(rt->consumer);
    if (rt->pq) {
        rd_kafka_queue_io_event_enable(rt->pq, -1, NULL, 0);
        rd_kafka_queue_destroy(rt->pq);
    }
    if (rt->producer) {
        rd_kafka_flush(rt->producer, 30000);
        rd_kafka_poll(rt->producer, 0);
        rd_kafka_destroy(rt->producer); /* before the messages its reports point to */
    }
    /* what is left was never finished here: freed unstored (the consumer is closed) */
    cs_ledger_clear(&rt->ledger);
    free(rt->batch);
    free(rt->ready);
    cs_metrics_server_stop(rt->server);
    if (rt->wake_r >= 0)
        close(rt->wake_r);
    if (rt->wake_w >= 0)
        close(rt->wake_w);
    free(rt);
}

rd_kafka_t *cs_runtime_producer(cs_runtime_t *rt)
{
    return rt->producer;
}

rd_kafka_t *cs_runtime_consumer(cs_runtime_t *rt)
{
    return rt->consumer;
}

void cs_runtime_get_stats(const cs_runtime_t *rt, cs_runtime_stats_t *st)
{
    *st = rt->st;
    st->in_flight = cs_ledger_count(&rt->ledger);
    st->in_flight_bytes = rt->ledger.bytes;
    st->paused = rt->flow.paused;
}
