/* caresignal scoring: the generated Lua library, the calls and reply parsing, reading
 * a subject — whatever the state's layout (lib/score_v1.c, lib/score_v2.c). */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "score_internal.h"

/* the functions of the two layouts, embedded at build time */
extern const char cs_risk_lua[];        /* lib/risk.lua: layout 1 */
extern const char cs_risk_v2_lua[];     /* lib/risk_v2.lua: layout 2 */
extern const char cs_risk_common_lua[]; /* lib/risk_common.lua: what both share */

/* A growing text buffer for the generated prelude. */
typedef struct cs_text {
    char *s;
    size_t len, cap;
} cs_text_t;

static void cs_text_add(cs_text_t *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void cs_text_add(cs_text_t *t, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n =
            vsnprintf(t->s ? t->s + t->len : NULL, t->s ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (t->s && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = (t->cap ? t->cap : 1024) * 2;
        while (cap < t->len + (size_t)n + 1)
            cap *= 2;
        char *grown = realloc(t->s, cap);
        if (!grown)
            return;
        t->s = grown;
        t->cap = cap;
    }
}

cs_scorer_t *cs_scorer_new(const cs_rules_t *rules, const char *ns, char *errstr,
                           size_t errstr_size)
{
    return cs_scorer_new_layout(rules, ns, 1, errstr, errstr_size);
}

cs_scorer_t *cs_scorer_new_layout(const cs_rules_t *rules, const char *ns, int layout,
                                  char *errstr, size_t errstr_size)
{
    if (layout != 1 && layout != 2) {
        snprintf(errstr, errstr_size, "config key 'state.layout': must be 1 or 2");
        return NULL;
    }
    for (const char *p = ns; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' || *p == '.')) {
            snprintf(
                errstr, errstr_size,
                "config key 'state.namespace': use letters, digits, '_', '-' or '.'");
            return NULL;
        }
    if (!*ns || strlen(ns) >= 100) {
        snprintf(errstr, errstr_size,
                 "config key 'state.namespace': must be 1 to 99 characters");
        return NULL;
    }
    cs_scorer_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->rules = rules;
    s->layout = layout;
    snprintf(s->ns, sizeof(s->ns), "%s", ns);
    /* layout 2's names carry its number: a library of one layout never replaces the
     * other's */
    const char *v = layout == 2 ? "v2_" : "";
    snprintf(s->function, sizeof(s->function), "cs_apply_%s%s", v, rules->digest);
    snprintf(s->ack_function, sizeof(s->ack_function), "cs_ack_%s%s", v, rules->digest);
    snprintf(s->cas_function, sizeof(s->cas_function), "cs_cas_%s%s", v, rules->digest);

    /* Every number the function uses comes from the rules file, written here as a Lua
     * table R in front of lib/risk_common.lua and lib/risk.lua (lib/risk_v2.lua). */
    cs_text_t t = {0};
    cs_text_add(&t, "#!lua name=caresignal_%s%s\n", v, rules->digest);
    cs_text_add(&t, "-- generated from rules version %s\n", rules->version);
    cs_text_add(&t,
                "local FN_NAME = '%s'\nlocal ACK_NAME = '%s'\nlocal CAS_NAME = '%s'\n",
                s->function, s->ack_function, s->cas_function);
    cs_text_add(&t, "local R = {\n  half_life = %.17g, hold = %lld, window = %lld,\n",
                rules->half_life_ms, (long long)rules->hold_ms,
                (long long)rules->window_ms);
    cs_text_add(&t, "  events_max = %d, recent_max = %d, seen_ttl = %lld,\n",
                rules->events_max, rules->recent_max, (long long)rules->seen_ttl_s);
    cs_text_add(&t, "  levels = {\n");
    for (int k = 0; k < CS_SUBJECT_COUNT; k++) {
        const cs_rules_levels_t *l = &rules->levels[k];
        cs_text_add(&t,
                    "    [%d] = {watch_raise = %.17g, watch_clear = %.17g, inspect_raise "
                    "= %.17g, "
                    "inspect_clear = %.17g},\n",
                    k, l->watch_raise, l->watch_clear, l->inspect_raise,
                    l->inspect_clear);
    }
    cs_text_add(&t, "  },\n  area_fields = {");
    for (int a = 0; a < CS_AREA_COUNT; a++)
        cs_text_add(&t, "%s'area.%s'", a ? ", " : "", cs_area_names[a]);
    cs_text_add(&t, "},\n}\n%s\n%s", cs_risk_common_lua,
                layout == 2 ? cs_risk_v2_lua : cs_risk_lua);
    if (!t.s) {
        free(s);
        return NULL;
    }
    s->library = t.s;
    return s;
}

void cs_scorer_destroy(cs_scorer_t *s)
{
    if (!s)
        return;
    free(s->library);
    free(s);
}

const char *cs_scorer_library(const cs_scorer_t *s)
{
    return s->library;
}

const char *cs_scorer_function(const cs_scorer_t *s)
{
    return s->function;
}

const char *cs_scorer_cas_function(const cs_scorer_t *s)
{
    return s->cas_function;
}

void cs_scorer_state_key(const cs_scorer_t *s, const char *subject_key, char *out,
                         size_t size)
{
    snprintf(out, size, "%s:{%s}:state", s->ns, subject_key);
}

void cs_scorer_rank_key(const cs_scorer_t *s, cs_subject_kind_t kind, char *out,
                        size_t size)
{
    snprintf(out, size, "%s:rank:%s", s->ns, cs_subject_kind_names[kind]);
}

void cs_scorer_rank_key_shard(const cs_scorer_t *s, cs_subject_kind_t kind, int shard,
                              char *out, size_t size)
{
    if (shard < 0)
        cs_scorer_rank_key(s, kind, out, size);
    else
        snprintf(out, size, "%s:rank:{%s:%d}", s->ns, cs_subject_kind_names[kind], shard);
}

int cs_scorer_rank_shard(const char *subject_key)
{
    return (int)(cs_cluster_key_slot(subject_key, strlen(subject_key)) % CS_RANK_SHARDS);
}

typedef struct cs_ranked {
    double rank;
    char *subject;
} cs_ranked_t;

/* ZREVRANGE's order: rank high to low, then the member bytewise high to low */
static int cs_ranked_cmp(const void *a, const void *b)
{
    const cs_ranked_t *x = a, *y = b;
    if (x->rank != y->rank)
        return x->rank > y->rank ? -1 : 1;
    return -strcmp(x->subject, y->subject);
}

cs_err_t cs_scorer_top(const cs_scorer_t *s, cs_redis_t *redis, cs_subject_kind_t kind,
                       long n, char ***subjects, size_t *count, char *errstr,
                       size_t errstr_size)
{
    *subjects = NULL;
    *count = 0;
    int shards = cs_redis_is_cluster(redis) ? CS_RANK_SHARDS : 1;
    cs_ranked_t *all = NULL;
    size_t nall = 0;
    cs_err_t err = CS_OK;
    char last[32];
    snprintf(last, sizeof(last), "%ld", n - 1);
    for (int sh = 0; sh < shards && !err; sh++) {
        char key[256];
        cs_scorer_rank_key_shard(s, kind, shards > 1 ? sh : -1, key, sizeof(key));
        const char *argv[] = {"ZREVRANGE", key, "0", last, "WITHSCORES"};
        redisReply *r = cs_redis_command(redis, 5, argv, NULL, errstr, errstr_size);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements % 2) {
            if (r)
                snprintf(errstr, errstr_size, "%s: %s", key,
                         r->type == REDIS_REPLY_ERROR ? r->str : "not a sorted set");
            err = r ? CS_ERR_REDIS : CS_ERR_RETRY;
        } else {
            cs_ranked_t *grown =
                realloc(all, (nall + r->elements / 2 + 1) * sizeof(*grown));
            if (!grown) {
                err = CS_ERR_NOMEM;
            } else {
                all = grown;
                for (size_t i = 0; i + 1 < r->elements && !err; i += 2) {
                    const char *sc = r->element[i + 1]->str;
                    all[nall].rank = !strcmp(sc, "-inf") ? -INFINITY : strtod(sc, NULL);
                    if (!(all[nall].subject = strdup(r->element[i]->str)))
                        err = CS_ERR_NOMEM;
                    else
                        nall++;
                }
            }
        }
        if (r)
            freeReplyObject(r);
    }
    if (!err && nall) {
        qsort(all, nall, sizeof(*all), cs_ranked_cmp);
        size_t keep = nall < (size_t)n ? nall : (size_t)n;
        if (!(*subjects = calloc(keep, sizeof(**subjects)))) {
            err = CS_ERR_NOMEM;
        } else {
            for (size_t i = 0; i < keep; i++) {
                (*subjects)[i] = all[i].subject;
                all[i].subject = NULL;
            }
            *count = keep;
        }
    }
    for (size_t i = 0; i < nall; i++)
        free(all[i].subject);
    free(all);
    return err;
}

void cs_scorer_pos_key(const cs_scorer_t *s, const char *topic, int32_t partition,
                       char *out, size_t size)
{
    snprintf(out, size, "%s:pos:%s:%d", s->ns, topic, (int)partition);
}

void cs_scorer_pos_key_on(const cs_scorer_t *s, const char *tag, const char *topic,
                          int32_t partition, char *out, size_t size)
{
    if (!tag)
        cs_scorer_pos_key(s, topic, partition, out, size);
    else
        snprintf(out, size, "%s:pos:{%s}:%s:%d", s->ns, tag, topic, (int)partition);
}

double cs_scorer_rank_value(const cs_scorer_t *s, double score, int64_t as_of)
{
    if (!(score > 0))
        return -INFINITY;
    return log2(score) + (double)as_of / s->rules->half_life_ms;
}

double cs_scorer_decay(const cs_rules_t *rules, double score, int64_t as_of, int64_t now)
{
    if (now <= as_of)
        return score;
    return score * exp2(-(double)(now - as_of) / rules->half_life_ms);
}

/* ------------------------------------------------------------------ calls */

cs_err_t cs_scorer_add_call(cs_scorer_t *s, cs_redis_pipe_t *pipe,
                            const cs_score_input_t *in, size_t n)
{
    if (n == 0)
        return CS_OK;
    return s->layout == 2 ? cs_v2_add_call(s, pipe, in, n)
                          : cs_v1_add_call(s, pipe, in, n);
}

int cs_scorer_layout(const cs_scorer_t *s)
{
    return s->layout;
}

cs_err_t cs_scorer_set_compute(cs_scorer_t *s, int on, char *errstr, size_t errstr_size)
{
    if (on && s->layout != 2) {
        snprintf(errstr, errstr_size,
                 "config key 'state.engine': 'scorer' needs state.layout 2");
        return CS_ERR_INVALID_ARG;
    }
    s->computes = on != 0;
    return CS_OK;
}

int cs_scorer_computes(const cs_scorer_t *s)
{
    return s->computes;
}

cs_err_t cs_scorer_compute(const cs_scorer_t *s, const redisReply *state,
                           const cs_score_input_t *in, size_t n, unsigned char **value,
                           size_t *value_len, cs_score_outcome_t *out, char *errstr,
                           size_t errstr_size)
{
    *value = NULL;
    *value_len = 0;
    memset(out, 0, sizeof(*out));
    if (n == 0)
        return CS_OK;
    if (s->layout != 2) {
        snprintf(errstr, errstr_size, "only layout 2 is computed in the scorer");
        return CS_ERR_INVALID_ARG;
    }
    return cs_v2_compute(s, state, in, n, value, value_len, out, errstr, errstr_size);
}

cs_err_t cs_scorer_compute_ack(const cs_scorer_t *s, const redisReply *state,
                               const cs_alert_t *alerts, size_t n, unsigned char **value,
                               size_t *value_len, int *removed, char *errstr,
                               size_t errstr_size)
{
    *value = NULL;
    *value_len = 0;
    *removed = 0;
    if (s->layout != 2) {
        snprintf(errstr, errstr_size, "only layout 2 is computed in the scorer");
        return CS_ERR_INVALID_ARG;
    }
    return cs_v2_compute_ack(state, alerts, n, value, value_len, removed, errstr,
                             errstr_size);
}

/* ------------------------------------------------------------------ namespaces */

static void cs_layout_key(const cs_scorer_t *s, char *out, size_t size)
{
    snprintf(out, size, "%s:layout", s->ns);
}

/* The layout recorded in `<ns>:layout` into \p had (0: none recorded). */
static cs_err_t cs_layout_recorded(const cs_scorer_t *s, cs_redis_t *redis, int *had,
                                   char *errstr, size_t errstr_size)
{
    char key[160];
    cs_layout_key(s, key, sizeof(key));
    const char *get[] = {"GET", key};
    redisReply *r = cs_redis_command(redis, 2, get, NULL, errstr, errstr_size);
    if (!r)
        return CS_ERR_RETRY;
    cs_err_t err = CS_OK;
    if (r->type == REDIS_REPLY_NIL)
        *had = 0;
    else if (r->type == REDIS_REPLY_STRING &&
             (!strcmp(r->str, "1") || !strcmp(r->str, "2")))
        *had = r->str[0] - '0';
    else {
        snprintf(errstr, errstr_size, "%s: %s", key,
                 r->type == REDIS_REPLY_ERROR ? r->str : "not a layout number (1 or 2)");
        err = CS_ERR_REDIS;
    }
    freeReplyObject(r);
    return err;
}

cs_err_t cs_scorer_namespace_layout(const cs_scorer_t *s, cs_redis_t *redis, int *layout,
                                    char *errstr, size_t errstr_size)
{
    cs_err_t err = cs_layout_recorded(s, redis, layout, errstr, errstr_size);
    if (!err && !*layout)
        *layout = 1; /* namespaces from before layout 2 have no record */
    return err;
}

cs_err_t cs_scorer_claim(const cs_scorer_t *s, cs_redis_t *redis, char *errstr,
                         size_t errstr_size)
{
    char key[160];
    cs_layout_key(s, key, sizeof(key));
    int had;
    cs_err_t err = cs_layout_recorded(s, redis, &had, errstr, errstr_size);
    if (err) /* a record that is not a layout: the program says so and stops */
        return err == CS_ERR_REDIS ? CS_ERR_FATAL : err;
    redisReply *r;
    if (!had) {
        /* no record: a namespace of layout 1 from before the record, or a new one */
        char pattern[160], cursor[32] = "0";
        snprintf(pattern, sizeof(pattern), "%s:{*}:state", s->ns);
        for (int step = 0; step < 64 && !had; step++) {
            const char *scan[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"};
            r = cs_redis_command(redis, 6, scan, NULL, errstr, errstr_size);
            if (!r)
                return CS_ERR_RETRY;
            if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
                r->element[1]->type == REDIS_REPLY_ARRAY) {
                snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
                /* layout 2 always records itself: state without a record is layout 1 */
                if (r->element[1]->elements)
                    had = 1;
            }
            freeReplyObject(r);
            if (!strcmp(cursor, "0"))
                break;
        }
        /* record what is there (or, in a new namespace, what we write), then look again:
         * another writer may have claimed it first */
        char mark[4];
        snprintf(mark, sizeof(mark), "%d", had ? had : s->layout);
        const char *set[] = {"SET", key, mark, "NX"};
        r = cs_redis_command(redis, 4, set, NULL, errstr, errstr_size);
        if (!r)
            return CS_ERR_RETRY;
        if (r->type == REDIS_REPLY_ERROR) {
            snprintf(errstr, errstr_size, "redis refused %s: %.200s", key, r->str);
            freeReplyObject(r);
            return CS_ERR_RETRY;
        }
        freeReplyObject(r);
        return cs_scorer_claim(s, redis, errstr, errstr_size);
    }
    if (had != s->layout) {
        snprintf(
            errstr, errstr_size,
            "config key 'state.layout': namespace '%s' holds layout %d state, not %d: "
            "rebuild it into a new namespace to change layouts (README)",
            s->ns, had, s->layout);
        return CS_ERR_INVALID_ARG;
    }
    return CS_OK;
}

cs_err_t cs_scorer_add_ack(cs_scorer_t *s, cs_redis_pipe_t *pipe,
                           const cs_alert_t *alerts, size_t n)
{
    if (n == 0)
        return CS_OK;
    char subject[CS_SUBJECT_KEY_MAX], key[256];
    cs_subject_key(alerts[0].subject_kind, alerts[0].subject_id, subject,
                   sizeof(subject));
    cs_scorer_state_key(s, subject, key, sizeof(key));
    const char **argv = calloc(n + 4, sizeof(*argv));
    char *ids = calloc(n, 256);
    if (!argv || !ids) {
        free(argv);
        free(ids);
        return CS_ERR_NOMEM;
    }
    argv[0] = "FCALL";
    argv[1] = s->ack_function;
    argv[2] = "1";
    argv[3] = key;
    for (size_t i = 0; i < n; i++) {
        snprintf(ids + i * 256, 256, "%s|%s|%s", cs_alert_kind_names[alerts[i].kind],
                 cs_level_names[alerts[i].level], alerts[i].triggered_by);
        argv[4 + i] = ids + i * 256;
    }
    cs_err_t err = cs_redis_pipe_add(pipe, (int)n + 4, argv, NULL);
    free(argv);
    free(ids);
    return err;
}

/* ------------------------------------------------------------------ replies */

static int cs_reply_double(const redisReply *r, double *out)
{
    if (r->type != REDIS_REPLY_STRING)
        return -1;
    char *end;
    *out = strtod(r->str, &end);
    return *end ? -1 : 0;
}

static int cs_json_number(const json_t *v, double *out)
{
    if (json_is_string(v)) {
        char *end;
        *out = strtod(json_string_value(v), &end);
        return *end ? -1 : 0;
    }
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return 0;
    }
    return -1;
}

static const char *cs_jstring(const json_t *j, const char *key)
{
    const char *s = json_string_value(json_object_get(j, key));
    return s ? s : "";
}

cs_err_t cs_scorer_parse_alert(const cs_scorer_t *s, const char *text, size_t len,
                               cs_subject_kind_t subject_kind, const char *subject_id,
                               const cs_score_input_t *in, size_t n, cs_alert_t *a)
{
    json_t *j = json_loadb(text, len, 0, NULL);
    if (!j)
        return CS_ERR_REDIS;
    memset(a, 0, sizeof(*a));
    a->subject_kind = subject_kind;
    snprintf(a->subject_id, sizeof(a->subject_id), "%s", subject_id);
    int kind =
        cs_enum_index(cs_alert_kind_names, CS_ALERT_KIND_COUNT, cs_jstring(j, "kind"));
    int level = cs_enum_index(cs_level_names, CS_LEVEL_COUNT, cs_jstring(j, "level"));
    int prev =
        cs_enum_index(cs_level_names, CS_LEVEL_COUNT, cs_jstring(j, "previous_level"));
    int reason = cs_enum_index(cs_reason_names, CS_REASON_COUNT, cs_jstring(j, "reason"));
    const char *trig = json_string_value(json_object_get(j, "triggered_by"));
    double as_of;
    json_t *areas = json_object_get(j, "area_scores");
    cs_err_t err = CS_ERR_REDIS;
    if (kind < 0 || level < 0 || prev < 0 || reason < 0 || !trig ||
        cs_json_number(json_object_get(j, "score"), &a->score) ||
        cs_json_number(json_object_get(j, "as_of"), &as_of) || !json_is_array(areas) ||
        json_array_size(areas) != CS_AREA_COUNT)
        goto done;
    a->kind = (cs_alert_kind_t)kind;
    a->level = (cs_level_t)level;
    a->previous_level = (cs_level_t)prev;
    a->reason = (cs_reason_t)reason;
    a->as_of = llround(as_of);
    snprintf(a->triggered_by, sizeof(a->triggered_by), "%s", trig);
    for (int i = 0; i < CS_AREA_COUNT; i++)
        if (cs_json_number(json_array_get(areas, (size_t)i), &a->area_scores[i]))
            goto done;
    json_t *recent = json_object_get(j, "recent"); /* cjson writes an empty list as {} */
    size_t i;
    json_t *r;
    json_array_foreach(recent, i, r)
    {
        if (a->nrecent == CS_ALERT_RECENT_MAX)
            break;
        cs_recent_event_t *e = &a->recent[a->nrecent];
        const char *key = json_string_value(json_array_get(r, 0));
        double sig, sev, t;
        if (!key || cs_json_number(json_array_get(r, 1), &sig) ||
            cs_json_number(json_array_get(r, 2), &sev) ||
            cs_json_number(json_array_get(r, 3), &t) || sig < 0 ||
            sig >= CS_SIGNAL_COUNT || sev < 0 || sev >= CS_SEVERITY_COUNT)
            goto done;
        snprintf(e->event_key, sizeof(e->event_key), "%s", key);
        e->signal = (cs_signal_t)sig;
        e->severity = (cs_severity_t)sev;
        e->occurred_at = llround(t);
        a->nrecent++;
    }
    snprintf(a->rules_version, sizeof(a->rules_version), "%s", s->rules->version);
    /* routing attributes from the event that triggered it (it is in this call) */
    const cs_intel_event_t *t = n ? in[0].ev : NULL;
    for (size_t k = 0; k < n; k++)
        if (!strcmp(in[k].ev->event_key, a->triggered_by))
            t = in[k].ev;
    if (t) {
        snprintf(a->region, sizeof(a->region), "%s", t->region);
        snprintf(a->local_authority_code, sizeof(a->local_authority_code), "%s",
                 t->local_authority_code);
    }
    cs_alert_set_id(a);
    err = CS_OK;
done:
    json_decref(j);
    return err;
}

void cs_score_outcome_release(cs_score_outcome_t *out)
{
    if (!out)
        return;
    free(out->alerts);
    out->alerts = NULL;
    out->nalerts = 0;
}

cs_err_t cs_scorer_parse_reply(const cs_scorer_t *s, const redisReply *reply,
                               const cs_score_input_t *in, size_t n,
                               cs_score_outcome_t *out, char *errstr, size_t errstr_size)
{
    memset(out, 0, sizeof(*out));
    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(errstr, errstr_size, "redis FCALL %s: %s", s->function, reply->str);
        return CS_ERR_REDIS;
    }
    /* score, as_of, level, applied, duplicates, redeliveries, regressions, new,
     * re-emitted, then the alerts (lib/risk.lua) */
    enum { HEAD = 9 };
    double as_of;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < HEAD ||
        cs_reply_double(reply->element[0], &out->score) ||
        cs_reply_double(reply->element[1], &as_of) ||
        reply->element[2]->type != REDIS_REPLY_STRING)
        goto malformed;
    for (int i = 3; i < HEAD; i++)
        if (reply->element[i]->type != REDIS_REPLY_INTEGER)
            goto malformed;
    out->as_of = llround(as_of);
    int level = cs_enum_index(cs_level_names, CS_LEVEL_COUNT, reply->element[2]->str);
    if (level < 0)
        goto malformed;
    out->level = (cs_level_t)level;
    out->applied = (int)reply->element[3]->integer;
    out->duplicates = (int)reply->element[4]->integer;
    out->redeliveries = (int)reply->element[5]->integer;
    out->regressions = (int)reply->element[6]->integer;
    int nnew = (int)reply->element[7]->integer;
    out->nreemitted = (int)reply->element[8]->integer;
    out->nalerts = nnew + out->nreemitted;
    if (nnew < 0 || out->nreemitted < 0 || reply->elements != HEAD + (size_t)out->nalerts)
        goto malformed;
    if (out->nalerts) {
        out->alerts = calloc((size_t)out->nalerts, sizeof(cs_alert_t));
        if (!out->alerts) {
            snprintf(errstr, errstr_size, "out of memory");
            return CS_ERR_NOMEM;
        }
    }
    for (int i = 0; i < out->nalerts; i++) {
        const redisReply *r = reply->element[HEAD + i];
        if (r->type != REDIS_REPLY_STRING ||
            cs_scorer_parse_alert(s, r->str, r->len, in[0].ev->subject_kind,
                                  in[0].ev->subject_id, in, n, &out->alerts[i])) {
            cs_score_outcome_release(out);
            goto malformed;
        }
    }
    return CS_OK;
malformed:
    snprintf(errstr, errstr_size, "redis FCALL %s: unexpected reply", s->function);
    return CS_ERR_REDIS;
}

/* ------------------------------------------------------------------ reading */

/* "KIND:id" into \p v's kind and id. @returns 0, or -1 if malformed. */
int cs_view_subject(const char *subject, cs_subject_view_t *v)
{
    const char *colon = strchr(subject, ':');
    if (!colon)
        return -1;
    for (int k = 0; k < CS_SUBJECT_COUNT; k++) {
        size_t len = strlen(cs_subject_kind_names[k]);
        if ((size_t)(colon - subject) != len ||
            strncmp(subject, cs_subject_kind_names[k], len))
            continue;
        const char *id = colon + 1;
        size_t idlen = strlen(id);
        if (!idlen || idlen > CS_ID_MAX || strpbrk(id, "{}: \t\r\n*?[]"))
            return -1;
        v->kind = (cs_subject_kind_t)k;
        memcpy(v->subject_id, id, idlen + 1);
        return 0;
    }
    return -1;
}

cs_err_t cs_scorer_read(const cs_scorer_t *s, cs_redis_t *redis,
                        const char *const *subjects, size_t n, cs_subject_view_t *out,
                        char *errstr, size_t errstr_size)
{
    memset(out, 0, n * sizeof(*out));
    for (size_t i = 0; i < n; i++)
        if (cs_view_subject(subjects[i], &out[i])) {
            snprintf(
                errstr, errstr_size,
                "not a subject: '%.100s' (expected LOCATION:<id> or LOCAL_AREA:<id>)",
                subjects[i]);
            return CS_ERR_INVALID_ARG;
        }
    if (!n)
        return CS_OK;
    int layout;
    cs_err_t err = cs_scorer_namespace_layout(s, redis, &layout, errstr, errstr_size);
    if (err)
        return err;
    err = layout == 2 ? cs_v2_read(s, redis, subjects, n, out, errstr, errstr_size)
                      : cs_v1_read(s, redis, subjects, n, out, errstr, errstr_size);
    if (err) {
        for (size_t i = 0; i < n; i++)
            cs_subject_view_release(&out[i]);
        if (err == CS_ERR_NOMEM)
            snprintf(errstr, errstr_size, "out of memory");
    }
    return err;
}

void cs_subject_view_release(cs_subject_view_t *v)
{
    if (!v)
        return;
    free(v->events);
    free(v->months);
    v->events = NULL;
    v->months = NULL;
    v->nevents = v->nmonths = 0;
}

static int cs_same_double(double a, double b)
{
    return !memcmp(&a, &b, sizeof(a));
}

static int cs_same_recent(const cs_recent_event_t *a, const cs_recent_event_t *b, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(a[i].event_key, b[i].event_key) || a[i].signal != b[i].signal ||
            a[i].severity != b[i].severity || a[i].occurred_at != b[i].occurred_at)
            return 0;
    return 1;
}

static int cs_same_alert(const cs_alert_t *a, const cs_alert_t *b)
{
    if (a->kind != b->kind || a->level != b->level ||
        a->previous_level != b->previous_level || a->reason != b->reason ||
        !cs_same_double(a->score, b->score) || a->as_of != b->as_of ||
        strcmp(a->triggered_by, b->triggered_by) || strcmp(a->alert_id, b->alert_id) ||
        a->nrecent != b->nrecent || !cs_same_recent(a->recent, b->recent, a->nrecent))
        return 0;
    for (int i = 0; i < CS_AREA_COUNT; i++)
        if (!cs_same_double(a->area_scores[i], b->area_scores[i]))
            return 0;
    return 1;
}

int cs_subject_view_equal(const cs_subject_view_t *a, const cs_subject_view_t *b)
{
    if (a->exists != b->exists)
        return 0;
    if (!a->exists)
        return 1;
    if (!cs_same_double(a->score, b->score) || a->as_of != b->as_of ||
        a->level != b->level || a->level_since != b->level_since ||
        a->has_immediate != b->has_immediate ||
        (a->has_immediate && a->immediate_at != b->immediate_at) ||
        a->assurance != b->assurance || a->events_total != b->events_total ||
        a->duplicates != b->duplicates || a->nevents != b->nevents ||
        !cs_same_recent(a->events, b->events, a->nevents) ||
        a->has_last_alert != b->has_last_alert ||
        (a->has_last_alert && !cs_same_alert(&a->last_alert, &b->last_alert)) ||
        a->nmonths != b->nmonths)
        return 0;
    for (int i = 0; i < CS_AREA_COUNT; i++)
        if (!cs_same_double(a->area_scores[i], b->area_scores[i]))
            return 0;
    for (int i = 0; i < a->nmonths; i++)
        if (strcmp(a->months[i].month, b->months[i].month) ||
            a->months[i].event_keys != b->months[i].event_keys)
            return 0;
    return 1;
}

json_t *cs_subject_view_json(const cs_subject_view_t *v)
{
    char subject[CS_SUBJECT_KEY_MAX];
    cs_subject_key(v->kind, v->subject_id, subject, sizeof(subject));
    json_t *j = json_pack("{s:s, s:s, s:s, s:b}", "subject", subject, "subject_kind",
                          cs_subject_kind_names[v->kind], "subject_id", v->subject_id,
                          "exists", v->exists);
    if (!v->exists)
        return j;
    json_t *areas = json_object();
    for (int a = 0; a < CS_AREA_COUNT; a++)
        json_object_set_new(areas, cs_area_names[a], json_real(v->area_scores[a]));
    json_t *months = json_array();
    for (int i = 0; i < v->nmonths; i++)
        json_array_append_new(months, json_pack("{s:s, s:I}", "month", v->months[i].month,
                                                "event_keys",
                                                (json_int_t)v->months[i].event_keys));
    json_t *last = json_null();
    if (v->has_last_alert) {
        last = cs_alert_to_json(&v->last_alert);
        /* not kept in the state: they come from the triggering event and the rules */
        json_object_del(last, "region");
        json_object_del(last, "local_authority_code");
        json_object_del(last, "rules_version");
    }
    json_object_update_new(
        j, json_pack("{s:f, s:I, s:o, s:s, s:o, s:o, s:I, s:I, s:I, s:o, s:o, s:o, s:o, "
                     "s:i, s:o}",
                     "score", v->score, "as_of", (json_int_t)v->as_of, "area_scores",
                     areas, "level", cs_level_names[v->level], "level_since",
                     v->level_since ? json_integer(v->level_since) : json_null(),
                     "immediate_at",
                     v->has_immediate ? json_integer(v->immediate_at) : json_null(),
                     "events_total", (json_int_t)v->events_total, "duplicates",
                     (json_int_t)v->duplicates, "assurance", (json_int_t)v->assurance,
                     "last_partition",
                     v->has_position ? json_integer(v->last_partition) : json_null(),
                     "last_offset",
                     v->has_position ? json_integer(v->last_offset) : json_null(),
                     "events", cs_recent_events_json(v->events, v->nevents), "last_alert",
                     last, "pending_alerts", v->npending, "seen_months", months));
    return j;
}

cs_err_t cs_scorer_scan(const cs_scorer_t *s, cs_redis_t *redis, char cursor[32],
                        char ***subjects, size_t *n, char *errstr, size_t errstr_size)
{
    char pattern[160];
    snprintf(pattern, sizeof(pattern), "%s:{*}:state", s->ns);
    const char *scan[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "500"};
    redisReply *r = cs_redis_command(redis, 6, scan, NULL, errstr, errstr_size);
    if (!r)
        return CS_ERR_RETRY;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[1]->type != REDIS_REPLY_ARRAY) {
        snprintf(errstr, errstr_size, "SCAN: %s",
                 r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        freeReplyObject(r);
        return CS_ERR_REDIS;
    }
    snprintf(cursor, 32, "%s", r->element[0]->str);
    const redisReply *keys = r->element[1];
    char **grown = realloc(*subjects, (*n + keys->elements + 1) * sizeof(char *));
    if (!grown) {
        freeReplyObject(r);
        snprintf(errstr, errstr_size, "out of memory");
        return CS_ERR_NOMEM;
    }
    *subjects = grown;
    size_t skip = strlen(s->ns) + 2; /* "<ns>:{" */
    for (size_t i = 0; i < keys->elements; i++) {
        const char *k = keys->element[i]->str;
        const char *end = strrchr(k, '}');
        if (strlen(k) <= skip || !end || end < k + skip)
            continue;
        grown[*n] = strndup(k + skip, (size_t)(end - k - (ptrdiff_t)skip));
        if (grown[*n])
            (*n)++;
    }
    freeReplyObject(r);
    return CS_OK;
}
