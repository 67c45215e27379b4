/* caresignal Avro codec: wire format, the hostile-bytes check, budgeted decoding,
 * encoding. */
#include "caresignal/codec.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ wire format */

cs_err_t cs_wire_parse(const void *buf, size_t len, int32_t *schema_id,
                       const void **payload, size_t *payload_len)
{
    const uint8_t *b = buf;
    if (len < CS_WIRE_HEADER_SIZE || b[0] != CS_WIRE_MAGIC)
        return CS_ERR_AVRO_DECODE;
    *schema_id = (int32_t)(((uint32_t)b[1] << 24) | ((uint32_t)b[2] << 16) |
                           ((uint32_t)b[3] << 8) | (uint32_t)b[4]);
    *payload = b + CS_WIRE_HEADER_SIZE;
    *payload_len = len - CS_WIRE_HEADER_SIZE;
    return CS_OK;
}

void cs_wire_header(uint8_t out[CS_WIRE_HEADER_SIZE], int32_t schema_id)
{
    uint32_t id = (uint32_t)schema_id;
    out[0] = CS_WIRE_MAGIC;
    out[1] = (uint8_t)(id >> 24);
    out[2] = (uint8_t)(id >> 16);
    out[3] = (uint8_t)(id >> 8);
    out[4] = (uint8_t)id;
}

/* ------------------------------------------------------------------ the check */

/*
 * A walk of the writer schema over the bytes that mirrors avro-c's binary decoder
 * (encoding_binary.c, value-read.c) but trusts nothing: it is the only thing that
 * touches untrusted bytes before avro-c does.
 */
typedef struct cs_check {
    const uint8_t *p, *end;
    size_t elements_left; /* array/map elements the whole datum may still have */
    size_t cost;          /* upper bound of what avro-c allocates to decode it */
    size_t cost_limit;
    cs_error_t *err;
} cs_check_t;

#define CS_CHECK_MAX_DEPTH 32

/*
 * The allocation budget of one decode (cs_decoder_read), and the part of it the data
 * may use; the rest covers what resetting the destination value allocates. avro-c
 * 1.11.1 does not survive a refused allocation in the middle of a decode (a failed
 * array append leaves its element count behind, a failed map insert dereferences
 * NULL), so the budget must never refuse anything the check let through: the check
 * itself bounds the cost, and the budget is only the last line of defence.
 */
#define CS_DECODE_BUDGET(len)      (16 * (size_t)(len) + 65536)
#define CS_DECODE_DATA_BUDGET(len) (16 * (size_t)(len) + 32768)
#define CS_COST_HUGE               ((size_t)1 << 48)

static size_t cs_cost_add(size_t a, size_t b)
{
    return a + b < CS_COST_HUGE ? a + b : CS_COST_HUGE;
}

static cs_err_t cs_check_fail(cs_check_t *c, const char *what)
{
    return cs_error_set(c->err, CS_ERR_AVRO_DECODE, NULL, "invalid Avro binary: %s",
                        what);
}

/* Zig-zag varint, at most 10 bytes, as avro-c's read_long. */
static cs_err_t cs_check_long(cs_check_t *c, int64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (c->p >= c->end)
            return cs_check_fail(c, "truncated varint");
        uint8_t b = *c->p++;
        if (shift == 63 && (b & 0x7e))
            return cs_check_fail(c, "varint overflows 64 bits");
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = (int64_t)((v >> 1) ^ (~(v & 1) + 1));
            return CS_OK;
        }
    }
    return cs_check_fail(c, "varint longer than 10 bytes");
}

static cs_err_t cs_check_skip(cs_check_t *c, int64_t n, const char *what)
{
    if (n < 0)
        return cs_check_fail(c, what);
    if ((uint64_t)n > (uint64_t)(c->end - c->p))
        return cs_check_fail(c, what);
    c->p += n;
    return CS_OK;
}

/*
 * Upper bounds of avro-c 1.11.1's generic values (generic.c, array.c, map.c, st.c):
 * the size a value takes inline in its parent, and what initialising one allocates
 * (a map's hash table, a link's target). Both only depend on the schema; \p depth is
 * the depth of this walk of the schema (not of the data), which stops recursive types.
 */
static size_t cs_inline_size(avro_schema_t s, int depth)
{
    if (depth > CS_CHECK_MAX_DEPTH)
        return CS_COST_HUGE;
    size_t n = 0;
    switch (avro_typeof(s)) {
    case AVRO_STRING:
    case AVRO_BYTES:
        return 48; /* avro_raw_string_t */
    case AVRO_FIXED:
        return cs_cost_add((size_t)avro_schema_fixed_size(s), 8);
    case AVRO_ARRAY:
        return 32; /* avro_raw_array_t */
    case AVRO_MAP:
        return 40; /* avro_raw_map_t */
    case AVRO_LINK:
        return 16; /* avro_value_t */
    case AVRO_RECORD:
        for (size_t i = 0; i < avro_schema_record_size(s); i++)
            n = cs_cost_add(
                n, cs_inline_size(avro_schema_record_field_get_by_index(s, (int)i),
                                  depth + 1));
        return n;
    case AVRO_UNION:
        for (size_t i = 0; i < avro_schema_union_size(s); i++) {
            size_t b = cs_inline_size(avro_schema_union_branch(s, (int)i), depth + 1);
            n = b > n ? b : n;
        }
        return cs_cost_add(n, 8);
    default:
        return 8;
    }
}

static size_t cs_init_cost(avro_schema_t s, int depth)
{
    if (depth > CS_CHECK_MAX_DEPTH)
        return CS_COST_HUGE;
    size_t n = 0;
    switch (avro_typeof(s)) {
    case AVRO_MAP:
        return 128; /* st_init_strtable: the table and 11 bins */
    case AVRO_LINK:
        return cs_cost_add(cs_inline_size(avro_schema_link_target(s), depth + 1),
                           cs_init_cost(avro_schema_link_target(s), depth + 1));
    case AVRO_RECORD:
        for (size_t i = 0; i < avro_schema_record_size(s); i++)
            n = cs_cost_add(n,
                            cs_init_cost(avro_schema_record_field_get_by_index(s, (int)i),
                                         depth + 1));
        return n;
    default:
        return 0; /* a union selects (and initialises) a branch only when read */
    }
}

static cs_err_t cs_check_charge(cs_check_t *c, size_t bytes)
{
    c->cost = cs_cost_add(c->cost, bytes);
    if (c->cost > c->cost_limit)
        return cs_check_fail(c, "decoding it would allocate more than its budget");
    return CS_OK;
}

static cs_err_t cs_check_datum(cs_check_t *c, avro_schema_t s, int depth);

/* Arrays and maps: blocks of count (negative: followed by a byte size), ended by 0. */
static cs_err_t cs_check_blocks(cs_check_t *c, avro_schema_t items, int is_map, int depth)
{
    /* per element: its slot in the array (which grows by doubling from 10 slots, so
     * at most 10 + 2n slots), its initialisation, and for a map entry the key (read,
     * then copied with a size header), the hash table entry and its share of the bins */
    size_t slot = cs_cost_add(cs_inline_size(items, 0), is_map ? 8 : 0);
    size_t per_element = cs_cost_add(2 * slot, cs_init_cost(items, 0));
    if (is_map)
        per_element = cs_cost_add(per_element, 64);
    int first = 1;
    for (;;) {
        int64_t count;
        cs_err_t err = cs_check_long(c, &count);
        if (err)
            return err;
        if (count == 0)
            return CS_OK;
        if (count < 0) {
            if (count == INT64_MIN)
                return cs_check_fail(c, "block count out of range");
            count = -count;
            int64_t size;
            if ((err = cs_check_long(c, &size)))
                return err;
            if (size < 0)
                return cs_check_fail(c, "negative block size");
        }
        if ((uint64_t)count > c->elements_left)
            return cs_check_fail(c, "more array/map elements than the message can hold");
        c->elements_left -= (size_t)count;
        if (first && (err = cs_check_charge(c, 10 * slot)))
            return err;
        first = 0;
        for (int64_t i = 0; i < count; i++) {
            if ((err = cs_check_charge(c, per_element)))
                return err;
            if (is_map) {
                int64_t klen;
                if ((err = cs_check_long(c, &klen)) ||
                    (err = cs_check_skip(c, klen, "map key length out of range")) ||
                    (err = cs_check_charge(c, 2 * (size_t)klen)))
                    return err;
            }
            if ((err = cs_check_datum(c, items, depth + 1)))
                return err;
        }
    }
}

static cs_err_t cs_check_datum(cs_check_t *c, avro_schema_t s, int depth)
{
    if (depth > CS_CHECK_MAX_DEPTH)
        return cs_check_fail(c, "nested too deeply");
    int64_t v;
    cs_err_t err;
    switch (avro_typeof(s)) {
    case AVRO_NULL:
        return CS_OK;
    case AVRO_BOOLEAN:
        if (c->p >= c->end)
            return cs_check_fail(c, "truncated boolean");
        if (*c->p > 1)
            return cs_check_fail(c, "boolean is neither 0 nor 1");
        c->p++;
        return CS_OK;
    case AVRO_INT32:
        if ((err = cs_check_long(c, &v)))
            return err;
        if (v < INT32_MIN || v > INT32_MAX)
            return cs_check_fail(c, "int out of range");
        return CS_OK;
    case AVRO_INT64:
        return cs_check_long(c, &v);
    case AVRO_FLOAT:
        return cs_check_skip(c, 4, "truncated float");
    case AVRO_DOUBLE:
        return cs_check_skip(c, 8, "truncated double");
    case AVRO_STRING:
    case AVRO_BYTES:
        /* the text plus its NUL, and the wrapper avro-c gives it to the value in */
        if ((err = cs_check_long(c, &v)) ||
            (err = cs_check_skip(c, v, "string/bytes length out of range")))
            return err;
        return cs_check_charge(c, (size_t)v + 32);
    case AVRO_FIXED:
        if ((err = cs_check_skip(c, avro_schema_fixed_size(s), "truncated fixed")))
            return err;
        return cs_check_charge(c, (size_t)avro_schema_fixed_size(s) + 32);
    case AVRO_ENUM:
        if ((err = cs_check_long(c, &v)))
            return err;
        if (v < 0 || v >= avro_schema_enum_number_of_symbols(s))
            return cs_check_fail(c, "enum index out of range");
        return CS_OK;
    case AVRO_UNION:
        if ((err = cs_check_long(c, &v)))
            return err;
        if (v < 0 || (uint64_t)v >= avro_schema_union_size(s))
            return cs_check_fail(c, "union branch out of range");
        if ((err = cs_check_charge(c,
                                   cs_init_cost(avro_schema_union_branch(s, (int)v), 0))))
            return err;
        return cs_check_datum(c, avro_schema_union_branch(s, (int)v), depth + 1);
    case AVRO_RECORD: {
        size_t n = avro_schema_record_size(s);
        for (size_t i = 0; i < n; i++)
            if ((err = cs_check_datum(c, avro_schema_record_field_get_by_index(s, (int)i),
                                      depth + 1)))
                return err;
        return CS_OK;
    }
    case AVRO_ARRAY:
        return cs_check_blocks(c, avro_schema_array_items(s), 0, depth);
    case AVRO_MAP:
        return cs_check_blocks(c, avro_schema_map_values(s), 1, depth);
    case AVRO_LINK:
        return cs_check_datum(c, avro_schema_link_target(s), depth + 1);
    }
    return cs_check_fail(c, "unsupported schema type");
}

cs_err_t cs_avro_check(avro_schema_t writer, const void *buf, size_t len, cs_error_t *err)
{
    cs_check_t c = {.p = buf,
                    .end = (const uint8_t *)buf + len,
                    .elements_left = len + 64,
                    .cost_limit = CS_DECODE_DATA_BUDGET(len),
                    .err = err};
    cs_err_t e = cs_check_datum(&c, writer, 0);
    if (e)
        return e;
    if (c.p != c.end)
        return cs_check_fail(&c, "bytes left over after the record");
    return CS_OK;
}

/* ------------------------------------------------------------------ allocation budget */

/*
 * avro-c allocates through one global allocator. While a decode runs on this thread
 * the allocator charges every growth to a budget and refuses what exceeds it, so even
 * a decode the check above failed to bound cannot take the process's memory.
 */
static _Thread_local int cs_budget_active;
static _Thread_local size_t cs_budget_left;
static atomic_long cs_budget_refused;
static pthread_once_t cs_alloc_once = PTHREAD_ONCE_INIT;

static void *cs_avro_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    if (cs_budget_active && nsize > osize) {
        size_t grow = nsize - osize;
        if (grow > cs_budget_left) {
            atomic_fetch_add(&cs_budget_refused, 1);
            return NULL;
        }
        cs_budget_left -= grow;
    }
    return realloc(ptr, nsize);
}

static void cs_avro_alloc_init(void)
{
    avro_set_allocator(cs_avro_alloc, NULL);
}

void cs_avro_allocator_install(void)
{
    pthread_once(&cs_alloc_once, cs_avro_alloc_init);
}

long cs_avro_budget_refusals(void)
{
    return atomic_load(&cs_budget_refused);
}

/* ------------------------------------------------------------------ decoder */

struct cs_decoder {
    avro_reader_t reader;
};

cs_decoder_t *cs_decoder_new(void)
{
    cs_avro_allocator_install();
    cs_decoder_t *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    static const char empty[1];
    d->reader = avro_reader_memory(empty, 0);
    if (!d->reader) {
        free(d);
        return NULL;
    }
    return d;
}

void cs_decoder_destroy(cs_decoder_t *d)
{
    if (!d)
        return;
    avro_reader_free(d->reader);
    free(d);
}

cs_err_t cs_decoder_read(cs_decoder_t *d, avro_schema_t writer, const void *buf,
                         size_t len, avro_value_t *dest, cs_error_t *err)
{
    cs_err_t e = cs_avro_check(writer, buf, len, err);
    if (e)
        return e;
    avro_reader_memory_set_source(d->reader, buf, (int64_t)len);
    cs_budget_left = CS_DECODE_BUDGET(len);
    cs_budget_active = 1;
    int rc = avro_value_read(d->reader, dest);
    cs_budget_active = 0;
    if (rc) {
        /* Not reachable for input that passed the check, short of the budget. */
        avro_value_reset(dest);
        return cs_error_set(err, CS_ERR_AVRO_DECODE, NULL, "Avro decode failed (%s)",
                            rc == ENOMEM ? "allocation budget exceeded" : "malformed");
    }
    return CS_OK;
}

/* ------------------------------------------------------------------ encoder */

struct cs_encoder {
    uint8_t *buf;
    size_t cap;
    avro_writer_t writer;
};

cs_encoder_t *cs_encoder_new(void)
{
    cs_avro_allocator_install();
    cs_encoder_t *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->cap = 1024;
    e->buf = malloc(e->cap);
    e->writer = e->buf ? avro_writer_memory((const char *)e->buf, (int64_t)e->cap) : NULL;
    if (!e->writer) {
        free(e->buf);
        free(e);
        return NULL;
    }
    return e;
}

void cs_encoder_destroy(cs_encoder_t *e)
{
    if (!e)
        return;
    avro_writer_free(e->writer);
    free(e->buf);
    free(e);
}

cs_err_t cs_encoder_write(cs_encoder_t *e, int32_t schema_id, avro_value_t *value,
                          const uint8_t **out, size_t *out_len)
{
    for (;;) {
        cs_wire_header(e->buf, schema_id);
        avro_writer_memory_set_dest(e->writer, (const char *)e->buf + CS_WIRE_HEADER_SIZE,
                                    (int64_t)(e->cap - CS_WIRE_HEADER_SIZE));
        int rc = avro_value_write(e->writer, value);
        if (!rc) {
            *out = e->buf;
            *out_len = CS_WIRE_HEADER_SIZE + (size_t)avro_writer_tell(e->writer);
            return CS_OK;
        }
        if (rc != ENOSPC)
            return CS_ERR_FATAL;
        if (e->cap >= (64u << 20))
            return CS_ERR_NOMEM;
        uint8_t *grown = realloc(e->buf, e->cap * 2);
        if (!grown)
            return CS_ERR_NOMEM;
        e->buf = grown;
        e->cap *= 2;
    }
}
