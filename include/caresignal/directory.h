/* caresignal location directory: the regulator's care directory as CSV (docs/contract/canonical-event.md). */
#ifndef CARESIGNAL_DIRECTORY_H
#define CARESIGNAL_DIRECTORY_H

#include <stddef.h>

#include "caresignal/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/** One location. Strings are owned by the directory. */
typedef struct cs_location {
    const char *location_id;
    const char *provider_id;
    const char *name; /**< public name of the service (not personal data) */
    const char *local_authority_code;
    const char *region;
    const char *service_type;
} cs_location_t;

typedef struct cs_directory cs_directory_t;

/**
 * Loads a CSV file with the header
 * `location_id,provider_id,name,local_authority_code,region,service_type`
 * (RFC 4180 quoting; CRLF or LF). Every row is validated — location id and local
 * authority code formats (docs/contract/formats.md), a region of letters, spaces and
 * "-&',." — and ids must be unique; one bad row rejects the file, so a directory is
 * never half-loaded. @returns NULL with \p errstr ("directory file 'x' line 7: ...").
 */
cs_directory_t *cs_directory_load(const char *path, char *errstr, size_t errstr_size);

/** Frees the directory; pointers it returned become invalid. NULL is a no-op. */
void cs_directory_destroy(cs_directory_t *dir);

/** @returns the location with id (\p id, \p len), or NULL. Borrowed. */
const cs_location_t *cs_directory_find(const cs_directory_t *dir, const char *id,
                                       size_t len);

/** @returns the region of some location in local area \p la_code, or NULL. Borrowed. */
const char *cs_directory_area_region(const cs_directory_t *dir, const char *la_code,
                                     size_t len);

/** @returns the number of locations. */
size_t cs_directory_count(const cs_directory_t *dir);

/** @returns location \p i (0 <= i < count) in file order, or NULL. Borrowed. */
const cs_location_t *cs_directory_at(const cs_directory_t *dir, size_t i);

#ifdef __cplusplus
}
#endif
#endif
