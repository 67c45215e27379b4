/* caresignal JSON to Avro: one schema-guided converter for every partner schema
 * (docs/contract/formats.md). */
#ifndef CARESIGNAL_CONVERT_H
#define CARESIGNAL_CONVERT_H

#include <avro.h>
#include <jansson.h>

#include "caresignal/error.h"
#include "caresignal/registry.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * A converter compiled once from a schema: it walks the schema and the JSON together
 * (records, enums, unions including nullable, arrays, maps, strings, ints, longs,
 * floats, doubles, booleans, bytes, fixed; `timestamp-millis` longs from ISO-8601 with
 * an offset or epoch ms; strings with "format": "date" must be YYYY-MM-DD).
 *
 * Rules (docs/contract/formats.md): fields are checked in schema order and the first failure is the
 * error; unknown JSON fields are ignored; a missing field with a default takes the
 * default; a missing field without one is FIELD_MISSING; null in a non-nullable
 * field, or a value of the wrong JSON type, is FIELD_TYPE; an enum symbol not in the
 * schema (case-sensitive) is ENUM_UNKNOWN; a nullable field takes the plain value.
 * Errors name the field path ("named_location_ids[2]"), never its value.
 */
typedef struct cs_converter cs_converter_t;

/**
 * Compiles \p schema (borrowed; must outlive the converter).
 * @returns NULL with \p errstr if the schema uses something the converter cannot
 *          handle (a bad default, an unknown named type).
 */
cs_converter_t *cs_converter_new(const cs_schema_t *schema, char *errstr,
                                 size_t errstr_size);

void cs_converter_destroy(cs_converter_t *c);

/**
 * Converts \p in (borrowed) into \p out, a generic value of the converter's schema
 * (reset first). @returns CS_OK or the reason code with \p err filled.
 */
cs_err_t cs_converter_run(const cs_converter_t *c, const json_t *in, avro_value_t *out,
                          cs_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
