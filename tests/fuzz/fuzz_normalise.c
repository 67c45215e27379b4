/* caresignal fuzz target: the normaliser's whole entry point (cs_normalise). */
#include "fuzz_common.h"

#include "caresignal/codec.h"
#include "caresignal/directory.h"
#include "caresignal/normalise.h"
#include "caresignal/registry.h"
#include "caresignal/rules.h"

/*
 * Input: byte 0 = topic (low 2 bits: intel.raw.nhse, intel.raw.ccg,
 * intel.raw.ofsted-send, or a topic that is no partner's; bit 6 set: directory checks
 * off, as caresignal-publish validates; bit 7 set: a tombstone, no value), bytes 1-8 =
 * the Kafka timestamp (big-endian int64, any value including -1), the rest = the value
 * (JSON or the Avro wire format). Shorter inputs are padded with zero bytes. The
 * normaliser is the production one: the real registry, rules and the test directory,
 * normalise.max.bytes 65536. Every event it outputs must decode with the scorer's
 * decoder to the same event (else abort: the scorer would dead-letter it).
 */
#define CS_FUZZ_HEADER 9

static const char *const cs_fuzz_topics[4] = {"intel.raw.nhse", "intel.raw.ccg",
                                              "intel.raw.ofsted-send", "intel.events"};

static struct {
    cs_registry_t *reg;
    cs_rules_t *rules;
    cs_directory_t *dir;
    cs_normaliser_t *n;
    cs_event_codec_t *codec;
} fx;

static void cs_fuzz_init(void)
{
    char path[4096], errstr[512];
    cs_avro_allocator_install();
    fx.reg = cs_registry_load(cs_fuzz_src("schemas/registry.json", path, sizeof(path)),
                              errstr, sizeof(errstr));
    if (!fx.reg)
        cs_fuzz_die("registry", errstr);
    fx.rules = cs_rules_load(cs_fuzz_src("deploy/config/rules.json", path, sizeof(path)),
                             errstr, sizeof(errstr));
    if (!fx.rules)
        cs_fuzz_die("rules", errstr);
    fx.dir = cs_directory_load(
        cs_fuzz_src("tests/data/normalise/directory.csv", path, sizeof(path)), errstr,
        sizeof(errstr));
    if (!fx.dir)
        cs_fuzz_die("directory", errstr);
    fx.n = cs_normaliser_new(fx.reg, fx.rules, cs_fuzz_topics, 65536, errstr,
                             sizeof(errstr));
    if (!fx.n)
        cs_fuzz_die("normaliser", errstr);
    cs_normaliser_set_directory(fx.n, fx.dir);
    fx.codec = cs_event_codec_new(fx.reg, errstr, sizeof(errstr));
    if (!fx.codec)
        cs_fuzz_die("event codec", errstr);
}

/* Field by field: struct padding is not part of an event. */
static int cs_fuzz_same_event(const cs_intel_event_t *a, const cs_intel_event_t *b)
{
    return !strcmp(a->event_key, b->event_key) && a->source == b->source &&
           !strcmp(a->source_org, b->source_org) && a->subject_kind == b->subject_kind &&
           !strcmp(a->subject_id, b->subject_id) && a->signal == b->signal &&
           a->area == b->area && a->severity == b->severity &&
           a->occurred_at == b->occurred_at && a->received_at == b->received_at &&
           !strcmp(a->origin_topic, b->origin_topic) &&
           a->origin_partition == b->origin_partition &&
           a->origin_offset == b->origin_offset &&
           a->origin_schema_id == b->origin_schema_id && !strcmp(a->region, b->region) &&
           !strcmp(a->local_authority_code, b->local_authority_code);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fx.n)
        cs_fuzz_init();
    uint8_t head[CS_FUZZ_HEADER] = {0};
    memcpy(head, data, size < CS_FUZZ_HEADER ? size : CS_FUZZ_HEADER);
    uint64_t ts = 0;
    for (int i = 1; i < CS_FUZZ_HEADER; i++)
        ts = ts << 8 | head[i];
    size_t skip = size < CS_FUZZ_HEADER ? size : CS_FUZZ_HEADER;
    /* libFuzzer's buffer is exactly size bytes, so ASan sees any read past the value */
    const uint8_t *value = head[0] & 0x80 ? NULL : data + skip;
    /* designated initialisers: fields added to cs_raw_msg_t later keep their zero */
    cs_raw_msg_t msg = {.topic = cs_fuzz_topics[head[0] & 3],
                        .partition = 0,
                        .offset = 42,
                        .timestamp_ms = (int64_t)ts,
                        .value = value,
                        .value_len = value ? size - skip : 0};
    const cs_normalised_event_t *events;
    size_t count;
    cs_error_t err;
    cs_normaliser_set_location_check(fx.n, !(head[0] & 0x40));
    if (cs_normalise(fx.n, &msg, &events, &count, &err) != CS_OK)
        return 0;
    for (size_t i = 0; i < count; i++) {
        cs_intel_event_t back;
        if (cs_event_decode(fx.codec, events[i].value, events[i].value_len, &back,
                            &err) ||
            !cs_fuzz_same_event(&back, &events[i].ev)) {
            fprintf(stderr, "normalise: output %zu does not decode to itself (%s)\n", i,
                    err.msg);
            abort();
        }
    }
    return 0;
}
