/* Unit tests of the time helpers: ISO-8601 and date parsing (offsets, fractions, leap
 * years, dates before 1970), formatting, months, and the civil-date arithmetic. */
#include "testenv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caresignal/timeutil.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

typedef struct parse_case {
    const char *s;
    cs_err_t rc;
    int64_t ms;
} parse_case_t;

static void test_iso8601_valid(void **state)
{
    (void)state;
    static const parse_case_t cases[] = {
        {"2026-11-20T09:15:00Z", CS_OK, 1795166100000LL},
        {"2026-11-20t09:15:00z", CS_OK, 1795166100000LL},
        {"2026-11-20T09:15:00+00:00", CS_OK, 1795166100000LL},
        {"2026-11-20T09:15:00-00:00", CS_OK, 1795166100000LL},
        {"2026-11-20T09:15:00+0000", CS_OK, 1795166100000LL},
        {"2026-11-20T09:15:00+01:00", CS_OK, 1795162500000LL},
        {"2026-11-20T10:15:00+0100", CS_OK, 1795166100000LL},
        {"2026-11-20T09:15:00-05:30", CS_OK, 1795185900000LL},
        {"2026-11-20T03:45:00-0530", CS_OK, 1795166100000LL},
        {"2026-11-20T09:15:00.123Z", CS_OK, 1795166100123LL},
        {"2026-11-20T09:15:00.1Z", CS_OK, 1795166100100LL},
        {"2026-11-20T09:15:00.12Z", CS_OK, 1795166100120LL},
        {"2026-11-20T09:15:00.000Z", CS_OK, 1795166100000LL},
        /* fractions beyond ms are truncated, never rounded */
        {"2026-11-20T09:15:00.123999Z", CS_OK, 1795166100123LL},
        {"2026-11-20T09:15:00.999999999Z", CS_OK, 1795166100999LL},
        {"2026-11-20T09:15:00.5+01:00", CS_OK, 1795162500500LL},
        {"1970-01-01T00:00:00Z", CS_OK, 0},
        {"1970-01-01T00:00:00.001Z", CS_OK, 1},
        {"1969-12-31T23:59:59.999Z", CS_OK, -1},
        {"1970-01-01T00:00:00+23:59", CS_OK, -86340000LL},
        {"1970-01-01T00:00:00-23:59", CS_OK, 86340000LL},
        {"1900-01-01T00:00:00Z", CS_OK, -2208988800000LL},
        {"0001-01-01T00:00:00Z", CS_OK, -62135596800000LL},
        {"9999-12-31T23:59:59.999Z", CS_OK, 253402300799999LL},
        {"2024-02-29T23:59:59.999Z", CS_OK, 1709251199999LL},
        {"2000-03-01T00:00:00Z", CS_OK, 951868800000LL},
        /* an offset moving the instant across midnight, a month and a year */
        {"2026-01-01T00:30:00+01:00", CS_OK, 1767223800000LL},
    };
    for (size_t i = 0; i < N(cases); i++) {
        int64_t ms = 42;
        cs_err_t rc = cs_time_parse_iso8601(cases[i].s, strlen(cases[i].s), &ms);
        if (rc != cases[i].rc || ms != cases[i].ms)
            fail_msg("case %zu '%s': rc %d ms %lld, expected %lld", i, cases[i].s, rc,
                     (long long)ms, (long long)cases[i].ms);
    }
}

static void test_iso8601_invalid(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "",
        "2026-11-20",
        "2026-11-20T09:15:00",     /* no offset: ambiguous local time */
        "2026-11-20T09:15:00.123", /* likewise with a fraction */
        "2026-11-20 09:15:00Z",
        "2026-11-20T09:15Z",
        "2026-11-20T9:15:00Z",
        "2026-11-20T09:15:00ZZ",
        "2026-11-20T09:15:00Z ",
        " 2026-11-20T09:15:00Z",
        "2026-11-20T09:15:00+1",
        "2026-11-20T09:15:00+01",
        "2026-11-20T09:15:00+01:",
        "2026-11-20T09:15:00+01:0",
        "2026-11-20T09:15:00+01:00:00",
        "2026-11-20T09:15:00+0100Z",
        "2026-11-20T09:15:00+24:00",
        "2026-11-20T09:15:00+01:60",
        "2026-11-20T09:15:00 +01:00",
        "2026-11-20T09:15:00.Z",
        "2026-11-20T09:15:00.1234567890Z", /* more than 9 fraction digits */
        "2026-11-20T09:15:00,123Z",
        "2026-11-20T24:00:00Z",
        "2026-11-20T23:60:00Z",
        "2026-11-20T23:59:60Z", /* leap seconds are not representable */
        "2026-13-20T09:15:00Z",
        "2026-00-20T09:15:00Z",
        "2026-11-00T09:15:00Z",
        "2026-11-31T09:15:00Z",
        "2026-02-29T09:15:00Z",
        "1900-02-29T09:15:00Z",
        "2026-1-20T09:15:00Z",
        "26-11-20T09:15:00Z",
        "+2026-11-20T09:15:00Z",
        "2026/11/20T09:15:00Z",
        "2026-11-20T09:15:00EST",
        "2026-11-20T09:15:00UTC",
        "abcd-ef-ghTij:kl:mnZ",
        "1795166100000",
        "2026-11-20T09:15:0aZ",
        "2026-11-20T-9:15:00Z",
    };
    for (size_t i = 0; i < N(cases); i++) {
        int64_t ms = 42;
        cs_err_t rc = cs_time_parse_iso8601(cases[i], strlen(cases[i]), &ms);
        if (rc != CS_ERR_INVALID_ARG)
            fail_msg("case %zu '%s': rc %d (ms %lld), expected INVALID_ARG", i, cases[i],
                     rc, (long long)ms);
    }
}

/* The length bounds the parse: nothing past it is read, a shorter length rejects. */
static void test_iso8601_length(void **state)
{
    (void)state;
    const char *s = "2026-11-20T09:15:00Zjunk";
    int64_t ms;
    assert_int_equal(cs_time_parse_iso8601(s, 20, &ms), CS_OK);
    assert_int_equal(ms, 1795166100000LL);
    for (size_t len = 0; len < 20; len++)
        assert_int_equal(cs_time_parse_iso8601(s, len, &ms), CS_ERR_INVALID_ARG);
    assert_int_equal(cs_time_parse_iso8601(s, 21, &ms), CS_ERR_INVALID_ARG);
    /* an exact-size heap copy without a terminator, so ASan sees any over-read */
    const char *texts[] = {"2026-11-20T09:15:00.123+01:00", "2026-11-20T09:15:00+0100",
                           "2026-11-20T09:15:00.5",
                           "2026-11-20T09:15:00+01:", "2026-11-20T09:15:00."};
    for (size_t i = 0; i < N(texts); i++) {
        size_t len = strlen(texts[i]);
        for (size_t cut = 0; cut <= len; cut++) {
            char *copy = malloc(cut ? cut : 1);
            memcpy(copy, texts[i], cut);
            cs_err_t rc = cs_time_parse_iso8601(copy, cut, &ms);
            /* no strict prefix of these is a complete timestamp */
            assert_int_equal(rc, cut == len && i < 2 ? CS_OK : CS_ERR_INVALID_ARG);
            free(copy);
        }
    }
}

static void test_date_parse(void **state)
{
    (void)state;
    static const parse_case_t cases[] = {
        {"2026-11-20", CS_OK, 1795132800000LL},
        {"1970-01-01", CS_OK, 0},
        {"1969-12-31", CS_OK, -86400000LL},
        {"2024-02-29", CS_OK, 1709164800000LL},
        {"2000-02-29", CS_OK, 951782400000LL},
        {"1900-01-01", CS_OK, -2208988800000LL},
        {"2026-01-05", CS_OK, 1767571200000LL},
        {"2026-12-31", CS_OK, 1798675200000LL},
        {"2026-02-29", CS_ERR_INVALID_ARG, 0},
        {"1900-02-29", CS_ERR_INVALID_ARG, 0},
        {"2100-02-29", CS_ERR_INVALID_ARG, 0},
        {"2026-02-30", CS_ERR_INVALID_ARG, 0},
        {"2026-04-31", CS_ERR_INVALID_ARG, 0},
        {"2026-06-31", CS_ERR_INVALID_ARG, 0},
        {"2026-09-31", CS_ERR_INVALID_ARG, 0},
        {"2026-11-31", CS_ERR_INVALID_ARG, 0},
        {"2026-01-32", CS_ERR_INVALID_ARG, 0},
        {"2026-13-01", CS_ERR_INVALID_ARG, 0},
        {"2026-00-01", CS_ERR_INVALID_ARG, 0},
        {"2026-01-00", CS_ERR_INVALID_ARG, 0},
        {"2026-1-5", CS_ERR_INVALID_ARG, 0},
        {"2026-01-5", CS_ERR_INVALID_ARG, 0},
        {"2026-1-05", CS_ERR_INVALID_ARG, 0},
        {"26-01-05", CS_ERR_INVALID_ARG, 0},
        {"2026/01/05", CS_ERR_INVALID_ARG, 0},
        {"20260105", CS_ERR_INVALID_ARG, 0},
        {"2026-01-05T00:00:00Z", CS_ERR_INVALID_ARG, 0},
        {"2026-01-05 ", CS_ERR_INVALID_ARG, 0},
        {" 2026-01-05", CS_ERR_INVALID_ARG, 0},
        {"2026-01-0x", CS_ERR_INVALID_ARG, 0},
        {"", CS_ERR_INVALID_ARG, 0},
    };
    for (size_t i = 0; i < N(cases); i++) {
        int64_t ms = 0;
        cs_err_t rc = cs_date_parse(cases[i].s, strlen(cases[i].s), &ms);
        if (rc != cases[i].rc || (rc == CS_OK && ms != cases[i].ms))
            fail_msg("case %zu '%s': rc %d ms %lld, expected rc %d ms %lld", i,
                     cases[i].s, rc, (long long)ms, cases[i].rc, (long long)cases[i].ms);
    }
    int64_t ms;
    assert_int_equal(cs_date_parse("2026-01-05xyz", 10, &ms), CS_OK);
    assert_int_equal(ms, 1767571200000LL);
    assert_int_equal(cs_date_parse("2026-01-05", 9, &ms), CS_ERR_INVALID_ARG);
}

static void test_format(void **state)
{
    (void)state;
    static const struct {
        int64_t ms;
        const char *text;
    } cases[] = {
        {0, "1970-01-01T00:00:00.000Z"},
        {1, "1970-01-01T00:00:00.001Z"},
        {-1, "1969-12-31T23:59:59.999Z"},
        {-86400000LL, "1969-12-31T00:00:00.000Z"},
        {-86400001LL, "1969-12-30T23:59:59.999Z"},
        {1795166100123LL, "2026-11-20T09:15:00.123Z"},
        {1709251199999LL, "2024-02-29T23:59:59.999Z"},
        {-2208988800000LL, "1900-01-01T00:00:00.000Z"},
        {-62135596800000LL, "0001-01-01T00:00:00.000Z"},
        {253402300799999LL, "9999-12-31T23:59:59.999Z"},
    };
    for (size_t i = 0; i < N(cases); i++) {
        char buf[32];
        cs_time_format(cases[i].ms, buf, sizeof(buf));
        if (strcmp(buf, cases[i].text))
            fail_msg("case %zu: %lld formats as '%s', expected '%s'", i,
                     (long long)cases[i].ms, buf, cases[i].text);
        assert_int_equal(strlen(buf), 24); /* needs 25 bytes with the NUL */
        char exact[25];
        cs_time_format(cases[i].ms, exact, sizeof(exact));
        assert_string_equal(exact, cases[i].text);
        int64_t back;
        assert_int_equal(cs_time_parse_iso8601(buf, strlen(buf), &back), CS_OK);
        assert_int_equal(back, cases[i].ms);
    }
    /* a small buffer truncates, never overflows */
    char small[8];
    memset(small, 'x', sizeof(small));
    cs_time_format(0, small, sizeof(small));
    assert_string_equal(small, "1970-01");
}

/* Regression: cs_time_format computed days * 86400000 for the whole int64 range, a
 * signed overflow (UBSan abort) for timestamps near INT64_MIN, which a partner or a
 * replayed event can carry. */
static void test_format_extreme_timestamps_do_not_overflow(void **state)
{
    (void)state;
    static const int64_t cases[] = {INT64_MIN, INT64_MIN + 1, INT64_MIN + 86400000LL,
                                    INT64_MAX, INT64_MAX - 1};
    for (size_t i = 0; i < N(cases); i++) {
        char buf[64], month[32];
        cs_time_format(cases[i], buf, sizeof(buf));
        cs_time_month(cases[i], month, sizeof(month));
        size_t len = strlen(buf);
        assert_true(len >= 24);
        assert_int_equal(buf[len - 1], 'Z');
        assert_non_null(strchr(buf, 'T'));
        assert_true(strlen(month) >= 7);
    }
    char buf[64];
    cs_time_format(INT64_MAX, buf, sizeof(buf));
    assert_string_equal(buf, "292278994-08-17T07:12:55.807Z");
    cs_time_format(INT64_MIN, buf, sizeof(buf));
    assert_string_equal(buf, "-292275055-05-16T16:47:04.192Z");
}

/* parse(format(ms)) == ms over a wide range of instants, stepping by odd amounts. */
static void test_format_parse_round_trip(void **state)
{
    (void)state;
    const int64_t lo = -62135596800000LL;   /* 0001-01-01 */
    const int64_t hi = 253402300799999LL;   /* 9999-12-31T23:59:59.999 */
    const int64_t step = 7777777777LL + 13; /* about 90 days, odd ms */
    char buf[32];
    for (int64_t ms = lo; ms <= hi; ms += step) {
        cs_time_format(ms, buf, sizeof(buf));
        int64_t back;
        if (cs_time_parse_iso8601(buf, strlen(buf), &back) || back != ms)
            fail_msg("%lld formats as '%s' which parses back as %lld", (long long)ms, buf,
                     (long long)back);
        /* the date part parses to midnight of the same day */
        int64_t day;
        assert_int_equal(cs_date_parse(buf, 10, &day), CS_OK);
        assert_true(day <= ms && ms - day < CS_MS_PER_DAY);
    }
}

static void test_month(void **state)
{
    (void)state;
    static const struct {
        int64_t ms;
        const char *month;
    } cases[] = {
        {0, "1970-01"},
        {-1, "1969-12"},
        {1795166100123LL, "2026-11"},
        {1709251199999LL, "2024-02"},
        {1709251200000LL, "2024-03"},
        {1798761599999LL, "2026-12"},
        {1798761600000LL, "2027-01"},
        {-2208988800000LL, "1900-01"},
    };
    for (size_t i = 0; i < N(cases); i++) {
        char buf[8];
        cs_time_month(cases[i].ms, buf, sizeof(buf));
        if (strcmp(buf, cases[i].month))
            fail_msg("case %zu: %lld is month '%s', expected '%s'", i,
                     (long long)cases[i].ms, buf, cases[i].month);
    }
}

static void test_civil_known_days(void **state)
{
    (void)state;
    static const struct {
        int64_t y;
        int m, d;
        int64_t days;
    } cases[] = {
        {1970, 1, 1, 0},         {1969, 12, 31, -1},    {1970, 1, 2, 1},
        {2000, 3, 1, 11017},     {2000, 2, 29, 11016},  {2024, 2, 29, 19782},
        {2026, 11, 20, 20777},   {1900, 1, 1, -25567},  {1, 1, 1, -719162},
        {0, 3, 1, -719468},      {0, 2, 29, -719469},   {-1, 12, 31, -719529},
        {9999, 12, 31, 2932896}, {1600, 1, 1, -135140}, {2100, 3, 1, 47541},
    };
    for (size_t i = 0; i < N(cases); i++) {
        int64_t days = cs_days_from_civil(cases[i].y, cases[i].m, cases[i].d);
        if (days != cases[i].days)
            fail_msg("case %zu: %lld-%02d-%02d is day %lld, expected %lld", i,
                     (long long)cases[i].y, cases[i].m, cases[i].d, (long long)days,
                     (long long)cases[i].days);
        int64_t y;
        int m, d;
        cs_civil_from_days(cases[i].days, &y, &m, &d);
        assert_int_equal(y, cases[i].y);
        assert_int_equal(m, cases[i].m);
        assert_int_equal(d, cases[i].d);
    }
}

/* The two conversions are inverse, and consecutive days are consecutive dates, over
 * about +-27,000 years day by day. */
static void test_civil_inverse_wide_range(void **state)
{
    (void)state;
    const int64_t lo = -10000000, hi = 10000000;
    int64_t py;
    int pm, pd;
    cs_civil_from_days(lo - 1, &py, &pm, &pd);
    for (int64_t z = lo; z <= hi; z++) {
        int64_t y;
        int m, d;
        cs_civil_from_days(z, &y, &m, &d);
        if (m < 1 || m > 12 || d < 1 || d > 31 || cs_days_from_civil(y, m, d) != z)
            fail_msg("day %lld -> %lld-%d-%d does not map back", (long long)z,
                     (long long)y, m, d);
        /* the next date after (py, pm, pd) */
        int same_month = y == py && m == pm && d == pd + 1;
        int next_month =
            d == 1 && ((y == py && m == pm + 1) || (y == py + 1 && m == 1 && pm == 12));
        if (!same_month && !next_month)
            fail_msg("day %lld: %lld-%d-%d does not follow %lld-%d-%d", (long long)z,
                     (long long)y, m, d, (long long)py, pm, pd);
        py = y;
        pm = m;
        pd = d;
    }
    /* far out, still inverse */
    static const int64_t far[] = {-1000000000000LL, 1000000000000LL, -106751991168LL,
                                  106751991167LL};
    for (size_t i = 0; i < N(far); i++) {
        int64_t y;
        int m, d;
        cs_civil_from_days(far[i], &y, &m, &d);
        assert_int_equal(cs_days_from_civil(y, m, d), far[i]);
    }
}

/* A leap year has 366 days, others 365, by the Gregorian rule. */
static void test_civil_year_lengths(void **state)
{
    (void)state;
    for (int64_t y = -2000; y <= 3000; y++) {
        int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        int64_t len = cs_days_from_civil(y + 1, 1, 1) - cs_days_from_civil(y, 1, 1);
        if (len != 365 + leap)
            fail_msg("year %lld has %lld days", (long long)y, (long long)len);
        assert_int_equal(cs_days_from_civil(y, 3, 1) - cs_days_from_civil(y, 2, 1),
                         28 + leap);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_iso8601_valid),
        cmocka_unit_test(test_iso8601_invalid),
        cmocka_unit_test(test_iso8601_length),
        cmocka_unit_test(test_date_parse),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_format_extreme_timestamps_do_not_overflow),
        cmocka_unit_test(test_format_parse_round_trip),
        cmocka_unit_test(test_month),
        cmocka_unit_test(test_civil_known_days),
        cmocka_unit_test(test_civil_inverse_wide_range),
        cmocka_unit_test(test_civil_year_lengths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
