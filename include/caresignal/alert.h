/* caresignal alerts: the RiskAlert (docs/contract/risk-model.md) — its id, Avro wire
 * format and JSON. */
#ifndef CARESIGNAL_ALERT_H
#define CARESIGNAL_ALERT_H

#include <jansson.h>
#include <stdint.h>

#include "caresignal/error.h"
#include "caresignal/event.h"
#include "caresignal/registry.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cs_level {
    CS_LEVEL_NONE,
    CS_LEVEL_WATCH,
    CS_LEVEL_INSPECT,
    CS_LEVEL_COUNT
} cs_level_t;
typedef enum cs_alert_kind {
    CS_ALERT_RAISED,
    CS_ALERT_CLEARED,
    CS_ALERT_KIND_COUNT
} cs_alert_kind_t;
typedef enum cs_reason {
    CS_REASON_THRESHOLD,
    CS_REASON_IMMEDIATE,
    CS_REASON_COUNT
} cs_reason_t;

extern const char *const cs_level_names[CS_LEVEL_COUNT];
extern const char *const cs_alert_kind_names[CS_ALERT_KIND_COUNT];
extern const char *const cs_reason_names[CS_REASON_COUNT];

#define CS_ALERT_RECENT_MAX 64

/** One of the subject's recent events carried by an alert. */
typedef struct cs_recent_event {
    char event_key[CS_EVENT_KEY_MAX];
    cs_signal_t signal;
    cs_severity_t severity;
    int64_t occurred_at;
} cs_recent_event_t;

/** A RiskAlert. Plain data. */
typedef struct cs_alert {
    char alert_id[33];
    cs_alert_kind_t kind;
    cs_subject_kind_t subject_kind;
    char subject_id[CS_ID_MAX + 1];
    cs_level_t level;
    cs_level_t previous_level;
    double score;
    double area_scores[CS_AREA_COUNT];
    int64_t as_of;
    char triggered_by[CS_EVENT_KEY_MAX];
    cs_reason_t reason;
    cs_recent_event_t recent[CS_ALERT_RECENT_MAX];
    int nrecent;
    char rules_version[64];
    char region[CS_ID_MAX + 1];
    char local_authority_code[CS_ID_MAX + 1];
} cs_alert_t;

/**
 * Writes the first 32 hex digits of SHA-256 over
 * "<subject key>|<kind>|<level>|<triggered_by>" into \p out (33 bytes): the id
 * depends on event content only, so a replay produces the same ids.
 */
void cs_alert_id(const char *subject_key, cs_alert_kind_t kind, cs_level_t level,
                 const char *triggered_by, char out[33]);

/** Sets \p a->alert_id from its other fields. */
void cs_alert_set_id(cs_alert_t *a);

/**
 * The alert as a JSON object: the RiskAlert's fields by their schema names, enums
 * as strings, timestamps as epoch milliseconds (docs/contract/configuration.md's stdout
 * format).
 * @returns a new reference.
 */
json_t *cs_alert_to_json(const cs_alert_t *a);

/** \p n recent events as the RiskAlert's `recent` array (event_key, signal, severity,
 *  occurred_at). New reference. */
json_t *cs_recent_events_json(const cs_recent_event_t *e, int n);

/** Reads an alert back from cs_alert_to_json's form. @returns CS_OK or
 * CS_ERR_INVALID_ARG. */
cs_err_t cs_alert_from_json(const json_t *j, cs_alert_t *a);

/** Encodes/decodes RiskAlerts in the wire format (newest caresignal.RiskAlert). */
typedef struct cs_alert_codec cs_alert_codec_t;

cs_alert_codec_t *cs_alert_codec_new(const cs_registry_t *reg, char *errstr,
                                     size_t errstr_size);
void cs_alert_codec_destroy(cs_alert_codec_t *c);

/** @returns CS_OK with \p out (borrowed until the next call). */
cs_err_t cs_alert_encode(cs_alert_codec_t *c, const cs_alert_t *a, const uint8_t **out,
                         size_t *out_len);

/**
 * Checks the identifiers of a decoded alert before they reach a Redis key, a command's
 * environment or a webhook: alert_id (32 lowercase hex digits), subject_id by kind,
 * triggered_by (an event key), region and local authority (cs_event_label_valid).
 * @returns CS_OK or CS_ERR_ID_FORMAT with \p err's field naming the field.
 */
cs_err_t cs_alert_validate(const cs_alert_t *a, cs_error_t *err);

/** @returns CS_OK, CS_ERR_SCHEMA_UNKNOWN or CS_ERR_AVRO_DECODE (with \p err). */
cs_err_t cs_alert_decode(cs_alert_codec_t *c, const void *buf, size_t len, cs_alert_t *a,
                         cs_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
