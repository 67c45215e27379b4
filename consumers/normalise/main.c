/* caresignal-normalise: partner events from the raw topics to canonical IntelEvents on
 * intel.events, or byte-for-byte to intel.deadletter with the reason (docs/contract/topics.md to docs/contract/reason-codes.md, docs/contract/guarantees.md).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caresignal/app.h"
#include "caresignal/deadletter.h"
#include "caresignal/log.h"
#include "caresignal/metrics.h"
#include "caresignal/normalise.h"
#include "caresignal/runtime.h"

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
    "cs.error.field and cs.origin.* headers. A message's offset is stored only after "
    "every\n"
    "output of it and of the messages before it is delivered (at-least-once); at most\n"
    "inflight.max.messages / inflight.max.bytes are in flight. SIGHUP reloads\n"
    "directory.file; SIGTERM or SIGINT finishes what is in flight, commits and exits 0.",
    NULL,
    "Example:\n"
    "  caresignal-normalise --config " CS_SYSCONFDIR "/caresignal/caresignal.properties \\\n"
    "      --set directory.file=deploy/dev/data/directory.csv",
};

/* Counters, logged with the runtime's stats (never per event at info level). */
typedef struct stats {
    long raw, events, rejected;
    long by_reason[16];
} stats_t;

static int reason_slot(cs_err_t code)
{
    int slot = CS_ERR_JSON_SYNTAX - code; /* the §5 codes are consecutive */
    return slot >= 0 && slot < 16 ? slot : 15;
}

static void log_stats(const stats_t *s, const cs_runtime_stats_t *rs)
{
    json_t *reasons = json_object();
    for (cs_err_t c = CS_ERR_JSON_SYNTAX; c >= CS_ERR_UNKNOWN_LOCATION; c--)
        if (s->by_reason[reason_slot(c)])
            json_object_set_new(reasons, cs_err_str(c),
                                json_integer(s->by_reason[reason_slot(c)]));
    cs_log_info("normalise totals",
                "{s:I, s:I, s:I, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
                "raw", (json_int_t)s->raw, "events", (json_int_t)s->events,
                "dead_letters", (json_int_t)s->rejected, "by_reason", reasons,
                "offset_resets", (json_int_t)cs_kafka_offset_resets(), "in_flight",
                (json_int_t)rs->in_flight, "pauses", (json_int_t)rs->pauses, "turns",
                (json_int_t)rs->turns, "waits", (json_int_t)rs->waits, "wait_timeouts",
                (json_int_t)rs->wait_timeouts, "requeued", (json_int_t)rs->requeued,
                "full_turns", (json_int_t)rs->full_turns);
}

/* The normaliser's state, shared by the runtime's callbacks. */
typedef struct normaliser_ctx {
    const cs_config_t *cfg;
    cs_normaliser_t *n;
    cs_directory_t *dir;
    cs_runtime_t *rt;
    stats_t st;
    cs_series_t *batch_seconds; /* caresignal_normalise_batch_seconds */
} normaliser_ctx_t;

static void reload_directory(void *opaque)
{
    normaliser_ctx_t *ctx = opaque;
    char errstr[512];
    cs_directory_t *fresh =
        cs_directory_load(ctx->cfg->directory_file, errstr, sizeof(errstr));
    if (!fresh) {
        cs_log_error("directory reload failed: keeping the current directory", "{s:s}",
                     "error", errstr);
        return;
    }
    /* one thread: no message is between normalise and produce here, and what was
     * produced is copied */
    cs_normaliser_set_directory(ctx->n, fresh);
    cs_directory_destroy(ctx->dir);
    ctx->dir = fresh;
    cs_log_info("directory reloaded", "{s:s, s:i}", "file", ctx->cfg->directory_file,
                "locations", (json_int_t)cs_directory_count(fresh));
}

/* Normalises one raw message and starts its outputs. @returns CS_OK, or CS_ERR_FATAL
 * (the program stops; the message is not stored). */
static cs_err_t process(normaliser_ctx_t *ctx, cs_rt_msg_t *msg)
{
    const rd_kafka_message_t *m = msg->m;
    const cs_config_t *cfg = ctx->cfg;
    stats_t *st = &ctx->st;
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
    cs_err_t rc = cs_normalise(ctx->n, &raw, &out, &count, &err);
    if (rc == CS_OK) {
        for (size_t i = 0; i < count; i++) {
            if (cs_rt_produce(msg, cfg->topic_events, RD_KAFKA_PARTITION_UA, out[i].key,
                              out[i].key_len, out[i].value, out[i].value_len, errstr,
                              sizeof(errstr))) {
                cs_log_fatal("produce failed: stopping", "{s:s}", "error", errstr);
                return CS_ERR_FATAL;
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
    return cs_rt_deadletter(msg, cfg->topic_deadletter, cs_err_str(rc), err.field)
               ? CS_ERR_FATAL
               : CS_OK;
}

static void on_messages(void *opaque, cs_rt_msg_t *const *msgs, size_t n)
{
    normaliser_ctx_t *ctx = opaque;
    int64_t t0 = cs_mono_ms();
    for (size_t i = 0; i < n; i++) {
        /* after a failure nothing more is started: never stored, read again after the
         * restart */
        if (cs_exit_status() || process(ctx, msgs[i])) {
            cs_request_fail();
            cs_rt_abandon(msgs[i]);
            continue;
        }
        cs_rt_release(msgs[i]);
    }
    cs_series_observe(ctx->batch_seconds, (double)(cs_mono_ms() - t0) / 1000.0);
}

static void on_stats(void *opaque)
{
    normaliser_ctx_t *ctx = opaque;
    cs_runtime_stats_t rs;
    cs_runtime_get_stats(ctx->rt, &rs);
    log_stats(&ctx->st, &rs);
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
    normaliser_ctx_t ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.cfg = &cfg;
    ctx.dir = cs_app_directory(&spec, &cfg);
    ctx.batch_seconds = cs_metric_at(cs_metric_histogram(
        "caresignal_normalise_batch_seconds",
        "normalising the messages of one poll and starting their produces", NULL,
        cs_metric_seconds_bounds, cs_metric_seconds_nbounds));
    const char *topics[CS_SOURCE_COUNT];
    cs_app_raw_topics(&cfg, topics);
    char errstr[512];
    ctx.n = cs_normaliser_new(reg, rules, topics, cfg.normalise_max_bytes, errstr,
                              sizeof(errstr));
    if (!ctx.n)
        cs_cli_fail(&spec, "%s", errstr);
    cs_normaliser_set_directory(ctx.n, ctx.dir);

    cs_signals_install();
    cs_runtime_options_t opt = cs_app_runtime_options(&cfg, topics, CS_SOURCE_COUNT,
                                                      (size_t)cfg.normalise_batch_max);
    opt.origin_is_timestamp = 1; /* raw messages: published at their own timestamp */
    const char *outputs[] = {cfg.topic_events, cfg.topic_deadletter};
    opt.outputs = outputs;
    opt.noutputs = 2;
    cs_runtime_handler_t handler = {.on_messages = on_messages,
                                    .on_stats = on_stats,
                                    .on_reload = reload_directory,
                                    .opaque = &ctx};
    ctx.rt = cs_app_runtime(&spec, &cfg, &opt, &handler);
    cs_log_info("normalise started", "{s:s, s:s, s:s, s:s, s:i, s:s}", "group",
                cfg.group_id, "events_topic", cfg.topic_events, "deadletter_topic",
                cfg.topic_deadletter, "rules_version", rules->version, "locations",
                (json_int_t)cs_directory_count(ctx.dir), "directory", cfg.directory_file);

    cs_runtime_run(ctx.rt);
    cs_log_info("normalise stopping", NULL);
    /* closing commits what was stored: after a failure that excludes what failed */
    cs_runtime_destroy(ctx.rt);
    cs_normaliser_destroy(ctx.n);
    cs_directory_destroy(ctx.dir);
    cs_rules_destroy(rules);
    cs_registry_destroy(reg);
    cs_cli_release(&cli);
    cs_config_clear(&cfg);
    return cs_exit_status();
}
