/* Unit tests of the identifier formats of docs/contract/formats.md: valid and invalid examples of
 * each kind, the length boundaries, and characters that would inject into keys. */
#include "testenv.h"

#include <stdio.h>
#include <string.h>

#include "caresignal/ids.h"

typedef struct id_case {
    cs_id_kind_t kind;
    const char *s;
    int valid;
} id_case_t;

static void run_cases(const id_case_t *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int got = cs_id_valid(cases[i].kind, cases[i].s, strlen(cases[i].s));
        if (!!got != cases[i].valid)
            fail_msg("case %zu: %s '%s': expected %s, got %s", i,
                     cs_id_kind_names[cases[i].kind], cases[i].s,
                     cases[i].valid ? "valid" : "invalid", got ? "valid" : "invalid");
    }
}

#define RUN(cases) run_cases(cases, sizeof(cases) / sizeof(cases[0]))

static void test_kind_names(void **state)
{
    (void)state;
    assert_string_equal(cs_id_kind_names[CS_ID_LOCATION], "location");
    assert_string_equal(cs_id_kind_names[CS_ID_ODS], "ods");
    assert_string_equal(cs_id_kind_names[CS_ID_GSS], "gss");
    assert_string_equal(cs_id_kind_names[CS_ID_EVENT_REF], "event_ref");
    assert_false(cs_id_valid(CS_ID_KIND_COUNT, "RXQ02", 5));
}

/* ^1-[0-9]{9,11}$ or ^[A-Z0-9]{5}$ */
static void test_location(void **state)
{
    (void)state;
    static const id_case_t cases[] = {
        {CS_ID_LOCATION, "1-101669119", 1},    /* 9 digits */
        {CS_ID_LOCATION, "1-1000079258", 1},   /* 10 digits */
        {CS_ID_LOCATION, "1-10000792582", 1},  /* 11 digits */
        {CS_ID_LOCATION, "1-000000000", 1},    /* digits only, zeros allowed */
        {CS_ID_LOCATION, "1-10166911", 0},     /* 8 digits */
        {CS_ID_LOCATION, "1-100007925820", 0}, /* 12 digits */
        {CS_ID_LOCATION, "1-", 0},
        {CS_ID_LOCATION, "1", 0},
        {CS_ID_LOCATION, "", 0},
        {CS_ID_LOCATION, "2-101669119", 0},
        {CS_ID_LOCATION, "1_101669119", 0},
        {CS_ID_LOCATION, "1-10166911X", 0},
        {CS_ID_LOCATION, "1-1016691 9", 0},
        {CS_ID_LOCATION, "1--01669119", 0},
        {CS_ID_LOCATION, " 1-101669119", 0},
        {CS_ID_LOCATION, "1-101669119 ", 0},
        {CS_ID_LOCATION, "1-101669119\n", 0},
        {CS_ID_LOCATION, "11-01669119", 0},
        {CS_ID_LOCATION, "1-10166:119", 0},
        /* NHS trust site codes */
        {CS_ID_LOCATION, "RXQ02", 1},
        {CS_ID_LOCATION, "R1H12", 1},
        {CS_ID_LOCATION, "00000", 1},
        {CS_ID_LOCATION, "ZZZZZ", 1},
        {CS_ID_LOCATION, "rxq02", 0},
        {CS_ID_LOCATION, "RXq02", 0},
        {CS_ID_LOCATION, "RXQ0", 0},
        {CS_ID_LOCATION, "RXQ021", 0},
        {CS_ID_LOCATION, "RXQ-2", 0},
        {CS_ID_LOCATION, "RXQ:2", 0},
        {CS_ID_LOCATION, "RXQ#2", 0},
        {CS_ID_LOCATION, "RX Q2", 0},
        {CS_ID_LOCATION, "1-123", 0},
        {CS_ID_LOCATION, "R\xc3\x89Q2", 0}, /* non-ASCII */
    };
    RUN(cases);
}

/* ^[A-Z0-9]{3,6}$ */
static void test_ods(void **state)
{
    (void)state;
    static const id_case_t cases[] = {
        {CS_ID_ODS, "RXQ", 1},    {CS_ID_ODS, "RXQ0", 1},    {CS_ID_ODS, "RXQ02", 1},
        {CS_ID_ODS, "QE1ABC", 1}, {CS_ID_ODS, "123", 1},     {CS_ID_ODS, "", 0},
        {CS_ID_ODS, "R", 0},      {CS_ID_ODS, "RX", 0},      {CS_ID_ODS, "QE1ABCD", 0},
        {CS_ID_ODS, "rxq", 0},    {CS_ID_ODS, "RxQ", 0},     {CS_ID_ODS, "RX-Q", 0},
        {CS_ID_ODS, "RX Q", 0},   {CS_ID_ODS, "RXQ:", 0},    {CS_ID_ODS, "RXQ#", 0},
        {CS_ID_ODS, "RXQ\n", 0},  {CS_ID_ODS, "R_Q", 0},     {CS_ID_ODS, "R.Q", 0},
        {CS_ID_ODS, "{RXQ}", 0},  {CS_ID_ODS, "RX\xffQ", 0},
    };
    RUN(cases);
}

/* ^E(0[6-9]|10)[0-9]{6}$ */
static void test_gss(void **state)
{
    (void)state;
    static const id_case_t cases[] = {
        {CS_ID_GSS, "E06000001", 1},  {CS_ID_GSS, "E07000223", 1},
        {CS_ID_GSS, "E08000025", 1},  {CS_ID_GSS, "E09000030", 1},
        {CS_ID_GSS, "E10000034", 1},  {CS_ID_GSS, "E09999999", 1},
        {CS_ID_GSS, "E05000001", 0},  {CS_ID_GSS, "E11000001", 0},
        {CS_ID_GSS, "E00000001", 0},  {CS_ID_GSS, "E01000001", 0},
        {CS_ID_GSS, "E12000001", 0},  {CS_ID_GSS, "E20000001", 0},
        {CS_ID_GSS, "W06000001", 0},  {CS_ID_GSS, "S12000033", 0},
        {CS_ID_GSS, "N09000001", 0},  {CS_ID_GSS, "e09000030", 0},
        {CS_ID_GSS, "E0900003", 0},   {CS_ID_GSS, "E090000301", 0},
        {CS_ID_GSS, "E09", 0},        {CS_ID_GSS, "E", 0},
        {CS_ID_GSS, "", 0},           {CS_ID_GSS, "E0900003A", 0},
        {CS_ID_GSS, "E09 00030", 0},  {CS_ID_GSS, "E0A000030", 0},
        {CS_ID_GSS, "E09:00030", 0},  {CS_ID_GSS, "E09000030\n", 0},
        {CS_ID_GSS, " E09000030", 0}, {CS_ID_GSS, "E1A000001", 0},
    };
    RUN(cases);
}

/* ^[A-Za-z0-9._/-]{1,64}$ */
static void test_event_ref(void **state)
{
    (void)state;
    static const id_case_t cases[] = {
        {CS_ID_EVENT_REF, "a", 1},
        {CS_ID_EVENT_REF, "NHSE-2026-000123", 1},
        {CS_ID_EVENT_REF, "ccg/2026/11.20_x-y", 1},
        {CS_ID_EVENT_REF, "SEND.2026.E09000030", 1},
        {CS_ID_EVENT_REF, "..", 1},
        {CS_ID_EVENT_REF, "", 0},
        {CS_ID_EVENT_REF, "NHSE:1", 0},
        {CS_ID_EVENT_REF, "NHSE#1", 0},
        {CS_ID_EVENT_REF, "NHSE 1", 0},
        {CS_ID_EVENT_REF, "NHSE\t1", 0},
        {CS_ID_EVENT_REF, "NHSE\n1", 0},
        {CS_ID_EVENT_REF, "NHSE\\1", 0},
        {CS_ID_EVENT_REF, "NHSE*1", 0},
        {CS_ID_EVENT_REF, "{tag}", 0},
        {CS_ID_EVENT_REF, "a+b", 0},
        {CS_ID_EVENT_REF, "caf\xc3\xa9", 0},
    };
    RUN(cases);
    /* 64 characters is the maximum, 65 is one too many */
    char buf[80];
    memset(buf, 'r', sizeof(buf));
    assert_true(cs_id_valid(CS_ID_EVENT_REF, buf, 64));
    assert_true(cs_id_valid(CS_ID_EVENT_REF, buf, 1));
    assert_false(cs_id_valid(CS_ID_EVENT_REF, buf, 65));
    assert_false(cs_id_valid(CS_ID_EVENT_REF, buf, 0));
    buf[63] = ':';
    assert_false(cs_id_valid(CS_ID_EVENT_REF, buf, 64));
}

/* The length argument is authoritative: bytes after it are not looked at, an embedded
 * NUL inside it is rejected. */
static void test_length_is_authoritative(void **state)
{
    (void)state;
    assert_true(cs_id_valid(CS_ID_ODS, "RXQ02:junk", 5));
    assert_true(cs_id_valid(CS_ID_LOCATION, "1-101669119#x", 11));
    assert_true(cs_id_valid(CS_ID_GSS, "E09000030 ", 9));
    assert_false(cs_id_valid(CS_ID_ODS, "RX\0Q2", 5));
    assert_false(cs_id_valid(CS_ID_LOCATION,
                             "1-1016\0"
                             "0111",
                             11));
    assert_false(cs_id_valid(CS_ID_EVENT_REF, "ab\0cd", 5));
    assert_false(cs_id_valid(CS_ID_GSS,
                             "E0900\0"
                             "030",
                             9));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kind_names), cmocka_unit_test(test_location),
        cmocka_unit_test(test_ods),        cmocka_unit_test(test_gss),
        cmocka_unit_test(test_event_ref),  cmocka_unit_test(test_length_is_authoritative),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
