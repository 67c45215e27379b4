/* Unit tests of the error module: names, reason codes, cs_error_t. */
#include "testenv.h"

#include <string.h>

#include "caresignal/error.h"

static void test_reason_names_round_trip(void **state)
{
    (void)state;
    const char *reasons[] = {"JSON_SYNTAX",  "NOT_OBJECT",      "SCHEMA_UNKNOWN",
                             "AVRO_DECODE",  "FIELD_MISSING",   "FIELD_TYPE",
                             "ENUM_UNKNOWN", "ID_FORMAT",       "TIME_RANGE",
                             "TOO_LARGE",    "UNKNOWN_LOCATION"};
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        cs_err_t e = cs_err_from_reason(reasons[i]);
        assert_true(cs_err_is_reason(e));
        assert_string_equal(cs_err_str(e), reasons[i]);
    }
    assert_int_equal(cs_err_from_reason("NOMEM"), CS_OK);
    assert_int_equal(cs_err_from_reason("nope"), CS_OK);
    assert_false(cs_err_is_reason(CS_ERR_CONFIG));
    assert_string_equal(cs_err_str((cs_err_t)-9999), "UNKNOWN_ERROR");
}

static void test_error_set(void **state)
{
    (void)state;
    cs_error_t e;
    cs_error_clear(&e);
    assert_int_equal(e.code, CS_OK);
    assert_int_equal(
        cs_error_set(&e, CS_ERR_FIELD_MISSING, "origin.topic", "missing %d", 3),
        CS_ERR_FIELD_MISSING);
    assert_string_equal(e.field, "origin.topic");
    assert_string_equal(e.msg, "missing 3");
    cs_error_set(&e, CS_ERR_JSON_SYNTAX, NULL, "x");
    assert_string_equal(e.field, "");
    assert_int_equal(cs_error_set(NULL, CS_ERR_IO, NULL, "x"), CS_ERR_IO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reason_names_round_trip),
        cmocka_unit_test(test_error_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
