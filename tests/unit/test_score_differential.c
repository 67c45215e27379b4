/* The differential test of the two state layouts (docs/contract/redis-layout.md):
 * layout 1 (lib/risk.lua) and layout 2 (lib/risk_v2.lua) side by side in one real
 * redis-server, fed the same random calls: partner duplicates, events out of
 * order and on the same millisecond, resends moved to another month, redelivered
 * batches ("crashes" before the alerts were published), acknowledgements early, late or
 * never, several partitions, an offset restart, many partner organisations, and a small
 * list cap. Every reply (parsed: scores bit for bit, counts, every alert field and id)
 * and every subject's view (score, areas, level, list, last alert, pending, months) must
 * be identical. The feeds span less than the 396-day horizon, within which layout 2's
 * de-duplication record is exact (the months both report are the same). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caresignal/score.h"
#include "testenv.h"

#define DAY 86400000LL
#define T0 1790000000000LL

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
static const char *const subjects[NSUBJECTS] = {"LOCATION:1-100000001", "LOCATION:1-100000002",
                                                "LOCATION:1-100000003",
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
    static const char *const refs[] = {"%d", "B-%07d", "INC/%d:x", "%d-a-much-longer-ref"};
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
    static const cs_severity_t sevs[50] = {
        [0 ... 24] = CS_SEVERITY_INFO, [25 ... 39] = CS_SEVERITY_LOW,
        [40 ... 45] = CS_SEVERITY_MEDIUM, [46 ... 48] = CS_SEVERITY_HIGH,
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
        json_array_append_new(json_object_get(j, "alerts"), cs_alert_to_json(&o->alerts[i]));
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

/* Applies \p in with both engines; asserts the same outcome. */
static void call_both(cs_scorer_t *v2, cs_scorer_t *v1, const cs_score_input_t *in, size_t n,
                      cs_score_outcome_t *out)
{
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
    cs_score_outcome_release(&o1);
    cs_redis_pipe_destroy(p);
}

static void ack_both(cs_scorer_t *v2, cs_scorer_t *v1, const cs_alert_t *alerts, size_t n)
{
    if (!n)
        return;
    cs_redis_pipe_t *p = cs_redis_pipe_new();
    assert_int_equal(cs_scorer_add_ack(v2, p, alerts, n), CS_OK);
    assert_int_equal(cs_scorer_add_ack(v1, p, alerts, n), CS_OK);
    assert_int_equal(cs_redis_pipe_exec(redis, p, errstr, sizeof(errstr)), CS_OK);
    const redisReply *r2 = cs_redis_pipe_reply(p, 0), *r1 = cs_redis_pipe_reply(p, 1);
    assert_int_equal(r2->type, REDIS_REPLY_INTEGER);
    assert_int_equal(r2->integer, r1->integer);
    cs_redis_pipe_destroy(p);
}

static void compare_views(cs_scorer_t *v2, cs_scorer_t *v1, int step)
{
    cs_subject_view_t a[NSUBJECTS];
    assert_int_equal(cs_scorer_read(v2, redis, subjects, NSUBJECTS, a, errstr,
                                    sizeof(errstr)),
                     CS_OK);
    cs_subject_view_t bs[NSUBJECTS];
    assert_int_equal(cs_scorer_read(v1, redis, subjects, NSUBJECTS, bs, errstr,
                                    sizeof(errstr)),
                     CS_OK);
    for (int k = 0; k < NSUBJECTS; k++) {
        cs_subject_view_t b = bs[k];
        char *ta = view_text(&a[k]), *tb = view_text(&b);
        if (!cs_subject_view_equal(&a[k], &b) || strcmp(ta, tb)) {
            FILE *f2 = fopen("/tmp/diff-v2.json", "w"), *f1 = fopen("/tmp/diff-v1.json", "w");
            if (f2 && f1)
                fputs(ta, f2), fputs(tb, f1);
            if (f2)
                fclose(f2);
            if (f1)
                fclose(f1);
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
    char ns2[64], ns1[64];
    snprintf(ns2, sizeof(ns2), "d2-%llu", (unsigned long long)o->seed);
    snprintf(ns1, sizeof(ns1), "d1-%llu", (unsigned long long)o->seed);
    cs_scorer_t *v2 = cs_scorer_new_layout(rules, ns2, 2, errstr, sizeof(errstr));
    cs_scorer_t *v1 = cs_scorer_new_layout(rules, ns1, 1, errstr, sizeof(errstr));
    assert_non_null(v2);
    assert_non_null(v1);
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
    int ncalls = 0, alerts = 0, reemitted = 0, dups = 0, redeliveries = 0, regressions = 0;
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
                        if (!strcmp(msgs[j].ev.subject_id, strchr(subjects[k], ':') + 1)) {
                            same = j;
                            break;
                        }
                if (same >= 0) {
                    m->ev = msgs[same].ev; /* a partner duplicate, at a new offset */
                    if (below(3) == 0) { /* or resent with a date in another month */
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
    cs_scorer_destroy(v1);
    cs_scorer_destroy(v2);
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
        run_feed(&(feed_opts_t){.seed = seed, .calls = 400, .events_max = 6,
                                .recent_max = 3});
    assert_exercised();
}

/* Hundreds of partner organisations for one subject: layout 2's per-subject table of
 * key prefixes fills (255) and is compacted */
static void test_random_feeds_many_organisations(void **state)
{
    (void)state;
    for (uint64_t seed = 201; seed <= 203; seed++)
        run_feed(&(feed_opts_t){.seed = seed, .calls = 600, .events_max = 6,
                                .many_orgs = 1});
    assert_exercised();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_feeds_rules_file),
        cmocka_unit_test(test_random_feeds_small_list),
        cmocka_unit_test(test_random_feeds_many_organisations),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
