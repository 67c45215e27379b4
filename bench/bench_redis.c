/* bench_redis: the raw limit of the scoring stage — how fast redis-server executes the
 * scorer's own commands, pipelined at the scorer's batch size, timed around the pipelines
 * alone (no Kafka, no decoding, no reply parsing). Two ways of cutting the same events
 * into function calls: one FCALL per event, and one per subject per batch followed by
 * what caresignal-score also sends per batch (the partition position SETs on the same
 * pipeline, then one rank ZADD per subject touched and the acknowledgement of its
 * alerts). bench_redis --port P [--events N] [--subjects S] [--days D] [--batch B]
 *               [--namespace NS] [--only event|subject] [--layout 1|2]
 *               [--engine redis|scorer]
 *               [--key-base K] [--json]
 *               [--from-topic T --bootstrap B]   (the events on T instead of generated
 * ones) --layout: the state layout written (docs/contract/redis-layout.md); --engine
 * scorer: computed in the scorer, Redis storing (run_here); --key-base:
 * event keys and offsets start at K (more events for subjects an earlier run made).
 * Each way writes under its own namespace (NS-e, NS-s): use a fresh NS for every
 * run, or the events are skipped as already applied. Run from the repository root (it
 * reads deploy/config/rules.json and schemas/registry.json). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "caresignal/engine.h"
#include "caresignal/reader.h"
#include "caresignal/redis.h"
#include "caresignal/score.h"
static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static int key_base; /* --key-base */
/* Events like the synthetic feed's: subjects chosen at random, mostly low-weight signals,
 * over \p days, in arrival order. */
static void make_events(cs_intel_event_t *ev, int n, int subjects, int days,
                        const cs_rules_t *rules)
{
    static const cs_signal_t signals[] = {
        CS_SIGNAL_COMPLAINT,         CS_SIGNAL_QUALITY_CONCERN,
        CS_SIGNAL_POSITIVE_FEEDBACK, CS_SIGNAL_SERIOUS_INCIDENT,
        CS_SIGNAL_IPC_CONCERN,       CS_SIGNAL_SAFEGUARDING};
    int64_t t0 = 1790000000000LL;
    for (int i = 0; i < n; i++) {
        cs_intel_event_t *e = &ev[i];
        memset(e, 0, sizeof(*e));
        snprintf(e->event_key, sizeof(e->event_key), "NHSE:RXQ:B-%09d", key_base + i);
        e->subject_kind = CS_SUBJECT_LOCATION;
        snprintf(e->subject_id, sizeof(e->subject_id), "1-%09d",
                 100000000 + (int)(bench_rand(&rng) % (uint64_t)subjects));
        e->signal = signals[bench_rand(&rng) % 6];
        e->severity = (cs_severity_t)(bench_rand(&rng) % 3);
        e->area = rules->area_of_signal[e->signal];
        e->occurred_at =
            t0 + (int64_t)(bench_rand(&rng) % ((uint64_t)days * 86400000ULL));
        snprintf(e->region, sizeof(e->region), "London");
        snprintf(e->local_authority_code, sizeof(e->local_authority_code), "E09000001");
    }
}

static void check_replies(const cs_redis_pipe_t *p)
{
    for (size_t r = 0; r < cs_redis_pipe_count(p); r++)
        if (cs_redis_pipe_reply(p, r)->type == REDIS_REPLY_ERROR) {
            fprintf(stderr, "bench_redis: %s\n", cs_redis_pipe_reply(p, r)->str);
            exit(1);
        }
}

static double timed_exec(cs_redis_t *redis, cs_redis_pipe_t *p)
{
    char errstr[512];
    double t0 = bench_now_s(CLOCK_MONOTONIC);
    if (cs_redis_pipe_exec(redis, p, errstr, sizeof(errstr))) {
        fprintf(stderr, "bench_redis: %s\n", errstr);
        exit(1);
    }
    double spent = bench_now_s(CLOCK_MONOTONIC) - t0;
    check_replies(p);
    return spent;
}

/* Applies all events in batches of \p batch, one FCALL per event (\p per_subject 0) or as
 * the scorer does (1), timing only the pipeline round trips. Events sit on partition 0 at
 * their index as offset. @returns seconds, and the function calls made. */
static double run(cs_redis_t *redis, cs_scorer_t *scorer, const cs_intel_event_t *ev,
                  int n, int batch, int per_subject, long *calls)
{
    double spent = 0;
    char errstr[512];
    cs_score_input_t *in = calloc((size_t)batch, sizeof(*in));
    char *done = calloc((size_t)batch, 1);
    size_t *starts = calloc((size_t)batch + 1, sizeof(*starts));
    *calls = 0;
    for (int start = 0; start < n; start += batch) {
        int m = n - start < batch ? n - start : batch;
        cs_redis_pipe_t *p = cs_redis_pipe_new();
        size_t ncalls = 0;
        if (per_subject) {
            /* group by subject, keeping arrival order within each (as the engine does) */
            int k = 0;
            memset(done, 0, (size_t)m);
            for (int i = 0; i < m; i++) {
                if (done[i])
                    continue;
                starts[ncalls] = (size_t)k;
                for (int j = i; j < m; j++)
                    if (!done[j] &&
                        ev[start + j].subject_kind == ev[start + i].subject_kind &&
                        !strcmp(ev[start + j].subject_id, ev[start + i].subject_id)) {
                        in[k].ev = &ev[start + j];
                        in[k].partition = 0;
                        in[k].offset = key_base + start + j;
                        done[j] = 1;
                        k++;
                    }
                cs_scorer_add_call(scorer, p, &in[starts[ncalls]],
                                   (size_t)k - starts[ncalls]);
                ncalls++;
            }
            starts[ncalls] = (size_t)k;
            char key[512], val[32];
            cs_scorer_pos_key(scorer, "bench", 0, key, sizeof(key));
            snprintf(val, sizeof(val), "%d", key_base + start + m);
            const char *argv[] = {"SET", key, val};
            cs_redis_pipe_add(p, 3, argv, NULL);
        } else {
            for (int i = 0; i < m; i++) {
                in[0].ev = &ev[start + i];
                in[0].partition = 0;
                in[0].offset = key_base + start + i;
                cs_scorer_add_call(scorer, p, in, 1);
                ncalls++;
            }
        }
        *calls += (long)ncalls;
        spent += timed_exec(redis, p);
        if (per_subject) {
            /* the rank sets and acknowledgements, from the replies (as the engine does)
             */
            cs_redis_pipe_t *rank = cs_redis_pipe_new();
            for (size_t c = 0; c < ncalls; c++) {
                cs_score_outcome_t o;
                size_t cn = starts[c + 1] - starts[c];
                if (cs_scorer_parse_reply(scorer, cs_redis_pipe_reply(p, c),
                                          &in[starts[c]], cn, &o, errstr,
                                          sizeof(errstr))) {
                    fprintf(stderr, "bench_redis: %s\n", errstr);
                    exit(1);
                }
                if (o.applied) {
                    char key[256], score[40], subject[CS_SUBJECT_KEY_MAX];
                    const cs_intel_event_t *e = in[starts[c]].ev;
                    cs_scorer_rank_key(scorer, e->subject_kind, key, sizeof(key));
                    cs_subject_key(e->subject_kind, e->subject_id, subject,
                                   sizeof(subject));
                    double r = cs_scorer_rank_value(scorer, o.score, o.as_of);
                    snprintf(score, sizeof(score), isinf(r) ? "-inf" : "%.17g", r);
                    const char *argv[] = {"ZADD", key, score, subject};
                    cs_redis_pipe_add(rank, 4, argv, NULL);
                }
                /* the scorer acknowledges the alerts it delivered: without it they would
                 * pile up in the state's pending_alerts */
                if (o.nalerts)
                    cs_scorer_add_ack(scorer, rank, o.alerts, (size_t)o.nalerts);
                cs_score_outcome_release(&o);
            }
            if (cs_redis_pipe_count(rank))
                spent += timed_exec(redis, rank);
            cs_redis_pipe_destroy(rank);
        }
        cs_redis_pipe_destroy(p);
    }
    free(in);
    free(done);
    free(starts);
    return spent;
}

/* state.engine = scorer: the scorer's own engine (lib/engine.c) on the same batches —
 * its reads under WATCH, its computing, its MULTI/EXEC writes, positions, rank updates
 * and acknowledgements — timed whole, so the seconds include the scorer's computing as
 * well as the Redis round trips. @returns seconds, and the subject calls made. */
static double run_here(cs_redis_t *redis, cs_scorer_t *scorer, const cs_intel_event_t *ev,
                       int n, int batch, long *calls)
{
    double spent = 0;
    char errstr[512];
    cs_engine_t *engine = cs_engine_new(scorer, redis, NULL, NULL, NULL);
    cs_engine_event_t *in = calloc((size_t)batch, sizeof(*in));
    if (!engine || !in) {
        fprintf(stderr, "bench_redis: out of memory\n");
        exit(1);
    }
    *calls = 0;
    for (int start = 0; start < n; start += batch) {
        int m = n - start < batch ? n - start : batch;
        for (int i = 0; i < m; i++)
            in[i] = (cs_engine_event_t){ev[start + i], "bench", 0, key_base + start + i};
        cs_engine_batch_t *b = cs_engine_prepare(engine, in, (size_t)m, 1);
        cs_engine_result_t out;
        double t0 = bench_now_s(CLOCK_MONOTONIC);
        if (!b || cs_engine_execute(engine, b, &out, errstr, sizeof(errstr)) ||
            cs_engine_ack_batch(engine, b, errstr, sizeof(errstr))) {
            fprintf(stderr, "bench_redis: %s\n", b ? errstr : "out of memory");
            exit(1);
        }
        spent += bench_now_s(CLOCK_MONOTONIC) - t0;
        if (out.nfailed) {
            fprintf(stderr, "bench_redis: %s\n", out.failure);
            exit(1);
        }
        *calls += (long)cs_engine_batch_calls(b);
        cs_engine_batch_free(b);
    }
    free(in);
    cs_engine_destroy(engine);
    return spent;
}

int main(int argc, char **argv)
{
    int port = 6379, n = 50000, subjects = 3000, batch = 500, json_only = 0;
    int do_event = 1, do_subject = 1, days = 90, layout = 1, here = 0;
    const char *from_topic = NULL, *bootstrap = NULL, *ns = "bench";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--events") && i + 1 < argc)
            n = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--subjects") && i + 1 < argc)
            subjects = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--days") && i + 1 < argc)
            days = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--namespace") && i + 1 < argc)
            ns = argv[++i];
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
            i++;
            do_event = !strcmp(argv[i], "event");
            do_subject = !strcmp(argv[i], "subject");
        } else if (!strcmp(argv[i], "--json"))
            json_only = 1;
        else if (!strcmp(argv[i], "--layout") && i + 1 < argc)
            layout = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--engine") && i + 1 < argc)
            here = !strcmp(argv[++i], "scorer");
        else if (!strcmp(argv[i], "--key-base") && i + 1 < argc)
            key_base = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--from-topic") && i + 1 < argc)
            from_topic = argv[++i];
        else if (!strcmp(argv[i], "--bootstrap") && i + 1 < argc)
            bootstrap = argv[++i];
        else {
            fprintf(
                stderr,
                "usage: bench_redis --port P [--events N] [--subjects S] [--batch B]\n"
                "  [--namespace NS] [--only event|subject] [--layout 1|2] [--engine "
                "redis|scorer]\n"
                "  [--key-base K]\n"
                "  [--json]\n"
                "  [--from-topic T --bootstrap B]\n");
            return 2;
        }
    }
    char errstr[512];
    cs_rules_t *rules = cs_rules_load("deploy/config/rules.json", errstr, sizeof(errstr));
    if (!rules) {
        fprintf(stderr, "bench_redis: %s (run from the repository root)\n", errstr);
        return 1;
    }
    cs_redis_t *redis = cs_redis_new("127.0.0.1", port, NULL, 60000);
    char ns_e[128], ns_s[128];
    snprintf(ns_e, sizeof(ns_e), "%s-e", ns);
    snprintf(ns_s, sizeof(ns_s), "%s-s", ns);
    cs_scorer_t *per_event =
        cs_scorer_new_layout(rules, ns_e, layout, errstr, sizeof(errstr));
    cs_scorer_t *per_subject =
        per_event ? cs_scorer_new_layout(rules, ns_s, layout, errstr, sizeof(errstr))
                  : NULL;
    if (per_subject && here &&
        (cs_scorer_set_compute(per_subject, 1, errstr, sizeof(errstr)) ||
         cs_scorer_set_compute(per_event, 1, errstr, sizeof(errstr)))) {
        fprintf(stderr, "bench_redis: %s\n", errstr);
        return 2;
    }
    if (here)
        do_event = 0; /* computing in the scorer: per subject only, as the engine does */
    if (!per_subject || cs_redis_connect(redis, errstr, sizeof(errstr)) ||
        cs_redis_function_load(redis, cs_scorer_library(per_event), errstr,
                               sizeof(errstr)) ||
        cs_scorer_claim(per_event, redis, errstr, sizeof(errstr)) ||
        cs_scorer_claim(per_subject, redis, errstr, sizeof(errstr))) {
        fprintf(stderr, "bench_redis: %s\n", errstr);
        return 1;
    }
    cs_intel_event_t *ev;
    if (from_topic) {
        /* exactly the events the scorer reads, in topic order, partition after partition
         */
        cs_config_t cfg;
        cs_config_init(&cfg, "bench_redis");
        cs_config_set(&cfg, "kafka.bootstrap.servers", bootstrap ? bootstrap : "", errstr,
                      sizeof(errstr));
        cs_registry_t *reg =
            cs_registry_load("schemas/registry.json", errstr, sizeof(errstr));
        cs_reader_t *r =
            reg ? cs_reader_new(&cfg, from_topic, -1, errstr, sizeof(errstr)) : NULL;
        cs_event_codec_t *codec =
            r ? cs_event_codec_new(reg, errstr, sizeof(errstr)) : NULL;
        if (!codec) {
            fprintf(stderr, "bench_redis: %s\n", errstr);
            return 1;
        }
        n = (int)cs_reader_total(r);
        ev = calloc((size_t)n + 1, sizeof(*ev));
        int got = 0;
        rd_kafka_message_t *msgs[500];
        while (!cs_reader_done(r) && got < n) {
            int m = cs_reader_next(r, msgs, 500, 5000);
            for (int i = 0; i < m; i++) {
                cs_error_t err;
                if (!cs_event_decode(codec, msgs[i]->payload, msgs[i]->len, &ev[got],
                                     &err))
                    got++;
                rd_kafka_message_destroy(msgs[i]);
            }
            if (!m)
                break;
        }
        n = got;
        cs_event_codec_destroy(codec);
        cs_reader_destroy(r);
        cs_registry_destroy(reg);
        cs_config_clear(&cfg);
        subjects = -1;
    } else {
        ev = calloc((size_t)n, sizeof(*ev));
        make_events(ev, n, subjects, days, rules);
    }
    long calls_e = 0, calls_s = 0;
    double te = do_event ? run(redis, per_event, ev, n, batch, 0, &calls_e) : NAN;
    double ts = !do_subject ? NAN
                : here      ? run_here(redis, per_subject, ev, n, batch, &calls_s)
                            : run(redis, per_subject, ev, n, batch, 1, &calls_s);
    if (!json_only) {
        printf(
            "redis-server executing the scorer's function calls, %d events, %d subjects, "
            "batches of %d\n",
            n, subjects, batch);
        if (do_event)
            printf(
                "  one call per event              %9.0f events/s  (%ld calls, %.1f us a "
                "call)\n",
                n / te, calls_e, 1e6 * te / (double)calls_e);
        if (do_subject)
            printf(
                "  one call per subject per batch  %9.0f events/s  (%ld calls, %.1f us a "
                "call, with positions and ranks)\n",
                n / ts, calls_s, 1e6 * ts / (double)calls_s);
    }
    /* a way not run is null */
    char rate_e[32] = "null", rate_s[32] = "null";
    if (do_event)
        snprintf(rate_e, sizeof(rate_e), "%.0f", n / te);
    if (do_subject)
        snprintf(rate_s, sizeof(rate_s), "%.0f", n / ts);
    printf("{\"bench\":\"redis\",\"events\":%d,\"subjects\":%d,\"batch\":%d,"
           "\"per_event_events_per_s\":%s,\"per_event_calls\":%ld,"
           "\"per_event_us_per_call\":%.2f,"
           "\"per_subject_events_per_s\":%s,\"per_subject_calls\":%ld,"
           "\"per_subject_us_per_call\":%.2f}\n",
           n, subjects, batch, rate_e, calls_e,
           do_event ? 1e6 * te / (double)calls_e : 0.0, rate_s, calls_s,
           do_subject ? 1e6 * ts / (double)calls_s : 0.0);
    free(ev);
    cs_scorer_destroy(per_event);
    cs_scorer_destroy(per_subject);
    cs_redis_destroy(redis);
    cs_rules_destroy(rules);
    return 0;
}
