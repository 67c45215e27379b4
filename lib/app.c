/* caresignal program start-up: configuration-named files and clients, exit 2 on failure.
 */
#include "caresignal/app.h"

cs_registry_t *cs_app_registry(const cs_cli_spec_t *spec, const cs_config_t *cfg)
{
    char errstr[512];
    cs_registry_t *reg = cs_registry_load(cfg->schema_registry, errstr, sizeof(errstr));
    if (!reg)
        cs_cli_fail(spec, "%s (config key 'schema.registry')", errstr);
    return reg;
}

cs_rules_t *cs_app_rules(const cs_cli_spec_t *spec, const cs_config_t *cfg)
{
    char errstr[512];
    cs_rules_t *rules = cs_rules_load(cfg->rules_file, errstr, sizeof(errstr));
    if (!rules)
        cs_cli_fail(spec, "%s (config key 'rules.file')", errstr);
    return rules;
}

cs_directory_t *cs_app_directory(const cs_cli_spec_t *spec, const cs_config_t *cfg)
{
    char errstr[512];
    cs_directory_t *dir = cs_directory_load(cfg->directory_file, errstr, sizeof(errstr));
    if (!dir)
        cs_cli_fail(spec, "%s (config key 'directory.file')", errstr);
    return dir;
}

void cs_app_raw_topics(const cs_config_t *cfg, const char *topics[CS_SOURCE_COUNT])
{
    topics[CS_SOURCE_NHSE] = cfg->topic_raw_nhse;
    topics[CS_SOURCE_CCG] = cfg->topic_raw_ccg;
    topics[CS_SOURCE_OFSTED_SEND] = cfg->topic_raw_ofsted_send;
}

cs_runtime_options_t cs_app_runtime_options(const cs_config_t *cfg,
                                            const char *const *topics, int ntopics,
                                            size_t max_poll)
{
    cs_runtime_options_t opt = {.topics = topics,
                                .ntopics = ntopics,
                                .max_messages = (size_t)cfg->inflight_max_messages,
                                .max_bytes = (size_t)cfg->inflight_max_bytes,
                                .max_poll = max_poll,
                                .revoke_drain_ms = 10000,
                                .stop_drain_ms = 20000,
                                .stats_interval_ms = 10000};
    return opt;
}

cs_runtime_t *cs_app_runtime(const cs_cli_spec_t *spec, const cs_config_t *cfg,
                             const cs_runtime_options_t *opt,
                             const cs_runtime_handler_t *handler)
{
    char errstr[512];
    cs_runtime_t *rt = cs_runtime_new(cfg, opt, handler, errstr, sizeof(errstr));
    if (!rt)
        cs_cli_fail(spec, "%s", errstr);
    return rt;
}

rd_kafka_t *cs_app_producer(const cs_cli_spec_t *spec, const cs_config_t *cfg)
{
    char errstr[512];
    rd_kafka_t *rk = cs_kafka_producer_new(cfg, errstr, sizeof(errstr));
    if (!rk)
        cs_cli_fail(spec, "%s", errstr);
    return rk;
}

rd_kafka_t *cs_app_consumer(const cs_cli_spec_t *spec, const cs_config_t *cfg,
                            const char *const *topics, int ntopics,
                            const cs_consumer_hooks_t *hooks)
{
    char errstr[512];
    rd_kafka_t *rk = cs_kafka_consumer_new(cfg, cfg->group_id, topics, ntopics, hooks,
                                           errstr, sizeof(errstr));
    if (!rk)
        cs_cli_fail(spec, "%s", errstr);
    return rk;
}
