/* Layout 1's engine, for the differential test (score_v1.h). */
#include "score_v1.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caresignal/timeutil.h"

extern const char cs_risk_v1_lua[]; /* tests/support/risk_v1.lua, embedded */

struct cs_v1 {
    const cs_scorer_t *scorer;
    const cs_rules_t *rules;
    char ns[128];
    char function[64], ack_function[64];
    char *library;
};

cs_v1_t *cs_v1_new(const cs_scorer_t *scorer, const cs_rules_t *rules, const char *ns)
{
    /* the rules table R as today's library writes it, plus layout 1's field names */
    const char *lib = cs_scorer_library(scorer);
    const char *r = strstr(lib, "local R = {");
    const char *end = r ? strstr(r, "\n}\n") : NULL;
    cs_v1_t *v = calloc(1, sizeof(*v));
    if (!v || !end)
        return free(v), NULL;
    v->scorer = scorer;
    v->rules = rules;
    snprintf(v->ns, sizeof(v->ns), "%s", ns);
    snprintf(v->function, sizeof(v->function), "cs_apply_%s", rules->digest);
    snprintf(v->ack_function, sizeof(v->ack_function), "cs_ack_%s", rules->digest);
    size_t size = (size_t)(end - r) + strlen(cs_risk_v1_lua) + 1024;
    v->library = malloc(size);
    if (!v->library)
        return free(v), NULL;
    int n = snprintf(v->library, size,
                     "#!lua name=caresignal_%s\nlocal FN_NAME = '%s'\nlocal ACK_NAME = "
                     "'%s'\n%.*s\n  area_fields = {",
                     rules->digest, v->function, v->ack_function, (int)(end - r), r);
    for (int a = 0; a < CS_AREA_COUNT; a++)
        n += snprintf(v->library + n, size - (size_t)n, "%s'area.%s'", a ? ", " : "",
                      cs_area_names[a]);
    snprintf(v->library + n, size - (size_t)n, "},\n}\n%s", cs_risk_v1_lua);
    return v;
}

void cs_v1_destroy(cs_v1_t *v)
{
    if (v)
        free(v->library);
    free(v);
}

const char *cs_v1_library(const cs_v1_t *v)
{
    return v->library;
}

/* The layout-1 keys of a subject */
static void v1_key(const cs_v1_t *v, const char *subject, const char *what, char *out,
                   size_t size)
{
    snprintf(out, size, "%s:{%s}:%s", v->ns, subject, what);
}

#define V1_EVENT_ARGS 11

cs_err_t cs_v1_add_call(cs_v1_t *v, cs_redis_pipe_t *pipe, const cs_score_input_t *in,
                        size_t n)
{
    char subject[CS_SUBJECT_KEY_MAX];
    cs_subject_key(in[0].ev->subject_kind, in[0].ev->subject_id, subject,
                   sizeof(subject));
    /* KEYS: state, events, one seen set per distinct month; ARGV: kind, n, events */
    char(*months)[8] = calloc(n, sizeof(*months));
    int *month_of = calloc(n, sizeof(int));
    const char **argv = calloc(3 + 2 + n + 2 + n * V1_EVENT_ARGS, sizeof(*argv));
    char *text = calloc(n * 128 + (2 + n) * 256 + 64, 1);
    int nmonths = 0;
    cs_err_t err = months && month_of && argv && text ? CS_OK : CS_ERR_NOMEM;
    for (size_t i = 0; !err && i < n; i++) {
        char m[8];
        cs_time_month(in[i].ev->occurred_at, m, sizeof(m));
        int k;
        for (k = 0; k < nmonths && strcmp(months[k], m); k++)
            ;
        if (k == nmonths)
            memcpy(months[nmonths++], m, 8);
        month_of[i] = k;
    }
    size_t c = 0;
    char *p = text;
#define V1_FMT(...) (argv[c++] = p, p += sprintf(p, __VA_ARGS__) + 1)
    if (!err) {
        argv[c++] = "FCALL";
        argv[c++] = v->function;
        V1_FMT("%d", 2 + nmonths);
        argv[c++] = p;
        v1_key(v, subject, "state", p, 256);
        p += strlen(p) + 1;
        argv[c++] = p;
        v1_key(v, subject, "events", p, 256);
        p += strlen(p) + 1;
        for (int k = 0; k < nmonths; k++)
            V1_FMT("%s:{%s}:seen:%s", v->ns, subject, months[k]);
        argv[c++] = in[0].ev->subject_kind == CS_SUBJECT_LOCATION ? "0" : "1";
        V1_FMT("%zu", n);
        for (size_t i = 0; i < n; i++) {
            const cs_intel_event_t *e = in[i].ev;
            argv[c++] = e->event_key;
            V1_FMT("%d", (int)e->signal);
            V1_FMT("%d", (int)e->severity);
            V1_FMT("%d", (int)e->area);
            V1_FMT("%lld", (long long)e->occurred_at);
            V1_FMT("%.17g", cs_rules_weight(v->rules, e->signal, e->severity));
            argv[c++] = cs_rules_is_immediate(v->rules, e->signal, e->severity, e->area)
                            ? "1"
                            : "0";
            argv[c++] = v->rules->assurance[e->signal] ? "1" : "0";
            V1_FMT("%d", (int)in[i].partition);
            V1_FMT("%lld", (long long)in[i].offset);
            V1_FMT("%d", 3 + month_of[i]);
        }
        err = cs_redis_pipe_add(pipe, (int)c, argv, NULL);
    }
#undef V1_FMT
    free(months);
    free(month_of);
    free(argv);
    free(text);
    return err;
}

cs_err_t cs_v1_add_ack(cs_v1_t *v, cs_redis_pipe_t *pipe, const cs_alert_t *alerts,
                       size_t n)
{
    char subject[CS_SUBJECT_KEY_MAX], key[256];
    cs_subject_key(alerts[0].subject_kind, alerts[0].subject_id, subject,
                   sizeof(subject));
    v1_key(v, subject, "state", key, sizeof(key));
    const char **argv = calloc(n + 4, sizeof(*argv));
    char *ids = calloc(n, 256);
    cs_err_t err = CS_ERR_NOMEM;
    if (argv && ids) {
        argv[0] = "FCALL";
        argv[1] = v->ack_function;
        argv[2] = "1";
        argv[3] = key;
        for (size_t i = 0; i < n; i++) {
            snprintf(ids + i * 256, 256, "%s|%s|%s", cs_alert_kind_names[alerts[i].kind],
                     cs_level_names[alerts[i].level], alerts[i].triggered_by);
            argv[4 + i] = ids + i * 256;
        }
        err = cs_redis_pipe_add(pipe, (int)n + 4, argv, NULL);
    }
    free(argv);
    free(ids);
    return err;
}

/* ------------------------------------------------------------------ reading */

static const char *const v1_fields[] = {
    "score",        "as_of",          "level",          "level_since",
    "imm_at",       "events_total",   "assurance",      "duplicates",
    "last_partition", "last_offset",  "area.SAFE_CARE", "area.STAFFING",
    "area.PROTECTION_FROM_ABUSE", "area.ASSURANCE", "last_alert", "pending_alerts"};
enum { V1_NFIELDS = sizeof(v1_fields) / sizeof(v1_fields[0]) };

static const char *v1_field(const redisReply *h, int f)
{
    return h->element[f]->type == REDIS_REPLY_STRING ? h->element[f]->str : NULL;
}

static long long v1_ll(const redisReply *h, int f)
{
    return v1_field(h, f) ? strtoll(v1_field(h, f), NULL, 10) : 0;
}

/* The month \p back months before the month of \p ms, as YYYY-MM. */
static void v1_month_back(int64_t ms, int back, char out[8])
{
    char m[8];
    cs_time_month(ms, m, sizeof(m));
    int y = atoi(m), mo = atoi(m + 5) - 1 - back;
    for (; mo < 0; mo += 12)
        y--;
    snprintf(out, 8, "%04d-%02d", y % 10000, mo + 1);
}

cs_err_t cs_v1_read(cs_v1_t *v, cs_redis_t *redis, const char *subject,
                    cs_subject_view_t *out, char *errstr, size_t errstr_size)
{
    memset(out, 0, sizeof(*out));
    const char *colon = strchr(subject, ':');
    out->kind = strncmp(subject, "LOCATION:", 9) ? CS_SUBJECT_LOCAL_AREA
                                                 : CS_SUBJECT_LOCATION;
    snprintf(out->subject_id, sizeof(out->subject_id), "%s", colon + 1);
    char skey[256], ekey[256];
    v1_key(v, subject, "state", skey, sizeof(skey));
    v1_key(v, subject, "events", ekey, sizeof(ekey));
    const char *hm[2 + V1_NFIELDS] = {"HMGET", skey};
    memcpy(hm + 2, v1_fields, sizeof(v1_fields));
    const char *zr[] = {"ZREVRANGE", ekey, "0", "-1", "WITHSCORES"};
    redisReply *h = cs_redis_command(redis, 2 + V1_NFIELDS, hm, NULL, errstr, errstr_size);
    redisReply *z = h ? cs_redis_command(redis, 5, zr, NULL, errstr, errstr_size) : NULL;
    cs_err_t err = z ? CS_OK : CS_ERR_REDIS;
    if (!err && (out->exists = v1_field(h, 1) != NULL)) {
        out->score = strtod(v1_field(h, 0), NULL);
        out->as_of = v1_ll(h, 1);
        out->level = (cs_level_t)cs_enum_index(cs_level_names, CS_LEVEL_COUNT,
                                               v1_field(h, 2) ? v1_field(h, 2) : "NONE");
        out->level_since = v1_ll(h, 3);
        out->has_immediate = v1_field(h, 4) != NULL;
        out->immediate_at = v1_ll(h, 4);
        out->events_total = v1_ll(h, 5);
        out->assurance = v1_ll(h, 6);
        out->duplicates = v1_ll(h, 7);
        out->has_position = v1_field(h, 8) != NULL;
        out->last_partition = (int32_t)v1_ll(h, 8);
        out->last_offset = v1_ll(h, 9);
        for (int a = 0; a < CS_AREA_COUNT; a++)
            out->area_scores[a] = v1_field(h, 10 + a) ? strtod(v1_field(h, 10 + a), NULL)
                                                      : 0;
        const char *last = v1_field(h, 14);
        if (last && cs_scorer_parse_alert(v->scorer, last, strlen(last), out->kind,
                                          out->subject_id, NULL, 0, &out->last_alert))
            err = CS_ERR_REDIS;
        out->has_last_alert = last != NULL;
        json_t *pending = v1_field(h, 15) ? json_loads(v1_field(h, 15), 0, NULL) : NULL;
        out->npending = json_is_array(pending) ? (int)json_array_size(pending) : 0;
        json_decref(pending);
        out->events = calloc(z->elements / 2 + 1, sizeof(*out->events));
        for (size_t k = 0; out->events && k + 1 < z->elements; k += 2) {
            cs_recent_event_t *e = &out->events[out->nevents++];
            int sig = 0, sev = 0;
            sscanf(z->element[k]->str, "%199s %d %d", e->event_key, &sig, &sev);
            e->signal = (cs_signal_t)sig;
            e->severity = (cs_severity_t)sev;
            e->occurred_at = strtoll(z->element[k + 1]->str, NULL, 10);
        }
        /* the seen sets of the months that can still be there, oldest first */
        int back = (int)(v->rules->seen_ttl_s / (28 * 86400)) + 2;
        out->months = calloc((size_t)back, sizeof(*out->months));
        for (int b = back - 1; out->months && b >= 0; b--) {
            char m[8], key[300];
            v1_month_back(out->as_of, b, m);
            snprintf(key, sizeof(key), "%s:{%s}:seen:%s", v->ns, subject, m);
            const char *sc[] = {"SCARD", key};
            redisReply *c = cs_redis_command(redis, 2, sc, NULL, errstr, errstr_size);
            if (c && c->type == REDIS_REPLY_INTEGER && c->integer > 0) {
                memcpy(out->months[out->nmonths].month, m, 8);
                out->months[out->nmonths++].event_keys = c->integer;
            }
            freeReplyObject(c);
        }
    }
    freeReplyObject(h);
    freeReplyObject(z);
    return err;
}
