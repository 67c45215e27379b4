/* caresignal-replay redrive: dead letters back to the topic they came from, once.
 *
 * Reads topic.deadletter (from --since, to its end as of now) without a consumer group,
 * selects by the cs.error header and the dead letter's time, and republishes each
 * selected message's original key and value, byte for byte and with its original
 * timestamp, to its cs.origin.topic (with a cs.redrive.of header naming the dead letter).
 * Each dead letter re-driven is remembered in the Redis set
 * "<state.namespace>:redriven:{<dead-letter topic>}" (member "partition:offset") once its
 * republication is delivered, so running the command again re-drives nothing twice. A
 * crash between delivery and that record re-drives it again on the next run: the
 * normaliser and the scorer's duplicate check (same event_key) absorb it. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caresignal/deadletter.h"
#include "caresignal/kafka.h"
#include "caresignal/log.h"
#include "caresignal/progress.h"
#include "caresignal/reader.h"
#include "caresignal/signals.h"
#include "caresignal/timeutil.h"
#include "replay.h"

#define CS_HDR_REDRIVE_OF "cs.redrive.of"
#define BATCH             500
#define LISTED_MAX        50 /* dry run: dead letters listed one per line, the rest counted */

/* Counts per (reason, origin topic). */
typedef struct tally {
    char reason[32], origin[128];
    long n;
} tally_t;

typedef struct redrive {
    const replay_ctx_t *ctx;
    const char *where; /* the cs.error wanted, or NULL for all */
    int64_t until;     /* dead letters written before this (-1: no limit) */
    char setkey[512];
    cs_redis_t *redis;
    rd_kafka_t *producer;
    tally_t *tallies;
    int ntallies;
    long selected, redriven, already, skipped, listed, failed;
} redrive_t;

static void tally_add(redrive_t *rd, const char *reason, const char *origin)
{
    for (int i = 0; i < rd->ntallies; i++)
        if (!strcmp(rd->tallies[i].reason, reason) &&
            !strcmp(rd->tallies[i].origin, origin)) {
            rd->tallies[i].n++;
            return;
        }
    tally_t *t = realloc(rd->tallies, sizeof(*t) * (size_t)(rd->ntallies + 1));
    if (!t)
        return;
    rd->tallies = t;
    t = &rd->tallies[rd->ntallies++];
    snprintf(t->reason, sizeof(t->reason), "%s", reason);
    snprintf(t->origin, sizeof(t->origin), "%s", origin);
    t->n = 1;
}

/* The topics a dead letter may go back to: the raw topics (normaliser rejections), the
 * alert topic (alerts the pager could not deliver) and the events topic for events whose
 * subject's state refused them (STATE_ERROR: re-driven once the state is repaired).
 * Canonical events the scorer could not decode or whose identifiers are invalid stay:
 * they would fail again. */
static int redrivable(const cs_config_t *cfg, const char *origin, const char *reason)
{
    return !strcmp(origin, cfg->topic_raw_nhse) || !strcmp(origin, cfg->topic_raw_ccg) ||
           !strcmp(origin, cfg->topic_raw_ofsted_send) ||
           !strcmp(origin, cfg->topic_alerts) ||
           (!strcmp(origin, cfg->topic_events) && !strcmp(reason, CS_DL_STATE_ERROR));
}

/* --where error=CODE: one of docs/contract/reason-codes.md's codes, or the pager's
 * UNDELIVERABLE. */
static const char *where_code(const replay_ctx_t *ctx)
{
    const char *w = cs_cli_get(ctx->cli, ctx->spec, "where");
    if (!w)
        return NULL;
    if (strncmp(w, "error=", 6))
        cs_cli_fail(ctx->spec, "option --where: expected error=CODE, got '%s'", w);
    const char *code = w + 6;
    if (!cs_err_from_reason(code) && strcmp(code, CS_DL_UNDELIVERABLE) &&
        strcmp(code, CS_DL_STATE_ERROR))
        cs_cli_fail(
            ctx->spec,
            "option --where: unknown error code '%s' (one of JSON_SYNTAX, NOT_OBJECT, "
            "SCHEMA_UNKNOWN, AVRO_DECODE, FIELD_MISSING, FIELD_TYPE, ENUM_UNKNOWN, "
            "ID_FORMAT, TIME_RANGE, TOO_LARGE, UNKNOWN_LOCATION, UNDELIVERABLE, "
            "STATE_ERROR)",
            code);
    return code;
}

/* The re-driven set a member ("partition:offset") is kept in: one per dead-letter topic
 * on one node; on a Redis Cluster one per partition of it, so that no master holds the
 * whole record. */
static void set_key(const redrive_t *rd, const char *id, char *out, size_t size)
{
    if (!cs_redis_is_cluster(rd->redis))
        snprintf(out, size, "%s", rd->setkey);
    else
        snprintf(out, size, "%s:redriven:{%s:%.*s}", rd->ctx->cfg->state_namespace,
                 rd->ctx->cfg->topic_deadletter, (int)strcspn(id, ":"), id);
}

/* Sends \p cmd ("SMISMEMBER" or "SADD") for the members \p ids[i] with \p pick[i] set
 * (all when NULL), one command per run of members in the same set. \p seen (SMISMEMBER):
 * each member's answer. */
static int members_command(redrive_t *rd, const char *cmd, char ids[][48],
                           const int *pick, int n, int *seen)
{
    char errstr[512];
    const char **argv = malloc(sizeof(*argv) * (size_t)(n + 2));
    char(*keys)[512] = malloc(sizeof(*keys) * (size_t)(n ? n : 1));
    cs_redis_pipe_t *p = cs_redis_pipe_new();
    int rc = -1, ncmds = 0;
    if (!argv || !keys || !p)
        goto done;
    for (int i = 0; i < n; i++)
        set_key(rd, ids[i], keys[i], sizeof(keys[i]));
    for (int i = 0; i < n;) {
        int argc = 2;
        argv[0] = cmd;
        argv[1] = keys[i];
        int j = i;
        for (; j < n && !strcmp(keys[j], keys[i]); j++)
            if (!pick || pick[j])
                argv[argc++] = ids[j];
        if (argc > 2) {
            if (cs_redis_pipe_add(p, argc, argv, NULL))
                goto done;
            ncmds++;
        }
        i = j;
    }
    if (!ncmds) {
        rc = 0;
        goto done;
    }
    if (cs_redis_pipe_exec(rd->redis, p, errstr, sizeof(errstr))) {
        fprintf(stderr, "caresignal-replay: redis: %s: %s\n", cmd, errstr);
        goto done;
    }
    for (int c = 0; c < ncmds; c++) {
        const redisReply *r = cs_redis_pipe_reply(p, (size_t)c);
        if (!r || r->type == REDIS_REPLY_ERROR ||
            (seen && r->type != REDIS_REPLY_ARRAY) ||
            (!seen && r->type != REDIS_REPLY_INTEGER)) {
            fprintf(stderr, "caresignal-replay: redis: %s: %s\n", cmd,
                    r && r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
            goto done;
        }
    }
    /* the replies hold the members in the order they were sent */
    for (int c = 0, i = 0; seen && c < ncmds; c++) {
        const redisReply *r = cs_redis_pipe_reply(p, (size_t)c);
        for (size_t k = 0; k < r->elements; k++, i++) {
            while (i < n && pick && !pick[i])
                i++;
            if (i < n)
                seen[i] = r->element[k]->integer == 1;
        }
    }
    rc = 0;
done:
    cs_redis_pipe_destroy(p);
    free(keys);
    free(argv);
    return rc;
}

/* Which of the batch's members (\p ids) are in the re-driven set: \p seen[i] set. */
static int already_redriven(redrive_t *rd, char ids[][48], int n, int *seen)
{
    return members_command(rd, "SMISMEMBER", ids, NULL, n, seen);
}

/* Records the delivered re-drives of a batch. */
static int record(redrive_t *rd, char ids[][48], const int *sent, int n)
{
    int rc = members_command(rd, "SADD", ids, sent, n, NULL);
    if (rc)
        fprintf(stderr,
                "caresignal-replay: redis: recording re-driven dead letters failed\n");
    return rc;
}

/* Delivery reports: which re-drives of the batch arrived, known by their cs.redrive.of
 * header ("<dead-letter topic>:<partition>:<offset>"). */
typedef struct batch_reports {
    char (*ids)[48];
    int *sent;
    int n;
    size_t prefix; /* strlen("<dead-letter topic>:") */
} batch_reports_t;

static void on_report(void *opaque, const rd_kafka_message_t *m)
{
    batch_reports_t *b = opaque;
    rd_kafka_headers_t *h = NULL;
    const void *v;
    size_t len;
    if (m->err || rd_kafka_message_headers(m, &h) ||
        rd_kafka_header_get_last(h, CS_HDR_REDRIVE_OF, &v, &len) || len <= b->prefix)
        return;
    const char *id = (const char *)v + b->prefix;
    size_t idlen = len - b->prefix;
    for (int i = 0; i < b->n; i++)
        if (strlen(b->ids[i]) == idlen && !memcmp(b->ids[i], id, idlen))
            b->sent[i] = 1;
}

/* Handles one batch of dead letters: select, skip the known, republish, record. */
static int redrive_batch(redrive_t *rd, rd_kafka_message_t **msgs, int n)
{
    const cs_config_t *cfg = rd->ctx->cfg;
    char ids[BATCH][48];
    int pick[BATCH], seen[BATCH], sent[BATCH];
    char reason[BATCH][32], origin[BATCH][128];
    int npick = 0;
    for (int i = 0; i < n; i++) {
        rd_kafka_message_t *m = msgs[i];
        rd_kafka_timestamp_type_t tt;
        int64_t ts = rd_kafka_message_timestamp(m, &tt);
        pick[i] = 0;
        if (cs_kafka_header_get(m, CS_HDR_ERROR, reason[i], sizeof(reason[i])))
            snprintf(reason[i], sizeof(reason[i]), "(none)");
        if (cs_kafka_header_get(m, CS_HDR_ORIGIN_TOPIC, origin[i], sizeof(origin[i])))
            origin[i][0] = '\0';
        if (rd->where && strcmp(reason[i], rd->where))
            continue;
        if (rd->until >= 0 && ts >= rd->until)
            continue;
        rd->selected++;
        if (!redrivable(cfg, origin[i], reason[i])) {
            rd->skipped++;
            if (rd->skipped <= 10)
                printf("  skipped %d:%" PRId64
                       " %s: origin topic '%s' is not re-driven\n",
                       (int)m->partition, m->offset, reason[i], origin[i]);
            continue;
        }
        snprintf(ids[npick], sizeof(ids[npick]), "%d:%" PRId64, (int)m->partition,
                 m->offset);
        pick[i] = ++npick;
    }
    if (!npick)
        return 0;
    if (already_redriven(rd, ids, npick, seen))
        return -1;

    char errstr[512];
    batch_reports_t reports = {ids, sent, npick, strlen(cfg->topic_deadletter) + 1};
    cs_kafka_tracker_t tracker;
    memset(&tracker, 0, sizeof(tracker));
    tracker.on_report = on_report;
    tracker.opaque = &reports;
    memset(sent, 0, sizeof(int) * (size_t)npick);
    for (int i = 0; i < n; i++) {
        if (!pick[i])
            continue;
        int k = pick[i] - 1;
        rd_kafka_message_t *m = msgs[i];
        if (seen[k]) {
            rd->already++;
            continue;
        }
        tally_add(rd, reason[i], origin[i]);
        if (!rd->ctx->execute) {
            rd->redriven++;
            if (++rd->listed <= LISTED_MAX) {
                char when[40], field[128];
                rd_kafka_timestamp_type_t tt;
                cs_time_format(rd_kafka_message_timestamp(m, &tt), when, sizeof(when));
                if (cs_kafka_header_get(m, CS_HDR_ERROR_FIELD, field, sizeof(field)))
                    field[0] = '\0';
                printf("  would re-drive dead letter %s (%s) %s%s%s -> %s\n", ids[k],
                       when, reason[i], *field ? " field " : "", field, origin[i]);
            }
            continue;
        }
        char ts[24];
        if (cs_kafka_header_get(m, CS_HDR_ORIGIN_TIMESTAMP, ts, sizeof(ts)))
            ts[0] = '\0';
        char of[200];
        snprintf(of, sizeof(of), "%s:%s", cfg->topic_deadletter, ids[k]);
        rd_kafka_headers_t *h = rd_kafka_headers_new(1);
        rd_kafka_header_add(h, CS_HDR_REDRIVE_OF, -1, of, -1);
        if (cs_kafka_produce_at(rd->producer, &tracker, origin[i], RD_KAFKA_PARTITION_UA,
                                m->key, m->key_len, m->payload, m->len, h,
                                strtoll(ts, NULL, 10), errstr, sizeof(errstr))) {
            rd_kafka_headers_destroy(h);
            fprintf(stderr, "caresignal-replay: %s\n", errstr);
            rd->failed++;
        }
    }
    if (!rd->ctx->execute)
        return 0;
    cs_kafka_tracker_wait(rd->producer, &tracker, -1);
    long delivered = 0;
    for (int k = 0; k < npick; k++)
        delivered += sent[k];
    rd->redriven += delivered;
    rd->failed += tracker.failed;
    if (tracker.failed)
        fprintf(stderr,
                "caresignal-replay: %ld re-drives not delivered (%s): run again to "
                "retry them\n",
                tracker.failed, rd_kafka_err2str(tracker.first_err));
    return record(rd, ids, sent, npick);
}

int replay_redrive(const replay_ctx_t *ctx)
{
    const cs_config_t *cfg = ctx->cfg;
    redrive_t rd;
    memset(&rd, 0, sizeof(rd));
    rd.ctx = ctx;
    rd.where = where_code(ctx);
    int64_t since = replay_time_option(ctx, "since");
    rd.until = replay_time_option(ctx, "until");
    if (since >= 0 && rd.until >= 0 && rd.until <= since)
        cs_cli_fail(ctx->spec, "option --until: must be later than --since");
    snprintf(rd.setkey, sizeof(rd.setkey), "%s:redriven:{%s}", cfg->state_namespace,
             cfg->topic_deadletter);
    rd.redis = replay_redis(ctx);

    char errstr[512];
    int rc = 1;
    cs_progress_t *progress = NULL;
    cs_reader_t *reader =
        cs_reader_new(cfg, cfg->topic_deadletter, since, errstr, sizeof(errstr));
    if (!reader) {
        fprintf(stderr, "caresignal-replay: %s\n", errstr);
        goto done;
    }
    if (ctx->execute &&
        !(rd.producer = cs_kafka_producer_new(cfg, errstr, sizeof(errstr)))) {
        fprintf(stderr, "caresignal-replay: %s\n", errstr);
        goto done;
    }
    int64_t total = cs_reader_total(reader);
    printf("redrive: %" PRId64 " dead letters in %s%s%s, selecting %s%s\n", total,
           cfg->topic_deadletter, since >= 0 ? " since " : "",
           since >= 0 ? cs_cli_get(ctx->cli, ctx->spec, "since") : "",
           rd.where ? "error=" : "every reason", rd.where ? rd.where : "");
    progress = cs_progress_new(ctx->execute ? "redrive" : "redrive (dry run)", total);
    rd_kafka_message_t *msgs[BATCH];
    int64_t done_n = 0;
    while (!cs_reader_done(reader) && cs_running()) {
        int n = cs_reader_next(reader, msgs, BATCH, 1000);
        if (n == 0) {
            if (!cs_reader_done(reader))
                continue; /* waiting for the fetch */
            break;
        }
        int brc = redrive_batch(&rd, msgs, n);
        for (int i = 0; i < n; i++)
            rd_kafka_message_destroy(msgs[i]);
        if (brc)
            goto done;
        done_n += n;
        cs_progress_update(progress, done_n);
    }
    cs_progress_finish(progress);
    progress = NULL;
    if (!cs_running()) {
        printf("interrupted: what was delivered is recorded; run again to finish\n");
        goto done;
    }
    if (rd.ntallies)
        printf("by reason and origin:\n");
    for (int i = 0; i < rd.ntallies; i++)
        printf("  %-18s %-28s %ld\n", rd.tallies[i].reason, rd.tallies[i].origin,
               rd.tallies[i].n);
    if (!ctx->execute) {
        if (rd.listed > LISTED_MAX)
            printf("  ... and %ld more\n", rd.listed - LISTED_MAX);
        printf("would re-drive %ld, already re-driven %ld, skipped %ld\n", rd.redriven,
               rd.already, rd.skipped);
        printf("dry run: nothing changed (add --execute)\n");
        rc = 0;
        goto done;
    }
    printf("re-driven %ld, already re-driven %ld, skipped %ld%s\n", rd.redriven,
           rd.already, rd.skipped, rd.failed ? ", FAILED (see above)" : "");
    rc = rd.failed ? 1 : 0;
done:
    cs_progress_finish(progress);
    if (rd.producer) {
        rd_kafka_flush(rd.producer, 10000);
        rd_kafka_destroy(rd.producer);
    }
    cs_reader_destroy(reader);
    cs_redis_destroy(rd.redis);
    free(rd.tallies);
    return rc;
}
