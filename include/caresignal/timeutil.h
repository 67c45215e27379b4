/* caresignal time: ISO-8601 and dates to epoch milliseconds and back, in UTC, with no
 * dependence on the process's time zone or locale. */
#ifndef CARESIGNAL_TIMEUTIL_H
#define CARESIGNAL_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "caresignal/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CS_MS_PER_DAY 86400000LL

/**
 * Parses "YYYY-MM-DDTHH:MM:SS[.fff…](Z|±HH:MM|±HHMM)" (an offset is required; a
 * fraction is truncated to milliseconds) into epoch ms.
 * @returns CS_OK or CS_ERR_INVALID_ARG.
 */
cs_err_t cs_time_parse_iso8601(const char *s, size_t len, int64_t *ms);

/** Parses "YYYY-MM-DD" into epoch ms at 00:00 UTC. @returns CS_OK or CS_ERR_INVALID_ARG.
 */
cs_err_t cs_date_parse(const char *s, size_t len, int64_t *ms);

/** Writes \p ms as "YYYY-MM-DDTHH:MM:SS.mmmZ" (needs 25 bytes). */
void cs_time_format(int64_t ms, char *out, size_t size);

/** Writes the UTC month of \p ms as "YYYY-MM" (needs 8 bytes). */
void cs_time_month(int64_t ms, char *out, size_t size);

/** Days since 1970-01-01 of a proleptic Gregorian date. */
int64_t cs_days_from_civil(int64_t y, int m, int d);

/** The date of day \p days since 1970-01-01. */
void cs_civil_from_days(int64_t days, int64_t *y, int *m, int *d);

#ifdef __cplusplus
}
#endif
#endif
