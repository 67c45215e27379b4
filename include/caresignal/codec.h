/* caresignal Avro codec: Confluent wire format, a guard against hostile bytes, and
 * reusable encoders/decoders over avro-c generic values (docs/contract/formats.md). */
#ifndef CARESIGNAL_CODEC_H
#define CARESIGNAL_CODEC_H

#include <avro.h>
#include <stddef.h>
#include <stdint.h>

#include "caresignal/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Wire format: byte 0 = 0x00, bytes 1-4 = schema id (big-endian int32), then one
 * Avro binary datum of that schema.
 */
#define CS_WIRE_MAGIC       0x00
#define CS_WIRE_HEADER_SIZE 5

/**
 * Splits a wire-format message. \p payload points into \p buf (borrowed).
 * @returns CS_OK, or CS_ERR_AVRO_DECODE if it is shorter than the header or the magic
 *          byte is not 0x00.
 */
cs_err_t cs_wire_parse(const void *buf, size_t len, int32_t *schema_id,
                       const void **payload, size_t *payload_len);

/** Writes the 5-byte header for \p schema_id into \p out. */
void cs_wire_header(uint8_t out[CS_WIRE_HEADER_SIZE], int32_t schema_id);

/**
 * Checks that \p buf is exactly one well-formed datum of \p writer, without
 * allocating: every varint at most 10 bytes; every string/bytes length non-negative
 * and within the bytes left; ints within int32; booleans 0 or 1; enum and union
 * indexes in range; array/map block counts sane and element totals bounded by the
 * input size; nesting at most 32 deep; no bytes left over.
 *
 * avro-c 1.11.1 trusts length prefixes (a crafted length asks for a huge allocation,
 * a negative one writes before its buffer) and leaks on some failed decodes, so no
 * untrusted byte reaches avro_value_read() before this check passed.
 * @returns CS_OK or CS_ERR_AVRO_DECODE with \p err's msg saying what is wrong
 *          (never any of the data).
 */
cs_err_t cs_avro_check(avro_schema_t writer, const void *buf, size_t len,
                       cs_error_t *err);

/**
 * Installs avro-c's allocator with a per-thread budget: while a decode is in
 * progress (cs_decoder_read), allocations beyond the budget fail instead of
 * growing without bound. Idempotent; call once at start-up before any avro-c use.
 */
void cs_avro_allocator_install(void);

/** @returns how many allocations the budget refused so far (all threads). */
long cs_avro_budget_refusals(void);

/** A reusable decoder (one avro-c reader). Not thread-safe: one per thread. */
typedef struct cs_decoder cs_decoder_t;

cs_decoder_t *cs_decoder_new(void);
void cs_decoder_destroy(cs_decoder_t *d);

/**
 * Checks \p buf with cs_avro_check, then decodes it into \p dest, a generic value of
 * \p writer (reset first), with an allocation budget of 16 x len + 64 KiB.
 * @returns CS_OK or CS_ERR_AVRO_DECODE (with \p err).
 */
cs_err_t cs_decoder_read(cs_decoder_t *d, avro_schema_t writer, const void *buf,
                         size_t len, avro_value_t *dest, cs_error_t *err);

/** A reusable encoder: one growing output buffer. Not thread-safe. */
typedef struct cs_encoder cs_encoder_t;

cs_encoder_t *cs_encoder_new(void);
void cs_encoder_destroy(cs_encoder_t *e);

/**
 * Encodes \p value in the wire format with \p schema_id.
 * @returns CS_OK with \p out (borrowed, valid until the next call on \p e) and
 *          \p out_len, or CS_ERR_NOMEM / CS_ERR_FATAL (avro-c refused the value).
 */
cs_err_t cs_encoder_write(cs_encoder_t *e, int32_t schema_id, avro_value_t *value,
                          const uint8_t **out, size_t *out_len);

#ifdef __cplusplus
}
#endif
#endif
