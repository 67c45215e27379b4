/* bench_consume: the raw limit of consuming from the broker — librdkafka reading a topic
 * from its oldest message to its end, doing nothing with the messages.
 *   bench_consume --bootstrap B --topic T [--fetch-wait-ms MS]
 *       prints one JSON line: messages, bytes, seconds, messages/s;
 *   bench_consume --bootstrap B --topic T --watermarks
 *       prints how many messages the topic holds now;
 *   bench_consume --bootstrap B --topic T --until N [--timeout S]
 *       waits (one client, polling the watermarks every 10 ms) until the topic holds N
 *       messages and prints one JSON line with the wall-clock time it saw them (epoch
 *       seconds), and when it first saw the topic grow (and to how many), for timing a
 *       stage by its output topic; exit 1 after the timeout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "caresignal/kafka.h"
#include "caresignal/reader.h"

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_consume --bootstrap B --topic T [--fetch-wait-ms MS]\n"
            "       bench_consume --bootstrap B --topic T --watermarks\n"
            "       bench_consume --bootstrap B --topic T --until N [--timeout S]\n");
    exit(2);
}

/* @returns the messages \p topic holds now, or -1 with a message on stderr. */
static long long topic_total(rd_kafka_t *rk, const char *topic)
{
    char errstr[512];
    cs_partition_info_t *parts;
    int np;
    if (cs_topic_partitions(rk, topic, &parts, &np, errstr, sizeof(errstr))) {
        fprintf(stderr, "bench_consume: %s\n", errstr);
        return -1;
    }
    long long total = 0;
    for (int i = 0; i < np; i++)
        total += parts[i].high - parts[i].low;
    free(parts);
    return total;
}

int main(int argc, char **argv)
{
    const char *bootstrap = NULL, *topic = NULL, *wait = "5";
    int watermarks = 0;
    long long until = -1;
    double timeout = 300;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--watermarks")) {
            watermarks = 1;
            continue;
        }
        if (i + 1 >= argc)
            usage();
        if (!strcmp(argv[i], "--bootstrap"))
            bootstrap = argv[++i];
        else if (!strcmp(argv[i], "--topic"))
            topic = argv[++i];
        else if (!strcmp(argv[i], "--fetch-wait-ms"))
            wait = argv[++i];
        else if (!strcmp(argv[i], "--until"))
            until = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--timeout"))
            timeout = atof(argv[++i]);
        else
            usage();
    }
    if (!bootstrap || !topic)
        usage();
    char errstr[512];
    cs_config_t cfg;
    cs_config_init(&cfg, "bench_consume");
    cs_config_set(&cfg, "kafka.bootstrap.servers", bootstrap, errstr, sizeof(errstr));
    cs_config_set(&cfg, "kafka.fetch.wait.max.ms", wait, errstr, sizeof(errstr));
    if (watermarks || until >= 0) {
        rd_kafka_conf_t *conf = cs_kafka_conf_new(&cfg, errstr, sizeof(errstr));
        rd_kafka_t *rk =
            conf ? rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr)) : NULL;
        if (!rk) {
            fprintf(stderr, "bench_consume: %s\n", errstr);
            return 1;
        }
        int rc = 0;
        long long total = topic_total(rk, topic);
        if (watermarks) {
            if (total >= 0)
                printf("%lld\n", total);
            rc = total < 0;
        } else {
            double deadline = bench_now_s(CLOCK_MONOTONIC) + timeout;
            long long start = total, first = -1;
            double first_at = 0;
            while (total >= 0 && total < until &&
                   bench_now_s(CLOCK_MONOTONIC) < deadline) {
                struct timespec ts = {0, 10000000};
                nanosleep(&ts, NULL);
                total = topic_total(rk, topic);
                if (first < 0 && total > start) {
                    first = total;
                    first_at = bench_now_s(CLOCK_REALTIME);
                }
            }
            if (total >= until)
                printf("{\"bench\":\"until\",\"topic\":\"%s\",\"messages\":%lld,"
                       "\"at\":%.3f,\"first_messages\":%lld,\"first_at\":%.3f}\n",
                       topic, total, bench_now_s(CLOCK_REALTIME), first, first_at);
            else
                fprintf(stderr,
                        "bench_consume: %s holds %lld messages, not %lld, after %.0f s\n",
                        topic, total, until, timeout);
            rc = total < until;
        }
        rd_kafka_destroy(rk);
        cs_config_clear(&cfg);
        return rc;
    }
    cs_reader_t *r = cs_reader_new(&cfg, topic, -1, errstr, sizeof(errstr));
    if (!r) {
        fprintf(stderr, "bench_consume: %s\n", errstr);
        return 1;
    }
    rd_kafka_message_t *msgs[1000];
    long n = 0;
    long long bytes = 0;
    double t0 = bench_now_s(CLOCK_MONOTONIC);
    while (!cs_reader_done(r)) {
        int got = cs_reader_next(r, msgs, 1000, 5000);
        if (!got && !cs_reader_done(r)) {
            fprintf(stderr, "bench_consume: stalled after %ld messages\n", n);
            cs_reader_destroy(r);
            cs_config_clear(&cfg);
            return 1;
        }
        for (int i = 0; i < got; i++) {
            bytes += (long long)msgs[i]->len;
            rd_kafka_message_destroy(msgs[i]);
        }
        n += got;
    }
    double secs = bench_now_s(CLOCK_MONOTONIC) - t0;
    printf("{\"bench\":\"consume\",\"topic\":\"%s\",\"messages\":%ld,\"bytes\":%lld,"
           "\"seconds\":%.3f,\"messages_per_s\":%.0f}\n",
           topic, n, bytes, secs, n / secs);
    cs_reader_destroy(r);
    cs_config_clear(&cfg);
    return 0;
}
