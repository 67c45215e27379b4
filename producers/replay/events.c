/* caresignal-replay: what rebuild and whatif share — replaying topic.events through
 * scoring engines into namespaces of their own, and handling those namespaces. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caresignal/log.h"
#include "caresignal/progress.h"
#include "caresignal/reader.h"
#include "caresignal/signals.h"
#include "caresignal/timeutil.h"
#include "replay.h"

cs_redis_t *replay_redis(const replay_ctx_t *ctx)
{
    char errstr[512];
    cs_redis_t *r = cs_redis_new_from_config(ctx->cfg);
    if (!r || cs_redis_connect(r, errstr, sizeof(errstr))) {
        fprintf(stderr, "caresignal-replay: %s\n", r ? errstr : "out of memory");
        exit(1);
    }
    return r;
}

void replay_target_init(const replay_ctx_t *ctx, replay_target_t *t, const char *ns,
                        cs_rules_t *rules, cs_redis_t *redis)
{
    char errstr[512];
    t->ns = ns;
    t->rules = rules;
    if (!(t->scorer = cs_scorer_new_layout(rules, ns, ctx->cfg->state_layout, errstr,
                                           sizeof(errstr))) ||
        cs_scorer_set_compute(t->scorer, !strcmp(ctx->cfg->state_engine, "scorer"),
                              errstr, sizeof(errstr)))
        cs_cli_fail(ctx->spec, "%s", errstr);
    t->redis = redis;
    if (ctx->execute && cs_redis_function_load(redis, cs_scorer_library(t->scorer),
                                               errstr, sizeof(errstr))) {
        fprintf(stderr, "caresignal-replay: %s\n", errstr);
        exit(1);
    }
    /* no waiting callback: Redis down means back off and retry until it is back, or a
     * stop (the replay can be run again: it writes only its own namespace) */
    t->engine = cs_engine_new(t->scorer, redis, NULL, NULL, NULL);
}

void replay_target_release(replay_target_t *t)
{
    cs_engine_destroy(t->engine);
    cs_scorer_destroy(t->scorer);
    t->engine = NULL;
    t->scorer = NULL;
}

/* SCAN over "<ns>:*", calling \p each with every batch of keys found. */
static long replay_scan(cs_redis_t *redis, const char *ns, long limit,
                        void (*each)(cs_redis_t *, redisReply *))
{
    char pattern[256], errstr[512], cursor[32] = "0";
    snprintf(pattern, sizeof(pattern), "%s:*", ns);
    long n = 0;
    do {
        const char *argv[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"};
        redisReply *r = cs_redis_command(redis, 6, argv, NULL, errstr, sizeof(errstr));
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            if (r)
                freeReplyObject(r);
            cs_log_error("redis SCAN failed", "{s:s}", "error", errstr);
            return -1;
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        n += (long)r->element[1]->elements;
        if (each && r->element[1]->elements)
            each(redis, r->element[1]);
        freeReplyObject(r);
    } while (strcmp(cursor, "0") && (limit < 0 || n < limit));
    return n;
}

long replay_namespace_keys(cs_redis_t *redis, const char *ns, long limit)
{
    return replay_scan(redis, ns, limit, NULL);
}

static void replay_unlink(cs_redis_t *redis, redisReply *keys)
{
    const char **argv = calloc(keys->elements + 1, sizeof(*argv));
    argv[0] = "UNLINK";
    for (size_t i = 0; i < keys->elements; i++)
        argv[i + 1] = keys->element[i]->str;
    char errstr[512];
    redisReply *r = cs_redis_command(redis, (int)keys->elements + 1, argv, NULL, errstr,
                                     sizeof(errstr));
    if (r)
        freeReplyObject(r);
    free(argv);
}

long replay_namespace_delete(cs_redis_t *redis, const char *ns)
{
    return replay_scan(redis, ns, -1, replay_unlink);
}

long replay_describe_range(const replay_ctx_t *ctx, int64_t from_ms)
{
    char errstr[512];
    cs_reader_t *rd =
        cs_reader_new(ctx->cfg, ctx->cfg->topic_events, from_ms, errstr, sizeof(errstr));
    if (!rd) {
        fprintf(stderr, "caresignal-replay: %s\n", errstr);
        return -1;
    }
    int n;
    const cs_partition_info_t *range = cs_reader_range(rd, &n);
    printf("%s, %d partitions, %lld events to replay", ctx->cfg->topic_events, n,
           (long long)cs_reader_total(rd));
    if (from_ms >= 0) {
        char when[32];
        cs_time_format(from_ms, when, sizeof(when));
        printf(" from %s", when);
    }
    printf(":\n");
    for (int i = 0; i < n; i++)
        printf("  partition %-3d offsets %lld to %lld\n", (int)range[i].partition,
               (long long)range[i].low, (long long)range[i].high);
    long total = (long)cs_reader_total(rd);
    cs_reader_destroy(rd);
    return total;
}

long replay_events(const replay_ctx_t *ctx, cs_registry_t *reg, int64_t from_ms,
                   replay_target_t *targets, int ntargets, int positions,
                   const char *what, long *undecodable)
{
    char errstr[512];
    /* the namespaces record the layout they are written in (once the replay has checked
     * that they are fresh) */
    for (int t = 0; t < ntargets; t++) {
        cs_err_t err = cs_scorer_claim(targets[t].scorer, targets[t].redis, errstr,
                                       sizeof(errstr));
        if (err == CS_ERR_INVALID_ARG)
            cs_cli_fail(ctx->spec, "%s", errstr);
        if (err) {
            cs_log_error("cannot replay", "{s:s}", "error", errstr);
            return -1;
        }
    }
    cs_reader_t *rd =
        cs_reader_new(ctx->cfg, ctx->cfg->topic_events, from_ms, errstr, sizeof(errstr));
    cs_event_codec_t *codec = cs_event_codec_new(reg, errstr, sizeof(errstr));
    if (!rd || !codec) {
        cs_log_error("cannot replay", "{s:s}", "error", errstr);
        cs_reader_destroy(rd);
        cs_event_codec_destroy(codec);
        return -1;
    }
    int batch_max = (int)ctx->cfg->score_batch_max;
    rd_kafka_message_t **msgs = calloc((size_t)batch_max, sizeof(*msgs));
    cs_engine_event_t *events = calloc((size_t)batch_max, sizeof(*events));
    cs_progress_t *progress = cs_progress_new(what, cs_reader_total(rd));
    long read = 0, failed = 0;
    *undecodable = 0;
    while (!cs_reader_done(rd) && cs_running() && !failed) {
        int got = cs_reader_next(rd, msgs, batch_max, 1000);
        size_t n = 0;
        for (int i = 0; i < got; i++) {
            cs_error_t err;
            if (cs_event_decode(codec, msgs[i]->payload, msgs[i]->len, &events[n].ev,
                                &err)) {
                (*undecodable)++;
                continue;
            }
            events[n].topic = ctx->cfg->topic_events;
            events[n].partition = msgs[i]->partition;
            events[n].offset = msgs[i]->offset;
            n++;
        }
        for (int t = 0; t < ntargets && !failed; t++) {
            cs_engine_result_t res;
            if (cs_engine_apply(targets[t].engine, events, n, positions, &res, errstr,
                                sizeof(errstr)) ||
                cs_engine_ack(targets[t].engine, errstr, sizeof(errstr))) {
                cs_log_error("replay failed", "{s:s, s:s}", "namespace", targets[t].ns,
                             "error", errstr);
                failed = 1;
                break;
            }
            targets[t].applied += res.applied;
            targets[t].duplicates += res.duplicates;
            targets[t].alerts += res.nalerts;
            if (targets[t].on_alerts && res.nalerts)
                targets[t].on_alerts(targets[t].opaque, res.alerts, res.nalerts);
        }
        for (int i = 0; i < got; i++)
            rd_kafka_message_destroy(msgs[i]);
        read += got;
        cs_progress_update(progress, read);
    }
    cs_progress_finish(progress);
    free(msgs);
    free(events);
    cs_event_codec_destroy(codec);
    cs_reader_destroy(rd);
    if (!cs_running() && !failed) {
        cs_log_warn("replay interrupted", "{s:i}", "events", (int)read);
        return -1;
    }
    return failed ? -1 : read;
}
