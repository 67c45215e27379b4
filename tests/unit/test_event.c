/* Unit tests of the canonical model: enum names against the IntelEvent schema, subject
 * keys, the start-up model check (tests/data/registry/intelevent-*), and IntelEvent
 * encode/decode: round trips, older versions read by name, foreign schema ids, and
 * truncated or corrupted bytes. */
#include "testenv.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caresignal/codec.h"
#include "caresignal/convert.h"
#include "caresignal/event.h"
#include "caresignal/registry.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static char errstr[1024];

static cs_registry_t *load(const char *rel)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", cs_test_source_dir(), rel);
    cs_registry_t *reg = cs_registry_load(path, errstr, sizeof(errstr));
    if (!reg)
        fail_msg("%s", errstr);
    return reg;
}

static cs_registry_t *load_shipped(void)
{
    return load("schemas/registry.json");
}

static void copy_str(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src);
}

static cs_intel_event_t sample_event(void)
{
    cs_intel_event_t ev;
    memset(&ev, 0, sizeof(ev));
    copy_str(ev.event_key, sizeof(ev.event_key), "NHSE:RXQ:NHSE-2026-000123");
    ev.source = CS_SOURCE_NHSE;
    copy_str(ev.source_org, sizeof(ev.source_org), "RXQ");
    ev.subject_kind = CS_SUBJECT_LOCATION;
    copy_str(ev.subject_id, sizeof(ev.subject_id), "1-101669119");
    ev.signal = CS_SIGNAL_OUTBREAK;
    ev.area = CS_AREA_SAFE_CARE;
    ev.severity = CS_SEVERITY_MEDIUM;
    ev.occurred_at = 1795166100000LL;
    ev.received_at = 1795166200000LL;
    copy_str(ev.origin_topic, sizeof(ev.origin_topic), "intel.raw.nhse");
    ev.origin_partition = 3;
    ev.origin_offset = 123456;
    ev.origin_schema_id = -1;
    copy_str(ev.region, sizeof(ev.region), "London");
    copy_str(ev.local_authority_code, sizeof(ev.local_authority_code), "E09000030");
    return ev;
}

static void assert_event_equal(const cs_intel_event_t *a, const cs_intel_event_t *b)
{
    assert_string_equal(a->event_key, b->event_key);
    assert_int_equal(a->source, b->source);
    assert_string_equal(a->source_org, b->source_org);
    assert_int_equal(a->subject_kind, b->subject_kind);
    assert_string_equal(a->subject_id, b->subject_id);
    assert_int_equal(a->signal, b->signal);
    assert_int_equal(a->area, b->area);
    assert_int_equal(a->severity, b->severity);
    assert_int_equal(a->occurred_at, b->occurred_at);
    assert_int_equal(a->received_at, b->received_at);
    assert_string_equal(a->origin_topic, b->origin_topic);
    assert_int_equal(a->origin_partition, b->origin_partition);
    assert_int_equal(a->origin_offset, b->origin_offset);
    assert_int_equal(a->origin_schema_id, b->origin_schema_id);
    assert_string_equal(a->region, b->region);
    assert_string_equal(a->local_authority_code, b->local_authority_code);
}

/* ------------------------------------------------------------------ names and keys */

/* The C name tables are the symbol lists of the shipped IntelEvent, in order. */
static void test_enum_names_match_the_schema(void **state)
{
    (void)state;
    cs_registry_t *reg = load_shipped();
    const cs_schema_t *s = cs_registry_latest(reg, "caresignal.IntelEvent");
    static const struct {
        const char *field;
        const char *const *names;
        int n;
    } enums[] = {
        {"source", cs_source_names, CS_SOURCE_COUNT},
        {"subject_kind", cs_subject_kind_names, CS_SUBJECT_COUNT},
        {"signal", cs_signal_names, CS_SIGNAL_COUNT},
        {"area", cs_area_names, CS_AREA_COUNT},
        {"severity", cs_severity_names, CS_SEVERITY_COUNT},
    };
    for (size_t i = 0; i < N(enums); i++) {
        json_t *syms = json_object_get(
            json_object_get(cs_schema_field_json(s, enums[i].field), "type"), "symbols");
        assert_int_equal(json_array_size(syms), enums[i].n);
        for (int k = 0; k < enums[i].n; k++) {
            assert_string_equal(json_string_value(json_array_get(syms, (size_t)k)),
                                enums[i].names[k]);
            assert_int_equal(cs_enum_index(enums[i].names, enums[i].n, enums[i].names[k]),
                             k);
        }
    }
    /* docs/contract/reason-codes.md spellings */
    assert_string_equal(cs_source_names[CS_SOURCE_OFSTED_SEND], "OFSTED_SEND");
    assert_string_equal(cs_subject_kind_names[CS_SUBJECT_LOCAL_AREA], "LOCAL_AREA");
    assert_string_equal(cs_signal_names[CS_SIGNAL_SEND_OUTCOME], "SEND_OUTCOME");
    assert_string_equal(cs_area_names[CS_AREA_PROTECTION_FROM_ABUSE],
                        "PROTECTION_FROM_ABUSE");
    assert_string_equal(cs_severity_names[CS_SEVERITY_CRITICAL], "CRITICAL");
    cs_registry_destroy(reg);
}

static void test_enum_index(void **state)
{
    (void)state;
    assert_int_equal(cs_enum_index(cs_signal_names, CS_SIGNAL_COUNT, "SAFEGUARDING"),
                     CS_SIGNAL_SAFEGUARDING);
    assert_int_equal(cs_enum_index(cs_signal_names, CS_SIGNAL_COUNT, "safeguarding"), -1);
    assert_int_equal(
        cs_enum_index(cs_signal_names, CS_SIGNAL_COUNT, "SAFEGUARDING_REFERRAL"), -1);
    assert_int_equal(cs_enum_index(cs_signal_names, CS_SIGNAL_COUNT, ""), -1);
    assert_int_equal(cs_enum_index(cs_severity_names, CS_SEVERITY_COUNT, "INFO"), 0);
    assert_int_equal(cs_enum_index(cs_severity_names, 0, "INFO"), -1);
    /* n bounds the search */
    assert_int_equal(cs_enum_index(cs_severity_names, 2, "MEDIUM"), -1);
}

static void test_subject_key(void **state)
{
    (void)state;
    char out[CS_SUBJECT_KEY_MAX];
    assert_int_equal(cs_subject_key(CS_SUBJECT_LOCATION, "1-101669119", out, sizeof(out)),
                     20);
    assert_string_equal(out, "LOCATION:1-101669119");
    assert_int_equal(cs_subject_key(CS_SUBJECT_LOCATION, "RXQ02", out, sizeof(out)), 14);
    assert_string_equal(out, "LOCATION:RXQ02");
    assert_int_equal(cs_subject_key(CS_SUBJECT_LOCAL_AREA, "E09000030", out, sizeof(out)),
                     20);
    assert_string_equal(out, "LOCAL_AREA:E09000030");
    /* the longest identifier fits the documented maximum */
    char id[CS_ID_MAX + 1];
    memset(id, '9', CS_ID_MAX);
    id[CS_ID_MAX] = '\0';
    size_t n = cs_subject_key(CS_SUBJECT_LOCAL_AREA, id, out, sizeof(out));
    assert_int_equal(n, strlen("LOCAL_AREA:") + CS_ID_MAX);
    assert_true(n < CS_SUBJECT_KEY_MAX);
    assert_int_equal(strlen(out), n);
    /* exactly enough room, then one byte short: truncated, length of what was written */
    char exact[21];
    assert_int_equal(cs_subject_key(CS_SUBJECT_LOCATION, "1-101669119", exact, 21), 20);
    assert_string_equal(exact, "LOCATION:1-101669119");
    assert_int_equal(cs_subject_key(CS_SUBJECT_LOCATION, "1-101669119", exact, 20), 19);
    assert_string_equal(exact, "LOCATION:1-10166911");
    assert_int_equal(cs_subject_key(CS_SUBJECT_LOCATION, "1-101669119", exact, 1), 0);
    assert_string_equal(exact, "");
}

/* Regression: with size 0 the length "written" came back as SIZE_MAX (size - 1). */
static void test_subject_key_zero_size_writes_nothing(void **state)
{
    (void)state;
    char out[4] = "abc";
    assert_int_equal(cs_subject_key(CS_SUBJECT_LOCATION, "1-101669119", out, 0), 0);
    assert_string_equal(out, "abc");
}

/* ------------------------------------------------------------------ model check */

static void test_model_check_shipped(void **state)
{
    (void)state;
    cs_registry_t *reg = load_shipped();
    errstr[0] = '\0';
    assert_int_equal(cs_event_model_check(reg, errstr, sizeof(errstr)), CS_OK);
    cs_event_codec_t *c = cs_event_codec_new(reg, errstr, sizeof(errstr));
    assert_non_null(c);
    cs_event_codec_destroy(c);
    cs_event_codec_destroy(NULL);
    cs_registry_destroy(reg);
}

static void test_model_check_rejects_drift(void **state)
{
    (void)state;
    static const char *const drifted[] = {
        "intelevent-reordered-enum", "intelevent-extra-symbol",
        "intelevent-extra-field",    "intelevent-renamed-field",
        "intelevent-enum-as-string",
    };
    for (size_t i = 0; i < N(drifted); i++) {
        char rel[256], file[1024];
        snprintf(rel, sizeof(rel), "tests/data/registry/%s/registry.json", drifted[i]);
        cs_registry_t *reg = load(rel);
        snprintf(file, sizeof(file),
                 "schema file '%s/tests/data/registry/%s/caresignal.IntelEvent.v1.avsc'",
                 cs_test_source_dir(), drifted[i]);
        errstr[0] = '\0';
        if (cs_event_model_check(reg, errstr, sizeof(errstr)) != CS_ERR_CONFIG)
            fail_msg("%s: model check passed", drifted[i]);
        if (!strstr(errstr, file) || !strstr(errstr, "caresignal.IntelEvent"))
            fail_msg("%s: errstr '%s'", drifted[i], errstr);
        errstr[0] = '\0';
        assert_null(cs_event_codec_new(reg, errstr, sizeof(errstr)));
        assert_non_null(strstr(errstr, file));
        cs_registry_destroy(reg);
    }
    cs_registry_t *reg = load("tests/data/registry/no-intelevent/registry.json");
    assert_int_equal(cs_event_model_check(reg, errstr, sizeof(errstr)), CS_ERR_CONFIG);
    assert_string_equal(errstr, "schema registry: no caresignal.IntelEvent schema");
    assert_null(cs_event_codec_new(reg, errstr, sizeof(errstr)));
    assert_string_equal(errstr, "schema registry: no caresignal.IntelEvent schema");
    cs_registry_destroy(reg);
}

/* ------------------------------------------------------------------ encode / decode */

static void test_round_trip(void **state)
{
    (void)state;
    cs_registry_t *reg = load_shipped();
    cs_event_codec_t *c = cs_event_codec_new(reg, errstr, sizeof(errstr));
    assert_non_null(c);
    cs_intel_event_t evs[12];
    for (size_t i = 0; i < N(evs); i++)
        evs[i] = sample_event();
    /* extremes of every number */
    evs[1].occurred_at = -1;
    evs[1].received_at = 0;
    evs[2].occurred_at = INT64_MIN;
    evs[2].received_at = INT64_MAX;
    evs[2].origin_offset = INT64_MAX;
    evs[2].origin_partition = INT32_MAX;
    evs[2].origin_schema_id = INT32_MAX;
    evs[3].occurred_at = -62135596800000LL; /* 0001-01-01 */
    evs[3].origin_partition = INT32_MIN;
    evs[3].origin_offset = INT64_MIN;
    evs[3].origin_schema_id = INT32_MIN;
    /* the longest strings each buffer holds */
    memset(evs[4].subject_id, 'S', CS_ID_MAX);
    evs[4].subject_id[CS_ID_MAX] = '\0';
    memset(evs[4].event_key, 'K', CS_EVENT_KEY_MAX - 1);
    evs[4].event_key[CS_EVENT_KEY_MAX - 1] = '\0';
    memset(evs[4].origin_topic, 't', CS_TOPIC_MAX);
    evs[4].origin_topic[CS_TOPIC_MAX] = '\0';
    memset(evs[4].source_org, 'O', CS_ID_MAX);
    evs[4].source_org[CS_ID_MAX] = '\0';
    memset(evs[4].region, 'R', CS_ID_MAX);
    evs[4].region[CS_ID_MAX] = '\0';
    memset(evs[4].local_authority_code, 'L', CS_ID_MAX);
    evs[4].local_authority_code[CS_ID_MAX] = '\0';
    /* empty strings and non-ASCII text */
    evs[5].region[0] = '\0';
    evs[5].local_authority_code[0] = '\0';
    copy_str(evs[5].origin_topic, sizeof(evs[5].origin_topic), "intel.raw.\xc3\xaele");
    /* a LOCAL_AREA event of Ofsted */
    evs[6].source = CS_SOURCE_OFSTED_SEND;
    evs[6].subject_kind = CS_SUBJECT_LOCAL_AREA;
    copy_str(evs[6].subject_id, sizeof(evs[6].subject_id), "E09000030");
    evs[6].signal = CS_SIGNAL_SEND_OUTCOME;
    evs[6].area = CS_AREA_ASSURANCE;
    evs[6].severity = CS_SEVERITY_CRITICAL;
    copy_str(evs[6].event_key, sizeof(evs[6].event_key),
             "OFSTED_SEND:E09000030:SEND-1#1-101669119");
    const uint8_t *out;
    size_t out_len;
    for (size_t i = 0; i < N(evs); i++) {
        /* every enum value appears somewhere */
        if (i >= 7) {
            evs[i].source = (cs_source_t)(i % CS_SOURCE_COUNT);
            evs[i].subject_kind = (cs_subject_kind_t)(i % CS_SUBJECT_COUNT);
            evs[i].area = (cs_area_t)(i % CS_AREA_COUNT);
            evs[i].severity = (cs_severity_t)(i % CS_SEVERITY_COUNT);
        }
        for (int sig = 0; sig < (i >= 7 ? CS_SIGNAL_COUNT : 1); sig++) {
            if (i >= 7)
                evs[i].signal = (cs_signal_t)sig;
            assert_int_equal(cs_event_encode(c, &evs[i], &out, &out_len), CS_OK);
            int32_t id;
            const void *payload;
            size_t plen;
            assert_int_equal(cs_wire_parse(out, out_len, &id, &payload, &plen), CS_OK);
            assert_int_equal(id, 5);
            cs_intel_event_t back;
            memset(&back, 0x5a, sizeof(back));
            cs_error_t err;
            if (cs_event_decode(c, out, out_len, &back, &err))
                fail_msg("event %zu: %s", i, err.msg);
            assert_event_equal(&evs[i], &back);
        }
    }
    cs_event_codec_destroy(c);
    cs_registry_destroy(reg);
}

/* Decoding reads fields by name: a message of an older IntelEvent version whose
 * fields are in another order decodes to the same event. */
static void test_decode_older_version_by_name(void **state)
{
    (void)state;
    cs_registry_t *reg =
        load("tests/data/registry/intelevent-two-versions/registry.json");
    cs_event_codec_t *c = cs_event_codec_new(reg, errstr, sizeof(errstr));
    if (!c)
        fail_msg("%s", errstr);
    cs_intel_event_t ev = sample_event(), back;
    const uint8_t *out;
    size_t out_len;
    cs_error_t err;
    assert_int_equal(cs_event_encode(c, &ev, &out, &out_len), CS_OK);
    assert_int_equal(out[4], 9); /* the newest version */
    assert_int_equal(cs_event_decode(c, out, out_len, &back, &err), CS_OK);
    assert_event_equal(&ev, &back);

    /* the same event written with version 1 (id 5) */
    const cs_schema_t *v1 = cs_registry_get(reg, 5);
    assert_string_equal(avro_schema_record_field_name(v1->avro, 0), "region");
    cs_converter_t *conv = cs_converter_new(v1, errstr, sizeof(errstr));
    assert_non_null(conv);
    json_t *j = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:{s:s, s:i, s:I, s:i}, s:s, "
        "s:s}",
        "event_key", ev.event_key, "source", "NHSE", "source_org", ev.source_org,
        "subject_kind", "LOCATION", "subject_id", ev.subject_id, "signal", "OUTBREAK",
        "area", "SAFE_CARE", "severity", "MEDIUM", "occurred_at",
        (json_int_t)ev.occurred_at, "received_at", (json_int_t)ev.received_at, "origin",
        "topic", ev.origin_topic, "partition", ev.origin_partition, "offset",
        (json_int_t)ev.origin_offset, "schema_id", ev.origin_schema_id, "region",
        ev.region, "local_authority_code", ev.local_authority_code);
    assert_non_null(j);
    avro_value_t v;
    avro_generic_value_new(v1->iface, &v);
    assert_int_equal(cs_converter_run(conv, j, &v, &err), CS_OK);
    cs_encoder_t *enc = cs_encoder_new();
    assert_int_equal(cs_encoder_write(enc, 5, &v, &out, &out_len), CS_OK);
    memset(&back, 0, sizeof(back));
    if (cs_event_decode(c, out, out_len, &back, &err))
        fail_msg("%s", err.msg);
    assert_event_equal(&ev, &back);
    /* alternate versions: each keeps its own reusable value */
    for (int k = 0; k < 3; k++) {
        assert_int_equal(cs_event_decode(c, out, out_len, &back, &err), CS_OK);
        const uint8_t *out2;
        size_t out2_len;
        assert_int_equal(cs_event_encode(c, &ev, &out2, &out2_len), CS_OK);
        assert_int_equal(cs_event_decode(c, out2, out2_len, &back, &err), CS_OK);
        assert_event_equal(&ev, &back);
        assert_int_equal(cs_encoder_write(enc, 5, &v, &out, &out_len), CS_OK);
    }
    /* a partner schema of the same registry is not an IntelEvent */
    const uint8_t nhse[] = {0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(cs_event_decode(c, nhse, sizeof(nhse), &back, &err),
                     CS_ERR_SCHEMA_UNKNOWN);
    cs_encoder_destroy(enc);
    avro_value_decref(&v);
    json_decref(j);
    cs_converter_destroy(conv);
    cs_event_codec_destroy(c);
    cs_registry_destroy(reg);
}

static void test_decode_foreign_schema_ids(void **state)
{
    (void)state;
    cs_registry_t *reg = load_shipped();
    cs_event_codec_t *c = cs_event_codec_new(reg, errstr, sizeof(errstr));
    const uint8_t *out;
    size_t out_len;
    cs_intel_event_t ev = sample_event(), back;
    assert_int_equal(cs_event_encode(c, &ev, &out, &out_len), CS_OK);
    uint8_t *copy = malloc(out_len);
    memcpy(copy, out, out_len);
    static const int32_t ids[] = {1, 2, 3, 4, 6, 0, -1, 7, 99, INT32_MAX, INT32_MIN};
    for (size_t i = 0; i < N(ids); i++) {
        cs_wire_header(copy, ids[i]);
        cs_error_t err;
        cs_error_clear(&err);
        if (cs_event_decode(c, copy, out_len, &back, &err) != CS_ERR_SCHEMA_UNKNOWN)
            fail_msg("schema id %d: %s", ids[i], err.msg);
        assert_int_equal(err.code, CS_ERR_SCHEMA_UNKNOWN);
        assert_string_equal(err.field, "");
    }
    /* a real message of another schema */
    const cs_schema_t *n1 = cs_registry_get(reg, 1);
    cs_converter_t *conv = cs_converter_new(n1, errstr, sizeof(errstr));
    json_t *j = json_loads("{\"incident_id\":\"X\",\"reporting_org_ods\":\"RXQ\","
                           "\"location_id\":\"RXQ02\",\"category\":\"OUTBREAK\","
                           "\"harm\":\"LOW\",\"occurred_at\":1,\"reported_at\":2}",
                           0, NULL);
    avro_value_t v;
    avro_generic_value_new(n1->iface, &v);
    cs_error_t err;
    assert_int_equal(cs_converter_run(conv, j, &v, &err), CS_OK);
    cs_encoder_t *enc = cs_encoder_new();
    const uint8_t *nout;
    size_t nlen;
    assert_int_equal(cs_encoder_write(enc, 1, &v, &nout, &nlen), CS_OK);
    assert_int_equal(cs_event_decode(c, nout, nlen, &back, &err), CS_ERR_SCHEMA_UNKNOWN);
    assert_non_null(strstr(err.msg, "schema id 1"));
    cs_encoder_destroy(enc);
    avro_value_decref(&v);
    json_decref(j);
    cs_converter_destroy(conv);
    free(copy);
    cs_event_codec_destroy(c);
    cs_registry_destroy(reg);
}

static void test_decode_corrupted(void **state)
{
    (void)state;
    cs_registry_t *reg = load_shipped();
    cs_event_codec_t *c = cs_event_codec_new(reg, errstr, sizeof(errstr));
    const uint8_t *out;
    size_t out_len;
    cs_intel_event_t ev = sample_event(), back;
    assert_int_equal(cs_event_encode(c, &ev, &out, &out_len), CS_OK);
    uint8_t *good = malloc(out_len + 1);
    memcpy(good, out, out_len);
    long refusals = cs_avro_budget_refusals();
    cs_error_t err;
    /* every strict prefix */
    for (size_t len = 0; len < out_len; len++) {
        uint8_t *p = malloc(len ? len : 1);
        memcpy(p, good, len);
        cs_error_clear(&err);
        if (cs_event_decode(c, p, len, &back, &err) != CS_ERR_AVRO_DECODE)
            fail_msg("prefix of %zu/%zu bytes: %d %s", len, out_len, err.code, err.msg);
        assert_int_equal(err.code, CS_ERR_AVRO_DECODE);
        free(p);
    }
    /* a byte appended */
    good[out_len] = 0;
    assert_int_equal(cs_event_decode(c, good, out_len + 1, &back, &err),
                     CS_ERR_AVRO_DECODE);
    /* not the wire format */
    uint8_t bad_magic[64];
    memcpy(bad_magic, good, sizeof(bad_magic));
    bad_magic[0] = 1;
    assert_int_equal(cs_event_decode(c, bad_magic, sizeof(bad_magic), &back, &err),
                     CS_ERR_AVRO_DECODE);
    /* every byte of the body changed: decodes to a sane event or fails cleanly */
    static const uint8_t masks[] = {0x01, 0x02, 0x40, 0x80, 0xff};
    uint8_t *m = malloc(out_len);
    int ok = 0, bad = 0;
    for (size_t pos = CS_WIRE_HEADER_SIZE; pos < out_len; pos++) {
        for (size_t k = 0; k < N(masks); k++) {
            memcpy(m, good, out_len);
            m[pos] ^= masks[k];
            cs_error_clear(&err);
            cs_err_t rc = cs_event_decode(c, m, out_len, &back, &err);
            if (rc == CS_OK) {
                ok++;
                assert_true((unsigned)back.source < CS_SOURCE_COUNT);
                assert_true((unsigned)back.subject_kind < CS_SUBJECT_COUNT);
                assert_true((unsigned)back.signal < CS_SIGNAL_COUNT);
                assert_true((unsigned)back.area < CS_AREA_COUNT);
                assert_true((unsigned)back.severity < CS_SEVERITY_COUNT);
                assert_true(strlen(back.subject_id) <= CS_ID_MAX);
                assert_true(strlen(back.event_key) < CS_EVENT_KEY_MAX);
                assert_true(strlen(back.origin_topic) <= CS_TOPIC_MAX);
            } else {
                bad++;
                assert_int_equal(rc, CS_ERR_AVRO_DECODE);
                assert_int_equal(err.code, CS_ERR_AVRO_DECODE);
            }
        }
    }
    assert_true(ok > 0 && bad > 0);
    /* still decodes the original afterwards */
    assert_int_equal(cs_event_decode(c, good, out_len, &back, &err), CS_OK);
    assert_event_equal(&ev, &back);
    assert_int_equal(cs_avro_budget_refusals(), refusals);
    free(m);
    free(good);
    cs_event_codec_destroy(c);
    cs_registry_destroy(reg);
}

/* Strings longer than the struct's buffers are refused, never cut or overflowed. */
static void test_decode_oversized_strings(void **state)
{
    (void)state;
    cs_registry_t *reg = load_shipped();
    cs_event_codec_t *c = cs_event_codec_new(reg, errstr, sizeof(errstr));
    const cs_schema_t *s = cs_registry_get(reg, 5);
    cs_converter_t *conv = cs_converter_new(s, errstr, sizeof(errstr));
    cs_encoder_t *enc = cs_encoder_new();
    avro_value_t v;
    avro_generic_value_new(s->iface, &v);
    static const struct {
        const char *field; /* top level, or "origin.topic" */
        size_t len;
        int fits;
        size_t off; /* where the decoded string lands */
    } cases[] = {
        {"subject_id", CS_ID_MAX, 1, offsetof(cs_intel_event_t, subject_id)},
        {"subject_id", CS_ID_MAX + 1, 0, 0},
        {"source_org", CS_ID_MAX + 1, 0, 0},
        {"region", CS_ID_MAX + 1, 0, 0},
        {"local_authority_code", CS_ID_MAX + 1, 0, 0},
        {"local_authority_code", 0, 1, offsetof(cs_intel_event_t, local_authority_code)},
        {"event_key", CS_EVENT_KEY_MAX - 1, 1, offsetof(cs_intel_event_t, event_key)},
        {"event_key", CS_EVENT_KEY_MAX, 0, 0},
        {"event_key", 100000, 0, 0},
        {"origin.topic", CS_TOPIC_MAX, 1, offsetof(cs_intel_event_t, origin_topic)},
        {"origin.topic", CS_TOPIC_MAX + 1, 0, 0},
    };
    for (size_t i = 0; i < N(cases); i++) {
        json_t *j = json_pack(
            "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:{s:s, s:i, s:i, s:i}, "
            "s:s, s:s}",
            "event_key", "K", "source", "CCG", "source_org", "QE1", "subject_kind",
            "LOCATION", "subject_id", "RXQ02", "signal", "COMPLAINT", "area", "ASSURANCE",
            "severity", "LOW", "occurred_at", 1, "received_at", 2, "origin", "topic",
            "intel.raw.ccg", "partition", 0, "offset", 0, "schema_id", 3, "region", "X",
            "local_authority_code", "E09000030");
        char *text = malloc(cases[i].len + 1);
        memset(text, 'x', cases[i].len);
        text[cases[i].len] = '\0';
        if (!strcmp(cases[i].field, "origin.topic"))
            json_object_set_new(json_object_get(j, "origin"), "topic", json_string(text));
        else
            json_object_set_new(j, cases[i].field, json_string(text));
        cs_error_t err;
        assert_int_equal(cs_converter_run(conv, j, &v, &err), CS_OK);
        const uint8_t *out;
        size_t out_len;
        assert_int_equal(cs_encoder_write(enc, 5, &v, &out, &out_len), CS_OK);
        cs_intel_event_t back;
        cs_err_t rc = cs_event_decode(c, out, out_len, &back, &err);
        if (cases[i].fits) {
            if (rc)
                fail_msg("%s of %zu: %s", cases[i].field, cases[i].len, err.msg);
            const char *got = (const char *)&back + cases[i].off;
            assert_string_equal(got, text);
        } else if (rc != CS_ERR_AVRO_DECODE) {
            fail_msg("%s of %zu: rc %d", cases[i].field, cases[i].len, rc);
        }
        free(text);
        json_decref(j);
    }
    avro_value_decref(&v);
    cs_encoder_destroy(enc);
    cs_converter_destroy(conv);
    cs_event_codec_destroy(c);
    cs_registry_destroy(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_enum_names_match_the_schema),
        cmocka_unit_test(test_enum_index),
        cmocka_unit_test(test_subject_key),
        cmocka_unit_test(test_subject_key_zero_size_writes_nothing),
        cmocka_unit_test(test_model_check_shipped),
        cmocka_unit_test(test_model_check_rejects_drift),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_decode_older_version_by_name),
        cmocka_unit_test(test_decode_foreign_schema_ids),
        cmocka_unit_test(test_decode_corrupted),
        cmocka_unit_test(test_decode_oversized_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
