/* caresignal-page: RiskAlerts from intel.alerts to the on-call team — stdout, a webhook
 * or a command, by route — each alert paged once (de-duplicated by alert_id), each route
 * delivering on its own with bounded retries, and dead-lettered rather than dropped
 * (DESIGN §8, §9). The loop never stops polling: alerts wait in the routes' queues, and
 * a partition's offset is stored up to the longest prefix of alerts that are done. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caresignal/app.h"
#include "caresignal/backoff.h"
#include "caresignal/deadletter.h"
#include "caresignal/dedupe.h"
#include "caresignal/delivery.h"
#include "caresignal/inflight.h"
#include "caresignal/log.h"
#include "caresignal/page.h"
#include "caresignal/redis.h"

static const cs_cli_spec_t spec = {
    "caresignal-page",
    CS_PROG_PAGE,
    "[options]",
    "Consumes RiskAlerts (topic.alerts) as consumer group group.id and delivers each to\n"
    "the first route of page.routes.file that matches its subject kind, level, kind\n"
    "(RAISED/CLEARED) and region, else to the default sink page.sink: stdout (JSON "
    "lines,\n"
    "or with page.format=text one readable line per alert), webhook (HTTPS POST of the\n"
    "JSON with X-Caresignal-Timestamp and X-Caresignal-Signature: sha256=HMAC of\n"
    "\"<timestamp>.<body>\"), or exec (a command run with the alert JSON on its stdin;\n"
    "exit 0 = delivered). Each route delivers on its own (a dead webhook never delays\n"
    "stdout or exec). An alert already paged (its alert_id remembered in Redis for\n"
    "page.dedupe.ttl.s) is not paged again; while Redis cannot say, alerts wait up to\n"
    "page.dedupe.wait.ms. A failed delivery is retried page.retries times with backoff\n"
    "from page.retry.backoff.ms, for at most page.retry.max.ms, then sent to\n"
    "topic.deadletter with cs.error=UNDELIVERABLE. Offsets advance only past alerts "
    "that\n"
    "were delivered, skipped as already paged, or dead-lettered.",
    NULL,
    "Routes file example:\n"
    "  {\"routes\": [\n"
    "    {\"name\": \"london-inspect\", \"match\": {\"level\": [\"INSPECT\"], "
    "\"region\": "
    "[\"London\"]},\n"
    "     \"sink\": \"webhook\", \"url\": \"https://oncall.example/hook\", "
    "\"secret_file\": "
    "\"/run/credentials/caresignal-page/hook\"},\n"
    "    {\"name\": \"areas\", \"match\": {\"subject_kind\": [\"LOCAL_AREA\"]}, "
    "\"sink\": \"exec\",\n"
    "     \"command\": \"/usr/local/bin/notify-area-lead\"}]}",
};

/* Counters, logged every STATS_INTERVAL_MS. */
#define STATS_INTERVAL_MS 10000
/* How long a revoked partition's deliveries may hold the rebalance, and a stop. */
#define REVOKE_DRAIN_MS 5000
#define STOP_DRAIN_MS   10000
/* In-memory de-duplication: the latest alert ids paged by this process. */
#define DEDUPE_CACHE 100000

/* A fetched alert waiting for its de-duplication check and a place in its route. */
typedef struct pending {
    rd_kafka_message_t *m;
    cs_inflight_msg_t *h;
    struct pending *next;
} pending_t;

typedef struct pager_ctx {
    const cs_config_t *cfg;
    cs_routes_t *routes;
    cs_delivery_t *delivery;
    cs_dedupe_t *dedupe;
    cs_alert_codec_t *codec;
    rd_kafka_t *consumer, *producer;
    cs_inflight_t *inflight;
    pending_t *head, *tail;
    size_t npending;
    int paused;
    int64_t redis_wait_since; /* the head alert waits for Redis since then (0: not) */
    int64_t redis_retry_at;
    cs_backoff_t redis_backoff;
    long paged, duplicates, dead, undecodable, undeduplicated;
} pager_ctx_t;

/* ------------------------------------------------------------------ offsets */

static void store_offset(void *opaque, const char *topic, int32_t partition,
                         int64_t next_offset)
{
    pager_ctx_t *ctx = opaque;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = next_offset;
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(ctx->consumer, l);
    if (err && err != RD_KAFKA_RESP_ERR__STATE && err != RD_KAFKA_RESP_ERR__INVALID_ARG)
        cs_log_warn("offset store failed", "{s:s}", "error", rd_kafka_err2name(err));
    rd_kafka_topic_partition_list_destroy(l);
}

/* A dead letter's delivery marks its alert done (its offset may then be stored). */
typedef struct dl_track {
    cs_kafka_tracker_t t;
    pager_ctx_t *ctx;
    cs_inflight_msg_t *h;
} dl_track_t;

static void dead_letter_reported(void *opaque, const rd_kafka_message_t *msg)
{
    dl_track_t *d = opaque;
    if (msg->err)
        cs_request_fail(); /* deadletter.c logged which message and why */
    else
        cs_inflight_done(d->ctx->inflight, d->h);
    free(d);
}

/* Sends \p m to the dead-letter topic; its offset is stored once that is delivered. */
static void dead_letter(pager_ctx_t *ctx, const rd_kafka_message_t *m,
                        cs_inflight_msg_t *h, const char *reason, const char *field)
{
    char errstr[512];
    dl_track_t *d = calloc(1, sizeof(*d));
    if (!d) {
        cs_log_fatal("out of memory", NULL);
        cs_request_fail();
        return;
    }
    d->ctx = ctx;
    d->h = h;
    d->t.on_report = dead_letter_reported;
    d->t.opaque = d;
    ctx->dead++;
    if (cs_deadletter_produce(ctx->producer, &d->t, ctx->cfg->topic_deadletter, m, reason,
                              field, errstr, sizeof(errstr))) {
        cs_log_fatal("cannot dead-letter an alert: stopping without storing its offset",
                     "{s:s, s:i, s:I, s:s}", "topic", rd_kafka_topic_name(m->rkt),
                     "partition", (int)m->partition, "offset", (json_int_t)m->offset,
                     "error", errstr);
        free(d);
        cs_request_fail();
    }
}

/* ------------------------------------------------------------------ deliveries */

/* A route finished with an alert: delivered (remembered as paged), undeliverable
 * (dead-lettered) or abandoned at shutdown (read again after a restart). */
static void job_done(pager_ctx_t *ctx, cs_delivery_job_t *j)
{
    pending_t *p = j->opaque;
    if (j->result == CS_OK) {
        if (j->recorded) /* the worker wrote the Redis record as it delivered */
            cs_dedupe_remember_local(ctx->dedupe, j->alert.alert_id);
        else
            cs_dedupe_remember(ctx->dedupe, j->alert.alert_id);
        ctx->paged++;
        cs_log_info(
            "paged", "{s:s, s:s, s:s, s:s, s:s, s:i}", "alert_id", j->alert.alert_id,
            "route", j->route->name, "alert_level", cs_level_names[j->alert.level],
            "kind", cs_alert_kind_names[j->alert.kind], "subject_kind",
            cs_subject_kind_names[j->alert.subject_kind], "attempts", j->attempts);
        cs_inflight_done(ctx->inflight, p->h);
    } else if (j->result == CS_ERR_RETRY) {
        cs_log_error("alert undeliverable: sent to the dead-letter topic",
                     "{s:s, s:s, s:i, s:s}", "alert_id", j->alert.alert_id, "route",
                     j->route->name, "attempts", j->attempts, "error", j->error);
        dead_letter(ctx, p->m, p->h, CS_DL_UNDELIVERABLE, j->route->name);
    }
    rd_kafka_message_destroy(p->m);
    free(p);
    free(j);
}

static void collect_done(pager_ctx_t *ctx)
{
    cs_delivery_job_t *j;
    while ((j = cs_delivery_next_done(ctx->delivery)))
        job_done(ctx, j);
}

/* In a route's worker, right after a delivery: the de-duplication record, on the
 * worker's own Redis connection (made on first use). */
static int record_delivered(void *opaque, void **state, const cs_alert_t *a)
{
    pager_ctx_t *ctx = opaque;
    if (!*state)
        *state = cs_redis_new_from_config(ctx->cfg);
    return *state && cs_dedupe_record(ctx->dedupe, *state, a->alert_id);
}

static void release_worker(void *opaque, void *state)
{
    (void)opaque;
    cs_redis_destroy(state);
}

/* ------------------------------------------------------------------ fetched alerts */

static void push_pending(pager_ctx_t *ctx, rd_kafka_message_t *m)
{
    if (cs_inflight_behind(ctx->inflight, rd_kafka_topic_name(m->rkt), m->partition,
                           m->offset)) {
        rd_kafka_message_destroy(m); /* fetched again after a pause: we have it */
        return;
    }
    pending_t *p = calloc(1, sizeof(*p));
    cs_inflight_msg_t *h = p ? cs_inflight_add(ctx->inflight, rd_kafka_topic_name(m->rkt),
                                               m->partition, m->offset)
                             : NULL;
    if (!h) {
        free(p);
        rd_kafka_message_destroy(m);
        cs_log_fatal("out of memory", NULL);
        cs_request_fail();
        return;
    }
    p->m = m;
    p->h = h;
    if (ctx->tail)
        ctx->tail->next = p;
    else
        ctx->head = p;
    ctx->tail = p;
    ctx->npending++;
}

static pending_t *pop_pending(pager_ctx_t *ctx)
{
    pending_t *p = ctx->head;
    ctx->head = p->next;
    if (!ctx->head)
        ctx->tail = NULL;
    p->next = NULL;
    ctx->npending--;
    return p;
}

/* Was the alert paged already? Waits (the caller pauses) while Redis cannot say, for up
 * to page.dedupe.wait.ms: an inspector paged twice learns to ignore the pager. After
 * that it is paged without the check: a late page is worse than a second one.
 * @returns 1 paged already, 0 not, -1 wait. */
static int already_paged(pager_ctx_t *ctx, const cs_alert_t *a)
{
    int64_t now = cs_mono_ms();
    if (ctx->redis_wait_since && now < ctx->redis_retry_at)
        return -1;
    char errstr[512];
    int seen = cs_dedupe_seen(ctx->dedupe, a->alert_id, errstr, sizeof(errstr));
    if (seen >= 0) {
        if (ctx->redis_wait_since)
            cs_log_info("redis answers again: de-duplication resumed", NULL);
        ctx->redis_wait_since = 0;
        return seen;
    }
    if (!ctx->redis_wait_since) {
        ctx->redis_wait_since = now;
        cs_backoff_init(&ctx->redis_backoff, CS_BACKOFF_STORE_INITIAL_MS,
                        CS_BACKOFF_STORE_MAX_MS);
        cs_log_error("redis cannot say whether an alert was paged: waiting for it rather "
                     "than page twice (consumption paused)",
                     "{s:s, s:I}", "error", errstr, "wait_ms",
                     (json_int_t)ctx->cfg->page_dedupe_wait_ms);
    }
    if (now - ctx->redis_wait_since < ctx->cfg->page_dedupe_wait_ms) {
        ctx->redis_retry_at = now + cs_backoff_next(&ctx->redis_backoff);
        return -1;
    }
    ctx->undeduplicated++;
    cs_log_error("redis unavailable for longer than page.dedupe.wait.ms: paging without "
                 "de-duplication",
                 "{s:s, s:s}", "alert_id", a->alert_id, "error", errstr);
    ctx->redis_retry_at = now + cs_backoff_next(&ctx->redis_backoff);
    return 0;
}

/* Moves fetched alerts on, in order: invalid ones to the dead-letter topic, paged ones
 * skipped, the rest into their route's queue. @returns 0 when all moved, -1 when the head
 * must wait (Redis cannot say, or its route is full). */
static int advance(pager_ctx_t *ctx)
{
    while (ctx->head && cs_running()) {
        rd_kafka_message_t *m = ctx->head->m;
        cs_delivery_job_t *j = calloc(1, sizeof(*j));
        if (!j) {
            cs_log_fatal("out of memory", NULL);
            cs_request_fail();
            return -1;
        }
        cs_error_t err;
        cs_err_t rc = cs_alert_decode(ctx->codec, m->payload, m->len, &j->alert, &err);
        if (rc == CS_OK)
            rc = cs_alert_validate(&j->alert, &err);
        if (rc) {
            ctx->undecodable++;
            const char *reason = cs_err_is_reason(rc) ? cs_err_str(rc) : "AVRO_DECODE";
            cs_log_error("invalid alert: sent to the dead-letter topic",
                         "{s:s, s:s, s:i, s:I}", "reason", reason, "field", err.field,
                         "partition", (int)m->partition, "offset", (json_int_t)m->offset);
            pending_t *p = pop_pending(ctx);
            dead_letter(ctx, p->m, p->h, reason, err.field);
            rd_kafka_message_destroy(p->m);
            free(p);
            free(j);
            continue;
        }
        int seen = already_paged(ctx, &j->alert);
        if (seen < 0) {
            free(j);
            return -1;
        }
        if (seen) {
            ctx->duplicates++;
            cs_log_debug("already paged", "{s:s}", "alert_id", j->alert.alert_id);
            pending_t *p = pop_pending(ctx);
            cs_inflight_done(ctx->inflight, p->h);
            rd_kafka_message_destroy(p->m);
            free(p);
            free(j);
            continue;
        }
        j->route = cs_routes_match(ctx->routes, &j->alert);
        j->opaque = ctx->head;
        if (cs_delivery_submit(ctx->delivery, j) != CS_OK) {
            free(j);
            return -1; /* the route is full: the alert waits, consumption pauses */
        }
        pop_pending(ctx);
    }
    return 0;
}

/* ------------------------------------------------------------------ the consumer */

static void set_paused(pager_ctx_t *ctx, int pause)
{
    /* only on a change: librdkafka re-seeks a partition on every pause or resume */
    if (pause == ctx->paused)
        return;
    cs_kafka_pause_assignment(ctx->consumer, pause);
    cs_log_debug(pause ? "consumption paused" : "consumption resumed", "{s:I}", "waiting",
                 (json_int_t)ctx->npending);
    ctx->paused = pause;
}

/* A new assignment starts unpaused: the next pause must apply again. */
static cs_err_t on_assign(void *opaque, rd_kafka_t *rk,
                          rd_kafka_topic_partition_list_t *parts)
{
    (void)rk;
    (void)parts;
    ((pager_ctx_t *)opaque)->paused = 0;
    return CS_OK;
}

/* Before partitions go to another member: their fetched alerts are dropped (the next
 * owner reads them), their deliveries in progress get a few seconds to finish so that
 * what was paged is remembered as paged, and what is done is stored (then committed). */
static void on_revoke(void *opaque, rd_kafka_t *rk,
                      rd_kafka_topic_partition_list_t *parts)
{
    pager_ctx_t *ctx = opaque;
    (void)rk;
    pending_t *dropped = NULL;
    for (pending_t **pp = &ctx->head; *pp;) {
        pending_t *p = *pp;
        if (rd_kafka_topic_partition_list_find(parts, rd_kafka_topic_name(p->m->rkt),
                                               p->m->partition)) {
            *pp = p->next;
            ctx->npending--;
            rd_kafka_message_destroy(p->m);
            p->m = NULL;
            p->next = dropped;
            dropped = p;
            continue;
        }
        pp = &p->next;
    }
    ctx->tail = NULL;
    for (pending_t *p = ctx->head; p; p = p->next)
        ctx->tail = p;
    int64_t deadline = cs_mono_ms() + REVOKE_DRAIN_MS;
    for (;;) {
        collect_done(ctx);
        size_t busy = 0;
        for (int i = 0; i < parts->cnt; i++)
            busy += cs_inflight_pending(ctx->inflight, parts->elems[i].topic,
                                        parts->elems[i].partition);
        if (!busy || cs_mono_ms() >= deadline)
            break;
        rd_kafka_poll(ctx->producer, 0);
        cs_delivery_wait(ctx->delivery, 50);
    }
    rd_kafka_flush(ctx->producer, 5000);
    cs_inflight_collect(ctx->inflight, store_offset, ctx);
    for (int i = 0; i < parts->cnt; i++)
        cs_inflight_forget(ctx->inflight, parts->elems[i].topic,
                           parts->elems[i].partition);
    /* dropped after the store (they held back what follows them): released unstored */
    while (dropped) {
        pending_t *p = dropped;
        dropped = p->next;
        cs_inflight_done(ctx->inflight, p->h);
        free(p);
    }
}

static void log_totals(const pager_ctx_t *ctx)
{
    cs_log_info("page totals", "{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "paged",
                (json_int_t)ctx->paged, "duplicates", (json_int_t)ctx->duplicates,
                "dead_letters", (json_int_t)ctx->dead, "undecodable",
                (json_int_t)ctx->undecodable, "undeduplicated",
                (json_int_t)ctx->undeduplicated, "in_flight",
                (json_int_t)cs_inflight_count(ctx->inflight), "offset_resets",
                (json_int_t)cs_kafka_offset_resets());
}

static void run(pager_ctx_t *ctx)
{
    enum { BATCH = 100 };
    rd_kafka_message_t *msgs[BATCH];
    int64_t next_stats = cs_mono_ms() + STATS_INTERVAL_MS;
    while (cs_running()) {
        collect_done(ctx);
        int blocked = advance(ctx) < 0;
        /* memory stays bounded whatever the lag: past page.queue.max waiting alerts, or
         * while the head waits, nothing more is fetched (the group still sees us) */
        set_paused(ctx, blocked || ctx->npending >= (size_t)ctx->cfg->page_queue_max);
        int busy = cs_delivery_in_flight(ctx->delivery) > 0 || blocked;
        int got = cs_kafka_poll_batch(ctx->consumer, msgs, BATCH, busy ? 10 : 100);
        for (int i = 0; i < got; i++)
            push_pending(ctx, msgs[i]);
        rd_kafka_poll(ctx->producer, 0); /* dead letters' delivery reports */
        cs_inflight_collect(ctx->inflight, store_offset, ctx);
        cs_dedupe_flush(ctx->dedupe);
        if (cs_mono_ms() >= next_stats) {
            log_totals(ctx);
            next_stats = cs_mono_ms() + STATS_INTERVAL_MS;
        }
    }
    /* stop: what the routes hold gets a few seconds, then is abandoned (not stored:
     * read again by the next owner); dead letters are flushed; what is done is stored */
    cs_log_info("page stopping", "{s:I}", "in_flight",
                (json_int_t)cs_delivery_in_flight(ctx->delivery));
    cs_delivery_stop(ctx->delivery, STOP_DRAIN_MS);
    while (cs_delivery_in_flight(ctx->delivery) > 0) {
        cs_delivery_wait(ctx->delivery, 100);
        collect_done(ctx);
        rd_kafka_poll(ctx->producer, 0);
    }
    rd_kafka_flush(ctx->producer, 30000);
    cs_inflight_collect(ctx->inflight, store_offset, ctx);
    cs_dedupe_flush(ctx->dedupe);
    while (ctx->head) {
        pending_t *p = pop_pending(ctx);
        rd_kafka_message_destroy(p->m);
        free(p);
    }
    log_totals(ctx);
}

int main(int argc, char **argv)
{
    cs_config_t cfg;
    cs_cli_t cli;
    cs_cli_parse(&spec, argc, argv, &cfg, &cli);
    if (cli.nargs)
        cs_cli_fail(&spec, "unexpected argument '%s' (see --help)", cli.args[0]);
    cs_cli_require(&spec, &cfg, CS_PROG_PAGE);
    char errstr[512];
    cs_routes_t *routes = cs_routes_load(&cfg, errstr, sizeof(errstr));
    if (!routes)
        cs_cli_fail(&spec, "%s", errstr);
    cs_registry_t *reg = cs_app_registry(&spec, &cfg);
    cs_directory_t *dir = cfg.directory_file ? cs_app_directory(&spec, &cfg) : NULL;
    pager_ctx_t ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.cfg = &cfg;
    ctx.routes = routes;
    ctx.codec = cs_alert_codec_new(reg, errstr, sizeof(errstr));
    if (!ctx.codec)
        cs_cli_fail(&spec, "%s", errstr);

    cs_signals_install();
    cs_redis_t *redis = cs_redis_new_from_config(&cfg);
    cs_err_t rerr = cs_redis_connect(redis, errstr, sizeof(errstr));
    if (rerr == CS_ERR_FATAL)
        cs_cli_fail(&spec, "%s", errstr);
    if (rerr == CS_OK &&
        cs_redis_check_noeviction(redis, errstr, sizeof(errstr)) == CS_ERR_CONFIG)
        cs_cli_fail(&spec, "%s", errstr);
    ctx.dedupe =
        cs_dedupe_new(redis, cfg.state_namespace, cfg.page_dedupe_ttl_s, DEDUPE_CACHE);
    ctx.inflight = cs_inflight_new();
    cs_delivery_policy_t policy = {.retries = cfg.page_retries,
                                   .backoff_ms = cfg.page_retry_backoff_ms,
                                   .backoff_max_ms = 60000,
                                   .max_hold_ms = cfg.page_retry_max_ms,
                                   .queue_max = (size_t)cfg.page_queue_max};
    cs_delivery_hooks_t hooks_d = {record_delivered, release_worker, &ctx};
    ctx.delivery =
        cs_delivery_new(routes, &policy, &hooks_d, stdout, dir, errstr, sizeof(errstr));
    if (!ctx.dedupe || !ctx.inflight || !ctx.delivery)
        cs_cli_fail(&spec, "%s", ctx.delivery ? "out of memory" : errstr);
    ctx.producer = cs_app_producer(&spec, &cfg);
    const char *topics[] = {cfg.topic_alerts};
    cs_consumer_hooks_t hooks = {on_assign, on_revoke, &ctx};
    ctx.consumer = cs_app_consumer(&spec, &cfg, topics, 1, &hooks);
    cs_log_info("page started", "{s:s, s:i, s:s}", "group", cfg.group_id, "routes",
                (int)cs_routes_count(routes), "default_sink", cfg.page_sink);

    run(&ctx);

    cs_kafka_consumer_destroy(ctx.consumer);
    rd_kafka_flush(ctx.producer, 30000);
    rd_kafka_destroy(ctx.producer);
    cs_delivery_destroy(ctx.delivery);
    cs_inflight_destroy(ctx.inflight);
    cs_dedupe_destroy(ctx.dedupe);
    cs_redis_destroy(redis);
    cs_alert_codec_destroy(ctx.codec);
    cs_directory_destroy(dir);
    cs_registry_destroy(reg);
    cs_routes_destroy(routes);
    cs_cli_release(&cli);
    cs_config_clear(&cfg);
    return cs_exit_status();
}
