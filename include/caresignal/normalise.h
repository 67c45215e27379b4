/* caresignal normalisation: one raw partner message to canonical IntelEvents, or one
 * rejection with its docs/contract/reason-codes.md reason code and field path. */
#ifndef CARESIGNAL_NORMALISE_H
#define CARESIGNAL_NORMALISE_H

#include <stddef.h>
#include <stdint.h>

#include "caresignal/directory.h"
#include "caresignal/error.h"
#include "caresignal/event.h"
#include "caresignal/registry.h"
#include "caresignal/rules.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A raw message as it came off a partner topic. All borrowed. */
typedef struct cs_raw_msg {
    const char *topic;
    int32_t partition;
    int64_t offset;
    int64_t timestamp_ms; /**< Kafka timestamp; -1 if the broker gave none */
    const void *value;    /**< may be NULL (a tombstone: rejected as JSON_SYNTAX) */
    size_t value_len;
    /** the normaliser's clock (epoch ms) for TIME_RANGE; 0 or less: the wall clock.
     *  A partner sets its CreateTime to anything, so the upper bound is the earlier of
     *  the two, and a message without a timestamp is judged against the clock. */
    int64_t now_ms;
} cs_raw_msg_t;

/** One canonical output. `value` is borrowed until the next cs_normalise call. */
typedef struct cs_normalised_event {
    cs_intel_event_t ev;
    char key[CS_SUBJECT_KEY_MAX]; /**< subject key: the Kafka key on intel.events */
    size_t key_len;
    const uint8_t *value; /**< IntelEvent in the wire format */
    size_t value_len;
} cs_normalised_event_t;

typedef struct cs_normaliser cs_normaliser_t;

/**
 * Compiles the mapping of \p rules against the partner schemas of \p reg (every
 * partner enum symbol must be mapped; every field the mapping names must exist).
 * \p raw_topics[source] names the topic of each source: the topic a message arrives
 * on fixes its source. \p max_bytes is normalise.max.bytes. \p reg and \p rules are
 * borrowed and must outlive the normaliser.
 * @returns NULL with \p errstr (a configuration error: exit 2).
 */
cs_normaliser_t *cs_normaliser_new(const cs_registry_t *reg, const cs_rules_t *rules,
                                   const char *const raw_topics[CS_SOURCE_COUNT],
                                   long max_bytes, char *errstr, size_t errstr_size);

void cs_normaliser_destroy(cs_normaliser_t *n);

/**
 * Sets the location directory (borrowed; may be swapped between calls, e.g. on
 * SIGHUP). Until one is set every LOCATION event is UNKNOWN_LOCATION.
 */
void cs_normaliser_set_directory(cs_normaliser_t *n, const cs_directory_t *dir);

/**
 * Turns the directory checks off (\p enabled 0) or on (the default). Off, a location
 * missing from the directory is accepted with region and local authority "UNKNOWN":
 * for partners validating before they publish, who have no directory.
 */
void cs_normaliser_set_location_check(cs_normaliser_t *n, int enabled);

/** @returns the source of \p topic, or -1 if it is not one of the raw topics. */
int cs_normaliser_source_of(const cs_normaliser_t *n, const char *topic);

/**
 * Normalises one raw message. Checks run in docs/contract/reason-codes.md's order: TOO_LARGE;
 * JSON_SYNTAX / NOT_OBJECT or SCHEMA_UNKNOWN / AVRO_DECODE; the schema's fields in
 * order (FIELD_MISSING, FIELD_TYPE, ENUM_UNKNOWN); identifiers (ID_FORMAT);
 * TIME_RANGE; UNKNOWN_LOCATION. Free-text and personal fields are never read.
 * TIME_RANGE: occurred_at more than the rules' tolerance after min(timestamp, clock)
 * (a date: its day after that day + date_future_days), or more than the horizon
 * before the timestamp (the clock when there is none).
 * @returns CS_OK with \p *events (borrowed until the next call) and \p *count >= 1,
 *          or the reason code with \p err (code, field path, message without data).
 */
cs_err_t cs_normalise(cs_normaliser_t *n, const cs_raw_msg_t *msg,
                      const cs_normalised_event_t **events, size_t *count,
                      cs_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
