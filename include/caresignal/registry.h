/* caresignal schema registry: Avro schemas by id (docs/contract/formats.md), loaded once at start-up.
 */
#ifndef CARESIGNAL_REGISTRY_H
#define CARESIGNAL_REGISTRY_H

#include <avro.h>
#include <jansson.h>
#include <stddef.h>

#include "caresignal/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * One registered schema. avro-c's parsed form is kept for encoding and decoding;
 * the same text parsed by jansson is kept alongside because avro-c drops what we
 * need from it (field defaults, logicalType, custom attributes such as "format").
 * Everything here is owned by the registry and valid until cs_registry_destroy.
 */
typedef struct cs_schema {
    int id;
    const char *subject; /**< record full name, e.g. "nhse.Incident" */
    int version;
    const char *file;          /**< path as loaded */
    avro_schema_t avro;        /**< avro-c's schema */
    json_t *json;              /**< the .avsc text parsed by jansson */
    avro_value_iface_t *iface; /**< generic value class of `avro` */
    json_t *named;             /**< full name -> jansson definition of each named type */
} cs_schema_t;

typedef struct cs_registry cs_registry_t;

/**
 * Loads a registry file: {"schemas":[{"id","subject","version","file"}...]} with
 * files relative to the registry file's directory. Every schema is parsed by
 * avro-c and by jansson. Ids must be unique and positive; versions of a subject
 * unique. A broken file stops the program: @returns NULL with \p errstr naming the
 * file and the problem ("schema file 'x.avsc': ...").
 *
 * The lookup interface (cs_registry_get) is by id only, so a Confluent-compatible
 * registry can replace the file later without callers noticing.
 */
cs_registry_t *cs_registry_load(const char *path, char *errstr, size_t errstr_size);

/** Frees the registry and every schema. NULL is a no-op. */
void cs_registry_destroy(cs_registry_t *reg);

/** @returns the schema with \p id, or NULL. Borrowed. */
const cs_schema_t *cs_registry_get(const cs_registry_t *reg, int id);

/** @returns the highest version registered for \p subject, or NULL. Borrowed. */
const cs_schema_t *cs_registry_latest(const cs_registry_t *reg, const char *subject);

/** @returns the number of schemas; cs_registry_at() iterates them in file order. */
size_t cs_registry_count(const cs_registry_t *reg);
const cs_schema_t *cs_registry_at(const cs_registry_t *reg, size_t i);

/**
 * @returns the jansson description of field \p name of record schema \p s
 * ({"name":..,"type":..,"default":..}), or NULL. Borrowed from \p s.
 */
json_t *cs_schema_field_json(const cs_schema_t *s, const char *name);

#ifdef __cplusplus
}
#endif
#endif
