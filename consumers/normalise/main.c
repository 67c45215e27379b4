/* caresignal-normalise: partner events from the raw topics to canonical IntelEvents on
 * intel.events, or byte-for-byte to intel.deadletter with the reason (DESIGN §3-§5, §8).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caresignal/app.h"
#include "caresignal/deadletter.h"
#include "caresignal/log.h"
#include "caresignal/normalise.h"

static const cs_cli_spec_t spec = {
    "caresignal-normalise",
    CS_PROG_NORMALISE,
    "[options]",
    "Consumes the partner topics (topic.raw.nhse, topic.raw.ccg, topic.raw.ofsted-send) "
    "as\n"
    "consumer group group.id, validates every message against its partner's Avro schema\n"
    "(JSON, or Avro in the Confluent wire format), maps it to canonical IntelEvents "
    "keyed\n"
    "by subject and writes them to topic.events. A message that cannot be normalised "
    "goes\n"
    "to topic.deadletter with its key and value unchanged and the reason in the "
    "cs.error,\n"
    "cs.error.field and cs.origin.* headers. Offsets are stored only after every output "
    "of\n"
    "a message is delivered (at-least-once). SIGHUP reloads directory.file; SIGTERM or\n"
    "SIGINT finishes the batch, commits and exits 0.",
    NULL,
    "Example:\n"
    "  caresignal-normalise --config deploy/config/caresignal.properties \\\n"
    "      --set directory.file=deploy/dev/data/directory.csv",
};

/* Counters, logged every STATS_INTERVAL_MS (never per event at info level). */
#define STATS_INTERVAL_MS 10000
typedef struct stats {
    long raw, events, rejected;
    long by_reason[16];
} stats_t;

static int reason_slot(cs_err_t code)
{
    int slot = CS_ERR_JSON_SYNTAX - code; /* the §5 codes are consecutive */
    return slot >= 0 && slot < 16 ? slot : 15;
}

static void log_stats(const stats_t *s)
{
    json_t *reasons = json_object();
    for (cs_err_t c = CS_ERR_JSON_SYNTAX; c >= CS_ERR_UNKNOWN_LOCATION; c--)
        if (s->by_reason[reason_slot(c)])
            json_object_set_new(reasons, cs_err_str(c),
                                json_integer(s->by_reason[reason_slot(c)]));
    cs_log_info("normalise totals", "{s:i, s:i, s:i, s:o, s:i}", "raw",
                (json_int_t)s->raw, "events", (json_int_t)s->events, "dead_letters",
                (json_int_t)s->rejected, "by_reason", reasons, "offset_resets",
                (json_int_t)cs_kafka_offset_resets());
}

static void reload_directory(const cs_config_t *cfg, cs_normaliser_t *n,
                             cs_directory_t **dir)
{
    char errstr[512];
    cs_directory_t *fresh =
        cs_directory_load(cfg->directory_file, errstr, sizeof(errstr));
    if (!fresh) {
        cs_log_error("directory reload failed: keeping the current directory", "{s:s}",
                     "error", errstr);
        return;
    }
    /* single-threaded: no message is between normalise and produce here */
    cs_normaliser_set_directory(n, fresh);
    cs_directory_destroy(*dir);
    *dir = fresh;
    cs_log_info("directory reloaded", "{s:s, s:i}", "file", cfg->directory_file,
                "locations", (json_int_t)cs_directory_count(fresh));
}

/* Normalises one raw message and produces its outputs. @returns CS_OK or a Kafka error.
 */
static cs_err_t process(cs_normaliser_t *n, rd_kafka_t *producer, const cs_config_t *cfg,
                        cs_kafka_tracker_t *tracker, const rd_kafka_message_t *m,
                        stats_t *st)
{
    rd_kafka_timestamp_type_t tstype;
    cs_raw_msg_t raw = {.topic = rd_kafka_topic_name(m->rkt),
                        .partition = m->partition,
                        .offset = m->offset,
                        .timestamp_ms = rd_kafka_message_timestamp(m, &tstype),
                        .value = m->payload,
                        .value_len = m->len,
                        .now_ms = cs_wall_ms()};
    const cs_normalised_event_t *out;
    size_t count;
    cs_error_t err;
    char errstr[512];
    st->raw++;
    cs_err_t rc = cs_normalise(n, &raw, &out, &count, &err);
    if (rc == CS_OK) {
        for (size_t i = 0; i < count; i++) {
            if (cs_kafka_produce(producer, tracker, cfg->topic_events,
                                 RD_KAFKA_PARTITION_UA, out[i].key, out[i].key_len,
                                 out[i].value, out[i].value_len, NULL, errstr,
                                 sizeof(errstr))) {
                cs_log_error("produce failed", "{s:s}", "error", errstr);
                return CS_ERR_KAFKA;
            }
        }
        st->events += (long)count;
        return CS_OK;
    }
    if (!cs_err_is_reason(rc)) {
        /* out of memory or a bug: stop rather than dead-letter a good message */
        cs_log_fatal("cannot normalise: stopping", "{s:s, s:s, s:i, s:I}", "error",
                     cs_err_str(rc), "topic", raw.topic, "partition", (int)raw.partition,
                     "offset", (json_int_t)raw.offset);
        return CS_ERR_FATAL;
    }
    st->rejected++;
    st->by_reason[reason_slot(rc)]++;
    cs_log_debug("dead letter", "{s:s, s:s, s:s, s:i, s:I}", "reason", cs_err_str(rc),
                 "field", err.field, "topic", raw.topic, "partition", (int)raw.partition,
                 "offset", (json_int_t)raw.offset);
    if (cs_deadletter_produce(producer, tracker, cfg->topic_deadletter, m, cs_err_str(rc),
                              err.field, errstr, sizeof(errstr))) {
        cs_log_error("produce failed", "{s:s}", "error", errstr);
        return CS_ERR_KAFKA;
    }
    return CS_OK;
}

int main(int argc, char **argv)
{
    cs_config_t cfg;
    cs_cli_t cli;
    cs_cli_parse(&spec, argc, argv, &cfg, &cli);
    if (cli.nargs)
        cs_cli_fail(&spec, "unexpected argument '%s' (see --help)", cli.args[0]);
    cs_cli_require(&spec, &cfg, CS_PROG_NORMALISE);

    cs_registry_t *reg = cs_app_registry(&spec, &cfg);
    cs_rules_t *rules = cs_app_rules(&spec, &cfg);
    cs_directory_t *dir = cs_app_directory(&spec, &cfg);
    const char *topics[CS_SOURCE_COUNT];
    cs_app_raw_topics(&cfg, topics);
    char errstr[512];
    cs_normaliser_t *n = cs_normaliser_new(reg, rules, topics, cfg.normalise_max_bytes,
                                           errstr, sizeof(errstr));
    if (!n)
        cs_cli_fail(&spec, "%s", errstr);
    cs_normaliser_set_directory(n, dir);

    cs_signals_install();
    rd_kafka_t *producer = cs_app_producer(&spec, &cfg);
    rd_kafka_t *consumer = cs_app_consumer(&spec, &cfg, topics, CS_SOURCE_COUNT, NULL);
    cs_log_info("normalise started", "{s:s, s:s, s:s, s:s, s:i, s:s}", "group",
                cfg.group_id, "events_topic", cfg.topic_events, "deadletter_topic",
                cfg.topic_deadletter, "rules_version", rules->version, "locations",
                (json_int_t)cs_directory_count(dir), "directory", cfg.directory_file);

    int batch_max = (int)cfg.normalise_batch_max;
    rd_kafka_message_t **msgs = calloc((size_t)batch_max, sizeof(*msgs));
    stats_t st;
    memset(&st, 0, sizeof(st));
    int64_t next_stats = cs_mono_ms() + STATS_INTERVAL_MS;
    while (cs_running()) {
        if (cs_reload_requested())
            reload_directory(&cfg, n, &dir);
        int got = cs_kafka_poll_batch(consumer, msgs, batch_max, 100);
        cs_kafka_tracker_t tracker;
        memset(&tracker, 0, sizeof(tracker));
        cs_err_t rc = CS_OK;
        for (int i = 0; i < got && rc == CS_OK; i++)
            rc = process(n, producer, &cfg, &tracker, msgs[i], &st);
        /* every output delivered before any input offset is stored (DESIGN §8) */
        cs_err_t wrc = cs_kafka_tracker_wait(producer, &tracker, -1);
        if (rc == CS_OK && wrc == CS_OK) {
            cs_kafka_store_offsets(consumer, msgs, got);
        } else {
            cs_log_fatal(
                "outputs not delivered: stopping without storing offsets, the batch "
                "will be read again",
                "{s:s, s:i}", "error",
                rc ? cs_err_str(rc) : rd_kafka_err2str(tracker.first_err), "messages",
                got);
            cs_request_fail();
        }
        for (int i = 0; i < got; i++)
            rd_kafka_message_destroy(msgs[i]);
        if (cs_mono_ms() >= next_stats) {
            log_stats(&st);
            next_stats = cs_mono_ms() + STATS_INTERVAL_MS;
        }
    }

    cs_log_info("normalise stopping", NULL);
    log_stats(&st);
    /* closing commits what was stored: after a failure that excludes the failed batch */
    cs_kafka_consumer_destroy(consumer);
    rd_kafka_flush(producer, 30000);
    rd_kafka_destroy(producer);
    free(msgs);
    cs_normaliser_destroy(n);
    cs_directory_destroy(dir);
    cs_rules_destroy(rules);
    cs_registry_destroy(reg);
    cs_cli_release(&cli);
    cs_config_clear(&cfg);
    return cs_exit_status();
}
