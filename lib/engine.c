/* caresignal scoring engine: batches of events to Redis function calls and back to
 * alerts. */
#include "caresignal/engine.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caresignal/backoff.h"
#include "caresignal/log.h"
#include "caresignal/signals.h"

struct cs_engine {
    cs_scorer_t *scorer;
    cs_redis_t *redis;
    cs_engine_waiting_cb *waiting;
    cs_engine_back_cb *back;
    void *opaque;
    cs_engine_batch_t *last; /* of cs_engine_apply, for cs_engine_ack */
    int fail_run; /* calls failed in a row, across batches (a success resets it) */
    long rank_errors;
    long conflicts; /* computing here: writes refused because a watched value moved */
};

typedef struct cs_item {
    const cs_engine_event_t *ev;
    char subject[CS_SUBJECT_KEY_MAX];
} cs_item_t;

/* One batch from its preparation to its acknowledgement. */
struct cs_engine_batch {
    const cs_engine_event_t *events; /* borrowed */
    size_t n, ncalls;
    cs_item_t *items;
    cs_score_input_t *inputs;
    size_t *starts;
    cs_score_outcome_t *outs; /* one per call */
    char *bad;
    cs_redis_pipe_t *pipe; /* the function calls (or, computing here, the reads) */
    int positions;
    int compute;            /* the scorer computes, Redis stores (cs_scorer_computes) */
    char (*keys)[256];      /* computing here: each call's state key */
    unsigned char **values; /* computing here: each call's new value (NULL: unchanged) */
    size_t *value_lens;
    long aborts; /* computing here: writes refused because a value moved */
    cs_alert_t *alerts;
    int nalerts, alerts_cap;
    size_t *failed; /* indexes of events whose subject's call failed */
    size_t nfailed, failed_cap;
    char failure[256];
};

/* How many failed calls in a row, with no success between, mean that the function fails
 * for everyone (a broken library, a Redis refusing every call) rather than for one
 * subject's state: then the batch waits and retries instead of being dead-lettered. */
#define CS_ENGINE_SYSTEMIC_RUN 3

/* Besides cs_err_t's codes, within this file: done, after waiting for Redis (the back
 * callback is due); a watched value moved (read again). */
#define CS_ENGINE_AGAIN ((cs_err_t)1)
/* A cluster master was lost after the calls, before a replica had them (make them again)
 */
#define CS_ENGINE_LOST ((cs_err_t)3)

cs_engine_t *cs_engine_new(cs_scorer_t *scorer, cs_redis_t *redis,
                           cs_engine_waiting_cb *waiting, cs_engine_back_cb *back,
                           void *opaque)
{
    cs_engine_t *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->scorer = scorer;
    e->redis = redis;
    e->waiting = waiting;
    e->back = back;
    e->opaque = opaque;
    return e;
}

void cs_engine_destroy(cs_engine_t *e)
{
    if (!e)
        return;
    cs_engine_batch_free(e->last);
    free(e);
}

/* One wait before another attempt: the program's callback (which pauses consumption and
 * backs off) or our own backoff. @returns non-zero to give up. */
static int cs_engine_wait(cs_engine_t *e, cs_backoff_t *backoff, const char *error,
                          int first)
{
    if (e->waiting)
        return e->waiting(e->opaque, error, first);
    cs_backoff_sleep(backoff);
    return !cs_running();
}

/* Runs a pipeline until Redis answers (re-sending it whole after a dropped connection or
 * a retriable error reply: everything in it is idempotent) or the waiting callback gives
 * up. */
static cs_err_t cs_engine_exec(cs_engine_t *e, cs_redis_pipe_t *p, char *errstr,
                               size_t errstr_size)
{
    cs_backoff_t backoff;
    cs_backoff_init(&backoff, CS_BACKOFF_STORE_INITIAL_MS, CS_BACKOFF_STORE_MAX_MS);
    int waited = 0;
    for (;;) {
        cs_err_t err = cs_redis_pipe_exec(e->redis, p, errstr, errstr_size);
        if (err == CS_OK) {
            if (waited && e->back)
                e->back(e->opaque);
            return CS_OK;
        }
        if (err != CS_ERR_RETRY)
            return CS_ERR_FATAL;
        if (cs_engine_wait(e, &backoff, errstr, !waited))
            return CS_ERR_RETRY;
        waited = 1;
        if (!cs_redis_connected(e->redis))
            cs_redis_connect(e->redis, errstr, errstr_size);
    }
}

static int cs_item_cmp(const void *a, const void *b)
{
    const cs_item_t *x = a, *y = b;
    int c = strcmp(x->subject, y->subject);
    if (c)
        return c;
    if (x->ev->partition != y->ev->partition)
        return x->ev->partition < y->ev->partition ? -1 : 1;
    return x->ev->offset < y->ev->offset ? -1 : x->ev->offset > y->ev->offset;
}

static cs_err_t cs_engine_keep_alerts(cs_engine_batch_t *e, const cs_score_outcome_t *out)
{
    /* most calls raise nothing: out->alerts is then NULL, which memcpy must not get even
     * for 0 bytes (UBSan stops the scorer on it) */
    if (out->nalerts == 0)
        return CS_OK;
    if (e->nalerts + out->nalerts > e->alerts_cap) {
        int cap = e->alerts_cap ? e->alerts_cap : 16;
        while (cap < e->nalerts + out->nalerts)
            cap *= 2;
        cs_alert_t *grown = realloc(e->alerts, (size_t)cap * sizeof(*grown));
        if (!grown)
            return CS_ERR_NOMEM;
        e->alerts = grown;
        e->alerts_cap = cap;
    }
    memcpy(e->alerts + e->nalerts, out->alerts,
           (size_t)out->nalerts * sizeof(cs_alert_t));
    e->nalerts += out->nalerts;
    return CS_OK;
}

static cs_err_t cs_engine_keep_failed(cs_engine_batch_t *e, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        if (e->nfailed == e->failed_cap) {
            size_t cap = e->failed_cap ? e->failed_cap * 2 : 16;
            size_t *grown = realloc(e->failed, cap * sizeof(*grown));
            if (!grown)
                return CS_ERR_NOMEM;
            e->failed = grown;
            e->failed_cap = cap;
        }
        e->failed[e->nfailed++] = (size_t)(e->items[i].ev - e->events);
    }
    return CS_OK;
}

/* Every reply of the positions must be +OK: without them the recovery rule
 * (docs/contract/redis-layout.md) has nothing to resume from. */
static cs_err_t cs_engine_check_positions(const cs_redis_pipe_t *pipe, size_t from,
                                          char *errstr, size_t errstr_size)
{
    for (size_t i = from; i < cs_redis_pipe_count(pipe); i++) {
        const redisReply *r = cs_redis_pipe_reply(pipe, i);
        if (!r || r->type != REDIS_REPLY_STATUS) {
            snprintf(errstr, errstr_size, "redis refused a position: %.200s",
                     r && r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
            return CS_ERR_FATAL;
        }
    }
    return CS_OK;
}

/* Computing here: entry c's value among those of [from, to) read by the MGET that is
 * reply \p first of \p p (its error reply itself, if Redis refused it) */
static const redisReply *cs_engine_value_read(const cs_redis_pipe_t *p, size_t first,
                                              size_t from, size_t to, size_t c)
{
    const redisReply *r = cs_redis_pipe_reply(p, first);
    if (r && r->type == REDIS_REPLY_ARRAY)
        return r->elements == to - from ? r->element[c - from] : NULL;
    return r;
}

/* The outcomes of calls [from, to) into b->outs (released first), marking b->bad the
 * calls that failed; b->failure says why the first did (set it to "" before). From the
 * function's replies in \p p (call c's is reply first + c - from), or, computing here,
 * computed from the states read (the MGET reply \p first of \p p) with each call's new
 * value in b->values. @returns how many failed. */
static size_t cs_engine_outcomes(cs_engine_t *e, cs_engine_batch_t *b, size_t from,
                                 size_t to, const cs_redis_pipe_t *p, size_t first)
{
    size_t nbad = 0;
    for (size_t c = from; c < to; c++) {
        char why[256] = "no reply";
        const cs_score_input_t *in = &b->inputs[b->starts[c]];
        size_t n = b->starts[c + 1] - b->starts[c];
        const redisReply *r = b->compute ? cs_engine_value_read(p, first, from, to, c)
                                         : cs_redis_pipe_reply(p, first + c - from);
        cs_score_outcome_release(&b->outs[c]);
        if (b->compute) {
            free(b->values[c]);
            b->values[c] = NULL;
            b->bad[c] = !r || cs_scorer_compute(e->scorer, r, in, n, &b->values[c],
                                                &b->value_lens[c], &b->outs[c], why,
                                                sizeof(why)) != CS_OK;
        } else {
            b->bad[c] = !r || cs_scorer_parse_reply(e->scorer, r, in, n, &b->outs[c], why,
                                                    sizeof(why)) != CS_OK;
        }
        if (b->bad[c] && !nbad++ && !b->failure[0])
            snprintf(b->failure, sizeof(b->failure), "%s: %s",
                     b->items[b->starts[c]].subject, why);
    }
    return nbad;
}

/* The rank sets are an index derived from the state (eventually consistent): a refused
 * update is logged and counted (per subject it held), never a reason to stop scoring. */
static void cs_engine_check_rank(cs_engine_t *e, const cs_redis_pipe_t *rank,
                                 const size_t *members)
{
    for (size_t i = 0; i < cs_redis_pipe_count(rank); i++) {
        const redisReply *r = cs_redis_pipe_reply(rank, i);
        if (r && r->type == REDIS_REPLY_INTEGER)
            continue;
        long before = e->rank_errors;
        e->rank_errors += (long)members[i];
        if (!before || before / 1000 != e->rank_errors / 1000)
            cs_log_error("redis refused a rank update (the --top order may lag)",
                         "{s:s, s:I}", "error",
                         r && r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply",
                         "count", (json_int_t)e->rank_errors);
    }
}

/* One ZADD per rank set for the whole batch (a subject appears once in a batch), its
 * scores formatted into \p scores: Redis's cost per command, not per member, dominates
 * a one-member ZADD. \p members gets how many subjects each command holds. */
static cs_err_t cs_engine_add_ranks(cs_engine_t *e, const cs_engine_batch_t *b,
                                    char (*scores)[40], cs_redis_pipe_t *rank,
                                    size_t *members)
{
    cs_err_t rc = CS_OK;
    const char **argv = malloc((2 * b->ncalls + 2) * sizeof(*argv));
    if (!argv)
        return CS_ERR_NOMEM;
    /* on a cluster, one per kind and shard (CS_RANK_SHARDS), spread over the masters */
    int shards = cs_redis_is_cluster(e->redis) ? CS_RANK_SHARDS : 1;
    unsigned char *shard_of = malloc(b->ncalls ? b->ncalls : 1);
    if (!shard_of) {
        free(argv);
        return CS_ERR_NOMEM;
    }
    for (size_t c = 0; c < b->ncalls; c++)
        shard_of[c] =
            (unsigned char)(shards > 1
                                ? cs_scorer_rank_shard(b->items[b->starts[c]].subject)
                                : 0);
    for (int set = 0; set < CS_SUBJECT_COUNT * shards && !rc; set++) {
        int kind = set / shards, shard = shards > 1 ? set % shards : -1;
        char key[256];
        int argc = 2;
        cs_scorer_rank_key_shard(e->scorer, (cs_subject_kind_t)kind, shard, key,
                                 sizeof(key));
        argv[0] = "ZADD";
        argv[1] = key;
        for (size_t c = 0; c < b->ncalls; c++) {
            const cs_score_outcome_t *o = &b->outs[c];
            /* after a redelivery too: a crash between the calls and the rank update
             * would otherwise leave the subject's rank stale until its next event */
            if (b->bad[c] || !(o->applied || o->redeliveries) ||
                (int)b->inputs[b->starts[c]].ev->subject_kind != kind ||
                (shard >= 0 && shard_of[c] != shard))
                continue;
            double r = cs_scorer_rank_value(e->scorer, o->score, o->as_of);
            snprintf(scores[c], sizeof(scores[c]), isinf(r) ? "-inf" : "%.17g", r);
            argv[argc++] = scores[c];
            argv[argc++] = b->items[b->starts[c]].subject;
        }
        if (argc > 2) {
            members[cs_redis_pipe_count(rank)] = (size_t)(argc - 2) / 2;
            rc = cs_redis_pipe_add(rank, argc, argv, NULL);
        }
    }
    free(shard_of);
    free(argv);
    return rc;
}

long cs_engine_rank_errors(const cs_engine_t *e)
{
    return e->rank_errors;
}

long cs_engine_conflicts(const cs_engine_t *e)
{
    return e->conflicts;
}

void cs_engine_batch_free(cs_engine_batch_t *b)
{
    if (!b)
        return;
    free(b->items);
    free(b->inputs);
    free(b->starts);
    for (size_t c = 0; b->outs && c < b->n; c++)
        cs_score_outcome_release(&b->outs[c]);
    free(b->outs);
    free(b->bad);
    cs_redis_pipe_destroy(b->pipe);
    for (size_t c = 0; b->values && c < b->n; c++)
        free(b->values[c]);
    free(b->values);
    free(b->value_lens);
    free(b->keys);
    free(b->alerts);
    free(b->failed);
    free(b);
}

size_t cs_engine_batch_calls(const cs_engine_batch_t *b)
{
    return b ? b->ncalls : 0;
}

size_t cs_engine_batch_events(const cs_engine_batch_t *b)
{
    return b->n;
}

/* The position SETs of the batch's partitions (the next offset after its last event on
 * each): after the writes they cover, on the same connection, so the append-only file
 * has them after those writes (docs/contract/redis-layout.md). On a Redis Cluster, one
 * per master, each under a tag of that master's lowest slot. */
static cs_err_t cs_engine_add_positions(cs_engine_t *e, const cs_engine_batch_t *b,
                                        cs_redis_pipe_t *pipe)
{
    const cs_engine_event_t *events = b->events;
    size_t shards = cs_redis_is_cluster(e->redis) ? cs_redis_shards(e->redis) : 1;
    for (size_t i = 0; b->positions && i < b->n; i++) {
        int last = 1;
        for (size_t k = i + 1; k < b->n && last; k++)
            last = !(events[k].partition == events[i].partition &&
                     !strcmp(events[k].topic, events[i].topic));
        if (!last)
            continue;
        for (size_t m = 0; m < shards; m++) {
            const char *tag = NULL;
            if (cs_redis_is_cluster(e->redis) &&
                !cs_redis_shard_tags(e->redis, m, &tag, 1))
                continue;
            char key[512], val[32];
            cs_scorer_pos_key_on(e->scorer, tag, events[i].topic, events[i].partition,
                                 key, sizeof(key));
            snprintf(val, sizeof(val), "%" PRId64, events[i].offset + 1);
            const char *argv[] = {"SET", key, val};
            if (cs_redis_pipe_add(pipe, 3, argv, NULL))
                return CS_ERR_NOMEM;
        }
    }
    return CS_OK;
}

/* The positions in their own pipeline, after every write of the batch has been
 * answered. On a Redis Cluster they cannot share the calls' pipeline: a call redirected
 * (MOVED, ASK) runs in a later round, after its master had already recorded a position
 * that covers it. The slot map is read first when it is stale, and again if slots moved
 * during the write, so that each master gets its own position. */
static cs_err_t cs_engine_write_positions(cs_engine_t *e, const cs_engine_batch_t *b,
                                          char *errstr, size_t errstr_size)
{
    cs_err_t rc = CS_OK;
    for (int attempt = 0; attempt < 4; attempt++) {
        if (!cs_redis_connected(e->redis))
            cs_redis_connect(e->redis, errstr, errstr_size);
        cs_redis_pipe_t *p = cs_redis_pipe_new();
        if (!p)
            return CS_ERR_NOMEM;
        if (!(rc = cs_engine_add_positions(e, b, p)) && cs_redis_pipe_count(p) &&
            !(rc = cs_engine_exec(e, p, errstr, errstr_size)))
            rc = cs_engine_check_positions(p, 0, errstr, errstr_size);
        cs_redis_pipe_destroy(p);
        /* connected again: no slot moved while they were written */
        if (rc || !cs_redis_is_cluster(e->redis) || cs_redis_connected(e->redis))
            break;
    }
    return rc;
}

/* On a Redis Cluster, after the calls: the positions, then a replica of every master
 * holding all of it (cs_redis_wait_replicas). Replication is asynchronous: a master that
 * fails after answering loses what its replica had not received. A master lost before the
 * WAIT answered may have lost the calls too: CS_ENGINE_LOST, and the batch is made again
 * (every call is idempotent) on the replica that took over. */
static cs_err_t cs_engine_settle_cluster(cs_engine_t *e, cs_engine_batch_t *b,
                                         char *errstr, size_t errstr_size)
{
    cs_err_t rc =
        b->positions ? cs_engine_write_positions(e, b, errstr, errstr_size) : CS_OK;
    if (rc)
        return rc;
    rc = cs_redis_wait_replicas(e->redis, errstr, errstr_size);
    return rc == CS_ERR_RETRY ? CS_ENGINE_LOST : rc;
}

/* The function calls, one per subject, then the positions */
static cs_err_t cs_engine_prepare_calls(cs_engine_t *e, cs_engine_batch_t *b)
{
    for (size_t c = 0; c < b->ncalls; c++)
        if (cs_scorer_add_call(e->scorer, b->pipe, &b->inputs[b->starts[c]],
                               b->starts[c + 1] - b->starts[c]))
            return CS_ERR_NOMEM;
    /* a cluster's positions: cs_engine_write_positions, once the calls have answered */
    return cs_redis_is_cluster(e->redis) ? CS_OK : cs_engine_add_positions(e, b, b->pipe);
}

/* Computing here: each call's state key and room for its new value (the reads are made
 * chunk by chunk when the batch executes) */
static cs_err_t cs_engine_prepare_keys(cs_engine_t *e, cs_engine_batch_t *b)
{
    size_t slots = b->ncalls ? b->ncalls : 1;
    b->keys = calloc(slots, sizeof(*b->keys));
    b->values = calloc(b->n ? b->n : 1, sizeof(*b->values));
    b->value_lens = calloc(slots, sizeof(*b->value_lens));
    if (!b->keys || !b->values || !b->value_lens)
        return CS_ERR_NOMEM;
    for (size_t c = 0; c < b->ncalls; c++)
        cs_scorer_state_key(e->scorer, b->items[b->starts[c]].subject, b->keys[c],
                            sizeof(b->keys[c]));
    return CS_OK;
}

cs_engine_batch_t *cs_engine_prepare(cs_engine_t *e, const cs_engine_event_t *events,
                                     size_t n, int positions)
{
    cs_engine_batch_t *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->events = events;
    b->n = n;
    size_t slots = n ? n : 1;
    b->items = calloc(slots, sizeof(*b->items));
    b->inputs = calloc(slots, sizeof(*b->inputs));
    b->starts = calloc(slots + 1, sizeof(*b->starts));
    b->outs = calloc(slots, sizeof(*b->outs)); /* one per call, at most n */
    b->bad = calloc(slots, 1);
    b->pipe = cs_redis_pipe_new();
    if (!b->items || !b->inputs || !b->starts || !b->outs || !b->bad || !b->pipe)
        goto fail;
    /* one call per subject, its events in offset order */
    for (size_t i = 0; i < n; i++) {
        b->items[i].ev = &events[i];
        cs_subject_key(events[i].ev.subject_kind, events[i].ev.subject_id,
                       b->items[i].subject, sizeof(b->items[i].subject));
    }
    qsort(b->items, n, sizeof(*b->items), cs_item_cmp);
    for (size_t i = 0; i < n; i++) {
        b->inputs[i].ev = &b->items[i].ev->ev;
        b->inputs[i].partition = b->items[i].ev->partition;
        b->inputs[i].offset = b->items[i].ev->offset;
        if (i == 0 || strcmp(b->items[i].subject, b->items[i - 1].subject))
            b->starts[b->ncalls++] = i;
    }
    b->starts[b->ncalls] = n;
    b->positions = positions;
    b->compute = cs_scorer_computes(e->scorer);
    if (b->compute ? cs_engine_prepare_keys(e, b) : cs_engine_prepare_calls(e, b))
        goto fail;
    return b;
fail:
    cs_engine_batch_free(b);
    return NULL;
}

/* Do \p nbad failed calls of \p b mean the function fails for everyone? (every call
 * failed, and failures have run on: CS_ENGINE_SYSTEMIC_RUN) */
static int cs_engine_systemic(const cs_engine_t *e, const cs_engine_batch_t *b,
                              size_t nbad)
{
    return nbad && nbad == b->ncalls && e->fail_run + (int)nbad >= CS_ENGINE_SYSTEMIC_RUN;
}

/* The function calls: executed until they answer. One subject's call failing (an error
 * reply, a reply we cannot read) must not stop the batch: its events are dead-lettered
 * (STATE_ERROR) and the others go on. If every call fails and failures run on, the
 * function fails for everyone: wait and retry the whole batch (its calls are
 * idempotent) rather than dead-letter the stream. */
static cs_err_t cs_engine_run_calls(cs_engine_t *e, cs_engine_batch_t *b, char *errstr,
                                    size_t errstr_size)
{
    cs_backoff_t backoff;
    cs_backoff_init(&backoff, CS_BACKOFF_STORE_INITIAL_MS, CS_BACKOFF_STORE_MAX_MS);
    for (int attempt = 0;; attempt++) {
        cs_err_t rc;
        if ((rc = cs_engine_exec(e, b->pipe, errstr, errstr_size)) ||
            (rc = cs_engine_check_positions(b->pipe, b->ncalls, errstr, errstr_size)))
            return rc;
        b->failure[0] = '\0';
        if (!cs_engine_systemic(e, b,
                                cs_engine_outcomes(e, b, 0, b->ncalls, b->pipe, 0))) {
            if (!cs_redis_is_cluster(e->redis))
                return attempt ? CS_ENGINE_AGAIN : CS_OK;
            rc = cs_engine_settle_cluster(e, b, errstr, errstr_size);
            if (rc != CS_ENGINE_LOST)
                return rc ? rc : attempt ? CS_ENGINE_AGAIN : CS_OK;
            /* a master was lost before its replica had the calls: make them again */
            if (cs_engine_wait(e, &backoff, errstr, attempt == 0))
                return CS_ERR_RETRY;
            continue;
        }
        cs_log_error("the risk function fails for every subject: waiting, then retrying "
                     "the batch",
                     "{s:s, s:i}", "error", b->failure, "attempt", attempt + 1);
        if (cs_engine_wait(e, &backoff, b->failure, attempt == 0))
            return CS_ERR_RETRY;
    }
}

/* Computing here, a set of keys each read under WATCH, computed from, and written back
 * in MULTI/EXEC: a batch's states, or the states its alerts are acknowledged in.
 * compute(e, ctx, from, to, p, first) computes entries [from, to) from the GET replies
 * (one MGET) reply \p first of \p p, setting values[c] (NULL: unchanged). Keys per
 * transaction: CS_ENGINE_CHUNK — WATCH costs Redis a walk of every key the connection
 * already watches (O(n^2) in a transaction's keys): ~4 us a key at 460 keys; while each
 * transaction costs ~15 us of its own (MULTI, EXEC, the replies). Measured with
 * bench_redis --engine scorer, ~1 event per call: 13.2 us of Redis per event at 16 keys,
 * ~9.5 at 32, ~7.4 at 64. */
typedef void(cs_engine_compute_fn)(cs_engine_t *e, void *ctx, size_t from, size_t to,
                                   const cs_redis_pipe_t *p, size_t first);
#define CS_ENGINE_CHUNK 64
typedef void(cs_engine_refused_fn)(void *ctx, size_t c, const char *why);
typedef struct cs_engine_txn {
    size_t n;
    char (*keys)[256];
    unsigned char **values;
    size_t *lens;
    cs_engine_compute_fn *compute;
    void *ctx;
    long *aborts; /* writes refused because a value moved, for the warning */
    cs_engine_refused_fn *refused;  /* entry c's write refused (\p why); may be NULL */
    char absent[CS_ENGINE_CHUNK];   /* of the chunk read last: entry read as nil */
    char absent_w[CS_ENGINE_CHUNK]; /* of the chunk being written */
} cs_engine_txn_t;

/* Adds a chunk's reads to \p p: WATCH its keys, then one MGET of them */
static cs_err_t cs_engine_add_reads(const cs_engine_txn_t *t, size_t from, size_t to,
                                    cs_redis_pipe_t *p)
{
    const char *argv[CS_ENGINE_CHUNK + 1] = {"WATCH"};
    for (size_t c = from; c < to; c++)
        argv[1 + c - from] = t->keys[c];
    cs_err_t rc = cs_redis_pipe_add(p, (int)(to - from) + 1, argv, NULL);
    argv[0] = "MGET";
    return rc ? rc : cs_redis_pipe_add(p, (int)(to - from) + 1, argv, NULL);
}

/* Adds a chunk's write to \p p: MULTI, a SET of each new value, EXEC. MGET answers nil
 * for a key of another type as for no key, so a value computed from nil is written
 * with NX: it never replaces a key of another type (EXEC answers nil for that SET). */
static cs_err_t cs_engine_add_write(const cs_engine_txn_t *t, size_t from, size_t to,
                                    cs_redis_pipe_t *p)
{
    const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"};
    cs_err_t rc = cs_redis_pipe_add(p, 1, multi, NULL);
    for (size_t c = from; !rc && c < to; c++) {
        if (!t->values[c])
            continue;
        const char *set[] = {"SET", t->keys[c], (const char *)t->values[c], "NX"};
        size_t lens[] = {3, strlen(t->keys[c]), t->lens[c], 2};
        rc = cs_redis_pipe_add(p, t->absent_w[c - from] ? 4 : 3, set, lens);
    }
    return rc ? rc : cs_redis_pipe_add(p, 1, exec, NULL);
}

/* What the transaction ending at reply \p end - 1 of \p w (MULTI, the SETs of entries
 * [from, to) of \p t, EXEC) answered. A SET NX not done (nil) is that entry's key being
 * of another type: t->refused. @returns CS_OK (written), CS_ENGINE_AGAIN (a watched
 * value moved: nothing was written), CS_ERR_FATAL (Redis refused a write). */
static cs_err_t cs_engine_check_exec_at(const cs_engine_txn_t *t, size_t from, size_t to,
                                        const cs_redis_pipe_t *w, size_t end,
                                        char *errstr, size_t errstr_size)
{
    const redisReply *r = cs_redis_pipe_reply(w, end - 1);
    if (r && r->type == REDIS_REPLY_NIL)
        return CS_ENGINE_AGAIN;
    const char *why = "unexpected reply";
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == end - 2) {
        size_t i = 0;
        for (size_t c = from; c < to && i < r->elements; c++) {
            if (!t->values[c])
                continue;
            const redisReply *q = r->element[i];
            if (q->type == REDIS_REPLY_NIL && t->absent_w[c - from] && t->refused)
                t->refused(t->ctx, c,
                           "the state key holds another type: is this a namespace of "
                           "another layout? rebuild into a new namespace");
            else if (q->type != REDIS_REPLY_STATUS)
                break;
            i++;
        }
        if (i == r->elements)
            return CS_OK;
        if (r->element[i]->type == REDIS_REPLY_ERROR)
            why = r->element[i]->str;
    } else {
        /* a command refused while queued: its reply says why (EXEC says EXECABORT) */
        for (size_t i = 0; i < end; i++) {
            const redisReply *q = cs_redis_pipe_reply(w, i);
            if (q && q->type == REDIS_REPLY_ERROR) {
                why = q->str;
                break;
            }
        }
    }
    snprintf(errstr, errstr_size, "redis refused a state write: %.200s", why);
    return CS_ERR_FATAL;
}

/* A transaction's wait for Redis (a refusal, a dropped connection, values that keep
 * moving): backs off, then reconnects if the connection is gone. @returns non-zero when
 * the wait gave up (a stop, or the waiting callback). */
static int cs_engine_wait_redis(cs_engine_t *e, cs_backoff_t *backoff, const char *why,
                                int *waited, char *errstr, size_t errstr_size)
{
    if (cs_engine_wait(e, backoff, why, !*waited))
        return 1;
    *waited = 1;
    if (!cs_redis_connected(e->redis))
        cs_redis_connect(e->redis, errstr, errstr_size);
    return 0;
}

/* The conflict warning and the "keeps changing" check of both transaction forms */
static const char *cs_engine_conflict(cs_engine_t *e, cs_engine_txn_t *t, int in_row)
{
    e->conflicts++;
    if (!(*t->aborts)++ || *t->aborts % 100 == 0)
        cs_log_warn(
            "a state value changed while the batch was computed: reading it again",
            "{s:I}", "count", (json_int_t)*t->aborts);
    return in_row > 3 ? "state values keep changing while the batch is computed" : NULL;
}

/* On a Redis Cluster, where a transaction cannot hold keys of many slots: every key not
 * yet written is read with its own GET (all at once, each to its master), computed, and
 * each changed value written with layout 2's compare-and-set function, which writes it
 * only if the key still holds the value it was computed from (sent along: hashing it
 * instead cost Redis more than the bytes do), or still does not exist — the fence WATCH
 * gives on one node, per key. An entry whose value moved (reply 0) is read and computed
 * again. A key of another type answers GET and the function with WRONGTYPE: the entry is
 * refused (computing from that reply fails, as the function's call would). */
static cs_err_t cs_engine_transact_cas(cs_engine_t *e, cs_engine_txn_t *t,
                                       cs_backoff_t *backoff, int *waited, char *errstr,
                                       size_t errstr_size)
{
    size_t n = t->n ? t->n : 1;
    char *done = calloc(n, 1);
    size_t *at = calloc(n, sizeof(*at)); /* the entry of each command */
    cs_redis_pipe_t *rp = cs_redis_pipe_new(), *wp = cs_redis_pipe_new();
    const char *cas = cs_scorer_cas_function(e->scorer);
    cs_err_t rc = done && at && rp && wp ? CS_OK : CS_ERR_NOMEM;
    int in_row = 0;
    while (!rc) {
        cs_redis_pipe_reset(rp);
        size_t nread = 0;
        for (size_t c = 0; c < t->n && !rc; c++)
            if (!done[c]) {
                const char *get[] = {"GET", t->keys[c]};
                rc = cs_redis_pipe_add(rp, 2, get, NULL);
                at[nread++] = c;
            }
        if (rc || !nread)
            break;
        const char *why = NULL;
        rc = cs_redis_pipe_exec(e->redis, rp, errstr, errstr_size);
        if (rc == CS_ERR_RETRY) {
            why = errstr;
            rc = CS_OK;
        } else if (!rc) {
            cs_redis_pipe_reset(wp);
            for (size_t j = 0; j < nread && !rc; j++) {
                size_t c = at[j];
                const redisReply *r = cs_redis_pipe_reply(rp, j);
                t->compute(e, t->ctx, c, c + 1, rp, j);
                if (!t->values[c]) {
                    done[c] = 1; /* unchanged, or refused by the computation */
                    continue;
                }
                int had = r && r->type == REDIS_REPLY_STRING;
                const char *argv[] = {"FCALL",
                                      cas,
                                      "1",
                                      t->keys[c],
                                      had ? r->str : "",
                                      (const char *)t->values[c]};
                size_t lens[] = {
                    5, strlen(cas), 1, strlen(t->keys[c]), had ? r->len : 0, t->lens[c]};
                rc = cs_redis_pipe_add(wp, 6, argv, lens);
            }
            size_t nwrite = cs_redis_pipe_count(wp);
            if (!rc && nwrite) {
                rc = cs_redis_pipe_exec(e->redis, wp, errstr, errstr_size);
                if (rc == CS_ERR_RETRY) {
                    why = errstr; /* nothing known of the writes: read them again */
                    rc = CS_OK;
                }
            }
            int moved = 0;
            for (size_t j = 0, w = 0; !rc && !why && j < nread; j++) {
                size_t c = at[j];
                if (done[c])
                    continue;
                const redisReply *r = cs_redis_pipe_reply(wp, w++);
                if (r && r->type == REDIS_REPLY_INTEGER) {
                    done[c] = r->integer == 1;
                    moved += r->integer != 1;
                } else if (r && r->type == REDIS_REPLY_ERROR &&
                           !strncmp(r->str, "WRONGTYPE", 9) && t->refused) {
                    t->refused(t->ctx, c,
                               "the state key holds another type: is this a namespace of "
                               "another layout? rebuild into a new namespace");
                    done[c] = 1;
                } else {
                    snprintf(errstr, errstr_size, "redis refused a state write: %.200s",
                             r && r->type == REDIS_REPLY_ERROR ? r->str
                                                               : "unexpected reply");
                    rc = CS_ERR_FATAL;
                }
            }
            if (!rc && !why && moved)
                why = cs_engine_conflict(e, t, ++in_row);
            else if (!rc && !why)
                in_row = 0;
        }
        if (!rc && why &&
            cs_engine_wait_redis(e, backoff, why, waited, errstr, errstr_size))
            rc = CS_ERR_RETRY;
    }
    cs_redis_pipe_destroy(rp);
    cs_redis_pipe_destroy(wp);
    free(at);
    free(done);
    return rc;
}

/* Chunk after chunk of CS_ENGINE_CHUNK keys: read them under WATCH, compute, write every
 * changed value in one MULTI/EXEC on the same connection — that write pipelined with the
 * next chunk's read. EXEC writes nothing if a watched value changed since it was read (a
 * scorer that still believes it owns the partition, an acknowledgement): that chunk is
 * then read and computed again. So no write ever replaces a value it was not computed
 * from, as the function's atomic call guarantees. After a dropped connection or a
 * refusal, the chunks not known to be written are read again (a watch belongs to its
 * connection); one that was written is then seen as redelivered. \p waited is set once
 * the engine waited for Redis. */
static cs_err_t cs_engine_transact(cs_engine_t *e, cs_engine_txn_t *t,
                                   cs_backoff_t *backoff, int *waited, char *errstr,
                                   size_t errstr_size)
{
    if (cs_redis_is_cluster(e->redis))
        return cs_engine_transact_cas(e, t, backoff, waited, errstr, errstr_size);
    enum { UNREAD, WRITING, DONE };
    size_t nchunks = (t->n + CS_ENGINE_CHUNK - 1) / CS_ENGINE_CHUNK;
    char *chunk = calloc(nchunks ? nchunks : 1, 1); /* UNREAD, WRITING or DONE */
    cs_redis_pipe_t *p = cs_redis_pipe_new();
    const char *unwatch[] = {"UNWATCH"};
    cs_err_t rc = chunk && p ? CS_OK : CS_ERR_NOMEM;
    long pending = -1; /* the chunk whose write goes with the next chunk's read */
    int aborts_in_row = 0;
    while (!rc) {
        long cur = -1;
        for (size_t k = 0; k < nchunks && cur < 0; k++)
            if (chunk[k] == UNREAD)
                cur = (long)k;
        if (cur < 0 && pending < 0)
            break;
        size_t from = (size_t)cur * CS_ENGINE_CHUNK, to = from + CS_ENGINE_CHUNK;
        size_t pfrom = (size_t)pending * CS_ENGINE_CHUNK, pto = pfrom + CS_ENGINE_CHUNK;
        to = to < t->n ? to : t->n;
        pto = pto < t->n ? pto : t->n;
        cs_redis_pipe_reset(p);
        memcpy(t->absent_w, t->absent, sizeof(t->absent)); /* pending was read last */
        if ((pending >= 0 && (rc = cs_engine_add_write(t, pfrom, pto, p))))
            break;
        size_t nwrite = cs_redis_pipe_count(p);
        if (cur >= 0 && (rc = cs_engine_add_reads(t, from, to, p)))
            break;
        const char *why = NULL;
        rc = cs_redis_pipe_exec(e->redis, p, errstr, errstr_size);
        if (rc == CS_ERR_RETRY) {
            /* nothing is known of this pipeline: both chunks again, from their reads */
            why = errstr;
            rc = CS_OK;
        } else if (rc) {
            break;
        } else {
            if (pending >= 0) {
                cs_err_t w = cs_engine_check_exec_at(t, pfrom, pto, p, nwrite, errstr,
                                                     errstr_size);
                if (w == CS_ERR_FATAL) {
                    rc = w;
                    break;
                }
                chunk[pending] = w == CS_OK ? DONE : UNREAD;
                pending = -1;
                aborts_in_row = w == CS_OK ? 0 : aborts_in_row + 1;
                if (w == CS_ENGINE_AGAIN) /* a value moved under us: that chunk again */
                    why = cs_engine_conflict(e, t, aborts_in_row);
            }
            if (cur >= 0) {
                const redisReply *watch = cs_redis_pipe_reply(p, nwrite);
                if (!watch || watch->type != REDIS_REPLY_STATUS) {
                    snprintf(errstr, errstr_size, "redis refused WATCH: %.200s",
                             watch && watch->type == REDIS_REPLY_ERROR
                                 ? watch->str
                                 : "unexpected reply");
                    rc = CS_ERR_FATAL;
                    break;
                }
                const redisReply *got = cs_redis_pipe_reply(p, nwrite + 1);
                for (size_t c = from; c < to; c++)
                    t->absent[c - from] = got && got->type == REDIS_REPLY_ARRAY &&
                                          got->elements == to - from &&
                                          got->element[c - from]->type == REDIS_REPLY_NIL;
                t->compute(e, t->ctx, from, to, p, nwrite + 1);
                chunk[cur] = WRITING;
                pending = cur;
            }
        }
        if (!why)
            continue;
        if (pending >= 0) {
            /* never wait with a chunk read and not written: its values go stale */
            chunk[pending] = UNREAD;
            pending = -1;
            cs_redis_pipe_reset(p);
            if (!cs_redis_pipe_add(p, 1, unwatch, NULL))
                cs_redis_pipe_exec(e->redis, p, errstr, errstr_size);
        }
        if (cs_engine_wait_redis(e, backoff, why, waited, errstr, errstr_size)) {
            rc = CS_ERR_RETRY;
            break;
        }
    }
    cs_redis_pipe_destroy(p);
    free(chunk);
    return rc;
}

static void cs_engine_compute_states(cs_engine_t *e, void *ctx, size_t from, size_t to,
                                     const cs_redis_pipe_t *p, size_t first)
{
    cs_engine_outcomes(e, ctx, from, to, p, first);
}

/* A subject's state not written: its call failed, as the function's would have */
static void cs_engine_refused_state(void *ctx, size_t c, const char *why)
{
    cs_engine_batch_t *b = ctx;
    cs_score_outcome_release(&b->outs[c]);
    b->bad[c] = 1;
    if (!b->failure[0])
        snprintf(b->failure, sizeof(b->failure), "%s: CS_STATE %s",
                 b->items[b->starts[c]].subject, why);
}

/* Computing here: the batch's states (cs_engine_transact), then the positions, after
 * every write they cover, on the same connection. */
static cs_err_t cs_engine_run_here(cs_engine_t *e, cs_engine_batch_t *b, char *errstr,
                                   size_t errstr_size)
{
    cs_backoff_t backoff;
    cs_backoff_init(&backoff, CS_BACKOFF_STORE_INITIAL_MS, CS_BACKOFF_STORE_MAX_MS);
    cs_engine_txn_t t = {b->ncalls,
                         b->keys,
                         b->values,
                         b->value_lens,
                         cs_engine_compute_states,
                         b,
                         &b->aborts,
                         cs_engine_refused_state,
                         "",
                         ""};
    cs_err_t rc = CS_OK;
    int waited = 0;
    for (int attempt = 0;; attempt++) {
        b->failure[0] = '\0';
        if ((rc = cs_engine_transact(e, &t, &backoff, &waited, errstr, errstr_size)))
            break;
        /* as the function's calls: every call failing, failures running on, means the
         * state fails for everyone — wait and retry the batch (failed calls wrote
         * nothing) rather than dead-letter the stream */
        size_t nbad = 0;
        for (size_t c = 0; c < b->ncalls; c++)
            nbad += b->bad[c] != 0;
        const char *why = b->failure;
        if (!cs_engine_systemic(e, b, nbad)) {
            if (!cs_redis_is_cluster(e->redis)) {
                rc = b->positions ? cs_engine_write_positions(e, b, errstr, errstr_size)
                                  : CS_OK;
                break;
            }
            /* a master lost before its replica had the writes: the batch again */
            if ((rc = cs_engine_settle_cluster(e, b, errstr, errstr_size)) !=
                CS_ENGINE_LOST)
                break;
            rc = CS_OK;
            why = errstr;
        } else {
            cs_log_error(
                "the state fails for every subject: waiting, then retrying the batch",
                "{s:s, s:i}", "error", b->failure, "attempt", attempt + 1);
        }
        if (cs_engine_wait(e, &backoff, why, !waited)) {
            rc = CS_ERR_RETRY;
            break;
        }
        waited = 1;
    }
    if (rc == CS_OK && waited)
        rc = CS_ENGINE_AGAIN;
    return rc;
}

cs_err_t cs_engine_execute(cs_engine_t *e, cs_engine_batch_t *b, cs_engine_result_t *out,
                           char *errstr, size_t errstr_size)
{
    memset(out, 0, sizeof(*out));
    b->nalerts = 0;
    b->nfailed = 0;
    if (b->n == 0)
        return CS_OK;
    cs_redis_pipe_t *rank = cs_redis_pipe_new();
    char(*scores)[40] = NULL;
    if (!rank)
        return CS_ERR_NOMEM;
    cs_err_t rc = b->compute ? cs_engine_run_here(e, b, errstr, errstr_size)
                             : cs_engine_run_calls(e, b, errstr, errstr_size);
    if (rc == CS_ENGINE_AGAIN) {
        rc = CS_OK;
        if (e->back)
            e->back(e->opaque); /* Redis answers again: consumption resumes */
    }
    if (rc)
        goto done;

    for (size_t c = 0; c < b->ncalls; c++) {
        cs_score_outcome_t *o = &b->outs[c];
        if (b->bad[c]) {
            e->fail_run++;
            if ((rc = cs_engine_keep_failed(b, b->starts[c], b->starts[c + 1])))
                goto done;
            continue;
        }
        e->fail_run = 0;
        out->applied += o->applied;
        out->duplicates += o->duplicates;
        out->redeliveries += o->redeliveries;
        out->regressions += o->regressions;
        out->nreemitted += o->nreemitted;
        if ((rc = cs_engine_keep_alerts(b, o)))
            goto done;
    }
    /* the rank sets are eventually consistent: computed from this batch's replies */
    size_t members[CS_SUBJECT_COUNT * CS_RANK_SHARDS];
    if (!(scores = malloc((b->ncalls ? b->ncalls : 1) * sizeof(*scores))) ||
        (rc = cs_engine_add_ranks(e, b, scores, rank, members))) {
        rc = rc ? rc : CS_ERR_NOMEM;
        goto done;
    }
    if (cs_redis_pipe_count(rank) && !(rc = cs_engine_exec(e, rank, errstr, errstr_size)))
        cs_engine_check_rank(e, rank, members);
    out->alerts = b->alerts;
    out->nalerts = b->nalerts;
    out->failed = b->failed;
    out->nfailed = b->nfailed;
    out->failure = b->failure;
done:
    free(scores);
    cs_redis_pipe_destroy(rank);
    return rc;
}

cs_err_t cs_engine_apply(cs_engine_t *e, const cs_engine_event_t *events, size_t n,
                         int positions, cs_engine_result_t *out, char *errstr,
                         size_t errstr_size)
{
    memset(out, 0, sizeof(*out));
    cs_engine_batch_free(e->last);
    e->last = cs_engine_prepare(e, events, n, positions);
    if (!e->last) {
        snprintf(errstr, errstr_size, "out of memory");
        return CS_ERR_NOMEM;
    }
    return cs_engine_execute(e, e->last, out, errstr, errstr_size);
}

/* Computing here, the acknowledgement of a batch's alerts: per subject with alerts, its
 * state key and its alerts (b->alerts[start[c]] .. [start[c + 1] - 1]) */
typedef struct cs_engine_acks {
    const cs_engine_batch_t *b;
    cs_engine_txn_t *t; /* the transaction they are written in */
    size_t *start;
    char why[256]; /* the first state the acknowledgement could not be computed in */
} cs_engine_acks_t;

static void cs_engine_compute_acks(cs_engine_t *e, void *ctx, size_t from, size_t to,
                                   const cs_redis_pipe_t *p, size_t first)
{
    cs_engine_acks_t *a = ctx;
    cs_engine_txn_t *t = a->t;
    for (size_t c = from; c < to; c++) {
        char why[256] = "no reply";
        const redisReply *r = cs_engine_value_read(p, first, from, to, c);
        int removed;
        free(t->values[c]);
        t->values[c] = NULL;
        if ((!r || cs_scorer_compute_ack(e->scorer, r, &a->b->alerts[a->start[c]],
                                         a->start[c + 1] - a->start[c], &t->values[c],
                                         &t->lens[c], &removed, why, sizeof(why))) &&
            !a->why[0])
            snprintf(a->why, sizeof(a->why), "%s", why);
    }
}

/* Computing here: the acknowledgements under WATCH and MULTI/EXEC, as the states */
static cs_err_t cs_engine_ack_here(cs_engine_t *e, cs_engine_batch_t *b, char *errstr,
                                   size_t errstr_size)
{
    cs_engine_acks_t a = {b, NULL, calloc((size_t)b->nalerts + 1, sizeof(size_t)), ""};
    cs_engine_txn_t t = {0,
                         calloc((size_t)b->nalerts, 256),
                         calloc((size_t)b->nalerts, sizeof(unsigned char *)),
                         calloc((size_t)b->nalerts, sizeof(size_t)),
                         cs_engine_compute_acks,
                         &a,
                         &b->aborts,
                         NULL,
                         "",
                         ""};
    cs_err_t rc = a.start && t.keys && t.values && t.lens ? CS_OK : CS_ERR_NOMEM;
    for (int i = 0; !rc && i < b->nalerts; t.n++) {
        char subject[CS_SUBJECT_KEY_MAX];
        const cs_alert_t *al = &b->alerts[i];
        a.start[t.n] = (size_t)i;
        cs_subject_key(al->subject_kind, al->subject_id, subject, sizeof(subject));
        cs_scorer_state_key(e->scorer, subject, t.keys[t.n], sizeof(t.keys[t.n]));
        while (++i < b->nalerts && b->alerts[i].subject_kind == al->subject_kind &&
               !strcmp(b->alerts[i].subject_id, al->subject_id))
            ;
    }
    if (!rc) {
        a.start[t.n] = (size_t)b->nalerts;
        cs_backoff_t backoff;
        cs_backoff_init(&backoff, CS_BACKOFF_STORE_INITIAL_MS, CS_BACKOFF_STORE_MAX_MS);
        int waited = 0;
        a.t = &t;
        rc = cs_engine_transact(e, &t, &backoff, &waited, errstr, errstr_size);
        if (!rc && waited && e->back)
            e->back(e->opaque);
    }
    /* as a refused acknowledgement: the alert would stay pending */
    if (!rc && a.why[0]) {
        snprintf(errstr, errstr_size, "redis refused an alert acknowledgement: %.200s",
                 a.why);
        rc = CS_ERR_FATAL;
    }
    for (size_t c = 0; t.values && c < t.n; c++)
        free(t.values[c]);
    free(t.values);
    free(t.keys);
    free(t.lens);
    free(a.start);
    return rc;
}

cs_err_t cs_engine_ack_batch(cs_engine_t *e, cs_engine_batch_t *b, char *errstr,
                             size_t errstr_size)
{
    if (!b || b->nalerts == 0)
        return CS_OK;
    if (b->compute)
        return cs_engine_ack_here(e, b, errstr, errstr_size);
    cs_redis_pipe_t *p = cs_redis_pipe_new();
    cs_err_t rc = p ? CS_OK : CS_ERR_NOMEM;
    /* alerts come subject by subject: one acknowledgement call per subject */
    for (int i = 0; i < b->nalerts && !rc;) {
        int j = i + 1;
        while (j < b->nalerts && b->alerts[j].subject_kind == b->alerts[i].subject_kind &&
               !strcmp(b->alerts[j].subject_id, b->alerts[i].subject_id))
            j++;
        rc = cs_scorer_add_ack(e->scorer, p, &b->alerts[i], (size_t)(j - i));
        i = j;
    }
    if (!rc)
        rc = cs_engine_exec(e, p, errstr, errstr_size);
    /* an acknowledgement refused leaves the alert pending: it would be re-emitted on
     * every redelivery and the state would depend on batching; say so and stop */
    for (size_t i = 0; !rc && i < cs_redis_pipe_count(p); i++) {
        const redisReply *r = cs_redis_pipe_reply(p, i);
        if (!r || r->type != REDIS_REPLY_INTEGER) {
            snprintf(errstr, errstr_size,
                     "redis refused an alert acknowledgement: %.200s",
                     r && r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
            rc = CS_ERR_FATAL;
        }
    }
    cs_redis_pipe_destroy(p);
    return rc;
}

cs_err_t cs_engine_ack(cs_engine_t *e, char *errstr, size_t errstr_size)
{
    return cs_engine_ack_batch(e, e->last, errstr, errstr_size);
}
