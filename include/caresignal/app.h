/* caresignal program start-up: load what the configuration names, or stop with exit 2.
 * For main() only: these functions exit the process on failure. */
#ifndef CARESIGNAL_APP_H
#define CARESIGNAL_APP_H

#include <librdkafka/rdkafka.h>

#include "caresignal/cli.h"
#include "caresignal/directory.h"
#include "caresignal/kafka.h"
#include "caresignal/runtime.h"
#include "caresignal/registry.h"
#include "caresignal/rules.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Loads schema.registry (exit 2 with one line naming the file on failure). Caller owns.
 */
cs_registry_t *cs_app_registry(const cs_cli_spec_t *spec, const cs_config_t *cfg);

/** Loads rules.file (exit 2 on failure, naming the JSON path). Caller owns. */
cs_rules_t *cs_app_rules(const cs_cli_spec_t *spec, const cs_config_t *cfg);

/** Loads directory.file (exit 2 on failure, naming the file and line). Caller owns. */
cs_directory_t *cs_app_directory(const cs_cli_spec_t *spec, const cs_config_t *cfg);

/** The raw topic of each source, from topic.raw.* (borrowed from \p cfg). */
void cs_app_raw_topics(const cs_config_t *cfg, const char *topics[CS_SOURCE_COUNT]);

/** A producer from the configuration (exit 2 on a configuration error). Caller owns. */
/** The runtime's options from the configuration (inflight.max.*), for \p topics
 *  (borrowed), handing at most \p max_poll messages to the handler at once. */
cs_runtime_options_t cs_app_runtime_options(const cs_config_t *cfg,
                                            const char *const *topics, int ntopics,
                                            size_t max_poll);

/** cs_runtime_new, or exits 2 with the reason (a configuration error). */
cs_runtime_t *cs_app_runtime(const cs_cli_spec_t *spec, const cs_config_t *cfg,
                             const cs_runtime_options_t *opt,
                             const cs_runtime_handler_t *handler);

rd_kafka_t *cs_app_producer(const cs_cli_spec_t *spec, const cs_config_t *cfg);

/**
 * A group consumer of \p topics (exit 2 on a configuration error). Caller closes and
 * destroys it. \p hooks may be NULL.
 */
rd_kafka_t *cs_app_consumer(const cs_cli_spec_t *spec, const cs_config_t *cfg,
                            const char *const *topics, int ntopics,
                            const cs_consumer_hooks_t *hooks);

#ifdef __cplusplus
}
#endif
#endif
