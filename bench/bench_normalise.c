/* bench_normalise: the normaliser's in-process path on one core (parse, validate, map,
 * encode) beside jansson's bare json_loads on the same documents, in the same run; and
 * the Avro path. Prints a table and one JSON object (docs/contract/targets.md targets: JSON >= 0.8 of
 * json_loads, Avro >= 500k events/s).
 *   bench_normalise [--events N] [--seconds S] [--json]   (run from the repo root) */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "caresignal/codec.h"
#include "caresignal/convert.h"
#include "caresignal/normalise.h"

typedef struct doc {
    const char *topic;
    char *json;
    size_t len;
    uint8_t *avro;
    size_t avro_len;
} doc_t;

static const char *const locs[] = {"RXQ02",       "RXQ50",         "RAJ01",
                                   "1-101669119", "1-10000792582", "1-200000001",
                                   "1-200000002", "1-200000003"};
static const char *const cats[] = {
    "SERIOUS_INCIDENT",    "NEVER_EVENT",    "OUTBREAK",   "VACCINATION_INCIDENT",
    "WORKFORCE_SHORTFALL", "DNACPR_CONCERN", "IPC_CONCERN"};
static const char *const harms[] = {"NO_HARM", "LOW", "MODERATE", "SEVERE", "DEATH"};
static const char *const concerns[] = {"COMPLAINT",       "SAFEGUARDING_REFERRAL",
                                       "WHISTLEBLOWING",  "QUALITY_CONCERN",
                                       "CONTRACT_BREACH", "POSITIVE_FEEDBACK"};
static const char *const rags[] = {"GREEN", "AMBER", "RED"};

/* About 400-byte partner events, half NHSE incidents, half CCG concerns, with free text
 * (which the normaliser must skip over). */
static void make_doc(doc_t *d, int i, int64_t base_ms)
{
    char buf[1024];
    int64_t at = base_ms - (int64_t)(i % 86400) * 1000;
    if (i % 2 == 0) {
        d->topic = "intel.raw.nhse";
        snprintf(
            buf, sizeof(buf),
            "{\"incident_id\":\"INC-2026-%08d\",\"reporting_org_ods\":\"RXQ\","
            "\"location_id\":\"%s\",\"category\":\"%s\",\"harm\":\"%s\","
            "\"occurred_at\":%lld,\"reported_at\":%lld,"
            "\"description\":\"Patient fell in the corridor near ward 7 during the night "
            "shift; staff attended promptly, observations recorded, family informed and "
            "a "
            "review of the falls risk assessment was started by the ward manager.\"}",
            i, locs[i % 8], cats[i % 7], harms[i % 5], (long long)at,
            (long long)at + 60000);
    } else {
        d->topic = "intel.raw.ccg";
        snprintf(
            buf, sizeof(buf),
            "{\"concern_ref\":\"CCG/2026/"
            "%08d\",\"ccg_ods\":\"15E\",\"location_id\":\"%s\","
            "\"concern_type\":\"%s\",\"rag\":\"%s\",\"received_on\":\"2026-11-%02d\","
            "\"whistleblower_name\":null,\"narrative\":\"A relative raised concerns "
            "about "
            "staffing levels at weekends and about medicines being given late; the CCG "
            "quality team is following this up with the provider this month.\"}",
            i, locs[i % 8], concerns[i % 6], rags[i % 3], 1 + i % 20);
    }
    d->json = strdup(buf);
    d->len = strlen(buf);
}

int main(int argc, char **argv)
{
    int n = 20000;
    double seconds = 3.0;
    int json_only = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--events") && i + 1 < argc)
            n = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--json"))
            json_only = 1;
        else {
            fprintf(stderr,
                    "usage: bench_normalise [--events N] [--seconds S] [--json]\n");
            return 2;
        }
    }
    char errstr[512];
    cs_registry_t *reg =
        cs_registry_load("schemas/registry.json", errstr, sizeof(errstr));
    cs_rules_t *rules =
        reg ? cs_rules_load("deploy/config/rules.json", errstr, sizeof(errstr)) : NULL;
    cs_directory_t *dir = rules
                              ? cs_directory_load("tests/data/integration/directory.csv",
                                                  errstr, sizeof(errstr))
                              : NULL;
    const char *topics[] = {"intel.raw.nhse", "intel.raw.ccg", "intel.raw.ofsted-send"};
    cs_normaliser_t *norm =
        dir ? cs_normaliser_new(reg, rules, topics, 65536, errstr, sizeof(errstr)) : NULL;
    if (!norm) {
        fprintf(stderr, "bench_normalise: %s (run from the repository root)\n", errstr);
        return 1;
    }
    cs_normaliser_set_directory(norm, dir);

    /* documents, and the same documents as Avro (ids 1 and 3) */
    int64_t now_ms = (int64_t)time(NULL) * 1000;
    doc_t *docs = calloc((size_t)n, sizeof(*docs));
    const cs_schema_t *nhse = cs_registry_get(reg, 1), *ccg = cs_registry_get(reg, 3);
    cs_converter_t *cn = cs_converter_new(nhse, errstr, sizeof(errstr));
    cs_converter_t *cc = cs_converter_new(ccg, errstr, sizeof(errstr));
    avro_value_t vn, vc;
    avro_generic_value_new(nhse->iface, &vn);
    avro_generic_value_new(ccg->iface, &vc);
    cs_encoder_t *enc = cs_encoder_new();
    size_t total_bytes = 0;
    for (int i = 0; i < n; i++) {
        make_doc(&docs[i], i, now_ms);
        total_bytes += docs[i].len;
        json_t *j = json_loadb(docs[i].json, docs[i].len, 0, NULL);
        cs_error_t err;
        int is_nhse = i % 2 == 0;
        const uint8_t *out;
        size_t len;
        if (cs_converter_run(is_nhse ? cn : cc, j, is_nhse ? &vn : &vc, &err) ||
            cs_encoder_write(enc, is_nhse ? 1 : 3, is_nhse ? &vn : &vc, &out, &len)) {
            fprintf(stderr, "bench_normalise: document %d does not convert\n", i);
            return 1;
        }
        docs[i].avro = malloc(len);
        memcpy(docs[i].avro, out, len);
        docs[i].avro_len = len;
        json_decref(j);
    }

    /* 1. jansson alone: json_loads + json_decref */
    long loads = 0;
    double t0 = bench_now_s(CLOCK_MONOTONIC), t1;
    do {
        for (int i = 0; i < n; i++) {
            json_t *j = json_loadb(docs[i].json, docs[i].len, 0, NULL);
            json_decref(j);
        }
        loads += n;
    } while ((t1 = bench_now_s(CLOCK_MONOTONIC)) - t0 < seconds);
    double loads_rate = loads / (t1 - t0);

    /* 2. the normaliser on the same JSON documents */
    long normalised = 0, rejected = 0;
    t0 = bench_now_s(CLOCK_MONOTONIC);
    do {
        for (int i = 0; i < n; i++) {
            cs_raw_msg_t raw = {docs[i].topic, 0,           i,     now_ms,
                                docs[i].json,  docs[i].len, now_ms};
            const cs_normalised_event_t *ev;
            size_t cnt;
            cs_error_t err;
            rejected += cs_normalise(norm, &raw, &ev, &cnt, &err) != CS_OK;
        }
        normalised += n;
    } while ((t1 = bench_now_s(CLOCK_MONOTONIC)) - t0 < seconds);
    double json_rate = normalised / (t1 - t0);

    /* 3. the normaliser on Avro */
    long avro_n = 0;
    t0 = bench_now_s(CLOCK_MONOTONIC);
    do {
        for (int i = 0; i < n; i++) {
            cs_raw_msg_t raw = {docs[i].topic,    0,     i, now_ms, docs[i].avro,
                                docs[i].avro_len, now_ms};
            const cs_normalised_event_t *ev;
            size_t cnt;
            cs_error_t err;
            rejected += cs_normalise(norm, &raw, &ev, &cnt, &err) != CS_OK;
        }
        avro_n += n;
    } while ((t1 = bench_now_s(CLOCK_MONOTONIC)) - t0 < seconds);
    double avro_rate = avro_n / (t1 - t0);

    double ratio = json_rate / loads_rate;
    if (!json_only) {
        printf(
            "normalise, one core, %d documents of %zu bytes on average (%.1f s each)\n",
            n, total_bytes / (size_t)n, seconds);
        printf("  %-40s %12.0f /s\n", "jansson json_loads alone (raw limit)", loads_rate);
        printf("  %-40s %12.0f /s   ratio %.2f (target >= 0.80)\n",
               "normalise JSON (parse+validate+map+encode)", json_rate, ratio);
        printf("  %-40s %12.0f /s   (target >= 500000)\n",
               "normalise Avro (check+decode+map+encode)", avro_rate);
        if (rejected)
            printf("  WARNING: %ld documents were rejected\n", rejected);
    }
    printf(
        "{\"bench\":\"normalise\",\"documents\":%d,\"avg_bytes\":%zu,\"json_loads_per_"
        "s\":%.0f,"
        "\"normalise_json_per_s\":%.0f,\"json_ratio\":%.3f,\"normalise_avro_per_s\":%.0f,"
        "\"rejected\":%ld}\n",
        n, total_bytes / (size_t)n, loads_rate, json_rate, ratio, avro_rate, rejected);
    for (int i = 0; i < n; i++) {
        free(docs[i].json);
        free(docs[i].avro);
    }
    free(docs);
    avro_value_decref(&vn);
    avro_value_decref(&vc);
    cs_converter_destroy(cn);
    cs_converter_destroy(cc);
    cs_encoder_destroy(enc);
    cs_normaliser_destroy(norm);
    cs_directory_destroy(dir);
    cs_rules_destroy(rules);
    cs_registry_destroy(reg);
    return rejected ? 1 : 0;
}
