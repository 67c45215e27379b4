/* caresignal-page: RiskAlerts from intel.alerts to the on-call team — stdout, a webhook
 * or a command, by route — each alert paged once (de-duplicated by alert_id), each route
 * delivering on its own with bounded retries, and dead-lettered rather than dropped
 * (docs/contract/guarantees.md, docs/contract/configuration.md). The loop never stops polling: alerts wait in the routes' queues, and
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
#include "caresignal/log.h"
#include "caresignal/page.h"
#include "caresignal/metrics.h"
#include "caresignal/redis.h"
#include "caresignal/runtime.h"

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
    "\"/run/credentials/caresignal-page.service/hook\"},\n"
    "    {\"name\": \"areas\", \"match\": {\"subject_kind\": [\"LOCAL_AREA\"]}, "
    "\"sink\": \"exec\",\n"
    "     \"command\": \"/usr/local/bin/notify-area-lead\"}]}",
};

/* How long a stop waits for the routes to deliver what they hold. */
#define STOP_DRAIN_MS 10000
/* In-memory de-duplication: the latest alert ids paged by this process. */
#define DEDUPE_CACHE 100000

/* A fetched alert waiting for its de-duplication check and a place in its route. */
typedef struct pending {
    cs_rt_msg_t *m;
    struct pending *next;
} pending_t;

typedef struct pager_ctx {
    const cs_config_t *cfg;
    cs_routes_t *routes;
    cs_delivery_t *delivery;
    cs_dedupe_t *dedupe;
    cs_alert_codec_t *codec;
    cs_runtime_t *rt;
    pending_t *head, *tail;
    size_t npending;
    int64_t redis_wait_since; /* the head alert waits for Redis since then (0: not) */
    int64_t redis_retry_at;
    cs_backoff_t redis_backoff;
    long paged, duplicates, dead, undecodable, undeduplicated;
} pager_ctx_t;

/* Sends \p m to the dead-letter topic; it is finished once that is delivered. */
static void dead_letter(pager_ctx_t *ctx, cs_rt_msg_t *m, const char *reason,
                        const char *field)
{
    ctx->dead++;
    cs_rt_deadletter(m, ctx->cfg->topic_deadletter, reason, field);
}

/* ------------------------------------------------------------------ deliveries */

/* A route finished with an alert: delivered (remembered as paged), undeliverable
 * (dead-lettered) or abandoned at shutdown (read again after a restart). */
static void job_done(pager_ctx_t *ctx, cs_delivery_job_t *j)
{
    cs_rt_msg_t *m = j->opaque;
    if (j->result == CS_OK) {
        if (j->recorded) /* the worker wrote the Redis record as it delivered */
            cs_dedupe_remember_local(ctx->dedupe, j->alert.alert_id);
        else
            cs_dedupe_remember(ctx->dedupe, j->alert.alert_id);
        ctx->paged++;
        cs_page_delivered(j->route->name, m->origin_ms);
        cs_log_info(
            "paged", "{s:s, s:s, s:s, s:s, s:s, s:i}", "alert_id", j->alert.alert_id,
            "route", j->route->name, "alert_level", cs_level_names[j->alert.level],
            "kind", cs_alert_kind_names[j->alert.kind], "subject_kind",
            cs_subject_kind_names[j->alert.subject_kind], "attempts", j->attempts);
        cs_rt_release(m);
    } else if (j->result == CS_ERR_RETRY) {
        cs_log_error("alert undeliverable: sent to the dead-letter topic",
                     "{s:s, s:s, s:i, s:s}", "alert_id", j->alert.alert_id, "route",
                     j->route->name, "attempts", j->attempts, "error", j->error);
        cs_page_count(j->route->name, "undeliverable");
        dead_letter(ctx, m, CS_DL_UNDELIVERABLE, j->route->name);
        cs_rt_release(m);
    } else {
        cs_rt_abandon(m);
    }
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

static void route_finished(void *opaque)
{
    cs_runtime_wake(((pager_ctx_t *)opaque)->rt);
}

/* ------------------------------------------------------------------ fetched alerts */

static void on_messages(void *opaque, cs_rt_msg_t *const *msgs, size_t n)
{
    pager_ctx_t *ctx = opaque;
    for (size_t i = 0; i < n; i++) {
        pending_t *p = calloc(1, sizeof(*p));
        if (!p) {
            cs_log_fatal("out of memory", NULL);
            cs_request_fail();
            cs_rt_abandon(msgs[i]);
            continue;
        }
        p->m = msgs[i];
        if (ctx->tail)
            ctx->tail->next = p;
        else
            ctx->head = p;
        ctx->tail = p;
        ctx->npending++;
    }
}

static cs_rt_msg_t *pop_pending(pager_ctx_t *ctx)
{
    pending_t *p = ctx->head;
    ctx->head = p->next;
    if (!ctx->head)
        ctx->tail = NULL;
    ctx->npending--;
    cs_rt_msg_t *m = p->m;
    free(p);
    return m;
}

/* Was the alert paged already? Waits (consumption pauses) while Redis cannot say, for up
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
    cs_health_set(CS_HEALTH_REDIS, seen >= 0);
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
        const rd_kafka_message_t *m = ctx->head->m->m;
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
            cs_rt_msg_t *msg = pop_pending(ctx);
            dead_letter(ctx, msg, reason, err.field);
            cs_rt_release(msg);
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
            cs_page_count(cs_routes_match(ctx->routes, &j->alert)->name, "duplicate");
            cs_log_debug("already paged", "{s:s}", "alert_id", j->alert.alert_id);
            cs_rt_release(pop_pending(ctx));
            free(j);
            continue;
        }
        j->route = cs_routes_match(ctx->routes, &j->alert);
        j->opaque = ctx->head->m; /* its hold goes with the job */
        if (cs_delivery_submit(ctx->delivery, j) != CS_OK) {
            free(j);
            return -1; /* the route is full: the alert waits, consumption pauses */
        }
        pop_pending(ctx);
    }
    return 0;
}

/* ------------------------------------------------------------------ runtime callbacks */

static int on_turn(void *opaque, int64_t *next_ms)
{
    pager_ctx_t *ctx = opaque;
    if (!ctx->delivery)
        return 0; /* ended: only the close's revoke turns the loop now */
    collect_done(ctx);
    int blocked = advance(ctx) < 0;
    cs_dedupe_flush(ctx->dedupe);
    if (blocked && ctx->redis_wait_since && ctx->redis_retry_at < *next_ms)
        *next_ms = ctx->redis_retry_at;
    /* memory stays bounded whatever the lag: past page.queue.max waiting alerts, or
     * while the head waits, nothing more is fetched (the group still sees us) */
    return blocked || ctx->npending >= (size_t)ctx->cfg->page_queue_max;
}

/* Revoked partitions' alerts not yet handed to a route are given up (the next owner
 * reads them); those in a route get the drain's time to finish, so that what was paged
 * is remembered as paged. At a stop the routes get STOP_DRAIN_MS, then give up. */
static void on_flush(void *opaque, const rd_kafka_topic_partition_list_t *parts)
{
    pager_ctx_t *ctx = opaque;
    for (pending_t **pp = &ctx->head; *pp;) {
        pending_t *p = *pp;
        if (!parts || rd_kafka_topic_partition_list_find(
                          parts, rd_kafka_topic_name(p->m->m->rkt), p->m->m->partition)) {
            *pp = p->next;
            ctx->npending--;
            cs_rt_abandon(p->m);
            free(p);
            continue;
        }
        pp = &p->next;
    }
    ctx->tail = NULL;
    for (pending_t *p = ctx->head; p; p = p->next)
        ctx->tail = p;
    if (!parts && ctx->delivery) {
        cs_log_info("page stopping", "{s:I}", "in_flight",
                    (json_int_t)cs_delivery_in_flight(ctx->delivery));
        cs_delivery_stop(ctx->delivery, STOP_DRAIN_MS);
    }
}

static void on_stats(void *opaque)
{
    pager_ctx_t *ctx = opaque;
    cs_runtime_stats_t rs;
    cs_runtime_get_stats(ctx->rt, &rs);
    cs_log_info("page totals", "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "paged",
                (json_int_t)ctx->paged, "duplicates", (json_int_t)ctx->duplicates,
                "dead_letters", (json_int_t)ctx->dead, "undecodable",
                (json_int_t)ctx->undecodable, "undeduplicated",
                (json_int_t)ctx->undeduplicated, "in_flight", (json_int_t)rs.in_flight,
                "pauses", (json_int_t)rs.pauses, "offset_resets",
                (json_int_t)cs_kafka_offset_resets());
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
    if (rerr == CS_ERR_FATAL || rerr == CS_ERR_CONFIG)
        cs_cli_fail(&spec, "%s", errstr);
    if (rerr == CS_OK &&
        cs_redis_check_noeviction(redis, errstr, sizeof(errstr)) == CS_ERR_CONFIG)
        cs_cli_fail(&spec, "%s", errstr);
    ctx.dedupe =
        cs_dedupe_new(redis, cfg.state_namespace, cfg.page_dedupe_ttl_s, DEDUPE_CACHE);
    cs_delivery_policy_t policy = {.retries = cfg.page_retries,
                                   .backoff_ms = cfg.page_retry_backoff_ms,
                                   .backoff_max_ms = 60000,
                                   .max_hold_ms = cfg.page_retry_max_ms,
                                   .queue_max = (size_t)cfg.page_queue_max};
    cs_delivery_hooks_t hooks_d = {.delivered = record_delivered,
                                   .release = release_worker,
                                   .finished = route_finished,
                                   .opaque = &ctx};
    ctx.delivery =
        cs_delivery_new(routes, &policy, &hooks_d, stdout, dir, errstr, sizeof(errstr));
    if (!ctx.dedupe || !ctx.delivery)
        cs_cli_fail(&spec, "%s", ctx.delivery ? "out of memory" : errstr);
    const char *topics[] = {cfg.topic_alerts};
    cs_runtime_options_t opt = cs_app_runtime_options(&cfg, topics, 1, 100);
    const char *outputs[] = {cfg.topic_deadletter};
    opt.outputs = outputs;
    opt.noutputs = 1;
    cs_runtime_handler_t handler = {.on_messages = on_messages,
                                    .on_turn = on_turn,
                                    .on_flush = on_flush,
                                    .on_stats = on_stats,
                                    .opaque = &ctx};
    ctx.rt = cs_app_runtime(&spec, &cfg, &opt, &handler);
    cs_log_info("page started", "{s:s, s:i, s:s}", "group", cfg.group_id, "routes",
                (int)cs_routes_count(routes), "default_sink", cfg.page_sink);

    cs_runtime_run(ctx.rt);
    /* the routes were stopped by the drain: collect what they still return, then end
     * them before the runtime (their workers wake it) */
    cs_delivery_stop(ctx.delivery, 0);
    while (cs_delivery_in_flight(ctx.delivery) > 0) {
        cs_delivery_wait(ctx.delivery, 100);
        collect_done(&ctx);
    }
    cs_delivery_destroy(ctx.delivery);
    ctx.delivery = NULL;
    cs_dedupe_flush(ctx.dedupe);
    cs_runtime_destroy(ctx.rt);
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
