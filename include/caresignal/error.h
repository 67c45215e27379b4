/* caresignal error codes: one enum for the whole project (0 = OK, errors negative). */
#ifndef CARESIGNAL_ERROR_H
#define CARESIGNAL_ERROR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Every caresignal function that can fail returns a cs_err_t.
 *
 * Errors of librdkafka, hiredis, avro-c and jansson are translated into these
 * at the module boundary; the detail goes to a caller-owned `errstr` buffer or
 * a cs_error_t. The validation codes (CS_ERR_JSON_SYNTAX ... CS_ERR_UNKNOWN_LOCATION)
 * are the reason codes of docs/contract/reason-codes.md and travel in the `cs.error` header.
 */
typedef enum cs_err {
    CS_OK = 0,
    /* generic */
    CS_ERR_NOMEM = -1,
    CS_ERR_INVALID_ARG = -2,
    CS_ERR_CONFIG = -3, /**< bad configuration: the program exits 2 */
    CS_ERR_IO = -4,     /**< file or socket I/O */
    CS_ERR_RETRY = -5,  /**< transient: back off and try again */
    CS_ERR_FATAL = -6,  /**< cannot continue: stop with a clear log line */
    CS_ERR_NOT_FOUND = -7,
    CS_ERR_TIMEOUT = -8,
    CS_ERR_KAFKA = -9,
    CS_ERR_REDIS = -10,
    /* docs/contract/reason-codes.md rejection reasons */
    CS_ERR_JSON_SYNTAX = -100,
    CS_ERR_NOT_OBJECT = -101,
    CS_ERR_SCHEMA_UNKNOWN = -102,
    CS_ERR_AVRO_DECODE = -103,
    CS_ERR_FIELD_MISSING = -104,
    CS_ERR_FIELD_TYPE = -105,
    CS_ERR_ENUM_UNKNOWN = -106,
    CS_ERR_ID_FORMAT = -107,
    CS_ERR_TIME_RANGE = -108,
    CS_ERR_TOO_LARGE = -109,
    CS_ERR_UNKNOWN_LOCATION = -110,
} cs_err_t;

/**
 * @returns a static, human-readable name for \p err; for the docs/contract/reason-codes.md codes it is
 *          exactly the reason code ("FIELD_MISSING").
 */
const char *cs_err_str(cs_err_t err);

/**
 * @returns the docs/contract/reason-codes.md reason code for \p name ("UNKNOWN_LOCATION"), or CS_OK if
 *          \p name is not one of them.
 */
cs_err_t cs_err_from_reason(const char *name);

/** @returns non-zero if \p err is one of the docs/contract/reason-codes.md rejection reasons. */
int cs_err_is_reason(cs_err_t err);

/**
 * A validation error: a code, the path of the failing field (never its value) and
 * a short message. Caller-owned; fixed-size so filling it never allocates.
 */
typedef struct cs_error {
    cs_err_t code;
    char field[128]; /**< dotted path with [i] for array items; "" if none */
    char msg[256];
} cs_error_t;

/** Clears \p e to CS_OK. */
void cs_error_clear(cs_error_t *e);

/**
 * Sets \p e (printf-style message) and returns \p code, so a caller can write
 * `return cs_error_set(e, CS_ERR_FIELD_MISSING, "harm", "required field missing");`.
 * \p field may be NULL.
 */
cs_err_t cs_error_set(cs_error_t *e, cs_err_t code, const char *field, const char *fmt,
                      ...) __attribute__((format(printf, 4, 5)));

#ifdef __cplusplus
}
#endif
#endif
