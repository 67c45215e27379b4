/* caresignal publish: the partner's side. Validate events with the normaliser's own code
 * and publish them to the partner's raw topic, JSON or Avro, with delivery reports.
 *
 * A partner system links libcaresignal and uses four calls:
 *
 *     cs_publisher_t *p = cs_publisher_new(&cfg, &opts, errstr, sizeof(errstr));
 *     cs_publisher_send(p, json, len, my_ref, &err);   // once per event; CS_OK = queued
 *     cs_publisher_flush(p, 30000);                    // every report has been made
 *     cs_publisher_destroy(p);
 *
 * See producers/publish/example.c. */
#ifndef CARESIGNAL_PUBLISH_H
#define CARESIGNAL_PUBLISH_H

#include <stddef.h>

#include "caresignal/config.h"
#include "caresignal/error.h"
#include "caresignal/event.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Called once for every event cs_publisher_send queued, from cs_publisher_flush or
 * cs_publisher_poll on the caller's thread: \p err is CS_OK when the broker has the
 * event, else CS_ERR_KAFKA with \p detail (borrowed, valid during the call).
 * \p ref is the caller's reference given to cs_publisher_send.
 */
typedef void(cs_publish_report_cb)(void *opaque, void *ref, cs_err_t err,
                                   const char *detail);

typedef struct cs_publish_options {
    cs_source_t source;    /**< which partner: fixes the schema and the topic */
    int avro;              /**< publish Avro (Confluent wire format, newest schema) */
    int dry_run;           /**< validate only: no broker is contacted */
    const char *key_field; /**< field whose value is the Kafka key; NULL = the subject
                              field of the partner mapping (a location or local area) */
    cs_publish_report_cb *on_report; /**< optional */
    void *opaque;                    /**< passed to on_report */
} cs_publish_options_t;

typedef struct cs_publisher cs_publisher_t;

/**
 * Loads the schema registry and rules named by \p cfg (schema.registry, rules.file) and,
 * unless dry_run, creates an idempotent producer from its kafka.* keys. \p cfg and
 * \p opts are read during the call only.
 * @returns NULL with \p errstr (a configuration error).
 */
cs_publisher_t *cs_publisher_new(const cs_config_t *cfg, const cs_publish_options_t *opts,
                                 char *errstr, size_t errstr_size);

/**
 * Validates one event (a JSON object as the partner schema defines it, docs/contract/formats.md)
 * exactly as caresignal-normalise will — schema, identifiers, time range against now —
 * except for the location directory, which partners do not have. Then queues it:
 * JSON as given, or converted to Avro.
 * @returns CS_OK (queued: a report will follow), a docs/contract/reason-codes.md reason code with \p err
 *          (nothing queued), or CS_ERR_KAFKA (the local queue refused it).
 */
cs_err_t cs_publisher_send(cs_publisher_t *p, const char *json, size_t len, void *ref,
                           cs_error_t *err);

/** Serves delivery reports without waiting. */
void cs_publisher_poll(cs_publisher_t *p);

/**
 * Waits until every queued event has been reported, or \p timeout_ms (-1: no limit).
 * @returns CS_OK if all were delivered, CS_ERR_KAFKA if any failed, CS_ERR_TIMEOUT.
 */
cs_err_t cs_publisher_flush(cs_publisher_t *p, int timeout_ms);

/** @returns the topic events go to (borrowed). */
const char *cs_publisher_topic(const cs_publisher_t *p);

/** Flushes nothing: call cs_publisher_flush first. NULL is a no-op. */
void cs_publisher_destroy(cs_publisher_t *p);

#ifdef __cplusplus
}
#endif
#endif
