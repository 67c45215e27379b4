/* caresignal scoring, layout 2 computed in the scorer (state.engine = scorer,
 * docs/contract/redis-layout.md "Computing in the scorer"): lib/risk_v2.lua's apply,
 * step for step on the same bytes, so that a value computed here is byte for byte the
 * value the Redis function would have written and the outcome is the one its reply
 * would have given. Redis only stores: lib/engine.c reads the values under WATCH and
 * writes them back in one MULTI/EXEC, so no write replaces a value it was not computed
 * from. Built with -ffp-contract=off: the Lua computes each product and sum on its own,
 * and so must we, to the last bit. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caresignal/timeutil.h"
#include "score_internal.h"

#define CS_V2_VERSION     2
#define CS_V2_HDR         102         /* struct.size of risk_v2.lua's HDR */
#define CS_V2_NEVER       (1LL << 46) /* prune_at when no month is kept */
#define CS_V2_TRIGGER_MAX 512

/* ------------------------------------------------------------------ bytes */

typedef struct cs_buf {
    unsigned char *p;
    size_t len, cap;
} cs_buf_t;

/* Replaces [at, at + del) of \p b by \p n bytes of \p ins (not inside \p b). */
static int cs_buf_splice(cs_buf_t *b, size_t at, size_t del, const void *ins, size_t n)
{
    size_t len = b->len - del + n;
    if (len > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < len)
            cap *= 2;
        unsigned char *grown = realloc(b->p, cap);
        if (!grown)
            return -1;
        b->p = grown;
        b->cap = cap;
    }
    if (b->len > at + del)
        memmove(b->p + at + n, b->p + at + del, b->len - at - del);
    if (n)
        memcpy(b->p + at, ins, n);
    b->len = len;
    return 0;
}

static int cs_buf_add(cs_buf_t *b, const void *ins, size_t n)
{
    return cs_buf_splice(b, b->len, 0, ins, n);
}

static int cs_buf_set(cs_buf_t *b, const void *src, size_t n)
{
    b->len = 0;
    return cs_buf_add(b, src, n);
}

static void cs_le_put(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++, v >>= 8)
        p[i] = (unsigned char)(v & 0xff);
}

static uint64_t cs_le_get(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static int64_t cs_le_sget(const unsigned char *p, int bytes)
{
    uint64_t v = cs_le_get(p, bytes);
    if (bytes < 8 && (v >> (8 * bytes - 1)) & 1)
        v |= ~0ULL << (8 * bytes);
    return (int64_t)v;
}

static double cs_le_double(const unsigned char *p)
{
    uint64_t v = cs_le_get(p, 8);
    double d;
    memcpy(&d, &v, sizeof(d));
    return d;
}

static void cs_le_put_double(unsigned char *p, double d)
{
    uint64_t v;
    memcpy(&v, &d, sizeof(v));
    cs_le_put(p, v, 8);
}

/* The first occurrence of \p needle in \p hay at or after \p from (string.find, plain).
 * @returns its offset, or (size_t)-1. */
static size_t cs_find(const cs_buf_t *hay, size_t from, const unsigned char *needle,
                      size_t n)
{
    if (n == 0 || hay->len < n)
        return (size_t)-1;
    for (size_t at = from; at + n <= hay->len; at++) {
        const unsigned char *c = memchr(hay->p + at, needle[0], hay->len - n + 1 - at);
        if (!c)
            return (size_t)-1;
        at = (size_t)(c - hay->p);
        if (!memcmp(c, needle, n))
            return at;
    }
    return (size_t)-1;
}

/* ------------------------------------------------------------------ the state */

typedef struct cs_v2_alert {
    unsigned char kind, level, prev, reason;
    double score, area[CS_AREA_COUNT];
    int64_t as_of;
    int pidx;
    size_t ref_len;
    unsigned char ref[256];
    char triggered_by[CS_V2_TRIGGER_MAX];
    int nrecent;
    cs_buf_t recent; /* per event [occurred_at i6][signal][severity][prefix][len][ref] */
} cs_v2_alert_t;

typedef struct cs_v2_state {
    int level;
    double s, a[CS_AREA_COUNT];
    int has_as_of, has_imm, has_pos;
    int64_t as_of, level_since, imm_at, prune_at, last_o;
    int32_t last_p;
    uint32_t assurance, total, dups;
    int npre, nlist, nm;
    cs_buf_t pre, dir, dig, list;
    const unsigned char *raw_alerts; /* the alerts section read (borrowed) */
    size_t raw_alerts_len;
    int alerts_set; /* re-encoded into `alerts` (risk_v2.lua's st.alerts) */
    cs_buf_t alerts;
    int ptab_ok;
    size_t poff[256], plen[256]; /* prefix i: pre.p + poff[i], plen[i] bytes */
    unsigned char phave[256];
    int decoded; /* last0 and pending0 below */
    int has_last0;
    cs_v2_alert_t last0;
    cs_v2_alert_t *pending0;
    int npending0;
    cs_v2_alert_t *fresh; /* the alerts this call produced */
    int nfresh, fresh_cap;
    const cs_v2_alert_t **reemit;
    int nreemit, reemit_cap, reemitting;
    char why[160]; /* a state we cannot read or extend */
} cs_v2_state_t;

static void cs_v2_alert_free(cs_v2_alert_t *a)
{
    free(a->recent.p);
}

static void cs_v2_state_free(cs_v2_state_t *st)
{
    free(st->pre.p);
    free(st->dir.p);
    free(st->dig.p);
    free(st->list.p);
    free(st->alerts.p);
    if (st->has_last0)
        cs_v2_alert_free(&st->last0);
    for (int i = 0; i < st->npending0; i++)
        cs_v2_alert_free(&st->pending0[i]);
    free(st->pending0);
    for (int i = 0; i < st->nfresh; i++)
        cs_v2_alert_free(&st->fresh[i]);
    free(st->fresh);
    free(st->reemit);
}

static int cs_v2_bad(cs_v2_state_t *st, const char *why)
{
    if (!st->why[0])
        snprintf(st->why, sizeof(st->why), "%s", why);
    return -1;
}

/* The value read (a GET reply) into \p st; nil: a new subject. */
static int cs_v2_load(cs_v2_state_t *st, const redisReply *r)
{
    st->prune_at = CS_V2_NEVER;
    if (r->type == REDIS_REPLY_NIL)
        return 0;
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(st->why, sizeof(st->why),
                 "the state key holds another type (%.60s): is this a namespace of "
                 "another layout? rebuild into a new namespace",
                 r->str);
        return -1;
    }
    const unsigned char *v = (const unsigned char *)r->str;
    size_t len = r->type == REDIS_REPLY_STRING ? r->len : 0;
    if (r->type != REDIS_REPLY_STRING || len < CS_V2_HDR || v[0] != CS_V2_VERSION)
        return cs_v2_bad(st, "the state value is not layout 2");
    st->has_as_of = 1;
    st->level = v[1];
    unsigned flags = v[2];
    st->s = cs_le_double(v + 3);
    for (int i = 0; i < CS_AREA_COUNT; i++)
        st->a[i] = cs_le_double(v + 11 + 8 * i);
    st->as_of = cs_le_sget(v + 43, 6);
    st->level_since = cs_le_sget(v + 49, 6);
    st->imm_at = cs_le_sget(v + 55, 6);
    st->prune_at = cs_le_sget(v + 61, 6);
    st->assurance = (uint32_t)cs_le_get(v + 67, 4);
    st->total = (uint32_t)cs_le_get(v + 71, 4);
    st->dups = (uint32_t)cs_le_get(v + 75, 4);
    st->last_p = (int32_t)cs_le_sget(v + 79, 4);
    st->last_o = cs_le_sget(v + 83, 6);
    st->npre = v[89];
    size_t np = cs_le_get(v + 90, 2), nl = cs_le_get(v + 94, 2);
    st->nlist = (int)cs_le_get(v + 92, 2);
    st->nm = (int)cs_le_get(v + 96, 2);
    size_t nd = cs_le_get(v + 98, 4);
    size_t at = CS_V2_HDR, dir_at = at + np, dig_at = dir_at + 5 * (size_t)st->nm;
    size_t list_at = dig_at + 8 * nd, alerts_at = list_at + nl;
    if (alerts_at > len)
        return cs_v2_bad(st, "the state value is truncated");
    st->has_imm = flags & 1;
    st->has_pos = (flags & 2) != 0;
    if (cs_buf_set(&st->pre, v + at, np) ||
        cs_buf_set(&st->dir, v + dir_at, dig_at - dir_at) ||
        cs_buf_set(&st->dig, v + dig_at, list_at - dig_at) ||
        cs_buf_set(&st->list, v + list_at, nl))
        return cs_v2_bad(st, "out of memory");
    st->raw_alerts = v + alerts_at;
    st->raw_alerts_len = len - alerts_at;
    return 0;
}

/* index -> prefix, built when first needed */
static int cs_v2_ptab(cs_v2_state_t *st)
{
    if (st->ptab_ok)
        return 0;
    memset(st->phave, 0, sizeof(st->phave));
    size_t p = 0;
    while (p < st->pre.len) {
        const unsigned char *nul =
            st->pre.p[p] == 0 ? memchr(st->pre.p + p + 1, 0, st->pre.len - p - 1) : NULL;
        size_t end = nul ? (size_t)(nul - st->pre.p) : 0;
        if (!nul || end + 1 >= st->pre.len || st->pre.p[end + 1] == 0)
            return cs_v2_bad(st, "the state's prefix table is malformed");
        int i = st->pre.p[end + 1] - 1;
        st->poff[i] = p + 1;
        st->plen[i] = end - p - 1;
        st->phave[i] = 1;
        p = end + 2;
    }
    st->ptab_ok = 1;
    return 0;
}

/* prefix \p i followed by \p n bytes of \p ref into \p out (NUL-terminated) */
static int cs_v2_key(cs_v2_state_t *st, int i, const unsigned char *ref, size_t n,
                     char *out, size_t size)
{
    if (cs_v2_ptab(st) || i < 0 || i > 255 || !st->phave[i])
        return cs_v2_bad(st, "a record refers to no prefix");
    if (st->plen[i] + n >= size)
        return cs_v2_bad(st, "an event key is too long");
    memcpy(out, st->pre.p + st->poff[i], st->plen[i]);
    memcpy(out + st->plen[i], ref, n);
    out[st->plen[i] + n] = 0;
    return 0;
}

/* ------------------------------------------------------------------ alerts */

enum { CS_V2_ALERT_HEAD = 4 + 8 + 6 + 32 + 2 };

static int cs_v2_decode_alert(cs_v2_state_t *st, const unsigned char *raw, size_t len,
                              size_t *pos, cs_v2_alert_t *al)
{
    memset(al, 0, sizeof(*al));
    size_t p = *pos;
    if (len - p < CS_V2_ALERT_HEAD)
        return cs_v2_bad(st, "an alert is truncated");
    al->kind = raw[p];
    al->level = raw[p + 1];
    al->prev = raw[p + 2];
    al->reason = raw[p + 3];
    al->score = cs_le_double(raw + p + 4);
    al->as_of = cs_le_sget(raw + p + 12, 6);
    for (int i = 0; i < CS_AREA_COUNT; i++)
        al->area[i] = cs_le_double(raw + p + 18 + 8 * i);
    al->pidx = raw[p + 50];
    al->ref_len = raw[p + 51];
    p += CS_V2_ALERT_HEAD;
    if (len - p < al->ref_len + 1)
        return cs_v2_bad(st, "an alert is truncated");
    memcpy(al->ref, raw + p, al->ref_len);
    if (cs_v2_key(st, al->pidx, al->ref, al->ref_len, al->triggered_by,
                  sizeof(al->triggered_by)))
        return -1;
    p += al->ref_len;
    al->nrecent = raw[p++];
    size_t start = p;
    for (int i = 0; i < al->nrecent; i++) {
        if (len - p < 10 || len - p - 10 < raw[p + 9])
            return cs_v2_bad(st, "an alert is truncated");
        p += 10 + raw[p + 9];
    }
    if (cs_buf_set(&al->recent, raw + start, p - start))
        return cs_v2_bad(st, "out of memory");
    *pos = p;
    return 0;
}

/* last_alert and the pending alerts, decoded once per call when needed */
static int cs_v2_decode_alerts(cs_v2_state_t *st)
{
    if (st->decoded)
        return 0;
    st->decoded = 1;
    const unsigned char *raw = st->alerts_set ? st->alerts.p : st->raw_alerts;
    size_t len = st->alerts_set ? st->alerts.len : st->raw_alerts_len;
    if (len == 0)
        return 0;
    size_t p = 1;
    if (raw[0] == 1) {
        st->has_last0 = 1;
        if (cs_v2_decode_alert(st, raw, len, &p, &st->last0))
            return -1;
    }
    if (len - p < 2)
        return cs_v2_bad(st, "the alerts are truncated");
    int n = (int)cs_le_get(raw + p, 2);
    p += 2;
    st->pending0 = calloc((size_t)(n ? n : 1), sizeof(*st->pending0));
    if (!st->pending0)
        return cs_v2_bad(st, "out of memory");
    for (int i = 0; i < n; i++) {
        st->npending0 = i + 1;
        if (cs_v2_decode_alert(st, raw, len, &p, &st->pending0[i]))
            return -1;
    }
    return 0;
}

static int cs_v2_encode_alert(cs_v2_state_t *st, const cs_v2_alert_t *al, cs_buf_t *out)
{
    unsigned char h[CS_V2_ALERT_HEAD];
    h[0] = al->kind;
    h[1] = al->level;
    h[2] = al->prev;
    h[3] = al->reason;
    cs_le_put_double(h + 4, al->score);
    cs_le_put(h + 12, (uint64_t)al->as_of, 6);
    for (int i = 0; i < CS_AREA_COUNT; i++)
        cs_le_put_double(h + 18 + 8 * i, al->area[i]);
    h[50] = (unsigned char)al->pidx;
    h[51] = (unsigned char)al->ref_len;
    if (al->nrecent > 255)
        return cs_v2_bad(st, "more than 255 recent events in an alert");
    unsigned char nrec = (unsigned char)al->nrecent;
    if (cs_buf_add(out, h, sizeof(h)) || cs_buf_add(out, al->ref, al->ref_len) ||
        cs_buf_add(out, &nrec, 1) || cs_buf_add(out, al->recent.p, al->recent.len))
        return cs_v2_bad(st, "out of memory");
    return 0;
}

/* The alerts section of \p last (may be NULL) and the pending \p a then \p b */
static int cs_v2_encode_alerts(cs_v2_state_t *st, const cs_v2_alert_t *last,
                               const cs_v2_alert_t *a, int na, const cs_v2_alert_t *b,
                               int nb, cs_buf_t *out)
{
    out->len = 0;
    if (!last && na + nb == 0)
        return 0;
    unsigned char has = last ? 1 : 0, n[2];
    if (cs_buf_add(out, &has, 1) || (last && cs_v2_encode_alert(st, last, out)))
        return cs_v2_bad(st, "out of memory");
    cs_le_put(n, (uint64_t)(na + nb), 2);
    if (cs_buf_add(out, n, 2))
        return cs_v2_bad(st, "out of memory");
    for (int i = 0; i < na; i++)
        if (cs_v2_encode_alert(st, &a[i], out))
            return -1;
    for (int i = 0; i < nb; i++)
        if (cs_v2_encode_alert(st, &b[i], out))
            return -1;
    return 0;
}

/* ------------------------------------------------------------------ prefixes */

typedef struct cs_v2_compact {
    cs_v2_state_t *st;
    cs_buf_t keep;
    int nkeep;
    int map[256];
} cs_v2_compact_t;

/* the new index of old prefix \p i, kept at first use */
static int cs_v2_use(cs_v2_compact_t *c, int i)
{
    if (c->map[i] >= 0)
        return c->map[i];
    cs_v2_state_t *st = c->st;
    if (i < 0 || i > 255 || !st->phave[i])
        return cs_v2_bad(st, "a record refers to no prefix");
    unsigned char nul = 0, idx = (unsigned char)(c->nkeep + 1);
    if (cs_buf_add(&c->keep, &nul, 1) ||
        cs_buf_add(&c->keep, st->pre.p + st->poff[i], st->plen[i]) ||
        cs_buf_add(&c->keep, &nul, 1) || cs_buf_add(&c->keep, &idx, 1))
        return cs_v2_bad(st, "out of memory");
    c->map[i] = c->nkeep++;
    return c->map[i];
}

static int cs_v2_use_alert(cs_v2_compact_t *c, cs_v2_alert_t *al)
{
    int pi = cs_v2_use(c, al->pidx);
    if (pi < 0)
        return -1;
    al->pidx = pi;
    for (size_t p = 0; p < al->recent.len; p += 10 + al->recent.p[p + 9]) {
        int rp = cs_v2_use(c, al->recent.p[p + 8]);
        if (rp < 0)
            return -1;
        al->recent.p[p + 8] = (unsigned char)rp;
    }
    return 0;
}

/* The table is full (255): keeps only the prefixes a record or an alert refers to,
 * renumbered in the order of first use (the list, last_alert, the pending, this call's
 * alerts), as risk_v2.lua's compact_prefixes. */
static int cs_v2_compact(cs_v2_state_t *st)
{
    if (cs_v2_ptab(st))
        return -1;
    cs_v2_compact_t c = {.st = st};
    for (int i = 0; i < 256; i++)
        c.map[i] = -1;
    int rc = 0;
    for (size_t p = 0; !rc && p < st->list.len; p += st->list.p[p]) {
        int pi = cs_v2_use(&c, st->list.p[p + 9]);
        if (pi < 0 || st->list.p[p] == 0)
            rc = -1;
        else
            st->list.p[p + 9] = (unsigned char)pi;
    }
    if (!rc && st->has_last0)
        rc = cs_v2_use_alert(&c, &st->last0);
    for (int i = 0; !rc && i < st->npending0; i++)
        rc = cs_v2_use_alert(&c, &st->pending0[i]);
    for (int i = 0; !rc && i < st->nfresh; i++)
        rc = cs_v2_use_alert(&c, &st->fresh[i]);
    if (rc) {
        free(c.keep.p);
        return cs_v2_bad(st, "the state's prefixes are malformed");
    }
    free(st->pre.p);
    st->pre = c.keep;
    st->npre = c.nkeep;
    st->ptab_ok = 0;
    return 0;
}

/* The index of the event's key prefix in the subject's table, added if new. @returns -1
 * when the table is full of prefixes still referred to. */
static int cs_v2_prefix_of(cs_v2_state_t *st, const cs_v2_event_t *ev)
{
    unsigned char probe[CS_EVENT_KEY_MAX + 2];
    probe[0] = 0;
    memcpy(probe + 1, ev->prefix, ev->prefix_len);
    probe[ev->prefix_len + 1] = 0;
    size_t n = ev->prefix_len + 2;
    size_t at = cs_find(&st->pre, 0, probe, n);
    if (at != (size_t)-1 && at + n < st->pre.len)
        return st->pre.p[at + n] - 1;
    if (st->npre == 255) {
        if (cs_v2_decode_alerts(st) || cs_v2_compact(st) ||
            cs_v2_encode_alerts(st, st->has_last0 ? &st->last0 : NULL, st->pending0,
                                st->npending0, NULL, 0, &st->alerts))
            return -2;
        st->alerts_set = 1;
        if (st->npre == 255)
            return -1;
    }
    unsigned char idx = (unsigned char)(st->npre + 1);
    size_t off = st->pre.len + 1;
    if (cs_buf_add(&st->pre, probe, n) || cs_buf_add(&st->pre, &idx, 1))
        return cs_v2_bad(st, "out of memory") - 1;
    st->npre++;
    if (st->ptab_ok) {
        st->poff[st->npre - 1] = off;
        st->plen[st->npre - 1] = ev->prefix_len;
        st->phave[st->npre - 1] = 1;
    }
    return st->npre - 1;
}

/* ------------------------------------------------------------------ the list */

/* Does a record start exactly at \p at (walking from the front)? */
static int cs_v2_record_at(const cs_buf_t *list, size_t at)
{
    size_t p = 0;
    while (p < at && list->p[p])
        p += list->p[p];
    return p == at;
}

/* "<event_key> <signal> <severity>": the member layout 1 ordered by */
static size_t cs_v2_member(char *out, size_t size, const unsigned char *pre, size_t plen,
                           const unsigned char *ref, size_t rlen, int sig, int sev)
{
    int n = snprintf(out, size, "%.*s%.*s %d %d", (int)plen, (const char *)pre, (int)rlen,
                     (const char *)ref, sig, sev);
    return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

static int cs_v2_bytes_less(const char *a, size_t an, const char *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    return c ? c < 0 : an < bn;
}

/* The list, newest first, with \p rec in its place ((occurred_at, member) descending) */
static int cs_v2_list_insert(cs_v2_state_t *st, const cs_v2_event_t *ev,
                             const unsigned char *rec, size_t reclen)
{
    size_t p = 0, n = st->list.len;
    char m[600], rm[600];
    size_t mlen = 0;
    while (p < n) {
        size_t len = st->list.p[p];
        if (len < 11 || n - p < len)
            return cs_v2_bad(st, "the event list is malformed");
        int64_t rt = cs_le_sget(st->list.p + p + 1, 6);
        if (rt < ev->t)
            break;
        if (rt == ev->t) {
            if (!mlen)
                mlen = cs_v2_member(m, sizeof(m), (const unsigned char *)ev->prefix,
                                    ev->prefix_len, (const unsigned char *)ev->ref,
                                    ev->ref_len, ev->signal, ev->severity);
            int pi = st->list.p[p + 9];
            if (cs_v2_ptab(st) || !st->phave[pi])
                return cs_v2_bad(st, "a record refers to no prefix");
            size_t rmlen = cs_v2_member(rm, sizeof(rm), st->pre.p + st->poff[pi],
                                        st->plen[pi], st->list.p + p + 10, len - 11,
                                        st->list.p[p + 7], st->list.p[p + 8]);
            if (cs_v2_bytes_less(rm, rmlen, m, mlen))
                break;
        }
        p += len;
    }
    if (cs_buf_splice(&st->list, p, 0, rec, reclen))
        return cs_v2_bad(st, "out of memory");
    st->nlist++;
    return 0;
}

/* Records older than cutoff go, then all but the newest events_max */
static void cs_v2_list_trim(cs_v2_state_t *st, int events_max, int64_t cutoff)
{
    size_t e = st->list.len;
    int n = st->nlist;
    while (e > 0) {
        size_t len = st->list.p[e - 1];
        if (len == 0 || len > e)
            break;
        size_t start = e - len;
        if (n <= events_max && cs_le_sget(st->list.p + start + 1, 6) >= cutoff)
            break;
        e = start;
        n--;
    }
    st->list.len = e;
    st->nlist = n;
}

/* The first recent_max records, as an alert's recent list */
static int cs_v2_list_recent(cs_v2_state_t *st, int recent_max, cs_v2_alert_t *al)
{
    al->recent.len = 0;
    al->nrecent = 0;
    for (size_t p = 0; p < st->list.len && al->nrecent < recent_max;) {
        const unsigned char *r = st->list.p + p;
        size_t len = r[0];
        if (len < 11)
            return cs_v2_bad(st, "the event list is malformed");
        unsigned char rl = (unsigned char)(len - 11);
        if (cs_buf_add(&al->recent, r + 1, 9) || cs_buf_add(&al->recent, &rl, 1) ||
            cs_buf_add(&al->recent, r + 10, rl))
            return cs_v2_bad(st, "out of memory");
        al->nrecent++;
        p += len;
    }
    return 0;
}

/* ------------------------------------------------------------------ de-duplication */

static int64_t cs_v2_month_start(int mi)
{
    return cs_days_from_civil(mi / 12, mi % 12 + 1, 1) * 86400000LL;
}

static int cs_v2_seen(const cs_v2_state_t *st, const unsigned char d[8])
{
    for (size_t at = 0; at + 8 <= st->dig.len; at += 8)
        if (!memcmp(st->dig.p + at, d, 8))
            return 1;
    return 0;
}

static int cs_v2_seen_add(cs_v2_state_t *st, const cs_v2_event_t *ev, int64_t ttl)
{
    int nm = st->nm;
    unsigned char entry[5];
    cs_le_put(entry, (uint64_t)ev->month, 2);
    cs_le_put(entry + 2, 1, 3);
    int last = nm > 0 ? (int)cs_le_get(st->dir.p + 5 * nm - 5, 2) : 0;
    if (nm > 0 && last == ev->month) {
        /* the common case: the latest month */
        unsigned char *c = st->dir.p + 5 * nm - 3;
        cs_le_put(c, cs_le_get(c, 3) + 1, 3);
        return cs_buf_add(&st->dig, ev->digest, 8) ? cs_v2_bad(st, "out of memory") : 0;
    }
    if (nm == 0 || last < ev->month) {
        if (cs_buf_add(&st->dir, entry, 5) || cs_buf_add(&st->dig, ev->digest, 8))
            return cs_v2_bad(st, "out of memory");
        st->nm = nm + 1;
        if (nm == 0)
            st->prune_at = ev->month_end + ttl;
        return 0;
    }
    size_t off = 0;
    int i = 0;
    while (i < nm && (int)cs_le_get(st->dir.p + 5 * i, 2) <= ev->month) {
        off += cs_le_get(st->dir.p + 5 * i + 2, 3);
        i++;
    }
    if (i > 0 && (int)cs_le_get(st->dir.p + 5 * (i - 1), 2) == ev->month) {
        unsigned char *c = st->dir.p + 5 * (i - 1) + 2;
        cs_le_put(c, cs_le_get(c, 3) + 1, 3);
    } else {
        if (cs_buf_splice(&st->dir, 5 * (size_t)i, 0, entry, 5))
            return cs_v2_bad(st, "out of memory");
        st->nm = nm + 1;
        if (i == 0)
            st->prune_at = ev->month_end + ttl;
    }
    if (off * 8 > st->dig.len)
        return cs_v2_bad(st, "the de-duplication record is malformed");
    return cs_buf_splice(&st->dig, off * 8, 0, ev->digest, 8)
               ? cs_v2_bad(st, "out of memory")
               : 0;
}

/* Forgets the months that ended before as_of - seen_ttl */
static void cs_v2_seen_prune(cs_v2_state_t *st, int64_t ttl)
{
    if (!st->has_as_of || st->as_of < st->prune_at)
        return;
    int k = 0;
    size_t drop = 0;
    while (k < st->nm &&
           cs_v2_month_start((int)cs_le_get(st->dir.p + 5 * k, 2) + 1) + ttl <=
               st->as_of) {
        drop += cs_le_get(st->dir.p + 5 * k + 2, 3);
        k++;
    }
    st->nm -= k;
    cs_buf_splice(&st->dir, 0, 5 * (size_t)k, NULL, 0);
    cs_buf_splice(&st->dig, 0, drop * 8 < st->dig.len ? drop * 8 : st->dig.len, NULL, 0);
    st->prune_at = st->nm > 0 ? cs_v2_month_start((int)cs_le_get(st->dir.p, 2) + 1) + ttl
                              : CS_V2_NEVER;
}

/* ------------------------------------------------------------------ apply */

/* Level after applying an event, with hysteresis (risk_common.lua's threshold_level) */
static int cs_v2_threshold_level(const cs_rules_levels_t *L, int level, double s,
                                 int hold)
{
    int up = CS_LEVEL_NONE;
    if (s >= L->inspect_raise)
        up = CS_LEVEL_INSPECT;
    else if (s >= L->watch_raise)
        up = CS_LEVEL_WATCH;
    if (up > level)
        return up;
    if (level == CS_LEVEL_INSPECT) {
        if (hold || s >= L->inspect_clear)
            return CS_LEVEL_INSPECT;
        if (s < L->watch_clear)
            return CS_LEVEL_NONE;
        return CS_LEVEL_WATCH;
    }
    if (level == CS_LEVEL_WATCH && s < L->watch_clear)
        return CS_LEVEL_NONE;
    return level;
}

/* A redelivered event: re-emit the kept alerts it triggered (the pending ones, then
 * last_alert), each identity once per call */
static int cs_v2_reemit(cs_v2_state_t *st, const char *ekey)
{
    if (!st->reemitting) {
        if (cs_v2_decode_alerts(st))
            return -1;
        st->reemitting = 1;
    }
    for (int i = 0; i <= st->npending0; i++) {
        const cs_v2_alert_t *al = i < st->npending0 ? &st->pending0[i]
                                  : st->has_last0   ? &st->last0
                                                    : NULL;
        if (!al || strcmp(al->triggered_by, ekey))
            continue;
        int again = 0;
        for (int k = 0; k < st->nreemit && !again; k++)
            again = st->reemit[k]->kind == al->kind &&
                    st->reemit[k]->level == al->level &&
                    !strcmp(st->reemit[k]->triggered_by, al->triggered_by);
        if (again)
            continue;
        if (st->nreemit == st->reemit_cap) {
            int cap = st->reemit_cap ? st->reemit_cap * 2 : 4;
            const cs_v2_alert_t **grown =
                realloc(st->reemit, (size_t)cap * sizeof(*grown));
            if (!grown)
                return cs_v2_bad(st, "out of memory");
            st->reemit = grown;
            st->reemit_cap = cap;
        }
        st->reemit[st->nreemit++] = al;
    }
    return 0;
}

static cs_v2_alert_t *cs_v2_new_alert(cs_v2_state_t *st)
{
    if (st->nfresh == st->fresh_cap) {
        int cap = st->fresh_cap ? st->fresh_cap * 2 : 4;
        cs_v2_alert_t *grown = realloc(st->fresh, (size_t)cap * sizeof(*grown));
        if (!grown)
            return NULL;
        st->fresh = grown;
        st->fresh_cap = cap;
    }
    cs_v2_alert_t *al = &st->fresh[st->nfresh++];
    memset(al, 0, sizeof(*al));
    return al;
}

/* One unseen event applied (risk_v2.lua's apply, the "else" branch) */
static int cs_v2_apply_one(const cs_scorer_t *s, cs_v2_state_t *st, int kind,
                           const cs_v2_event_t *ev)
{
    const cs_rules_t *R = s->rules;
    int64_t ttl = R->seen_ttl_s * 1000;
    if (cs_v2_seen_add(st, ev, ttl))
        return -1;
    double w = ev->weight;
    int area = ev->area;
    if (!st->has_as_of) {
        st->s = w;
        st->a[area < 3 ? area : 3] = w;
        st->as_of = ev->t;
        st->has_as_of = 1;
    } else if (ev->t >= st->as_of) {
        double f = pow(2.0, -(double)(ev->t - st->as_of) / R->half_life_ms);
        st->s = st->s * f + w;
        for (int i = 0; i < CS_AREA_COUNT; i++)
            st->a[i] = st->a[i] * f;
        st->a[area < 3 ? area : 3] += w;
        st->as_of = ev->t;
    } else {
        double dw = w * pow(2.0, -(double)(st->as_of - ev->t) / R->half_life_ms);
        st->s = st->s + dw;
        st->a[area < 3 ? area : 3] += dw;
    }
    if (ev->flags >= 2)
        st->assurance++;
    st->total++;
    st->last_p = ev->partition;
    st->last_o = ev->offset;
    st->has_pos = 1;

    int64_t cutoff = st->as_of - R->window_ms;
    int pi = -1;
    if (ev->t >= cutoff) {
        pi = cs_v2_prefix_of(st, ev);
        if (pi == -1)
            return cs_v2_bad(st,
                             "more than 255 partner organisations in the 90-day list");
        if (pi < 0)
            return -1;
        size_t len = 11 + ev->ref_len;
        if (len > 255)
            return cs_v2_bad(st, "an event key is too long");
        /* the same member (event_key, signal, severity) already listed — the event
         * resent with another occurred_at, in another month — moves */
        unsigned char rec[11 + 255], probe[4 + 255];
        probe[0] = (unsigned char)ev->signal;
        probe[1] = (unsigned char)ev->severity;
        probe[2] = (unsigned char)pi;
        memcpy(probe + 3, ev->ref, ev->ref_len);
        probe[3 + ev->ref_len] = (unsigned char)len;
        size_t plen = 4 + ev->ref_len;
        for (size_t at = cs_find(&st->list, 0, probe, plen); at != (size_t)-1;
             at = cs_find(&st->list, at + 1, probe, plen)) {
            if (at >= 7 && cs_v2_record_at(&st->list, at - 7)) {
                cs_buf_splice(&st->list, at - 7, len, NULL, 0);
                st->nlist--;
                break;
            }
        }
        rec[0] = (unsigned char)len;
        cs_le_put(rec + 1, (uint64_t)ev->t, 6);
        memcpy(rec + 7, probe, plen);
        if (cs_v2_list_insert(st, ev, rec, len + 0))
            return -1;
    }
    cs_v2_list_trim(st, R->events_max, cutoff);

    int new_level = st->level, reason = CS_REASON_THRESHOLD;
    if ((ev->flags & 1) && st->as_of - ev->t < R->hold_ms) {
        /* "significant risk of harm": INSPECT at once, held for hold from the latest
         * immediate event */
        if (!st->has_imm || ev->t > st->imm_at) {
            st->imm_at = ev->t;
            st->has_imm = 1;
        }
        if (st->level < CS_LEVEL_INSPECT) {
            new_level = CS_LEVEL_INSPECT;
            reason = CS_REASON_IMMEDIATE;
        }
    } else {
        int hold = st->has_imm && st->as_of - st->imm_at < R->hold_ms;
        new_level = cs_v2_threshold_level(&R->levels[kind], st->level, st->s, hold);
    }
    if (new_level == st->level)
        return 0;
    if (pi < 0) {
        pi = cs_v2_prefix_of(st, ev);
        if (pi == -1)
            return cs_v2_bad(st,
                             "more than 255 partner organisations in the 90-day list");
        if (pi < 0)
            return -1;
    }
    cs_v2_alert_t *al = cs_v2_new_alert(st);
    if (!al)
        return cs_v2_bad(st, "out of memory");
    al->kind = new_level > st->level ? CS_ALERT_RAISED : CS_ALERT_CLEARED;
    al->level = (unsigned char)new_level;
    al->prev = (unsigned char)st->level;
    al->reason = (unsigned char)reason;
    al->score = st->s;
    al->as_of = st->as_of;
    memcpy(al->area, st->a, sizeof(al->area));
    al->pidx = pi;
    al->ref_len = ev->ref_len;
    memcpy(al->ref, ev->ref, ev->ref_len);
    snprintf(al->triggered_by, sizeof(al->triggered_by), "%.*s%.*s", (int)ev->prefix_len,
             ev->prefix, (int)ev->ref_len, ev->ref);
    if (cs_v2_list_recent(st, R->recent_max, al))
        return -1;
    st->level = new_level;
    st->level_since = st->as_of;
    return 0;
}

static void cs_v2_header(const cs_v2_state_t *st, unsigned char h[CS_V2_HDR])
{
    h[0] = CS_V2_VERSION;
    h[1] = (unsigned char)st->level;
    h[2] = (unsigned char)((st->has_imm ? 1 : 0) | (st->has_pos ? 2 : 0));
    cs_le_put_double(h + 3, st->s);
    for (int i = 0; i < CS_AREA_COUNT; i++)
        cs_le_put_double(h + 11 + 8 * i, st->a[i]);
    cs_le_put(h + 43, (uint64_t)st->as_of, 6);
    cs_le_put(h + 49, (uint64_t)st->level_since, 6);
    cs_le_put(h + 55, (uint64_t)(st->has_imm ? st->imm_at : 0), 6);
    cs_le_put(h + 61, (uint64_t)st->prune_at, 6);
    cs_le_put(h + 67, st->assurance, 4);
    cs_le_put(h + 71, st->total, 4);
    cs_le_put(h + 75, st->dups, 4);
    cs_le_put(h + 79, (uint64_t)(uint32_t)(st->has_pos ? st->last_p : 0), 4);
    cs_le_put(h + 83, (uint64_t)(st->has_pos ? st->last_o : 0), 6);
    h[89] = (unsigned char)st->npre;
    cs_le_put(h + 90, st->pre.len, 2);
    cs_le_put(h + 92, (uint64_t)st->nlist, 2);
    cs_le_put(h + 94, st->list.len, 2);
    cs_le_put(h + 96, (uint64_t)st->nm, 2);
    cs_le_put(h + 98, st->dig.len / 8, 4);
}

/* An alert as the outcome carries it: what cs_scorer_parse_alert makes of the JSON the
 * function replies with */
static int cs_v2_outcome_alert(const cs_scorer_t *s, cs_v2_state_t *st,
                               const cs_v2_alert_t *al, const cs_score_input_t *in,
                               size_t n, cs_alert_t *a)
{
    memset(a, 0, sizeof(*a));
    a->subject_kind = in[0].ev->subject_kind;
    snprintf(a->subject_id, sizeof(a->subject_id), "%s", in[0].ev->subject_id);
    a->kind = (cs_alert_kind_t)(al->kind % CS_ALERT_KIND_COUNT);
    a->level = (cs_level_t)(al->level % CS_LEVEL_COUNT);
    a->previous_level = (cs_level_t)(al->prev % CS_LEVEL_COUNT);
    a->reason = (cs_reason_t)(al->reason % CS_REASON_COUNT);
    a->score = al->score;
    a->as_of = al->as_of;
    memcpy(a->area_scores, al->area, sizeof(a->area_scores));
    snprintf(a->triggered_by, sizeof(a->triggered_by), "%s", al->triggered_by);
    for (size_t p = 0; p < al->recent.len && a->nrecent < CS_ALERT_RECENT_MAX;) {
        const unsigned char *r = al->recent.p + p;
        cs_recent_event_t *e = &a->recent[a->nrecent++];
        char key[CS_V2_TRIGGER_MAX];
        if (cs_v2_key(st, r[8], r + 10, r[9], key, sizeof(key)))
            return -1;
        snprintf(e->event_key, sizeof(e->event_key), "%s", key);
        e->occurred_at = cs_le_sget(r, 6);
        e->signal = (cs_signal_t)(r[6] % CS_SIGNAL_COUNT);
        e->severity = (cs_severity_t)(r[7] % CS_SEVERITY_COUNT);
        p += 10 + r[9];
    }
    snprintf(a->rules_version, sizeof(a->rules_version), "%s", s->rules->version);
    const cs_intel_event_t *t = in[0].ev;
    for (size_t k = 0; k < n; k++)
        if (!strcmp(in[k].ev->event_key, a->triggered_by))
            t = in[k].ev;
    snprintf(a->region, sizeof(a->region), "%s", t->region);
    snprintf(a->local_authority_code, sizeof(a->local_authority_code), "%s",
             t->local_authority_code);
    cs_alert_set_id(a);
    return 0;
}

static int cs_v2_outcome(const cs_scorer_t *s, cs_v2_state_t *st,
                         const cs_score_input_t *in, size_t n, cs_score_outcome_t *out)
{
    out->score = st->s;
    out->as_of = st->has_as_of ? st->as_of : 0;
    out->level = (cs_level_t)(st->level % CS_LEVEL_COUNT);
    out->nreemitted = st->nreemit;
    out->nalerts = st->nfresh + st->nreemit;
    if (!out->nalerts)
        return 0;
    out->alerts = calloc((size_t)out->nalerts, sizeof(cs_alert_t));
    if (!out->alerts)
        return cs_v2_bad(st, "out of memory");
    for (int i = 0; i < out->nalerts; i++)
        if (cs_v2_outcome_alert(
                s, st, i < st->nfresh ? &st->fresh[i] : st->reemit[i - st->nfresh], in, n,
                &out->alerts[i]))
            return -1;
    return 0;
}

cs_err_t cs_v2_compute(const cs_scorer_t *s, const redisReply *state,
                       const cs_score_input_t *in, size_t n, unsigned char **value,
                       size_t *value_len, cs_score_outcome_t *out, char *errstr,
                       size_t errstr_size)
{
    memset(out, 0, sizeof(*out));
    *value = NULL;
    *value_len = 0;
    cs_v2_state_t st;
    memset(&st, 0, sizeof(st));
    int kind = in[0].ev->subject_kind == CS_SUBJECT_LOCATION ? 0 : 1;
    int64_t ttl = s->rules->seen_ttl_s * 1000;
    int rewrite = 0, counters_only = 0, rc = cs_v2_load(&st, state);
    for (size_t i = 0; !rc && i < n; i++) {
        cs_v2_event_t ev;
        cs_v2_event_of(s, &in[i], &ev);
        /* the de-duplication record decides whether the event was applied, never the
         * offset alone (risk_v2.lua) */
        int behind = st.has_pos && st.last_p == ev.partition && ev.offset <= st.last_o;
        if (cs_v2_seen(&st, ev.digest)) {
            if (behind) {
                out->redeliveries++;
                rc = cs_v2_reemit(&st, in[i].ev->event_key);
            } else {
                out->duplicates++;
                st.dups++;
                st.last_p = ev.partition;
                st.last_o = ev.offset;
                st.has_pos = 1;
                counters_only = 1;
            }
        } else {
            rewrite = 1;
            if (behind)
                out->regressions++;
            out->applied++;
            rc = cs_v2_apply_one(s, &st, kind, &ev);
        }
    }
    cs_buf_t v = {0};
    if (!rc && (rewrite || counters_only)) {
        unsigned char h[CS_V2_HDR];
        if (rewrite || st.alerts_set) {
            cs_v2_seen_prune(&st, ttl);
            if (st.nfresh) {
                rc = cs_v2_decode_alerts(&st) ||
                     cs_v2_encode_alerts(&st, &st.fresh[st.nfresh - 1], st.pending0,
                                         st.npending0, st.fresh, st.nfresh, &st.alerts);
                st.alerts_set = 1;
            }
            cs_v2_header(&st, h);
            if (!rc &&
                (cs_buf_add(&v, h, sizeof(h)) || cs_buf_add(&v, st.pre.p, st.pre.len) ||
                 cs_buf_add(&v, st.dir.p, st.dir.len) ||
                 cs_buf_add(&v, st.dig.p, st.dig.len) ||
                 cs_buf_add(&v, st.list.p, st.list.len) ||
                 cs_buf_add(&v, st.alerts_set ? st.alerts.p : st.raw_alerts,
                            st.alerts_set ? st.alerts.len : st.raw_alerts_len)))
                rc = cs_v2_bad(&st, "out of memory");
        } else {
            /* partner duplicates only: the counters and the position, the rest as it
             * was (the function's SETRANGE of the header) */
            cs_v2_header(&st, h);
            if (cs_buf_add(&v, h, sizeof(h)) ||
                cs_buf_add(&v, (const unsigned char *)state->str + CS_V2_HDR,
                           state->len - CS_V2_HDR))
                rc = cs_v2_bad(&st, "out of memory");
        }
    }
    if (!rc)
        rc = cs_v2_outcome(s, &st, in, n, out);
    cs_err_t err = CS_OK;
    if (rc) {
        snprintf(errstr, errstr_size, "CS_STATE %s", st.why[0] ? st.why : "malformed");
        cs_score_outcome_release(out);
        free(v.p);
        err = CS_ERR_REDIS;
    } else if (v.len) {
        *value = v.p;
        *value_len = v.len;
    } else {
        free(v.p);
    }
    cs_v2_state_free(&st);
    return err;
}

/* risk_v2.lua's ack: the pending alerts whose identity (kind, level, triggered_by) is
 * among the delivered ones leave the state; the rest of the value is kept byte for
 * byte. */
cs_err_t cs_v2_compute_ack(const redisReply *state, const cs_alert_t *alerts, size_t n,
                           unsigned char **value, size_t *value_len, int *removed,
                           char *errstr, size_t errstr_size)
{
    *value = NULL;
    *value_len = 0;
    *removed = 0;
    cs_v2_state_t st;
    memset(&st, 0, sizeof(st));
    int rc = cs_v2_load(&st, state);
    if (!rc && state->type == REDIS_REPLY_STRING && st.raw_alerts_len)
        rc = cs_v2_decode_alerts(&st);
    int keep = 0;
    for (int i = 0; !rc && i < st.npending0; i++) {
        const cs_v2_alert_t *al = &st.pending0[i];
        int delivered = 0;
        for (size_t k = 0; k < n && !delivered; k++)
            delivered = al->kind == (unsigned)alerts[k].kind &&
                        al->level == (unsigned)alerts[k].level &&
                        !strcmp(al->triggered_by, alerts[k].triggered_by);
        if (!delivered) {
            if (keep != i) {
                cs_v2_alert_t t = st.pending0[keep];
                st.pending0[keep] = st.pending0[i];
                st.pending0[i] = t;
            }
            keep++;
        }
    }
    cs_buf_t v = {0};
    if (!rc && keep != st.npending0) {
        *removed = st.npending0 - keep;
        size_t head = state->len - st.raw_alerts_len;
        rc = cs_v2_encode_alerts(&st, st.has_last0 ? &st.last0 : NULL, st.pending0, keep,
                                 NULL, 0, &st.alerts) ||
             cs_buf_add(&v, (const unsigned char *)state->str, head) ||
             cs_buf_add(&v, st.alerts.p, st.alerts.len);
        if (rc && !st.why[0])
            cs_v2_bad(&st, "out of memory");
    }
    cs_err_t err = CS_OK;
    if (rc) {
        snprintf(errstr, errstr_size, "CS_STATE %s", st.why[0] ? st.why : "malformed");
        free(v.p);
        *removed = 0;
        err = CS_ERR_REDIS;
    } else {
        *value = v.p;
        *value_len = v.len;
    }
    cs_v2_state_free(&st);
    return err;
}
