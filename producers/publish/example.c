/* An example partner program: publish one CCG concern through the caresignal C API.
 *
 *   cc example.c -lcaresignal $(pkg-config --libs rdkafka avro-c jansson hiredis
 * libcrypto) -lm
 *   ./a.out BOOTSTRAP_SERVERS
 *
 * The library validates the event exactly as the regulator's normaliser will, so a
 * rejection comes back here, with its reason, before anything leaves the partner. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "caresignal/publish.h"

static void report(void *opaque, void *ref, cs_err_t err, const char *detail)
{
    (void)opaque;
    printf("%s: %s %s\n", (const char *)ref, err == CS_OK ? "delivered" : "NOT delivered",
           detail);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s BOOTSTRAP_SERVERS\n", argv[0]);
        return 2;
    }
    char errstr[512];
    cs_config_t cfg;
    cs_config_init(&cfg,
                   "partner-example"); /* defaults: schemas/, deploy/config/rules.json */
    if (cs_config_set(&cfg, "kafka.bootstrap.servers", argv[1], errstr, sizeof(errstr))) {
        fprintf(stderr, "%s\n", errstr);
        return 2;
    }
    cs_publish_options_t opts = {.source = CS_SOURCE_CCG, .avro = 1, .on_report = report};
    cs_publisher_t *p = cs_publisher_new(&cfg, &opts, errstr, sizeof(errstr));
    if (!p) {
        fprintf(stderr, "%s\n", errstr);
        return 2;
    }
    char today[16], json[512];
    time_t now = time(NULL);
    strftime(today, sizeof(today), "%Y-%m-%d", gmtime(&now));
    snprintf(
        json, sizeof(json),
        "{\"concern_ref\": \"EX/0001\", \"ccg_ods\": \"15E\", \"location_id\": "
        "\"1-101669119\", \"concern_type\": \"QUALITY_CONCERN\", \"rag\": \"AMBER\", "
        "\"received_on\": \"%s\"}",
        today);
    cs_error_t err;
    cs_err_t rc = cs_publisher_send(p, json, strlen(json), "EX/0001", &err);
    if (rc)
        printf("EX/0001: rejected: %s %s (%s)\n", cs_err_str(rc), err.field, err.msg);
    rc = cs_publisher_flush(p, 30000);
    cs_publisher_destroy(p);
    cs_config_clear(&cfg);
    return rc == CS_OK ? 0 : 1;
}
