/* caresignal-devbroker: librdkafka's mock cluster as a standalone Kafka-protocol broker
 * for development and tests, with fault injection driven through a control socket. It
 * keeps everything in memory (nothing on disk). */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caresignal/cli.h"
#include "caresignal/kafka.h"
#include "caresignal/log.h"
#include "caresignal/signals.h"
#include "devbroker_control.h"
#include "devbroker_socket.h"

/*
 * Partition counts are sized for the demo and the tests: the mock keeps only the
 * last 5 MiB (or 100,000 batches) of each partition, so a topic holds roughly
 * partitions x 5 MiB before old data is lost to "retention" (docs/contract/environment.md).
 */
typedef struct devtopic {
    const char *name;
    int partitions;
    char *owned; /* name allocated from --partitions, freed at exit */
} devtopic_t;

enum { MAX_TOPICS = 64 };

/* How long --send waits for its reply: a command takes milliseconds, unless the
 * mock's thread is stuck. */
#define SEND_TIMEOUT_MS 30000

static const cs_cli_option_t options[] = {
    {"brokers", "N", "number of brokers in the cluster (default 3)"},
    {"partitions", "TOPIC=N",
     "partition count of a topic (repeatable; creates any other topic named)"},
    {"bootstrap-file", "FILE", "also write the bootstrap list to FILE"},
    {"control", "PATH",
     "serve the control commands below on a Unix socket at PATH (mode 0600)"},
    {"send", "PATH",
     "run as a client: send COMMAND... to the control socket PATH, print the reply"},
    {NULL, NULL, NULL},
};

static const char epilog_head[] =
    "Default partitions: raw topics 8 (ofsted-send 4), intel.events 16, intel.alerts 4,\n"
    "intel.deadletter 4. Each partition keeps only its last 5 MiB.\n"
    "Example: caresignal-devbroker --brokers 1 --partitions intel.events=64\n\n";

static const char epilog_tail[] =
    "Broker ids are 1..N; ApiName is the Kafka protocol's (Produce, Fetch, ListOffsets,\n"
    "OffsetCommit, OffsetFetch, FindCoordinator, JoinGroup, Heartbeat, LeaveGroup,\n"
    "SyncGroup, ApiVersions, InitProducerId, ...); ERROR_NAME is librdkafka's without\n"
    "RD_KAFKA_RESP_ERR_. errors and broker-errors refuse Metadata (the mock never fails\n"
    "it with injected errors: use topic-error) and the APIs the mock does not serve.\n"
    "Every injected fault is logged as one JSON line (\"fault injected\").\n\n"
    "--send PATH COMMAND... joins the words into one command, prints the reply on "
    "stdout\n"
    "and exits 0 on \"ok\", 1 on \"error\" or no reply, 2 on bad usage.\n"
    "Example: caresignal-devbroker --send /tmp/cs/broker.sock errors JoinGroup 2 "
    "COORDINATOR_NOT_AVAILABLE";

static char epilog[8192]; /* epilog_head, the command table's help, epilog_tail */

static cs_cli_spec_t spec = {
    "caresignal-devbroker",
    CS_PROG_DEVBROKER,
    "[options] | --send PATH COMMAND...",
    "Runs librdkafka's mock cluster as a Kafka-protocol broker on loopback, creates\n"
    "caresignal's topics, prints the bootstrap list on stdout and runs until SIGTERM.\n"
    "Everything is kept in memory: a restart loses all topics, messages and offsets.\n"
    "It is a development and test broker, not Apache Kafka. With --control it takes\n"
    "fault-injection commands (brokers down, round-trip time, request errors) while\n"
    "it runs.",
    options,
    epilog,
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

/* caresignal's topics, then every --partitions; exits 2 on a bad one. */
static int parse_topics(const cs_config_t *cfg, const cs_cli_t *cli, devtopic_t *topics)
{
    int ntopics = 0;
    add_topic(topics, &ntopics, MAX_TOPICS, cfg->topic_raw_nhse, 8);
    add_topic(topics, &ntopics, MAX_TOPICS, cfg->topic_raw_ccg, 8);
    add_topic(topics, &ntopics, MAX_TOPICS, cfg->topic_raw_ofsted_send, 4);
    add_topic(topics, &ntopics, MAX_TOPICS, cfg->topic_events, 16);
    add_topic(topics, &ntopics, MAX_TOPICS, cfg->topic_alerts, 4);
    add_topic(topics, &ntopics, MAX_TOPICS, cfg->topic_deadletter, 4);
    int popt = 1; /* index of "partitions" in options[] */
    for (int i = 0; i < cli->multi_cnt[popt]; i++) {
        const char *arg = cli->multi[popt][i];
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
    return ntopics;
}

static int create_topics(rd_kafka_mock_cluster_t *mc, const devtopic_t *topics, int n,
                         int rf)
{
    for (int i = 0; i < n; i++) {
        rd_kafka_resp_err_t err =
            rd_kafka_mock_topic_create(mc, topics[i].name, topics[i].partitions, rf);
        if (err) {
            cs_log_fatal("cannot create topic", "{s:s, s:s}", "topic", topics[i].name,
                         "error", rd_kafka_err2str(err));
            return -1;
        }
        cs_log_info("topic created", "{s:s, s:i, s:i}", "topic", topics[i].name,
                    "partitions", topics[i].partitions, "replication_factor", rf);
    }
    return 0;
}

static int write_bootstrap(const char *path, const char *bootstrap)
{
    FILE *f = fopen(path, "w");
    if (!f || fprintf(f, "%s\n", bootstrap) < 0 || fclose(f)) {
        cs_log_fatal("cannot write the bootstrap file", "{s:s}", "file", path);
        return -1;
    }
    return 0;
}

/* --send: one command, its reply on stdout; 0 on "ok", 1 on "error" or no reply. */
static int send_command(const cs_cli_t *cli, const char *path)
{
    static const char *const broker_only[] = {"brokers", "partitions", "bootstrap-file",
                                              "control", NULL};
    for (const char *const *o = broker_only; *o; o++)
        if (cs_cli_get(cli, &spec, *o))
            cs_cli_fail(&spec, "option --send: --%s does not apply to the client", *o);
    if (!cli->nargs)
        cs_cli_fail(&spec,
                    "option --send: expected a command after the socket path (e.g. "
                    "--send %s status)",
                    path);
    char line[CS_DEVCTL_LINE_MAX + 1];
    size_t n = 0;
    for (int i = 0; i < cli->nargs; i++) {
        if (strchr(cli->args[i], '\n'))
            cs_cli_fail(&spec, "option --send: a command word holds a newline");
        int k = snprintf(line + n, sizeof(line) - n, "%s%s", i ? " " : "", cli->args[i]);
        if (k < 0 || (size_t)k >= sizeof(line) - n)
            cs_cli_fail(&spec, "option --send: the command is longer than %d bytes",
                        CS_DEVCTL_LINE_MAX);
        n += (size_t)k;
    }
    char reply[CS_DEVCTL_REPLY_MAX], errstr[512];
    if (cs_devsock_send(path, line, SEND_TIMEOUT_MS, reply, sizeof(reply), errstr,
                        sizeof(errstr))) {
        fprintf(stderr, "%s: %s\n", spec.program, errstr);
        return 1;
    }
    printf("%s\n", reply);
    if (!strncmp(reply, "ok", 2) && (reply[2] == ' ' || !reply[2]))
        return 0;
    if (strncmp(reply, "error", 5))
        fprintf(stderr, "%s: unexpected reply from %s\n", spec.program, path);
    return 1;
}

static int run_broker(const cs_config_t *cfg, const cs_cli_t *cli)
{
    if (cli->nargs)
        cs_cli_fail(&spec, "unexpected argument '%s' (see --help)", cli->args[0]);
    long brokers = 3;
    const char *b = cs_cli_get(cli, &spec, "brokers");
    if (b && cs_cli_parse_long(b, 1, 16, &brokers))
        cs_cli_fail(&spec, "option --brokers: expected 1 to 16, got '%s'", b);
    devtopic_t topics[MAX_TOPICS];
    int ntopics = parse_topics(cfg, cli, topics);
    const char *control = cs_cli_get(cli, &spec, "control");
    const char *bfile = cs_cli_get(cli, &spec, "bootstrap-file");

    int rc = 1;
    char errstr[512];
    rd_kafka_t *rk = NULL;
    rd_kafka_mock_cluster_t *mc = NULL;
    cs_devsock_t *sock = NULL;
    cs_devctl_t *ctl = NULL;
    cs_signals_install();
    /* The mock cluster is hosted by a client handle; routing its conf through
     * cs_kafka_conf_new makes the mock's own logs JSON lines too. */
    rd_kafka_conf_t *conf = cs_kafka_conf_new(cfg, errstr, sizeof(errstr));
    if (!conf) {
        cs_log_fatal("bad kafka configuration", "{s:s}", "error", errstr);
        rc = 2;
        goto out;
    }
    /* before rd_kafka_new starts threads: the socket's mode is set through the umask */
    if (control && !(sock = cs_devsock_listen(control, errstr, sizeof(errstr)))) {
        cs_log_fatal("cannot open the control socket", "{s:s}", "error", errstr);
        rd_kafka_conf_destroy(conf);
        goto out;
    }
    if (!(rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr)))) {
        cs_log_fatal("cannot create the client that hosts the mock cluster", "{s:s}",
                     "error", errstr);
        rd_kafka_conf_destroy(conf);
        goto out;
    }
    if (!(mc = rd_kafka_mock_cluster_new(rk, (int)brokers))) {
        cs_log_fatal("cannot start the mock cluster", NULL);
        goto out;
    }
    if (create_topics(mc, topics, ntopics, brokers < 3 ? (int)brokers : 3))
        goto out;
    if (control && !(ctl = cs_devctl_new(mc, (int)brokers))) {
        cs_log_fatal("cannot set up the control commands: out of memory", NULL);
        goto out;
    }
    const char *bootstrap = rd_kafka_mock_cluster_bootstraps(mc);
    if (bfile && write_bootstrap(bfile, bootstrap))
        goto out;
    printf("%s\n", bootstrap);
    fflush(stdout);
    cs_log_info("devbroker ready", "{s:s, s:i, s:s?}", "bootstrap", bootstrap, "brokers",
                (int)brokers, "control", control);

    while (cs_running()) {
        if (sock)
            cs_devsock_serve(sock, ctl, 200);
        else
            cs_sleep_ms(200);
    }
    cs_log_info("devbroker stopping", NULL);
    rc = 0;
out:
    cs_devsock_destroy(sock);
    cs_devctl_destroy(ctl);
    if (mc)
        rd_kafka_mock_cluster_destroy(mc);
    if (rk)
        rd_kafka_destroy(rk);
    for (int i = 0; i < ntopics; i++)
        free(topics[i].owned);
    return rc;
}

int main(int argc, char **argv)
{
    char commands[6144];
    cs_devctl_help(commands, sizeof(commands));
    snprintf(epilog, sizeof(epilog), "%s%s\n%s", epilog_head, commands, epilog_tail);

    cs_config_t cfg;
    cs_cli_t cli;
    cs_cli_parse(&spec, argc, argv, &cfg, &cli);
    const char *send = cs_cli_get(&cli, &spec, "send");
    int rc = send ? send_command(&cli, send) : run_broker(&cfg, &cli);
    cs_cli_release(&cli);
    cs_config_clear(&cfg);
    return rc;
}
