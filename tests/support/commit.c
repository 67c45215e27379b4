/* Test tool: commits an arbitrary offset for a consumer group, as a group restored from a
 * backup or a topic migrated under its group would leave it (e.g. above the high
 * watermark), so tests can prove how the consumers treat such a start position.
 *   cs-commit BOOTSTRAP GROUP TOPIC PARTITION OFFSET */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: cs-commit BOOTSTRAP GROUP TOPIC PARTITION OFFSET\n");
        return 2;
    }
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", argv[1], errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "group.id", argv[2], errstr, sizeof(errstr))) {
        fprintf(stderr, "cs-commit: %s\n", errstr);
        return 2;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "cs-commit: %s\n", errstr);
        return 1;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, argv[3], atoi(argv[4]))->offset =
        strtoll(argv[5], NULL, 10);
    /* not a member of the group: a simple (generation -1) commit, as admin tools do */
    rd_kafka_resp_err_t err = rd_kafka_commit(rk, l, 0);
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    if (err) {
        fprintf(stderr, "cs-commit: %s\n", rd_kafka_err2str(err));
        return 1;
    }
    return 0;
}
