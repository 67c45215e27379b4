/* caresignal scoring, layout 1 (docs/contract/redis-layout.md): per subject a state
 * hash, an events sorted set and seen sets of event keys by month, written by
 * lib/risk.lua. The function calls and the reader. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caresignal/timeutil.h"
#include "score_internal.h"

#define CS_EVENT_ARGS 11

cs_err_t cs_v1_add_call(cs_scorer_t *s, cs_redis_pipe_t *pipe,
                       const cs_score_input_t *in, size_t n)
{
    if (n == 0)
        return CS_OK;
    const cs_intel_event_t *first = in[0].ev;
    char subject[CS_SUBJECT_KEY_MAX];
    cs_subject_key(first->subject_kind, first->subject_id, subject, sizeof(subject));

    /* KEYS: state, events, one seen set per distinct month; ARGV: kind, n, events.
     * All formatted arguments go into one buffer: at most 128 bytes an event (numbers)
     * and 256 a key. */
    char(*months)[8] = calloc(n, sizeof(*months));
    int nmonths = 0;
    int *month_of = calloc(n, sizeof(int));
    size_t argc = 3 + 2 + n + 2 + n * CS_EVENT_ARGS;
    const char **argv = calloc(argc, sizeof(*argv));
    char *text = calloc(n * 128 + (2 + n) * 256 + 64, 1);
    if (!months || !month_of || !argv || !text) {
        free(months);
        free(month_of);
        free(argv);
        free(text);
        return CS_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const cs_intel_event_t *e = in[i].ev;
        if (e->subject_kind != first->subject_kind ||
            strcmp(e->subject_id, first->subject_id)) {
            free(months);
            free(month_of);
            free(argv);
            free(text);
            return CS_ERR_INVALID_ARG;
        }
        char m[8];
        cs_time_month(e->occurred_at, m, sizeof(m));
        int k;
        for (k = 0; k < nmonths && strcmp(months[k], m); k++)
            ;
        if (k == nmonths)
            memcpy(months[nmonths++], m, 8);
        month_of[i] = k;
    }
    size_t c = 0;
    char *p = text;
    argv[c++] = "FCALL";
    argv[c++] = s->function;
    argv[c++] = p;
    p += sprintf(p, "%d", 2 + nmonths) + 1;
    argv[c++] = p;
    cs_scorer_state_key(s, subject, p, 256);
    p += strlen(p) + 1;
    argv[c++] = p;
    snprintf(p, 256, "%s:{%s}:events", s->ns, subject);
    p += strlen(p) + 1;
    for (int k = 0; k < nmonths; k++) {
        argv[c++] = p;
        p += sprintf(p, "%s:{%s}:seen:%s", s->ns, subject, months[k]) + 1;
    }
    argv[c++] = first->subject_kind == CS_SUBJECT_LOCATION ? "0" : "1";
    argv[c++] = p;
    p += sprintf(p, "%zu", n) + 1;
    for (size_t i = 0; i < n; i++) {
        const cs_intel_event_t *e = in[i].ev;
        argv[c++] = e->event_key;
        argv[c++] = p;
        p += sprintf(p, "%d", (int)e->signal) + 1;
        argv[c++] = p;
        p += sprintf(p, "%d", (int)e->severity) + 1;
        argv[c++] = p;
        p += sprintf(p, "%d", (int)e->area) + 1;
        argv[c++] = p;
        p += sprintf(p, "%lld", (long long)e->occurred_at) + 1;
        argv[c++] = p;
        p += sprintf(p, "%.17g", cs_rules_weight(s->rules, e->signal, e->severity)) + 1;
        argv[c++] =
            cs_rules_is_immediate(s->rules, e->signal, e->severity, e->area) ? "1" : "0";
        argv[c++] = s->rules->assurance[e->signal] ? "1" : "0";
        argv[c++] = p;
        p += sprintf(p, "%d", (int)in[i].partition) + 1;
        argv[c++] = p;
        p += sprintf(p, "%lld", (long long)in[i].offset) + 1;
        argv[c++] = p;
        p += sprintf(p, "%d", 3 + month_of[i]) + 1;
    }
    cs_err_t err = cs_redis_pipe_add(pipe, (int)c, argv, NULL);
    free(months);
    free(month_of);
    free(argv);
    free(text);
    return err;
}

/* ------------------------------------------------------------------ reading */

enum {
    F_SCORE,
    F_AS_OF,
    F_LEVEL,
    F_LEVEL_SINCE,
    F_IMM_AT,
    F_TOTAL,
    F_ASSURANCE,
    F_DUPLICATES,
    F_LAST_PARTITION,
    F_LAST_OFFSET,
    F_AREA,
    F_LAST_ALERT = F_AREA + CS_AREA_COUNT,
    F_PENDING,
    F_COUNT
};
static const char *const cs_state_fields[F_COUNT] = {"score",
                                                     "as_of",
                                                     "level",
                                                     "level_since",
                                                     "imm_at",
                                                     "events_total",
                                                     "assurance",
                                                     "duplicates",
                                                     "last_partition",
                                                     "last_offset",
                                                     "area.SAFE_CARE",
                                                     "area.STAFFING",
                                                     "area.PROTECTION_FROM_ABUSE",
                                                     "area.ASSURANCE",
                                                     "last_alert",
                                                     "pending_alerts"};

/* How many months back from as_of's the read looks for seen sets: a set lives seen_ttl
 * after its last write, so its month can start up to seen_ttl + a month before as_of. */
static int cs_view_months(const cs_scorer_t *s)
{
    return (int)(s->rules->seen_ttl_s / (28 * 86400)) + 2;
}

static const char *cs_field(const redisReply *h, int f)
{
    const redisReply *x = h->element[f];
    return x->type == REDIS_REPLY_STRING ? x->str : NULL;
}

static long long cs_field_ll(const redisReply *h, int f)
{
    const char *v = cs_field(h, f);
    return v ? strtoll(v, NULL, 10) : 0;
}

static double cs_field_double(const redisReply *h, int f)
{
    const char *v = cs_field(h, f);
    return v ? strtod(v, NULL) : 0;
}

/* Fills \p v from the state hash \p h and the event list \p z. */
static cs_err_t cs_view_fill(const cs_scorer_t *s, const redisReply *h,
                             const redisReply *z, cs_subject_view_t *v)
{
    if (h->type != REDIS_REPLY_ARRAY || h->elements != F_COUNT ||
        z->type != REDIS_REPLY_ARRAY)
        return CS_ERR_REDIS;
    v->exists = cs_field(h, F_AS_OF) != NULL;
    if (!v->exists)
        return CS_OK;
    v->score = cs_field_double(h, F_SCORE);
    v->as_of = cs_field_ll(h, F_AS_OF);
    for (int a = 0; a < CS_AREA_COUNT; a++)
        v->area_scores[a] = cs_field_double(h, F_AREA + a);
    const char *level = cs_field(h, F_LEVEL);
    int l = level ? cs_enum_index(cs_level_names, CS_LEVEL_COUNT, level) : 0;
    v->level = l < 0 ? CS_LEVEL_NONE : (cs_level_t)l;
    v->level_since = cs_field_ll(h, F_LEVEL_SINCE);
    v->has_immediate = cs_field(h, F_IMM_AT) != NULL;
    v->immediate_at = cs_field_ll(h, F_IMM_AT);
    v->events_total = cs_field_ll(h, F_TOTAL);
    v->assurance = cs_field_ll(h, F_ASSURANCE);
    v->duplicates = cs_field_ll(h, F_DUPLICATES);
    v->has_position = cs_field(h, F_LAST_PARTITION) != NULL;
    v->last_partition = (int32_t)cs_field_ll(h, F_LAST_PARTITION);
    v->last_offset = cs_field_ll(h, F_LAST_OFFSET);
    const char *last = cs_field(h, F_LAST_ALERT);
    if (last) {
        if (cs_scorer_parse_alert(s, last, strlen(last), v->kind, v->subject_id, NULL, 0,
                           &v->last_alert))
            return CS_ERR_REDIS;
        v->has_last_alert = 1;
    }
    const char *pending = cs_field(h, F_PENDING);
    if (pending) {
        json_t *j = json_loads(pending, 0, NULL);
        v->npending = json_is_array(j) ? (int)json_array_size(j) : 0;
        json_decref(j);
    }
    if (z->elements) {
        v->events = calloc(z->elements / 2, sizeof(*v->events));
        if (!v->events)
            return CS_ERR_NOMEM;
    }
    for (size_t k = 0; k + 1 < z->elements; k += 2) {
        cs_recent_event_t *e = &v->events[v->nevents];
        int sig, sev;
        if (z->element[k]->type != REDIS_REPLY_STRING ||
            sscanf(z->element[k]->str, "%199s %d %d", e->event_key, &sig, &sev) != 3 ||
            sig < 0 || sig >= CS_SIGNAL_COUNT || sev < 0 || sev >= CS_SEVERITY_COUNT)
            return CS_ERR_REDIS;
        e->signal = (cs_signal_t)sig;
        e->severity = (cs_severity_t)sev;
        e->occurred_at = strtoll(z->element[k + 1]->str, NULL, 10);
        v->nevents++;
    }
    return CS_OK;
}

/* The month \p back months before the month of \p ms, as YYYY-MM. */
static void cs_month_back(int64_t ms, int back, char out[8])
{
    char m[8];
    cs_time_month(ms, m, sizeof(m));
    int y = atoi(m), mo = atoi(m + 5) - 1 - back;
    while (mo < 0) {
        mo += 12;
        y--;
    }
    snprintf(out, 8, "%04d-%02d", y % 10000, mo + 1);
}

cs_err_t cs_v1_read(const cs_scorer_t *s, cs_redis_t *redis, const char *const *subjects,
                    size_t n, cs_subject_view_t *out, char *errstr, size_t errstr_size)
{
    cs_redis_pipe_t *p = cs_redis_pipe_new();
    if (!p)
        return CS_ERR_NOMEM;
    char skey[256], ekey[256];
    for (size_t i = 0; i < n; i++) {
        cs_scorer_state_key(s, subjects[i], skey, sizeof(skey));
        snprintf(ekey, sizeof(ekey), "%s:{%s}:events", s->ns, subjects[i]);
        const char *hm[2 + F_COUNT] = {"HMGET", skey};
        memcpy(hm + 2, cs_state_fields, sizeof(cs_state_fields));
        const char *zr[] = {"ZREVRANGE", ekey, "0", "-1", "WITHSCORES"};
        cs_redis_pipe_add(p, 2 + F_COUNT, hm, NULL);
        cs_redis_pipe_add(p, 5, zr, NULL);
    }
    cs_err_t err = cs_redis_pipe_exec(redis, p, errstr, errstr_size);
    for (size_t i = 0; !err && i < n; i++) {
        err = cs_view_fill(s, cs_redis_pipe_reply(p, 2 * i),
                           cs_redis_pipe_reply(p, 2 * i + 1), &out[i]);
        if (err == CS_ERR_REDIS) {
            const redisReply *h = cs_redis_pipe_reply(p, 2 * i);
            snprintf(errstr, errstr_size, "subject %s: %s", subjects[i],
                     h->type == REDIS_REPLY_ERROR ? h->str : "unexpected state");
        }
    }
    /* the months whose seen sets can still be there */
    cs_redis_pipe_reset(p);
    const int nmonths = cs_view_months(s);
    for (size_t i = 0; !err && i < n; i++)
        for (int b = 0; out[i].exists && b < nmonths; b++) {
            char m[8], key[300];
            cs_month_back(out[i].as_of, b, m);
            snprintf(key, sizeof(key), "%s:{%s}:seen:%s", s->ns, subjects[i], m);
            const char *sc[] = {"SCARD", key};
            cs_redis_pipe_add(p, 2, sc, NULL);
        }
    if (!err && cs_redis_pipe_count(p))
        err = cs_redis_pipe_exec(redis, p, errstr, errstr_size);
    size_t r = 0;
    for (size_t i = 0; !err && i < n; i++) {
        if (!out[i].exists)
            continue;
        out[i].months = calloc((size_t)nmonths, sizeof(*out[i].months));
        if (!out[i].months) {
            err = CS_ERR_NOMEM;
            break;
        }
        for (int b = nmonths - 1; b >= 0; b--) {
            const redisReply *c = cs_redis_pipe_reply(p, r + (size_t)b);
            if (c->type == REDIS_REPLY_INTEGER && c->integer > 0) {
                cs_subject_month_t *m = &out[i].months[out[i].nmonths++];
                cs_month_back(out[i].as_of, b, m->month);
                m->event_keys = c->integer;
            }
        }
        r += (size_t)nmonths;
    }
    cs_redis_pipe_destroy(p);
    return err; /* the caller releases the views on failure */
}
