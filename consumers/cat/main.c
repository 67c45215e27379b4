/* caresignal-cat: prints the messages of a topic as JSON lines, decoding caresignal's
 * Avro (wire format + schema registry). An ops and test tool; it never joins a group. */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caresignal/app.h"
#include "caresignal/codec.h"
#include "caresignal/log.h"

static const cs_cli_option_t options[] = {
    {"topic", "TOPIC", "topic to read (required)"},
    {"partition", "P", "read only partition P"},
    {"from", "WHERE", "beginning (default), end, or an offset"},
    {"count", "N", "stop after N messages"},
    {"follow", NULL, "keep waiting for new messages (default: stop at the end)"},
    {"show-values", NULL,
     "print the values of raw and dead-letter messages too (hidden by default: they hold "
     "partner data, personal data included)"},
    {"count-by", "HEADER",
     "print only the number of messages per value of HEADER (e.g. cs.error)"},
    {"committed", "GROUP",
     "print GROUP's committed offset and the low/high watermarks of each partition, and "
     "exit"},
    {NULL, NULL, NULL},
};

static const cs_cli_spec_t spec = {
    "caresignal-cat",
    CS_PROG_CAT,
    "--topic TOPIC [options]",
    "Prints each message of TOPIC as one JSON object per line: topic, partition, "
    "offset,\n"
    "timestamp, key, headers and value. Avro values in the Confluent wire format are\n"
    "decoded with the schema registry. Only caresignal's own records (IntelEvent,\n"
    "RiskAlert) are printed by default: the values of raw partner messages and of dead\n"
    "letters hold partner free text and personal data, and are shown as a byte count\n"
    "unless --show-values is given.",
    options,
    "Examples:\n"
    "  caresignal-cat --config dev.properties --topic intel.events\n"
    "  caresignal-cat --config dev.properties --topic intel.deadletter   # reasons only",
};

#define MAX_SCHEMAS 64

typedef struct decoders {
    const cs_registry_t *reg;
    cs_decoder_t *dec;
    int ids[MAX_SCHEMAS];
    avro_value_t values[MAX_SCHEMAS];
    int n;
} decoders_t;

static json_t *decode_value(decoders_t *d, const void *buf, size_t len)
{
    int32_t id;
    const void *payload;
    size_t plen;
    if (len > 0 && ((const uint8_t *)buf)[0] == CS_WIRE_MAGIC &&
        !cs_wire_parse(buf, len, &id, &payload, &plen)) {
        const cs_schema_t *s = cs_registry_get(d->reg, id);
        if (!s)
            return json_pack("{s:s, s:i}", "undecodable", "unknown schema id",
                             "schema_id", id);
        int slot = -1;
        for (int i = 0; i < d->n; i++)
            if (d->ids[i] == id)
                slot = i;
        if (slot < 0 && d->n < MAX_SCHEMAS &&
            !avro_generic_value_new(s->iface, &d->values[d->n])) {
            d->ids[d->n] = id;
            slot = d->n++;
        }
        cs_error_t err;
        if (slot < 0 ||
            cs_decoder_read(d->dec, s->avro, payload, plen, &d->values[slot], &err))
            return json_pack("{s:s, s:i}", "undecodable", "corrupt Avro", "schema_id",
                             id);
        char *text = NULL;
        if (avro_value_to_json(&d->values[slot], 1, &text))
            return json_pack("{s:s}", "undecodable", "avro-c cannot print it");
        json_t *j = json_loads(text, 0, NULL);
        free(text);
        return j ? j : json_pack("{s:s}", "undecodable", "avro-c printed invalid JSON");
    }
    json_t *j = json_loadb(buf, len, JSON_DECODE_ANY, NULL);
    return j ? j : json_pack("{s:I}", "bytes", (json_int_t)len);
}

/* caresignal's own records (IntelEvent, RiskAlert in the wire format) hold no partner
 * free text or personal data and are printed; anything else (a raw partner message, JSON
 * or Avro, whistleblower names included, or unknown bytes) is printed only when asked. */
static int canonical_value(const decoders_t *d, const void *buf, size_t len)
{
    int32_t id;
    const void *payload;
    size_t plen;
    if (!buf || !len || ((const uint8_t *)buf)[0] != CS_WIRE_MAGIC ||
        cs_wire_parse(buf, len, &id, &payload, &plen))
        return 0;
    const cs_schema_t *s = cs_registry_get(d->reg, id);
    return s && (!strcmp(s->subject, "caresignal.IntelEvent") ||
                 !strcmp(s->subject, "caresignal.RiskAlert"));
}

static json_t *headers_json(const rd_kafka_message_t *m)
{
    rd_kafka_headers_t *h = NULL;
    json_t *out = json_object();
    if (rd_kafka_message_headers(m, &h) || !h)
        return out;
    const char *name;
    const void *val;
    size_t size;
    for (size_t i = 0; !rd_kafka_header_get_all(h, i, &name, &val, &size); i++) {
        json_t *v = val ? json_stringn(val, size) : json_null();
        json_object_set_new(out, name, v ? v : json_string("(not UTF-8)"));
    }
    return out;
}

static int print_committed(rd_kafka_t *rk, const char *topic,
                           rd_kafka_topic_partition_list_t *parts)
{
    rd_kafka_resp_err_t err = rd_kafka_committed(rk, parts, 10000);
    if (err) {
        cs_log_fatal("cannot read committed offsets", "{s:s}", "error",
                     rd_kafka_err2str(err));
        return 1;
    }
    for (int i = 0; i < parts->cnt; i++) {
        int64_t lo = -1, hi = -1;
        rd_kafka_query_watermark_offsets(rk, topic, parts->elems[i].partition, &lo, &hi,
                                         10000);
        printf("{\"topic\":\"%s\",\"partition\":%d,\"committed\":%" PRId64
               ",\"low\":%" PRId64 ",\"high\":%" PRId64 "}\n",
               topic, (int)parts->elems[i].partition, parts->elems[i].offset, lo, hi);
    }
    return 0;
}

int main(int argc, char **argv)
{
    cs_config_t cfg;
    cs_cli_t cli;
    cs_cli_parse(&spec, argc, argv, &cfg, &cli);
    cs_cli_require(&spec, &cfg, CS_PROG_CAT);
    const char *topic = cs_cli_get(&cli, &spec, "topic");
    if (!topic)
        cs_cli_fail(&spec, "option --topic is required (see --help)");
    long only_partition = -1, count = -1;
    const char *v;
    if ((v = cs_cli_get(&cli, &spec, "partition")) &&
        cs_cli_parse_long(v, 0, 100000, &only_partition))
        cs_cli_fail(&spec, "option --partition: expected a partition number, got '%s'",
                    v);
    if ((v = cs_cli_get(&cli, &spec, "count")) &&
        cs_cli_parse_long(v, 1, LONG_MAX, &count))
        cs_cli_fail(&spec, "option --count: expected a positive number, got '%s'", v);
    int64_t from = RD_KAFKA_OFFSET_BEGINNING;
    if ((v = cs_cli_get(&cli, &spec, "from"))) {
        long off;
        if (!strcmp(v, "end"))
            from = RD_KAFKA_OFFSET_END;
        else if (!strcmp(v, "beginning"))
            from = RD_KAFKA_OFFSET_BEGINNING;
        else if (!cs_cli_parse_long(v, 0, LONG_MAX, &off))
            from = off;
        else
            cs_cli_fail(&spec,
                        "option --from: expected beginning, end or an offset, got '%s'",
                        v);
    }
    int follow = cs_cli_get(&cli, &spec, "follow") != NULL;
    int show_values = cs_cli_get(&cli, &spec, "show-values") != NULL;
    int hide_values = !show_values && !strcmp(topic, cfg.topic_deadletter);
    const char *count_by = cs_cli_get(&cli, &spec, "count-by");
    json_t *counts = json_object();

    cs_registry_t *reg = cs_app_registry(&spec, &cfg);
    cs_signals_install();
    char errstr[512];
    rd_kafka_conf_t *conf = cs_kafka_conf_new(&cfg, errstr, sizeof(errstr));
    if (!conf)
        cs_cli_fail(&spec, "%s", errstr);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", NULL, 0);
    /* --committed reads a group's offsets (OffsetFetch) without joining it */
    const char *committed_group = cs_cli_get(&cli, &spec, "committed");
    rd_kafka_conf_set(conf, "group.id",
                      committed_group ? committed_group : "caresignal-cat", NULL, 0);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!rk)
        cs_cli_fail(&spec, "%s", errstr);
    rd_kafka_poll_set_consumer(rk);

    /* which partitions, and where each ends now */
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
    if (err || md->topic_cnt != 1 || md->topics[0].err) {
        cs_log_fatal("cannot read the topic's metadata", "{s:s, s:s}", "topic", topic,
                     "error", rd_kafka_err2str(err ? err : md->topics[0].err));
        return 1;
    }
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(16);
    int64_t *ends = calloc((size_t)md->topics[0].partition_cnt, sizeof(*ends));
    int active = 0;
    for (int i = 0; i < md->topics[0].partition_cnt; i++) {
        int32_t p = md->topics[0].partitions[i].id;
        if (only_partition >= 0 && p != only_partition)
            continue;
        int64_t lo, hi;
        if (rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000))
            continue;
        ends[p] = hi;
        int64_t start = from == RD_KAFKA_OFFSET_BEGINNING ? lo
                        : from == RD_KAFKA_OFFSET_END     ? hi
                                                          : from;
        if (!follow && start >= hi && !committed_group)
            continue;
        rd_kafka_topic_partition_list_add(parts, topic, p)->offset = start;
        active++;
    }
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    if (committed_group) {
        int rc = print_committed(rk, topic, parts);
        json_decref(counts);
        rd_kafka_topic_partition_list_destroy(parts);
        free(ends);
        rd_kafka_destroy(rk);
        cs_registry_destroy(reg);
        cs_cli_release(&cli);
        cs_config_clear(&cfg);
        return rc;
    }
    rd_kafka_assign(rk, parts);

    decoders_t d = {reg, cs_decoder_new(), {0}, {{0}}, 0};
    long printed = 0;
    while (cs_running() && (follow || active > 0) && (count < 0 || printed < count)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m)
            continue;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                cs_log_warn("consumer error", "{s:s}", "error",
                            rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        if (count_by) {
            char val[256];
            if (cs_kafka_header_get(m, count_by, val, sizeof(val)))
                snprintf(val, sizeof(val), "(none)");
            json_t *c = json_object_get(counts, val);
            json_object_set_new(counts, val,
                                json_integer(c ? json_integer_value(c) + 1 : 1));
            printed++;
            if (!follow && m->offset + 1 >= ends[m->partition])
                active--;
            rd_kafka_message_destroy(m);
            continue;
        }
        rd_kafka_timestamp_type_t tstype;
        json_t *line =
            json_pack("{s:s, s:i, s:I, s:I}", "topic", topic, "partition",
                      (int)m->partition, "offset", (json_int_t)m->offset, "timestamp",
                      (json_int_t)rd_kafka_message_timestamp(m, &tstype));
        json_t *key = m->key ? json_stringn(m->key, m->key_len) : json_null();
        json_object_set_new(line, "key", key ? key : json_string("(binary key)"));
        json_object_set_new(line, "headers", headers_json(m));
        if (hide_values || (!show_values && !canonical_value(&d, m->payload, m->len)))
            json_object_set_new(line, "value_bytes", json_integer((json_int_t)m->len));
        else
            json_object_set_new(line, "value",
                                m->payload ? decode_value(&d, m->payload, m->len)
                                           : json_null());
        char *text = json_dumps(line, JSON_COMPACT);
        puts(text);
        free(text);
        json_decref(line);
        printed++;
        if (!follow && m->offset + 1 >= ends[m->partition])
            active--;
        rd_kafka_message_destroy(m);
    }
    if (count_by) {
        const char *k;
        json_t *n;
        json_object_foreach(counts, k, n)
            printf("%8lld  %s\n", (long long)json_integer_value(n), k);
    }
    json_decref(counts);
    fflush(stdout);
    for (int i = 0; i < d.n; i++)
        avro_value_decref(&d.values[i]);
    cs_decoder_destroy(d.dec);
    rd_kafka_topic_partition_list_destroy(parts);
    free(ends);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    cs_registry_destroy(reg);
    cs_cli_release(&cli);
    cs_config_clear(&cfg);
    return 0;
}
