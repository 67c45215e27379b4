/* caresignal canonical model: the IntelEvent and its enums (docs/contract/reason-codes.md), encode/decode. */
#ifndef CARESIGNAL_EVENT_H
#define CARESIGNAL_EVENT_H

#include <stdint.h>

#include "caresignal/error.h"
#include "caresignal/registry.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The C enums follow the symbol order of schemas/caresignal.IntelEvent.v1.avsc
 * exactly (Avro enums are encoded by index). cs_event_model_check() verifies it at
 * start-up, so the schema and the code cannot drift apart silently. No code branches
 * on a particular signal: weights, areas and mappings are data (the rules file).
 */
typedef enum cs_source {
    CS_SOURCE_NHSE,
    CS_SOURCE_CCG,
    CS_SOURCE_OFSTED_SEND,
    CS_SOURCE_COUNT
} cs_source_t;
typedef enum cs_subject_kind {
    CS_SUBJECT_LOCATION,
    CS_SUBJECT_LOCAL_AREA,
    CS_SUBJECT_COUNT
} cs_subject_kind_t;
typedef enum cs_signal {
    CS_SIGNAL_SERIOUS_INCIDENT,
    CS_SIGNAL_NEVER_EVENT,
    CS_SIGNAL_OUTBREAK,
    CS_SIGNAL_VACCINATION_INCIDENT,
    CS_SIGNAL_WORKFORCE_SHORTFALL,
    CS_SIGNAL_DNACPR_CONCERN,
    CS_SIGNAL_IPC_CONCERN,
    CS_SIGNAL_COMPLAINT,
    CS_SIGNAL_SAFEGUARDING,
    CS_SIGNAL_WHISTLEBLOWING,
    CS_SIGNAL_QUALITY_CONCERN,
    CS_SIGNAL_CONTRACT_BREACH,
    CS_SIGNAL_POSITIVE_FEEDBACK,
    CS_SIGNAL_SEND_OUTCOME,
    CS_SIGNAL_COUNT
} cs_signal_t;
typedef enum cs_area {
    CS_AREA_SAFE_CARE,
    CS_AREA_STAFFING,
    CS_AREA_PROTECTION_FROM_ABUSE,
    CS_AREA_ASSURANCE,
    CS_AREA_COUNT
} cs_area_t;
typedef enum cs_severity {
    CS_SEVERITY_INFO,
    CS_SEVERITY_LOW,
    CS_SEVERITY_MEDIUM,
    CS_SEVERITY_HIGH,
    CS_SEVERITY_CRITICAL,
    CS_SEVERITY_COUNT
} cs_severity_t;

/** Symbol names, indexed by the enums above. Static. */
extern const char *const cs_source_names[CS_SOURCE_COUNT];
extern const char *const cs_subject_kind_names[CS_SUBJECT_COUNT];
extern const char *const cs_signal_names[CS_SIGNAL_COUNT];
extern const char *const cs_area_names[CS_AREA_COUNT];
extern const char *const cs_severity_names[CS_SEVERITY_COUNT];

/** @returns the index of \p name in \p names (\p n entries), or -1. */
int cs_enum_index(const char *const *names, int n, const char *name);

#define CS_ID_MAX          64 /* identifiers (docs/contract/formats.md) are at most 64 characters */
#define CS_EVENT_KEY_MAX   200
#define CS_SUBJECT_KEY_MAX 96
#define CS_TOPIC_MAX       250

/** A canonical event (docs/contract/canonical-event.md). Plain data, no pointers: copy freely. */
typedef struct cs_intel_event {
    char event_key[CS_EVENT_KEY_MAX];
    cs_source_t source;
    char source_org[CS_ID_MAX + 1];
    cs_subject_kind_t subject_kind;
    char subject_id[CS_ID_MAX + 1];
    cs_signal_t signal;
    cs_area_t area;
    cs_severity_t severity;
    int64_t occurred_at; /**< epoch ms */
    int64_t received_at; /**< epoch ms: Kafka timestamp of the raw message */
    char origin_topic[CS_TOPIC_MAX + 1];
    int32_t origin_partition;
    int64_t origin_offset;
    int32_t origin_schema_id; /**< -1 for JSON */
    char region[CS_ID_MAX + 1];
    char local_authority_code[CS_ID_MAX + 1];
} cs_intel_event_t;

/**
 * Writes "<SUBJECT_KIND>:<subject id>" (the Kafka key and Redis hash tag) into \p out.
 * @returns the length written.
 */
size_t cs_subject_key(cs_subject_kind_t kind, const char *subject_id, char *out,
                      size_t size);

/**
 * Checks that the registry's caresignal.IntelEvent (newest version) has exactly the
 * fields and enum symbols this code was built for.
 * @returns CS_OK or CS_ERR_CONFIG with \p errstr.
 */
cs_err_t cs_event_model_check(const cs_registry_t *reg, char *errstr, size_t errstr_size);

/**
 * Encodes and decodes IntelEvents in the wire format with the registry's newest
 * caresignal.IntelEvent schema (decoding accepts any registered version, fields read
 * by name). Holds reusable buffers: one codec per thread.
 */
typedef struct cs_event_codec cs_event_codec_t;

/** @returns the codec, or NULL with \p errstr (no IntelEvent schema, model mismatch). */
cs_event_codec_t *cs_event_codec_new(const cs_registry_t *reg, char *errstr,
                                     size_t errstr_size);
void cs_event_codec_destroy(cs_event_codec_t *c);

/** @returns CS_OK with \p out (borrowed until the next call on \p c). */
cs_err_t cs_event_encode(cs_event_codec_t *c, const cs_intel_event_t *ev,
                         const uint8_t **out, size_t *out_len);

/**
 * @returns non-zero if \p key is an event key of docs/contract/canonical-event.md's shape:
 * `<SOURCE>:<org>:<partner ref>` with a source name, an ODS or GSS code and an event
 * reference (docs/contract/formats.md), optionally followed by `#<CQC location id>` (an Ofsted
 * outcome's named location). No byte outside those formats can be in one.
 */
int cs_event_key_valid(const char *key);

/**
 * @returns non-zero if \p s is a value the directory may give a region or local
 * authority: 1 to 64 printable ASCII characters (spaces allowed, nothing else).
 */
int cs_event_label_valid(const char *s);

/**
 * Checks the identifiers of a decoded event (docs/contract/formats.md) before it reaches a Redis
 * key, a Lua reply or an alert: intel.events is a topic anyone with write access can
 * fill. event_key (its source and org matching source and source_org), source_org,
 * subject_id by subject kind, local_authority_code (GSS or UNKNOWN), region.
 * @returns CS_OK or CS_ERR_ID_FORMAT with \p err's field naming the field.
 */
cs_err_t cs_event_validate(const cs_intel_event_t *ev, cs_error_t *err);

/**
 * Decodes a wire-format IntelEvent (checked against hostile bytes first).
 * @returns CS_OK, CS_ERR_SCHEMA_UNKNOWN (an id that is not an IntelEvent) or
 *          CS_ERR_AVRO_DECODE, with \p err.
 */
cs_err_t cs_event_decode(cs_event_codec_t *c, const void *buf, size_t len,
                         cs_intel_event_t *out, cs_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
