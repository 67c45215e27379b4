/* caresignal scoring: the generated Lua library, FCALL arguments, and reply parsing. */
#include "caresignal/score.h"

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "caresignal/timeutil.h"

/* The value layout lib/risk.lua writes (its header comment is the definition). */
#define CS_LAYOUT_VERSION 2

extern const char cs_risk_lua[]; /* lib/risk.lua, embedded at build time */

struct cs_scorer {
    const cs_rules_t *rules;
    char ns[128];
    char function[64];
    char ack_function[64];
    char *library;
};

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
    snprintf(s->ns, sizeof(s->ns), "%s", ns);
    /* the names carry the layout's version: a library of another layout never replaces
     * this one, nor this one it */
    snprintf(s->function, sizeof(s->function), "cs_apply_v%d_%s", CS_LAYOUT_VERSION,
             rules->digest);
    snprintf(s->ack_function, sizeof(s->ack_function), "cs_ack_v%d_%s", CS_LAYOUT_VERSION,
             rules->digest);

    /* Every number the function uses comes from the rules file, written here as a Lua
     * table R in front of lib/risk.lua. */
    cs_text_t t = {0};
    cs_text_add(&t, "#!lua name=caresignal_v%d_%s\n", CS_LAYOUT_VERSION, rules->digest);
    cs_text_add(&t, "-- generated from rules version %s\n", rules->version);
    cs_text_add(&t, "local FN_NAME = '%s'\nlocal ACK_NAME = '%s'\n", s->function,
                s->ack_function);
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
    cs_text_add(&t, "  },\n}\n%s", cs_risk_lua);
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

void cs_scorer_pos_key(const cs_scorer_t *s, const char *topic, int32_t partition,
                       char *out, size_t size)
{
    snprintf(out, size, "%s:pos:%s:%d", s->ns, topic, (int)partition);
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

/* year * 12 + month - 1 of \p ms (UTC), its "YYYY-MM", and the first ms of the next
 * month */
static int cs_month_of(int64_t ms, char m[8], int64_t *end)
{
    cs_time_month(ms, m, 8);
    int y = atoi(m), mo = atoi(m + 5);
    *end = cs_days_from_civil(mo == 12 ? y + 1 : y, mo == 12 ? 1 : mo + 1, 1) * 86400000LL;
    return y * 12 + mo - 1;
}

/* The de-duplication digest of an event: SHA-256 of "YYYY-MM" NUL event_key, first 8
 * bytes (docs/contract/redis-layout.md has the collision argument). */
static void cs_seen_digest(const char month[8], const char *event_key, unsigned char out[8])
{
    unsigned char text[8 + CS_EVENT_KEY_MAX], md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    size_t klen = strnlen(event_key, CS_EVENT_KEY_MAX - 1);
    memcpy(text, month, 7);
    text[7] = 0;
    memcpy(text + 8, event_key, klen);
    EVP_Digest(text, 8 + klen, md, &mdlen, EVP_sha256(), NULL);
    memcpy(out, md, 8);
}

/* little-endian writes into an event blob */
static unsigned char *cs_put(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++, v >>= 8)
        *p++ = (unsigned char)(v & 0xff);
    return p;
}

static unsigned char *cs_put_text(unsigned char *p, const char *text, size_t len)
{
    *p++ = (unsigned char)len;
    memcpy(p, text, len);
    return p + len;
}

/* An event as lib/risk.lua's EV format packs it (40 bytes and the key's two parts) */
enum { CS_EVENT_PACKED_MAX = 40 + 2 + CS_EVENT_KEY_MAX };

static unsigned char *cs_pack_event(const cs_scorer_t *s, const cs_score_input_t *in,
                                    unsigned char *p)
{
    const cs_intel_event_t *e = in->ev;
    char m[8];
    int64_t month_end;
    int month = cs_month_of(e->occurred_at, m, &month_end);
    cs_seen_digest(m, e->event_key, p);
    p += 8;
    p = cs_put(p, (uint64_t)month, 2);
    p = cs_put(p, (uint64_t)month_end, 6);
    *p++ = (unsigned char)e->signal;
    *p++ = (unsigned char)e->severity;
    *p++ = (unsigned char)e->area;
    *p++ = (unsigned char)((cs_rules_is_immediate(s->rules, e->signal, e->severity,
                                                  e->area)
                                ? 1
                                : 0) |
                           (s->rules->assurance[e->signal] ? 2 : 0));
    p = cs_put(p, (uint64_t)e->occurred_at, 6);
    double w = cs_rules_weight(s->rules, e->signal, e->severity);
    uint64_t wbits;
    memcpy(&wbits, &w, sizeof(wbits));
    p = cs_put(p, wbits, 8);
    p = cs_put(p, (uint64_t)(uint32_t)in->partition, 4);
    p = cs_put(p, (uint64_t)in->offset, 8);
    /* the event_key as "SOURCE:org:" and the partner's ref */
    size_t klen = strnlen(e->event_key, CS_EVENT_KEY_MAX - 1);
    const char *colon = memchr(e->event_key, ':', klen);
    colon = colon ? memchr(colon + 1, ':', klen - (size_t)(colon + 1 - e->event_key))
                  : NULL;
    size_t plen = colon ? (size_t)(colon + 1 - e->event_key) : 0;
    p = cs_put_text(p, e->event_key, plen);
    return cs_put_text(p, e->event_key + plen, klen - plen);
}

cs_err_t cs_scorer_add_call(cs_scorer_t *s, cs_redis_pipe_t *pipe,
                            const cs_score_input_t *in, size_t n)
{
    if (n == 0)
        return CS_OK;
    const cs_intel_event_t *first = in[0].ev;
    char subject[CS_SUBJECT_KEY_MAX], key[256], count[24];
    cs_subject_key(first->subject_kind, first->subject_id, subject, sizeof(subject));
    cs_scorer_state_key(s, subject, key, sizeof(key));
    snprintf(count, sizeof(count), "%zu", n);
    /* KEYS: the state; ARGV: kind, n, the events packed */
    unsigned char *blob = malloc(n * CS_EVENT_PACKED_MAX);
    if (!blob)
        return CS_ERR_NOMEM;
    unsigned char *p = blob;
    for (size_t i = 0; i < n; i++) {
        if (in[i].ev->subject_kind != first->subject_kind ||
            strcmp(in[i].ev->subject_id, first->subject_id)) {
            free(blob);
            return CS_ERR_INVALID_ARG;
        }
        p = cs_pack_event(s, &in[i], p);
    }
    const char *argv[] = {"FCALL", s->function, "1", key,
                          first->subject_kind == CS_SUBJECT_LOCATION ? "0" : "1",
                          count, (const char *)blob};
    size_t lens[] = {5, strlen(s->function), 1, strlen(key), 1, strlen(count),
                     (size_t)(p - blob)};
    cs_err_t err = cs_redis_pipe_add(pipe, 7, argv, lens);
    free(blob);
    return err;
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
static int cs_view_subject(const char *subject, cs_subject_view_t *v)
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

/* A little-endian reader over a state value (the layout in lib/risk.lua's header). */
typedef struct cs_cursor {
    const unsigned char *p, *end;
    int bad;
} cs_cursor_t;

static uint64_t cs_take(cs_cursor_t *c, int bytes)
{
    if (c->bad || c->end - c->p < bytes) {
        c->bad = 1;
        return 0;
    }
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = v << 8 | c->p[i];
    c->p += bytes;
    return v;
}

static int64_t cs_take_signed(cs_cursor_t *c, int bytes)
{
    uint64_t v = cs_take(c, bytes);
    if (bytes < 8 && (v >> (8 * bytes - 1)) & 1)
        v |= ~0ULL << (8 * bytes);
    return (int64_t)v;
}

static double cs_take_double(cs_cursor_t *c)
{
    uint64_t v = cs_take(c, 8);
    double d;
    memcpy(&d, &v, sizeof(d));
    return d;
}

/* \p len bytes of text into \p out (NUL-terminated, at most size - 1) */
static void cs_take_text(cs_cursor_t *c, size_t len, char *out, size_t size)
{
    if (c->bad || (size_t)(c->end - c->p) < len || len >= size) {
        c->bad = 1;
        out[0] = 0;
        return;
    }
    memcpy(out, c->p, len);
    out[len] = 0;
    c->p += len;
}

typedef struct cs_prefixes {
    int n;
    const unsigned char *at[256];
    size_t len[256];
} cs_prefixes_t;

/* prefix \p i then \p ref_len bytes of ref into an event key */
static void cs_take_key(cs_cursor_t *c, const cs_prefixes_t *pre, int i, size_t ref_len,
                        char *out, size_t size)
{
    if (i >= pre->n || !pre->at[i] || pre->len[i] >= size) {
        c->bad = 1;
        out[0] = 0;
        return;
    }
    memcpy(out, pre->at[i], pre->len[i]);
    cs_take_text(c, ref_len, out + pre->len[i], size - pre->len[i]);
}

/* One packed alert into \p a (no routing attributes; id set). */
static void cs_take_alert(const cs_scorer_t *s, cs_cursor_t *c, const cs_prefixes_t *pre,
                          const cs_subject_view_t *v, cs_alert_t *a)
{
    memset(a, 0, sizeof(*a));
    a->subject_kind = v->kind;
    snprintf(a->subject_id, sizeof(a->subject_id), "%s", v->subject_id);
    unsigned kind = (unsigned)cs_take(c, 1), level = (unsigned)cs_take(c, 1);
    unsigned prev = (unsigned)cs_take(c, 1), reason = (unsigned)cs_take(c, 1);
    if (kind >= CS_ALERT_KIND_COUNT || level >= CS_LEVEL_COUNT || prev >= CS_LEVEL_COUNT ||
        reason >= CS_REASON_COUNT)
        c->bad = 1;
    a->kind = (cs_alert_kind_t)(kind % CS_ALERT_KIND_COUNT);
    a->level = (cs_level_t)(level % CS_LEVEL_COUNT);
    a->previous_level = (cs_level_t)(prev % CS_LEVEL_COUNT);
    a->reason = (cs_reason_t)(reason % CS_REASON_COUNT);
    a->score = cs_take_double(c);
    a->as_of = cs_take_signed(c, 8);
    for (int i = 0; i < CS_AREA_COUNT; i++)
        a->area_scores[i] = cs_take_double(c);
    int pi = (int)cs_take(c, 1);
    size_t len = cs_take(c, 1);
    cs_take_key(c, pre, pi, len, a->triggered_by, sizeof(a->triggered_by));
    int nrecent = (int)cs_take(c, 1);
    for (int i = 0; i < nrecent && !c->bad; i++) {
        cs_recent_event_t *e = &a->recent[a->nrecent < CS_ALERT_RECENT_MAX ? a->nrecent
                                                                           : 0];
        e->occurred_at = cs_take_signed(c, 6);
        unsigned sig = (unsigned)cs_take(c, 1), sev = (unsigned)cs_take(c, 1);
        if (sig >= CS_SIGNAL_COUNT || sev >= CS_SEVERITY_COUNT)
            c->bad = 1;
        e->signal = (cs_signal_t)(sig % CS_SIGNAL_COUNT);
        e->severity = (cs_severity_t)(sev % CS_SEVERITY_COUNT);
        int rp = (int)cs_take(c, 1);
        size_t rl = cs_take(c, 1);
        cs_take_key(c, pre, rp, rl, e->event_key, sizeof(e->event_key));
        if (a->nrecent < CS_ALERT_RECENT_MAX)
            a->nrecent++;
    }
    snprintf(a->rules_version, sizeof(a->rules_version), "%s", s->rules->version);
    cs_alert_set_id(a);
}

/* Fills \p v from the state value \p r (a GET reply). */
static cs_err_t cs_view_fill(const cs_scorer_t *s, const redisReply *r,
                             cs_subject_view_t *v)
{
    if (r->type == REDIS_REPLY_NIL)
        return CS_OK;
    if (r->type != REDIS_REPLY_STRING)
        return CS_ERR_REDIS;
    cs_cursor_t c = {(const unsigned char *)r->str,
                     (const unsigned char *)r->str + r->len, 0};
    if (cs_take(&c, 1) != CS_LAYOUT_VERSION)
        return CS_ERR_REDIS;
    v->exists = 1;
    unsigned level = (unsigned)cs_take(&c, 1), flags = (unsigned)cs_take(&c, 1);
    v->level = level < CS_LEVEL_COUNT ? (cs_level_t)level : CS_LEVEL_NONE;
    v->score = cs_take_double(&c);
    for (int a = 0; a < CS_AREA_COUNT; a++)
        v->area_scores[a] = cs_take_double(&c);
    v->as_of = cs_take_signed(&c, 6);
    v->level_since = cs_take_signed(&c, 6);
    v->immediate_at = cs_take_signed(&c, 6);
    cs_take(&c, 6); /* prune_at */
    v->has_immediate = flags & 1;
    v->assurance = (long long)cs_take(&c, 4);
    v->events_total = (long long)cs_take(&c, 4);
    v->duplicates = (long long)cs_take(&c, 4);
    v->last_partition = (int32_t)cs_take_signed(&c, 4);
    v->last_offset = cs_take_signed(&c, 6);
    v->has_position = (flags & 2) != 0;
    if (!v->has_immediate)
        v->immediate_at = 0;
    if (!v->has_position)
        v->last_partition = 0, v->last_offset = 0;
    size_t npre = cs_take(&c, 1), np = cs_take(&c, 2), nlist = cs_take(&c, 2);
    size_t nl = cs_take(&c, 4), nm = cs_take(&c, 2);
    cs_take(&c, 4); /* digests: counted per month */
    /* the prefixes: NUL prefix NUL (index + 1) each */
    cs_prefixes_t pre = {0};
    const unsigned char *dir_at = c.p + np;
    if (c.bad || c.end - c.p < (ptrdiff_t)np)
        return CS_ERR_REDIS;
    while (c.p < dir_at) {
        const unsigned char *start = c.p + 1, *end = start;
        while (end < dir_at && *end)
            end++;
        if (*c.p || end + 1 >= dir_at || !end[1])
            return CS_ERR_REDIS;
        int i = end[1] - 1;
        if (pre.at[i])
            return CS_ERR_REDIS;
        pre.at[i] = start;
        pre.len[i] = (size_t)(end - start);
        pre.n = i + 1 > pre.n ? i + 1 : pre.n;
        c.p = end + 2;
    }
    if (c.p != dir_at || (size_t)pre.n < npre)
        return CS_ERR_REDIS;
    /* the months, then the digests, then the list */
    if (nm) {
        v->months = calloc(nm, sizeof(*v->months));
        if (!v->months)
            return CS_ERR_NOMEM;
    }
    long long ndigests = 0;
    for (size_t i = 0; i < nm && !c.bad; i++) {
        int m = (int)cs_take(&c, 2);
        cs_subject_month_t *out = &v->months[v->nmonths++];
        snprintf(out->month, sizeof(out->month), "%04d-%02d", (m / 12) % 10000,
                 m % 12 + 1);
        out->event_keys = (long long)cs_take(&c, 4);
        ndigests += out->event_keys;
    }
    if (c.bad || c.end - c.p < 8 * ndigests)
        return CS_ERR_REDIS;
    c.p += 8 * ndigests;
    if (nlist) {
        v->events = calloc(nlist, sizeof(*v->events));
        if (!v->events)
            return CS_ERR_NOMEM;
    }
    const unsigned char *alerts_at = c.p + nl;
    while (!c.bad && c.p < alerts_at && (size_t)v->nevents < nlist) {
        cs_recent_event_t *e = &v->events[v->nevents++];
        size_t len = cs_take(&c, 1);
        e->occurred_at = cs_take_signed(&c, 6);
        unsigned sig = (unsigned)cs_take(&c, 1), sev = (unsigned)cs_take(&c, 1);
        if (sig >= CS_SIGNAL_COUNT || sev >= CS_SEVERITY_COUNT || len < 11)
            c.bad = 1;
        e->signal = (cs_signal_t)(sig % CS_SIGNAL_COUNT);
        e->severity = (cs_severity_t)(sev % CS_SEVERITY_COUNT);
        int pi = (int)cs_take(&c, 1);
        cs_take_key(&c, &pre, pi, len < 11 ? 0 : len - 11, e->event_key,
                    sizeof(e->event_key));
        if (cs_take(&c, 1) != len)
            c.bad = 1;
    }
    if (c.bad || c.p != alerts_at || (size_t)v->nevents != nlist)
        return CS_ERR_REDIS;
    if (c.p < c.end) {
        if (cs_take(&c, 1) == 1) {
            cs_take_alert(s, &c, &pre, v, &v->last_alert);
            v->has_last_alert = 1;
        }
        v->npending = (int)cs_take(&c, 2);
        for (int i = 0; i < v->npending && !c.bad; i++) {
            cs_alert_t skip;
            cs_take_alert(s, &c, &pre, v, &skip);
        }
    }
    return c.bad || c.p != c.end ? CS_ERR_REDIS : CS_OK;
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
    cs_redis_pipe_t *p = cs_redis_pipe_new();
    if (!p)
        return CS_ERR_NOMEM;
    char key[256];
    for (size_t i = 0; i < n; i++) {
        cs_scorer_state_key(s, subjects[i], key, sizeof(key));
        const char *get[] = {"GET", key};
        cs_redis_pipe_add(p, 2, get, NULL);
    }
    cs_err_t err = cs_redis_pipe_exec(redis, p, errstr, errstr_size);
    for (size_t i = 0; !err && i < n; i++) {
        const redisReply *r = cs_redis_pipe_reply(p, i);
        err = cs_view_fill(s, r, &out[i]);
        if (err == CS_ERR_REDIS)
            snprintf(errstr, errstr_size, "subject %s: %s", subjects[i],
                     r->type == REDIS_REPLY_ERROR
                         ? r->str
                         : "the state value is not of layout 2 (rebuild into a new "
                           "namespace)");
    }
    cs_redis_pipe_destroy(p);
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
