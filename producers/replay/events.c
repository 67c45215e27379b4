/* caresignal-replay: what rebuild and whatif share — replaying topic.events through
 * scoring engines into namespaces of their own, and handling those namespaces. */
#include <pthread.h>
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

/* The replay reads and decodes the next batch while the engines apply this one (as the
 * scorer polls while its worker executes): two slots, filled in turn by the reading
 * thread, applied and emptied in turn by the caller. */
typedef struct replay_slot {
    rd_kafka_message_t **msgs;
    cs_engine_event_t *events;
    int got;  /* messages read */
    size_t n; /* events decoded */
    long undecodable;
    int full;
} replay_slot_t;

typedef struct replay_feed {
    cs_reader_t *rd;
    cs_event_codec_t *codec;
    const char *topic;
    int batch_max;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    replay_slot_t slot[2];
    int stop;     /* the caller stops reading */
    int finished; /* the reader read its last batch (the range's end, or a signal) */
} replay_feed_t;

static void replay_feed_fill(replay_feed_t *f, replay_slot_t *sl)
{
    sl->got = cs_reader_next(f->rd, sl->msgs, f->batch_max, 1000);
    sl->n = 0;
    sl->undecodable = 0;
    for (int i = 0; i < sl->got; i++) {
        cs_error_t err;
        cs_engine_event_t *e = &sl->events[sl->n];
        if (cs_event_decode(f->codec, sl->msgs[i]->payload, sl->msgs[i]->len, &e->ev,
                            &err)) {
            sl->undecodable++;
            continue;
        }
        e->topic = f->topic;
        e->partition = sl->msgs[i]->partition;
        e->offset = sl->msgs[i]->offset;
        sl->n++;
    }
}

static void *replay_feed_run(void *arg)
{
    replay_feed_t *f = arg;
    for (int i = 0;; i ^= 1) {
        pthread_mutex_lock(&f->mu);
        while (f->slot[i].full && !f->stop)
            pthread_cond_wait(&f->cv, &f->mu);
        int stop = f->stop;
        pthread_mutex_unlock(&f->mu);
        if (stop)
            break;
        do {
            if (cs_reader_done(f->rd) || !cs_running()) {
                pthread_mutex_lock(&f->mu);
                f->finished = 1;
                pthread_cond_broadcast(&f->cv);
                pthread_mutex_unlock(&f->mu);
                return NULL;
            }
            replay_feed_fill(f, &f->slot[i]);
        } while (f->slot[i].got == 0);
        pthread_mutex_lock(&f->mu);
        f->slot[i].full = 1;
        pthread_cond_broadcast(&f->cv);
        pthread_mutex_unlock(&f->mu);
    }
    return NULL;
}

/* Slot \p i once it is full: NULL once the reader has finished with nothing more */
static replay_slot_t *replay_feed_take(replay_feed_t *f, int i)
{
    pthread_mutex_lock(&f->mu);
    while (!f->slot[i].full && !f->finished)
        pthread_cond_wait(&f->cv, &f->mu);
    replay_slot_t *sl = f->slot[i].full ? &f->slot[i] : NULL;
    pthread_mutex_unlock(&f->mu);
    return sl;
}

static void replay_slot_empty(replay_feed_t *f, replay_slot_t *sl)
{
    for (int i = 0; i < sl->got; i++)
        rd_kafka_message_destroy(sl->msgs[i]);
    sl->got = 0;
    pthread_mutex_lock(&f->mu);
    sl->full = 0;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

/* Applies one batch to every target: @returns 0, or -1 (logged) */
static int replay_apply(replay_target_t *targets, int ntargets, const replay_slot_t *sl)
{
    char errstr[512];
    for (int t = 0; t < ntargets; t++) {
        cs_engine_result_t res;
        if (cs_engine_apply(targets[t].engine, sl->events, sl->n, targets[t].positions,
                            &res, errstr, sizeof(errstr)) ||
            cs_engine_ack(targets[t].engine, errstr, sizeof(errstr))) {
            cs_log_error("replay failed", "{s:s, s:s}", "namespace", targets[t].ns,
                         "error", errstr);
            return -1;
        }
        targets[t].applied += res.applied;
        targets[t].duplicates += res.duplicates;
        targets[t].alerts += res.nalerts;
        if (targets[t].on_alerts && res.nalerts)
            targets[t].on_alerts(targets[t].opaque, res.alerts, res.nalerts);
    }
    return 0;
}

long replay_events(const replay_ctx_t *ctx, cs_registry_t *reg, int64_t from_ms,
                   replay_target_t *targets, int ntargets, int positions,
                   const char *what, long *undecodable)
{
    char errstr[512];
    /* the namespaces record the layout they are written in (once the replay has checked
     * that they are fresh) */
    for (int t = 0; t < ntargets; t++) {
        cs_err_t err =
            cs_scorer_claim(targets[t].scorer, targets[t].redis, errstr, sizeof(errstr));
        if (err == CS_ERR_INVALID_ARG)
            cs_cli_fail(ctx->spec, "%s", errstr);
        if (err) {
            cs_log_error("cannot replay", "{s:s}", "error", errstr);
            return -1;
        }
        targets[t].positions = positions;
    }
    replay_feed_t f = {.rd = cs_reader_new(ctx->cfg, ctx->cfg->topic_events, from_ms,
                                           errstr, sizeof(errstr)),
                       .topic = ctx->cfg->topic_events,
                       .batch_max = (int)ctx->cfg->score_batch_max};
    f.codec = f.rd ? cs_event_codec_new(reg, errstr, sizeof(errstr)) : NULL;
    int ok = f.rd && f.codec;
    if (!ok)
        cs_log_error("cannot replay", "{s:s}", "error", errstr);
    for (int i = 0; i < 2 && ok; i++) {
        f.slot[i].msgs = calloc((size_t)f.batch_max, sizeof(*f.slot[i].msgs));
        f.slot[i].events = calloc((size_t)f.batch_max, sizeof(*f.slot[i].events));
        if (!f.slot[i].msgs || !f.slot[i].events) {
            cs_log_error("cannot replay", "{s:s}", "error", "out of memory");
            ok = 0;
        }
    }
    pthread_t reader;
    if (ok) {
        pthread_mutex_init(&f.mu, NULL);
        pthread_cond_init(&f.cv, NULL);
        if (pthread_create(&reader, NULL, replay_feed_run, &f)) {
            cs_log_error("cannot replay", "{s:s}", "error",
                         "cannot start the reading thread");
            pthread_mutex_destroy(&f.mu);
            pthread_cond_destroy(&f.cv);
            ok = 0;
        }
    }
    long read = 0;
    int failed = !ok;
    *undecodable = 0;
    if (ok) {
        cs_progress_t *progress = cs_progress_new(what, cs_reader_total(f.rd));
        replay_slot_t *sl;
        int64_t first = -1; /* when the first batch was there to apply */
        for (int i = 0; !failed && (sl = replay_feed_take(&f, i)); i ^= 1) {
            if (first < 0)
                first = cs_mono_ms();
            failed = replay_apply(targets, ntargets, sl) != 0;
            *undecodable += sl->undecodable;
            read += sl->got;
            replay_slot_empty(&f, sl);
            cs_progress_update(progress, read);
        }
        cs_progress_finish(progress);
        /* the rate once reading has begun: the bench compares it with Redis alone, as
         * the scorer's from its first batch */
        double secs = first < 0 ? 0 : (double)(cs_mono_ms() - first) / 1000.0;
        cs_log_info("replayed", "{s:s, s:I, s:f, s:f}", "what", what, "events",
                    (json_int_t)read, "seconds", secs, "events_per_s",
                    secs > 0 ? (double)read / secs : 0.0);
        pthread_mutex_lock(&f.mu);
        f.stop = 1;
        pthread_cond_broadcast(&f.cv);
        pthread_mutex_unlock(&f.mu);
        pthread_join(reader, NULL);
        pthread_mutex_destroy(&f.mu);
        pthread_cond_destroy(&f.cv);
    }
    for (int i = 0; i < 2; i++) {
        for (int m = 0; m < f.slot[i].got; m++)
            rd_kafka_message_destroy(f.slot[i].msgs[m]);
        free(f.slot[i].msgs);
        free(f.slot[i].events);
    }
    int done = f.rd && cs_reader_done(f.rd);
    cs_event_codec_destroy(f.codec);
    cs_reader_destroy(f.rd);
    if (ok && !failed && !done) {
        cs_log_warn("replay interrupted", "{s:i}", "events", (int)read);
        return -1;
    }
    return failed ? -1 : read;
}
