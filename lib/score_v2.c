/* caresignal scoring, layout 2 (docs/contract/redis-layout.md): one packed string per
 * subject, written by lib/risk_v2.lua. The function calls (events packed into one
 * argument) and the reader, which decodes the value in C. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "caresignal/timeutil.h"
#include "score_internal.h"

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

/* What layout 2 needs of an event (the fields of lib/risk_v2.lua's EV) */
void cs_v2_event_of(const cs_scorer_t *s, const cs_score_input_t *in, cs_v2_event_t *v)
{
    const cs_intel_event_t *e = in->ev;
    char m[8];
    v->month = cs_month_of(e->occurred_at, m, &v->month_end);
    cs_seen_digest(m, e->event_key, v->digest);
    v->signal = (int)e->signal;
    v->severity = (int)e->severity;
    v->area = (int)e->area;
    v->flags = (cs_rules_is_immediate(s->rules, e->signal, e->severity, e->area) ? 1 : 0) |
               (s->rules->assurance[e->signal] ? 2 : 0);
    v->t = e->occurred_at;
    v->weight = cs_rules_weight(s->rules, e->signal, e->severity);
    v->partition = in->partition;
    v->offset = in->offset;
    /* the event_key as "SOURCE:org:" and the partner's ref */
    size_t klen = strnlen(e->event_key, CS_EVENT_KEY_MAX - 1);
    const char *colon = memchr(e->event_key, ':', klen);
    colon = colon ? memchr(colon + 1, ':', klen - (size_t)(colon + 1 - e->event_key))
                  : NULL;
    v->prefix = e->event_key;
    v->prefix_len = colon ? (size_t)(colon + 1 - e->event_key) : 0;
    v->ref = e->event_key + v->prefix_len;
    v->ref_len = klen - v->prefix_len;
}

/* An event as lib/risk_v2.lua's EV format packs it (40 bytes and the key's two parts) */
enum { CS_EVENT_PACKED_MAX = 40 + 2 + CS_EVENT_KEY_MAX };

static unsigned char *cs_pack_event(const cs_scorer_t *s, const cs_score_input_t *in,
                                    unsigned char *p)
{
    cs_v2_event_t v;
    cs_v2_event_of(s, in, &v);
    memcpy(p, v.digest, 8);
    p += 8;
    p = cs_put(p, (uint64_t)v.month, 2);
    p = cs_put(p, (uint64_t)v.month_end, 6);
    *p++ = (unsigned char)v.signal;
    *p++ = (unsigned char)v.severity;
    *p++ = (unsigned char)v.area;
    *p++ = (unsigned char)v.flags;
    p = cs_put(p, (uint64_t)v.t, 6);
    uint64_t wbits;
    memcpy(&wbits, &v.weight, sizeof(wbits));
    p = cs_put(p, wbits, 8);
    p = cs_put(p, (uint64_t)(uint32_t)v.partition, 4);
    p = cs_put(p, (uint64_t)v.offset, 8);
    p = cs_put_text(p, v.prefix, v.prefix_len);
    return cs_put_text(p, v.ref, v.ref_len);
}

cs_err_t cs_v2_add_call(cs_scorer_t *s, cs_redis_pipe_t *pipe,
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

/* ------------------------------------------------------------------ reading */

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
    a->as_of = cs_take_signed(c, 6);
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
    if (cs_take(&c, 1) != 2)
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
    size_t nl = cs_take(&c, 2), nm = cs_take(&c, 2);
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
        out->event_keys = (long long)cs_take(&c, 3);
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

cs_err_t cs_v2_read(const cs_scorer_t *s, cs_redis_t *redis, const char *const *subjects,
                    size_t n, cs_subject_view_t *out, char *errstr, size_t errstr_size)
{
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
    return err; /* the caller releases the views on failure */
}
