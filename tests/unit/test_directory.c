/* Unit tests of the location directory (docs/contract/canonical-event.md): RFC 4180 CSV with a BOM and CRLF,
 * lookups by id and local area, and every error naming the file and the line. Fixtures
 * in tests/data/directory/ (kept byte-exact by its .gitattributes). */
#include "testenv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "caresignal/directory.h"

static char errstr[1024];

static const char *data_path(const char *file)
{
    static char paths[4][512];
    static int next;
    char *p = paths[next++ % 4];
    snprintf(p, 512, "%s/tests/data/directory/%s", cs_test_source_dir(), file);
    return p;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = malloc(1 << 16);
    assert_non_null(buf);
    *len = fread(buf, 1, (1 << 16) - 1, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

static void assert_location(const cs_directory_t *d, const char *id, const char *provider,
                            const char *name, const char *la, const char *region,
                            const char *service)
{
    const cs_location_t *l = cs_directory_find(d, id, strlen(id));
    if (!l)
        fail_msg("location %s not found", id);
    assert_string_equal(l->location_id, id);
    assert_string_equal(l->provider_id, provider);
    assert_string_equal(l->name, name);
    assert_string_equal(l->local_authority_code, la);
    assert_string_equal(l->region, region);
    assert_string_equal(l->service_type, service);
}

/* A UTF-8 BOM, CRLF endings, quoted fields with commas and doubled quotes, an empty
 * quoted field, a blank line and no newline at the end of the file. */
static void test_valid_file(void **state)
{
    (void)state;
    const char *path = data_path("valid.csv");
    /* the fixture really has what this test is about (a checkout could rewrite it) */
    size_t len;
    char *raw = slurp(path, &len);
    assert_memory_equal(raw, "\xEF\xBB\xBF", 3);
    assert_non_null(strstr(raw, "\r\n"));
    assert_non_null(strstr(raw, "\"\""));
    assert_int_not_equal(raw[len - 1], '\n');
    free(raw);

    cs_directory_t *d = cs_directory_load(path, errstr, sizeof(errstr));
    if (!d)
        fail_msg("%s", errstr);
    assert_int_equal(cs_directory_count(d), 6);
    assert_location(d, "1-101669119", "1-100000001", "Rose Court, Care Home", "E08000025",
                    "West Midlands", "Care home");
    assert_location(d, "1-10000792582", "1-100000002", "The \"Oak\" Lodge, Annexe",
                    "E06000060", "South East", "Care home, nursing");
    assert_location(d, "RXQ02", "RXQ", "Stoke Mandeville Hospital", "E06000060",
                    "South East", "Acute hospital");
    assert_location(d, "1-200000001", "1-100000003", "", "E09000001", "London", "");
    assert_location(d, "1-300000001", "1-100000004", "St Mary's Surgery", "E07000008",
                    "East of England", "GP practice");
    assert_location(d, "RAJ01", "RAJ", "Southend Hospital", "E06000033",
                    "Yorkshire & the Humber", "Acute hospital");
    cs_directory_destroy(d);
    cs_directory_destroy(NULL);
}

/* cs_directory_find and cs_directory_area_region take a length: the id need not be
 * NUL-terminated, and a prefix or an extension of an id is not that id. */
static void test_lookups(void **state)
{
    (void)state;
    cs_directory_t *d = cs_directory_load(data_path("valid.csv"), errstr, sizeof(errstr));
    assert_non_null(d);
    const char *buf = "1-101669119RXQ02E06000060";
    const cs_location_t *l = cs_directory_find(d, buf, 11);
    assert_non_null(l);
    assert_string_equal(l->location_id, "1-101669119");
    l = cs_directory_find(d, buf + 11, 5);
    assert_non_null(l);
    assert_string_equal(l->location_id, "RXQ02");
    assert_null(cs_directory_find(d, buf, 10));
    assert_null(cs_directory_find(d, buf, 12));
    assert_null(cs_directory_find(d, buf + 11, 4));
    assert_null(cs_directory_find(d, "rxq02", 5));
    assert_null(cs_directory_find(d, "1-999000001", 11));
    assert_null(cs_directory_find(d, "", 0));
    /* ids are not looked up by any other column */
    assert_null(cs_directory_find(d, "RXQ", 3));
    assert_null(cs_directory_find(d, "E06000060", 9));

    assert_string_equal(cs_directory_area_region(d, buf + 16, 9), "South East");
    assert_string_equal(cs_directory_area_region(d, "E08000025", 9), "West Midlands");
    assert_string_equal(cs_directory_area_region(d, "E06000033", 9),
                        "Yorkshire & the Humber");
    assert_string_equal(cs_directory_area_region(d, "E09000001xyz", 9), "London");
    assert_null(cs_directory_area_region(d, "E10000014", 9));
    assert_null(cs_directory_area_region(d, "E0900000", 8));
    assert_null(cs_directory_area_region(d, "1-101669119", 11));
    cs_directory_destroy(d);
}

static void test_header_only_and_fixture(void **state)
{
    (void)state;
    cs_directory_t *d =
        cs_directory_load(data_path("header_only.csv"), errstr, sizeof(errstr));
    if (!d)
        fail_msg("%s", errstr);
    assert_int_equal(cs_directory_count(d), 0);
    assert_null(cs_directory_find(d, "RXQ02", 5));
    assert_null(cs_directory_area_region(d, "E06000060", 9));
    cs_directory_destroy(d);

    /* the normaliser tests' fixture directory */
    char path[512];
    snprintf(path, sizeof(path), "%s/tests/data/normalise/directory.csv",
             cs_test_source_dir());
    d = cs_directory_load(path, errstr, sizeof(errstr));
    if (!d)
        fail_msg("%s", errstr);
    assert_int_equal(cs_directory_count(d), 7);
    assert_non_null(cs_directory_find(d, "1-10000792582", 13));
    assert_null(cs_directory_area_region(d, "E10000014", 9));
    cs_directory_destroy(d);
}

/* Every broken file is rejected whole, naming the file and the line. */
static void test_errors_name_file_and_line(void **state)
{
    (void)state;
    static const struct {
        const char *file;
        int line; /* 0: the message names no line */
        const char *what;
    } cases[] = {
        {"bad_header.csv", 1, "expected the header " /* ... */},
        {"field_count_short.csv", 3, "expected 6 comma-separated fields"},
        {"field_count_long.csv", 2, "expected 6 comma-separated fields"},
        {"unterminated_quote.csv", 4, "quote"},
        {"text_after_quote.csv", 2, "quote"},
        {"bad_location_id.csv", 2, "bad location_id"},
        {"bad_gss.csv", 3, "bad local_authority_code"},
        {"bad_region.csv", 2, "bad region"},
        {"empty_region.csv", 2, "bad region"},
        {"duplicate_id.csv", 4, "location_id 1-101669119 listed twice"},
        {"empty.csv", 0, "empty"},
        {"no_such_file.csv", 0, "cannot read"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *path = data_path(cases[i].file);
        char prefix[700];
        if (cases[i].line)
            snprintf(prefix, sizeof(prefix), "directory file '%s' line %d: ", path,
                     cases[i].line);
        else
            snprintf(prefix, sizeof(prefix), "directory file '%s': ", path);
        errstr[0] = '\0';
        cs_directory_t *d = cs_directory_load(path, errstr, sizeof(errstr));
        if (d) {
            cs_directory_destroy(d);
            fail_msg("%s: loaded", cases[i].file);
        }
        /* the file and line exactly, then the reason */
        if (strncmp(errstr, prefix, strlen(prefix)) ||
            !strstr(errstr + strlen(prefix), cases[i].what))
            fail_msg("%s: got '%s', expected '%s...%s...'", cases[i].file, errstr, prefix,
                     cases[i].what);
        assert_null(strchr(errstr, '\n'));
    }
}

/* A BOM is only tolerated at the start of the header; CR alone inside a line, a BOM
 * on a data row and whitespace around an id are errors, not silently different ids. */
static void test_strictness(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int line;
    } cases[] = {
        {"location_id,provider_id,name,local_authority_code,region,service_type\n"
         "\xEF\xBB\xBF"
         "1-101669119,p,n,E08000025,West Midlands,s\n",
         2},
        {"location_id,provider_id,name,local_authority_code,region,service_type\n"
         " 1-101669119,p,n,E08000025,West Midlands,s\n",
         2},
        {"location_id,provider_id,name,local_authority_code,region,service_type\n"
         "1-101669119,p,n, E08000025,West Midlands,s\n",
         2},
        {" location_id,provider_id,name,local_authority_code,region,service_type\n", 1},
        {"location_id;provider_id;name;local_authority_code;region;service_type\n", 1},
        {"LOCATION_ID,provider_id,name,local_authority_code,region,service_type\n", 1},
        {"location_id,provider_id,name,local_authority_code,region,service_type\n"
         "1-101669119,p,n,E08000025,West Midlands,s\n"
         "   \n",
         3},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *path = cs_test_write_temp(cases[i].text);
        assert_non_null(path);
        char expect[256];
        snprintf(expect, sizeof(expect), "directory file '%s' line %d: ", path,
                 cases[i].line);
        cs_directory_t *d = cs_directory_load(path, errstr, sizeof(errstr));
        if (d || strncmp(errstr, expect, strlen(expect)))
            fail_msg("case %zu: %s '%s', expected '%s...'", i, d ? "loaded" : "error",
                     d ? "" : errstr, expect);
        unlink(path);
    }
}

/* Regression: an unterminated quote (or text after a closing quote) was reported as
 * "expected 6 comma-separated fields", which sends ops looking for a missing comma. */
static void test_regression_unterminated_quote_message(void **state)
{
    (void)state;
    static const char *const rows[] = {
        "1-101669119,p,\"Rose Court, Care Home,E08000025,West Midlands,s\n",
        "1-101669119,p,\"Rose Court\" Care Home,E08000025,West Midlands,s\n",
        "1-101669119,p,n,E08000025,West Midlands,\"s\n",
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char text[512];
        snprintf(text, sizeof(text),
                 "location_id,provider_id,name,local_authority_code,region,"
                 "service_type\n%s",
                 rows[i]);
        const char *path = cs_test_write_temp(text);
        char expect[256];
        snprintf(expect, sizeof(expect),
                 "directory file '%s' line 2: unterminated quote, or text after a "
                 "closing quote",
                 path);
        assert_null(cs_directory_load(path, errstr, sizeof(errstr)));
        assert_string_equal(errstr, expect);
        unlink(path);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_file),
        cmocka_unit_test(test_lookups),
        cmocka_unit_test(test_header_only_and_fixture),
        cmocka_unit_test(test_errors_name_file_and_line),
        cmocka_unit_test(test_strictness),
        cmocka_unit_test(test_regression_unterminated_quote_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
