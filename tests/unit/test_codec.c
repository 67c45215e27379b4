/* Unit tests of the Avro codec: the wire format, every rejection path of the hostile
 * bytes check, the budgeted decoder (truncation, byte flips, random bytes and the
 * invalid-input corpus in tests/data/codec/invalid/ must neither crash nor leak, which
 * the CS_SANITIZE build proves), and the growing encoder. */
#include "testenv.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caresignal/codec.h"
#include "caresignal/convert.h"
#include "caresignal/registry.h"

#define N(a)   (sizeof(a) / sizeof((a)[0]))
#define CANARY "CANARY-7f3a"

static cs_registry_t *reg;

static int setup(void **state)
{
    (void)state;
    cs_avro_allocator_install();
    char path[512], errstr[512];
    snprintf(path, sizeof(path), "%s/schemas/registry.json", cs_test_source_dir());
    reg = cs_registry_load(path, errstr, sizeof(errstr));
    if (!reg)
        fprintf(stderr, "%s\n", errstr);
    return reg ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    cs_registry_destroy(reg);
    return 0;
}

/* ------------------------------------------------------------------ byte building */

typedef struct bytes {
    uint8_t *b;
    size_t n, cap;
} bytes_t;

static void put_raw(bytes_t *o, const void *p, size_t n)
{
    if (o->n + n > o->cap) {
        o->cap = (o->n + n) * 2 + 64;
        o->b = realloc(o->b, o->cap);
        assert_non_null(o->b);
    }
    if (n)
        memcpy(o->b + o->n, p, n);
    o->n += n;
}

static void put_byte(bytes_t *o, uint8_t b)
{
    put_raw(o, &b, 1);
}

/* Avro long: zig-zag, then a little-endian base-128 varint. */
static void put_long(bytes_t *o, int64_t v)
{
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    while (z >= 0x80) {
        put_byte(o, (uint8_t)(z | 0x80));
        z >>= 7;
    }
    put_byte(o, (uint8_t)z);
}

static void put_str(bytes_t *o, const char *s)
{
    put_long(o, (int64_t)strlen(s));
    put_raw(o, s, strlen(s));
}

static void bytes_free(bytes_t *o)
{
    free(o->b);
    memset(o, 0, sizeof(*o));
}

/* ------------------------------------------------------------------ helpers */

/* A record "t.T" with one field "f" of \p type: its encoding is that of the field. */
static avro_schema_t wrap_schema(const char *type)
{
    char json[4096];
    snprintf(json, sizeof(json),
             "{\"type\":\"record\",\"name\":\"T\",\"namespace\":\"t\",\"fields\":"
             "[{\"name\":\"f\",\"type\":%s}]}",
             type);
    avro_schema_t s = NULL;
    if (avro_schema_from_json_length(json, strlen(json), &s))
        fail_msg("avro-c rejects test schema %s: %s", json, avro_strerror());
    return s;
}

/* Runs \p buf through cs_avro_check and cs_decoder_read (a fresh value of \p s);
 * both must agree. @returns the result, with \p err filled. */
static cs_err_t check_and_decode(avro_schema_t s, const void *buf, size_t len,
                                 cs_error_t *err)
{
    cs_error_t cerr;
    cs_error_clear(&cerr);
    cs_err_t crc = cs_avro_check(s, buf, len, &cerr);
    avro_value_iface_t *iface = avro_generic_class_from_schema(s);
    assert_non_null(iface);
    avro_value_t v;
    assert_int_equal(avro_generic_value_new(iface, &v), 0);
    cs_decoder_t *d = cs_decoder_new();
    assert_non_null(d);
    cs_error_clear(err);
    cs_err_t drc = cs_decoder_read(d, s, buf, len, &v, err);
    if (crc != drc)
        fail_msg("cs_avro_check says %d (%s), cs_decoder_read %d (%s)", crc, cerr.msg,
                 drc, err->msg);
    if (drc == CS_OK) {
        /* what was accepted re-encodes to a datum the check accepts again */
        cs_encoder_t *e = cs_encoder_new();
        const uint8_t *out;
        size_t out_len;
        assert_int_equal(cs_encoder_write(e, 1, &v, &out, &out_len), CS_OK);
        assert_int_equal(cs_avro_check(s, out + CS_WIRE_HEADER_SIZE,
                                       out_len - CS_WIRE_HEADER_SIZE, NULL),
                         CS_OK);
        cs_encoder_destroy(e);
    }
    cs_decoder_destroy(d);
    avro_value_decref(&v);
    avro_value_iface_decref(iface);
    return drc;
}

/* JSON -> value of schema \p id (converter) -> wire format (encoder). @returns the
 * Avro payload without the header in \p out (caller frees). */
static void encode_json(int id, const char *json, bytes_t *out)
{
    const cs_schema_t *s = cs_registry_get(reg, id);
    assert_non_null(s);
    char errstr[256];
    cs_converter_t *conv = cs_converter_new(s, errstr, sizeof(errstr));
    if (!conv)
        fail_msg("converter for schema %d: %s", id, errstr);
    json_error_t jerr;
    json_t *j = json_loads(json, 0, &jerr);
    if (!j)
        fail_msg("test JSON for schema %d: %s", id, jerr.text);
    avro_value_t v;
    assert_int_equal(avro_generic_value_new(s->iface, &v), 0);
    cs_error_t err;
    cs_error_clear(&err);
    if (cs_converter_run(conv, j, &v, &err))
        fail_msg("test JSON for schema %d: %s at %s", id, err.msg, err.field);
    cs_encoder_t *e = cs_encoder_new();
    const uint8_t *wire;
    size_t wire_len;
    assert_int_equal(cs_encoder_write(e, id, &v, &wire, &wire_len), CS_OK);
    int32_t got_id;
    const void *payload;
    size_t payload_len;
    assert_int_equal(cs_wire_parse(wire, wire_len, &got_id, &payload, &payload_len),
                     CS_OK);
    assert_int_equal(got_id, id);
    memset(out, 0, sizeof(*out));
    put_raw(out, payload, payload_len);
    cs_encoder_destroy(e);
    avro_value_decref(&v);
    json_decref(j);
    cs_converter_destroy(conv);
}

static void assert_decode_error(const cs_error_t *err)
{
    assert_int_equal(err->code, CS_ERR_AVRO_DECODE);
    assert_string_equal(err->field, "");
    if (strncmp(err->msg, "invalid Avro binary: ", 21) &&
        strncmp(err->msg, "Avro decode failed", 18))
        fail_msg("unexpected message '%s'", err->msg);
    if (strstr(err->msg, CANARY) || strstr(err->msg, "7f3a"))
        fail_msg("message '%s' quotes the data", err->msg);
}

/* One valid message of each registered schema, with the canary in its free text. */
static const struct sample {
    int id;
    const char *json;
} samples[] = {
    {1, "{\"incident_id\":\"NHSE-2026-000123\",\"reporting_org_ods\":\"RXQ\","
        "\"location_id\":\"1-101669119\",\"category\":\"OUTBREAK\",\"harm\":\"MODERATE\","
        "\"occurred_at\":\"2026-11-20T09:15:00Z\",\"reported_at\":1795166200000,"
        "\"description\":\"" CANARY " ward closed\"}"},
    {2,
     "{\"incident_id\":\"NHSE-2026-000124\",\"reporting_org_ods\":\"RXQ\","
     "\"location_id\":\"RXQ02\",\"category\":\"VACCINATION_INCIDENT\",\"harm\":\"LOW\","
     "\"occurred_at\":-1,\"reported_at\":1795166200000,"
     "\"vaccination_site_code\":\"" CANARY "\"}"},
    {3,
     "{\"concern_ref\":\"C-1\",\"ccg_ods\":\"QE1\",\"location_id\":\"RXQ02\","
     "\"concern_type\":\"WHISTLEBLOWING\",\"rag\":\"RED\",\"received_on\":\"2026-11-19\","
     "\"whistleblower_name\":\"" CANARY "\",\"narrative\":null}"},
    {4, "{\"inspection_ref\":\"SEND-1\",\"local_authority_code\":\"E09000030\","
        "\"outcome\":\"SYSTEMIC_FAILINGS\",\"published_at\":\"2026-11-20T00:00:00Z\","
        "\"named_location_ids\":[\"1-101669119\",\"RXQ02\",\"" CANARY "\"]}"},
    {5,
     "{\"event_key\":\"NHSE:RXQ:" CANARY "\",\"source\":\"NHSE\",\"source_org\":\"RXQ\","
     "\"subject_kind\":\"LOCATION\",\"subject_id\":\"1-101669119\",\"signal\":"
     "\"OUTBREAK\","
     "\"area\":\"SAFE_CARE\",\"severity\":\"MEDIUM\",\"occurred_at\":1795166100000,"
     "\"received_at\":1795166200000,\"origin\":{\"topic\":\"intel.raw.nhse\","
     "\"partition\":3,\"offset\":123456,\"schema_id\":-1},\"region\":\"London\","
     "\"local_authority_code\":\"E09000030\"}"},
    {6,
     "{\"alert_id\":\"0123456789abcdef0123456789abcdef\",\"kind\":\"RAISED\","
     "\"subject_kind\":\"LOCATION\",\"subject_id\":\"1-101669119\",\"level\":\"INSPECT\","
     "\"previous_level\":\"WATCH\",\"score\":12.5,\"area_scores\":{\"SAFE_CARE\":10.0,"
     "\"STAFFING\":2.5},\"as_of\":1795166100000,\"triggered_by\":\"NHSE:RXQ:" CANARY "\","
     "\"reason\":\"THRESHOLD\",\"recent\":[{\"event_key\":\"k1\",\"signal\":\"OUTBREAK\","
     "\"severity\":\"HIGH\",\"occurred_at\":1},{\"event_key\":\"k2\",\"signal\":"
     "\"COMPLAINT\",\"severity\":\"LOW\",\"occurred_at\":2}],\"rules_version\":\"v1\","
     "\"region\":\"London\",\"local_authority_code\":\"E09000030\"}"},
};

/* ------------------------------------------------------------------ wire format */

static void test_wire_parse_rejects_short_and_bad_magic(void **state)
{
    (void)state;
    const uint8_t good[] = {0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x03};
    int32_t id = 99;
    const void *payload = NULL;
    size_t plen = 99;
    for (size_t len = 0; len < CS_WIRE_HEADER_SIZE; len++) {
        uint8_t *copy = malloc(len ? len : 1); /* exact size: ASan catches over-reads */
        memcpy(copy, good, len);
        assert_int_equal(cs_wire_parse(copy, len, &id, &payload, &plen),
                         CS_ERR_AVRO_DECODE);
        free(copy);
    }
    static const uint8_t magics[] = {0x01, 0x7f, 0x80, 0xff, '{'};
    for (size_t i = 0; i < N(magics); i++) {
        uint8_t bad[sizeof(good)];
        memcpy(bad, good, sizeof(good));
        bad[0] = magics[i];
        assert_int_equal(cs_wire_parse(bad, sizeof(bad), &id, &payload, &plen),
                         CS_ERR_AVRO_DECODE);
    }
    /* the header alone is a (possibly empty) payload */
    assert_int_equal(cs_wire_parse(good, 5, &id, &payload, &plen), CS_OK);
    assert_int_equal(id, 1);
    assert_int_equal(plen, 0);
    assert_ptr_equal(payload, good + 5);
    assert_int_equal(cs_wire_parse(good, sizeof(good), &id, &payload, &plen), CS_OK);
    assert_int_equal(plen, 2);
    assert_ptr_equal(payload, good + 5);
}

static void test_wire_header_round_trip(void **state)
{
    (void)state;
    static const struct {
        int32_t id;
        uint8_t bytes[5];
    } cases[] = {
        {0, {0, 0, 0, 0, 0}},
        {1, {0, 0, 0, 0, 1}},
        {255, {0, 0, 0, 0, 0xff}},
        {256, {0, 0, 0, 1, 0}},
        {0x01020304, {0, 1, 2, 3, 4}},
        {0x7fffffff, {0, 0x7f, 0xff, 0xff, 0xff}},
        {-1, {0, 0xff, 0xff, 0xff, 0xff}},
        {INT32_MIN, {0, 0x80, 0, 0, 0}},
    };
    for (size_t i = 0; i < N(cases); i++) {
        uint8_t hdr[CS_WIRE_HEADER_SIZE];
        cs_wire_header(hdr, cases[i].id);
        assert_memory_equal(hdr, cases[i].bytes, CS_WIRE_HEADER_SIZE);
        int32_t id;
        const void *payload;
        size_t plen;
        assert_int_equal(cs_wire_parse(hdr, sizeof(hdr), &id, &payload, &plen), CS_OK);
        assert_int_equal(id, cases[i].id);
        assert_int_equal(plen, 0);
    }
}

/* ------------------------------------------------------------------ the check */

#define B(s) s, sizeof(s) - 1

typedef struct check_case {
    const char *type; /* the Avro type of the one field of the record */
    const char *bytes;
    size_t len;
    const char *expect; /* NULL: valid, else what err.msg must contain */
} check_case_t;

#define T_ENUM  "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"B\",\"C\"]}"
#define T_FIXED "{\"type\":\"fixed\",\"name\":\"F\",\"size\":4}"
#define T_ARRAY "{\"type\":\"array\",\"items\":\"long\"}"
#define T_MAP   "{\"type\":\"map\",\"values\":\"long\"}"
#define T_UNION "[\"null\",\"string\"]"
#define T_RECORD                                                                         \
    "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"int\"}," \
    "{\"name\":\"b\",\"type\":\"string\"}]}"

/* zig-zag varints used below */
#define V_INT64_MIN "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"
#define V_INT64_MAX "\xfe\xff\xff\xff\xff\xff\xff\xff\xff\x01"
#define V_2POW40    "\x80\x80\x80\x80\x80\x40"
#define V_MINUS1    "\x01"

static const check_case_t check_cases[] = {
    /* varints */
    {"\"long\"", B(""), "truncated varint"},
    {"\"long\"", B("\x80"), "truncated varint"},
    {"\"long\"", B("\xff\xff\xff\xff\xff\xff\xff\xff\xff"), "truncated varint"},
    {"\"long\"", B("\x80\x80\x80\x80\x80\x80\x80\x80\x80\x81\x00"),
     "varint longer than 10 bytes"},
    {"\"long\"", B("\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00"),
     "varint longer than 10 bytes"},
    {"\"long\"", B("\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02"),
     "varint overflows 64 bits"},
    {"\"long\"", B("\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f"),
     "varint overflows 64 bits"},
    {"\"long\"", B("\x80\x80\x80\x80\x80\x80\x80\x80\x80\x40"),
     "varint overflows 64 bits"},
    {"\"long\"", B(V_INT64_MIN), NULL},
    {"\"long\"", B(V_INT64_MAX), NULL},
    {"\"long\"", B("\x80\x00"), NULL}, /* a non-minimal 0 is still a valid varint */
    {"\"long\"", B("\x02"), NULL},
    {"\"long\"", B("\x02\x00"), "bytes left over after the record"},
    /* int */
    {"\"int\"", B("\xfe\xff\xff\xff\x0f"), NULL},               /* INT32_MAX */
    {"\"int\"", B("\xff\xff\xff\xff\x0f"), NULL},               /* INT32_MIN */
    {"\"int\"", B("\x80\x80\x80\x80\x10"), "int out of range"}, /* 2^31 */
    {"\"int\"", B("\x81\x80\x80\x80\x10"), "int out of range"}, /* -2^31 - 1 */
    {"\"int\"", B(V_INT64_MAX), "int out of range"},
    {"\"int\"", B(V_INT64_MIN), "int out of range"},
    {"\"int\"", B(""), "truncated varint"},
    /* string and bytes lengths */
    {"\"string\"", B("\x00"), NULL},
    {"\"string\"",
     B("\x06"
       "abc"),
     NULL},
    {"\"string\"", B(V_MINUS1), "string/bytes length out of range"},
    {"\"string\"",
     B("\x03"
       "abc"),
     "string/bytes length out of range"}, /* -2 */
    {"\"string\"", B(V_2POW40 "abc"), "string/bytes length out of range"},
    {"\"string\"", B(V_INT64_MAX "abc"), "string/bytes length out of range"},
    {"\"string\"", B(V_INT64_MIN "abc"), "string/bytes length out of range"},
    {"\"string\"",
     B("\x0a"
       "abc"),
     "string/bytes length out of range"},
    {"\"string\"", B("\x06"), "string/bytes length out of range"},
    {"\"string\"",
     B("\x06"
       "abcd"),
     "bytes left over after the record"},
    {"\"string\"", B(""), "truncated varint"},
    {"\"bytes\"", B("\x04\x00\xff"), NULL},
    {"\"bytes\"", B(V_MINUS1), "string/bytes length out of range"},
    {"\"bytes\"", B(V_2POW40), "string/bytes length out of range"},
    {"\"bytes\"", B("\x08\x00\x00\x00"), "string/bytes length out of range"},
    /* boolean */
    {"\"boolean\"", B("\x00"), NULL},
    {"\"boolean\"", B("\x01"), NULL},
    {"\"boolean\"", B("\x02"), "boolean is neither 0 nor 1"},
    {"\"boolean\"", B("\xff"), "boolean is neither 0 nor 1"},
    {"\"boolean\"", B(""), "truncated boolean"},
    {"\"boolean\"", B("\x01\x00"), "bytes left over after the record"},
    /* float, double, fixed */
    {"\"float\"", B("\x00\x00\x80\x3f"), NULL},
    {"\"float\"", B("\x00\x00\x80"), "truncated float"},
    {"\"double\"", B("\x00\x00\x00\x00\x00\x00\xf0\x3f"), NULL},
    {"\"double\"", B("\x00\x00\x00\x00\x00\x00\xf0"), "truncated double"},
    {"\"double\"", B(""), "truncated double"},
    {T_FIXED, B("abcd"), NULL},
    {T_FIXED, B("abc"), "truncated fixed"},
    {T_FIXED, B("abcde"), "bytes left over after the record"},
    /* enum */
    {T_ENUM, B("\x00"), NULL},
    {T_ENUM, B("\x04"), NULL},
    {T_ENUM, B("\x06"), "enum index out of range"},
    {T_ENUM, B(V_MINUS1), "enum index out of range"},
    {T_ENUM, B(V_INT64_MAX), "enum index out of range"},
    {T_ENUM, B(V_INT64_MIN), "enum index out of range"},
    {T_ENUM, B(""), "truncated varint"},
    /* union */
    {T_UNION, B("\x00"), NULL},
    {T_UNION, B("\x02\x02x"), NULL},
    {T_UNION, B("\x04"), "union branch out of range"},
    {T_UNION, B("\x04\x02x"), "union branch out of range"},
    {T_UNION, B(V_MINUS1), "union branch out of range"},
    {T_UNION, B(V_INT64_MAX), "union branch out of range"},
    {T_UNION, B(V_INT64_MIN), "union branch out of range"},
    {T_UNION, B("\x02"), "truncated varint"},
    {T_UNION, B("\x02\x01"), "string/bytes length out of range"},
    {T_UNION, B("\x00\x00"), "bytes left over after the record"},
    /* array: blocks of count (negative: then a byte size) ending with 0 */
    {T_ARRAY, B("\x00"), NULL},
    {T_ARRAY, B("\x04\x02\x04\x00"), NULL},
    {T_ARRAY, B("\x04\x02\x04\x02\x06\x00"), NULL}, /* two blocks */
    {T_ARRAY, B("\x03\x04\x02\x04\x00"), NULL},     /* count -2, size 2 */
    {T_ARRAY, B(V_INT64_MIN "\x00"), "block count out of range"},
    {T_ARRAY, B("\x01\x01\x02\x00"), "negative block size"},
    {T_ARRAY, B("\x01" V_INT64_MIN "\x02\x00"), "negative block size"},
    {T_ARRAY, B("\xd0\x0f\x02\x02\x00"), "more array/map elements than the message"},
    {T_ARRAY, B(V_2POW40 "\x02\x00"), "more array/map elements than the message"},
    {T_ARRAY, B(V_INT64_MAX "\x00"), "more array/map elements than the message"},
    {T_ARRAY, B("\xfd\xff\xff\xff\xff\xff\xff\xff\xff\x01\x00\x00"),
     "more array/map elements than the message"}, /* count -INT64_MAX */
    {T_ARRAY, B("\x02\x02"), "truncated varint"}, /* no terminating block */
    {T_ARRAY, B("\x04\x02"), "truncated varint"}, /* one element of two */
    {T_ARRAY, B("\x01"), "truncated varint"},     /* no block size */
    {T_ARRAY, B("\x02\x02\x00\x00"), "bytes left over after the record"},
    /* map: like arrays, each entry a string key then the value */
    {T_MAP, B("\x00"), NULL},
    {T_MAP, B("\x02\x02k\x02\x00"), NULL},
    {T_MAP, B("\x04\x02k\x02\x02k\x04\x00"), NULL}, /* a repeated key */
    {T_MAP, B(V_INT64_MIN "\x00"), "block count out of range"},
    {T_MAP, B("\x01\x01\x02k\x02\x00"), "negative block size"},
    {T_MAP, B("\x02" V_MINUS1 "\x02\x00"), "map key length out of range"},
    {T_MAP, B("\x02" V_2POW40 "\x02\x00"), "map key length out of range"},
    {T_MAP, B("\x02\x08k\x02\x00"), "map key length out of range"},
    {T_MAP, B("\xd0\x0f\x02k\x02\x00"), "more array/map elements than the message"},
    {T_MAP, B("\x02\x02k"), "truncated varint"},
    /* a nested record */
    {T_RECORD, B("\x02\x02x"), NULL},
    {T_RECORD, B("\x02"), "truncated varint"},
    {T_RECORD, B("\x80\x80\x80\x80\x10\x02x"), "int out of range"},
    {T_RECORD, B("\x02\x02xy"), "bytes left over after the record"},
};

static void test_check_rejection_paths(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(check_cases); i++) {
        const check_case_t *tc = &check_cases[i];
        avro_schema_t s = wrap_schema(tc->type);
        /* an exact-size heap copy, so ASan sees any read past the end */
        uint8_t *copy = malloc(tc->len ? tc->len : 1);
        memcpy(copy, tc->bytes, tc->len);
        cs_error_t err;
        cs_err_t rc = check_and_decode(s, copy, tc->len, &err);
        if (!tc->expect && rc != CS_OK)
            fail_msg("case %zu (%s): rejected: %s", i, tc->type, err.msg);
        if (tc->expect) {
            if (rc != CS_ERR_AVRO_DECODE || !strstr(err.msg, tc->expect))
                fail_msg("case %zu (%s): rc %d '%s', expected '%s'", i, tc->type, rc,
                         err.msg, tc->expect);
            assert_decode_error(&err);
        }
        free(copy);
        avro_schema_decref(s);
    }
}

/* Nesting deeper than 32 is refused before avro-c recurses into it. */
static void test_check_nesting_limit(void **state)
{
    (void)state;
    /* 40 nested arrays of null */
    char type[4096] = "\"null\"";
    for (int i = 0; i < 40; i++) {
        char inner[4096];
        snprintf(inner, sizeof(inner), "%s", type);
        snprintf(type, sizeof(type), "{\"type\":\"array\",\"items\":%s}", inner);
    }
    avro_schema_t s = wrap_schema(type);
    for (int d = 1; d <= 40; d++) {
        /* d arrays open: d - 1 of them with one element, the innermost empty */
        bytes_t b = {0};
        for (int i = 0; i < d - 1; i++)
            put_long(&b, 1);
        for (int i = 0; i < d; i++)
            put_long(&b, 0);
        cs_error_t err;
        cs_err_t rc = check_and_decode(s, b.b, b.n, &err);
        if (d <= 32 && rc != CS_OK)
            fail_msg("%d nested arrays rejected: %s", d, err.msg);
        if (d > 32 && (rc != CS_ERR_AVRO_DECODE || !strstr(err.msg, "nested too deeply")))
            fail_msg("%d nested arrays: rc %d '%s'", d, rc, err.msg);
        bytes_free(&b);
    }
    avro_schema_decref(s);

    /* a recursive (linked-list) schema: data decides the depth */
    const char *list =
        "{\"type\":\"record\",\"name\":\"Node\",\"namespace\":\"t\",\"fields\":"
        "[{\"name\":\"v\",\"type\":\"int\"},"
        "{\"name\":\"next\",\"type\":[\"null\",\"Node\"]}]}";
    assert_int_equal(avro_schema_from_json_length(list, strlen(list), &s), 0);
    int deepest_ok = -1, first_bad = -1;
    for (int n = 0; n < 64; n++) {
        bytes_t b = {0};
        for (int i = 0; i < n; i++) {
            put_long(&b, i);
            put_long(&b, 1);
        }
        put_long(&b, n);
        put_long(&b, 0);
        cs_error_t err;
        cs_err_t rc = check_and_decode(s, b.b, b.n, &err);
        if (rc == CS_OK) {
            assert_int_equal(first_bad, -1); /* no success after the first refusal */
            deepest_ok = n;
        } else {
            assert_non_null(strstr(err.msg, "nested too deeply"));
            if (first_bad < 0)
                first_bad = n;
        }
        bytes_free(&b);
    }
    assert_true(deepest_ok >= 9); /* a useful depth decodes */
    assert_int_equal(first_bad, deepest_ok + 1);
    assert_true(first_bad <= 32); /* and the limit holds */
    avro_schema_decref(s);
}

/* Check and decoder accept exactly the valid encodings of the partner schemas, and
 * the decoded value equals the one that was encoded. */
static void test_partner_messages_round_trip(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(samples); i++) {
        const cs_schema_t *s = cs_registry_get(reg, samples[i].id);
        bytes_t b;
        encode_json(samples[i].id, samples[i].json, &b);
        cs_error_t err;
        assert_int_equal(cs_avro_check(s->avro, b.b, b.n, &err), CS_OK);

        /* the converted value, for comparison */
        char errstr[256];
        cs_converter_t *conv = cs_converter_new(s, errstr, sizeof(errstr));
        json_t *j = json_loads(samples[i].json, 0, NULL);
        avro_value_t want, got;
        avro_generic_value_new(s->iface, &want);
        avro_generic_value_new(s->iface, &got);
        assert_int_equal(cs_converter_run(conv, j, &want, &err), CS_OK);

        cs_decoder_t *d = cs_decoder_new();
        assert_int_equal(cs_decoder_read(d, s->avro, b.b, b.n, &got, &err), CS_OK);
        assert_true(avro_value_equal(&want, &got));
        /* the same decoder and value again: still equal (reset, not appended) */
        assert_int_equal(cs_decoder_read(d, s->avro, b.b, b.n, &got, &err), CS_OK);
        assert_true(avro_value_equal(&want, &got));

        cs_decoder_destroy(d);
        avro_value_decref(&want);
        avro_value_decref(&got);
        json_decref(j);
        cs_converter_destroy(conv);
        bytes_free(&b);
    }
}

/* Every strict prefix of a valid message is refused; every single-byte change, byte
 * insertion and appended byte either decodes or is refused cleanly, never quoting the
 * data; and the allocation budget never has to refuse anything (avro-c does not
 * survive that). */
static void test_truncate_and_flip_every_byte(void **state)
{
    (void)state;
    long refusals = cs_avro_budget_refusals();
    static const uint8_t masks[] = {0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xff};
    static const uint8_t values[] = {0x00, 0x01, 0x02, 0x7e, 0x7f, 0x80, 0xfe, 0xff};
    cs_decoder_t *d = cs_decoder_new();
    for (size_t si = 0; si < N(samples); si++) {
        const cs_schema_t *s = cs_registry_get(reg, samples[si].id);
        bytes_t good;
        encode_json(samples[si].id, samples[si].json, &good);
        avro_value_t v;
        avro_generic_value_new(s->iface, &v);
        cs_error_t err;
        size_t accepted = 0, refused = 0;

        for (size_t len = 0; len < good.n; len++) {
            uint8_t *copy = malloc(len ? len : 1);
            memcpy(copy, good.b, len);
            cs_error_clear(&err);
            if (cs_decoder_read(d, s->avro, copy, len, &v, &err) != CS_ERR_AVRO_DECODE)
                fail_msg("schema %d: prefix of %zu/%zu bytes accepted", s->id, len,
                         good.n);
            assert_decode_error(&err);
            free(copy);
        }

        uint8_t *m = malloc(good.n + 1);
        for (size_t pos = 0; pos < good.n; pos++) {
            for (size_t k = 0; k < N(masks) + N(values); k++) {
                memcpy(m, good.b, good.n);
                m[pos] =
                    k < N(masks) ? (uint8_t)(m[pos] ^ masks[k]) : values[k - N(masks)];
                cs_error_clear(&err);
                cs_err_t crc = cs_avro_check(s->avro, m, good.n, NULL);
                cs_err_t rc = cs_decoder_read(d, s->avro, m, good.n, &v, &err);
                assert_int_equal(rc, crc);
                if (rc == CS_OK) {
                    accepted++;
                } else {
                    assert_int_equal(rc, CS_ERR_AVRO_DECODE);
                    assert_decode_error(&err);
                    refused++;
                }
            }
            /* a byte inserted before pos */
            for (int ins = 0; ins < 3; ins++) {
                memcpy(m, good.b, pos);
                m[pos] = (uint8_t[]){0x00, 0x80, 0x02}[ins];
                memcpy(m + pos + 1, good.b + pos, good.n - pos);
                cs_err_t rc = cs_decoder_read(d, s->avro, m, good.n + 1, &v, &err);
                assert_true(rc == CS_OK || rc == CS_ERR_AVRO_DECODE);
                if (rc)
                    assert_decode_error(&err);
            }
        }
        /* a byte appended */
        memcpy(m, good.b, good.n);
        m[good.n] = 0;
        assert_int_equal(cs_decoder_read(d, s->avro, m, good.n + 1, &v, &err),
                         CS_ERR_AVRO_DECODE);
        assert_non_null(strstr(err.msg, "bytes left over"));
        free(m);
        /* both outcomes happened, and the decoder still works afterwards */
        assert_true(accepted > 0 && refused > 0);
        assert_int_equal(cs_decoder_read(d, s->avro, good.b, good.n, &v, &err), CS_OK);
        avro_value_decref(&v);
        bytes_free(&good);
    }
    cs_decoder_destroy(d);
    assert_int_equal(cs_avro_budget_refusals(), refusals);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Random bytes, and valid messages with several random bytes changed. */
static void test_random_bytes(void **state)
{
    (void)state;
    long refusals = cs_avro_budget_refusals();
    cs_decoder_t *d = cs_decoder_new();
    uint8_t buf[512];
    for (size_t si = 0; si < N(samples); si++) {
        const cs_schema_t *s = cs_registry_get(reg, samples[si].id);
        avro_value_t v;
        avro_generic_value_new(s->iface, &v);
        cs_error_t err;
        for (int iter = 0; iter < 4000; iter++) {
            size_t len = (size_t)(rng() % 96);
            for (size_t i = 0; i < len; i++) {
                uint64_t r = rng();
                /* mostly small values, as varints of real data are */
                buf[i] = (uint8_t)(r % 4 ? r % 16 : r >> 8);
            }
            cs_err_t rc = cs_decoder_read(d, s->avro, buf, len, &v, &err);
            assert_true(rc == CS_OK || rc == CS_ERR_AVRO_DECODE);
            assert_int_equal(rc, cs_avro_check(s->avro, buf, len, NULL));
        }
        bytes_t good;
        encode_json(samples[si].id, samples[si].json, &good);
        assert_true(good.n <= sizeof(buf));
        for (int iter = 0; iter < 4000; iter++) {
            memcpy(buf, good.b, good.n);
            int changes = 1 + (int)(rng() % 4);
            for (int k = 0; k < changes; k++)
                buf[rng() % good.n] = (uint8_t)rng();
            size_t len = good.n - (size_t)(rng() % 3 == 0 ? rng() % good.n : 0);
            cs_err_t rc = cs_decoder_read(d, s->avro, buf, len, &v, &err);
            assert_true(rc == CS_OK || rc == CS_ERR_AVRO_DECODE);
            if (rc)
                assert_decode_error(&err);
        }
        bytes_free(&good);
        avro_value_decref(&v);
    }
    cs_decoder_destroy(d);
    assert_int_equal(cs_avro_budget_refusals(), refusals);
}

/*
 * Regression: the check bounded only the number of array/map elements by the input
 * size, but avro-c spends far more per element than one input byte (a 48-byte string
 * slot, doubled, for each one-byte empty string; a hash table for each empty map), so
 * a few KB of elements ran the decode out of its allocation budget - and avro-c
 * crashes when an allocation is refused mid-decode (an 8 KB ofsted.SendAreaOutcome
 * with 8,000 empty named_location_ids killed the process). The check now bounds what
 * the decode will allocate: at every size, cheap-element shapes decode or are refused,
 * and the budget itself never has to refuse.
 */
static void test_element_heavy_input_never_exceeds_budget(void **state)
{
    (void)state;
    static const struct {
        const char *type;
        int is_map;
        const char *item; /* encoding of one element's value */
        size_t item_len;
    } shapes[] = {
        {"{\"type\":\"array\",\"items\":\"string\"}", 0, B("\x00")},
        {"{\"type\":\"array\",\"items\":\"bytes\"}", 0, B("\x00")},
        {"{\"type\":\"array\",\"items\":\"boolean\"}", 0, B("\x01")},
        {"{\"type\":\"array\",\"items\":\"long\"}", 0, B("\x02")},
        {"{\"type\":\"array\",\"items\":\"null\"}", 0, B("")},
        {"{\"type\":\"array\",\"items\":[\"null\",\"string\"]}", 0, B("\x02\x00")},
        {"{\"type\":\"array\",\"items\":[\"null\",\"string\"]}", 0, B("\x00")},
        {"{\"type\":\"array\",\"items\":{\"type\":\"array\",\"items\":\"null\"}}", 0,
         B("\x00")},
        {"{\"type\":\"array\",\"items\":{\"type\":\"array\",\"items\":\"int\"}}", 0,
         B("\x02\x00\x00")},
        {"{\"type\":\"array\",\"items\":{\"type\":\"map\",\"values\":\"null\"}}", 0,
         B("\x00")},
        {"{\"type\":\"array\",\"items\":[\"null\",{\"type\":\"map\",\"values\":\"int\"}]"
         "}",
         0, B("\x02\x00")},
        {"{\"type\":\"array\",\"items\":{\"type\":\"record\",\"name\":\"R\",\"fields\":["
         "{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":\"string\"}},"
         "{\"name\":\"s\",\"type\":\"string\"},{\"name\":\"n\",\"type\":\"null\"}]}}",
         0, B("\x00\x00")},
        {"{\"type\":\"array\",\"items\":{\"type\":\"record\",\"name\":\"Node\","
         "\"fields\":["
         "{\"name\":\"next\",\"type\":[\"null\",\"Node\"]}]}}",
         0, B("\x02\x02\x00")},
        {"{\"type\":\"array\",\"items\":{\"type\":\"fixed\",\"name\":\"F\",\"size\":1}}",
         0, B("x")},
        {"{\"type\":\"map\",\"values\":\"null\"}", 1, B("")},
        {"{\"type\":\"map\",\"values\":\"string\"}", 1, B("\x00")},
        {"{\"type\":\"map\",\"values\":{\"type\":\"map\",\"values\":\"null\"}}", 1,
         B("\x00")},
        {"{\"type\":\"map\",\"values\":{\"type\":\"array\",\"items\":\"null\"}}", 1,
         B("\x00")},
    };
    long refusals = cs_avro_budget_refusals();
    cs_decoder_t *d = cs_decoder_new();
    for (size_t si = 0; si < N(shapes); si++) {
        avro_schema_t s = wrap_schema(shapes[si].type);
        avro_value_iface_t *iface = avro_generic_class_from_schema(s);
        avro_value_t v;
        avro_generic_value_new(iface, &v);
        int saw_ok = 0, saw_refused = 0;
        for (size_t n = 1; n <= 200000; n = n * 3 / 2 + 1) {
            for (int blocks = 1; blocks <= (n >= 2 ? 2 : 1); blocks++) {
                bytes_t b = {0};
                size_t done = 0;
                for (int blk = 0; blk < blocks; blk++) {
                    size_t cnt = blk + 1 < blocks ? n / 2 : n - done;
                    put_long(&b, (int64_t)cnt);
                    for (size_t i = 0; i < cnt; i++, done++) {
                        if (shapes[si].is_map) {
                            /* distinct keys: 1 to 3 bytes, never NUL */
                            char key[4];
                            size_t x = done, kl = 0;
                            do {
                                key[kl++] = (char)(1 + x % 255);
                                x /= 255;
                            } while (x);
                            put_long(&b, (int64_t)kl);
                            put_raw(&b, key, kl);
                        }
                        put_raw(&b, shapes[si].item, shapes[si].item_len);
                    }
                }
                put_long(&b, 0);
                cs_error_t err;
                cs_err_t rc = cs_decoder_read(d, s, b.b, b.n, &v, &err);
                if (rc == CS_OK) {
                    size_t size;
                    avro_value_t f;
                    avro_value_get_by_index(&v, 0, &f, NULL);
                    avro_value_get_size(&f, &size);
                    assert_true(size <= n);
                    saw_ok = 1;
                } else {
                    assert_int_equal(rc, CS_ERR_AVRO_DECODE);
                    assert_decode_error(&err);
                    saw_refused = 1;
                }
                if (cs_avro_budget_refusals() != refusals)
                    fail_msg("%s with %zu elements: the allocation budget refused",
                             shapes[si].type, n);
                bytes_free(&b);
            }
        }
        assert_true(saw_ok);
        (void)saw_refused;
        avro_value_decref(&v);
        avro_value_iface_decref(iface);
        avro_schema_decref(s);
    }
    cs_decoder_destroy(d);
}

/* The same regression on the partner schema it was found with. */
static void test_ofsted_with_thousands_of_empty_ids_is_refused(void **state)
{
    (void)state;
    const cs_schema_t *s = cs_registry_get(reg, 4);
    long refusals = cs_avro_budget_refusals();
    cs_decoder_t *d = cs_decoder_new();
    avro_value_t v;
    avro_generic_value_new(s->iface, &v);
    static const size_t counts[] = {100, 1000, 8000, 12000, 60000};
    for (size_t i = 0; i < N(counts); i++) {
        bytes_t b = {0};
        put_str(&b, "SEND-1");
        put_str(&b, "E09000030");
        put_long(&b, 0);
        put_long(&b, 0);
        put_long(&b, (int64_t)counts[i]);
        for (size_t k = 0; k < counts[i]; k++)
            put_long(&b, 0);
        put_long(&b, 0);
        cs_error_t err;
        cs_err_t rc = cs_decoder_read(d, s->avro, b.b, b.n, &v, &err);
        assert_true(rc == CS_OK || rc == CS_ERR_AVRO_DECODE);
        if (counts[i] >= 8000) {
            assert_int_equal(rc, CS_ERR_AVRO_DECODE);
            assert_non_null(strstr(err.msg, "budget"));
        }
        bytes_free(&b);
    }
    /* a realistic large report still decodes: 3,000 named locations, 36 KB */
    bytes_t b = {0};
    put_str(&b, "SEND-1");
    put_str(&b, "E09000030");
    put_long(&b, 2);
    put_long(&b, 1795166100000LL);
    put_long(&b, 3000);
    for (int k = 0; k < 3000; k++) {
        char id[16];
        snprintf(id, sizeof(id), "1-%09d", 100000000 + k);
        put_str(&b, id);
    }
    put_long(&b, 0);
    cs_error_t err;
    assert_int_equal(cs_decoder_read(d, s->avro, b.b, b.n, &v, &err), CS_OK);
    avro_value_t f;
    size_t size;
    avro_value_get_by_name(&v, "named_location_ids", &f, NULL);
    avro_value_get_size(&f, &size);
    assert_int_equal(size, 3000);
    bytes_free(&b);
    avro_value_decref(&v);
    cs_decoder_destroy(d);
    assert_int_equal(cs_avro_budget_refusals(), refusals);
}

/* Schemas at the edges of what avro-c's generic values handle. */
static void test_odd_schemas_do_not_crash(void **state)
{
    (void)state;
    static const struct {
        const char *type;
        const char *bytes;
        size_t len;
    } cases[] = {
        {"{\"type\":\"record\",\"name\":\"E\",\"fields\":[]}", B("")},
        {"{\"type\":\"array\",\"items\":{\"type\":\"record\",\"name\":\"E\",\"fields\":[]"
         "}}",
         B("\x06\x00")},
        {"{\"type\":\"map\",\"values\":{\"type\":\"record\",\"name\":\"E\",\"fields\":[]}"
         "}",
         B("\x04\x02"
           "a\x02"
           "b\x00")},
        {"{\"type\":\"array\",\"items\":\"null\"}", B("\x06\x00")},
        {"[\"null\",{\"type\":\"array\",\"items\":[\"null\",\"int\"]}]",
         B("\x02\x04\x00\x02\x02\x00")},
    };
    cs_decoder_t *d = cs_decoder_new();
    for (size_t i = 0; i < N(cases); i++) {
        avro_schema_t s = wrap_schema(cases[i].type);
        avro_value_iface_t *iface = avro_generic_class_from_schema(s);
        avro_value_t v;
        avro_generic_value_new(iface, &v);
        assert_int_equal(cs_avro_check(s, cases[i].bytes, cases[i].len, NULL), CS_OK);
        for (int k = 0; k < 2; k++) { /* twice: the value must survive either outcome */
            cs_error_t err;
            cs_err_t rc = cs_decoder_read(d, s, cases[i].bytes, cases[i].len, &v, &err);
            assert_true(rc == CS_OK || rc == CS_ERR_AVRO_DECODE);
        }
        avro_value_decref(&v);
        avro_value_iface_decref(iface);
        avro_schema_decref(s);
    }
    cs_decoder_destroy(d);
}

/* Every file of the hand-made hostile corpus is refused with the nhse.Incident v1
 * writer schema. Files are wire-format messages (schema id 1) named by what they
 * contain; tests/data/codec/make_invalid.py wrote them. */
static void test_invalid_corpus(void **state)
{
    (void)state;
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/tests/data/codec/invalid", cs_test_source_dir());
    DIR *dp = opendir(dir);
    assert_non_null(dp);
    const cs_schema_t *s = cs_registry_get(reg, 1);
    assert_string_equal(s->subject, "nhse.Incident");
    assert_int_equal(s->version, 1);
    cs_decoder_t *d = cs_decoder_new();
    avro_value_t v;
    avro_generic_value_new(s->iface, &v);
    long refusals = cs_avro_budget_refusals();
    int files = 0;
    struct dirent *de;
    while ((de = readdir(dp))) {
        size_t nl = strlen(de->d_name);
        if (nl < 5 || strcmp(de->d_name + nl - 4, ".bin"))
            continue;
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        uint8_t *buf = malloc(1 << 20);
        size_t len = fread(buf, 1, 1 << 20, f);
        fclose(f);
        uint8_t *exact = malloc(len ? len : 1);
        memcpy(exact, buf, len);
        free(buf);
        int32_t id;
        const void *payload;
        size_t plen;
        if (cs_wire_parse(exact, len, &id, &payload, &plen) || id != 1)
            fail_msg("%s: not a wire-format message of schema id 1", de->d_name);
        cs_error_t err;
        cs_error_clear(&err);
        cs_err_t rc = cs_decoder_read(d, s->avro, payload, plen, &v, &err);
        if (rc != CS_ERR_AVRO_DECODE)
            fail_msg("%s: rc %d, expected AVRO_DECODE", de->d_name, rc);
        assert_decode_error(&err);
        free(exact);
        files++;
    }
    closedir(dp);
    assert_true(files >= 20);
    /* and the decoder and value are still good for a valid message */
    bytes_t good;
    encode_json(1, samples[0].json, &good);
    cs_error_t err;
    assert_int_equal(cs_decoder_read(d, s->avro, good.b, good.n, &v, &err), CS_OK);
    bytes_free(&good);
    avro_value_decref(&v);
    cs_decoder_destroy(d);
    assert_int_equal(cs_avro_budget_refusals(), refusals);
}

/* A decode into a value that held a bigger one leaves nothing of the old one behind. */
static void test_decoder_resets_destination(void **state)
{
    (void)state;
    const cs_schema_t *s = cs_registry_get(reg, 4);
    static const char *const jsons[] = {
        "{\"inspection_ref\":\"A\",\"local_authority_code\":\"E09000030\",\"outcome\":"
        "\"POSITIVE\",\"published_at\":1,\"named_location_ids\":[\"a\",\"b\",\"c\"]}",
        "{\"inspection_ref\":\"B\",\"local_authority_code\":\"E09000030\",\"outcome\":"
        "\"POSITIVE\",\"published_at\":1,\"named_location_ids\":[\"d\"]}",
        "{\"inspection_ref\":\"C\",\"local_authority_code\":\"E09000030\",\"outcome\":"
        "\"POSITIVE\",\"published_at\":1}",
    };
    static const size_t sizes[] = {3, 1, 0};
    cs_decoder_t *d = cs_decoder_new();
    avro_value_t v;
    avro_generic_value_new(s->iface, &v);
    for (size_t i = 0; i < N(jsons); i++) {
        bytes_t b;
        encode_json(4, jsons[i], &b);
        cs_error_t err;
        assert_int_equal(cs_decoder_read(d, s->avro, b.b, b.n, &v, &err), CS_OK);
        avro_value_t f;
        size_t size;
        avro_value_get_by_name(&v, "named_location_ids", &f, NULL);
        avro_value_get_size(&f, &size);
        assert_int_equal(size, sizes[i]);
        bytes_free(&b);
    }
    /* nullable: a string, then null */
    const cs_schema_t *n1 = cs_registry_get(reg, 1);
    avro_value_t w;
    avro_generic_value_new(n1->iface, &w);
    bytes_t b;
    encode_json(1, samples[0].json, &b);
    cs_error_t err;
    assert_int_equal(cs_decoder_read(d, n1->avro, b.b, b.n, &w, &err), CS_OK);
    avro_value_t f, branch;
    int disc;
    avro_value_get_by_name(&w, "description", &f, NULL);
    avro_value_get_discriminant(&f, &disc);
    assert_int_equal(disc, 1);
    bytes_free(&b);
    encode_json(1,
                "{\"incident_id\":\"X\",\"reporting_org_ods\":\"RXQ\",\"location_id\":"
                "\"RXQ02\",\"category\":\"OUTBREAK\",\"harm\":\"LOW\",\"occurred_at\":1,"
                "\"reported_at\":2}",
                &b);
    assert_int_equal(cs_decoder_read(d, n1->avro, b.b, b.n, &w, &err), CS_OK);
    avro_value_get_by_name(&w, "description", &f, NULL);
    avro_value_get_discriminant(&f, &disc);
    assert_int_equal(disc, 0);
    avro_value_get_current_branch(&f, &branch);
    assert_int_equal(avro_value_get_type(&branch), AVRO_NULL);
    bytes_free(&b);
    avro_value_decref(&w);
    avro_value_decref(&v);
    cs_decoder_destroy(d);
}

/* ------------------------------------------------------------------ encoder */

static void set_intel_event(avro_value_t *r, const char *event_key)
{
    avro_value_t f, o;
    avro_value_get_by_name(r, "event_key", &f, NULL);
    avro_value_set_string(&f, event_key);
    avro_value_get_by_name(r, "source", &f, NULL);
    avro_value_set_enum(&f, 2);
    avro_value_get_by_name(r, "source_org", &f, NULL);
    avro_value_set_string(&f, "E09000030");
    avro_value_get_by_name(r, "subject_kind", &f, NULL);
    avro_value_set_enum(&f, 1);
    avro_value_get_by_name(r, "subject_id", &f, NULL);
    avro_value_set_string(&f, "E09000030");
    avro_value_get_by_name(r, "signal", &f, NULL);
    avro_value_set_enum(&f, 13);
    avro_value_get_by_name(r, "area", &f, NULL);
    avro_value_set_enum(&f, 3);
    avro_value_get_by_name(r, "severity", &f, NULL);
    avro_value_set_enum(&f, 4);
    avro_value_get_by_name(r, "occurred_at", &f, NULL);
    avro_value_set_long(&f, INT64_MIN);
    avro_value_get_by_name(r, "received_at", &f, NULL);
    avro_value_set_long(&f, INT64_MAX);
    avro_value_get_by_name(r, "origin", &o, NULL);
    avro_value_get_by_name(&o, "topic", &f, NULL);
    avro_value_set_string(&f, "intel.raw.ofsted-send");
    avro_value_get_by_name(&o, "partition", &f, NULL);
    avro_value_set_int(&f, INT32_MAX);
    avro_value_get_by_name(&o, "offset", &f, NULL);
    avro_value_set_long(&f, 1);
    avro_value_get_by_name(&o, "schema_id", &f, NULL);
    avro_value_set_int(&f, -1);
    avro_value_get_by_name(r, "region", &f, NULL);
    avro_value_set_string(&f, "London");
    avro_value_get_by_name(r, "local_authority_code", &f, NULL);
    avro_value_set_string(&f, "E09000030");
}

/* The encoder starts at 1 KiB and grows for a big value; the decoder reads it back. */
static void test_encoder_grows_and_round_trips(void **state)
{
    (void)state;
    const cs_schema_t *s = cs_registry_get(reg, 5);
    assert_string_equal(s->subject, "caresignal.IntelEvent");
    cs_encoder_t *e = cs_encoder_new();
    cs_decoder_t *d = cs_decoder_new();
    avro_value_t v, back;
    avro_generic_value_new(s->iface, &v);
    avro_generic_value_new(s->iface, &back);
    static const size_t sizes[] = {10, 1019, 1020, 1024, 10 * 1024, 1 << 20, 100};
    for (size_t i = 0; i < N(sizes); i++) {
        char *key = malloc(sizes[i] + 1);
        for (size_t k = 0; k < sizes[i]; k++)
            key[k] = (char)('a' + k % 26);
        key[sizes[i]] = '\0';
        set_intel_event(&v, key);
        const uint8_t *out;
        size_t out_len;
        assert_int_equal(cs_encoder_write(e, s->id, &v, &out, &out_len), CS_OK);
        assert_true(out_len > sizes[i] + CS_WIRE_HEADER_SIZE);
        int32_t id;
        const void *payload;
        size_t plen;
        assert_int_equal(cs_wire_parse(out, out_len, &id, &payload, &plen), CS_OK);
        assert_int_equal(id, 5);
        cs_error_t err;
        assert_int_equal(cs_decoder_read(d, s->avro, payload, plen, &back, &err), CS_OK);
        assert_true(avro_value_equal(&v, &back));
        avro_value_t f;
        const char *str;
        size_t len;
        avro_value_get_by_name(&back, "event_key", &f, NULL);
        avro_value_get_string(&f, &str, &len);
        assert_int_equal(len, sizes[i] + 1);
        assert_memory_equal(str, key, sizes[i] + 1);
        /* a fresh encoder writes the same bytes */
        cs_encoder_t *fresh = cs_encoder_new();
        const uint8_t *out2;
        size_t out2_len;
        assert_int_equal(cs_encoder_write(fresh, s->id, &v, &out2, &out2_len), CS_OK);
        assert_int_equal(out2_len, out_len);
        assert_memory_equal(out2, out, out_len);
        cs_encoder_destroy(fresh);
        free(key);
    }
    avro_value_decref(&v);
    avro_value_decref(&back);
    cs_encoder_destroy(e);
    cs_decoder_destroy(d);
    cs_encoder_destroy(NULL);
    cs_decoder_destroy(NULL);
}

/* A value avro-c cannot write (a union with no branch selected) is FATAL, not OK. */
static void test_encoder_refuses_incomplete_value(void **state)
{
    (void)state;
    const cs_schema_t *s = cs_registry_get(reg, 1);
    avro_value_t v;
    avro_generic_value_new(s->iface, &v);
    cs_encoder_t *e = cs_encoder_new();
    const uint8_t *out = NULL;
    size_t out_len = 0;
    assert_int_equal(cs_encoder_write(e, 1, &v, &out, &out_len), CS_ERR_FATAL);
    /* the encoder is still usable */
    avro_value_t f, branch;
    avro_value_get_by_name(&v, "description", &f, NULL);
    avro_value_set_branch(&f, 0, &branch);
    avro_value_set_null(&branch);
    assert_int_equal(cs_encoder_write(e, 1, &v, &out, &out_len), CS_OK);
    assert_int_equal(out[0], 0);
    cs_encoder_destroy(e);
    avro_value_decref(&v);
}

/* Installing the allocator again changes nothing; the budget applies only while a
 * decode runs (an encoder may allocate far beyond any decode budget). */
static void test_allocator_install_is_idempotent(void **state)
{
    (void)state;
    long refusals = cs_avro_budget_refusals();
    for (int i = 0; i < 5; i++)
        cs_avro_allocator_install();
    assert_int_equal(cs_avro_budget_refusals(), refusals);
    const cs_schema_t *s = cs_registry_get(reg, 5);
    avro_value_t v;
    avro_generic_value_new(s->iface, &v);
    char *big = malloc((4 << 20) + 1);
    memset(big, 'x', 4 << 20);
    big[4 << 20] = '\0';
    set_intel_event(&v, big);
    cs_encoder_t *e = cs_encoder_new();
    const uint8_t *out;
    size_t out_len;
    assert_int_equal(cs_encoder_write(e, 5, &v, &out, &out_len), CS_OK);
    cs_decoder_t *d = cs_decoder_new();
    cs_error_t err;
    assert_int_equal(cs_decoder_read(d, s->avro, out + 5, out_len - 5, &v, &err), CS_OK);
    cs_avro_allocator_install();
    assert_int_equal(cs_decoder_read(d, s->avro, out + 5, out_len - 5, &v, &err), CS_OK);
    assert_int_equal(cs_avro_budget_refusals(), refusals);
    cs_decoder_destroy(d);
    cs_encoder_destroy(e);
    avro_value_decref(&v);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wire_parse_rejects_short_and_bad_magic),
        cmocka_unit_test(test_wire_header_round_trip),
        cmocka_unit_test(test_check_rejection_paths),
        cmocka_unit_test(test_check_nesting_limit),
        cmocka_unit_test(test_partner_messages_round_trip),
        cmocka_unit_test(test_truncate_and_flip_every_byte),
        cmocka_unit_test(test_random_bytes),
        cmocka_unit_test(test_element_heavy_input_never_exceeds_budget),
        cmocka_unit_test(test_ofsted_with_thousands_of_empty_ids_is_refused),
        cmocka_unit_test(test_odd_schemas_do_not_crash),
        cmocka_unit_test(test_invalid_corpus),
        cmocka_unit_test(test_decoder_resets_destination),
        cmocka_unit_test(test_encoder_grows_and_round_trips),
        cmocka_unit_test(test_encoder_refuses_incomplete_value),
        cmocka_unit_test(test_allocator_install_is_idempotent),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
