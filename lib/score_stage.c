/* caresignal score stage: events gathered into batches on the loop's thread, executed in
 * order by one Redis worker thread, their alerts produced and acknowledged (see
 * score_stage.h). */
#include "caresignal/score_stage.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caresignal/backoff.h"
#include "caresignal/deadletter.h"
#include "caresignal/engine.h"
#include "caresignal/log.h"
#include "caresignal/metrics.h"
#include "caresignal/signals.h"
#include "caresignal/timeutil.h"

typedef enum { CS_JOB_APPLY, CS_JOB_ACK } cs_job_kind_t;

/* One batch from its first event to its acknowledgement. */
typedef struct cs_stage_batch {
    cs_score_stage_t *stage;
    cs_engine_event_t *events;
    cs_rt_msg_t **msgs; /* msgs[i] is events[i]'s message */
    size_t n, cap;
    cs_engine_batch_t *eb;
    cs_kafka_tracker_t deliveries; /* of its alerts */
    /* the worker's job on it */
    cs_job_kind_t kind;
    cs_err_t rc;
    cs_engine_result_t res;
    char errstr[512];
    int producing; /* its alerts are being produced: reports must not settle it yet */
    int64_t started_ms; /* its first event (monotonic) */
    struct cs_stage_batch *next;
    struct cs_stage_batch *prev_all, *next_all; /* every batch, for the end */
} cs_stage_batch_t;

struct cs_score_stage {
    const cs_config_t *cfg;
    cs_scorer_t *scorer;
    cs_redis_t *store, *reader;
    cs_engine_t *engine;
    cs_event_codec_t *codec;
    cs_alert_codec_t *acodec;
    cs_runtime_t *rt;
    size_t batch_max;
    cs_stage_batch_t *building; /* gathering events on the loop's thread */
    cs_stage_batch_t *all;      /* every batch alive (the loop's thread) */
    /* between the threads, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    cs_stage_batch_t *todo, *todo_tail, *done, *done_tail;
    size_t ntodo;
    int executing; /* the worker is running a job */
    int stopping, started;
    pthread_t worker;
    atomic_int waiting;   /* the worker waits for Redis */
    cs_backoff_t backoff; /* the worker's */
    cs_score_stage_stats_t st;
    struct {
        cs_series_t *applied, *duplicates, *redeliveries, *regressions, *reemitted,
            *redis_retries, *last_event, *batch, *pipeline, *ack, *alerts_produced,
            *conflicts, *redirects[2], *unreplicated;
        /* by kind, level and subject kind: every combination made at start, so each
         * series exists from the first scrape and an alert takes no lock */
        cs_series_t *alerts[CS_ALERT_KIND_COUNT][CS_LEVEL_COUNT][CS_SUBJECT_COUNT];
    } mx;
};

static void cs_stage_metrics_init(cs_score_stage_t *s)
{
    cs_metric_t *ev = cs_metric(CS_METRIC_COUNTER, "caresignal_events_total",
                                "events scored, by outcome: applied, duplicate (an "
                                "event_key seen before), redelivered (an offset already "
                                "applied), regression (applied at or below the subject's "
                                "last offset)",
                                "outcome");
    s->mx.applied = cs_metric_at(ev, "applied");
    s->mx.duplicates = cs_metric_at(ev, "duplicate");
    s->mx.redeliveries = cs_metric_at(ev, "redelivered");
    s->mx.regressions = cs_metric_at(ev, "regression");
    cs_metric_t *alerts = cs_metric(CS_METRIC_COUNTER, "caresignal_alerts_total",
                                    "alerts published (re-emissions included), by kind, "
                                    "level and subject kind",
                                    "kind,level,subject_kind");
    for (int k = 0; k < CS_ALERT_KIND_COUNT; k++)
        for (int l = 0; l < CS_LEVEL_COUNT; l++)
            for (int sk = 0; sk < CS_SUBJECT_COUNT; sk++)
                s->mx.alerts[k][l][sk] =
                    cs_metric_at(alerts, cs_alert_kind_names[k], cs_level_names[l],
                                 cs_subject_kind_names[sk]);
    s->mx.reemitted =
        cs_metric_at(cs_metric(CS_METRIC_COUNTER, "caresignal_alerts_reemitted_total",
                               "alerts published again: their first "
                               "publication was not acknowledged",
                               NULL));
    s->mx.redis_retries = cs_metric_at(
        cs_metric(CS_METRIC_COUNTER, "caresignal_retries_total",
                  "attempts repeated after a retriable failure, by what was retried",
                  "what"),
        "redis");
    s->mx.conflicts = cs_metric_at(cs_metric(
        CS_METRIC_COUNTER, "caresignal_state_conflicts_total",
        "state writes not done because the value changed after it was read (state.engine="
        "scorer): another writer of the subject; read and computed again",
        NULL));
    cs_metric_t *redirects =
        cs_metric(CS_METRIC_COUNTER, "caresignal_redis_redirects_total",
                  "Redis Cluster redirections followed, by kind: moved (the slot map had "
                  "changed: read "
                  "again) or ask (a slot being moved to another master)",
                  "kind");
    s->mx.redirects[0] = cs_metric_at(redirects, "moved");
    s->mx.redirects[1] = cs_metric_at(redirects, "ask");
    s->mx.unreplicated =
        cs_metric_at(cs_metric(CS_METRIC_COUNTER, "caresignal_redis_unreplicated_total",
                               "batches after which a Redis Cluster master's replica did "
                               "not confirm the writes in "
                               "time (WAIT): a fail-over then could lose them",
                               NULL));
    s->mx.last_event =
        cs_metric_at(cs_metric(CS_METRIC_GAUGE, "caresignal_last_event_time_seconds",
                               "occurred_at of the last event applied", NULL));
    s->mx.batch = cs_metric_at(cs_metric_histogram(
        "caresignal_batch_duration_seconds",
        "a batch from its first event to its end (applied, alerts delivered and "
        "acknowledged)",
        NULL, cs_metric_seconds_bounds, cs_metric_seconds_nbounds));
    cs_metric_t *pipe = cs_metric_histogram(
        "caresignal_redis_pipeline_seconds",
        "one Redis pipeline, sent to replies parsed, by job: apply or ack", "job",
        cs_metric_seconds_bounds, cs_metric_seconds_nbounds);
    s->mx.pipeline = cs_metric_at(pipe, "apply");
    s->mx.ack = cs_metric_at(pipe, "ack");
    s->mx.alerts_produced = cs_runtime_produced_series(s->cfg->topic_alerts);
}

/* ------------------------------------------------------------------ the worker */

static int cs_stage_waiting(void *opaque, const char *error, int first)
{
    cs_score_stage_t *s = opaque;
    cs_health_set(CS_HEALTH_REDIS, 0);
    cs_series_add(s->mx.redis_retries, 1);
    if (first) {
        if (!atomic_exchange(&s->waiting, 1)) {
            cs_log_error("redis unavailable: consumption paused, retrying with backoff",
                         "{s:s}", "error", error);
            cs_runtime_wake(s->rt);
        }
        cs_backoff_init(&s->backoff, CS_BACKOFF_STORE_INITIAL_MS,
                        CS_BACKOFF_STORE_MAX_MS);
    }
    cs_backoff_sleep(&s->backoff);
    return !cs_running();
}

static void cs_stage_back(void *opaque)
{
    cs_score_stage_t *s = opaque;
    cs_health_set(CS_HEALTH_REDIS, 1);
    if (atomic_exchange(&s->waiting, 0)) {
        cs_log_info("redis answers again: consumption resumed", NULL);
        cs_runtime_wake(s->rt);
    }
}

static void *cs_stage_worker(void *arg)
{
    cs_score_stage_t *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->todo && !s->stopping)
            pthread_cond_wait(&s->cv, &s->mu);
        if (!s->todo)
            break;
        cs_stage_batch_t *b = s->todo;
        s->todo = b->next;
        if (!s->todo)
            s->todo_tail = NULL;
        s->ntodo--;
        s->executing = 1;
        b->next = NULL;
        pthread_mutex_unlock(&s->mu);
        b->errstr[0] = '\0';
        int64_t t0 = cs_mono_ms();
        long conflicts = cs_engine_conflicts(s->engine), moved0, ask0, lag0, moved, ask,
             lag;
        cs_redis_cluster_counts(s->store, &moved0, &ask0, &lag0);
        if (b->kind == CS_JOB_APPLY)
            b->rc = cs_engine_execute(s->engine, b->eb, &b->res, b->errstr,
                                      sizeof(b->errstr));
        else
            b->rc = cs_engine_ack_batch(s->engine, b->eb, b->errstr, sizeof(b->errstr));
        /* a wait for Redis is in there too: the histogram shows an outage as such */
        cs_series_observe(b->kind == CS_JOB_APPLY ? s->mx.pipeline : s->mx.ack,
                          (double)(cs_mono_ms() - t0) / 1000.0);
        cs_series_add(s->mx.conflicts,
                      (double)(cs_engine_conflicts(s->engine) - conflicts));
        cs_redis_cluster_counts(s->store, &moved, &ask, &lag);
        cs_series_add(s->mx.redirects[0], (double)(moved - moved0));
        cs_series_add(s->mx.redirects[1], (double)(ask - ask0));
        cs_series_add(s->mx.unreplicated, (double)(lag - lag0));
        if (!b->rc)
            cs_health_set(CS_HEALTH_REDIS, 1);
        pthread_mutex_lock(&s->mu);
        s->executing = 0;
        if (s->done_tail)
            s->done_tail->next = b;
        else
            s->done = b;
        s->done_tail = b;
        cs_runtime_wake(s->rt);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static void cs_stage_submit(cs_score_stage_t *s, cs_stage_batch_t *b, cs_job_kind_t kind)
{
    b->kind = kind;
    pthread_mutex_lock(&s->mu);
    if (s->todo_tail)
        s->todo_tail->next = b;
    else
        s->todo = b;
    s->todo_tail = b;
    s->ntodo++;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* ------------------------------------------------------------------ batches */

static void cs_stage_batch_free(cs_stage_batch_t *b)
{
    if (!b)
        return;
    if (b->prev_all)
        b->prev_all->next_all = b->next_all;
    else
        b->stage->all = b->next_all;
    if (b->next_all)
        b->next_all->prev_all = b->prev_all;
    cs_engine_batch_free(b->eb);
    free(b->events);
    free(b->msgs);
    free(b);
}

/* The batch will not finish here: its messages are never stored (read again). */
static void cs_stage_batch_abandon(cs_stage_batch_t *b)
{
    for (size_t i = 0; i < b->n; i++)
        cs_rt_abandon(b->msgs[i]);
    cs_stage_batch_free(b);
}

static void cs_stage_batch_finish(cs_stage_batch_t *b)
{
    cs_series_observe(b->stage->mx.batch,
                      (double)(cs_mono_ms() - b->started_ms) / 1000.0);
    for (size_t i = 0; i < b->n; i++)
        cs_rt_release(b->msgs[i]);
    cs_stage_batch_free(b);
}

/* Hands the batch being built to the worker. */
static void cs_stage_seal(cs_score_stage_t *s)
{
    cs_stage_batch_t *b = s->building;
    if (!b || !b->n)
        return;
    s->building = NULL;
    b->eb = cs_engine_prepare(s->engine, b->events, b->n, 1);
    if (!b->eb) {
        cs_log_fatal("out of memory", NULL);
        cs_request_fail();
        cs_stage_batch_abandon(b);
        return;
    }
    s->st.batches++;
    cs_stage_submit(s, b, CS_JOB_APPLY);
}

/* Every alert of a batch reported: delivered, its acknowledgement goes to Redis; one
 * failed, the batch is abandoned (the program stops). */
static void cs_stage_deliveries_settle(cs_stage_batch_t *b)
{
    if (b->producing || b->deliveries.outstanding > 0)
        return;
    if (b->deliveries.failed) {
        cs_request_fail();
        cs_stage_batch_abandon(b);
        return;
    }
    cs_stage_submit(b->stage, b, CS_JOB_ACK);
}

static void cs_stage_alert_reported(void *opaque, const rd_kafka_message_t *rec)
{
    cs_stage_batch_t *b = opaque;
    if (!rec->err)
        cs_series_add(b->stage->mx.alerts_produced, 1);
    if (rec->err && b->deliveries.failed == 1)
        cs_log_fatal("alerts not delivered: stopping without storing offsets", "{s:s}",
                     "error", rd_kafka_err2str(rec->err));
    cs_stage_deliveries_settle(b);
}

static void cs_stage_dead_letter(cs_score_stage_t *s, cs_rt_msg_t *m, const char *reason,
                                 const char *field)
{
    s->st.dead_letters++;
    cs_rt_deadletter(m, s->cfg->topic_deadletter, reason, field);
}

/* When the raw message behind \p a's triggering event was published (-1 unknown). */
static int64_t cs_stage_origin(const cs_stage_batch_t *b, const cs_alert_t *a)
{
    for (size_t i = b->n; i-- > 0;)
        if (!strcmp(b->events[i].ev.event_key, a->triggered_by))
            return b->msgs[i]->origin_ms;
    return -1;
}

/* Replies parsed: failed subjects dead-lettered, alerts produced. */
static void cs_stage_applied(cs_score_stage_t *s, cs_stage_batch_t *b)
{
    char errstr[512];
    if (b->rc) {
        if (b->rc != CS_ERR_RETRY) {
            cs_log_fatal("the risk function failed", "{s:s}", "error", b->errstr);
            cs_request_fail();
        } else {
            cs_log_warn("stopping with a batch not applied: it will be read again",
                        "{s:I}", "messages", (json_int_t)b->n);
        }
        cs_stage_batch_abandon(b);
        return;
    }
    const cs_engine_result_t *res = &b->res;
    if (res->nfailed) {
        cs_log_error("the risk function failed for a subject: its events are sent to the "
                     "dead-letter topic (STATE_ERROR), the rest of the batch goes on",
                     "{s:s, s:I}", "error", res->failure, "events",
                     (json_int_t)res->nfailed);
        for (size_t k = 0; k < res->nfailed; k++)
            cs_stage_dead_letter(s, b->msgs[res->failed[k]], CS_DL_STATE_ERROR, "");
    }
    s->st.applied += res->applied;
    s->st.duplicates += res->duplicates;
    s->st.redeliveries += res->redeliveries;
    s->st.regressions += res->regressions;
    cs_series_add(s->mx.applied, (double)res->applied);
    cs_series_add(s->mx.duplicates, (double)res->duplicates);
    cs_series_add(s->mx.redeliveries, (double)res->redeliveries);
    cs_series_add(s->mx.regressions, (double)res->regressions);
    cs_series_add(s->mx.reemitted, (double)res->nreemitted);
    if (res->applied && b->n)
        cs_series_set(s->mx.last_event,
                      (double)b->events[b->n - 1].ev.occurred_at / 1000.0);
    if (res->regressions)
        cs_log_warn("events applied at or below their subject's last offset: "
                    "intel.events was recreated or migrated",
                    "{s:I}", "events", (json_int_t)res->regressions);
    s->st.alerts += res->nalerts - res->nreemitted;
    s->st.reemitted += res->nreemitted;
    if (!res->nalerts) {
        cs_stage_batch_finish(b);
        return;
    }
    b->deliveries.on_report = cs_stage_alert_reported;
    b->deliveries.opaque = b;
    rd_kafka_t *producer = cs_runtime_producer(s->rt);
    /* a full queue makes the produce serve reports: none may settle the batch yet */
    b->producing = 1;
    for (int a = 0; a < res->nalerts; a++) {
        const uint8_t *bytes;
        size_t len;
        char key[CS_SUBJECT_KEY_MAX];
        size_t klen = cs_subject_key(res->alerts[a].subject_kind,
                                     res->alerts[a].subject_id, key, sizeof(key));
        const cs_alert_t *al = &res->alerts[a];
        cs_series_add(s->mx.alerts[al->kind][al->level][al->subject_kind], 1);
        rd_kafka_headers_t *h = cs_kafka_origin_headers(cs_stage_origin(b, al));
        if (cs_alert_encode(s->acodec, al, &bytes, &len) ||
            cs_kafka_produce(producer, &b->deliveries, s->cfg->topic_alerts,
                             RD_KAFKA_PARTITION_UA, key, klen, bytes, len, h, errstr,
                             sizeof(errstr))) {
            if (h)
                rd_kafka_headers_destroy(h);
            cs_log_fatal("cannot publish an alert: stopping without storing offsets",
                         "{s:s}", "error", errstr);
            b->deliveries.failed++; /* abandoned once the others are reported */
            break;
        }
    }
    b->producing = 0;
    cs_stage_deliveries_settle(b);
}

static void cs_stage_acked(cs_score_stage_t *s, cs_stage_batch_t *b)
{
    (void)s;
    if (b->rc) {
        if (b->rc != CS_ERR_RETRY) {
            cs_log_fatal("alerts not acknowledged", "{s:s}", "error", b->errstr);
            cs_request_fail();
        }
        cs_stage_batch_abandon(b);
        return;
    }
    cs_stage_batch_finish(b);
}

/* ------------------------------------------------------------------ runtime callbacks */

static int cs_stage_decode(cs_score_stage_t *s, cs_rt_msg_t *m, cs_intel_event_t *ev)
{
    cs_error_t err;
    cs_err_t drc = cs_event_decode(s->codec, m->m->payload, m->m->len, ev, &err);
    if (drc == CS_OK)
        drc = cs_event_validate(ev, &err);
    if (drc == CS_OK)
        return 1;
    const char *reason = cs_err_is_reason(drc) ? cs_err_str(drc) : "AVRO_DECODE";
    cs_log_error("invalid event: sent to the dead-letter topic", "{s:s, s:s, s:i, s:I}",
                 "reason", reason, "field", err.field, "partition", (int)m->m->partition,
                 "offset", (json_int_t)m->m->offset);
    cs_stage_dead_letter(s, m, reason, err.field);
    return 0;
}

static cs_stage_batch_t *cs_stage_batch_new(cs_score_stage_t *s)
{
    cs_stage_batch_t *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->stage = s;
    b->started_ms = cs_mono_ms();
    b->next_all = s->all;
    if (s->all)
        s->all->prev_all = b;
    s->all = b;
    b->cap = s->batch_max;
    b->events = malloc(b->cap * sizeof(*b->events));
    b->msgs = malloc(b->cap * sizeof(*b->msgs));
    if (!b->events || !b->msgs) {
        cs_stage_batch_free(b);
        return NULL;
    }
    return b;
}

static void cs_stage_on_messages(void *opaque, cs_rt_msg_t *const *msgs, size_t n)
{
    cs_score_stage_t *s = opaque;
    for (size_t i = 0; i < n; i++) {
        cs_rt_msg_t *m = msgs[i];
        if (cs_exit_status()) { /* after a failure nothing more is started */
            cs_rt_abandon(m);
            continue;
        }
        if (!s->building && !(s->building = cs_stage_batch_new(s))) {
            cs_log_fatal("out of memory", NULL);
            cs_request_fail();
            cs_rt_abandon(m);
            continue;
        }
        cs_stage_batch_t *b = s->building;
        cs_engine_event_t *e = &b->events[b->n];
        if (!cs_stage_decode(s, m, &e->ev)) {
            cs_rt_release(m); /* finished once its dead letter is delivered */
            continue;
        }
        e->topic = rd_kafka_topic_name(m->m->rkt);
        e->partition = m->m->partition;
        e->offset = m->m->offset;
        b->msgs[b->n++] = m; /* its hold is the batch's now */
        s->st.events++;
        if (b->n == b->cap)
            cs_stage_seal(s);
    }
}

static int cs_stage_on_turn(void *opaque, int64_t *next_ms)
{
    cs_score_stage_t *s = opaque;
    (void)next_ms;
    pthread_mutex_lock(&s->mu);
    cs_stage_batch_t *done = s->done;
    s->done = s->done_tail = NULL;
    int worker_idle = s->ntodo == 0 && !s->executing;
    pthread_mutex_unlock(&s->mu);
    while (done) {
        cs_stage_batch_t *b = done;
        done = b->next;
        b->next = NULL;
        if (b->kind == CS_JOB_APPLY)
            cs_stage_applied(s, b);
        else
            cs_stage_acked(s, b);
    }
    /* never wait to fill a batch: what is there goes as soon as Redis would otherwise
     * idle; while it runs a batch, the next one grows (up to score.batch.max, then it is
     * prepared and queued), so that per-batch costs shrink as the load grows */
    if (worker_idle)
        cs_stage_seal(s);
    return atomic_load(&s->waiting);
}

static void cs_stage_on_flush(void *opaque, const rd_kafka_topic_partition_list_t *parts)
{
    (void)parts;
    cs_stage_seal(opaque);
}

/* Where to resume a partition (docs/contract/redis-layout.md): the lowest of the position
 * recorded in Redis after the last applied batch and the committed offset, so a Redis
 * that lost its last writes is brought back by re-reading; the function makes the overlap
 * a no-op. No recorded position (a new namespace, or a Redis that lost everything): from
 * the beginning. */
/* The GETs of a partition's positions: one key on one node; on a Redis Cluster, per
 * master the key under each of its slot ranges' tags (the lowest is where the scorer
 * writes; the others may hold one from before a reshard). */
#define CS_STAGE_TAGS 64
static size_t cs_stage_add_position_reads(cs_score_stage_t *s, cs_redis_pipe_t *p,
                                          const rd_kafka_topic_partition_t *tp,
                                          size_t *shard_of, size_t at)
{
    size_t added = 0;
    if (!cs_redis_is_cluster(s->reader)) {
        char key[512];
        cs_scorer_pos_key(s->scorer, tp->topic, tp->partition, key, sizeof(key));
        const char *argv[] = {"GET", key};
        cs_redis_pipe_add(p, 2, argv, NULL);
        shard_of[at] = 0;
        return 1;
    }
    for (size_t m = 0; m < cs_redis_shards(s->reader); m++) {
        const char *tags[CS_STAGE_TAGS];
        size_t ntags = cs_redis_shard_tags(s->reader, m, tags, CS_STAGE_TAGS);
        for (size_t t = 0; t < ntags; t++) {
            char key[512];
            cs_scorer_pos_key_on(s->scorer, tags[t], tp->topic, tp->partition, key,
                                 sizeof(key));
            const char *argv[] = {"GET", key};
            cs_redis_pipe_add(p, 2, argv, NULL);
            shard_of[at + added++] = m;
        }
    }
    return added;
}

/* The position a partition resumes from, out of its replies [from, to): on one node the
 * one value; on a cluster the lowest over the masters of each master's highest (a master
 * with none is left out: its lowest slot has just moved, or it holds nothing yet).
 * @returns 1 with *pos set, 0 when no position is recorded, -1 (errstr) on a bad reply.
 */
static int cs_stage_position(const cs_redis_pipe_t *p, size_t from, size_t to,
                             const size_t *shard_of, size_t shards, int64_t *pos,
                             const rd_kafka_topic_partition_t *tp, char *errstr,
                             size_t errstr_size)
{
    /* the reads are master by master: each master's highest, the lowest of those */
    int found = 0;
    size_t with = 0;
    int64_t best = -1;
    for (size_t i = from; i <= to; i++) {
        if (i > from && (i == to || shard_of[i] != shard_of[i - 1])) {
            if (best >= 0) {
                *pos = found && *pos < best ? *pos : best;
                found = 1;
                with++;
            }
            best = -1;
        }
        if (i == to)
            break;
        const redisReply *r = cs_redis_pipe_reply(p, i);
        char *end = NULL;
        int64_t v = r && r->type == REDIS_REPLY_STRING ? strtoll(r->str, &end, 10) : -1;
        if (!r || (r->type != REDIS_REPLY_NIL &&
                   (r->type != REDIS_REPLY_STRING || *end || v < 0))) {
            /* an error reply is not "no position": that would replay the partition from
             * the beginning, or worse, hide a Redis that refuses us */
            snprintf(errstr, errstr_size, "position of %s[%d]: %s", tp->topic,
                     (int)tp->partition,
                     r && r->type == REDIS_REPLY_ERROR ? r->str : "not an offset");
            return -1;
        }
        best = v > best ? v : best;
    }
    if (found && with < shards)
        cs_log_warn(
            "no position on some redis cluster masters: resuming from the others'",
            "{s:s, s:i, s:i}", "topic", tp->topic, "partition", (int)tp->partition,
            "masters_without", (int)(shards - with));
    return found;
}

/* Where to resume a partition (docs/contract/redis-layout.md): the lowest of the position
 * recorded in Redis after the last applied batch and the committed offset, so a Redis
 * that lost its last writes is brought back by re-reading; the function makes the overlap
 * a no-op. No recorded position (a new namespace, or a Redis that lost everything): from
 * the beginning. On a Redis Cluster every master records it: the lowest of theirs. */
static cs_err_t cs_stage_on_assign(void *opaque, rd_kafka_t *rk,
                                   rd_kafka_topic_partition_list_t *parts)
{
    cs_score_stage_t *s = opaque;
    (void)rk;
    char errstr[512];
    cs_err_t err = CS_OK;
    int64_t deadline = cs_mono_ms() + 60000;
    size_t *shard_of = NULL, *starts = NULL;
    cs_redis_pipe_t *p = cs_redis_pipe_new();
    cs_backoff_t backoff;
    cs_backoff_init(&backoff, CS_BACKOFF_STORE_INITIAL_MS, CS_BACKOFF_STORE_MAX_MS);
    /* Redis may be restarting or loading its data: wait for it (a while; the group waits
     * for us too). The reads are named again after every wait: a cluster's masters must
     * be known before their keys can be named, and a fail-over changes them. */
    for (;;) {
        if (!p) {
            err = CS_ERR_NOMEM;
            break;
        }
        if (!cs_redis_connected(s->reader))
            err = cs_redis_connect_retry(s->reader, deadline - cs_mono_ms(), errstr,
                                         sizeof(errstr));
        if (!err) {
            size_t per = cs_redis_is_cluster(s->reader)
                             ? cs_redis_shards(s->reader) * CS_STAGE_TAGS
                             : 1;
            free(shard_of);
            free(starts);
            shard_of = calloc((size_t)(parts->cnt ? parts->cnt : 1) * (per ? per : 1),
                              sizeof(*shard_of));
            starts = calloc((size_t)parts->cnt + 1, sizeof(*starts));
            cs_redis_pipe_reset(p);
            if (!shard_of || !starts) {
                err = CS_ERR_NOMEM;
                break;
            }
            for (int i = 0; i < parts->cnt; i++)
                starts[i + 1] =
                    starts[i] + cs_stage_add_position_reads(s, p, &parts->elems[i],
                                                            shard_of, starts[i]);
            err = cs_redis_pipe_exec(s->reader, p, errstr, sizeof(errstr));
        }
        /* LOADING, BUSY: Redis answers, not yet; a lost connection: connect again */
        if (err != CS_ERR_RETRY || !cs_running() || cs_mono_ms() >= deadline)
            break;
        cs_backoff_sleep(&backoff);
        err = CS_OK;
    }
    if (err == CS_ERR_NOMEM)
        snprintf(errstr, sizeof(errstr), "out of memory");
    for (int i = 0; !err && i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &parts->elems[i];
        int64_t committed = tp->offset, pos = -1;
        int found = cs_stage_position(p, starts[i], starts[i + 1], shard_of,
                                      cs_redis_shards(s->reader), &pos, tp, errstr,
                                      sizeof(errstr));
        if (found < 0) {
            err = CS_ERR_REDIS;
            break;
        }
        if (found) {
            if (committed >= 0 && pos < committed) {
                tp->offset = pos;
                cs_log_warn(
                    "redis position is behind the committed offset: re-reading the gap",
                    "{s:s, s:i, s:I, s:I}", "topic", tp->topic, "partition",
                    (int)tp->partition, "position", (json_int_t)pos, "committed",
                    (json_int_t)committed);
            }
        } else if (committed >= 0) {
            cs_log_warn(
                "no position recorded in redis for this partition: replaying it from "
                "the beginning",
                "{s:s, s:i, s:I}", "topic", tp->topic, "partition", (int)tp->partition,
                "committed", (json_int_t)committed);
            tp->offset = RD_KAFKA_OFFSET_BEGINNING;
        }
    }
    cs_redis_pipe_destroy(p);
    free(shard_of);
    free(starts);
    if (err)
        cs_log_fatal("cannot read positions from redis: no safe place to resume", "{s:s}",
                     "error", errstr);
    return err;
}

static void cs_stage_on_stats(void *opaque)
{
    cs_score_stage_t *s = opaque;
    cs_score_stage_stats_t c;
    cs_score_stage_get_stats(s, &c);
    cs_runtime_stats_t rs;
    cs_runtime_get_stats(s->rt, &rs);
    cs_log_info(
        "score totals",
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
        "events", (json_int_t)c.events, "applied", (json_int_t)c.applied, "duplicates",
        (json_int_t)c.duplicates, "redeliveries", (json_int_t)c.redeliveries,
        "offset_regressions", (json_int_t)c.regressions, "alerts", (json_int_t)c.alerts,
        "alerts_reemitted", (json_int_t)c.reemitted, "dead_letters",
        (json_int_t)c.dead_letters, "offset_resets", (json_int_t)cs_kafka_offset_resets(),
        "positions_refused", (json_int_t)cs_kafka_positions_refused(), "batches",
        (json_int_t)c.batches, "in_flight", (json_int_t)rs.in_flight, "pauses",
        (json_int_t)rs.pauses, "full_turns", (json_int_t)rs.full_turns);
}

/* ------------------------------------------------------------------ life cycle */

cs_score_stage_t *cs_score_stage_new(const cs_config_t *cfg, cs_registry_t *reg,
                                     cs_scorer_t *scorer, cs_redis_t *store,
                                     cs_redis_t *reader, char *errstr, size_t errstr_size)
{
    cs_score_stage_t *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    s->cfg = cfg;
    cs_stage_metrics_init(s);
    cs_health_set(CS_HEALTH_REDIS, 1); /* the scorer connected before it made the stage */
    s->scorer = scorer;
    s->store = store;
    s->reader = reader;
    s->batch_max = (size_t)cfg->score_batch_max;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    atomic_init(&s->waiting, 0);
    s->codec = cs_event_codec_new(reg, errstr, errstr_size);
    s->acodec = s->codec ? cs_alert_codec_new(reg, errstr, errstr_size) : NULL;
    s->engine = cs_engine_new(scorer, store, cs_stage_waiting, cs_stage_back, s);
    if (!s->acodec || !s->engine) {
        if (s->acodec)
            snprintf(errstr, errstr_size, "out of memory");
        cs_score_stage_destroy(s);
        return NULL;
    }
    return s;
}

cs_runtime_handler_t cs_score_stage_handler(cs_score_stage_t *s)
{
    cs_runtime_handler_t h = {.on_messages = cs_stage_on_messages,
                              .on_turn = cs_stage_on_turn,
                              .on_flush = cs_stage_on_flush,
                              .on_assign = cs_stage_on_assign,
                              .on_stats = cs_stage_on_stats,
                              .opaque = s};
    return h;
}

cs_err_t cs_score_stage_start(cs_score_stage_t *s, cs_runtime_t *rt)
{
    s->rt = rt;
    if (pthread_create(&s->worker, NULL, cs_stage_worker, s))
        return CS_ERR_NOMEM;
    s->started = 1;
    return CS_OK;
}

void cs_score_stage_get_stats(const cs_score_stage_t *s, cs_score_stage_stats_t *st)
{
    *st = s->st;
    st->rank_errors = s->engine ? cs_engine_rank_errors(s->engine) : 0;
    st->waiting = atomic_load(&s->waiting);
}

void cs_score_stage_destroy(cs_score_stage_t *s)
{
    if (!s)
        return;
    if (s->started) {
        pthread_mutex_lock(&s->mu);
        s->stopping = 1;
        /* jobs not taken are dropped: the runtime has gone, their messages with it */
        s->todo = s->todo_tail = NULL;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->worker, NULL);
    }
    while (s->all)
        cs_stage_batch_free(s->all);
    cs_engine_destroy(s->engine);
    cs_alert_codec_destroy(s->acodec);
    cs_event_codec_destroy(s->codec);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
