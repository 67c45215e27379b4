/* Unit tests of logging: one valid JSON object per line, fields, escaping, levels. */
#include "testenv.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caresignal/log.h"

static char *buf;
static size_t len;
static FILE *mem;

static int setup(void **state)
{
    (void)state;
    mem = open_memstream(&buf, &len);
    cs_log_set_output(mem);
    cs_log_init("caresignal-test", CS_LOG_INFO);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cs_log_set_output(NULL);
    fclose(mem);
    free(buf);
    buf = NULL;
    return 0;
}

/* Parses the only line written so far. */
static json_t *one_line(void)
{
    fflush(mem);
    assert_non_null(buf);
    char *nl = strchr(buf, '\n');
    assert_non_null(nl);
    assert_int_equal(nl[1], '\0');
    json_error_t err;
    json_t *j = json_loadb(buf, (size_t)(nl - buf), 0, &err);
    if (!j)
        fail_msg("not JSON: %s (%s)", buf, err.text);
    return j;
}

static void test_line_fields(void **state)
{
    (void)state;
    cs_log_info("partitions assigned", "{s:s, s:i, s:b}", "topic", "intel.events",
                "count", 4, "ok", 1);
    json_t *j = one_line();
    assert_string_equal(json_string_value(json_object_get(j, "level")), "info");
    assert_string_equal(json_string_value(json_object_get(j, "program")),
                        "caresignal-test");
    assert_string_equal(json_string_value(json_object_get(j, "msg")),
                        "partitions assigned");
    assert_string_equal(json_string_value(json_object_get(j, "topic")), "intel.events");
    assert_int_equal(json_integer_value(json_object_get(j, "count")), 4);
    assert_true(json_is_true(json_object_get(j, "ok")));
    const char *ts = json_string_value(json_object_get(j, "ts"));
    assert_non_null(ts);
    assert_int_equal(strlen(ts), 24); /* 2026-11-22T12:00:00.123Z */
    assert_int_equal(ts[23], 'Z');
    json_decref(j);
}

/* Regression: the pager's "paged" line carried the alert's "level":"INSPECT" in the
 * same object as the record's own level, so log processors saw level INSPECT. The
 * record's fields are reserved; a clashing field is kept as field_<name>. */
static void test_regression_reserved_fields_keep_the_record(void **state)
{
    (void)state;
    cs_log_info("paged", "{s:s, s:s, s:s, s:s, s:s}", "level", "INSPECT", "msg", "x",
                "ts", "y", "program", "z", "alert_id", "a1");
    json_t *j = one_line();
    assert_string_equal(json_string_value(json_object_get(j, "level")), "info");
    assert_string_equal(json_string_value(json_object_get(j, "msg")), "paged");
    assert_string_equal(json_string_value(json_object_get(j, "program")),
                        "caresignal-test");
    assert_int_equal(strlen(json_string_value(json_object_get(j, "ts"))), 24);
    assert_string_equal(json_string_value(json_object_get(j, "field_level")), "INSPECT");
    assert_string_equal(json_string_value(json_object_get(j, "field_msg")), "x");
    assert_string_equal(json_string_value(json_object_get(j, "field_ts")), "y");
    assert_string_equal(json_string_value(json_object_get(j, "field_program")), "z");
    assert_string_equal(json_string_value(json_object_get(j, "alert_id")), "a1");
    json_decref(j);
}

static void test_escaping(void **state)
{
    (void)state;
    cs_log_warn("quote \" newline \n tab \t", "{s:s}", "x", "a\"b\\c\r\n");
    json_t *j = one_line();
    assert_string_equal(json_string_value(json_object_get(j, "msg")),
                        "quote \" newline \n tab \t");
    assert_string_equal(json_string_value(json_object_get(j, "x")), "a\"b\\c\r\n");
    assert_string_equal(json_string_value(json_object_get(j, "level")), "warn");
    json_decref(j);
}

static void test_invalid_utf8_is_not_written_raw(void **state)
{
    (void)state;
    cs_log_error("bad \xff\xfe bytes", NULL);
    json_t *j = one_line();
    assert_string_equal(json_string_value(json_object_get(j, "msg")),
                        "(message not valid UTF-8)");
    json_decref(j);
}

static void test_bad_format_still_logs(void **state)
{
    (void)state;
    cs_log_info("x", "{s:s", "a", "b");
    json_t *j = one_line();
    assert_non_null(json_object_get(j, "log_error"));
    json_decref(j);
}

static void test_levels(void **state)
{
    (void)state;
    cs_log_debug("hidden", NULL);
    fflush(mem);
    assert_int_equal(len, 0);
    assert_false(cs_log_enabled(CS_LOG_DEBUG));
    assert_true(cs_log_enabled(CS_LOG_ERROR));
    cs_log_level_t lvl;
    assert_int_equal(cs_log_level_parse("debug", &lvl), CS_OK);
    assert_int_equal(lvl, CS_LOG_DEBUG);
    assert_int_equal(cs_log_level_parse("loud", &lvl), CS_ERR_INVALID_ARG);
    cs_log_init("caresignal-test", CS_LOG_DEBUG);
    cs_log_debug("shown", NULL);
    json_t *j = one_line();
    assert_string_equal(json_string_value(json_object_get(j, "level")), "debug");
    json_decref(j);
    assert_string_equal(cs_log_level_name(CS_LOG_FATAL), "fatal");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_line_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_escaping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_regression_reserved_fields_keep_the_record,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_utf8_is_not_written_raw, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_format_still_logs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_levels, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
