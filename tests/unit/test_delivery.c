/* Unit tests of delivery by route: a dead route never holds back another, a failing job
 * never holds back other subjects on its own route, per-subject order, the retry bounds
 * (count and time), abandonment at stop. Real sinks: exec commands and a memory stdout.
 */
#include "testenv.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "caresignal/config.h"
#include "caresignal/delivery.h"
#include "caresignal/signals.h"

static char dir[64], errstr[512];

static cs_routes_t *routes_from(const char *json, cs_config_t *cfg)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/routes.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(json, f);
    fclose(f);
    cs_config_init(cfg, "test");
    assert_int_equal(cs_config_set(cfg, "page.routes.file", path, errstr, sizeof(errstr)),
                     CS_OK);
    cs_routes_t *r = cs_routes_load(cfg, errstr, sizeof(errstr));
    if (!r)
        fail_msg("%s", errstr);
    return r;
}

static cs_delivery_job_t *job(const cs_routes_t *routes, const char *subject, int n)
{
    cs_delivery_job_t *j = calloc(1, sizeof(*j));
    snprintf(j->alert.alert_id, sizeof(j->alert.alert_id), "%032d", n);
    j->alert.subject_kind = CS_SUBJECT_LOCATION;
    snprintf(j->alert.subject_id, sizeof(j->alert.subject_id), "%s", subject);
    snprintf(j->alert.region, sizeof(j->alert.region), "%s", n % 2 ? "North" : "South");
    snprintf(j->alert.triggered_by, sizeof(j->alert.triggered_by), "NHSE:RXQ:T-%d", n);
    cs_alert_t probe = j->alert;
    j->route = cs_routes_match(routes, &probe);
    j->opaque = (void *)(intptr_t)n;
    return j;
}

/* Collects \p n finished jobs (waiting up to \p ms); @returns them in finishing order. */
static int collect(cs_delivery_t *d, cs_delivery_job_t **out, int n, long ms)
{
    int got = 0;
    int64_t deadline = cs_mono_ms() + ms;
    while (got < n && cs_mono_ms() < deadline) {
        cs_delivery_wait(d, 50);
        cs_delivery_job_t *j;
        while (got < n && (j = cs_delivery_next_done(d)))
            out[got++] = j;
    }
    return got;
}

static const cs_delivery_policy_t policy = {.retries = 100,
                                            .backoff_ms = 20,
                                            .backoff_max_ms = 100,
                                            .max_hold_ms = 1500,
                                            .queue_max = 64};

/* A route whose command always fails keeps retrying; the other route delivers at once. */
static void test_dead_route_never_holds_back_another(void **state)
{
    (void)state;
    char json[512];
    snprintf(json, sizeof(json),
             "{\"routes\": [{\"name\": \"dead\", \"match\": {\"region\": [\"North\"]}, "
             "\"sink\": \"exec\", \"command\": \"exit 1\"}, {\"name\": \"ok\", "
             "\"match\": {\"region\": [\"South\"]}, \"sink\": \"exec\", \"command\": "
             "\"cat >> %s/ok.out\"}]}",
             dir);
    cs_config_t cfg;
    cs_routes_t *routes = routes_from(json, &cfg);
    cs_delivery_t *d =
        cs_delivery_new(routes, &policy, NULL, stdout, NULL, errstr, sizeof(errstr));
    assert_non_null(d);
    char subject[16];
    for (int i = 0; i < 6; i++) {
        snprintf(subject, sizeof(subject), "1-10000000%d", i);
        assert_int_equal(cs_delivery_submit(d, job(routes, subject, i)), CS_OK);
    }
    /* the three South jobs come back first, delivered, while North keeps failing */
    cs_delivery_job_t *done[6];
    assert_int_equal(collect(d, done, 6, 10000), 6);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(done[i]->result, CS_OK);
        assert_string_equal(done[i]->route->name, "ok");
        assert_int_equal((int)(intptr_t)done[i]->opaque % 2, 0);
    }
    /* the North ones: undeliverable once their time is up, each after many attempts,
     * their retries interleaved (each started before any of them gave up), not one
     * alert's whole budget after another's */
    int64_t last_start = 0, first_end = INT64_MAX;
    for (int i = 3; i < 6; i++) {
        assert_int_equal(done[i]->result, CS_ERR_RETRY);
        assert_true(done[i]->attempts > 3);
        assert_non_null(strstr(done[i]->error, "exited with status 1"));
        last_start = done[i]->first_at > last_start ? done[i]->first_at : last_start;
        first_end = done[i]->done_at < first_end ? done[i]->done_at : first_end;
    }
    assert_true(last_start < first_end);
    for (int i = 0; i < 6; i++)
        free(done[i]);
    assert_int_equal(cs_delivery_in_flight(d), 0);
    cs_delivery_destroy(d);
    cs_routes_destroy(routes);
    cs_config_clear(&cfg);
}

/* One subject's alerts go in order; another subject is not held back by a failing one. */
static void test_per_subject_order_and_retry_count(void **state)
{
    (void)state;
    char json[512];
    /* fails while the flag file exists: the first subject's first alert keeps failing */
    snprintf(json, sizeof(json),
             "{\"routes\": [{\"name\": \"flaky\", \"sink\": \"exec\", \"command\": "
             "\"if grep -q 1-100000001 && [ -e %s/flag ]; then exit 1; fi\"}]}",
             dir);
    char flag[128];
    snprintf(flag, sizeof(flag), "%s/flag", dir);
    fclose(fopen(flag, "w"));
    cs_config_t cfg;
    cs_routes_t *routes = routes_from(json, &cfg);
    cs_delivery_policy_t p = policy;
    p.retries = 3;
    p.max_hold_ms = 60000;
    cs_delivery_t *d =
        cs_delivery_new(routes, &p, NULL, stdout, NULL, errstr, sizeof(errstr));
    assert_int_equal(cs_delivery_submit(d, job(routes, "1-100000001", 0)), CS_OK);
    assert_int_equal(cs_delivery_submit(d, job(routes, "1-100000001", 2)), CS_OK);
    assert_int_equal(cs_delivery_submit(d, job(routes, "1-100000002", 4)), CS_OK);
    cs_delivery_job_t *done[3];
    assert_int_equal(collect(d, done, 1, 2000), 1);
    assert_int_equal((int)(intptr_t)done[0]->opaque, 4); /* the other subject first */
    free(done[0]);
    /* the failing job: 1 + 3 retries, then undeliverable; only then its successor */
    assert_int_equal(collect(d, done, 1, 5000), 1);
    assert_int_equal((int)(intptr_t)done[0]->opaque, 0);
    assert_int_equal(done[0]->result, CS_ERR_RETRY);
    assert_int_equal(done[0]->attempts, 4);
    free(done[0]);
    unlink(flag);
    assert_int_equal(collect(d, done, 1, 2000), 1);
    assert_int_equal((int)(intptr_t)done[0]->opaque, 2);
    assert_int_equal(done[0]->result, CS_OK);
    free(done[0]);
    cs_delivery_destroy(d);
    cs_routes_destroy(routes);
    cs_config_clear(&cfg);
}

/* A full queue refuses; stop lets the attempt in progress finish and abandons the rest.
 */
static void test_queue_bound_and_stop(void **state)
{
    (void)state;
    char json[512], started[128];
    snprintf(started, sizeof(started), "%s/started", dir);
    snprintf(json, sizeof(json),
             "{\"routes\": [{\"name\": \"slow\", \"sink\": \"exec\", \"command\": "
             "\"touch %s; sleep 0.3\"}]}",
             started);
    cs_config_t cfg;
    cs_routes_t *routes = routes_from(json, &cfg);
    cs_delivery_policy_t p = policy;
    p.queue_max = 3;
    cs_delivery_t *d =
        cs_delivery_new(routes, &p, NULL, stdout, NULL, errstr, sizeof(errstr));
    cs_delivery_job_t *extra = job(routes, "1-100000009", 9);
    for (int i = 0; i < 3; i++)
        assert_int_equal(cs_delivery_submit(d, job(routes, "1-100000001", i)), CS_OK);
    assert_false(cs_delivery_has_room(d, extra->route));
    assert_int_equal(cs_delivery_submit(d, extra), CS_ERR_RETRY);
    free(extra);
    while (access(started, F_OK)) /* the first attempt is running */
        usleep(10000);
    cs_delivery_stop(d, 0);
    cs_delivery_job_t *done[3];
    assert_int_equal(collect(d, done, 3, 10000), 3);
    assert_int_equal(done[0]->result, CS_OK);
    assert_int_equal((int)(intptr_t)done[0]->opaque, 0);
    for (int i = 1; i < 3; i++)
        assert_int_equal(done[i]->result, CS_ERR_FATAL);
    for (int i = 0; i < 3; i++)
        free(done[i]);
    cs_delivery_destroy(d);
    cs_routes_destroy(routes);
    cs_config_clear(&cfg);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/cs-test-delivery-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dead_route_never_holds_back_another),
        cmocka_unit_test(test_per_subject_order_and_retry_count),
        cmocka_unit_test(test_queue_bound_and_stop),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
