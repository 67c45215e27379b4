/* bench_hop: the dev broker's own latency, one hop — a producer and a consumer with the
 * clients' settings the consumers use (cs_kafka_producer_new: idempotent, acks=all,
 * linger.ms=2, message.max.bytes; cs_kafka_consumer_new: a group, offsets stored by
 * the program and auto-committed), and nothing in between. The producer sends ~400-byte
 * messages at a fixed rate, keyed over 3,000 keys like the partner events, every Kth of
 * them a probe carrying its send time; the consumer stores each message's offset and
 * times each probe from its send to its arrival (one process, one clock).
 *
 *   bench_hop --bootstrap B --topic T --rate R --count N [--probe-every K]
 *             [--warmup W] [--group G] [--config FILE] [--probes-out FILE]
 *
 * --config loads the stack's properties (its kafka.* settings: fetch.wait.max.ms, ...)
 * before --bootstrap. One message is sent and delivered before the timed sends (a cold
 * idempotent producer holds its first messages until it has a producer id), then W
 * messages at the same rate go first, not counted (cold fetches).
 * Prints one JSON line: probes, missing, p50/p95/p99 (ms), the rate achieved. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "caresignal/kafka.h"

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_hop --bootstrap B --topic T --rate R --count N [--probe-every K]\n"
            "  [--warmup W] [--group G] [--config FILE] [--probes-out FILE]\n");
    exit(2);
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

typedef struct hop {
    rd_kafka_t *producer;
    const char *topic;
    long rate, count, warmup, probe_every;
    volatile int failed;
    volatile double seconds; /* the measured sends' duration (0: still sending) */
} hop_t;

/* Message i of the run (warm-up first): a probe is "P <seq> <send ns> <padding>", any
 * other message "B <i> <padding>"; ~400 bytes either way. */
static void *produce(void *arg)
{
    hop_t *h = arg;
    uint64_t rng = 0x452821E638D01377ULL;
    char errstr[512], msg[512], key[32];
    cs_kafka_tracker_t tracker;
    memset(&tracker, 0, sizeof(tracker));
    /* a cold idempotent producer holds its first messages until it has a producer id
     * (and the metadata): one message delivered first, so no probe waits for that */
    memset(msg, 'x', 400);
    memcpy(msg, "W ", 2);
    if (cs_kafka_produce(h->producer, &tracker, h->topic, RD_KAFKA_PARTITION_UA, "prime",
                         5, msg, 400, NULL, errstr, sizeof(errstr)) ||
        cs_kafka_tracker_wait(h->producer, &tracker, 30000) != CS_OK) {
        fprintf(stderr, "bench_hop: the first message was not delivered\n");
        h->failed = 1;
        return NULL;
    }
    long total = h->warmup + h->count;
    int64_t start = mono_ns(), measured_at = 0;
    for (long i = 0; i < total; i++) {
        if (i == h->warmup)
            measured_at = mono_ns();
        int64_t due = start + (int64_t)((double)i * 1e9 / (double)h->rate);
        int64_t wait = due - mono_ns();
        if (wait > 0) {
            struct timespec ts = {wait / 1000000000, wait % 1000000000};
            nanosleep(&ts, NULL);
        }
        snprintf(key, sizeof(key), "1-%09ld", 100000000 + (long)(bench_rand(&rng) % 3000));
        int probe = i >= h->warmup && h->probe_every &&
                    (i - h->warmup) % h->probe_every == h->probe_every - 1;
        int n = probe ? snprintf(msg, sizeof(msg), "P %ld %lld ",
                                 (i - h->warmup) / h->probe_every, (long long)mono_ns())
                      : snprintf(msg, sizeof(msg), "B %ld ", i);
        memset(msg + n, 'x', 400 - (size_t)n);
        if (cs_kafka_produce(h->producer, &tracker, h->topic, RD_KAFKA_PARTITION_UA, key,
                             strlen(key), msg, 400, NULL, errstr, sizeof(errstr))) {
            fprintf(stderr, "bench_hop: %s\n", errstr);
            h->failed = 1;
            return NULL;
        }
        rd_kafka_poll(h->producer, 0);
    }
    h->seconds = (double)(mono_ns() - measured_at) / 1e9;
    if (cs_kafka_tracker_wait(h->producer, &tracker, 60000) != CS_OK)
        h->failed = 1;
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *v, long n, double q)
{
    long i = (long)(q * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

int main(int argc, char **argv)
{
    const char *bootstrap = NULL, *topic = NULL, *group = "bench-hop", *config = NULL,
               *probes_out = NULL;
    long rate = 0, count = 0, probe_every = 250, warmup = 0;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        if (!strcmp(argv[i], "--bootstrap"))
            bootstrap = argv[++i];
        else if (!strcmp(argv[i], "--topic"))
            topic = argv[++i];
        else if (!strcmp(argv[i], "--rate"))
            rate = atol(argv[++i]);
        else if (!strcmp(argv[i], "--count"))
            count = atol(argv[++i]);
        else if (!strcmp(argv[i], "--probe-every"))
            probe_every = atol(argv[++i]);
        else if (!strcmp(argv[i], "--warmup"))
            warmup = atol(argv[++i]);
        else if (!strcmp(argv[i], "--group"))
            group = argv[++i];
        else if (!strcmp(argv[i], "--config"))
            config = argv[++i];
        else if (!strcmp(argv[i], "--probes-out"))
            probes_out = argv[++i];
        else
            usage();
    }
    if (!bootstrap || !topic || rate <= 0 || count <= 0 || probe_every <= 0)
        usage();
    char errstr[512];
    cs_config_t cfg;
    cs_config_init(&cfg, "bench_hop");
    if (config && cs_config_load_file(&cfg, config, errstr, sizeof(errstr))) {
        fprintf(stderr, "bench_hop: %s\n", errstr);
        return 1;
    }
    cs_config_set(&cfg, "kafka.bootstrap.servers", bootstrap, errstr, sizeof(errstr));
    const char *topics[] = {topic};
    rd_kafka_t *consumer =
        cs_kafka_consumer_new(&cfg, group, topics, 1, NULL, errstr, sizeof(errstr));
    hop_t h = {NULL, topic, rate, count, warmup, probe_every, 0, 0};
    h.producer = consumer ? cs_kafka_producer_new(&cfg, errstr, sizeof(errstr)) : NULL;
    if (!consumer || !h.producer) {
        fprintf(stderr, "bench_hop: %s\n", errstr);
        return 1;
    }
    /* the producer starts once the consumer holds its partitions */
    double deadline = bench_now_s(CLOCK_MONOTONIC) + 60;
    for (;;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(consumer, 50);
        if (m)
            rd_kafka_message_destroy(m);
        rd_kafka_topic_partition_list_t *a = NULL;
        int assigned = !rd_kafka_assignment(consumer, &a) && a->cnt > 0;
        if (a)
            rd_kafka_topic_partition_list_destroy(a);
        if (assigned)
            break;
        if (bench_now_s(CLOCK_MONOTONIC) > deadline) {
            fprintf(stderr, "bench_hop: no partitions assigned after 60 s\n");
            return 1;
        }
    }
    long nprobes = count / probe_every;
    double *lat = calloc((size_t)nprobes + 1, sizeof(double));
    char *seen = calloc((size_t)nprobes + 1, 1);
    long got = 0, messages = 0;
    pthread_t th;
    pthread_create(&th, NULL, produce, &h);
    /* until every probe has arrived, or 30 s after the last send */
    double idle_deadline = 0;
    while (got < nprobes && !h.failed) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(consumer, 100);
        int64_t now = mono_ns();
        if (!m) {
            if (h.seconds > 0 && !idle_deadline)
                idle_deadline = bench_now_s(CLOCK_MONOTONIC) + 30;
            if (idle_deadline && bench_now_s(CLOCK_MONOTONIC) > idle_deadline)
                break;
            continue;
        }
        if (!m->err) {
            messages++;
            const char *p = m->payload;
            long seq;
            long long sent;
            if (m->len > 2 && p[0] == 'P' && sscanf(p, "P %ld %lld", &seq, &sent) == 2 &&
                seq >= 0 && seq < nprobes && !seen[seq]) {
                seen[seq] = 1;
                lat[got++] = (double)(now - sent) / 1e6;
            }
            rd_kafka_message_t *one[] = {m};
            cs_kafka_store_offsets(consumer, one, 1);
        }
        rd_kafka_message_destroy(m);
    }
    pthread_join(th, NULL);
    if (probes_out) {
        FILE *f = fopen(probes_out, "w");
        for (long i = 0; f && i < got; i++)
            fprintf(f, "%.3f\n", lat[i]);
        if (f)
            fclose(f);
    }
    qsort(lat, (size_t)got, sizeof(double), cmp_double);
    int rc = h.failed || got == 0;
    if (got)
        printf("{\"bench\":\"hop\",\"topic\":\"%s\",\"rate\":%ld,\"count\":%ld,"
               "\"sent_per_s\":%.0f,\"probes\":%ld,\"missing\":%ld,\"p50_ms\":%.3f,"
               "\"p95_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f}\n",
               topic, rate, count, h.seconds > 0 ? (double)count / h.seconds : 0.0,
               nprobes, nprobes - got, pct(lat, got, 0.50), pct(lat, got, 0.95),
               pct(lat, got, 0.99), lat[got - 1]);
    else
        fprintf(stderr, "bench_hop: no probe arrived\n");
    free(lat);
    free(seen);
    rd_kafka_destroy(h.producer);
    cs_kafka_consumer_destroy(consumer);
    cs_config_clear(&cfg);
    return rc;
}
