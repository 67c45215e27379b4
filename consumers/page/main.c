/* caresignal-page: RiskAlerts from intel.alerts to the on-call team — stdout, a webhook
 * or a command, by route — each alert paged once (de-duplicated by alert_id in Redis),
 * retried with backoff, and dead-lettered rather than dropped (DESIGN §8, §9). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caresignal/app.h"
#include "caresignal/deadletter.h"
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
    "or with page.format=text one readable line per alert), webhook (HTTP POST of the\n"
    "JSON, signed with X-Caresignal-Signature: sha256=HMAC of the body with the "
    "secret),\n"
    "or exec (a command run with the alert JSON on its stdin; exit 0 = delivered).\n"
    "An alert already paged (its alert_id remembered in Redis for page.dedupe.ttl.s) is\n"
    "not paged again. A failed delivery is retried page.retries times with exponential\n"
    "backoff from page.retry.backoff.ms, then sent to topic.deadletter with\n"
    "cs.error=UNDELIVERABLE. Offsets advance only after delivery or dead-lettering.",
    NULL,
    "Routes file example:\n"
    "  {\"routes\": [\n"
    "    {\"name\": \"london-inspect\", \"match\": {\"level\": [\"INSPECT\"], "
    "\"region\": "
    "[\"London\"]},\n"
    "     \"sink\": \"webhook\", \"url\": \"https://oncall.example/hook\", "
    "\"secret_env\": "
    "\"HOOK_KEY\"},\n"
    "    {\"name\": \"areas\", \"match\": {\"subject_kind\": [\"LOCAL_AREA\"]}, "
    "\"sink\": \"exec\",\n"
    "     \"command\": \"/usr/local/bin/notify-area-lead\"}]}",
};

typedef struct pager_ctx {
    const cs_config_t *cfg;
    cs_routes_t *routes;
    cs_pager_t *pager;
    cs_redis_t *redis;
    int redis_down;
    long paged, duplicates, dead, undecodable;
} pager_ctx_t;

/* The de-duplication record. If Redis cannot answer we page anyway: a duplicate page
 * is better than a late or missing one (logged once while it lasts). */
static int already_paged(pager_ctx_t *ctx, const char *alert_id)
{
    char key[160], errstr[512];
    snprintf(key, sizeof(key), "%s:paged:%s", ctx->cfg->state_namespace, alert_id);
    const char *argv[] = {"EXISTS", key};
    redisReply *r = NULL;
    if (cs_redis_connected(ctx->redis) ||
        cs_redis_connect(ctx->redis, errstr, sizeof(errstr)) == CS_OK)
        r = cs_redis_command(ctx->redis, 2, argv, NULL, errstr, sizeof(errstr));
    if (!r || r->type != REDIS_REPLY_INTEGER) {
        if (!ctx->redis_down)
            cs_log_error("redis unavailable: paging without de-duplication", "{s:s}",
                         "error", r ? (r->str ? r->str : "bad reply") : errstr);
        ctx->redis_down = 1;
        if (r)
            freeReplyObject(r);
        return 0;
    }
    if (ctx->redis_down)
        cs_log_info("redis answers again: de-duplication restored", NULL);
    ctx->redis_down = 0;
    int seen = r->integer > 0;
    freeReplyObject(r);
    return seen;
}

static void remember_paged(pager_ctx_t *ctx, const char *alert_id)
{
    char key[160], ttl[32], errstr[512];
    snprintf(key, sizeof(key), "%s:paged:%s", ctx->cfg->state_namespace, alert_id);
    snprintf(ttl, sizeof(ttl), "%ld", ctx->cfg->page_dedupe_ttl_s);
    const char *argv[] = {"SET", key, "1", "EX", ttl};
    redisReply *r = cs_redis_command(ctx->redis, 5, argv, NULL, errstr, sizeof(errstr));
    if (r)
        freeReplyObject(r);
}

/* Delivers one alert by its route, with retries. @returns CS_OK (delivered),
 * CS_ERR_RETRY (undeliverable after every retry), or CS_ERR_FATAL (stop requested
 * mid-retry: the alert stays unacknowledged and is read again). */
static cs_err_t deliver(pager_ctx_t *ctx, const cs_route_t *route, const cs_alert_t *a,
                        char *last_error, size_t size)
{
    long backoff = ctx->cfg->page_retry_backoff_ms;
    for (long attempt = 0;; attempt++) {
        if (cs_pager_deliver(ctx->pager, route, a, last_error, size) == CS_OK)
            return CS_OK;
        cs_log_warn("delivery failed", "{s:s, s:s, s:i, s:s}", "alert_id", a->alert_id,
                    "route", route->name, "attempt", (int)attempt + 1, "error",
                    last_error);
        if (attempt >= ctx->cfg->page_retries)
            return CS_ERR_RETRY;
        cs_sleep_ms(backoff);
        if (!cs_running())
            return CS_ERR_FATAL;
        backoff = backoff * 2 > 60000 ? 60000 : backoff * 2;
    }
}

static cs_err_t process(pager_ctx_t *ctx, cs_alert_codec_t *codec, rd_kafka_t *producer,
                        cs_kafka_tracker_t *tracker, const rd_kafka_message_t *m)
{
    char errstr[512];
    cs_alert_t a;
    cs_error_t err;
    cs_err_t rc = cs_alert_decode(codec, m->payload, m->len, &a, &err);
    if (rc) {
        ctx->undecodable++;
        cs_log_error("undecodable alert: sent to the dead-letter topic",
                     "{s:s, s:i, s:I}", "reason", cs_err_str(rc), "partition",
                     (int)m->partition, "offset", (json_int_t)m->offset);
        return cs_deadletter_produce(producer, tracker, ctx->cfg->topic_deadletter, m,
                                     cs_err_is_reason(rc) ? cs_err_str(rc)
                                                          : "AVRO_DECODE",
                                     "", errstr, sizeof(errstr));
    }
    if (already_paged(ctx, a.alert_id)) {
        ctx->duplicates++;
        cs_log_debug("already paged", "{s:s}", "alert_id", a.alert_id);
        return CS_OK;
    }
    const cs_route_t *route = cs_routes_match(ctx->routes, &a);
    char last_error[512] = "";
    rc = deliver(ctx, route, &a, last_error, sizeof(last_error));
    if (rc == CS_OK) {
        ctx->paged++;
        cs_log_info("paged", "{s:s, s:s, s:s, s:s, s:s}", "alert_id", a.alert_id, "route",
                    route->name, "alert_level", cs_level_names[a.level], "kind",
                    cs_alert_kind_names[a.kind], "subject_kind",
                    cs_subject_kind_names[a.subject_kind]);
        remember_paged(ctx, a.alert_id);
        return CS_OK;
    }
    if (rc == CS_ERR_FATAL)
        return rc;
    /* never dropped: the alert, as it was, goes to the dead-letter topic */
    ctx->dead++;
    cs_log_error("alert undeliverable: sent to the dead-letter topic", "{s:s, s:s, s:s}",
                 "alert_id", a.alert_id, "route", route->name, "error", last_error);
    return cs_deadletter_produce(producer, tracker, ctx->cfg->topic_deadletter, m,
                                 "UNDELIVERABLE", route->name, errstr, sizeof(errstr));
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
    cs_alert_codec_t *codec = cs_alert_codec_new(reg, errstr, sizeof(errstr));
    if (!codec)
        cs_cli_fail(&spec, "%s", errstr);

    cs_signals_install();
    pager_ctx_t ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.cfg = &cfg;
    ctx.routes = routes;
    ctx.pager = cs_pager_new(stdout, dir);
    ctx.redis = cs_redis_new_from_config(&cfg);
    if (cs_redis_connect(ctx.redis, errstr, sizeof(errstr)) == CS_ERR_FATAL)
        cs_cli_fail(&spec, "%s", errstr);
    rd_kafka_t *producer = cs_app_producer(&spec, &cfg);
    const char *topics[] = {cfg.topic_alerts};
    rd_kafka_t *consumer = cs_app_consumer(&spec, &cfg, topics, 1, NULL);
    cs_log_info("page started", "{s:s, s:i, s:s}", "group", cfg.group_id, "routes",
                (int)cs_routes_count(routes), "default_sink", cfg.page_sink);

    rd_kafka_message_t *msgs[100];
    int64_t next_stats = cs_mono_ms() + 10000;
    while (cs_running()) {
        int got = cs_kafka_poll_batch(consumer, msgs, 100, 100);
        cs_kafka_tracker_t tracker;
        memset(&tracker, 0, sizeof(tracker));
        int done = 0;
        cs_err_t rc = CS_OK;
        for (; done < got && rc == CS_OK; done++)
            rc = process(&ctx, codec, producer, &tracker, msgs[done]);
        if (rc != CS_OK)
            done--; /* the one that failed is not done */
        cs_err_t wrc = cs_kafka_tracker_wait(producer, &tracker, -1);
        if (wrc == CS_OK) {
            /* in order: what was paged or dead-lettered, up to the first that was not */
            cs_kafka_store_offsets(consumer, msgs, done);
        } else {
            cs_log_fatal("dead letters not delivered: stopping without storing offsets",
                         NULL);
            cs_request_fail();
        }
        if (rc == CS_ERR_KAFKA)
            cs_request_fail();
        for (int i = 0; i < got; i++)
            rd_kafka_message_destroy(msgs[i]);
        if (cs_mono_ms() >= next_stats) {
            cs_log_info("page totals", "{s:I, s:I, s:I, s:I}", "paged",
                        (json_int_t)ctx.paged, "duplicates", (json_int_t)ctx.duplicates,
                        "dead_letters", (json_int_t)ctx.dead, "undecodable",
                        (json_int_t)ctx.undecodable);
            next_stats = cs_mono_ms() + 10000;
        }
    }
    cs_log_info("page stopping", NULL);
    cs_log_info("page totals", "{s:I, s:I, s:I, s:I}", "paged", (json_int_t)ctx.paged,
                "duplicates", (json_int_t)ctx.duplicates, "dead_letters",
                (json_int_t)ctx.dead, "undecodable", (json_int_t)ctx.undecodable);
    cs_kafka_consumer_destroy(consumer);
    rd_kafka_flush(producer, 30000);
    rd_kafka_destroy(producer);
    cs_redis_destroy(ctx.redis);
    cs_pager_destroy(ctx.pager);
    cs_alert_codec_destroy(codec);
    cs_directory_destroy(dir);
    cs_registry_destroy(reg);
    cs_routes_destroy(routes);
    cs_cli_release(&cli);
    cs_config_clear(&cfg);
    return cs_exit_status();
}
