/* The differential test of the state layouts and engines (docs/contract/redis-layout.md):
 * layout 1 (lib/risk.lua), layout 2 (lib/risk_v2.lua) and layout 2 computed in the
 * scorer (state.engine = scorer: lib/score_v2_compute.c through lib/engine.c's
 * WATCH/MULTI/EXEC) side by side in one real
 * redis-server, fed the same random calls: partner duplicates, events out of
 * order and on the same millisecond, resends moved to another month, redelivered
 * batches ("crashes" before the alerts were published), acknowledgements early, late or
 * never, several partitions, an offset restart, many partner organisations, and a small
 * list cap. Every reply (parsed: scores bit for bit, counts, every alert field and id)
 * and every subject's view (score, areas, level, list, last alert, pending, months) must
 * be identical. The feeds span less than the 396-day horizon, within which layout 2's
 * de-duplication record is exact (the months both report are the same). */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caresignal/engine.h"
#include "caresignal/score.h"
#include "testenv.h"

#define DAY 86400000LL
#define T0  1790000000000LL

static cs_test_redis_t server;
static cs_redis_t *redis;
static char errstr[512];

static uint64_t rng_state;
static uint64_t rnd(void)
{
    /* splitmix64: a reproducible feed per seed */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
static int below(int n)
{
    return (int)(rnd() % (uint64_t)n);
}

static int group_setup(void **state)
{
    (void)state;
    if (cs_test_redis_start(&server))
        return -1;
    redis = cs_redis_new("127.0.0.1", server.port, NULL, 10000);
    return redis && !cs_redis_connect(redis, errstr, sizeof(errstr)) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    cs_redis_destroy(redis);
    cs_test_redis_stop(&server);
    return 0;
}

enum { NSUBJECTS = 4, POOL = 400, MAXCALL = 6, MAXMSG = 4000 };
static const char *const subjects[NSUBJECTS] = {
    "LOCATION:1-100000001", "LOCATION:1-100000002", "LOCATION:1-100000003",
    "LOCAL_AREA:E09000001"};

typedef struct message {
    cs_intel_event_t ev;
    int32_t partition;
    int64_t offset;
} message_t;

typedef struct feed_opts {
    uint64_t seed;
    int calls;
    int events_max, recent_max; /* 0: the rules file's */
    int many_orgs;              /* most events are subject 0's, from 2000 orgs */
} feed_opts_t;

/* A new event of subject \p k: a fresh key from the pool (or, many_orgs, from one of
 * 400 organisations), a time mostly moving forward, sometimes far back or on the
 * millisecond of an earlier one. */
static void make_event(cs_rules_t *rules, const feed_opts_t *o, int k, int64_t *clock,
                       const message_t *msgs, int nmsgs, cs_intel_event_t *e)
{
    memset(e, 0, sizeof(*e));
    static const char *const prefixes[] = {"NHSE:RXQ:", "CCG:15E:", "NHSE:R1H:"};
    static const char *const refs[] = {"%d", "B-%07d", "INC/%d:x",
                                       "%d-a-much-longer-ref"};
    int pick = below(POOL);
    char ref[64];
    snprintf(ref, sizeof(ref), refs[pick % 4], pick);
    if (k == NSUBJECTS - 1)
        snprintf(e->event_key, sizeof(e->event_key), "OFSTED_SEND:E09000001:%s", ref);
    else if (o->many_orgs && k == 0)
        snprintf(e->event_key, sizeof(e->event_key), "NHSE:O%04d:%s", below(2000), ref);
    else
        snprintf(e->event_key, sizeof(e->event_key), "%s%s", prefixes[below(3)], ref);
    e->subject_kind = k == NSUBJECTS - 1 ? CS_SUBJECT_LOCAL_AREA : CS_SUBJECT_LOCATION;
    snprintf(e->subject_id, sizeof(e->subject_id), "%s", strchr(subjects[k], ':') + 1);
    e->signal = (cs_signal_t)below(CS_SIGNAL_COUNT);
    /* mostly INFO and LOW, so that levels rise and fall */
    static const cs_severity_t sevs[50] = {[0 ... 24] = CS_SEVERITY_INFO,
                                           [25 ... 39] = CS_SEVERITY_LOW,
                                           [40 ... 45] = CS_SEVERITY_MEDIUM,
                                           [46 ... 48] = CS_SEVERITY_HIGH,
                                           [49] = CS_SEVERITY_CRITICAL};
    e->severity = sevs[below(50)];
    e->area = rules->area_of_signal[e->signal];
    int r = below(20);
    if (r < 13 && *clock < T0 + 380 * DAY) /* the feed stays within the horizon */
        e->occurred_at = (*clock += below(96) * 3600000LL + below(1000));
    else if (r < 13)
        e->occurred_at = *clock;
    else if (r < 17)
        e->occurred_at = *clock - below(120) * DAY - below(1000);
    else if (nmsgs)
        e->occurred_at = msgs[below(nmsgs)].ev.occurred_at; /* a tie */
    else
        e->occurred_at = *clock;
    if (e->occurred_at < T0)
        e->occurred_at = T0 + below(1000);
    snprintf(e->region, sizeof(e->region), "London");
    snprintf(e->local_authority_code, sizeof(e->local_authority_code), "E09000001");
}

static char *outcome_text(const cs_score_outcome_t *o)
{
    char head[512];
    snprintf(head, sizeof(head), "%a %lld %d %d %d %d %d %d %d", o->score,
             (long long)o->as_of, (int)o->level, o->applied, o->duplicates,
             o->redeliveries, o->regressions, o->nalerts, o->nreemitted);
    json_t *j = json_pack("{s:s, s:[]}", "head", head, "alerts");
    for (int i = 0; i < o->nalerts; i++)
        json_array_append_new(json_object_get(j, "alerts"),
                              cs_alert_to_json(&o->alerts[i]));
    char *text = json_dumps(j, JSON_SORT_KEYS);
    json_decref(j);
    return text;
}

static char *view_text(const cs_subject_view_t *v)
{
    json_t *j = cs_subject_view_json(v);
    char bits[160];
    snprintf(bits, sizeof(bits), "%a %a %a %a %a", v->score, v->area_scores[0],
             v->area_scores[1], v->area_scores[2], v->area_scores[3]);
    json_object_set_new(j, "score_bits", json_string(bits));
    char *text = json_dumps(j, JSON_SORT_KEYS);
    json_decref(j);
    return text;
}

/* Two texts that differ, whole, into files (a failure message cuts them short) */
static void keep_texts(const char *path_a, const char *a, const char *path_b,
                       const char *b)
{
    const char *paths[] = {path_a, path_b}, *texts[] = {a, b};
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(paths[i], "w");
        if (f) {
            fputs(texts[i], f);
            fclose(f);
        }
    }
}

/* computed in the scorer: its scorer and engine */
static cs_scorer_t *v3;
static cs_engine_t *engine3;

/* The same call through the engine computing in the scorer: the same counts and alerts
 * as \p want (the functions' outcome) */
static void call_here(const cs_score_input_t *in, size_t n,
                      const cs_score_outcome_t *want)
{
    cs_engine_event_t ev[MAXCALL];
    for (size_t i = 0; i < n; i++)
        ev[i] =
            (cs_engine_event_t){*in[i].ev, "intel.events", in[i].partition, in[i].offset};
    cs_engine_result_t r;
    if (cs_engine_apply(engine3, ev, n, 0, &r, errstr, sizeof(errstr)))
        fail_msg("%s", errstr);
    if (r.nfailed)
        fail_msg("computed in the scorer: %s", r.failure);
    cs_score_outcome_t got = {.score = want->score,
                              .as_of = want->as_of,
                              .level = want->level,
                              .applied = (int)r.applied,
                              .duplicates = (int)r.duplicates,
                              .redeliveries = (int)r.redeliveries,
                              .regressions = (int)r.regressions,
                              .nalerts = r.nalerts,
                              .nreemitted = r.nreemitted,
                              .alerts = r.alerts};
    char *a = outcome_text(&got), *b = outcome_text(want);
    if (strcmp(a, b)) {
        keep_texts("/tmp/diff-here.json", a, "/tmp/diff-v1.json", b);
        fail_msg("replies differ\n  in the scorer: %s\n  layout 1: %s", a, b);
    }
    free(a);
    free(b);
}

/* the order lib/engine.c applies a subject's events in */
static int by_position(const void *a, const void *b)
{
    const cs_score_input_t *x = a, *y = b;
    if (x->partition != y->partition)
        return x->partition < y->partition ? -1 : 1;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Applies \p in (sorted as the engine does) with every engine; asserts the same
 * outcome. */
static void call_both(cs_scorer_t *v2, cs_scorer_t *v1, const cs_score_input_t *in,
                      size_t n, cs_score_outcome_t *out)
{
    qsort((void *)in, n, sizeof(*in), by_position);
    cs_redis_pipe_t *p = cs_redis_pipe_new();
    assert_int_equal(cs_scorer_add_call(v2, p, in, n), CS_OK);
    assert_int_equal(cs_scorer_add_call(v1, p, in, n), CS_OK);
    assert_int_equal(cs_redis_pipe_exec(redis, p, errstr, sizeof(errstr)), CS_OK);
    cs_score_outcome_t o1;
    if (cs_scorer_parse_reply(v2, cs_redis_pipe_reply(p, 0), in, n, out, errstr,
                              sizeof(errstr)) ||
        cs_scorer_parse_reply(v2, cs_redis_pipe_reply(p, 1), in, n, &o1, errstr,
                              sizeof(errstr)))
        fail_msg("%s", errstr);
    char *a = outcome_text(out), *b = outcome_text(&o1);
    if (strcmp(a, b))
        fail_msg("replies differ\n  layout 2: %s\n  layout 1: %s", a, b);
    free(a);
    free(b);
    call_here(in, n, &o1);
    cs_score_outcome_release(&o1);
    cs_redis_pipe_destroy(p);
}

static void ack_both(cs_scorer_t *v2, cs_scorer_t *v1, const cs_alert_t *alerts, size_t n)
{
    if (!n)
        return;
    cs_redis_pipe_t *p = cs_redis_pipe_new();
    char subject[CS_SUBJECT_KEY_MAX], key3[256];
    cs_subject_key(alerts[0].subject_kind, alerts[0].subject_id, subject,
                   sizeof(subject));
    cs_scorer_state_key(v3, subject, key3, sizeof(key3));
    const char *get[] = {"GET", key3};
    assert_int_equal(cs_scorer_add_ack(v2, p, alerts, n), CS_OK);
    assert_int_equal(cs_scorer_add_ack(v1, p, alerts, n), CS_OK);
    assert_int_equal(cs_redis_pipe_add(p, 2, get, NULL), CS_OK);
    assert_int_equal(cs_redis_pipe_exec(redis, p, errstr, sizeof(errstr)), CS_OK);
    const redisReply *r2 = cs_redis_pipe_reply(p, 0), *r1 = cs_redis_pipe_reply(p, 1);
    assert_int_equal(r2->type, REDIS_REPLY_INTEGER);
    assert_int_equal(r2->integer, r1->integer);
    /* computed in the scorer: the acknowledgement too, from the value read */
    unsigned char *value;
    size_t len;
    int removed;
    if (cs_scorer_compute_ack(v3, cs_redis_pipe_reply(p, 2), alerts, n, &value, &len,
                              &removed, errstr, sizeof(errstr)))
        fail_msg("%s", errstr);
    assert_int_equal(removed, r1->integer);
    assert_true((value != NULL) == (removed > 0));
    if (value) {
        cs_redis_pipe_reset(p);
        const char *set[] = {"SET", key3, (const char *)value};
        size_t lens[] = {3, strlen(key3), len};
        assert_int_equal(cs_redis_pipe_add(p, 3, set, lens), CS_OK);
        assert_int_equal(cs_redis_pipe_exec(redis, p, errstr, sizeof(errstr)), CS_OK);
        free(value);
    }
    cs_redis_pipe_destroy(p);
}

/* Computed in the scorer, the stored values are byte for byte the function's */
static void compare_values(cs_scorer_t *v2, int step)
{
    cs_redis_pipe_t *p = cs_redis_pipe_new();
    for (int k = 0; k < NSUBJECTS; k++) {
        char key2[256], key3[256];
        cs_scorer_state_key(v2, subjects[k], key2, sizeof(key2));
        cs_scorer_state_key(v3, subjects[k], key3, sizeof(key3));
        const char *g2[] = {"GET", key2}, *g3[] = {"GET", key3};
        cs_redis_pipe_add(p, 2, g2, NULL);
        cs_redis_pipe_add(p, 2, g3, NULL);
    }
    assert_int_equal(cs_redis_pipe_exec(redis, p, errstr, sizeof(errstr)), CS_OK);
    for (int k = 0; k < NSUBJECTS; k++) {
        const redisReply *a = cs_redis_pipe_reply(p, 2 * (size_t)k);
        const redisReply *b = cs_redis_pipe_reply(p, 2 * (size_t)k + 1);
        if (a->type != b->type || a->len != b->len ||
            (a->len && memcmp(a->str, b->str, a->len)))
            fail_msg("step %d: %s: the value computed in the scorer (%zu bytes) is not "
                     "the function's (%zu bytes)",
                     step, subjects[k], b->len, a->len);
    }
    cs_redis_pipe_destroy(p);
}

static void compare_views(cs_scorer_t *v2, cs_scorer_t *v1, int step)
{
    compare_values(v2, step);
    cs_subject_view_t a[NSUBJECTS];
    assert_int_equal(
        cs_scorer_read(v2, redis, subjects, NSUBJECTS, a, errstr, sizeof(errstr)), CS_OK);
    cs_subject_view_t bs[NSUBJECTS];
    assert_int_equal(
        cs_scorer_read(v1, redis, subjects, NSUBJECTS, bs, errstr, sizeof(errstr)),
        CS_OK);
    for (int k = 0; k < NSUBJECTS; k++) {
        cs_subject_view_t b = bs[k];
        char *ta = view_text(&a[k]), *tb = view_text(&b);
        if (!cs_subject_view_equal(&a[k], &b) || strcmp(ta, tb)) {
            keep_texts("/tmp/diff-v2.json", ta, "/tmp/diff-v1.json", tb);
            fail_msg("step %d: %s differs\n  layout 2: %s\n  layout 1: %s", step,
                     subjects[k], ta, tb);
        }
        free(ta);
        free(tb);
        cs_subject_view_release(&a[k]);
        cs_subject_view_release(&b);
    }
}

/* what the feeds of one test exercised, all seeds together */
static struct {
    int alerts, reemitted, dups, redeliveries, regressions;
} totals;

static void assert_exercised(void)
{
    assert_true(totals.alerts > 0 && totals.reemitted > 0 && totals.dups > 0 &&
                totals.redeliveries > 0 && totals.regressions > 0);
    memset(&totals, 0, sizeof(totals));
}

typedef struct pending {
    cs_alert_t alerts[256];
    int n;
} pending_t;

static void run_feed(const feed_opts_t *o)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/deploy/config/rules.json", cs_test_source_dir());
    cs_rules_t *rules = cs_rules_load(path, errstr, sizeof(errstr));
    assert_non_null(rules);
    if (o->events_max)
        rules->events_max = o->events_max;
    if (o->recent_max)
        rules->recent_max = o->recent_max;
    snprintf(rules->digest, sizeof(rules->digest), "diff%012llx",
             (unsigned long long)o->seed);
    char ns2[64], ns1[64], ns3[64];
    snprintf(ns3, sizeof(ns3), "d3-%llu", (unsigned long long)o->seed);
    snprintf(ns2, sizeof(ns2), "d2-%llu", (unsigned long long)o->seed);
    snprintf(ns1, sizeof(ns1), "d1-%llu", (unsigned long long)o->seed);
    cs_scorer_t *v2 = cs_scorer_new_layout(rules, ns2, 2, errstr, sizeof(errstr));
    cs_scorer_t *v1 = cs_scorer_new_layout(rules, ns1, 1, errstr, sizeof(errstr));
    v3 = cs_scorer_new_layout(rules, ns3, 2, errstr, sizeof(errstr));
    assert_non_null(v2);
    assert_non_null(v1);
    assert_non_null(v3);
    assert_int_equal(cs_scorer_set_compute(v3, 1, errstr, sizeof(errstr)), CS_OK);
    assert_int_equal(cs_scorer_set_compute(v1, 1, errstr, sizeof(errstr)),
                     CS_ERR_INVALID_ARG);
    assert_non_null(strstr(errstr, "state.engine"));
    engine3 = cs_engine_new(v3, redis, NULL, NULL, NULL);
    assert_non_null(engine3);
    if (cs_redis_function_load(redis, cs_scorer_library(v2), errstr, sizeof(errstr)) ||
        cs_redis_function_load(redis, cs_scorer_library(v1), errstr, sizeof(errstr)) ||
        cs_scorer_claim(v2, redis, errstr, sizeof(errstr)) ||
        cs_scorer_claim(v1, redis, errstr, sizeof(errstr)))
        fail_msg("%s", errstr);

    rng_state = o->seed;
    message_t *msgs = calloc(MAXMSG, sizeof(*msgs));
    pending_t *pend = calloc(NSUBJECTS, sizeof(*pend));
    int nmsgs = 0;
    int64_t clock[NSUBJECTS] = {T0, T0, T0, T0}, next_offset[3] = {0, 0, 0};
    /* the calls made, for redelivery: first message index and count */
    int *call_first = calloc((size_t)o->calls, sizeof(int));
    int *call_n = calloc((size_t)o->calls, sizeof(int));
    int ncalls = 0, alerts = 0, reemitted = 0, dups = 0, redeliveries = 0,
        regressions = 0;
    for (int step = 0; step < o->calls; step++) {
        cs_score_input_t in[MAXCALL];
        size_t n = 0;
        int k = o->many_orgs && below(2) ? 0 : below(NSUBJECTS);
        int r = below(20);
        if (r < 2 && ncalls) {
            /* a crash: a batch read again from its first offset, alerts unpublished */
            int c = ncalls - 1 - below(ncalls < 2 ? ncalls : 2);
            for (int i = 0; i < call_n[c]; i++) {
                const message_t *m = &msgs[call_first[c] + i];
                in[n++] = (cs_score_input_t){&m->ev, m->partition, m->offset};
            }
        } else {
            if (r == 2 && step > 0) {
                /* intel.events recreated: offsets start again */
                int p = below(3);
                next_offset[p] = below(5);
            }
            int want = 1 + below(MAXCALL);
            int first = nmsgs;
            for (int i = 0; i < want && nmsgs < MAXMSG; i++) {
                message_t *m = &msgs[nmsgs];
                int same = -1;
                if (below(8) == 0)
                    for (int j = nmsgs - 1; j >= 0 && j > nmsgs - 200; j--)
                        if (!strcmp(msgs[j].ev.subject_id,
                                    strchr(subjects[k], ':') + 1)) {
                            same = j;
                            break;
                        }
                if (same >= 0) {
                    m->ev = msgs[same].ev; /* a partner duplicate, at a new offset */
                    if (below(3) == 0) {   /* or resent with a date in another month */
                        int64_t moved = (31 + below(40)) * DAY;
                        if (below(2) && m->ev.occurred_at + moved < T0 + 390 * DAY)
                            m->ev.occurred_at += moved;
                        else
                            m->ev.occurred_at -= moved;
                    }
                    if (m->ev.occurred_at < T0)
                        m->ev.occurred_at = T0;
                } else {
                    make_event(rules, o, k, &clock[k], msgs, nmsgs, &m->ev);
                }
                m->partition = below(3);
                m->offset = next_offset[m->partition]++;
                in[n++] = (cs_score_input_t){&m->ev, m->partition, m->offset};
                nmsgs++;
            }
            call_first[ncalls] = first;
            call_n[ncalls++] = (int)n;
        }
        if (!n)
            continue;
        cs_score_outcome_t out;
        call_both(v2, v1, in, n, &out);
        if (out.nalerts && !out.redeliveries && below(2)) {
            /* a crash before the alerts were published: the batch is read again */
            cs_score_outcome_release(&out);
            call_both(v2, v1, in, n, &out);
        }
        alerts += out.nalerts;
        reemitted += out.nreemitted;
        dups += out.duplicates;
        redeliveries += out.redeliveries;
        regressions += out.regressions;
        pending_t *pe = &pend[k];
        for (int i = 0; i < out.nalerts && pe->n < 256; i++)
            pe->alerts[pe->n++] = out.alerts[i];
        cs_score_outcome_release(&out);
        /* acknowledged at once, later, or (a crash between publish and ack) never */
        int a = below(10);
        if (a < 6) {
            ack_both(v2, v1, pe->alerts, (size_t)pe->n);
            pe->n = 0;
        } else if (a == 9) {
            pe->n = 0;
        }
        if (step % 25 == 0 || step == o->calls - 1)
            compare_views(v2, v1, step);
    }
    print_message("seed %llu: %d calls, %d messages, %d alerts (%d re-emitted), %d "
                  "duplicates, %d redeliveries, %d offset regressions: identical\n",
                  (unsigned long long)o->seed, o->calls, nmsgs, alerts, reemitted, dups,
                  redeliveries, regressions);
    totals.alerts += alerts;
    totals.reemitted += reemitted;
    totals.dups += dups;
    totals.redeliveries += redeliveries;
    totals.regressions += regressions;
    free(call_first);
    free(call_n);
    free(msgs);
    free(pend);
    cs_engine_destroy(engine3);
    cs_scorer_destroy(v3);
    cs_scorer_destroy(v1);
    cs_scorer_destroy(v2);
    cs_rules_destroy(rules);
}

/* ------------------------------------------------------------------ two writers */

typedef struct writer {
    cs_scorer_t *scorer;
    const message_t *msgs;
    int n, batch;
    long conflicts, alerts;
    char errstr[512];
    int failed;
} writer_t;

/* One scorer's run over the whole feed, in batches of w->batch, on its own connection */
static void *write_feed(void *arg)
{
    writer_t *w = arg;
    cs_redis_t *r = cs_redis_new("127.0.0.1", server.port, NULL, 10000);
    cs_engine_t *e = r && !cs_redis_connect(r, w->errstr, sizeof(w->errstr))
                         ? cs_engine_new(w->scorer, r, NULL, NULL, NULL)
                         : NULL;
    cs_engine_event_t *ev = calloc((size_t)w->batch, sizeof(*ev));
    w->failed = !e || !ev;
    for (int i = 0; !w->failed && i < w->n; i += w->batch) {
        int n = w->n - i < w->batch ? w->n - i : w->batch;
        for (int k = 0; k < n; k++)
            ev[k] = (cs_engine_event_t){w->msgs[i + k].ev, "intel.events",
                                        w->msgs[i + k].partition, w->msgs[i + k].offset};
        cs_engine_result_t res;
        w->failed = cs_engine_apply(e, ev, (size_t)n, 1, &res, w->errstr,
                                    sizeof(w->errstr)) != CS_OK ||
                    res.nfailed ||
                    cs_engine_ack(e, w->errstr, sizeof(w->errstr)) != CS_OK;
        w->alerts += res.nalerts;
    }
    w->conflicts = e ? cs_engine_conflicts(e) : 0;
    free(ev);
    cs_engine_destroy(e);
    cs_redis_destroy(r);
    return NULL;
}

/* A scorer that lost its partitions (a zombie, still writing for a while) and one that
 * owns the subjects now, both writing the same subjects at once, each its own events
 * in its own batches: the WATCH/MULTI/EXEC fence refuses every write computed from a
 * value that moved, so no write replaces another's — the subjects hold every event of
 * both feeds exactly once, as when one scorer applies one feed after the other (the
 * counts, the months; scores agree to rounding, the order of application differing). */
static void test_two_writers_fenced(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof(path), "%s/deploy/config/rules.json", cs_test_source_dir());
    cs_rules_t *rules = cs_rules_load(path, errstr, sizeof(errstr));
    assert_non_null(rules);
    snprintf(rules->digest, sizeof(rules->digest), "fence0000000001");
    cs_scorer_t *both = cs_scorer_new_layout(rules, "fenced", 2, errstr, sizeof(errstr));
    cs_scorer_t *once = cs_scorer_new_layout(rules, "once", 2, errstr, sizeof(errstr));
    assert_non_null(both);
    assert_non_null(once);
    assert_int_equal(cs_scorer_set_compute(both, 1, errstr, sizeof(errstr)), CS_OK);
    assert_int_equal(cs_scorer_set_compute(once, 1, errstr, sizeof(errstr)), CS_OK);
    assert_int_equal(cs_scorer_claim(both, redis, errstr, sizeof(errstr)), CS_OK);
    assert_int_equal(cs_scorer_claim(once, redis, errstr, sizeof(errstr)), CS_OK);
    enum { N = 2000 };
    message_t *msgs = calloc(2 * N, sizeof(*msgs)); /* the owner's, then the zombie's */
    rng_state = 77;
    feed_opts_t o = {.seed = 77};
    int64_t clock[NSUBJECTS] = {T0, T0, T0, T0};
    for (int i = 0; i < N; i++) {
        int k = below(NSUBJECTS);
        make_event(rules, &o, k, &clock[k], msgs, i, &msgs[i].ev);
        msgs[i].partition = 0;
        msgs[i].offset = i;
        msgs[N + i] = msgs[i];
        size_t len = strlen(msgs[i].ev.event_key);
        snprintf(msgs[N + i].ev.event_key + len, sizeof(msgs[i].ev.event_key) - len,
                 "-z");
        msgs[N + i].partition = 1;
    }
    writer_t a = {both, msgs, N, 7, 0, 0, "", 0}, b = {both, msgs + N, N, 3, 0, 0, "", 0};
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, write_feed, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, write_feed, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    if (a.failed || b.failed)
        fail_msg("%s%s", a.errstr, b.errstr);
    long conflicts = a.conflicts + b.conflicts;
    writer_t ref = {once, msgs, 2 * N, 5, 0, 0, "", 0};
    write_feed(&ref);
    assert_false(ref.failed);
    cs_subject_view_t x[NSUBJECTS], y[NSUBJECTS];
    assert_int_equal(
        cs_scorer_read(both, redis, subjects, NSUBJECTS, x, errstr, sizeof(errstr)),
        CS_OK);
    assert_int_equal(
        cs_scorer_read(once, redis, subjects, NSUBJECTS, y, errstr, sizeof(errstr)),
        CS_OK);
    for (int k = 0; k < NSUBJECTS; k++) {
        char *tx = view_text(&x[k]), *ty = view_text(&y[k]);
        int same = x[k].events_total == y[k].events_total &&
                   x[k].duplicates == y[k].duplicates &&
                   x[k].assurance == y[k].assurance && x[k].as_of == y[k].as_of &&
                   x[k].nmonths == y[k].nmonths && x[k].npending == 0 &&
                   y[k].npending == 0 &&
                   fabs(x[k].score - y[k].score) <= 1e-9 * fabs(y[k].score);
        for (int i = 0; same && i < x[k].nmonths; i++)
            same = x[k].months[i].event_keys == y[k].months[i].event_keys;
        if (!same)
            fail_msg("%s differs\n  two writers: %s\n  one: %s", subjects[k], tx, ty);
        free(tx);
        free(ty);
        cs_subject_view_release(&x[k]);
        cs_subject_view_release(&y[k]);
    }
    print_message("two writers, %d events each: %ld writes refused and computed again; "
                  "every event held once; %ld alerts, every one acknowledged\n",
                  N, conflicts, a.alerts + b.alerts);
    assert_true(conflicts > 0);
    assert_true(a.alerts + b.alerts > 0);
    free(msgs);
    cs_scorer_destroy(both);
    cs_scorer_destroy(once);
    cs_rules_destroy(rules);
}

/* Computing in the scorer, a subject whose state key holds another type (a layout 1
 * hash, say): its events fail as the function's call would (dead-lettered by the
 * scorer), the key is left as it was, and the other subjects of the batch are applied */
static void test_state_key_of_another_type(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof(path), "%s/deploy/config/rules.json", cs_test_source_dir());
    cs_rules_t *rules = cs_rules_load(path, errstr, sizeof(errstr));
    assert_non_null(rules);
    cs_scorer_t *sc = cs_scorer_new_layout(rules, "othertype", 2, errstr, sizeof(errstr));
    assert_non_null(sc);
    assert_int_equal(cs_scorer_set_compute(sc, 1, errstr, sizeof(errstr)), CS_OK);
    assert_int_equal(cs_scorer_claim(sc, redis, errstr, sizeof(errstr)), CS_OK);
    char key[256];
    cs_scorer_state_key(sc, subjects[1], key, sizeof(key));
    cs_redis_pipe_t *p = cs_redis_pipe_new();
    const char *hset[] = {"HSET", key, "score", "1"}, *type[] = {"TYPE", key};
    assert_int_equal(cs_redis_pipe_add(p, 4, hset, NULL), CS_OK);
    assert_int_equal(cs_redis_pipe_exec(redis, p, errstr, sizeof(errstr)), CS_OK);
    cs_engine_t *e = cs_engine_new(sc, redis, NULL, NULL, NULL);
    feed_opts_t o = {.seed = 5};
    int64_t clock[NSUBJECTS] = {T0, T0, T0, T0};
    message_t msgs[6];
    cs_engine_event_t ev[6];
    rng_state = 5;
    for (int i = 0; i < 6; i++) {
        make_event(rules, &o, i % 3, &clock[i % 3], msgs, i, &msgs[i].ev);
        ev[i] = (cs_engine_event_t){msgs[i].ev, "intel.events", 0, i};
    }
    cs_engine_result_t res;
    assert_int_equal(cs_engine_apply(e, ev, 6, 1, &res, errstr, sizeof(errstr)), CS_OK);
    assert_int_equal(res.nfailed, 2); /* subject 1's two events */
    assert_int_equal(res.applied + res.duplicates, 4);
    for (size_t i = 0; i < res.nfailed; i++)
        assert_int_equal(res.failed[i] % 3, 1);
    assert_non_null(strstr(res.failure, "another type"));
    cs_redis_pipe_reset(p);
    assert_int_equal(cs_redis_pipe_add(p, 2, type, NULL), CS_OK);
    assert_int_equal(cs_redis_pipe_exec(redis, p, errstr, sizeof(errstr)), CS_OK);
    assert_string_equal(cs_redis_pipe_reply(p, 0)->str, "hash");
    cs_redis_pipe_destroy(p);
    cs_engine_destroy(e);
    cs_scorer_destroy(sc);
    cs_rules_destroy(rules);
}

static void test_random_feeds_rules_file(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 6; seed++)
        run_feed(&(feed_opts_t){.seed = seed, .calls = 400});
    assert_exercised();
}

/* A cap of 6 and 3 recent events: the list is trimmed by rank on most calls */
static void test_random_feeds_small_list(void **state)
{
    (void)state;
    for (uint64_t seed = 101; seed <= 106; seed++)
        run_feed(
            &(feed_opts_t){.seed = seed, .calls = 400, .events_max = 6, .recent_max = 3});
    assert_exercised();
}

/* Hundreds of partner organisations for one subject: layout 2's per-subject table of
 * key prefixes fills (255) and is compacted */
static void test_random_feeds_many_organisations(void **state)
{
    (void)state;
    for (uint64_t seed = 201; seed <= 203; seed++)
        run_feed(
            &(feed_opts_t){.seed = seed, .calls = 600, .events_max = 6, .many_orgs = 1});
    assert_exercised();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_feeds_rules_file),
        cmocka_unit_test(test_random_feeds_small_list),
        cmocka_unit_test(test_random_feeds_many_organisations),
        cmocka_unit_test(test_two_writers_fenced),
        cmocka_unit_test(test_state_key_of_another_type),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
