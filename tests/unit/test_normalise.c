/* Unit tests of the normaliser (docs/contract/formats.md to docs/contract/reason-codes.md): table-driven valid and invalid raw
 * messages from tests/data/normalise/, raw-byte cases built here (NULL values, non-UTF-8,
 * deep nesting, tampered Avro, size limits), the order of checks, the canary that free
 * text and personal data never leave, and directory swaps. */
#include "testenv.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "caresignal/codec.h"
#include "caresignal/convert.h"
#include "caresignal/directory.h"
#include "caresignal/event.h"
#include "caresignal/normalise.h"
#include "caresignal/registry.h"
#include "caresignal/rules.h"
#include "caresignal/timeutil.h"

#define MAX_BYTES  65536
#define MAX_IDS    16
#define T_DEFAULT  "2026-11-20T10:00:00Z"
#define TOPIC_NHSE "intel.raw.nhse"
#define TOPIC_CCG  "intel.raw.ccg"
#define TOPIC_OFS  "intel.raw.ofsted-send"

static const char *const raw_topics[CS_SOURCE_COUNT] = {TOPIC_NHSE, TOPIC_CCG, TOPIC_OFS};

/* Everything prepared once for the whole group (as the program does at start-up). */
static struct {
    cs_registry_t *reg;
    cs_rules_t *rules;
    cs_directory_t *dir_a, *dir_b;
    cs_normaliser_t *n;
    cs_event_codec_t *codec;
    cs_encoder_t *enc;
    cs_converter_t *conv[MAX_IDS];
    avro_value_t val[MAX_IDS];
} fx;

static char errstr[512];

static const char *src_path(const char *rel)
{
    static char paths[4][512];
    static int next;
    char *p = paths[next++ % 4];
    snprintf(p, 512, "%s/%s", cs_test_source_dir(), rel);
    return p;
}

static int group_setup(void **state)
{
    (void)state;
    memset(&fx, 0, sizeof(fx));
    fx.reg = cs_registry_load(src_path("schemas/registry.json"), errstr, sizeof(errstr));
    if (!fx.reg) {
        fprintf(stderr, "%s\n", errstr);
        return -1;
    }
    fx.rules =
        cs_rules_load(src_path("deploy/config/rules.json"), errstr, sizeof(errstr));
    fx.dir_a = fx.rules
                   ? cs_directory_load(src_path("tests/data/normalise/directory.csv"),
                                       errstr, sizeof(errstr))
                   : NULL;
    fx.dir_b = fx.dir_a
                   ? cs_directory_load(src_path("tests/data/normalise/directory_b.csv"),
                                       errstr, sizeof(errstr))
                   : NULL;
    if (!fx.dir_b) {
        fprintf(stderr, "%s\n", errstr);
        return -1;
    }
    fx.n = cs_normaliser_new(fx.reg, fx.rules, raw_topics, MAX_BYTES, errstr,
                             sizeof(errstr));
    fx.codec = fx.n ? cs_event_codec_new(fx.reg, errstr, sizeof(errstr)) : NULL;
    fx.enc = cs_encoder_new();
    if (!fx.n || !fx.codec || !fx.enc) {
        fprintf(stderr, "%s\n", errstr);
        return -1;
    }
    cs_normaliser_set_directory(fx.n, fx.dir_a);
    for (size_t i = 0; i < cs_registry_count(fx.reg); i++) {
        const cs_schema_t *s = cs_registry_at(fx.reg, i);
        if (s->id <= 0 || s->id >= MAX_IDS)
            return -1;
        fx.conv[s->id] = cs_converter_new(s, errstr, sizeof(errstr));
        if (!fx.conv[s->id] || avro_generic_value_new(s->iface, &fx.val[s->id])) {
            fprintf(stderr, "schema %d: %s\n", s->id, errstr);
            return -1;
        }
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    for (int i = 0; i < MAX_IDS; i++)
        if (fx.conv[i]) {
            cs_converter_destroy(fx.conv[i]);
            avro_value_decref(&fx.val[i]);
        }
    cs_encoder_destroy(fx.enc);
    cs_event_codec_destroy(fx.codec);
    cs_normaliser_destroy(fx.n);
    cs_directory_destroy(fx.dir_a);
    cs_directory_destroy(fx.dir_b);
    cs_rules_destroy(fx.rules);
    cs_registry_destroy(fx.reg);
    return 0;
}

/* ------------------------------------------------------------------ helpers */

/* A raw message value owned by the test (NULL data = a tombstone). */
typedef struct raw {
    uint8_t *data;
    size_t len;
    int32_t schema_id; /* -1 for JSON */
} raw_t;

static void raw_free(raw_t *r)
{
    free(r->data);
    r->data = NULL;
}

static raw_t raw_copy(const void *data, size_t len, int32_t schema_id)
{
    if (len > (1u << 24))
        fail_msg("raw_copy of %zu bytes", len);
    raw_t r = {malloc(len + 1), len, schema_id};
    assert_non_null(r.data);
    if (len)
        memcpy(r.data, data, len);
    return r;
}

/* A copy of \p src cut or zero-extended to \p len bytes, labelled with \p schema_id. */
static raw_t raw_resized(const raw_t *src, size_t len, int32_t schema_id)
{
    if (len > (1u << 24))
        fail_msg("raw_resized to %zu bytes", len);
    raw_t r = {calloc(1, len + 1), len, schema_id};
    assert_non_null(r.data);
    memcpy(r.data, src->data, len < src->len ? len : src->len);
    if (schema_id >= 0 && len >= CS_WIRE_HEADER_SIZE)
        cs_wire_header(r.data, schema_id);
    return r;
}

static raw_t raw_text(const char *text)
{
    return raw_copy(text, strlen(text), -1);
}

static raw_t raw_json(const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    assert_non_null(s);
    raw_t r = raw_text(s);
    free(s);
    return r;
}

/* Avro in the wire format, written with registry schema \p id from the JSON \p v. */
static raw_t raw_avro(int id, const json_t *v, const char *ctx)
{
    if (id <= 0 || id >= MAX_IDS || !fx.conv[id])
        fail_msg("%s: schema id %d is not in the registry", ctx, id);
    cs_error_t err;
    if (cs_converter_run(fx.conv[id], v, &fx.val[id], &err))
        fail_msg("%s: cannot write the input as Avro schema %d: %s %s", ctx, id,
                 cs_err_str(err.code), err.field);
    const uint8_t *out;
    size_t len;
    assert_int_equal(cs_encoder_write(fx.enc, id, &fx.val[id], &out, &len), CS_OK);
    return raw_copy(out, len, id);
}

static raw_t raw_hex(const char *hex)
{
    size_t n = strlen(hex) / 2;
    raw_t r = {malloc(n ? n : 1), n, -1};
    assert_non_null(r.data);
    for (size_t i = 0; i < n; i++) {
        unsigned x;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &x), 1);
        r.data[i] = (uint8_t)x;
    }
    return r;
}

static int64_t ms_of(const char *iso)
{
    int64_t ms = 0;
    if (!iso || cs_time_parse_iso8601(iso, strlen(iso), &ms))
        fail_msg("bad ISO-8601 timestamp in test data: %s", iso ? iso : "(null)");
    return ms;
}

static cs_err_t normalise_on(cs_normaliser_t *n, const char *topic, int64_t ts,
                             int32_t partition, int64_t offset, const raw_t *r,
                             const cs_normalised_event_t **evs, size_t *count,
                             cs_error_t *err)
{
    cs_raw_msg_t msg = {topic, partition, offset, ts, r->data, r->len, 0};
    cs_err_t e = cs_normalise(n, &msg, evs, count, err);
    if (e) {
        /* a rejection is one reason code, no outputs */
        assert_true(cs_err_is_reason(e));
        assert_int_equal(err->code, e);
        assert_int_equal(*count, 0);
    } else {
        assert_true(*count >= 1);
        assert_non_null(*evs);
    }
    return e;
}

static cs_err_t normalise(const char *topic, const raw_t *r,
                          const cs_normalised_event_t **evs, size_t *count,
                          cs_error_t *err)
{
    return normalise_on(fx.n, topic, ms_of(T_DEFAULT), 0, 1, r, evs, count, err);
}

/* Normalises and expects rejection \p code at \p field ("" for none). */
static void expect_reject(const char *ctx, const char *topic, int64_t ts, const raw_t *r,
                          cs_err_t code, const char *field)
{
    const cs_normalised_event_t *evs;
    size_t count;
    cs_error_t err;
    cs_err_t e = normalise_on(fx.n, topic, ts, 0, 1, r, &evs, &count, &err);
    if (e != code || strcmp(err.field, field))
        fail_msg("%s: expected %s at '%s', got %s at '%s' (%s)", ctx, cs_err_str(code),
                 field, e ? cs_err_str(e) : "OK (accepted)", e ? err.field : "",
                 e ? err.msg : "");
}

static void expect_accept(const char *ctx, const char *topic, int64_t ts, const raw_t *r,
                          size_t count_expected)
{
    const cs_normalised_event_t *evs;
    size_t count;
    cs_error_t err;
    cs_err_t e = normalise_on(fx.n, topic, ts, 0, 1, r, &evs, &count, &err);
    if (e)
        fail_msg("%s: rejected with %s at '%s' (%s)", ctx, cs_err_str(e), err.field,
                 err.msg);
    if (count != count_expected)
        fail_msg("%s: %zu events, expected %zu", ctx, count, count_expected);
}

/* Field-by-field comparison naming the first difference. */
static void assert_event_equal(const char *ctx, const cs_intel_event_t *got,
                               const cs_intel_event_t *want)
{
#define CS_STR(f)                                                                        \
    if (strcmp(got->f, want->f))                                                         \
    fail_msg("%s: %s is '%s', expected '%s'", ctx, #f, got->f, want->f)
#define CS_INT(f)                                                                        \
    if ((long long)got->f != (long long)want->f)                                         \
    fail_msg("%s: %s is %lld, expected %lld", ctx, #f, (long long)got->f,                \
             (long long)want->f)
#define CS_ENUM(f, names)                                                                \
    if (got->f != want->f)                                                               \
    fail_msg("%s: %s is %s, expected %s", ctx, #f, names[got->f], names[want->f])
    CS_STR(event_key);
    CS_ENUM(source, cs_source_names);
    CS_STR(source_org);
    CS_ENUM(subject_kind, cs_subject_kind_names);
    CS_STR(subject_id);
    CS_ENUM(signal, cs_signal_names);
    CS_ENUM(area, cs_area_names);
    CS_ENUM(severity, cs_severity_names);
    CS_INT(occurred_at);
    CS_INT(received_at);
    CS_STR(origin_topic);
    CS_INT(origin_partition);
    CS_INT(origin_offset);
    CS_INT(origin_schema_id);
    CS_STR(region);
    CS_STR(local_authority_code);
#undef CS_STR
#undef CS_INT
#undef CS_ENUM
}

/* The value bytes of an output decode to the same event, and the key is its subject's. */
static void check_output_bytes(const char *ctx, const cs_normalised_event_t *o)
{
    cs_intel_event_t decoded;
    cs_error_t err;
    char c2[512];
    if (cs_event_decode(fx.codec, o->value, o->value_len, &decoded, &err))
        fail_msg("%s: output value does not decode: %s", ctx, err.msg);
    snprintf(c2, sizeof(c2), "%s (decoded value bytes)", ctx);
    assert_event_equal(c2, &decoded, &o->ev);
    char key[CS_SUBJECT_KEY_MAX];
    size_t klen = cs_subject_key(o->ev.subject_kind, o->ev.subject_id, key, sizeof(key));
    if (o->key_len != klen || strcmp(o->key, key) || strlen(o->key) != o->key_len)
        fail_msg("%s: key '%s' (%zu) is not the subject key '%s'", ctx, o->key,
                 o->key_len, key);
}

static const char *jstr(const json_t *o, const char *k, const char *ctx)
{
    const char *s = json_string_value(json_object_get(o, k));
    if (!s)
        fail_msg("%s: test data lacks string \"%s\"", ctx, k);
    return s;
}

static int jenum(const json_t *o, const char *k, const char *const *names, int n,
                 const char *ctx)
{
    int i = cs_enum_index(names, n, jstr(o, k, ctx));
    if (i < 0)
        fail_msg("%s: test data: bad %s '%s'", ctx, k, jstr(o, k, ctx));
    return i;
}

/* The expected event of a test-data "expect" entry for a message received as given. */
static cs_intel_event_t expected_event(const json_t *x, const char *topic, int64_t ts,
                                       int32_t partition, int64_t offset,
                                       int32_t schema_id, const char *ctx)
{
    static const char *const keys[] = {
        "key",          "event_key",   "source", "source_org",
        "subject_kind", "subject_id",  "signal", "area",
        "severity",     "occurred_at", "region", "local_authority_code"};
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)x, k, v)
    {
        int ok = 0;
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
            ok |= !strcmp(k, keys[i]);
        if (!ok)
            fail_msg("%s: test data: unknown expect key '%s'", ctx, k);
    }
    cs_intel_event_t e;
    memset(&e, 0, sizeof(e));
    snprintf(e.event_key, sizeof(e.event_key), "%s", jstr(x, "event_key", ctx));
    e.source = jenum(x, "source", cs_source_names, CS_SOURCE_COUNT, ctx);
    snprintf(e.source_org, sizeof(e.source_org), "%s", jstr(x, "source_org", ctx));
    e.subject_kind =
        jenum(x, "subject_kind", cs_subject_kind_names, CS_SUBJECT_COUNT, ctx);
    snprintf(e.subject_id, sizeof(e.subject_id), "%s", jstr(x, "subject_id", ctx));
    e.signal = jenum(x, "signal", cs_signal_names, CS_SIGNAL_COUNT, ctx);
    e.area = jenum(x, "area", cs_area_names, CS_AREA_COUNT, ctx);
    e.severity = jenum(x, "severity", cs_severity_names, CS_SEVERITY_COUNT, ctx);
    e.occurred_at = ms_of(jstr(x, "occurred_at", ctx));
    e.received_at = ts;
    snprintf(e.origin_topic, sizeof(e.origin_topic), "%s", topic);
    e.origin_partition = partition;
    e.origin_offset = offset;
    e.origin_schema_id = schema_id;
    snprintf(e.region, sizeof(e.region), "%s", jstr(x, "region", ctx));
    snprintf(e.local_authority_code, sizeof(e.local_authority_code), "%s",
             jstr(x, "local_authority_code", ctx));
    return e;
}

static json_t *load_cases(const char *rel, json_t **root)
{
    json_error_t jerr;
    *root = json_load_file(src_path(rel), JSON_REJECT_DUPLICATES, &jerr);
    if (!*root)
        fail_msg("%s line %d: %s", rel, jerr.line, jerr.text);
    json_t *cases = json_object_get(*root, "cases");
    assert_true(json_array_size(cases) > 0);
    return cases;
}

/* The raw value of one variant of a case: "json" or an Avro writer schema id. */
static raw_t case_raw(const json_t *c, const json_t *variant, const char *ctx)
{
    const json_t *hex = json_object_get(c, "value_hex");
    if (hex)
        return raw_hex(json_string_value(hex));
    const json_t *value = json_object_get(c, "value");
    if (!value)
        fail_msg("%s: test data lacks \"value\"", ctx);
    if (json_is_integer(variant))
        return raw_avro((int)json_integer_value(variant), value, ctx);
    if (json_is_string(value))
        return raw_text(json_string_value(value));
    return raw_json(value);
}

/* "json" plus every registered version of the partner schema of \p topic. */
static json_t *default_formats(const char *topic)
{
    json_t *f = json_array();
    json_array_append_new(f, json_string("json"));
    int src = cs_normaliser_source_of(fx.n, topic);
    assert_true(src >= 0);
    for (size_t i = 0; i < cs_registry_count(fx.reg); i++) {
        const cs_schema_t *s = cs_registry_at(fx.reg, i);
        if (!strcmp(s->subject, fx.rules->sources[src].schema))
            json_array_append_new(f, json_integer(s->id));
    }
    return f;
}

static void variant_name(char *out, size_t size, const char *kind, const char *name,
                         const json_t *variant)
{
    if (json_is_integer(variant))
        snprintf(out, size, "%s case '%s' as Avro schema id %lld", kind, name,
                 (long long)json_integer_value(variant));
    else
        snprintf(out, size, "%s case '%s' as JSON", kind, name);
}

/* ------------------------------------------------------------------ valid cases */

/* Every valid case, as JSON and as Avro of every registered writer version, becomes
 * exactly the expected events (all fields), keyed by subject, with value bytes that
 * decode to the same events. */
static void test_valid_cases(void **state)
{
    (void)state;
    json_t *root;
    json_t *cases = load_cases("tests/data/normalise/valid.json", &root);
    size_t i, runs = 0;
    json_t *c;
    json_array_foreach(cases, i, c)
    {
        const char *name = jstr(c, "name", "valid.json");
        const char *topic = jstr(c, "topic", name);
        int64_t ts = ms_of(jstr(c, "timestamp", name));
        int32_t partition = (int32_t)json_integer_value(json_object_get(c, "partition"));
        int64_t offset = json_integer_value(json_object_get(c, "offset"));
        const json_t *expect = json_object_get(c, "expect");
        json_t *formats = json_object_get(c, "formats");
        formats = formats ? json_incref(formats) : default_formats(topic);
        size_t j;
        json_t *variant;
        json_array_foreach(formats, j, variant)
        {
            char ctx[512];
            variant_name(ctx, sizeof(ctx), "valid", name, variant);
            raw_t r = case_raw(c, variant, ctx);
            const cs_normalised_event_t *evs;
            size_t count;
            cs_error_t err;
            cs_err_t e =
                normalise_on(fx.n, topic, ts, partition, offset, &r, &evs, &count, &err);
            if (e)
                fail_msg("%s: rejected with %s at '%s' (%s)", ctx, cs_err_str(e),
                         err.field, err.msg);
            if (count != json_array_size(expect))
                fail_msg("%s: %zu events, expected %zu", ctx, count,
                         json_array_size(expect));
            for (size_t k = 0; k < count; k++) {
                char ectx[600];
                snprintf(ectx, sizeof(ectx), "%s, event %zu", ctx, k);
                const json_t *x = json_array_get(expect, k);
                cs_intel_event_t want =
                    expected_event(x, topic, ts, partition, offset, r.schema_id, ectx);
                assert_event_equal(ectx, &evs[k].ev, &want);
                if (strcmp(evs[k].key, jstr(x, "key", ectx)))
                    fail_msg("%s: key '%s', expected '%s'", ectx, evs[k].key,
                             jstr(x, "key", ectx));
                check_output_bytes(ectx, &evs[k]);
            }
            raw_free(&r);
            runs++;
        }
        json_decref(formats);
    }
    assert_true(runs >= 2 * json_array_size(cases));
    json_decref(root);
}

/* ------------------------------------------------------------------ invalid cases */

static void test_invalid_cases(void **state)
{
    (void)state;
    json_t *root;
    json_t *cases = load_cases("tests/data/normalise/invalid.json", &root);
    const char *default_ts = jstr(root, "default_timestamp", "invalid.json");
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c)
    {
        const char *name = jstr(c, "name", "invalid.json");
        const char *topic = jstr(c, "topic", name);
        const json_t *tsj = json_object_get(c, "timestamp");
        int64_t ts = ms_of(tsj ? json_string_value(tsj) : default_ts);
        const json_t *expect = json_object_get(c, "expect");
        cs_err_t code = cs_err_from_reason(jstr(expect, "code", name));
        if (code == CS_OK)
            fail_msg("%s: test data: bad code", name);
        const char *field = jstr(expect, "field", name);
        json_t *formats = json_object_get(c, "formats");
        formats = formats ? json_incref(formats) : json_pack("[s]", "json");
        size_t j;
        json_t *variant;
        json_array_foreach(formats, j, variant)
        {
            char ctx[512];
            variant_name(ctx, sizeof(ctx), "invalid", name, variant);
            raw_t r = case_raw(c, variant, ctx);
            expect_reject(ctx, topic, ts, &r, code, field);
            raw_free(&r);
        }
        json_decref(formats);
    }
    json_decref(root);
}

/* Every §5 reason code is exercised by at least two different inputs across the data
 * file and the C cases below (a guard against the data file losing coverage). */
static void test_invalid_cases_cover_every_code(void **state)
{
    (void)state;
    json_t *root;
    json_t *cases = load_cases("tests/data/normalise/invalid.json", &root);
    static const char *const codes[] = {
        "JSON_SYNTAX",   "NOT_OBJECT",      "SCHEMA_UNKNOWN", "AVRO_DECODE",
        "FIELD_MISSING", "FIELD_TYPE",      "ENUM_UNKNOWN",   "ID_FORMAT",
        "TIME_RANGE",    "UNKNOWN_LOCATION"};
    for (size_t k = 0; k < sizeof(codes) / sizeof(codes[0]); k++) {
        int n = 0;
        size_t i;
        json_t *c;
        json_array_foreach(cases, i, c) n += !strcmp(
            json_string_value(json_object_get(json_object_get(c, "expect"), "code")),
            codes[k]);
        if (n < 2)
            fail_msg("invalid.json has %d cases of %s", n, codes[k]);
    }
    json_decref(root); /* TOO_LARGE: test_too_large */
}

/* ------------------------------------------------------------------ raw bytes */

static const char *const nhse_ok =
    "{\"incident_id\":\"INC-1\",\"reporting_org_ods\":\"RXQ\",\"location_id\":"
    "\"1-101669119\",\"category\":\"SERIOUS_INCIDENT\",\"harm\":\"MODERATE\","
    "\"occurred_at\":\"2026-11-19T08:30:00Z\",\"reported_at\":\"2026-11-19T09:00:00Z\"";

static raw_t nhse_json_with(const char *extra)
{
    char buf[2048];
    snprintf(buf, sizeof(buf), "%s%s}", nhse_ok, extra);
    return raw_text(buf);
}

static json_t *nhse_value(void)
{
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s}", nhse_ok);
    json_t *v = json_loads(buf, 0, NULL);
    assert_non_null(v);
    return v;
}

static void test_json_syntax_raw(void **state)
{
    (void)state;
    int64_t ts = ms_of(T_DEFAULT);
    raw_t r = nhse_json_with("");
    expect_accept("the base message", TOPIC_NHSE, ts, &r, 1);
    raw_free(&r);

    /* a NULL value (tombstone) */
    raw_t null_value = {NULL, 0, -1};
    expect_reject("NULL value", TOPIC_NHSE, ts, &null_value, CS_ERR_JSON_SYNTAX, "");
    expect_reject("NULL value (ccg)", TOPIC_CCG, ts, &null_value, CS_ERR_JSON_SYNTAX, "");

    /* non-UTF-8 bytes in a string: a lone continuation byte, a Latin-1 e-acute, an
     * overlong encoding of '/', and a surrogate encoded in UTF-8 */
    static const char *const bad_utf8[] = {
        ",\"description\":\"caf\xe9\"", ",\"description\":\"\x80\"",
        ",\"description\":\"\xc0\xaf\"", ",\"description\":\"\xed\xa0\x80\""};
    for (size_t i = 0; i < sizeof(bad_utf8) / sizeof(bad_utf8[0]); i++) {
        char ctx[64];
        snprintf(ctx, sizeof(ctx), "non-UTF-8 #%zu", i);
        r = nhse_json_with(bad_utf8[i]);
        expect_reject(ctx, TOPIC_NHSE, ts, &r, CS_ERR_JSON_SYNTAX, "");
        raw_free(&r);
    }
    /* non-UTF-8 in a key */
    r = raw_text("{\"incident_\xff\":\"INC-1\"}");
    expect_reject("non-UTF-8 key", TOPIC_NHSE, ts, &r, CS_ERR_JSON_SYNTAX, "");
    raw_free(&r);

    /* deeply nested JSON: 5000 '[' alone, balanced, and inside a field */
    enum { DEPTH = 5000 };
    char *deep = malloc(2 * DEPTH + 200);
    assert_non_null(deep);
    memset(deep, '[', DEPTH);
    deep[DEPTH] = '\0';
    r = raw_text(deep);
    expect_reject("5000 '['", TOPIC_NHSE, ts, &r, CS_ERR_JSON_SYNTAX, "");
    raw_free(&r);
    memset(deep + DEPTH, ']', DEPTH);
    deep[2 * DEPTH] = '\0';
    r = raw_text(deep);
    expect_reject("5000 balanced '[' ']'", TOPIC_CCG, ts, &r, CS_ERR_JSON_SYNTAX, "");
    raw_free(&r);
    size_t off = (size_t)sprintf(deep, "{\"unknown\":");
    memset(deep + off, '[', DEPTH);
    memset(deep + off + DEPTH, ']', DEPTH);
    strcpy(deep + off + 2 * DEPTH, "}");
    r = raw_text(deep);
    expect_reject("5000 deep in an ignored field", TOPIC_OFS, ts, &r, CS_ERR_JSON_SYNTAX,
                  "");
    raw_free(&r);
    free(deep);
}

/* Avro bytes tampered with after a valid header. */
static void test_avro_decode_raw(void **state)
{
    (void)state;
    int64_t ts = ms_of(T_DEFAULT);
    json_t *v = nhse_value();
    raw_t good2 = raw_avro(2, v, "nhse v2");
    raw_t good1 = raw_avro(1, v, "nhse v1");
    expect_accept("v2 as written", TOPIC_NHSE, ts, &good2, 1);
    expect_accept("v1 as written", TOPIC_NHSE, ts, &good1, 1);
    assert_true(good1.len > 30 && good2.len > 30);

    /* one trailing byte */
    raw_t r = raw_resized(&good2, good2.len + 1, 2);
    expect_reject("a trailing byte", TOPIC_NHSE, ts, &r, CS_ERR_AVRO_DECODE, "");
    raw_free(&r);
    /* truncated by one byte */
    r = raw_resized(&good2, good2.len - 1, 2);
    expect_reject("truncated by one byte", TOPIC_NHSE, ts, &r, CS_ERR_AVRO_DECODE, "");
    raw_free(&r);
    /* a v2 body labelled v1: v1 has no vaccination_site_code, its union byte trails */
    r = raw_resized(&good2, good2.len, 1);
    expect_reject("v2 body under the v1 id", TOPIC_NHSE, ts, &r, CS_ERR_AVRO_DECODE, "");
    raw_free(&r);
    /* a v1 body labelled v2: the last union is missing */
    r = raw_resized(&good1, good1.len, 2);
    expect_reject("v1 body under the v2 id", TOPIC_NHSE, ts, &r, CS_ERR_AVRO_DECODE, "");
    raw_free(&r);
    /* enum index out of range: header 5, "INC-1" 1+5, "RXQ" 1+3, "1-101669119" 1+11 */
    size_t cat = 5 + 6 + 4 + 12;
    assert_int_equal(good2.data[cat], 0); /* SERIOUS_INCIDENT, index 0 */
    r = raw_resized(&good2, good2.len, 2);
    r.data[cat] = 0x7e; /* zig-zag 63 */
    expect_reject("category index 63", TOPIC_NHSE, ts, &r, CS_ERR_AVRO_DECODE, "");
    r.data[cat] = 0x01; /* zig-zag -1 */
    expect_reject("category index -1", TOPIC_NHSE, ts, &r, CS_ERR_AVRO_DECODE, "");
    raw_free(&r);
    /* a union branch index out of range (description is the second-to-last union) */
    r = raw_resized(&good2, good2.len, 2);
    assert_int_equal(r.data[r.len - 2], 0);
    r.data[r.len - 2] = 0x04;
    expect_reject("union index 2", TOPIC_NHSE, ts, &r, CS_ERR_AVRO_DECODE, "");
    raw_free(&r);
    /* a string length larger than what is left */
    r = raw_resized(&good2, good2.len, 2);
    r.data[5] = 0x7e;
    expect_reject("string length beyond the value", TOPIC_NHSE, ts, &r,
                  CS_ERR_AVRO_DECODE, "");
    raw_free(&r);
    raw_free(&good1);
    raw_free(&good2);
    json_decref(v);
}

/* Avro has no date type: a received_on that is not YYYY-MM-DD in Avro bytes (which the
 * JSON converter would never write) is FIELD_TYPE too, and still comes before the
 * identifier checks. */
static void test_avro_bad_date(void **state)
{
    (void)state;
    int64_t ts = ms_of(T_DEFAULT);
    static const char *const bad[] = {"2026-02-30", "18/11/2026", "2026-11-1x",
                                      "2026-13-01"};
    for (int with_bad_id = 0; with_bad_id < 2; with_bad_id++)
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            json_t *v = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "concern_ref", "CC-D",
                                  "ccg_ods", "15E", "location_id",
                                  with_bad_id ? "1-1" : "1-101669119", "concern_type",
                                  "COMPLAINT", "rag", "RED", "received_on", "2026-11-18");
            raw_t r = raw_avro(3, v, "bad date");
            uint8_t *at = NULL;
            for (size_t k = 0; k + 10 <= r.len && !at; k++)
                if (!memcmp(r.data + k, "2026-11-18", 10))
                    at = r.data + k;
            assert_non_null(at);
            memcpy(at, bad[i], 10);
            char ctx[64];
            snprintf(ctx, sizeof(ctx), "Avro received_on %s%s", bad[i],
                     with_bad_id ? " and a bad id" : "");
            expect_reject(ctx, TOPIC_CCG, ts, &r, CS_ERR_FIELD_TYPE, "received_on");
            raw_free(&r);
            json_decref(v);
        }
}

/* TOO_LARGE comes first: over normalise.max.bytes is rejected whatever it holds, exactly
 * max bytes is accepted, in JSON and in Avro. */
static void test_too_large(void **state)
{
    (void)state;
    int64_t ts = ms_of(T_DEFAULT);
    /* JSON padded with whitespace to an exact size */
    char *buf = malloc(MAX_BYTES + 2);
    assert_non_null(buf);
    size_t base = (size_t)snprintf(buf, MAX_BYTES, "%s}", nhse_ok);
    memset(buf + base, ' ', MAX_BYTES + 1 - base);
    raw_t r = raw_copy(buf, MAX_BYTES, -1);
    expect_accept("JSON of exactly max bytes", TOPIC_NHSE, ts, &r, 1);
    raw_free(&r);
    r = raw_copy(buf, MAX_BYTES + 1, -1);
    expect_reject("JSON of max + 1 bytes", TOPIC_NHSE, ts, &r, CS_ERR_TOO_LARGE, "");
    raw_free(&r);
    /* over the limit and not JSON at all: TOO_LARGE is checked first */
    memset(buf, 'x', MAX_BYTES + 1);
    r = raw_copy(buf, MAX_BYTES + 1, -1);
    expect_reject("garbage of max + 1 bytes", TOPIC_CCG, ts, &r, CS_ERR_TOO_LARGE, "");
    raw_free(&r);
    /* over the limit with an unknown schema id */
    memset(buf, 0, MAX_BYTES + 1);
    buf[4] = 99;
    r = raw_copy(buf, MAX_BYTES + 1, -1);
    expect_reject("Avro header of id 99, max + 1 bytes", TOPIC_OFS, ts, &r,
                  CS_ERR_TOO_LARGE, "");
    raw_free(&r);

    /* Avro: grow the description until the message is exactly max bytes */
    json_t *v = nhse_value();
    size_t dlen = MAX_BYTES - 200;
    for (int attempt = 0; attempt < 8; attempt++) {
        memset(buf, 'd', dlen);
        buf[dlen] = '\0';
        json_object_set_new(v, "description", json_string(buf));
        r = raw_avro(2, v, "padded Avro");
        if (r.len == MAX_BYTES)
            break;
        dlen += MAX_BYTES - r.len;
        raw_free(&r);
    }
    assert_int_equal(r.len, MAX_BYTES);
    expect_accept("Avro of exactly max bytes", TOPIC_NHSE, ts, &r, 1);
    raw_free(&r);
    buf[dlen] = 'd';
    buf[dlen + 1] = '\0';
    json_object_set_new(v, "description", json_string(buf));
    r = raw_avro(2, v, "padded Avro");
    assert_int_equal(r.len, MAX_BYTES + 1);
    expect_reject("Avro of max + 1 bytes", TOPIC_NHSE, ts, &r, CS_ERR_TOO_LARGE, "");
    raw_free(&r);
    json_decref(v);
    free(buf);

    /* the limit is the configured one */
    cs_normaliser_t *small =
        cs_normaliser_new(fx.reg, fx.rules, raw_topics, 400, errstr, sizeof(errstr));
    assert_non_null(small);
    cs_normaliser_set_directory(small, fx.dir_a);
    char text[512];
    base = (size_t)snprintf(text, sizeof(text), "%s}", nhse_ok);
    memset(text + base, ' ', 401 - base);
    const cs_normalised_event_t *evs;
    size_t count;
    cs_error_t err;
    r = raw_copy(text, 400, -1);
    assert_int_equal(normalise_on(small, TOPIC_NHSE, ts, 0, 1, &r, &evs, &count, &err),
                     CS_OK);
    raw_free(&r);
    r = raw_copy(text, 401, -1);
    assert_int_equal(normalise_on(small, TOPIC_NHSE, ts, 0, 1, &r, &evs, &count, &err),
                     CS_ERR_TOO_LARGE);
    assert_string_equal(err.field, "");
    raw_free(&r);
    cs_normaliser_destroy(small);
}

/* ------------------------------------------------------------------ v1 = v2 */

/* nhse.Incident written with v1 and with v2 (which adds vaccination_site_code), and as
 * JSON, normalise to the same canonical event but for origin.schema_id. */
static void test_nhse_v1_v2_same_event(void **state)
{
    (void)state;
    json_t *v = nhse_value();
    json_object_set_new(v, "vaccination_site_code", json_string("SITE-9"));
    json_object_set_new(v, "description", json_string("text"));
    raw_t rs[3] = {raw_json(v), raw_avro(1, v, "v1"), raw_avro(2, v, "v2")};
    cs_intel_event_t evs[3];
    for (int i = 0; i < 3; i++) {
        const cs_normalised_event_t *out;
        size_t count;
        cs_error_t err;
        assert_int_equal(normalise(TOPIC_NHSE, &rs[i], &out, &count, &err), CS_OK);
        assert_int_equal(count, 1);
        evs[i] = out[0].ev;
        raw_free(&rs[i]);
    }
    assert_int_equal(evs[0].origin_schema_id, -1);
    assert_int_equal(evs[1].origin_schema_id, 1);
    assert_int_equal(evs[2].origin_schema_id, 2);
    evs[0].origin_schema_id = evs[1].origin_schema_id = -1;
    evs[2].origin_schema_id = -1;
    assert_event_equal("v1 vs JSON", &evs[1], &evs[0]);
    assert_event_equal("v2 vs JSON", &evs[2], &evs[0]);
    json_decref(v);
}

/* ------------------------------------------------------------------ canary */

#define CANARY "CANARY-7f3a91c2"

static const char *const canaries[] = {CANARY "-description", CANARY "-narrative",
                                       CANARY "-whistleblower",
                                       CANARY "-vaccination-site"};

static int has_canary(const void *buf, size_t len)
{
    const char *b = buf;
    size_t n = strlen(CANARY);
    for (size_t i = 0; b && i + n <= len; i++)
        if (!memcmp(b + i, CANARY, n))
            return 1;
    return 0;
}

static void assert_no_canary_in_event(const char *ctx, const cs_normalised_event_t *o)
{
    const cs_intel_event_t *e = &o->ev;
    const char *fields[] = {e->event_key,    e->source_org, e->subject_id,
                            e->origin_topic, e->region,     e->local_authority_code,
                            o->key};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        if (strstr(fields[i], CANARY))
            fail_msg("%s: canary in an event field", ctx);
    if (has_canary(o->value, o->value_len))
        fail_msg("%s: canary in the encoded event", ctx);
    if (has_canary(e, sizeof(*e)))
        fail_msg("%s: canary in the event struct", ctx);
}

/* Free text and personal data are dropped at the edge: canaries in description,
 * narrative, whistleblower_name and vaccination_site_code appear in no output (value
 * bytes, key, event) and in no rejection (msg, field) of the same messages made invalid
 * in various ways, in JSON and Avro. Invalid identifiers and enum symbols carrying a
 * canary are not echoed in errors either. */
static void test_canary_never_leaves(void **state)
{
    (void)state;
    char text[1024];
    snprintf(text, sizeof(text),
             "{\"incident_id\":\"INC-C1\",\"reporting_org_ods\":\"RXQ\",\"location_id\":"
             "\"1-101669119\",\"category\":\"NEVER_EVENT\",\"harm\":\"DEATH\","
             "\"occurred_at\":\"2026-11-19T08:30:00Z\",\"reported_at\":"
             "\"2026-11-19T09:00:00Z\",\"description\":\"%s\","
             "\"vaccination_site_code\":\"%s\"}",
             canaries[0], canaries[3]);
    json_t *nhse = json_loads(text, 0, NULL);
    snprintf(text, sizeof(text),
             "{\"concern_ref\":\"CC-C1\",\"ccg_ods\":\"15E\",\"location_id\":\"RXQ02\","
             "\"concern_type\":\"WHISTLEBLOWING\",\"rag\":\"RED\",\"received_on\":"
             "\"2026-11-19\",\"whistleblower_name\":\"%s\",\"narrative\":\"%s\"}",
             canaries[2], canaries[1]);
    json_t *ccg = json_loads(text, 0, NULL);
    assert_non_null(nhse);
    assert_non_null(ccg);

    /* mutations that make each message invalid, keeping the canaries */
    static const struct {
        const char *field;
        const char *json; /* NULL = delete the field */
        int json_only;
    } mutations[] = {
        {NULL, NULL, 0}, /* the valid message itself */
        {"location_id", "\"1-12\"", 0},
        {"location_id", "\"1-999000001\"", 0},
        {"location_id", "null", 1},
        {"location_id", "\"" CANARY "-in-an-id\"", 0},
        {"harm", NULL, 1},
        {"rag", NULL, 1},
        {"harm", "\"" CANARY "_ENUM\"", 1},
        {"rag", "\"" CANARY "_ENUM\"", 1},
        {"occurred_at", "\"2027-11-19T08:30:00Z\"", 0},
        {"received_on", "\"2027-11-19\"", 0},
        {"received_on", "\"" CANARY "\"", 1},
        {"reporting_org_ods", "\"" CANARY "\"", 0},
        {"ccg_ods", "\"r\"", 0},
        {"description", "7", 1},
        {"narrative", "{\"a\":1}", 1},
    };
    struct {
        json_t *base;
        const char *topic;
        int ids[2];
    } msgs[] = {{nhse, TOPIC_NHSE, {1, 2}}, {ccg, TOPIC_CCG, {3, 0}}};
    int checked_ok = 0, checked_err = 0;
    for (size_t m = 0; m < 2; m++)
        for (size_t k = 0; k < sizeof(mutations) / sizeof(mutations[0]); k++) {
            json_t *v = json_deep_copy(msgs[m].base);
            if (mutations[k].field) {
                if (!json_object_get(v, mutations[k].field)) {
                    json_decref(v);
                    continue; /* a field of the other partner */
                }
                if (mutations[k].json)
                    json_object_set_new(
                        v, mutations[k].field,
                        json_loads(mutations[k].json, JSON_DECODE_ANY, NULL));
                else
                    json_object_del(v, mutations[k].field);
            }
            raw_t variants[4];
            int nv = 0;
            variants[nv++] = raw_json(v);
            /* the same JSON text cut short after the canaries: JSON_SYNTAX */
            variants[nv] = raw_json(v);
            variants[nv++].len -= 1;
            if (!mutations[k].json_only)
                for (int i = 0; i < 2 && msgs[m].ids[i]; i++)
                    variants[nv++] = raw_avro(msgs[m].ids[i], v, "canary");
            for (int i = 0; i < nv; i++) {
                char ctx[256];
                snprintf(ctx, sizeof(ctx), "canary %s mutation %zu variant %d",
                         msgs[m].topic, k, i);
                /* the canary was really sent (v1 drops vaccination_site_code only) */
                assert_true(has_canary(variants[i].data, variants[i].len));
                const cs_normalised_event_t *evs;
                size_t count;
                cs_error_t err;
                cs_err_t e = normalise(msgs[m].topic, &variants[i], &evs, &count, &err);
                if (!e) {
                    for (size_t o = 0; o < count; o++)
                        assert_no_canary_in_event(ctx, &evs[o]);
                    checked_ok++;
                } else {
                    if (strstr(err.msg, CANARY) || strstr(err.field, CANARY))
                        fail_msg("%s: canary in the rejection (%s '%s' '%s')", ctx,
                                 cs_err_str(e), err.field, err.msg);
                    checked_err++;
                }
                raw_free(&variants[i]);
            }
            json_decref(v);
        }
    /* the valid messages were accepted in every format; the rest were rejected */
    assert_int_equal(checked_ok, 3 + 2);
    assert_true(checked_err > 40);
    json_decref(nhse);
    json_decref(ccg);
}

/* ------------------------------------------------------------------ directory */

/* cs_normaliser_set_directory swaps the directory between messages (SIGHUP reload). */
static void test_directory_swap(void **state)
{
    (void)state;
    int64_t ts = ms_of(T_DEFAULT);
    json_t *v = nhse_value();
    json_object_set_new(v, "location_id", json_string("1-999000001"));
    raw_t loc = raw_json(v);
    raw_t loc_avro = raw_avro(2, v, "swap");
    raw_t area = raw_text("{\"inspection_ref\":\"SEND-9\",\"local_authority_code\":"
                          "\"E10000014\",\"outcome\":\"POSITIVE\",\"published_at\":"
                          "\"2026-11-20T07:00:00Z\"}");
    raw_t named = raw_text("{\"inspection_ref\":\"SEND-9\",\"local_authority_code\":"
                           "\"E09000001\",\"outcome\":\"POSITIVE\",\"published_at\":"
                           "\"2026-11-20T07:00:00Z\",\"named_location_ids\":"
                           "[\"1-200000001\",\"1-999000001\"]}");
    const cs_normalised_event_t *evs;
    size_t count;
    cs_error_t err;

    /* directory A: unknown */
    expect_reject("A: location", TOPIC_NHSE, ts, &loc, CS_ERR_UNKNOWN_LOCATION,
                  "location_id");
    expect_reject("A: location (Avro)", TOPIC_NHSE, ts, &loc_avro,
                  CS_ERR_UNKNOWN_LOCATION, "location_id");
    expect_reject("A: named", TOPIC_OFS, ts, &named, CS_ERR_UNKNOWN_LOCATION,
                  "named_location_ids[1]");
    assert_int_equal(normalise(TOPIC_OFS, &area, &evs, &count, &err), CS_OK);
    assert_string_equal(evs[0].ev.region, "UNKNOWN");

    /* directory B knows 1-999000001 in E10000014, South East */
    cs_normaliser_set_directory(fx.n, fx.dir_b);
    assert_int_equal(normalise(TOPIC_NHSE, &loc, &evs, &count, &err), CS_OK);
    assert_int_equal(count, 1);
    assert_string_equal(evs[0].ev.subject_id, "1-999000001");
    assert_string_equal(evs[0].ev.region, "South East");
    assert_string_equal(evs[0].ev.local_authority_code, "E10000014");
    check_output_bytes("B: location", &evs[0]);
    assert_int_equal(normalise(TOPIC_NHSE, &loc_avro, &evs, &count, &err), CS_OK);
    assert_int_equal(normalise(TOPIC_OFS, &named, &evs, &count, &err), CS_OK);
    assert_int_equal(count, 3);
    assert_string_equal(evs[2].ev.event_key, "OFSTED_SEND:E09000001:SEND-9#1-999000001");
    assert_string_equal(evs[2].ev.local_authority_code, "E10000014");
    assert_int_equal(normalise(TOPIC_OFS, &area, &evs, &count, &err), CS_OK);
    assert_string_equal(evs[0].ev.region, "South East");

    /* back to A */
    cs_normaliser_set_directory(fx.n, fx.dir_a);
    expect_reject("A again", TOPIC_NHSE, ts, &loc, CS_ERR_UNKNOWN_LOCATION,
                  "location_id");

    /* no directory at all: every LOCATION event is UNKNOWN_LOCATION */
    cs_normaliser_t *bare = cs_normaliser_new(fx.reg, fx.rules, raw_topics, MAX_BYTES,
                                              errstr, sizeof(errstr));
    assert_non_null(bare);
    raw_t known = nhse_json_with("");
    assert_int_equal(normalise_on(bare, TOPIC_NHSE, ts, 0, 1, &known, &evs, &count, &err),
                     CS_ERR_UNKNOWN_LOCATION);
    assert_string_equal(err.field, "location_id");
    assert_int_equal(normalise_on(bare, TOPIC_OFS, ts, 0, 1, &named, &evs, &count, &err),
                     CS_ERR_UNKNOWN_LOCATION);
    assert_string_equal(err.field, "named_location_ids[0]");
    assert_int_equal(normalise_on(bare, TOPIC_OFS, ts, 0, 1, &area, &evs, &count, &err),
                     CS_OK);
    assert_string_equal(evs[0].ev.region, "UNKNOWN");
    cs_normaliser_set_directory(bare, fx.dir_b);
    assert_int_equal(normalise_on(bare, TOPIC_NHSE, ts, 0, 1, &known, &evs, &count, &err),
                     CS_OK);
    cs_normaliser_destroy(bare);

    raw_free(&known);
    raw_free(&loc);
    raw_free(&loc_avro);
    raw_free(&area);
    raw_free(&named);
    json_decref(v);
}

/* ------------------------------------------------------------------ versions */

/* Avro of schema \p id of registry \p reg from JSON text \p text. */
static raw_t raw_avro_in(const cs_registry_t *reg, int id, const char *text)
{
    const cs_schema_t *s = cs_registry_get(reg, id);
    assert_non_null(s);
    cs_converter_t *conv = cs_converter_new(s, errstr, sizeof(errstr));
    assert_non_null(conv);
    json_t *v = json_loads(text, 0, NULL);
    assert_non_null(v);
    avro_value_t val;
    assert_int_equal(avro_generic_value_new(s->iface, &val), 0);
    cs_error_t err;
    if (cs_converter_run(conv, v, &val, &err))
        fail_msg("schema %d: %s %s", id, cs_err_str(err.code), err.field);
    const uint8_t *out;
    size_t len;
    assert_int_equal(cs_encoder_write(fx.enc, id, &val, &out, &len), CS_OK);
    raw_t r = raw_copy(out, len, id);
    avro_value_decref(&val);
    json_decref(v);
    cs_converter_destroy(conv);
    return r;
}

/* docs/contract/formats.md: Avro is read with the writer's own (older) version, fields and enum
 * symbols by name; a field the writer lacks takes the newest version's default, or is
 * FIELD_MISSING if it has none; a symbol the newest version dropped is ENUM_UNKNOWN.
 * Uses the test registry tests/data/normalise/versions/registry.json. */
static void test_older_writer_versions(void **state)
{
    (void)state;
    cs_registry_t *reg = cs_registry_load(
        src_path("tests/data/normalise/versions/registry.json"), errstr, sizeof(errstr));
    if (!reg)
        fail_msg("%s", errstr);
    cs_normaliser_t *n =
        cs_normaliser_new(reg, fx.rules, raw_topics, MAX_BYTES, errstr, sizeof(errstr));
    if (!n)
        fail_msg("%s", errstr);
    cs_normaliser_set_directory(n, fx.dir_a);
    int64_t ts = ms_of(T_DEFAULT);
    const cs_normalised_event_t *evs;
    size_t count;
    cs_error_t err;

    /* ofsted v1 lacks named_location_ids: the newest default [] applies */
    raw_t r = raw_avro_in(reg, 12,
                          "{\"inspection_ref\":\"SEND-L1\",\"local_authority_code\":"
                          "\"E09000001\",\"outcome\":\"SYSTEMIC_FAILINGS\","
                          "\"published_at\":1795077000000}");
    assert_int_equal(normalise_on(n, TOPIC_OFS, ts, 0, 1, &r, &evs, &count, &err), CS_OK);
    assert_int_equal(count, 1);
    assert_string_equal(evs[0].ev.event_key, "OFSTED_SEND:E09000001:SEND-L1");
    assert_int_equal(evs[0].ev.severity, CS_SEVERITY_HIGH);
    assert_int_equal(evs[0].ev.origin_schema_id, 12);
    assert_string_equal(evs[0].ev.region, "London");
    raw_free(&r);

    /* ccg v1: other field order, rag symbols reversed: read by name */
    static const char *const legacy_ccg =
        "{\"ccg_ods\":\"15E\",\"concern_ref\":\"CC-L1\",\"location_id\":"
        "\"1-101669119\",\"rag\":\"%s\",\"concern_type\":\"%s\",\"received_on\":"
        "\"2026-11-18\"}";
    char text[512];
    snprintf(text, sizeof(text), legacy_ccg, "RED", "SAFEGUARDING_REFERRAL");
    r = raw_avro_in(reg, 11, text);
    assert_int_equal(normalise_on(n, TOPIC_CCG, ts, 0, 1, &r, &evs, &count, &err), CS_OK);
    assert_string_equal(evs[0].ev.event_key, "CCG:15E:CC-L1");
    assert_string_equal(evs[0].ev.source_org, "15E");
    assert_int_equal(evs[0].ev.signal, CS_SIGNAL_SAFEGUARDING);
    assert_int_equal(evs[0].ev.area, CS_AREA_PROTECTION_FROM_ABUSE);
    assert_int_equal(evs[0].ev.severity, CS_SEVERITY_HIGH);
    assert_int_equal(evs[0].ev.occurred_at, ms_of("2026-11-18T00:00:00Z"));
    raw_free(&r);
    snprintf(text, sizeof(text), legacy_ccg, "GREEN", "COMPLAINT");
    r = raw_avro_in(reg, 11, text);
    assert_int_equal(normalise_on(n, TOPIC_CCG, ts, 0, 1, &r, &evs, &count, &err), CS_OK);
    assert_int_equal(evs[0].ev.signal, CS_SIGNAL_COMPLAINT);
    assert_int_equal(evs[0].ev.severity, CS_SEVERITY_LOW);
    raw_free(&r);
    /* a symbol only the old version has */
    snprintf(text, sizeof(text), legacy_ccg, "AMBER", "LEGACY_CONCERN");
    r = raw_avro_in(reg, 11, text);
    assert_int_equal(normalise_on(n, TOPIC_CCG, ts, 0, 1, &r, &evs, &count, &err),
                     CS_ERR_ENUM_UNKNOWN);
    assert_string_equal(err.field, "concern_type");
    raw_free(&r);

    /* nhse v1 lacks harm, which has no default: FIELD_MISSING */
    r = raw_avro_in(reg, 13,
                    "{\"incident_id\":\"INC-L1\",\"reporting_org_ods\":\"RXQ\","
                    "\"location_id\":\"1-101669119\",\"category\":\"OUTBREAK\","
                    "\"occurred_at\":1795077000000,\"reported_at\":1795077000000}");
    assert_int_equal(normalise_on(n, TOPIC_NHSE, ts, 0, 1, &r, &evs, &count, &err),
                     CS_ERR_FIELD_MISSING);
    assert_string_equal(err.field, "harm");
    raw_free(&r);

    /* JSON is read against the newest version */
    r = nhse_json_with(",\"vaccination_site_code\":7");
    assert_int_equal(normalise_on(n, TOPIC_NHSE, ts, 0, 1, &r, &evs, &count, &err),
                     CS_ERR_FIELD_TYPE);
    assert_string_equal(err.field, "vaccination_site_code");
    raw_free(&r);

    cs_normaliser_destroy(n);
    cs_registry_destroy(reg);
}

/* ------------------------------------------------------------------ regressions */

/* Regression: a JSON value that is a bare string, number or literal was rejected as
 * JSON_SYNTAX because jansson refuses non-container roots unless JSON_DECODE_ANY is
 * given; docs/contract/reason-codes.md makes valid JSON that is not an object NOT_OBJECT. */
static void test_regression_json_scalar_is_not_object(void **state)
{
    (void)state;
    static const char *const scalars[] = {"\"INC-1\"", "42",    "-1.5e3", "null",
                                          "true",      "false", " \"x\" "};
    for (size_t i = 0; i < sizeof(scalars) / sizeof(scalars[0]); i++) {
        raw_t r = raw_text(scalars[i]);
        expect_reject(scalars[i], TOPIC_NHSE, ms_of(T_DEFAULT), &r, CS_ERR_NOT_OBJECT,
                      "");
        raw_free(&r);
    }
    /* and a scalar followed by garbage is still a syntax error */
    raw_t r = raw_text("42 x");
    expect_reject("42 x", TOPIC_NHSE, ms_of(T_DEFAULT), &r, CS_ERR_JSON_SYNTAX, "");
    raw_free(&r);
}

/* Regression: TIME_RANGE trusted the partner's CreateTime and was skipped when a message
 * had none, so an event dated 2100 (CreateTime 2100, or no timestamp, or epoch ms) was
 * accepted and pinned its subject's as_of there for ever. The upper bound is now the
 * earlier of the timestamp and the normaliser's clock; no timestamp: the clock. */
static cs_err_t normalise_at(const char *topic, int64_t ts, int64_t now, const raw_t *r,
                             cs_error_t *err)
{
    const cs_normalised_event_t *evs;
    size_t count;
    cs_raw_msg_t msg = {.topic = topic,
                        .partition = 0,
                        .offset = 1,
                        .timestamp_ms = ts,
                        .value = r->data,
                        .value_len = r->len,
                        .now_ms = now};
    return cs_normalise(fx.n, &msg, &evs, &count, err);
}

static void test_regression_future_timestamp_pinned_as_of(void **state)
{
    (void)state;
    int64_t now = ms_of("2026-11-20T10:00:00Z"), y2100 = ms_of("2100-01-01T00:00:00Z");
    static const char nhse_fmt[] =
        "{\"incident_id\":\"INC-F\",\"reporting_org_ods\":\"RXQ\",\"location_id\":"
        "\"1-101669119\",\"category\":\"NEVER_EVENT\",\"harm\":\"DEATH\",\"occurred_at\":"
        "%s,\"reported_at\":\"2026-11-19T09:00:00Z\"}";
    static const char ccg_fmt[] =
        "{\"concern_ref\":\"CC-F\",\"ccg_ods\":\"15E\",\"location_id\":\"1-101669119\","
        "\"concern_type\":\"COMPLAINT\",\"rag\":\"RED\",\"received_on\":\"%s\"}";
    struct {
        const char *name, *fmt, *occurred, *topic;
        int64_t ts;
        cs_err_t want;
    } cases[] = {
        {"CreateTime 2100, occurred 2100", nhse_fmt, "\"2100-01-01T00:00:00Z\"",
         TOPIC_NHSE, y2100, CS_ERR_TIME_RANGE},
        {"no timestamp, occurred 2100", nhse_fmt, "\"2100-01-01T00:00:00Z\"", TOPIC_NHSE,
         -1, CS_ERR_TIME_RANGE},
        {"epoch ms in 2100", nhse_fmt, "4102444800000", TOPIC_NHSE, now,
         CS_ERR_TIME_RANGE},
        {"CreateTime 2100, occurred 6 min after the clock", nhse_fmt,
         "\"2026-11-20T10:06:00Z\"", TOPIC_NHSE, y2100, CS_ERR_TIME_RANGE},
        {"CreateTime an hour ahead, occurred 4 min after the clock (tolerance)", nhse_fmt,
         "\"2026-11-20T10:04:00Z\"", TOPIC_NHSE, now + 3600000, CS_OK},
        {"CreateTime 2100, occurred now: still 396 days before the timestamp", nhse_fmt,
         "\"2026-11-20T10:00:00Z\"", TOPIC_NHSE, y2100, CS_ERR_TIME_RANGE},
        {"no timestamp, occurred yesterday", nhse_fmt, "\"2026-11-19T10:00:00Z\"",
         TOPIC_NHSE, -1, CS_OK},
        {"no timestamp, occurred 397 days before the clock", nhse_fmt,
         "\"2025-10-19T10:00:00Z\"", TOPIC_NHSE, -1, CS_ERR_TIME_RANGE},
        {"date 2100, CreateTime 2100", ccg_fmt, "2100-01-01", TOPIC_CCG, y2100,
         CS_ERR_TIME_RANGE},
        {"date 2 days after the clock, CreateTime 2100", ccg_fmt, "2026-11-22", TOPIC_CCG,
         y2100, CS_ERR_TIME_RANGE},
        {"date 1 day after the clock, no timestamp", ccg_fmt, "2026-11-21", TOPIC_CCG, -1,
         CS_OK},
        {"replay: an old message re-read today keeps its own bounds", nhse_fmt,
         "\"2026-01-10T00:00:00Z\"", TOPIC_NHSE, ms_of("2026-01-10T00:01:00Z"), CS_OK},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[512];
        snprintf(text, sizeof(text), cases[i].fmt, cases[i].occurred);
        raw_t r = raw_text(text);
        cs_error_t err;
        cs_err_t e = normalise_at(cases[i].topic, cases[i].ts, now, &r, &err);
        if (e != cases[i].want)
            fail_msg("%s: expected %s, got %s (%s)", cases[i].name,
                     cases[i].want ? cs_err_str(cases[i].want) : "OK",
                     e ? cs_err_str(e) : "OK", e ? err.msg : "");
        raw_free(&r);
    }
}

/* Regression (fuzz_normalise, tests/fuzz/regressions/normalise/ts-int64-max): a Kafka
 * timestamp near INT64_MAX overflowed ts + future tolerance in the TIME_RANGE check
 * (undefined behaviour; UBSan stops the process). Such a message is simply far older
 * than the horizon allows. */
static void test_regression_time_range_timestamp_near_int64_max(void **state)
{
    (void)state;
    raw_t r = raw_text("{\"incident_id\":\"INC-1\",\"reporting_org_ods\":\"RXQ\","
                       "\"location_id\":\"1-101669119\",\"category\":\"OUTBREAK\","
                       "\"harm\":\"LOW\",\"occurred_at\":\"2026-11-19T08:30:00Z\","
                       "\"reported_at\":\"2026-11-19T09:00:00Z\"}");
    const int64_t edges[] = {INT64_MAX, INT64_MAX - fx.rules->future_tolerance_ms,
                             INT64_MAX - fx.rules->future_tolerance_ms + 1};
    for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++)
        expect_reject("timestamp near INT64_MAX", TOPIC_NHSE, edges[i], &r,
                      CS_ERR_TIME_RANGE, "occurred_at");
    raw_free(&r);
}

/* ------------------------------------------------------------------ many outputs */

/* An outcome naming many locations: one event each, in order, repeats once, every
 * value buffer its own (the output table and the encoding arena grow mid-message). */
static void test_ofsted_many_named_locations(void **state)
{
    (void)state;
    enum { N = 150 };
    static const char *const areas[] = {"E09000001", "E08000025", "E06000060"};
    size_t cap = 200 + N * 80;
    char *csv = malloc(cap), *json = malloc(cap);
    assert_non_null(csv);
    assert_non_null(json);
    size_t c = (size_t)snprintf(csv, cap,
                                "location_id,provider_id,name,"
                                "local_authority_code,region,service_type\n");
    size_t j = (size_t)snprintf(json, cap,
                                "{\"inspection_ref\":\"SEND-MANY\",\"local_authority_"
                                "code\":\"E09000001\",\"outcome\":\"INCONSISTENT\","
                                "\"published_at\":\"2026-11-20T07:00:00Z\","
                                "\"named_location_ids\":[");
    for (int i = 0; i < N; i++) {
        c += (size_t)snprintf(csv + c, cap - c, "1-5%08d,p,Home %d,%s,Region %c,s\n", i,
                              i, areas[i % 3], 'A' + i % 3);
        /* every location twice: in order, then again in reverse */
        j += (size_t)snprintf(json + j, cap - j, "%s\"1-5%08d\"", i ? "," : "", i);
    }
    for (int i = N - 1; i >= 0; i--)
        j += (size_t)snprintf(json + j, cap - j, ",\"1-5%08d\"", i);
    snprintf(json + j, cap - j, "]}");
    const char *path = cs_test_write_temp(csv);
    cs_directory_t *dir = cs_directory_load(path, errstr, sizeof(errstr));
    if (!dir)
        fail_msg("%s", errstr);
    unlink(path);
    cs_normaliser_set_directory(fx.n, dir);

    json_t *v = json_loads(json, 0, NULL);
    assert_non_null(v);
    raw_t rs[2] = {raw_text(json), raw_avro(4, v, "many")};
    for (int k = 0; k < 2; k++) {
        const cs_normalised_event_t *evs;
        size_t count;
        cs_error_t err;
        if (normalise(TOPIC_OFS, &rs[k], &evs, &count, &err))
            fail_msg("many named: %s %s %s", cs_err_str(err.code), err.field, err.msg);
        assert_int_equal(count, N + 1);
        assert_string_equal(evs[0].key, "LOCAL_AREA:E09000001");
        assert_string_equal(evs[0].ev.region, "Region A");
        check_output_bytes("many named, area event", &evs[0]);
        for (int i = 0; i < N; i++) {
            const cs_normalised_event_t *o = &evs[i + 1];
            char id[32], key[64], ek[96];
            snprintf(id, sizeof(id), "1-5%08d", i);
            snprintf(key, sizeof(key), "LOCATION:%s", id);
            snprintf(ek, sizeof(ek), "OFSTED_SEND:E09000001:SEND-MANY#%s", id);
            assert_string_equal(o->key, key);
            assert_string_equal(o->ev.event_key, ek);
            assert_string_equal(o->ev.subject_id, id);
            assert_string_equal(o->ev.local_authority_code, areas[i % 3]);
            assert_int_equal(o->ev.region[7], 'A' + i % 3);
            assert_int_equal(o->ev.severity, CS_SEVERITY_MEDIUM);
            assert_true(o->value >= evs[i].value + evs[i].value_len);
            check_output_bytes(ek, o);
        }
        raw_free(&rs[k]);
    }
    json_decref(v);
    cs_normaliser_set_directory(fx.n, fx.dir_a);
    cs_directory_destroy(dir);
    free(csv);
    free(json);
}

/* ------------------------------------------------------------------ topics */

/* The raw topic fixes the source; topic names are configuration. */
static void test_topics(void **state)
{
    (void)state;
    assert_int_equal(cs_normaliser_source_of(fx.n, TOPIC_NHSE), CS_SOURCE_NHSE);
    assert_int_equal(cs_normaliser_source_of(fx.n, TOPIC_CCG), CS_SOURCE_CCG);
    assert_int_equal(cs_normaliser_source_of(fx.n, TOPIC_OFS), CS_SOURCE_OFSTED_SEND);
    assert_int_equal(cs_normaliser_source_of(fx.n, "intel.events"), -1);
    assert_int_equal(cs_normaliser_source_of(fx.n, "intel.raw.nhse2"), -1);

    static const char *const custom[CS_SOURCE_COUNT] = {"p.nhse", "p.ccg", "p.ofsted"};
    cs_normaliser_t *n =
        cs_normaliser_new(fx.reg, fx.rules, custom, MAX_BYTES, errstr, sizeof(errstr));
    assert_non_null(n);
    cs_normaliser_set_directory(n, fx.dir_a);
    raw_t r = nhse_json_with("");
    const cs_normalised_event_t *evs;
    size_t count;
    cs_error_t err;
    assert_int_equal(
        normalise_on(n, "p.nhse", 1795168800000LL, 7, 99, &r, &evs, &count, &err), CS_OK);
    assert_string_equal(evs[0].ev.origin_topic, "p.nhse");
    assert_int_equal(evs[0].ev.origin_partition, 7);
    assert_int_equal(evs[0].ev.origin_offset, 99);
    assert_int_equal(evs[0].ev.source, CS_SOURCE_NHSE);
    /* an NHSE message on the CCG topic is read as a CCG concern: it lacks concern_ref */
    assert_int_equal(
        normalise_on(n, "p.ccg", 1795168800000LL, 0, 1, &r, &evs, &count, &err),
        CS_ERR_FIELD_MISSING);
    assert_string_equal(err.field, "concern_ref");
    /* not a raw topic at all */
    cs_err_t e =
        normalise_on(n, TOPIC_NHSE, 1795168800000LL, 0, 1, &r, &evs, &count, &err);
    assert_true(cs_err_is_reason(e));
    raw_free(&r);
    cs_normaliser_destroy(n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_cases),
        cmocka_unit_test(test_invalid_cases),
        cmocka_unit_test(test_invalid_cases_cover_every_code),
        cmocka_unit_test(test_json_syntax_raw),
        cmocka_unit_test(test_avro_decode_raw),
        cmocka_unit_test(test_avro_bad_date),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_nhse_v1_v2_same_event),
        cmocka_unit_test(test_canary_never_leaves),
        cmocka_unit_test(test_directory_swap),
        cmocka_unit_test(test_ofsted_many_named_locations),
        cmocka_unit_test(test_older_writer_versions),
        cmocka_unit_test(test_regression_json_scalar_is_not_object),
        cmocka_unit_test(test_regression_future_timestamp_pinned_as_of),
        cmocka_unit_test(test_regression_time_range_timestamp_near_int64_max),
        cmocka_unit_test(test_topics),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
