/* caresignal-devbroker: librdkafka's mock cluster as a standalone Kafka-protocol broker
 * for development and tests. It keeps everything in memory (nothing on disk). */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caresignal/cli.h"
#include "caresignal/kafka.h"
#include "caresignal/log.h"
#include "caresignal/signals.h"

/*
 * Partition counts are sized for the demo and the tests: the mock keeps only the
 * last 5 MiB (or 100,000 batches) of each partition, so a topic holds roughly
 * partitions x 5 MiB before old data is lost to "retention" (DESIGN §2).
 */
typedef struct devtopic {
    const char *name;
    int partitions;
    char *owned; /* name allocated from --partitions, freed at exit */
} devtopic_t;

static const cs_cli_option_t options[] = {
    {"brokers", "N", "number of brokers in the cluster (default 3)"},
    {"partitions", "TOPIC=N",
     "partition count of a topic (repeatable; creates any other topic named)"},
    {"bootstrap-file", "FILE", "also write the bootstrap list to FILE"},
    {NULL, NULL, NULL},
};

static const cs_cli_spec_t spec = {
    "caresignal-devbroker",
    CS_PROG_DEVBROKER,
    "[options]",
    "Runs librdkafka's mock cluster as a Kafka-protocol broker on loopback, creates\n"
    "caresignal's topics, prints the bootstrap list on stdout and runs until SIGTERM.\n"
    "Everything is kept in memory: a restart loses all topics, messages and offsets.\n"
    "It is a development and test broker, not Apache Kafka.",
    options,
    "Default partitions: raw topics 8 (ofsted-send 4), intel.events 16, intel.alerts 4,\n"
    "intel.deadletter 4. Each partition keeps only its last 5 MiB.\n"
    "Example: caresignal-devbroker --brokers 1 --partitions intel.events=64",
};

static int add_topic(devtopic_t *topics, int *n, int max, const char *name, int parts)
{
    for (int i = 0; i < *n; i++) {
        if (!strcmp(topics[i].name, name)) {
            topics[i].partitions = parts;
            return 0;
        }
    }
    if (*n >= max)
        return -1;
    topics[*n].name = name;
    topics[*n].partitions = parts;
    topics[*n].owned = NULL;
    (*n)++;
    return 0;
}

int main(int argc, char **argv)
{
    cs_config_t cfg;
    cs_cli_t cli;
    cs_cli_parse(&spec, argc, argv, &cfg, &cli);
    if (cli.nargs)
        cs_cli_fail(&spec, "unexpected argument '%s' (see --help)", cli.args[0]);

    long brokers = 3;
    const char *b = cs_cli_get(&cli, &spec, "brokers");
    if (b && cs_cli_parse_long(b, 1, 16, &brokers))
        cs_cli_fail(&spec, "option --brokers: expected 1 to 16, got '%s'", b);

    enum { MAX_TOPICS = 64 };
    devtopic_t topics[MAX_TOPICS];
    int ntopics = 0;
    add_topic(topics, &ntopics, MAX_TOPICS, cfg.topic_raw_nhse, 8);
    add_topic(topics, &ntopics, MAX_TOPICS, cfg.topic_raw_ccg, 8);
    add_topic(topics, &ntopics, MAX_TOPICS, cfg.topic_raw_ofsted_send, 4);
    add_topic(topics, &ntopics, MAX_TOPICS, cfg.topic_events, 16);
    add_topic(topics, &ntopics, MAX_TOPICS, cfg.topic_alerts, 4);
    add_topic(topics, &ntopics, MAX_TOPICS, cfg.topic_deadletter, 4);
    int popt = 1; /* index of "partitions" in options[] */
    for (int i = 0; i < cli.multi_cnt[popt]; i++) {
        const char *arg = cli.multi[popt][i];
        const char *eq = strrchr(arg, '=');
        long parts;
        if (!eq || eq == arg || cs_cli_parse_long(eq + 1, 1, 10000, &parts))
            cs_cli_fail(&spec,
                        "option --partitions: expected TOPIC=N (N 1..10000), got '%s'",
                        arg);
        char *name = strndup(arg, (size_t)(eq - arg));
        int before = ntopics;
        if (!name || add_topic(topics, &ntopics, MAX_TOPICS, name, (int)parts))
            cs_cli_fail(&spec, "option --partitions: at most %d topics", MAX_TOPICS);
        if (ntopics > before)
            topics[before].owned = name;
        else
            free(name);
    }

    cs_signals_install();
    char errstr[512];
    /* The mock cluster is hosted by a client handle; routing its conf through
     * cs_kafka_conf_new makes the mock's own logs JSON lines too. */
    rd_kafka_conf_t *conf = cs_kafka_conf_new(&cfg, errstr, sizeof(errstr));
    if (!conf) {
        cs_log_fatal("bad kafka configuration", "{s:s}", "error", errstr);
        return 2;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        cs_log_fatal("cannot create the client that hosts the mock cluster", "{s:s}",
                     "error", errstr);
        return 1;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, (int)brokers);
    if (!mc) {
        cs_log_fatal("cannot start the mock cluster", NULL);
        rd_kafka_destroy(rk);
        return 1;
    }
    int rf = brokers < 3 ? (int)brokers : 3;
    for (int i = 0; i < ntopics; i++) {
        rd_kafka_resp_err_t err =
            rd_kafka_mock_topic_create(mc, topics[i].name, topics[i].partitions, rf);
        if (err) {
            cs_log_fatal("cannot create topic", "{s:s, s:s}", "topic", topics[i].name,
                         "error", rd_kafka_err2str(err));
            rd_kafka_mock_cluster_destroy(mc);
            rd_kafka_destroy(rk);
            return 1;
        }
        cs_log_info("topic created", "{s:s, s:i, s:i}", "topic", topics[i].name,
                    "partitions", topics[i].partitions, "replication_factor", rf);
    }

    const char *bootstrap = rd_kafka_mock_cluster_bootstraps(mc);
    const char *bfile = cs_cli_get(&cli, &spec, "bootstrap-file");
    if (bfile) {
        FILE *f = fopen(bfile, "w");
        if (!f || fprintf(f, "%s\n", bootstrap) < 0 || fclose(f)) {
            cs_log_fatal("cannot write the bootstrap file", "{s:s}", "file", bfile);
            rd_kafka_mock_cluster_destroy(mc);
            rd_kafka_destroy(rk);
            return 1;
        }
    }
    printf("%s\n", bootstrap);
    fflush(stdout);
    cs_log_info("devbroker ready", "{s:s, s:i}", "bootstrap", bootstrap, "brokers",
                (int)brokers);

    while (cs_running())
        cs_sleep_ms(200);

    cs_log_info("devbroker stopping", NULL);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    for (int i = 0; i < ntopics; i++)
        free(topics[i].owned);
    cs_cli_release(&cli);
    cs_config_clear(&cfg);
    return 0;
}
