/* Tests of the risk model (docs/contract/risk-model.md to docs/contract/redis-layout.md) as it runs: the Redis function in a real,
 * throwaway redis-server, driven through the C scorer. Hand-computed values. */
#include "testenv.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caresignal/log.h"
#include "caresignal/score.h"

#define DAY 86400000LL
#define T0 1795000000000LL /* 2026-11-18T09:46:40Z */

static cs_test_redis_t server;
static cs_rules_t *rules;
static cs_redis_t *redis;
static char errstr[512];
static int ns_counter;

typedef struct fixture {
    cs_scorer_t *scorer;
    char ns[32];
    int64_t next_offset;
    cs_alert_t alerts[32];
    int nalerts;
    cs_score_outcome_t last;
} fixture_t;

/* the state layout under test: every test runs for both (main) */
static int layout = 1;

static int group_setup(void **state)
{
    (void)state;
    cs_log_init("test_score", CS_LOG_FATAL);
    if (cs_test_redis_start(&server))
        return -1;
    char path[512];
    snprintf(path, sizeof(path), "%s/deploy/config/rules.json", cs_test_source_dir());
    rules = cs_rules_load(path, errstr, sizeof(errstr));
    redis = cs_redis_new("127.0.0.1", server.port, NULL, 5000);
    return rules && redis && !cs_redis_connect(redis, errstr, sizeof(errstr)) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    cs_redis_destroy(redis);
    cs_rules_destroy(rules);
    cs_test_redis_stop(&server);
    return 0;
}

static fixture_t *fixture_new(const cs_rules_t *r)
{
    fixture_t *f = calloc(1, sizeof(*f));
    snprintf(f->ns, sizeof(f->ns), "t%d", ++ns_counter);
    f->scorer = cs_scorer_new_layout(r, f->ns, layout, errstr, sizeof(errstr));
    assert_non_null(f->scorer);
    assert_int_equal(cs_redis_function_load(redis, cs_scorer_library(f->scorer), errstr,
                                            sizeof(errstr)),
                     CS_OK);
    assert_int_equal(cs_scorer_claim(f->scorer, redis, errstr, sizeof(errstr)), CS_OK);
    f->next_offset = 100;
    return f;
}

static void fixture_free(fixture_t *f)
{
    cs_score_outcome_release(&f->last);
    cs_scorer_destroy(f->scorer);
    free(f);
}

static cs_intel_event_t event(const char *key, cs_subject_kind_t kind, const char *subject,
                              cs_signal_t sig, cs_severity_t sev, int64_t at)
{
    cs_intel_event_t e;
    memset(&e, 0, sizeof(e));
    snprintf(e.event_key, sizeof(e.event_key), "%s", key);
    e.subject_kind = kind;
    snprintf(e.subject_id, sizeof(e.subject_id), "%s", subject);
    e.signal = sig;
    e.severity = sev;
    e.area = rules->area_of_signal[sig];
    e.occurred_at = at;
    snprintf(e.region, sizeof(e.region), "London");
    snprintf(e.local_authority_code, sizeof(e.local_authority_code), "E09000001");
    return e;
}

/* Applies events in one call at the given partition/offsets; keeps the outcome and
 * appends its alerts to f->alerts. */
static void apply_at(fixture_t *f, const cs_intel_event_t *evs, size_t n, int32_t partition,
                     const int64_t *offsets)
{
    cs_score_input_t in[64];
    assert_true(n <= 64);
    for (size_t i = 0; i < n; i++) {
        in[i].ev = &evs[i];
        in[i].partition = partition;
        in[i].offset = offsets[i];
    }
    cs_redis_pipe_t *p = cs_redis_pipe_new();
    assert_int_equal(cs_scorer_add_call(f->scorer, p, in, n), CS_OK);
    assert_int_equal(cs_redis_pipe_exec(redis, p, errstr, sizeof(errstr)), CS_OK);
    cs_score_outcome_release(&f->last);
    if (cs_scorer_parse_reply(f->scorer, cs_redis_pipe_reply(p, 0), in, n, &f->last, errstr,
                              sizeof(errstr)))
        fail_msg("%s", errstr);
    for (int i = 0; i < f->last.nalerts && f->nalerts < 32; i++)
        f->alerts[f->nalerts++] = f->last.alerts[i];
    cs_redis_pipe_destroy(p);
}

static void apply(fixture_t *f, const cs_intel_event_t *evs, size_t n)
{
    int64_t offs[64];
    for (size_t i = 0; i < n; i++)
        offs[i] = f->next_offset++;
    apply_at(f, evs, n, 0, offs);
}

static void apply1(fixture_t *f, cs_intel_event_t e)
{
    apply(f, &e, 1);
}

static void assert_close(double got, double want)
{
    if (fabs(got - want) > 1e-9 * fmax(1.0, fabs(want)))
        fail_msg("got %.17g, want %.17g", got, want);
}

/* The subject as the layout's owner reads it (cs_scorer_read). Release with
 * cs_subject_view_release. */
static cs_subject_view_t view_of(fixture_t *f, const char *subject_key)
{
    cs_subject_view_t v;
    const char *subjects[] = {subject_key};
    assert_int_equal(cs_scorer_read(f->scorer, redis, subjects, 1, &v, errstr,
                                    sizeof(errstr)),
                     CS_OK);
    return v;
}

/* A field of the subject's state, written as layout 1 stored it ("%.17g" numbers,
 * level names; "(nil)" when absent). */
static const char *state_field(fixture_t *f, const char *subject_key, const char *field)
{
    static char buf[4096];
    cs_subject_view_t v = view_of(f, subject_key);
    snprintf(buf, sizeof(buf), "(nil)");
    if (v.exists) {
        if (!strcmp(field, "score"))
            snprintf(buf, sizeof(buf), "%.17g", v.score);
        else if (!strcmp(field, "level"))
            snprintf(buf, sizeof(buf), "%s", cs_level_names[v.level]);
        else if (!strcmp(field, "events_total"))
            snprintf(buf, sizeof(buf), "%lld", v.events_total);
        else if (!strcmp(field, "assurance"))
            snprintf(buf, sizeof(buf), "%lld", v.assurance);
        else if (!strcmp(field, "last_offset") && v.has_position)
            snprintf(buf, sizeof(buf), "%lld", (long long)v.last_offset);
        for (int a = 0; a < CS_AREA_COUNT; a++)
            if (!strncmp(field, "area.", 5) && !strcmp(field + 5, cs_area_names[a]))
                snprintf(buf, sizeof(buf), "%.17g", v.area_scores[a]);
    }
    cs_subject_view_release(&v);
    return buf;
}

/* The 90-day list's member at \p rank (0: the oldest, as ZRANGE ranks them), as
 * "<event_key> <signal> <severity>", and its occurred_at. */
static const char *list_member(const cs_subject_view_t *v, int rank, int64_t *at)
{
    static char buf[256];
    assert_true(rank < v->nevents);
    const cs_recent_event_t *e = &v->events[v->nevents - 1 - rank];
    snprintf(buf, sizeof(buf), "%s %d %d", e->event_key, (int)e->signal, (int)e->severity);
    if (at)
        *at = e->occurred_at;
    return buf;
}

#define LOC(key, sig, sev, at)                                                                     \
    event(key, CS_SUBJECT_LOCATION, "1-101669119", CS_SIGNAL_##sig, CS_SEVERITY_##sev, at)

/* ------------------------------------------------------------------ arithmetic */

static void test_weight_and_decay(void **state)
{
    (void)state;
    fixture_t *f = fixture_new(rules);
    /* SERIOUS_INCIDENT 20 x MEDIUM 1 = 20 */
    apply1(f, LOC("NHSE:RXQ:A", SERIOUS_INCIDENT, MEDIUM, T0));
    assert_close(f->last.score, 20);
    assert_int_equal(f->last.as_of, T0);
    /* 30 days later (one half-life): 20/2 + COMPLAINT 5 x LOW 0.5 */
    apply1(f, LOC("CCG:15E:B", COMPLAINT, LOW, T0 + 30 * DAY));
    assert_close(f->last.score, 10 + 2.5);
    assert_int_equal(f->last.as_of, T0 + 30 * DAY);
    /* an older event adds its weight decayed to as_of: SAFEGUARDING 25 x HIGH 2, 15
     * days before as_of */
    apply1(f, LOC("CCG:15E:C", SAFEGUARDING, HIGH, T0 + 15 * DAY));
    assert_close(f->last.score, 12.5 + 50 * pow(2, -0.5));
    assert_int_equal(f->last.as_of, T0 + 30 * DAY); /* as_of never moves back */
    /* area scores: SAFE_CARE 10, ASSURANCE 2.5, PROTECTION_FROM_ABUSE 35.355... */
    assert_close(strtod(state_field(f, "LOCATION:1-101669119", "area.SAFE_CARE"), NULL), 10);
    assert_close(strtod(state_field(f, "LOCATION:1-101669119", "area.ASSURANCE"), NULL), 2.5);
    assert_close(strtod(state_field(f, "LOCATION:1-101669119", "area.PROTECTION_FROM_ABUSE"), NULL),
                 50 * pow(2, -0.5));
    assert_close(strtod(state_field(f, "LOCATION:1-101669119", "area.STAFFING"), NULL), 0);
    assert_string_equal(state_field(f, "LOCATION:1-101669119", "events_total"), "3");
    /* INFO weighs nothing but still moves as_of and decays the score */
    apply1(f, LOC("NHSE:RXQ:D", SERIOUS_INCIDENT, INFO, T0 + 60 * DAY));
    assert_close(f->last.score, (12.5 + 50 * pow(2, -0.5)) / 2);
    /* POSITIVE_FEEDBACK: weight 0, counted as assurance */
    apply1(f, LOC("CCG:15E:E", POSITIVE_FEEDBACK, LOW, T0 + 60 * DAY));
    assert_string_equal(state_field(f, "LOCATION:1-101669119", "assurance"), "1");
    assert_close(f->last.score, (12.5 + 50 * pow(2, -0.5)) / 2);
    fixture_free(f);
}

/* Splitting the same events into several calls changes nothing (batching invariance). */
static void test_batching_is_invisible(void **state)
{
    (void)state;
    cs_intel_event_t evs[6] = {
        LOC("K1", SAFEGUARDING, HIGH, T0),           LOC("K2", OUTBREAK, MEDIUM, T0 + 3 * DAY),
        LOC("K3", COMPLAINT, LOW, T0 - 10 * DAY),    LOC("K4", WHISTLEBLOWING, HIGH, T0 + 40 * DAY),
        LOC("K5", QUALITY_CONCERN, MEDIUM, T0 + DAY), LOC("K6", SAFEGUARDING, MEDIUM, T0 + 41 * DAY),
    };
    fixture_t *one = fixture_new(rules), *many = fixture_new(rules);
    apply(one, evs, 6);
    for (int i = 0; i < 6; i++)
        apply1(many, evs[i]);
    assert_string_equal(state_field(one, "LOCATION:1-101669119", "score"),
                        state_field(many, "LOCATION:1-101669119", "score"));
    assert_int_equal(one->nalerts, many->nalerts);
    for (int i = 0; i < one->nalerts; i++)
        assert_string_equal(one->alerts[i].alert_id, many->alerts[i].alert_id);
    fixture_free(one);
    fixture_free(many);
}

/* ------------------------------------------------------------------ levels */

static void test_hysteresis_up_and_down(void **state)
{
    (void)state;
    fixture_t *f = fixture_new(rules);
    /* exact scores, all at the same instant */
    apply1(f, LOC("A1", CONTRACT_BREACH, HIGH, T0)); /* 16 */
    apply1(f, LOC("A2", SERIOUS_INCIDENT, MEDIUM, T0)); /* 36 */
    assert_int_equal(f->nalerts, 0);
    apply1(f, LOC("A3", WORKFORCE_SHORTFALL, LOW, T0)); /* 40: WATCH at exactly 40 */
    assert_int_equal(f->nalerts, 1);
    assert_int_equal(f->alerts[0].kind, CS_ALERT_RAISED);
    assert_int_equal(f->alerts[0].level, CS_LEVEL_WATCH);
    assert_int_equal(f->alerts[0].previous_level, CS_LEVEL_NONE);
    assert_int_equal(f->alerts[0].reason, CS_REASON_THRESHOLD);
    assert_close(f->alerts[0].score, 40);
    assert_string_equal(f->alerts[0].triggered_by, "A3");
    /* 60 more: exactly 100 -> INSPECT */
    apply1(f, LOC("A4", WHISTLEBLOWING, HIGH, T0)); /* 100 */
    assert_int_equal(f->nalerts, 2);
    assert_int_equal(f->alerts[1].level, CS_LEVEL_INSPECT);
    assert_int_equal(f->alerts[1].previous_level, CS_LEVEL_WATCH);
    /* decay to exactly 70: still INSPECT (clears below 70) */
    int64_t t70 = T0 + (int64_t)llround(30.0 * DAY * log2(100.0 / 70.0));
    apply1(f, LOC("A5", COMPLAINT, INFO, t70));
    assert_true(f->last.score >= 70 - 1e-6);
    if (f->last.score >= 70)
        assert_int_equal(f->nalerts, 2);
    /* a day later, below 70: CLEARED to WATCH */
    apply1(f, LOC("A6", COMPLAINT, INFO, t70 + DAY));
    assert_int_equal(f->nalerts, 3);
    assert_int_equal(f->alerts[2].kind, CS_ALERT_CLEARED);
    assert_int_equal(f->alerts[2].level, CS_LEVEL_WATCH);
    assert_int_equal(f->alerts[2].previous_level, CS_LEVEL_INSPECT);
    /* between 28 and 40: stays WATCH; below 28: CLEARED to NONE */
    int64_t t30 = T0 + (int64_t)llround(30.0 * DAY * log2(100.0 / 30.0));
    apply1(f, LOC("A7", COMPLAINT, INFO, t30));
    assert_int_equal(f->nalerts, 3);
    int64_t t27 = T0 + (int64_t)llround(30.0 * DAY * log2(100.0 / 27.0));
    apply1(f, LOC("A8", COMPLAINT, INFO, t27));
    assert_int_equal(f->nalerts, 4);
    assert_int_equal(f->alerts[3].kind, CS_ALERT_CLEARED);
    assert_int_equal(f->alerts[3].level, CS_LEVEL_NONE);
    assert_string_equal(state_field(f, "LOCATION:1-101669119", "level"), "NONE");
    fixture_free(f);
}

static void test_levels_can_skip(void **state)
{
    (void)state;
    /* NONE -> INSPECT in one event (30 x 4 = 120, ASSURANCE: not an immediate rule) */
    fixture_t *f = fixture_new(rules);
    apply1(f, LOC("C1", SEND_OUTCOME, CRITICAL, T0));
    assert_int_equal(f->nalerts, 1);
    assert_int_equal(f->alerts[0].previous_level, CS_LEVEL_NONE);
    assert_int_equal(f->alerts[0].level, CS_LEVEL_INSPECT);
    assert_int_equal(f->alerts[0].reason, CS_REASON_THRESHOLD);
    /* INSPECT -> NONE in one event: 120 decays below 28 in about 64 days */
    apply1(f, LOC("C2", COMPLAINT, INFO, T0 + 70 * DAY));
    assert_int_equal(f->nalerts, 2);
    assert_int_equal(f->alerts[1].kind, CS_ALERT_CLEARED);
    assert_int_equal(f->alerts[1].previous_level, CS_LEVEL_INSPECT);
    assert_int_equal(f->alerts[1].level, CS_LEVEL_NONE);
    fixture_free(f);
    /* two crossings in one call give two alerts, in order */
    f = fixture_new(rules);
    cs_intel_event_t burst[2] = {LOC("B1", WHISTLEBLOWING, HIGH, T0),
                                 LOC("B2", SEND_OUTCOME, HIGH, T0)};
    apply(f, burst, 2); /* 60 -> WATCH, then 120 -> INSPECT */
    assert_int_equal(f->nalerts, 2);
    assert_int_equal(f->alerts[0].level, CS_LEVEL_WATCH);
    assert_string_equal(f->alerts[0].triggered_by, "B1");
    assert_int_equal(f->alerts[1].level, CS_LEVEL_INSPECT);
    assert_int_equal(f->alerts[1].previous_level, CS_LEVEL_WATCH);
    assert_string_equal(f->alerts[1].triggered_by, "B2");
    fixture_free(f);
}

static void test_local_area_thresholds(void **state)
{
    (void)state;
    fixture_t *f = fixture_new(rules);
    cs_intel_event_t a = event("OFSTED_SEND:E09000001:S1", CS_SUBJECT_LOCAL_AREA, "E09000001",
                               CS_SIGNAL_SEND_OUTCOME, CS_SEVERITY_HIGH, T0); /* 60 */
    apply1(f, a);
    assert_int_equal(f->nalerts, 1);
    assert_int_equal(f->alerts[0].level, CS_LEVEL_WATCH);
    assert_int_equal(f->alerts[0].subject_kind, CS_SUBJECT_LOCAL_AREA);
    cs_intel_event_t b = event("OFSTED_SEND:E09000001:S2", CS_SUBJECT_LOCAL_AREA, "E09000001",
                               CS_SIGNAL_SEND_OUTCOME, CS_SEVERITY_MEDIUM, T0); /* 90 */
    apply1(f, b);
    assert_int_equal(f->nalerts, 1); /* a location would be at WATCH too; 150 needed */
    cs_intel_event_t c = event("OFSTED_SEND:E09000001:S3", CS_SUBJECT_LOCAL_AREA, "E09000001",
                               CS_SIGNAL_SEND_OUTCOME, CS_SEVERITY_HIGH, T0); /* 150 */
    apply1(f, c);
    assert_int_equal(f->nalerts, 2);
    assert_int_equal(f->alerts[1].level, CS_LEVEL_INSPECT);
    /* 104.9 < 105 clears INSPECT to WATCH */
    int64_t t = T0 + (int64_t)ceil(30.0 * DAY * log2(150.0 / 104.9));
    apply1(f, event("OFSTED_SEND:E09000001:S4", CS_SUBJECT_LOCAL_AREA, "E09000001",
                    CS_SIGNAL_SEND_OUTCOME, CS_SEVERITY_INFO, t));
    assert_int_equal(f->nalerts, 3);
    assert_int_equal(f->alerts[2].level, CS_LEVEL_WATCH);
    fixture_free(f);
}

/* ------------------------------------------------------------------ immediate */

static void test_immediate_and_hold(void **state)
{
    (void)state;
    fixture_t *f = fixture_new(rules);
    /* NEVER_EVENT LOW: weight 20, but INSPECT at once with reason IMMEDIATE */
    apply1(f, LOC("N1", NEVER_EVENT, LOW, T0));
    assert_int_equal(f->nalerts, 1);
    assert_int_equal(f->alerts[0].level, CS_LEVEL_INSPECT);
    assert_int_equal(f->alerts[0].previous_level, CS_LEVEL_NONE);
    assert_int_equal(f->alerts[0].reason, CS_REASON_IMMEDIATE);
    assert_close(f->alerts[0].score, 20);
    /* held while as_of - t < 28 days, whatever the score */
    apply1(f, LOC("N2", COMPLAINT, INFO, T0 + 28 * DAY - 1));
    assert_int_equal(f->nalerts, 1);
    /* at exactly 28 days the score may clear it: 20 x 2^(-28/30) < 28 -> NONE */
    apply1(f, LOC("N3", COMPLAINT, INFO, T0 + 28 * DAY));
    assert_int_equal(f->nalerts, 2);
    assert_int_equal(f->alerts[1].kind, CS_ALERT_CLEARED);
    assert_int_equal(f->alerts[1].level, CS_LEVEL_NONE);
    assert_int_equal(f->alerts[1].reason, CS_REASON_THRESHOLD);
    fixture_free(f);

    /* CRITICAL in PROTECTION_FROM_ABUSE and SAFE_CARE is immediate; elsewhere it is not */
    f = fixture_new(rules);
    apply1(f, LOC("C1", WHISTLEBLOWING, CRITICAL, T0)); /* 120, immediate */
    assert_int_equal(f->alerts[0].reason, CS_REASON_IMMEDIATE);
    fixture_free(f);
    f = fixture_new(rules);
    apply1(f, LOC("C2", DNACPR_CONCERN, CRITICAL, T0)); /* SAFE_CARE, immediate */
    assert_int_equal(f->alerts[0].reason, CS_REASON_IMMEDIATE);
    fixture_free(f);
    f = fixture_new(rules);
    apply1(f, LOC("C3", WORKFORCE_SHORTFALL, CRITICAL, T0)); /* STAFFING: 32, nothing */
    assert_int_equal(f->nalerts, 0);
    apply1(f, LOC("C4", QUALITY_CONCERN, CRITICAL, T0)); /* ASSURANCE: 72 -> WATCH only */
    assert_int_equal(f->nalerts, 1);
    assert_int_equal(f->alerts[0].level, CS_LEVEL_WATCH);
    assert_int_equal(f->alerts[0].reason, CS_REASON_THRESHOLD);
    fixture_free(f);

    /* an immediate event >= 28 days behind as_of raises nothing by itself */
    f = fixture_new(rules);
    apply1(f, LOC("O1", COMPLAINT, LOW, T0 + 60 * DAY));
    apply1(f, LOC("O2", NEVER_EVENT, LOW, T0 + 32 * DAY)); /* 28 days behind */
    assert_int_equal(f->nalerts, 0);
    apply1(f, LOC("O3", NEVER_EVENT, LOW, T0 + 32 * DAY + 1)); /* 28 days - 1 ms behind */
    assert_int_equal(f->nalerts, 1);
    assert_int_equal(f->alerts[0].reason, CS_REASON_IMMEDIATE);
    fixture_free(f);

    /* an immediate event on a subject already at INSPECT restarts the hold */
    f = fixture_new(rules);
    apply1(f, LOC("R1", NEVER_EVENT, LOW, T0));
    apply1(f, LOC("R2", NEVER_EVENT, INFO, T0 + 20 * DAY)); /* no alert: already INSPECT */
    assert_int_equal(f->nalerts, 1);
    apply1(f, LOC("R3", COMPLAINT, INFO, T0 + 40 * DAY)); /* 40 > 28 after R1, < 28 after R2 */
    assert_int_equal(f->nalerts, 1);
    apply1(f, LOC("R4", COMPLAINT, INFO, T0 + 48 * DAY)); /* 28 days after R2: clears */
    assert_int_equal(f->nalerts, 2);
    assert_int_equal(f->alerts[1].kind, CS_ALERT_CLEARED);
    fixture_free(f);
}

/* ------------------------------------------------------------------ exactly once */

static void test_duplicates_and_redelivery(void **state)
{
    (void)state;
    fixture_t *f = fixture_new(rules);
    cs_intel_event_t a = LOC("NHSE:RXQ:DUP", WHISTLEBLOWING, HIGH, T0); /* 60: WATCH */
    int64_t off = 500;
    apply_at(f, &a, 1, 3, &off);
    assert_int_equal(f->nalerts, 1);
    char first_id[33];
    memcpy(first_id, f->alerts[0].alert_id, 33);
    /* the same message again (a redelivery): skipped, and its alert re-emitted */
    apply_at(f, &a, 1, 3, &off);
    assert_int_equal(f->last.applied, 0);
    assert_int_equal(f->last.redeliveries, 1);
    assert_int_equal(f->last.nalerts, 1);
    assert_int_equal(f->last.nreemitted, 1);
    assert_string_equal(f->last.alerts[0].alert_id, first_id);
    assert_close(f->last.score, 60);
    /* the partner sent it again (a new offset): skipped, no alert */
    int64_t off2 = 501;
    apply_at(f, &a, 1, 3, &off2);
    assert_int_equal(f->last.applied, 0);
    assert_int_equal(f->last.duplicates, 1);
    assert_int_equal(f->last.nalerts, 0);
    /* more than 90 days later the event list has forgotten it, the seen set has not */
    cs_intel_event_t later = LOC("NHSE:RXQ:LATE", COMPLAINT, INFO, T0 + 100 * DAY);
    int64_t off3 = 502, off4 = 503;
    apply_at(f, &later, 1, 3, &off3);
    apply_at(f, &a, 1, 3, &off4);
    assert_int_equal(f->last.duplicates, 1);
    assert_int_equal(f->last.applied, 0);
    assert_close(f->last.score, 60 * pow(2, -100.0 / 30));
    cs_subject_view_t v = view_of(f, "LOCATION:1-101669119");
    assert_int_equal(v.nevents, 1); /* only LATE is within 90 days */
    assert_int_equal(v.nmonths, 2);
    assert_string_equal(v.months[0].month, "2026-11");
    assert_int_equal(v.months[0].event_keys, 1);
    cs_subject_view_release(&v);
    if (layout == 1) {
        /* the seen set expires ~400 days after its last write */
        char seen[256];
        snprintf(seen, sizeof(seen), "%s:{LOCATION:1-101669119}:seen:2026-11", f->ns);
        const char *ttl[] = {"TTL", seen};
        redisReply *r = cs_redis_command(redis, 2, ttl, NULL, errstr, sizeof(errstr));
        assert_true(r->integer > 399 * 86400 && r->integer <= 400 * 86400);
        freeReplyObject(r);
        fixture_free(f);
        return;
    }
    /* layout 2: a month's keys are kept until as_of is seen_ttl (400 days) past its
     * end (event time) */
    cs_intel_event_t end = LOC("NHSE:RXQ:END", COMPLAINT, INFO, T0 + 412 * DAY);
    int64_t off5 = 504, off6 = 505;
    apply_at(f, &end, 1, 3, &off5);
    v = view_of(f, "LOCATION:1-101669119");
    assert_string_equal(v.months[0].month, "2026-11");
    cs_subject_view_release(&v);
    end = LOC("NHSE:RXQ:END2", COMPLAINT, INFO, T0 + 413 * DAY);
    apply_at(f, &end, 1, 3, &off6);
    v = view_of(f, "LOCATION:1-101669119");
    assert_string_not_equal(v.months[0].month, "2026-11");
    cs_subject_view_release(&v);
    fixture_free(f);
}

/* A batch with a redelivered prefix: only the new events apply, and only the alerts of
 * redelivered events that produced the subject's last alerts are re-emitted. */
static void test_redelivered_batch_reemits_last_alerts(void **state)
{
    (void)state;
    fixture_t *f = fixture_new(rules);
    cs_intel_event_t evs[3] = {LOC("E1", WHISTLEBLOWING, HIGH, T0),
                               LOC("E2", WHISTLEBLOWING, HIGH, T0 + 1),
                               LOC("E3", COMPLAINT, LOW, T0 + 2)};
    int64_t offs[3] = {10, 11, 12};
    apply_at(f, evs, 2, 0, offs); /* WATCH (E1), INSPECT (E2) */
    assert_int_equal(f->nalerts, 2);
    apply_at(f, evs, 3, 0, offs); /* crash before the alerts were published: re-read */
    assert_int_equal(f->last.applied, 1);
    assert_int_equal(f->last.redeliveries, 2);
    assert_int_equal(f->last.nreemitted, 2);
    assert_string_equal(f->last.alerts[0].alert_id, f->alerts[0].alert_id);
    assert_string_equal(f->last.alerts[1].alert_id, f->alerts[1].alert_id);
    fixture_free(f);
}

/* Regression: the function skipped every event at or below the subject's last offset on
 * its partition as a "redelivery" without looking at the seen sets, so once intel.events
 * was recreated or migrated (offsets start again at 0) every new event of a known
 * subject was dropped. An unseen event is applied whatever its offset (and counted as an
 * offset regression); a seen one at or below the last offset is still a redelivery. */
static void test_regression_offsets_restart_after_topic_recreated(void **state)
{
    (void)state;
    fixture_t *f = fixture_new(rules);
    cs_intel_event_t old = LOC("NHSE:RXQ:OLD", COMPLAINT, MEDIUM, T0); /* 5 */
    int64_t off = 900;
    apply_at(f, &old, 1, 2, &off);
    assert_int_equal(f->last.applied, 1);
    /* the topic is recreated: new events arrive at offsets 0 and 1 of partition 2 */
    cs_intel_event_t fresh[2] = {LOC("NHSE:RXQ:NEW1", WHISTLEBLOWING, HIGH, T0 + DAY),
                                 LOC("NHSE:RXQ:NEW2", COMPLAINT, MEDIUM, T0 + DAY + 1)};
    int64_t offs[2] = {0, 1};
    apply_at(f, fresh, 2, 2, offs);
    assert_int_equal(f->last.applied, 2);
    assert_int_equal(f->last.regressions, 1); /* offset 0 <= 900; then 1 > 0 */
    assert_int_equal(f->last.redeliveries, 0);
    assert_int_equal(f->last.nalerts, 1); /* 5/2^(1/30) + 60 + 5: WATCH */
    assert_string_equal(state_field(f, "LOCATION:1-101669119", "events_total"), "3");
    assert_string_equal(state_field(f, "LOCATION:1-101669119", "last_offset"), "1");
    /* a crash re-reads offset 1 of the new topic: a redelivery, nothing applied twice */
    apply_at(f, &fresh[1], 1, 2, &offs[1]);
    assert_int_equal(f->last.applied, 0);
    assert_int_equal(f->last.redeliveries, 1);
    /* and the old event resent by the partner on the new topic: a duplicate */
    int64_t off2 = 2;
    apply_at(f, &old, 1, 2, &off2);
    assert_int_equal(f->last.applied, 0);
    assert_int_equal(f->last.duplicates, 1);
    assert_string_equal(state_field(f, "LOCATION:1-101669119", "events_total"), "3");
    fixture_free(f);
}

/* ------------------------------------------------------------------ the event list */

static void test_event_list_window_and_cap(void **state)
{
    (void)state;
    fixture_t *f = fixture_new(rules);
    apply1(f, LOC("W-old", COMPLAINT, LOW, T0));
    apply1(f, LOC("W-edge", COMPLAINT, LOW, T0 + 1));
    apply1(f, LOC("W-new", COMPLAINT, LOW, T0 + 90 * DAY + 1)); /* W-old is 90 days + 1 ms old */
    cs_subject_view_t v = view_of(f, "LOCATION:1-101669119");
    assert_int_equal(v.nevents, 2); /* exactly 90 days is kept */
    assert_string_equal(list_member(&v, 0, NULL), "W-edge 7 1");
    cs_subject_view_release(&v);
    /* at most events.max (256) are kept */
    cs_intel_event_t many[50];
    for (int round = 0; round < 6; round++) {
        for (int i = 0; i < 50; i++) {
            char k[32];
            snprintf(k, sizeof(k), "M-%03d", round * 50 + i);
            many[i] = LOC(k, COMPLAINT, INFO, T0 + 90 * DAY + 10 + round * 50 + i);
        }
        apply(f, many, 50);
    }
    v = view_of(f, "LOCATION:1-101669119");
    assert_int_equal(v.nevents, 256);
    cs_subject_view_release(&v);
    fixture_free(f);
}

/* The list is trimmed once per call, not after every event (lib/risk.lua), which keeps
 * the same members as long as no member changes score. One does when an event is resent
 * with an occurred_at in another month (docs/contract/redis-layout.md's known limit: applied again, same
 * member): the trims due before it must happen first. Here the list is full, X pushes
 * out the oldest (C-000), then Y is re-scored below everything: trimming after each event
 * keeps Y and drops C-000; trimming only at the end would have dropped Y instead. */
static void test_event_list_rescored_member(void **state)
{
    (void)state;
    fixture_t *f = fixture_new(rules);
    cs_intel_event_t evs[64];
    for (int done = 0; done < 255;) {
        int n = 0;
        for (; n < 64 && done < 255; n++, done++) {
            char k[32];
            snprintf(k, sizeof(k), "C-%03d", done);
            evs[n] = LOC(k, COMPLAINT, INFO, T0 + 10 + done);
        }
        apply(f, evs, (size_t)n);
    }
    apply1(f, LOC("Y", COMPLAINT, INFO, T0 + 40 * DAY)); /* another month than T0 */
    evs[0] = LOC("X", COMPLAINT, INFO, T0 + 41 * DAY);
    evs[1] = LOC("Y", COMPLAINT, INFO, T0 + 5); /* the resend, in T0's month */
    apply(f, evs, 2);
    assert_int_equal(f->last.applied, 2);
    cs_subject_view_t v = view_of(f, "LOCATION:1-101669119");
    int64_t at;
    assert_string_equal(list_member(&v, 0, &at), "Y 7 0");
    assert_int_equal(at, 1795000000005);
    assert_string_equal(list_member(&v, 1, NULL), "C-001 7 0");
    assert_int_equal(v.nevents, 256);
    cs_subject_view_release(&v);
    fixture_free(f);
}

static void test_recent_in_alerts(void **state)
{
    (void)state;
    fixture_t *f = fixture_new(rules);
    cs_intel_event_t evs[12];
    for (int i = 0; i < 11; i++) {
        char k[32];
        snprintf(k, sizeof(k), "R-%02d", i);
        evs[i] = LOC(k, COMPLAINT, INFO, T0 + (i < 3 ? 0 : i)); /* R-00..02 tie at T0 */
    }
    evs[11] = LOC("R-XX", WHISTLEBLOWING, HIGH, T0 - 5); /* 60: WATCH, older than the rest */
    apply(f, evs, 12);
    assert_int_equal(f->nalerts, 1);
    const cs_alert_t *a = &f->alerts[0];
    assert_int_equal(a->nrecent, 10);
    assert_string_equal(a->recent[0].event_key, "R-10");
    assert_string_equal(a->recent[7].event_key, "R-03");
    /* ties at T0, by event_key descending */
    assert_string_equal(a->recent[8].event_key, "R-02");
    assert_string_equal(a->recent[9].event_key, "R-01");
    assert_int_equal(a->recent[0].signal, CS_SIGNAL_COMPLAINT);
    assert_int_equal(a->recent[0].severity, CS_SEVERITY_INFO);
    assert_int_equal(a->recent[0].occurred_at, T0 + 10);
    assert_string_equal(a->rules_version, rules->version);
    assert_string_equal(a->region, "London");
    fixture_free(f);
}

/* ------------------------------------------------------------------ alert ids */

static void test_alert_id(void **state)
{
    (void)state;
    /* echo -n 'LOCATION:1-101669119|RAISED|WATCH|NHSE:RXQ:INC-1' | sha256sum | cut -c1-32 */
    char id[33];
    cs_alert_id("LOCATION:1-101669119", CS_ALERT_RAISED, CS_LEVEL_WATCH, "NHSE:RXQ:INC-1", id);
    assert_string_equal(id, "98f665bdda503c12a527e239db029c57");
    cs_alert_id("LOCAL_AREA:E09000001", CS_ALERT_CLEARED, CS_LEVEL_NONE, "OFSTED_SEND:E09000001:S.1",
                id);
    assert_string_equal(id, "33e9cc0bebc6f1c6e0f1f1258557ec8a");
}

/* ------------------------------------------------------------------ order independence */

static uint64_t rng = 88172645463325252ULL;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* A random set of events applied in 50 random orders: the same score (1e-9 relative)
 * and, where the final score lies outside every hysteresis band (so the level is
 * determined by the state, not by the path), the same level. */
static void test_any_order_same_state(void **state)
{
    (void)state;
    int determined = 0;
    for (int set = 0; set < 8; set++) {
        int n = 5 + (int)(next_rand() % 30);
        cs_intel_event_t evs[40];
        for (int i = 0; i < n; i++) {
            char k[32];
            snprintf(k, sizeof(k), "P%d-%02d", set, i);
            cs_signal_t sig = (cs_signal_t)(next_rand() % (CS_SIGNAL_COUNT - 1));
            cs_severity_t sev = (cs_severity_t)(next_rand() % CS_SEVERITY_COUNT);
            if (sig == CS_SIGNAL_NEVER_EVENT)
                sig = CS_SIGNAL_OUTBREAK; /* immediate rules tested above */
            if (sev == CS_SEVERITY_CRITICAL)
                sev = CS_SEVERITY_HIGH;
            evs[i] = event(k, CS_SUBJECT_LOCATION, "1-101669119", sig, sev,
                           T0 + (int64_t)(next_rand() % (200 * DAY)));
        }
        double first_score = 0;
        const char *first_level = NULL;
        char level0[16] = "";
        for (int order = 0; order < 50; order++) {
            for (int i = n - 1; i > 0; i--) { /* Fisher-Yates */
                int j = (int)(next_rand() % (uint64_t)(i + 1));
                cs_intel_event_t t = evs[i];
                evs[i] = evs[j];
                evs[j] = t;
            }
            fixture_t *f = fixture_new(rules);
            /* in random chunks, as batches would cut them */
            int i = 0;
            while (i < n) {
                int len = 1 + (int)(next_rand() % 5);
                if (i + len > n)
                    len = n - i;
                apply(f, evs + i, (size_t)len);
                i += len;
            }
            double s = strtod(state_field(f, "LOCATION:1-101669119", "score"), NULL);
            const char *lvl = state_field(f, "LOCATION:1-101669119", "level");
            if (order == 0) {
                first_score = s;
                snprintf(level0, sizeof(level0), "%s", lvl);
                first_level = level0;
            } else {
                assert_close(s, first_score);
                if (s >= 100 || s < 28) {
                    assert_string_equal(lvl, first_level);
                    determined++;
                }
            }
            fixture_free(f);
        }
    }
    assert_true(determined > 0);
}

/* A namespace keeps its layout: a writer of the other is refused naming the key, and a
 * record that is not a layout stops the writer with what it found. */
static void test_namespace_layout_record(void **state)
{
    (void)state;
    fixture_t *f = fixture_new(rules); /* claims f->ns for this run's layout */
    cs_scorer_t *other =
        cs_scorer_new_layout(rules, f->ns, 3 - layout, errstr, sizeof(errstr));
    assert_non_null(other);
    assert_int_equal(cs_scorer_claim(other, redis, errstr, sizeof(errstr)),
                     CS_ERR_INVALID_ARG);
    assert_non_null(strstr(errstr, "'state.layout'"));
    int got = 0;
    assert_int_equal(cs_scorer_namespace_layout(other, redis, &got, errstr, sizeof(errstr)),
                     CS_OK);
    assert_int_equal(got, layout);
    char key[160];
    snprintf(key, sizeof(key), "%s:layout", f->ns);
    const char *set[] = {"SET", key, "banana"};
    freeReplyObject(cs_redis_command(redis, 3, set, NULL, errstr, sizeof(errstr)));
    assert_int_equal(cs_scorer_claim(f->scorer, redis, errstr, sizeof(errstr)),
                     CS_ERR_FATAL);
    assert_non_null(strstr(errstr, key));
    cs_scorer_destroy(other);
    fixture_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_weight_and_decay),
        cmocka_unit_test(test_batching_is_invisible),
        cmocka_unit_test(test_hysteresis_up_and_down),
        cmocka_unit_test(test_levels_can_skip),
        cmocka_unit_test(test_local_area_thresholds),
        cmocka_unit_test(test_immediate_and_hold),
        cmocka_unit_test(test_duplicates_and_redelivery),
        cmocka_unit_test(test_redelivered_batch_reemits_last_alerts),
        cmocka_unit_test(test_regression_offsets_restart_after_topic_recreated),
        cmocka_unit_test(test_event_list_window_and_cap),
        cmocka_unit_test(test_event_list_rescored_member),
        cmocka_unit_test(test_recent_in_alerts),
        cmocka_unit_test(test_alert_id),
        cmocka_unit_test(test_any_order_same_state),
        cmocka_unit_test(test_namespace_layout_record),
    };
    int failed = 0;
    for (layout = 1; layout <= 2; layout++) {
        print_message("state layout %d\n", layout);
        failed += cmocka_run_group_tests(tests, group_setup, group_teardown);
    }
    return failed;
}
