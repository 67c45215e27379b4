/* bench_load: produces benchmark traffic to the dev broker — partner events (JSON or
 * Avro) for the directory's locations, or canonical IntelEvents — as fast as it can or at
 * a fixed rate (JSON: after one event delivered, so the timed sends meet a warm producer),
 * optionally with latency probes: every Kth message an immediate-INSPECT
 * event (a NEVER_EVENT) on a location kept for probes, whose send time is written out so
 * the alert it causes can be timed. Canonical events (intel) can also carry an alert
 * every Kth event (--alert-every: a NEVER_EVENT of the last hour on subject i/K, each
 * on its own subject, so each raises exactly one alert — a level change to INSPECT —
 * when the subjects number at least N/K). --format alert produces RiskAlerts (Avro, as
 * the scorer writes them), each with its own id, over S subjects, for the pager.
 *
 *   bench_load --bootstrap B --topic T --format json|avro|intel|alert --count N
 *              [--rate R] [--directory CSV] [--subjects S] [--probe-every K]
 *              [--probes-out FILE] [--probe-base N] [--seed X] [--alert-every K]
 * Run from the repository root (schemas/registry.json). Prints one JSON line at the end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "caresignal/alert.h"
#include "caresignal/codec.h"
#include "caresignal/convert.h"
#include "caresignal/directory.h"
#include "caresignal/event.h"
#include "caresignal/kafka.h"
#include "caresignal/signals.h"
#include "caresignal/timeutil.h"

static uint64_t rng = 0x243F6A8885A308D3ULL;
static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void usage(void)
{
    fprintf(
        stderr,
        "usage: bench_load --bootstrap B --topic T --format json|avro|intel|alert\n"
        "  --count N [--rate R] [--directory CSV] [--subjects S] [--probe-every K]\n"
        "  [--probes-out FILE] [--probe-base N] [--seed X] [--alert-every K]\n");
    exit(2);
}

/* Background traffic: NHSE incidents (the only schema the NHSE topic accepts) of low
 * weight — NO_HARM maps to INFO, which weighs nothing — so the volumes a bench sends
 * never raise an alert on their own; about 400 bytes each, free text included. */
static int make_json(char *buf, size_t size, long i, const char *loc, int64_t now,
                     int probe)
{
    static const char *const cats[] = {"SERIOUS_INCIDENT", "IPC_CONCERN", "OUTBREAK",
                                       "VACCINATION_INCIDENT", "WORKFORCE_SHORTFALL"};
    int64_t at = now - (int64_t)(bench_rand(&rng) % (80ULL * 86400000ULL)) - 60000;
    if (probe)
        return snprintf(
            buf, size,
            "{\"incident_id\":\"PROBE-%09ld\",\"reporting_org_ods\":\"RXQ\","
            "\"location_id\":\"%s\",\"category\":\"NEVER_EVENT\",\"harm\":\"LOW\","
            "\"occurred_at\":%lld,\"reported_at\":%lld}",
            i, loc, (long long)(now - 1000), (long long)now);
    return snprintf(
        buf, size,
        "{\"incident_id\":\"INC-%09ld\",\"reporting_org_ods\":\"RXQ\","
        "\"location_id\":\"%s\",\"category\":\"%s\",\"harm\":\"NO_HARM\","
        "\"occurred_at\":%lld,\"reported_at\":%lld,\"description\":\"Synthetic "
        "bench text: the patient was reviewed and the family informed; no harm "
        "came of it and the ward reviewed its procedures.\"}",
        i, loc, cats[bench_rand(&rng) % 5], (long long)at, (long long)at + 60000);
}

int main(int argc, char **argv)
{
    const char *bootstrap = NULL, *topic = NULL, *format = NULL, *dirfile = NULL,
               *probes_out = NULL;
    long count = 0, rate = 0, subjects = 3000, probe_every = 0, probe_base = 0,
         alert_every = 0;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        if (!strcmp(argv[i], "--bootstrap"))
            bootstrap = argv[++i];
        else if (!strcmp(argv[i], "--topic"))
            topic = argv[++i];
        else if (!strcmp(argv[i], "--format"))
            format = argv[++i];
        else if (!strcmp(argv[i], "--count"))
            count = atol(argv[++i]);
        else if (!strcmp(argv[i], "--rate"))
            rate = atol(argv[++i]);
        else if (!strcmp(argv[i], "--directory"))
            dirfile = argv[++i];
        else if (!strcmp(argv[i], "--subjects"))
            subjects = atol(argv[++i]);
        else if (!strcmp(argv[i], "--probe-every"))
            probe_every = atol(argv[++i]);
        else if (!strcmp(argv[i], "--probes-out"))
            probes_out = argv[++i];
        else if (!strcmp(argv[i], "--probe-base"))
            probe_base = atol(argv[++i]);
        else if (!strcmp(argv[i], "--alert-every"))
            alert_every = atol(argv[++i]);
        else if (!strcmp(argv[i], "--seed"))
            rng ^= (uint64_t)atoll(argv[++i]) * 0x9E3779B97F4A7C15ULL;
        else
            usage();
    }
    int fmt = !format                    ? -1
              : !strcmp(format, "json")  ? 0
              : !strcmp(format, "avro")  ? 1
              : !strcmp(format, "intel") ? 2
              : !strcmp(format, "alert") ? 3
                                         : -1;
    if (!bootstrap || !topic || fmt < 0 || count <= 0 || (fmt < 2 && !dirfile))
        usage();
    char errstr[512];
    cs_registry_t *reg =
        cs_registry_load("schemas/registry.json", errstr, sizeof(errstr));
    cs_directory_t *dir =
        dirfile ? cs_directory_load(dirfile, errstr, sizeof(errstr)) : NULL;
    if (!reg || (dirfile && !dir)) {
        fprintf(stderr, "bench_load: %s\n", errstr);
        return 1;
    }
    cs_config_t cfg;
    cs_config_init(&cfg, "bench_load");
    cs_config_set(&cfg, "kafka.bootstrap.servers", bootstrap, errstr, sizeof(errstr));
    cs_config_set(&cfg, "kafka.linger.ms", rate ? "1" : "20", errstr, sizeof(errstr));
    rd_kafka_t *rk = cs_kafka_producer_new(&cfg, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "bench_load: %s\n", errstr);
        return 1;
    }
    /* the last locations are kept for probes, a fresh one per probe, so each probe raises
     * an alert (a location already at INSPECT would not): probe j of this run uses the
     * (probe_base + j)-th location from the end, so runs with different bases (a warm-up,
     * then the measurement) never share one */
    size_t nloc = dir ? cs_directory_count(dir) : 0;
    size_t nprobe_locs = probe_every ? (size_t)(count / probe_every + 1) : 0;
    if (dir && (size_t)probe_base + nprobe_locs >= nloc) {
        fprintf(stderr,
                "bench_load: the directory has too few locations for %zu probes\n",
                (size_t)probe_base + nprobe_locs);
        return 1;
    }
    size_t nbackground = nloc - (size_t)probe_base - nprobe_locs;
    FILE *pf = probes_out ? fopen(probes_out, "w") : NULL;
    cs_converter_t *conv = NULL;
    avro_value_t val;
    const cs_schema_t *sch = cs_registry_latest(reg, "nhse.Incident");
    cs_encoder_t *enc = cs_encoder_new();
    if (fmt == 1) {
        conv = cs_converter_new(sch, errstr, sizeof(errstr));
        if (!conv) {
            fprintf(stderr, "bench_load: %s\n", errstr);
            return 1;
        }
        avro_generic_value_new(sch->iface, &val);
    }
    cs_event_codec_t *codec =
        fmt == 2 ? cs_event_codec_new(reg, errstr, sizeof(errstr)) : NULL;
    cs_alert_codec_t *acodec =
        fmt == 3 ? cs_alert_codec_new(reg, errstr, sizeof(errstr)) : NULL;
    if ((fmt == 2 && !codec) || (fmt == 3 && !acodec)) {
        fprintf(stderr, "bench_load: %s\n", errstr);
        return 1;
    }
    cs_kafka_tracker_t tracker;
    memset(&tracker, 0, sizeof(tracker));
    int64_t now = cs_wall_ms();
    if (rate && fmt == 0) {
        /* a cold idempotent producer holds its first messages until it has a producer
         * id (and the metadata): one background event delivered first, so the timed
         * sends (the probes) do not wait for that */
        const cs_location_t *loc = cs_directory_at(dir, bench_rand(&rng) % nbackground);
        char prime[2048];
        int pl = make_json(prime, sizeof(prime), 999999999 - probe_base, loc->location_id,
                           now, 0);
        if (cs_kafka_produce(rk, &tracker, topic, RD_KAFKA_PARTITION_UA, loc->location_id,
                             strlen(loc->location_id), prime, (size_t)pl, NULL, errstr,
                             sizeof(errstr)) ||
            cs_kafka_tracker_wait(rk, &tracker, 30000) != CS_OK) {
            fprintf(stderr, "bench_load: the first message was not delivered\n");
            return 1;
        }
        memset(&tracker, 0, sizeof(tracker));
    }
    int64_t start = mono_ns();
    long probes = 0;
    char json[2048];
    for (long i = 0; i < count; i++) {
        if (rate) {
            int64_t due = start + (int64_t)((double)i * 1e9 / (double)rate);
            int64_t wait = due - mono_ns();
            if (wait > 0) {
                struct timespec ts = {wait / 1000000000, wait % 1000000000};
                nanosleep(&ts, NULL);
            }
        }
        const void *value;
        size_t len;
        char key[CS_SUBJECT_KEY_MAX];
        int probe = probe_every && i % probe_every == probe_every - 1;
        if (fmt < 2) {
            const cs_location_t *loc =
                probe ? cs_directory_at(dir, nloc - 1 - (size_t)(probe_base + probes))
                      : cs_directory_at(dir, bench_rand(&rng) % nbackground);
            int jl = make_json(json, sizeof(json), probe ? probe_base + probes : i,
                               loc->location_id, now, probe);
            snprintf(key, sizeof(key), "%s", loc->location_id);
            value = json;
            len = (size_t)jl;
            if (fmt == 1) {
                json_t *j = json_loadb(json, len, 0, NULL);
                cs_error_t err;
                const uint8_t *bytes;
                if (!j || cs_converter_run(conv, j, &val, &err) ||
                    cs_encoder_write(enc, sch->id, &val, &bytes, &len)) {
                    fprintf(stderr, "bench_load: cannot encode\n");
                    return 1;
                }
                json_decref(j);
                value = bytes;
            }
        } else if (fmt == 3) {
            static cs_alert_t a; /* ~6 KB: not on the stack */
            memset(&a, 0, sizeof(a));
            a.kind = CS_ALERT_RAISED;
            a.subject_kind = CS_SUBJECT_LOCATION;
            snprintf(a.subject_id, sizeof(a.subject_id), "1-%09ld",
                     100000000 + (long)(i % subjects));
            a.level = CS_LEVEL_INSPECT;
            a.previous_level = CS_LEVEL_NONE;
            a.score = 40;
            a.area_scores[CS_AREA_SAFE_CARE] = 40;
            a.as_of = now - 1000;
            snprintf(a.triggered_by, sizeof(a.triggered_by), "NHSE:RXQ:B-%09ld", i);
            a.reason = CS_REASON_IMMEDIATE;
            a.nrecent = 1;
            snprintf(a.recent[0].event_key, sizeof(a.recent[0].event_key), "%s",
                     a.triggered_by);
            a.recent[0].signal = CS_SIGNAL_NEVER_EVENT;
            a.recent[0].severity = CS_SEVERITY_MEDIUM;
            a.recent[0].occurred_at = a.as_of;
            snprintf(a.rules_version, sizeof(a.rules_version), "bench");
            snprintf(a.region, sizeof(a.region), "London");
            snprintf(a.local_authority_code, sizeof(a.local_authority_code), "E09000001");
            cs_subject_key(a.subject_kind, a.subject_id, key, sizeof(key));
            cs_alert_set_id(&a);
            const uint8_t *bytes;
            if (cs_alert_encode(acodec, &a, &bytes, &len)) {
                fprintf(stderr, "bench_load: cannot encode\n");
                return 1;
            }
            value = bytes;
        } else {
            cs_intel_event_t e;
            memset(&e, 0, sizeof(e));
            snprintf(e.event_key, sizeof(e.event_key), "NHSE:RXQ:B-%09ld", i);
            e.source = CS_SOURCE_NHSE;
            snprintf(e.source_org, sizeof(e.source_org), "RXQ");
            e.subject_kind = CS_SUBJECT_LOCATION;
            snprintf(e.subject_id, sizeof(e.subject_id), "1-%09ld",
                     100000000 + (long)(bench_rand(&rng) % (uint64_t)subjects));
            e.signal = (cs_signal_t)(bench_rand(&rng) % 3 ? CS_SIGNAL_COMPLAINT
                                                          : CS_SIGNAL_IPC_CONCERN);
            e.severity = (cs_severity_t)(bench_rand(&rng) % 3);
            e.area =
                e.signal == CS_SIGNAL_COMPLAINT ? CS_AREA_ASSURANCE : CS_AREA_SAFE_CARE;
            e.occurred_at = now - (int64_t)(bench_rand(&rng) % (90ULL * 86400000ULL));
            e.received_at = now;
            snprintf(e.origin_topic, sizeof(e.origin_topic), "intel.raw.nhse");
            e.origin_offset = i;
            e.origin_schema_id = -1;
            if (alert_every && i % alert_every == alert_every - 1) {
                /* each its own subject's first immediate event: one alert each */
                snprintf(e.subject_id, sizeof(e.subject_id), "1-%09ld",
                         100000000 + (i / alert_every) % subjects);
                e.signal = CS_SIGNAL_NEVER_EVENT;
                e.severity = CS_SEVERITY_MEDIUM;
                e.area = CS_AREA_SAFE_CARE;
                e.occurred_at = now - (int64_t)(bench_rand(&rng) % 3600000ULL);
            }
            snprintf(e.region, sizeof(e.region), "London");
            snprintf(e.local_authority_code, sizeof(e.local_authority_code), "E09000001");
            cs_subject_key(e.subject_kind, e.subject_id, key, sizeof(key));
            const uint8_t *bytes;
            if (cs_event_encode(codec, &e, &bytes, &len)) {
                fprintf(stderr, "bench_load: cannot encode\n");
                return 1;
            }
            value = bytes;
        }
        if (probe && pf) /* event key, send time (monotonic ns), location, wall ms */
            fprintf(pf, "NHSE:RXQ:PROBE-%09ld %lld %s %lld\n", probe_base + probes,
                    (long long)mono_ns(), key, (long long)cs_wall_ms());
        probes += probe;
        if (cs_kafka_produce(rk, &tracker, topic, RD_KAFKA_PARTITION_UA, key, strlen(key),
                             value, len, NULL, errstr, sizeof(errstr))) {
            fprintf(stderr, "bench_load: %s\n", errstr);
            return 1;
        }
        rd_kafka_poll(rk, 0);
    }
    cs_err_t rc = cs_kafka_tracker_wait(rk, &tracker, 300000);
    double secs = (double)(mono_ns() - start) / 1e9;
    if (pf)
        fclose(pf);
    printf("{\"bench\":\"load\",\"topic\":\"%s\",\"format\":\"%s\",\"count\":%ld,"
           "\"probes\":%ld,"
           "\"seconds\":%.3f,\"rate\":%.0f,\"failed\":%ld}\n",
           topic, format, count, probes, secs, count / secs, tracker.failed);
    if (conv) {
        avro_value_decref(&val);
        cs_converter_destroy(conv);
    }
    cs_encoder_destroy(enc);
    cs_event_codec_destroy(codec);
    cs_alert_codec_destroy(acodec);
    rd_kafka_destroy(rk);
    cs_config_clear(&cfg);
    cs_directory_destroy(dir);
    cs_registry_destroy(reg);
    return rc == CS_OK ? 0 : 1;
}
