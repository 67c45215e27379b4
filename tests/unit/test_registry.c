/* Unit tests of the schema registry: the shipped schemas/registry.json, lookups, the
 * jansson side of each schema (defaults, named types), and every way a registry or
 * schema file can be broken (tests/data/registry/<case>/), each named in the error. */
#include "testenv.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "caresignal/registry.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static char errstr[1024];

static const char *fixture(const char *rel)
{
    static char paths[4][1024];
    static int next;
    char *p = paths[next++ % 4];
    snprintf(p, sizeof(paths[0]), "%s/tests/data/registry/%s", cs_test_source_dir(), rel);
    return p;
}

static cs_registry_t *load_shipped(void)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/schemas/registry.json", cs_test_source_dir());
    cs_registry_t *reg = cs_registry_load(path, errstr, sizeof(errstr));
    if (!reg)
        fail_msg("%s", errstr);
    return reg;
}

static void test_shipped_registry(void **state)
{
    (void)state;
    cs_registry_t *reg = load_shipped();
    static const struct {
        int id;
        const char *subject;
        int version;
        const char *file;
    } want[] = {
        {1, "nhse.Incident", 1, "nhse.Incident.v1.avsc"},
        {2, "nhse.Incident", 2, "nhse.Incident.v2.avsc"},
        {3, "ccg.Concern", 1, "ccg.Concern.v1.avsc"},
        {4, "ofsted.SendAreaOutcome", 1, "ofsted.SendAreaOutcome.v1.avsc"},
        {5, "caresignal.IntelEvent", 1, "caresignal.IntelEvent.v1.avsc"},
        {6, "caresignal.RiskAlert", 1, "caresignal.RiskAlert.v1.avsc"},
    };
    assert_int_equal(cs_registry_count(reg), 6);
    for (size_t i = 0; i < N(want); i++) {
        const cs_schema_t *s = cs_registry_at(reg, i);
        assert_non_null(s);
        assert_ptr_equal(cs_registry_get(reg, want[i].id), s);
        assert_int_equal(s->id, want[i].id);
        assert_string_equal(s->subject, want[i].subject);
        assert_int_equal(s->version, want[i].version);
        size_t fl = strlen(s->file), wl = strlen(want[i].file);
        assert_true(fl > wl && s->file[fl - wl - 1] == '/');
        assert_string_equal(s->file + fl - wl, want[i].file);
        assert_int_equal(access(s->file, R_OK), 0);
        assert_int_equal(avro_typeof(s->avro), AVRO_RECORD);
        assert_non_null(s->iface);
        assert_true(json_is_object(s->json));
        assert_true(json_is_object(s->named));
        /* the record's own full name is a named type */
        assert_ptr_equal(json_object_get(s->named, s->subject), s->json);
        /* avro-c and jansson parsed the same text */
        assert_int_equal(avro_schema_record_size(s->avro),
                         json_array_size(json_object_get(s->json, "fields")));
    }
    assert_null(cs_registry_at(reg, 6));
    assert_null(cs_registry_at(reg, (size_t)-1));
    static const int unknown[] = {0, -1, 7, 99, INT_MAX, INT_MIN};
    for (size_t i = 0; i < N(unknown); i++)
        assert_null(cs_registry_get(reg, unknown[i]));

    const cs_schema_t *latest = cs_registry_latest(reg, "nhse.Incident");
    assert_non_null(latest);
    assert_int_equal(latest->version, 2);
    assert_int_equal(latest->id, 2);
    assert_int_equal(cs_registry_latest(reg, "ccg.Concern")->id, 3);
    assert_int_equal(cs_registry_latest(reg, "caresignal.IntelEvent")->id, 5);
    assert_null(cs_registry_latest(reg, "nhse"));
    assert_null(cs_registry_latest(reg, "nhse.incident"));
    assert_null(cs_registry_latest(reg, "Incident"));
    assert_null(cs_registry_latest(reg, ""));
    cs_registry_destroy(reg);
    cs_registry_destroy(NULL);
}

/* The named types of each schema under their full names (Avro namespace rules). */
static void test_named_types(void **state)
{
    (void)state;
    cs_registry_t *reg = load_shipped();
    static const struct {
        int id;
        const char *name, *kind;
    } want[] = {
        {1, "nhse.Incident", "record"},
        {1, "nhse.IncidentCategory", "enum"},
        {1, "nhse.HarmGrade", "enum"},
        {3, "ccg.ConcernType", "enum"},
        {3, "ccg.Rag", "enum"},
        {4, "ofsted.SendOutcome", "enum"},
        {5, "caresignal.Origin", "record"},
        {5, "caresignal.Severity", "enum"},
        {6, "caresignal.Level", "enum"},
        {6, "caresignal.RecentEvent", "record"},
        {6, "caresignal.Signal", "enum"},
    };
    for (size_t i = 0; i < N(want); i++) {
        const cs_schema_t *s = cs_registry_get(reg, want[i].id);
        const json_t *def = json_object_get(s->named, want[i].name);
        if (!def)
            fail_msg("schema %d has no named type %s", want[i].id, want[i].name);
        assert_string_equal(json_string_value(json_object_get(def, "type")),
                            want[i].kind);
    }
    assert_null(json_object_get(cs_registry_get(reg, 1)->named, "IncidentCategory"));
    assert_null(json_object_get(cs_registry_get(reg, 1)->named, "caresignal.Origin"));
    assert_int_equal(json_object_size(cs_registry_get(reg, 1)->named), 3);
    assert_int_equal(json_object_size(cs_registry_get(reg, 4)->named), 2);
    cs_registry_destroy(reg);
}

static void test_field_json(void **state)
{
    (void)state;
    cs_registry_t *reg = load_shipped();
    const cs_schema_t *n1 = cs_registry_get(reg, 1);
    json_t *f = cs_schema_field_json(n1, "description");
    assert_non_null(f);
    assert_string_equal(json_string_value(json_object_get(f, "name")), "description");
    assert_non_null(json_object_get(f, "default"));
    assert_true(json_is_null(json_object_get(f, "default")));
    f = cs_schema_field_json(n1, "occurred_at");
    assert_non_null(f);
    assert_null(json_object_get(f, "default"));
    /* what avro-c drops is still there */
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(f, "type"), "logicalType")),
        "timestamp-millis");
    assert_null(cs_schema_field_json(n1, "vaccination_site_code"));
    assert_null(cs_schema_field_json(n1, "Description"));
    assert_null(cs_schema_field_json(n1, ""));
    assert_null(cs_schema_field_json(n1, "IncidentCategory"));

    f = cs_schema_field_json(cs_registry_get(reg, 2), "vaccination_site_code");
    assert_non_null(f);
    assert_true(json_is_null(json_object_get(f, "default")));

    f = cs_schema_field_json(cs_registry_get(reg, 4), "named_location_ids");
    assert_non_null(f);
    json_t *def = json_object_get(f, "default");
    assert_true(json_is_array(def));
    assert_int_equal(json_array_size(def), 0);

    f = cs_schema_field_json(cs_registry_get(reg, 3), "received_on");
    assert_string_equal(json_string_value(json_object_get(f, "format")), "date");
    assert_null(json_object_get(f, "default"));
    assert_true(json_is_null(json_object_get(
        cs_schema_field_json(cs_registry_get(reg, 3), "narrative"), "default")));
    /* nested fields are not top-level fields */
    assert_null(cs_schema_field_json(cs_registry_get(reg, 5), "topic"));
    assert_non_null(cs_schema_field_json(cs_registry_get(reg, 5), "origin"));
    cs_registry_destroy(reg);
}

/* Each broken registry fails, and the message names the file at fault. */
static void test_broken_registries(void **state)
{
    (void)state;
    static const struct {
        const char *dir;
        const char *culprit; /* file named in the error, relative to dir */
        const char *expect;  /* also in the error */
    } cases[] = {
        {"not-json", "registry.json", "schema registry '"},
        {"not-a-schema-list", "registry.json", "expected {\"schemas\": [...]}"},
        {"empty-schema-list", "registry.json", "expected {\"schemas\": [...]}"},
        {"missing-file-field", "registry.json",
         "schemas[1]: needs a positive integer id and version, a subject and a file"},
        {"missing-subject", "registry.json", "schemas[0]: needs a positive integer id"},
        {"id-zero", "registry.json", "schemas[0]: needs a positive integer id"},
        {"id-negative", "registry.json", "schemas[0]: needs a positive integer id"},
        {"id-too-large", "registry.json", "schemas[0]: needs a positive integer id"},
        {"id-a-string", "registry.json", "schemas[0]: needs a positive integer id"},
        {"version-zero", "registry.json", "schemas[0]: needs a positive integer id"},
        {"duplicate-id", "registry.json", "id 1 is used twice"},
        {"duplicate-version", "registry.json",
         "nhse.Incident version 1 is registered twice"},
        {"schema-file-missing", "nhse.Incident.v1.avsc", "cannot read"},
        {"schema-not-json", "bad.avsc", "line 2"},
        {"schema-empty-file", "empty.avsc", "schema file '"},
        {"schema-avro-rejects", "unknown-type.avsc", "schema file '"},
        /* regression (fuzz_registry): avro-c recursed without end building a value of
         * a record that contains itself */
        {"record-contains-itself", "loop.avsc", "record nhse.Incident contains itself"},
        {"subject-mismatch", "nhse.Incident.v1.avsc",
         "record nhse.Incident does not match its subject ccg.Concern"},
        {"top-level-enum", "enum.avsc", "the top level must be a record"},
        {"top-level-array", "array.avsc", "the top level must be a record"},
        {"second-schema-broken", "broken.avsc", "schema file '"},
    };
    for (size_t i = 0; i < N(cases); i++) {
        char reg_path[1024], culprit[1024], rel[256];
        snprintf(rel, sizeof(rel), "%s/registry.json", cases[i].dir);
        snprintf(reg_path, sizeof(reg_path), "%s", fixture(rel));
        snprintf(rel, sizeof(rel), "%s/%s", cases[i].dir, cases[i].culprit);
        snprintf(culprit, sizeof(culprit), "'%s'", fixture(rel));
        assert_int_equal(access(reg_path, R_OK), 0);
        errstr[0] = '\0';
        cs_registry_t *reg = cs_registry_load(reg_path, errstr, sizeof(errstr));
        if (reg || !strstr(errstr, culprit) || !strstr(errstr, cases[i].expect))
            fail_msg("%s: %s, errstr '%s' (expected %s and '%s')", cases[i].dir,
                     reg ? "loaded" : "failed", errstr, culprit, cases[i].expect);
        assert_null(strchr(errstr, '\n'));
        cs_registry_destroy(reg);
    }
}

/* Regression (fuzz_registry, tests/fuzz/regressions/registry/named-type-twice): a schema
 * defining one named type twice was handed to avro-c, which rejects it but leaks the
 * schema it was building; the registry now refuses it first, naming the type. */
static void test_regression_named_type_twice_leaked(void **state)
{
    (void)state;
    errstr[0] = '\0';
    cs_registry_t *reg = cs_registry_load(fixture("named-type-twice/registry.json"),
                                          errstr, sizeof(errstr));
    assert_null(reg);
    if (!strstr(errstr, "twice.avsc': named type nhse.HarmGrade is defined twice"))
        fail_msg("errstr '%s'", errstr);
}

static void test_missing_registry_file(void **state)
{
    (void)state;
    const char *path = fixture("no-such-dir/registry.json");
    assert_null(cs_registry_load(path, errstr, sizeof(errstr)));
    char want[1200];
    snprintf(want, sizeof(want), "schema registry '%s': ", path);
    assert_int_equal(strncmp(errstr, want, strlen(want)), 0);
    assert_null(cs_registry_load("", errstr, sizeof(errstr)));
    assert_non_null(strstr(errstr, "schema registry ''"));
    /* a directory is not a registry */
    assert_null(cs_registry_load(fixture("not-json"), errstr, sizeof(errstr)));
    assert_non_null(strstr(errstr, fixture("not-json")));
    /* a small errstr is truncated, not overflowed */
    char small[16];
    memset(small, 'x', sizeof(small));
    assert_null(cs_registry_load(path, small, sizeof(small)));
    assert_int_equal(strlen(small), sizeof(small) - 1);
}

/* Regression: versions were not bounded like ids, so version 4294967298 silently
 * became version 2 (and could shadow or duplicate a real version). */
static void test_version_beyond_int_range_is_rejected(void **state)
{
    (void)state;
    const char *path = fixture("version-too-large/registry.json");
    cs_registry_t *reg = cs_registry_load(path, errstr, sizeof(errstr));
    if (reg)
        fail_msg("loaded, with version %d", cs_registry_at(reg, 0)->version);
    assert_non_null(strstr(errstr, path));
    assert_non_null(
        strstr(errstr, "schemas[0]: needs a positive integer id and version"));
}

/* A schema file that is a directory cannot be read. */
static void test_schema_file_is_a_directory(void **state)
{
    (void)state;
    char dir[] = "/tmp/cs-test-registry-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char sub[256], path[256];
    snprintf(sub, sizeof(sub), "%s/s.avsc", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(path, sizeof(path), "%s/registry.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"schemas\":[{\"id\":1,\"subject\":\"a.B\",\"version\":1,\"file\":\"s.avsc\"}"
          "]}",
          f);
    fclose(f);
    assert_null(cs_registry_load(path, errstr, sizeof(errstr)));
    char want[300];
    snprintf(want, sizeof(want), "schema file '%s': cannot read", sub);
    assert_string_equal(errstr, want);
    unlink(path);
    rmdir(sub);
    rmdir(dir);
}

/* Files are relative to the registry's directory, or absolute; a bare registry file
 * name means the current directory. */
static void test_file_paths(void **state)
{
    (void)state;
    char dir[] = "/tmp/cs-test-registry-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], abs_schema[600];
    snprintf(path, sizeof(path), "%s/registry.json", dir);
    snprintf(abs_schema, sizeof(abs_schema), "%s/schemas/ccg.Concern.v1.avsc",
             cs_test_source_dir());
    char *real = realpath(abs_schema, NULL);
    assert_non_null(real);
    FILE *f = fopen(path, "w");
    fprintf(f,
            "{\"schemas\":[{\"id\":42,\"subject\":\"ccg.Concern\",\"version\":7,"
            "\"file\":\"%s\"}]}",
            real);
    fclose(f);
    cs_registry_t *reg = cs_registry_load(path, errstr, sizeof(errstr));
    if (!reg)
        fail_msg("%s", errstr);
    assert_string_equal(cs_registry_get(reg, 42)->file, real);
    assert_int_equal(cs_registry_latest(reg, "ccg.Concern")->version, 7);
    cs_registry_destroy(reg);
    unlink(path);
    rmdir(dir);
    free(real);

    char cwd[1024], schemas[600];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    snprintf(schemas, sizeof(schemas), "%s/schemas", cs_test_source_dir());
    assert_int_equal(chdir(schemas), 0);
    reg = cs_registry_load("registry.json", errstr, sizeof(errstr));
    assert_int_equal(chdir(cwd), 0);
    if (!reg)
        fail_msg("%s", errstr);
    assert_string_equal(cs_registry_get(reg, 1)->file, "./nhse.Incident.v1.avsc");
    cs_registry_destroy(reg);
}

/* Records without a namespace, and names that carry their namespace. */
static void test_namespaces(void **state)
{
    (void)state;
    cs_registry_t *reg =
        cs_registry_load(fixture("no-namespace/registry.json"), errstr, sizeof(errstr));
    if (!reg)
        fail_msg("%s", errstr);
    const cs_schema_t *s = cs_registry_get(reg, 1);
    assert_string_equal(s->subject, "Plain");
    assert_non_null(json_object_get(s->named, "Plain"));
    cs_registry_destroy(reg);

    reg = cs_registry_load(fixture("dotted-name/registry.json"), errstr, sizeof(errstr));
    if (!reg)
        fail_msg("%s", errstr);
    s = cs_registry_get(reg, 7);
    assert_string_equal(s->subject, "t.sub.Dotted");
    assert_int_equal(s->version, 3);
    assert_non_null(json_object_get(s->named, "t.sub.Dotted"));
    assert_non_null(json_object_get(s->named, "t.sub.Kind"));
    assert_ptr_equal(cs_registry_latest(reg, "t.sub.Dotted"), s);
    cs_registry_destroy(reg);
}

/* Loading and destroying many times leaks nothing (the sanitizer build checks). */
static void test_load_destroy_repeatedly(void **state)
{
    (void)state;
    for (int i = 0; i < 20; i++)
        cs_registry_destroy(load_shipped());
    for (int i = 0; i < 20; i++) {
        assert_null(cs_registry_load(fixture("second-schema-broken/registry.json"),
                                     errstr, sizeof(errstr)));
        assert_null(cs_registry_load(fixture("subject-mismatch/registry.json"), errstr,
                                     sizeof(errstr)));
        assert_null(cs_registry_load(fixture("top-level-enum/registry.json"), errstr,
                                     sizeof(errstr)));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_registry),
        cmocka_unit_test(test_named_types),
        cmocka_unit_test(test_field_json),
        cmocka_unit_test(test_broken_registries),
        cmocka_unit_test(test_regression_named_type_twice_leaked),
        cmocka_unit_test(test_missing_registry_file),
        cmocka_unit_test(test_version_beyond_int_range_is_rejected),
        cmocka_unit_test(test_schema_file_is_a_directory),
        cmocka_unit_test(test_file_paths),
        cmocka_unit_test(test_namespaces),
        cmocka_unit_test(test_load_destroy_repeatedly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
