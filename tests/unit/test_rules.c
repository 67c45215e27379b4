/* Unit tests of the rules file (docs/contract/canonical-event.md mapping,
 * docs/contract/risk-model.md risk model): the shipped file's values, weights and
 * immediate rules, and a table of broken files (the shipped JSON mutated with jansson)
 * that must each fail with the exact JSON path. */
#include "testenv.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "caresignal/alert.h"
#include "caresignal/normalise.h"
#include "caresignal/registry.h"
#include "caresignal/rules.h"

#define DAY_MS 86400000.0

static char errstr[1024];

static const char *src_path(const char *rel)
{
    static char paths[4][512];
    static int next;
    char *p = paths[next++ % 4];
    snprintf(p, 512, "%s/%s", cs_test_source_dir(), rel);
    return p;
}

static cs_rules_t *load_shipped(void)
{
    cs_rules_t *r =
        cs_rules_load(src_path("deploy/config/rules.json"), errstr, sizeof(errstr));
    if (!r)
        fail_msg("%s", errstr);
    return r;
}

static json_t *shipped_json(void)
{
    json_error_t jerr;
    json_t *root = json_load_file(src_path("deploy/config/rules.json"), 0, &jerr);
    if (!root)
        fail_msg("rules.json: %s", jerr.text);
    return root;
}

/* ------------------------------------------------------------------ shipped */

static void test_shipped_values(void **state)
{
    (void)state;
    cs_rules_t *r = load_shipped();
    assert_string_equal(r->version, "2026-11-22.1");
    assert_int_equal(strlen(r->digest), 16);
    assert_true(r->half_life_ms == 30 * DAY_MS);
    assert_true(r->base[CS_SIGNAL_NEVER_EVENT] == 40);
    assert_true(r->multiplier[CS_SEVERITY_CRITICAL] == 4);
    assert_true(r->levels[CS_SUBJECT_LOCATION].watch_raise == 40);
    assert_true(r->levels[CS_SUBJECT_LOCATION].watch_clear == 28);
    assert_true(r->levels[CS_SUBJECT_LOCATION].inspect_raise == 100);
    assert_true(r->levels[CS_SUBJECT_LOCATION].inspect_clear == 70);
    assert_true(r->levels[CS_SUBJECT_LOCAL_AREA].watch_raise == 60);
    assert_true(r->levels[CS_SUBJECT_LOCAL_AREA].watch_clear == 42);
    assert_true(r->levels[CS_SUBJECT_LOCAL_AREA].inspect_raise == 150);
    assert_true(r->levels[CS_SUBJECT_LOCAL_AREA].inspect_clear == 105);
    assert_int_equal(r->hold_ms, 28 * 86400000LL);
    assert_int_equal(r->window_ms, 90 * 86400000LL);
    assert_int_equal(r->events_max, 256);
    assert_int_equal(r->recent_max, 10);
    assert_int_equal(r->seen_ttl_s, 400 * 86400LL);
    assert_int_equal(r->future_tolerance_ms, 5 * 60000LL);
    assert_int_equal(r->past_horizon_ms, 396 * 86400000LL);
    assert_int_equal(r->date_future_days, 1);
    assert_int_equal(r->immediate_count, 2);

    /* docs/contract/risk-model.md base weights and multipliers, every one */
    static const double base[CS_SIGNAL_COUNT] = {
        [CS_SIGNAL_NEVER_EVENT] = 40,        [CS_SIGNAL_WHISTLEBLOWING] = 30,
        [CS_SIGNAL_SEND_OUTCOME] = 30,       [CS_SIGNAL_SAFEGUARDING] = 25,
        [CS_SIGNAL_DNACPR_CONCERN] = 25,     [CS_SIGNAL_SERIOUS_INCIDENT] = 20,
        [CS_SIGNAL_OUTBREAK] = 15,           [CS_SIGNAL_VACCINATION_INCIDENT] = 10,
        [CS_SIGNAL_IPC_CONCERN] = 10,        [CS_SIGNAL_QUALITY_CONCERN] = 10,
        [CS_SIGNAL_WORKFORCE_SHORTFALL] = 8, [CS_SIGNAL_CONTRACT_BREACH] = 8,
        [CS_SIGNAL_COMPLAINT] = 5,           [CS_SIGNAL_POSITIVE_FEEDBACK] = 0};
    for (int s = 0; s < CS_SIGNAL_COUNT; s++)
        if (r->base[s] != base[s])
            fail_msg("base[%s] = %g, the contract says %g", cs_signal_names[s],
                     r->base[s], base[s]);
    static const double mult[CS_SEVERITY_COUNT] = {0, 0.5, 1, 2, 4};
    for (int s = 0; s < CS_SEVERITY_COUNT; s++)
        if (r->multiplier[s] != mult[s])
            fail_msg("multiplier[%s] = %g", cs_severity_names[s], r->multiplier[s]);
    for (int s = 0; s < CS_SIGNAL_COUNT; s++)
        assert_int_equal(r->assurance[s], s == CS_SIGNAL_POSITIVE_FEEDBACK);

    /* docs/contract/canonical-event.md areas */
    static const cs_area_t area[CS_SIGNAL_COUNT] = {
        [CS_SIGNAL_SERIOUS_INCIDENT] = CS_AREA_SAFE_CARE,
        [CS_SIGNAL_NEVER_EVENT] = CS_AREA_SAFE_CARE,
        [CS_SIGNAL_OUTBREAK] = CS_AREA_SAFE_CARE,
        [CS_SIGNAL_VACCINATION_INCIDENT] = CS_AREA_SAFE_CARE,
        [CS_SIGNAL_WORKFORCE_SHORTFALL] = CS_AREA_STAFFING,
        [CS_SIGNAL_DNACPR_CONCERN] = CS_AREA_SAFE_CARE,
        [CS_SIGNAL_IPC_CONCERN] = CS_AREA_SAFE_CARE,
        [CS_SIGNAL_COMPLAINT] = CS_AREA_ASSURANCE,
        [CS_SIGNAL_SAFEGUARDING] = CS_AREA_PROTECTION_FROM_ABUSE,
        [CS_SIGNAL_WHISTLEBLOWING] = CS_AREA_PROTECTION_FROM_ABUSE,
        [CS_SIGNAL_QUALITY_CONCERN] = CS_AREA_ASSURANCE,
        [CS_SIGNAL_CONTRACT_BREACH] = CS_AREA_ASSURANCE,
        [CS_SIGNAL_POSITIVE_FEEDBACK] = CS_AREA_ASSURANCE,
        [CS_SIGNAL_SEND_OUTCOME] = CS_AREA_ASSURANCE};
    for (int s = 0; s < CS_SIGNAL_COUNT; s++)
        if (r->area_of_signal[s] != area[s])
            fail_msg("area of %s is %s", cs_signal_names[s],
                     cs_area_names[r->area_of_signal[s]]);
    assert_int_equal(r->area_of_signal[CS_SIGNAL_WORKFORCE_SHORTFALL], CS_AREA_STAFFING);

    /* docs/contract/canonical-event.md mapping tables */
    const cs_rules_source_t *ccg = &r->sources[CS_SOURCE_CCG];
    assert_true(ccg->present);
    assert_string_equal(ccg->schema, "ccg.Concern");
    assert_string_equal(ccg->signal.field, "concern_type");
    assert_int_equal(
        json_integer_value(json_object_get(ccg->signal.table, "SAFEGUARDING_REFERRAL")),
        CS_SIGNAL_SAFEGUARDING);
    assert_int_equal(json_integer_value(json_object_get(ccg->severity.table, "AMBER")),
                     CS_SEVERITY_MEDIUM);
    assert_string_equal(ccg->occurred_field, "received_on");
    assert_int_equal(ccg->org_format, CS_ID_ODS);
    const cs_rules_source_t *nhse = &r->sources[CS_SOURCE_NHSE];
    assert_int_equal(json_integer_value(json_object_get(nhse->severity.table, "DEATH")),
                     CS_SEVERITY_CRITICAL);
    assert_int_equal(json_integer_value(json_object_get(nhse->severity.table, "NO_HARM")),
                     CS_SEVERITY_INFO);
    assert_int_equal(nhse->subject_kind, CS_SUBJECT_LOCATION);
    const cs_rules_source_t *ofs = &r->sources[CS_SOURCE_OFSTED_SEND];
    assert_string_equal(ofs->signal.field, "");
    assert_int_equal(ofs->signal.constant, CS_SIGNAL_SEND_OUTCOME);
    assert_int_equal(ofs->subject_kind, CS_SUBJECT_LOCAL_AREA);
    assert_int_equal(ofs->org_format, CS_ID_GSS);
    assert_string_equal(ofs->named_locations_field, "named_location_ids");
    assert_int_equal(
        json_integer_value(json_object_get(ofs->severity.table, "INCONSISTENT")),
        CS_SEVERITY_MEDIUM);
    cs_rules_destroy(r);
    cs_rules_destroy(NULL);
}

/* The same text parsed in memory gives the same digest; another text another one. */
static void test_parse_and_digest(void **state)
{
    (void)state;
    cs_rules_t *a = load_shipped();
    json_t *root = shipped_json();
    char *text = json_dumps(root, 0);
    cs_rules_t *b = cs_rules_parse(text, strlen(text), "mem", errstr, sizeof(errstr));
    assert_non_null(b);
    assert_string_not_equal(a->digest, b->digest); /* different bytes */
    cs_rules_t *c = cs_rules_parse(text, strlen(text), "mem2", errstr, sizeof(errstr));
    assert_string_equal(b->digest, c->digest);
    assert_true(a->base[CS_SIGNAL_OUTBREAK] == b->base[CS_SIGNAL_OUTBREAK]);
    cs_rules_destroy(a);
    cs_rules_destroy(b);
    cs_rules_destroy(c);
    free(text);
    /* risk.events.recent above what an alert carries is capped where it is read */
    json_object_set_new(json_object_get(json_object_get(root, "risk"), "events"),
                        "recent", json_integer(1000));
    text = json_dumps(root, 0);
    cs_rules_t *d = cs_rules_parse(text, strlen(text), "mem3", errstr, sizeof(errstr));
    assert_non_null(d);
    assert_int_equal(d->recent_max, CS_ALERT_RECENT_MAX);
    cs_rules_destroy(d);
    free(text);
    json_decref(root);
}

static void test_weight(void **state)
{
    (void)state;
    cs_rules_t *r = load_shipped();
    static const struct {
        cs_signal_t signal;
        cs_severity_t severity;
        double w;
    } cases[] = {
        {CS_SIGNAL_NEVER_EVENT, CS_SEVERITY_CRITICAL, 160},
        {CS_SIGNAL_NEVER_EVENT, CS_SEVERITY_INFO, 0},
        {CS_SIGNAL_SERIOUS_INCIDENT, CS_SEVERITY_MEDIUM, 20},
        {CS_SIGNAL_WHISTLEBLOWING, CS_SEVERITY_HIGH, 60},
        {CS_SIGNAL_SEND_OUTCOME, CS_SEVERITY_HIGH, 60},
        {CS_SIGNAL_COMPLAINT, CS_SEVERITY_LOW, 2.5},
        {CS_SIGNAL_WORKFORCE_SHORTFALL, CS_SEVERITY_LOW, 4},
        {CS_SIGNAL_POSITIVE_FEEDBACK, CS_SEVERITY_HIGH, 0},
        {CS_SIGNAL_OUTBREAK, CS_SEVERITY_INFO, 0},
        {CS_SIGNAL_DNACPR_CONCERN, CS_SEVERITY_CRITICAL, 100},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        double w = cs_rules_weight(r, cases[i].signal, cases[i].severity);
        if (w != cases[i].w)
            fail_msg("weight(%s, %s) = %g, expected %g", cs_signal_names[cases[i].signal],
                     cs_severity_names[cases[i].severity], w, cases[i].w);
    }
    cs_rules_destroy(r);
}

/* docs/contract/risk-model.md: any CRITICAL event in PROTECTION_FROM_ABUSE or SAFE_CARE,
 * and any NEVER_EVENT, is immediate; nothing else. Checked over every combination. */
static void test_is_immediate(void **state)
{
    (void)state;
    cs_rules_t *r = load_shipped();
    for (int s = 0; s < CS_SIGNAL_COUNT; s++)
        for (int v = 0; v < CS_SEVERITY_COUNT; v++)
            for (int a = 0; a < CS_AREA_COUNT; a++) {
                int want =
                    s == CS_SIGNAL_NEVER_EVENT ||
                    (v == CS_SEVERITY_CRITICAL &&
                     (a == CS_AREA_PROTECTION_FROM_ABUSE || a == CS_AREA_SAFE_CARE));
                if (!cs_rules_is_immediate(r, s, v, a) != !want)
                    fail_msg("is_immediate(%s, %s, %s) should be %d", cs_signal_names[s],
                             cs_severity_names[v], cs_area_names[a], want);
            }
    assert_true(cs_rules_is_immediate(r, CS_SIGNAL_NEVER_EVENT, CS_SEVERITY_INFO,
                                      CS_AREA_SAFE_CARE));
    assert_false(cs_rules_is_immediate(r, CS_SIGNAL_WORKFORCE_SHORTFALL,
                                       CS_SEVERITY_CRITICAL, CS_AREA_STAFFING));
    cs_rules_destroy(r);
}

/* ------------------------------------------------------------------ broken files */

/* Sets (or with \p value NULL deletes) the member at dotted \p path; a numeric segment
 * indexes an array. */
static void mutate(json_t *root, const char *path, const char *value)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    json_t *parent = root;
    char *seg = buf, *dot;
    while ((dot = strchr(seg, '.'))) {
        *dot = '\0';
        parent = json_is_array(parent) ? json_array_get(parent, (size_t)atoi(seg))
                                       : json_object_get(parent, seg);
        if (!parent)
            fail_msg("test bug: no %s in the shipped rules (path %s)", seg, path);
        seg = dot + 1;
    }
    json_t *v = NULL;
    if (value) {
        json_error_t jerr;
        v = json_loads(value, JSON_DECODE_ANY, &jerr);
        if (!v)
            fail_msg("test bug: bad JSON %s", value);
    }
    if (json_is_array(parent)) {
        size_t i = (size_t)atoi(seg);
        if (v ? json_array_set_new(parent, i, v) : json_array_remove(parent, i))
            fail_msg("test bug: %s", path);
    } else if (v) {
        json_object_set_new(parent, seg, v);
    } else if (json_object_del(parent, seg)) {
        fail_msg("test bug: no %s to delete", path);
    }
}

typedef struct mutation {
    const char *path, *value;
} mutation_t;

/* Each broken file fails with "rules file 'mutated.json': <exact JSON path>: ..." and a
 * message saying what is wrong. */
static void test_broken_files(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        mutation_t m[3];
        const char *path, *what;
    } cases[] = {
        {"unknown signal in base",
         {{"risk.base.FIRE", "10"}},
         "$.risk.base.FIRE",
         "unknown signal"},
        {"missing signal in base",
         {{"risk.base.COMPLAINT", NULL}},
         "$.risk.base",
         "missing signal COMPLAINT"},
        {"negative base",
         {{"risk.base.COMPLAINT", "-5"}},
         "$.risk.base.COMPLAINT",
         "must be a number >= 0"},
        {"base as a string",
         {{"risk.base.OUTBREAK", "\"15\""}},
         "$.risk.base.OUTBREAK",
         "must be a number"},
        {"negative half-life",
         {{"risk.half_life_days", "-30"}},
         "$.risk.half_life_days",
         "must be a positive number"},
        {"zero half-life",
         {{"risk.half_life_days", "0"}},
         "$.risk.half_life_days",
         "must be a positive number"},
        {"missing half-life",
         {{"risk.half_life_days", NULL}},
         "$.risk.half_life_days",
         "missing"},
        {"clear threshold above raise",
         {{"risk.levels.LOCATION.watch.clear", "50"}},
         "$.risk.levels.LOCATION.watch.clear",
         "must be below raise (40)"},
        {"clear threshold equal to raise",
         {{"risk.levels.LOCAL_AREA.inspect.clear", "150"}},
         "$.risk.levels.LOCAL_AREA.inspect.clear",
         "must be below raise (150)"},
        {"inspect.raise below watch.raise",
         {{"risk.levels.LOCAL_AREA.inspect.raise", "50"},
          {"risk.levels.LOCAL_AREA.inspect.clear", "45"}},
         "$.risk.levels.LOCAL_AREA.inspect.raise",
         "must not be below watch.raise (60)"},
        {"inspect.clear below watch.clear",
         {{"risk.levels.LOCATION.inspect.clear", "20"}},
         "$.risk.levels.LOCATION.inspect.clear",
         "must not be below watch.clear (28)"},
        {"missing level kind",
         {{"risk.levels.LOCAL_AREA", NULL}},
         "$.risk.levels.LOCAL_AREA",
         "missing"},
        {"unknown key (typo) in risk",
         {{"risk.half_life_dayz", "30"}},
         "$.risk.half_life_dayz",
         "unknown key"},
        {"unknown key (typo) at the top",
         {{"mappings", "{}"}},
         "$.mappings",
         "unknown key"},
        {"unknown key (typo) in a threshold",
         {{"risk.levels.LOCATION.watch.rise", "40"}},
         "$.risk.levels.LOCATION.watch.rise",
         "unknown key"},
        {"unknown key (typo) in a mapping",
         {{"mapping.CCG.occured_at", "\"x\""}},
         "$.mapping.CCG.occured_at",
         "unknown key"},
        {"unknown area in the area mapping",
         {{"mapping.areas.COMPLAINT", "\"ASSURNCE\""}},
         "$.mapping.areas.COMPLAINT",
         "unknown area 'ASSURNCE'"},
        {"unknown area in an immediate rule",
         {{"risk.immediate.rules.0.areas.1", "\"SAFE\""}},
         "$.risk.immediate.rules[0].areas[1]",
         "unknown area 'SAFE'"},
        {"missing signal in the area mapping",
         {{"mapping.areas.SEND_OUTCOME", NULL}},
         "$.mapping.areas.SEND_OUTCOME",
         "missing"},
        {"unknown signal in the area mapping",
         {{"mapping.areas.FIRE", "\"SAFE_CARE\""}},
         "$.mapping.areas.FIRE",
         "unknown signal"},
        {"empty immediate rule",
         {{"risk.immediate.rules.1", "{}"}},
         "$.risk.immediate.rules[1]",
         "an empty rule would match every event"},
        {"immediate rule with an empty list",
         {{"risk.immediate.rules.1.signals", "[]"}},
         "$.risk.immediate.rules[1].signals",
         "must be a non-empty array"},
        {"unknown key (typo) in an immediate rule",
         {{"risk.immediate.rules.1.signal", "[\"NEVER_EVENT\"]"}},
         "$.risk.immediate.rules[1].signal",
         "unknown key"},
        {"immediate rules not an array",
         {{"risk.immediate.rules", "{}"}},
         "$.risk.immediate.rules",
         "must be an array"},
        {"bad severity in the multiplier table",
         {{"risk.severity_multiplier.SEVERE", "2"}},
         "$.risk.severity_multiplier.SEVERE",
         "unknown severity"},
        {"missing severity in the multiplier table",
         {{"risk.severity_multiplier.CRITICAL", NULL}},
         "$.risk.severity_multiplier",
         "missing severity CRITICAL"},
        {"window_days 0",
         {{"risk.events.window_days", "0"}},
         "$.risk.events.window_days",
         "must be an integer from 1"},
        {"window_days not an integer",
         {{"risk.events.window_days", "90.5"}},
         "$.risk.events.window_days",
         "must be an integer"},
        {"events.max 0",
         {{"risk.events.max", "0"}},
         "$.risk.events.max",
         "must be an integer from 1"},
        {"unknown assurance signal",
         {{"risk.assurance_signals.0", "\"PRAISE\""}},
         "$.risk.assurance_signals[0]",
         "unknown signal 'PRAISE'"},
        {"unknown canonical signal in a mapping table",
         {{"mapping.NHSE.signal.map.NEVER_EVENT", "\"NEVER\""}},
         "$.mapping.NHSE.signal.map.NEVER_EVENT",
         "unknown signal 'NEVER'"},
        {"unknown canonical severity in a mapping table",
         {{"mapping.CCG.severity.map.RED", "\"SEVERE\""}},
         "$.mapping.CCG.severity.map.RED",
         "unknown severity 'SEVERE'"},
        {"unknown identifier format",
         {{"mapping.CCG.org.format", "\"postcode\""}},
         "$.mapping.CCG.org.format",
         "unknown identifier format 'postcode'"},
        {"unknown subject kind",
         {{"mapping.OFSTED_SEND.subject.kind", "\"REGION\""}},
         "$.mapping.OFSTED_SEND.subject.kind",
         "unknown subject kind 'REGION'"},
        {"missing source mapping", {{"mapping.CCG", NULL}}, "$.mapping.CCG", "missing"},
        {"empty mapping table",
         {{"mapping.NHSE.severity.map", "{}"}},
         "$.mapping.NHSE.severity.map",
         "must be a non-empty object"},
        {"negative future tolerance",
         {{"mapping.time_range.future_tolerance_minutes", "-1"}},
         "$.mapping.time_range.future_tolerance_minutes",
         "must be an integer from 0"},
        {"missing version", {{"version", NULL}}, "$.version", "missing"},
        {"empty version",
         {{"version", "\"\""}},
         "$.version",
         "must be a non-empty string"},
        {"risk not an object", {{"risk", "[]"}}, "$.risk", "must be an object"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *root = shipped_json();
        for (int k = 0; k < 3 && cases[i].m[k].path; k++)
            mutate(root, cases[i].m[k].path, cases[i].m[k].value);
        char *text = json_dumps(root, JSON_INDENT(2));
        errstr[0] = '\0';
        cs_rules_t *r =
            cs_rules_parse(text, strlen(text), "mutated.json", errstr, sizeof(errstr));
        char prefix[256];
        snprintf(prefix, sizeof(prefix),
                 "rules file 'mutated.json': %s: ", cases[i].path);
        if (r || strncmp(errstr, prefix, strlen(prefix)) ||
            !strstr(errstr + strlen(prefix), cases[i].what))
            fail_msg("case '%s': %s '%s', expected '%s%s...'", cases[i].name,
                     r ? "loaded," : "error", errstr, prefix, cases[i].what);
        assert_null(strchr(errstr, '\n'));
        free(text);
        json_decref(root);
    }
}

/* Files that are not rules at all: not JSON, duplicate keys, empty, unreadable. */
static void test_unreadable_and_not_json(void **state)
{
    (void)state;
    static const struct {
        const char *text, *expect;
    } texts[] = {
        {"not json at all", "rules file 'x.json': line 1: "},
        {"{\"version\": \"1\",", "rules file 'x.json': line 1: "},
        {"{\"version\": \"1\",\n\"version\": \"2\"}", "rules file 'x.json': line 2: "},
        {"[]", "rules file 'x.json': $: must be an object"},
        {"{}", "rules file 'x.json': $.version: missing"},
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        errstr[0] = '\0';
        cs_rules_t *r = cs_rules_parse(texts[i].text, strlen(texts[i].text), "x.json",
                                       errstr, sizeof(errstr));
        if (r || strncmp(errstr, texts[i].expect, strlen(texts[i].expect)))
            fail_msg("text %zu: got '%s', expected '%s...'", i, errstr, texts[i].expect);
    }

    /* files */
    const char *path = cs_test_write_temp("this is not JSON\n");
    char expect[512];
    assert_null(cs_rules_load(path, errstr, sizeof(errstr)));
    snprintf(expect, sizeof(expect), "rules file '%s': line 1: ", path);
    assert_memory_equal(errstr, expect, strlen(expect));
    unlink(path);

    path = cs_test_write_temp("");
    assert_null(cs_rules_load(path, errstr, sizeof(errstr)));
    snprintf(expect, sizeof(expect), "rules file '%s': ", path);
    assert_memory_equal(errstr, expect, strlen(expect));
    unlink(path);

    assert_null(cs_rules_load("/nonexistent/dir/rules.json", errstr, sizeof(errstr)));
    assert_string_equal(errstr, "rules file '/nonexistent/dir/rules.json': cannot read");

    /* a directory opens but cannot be read */
    assert_null(cs_rules_load("/tmp", errstr, sizeof(errstr)));
    assert_memory_equal(errstr, "rules file '/tmp': ", strlen("rules file '/tmp': "));
}

/* ------------------------------------------------------------------ with the schemas */

/* The rules module loads a mapping without knowing the partner schemas; the normaliser
 * compiles it against them and refuses symbols the rules forgot, fields that do not
 * exist and subjects that are not registered, naming them. */
static void test_mapping_checked_against_schemas(void **state)
{
    (void)state;
    cs_registry_t *reg =
        cs_registry_load(src_path("schemas/registry.json"), errstr, sizeof(errstr));
    assert_non_null(reg);
    static const char *const topics[CS_SOURCE_COUNT] = {"a", "b", "c"};
    static const struct {
        const char *name;
        mutation_t m;
        const char *expect[3];
    } cases[] = {
        {"NHSE harm DEATH unmapped",
         {"mapping.NHSE.severity.map.DEATH", NULL},
         {"$.mapping.NHSE.severity", "DEATH", NULL}},
        {"CCG concern_type WHISTLEBLOWING unmapped",
         {"mapping.CCG.signal.map.WHISTLEBLOWING", NULL},
         {"$.mapping.CCG.signal", "WHISTLEBLOWING", NULL}},
        {"Ofsted outcome WRITTEN_STATEMENT_OF_ACTION unmapped",
         {"mapping.OFSTED_SEND.severity.map.WRITTEN_STATEMENT_OF_ACTION", NULL},
         {"$.mapping.OFSTED_SEND.severity", "WRITTEN_STATEMENT_OF_ACTION", NULL}},
        {"a misspelt partner symbol leaves the real one unmapped",
         {"mapping.CCG.severity.map",
          "{\"GREEN\": \"LOW\", \"AMBR\": \"MEDIUM\", \"RED\": \"HIGH\"}"},
         {"AMBER", NULL}},
        {"event_ref field not in the schema",
         {"mapping.NHSE.event_ref", "\"incident_ref\""},
         {"$.mapping.NHSE", "incident_ref", "nhse.Incident"}},
        {"subject field not in the schema",
         {"mapping.CCG.subject.field", "\"location\""},
         {"$.mapping.CCG", "location", NULL}},
        {"schema not registered",
         {"mapping.CCG.schema", "\"ccg.Concerns\""},
         {"$.mapping.CCG.schema", "ccg.Concerns", NULL}},
        {"enum map on a field that is not an enum",
         {"mapping.NHSE.signal.field", "\"location_id\""},
         {"location_id", "not an enum", NULL}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *root = shipped_json();
        mutate(root, cases[i].m.path, cases[i].m.value);
        char *text = json_dumps(root, 0);
        cs_rules_t *r =
            cs_rules_parse(text, strlen(text), "mutated.json", errstr, sizeof(errstr));
        if (!r)
            fail_msg("case '%s': the rules module should load it: %s", cases[i].name,
                     errstr);
        errstr[0] = '\0';
        cs_normaliser_t *n =
            cs_normaliser_new(reg, r, topics, 65536, errstr, sizeof(errstr));
        if (n)
            fail_msg("case '%s': the normaliser accepted it", cases[i].name);
        for (int k = 0; k < 3 && cases[i].expect[k]; k++)
            if (!strstr(errstr, cases[i].expect[k]))
                fail_msg("case '%s': '%s' does not name %s", cases[i].name, errstr,
                         cases[i].expect[k]);
        cs_rules_destroy(r);
        free(text);
        json_decref(root);
    }
    /* and the shipped rules compile */
    cs_rules_t *r = load_shipped();
    cs_normaliser_t *n = cs_normaliser_new(reg, r, topics, 65536, errstr, sizeof(errstr));
    assert_non_null(n);
    cs_normaliser_destroy(n);
    cs_rules_destroy(r);
    cs_registry_destroy(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_values),
        cmocka_unit_test(test_parse_and_digest),
        cmocka_unit_test(test_weight),
        cmocka_unit_test(test_is_immediate),
        cmocka_unit_test(test_broken_files),
        cmocka_unit_test(test_unreadable_and_not_json),
        cmocka_unit_test(test_mapping_checked_against_schemas),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
