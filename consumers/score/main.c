/* caresignal-score: canonical events from intel.events applied to the risk state in Redis
 * (one FCALL per subject per batch), level changes published as RiskAlerts; and the
 * "highest risk first" read path (--top). DESIGN §6-§8. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caresignal/app.h"
#include "caresignal/deadletter.h"
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
    const cs_rules_t *rules;
    cs_scorer_t *scorer;
    cs_redis_t *redis;
    rd_kafka_t *consumer;
    int paused; /* consumption paused while Redis is unreachable */
    long events, applied, duplicates, redeliveries, alerts, reemitted, dead;
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
        if (r->type == REDIS_REPLY_STRING) {
            int64_t pos = strtoll(r->str, NULL, 10);
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
    return err;
}

static void set_paused(scorer_ctx_t *ctx, int pause)
{
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (rd_kafka_assignment(ctx->consumer, &parts) || !parts)
        return;
    if (pause)
        rd_kafka_pause_partitions(ctx->consumer, parts);
    else
        rd_kafka_resume_partitions(ctx->consumer, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    ctx->paused = pause;
}

/*
 * Runs a pipeline until Redis answers. While it cannot: consumption is paused, the
 * consumer is still polled (so the group sees us alive and rebalances are served),
 * and we reconnect with backoff. Messages that were already fetched when we paused
 * are kept in \p carry for the next batch, never dropped. A rebalance meanwhile does
 * not abandon the batch: applying it later is safe even for partitions that moved,
 * because the function skips what the new owner already applied (and vice versa).
 * @returns CS_OK; CS_ERR_RETRY on a stop (nothing of the batch is stored: it will be
 * read again); CS_ERR_FATAL.
 */
static cs_err_t exec_until_done(scorer_ctx_t *ctx, cs_redis_pipe_t *p,
                                rd_kafka_message_t ***carry, int *ncarry)
{
    char errstr[512];
    long backoff = 100;
    for (;;) {
        cs_err_t err = cs_redis_pipe_exec(ctx->redis, p, errstr, sizeof(errstr));
        if (err == CS_OK) {
            if (ctx->paused) {
                set_paused(ctx, 0);
                cs_log_info("redis answers again: consumption resumed", NULL);
            }
            return CS_OK;
        }
        if (err != CS_ERR_RETRY) {
            cs_log_fatal("redis refused the batch", "{s:s}", "error", errstr);
            return CS_ERR_FATAL;
        }
        if (!ctx->paused)
            cs_log_error("redis unavailable: consumption paused, retrying with backoff",
                         "{s:s}", "error", errstr);
        set_paused(ctx, 1);
        cs_sleep_ms(backoff);
        backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
        rd_kafka_message_t *m;
        while ((m = rd_kafka_consumer_poll(ctx->consumer, 0))) {
            if (m->err) {
                rd_kafka_message_destroy(m);
                continue;
            }
            rd_kafka_message_t **grown =
                realloc(*carry, (size_t)(*ncarry + 1) * sizeof(*grown));
            if (!grown)
                return CS_ERR_FATAL;
            *carry = grown;
            (*carry)[(*ncarry)++] = m;
        }
        if (!cs_running())
            return CS_ERR_RETRY;
        if (!cs_redis_connected(ctx->redis))
            cs_redis_connect(ctx->redis, errstr, sizeof(errstr));
    }
}

typedef struct batch_item {
    cs_intel_event_t ev;
    char subject[CS_SUBJECT_KEY_MAX];
    rd_kafka_message_t *msg;
} batch_item_t;

static int item_cmp(const void *a, const void *b)
{
    const batch_item_t *x = *(const batch_item_t *const *)a,
                       *y = *(const batch_item_t *const *)b;
    int c = strcmp(x->subject, y->subject);
    if (c)
        return c;
    if (x->msg->partition != y->msg->partition)
        return x->msg->partition < y->msg->partition ? -1 : 1;
    return x->msg->offset < y->msg->offset ? -1 : x->msg->offset > y->msg->offset;
}

/* Processes one batch. @returns CS_OK (offsets may be stored), CS_ERR_RETRY (abandon
 * the batch: it will be read again) or CS_ERR_FATAL. */
static cs_err_t process_batch(scorer_ctx_t *ctx, cs_event_codec_t *codec,
                              cs_alert_codec_t *acodec, rd_kafka_t *producer,
                              rd_kafka_message_t **msgs, int n,
                              rd_kafka_message_t ***carry, int *ncarry)
{
    const cs_config_t *cfg = ctx->cfg;
    char errstr[512];
    cs_kafka_tracker_t tracker;
    memset(&tracker, 0, sizeof(tracker));
    batch_item_t *items = calloc((size_t)n, sizeof(*items));
    batch_item_t **order = calloc((size_t)n, sizeof(*order));
    cs_score_input_t *inputs = calloc((size_t)n, sizeof(*inputs));
    size_t *call_start = calloc((size_t)n + 1, sizeof(size_t));
    cs_redis_pipe_t *pipe = cs_redis_pipe_new(), *rank = cs_redis_pipe_new(),
                    *ack = cs_redis_pipe_new();
    cs_err_t rc = CS_OK;
    int nitems = 0, ncalls = 0;
    if (!items || !order || !inputs || !call_start || !pipe || !rank || !ack) {
        rc = CS_ERR_FATAL;
        goto done;
    }
    for (int i = 0; i < n; i++) {
        cs_error_t err;
        cs_err_t drc = cs_event_decode(codec, msgs[i]->payload, msgs[i]->len,
                                       &items[nitems].ev, &err);
        if (drc) {
            /* not an IntelEvent: keep it, with the reason, in the dead-letter topic */
            ctx->dead++;
            cs_log_error("undecodable event: sent to the dead-letter topic",
                         "{s:s, s:i, s:I}", "reason", cs_err_str(drc), "partition",
                         (int)msgs[i]->partition, "offset", (json_int_t)msgs[i]->offset);
            if (cs_deadletter_produce(producer, &tracker, cfg->topic_deadletter, msgs[i],
                                      cs_err_is_reason(drc) ? cs_err_str(drc)
                                                            : "AVRO_DECODE",
                                      "", errstr, sizeof(errstr))) {
                rc = CS_ERR_FATAL;
                goto done;
            }
            continue;
        }
        cs_subject_key(items[nitems].ev.subject_kind, items[nitems].ev.subject_id,
                       items[nitems].subject, sizeof(items[nitems].subject));
        items[nitems].msg = msgs[i];
        order[nitems] = &items[nitems];
        nitems++;
    }
    ctx->events += nitems;

    /* one call per subject, its events in offset order; then the positions, on the
     * same connection, so the append-only file has them after the writes they cover */
    qsort(order, (size_t)nitems, sizeof(*order), item_cmp);
    for (int i = 0; i < nitems; i++) {
        inputs[i].ev = &order[i]->ev;
        inputs[i].partition = order[i]->msg->partition;
        inputs[i].offset = order[i]->msg->offset;
        if (i == 0 || strcmp(order[i]->subject, order[i - 1]->subject))
            call_start[ncalls++] = (size_t)i;
    }
    call_start[ncalls] = (size_t)nitems;
    for (int c = 0; c < ncalls; c++)
        if (cs_scorer_add_call(ctx->scorer, pipe, &inputs[call_start[c]],
                               call_start[c + 1] - call_start[c])) {
            rc = CS_ERR_FATAL;
            goto done;
        }
    for (int i = 0; i < n; i++) {
        int last_of_partition = 1;
        for (int k = i + 1; k < n; k++)
            if (msgs[k]->partition == msgs[i]->partition &&
                !strcmp(rd_kafka_topic_name(msgs[k]->rkt),
                        rd_kafka_topic_name(msgs[i]->rkt)))
                last_of_partition = 0;
        if (!last_of_partition)
            continue;
        char key[512], val[32];
        cs_scorer_pos_key(ctx->scorer, rd_kafka_topic_name(msgs[i]->rkt),
                          msgs[i]->partition, key, sizeof(key));
        snprintf(val, sizeof(val), "%" PRId64, msgs[i]->offset + 1);
        const char *argv[] = {"SET", key, val};
        cs_redis_pipe_add(pipe, 3, argv, NULL);
    }
    if (cs_redis_pipe_count(pipe) && (rc = exec_until_done(ctx, pipe, carry, ncarry)))
        goto done;

    /* alerts: new ones and re-emitted ones (a redelivered event whose alert may have
     * been lost in a crash); the rank sets */
    for (int c = 0; c < ncalls; c++) {
        const cs_score_input_t *in = &inputs[call_start[c]];
        size_t cn = call_start[c + 1] - call_start[c];
        cs_score_outcome_t out;
        if (cs_scorer_parse_reply(ctx->scorer, cs_redis_pipe_reply(pipe, (size_t)c), in,
                                  cn, &out, errstr, sizeof(errstr))) {
            cs_log_fatal("unexpected reply from the risk function", "{s:s}", "error",
                         errstr);
            rc = CS_ERR_FATAL;
            goto done;
        }
        ctx->applied += out.applied;
        ctx->duplicates += out.duplicates;
        ctx->redeliveries += out.redeliveries;
        ctx->alerts += out.nalerts - out.nreemitted;
        ctx->reemitted += out.nreemitted;
        const char *subject = order[call_start[c]]->subject;
        for (int a = 0; a < out.nalerts && !rc; a++) {
            const uint8_t *bytes;
            size_t len;
            if (cs_alert_encode(acodec, &out.alerts[a], &bytes, &len) ||
                cs_kafka_produce(producer, &tracker, cfg->topic_alerts,
                                 RD_KAFKA_PARTITION_UA, subject, strlen(subject), bytes,
                                 len, NULL, errstr, sizeof(errstr)))
                rc = CS_ERR_FATAL;
            else if (a >= out.nalerts - out.nreemitted)
                cs_log_debug("alert re-emitted", "{s:s}", "alert_id",
                             out.alerts[a].alert_id);
        }
        if (!rc && out.nalerts &&
            cs_scorer_add_ack(ctx->scorer, ack, out.alerts, (size_t)out.nalerts))
            rc = CS_ERR_FATAL;
        if (out.applied) {
            char key[256], score[40];
            cs_scorer_rank_key(ctx->scorer, in[0].ev->subject_kind, key, sizeof(key));
            double r = cs_scorer_rank_value(ctx->scorer, out.score, out.as_of);
            snprintf(score, sizeof(score), isinf(r) ? "-inf" : "%.17g", r);
            const char *argv[] = {"ZADD", key, score, subject};
            cs_redis_pipe_add(rank, 4, argv, NULL);
        }
        cs_score_outcome_release(&out);
        if (rc)
            goto done;
    }
    /* the rank sets are eventually consistent: a failure here only delays them */
    if (cs_redis_pipe_count(rank) && (rc = exec_until_done(ctx, rank, carry, ncarry)))
        goto done;
    if (cs_kafka_tracker_wait(producer, &tracker, -1)) {
        cs_log_fatal("alerts not delivered: stopping without storing offsets", "{s:s}",
                     "error", rd_kafka_err2str(tracker.first_err));
        rc = CS_ERR_FATAL;
        goto done;
    }
    /* delivered: the alerts leave the subjects' pending lists */
    if (cs_redis_pipe_count(ack))
        rc = exec_until_done(ctx, ack, carry, ncarry);
done:
    if (rc && tracker.outstanding)
        cs_kafka_tracker_wait(producer, &tracker, 30000);
    free(items);
    free(order);
    free(inputs);
    free(call_start);
    cs_redis_pipe_destroy(pipe);
    cs_redis_pipe_destroy(rank);
    cs_redis_pipe_destroy(ack);
    return rc;
}

static void log_totals(const scorer_ctx_t *c)
{
    cs_log_info("score totals", "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "events",
                (json_int_t)c->events, "applied", (json_int_t)c->applied, "duplicates",
                (json_int_t)c->duplicates, "redeliveries", (json_int_t)c->redeliveries,
                "alerts", (json_int_t)c->alerts, "alerts_reemitted",
                (json_int_t)c->reemitted, "dead_letters", (json_int_t)c->dead,
                "offset_resets", (json_int_t)cs_kafka_offset_resets());
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
    ctx.rules = rules;
    ctx.scorer = scorer;
    ctx.redis = redis;
    cs_consumer_hooks_t hooks = {on_assign, NULL, &ctx};
    rd_kafka_t *producer = cs_app_producer(&spec, cfg);
    const char *topics[] = {cfg->topic_events};
    ctx.consumer = cs_app_consumer(&spec, cfg, topics, 1, &hooks);
    cs_log_info("score started", "{s:s, s:s, s:s, s:s, s:s}", "group", cfg->group_id,
                "namespace", cfg->state_namespace, "function", cs_scorer_function(scorer),
                "rules_version", rules->version, "alerts_topic", cfg->topic_alerts);

    int batch_max = (int)cfg->score_batch_max;
    rd_kafka_message_t **msgs = calloc((size_t)batch_max, sizeof(*msgs));
    rd_kafka_message_t **carry = NULL;
    int ncarry = 0;
    int64_t next_stats = cs_mono_ms() + 10000;
    while (cs_running()) {
        /* messages kept from a Redis outage come first, in their order */
        int got = 0;
        while (got < batch_max && ncarry > 0) {
            msgs[got++] = carry[0];
            memmove(carry, carry + 1, (size_t)--ncarry * sizeof(*carry));
        }
        got +=
            cs_kafka_poll_batch(ctx.consumer, msgs + got, batch_max - got, got ? 0 : 100);
        if (got) {
            cs_err_t rc =
                process_batch(&ctx, codec, acodec, producer, msgs, got, &carry, &ncarry);
            if (rc == CS_OK) {
                cs_kafka_store_offsets(ctx.consumer, msgs, got);
            } else if (rc == CS_ERR_RETRY) {
                cs_log_warn("stopping with a batch not applied: it will be read again",
                            "{s:i}", "messages", got);
            } else {
                cs_request_fail();
            }
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
    for (int i = 0; i < ncarry; i++)
        rd_kafka_message_destroy(carry[i]);
    free(carry);
    cs_kafka_consumer_destroy(ctx.consumer);
    rd_kafka_flush(producer, 30000);
    rd_kafka_destroy(producer);
    free(msgs);
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
