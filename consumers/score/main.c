/* caresignal-score: canonical events from intel.events applied to the risk state in Redis
 * (one FCALL per subject per batch), level changes published as RiskAlerts; and the
 * "highest risk first" read path (--top). DESIGN §6-§8. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caresignal/app.h"
#include "caresignal/backoff.h"
#include "caresignal/deadletter.h"
#include "caresignal/engine.h"
#include "caresignal/log.h"
#include "caresignal/score.h"
#include "caresignal/timeutil.h"

static const cs_cli_option_t options[] = {
    {"top", "N", "print the N highest-risk subjects now (reads Redis only) and exit"},
    {"kind", "KIND", "with --top: LOCATION (default) or LOCAL_AREA"},
    {"at", "ISO-8601", "with --top: decay scores to this time instead of now"},
    {"json", NULL, "with --top: one JSON object per line instead of a table"},
    {NULL, NULL, NULL},
};

static const cs_cli_spec_t spec = {
    "caresignal-score",
    CS_PROG_SCORE,
    "[options]",
    "Consumes canonical events (topic.events) as consumer group group.id in batches of\n"
    "score.batch.max, applies each subject's events to its risk state in Redis with one\n"
    "Redis function call (exactly once: redeliveries and partner duplicates are "
    "skipped),\n"
    "and publishes a RiskAlert to topic.alerts whenever a subject's level changes.\n"
    "Offsets are stored only after the batch's Redis replies and alert deliveries\n"
    "succeed; if Redis is unreachable it pauses, retries with backoff and resumes.\n"
    "With --top N it prints the highest-risk subjects now instead (no Kafka needed).",
    options,
    "Examples:\n"
    "  caresignal-score --config deploy/config/caresignal.properties\n"
    "  caresignal-score --config deploy/config/caresignal.properties --top 10\n"
    "  caresignal-score --config ... --top 20 --kind LOCAL_AREA --json",
};

/* ------------------------------------------------------------------ the consumer */

typedef struct scorer_ctx {
    const cs_config_t *cfg;
    cs_scorer_t *scorer;
    cs_redis_t *redis;
    rd_kafka_t *consumer;
    int paused; /* consumption paused while Redis is unreachable */
    cs_backoff_t backoff;
    rd_kafka_message_t **carry; /* fetched before the pause took effect: the next batch */
    int ncarry;
    long events, applied, duplicates, redeliveries, regressions, alerts, reemitted, dead;
} scorer_ctx_t;

/* Where to resume a partition (DESIGN §7): the lowest of the position recorded in
 * Redis after the last applied batch and the committed offset, so a Redis that lost
 * its last writes is brought back by re-reading; the function makes the overlap a
 * no-op. No recorded position (a new namespace, or a Redis that lost everything):
 * from the beginning. */
static cs_err_t on_assign(void *opaque, rd_kafka_t *rk,
                          rd_kafka_topic_partition_list_t *parts)
{
    scorer_ctx_t *ctx = opaque;
    (void)rk;
    char errstr[512];
    cs_redis_pipe_t *p = cs_redis_pipe_new();
    for (int i = 0; i < parts->cnt; i++) {
        char key[512];
        cs_scorer_pos_key(ctx->scorer, parts->elems[i].topic, parts->elems[i].partition,
                          key, sizeof(key));
        const char *argv[] = {"GET", key};
        cs_redis_pipe_add(p, 2, argv, NULL);
    }
    /* Redis may be restarting: wait for it (a while; the group waits for us too) */
    cs_err_t err;
    int64_t deadline = cs_mono_ms() + 60000;
    while ((err = cs_redis_pipe_exec(ctx->redis, p, errstr, sizeof(errstr))) ==
               CS_ERR_RETRY &&
           cs_running() && cs_mono_ms() < deadline)
        cs_redis_connect_retry(ctx->redis, deadline - cs_mono_ms(), errstr,
                               sizeof(errstr));
    for (int i = 0; !err && i < parts->cnt; i++) {
        const redisReply *r = cs_redis_pipe_reply(p, (size_t)i);
        rd_kafka_topic_partition_t *tp = &parts->elems[i];
        int64_t committed = tp->offset;
        char *end = NULL;
        int64_t pos = r && r->type == REDIS_REPLY_STRING ? strtoll(r->str, &end, 10) : -1;
        if (!r || (r->type != REDIS_REPLY_NIL &&
                   (r->type != REDIS_REPLY_STRING || *end || pos < 0))) {
            /* an error reply is not "no position": that would replay the partition from
             * the beginning, or worse, hide a Redis that refuses us */
            snprintf(errstr, sizeof(errstr), "position of %s[%d]: %s", tp->topic,
                     (int)tp->partition,
                     r && r->type == REDIS_REPLY_ERROR ? r->str : "not an offset");
            err = CS_ERR_REDIS;
            break;
        }
        if (r->type == REDIS_REPLY_STRING) {
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
    if (err)
        cs_log_fatal("cannot read positions from redis: no safe place to resume", "{s:s}",
                     "error", errstr);
    ctx->paused = 0; /* a new assignment fetches: an outage in progress pauses it again */
    return err;
}

/* Pauses or resumes consumption, on a change only (librdkafka re-seeks each time). */
static void set_paused(scorer_ctx_t *ctx, int pause)
{
    if (pause == ctx->paused)
        return;
    cs_kafka_pause_assignment(ctx->consumer, pause);
    ctx->paused = pause;
}

/*
 * Redis cannot answer: consumption is paused, the consumer is still polled (so the
 * group sees us alive and rebalances are served) and the engine retries with backoff.
 * Messages already fetched when we paused are kept in ctx->carry for the next batch,
 * never dropped. A rebalance meanwhile does not abandon the batch: applying it later is
 * safe even for partitions that moved, because the function skips what the new owner
 * already applied (and vice versa). Only a stop gives up (nothing stored: read again).
 */
static int redis_waiting(void *opaque, const char *error, int first)
{
    scorer_ctx_t *ctx = opaque;
    if (first) {
        if (!ctx->paused)
            cs_log_error("redis unavailable: consumption paused, retrying with backoff",
                         "{s:s}", "error", error);
        cs_backoff_init(&ctx->backoff, CS_BACKOFF_STORE_INITIAL_MS,
                        CS_BACKOFF_STORE_MAX_MS);
    }
    set_paused(ctx, 1);
    cs_backoff_sleep(&ctx->backoff);
    rd_kafka_message_t *m;
    while ((m = rd_kafka_consumer_poll(ctx->consumer, 0))) {
        if (m->err) {
            rd_kafka_message_destroy(m);
            continue;
        }
        rd_kafka_message_t **grown =
            realloc(ctx->carry, (size_t)(ctx->ncarry + 1) * sizeof(*grown));
        if (!grown) {
            rd_kafka_message_destroy(m);
            return 1;
        }
        ctx->carry = grown;
        ctx->carry[ctx->ncarry++] = m;
    }
    return !cs_running();
}

static void redis_back(void *opaque)
{
    scorer_ctx_t *ctx = opaque;
    if (ctx->paused) {
        set_paused(ctx, 0);
        cs_log_info("redis answers again: consumption resumed", NULL);
    }
}

/* Dead-letters one input message of the batch (its bytes, the reason, the field). */
static cs_err_t dead_letter(scorer_ctx_t *ctx, rd_kafka_t *producer,
                            cs_kafka_tracker_t *tracker, const rd_kafka_message_t *m,
                            const char *reason, const char *field)
{
    char errstr[512];
    ctx->dead++;
    if (cs_deadletter_produce(producer, tracker, ctx->cfg->topic_deadletter, m, reason,
                              field, errstr, sizeof(errstr)) == CS_OK)
        return CS_OK;
    cs_log_fatal("cannot dead-letter an event: stopping without storing offsets",
                 "{s:s, s:i, s:I, s:s}", "topic", rd_kafka_topic_name(m->rkt),
                 "partition", (int)m->partition, "offset", (json_int_t)m->offset, "error",
                 errstr);
    return CS_ERR_FATAL;
}

/* Decodes and checks one message into \p ev: what is not a valid IntelEvent (undecodable,
 * or an identifier outside DESIGN §4.3 that would reach a Redis key or a reply) is
 * dead-lettered with its reason. @returns 1 if \p ev is to be applied, 0 if it was
 * dead-lettered, -1 if that failed. */
static int decode_one(scorer_ctx_t *ctx, cs_event_codec_t *codec, rd_kafka_t *producer,
                      cs_kafka_tracker_t *tracker, const rd_kafka_message_t *m,
                      cs_intel_event_t *ev)
{
    cs_error_t err;
    cs_err_t drc = cs_event_decode(codec, m->payload, m->len, ev, &err);
    if (drc == CS_OK)
        drc = cs_event_validate(ev, &err);
    if (drc == CS_OK)
        return 1;
    const char *reason = cs_err_is_reason(drc) ? cs_err_str(drc) : "AVRO_DECODE";
    cs_log_error("invalid event: sent to the dead-letter topic", "{s:s, s:s, s:i, s:I}",
                 "reason", reason, "field", err.field, "partition", (int)m->partition,
                 "offset", (json_int_t)m->offset);
    return dead_letter(ctx, producer, tracker, m, reason, err.field) ? -1 : 0;
}

/* One batch: decode (what is not a valid event is dead-lettered), apply (a subject whose
 * call fails is dead-lettered, STATE_ERROR, and the others go on), publish the alerts,
 * acknowledge them. @returns CS_OK (offsets may be stored), CS_ERR_RETRY (a stop during a
 * Redis outage: nothing stored, read again) or CS_ERR_FATAL. */
static cs_err_t process_batch(scorer_ctx_t *ctx, cs_engine_t *engine,
                              cs_event_codec_t *codec, cs_alert_codec_t *acodec,
                              rd_kafka_t *producer, rd_kafka_message_t **msgs, int n,
                              cs_engine_event_t *events, int *msg_of)
{
    const cs_config_t *cfg = ctx->cfg;
    char errstr[512];
    cs_kafka_tracker_t tracker;
    memset(&tracker, 0, sizeof(tracker));
    size_t nevents = 0;
    cs_err_t rc = CS_OK;
    for (int i = 0; i < n && !rc; i++) {
        int ok = decode_one(ctx, codec, producer, &tracker, msgs[i], &events[nevents].ev);
        if (ok < 0)
            rc = CS_ERR_FATAL;
        if (ok <= 0)
            continue;
        events[nevents].topic = rd_kafka_topic_name(msgs[i]->rkt);
        events[nevents].partition = msgs[i]->partition;
        events[nevents].offset = msgs[i]->offset;
        msg_of[nevents] = i;
        nevents++;
    }
    ctx->events += (long)nevents;
    cs_engine_result_t res;
    if (!rc &&
        (rc =
             cs_engine_apply(engine, events, nevents, 1, &res, errstr, sizeof(errstr))) &&
        rc != CS_ERR_RETRY)
        cs_log_fatal("the risk function failed", "{s:s}", "error", errstr);
    if (!rc && res.nfailed) {
        cs_log_error("the risk function failed for a subject: its events are sent to the "
                     "dead-letter topic (STATE_ERROR), the rest of the batch goes on",
                     "{s:s, s:I}", "error", res.failure, "events",
                     (json_int_t)res.nfailed);
        for (size_t k = 0; k < res.nfailed && !rc; k++)
            rc = dead_letter(ctx, producer, &tracker, msgs[msg_of[res.failed[k]]],
                             CS_DL_STATE_ERROR, "");
    }
    if (!rc) {
        ctx->applied += res.applied;
        ctx->duplicates += res.duplicates;
        ctx->redeliveries += res.redeliveries;
        ctx->regressions += res.regressions;
        if (res.regressions)
            cs_log_warn("events applied at or below their subject's last offset: "
                        "intel.events was recreated or migrated",
                        "{s:I}", "events", (json_int_t)res.regressions);
        ctx->alerts += res.nalerts - res.nreemitted;
        ctx->reemitted += res.nreemitted;
        for (int a = 0; a < res.nalerts && !rc; a++) {
            const uint8_t *bytes;
            size_t len;
            char key[CS_SUBJECT_KEY_MAX];
            size_t klen = cs_subject_key(res.alerts[a].subject_kind,
                                         res.alerts[a].subject_id, key, sizeof(key));
            if (cs_alert_encode(acodec, &res.alerts[a], &bytes, &len) ||
                cs_kafka_produce(producer, &tracker, cfg->topic_alerts,
                                 RD_KAFKA_PARTITION_UA, key, klen, bytes, len, NULL,
                                 errstr, sizeof(errstr)))
                rc = CS_ERR_FATAL;
        }
    }
    if (cs_kafka_tracker_wait(producer, &tracker, -1) && !rc) {
        cs_log_fatal("alerts not delivered: stopping without storing offsets", "{s:s}",
                     "error", rd_kafka_err2str(tracker.first_err));
        rc = CS_ERR_FATAL;
    }
    /* delivered: the alerts leave the subjects' pending lists */
    if (!rc && (rc = cs_engine_ack(engine, errstr, sizeof(errstr))) && rc != CS_ERR_RETRY)
        cs_log_fatal("alerts not acknowledged", "{s:s}", "error", errstr);
    return rc;
}

static void log_totals(const scorer_ctx_t *c)
{
    cs_log_info(
        "score totals", "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "events",
        (json_int_t)c->events, "applied", (json_int_t)c->applied, "duplicates",
        (json_int_t)c->duplicates, "redeliveries", (json_int_t)c->redeliveries,
        "offset_regressions", (json_int_t)c->regressions, "alerts", (json_int_t)c->alerts,
        "alerts_reemitted", (json_int_t)c->reemitted, "dead_letters", (json_int_t)c->dead,
        "offset_resets", (json_int_t)cs_kafka_offset_resets(), "positions_refused",
        (json_int_t)cs_kafka_positions_refused());
}

static int run_consumer(const cs_config_t *cfg, cs_registry_t *reg, cs_rules_t *rules,
                        cs_scorer_t *scorer, cs_redis_t *redis)
{
    char errstr[512];
    cs_event_codec_t *codec = cs_event_codec_new(reg, errstr, sizeof(errstr));
    cs_alert_codec_t *acodec =
        codec ? cs_alert_codec_new(reg, errstr, sizeof(errstr)) : NULL;
    if (!acodec)
        cs_cli_fail(&spec, "%s", errstr);
    scorer_ctx_t ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.cfg = cfg;
    ctx.scorer = scorer;
    ctx.redis = redis;
    cs_engine_t *engine = cs_engine_new(scorer, redis, redis_waiting, redis_back, &ctx);
    cs_consumer_hooks_t hooks = {on_assign, NULL, &ctx};
    rd_kafka_t *producer = cs_app_producer(&spec, cfg);
    const char *topics[] = {cfg->topic_events};
    ctx.consumer = cs_app_consumer(&spec, cfg, topics, 1, &hooks);
    cs_log_info("score started", "{s:s, s:s, s:s, s:s, s:s}", "group", cfg->group_id,
                "namespace", cfg->state_namespace, "function", cs_scorer_function(scorer),
                "rules_version", rules->version, "alerts_topic", cfg->topic_alerts);

    int batch_max = (int)cfg->score_batch_max;
    rd_kafka_message_t **msgs = calloc((size_t)batch_max, sizeof(*msgs));
    cs_engine_event_t *events = calloc((size_t)batch_max, sizeof(*events));
    int *msg_of = calloc((size_t)batch_max, sizeof(*msg_of));
    if (!msgs || !events || !msg_of)
        cs_cli_fail(&spec, "out of memory");
    int64_t next_stats = cs_mono_ms() + 10000;
    while (cs_running()) {
        /* messages kept from a Redis outage come first, in their order */
        int got = 0;
        while (got < batch_max && ctx.ncarry > 0) {
            msgs[got++] = ctx.carry[0];
            memmove(ctx.carry, ctx.carry + 1, (size_t)--ctx.ncarry * sizeof(*ctx.carry));
        }
        got +=
            cs_kafka_poll_batch(ctx.consumer, msgs + got, batch_max - got, got ? 0 : 100);
        if (got) {
            cs_err_t rc = process_batch(&ctx, engine, codec, acodec, producer, msgs, got,
                                        events, msg_of);
            if (rc == CS_OK)
                cs_kafka_store_offsets(ctx.consumer, msgs, got);
            else if (rc == CS_ERR_RETRY)
                cs_log_warn("stopping with a batch not applied: it will be read again",
                            "{s:i}", "messages", got);
            else
                cs_request_fail();
            for (int i = 0; i < got; i++)
                rd_kafka_message_destroy(msgs[i]);
        }
        if (cs_mono_ms() >= next_stats) {
            log_totals(&ctx);
            next_stats = cs_mono_ms() + 10000;
        }
    }
    cs_log_info("score stopping", NULL);
    log_totals(&ctx);
    for (int i = 0; i < ctx.ncarry; i++)
        rd_kafka_message_destroy(ctx.carry[i]);
    free(ctx.carry);
    cs_kafka_consumer_destroy(ctx.consumer);
    rd_kafka_flush(producer, 30000);
    rd_kafka_destroy(producer);
    free(msgs);
    free(events);
    free(msg_of);
    cs_engine_destroy(engine);
    cs_alert_codec_destroy(acodec);
    cs_event_codec_destroy(codec);
    return cs_exit_status();
}

/* ------------------------------------------------------------------ --top */

static int run_top(const cs_config_t *cfg, const cs_cli_t *cli, cs_rules_t *rules,
                   cs_scorer_t *scorer, cs_redis_t *redis)
{
    long top;
    const char *v = cs_cli_get(cli, &spec, "top");
    if (cs_cli_parse_long(v, 1, 100000, &top))
        cs_cli_fail(&spec, "option --top: expected a number from 1 to 100000, got '%s'",
                    v);
    cs_subject_kind_t kind = CS_SUBJECT_LOCATION;
    if ((v = cs_cli_get(cli, &spec, "kind"))) {
        int k = cs_enum_index(cs_subject_kind_names, CS_SUBJECT_COUNT, v);
        if (k < 0)
            cs_cli_fail(&spec, "option --kind: expected LOCATION or LOCAL_AREA, got '%s'",
                        v);
        kind = (cs_subject_kind_t)k;
    }
    int64_t now = cs_wall_ms();
    if ((v = cs_cli_get(cli, &spec, "at")) && cs_time_parse_iso8601(v, strlen(v), &now))
        cs_cli_fail(&spec,
                    "option --at: expected an ISO-8601 time with an offset, got '%s'", v);
    int as_json = cs_cli_get(cli, &spec, "json") != NULL;
    (void)cfg;

    char errstr[512], key[256], count[32];
    if (cs_redis_connect(redis, errstr, sizeof(errstr))) {
        cs_log_fatal("redis unreachable", "{s:s}", "error", errstr);
        return 1;
    }
    /* the rank is decay-invariant (score_rank_value), so the sorted set's order is the
     * order of scores decayed to any "now" */
    cs_scorer_rank_key(scorer, kind, key, sizeof(key));
    snprintf(count, sizeof(count), "%ld", top - 1);
    const char *argv[] = {"ZREVRANGE", key, "0", count};
    redisReply *ids = cs_redis_command(redis, 4, argv, NULL, errstr, sizeof(errstr));
    if (!ids || ids->type != REDIS_REPLY_ARRAY) {
        cs_log_fatal("cannot read the rank", "{s:s}", "error", ids ? ids->str : errstr);
        if (ids)
            freeReplyObject(ids);
        return 1;
    }
    cs_redis_pipe_t *p = cs_redis_pipe_new();
    for (size_t i = 0; i < ids->elements; i++) {
        char skey[512], ekey[512];
        cs_scorer_state_key(scorer, ids->element[i]->str, skey, sizeof(skey));
        cs_scorer_events_key(scorer, ids->element[i]->str, ekey, sizeof(ekey));
        const char *hm[] = {"HMGET",         skey,
                            "score",         "as_of",
                            "level",         "area.SAFE_CARE",
                            "area.STAFFING", "area.PROTECTION_FROM_ABUSE",
                            "area.ASSURANCE"};
        cs_redis_pipe_add(p, 9, hm, NULL);
        const char *zr[] = {"ZREVRANGE", ekey, "0", "2", "WITHSCORES"};
        cs_redis_pipe_add(p, 5, zr, NULL);
    }
    if (ids->elements && cs_redis_pipe_exec(redis, p, errstr, sizeof(errstr))) {
        cs_log_fatal("cannot read the state", "{s:s}", "error", errstr);
        return 1;
    }
    char when[32];
    cs_time_format(now, when, sizeof(when));
    if (!as_json)
        printf("Highest risk %s subjects at %s (scores decayed to then)\n%-4s %-26s %-8s "
               "%8s %9s "
               "%8s %9s %9s  %s\n",
               cs_subject_kind_names[kind], when, "#", "subject", "level", "score",
               "safe_care", "staffing", "abuse", "assurance", "last events");
    for (size_t i = 0; i < ids->elements; i++) {
        const redisReply *h = cs_redis_pipe_reply(p, 2 * i),
                         *z = cs_redis_pipe_reply(p, 2 * i + 1);
        if (!h || h->type != REDIS_REPLY_ARRAY || h->elements != 7 || !h->element[0]->str)
            continue;
        int64_t as_of = strtoll(h->element[1]->str ? h->element[1]->str : "0", NULL, 10);
        double s = cs_scorer_decay(rules, strtod(h->element[0]->str, NULL), as_of, now);
        double areas[CS_AREA_COUNT];
        for (int a = 0; a < CS_AREA_COUNT; a++)
            areas[a] = cs_scorer_decay(
                rules, h->element[3 + a]->str ? strtod(h->element[3 + a]->str, NULL) : 0,
                as_of, now);
        const char *level = h->element[2]->str ? h->element[2]->str : "NONE";
        const char *subject = ids->element[i]->str;
        json_t *last = json_array();
        for (size_t k = 0; z && z->type == REDIS_REPLY_ARRAY && k + 1 < z->elements;
             k += 2) {
            char ek[CS_EVENT_KEY_MAX];
            int sig = 0, sev = 0;
            if (sscanf(z->element[k]->str, "%199s %d %d", ek, &sig, &sev) == 3 &&
                sig >= 0 && sig < CS_SIGNAL_COUNT && sev >= 0 && sev < CS_SEVERITY_COUNT)
                json_array_append_new(
                    last,
                    json_pack("{s:s, s:s, s:s, s:I}", "event_key", ek, "signal",
                              cs_signal_names[sig], "severity", cs_severity_names[sev],
                              "occurred_at",
                              (json_int_t)strtoll(z->element[k + 1]->str, NULL, 10)));
        }
        if (as_json) {
            json_t *line = json_pack(
                "{s:i, s:s, s:s, s:f, s:I, s:{s:f, s:f, s:f, s:f}, s:O}", "rank",
                (int)i + 1, "subject", subject, "level", level, "score_now", s, "as_of",
                (json_int_t)as_of, "area_scores_now", "SAFE_CARE", areas[0], "STAFFING",
                areas[1], "PROTECTION_FROM_ABUSE", areas[2], "ASSURANCE", areas[3],
                "last_events", last);
            char *text = json_dumps(line, JSON_COMPACT);
            puts(text);
            free(text);
            json_decref(line);
        } else {
            char lastbuf[512] = "";
            size_t k;
            json_t *e;
            json_array_foreach(last, k, e)
            {
                size_t len = strlen(lastbuf);
                snprintf(lastbuf + len, sizeof(lastbuf) - len, "%s%s/%s", k ? ", " : "",
                         json_string_value(json_object_get(e, "signal")),
                         json_string_value(json_object_get(e, "severity")));
            }
            printf("%-4zu %-26s %-8s %8.1f %9.1f %8.1f %9.1f %9.1f  %s\n", i + 1, subject,
                   level, s, areas[0], areas[1], areas[2], areas[3], lastbuf);
        }
        json_decref(last);
    }
    cs_redis_pipe_destroy(p);
    freeReplyObject(ids);
    return 0;
}

int main(int argc, char **argv)
{
    cs_config_t cfg;
    cs_cli_t cli;
    cs_cli_parse(&spec, argc, argv, &cfg, &cli);
    if (cli.nargs)
        cs_cli_fail(&spec, "unexpected argument '%s' (see --help)", cli.args[0]);
    int top = cs_cli_get(&cli, &spec, "top") != NULL;
    if (!top && (cs_cli_get(&cli, &spec, "kind") || cs_cli_get(&cli, &spec, "at") ||
                 cs_cli_get(&cli, &spec, "json")))
        cs_cli_fail(&spec, "options --kind, --at and --json go with --top");
    if (!top)
        cs_cli_require(&spec, &cfg, CS_PROG_SCORE);

    cs_registry_t *reg = cs_app_registry(&spec, &cfg);
    cs_rules_t *rules = cs_app_rules(&spec, &cfg);
    char errstr[512];
    cs_scorer_t *scorer =
        cs_scorer_new(rules, cfg.state_namespace, errstr, sizeof(errstr));
    if (!scorer)
        cs_cli_fail(&spec, "%s", errstr);
    cs_redis_t *redis = cs_redis_new_from_config(&cfg);
    cs_signals_install();

    int rc;
    if (top) {
        rc = run_top(&cfg, &cli, rules, scorer, redis);
    } else {
        cs_err_t err = cs_redis_connect_retry(redis, -1, errstr, sizeof(errstr));
        if (err == CS_OK &&
            cs_redis_check_noeviction(redis, errstr, sizeof(errstr)) == CS_ERR_CONFIG)
            cs_cli_fail(&spec, "%s", errstr);
        if (err == CS_OK)
            err = cs_redis_function_load(redis, cs_scorer_library(scorer), errstr,
                                         sizeof(errstr));
        if (err == CS_ERR_FATAL) {
            cs_log_fatal("redis refused us", "{s:s}", "error", errstr);
            rc = 1;
        } else if (err) {
            rc = cs_running() ? 1 : 0; /* stopped while waiting for Redis */
        } else {
            rc = run_consumer(&cfg, reg, rules, scorer, redis);
        }
    }
    cs_redis_destroy(redis);
    cs_scorer_destroy(scorer);
    cs_rules_destroy(rules);
    cs_registry_destroy(reg);
    cs_cli_release(&cli);
    cs_config_clear(&cfg);
    return rc;
}
