/* caresignal rules: the rules file (deploy/config/rules.json) — the mapping of partner
 * events to canonical ones (docs/contract/canonical-event.md) and the risk model (docs/contract/risk-model.md) — as data,
 * validated at start-up. */
#ifndef CARESIGNAL_RULES_H
#define CARESIGNAL_RULES_H

#include <jansson.h>
#include <stdint.h>

#include "caresignal/error.h"
#include "caresignal/event.h"
#include "caresignal/ids.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CS_RULES_NAME_MAX 64

/**
 * Where a canonical enum comes from: a constant, or a partner enum field and a
 * table partner symbol -> canonical index.
 */
typedef struct cs_rules_enum_map {
    char field[CS_RULES_NAME_MAX]; /**< "" = the constant */
    int constant;                  /**< canonical index when field is "" */
    json_t *table; /**< partner symbol -> json_integer(canonical index); owned */
} cs_rules_enum_map_t;

/** How one partner's records map to canonical events (rules "mapping.<SOURCE>"). */
typedef struct cs_rules_source {
    int present;
    char schema[128]; /**< registry subject of the partner schema */
    char event_ref_field[CS_RULES_NAME_MAX];
    char org_field[CS_RULES_NAME_MAX];
    cs_id_kind_t org_format;
    char subject_field[CS_RULES_NAME_MAX];
    cs_subject_kind_t subject_kind;
    char occurred_field[CS_RULES_NAME_MAX]; /**< timestamp-millis, or a date string */
    char named_locations_field[CS_RULES_NAME_MAX]; /**< "" = none; else one extra
                                                      LOCATION event per named location */
    cs_rules_enum_map_t signal;
    cs_rules_enum_map_t severity;
} cs_rules_source_t;

/** One immediate rule: an event matches if it matches every non-empty set. */
typedef struct cs_rules_immediate {
    uint32_t signals;    /**< bit per cs_signal_t; 0 = any */
    uint32_t severities; /**< bit per cs_severity_t; 0 = any */
    uint32_t areas;      /**< bit per cs_area_t; 0 = any */
} cs_rules_immediate_t;

/** Hysteresis thresholds of one subject kind. */
typedef struct cs_rules_levels {
    double watch_raise, watch_clear, inspect_raise, inspect_clear;
} cs_rules_levels_t;

#define CS_RULES_IMMEDIATE_MAX 16

/** The whole rules file. Owned by cs_rules_load's caller; free with cs_rules_destroy. */
typedef struct cs_rules {
    char version[CS_RULES_NAME_MAX];
    char digest[17]; /**< first 16 hex digits of SHA-256 of the file: names the Redis
                        library built from these rules */

    /* mapping (docs/contract/canonical-event.md) */
    cs_rules_source_t sources[CS_SOURCE_COUNT];
    cs_area_t area_of_signal[CS_SIGNAL_COUNT];
    int64_t future_tolerance_ms; /**< TIME_RANGE: occurred_at after raw ts + this */
    int64_t past_horizon_ms;     /**< TIME_RANGE: occurred_at before raw ts - this */
    int date_future_days; /**< TIME_RANGE for dates: date after raw UTC date + this */

    /* risk model (docs/contract/risk-model.md) */
    double half_life_ms;
    double base[CS_SIGNAL_COUNT];
    double multiplier[CS_SEVERITY_COUNT];
    int assurance[CS_SIGNAL_COUNT]; /**< counted as assurance */
    cs_rules_levels_t levels[CS_SUBJECT_COUNT];
    cs_rules_immediate_t immediate[CS_RULES_IMMEDIATE_MAX];
    int immediate_count;
    int64_t hold_ms;    /**< an immediate INSPECT holds while as_of - its time < this */
    int64_t window_ms;  /**< the rolling event list keeps occurred_at >= as_of - this */
    int events_max;     /**< ... and at most this many events */
    int recent_max;     /**< events carried in an alert's "recent" */
    int64_t seen_ttl_s; /**< expiry of a per-month seen set after its last write */
} cs_rules_t;

/**
 * Loads and validates a rules file. Every problem stops the program: @returns NULL
 * with \p errstr as "rules file '<path>': <JSON path>: <what>", e.g.
 * "rules file 'r.json': $.risk.levels.LOCATION.watch.clear: must be below raise (40)".
 */
cs_rules_t *cs_rules_load(const char *path, char *errstr, size_t errstr_size);

/** Same, from text already in memory (\p name is used in messages). */
cs_rules_t *cs_rules_parse(const char *text, size_t len, const char *name, char *errstr,
                           size_t errstr_size);

void cs_rules_destroy(cs_rules_t *rules);

/** @returns w = base[signal] x multiplier[severity] (docs/contract/risk-model.md). */
double cs_rules_weight(const cs_rules_t *rules, cs_signal_t signal,
                       cs_severity_t severity);

/** @returns non-zero if an event with these attributes fires an immediate rule. */
int cs_rules_is_immediate(const cs_rules_t *rules, cs_signal_t signal,
                          cs_severity_t severity, cs_area_t area);

#ifdef __cplusplus
}
#endif
#endif
