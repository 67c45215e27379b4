/* caresignal identifiers: the formats of docs/contract/formats.md, which also keep Kafka and Redis
 * keys free of injected characters. */
#ifndef CARESIGNAL_IDS_H
#define CARESIGNAL_IDS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cs_id_kind {
    CS_ID_LOCATION,  /**< ^1-[0-9]{9,11}$ or an NHS trust site ^[A-Z0-9]{5}$ */
    CS_ID_ODS,       /**< ^[A-Z0-9]{3,6}$ */
    CS_ID_GSS,       /**< ^E(0[6-9]|10)[0-9]{6}$ (a local authority) */
    CS_ID_EVENT_REF, /**< ^[A-Za-z0-9._/-]{1,64}$ (no ':' or '#') */
    CS_ID_KIND_COUNT
} cs_id_kind_t;

/** Names used in the rules file: "location", "ods", "gss", "event_ref". */
extern const char *const cs_id_kind_names[CS_ID_KIND_COUNT];

/** @returns non-zero if the \p len bytes at \p s are a valid identifier of \p kind. */
int cs_id_valid(cs_id_kind_t kind, const char *s, size_t len);

#ifdef __cplusplus
}
#endif
#endif
