/* caresignal publish: partner-side validation (the normaliser's own code) and publishing.
 */
#include "caresignal/publish.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caresignal/codec.h"
#include "caresignal/convert.h"
#include "caresignal/kafka.h"
#include "caresignal/normalise.h"
#include "caresignal/signals.h"

/* One queued event. Records live in fixed blocks so librdkafka can hold pointers to
 * their trackers until each is reported. */
typedef struct cs_pub_record {
    cs_kafka_tracker_t tracker;
    cs_publisher_t *pub;
    void *ref;
} cs_pub_record_t;

#define CS_PUB_BLOCK 1024
typedef struct cs_pub_block {
    cs_pub_record_t rec[CS_PUB_BLOCK];
    int used;
    struct cs_pub_block *next;
} cs_pub_block_t;

struct cs_publisher {
    cs_publish_options_t opts;
    char key_field[CS_RULES_NAME_MAX];
    char topic[CS_TOPIC_MAX + 1];
    cs_registry_t *reg;
    cs_rules_t *rules;
    cs_normaliser_t *norm;
    const cs_schema_t *schema;
    cs_converter_t *conv;
    avro_value_t value;
    int have_value;
    cs_encoder_t *enc;
    rd_kafka_t *rk;
    cs_pub_block_t *blocks;
    long outstanding, failed;
};

void cs_publisher_destroy(cs_publisher_t *p)
{
    if (!p)
        return;
    if (p->rk)
        rd_kafka_destroy(p->rk);
    for (cs_pub_block_t *b = p->blocks, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    if (p->have_value)
        avro_value_decref(&p->value);
    cs_encoder_destroy(p->enc);
    cs_converter_destroy(p->conv);
    cs_normaliser_destroy(p->norm);
    cs_rules_destroy(p->rules);
    cs_registry_destroy(p->reg);
    free(p);
}

cs_publisher_t *cs_publisher_new(const cs_config_t *cfg, const cs_publish_options_t *opts,
                                 char *errstr, size_t errstr_size)
{
    cs_publisher_t *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->opts = *opts;
    const char *topics[CS_SOURCE_COUNT] = {cfg->topic_raw_nhse, cfg->topic_raw_ccg,
                                           cfg->topic_raw_ofsted_send};
    snprintf(p->topic, sizeof(p->topic), "%s", topics[opts->source]);
    char inner[512];
    if (!(p->reg = cs_registry_load(cfg->schema_registry, inner, sizeof(inner)))) {
        snprintf(errstr, errstr_size, "%s (config key 'schema.registry')", inner);
        goto fail;
    }
    if (!(p->rules = cs_rules_load(cfg->rules_file, inner, sizeof(inner)))) {
        snprintf(errstr, errstr_size, "%s (config key 'rules.file')", inner);
        goto fail;
    }
    if (!(p->norm = cs_normaliser_new(p->reg, p->rules, topics, cfg->normalise_max_bytes,
                                      errstr, errstr_size)))
        goto fail;
    cs_normaliser_set_location_check(p->norm, 0);
    const cs_rules_source_t *rs = &p->rules->sources[opts->source];
    snprintf(p->key_field, sizeof(p->key_field), "%s",
             opts->key_field ? opts->key_field : rs->subject_field);
    if (opts->avro) {
        p->schema = cs_registry_latest(p->reg, rs->schema);
        if (!(p->conv = cs_converter_new(p->schema, errstr, errstr_size)) ||
            !(p->enc = cs_encoder_new()) ||
            avro_generic_value_new(p->schema->iface, &p->value))
            goto fail;
        p->have_value = 1;
    }
    if (!opts->dry_run && !(p->rk = cs_kafka_producer_new(cfg, errstr, errstr_size)))
        goto fail;
    return p;
fail:
    cs_publisher_destroy(p);
    return NULL;
}

const char *cs_publisher_topic(const cs_publisher_t *p)
{
    return p->topic;
}

static void cs_pub_report(void *opaque, const rd_kafka_message_t *msg)
{
    cs_pub_record_t *r = opaque;
    cs_publisher_t *p = r->pub;
    p->outstanding--;
    if (msg->err)
        p->failed++;
    if (p->opts.on_report)
        p->opts.on_report(p->opts.opaque, r->ref, msg->err ? CS_ERR_KAFKA : CS_OK,
                          msg->err ? rd_kafka_err2str(msg->err) : "");
}

static cs_pub_record_t *cs_pub_record(cs_publisher_t *p)
{
    if (!p->blocks || p->blocks->used == CS_PUB_BLOCK) {
        cs_pub_block_t *b = calloc(1, sizeof(*b));
        if (!b)
            return NULL;
        b->next = p->blocks;
        p->blocks = b;
    }
    cs_pub_record_t *r = &p->blocks->rec[p->blocks->used++];
    memset(r, 0, sizeof(*r));
    r->pub = p;
    r->tracker.on_report = cs_pub_report;
    r->tracker.opaque = r;
    return r;
}

cs_err_t cs_publisher_send(cs_publisher_t *p, const char *json, size_t len, void *ref,
                           cs_error_t *err)
{
    cs_error_clear(err);
    /* the bytes the normaliser will see: the JSON as given, or its Avro form */
    const void *value = json;
    size_t value_len = len;
    json_error_t jerr;
    json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (doc && p->opts.avro) {
        const uint8_t *bytes;
        cs_err_t rc = cs_converter_run(p->conv, doc, &p->value, err);
        if (rc) {
            json_decref(doc);
            return rc;
        }
        if (cs_encoder_write(p->enc, p->schema->id, &p->value, &bytes, &value_len)) {
            json_decref(doc);
            return cs_error_set(err, CS_ERR_FATAL, NULL,
                                "cannot encode the event as Avro");
        }
        value = bytes;
    }
    int64_t now = cs_wall_ms(); /* the CreateTime our producer will give it */
    cs_raw_msg_t raw = {.topic = p->topic,
                        .timestamp_ms = now,
                        .value = value,
                        .value_len = value_len,
                        .now_ms = now};
    const cs_normalised_event_t *events;
    size_t count;
    cs_err_t rc = cs_normalise(p->norm, &raw, &events, &count, err);
    if (rc) {
        json_decref(doc);
        return rc;
    }
    const char *key = json_string_value(json_object_get(doc, p->key_field));
    size_t key_len = key ? json_string_length(json_object_get(doc, p->key_field)) : 0;
    if (p->opts.dry_run) {
        json_decref(doc);
        return CS_OK;
    }
    cs_pub_record_t *r = cs_pub_record(p);
    if (!r) {
        json_decref(doc);
        return cs_error_set(err, CS_ERR_NOMEM, NULL, "out of memory");
    }
    r->ref = ref;
    char errstr[256];
    rc = cs_kafka_produce(p->rk, &r->tracker, p->topic, RD_KAFKA_PARTITION_UA, key,
                          key_len, value, value_len, NULL, errstr, sizeof(errstr));
    json_decref(doc);
    if (rc) {
        p->blocks->used--;
        return cs_error_set(err, CS_ERR_KAFKA, NULL, "%s", errstr);
    }
    p->outstanding++;
    return CS_OK;
}

void cs_publisher_poll(cs_publisher_t *p)
{
    if (p->rk)
        rd_kafka_poll(p->rk, 0);
}

cs_err_t cs_publisher_flush(cs_publisher_t *p, int timeout_ms)
{
    if (!p->rk)
        return CS_OK;
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : cs_mono_ms() + timeout_ms;
    while (p->outstanding > 0) {
        int64_t left = deadline - cs_mono_ms();
        if (left <= 0)
            return CS_ERR_TIMEOUT;
        rd_kafka_flush(p->rk, left < 200 ? (int)left : 200);
    }
    return p->failed ? CS_ERR_KAFKA : CS_OK;
}
