/* caresignal paging de-duplication: a Redis record per paged alert_id, a bounded
 * in-memory set of the latest ones, and records waiting for Redis to come back. */
#include "caresignal/dedupe.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caresignal/log.h"

#define CS_ID_LEN 33

struct cs_dedupe {
    cs_redis_t *redis;
    char ns[128];
    char ttl[24];
    /* the latest cache_max ids: a set (jansson's hash table) and a ring for eviction */
    json_t *set;
    char (*ring)[CS_ID_LEN];
    size_t cache_max, ring_next, ring_n;
    /* records Redis could not take yet */
    char (*waiting)[CS_ID_LEN];
    size_t nwaiting, waiting_cap;
};

cs_dedupe_t *cs_dedupe_new(cs_redis_t *redis, const char *ns, long ttl_s,
                           size_t cache_max)
{
    cs_dedupe_t *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->redis = redis;
    snprintf(d->ns, sizeof(d->ns), "%s", ns);
    snprintf(d->ttl, sizeof(d->ttl), "%ld", ttl_s);
    d->cache_max = cache_max ? cache_max : 1;
    d->set = json_object();
    d->ring = calloc(d->cache_max, CS_ID_LEN);
    if (!d->set || !d->ring) {
        cs_dedupe_destroy(d);
        return NULL;
    }
    return d;
}

void cs_dedupe_destroy(cs_dedupe_t *d)
{
    if (!d)
        return;
    json_decref(d->set);
    free(d->ring);
    free(d->waiting);
    free(d);
}

static void cs_cache_add(cs_dedupe_t *d, const char *id)
{
    if (json_object_get(d->set, id))
        return;
    if (d->ring_n == d->cache_max)
        json_object_del(d->set, d->ring[d->ring_next]);
    else
        d->ring_n++;
    snprintf(d->ring[d->ring_next], CS_ID_LEN, "%s", id);
    d->ring_next = (d->ring_next + 1) % d->cache_max;
    json_object_set_new(d->set, id, json_true());
}

static void cs_key(const cs_dedupe_t *d, const char *id, char *key, size_t size)
{
    snprintf(key, size, "%s:paged:%s", d->ns, id);
}

/* One command, reconnecting once if the connection went stale (a Redis restart leaves
 * the old socket half-open: the first command on it fails). */
static redisReply *cs_command(cs_redis_t *redis, int argc, const char **argv,
                              char *errstr, size_t errstr_size)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!cs_redis_connected(redis) &&
            cs_redis_connect(redis, errstr, errstr_size) != CS_OK)
            return NULL;
        redisReply *r = cs_redis_command(redis, argc, argv, NULL, errstr, errstr_size);
        if (r)
            return r;
    }
    return NULL;
}

int cs_dedupe_seen(cs_dedupe_t *d, const char *alert_id, char *errstr, size_t errstr_size)
{
    if (json_object_get(d->set, alert_id))
        return 1;
    char key[200];
    cs_key(d, alert_id, key, sizeof(key));
    const char *argv[] = {"EXISTS", key};
    redisReply *r = cs_command(d->redis, 2, argv, errstr, errstr_size);
    if (!r)
        return CS_ERR_RETRY;
    int seen = CS_ERR_RETRY;
    if (r->type == REDIS_REPLY_INTEGER)
        seen = r->integer > 0;
    else
        snprintf(errstr, errstr_size, "redis EXISTS: %.200s",
                 r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    freeReplyObject(r);
    if (seen == 1)
        cs_cache_add(d, alert_id);
    return seen;
}

static int cs_record(const cs_dedupe_t *d, cs_redis_t *redis, const char *alert_id,
                     char *errstr, size_t errstr_size)
{
    char key[200];
    cs_key(d, alert_id, key, sizeof(key));
    const char *argv[] = {"SET", key, "1", "EX", d->ttl};
    redisReply *r = cs_command(redis, 5, argv, errstr, errstr_size);
    int ok = r && r->type == REDIS_REPLY_STATUS;
    if (r && !ok)
        snprintf(errstr, errstr_size, "%.200s",
                 r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    if (r)
        freeReplyObject(r);
    return ok;
}

int cs_dedupe_record(const cs_dedupe_t *d, cs_redis_t *redis, const char *alert_id)
{
    char errstr[256];
    return cs_record(d, redis, alert_id, errstr, sizeof(errstr));
}

void cs_dedupe_remember_local(cs_dedupe_t *d, const char *alert_id)
{
    cs_cache_add(d, alert_id);
}

cs_err_t cs_dedupe_remember(cs_dedupe_t *d, const char *alert_id)
{
    char errstr[256];
    cs_cache_add(d, alert_id);
    if (!d->nwaiting && cs_record(d, d->redis, alert_id, errstr, sizeof(errstr)))
        return CS_OK;
    if (d->nwaiting == d->waiting_cap) {
        size_t cap = d->waiting_cap ? d->waiting_cap * 2 : 64;
        void *grown = realloc(d->waiting, cap * CS_ID_LEN);
        if (!grown)
            return CS_ERR_NOMEM;
        d->waiting = grown;
        d->waiting_cap = cap;
    }
    if (!d->nwaiting)
        cs_log_warn("redis cannot record paged alerts: kept in memory, written when it "
                    "answers",
                    "{s:s}", "error", errstr);
    snprintf(d->waiting[d->nwaiting++], CS_ID_LEN, "%s", alert_id);
    return CS_ERR_RETRY;
}

size_t cs_dedupe_flush(cs_dedupe_t *d)
{
    char errstr[256];
    size_t done = 0;
    if (!d->nwaiting)
        return 0; /* the common case; d->waiting may not even exist yet */
    while (done < d->nwaiting &&
           cs_record(d, d->redis, d->waiting[done], errstr, sizeof(errstr)))
        done++;
    memmove(d->waiting, d->waiting + done, (d->nwaiting - done) * CS_ID_LEN);
    d->nwaiting -= done;
    if (done && !d->nwaiting)
        cs_log_info("redis took the paged-alert records kept in memory", "{s:I}",
                    "records", (json_int_t)done);
    return d->nwaiting;
}
