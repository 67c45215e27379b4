/* Unit tests of the schema-guided JSON -> Avro converter (docs/contract/formats.md): every partner
 * schema's fields and enum symbols, nullable fields and defaults, timestamps and
 * dates, the reason codes and field paths of every kind of bad input, error text that
 * never quotes a value, and small ad-hoc schemas for the types partners do not use. */
#include "testenv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "caresignal/convert.h"
#include "caresignal/registry.h"

#define N(a)   (sizeof(a) / sizeof((a)[0]))
#define CANARY "CANARY-7f3a"

static cs_registry_t *reg;
static cs_converter_t *conv[7]; /* by schema id 1..6 */
static avro_value_t vals[7];

static int setup(void **state)
{
    (void)state;
    char path[512], errstr[512];
    snprintf(path, sizeof(path), "%s/schemas/registry.json", cs_test_source_dir());
    reg = cs_registry_load(path, errstr, sizeof(errstr));
    if (!reg) {
        fprintf(stderr, "%s\n", errstr);
        return -1;
    }
    for (int id = 1; id <= 6; id++) {
        const cs_schema_t *s = cs_registry_get(reg, id);
        conv[id] = s ? cs_converter_new(s, errstr, sizeof(errstr)) : NULL;
        if (!conv[id] || avro_generic_value_new(s->iface, &vals[id])) {
            fprintf(stderr, "schema %d: %s\n", id, errstr);
            return -1;
        }
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int id = 1; id <= 6; id++) {
        avro_value_decref(&vals[id]);
        cs_converter_destroy(conv[id]);
    }
    cs_registry_destroy(reg);
    return 0;
}

/* ------------------------------------------------------------------ helpers */

static json_t *parse(const char *text)
{
    json_error_t jerr;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (!j)
        fail_msg("test JSON '%s': %s", text, jerr.text);
    return j;
}

/* Converts \p text with converter \p c into \p out. */
static cs_err_t run_with(const cs_converter_t *c, const char *text, avro_value_t *out,
                         cs_error_t *err)
{
    json_t *j = parse(text);
    cs_error_clear(err);
    cs_err_t rc = cs_converter_run(c, j, out, err);
    json_decref(j);
    assert_int_equal(err->code, rc);
    if (rc)
        assert_true(cs_err_is_reason(rc));
    return rc;
}

static cs_err_t run(int id, const char *text, cs_error_t *err)
{
    return run_with(conv[id], text, &vals[id], err);
}

/* Converts \p base with field \p name set to the JSON \p value (or removed, if NULL). */
static cs_err_t run_field(int id, const char *base, const char *name, const char *value,
                          cs_error_t *err)
{
    json_t *j = parse(base);
    if (value)
        json_object_set_new(j, name, parse(value));
    else
        json_object_del(j, name);
    cs_error_clear(err);
    cs_err_t rc = cs_converter_run(conv[id], j, &vals[id], err);
    json_decref(j);
    return rc;
}

static avro_value_t field(avro_value_t *rec, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    avro_value_t cur = *rec, next;
    for (char *save = NULL, *part = strtok_r(buf, ".", &save); part;
         part = strtok_r(NULL, ".", &save)) {
        if (avro_value_get_by_name(&cur, part, &next, NULL))
            fail_msg("no field %s (of %s)", part, path);
        cur = next;
    }
    return cur;
}

static const char *get_str(avro_value_t *rec, const char *path)
{
    avro_value_t f = field(rec, path);
    const char *s;
    size_t len;
    if (avro_value_get_string(&f, &s, &len))
        fail_msg("%s is not a string", path);
    assert_int_equal(strlen(s) + 1, len);
    return s;
}

static int64_t get_long(avro_value_t *rec, const char *path)
{
    avro_value_t f = field(rec, path);
    int64_t v;
    if (avro_value_get_long(&f, &v))
        fail_msg("%s is not a long", path);
    return v;
}

static const char *get_enum(avro_value_t *rec, const char *path)
{
    avro_value_t f = field(rec, path);
    int idx;
    if (avro_value_get_enum(&f, &idx))
        fail_msg("%s is not an enum", path);
    return avro_schema_enum_get(avro_value_get_schema(&f), idx);
}

/* @returns NULL if the nullable field \p path is null, else its string. */
static const char *get_nullable_str(avro_value_t *rec, const char *path)
{
    avro_value_t f = field(rec, path), branch;
    int disc;
    assert_int_equal(avro_value_get_discriminant(&f, &disc), 0);
    assert_int_equal(avro_value_get_current_branch(&f, &branch), 0);
    if (avro_value_get_type(&branch) == AVRO_NULL)
        return NULL;
    const char *s;
    size_t len;
    assert_int_equal(avro_value_get_string(&branch, &s, &len), 0);
    return s;
}

static size_t get_size(avro_value_t *rec, const char *path)
{
    avro_value_t f = field(rec, path);
    size_t n;
    assert_int_equal(avro_value_get_size(&f, &n), 0);
    return n;
}

static void assert_no_canary(const cs_error_t *err)
{
    if (strstr(err->msg, "CANARY") || strstr(err->msg, "7f3a") ||
        strstr(err->field, "CANARY") || strstr(err->field, "7f3a"))
        fail_msg("error quotes the data: field '%s' msg '%s'", err->field, err->msg);
}

static void expect_error(cs_err_t rc, const cs_error_t *err, cs_err_t code,
                         const char *path, const char *what)
{
    if (rc != code || err->code != code || strcmp(err->field, path))
        fail_msg("%s: got %s at '%s' (%s), expected %s at '%s'", what, cs_err_str(rc),
                 err->field, err->msg, cs_err_str(code), path);
    assert_true(err->msg[0] != '\0');
    assert_no_canary(err);
}

/* One valid message per schema id (1..6). */
static const char *const base_json[7] = {
    NULL,
    "{\"incident_id\":\"NHSE-2026-000123\",\"reporting_org_ods\":\"RXQ\","
    "\"location_id\":\"1-101669119\",\"category\":\"OUTBREAK\",\"harm\":\"MODERATE\","
    "\"occurred_at\":\"2026-11-20T09:15:00Z\",\"reported_at\":1795166200000,"
    "\"description\":\"ward closed\"}",
    "{\"incident_id\":\"NHSE-2026-000124\",\"reporting_org_ods\":\"RXQ\","
    "\"location_id\":\"RXQ02\",\"category\":\"VACCINATION_INCIDENT\",\"harm\":\"LOW\","
    "\"occurred_at\":\"2026-11-20T10:15:00+01:00\",\"reported_at\":\"2026-11-20T09:20:"
    "00Z\","
    "\"vaccination_site_code\":\"VX123\"}",
    "{\"concern_ref\":\"C-1\",\"ccg_ods\":\"QE1\",\"location_id\":\"RXQ02\","
    "\"concern_type\":\"WHISTLEBLOWING\",\"rag\":\"RED\",\"received_on\":\"2026-11-19\","
    "\"whistleblower_name\":\"A Person\",\"narrative\":null}",
    "{\"inspection_ref\":\"SEND-1\",\"local_authority_code\":\"E09000030\","
    "\"outcome\":\"SYSTEMIC_FAILINGS\",\"published_at\":\"2026-11-20T00:00:00Z\","
    "\"named_location_ids\":[\"1-101669119\",\"RXQ02\",\"1-10000792582\"]}",
    "{\"event_key\":\"NHSE:RXQ:NHSE-1\",\"source\":\"NHSE\",\"source_org\":\"RXQ\","
    "\"subject_kind\":\"LOCATION\",\"subject_id\":\"1-101669119\",\"signal\":"
    "\"OUTBREAK\","
    "\"area\":\"SAFE_CARE\",\"severity\":\"MEDIUM\",\"occurred_at\":1795166100000,"
    "\"received_at\":1795166200000,\"origin\":{\"topic\":\"intel.raw.nhse\","
    "\"partition\":3,\"offset\":123456,\"schema_id\":-1},\"region\":\"London\","
    "\"local_authority_code\":\"E09000030\"}",
    "{\"alert_id\":\"0123456789abcdef0123456789abcdef\",\"kind\":\"RAISED\","
    "\"subject_kind\":\"LOCATION\",\"subject_id\":\"1-101669119\",\"level\":\"INSPECT\","
    "\"previous_level\":\"WATCH\",\"score\":12.5,\"area_scores\":{\"SAFE_CARE\":10.0,"
    "\"STAFFING\":2},\"as_of\":1795166100000,\"triggered_by\":\"NHSE:RXQ:NHSE-1\","
    "\"reason\":\"THRESHOLD\",\"recent\":[{\"event_key\":\"k1\",\"signal\":\"OUTBREAK\","
    "\"severity\":\"HIGH\",\"occurred_at\":1},{\"event_key\":\"k2\",\"signal\":"
    "\"COMPLAINT\",\"severity\":\"LOW\",\"occurred_at\":\"1970-01-01T00:00:00.002Z\"}],"
    "\"rules_version\":\"v1\",\"region\":\"London\",\"local_authority_code\":"
    "\"E09000030\"}",
};

/* ------------------------------------------------------------------ partner schemas */

static void test_nhse_v1_fields(void **state)
{
    (void)state;
    cs_error_t err;
    assert_int_equal(run(1, base_json[1], &err), CS_OK);
    avro_value_t *v = &vals[1];
    assert_string_equal(get_str(v, "incident_id"), "NHSE-2026-000123");
    assert_string_equal(get_str(v, "reporting_org_ods"), "RXQ");
    assert_string_equal(get_str(v, "location_id"), "1-101669119");
    assert_string_equal(get_enum(v, "category"), "OUTBREAK");
    assert_string_equal(get_enum(v, "harm"), "MODERATE");
    assert_int_equal(get_long(v, "occurred_at"), 1795166100000LL);
    assert_int_equal(get_long(v, "reported_at"), 1795166200000LL);
    assert_string_equal(get_nullable_str(v, "description"), "ward closed");
}

static void test_nhse_v2_fields(void **state)
{
    (void)state;
    cs_error_t err;
    assert_int_equal(run(2, base_json[2], &err), CS_OK);
    avro_value_t *v = &vals[2];
    assert_string_equal(get_str(v, "incident_id"), "NHSE-2026-000124");
    assert_string_equal(get_str(v, "location_id"), "RXQ02");
    assert_string_equal(get_enum(v, "category"), "VACCINATION_INCIDENT");
    assert_string_equal(get_enum(v, "harm"), "LOW");
    assert_int_equal(get_long(v, "occurred_at"), 1795166100000LL);
    assert_int_equal(get_long(v, "reported_at"), 1795166400000LL);
    assert_null(get_nullable_str(v, "description")); /* absent: default null */
    assert_string_equal(get_nullable_str(v, "vaccination_site_code"), "VX123");
    assert_int_equal(run_field(2, base_json[2], "vaccination_site_code", NULL, &err),
                     CS_OK);
    assert_null(get_nullable_str(v, "vaccination_site_code"));
    /* a v1 message is a valid v2 message (the field added has a default) */
    assert_int_equal(run(2, base_json[1], &err), CS_OK);
    assert_null(get_nullable_str(v, "vaccination_site_code"));
    assert_string_equal(get_nullable_str(v, "description"), "ward closed");
}

static void test_ccg_fields(void **state)
{
    (void)state;
    cs_error_t err;
    assert_int_equal(run(3, base_json[3], &err), CS_OK);
    avro_value_t *v = &vals[3];
    assert_string_equal(get_str(v, "concern_ref"), "C-1");
    assert_string_equal(get_str(v, "ccg_ods"), "QE1");
    assert_string_equal(get_str(v, "location_id"), "RXQ02");
    assert_string_equal(get_enum(v, "concern_type"), "WHISTLEBLOWING");
    assert_string_equal(get_enum(v, "rag"), "RED");
    assert_string_equal(get_str(v, "received_on"), "2026-11-19");
    assert_string_equal(get_nullable_str(v, "whistleblower_name"), "A Person");
    assert_null(get_nullable_str(v, "narrative"));
}

static void test_ofsted_fields(void **state)
{
    (void)state;
    cs_error_t err;
    assert_int_equal(run(4, base_json[4], &err), CS_OK);
    avro_value_t *v = &vals[4];
    assert_string_equal(get_str(v, "inspection_ref"), "SEND-1");
    assert_string_equal(get_str(v, "local_authority_code"), "E09000030");
    assert_string_equal(get_enum(v, "outcome"), "SYSTEMIC_FAILINGS");
    assert_int_equal(get_long(v, "published_at"), 1795132800000LL);
    assert_int_equal(get_size(v, "named_location_ids"), 3);
    static const char *const ids[] = {"1-101669119", "RXQ02", "1-10000792582"};
    avro_value_t arr = field(v, "named_location_ids"), item;
    for (size_t i = 0; i < 3; i++) {
        const char *s;
        size_t len;
        assert_int_equal(avro_value_get_by_index(&arr, i, &item, NULL), 0);
        assert_int_equal(avro_value_get_string(&item, &s, &len), 0);
        assert_string_equal(s, ids[i]);
    }
    /* absent: the default [], also after a message that had items */
    assert_int_equal(run_field(4, base_json[4], "named_location_ids", NULL, &err), CS_OK);
    assert_int_equal(get_size(v, "named_location_ids"), 0);
    assert_int_equal(run_field(4, base_json[4], "named_location_ids", "[]", &err), CS_OK);
    assert_int_equal(get_size(v, "named_location_ids"), 0);
    /* repeated names are kept (de-duplication is the normaliser's job) */
    assert_int_equal(
        run_field(4, base_json[4], "named_location_ids", "[\"RXQ02\",\"RXQ02\"]", &err),
        CS_OK);
    assert_int_equal(get_size(v, "named_location_ids"), 2);
}

static void test_array_items_report_their_index(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        cs_err_t code;
        const char *path;
    } cases[] = {
        {"[\"a\",\"b\",5]", CS_ERR_FIELD_TYPE, "named_location_ids[2]"},
        {"[null]", CS_ERR_FIELD_TYPE, "named_location_ids[0]"},
        {"[\"a\",[\"b\"]]", CS_ERR_FIELD_TYPE, "named_location_ids[1]"},
        {"[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\",{}]",
         CS_ERR_FIELD_TYPE, "named_location_ids[10]"},
        {"null", CS_ERR_FIELD_TYPE, "named_location_ids"},
        {"\"1-101669119\"", CS_ERR_FIELD_TYPE, "named_location_ids"},
        {"{\"0\":\"1-101669119\"}", CS_ERR_FIELD_TYPE, "named_location_ids"},
    };
    for (size_t i = 0; i < N(cases); i++) {
        cs_error_t err;
        cs_err_t rc =
            run_field(4, base_json[4], "named_location_ids", cases[i].value, &err);
        expect_error(rc, &err, cases[i].code, cases[i].path, cases[i].value);
    }
    /* nested: the path of an item's field */
    cs_error_t err;
    json_t *j = parse(base_json[6]);
    json_object_set_new(json_array_get(json_object_get(j, "recent"), 1), "severity",
                        json_string("high"));
    cs_err_t rc = cs_converter_run(conv[6], j, &vals[6], &err);
    expect_error(rc, &err, CS_ERR_ENUM_UNKNOWN, "recent[1].severity", "recent");
    json_object_del(json_array_get(json_object_get(j, "recent"), 0), "event_key");
    rc = cs_converter_run(conv[6], j, &vals[6], &err);
    expect_error(rc, &err, CS_ERR_FIELD_MISSING, "recent[0].event_key", "recent");
    json_decref(j);
}

/* The enum fields of a schema, with their symbols (following named references). */
static const json_t *enum_def(const cs_schema_t *s, const json_t *type)
{
    if (json_is_string(type)) {
        const char *name = json_string_value(type);
        const json_t *def = json_object_get(s->named, name);
        if (!def) {
            char full[256];
            const char *ns = json_string_value(json_object_get(s->json, "namespace"));
            snprintf(full, sizeof(full), "%s.%s", ns ? ns : "", name);
            def = json_object_get(s->named, full);
        }
        type = def;
    }
    const char *kind = json_string_value(json_object_get(type, "type"));
    return kind && !strcmp(kind, "enum") ? type : NULL;
}

static void test_every_enum_symbol(void **state)
{
    (void)state;
    int enum_fields = 0;
    for (int id = 1; id <= 6; id++) {
        const cs_schema_t *s = cs_registry_get(reg, id);
        size_t fi;
        json_t *f;
        json_array_foreach(json_object_get(s->json, "fields"), fi, f)
        {
            const json_t *def = enum_def(s, json_object_get(f, "type"));
            if (!def)
                continue;
            enum_fields++;
            const char *name = json_string_value(json_object_get(f, "name"));
            size_t si;
            json_t *sym;
            json_array_foreach(json_object_get(def, "symbols"), si, sym)
            {
                const char *symbol = json_string_value(sym);
                char value[128], lower[128];
                snprintf(value, sizeof(value), "\"%s\"", symbol);
                cs_error_t err;
                if (run_field(id, base_json[id], name, value, &err))
                    fail_msg("schema %d %s=%s: %s", id, name, symbol, err.msg);
                avro_value_t fv = field(&vals[id], name);
                int idx;
                avro_value_get_enum(&fv, &idx);
                assert_int_equal(idx, (int)si);
                /* symbols are case-sensitive */
                size_t k;
                for (k = 0; symbol[k] && k + 3 < sizeof(lower); k++)
                    lower[k] =
                        (char)(symbol[k] >= 'A' && symbol[k] <= 'Z' ? symbol[k] + 32
                                                                    : symbol[k]);
                lower[k] = '\0';
                snprintf(value, sizeof(value), "\"%s\"", lower);
                expect_error(run_field(id, base_json[id], name, value, &err), &err,
                             CS_ERR_ENUM_UNKNOWN, name, value);
                snprintf(value, sizeof(value), "\" %s\"", symbol);
                expect_error(run_field(id, base_json[id], name, value, &err), &err,
                             CS_ERR_ENUM_UNKNOWN, name, value);
            }
            static const char *const bad_types[] = {"5", "null", "true", "[\"LOW\"]",
                                                    "{}"};
            for (size_t b = 0; b < N(bad_types); b++) {
                cs_error_t err;
                expect_error(run_field(id, base_json[id], name, bad_types[b], &err), &err,
                             CS_ERR_FIELD_TYPE, name, bad_types[b]);
            }
            cs_error_t err;
            expect_error(run_field(id, base_json[id], name, "\"\"", &err), &err,
                         CS_ERR_ENUM_UNKNOWN, name, "empty symbol");
            expect_error(run_field(id, base_json[id], name, "\"" CANARY "\"", &err), &err,
                         CS_ERR_ENUM_UNKNOWN, name, "canary symbol");
        }
    }
    /* 2 (nhse v1) + 2 (v2) + 2 (ccg) + 1 (ofsted) + 5 (IntelEvent) + 5 (RiskAlert) */
    assert_int_equal(enum_fields, 17);
}

static void test_nullable_fields(void **state)
{
    (void)state;
    static const struct {
        int id;
        const char *name;
    } fields[] = {
        {1, "description"},        {2, "description"}, {2, "vaccination_site_code"},
        {3, "whistleblower_name"}, {3, "narrative"},
    };
    for (size_t i = 0; i < N(fields); i++) {
        int id = fields[i].id;
        const char *name = fields[i].name;
        cs_error_t err;
        assert_int_equal(run_field(id, base_json[id], name, "\"plain text\"", &err),
                         CS_OK);
        assert_string_equal(get_nullable_str(&vals[id], name), "plain text");
        assert_int_equal(run_field(id, base_json[id], name, "\"\"", &err), CS_OK);
        assert_string_equal(get_nullable_str(&vals[id], name), "");
        assert_int_equal(run_field(id, base_json[id], name, "null", &err), CS_OK);
        assert_null(get_nullable_str(&vals[id], name));
        assert_int_equal(run_field(id, base_json[id], name, "\"again\"", &err), CS_OK);
        assert_int_equal(run_field(id, base_json[id], name, NULL, &err), CS_OK);
        assert_null(get_nullable_str(&vals[id], name)); /* absent: default null */
        static const char *const bad[] = {"5", "true", "[\"x\"]", "{\"string\":\"x\"}",
                                          "1.5"};
        for (size_t b = 0; b < N(bad); b++)
            expect_error(run_field(id, base_json[id], name, bad[b], &err), &err,
                         CS_ERR_FIELD_TYPE, name, bad[b]);
    }
}

/* ------------------------------------------------------------------ times */

static void test_timestamps(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        cs_err_t code;
        int64_t ms;
    } cases[] = {
        {"\"2026-11-20T09:15:00Z\"", CS_OK, 1795166100000LL},
        {"\"2026-11-20T09:15:00+00:00\"", CS_OK, 1795166100000LL},
        {"\"2026-11-20T10:15:00+01:00\"", CS_OK, 1795166100000LL},
        {"\"2026-11-20T10:15:00+0100\"", CS_OK, 1795166100000LL},
        {"\"2026-11-20T03:45:00-05:30\"", CS_OK, 1795166100000LL},
        {"\"2026-11-20T03:45:00-0530\"", CS_OK, 1795166100000LL},
        {"\"2026-11-20T09:15:00.123Z\"", CS_OK, 1795166100123LL},
        {"\"2026-11-20T09:15:00.123456789Z\"", CS_OK, 1795166100123LL},
        {"\"2026-11-20T09:15:00.9999Z\"", CS_OK, 1795166100999LL},
        {"\"2026-11-20T09:15:00.5+01:00\"", CS_OK, 1795162500500LL},
        {"\"1969-12-31T23:59:59.999Z\"", CS_OK, -1},
        {"1795166100000", CS_OK, 1795166100000LL},
        {"0", CS_OK, 0},
        {"-1", CS_OK, -1},
        {"9223372036854775807", CS_OK, INT64_MAX},
        {"-9223372036854775808", CS_OK, INT64_MIN},
        {"\"2026-11-20T09:15:00\"", CS_ERR_FIELD_TYPE, 0}, /* no offset */
        {"\"2026-11-20T09:15:00.123\"", CS_ERR_FIELD_TYPE, 0},
        {"\"2026-11-20\"", CS_ERR_FIELD_TYPE, 0},
        {"\"2026-11-20 09:15:00Z\"", CS_ERR_FIELD_TYPE, 0},
        {"\"2026-02-30T09:15:00Z\"", CS_ERR_FIELD_TYPE, 0},
        {"\"2026-11-20T25:15:00Z\"", CS_ERR_FIELD_TYPE, 0},
        {"\"1795166100000\"", CS_ERR_FIELD_TYPE, 0},
        {"\"\"", CS_ERR_FIELD_TYPE, 0},
        {"1795166100000.0", CS_ERR_FIELD_TYPE, 0},
        {"1.7951661e12", CS_ERR_FIELD_TYPE, 0},
        {"true", CS_ERR_FIELD_TYPE, 0},
        {"null", CS_ERR_FIELD_TYPE, 0},
        {"{}", CS_ERR_FIELD_TYPE, 0},
        {"[1795166100000]", CS_ERR_FIELD_TYPE, 0},
        {"\"" CANARY "\"", CS_ERR_FIELD_TYPE, 0},
    };
    static const struct {
        int id;
        const char *name;
    } fields[] = {
        {1, "occurred_at"}, {1, "reported_at"}, {2, "occurred_at"}, {4, "published_at"}};
    for (size_t f = 0; f < N(fields); f++) {
        for (size_t i = 0; i < N(cases); i++) {
            cs_error_t err;
            cs_err_t rc = run_field(fields[f].id, base_json[fields[f].id], fields[f].name,
                                    cases[i].value, &err);
            if (cases[i].code == CS_OK) {
                if (rc != CS_OK)
                    fail_msg("%s=%s: %s", fields[f].name, cases[i].value, err.msg);
                assert_int_equal(get_long(&vals[fields[f].id], fields[f].name),
                                 cases[i].ms);
            } else {
                expect_error(rc, &err, cases[i].code, fields[f].name, cases[i].value);
            }
        }
    }
}

static void test_received_on_is_a_date(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        cs_err_t code;
    } cases[] = {
        {"\"2026-11-19\"", CS_OK},
        {"\"2024-02-29\"", CS_OK},
        {"\"1999-12-31\"", CS_OK},
        {"\"2026-02-30\"", CS_ERR_FIELD_TYPE},
        {"\"2026-02-29\"", CS_ERR_FIELD_TYPE},
        {"\"2026-1-5\"", CS_ERR_FIELD_TYPE},
        {"\"2026-01-5\"", CS_ERR_FIELD_TYPE},
        {"\"2026-13-01\"", CS_ERR_FIELD_TYPE},
        {"\"2026-11-19T00:00:00Z\"", CS_ERR_FIELD_TYPE},
        {"\"19/11/2026\"", CS_ERR_FIELD_TYPE},
        {"\"\"", CS_ERR_FIELD_TYPE},
        {"\" 2026-11-19\"", CS_ERR_FIELD_TYPE},
        {"\"" CANARY "\"", CS_ERR_FIELD_TYPE},
        {"20261119", CS_ERR_FIELD_TYPE},
        {"1795046400000", CS_ERR_FIELD_TYPE},
        {"null", CS_ERR_FIELD_TYPE},
        {"[\"2026-11-19\"]", CS_ERR_FIELD_TYPE},
    };
    for (size_t i = 0; i < N(cases); i++) {
        cs_error_t err;
        cs_err_t rc = run_field(3, base_json[3], "received_on", cases[i].value, &err);
        if (cases[i].code == CS_OK) {
            if (rc != CS_OK)
                fail_msg("received_on=%s: %s", cases[i].value, err.msg);
            char want[32];
            snprintf(want, sizeof(want), "%.*s", (int)strlen(cases[i].value) - 2,
                     cases[i].value + 1);
            assert_string_equal(get_str(&vals[3], "received_on"), want);
        } else {
            expect_error(rc, &err, cases[i].code, "received_on", cases[i].value);
        }
    }
}

/* ------------------------------------------------------------------ rules */

static void test_unknown_fields_ignored(void **state)
{
    (void)state;
    for (int id = 1; id <= 6; id++) {
        json_t *j = parse(base_json[id]);
        json_object_set_new(j, "extra", json_string(CANARY));
        json_object_set_new(j, CANARY, json_null());
        json_object_set_new(j, "nested", parse("{\"a\":[1,{\"b\":null}]}"));
        json_object_set_new(j, "Incident_Id", json_integer(5)); /* names are exact */
        cs_error_t err;
        if (cs_converter_run(conv[id], j, &vals[id], &err))
            fail_msg("schema %d with unknown fields: %s", id, err.msg);
        json_decref(j);
    }
}

static void test_missing_required_fields(void **state)
{
    (void)state;
    for (int id = 1; id <= 6; id++) {
        const cs_schema_t *s = cs_registry_get(reg, id);
        size_t fi;
        json_t *f;
        int required = 0;
        json_array_foreach(json_object_get(s->json, "fields"), fi, f)
        {
            const char *name = json_string_value(json_object_get(f, "name"));
            if (json_object_get(f, "default"))
                continue;
            required++;
            cs_error_t err;
            expect_error(run_field(id, base_json[id], name, NULL, &err), &err,
                         CS_ERR_FIELD_MISSING, name, name);
            /* null in a non-nullable field is FIELD_TYPE */
            expect_error(run_field(id, base_json[id], name, "null", &err), &err,
                         CS_ERR_FIELD_TYPE, name, name);
        }
        assert_true(required >= 4);
        /* an empty object: the first field in schema order */
        cs_error_t err;
        const char *first = json_string_value(json_object_get(
            json_array_get(json_object_get(s->json, "fields"), 0), "name"));
        expect_error(run(id, "{}", &err), &err, CS_ERR_FIELD_MISSING, first, "{}");
    }
}

/* Fields are checked in schema order: the first failure is the reason. */
static void test_first_failure_in_schema_order(void **state)
{
    (void)state;
    cs_error_t err;
    json_t *j = parse(base_json[1]);
    json_object_del(j, "harm");                             /* 5th field: missing */
    json_object_set_new(j, "location_id", json_integer(5)); /* 3rd field: wrong type */
    json_object_set_new(j, "description", json_integer(5));
    assert_int_equal(cs_converter_run(conv[1], j, &vals[1], &err), CS_ERR_FIELD_TYPE);
    assert_string_equal(err.field, "location_id");
    json_object_set_new(j, "location_id", json_string("1-101669119"));
    json_object_set_new(j, "category", json_string("outbreak"));
    assert_int_equal(cs_converter_run(conv[1], j, &vals[1], &err), CS_ERR_ENUM_UNKNOWN);
    assert_string_equal(err.field, "category");
    json_object_set_new(j, "category", json_string("OUTBREAK"));
    assert_int_equal(cs_converter_run(conv[1], j, &vals[1], &err), CS_ERR_FIELD_MISSING);
    assert_string_equal(err.field, "harm");
    json_object_set_new(j, "harm", json_string("DEATH"));
    assert_int_equal(cs_converter_run(conv[1], j, &vals[1], &err), CS_ERR_FIELD_TYPE);
    assert_string_equal(err.field, "description");
    json_decref(j);
}

static void test_wrong_json_types(void **state)
{
    (void)state;
    static const struct {
        int id;
        const char *name, *value;
    } cases[] = {
        {1, "incident_id", "5"},
        {1, "incident_id", "true"},
        {1, "incident_id", "[\"NHSE-1\"]"},
        {1, "incident_id", "{\"id\":\"NHSE-1\"}"},
        {1, "incident_id", "1.5"},
        {1, "reporting_org_ods", "false"},
        {1, "location_id", "101669119"},
        {1, "category", "2"},
        {1, "harm", "[]"},
        {1, "description", "{}"},
        {2, "vaccination_site_code", "42"},
        {3, "concern_ref", "{}"},
        {3, "rag", "0"},
        {3, "received_on", "true"},
        {4, "inspection_ref", "null"},
        {4, "published_at", "\"yesterday\""},
        {4, "named_location_ids", "\"RXQ02\""},
        {5, "origin", "\"intel.raw.nhse\""},
        {5, "origin", "[]"},
        {6, "score", "\"12.5\""},
        {6, "score", "true"},
        {6, "area_scores", "[]"},
        {6, "recent", "{}"},
    };
    for (size_t i = 0; i < N(cases); i++) {
        cs_error_t err;
        expect_error(run_field(cases[i].id, base_json[cases[i].id], cases[i].name,
                               cases[i].value, &err),
                     &err, CS_ERR_FIELD_TYPE, cases[i].name, cases[i].value);
    }
}

static void test_top_level_not_an_object(void **state)
{
    (void)state;
    static const char *const cases[] = {"[]",   "[{}]", "\"x\"", "5",     "1.5",
                                        "null", "true", "false", "\"{}\""};
    for (int id = 1; id <= 6; id++) {
        for (size_t i = 0; i < N(cases); i++) {
            cs_error_t err;
            expect_error(run(id, cases[i], &err), &err, CS_ERR_NOT_OBJECT, "", cases[i]);
        }
    }
}

/* Values often carry personal data: no error text may quote one. */
static void test_errors_never_quote_values(void **state)
{
    (void)state;
    static const struct {
        int id;
        const char *name, *value;
    } cases[] = {
        {1, "incident_id", "[\"" CANARY "\"]"},
        {1, "category", "\"" CANARY "\""},
        {1, "occurred_at", "\"" CANARY "\""},
        {1, "occurred_at", "\"2026-11-20T09:15:00" CANARY "\""},
        {1, "description", "{\"" CANARY "\":\"" CANARY "\"}"},
        {1, "description", "[\"" CANARY "\"]"},
        {3, "received_on", "\"" CANARY "\""},
        {3, "whistleblower_name", "[\"" CANARY "\"]"},
        {4, "named_location_ids", "[\"a\",{\"" CANARY "\":1}]"},
        {4, "named_location_ids", "{\"" CANARY "\":\"" CANARY "\"}"},
        {5, "origin", "{\"topic\":\"" CANARY "\",\"partition\":\"" CANARY "\"}"},
        {6, "area_scores", "{\"" CANARY "\":\"" CANARY "\"}"},
        {6, "recent", "[{\"event_key\":\"" CANARY "\",\"signal\":\"" CANARY "\"}]"},
        {6, "previous_level", "\"" CANARY "\""},
    };
    for (size_t i = 0; i < N(cases); i++) {
        cs_error_t err;
        cs_err_t rc = run_field(cases[i].id, base_json[cases[i].id], cases[i].name,
                                cases[i].value, &err);
        if (rc == CS_OK)
            fail_msg("%s=%s accepted", cases[i].name, cases[i].value);
        assert_no_canary(&err);
        /* the path starts with the field name, and map keys never appear in it */
        assert_int_equal(strncmp(err.field, cases[i].name, strlen(cases[i].name)), 0);
    }
    /* a missing field next to a canary value */
    cs_error_t err;
    json_t *j = parse(base_json[3]);
    json_object_del(j, "rag");
    json_object_set_new(j, "narrative", json_string(CANARY));
    json_object_set_new(j, "whistleblower_name", json_string(CANARY));
    assert_int_equal(cs_converter_run(conv[3], j, &vals[3], &err), CS_ERR_FIELD_MISSING);
    assert_no_canary(&err);
    json_decref(j);
}

/* A converter and its output value are reused message after message. */
static void test_reuse_leaves_nothing_behind(void **state)
{
    (void)state;
    cs_error_t err;
    assert_int_equal(run(1, base_json[1], &err), CS_OK);
    assert_non_null(get_nullable_str(&vals[1], "description"));
    assert_int_equal(run_field(1, base_json[1], "description", NULL, &err), CS_OK);
    assert_null(get_nullable_str(&vals[1], "description"));
    /* a failed run, then a good one */
    assert_int_equal(run_field(1, base_json[1], "harm", "\"BAD\"", &err),
                     CS_ERR_ENUM_UNKNOWN);
    assert_int_equal(run(1, base_json[1], &err), CS_OK);
    assert_string_equal(get_nullable_str(&vals[1], "description"), "ward closed");
    assert_int_equal(run(4, base_json[4], &err), CS_OK);
    assert_int_equal(get_size(&vals[4], "named_location_ids"), 3);
    assert_int_equal(run_field(4, base_json[4], "named_location_ids", "[\"a\",5]", &err),
                     CS_ERR_FIELD_TYPE);
    assert_int_equal(run_field(4, base_json[4], "named_location_ids", NULL, &err), CS_OK);
    assert_int_equal(get_size(&vals[4], "named_location_ids"), 0);
    assert_int_equal(run(6, base_json[6], &err), CS_OK);
    assert_int_equal(get_size(&vals[6], "area_scores"), 2);
    assert_int_equal(run_field(6, base_json[6], "area_scores", "{}", &err), CS_OK);
    assert_int_equal(get_size(&vals[6], "area_scores"), 0);
    cs_converter_destroy(NULL);
}

/* The internal schemas too (named references: "caresignal.Level"). */
static void test_internal_schemas(void **state)
{
    (void)state;
    cs_error_t err;
    assert_int_equal(run(5, base_json[5], &err), CS_OK);
    avro_value_t *v = &vals[5];
    assert_string_equal(get_str(v, "origin.topic"), "intel.raw.nhse");
    assert_int_equal(get_long(v, "origin.offset"), 123456);
    avro_value_t f = field(v, "origin.schema_id");
    int32_t i32;
    avro_value_get_int(&f, &i32);
    assert_int_equal(i32, -1);
    expect_error(run_field(5, base_json[5], "origin",
                           "{\"topic\":\"t\",\"partition\":1,"
                           "\"offset\":2}",
                           &err),
                 &err, CS_ERR_FIELD_MISSING, "origin.schema_id", "origin");
    expect_error(run_field(5, base_json[5], "origin",
                           "{\"topic\":\"t\",\"partition\":2147483648,\"offset\":2,"
                           "\"schema_id\":1}",
                           &err),
                 &err, CS_ERR_FIELD_TYPE, "origin.partition", "origin");
    assert_int_equal(run(6, base_json[6], &err), CS_OK);
    assert_string_equal(get_enum(&vals[6], "previous_level"), "WATCH");
    assert_string_equal(get_enum(&vals[6], "level"), "INSPECT");
    f = field(&vals[6], "area_scores");
    avro_value_t e;
    double d;
    assert_int_equal(avro_value_get_by_name(&f, "STAFFING", &e, NULL), 0);
    avro_value_get_double(&e, &d);
    assert_true(d == 2.0);
    f = field(&vals[6], "recent");
    avro_value_get_by_index(&f, 1, &e, NULL);
    assert_int_equal(get_long(&e, "occurred_at"), 2);
    assert_string_equal(get_enum(&e, "signal"), "COMPLAINT");
}

/* ------------------------------------------------------------------ ad-hoc schemas */

/* Loads \p avsc as the only schema (id 1) of a throwaway registry. */
static cs_registry_t *adhoc_registry(const char *subject, const char *avsc, char *errstr,
                                     size_t size)
{
    char dir[] = "/tmp/cs-test-convert-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], reg_path[256];
    snprintf(path, sizeof(path), "%s/s.avsc", dir);
    FILE *f = fopen(path, "w");
    fputs(avsc, f);
    fclose(f);
    snprintf(reg_path, sizeof(reg_path), "%s/registry.json", dir);
    f = fopen(reg_path, "w");
    fprintf(
        f,
        "{\"schemas\":[{\"id\":1,\"subject\":\"%s\",\"version\":1,\"file\":\"s.avsc\"}]}",
        subject);
    fclose(f);
    cs_registry_t *r = cs_registry_load(reg_path, errstr, size);
    unlink(path);
    unlink(reg_path);
    rmdir(dir);
    return r;
}

static const char *const all_types_avsc =
    "{\"type\":\"record\",\"name\":\"All\",\"namespace\":\"t\",\"fields\":["
    "{\"name\":\"i\",\"type\":\"int\"},"
    "{\"name\":\"l\",\"type\":\"long\"},"
    "{\"name\":\"f\",\"type\":\"float\"},"
    "{\"name\":\"d\",\"type\":\"double\"},"
    "{\"name\":\"b\",\"type\":\"boolean\"},"
    "{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":\"int\"}},"
    "{\"name\":\"origin\",\"type\":{\"type\":\"record\",\"name\":\"Origin\",\"fields\":["
    "  "
    "{\"name\":\"topic\",\"type\":\"string\"},{\"name\":\"partition\",\"type\":\"int\"}]}"
    "},"
    "{\"name\":\"u\",\"type\":[\"null\",\"int\",\"string\"]},"
    "{\"name\":\"by\",\"type\":\"bytes\"},"
    "{\"name\":\"fx\",\"type\":{\"type\":\"fixed\",\"name\":\"Fx\",\"size\":4}},"
    "{\"name\":\"recs\",\"type\":{\"type\":\"array\",\"items\":{\"type\":\"record\","
    "  \"name\":\"Rec\",\"fields\":[{\"name\":\"name\",\"type\":\"string\"},"
    "  {\"name\":\"tags\",\"type\":{\"type\":\"array\",\"items\":\"string\"}}]}}},"
    "{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"X\",\"Y\"]"
    "}},"
    "{\"name\":\"e2\",\"type\":\"E\"},"
    "{\"name\":\"o2\",\"type\":\"t.Origin\"},"
    "{\"name\":\"nested\",\"type\":{\"type\":\"array\",\"items\":{\"type\":\"map\","
    "  \"values\":{\"type\":\"array\",\"items\":\"long\"}}}},"
    "{\"name\":\"dflt\",\"type\":\"int\",\"default\":7},"
    "{\"name\":\"drec\",\"type\":\"Origin\",\"default\":{\"topic\":\"d\",\"partition\":0}"
    "},"
    "{\"name\":\"ud\",\"type\":[\"null\",\"long\"],\"default\":null},"
    "{\"name\":\"n\",\"type\":\"null\",\"default\":null}"
    "]}";

static const char *const all_types_json =
    "{\"i\":1,\"l\":2,\"f\":1.5,\"d\":2.25,\"b\":true,\"m\":{\"a\":1,\"b\":2},"
    "\"origin\":{\"topic\":\"t1\",\"partition\":4},\"u\":5,\"by\":\"raw\",\"fx\":"
    "\"abcd\","
    "\"recs\":[{\"name\":\"r0\",\"tags\":[]},{\"name\":\"r1\",\"tags\":[\"x\",\"y\"]}],"
    "\"e\":\"Y\",\"e2\":\"X\",\"o2\":{\"topic\":\"t2\",\"partition\":-1},"
    "\"nested\":[{\"k\":[1,2]},{}]}";

static void test_adhoc_all_types(void **state)
{
    (void)state;
    char errstr[512];
    cs_registry_t *r = adhoc_registry("t.All", all_types_avsc, errstr, sizeof(errstr));
    if (!r)
        fail_msg("%s", errstr);
    const cs_schema_t *s = cs_registry_get(r, 1);
    cs_converter_t *c = cs_converter_new(s, errstr, sizeof(errstr));
    if (!c)
        fail_msg("%s", errstr);
    avro_value_t v;
    avro_generic_value_new(s->iface, &v);
    cs_error_t err;
    if (run_with(c, all_types_json, &v, &err))
        fail_msg("%s at %s", err.msg, err.field);

    avro_value_t f, e;
    int32_t i32;
    float fl;
    double d;
    int b, disc;
    const void *buf;
    size_t size;
    f = field(&v, "i");
    avro_value_get_int(&f, &i32);
    assert_int_equal(i32, 1);
    assert_int_equal(get_long(&v, "l"), 2);
    f = field(&v, "f");
    avro_value_get_float(&f, &fl);
    assert_true(fl == 1.5f);
    f = field(&v, "d");
    avro_value_get_double(&f, &d);
    assert_true(d == 2.25);
    f = field(&v, "b");
    avro_value_get_boolean(&f, &b);
    assert_true(b);
    assert_int_equal(get_size(&v, "m"), 2);
    f = field(&v, "m");
    assert_int_equal(avro_value_get_by_name(&f, "b", &e, NULL), 0);
    avro_value_get_int(&e, &i32);
    assert_int_equal(i32, 2);
    assert_string_equal(get_str(&v, "origin.topic"), "t1");
    f = field(&v, "u");
    avro_value_get_discriminant(&f, &disc);
    assert_int_equal(disc, 1);
    f = field(&v, "by");
    avro_value_get_bytes(&f, &buf, &size);
    assert_int_equal(size, 3);
    assert_memory_equal(buf, "raw", 3);
    f = field(&v, "fx");
    avro_value_get_fixed(&f, &buf, &size);
    assert_int_equal(size, 4);
    assert_memory_equal(buf, "abcd", 4);
    assert_int_equal(get_size(&v, "recs"), 2);
    assert_string_equal(get_enum(&v, "e"), "Y");
    assert_string_equal(get_enum(&v, "e2"), "X");
    assert_string_equal(get_str(&v, "o2.topic"), "t2");
    assert_int_equal(get_size(&v, "nested"), 2);
    f = field(&v, "dflt");
    avro_value_get_int(&f, &i32);
    assert_int_equal(i32, 7); /* defaults of every kind */
    assert_string_equal(get_str(&v, "drec.topic"), "d");
    f = field(&v, "ud");
    avro_value_get_discriminant(&f, &disc);
    assert_int_equal(disc, 0);

    static const struct {
        const char *name, *value;
        cs_err_t code;
        const char *path;
    } cases[] = {
        {"i", "2147483647", CS_OK, NULL},
        {"i", "-2147483648", CS_OK, NULL},
        {"i", "2147483648", CS_ERR_FIELD_TYPE, "i"},
        {"i", "-2147483649", CS_ERR_FIELD_TYPE, "i"},
        {"i", "1.0", CS_ERR_FIELD_TYPE, "i"},
        {"i", "\"1\"", CS_ERR_FIELD_TYPE, "i"},
        {"i", "null", CS_ERR_FIELD_TYPE, "i"},
        {"l", "9223372036854775807", CS_OK, NULL},
        {"l", "1.5", CS_ERR_FIELD_TYPE, "l"},
        {"l", "\"2026-11-20T09:15:00Z\"", CS_ERR_FIELD_TYPE, "l"}, /* not a timestamp */
        {"f", "3", CS_OK, NULL},
        {"f", "-0.5", CS_OK, NULL},
        {"f", "\"1.5\"", CS_ERR_FIELD_TYPE, "f"},
        {"f", "true", CS_ERR_FIELD_TYPE, "f"},
        {"d", "3", CS_OK, NULL},
        {"d", "1e300", CS_OK, NULL},
        {"d", "[1]", CS_ERR_FIELD_TYPE, "d"},
        {"b", "false", CS_OK, NULL},
        {"b", "1", CS_ERR_FIELD_TYPE, "b"},
        {"b", "\"true\"", CS_ERR_FIELD_TYPE, "b"},
        {"b", "null", CS_ERR_FIELD_TYPE, "b"},
        {"m", "{}", CS_OK, NULL},
        {"m", "{\"" CANARY "\":\"x\"}", CS_ERR_FIELD_TYPE, "m"}, /* never the key */
        {"m", "{\"a\":1,\"b\":null}", CS_ERR_FIELD_TYPE, "m"},
        {"m", "[]", CS_ERR_FIELD_TYPE, "m"},
        {"origin", "{\"topic\":\"t\"}", CS_ERR_FIELD_MISSING, "origin.partition"},
        {"origin", "{\"partition\":1}", CS_ERR_FIELD_MISSING, "origin.topic"},
        {"origin", "{\"topic\":5,\"partition\":1}", CS_ERR_FIELD_TYPE, "origin.topic"},
        {"origin", "{\"topic\":\"t\",\"partition\":\"1\"}", CS_ERR_FIELD_TYPE,
         "origin.partition"},
        {"origin", "\"t\"", CS_ERR_FIELD_TYPE, "origin"},
        {"origin", "null", CS_ERR_FIELD_TYPE, "origin"},
        {"u", "null", CS_OK, NULL},
        {"u", "\"x\"", CS_OK, NULL},
        {"u", "-7", CS_OK, NULL},
        {"u", "true", CS_ERR_FIELD_TYPE, "u"},
        {"u", "1099511627776", CS_ERR_FIELD_TYPE, "u"}, /* too big for the int branch */
        {"u", "{}", CS_ERR_FIELD_TYPE, "u"},
        {"by", "\"\"", CS_OK, NULL},
        {"by", "5", CS_ERR_FIELD_TYPE, "by"},
        {"fx", "\"abc\"", CS_ERR_FIELD_TYPE, "fx"},
        {"fx", "\"abcde\"", CS_ERR_FIELD_TYPE, "fx"},
        {"fx", "1234", CS_ERR_FIELD_TYPE, "fx"},
        {"recs", "[]", CS_OK, NULL},
        {"recs",
         "[{\"name\":\"a\",\"tags\":[\"x\"]},{\"name\":\"b\",\"tags\":[\"y\",5]}]",
         CS_ERR_FIELD_TYPE, "recs[1].tags[1]"},
        {"recs", "[{\"tags\":[]}]", CS_ERR_FIELD_MISSING, "recs[0].name"},
        {"recs", "[{\"name\":\"a\",\"tags\":[]},5]", CS_ERR_FIELD_TYPE, "recs[1]"},
        {"e", "\"x\"", CS_ERR_ENUM_UNKNOWN, "e"},
        {"e2", "\"Y\"", CS_OK, NULL},
        {"e2", "\"Z\"", CS_ERR_ENUM_UNKNOWN, "e2"},
        {"o2", "{\"partition\":2}", CS_ERR_FIELD_MISSING, "o2.topic"},
        {"nested", "[{\"k\":[1]},{\"j\":[1,\"2\"]}]", CS_ERR_FIELD_TYPE, "nested[1][1]"},
        {"nested", "[[]]", CS_ERR_FIELD_TYPE, "nested[0]"},
        {"dflt", "8", CS_OK, NULL},
        {"dflt", "null", CS_ERR_FIELD_TYPE, "dflt"},
        {"drec", "{\"topic\":\"x\"}", CS_ERR_FIELD_MISSING, "drec.partition"},
        {"ud", "5", CS_OK, NULL},
        {"n", "null", CS_OK, NULL},
        {"n", "0", CS_ERR_FIELD_TYPE, "n"},
    };
    for (size_t i = 0; i < N(cases); i++) {
        json_t *j = parse(all_types_json);
        json_object_set_new(j, cases[i].name, parse(cases[i].value));
        cs_error_clear(&err);
        cs_err_t rc = cs_converter_run(c, j, &v, &err);
        json_decref(j);
        if (cases[i].code == CS_OK) {
            if (rc)
                fail_msg("case %zu %s=%s: %s at %s", i, cases[i].name, cases[i].value,
                         err.msg, err.field);
        } else {
            expect_error(rc, &err, cases[i].code, cases[i].path, cases[i].value);
        }
    }
    avro_value_decref(&v);
    cs_converter_destroy(c);
    cs_registry_destroy(r);
}

/* A default that does not fit its field's type fails at start-up, not on a message. */
static void test_adhoc_bad_default(void **state)
{
    (void)state;
    static const struct {
        const char *fields;
        const char *field;
    } cases[] = {
        {"{\"name\":\"x\",\"type\":\"int\",\"default\":\"seven\"}", "x"},
        {"{\"name\":\"a\",\"type\":\"string\"},"
         "{\"name\":\"y\",\"type\":[\"null\",\"string\"],\"default\":5}",
         "y"},
        {"{\"name\":\"z\",\"type\":{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\"]}"
         ","
         "\"default\":\"B\"}",
         "z"},
        {"{\"name\":\"w\",\"type\":{\"type\":\"array\",\"items\":\"string\"},"
         "\"default\":[1]}",
         "w"},
    };
    for (size_t i = 0; i < N(cases); i++) {
        char avsc[1024], errstr[512];
        snprintf(
            avsc, sizeof(avsc),
            "{\"type\":\"record\",\"name\":\"Bad\",\"namespace\":\"t\",\"fields\":[%s]}",
            cases[i].fields);
        cs_registry_t *r = adhoc_registry("t.Bad", avsc, errstr, sizeof(errstr));
        if (!r)
            fail_msg("case %zu: registry: %s", i, errstr);
        errstr[0] = '\0';
        cs_converter_t *c =
            cs_converter_new(cs_registry_get(r, 1), errstr, sizeof(errstr));
        if (c)
            fail_msg("case %zu: converter accepted a bad default", i);
        char want[128];
        snprintf(want, sizeof(want), "schema t.Bad: bad default of field %s",
                 cases[i].field);
        assert_string_equal(errstr, want);
        cs_registry_destroy(r);
    }
}

/* A path longer than err.field is cut short, never overflowed. */
static void test_long_field_paths(void **state)
{
    (void)state;
    char name[61];
    memset(name, 'n', 60);
    name[60] = '\0';
    char avsc[4096] = "{\"type\":\"string\"}";
    for (int level = 0; level < 6; level++) {
        char inner[4096];
        snprintf(inner, sizeof(inner), "%s", avsc);
        snprintf(avsc, sizeof(avsc),
                 "{\"type\":\"record\",\"name\":\"R%d\",%s\"fields\":"
                 "[{\"name\":\"%s\",\"type\":%s}]}",
                 level, level == 5 ? "\"namespace\":\"t\"," : "", name, inner);
    }
    char errstr[512];
    cs_registry_t *r = adhoc_registry("t.R5", avsc, errstr, sizeof(errstr));
    if (!r)
        fail_msg("%s", errstr);
    const cs_schema_t *s = cs_registry_get(r, 1);
    cs_converter_t *c = cs_converter_new(s, errstr, sizeof(errstr));
    assert_non_null(c);
    avro_value_t v;
    avro_generic_value_new(s->iface, &v);
    /* five nested objects, the innermost without its field */
    char json[1024] = "{}";
    for (int level = 0; level < 5; level++) {
        char inner[1024];
        snprintf(inner, sizeof(inner), "%s", json);
        snprintf(json, sizeof(json), "{\"%s\":%s}", name, inner);
    }
    cs_error_t err;
    assert_int_equal(run_with(c, json, &v, &err), CS_ERR_FIELD_MISSING);
    assert_int_equal(strlen(err.field), sizeof(err.field) - 1);
    assert_int_equal(strncmp(err.field, name, 60), 0);
    assert_int_equal(err.field[60], '.');
    avro_value_decref(&v);
    cs_converter_destroy(c);
    cs_registry_destroy(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nhse_v1_fields),
        cmocka_unit_test(test_nhse_v2_fields),
        cmocka_unit_test(test_ccg_fields),
        cmocka_unit_test(test_ofsted_fields),
        cmocka_unit_test(test_array_items_report_their_index),
        cmocka_unit_test(test_every_enum_symbol),
        cmocka_unit_test(test_nullable_fields),
        cmocka_unit_test(test_timestamps),
        cmocka_unit_test(test_received_on_is_a_date),
        cmocka_unit_test(test_unknown_fields_ignored),
        cmocka_unit_test(test_missing_required_fields),
        cmocka_unit_test(test_first_failure_in_schema_order),
        cmocka_unit_test(test_wrong_json_types),
        cmocka_unit_test(test_top_level_not_an_object),
        cmocka_unit_test(test_errors_never_quote_values),
        cmocka_unit_test(test_reuse_leaves_nothing_behind),
        cmocka_unit_test(test_internal_schemas),
        cmocka_unit_test(test_adhoc_all_types),
        cmocka_unit_test(test_adhoc_bad_default),
        cmocka_unit_test(test_long_field_paths),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
