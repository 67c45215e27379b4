/* caresignal time: ISO-8601 parsing and formatting in pure arithmetic (no TZ, no locale).
 */
#include "caresignal/timeutil.h"

#include <stdio.h>

/* Howard Hinnant's days_from_civil / civil_from_days algorithms (public domain
 * arithmetic, written here from the published description). */
int64_t cs_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void cs_civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int cs_digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static int cs_days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 ? 28 + leap : days[m - 1];
}

/* "YYYY-MM-DD" at s; 0 and the day number on success. */
static int cs_parse_ymd(const char *s, int64_t *days)
{
    int y, m, d;
    if (cs_digits(s, 4, &y) || s[4] != '-' || cs_digits(s + 5, 2, &m) || s[7] != '-' ||
        cs_digits(s + 8, 2, &d))
        return -1;
    if (m < 1 || m > 12 || d < 1 || d > cs_days_in_month(y, m))
        return -1;
    *days = cs_days_from_civil(y, m, d);
    return 0;
}

cs_err_t cs_date_parse(const char *s, size_t len, int64_t *ms)
{
    int64_t days;
    if (len != 10 || cs_parse_ymd(s, &days))
        return CS_ERR_INVALID_ARG;
    *ms = days * CS_MS_PER_DAY;
    return CS_OK;
}

cs_err_t cs_time_parse_iso8601(const char *s, size_t len, int64_t *ms)
{
    int64_t days;
    int hh, mm, ss;
    if (len < 20 || cs_parse_ymd(s, &days) || (s[10] != 'T' && s[10] != 't') ||
        cs_digits(s + 11, 2, &hh) || s[13] != ':' || cs_digits(s + 14, 2, &mm) ||
        s[16] != ':' || cs_digits(s + 17, 2, &ss) || hh > 23 || mm > 59 || ss > 59)
        return CS_ERR_INVALID_ARG;
    size_t i = 19;
    int frac_ms = 0;
    if (s[i] == '.') {
        size_t start = ++i;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (i - start < 3)
                frac_ms = frac_ms * 10 + (s[i] - '0');
            i++;
        }
        size_t nd = i - start;
        if (nd == 0 || nd > 9)
            return CS_ERR_INVALID_ARG;
        for (size_t k = nd; k < 3; k++)
            frac_ms *= 10;
    }
    int64_t offset_min = 0;
    if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < len && (s[i] == '+' || s[i] == '-')) {
        int sign = s[i] == '-' ? -1 : 1, oh, om;
        i++;
        if (i + 2 > len || cs_digits(s + i, 2, &oh))
            return CS_ERR_INVALID_ARG;
        i += 2;
        if (i < len && s[i] == ':')
            i++;
        if (i + 2 > len || cs_digits(s + i, 2, &om))
            return CS_ERR_INVALID_ARG;
        i += 2;
        if (oh > 23 || om > 59)
            return CS_ERR_INVALID_ARG;
        offset_min = sign * (oh * 60 + om);
    } else {
        return CS_ERR_INVALID_ARG; /* a local time without an offset is ambiguous */
    }
    if (i != len)
        return CS_ERR_INVALID_ARG;
    *ms = ((days * 86400 + hh * 3600 + mm * 60 + ss) - offset_min * 60) * 1000 + frac_ms;
    return CS_OK;
}

static int64_t cs_floor_div(int64_t a, int64_t b)
{
    return a / b - ((a % b) != 0 && ((a < 0) != (b < 0)));
}

void cs_time_format(int64_t ms, char *out, size_t size)
{
    int64_t days = cs_floor_div(ms, CS_MS_PER_DAY);
    /* not ms - days * CS_MS_PER_DAY: that product overflows near INT64_MIN */
    int64_t rem = ms % CS_MS_PER_DAY;
    if (rem < 0)
        rem += CS_MS_PER_DAY;
    int64_t y;
    int m, d;
    cs_civil_from_days(days, &y, &m, &d);
    snprintf(out, size, "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ", (long long)y, m, d,
             (int)(rem / 3600000), (int)(rem / 60000 % 60), (int)(rem / 1000 % 60),
             (int)(rem % 1000));
}

void cs_time_month(int64_t ms, char *out, size_t size)
{
    int64_t y;
    int m, d;
    cs_civil_from_days(cs_floor_div(ms, CS_MS_PER_DAY), &y, &m, &d);
    snprintf(out, size, "%04lld-%02d", (long long)y, m);
}
