/* caresignal logging: one JSON object per line on stderr. */
#ifndef CARESIGNAL_LOG_H
#define CARESIGNAL_LOG_H

#include <stdio.h>

#include "caresignal/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cs_log_level {
    CS_LOG_DEBUG = 0,
    CS_LOG_INFO = 1,
    CS_LOG_WARN = 2,
    CS_LOG_ERROR = 3,
    CS_LOG_FATAL = 4,
} cs_log_level_t;

/**
 * Sets the program name written in every line and the lowest level written.
 * \p program is copied. Call once at start-up; lines logged before use "caresignal".
 */
void cs_log_init(const char *program, cs_log_level_t min_level);

/** Redirects output (tests); \p f is borrowed and must outlive logging. NULL = stderr. */
void cs_log_set_output(FILE *f);

/** @returns CS_OK and sets \p out for "debug", "info", "warn", "error", "fatal". */
cs_err_t cs_log_level_parse(const char *s, cs_log_level_t *out);

/** @returns the lowercase name of \p lvl ("info"). */
const char *cs_log_level_name(cs_log_level_t lvl);

/** @returns non-zero if a line at \p lvl would be written. */
int cs_log_enabled(cs_log_level_t lvl);

/**
 * Writes one line: {"ts":"<UTC ISO-8601 ms>","level":..,"program":..,"msg":..,<fields>}.
 * ts, level, program and msg are reserved: a field of one of those names is written as
 * "field_<name>" instead of replacing the record's own.
 *
 * \p fields is NULL or a jansson json_pack() object format followed by its
 * arguments, e.g. cs_log(CS_LOG_INFO, "assigned", "{s:s, s:i}", "topic", t, "partition",
 * p). If the format is malformed the line is still written, with "log_error" set.
 * Thread-safe: each line is written whole. Never pass partner free text or personal
 * data as a field: logs are not a place for them (docs/contract/canonical-event.md).
 */
void cs_log(cs_log_level_t lvl, const char *msg, const char *fields, ...);

#define cs_log_debug(...) cs_log(CS_LOG_DEBUG, __VA_ARGS__)
#define cs_log_info(...)  cs_log(CS_LOG_INFO, __VA_ARGS__)
#define cs_log_warn(...)  cs_log(CS_LOG_WARN, __VA_ARGS__)
#define cs_log_error(...) cs_log(CS_LOG_ERROR, __VA_ARGS__)
#define cs_log_fatal(...) cs_log(CS_LOG_FATAL, __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif
